#!/usr/bin/env python3
"""Time llmk's GEMMs against FBGEMM and PyTorch on the general shape set, all under CUDA graphs.

Usage (on the GPU machine, from the repository root, after `make -j16 all`;
FBGEMM's gen_ai wheel, if any, installed into .site):

    PYTHONPATH=.site:python python3 bench/peer_gemm_general.py --ops row --out general_row.jsonl
    PYTHONPATH=.site:python python3 bench/peer_gemm_general.py --ops block,block128 \\
        --split holdout --out general_block.jsonl
    python3 bench/peer_gemm_general.py --dry-run --ops row        # the shapes; no torch, no GPU
    python3 bench/peer_gemm_general.py --summary general_*.jsonl   # the tables; no torch, no GPU

Shapes: the general set of bench/gemm_shapes.py, every (N, K) of
general_pairs() (--split fit or holdout takes one half, --pairs NxK,... a
subset) times the token counts M of --ms (default GENERAL_M), Y[M, N] =
X[M, K] @ W[N, K]^T with bf16 output. Per (N, K) W is drawn once
(torch.randn rows of magnitudes ~0.1 to 10, bench/peer_gemm.py's
randn_rows) and quantized once per op; X is drawn afresh for every M.
Order: (N, K) ascending, the pairs with N or K off a multiple of 128 last;
within a pair the ops, then M ascending.

Ops (--ops, default row,block,bf16) and what runs, llmk first:

  row       gemm_fp8_rowwise: FP8 e4m3, one scale per row of X and W, fast
            accumulation.
              llmk     torch.ops.llmk.f8f8bf16_rowwise(xq, wq, sx [M], sw [N])
              FBGEMM   torch.ops.fbgemm.f8f8bf16_rowwise(xq, wq, sx [M], sw [N],
                       use_fast_accum=True)
              torch    torch._scaled_mm(xq, wq.t(), scale_a [M, 1], scale_b [1, N],
                       use_fast_accum=True)
  block     gemm_fp8_blockwise: the DeepSeek-V3 recipe, 1x128 groups of X,
            128x128 blocks of W, fp32 accumulation (Kb = ceil(K/128),
            Nb = ceil(N/128)). The group scales of X are held once, "M-major"
            (a contiguous [Kb, M] buffer), which all three read as is.
              llmk     torch.ops.llmk.f8f8bf16_groupwise(xq, wq, x_scale [M, Kb]
                       strides (1, M), w_scale [Nb, Kb] rows padded to a
                       multiple of 4 floats): the layout cuBLASLt reads, so
                       llmk repacks nothing whichever backend it picks
              FBGEMM   torch.ops.fbgemm.f8f8bf16_groupwise(xq, wq, x_scale
                       [Kb, M] contiguous, w_scale [Kb, Nb] contiguous)
              torch    torch._scaled_mm block-wise, scales as bench/peer_gemm.py
                       lays them out (blockwise_scales; the weight grid's row
                       padding learnt once per run)
  block128  gemm_fp8_block128: 128x128 blocks of X and W (not in the default).
              llmk     torch.ops.llmk.f8f8bf16_blockwise(..., block_m=128)
              FBGEMM   torch.ops.fbgemm.f8f8bf16_blockwise(xq, wq, x_scale
                       [ceil(M/128), Kb], w_scale [Nb, Kb], 128, 128, 128)
            torch._scaled_mm has no 128x128 activation blocks: no torch peer.
  bf16      gemm_bf16: llmk torch.ops.llmk.linear_bf16(x, w) vs torch.mm(x, w.t()).

FBGEMM (fbgemm_gpu_genai 1.6.0). Schemas, from the strings of
fbgemm_gpu/experimental/gen_ai/fbgemm_gpu_experimental_gen_ai.so:
  f8f8bf16_rowwise(Tensor XQ, Tensor WQ, Tensor x_scale, Tensor w_scale,
                   Tensor? bias=None, bool use_fast_accum=True) -> Tensor
  f8f8bf16_groupwise(Tensor XQ, Tensor WQ, Tensor x_scale, Tensor w_scale) -> Tensor
  f8f8bf16_blockwise(Tensor XQ, Tensor WQ, Tensor x_scale, Tensor w_scale,
                     int block_m=128, int block_n=128, int block_k=128) -> Tensor
Scale layouts (all f32 dequantization scales, x ~ xq * scale, as llmk's):
  rowwise    x_scale [M], w_scale [N], contiguous: the shapes quantize_fp8_row
             returns (fbgemm_gpu/experimental/gemm/triton_gemm/fp8_gemm.py); the
             kernel reads them through data_ptr as per-row / per-column vectors.
  groupwise  both MN-major: x_scale a contiguous [Kb, M] (quantize_fp8_group(
             k_major=False)), w_scale a contiguous [Kb, Nb] (quantize_fp8_block(
             w, 128, 128, k_major=False)), as FP8CutlassGroupwiseGemm in
             fbgemm_gpu/experimental/gen_ai/bench/quantize_ops.py prepares them
             ("Scale is expected to be in [K, M] layout (M Major)"). The op
             checks neither shape nor stride (only that both are float32).
  blockwise  row-major and checked: x_scale [ceil(M/128), Kb], w_scale
             [Nb, Kb], strides (Kb, 1) ("Expected x_scale.stride(0) ==
             ceil_div(K, TB_K)" in the .so); 128x128x128 only.
XQ and WQ must be contiguous for all three. A missing or unloadable FBGEMM
(or --no-fbgemm) drops its peers with a note; llmk and torch still run.

Timing: every implementation the same way, through bench/peer_common.py's
Timer.graph. One torch.cuda.CUDAGraph captures `calls` calls, chosen per
shape from its roofline estimate so that one replay takes about 1 ms or
more (3 to 100 calls, the same for llmk and its peers); the calls rotate
among copies of the weight and its scales totalling at least 128 MiB
(bench/peer_gemm.py's GRAPH_ROTATE_BYTES, at most GRAPH_MAX_COPIES copies,
2 GiB in all), so that no call finds its weights in L2, as in a model whose
every layer has its own. Three eager warm-up calls, two warm-up replays,
then --replays (5) replays, the L2 flushed (256 MiB written, not timed)
before each; the median replay time / calls is reported in microseconds.
One large device-to-device copy (1 GiB) measures copy bandwidth first.

Correctness, once per (op, shape) before timing: for M*N*K <= 2^36 every
output (llmk's and each peer's) against a float32 product of the
dequantized inputs; above that, against the torch peer's output (FBGEMM's
where torch has none or failed; the float32 product where no peer ran).
rel_err is llmk's relative Frobenius error; llmk fails (ok false, a loud
note on stderr) at 2e-2 or more. A peer at 2e-2 or more is left out of
peers and best_peer (peers_bad holds it, with a note).

Route: llmk_gemm_choice (ctypes, this script's mirror of llmk_gemm_route)
says what the dispatcher runs for the shape: backend ("own" or
"cublaslt"), config (the own configuration's name, or "cublaslt:algo<i>",
i its heuristic entry), splits (K split of the own configuration; null for
cuBLASLt), source ("rule", "table", "desc", "override", "env") and tuned
(the table had an entry). Where it picks cuBLASLt with a
fallback (lt_fallback), a forced-cuBLASLt call of the same operands tells
whether cuBLASLt takes the shape; if not, the own configuration runs and is
recorded (as `llmk bench gemm` does). 128x128 activation blocks always run
the own kernels.

Output (--out, overwritten, one JSON object per line, flushed as written):
first {"op": "copy", "device", "shape": {"m", "k"}, "us", "gbps", ...},
then one row per (op, shape):

  {"op": "gemm_fp8_rowwise", "device": "NVIDIA H100 80GB HBM3",
   "shape": {"m": 16, "n": 8192, "k": 8192}, "layers": ["llama3.1-70b tp1 o"],
   "split": "holdout", "tuned": false, "backend": "own",
   "config": "swap_128x16_s11", "splits": 4, "source": "rule",
   "llmk_us": 25.1, "peers": {"fbgemm.f8f8bf16_rowwise": 31.0,
   "torch._scaled_mm": 29.8}, "best_peer": "torch._scaled_mm",
   "best_peer_us": 29.8, "x_best": 1.187, "x_fbgemm": 1.235,
   "weight_bytes": 67108864, "hbm_floor_us": 22.6, "frac_roof": 0.9,
   "rel_err": 0.00213, "ok": true, "commit": "0123456789ab", ...}

x_best = best_peer_us / llmk_us and x_fbgemm = FBGEMM's us / llmk_us (above
1: llmk is faster); hbm_floor_us = ((M*K + N*K) * element bytes + 2*M*N) /
copy bandwidth, frac_roof = hbm_floor_us / llmk_us. Extra keys: lt_fallback,
route_note, check (what rel_err was measured against), peer_rel_err,
peers_failed, peers_bad, calls, weight_copies, replays, error (llmk's call
failed: llmk_us null), peer_version. commit: --commit, else LLMK_COMMIT, else
`git rev-parse`. A short table goes to stdout.

--summary FILE...: reads such files (no torch, no GPU; a later row of the
same op and shape replaces an earlier one) and prints per op: rows, the
geometric means of x_best and x_fbgemm over all, fit, holdout, tuned and
untuned rows and per M, the smallest x_best with its shape, the rows below
0.95, and for gemm_fp8_rowwise the mean and minimum frac_roof of the decode
rows (M <= 64, weights >= 16 MB). --summary-json prints the same as one
JSON object.

A failing op or shape prints a note on stderr and the run goes on; after
--time-limit seconds (540) the remaining shapes are skipped with a note.
Exit status: 0 done (possibly with notes), 1 no usable GPU / torch / llmk,
2 usage, 3 the CUDA context broke (rows so far are kept).
"""

