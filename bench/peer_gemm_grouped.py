#!/usr/bin/env python3
"""Time llmk's grouped (mixture-of-experts) GEMMs against FBGEMM and PyTorch, all under CUDA graphs.

Usage (on the GPU machine, from the repository root, after `make -j16 all`;
FBGEMM's gen_ai wheel, if any, installed into .site):

    PYTHONPATH=.site:python python3 bench/peer_gemm_grouped.py --out grouped.jsonl
    PYTHONPATH=.site:python python3 bench/peer_gemm_grouped.py --models deepseek-v3 \\
        --ops row,block --out grouped_ds.jsonl
    python3 bench/peer_gemm_grouped.py --dry-run                  # the rows; no torch, no GPU
    python3 bench/peer_gemm_grouped.py --summary grouped*.jsonl    # the tables; no torch, no GPU

Shapes: the expert MLPs of one GPU's share of four MoE models (--models),
both projections (--which): gate_up W [G, 2I, H] and down W [G, H, I], as
[G, N, K], Y[rows of group g] = X[rows of g] @ W[g]^T, bf16 output.

  model            G (this GPU)   experts E   top-k   gate_up (N, K)   down (N, K)
  deepseek-v3      32             256         8       (4096, 7168)     (7168, 2048)
  llama4-maverick  128            128         1       (16384, 5120)    (5120, 8192)
  llama4-scout     16             16          1       (16384, 5120)    (5120, 8192)
  mixtral-8x7b     8              8           2       (28672, 4096)    (4096, 14336)

Routing: B tokens (--batches, default 1,8,32,128,512,4096,16384) each pick
top-k distinct experts of E (Gumbel top-k from a seeded CPU
torch.Generator, the seed derived from --seed, the model, B and the router).
DeepSeek-V3 routes over all 256 experts and this GPU owns experts 0..31:
rows routed elsewhere are dropped, so T is about B * 8 * 32 / 256 (a draw
that leaves no row here, likely at B = 1, is skipped with a note). The
group sizes are the local experts' row counts; T = their sum, rows sorted
by group (the stacked layout). Routers (--routing):
  uniform  every expert equally likely;
  skewed   a seeded random 10% of the experts (at least one) share half the
           probability, the rest the other half: 50% of the rows go to 10%
           of the experts (exactly at top-1; sampling without replacement
           makes it a little less at top-k > 1).
Every row records the sizes (group_sizes), active_groups (experts with at
least one row), min_group_rows (over the active ones) and max_group_rows.
The same routing and the same X (pg.randn_rows, seeded per row) serve
gate_up and down and every op; W is drawn per expert (seeded per model and
projection), identical for every op.

Ops (--ops, default all) and what runs, llmk first:

  row     gemm_grouped_fp8_rowwise: stacked FP8 e4m3, one scale per row of X
          and of each W[g], fast accumulation.
            llmk    torch.ops.llmk.f8f8bf16_rowwise_grouped_stacked(xq [T, K],
                    wq [G, N, K], x_scale [T], w_scale [G, N], M_sizes int32 [G])
            FBGEMM  torch.ops.fbgemm.f8f8bf16_rowwise_grouped_stacked(xq, wq,
                    x_scale [T], w_scale [G, N], M_sizes int64 [G])
            torch   torch._scaled_grouped_mm(xq, wq.transpose(-2, -1),
                    scale_a=x_scale [T], scale_b=w_scale [G, N], offs=int32
                    cumulative group ends [G], out_dtype=bf16, use_fast_accum=True)
  masked  gemm_grouped_fp8_rowwise_masked: the same math in the masked
          ("dynamic") layout, X [G, M_max, K] with group g's rows first in
          X[g], M_max = the largest group rounded up to 8; only at B <=
          --masked-max-b (128), the decode layout.
            llmk    torch.ops.llmk.f8f8bf16_rowwise_grouped_dynamic(xq3, wq,
                    x_scale [G, M_max], w_scale [G, N], zero_start_index_M
                    int32 [G], True)
            FBGEMM  torch.ops.fbgemm.f8f8bf16_rowwise_grouped_dynamic(xq3, wq,
                    x_scale [G, M_max], w_scale, zero_start_index_M int64,
                    zeroing_output_tensor=True)
            torch   torch._scaled_grouped_mm(xq3, wq.transpose(-2, -1),
                    scale_a [G, M_max], scale_b [G, N], out_dtype=bf16,
                    use_fast_accum=True): the 3-D x 3-D batched form, no
                    offsets, so it computes the padding rows too
          llmk's stacked op on the same rows is timed as well (llmk_stacked_us;
          not a peer): x_stacked = llmk_stacked_us / llmk_us; and llmk's
          masked op without zeroing the output (llmk_nozero_us), the kernel
          against the kernel: x_stacked_kernel = llmk_stacked_us /
          llmk_nozero_us (zeroing writes all G x M_max x N outputs first).
  block   gemm_grouped_fp8_blockwise: the DeepSeek-V3 recipe per expert, 1x128
          groups of X, 128x128 blocks of each W[g], fp32 accumulation (Kb =
          ceil(K/128), Nb = ceil(N/128)). DeepSeek-V3 only unless --block-all.
            llmk    torch.ops.llmk.f8f8bf16_groupwise_grouped(xq, wq, x_scale
                    [T, Kb] row-major, w_scale [G, Nb, Kb] row-major, M_sizes int32)
            FBGEMM  torch.ops.fbgemm.f8f8bf16_groupwise_grouped(xq, wq,
                    x_scale, w_scale, M_sizes int64), scales as FBGEMM's
                    FP8StackedGroupwiseGroupedGemm prepares them: x_scale per
                    group M-major (group g's [Kb, s_g] block, contiguous, at
                    element o_g * Kb: what quantize_fp8_group(x, m_sizes=...)
                    writes), w_scale [G, Kb, Nb] contiguous (quantize_fp8_block(
                    k_major=False) per expert). Should that output be wrong, the
                    K-major forms ([T, Kb], [G, Nb, Kb]) are tried once and the
                    form that passes is kept for the run (a note says which).
            torch has no block-scaled grouped GEMM on Hopper (torch's
            scaled_grouped_mm takes tensor- and row-wise FP8 there): no torch peer.
  bf16    gemm_grouped_bf16: stacked BF16, fp32 accumulation.
            llmk    torch.ops.llmk.bf16bf16bf16_grouped_stacked(x, w, M_sizes int32)
            FBGEMM  torch.ops.fbgemm.bf16bf16bf16_grouped_stacked(x, w, M_sizes int64)
            torch   torch._grouped_mm(x, w.transpose(-2, -1), offs=int32
                    cumulative group ends, out_dtype=bf16)

FBGEMM (fbgemm_gpu_genai 1.6.0). Schemas, from the strings of
fbgemm_gpu/experimental/gen_ai/fbgemm_gpu_experimental_gen_ai.so:
  f8f8bf16_rowwise_grouped_stacked(Tensor XQ, Tensor WQ, Tensor x_scale,
                                   Tensor w_scale, Tensor M_sizes) -> Tensor
  f8f8bf16_rowwise_grouped_dynamic(Tensor XQ, Tensor WQ, Tensor x_scale, Tensor w_scale,
                                   Tensor zero_start_index_M,
                                   bool zeroing_output_tensor=True) -> Tensor
  f8f8bf16_groupwise_grouped(Tensor XQ, Tensor WQ, Tensor x_scale, Tensor w_scale,
                             Tensor M_sizes) -> Tensor
  bf16bf16bf16_grouped_stacked(Tensor X, Tensor W, Tensor M_sizes, Tensor? out=None,
                               int? num_sms=None) -> Tensor
The .so's checks say "M_sizes must be int64." and "zero_start_index_M must
be int64."; the sizes go to FBGEMM as int64 (should an op ask for int32
instead, that is learnt once, with a note). A missing or unloadable FBGEMM
(or --no-fbgemm) drops its peers with a note; llmk and torch still run.
torch (2.11): _scaled_grouped_mm(Tensor self, Tensor mat2, Tensor scale_a,
Tensor scale_b, Tensor? offs=None, Tensor? bias=None, Tensor? scale_result=None,
ScalarType? out_dtype=None, bool use_fast_accum=False) and _grouped_mm(Tensor
self, Tensor mat2, Tensor? offs=None, Tensor? bias=None, ScalarType?
out_dtype=None) (aten native_functions.yaml); offs int32, mat2 column-major.
A torch without them drops that peer with a note.

Correctness, once per row before timing: every output (llmk's and each
peer's) against a float32 product of the dequantized operands, group by
group (only the rows each group owns; the masked layout's padding rows are
not compared). For T*N*K <= 2^36 all of every active group; above that a
corner of each group (its first 256 rows, the first 1024 columns, every
K) for at most 32 active groups spread evenly over them (first and last
included). rel_err is llmk's relative Frobenius error over what was
compared; llmk fails (ok false, a loud note on stderr) at 2e-2 or more. A
peer at 2e-2 or more, or one that raises, is left out of peers and
best_peer (peers_bad / peers_failed hold it, with a note).

Timing: every implementation the same way, through bench/peer_common.py's
Timer.graph, as bench/peer_gemm_general.py: one CUDA graph of `calls`
calls (3 to 100, chosen from the row's roofline estimate for a replay of
about 1 ms, the same for llmk and its peers), three eager warm-ups, two
warm-up replays, --replays (5) timed replays with the L2 flushed before
each, the median replay / calls in microseconds. Weights are rotated past
L2: where the experts a call reads (the active ones) total less than 128
MiB, the calls rotate among C copies of the weights and their scales, C
enough for 128 MiB (at most 32, at most 4 GiB of extra weights). The
copies are views of one buffer of G + extra experts, copy c starting
c * S experts in (S = the span from the first to the last active expert),
so no two copies share an active expert's memory; copies past the first
hold other experts' weights (the same sizes and kind of data: timing only,
the check uses copy 0). One large device-to-device copy (1 GiB) measures
copy bandwidth first.

Output (--out, overwritten, one JSON object per line, flushed as written):
first {"op": "copy", "device", "shape": {"m", "k"}, "us", "gbps", ...},
then one row per (model, projection, op, B, router):

  {"op": "gemm_grouped_fp8_rowwise", "device": "NVIDIA H100 80GB HBM3",
   "model": "deepseek-v3", "which": "gate_up", "groups": 32, "experts": 256,
   "topk": 8, "batch_tokens": 128, "tokens": 131, "routing": "uniform",
   "active_groups": 30, "min_group_rows": 1, "max_group_rows": 9,
   "group_sizes": [4, 3, ...], "shape": {"m": 131, "n": 4096, "k": 7168},
   "llmk_us": 201.3, "peers": {"fbgemm.f8f8bf16_rowwise_grouped_stacked": 260.1,
   "torch._scaled_grouped_mm": 250.2}, "best_peer": "torch._scaled_grouped_mm",
   "best_peer_us": 250.2, "x_best": 1.243, "x_fbgemm": 1.292,
   "weight_bytes": 880803840, "hbm_floor_us": 270.0, "frac_roof": 0.9,
   "tflops": 38.3, "rel_err": 0.00213, "ok": true, "commit": "0123456789ab", ...}

x_best = best_peer_us / llmk_us and x_fbgemm = FBGEMM's us / llmk_us (above
1: llmk is faster). weight_bytes: the weights of the experts with at least
one row (scales left out); hbm_floor_us = (weight_bytes + T*K*element bytes
+ 2*T*N) / copy bandwidth (for masked the same stacked minimum: the padding
is overhead), frac_roof = hbm_floor_us / llmk_us; tflops = 2*T*N*K /
llmk_us. Masked rows add m_max, llmk_stacked_us, x_stacked, llmk_nozero_us
and x_stacked_kernel. Extra keys:
check (what rel_err was measured on), peer_rel_err, peers_failed,
peers_bad, calls, weight_copies, replays, error (llmk's call failed: llmk_us
null), peer_version, and the keys bench/gen_table.py reads, as
bench/peer_gemm_general.py writes them: peer / peer_us / ratio (the best
peer, its time, x_best), dtype ("e4m3" or "bf16"), frac_roofline
(= frac_roof). commit: --commit, else LLMK_COMMIT, else `git rev-parse`. A
short table goes to stdout.

--summary FILE...: reads such files (no torch, no GPU; a later row of the
same op, model, projection, B and router replaces an earlier one) and
prints per op: rows, the geometric means of x_best and x_fbgemm over all
rows, per model, per projection, per router and per B (for masked also of
x_stacked), the mean and minimum frac_roof of the decode rows (B <= 128),
the worst row (smallest x_best) and the rows below 1.0. --summary-json
prints the same as one JSON object.

--dry-run lists the planned rows with their expected T and active experts
(the routing's expectation, no draw) and a rough time on an H100.

A failing op or row prints a note on stderr and the run goes on; after
--time-limit seconds (540) the remaining rows are skipped with a note.
Exit status: 0 done (possibly with notes), 1 no usable GPU / torch / llmk,
2 usage, 3 the CUDA context broke (rows so far are kept).
"""

