"""PyTorch references of llmk's numerics (docs/DESIGN.md, docs/ATTENTION.md).

They compute on the CPU and return to the input's device: PyTorch's CUDA
division by a scalar multiplies by its reciprocal (not IEEE division), which
changes scales in their last bit (seen on the H100: every bitwise scale
comparison failed with CUDA-side references)."""
import functools

import torch


def on_cpu(fn):
    @functools.wraps(fn)
    def wrapped(*args, **kw):
        dev = next((a.device for a in args if isinstance(a, torch.Tensor)), torch.device("cpu"))
        out = fn(*[a.cpu() if isinstance(a, torch.Tensor) else a for a in args], **kw)
        if isinstance(out, tuple):
            return tuple(o.to(dev) for o in out)
        return out.to(dev)
    return wrapped

E4M3_MAX = 448.0
MIN_SCALE = 1.0 / (448.0 * 512.0)


def fp8(x):
    """float32 -> e4m3: round to nearest even, saturate (NaN stays NaN)."""
    return x.clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)


def amax_finite(x, dim=None, keepdim=False):
    a = torch.where(torch.isfinite(x), x.abs(), torch.zeros_like(x))
    return a.amax() if dim is None else a.amax(dim=dim, keepdim=keepdim)


@on_cpu
def quantize(x, amax):
    scale = torch.clamp(amax / E4M3_MAX, min=MIN_SCALE)
    inv = 1.0 / scale
    return fp8(x * inv), scale


@on_cpu
def quantize_rows(x):
    x = x.float()
    q, s = quantize(x, amax_finite(x, -1, True))
    return q, s.squeeze(-1)


@on_cpu
def quantize_blocks(x, bm, bk):
    x = x.float()
    m, k = x.shape
    mb, kb = -(-m // bm), -(-k // bk)
    pad = torch.zeros(mb * bm, kb * bk, dtype=x.dtype, device=x.device)
    pad[:m, :k] = x
    blocks = pad.view(mb, bm, kb, bk)
    amax = amax_finite(blocks, (1, 3), True)
    q, s = quantize(blocks, amax)
    return q.view(mb * bm, kb * bk)[:m, :k], s.view(mb, kb)


def dequant_blocks(q, s, bm, bk):
    m, k = q.shape
    full = s.repeat_interleave(bm, 0)[:m].repeat_interleave(bk, 1)[:, :k]
    return q.double() * full.double()


def rel_err(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp(min=1e-300)).item()


@on_cpu
def rmsnorm(x, w, eps):
    xf = x.float()
    ss = (xf.double() ** 2).sum(-1, keepdim=True)
    r = (1.0 / torch.sqrt(ss / x.shape[-1] + eps)).float()
    return ((xf * r) * w.float()).to(torch.bfloat16)


@on_cpu
def silu_mul(g, u):
    gd, ud = g.double(), u.double()
    return (gd / (1.0 + torch.exp(-gd)) * ud).to(torch.bfloat16)
