/* llmk_rope, llmk_kv_cache_write, llmk_rope_qkv_write and
 * llmk_kv_cache_dequantize: argument checks (src/core/attn_check.c), then
 * the plans of src/core/attn.h go to the CPU reference or to CUDA. Nothing
 * is written when a check fails; empty calls launch nothing. */
#include <stdint.h>
#include <string.h>

#include "core/attn_check.h"

#define INV LLMK_ERR_INVALID_ARGUMENT

/* The cache ranges a write call touches: storage written, parameters
 * written (FP8, INT4) or read (FP8_TENSOR), block table read. */
static void mark_cache_written(const llmk_kv_plan *c, llmk_range *cr) {
  cr[LLMK_CR_K].written = cr[LLMK_CR_V].written = 1;
  cr[LLMK_CR_KP].written = cr[LLMK_CR_VP].written =
      c->format == LLMK_KV_FP8 || c->format == LLMK_KV_INT4;
}

/* The cache's pointers for llmk_check_backend_ptrs: k, v, params, table. */
static int cache_ptrs(const llmk_kv_plan *c, const void **ptrs, const char **names) {
  ptrs[0] = c->k, names[0] = "cache->k.data";
  ptrs[1] = c->v, names[1] = "cache->v.data";
  ptrs[2] = c->k_param, names[2] = "cache->k_param.data";
  ptrs[3] = c->v_param, names[3] = "cache->v_param.data";
  ptrs[4] = c->block_table, names[4] = "cache->block_table.data";
  return 5;
}

llmk_status llmk_rope(llmk_handle h, const llmk_rope_desc *desc, const llmk_tensor *x,
                      const llmk_tensor *positions, const llmk_tensor *y, void *stream) {
  static const char fn[] = "llmk_rope";
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  if (!desc) return llmk_set_error(INV, fn, "desc is NULL");
  llmk_heads hx, hy;
  llmk_range r[3];
  if ((s = llmk_attn_check_heads(x, fn, "x", -1, -1, -1, -1, &hx, &r[0]))) return s;
  if (hx.dtype != LLMK_F32 && hx.dtype != LLMK_BF16)
    return llmk_set_error(INV, fn, "x: expected dtype f32 or bf16, got %s", llmk_dtype_name(hx.dtype));
  if (!llmk_attn_head_dim_ok(hx.D))
    return llmk_set_error(INV, fn, "x: head dim D = shape[2] = %lld must be 64, 128 or 256",
                          (long long)hx.D);
  llmk_rope_plan rp;
  if ((s = llmk_attn_make_rope(desc, fn, hx.D, &rp))) return s;
  if ((s = llmk_attn_check_vec(positions, fn, "positions", LLMK_I32, hx.T, &r[1]))) return s;
  if ((s = llmk_attn_check_heads(y, fn, "y", (int)hx.dtype, hx.T, hx.H, hx.D, &hy, &r[2]))) return s;
  r[2].written = 1;
  /* y = x (same pointer and row stride) rotates in place; any other overlap is refused */
  const int in_place = hy.data == hx.data && (hy.ld == hx.ld || hx.T <= 1);
  if ((s = llmk_attn_check_overlaps(fn, in_place ? r + 1 : r, in_place ? 2 : 3))) return s;
  const void *ptrs[] = {hx.data, positions->data, hy.data};
  const char *names[] = {"x.data", "positions.data", "y.data"};
  if ((s = llmk_check_backend_ptrs(h, fn, ptrs, names, 3))) return s;
  if (hx.T == 0 || hx.H == 0) return LLMK_SUCCESS;
  const int32_t *pos = (const int32_t *)positions->data;
  if (h->backend == LLMK_BACKEND_CPU) return llmk_cpu_rope(&rp, &hx, pos, &hy);
  return llmk_cuda_rope(h, &rp, &hx, pos, &hy, stream);
}

