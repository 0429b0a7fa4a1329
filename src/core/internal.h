/* Internal declarations shared by the core, the CPU backend and the CUDA launchers. */
#ifndef LLMK_INTERNAL_H
#define LLMK_INTERNAL_H

#include "llmk.h"
#include "cuda/gemm_model.h"

#ifdef __cplusplus
extern "C" {
#endif

struct llmk_handle_s {
  llmk_backend backend;
  int device;        /* CUDA ordinal, -1 for CPU */
  int sm_count;
  int supported;     /* CUDA: compute capability 9.x */
  size_t l2_bytes;
  /* CUDA GEMMs: device workspace (owned unless lent by llmk_set_workspace),
   * and the cuBLASLt state (src/cuda/gemm_cublaslt.cu), opaque here. */
  void *workspace;
  size_t workspace_bytes;
  int workspace_owned;
  void *lt;
  /* llmk_set_gemm_override (src/core/gemm_api.c): LLMK_GEMM_OVERRIDE_INIT
   * (nothing overridden) until set; read by the CUDA GEMM dispatcher. */
  llmk_gemm_override gemm_override;
  llmk_gemm_tuning gemm_tuning; /* llmk_set_gemm_tuning; LLMK_GEMM_TUNE_ENV at creation */
  /* CUDA: what the GEMM cost model needs of the device (src/cuda/device.cu) */
  llmk_gemm_device gemm_dev;
};

/* Records the thread's last error ("<fn>: <message>") and returns `s`. */
llmk_status llmk_set_error(llmk_status s, const char *fn, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* A validated 2-D view: M rows of K elements, each row `ld` elements apart. */
typedef struct llmk_mat {
  void *data;
  llmk_dtype dtype;
  int64_t rows, cols, ld;
} llmk_mat;

/* Checks that t views rows of stride-1 elements (leading dims flattened into
 * one row pitch >= cols) and fills *m. `name` appears in the message. */
llmk_status llmk_tensor_as_rows(const llmk_tensor *t, const char *fn, const char *name,
                                llmk_mat *m);

/* Checks that t is a contiguous tensor of `dtype` whose shape is exactly
 * dims[0..ndim) (an ndim-1 tensor of n also passes for dims {n}). */
llmk_status llmk_tensor_expect(const llmk_tensor *t, const char *fn, const char *name,
                               llmk_dtype dtype, int ndim, const int64_t *dims);

/* "tensor", "row", "col", "block" (or "invalid"), for messages. */
const char *llmk_scaling_name(llmk_scaling s);
/* Byte range [lo, hi) a row view touches (empty when it has no elements). */
void llmk_mat_extent(const llmk_mat *m, uintptr_t *lo, uintptr_t *hi);
/* 1 if two non-empty byte ranges [lo, hi) share a byte. */
int llmk_ranges_overlap(uintptr_t alo, uintptr_t ahi, uintptr_t blo, uintptr_t bhi);

/* Reads a caller's sized struct src (its first member a size_t size) into
 * dst, a zeroed struct of dst_bytes whose known part (the struct's
 * LLMK_*_SIZE) is `known`: the fields src->size covers are copied, the rest
 * keep their zero defaults, and dst->size becomes `known`. `first` is the
 * size of the struct's first version. Refuses NULL, a size of 0 or below
 * `first` (INVALID_ARGUMENT, naming the initializer `init`), and unknown
 * trailing bytes that are not zero (NOT_SUPPORTED). */
llmk_status llmk_sized_read(const void *src, void *dst, size_t dst_bytes, size_t known, size_t first,
                            const char *fn, const char *name, const char *init);
#define LLMK_READ_SIZED(src, dst, KNOWN, FIRST, fn, name, INIT) \
  llmk_sized_read((src), (dst), sizeof *(dst), (KNOWN), (FIRST), (fn), (name), #INIT)

/* The reverse for structs the library fills: copies src's fields that the
 * caller's dst->size covers (dst->size itself stays). Same refusals, except
 * that a larger caller struct is fine (its unknown fields are left alone).
 * src NULL: only the checks, nothing written. */
llmk_status llmk_sized_write(void *dst, const void *src, size_t known, size_t first, const char *fn,
                             const char *name, const char *init);

/* Validates the handle pointer itself. */
llmk_status llmk_check_handle(llmk_handle h, const char *fn);

/* For a CUDA handle: NOT_SUPPORTED unless the device is a Hopper GPU, then
 * llmk_cuda_check_ptr on each non-NULL ptrs[i] (named names[i]). Passes
 * at once for a CPU handle. Callers check emptiness and NULLs first. */
llmk_status llmk_check_backend_ptrs(llmk_handle h, const char *fn, const void *const *ptrs,
                                    const char *const *names, int n);

/* CUDA backend hooks (src/cuda or the no-CUDA stub). */
llmk_status llmk_cuda_create(llmk_handle h, int device);
/* Frees what llmk_cuda_create allocated (workspace, cuBLASLt state). */
void llmk_cuda_release(llmk_handle h);
/* llmk_set_workspace for a CUDA handle (arguments not yet checked). */
llmk_status llmk_cuda_set_workspace(llmk_handle h, void *ptr, size_t bytes);
/* Checks that p is device or managed memory of h's device. */
llmk_status llmk_cuda_check_ptr(llmk_handle h, const void *p, const char *fn, const char *name);

#ifdef __cplusplus
}
#endif
#endif