import argparse
import ctypes
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import gemm_shapes as gs  # noqa: E402
import peer_common as pc  # noqa: E402
import peer_gemm as pg  # noqa: E402
from peer_common import ContextBroken, brief_exc, context_ok, note, rnd  # noqa: E402

OP_NAMES = {"row": "gemm_fp8_rowwise", "block": "gemm_fp8_blockwise",
            "block128": "gemm_fp8_block128", "bf16": "gemm_bf16"}
OP_KEYS = ("row", "block", "block128", "bf16")  # run order within an (N, K)
DEFAULT_OPS = "row,block,bf16"

TORCH_SCALED, TORCH_MM = "torch._scaled_mm", "torch.mm"
FB_ROW, FB_GROUP, FB_BLOCK = ("fbgemm.f8f8bf16_rowwise", "fbgemm.f8f8bf16_groupwise",
                              "fbgemm.f8f8bf16_blockwise")
# Peers per op; the first one present is the reference for shapes too big for float32.
PEERS = {"row": (TORCH_SCALED, FB_ROW), "block": (TORCH_SCALED, FB_GROUP),
         "block128": (FB_BLOCK,), "bf16": (TORCH_MM,)}
FBGEMM_OF = {"row": FB_ROW, "block": FB_GROUP, "block128": FB_BLOCK}

TARGET_REPLAY_US = 1000.0
MIN_CALLS, MAX_CALLS = 3, 100
ROTATE_BUDGET = 2 << 30        # all weight copies of one graph together, at most
REF_MAX_MNK = 1 << 36          # float32 reference up to this M*N*K, a corner above
CHECK_ROWS, CHECK_COLS = 256, 1024
MAX_REL_ERR = pg.MAX_REL_ERR
# H100 SXM dense tensor-core peaks (TFLOP/s) by element bytes, and a copy rate:
# only to pick calls per graph and for --dry-run's estimate, never reported.
PEAK_TFLOPS = {1: 989.0, 2: 494.0}
DEFAULT_COPY_GBPS = 3000.0
DECODE_M, DECODE_WEIGHT_BYTES = 64, 16e6

# llmk.h: llmk_struct_id LLMK_STRUCT_GEMM_ROUTE, llmk_gemm_backend, llmk_gemm_source
STRUCT_GEMM_ROUTE = 11
BACKENDS = {1: "own", 2: "cublaslt"}
SOURCES = {0: "rule", 1: "table", 2: "desc", 3: "override", 4: "env"}

torch = None  # imported in run(), after the arguments are parsed
L = None      # llmk._lib
T = None      # llmk._tensor


class GemmRoute(ctypes.Structure):
    """llmk_gemm_route of include/llmk.h (size set to LLMK_GEMM_ROUTE_SIZE)."""
    _fields_ = [("size", ctypes.c_size_t), ("backend", ctypes.c_int), ("config", ctypes.c_int32),
                ("config_name", ctypes.c_char_p), ("splits", ctypes.c_int32), ("lt_algo", ctypes.c_int32),
                ("source", ctypes.c_int), ("tuned", ctypes.c_int32), ("lt_fallback", ctypes.c_int32)]


ROUTE_SIZE = GemmRoute.lt_fallback.offset + GemmRoute.lt_fallback.size


# ---------------------------------------------------------------------------
# Shapes and estimates (no torch)
# ---------------------------------------------------------------------------

def elem_bytes(key):
    return 2 if key == "bf16" else 1


def est_us(elem, m, n, k, gbps):
    """Roofline time of one call: the larger of the HBM floor and the tensor-core peak."""
    nbytes = (m * k + n * k) * elem + 2 * m * n
    return max(nbytes / (gbps * 1e3), 2.0 * m * n * k / (PEAK_TFLOPS[elem] * 1e6))


