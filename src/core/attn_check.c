/* Argument checks of the KV-cache, RoPE and decode-attention calls (see
 * src/core/attn_check.h). Nothing here reads the memory a tensor points to:
 * values that live in device memory (positions, offsets, page numbers,
 * lengths) are the backends' to check or to skip. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/attn_check.h"

#define INV LLMK_ERR_INVALID_ARGUMENT
#define MAX_EXTENT (INT64_C(1) << 48) /* as src/core/tensor.c */

llmk_status llmk_attn_check_overlaps(const char *fn, const llmk_range *r, int n) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
      if (i == j || !r[i].written || (r[j].written && j < i)) continue;
      if (llmk_ranges_overlap(r[i].lo, r[i].hi, r[j].lo, r[j].hi))
        return llmk_set_error(INV, fn, "%s overlaps %s (outputs must not overlap any other argument)",
                              r[i].name, r[j].name);
    }
  return LLMK_SUCCESS;
}

/* dtype, ndim, non-negative bounded sizes and strides, element alignment,
 * and a bounded element count. */
static llmk_status check_basic(const llmk_tensor *t, const char *fn, const char *name) {
  if (!t) return llmk_set_error(INV, fn, "%s is NULL", name);
  if (llmk_dtype_size(t->dtype) == 0)
    return llmk_set_error(INV, fn, "%s: invalid dtype value %d", name, (int)t->dtype);
  if (t->ndim < 1 || t->ndim > LLMK_MAX_DIMS)
    return llmk_set_error(INV, fn, "%s: ndim must be 1..%d, got %d", name, LLMK_MAX_DIMS,
                          (int)t->ndim);
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) {
    if (t->shape[i] < 0 || t->shape[i] > MAX_EXTENT)
      return llmk_set_error(INV, fn, "%s: shape[%d] = %lld is out of range", name, i,
                            (long long)t->shape[i]);
    if (t->strides[i] < 0 || t->strides[i] > MAX_EXTENT)
      return llmk_set_error(INV, fn,
                            "%s: strides[%d] = %lld is out of range (negative strides are not supported)",
                            name, i, (long long)t->strides[i]);
    /* the product of the non-zero sizes stays below 2^48 */
    if (t->shape[i] > 0) {
      if (n > MAX_EXTENT / t->shape[i])
        return llmk_set_error(INV, fn, "%s: too many elements (size overflow)", name);
      n *= t->shape[i];
    }
  }
  size_t es = llmk_dtype_size(t->dtype);
  if ((uintptr_t)t->data % es)
    return llmk_set_error(INV, fn, "%s.data = %p is not aligned to its %zu-byte %s element", name,
                          t->data, es, llmk_dtype_name(t->dtype));
  return LLMK_SUCCESS;
}

static llmk_status expect_dtype(const llmk_tensor *t, const char *fn, const char *name,
                                llmk_dtype dt) {
  if (t->dtype != dt)
    return llmk_set_error(INV, fn, "%s: expected dtype %s, got %s", name, llmk_dtype_name(dt),
                          llmk_dtype_name(t->dtype));
  return LLMK_SUCCESS;
}

static llmk_range make_range(const char *name, const void *p, int64_t elems, size_t es, int written) {
  llmk_range r = {name, (uintptr_t)p, (uintptr_t)p, written};
  if (p && elems > 0) r.hi += (size_t)elems * es;
  return r;
}

