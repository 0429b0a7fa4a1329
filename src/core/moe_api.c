/* llmk_moe_route / _permute / _gather_quant / _combine: argument checks,
 * then dispatch to the CPU reference or the CUDA kernels. Every rule of
 * llmk.h's "Mixture of experts" section that the host can see is checked
 * here, before anything is written; ids, sizes and rows are device data
 * and are never read on the host for a CUDA handle. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/attn_check.h"
#include "core/moe.h"

#define INV LLMK_ERR_INVALID_ARGUMENT

/* A contiguous int32 or f32 [d0, d1] tensor (d1 < 0: [d0]). */
static llmk_status expect_vec(const llmk_tensor *t, const char *fn, const char *name, llmk_dtype dt, int64_t d0,
                              int64_t d1) {
  const int64_t dims[2] = {d0, d1};
  return llmk_tensor_expect(t, fn, name, dt, d1 < 0 ? 1 : 2, dims);
}

/* An [n, H] row view of dtype dt with n rows (n < 0: any). */
static llmk_status expect_rows(const llmk_tensor *t, const char *fn, const char *name, llmk_dtype dt, int64_t n,
                               llmk_mat *m) {
  if (!t) return llmk_set_error(INV, fn, "%s is NULL", name);
  if (t->ndim != 2) return llmk_set_error(INV, fn, "%s: expected 2 dims, got %d", name, (int)t->ndim);
  llmk_status s = llmk_tensor_as_rows(t, fn, name, m);
  if (s) return s;
  if (m->dtype != dt)
    return llmk_set_error(INV, fn, "%s: expected dtype %s, got %s", name, llmk_dtype_name(dt),
                          llmk_dtype_name(m->dtype));
  if (n >= 0 && m->rows != n)
    return llmk_set_error(INV, fn, "%s: expected %lld rows, got %lld", name, (long long)n, (long long)m->rows);
  return LLMK_SUCCESS;
}

static llmk_status check_k(const char *fn, int64_t k) {
  if (k < 1 || k > LLMK_MOE_MAX_K)
    return llmk_set_error(INV, fn, "k = %lld: picks per token must be 1 .. %d", (long long)k, LLMK_MOE_MAX_K);
  return LLMK_SUCCESS;
}

