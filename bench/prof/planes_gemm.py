"""Decode GEMM cost of two-plane activations: for Llama-3 8B / 70B
layer weights at M tokens, times in CUDA graphs (weights rotated over
>= 256 MiB of copies, so every call reads them from HBM, as in a model):
  llmk two planes (f8f8bf16_rowwise_planes, 2M plane rows),
  llmk one plane (f8f8bf16_rowwise, M rows),
  torch._scaled_mm one plane (row-wise scales, the peer), torch BF16 matmul,
and the relative error of each FP8 result against the BF16 product of the
unquantized activation with the dequantized weights. One JSON line per shape
with --json FILE.

  LLMK_LIBRARY=build/libllmk.so PYTHONPATH=python python3 bench/prof/planes_gemm.py
"""
import argparse
import json
import os

import torch

import llmk
from llmk.demo import graph_time, rel

SHAPES = {  # name: (N, K)
    "8B.w13": (28672, 4096), "8B.down": (4096, 14336), "8B.qkv": (6144, 4096),
    "70B.w13": (57344, 8192), "70B.down": (8192, 28672), "70B.qkv": (10240, 8192),
}


def timed(fn, copies, reps):
    """Median us of one call of fn(w), from a graph of one call per weight copy; its last output."""
    t, out = graph_time(lambda _: [fn(c) for c in copies][-1], None, reps)
    return t / len(copies), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--m", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES))
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--json", default="")
    ap.add_argument("--sweep", nargs="*", default=[],
                    help="NAME=VALUE dispatcher settings to time as well (LLMK_GEMM_SPLITS=2, LLMK_GEMM_OWN_CFG=22)")
    ap.add_argument("--commit", default=os.environ.get("LLMK_COMMIT", "unknown"))
    a = ap.parse_args()
    dev = torch.device("cuda")
    torch.manual_seed(0)
    gpu = torch.cuda.get_device_name(dev)
    print(f"{gpu}; us per call in CUDA graphs, weights cold in L2; err vs bf16(x) . dequant(W)")
    print(f"{'shape':10} {'M':>4} {'2 planes':>9} {'1 plane':>8} {'_scaled_mm':>10} {'bf16':>8} "
          f"{'2p/mm':>6} {'err 2p':>8} {'err 1p':>8} {'err mm':>8}")
    out = open(a.json, "a") if a.json else None
    for name in a.shapes:
        N, K = SHAPES[name]
        wb = torch.randn(N, K, device=dev, dtype=torch.bfloat16) / K ** 0.5
        wq, ws = llmk.quantize_fp8_per_row(wb)
        ncopy = max(2, (256 << 20) // (N * K) + 1)
        wqs = [wq.clone() for _ in range(ncopy)]
        wbs = [wb.clone() for _ in range(max(2, ncopy // 2))]
        wdq = wq.float() * ws[:, None]
        wsT = ws.reshape(1, N)
        for M in a.m:
            x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
            ones = torch.ones(K, device=dev, dtype=torch.bfloat16)
            # the decoder layer's inputs: an RMSNorm's output, one or two planes
            x2q, x2s = llmk.rmsnorm_quantize_fp8_planes(x, ones, 1e-5)
            x1q, x1s = llmk.rmsnorm_quantize_fp8(x, ones, 1e-5)
            xn = llmk.rmsnorm(x, ones, 1e-5)
            ref = (xn.float() @ wdq.t())
            t2, y2 = timed(lambda w: llmk.f8f8bf16_rowwise_planes(x2q, w, x2s, ws), wqs, a.reps)
            t1, y1 = timed(lambda w: llmk.f8f8bf16_rowwise(x1q, w, x1s, ws), wqs, a.reps)
            xs_col = x1s.reshape(M, 1)
            tm, ym = timed(lambda w: torch._scaled_mm(x1q, w.t(), scale_a=xs_col, scale_b=wsT,
                                                      out_dtype=torch.bfloat16, use_fast_accum=True), wqs, a.reps)
            tb, _ = timed(lambda w: xn @ w.t(), wbs, a.reps)
            e2, e1, em = rel(y2, ref), rel(y1, ref), rel(ym, ref)
            for env in a.sweep:
                # a configuration forced through the dispatcher's environment (read at capture)
                k, v = env.split("=")
                old = os.environ.get(k)
                os.environ[k] = v
                try:
                    ts2, _ = timed(lambda w: llmk.f8f8bf16_rowwise_planes(x2q, w, x2s, ws), wqs, a.reps)
                    ts1, _ = timed(lambda w: llmk.f8f8bf16_rowwise(x1q, w, x1s, ws), wqs, a.reps)
                    print(f"    {env:24} 2 planes {ts2:7.1f}  1 plane {ts1:7.1f}")
                    if out:
                        out.write(json.dumps({"bench": "planes_gemm_sweep", "gpu": gpu, "commit": a.commit,
                                              "shape": name, "M": M, "env": env, "us_two_planes": round(ts2, 2),
                                              "us_one_plane": round(ts1, 2)}) + "\n")
                except Exception as ex:  # a forced configuration the shape cannot take
                    print(f"    {env:24} failed: {ex}")
                finally:
                    if old is None:
                        del os.environ[k]
                    else:
                        os.environ[k] = old
            print(f"{name:10} {M:4d} {t2:9.1f} {t1:8.1f} {tm:10.1f} {tb:8.1f} {tm / t2:6.2f} "
                  f"{e2:8.2e} {e1:8.2e} {em:8.2e}")
            if out:
                out.write(json.dumps({"bench": "planes_gemm", "gpu": gpu, "commit": a.commit, "shape": name,
                                      "M": M, "N": N, "K": K, "us_two_planes": round(t2, 2),
                                      "us_one_plane": round(t1, 2), "us_scaled_mm": round(tm, 2),
                                      "us_bf16": round(tb, 2), "err_two_planes": e2, "err_one_plane": e1,
                                      "err_scaled_mm": em}) + "\n")
        del wqs, wbs
    if out:
        out.close()


if __name__ == "__main__":
    main()