llmk_status llmk_attn_check_heads(const llmk_tensor *t, const char *fn, const char *name, int dt,
                                  int64_t T, int64_t H, int64_t D, llmk_heads *x, llmk_range *r) {
  llmk_status s = check_basic(t, fn, name);
  if (s) return s;
  if (dt >= 0 && (s = expect_dtype(t, fn, name, (llmk_dtype)dt))) return s;
  if (t->ndim != 3)
    return llmk_set_error(INV, fn, "%s: expected 3 dims [T, H, D], got %d", name, (int)t->ndim);
  const int64_t want[3] = {T, H, D};
  static const char *const dim_names[3] = {"T", "H", "D"};
  for (int i = 0; i < 3; i++)
    if (want[i] >= 0 && t->shape[i] != want[i])
      return llmk_set_error(INV, fn, "%s: expected shape[%d] (%s) = %lld, got %lld", name, i,
                            dim_names[i], (long long)want[i], (long long)t->shape[i]);
  const int64_t nt = t->shape[0], nh = t->shape[1], nd = t->shape[2];
  if (nd > 1 && t->strides[2] != 1)
    return llmk_set_error(INV, fn, "%s: the last dim must have stride 1, got %lld", name,
                          (long long)t->strides[2]);
  if (nh > 1 && t->strides[1] != nd)
    return llmk_set_error(INV, fn, "%s: heads must be packed: strides[1] = %lld, expected D = %lld",
                          name, (long long)t->strides[1], (long long)nd);
  if (nh > MAX_EXTENT / (nd > 0 ? nd : 1))
    return llmk_set_error(INV, fn, "%s: a row of %lld x %lld elements is too long", name,
                          (long long)nh, (long long)nd);
  const int64_t row = nh * nd;
  int64_t ld = row;
  if (nt > 1) {
    ld = t->strides[0];
    if (ld < row)
      return llmk_set_error(INV, fn, "%s: row stride %lld is smaller than the row length H D = %lld",
                            name, (long long)ld, (long long)row);
    if (row > 0 && nt - 1 > (MAX_EXTENT - row) / ld)
      return llmk_set_error(INV, fn, "%s: extent overflows", name);
  }
  const int64_t n = nt * row;
  if (!t->data && n > 0) return llmk_set_error(INV, fn, "%s.data is NULL", name);
  x->data = t->data;
  x->dtype = t->dtype;
  x->T = nt, x->H = nh, x->D = nd, x->ld = ld;
  if (r) *r = make_range(name, t->data, n > 0 ? (nt - 1) * ld + row : 0, llmk_dtype_size(t->dtype), 0);
  return LLMK_SUCCESS;
}

llmk_status llmk_attn_check_vec(const llmk_tensor *t, const char *fn, const char *name,
                                llmk_dtype dt, int64_t n, llmk_range *r) {
  llmk_status s = check_basic(t, fn, name);
  if (s) return s;
  int64_t dims[1] = {n};
  if ((s = llmk_tensor_expect(t, fn, name, dt, 1, dims))) return s;
  *r = make_range(name, t->data, n, llmk_dtype_size(dt), 0);
  return LLMK_SUCCESS;
}

static const char *format_name(llmk_kv_format f) {
  switch (f) {
    case LLMK_KV_BF16: return "BF16";
    case LLMK_KV_FP8: return "FP8";
    case LLMK_KV_FP8_TENSOR: return "FP8_TENSOR";
    case LLMK_KV_INT4: return "INT4";
  }
  return "invalid";
}

static llmk_status check_aligned16(const void *p, const char *fn, const char *name) {
  if ((uintptr_t)p % 16)
    return llmk_set_error(INV, fn, "%s.data = %p is not 16-byte aligned", name, p);
  return LLMK_SUCCESS;
}

/* A contiguous tensor of dtype dt with exactly the nd sizes dims. */
static llmk_status check_exact(const llmk_tensor *t, const char *fn, const char *name,
                               llmk_dtype dt, int nd, const int64_t *dims) {
  llmk_status s = check_basic(t, fn, name);
  if (s) return s;
  if ((s = expect_dtype(t, fn, name, dt))) return s;
  if (t->ndim != nd)
    return llmk_set_error(INV, fn, "%s: expected %d dims, got %d", name, nd, (int)t->ndim);
  return llmk_tensor_expect(t, fn, name, dt, nd, dims);
}

