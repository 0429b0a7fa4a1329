"""FP8 and BF16 GEMMs with BF16 output (torch.ops.llmk.f8f8bf16_*, linear_bf16):
Y[..., n] = bf16(sum_k XQ[..., k] WQ[n, k] * scales + bias[n]), W as [N, K]
(as nn.Linear's weight and FBGEMM's ops). Numerics: llmk.h's llmk_gemm_fp8
and llmk_gemm_bf16."""
import ctypes
from typing import Optional

import torch

from . import _lib
from ._tensor import context, desc, expect, expect_dtype, rows2d

Tensor = torch.Tensor
FP8 = torch.float8_e4m3fn


def _out(x, w):
    return torch.empty(x.shape[:-1] + (w.shape[0],), dtype=torch.bfloat16, device=x.device)


def _gemm_fp8(fn, scaling, accum, XQ, WQ, x_scale, w_scale, bias, planes=1):
    expect_dtype(fn, "XQ", XQ, FP8)
    expect_dtype(fn, "WQ", WQ, FP8)
    expect(fn, XQ.dim() >= 1 and WQ.dim() == 2, "XQ must be [..., K] and WQ [N, K], got %s and %s",
           tuple(XQ.shape), tuple(WQ.shape))
    expect(fn, XQ.shape[-1] == WQ.shape[1], "K differs: XQ [..., %d], WQ [%d, %d]", XQ.shape[-1], *WQ.shape)
    if planes == 2:
        expect(fn, XQ.dim() >= 2 and XQ.shape[-2] == 2, "XQ must be [..., 2, K] (two planes), got %s",
               tuple(XQ.shape))
        y = _out(XQ[..., 0, :], WQ)
        x2, y2 = XQ.reshape(-1, 2, XQ.shape[-1]), rows2d(y)
    else:
        y = _out(XQ, WQ)
        x2, y2 = rows2d(XQ), rows2d(y)
    if scaling == _lib.SCALING_ROW:
        x_scale = x_scale.reshape(-1)
    elif scaling == _lib.SCALING_TENSOR:
        x_scale, w_scale = x_scale.reshape(1), w_scale.reshape(1)
    h, st = context(fn, XQ, WQ, x_scale, w_scale, bias)
    d = _lib.GemmDesc(scaling, accum, _lib.GEMM_AUTO, planes)
    _lib.call("llmk_gemm_fp8", h, ctypes.byref(d), ctypes.byref(desc(x2, "XQ")), ctypes.byref(desc(WQ, "WQ")),
              ctypes.byref(desc(x_scale, "x_scale")), ctypes.byref(desc(w_scale, "w_scale")),
              ctypes.byref(desc(bias, "bias")) if bias is not None else None, ctypes.byref(desc(y2, "output")), st)
    return y


def _accum(use_fast_accum):
    return _lib.ACCUM_FAST if use_fast_accum else _lib.ACCUM_FP32


@torch.library.custom_op("llmk::f8f8bf16_rowwise", mutates_args=())
def f8f8bf16_rowwise(XQ: Tensor, WQ: Tensor, x_scale: Tensor, w_scale: Tensor, bias: Optional[Tensor] = None,
                     use_fast_accum: bool = True) -> Tensor:
    """XQ [..., K] e4m3 with x_scale f32 [...] (one per row), WQ [N, K] e4m3 with w_scale f32 [N],
    bias None or f32/bf16 [N] -> bf16 [..., N]."""
    return _gemm_fp8("f8f8bf16_rowwise", _lib.SCALING_ROW, _accum(use_fast_accum), XQ, WQ, x_scale, w_scale, bias)


@f8f8bf16_rowwise.register_fake
def _(XQ, WQ, x_scale, w_scale, bias=None, use_fast_accum=True):
    return _out(XQ, WQ)


@torch.library.custom_op("llmk::f8f8bf16_rowwise_planes", mutates_args=())
def f8f8bf16_rowwise_planes(XQ: Tensor, WQ: Tensor, x_scale: Tensor, w_scale: Tensor,
                            bias: Optional[Tensor] = None) -> Tensor:
    """f8f8bf16_rowwise of two-plane activations (rmsnorm_quantize_fp8_planes): XQ [..., 2, K] e4m3
    with x_scale f32 [..., 2] -> bf16 [..., N], the sum of the two planes' products (llmk.h,
    llmk_gemm_fp8, x_planes = 2). The weight bytes, which bound a decode GEMM, are unchanged."""
    return _gemm_fp8("f8f8bf16_rowwise_planes", _lib.SCALING_ROW, _lib.ACCUM_FAST, XQ, WQ, x_scale, w_scale, bias, 2)


