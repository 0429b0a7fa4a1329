/*
 * llmk.h: the public C API of llmk, FP8 inference kernels for NVIDIA Hopper.
 *
 * Conventions (docs/DESIGN.md has the full text and the numerics of every op):
 *  - Every function returns an llmk_status. On failure, llmk_last_error()
 *    returns a sentence for this thread saying what was wrong; nothing was
 *    written to any output and the library remains usable.
 *  - A handle (llmk_handle) is bound to one backend: the CPU reference or one
 *    CUDA device. It holds no stream: ops take a cudaStream_t as `void *`,
 *    last (NULL = the legacy default stream). CPU handles ignore the stream.
 *    Outputs come after inputs, before the stream.
 *  - Tensors are described by llmk_tensor (pointer, dtype, shape, strides in
 *    elements). For a CUDA handle every data pointer must be device (or
 *    managed) memory of the handle's device; for a CPU handle, host memory.
 *  - No op allocates, synchronizes or reads device memory back on the host,
 *    so every op can be captured in a CUDA graph. Values that may change
 *    between graph replays (scale bounds, row counts) are passed by pointer
 *    to memory of the handle's backend.
 *  - Device-side bounds and counts (scale_ub, num_rows, seq_lens, the KV
 *    locations, block tables) are read while outputs are written: one that
 *    overlaps an output of the same call is refused (INVALID_ARGUMENT).
 *  - The library never prints, exits or aborts on user input.
 *  - ABI: every struct passed by pointer (descriptors, and the structs the
 *    library fills) begins with `size_t size`, which its LLMK_*_INIT
 *    initializer sets; see "Sized structs" below.
 */
#ifndef LLMK_H
#define LLMK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every public function carries LLMK_API; the library is built with hidden
 * visibility, so these are its only exported symbols. */
#if defined(_WIN32)
#define LLMK_API
#elif defined(__GNUC__)
#define LLMK_API __attribute__((visibility("default")))
#else
#define LLMK_API
#endif

/* The version, here and nowhere else (the Makefile, llmk.pc and the Python
 * package read it from these lines). While MAJOR is 0 a MINOR release may
 * change the ABI (the soname is libllmk.so.0.MINOR). */
#define LLMK_VERSION_MAJOR 0
#define LLMK_VERSION_MINOR 2
#define LLMK_VERSION_PATCH 0
#define LLMK_VERSION_CODE (LLMK_VERSION_MAJOR * 10000 + LLMK_VERSION_MINOR * 100 + LLMK_VERSION_PATCH)

/* LLMK_VERSION_CODE of the library actually loaded (compare with the
 * header's to detect a mismatched libllmk). */
LLMK_API int llmk_version(void);

/*
 * Sized structs. Each struct passed by pointer begins with `size_t size`:
 * the bytes of the struct the caller was compiled with, up to the END of
 * its last field (not sizeof: a later field may occupy today's tail
 * padding). Initialize with the struct's LLMK_*_INIT macro, which sets it:
 *     llmk_gemm_desc d = LLMK_GEMM_DESC_INIT;  d.scaling = LLMK_SCALING_ROW;
 * Fields are only ever appended, and a field added later defaults to 0,
 * which keeps the earlier behaviour. The library reads (or, for structs it
 * fills, writes) a field only where it lies wholly within `size`; the
 * others take their defaults. A size of 0 (an uninitialized struct) or
 * below the struct's first version is INVALID_ARGUMENT; a size beyond
 * what this library knows is accepted when the unknown bytes are all zero
 * (a newer caller's new fields left at their defaults), else NOT_SUPPORTED.
 */
#define LLMK_SIZE_THROUGH(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/* ------------------------------------------------------------------------ */
/* Status and errors                                                         */
/* ------------------------------------------------------------------------ */

typedef enum llmk_status {
  LLMK_SUCCESS = 0,
  LLMK_ERR_INVALID_ARGUMENT = 1, /* a null, misshapen, misaligned or wrong-device argument */
  LLMK_ERR_NOT_SUPPORTED = 2,    /* valid, but not available here (no GPU, no CUDA build, not Hopper) */
  LLMK_ERR_OUT_OF_MEMORY = 3,    /* an allocation made at handle creation failed */
  LLMK_ERR_CUDA = 4,             /* the CUDA runtime reported an error (message has its text) */
  LLMK_ERR_CUBLAS = 5,           /* cuBLASLt reported an error */
  LLMK_ERR_NCCL = 6,             /* NCCL reported an error */
  LLMK_ERR_COMM_TIMEOUT = 7,     /* a peer did not arrive within the communicator's timeout */
  LLMK_ERR_INTERNAL = 8          /* a bug in llmk: please report it with the message */
} llmk_status;

/* A static string naming the status ("LLMK_ERR_INVALID_ARGUMENT"); never NULL. */
LLMK_API const char *llmk_status_string(llmk_status s);

/* The message of the most recent failed llmk call on this thread, e.g.
 * "llmk_quantize_fp8: x: expected dtype f32, f16 or bf16, got e4m3".
 * Successful calls leave it unchanged; "" if no call has failed yet.
 * The pointer stays valid until the next llmk call on this thread. */
LLMK_API const char *llmk_last_error(void);

/* ------------------------------------------------------------------------ */
/* Version and build                                                         */
/* ------------------------------------------------------------------------ */

typedef struct llmk_build_info {
  size_t size;         /* LLMK_BUILD_INFO_INIT */
  int version_major, version_minor, version_patch;
  int has_cuda;        /* 1 if CUDA kernels were compiled in */
  int cuda_version;    /* CUDA runtime the library was built against, e.g. 13000; 0 without CUDA */
  int cublas_version;  /* cuBLAS(Lt) headers built against, e.g. 130100; 0 without CUDA */
  int nccl_version;    /* NCCL headers built against, e.g. 22703; 0 without CUDA */
  const char *cuda_archs; /* e.g. "sm_90a"; "" without CUDA */
} llmk_build_info;
#define LLMK_BUILD_INFO_SIZE LLMK_SIZE_THROUGH(llmk_build_info, cuda_archs)
#define LLMK_BUILD_INFO_INIT {LLMK_BUILD_INFO_SIZE, 0, 0, 0, 0, 0, 0, 0, NULL}

/* Fills the fields of *info that its size covers (set info->size first,
 * e.g. llmk_build_info b = LLMK_BUILD_INFO_INIT). Errors: INVALID_ARGUMENT
 * (info NULL, or a size as the "Sized structs" rule above refuses). */
LLMK_API llmk_status llmk_get_build_info(llmk_build_info *info);

/* The public structs, for bindings that mirror them (Python's ctypes). */
typedef enum llmk_struct_id {
  LLMK_STRUCT_TENSOR = 0,
  LLMK_STRUCT_BUILD_INFO = 1,
  LLMK_STRUCT_DEVICE_INFO = 2,
  LLMK_STRUCT_QUANTIZE_DESC = 3,
  LLMK_STRUCT_GEMM_DESC = 4,
  LLMK_STRUCT_KV_CACHE = 5,
  LLMK_STRUCT_KV_LOC = 6,
  LLMK_STRUCT_ROPE_DESC = 7,
  LLMK_STRUCT_ATTENTION_DESC = 8,
  LLMK_STRUCT_RMSNORM_DESC = 9,
  LLMK_STRUCT_GEMM_CONFIG = 10,
  LLMK_STRUCT_GEMM_ROUTE = 11,
  LLMK_STRUCT_GEMM_OVERRIDE = 12,
  LLMK_STRUCT_GROUPED_GEMM_DESC = 13,
  LLMK_STRUCT_MOE_ROUTE_DESC = 14,
  LLMK_STRUCT_MOE_PERMUTE_DESC = 15,
  LLMK_STRUCT_INT4_DESC = 16,
  LLMK_STRUCT_INT4_IMPORT_DESC = 17
} llmk_struct_id;

/* The size this library gives struct `id`: its LLMK_*_SIZE (the end of its
 * last field) for a sized struct, sizeof(llmk_tensor) for the tensor; 0
 * for an unknown id. A binding whose mirror of a struct differs was built
 * for another version. */
LLMK_API size_t llmk_struct_size(llmk_struct_id id);

/* ------------------------------------------------------------------------ */
/* Data types and tensors                                                    */
/* ------------------------------------------------------------------------ */

typedef enum llmk_dtype {
  LLMK_F32 = 0,
  LLMK_F16 = 1,
  LLMK_BF16 = 2,
  LLMK_E4M3 = 3, /* OCP FP8 E4M3FN: bias 7, max 448, no infinity, NaN = 0x7F/0xFF */
  LLMK_E5M2 = 4, /* OCP FP8 E5M2: bias 15, max 57344, with infinity */
  LLMK_I32 = 5,
  LLMK_I64 = 6,
  LLMK_U8 = 7
} llmk_dtype;

/* Size in bytes of one element (0 for an invalid dtype). */
LLMK_API size_t llmk_dtype_size(llmk_dtype dt);
/* "f32", "bf16", "e4m3", ...; "invalid" for an unknown value. */
LLMK_API const char *llmk_dtype_name(llmk_dtype dt);

#define LLMK_MAX_DIMS 4
/* The largest dim, stride and tensor extent llmk takes, in elements (2^48);
 * beyond it a call is INVALID_ARGUMENT, saying so. llmk cannot see the size
 * of the caller's allocations: a shape larger than its buffer is not
 * detected (where two such views overlap, the call reports the overlap). */
#define LLMK_MAX_EXTENT (INT64_C(1) << 48)

/* A strided view of memory. shape[i] >= 0; strides are in elements. Ops say
 * which strides they accept. Unused trailing entries are ignored. A value
 * type of fixed layout (no size field): it will not grow within a major
 * version. */
typedef struct llmk_tensor {
  void *data;
  llmk_dtype dtype;
  int32_t ndim;
  int64_t shape[LLMK_MAX_DIMS];
  int64_t strides[LLMK_MAX_DIMS];
} llmk_tensor;

/* The empty tensor (NULL data, no dims): optional tensors left unset. */
#define LLMK_TENSOR_NONE {NULL, LLMK_F32, 0, {0, 0, 0, 0}, {0, 0, 0, 0}}

/* Convenience constructors (no allocation). row_stride is in elements. */
static inline llmk_tensor llmk_tensor_1d(void *data, llmk_dtype dt, int64_t n) {
  llmk_tensor t = {data, dt, 1, {n, 0, 0, 0}, {1, 0, 0, 0}};
  return t;
}
static inline llmk_tensor llmk_tensor_2d(void *data, llmk_dtype dt, int64_t rows,
                                         int64_t cols, int64_t row_stride) {
  llmk_tensor t = {data, dt, 2, {rows, cols, 0, 0}, {row_stride, 1, 0, 0}};
  return t;
}
/* Contiguous (row-major) 3-D and 4-D views, e.g. [T, H, D] heads and KV caches. */
static inline llmk_tensor llmk_tensor_3d(void *data, llmk_dtype dt, int64_t d0, int64_t d1, int64_t d2) {
  llmk_tensor t = {data, dt, 3, {d0, d1, d2, 0}, {d1 * d2, d2, 1, 0}};
  return t;
}
static inline llmk_tensor llmk_tensor_4d(void *data, llmk_dtype dt, int64_t d0, int64_t d1, int64_t d2,
                                         int64_t d3) {
  llmk_tensor t = {data, dt, 4, {d0, d1, d2, d3}, {d1 * d2 * d3, d2 * d3, d3, 1}};
  return t;
}

/* ------------------------------------------------------------------------ */
/* Scalar conversions (the library's exact numerics, usable on the host)     */
/* ------------------------------------------------------------------------ */

/* float -> FP8 code: round to nearest even, finite overflow and +-Inf
 * saturate to +-max, NaN gives the positive NaN code 0x7F (as cuda_fp8.h's
 * host conversion with __NV_SATFINITE). dt must be LLMK_E4M3 or LLMK_E5M2;
 * any other dtype returns 0. */
LLMK_API uint8_t llmk_float_to_fp8(float x, llmk_dtype dt);
/* FP8 code -> float (exact). Other dtypes return NaN. */
LLMK_API float llmk_fp8_to_float(uint8_t code, llmk_dtype dt);
/* float <-> bf16 / f16 bits, round to nearest even; NaN stays NaN. */
LLMK_API uint16_t llmk_float_to_bf16(float x);
LLMK_API float llmk_bf16_to_float(uint16_t bits);
LLMK_API uint16_t llmk_float_to_f16(float x);
LLMK_API float llmk_f16_to_float(uint16_t bits);

/* ------------------------------------------------------------------------ */
/* Handles and devices                                                       */
/* ------------------------------------------------------------------------ */

typedef struct llmk_handle_s *llmk_handle;

typedef enum llmk_backend { LLMK_BACKEND_CPU = 0, LLMK_BACKEND_CUDA = 1 } llmk_backend;

/* Creates a handle that runs the CPU reference backend. Always available.
 * Errors: INVALID_ARGUMENT (out is NULL), OUT_OF_MEMORY. */
LLMK_API llmk_status llmk_create_cpu(llmk_handle *out);