/* llmk_moe_route's checks of everything the host can see, into *pp. */
static llmk_status route_plan(const char *fn, const llmk_moe_route_desc *desc, const llmk_tensor *logits,
                              const llmk_tensor *bias, const llmk_tensor *ids, const llmk_tensor *weights,
                              llmk_moe_route_plan *pp) {
  llmk_moe_route_desc d;
  llmk_status s;
  if ((s = LLMK_READ_SIZED(desc, &d, LLMK_MOE_ROUTE_DESC_SIZE, LLMK_MOE_ROUTE_DESC_SIZE, fn, "desc",
                           LLMK_MOE_ROUTE_DESC_INIT)))
    return s;
  llmk_moe_route_plan p;
  memset(&p, 0, sizeof p);
  *pp = p;
  if (!logits) return llmk_set_error(INV, fn, "logits is NULL");
  if (logits->ndim != 2) return llmk_set_error(INV, fn, "logits: expected [T, E], got %d dims", (int)logits->ndim);
  if ((s = llmk_tensor_as_rows(logits, fn, "logits", &p.logits))) return s;
  if (p.logits.dtype != LLMK_F32 && p.logits.dtype != LLMK_BF16)
    return llmk_set_error(INV, fn, "logits: expected dtype f32 or bf16, got %s", llmk_dtype_name(p.logits.dtype));
  p.T = p.logits.rows, p.E = p.logits.cols;
  if (p.E < 1 || p.E > LLMK_MOE_MAX_E)
    return llmk_set_error(INV, fn, "logits: E = %lld experts, expected 1 .. %d", (long long)p.E, LLMK_MOE_MAX_E);
  if (d.router < LLMK_MOE_SOFTMAX_TOPK || d.router > LLMK_MOE_DEEPSEEK)
    return llmk_set_error(INV, fn, "desc->router has invalid value %d", (int)d.router);
  if ((s = check_k(fn, d.k))) return s;
  if (d.k > p.E)
    return llmk_set_error(INV, fn, "desc->k = %d exceeds the E = %lld experts", d.k, (long long)p.E);
  if (d.renormalize != 0 && d.renormalize != 1)
    return llmk_set_error(INV, fn, "desc->renormalize must be 0 or 1, got %d", d.renormalize);
  if (!isfinite(d.scaling)) return llmk_set_error(INV, fn, "desc->scaling must be finite, got %g", (double)d.scaling);
  const int ds = d.router == LLMK_MOE_DEEPSEEK;
  if (ds) {
    if (d.n_group < 1 || p.E % d.n_group)
      return llmk_set_error(INV, fn, "desc->n_group = %d must divide E = %lld", d.n_group, (long long)p.E);
    if (d.topk_group < 1 || d.topk_group > d.n_group)
      return llmk_set_error(INV, fn, "desc->topk_group = %d must be 1 .. n_group = %d", d.topk_group, d.n_group);
    if ((int64_t)d.topk_group * (p.E / d.n_group) < d.k)
      return llmk_set_error(INV, fn, "desc->k = %d exceeds the %lld experts of topk_group = %d groups", d.k,
                            (long long)(d.topk_group * (p.E / d.n_group)), d.topk_group);
    if (!bias) return llmk_set_error(INV, fn, "bias is NULL (the DEEPSEEK router needs its [E] correction bias)");
    if ((s = expect_vec(bias, fn, "bias", LLMK_F32, p.E, -1))) return s;
    p.bias = (const float *)bias->data;
  } else if (bias) {
    return llmk_set_error(INV, fn, "bias must be NULL: only the DEEPSEEK router takes one");
  }
  if ((s = expect_vec(ids, fn, "ids", LLMK_I32, p.T, d.k))) return s;
  if ((s = expect_vec(weights, fn, "weights", LLMK_F32, p.T, d.k))) return s;
  p.router = d.router, p.k = d.k, p.renormalize = d.renormalize;
  p.n_group = ds ? d.n_group : 1, p.topk_group = ds ? d.topk_group : 1;
  p.scaling = d.scaling;
  p.ids = (int32_t *)ids->data, p.weights = (float *)weights->data;
  llmk_range r[4];
  r[0] = llmk_range_of_mat(&p.logits, "logits", 0);
  r[1] = llmk_range_of_bytes(p.bias, (size_t)p.E * 4, "bias", 0);
  r[2] = llmk_range_of_bytes(p.ids, (size_t)(p.T * p.k) * 4, "ids", 1);
  r[3] = llmk_range_of_bytes(p.weights, (size_t)(p.T * p.k) * 4, "weights", 1);
  if ((s = llmk_attn_check_overlaps(fn, r, 4))) return s;
  *pp = p;
  return LLMK_SUCCESS;
}

llmk_status llmk_moe_route(llmk_handle h, const llmk_moe_route_desc *desc, const llmk_tensor *logits,
                           const llmk_tensor *bias, const llmk_tensor *ids, const llmk_tensor *weights,
                           void *stream) {
  static const char fn[] = "llmk_moe_route";
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  llmk_moe_route_plan p;
  if ((s = route_plan(fn, desc, logits, bias, ids, weights, &p))) return s;
  const void *ptrs[] = {p.logits.data, p.bias, p.ids, p.weights};
  const char *names[] = {"logits.data", "bias.data", "ids.data", "weights.data"};
  if ((s = llmk_check_backend_ptrs(h, fn, ptrs, names, 4))) return s;
  if (p.T == 0) return LLMK_SUCCESS;
  if (h->backend == LLMK_BACKEND_CPU) return llmk_cpu_moe_route(&p);
  return llmk_cuda_moe_route(h, &p, stream);
}

