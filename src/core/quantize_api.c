/* llmk_quantize_fp8 / llmk_dequantize_fp8: argument checks, then dispatch. */
#include <stdint.h>

#include "core/quant.h"

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Checks desc against an M x K input and fills the plan (everything but the
 * data pointers). `fp8` is the dtype of the FP8 side of the call. */
static llmk_status make_plan(const llmk_quantize_desc *d, const char *fn, const llmk_mat *m,
                             llmk_dtype fp8, llmk_qplan *p) {
  p->scaling = d->scaling;
  p->M = m->rows;
  p->K = m->cols;
  p->is_e5m2 = fp8 == LLMK_E5M2;
  p->scale_ub = d->scale_ub;
  p->num_rows = d->num_rows;
  int64_t M1 = m->rows > 0 ? m->rows : 1, K1 = m->cols > 0 ? m->cols : 1;
  switch (d->scaling) {
    case LLMK_SCALING_TENSOR: p->gm = M1; p->gk = K1; break;
    case LLMK_SCALING_ROW: p->gm = 1; p->gk = K1; break;
    case LLMK_SCALING_COL: p->gm = M1; p->gk = 1; break;
    case LLMK_SCALING_BLOCK:
      if (d->block_m < 1 || d->block_k < 1 || d->block_m > INT32_MAX || d->block_k > INT32_MAX)
        return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                              "block sizes must be in 1..2^31-1, got %lld x %lld",
                              (long long)d->block_m, (long long)d->block_k);
      p->gm = d->block_m;
      p->gk = d->block_k;
      break;
    default:
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "desc->scaling has invalid value %d",
                            (int)d->scaling);
  }
  if (fp8 == LLMK_E5M2 && d->scaling != LLMK_SCALING_TENSOR && d->scaling != LLMK_SCALING_ROW)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "e5m2 is supported with tensor and row scaling only, not %s",
                          llmk_scaling_name(d->scaling));
  if ((uintptr_t)d->scale_ub % sizeof(float))
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "desc->scale_ub = %p is not aligned to 4 bytes", (const void *)d->scale_ub);
  if ((uintptr_t)d->num_rows % sizeof(int64_t))
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "desc->num_rows = %p is not aligned to 8 bytes", (const void *)d->num_rows);
  if (d->num_rows && d->scaling != LLMK_SCALING_TENSOR)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "num_rows is only allowed with tensor scaling, not %s",
                          llmk_scaling_name(d->scaling));
  p->ngr = d->scaling == LLMK_SCALING_TENSOR ? 1 : ceil_div(m->rows, p->gm);
  p->ngc = d->scaling == LLMK_SCALING_TENSOR ? 1 : ceil_div(m->cols, p->gk);
  if (d->scaling == LLMK_SCALING_ROW) p->ngc = 1;
  if (d->scaling == LLMK_SCALING_COL) p->ngr = 1;
  return LLMK_SUCCESS;
}

static llmk_status check_scale(const llmk_qplan *p, const llmk_tensor *scale, const char *fn) {
  int64_t dims[2];
  switch (p->scaling) {
    case LLMK_SCALING_TENSOR: dims[0] = 1; break;
    case LLMK_SCALING_ROW: dims[0] = p->M; break;
    case LLMK_SCALING_COL: dims[0] = p->K; break;
    case LLMK_SCALING_BLOCK: dims[0] = p->ngr; dims[1] = p->ngc; break;
  }
  return llmk_tensor_expect(scale, fn, "scale", LLMK_F32,
                            p->scaling == LLMK_SCALING_BLOCK ? 2 : 1, dims);
}

static llmk_status check_same_shape(const llmk_tensor *a, const llmk_tensor *b, const char *fn,
                                    const char *an, const char *bn) {
  if (a->ndim != b->ndim)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "%s has %d dims but %s has %d", bn,
                          (int)b->ndim, an, (int)a->ndim);
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i])
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                            "%s.shape[%d] = %lld differs from %s.shape[%d] = %lld", bn, i,
                            (long long)b->shape[i], an, i, (long long)a->shape[i]);
  return LLMK_SUCCESS;
}

