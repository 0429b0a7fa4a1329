/* opcheck cases: the INT4 weight ops (llmk_int4_quantize, _dequantize,
 * llmk_gemm_w4a16). The quantizer and the dequantizer are specified bit for
 * bit on both backends (NaN-equal for the dequantizer's NaN scales); the
 * GEMM differs from its CPU reference by the order of its fp32 sums, so
 * it is held to the BF16 GEMM's tolerance: relative Frobenius error <=
 * 5e-3 and each element within 1e-2 of its value plus 1e-2 of the rms. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "opcheck.h"

enum { I4_QUANTIZE, I4_DEQUANTIZE, I4_GEMM };

typedef struct int4_priv {
  int op;
  llmk_int4_desc d;
  int64_t M, N, K, ng;
  int dist;
  int f32;  /* dequantize: an f32 output */
  int bias; /* gemm: 0 none, 1 f32, 2 bf16 */
  int iw, ic, is, iz, ix, ib, iy;
} int4_priv;

static const llmk_tensor *tv(const oc_env *e, int i) { return i < 0 ? NULL : &e->t[i]; }

static void fill_int4(const oc_case *c, void *const *host, oc_rng *r, llmk_handle cpu) {
  (void)cpu;
  const int4_priv *q = OC_PARAMS(c, const int4_priv);
  if (q->op == I4_QUANTIZE) {
    const int64_t ld = c->buf[q->iw].strides[0];
    for (int64_t n = 0; n < q->N; n++)
      for (int64_t k = 0; k < q->K; k++) {
        float v = 0.02f * oc_normal(r);
        if (q->dist == OC_D_NAN_INF) {
          const int64_t u = oc_range(r, 0, 99);
          v = u == 0 ? NAN : u == 1 ? INFINITY : u == 2 ? -INFINITY : v;
        } else if (q->dist == OC_D_ZERO_ROWS && n % 3 == 0) {
          v = 0.0f;
        }
        oc_put(oc_at(c, host, q->iw, 0), LLMK_BF16, n * ld + k, v);
      }
    return;
  }
  /* codes: any bytes (the harness's random fill); scales small and positive, a few NaN; zeros 0 .. 15 */
  for (int64_t i = 0; i < q->N * q->ng; i++) {
    float s = (float)(0.002 + 0.01 * oc_uniform(r));
    if (q->dist == OC_D_NAN_INF && oc_range(r, 0, 99) == 0) s = NAN;
    oc_put(oc_at(c, host, q->is, 0), LLMK_BF16, i, s);
    if (q->iz >= 0) ((uint8_t *)oc_at(c, host, q->iz, 0))[i] = (uint8_t)oc_range(r, 0, 15);
  }
  if (q->op == I4_GEMM) {
    const int64_t ldx = c->buf[q->ix].strides[0];
    for (int64_t m = 0; m < q->M; m++)
      for (int64_t k = 0; k < q->K; k++) oc_put(oc_at(c, host, q->ix, 0), LLMK_BF16, m * ldx + k, oc_normal(r));
    if (q->ib >= 0)
      for (int64_t n = 0; n < q->N; n++) oc_put(oc_at(c, host, q->ib, 0), c->buf[q->ib].dtype, n, 0.1f * oc_normal(r));
  }
}

static llmk_status run_int4(const oc_case *c, const oc_env *e, void *stream) {
  const int4_priv *q = OC_PARAMS(c, const int4_priv);
  switch (q->op) {
  case I4_QUANTIZE:
    return llmk_int4_quantize(e->h, &q->d, &e->t[q->iw], &e->t[q->ic], &e->t[q->is], tv(e, q->iz), stream);
  case I4_DEQUANTIZE:
    return llmk_int4_dequantize(e->h, &q->d, &e->t[q->ic], &e->t[q->is], tv(e, q->iz), &e->t[q->iy], stream);
  default:
    return llmk_gemm_w4a16(e->h, &q->d, &e->t[q->ix], &e->t[q->ic], &e->t[q->is], tv(e, q->iz), tv(e, q->ib),
                           &e->t[q->iy], stream);
  }
}