/* Creates a handle bound to CUDA device `device`. It queries the device
 * once (SM count, memory, compute capability); the current device of the
 * calling thread is left unchanged.
 * Errors: INVALID_ARGUMENT (out NULL, device out of range),
 *         NOT_SUPPORTED (library built without CUDA, no driver or no device),
 *         CUDA (the runtime failed). On error *out is set to NULL.
 * A handle on a GPU other than compute capability 9.x is created, but its
 * ops return NOT_SUPPORTED: the kernels are compiled for sm_90a only. */
LLMK_API llmk_status llmk_create_cuda(int device, llmk_handle *out);

/* Destroys a handle (NULL is allowed and does nothing). The caller must
 * make sure no work issued through it is still running. */
LLMK_API llmk_status llmk_destroy(llmk_handle h);

typedef struct llmk_device_info {
  size_t size;          /* LLMK_DEVICE_INFO_INIT */
  char name[256];
  int device;
  int sm_count;
  int cc_major, cc_minor;
  size_t total_memory;  /* bytes */
  size_t l2_bytes;
  int supported;        /* 1 if llmk's kernels run on it (compute capability 9.x) */
} llmk_device_info;
#define LLMK_DEVICE_INFO_SIZE LLMK_SIZE_THROUGH(llmk_device_info, supported)
#define LLMK_DEVICE_INFO_INIT {LLMK_DEVICE_INFO_SIZE, {0}, 0, 0, 0, 0, 0, 0, 0}

/* Number of visible CUDA devices in *count (0 when built without CUDA or
 * when no driver or device is present; that is not an error). */
LLMK_API llmk_status llmk_cuda_device_count(int *count);
/* Properties of CUDA device `device`, in the fields info->size covers
 * (llmk_device_info i = LLMK_DEVICE_INFO_INIT).
 * Errors: INVALID_ARGUMENT (info NULL or badly sized, device out of range),
 * NOT_SUPPORTED, CUDA. */
LLMK_API llmk_status llmk_cuda_device_info(int device, llmk_device_info *info);

/* Backend of a handle, and its device (-1 for CPU). */
LLMK_API llmk_status llmk_handle_backend(llmk_handle h, llmk_backend *backend, int *device);

/* Replaces the device workspace that a CUDA handle's GEMMs use (split-K
 * partial sums, cuBLASLt's workspace), as does llmk_moe_permute (its
 * per-chunk counts). llmk_create_cuda allocates
 * LLMK_DEFAULT_WORKSPACE_BYTES itself; with this call the caller lends its
 * own buffer instead (the handle's buffer is freed), or gives the handle
 * its own buffer back with ptr = NULL, bytes = 0.
 * ptr: device memory of the handle's device, 256-byte aligned, at least
 * LLMK_MIN_WORKSPACE_BYTES, owned by the caller and valid until the handle
 * is destroyed or given another workspace.
 * A workspace serves one op at a time: ops of one handle issued to several
 * streams that may run concurrently must use one handle per stream.
 * Errors: INVALID_ARGUMENT (CPU handle, misaligned or too small buffer,
 *         pointer not on the device), OUT_OF_MEMORY (re-allocating the
 *         handle's own buffer failed; the handle then has none and its
 *         GEMMs return INVALID_ARGUMENT until a workspace is set). */
#define LLMK_DEFAULT_WORKSPACE_BYTES ((size_t)32 << 20)
#define LLMK_MIN_WORKSPACE_BYTES ((size_t)4 << 20)
LLMK_API llmk_status llmk_set_workspace(llmk_handle h, void *ptr, size_t bytes);

/* ------------------------------------------------------------------------ */
/* FP8 quantization                                                          */
/* ------------------------------------------------------------------------ */

typedef enum llmk_scaling {
  LLMK_SCALING_TENSOR = 0, /* one scale for the tensor:  scale shape [1]     */
  LLMK_SCALING_ROW = 1,    /* one scale per row:          scale shape [M]     */
  LLMK_SCALING_COL = 2,    /* one scale per column:       scale shape [K]     */
  LLMK_SCALING_BLOCK = 3   /* one per block_m x block_k:  [ceil(M/bm), ceil(K/bk)] */
} llmk_scaling;

typedef struct llmk_quantize_desc {
  size_t size;              /* LLMK_QUANTIZE_DESC_INIT */
  llmk_scaling scaling;
  int64_t block_m, block_k; /* BLOCK only: any positive sizes (1x128 and
                               128x128 are the DeepSeek-V3 recipe); ignored otherwise */
  const float *scale_ub;    /* optional (NULL): amax is clamped to *scale_ub.
                               Memory of the handle's backend (device for CUDA). */
  const int64_t *num_rows;  /* optional (NULL), TENSOR only: the scale is taken over
                               the first min(max(*num_rows, 0), M) rows only; all M
                               rows are still quantized (FBGEMM's `bs`). Memory of
                               the handle's backend. */
} llmk_quantize_desc;
#define LLMK_QUANTIZE_DESC_SIZE LLMK_SIZE_THROUGH(llmk_quantize_desc, num_rows)
#define LLMK_QUANTIZE_DESC_INIT {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_TENSOR, 0, 0, NULL, NULL}

/*
 * llmk_quantize_fp8: quantize x to FP8 with one dequantization scale per group.
 *
 * x      [..., K]  f32, f16 or bf16. The last dim has stride 1; leading dims
 *                  are flattened into M rows and must be collapsible into one
 *                  row stride >= K (a row pitch larger than K is allowed).
 * xq     same shape as x, e4m3 (any scaling) or e5m2 (TENSOR and ROW only),
 *        last-dim stride 1, its own row stride >= K.
 * scale  f32, contiguous, shape per desc->scaling (see llmk_scaling): [1], [M],
 *        [K] or [ceil(M/bm), ceil(K/bk)] (row-major, the last with ndim 2).
 *
 * For each group G (docs/DESIGN.md, "Quantization", bit for bit):
 *   amax  = max |x| over the finite elements of G   (NaN, +-Inf skipped)
 *   amax  = fminf(amax, *scale_ub)                  if scale_ub is given
 *   scale = fmaxf(amax / FP8_MAX, MIN_SCALE)         MIN_SCALE = 1/(FP8_MAX*512)
 *   inv   = 1.0f / scale;  q = fp8_satfinite_rne(x * inv)
 * FP8_MAX is 448 (e4m3) or 57344 (e5m2). Empty or all-zero groups get
 * scale = MIN_SCALE. CPU and CUDA results are bitwise identical.
 *
 * Alignment: elements must be aligned to their size. The CUDA kernels use
 * 16-byte vector accesses when x's and xq's base pointers and row pitches
 * allow it, and a slower scalar path otherwise (results are identical).
 * In place: not allowed (x, xq and scale must not overlap). *scale_ub and
 * *num_rows are read while the groups are written, so they must not lie
 * inside xq or scale: such a call is INVALID_ARGUMENT.
 * Zero-sized M or K: scales of the (empty) groups are written as MIN_SCALE.
 *
 * Errors: INVALID_ARGUMENT (null handle/desc/tensors, wrong dtype, shape or
 *         stride, misaligned element, bad block sizes, pointer not on the
 *         handle's device), NOT_SUPPORTED (GPU not Hopper), CUDA (launch failed).
 */
LLMK_API llmk_status llmk_quantize_fp8(llmk_handle h, const llmk_quantize_desc *desc,
                              const llmk_tensor *x, const llmk_tensor *xq,
                              const llmk_tensor *scale, void *stream);

/*
 * llmk_dequantize_fp8: y = q * scale(group of q), computed in fp32 and
 * rounded once to y's dtype (bf16: nearest even).
 *
 * xq     [..., K] e4m3 or e5m2 (same rules as x above).
 * scale  f32, shaped as for llmk_quantize_fp8 with the same desc
 *        (scale_ub and num_rows are ignored).
 * y      same shape as xq, f32 or bf16, last-dim stride 1.
 * Errors: as llmk_quantize_fp8.
 */
LLMK_API llmk_status llmk_dequantize_fp8(llmk_handle h, const llmk_quantize_desc *desc,
                                const llmk_tensor *xq, const llmk_tensor *scale,
                                const llmk_tensor *y, void *stream);

/* ------------------------------------------------------------------------ */
/* FP8 GEMM with BF16 output                                                 */
/* ------------------------------------------------------------------------ */

typedef enum llmk_accum {
  LLMK_ACCUM_DEFAULT = 0, /* FAST for tensor- and row-wise scaling (as FBGEMM and torch), FP32 for block */
  LLMK_ACCUM_FAST = 1,    /* Hopper's FP8 accumulate over the whole K (~14 mantissa bits) */
  LLMK_ACCUM_FP32 = 2     /* partial sums promoted to fp32 at least every 128 of K */
} llmk_accum;

typedef enum llmk_gemm_backend {
  LLMK_GEMM_AUTO = 0,    /* the dispatcher's choice per shape (LLMK_GEMM_BACKEND overrides) */
  LLMK_GEMM_OWN = 1,     /* llmk's own Hopper kernels */
  LLMK_GEMM_CUBLASLT = 2 /* cuBLASLt */
} llmk_gemm_backend;

typedef struct llmk_gemm_desc {
  size_t size;               /* LLMK_GEMM_DESC_INIT */
  llmk_scaling scaling;      /* LLMK_SCALING_TENSOR, _ROW or _BLOCK (see llmk_gemm_fp8) */
  llmk_accum accum;
  llmk_gemm_backend backend; /* CUDA handles only; the CPU handle ignores it */
  int x_planes;              /* 0 or 1: x is one e4m3 matrix; 2: x holds two planes per row, see
                                below. A descriptor that ends before it has one plane. */
} llmk_gemm_desc;
#define LLMK_GEMM_DESC_SIZE LLMK_SIZE_THROUGH(llmk_gemm_desc, x_planes)
#define LLMK_GEMM_DESC_INIT {LLMK_GEMM_DESC_SIZE, LLMK_SCALING_TENSOR, LLMK_ACCUM_DEFAULT, LLMK_GEMM_AUTO, 0}

/*
 * llmk_gemm_fp8: Y = bf16(acc * x_scale[m] * w_scale[n] + bias[n]), with
 * acc[m, n] = sum_k X[m, k] * W[n, k]   (FBGEMM's f8f8bf16_rowwise,
 * torch._scaled_mm with X and W^T).
 *
 * x        [..., K] e4m3, last-dim stride 1; leading dims are flattened into
 *          M rows that must collapse into one row stride >= K.
 * w        [N, K] e4m3, last-dim stride 1, row stride >= K.
 * x_scale  f32, contiguous: [1] (TENSOR) or [M] (ROW; shape [M] or the
 *          leading dims of x). Dequantization scales, as llmk_quantize_fp8
 *          writes them. Device memory, read at run time (graph-safe).
 * w_scale  f32, contiguous: [1] (TENSOR) or [N] (ROW).
 * bias     NULL, or [N] f32 or bf16, contiguous.
 * y        [..., N] bf16 with the leading dims of x, last-dim stride 1,
 *          row stride >= N: the caller's output (an "out" form).
 *
 * Block scaling (desc->scaling = LLMK_SCALING_BLOCK; the DeepSeek-V3
 * recipe, FBGEMM's f8f8bf16_groupwise / _blockwise), with KB = ceil(K/128):
 * x_scale  f32, 2 dims: [M, KB] (1 x 128 groups along K) or [ceil(M/128),
 *          KB] (128 x 128 blocks; the shape tells which, and for M = 1 the
 *          two are the same), as llmk_quantize_fp8 writes them with block
 *          1x128 or 128x128.
 * w_scale  f32, 2 dims: [ceil(N/128), KB] (128 x 128 blocks).
 *          Either scale tensor may be row-major (strides {>= KB, 1}) or
 *          column-major (strides {1, >= rows}: the "M-major" layout that
 *          cuBLASLt and DeepGEMM use for activations); a dim of size 1 may
 *          have any stride. cuBLASLt (AUTO picks it per shape) takes 1x128
 *          activation groups only; scales in a layout it does not read are
 *          repacked into the handle's workspace first (a few us). With
 *          128x128 activation blocks, or a workspace too small for the
 *          repack, AUTO runs the own kernels and a forced
 *          LLMK_GEMM_CUBLASLT is NOT_SUPPORTED.
 *          desc->accum must be DEFAULT or FP32: each 128-deep slice's sum
 *          is scaled and added to an fp32 accumulator (one fmaf).
 *
 * Numerics (docs/DESIGN.md, "Scaled GEMM", normative): the product is
 * accumulated in fp32 (FAST: Hopper's FP8 accumulate; FP32: promoted every
 * 128 of K), then v = (acc * x_scale) * w_scale in fp32, v += bias (as
 * fp32), rounded once to bf16. The CPU backend accumulates exactly and is
 * the reference of the GPU tests (docs/DESIGN.md, "GEMM tolerances").
 * Sizes: M, N or K = 0 is allowed: M or N = 0 writes nothing; K = 0 writes
 * bf16(bias) (or zeros) to every element of y.
 * Alignment (CUDA): pointers aligned to their element size; x, w and y
 * base pointers 16-byte aligned, K a multiple of 16 and N a multiple of 8
 * for the own kernels and cuBLASLt (row strides likewise: x and w rows a
 * multiple of 16 bytes, y rows a multiple of 8 elements). Other shapes get
 * INVALID_ARGUMENT saying which rule failed.
 * In place: y must not overlap x, w, the scales or the bias.
 * Workspace: the handle's (llmk_set_workspace); no allocation per call.
 * Stream order: the own kernels are programmatic dependents of the kernel
 * ahead of them on the stream (LLMK_GEMM_PDL=0 turns that off). They read
 * x, w, the scales and the bias only after that kernel has finished. With
 * LLMK_GEMM_W_EARLY=1 the swapped decode tiles (small M) load their first
 * W slices as soon as they start, which is before it finishes if it
 * allowed its dependents to launch early (griddepcontrol.launch_dependents):
 * no llmk kernel that does so writes an e4m3 tensor, but a kernel of your
 * own that does must not write w.
 *
 * Two-plane activations (desc->x_planes = 2; ROW scaling only): each row of
 * the product is the sum of two FP8 rows, a "hi" plane and its rounding
 * residual "lo" (llmk_rmsnorm writes them with desc->fp8_planes = 2), so
 * that X carries about 7 more bits than one e4m3 plane while W stays FP8
 * and the weight bytes, which bound a decode GEMM, do not change.
 * x        [..., 2, K] e4m3: rows 2m (hi) and 2m + 1 (lo) of the flattened
 *          [2M, K] matrix belong to output row m; one row stride >= K.
 * x_scale  f32 [2M] (or x's leading dims), contiguous: the scale of each
 *          plane row. y is [..., N] with x's leading dims less the 2.
 * Numerics: y = bf16(P_0 + P_1 [+ bias]), P_j the bf16 one-plane product
 * of plane j without bias (docs/DESIGN.md, "Scaled GEMM"). The own kernels
 * add the pairs in their epilogue (no workspace); a forced cuBLASLt runs
 * the plane rows into the handle's workspace and adds them in a second
 * pass.
 *
 * Errors: INVALID_ARGUMENT (null handle/desc/tensors, wrong dtype, shape,
 *         stride or alignment, bad enum, FAST accumulation with block
 *         scaling, pointer not on the handle's device, overlapping
 *         output), NOT_SUPPORTED (GPU not Hopper, or a forced backend that
 *         cannot take the shape or, for cuBLASLt, 128x128 activation
 *         blocks), CUDA, CUBLAS.
 */
