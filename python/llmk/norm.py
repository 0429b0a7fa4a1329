"""RMSNorm (optionally with the residual add fused, optionally quantized to FP8
per row) and SiLU-multiply fused with FP8 quantization (FBGEMM's
silu_mul_quant). Numerics: llmk.h's llmk_rmsnorm and llmk_silu_mul_quant."""
import ctypes
from typing import Optional, Tuple

import torch

from . import _lib
from ._tensor import context, desc, expect, expect_dtype, ptr, rows2d

Tensor = torch.Tensor
FP8 = torch.float8_e4m3fn


def _rmsnorm(fn, x, residual, weight, eps, fp8, planes=1):
    expect_dtype(fn, "x", x, torch.bfloat16)
    expect(fn, x.dim() >= 1, "x must have at least 1 dim")
    lead, k = x.shape[:-1], x.shape[-1]
    y = torch.empty(lead + ((2,) if planes == 2 else ()) + (k,), dtype=FP8 if fp8 else torch.bfloat16,
                    device=x.device)
    scale = torch.empty(lead + ((2,) if planes == 2 else ()), dtype=torch.float32, device=x.device) if fp8 else None
    s = torch.empty_like(x) if residual is not None else None
    h, st = context(fn, x, residual, weight)
    d = _lib.RmsnormDesc(eps, planes)
    ref = ctypes.byref
    yv = y.view(-1, 2, k) if planes == 2 else rows2d(y)
    _lib.call("llmk_rmsnorm", h, ref(d), ref(desc(rows2d(x), "x")),
              ref(desc(rows2d(residual), "residual")) if residual is not None else None, ref(desc(weight, "weight")),
              ref(desc(yv, "y")), ref(desc(scale.view(-1), "y_scale")) if fp8 else None,
              ref(desc(rows2d(s), "residual_out")) if s is not None else None, st)
    return y, scale, s


@torch.library.custom_op("llmk::rmsnorm", mutates_args=())
def rmsnorm(x: Tensor, weight: Tensor, eps: float = 1e-5) -> Tensor:
    """bf16(x * rsqrt(mean(x^2) + eps) * weight) over the last dim of x bf16 [..., K]."""
    return _rmsnorm("rmsnorm", x, None, weight, eps, False)[0]


@rmsnorm.register_fake
def _(x, weight, eps=1e-5):
    return torch.empty_like(x)


@torch.library.custom_op("llmk::fused_add_rmsnorm", mutates_args=())
def fused_add_rmsnorm(x: Tensor, residual: Tensor, weight: Tensor, eps: float = 1e-5) -> Tuple[Tensor, Tensor]:
    """s = bf16(x + residual); returns (rmsnorm(s), s): a decoder layer's residual stream."""
    y, _, s = _rmsnorm("fused_add_rmsnorm", x, residual, weight, eps, False)
    return y, s


@fused_add_rmsnorm.register_fake
def _(x, residual, weight, eps=1e-5):
    return torch.empty_like(x), torch.empty_like(x)


@torch.library.custom_op("llmk::rmsnorm_quantize_fp8", mutates_args=())
def rmsnorm_quantize_fp8(x: Tensor, weight: Tensor, eps: float = 1e-5) -> Tuple[Tensor, Tensor]:
    """RMSNorm quantized to e4m3 with one scale per row, bit for bit quantize_fp8_per_row of
    rmsnorm's bf16 output: (yq, scale f32 [...])."""
    y, scale, _ = _rmsnorm("rmsnorm_quantize_fp8", x, None, weight, eps, True)
    return y, scale


@rmsnorm_quantize_fp8.register_fake
def _(x, weight, eps=1e-5):
    return torch.empty(x.shape, dtype=FP8, device=x.device), \
        torch.empty(x.shape[:-1], dtype=torch.float32, device=x.device)


@torch.library.custom_op("llmk::fused_add_rmsnorm_quantize_fp8", mutates_args=())
def fused_add_rmsnorm_quantize_fp8(x: Tensor, residual: Tensor, weight: Tensor,
                                   eps: float = 1e-5) -> Tuple[Tensor, Tensor, Tensor]:
    """s = bf16(x + residual); returns (yq, scale, s) with yq, scale = rmsnorm_quantize_fp8(s)."""
    return _rmsnorm("fused_add_rmsnorm_quantize_fp8", x, residual, weight, eps, True)


@fused_add_rmsnorm_quantize_fp8.register_fake
def _(x, residual, weight, eps=1e-5):
    return torch.empty(x.shape, dtype=FP8, device=x.device), \
        torch.empty(x.shape[:-1], dtype=torch.float32, device=x.device), torch.empty_like(x)


@torch.library.custom_op("llmk::rmsnorm_quantize_fp8_planes", mutates_args=())
def rmsnorm_quantize_fp8_planes(x: Tensor, weight: Tensor, eps: float = 1e-5) -> Tuple[Tensor, Tensor]:
    """RMSNorm in two e4m3 planes per row for f8f8bf16_rowwise_planes: yq [..., 2, K] (plane 0 is
    rmsnorm_quantize_fp8's output, plane 1 its rounding residual quantized per row), scale f32 [..., 2].
    The activation keeps about 7 more bits than one plane; llmk.h, llmk_rmsnorm."""
    y, scale, _ = _rmsnorm("rmsnorm_quantize_fp8_planes", x, None, weight, eps, True, 2)
    return y, scale