static int64_t compare_w4a16(const oc_case *c, int buf, void *const *in, const void *ref, const void *got,
                             const char *label, FILE *log) {
  (void)in;
  const int4_priv *q = OC_PARAMS(c, const int4_priv);
  const int64_t ldy = c->buf[buf].strides[0];
  const uint16_t *yr = (const uint16_t *)ref + c->buf[buf].offset, *yg = (const uint16_t *)got + c->buf[buf].offset;
  double sum2 = 0, err2 = 0;
  for (int64_t m = 0; m < q->M; m++)
    for (int64_t n = 0; n < q->N; n++) {
      const double w = llmk_bf16_to_float(yr[m * ldy + n]);
      sum2 += w * w;
    }
  const double rms = q->M * q->N > 0 ? sqrt(sum2 / (double)(q->M * q->N)) : 0;
  int64_t bad = 0;
  for (int64_t m = 0; m < q->M; m++)
    for (int64_t n = 0; n < q->N; n++) {
      const double want = llmk_bf16_to_float(yr[m * ldy + n]), y = llmk_bf16_to_float(yg[m * ldy + n]);
      err2 += (y - want) * (y - want);
      if (!(fabs(y - want) <= 1e-2 * fabs(want) + 1e-2 * rms) && bad++ < 4)
        fprintf(log, "  %s: y[%lld,%lld]: cuda %.8g, cpu %.8g\n", label, (long long)m, (long long)n, y, want);
    }
  const double rel = sum2 > 0 ? sqrt(err2 / sum2) : sqrt(err2);
  if (!(rel <= 5e-3)) {
    fprintf(log, "  %s: relative Frobenius error %.3g > 5e-3\n", label, rel);
    bad++;
  }
  return bad;
}

static void int4_case(oc_list *l, int op, int64_t M, int64_t N, int64_t K, int group, int asym, int dist, int f32,
                      int bias, int64_t pad, uint64_t seed, int flags) {
  static const char *const ops[] = {"int4_quantize", "int4_dequantize", "gemm_w4a16"};
  static const char *const bias_names[] = {"none", "f32", "bf16"};
  oc_case *c = oc_list_add(l);
  oc_case_init(c, ops[op], seed);
  _Static_assert(sizeof(int4_priv) <= sizeof c->p, "int4_priv");
  int4_priv *q = OC_PARAMS(c, int4_priv);
  q->op = op, q->M = M, q->N = N, q->K = K, q->ng = K / group, q->dist = dist, q->f32 = f32, q->bias = bias;
  q->d = (llmk_int4_desc)LLMK_INT4_DESC_INIT;
  q->d.group = group, q->d.asymmetric = asym;
  q->iw = q->ix = q->ib = q->iy = q->iz = -1;
  const oc_role wr = op == I4_QUANTIZE ? OC_OUT : OC_IN;
  if (op == I4_QUANTIZE) q->iw = oc_buf_2d(c, "w", OC_IN, OC_CMP_BITS, LLMK_BF16, N, K, K + pad, 0);
  if (op == I4_GEMM) q->ix = oc_buf_2d(c, "x", OC_IN, OC_CMP_BITS, LLMK_BF16, M, K, K + pad, 0);
  q->ic = oc_buf_2d(c, "codes", wr, OC_CMP_BITS, LLMK_U8, N, K / 2, op == I4_GEMM ? K / 2 : K / 2 + pad, 0);
  q->is = oc_buf_2d(c, "scales", wr, OC_CMP_BITS, LLMK_BF16, N, q->ng, q->ng, 0);
  if (asym) q->iz = oc_buf_2d(c, "zeros", wr, OC_CMP_BITS, LLMK_U8, N, q->ng, q->ng, 0);
  if (op == I4_DEQUANTIZE)
    q->iy = oc_buf_2d(c, "y", OC_OUT, OC_CMP_NANEQ, f32 ? LLMK_F32 : LLMK_BF16, N, K, K + pad, 0);
  if (op == I4_GEMM) {
    if (bias) q->ib = oc_buf_1d(c, "bias", OC_IN, OC_CMP_BITS, bias == 1 ? LLMK_F32 : LLMK_BF16, N);
    q->iy = oc_buf_2d(c, "y", OC_OUT, OC_CMP_CUSTOM, LLMK_BF16, M, N, N + pad, 0);
    c->compare = compare_w4a16;
  }
  c->fill = fill_int4, c->run = run_int4, c->flags = flags;
  snprintf(c->dtype, sizeof c->dtype, "%s", op == I4_QUANTIZE ? "bf16" : "int4");
  oc_key(c, "m", M), oc_key(c, "n", N), oc_key(c, "k", K);
  c->bytes = (double)N * K / 2 + (double)N * q->ng * (asym ? 3 : 2) +
             (op == I4_QUANTIZE ? 2.0 * N * K : op == I4_DEQUANTIZE ? (f32 ? 4.0 : 2.0) * N * K : 2.0 * M * (K + N));
  snprintf(c->name, sizeof c->name, "M=%lld N=%lld K=%lld g%d %s pad=%lld %s%s bias=%s", (long long)M, (long long)N,
           (long long)K, group, asym ? "asym" : "sym", (long long)pad, oc_dist_name(dist), f32 ? " f32" : "",
           bias_names[bias]);
}