LLMK_API llmk_status llmk_gemm_fp8(llmk_handle h, const llmk_gemm_desc *desc, const llmk_tensor *x,
                          const llmk_tensor *w, const llmk_tensor *x_scale,
                          const llmk_tensor *w_scale, const llmk_tensor *bias,
                          const llmk_tensor *y, void *stream);

/*
 * llmk_gemm_bf16: Y = bf16(acc + bias[n]), acc[m, n] = sum_k X[m, k] * W[n, k]
 * (torch.mm / F.linear in bf16), the baseline every FP8 layer is compared
 * with and the path for layers kept in BF16.
 *
 * x, w, bias, y as for llmk_gemm_fp8, with x and w in bf16.
 * backend  LLMK_GEMM_CUBLASLT: cuBLASLt (fp32 compute); LLMK_GEMM_OWN:
 *          llmk's own kernels (wgmma tiles, or mma.sync for a few tokens;
 *          fp32 accumulation); LLMK_GEMM_AUTO: whichever measured faster
 *          for the shape (the tuned table; cuBLASLt off it), the own
 *          kernels for an f32 bias and where cuBLASLt has no algorithm.
 *          LLMK_GEMM_BACKEND is not consulted. The CPU handle ignores it.
 *
 * Numerics: acc in fp32 or wider (the CPU reference sums the exact
 * products in fp64, converts once to fp32), v = acc + bias in fp32,
 * rounded once to bf16 (nearest even).
 * Sizes: as llmk_gemm_fp8 (K = 0 writes bf16(bias) or zeros).
 * Alignment (CUDA): x, w and y base pointers 16-byte aligned, K and the x
 * and w row strides a multiple of 8 elements (16 bytes), N and y's row
 * stride a multiple of 8.
 * In place: y must not overlap x, w or the bias.
 *
 * Errors: INVALID_ARGUMENT (as llmk_gemm_fp8), NOT_SUPPORTED (GPU not
 *         Hopper; with LLMK_GEMM_CUBLASLT: an f32 bias with K > 0, which
 *         cuBLASLt does not take, or no cuBLASLt algorithm), CUDA, CUBLAS.
 */
LLMK_API llmk_status llmk_gemm_bf16(llmk_handle h, llmk_gemm_backend backend, const llmk_tensor *x,
                           const llmk_tensor *w, const llmk_tensor *bias, const llmk_tensor *y,
                           void *stream);

/* ---- Grouped GEMM (mixture-of-experts experts) ---------------------------- */

typedef enum llmk_group_layout {
  LLMK_GROUP_STACKED = 0, /* rows sorted by group, group sizes on the device */
  LLMK_GROUP_MASKED = 1   /* a fixed block of rows per group, valid counts on the device */
} llmk_group_layout;

typedef struct llmk_grouped_gemm_desc {
  size_t size;               /* LLMK_GROUPED_GEMM_DESC_INIT */
  llmk_group_layout layout;
  llmk_scaling scaling;      /* FP8: LLMK_SCALING_TENSOR, _ROW or _BLOCK; BF16: ignored */
  llmk_accum accum;          /* FP8 as llmk_gemm_desc.accum; BF16: ignored (fp32) */
  llmk_gemm_backend backend; /* AUTO or OWN (CUDA handles; the CPU handle ignores it) */
} llmk_grouped_gemm_desc;
#define LLMK_GROUPED_GEMM_DESC_SIZE LLMK_SIZE_THROUGH(llmk_grouped_gemm_desc, backend)
#define LLMK_GROUPED_GEMM_DESC_INIT \
  {LLMK_GROUPED_GEMM_DESC_SIZE, LLMK_GROUP_STACKED, LLMK_SCALING_ROW, LLMK_ACCUM_DEFAULT, LLMK_GEMM_AUTO}

/*
 * llmk_gemm_grouped: one GEMM per group (expert) g over the rows the group
 * owns, Y[r] = bf16(acc * x_scale * w_scale[g] + bias[g]) with acc[r, n] =
 * sum_k X[r, k] * W[g, n, k]. Each group's rows get exactly the numerics of
 * llmk_gemm_fp8 (or llmk_gemm_bf16) called on those rows with W[g], its
 * scales and its bias (FBGEMM's f8f8bf16_rowwise_grouped_stacked /
 * _grouped_dynamic / f8f8bf16_groupwise_grouped / bf16bf16bf16_grouped_stacked).
 *
 * Operands: x and w both e4m3 (FP8, scales required) or both bf16 (BF16,
 * x_scale and w_scale NULL). x, w and y have last-dim stride 1, and
 * their leading dims collapse into one row stride (>= the row length; for
 * CUDA, rows 16-byte aligned), as for llmk_gemm_fp8's x.
 * w        [G, N, K]: group g's weight is w[g] (FBGEMM's stacked weights).
 * sizes    int32 [G], contiguous, in the handle's memory (device memory for
 *          CUDA): read by the kernels at run time, never by the host, so a
 *          captured graph replays with whatever sizes the device holds.
 * bias     NULL, or [G, N] f32 or bf16, contiguous.
 *
 * LLMK_GROUP_STACKED: x [T, K], y [T, N] (row stride >= N). With s_g =
 *   max(sizes[g], 0) and o_g = s_0 + ... + s_{g-1}, group g owns rows
 *   [o_g, o_g + s_g) clipped to [0, T): groups may be empty, and sizes that
 *   add up to more than T leave the groups past T with fewer rows or none
 *   (nothing at or past row T is read or written). Rows from min(o_G, T)
 *   to T belong to no group and are not written.
 * LLMK_GROUP_MASKED: x [G, M_max, K], y [G, M_max, N]. Group g owns rows
 *   [0, min(max(sizes[g], 0), M_max)) of x[g] and y[g].
 * Rows no group owns are never written, and their contents (NaN included)
 * never affect an owned row.
 *
 * Scales (FP8), r a row of x as laid out above (stacked: [T]; masked:
 * [G, M_max] flattened, g * M_max + m):
 *   TENSOR  x_scale [G], w_scale [G]: one scale each per group.
 *   ROW     x_scale [T] or [G, M_max]; w_scale [G, N].
 *   BLOCK   x_scale [T, KB] or [G, M_max, KB] (1 x 128 groups along K,
 *           KB = ceil(K/128)); w_scale [G, ceil(N/128), KB] (128 x 128
 *           blocks of each w[g]); all row-major and contiguous. accum must
 *           be DEFAULT or FP32.
 * Scales are f32 and contiguous, in the handle's memory.
 *
 * Sizes: G, N, K, T or M_max = 0 are allowed (nothing is written when no
 * group owns a row or N = 0; K = 0 writes bf16((0 * x_scale) * w_scale +
 * bias) to the owned rows). CUDA: N a multiple of 8, K of 16 bytes, rows
 * 16-byte aligned, as for llmk_gemm_fp8, and G <= 512.
 * In place: y must not overlap x, w, the scales, the bias or sizes.
 * Graphs: safe to capture; nothing is synchronized with the host.
 *
 * Errors: INVALID_ARGUMENT (null handle/desc/tensors, wrong dtype, shape,
 *         stride or alignment, bad enum, FAST accumulation with block
 *         scaling, scales given for BF16 or missing for FP8, pointer not on
 *         the handle's device, overlapping output), NOT_SUPPORTED (GPU not
 *         Hopper, backend CUBLASLT, G > 512 on CUDA), CUDA. Nothing is
 *         written on an error found before the launch.
 */
LLMK_API llmk_status llmk_gemm_grouped(llmk_handle h, const llmk_grouped_gemm_desc *desc, const llmk_tensor *x,
                                       const llmk_tensor *w, const llmk_tensor *x_scale,
                                       const llmk_tensor *w_scale, const llmk_tensor *bias,
                                       const llmk_tensor *sizes, const llmk_tensor *y, void *stream);

/* ---- The GEMM dispatcher: configurations, routes, overrides ---------------- */

/*
 * llmk's own GEMM kernels come in configurations (src/cuda/gemm_configs.def;
 * docs/DESIGN.md, "The GEMM dispatcher"), each with a stable name that
 * spells its fields, e.g. "swap_128x16_s11": swapped decode tile of 128
 * weight rows x 16 tokens, 11 stages. A configuration's index (0 ..
 * llmk_gemm_config_count() - 1) holds for the library loaded; names hold
 * across versions. In a build without CUDA there are none.
 */
typedef struct llmk_gemm_config {
  size_t size;          /* LLMK_GEMM_CONFIG_INIT */
  const char *name;     /* static string, unique: "persist_tmastore_128x256_s3" */
  llmk_dtype in_dtype;  /* LLMK_E4M3 (llmk_gemm_fp8) or LLMK_BF16 (llmk_gemm_bf16) */
  int32_t tile_m;       /* tile rows: output rows; swapped: weight rows (output columns) */
  int32_t tile_n;       /* tile columns: output columns; swapped: tokens (output rows) */
  int32_t stages;       /* 128-byte-deep K slices in the shared-memory ring (0: gemv) */
  int32_t fp32_promote; /* 1: partial sums promoted to fp32 every 128 of K: serves FP8 calls
                           with FP32 accumulation or block scaling; 0: fast accumulation
                           (FP8) or BF16 */
  int32_t tma_store;    /* 1: epilogue through shared memory and TMA stores */
  int32_t k_split;      /* 1: K split over a cluster of CTAs per tile (the split count is
                           chosen per call, 1 .. max_splits); 0: persistent CTAs */
  int32_t swap;         /* 1: swapped decode tile (always K-split) */
  int32_t multicast;    /* 1: 2-CTA clusters sharing weight slices by TMA multicast */
  int32_t ping_pong;    /* 1: two consumer warpgroups taking whole tiles in turn */
  int32_t gemv;         /* 1: BF16 mma.sync kernel for a few tokens */
  int32_t max_splits;   /* largest K split: LLMK_GEMM_MAX_SPLITS (8 for the gemv) for k_split
                           ones, else 1 */
  int32_t m_min, m_max; /* the token counts M it is meant for: a swapped configuration
                           covers M <= tile_n (<= 128) with less than half its width idle
                           (m_min = tile_n / 2 + 1, or 1 for 16 tokens), the gemv
                           M <= tile_n; others 1 .. INT32_MAX. The dispatcher's rule and
                           `llmk tune gemm` try swapped configurations only there; any
                           configuration computes any M. */
} llmk_gemm_config;
#define LLMK_GEMM_CONFIG_SIZE LLMK_SIZE_THROUGH(llmk_gemm_config, m_max)
#define LLMK_GEMM_CONFIG_INIT {LLMK_GEMM_CONFIG_SIZE, NULL, LLMK_F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

/* The number of own configurations: 0 in a build without CUDA. */
LLMK_API int llmk_gemm_config_count(void);