llmk_status llmk_attn_check_cache(const llmk_kv_cache *cache, const char *fn, llmk_kv_plan *p,
                                  llmk_range *r) {
  memset(p, 0, sizeof *p);
  llmk_kv_cache cc;
  llmk_status rs = LLMK_READ_SIZED(cache, &cc, LLMK_KV_CACHE_SIZE, LLMK_KV_CACHE_SIZE, fn, "cache", LLMK_KV_CACHE_INIT);
  if (rs) return rs;
  const llmk_kv_cache *c = &cc;
  llmk_dtype sdt;
  switch (c->format) {
    case LLMK_KV_BF16: sdt = LLMK_BF16; break;
    case LLMK_KV_FP8: case LLMK_KV_FP8_TENSOR: sdt = LLMK_E4M3; break;
    case LLMK_KV_INT4: sdt = LLMK_U8; break;
    default:
      return llmk_set_error(INV, fn, "cache->format has invalid value %d", (int)c->format);
  }
  const char *fmt = format_name(c->format);
  llmk_status s;
  /* storage: k, then v with the same shape */
  if ((s = check_basic(&c->k, fn, "cache->k"))) return s;
  if (c->k.dtype != sdt)
    return llmk_set_error(INV, fn, "cache->k: the %s format stores dtype %s, got %s", fmt,
                          llmk_dtype_name(sdt), llmk_dtype_name(c->k.dtype));
  if (c->k.ndim != 4)
    return llmk_set_error(INV, fn, "cache->k: expected 4 dims [S0, S1, Hkv, E], got %d",
                          (int)c->k.ndim);
  if ((s = llmk_tensor_expect(&c->k, fn, "cache->k", sdt, 4, c->k.shape))) return s;
  if ((s = check_basic(&c->v, fn, "cache->v"))) return s;
  if (c->v.dtype != sdt)
    return llmk_set_error(INV, fn, "cache->v: the %s format stores dtype %s, got %s", fmt,
                          llmk_dtype_name(sdt), llmk_dtype_name(c->v.dtype));
  if (c->v.ndim != 4)
    return llmk_set_error(INV, fn, "cache->v: expected 4 dims [S0, S1, Hkv, E], got %d",
                          (int)c->v.ndim);
  for (int i = 0; i < 4; i++)
    if (c->v.shape[i] != c->k.shape[i])
      return llmk_set_error(INV, fn, "cache->v: shape[%d] = %lld differs from cache->k.shape[%d] = %lld",
                            i, (long long)c->v.shape[i], i, (long long)c->k.shape[i]);
  if ((s = llmk_tensor_expect(&c->v, fn, "cache->v", sdt, 4, c->k.shape))) return s;
  const int64_t S0 = c->k.shape[0], S1 = c->k.shape[1], hkv = c->k.shape[2], E = c->k.shape[3];
  const int64_t D = c->format == LLMK_KV_INT4 ? 2 * E : E;
  if (!llmk_attn_head_dim_ok(D))
    return llmk_set_error(INV, fn,
                          "cache->k: head dim D = %lld (shape[3] = %lld, %s) must be 64, 128 or 256",
                          (long long)D, (long long)E, fmt);
  if (hkv < 1)
    return llmk_set_error(INV, fn, "cache->k: Hkv = shape[2] = %lld, expected at least 1 KV head",
                          (long long)hkv);
  if ((s = check_aligned16(c->k.data, fn, "cache->k"))) return s;
  if ((s = check_aligned16(c->v.data, fn, "cache->v"))) return s;
  int64_t group = 0;
  if (c->format == LLMK_KV_INT4) {
    group = c->int4_group;
    if (group != 32 && group != 128)
      return llmk_set_error(INV, fn, "cache->int4_group = %d, expected 32 or 128", (int)c->int4_group);
    if (group > D)
      return llmk_set_error(INV, fn, "cache->int4_group = %lld is larger than the head dim D = %lld",
                            (long long)group, (long long)D);
  }
  /* parameters */
  const int64_t slots = S0 * S1 * hkv; /* bounded by check_basic */
  int64_t pe = 0, pn = 0;
  if (c->format != LLMK_KV_BF16) {
    int64_t dims[4] = {S0, S1, hkv, 0};
    int nd = 3;
    llmk_dtype pdt = LLMK_F32;
    if (c->format == LLMK_KV_FP8) {
      pe = 1, pn = slots;
    } else if (c->format == LLMK_KV_FP8_TENSOR) {
      dims[0] = 1, nd = 1, pn = 1;
    } else {
      pe = 2 * D / group, pn = slots * pe;
      dims[3] = pe, nd = 4, pdt = LLMK_F16;
    }
    if ((s = check_exact(&c->k_param, fn, "cache->k_param", pdt, nd, dims))) return s;
    if ((s = check_aligned16(c->k_param.data, fn, "cache->k_param"))) return s;
    if ((s = check_exact(&c->v_param, fn, "cache->v_param", pdt, nd, dims))) return s;
    if ((s = check_aligned16(c->v_param.data, fn, "cache->v_param"))) return s;
    r[LLMK_CR_KP] = make_range("cache->k_param", c->k_param.data, pn, llmk_dtype_size(pdt), 0);
    r[LLMK_CR_VP] = make_range("cache->v_param", c->v_param.data, pn, llmk_dtype_size(pdt), 0);
  } else {
    r[LLMK_CR_KP] = make_range("cache->k_param", NULL, 0, 1, 0);
    r[LLMK_CR_VP] = make_range("cache->v_param", NULL, 0, 1, 0);
  }
  const int64_t row_bytes = c->format == LLMK_KV_BF16 ? 2 * D : c->format == LLMK_KV_INT4 ? D / 2 : D;
  r[LLMK_CR_K] = make_range("cache->k", c->k.data, slots * row_bytes, 1, 0);
  r[LLMK_CR_V] = make_range("cache->v", c->v.data, slots * row_bytes, 1, 0);
  r[LLMK_CR_BT] = make_range("cache->block_table", NULL, 0, 1, 0);

  p->format = c->format;
  p->S0 = S0, p->S1 = S1, p->hkv = hkv, p->d = D, p->group = group;
  p->row_bytes = row_bytes;
  p->param_elems = pe;
  p->k = c->k.data, p->v = c->v.data;
  p->k_param = c->format == LLMK_KV_BF16 ? NULL : c->k_param.data;
  p->v_param = c->format == LLMK_KV_BF16 ? NULL : c->v_param.data;

  /* block table */
  const llmk_tensor *bt = &c->block_table;
  if (!bt->data) return LLMK_SUCCESS; /* contiguous */
  if ((s = check_basic(bt, fn, "cache->block_table"))) return s;
  if ((s = expect_dtype(bt, fn, "cache->block_table", LLMK_I32))) return s;
  if (bt->ndim != 2)
    return llmk_set_error(INV, fn, "cache->block_table: expected 2 dims [B, max_pages], got %d",
                          (int)bt->ndim);
  const int64_t rows = bt->shape[0], cols = bt->shape[1];
  if (cols > 1 && bt->strides[1] != 1)
    return llmk_set_error(INV, fn, "cache->block_table: the last dim must have stride 1, got %lld",
                          (long long)bt->strides[1]);
  int64_t ld = cols;
  if (rows > 1) {
    ld = bt->strides[0];
    if (ld < cols)
      return llmk_set_error(INV, fn,
                            "cache->block_table: row stride %lld is smaller than max_pages = %lld",
                            (long long)ld, (long long)cols);
    if (cols > 0 && rows - 1 > (MAX_EXTENT - cols) / ld)
      return llmk_set_error(INV, fn, "cache->block_table: extent overflows");
  }
  if ((s = check_aligned16(bt->data, fn, "cache->block_table"))) return s;
  if (S1 < 1 || (S1 & (S1 - 1)))
    return llmk_set_error(INV, fn,
                          "cache->k: page_size = shape[1] = %lld must be a power of two for a paged cache",
                          (long long)S1);
  int shift = 0;
  while ((INT64_C(1) << shift) < S1) shift++;
  if (cols > (MAX_EXTENT >> shift))
    return llmk_set_error(INV, fn,
                          "cache->block_table: max_pages = %lld pages of %lld positions overflow",
                          (long long)cols, (long long)S1);
  p->paged = 1;
  p->page_shift = shift;
  p->block_table = (const int32_t *)bt->data;
  p->bt_rows = rows, p->bt_cols = cols, p->bt_ld = ld > 0 ? ld : 1;
  r[LLMK_CR_BT] = make_range("cache->block_table", bt->data,
                             rows > 0 && cols > 0 ? (rows - 1) * ld + cols : 0, 4, 0);
  return LLMK_SUCCESS;
}

