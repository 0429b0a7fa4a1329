"""ctypes view of libllmk: the library, its structs, its handles, its errors.

Nothing here imports torch: the op layer (llmk.ops) turns torch tensors into
the llmk_tensor descriptions defined here. One llmk handle per device (and
one for the CPU) is created on first use and kept for the life of the
process; a CUDA handle's creation allocates its workspace, so make one
eager call of any op before capturing a CUDA graph (as every graph capture
needs a warm-up anyway).
"""
import ctypes
import os
import threading

from ._version import __version__

__all__ = ["LlmkError", "LlmkInvalidArgument", "LlmkNotSupported", "lib", "library_path", "handle",
           "Tensor", "QuantDesc", "GemmDesc", "GroupedGemmDesc", "KvCache", "KvLoc", "RopeDesc", "AttnDesc",
           "RmsnormDesc", "MoeRouteDesc", "MoePermuteDesc", "check"]

# Enums of llmk.h (values are part of the ABI).
SUCCESS, ERR_INVALID_ARGUMENT, ERR_NOT_SUPPORTED = 0, 1, 2
F32, F16, BF16, E4M3, E5M2, I32, I64, U8 = range(8)
SCALING_TENSOR, SCALING_ROW, SCALING_COL, SCALING_BLOCK = range(4)
ACCUM_DEFAULT, ACCUM_FAST, ACCUM_FP32 = range(3)
GEMM_AUTO, GEMM_OWN, GEMM_CUBLASLT = range(3)
GROUP_STACKED, GROUP_MASKED = range(2)
KV_BF16, KV_FP8, KV_FP8_TENSOR, KV_INT4 = range(4)
ROPE_INTERLEAVED, ROPE_NEOX = range(2)
MOE_SOFTMAX_TOPK, MOE_TOPK_SOFTMAX, MOE_SIGMOID_TOPK, MOE_DEEPSEEK = range(4)
MAX_DIMS = 4


class LlmkError(RuntimeError):
    """An llmk call failed: `status` is the llmk_status name, `message` the
    library's sentence (llmk_last_error)."""

    def __init__(self, function, status, message):
        self.function, self.status, self.message = function, status, message
        super().__init__("%s: %s" % (status, message) if message else "%s failed: %s" % (function, status))


class LlmkInvalidArgument(LlmkError, ValueError):
    """LLMK_ERR_INVALID_ARGUMENT: a wrong shape, dtype, stride, alignment or device."""


class LlmkNotSupported(LlmkError, NotImplementedError):
    """LLMK_ERR_NOT_SUPPORTED: valid, but not available here (no GPU, not Hopper, ...)."""


class Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("dtype", ctypes.c_int), ("ndim", ctypes.c_int32),
                ("shape", ctypes.c_int64 * MAX_DIMS), ("strides", ctypes.c_int64 * MAX_DIMS)]


class _Sized(ctypes.Structure):
    """A sized struct of llmk.h: its first member, size, is set to the end of
    its last field (what the struct's LLMK_*_INIT sets); positional
    arguments fill the fields after it."""

    @classmethod
    def known_size(cls):
        last = cls._fields_[-1][0]
        return getattr(cls, last).offset + getattr(cls, last).size

    def __init__(self, *args, **kwargs):
        super().__init__(self.known_size(), *args, **kwargs)


_SIZE = ("size", ctypes.c_size_t)


class QuantDesc(_Sized):
    _fields_ = [_SIZE, ("scaling", ctypes.c_int), ("block_m", ctypes.c_int64), ("block_k", ctypes.c_int64),
                ("scale_ub", ctypes.c_void_p), ("num_rows", ctypes.c_void_p)]


class GemmDesc(_Sized):
    _fields_ = [_SIZE, ("scaling", ctypes.c_int), ("accum", ctypes.c_int), ("backend", ctypes.c_int),
                ("x_planes", ctypes.c_int)]


class GroupedGemmDesc(_Sized):
    _fields_ = [_SIZE, ("layout", ctypes.c_int), ("scaling", ctypes.c_int), ("accum", ctypes.c_int),
                ("backend", ctypes.c_int)]


class KvCache(_Sized):
    _fields_ = [_SIZE, ("format", ctypes.c_int), ("int4_group", ctypes.c_int32), ("k", Tensor), ("v", Tensor),
                ("k_param", Tensor), ("v_param", Tensor), ("block_table", Tensor)]


class KvLoc(_Sized):
    _fields_ = [_SIZE, ("offsets", Tensor), ("start_pos", Tensor)]


