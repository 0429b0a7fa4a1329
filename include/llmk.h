/*
 * llmk.h: the public C API of llmk, FP8 inference kernels for NVIDIA Hopper.
 *
 * Conventions (see DESIGN.md for the full text):
 *  - Every function returns an llmk_status. On failure, llmk_last_error()
 *    returns a sentence for this thread saying what was wrong; nothing was
 *    written to any output and the library remains usable.
 *  - A handle (llmk_handle) is bound to one backend: the CPU reference or one
 *    CUDA device. It holds no stream: ops take a cudaStream_t as `void *`,
 *    last (NULL = the legacy default stream). CPU handles ignore the stream.
 *  - Tensors are described by llmk_tensor (pointer, dtype, shape, strides in
 *    elements). For a CUDA handle every data pointer must be device (or
 *    managed) memory of the handle's device; for a CPU handle, host memory.
 *  - No op allocates, synchronizes or reads device memory back on the host,
 *    so every op can be captured in a CUDA graph. Values that may change
 *    between graph replays (scale bounds, row counts) are passed by pointer
 *    to memory of the handle's backend.
 *  - The library never prints, exits or aborts on user input.
 */
#ifndef LLMK_H
#define LLMK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LLMK_VERSION_MAJOR 0
#define LLMK_VERSION_MINOR 1
#define LLMK_VERSION_PATCH 0

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
const char *llmk_status_string(llmk_status s);

/* The message of the most recent failed llmk call on this thread, e.g.
 * "llmk_quantize_fp8: x: expected dtype f32, f16 or bf16, got e4m3".
 * Successful calls leave it unchanged; "" if no call has failed yet.
 * The pointer stays valid until the next llmk call on this thread. */
const char *llmk_last_error(void);

/* ------------------------------------------------------------------------ */
/* Version and build                                                         */
/* ------------------------------------------------------------------------ */

typedef struct llmk_build_info {
  int version_major, version_minor, version_patch;
  int has_cuda;        /* 1 if CUDA kernels were compiled in */
  int cuda_version;    /* CUDA runtime the library was built against, e.g. 13000; 0 without CUDA */
  int cublas_version;  /* cuBLAS(Lt) headers built against, e.g. 130100; 0 without CUDA */
  int nccl_version;    /* NCCL headers built against, e.g. 22703; 0 without CUDA */
  const char *cuda_archs; /* e.g. "sm_90a"; "" without CUDA */
} llmk_build_info;

/* Fills *info. Returns LLMK_ERR_INVALID_ARGUMENT if info is NULL. */
llmk_status llmk_get_build_info(llmk_build_info *info);

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
size_t llmk_dtype_size(llmk_dtype dt);
/* "f32", "bf16", "e4m3", ...; "invalid" for an unknown value. */
const char *llmk_dtype_name(llmk_dtype dt);

#define LLMK_MAX_DIMS 4

/* A strided view of memory. shape[i] >= 0; strides are in elements. Ops say
 * which strides they accept. Unused trailing entries are ignored. */
typedef struct llmk_tensor {
  void *data;
  llmk_dtype dtype;
  int32_t ndim;
  int64_t shape[LLMK_MAX_DIMS];
  int64_t strides[LLMK_MAX_DIMS];
} llmk_tensor;

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

/* ------------------------------------------------------------------------ */
/* Scalar conversions (the library's exact numerics, usable on the host)     */
/* ------------------------------------------------------------------------ */

/* float -> FP8 code: round to nearest even, finite overflow and +-Inf
 * saturate to +-max, NaN gives the positive NaN code 0x7F (as cuda_fp8.h's
 * host conversion with __NV_SATFINITE). dt must be LLMK_E4M3 or LLMK_E5M2;
 * any other dtype returns 0. */
uint8_t llmk_float_to_fp8(float x, llmk_dtype dt);
/* FP8 code -> float (exact). Other dtypes return NaN. */
float llmk_fp8_to_float(uint8_t code, llmk_dtype dt);
/* float <-> bf16 / f16 bits, round to nearest even; NaN stays NaN. */
uint16_t llmk_float_to_bf16(float x);
float llmk_bf16_to_float(uint16_t bits);
uint16_t llmk_float_to_f16(float x);
float llmk_f16_to_float(uint16_t bits);

