"""llmk: FP8 inference kernels for NVIDIA Hopper, for PyTorch.

A pure-Python binding of libllmk (ctypes): every op takes and returns torch
tensors (CPU tensors run llmk's reference backend, CUDA tensors its kernels
on torch's current stream), is registered as torch.ops.llmk.<name> with a
fake implementation (torch.compile(fullgraph=True) traces through it) and
allocates nothing but its outputs (CUDA-graph capture works after one eager
call, which creates the device's llmk handle). Names and argument orders
follow FBGEMM's torch.ops.fbgemm twins where there is one. Errors raise
llmk.LlmkError (ValueError / NotImplementedError subclasses for invalid
arguments / unsupported cases) carrying llmk's own message.
"""
from ._lib import LlmkError, LlmkInvalidArgument, LlmkNotSupported, library_path
from .attention import KVCache, attention_decode, kv_cache_dequantize, kv_cache_write, rope, rope_qkv_write
from .gemm import (bf16bf16bf16_grouped_stacked, f8f8bf16_blockwise, f8f8bf16_groupwise, f8f8bf16_groupwise_grouped,
                   f8f8bf16_rowwise, f8f8bf16_rowwise_grouped_dynamic, f8f8bf16_rowwise_grouped_stacked,
                   f8f8bf16_rowwise_planes, f8f8bf16_tensorwise, linear_bf16, set_gemm_tuning)
from .int4_linear import Int4Linear
from .linear import FP8Linear, swap_linear
from .int4 import bf16i4bf16_rowwise, gemm_w4a16, int4_dequantize, int4_import, int4_quantize
from .moe import moe_combine, moe_gather_quant, moe_permute, moe_route, moe_route_permute
from .norm import (fused_add_rmsnorm, fused_add_rmsnorm_quantize_fp8, fused_add_rmsnorm_quantize_fp8_planes, rmsnorm,
                   rmsnorm_quantize_fp8, rmsnorm_quantize_fp8_planes, silu_mul, silu_mul_quant, silu_mul_quant_group)
from .quantize import (quantize_fp8_block, quantize_fp8_group, quantize_fp8_per_col, quantize_fp8_per_row,
                       quantize_fp8_per_tensor)

from ._version import __version__