/* Fills the fields of *out that out->size covers with configuration
 * `index` (llmk_gemm_config c = LLMK_GEMM_CONFIG_INIT).
 * Errors: INVALID_ARGUMENT (out NULL or badly sized, index outside 0 ..
 * count - 1), NOT_SUPPORTED (a build without CUDA). Nothing is written on
 * error. */
LLMK_API llmk_status llmk_gemm_config_get(int index, llmk_gemm_config *out);

/* The index of the configuration named `name` (exact, case-sensitive) in
 * *index. Errors: INVALID_ARGUMENT (name or index NULL, no configuration of
 * that name; *index is then left alone), NOT_SUPPORTED (a build without
 * CUDA). */
LLMK_API llmk_status llmk_gemm_config_find(const char *name, int *index);

/* What decided a route (llmk_gemm_route.source). */
typedef enum llmk_gemm_source {
  LLMK_GEMM_SOURCE_RULE = 0,     /* shapes off the table: the nearest measured shapes where they choose, else the
                                    cost model (src/cuda/gemm_neighbours.h, gemm_model.h) */
  LLMK_GEMM_SOURCE_TABLE = 1,    /* the measured table's entry for the shape's kind, N and K */
  LLMK_GEMM_SOURCE_DESC = 2,     /* desc->backend (llmk_gemm_bf16's backend argument) */
  LLMK_GEMM_SOURCE_OVERRIDE = 3, /* the handle's llmk_set_gemm_override */
  LLMK_GEMM_SOURCE_ENV = 4,      /* LLMK_GEMM_BACKEND, _OWN_CFG, _SPLITS or _LT_ALGO */
  LLMK_GEMM_SOURCE_TUNED = 5     /* online tuning's winner for the shape (llmk_set_gemm_tuning) */
} llmk_gemm_source;

/* Longest cuBLASLt heuristic list a route or an override indexes into. */
#define LLMK_GEMM_LT_ALGOS 8
/* Largest K split of a split configuration: a cluster of 16 CTAs (8 is
 * portable; 16 needs the non-portable opt-in, which a GPU may refuse). */
#define LLMK_GEMM_MAX_SPLITS 16

typedef struct llmk_gemm_route {
  size_t size;               /* LLMK_GEMM_ROUTE_INIT */
  llmk_gemm_backend backend; /* LLMK_GEMM_OWN or LLMK_GEMM_CUBLASLT, never AUTO */
  int32_t config;            /* own configuration (llmk_gemm_config_get's index) that runs; with
                                cuBLASLt, the one AUTO falls back to if cuBLASLt refuses */
  const char *config_name;   /* its name (static string) */
  int32_t splits;            /* its K split (1 for an unsplit configuration) */
  int32_t lt_algo;           /* cuBLASLt: entry 0 .. LLMK_GEMM_LT_ALGOS - 1 of its heuristic list */
  llmk_gemm_source source;   /* the first, in precedence order, of DESC, OVERRIDE, ENV that set
                                the backend or a field of the route the backend uses (config
                                and splits for OWN, lt_algo for CUBLASLT); else TABLE if the
                                table covers the shape (tuned), else RULE */
  int32_t tuned;             /* 1 if the table has an entry for the call's kind, N and K */
  int32_t lt_fallback;       /* 1: cuBLASLt chosen under AUTO, and a refusal at launch runs
                                `config` instead; 0: own, or cuBLASLt forced (a refusal is
                                NOT_SUPPORTED) */
} llmk_gemm_route;
#define LLMK_GEMM_ROUTE_SIZE LLMK_SIZE_THROUGH(llmk_gemm_route, lt_fallback)
#define LLMK_GEMM_ROUTE_INIT {LLMK_GEMM_ROUTE_SIZE, LLMK_GEMM_AUTO, -1, NULL, 0, 0, LLMK_GEMM_SOURCE_RULE, 0, 0}

/*
 * llmk_gemm_choice: what llmk_gemm_fp8 (in_dtype LLMK_E4M3) or
 * llmk_gemm_bf16 (LLMK_BF16) would run on handle h for an M x N x K
 * product, computed by the code the GEMM itself runs: the same
 * precedence (desc->backend, the handle's override, the environment, the
 * measured table, online tuning's winner, the cost model), on h's device
 * (its SMs, resident clusters and DRAM bandwidth). It never tunes.
 *
 * desc     as llmk_gemm_fp8's (scaling, accum, backend, x_planes: with 2,
 *          M counts output rows and the route is that of the two-plane
 *          call, own kernels on the 2M plane rows unless cuBLASLt is
 *          forced); for LLMK_BF16 only desc->backend is read (the backend
 *          argument of llmk_gemm_bf16).
 * M, N, K  >= 0; no shape or alignment rule is checked. With M, N or K = 0
 *          the GEMM runs no product kernel (it writes nothing, or fills y
 *          with the bias), whatever the route says.
 * out      filled in the fields out->size covers (LLMK_GEMM_ROUTE_INIT).
 *
 * The call that runs may still differ from the route where it depends on
 * more than the shape: under AUTO (lt_fallback = 1) a call that cuBLASLt
 * refuses at launch (no algorithm, an f32 bias on FP8, 128 x 128
 * activation blocks, a workspace too small for the block-scale repack)
 * runs the own `config`; a BF16 call with an f32 bias runs the own kernels
 * under AUTO. The route of a two-plane call is exact.
 * Errors: INVALID_ARGUMENT (NULL handle, desc or out, a badly sized desc
 * or out, a bad enum in desc, FAST accumulation with block scaling,
 * in_dtype other than e4m3 or bf16, negative sizes), NOT_SUPPORTED (a CPU
 * handle, which has no dispatcher, or a GPU other than Hopper). Nothing is
 * written on error.
 */
LLMK_API llmk_status llmk_gemm_choice(llmk_handle h, const llmk_gemm_desc *desc, llmk_dtype in_dtype, int64_t M,
                                      int64_t N, int64_t K, llmk_gemm_route *out);

/* A handle's GEMM override (llmk_set_gemm_override): each field left at
 * its default overrides nothing. */
typedef struct llmk_gemm_override {
  size_t size;               /* LLMK_GEMM_OVERRIDE_INIT */
  llmk_gemm_backend backend; /* OWN or CUBLASLT for calls whose desc->backend (llmk_gemm_bf16:
                                backend argument) is AUTO; AUTO: none */
  int32_t config;            /* own configuration index (llmk_gemm_config_find); -1: none */
  int32_t splits;            /* K split of a split configuration, 1 .. LLMK_GEMM_MAX_SPLITS (above
                                the configuration's max_splits a call is NOT_SUPPORTED); 0: none */
  int32_t lt_algo;           /* cuBLASLt heuristic entry, 0 .. LLMK_GEMM_LT_ALGOS - 1; -1: none */
} llmk_gemm_override;
#define LLMK_GEMM_OVERRIDE_SIZE LLMK_SIZE_THROUGH(llmk_gemm_override, lt_algo)
#define LLMK_GEMM_OVERRIDE_INIT {LLMK_GEMM_OVERRIDE_SIZE, LLMK_GEMM_AUTO, -1, 0, -1}

/*
 * llmk_set_gemm_override: steers the GEMMs of handle h (llmk_gemm_fp8 and
 * llmk_gemm_bf16 alike) from now on, for benchmarks and tuning; NULL
 * clears it (every handle starts without one). Precedence: a backend
 * requested by the call (desc->backend, llmk_gemm_bf16's backend) wins
 * over the override, which wins over the environment (LLMK_GEMM_BACKEND,
 * LLMK_GEMM_OWN_CFG, LLMK_GEMM_SPLITS, LLMK_GEMM_LT_ALGO), then the
 * measured table, then tuning's winner, then the cost model; field by field (an override of the
 * configuration leaves LLMK_GEMM_SPLITS in force unless it sets splits).
 * config applies only to calls it can serve, as LLMK_GEMM_OWN_CFG: the
 * configuration's in_dtype must be the call's and, for FP8, fp32_promote
 * must match the accumulation (1 for FP32 accumulation and block scaling,
 * 0 for fast); other calls ignore it. splits applies to split
 * configurations only (and must not exceed the configuration's
 * max_splits, or the call is NOT_SUPPORTED). A forced backend that cannot
 * take a call answers NOT_SUPPORTED. Numerics are the same on every path.
 * The override is part of the handle's state: do not change it while
 * another thread is calling a GEMM on h. A CPU handle accepts it
 * and ignores it (as it ignores desc->backend).
 * Errors: INVALID_ARGUMENT (NULL handle, a badly sized override, a
 * backend, config, splits or lt_algo outside the values above; the
 * handle's override is then unchanged), NOT_SUPPORTED (a newer caller's
 * unknown fields set; a config index in a build without CUDA).
 */
LLMK_API llmk_status llmk_set_gemm_override(llmk_handle h, const llmk_gemm_override *o);

/* Online tuning of the GEMM dispatcher (llmk_set_gemm_tuning). */
typedef enum llmk_gemm_tuning {
  LLMK_GEMM_TUNE_ENV = -1, /* as LLMK_GEMM_TUNE says (1: on; unset or anything else: off); every handle's start */
  LLMK_GEMM_TUNE_OFF = 0,
  LLMK_GEMM_TUNE_ON = 1
} llmk_gemm_tuning;

/*
 * llmk_set_gemm_tuning: online tuning on CUDA handle h. When on, the first
 * call of llmk_gemm_fp8 or llmk_gemm_bf16 on a shape that the measured
 * table does not hold, whose route nothing forces (backend AUTO, no
 * override or environment choosing the backend or configuration), and
 * whose stream is not capturing a graph, first times a short list of
 * candidates on its own operands and stream: the cost model's three best
 * own configurations, the measured neighbours' pick where it differs, and
 * cuBLASLt (three runs each, L2 flushed before
 * each, median). The fastest is kept for the process and the device (every
 * handle on it sees it: llmk_gemm_choice then reports
 * LLMK_GEMM_SOURCE_TUNED), and the call's output is the winner's. Such a
 * call waits for its stream and allocates (and frees) a buffer twice the
 * L2's size: tune before capturing graphs and before timing. A call made
 * while its stream captures never tunes: it runs the model's choice, and
 * the shape is tuned at its first eager call. Numerics are the same on
 * every candidate (llmk_gemm_fp8's contract); which candidate wins is
 * timing and may differ between runs.
 * With LLMK_GEMM_TUNE_FILE=<path>, winners are read from the file at the
 * first tuning of the process and appended as they are found; a file
 * written on another GPU model, driver version or llmk version is ignored
 * and started afresh.
 * Errors: INVALID_ARGUMENT (NULL handle, mode not one of the above),
 * NOT_SUPPORTED (a CPU handle: it has nothing to tune).
 */
LLMK_API llmk_status llmk_set_gemm_tuning(llmk_handle h, llmk_gemm_tuning mode);

/* ------------------------------------------------------------------------ */
/* KV cache, RoPE and decode attention (docs/ATTENTION.md has the layouts)   */
/* ------------------------------------------------------------------------ */

typedef enum llmk_kv_format {
  LLMK_KV_BF16 = 0,       /* bf16 values */
  LLMK_KV_FP8 = 1,        /* e4m3 codes, one f32 dequantization scale per (token, KV head) */
  LLMK_KV_FP8_TENSOR = 2, /* e4m3 codes, one f32 scale for all of K and one for all of V */
  LLMK_KV_INT4 = 3        /* 4-bit codes, an f16 (scale, shift) pair per group of D */
} llmk_kv_format;

/*
 * A KV cache: where K and V of every (sequence, position, KV head) live.
 * The caller owns every buffer; llmk reads and writes them in place.
 *
 * k, v      the storage, both with the same shape, contiguous (row-major):
 *           contiguous cache  [B_cache, T_max, Hkv, E]  (sequence b, position t)
 *           paged cache       [num_pages, page_size, Hkv, E]
 *           E = D for BF16 (dtype bf16) and FP8 (e4m3); E = D / 2 for INT4
 *           (dtype u8: byte j of a row holds element 2j in its low nibble
 *           and element 2j + 1 in its high nibble). D is 64, 128 or 256.
 * k_param, v_param  the dequantization parameters, contiguous:
 *           FP8         f32 [B_cache or num_pages, T_max or page_size, Hkv]
 *           FP8_TENSOR  f32 [1]
 *           INT4        f16 [B_cache or num_pages, T_max or page_size, Hkv, 2 D / G]:
 *                       (scale, shift) of group g at [..., 2 g] and [..., 2 g + 1]
 *           BF16        unused (data may be NULL)
 * int4_group  G for INT4: 32 or 128 (and at most D); ignored otherwise.
 * block_table  paged caches: i32 [B, max_pages] (row stride >= max_pages):
 *           position t of sequence b lives in page block_table[b][t / page_size],
 *           row t % page_size. data = NULL for a contiguous cache, whose
 *           sequence b is storage row b (calls take B <= B_cache sequences).
 *           page_size must be a power of two (16, 32, 64, ...).
 *
 * Value of element d of a token-head (the reference every op is tested on):
 *   BF16        bf16 value
 *   FP8         e4m3(code) * scale                      (fp32)
 *   FP8_TENSOR  e4m3(code) * param[0]                   (fp32)
 *   INT4        fmaf((float)code, scale_g, shift_g)     (fp32; g = d / G)
 * All pointers are memory of the handle's backend, 16-byte aligned.
 */
