/* INT4 weights on the CPU backend: the quantizer and dequantizer against
 * llmk.h's rules written out a second way (per element, in double where
 * the rule allows), checkpoint import against words packed here by each
 * format's own loop (GPTQ, AWQ's column order, rows; GPTQ v1's zero - 1),
 * zero points at the code range's edges, odd N, and bad arguments: a clear
 * status and nothing written. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "llmk.h"

static llmk_handle cpu;

static uint16_t bf16(float x) { return llmk_float_to_bf16(x); }
static float f32(uint16_t b) { return llmk_bf16_to_float(b); }

/* a weight row set: normal values, some groups all zero, a few NaN / Inf,
 * outliers, subnormals */
static uint16_t *rand_weight(int64_t N, int64_t ld, int group) {
  uint16_t *w = t_xmalloc((size_t)(N * ld) * 2);
  for (int64_t i = 0; i < N * ld; i++) {
    const int64_t n = i / ld, k = i % ld, g = k / group;
    float v = 0.02f * t_rand_normal();
    if ((n + g) % 11 == 3) v = 0.0f;                       /* an all-zero group */
    else if ((n * 7 + g) % 13 == 5) v = fabsf(v);          /* a group of positives only */
    if (t_rand_u64() % 509 == 0) v *= 40.0f;               /* outliers */
    if (t_rand_u64() % 1021 == 0) v = (t_rand_u64() & 1) ? NAN : -INFINITY;
    if ((n * 3 + g) % 17 == 9) v *= 1e-38f;                /* subnormal scales */
    w[i] = bf16(v);
  }
  return w;
}

