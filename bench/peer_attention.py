#!/usr/bin/env python3
"""Time PyTorch's decode attention (SDPA) on one GPU: the peer of `llmk bench attention`.

Usage (on the GPU machine; needs only PyTorch):

    python3 bench/peer_attention.py --out peer_attention.jsonl
    python3 bench/peer_attention.py --shapes 1:8192,32:32768 --backends default,flash \\
        --out peer_attention.jsonl

For every shape B:T (one query token per sequence, every sequence T long) this
times

  torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True)

with q [B, Hq, 1, D] and a contiguous BF16 cache k, v [B, Hkv, T, D] (fresh
torch.randn data; the scale is torch's default 1/sqrt(D), as llmk's bench
passes). --backends picks the variants: "default" is torch's own dispatch
(peer "torch sdpa"); flash, efficient, cudnn and math force one backend
through torch.nn.attention.sdpa_kernel (peer "torch sdpa <name>"); a backend
that refuses the shape is skipped with a note. The CUDA kernels each variant
ran are recorded (key "kernels", from torch.profiler) so a row says which
implementation "default" chose. math materializes K and V repeated to Hq
heads: it is never in the default list.

Default shapes (Llama-3-70B heads: Hq 64, Hkv 8, D 128): B in {1, 8, 32} x
T in {1024, 8192, 32768}, and B:T 1:131072, 1:262144, 8:131072 (the set of
`llmk bench attention --sweep`). A shape whose estimated GPU memory exceeds
--max-gb (60) is skipped with a note.

Timing, as bench/peer_gemm.py and `llmk bench attention` do: CUDA events
around every call after warm-up, the L2 cache flushed before each timed call
by writing a 256 MiB buffer (not timed), median (peer_us); and CUDA-graph
replay (peer_us_graph): max(--graph-calls, copies) calls captured in one
torch.cuda.CUDAGraph that rotate among `copies` copies of k and v totalling
at least 256 MiB (copies = ceil(256 MiB / cache bytes), at most 256), so no
captured call finds its cache in L2, as in a model whose every layer has its
own cache; the L2 is flushed before each replay (not timed), replay time /
calls, median over --graph-reps replays.

Bytes: k and v read (2 B Hkv T D x 2) + q read + out written (B Hq D x 2
each): kv_bytes and bytes. gbps uses the graph time (gbps_events the events
median); frac_copy compares it with a device-to-device copy of max(1 GiB,
the largest cache of the run) timed the same way (graph replay), whose row
is {"op": "copy", ..., "peer": "torch copy_", "gbps": read + written / time}.

Once per shape and variant the output of sequence 0 is compared with a
float32 reference (softmax(q k^T * scale) v per KV head): rel_err, the
relative Frobenius error (a note above 2e-2).

Output: one JSON object per line (docs/DESIGN.md "Benchmarking"), e.g.

  {"op": "attention_decode", "device": "NVIDIA H100 80GB HBM3",
   "shape": {"b": 8, "t": 8192, "hq": 64, "hkv": 8, "d": 128}, "dtype": "bf16",
   "peer": "torch sdpa", "peer_us": 120.1, "peer_us_graph": 110.3, "gbps": 2440.0, ...}

bench/merge_results.py pairs these rows with `llmk bench attention --json`
rows (same op, shape and dtype "bf16", for every cache format llmk ran).
The file is overwritten and written line by line, so a run cut short keeps
the rows it finished; after --time-limit seconds the remaining shapes are
skipped with a note. Exit status: 0 done (possibly with notes), 1 no usable
GPU / torch, 2 usage, 3 the CUDA context broke (rows so far are kept).
"""

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_common as pc  # noqa: E402
from peer_common import ContextBroken, brief_exc, context_ok, is_fatal, note, rnd  # noqa: E402

ROTATE_BYTES = 256 << 20
MAX_COPIES = 256
MAX_REL_ERR = 2e-2
SWEEP = ((1, 1024), (1, 8192), (1, 32768), (8, 1024), (8, 8192), (8, 32768),
         (32, 1024), (32, 8192), (32, 32768), (1, 131072), (1, 262144), (8, 131072))
BACKENDS = ("default", "flash", "efficient", "cudnn", "math")

torch = None  # imported in main(), after the arguments are parsed


# ---------------------------------------------------------------------------
# Arguments (no torch needed)
# ---------------------------------------------------------------------------