/* llmk_moe_permute's checks of everything the host can see, into *pp. */
static llmk_status permute_plan(const char *fn, const llmk_moe_permute_desc *desc, const llmk_tensor *ids,
                                const llmk_tensor *sizes, const llmk_tensor *offsets, const llmk_tensor *row_of,
                                const llmk_tensor *src_of, llmk_moe_permute_plan *pp) {
  llmk_status s;
  llmk_moe_permute_desc d;
  if ((s = LLMK_READ_SIZED(desc, &d, LLMK_MOE_PERMUTE_DESC_SIZE, LLMK_MOE_PERMUTE_DESC_SIZE, fn, "desc",
                           LLMK_MOE_PERMUTE_DESC_INIT)))
    return s;
  if (d.layout != LLMK_GROUP_STACKED && d.layout != LLMK_GROUP_MASKED)
    return llmk_set_error(INV, fn, "desc->layout has invalid value %d", (int)d.layout);
  llmk_moe_permute_plan p;
  memset(&p, 0, sizeof p);
  *pp = p;
  if (!ids) return llmk_set_error(INV, fn, "ids is NULL");
  if (ids->ndim != 2) return llmk_set_error(INV, fn, "ids: expected [T, k], got %d dims", (int)ids->ndim);
  p.T = ids->shape[0];
  if ((s = check_k(fn, ids->shape[1]))) return s;
  p.k = (int)ids->shape[1];
  if ((s = expect_vec(ids, fn, "ids", LLMK_I32, p.T, p.k))) return s;
  if (!sizes) return llmk_set_error(INV, fn, "sizes is NULL");
  if (sizes->ndim != 1) return llmk_set_error(INV, fn, "sizes: expected [G], got %d dims", (int)sizes->ndim);
  p.G = sizes->shape[0];
  if (p.G < 1 || p.G > LLMK_MOE_MAX_G)
    return llmk_set_error(INV, fn, "sizes: G = %lld local experts, expected 1 .. %d", (long long)p.G, LLMK_MOE_MAX_G);
  if ((s = expect_vec(sizes, fn, "sizes", LLMK_I32, p.G, -1))) return s;
  const int stacked = d.layout == LLMK_GROUP_STACKED;
  if (!stacked && d.m_max < 1)
    return llmk_set_error(INV, fn, "desc->m_max = %lld: the masked layout needs at least one row per group",
                          (long long)d.m_max);
  p.R = stacked ? p.T * p.k : p.G * d.m_max;
  if (p.T * p.k > INT32_MAX || p.R > INT32_MAX || (!stacked && d.m_max > INT32_MAX))
    return llmk_set_error(INV, fn, "%lld picks into %lld rows: both must stay below 2^31", (long long)(p.T * p.k),
                          (long long)p.R);
  if (offsets && (s = expect_vec(offsets, fn, "offsets", LLMK_I32, p.G + 1, -1))) return s;
  if ((s = expect_vec(row_of, fn, "row_of", LLMK_I32, p.T, p.k))) return s;
  if ((s = expect_vec(src_of, fn, "src_of", LLMK_I32, p.R, -1))) return s;
  p.layout = d.layout, p.expert_begin = d.expert_begin, p.m_max = stacked ? 0 : d.m_max;
  p.ids = (const int32_t *)ids->data;
  p.sizes = (int32_t *)sizes->data;
  p.offsets = offsets ? (int32_t *)offsets->data : NULL;
  p.row_of = (int32_t *)row_of->data;
  p.src_of = (int32_t *)src_of->data;
  llmk_range r[5];
  r[0] = llmk_range_of_bytes(p.ids, (size_t)(p.T * p.k) * 4, "ids", 0);
  r[1] = llmk_range_of_bytes(p.sizes, (size_t)p.G * 4, "sizes", 1);
  r[2] = llmk_range_of_bytes(p.offsets, (size_t)(p.G + 1) * 4, "offsets", 1);
  r[3] = llmk_range_of_bytes(p.row_of, (size_t)(p.T * p.k) * 4, "row_of", 1);
  r[4] = llmk_range_of_bytes(p.src_of, (size_t)p.R * 4, "src_of", 1);
  if ((s = llmk_attn_check_overlaps(fn, r, 5))) return s;
  *pp = p;
  return LLMK_SUCCESS;
}

