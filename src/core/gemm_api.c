/* llmk_gemm_fp8 and llmk_gemm_bf16: argument checks, then dispatch to the
 * CPU reference or CUDA.
 *
 * Every rule of include/llmk.h (the GEMM section) is checked here, before
 * anything is written, so both backends receive a validated plan
 * (src/core/gemm.h). The CUDA-only rules (16-byte aligned bases, 16-byte
 * rows, N % 8, row pitches) apply to CUDA handles only: the CPU reference
 * takes any shape. */
#include <stdint.h>
#include <string.h>

#include "core/gemm.h"

static const char FN[] = "llmk_gemm_fp8";

/* Byte range of n contiguous elements of es bytes at p. */
static void vec_extent(const void *p, int64_t n, size_t es, uintptr_t *lo, uintptr_t *hi) {
  *lo = *hi = (uintptr_t)p;
  if (p && n > 0) *hi += (size_t)n * es;
}

static llmk_status check_desc(const char *fn, const llmk_gemm_desc *d) {
  switch (d->scaling) {
    case LLMK_SCALING_TENSOR: case LLMK_SCALING_ROW: case LLMK_SCALING_BLOCK: break;
    case LLMK_SCALING_COL:
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                            "desc->scaling = %s is not supported: the GEMM takes tensor, row or "
                            "block scaling",
                            llmk_scaling_name(d->scaling));
    default:
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "desc->scaling has invalid value %d",
                            (int)d->scaling);
  }
  if (d->accum != LLMK_ACCUM_DEFAULT && d->accum != LLMK_ACCUM_FAST && d->accum != LLMK_ACCUM_FP32)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "desc->accum has invalid value %d",
                          (int)d->accum);
  if (d->scaling == LLMK_SCALING_BLOCK && d->accum == LLMK_ACCUM_FAST)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "desc->accum = FAST with block scaling: block scales are applied to each "
                          "128-deep partial sum in fp32 (use DEFAULT or FP32)");
  if (d->backend != LLMK_GEMM_AUTO && d->backend != LLMK_GEMM_OWN && d->backend != LLMK_GEMM_CUBLASLT)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "desc->backend has invalid value %d",
                          (int)d->backend);
  if (d->x_planes < 0 || d->x_planes > 2)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "desc->x_planes must be 0, 1 or 2, got %d", d->x_planes);
  if (d->x_planes == 2 && d->scaling != LLMK_SCALING_ROW)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "desc->x_planes = 2 needs row scaling (each plane row has its own scale), got %s",
                          llmk_scaling_name(d->scaling));
  return LLMK_SUCCESS;
}

/* Two planes: x is [..., 2, K] and y [..., N] with x's leading dims less the 2. */
static llmk_status check_planes_shapes(const llmk_tensor *x, const llmk_tensor *y, int64_t N) {
  if (x->ndim < 2 || x->shape[x->ndim - 2] != 2)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                          "x: two planes (desc->x_planes = 2) need shape [..., 2, K], got %d dims with "
                          "shape[-2] = %lld",
                          (int)x->ndim, x->ndim >= 2 ? (long long)x->shape[x->ndim - 2] : -1LL);
  if (!y || y->ndim != x->ndim - 1)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                          "y: expected %d dims (x's leading dims without the planes, then N)", (int)x->ndim - 1);
  for (int i = 0; i < x->ndim - 2; i++)
    if (y->shape[i] != x->shape[i])
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "y: shape[%d] = %lld differs from x.shape[%d] = %lld", i,
                            (long long)y->shape[i], i, (long long)x->shape[i]);
  if (y->shape[y->ndim - 1] != N)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "y: shape[%d] = %lld, expected N = %lld (rows of w)",
                          (int)y->ndim - 1, (long long)y->shape[y->ndim - 1], (long long)N);
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

/* A block-scale tensor: f32 [rows, kb] with rows one of rows_a, rows_b,
 * row-major (strides {>= kb, 1}) or column-major ({1, >= rows}); a dim of
 * size 1 may have any stride. Gives the element strides of a row and of a
 * K slice, and the byte range it spans. */