/* llmk.h's quantizer rules, element by element */
static void ref_group(const uint16_t *v, int group, int asym, uint16_t *s_out, int *z_out, int *codes) {
  double a = 0, lo = 0, hi = 0;
  for (int i = 0; i < group; i++) {
    const double x = f32(v[i]);
    if (!isfinite(x)) continue;
    if (fabs(x) > a) a = fabs(x);
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  uint16_t s;
  int z;
  if (!asym) {
    s = bf16((float)a / 7.0f), z = 8; /* a / 7 in fp32 (a is a bf16 value: exact in both) */
  } else {
    s = bf16((float)((hi - lo) / 15.0));
    const float sf = f32(s);
    z = 0;
    if (sf > 0) {
      const float r = rintf((float)-lo / sf);
      z = r < 0 ? 0 : r > 15 ? 15 : (int)r;
    }
  }
  const float sf = f32(s);
  for (int i = 0; i < group; i++) {
    const float x = f32(v[i]);
    int q = z;
    if (sf > 0 && x == x) {
      const float r = rintf(x / sf) + (float)z;
      q = !(r > 0) ? 0 : r > 15 ? 15 : (int)r;
    }
    codes[i] = q;
  }
  *s_out = s, *z_out = z;
}

static void quantize_case(int64_t N, int64_t K, int group, int asym, int pad) {
  const int64_t ld = K + pad, ng = K / group, lc = K / 2 + pad;
  uint16_t *w = rand_weight(N, ld, group);
  uint8_t *codes = t_xmalloc((size_t)(N * lc)), *zeros = t_xmalloc((size_t)(N * ng));
  uint16_t *scales = t_xmalloc((size_t)(N * ng) * 2);
  memset(codes, 0xA5, (size_t)(N * lc));
  llmk_int4_desc d = LLMK_INT4_DESC_INIT;
  d.group = group, d.asymmetric = asym;
  llmk_tensor tw = llmk_tensor_2d(w, LLMK_BF16, N, K, ld), tc = llmk_tensor_2d(codes, LLMK_U8, N, K / 2, lc);
  llmk_tensor ts = llmk_tensor_2d(scales, LLMK_BF16, N, ng, ng), tz = llmk_tensor_2d(zeros, LLMK_U8, N, ng, ng);
  llmk_status st = llmk_int4_quantize(cpu, &d, &tw, &tc, &ts, asym ? &tz : NULL, NULL);
  CHECK(st == LLMK_SUCCESS, "quantize N %lld K %lld: %s", (long long)N, (long long)K, llmk_last_error());
  int bad = 0, pad_bad = 0, err_bad = 0;
  int *q = t_xmalloc((size_t)group * sizeof(int));
  for (int64_t n = 0; n < N; n++) {
    for (int64_t g = 0; g < ng; g++) {
      uint16_t s;
      int z;
      ref_group(w + n * ld + g * group, group, asym, &s, &z, q);
      bad += scales[n * ng + g] != s || (asym && zeros[n * ng + g] != z);
      for (int i = 0; i < group; i++) {
        const int64_t k = g * group + i;
        const int got = k % 2 ? codes[n * lc + k / 2] >> 4 : codes[n * lc + k / 2] & 15;
        bad += got != q[i];
        /* within half a step of the weight; asymmetric: a little more at the
         * range's ends, where the bf16 scale and the rounded zero point
         * can put the end past the last code (by at most 0.06 of a step);
         * subnormal scales, of a few bits, are left out */
        const float x = f32(w[n * ld + k]), y = (float)(got - z) * f32(s);
        const float bound = (asym ? 0.56f : 0.5f) * f32(s) * (1 + 1e-6f);
        if (isfinite(x) && f32(s) >= FLT_MIN && (asym || fabsf(x) <= 7 * f32(s))) err_bad += fabsf(x - y) > bound;
      }
    }
    for (int64_t j = K / 2; j < lc; j++) pad_bad += codes[n * lc + j] != 0xA5;
  }
  CHECK(!bad, "quantize N %lld K %lld group %d %s: %d codes, scales or zeros differ from the rule", (long long)N,
        (long long)K, group, asym ? "asymmetric" : "symmetric", bad);
  CHECK(!pad_bad, "quantize wrote %d padding bytes", pad_bad);
  CHECK(!err_bad, "quantize: %d elements further than half a step from their weight", err_bad);
  /* dequantize: bf16 and f32 */
  float *yf = t_xmalloc((size_t)(N * K) * 4);
  uint16_t *yb = t_xmalloc((size_t)(N * K) * 2);
  llmk_tensor tyf = llmk_tensor_2d(yf, LLMK_F32, N, K, K), tyb = llmk_tensor_2d(yb, LLMK_BF16, N, K, K);
  st = llmk_int4_dequantize(cpu, &d, &tc, &ts, asym ? &tz : NULL, &tyf, NULL);
  if (!st) st = llmk_int4_dequantize(cpu, &d, &tc, &ts, asym ? &tz : NULL, &tyb, NULL);
  CHECK(st == LLMK_SUCCESS, "dequantize: %s", llmk_last_error());
  bad = 0;
  for (int64_t n = 0; n < N; n++)
    for (int64_t k = 0; k < K; k++) {
      const int64_t g = n * ng + k / group;
      const int code = k % 2 ? codes[n * lc + k / 2] >> 4 : codes[n * lc + k / 2] & 15;
      const double v = (double)(code - (asym ? zeros[g] : 8)) * f32(scales[g]);
      bad += yf[n * K + k] != (float)v || yb[n * K + k] != bf16((float)v);
    }
  CHECK(!bad, "dequantize N %lld K %lld: %d elements differ from (q - z) s", (long long)N, (long long)K, bad);
  free(w), free(codes), free(zeros), free(scales), free(q), free(yf), free(yb);
}

static void quantizer(void) {
  quantize_case(64, 256, 128, 0, 0);
  quantize_case(64, 256, 128, 1, 0);
  quantize_case(37, 192, 64, 0, 16);
  quantize_case(37, 192, 64, 1, 16); /* odd N, padded rows */
  quantize_case(1, 128, 128, 1, 0);
}

/* ---- import ------------------------------------------------------------- */

static const int AWQ[8] = {0, 2, 4, 6, 1, 3, 5, 7};

static void import_case(llmk_int4_packing packing, int64_t N, int64_t K, int group, int asym, int v1, int bf16_scales) {
  const int64_t ng = K / group;
  uint8_t *q = t_xmalloc((size_t)(N * K)), *z = t_xmalloc((size_t)(N * ng));
  for (int64_t i = 0; i < N * K; i++) q[i] = (uint8_t)(t_rand_u64() % 16); /* q[n K + k] */
  for (int64_t i = 0; i < N * ng; i++) z[i] = asym ? (uint8_t)(i % 5 == 0 ? 0 : i % 5 == 1 ? 15 : t_rand_u64() % 16) : 8;
  uint16_t *sc = t_xmalloc((size_t)(N * ng) * 2); /* checkpoint order [ng, N] */
  for (int64_t i = 0; i < N * ng; i++) {
    const float v = 0.001f + 0.01f * (float)t_rand_uniform();
    if (bf16_scales) sc[i] = bf16(v);
    else { /* f16 bits of a value with 10 mantissa bits: built from its exponent */
      int e;
      const float m = frexpf(v, &e); /* v = m 2^e, m in [0.5, 1) */
      sc[i] = (uint16_t)(((e - 1 + 15) << 10) | ((int)ldexpf(m * 2 - 1, 10) & 1023));
    }
  }
  /* pack as each format's writer does */
  const int64_t nw = packing == LLMK_INT4_AWQ ? K * (N / 8) : N * K / 8;
  int32_t *qw = t_xmalloc((size_t)nw * 4), *qz = t_xmalloc((size_t)(ng * N / 8) * 4);
  memset(qw, 0, (size_t)nw * 4), memset(qz, 0, (size_t)(ng * N / 8) * 4);
  for (int64_t n = 0; n < N; n++)
    for (int64_t k = 0; k < K; k++) {
      const uint32_t c = q[n * K + k];
      if (packing == LLMK_INT4_GPTQ) qw[(k / 8) * N + n] |= (int32_t)(c << (4 * (k % 8)));
      if (packing == LLMK_INT4_ROWS) qw[n * (K / 8) + k / 8] |= (int32_t)(c << (4 * (k % 8)));
    }
  if (packing == LLMK_INT4_AWQ)
    for (int64_t k = 0; k < K; k++)
      for (int64_t col = 0; col < N / 8; col++)
        for (int i = 0; i < 8; i++) qw[k * (N / 8) + col] |= (int32_t)((uint32_t)q[(col * 8 + AWQ[i]) * K + k] << (4 * i));
  for (int64_t g = 0; g < ng; g++)
    for (int64_t col = 0; col < N / 8; col++)
      for (int i = 0; i < 8; i++) {
        const int64_t n = col * 8 + (packing == LLMK_INT4_AWQ ? AWQ[i] : i);
        const uint32_t stored = (uint32_t)(v1 ? (z[n * ng + g] + 15) % 16 : z[n * ng + g]);
        qz[g * (N / 8) + col] |= (int32_t)(stored << (4 * i));
      }
  uint8_t *codes = t_xmalloc((size_t)(N * K / 2)), *zeros = t_xmalloc((size_t)(N * ng));
  uint16_t *scales = t_xmalloc((size_t)(N * ng) * 2);
  llmk_int4_desc d = LLMK_INT4_DESC_INIT;
  d.group = group, d.asymmetric = asym;
  llmk_int4_import_desc im = LLMK_INT4_IMPORT_DESC_INIT;
  im.packing = packing, im.zero_plus_one = v1, im.scale_dtype = bf16_scales ? LLMK_BF16 : LLMK_F16;
  const llmk_status st = llmk_int4_import(&d, &im, N, K, qw, qz, sc, codes, scales, asym ? zeros : NULL);
  CHECK(st == LLMK_SUCCESS, "import packing %d: %s", (int)packing, llmk_last_error());
  int bad = 0;
  for (int64_t n = 0; n < N; n++) {
    for (int64_t k = 0; k < K; k += 2) bad += codes[n * K / 2 + k / 2] != (q[n * K + k] | q[n * K + k + 1] << 4);
    for (int64_t g = 0; g < ng; g++) {
      const uint16_t want = bf16_scales ? sc[g * N + n]
                                        : bf16(ldexpf((float)(1024 | (sc[g * N + n] & 1023)), (sc[g * N + n] >> 10) - 25));
      bad += scales[n * ng + g] != want || (asym && zeros[n * ng + g] != z[n * ng + g]);
    }
  }
  CHECK(!bad, "import packing %d N %lld K %lld group %d%s%s: %d values differ", (int)packing, (long long)N,
        (long long)K, group, asym ? " asymmetric" : "", v1 ? " v1" : "", bad);
  free(q), free(z), free(sc), free(qw), free(qz), free(codes), free(zeros), free(scales);
}

static void import(void) {
  for (int p = 0; p < 3; p++) {
    import_case((llmk_int4_packing)p, 40, 256, 128, 1, 0, 0);
    import_case((llmk_int4_packing)p, 16, 128, 64, 0, 0, 1);
    import_case((llmk_int4_packing)p, 24, 384, 128, 1, 1, 1);
  }
}

/* ---- bad arguments ------------------------------------------------------ */

static void bad_args(void) {
  uint16_t w[16 * 128], scales[16];
  uint8_t codes[16 * 64], zeros[16];
  memset(w, 0, sizeof w), memset(codes, 0x5C, sizeof codes), memset(scales, 0x5C, sizeof scales);
  memset(zeros, 0x5C, sizeof zeros);
  llmk_tensor tw = llmk_tensor_2d(w, LLMK_BF16, 16, 128, 128), tc = llmk_tensor_2d(codes, LLMK_U8, 16, 64, 64);
  llmk_tensor ts = llmk_tensor_2d(scales, LLMK_BF16, 16, 1, 1), tz = llmk_tensor_2d(zeros, LLMK_U8, 16, 1, 1);
  llmk_int4_desc d = LLMK_INT4_DESC_INIT;
  d.group = 32;
  CHECK(llmk_int4_quantize(cpu, &d, &tw, &tc, &ts, NULL, NULL) == LLMK_ERR_INVALID_ARGUMENT, "group 32 accepted");
  d.group = 128;
  llmk_tensor tw_odd = llmk_tensor_2d(w, LLMK_BF16, 8, 200, 200), tc_odd = llmk_tensor_2d(codes, LLMK_U8, 8, 100, 100);
  CHECK(llmk_int4_quantize(cpu, &d, &tw_odd, &tc_odd, &ts, NULL, NULL) == LLMK_ERR_INVALID_ARGUMENT &&
            strstr(llmk_last_error(), "multiple"),
        "K = 200 with groups of 128 accepted (or not named): %s", llmk_last_error());
  CHECK(llmk_int4_quantize(cpu, &d, &tw, &tc, &ts, &tz, NULL) == LLMK_ERR_INVALID_ARGUMENT,
        "zeros for a symmetric weight accepted");
  d.asymmetric = 1;
  CHECK(llmk_int4_quantize(cpu, &d, &tw, &tc, &ts, NULL, NULL) == LLMK_ERR_INVALID_ARGUMENT,
        "asymmetric without zeros accepted");
  llmk_tensor tc_short = llmk_tensor_2d(codes, LLMK_U8, 16, 63, 64);
  CHECK(llmk_int4_quantize(cpu, &d, &tw, &tc_short, &ts, &tz, NULL) == LLMK_ERR_INVALID_ARGUMENT,
        "codes of 63 bytes a row accepted");
  llmk_tensor tc_f = llmk_tensor_2d(codes, LLMK_E4M3, 16, 64, 64);
  CHECK(llmk_int4_quantize(cpu, &d, &tw, &tc_f, &ts, &tz, NULL) == LLMK_ERR_INVALID_ARGUMENT, "e4m3 codes accepted");
  llmk_tensor tz_on_c = llmk_tensor_2d(codes, LLMK_U8, 16, 1, 1);
  CHECK(llmk_int4_quantize(cpu, &d, &tw, &tc, &ts, &tz_on_c, NULL) == LLMK_ERR_INVALID_ARGUMENT,
        "zeros overlapping codes accepted");
  llmk_tensor ty_on_c = llmk_tensor_2d(codes, LLMK_BF16, 4, 128, 128);
  llmk_tensor tc4 = llmk_tensor_2d(codes + 512, LLMK_U8, 4, 64, 64), ts4 = llmk_tensor_2d(scales, LLMK_BF16, 4, 1, 1);
  llmk_tensor tz4 = llmk_tensor_2d(zeros, LLMK_U8, 4, 1, 1);
  CHECK(llmk_int4_dequantize(cpu, &d, &tc4, &ts4, &tz4, &ty_on_c, NULL) == LLMK_ERR_INVALID_ARGUMENT,
        "dequantize: y overlapping codes accepted");
  int wrote = 0;
  for (size_t i = 0; i < sizeof codes; i++) wrote |= codes[i] != 0x5C;
  for (int i = 0; i < 16; i++) wrote |= scales[i] != 0x5C5C || zeros[i] != 0x5C;
  /* import: N not a multiple of 8, a symmetric import of zero points other than 8 */
  int32_t qw[16 * 16] = {0}, qz[2] = {0x12345678, 0};
  uint16_t sc[16];
  for (int i = 0; i < 16; i++) sc[i] = bf16(0.01f);
  llmk_int4_import_desc im = LLMK_INT4_IMPORT_DESC_INIT;
  im.scale_dtype = LLMK_BF16;
  d.asymmetric = 0;
  CHECK(llmk_int4_import(&d, &im, 12, 128, qw, NULL, sc, codes, scales, NULL) == LLMK_ERR_INVALID_ARGUMENT,
        "import of N = 12 accepted");
  CHECK(llmk_int4_import(&d, &im, 16, 128, qw, qz, sc, codes, scales, NULL) == LLMK_ERR_INVALID_ARGUMENT &&
            strstr(llmk_last_error(), "symmetric"),
        "symmetric import of zero points other than 8 accepted: %s", llmk_last_error());
  sc[3] = 0x7F80; /* +Inf */
  CHECK(llmk_int4_import(&d, &im, 16, 128, qw, NULL, sc, codes, scales, NULL) == LLMK_ERR_INVALID_ARGUMENT,
        "an infinite scale accepted");
  for (size_t i = 0; i < sizeof codes; i++) wrote |= codes[i] != 0x5C;
  for (int i = 0; i < 16; i++) wrote |= scales[i] != 0x5C5C;
  CHECK(!wrote, "a refused call wrote to its outputs");
}

int main(void) {
  t_seed();
  if (llmk_create_cpu(&cpu) != LLMK_SUCCESS) return 2;
  static const t_part parts[] = {{"quantizer", quantizer}, {"import", import}, {"bad arguments", bad_args}};
  t_run_parts(parts, sizeof parts / sizeof parts[0]);
  llmk_destroy(cpu);
  TEST_END();
}
