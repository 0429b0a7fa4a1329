/* llmk_gemm_fp8: argument checks, then dispatch to the CPU reference or CUDA.
 *
 * Every rule of include/llmk.h ("FP8 GEMM with BF16 output") is checked here,
 * before anything is written, so both backends receive a validated plan
 * (src/core/gemm.h). The CUDA-only rules (16-byte aligned bases, K % 16,
 * N % 8, row pitches) apply to CUDA handles only: the CPU reference takes
 * any shape. */
#include <stdint.h>

#include "core/gemm.h"

static const char FN[] = "llmk_gemm_fp8";

/* Byte range of n contiguous elements of es bytes at p. */
static void vec_extent(const void *p, int64_t n, size_t es, uintptr_t *lo, uintptr_t *hi) {
  *lo = *hi = (uintptr_t)p;
  if (p && n > 0) *hi += (size_t)n * es;
}

static llmk_status check_desc(const llmk_gemm_desc *d) {
  if (!d) return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "desc is NULL");
  switch (d->scaling) {
    case LLMK_SCALING_TENSOR: case LLMK_SCALING_ROW: break;
    case LLMK_SCALING_COL: case LLMK_SCALING_BLOCK:
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                            "desc->scaling = %s is not supported: the GEMM takes tensor or row "
                            "scaling",
                            llmk_scaling_name(d->scaling));
    default:
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "desc->scaling has invalid value %d",
                            (int)d->scaling);
  }
  if (d->accum != LLMK_ACCUM_DEFAULT && d->accum != LLMK_ACCUM_FAST && d->accum != LLMK_ACCUM_FP32)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "desc->accum has invalid value %d",
                          (int)d->accum);
  if (d->backend != LLMK_GEMM_AUTO && d->backend != LLMK_GEMM_OWN && d->backend != LLMK_GEMM_CUBLASLT)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "desc->backend has invalid value %d",
                          (int)d->backend);
  return LLMK_SUCCESS;
}

/* x_scale: [1] (TENSOR); [M] or exactly the leading dims of x (ROW). */
static llmk_status check_x_scale(llmk_scaling sc, const llmk_tensor *xs, const llmk_tensor *x,
                                 int64_t M) {
  int64_t dims[LLMK_MAX_DIMS] = {sc == LLMK_SCALING_TENSOR ? 1 : M, 0, 0, 0};
  if (sc == LLMK_SCALING_ROW && xs && x->ndim > 2 && xs->ndim > 1) {
    if (xs->ndim != x->ndim - 1)
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                            "x_scale: row scaling needs shape [M] = [%lld] or the %d leading dims "
                            "of x, got %d dims",
                            (long long)M, (int)x->ndim - 1, (int)xs->ndim);
    for (int i = 0; i < x->ndim - 1; i++) dims[i] = x->shape[i];
    return llmk_tensor_expect(xs, FN, "x_scale", LLMK_F32, x->ndim - 1, dims);
  }
  return llmk_tensor_expect(xs, FN, "x_scale", LLMK_F32, 1, dims);
}

/* bias: NULL, or [N] f32 or bf16, contiguous. */
static llmk_status check_bias(const llmk_tensor *b, int64_t N) {
  if (!b) return LLMK_SUCCESS;
  if (b->dtype != LLMK_F32 && b->dtype != LLMK_BF16 && llmk_dtype_size(b->dtype) != 0)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "bias: expected dtype f32 or bf16, got %s",
                          llmk_dtype_name(b->dtype));
  int64_t dims[1] = {N};
  return llmk_tensor_expect(b, FN, "bias", b->dtype == LLMK_BF16 ? LLMK_BF16 : LLMK_F32, 1, dims);
}