static llmk_status check_block_scale(const llmk_tensor *t, const char *name, int64_t rows_a, int64_t rows_b,
                                     int64_t kb, int64_t *rows, int64_t *rs, int64_t *ks, uintptr_t *lo,
                                     uintptr_t *hi) {
  if (!t) return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "%s is NULL", name);
  if (t->dtype != LLMK_F32)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "%s: expected dtype f32, got %s", name,
                          llmk_dtype_name(t->dtype));
  if (t->ndim != 2 || t->shape[1] != kb || (t->shape[0] != rows_a && t->shape[0] != rows_b)) {
    if (rows_a == rows_b)
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                            "%s: block scaling needs shape [%lld, %lld] (128-row blocks x 128-deep K slices)",
                            name, (long long)rows_a, (long long)kb);
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                          "%s: block scaling needs shape [%lld, %lld] (1x128 groups) or [%lld, %lld] "
                          "(128x128 blocks)",
                          name, (long long)rows_a, (long long)kb, (long long)rows_b, (long long)kb);
  }
  const int64_t r = t->shape[0], s0 = t->strides[0], s1 = t->strides[1];
  const int row_major = (kb <= 1 || s1 == 1) && (r <= 1 || s0 >= kb);
  const int col_major = (r <= 1 || s0 == 1) && (kb <= 1 || s1 >= r);
  if (!row_major && !col_major)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                          "%s: strides {%lld, %lld} are neither row-major ({>= %lld, 1}) nor column-major "
                          "({1, >= %lld})",
                          name, (long long)s0, (long long)s1, (long long)kb, (long long)r);
  *rows = r, *rs = r > 1 ? s0 : 0, *ks = kb > 1 ? s1 : 0;
  *lo = *hi = (uintptr_t)t->data;
  if (r > 0 && kb > 0) {
    if (!t->data) return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "%s.data is NULL", name);
    if ((uintptr_t)t->data % sizeof(float))
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "%s.data = %p is not aligned to 4 bytes", name, t->data);
    *hi += (size_t)((r - 1) * *rs + (kb - 1) * *ks + 1) * sizeof(float);
  }
  return LLMK_SUCCESS;
}

/* bias: NULL, or [N] f32 or bf16, contiguous. */
static llmk_status check_bias(const char *fn, const llmk_tensor *b, int64_t N) {
  if (!b) return LLMK_SUCCESS;
  if (b->dtype != LLMK_F32 && b->dtype != LLMK_BF16 && llmk_dtype_size(b->dtype) != 0)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "bias: expected dtype f32 or bf16, got %s",
                          llmk_dtype_name(b->dtype));
  int64_t dims[1] = {N};
  return llmk_tensor_expect(b, fn, "bias", b->dtype == LLMK_BF16 ? LLMK_BF16 : LLMK_F32, 1, dims);
}

/* y: bf16 [leading dims of x..., N], rows collapsible (checked by the caller). */
static llmk_status check_y_shape(const char *fn, const llmk_tensor *y, const llmk_tensor *x, int64_t N) {
  if (y->ndim != x->ndim)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "y: expected %d dims (the leading dims of x, then N), got %d",
                          (int)x->ndim, (int)y->ndim);
  for (int i = 0; i < x->ndim - 1; i++)
    if (y->shape[i] != x->shape[i])
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                            "y: shape[%d] = %lld differs from x.shape[%d] = %lld", i,
                            (long long)y->shape[i], i, (long long)x->shape[i]);
  if (y->shape[y->ndim - 1] != N)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "y: shape[%d] = %lld, expected N = %lld (rows of w)", (int)y->ndim - 1,
                          (long long)y->shape[y->ndim - 1], (long long)N);
  return LLMK_SUCCESS;
}

static int has_elements(const llmk_mat *m) { return m->rows > 0 && m->cols > 0; }

