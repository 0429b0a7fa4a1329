/* The CPU tests' KV cache (tests/test_kvcache_cpu.c, test_attention_cpu.c):
 * a cache under test with poisoned storage, and the quantization and value
 * table re-derived from include/llmk.h, with a shadow copy of the expected
 * bytes. The tests set H, the CPU handle. */
#ifndef LLMK_TESTS_KV_REF_H
#define LLMK_TESTS_KV_REF_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_util.h"
#include "harness.h"
#include "llmk.h"

static llmk_handle H;

/* ------------------------------------------------------------------------ */
/* A KV cache under test, and the quantization re-derived from llmk.h        */
/* ------------------------------------------------------------------------ */

typedef struct tcache {
  llmk_kv_cache c;
  llmk_kv_format f;
  int64_t S0, S1, hkv, D, E, G, pe; /* pe: parameter elements per token-head */
  int paged;
  int64_t B, max_pages, bt_ld;
  size_t row_bytes, store_bytes, param_bytes;
  uint8_t *k, *v, *kp, *vp;
  int32_t *bt;
} tcache;

static const char *fmt_name(llmk_kv_format f) {
  static const char *const n[] = {"BF16", "FP8", "FP8_TENSOR", "INT4"};
  return n[f];
}

/* S0 x S1 storage (contiguous: S0 = B sequences of S1 positions; paged:
 * S0 pages of S1 rows, B rows of max_pages in the table, shuffled). All
 * storage and parameters are poisoned; FP8_TENSOR gets its two scales. */
static inline void tcache_init(tcache *t, llmk_kv_format f, int paged, int64_t S0, int64_t S1, int64_t hkv,
                        int64_t D, int64_t G, int64_t B, int64_t max_pages) {
  memset(t, 0, sizeof *t);
  t->f = f, t->paged = paged, t->S0 = S0, t->S1 = S1, t->hkv = hkv, t->D = D, t->G = G;
  t->B = B, t->max_pages = max_pages;
  t->E = f == LLMK_KV_INT4 ? D / 2 : D;
  t->row_bytes = f == LLMK_KV_BF16 ? (size_t)D * 2 : f == LLMK_KV_INT4 ? (size_t)D / 2 : (size_t)D;
  const int64_t slots = S0 * S1 * hkv;
  t->store_bytes = (size_t)slots * t->row_bytes;
  t->pe = f == LLMK_KV_FP8 ? 1 : f == LLMK_KV_INT4 ? 2 * D / G : 0;
  t->param_bytes = f == LLMK_KV_FP8 ? (size_t)slots * 4 : f == LLMK_KV_INT4 ? (size_t)(slots * t->pe) * 2
                                                     : f == LLMK_KV_FP8_TENSOR ? 4 : 0;
  t->k = amalloc(t->store_bytes);
  t->v = amalloc(t->store_bytes);
  memset(t->k, 0xA5, t->store_bytes);
  memset(t->v, 0x5A, t->store_bytes);
  const llmk_dtype sdt = f == LLMK_KV_BF16 ? LLMK_BF16 : f == LLMK_KV_INT4 ? LLMK_U8 : LLMK_E4M3;
  llmk_tensor st = {NULL, sdt, 4, {S0, S1, hkv, t->E}, {S1 * hkv * t->E, hkv * t->E, t->E, 1}};
  t->c = (llmk_kv_cache)LLMK_KV_CACHE_INIT;
  t->c.format = f;
  t->c.int4_group = (int32_t)G;
  t->c.k = st, t->c.v = st;
  t->c.k.data = t->k, t->c.v.data = t->v;
  if (t->param_bytes) {
    t->kp = amalloc(t->param_bytes);
    t->vp = amalloc(t->param_bytes);
    memset(t->kp, 0xC3, t->param_bytes);
    memset(t->vp, 0x3C, t->param_bytes);
    llmk_tensor pt;
    if (f == LLMK_KV_FP8) {
      llmk_tensor p = {NULL, LLMK_F32, 3, {S0, S1, hkv, 0}, {S1 * hkv, hkv, 1, 0}};
      pt = p;
    } else if (f == LLMK_KV_INT4) {
      llmk_tensor p = {NULL, LLMK_F16, 4, {S0, S1, hkv, t->pe}, {S1 * hkv * t->pe, hkv * t->pe, t->pe, 1}};
      pt = p;
    } else {
      pt = llmk_tensor_1d(NULL, LLMK_F32, 1);
      const float ks = 0.0213f, vs = 0.0171f;
      memcpy(t->kp, &ks, 4);
      memcpy(t->vp, &vs, 4);
    }
    t->c.k_param = pt, t->c.v_param = pt;
    t->c.k_param.data = t->kp, t->c.v_param.data = t->vp;
  }
  if (paged) {
    t->bt_ld = max_pages + 3;
    t->bt = amalloc((size_t)(B * t->bt_ld + 1) * 4);
    int64_t *perm = t_xmalloc((size_t)S0 * sizeof *perm);
    for (int64_t i = 0; i < S0; i++) perm[i] = i;
    for (int64_t i = S0 - 1; i > 0; i--) {
      int64_t j = irand(i + 1), tmp = perm[i];
      perm[i] = perm[j], perm[j] = tmp;
    }
    for (int64_t b = 0; b < B; b++)
      for (int64_t p = 0; p < t->bt_ld; p++) {
        const int64_t idx = b * max_pages + p;
        /* pages beyond S0 (unused table entries) and the padding are out of range */
        t->bt[b * t->bt_ld + p] = p < max_pages ? (idx < S0 ? (int32_t)perm[idx] : -7) : 1 << 30;
      }
    free(perm);
    t->c.block_table = llmk_tensor_2d(t->bt, LLMK_I32, B, max_pages, t->bt_ld);
  }
}