class RopeDesc(_Sized):
    _fields_ = [_SIZE, ("style", ctypes.c_int), ("rotary_dim", ctypes.c_int64), ("theta", ctypes.c_double),
                ("llama3_factor", ctypes.c_double), ("low_freq_factor", ctypes.c_double),
                ("high_freq_factor", ctypes.c_double), ("original_max_position", ctypes.c_double)]


class AttnDesc(_Sized):
    _fields_ = [_SIZE, ("softmax_scale", ctypes.c_float), ("max_seq_len", ctypes.c_int64),
                ("num_splits", ctypes.c_int32)]


class RmsnormDesc(_Sized):
    _fields_ = [_SIZE, ("eps", ctypes.c_float), ("fp8_planes", ctypes.c_int)]


class MoeRouteDesc(_Sized):
    _fields_ = [_SIZE, ("router", ctypes.c_int), ("k", ctypes.c_int32), ("renormalize", ctypes.c_int32),
                ("n_group", ctypes.c_int32), ("topk_group", ctypes.c_int32), ("scaling", ctypes.c_float)]


class MoePermuteDesc(_Sized):
    _fields_ = [_SIZE, ("layout", ctypes.c_int), ("expert_begin", ctypes.c_int64), ("m_max", ctypes.c_int64)]


class Int4Desc(_Sized):
    _fields_ = [_SIZE, ("group", ctypes.c_int32), ("asymmetric", ctypes.c_int32)]


class Int4ImportDesc(_Sized):
    _fields_ = [_SIZE, ("packing", ctypes.c_int), ("zero_plus_one", ctypes.c_int32), ("scale_dtype", ctypes.c_int)]


INT4_GPTQ, INT4_AWQ, INT4_ROWS = range(3)


# llmk_struct_id -> the mirror of that struct (llmk_struct_size checks them at load)
_MIRRORS = {0: Tensor, 3: QuantDesc, 4: GemmDesc, 5: KvCache, 6: KvLoc, 7: RopeDesc, 8: AttnDesc, 9: RmsnormDesc,
            13: GroupedGemmDesc, 14: MoeRouteDesc, 15: MoePermuteDesc, 16: Int4Desc, 17: Int4ImportDesc}


_P = ctypes.POINTER
_H, _S, _V = ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p  # handle, stream, void *
_PT = _P(Tensor)
# name -> argument types (all return llmk_status, an int)
_SIGNATURES = {
    "llmk_create_cpu": [_P(_H)],
    "llmk_create_cuda": [ctypes.c_int, _P(_H)],
    "llmk_destroy": [_H],
    "llmk_cuda_device_count": [_P(ctypes.c_int)],
    "llmk_quantize_fp8": [_H, _P(QuantDesc), _PT, _PT, _PT, _S],
    "llmk_dequantize_fp8": [_H, _P(QuantDesc), _PT, _PT, _PT, _S],
    "llmk_gemm_fp8": [_H, _P(GemmDesc), _PT, _PT, _PT, _PT, _PT, _PT, _S],
    "llmk_gemm_bf16": [_H, ctypes.c_int, _PT, _PT, _PT, _PT, _S],
    "llmk_gemm_grouped": [_H, _P(GroupedGemmDesc), _PT, _PT, _PT, _PT, _PT, _PT, _PT, _S],
    "llmk_set_gemm_tuning": [_H, ctypes.c_int],
    "llmk_rope": [_H, _P(RopeDesc), _PT, _PT, _PT, _S],
    "llmk_kv_cache_write": [_H, _P(KvCache), _PT, _PT, _P(KvLoc), _S],
    "llmk_kv_cache_dequantize": [_H, _P(KvCache), _PT, _PT, _S],
    "llmk_rope_qkv_write": [_H, _P(RopeDesc), _PT, ctypes.c_int64, _P(KvCache), _P(KvLoc), _PT, _S],
    "llmk_attention_decode": [_H, _P(AttnDesc), _PT, _P(KvCache), _PT, _PT, _PT, _S],
    "llmk_rmsnorm": [_H, _P(RmsnormDesc), _PT, _PT, _PT, _PT, _PT, _PT, _S],
    "llmk_silu_mul_quant": [_H, _P(QuantDesc), _PT, _PT, _PT, _PT, _S],
    "llmk_moe_route": [_H, _P(MoeRouteDesc), _PT, _PT, _PT, _PT, _S],
    "llmk_moe_permute": [_H, _P(MoePermuteDesc), _PT, _PT, _PT, _PT, _PT, _S],
    "llmk_moe_route_permute": [_H, _P(MoeRouteDesc), _P(MoePermuteDesc), _PT, _PT, _PT, _PT, _PT, _PT, _PT, _PT,
                               _S],
    "llmk_moe_gather_quant": [_H, _P(QuantDesc), _PT, _PT, ctypes.c_int32, _PT, _PT, _S],
    "llmk_moe_combine": [_H, _PT, _PT, _PT, _PT, _PT, _S],
    "llmk_int4_quantize": [_H, _P(Int4Desc), _PT, _PT, _PT, _PT, _S],
    "llmk_int4_dequantize": [_H, _P(Int4Desc), _PT, _PT, _PT, _PT, _S],
    "llmk_int4_import": [_P(Int4Desc), _P(Int4ImportDesc), ctypes.c_int64, ctypes.c_int64, _V, _V, _V, _V, _V, _V],
    "llmk_gemm_w4a16": [_H, _P(Int4Desc), _PT, _PT, _PT, _PT, _PT, _PT, _S],
}


