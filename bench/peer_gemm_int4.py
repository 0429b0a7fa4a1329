#!/usr/bin/env python3
"""llmk_gemm_w4a16 (bf16 x INT4 -> bf16) against FBGEMM GenAI's INT4 GEMMs and
the FP8 / BF16 GEMMs of the same shapes, in one run, under CUDA graphs, the L2
flushed before every replay (peer_common.Timer):

  llmk.gemm_w4a16           groups of 128, zero points (AWQ/GPTQ-like)
  fbgemm.bf16i4bf16_rowwise    its own quantizer's weight (int4_row_quantize_zp)
  fbgemm.bf16i4bf16_shuffled   its preshuffled weight (quantize_int4_preshuffle)
  llmk.f8f8bf16_rowwise     the FP8 row-wise GEMM (x already quantized)
  llmk.linear_bf16, torch.nn.functional.linear   BF16

Shapes: Llama-3.1 8B and 70B's four projections (the set the INT4 work is
measured on) and Qwen2.5 7B and 72B's (never looked at while writing the
kernels), at M = 1, 16, 1024, 4096 by default. Each llmk row is checked first:
relative Frobenius error against x @ dequantize(W)^T in fp64 (<= 1e-2).
Roofline: the weight's bytes (codes, bf16 scales, u8 zeros) over the read
bandwidth measured in the same run (a large reduction), and over the card's
spec peak. Rows go to --out (JSON lines): op, model, layer, m, n, k, llmk_us,
peers {name: us}, x_fbgemm (best FBGEMM INT4 peer over llmk), x_fp8 (llmk's
FP8 GEMM over llmk's W4A16), gbps, frac_read, frac_spec, rel_err, ok, commit,
and the results-file form (peer, peer_us, ratio: the best FBGEMM peer).

    python3 bench/peer_gemm_int4.py --out gemm_int4.jsonl
    python3 bench/peer_gemm_int4.py --dry-run
    python3 bench/peer_gemm_int4.py --summary gemm_int4.jsonl
"""
import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_common as pc  # noqa: E402

# (hidden, intermediate, query heads, kv heads) at TP 1; head dim 128
MODELS = {"llama3.1-8b": (4096, 14336, 32, 8), "llama3.1-70b": (8192, 28672, 64, 8),
          "qwen2.5-7b": (3584, 18944, 28, 4), "qwen2.5-72b": (8192, 29568, 64, 8)}
TUNED_ON = ("llama3.1-8b", "llama3.1-70b")
MS = (1, 16, 1024, 4096)
GROUP = 128
SPEC_GBPS = {"H100": 3352.0, "H200": 4800.0}


def layers(model):
    h, i, q, kv = MODELS[model]
    return [("qkv", (q + 2 * kv) * 128, h), ("o", h, q * 128), ("gate_up", 2 * i, h), ("down", h, i)]


def plan(args):
    return [(mo, la, n, k, m) for mo in args.models for la, n, k in layers(mo) for m in args.ms]


def dry_run(args):
    rows = plan(args)
    for mo, la, n, k, m in rows:
        print("%-13s %-8s %6d x %6d  M %5d" % (mo, la, n, k, m))
    print("rows: %d" % len(rows))
    return 0


def summarize(paths):
    rows = pc.read_jsonl_rows(paths, lambda r: r.get("op") == "gemm_w4a16",
                              lambda r: (r.get("model"), r.get("layer"), r.get("m")))
    out = {}
    for part, keep in (("decode M<=16", lambda r: r["m"] <= 16), ("prefill M>=1024", lambda r: r["m"] >= 1024)):
        rs = [r for r in rows if keep(r)]
        xs = [r["x_fbgemm"] for r in rs if r.get("x_fbgemm")]
        f8 = [r["x_fp8"] for r in rs if r.get("x_fp8")]
        out[part] = {"rows": len(rs), "ok": sum(bool(r.get("ok")) for r in rs),
                     "x_fbgemm_geomean": math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None,
                     "x_fbgemm_min": min(xs) if xs else None,
                     "x_fp8_geomean": math.exp(sum(map(math.log, f8)) / len(f8)) if f8 else None,
                     "frac_read_min": min((r["frac_read"] for r in rs if r.get("frac_read")), default=None)}
    return out


def print_summary(s):
    for part, v in s.items():
        f = lambda x: "-" if x is None else "%.3f" % x  # noqa: E731
        print("%-16s rows %3d ok %3d  x FBGEMM geomean %s min %s  x llmk FP8 geomean %s  min roofline %s" %
              (part, v["rows"], v["ok"], f(v["x_fbgemm_geomean"]), f(v["x_fbgemm_min"]), f(v["x_fp8_geomean"]),
               f(v["frac_read_min"])))


def read_gbps(torch, timer):
    """Read bandwidth of a 2 GiB reduction (median of graph replays)."""
    t = torch.empty(2 << 30, dtype=torch.uint8, device="cuda").view(torch.float32)
    t.fill_(1.0)
    us, _ = timer.graph(lambda: t.sum(), calls=2)
    del t
    return (2 << 30) / us / 1e3