def choose_calls(est):
    """Calls per graph: one replay of about TARGET_REPLAY_US, MIN_CALLS to MAX_CALLS."""
    return max(MIN_CALLS, min(MAX_CALLS, int(math.ceil(TARGET_REPLAY_US / max(est, 1e-3)))))


def rough_seconds(key, m, n, k, replays):
    """A rough wall time for one (op, shape) on an H100, for --dry-run only."""
    est = est_us(elem_bytes(key), m, n, k, DEFAULT_COPY_GBPS)
    t = est * 1.4 + 3.0  # kernels short of the roofline, launch gaps
    calls = choose_calls(est)
    # per implementation: warm-up and check calls, warm-up and timed replays,
    # L2 flushes, capture (~40 us a call from Python) and instantiation
    one = t * (4 + calls * (2 + replays)) + replays * 100.0 + calls * 40.0 + 5000.0
    ref = 2.0 * m * n * k / 40e6 if m * n * k <= REF_MAX_MNK else 0.0  # float32 reference
    return ((1 + len(PEERS[key])) * one + ref) / 1e6 + 0.03  # inputs, allocator, route


def rough_setup_seconds(key, n, k):
    """Drawing, quantizing and copying one (N, K)'s weights (~100 bytes of traffic an element)."""
    return 0.05 + n * k * 100.0 / 2.5e12


def parse_pairs(text):
    return pc.parse_dims(text, "NxK", "8192x7168")


def parse_ms(text):
    ms = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if not item.isdigit() or int(item) <= 0:
            raise argparse.ArgumentTypeError("bad M %r: expected a positive integer" % item)
        ms.append(int(item))
    if not ms:
        raise argparse.ArgumentTypeError("no M given")
    return sorted(set(ms))  # ascending: the float32 reference's weights are dropped once M outgrows it


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Ops: row (gemm_fp8_rowwise), block (gemm_fp8_blockwise), block128 "
               "(gemm_fp8_block128), bf16 (gemm_bf16). Shapes: bench/gemm_shapes.py's general "
               "set, %d (N, K) pairs x M in {%s}." % (
                   len(gs.general_pairs()), ", ".join(str(m) for m in gs.GENERAL_M)))
    ap.add_argument("--out", help="JSON-lines output file (overwritten); needed unless "
                                  "--dry-run or --summary")
    ap.add_argument("--ops", default=DEFAULT_OPS,
                    help="comma-separated subset of row,block,block128,bf16 (default %s)" % DEFAULT_OPS)
    ap.add_argument("--split", default="all", choices=("all", "fit", "holdout"),
                    help="which half of the general set (default all)")
    ap.add_argument("--ms", type=parse_ms, default=list(gs.GENERAL_M),
                    help="comma-separated token counts M (default: GENERAL_M)")
    ap.add_argument("--pairs", type=parse_pairs, default=None,
                    help="comma-separated NxK subset of the general set (default: all of the split)")
    ap.add_argument("--time-limit", type=float, default=540.0,
                    help="seconds after which the remaining shapes are skipped (0: none)")
    ap.add_argument("--replays", type=int, default=5, help="timed graph replays per measurement")
    ap.add_argument("--copy-gib", type=float, default=1.0,
                    help="size of the bandwidth copy in GiB (0 skips it: hbm_floor_us is then null)")
    ap.add_argument("--commit", default=None,
                    help="llmk commit recorded in every row (default: LLMK_COMMIT, else git)")
    ap.add_argument("--no-fbgemm", action="store_true", help="leave FBGEMM out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dry-run", action="store_true",
                    help="print the shapes and counts (no torch, no GPU)")
    ap.add_argument("--summary", nargs="+", metavar="FILE",
                    help="summarize JSON-lines files of this script (no torch, no GPU)")
    ap.add_argument("--summary-json", action="store_true",
                    help="with --summary: one JSON object instead of the tables")
    args = ap.parse_args(argv)

    if args.summary_json and not args.summary:
        ap.error("--summary-json goes with --summary")
    if args.summary:
        return args
    keys = []
    long_names = {v: k for k, v in OP_NAMES.items()}
    for o in args.ops.split(","):
        o = o.strip()
        if not o:
            continue
        o = long_names.get(o, o)
        if o not in OP_NAMES:
            ap.error("unknown op %r (choose from %s)" % (o, ",".join(OP_KEYS)))
        keys.append(o)
    if not keys:
        ap.error("--ops is empty")
    args.ops = [k for k in OP_KEYS if k in keys]
    general = gs.general_pairs()
    if args.pairs is not None:
        unknown = [p for p in args.pairs if p not in general]
        if unknown:
            ap.error("not in the general set: %s" % ", ".join("%dx%d" % p for p in unknown))
    wanted = set(args.pairs) if args.pairs is not None else None
    picked = [nk for nk in general
              if (wanted is None or nk in wanted)
              and (args.split == "all" or (args.split == "holdout") == (nk in gs.HOLDOUT))]
    # N or K off a multiple of 128 (partial scale blocks) last: should a peer's kernel break
    # the CUDA context there, the rows of every other pair are already written
    args.pair_list = sorted(picked, key=lambda nk: bool(nk[0] % 128 or nk[1] % 128))
    if args.time_limit < 0 or args.replays < 1 or args.copy_gib < 0:
        ap.error("--time-limit and --copy-gib must be >= 0, --replays >= 1")
    if not args.dry_run and not args.out:
        ap.error("--out is required (unless --dry-run or --summary)")
    return args


def split_of(nk):
    return "holdout" if nk in gs.HOLDOUT else "fit"


def dry_run(args):
    general = gs.general_pairs()
    names = ", ".join("%s (%s)" % (k, OP_NAMES[k]) for k in args.ops)
    print("ops: %s   split: %s   M: %s" % (names, args.split, ",".join(str(m) for m in args.ms)))
    secs = 0.0
    for n, k in args.pair_list:
        for m in args.ms:
            print("  %dx%dx%d  %-7s  %s" % (m, n, k, split_of((n, k)), "; ".join(general[(n, k)])))
            secs += sum(rough_seconds(key, m, n, k, args.replays) for key in args.ops)
        secs += sum(rough_setup_seconds(key, n, k) for key in args.ops)
    n_shapes = len(args.pair_list) * len(args.ms)
    n_fit = sum(1 for nk in args.pair_list if nk not in gs.HOLDOUT) * len(args.ms)
    print("shapes: %d (%d (N, K) pairs x %d M; fit %d, holdout %d)"
          % (n_shapes, len(args.pair_list), len(args.ms), n_fit, n_shapes - n_fit))
    print("rows: %d (%d shapes x %d ops), plus the copy row" % (n_shapes * len(args.ops), n_shapes,
                                                               len(args.ops)))
    print("rough time on an H100: %.0f s (--time-limit %.0f s)" % (secs, args.time_limit))
    return 0