import argparse
import collections
import math
import os
import sys
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import peer_common as pc  # noqa: E402
import peer_gemm as pg  # noqa: E402
import peer_gemm_general as pgg  # noqa: E402
from peer_common import ContextBroken, brief_exc, note, rnd  # noqa: E402
from peer_gemm_general import fmt, geomean, sig3  # noqa: E402

Model = collections.namedtuple("Model", "groups experts topk gate_up down")
MODELS = collections.OrderedDict([
    # name: G on this GPU, experts routed over, top-k, gate_up (N, K), down (N, K)
    ("deepseek-v3", Model(32, 256, 8, (4096, 7168), (7168, 2048))),
    ("llama4-maverick", Model(128, 128, 1, (16384, 5120), (5120, 8192))),
    ("llama4-scout", Model(16, 16, 1, (16384, 5120), (5120, 8192))),
    ("mixtral-8x7b", Model(8, 8, 2, (28672, 4096), (4096, 14336))),
])
WHICH = ("gate_up", "down")
DEFAULT_B = (1, 8, 32, 128, 512, 4096, 16384)
ROUTERS = ("uniform", "skewed")
HOT_EXPERTS, HOT_ROWS = 0.10, 0.50  # skewed: this fraction of the experts gets this fraction of the rows
BLOCK_MODELS = ("deepseek-v3",)      # block scaling is DeepSeek-V3's recipe
MASKED_MAX_B = 128
M_MAX_ALIGN = 8

OP_NAMES = collections.OrderedDict([
    ("row", "gemm_grouped_fp8_rowwise"), ("masked", "gemm_grouped_fp8_rowwise_masked"),
    ("block", "gemm_grouped_fp8_blockwise"), ("bf16", "gemm_grouped_bf16")])
OP_KEYS = tuple(OP_NAMES)
# the weights an op runs on (row and masked share theirs), built once per (model, projection)
KIND_OF = {"row": "fp8_row", "masked": "fp8_row", "block": "fp8_block", "bf16": "bf16"}
KINDS = ("fp8_row", "fp8_block", "bf16")

TORCH_SGMM, TORCH_SGMM3D, TORCH_GMM = ("torch._scaled_grouped_mm", "torch._scaled_grouped_mm (3d)",
                                       "torch._grouped_mm")
FB_ROW, FB_DYN, FB_GROUP, FB_BF16 = ("fbgemm.f8f8bf16_rowwise_grouped_stacked",
                                     "fbgemm.f8f8bf16_rowwise_grouped_dynamic",
                                     "fbgemm.f8f8bf16_groupwise_grouped",
                                     "fbgemm.bf16bf16bf16_grouped_stacked")
