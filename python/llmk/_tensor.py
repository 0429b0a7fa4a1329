"""torch tensors as llmk_tensor descriptions, and the handle and stream of a call."""
import torch

from . import _lib

_DTYPES = {
    torch.float32: _lib.F32,
    torch.float16: _lib.F16,
    torch.bfloat16: _lib.BF16,
    torch.float8_e4m3fn: _lib.E4M3,
    torch.float8_e5m2: _lib.E5M2,
    torch.int32: _lib.I32,
    torch.int64: _lib.I64,
    torch.uint8: _lib.U8,
}


def desc(t, name="tensor"):
    """The llmk_tensor for t (same memory, shape and strides), or an empty
    description (data NULL) for None. Tensors of more than 4 dims must be
    flattened by the caller."""
    d = _lib.Tensor()
    if t is None:
        return d
    if t.dtype not in _DTYPES:
        raise TypeError("llmk: %s has dtype %s, which llmk does not take" % (name, t.dtype))
    if t.dim() > _lib.MAX_DIMS:
        raise ValueError("llmk: %s has %d dims; at most %d" % (name, t.dim(), _lib.MAX_DIMS))
    d.data = t.data_ptr() or None
    d.dtype = _DTYPES[t.dtype]
    d.ndim = t.dim()
    for i, (n, s) in enumerate(zip(t.shape, t.stride())):
        d.shape[i], d.strides[i] = n, s
    return d


def rows2d(t):
    """t [..., K] as [rows, K] (a view where the leading dims collapse; None stays None):
    llmk takes at most 4 dims, and its row-wise ops take leading dims as rows."""
    return t if t is None or t.dim() <= 2 else t.reshape(-1, t.shape[-1])


def ptr(t):
    return None if t is None else (t.data_ptr() or None)


def context(fn, *tensors):
    """(handle, stream) for a call whose tensors (None skipped) must all live
    on one device: the CPU handle, or the device's handle and torch's current
    stream there."""
    devs = {t.device for t in tensors if t is not None}
    if len(devs) != 1:
        raise ValueError("llmk.%s: tensors on different devices: %s" % (fn, sorted(str(d) for d in devs)))
    dev = devs.pop()
    if dev.type == "cpu":
        return _lib.handle(None), None
    if dev.type != "cuda":
        raise ValueError("llmk.%s: tensors on %s; llmk runs on CPU and CUDA tensors" % (fn, dev))
    idx = dev.index if dev.index is not None else torch.cuda.current_device()
    return _lib.handle(idx), torch.cuda.current_stream(idx).cuda_stream


def expect(fn, cond, msg, *args):
    if not cond:
        raise ValueError("llmk.%s: %s" % (fn, msg % args if args else msg))


def expect_dtype(fn, name, t, *dtypes):
    if t.dtype not in dtypes:
        raise TypeError("llmk.%s: %s must be %s, got %s" % (fn, name, " or ".join(str(d) for d in dtypes), t.dtype))