def _planes_fake(x):
    return torch.empty(x.shape[:-1] + (2, x.shape[-1]), dtype=FP8, device=x.device), \
        torch.empty(x.shape[:-1] + (2,), dtype=torch.float32, device=x.device)


@rmsnorm_quantize_fp8_planes.register_fake
def _(x, weight, eps=1e-5):
    return _planes_fake(x)


@torch.library.custom_op("llmk::fused_add_rmsnorm_quantize_fp8_planes", mutates_args=())
def fused_add_rmsnorm_quantize_fp8_planes(x: Tensor, residual: Tensor, weight: Tensor,
                                          eps: float = 1e-5) -> Tuple[Tensor, Tensor, Tensor]:
    """s = bf16(x + residual); returns (yq, scale, s) with yq, scale = rmsnorm_quantize_fp8_planes(s)."""
    return _rmsnorm("fused_add_rmsnorm_quantize_fp8_planes", x, residual, weight, eps, True, 2)


@fused_add_rmsnorm_quantize_fp8_planes.register_fake
def _(x, residual, weight, eps=1e-5):
    return _planes_fake(x) + (torch.empty_like(x),)


def _silu(fn, gate, up, scaling, scale, block, scale_ub):
    expect_dtype(fn, "gate", gate, torch.bfloat16)
    expect_dtype(fn, "up", up, torch.bfloat16)
    expect(fn, gate.shape == up.shape, "gate and up differ in shape: %s and %s", tuple(gate.shape), tuple(up.shape))
    xq = torch.empty(gate.shape, dtype=FP8, device=gate.device)
    h, st = context(fn, gate, up, scale_ub)
    d = _lib.QuantDesc(scaling, block[0], block[1], ptr(scale_ub), None)
    ref = ctypes.byref
    _lib.call("llmk_silu_mul_quant", h, ref(d), ref(desc(rows2d(gate), "gate")), ref(desc(rows2d(up), "up")),
              ref(desc(rows2d(xq), "xq")), ref(desc(scale, "scale")), st)
    return xq


@torch.library.custom_op("llmk::silu_mul_quant", mutates_args=())
def silu_mul_quant(gate: Tensor, up: Tensor, scale_ub: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """silu(gate) * up (bf16 [..., F], in fp64, rounded to bf16) quantized to e4m3 with one scale
    per row: (xq, scale f32 [...]). gate and up may be the two halves of one [M, 2F] tensor."""
    scale = torch.empty(gate.shape[:-1], dtype=torch.float32, device=gate.device)
    xq = _silu("silu_mul_quant", gate, up, _lib.SCALING_ROW, scale.view(-1), (0, 0), scale_ub)
    return xq, scale


@silu_mul_quant.register_fake
def _(gate, up, scale_ub=None):
    return torch.empty(gate.shape, dtype=FP8, device=gate.device), \
        torch.empty(gate.shape[:-1], dtype=torch.float32, device=gate.device)


@torch.library.custom_op("llmk::silu_mul_quant_group", mutates_args=())
def silu_mul_quant_group(gate: Tensor, up: Tensor, scale_ub: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """As silu_mul_quant with one scale per 1 x 128 group: scale f32 [..., ceil(F / 128)]."""
    kb = (gate.shape[-1] + 127) // 128
    scale = torch.empty(gate.shape[:-1] + (kb,), dtype=torch.float32, device=gate.device)
    xq = _silu("silu_mul_quant_group", gate, up, _lib.SCALING_BLOCK, scale.view(-1, kb), (1, 128), scale_ub)
    return xq, scale


@silu_mul_quant_group.register_fake
def _(gate, up, scale_ub=None):
    kb = (gate.shape[-1] + 127) // 128
    return torch.empty(gate.shape, dtype=FP8, device=gate.device), \
        torch.empty(gate.shape[:-1] + (kb,), dtype=torch.float32, device=gate.device)


@torch.library.custom_op("llmk::silu_mul", mutates_args=())
def silu_mul(gate: Tensor, up: Tensor) -> Tensor:
    """silu(gate) * up in fp64, rounded once to bf16 (the value silu_mul_quant quantizes): the BF16
    layer's SwiGLU activation."""
    fn = "silu_mul"
    expect_dtype(fn, "gate", gate, torch.bfloat16)
    expect_dtype(fn, "up", up, torch.bfloat16)
    expect(fn, gate.shape == up.shape, "gate and up differ in shape: %s and %s", tuple(gate.shape), tuple(up.shape))
    a = torch.empty(gate.shape, dtype=torch.bfloat16, device=gate.device)
    h, st = context(fn, gate, up)
    ref = ctypes.byref
    _lib.call("llmk_silu_mul_quant", h, None, ref(desc(rows2d(gate), "gate")), ref(desc(rows2d(up), "up")),
              ref(desc(rows2d(a), "out")), None, st)
    return a


@silu_mul.register_fake
def _(gate, up):
    return torch.empty(gate.shape, dtype=torch.bfloat16, device=gate.device)