llmk_status llmk_moe_permute(llmk_handle h, const llmk_moe_permute_desc *desc, const llmk_tensor *ids,
                             const llmk_tensor *sizes, const llmk_tensor *offsets, const llmk_tensor *row_of,
                             const llmk_tensor *src_of, void *stream) {
  static const char fn[] = "llmk_moe_permute";
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  llmk_moe_permute_plan p;
  if ((s = permute_plan(fn, desc, ids, sizes, offsets, row_of, src_of, &p))) return s;
  const void *ptrs[] = {p.ids, p.sizes, p.offsets, p.row_of, p.src_of};
  const char *names[] = {"ids.data", "sizes.data", "offsets.data", "row_of.data", "src_of.data"};
  if ((s = llmk_check_backend_ptrs(h, fn, ptrs, names, 5))) return s;
  if (h->backend == LLMK_BACKEND_CPU) return llmk_cpu_moe_permute(&p);
  return llmk_cuda_moe_permute(h, &p, stream);
}

llmk_status llmk_moe_route_permute(llmk_handle h, const llmk_moe_route_desc *route,
                                   const llmk_moe_permute_desc *permute, const llmk_tensor *logits,
                                   const llmk_tensor *bias, const llmk_tensor *ids, const llmk_tensor *weights,
                                   const llmk_tensor *sizes, const llmk_tensor *offsets, const llmk_tensor *row_of,
                                   const llmk_tensor *src_of, void *stream) {
  static const char fn[] = "llmk_moe_route_permute";
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  llmk_moe_route_plan rp;
  llmk_moe_permute_plan pp;
  if ((s = route_plan(fn, route, logits, bias, ids, weights, &rp))) return s;
  if ((s = permute_plan(fn, permute, ids, sizes, offsets, row_of, src_of, &pp))) return s;
  /* the route's inputs and outputs against the permutation's outputs */
  llmk_range r[8];
  r[0] = llmk_range_of_mat(&rp.logits, "logits", 0);
  r[1] = llmk_range_of_bytes(rp.bias, (size_t)rp.E * 4, "bias", 0);
  r[2] = llmk_range_of_bytes(rp.ids, (size_t)(rp.T * rp.k) * 4, "ids", 1);
  r[3] = llmk_range_of_bytes(rp.weights, (size_t)(rp.T * rp.k) * 4, "weights", 1);
  r[4] = llmk_range_of_bytes(pp.sizes, (size_t)pp.G * 4, "sizes", 1);
  r[5] = llmk_range_of_bytes(pp.offsets, (size_t)(pp.G + 1) * 4, "offsets", 1);
  r[6] = llmk_range_of_bytes(pp.row_of, (size_t)(pp.T * pp.k) * 4, "row_of", 1);
  r[7] = llmk_range_of_bytes(pp.src_of, (size_t)pp.R * 4, "src_of", 1);
  if ((s = llmk_attn_check_overlaps(fn, r, 8))) return s;
  const void *ptrs[] = {rp.logits.data, rp.bias, rp.ids, rp.weights, pp.sizes, pp.offsets, pp.row_of, pp.src_of};
  const char *names[] = {"logits.data", "bias.data", "ids.data", "weights.data",
                         "sizes.data", "offsets.data", "row_of.data", "src_of.data"};
  if ((s = llmk_check_backend_ptrs(h, fn, ptrs, names, 8))) return s;
  if (h->backend == LLMK_BACKEND_CPU) {
    if (rp.T > 0 && (s = llmk_cpu_moe_route(&rp))) return s;
    return llmk_cpu_moe_permute(&pp);
  }
  return llmk_cuda_moe_route_permute(h, &rp, &pp, stream);
}

