"""RoPE, KV-cache writes and decode attention (torch.ops.llmk.*), and KVCache,
which allocates a cache in llmk's layout (docs/ATTENTION.md) and calls them.

A cache is passed to the ops as its tensors: k_cache, v_cache (storage),
k_param, v_param (FP8 scales / INT4 scale-shift pairs; None for bf16),
block_table (paged; None for a contiguous cache), and format ("bf16", "fp8",
"fp8_tensor", "int4") with int4_group (32 or 128)."""
import ctypes
import math
from typing import Optional, Tuple

import torch

from . import _lib
from ._tensor import context, desc, expect, expect_dtype

Tensor = torch.Tensor
FORMATS = {"bf16": _lib.KV_BF16, "fp8": _lib.KV_FP8, "fp8_tensor": _lib.KV_FP8_TENSOR, "int4": _lib.KV_INT4}
STYLES = {"interleaved": _lib.ROPE_INTERLEAVED, "neox": _lib.ROPE_NEOX}


def _cache(fn, fmt, group, k_cache, v_cache, k_param, v_param, block_table):
    expect(fn, fmt in FORMATS, "format must be one of %s, got %r", sorted(FORMATS), fmt)
    c = _lib.KvCache()
    c.format, c.int4_group = FORMATS[fmt], group
    c.k, c.v = desc(k_cache, "k_cache"), desc(v_cache, "v_cache")
    c.k_param, c.v_param = desc(k_param, "k_param"), desc(v_param, "v_param")
    c.block_table = desc(block_table, "block_table")
    return c


def _rope(fn, style, theta, rotary_dim, llama3_factor, low_freq_factor, high_freq_factor, original_max_position):
    expect(fn, style in STYLES, "rope style must be 'interleaved' or 'neox', got %r", style)
    return _lib.RopeDesc(STYLES[style], rotary_dim, theta, llama3_factor, low_freq_factor, high_freq_factor,
                         original_max_position)


def _loc(offsets, start_pos):
    return _lib.KvLoc(desc(offsets, "offsets"), desc(start_pos, "start_pos"))


@torch.library.custom_op("llmk::rope", mutates_args=())
def rope(x: Tensor, positions: Tensor, style: str = "interleaved", theta: float = 500000.0, rotary_dim: int = 0,
         llama3_factor: float = 0.0, low_freq_factor: float = 1.0, high_freq_factor: float = 4.0,
         original_max_position: float = 8192.0) -> Tensor:
    """Rotary embedding of x [T, H, D] (f32 or bf16) at positions i32 [T]; llama3_factor > 0
    turns on Llama 3.1's frequency scaling. Angles in fp64 (llmk.h's llmk_rope)."""
    fn = "rope"
    y = torch.empty_like(x)
    d = _rope(fn, style, theta, rotary_dim, llama3_factor, low_freq_factor, high_freq_factor, original_max_position)
    h, st = context(fn, x, positions)
    _lib.call("llmk_rope", h, ctypes.byref(d), ctypes.byref(desc(x, "x")), ctypes.byref(desc(positions, "positions")),
              ctypes.byref(desc(y, "y")), st)
    return y


@rope.register_fake
def _(x, positions, style="interleaved", theta=500000.0, rotary_dim=0, llama3_factor=0.0, low_freq_factor=1.0,
      high_freq_factor=4.0, original_max_position=8192.0):
    return torch.empty_like(x)


_CACHE_MUT = ("k_cache", "v_cache", "k_param", "v_param")


@torch.library.custom_op("llmk::kv_cache_write", mutates_args=_CACHE_MUT)
def kv_cache_write(k: Tensor, v: Tensor, k_cache: Tensor, v_cache: Tensor, k_param: Optional[Tensor],
                   v_param: Optional[Tensor], block_table: Optional[Tensor], offsets: Optional[Tensor],
                   start_pos: Tensor, format: str = "bf16", int4_group: int = 128) -> None:
    """Quantizes new tokens' K and V (bf16 [T, Hkv, D]) into the cache at positions start_pos
    (+ row offset within each sequence's offsets range; offsets None: row t is sequence t)."""
    fn = "kv_cache_write"
    c = _cache(fn, format, int4_group, k_cache, v_cache, k_param, v_param, block_table)
    loc = _loc(offsets, start_pos)
    h, st = context(fn, k, v, k_cache, v_cache, k_param, v_param, block_table, offsets, start_pos)
    _lib.call("llmk_kv_cache_write", h, ctypes.byref(c), ctypes.byref(desc(k, "k")), ctypes.byref(desc(v, "v")),
              ctypes.byref(loc), st)


@kv_cache_write.register_fake
def _(k, v, k_cache, v_cache, k_param, v_param, block_table, offsets, start_pos, format="bf16", int4_group=128):
    return None


