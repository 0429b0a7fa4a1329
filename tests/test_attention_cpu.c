/*
 * The KV cache, RoPE and decode attention of include/llmk.h on the CPU
 * backend (the reference the CUDA kernels are tested against).
 *
 *  - rope: against an independent fp64 formula (both styles, partial
 *    rotary, Llama 3.1 scaling, f32 and bf16, positions up to 2^20: relative
 *    error per vector < 1e-5 for f32), bitwise against llmk.h's text taken
 *    literally, pass-through dims bit for bit, in place, row pitches.
 *  - kv_cache_write + kv_cache_dequantize: all four formats, contiguous and
 *    paged (shuffled block table with a row pitch) caches, prefill with
 *    variable lengths (empty sequences included) then a decode step; every
 *    byte of storage and parameters compared with the quantization rules
 *    re-derived here from llmk.h (unwritten slots must keep their poison),
 *    every dequantized value with the value table; targeted special values
 *    (zeros, all-equal, NaN, +-Inf, huge ranges); round-trip error bounds.
 *  - rope_qkv_write: equals llmk_rope + llmk_kv_cache_write (bitwise: Q, V,
 *    and K for the BF16 cache; K of the quantized formats is quantized from
 *    the fp32 rotated value, checked against llmk_rope's f32 output).
 *  - attention_decode: against a straightforward fp64 softmax over the
 *    value table (group sizes 1, 3, 8, 16; D 64/128/256; every format;
 *    paged and contiguous; lengths 0, negative, clamped by max_seq_len; lse),
 *    and one 200000-token paged sequence.
 * Bad inputs for these functions: tests/test_attention_errors.c.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_util.h"
#include "harness.h"
#include "llmk.h"

static llmk_handle H;
#define INV LLMK_ERR_INVALID_ARGUMENT

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static uint32_t fbits(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  return b;
}
static int64_t irand(int64_t n) { return (int64_t)(t_rand_u64() % (uint64_t)n); }

/* One bf16 test value of distribution `kind` (0: normal, 1: wide range,
 * 2: outlier-ish, 3: specials sprinkled). */
static float draw(int kind, float scale) {
  float v = t_rand_normal() * scale;
  if (kind == 1) v *= powf(10.0f, (float)(irand(9) - 4));
  if (kind == 2 && irand(16) == 0) v *= 300.0f;
  if (kind == 3) {
    int r = (int)irand(24);
    if (r == 0) v = NAN;
    else if (r == 1) v = INFINITY;
    else if (r == 2) v = -INFINITY;
  }
  return fb(bf(v));
}

/* ------------------------------------------------------------------------ */
/* RoPE                                                                      */
/* ------------------------------------------------------------------------ */

/* Independent frequency: exp/log instead of pow, and the Llama 3.1 rule as
 * Hugging Face writes it (wavelengths, then the medium band smoothed). */
static double indep_freq(const llmk_rope_desc *d, int64_t R, int64_t i) {
  double f = exp(-((double)(2 * i) / (double)R) * log(d->theta));
  if (d->llama3_factor > 0) {
    const double lw = d->original_max_position / d->low_freq_factor;
    const double hw = d->original_max_position / d->high_freq_factor;
    const double wavelen = 2.0 * 3.14159265358979323846 / f;
    const double base = f;
    if (wavelen > lw) f = base / d->llama3_factor;
    if (!(wavelen < hw) && !(wavelen > lw)) {
      const double sm = (d->original_max_position / wavelen - d->low_freq_factor) /
                        (d->high_freq_factor - d->low_freq_factor);
      f = (1.0 - sm) * base / d->llama3_factor + sm * base;
    }
  }
  return f;
}

/* llmk.h's llmk_rope_desc text, literally: f_i in fp64 with pow, the angle
 * and its cos/sin in fp64 rounded to fp32, products rounded in fp32. */
static double spec_freq(const llmk_rope_desc *d, int64_t R, int64_t i) {
  double f = pow(d->theta, -(double)(2 * i) / (double)R);
  if (d->llama3_factor > 0) {
    const double L = d->original_max_position, wl = 2 * 3.14159265358979323846 / f;
    const double lo = L / d->low_freq_factor, hi = L / d->high_freq_factor;
    if (wl < hi) {
    } else if (wl > lo) {
      f = f / d->llama3_factor;
    } else {
      const double s = (L / wl - d->low_freq_factor) / (d->high_freq_factor - d->low_freq_factor);
      f = (1 - s) * f / d->llama3_factor + s * f;
    }
  }
  return f;
}
static void spec_rotate(const llmk_rope_desc *d, int64_t D, int64_t pos, float *v) {
  const int64_t R = d->rotary_dim ? d->rotary_dim : D, n = R / 2;
  for (int64_t i = 0; i < n; i++) {
    const double ang = (double)pos * spec_freq(d, R, i);
    const float c = (float)cos(ang), s = (float)sin(ang);
    const int64_t a = d->style == LLMK_ROPE_NEOX ? i : 2 * i, b = d->style == LLMK_ROPE_NEOX ? i + n : 2 * i + 1;
    const float xa = v[a], xb = v[b];
    const float p1 = xa * c, p2 = xb * s, p3 = xa * s, p4 = xb * c;
    v[a] = p1 - p2;
    v[b] = p3 + p4;
  }
}