/* The alignment rules of the CUDA kernels and cuBLASLt (llmk.h): 16-byte
 * aligned bases, x and w rows (K and the row pitches) a multiple of 16
 * bytes, N and y's pitch a multiple of 8 elements. Pointers and row pitches
 * of a matrix without elements are never used, so only non-empty matrices
 * are held to them; the K and N rules always apply. */
static llmk_status check_cuda_layout(const char *fn, const llmk_mat *x, const llmk_mat *w, const llmk_mat *y) {
  const struct { const char *name; const llmk_mat *m; } mats[] = {{"x", x}, {"w", w}, {"y", y}};
  const int64_t es = (int64_t)llmk_dtype_size(x->dtype), k16 = 16 / es;
  for (int i = 0; i < 3; i++)
    if (has_elements(mats[i].m) && (uintptr_t)mats[i].m->data % 16)
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                            "%s.data = %p is not 16-byte aligned (required for CUDA handles)",
                            mats[i].name, mats[i].m->data);
  if (x->cols % k16)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "x, w: K = %lld is not a multiple of %lld (16-byte rows, required for CUDA handles)",
                          (long long)x->cols, (long long)k16);
  if (w->rows % 8)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "w, y: N = %lld is not a multiple of 8 (required for CUDA handles)",
                          (long long)w->rows);
  if (has_elements(x) && x->rows > 1 && x->ld % k16)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "x: row stride %lld bytes is not a multiple of 16 (required for CUDA "
                          "handles)",
                          (long long)(x->ld * es));
  if (has_elements(w) && w->rows > 1 && w->ld % k16)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "w: row stride %lld bytes is not a multiple of 16 (required for CUDA "
                          "handles)",
                          (long long)(w->ld * es));
  if (has_elements(y) && y->rows > 1 && y->ld % 8)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "y: row stride %lld elements is not a multiple of 8 (required for CUDA "
                          "handles)",
                          (long long)y->ld);
  return LLMK_SUCCESS;
}

/* The inputs every GEMM shares: x [..., K] and w [N, K] of dtype `in` with
 * stride-1 rows. Fills the matrices. */
static llmk_status check_xw(const char *fn, llmk_dtype in, const llmk_tensor *x, const llmk_tensor *w, llmk_mat *mx,
                            llmk_mat *mw) {
  llmk_status s;
  if ((s = llmk_tensor_as_rows(x, fn, "x", mx))) return s;
  if (mx->dtype != in)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "x: expected dtype %s, got %s", llmk_dtype_name(in),
                          llmk_dtype_name(mx->dtype));
  if ((s = llmk_tensor_as_rows(w, fn, "w", mw))) return s;
  if (w->ndim != 2)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "w: expected 2 dims [N, K], got %d", (int)w->ndim);
  if (mw->dtype != in)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "w: expected dtype %s, got %s", llmk_dtype_name(in),
                          llmk_dtype_name(mw->dtype));
  if (mw->cols != mx->cols)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "w: K = %lld (shape[1]) differs from x's K = %lld (its last dim)",
                          (long long)mw->cols, (long long)mx->cols);
  return LLMK_SUCCESS;
}

/* bias and y [..., N] bf16 (after the inputs and any scales). Fills *my. */
llmk_status llmk_gemm_check_bias_y(const char *fn, const llmk_tensor *x, int64_t N, const llmk_tensor *bias,
                                   const llmk_tensor *y, llmk_mat *my) {
  llmk_status s;
  if ((s = check_bias(fn, bias, N))) return s;
  if ((s = llmk_tensor_as_rows(y, fn, "y", my))) return s;
  if (my->dtype != LLMK_BF16)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "y: expected dtype bf16, got %s",
                          llmk_dtype_name(my->dtype));
  return check_y_shape(fn, y, x, N);
}

llmk_status llmk_gemm_check_no_overlap(const char *fn, const llmk_mat *my, const llmk_byte_range *in, int n) {
  uintptr_t ylo, yhi;
  llmk_mat_extent(my, &ylo, &yhi);
  for (int i = 0; i < n; i++)
    if (llmk_ranges_overlap(ylo, yhi, in[i].lo, in[i].hi))
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                            "y: overlaps %s (the output must not overlap any input)", in[i].name);
  return LLMK_SUCCESS;
}