llmk_status llmk_kv_cache_write(llmk_handle h, const llmk_kv_cache *cache, const llmk_tensor *k,
                                const llmk_tensor *v, const llmk_kv_loc *loc, void *stream) {
  static const char fn[] = "llmk_kv_cache_write";
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  llmk_kv_plan c;
  llmk_range r[LLMK_CR_N + 4];
  if ((s = llmk_attn_check_cache(cache, fn, &c, r))) return s;
  llmk_qkv_plan q;
  memset(&q, 0, sizeof q);
  llmk_range *rk = &r[LLMK_CR_N], *rv = &r[LLMK_CR_N + 1];
  if ((s = llmk_attn_check_heads(k, fn, "k", LLMK_BF16, -1, c.hkv, c.d, &q.k, rk))) return s;
  if ((s = llmk_attn_check_heads(v, fn, "v", LLMK_BF16, q.k.T, c.hkv, c.d, &q.v, rv))) return s;
  llmk_loc_plan lp;
  if ((s = llmk_attn_check_loc(loc, fn, q.k.T, &lp, &r[LLMK_CR_N + 2]))) return s;
  if ((s = llmk_attn_check_batch(&c, fn, lp.B))) return s;
  mark_cache_written(&c, r);
  if ((s = llmk_attn_check_overlaps(fn, r, LLMK_CR_N + 4))) return s;
  const void *ptrs[9];
  const char *names[9];
  int n = cache_ptrs(&c, ptrs, names);
  ptrs[n] = q.k.data, names[n++] = "k.data";
  ptrs[n] = q.v.data, names[n++] = "v.data";
  ptrs[n] = lp.offsets, names[n++] = "loc->offsets.data";
  ptrs[n] = lp.start_pos, names[n++] = "loc->start_pos.data";
  if ((s = llmk_check_backend_ptrs(h, fn, ptrs, names, n))) return s;
  if (lp.T == 0) return LLMK_SUCCESS;
  llmk_rope_plan rp;
  memset(&rp, 0, sizeof rp); /* no rotation */
  if (h->backend == LLMK_BACKEND_CPU) return llmk_cpu_qkv_write(&rp, &q, &c, &lp);
  return llmk_cuda_qkv_write(h, &rp, &q, &c, &lp, stream);
}

llmk_status llmk_rope_qkv_write(llmk_handle h, const llmk_rope_desc *rope, const llmk_tensor *qkv,
                                int64_t num_q_heads, const llmk_kv_cache *cache,
                                const llmk_kv_loc *loc, const llmk_tensor *q_out, void *stream) {
  static const char fn[] = "llmk_rope_qkv_write";
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  llmk_kv_plan c;
  llmk_range r[LLMK_CR_N + 4];
  if ((s = llmk_attn_check_cache(cache, fn, &c, r))) return s;
  if (num_q_heads < 1 || num_q_heads % c.hkv || num_q_heads > (INT64_C(1) << 24))
    return llmk_set_error(INV, fn,
                          "num_q_heads = %lld: expected a positive multiple of the cache's Hkv = %lld "
                          "(at most 2^24)",
                          (long long)num_q_heads, (long long)c.hkv);
  const int64_t hq = num_q_heads, D = c.d, width = (hq + 2 * c.hkv) * D;
  llmk_rope_plan rp;
  memset(&rp, 0, sizeof rp);
  if (rope && (s = llmk_attn_make_rope(rope, fn, D, &rp))) return s;
  /* qkv: a bf16 [T, (Hq + 2 Hkv) D] matrix, viewed as three head ranges */
  llmk_mat m;
  if (!qkv) return llmk_set_error(INV, fn, "qkv is NULL");
  if ((s = llmk_tensor_as_rows(qkv, fn, "qkv", &m))) return s;
  if (m.dtype != LLMK_BF16)
    return llmk_set_error(INV, fn, "qkv: expected dtype bf16, got %s", llmk_dtype_name(m.dtype));
  if (qkv->ndim != 2)
    return llmk_set_error(INV, fn, "qkv: expected 2 dims [T, (Hq + 2 Hkv) D], got %d", (int)qkv->ndim);
  if (m.cols != width)
    return llmk_set_error(INV, fn,
                          "qkv: shape[1] = %lld, expected (Hq + 2 Hkv) D = (%lld + 2 x %lld) x %lld = %lld",
                          (long long)m.cols, (long long)hq, (long long)c.hkv, (long long)D,
                          (long long)width);
  llmk_qkv_plan q;
  memset(&q, 0, sizeof q);
  const llmk_heads base = {m.data, LLMK_BF16, m.rows, 0, D, m.ld};
  q.q_in = q.k = q.v = base;
  q.q_in.H = hq;
  q.k.H = q.v.H = c.hkv;
  q.k.data = (uint16_t *)m.data + hq * D;
  q.v.data = (uint16_t *)m.data + (hq + c.hkv) * D;
  llmk_mat_extent(&m, &r[LLMK_CR_N].lo, &r[LLMK_CR_N].hi);
  r[LLMK_CR_N].name = "qkv";
  r[LLMK_CR_N].written = 0;
  if ((s = llmk_attn_check_heads(q_out, fn, "q_out", LLMK_BF16, m.rows, hq, D, &q.q_out,
                                 &r[LLMK_CR_N + 1])))
    return s;
  r[LLMK_CR_N + 1].written = 1;
  llmk_loc_plan lp;
  if ((s = llmk_attn_check_loc(loc, fn, m.rows, &lp, &r[LLMK_CR_N + 2]))) return s;
  if ((s = llmk_attn_check_batch(&c, fn, lp.B))) return s;
  mark_cache_written(&c, r);
  if ((s = llmk_attn_check_overlaps(fn, r, LLMK_CR_N + 4))) return s;
  const void *ptrs[9];
  const char *names[9];
  int n = cache_ptrs(&c, ptrs, names);
  ptrs[n] = m.data, names[n++] = "qkv.data";
  ptrs[n] = q.q_out.data, names[n++] = "q_out.data";
  ptrs[n] = lp.offsets, names[n++] = "loc->offsets.data";
  ptrs[n] = lp.start_pos, names[n++] = "loc->start_pos.data";
  if ((s = llmk_check_backend_ptrs(h, fn, ptrs, names, n))) return s;
  if (lp.T == 0) return LLMK_SUCCESS;
  if (h->backend == LLMK_BACKEND_CPU) return llmk_cpu_qkv_write(&rp, &q, &c, &lp);
  return llmk_cuda_qkv_write(h, &rp, &q, &c, &lp, stream);
}