void oc_int4_cases(oc_list *l, int quick, uint64_t seed) {
  int s = 0;
  /* quantizer: normal, NaN / Inf, zero rows; both modes and groups; padded rows */
  int4_case(l, I4_QUANTIZE, 0, 64, 512, 128, 1, OC_D_NORMAL, 0, 0, 0, seed + s++, OC_QUICK);
  int4_case(l, I4_QUANTIZE, 0, 77, 448, 64, 0, OC_D_NAN_INF, 0, 0, 16, seed + s++, OC_QUICK);
  int4_case(l, I4_QUANTIZE, 0, 33, 256, 64, 1, OC_D_ZERO_ROWS, 0, 0, 8, seed + s++, 0);
  /* dequantizer: bf16 and f32, NaN scales */
  int4_case(l, I4_DEQUANTIZE, 0, 40, 512, 128, 1, OC_D_NORMAL, 0, 0, 0, seed + s++, OC_QUICK);
  int4_case(l, I4_DEQUANTIZE, 0, 29, 320, 64, 0, OC_D_NAN_INF, 1, 0, 8, seed + s++, 0);
  int4_case(l, I4_DEQUANTIZE, 0, 16, 128, 128, 1, OC_D_NAN_INF, 1, 0, 0, seed + s++, 0);
  /* the GEMM: decode (one or two mma N tiles, launches of 16 tokens), odd N, half chunks, stripes */
  int4_case(l, I4_GEMM, 1, 256, 1024, 128, 1, OC_D_NORMAL, 0, 0, 0, seed + s++, OC_QUICK);
  int4_case(l, I4_GEMM, 11, 77, 448, 64, 0, OC_D_NORMAL, 0, 2, 8, seed + s++, OC_QUICK);
  int4_case(l, I4_GEMM, 16, 392, 2048, 128, 1, OC_D_NORMAL, 0, 1, 0, seed + s++, 0);
  int4_case(l, I4_GEMM, 37, 203, 512, 64, 1, OC_D_NORMAL, 0, 1, 8, seed + s++, 0);
  if (!quick) int4_case(l, I4_GEMM, 80, 1024, 2048, 128, 0, OC_D_NORMAL, 0, 2, 0, seed + s++, 0);
}
