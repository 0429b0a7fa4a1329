/* llmk_rmsnorm / llmk_silu_mul_quant: argument checks, then dispatch to the
 * CPU reference or the CUDA kernels. Nothing is written when a check fails;
 * empty calls launch nothing. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/attn_check.h"
#include "core/norm.h"

#define INV LLMK_ERR_INVALID_ARGUMENT

/* "[4, 4096]" for the first ndim entries of shape (ndim clamped to 0..4). */
static const char *shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
  size_t len = 0;
  if (ndim < 0) ndim = 0;
  if (ndim > LLMK_MAX_DIMS) ndim = LLMK_MAX_DIMS;
  len += (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < ndim && len < n; i++)
    len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (len < n) snprintf(buf + len, n - len, "]");
  return buf;
}

/* t must have exactly the shape dims[0..ndim) (a message with both shapes
 * otherwise). A NULL t passes: the caller's next check names it. */
static llmk_status expect_shape(const llmk_tensor *t, const char *fn, const char *name, int ndim,
                                const int64_t *dims) {
  if (!t || t->ndim < 1 || t->ndim > LLMK_MAX_DIMS) return LLMK_SUCCESS;
  int same = t->ndim == ndim;
  for (int i = 0; same && i < ndim; i++) same = t->shape[i] == dims[i];
  if (same) return LLMK_SUCCESS;
  char want[128], got[128];
  return llmk_set_error(INV, fn, "%s: expected shape %s, got %s", name,
                        shape_str(want, sizeof want, ndim, dims),
                        shape_str(got, sizeof got, t->ndim, t->shape));
}

/* A bf16 (or `dt2` when >= 0) row view of t with the shape of `ref`. */
static llmk_status rows_like(const llmk_tensor *t, const char *fn, const char *name,
                             const llmk_tensor *ref, int dt2, llmk_mat *m) {
  llmk_status s = llmk_tensor_as_rows(t, fn, name, m);
  if (s) return s;
  if (m->dtype != LLMK_BF16 && (dt2 < 0 || m->dtype != (llmk_dtype)dt2)) {
    if (dt2 >= 0)
      return llmk_set_error(INV, fn, "%s: expected dtype bf16 or %s, got %s", name,
                            llmk_dtype_name((llmk_dtype)dt2), llmk_dtype_name(m->dtype));
    return llmk_set_error(INV, fn, "%s: expected dtype bf16, got %s", name, llmk_dtype_name(m->dtype));
  }
  return ref ? expect_shape(t, fn, name, ref->ndim, ref->shape) : LLMK_SUCCESS;
}