llmk_status llmk_moe_gather_quant(llmk_handle h, const llmk_quantize_desc *desc, const llmk_tensor *x,
                                  const llmk_tensor *src_of, int32_t k, const llmk_tensor *xq,
                                  const llmk_tensor *scale, void *stream) {
  static const char fn[] = "llmk_moe_gather_quant";
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  llmk_moe_gather_plan p;
  memset(&p, 0, sizeof p);
  if ((s = check_k(fn, k))) return s;
  p.k = k;
  if ((s = expect_rows(x, fn, "x", LLMK_BF16, -1, &p.x))) return s;
  p.T = p.x.rows, p.H = p.x.cols;
  if (p.T * p.k > INT32_MAX)
    return llmk_set_error(INV, fn, "x: %lld tokens x k = %d picks exceed 2^31 - 1", (long long)p.T, k);
  if (!src_of) return llmk_set_error(INV, fn, "src_of is NULL");
  if (src_of->ndim != 1) return llmk_set_error(INV, fn, "src_of: expected [R], got %d dims", (int)src_of->ndim);
  p.R = src_of->shape[0];
  if ((s = expect_vec(src_of, fn, "src_of", LLMK_I32, p.R, -1))) return s;
  p.src_of = (const int32_t *)src_of->data;
  if (!xq) return llmk_set_error(INV, fn, "xq is NULL");
  const llmk_dtype qdt = xq->dtype;
  if (qdt != LLMK_E4M3 && qdt != LLMK_BF16)
    return llmk_set_error(INV, fn, "xq: expected dtype e4m3 or bf16, got %s", llmk_dtype_name(qdt));
  if ((s = expect_rows(xq, fn, "xq", qdt, p.R, &p.xq))) return s;
  if (p.xq.cols != p.H)
    return llmk_set_error(INV, fn, "xq: %lld columns, expected H = %lld (x's)", (long long)p.xq.cols,
                          (long long)p.H);
  if (qdt == LLMK_BF16) {
    if (scale) return llmk_set_error(INV, fn, "scale must be NULL when xq is bf16 (nothing is quantized)");
    p.gk = p.H > 0 ? p.H : 1, p.nseg = 1;
  } else {
    llmk_quantize_desc dc;
    if ((s = LLMK_READ_SIZED(desc, &dc, LLMK_QUANTIZE_DESC_SIZE, LLMK_QUANTIZE_DESC_SIZE, fn, "desc",
                             LLMK_QUANTIZE_DESC_INIT)))
      return s;
    if (dc.scaling == LLMK_SCALING_ROW) {
      p.gk = p.H > 0 ? p.H : 1, p.nseg = 1;
    } else if (dc.scaling == LLMK_SCALING_BLOCK && dc.block_m == 1 && dc.block_k == 128) {
      p.gk = 128, p.nseg = (p.H + 127) / 128;
    } else {
      return llmk_set_error(INV, fn, "desc: expected row scaling or 1 x 128 blocks, got %s (%lld x %lld)",
                            llmk_scaling_name(dc.scaling), (long long)dc.block_m, (long long)dc.block_k);
    }
    if (dc.num_rows) return llmk_set_error(INV, fn, "desc->num_rows must be NULL");
    p.scale_ub = dc.scale_ub;
    if (!scale) return llmk_set_error(INV, fn, "scale is NULL, but xq is e4m3");
    if ((s = expect_vec(scale, fn, "scale", LLMK_F32, p.R, dc.scaling == LLMK_SCALING_ROW ? -1 : p.nseg))) return s;
    p.scale = (float *)scale->data;
  }
  llmk_range r[5];
  r[0] = llmk_range_of_mat(&p.x, "x", 0);
  r[1] = llmk_range_of_bytes(p.src_of, (size_t)p.R * 4, "src_of", 0);
  r[2] = llmk_range_of_mat(&p.xq, "xq", 1);
  r[3] = llmk_range_of_bytes(p.scale, (size_t)(p.R * p.nseg) * 4, "scale", 1);
  r[4] = llmk_range_of_bytes(p.scale_ub, 4, "scale_ub", 0);
  if ((s = llmk_attn_check_overlaps(fn, r, 5))) return s;
  const void *ptrs[] = {p.x.data, p.src_of, p.xq.data, p.scale, p.scale_ub};
  const char *names[] = {"x.data", "src_of.data", "xq.data", "scale.data", "desc->scale_ub"};
  if ((s = llmk_check_backend_ptrs(h, fn, ptrs, names, 5))) return s;
  if (p.R == 0 || p.H == 0) return LLMK_SUCCESS;
  if (h->backend == LLMK_BACKEND_CPU) return llmk_cpu_moe_gather_quant(&p);
  return llmk_cuda_moe_gather_quant(h, &p, stream);
}

