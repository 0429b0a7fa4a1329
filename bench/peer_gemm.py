#!/usr/bin/env python3
"""Time PyTorch peers of llmk's FP8 GEMM on one GPU.

Usage (on the GPU machine; needs only PyTorch, Triton comes with it):

    python3 bench/peer_gemm.py --out peer_gemm.jsonl
    python3 bench/peer_gemm.py --shapes 16x8192x8192,4096x8192x8192 \\
        --ops gemm_fp8_rowwise --out peer_gemm.jsonl
    python3 bench/peer_gemm.py --ops gemm_fp8_blockwise --out peer_blockwise.jsonl

--ops picks the ops (default: all, gemm_fp8_blockwise included); leave
gemm_fp8_blockwise out of the list to skip it.

Y[M, N] = X[M, K] @ W[N, K]^T, bf16 output. For every shape M x N x K this times

  gemm_fp8_rowwise     torch._scaled_mm(xq, wq.t(), scale_a [M, 1] f32,
                       scale_b [1, N] f32, out_dtype=bf16, use_fast_accum=True)
  gemm_fp8_tensorwise  the same with one f32 scale per operand (a 0-dim
                       tensor; [1] or [1, 1] if this torch rejects 0-dim)
  gemm_fp8_blockwise   DeepSeek-V3 block scaling: torch._scaled_mm(xq, wq.t(),
                       scale_a [M, ceil(K/128)] f32 (one per 1x128 group of a
                       row of X), scale_b [ceil(K/128), ceil(N/128)] f32 (one
                       per 128x128 block of W), out_dtype=bf16,
                       use_fast_accum=False); Hopper (SM90) only
  gemm_bf16            torch.mm(x, w.t()) in bf16, for reference

xq [M, K] and wq [N, K] are float8_e4m3fn, row-major, so wq.t() is the
column-major second operand _scaled_mm requires. The inputs are fresh
torch.randn data (rows of different magnitudes), quantized per row (rowwise),
per tensor (tensorwise) or per 1x128 group of X and 128x128 block of W
(blockwise) with dequantization scales amax / 448, as llmk_quantize_fp8 writes
them. Once per shape and FP8 op the output is checked against a float32 matmul
of the dequantized inputs (relative Frobenius error below 2e-2, else a note is
printed); the error goes into the row as rel_err.
One large device-to-device copy (1 GiB) measures copy bandwidth first.

Block-wise scale layouts, as torch._scaled_mm (aten/src/ATen/native/cuda/
ScaledBlas.cpp: is_blockwise_1x128_scaling, is_blockwise_128x128_scaling,
get_joint_scaling) checks them; the second operand's scale is checked
transposed, against wq [N, K]:
  scale_a  [M, ceil(K/128)], strides (1, M): "outer-dim-major", i.e. the
           transpose of a contiguous [ceil(K/128), M] tensor
           (sx.t().contiguous().t()); a size-1 dimension's stride is not checked
  scale_b  [ceil(K/128), ceil(N/128)], strides (1, ceil(K/128)): the transpose
           of the contiguous row-major [ceil(N/128), ceil(K/128)] weight-scale
           grid (sw.t()). Some torch releases want that grid's row stride
           padded to a multiple of 4 (16 bytes); if torch rejects the
           unpadded grid for a K with ceil(K/128) % 4 != 0 the padded one is
           tried (for the default shapes both are the same).
torch refuses fast accumulation with block scaling. A shape torch or cuBLASLt
refuses (e.g. an M it has no kernel for) is skipped with a note on stderr.

Default shapes (docs/DESIGN.md "Benchmarking", FBGEMM's Llama set, 72 shapes):
M in {1, 16, 32, 64, 96, 128, 1024, 4096, 16384} x (N, K) in {(1280, 8192),
(8192, 1024), (7168, 8192), (8192, 3584), (13312, 6656), (13312, 16384),
(16384, 6656), (16384, 16384)}.

Timing, as bench/peer_quantize.py: CUDA events around every call, after
warm-up; the L2 cache is flushed before every timed call by writing a 256 MiB
buffer (not timed); the median is reported. Repeats: --reps (50), fewer where
one measurement would take more than --max-measure-s (0.5 s, flushes included;
never fewer than 5). For M <= --graph-max-m (128) the ops are ALSO timed as
CUDA-graph replay: --graph-calls (100) calls captured in one
torch.cuda.CUDAGraph, the replay timed with the L2 flushed before each replay
(not timed), replay time / calls reported as peer_us_graph. The captured calls
rotate among copies of the weight totalling at least 128 MiB, so that no call
finds its weights in L2 (as in a model, whose every layer has its own);
`llmk bench gemm` times its graphs the same way.

Output: one JSON object per line (docs/DESIGN.md "Benchmarking"), e.g.

  {"op": "gemm_fp8_rowwise", "device": "NVIDIA H100 80GB HBM3",
   "shape": {"m": 16, "n": 8192, "k": 8192}, "dtype": "e4m3",
   "peer": "torch._scaled_mm", "peer_us": 30.1, "peer_us_graph": 25.2,
   "tflops": 71.3, "gbps": 2240.0, "frac_copy": 0.75, ...}

dtype is "e4m3" for the FP8 ops, "bf16" for gemm_bf16. tflops = 2MNK / time;
gbps counts the minimal traffic: both inputs once (1 byte per element for FP8,
2 for bf16) plus the bf16 output (2MN bytes); scales are not counted.
*_graph variants use the graph time. Extra keys: frac_copy (gbps over the
large-copy bandwidth), reps, graph_calls, graph_reps, rel_err, scale_shapes,
peer_version. The copy row is {"op": "copy", "shape": {"m", "k"}, "dtype":
"bf16", "peer": "torch copy_", "gbps": bytes read + written / time}.
The file is overwritten and written line by line, so a run cut short still
leaves the rows it finished; after --time-limit seconds the remaining shapes
are skipped with a note. A failing op or shape prints a note and the run goes
on. A short human-readable table goes to stdout.
Exit status: 0 done (possibly with notes), 1 no usable GPU / torch, 2 usage,
3 the CUDA context broke (rows so far are kept).
"""