llmk_status llmk_rmsnorm(llmk_handle h, const llmk_rmsnorm_desc *desc, const llmk_tensor *x,
                         const llmk_tensor *residual, const llmk_tensor *weight,
                         const llmk_tensor *y, const llmk_tensor *y_scale,
                         const llmk_tensor *residual_out, void *stream) {
  static const char fn[] = "llmk_rmsnorm";
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  /* fp8_planes came later: a descriptor that ends before it has one plane */
  llmk_rmsnorm_desc dc;
  if ((s = LLMK_READ_SIZED(desc, &dc, LLMK_RMSNORM_DESC_SIZE, LLMK_SIZE_THROUGH(llmk_rmsnorm_desc, eps), fn, "desc",
                           LLMK_RMSNORM_DESC_INIT)))
    return s;
  desc = &dc;
  if (!(desc->eps > 0.0f) || !isfinite(desc->eps))
    return llmk_set_error(INV, fn, "desc->eps must be positive and finite, got %g", (double)desc->eps);
  llmk_rmsnorm_plan p;
  memset(&p, 0, sizeof p);
  p.eps = desc->eps;
  if ((s = rows_like(x, fn, "x", NULL, -1, &p.x))) return s;
  p.M = p.x.rows;
  p.K = p.x.cols;
  if (residual) {
    if ((s = rows_like(residual, fn, "residual", x, -1, &p.residual))) return s;
    if (!residual_out)
      return llmk_set_error(INV, fn, "residual_out is NULL, but a residual is given (s = x + residual must be written)");
    if ((s = rows_like(residual_out, fn, "residual_out", x, -1, &p.residual_out))) return s;
  } else if (residual_out) {
    return llmk_set_error(INV, fn, "residual_out must be NULL when residual is NULL");
  }
  if (!weight) return llmk_set_error(INV, fn, "weight is NULL");
  if ((s = expect_shape(weight, fn, "weight", 1, &p.K))) return s;
  if ((s = llmk_tensor_expect(weight, fn, "weight", LLMK_BF16, 1, &p.K))) return s;
  p.weight = (const uint16_t *)weight->data;
  if (desc->fp8_planes < 0 || desc->fp8_planes > 2)
    return llmk_set_error(INV, fn, "desc->fp8_planes must be 0, 1 or 2, got %d", desc->fp8_planes);
  p.planes = desc->fp8_planes == 2 ? 2 : 1;
  if (p.planes == 2) {
    /* y is [..., 2, K]: x's leading dims, then the two planes */
    if (x->ndim >= LLMK_MAX_DIMS)
      return llmk_set_error(INV, fn, "x: two planes add a dim to y; x may have at most %d dims", LLMK_MAX_DIMS - 1);
    int64_t yd[LLMK_MAX_DIMS];
    for (int i = 0; i + 1 < x->ndim; i++) yd[i] = x->shape[i];
    yd[x->ndim - 1] = 2;
    yd[x->ndim] = p.K;
    if ((s = llmk_tensor_as_rows(y, fn, "y", &p.y))) return s;
    if (p.y.dtype != LLMK_E4M3)
      return llmk_set_error(INV, fn, "y: two planes (desc->fp8_planes = 2) need an e4m3 y, got %s",
                            llmk_dtype_name(p.y.dtype));
    if ((s = expect_shape(y, fn, "y", x->ndim + 1, yd))) return s;
  } else if ((s = rows_like(y, fn, "y", x, (int)LLMK_E4M3, &p.y))) {
    return s;
  }
  const int fp8 = p.y.dtype == LLMK_E4M3;
  const int64_t nscale = p.M * p.planes;
  if (fp8) {
    if (!y_scale)
      return llmk_set_error(INV, fn, "y_scale is NULL, but y is e4m3 (it needs one f32 scale per row)");
    if ((s = expect_shape(y_scale, fn, "y_scale", 1, &nscale))) return s;
    if ((s = llmk_tensor_expect(y_scale, fn, "y_scale", LLMK_F32, 1, &nscale))) return s;
    p.y_scale = (float *)y_scale->data;
  } else if (y_scale) {
    return llmk_set_error(INV, fn, "y_scale must be NULL when y is bf16");
  }

  /* residual_out = residual (same pointer and row stride) updates in place;
   * every other overlap with a written argument is refused. */
  const int in_place = residual && p.residual_out.data == p.residual.data &&
                       (p.residual_out.ld == p.residual.ld || p.M <= 1);
  llmk_range r[6];
  int n = 0;
  r[n++] = llmk_range_of_mat(&p.x, "x", 0);
  r[n++] = llmk_range_of_bytes(p.weight, (size_t)p.K * 2, "weight", 0);
  r[n++] = llmk_range_of_mat(&p.y, "y", 1);
  if (fp8) r[n++] = llmk_range_of_bytes(p.y_scale, (size_t)nscale * 4, "y_scale", 1);
  if (residual) {
    r[n++] = llmk_range_of_mat(&p.residual_out, "residual_out", 1);
    if (!in_place) r[n++] = llmk_range_of_mat(&p.residual, "residual", 0);
  }
  if ((s = llmk_attn_check_overlaps(fn, r, n))) return s;
  const void *ptrs[] = {p.x.data, p.residual.data, p.weight, p.y.data, p.y_scale, p.residual_out.data};
  const char *names[] = {"x.data", "residual.data", "weight.data", "y.data", "y_scale.data", "residual_out.data"};
  if ((s = llmk_check_backend_ptrs(h, fn, ptrs, names, 6))) return s;
  if (p.M == 0 || (p.K == 0 && !fp8)) return LLMK_SUCCESS; /* nothing to write */
  if (h->backend == LLMK_BACKEND_CPU) return llmk_cpu_rmsnorm(&p);
  return llmk_cuda_rmsnorm(h, &p, stream);
}