/* ------------------------------------------------------------------------ */
/* Handles and devices                                                       */
/* ------------------------------------------------------------------------ */

typedef struct llmk_handle_s *llmk_handle;

typedef enum llmk_backend { LLMK_BACKEND_CPU = 0, LLMK_BACKEND_CUDA = 1 } llmk_backend;

/* Creates a handle that runs the CPU reference backend. Always available.
 * Errors: INVALID_ARGUMENT (out is NULL), OUT_OF_MEMORY. */
llmk_status llmk_create_cpu(llmk_handle *out);

/* Creates a handle bound to CUDA device `device`. It queries the device
 * once (SM count, memory, compute capability); the current device of the
 * calling thread is left unchanged.
 * Errors: INVALID_ARGUMENT (out NULL, device out of range),
 *         NOT_SUPPORTED (library built without CUDA, no driver or no device),
 *         CUDA (the runtime failed). On error *out is set to NULL.
 * A handle on a GPU other than compute capability 9.x is created, but its
 * ops return NOT_SUPPORTED: the kernels are compiled for sm_90a only. */
llmk_status llmk_create_cuda(llmk_handle *out, int device);

/* Destroys a handle (NULL is allowed and does nothing). The caller must
 * make sure no work issued through it is still running. */
llmk_status llmk_destroy(llmk_handle h);

typedef struct llmk_device_info {
  char name[256];
  int device;
  int sm_count;
  int cc_major, cc_minor;
  size_t total_memory;  /* bytes */
  size_t l2_bytes;
  int supported;        /* 1 if llmk's kernels run on it (compute capability 9.x) */
} llmk_device_info;

/* Number of visible CUDA devices in *count (0 when built without CUDA or
 * when no driver or device is present; that is not an error). */
llmk_status llmk_cuda_device_count(int *count);
/* Properties of CUDA device `device`. Errors: INVALID_ARGUMENT, NOT_SUPPORTED, CUDA. */
llmk_status llmk_cuda_device_info(int device, llmk_device_info *info);

/* Backend of a handle, and its device (-1 for CPU). */
llmk_status llmk_handle_backend(llmk_handle h, llmk_backend *backend, int *device);

/* Replaces the device workspace that a CUDA handle's GEMMs use (split-K
 * partial sums, cuBLASLt's workspace). llmk_create_cuda allocates
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
llmk_status llmk_set_workspace(llmk_handle h, void *ptr, size_t bytes);

/* ------------------------------------------------------------------------ */
/* FP8 quantization                                                          */
/* ------------------------------------------------------------------------ */

typedef enum llmk_scaling {
  LLMK_SCALING_TENSOR = 0, /* one scale for the tensor:  scale shape [1]     */
  LLMK_SCALING_ROW = 1,    /* one scale per row:          scale shape [M]     */
  LLMK_SCALING_COL = 2,    /* one scale per column:       scale shape [K]     */
  LLMK_SCALING_BLOCK = 3   /* one per block_m x block_k:  [ceil(M/bm), ceil(K/bk)] */
} llmk_scaling;