typedef struct llmk_kv_cache {
  size_t size; /* LLMK_KV_CACHE_INIT */
  llmk_kv_format format;
  int32_t int4_group;
  llmk_tensor k, v;
  llmk_tensor k_param, v_param;
  llmk_tensor block_table;
} llmk_kv_cache;
#define LLMK_KV_CACHE_SIZE LLMK_SIZE_THROUGH(llmk_kv_cache, block_table)
#define LLMK_KV_CACHE_INIT                                                                         \
  {LLMK_KV_CACHE_SIZE, LLMK_KV_BF16, 0, LLMK_TENSOR_NONE, LLMK_TENSOR_NONE, LLMK_TENSOR_NONE, \
   LLMK_TENSOR_NONE, LLMK_TENSOR_NONE}

/*
 * Where new tokens go: T new tokens (rows) of B sequences.
 * offsets    data NULL, or i32 [B + 1], non-decreasing, offsets[0] = 0 and
 *            offsets[B] = T: the new tokens of sequence b are rows
 *            offsets[b] .. offsets[b + 1] - 1 (prefill of variable-length
 *            sequences). data NULL: row t is the one new token of sequence t
 *            (decode; T = B).
 * start_pos  i32 [B]: the position of sequence b's first new token (its
 *            cache length before the call); row r of sequence b has
 *            position start_pos[b] + r - offsets[b].
 * Both live in the handle's backend memory and are read at run time, so a
 * captured graph may be replayed with new values.
 */
typedef struct llmk_kv_loc {
  size_t size; /* LLMK_KV_LOC_INIT */
  llmk_tensor offsets;
  llmk_tensor start_pos;
} llmk_kv_loc;
#define LLMK_KV_LOC_SIZE LLMK_SIZE_THROUGH(llmk_kv_loc, start_pos)
#define LLMK_KV_LOC_INIT {LLMK_KV_LOC_SIZE, LLMK_TENSOR_NONE, LLMK_TENSOR_NONE}

typedef enum llmk_rope_style {
  LLMK_ROPE_INTERLEAVED = 0, /* pairs (2i, 2i + 1): Meta's Llama code, FBGEMM */
  LLMK_ROPE_NEOX = 1         /* pairs (i, i + R/2): Hugging Face, vLLM's neox style */
} llmk_rope_style;

/*
 * Rotary embedding of one head of D elements, of which the first R
 * (rotary_dim; 0 means D) rotate, the rest pass through unchanged
 * (docs/DESIGN.md, "RoPE").
 * Pair i (i < R/2) turns by the angle pos * f_i with, in fp64,
 *   f_i = theta^(-2i / R)
 * and, when llama3_factor > 0 (Llama 3.1's frequency scaling, as Hugging
 * Face's "llama3" rope_type), with L = original_max_position,
 * wl = 2 pi / f_i, lo = L / low_freq_factor, hi = L / high_freq_factor:
 *   wl < hi: f_i unchanged;  wl > lo: f_i / factor;  otherwise
 *   s = (L / wl - low_freq_factor) / (high_freq_factor - low_freq_factor),
 *   f_i = (1 - s) f_i / factor + s f_i.
 * The angle pos * f_i and its cosine and sine are computed in fp64 and
 * rounded to fp32 (accurate to < 1e-7 at every position up to 2^31), then
 *   y_a = x_a c - x_b s,  y_b = x_a s + x_b c   (fp32, each product rounded)
 * for the pair (a, b).
 */
typedef struct llmk_rope_desc {
  size_t size;        /* LLMK_ROPE_DESC_INIT */
  llmk_rope_style style;
  int64_t rotary_dim; /* R: even, <= D; 0 = D */
  double theta;       /* > 0, e.g. 500000 for Llama 3 */
  double llama3_factor;        /* <= 0: no scaling; Llama 3.1: 8 */
  double low_freq_factor;      /* Llama 3.1: 1 */
  double high_freq_factor;     /* Llama 3.1: 4 (> low_freq_factor) */
  double original_max_position; /* Llama 3.1: 8192 */
} llmk_rope_desc;
#define LLMK_ROPE_DESC_SIZE LLMK_SIZE_THROUGH(llmk_rope_desc, original_max_position)
/* theta must still be set (0 is refused) */
#define LLMK_ROPE_DESC_INIT {LLMK_ROPE_DESC_SIZE, LLMK_ROPE_INTERLEAVED, 0, 0.0, 0.0, 0.0, 0.0, 0.0}

/*
 * llmk_rope: y = rope(x) per head at each token's position.
 * x          [T, H, D] f32 or bf16, D = 64, 128 or 256; strides {>= H D, D, 1}
 *            (a row pitch is allowed).
 * positions  i32 [T], contiguous: the position of token t (any int32).
 * y          same shape and dtype as x, strides {>= H D, D, 1}; y = x
 *            (same pointer and strides) rotates in place; other overlaps are
 *            refused. bf16 outputs round once (nearest even).
 * Errors: INVALID_ARGUMENT (shape, dtype, stride, bad desc), NOT_SUPPORTED, CUDA.
 */
LLMK_API llmk_status llmk_rope(llmk_handle h, const llmk_rope_desc *desc, const llmk_tensor *x,
                      const llmk_tensor *positions, const llmk_tensor *y, void *stream);

/*
 * llmk_kv_cache_write: quantize the new tokens' K and V rows into the cache.
 * k, v   bf16 [T, Hkv, D], strides {>= Hkv D, D, 1}.
 * loc    where each row goes (llmk_kv_loc).
 * Quantization of one token-head's D values x (fp32), bit for bit on both
 * backends (docs/ATTENTION.md):
 *   BF16        bf16(x)
 *   FP8         amax = max |x| (finite values), scale = fmaxf(amax / 448,
 *               1 / (448 * 512)), code = e4m3_satfinite_rne(x * (1 / scale))
 *   FP8_TENSOR  code = e4m3_satfinite_rne(x * (1 / param[0]))
 *   INT4        per group: lo = min x, hi = max x (finite values; 0 if none),
 *               scale = f16((hi - lo) / 15), shift = f16(lo) (nearest even,
 *               saturated to +-65504), code = clamp(rintf((x - shift) *
 *               (1 / scale)), 0, 15), or 0 where scale is 0; non-finite x
 *               give +Inf -> 15, -Inf and NaN -> 0 (fminf(fmaxf(.., 0), 15)).
 * K and V of a token-head are quantized independently (own amax / range).
 * In place: the cache storage and the parameters it writes (FP8, INT4) must
 * not overlap each other, k, v, loc's tensors, the block table or an
 * FP8_TENSOR scale. Two rows that land on the same cache slot (repeated
 * positions, pages shared between sequences): which one is kept is unspecified.
 * Positions outside the cache (t >= T_max; for a paged cache, t / page_size
 * >= max_pages or a page number outside [0, num_pages)) and negative ones
 * are not written: the CPU backend refuses such a call with
 * INVALID_ARGUMENT before writing anything, the CUDA backend (which cannot
 * read the positions on the host) skips those rows (in llmk_rope_qkv_write
 * also their q_out rows), as it skips rows that no sequence of offsets
 * covers. NaNs are written as NaNs; their payload bits are unspecified.
 * Errors: INVALID_ARGUMENT (shape, dtype, stride, alignment; CPU: a
 *         position or page outside the cache, bad offsets), NOT_SUPPORTED, CUDA.
 */
LLMK_API llmk_status llmk_kv_cache_write(llmk_handle h, const llmk_kv_cache *cache, const llmk_tensor *k,
                                const llmk_tensor *v, const llmk_kv_loc *loc, void *stream);

/*
 * llmk_kv_cache_dequantize: every stored K and V element as a value
 * (llmk_kv_cache's table), in the storage's order.
 * k_out, v_out  f32 or bf16 (rounded once), contiguous, shape [S0, S1, Hkv, D]
 *               where the cache's storage is [S0, S1, Hkv, E].
 * The block table is not used: the whole storage is converted.
 * Errors: INVALID_ARGUMENT, NOT_SUPPORTED, CUDA.
 */
LLMK_API llmk_status llmk_kv_cache_dequantize(llmk_handle h, const llmk_kv_cache *cache,
                                     const llmk_tensor *k_out, const llmk_tensor *v_out,
                                     void *stream);

/*
 * llmk_rope_qkv_write: one pass over packed QKV of new tokens: rotate Q and
 * K (rope; NULL: no rotation), write K and V into the cache at their
 * positions (as llmk_kv_cache_write, from the fp32 rotated values), and
 * write the rotated Q.
 * qkv    bf16 [T, (Hq + 2 Hkv) D]: per row Q (Hq heads), then K, then V
 *        (Hkv heads each); row stride >= (Hq + 2 Hkv) D, last stride 1.
 * num_q_heads  Hq, a positive multiple of the cache's Hkv.
 * q_out  bf16 [T, Hq, D], strides {>= Hq D, D, 1}; must not overlap qkv.
 * Positions are those of loc (decode: loc->offsets.data NULL); Q and K of
 * a row turn by the same angles. In place: as llmk_kv_cache_write, and
 * q_out must not overlap the cache either.
 * Errors: as llmk_kv_cache_write and llmk_rope.
 */
LLMK_API llmk_status llmk_rope_qkv_write(llmk_handle h, const llmk_rope_desc *rope, const llmk_tensor *qkv,
                                int64_t num_q_heads, const llmk_kv_cache *cache,
                                const llmk_kv_loc *loc, const llmk_tensor *q_out, void *stream);

typedef struct llmk_attention_desc {
  size_t size;         /* LLMK_ATTENTION_DESC_INIT */
  float softmax_scale; /* finite, e.g. 1 / sqrt(D) */
  int64_t max_seq_len; /* an upper bound of seq_lens known on the host: it
                          sizes the split over the KV length (graph-safe);
                          0 .. the cache's capacity per sequence */
  int32_t num_splits;  /* 0: llmk chooses; else the number of KV splits per
                          (sequence, KV head), capped as the workspace allows */
} llmk_attention_desc;
#define LLMK_ATTENTION_DESC_SIZE LLMK_SIZE_THROUGH(llmk_attention_desc, num_splits)
/* softmax_scale and max_seq_len must still be set */
#define LLMK_ATTENTION_DESC_INIT {LLMK_ATTENTION_DESC_SIZE, 0.0f, 0, 0}

/*
 * llmk_attention_decode: one query token per sequence attends over its
 * cached keys and values (grouped-query attention).
 * q         bf16 [B, Hq, D], strides {>= Hq D, D, 1}; Hq a multiple of the
 *           cache's Hkv, with Hq / Hkv (the group size) 1 .. 16.
 * cache     the KV cache (any format; paged: block_table has B rows).
 * seq_lens  i32 [B], contiguous: sequence b attends over positions 0 ..
 *           L_b - 1, L_b = min(max(seq_lens[b], 0), desc->max_seq_len).
 * out       bf16 [B, Hq, D], strides {>= Hq D, D, 1}, not overlapping the inputs.
 * lse       NULL, or f32 [B, Hq] contiguous: log(sum_t exp(s_t)) (natural log).
 * For query head j of sequence b, KV head j / (Hq / Hkv):
 *   s_t = softmax_scale * (q . k_t),  out = sum_t exp(s_t - m) v_t / sum_t exp(s_t - m)
 * in fp32 (m = max s_t), rounded once to bf16; lse is rounded to f32. The
 * CPU reference computes in fp64 from the fp32 values of q, k_t and v_t.
 * On the GPU (mma.sync, fp32 accumulation): BF16 caches enter exactly,
 * with each probability as the sum of two bf16 terms; FP8 codes enter
 * exactly as f16, Q as f16 after an exact power-of-two scaling, K's scales
 * multiply the scores in fp32 and V's scale the probabilities before they
 * round to f16 (relative 2^-11); INT4 values enter as f16(code * scale +
 * shift), rounded once. L_b = 0 gives out = 0 and lse = -inf. Page
 * numbers outside [0, num_pages): the CPU backend refuses the call; the
 * CUDA backend treats those positions as absent (never reads outside the
 * cache).
 * Workspace: the handle's (split partial results, B Hq splits (D + 2) f32).
 * Errors: INVALID_ARGUMENT (shape, dtype, stride, alignment, bad desc; CPU:
 *         a page outside the cache), NOT_SUPPORTED (GPU not Hopper; CUDA:
 *         a paged cache with page_size < 16), CUDA.
 */
LLMK_API llmk_status llmk_attention_decode(llmk_handle h, const llmk_attention_desc *desc, const llmk_tensor *q,
                                  const llmk_kv_cache *cache, const llmk_tensor *seq_lens,
                                  const llmk_tensor *out, const llmk_tensor *lse, void *stream);

/* ------------------------------------------------------------------------ */
/* Normalization and activation                                              */
/* ------------------------------------------------------------------------ */