llmk_status llmk_silu_mul_quant(llmk_handle h, const llmk_quantize_desc *desc, const llmk_tensor *gate,
                                const llmk_tensor *up, const llmk_tensor *xq,
                                const llmk_tensor *scale, void *stream) {
  static const char fn[] = "llmk_silu_mul_quant";
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  llmk_silu_plan p;
  memset(&p, 0, sizeof p);
  if ((s = rows_like(gate, fn, "gate", NULL, -1, &p.gate))) return s;
  if ((s = rows_like(up, fn, "up", gate, -1, &p.up))) return s;
  if ((s = llmk_tensor_as_rows(xq, fn, "xq", &p.xq))) return s;
  if (p.xq.dtype != LLMK_E4M3 && p.xq.dtype != LLMK_BF16)
    return llmk_set_error(INV, fn, "xq: expected dtype e4m3 or bf16, got %s", llmk_dtype_name(p.xq.dtype));
  if ((s = expect_shape(xq, fn, "xq", gate->ndim, gate->shape))) return s;
  p.M = p.gate.rows;
  p.F = p.gate.cols;
  if (p.xq.dtype == LLMK_BF16) {
    /* the unquantized activation: no scales */
    if (scale) return llmk_set_error(INV, fn, "scale must be NULL when xq is bf16 (nothing is quantized)");
    p.gk = p.F > 0 ? p.F : 1;
    p.nseg = 1;
    llmk_range r[3];
    r[0] = llmk_range_of_mat(&p.gate, "gate", 0);
    r[1] = llmk_range_of_mat(&p.up, "up", 0);
    r[2] = llmk_range_of_mat(&p.xq, "xq", 1);
    if ((s = llmk_attn_check_overlaps(fn, r, 3))) return s;
    const void *ptrs[] = {p.gate.data, p.up.data, p.xq.data};
    const char *names[] = {"gate.data", "up.data", "xq.data"};
    if ((s = llmk_check_backend_ptrs(h, fn, ptrs, names, 3))) return s;
    if (p.M == 0 || p.F == 0) return LLMK_SUCCESS;
    if (h->backend == LLMK_BACKEND_CPU) return llmk_cpu_silu_mul_quant(&p);
    return llmk_cuda_silu_mul_quant(h, &p, stream);
  }
  llmk_quantize_desc dc;
  if ((s = LLMK_READ_SIZED(desc, &dc, LLMK_QUANTIZE_DESC_SIZE, LLMK_QUANTIZE_DESC_SIZE, fn, "desc",
                           LLMK_QUANTIZE_DESC_INIT)))
    return s;
  desc = &dc;
  switch (desc->scaling) {
    case LLMK_SCALING_ROW:
      p.gk = p.F > 0 ? p.F : 1;
      p.nseg = 1;
      break;
    case LLMK_SCALING_BLOCK:
      if (desc->block_m != 1 || desc->block_k != 128)
        return llmk_set_error(INV, fn,
                              "desc: block scaling must be 1 x 128 (block_m = 1, block_k = 128), got %lld x %lld",
                              (long long)desc->block_m, (long long)desc->block_k);
      p.gk = 128;
      p.nseg = (p.F + 127) / 128;
      break;
    case LLMK_SCALING_TENSOR:
    case LLMK_SCALING_COL:
      return llmk_set_error(INV, fn,
                            "desc->scaling: only row scaling and 1 x 128 block scaling are supported, got %s",
                            llmk_scaling_name(desc->scaling));
    default:
      return llmk_set_error(INV, fn, "desc->scaling has invalid value %d", (int)desc->scaling);
  }
  if (desc->num_rows)
    return llmk_set_error(INV, fn, "desc->num_rows must be NULL (it applies to tensor scaling only)");
  if ((uintptr_t)desc->scale_ub % sizeof(float))
    return llmk_set_error(INV, fn, "desc->scale_ub = %p is not aligned to 4 bytes", (const void *)desc->scale_ub);
  p.scale_ub = desc->scale_ub;
  int64_t sdims[2] = {p.M, p.nseg};
  const int snd = desc->scaling == LLMK_SCALING_BLOCK ? 2 : 1;
  if ((s = expect_shape(scale, fn, "scale", snd, sdims))) return s;
  if ((s = llmk_tensor_expect(scale, fn, "scale", LLMK_F32, snd, sdims))) return s;
  p.scale = (float *)scale->data;

  llmk_range r[5];
  r[0] = llmk_range_of_mat(&p.gate, "gate", 0);
  r[1] = llmk_range_of_mat(&p.up, "up", 0);
  r[2] = llmk_range_of_mat(&p.xq, "xq", 1);
  r[3] = llmk_range_of_bytes(p.scale, (size_t)(p.M * p.nseg) * 4, "scale", 1);
  r[4] = llmk_range_of_bytes(p.scale_ub, 4, "desc->scale_ub", 0);
  if ((s = llmk_attn_check_overlaps(fn, r, 5))) return s;
  const void *ptrs[] = {p.gate.data, p.up.data, p.xq.data, p.scale, p.scale_ub};
  const char *names[] = {"gate.data", "up.data", "xq.data", "scale.data", "desc->scale_ub"};
  if ((s = llmk_check_backend_ptrs(h, fn, ptrs, names, 5))) return s;
  if (p.M == 0 || p.nseg == 0) return LLMK_SUCCESS; /* nothing to write */
  if (h->backend == LLMK_BACKEND_CPU) return llmk_cpu_silu_mul_quant(&p);
  return llmk_cuda_silu_mul_quant(h, &p, stream);
}