static inline void tcache_free(tcache *t) {
  free(t->k), free(t->v), free(t->kp), free(t->vp), free(t->bt);
  memset(t, 0, sizeof *t);
}

static inline int64_t tcache_capacity(const tcache *t) { return t->paged ? t->max_pages * t->S1 : t->S1; }

/* Token-head slot of (sequence b, position p, KV head h). */
static inline int64_t tslot(const tcache *t, int64_t b, int64_t p, int64_t h) {
  if (!t->paged) return (b * t->S1 + p) * t->hkv + h;
  const int64_t page = t->bt[b * t->bt_ld + p / t->S1];
  return (page * t->S1 + p % t->S1) * t->hkv + h;
}

/* float -> f16 bits, nearest even, saturated to +-65504. */
static inline uint16_t f16_sat(float x) {
  uint16_t b = llmk_float_to_f16(x);
  if ((b & 0x7C00u) == 0x7C00u && !(b & 0x3FFu)) b = (uint16_t)((b & 0x8000u) | 0x7BFFu);
  return b;
}

/* llmk.h's quantization of one token-head x[D] (fp32) into a storage row
 * and its parameters (FP8: 1 f32; INT4: 2 D / G f16). tscale: FP8_TENSOR's. */
static inline void ref_quant(llmk_kv_format f, int64_t D, int64_t G, const float *x, float tscale,
                      uint8_t *row, void *param) {
  if (f == LLMK_KV_BF16) {
    for (int64_t d = 0; d < D; d++) {
      uint16_t b = bf(x[d]);
      memcpy(row + 2 * d, &b, 2);
    }
  } else if (f == LLMK_KV_FP8 || f == LLMK_KV_FP8_TENSOR) {
    float scale = tscale;
    if (f == LLMK_KV_FP8) {
      float amax = 0;
      for (int64_t d = 0; d < D; d++)
        if (isfinite(x[d]) && fabsf(x[d]) > amax) amax = fabsf(x[d]);
      scale = fmaxf(amax / 448.0f, 1.0f / (448.0f * 512.0f));
      memcpy(param, &scale, 4);
    }
    const float inv = 1.0f / scale;
    for (int64_t d = 0; d < D; d++) row[d] = llmk_float_to_fp8(x[d] * inv, LLMK_E4M3);
  } else {
    uint8_t code[256];
    for (int64_t g = 0; g < D / G; g++) {
      float lo = INFINITY, hi = -INFINITY;
      for (int64_t i = g * G; i < (g + 1) * G; i++)
        if (isfinite(x[i])) lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
      if (lo > hi) lo = hi = 0; /* no finite value */
      const uint16_t sb = f16_sat((hi - lo) / 15.0f), hb = f16_sat(lo);
      memcpy((uint8_t *)param + 4 * g, &sb, 2);
      memcpy((uint8_t *)param + 4 * g + 2, &hb, 2);
      const float sc = llmk_f16_to_float(sb), sh = llmk_f16_to_float(hb);
      for (int64_t i = g * G; i < (g + 1) * G; i++) {
        int c = 0;
        if (sc != 0) {
          if (isnan(x[i])) c = 0;
          else if (x[i] == INFINITY) c = 15;
          else if (x[i] == -INFINITY) c = 0;
          else {
            const float diff = x[i] - sh, inv = 1.0f / sc, u = diff * inv;
            const float rr = rintf(u);
            c = rr < 0 ? 0 : rr > 15 ? 15 : (int)rr;
          }
        }
        code[i] = (uint8_t)c;
      }
    }
    for (int64_t j = 0; j < D / 2; j++) row[j] = (uint8_t)(code[2 * j] | code[2 * j + 1] << 4);
  }
}