typedef struct llmk_rmsnorm_desc {
  size_t size;    /* LLMK_RMSNORM_DESC_INIT */
  float eps;      /* > 0 and finite, e.g. 1e-5 */
  int fp8_planes; /* e4m3 y only: 0 or 1, one plane; 2, a hi and a lo plane (see llmk_rmsnorm).
                     A descriptor that ends before it has one plane. */
} llmk_rmsnorm_desc;
#define LLMK_RMSNORM_DESC_SIZE LLMK_SIZE_THROUGH(llmk_rmsnorm_desc, fp8_planes)
/* eps must still be set (0 is refused) */
#define LLMK_RMSNORM_DESC_INIT {LLMK_RMSNORM_DESC_SIZE, 0.0f, 0}

/*
 * llmk_rmsnorm: y = RMSNorm(x [+ residual]) * weight (Llama's RMSNorm), with
 * an optional fused residual add and an optional FP8 output quantized per
 * row for the next FP8 GEMM.
 *
 * x             [..., K] bf16. The last dim has stride 1; leading dims are
 *               flattened into M rows and must be collapsible into one row
 *               stride >= K (as llmk_quantize_fp8's x).
 * residual      NULL, or bf16 with x's shape (same rules, its own row stride).
 * weight        [K] bf16, contiguous.
 * y             x's shape, last stride 1, its own row stride >= K;
 *               bf16 (y_scale must then be NULL) or e4m3 (y_scale required).
 * y_scale       e4m3 y only: f32 [M], contiguous: the dequantization scale
 *               of each row of y.
 * residual_out  required when residual is given, else NULL: bf16 with x's
 *               shape; receives s (below), the residual stream for the next
 *               layer. It may be exactly the residual tensor (same pointer
 *               and row stride: updated in place) or a separate buffer.
 *
 * Numerics (docs/DESIGN.md, "RMSNorm", normative; CPU and CUDA agree bit
 * for bit, NaN bits included), per row of K elements:
 *   s_k = x_k, or bf16(x_k + residual_k)   (fp32 add, one rounding)
 *   r   = (float)(1.0 / sqrt(sum_k s_k^2 / K + eps))   (the sum in fp64)
 *   n_k = bf16((s_k * r) * w_k)            (two fp32 multiplies, one rounding)
 * bf16 y: y = n. e4m3 y: y and y_scale are exactly what llmk_quantize_fp8
 * with LLMK_SCALING_ROW and no scale_ub writes for the bf16 tensor n.
 * Two planes (desc->fp8_planes = 2, e4m3 y; for llmk_gemm_fp8's x_planes
 * = 2): y is [..., 2, K] (collapsible into 2M rows of one stride >= K) and
 * y_scale f32 [2M] (or [..., 2]), contiguous; row 2m is that quantization
 * of n (hi), row 2m + 1 the same quantization of its fp32 rounding residual
 * n_k - y_k * scale (lo).
 *
 * Sizes: M = 0 writes nothing. K = 0 writes only y_scale (1 / (448 * 512)
 * per row) for an e4m3 y. Any K; rows of thousands of elements are read
 * once (the CUDA kernels keep a row in registers up to K = 32768 and read
 * longer rows again from L2).
 * Alignment: elements aligned to their size. The CUDA kernels use 16-byte
 * accesses where the base pointers and row pitches allow it (bf16: 16-byte
 * aligned bases, row strides a multiple of 8; e4m3 y: 8-byte aligned base,
 * row stride a multiple of 8), and a slower element-wise path otherwise,
 * with identical results.
 * In place: only residual_out = residual (as above); no other two of x,
 * residual, weight, y, y_scale and residual_out may overlap where one of
 * them is written (the inputs x, residual and weight may share memory).
 *
 * Errors: INVALID_ARGUMENT (null handle/desc/tensors, eps not positive and
 *         finite, wrong dtype, shape or stride, misaligned element, residual
 *         without residual_out or the reverse, y_scale given for a bf16 y or
 *         missing for an e4m3 y, fp8_planes not 0, 1 or 2 or 2 with a bf16
 *         y, overlapping outputs, pointer not on the
 *         handle's device), NOT_SUPPORTED (GPU not Hopper), CUDA (launch failed).
 */
LLMK_API llmk_status llmk_rmsnorm(llmk_handle h, const llmk_rmsnorm_desc *desc, const llmk_tensor *x,
                         const llmk_tensor *residual, const llmk_tensor *weight,
                         const llmk_tensor *y, const llmk_tensor *y_scale,
                         const llmk_tensor *residual_out, void *stream);

/*
 * llmk_silu_mul_quant: xq = quantize(SiLU(gate) * up) (FBGEMM's
 * silu_mul_quant: the SwiGLU MLP's activation, quantized for the down
 * projection).
 *
 * gate, up  [..., F] bf16 with the same shape; each has last stride 1 and
 *           leading dims collapsible into one row stride >= F (so they can
 *           be the two halves of one [M, 2F] GEMM output: gate = columns
 *           0 .. F-1, up = columns F .. 2F-1, both with row stride 2F).
 * xq        [..., F] e4m3 (same shape), last stride 1, row stride >= F;
 *           or bf16 (then scale must be NULL and desc is ignored, may be
 *           NULL): the unquantized a_k below, the BF16 layer's activation.
 * desc      LLMK_SCALING_ROW: scale is f32 [M], contiguous; or
 *           LLMK_SCALING_BLOCK with block_m = 1, block_k = 128: scale is
 *           f32 [M, ceil(F/128)], contiguous (row-major). Other scalings
 *           and block sizes are INVALID_ARGUMENT. desc->scale_ub is
 *           honoured as in llmk_quantize_fp8; desc->num_rows must be NULL.
 *
 * Numerics (docs/DESIGN.md, "SiLU-multiply-quantize", normative), per
 * element: a_k = bf16(g_k / (1 + exp(-g_k)) * u_k) computed in fp64 and
 * rounded once; then xq and scale are exactly what llmk_quantize_fp8 with
 * this desc writes for the bf16 tensor a. CPU and GPU results are bitwise
 * identical except where their fp64 exps differ in the last ulp and the
 * product lies within that ulp of a bf16 rounding boundary (about 2^-40 of
 * random elements).
 *
 * Sizes: M = 0 writes nothing; F = 0 writes only the row scales (as for
 * an empty group, with scale_ub applied) for row scaling.
 * Alignment: elements aligned to their size; 16-byte (gate, up) and 8-byte
 * (xq) vector accesses where the base pointers and row pitches allow it,
 * an element-wise path otherwise (identical results).
 * In place: xq and scale must not overlap gate, up, each other or
 * *scale_ub (gate and up may share memory).
 *
 * Errors: INVALID_ARGUMENT (null handle/desc/tensors, wrong dtype, shape or
 *         stride, unsupported scaling or block size, num_rows given,
 *         misaligned element or scale_ub, overlapping outputs, pointer not
 *         on the handle's device), NOT_SUPPORTED (GPU not Hopper), CUDA.
 */
LLMK_API llmk_status llmk_silu_mul_quant(llmk_handle h, const llmk_quantize_desc *desc, const llmk_tensor *gate,
                                const llmk_tensor *up, const llmk_tensor *xq,
                                const llmk_tensor *scale, void *stream);


/* ------------------------------------------------------------------------ */
/* Mixture of experts: routing, permutation, gather and combine              */
/* ------------------------------------------------------------------------ */

/*
 * An MoE block around llmk_gemm_grouped: llmk_moe_route picks each token's
 * experts, llmk_moe_permute sorts the (token, slot) picks by expert,
 * llmk_moe_gather_quant gathers and quantizes the token rows in that
 * order, the grouped GEMMs and llmk_silu_mul_quant run the experts, and
 * llmk_moe_combine sums each token's expert outputs, weighted. Nothing is
 * synchronized with the host; every result is a function of the inputs
 * alone (no atomics, no dependence on thread timing), and the CPU and CUDA
 * backends agree bit for bit.
 *
 * A pick p = t k + s is token t's slot s (k picks per token).
 */

typedef enum llmk_moe_router {
  LLMK_MOE_SOFTMAX_TOPK = 0, /* w = softmax(l) over the E experts, top k of w (Mixtral, Qwen3) */
  LLMK_MOE_TOPK_SOFTMAX = 1, /* top k of l, w = softmax over those k logits (gpt-oss) */
  LLMK_MOE_SIGMOID_TOPK = 2, /* top k of l, w = sigmoid(l) (Llama 4, k = 1) */
  LLMK_MOE_DEEPSEEK = 3      /* sigmoid scores, biased group-limited top k (DeepSeek-V3) */
} llmk_moe_router;

typedef struct llmk_moe_route_desc {
  size_t size;            /* LLMK_MOE_ROUTE_DESC_INIT */
  llmk_moe_router router;
  int32_t k;              /* experts per token, 1 .. min(E, 32) */
  int32_t renormalize;    /* 1: the k weights are divided by their sum (SOFTMAX_TOPK, SIGMOID_TOPK, DEEPSEEK) */
  int32_t n_group;        /* DEEPSEEK: expert groups (E % n_group == 0); others ignore it */
  int32_t topk_group;     /* DEEPSEEK: groups kept, 1 .. n_group */
  float scaling;          /* every weight is multiplied by it last (DeepSeek's routed_scaling_factor); 1: none */
} llmk_moe_route_desc;
#define LLMK_MOE_ROUTE_DESC_SIZE LLMK_SIZE_THROUGH(llmk_moe_route_desc, scaling)
#define LLMK_MOE_ROUTE_DESC_INIT {LLMK_MOE_ROUTE_DESC_SIZE, LLMK_MOE_SOFTMAX_TOPK, 1, 0, 1, 1, 1.0f}

/*
 * llmk_moe_route: each token's k experts and their weights, from the
 * router's logits.
 *
 * logits  [T, E] f32 or bf16, last stride 1, row stride >= E; E <= 1024.
 * bias    DEEPSEEK: [E] f32, contiguous (the score correction, used to
 *         select only); NULL for the other routers.
 * ids     [T, k] int32, contiguous: the experts, best first.
 * weights [T, k] f32, contiguous: their weights, in the same order.
 *
 * Numerics (normative; docs/DESIGN.md, "MoE routing"), in fp32 with each
 * operation rounded to nearest even, the same on both backends:
 *   exp(x) is llmk's own: n = rint(x log2 e), r = x - n ln 2 in two fused
 *     steps, a degree-7 polynomial in r by fused Horner steps, times 2^n
 *     (within 2 ulp of the true exp; Inf above 88.72, 0 below -103.98).
 *   sigmoid(x) = 1 / (1 + exp(-x)).
 *   softmax over v_0 .. v_{n-1}: m = max v, z_e = exp(v_e - m), the sum S
 *     of 32 lanes' partial sums (lane j adds z_j, z_{j+32}, ... in turn),
 *     folded as lane j + lane j + 16, then + 8, + 4, + 2, + 1; w_e = z_e / S.
 *   top k: the k largest keys, a larger key first and equal keys by lower
 *     expert index; a NaN key ranks below every number.
 *   SOFTMAX_TOPK: key = w = softmax(l) over the E experts.
 *   TOPK_SOFTMAX: key = l; w = softmax over the k chosen logits.
 *   SIGMOID_TOPK: key = l; w = sigmoid(l).
 *   DEEPSEEK: w_e = sigmoid(l_e), c_e = w_e + bias_e. The experts form
 *     n_group groups of E / n_group consecutive ones; a group's score is
 *     the sum of its two largest c (its one c if it holds one expert). The
 *     topk_group best groups (ties to the lower group) are kept; the key is
 *     c over the kept groups' experts (the others are not chosen). The
 *     weight is w (without the bias).
 *   renormalize: w_s = w_s / (w_0 + w_1 + ... + w_{k-1}), the sum in slot
 *     order. Then w_s = w_s * scaling; a NaN weight is written as
 *     0x7FC00000.
 *
 * Sizes: T = 0 writes nothing. In place: the outputs must not overlap
 * each other or the inputs.
 * Errors: INVALID_ARGUMENT (null handle/desc/tensors, wrong dtype or
 *         shape, k outside 1 .. min(E, 32), E > 1024, bias given or
 *         missing against the router, n_group not dividing E, topk_group
 *         outside 1 .. n_group, fewer than k experts in topk_group groups,
 *         scaling not finite, bad enum, overlapping outputs, pointer not
 *         on the handle's device), NOT_SUPPORTED (GPU not Hopper), CUDA.
 *         Nothing is written on an error.
 */
LLMK_API llmk_status llmk_moe_route(llmk_handle h, const llmk_moe_route_desc *desc, const llmk_tensor *logits,
                                    const llmk_tensor *bias, const llmk_tensor *ids, const llmk_tensor *weights,
                                    void *stream);

