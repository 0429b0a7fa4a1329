"""The ops around a mixture-of-experts block's grouped GEMMs: routing, the
permutation of (token, slot) picks into expert order, the gathered
quantization and the weighted combine. Numerics: llmk.h's llmk_moe_route,
llmk_moe_permute, llmk_moe_gather_quant and llmk_moe_combine (bit for bit
the same on the CPU and the GPU)."""
import ctypes
from typing import Optional, Tuple

import torch

from . import _lib
from ._tensor import context, desc, expect, expect_dtype, ptr

Tensor = torch.Tensor
FP8 = torch.float8_e4m3fn
ROUTERS = {"softmax_topk": _lib.MOE_SOFTMAX_TOPK, "topk_softmax": _lib.MOE_TOPK_SOFTMAX,
           "sigmoid_topk": _lib.MOE_SIGMOID_TOPK, "deepseek": _lib.MOE_DEEPSEEK}


@torch.library.custom_op("llmk::moe_route", mutates_args=())
def moe_route(logits: Tensor, k: int, router: str = "softmax_topk", renormalize: bool = False,
              bias: Optional[Tensor] = None, n_group: int = 1, topk_group: int = 1,
              scaling: float = 1.0) -> Tuple[Tensor, Tensor]:
    """Each token's k experts (int32 [T, k], best first) and weights (f32 [T, k]) from logits
    f32 or bf16 [T, E]. router: softmax_topk (Mixtral, Qwen3), topk_softmax (gpt-oss),
    sigmoid_topk (Llama 4), deepseek (bias [E] for selection, n_group / topk_group groups)."""
    fn = "moe_route"
    expect(fn, router in ROUTERS, "router must be one of %s, got %r", ", ".join(ROUTERS), router)
    expect(fn, logits.dim() == 2, "logits must be [T, E], got %d dims", logits.dim())
    T = logits.shape[0]
    ids = torch.empty((T, k), dtype=torch.int32, device=logits.device)
    weights = torch.empty((T, k), dtype=torch.float32, device=logits.device)
    h, st = context(fn, logits, bias)
    d = _lib.MoeRouteDesc(ROUTERS[router], k, int(renormalize), n_group, topk_group, scaling)
    ref = ctypes.byref
    _lib.call("llmk_moe_route", h, ref(d), ref(desc(logits, "logits")),
              ref(desc(bias, "bias")) if bias is not None else None, ref(desc(ids, "ids")),
              ref(desc(weights, "weights")), st)
    return ids, weights


@moe_route.register_fake
def _(logits, k, router="softmax_topk", renormalize=False, bias=None, n_group=1, topk_group=1, scaling=1.0):
    T = logits.shape[0]
    return torch.empty((T, k), dtype=torch.int32, device=logits.device), \
        torch.empty((T, k), dtype=torch.float32, device=logits.device)


@torch.library.custom_op("llmk::moe_permute", mutates_args=())
def moe_permute(ids: Tensor, num_experts: int, expert_begin: int = 0,
                m_max: int = 0) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """The picks of ids int32 [T, k] sorted by local expert (experts expert_begin ..
    + num_experts - 1; others dropped), stably: (sizes [G], offsets [G + 1], row_of [T, k]
    (-1: dropped), src_of [R] (-1: no pick)). m_max = 0: the stacked layout (R = T k);
    m_max > 0: the masked layout (R = G m_max, picks past m_max dropped)."""
    fn = "moe_permute"
    expect_dtype(fn, "ids", ids, torch.int32)
    expect(fn, ids.dim() == 2, "ids must be [T, k], got %d dims", ids.dim())
    G, dev = num_experts, ids.device
    R = ids.numel() if m_max == 0 else G * m_max
    sizes = torch.empty(G, dtype=torch.int32, device=dev)
    offsets = torch.empty(G + 1, dtype=torch.int32, device=dev)
    row_of = torch.empty(ids.shape, dtype=torch.int32, device=dev)
    src_of = torch.empty(R, dtype=torch.int32, device=dev)
    h, st = context(fn, ids)
    d = _lib.MoePermuteDesc(_lib.GROUP_STACKED if m_max == 0 else _lib.GROUP_MASKED, expert_begin, m_max)
    ref = ctypes.byref
    _lib.call("llmk_moe_permute", h, ref(d), ref(desc(ids.contiguous(), "ids")), ref(desc(sizes, "sizes")),
              ref(desc(offsets, "offsets")), ref(desc(row_of, "row_of")), ref(desc(src_of, "src_of")), st)
    return sizes, offsets, row_of, src_of


@moe_permute.register_fake
def _(ids, num_experts, expert_begin=0, m_max=0):
    G, dev = num_experts, ids.device
    R = ids.numel() if m_max == 0 else G * m_max
    i32 = torch.int32
    return torch.empty(G, dtype=i32, device=dev), torch.empty(G + 1, dtype=i32, device=dev), \
        torch.empty(ids.shape, dtype=i32, device=dev), torch.empty(R, dtype=i32, device=dev)