def _candidates():
    env = os.environ.get("LLMK_LIBRARY")
    if env:
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    return [os.path.join(here, "libllmk.so"),                         # pip install ./python
            os.path.join(here, "..", "..", "build", "libllmk.so"),     # the source tree, after make
            "libllmk.so"]                                              # the loader's search path


def _load():
    errors = []
    for path in _candidates():
        if os.path.sep in path and not os.path.exists(path):
            errors.append("%s: no such file" % path)
            continue
        try:
            so = ctypes.CDLL(path)
        except OSError as e:
            errors.append("%s: %s" % (path, e))
            continue
        so.llmk_status_string.restype = ctypes.c_char_p
        so.llmk_status_string.argtypes = [ctypes.c_int]
        so.llmk_last_error.restype = ctypes.c_char_p
        so.llmk_last_error.argtypes = []
        for name, args in _SIGNATURES.items():
            fn = getattr(so, name, None)
            if fn is not None:
                fn.argtypes, fn.restype = args, ctypes.c_int
        _check_abi(so, path)
        return so, path
    raise ImportError("llmk: cannot load libllmk.so (build it with `make`, or set LLMK_LIBRARY): "
                      + "; ".join(errors))


def _check_abi(so, path):
    """The library must be the version this package was built for, and every
    struct mirrored here must have the library's size: else ImportError."""
    if getattr(so, "llmk_version", None) is None or getattr(so, "llmk_struct_size", None) is None:
        raise ImportError("llmk %s: %s is an llmk older than 0.2 (no llmk_version): rebuild it with `make` "
                          "or point LLMK_LIBRARY at a matching build" % (__version__, path))
    so.llmk_version.restype, so.llmk_version.argtypes = ctypes.c_int, []
    so.llmk_struct_size.restype, so.llmk_struct_size.argtypes = ctypes.c_size_t, [ctypes.c_int]
    code = so.llmk_version()
    have = "%d.%d.%d" % (code // 10000, code // 100 % 100, code % 100)
    if have != __version__:
        raise ImportError("llmk: the Python package is version %s but %s is version %s: rebuild the library "
                          "and reinstall the package from the same tree (pip install ./python)"
                          % (__version__, path, have))
    for sid, mirror in _MIRRORS.items():
        ours = mirror.known_size() if issubclass(mirror, _Sized) else ctypes.sizeof(mirror)
        theirs = so.llmk_struct_size(sid)
        if ours != theirs:
            raise ImportError("llmk %s: struct %s is %d bytes in %s but %d in this package's mirror: "
                              "the two were built from different llmk.h" % (have, mirror.__name__, theirs, path, ours))


lib, library_path = _load()


def check(function, status):
    """Raises the LlmkError for a failed status (the library's message attached)."""
    if status == SUCCESS:
        return
    name = lib.llmk_status_string(status).decode()
    msg = lib.llmk_last_error().decode(errors="replace")
    cls = {ERR_INVALID_ARGUMENT: LlmkInvalidArgument, ERR_NOT_SUPPORTED: LlmkNotSupported}.get(status, LlmkError)
    raise cls(function, name, msg)


def call(name, *args):
    fn = getattr(lib, name, None)
    if fn is None:
        raise LlmkNotSupported(name, "LLMK_ERR_NOT_SUPPORTED", "%s is not in %s" % (name, library_path))
    check(name, fn(*args))


_handles = {}
_lock = threading.Lock()


def handle(device_index):
    """The process's llmk handle for CUDA device `device_index` (None: the CPU)."""
    h = _handles.get(device_index)
    if h is not None:
        return h
    with _lock:
        h = _handles.get(device_index)
        if h is None:
            h = ctypes.c_void_p()
            if device_index is None:
                call("llmk_create_cpu", ctypes.byref(h))
            else:
                call("llmk_create_cuda", int(device_index), ctypes.byref(h))
            _handles[device_index] = h
    return h