llmk_status llmk_quantize_fp8(llmk_handle h, const llmk_quantize_desc *desc, const llmk_tensor *x,
                              const llmk_tensor *xq, const llmk_tensor *scale, void *stream) {
  static const char fn[] = "llmk_quantize_fp8";
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  llmk_mat mx, mq;
  if ((s = llmk_tensor_as_rows(x, fn, "x", &mx))) return s;
  if (mx.dtype != LLMK_F32 && mx.dtype != LLMK_F16 && mx.dtype != LLMK_BF16)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "x: expected dtype f32, f16 or bf16, got %s",
                          llmk_dtype_name(mx.dtype));
  if ((s = llmk_tensor_as_rows(xq, fn, "xq", &mq))) return s;
  if (mq.dtype != LLMK_E4M3 && mq.dtype != LLMK_E5M2)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "xq: expected dtype e4m3 or e5m2, got %s",
                          llmk_dtype_name(mq.dtype));
  if ((s = check_same_shape(x, xq, fn, "x", "xq"))) return s;
  llmk_quantize_desc d;
  if ((s = LLMK_READ_SIZED(desc, &d, LLMK_QUANTIZE_DESC_SIZE, LLMK_QUANTIZE_DESC_SIZE, fn, "desc",
                           LLMK_QUANTIZE_DESC_INIT)))
    return s;
  llmk_qplan p;
  if ((s = make_plan(&d, fn, &mx, mq.dtype, &p))) return s;
  if ((s = check_scale(&p, scale, fn))) return s;
  uintptr_t xl, xh, ql, qh, sl, sh;
  llmk_mat_extent(&mx, &xl, &xh);
  llmk_mat_extent(&mq, &ql, &qh);
  sl = (uintptr_t)scale->data;
  sh = sl + (size_t)(p.ngr * p.ngc) * sizeof(float);
  if (llmk_ranges_overlap(xl, xh, ql, qh) || llmk_ranges_overlap(xl, xh, sl, sh) || llmk_ranges_overlap(ql, qh, sl, sh))
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "x, xq and scale must not overlap");
  /* The bounds are read while groups are written: one inside an output would
   * make the result depend on the order the groups are written in. */
  const struct {
    const void *p;
    size_t bytes;
    const char *name;
  } bounds[2] = {{d.scale_ub, sizeof(float), "desc->scale_ub"}, {d.num_rows, sizeof(int64_t), "desc->num_rows"}};
  for (int i = 0; i < 2; i++) {
    if (!bounds[i].p) continue;
    const uintptr_t bl = (uintptr_t)bounds[i].p, bh = bl + bounds[i].bytes;
    if (llmk_ranges_overlap(bl, bh, ql, qh) || llmk_ranges_overlap(bl, bh, sl, sh))
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "%s (%p) lies inside the output %s: it is read while the "
                            "outputs are written", bounds[i].name, bounds[i].p,
                            llmk_ranges_overlap(bl, bh, ql, qh) ? "xq" : "scale");
  }
  const void *ptrs[] = {mx.data, mq.data, scale->data, d.scale_ub, d.num_rows};
  const char *names[] = {"x.data", "xq.data", "scale.data", "desc->scale_ub", "desc->num_rows"};
  if ((s = llmk_check_backend_ptrs(h, fn, ptrs, names, 5))) return s;
  if (p.ngr * p.ngc == 0) return LLMK_SUCCESS; /* nothing to write */
  if (h->backend == LLMK_BACKEND_CPU) return llmk_cpu_quantize(&p, &mx, &mq, (float *)scale->data);
  return llmk_cuda_quantize(h, &p, &mx, &mq, (float *)scale->data, stream);
}

llmk_status llmk_dequantize_fp8(llmk_handle h, const llmk_quantize_desc *desc, const llmk_tensor *xq,
                                const llmk_tensor *scale, const llmk_tensor *y, void *stream) {
  static const char fn[] = "llmk_dequantize_fp8";
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  llmk_mat mq, my;
  if ((s = llmk_tensor_as_rows(xq, fn, "xq", &mq))) return s;
  if (mq.dtype != LLMK_E4M3 && mq.dtype != LLMK_E5M2)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "xq: expected dtype e4m3 or e5m2, got %s",
                          llmk_dtype_name(mq.dtype));
  if ((s = llmk_tensor_as_rows(y, fn, "y", &my))) return s;
  if (my.dtype != LLMK_F32 && my.dtype != LLMK_BF16)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "y: expected dtype f32 or bf16, got %s",
                          llmk_dtype_name(my.dtype));
  if ((s = check_same_shape(xq, y, fn, "xq", "y"))) return s;
  llmk_quantize_desc dd;
  if ((s = LLMK_READ_SIZED(desc, &dd, LLMK_QUANTIZE_DESC_SIZE, LLMK_QUANTIZE_DESC_SIZE, fn, "desc",
                           LLMK_QUANTIZE_DESC_INIT)))
    return s;
  /* scale_ub and num_rows play no part in dequantization */
  dd.scale_ub = NULL;
  dd.num_rows = NULL;
  llmk_qplan p;
  if ((s = make_plan(&dd, fn, &mq, mq.dtype, &p))) return s;
  if ((s = check_scale(&p, scale, fn))) return s;
  uintptr_t ql, qh, yl, yh, sl, sh;
  llmk_mat_extent(&mq, &ql, &qh);
  llmk_mat_extent(&my, &yl, &yh);
  sl = (uintptr_t)scale->data;
  sh = sl + (size_t)(p.ngr * p.ngc) * sizeof(float);
  if (llmk_ranges_overlap(yl, yh, ql, qh) || llmk_ranges_overlap(yl, yh, sl, sh))
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "y must not overlap xq or scale");
  const void *ptrs[] = {mq.data, scale->data, my.data};
  const char *names[] = {"xq.data", "scale.data", "y.data"};
  if ((s = llmk_check_backend_ptrs(h, fn, ptrs, names, 3))) return s;
  if (p.M == 0 || p.K == 0) return LLMK_SUCCESS;
  if (h->backend == LLMK_BACKEND_CPU) {
    llmk_cpu_dequantize(&p, &mq, (const float *)scale->data, &my);
    return LLMK_SUCCESS;
  }
  return llmk_cuda_dequantize(h, &p, &mq, (const float *)scale->data, &my, stream);
}
