/* llmk_gemm_grouped: argument checks, then dispatch to the CPU reference or
 * CUDA. Every rule of include/llmk.h's grouped GEMM section is checked
 * here, before anything is written; the group sizes themselves live in
 * the handle's memory and are never read on the host for a CUDA handle. */
#include <stdint.h>
#include <string.h>

#include "core/gemm.h"

static const char FN[] = "llmk_gemm_grouped";

static llmk_status check_desc(const llmk_grouped_gemm_desc *d, int fp8) {
  if (d->layout != LLMK_GROUP_STACKED && d->layout != LLMK_GROUP_MASKED)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "desc->layout has invalid value %d", (int)d->layout);
  if (d->backend == LLMK_GEMM_CUBLASLT)
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, FN,
                          "desc->backend = CUBLASLT: the grouped GEMM runs llmk's own kernels only (AUTO or OWN)");
  if (d->backend != LLMK_GEMM_AUTO && d->backend != LLMK_GEMM_OWN)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "desc->backend has invalid value %d", (int)d->backend);
  if (!fp8) return LLMK_SUCCESS; /* BF16: scaling and accum are ignored */
  if (d->scaling != LLMK_SCALING_TENSOR && d->scaling != LLMK_SCALING_ROW && d->scaling != LLMK_SCALING_BLOCK)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                          "desc->scaling = %s: the grouped GEMM takes tensor, row or block scaling",
                          llmk_scaling_name(d->scaling));
  if (d->accum != LLMK_ACCUM_DEFAULT && d->accum != LLMK_ACCUM_FAST && d->accum != LLMK_ACCUM_FP32)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "desc->accum has invalid value %d", (int)d->accum);
  if (d->scaling == LLMK_SCALING_BLOCK && d->accum == LLMK_ACCUM_FAST)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                          "desc->accum = FAST with block scaling: block scales are applied to each 128-deep partial "
                          "sum in fp32 (use DEFAULT or FP32)");
  return LLMK_SUCCESS;
}

/* t has exactly `ndim` dims; name it in the message. */
static llmk_status expect_ndim(const llmk_tensor *t, const char *name, int ndim, const char *shape) {
  if (!t) return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "%s is NULL", name);
  if (t->ndim != ndim)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "%s: expected %d dims %s, got %d", name, ndim, shape,
                          (int)t->ndim);
  return LLMK_SUCCESS;
}

/* A contiguous f32 tensor of exactly dims[0..nd), and its byte range. */
static llmk_status check_f32(const llmk_tensor *t, const char *name, int nd, const int64_t *dims,
                             llmk_byte_range *r) {
  llmk_status s = llmk_tensor_expect(t, FN, name, LLMK_F32, nd, dims);
  if (s) return s;
  int64_t n = 1;
  for (int i = 0; i < nd; i++) n *= dims[i];
  r->lo = r->hi = (uintptr_t)t->data;
  if (n > 0) r->hi += (size_t)n * sizeof(float);
  return LLMK_SUCCESS;
}