llmk_status llmk_moe_combine(llmk_handle h, const llmk_tensor *y, const llmk_tensor *row_of,
                             const llmk_tensor *weights, const llmk_tensor *add, const llmk_tensor *out,
                             void *stream) {
  static const char fn[] = "llmk_moe_combine";
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  llmk_moe_combine_plan p;
  memset(&p, 0, sizeof p);
  if ((s = expect_rows(y, fn, "y", LLMK_BF16, -1, &p.y))) return s;
  p.R = p.y.rows, p.H = p.y.cols;
  if (!row_of) return llmk_set_error(INV, fn, "row_of is NULL");
  if (row_of->ndim != 2) return llmk_set_error(INV, fn, "row_of: expected [T, k], got %d dims", (int)row_of->ndim);
  p.T = row_of->shape[0];
  if ((s = check_k(fn, row_of->shape[1]))) return s;
  p.k = (int)row_of->shape[1];
  if ((s = expect_vec(row_of, fn, "row_of", LLMK_I32, p.T, p.k))) return s;
  if ((s = expect_vec(weights, fn, "weights", LLMK_F32, p.T, p.k))) return s;
  if ((s = expect_rows(out, fn, "out", LLMK_BF16, p.T, &p.out))) return s;
  if (p.out.cols != p.H)
    return llmk_set_error(INV, fn, "out: %lld columns, expected H = %lld (y's)", (long long)p.out.cols,
                          (long long)p.H);
  if (add) {
    if ((s = expect_rows(add, fn, "add", LLMK_BF16, p.T, &p.add))) return s;
    if (p.add.cols != p.H)
      return llmk_set_error(INV, fn, "add: %lld columns, expected H = %lld (y's)", (long long)p.add.cols,
                            (long long)p.H);
  }
  p.row_of = (const int32_t *)row_of->data, p.weights = (const float *)weights->data;
  /* out = add (same data and row stride) updates in place */
  const int in_place = add && p.add.data == p.out.data && (p.add.ld == p.out.ld || p.T <= 1);
  llmk_range r[5];
  int n = 0;
  r[n++] = llmk_range_of_mat(&p.y, "y", 0);
  r[n++] = llmk_range_of_bytes(p.row_of, (size_t)(p.T * p.k) * 4, "row_of", 0);
  r[n++] = llmk_range_of_bytes(p.weights, (size_t)(p.T * p.k) * 4, "weights", 0);
  r[n++] = llmk_range_of_mat(&p.out, "out", 1);
  if (add && !in_place) r[n++] = llmk_range_of_mat(&p.add, "add", 0);
  if ((s = llmk_attn_check_overlaps(fn, r, n))) return s;
  const void *ptrs[] = {p.y.data, p.row_of, p.weights, p.add.data, p.out.data};
  const char *names[] = {"y.data", "row_of.data", "weights.data", "add.data", "out.data"};
  if ((s = llmk_check_backend_ptrs(h, fn, ptrs, names, 5))) return s;
  if (p.T == 0 || p.H == 0) return LLMK_SUCCESS;
  if (h->backend == LLMK_BACKEND_CPU) return llmk_cpu_moe_combine(&p);
  return llmk_cuda_moe_combine(h, &p, stream);
}