llmk_status llmk_gemm_check_cuda(llmk_handle h, const char *fn, const llmk_mat *mx, const llmk_mat *mw,
                              const llmk_mat *my, const void *const *ptrs, const char *const *names, int n) {
  llmk_status s;
  if ((s = check_cuda_layout(fn, mx, mw, my))) return s;
  if ((s = llmk_check_backend_ptrs(h, fn, ptrs, names, n))) return s;
  if (!h->workspace)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "handle: it has no GEMM workspace (re-allocating its own failed); "
                          "give it one with llmk_set_workspace");
  return LLMK_SUCCESS;
}

static void plan_operands(llmk_gemm_plan *p, const llmk_mat *mx, const llmk_mat *mw, const llmk_mat *my,
                          const llmk_tensor *bias) {
  p->M = mx->rows, p->N = mw->rows, p->K = mx->cols;
  p->in_dtype = mx->dtype;
  p->x = mx->data, p->ldx = mx->ld;
  p->w = mw->data, p->ldw = mw->ld;
  p->bias = bias ? bias->data : NULL;
  p->bias_dtype = bias ? bias->dtype : LLMK_F32;
  p->y = (uint16_t *)my->data, p->ldy = my->ld;
}

/* The caller's descriptor, of any size it may have: x_planes came later,
 * so one that ends before it has one plane. */
static llmk_status read_gemm_desc(const llmk_gemm_desc *desc, llmk_gemm_desc *dc, const char *fn) {
  return LLMK_READ_SIZED(desc, dc, LLMK_GEMM_DESC_SIZE, LLMK_SIZE_THROUGH(llmk_gemm_desc, backend), fn, "desc",
                         LLMK_GEMM_DESC_INIT);
}

