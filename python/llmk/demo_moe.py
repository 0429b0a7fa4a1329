"""python -m llmk.demo --moe: one mixture-of-experts block in FP8 with llmk's
ops against the same block in BF16 built from PyTorch's own ops, on random
weights of two real shapes, both replayed as CUDA graphs in one run.

  scout     Llama-4-Scout-like: 16 experts, top 1 (sigmoid), H 5120, I 8192,
            one shared expert of I 8192; FP8 with row scales.
  deepseek  DeepSeek-V3-like, one GPU's share: experts 0-31 of 256 here, top
            8 routed over all 256 (sigmoid, score-correction bias, 8 groups,
            4 kept, renormalized, scaling 2.5), picks of the other 224
            experts dropped; H 7168, I 2048, one shared expert of I 2048;
            FP8 with 1 x 128 activation and 128 x 128 weight blocks.

FP8 path (llmk): router logits (linear_bf16) -> moe_route_permute (routing and
the expert sort, one launch for a decode batch) -> moe_gather_quant -> grouped gate/up (f8f8bf16_rowwise_grouped_stacked or
f8f8bf16_groupwise_grouped) -> silu_mul_quant -> grouped down -> the shared
expert (quantize, dense FP8 gate/up, silu_mul_quant, down) -> moe_combine
adding the shared expert's output.

BF16 reference (PyTorch): F.linear router logits -> the same routing in
torch (sigmoid / topk, DeepSeek's groups) -> a stable argsort of the picks
by expert -> the gathered rows -> torch._grouped_mm gate/up -> F.silu * up
-> torch._grouped_mm down -> the weighted sum per token (index_add_ in fp32)
plus the shared expert (F.linear) -> bf16.

Prints per shape and batch the time of each path, the speedup and the
relative error (Frobenius) of the FP8 block's output against the BF16
block's, and of the residual stream after it (x + output: the sum the next
layer's fused add + RMSNorm forms, in fp32 here, outside the timed graphs);
--json FILE appends one row each (op "moe_block").
"""
import torch
import torch.nn.functional as F

from .gemm import (f8f8bf16_groupwise, f8f8bf16_groupwise_grouped, f8f8bf16_rowwise,
                   f8f8bf16_rowwise_grouped_stacked, linear_bf16)
from .moe import moe_combine, moe_gather_quant, moe_route_permute
from .norm import silu_mul_quant, silu_mul_quant_group
from .quantize import quantize_fp8_block, quantize_fp8_group, quantize_fp8_per_row

SHAPES = {  # routed over, local, top k, hidden, expert inner, shared inner, block FP8, router
    "scout": dict(E=16, G=16, k=1, H=5120, I=8192, Is=8192, block=False, router="sigmoid_topk"),
    "deepseek": dict(E=256, G=32, k=8, H=7168, I=2048, Is=2048, block=True, router="deepseek", n_group=8,
                     topk_group=4, scaling=2.5),
    "tiny": dict(E=16, G=8, k=4, H=256, I=128, Is=128, block=True, router="deepseek", n_group=4, topk_group=2,
                 scaling=2.5),  # for the tests
}
BATCHES = (16, 128, 4096)


class Weights:
    """bf16 N(0, 1/K) weights of one block and the score-correction bias."""

    def __init__(self, sh, dev, gen):
        def w(*shape):
            return (torch.randn(*shape, generator=gen, device=dev) / shape[-1] ** 0.5).to(torch.bfloat16)
        G, H, I, Is = sh["G"], sh["H"], sh["I"], sh["Is"]
        self.wr = w(sh["E"], H)
        self.w13, self.w2 = w(G, 2 * I, H), w(G, H, I)
        self.s13, self.s2 = w(2 * Is, H), w(H, Is)
        self.bias = 0.01 * (torch.arange(sh["E"], device=dev) * 7919 % 13 - 6).float()