llmk_status llmk_kv_cache_dequantize(llmk_handle h, const llmk_kv_cache *cache,
                                     const llmk_tensor *k_out, const llmk_tensor *v_out,
                                     void *stream) {
  static const char fn[] = "llmk_kv_cache_dequantize";
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  llmk_kv_plan c;
  llmk_range r[LLMK_CR_N + 2];
  if ((s = llmk_attn_check_cache(cache, fn, &c, r))) return s;
  r[LLMK_CR_BT].hi = r[LLMK_CR_BT].lo; /* the block table is not read */
  const int64_t dims[4] = {c.S0, c.S1, c.hkv, c.d};
  const llmk_tensor *outs[2] = {k_out, v_out};
  static const char *const out_names[2] = {"k_out", "v_out"};
  for (int i = 0; i < 2; i++) {
    const llmk_tensor *t = outs[i];
    if (!t) return llmk_set_error(INV, fn, "%s is NULL", out_names[i]);
    if (t->dtype != LLMK_F32 && t->dtype != LLMK_BF16)
      return llmk_set_error(INV, fn, "%s: expected dtype f32 or bf16, got %s", out_names[i],
                            llmk_dtype_name(t->dtype));
    if (i == 1 && t->dtype != k_out->dtype)
      return llmk_set_error(INV, fn, "v_out: dtype %s differs from k_out's %s",
                            llmk_dtype_name(t->dtype), llmk_dtype_name(k_out->dtype));
    if (t->ndim != 4)
      return llmk_set_error(INV, fn, "%s: expected 4 dims [S0, S1, Hkv, D], got %d", out_names[i],
                            (int)t->ndim);
    if ((s = llmk_tensor_expect(t, fn, out_names[i], t->dtype, 4, dims))) return s;
    llmk_range *ro = &r[LLMK_CR_N + i];
    ro->name = out_names[i];
    ro->lo = ro->hi = (uintptr_t)t->data;
    ro->hi += (size_t)(c.S0 * c.S1 * c.hkv * c.d) * llmk_dtype_size(t->dtype);
    ro->written = 1;
  }
  if ((s = llmk_attn_check_overlaps(fn, r, LLMK_CR_N + 2))) return s;
  const void *ptrs[6];
  const char *names[6];
  int n = cache_ptrs(&c, ptrs, names) - 1; /* not the block table */
  ptrs[n] = k_out->data, names[n++] = "k_out.data";
  ptrs[n] = v_out->data, names[n++] = "v_out.data";
  if ((s = llmk_check_backend_ptrs(h, fn, ptrs, names, n))) return s;
  if (c.S0 * c.S1 == 0) return LLMK_SUCCESS;
  if (h->backend == LLMK_BACKEND_CPU) return llmk_cpu_kv_dequantize(&c, k_out->data, v_out->data, k_out->dtype);
  return llmk_cuda_kv_dequantize(h, &c, k_out->data, v_out->data, k_out->dtype, stream);
}