llmk_status llmk_gemm_fp8(llmk_handle h, const llmk_gemm_desc *desc, const llmk_tensor *x,
                          const llmk_tensor *w, const llmk_tensor *x_scale,
                          const llmk_tensor *w_scale, const llmk_tensor *bias,
                          const llmk_tensor *y, void *stream) {
  llmk_status s = llmk_check_handle(h, FN);
  if (s) return s;
  llmk_gemm_desc dc;
  if ((s = read_gemm_desc(desc, &dc, FN))) return s;
  desc = &dc;
  if ((s = check_desc(FN, desc))) return s;
  const llmk_scaling sc = desc->scaling;
  llmk_mat mx, mw, my;
  if ((s = check_xw(FN, LLMK_E4M3, x, w, &mx, &mw))) return s;
  const int64_t M = mx.rows, N = mw.rows;

  llmk_byte_range in[5] = {{"x", 0, 0}, {"w", 0, 0}, {"x_scale", 0, 0}, {"w_scale", 0, 0}, {"bias", 0, 0}};
  llmk_gemm_plan p;
  memset(&p, 0, sizeof p);
  p.x_bm = 1;
  if (sc == LLMK_SCALING_BLOCK) {
    /* [M or ceil(M/128), KB] and [ceil(N/128), KB], either layout */
    const int64_t kb = (mx.cols + 127) / 128, mb = (M + 127) / 128, nb = (N + 127) / 128;
    int64_t xrows, wrows;
    if ((s = check_block_scale(x_scale, "x_scale", M, mb, kb, &xrows, &p.xs_rs, &p.xs_ks, &in[2].lo, &in[2].hi)))
      return s;
    if ((s = check_block_scale(w_scale, "w_scale", nb, nb, kb, &wrows, &p.ws_rs, &p.ws_ks, &in[3].lo, &in[3].hi)))
      return s;
    p.x_bm = xrows == M ? 1 : 128;
  } else {
    /* Scales: f32, contiguous. */
    if ((s = check_x_scale(sc, x_scale, x, M))) return s;
    int64_t wdims[1] = {sc == LLMK_SCALING_TENSOR ? 1 : N};
    if ((s = llmk_tensor_expect(w_scale, FN, "w_scale", LLMK_F32, 1, wdims))) return s;
    const int64_t nxs = sc == LLMK_SCALING_TENSOR ? 1 : M, nws = sc == LLMK_SCALING_TENSOR ? 1 : N;
    vec_extent(x_scale->data, nxs, sizeof(float), &in[2].lo, &in[2].hi);
    vec_extent(w_scale->data, nws, sizeof(float), &in[3].lo, &in[3].hi);
  }
  if (desc->x_planes == 2) {
    if ((s = check_planes_shapes(x, y, N))) return s;
    if ((s = check_bias(FN, bias, N))) return s;
    if ((s = llmk_tensor_as_rows(y, FN, "y", &my))) return s;
    if (my.dtype != LLMK_BF16)
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "y: expected dtype bf16, got %s", llmk_dtype_name(my.dtype));
  } else if ((s = llmk_gemm_check_bias_y(FN, x, mw.rows, bias, y, &my))) {
    return s;
  }
  llmk_mat_extent(&mx, &in[0].lo, &in[0].hi);
  llmk_mat_extent(&mw, &in[1].lo, &in[1].hi);
  if (bias) vec_extent(bias->data, N, llmk_dtype_size(bias->dtype), &in[4].lo, &in[4].hi);
  if ((s = llmk_gemm_check_no_overlap(FN, &my, in, 5))) return s;

  if (h->backend == LLMK_BACKEND_CUDA) {
    const void *ptrs[] = {mx.data, mw.data, x_scale->data, w_scale->data, bias ? bias->data : NULL, my.data};
    const char *names[] = {"x.data", "w.data", "x_scale.data", "w_scale.data", "bias.data", "y.data"};
    if ((s = llmk_gemm_check_cuda(h, FN, &mx, &mw, &my, ptrs, names, 6))) return s;
  }

  plan_operands(&p, &mx, &mw, &my, bias);
  p.scaling = sc;
  /* DEFAULT is fast accumulation for tensor- and row-wise scaling, fp32 for block (docs/DESIGN.md). */
  p.fast_accum = sc != LLMK_SCALING_BLOCK && desc->accum != LLMK_ACCUM_FP32;
  p.backend = desc->backend;
  p.xs = (const float *)x_scale->data;
  p.ws = (const float *)w_scale->data;
  p.x_planes = desc->x_planes == 2 ? 2 : 1;
  if (p.x_planes == 2) p.M = M / 2; /* output rows; x holds 2 plane rows each */
  if (M == 0 || N == 0) return LLMK_SUCCESS; /* nothing to write; K == 0 goes on (y = bias) */
  if (h->backend == LLMK_BACKEND_CPU) return llmk_cpu_gemm_fp8(&p);
  return llmk_cuda_gemm_fp8(h, &p, stream);
}

llmk_status llmk_gemm_bf16(llmk_handle h, llmk_gemm_backend backend, const llmk_tensor *x, const llmk_tensor *w,
                           const llmk_tensor *bias, const llmk_tensor *y, void *stream) {
  static const char fn[] = "llmk_gemm_bf16";
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  if (backend != LLMK_GEMM_AUTO && backend != LLMK_GEMM_OWN && backend != LLMK_GEMM_CUBLASLT)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "backend has invalid value %d", (int)backend);
  llmk_mat mx, mw, my;
  if ((s = check_xw(fn, LLMK_BF16, x, w, &mx, &mw))) return s;
  if ((s = llmk_gemm_check_bias_y(fn, x, mw.rows, bias, y, &my))) return s;
  llmk_byte_range in[3] = {{"x", 0, 0}, {"w", 0, 0}, {"bias", 0, 0}};
  llmk_mat_extent(&mx, &in[0].lo, &in[0].hi);
  llmk_mat_extent(&mw, &in[1].lo, &in[1].hi);
  if (bias) vec_extent(bias->data, mw.rows, llmk_dtype_size(bias->dtype), &in[2].lo, &in[2].hi);
  if ((s = llmk_gemm_check_no_overlap(fn, &my, in, 3))) return s;
  if (h->backend == LLMK_BACKEND_CUDA) {
    const void *ptrs[] = {mx.data, mw.data, bias ? bias->data : NULL, my.data};
    const char *names[] = {"x.data", "w.data", "bias.data", "y.data"};
    if ((s = llmk_gemm_check_cuda(h, fn, &mx, &mw, &my, ptrs, names, 4))) return s;
  }
  llmk_gemm_plan p;
  memset(&p, 0, sizeof p);
  plan_operands(&p, &mx, &mw, &my, bias);
  p.scaling = LLMK_SCALING_TENSOR; /* unused: no scales */
  p.fast_accum = 0;
  p.backend = backend;
  p.xs = p.ws = NULL;
  if (p.M == 0 || p.N == 0) return LLMK_SUCCESS;
  if (h->backend == LLMK_BACKEND_CPU) return llmk_cpu_gemm_bf16(&p);
  return llmk_cuda_gemm_bf16(h, &p, stream);
}