# ---------------------------------------------------------------------------
# Summary (no torch)
# ---------------------------------------------------------------------------

def geomean(values):
    v = [x for x in values if isinstance(x, (int, float)) and x > 0 and math.isfinite(x)]
    return (math.exp(sum(math.log(x) for x in v) / len(v)), len(v)) if v else (None, 0)


def shape_str(row):
    s = row.get("shape", {})
    return "%sx%sx%s" % (s.get("m"), s.get("n"), s.get("k"))


def read_rows(paths):
    def keep(row):
        return row.get("op") in OP_NAMES.values() and isinstance(row.get("shape"), dict)

    def key(row):
        s = row["shape"]
        return (row["op"], s.get("m"), s.get("n"), s.get("k"))

    return pc.read_jsonl_rows(paths, keep, key)


def group_stats(rows):
    xb, nb = geomean(r.get("x_best") for r in rows)
    xf, nf = geomean(r.get("x_fbgemm") for r in rows)
    return {"rows": len(rows), "x_best": rnd(xb), "n_x_best": nb, "x_fbgemm": rnd(xf), "n_x_fbgemm": nf}


def summarize(paths):
    rows = read_rows(paths)
    out = {"files": list(paths), "ops": {}}
    for op in OP_NAMES.values():
        rs = [r for r in rows if r.get("op") == op]
        if not rs:
            continue
        s = {"rows": len(rs),
             "timed": sum(1 for r in rs if isinstance(r.get("llmk_us"), (int, float))),
             "not_ok": sum(1 for r in rs if r.get("ok") is False),
             "groups": {}}
        groups = (("all", rs), ("fit", [r for r in rs if r.get("split") == "fit"]),
                  ("holdout", [r for r in rs if r.get("split") == "holdout"]),
                  ("tuned", [r for r in rs if r.get("tuned") is True]),
                  ("untuned", [r for r in rs if r.get("tuned") is False]))
        for name, g in groups:
            s["groups"][name] = group_stats(g)
        by_m = {}
        for r in rs:
            by_m.setdefault(r["shape"].get("m"), []).append(r)
        s["by_m"] = {str(m): group_stats(by_m[m]) for m in sorted(by_m, key=lambda v: (v is None, v))}
        withx = [r for r in rs if isinstance(r.get("x_best"), (int, float))]
        if withx:
            worst = min(withx, key=lambda r: r["x_best"])
            s["min_x_best"] = {"x_best": worst["x_best"], "shape": shape_str(worst),
                               "best_peer": worst.get("best_peer"), "split": worst.get("split")}
        s["below_0.95"] = sum(1 for r in withx if r["x_best"] < 0.95)
        s["below_0.95_shapes"] = [shape_str(r) for r in sorted(withx, key=lambda r: r["x_best"])
                                  if r["x_best"] < 0.95][:20]
        if op == "gemm_fp8_rowwise":
            dec = [r for r in rs if (r["shape"].get("m") or 1 << 30) <= DECODE_M
                   and (r.get("weight_bytes") or 0) >= DECODE_WEIGHT_BYTES
                   and isinstance(r.get("frac_roof"), (int, float))]
            d = {"rows": len(dec)}
            if dec:
                lo = min(dec, key=lambda r: r["frac_roof"])
                d.update(mean=rnd(sum(r["frac_roof"] for r in dec) / len(dec)),
                         min=lo["frac_roof"], min_shape=shape_str(lo))
            s["decode_frac_roof"] = d
        out["ops"][op] = s
    return out


def sig3(v):
    """v to 3 significant digits; None where it is not a finite number (JSON has no NaN)."""
    return float("%.3g" % v) if v is not None and math.isfinite(v) else None


def fmt(v, spec="%.3f"):
    return "-" if v is None else spec % v


def print_summary(summ):
    if not summ["ops"]:
        print("no GEMM rows in %s" % ", ".join(summ["files"]))
        return
    for op, s in summ["ops"].items():
        print("%s: %d rows (%d timed, %d not ok)" % (op, s["rows"], s["timed"], s["not_ok"]))
        print("  %-10s %6s %9s %10s   (geometric means; above 1: llmk faster)" % (
            "", "rows", "x_best", "x_fbgemm"))
        for name, g in list(s["groups"].items()) + [("M=" + m, g) for m, g in s["by_m"].items()]:
            print("  %-10s %6d %9s %10s" % (name, g["rows"], fmt(g["x_best"]), fmt(g["x_fbgemm"])))
        mb = s.get("min_x_best")
        if mb:
            print("  min x_best %.3f at %s (%s, best peer %s)" % (mb["x_best"], mb["shape"], mb["split"],
                                                                 mb["best_peer"]))
        print("  x_best < 0.95: %d rows%s" % (s["below_0.95"], (": " + ", ".join(s["below_0.95_shapes"]))
                                               if s["below_0.95_shapes"] else ""))
        d = s.get("decode_frac_roof")
        if d is not None:
            if d["rows"]:
                print("  decode (M <= %d, weights >= %.0f MB): frac_roof mean %.3f, min %.3f at %s (%d rows)"
                      % (DECODE_M, DECODE_WEIGHT_BYTES / 1e6, d["mean"], d["min"], d["min_shape"], d["rows"]))
            else:
                print("  decode (M <= %d, weights >= %.0f MB): no rows with frac_roof"
                      % (DECODE_M, DECODE_WEIGHT_BYTES / 1e6))
        print()


# ---------------------------------------------------------------------------
# Operands and calls per op (torch from here on)
# ---------------------------------------------------------------------------

def rows_padded(grid, mult=4):
    """grid [R, C] as a view whose row stride is C rounded up to mult (the pad zero):
    the weight-scale layout cuBLASLt reads, so llmk repacks nothing."""
    r, c = grid.shape
    buf = torch.zeros(r, pg.cdiv(c, mult) * mult, device=grid.device, dtype=grid.dtype)
    buf[:, :c] = grid
    return buf[:, :c]


def clone_like(t):
    """A copy of t with t's strides (a row-padded grid keeps its zero padding)."""
    if t.dim() == 2 and t.stride(1) == 1 and t.stride(0) > t.shape[1]:
        buf = torch.zeros(t.shape[0], t.stride(0), device=t.device, dtype=t.dtype)
        buf[:, :t.shape[1]] = t
        return buf[:, :t.shape[1]]
    return torch.empty_strided(t.shape, t.stride(), device=t.device, dtype=t.dtype).copy_(t)