@torch.library.custom_op("llmk::rope_qkv_write", mutates_args=_CACHE_MUT)
def rope_qkv_write(qkv: Tensor, num_q_heads: int, k_cache: Tensor, v_cache: Tensor, k_param: Optional[Tensor],
                   v_param: Optional[Tensor], block_table: Optional[Tensor], offsets: Optional[Tensor],
                   start_pos: Tensor, format: str = "bf16", int4_group: int = 128, apply_rope: bool = True,
                   style: str = "interleaved", theta: float = 500000.0, rotary_dim: int = 0,
                   llama3_factor: float = 0.0, low_freq_factor: float = 1.0, high_freq_factor: float = 4.0,
                   original_max_position: float = 8192.0) -> Tensor:
    """One pass over packed QKV bf16 [T, (Hq + 2 Hkv) D]: rotate Q and K (apply_rope), write K
    and V into the cache at their positions, return rotated Q bf16 [T, Hq, D] (FBGEMM's
    rope_qkv_decoding / rope_qkv_varseq_prefill)."""
    fn = "rope_qkv_write"
    expect_dtype(fn, "qkv", qkv, torch.bfloat16)
    expect(fn, qkv.dim() == 2, "qkv must be [T, (Hq + 2 Hkv) D], got %s", tuple(qkv.shape))
    d_head = k_cache.shape[-1] * (2 if format == "int4" else 1)
    q_out = torch.empty((qkv.shape[0], num_q_heads, d_head), dtype=torch.bfloat16, device=qkv.device)
    c = _cache(fn, format, int4_group, k_cache, v_cache, k_param, v_param, block_table)
    r = _rope(fn, style, theta, rotary_dim, llama3_factor, low_freq_factor, high_freq_factor, original_max_position)
    loc = _loc(offsets, start_pos)
    h, st = context(fn, qkv, k_cache, v_cache, k_param, v_param, block_table, offsets, start_pos)
    _lib.call("llmk_rope_qkv_write", h, ctypes.byref(r) if apply_rope else None, ctypes.byref(desc(qkv, "qkv")),
              num_q_heads, ctypes.byref(c), ctypes.byref(loc), ctypes.byref(desc(q_out, "q_out")), st)
    return q_out


@rope_qkv_write.register_fake
def _(qkv, num_q_heads, k_cache, v_cache, k_param, v_param, block_table, offsets, start_pos, format="bf16",
      int4_group=128, apply_rope=True, style="interleaved", theta=500000.0, rotary_dim=0, llama3_factor=0.0,
      low_freq_factor=1.0, high_freq_factor=4.0, original_max_position=8192.0):
    d_head = k_cache.shape[-1] * (2 if format == "int4" else 1)
    return qkv.new_empty((qkv.shape[0], num_q_heads, d_head))


@torch.library.custom_op("llmk::attention_decode", mutates_args=())
def attention_decode(q: Tensor, k_cache: Tensor, v_cache: Tensor, k_param: Optional[Tensor],
                     v_param: Optional[Tensor], block_table: Optional[Tensor], seq_lens: Tensor,
                     max_seq_len: int, format: str = "bf16", int4_group: int = 128,
                     softmax_scale: float = -1.0, num_splits: int = 0) -> Tuple[Tensor, Tensor]:
    """GQA decode attention: q bf16 [B, Hq, D] over each sequence's first seq_lens[b] cached
    positions (i32 [B], read on the device; max_seq_len bounds them on the host and sizes the
    KV split). softmax_scale < 0 means 1/sqrt(D). Returns (out bf16 [B, Hq, D], lse f32 [B, Hq])."""
    fn = "attention_decode"
    expect(fn, q.dim() == 3, "q must be [B, Hq, D], got %s", tuple(q.shape))
    out = torch.empty_like(q)
    lse = torch.empty(q.shape[:2], dtype=torch.float32, device=q.device)
    scale = softmax_scale if softmax_scale >= 0 else 1.0 / math.sqrt(q.shape[-1])
    d = _lib.AttnDesc(scale, max_seq_len, num_splits)
    c = _cache(fn, format, int4_group, k_cache, v_cache, k_param, v_param, block_table)
    h, st = context(fn, q, k_cache, v_cache, k_param, v_param, block_table, seq_lens)
    _lib.call("llmk_attention_decode", h, ctypes.byref(d), ctypes.byref(desc(q, "q")), ctypes.byref(c),
              ctypes.byref(desc(seq_lens, "seq_lens")), ctypes.byref(desc(out, "out")),
              ctypes.byref(desc(lse, "lse")), st)
    return out, lse