/* llmk.h's value table: element d of slot `slot` of K or V. */
static inline float ref_value(const tcache *t, int is_v, int64_t slot, int64_t d) {
  const uint8_t *row = (is_v ? t->v : t->k) + (size_t)slot * t->row_bytes;
  const uint8_t *par = is_v ? t->vp : t->kp;
  switch (t->f) {
    case LLMK_KV_BF16: {
      uint16_t b;
      memcpy(&b, row + 2 * d, 2);
      return fb(b);
    }
    case LLMK_KV_FP8: {
      float s;
      memcpy(&s, par + 4 * slot, 4);
      return llmk_fp8_to_float(row[d], LLMK_E4M3) * s;
    }
    case LLMK_KV_FP8_TENSOR: {
      float s;
      memcpy(&s, par, 4);
      return llmk_fp8_to_float(row[d], LLMK_E4M3) * s;
    }
    default: {
      const int code = d % 2 ? row[d / 2] >> 4 : row[d / 2] & 15;
      uint16_t sb, hb;
      const size_t g = (size_t)(slot * t->pe + 2 * (d / t->G));
      memcpy(&sb, par + 2 * g, 2);
      memcpy(&hb, par + 2 * g + 2, 2);
      return fmaf((float)code, llmk_f16_to_float(sb), llmk_f16_to_float(hb));
    }
  }
}