class Case:
    """One op at one (N, K): the weight side (self.w, built once), the activation
    side per M (inputs), the calls (impls: llmk first), the dequantized operands
    for the float32 reference and the operands as llmk's C API takes them
    (llmk_args, for the forced-cuBLASLt probe)."""
    key = None
    x_blocks128 = False

    def __init__(self, w, fb, state):
        self.n, self.k = w.shape
        self.fb = fb
        self.state = state
        self.wdeq = None

    @property
    def op(self):
        return OP_NAMES[self.key]

    def weight_bytes(self):
        return self.n * self.k * elem_bytes(self.key)

    def dequant_w_cached(self):
        if self.wdeq is None:
            self.wdeq = self.dequant_w()
        return self.wdeq

    def first_call(self, name, fn, xs, ws):
        y = fn(xs, ws)
        torch.cuda.synchronize()
        return y


class RowCase(Case):
    key = "row"

    def __init__(self, w, fb, state):
        super().__init__(w, fb, state)
        wq, sw = pg.quantize_rows(w)            # [N, K], [N, 1]
        self.w = {"wq": wq, "sw": sw.reshape(-1)}

    def inputs(self, x):
        xq, sx = pg.quantize_rows(x)
        return {"xq": xq, "sx": sx.reshape(-1)}

    def route_desc(self):
        return L.E4M3, L.SCALING_ROW, L.ACCUM_FAST

    def llmk_args(self, xs, ws):
        return xs["xq"], ws["wq"], xs["sx"], ws["sw"]

    def impls(self):
        out = [("llmk", lambda xs, ws: torch.ops.llmk.f8f8bf16_rowwise(
                    xs["xq"], ws["wq"], xs["sx"], ws["sw"], None, True)),
               (TORCH_SCALED, lambda xs, ws: pg.scaled_mm(
                   xs["xq"], ws["wq"], xs["sx"].view(-1, 1), ws["sw"].view(1, -1)))]
        if FB_ROW in self.fb:
            out.append((FB_ROW, lambda xs, ws: torch.ops.fbgemm.f8f8bf16_rowwise(
                xs["xq"], ws["wq"], xs["sx"], ws["sw"], use_fast_accum=True)))
        return out

    def dequant_w(self, r=None):
        return self.w["wq"][:r].float() * self.w["sw"][:r].view(-1, 1)

    def dequant_x(self, xs, r=None):
        return xs["xq"][:r].float() * xs["sx"][:r].view(-1, 1)


def dequant_w_blocks(case, r=None):
    """The first r rows (all: None) of W with its 128x128 block scales, in float32."""
    r = case.n if r is None else r
    return case.w["wq"][:r].float() * pg.expand_scales(case.w["sw"][:pg.cdiv(r, pg.BLOCK)], pg.BLOCK, r, case.k)


class BlockCase(Case):
    key = "block"

    def __init__(self, w, fb, state):
        super().__init__(w, fb, state)
        wq, sw = pg.quantize_blocks(w)          # [N, K], [Nb, Kb] row-major
        self.kb = sw.shape[1]
        self.w = {"wq": wq, "sw": sw, "sw_pad": rows_padded(sw), "sw_kn": sw.t().contiguous()}

    def inputs(self, x):
        xq, sx = pg.quantize_groups(x)          # [M, K], [M, Kb] row-major
        sa, _ = pg.blockwise_scales(sx, self.w["sw"], 0)  # [M, Kb] strides (1, M)
        return {"xq": xq, "sx": sx, "sa": sa}

    def route_desc(self):
        return L.E4M3, L.SCALING_BLOCK, L.ACCUM_DEFAULT

    def llmk_args(self, xs, ws):
        return xs["xq"], ws["wq"], xs["sa"], ws["sw_pad"]

    def torch_grid(self, ws):
        # torch's accepted weight-grid form (bench/peer_gemm.py BLOCK_W_FORMS), learnt once
        return ws["sw_pad"] if self.kb % 4 and self.state.block_w_form == 1 else ws["sw"]

    def impls(self):
        out = [("llmk", lambda xs, ws: torch.ops.llmk.f8f8bf16_groupwise(
                    xs["xq"], ws["wq"], xs["sa"], ws["sw_pad"])),
               (TORCH_SCALED, lambda xs, ws: pg.scaled_mm_blockwise(
                   xs["xq"], ws["wq"], xs["sa"], self.torch_grid(ws).t()))]
        if FB_GROUP in self.fb:
            out.append((FB_GROUP, lambda xs, ws: torch.ops.fbgemm.f8f8bf16_groupwise(
                xs["xq"], ws["wq"], xs["sa"].t(), ws["sw_kn"])))
        return out

    def first_call(self, name, fn, xs, ws):
        if name != TORCH_SCALED or self.kb % 4 == 0 or self.state.block_w_form is not None:
            return super().first_call(name, fn, xs, ws)
        for form in range(len(pg.BLOCK_W_FORMS)):
            self.state.block_w_form = form
            try:
                return super().first_call(name, fn, xs, ws)
            except RuntimeError as e:
                self.state.block_w_form = None  # learnt only from a form that passed
                if (pg.is_fatal(e) or form == len(pg.BLOCK_W_FORMS) - 1
                        or "invalid scaling configuration" not in str(e).lower()):
                    raise
                note("_scaled_mm rejected the 128x128 weight scales with %s (%s)"
                     % (pg.BLOCK_W_FORMS[form], brief_exc(e)))
            finally:
                if self.state.block_w_form is not None:
                    note("torch._scaled_mm takes the 128x128 weight scales with %s"
                         % pg.BLOCK_W_FORMS[self.state.block_w_form])

    def dequant_w(self, r=None):
        return dequant_w_blocks(self, r)

    def dequant_x(self, xs, r=None):
        r = xs["xq"].shape[0] if r is None else r
        return xs["xq"][:r].float() * pg.expand_scales(xs["sx"][:r], 1, r, self.k)


class Block128Case(Case):
    key = "block128"
    x_blocks128 = True

    def __init__(self, w, fb, state):
        super().__init__(w, fb, state)
        wq, sw = pg.quantize_blocks(w)          # [N, K], [Nb, Kb] row-major
        self.w = {"wq": wq, "sw": sw}

    def inputs(self, x):
        xq, sx = pg.quantize_blocks(x)          # [M, K], [ceil(M/128), Kb] row-major
        return {"xq": xq, "sx": sx}

    def route_desc(self):
        return L.E4M3, L.SCALING_BLOCK, L.ACCUM_DEFAULT

    def llmk_args(self, xs, ws):
        return xs["xq"], ws["wq"], xs["sx"], ws["sw"]

    def impls(self):
        out = [("llmk", lambda xs, ws: torch.ops.llmk.f8f8bf16_blockwise(
            xs["xq"], ws["wq"], xs["sx"], ws["sw"], 128, 128, 128))]
        if FB_BLOCK in self.fb:
            out.append((FB_BLOCK, lambda xs, ws: torch.ops.fbgemm.f8f8bf16_blockwise(
                xs["xq"], ws["wq"], xs["sx"], ws["sw"], 128, 128, 128)))
        return out

    def dequant_w(self, r=None):
        return dequant_w_blocks(self, r)

    def dequant_x(self, xs, r=None):
        r = xs["xq"].shape[0] if r is None else r
        return xs["xq"][:r].float() * pg.expand_scales(xs["sx"][:pg.cdiv(r, pg.BLOCK)], pg.BLOCK, r, self.k)