@f8f8bf16_rowwise_planes.register_fake
def _(XQ, WQ, x_scale, w_scale, bias=None):
    return _out(XQ[..., 0, :], WQ)


@torch.library.custom_op("llmk::f8f8bf16_tensorwise", mutates_args=())
def f8f8bf16_tensorwise(XQ: Tensor, WQ: Tensor, x_scale: Tensor, w_scale: Tensor, bias: Optional[Tensor] = None,
                        use_fast_accum: bool = True) -> Tensor:
    """One f32 scale each for XQ and WQ (tensors of one element, read on the device, so a
    captured graph may be replayed with new scales; FBGEMM's f8f8bf16 takes their product)."""
    return _gemm_fp8("f8f8bf16_tensorwise", _lib.SCALING_TENSOR, _accum(use_fast_accum), XQ, WQ, x_scale, w_scale,
                     bias)


@f8f8bf16_tensorwise.register_fake
def _(XQ, WQ, x_scale, w_scale, bias=None, use_fast_accum=True):
    return _out(XQ, WQ)


@torch.library.custom_op("llmk::f8f8bf16_blockwise", mutates_args=())
def f8f8bf16_blockwise(XQ: Tensor, WQ: Tensor, x_scale: Tensor, w_scale: Tensor, block_m: int = 128,
                       block_n: int = 128, block_k: int = 128) -> Tensor:
    """Block-scaled FP8 GEMM (FBGEMM's f8f8bf16_blockwise): x_scale f32 [ceil(M/block_m),
    ceil(K/128)], w_scale f32 [ceil(N/128), ceil(K/128)]. block_n and block_k must be 128 and
    block_m 128 or 1 (1 x 128 activation groups, as f8f8bf16_groupwise). Partial sums are
    promoted to fp32 every 128 of K."""
    fn = "f8f8bf16_blockwise"
    expect(fn, block_n == 128 and block_k == 128 and block_m in (1, 128),
           "llmk takes block_m 1 or 128 with block_n = block_k = 128, got %d, %d, %d", block_m, block_n, block_k)
    expect(fn, x_scale.dim() == 2, "x_scale must have 2 dims, got %s", tuple(x_scale.shape))
    rows = XQ.numel() // max(XQ.shape[-1], 1) if XQ.shape[-1] else 0
    expect(fn, x_scale.shape[0] == (rows + block_m - 1) // block_m,
           "x_scale has %d rows; block_m = %d over M = %d needs %d", x_scale.shape[0], block_m, rows,
           (rows + block_m - 1) // block_m)
    return _gemm_fp8(fn, _lib.SCALING_BLOCK, _lib.ACCUM_DEFAULT, XQ, WQ, x_scale, w_scale, None)


@f8f8bf16_blockwise.register_fake
def _(XQ, WQ, x_scale, w_scale, block_m=128, block_n=128, block_k=128):
    return _out(XQ, WQ)


@torch.library.custom_op("llmk::f8f8bf16_groupwise", mutates_args=())
def f8f8bf16_groupwise(XQ: Tensor, WQ: Tensor, x_scale: Tensor, w_scale: Tensor) -> Tensor:
    """The DeepSeek-V3 recipe: XQ with 1 x 128 group scales x_scale f32 [..., ceil(K/128)]
    (as quantize_fp8_group writes them), WQ with 128 x 128 block scales w_scale f32
    [ceil(N/128), ceil(K/128)]."""
    xs = x_scale.reshape(-1, x_scale.shape[-1]) if x_scale.dim() != 2 else x_scale
    return _gemm_fp8("f8f8bf16_groupwise", _lib.SCALING_BLOCK, _lib.ACCUM_DEFAULT, XQ, WQ, xs, w_scale, None)


@f8f8bf16_groupwise.register_fake
def _(XQ, WQ, x_scale, w_scale):
    return _out(XQ, WQ)


@torch.library.custom_op("llmk::linear_bf16", mutates_args=())
def linear_bf16(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """F.linear in bf16: x [..., K] bf16, weight [N, K] bf16, bias None or bf16/f32 [N] ->
    bf16 [..., N], fp32 accumulation (llmk's own kernels or cuBLASLt, whichever measured
    faster for the shape)."""
    fn = "linear_bf16"
    expect_dtype(fn, "x", x, torch.bfloat16)
    expect_dtype(fn, "weight", weight, torch.bfloat16)
    expect(fn, weight.dim() == 2 and x.dim() >= 1 and x.shape[-1] == weight.shape[1],
           "x must be [..., K] and weight [N, K], got %s and %s", tuple(x.shape), tuple(weight.shape))
    y = _out(x, weight)
    x2, y2 = rows2d(x), rows2d(y)
    h, st = context(fn, x, weight, bias)
    _lib.call("llmk_gemm_bf16", h, _lib.GEMM_AUTO, ctypes.byref(desc(x2, "x")), ctypes.byref(desc(weight, "weight")),
              ctypes.byref(desc(bias, "bias")) if bias is not None else None, ctypes.byref(desc(y2, "output")), st)
    return y


@linear_bf16.register_fake
def _(x, weight, bias=None):
    return _out(x, weight)


_TUNING = {"env": -1, "off": 0, "on": 1}


def set_gemm_tuning(mode: str = "on", device: Optional[int] = None) -> None:
    """Online tuning of the GEMM dispatcher on a CUDA device's llmk handle (llmk_set_gemm_tuning):
    "on", "off" or "env" (as LLMK_GEMM_TUNE says). When on, a GEMM's first eager call on a shape the
    measured table does not hold times the cost model's best candidates and keeps the fastest; calls
    made during CUDA-graph capture never tune. device: the CUDA index (default: torch's current)."""
    if mode not in _TUNING:
        raise ValueError("set_gemm_tuning: mode must be one of %s, got %r" % (", ".join(_TUNING), mode))
    index = torch.cuda.current_device() if device is None else int(device)
    _lib.call("llmk_set_gemm_tuning", _lib.handle(index), _TUNING[mode])


# ---- Grouped GEMMs (mixture-of-experts experts): llmk.h's llmk_gemm_grouped ----

def _grouped(fn, layout, scaling, X, W, x_scale, w_scale, sizes, fp8=True, zero=False):
    want = FP8 if fp8 else torch.bfloat16
    expect_dtype(fn, "XQ" if fp8 else "X", X, want)
    expect_dtype(fn, "WQ" if fp8 else "W", W, want)
    expect(fn, W.dim() == 3, "the weights must be [G, N, K], got %s", tuple(W.shape))
    expect(fn, sizes.dtype in (torch.int32, torch.int64), "the group sizes must be int32 (or int64), got %s",
           sizes.dtype)
    sizes = sizes.to(torch.int32).contiguous()
    G, N = W.shape[0], W.shape[1]
    if layout == _lib.GROUP_STACKED:
        expect(fn, X.dim() == 2, "X must be [T, K] (rows sorted by group), got %s", tuple(X.shape))
        shape = (X.shape[0], N)
    else:
        expect(fn, X.dim() == 3, "X must be [G, M_max, K], got %s", tuple(X.shape))
        shape = (X.shape[0], X.shape[1], N)
    y = (torch.zeros if zero else torch.empty)(shape, dtype=torch.bfloat16, device=X.device)
    X, W = X.contiguous(), W.contiguous()
    if fp8:
        x_scale, w_scale = x_scale.contiguous(), w_scale.contiguous()
    if scaling == _lib.SCALING_ROW and fp8 and layout == _lib.GROUP_STACKED:
        x_scale = x_scale.reshape(-1)
    if scaling == _lib.SCALING_ROW and fp8:
        w_scale = w_scale.reshape(G, N)
    h, st = context(fn, X, W, sizes, *((x_scale, w_scale) if fp8 else ()))
    d = _lib.GroupedGemmDesc(layout, scaling, _lib.ACCUM_DEFAULT, _lib.GEMM_AUTO)
    _lib.call("llmk_gemm_grouped", h, ctypes.byref(d), ctypes.byref(desc(X, "X")), ctypes.byref(desc(W, "W")),
              ctypes.byref(desc(x_scale, "x_scale")) if fp8 else None,
              ctypes.byref(desc(w_scale, "w_scale")) if fp8 else None, None,
              ctypes.byref(desc(sizes, "sizes")), ctypes.byref(desc(y, "output")), st)
    return y


@torch.library.custom_op("llmk::f8f8bf16_rowwise_grouped_stacked", mutates_args=())
def f8f8bf16_rowwise_grouped_stacked(XQ: Tensor, WQ: Tensor, x_scale: Tensor, w_scale: Tensor,
                                     M_sizes: Tensor) -> Tensor:
    """XQ [T, K] e4m3, rows sorted by group, x_scale f32 [T]; WQ [G, N, K] e4m3, w_scale f32 [G, N];
    M_sizes int32 [G] on the device -> bf16 [T, N]. Rows past the sum of the sizes are left as
    they are (the output is not zeroed; FBGEMM's op of the same name)."""
    return _grouped("f8f8bf16_rowwise_grouped_stacked", _lib.GROUP_STACKED, _lib.SCALING_ROW, XQ, WQ, x_scale,
                    w_scale, M_sizes)


@f8f8bf16_rowwise_grouped_stacked.register_fake
def _(XQ, WQ, x_scale, w_scale, M_sizes):
    return XQ.new_empty((XQ.shape[0], WQ.shape[1]), dtype=torch.bfloat16)


@torch.library.custom_op("llmk::f8f8bf16_rowwise_grouped_dynamic", mutates_args=())
def f8f8bf16_rowwise_grouped_dynamic(XQ: Tensor, WQ: Tensor, x_scale: Tensor, w_scale: Tensor,
                                     zero_start_index_M: Tensor, zeroing_output_tensor: bool = True) -> Tensor:
    """The masked layout: XQ [G, M_max, K] e4m3, x_scale f32 [G, M_max]; WQ [G, N, K], w_scale
    f32 [G, N]; zero_start_index_M int32 [G]: group g's valid rows are its first
    zero_start_index_M[g] -> bf16 [G, M_max, N], the other rows zero (or, with
    zeroing_output_tensor=False, left uninitialized)."""
    return _grouped("f8f8bf16_rowwise_grouped_dynamic", _lib.GROUP_MASKED, _lib.SCALING_ROW, XQ, WQ,
                    x_scale.reshape(XQ.shape[0], XQ.shape[1]), w_scale, zero_start_index_M,
                    zero=zeroing_output_tensor)


@f8f8bf16_rowwise_grouped_dynamic.register_fake
def _(XQ, WQ, x_scale, w_scale, zero_start_index_M, zeroing_output_tensor=True):
    return XQ.new_empty((XQ.shape[0], XQ.shape[1], WQ.shape[1]), dtype=torch.bfloat16)


@torch.library.custom_op("llmk::f8f8bf16_groupwise_grouped", mutates_args=())
def f8f8bf16_groupwise_grouped(XQ: Tensor, WQ: Tensor, x_scale: Tensor, w_scale: Tensor,
                               M_sizes: Tensor) -> Tensor:
    """DeepSeek-V3 block scaling per expert: XQ [T, K] e4m3 with 1 x 128 group scales x_scale f32
    [T, ceil(K/128)]; WQ [G, N, K] with 128 x 128 block scales w_scale f32 [G, ceil(N/128),
    ceil(K/128)]; M_sizes int32 [G] -> bf16 [T, N]."""
    return _grouped("f8f8bf16_groupwise_grouped", _lib.GROUP_STACKED, _lib.SCALING_BLOCK, XQ, WQ, x_scale, w_scale,
                    M_sizes)


@f8f8bf16_groupwise_grouped.register_fake
def _(XQ, WQ, x_scale, w_scale, M_sizes):
    return XQ.new_empty((XQ.shape[0], WQ.shape[1]), dtype=torch.bfloat16)


@torch.library.custom_op("llmk::bf16bf16bf16_grouped_stacked", mutates_args=())
def bf16bf16bf16_grouped_stacked(X: Tensor, W: Tensor, M_sizes: Tensor) -> Tensor:
    """X [T, K] bf16, rows sorted by group; W [G, N, K] bf16; M_sizes int32 [G] -> bf16 [T, N]
    (fp32 accumulation)."""
    return _grouped("bf16bf16bf16_grouped_stacked", _lib.GROUP_STACKED, _lib.SCALING_TENSOR, X, W, None, None,
                    M_sizes, fp8=False)


@bf16bf16bf16_grouped_stacked.register_fake
def _(X, W, M_sizes):
    return X.new_empty((X.shape[0], W.shape[1]), dtype=torch.bfloat16)