static void test_rope_case(llmk_rope_style st, int64_t D, int64_t R, int llama3, llmk_dtype dt,
                           int in_place, double theta) {
  const int64_t T = 7, Hh = 3, ld = Hh * D + (in_place ? 0 : 5), es = (int64_t)llmk_dtype_size(dt);
  const int64_t n = T * ld;
  char name[160];
  snprintf(name, sizeof name, "[rope %s D=%lld R=%lld%s %s%s theta=%g]",
           st == LLMK_ROPE_NEOX ? "neox" : "interleaved", (long long)D, (long long)R,
           llama3 ? " llama3" : "", llmk_dtype_name(dt), in_place ? " in-place" : "", theta);
  llmk_rope_desc d = rope_desc(st, R, theta, llama3);
  float *xv = amalloc((size_t)n * 4); /* the values as stored */
  void *x = amalloc((size_t)n * (size_t)es), *y = in_place ? x : amalloc((size_t)n * (size_t)es);
  int32_t pos[7];
  const int32_t fixed[4] = {0, 1, 1 << 20, 12345};
  for (int64_t t = 0; t < T; t++) pos[t] = t < 4 ? fixed[t] : (int32_t)irand((1 << 20) + 1);
  for (int64_t i = 0; i < n; i++) {
    float v = t_rand_normal();
    if (dt == LLMK_BF16) {
      ((uint16_t *)x)[i] = bf(v);
      xv[i] = fb(bf(v));
    } else {
      ((float *)x)[i] = v;
      xv[i] = v;
    }
  }
  if (!in_place) memset(y, 0xA5, (size_t)n * (size_t)es);
  llmk_tensor tx = heads_t(x, dt, T, Hh, D, ld), ty = heads_t(y, dt, T, Hh, D, ld);
  llmk_tensor tp = llmk_tensor_1d(pos, LLMK_I32, T);
  llmk_status s = llmk_rope(H, &d, &tx, &tp, &ty, NULL);
  CHECK(s == LLMK_SUCCESS, "%s: %s", name, llmk_last_error());
  const int64_t Rr = R ? R : D;
  double worst = 0;
  int64_t bad_bits = 0, bad_pass = 0, bad_pad = 0;
  for (int64_t t = 0; t < T; t++)
    for (int64_t h = 0; h < Hh; h++) {
      const int64_t off = t * ld + h * D;
      float lit[256];
      memcpy(lit, xv + off, (size_t)D * 4);
      spec_rotate(&d, D, pos[t], lit);
      double num = 0, den = 0;
      for (int64_t i = 0; i < D; i++) {
        const float got = dt == LLMK_BF16 ? fb(((uint16_t *)y)[off + i]) : ((float *)y)[off + i];
        const float want = dt == LLMK_BF16 ? fb(bf(lit[i])) : lit[i];
        if (fbits(got) != fbits(want)) bad_bits++;
        if (i >= Rr && fbits(got) != fbits(xv[off + i])) bad_pass++;
        /* independent: fp64 rotation of the pairs */
        double ref = xv[off + i];
        const int64_t np = Rr / 2;
        if (i < Rr) {
          const int neox = st == LLMK_ROPE_NEOX;
          const int64_t pi = neox ? i % np : i / 2;
          const int first = neox ? i < np : i % 2 == 0;
          const int64_t ia = neox ? pi : 2 * pi, ib = neox ? pi + np : 2 * pi + 1;
          const double ang = (double)pos[t] * indep_freq(&d, Rr, pi);
          const double xa = xv[off + ia], xb = xv[off + ib];
          ref = first ? xa * cos(ang) - xb * sin(ang) : xa * sin(ang) + xb * cos(ang);
        }
        num += (got - ref) * (got - ref);
        den += ref * ref;
      }
      const double rel = sqrt(num / (den > 0 ? den : 1));
      if (rel > worst) worst = rel;
    }
  if (!in_place) /* the row padding stays as it was */
    for (int64_t t = 0; t < T; t++)
      for (int64_t b = (Hh * D) * es; b < ld * es; b++)
        if (((uint8_t *)y)[t * ld * es + b] != 0xA5) bad_pad++;
  const double tol = dt == LLMK_F32 ? 1e-5 : 4e-3;
  CHECK(worst < tol, "%s: relative error %.3g vs the fp64 formula (tolerance %.1g)", name, worst, tol);
  CHECK(bad_bits == 0, "%s: %lld elements differ from llmk.h's formula taken literally", name,
        (long long)bad_bits);
  CHECK(bad_pass == 0, "%s: %lld pass-through elements changed", name, (long long)bad_pass);
  CHECK(bad_pad == 0, "%s: %lld padding bytes written", name, (long long)bad_pad);
  free(xv);
  free(x);
  if (!in_place) free(y);
}

/* Extreme positions, taken bit for bit from the literal formula. */
static void test_rope_extreme_positions(void) {
  const int64_t D = 128;
  int32_t pos[6] = {INT32_MAX, INT32_MIN, -1, -77777, 1 << 30, 3};
  float x[6 * 128], y[6 * 128];
  for (int i = 0; i < 6 * 128; i++) x[i] = t_rand_normal();
  llmk_rope_desc d = rope_desc(LLMK_ROPE_NEOX, 0, 500000.0, 1);
  llmk_tensor tx = heads_t(x, LLMK_F32, 6, 1, D, D), ty = heads_t(y, LLMK_F32, 6, 1, D, D);
  llmk_tensor tp = llmk_tensor_1d(pos, LLMK_I32, 6);
  CHECK(llmk_rope(H, &d, &tx, &tp, &ty, NULL) == LLMK_SUCCESS, "rope extreme positions: %s",
        llmk_last_error());
  int64_t bad = 0;
  for (int t = 0; t < 6; t++) {
    float v[128];
    memcpy(v, x + t * D, sizeof v);
    spec_rotate(&d, D, pos[t], v);
    for (int i = 0; i < D; i++) bad += fbits(v[i]) != fbits(y[t * D + i]);
  }
  CHECK(bad == 0, "rope extreme positions (+-2^31): %lld elements differ from the literal formula",
        (long long)bad);
}