typedef struct llmk_moe_permute_desc {
  size_t size;              /* LLMK_MOE_PERMUTE_DESC_INIT */
  llmk_group_layout layout; /* the grouped GEMM's layout the rows are placed in */
  int64_t expert_begin;     /* this GPU's experts are expert_begin .. expert_begin + G - 1 */
  int64_t m_max;            /* MASKED: rows per group; STACKED ignores it */
} llmk_moe_permute_desc;
#define LLMK_MOE_PERMUTE_DESC_SIZE LLMK_SIZE_THROUGH(llmk_moe_permute_desc, m_max)
#define LLMK_MOE_PERMUTE_DESC_INIT {LLMK_MOE_PERMUTE_DESC_SIZE, LLMK_GROUP_STACKED, 0, 0}

/*
 * llmk_moe_permute: the picks sorted by expert, as the rows of
 * llmk_gemm_grouped's x.
 *
 * ids     [T, k] int32, contiguous (llmk_moe_route's, or any).
 * sizes   [G] int32, contiguous: the rows each local expert receives (the
 *         grouped GEMM's sizes). G = sizes' length, 1 .. 1024.
 * offsets NULL, or [G + 1] int32, contiguous: group g's first row,
 *         sizes[0] + ... + sizes[g - 1] (STACKED) or g m_max (MASKED), for
 *         g = 0 .. G (offsets[G]: one past the last group's rows).
 * row_of  [T, k] int32, contiguous: pick p's row, or -1 if p is dropped.
 * src_of  [R] int32, contiguous: the pick in row r, or -1 for a row no
 *         pick fills. STACKED: R = T k; MASKED: R = G m_max.
 *
 * Pick p with g = ids[p] - expert_begin in [0, G) goes to local expert g;
 * every other pick (another GPU's expert, or any id out of range) is
 * dropped. Within an expert the picks keep their order (by p: token, then
 * slot); the j-th pick of expert g gets row offsets[g] + j (STACKED), or
 * g m_max + j while j < m_max (MASKED; later picks are dropped). sizes[g]
 * counts the rows given. Every entry of the outputs is written: src_of is
 * -1 on the rows past the total (STACKED) or past sizes[g] in group g
 * (MASKED), so a captured graph replays with new ids correctly.
 *
 * Sizes: T k <= 2^31 - 1 and R <= 2^31 - 1; T = 0 writes the zero sizes,
 * the offsets and an all -1 src_of. Workspace (CUDA): above 4096 picks,
 * 4 G ceil(T k / 4096) bytes of the handle's (llmk_set_workspace).
 * Errors: INVALID_ARGUMENT (null handle/desc/tensors, wrong dtype, shape or
 *         stride, bad layout, m_max < 1 for MASKED, G out of range,
 *         overlapping outputs, pointer not on the handle's device, a CUDA
 *         workspace too small), NOT_SUPPORTED (GPU not Hopper), CUDA.
 *         Nothing is written on an error.
 */
LLMK_API llmk_status llmk_moe_permute(llmk_handle h, const llmk_moe_permute_desc *desc, const llmk_tensor *ids,
                                      const llmk_tensor *sizes, const llmk_tensor *offsets,
                                      const llmk_tensor *row_of, const llmk_tensor *src_of, void *stream);

/*
 * llmk_moe_route_permute: llmk_moe_route, then llmk_moe_permute of the ids
 * it wrote, in one call: the outputs are those two calls' bit for bit. On
 * CUDA, a decode batch (T <= 64 and T k <= 1024, with a router and groups
 * the single-warp kernel takes: any but DEEPSEEK groups that neither
 * divide 32 nor are a multiple of it, or more than 64 groups) runs as one
 * launch of one CTA; otherwise as the two ops' launches.
 *
 * Arguments: llmk_moe_route's (route, logits, bias, ids, weights) and
 * llmk_moe_permute's (permute, sizes, offsets, row_of, src_of), with the
 * same rules; ids is written, then read. No output may overlap another or
 * an input. Errors: either op's; nothing is written on an error.
 */
LLMK_API llmk_status llmk_moe_route_permute(llmk_handle h, const llmk_moe_route_desc *route,
                                            const llmk_moe_permute_desc *permute, const llmk_tensor *logits,
                                            const llmk_tensor *bias, const llmk_tensor *ids,
                                            const llmk_tensor *weights, const llmk_tensor *sizes,
                                            const llmk_tensor *offsets, const llmk_tensor *row_of,
                                            const llmk_tensor *src_of, void *stream);

/*
 * llmk_moe_gather_quant: xq[r] = x[src_of[r] / k] for every row r that a
 * pick fills, quantized as llmk_quantize_fp8 quantizes that row.
 *
 * x       [T, H] bf16, last stride 1, row stride >= H.
 * src_of  [R] int32, contiguous (llmk_moe_permute's).
 * k       picks per token, 1 .. 32.
 * xq      [R, H] e4m3 (scale [R] for LLMK_SCALING_ROW, [R, ceil(H/128)] for
 *         LLMK_SCALING_BLOCK with block_m = 1, block_k = 128), or bf16
 *         (scale NULL, desc ignored: a plain gather). Last stride 1.
 *
 * Row r is written (with its scales) iff 0 <= src_of[r] < T k; other rows
 * are left as they are. R = 0 or H = 0 writes nothing. xq's rows and scales are bitwise what
 * llmk_quantize_fp8 with desc writes for the gathered bf16 rows
 * (desc->scale_ub honoured; num_rows must be NULL).
 * Errors: INVALID_ARGUMENT (as llmk_quantize_fp8's, and k out of range,
 *         overlapping outputs), NOT_SUPPORTED (GPU not Hopper), CUDA.
 *         Nothing is written on an error.
 */
LLMK_API llmk_status llmk_moe_gather_quant(llmk_handle h, const llmk_quantize_desc *desc, const llmk_tensor *x,
                                           const llmk_tensor *src_of, int32_t k, const llmk_tensor *xq,
                                           const llmk_tensor *scale, void *stream);

/*
 * llmk_moe_combine: out[t] = sum over slots s of weights[t, s] y[row_of[t, s]]
 * (+ add[t]): each token's expert outputs, weighted, back in token order.
 *
 * y        [R, H] bf16 (the down projection's output in permuted order),
 *          last stride 1, row stride >= H.
 * row_of   [T, k] int32, contiguous (llmk_moe_permute's); an entry outside
 *          [0, R) (a dropped pick) adds nothing.
 * weights  [T, k] f32, contiguous.
 * add      NULL, or [T, H] bf16: the residual or the shared expert's
 *          output, added in the same pass; out may be add itself (same
 *          data and row stride), updated in place.
 * out      [T, H] bf16, last stride 1, row stride >= H.
 *
 * Numerics (normative): per element, acc = 0; for s = 0 .. k-1 in order,
 * acc = fma(weights[t, s], y[row, h], acc) (one rounding); acc = acc +
 * add[t, h]; out = bf16(acc), nearest even, every NaN as 0x7FC0.
 * Sizes: T = 0 or H = 0 writes nothing; k 1 .. 32.
 * Errors: INVALID_ARGUMENT (null handle/tensors, wrong dtype, shape or
 *         stride, overlaps other than out = add, pointer not on the
 *         handle's device), NOT_SUPPORTED (GPU not Hopper), CUDA. Nothing
 *         is written on an error.
 */
LLMK_API llmk_status llmk_moe_combine(llmk_handle h, const llmk_tensor *y, const llmk_tensor *row_of,
                                      const llmk_tensor *weights, const llmk_tensor *add, const llmk_tensor *out,
                                      void *stream);


/* ------------------------------------------------------------------------ */
/* INT4 weights                                                              */
/* ------------------------------------------------------------------------ */

/*
 * A weight W [N, K] (N output features, K inputs, as nn.Linear's) held in
 * INT4: 4-bit codes with one bf16 scale, and optionally one zero point, per
 * group of `group` consecutive elements of a row.
 *
 * codes   [N, K/2] u8, last stride 1, row stride >= K/2: byte j of row n
 *         holds element 2j in its low nibble and 2j + 1 in its high one;
 *         a code q is 0 .. 15.
 * scales  [N, K/group] bf16, contiguous.
 * zeros   asymmetric: [N, K/group] u8, contiguous, each 0 .. 15;
 *         symmetric: NULL (every zero point is 8: codes 0 .. 15 stand for
 *         -8 .. 7).
 * The weight an element stands for: w = bf16((q - z) s), the exact product
 * of the integer q - z and the scale s rounded once to bf16 (nearest
 * even); as f32, (q - z) s exactly.
 */
typedef struct llmk_int4_desc {
  size_t size;        /* LLMK_INT4_DESC_INIT */
  int32_t group;      /* elements of a row sharing a scale: 64 or 128; K % group == 0 */
  int32_t asymmetric; /* 0: zero point 8, no zeros tensor; 1: a zero point per group */
} llmk_int4_desc;
#define LLMK_INT4_DESC_SIZE LLMK_SIZE_THROUGH(llmk_int4_desc, asymmetric)
#define LLMK_INT4_DESC_INIT {LLMK_INT4_DESC_SIZE, 128, 0}

/*
 * llmk_int4_quantize: a bf16 weight [N, K] (last stride 1, row stride >=
 * K) into codes, scales and (asymmetric) zeros, round to nearest.
 *
 * Numerics (normative; the same bits on both backends), per group of a
 * row, over its finite elements v (none: as if all were 0), in fp32 with
 * every operation rounded to nearest even:
 *   symmetric:  a = max |v|; s = bf16(a / 7); q = clamp(rint(v / s), -8, 7)
 *               + 8.
 *   asymmetric: lo = min(0, min v), hi = max(0, max v); s = bf16((hi - lo)
 *               / 15), the difference and quotient taken in fp64 and
 *               rounded once to fp32; z = clamp(rint(-lo / s), 0, 15);
 *               q = clamp(rint(v / s) + z, 0, 15).
 *   A group whose s is 0 gets q = z (8 or 0) throughout; a NaN element
 *   gets q = z; +-Inf clamps to the largest or smallest code.
 * Errors: INVALID_ARGUMENT (null handle/desc/tensors, wrong dtype, shape
 *         or stride, group not 64 or 128, K not a multiple of group,
 *         zeros given or missing against desc->asymmetric, overlapping
 *         tensors, pointer not on the handle's device), NOT_SUPPORTED (GPU
 *         not Hopper), CUDA. Nothing is written on an error.
 */
LLMK_API llmk_status llmk_int4_quantize(llmk_handle h, const llmk_int4_desc *desc, const llmk_tensor *w,
                                        const llmk_tensor *codes, const llmk_tensor *scales,
                                        const llmk_tensor *zeros, void *stream);

/*
 * llmk_int4_dequantize: codes, scales and zeros back to the weight they
 * stand for, y [N, K] bf16 (w above) or f32 ((q - z) s exactly); last
 * stride 1, row stride >= K. Errors as llmk_int4_quantize's.
 */
LLMK_API llmk_status llmk_int4_dequantize(llmk_handle h, const llmk_int4_desc *desc, const llmk_tensor *codes,
                                          const llmk_tensor *scales, const llmk_tensor *zeros,
                                          const llmk_tensor *y, void *stream);

/* The INT4 packings of common checkpoints (32-bit words of 8 nibbles;
 * nibble j is bits 4j .. 4j + 3). */
typedef enum llmk_int4_packing {
  /* GPTQ (AutoGPTQ, GPTQModel, Hugging Face): qweight [K/8, N], word (i,
   * n) holds element (n, 8i + j) in nibble j; qzeros [K/group, N/8], word
   * (g, c) holds the zero point of (n = 8c + j, g) in nibble j; scales
   * [K/group, N]. */
  LLMK_INT4_GPTQ = 0,
  /* AWQ (AutoAWQ's GEMM layout): qweight [K, N/8], word (k, c) holds
   * element (n = 8c + o_j, k) in nibble j, o = {0, 2, 4, 6, 1, 3, 5, 7};
   * qzeros [K/group, N/8] in the same order; scales [K/group, N]. */
  LLMK_INT4_AWQ = 1,
  /* Rows: qweight [N, K/8], word (n, i) holds element (n, 8i + j) in
   * nibble j; qzeros and scales as GPTQ's. */
  LLMK_INT4_ROWS = 2
} llmk_int4_packing;

typedef struct llmk_int4_import_desc {
  size_t size;                 /* LLMK_INT4_IMPORT_DESC_INIT */
  llmk_int4_packing packing;
  int32_t zero_plus_one;       /* 1: the stored zero point is z - 1 mod 16 (GPTQ's first format, "v1") */
  llmk_dtype scale_dtype;      /* the checkpoint's scales: LLMK_F16 or LLMK_BF16 */
} llmk_int4_import_desc;
#define LLMK_INT4_IMPORT_DESC_SIZE LLMK_SIZE_THROUGH(llmk_int4_import_desc, scale_dtype)
#define LLMK_INT4_IMPORT_DESC_INIT {LLMK_INT4_IMPORT_DESC_SIZE, LLMK_INT4_GPTQ, 0, LLMK_F16}