/* y: bf16 [leading dims of x..., N], rows collapsible (checked by the caller). */
static llmk_status check_y_shape(const llmk_tensor *y, const llmk_tensor *x, int64_t N) {
  if (y->ndim != x->ndim)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                          "y: expected %d dims (the leading dims of x, then N), got %d",
                          (int)x->ndim, (int)y->ndim);
  for (int i = 0; i < x->ndim - 1; i++)
    if (y->shape[i] != x->shape[i])
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                            "y: shape[%d] = %lld differs from x.shape[%d] = %lld", i,
                            (long long)y->shape[i], i, (long long)x->shape[i]);
  if (y->shape[y->ndim - 1] != N)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                          "y: shape[%d] = %lld, expected N = %lld (rows of w)", (int)y->ndim - 1,
                          (long long)y->shape[y->ndim - 1], (long long)N);
  return LLMK_SUCCESS;
}

static int has_elements(const llmk_mat *m) { return m->rows > 0 && m->cols > 0; }

/* The alignment rules of the CUDA kernels and cuBLASLt (llmk.h). Pointers
 * and row pitches of a matrix without elements are never used, so only
 * non-empty matrices are held to them; K % 16 and N % 8 always apply. */
static llmk_status check_cuda_layout(const llmk_mat *x, const llmk_mat *w, const llmk_mat *y) {
  const struct { const char *name; const llmk_mat *m; } mats[] = {{"x", x}, {"w", w}, {"y", y}};
  for (int i = 0; i < 3; i++)
    if (has_elements(mats[i].m) && (uintptr_t)mats[i].m->data % 16)
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                            "%s.data = %p is not 16-byte aligned (required for CUDA handles)",
                            mats[i].name, mats[i].m->data);
  if (x->cols % 16)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                          "x, w: K = %lld is not a multiple of 16 (required for CUDA handles)",
                          (long long)x->cols);
  if (w->rows % 8)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                          "w, y: N = %lld is not a multiple of 8 (required for CUDA handles)",
                          (long long)w->rows);
  if (has_elements(x) && x->rows > 1 && x->ld % 16)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                          "x: row stride %lld bytes is not a multiple of 16 (required for CUDA "
                          "handles)",
                          (long long)x->ld);
  if (has_elements(w) && w->rows > 1 && w->ld % 16)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                          "w: row stride %lld bytes is not a multiple of 16 (required for CUDA "
                          "handles)",
                          (long long)w->ld);
  if (has_elements(y) && y->rows > 1 && y->ld % 8)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                          "y: row stride %lld elements is not a multiple of 8 (required for CUDA "
                          "handles)",
                          (long long)y->ld);
  return LLMK_SUCCESS;
}