PEERS = {"row": (TORCH_SGMM, FB_ROW), "masked": (TORCH_SGMM3D, FB_DYN),
         "block": (FB_GROUP,), "bf16": (TORCH_GMM, FB_BF16)}
FBGEMM_OF = {"row": FB_ROW, "masked": FB_DYN, "block": FB_GROUP, "bf16": FB_BF16}
LLMK_STACKED = "llmk stacked"  # masked rows: llmk's stacked op on the same rows (not a peer)
LLMK_NOZERO = "llmk masked, no zeroing"  # masked rows: llmk's masked op without zeroing the output (not a peer)
# FBGEMM's groupwise scale layouts, tried in this order until one gives the right output
FB_BLOCK_FORMS = ("x per-group M-major, w [G, Kb, Nb]", "x [T, Kb] K-major, w [G, Nb, Kb]")

MAX_REL_ERR = pg.MAX_REL_ERR
REF_MAX_MNK = pgg.REF_MAX_MNK    # full float32 check up to this T*N*K, corners above
CHECK_ROWS, CHECK_COLS = pgg.CHECK_ROWS, pgg.CHECK_COLS
CHECK_GROUPS = 32                # corners of at most this many active groups
ROTATE_EXTRA_BYTES = 4 << 30     # extra experts for the rotated weight copies, at most
DECODE_B = 128

torch = None  # imported in run(), after the arguments are parsed
L = None      # llmk._lib


# ---------------------------------------------------------------------------
# Shapes, routing expectations and estimates (no torch)
# ---------------------------------------------------------------------------

def elem_bytes(key):
    return 2 if key == "bf16" else 1


def nk_of(model, which):
    return getattr(MODELS[model], which)


def expected_rows(model, b):
    """(expected T, expected active experts) of a uniform routing: for --dry-run."""
    m = MODELS[model]
    p = m.topk / float(m.experts)  # a given expert's chance to be among one token's top-k
    return b * m.topk * m.groups / float(m.experts), m.groups * (1.0 - (1.0 - p) ** b)


def est_us(elem, t, n, k, active, gbps):
    """Roofline time of one call: the larger of the HBM floor and the tensor-core peak."""
    nbytes = active * n * k * elem + t * k * elem + 2 * t * n
    return max(nbytes / (gbps * 1e3), 2.0 * t * n * k / (pgg.PEAK_TFLOPS[elem] * 1e6))


def impl_count(key):
    return 1 + len(PEERS[key]) + (1 if key == "masked" else 0)


def rough_seconds(key, model, which, b, replays):
    """A rough wall time for one row on an H100, for --dry-run only."""
    n, k = nk_of(model, which)
    t, active = expected_rows(model, b)
    t = max(t, 1.0)
    est = est_us(elem_bytes(key), t, n, k, max(active, 1.0), pgg.DEFAULT_COPY_GBPS)
    calls = pgg.choose_calls(est)
    run = est * 1.5 + 5.0  # kernels short of the roofline, launch gaps, the grouped setup
    one = run * (4 + calls * (2 + replays)) + replays * 100.0 + calls * 40.0 + 5000.0
    ref = 2.0 * min(t * n * k, REF_MAX_MNK) / 40e6  # float32 reference (corners above the limit)
    return (impl_count(key) * one + ref) / 1e6 + 0.05  # inputs, routing, group layouts


def rough_setup_seconds(kind, model, which):
    """Drawing and quantizing one (model, projection)'s experts (~100 bytes of traffic an element)."""
    n, k = nk_of(model, which)
    return 0.1 + MODELS[model].groups * (n * k * 100.0 / 2.5e12 + 0.002)


def ops_for(args, model, b):
    """The ops a (model, B) runs, in run order."""
    out = []
    for key in args.ops:
        if key == "block" and not args.block_all and model not in BLOCK_MODELS:
            continue
        if key == "masked" and b > args.masked_max_b:
            continue
        out.append(key)
    return out


def plan(args):
    """[(model, which, kind, key, B, router)] in run order: per (model, projection) the weight
    kinds, per kind its ops, then B ascending, then the routers."""
    rows = []
    for model in args.models:
        for which in args.which:
            for kind in KINDS:
                for key in OP_KEYS:
                    if KIND_OF[key] != kind:
                        continue
                    for b in args.batches:
                        if key in ops_for(args, model, b):
                            rows.extend((model, which, kind, key, b, r) for r in args.routing)
    return rows


def route_seed(seed, model, b, router):
    return (seed * 1000003 + zlib.crc32(("%s|%d|%s" % (model, b, router)).encode())) % (1 << 62)


def weight_seed(seed, model, which):
    return (seed * 7919 + zlib.crc32(("%s|%s" % (model, which)).encode()) * 1024) % (1 << 62)


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------

def parse_list(text, choices, what):
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if item not in choices:
            raise argparse.ArgumentTypeError("unknown %s %r (choose from %s)" % (what, item, ",".join(choices)))
        if item not in out:
            out.append(item)
    if not out:
        raise argparse.ArgumentTypeError("no %s given" % what)
    return [c for c in choices if c in out]  # the canonical order


def parse_batches(text):
    bs = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if not item.isdigit() or int(item) <= 0:
            raise argparse.ArgumentTypeError("bad batch %r: expected a positive integer" % item)
        bs.append(int(item))
    if not bs:
        raise argparse.ArgumentTypeError("no batch sizes given")
    return sorted(set(bs))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Ops: row (%s), masked (%s), block (%s), bf16 (%s). Models: %s." % (
            tuple(OP_NAMES.values()) + (", ".join(MODELS),)))
    ap.add_argument("--out", help="JSON-lines output file (overwritten); needed unless --dry-run or --summary")
    ap.add_argument("--ops", default=",".join(OP_KEYS),
                    help="comma-separated subset of %s (default: all)" % ",".join(OP_KEYS))
    ap.add_argument("--models", type=lambda s: parse_list(s, tuple(MODELS), "model"), default=list(MODELS),
                    help="comma-separated subset of %s (default: all)" % ",".join(MODELS))
    ap.add_argument("--which", type=lambda s: parse_list(s, WHICH, "projection"), default=list(WHICH),
                    help="gate_up, down or both (default)")
    ap.add_argument("--batches", type=parse_batches, default=list(DEFAULT_B),
                    help="comma-separated batch token counts B (default %s)" % ",".join(map(str, DEFAULT_B)))
    ap.add_argument("--routing", type=lambda s: parse_list(s, ROUTERS, "router"), default=list(ROUTERS),
                    help="uniform, skewed or both (default)")
    ap.add_argument("--block-all", action="store_true",
                    help="run block on every model (default: %s only)" % ", ".join(BLOCK_MODELS))
    ap.add_argument("--masked-max-b", type=int, default=MASKED_MAX_B,
                    help="largest B the masked layout runs at (default %d)" % MASKED_MAX_B)
    ap.add_argument("--time-limit", type=float, default=540.0,
                    help="seconds after which the remaining rows are skipped (0: none)")
    ap.add_argument("--replays", type=int, default=5, help="timed graph replays per measurement")
    ap.add_argument("--copy-gib", type=float, default=1.0,
                    help="size of the bandwidth copy in GiB (0 skips it: hbm_floor_us is then null)")
    ap.add_argument("--commit", default=None, help="llmk commit recorded in every row (default: LLMK_COMMIT, else git)")
    ap.add_argument("--no-fbgemm", action="store_true", help="leave FBGEMM out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dry-run", action="store_true", help="print the planned rows (no torch, no GPU)")
    ap.add_argument("--summary", nargs="+", metavar="FILE",
                    help="summarize JSON-lines files of this script (no torch, no GPU)")
    ap.add_argument("--summary-json", action="store_true", help="with --summary: one JSON object instead of the tables")
    args = ap.parse_args(argv)

    if args.summary_json and not args.summary:
        ap.error("--summary-json goes with --summary")
    if args.summary:
        return args
    long_names = {v: k for k, v in OP_NAMES.items()}
    keys = []
    for o in args.ops.split(","):
        o = long_names.get(o.strip(), o.strip())
        if not o:
            continue
        if o not in OP_NAMES:
            ap.error("unknown op %r (choose from %s)" % (o, ",".join(OP_KEYS)))
        keys.append(o)
    if not keys:
        ap.error("--ops is empty")
    args.ops = [k for k in OP_KEYS if k in keys]
    if args.time_limit < 0 or args.replays < 1 or args.copy_gib < 0 or args.masked_max_b < 0:
        ap.error("--time-limit, --copy-gib and --masked-max-b must be >= 0, --replays >= 1")
    if not args.dry_run and not args.out:
        ap.error("--out is required (unless --dry-run or --summary)")
    args.plan = plan(args)
    if not args.plan:
        ap.error("nothing to run: no op applies to the models and batch sizes given "
                 "(block runs on %s unless --block-all; masked at B <= --masked-max-b)" % ", ".join(BLOCK_MODELS))
    return args


