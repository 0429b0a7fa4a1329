"""FP8Linear: an nn.Linear whose weight is quantized to FP8 once and whose
input is quantized on every call, and swap_linear, which puts it in place of
a model's linear layers."""
import torch
from torch import nn

from .gemm import f8f8bf16_groupwise, f8f8bf16_rowwise
from .quantize import quantize_fp8_block, quantize_fp8_group, quantize_fp8_per_row

SCALINGS = ("row", "block")


class FP8Linear(nn.Module):
    """y = x W^T + b in FP8 with BF16 output.

    scaling="row": W with one scale per output row, x with one per token
    (FBGEMM's f8f8bf16_rowwise, Hopper's fast FP8 accumulation);
    scaling="block": W in 128 x 128 blocks, x in 1 x 128 groups, partial sums
    promoted to fp32 every 128 of K (the DeepSeek-V3 recipe: more accurate on
    inputs with outlier channels). Inputs are bf16 [..., in_features];
    in_features must be a multiple of 16 and out_features of 8 (the GEMM's
    alignment rules). The weight is stored as e4m3 (`weight_fp8`) with f32
    scales (`weight_scale`); the bias as bf16."""

    def __init__(self, in_features, out_features, bias=True, scaling="row", device=None):
        super().__init__()
        if scaling not in SCALINGS:
            raise ValueError("llmk.FP8Linear: scaling must be one of %s, got %r" % (SCALINGS, scaling))
        if in_features % 16 or out_features % 8:
            raise ValueError("llmk.FP8Linear: in_features must be a multiple of 16 and out_features of 8, "
                             "got %d and %d" % (in_features, out_features))
        self.in_features, self.out_features, self.scaling = in_features, out_features, scaling
        ws = (out_features,) if scaling == "row" else ((out_features + 127) // 128, (in_features + 127) // 128)
        self.register_buffer("weight_fp8", torch.zeros(out_features, in_features, dtype=torch.float8_e4m3fn,
                                                       device=device))
        self.register_buffer("weight_scale", torch.ones(ws, dtype=torch.float32, device=device))
        self.register_buffer("bias", torch.zeros(out_features, dtype=torch.bfloat16, device=device) if bias else None)

    @torch.no_grad()
    def set_weight(self, weight, bias=None):
        """Quantizes weight [out_features, in_features] (any float dtype) into this layer."""
        w = weight.detach().to(device=self.weight_fp8.device, dtype=torch.bfloat16).contiguous()
        if self.scaling == "row":
            wq, ws = quantize_fp8_per_row(w)
        else:
            wq, ws = quantize_fp8_block(w, 128, 128)
        self.weight_fp8.copy_(wq)
        self.weight_scale.copy_(ws)
        if bias is not None and self.bias is not None:
            self.bias.copy_(bias.detach().to(self.bias.dtype))
        return self

    @classmethod
    def from_linear(cls, linear, scaling="row"):
        m = cls(linear.in_features, linear.out_features, linear.bias is not None, scaling, linear.weight.device)
        return m.set_weight(linear.weight, linear.bias)

    def forward(self, x):
        if x.dtype != torch.bfloat16:
            raise TypeError("llmk.FP8Linear: input must be bf16, got %s" % x.dtype)
        if self.scaling == "row":
            xq, xs = quantize_fp8_per_row(x)
            return f8f8bf16_rowwise(xq, self.weight_fp8, xs, self.weight_scale, self.bias)
        xq, xs = quantize_fp8_group(x, 128)
        y = f8f8bf16_groupwise(xq, self.weight_fp8, xs, self.weight_scale)
        return y if self.bias is None else y + self.bias

    def extra_repr(self):
        return "in_features=%d, out_features=%d, bias=%s, scaling=%s" % (
            self.in_features, self.out_features, self.bias is not None, self.scaling)


def swap_linear(model, scaling="row", include=None):
    """Replaces, in place, every nn.Linear of model (or those whose qualified name
    include(name) accepts) by an FP8Linear with the same weights. Layers whose
    shape the FP8 GEMM cannot take are left in BF16. Returns the list of
    (name, reason) of the layers left alone."""
    kept = []
    for name, mod in list(model.named_modules()):
        for child_name, child in list(mod.named_children()):
            full = "%s.%s" % (name, child_name) if name else child_name
            if type(child) is not nn.Linear or (include is not None and not include(full)):
                continue
            if child.in_features % 16 or child.out_features % 8:
                kept.append((full, "in_features %% 16 or out_features %% 8 is not 0 (%d, %d)"
                             % (child.in_features, child.out_features)))
                continue
            setattr(mod, child_name, FP8Linear.from_linear(child, scaling))
    return kept