def run(args):
    torch = pc.load_torch()
    import torch.nn.functional as F
    import llmk
    fbq = None
    if not args.no_fbgemm:
        try:
            import fbgemm_gpu.experimental.gen_ai  # noqa: F401  (registers torch.ops.fbgemm.*)
            from fbgemm_gpu.experimental.gen_ai import quantize as fbq
        except Exception as e:  # noqa: BLE001  (a peer that does not load is recorded as missing)
            pc.note("FBGEMM did not load: %s" % pc.brief_exc(e), err=True)
    timer = pc.Timer(args.reps, 3, 10, args.reps)
    rd = read_gbps(torch, timer)
    dev = torch.cuda.get_device_name()
    spec = next((v for k, v in SPEC_GBPS.items() if k in dev), None)
    pc.note("read bandwidth %.0f GB/s (spec %s)" % (rd, spec))
    commit = args.commit or os.environ.get("LLMK_COMMIT", "unknown")
    out = open(args.out, "w", encoding="utf-8")
    torch.manual_seed(args.seed)
    weights = {}
    for mo, la, N, K, M in plan(args):
        if (mo, la) not in weights:
            weights.clear()
            torch.cuda.empty_cache()
            w = (torch.randn(N, K, device="cuda") * 0.02).to(torch.bfloat16)
            codes, scales, zeros = llmk.int4_quantize(w, GROUP, True)
            wd = llmk.int4_dequantize(codes, scales, zeros, GROUP)
            wq8, ws8 = llmk.quantize_fp8_per_row(w)
            fb = {}
            if fbq is not None:
                try:
                    q, s, z = fbq.int4_row_quantize_zp(w, GROUP)
                    fb["rowwise"] = (fbq.pack_int4(q), s, z)
                    wq, (gs, gz) = fbq.quantize_int4_preshuffle(w, GROUP, dtype="bf16")
                    fb["shuffled"] = (wq, gs, gz)
                except Exception as e:  # noqa: BLE001
                    pc.note("%s %s: FBGEMM quantize: %s" % (mo, la, pc.brief_exc(e)), err=True)
            weights[(mo, la)] = (w, codes, scales, zeros, wd, wq8, ws8, fb)
        w, codes, scales, zeros, wd, wq8, ws8, fb = weights[(mo, la)]
        x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        y = llmk.gemm_w4a16(x, codes, scales, zeros, None, GROUP)
        ref = x.double() @ wd.double().t()
        rel = float((y.double() - ref).norm() / ref.norm())
        xq, xs = llmk.quantize_fp8_per_row(x)
        fns = {"llmk.gemm_w4a16": lambda: llmk.gemm_w4a16(x, codes, scales, zeros, None, GROUP),
               "llmk.f8f8bf16_rowwise": lambda: llmk.f8f8bf16_rowwise(xq, wq8, xs, ws8),
               "llmk.linear_bf16": lambda: llmk.linear_bf16(x, w),
               "torch.linear_bf16": lambda: F.linear(x, w)}
        if "rowwise" in fb:
            fns["fbgemm.bf16i4bf16_rowwise"] = lambda: torch.ops.fbgemm.bf16i4bf16_rowwise(x, *fb["rowwise"])
        if "shuffled" in fb:
            fns["fbgemm.bf16i4bf16_shuffled"] = lambda: torch.ops.fbgemm.bf16i4bf16_shuffled(x, *fb["shuffled"])
        times = {}
        for name, fn in fns.items():
            try:
                times[name] = timer.graph(fn)[0]
            except Exception as e:  # noqa: BLE001
                pc.note("%s %s M %d %s: %s" % (mo, la, M, name, pc.brief_exc(e)), err=True)
        us = times.pop("llmk.gemm_w4a16", None)
        if us is None:
            continue
        wbytes = N * K / 2 + N * (K / GROUP) * 3.0
        row = {"op": "gemm_w4a16", "device": dev, "model": mo, "layer": la, "m": M, "n": N, "k": K,
               "tuned_on": mo in TUNED_ON, "shape": {"m": M, "n": N, "k": K, "layer": "%s %s" % (mo, la)},
               "llmk_us": pc.rnd(us), "peers": {k: pc.rnd(v) for k, v in times.items()}, "rel_err": pc.rnd(rel, 6),
               "ok": rel <= 1e-2, "gbps": pc.rnd(wbytes / us / 1e3, 1), "frac_read": pc.rnd(wbytes / us / 1e3 / rd),
               "frac_spec": pc.rnd(wbytes / us / 1e3 / spec) if spec else None, "read_gbps": pc.rnd(rd, 1),
               "commit": commit}
        fbp = {k: v for k, v in times.items() if k.startswith("fbgemm.")}
        if fbp:
            best = min(fbp, key=fbp.get)
            row["x_fbgemm"] = pc.rnd(fbp[best] / us)
            row["peer"], row["peer_us"], row["ratio"] = best, pc.rnd(fbp[best]), row["x_fbgemm"]
        if "llmk.f8f8bf16_rowwise" in times:
            row["x_fp8"] = pc.rnd(times["llmk.f8f8bf16_rowwise"] / us)
        out.write(json.dumps(row) + "\n")
        out.flush()
        print("%-13s %-8s M %5d  llmk %9.1f us (%4.0f%% read bw, err %.1e)  %s" %
              (mo, la, M, us, 100 * wbytes / us / 1e3 / rd, rel, {k: round(v, 1) for k, v in times.items()}))
    out.close()
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="JSON-lines output file (overwritten)")
    ap.add_argument("--models", type=lambda s: s.split(","), default=list(MODELS))
    ap.add_argument("--ms", type=lambda s: [int(v) for v in s.split(",")], default=list(MS))
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--commit", default=None)
    ap.add_argument("--no-fbgemm", action="store_true")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--summary", nargs="+", metavar="FILE")
    ap.add_argument("--summary-json", action="store_true")
    args = ap.parse_args()
    for m in args.models:
        if m not in MODELS:
            ap.error("unknown model %r (known: %s)" % (m, ", ".join(MODELS)))
    if not (args.summary or args.dry_run or args.out):
        ap.error("--out is needed for a timed run")
    return pc.main_modes(args, summarize, print_summary, dry_run, run)


if __name__ == "__main__":
    sys.exit(main())