/* The expected state of a cache: a shadow copy updated with ref_quant. */
typedef struct shadow {
  uint8_t *k, *v, *kp, *vp;
  uint8_t *written; /* per slot */
} shadow;
static inline void shadow_init(shadow *s, const tcache *t) {
  s->k = amalloc(t->store_bytes), s->v = amalloc(t->store_bytes);
  memcpy(s->k, t->k, t->store_bytes), memcpy(s->v, t->v, t->store_bytes);
  s->kp = s->vp = NULL;
  if (t->param_bytes) {
    s->kp = amalloc(t->param_bytes), s->vp = amalloc(t->param_bytes);
    memcpy(s->kp, t->kp, t->param_bytes), memcpy(s->vp, t->vp, t->param_bytes);
  }
  s->written = calloc((size_t)(t->S0 * t->S1 * t->hkv) + 1, 1);
}
static inline void shadow_free(shadow *s) {
  free(s->k), free(s->v), free(s->kp), free(s->vp), free(s->written);
}
static inline void shadow_put(shadow *s, const tcache *t, int is_v, int64_t slot, const float *x) {
  float ts = 0;
  if (t->f == LLMK_KV_FP8_TENSOR) memcpy(&ts, is_v ? t->vp : t->kp, 4);
  uint8_t *par = is_v ? s->vp : s->kp;
  void *p = t->f == LLMK_KV_FP8 ? (void *)(par + 4 * slot)
            : t->f == LLMK_KV_INT4 ? (void *)(par + 2 * slot * t->pe) : NULL;
  ref_quant(t->f, t->D, t->G, x, ts, (is_v ? s->v : s->k) + (size_t)slot * t->row_bytes, p);
  s->written[slot] = 1;
}
/* Number of bytes where the cache differs from the shadow (first one printed). */
static inline int64_t shadow_diff(const shadow *s, const tcache *t, const char *name) {
  int64_t bad = 0;
  const struct { const uint8_t *a, *b; size_t n; const char *what; } parts[4] = {
      {s->k, t->k, t->store_bytes, "k"}, {s->v, t->v, t->store_bytes, "v"},
      {s->kp, t->kp, t->f == LLMK_KV_FP8_TENSOR ? 0 : t->param_bytes, "k_param"},
      {s->vp, t->vp, t->f == LLMK_KV_FP8_TENSOR ? 0 : t->param_bytes, "v_param"}};
  for (int i = 0; i < 4; i++)
    for (size_t j = 0; j < parts[i].n; j++)
      if (parts[i].a[j] != parts[i].b[j]) {
        if (!bad)
          fprintf(stderr, "%s: first difference: %s byte %zu: got 0x%02x, want 0x%02x\n", name,
                  parts[i].what, j, parts[i].b[j], parts[i].a[j]);
        bad++;
      }
  return bad;
}

/* Checks llmk_kv_cache_dequantize (f32 and bf16) against the value table on
 * every slot, written or not. */
static inline void check_dequantize(const tcache *t, const char *name) {
  const int64_t slots = t->S0 * t->S1 * t->hkv, n = slots * t->D;
  float *ko = amalloc((size_t)n * 4), *vo = amalloc((size_t)n * 4);
  uint16_t *kb = amalloc((size_t)n * 2), *vb = amalloc((size_t)n * 2);
  memset(ko, 0xEE, (size_t)n * 4), memset(vo, 0xEE, (size_t)n * 4);
  const llmk_tensor o32 = {NULL, LLMK_F32, 4, {t->S0, t->S1, t->hkv, t->D}, {t->S1 * t->hkv * t->D, t->hkv * t->D, t->D, 1}};
  llmk_tensor tk = o32, tv = o32;
  tk.data = ko, tv.data = vo;
  llmk_status s1 = llmk_kv_cache_dequantize(H, &t->c, &tk, &tv, NULL);
  tk.data = kb, tv.data = vb, tk.dtype = tv.dtype = LLMK_BF16;
  llmk_status s2 = llmk_kv_cache_dequantize(H, &t->c, &tk, &tv, NULL);
  CHECK(s1 == LLMK_SUCCESS && s2 == LLMK_SUCCESS, "%s: dequantize: %s", name, llmk_last_error());
  int64_t bad = 0;
  for (int64_t sl = 0; sl < slots && !s1 && !s2; sl++)
    for (int64_t d = 0; d < t->D; d++) {
      const float wk = ref_value(t, 0, sl, d), wv = ref_value(t, 1, sl, d);
      const int64_t i = sl * t->D + d;
      if (fbits(ko[i]) != fbits(wk) || fbits(vo[i]) != fbits(wv) || kb[i] != bf(wk) || vb[i] != bf(wv)) {
        if (!bad)
          fprintf(stderr, "%s: dequantize slot %lld d %lld: k %g (want %g), v %g (want %g)\n", name,
                  (long long)sl, (long long)d, ko[i], wk, vo[i], wv);
        bad++;
      }
    }
  CHECK(bad == 0, "%s: %lld dequantized values differ from the value table", name, (long long)bad);
  free(ko), free(vo), free(kb), free(vb);
}

#endif
