/*
 * llmk_kv_cache_write, llmk_kv_cache_dequantize and llmk_rope_qkv_write on
 * the CPU backend (the reference the CUDA kernels are tested against):
 *  - kv_cache_write + kv_cache_dequantize: all four formats, contiguous and
 *    paged (shuffled block table with a row pitch) caches, prefill with
 *    variable lengths (empty sequences included) then a decode step; every
 *    byte of storage and parameters compared with the quantization rules
 *    re-derived from llmk.h (tests/kv_ref.h; unwritten slots must keep their
 *    poison), every dequantized value with the value table; targeted
 *    special values (zeros, all-equal, NaN, +-Inf, huge ranges); round-trip
 *    error bounds.
 *  - rope_qkv_write: equals llmk_rope + llmk_kv_cache_write (bitwise: Q, V,
 *    and K for the BF16 cache; K of the quantized formats is quantized from
 *    the fp32 rotated value, checked against llmk_rope's f32 output).
 * RoPE: test_rope_cpu.c; decode attention: test_attention_cpu.c; bad
 * inputs: test_attention_errors.c.
 */
#include "kv_ref.h"

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

int main(void) {
  t_seed();
  if (llmk_create_cpu(&H) != LLMK_SUCCESS) {
    fprintf(stderr, "llmk_create_cpu: %s\n", llmk_last_error());
    return 2;
  }
  const t_part parts[] = {{"kv write", test_write}, {"rope_qkv_write", test_qkv}};
  t_run_parts(parts, sizeof parts / sizeof parts[0]);
  llmk_destroy(H);
  TEST_END();
}