static void test_rope(void) {
  const int64_t Ds[3] = {64, 128, 256};
  for (int st = 0; st < 2; st++)
    for (int di = 0; di < 3; di++) {
      const int64_t D = Ds[di];
      test_rope_case((llmk_rope_style)st, D, 0, 0, LLMK_F32, 0, 10000.0);
      test_rope_case((llmk_rope_style)st, D, 0, 1, LLMK_F32, 0, 500000.0);
      test_rope_case((llmk_rope_style)st, D, D / 2, 0, LLMK_F32, 0, 10000.0);
      test_rope_case((llmk_rope_style)st, D, 2, 1, LLMK_F32, 1, 500000.0);
      test_rope_case((llmk_rope_style)st, D, D - 2, 1, LLMK_BF16, 0, 1000000.0);
      test_rope_case((llmk_rope_style)st, D, 0, 0, LLMK_BF16, 1, 10000.0);
      test_rope_case((llmk_rope_style)st, D, 32, 1, LLMK_F32, 1, 500000.0);
    }
  test_rope_extreme_positions();
  /* in place equals out of place, bit for bit */
  {
    const int64_t T = 5, Hh = 2, D = 64, n = T * Hh * D;
    uint16_t a[5 * 2 * 64], b[5 * 2 * 64];
    int32_t pos[5] = {0, 9, 100000, 7, 1 << 19};
    for (int64_t i = 0; i < n; i++) a[i] = bf(t_rand_normal() * 3);
    llmk_rope_desc d = rope_desc(LLMK_ROPE_INTERLEAVED, 48, 500000.0, 1);
    llmk_tensor ta = heads_t(a, LLMK_BF16, T, Hh, D, Hh * D), tb = heads_t(b, LLMK_BF16, T, Hh, D, Hh * D);
    llmk_tensor tp = llmk_tensor_1d(pos, LLMK_I32, T);
    llmk_status s1 = llmk_rope(H, &d, &ta, &tp, &tb, NULL);
    llmk_status s2 = llmk_rope(H, &d, &ta, &tp, &ta, NULL);
    CHECK(s1 == LLMK_SUCCESS && s2 == LLMK_SUCCESS && memcmp(a, b, sizeof a) == 0,
          "rope in place differs from out of place (%s)", llmk_last_error());
  }
}

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
static void tcache_init(tcache *t, llmk_kv_format f, int paged, int64_t S0, int64_t S1, int64_t hkv,
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

static void tcache_free(tcache *t) {
  free(t->k), free(t->v), free(t->kp), free(t->vp), free(t->bt);
  memset(t, 0, sizeof *t);
}

static int64_t tcache_capacity(const tcache *t) { return t->paged ? t->max_pages * t->S1 : t->S1; }

/* Token-head slot of (sequence b, position p, KV head h). */
static int64_t tslot(const tcache *t, int64_t b, int64_t p, int64_t h) {
  if (!t->paged) return (b * t->S1 + p) * t->hkv + h;
  const int64_t page = t->bt[b * t->bt_ld + p / t->S1];
  return (page * t->S1 + p % t->S1) * t->hkv + h;
}

/* float -> f16 bits, nearest even, saturated to +-65504. */
static uint16_t f16_sat(float x) {
  uint16_t b = llmk_float_to_f16(x);
  if ((b & 0x7C00u) == 0x7C00u && !(b & 0x3FFu)) b = (uint16_t)((b & 0x8000u) | 0x7BFFu);
  return b;
}

/* llmk.h's quantization of one token-head x[D] (fp32) into a storage row
 * and its parameters (FP8: 1 f32; INT4: 2 D / G f16). tscale: FP8_TENSOR's. */
static void ref_quant(llmk_kv_format f, int64_t D, int64_t G, const float *x, float tscale,
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
static float ref_value(const tcache *t, int is_v, int64_t slot, int64_t d) {
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
static void shadow_init(shadow *s, const tcache *t) {
  s->k = amalloc(t->store_bytes), s->v = amalloc(t->store_bytes);
  memcpy(s->k, t->k, t->store_bytes), memcpy(s->v, t->v, t->store_bytes);
  s->kp = s->vp = NULL;
  if (t->param_bytes) {
    s->kp = amalloc(t->param_bytes), s->vp = amalloc(t->param_bytes);
    memcpy(s->kp, t->kp, t->param_bytes), memcpy(s->vp, t->vp, t->param_bytes);
  }
  s->written = calloc((size_t)(t->S0 * t->S1 * t->hkv) + 1, 1);
}
static void shadow_free(shadow *s) {
  free(s->k), free(s->v), free(s->kp), free(s->vp), free(s->written);
}
static void shadow_put(shadow *s, const tcache *t, int is_v, int64_t slot, const float *x) {
  float ts = 0;
  if (t->f == LLMK_KV_FP8_TENSOR) memcpy(&ts, is_v ? t->vp : t->kp, 4);
  uint8_t *par = is_v ? s->vp : s->kp;
  void *p = t->f == LLMK_KV_FP8 ? (void *)(par + 4 * slot)
            : t->f == LLMK_KV_INT4 ? (void *)(par + 2 * slot * t->pe) : NULL;
  ref_quant(t->f, t->D, t->G, x, ts, (is_v ? s->v : s->k) + (size_t)slot * t->row_bytes, p);
  s->written[slot] = 1;
}
/* Number of bytes where the cache differs from the shadow (first one printed). */
static int64_t shadow_diff(const shadow *s, const tcache *t, const char *name) {
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
static void check_dequantize(const tcache *t, const char *name) {
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

/* ------------------------------------------------------------------------ */
/* kv_cache_write + dequantize                                               */
/* ------------------------------------------------------------------------ */

/* Rows [T, Hkv, D] of bf16 with per-head flavours: normal, scaled, all
 * equal, zero, specials (NaN/Inf), huge range. */
static void fill_rows(uint16_t *x, int64_t T, int64_t hkv, int64_t D, int64_t ld, int specials) {
  for (int64_t t = 0; t < T; t++)
    for (int64_t h = 0; h < hkv; h++) {
      uint16_t *row = x + t * ld + h * D;
      const int kind = (int)irand(specials ? 8 : 5);
      const float sc = kind == 1 ? 300.0f : kind == 2 ? 1e-3f : 1.0f;
      const float c = t_rand_normal();
      for (int64_t d = 0; d < D; d++) {
        float v;
        switch (kind) {
          case 3: v = c; break;                                  /* all equal */
          case 4: v = irand(8) ? t_rand_normal() : 0.0f; break;  /* sparse */
          case 5: v = 0.0f; break;                               /* zero head */
          case 6: v = draw(3, 2.0f); break;                      /* NaN / Inf */
          case 7: v = d == 5 ? 3e38f : d == 9 ? -3e38f : t_rand_normal(); break; /* huge range */
          default: v = draw(kind == 0 ? 2 : 0, sc); break;
        }
        row[d] = bf(v);
      }
    }
  (void)specials;
}

typedef struct wcase {
  llmk_kv_format f;
  int paged;
  int64_t hkv, D, G;
} wcase;

static void test_write_case(const wcase *w) {
  const int64_t B = 4, S1 = w->paged ? 8 : 40, max_pages = 5, S0 = w->paged ? 23 : B + 1;
  tcache t;
  tcache_init(&t, w->f, w->paged, S0, S1, w->hkv, w->D, w->G, B, max_pages);
  char name[160];
  snprintf(name, sizeof name, "[write %s %s Hkv=%lld D=%lld G=%lld]", fmt_name(w->f),
           w->paged ? "paged" : "contiguous", (long long)w->hkv, (long long)w->D, (long long)w->G);
  shadow sh;
  shadow_init(&sh, &t);
  const int64_t cap = tcache_capacity(&t), hd = w->hkv * w->D;
  /* prefill: lengths with an empty sequence, at random starts */
  int32_t len[4] = {(int32_t)(3 + irand(20)), 0, 1, (int32_t)(5 + irand(15))};
  int32_t start[4], offs[5] = {0};
  for (int b = 0; b < B; b++) {
    start[b] = (int32_t)irand(cap - len[b] - 1 + 1);
    offs[b + 1] = offs[b] + len[b];
  }
  const int64_t T = offs[B], ld = hd + 8;
  uint16_t *k = amalloc((size_t)(T * ld) * 2 + 2), *v = amalloc((size_t)(T * ld) * 2 + 2);
  fill_rows(k, T, w->hkv, w->D, ld, 1);
  fill_rows(v, T, w->hkv, w->D, ld, 1);
  llmk_tensor tk = heads_t(k, LLMK_BF16, T, w->hkv, w->D, ld), tv = heads_t(v, LLMK_BF16, T, w->hkv, w->D, ld);
  llmk_kv_loc loc = LLMK_KV_LOC_INIT;
  loc.offsets = llmk_tensor_1d(offs, LLMK_I32, B + 1);
  loc.start_pos = llmk_tensor_1d(start, LLMK_I32, B);
  llmk_status s = llmk_kv_cache_write(H, &t.c, &tk, &tv, &loc, NULL);
  CHECK(s == LLMK_SUCCESS, "%s prefill: %s", name, llmk_last_error());
  float x[256];
  for (int b = 0; b < B; b++)
    for (int64_t r = offs[b]; r < offs[b + 1]; r++)
      for (int64_t h = 0; h < w->hkv; h++)
        for (int is_v = 0; is_v < 2; is_v++) {
          const uint16_t *src = (is_v ? v : k) + r * ld + h * w->D;
          for (int64_t d = 0; d < w->D; d++) x[d] = fb(src[d]);
          shadow_put(&sh, &t, is_v, tslot(&t, b, start[b] + (r - offs[b]), h), x);
        }
  int64_t bad = shadow_diff(&sh, &t, name);
  CHECK(bad == 0, "%s prefill: %lld cache bytes differ from llmk.h's quantization", name, (long long)bad);
  /* decode: one token per sequence right after its prefix (offsets NULL) */
  int32_t dpos[4];
  uint16_t *dk = amalloc((size_t)(B * hd) * 2), *dv = amalloc((size_t)(B * hd) * 2);
  fill_rows(dk, B, w->hkv, w->D, hd, 1);
  fill_rows(dv, B, w->hkv, w->D, hd, 1);
  for (int b = 0; b < B; b++) dpos[b] = start[b] + len[b];
  dpos[1] = (int32_t)(cap - 1); /* the last position of the cache */
  llmk_tensor dtk = heads_t(dk, LLMK_BF16, B, w->hkv, w->D, hd), dtv = heads_t(dv, LLMK_BF16, B, w->hkv, w->D, hd);
  llmk_kv_loc dloc = LLMK_KV_LOC_INIT;
  dloc.start_pos = llmk_tensor_1d(dpos, LLMK_I32, B);
  s = llmk_kv_cache_write(H, &t.c, &dtk, &dtv, &dloc, NULL);
  CHECK(s == LLMK_SUCCESS, "%s decode: %s", name, llmk_last_error());
  for (int b = 0; b < B; b++)
    for (int64_t h = 0; h < w->hkv; h++)
      for (int is_v = 0; is_v < 2; is_v++) {
        const uint16_t *src = (is_v ? dv : dk) + b * hd + h * w->D;
        for (int64_t d = 0; d < w->D; d++) x[d] = fb(src[d]);
        shadow_put(&sh, &t, is_v, tslot(&t, b, dpos[b], h), x);
      }
  bad = shadow_diff(&sh, &t, name);
  CHECK(bad == 0, "%s decode: %lld cache bytes differ from llmk.h's quantization", name, (long long)bad);
  check_dequantize(&t, name);
  /* round trip: finite heads come back within the format's resolution */
  int64_t far = 0;
  for (int b = 0; b < B; b++)
    for (int64_t r = offs[b]; r < offs[b + 1]; r++)
      for (int64_t h = 0; h < w->hkv; h++) {
        const uint16_t *src = k + r * ld + h * w->D;
        const int64_t sl = tslot(&t, b, start[b] + (r - offs[b]), h);
        float amax = 0;
        int finite = 1;
        for (int64_t d = 0; d < w->D; d++) {
          const float xv = fb(src[d]);
          if (!isfinite(xv) || fabsf(xv) > 1e30f) finite = 0;
          else amax = fmaxf(amax, fabsf(xv));
        }
        if (!finite) continue;
        for (int64_t d = 0; d < w->D; d++) {
          const float xv = fb(src[d]), got = ref_value(&t, 0, sl, d);
          double tol;
          if (w->f == LLMK_KV_BF16) tol = 0;
          else if (w->f == LLMK_KV_FP8) tol = fabsf(xv) / 16.0 + amax / 448.0 / 512.0 + 1e-30;
          else if (w->f == LLMK_KV_FP8_TENSOR) tol = fabsf(xv) / 16.0 + 0.0213 / 512.0 + (fabsf(xv) > 448 * 0.0213 ? INFINITY : 0);
          else {
            float lo = INFINITY, hi = -INFINITY;
            const int64_t g0 = d / w->G * w->G;
            for (int64_t i = g0; i < g0 + w->G; i++) lo = fminf(lo, fb(src[i])), hi = fmaxf(hi, fb(src[i]));
            tol = (hi - lo) / 15.0 * 0.5 * 1.01 + fabsf(lo) / 1024.0 + fabsf(hi) / 1024.0 + 1e-7;
          }
          if (!(fabs((double)got - xv) <= tol)) {
            if (!far)
              fprintf(stderr, "%s: round trip slot %lld d %lld: %g -> %g (tolerance %g)\n", name,
                      (long long)sl, (long long)d, xv, got, tol);
            far++;
          }
        }
      }
  CHECK(far == 0, "%s: %lld K values do not survive the round trip", name, (long long)far);
  shadow_free(&sh);
  free(k), free(v), free(dk), free(dv);
  tcache_free(&t);
}

/* The special values of llmk.h's rules, checked directly. */
static void test_write_specials(void) {
  const int64_t D = 64;
  for (int f = 1; f < 4; f++) {
    tcache t;
    tcache_init(&t, (llmk_kv_format)f, 0, 1, 4, 1, D, 32, 1, 0);
    uint16_t k[4 * 64], v[4 * 64];
    /* row 0: zeros; row 1: all 2.5; row 2: 1..64 with NaN at 3, +Inf at 4, -Inf at 5;
     * row 3: only NaN and Inf in the first group, 0..31 in the second */
    for (int d = 0; d < D; d++) {
      k[d] = bf(0.0f);
      k[64 + d] = bf(2.5f);
      k[128 + d] = bf((float)(d + 1));
      k[192 + d] = d < 32 ? bf(d % 2 ? INFINITY : NAN) : bf((float)(d - 32));
    }
    k[128 + 3] = bf(NAN), k[128 + 4] = bf(INFINITY), k[128 + 5] = bf(-INFINITY);
    memcpy(v, k, sizeof v);
    llmk_tensor tk = heads_t(k, LLMK_BF16, 4, 1, D, D), tv = heads_t(v, LLMK_BF16, 4, 1, D, D);
    llmk_kv_loc loc = LLMK_KV_LOC_INIT;
    /* one sequence of 4 rows at positions 0..3 */
    int32_t offs[2] = {0, 4}, st[1] = {0};
    loc.offsets = llmk_tensor_1d(offs, LLMK_I32, 2);
    loc.start_pos = llmk_tensor_1d(st, LLMK_I32, 1);
    llmk_status s = llmk_kv_cache_write(H, &t.c, &tk, &tv, &loc, NULL);
    CHECK(s == LLMK_SUCCESS, "specials %s: %s", fmt_name(t.f), llmk_last_error());
    if (t.f == LLMK_KV_FP8) {
      const float *sc = (const float *)t.kp;
      CHECK(sc[0] == 1.0f / (448.0f * 512.0f), "FP8 zero head: scale %g, want MIN_SCALE", sc[0]);
      CHECK(t.k[0] == 0 && t.k[63] == 0, "FP8 zero head: codes %02x %02x, want 0", t.k[0], t.k[63]);
      CHECK(sc[1] == 2.5f / 448.0f, "FP8 all-equal head: scale %g, want 2.5/448", sc[1]);
      CHECK(sc[2] == 64.0f / 448.0f, "FP8 NaN/Inf head: scale %g, want 64/448 (NaN and Inf skipped)", sc[2]);
      CHECK(t.k[128 + 3] == 0x7F && t.k[128 + 4] == 0x7E && t.k[128 + 5] == 0xFE,
            "FP8 NaN/+Inf/-Inf codes %02x %02x %02x, want 7f 7e fe", t.k[131], t.k[132], t.k[133]);
    } else if (t.f == LLMK_KV_INT4) {
      const uint16_t *p = (const uint16_t *)t.kp; /* 4 f16 per head */
      CHECK(p[0] == 0 && p[1] == 0 && t.k[0] == 0, "INT4 zero head: scale %04x shift %04x code %02x",
            p[0], p[1], t.k[0]);
      CHECK(p[4] == 0 && p[5] == llmk_float_to_f16(2.5f) && t.k[32] == 0 && t.k[63] == 0,
            "INT4 all-equal head: scale %04x (want 0), shift %04x (want f16(2.5)), codes %02x %02x (want 0)",
            p[4], p[5], t.k[32], t.k[63]);
      const uint8_t b3 = t.k[64 + 1]; /* elements 2 (value 3) and 3 (NaN) */
      const uint8_t b4 = t.k[64 + 2]; /* elements 4 (+Inf) and 5 (-Inf) */
      CHECK((b3 >> 4) == 0 && (b4 & 15) == 15 && (b4 >> 4) == 0,
            "INT4 NaN -> %d (want 0), +Inf -> %d (want 15), -Inf -> %d (want 0)", b3 >> 4, b4 & 15, b4 >> 4);
      CHECK(p[12] == 0 && p[13] == 0, "INT4 group without finite values: scale %04x shift %04x, want 0 0",
            p[12], p[13]);
      CHECK(t.k[96] == 0 && t.k[96 + 15] == 0, "INT4 group without finite values: codes %02x %02x, want 0",
            t.k[96], t.k[96 + 15]);
      /* second group of row 3: 0..31: scale f16(31/15), shift 0 */
      CHECK(p[14] == llmk_float_to_f16(31.0f / 15.0f) && p[15] == 0 && (t.k[96 + 31] >> 4) == 15,
            "INT4 ramp group: scale %04x shift %04x last code %d", p[14], p[15], t.k[96 + 31] >> 4);
    } else {
      CHECK(t.k[128 + 3] == 0x7F && t.k[128 + 4] == 0x7E && t.k[128 + 5] == 0xFE,
            "FP8_TENSOR NaN/+Inf/-Inf codes %02x %02x %02x, want 7f 7e fe", t.k[131], t.k[132], t.k[133]);
      CHECK(t.k[64] == llmk_float_to_fp8(2.5f * (1.0f / 0.0213f), LLMK_E4M3), "FP8_TENSOR code of 2.5");
    }
    tcache_free(&t);
  }
  /* INT4: a range beyond f16 saturates the scale and the shift to 65504 */
  {
    tcache t;
    tcache_init(&t, LLMK_KV_INT4, 0, 1, 1, 1, D, 32, 1, 0);
    uint16_t k[64];
    for (int d = 0; d < D; d++) k[d] = bf(d == 0 ? -1e30f : d == 1 ? 1e30f : 1.0f);
    int32_t sp[1] = {0};
    llmk_tensor tk = heads_t(k, LLMK_BF16, 1, 1, D, D);
    llmk_kv_loc loc = LLMK_KV_LOC_INIT;
    loc.start_pos = llmk_tensor_1d(sp, LLMK_I32, 1);
    llmk_status s = llmk_kv_cache_write(H, &t.c, &tk, &tk, &loc, NULL);
    const uint16_t *p = (const uint16_t *)t.kp;
    CHECK(s == LLMK_SUCCESS && p[0] == 0x7BFF && p[1] == 0xFBFF,
          "INT4 huge range: scale %04x shift %04x, want 7bff fbff (%s)", p[0], p[1], llmk_last_error());
    tcache_free(&t);
  }
}

static void test_write(void) {
  const wcase cases[] = {
      {LLMK_KV_BF16, 0, 2, 64, 0},   {LLMK_KV_BF16, 1, 3, 128, 0},  {LLMK_KV_FP8, 0, 1, 256, 0},
      {LLMK_KV_FP8, 1, 2, 64, 0},    {LLMK_KV_FP8_TENSOR, 0, 2, 128, 0},
      {LLMK_KV_FP8_TENSOR, 1, 1, 256, 0}, {LLMK_KV_INT4, 0, 2, 64, 32}, {LLMK_KV_INT4, 1, 3, 128, 32},
      {LLMK_KV_INT4, 1, 1, 128, 128}, {LLMK_KV_INT4, 0, 2, 256, 128}, {LLMK_KV_INT4, 1, 2, 256, 32},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_write_case(&cases[i]);
  test_write_specials();
}

/* ------------------------------------------------------------------------ */
/* rope_qkv_write = rope + kv_cache_write                                    */
/* ------------------------------------------------------------------------ */

static void test_qkv_case(llmk_kv_format f, int paged, int64_t hkv, int64_t group, int64_t D,
                          int64_t G, int use_rope, llmk_rope_style st) {
  const int64_t B = 3, S1 = paged ? 16 : 32, max_pages = 2, S0 = paged ? 8 : B;
  const int64_t hq = hkv * group, width = (hq + 2 * hkv) * D, ld = width + 16;
  char name[160];
  snprintf(name, sizeof name, "[qkv %s %s Hkv=%lld Hq=%lld D=%lld%s]", fmt_name(f),
           paged ? "paged" : "contiguous", (long long)hkv, (long long)hq, (long long)D,
           use_rope ? (st == LLMK_ROPE_NEOX ? " neox" : " interleaved") : " no rope");
  tcache a, b;
  tcache_init(&a, f, paged, S0, S1, hkv, D, G, B, max_pages);
  tcache_init(&b, f, paged, S0, S1, hkv, D, G, B, max_pages);
  if (paged) memcpy(b.bt, a.bt, (size_t)(B * a.bt_ld) * 4);
  shadow sh;
  shadow_init(&sh, &a);
  int32_t offs[4] = {0, 5, 5, 12}, start[3] = {3, 0, 19};
  const int64_t T = offs[B];
  int32_t pos[12];
  for (int64_t bb = 0; bb < B; bb++)
    for (int64_t r = offs[bb]; r < offs[bb + 1]; r++) pos[r] = start[bb] + (int32_t)(r - offs[bb]);
  uint16_t *qkv = amalloc((size_t)(T * ld) * 2);
  for (int64_t i = 0; i < T * ld; i++) qkv[i] = bf(draw(irand(8) ? 2 : 3, 1.5f));
  for (int i = 0; i < 8; i++) qkv[irand(T * ld)] = 0x7F81; /* signaling NaNs, wherever they land */
  uint16_t *q_out = amalloc((size_t)(T * (hq * D + 8)) * 2), *q_ref = amalloc((size_t)(T * hq * D) * 2);
  memset(q_out, 0xA5, (size_t)(T * (hq * D + 8)) * 2);
  llmk_rope_desc rd = rope_desc(st, D == 64 ? 0 : D / 2, 500000.0, D == 128);
  llmk_tensor tqkv = llmk_tensor_2d(qkv, LLMK_BF16, T, width, ld);
  llmk_tensor tqo = heads_t(q_out, LLMK_BF16, T, hq, D, hq * D + 8);
  llmk_kv_loc loc = LLMK_KV_LOC_INIT;
  loc.offsets = llmk_tensor_1d(offs, LLMK_I32, B + 1);
  loc.start_pos = llmk_tensor_1d(start, LLMK_I32, B);
  llmk_status s = llmk_rope_qkv_write(H, use_rope ? &rd : NULL, &tqkv, hq, &a.c, &loc, &tqo, NULL);
  CHECK(s == LLMK_SUCCESS, "%s: %s", name, llmk_last_error());

  /* the reference path: llmk_rope on Q (bf16) and K (bf16 and f32), kv_cache_write */
  llmk_tensor tpos = llmk_tensor_1d(pos, LLMK_I32, T);
  llmk_tensor tq_in = heads_t(qkv, LLMK_BF16, T, hq, D, ld), tq_ref = heads_t(q_ref, LLMK_BF16, T, hq, D, hq * D);
  llmk_tensor tk_in = heads_t(qkv + hq * D, LLMK_BF16, T, hkv, D, ld);
  llmk_tensor tv_in = heads_t(qkv + (hq + hkv) * D, LLMK_BF16, T, hkv, D, ld);
  uint16_t *k_rot = amalloc((size_t)(T * hkv * D) * 2);
  float *k32 = amalloc((size_t)(T * hkv * D) * 4), *k32r = amalloc((size_t)(T * hkv * D) * 4);
  for (int64_t t = 0; t < T; t++)
    for (int64_t i = 0; i < hkv * D; i++) k32[t * hkv * D + i] = fb(qkv[t * ld + hq * D + i]);
  llmk_tensor tkr = heads_t(k_rot, LLMK_BF16, T, hkv, D, hkv * D);
  llmk_tensor tk32 = heads_t(k32, LLMK_F32, T, hkv, D, hkv * D), tk32r = heads_t(k32r, LLMK_F32, T, hkv, D, hkv * D);
  if (use_rope) {
    CHECK(llmk_rope(H, &rd, &tq_in, &tpos, &tq_ref, NULL) == LLMK_SUCCESS, "%s rope q: %s", name, llmk_last_error());
    CHECK(llmk_rope(H, &rd, &tk_in, &tpos, &tkr, NULL) == LLMK_SUCCESS, "%s rope k: %s", name, llmk_last_error());
    CHECK(llmk_rope(H, &rd, &tk32, &tpos, &tk32r, NULL) == LLMK_SUCCESS, "%s rope k f32: %s", name,
          llmk_last_error());
  } else {
    for (int64_t t = 0; t < T; t++) {
      memcpy(q_ref + t * hq * D, qkv + t * ld, (size_t)(hq * D) * 2);
      memcpy(k_rot + t * hkv * D, qkv + t * ld + hq * D, (size_t)(hkv * D) * 2);
    }
    memcpy(k32r, k32, (size_t)(T * hkv * D) * 4);
  }
  s = llmk_kv_cache_write(H, &b.c, &tkr, &tv_in, &loc, NULL);
  CHECK(s == LLMK_SUCCESS, "%s reference write: %s", name, llmk_last_error());
  int64_t bad_q = 0, bad_pad = 0;
  for (int64_t t = 0; t < T; t++) {
    bad_q += memcmp(q_out + t * (hq * D + 8), q_ref + t * hq * D, (size_t)(hq * D) * 2) != 0;
    for (int i = 0; i < 8; i++) bad_pad += q_out[t * (hq * D + 8) + hq * D + i] != 0xA5A5;
  }
  CHECK(bad_q == 0, "%s: %lld rows of q_out differ from llmk_rope's", name, (long long)bad_q);
  CHECK(bad_pad == 0, "%s: %lld q_out padding elements written", name, (long long)bad_pad);
  /* V always, K where rope + kv_cache_write (bf16 K) is the same thing */
  CHECK(memcmp(a.v, b.v, a.store_bytes) == 0 && (!a.param_bytes || memcmp(a.vp, b.vp, a.param_bytes) == 0),
        "%s: V differs from llmk_kv_cache_write's", name);
  if (!use_rope || f == LLMK_KV_BF16)
    CHECK(memcmp(a.k, b.k, a.store_bytes) == 0 && (!a.param_bytes || memcmp(a.kp, b.kp, a.param_bytes) == 0),
          "%s: K differs from llmk_rope + llmk_kv_cache_write", name);
  /* everything against the shadow: K from llmk_rope's fp32 output */
  for (int64_t bb = 0; bb < B; bb++)
    for (int64_t r = offs[bb]; r < offs[bb + 1]; r++)
      for (int64_t h = 0; h < hkv; h++) {
        float x[256];
        const int64_t sl = tslot(&a, bb, pos[r], h);
        shadow_put(&sh, &a, 0, sl, k32r + (r * hkv + h) * D);
        for (int64_t d = 0; d < D; d++) x[d] = fb(qkv[r * ld + (hq + hkv + h) * D + d]);
        shadow_put(&sh, &a, 1, sl, x);
      }
  const int64_t bad = shadow_diff(&sh, &a, name);
  CHECK(bad == 0, "%s: %lld cache bytes differ from the quantization of the fp32 rotated K / bf16 V",
        name, (long long)bad);
  shadow_free(&sh);
  tcache_free(&a), tcache_free(&b);
  free(qkv), free(q_out), free(q_ref), free(k_rot), free(k32), free(k32r);
}

static void test_qkv(void) {
  test_qkv_case(LLMK_KV_BF16, 0, 2, 3, 128, 0, 1, LLMK_ROPE_INTERLEAVED);
  test_qkv_case(LLMK_KV_BF16, 1, 1, 8, 64, 0, 1, LLMK_ROPE_NEOX);
  test_qkv_case(LLMK_KV_FP8, 1, 2, 4, 128, 0, 1, LLMK_ROPE_NEOX);
  test_qkv_case(LLMK_KV_FP8, 0, 1, 1, 256, 0, 0, LLMK_ROPE_NEOX);
  test_qkv_case(LLMK_KV_FP8_TENSOR, 0, 2, 2, 64, 0, 1, LLMK_ROPE_INTERLEAVED);
  test_qkv_case(LLMK_KV_INT4, 1, 2, 4, 128, 32, 1, LLMK_ROPE_INTERLEAVED);
  test_qkv_case(LLMK_KV_INT4, 0, 1, 16, 256, 128, 1, LLMK_ROPE_NEOX);
  test_qkv_case(LLMK_KV_INT4, 1, 3, 1, 64, 32, 0, LLMK_ROPE_NEOX);
}

/* ------------------------------------------------------------------------ */
/* Decode attention                                                          */
/* ------------------------------------------------------------------------ */

/* Fills every position 0 .. len[b] - 1 of each sequence through
 * llmk_kv_cache_write, in chunks of at most `chunk` rows. */
static void fill_cache(tcache *t, const int64_t *len, int64_t chunk, float kscale) {
  const int64_t hd = t->hkv * t->D;
  uint16_t *k = amalloc((size_t)(chunk * hd) * 2), *v = amalloc((size_t)(chunk * hd) * 2);
  for (int64_t b = 0; b < t->B; b++)
    for (int64_t p0 = 0; p0 < len[b]; p0 += chunk) {
      const int64_t n = len[b] - p0 < chunk ? len[b] - p0 : chunk;
      for (int64_t i = 0; i < n * hd; i++) k[i] = bf(t_rand_normal() * kscale), v[i] = bf(draw(2, 1.0f));
      /* sequence b only: the other rows of the table are given empty ranges */
      int32_t *offs = t_xmalloc((size_t)(t->B + 1) * 4), *start = t_xmalloc((size_t)t->B * 4);
      for (int64_t s = 0; s <= t->B; s++) offs[s] = s <= b ? 0 : (int32_t)n;
      for (int64_t s = 0; s < t->B; s++) start[s] = s == b ? (int32_t)p0 : 0;
      llmk_kv_loc loc = LLMK_KV_LOC_INIT;
      loc.offsets = llmk_tensor_1d(offs, LLMK_I32, t->B + 1);
      loc.start_pos = llmk_tensor_1d(start, LLMK_I32, t->B);
      llmk_tensor tk = heads_t(k, LLMK_BF16, n, t->hkv, t->D, hd), tv = heads_t(v, LLMK_BF16, n, t->hkv, t->D, hd);
      llmk_status s = llmk_kv_cache_write(H, &t->c, &tk, &tv, &loc, NULL);
      if (s) CHECK(0, "fill_cache: %s", llmk_last_error());
      free(offs), free(start);
    }
  free(k), free(v);
}

/* A straightforward fp64 softmax of the value table for every (b, j):
 * scores stored, max, exponentials, weighted sum. */
static void ref_attention(const tcache *t, int64_t B, int64_t hq, const uint16_t *q, int64_t ldq,
                          const int32_t *seq_lens, int64_t max_len, float scale, double *out,
                          double *lse) {
  const int64_t D = t->D, group = hq / t->hkv;
  for (int64_t b = 0; b < B; b++) {
    int64_t L = seq_lens[b] < 0 ? 0 : seq_lens[b];
    if (L > max_len) L = max_len;
    for (int64_t h = 0; h < t->hkv; h++) {
      double *sc = t_xmalloc((size_t)(group * (L + 1)) * sizeof(double));
      float kv[256];
      for (int64_t p = 0; p < L; p++) {
        const int64_t sl = tslot(t, b, p, h);
        for (int64_t d = 0; d < D; d++) kv[d] = ref_value(t, 0, sl, d);
        for (int64_t g = 0; g < group; g++) {
          const uint16_t *qr = q + b * ldq + (h * group + g) * D;
          double dot = 0;
          for (int64_t d = 0; d < D; d++) dot += (double)fb(qr[d]) * kv[d];
          sc[g * L + p] = (double)scale * dot;
        }
      }
      for (int64_t g = 0; g < group; g++) {
        const int64_t j = h * group + g;
        double *o = out + (b * hq + j) * D;
        for (int64_t d = 0; d < D; d++) o[d] = 0;
        if (L == 0) {
          lse[b * hq + j] = -INFINITY;
          continue;
        }
        double m = -INFINITY, sum = 0;
        for (int64_t p = 0; p < L; p++) m = fmax(m, sc[g * L + p]);
        for (int64_t p = 0; p < L; p++) {
          sc[g * L + p] = exp(sc[g * L + p] - m);
          sum += sc[g * L + p];
        }
        lse[b * hq + j] = m + log(sum);
      }
      for (int64_t p = 0; p < L; p++) {
        const int64_t sl = tslot(t, b, p, h);
        for (int64_t d = 0; d < D; d++) kv[d] = ref_value(t, 1, sl, d);
        for (int64_t g = 0; g < group; g++) {
          double *o = out + (b * hq + h * group + g) * D;
          const double w = sc[g * L + p];
          for (int64_t d = 0; d < D; d++) o[d] += w * kv[d];
        }
      }
      for (int64_t g = 0; g < group && L > 0; g++) {
        double sum = 0;
        for (int64_t p = 0; p < L; p++) sum += sc[g * L + p];
        double *o = out + (b * hq + h * group + g) * D;
        for (int64_t d = 0; d < D; d++) o[d] /= sum;
      }
      free(sc);
    }
  }
}

typedef struct acase {
  llmk_kv_format f;
  int paged;
  int64_t B, hkv, group, D, G;
  int with_lse;
} acase;

/* Runs llmk_attention_decode on t (filled) and compares with ref_attention. */
static void check_attention(const tcache *t, int64_t hq, const int32_t *seq_lens, int64_t max_len,
                            int with_lse, float qscale, const char *name) {
  const int64_t B = t->B, D = t->D, ldq = hq * D + 8, ldo = hq * D + 24;
  uint16_t *q = amalloc((size_t)(B * ldq) * 2), *out = amalloc((size_t)(B * ldo) * 2);
  float *lse = amalloc((size_t)(B * hq) * 4);
  for (int64_t i = 0; i < B * ldq; i++) q[i] = bf(t_rand_normal() * qscale);
  memset(out, 0xA5, (size_t)(B * ldo) * 2);
  memset(lse, 0xA5, (size_t)(B * hq) * 4);
  llmk_attention_desc ad = {LLMK_ATTENTION_DESC_SIZE, 1.0f / sqrtf((float)D), max_len, 0};
  llmk_tensor tq = heads_t(q, LLMK_BF16, B, hq, D, ldq), to = heads_t(out, LLMK_BF16, B, hq, D, ldo);
  llmk_tensor tl = llmk_tensor_2d(lse, LLMK_F32, B, hq, hq), ts = llmk_tensor_1d((void *)seq_lens, LLMK_I32, B);
  llmk_status s = llmk_attention_decode(H, &ad, &tq, &t->c, &ts, &to, with_lse ? &tl : NULL, NULL);
  CHECK(s == LLMK_SUCCESS, "%s: %s", name, llmk_last_error());
  double *ro = t_xmalloc((size_t)(B * hq * D) * sizeof(double)), *rl = t_xmalloc((size_t)(B * hq) * sizeof(double));
  ref_attention(t, B, hq, q, ldq, seq_lens, max_len, ad.softmax_scale, ro, rl);
  int64_t bad = 0, bad_lse = 0, bad_pad = 0;
  for (int64_t b = 0; b < B; b++)
    for (int64_t j = 0; j < hq; j++) {
      for (int64_t d = 0; d < D; d++) {
        const uint16_t gb = out[b * ldo + j * D + d];
        const double want = ro[(b * hq + j) * D + d], got = fb(gb);
        const int ok = want == 0 ? gb == 0 : fabs(got - want) <= fabs(want) * 0x1p-8;
        if (!ok) {
          if (!bad)
            fprintf(stderr, "%s: out[%lld][%lld][%lld] = %g, reference %.9g\n", name, (long long)b,
                    (long long)j, (long long)d, got, want);
          bad++;
        }
      }
      if (with_lse) {
        const double want = rl[b * hq + j], got = lse[b * hq + j];
        const int ok = isinf(want) ? (isinf(got) && got < 0) : fabs(got - want) <= 1e-6 * fmax(1.0, fabs(want));
        if (!ok) {
          if (!bad_lse)
            fprintf(stderr, "%s: lse[%lld][%lld] = %.9g, reference %.9g\n", name, (long long)b, (long long)j,
                    got, want);
          bad_lse++;
        }
      }
    }
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = hq * D; i < ldo; i++) bad_pad += out[b * ldo + i] != 0xA5A5;
  if (!with_lse)
    for (int64_t i = 0; i < B * hq; i++) bad_pad += fbits(lse[i]) != 0xA5A5A5A5u;
  CHECK(bad == 0, "%s: %lld outputs differ from the fp64 reference by more than 2^-8 relative", name,
        (long long)bad);
  CHECK(bad_lse == 0, "%s: %lld lse values differ from the reference", name, (long long)bad_lse);
  CHECK(bad_pad == 0, "%s: %lld elements outside out (padding, or lse when NULL) written", name,
        (long long)bad_pad);
  free(q), free(out), free(lse), free(ro), free(rl);
}

static void test_attention_case(const acase *a) {
  const int64_t ps = 16, max_pages = 4, S1 = a->paged ? ps : 48;
  const int64_t S0 = a->paged ? a->B * max_pages + 3 : a->B + 1;
  tcache t;
  tcache_init(&t, a->f, a->paged, S0, S1, a->hkv, a->D, a->G, a->B, max_pages);
  const int64_t cap = tcache_capacity(&t), hq = a->hkv * a->group;
  char name[160];
  snprintf(name, sizeof name, "[attention %s %s B=%lld Hkv=%lld group=%lld D=%lld%s]", fmt_name(a->f),
           a->paged ? "paged" : "contiguous", (long long)a->B, (long long)a->hkv, (long long)a->group,
           (long long)a->D, a->with_lse ? " lse" : "");
  int64_t len[8];
  for (int64_t b = 0; b < a->B; b++) len[b] = cap;
  fill_cache(&t, len, 64, 1.0f);
  /* lengths: 0, full, negative, beyond max_seq_len, random, 1 */
  const int64_t max_len = a->B % 2 ? cap : cap - 7;
  int32_t sl[8];
  const int32_t pattern[6] = {0, (int32_t)cap, -5, (int32_t)cap + 100, (int32_t)(1 + irand(cap)), 1};
  for (int64_t b = 0; b < a->B; b++) sl[b] = pattern[(b + a->B) % 6];
  check_attention(&t, hq, sl, max_len, a->with_lse, 1.0f, name);
  /* peaked softmax: large scores */
  for (int64_t b = 0; b < a->B; b++) sl[b] = (int32_t)(1 + irand(max_len));
  check_attention(&t, hq, sl, max_len, 1, 6.0f, name);
  /* max_seq_len = 0: every sequence is empty */
  check_attention(&t, hq, sl, 0, 1, 1.0f, name);
  tcache_free(&t);
}

static void test_attention(void) {
  const acase cases[] = {
      {LLMK_KV_BF16, 0, 3, 2, 1, 64, 0, 1},   {LLMK_KV_BF16, 1, 2, 3, 16, 256, 0, 0},
      {LLMK_KV_FP8, 1, 4, 1, 3, 128, 0, 1},   {LLMK_KV_FP8, 0, 5, 1, 1, 64, 0, 0},
      {LLMK_KV_FP8_TENSOR, 0, 2, 2, 8, 256, 0, 1}, {LLMK_KV_FP8_TENSOR, 1, 3, 1, 16, 64, 0, 1},
      {LLMK_KV_INT4, 1, 3, 2, 16, 128, 32, 1}, {LLMK_KV_INT4, 0, 2, 1, 8, 256, 128, 0},
      {LLMK_KV_INT4, 1, 1, 2, 3, 64, 32, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_attention_case(&cases[i]);
  /* one long paged sequence: 200000 tokens, INT4, group 4 */
  {
    tcache t;
    const int64_t ps = 1024, max_pages = 196, L = 200000;
    tcache_init(&t, LLMK_KV_INT4, 1, 200, ps, 1, 128, 32, 1, max_pages);
    int64_t len[1] = {L};
    fill_cache(&t, len, 50000, 1.0f);
    int32_t sl[1] = {(int32_t)L};
    check_attention(&t, 4, sl, max_pages * ps, 1, 2.0f, "[attention INT4 paged L=200000 group=4]");
    tcache_free(&t);
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void) {
  t_seed();
  if (llmk_create_cpu(&H) != LLMK_SUCCESS) {
    fprintf(stderr, "llmk_create_cpu: %s\n", llmk_last_error());
    return 2;
  }
  const struct { const char *name; void (*fn)(void); } parts[] = {
      {"rope", test_rope}, {"kv write", test_write}, {"rope_qkv_write", test_qkv},
      {"attention", test_attention}};
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    const double t0 = now_s();
    parts[i].fn();
    printf("%s: %.2f s\n", parts[i].name, now_s() - t0);
  }
  llmk_destroy(H);
  TEST_END();
}