/* ---- The dispatcher, to callers: configurations, routes, overrides -------- */

int llmk_gemm_config_count(void) { return llmk_cuda_gemm_config_count(); }

static llmk_status no_configs(const char *fn) {
  return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn,
                        "this llmk was built without CUDA: it has no own GEMM configurations");
}

llmk_status llmk_gemm_config_get(int index, llmk_gemm_config *out) {
  static const char fn[] = "llmk_gemm_config_get";
  llmk_status s = llmk_sized_write(out, NULL, LLMK_GEMM_CONFIG_SIZE, LLMK_GEMM_CONFIG_SIZE, fn, "out",
                                   "LLMK_GEMM_CONFIG_INIT");
  if (s) return s;
  const int n = llmk_cuda_gemm_config_count();
  if (n == 0) return no_configs(fn);
  if (index < 0 || index >= n)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "index = %d is outside 0 .. %d (llmk_gemm_config_count() - 1)",
                          index, n - 1);
  const llmk_gemm_config c = llmk_cuda_gemm_config_get(index);
  return llmk_sized_write(out, &c, LLMK_GEMM_CONFIG_SIZE, LLMK_GEMM_CONFIG_SIZE, fn, "out", "LLMK_GEMM_CONFIG_INIT");
}

llmk_status llmk_gemm_config_find(const char *name, int *index) {
  static const char fn[] = "llmk_gemm_config_find";
  if (!name || !index) return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "%s is NULL", name ? "index" : "name");
  const int n = llmk_cuda_gemm_config_count();
  if (n == 0) return no_configs(fn);
  for (int i = 0; i < n; i++)
    if (!strcmp(llmk_cuda_gemm_config_get(i).name, name)) {
      *index = i;
      return LLMK_SUCCESS;
    }
  return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "no own GEMM configuration is named \"%.64s\"", name);
}

