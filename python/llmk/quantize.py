"""FP8 quantization ops (torch.ops.llmk.quantize_fp8_*), named and ordered
as FBGEMM's torch.ops.fbgemm twins. Each returns (xq, scale) with the
*dequantization* scale (x ~ xq * scale), computed bit for bit as llmk.h's
llmk_quantize_fp8 says (the same on CPU and CUDA tensors)."""
import ctypes
from typing import Optional, Tuple

import torch

from . import _lib
from ._tensor import context, desc, expect, expect_dtype, ptr, rows2d

Tensor = torch.Tensor
FP8 = torch.float8_e4m3fn


def _cdiv(a, b):
    return (a + b - 1) // b


def _run(fn, x, scaling, scale, block=(0, 0), scale_ub=None, num_rows=None, fp8=FP8):
    """xq (same shape as x) and the given scale buffer filled by llmk."""
    expect_dtype(fn, "input", x, torch.float32, torch.float16, torch.bfloat16)
    expect(fn, x.dim() >= 1, "input must have at least 1 dim")
    if scale_ub is not None:
        expect_dtype(fn, "scale_ub", scale_ub, torch.float32)
        expect(fn, scale_ub.numel() == 1, "scale_ub must hold one value, got shape %s", tuple(scale_ub.shape))
    if num_rows is not None:
        expect_dtype(fn, "bs", num_rows, torch.int64)
        expect(fn, num_rows.numel() == 1, "bs must hold one value, got shape %s", tuple(num_rows.shape))
    xq = torch.empty(x.shape, dtype=fp8, device=x.device)
    x2, xq2 = rows2d(x), rows2d(xq)
    h, st = context(fn, x, scale_ub, num_rows)
    d = _lib.QuantDesc(scaling, block[0], block[1], ptr(scale_ub), ptr(num_rows))
    _lib.call("llmk_quantize_fp8", h, ctypes.byref(d), ctypes.byref(desc(x2, "input")),
              ctypes.byref(desc(xq2, "xq")), ctypes.byref(desc(scale, "scale")), st)
    return xq


def _rows(x):
    n = 1
    for s in x.shape[:-1]:
        n *= s
    return n


@torch.library.custom_op("llmk::quantize_fp8_per_row", mutates_args=())
def quantize_fp8_per_row(input: Tensor, bs: Optional[Tensor] = None,
                         scale_ub: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """One scale per row of input [..., K] (f32, f16 or bf16): (xq e4m3 [..., K], scale f32 [...]).
    scale_ub: optional f32 [1] upper bound of each row's amax. bs must be None (rows are all
    quantized; FBGEMM's bs applies to per-tensor scaling)."""
    expect("quantize_fp8_per_row", bs is None, "bs is only supported by quantize_fp8_per_tensor")
    scale = torch.empty(input.shape[:-1], dtype=torch.float32, device=input.device)
    xq = _run("quantize_fp8_per_row", input, _lib.SCALING_ROW, scale.view(-1), scale_ub=scale_ub)
    return xq, scale


@quantize_fp8_per_row.register_fake
def _(input, bs=None, scale_ub=None):
    return torch.empty(input.shape, dtype=FP8, device=input.device), \
        torch.empty(input.shape[:-1], dtype=torch.float32, device=input.device)


@torch.library.custom_op("llmk::quantize_fp8_per_tensor", mutates_args=())
def quantize_fp8_per_tensor(input: Tensor, bs: Optional[Tensor] = None,
                            scale_ub: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """One scale for the tensor: (xq e4m3, scale f32 of shape []). bs: optional i64 [1], the
    number of leading rows the scale is taken over (all rows are quantized)."""
    scale = torch.empty((), dtype=torch.float32, device=input.device)
    xq = _run("quantize_fp8_per_tensor", input, _lib.SCALING_TENSOR, scale.view(1), scale_ub=scale_ub,
              num_rows=bs)
    return xq, scale


@quantize_fp8_per_tensor.register_fake
def _(input, bs=None, scale_ub=None):
    return torch.empty(input.shape, dtype=FP8, device=input.device), \
        torch.empty((), dtype=torch.float32, device=input.device)


@torch.library.custom_op("llmk::quantize_fp8_per_col", mutates_args=())
def quantize_fp8_per_col(input: Tensor, scale_ub: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """One scale per column of input [..., K]: (xq e4m3, scale f32 [K])."""
    scale = torch.empty(input.shape[-1:], dtype=torch.float32, device=input.device)
    xq = _run("quantize_fp8_per_col", input, _lib.SCALING_COL, scale, scale_ub=scale_ub)
    return xq, scale


@quantize_fp8_per_col.register_fake
def _(input, scale_ub=None):
    return torch.empty(input.shape, dtype=FP8, device=input.device), \
        torch.empty(input.shape[-1:], dtype=torch.float32, device=input.device)


@torch.library.custom_op("llmk::quantize_fp8_block", mutates_args=())
def quantize_fp8_block(x: Tensor, block_m: int = 128, block_k: int = 128,
                       scale_ub: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """One scale per block_m x block_k block of x [..., K] (leading dims as rows M):
    (xq e4m3, scale f32 [ceil(M / block_m), ceil(K / block_k)]). 128 x 128 is the
    DeepSeek-V3 weight recipe."""
    expect("quantize_fp8_block", block_m >= 1 and block_k >= 1, "block sizes must be positive, got %d x %d",
           block_m, block_k)
    scale = torch.empty((_cdiv(_rows(x), block_m), _cdiv(x.shape[-1], block_k)), dtype=torch.float32,
                        device=x.device)
    xq = _run("quantize_fp8_block", x, _lib.SCALING_BLOCK, scale, (block_m, block_k), scale_ub=scale_ub)
    return xq, scale


@quantize_fp8_block.register_fake
def _(x, block_m=128, block_k=128, scale_ub=None):
    return torch.empty(x.shape, dtype=FP8, device=x.device), \
        torch.empty((_cdiv(_rows(x), block_m), _cdiv(x.shape[-1], block_k)), dtype=torch.float32,
                    device=x.device)


@torch.library.custom_op("llmk::quantize_fp8_group", mutates_args=())
def quantize_fp8_group(x: Tensor, group_size: int = 128,
                       scale_ub: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """One scale per group of group_size consecutive elements of a row (the
    activations' 1 x 128 recipe): (xq e4m3, scale f32 [..., ceil(K / group_size)])."""
    expect("quantize_fp8_group", group_size >= 1, "group_size must be positive, got %d", group_size)
    scale = torch.empty(x.shape[:-1] + (_cdiv(x.shape[-1], group_size),), dtype=torch.float32, device=x.device)
    xq = _run("quantize_fp8_group", x, _lib.SCALING_BLOCK, scale.view(-1, scale.shape[-1]), (1, group_size),
              scale_ub=scale_ub)
    return xq, scale


@quantize_fp8_group.register_fake
def _(x, group_size=128, scale_ub=None):
    return torch.empty(x.shape, dtype=FP8, device=x.device), \
        torch.empty(x.shape[:-1] + (_cdiv(x.shape[-1], group_size),), dtype=torch.float32, device=x.device)