llmk_status llmk_gemm_grouped(llmk_handle h, const llmk_grouped_gemm_desc *desc, const llmk_tensor *x,
                              const llmk_tensor *w, const llmk_tensor *x_scale, const llmk_tensor *w_scale,
                              const llmk_tensor *bias, const llmk_tensor *sizes, const llmk_tensor *y,
                              void *stream) {
  llmk_status s = llmk_check_handle(h, FN);
  if (s) return s;
  llmk_grouped_gemm_desc d;
  if ((s = LLMK_READ_SIZED(desc, &d, LLMK_GROUPED_GEMM_DESC_SIZE, LLMK_GROUPED_GEMM_DESC_SIZE, FN, "desc",
                           LLMK_GROUPED_GEMM_DESC_INIT)))
    return s;
  if ((s = expect_ndim(w, "w", 3, "[G, N, K]"))) return s;
  if (w->dtype != LLMK_E4M3 && w->dtype != LLMK_BF16)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "w: expected dtype e4m3 or bf16, got %s",
                          llmk_dtype_name(w->dtype));
  const int fp8 = w->dtype == LLMK_E4M3;
  if ((s = check_desc(&d, fp8))) return s;
  const int stacked = d.layout == LLMK_GROUP_STACKED;
  const int64_t G = w->shape[0], N = w->shape[1], K = w->shape[2];

  llmk_mat mx, mw, my;
  if ((s = expect_ndim(x, "x", stacked ? 2 : 3, stacked ? "[T, K] (stacked)" : "[G, M_max, K] (masked)"))) return s;
  if ((s = llmk_tensor_as_rows(x, FN, "x", &mx))) return s;
  if ((s = llmk_tensor_as_rows(w, FN, "w", &mw))) return s;
  if (mx.dtype != mw.dtype)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "x: dtype %s differs from w's %s", llmk_dtype_name(mx.dtype),
                          llmk_dtype_name(mw.dtype));
  if (x->shape[x->ndim - 1] != K)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "x: K = %lld (last dim) differs from w's K = %lld",
                          (long long)x->shape[x->ndim - 1], (long long)K);
  if (!stacked && x->shape[0] != G)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "x: shape[0] = %lld, expected G = %lld (w.shape[0])",
                          (long long)x->shape[0], (long long)G);
  const int64_t m_max = stacked ? 0 : x->shape[1], rows = mx.rows; /* T, or G * M_max */

  if ((s = expect_ndim(y, "y", x->ndim, stacked ? "[T, N]" : "[G, M_max, N]"))) return s;
  for (int i = 0; i < x->ndim - 1; i++)
    if (y->shape[i] != x->shape[i])
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "y: shape[%d] = %lld differs from x.shape[%d] = %lld", i,
                            (long long)y->shape[i], i, (long long)x->shape[i]);
  if (y->shape[y->ndim - 1] != N)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "y: last dim %lld, expected N = %lld (w.shape[1])",
                          (long long)y->shape[y->ndim - 1], (long long)N);
  if ((s = llmk_tensor_as_rows(y, FN, "y", &my))) return s;
  if (my.dtype != LLMK_BF16)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "y: expected dtype bf16, got %s", llmk_dtype_name(my.dtype));

  const int64_t gdims[1] = {G};
  if ((s = llmk_tensor_expect(sizes, FN, "sizes", LLMK_I32, 1, gdims))) return s;

  llmk_byte_range in[6] = {{"x", 0, 0}, {"w", 0, 0}, {"x_scale", 0, 0}, {"w_scale", 0, 0}, {"bias", 0, 0},
                           {"sizes", 0, 0}};
  llmk_grouped_plan p;
  memset(&p, 0, sizeof p);
  llmk_gemm_plan *b = &p.base;
  b->x_bm = 1;
  if (fp8) {
    const int64_t kb = (K + 127) / 128, nb = (N + 127) / 128;
    if (!x_scale || !w_scale)
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "%s is NULL (FP8 operands need both scales)",
                            x_scale ? "w_scale" : "x_scale");
    if (d.scaling == LLMK_SCALING_TENSOR) {
      if ((s = check_f32(x_scale, "x_scale", 1, gdims, &in[2]))) return s;
      if ((s = check_f32(w_scale, "w_scale", 1, gdims, &in[3]))) return s;
    } else if (d.scaling == LLMK_SCALING_ROW) {
      const int64_t xd[2] = {stacked ? rows : G, m_max}, wd[2] = {G, N};
      if ((s = check_f32(x_scale, "x_scale", stacked ? 1 : 2, xd, &in[2]))) return s;
      if ((s = check_f32(w_scale, "w_scale", 2, wd, &in[3]))) return s;
    } else {
      const int64_t xd[3] = {stacked ? rows : G, stacked ? kb : m_max, kb}, wd[3] = {G, nb, kb};
      if ((s = check_f32(x_scale, "x_scale", stacked ? 2 : 3, xd, &in[2]))) return s;
      if ((s = check_f32(w_scale, "w_scale", 3, wd, &in[3]))) return s;
      b->xs_rs = kb, b->xs_ks = 1, b->ws_rs = kb, b->ws_ks = 1;
    }
    b->xs = (const float *)x_scale->data, b->ws = (const float *)w_scale->data;
  } else if (x_scale || w_scale) {
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "%s is given: BF16 operands take no scales (pass NULL)",
                          x_scale ? "x_scale" : "w_scale");
  }
  if (bias) {
    if (bias->dtype != LLMK_F32 && bias->dtype != LLMK_BF16)
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN, "bias: expected dtype f32 or bf16, got %s",
                            llmk_dtype_name(bias->dtype));
    const int64_t bd[2] = {G, N};
    if ((s = llmk_tensor_expect(bias, FN, "bias", bias->dtype, 2, bd))) return s;
    in[4].lo = in[4].hi = (uintptr_t)bias->data;
    if (G * N > 0) in[4].hi += (size_t)(G * N) * llmk_dtype_size(bias->dtype);
  }
  in[5].lo = in[5].hi = (uintptr_t)sizes->data;
  if (G > 0) in[5].hi += (size_t)G * sizeof(int32_t);
  llmk_mat_extent(&mx, &in[0].lo, &in[0].hi);
  llmk_mat_extent(&mw, &in[1].lo, &in[1].hi);
  if ((s = llmk_gemm_check_no_overlap(FN, &my, in, 6))) return s;
  if (h->backend == LLMK_BACKEND_CUDA) {
    if (N % 8)
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                            "w, y: N = %lld is not a multiple of 8 (required for CUDA handles)", (long long)N);
    const void *ptrs[] = {mx.data, mw.data, x_scale ? x_scale->data : NULL, w_scale ? w_scale->data : NULL,
                          bias ? bias->data : NULL, sizes->data, my.data};
    const char *names[] = {"x.data", "w.data", "x_scale.data", "w_scale.data", "bias.data", "sizes.data", "y.data"};
    if ((s = llmk_gemm_check_cuda(h, FN, &mx, &mw, &my, ptrs, names, 7))) return s;
  }

  b->scaling = fp8 ? d.scaling : LLMK_SCALING_TENSOR;
  b->fast_accum = fp8 && d.scaling != LLMK_SCALING_BLOCK && d.accum != LLMK_ACCUM_FP32;
  b->backend = d.backend;
  b->M = rows, b->N = N, b->K = K;
  b->in_dtype = mx.dtype;
  b->x = mx.data, b->ldx = mx.ld;
  b->w = mw.data, b->ldw = mw.ld;
  b->bias = bias ? bias->data : NULL;
  b->bias_dtype = bias ? bias->dtype : LLMK_F32;
  b->y = (uint16_t *)my.data, b->ldy = my.ld;
  b->x_planes = 1;
  p.layout = d.layout;
  p.G = G;
  p.m_max = m_max;
  p.sizes = (const int32_t *)sizes->data;
  if (G == 0 || rows == 0 || N == 0) return LLMK_SUCCESS; /* no group owns a row, or no columns */
  if (h->backend == LLMK_BACKEND_CPU) return llmk_cpu_gemm_grouped(&p);
  return llmk_cuda_gemm_grouped(h, &p, stream);
}