llmk_status llmk_gemm_fp8(llmk_handle h, const llmk_gemm_desc *desc, const llmk_tensor *x,
                          const llmk_tensor *w, const llmk_tensor *x_scale,
                          const llmk_tensor *w_scale, const llmk_tensor *bias,
                          const llmk_tensor *y, void *stream) {
  llmk_status s = llmk_check_handle(h, FN);
  if (s) return s;
  if ((s = check_desc(desc))) return s;
  const llmk_scaling sc = desc->scaling;

  /* x [..., K] and w [N, K], both e4m3 with stride-1 rows. */
  llmk_mat mx, mw, my;
  if ((s = llmk_tensor_as_rows(x, FN, "x", &mx))) return s;
  if (mx.dtype != LLMK_E4M3)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "x: expected dtype e4m3, got %s",
                          llmk_dtype_name(mx.dtype));
  if ((s = llmk_tensor_as_rows(w, FN, "w", &mw))) return s;
  if (w->ndim != 2)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "w: expected 2 dims [N, K], got %d",
                          (int)w->ndim);
  if (mw.dtype != LLMK_E4M3)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "w: expected dtype e4m3, got %s",
                          llmk_dtype_name(mw.dtype));
  const int64_t M = mx.rows, K = mx.cols, N = mw.rows;
  if (mw.cols != K)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                          "w: K = %lld (shape[1]) differs from x's K = %lld (its last dim)",
                          (long long)mw.cols, (long long)K);

  /* Scales and bias: f32 (bias also bf16), contiguous. */
  if ((s = check_x_scale(sc, x_scale, x, M))) return s;
  int64_t wdims[1] = {sc == LLMK_SCALING_TENSOR ? 1 : N};
  if ((s = llmk_tensor_expect(w_scale, FN, "w_scale", LLMK_F32, 1, wdims))) return s;
  if ((s = check_bias(bias, N))) return s;

  /* y [..., N] bf16. */
  if ((s = llmk_tensor_as_rows(y, FN, "y", &my))) return s;
  if (my.dtype != LLMK_BF16)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "y: expected dtype bf16, got %s",
                          llmk_dtype_name(my.dtype));
  if ((s = check_y_shape(y, x, N))) return s;

  /* In place is not allowed: y must not overlap any input. */
  const int64_t nxs = sc == LLMK_SCALING_TENSOR ? 1 : M, nws = sc == LLMK_SCALING_TENSOR ? 1 : N;
  struct { const char *name; uintptr_t lo, hi; } in[5] = {{"x", 0, 0}, {"w", 0, 0},
      {"x_scale", 0, 0}, {"w_scale", 0, 0}, {"bias", 0, 0}};
  uintptr_t ylo, yhi;
  llmk_mat_extent(&my, &ylo, &yhi);
  llmk_mat_extent(&mx, &in[0].lo, &in[0].hi);
  llmk_mat_extent(&mw, &in[1].lo, &in[1].hi);
  vec_extent(x_scale->data, nxs, sizeof(float), &in[2].lo, &in[2].hi);
  vec_extent(w_scale->data, nws, sizeof(float), &in[3].lo, &in[3].hi);
  if (bias) vec_extent(bias->data, N, llmk_dtype_size(bias->dtype), &in[4].lo, &in[4].hi);
  for (int i = 0; i < 5; i++)
    if (llmk_ranges_overlap(ylo, yhi, in[i].lo, in[i].hi))
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                            "y: overlaps %s (the output must not overlap any input)", in[i].name);

  /* CUDA handles: layout rules, device, pointers, workspace. */
  if (h->backend == LLMK_BACKEND_CUDA) {
    if ((s = check_cuda_layout(&mx, &mw, &my))) return s;
    const void *ptrs[] = {mx.data, mw.data, x_scale->data, w_scale->data,
                          bias ? bias->data : NULL, my.data};
    const char *names[] = {"x.data", "w.data", "x_scale.data", "w_scale.data", "bias.data",
                           "y.data"};
    if ((s = llmk_check_backend_ptrs(h, FN, ptrs, names, 6))) return s;
    if (!h->workspace)
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                            "handle: it has no GEMM workspace (re-allocating its own failed); "
                            "give it one with llmk_set_workspace");
  }

  llmk_gemm_plan p;
  p.scaling = sc;
  /* DEFAULT is fast accumulation for tensor- and row-wise scaling (DESIGN.md). */
  p.fast_accum = desc->accum != LLMK_ACCUM_FP32;
  p.backend = desc->backend;
  p.M = M;
  p.N = N;
  p.K = K;
  p.x = (const uint8_t *)mx.data;
  p.ldx = mx.ld;
  p.w = (const uint8_t *)mw.data;
  p.ldw = mw.ld;
  p.xs = (const float *)x_scale->data;
  p.ws = (const float *)w_scale->data;
  p.bias = bias ? bias->data : NULL;
  p.bias_dtype = bias ? bias->dtype : LLMK_F32;
  p.y = (uint16_t *)my.data;
  p.ldy = my.ld;
  if (M == 0 || N == 0) return LLMK_SUCCESS; /* nothing to write; K == 0 goes on (y = bias) */
  if (h->backend == LLMK_BACKEND_CPU) return llmk_cpu_gemm_fp8(&p);
  return llmk_cuda_gemm_fp8(h, &p, stream);
}