llmk_status llmk_attn_check_batch(const llmk_kv_plan *p, const char *fn, int64_t B) {
  if (p->paged && p->bt_rows != B)
    return llmk_set_error(INV, fn,
                          "cache->block_table: expected %lld rows (one per sequence), got %lld",
                          (long long)B, (long long)p->bt_rows);
  if (!p->paged && B > p->S0)
    return llmk_set_error(INV, fn,
                          "cache->k: the contiguous cache holds %lld sequences (shape[0]), the call has B = %lld",
                          (long long)p->S0, (long long)B);
  return LLMK_SUCCESS;
}

llmk_status llmk_attn_make_rope(const llmk_rope_desc *d, const char *fn, int64_t D,
                                llmk_rope_plan *r) {
  memset(r, 0, sizeof *r);
  llmk_rope_desc dc;
  llmk_status rs = LLMK_READ_SIZED(d, &dc, LLMK_ROPE_DESC_SIZE, LLMK_ROPE_DESC_SIZE, fn, "desc", LLMK_ROPE_DESC_INIT);
  if (rs) return rs;
  d = &dc;
  if (d->style != LLMK_ROPE_INTERLEAVED && d->style != LLMK_ROPE_NEOX)
    return llmk_set_error(INV, fn, "desc->style has invalid value %d", (int)d->style);
  const int64_t R = d->rotary_dim == 0 ? D : d->rotary_dim;
  if (d->rotary_dim < 0 || R > D || R % 2 || R / 2 > LLMK_ROPE_MAX_PAIRS)
    return llmk_set_error(INV, fn,
                          "desc->rotary_dim = %lld: expected an even number in 2..D = %lld, or 0 for D",
                          (long long)d->rotary_dim, (long long)D);
  if (!isfinite(d->theta) || !(d->theta > 0))
    return llmk_set_error(INV, fn, "desc->theta = %g: expected a finite value > 0", d->theta);
  if (!isfinite(d->llama3_factor))
    return llmk_set_error(INV, fn, "desc->llama3_factor = %g: expected a finite value (<= 0: no scaling)",
                          d->llama3_factor);
  const int scaled = d->llama3_factor > 0;
  if (scaled) {
    const double lf = d->low_freq_factor, hf = d->high_freq_factor, L = d->original_max_position;
    if (!isfinite(lf) || !(lf > 0))
      return llmk_set_error(INV, fn, "desc->low_freq_factor = %g: expected a finite value > 0 "
                            "(desc->llama3_factor > 0)", lf);
    if (!isfinite(hf) || !(hf > lf))
      return llmk_set_error(INV, fn, "desc->high_freq_factor = %g: expected a finite value > "
                            "desc->low_freq_factor = %g", hf, lf);
    if (!isfinite(L) || !(L > 0))
      return llmk_set_error(INV, fn, "desc->original_max_position = %g: expected a finite value > 0 "
                            "(desc->llama3_factor > 0)", L);
  }
  r->neox = d->style == LLMK_ROPE_NEOX;
  r->n_pairs = R / 2;
  const double two_pi = 6.283185307179586476925286766559;
  for (int64_t i = 0; i < r->n_pairs; i++) {
    double f = pow(d->theta, -(double)(2 * i) / (double)R);
    if (scaled) {
      const double factor = d->llama3_factor, lf = d->low_freq_factor, hf = d->high_freq_factor;
      const double L = d->original_max_position;
      const double wl = two_pi / f, lo = L / lf, hi = L / hf;
      if (wl < hi) {
        /* high frequency: unchanged */
      } else if (wl > lo) {
        f = f / factor;
      } else {
        const double sm = (L / wl - lf) / (hf - lf);
        f = (1 - sm) * f / factor + sm * f;
      }
    }
    r->inv_freq[i] = f;
  }
  return LLMK_SUCCESS;
}