def dry_run(args):
    print("models: %s   projections: %s   ops: %s" % (",".join(args.models), ",".join(args.which),
                                                      ",".join(args.ops)))
    print("B: %s   routing: %s   (T and active experts below: the uniform routing's expectation)"
          % (",".join(str(b) for b in args.batches), ",".join(args.routing)))
    print("  %-33s %-16s %-8s %6s %-8s %9s %3s %9s %17s" % (
        "op", "model", "which", "B", "routing", "T", "G", "active", "N x K"))
    secs = 0.0
    setups = set()
    counts = collections.Counter()
    for model, which, kind, key, b, router in args.plan:
        n, k = nk_of(model, which)
        t, active = expected_rows(model, b)
        print("  %-33s %-16s %-8s %6d %-8s %9.1f %3d %9.1f %17s" % (
            OP_NAMES[key], model, which, b, router, t, MODELS[model].groups, active, "%dx%d" % (n, k)))
        secs += rough_seconds(key, model, which, b, args.replays)
        if (model, which, kind) not in setups:
            setups.add((model, which, kind))
            secs += rough_setup_seconds(kind, model, which)
        counts[OP_NAMES[key]] += 1
    print("rows: %d (%s), plus the copy row" % (len(args.plan), ", ".join(
        "%s %d" % (op, counts[op]) for op in OP_NAMES.values() if counts[op])))
    print("rough time on an H100: %.0f s (--time-limit %.0f s)" % (secs, args.time_limit))
    return 0


# ---------------------------------------------------------------------------
# Summary (no torch)
# ---------------------------------------------------------------------------

def row_key(row):
    return (row.get("op"), row.get("model"), row.get("which"), row.get("batch_tokens"), row.get("routing"))


def describe(row):
    return "%s %s B=%s %s (T=%s)" % (row.get("model"), row.get("which"), row.get("batch_tokens"),
                                     row.get("routing"), row.get("tokens"))


def read_rows(paths):
    return pc.read_jsonl_rows(paths, lambda row: row.get("op") in OP_NAMES.values(), row_key)


def group_stats(rows, masked=False):
    s = pgg.group_stats(rows)
    if masked:
        xs, ns = geomean(r.get("x_stacked") for r in rows)
        xk, nk = geomean(r.get("x_stacked_kernel") for r in rows)
        s.update(x_stacked=rnd(xs), n_x_stacked=ns, x_stacked_kernel=rnd(xk), n_x_stacked_kernel=nk)
    return s


def by(rows, field, order=None):
    groups = collections.OrderedDict()
    for r in rows:
        groups.setdefault(r.get(field), []).append(r)
    keys = list(groups)
    if order is not None:
        keys = [k for k in order if k in groups] + [k for k in keys if k not in order]
    else:
        keys.sort(key=lambda v: (v is None, not is_num(v), v if is_num(v) else 0, str(v)))
    return [(k, groups[k]) for k in keys]


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def summarize(paths):
    rows = read_rows(paths)
    out = {"files": list(paths), "ops": collections.OrderedDict()}
    for op in OP_NAMES.values():
        rs = [r for r in rows if r.get("op") == op]
        if not rs:
            continue
        masked = op == OP_NAMES["masked"]
        s = {"rows": len(rs),
             "timed": sum(1 for r in rs if is_num(r.get("llmk_us"))),
             "not_ok": sum(1 for r in rs if r.get("ok") is False),
             "all": group_stats(rs, masked),
             "by_model": collections.OrderedDict((str(k), group_stats(g, masked))
                                                 for k, g in by(rs, "model", list(MODELS))),
             "by_which": collections.OrderedDict((str(k), group_stats(g, masked))
                                                 for k, g in by(rs, "which", list(WHICH))),
             "by_routing": collections.OrderedDict((str(k), group_stats(g, masked))
                                                   for k, g in by(rs, "routing", list(ROUTERS))),
             "by_batch": collections.OrderedDict((str(k), group_stats(g, masked))
                                                 for k, g in by(rs, "batch_tokens"))}
        withx = [r for r in rs if is_num(r.get("x_best"))]
        if withx:
            worst = min(withx, key=lambda r: r["x_best"])
            s["worst"] = {"x_best": worst["x_best"], "row": describe(worst), "best_peer": worst.get("best_peer"),
                          "llmk_us": worst.get("llmk_us"), "best_peer_us": worst.get("best_peer_us")}
        below = sorted((r for r in withx if r["x_best"] < 1.0), key=lambda r: r["x_best"])
        s["below_1"] = len(below)
        s["below_1_rows"] = ["%s: %.3f (%s)" % (describe(r), r["x_best"], r.get("best_peer")) for r in below[:20]]
        dec = [r for r in rs if is_num(r.get("batch_tokens")) and r["batch_tokens"] <= DECODE_B
               and is_num(r.get("frac_roof"))]
        d = {"rows": len(dec)}
        if dec:
            lo = min(dec, key=lambda r: r["frac_roof"])
            d.update(mean=rnd(sum(r["frac_roof"] for r in dec) / len(dec)), min=lo["frac_roof"],
                     min_row=describe(lo))
        s["decode_frac_roof"] = d
        out["ops"][op] = s
    return out


def print_summary(summ):
    if not summ["ops"]:
        print("no grouped GEMM rows in %s" % ", ".join(summ["files"]))
        return
    for op, s in summ["ops"].items():
        masked = "x_stacked" in s["all"]
        print("%s: %d rows (%d timed, %d not ok)" % (op, s["rows"], s["timed"], s["not_ok"]))
        print("  %-22s %5s %8s %9s%s   (geometric means; above 1: llmk faster)" % (
            "", "rows", "x_best", "x_fbgemm", " %9s %9s" % ("x_stacked", "x_stk_kern") if masked else ""))
        lines = [("all", s["all"])]
        lines += [(k, g) for k, g in s["by_model"].items()]
        lines += [(k, g) for k, g in s["by_which"].items()]
        lines += [(k, g) for k, g in s["by_routing"].items()]
        lines += [("B=" + k, g) for k, g in s["by_batch"].items()]
        for name, g in lines:
            print("  %-22s %5d %8s %9s%s" % (name, g["rows"], fmt(g["x_best"]), fmt(g["x_fbgemm"]),
                                            " %9s %9s" % (fmt(g.get("x_stacked")), fmt(g.get("x_stacked_kernel")))
                                            if masked else ""))
        d = s["decode_frac_roof"]
        if d["rows"]:
            print("  decode (B <= %d): frac_roof mean %.3f, min %.3f at %s (%d rows)"
                  % (DECODE_B, d["mean"], d["min"], d["min_row"], d["rows"]))
        else:
            print("  decode (B <= %d): no rows with frac_roof" % DECODE_B)
        w = s.get("worst")
        if w:
            print("  worst row: x_best %.3f at %s (llmk %s us, best peer %s %s us)" % (
                w["x_best"], w["row"], fmt(w["llmk_us"], "%.2f"), w["best_peer"], fmt(w["best_peer_us"], "%.2f")))
        print("  x_best < 1.0: %d rows%s" % (s["below_1"], "" if not s["below_1_rows"] else ":"))
        for line in s["below_1_rows"]:
            print("    " + line)
        print()