import argparse
import itertools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_common as pc  # noqa: E402
from peer_common import ContextBroken, brief_exc, context_ok, note, rnd  # noqa: E402

FP8_MAX = 448.0
MIN_SCALE = 1.0 / (448.0 * 512.0)
MAX_REL_ERR = 2e-2
GRAPH_ROTATE_BYTES = 128 << 20  # a CUDA graph rotates among weight copies of at least this
GRAPH_MAX_COPIES = 32           # in all, and at most this many

LLAMA_M = (1, 16, 32, 64, 96, 128, 1024, 4096, 16384)
LLAMA_NK = ((1280, 8192), (8192, 1024), (7168, 8192), (8192, 3584),
            (13312, 6656), (13312, 16384), (16384, 6656), (16384, 16384))

GEMM_OPS = ("gemm_fp8_rowwise", "gemm_fp8_tensorwise", "gemm_fp8_blockwise", "gemm_bf16")
ALL_OPS = GEMM_OPS + ("copy",)
PEER = {"gemm_fp8_rowwise": "torch._scaled_mm",
        "gemm_fp8_tensorwise": "torch._scaled_mm",
        "gemm_fp8_blockwise": "torch._scaled_mm",
        "gemm_bf16": "torch.mm"}
BLOCK = 128  # block-wise scaling: 1x128 groups of X, 128x128 blocks of W

torch = None  # imported in main(), after the arguments are parsed


def default_shapes():
    return [(m, n, k) for (n, k) in LLAMA_NK for m in LLAMA_M]


# ---------------------------------------------------------------------------
# Arguments (no torch needed)
# ---------------------------------------------------------------------------