/*
 * llmk_int4_import: a checkpoint's packed INT4 weight (host memory) into
 * llmk's codes, scales and zeros (host memory, contiguous: codes [N, K/2],
 * scales and zeros [N, K/group]). Scales are rounded to bf16 (nearest
 * even; f16 scales go through f32 exactly). desc->asymmetric = 0 takes a
 * checkpoint whose zero points are all 8 (GPTQ's symmetric ones) and
 * writes no zeros (zeros_out NULL); 1 copies them. Checkpoints quantized
 * with activation order (GPTQ's g_idx not the identity) must be reordered
 * first: groups here are consecutive. qzeros may be NULL for a symmetric
 * import (every zero point 8). N % 8 == 0 (the packed zeros' and AWQ's
 * words), K % group == 0 (and K % 8 == 0).
 * Errors: INVALID_ARGUMENT (null pointers, N or K out of range, bad enum
 *         or dtype, a zero point other than 8 in a symmetric import, a
 *         non-finite scale); nothing is written on an error.
 */
LLMK_API llmk_status llmk_int4_import(const llmk_int4_desc *desc, const llmk_int4_import_desc *import, int64_t N,
                                      int64_t K, const int32_t *qweight, const int32_t *qzeros, const void *scales,
                                      uint8_t *codes_out, uint16_t *scales_out, uint8_t *zeros_out);

/*
 * llmk_gemm_w4a16: Y = X W^T (+ bias) with X in bf16 and W in INT4 (the
 * format above): the decode GEMM whose time is the weight bytes, a quarter
 * of BF16's and half of FP8's (FBGEMM's bf16i4bf16_rowwise).
 *
 * x       bf16 [..., K], last stride 1, rows of one stride (M = the
 *         product of the leading dims).
 * codes, scales, zeros
 *         W [N, K] as desc describes it (llmk_int4_quantize's output, or
 *         llmk_int4_import's).
 * bias    NULL, or f32 or bf16 [N] contiguous.
 * y       bf16 [..., N] with x's leading dims, last stride 1.
 * Numerics: y = bf16(acc + bias), acc[m, n] = sum_k x[m, k] w[n, k] in
 * fp32 or wider, w = bf16((q - z) s) as llmk_int4_dequantize writes it:
 * llmk_gemm_bf16 of x and the dequantized W, which is the CPU reference.
 * The CUDA kernels differ from it only by the order of the fp32 sums (a
 * fixed order for a given shape, so a call repeats bit for bit).
 * Sizes: M, N = 0 write nothing; K = 0 is refused by the format (K is a
 * multiple of the group).
 * Alignment (CUDA): x, codes and y base pointers 16-byte aligned, x's row
 * stride a multiple of 8 elements, codes' row stride a multiple of 16
 * bytes (it is K/2 when contiguous: K % 32 == 0 always holds). Any N.
 * CUDA kernels: M <= 16 runs the decode kernel (mma.sync on weights
 * dequantized in registers, K split over the CTAs of a cluster, summed in
 * a fixed order); larger M dequantizes W in stripes of rows into the
 * handle's workspace and runs llmk_gemm_bf16's dispatcher on each stripe,
 * which needs N and y's row stride to be multiples of 8 (else the decode
 * kernel runs, 16 tokens a launch); K > 36864 always takes the stripes
 * (docs/DESIGN.md, "INT4 GEMMs").
 * In place: y must not overlap x, the weight's tensors or the bias.
 * Errors: INVALID_ARGUMENT (null handle/desc/tensors, wrong dtype, shape,
 *         stride or alignment, bad desc, pointer not on the handle's
 *         device, overlapping output, a workspace too small for one
 *         stripe of 128 rows), NOT_SUPPORTED (GPU not Hopper; K > 36864
 *         with N or y's row stride not a multiple of 8), CUDA. Nothing is
 *         written on an error.
 */
LLMK_API llmk_status llmk_gemm_w4a16(llmk_handle h, const llmk_int4_desc *desc, const llmk_tensor *x,
                                     const llmk_tensor *codes, const llmk_tensor *scales, const llmk_tensor *zeros,
                                     const llmk_tensor *bias, const llmk_tensor *y, void *stream);

/* ------------------------------------------------------------------------ */
/* All-reduce across the GPUs of one node                                    */
/* ------------------------------------------------------------------------ */

/*
 * A communicator (llmk_comm) joins `world` ranks, one GPU and one process
 * (or thread) each, for a low-latency sum all-reduce: llmk's own kernels
 * read the peers' buffers directly over NVLink / PCIe P2P (CUDA IPC), and
 * NCCL carries what they do not (sizes not a multiple of 16 bytes or larger
 * than the buffer, peers without P2P, LLMK_ALLREDUCE=nccl).
 *
 * Each rank's communicator owns, on its handle's device: two parity buffers
 * of buffer_bytes (the input is copied into one of them inside the kernel;
 * consecutive calls alternate, so a call never waits for its peers to
 * finish reading the previous one), one registered buffer of buffer_bytes
 * (llmk_comm_buffer), and barrier flags that the kernels advance themselves
 * (monotonic per-call counters kept in device memory: a captured CUDA graph
 * replays correctly any number of times, and calls on different
 * communicators never interfere). NCCL is reached through dlopen
 * ("libnccl.so.2", the library the process already loaded if any), so
 * libllmk needs no NCCL to load.
 *
 * Every rank must issue the same sequence of llmk_allreduce calls (same
 * sizes, dtypes and residual presence) on its communicator, as with NCCL.
 * A peer that does not arrive within the communicator's timeout
 * (LLMK_COMM_TIMEOUT_MS, read at creation; default 10000 ms) makes the
 * waiting kernel stop, record which rank was missing, and leave its output
 * unspecified; that call's successors, and llmk_comm_check, then return
 * LLMK_ERR_COMM_TIMEOUT naming the rank. Such a communicator stays failed:
 * destroy it (on every rank).
 */
typedef struct llmk_comm_s *llmk_comm;

#define LLMK_COMM_MAX_RANKS 8
#define LLMK_COMM_DEFAULT_BUFFER_BYTES ((size_t)16 << 20)
/* Bytes of one rank's exported handle (llmk_comm_export). */
#define LLMK_COMM_HANDLE_BYTES 512

/*
 * llmk_comm_create_nccl: collective over the ranks of an existing NCCL
 * communicator (nccl_comm is an ncclComm_t; every rank calls this with its
 * own handle, on the device of its NCCL rank). llmk allocates its buffers
 * and flags, zeroes the flags, exchanges the CUDA IPC handles (and each
 * rank's PCI bus id) with ncclAllGather, opens the peers' buffers, agrees
 * with every rank on whether all pairs can reach each other (else every
 * call goes to NCCL: several nodes, no P2P), and synchronizes all ranks
 * before returning, so no peer writes into a flag before it was zeroed.
 * buffer_bytes: 0 for LLMK_COMM_DEFAULT_BUFFER_BYTES, else a multiple of 16
 * (the largest message the own kernels take; about (3 + 4 / world) x
 * buffer_bytes of device memory per rank: two parity buffers, the
 * registered buffer, two-shot's fp32 partial results). The NCCL communicator must outlive the llmk_comm.
 * Errors: INVALID_ARGUMENT (NULL arguments, CPU handle, bad buffer_bytes,
 *         more than LLMK_COMM_MAX_RANKS ranks, nccl_comm's device differs
 *         from the handle's), NOT_SUPPORTED (no NCCL library, GPU not
 *         Hopper), NCCL, CUDA, OUT_OF_MEMORY. On error *out is NULL.
 */
LLMK_API llmk_status llmk_comm_create_nccl(llmk_handle h, void *nccl_comm, size_t buffer_bytes, llmk_comm *out);

/*
 * The same without NCCL, for engines that move bytes between ranks
 * themselves (MPI, sockets, torch.distributed):
 *   1. every rank calls llmk_comm_export(h, rank, world, buffer_bytes,
 *      &comm, blob): buffers allocated, flags zeroed and synchronized, and
 *      LLMK_COMM_HANDLE_BYTES written to blob;
 *   2. the engine all-gathers the blobs in rank order (world x
 *      LLMK_COMM_HANDLE_BYTES bytes, identical on every rank);
 *   3. every rank calls llmk_comm_import(comm, blobs, nccl_comm): peers'
 *      buffers opened. nccl_comm may be NULL; then calls that need NCCL
 *      return NOT_SUPPORTED.
 * If import fails on any rank (peers that cannot reach each other return
 * NOT_SUPPORTED), every rank must destroy its communicator: the others
 * would otherwise wait for it (up to the timeout). Ranks may share a GPU
 * (tests do); P2P between different GPUs must be possible.
 * Errors: INVALID_ARGUMENT (NULL arguments, CPU handle, rank outside
 *         [0, world), world outside [1, LLMK_COMM_MAX_RANKS], bad
 *         buffer_bytes, blobs not from one communicator of this world, or
 *         import on a communicator already imported), NOT_SUPPORTED, CUDA,
 *         OUT_OF_MEMORY.
 */
LLMK_API llmk_status llmk_comm_export(llmk_handle h, int rank, int world, size_t buffer_bytes, llmk_comm *out,
                             void *blob);
LLMK_API llmk_status llmk_comm_import(llmk_comm comm, const void *blobs, void *nccl_comm);

/* Releases a communicator's buffers and peer mappings (NULL does nothing).
 * The caller makes sure no call on it is still running, on any rank that
 * could read this rank's buffers (a device synchronize and a host barrier
 * between the ranks, as for NCCL). */
LLMK_API llmk_status llmk_comm_destroy(llmk_comm comm);

/* Rank, world size, and the registered buffer: a caller that writes its
 * input straight into *buffer (device memory, *bytes = buffer_bytes) and
 * passes x->data == *buffer saves the copy into the parity buffer; the call
 * then also waits, at its end, until every peer has read this rank's
 * buffer, so the next input may be written as soon as the call is done.
 * The buffer's contents after a call are unspecified. Any argument may be
 * NULL. */
LLMK_API llmk_status llmk_comm_info(llmk_comm comm, int *rank, int *world, void **buffer, size_t *bytes);

/* LLMK_SUCCESS, or LLMK_ERR_COMM_TIMEOUT (with the missing rank in
 * llmk_last_error()) if a kernel of this communicator has timed out. Reads
 * pinned host memory only: no synchronization. */
LLMK_API llmk_status llmk_comm_check(llmk_comm comm);

typedef enum llmk_allreduce_algo {
  LLMK_ALLREDUCE_AUTO = 0,    /* by world and message size: src/core/allreduce_table.inc (llmk tune allreduce) */
  LLMK_ALLREDUCE_ONESHOT = 1, /* every rank reads every peer's buffer and sums all of it */
  LLMK_ALLREDUCE_TWOSHOT = 2, /* reduce-scatter then all-gather through the buffers */
  LLMK_ALLREDUCE_NCCL = 3     /* ncclAllReduce (then the residual added by llmk) */
} llmk_allreduce_algo;

/*
 * llmk_allreduce: y = sum over ranks r of x_r [+ residual] (FBGEMM's
 * one_shot_car_allreduce / two_shot_car_allreduce with z).
 *
 * x, y       same shape and dtype (bf16, f16 or f32), contiguous; y may be
 *            x (in place).
 * residual   NULL, or x's shape and dtype, contiguous; may be x or y (on
 *            the NCCL path a residual in y's memory costs a stream-ordered
 *            temporary: NCCL writes y before the residual could be read).
 * algo       AUTO, or a forced algorithm (LLMK_ALLREDUCE=oneshot|twoshot|
 *            nccl in the environment also forces one; the environment wins
 *            over AUTO only). A forced own algorithm on a message NCCL must
 *            take (size not a multiple of 16 bytes or above buffer_bytes,
 *            misaligned pointers, no P2P) goes to NCCL. AUTO on a
 *            communicator without NCCL uses two-shot where the table would
 *            pick NCCL. LLMK_ALLREDUCE is read when the comm is created.
 *            A zero-element call does nothing and returns SUCCESS.
 *            Tensors other than x (and a residual equal to x) must not
 *            overlap the communicator's buffers.
 *
 * Numerics (own kernels): v = x_0 + x_1 + ... + x_{world-1} in fp32, in
 * rank order (each x_r converted exactly to fp32), then v += residual (as
 * fp32), rounded once to the dtype (nearest even). Every rank computes the
 * same sum in the same order: the results are bitwise identical on all
 * ranks. NCCL's order and rounding differ (its result equals llmk's where
 * the sums are exact, as on integer-valued data).
 * Graphs: safe to capture; each replay is one call on every rank.
 * Errors: INVALID_ARGUMENT (NULL comm or tensors, dtype or shape mismatch,
 *         non-contiguous tensors, pointers not on the device, comm not yet
 *         imported), NOT_SUPPORTED (the call needs NCCL and the comm has
 *         none), COMM_TIMEOUT (an earlier call timed out), NCCL, CUDA.
 */
LLMK_API llmk_status llmk_allreduce(llmk_comm comm, llmk_allreduce_algo algo, const llmk_tensor *x,
                           const llmk_tensor *residual, const llmk_tensor *y, void *stream);

/* The algorithm AUTO picks for `bytes` on this communicator (after the
 * size and P2P rules; ignores LLMK_ALLREDUCE), for benchmarks and tests. */
LLMK_API llmk_allreduce_algo llmk_allreduce_choice(llmk_comm comm, size_t bytes);

#ifdef __cplusplus
}
#endif
#endif /* LLMK_H */