llmk_status llmk_attn_check_loc(const llmk_kv_loc *caller_loc, const char *fn, int64_t T,
                                llmk_loc_plan *p, llmk_range *r) {
  llmk_kv_loc lc;
  llmk_status s = LLMK_READ_SIZED(caller_loc, &lc, LLMK_KV_LOC_SIZE, LLMK_KV_LOC_SIZE, fn, "loc", LLMK_KV_LOC_INIT);
  if (s) return s;
  const llmk_kv_loc *loc = &lc;
  s = check_basic(&loc->start_pos, fn, "loc->start_pos");
  if (s) return s;
  if (loc->start_pos.ndim != 1)
    return llmk_set_error(INV, fn, "loc->start_pos: expected 1 dim [B], got %d",
                          (int)loc->start_pos.ndim);
  const int64_t B = loc->start_pos.shape[0];
  if (!loc->offsets.data && B != T)
    return llmk_set_error(INV, fn,
                          "loc->start_pos: expected T = %lld entries (one per row when "
                          "loc->offsets.data is NULL), got %lld",
                          (long long)T, (long long)B);
  if ((s = llmk_attn_check_vec(&loc->start_pos, fn, "loc->start_pos", LLMK_I32, B, &r[1]))) return s;
  if (loc->offsets.data) {
    if ((s = llmk_attn_check_vec(&loc->offsets, fn, "loc->offsets", LLMK_I32, B + 1, &r[0]))) return s;
  } else {
    r[0] = make_range("loc->offsets", NULL, 0, 1, 0);
  }
  p->T = T, p->B = B;
  p->offsets = (const int32_t *)loc->offsets.data;
  p->start_pos = (const int32_t *)loc->start_pos.data;
  return LLMK_SUCCESS;
}

llmk_range llmk_range_of_mat(const llmk_mat *m, const char *name, int written) {
  llmk_range r;
  r.name = name;
  r.written = written;
  llmk_mat_extent(m, &r.lo, &r.hi);
  return r;
}

llmk_range llmk_range_of_bytes(const void *p, size_t bytes, const char *name, int written) {
  llmk_range r;
  r.name = name;
  r.written = written;
  r.lo = (uintptr_t)p;
  r.hi = r.lo + (p ? bytes : 0);
  return r;
}