def parse_shapes(text):
    return pc.parse_dims(text, "MxNxK", "16x8192x8192")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Default shapes: M in {%s} x (N, K) in {%s} (%d shapes)." % (
            ", ".join(str(m) for m in LLAMA_M),
            ", ".join("(%d, %d)" % nk for nk in LLAMA_NK), len(LLAMA_M) * len(LLAMA_NK)))
    ap.add_argument("--out", required=True, help="JSON-lines output file (overwritten)")
    ap.add_argument("--shapes", type=parse_shapes, default=None,
                    help="comma-separated MxNxK list, e.g. 16x8192x8192 (default: the Llama set)")
    ap.add_argument("--ops", default=",".join(ALL_OPS),
                    help="comma-separated subset of: %s (default: all)" % ",".join(ALL_OPS))
    ap.add_argument("--reps", type=int, default=50, help="timed calls per measurement (at most)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed calls first")
    ap.add_argument("--max-measure-s", type=float, default=0.5,
                    help="cap on one measurement's time, flushes included: fewer reps "
                         "(never fewer than %d) for slow shapes" % pc.MIN_REPS)
    ap.add_argument("--graph-max-m", type=int, default=128,
                    help="also time CUDA-graph replay for M <= this (-1: never)")
    ap.add_argument("--graph-calls", type=int, default=100, help="calls captured per graph")
    ap.add_argument("--graph-reps", type=int, default=20, help="timed graph replays (at most)")
    ap.add_argument("--copy-gib", type=float, default=1.0,
                    help="size of the large bandwidth copy in GiB (0 skips it)")
    ap.add_argument("--no-check", action="store_true",
                    help="skip the float32 reference check of the FP8 outputs")
    ap.add_argument("--time-limit", type=float, default=280.0,
                    help="seconds after which the remaining shapes are skipped (0: none)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    for o in ops:
        if o not in ALL_OPS:
            ap.error("unknown op %r (choose from %s)" % (o, ", ".join(ALL_OPS)))
    if not ops:
        ap.error("--ops is empty")
    args.ops = [o for o in ALL_OPS if o in ops]  # fixed order, no duplicates
    if args.shapes is None:
        args.shapes = default_shapes()
    if (args.reps < 1 or args.graph_reps < 1 or args.graph_calls < 1 or args.warmup < 0
            or args.max_measure_s <= 0 or args.copy_gib < 0 or args.time_limit < 0):
        ap.error("--reps, --graph-reps, --graph-calls must be >= 1, --warmup, --copy-gib, "
                 "--time-limit >= 0 and --max-measure-s > 0")
    return args


# ---------------------------------------------------------------------------
# Inputs and peers
# ---------------------------------------------------------------------------

def randn_rows(rows, cols):
    """bf16 [rows, cols] of torch.randn data, rows scaled by factors in ~[0.1, 10]."""
    x = torch.randn(rows, cols, device="cuda", dtype=torch.bfloat16)
    mag = torch.exp(torch.randn(rows, 1, device="cuda", dtype=torch.float32) * 0.8)
    return (x.float() * mag).to(torch.bfloat16)


def quantize_rows(x):
    """(e4m3 [R, C], f32 scale [R, 1]) with x ~= q * scale."""
    amax = x.abs().float().amax(dim=1, keepdim=True)
    scale = (amax / FP8_MAX).clamp(min=MIN_SCALE)
    q = (x.float() * (1.0 / scale)).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q, scale.contiguous()


def quantize_tensor(x):
    """(e4m3 [R, C], f32 0-dim scale) with x ~= q * scale."""
    amax = x.abs().float().amax()
    scale = (amax / FP8_MAX).clamp(min=MIN_SCALE)
    q = (x.float() * (1.0 / scale)).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q, scale


# Tensorwise scale forms, tried in this order until torch accepts one.
TENSOR_SCALE_FORMS = (("0-dim", ()), ("[1]", (1,)), ("[1, 1]", (1, 1)))


def cdiv(a, b):
    return -(-a // b)


def quantize_groups(x):
    """(e4m3 [R, C], f32 scale [R, ceil(C/128)] row-major): one scale per 1x128 group."""
    r, c = x.shape
    cb = cdiv(c, BLOCK)
    xf = x.float()
    if cb * BLOCK != c:
        xf = torch.nn.functional.pad(xf, (0, cb * BLOCK - c))
    xf = xf.view(r, cb, BLOCK)
    scale = (xf.abs().amax(dim=2, keepdim=True) / FP8_MAX).clamp(min=MIN_SCALE)
    q = (xf * (1.0 / scale)).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    del xf
    q = q.view(r, cb * BLOCK)[:, :c].contiguous()
    return q, scale.view(r, cb).contiguous()


def quantize_blocks(w):
    """(e4m3 [R, C], f32 scale [ceil(R/128), ceil(C/128)] row-major): one per 128x128 block."""
    r, c = w.shape
    rb, cb = cdiv(r, BLOCK), cdiv(c, BLOCK)
    wf = w.float()
    if (rb * BLOCK, cb * BLOCK) != (r, c):
        wf = torch.nn.functional.pad(wf, (0, cb * BLOCK - c, 0, rb * BLOCK - r))
    wf = wf.view(rb, BLOCK, cb, BLOCK)
    scale = (wf.abs().amax(dim=(1, 3), keepdim=True) / FP8_MAX).clamp(min=MIN_SCALE)
    q = (wf * (1.0 / scale)).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    del wf
    q = q.view(rb * BLOCK, cb * BLOCK)[:r, :c].contiguous()
    return q, scale.view(rb, cb).contiguous()


def expand_scales(s, rows_per, r, c):
    """Block scale grid [Rb, Cb] -> f32 [r, c], each value over its rows_per x 128 block."""
    return s.repeat_interleave(rows_per, dim=0)[:r].repeat_interleave(BLOCK, dim=1)[:, :c]


# Layouts of the 128x128 weight-scale grid [ceil(N/128), ceil(K/128)] (row stride
# ceil(K/128), or that rounded up to a multiple of 4), tried in this order.
BLOCK_W_FORMS = ("row stride ceil(K/128)", "row stride padded to a multiple of 4")


def blockwise_scales(sx, sw, form):
    """(scale_a, scale_b) for torch._scaled_mm(xq, wq.t(), ...) with 1x128 / 128x128 scaling.

    sx: [M, Kb] row-major (1x128 groups of xq [M, K]); sw: [Nb, Kb] row-major
    (128x128 blocks of wq [N, K]). scale_a: [M, Kb] with strides (1, M)
    ("outer-dim-major"). scale_b: [Kb, Nb] with strides (1, Kb) (form 0) or
    (1, round_up(Kb, 4)) (form 1), the transpose of the weight grid, as torch checks
    scale_b.t() against mat2.t() = wq.
    """
    sa = sx.t().contiguous().t()
    if form == 0:
        grid = sw
    else:
        nb, kb = sw.shape
        buf = torch.zeros(nb, cdiv(kb, 4) * 4, device=sw.device, dtype=sw.dtype)
        buf[:, :kb] = sw
        grid = buf[:, :kb]  # the view keeps buf alive
    return sa, grid.t()


def rel_frobenius(y, xq, sx, wq, sw):
    """||y - ref||_F / ||ref||_F, ref = float32 (xq * sx) @ (wq * sw)^T."""
    ref = torch.mm(xq.float() * sx, (wq.float() * sw).t())
    den = torch.linalg.vector_norm(ref).item()
    num = torch.linalg.vector_norm(y.float() - ref).item()
    del ref
    return num / den if den > 0 else float("inf")


def record_error(extra, what, err):
    """Puts err into the row as rel_err and notes it if above MAX_REL_ERR."""
    extra["rel_err"] = float("%.3g" % err)
    if not err < MAX_REL_ERR:
        note("%s: relative Frobenius error %.3g vs float32 reference "
             "(limit %g)" % (what, err, MAX_REL_ERR))


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

class Output(pc.RowWriter):
    header = "%-20s %-18s %-17s %10s %10s %8s %8s %6s" % (
        "op", "shape", "peer", "us", "us(graph)", "TFLOP/s", "GB/s", "%copy")

    def copy_row(self, m, k, us, reps):
        nbytes = 2 * (2 * m * k)  # bf16 read + written
        gbps = nbytes / (us * 1e-6) / 1e9
        self._write({"op": "copy", "device": self.device, "shape": {"m": m, "k": k},
                     "dtype": "bf16", "peer": "torch copy_", "peer_us": rnd(us),
                     "gbps": rnd(gbps, 1), "reps": reps})
        print("%-20s %-18s %-17s %10.2f %10s %8s %8.1f %6s" % (
            "copy", "%dx%d" % (m, k), "torch copy_", us, "-", "-", gbps, "-"))
        sys.stdout.flush()
        return gbps

    def gemm_row(self, op, m, n, k, us, reps, us_graph=None, graph_reps=None,
                 graph_calls=None, extra=None):
        eb = 2 if op == "gemm_bf16" else 1
        nbytes = (m * k + n * k) * eb + 2 * m * n
        flops = 2.0 * m * n * k
        tflops = flops / (us * 1e-6) / 1e12
        gbps = nbytes / (us * 1e-6) / 1e9
        row = {
            "op": op,
            "device": self.device,
            "shape": {"m": m, "n": n, "k": k},
            "dtype": "bf16" if op == "gemm_bf16" else "e4m3",
            "peer": PEER[op],
            "peer_us": rnd(us),
        }
        if us_graph is not None:
            row["peer_us_graph"] = rnd(us_graph)
        row["tflops"] = rnd(tflops, 2)
        row["gbps"] = rnd(gbps, 1)
        if us_graph is not None:
            row["tflops_graph"] = rnd(flops / (us_graph * 1e-6) / 1e12, 2)
            row["gbps_graph"] = rnd(nbytes / (us_graph * 1e-6) / 1e9, 1)
        frac = self._frac_copy(row, gbps)
        row["reps"] = reps
        if us_graph is not None:
            row["graph_calls"] = graph_calls
            row["graph_reps"] = graph_reps
        if extra:
            row.update(extra)
        self._write(row)
        print("%-20s %-18s %-17s %10.2f %10s %8.1f %8.1f %6s" % (
            op, "%dx%dx%d" % (m, n, k), PEER[op], us,
            "-" if us_graph is None else "%.2f" % us_graph, tflops, gbps, pc.pct(frac)))
        sys.stdout.flush()


def is_fatal(e):
    """A CUDA error other than out-of-memory leaves the context unusable.

    cuBLASLt's refusals (no algorithm for the problem, e.g. an M block scaling
    has no kernel for) come from the host: nothing ran, the context is fine;
    context_ok() double-checks before the run goes on."""
    return pc.is_fatal(e, benign=("CUBLAS_STATUS_NOT_SUPPORTED", "CUBLAS_STATUS_INVALID_VALUE"),
                       fatal=("CUBLAS_STATUS_EXECUTION_FAILED",))


# ---------------------------------------------------------------------------
# One shape
# ---------------------------------------------------------------------------

class State:
    """What is learnt once per run: the accepted tensorwise and block-wise scale forms."""
    tensor_form = None  # index into TENSOR_SCALE_FORMS
    block_w_form = None  # index into BLOCK_W_FORMS (learnt only where the forms differ)


def scaled_mm(xq, wq, sa, sb):
    return torch._scaled_mm(xq, wq.t(), scale_a=sa, scale_b=sb,
                            out_dtype=torch.bfloat16, use_fast_accum=True)


def scaled_mm_blockwise(xq, wq, sa, sb):
    # torch rejects fast accumulation with 1x128 / 128x128 block scaling
    return torch._scaled_mm(xq, wq.t(), scale_a=sa, scale_b=sb,
                            out_dtype=torch.bfloat16, use_fast_accum=False)


def run_shape(m, n, k, ops, timer, out, args, state):
    use_graph = m <= args.graph_max_m
    x = randn_rows(m, k)
    w = randn_rows(n, k)
    for op in ops:
        what = "%s %dx%dx%d" % (op, m, n, k)
        fn = mk = wgt = xq = wq = sx = sw = sa = sb = y = None
        try:
            extra = {}
            if op == "gemm_bf16":
                mk = lambda wt: (lambda: torch.mm(x, wt.t()))
                wgt = w
                fn = mk(w)
                fn()
            elif op == "gemm_fp8_rowwise":
                xq, sx = quantize_rows(x)           # [M, K], [M, 1]
                wq, sw = quantize_rows(w)           # [N, K], [N, 1]
                sb = sw.reshape(1, n).contiguous()  # [1, N]
                mk = lambda wt: (lambda: scaled_mm(xq, wt, sx, sb))
                wgt = wq
                fn = mk(wq)
                y = fn()
                extra["scale_shapes"] = "a %s, b %s" % (list(sx.shape), list(sb.shape))
                if not args.no_check:
                    err = rel_frobenius(y, xq, sx, wq, sw)
                    record_error(extra, what, err)
                del y
            elif op == "gemm_fp8_blockwise":
                xq, sx = quantize_groups(x)         # [M, K], [M, Kb]  (Kb = ceil(K/128))
                wq, sw = quantize_blocks(w)         # [N, K], [Nb, Kb] (Nb = ceil(N/128))
                kb = sx.shape[1]
                if kb % 4 == 0:
                    forms = [0]  # both weight-grid forms are the same tensor
                elif state.block_w_form is not None:
                    forms = [state.block_w_form]
                else:
                    forms = range(len(BLOCK_W_FORMS))
                y = None
                for i in forms:
                    sa, sb = blockwise_scales(sx, sw, i)
                    try:
                        y = scaled_mm_blockwise(xq, wq, sa, sb)
                        torch.cuda.synchronize()
                    except RuntimeError as e:
                        if (is_fatal(e) or i == forms[-1]
                                or "invalid scaling configuration" not in str(e).lower()):
                            raise  # not about the weight grid's stride
                        note("%s: _scaled_mm rejected the 128x128 scales with %s (%s)"
                             % (what, BLOCK_W_FORMS[i], brief_exc(e)))
                        continue
                    if kb % 4 and state.block_w_form is None:
                        state.block_w_form = i
                        note("128x128 weight scales passed with %s" % BLOCK_W_FORMS[i])
                    break
                mk = lambda wt, sa=sa, sb=sb: (lambda: scaled_mm_blockwise(xq, wt, sa, sb))
                wgt = wq
                fn = mk(wq)
                extra["scale_shapes"] = "a %s strides %s, b %s strides %s" % (
                    list(sa.shape), list(sa.stride()), list(sb.shape), list(sb.stride()))
                if not args.no_check:
                    err = rel_frobenius(y, xq, expand_scales(sx, 1, m, k),
                                        wq, expand_scales(sw, BLOCK, n, k))
                    record_error(extra, what, err)
                del y
            else:  # gemm_fp8_tensorwise
                xq, sx = quantize_tensor(x)
                wq, sw = quantize_tensor(w)
                forms = (range(len(TENSOR_SCALE_FORMS)) if state.tensor_form is None
                         else [state.tensor_form])
                y = None
                for i in forms:
                    name, shp = TENSOR_SCALE_FORMS[i]
                    sa, sb = sx.reshape(shp).contiguous(), sw.reshape(shp).contiguous()
                    try:
                        y = scaled_mm(xq, wq, sa, sb)
                        torch.cuda.synchronize()
                    except RuntimeError as e:
                        if (is_fatal(e) or state.tensor_form is not None
                                or "scal" not in str(e).lower()):
                            raise  # not about the scales' form (e.g. alignment)
                        note("%s: _scaled_mm rejected %s tensorwise scales (%s)"
                             % (what, name, brief_exc(e)))
                        continue
                    if state.tensor_form is None:
                        state.tensor_form = i
                        if i > 0:
                            note("tensorwise scales passed as %s tensors" % name)
                    break
                if y is None:
                    raise RuntimeError("no tensorwise scale form accepted")
                mk = lambda wt, sa=sa, sb=sb: (lambda: scaled_mm(xq, wt, sa, sb))
                wgt = wq
                fn = mk(wq)
                extra["scale_shapes"] = "a %s, b %s" % (list(sa.shape), list(sb.shape))
                if not args.no_check:
                    err = rel_frobenius(y, xq, sx, wq, sw)
                    record_error(extra, what, err)
                del y
            torch.cuda.synchronize()

            us, reps = timer.events(fn)
            usg = greps = None
            if use_graph:
                try:
                    # Rotate among copies of the weight totalling >= 128 MiB, so
                    # that no call of the replay finds its weights in L2 (50 MB
                    # on the H100), as in a model whose every layer has its own.
                    n_copies = pc.rotation_copies(wgt.numel() * wgt.element_size(),
                                                  GRAPH_ROTATE_BYTES, GRAPH_MAX_COPIES)
                    copies = [wgt] + [wgt.clone() for _ in range(n_copies - 1)]
                    extra["graph_weight_copies"] = len(copies)
                    cyc = itertools.cycle(copies)
                    usg, greps = timer.graph(lambda: mk(next(cyc))())
                    del copies, cyc
                except Exception as e:  # noqa: BLE001 - report and go on
                    if is_fatal(e):
                        raise
                    note("%s: CUDA-graph timing failed, events only (%s)" % (what, brief_exc(e)))
                    torch.cuda.synchronize()
            out.gemm_row(op, m, n, k, us, reps, usg, greps, args.graph_calls, extra)
        except Exception as e:  # noqa: BLE001 - report and go on
            if is_fatal(e) or not context_ok():
                raise ContextBroken("%s: %s" % (what, brief_exc(e)))
            # block-wise: torch / cuBLASLt may refuse a shape (e.g. M): one line on stderr
            note("%s failed, skipped (%s)" % (what, brief_exc(e)),
                 err=(op == "gemm_fp8_blockwise"))
        finally:
            # free this op's inputs and outputs before the next op allocates its own
            fn = mk = wgt = xq = wq = sx = sw = sa = sb = y = None  # noqa: F841
            torch.cuda.empty_cache()


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def main(argv=None):
    global torch
    args = parse_args(argv)

    torch = pc.load_torch()
    if torch is None:
        return 1
    ops = list(args.ops)
    fp8_ops = [o for o in ops if o.startswith("gemm_fp8")]
    if fp8_ops:
        cap = torch.cuda.get_device_capability()
        if not hasattr(torch, "float8_e4m3fn") or not hasattr(torch, "_scaled_mm"):
            note("this torch has no float8_e4m3fn / _scaled_mm: skipping %s" % ", ".join(fp8_ops))
            ops = [o for o in ops if o not in fp8_ops]
        elif cap < (8, 9):
            note("compute capability %d.%d has no FP8 tensor cores: skipping %s"
                 % (cap + (", ".join(fp8_ops),)))
            ops = [o for o in ops if o not in fp8_ops]
        elif "gemm_fp8_blockwise" in ops and cap[0] != 9:
            # torch: "DeepSeek style (1x128, 128x128) scaling only supported in CUDA for SM90"
            note("compute capability %d.%d: torch._scaled_mm has 1x128 / 128x128 block "
                 "scaling on SM90 only: skipping gemm_fp8_blockwise" % cap)
            ops.remove("gemm_fp8_blockwise")

    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = False  # a true float32 reference
    device = torch.cuda.get_device_name()
    peer_version = pc.peer_version()
    print("device: %s   %s   cuda %s" % (device, peer_version, torch.version.cuda))
    sys.stdout.flush()

    timer = pc.Timer(args.reps, args.warmup, args.graph_calls, args.graph_reps, args.max_measure_s)
    out = Output(args.out, device, peer_version)
    t_start = time.time()
    status = 0
    try:
        # 1. Large copy first: its bandwidth is the reference for frac_copy.
        if "copy" in ops and args.copy_gib > 0:
            try:
                m, k, us, reps = pc.time_large_copy(timer, args.copy_gib)
                out.copy_gbps = out.copy_row(m, k, us, reps)
            except Exception as e:  # noqa: BLE001 - report and go on
                if is_fatal(e):
                    raise ContextBroken("copy: " + brief_exc(e))
                note("copy failed, no frac_copy (%s)" % brief_exc(e))
            torch.cuda.empty_cache()

        # 2. Per shape: every GEMM peer.
        gemm_ops = [o for o in ops if o in GEMM_OPS]
        state = State()
        if gemm_ops:
            for i, (m, n, k) in enumerate(args.shapes):
                if args.time_limit and time.time() - t_start > args.time_limit:
                    note("time limit (%.0f s) reached: %d of %d shapes skipped, from %dx%dx%d on"
                         % (args.time_limit, len(args.shapes) - i, len(args.shapes), m, n, k))
                    break
                try:
                    run_shape(m, n, k, gemm_ops, timer, out, args, state)
                except ContextBroken:
                    raise
                except Exception as e:  # noqa: BLE001 - e.g. out of memory for the inputs
                    if is_fatal(e):
                        raise ContextBroken("%dx%dx%d: %s" % (m, n, k, brief_exc(e)))
                    note("%dx%dx%d failed, skipped (%s)" % (m, n, k, brief_exc(e)))
                    torch.cuda.empty_cache()
    except ContextBroken as e:
        note("the CUDA context is broken, stopping (%s)" % e)
        status = 3
    finally:
        out.close()
    print("wrote %s (%.0f s)" % (args.out, time.time() - t_start))
    return status


if __name__ == "__main__":
    sys.exit(main())