typedef struct llmk_quant_desc {
  llmk_scaling scaling;
  int64_t block_m, block_k; /* BLOCK only: any positive sizes (1x128 and
                               128x128 are the DeepSeek-V3 recipe); ignored otherwise */
  const float *scale_ub;    /* optional (NULL): amax is clamped to *scale_ub.
                               Memory of the handle's backend (device for CUDA). */
  const int64_t *num_rows;  /* optional (NULL), TENSOR only: the scale is taken over
                               the first min(max(*num_rows, 0), M) rows only; all M
                               rows are still quantized (FBGEMM's `bs`). Memory of
                               the handle's backend. */
} llmk_quant_desc;

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
 * For each group G (DESIGN.md, "Quantization", bit for bit):
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
 * In place: not allowed (x and xq must not overlap).
 * Zero-sized M or K: scales of the (empty) groups are written as MIN_SCALE.
 *
 * Errors: INVALID_ARGUMENT (null handle/desc/tensors, wrong dtype, shape or
 *         stride, misaligned element, bad block sizes, pointer not on the
 *         handle's device), NOT_SUPPORTED (GPU not Hopper), CUDA (launch failed).
 */
llmk_status llmk_quantize_fp8(llmk_handle h, const llmk_quant_desc *desc,
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
llmk_status llmk_dequantize_fp8(llmk_handle h, const llmk_quant_desc *desc,
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
  llmk_scaling scaling;      /* LLMK_SCALING_TENSOR, _ROW or _BLOCK (see llmk_gemm_fp8) */
  llmk_accum accum;
  llmk_gemm_backend backend; /* CUDA handles only; the CPU handle ignores it */
} llmk_gemm_desc;

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
 *          have any stride. llmk's own kernels take all of these;
 *          cuBLASLt (LLMK_GEMM_AUTO picks per shape) takes 1x128 groups
 *          only, and reads x_scale column-major of column pitch M and
 *          w_scale row-major of row pitch roundup(KB, 4): scales in
 *          another layout are first repacked into the handle's workspace
 *          (M x KB + ceil(N/128) x roundup(KB, 4) floats, a few us). With
 *          128x128 activation blocks, or a workspace too small for the
 *          repack, AUTO runs the own kernels and a forced
 *          LLMK_GEMM_CUBLASLT is NOT_SUPPORTED.
 * Numerics: acc = 0 (fp32); for each 128-deep slice b of K (the last may
 * be shorter): part = the slice's sum of products in fp32, s = x_scale[m
 * or m/128, b] * w_scale[n/128, b] in fp32, acc = fmaf(part, s, acc) (one
 * rounding: DeepGEMM's order, one fused multiply-add per accumulator and
 * slice on the GPU); then v = acc (+ bias as fp32), rounded once to bf16.
 * desc->accum
 * must be DEFAULT or FP32 (the per-slice promotion is the point of the
 * recipe). The CPU reference sums each slice exactly.
 *
 * Numerics, tensor and row scaling (DESIGN.md, "Scaled GEMM"): the product
 * acc is accumulated in fp32 (FAST: Hopper's FP8 accumulate; FP32: promoted
 * every 128 of K), then v = (acc * x_scale) * w_scale in fp32, v += bias
 * (as fp32), and v is rounded once to bf16 (nearest even). The CPU backend
 * accumulates exactly (fp64) and serves as the reference of the GPU tests.
 * Sizes: M, N or K = 0 is allowed: M or N = 0 writes nothing; K = 0 writes
 * bf16(bias) (or zeros) to every element of y.
 * Alignment (CUDA): pointers aligned to their element size; x, w and y
 * base pointers 16-byte aligned, K a multiple of 16 and N a multiple of 8
 * for the own kernels and cuBLASLt (row strides likewise: x and w rows a
 * multiple of 16 bytes, y rows a multiple of 8 elements). Other shapes get
 * INVALID_ARGUMENT saying which rule failed.
 * In place: y must not overlap x, w, the scales or the bias.
 * Workspace: the handle's (llmk_set_workspace); no allocation per call.
 *
 * Errors: INVALID_ARGUMENT (null handle/desc/tensors, wrong dtype, shape,
 *         stride or alignment, bad enum, FAST accumulation with block
 *         scaling, pointer not on the handle's device, overlapping
 *         output), NOT_SUPPORTED (GPU not Hopper, or a forced backend that
 *         cannot take the shape or, for cuBLASLt, 128x128 activation
 *         blocks), CUDA, CUBLAS.
 */
llmk_status llmk_gemm_fp8(llmk_handle h, const llmk_gemm_desc *desc, const llmk_tensor *x,
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
llmk_status llmk_gemm_bf16(llmk_handle h, llmk_gemm_backend backend, const llmk_tensor *x,
                           const llmk_tensor *w, const llmk_tensor *bias, const llmk_tensor *y,
                           void *stream);

#ifdef __cplusplus
}
#endif
#endif /* LLMK_H */