class Bf16Case(Case):
    key = "bf16"

    def __init__(self, w, fb, state):
        super().__init__(w, fb, state)
        self.w = {"w": w}

    def inputs(self, x):
        return {"x": x}

    def route_desc(self):
        return L.BF16, L.SCALING_TENSOR, L.ACCUM_DEFAULT

    def llmk_args(self, xs, ws):
        return xs["x"], ws["w"]

    def impls(self):
        return [("llmk", lambda xs, ws: torch.ops.llmk.linear_bf16(xs["x"], ws["w"], None)),
                (TORCH_MM, lambda xs, ws: torch.mm(xs["x"], ws["w"].t()))]

    def dequant_w(self, r=None):
        return self.w["w"][:r].float()

    def dequant_x(self, xs, r=None):
        return xs["x"][:r].float()


CASES = {"row": RowCase, "block": BlockCase, "block128": Block128Case, "bf16": Bf16Case}


def weight_sets(case):
    """The weight-side tensors of each rotated copy (the first the originals)."""
    nbytes = case.weight_bytes()
    most = max(1, min(pg.GRAPH_MAX_COPIES, ROTATE_BUDGET // max(nbytes, 1)))
    n = pc.rotation_copies(nbytes, pg.GRAPH_ROTATE_BYTES, most)
    return [case.w] + [{name: clone_like(t) for name, t in case.w.items()} for _ in range(n - 1)]


# ---------------------------------------------------------------------------
# llmk's route
# ---------------------------------------------------------------------------

class Router:
    """llmk_gemm_choice through ctypes: what llmk's dispatcher runs per shape."""

    def __init__(self):
        self.fn = None
        try:
            have = L.lib.llmk_struct_size(STRUCT_GEMM_ROUTE)
            if have != ROUTE_SIZE:
                raise RuntimeError("llmk_gemm_route is %d bytes in %s but %d in this script's mirror"
                                   % (have, L.library_path, ROUTE_SIZE))
            fn = L.lib["llmk_gemm_choice"]  # a function object of our own: argtypes set here only
            fn.argtypes = [ctypes.c_void_p, ctypes.POINTER(L.GemmDesc), ctypes.c_int, ctypes.c_int64,
                           ctypes.c_int64, ctypes.c_int64, ctypes.POINTER(GemmRoute)]
            fn.restype = ctypes.c_int
            self.fn = fn
        except Exception as e:  # noqa: BLE001 - the rows go on without the route
            note("no route information: %s" % brief_exc(e), err=True)

    def route(self, case, m, n, k, xs, ws, what):
        if self.fn is None:
            return {}
        try:
            in_dtype, scaling, accum = case.route_desc()
            d = L.GemmDesc(scaling, accum, L.GEMM_AUTO, 1)
            r = GemmRoute()
            r.size, r.backend, r.config, r.source = ROUTE_SIZE, 0, -1, 0
            h = L.handle(torch.cuda.current_device())
            L.check("llmk_gemm_choice", self.fn(h, ctypes.byref(d), in_dtype, m, n, k, ctypes.byref(r)))
        except Exception as e:  # noqa: BLE001 - report and go on
            note("%s: llmk_gemm_choice failed (%s)" % (what, brief_exc(e)), err=True)
            return {}
        cfg = r.config_name.decode() if r.config_name else None
        backend = BACKENDS.get(r.backend, str(r.backend))
        info = {"tuned": bool(r.tuned), "backend": backend,
                "config": cfg if backend == "own" else "cublaslt:algo%d" % r.lt_algo,
                "splits": int(r.splits) if backend == "own" else None,
                "source": SOURCES.get(r.source, str(r.source)),
                "lt_fallback": bool(r.lt_fallback)}
        if backend == "cublaslt" and r.lt_fallback:
            if case.x_blocks128:
                refused, why = True, "cuBLASLt has no 128x128 activation blocks"
            else:
                refused, why = lt_refuses(case, xs, ws, m, n, what), "cuBLASLt refused the shape"
            if refused:
                info.update(backend="own", config=cfg, splits=int(r.splits),
                            route_note=why + ": the own configuration runs")
        return info


def lt_refuses(case, xs, ws, m, n, what):
    """Whether a forced-cuBLASLt llmk call of these operands answers NOT_SUPPORTED."""
    try:
        args = case.llmk_args(xs, ws)
        y = torch.empty(m, n, dtype=torch.bfloat16, device=args[0].device)
        h, st = T.context("bench", *args)
        if len(args) == 2:
            x, w = args
            L.call("llmk_gemm_bf16", h, L.GEMM_CUBLASLT, ctypes.byref(T.desc(x, "x")),
                   ctypes.byref(T.desc(w, "weight")), None, ctypes.byref(T.desc(y, "output")), st)
        else:
            xq, wq, sx, sw = args
            _, scaling, accum = case.route_desc()
            d = L.GemmDesc(scaling, accum, L.GEMM_CUBLASLT, 1)
            L.call("llmk_gemm_fp8", h, ctypes.byref(d), ctypes.byref(T.desc(xq, "XQ")),
                   ctypes.byref(T.desc(wq, "WQ")), ctypes.byref(T.desc(sx, "x_scale")),
                   ctypes.byref(T.desc(sw, "w_scale")), None, ctypes.byref(T.desc(y, "output")), st)
        torch.cuda.synchronize()
    except L.LlmkNotSupported:
        return True
    except Exception as e:  # noqa: BLE001 - keep the route as llmk_gemm_choice gave it
        if pg.is_fatal(e) or not context_ok():
            raise ContextBroken("%s: cuBLASLt probe: %s" % (what, brief_exc(e)))
        note("%s: cuBLASLt probe failed (%s)" % (what, brief_exc(e)), err=True)
    return False


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

class Output(pc.RowWriter):
    header = "%-17s %-20s %-30s %9s %9s %-26s %7s %7s %6s %8s" % (
        "op", "shape", "llmk route", "llmk us", "peer us", "best peer", "x_best", "x_fb", "%roof", "rel_err")

    def copy_row(self, m, k, us, reps, extra):
        gbps = 2 * (2 * m * k) / (us * 1e-6) / 1e9  # bf16 read + written
        row = {"op": "copy", "device": self.device, "shape": {"m": m, "k": k}, "dtype": "bf16",
               "us": rnd(us), "gbps": rnd(gbps, 1), "reps": reps}
        row.update(extra)
        self._write(row)
        print("%-17s %-20s %-30s %9.2f %9s %-26s %7s %7s %6s %8s" % (
            "copy", "%dx%d" % (m, k), "%.1f GB/s" % gbps, us, "-", "-", "-", "-", "-", "-"))
        sys.stdout.flush()
        return gbps

    def gemm_row(self, row):
        self._write(row)
        route = row.get("config") or row.get("backend") or "-"
        if row.get("backend") == "own" and (row.get("splits") or 1) > 1:
            route += ":k%d" % row["splits"]
        if row.get("tuned"):
            route += " (t)"
        print("%-17s %-20s %-30s %9s %9s %-26s %7s %7s %6s %8s%s" % (
            row["op"], shape_str(row), route[:30], fmt(row.get("llmk_us"), "%.2f"),
            fmt(row.get("best_peer_us"), "%.2f"), row.get("best_peer") or "-",
            fmt(row.get("x_best")), fmt(row.get("x_fbgemm")), pc.pct(row.get("frac_roof")),
            fmt(row.get("rel_err"), "%.2e"), "" if row.get("ok") else "  NOT OK"))
        sys.stdout.flush()


# ---------------------------------------------------------------------------
# One shape
# ---------------------------------------------------------------------------

def rel_err(y, ref):
    """||y - ref||_F / ||ref||_F, in row chunks (no full float32 copies of big outputs)."""
    rows = max(1, (1 << 26) // max(1, y.shape[1]))
    num = den = 0.0
    for i in range(0, y.shape[0], rows):
        r = ref[i:i + rows].float()
        den += torch.linalg.vector_norm(r).item() ** 2
        num += torch.linalg.vector_norm(y[i:i + rows].float() - r).item() ** 2
        del r
    return math.sqrt(num / den) if den > 0 else float("inf")


def fail(what, name, e):
    """Note a failed call; ContextBroken where the context did not survive it."""
    if pg.is_fatal(e) or not context_ok():
        raise ContextBroken("%s: %s: %s" % (what, name, brief_exc(e)))
    note("%s: %s failed (%s)" % (what, name, brief_exc(e)), err=True)
    torch.cuda.empty_cache()
    return brief_exc(e)


def run_shape(case, wsets, m, timer, out, router, ctx):
    n, k = case.n, case.k
    what = "%s %dx%dx%d" % (case.op, m, n, k)
    xs = case.inputs(pg.randn_rows(m, k))
    ws0 = wsets[0]
    impls = case.impls()
    fns = dict(impls)
    route = router.route(case, m, n, k, xs, ws0, what)
    failed, peer_err, outputs_ok = {}, {}, {}

    # Correctness: every implementation against the float32 product of the
    # dequantized operands; above REF_MAX_MNK on a corner of the output (the
    # first CHECK_ROWS x CHECK_COLS), which still reads every K, so no peer
    # is ever the reference (torch's block-wise _scaled_mm is wrong on some
    # shapes whose K / 128 is not a multiple of 4).
    small = m * n * k <= REF_MAX_MNK
    rows, cols = (None, None) if small else (min(m, CHECK_ROWS), min(n, CHECK_COLS))
    ref = torch.mm(case.dequant_x(xs, rows), case.dequant_w_cached().t() if small else case.dequant_w(cols).t())
    check = "fp32" if small else "fp32 corner %dx%d" % (ref.shape[0], ref.shape[1])
    llmk_err = None
    for name, fn in impls:
        try:
            y = case.first_call(name, fn, xs, ws0)
            err = rel_err(y if small else y[:rows, :cols], ref)
            del y
        except Exception as e:  # noqa: BLE001 - report and go on
            failed[name] = fail(what, name, e)
            continue
        if name == "llmk":
            llmk_err = err
        else:
            peer_err[name] = err
        outputs_ok[name] = err < MAX_REL_ERR
        if not outputs_ok[name]:
            note("%s: %s's output is WRONG: relative Frobenius error %.3g %s (limit %g)%s"
                 % (what, name, err, "vs the float32 reference" if check == "fp32" else "vs the float32 reference on its " + check[5:], MAX_REL_ERR,
                    "" if name == "llmk" else "; left out of the peers"), err=True)
    del ref
    if not small:
        case.wdeq = None  # larger M only grow: the cached float32 weights are not needed again

    # Timing: one graph per implementation, the same calls for all.
    calls = choose_calls(est_us(elem_bytes(case.key), m, n, k, out.copy_gbps or DEFAULT_COPY_GBPS))
    times = {}
    for name, fn in impls:
        if name in failed:
            continue
        try:
            graph_fns = [lambda ws=ws, fn=fn: fn(xs, ws) for ws in wsets]
            times[name], _ = timer.graph(graph_fns, calls)
        except Exception as e:  # noqa: BLE001 - report and go on
            failed[name] = fail(what, name + " (graph)", e)

    peers = {p: rnd(times[p]) for p in PEERS[case.key] if p in times and outputs_ok.get(p)}
    bad = {p: {"us": rnd(times.get(p)), "rel_err": sig3(peer_err[p])}
           for p in PEERS[case.key] if p in peer_err and not outputs_ok.get(p)}
    llmk_us = times.get("llmk")
    best = min(peers, key=peers.get) if peers else None
    fb_name = FBGEMM_OF.get(case.key)
    eb = elem_bytes(case.key)
    floor = ((m * k + n * k) * eb + 2 * m * n) / (out.copy_gbps * 1e3) if out.copy_gbps else None
    llmk_ok = llmk_err is not None and math.isfinite(llmk_err) and llmk_err < MAX_REL_ERR
    row = {"op": case.op, "device": out.device, "shape": {"m": m, "n": n, "k": k},
           "layers": ctx["layers"], "split": ctx["split"],
           "tuned": route.get("tuned"), "backend": route.get("backend"), "config": route.get("config"),
           "splits": route.get("splits"), "source": route.get("source"),
           "llmk_us": rnd(llmk_us), "peers": peers, "best_peer": best,
           "best_peer_us": peers.get(best) if best else None,
           "x_best": rnd(peers[best] / llmk_us) if best and llmk_us else None,
           "x_fbgemm": rnd(peers[fb_name] / llmk_us) if fb_name in peers and llmk_us else None,
           "weight_bytes": n * k * eb, "hbm_floor_us": rnd(floor),
           "frac_roof": rnd(floor / llmk_us) if floor and llmk_us else None,
           "rel_err": sig3(llmk_err),
           "ok": bool(llmk_ok and llmk_us is not None),
           "commit": ctx["commit"], "check": check, "lt_fallback": route.get("lt_fallback"),
           "calls": calls, "weight_copies": min(len(wsets), calls), "replays": timer.graph_reps,
           "peer_rel_err": {p: sig3(e) for p, e in peer_err.items()}}
    if "route_note" in route:
        row["route_note"] = route["route_note"]
    missing = {p: "not available" for p in PEERS[case.key] if p not in fns}
    missing.update({p: failed[p] for p in PEERS[case.key] if p in failed})
    if missing:
        row["peers_failed"] = missing
    if bad:
        row["peers_bad"] = bad
    if "llmk" in failed:
        row["error"] = failed["llmk"]
    # the results-file keys bench/gen_table.py and plot_results.py read
    # (the best peer as the row's peer, the roofline fraction)
    row.update({"peer": best, "peer_us": row["best_peer_us"], "ratio": row["x_best"],
                "dtype": "bf16" if case.key == "bf16" else "e4m3", "frac_roofline": row["frac_roof"]})
    out.gemm_row(row)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def load_fbgemm(disabled, names=None):
    """(set of the FBGEMM peer names present among `names`, "fbgemm.<op>",
    default this script's; version or None). Needs the module's torch set."""
    names = names or (FB_ROW, FB_GROUP, FB_BLOCK)
    if disabled:
        note("FBGEMM left out (--no-fbgemm)")
        return set(), None
    try:
        import fbgemm_gpu.experimental.gen_ai  # noqa: F401 - registers torch.ops.fbgemm.*
        import fbgemm_gpu
        version = str(getattr(fbgemm_gpu, "__version__", "unknown"))
    except Exception as e:  # noqa: BLE001 - FBGEMM is optional
        note("FBGEMM is missing, its peers are skipped (%s)" % brief_exc(e), err=True)
        return set(), None
    have = set()
    for name in names:
        if hasattr(torch.ops.fbgemm, name.split(".", 1)[1]):
            have.add(name)
        else:
            note("FBGEMM %s has no %s: that peer is skipped" % (version, name), err=True)
    return have, version


def commit_of(args):
    if args.commit:
        return args.commit
    if os.environ.get("LLMK_COMMIT"):
        return os.environ["LLMK_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except Exception:  # noqa: BLE001 - no git on the machine
        return "unknown"


def run(args):
    global torch, L, T
    torch = pc.load_torch()
    if torch is None:
        return 1
    pg.torch = torch  # bench/peer_gemm.py's helpers use their module's torch
    cap = torch.cuda.get_device_capability()
    if cap[0] != 9:
        print("error: compute capability %d.%d: llmk's GEMMs run on Hopper (9.x) only" % cap, file=sys.stderr)
        return 1
    if not hasattr(torch, "float8_e4m3fn") or not hasattr(torch, "_scaled_mm"):
        print("error: this torch has no float8_e4m3fn / _scaled_mm", file=sys.stderr)
        return 1
    sys.path.insert(0, os.path.join(ROOT, "python"))
    try:
        import llmk  # noqa: F401 - registers torch.ops.llmk.*
        from llmk import _lib, _tensor
    except Exception as e:  # noqa: BLE001 - nothing to time without llmk
        print("error: cannot load llmk (%s); build it with `make` or set LLMK_LIBRARY" % brief_exc(e),
              file=sys.stderr)
        return 1
    L, T = _lib, _tensor
    fb, fb_version = load_fbgemm(args.no_fbgemm)

    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = False  # a true float32 reference
    device = torch.cuda.get_device_name()
    peer_version = pc.peer_version(triton=False) + (", fbgemm_gpu " + fb_version if fb_version else "")
    commit = commit_of(args)
    print("device: %s   %s   cuda %s   llmk %s (%s)   commit %s" % (
        device, peer_version, torch.version.cuda, llmk.__version__, L.library_path, commit))
    sys.stdout.flush()

    # handle creation allocates llmk's workspace: before any capture
    L.handle(torch.cuda.current_device())
    router = Router()
    timer = pc.Timer(20, 3, MAX_CALLS, args.replays, None)
    out = Output(args.out, device, peer_version)
    general = gs.general_pairs()
    state = pg.State()
    planned = [(nk, key, m) for nk in args.pair_list for key in args.ops for m in args.ms]
    done = 0
    t_start = time.time()
    status = 0

    def time_up():
        if args.time_limit and time.time() - t_start > args.time_limit:
            (n, k), key, m = planned[done]
            note("time limit (%.0f s) reached: %d of %d rows skipped, from %s %dx%dx%d on"
                 % (args.time_limit, len(planned) - done, len(planned), OP_NAMES[key], m, n, k), err=True)
            return True
        return False

    try:
        if args.copy_gib > 0:
            try:
                m, k, us, reps = pc.time_large_copy(timer, args.copy_gib)
                out.copy_gbps = out.copy_row(m, k, us, reps, {
                    "commit": commit, "llmk_library": L.library_path, "torch": torch.__version__,
                    "cuda": torch.version.cuda, "fbgemm_gpu": fb_version})
            except Exception as e:  # noqa: BLE001 - report and go on
                if pg.is_fatal(e):
                    raise ContextBroken("copy: " + brief_exc(e))
                note("copy failed: no hbm_floor_us (%s)" % brief_exc(e), err=True)
            torch.cuda.empty_cache()
        stop = False
        for (n, k) in args.pair_list:
            if stop or time_up():
                break
            ctx = {"layers": general[(n, k)], "split": split_of((n, k)), "commit": commit}
            w = pg.randn_rows(n, k)
            for key in args.ops:
                if stop or time_up():
                    stop = True
                    break
                case = wsets = None
                try:
                    case = CASES[key](w, fb, state)
                    wsets = weight_sets(case)
                    for m in args.ms:
                        if time_up():
                            stop = True
                            break
                        try:
                            run_shape(case, wsets, m, timer, out, router, ctx)
                        except ContextBroken:
                            raise
                        except Exception as e:  # noqa: BLE001 - e.g. out of memory for the inputs
                            fail("%s %dx%dx%d" % (OP_NAMES[key], m, n, k), "shape", e)
                        done += 1
                        torch.cuda.empty_cache()
                except ContextBroken:
                    raise
                except Exception as e:  # noqa: BLE001 - the weights of this op failed
                    fail("%s %dx%d" % (OP_NAMES[key], n, k), "weights", e)
                    done = planned.index(((n, k), key, args.ms[-1])) + 1
                finally:
                    case = wsets = None
                    torch.cuda.empty_cache()
            w = None
            torch.cuda.empty_cache()
    except ContextBroken as e:
        note("the CUDA context is broken, stopping (%s)" % e, err=True)
        status = 3
    finally:
        out.close()
    print("wrote %s: %d of %d (op, shape) runs (%.0f s)" % (args.out, done, len(planned),
                                                          time.time() - t_start))
    return status


def main(argv=None):
    return pc.main_modes(parse_args(argv), summarize, print_summary, dry_run, run)


if __name__ == "__main__":
    sys.exit(main())