# ---------------------------------------------------------------------------
# Routing, weights and inputs (torch from here on)
# ---------------------------------------------------------------------------

def route(model, b, router, seed):
    """Group sizes [G] (python ints) of B tokens' top-k picks, seeded: Gumbel top-k over the
    experts' log-probabilities (top-k distinct experts per token, drawn without replacement)."""
    m = MODELS[model]
    g = torch.Generator(device="cpu")
    g.manual_seed(route_seed(seed, model, b, router))
    logp = torch.zeros(m.experts, dtype=torch.float64)
    n_hot = max(1, int(round(HOT_EXPERTS * m.experts)))
    if router == "skewed" and n_hot < m.experts:
        hot = torch.randperm(m.experts, generator=g)[:n_hot]
        logp.fill_(math.log((1.0 - HOT_ROWS) / (m.experts - n_hot)))
        logp[hot] = math.log(HOT_ROWS / n_hot)
    counts = torch.zeros(m.experts, dtype=torch.int64)
    for start in range(0, b, 4096):  # bounded temporaries
        u = torch.rand(min(4096, b - start), m.experts, generator=g, dtype=torch.float64).clamp_(1e-300, 1.0 - 1e-16)
        keys = logp - torch.log(-torch.log(u))
        counts += torch.bincount(keys.topk(m.topk, dim=1).indices.flatten(), minlength=m.experts)
    return [int(c) for c in counts[:m.groups].tolist()]