def parse_shapes(text):
    shapes = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        parts = item.split(":")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise argparse.ArgumentTypeError("bad shape %r: expected B:T, e.g. 8:8192" % item)
        b, t = (int(p) for p in parts)
        if b <= 0 or t <= 0:
            raise argparse.ArgumentTypeError("bad shape %r: B and T must be positive" % item)
        shapes.append((b, t))
    if not shapes:
        raise argparse.ArgumentTypeError("no shapes given")
    return shapes


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Default shapes (B:T): %s." % ", ".join("%d:%d" % s for s in SWEEP))
    ap.add_argument("--out", required=True, help="JSON-lines output file (overwritten)")
    ap.add_argument("--shapes", type=parse_shapes, default=None,
                    help="comma-separated B:T list, e.g. 1:8192,32:32768 (default: the sweep)")
    ap.add_argument("--hq", type=int, default=64, help="query heads")
    ap.add_argument("--hkv", type=int, default=8, help="KV heads")
    ap.add_argument("--d", type=int, default=128, help="head dimension")
    ap.add_argument("--backends", default="default",
                    help="comma-separated subset of: %s (default: default)" % ",".join(BACKENDS))
    ap.add_argument("--reps", type=int, default=30, help="timed calls per events measurement (at most)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed calls first")
    ap.add_argument("--max-measure-s", type=float, default=0.5,
                    help="cap on one measurement's time, flushes included: fewer reps "
                         "(never fewer than %d) for slow shapes" % pc.MIN_REPS)
    ap.add_argument("--graph-calls", type=int, default=20,
                    help="calls captured per graph (at least the number of cache copies)")
    ap.add_argument("--graph-reps", type=int, default=10, help="timed graph replays (at most)")
    ap.add_argument("--no-graph", action="store_true", help="events only")
    ap.add_argument("--copy-gib", type=float, default=1.0,
                    help="least size of the bandwidth copy in GiB (the largest cache if larger; 0 skips it)")
    ap.add_argument("--max-gb", type=float, default=60.0,
                    help="skip shapes whose estimated GPU memory exceeds this (GB)")
    ap.add_argument("--no-check", action="store_true", help="skip the float32 reference check")
    ap.add_argument("--time-limit", type=float, default=300.0,
                    help="seconds after which the remaining shapes are skipped (0: none)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in names:
        if b not in BACKENDS:
            ap.error("unknown backend %r (choose from %s)" % (b, ", ".join(BACKENDS)))
    if not names:
        ap.error("--backends is empty")
    args.backends = [b for b in BACKENDS if b in names]
    if args.shapes is None:
        args.shapes = list(SWEEP)
    if args.hq < 1 or args.hkv < 1 or args.hq % args.hkv or args.d < 1:
        ap.error("--hq must be a positive multiple of --hkv, --d positive")
    if (args.reps < 1 or args.graph_reps < 1 or args.graph_calls < 1 or args.warmup < 0
            or args.max_measure_s <= 0 or args.copy_gib < 0 or args.time_limit < 0
            or args.max_gb <= 0):
        ap.error("--reps, --graph-reps, --graph-calls must be >= 1, --warmup, --copy-gib, "
                 "--time-limit >= 0, --max-measure-s and --max-gb > 0")
    return args


def cache_bytes(b, t, hkv, d):
    return 2 * b * hkv * t * d * 2  # k and v, bf16


def copies_for(kv):
    return pc.rotation_copies(kv, ROTATE_BYTES, MAX_COPIES)


def estimate_bytes(b, t, args, backend):
    """GPU memory a variant needs: the cache and its graph copies, the check, the flush."""
    kv = cache_bytes(b, t, args.hkv, args.d)
    est = kv * (1 if args.no_graph else copies_for(kv)) + pc.FLUSH_BYTES
    if not args.no_check:
        est += 2 * args.hkv * t * args.d * 4 + args.hq * t * 4 * 2  # one sequence in float32
    if backend == "math":
        g = args.hq // args.hkv
        est += kv * g + b * args.hq * t * 4 * 3  # K, V repeated to Hq heads; scores, softmax
    return est


# ---------------------------------------------------------------------------
# The peer
# ---------------------------------------------------------------------------

def sdpa_fn(q, k, v, backend):
    F = torch.nn.functional
    if backend == "default":
        return lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    from torch.nn.attention import SDPBackend, sdpa_kernel
    which = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
             "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}[backend]

    def fn():
        with sdpa_kernel(which):
            return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    return fn


def peer_name(backend):
    return "torch sdpa" if backend == "default" else "torch sdpa " + backend


def kernel_names(fn):
    """The CUDA kernels one call launches (from torch.profiler), or None."""
    try:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        names = []
        for e in prof.events():
            if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA and e.name not in names:
                names.append(e.name)
        return [n[:120] for n in names[:4]] or None
    except Exception:  # noqa: BLE001 - the profiler is a nicety
        return None


def rel_err_seq0(y, q, k, v):
    """||y[0] - ref||_F / ||ref||_F, ref = float32 attention of sequence 0 per KV head."""
    hq, d = q.shape[1], q.shape[3]
    hkv = k.shape[1]
    g = hq // hkv
    qf = q[0, :, 0, :].float().reshape(hkv, g, d)
    kf = k[0].float()
    s = torch.bmm(qf, kf.transpose(1, 2)) * (1.0 / math.sqrt(d))  # [hkv, g, T]
    del kf
    p = torch.softmax(s, dim=-1)
    del s
    vf = v[0].float()
    ref = torch.bmm(p, vf).reshape(hq, d)
    del p, vf
    got = y[0, :, 0, :].float()
    den = torch.linalg.vector_norm(ref).item()
    num = torch.linalg.vector_norm(got - ref).item()
    return num / den if den > 0 else float("inf")


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

class Output(pc.RowWriter):
    header = "%-22s %-26s %10s %10s %9s %6s %s" % (
        "peer", "shape", "us", "us(graph)", "GB/s", "%copy", "kernels")

    def copy_row(self, nbytes, us, us_graph, reps):
        best = us_graph if us_graph else us
        gbps = 2 * nbytes / (best * 1e-6) / 1e9
        row = {"op": "copy", "device": self.device, "shape": {"bytes": nbytes}, "dtype": "bf16",
               "peer": "torch copy_", "peer_us": rnd(us)}
        if us_graph:
            row["peer_us_graph"] = rnd(us_graph)
        row.update({"gbps": rnd(gbps, 1), "reps": reps})
        self._write(row)
        print("%-22s %-26s %10.2f %10s %9.1f %6s" % (
            "torch copy_", "%.2f GiB" % (nbytes / 2.0 ** 30), us,
            "-" if not us_graph else "%.2f" % us_graph, gbps, "-"))
        sys.stdout.flush()
        self.copy_gbps = gbps

    def attn_row(self, backend, b, t, args, us, reps, us_graph, graph_reps, graph_calls,
                 copies, extra):
        hq, hkv, d = args.hq, args.hkv, args.d
        kv = cache_bytes(b, t, hkv, d)
        nbytes = kv + 2 * (b * hq * d * 2)
        best = us_graph if us_graph else us
        gbps = nbytes / (best * 1e-6) / 1e9
        row = {
            "op": "attention_decode",
            "device": self.device,
            "shape": {"b": b, "t": t, "hq": hq, "hkv": hkv, "d": d},
            "dtype": "bf16",
            "peer": peer_name(backend),
            "peer_us": rnd(us),
        }
        if us_graph:
            row["peer_us_graph"] = rnd(us_graph)
        row["kv_bytes"] = kv
        row["bytes"] = nbytes
        row["gbps"] = rnd(gbps, 1)
        row["gbps_events"] = rnd(nbytes / (us * 1e-6) / 1e9, 1)
        frac = self._frac_copy(row, gbps, 4)
        if frac is not None:
            row["copy_gbps"] = rnd(self.copy_gbps, 1)
        row["reps"] = reps
        if us_graph:
            row.update({"graph_calls": graph_calls, "graph_reps": graph_reps, "cache_copies": copies})
        row.update(extra)
        self._write(row)
        print("%-22s %-26s %10.2f %10s %9.1f %6s %s" % (
            peer_name(backend), "B=%d T=%d" % (b, t), us,
            "-" if not us_graph else "%.2f" % us_graph, gbps, pc.pct(frac),
            ",".join(k.split("(")[0][:40] for k in extra.get("kernels") or [])))
        sys.stdout.flush()


# ---------------------------------------------------------------------------
# One shape
# ---------------------------------------------------------------------------

def run_shape(b, t, args, timer, out):
    hq, hkv, d = args.hq, args.hkv, args.d
    kv = cache_bytes(b, t, hkv, d)
    q = torch.randn(b, hq, 1, d, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(b, hkv, t, d, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(b, hkv, t, d, device="cuda", dtype=torch.bfloat16)
    copies = []
    try:
        for backend in args.backends:
            what = "%s B=%d T=%d" % (peer_name(backend), b, t)
            need = estimate_bytes(b, t, args, backend)
            if need > args.max_gb * 1e9:
                note("%s skipped: needs about %.1f GB (--max-gb %g)" % (what, need / 1e9, args.max_gb))
                continue
            fn = y = None
            try:
                fn = sdpa_fn(q, k, v, backend)
                y = fn()
                torch.cuda.synchronize()
                extra = {}
                if not args.no_check:
                    err = rel_err_seq0(y, q, k, v)
                    extra["rel_err"] = float("%.3g" % err)
                    if not err < MAX_REL_ERR:
                        note("%s: relative Frobenius error %.3g vs float32 (limit %g)"
                             % (what, err, MAX_REL_ERR))
                del y
                y = None
                names = kernel_names(fn)
                if names:
                    extra["kernels"] = names
                us, reps = timer.events(fn)
                usg = greps = calls = None
                if not args.no_graph:
                    try:
                        if not copies:
                            n = copies_for(kv)
                            copies = [(k, v)] + [(k.clone(), v.clone()) for _ in range(n - 1)]
                        fns = [sdpa_fn(q, kc, vc, backend) for kc, vc in copies]
                        calls = max(args.graph_calls, len(fns))
                        usg, greps = timer.graph(fns, calls)
                        del fns
                    except Exception as e:  # noqa: BLE001 - report and go on
                        if is_fatal(e):
                            raise
                        note("%s: CUDA-graph timing failed, events only (%s)" % (what, brief_exc(e)))
                        torch.cuda.synchronize()
                out.attn_row(backend, b, t, args, us, reps, usg, greps, calls, len(copies), extra)
            except Exception as e:  # noqa: BLE001 - report and go on
                if is_fatal(e) or not context_ok():
                    raise ContextBroken("%s: %s" % (what, brief_exc(e)))
                note("%s failed, skipped (%s)" % (what, brief_exc(e)))
            finally:
                fn = y = None  # noqa: F841
                torch.cuda.empty_cache()
    finally:
        copies = None
        del q, k, v
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
    try:
        torch.nn.functional.scaled_dot_product_attention(
            torch.zeros(1, 2, 1, 8, device="cuda"), torch.zeros(1, 1, 4, 8, device="cuda"),
            torch.zeros(1, 1, 4, 8, device="cuda"), enable_gqa=True)
    except TypeError as e:
        print("error: this torch's scaled_dot_product_attention has no enable_gqa (%s)" % e,
              file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - the run says per backend what fails
        note("a small enable_gqa SDPA call failed (%s); going on" % brief_exc(e))

    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = False  # a true float32 reference
    device = torch.cuda.get_device_name()
    peer_version = pc.peer_version(triton=False)
    print("device: %s   %s   cuda %s   backends: %s" % (
        device, peer_version, torch.version.cuda, ", ".join(args.backends)))

    timer = pc.Timer(args.reps, args.warmup, args.graph_calls, args.graph_reps, args.max_measure_s)
    out = Output(args.out, device, peer_version)
    t_start = time.time()
    rc = 0
    try:
        # 1. The copy: max(--copy-gib, the largest cache), timed as the attention calls are.
        if args.copy_gib > 0:
            largest = max(cache_bytes(b, t, args.hkv, args.d) for b, t in args.shapes)
            nbytes = max(int(args.copy_gib * (1 << 30)), largest) // 2 * 2
            while nbytes >= (256 << 20):
                x = y = None
                try:
                    x = torch.empty(nbytes // 2, device="cuda", dtype=torch.bfloat16).normal_()
                    y = torch.empty_like(x)
                    fn = lambda: y.copy_(x)  # noqa: E731
                    us, reps = timer.events(fn)
                    usg = None
                    if not args.no_graph:
                        try:
                            usg = timer.graph([fn], 5)[0]
                        except Exception as e:  # noqa: BLE001 - report and go on
                            if is_fatal(e):
                                raise ContextBroken("copy: %s" % brief_exc(e))
                            note("copy: CUDA-graph timing failed, events only (%s)" % brief_exc(e))
                    out.copy_row(nbytes, us, usg, reps)
                    break
                except torch.cuda.OutOfMemoryError:
                    note("copy of %.2f GiB: out of memory, halving" % (nbytes / 2.0 ** 30))
                    nbytes //= 2
                finally:
                    fn = x = y = None  # noqa: F841
                    torch.cuda.empty_cache()

        # 2. The shapes.
        for (b, t) in args.shapes:
            if args.time_limit and time.time() - t_start > args.time_limit:
                note("time limit (%.0f s) reached: B=%d T=%d and the rest skipped"
                     % (args.time_limit, b, t))
                break
            if estimate_bytes(b, t, args, "default") > args.max_gb * 1e9:
                note("B=%d T=%d skipped: needs about %.1f GB (--max-gb %g)" % (
                    b, t, estimate_bytes(b, t, args, "default") / 1e9, args.max_gb))
                continue
            try:
                run_shape(b, t, args, timer, out)
            except torch.cuda.OutOfMemoryError as e:
                note("B=%d T=%d: out of memory, skipped (%s)" % (b, t, brief_exc(e)))
                torch.cuda.empty_cache()
    except ContextBroken as e:
        note("the CUDA context broke, stopping: %s" % e, err=True)
        rc = 3
    out.close()
    print("wrote %s (%.0f s)" % (args.out, time.time() - t_start))
    return rc


if __name__ == "__main__":
    sys.exit(main())
