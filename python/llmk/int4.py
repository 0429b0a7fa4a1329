"""INT4 weights (llmk.h, "INT4 weights"): 4-bit codes [N, K/2] (two a byte, the even element
in the low nibble), one bf16 scale per group of 64 or 128 elements of a row and, asymmetric,
one zero point (uint8, 0 .. 15) per group; an element stands for bf16((q - z) * s), z = 8 for
symmetric weights. int4_quantize / int4_dequantize run on CPU or CUDA tensors (the same bits);
int4_import converts a GPTQ, AWQ or row-packed checkpoint's tensors (on the CPU); gemm_w4a16
(also named bf16i4bf16_rowwise, FBGEMM's op of the same kind; the weight in llmk's format)
multiplies bf16 activations by such a weight."""
import ctypes
from typing import Optional, Tuple

import torch

from . import _lib
from ._tensor import context, desc, expect, expect_dtype

Tensor = torch.Tensor
PACKINGS = {"gptq": _lib.INT4_GPTQ, "awq": _lib.INT4_AWQ, "rows": _lib.INT4_ROWS}


def _shapes(N, K, group):
    return (N, K // 2), (N, K // group)


@torch.library.custom_op("llmk::int4_quantize", mutates_args=())
def int4_quantize(w: Tensor, group: int = 128, asymmetric: bool = False) -> Tuple[Tensor, Tensor, Tensor]:
    """w bf16 [N, K] -> (codes uint8 [N, K/2], scales bf16 [N, K/group], zeros uint8
    [N, K/group]; zeros all 8 when symmetric), round to nearest (llmk_int4_quantize's rules)."""
    fn = "int4_quantize"
    expect_dtype(fn, "w", w, torch.bfloat16)
    expect(fn, w.dim() == 2, "w must be [N, K], got %d dims", w.dim())
    N, K = w.shape
    cs, ss = _shapes(N, K, group)
    codes = torch.empty(cs, dtype=torch.uint8, device=w.device)
    scales = torch.empty(ss, dtype=torch.bfloat16, device=w.device)
    zeros = (torch.empty(ss, dtype=torch.uint8, device=w.device) if asymmetric
             else torch.full(ss, 8, dtype=torch.uint8, device=w.device))
    h, st = context(fn, w)
    d = _lib.Int4Desc(group, int(asymmetric))
    ref = ctypes.byref
    _lib.call("llmk_int4_quantize", h, ref(d), ref(desc(w, "w")), ref(desc(codes, "codes")),
              ref(desc(scales, "scales")), ref(desc(zeros, "zeros")) if asymmetric else None, st)
    return codes, scales, zeros


@int4_quantize.register_fake
def _(w, group=128, asymmetric=False):
    cs, ss = _shapes(w.shape[0], w.shape[1], group)
    return w.new_empty(cs, dtype=torch.uint8), w.new_empty(ss, dtype=torch.bfloat16), \
        w.new_empty(ss, dtype=torch.uint8)


@torch.library.custom_op("llmk::int4_dequantize", mutates_args=())
def int4_dequantize(codes: Tensor, scales: Tensor, zeros: Optional[Tensor] = None, group: int = 128,
                    dtype: torch.dtype = torch.bfloat16) -> Tensor:
    """The weight [N, K] the codes stand for, bf16 ((q - z) s rounded once) or f32 (exact);
    zeros None: symmetric (every zero point 8)."""
    fn = "int4_dequantize"
    expect_dtype(fn, "codes", codes, torch.uint8)
    expect(fn, dtype in (torch.bfloat16, torch.float32), "dtype must be bf16 or f32, got %s", dtype)
    y = torch.empty((codes.shape[0], codes.shape[1] * 2), dtype=dtype, device=codes.device)
    h, st = context(fn, codes, scales, zeros)
    d = _lib.Int4Desc(group, int(zeros is not None))
    ref = ctypes.byref
    _lib.call("llmk_int4_dequantize", h, ref(d), ref(desc(codes, "codes")), ref(desc(scales, "scales")),
              ref(desc(zeros, "zeros")) if zeros is not None else None, ref(desc(y, "y")), st)
    return y


@int4_dequantize.register_fake
def _(codes, scales, zeros=None, group=128, dtype=torch.bfloat16):
    return codes.new_empty((codes.shape[0], codes.shape[1] * 2), dtype=dtype)


def int4_import(qweight: Tensor, scales: Tensor, qzeros: Optional[Tensor] = None, packing: str = "gptq",
                group: int = 128, asymmetric: bool = True, zero_plus_one: bool = False,
                N: Optional[int] = None, K: Optional[int] = None) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """A checkpoint's int32 qweight / qzeros and f16 or bf16 scales [K/group, N] (CPU tensors) ->
    llmk's (codes, scales, zeros or None) on the CPU. packing: gptq (qweight [K/8, N]), awq
    ([K, N/8], AWQ's column order) or rows ([N, K/8]); zero_plus_one: GPTQ's first format."""
    fn = "int4_import"
    expect(fn, packing in PACKINGS, "packing must be one of %s, got %r", ", ".join(PACKINGS), packing)
    expect_dtype(fn, "qweight", qweight, torch.int32)
    expect_dtype(fn, "scales", scales, torch.float16, torch.bfloat16)
    expect(fn, not qweight.is_cuda and not scales.is_cuda, "int4_import reads host memory: pass CPU tensors")
    if N is None or K is None:
        N, K = {"gptq": (qweight.shape[1], qweight.shape[0] * 8), "awq": (qweight.shape[1] * 8, qweight.shape[0]),
                "rows": (qweight.shape[0], qweight.shape[1] * 8)}[packing]
    qweight, scales = qweight.contiguous(), scales.contiguous()
    if qzeros is not None:
        expect_dtype(fn, "qzeros", qzeros, torch.int32)
        qzeros = qzeros.contiguous()
    cs, ss = _shapes(N, K, group)
    codes = torch.empty(cs, dtype=torch.uint8)
    out_scales = torch.empty(ss, dtype=torch.bfloat16)
    zeros = torch.empty(ss, dtype=torch.uint8) if asymmetric else None
    d = _lib.Int4Desc(group, int(asymmetric))
    im = _lib.Int4ImportDesc(PACKINGS[packing], int(zero_plus_one),
                             _lib.F16 if scales.dtype == torch.float16 else _lib.BF16)
    _lib.call("llmk_int4_import", ctypes.byref(d), ctypes.byref(im), N, K, qweight.data_ptr(),
              qzeros.data_ptr() if qzeros is not None else None, scales.data_ptr(), codes.data_ptr(),
              out_scales.data_ptr(), zeros.data_ptr() if zeros is not None else None)
    return codes, out_scales, zeros


@torch.library.custom_op("llmk::gemm_w4a16", mutates_args=())
def gemm_w4a16(x: Tensor, codes: Tensor, scales: Tensor, zeros: Optional[Tensor] = None,
               bias: Optional[Tensor] = None, group: int = 128) -> Tensor:
    """y = bf16(x @ W^T + bias) for bf16 x [..., K] and W [N, K] in INT4 (codes [N, K/2],
    scales [N, K/group], zeros None for symmetric weights): llmk_gemm_w4a16, whose result is
    llmk_gemm_bf16's on the dequantized weight up to the order of the fp32 sums."""
    fn = "gemm_w4a16"
    expect_dtype(fn, "x", x, torch.bfloat16)
    expect_dtype(fn, "codes", codes, torch.uint8)
    expect(fn, codes.dim() == 2, "codes must be [N, K/2], got %d dims", codes.dim())
    x = x if x.stride(-1) == 1 else x.contiguous()
    y = torch.empty(x.shape[:-1] + (codes.shape[0],), dtype=torch.bfloat16, device=x.device)
    h, st = context(fn, x, codes, scales, zeros, bias)
    d = _lib.Int4Desc(group, int(zeros is not None))
    ref = ctypes.byref
    _lib.call("llmk_gemm_w4a16", h, ref(d), ref(desc(x, "x")), ref(desc(codes, "codes")),
              ref(desc(scales, "scales")), ref(desc(zeros, "zeros")) if zeros is not None else None,
              ref(desc(bias, "bias")) if bias is not None else None, ref(desc(y, "y")), st)
    return y


@gemm_w4a16.register_fake
def _(x, codes, scales, zeros=None, bias=None, group=128):
    return x.new_empty(x.shape[:-1] + (codes.shape[0],), dtype=torch.bfloat16)


bf16i4bf16_rowwise = gemm_w4a16