@attention_decode.register_fake
def _(q, k_cache, v_cache, k_param, v_param, block_table, seq_lens, max_seq_len, format="bf16", int4_group=128,
      softmax_scale=-1.0, num_splits=0):
    return torch.empty_like(q), q.new_empty(q.shape[:2], dtype=torch.float32)


@torch.library.custom_op("llmk::kv_cache_dequantize", mutates_args=())
def kv_cache_dequantize(k_cache: Tensor, v_cache: Tensor, k_param: Optional[Tensor], v_param: Optional[Tensor],
                        format: str = "bf16", int4_group: int = 128) -> Tuple[Tensor, Tensor]:
    """Every stored K and V value as f32 [S0, S1, Hkv, D] (the value table of docs/ATTENTION.md)."""
    fn = "kv_cache_dequantize"
    shape = tuple(k_cache.shape[:-1]) + (k_cache.shape[-1] * (2 if format == "int4" else 1),)
    ko = torch.empty(shape, dtype=torch.float32, device=k_cache.device)
    vo = torch.empty(shape, dtype=torch.float32, device=k_cache.device)
    c = _cache(fn, format, int4_group, k_cache, v_cache, k_param, v_param, None)
    h, st = context(fn, k_cache, v_cache, k_param, v_param)
    _lib.call("llmk_kv_cache_dequantize", h, ctypes.byref(c), ctypes.byref(desc(ko, "k_out")),
              ctypes.byref(desc(vo, "v_out")), st)
    return ko, vo


@kv_cache_dequantize.register_fake
def _(k_cache, v_cache, k_param, v_param, format="bf16", int4_group=128):
    shape = tuple(k_cache.shape[:-1]) + (k_cache.shape[-1] * (2 if format == "int4" else 1),)
    return k_cache.new_empty(shape, dtype=torch.float32), k_cache.new_empty(shape, dtype=torch.float32)


class KVCache:
    """A KV cache in llmk's layout: contiguous [batch, max_len, Hkv, E] or, with page_size,
    paged [num_pages, page_size, Hkv, E] with block_table i32 [batch, max_len / page_size]
    (pages handed out in order; replace block_table to share or shuffle pages). fp8_tensor
    caches take their two scales as kv_scales=(k_scale, v_scale)."""

    def __init__(self, batch, max_len, num_kv_heads, head_dim, format="bf16", int4_group=128, page_size=0,
                 device="cuda", kv_scales=(1.0, 1.0)):
        if format not in FORMATS:
            raise ValueError("llmk.KVCache: format must be one of %s, got %r" % (sorted(FORMATS), format))
        self.format, self.int4_group, self.max_len = format, int4_group, max_len
        e = head_dim // 2 if format == "int4" else head_dim
        dt = {"bf16": torch.bfloat16, "int4": torch.uint8}.get(format, torch.float8_e4m3fn)
        if page_size:
            pages = batch * ((max_len + page_size - 1) // page_size)
            lead = (pages, page_size)
            self.block_table = torch.arange(pages, dtype=torch.int32, device=device).view(batch, -1)
        else:
            lead = (batch, max_len)
            self.block_table = None
        self.k = torch.zeros(lead + (num_kv_heads, e), dtype=dt, device=device)
        self.v = torch.zeros_like(self.k)
        if format == "fp8":
            self.k_param = torch.ones(lead + (num_kv_heads,), dtype=torch.float32, device=device)
        elif format == "int4":
            self.k_param = torch.zeros(lead + (num_kv_heads, 2 * head_dim // int4_group), dtype=torch.float16,
                                       device=device)
        elif format == "fp8_tensor":
            self.k_param = torch.tensor([kv_scales[0]], dtype=torch.float32, device=device)
        else:
            self.k_param = None
        if format == "fp8_tensor":
            self.v_param = torch.tensor([kv_scales[1]], dtype=torch.float32, device=device)
        else:
            self.v_param = None if self.k_param is None else torch.zeros_like(self.k_param)

    def tensors(self):
        return self.k, self.v, self.k_param, self.v_param, self.block_table

    def write(self, k, v, start_pos, offsets=None):
        kv_cache_write(k, v, *self.tensors(), offsets, start_pos, self.format, self.int4_group)

    def rope_qkv_write(self, qkv, num_q_heads, start_pos, offsets=None, **rope_args):
        return rope_qkv_write(qkv, num_q_heads, *self.tensors(), offsets, start_pos, self.format, self.int4_group,
                              **rope_args)

    def attend(self, q, seq_lens, max_seq_len=None, softmax_scale=-1.0, num_splits=0):
        return attention_decode(q, *self.tensors(), seq_lens, self.max_len if max_seq_len is None else max_seq_len,
                                self.format, self.int4_group, softmax_scale, num_splits)

    def dequantize(self):
        return kv_cache_dequantize(self.k, self.v, self.k_param, self.v_param, self.format, self.int4_group)