def torch_route(logits, sh, bias):
    """(ids int64 [T, k], weights f32 [T, k]) by the rules of llmk.h, in torch's ops."""
    k, lg = sh["k"], logits.float()
    if sh["router"] == "sigmoid_topk":
        v, ids = torch.topk(lg, k, dim=-1)
        return ids, torch.sigmoid(v)
    T, E, ng = lg.shape[0], lg.shape[1], sh["n_group"]
    s = torch.sigmoid(lg)
    c = s + bias
    gs = c.view(T, ng, E // ng).topk(2, dim=-1).values.sum(-1)
    gk = torch.zeros_like(gs).scatter_(1, gs.topk(sh["topk_group"], dim=-1).indices, 1.0)
    keep = gk.repeat_interleave(E // ng, dim=1) > 0
    ids = torch.topk(c.masked_fill(~keep, float("-inf")), k, dim=-1).indices
    w = s.gather(1, ids)
    return ids, w / w.sum(-1, keepdim=True) * sh["scaling"]


def grouped_mm(a, w, offs):
    """a [R, K] rows sorted by group (group g ends at offs[g] <= R) times w[g]^T (w [G, N, K]):
    torch._grouped_mm on a GPU, a loop over the groups elsewhere."""
    if a.is_cuda:
        return torch._grouped_mm(a, w.transpose(-2, -1), offs=offs, out_dtype=torch.bfloat16)
    y = torch.zeros(a.shape[0], w.shape[1], dtype=torch.bfloat16, device=a.device)
    lo = 0
    for g, hi in enumerate(offs.tolist()):
        y[lo:hi] = F.linear(a[lo:hi], w[g])
        lo = hi
    return y


class Bf16Block:
    """The block in BF16 from PyTorch's ops (torch._grouped_mm for the experts)."""

    def __init__(self, wt, sh):
        self.wt, self.sh = wt, sh
        self.n_local = None

    def __call__(self, x):
        wt, sh = self.wt, self.sh
        T, G, k, I, Is = x.shape[0], sh["G"], sh["k"], sh["I"], sh["Is"]
        ids, w = torch_route(F.linear(x, wt.wr), sh, wt.bias)
        key = torch.where(ids < G, ids, G).flatten()  # picks of other GPUs' experts last
        order = torch.argsort(key, stable=True)
        # the local picks' count, read on the host in the eager calls before a capture (the
        # replays see the same x): the expert GEMMs then run on exactly those rows
        if self.n_local is None or not (x.is_cuda and torch.cuda.is_current_stream_capturing()):
            self.n_local = int((key < G).sum())
        sel = order[:self.n_local]
        counts = torch.zeros(G + 1, dtype=torch.int32, device=x.device).scatter_add_(
            0, key, torch.ones_like(key, dtype=torch.int32))
        offs = torch.cumsum(counts[:G], 0, dtype=torch.int32)
        tok = sel // k
        h = grouped_mm(x[tok], wt.w13, offs)
        a = F.silu(h[:, :I]) * h[:, I:]
        y = grouped_mm(a, wt.w2, offs)
        contrib = y.float() * w.flatten()[sel][:, None]
        out = torch.zeros(T, x.shape[1], dtype=torch.float32, device=x.device).index_add_(0, tok, contrib)
        hs = F.linear(x, wt.s13)
        shared = F.linear(F.silu(hs[:, :Is]) * hs[:, Is:], wt.s2)
        return (out + shared.float()).to(torch.bfloat16)


class Fp8Block:
    """The block in FP8 from llmk's ops."""

    def __init__(self, wt, sh):
        self.wt, self.sh = wt, sh
        if sh["block"]:
            def q3(w):
                wq, s = quantize_fp8_block(w.reshape(-1, w.shape[-1]), 128, 128)
                return wq.view(w.shape), s.view(w.shape[0], w.shape[1] // 128, -1)
            self.w13, self.x13 = q3(wt.w13)
            self.w2, self.x2 = q3(wt.w2)
            self.s13, self.xs13 = quantize_fp8_block(wt.s13, 128, 128)
            self.s2, self.xs2 = quantize_fp8_block(wt.s2, 128, 128)
        else:
            def q3(w):
                wq, s = quantize_fp8_per_row(w.reshape(-1, w.shape[-1]))
                return wq.view(w.shape), s.view(w.shape[0], w.shape[1])
            self.w13, self.x13 = q3(wt.w13)
            self.w2, self.x2 = q3(wt.w2)
            self.s13, self.xs13 = quantize_fp8_per_row(wt.s13)
            self.s2, self.xs2 = quantize_fp8_per_row(wt.s2)

    def __call__(self, x):
        wt, sh = self.wt, self.sh
        G, k, I, Is, blk = sh["G"], sh["k"], sh["I"], sh["Is"], sh["block"]
        logits = linear_bf16(x, wt.wr)
        if sh["router"] == "deepseek":
            _, w, sizes, _, row_of, src_of = moe_route_permute(logits, k, G, "deepseek", True, wt.bias, sh["n_group"],
                                                               sh["topk_group"], sh["scaling"])
        else:
            _, w, sizes, _, row_of, src_of = moe_route_permute(logits, k, G, sh["router"])
        xq, xs = moe_gather_quant(x, src_of, k, blk)
        if blk:
            h = f8f8bf16_groupwise_grouped(xq, self.w13, xs, self.x13, sizes)
            aq, as_ = silu_mul_quant_group(h[:, :I], h[:, I:])
            y = f8f8bf16_groupwise_grouped(aq, self.w2, as_, self.x2, sizes)
            sq, ss = quantize_fp8_group(x, 128)
            hs = f8f8bf16_groupwise(sq, self.s13, ss, self.xs13)
            bq, bs = silu_mul_quant_group(hs[:, :Is], hs[:, Is:])
            shared = f8f8bf16_groupwise(bq, self.s2, bs, self.xs2)
        else:
            h = f8f8bf16_rowwise_grouped_stacked(xq, self.w13, xs, self.x13, sizes)
            aq, as_ = silu_mul_quant(h[:, :I], h[:, I:])
            y = f8f8bf16_rowwise_grouped_stacked(aq, self.w2, as_, self.x2, sizes)
            sq, ss = quantize_fp8_per_row(x)
            hs = f8f8bf16_rowwise(sq, self.s13, ss, self.xs13)
            bq, bs = silu_mul_quant(hs[:, :Is], hs[:, Is:])
            shared = f8f8bf16_rowwise(bq, self.s2, bs, self.xs2)
        return moe_combine(y, row_of, w, shared)


def run(name, batch, reps, seed, graph_time, rel, commit):
    dev = torch.device("cuda")
    sh = SHAPES[name]
    gen = torch.Generator(device=dev).manual_seed(seed)
    wt = Weights(sh, dev, gen)
    x = torch.randn(batch, sh["H"], generator=gen, device=dev).to(torch.bfloat16)
    ref, fp8 = Bf16Block(wt, sh), Fp8Block(wt, sh)
    t_ref, y_ref = graph_time(ref, x, reps)
    t_fp8, y_fp8 = graph_time(fp8, x, reps)
    t_ref = min(t_ref, graph_time(ref, x, reps)[0])  # again, after: the peer's best of two
    return {
        "op": "moe_block", "device": torch.cuda.get_device_name(dev), "commit": commit(),
        "shape": {"model": name, "tokens": batch, **{k: v for k, v in sh.items()}},
        "llmk_us": round(t_fp8, 2),
        "backend": "llmk fp8 (%s; route, permute, gather+quantize, grouped GEMMs, combine)"
                   % ("1x128 / 128x128 blocks" if sh["block"] else "row-wise scales"),
        "peer": "torch bf16 (F.linear, torch.topk / sigmoid routing, argsort, torch._grouped_mm, index_add_)",
        "peer_us": round(t_ref, 2), "ratio": round(t_ref / t_fp8, 3), "rel_err": rel(y_fp8, y_ref),
        "rel_err_residual": rel(x.float() + y_fp8.float(), x.float() + y_ref.float()), "graph": True,
    }
