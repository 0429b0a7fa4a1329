"""Int4Linear: an nn.Linear whose weight is held in INT4 (llmk.h, "INT4 weights": 4-bit codes,
a bf16 scale and optionally a zero point per group of 64 or 128 inputs) and multiplied by bf16
activations with llmk_gemm_w4a16; built from a BF16 nn.Linear (quantized by llmk's round-to-
nearest quantizer) or from a GPTQ / AWQ checkpoint's tensors (imported as they are)."""
from typing import Optional

import torch
from torch import nn

from .int4 import gemm_w4a16, int4_import, int4_quantize

Tensor = torch.Tensor


class Int4Linear(nn.Module):
    """y = x W^T + b, x and y bf16 [..., features], W [out_features, in_features] in INT4.

    Buffers: codes uint8 [out_features, in_features / 2], scales bf16 [out_features,
    in_features / group], zeros uint8 of the same shape (asymmetric) or None (symmetric: every
    zero point 8), bias bf16 or None. in_features must be a multiple of group (64 or 128); any
    out_features. The product is llmk_gemm_w4a16's: llmk_gemm_bf16 of x and the dequantized
    weight, up to the order of the fp32 sums."""

    def __init__(self, in_features, out_features, bias=True, group=128, asymmetric=True, device=None):
        super().__init__()
        if group not in (64, 128):
            raise ValueError("llmk.Int4Linear: group must be 64 or 128, got %r" % (group,))
        if in_features % group:
            raise ValueError("llmk.Int4Linear: in_features (%d) must be a multiple of group (%d)" %
                             (in_features, group))
        self.in_features, self.out_features, self.group, self.asymmetric = in_features, out_features, group, \
            asymmetric
        ng = in_features // group
        self.register_buffer("codes", torch.zeros(out_features, in_features // 2, dtype=torch.uint8, device=device))
        self.register_buffer("scales", torch.zeros(out_features, ng, dtype=torch.bfloat16, device=device))
        self.register_buffer("zeros", torch.full((out_features, ng), 8, dtype=torch.uint8, device=device)
                             if asymmetric else None)
        self.register_buffer("bias", torch.zeros(out_features, dtype=torch.bfloat16, device=device) if bias else None)

    @torch.no_grad()
    def set_weight(self, weight: Tensor, bias: Optional[Tensor] = None):
        """Quantizes weight [out_features, in_features] (any float dtype) into this layer."""
        w = weight.detach().to(device=self.codes.device, dtype=torch.bfloat16).contiguous()
        codes, scales, zeros = int4_quantize(w, self.group, self.asymmetric)
        self.codes.copy_(codes)
        self.scales.copy_(scales)
        if self.zeros is not None:
            self.zeros.copy_(zeros)
        if bias is not None and self.bias is not None:
            self.bias.copy_(bias.detach().to(self.bias.dtype))
        return self

    @classmethod
    def from_linear(cls, linear: nn.Linear, group=128, asymmetric=True):
        m = cls(linear.in_features, linear.out_features, linear.bias is not None, group, asymmetric,
                linear.weight.device)
        return m.set_weight(linear.weight, linear.bias)

    @classmethod
    def from_checkpoint(cls, qweight: Tensor, scales: Tensor, qzeros: Optional[Tensor] = None,
                        bias: Optional[Tensor] = None, packing="gptq", group=128, asymmetric=True,
                        zero_plus_one=False, device=None):
        """From a checkpoint's int32 qweight / qzeros and f16 or bf16 scales [in / group, out]
        (GPTQ: qweight [in / 8, out]; AWQ: [in, out / 8]; rows: [out, in / 8]), as int4_import
        reads them; the layer lands on `device` (default: the CPU)."""
        codes, sc, zs = int4_import(qweight.cpu(), scales.cpu(), qzeros.cpu() if qzeros is not None else None,
                                    packing, group, asymmetric, zero_plus_one)
        out_features, in_features = codes.shape[0], codes.shape[1] * 2
        m = cls(in_features, out_features, bias is not None, group, asymmetric, device)
        m.codes.copy_(codes)
        m.scales.copy_(sc)
        if zs is not None:
            m.zeros.copy_(zs)
        if bias is not None:
            m.bias.copy_(bias.detach().to(torch.bfloat16))
        return m

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype != torch.bfloat16:
            raise TypeError("llmk.Int4Linear: input must be bf16, got %s" % x.dtype)
        return gemm_w4a16(x, self.codes, self.scales, self.zeros, self.bias, self.group)

    def extra_repr(self):
        return "in_features=%d, out_features=%d, bias=%s, group=%d, asymmetric=%s" % (
            self.in_features, self.out_features, self.bias is not None, self.group, self.asymmetric)