llmk_status llmk_gemm_choice(llmk_handle h, const llmk_gemm_desc *desc, llmk_dtype in_dtype, int64_t M, int64_t N,
                             int64_t K, llmk_gemm_route *out) {
  static const char fn[] = "llmk_gemm_choice";
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  llmk_gemm_desc dc;
  if ((s = read_gemm_desc(desc, &dc, fn))) return s;
  if ((s = llmk_sized_write(out, NULL, LLMK_GEMM_ROUTE_SIZE, LLMK_GEMM_ROUTE_SIZE, fn, "out", "LLMK_GEMM_ROUTE_INIT")))
    return s;
  if (in_dtype != LLMK_E4M3 && in_dtype != LLMK_BF16)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "in_dtype must be e4m3 (llmk_gemm_fp8) or bf16 "
                          "(llmk_gemm_bf16), got %s", llmk_dtype_name(in_dtype));
  if (in_dtype == LLMK_E4M3) {
    if ((s = check_desc(fn, &dc))) return s;
  } else if (dc.backend != LLMK_GEMM_AUTO && dc.backend != LLMK_GEMM_OWN && dc.backend != LLMK_GEMM_CUBLASLT) {
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "desc->backend has invalid value %d", (int)dc.backend);
  }
  if (M < 0 || N < 0 || K < 0)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "M, N and K must be >= 0, got %lld, %lld, %lld",
                          (long long)M, (long long)N, (long long)K);
  if (h->backend != LLMK_BACKEND_CUDA)
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn,
                          "the handle runs the CPU reference, which has no GEMM dispatcher (use a CUDA handle)");
  if ((s = llmk_check_backend_ptrs(h, fn, NULL, NULL, 0))) return s;
  /* the plan llmk_gemm_fp8 / llmk_gemm_bf16 would build, less its pointers */
  llmk_gemm_plan p;
  memset(&p, 0, sizeof p);
  p.in_dtype = in_dtype;
  p.M = M, p.N = N, p.K = K;
  p.backend = dc.backend;
  p.x_bm = 1;
  p.x_planes = 1;
  p.bias_dtype = LLMK_F32;
  if (in_dtype == LLMK_E4M3) {
    p.scaling = dc.scaling;
    p.fast_accum = dc.scaling != LLMK_SCALING_BLOCK && dc.accum != LLMK_ACCUM_FP32;
    p.x_planes = dc.x_planes == 2 ? 2 : 1;
  } else {
    p.scaling = LLMK_SCALING_TENSOR; /* unused: no scales */
  }
  llmk_gemm_route r = LLMK_GEMM_ROUTE_INIT;
  llmk_cuda_gemm_route(h, &p, &r);
  return llmk_sized_write(out, &r, LLMK_GEMM_ROUTE_SIZE, LLMK_GEMM_ROUTE_SIZE, fn, "out", "LLMK_GEMM_ROUTE_INIT");
}

llmk_status llmk_set_gemm_override(llmk_handle h, const llmk_gemm_override *o) {
  static const char fn[] = "llmk_set_gemm_override";
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  llmk_gemm_override v = LLMK_GEMM_OVERRIDE_INIT;
  if (o && (s = LLMK_READ_SIZED(o, &v, LLMK_GEMM_OVERRIDE_SIZE, LLMK_GEMM_OVERRIDE_SIZE, fn, "o",
                                LLMK_GEMM_OVERRIDE_INIT)))
    return s;
  const int n = llmk_cuda_gemm_config_count();
  if (v.backend != LLMK_GEMM_AUTO && v.backend != LLMK_GEMM_OWN && v.backend != LLMK_GEMM_CUBLASLT)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "o->backend has invalid value %d", (int)v.backend);
  if (v.config < -1 || v.config >= n) {
    if (n == 0 && v.config >= 0) return no_configs(fn);
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "o->config = %d: expected -1 (none) or a configuration index 0 .. %d", (int)v.config, n - 1);
  }
  if (v.splits < 0 || v.splits > LLMK_GEMM_MAX_SPLITS)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "o->splits = %d: expected 0 (none) or 1 .. %d",
                          (int)v.splits, LLMK_GEMM_MAX_SPLITS);
  if (v.lt_algo < -1 || v.lt_algo >= LLMK_GEMM_LT_ALGOS)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "o->lt_algo = %d: expected -1 (none) or 0 .. %d",
                          (int)v.lt_algo, LLMK_GEMM_LT_ALGOS - 1);
  h->gemm_override = v;
  return LLMK_SUCCESS;
}

llmk_status llmk_set_gemm_tuning(llmk_handle h, llmk_gemm_tuning mode) {
  static const char fn[] = "llmk_set_gemm_tuning";
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  if (mode != LLMK_GEMM_TUNE_ENV && mode != LLMK_GEMM_TUNE_OFF && mode != LLMK_GEMM_TUNE_ON)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "mode = %d: expected LLMK_GEMM_TUNE_ENV (-1), _OFF (0) or _ON (1)",
                          (int)mode);
  if (h->backend != LLMK_BACKEND_CUDA)
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn, "a CPU handle has no GEMM dispatcher to tune");
  h->gemm_tuning = mode;
  return LLMK_SUCCESS;
}