@torch.library.custom_op("llmk::moe_route_permute", mutates_args=())
def moe_route_permute(logits: Tensor, k: int, num_experts: int, router: str = "softmax_topk",
                      renormalize: bool = False, bias: Optional[Tensor] = None, n_group: int = 1,
                      topk_group: int = 1, scaling: float = 1.0, expert_begin: int = 0,
                      m_max: int = 0) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """moe_route then moe_permute of its ids in one call (one launch for a decode batch), the
    same results: (ids, weights, sizes, offsets, row_of, src_of)."""
    fn = "moe_route_permute"
    expect(fn, router in ROUTERS, "router must be one of %s, got %r", ", ".join(ROUTERS), router)
    expect(fn, logits.dim() == 2, "logits must be [T, E], got %d dims", logits.dim())
    T, G, dev, i32 = logits.shape[0], num_experts, logits.device, torch.int32
    R = T * k if m_max == 0 else G * m_max
    ids = torch.empty((T, k), dtype=i32, device=dev)
    weights = torch.empty((T, k), dtype=torch.float32, device=dev)
    sizes, offsets = torch.empty(G, dtype=i32, device=dev), torch.empty(G + 1, dtype=i32, device=dev)
    row_of, src_of = torch.empty((T, k), dtype=i32, device=dev), torch.empty(R, dtype=i32, device=dev)
    h, st = context(fn, logits, bias)
    rd = _lib.MoeRouteDesc(ROUTERS[router], k, int(renormalize), n_group, topk_group, scaling)
    pd = _lib.MoePermuteDesc(_lib.GROUP_STACKED if m_max == 0 else _lib.GROUP_MASKED, expert_begin, m_max)
    ref = ctypes.byref
    _lib.call("llmk_moe_route_permute", h, ref(rd), ref(pd), ref(desc(logits, "logits")),
              ref(desc(bias, "bias")) if bias is not None else None, ref(desc(ids, "ids")),
              ref(desc(weights, "weights")), ref(desc(sizes, "sizes")), ref(desc(offsets, "offsets")),
              ref(desc(row_of, "row_of")), ref(desc(src_of, "src_of")), st)
    return ids, weights, sizes, offsets, row_of, src_of


@moe_route_permute.register_fake
def _(logits, k, num_experts, router="softmax_topk", renormalize=False, bias=None, n_group=1, topk_group=1,
      scaling=1.0, expert_begin=0, m_max=0):
    T, G, dev, i32 = logits.shape[0], num_experts, logits.device, torch.int32
    R = T * k if m_max == 0 else G * m_max
    return torch.empty((T, k), dtype=i32, device=dev), torch.empty((T, k), dtype=torch.float32, device=dev), \
        torch.empty(G, dtype=i32, device=dev), torch.empty(G + 1, dtype=i32, device=dev), \
        torch.empty((T, k), dtype=i32, device=dev), torch.empty(R, dtype=i32, device=dev)


@torch.library.custom_op("llmk::moe_gather_quant", mutates_args=())
def moe_gather_quant(x: Tensor, src_of: Tensor, k: int, block: bool = False,
                     scale_ub: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Rows x[src_of[r] // k] (x bf16 [T, H]) in expert order, quantized to e4m3 as
    quantize_fp8_per_row (block=False: scale [R]) or with 1 x 128 blocks (scale [R, H/128]).
    Rows no pick fills (src_of -1) are left unwritten (torch.empty)."""
    fn = "moe_gather_quant"
    expect_dtype(fn, "x", x, torch.bfloat16)
    R, H = src_of.shape[0], x.shape[-1]
    xq = torch.empty((R, H), dtype=FP8, device=x.device)
    scale = torch.empty((R, (H + 127) // 128) if block else (R,), dtype=torch.float32, device=x.device)
    h, st = context(fn, x, src_of, scale_ub)
    d = _lib.QuantDesc(_lib.SCALING_BLOCK if block else _lib.SCALING_ROW, 1, 128, ptr(scale_ub), None)
    ref = ctypes.byref
    _lib.call("llmk_moe_gather_quant", h, ref(d), ref(desc(x, "x")), ref(desc(src_of, "src_of")), k,
              ref(desc(xq, "xq")), ref(desc(scale, "scale")), st)
    return xq, scale


@moe_gather_quant.register_fake
def _(x, src_of, k, block=False, scale_ub=None):
    R, H = src_of.shape[0], x.shape[-1]
    return torch.empty((R, H), dtype=FP8, device=x.device), \
        torch.empty((R, (H + 127) // 128) if block else (R,), dtype=torch.float32, device=x.device)


@torch.library.custom_op("llmk::moe_combine", mutates_args=())
def moe_combine(y: Tensor, row_of: Tensor, weights: Tensor, add: Optional[Tensor] = None) -> Tensor:
    """out[t] = sum over slots s of weights[t, s] y[row_of[t, s]] (+ add[t]), fp32 in slot
    order, bf16 out [T, H]; y bf16 [R, H] in expert order, row_of -1 adds nothing."""
    fn = "moe_combine"
    expect_dtype(fn, "y", y, torch.bfloat16)
    T, H = row_of.shape[0], y.shape[-1]
    out = torch.empty((T, H), dtype=torch.bfloat16, device=y.device)
    h, st = context(fn, y, row_of, weights, add)
    ref = ctypes.byref
    _lib.call("llmk_moe_combine", h, ref(desc(y, "y")), ref(desc(row_of, "row_of")), ref(desc(weights, "weights")),
              ref(desc(add, "add")) if add is not None else None, ref(desc(out, "out")), st)
    return out


@moe_combine.register_fake
def _(y, row_of, weights, add=None):
    return torch.empty((row_of.shape[0], y.shape[-1]), dtype=torch.bfloat16, device=y.device)