def rotation(sizes, expert_bytes):
    """(copies, span in experts) of the rotated weight views for these sizes."""
    active = [g for g, s in enumerate(sizes) if s > 0]
    if not active:
        return 1, 1
    span = active[-1] - active[0] + 1
    most = max(1, min(pg.GRAPH_MAX_COPIES, 1 + ROTATE_EXTRA_BYTES // max(1, span * expert_bytes)))
    return pc.rotation_copies(len(active) * expert_bytes, pg.GRAPH_ROTATE_BYTES, most), span


def kind_expert_bytes(kind, n, k):
    """Bytes of one expert's weight-side tensors (all of them, scales included) of a kind."""
    if kind == "bf16":
        return 2 * n * k
    if kind == "fp8_row":
        return n * k + 4 * n
    nb, kb = pg.cdiv(n, pg.BLOCK), pg.cdiv(k, pg.BLOCK)
    return n * k + 2 * 4 * nb * kb


def build_weights(kind, groups, n, k, extra, seed):
    """The weight-side tensors of a kind, each [groups + extra, ...]: expert g drawn with seed + g
    (pg.randn_rows, the same bf16 data for every kind) and quantized alone; the extra experts
    repeat the first ones (room for the rotated views)."""
    rows = groups + extra
    dev = "cuda"
    if kind == "bf16":
        w = {"w": torch.empty(rows, n, k, dtype=torch.bfloat16, device=dev)}
    elif kind == "fp8_row":
        w = {"wq": torch.empty(rows, n, k, dtype=torch.float8_e4m3fn, device=dev),
             "sw": torch.empty(rows, n, dtype=torch.float32, device=dev)}
    else:
        nb, kb = pg.cdiv(n, pg.BLOCK), pg.cdiv(k, pg.BLOCK)
        w = {"wq": torch.empty(rows, n, k, dtype=torch.float8_e4m3fn, device=dev),
             "sw": torch.empty(rows, nb, kb, dtype=torch.float32, device=dev),    # llmk's [G, Nb, Kb]
             "sw_kn": torch.empty(rows, kb, nb, dtype=torch.float32, device=dev)}  # FBGEMM's [G, Kb, Nb]
    for g in range(groups):
        torch.manual_seed(seed + g)
        wg = pg.randn_rows(n, k)
        if kind == "bf16":
            w["w"][g].copy_(wg)
        elif kind == "fp8_row":
            q, s = pg.quantize_rows(wg)
            w["wq"][g].copy_(q)
            w["sw"][g].copy_(s.view(-1))
        else:
            q, s = pg.quantize_blocks(wg)
            w["wq"][g].copy_(q)
            w["sw"][g].copy_(s)
            w["sw_kn"][g].copy_(s.t())
        wg = q = s = None
    for j in range(extra):
        for t in w.values():
            t[groups + j].copy_(t[j % groups])
    torch.cuda.synchronize()
    return w


def weight_views(w, groups, copies, span):
    """Copy c of every weight-side tensor: experts [c * span, c * span + groups) of its buffer."""
    return [{name: t[c * span:c * span + groups] for name, t in w.items()} for c in range(copies)]


def masked_layout(xq, sx, sizes, offsets, m_max):
    """The stacked (xq [T, K] e4m3, sx [T]) as (xq3 [G, M_max, K], sx3 [G, M_max]): group g's rows
    first in its block, the padding rows zero with scale 1."""
    groups, k = len(sizes), xq.shape[1]
    xq3 = torch.zeros(groups * m_max, k, dtype=torch.uint8, device=xq.device)
    sx3 = torch.ones(groups * m_max, dtype=torch.float32, device=xq.device)
    xu = xq.view(torch.uint8)
    for g, (o, s) in enumerate(zip(offsets, sizes)):
        if s:
            xq3[g * m_max:g * m_max + s] = xu[o:o + s]
            sx3[g * m_max:g * m_max + s] = sx[o:o + s]
    return xq3.view(torch.float8_e4m3fn).view(groups, m_max, k), sx3.view(groups, m_max)


def per_group_m_major(sx, sizes, offsets):
    """sx [T, Kb] row-major -> the same shape holding each group's [Kb, s_g] block, M-major, at
    element o_g * Kb: the x_scale layout FBGEMM's f8f8bf16_groupwise_grouped reads."""
    parts = [sx[o:o + s].t().contiguous().view(-1) for o, s in zip(offsets, sizes) if s]
    return torch.cat(parts).view(sx.shape) if parts else sx.clone()


# ---------------------------------------------------------------------------
# Cases: one op on one row's operands
# ---------------------------------------------------------------------------

class State:
    """What is learnt once per run."""
    fb_sizes_dtype = None  # torch dtype of the sizes FBGEMM takes (int64 first)
    fb_block_form = None   # index into FB_BLOCK_FORMS, learnt from an output that passed


class Case:
    """One op on one row: inputs (xs, built from the row's X and sizes), the calls (impls:
    llmk first; fn(xs, ws) -> output), the float32 reference per group."""
    key = None

    def __init__(self, key, fb, have_torch, state, k):
        self.key = key
        self.fb = fb
        self.have_torch = have_torch
        self.state = state
        self.k = k

    def fb_sizes(self, xs):
        dt = self.state.fb_sizes_dtype or torch.int64
        if xs.get("sizes_fb") is None or xs["sizes_fb"].dtype != dt:
            xs["sizes_fb"] = xs["sizes32"].to(dt)
        return xs["sizes_fb"]

    def first_call(self, name, fn, xs, ws):
        """The check's call: for FBGEMM, learns once whether it wants int32 sizes instead."""
        try:
            y = fn(xs, ws)
            torch.cuda.synchronize()
        except RuntimeError as e:
            want32 = "must be int32" in str(e) and not pg.is_fatal(e)
            if not (name.startswith("fbgemm.") and want32 and self.state.fb_sizes_dtype is None):
                raise
            self.state.fb_sizes_dtype = torch.int32
            note("FBGEMM wants int32 group sizes (%s): using int32 from here on" % brief_exc(e), err=True)
            y = fn(xs, ws)
            torch.cuda.synchronize()
        else:
            if name.startswith("fbgemm.") and self.state.fb_sizes_dtype is None:
                self.state.fb_sizes_dtype = torch.int64
        return y

    def group_out(self, y, g, o, r, c):
        """Rows [0, r) and columns [0, c) of group g's output (o: its first stacked row)."""
        return y[o:o + r, :c]


class RowCase(Case):
    def inputs(self, x, sizes, offsets, dev_sizes):
        xq, sx = pg.quantize_rows(x)
        return dict(dev_sizes, xq=xq, sx=sx.reshape(-1))

    def impls(self):
        out = [("llmk", lambda xs, ws: torch.ops.llmk.f8f8bf16_rowwise_grouped_stacked(
            xs["xq"], ws["wq"], xs["sx"], ws["sw"], xs["sizes32"]))]
        if self.have_torch.get(TORCH_SGMM):
            out.append((TORCH_SGMM, lambda xs, ws: torch._scaled_grouped_mm(
                xs["xq"], ws["wq"].transpose(-2, -1), scale_a=xs["sx"], scale_b=ws["sw"], offs=xs["offs"],
                out_dtype=torch.bfloat16, use_fast_accum=True)))
        if FB_ROW in self.fb:
            out.append((FB_ROW, lambda xs, ws: torch.ops.fbgemm.f8f8bf16_rowwise_grouped_stacked(
                xs["xq"], ws["wq"], xs["sx"], ws["sw"], self.fb_sizes(xs))))
        return out

    def ref_x(self, xs, o, r):
        return xs["xq"][o:o + r].float() * xs["sx"][o:o + r].view(-1, 1)

    def ref_w(self, ws, g, c):
        return ws["wq"][g, :c].float() * ws["sw"][g, :c].view(-1, 1)


class MaskedCase(RowCase):
    def inputs(self, x, sizes, offsets, dev_sizes):
        xs = super().inputs(x, sizes, offsets, dev_sizes)
        self.m_max = max(M_MAX_ALIGN, pg.cdiv(max(sizes), M_MAX_ALIGN) * M_MAX_ALIGN)
        xs["xq3"], xs["sx3"] = masked_layout(xs["xq"], xs["sx"], sizes, offsets, self.m_max)
        return xs

    def impls(self):
        out = [("llmk", lambda xs, ws: torch.ops.llmk.f8f8bf16_rowwise_grouped_dynamic(
                    xs["xq3"], ws["wq"], xs["sx3"], ws["sw"], xs["sizes32"], True)),
               (LLMK_STACKED, lambda xs, ws: torch.ops.llmk.f8f8bf16_rowwise_grouped_stacked(
                   xs["xq"], ws["wq"], xs["sx"], ws["sw"], xs["sizes32"])),
               (LLMK_NOZERO, lambda xs, ws: torch.ops.llmk.f8f8bf16_rowwise_grouped_dynamic(
                   xs["xq3"], ws["wq"], xs["sx3"], ws["sw"], xs["sizes32"], False))]
        if self.have_torch.get(TORCH_SGMM):
            out.append((TORCH_SGMM3D, lambda xs, ws: torch._scaled_grouped_mm(
                xs["xq3"], ws["wq"].transpose(-2, -1), scale_a=xs["sx3"], scale_b=ws["sw"],
                out_dtype=torch.bfloat16, use_fast_accum=True)))
        if FB_DYN in self.fb:
            out.append((FB_DYN, lambda xs, ws: torch.ops.fbgemm.f8f8bf16_rowwise_grouped_dynamic(
                xs["xq3"], ws["wq"], xs["sx3"], ws["sw"], self.fb_sizes(xs), zeroing_output_tensor=True)))
        return out

    def group_out(self, y, g, o, r, c):
        if y.dim() == 3:
            return y[g, :r, :c]
        return y[o:o + r, :c]  # llmk's stacked op


class BlockCase(Case):
    def inputs(self, x, sizes, offsets, dev_sizes):
        xq, sx = pg.quantize_groups(x)  # [T, K], [T, Kb] row-major
        return dict(dev_sizes, xq=xq, sx=sx, sx_fb=per_group_m_major(sx, sizes, offsets))

    def fb_scales(self, xs, ws):
        if (self.state.fb_block_form or 0) == 0:
            return xs["sx_fb"], ws["sw_kn"]
        return xs["sx"], ws["sw"]

    def impls(self):
        out = [("llmk", lambda xs, ws: torch.ops.llmk.f8f8bf16_groupwise_grouped(
            xs["xq"], ws["wq"], xs["sx"], ws["sw"], xs["sizes32"]))]
        if FB_GROUP in self.fb:
            out.append((FB_GROUP, lambda xs, ws: torch.ops.fbgemm.f8f8bf16_groupwise_grouped(
                xs["xq"], ws["wq"], *self.fb_scales(xs, ws), self.fb_sizes(xs))))
        return out

    def ref_x(self, xs, o, r):
        return xs["xq"][o:o + r].float() * pg.expand_scales(xs["sx"][o:o + r], 1, r, self.k)

    def ref_w(self, ws, g, c):
        return ws["wq"][g, :c].float() * pg.expand_scales(ws["sw"][g, :pg.cdiv(c, pg.BLOCK)], pg.BLOCK, c, self.k)


class Bf16Case(Case):
    def inputs(self, x, sizes, offsets, dev_sizes):
        return dict(dev_sizes, x=x)

    def impls(self):
        out = [("llmk", lambda xs, ws: torch.ops.llmk.bf16bf16bf16_grouped_stacked(
            xs["x"], ws["w"], xs["sizes32"]))]
        if self.have_torch.get(TORCH_GMM):
            out.append((TORCH_GMM, lambda xs, ws: torch._grouped_mm(
                xs["x"], ws["w"].transpose(-2, -1), offs=xs["offs"], out_dtype=torch.bfloat16)))
        if FB_BF16 in self.fb:
            out.append((FB_BF16, lambda xs, ws: torch.ops.fbgemm.bf16bf16bf16_grouped_stacked(
                xs["x"], ws["w"], self.fb_sizes(xs))))
        return out

    def ref_x(self, xs, o, r):
        return xs["x"][o:o + r].float()

    def ref_w(self, ws, g, c):
        return ws["w"][g, :c].float()


CASES = {"row": RowCase, "masked": MaskedCase, "block": BlockCase, "bf16": Bf16Case}


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

SHORT = {v: k for k, v in OP_NAMES.items()}


class Output(pc.RowWriter):
    header = "%-7s %-16s %-8s %6s %-8s %7s %4s %9s %9s %-40s %7s %7s %6s %8s" % (
        "op", "model", "which", "B", "routing", "T", "act", "llmk us", "peer us", "best peer",
        "x_best", "x_fb", "%roof", "rel_err")

    def copy_row(self, m, k, us, reps, extra):
        gbps = 2 * (2 * m * k) / (us * 1e-6) / 1e9  # bf16 read + written
        row = {"op": "copy", "device": self.device, "shape": {"m": m, "k": k}, "dtype": "bf16",
               "us": rnd(us), "gbps": rnd(gbps, 1), "reps": reps}
        row.update(extra)
        self._write(row)
        print("%-7s %dx%d bf16: %.2f us, %.1f GB/s" % ("copy", m, k, us, gbps))
        sys.stdout.flush()
        return gbps

    def gemm_row(self, row):
        self._write(row)
        print("%-7s %-16s %-8s %6d %-8s %7d %4d %9s %9s %-40s %7s %7s %6s %8s%s" % (
            SHORT.get(row["op"], row["op"]), row["model"], row["which"], row["batch_tokens"], row["routing"],
            row["tokens"], row["active_groups"], fmt(row.get("llmk_us"), "%.2f"),
            fmt(row.get("best_peer_us"), "%.2f"), (row.get("best_peer") or "-")[:40], fmt(row.get("x_best")),
            fmt(row.get("x_fbgemm")), pc.pct(row.get("frac_roof")), fmt(row.get("rel_err"), "%.2e"),
            "" if row.get("ok") else "  NOT OK"))
        sys.stdout.flush()


# ---------------------------------------------------------------------------
# One row
# ---------------------------------------------------------------------------

def check_groups(sizes, small):
    """The groups the check compares: every active one, or (corners) at most CHECK_GROUPS of
    them spread evenly, the first and last included."""
    active = [g for g, s in enumerate(sizes) if s > 0]
    if small or len(active) <= CHECK_GROUPS:
        return active
    step = (len(active) - 1) / float(CHECK_GROUPS - 1)
    return sorted(set(active[int(round(i * step))] for i in range(CHECK_GROUPS)))


def grouped_rel_err(case, y, refs):
    """||y - ref||_F / ||ref||_F over the compared blocks of every checked group."""
    num = den = 0.0
    for g, o, r, c, ref in refs:
        yg = case.group_out(y, g, o, r, c).float()
        den += torch.linalg.vector_norm(ref).item() ** 2
        num += torch.linalg.vector_norm(yg - ref).item() ** 2
    return math.sqrt(num / den) if den > 0 else float("inf")


def learn_fb_block_form(case, fn, xs, ws0, refs, err, what):
    """FBGEMM's groupwise scale layout, learnt once per run: the first of FB_BLOCK_FORMS whose
    output passes (err: form 0's error). Returns form 0's error where none passes (the form
    then stays unlearnt and form 0 is timed)."""
    state = case.state
    first = err
    for form in range(len(FB_BLOCK_FORMS)):
        if form:
            state.fb_block_form = form
            try:
                y = case.first_call(FB_GROUP, fn, xs, ws0)
                err = grouped_rel_err(case, y, refs)
                del y
            except Exception as e:  # noqa: BLE001 - this form is refused: try the next
                if pg.is_fatal(e) or not pc.context_ok():
                    raise
                note("%s: %s refuses its scales as %s (%s)" % (what, FB_GROUP, FB_BLOCK_FORMS[form], brief_exc(e)),
                     err=True)
                continue
        if err < MAX_REL_ERR:
            state.fb_block_form = form
            note("FBGEMM f8f8bf16_groupwise_grouped takes its scales as %s" % FB_BLOCK_FORMS[form], err=form > 0)
            return err
        note("%s: %s is wrong with its scales as %s (relative error %.3g)"
             % (what, FB_GROUP, FB_BLOCK_FORMS[form], err), err=True)
    state.fb_block_form = None
    return first


def run_row(ctx, key, b, router, sizes, wbuf, timer, out, state, fb, have_torch):
    model, which = ctx["model"], ctx["which"]
    m = MODELS[model]
    n, k = nk_of(model, which)
    groups = m.groups
    t = sum(sizes)
    what = "%s %s %s B=%d %s (T=%d)" % (OP_NAMES[key], model, which, b, router, t)
    offsets = [0] * groups
    for g in range(1, groups):
        offsets[g] = offsets[g - 1] + sizes[g - 1]
    active = [g for g, s in enumerate(sizes) if s > 0]

    # operands: X seeded per (model, projection, B, router), the same for every op
    torch.manual_seed(route_seed(ctx["seed"], model + "|" + which, b, router))
    x = pg.randn_rows(t, k)
    sizes32 = torch.tensor(sizes, dtype=torch.int32, device="cuda")
    dev_sizes = {"sizes32": sizes32, "offs": torch.cumsum(sizes32, 0, dtype=torch.int32), "sizes_fb": None}
    case = CASES[key](key, fb, have_torch, state, k)
    xs = case.inputs(x, sizes, offsets, dev_sizes)
    del x
    copies, span = rotation(sizes, kind_expert_bytes(KIND_OF[key], n, k))
    copies = min(copies, 1 + (wbuf["extra"] // span if span else 0))
    wsets = weight_views(wbuf["w"], groups, copies, span)
    ws0 = wsets[0]
    impls = case.impls()
    failed, errs, outputs_ok = {}, {}, {}

    # correctness: float32 references per group (all rows, or corners above REF_MAX_MNK)
    small = t * n * k <= REF_MAX_MNK
    refs = []
    for g in check_groups(sizes, small):
        r = sizes[g] if small else min(sizes[g], CHECK_ROWS)
        c = n if small else min(n, CHECK_COLS)
        refs.append((g, offsets[g], r, c, torch.mm(case.ref_x(xs, offsets[g], r), case.ref_w(ws0, g, c).t())))
    check = "fp32" if small else "fp32 corners %dx%d of %d groups" % (
        min(max(sizes), CHECK_ROWS), min(n, CHECK_COLS), len(refs))
    for name, fn in impls:
        try:
            y = case.first_call(name, fn, xs, ws0)
            err = grouped_rel_err(case, y, refs)
            del y
            if name == FB_GROUP and state.fb_block_form is None:
                err = learn_fb_block_form(case, fn, xs, ws0, refs, err, what)
        except Exception as e:  # noqa: BLE001 - report and go on
            failed[name] = pgg.fail(what, name, e)
            continue
        errs[name] = err
        outputs_ok[name] = err < MAX_REL_ERR
        if not outputs_ok[name]:
            note("%s: %s's output is WRONG: relative Frobenius error %.3g vs the float32 reference%s (limit %g)%s"
                 % (what, name, err, "" if small else " on its corners", MAX_REL_ERR,
                    "; left out of the peers" if name in PEERS[key] else ""), err=True)
    del refs

    # timing: one graph per implementation, the same calls for all
    eb = elem_bytes(key)
    calls = pgg.choose_calls(est_us(eb, t, n, k, len(active), out.copy_gbps or pgg.DEFAULT_COPY_GBPS))
    times = {}
    for name, fn in impls:
        if name in failed:
            continue
        try:
            graph_fns = [lambda ws=ws, fn=fn: fn(xs, ws) for ws in wsets]
            times[name], _ = timer.graph(graph_fns, calls)
        except Exception as e:  # noqa: BLE001 - report and go on
            failed[name] = pgg.fail(what, name + " (graph)", e)

    peers = {p: rnd(times[p]) for p in PEERS[key] if p in times and outputs_ok.get(p)}
    bad = {p: {"us": rnd(times.get(p)), "rel_err": sig3(errs[p])}
           for p in PEERS[key] if p in errs and not outputs_ok.get(p)}
    llmk_us = times.get("llmk")
    llmk_err = errs.get("llmk")
    best = min(peers, key=peers.get) if peers else None
    fb_name = FBGEMM_OF[key]
    weight_bytes = len(active) * n * k * eb
    floor = ((weight_bytes + t * k * eb + 2 * t * n) / (out.copy_gbps * 1e3)) if out.copy_gbps else None
    llmk_ok = llmk_err is not None and math.isfinite(llmk_err) and llmk_err < MAX_REL_ERR
    row = {"op": OP_NAMES[key], "device": out.device, "model": model, "which": which,
           "groups": groups, "experts": m.experts, "topk": m.topk, "batch_tokens": b, "tokens": t,
           "routing": router, "active_groups": len(active),
           "min_group_rows": min(sizes[g] for g in active), "max_group_rows": max(sizes),
           "group_sizes": sizes, "shape": {"m": t, "n": n, "k": k},
           "llmk_us": rnd(llmk_us), "peers": peers, "best_peer": best,
           "best_peer_us": peers.get(best) if best else None,
           "x_best": rnd(peers[best] / llmk_us) if best and llmk_us else None,
           "x_fbgemm": rnd(peers[fb_name] / llmk_us) if fb_name in peers and llmk_us else None,
           "weight_bytes": weight_bytes, "hbm_floor_us": rnd(floor),
           "frac_roof": rnd(floor / llmk_us) if floor and llmk_us else None,
           "tflops": rnd(2.0 * t * n * k / (llmk_us * 1e6), 2) if llmk_us else None,
           "rel_err": sig3(llmk_err), "ok": bool(llmk_ok and llmk_us is not None),
           "commit": ctx["commit"], "check": check, "calls": calls, "weight_copies": min(copies, calls),
           "replays": timer.graph_reps,
           "peer_rel_err": {p: sig3(e) for p, e in errs.items() if p in PEERS[key]}}
    if key == "masked":
        st = times.get(LLMK_STACKED) if outputs_ok.get(LLMK_STACKED) else None
        nz = times.get(LLMK_NOZERO) if outputs_ok.get(LLMK_NOZERO) else None
        row.update(m_max=case.m_max, llmk_stacked_us=rnd(st), stacked_rel_err=sig3(errs.get(LLMK_STACKED)),
                   x_stacked=rnd(st / llmk_us) if st and llmk_us else None,
                   llmk_nozero_us=rnd(nz), x_stacked_kernel=rnd(st / nz) if st and nz else None)
    missing = {p: "not available" for p in PEERS[key] if p not in dict(impls)}
    missing.update({p: failed[p] for p in PEERS[key] if p in failed})
    if missing:
        row["peers_failed"] = missing
    if bad:
        row["peers_bad"] = bad
    if "llmk" in failed:
        row["error"] = failed["llmk"]
    if LLMK_STACKED in failed:
        row["stacked_error"] = failed[LLMK_STACKED]
    if LLMK_NOZERO in failed:
        row["nozero_error"] = failed[LLMK_NOZERO]
    # the results-file keys bench/gen_table.py and plot_results.py read
    row.update({"peer": best, "peer_us": row["best_peer_us"], "ratio": row["x_best"],
                "dtype": "bf16" if key == "bf16" else "e4m3", "frac_roofline": row["frac_roof"]})
    out.gemm_row(row)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def torch_peers():
    have = {TORCH_SGMM: hasattr(torch, "_scaled_grouped_mm"), TORCH_GMM: hasattr(torch, "_grouped_mm")}
    for name, ok in have.items():
        if not ok:
            note("torch %s has no %s: that peer is skipped" % (torch.__version__, name), err=True)
    return have


def run(args):
    global torch, L
    torch = pc.load_torch()
    if torch is None:
        return 1
    pg.torch = pgg.torch = torch  # the helpers of bench/peer_gemm.py and peer_gemm_general.py
    cap = torch.cuda.get_device_capability()
    if cap[0] != 9:
        print("error: compute capability %d.%d: llmk's grouped GEMMs run on Hopper (9.x) only" % cap,
              file=sys.stderr)
        return 1
    if not hasattr(torch, "float8_e4m3fn"):
        print("error: this torch has no float8_e4m3fn", file=sys.stderr)
        return 1
    sys.path.insert(0, os.path.join(ROOT, "python"))
    try:
        import llmk  # noqa: F401 - registers torch.ops.llmk.*
        from llmk import _lib
    except Exception as e:  # noqa: BLE001 - nothing to time without llmk
        print("error: cannot load llmk (%s); build it with `make` or set LLMK_LIBRARY" % brief_exc(e),
              file=sys.stderr)
        return 1
    L = _lib
    if not hasattr(torch.ops.llmk, "f8f8bf16_rowwise_grouped_stacked"):
        print("error: this llmk has no grouped GEMM ops (torch.ops.llmk.f8f8bf16_rowwise_grouped_stacked)",
              file=sys.stderr)
        return 1
    fb, fb_version = pgg.load_fbgemm(args.no_fbgemm, (FB_ROW, FB_DYN, FB_GROUP, FB_BF16))
    have_torch = torch_peers()

    torch.backends.cuda.matmul.allow_tf32 = False  # a true float32 reference
    device = torch.cuda.get_device_name()
    peer_version = pc.peer_version(triton=False) + (", fbgemm_gpu " + fb_version if fb_version else "")
    commit = pgg.commit_of(args)
    print("device: %s   %s   cuda %s   llmk %s (%s)   commit %s" % (
        device, peer_version, torch.version.cuda, llmk.__version__, L.library_path, commit))
    sys.stdout.flush()

    # handle creation allocates llmk's workspace: before any capture
    L.handle(torch.cuda.current_device())
    timer = pc.Timer(20, 3, pgg.MAX_CALLS, args.replays, None)
    out = Output(args.out, device, peer_version)
    state = State()
    planned = args.plan
    routes = {}
    done = 0
    t_start = time.time()
    status = 0

    def sizes_of(model, b, router):
        if (model, b, router) not in routes:
            routes[(model, b, router)] = route(model, b, router, args.seed)
        return routes[(model, b, router)]

    def time_up():
        if args.time_limit and time.time() - t_start > args.time_limit:
            model, which, _, key, b, router = planned[min(done, len(planned) - 1)]
            note("time limit (%.0f s) reached: %d of %d rows skipped, from %s %s %s B=%d %s on"
                 % (args.time_limit, len(planned) - done, len(planned), OP_NAMES[key], model, which, b, router),
                 err=True)
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
        # the rows of one (model, projection, weight kind) run on one weight buffer
        blocks = collections.OrderedDict()
        for i, (model, which, kind, key, b, router) in enumerate(planned):
            blocks.setdefault((model, which, kind), []).append(i)
        stop = False
        for (model, which, kind), idx in blocks.items():
            if stop or time_up():
                break
            n, k = nk_of(model, which)
            groups = MODELS[model].groups
            ctx = {"model": model, "which": which, "commit": commit, "seed": args.seed}
            wbuf = None
            try:
                # room for the rotated copies every row of the block asks for
                extra = 0
                eb = kind_expert_bytes(kind, n, k)
                for i in idx:
                    sizes = sizes_of(planned[i][0], planned[i][4], planned[i][5])
                    copies, span = rotation(sizes, eb)
                    extra = max(extra, (copies - 1) * span)
                extra = min(extra, ROTATE_EXTRA_BYTES // eb)
                wbuf = {"w": build_weights(kind, groups, n, k, extra, weight_seed(args.seed, model, which)),
                        "extra": extra}
                for i in idx:
                    _, _, _, key, b, router = planned[i]
                    if time_up():
                        stop = True
                        break
                    sizes = sizes_of(model, b, router)
                    if sum(sizes) == 0:
                        note("%s %s %s B=%d %s: no routed row lands on this GPU's %d experts: skipped"
                             % (OP_NAMES[key], model, which, b, router, groups), err=True)
                    else:
                        try:
                            run_row(ctx, key, b, router, sizes, wbuf, timer, out, state, fb, have_torch)
                        except ContextBroken:
                            raise
                        except Exception as e:  # noqa: BLE001 - e.g. out of memory for the inputs
                            pgg.fail("%s %s %s B=%d %s" % (OP_NAMES[key], model, which, b, router), "row", e)
                    done += 1
                    torch.cuda.empty_cache()
            except ContextBroken:
                raise
            except Exception as e:  # noqa: BLE001 - the weights of this block failed
                pgg.fail("%s %s (%s weights)" % (model, which, kind), "weights", e)
                done = max(done, idx[-1] + 1)
            finally:
                wbuf = None
                torch.cuda.empty_cache()
    except ContextBroken as e:
        note("the CUDA context is broken, stopping (%s)" % e, err=True)
        status = 3
    finally:
        out.close()
    print("wrote %s: %d of %d rows run (%.0f s)" % (args.out, done, len(planned), time.time() - t_start))
    return status


def main(argv=None):
    return pc.main_modes(parse_args(argv), summarize, print_summary, dry_run, run)


if __name__ == "__main__":
    sys.exit(main())
