/* opcheck cases: llmk_gemm_grouped, stacked and masked, tensor-, row- and
 * block-wise FP8 and BF16. Every row of y belongs to a group here, since
 * the harness checks that each output element is written (rows no group
 * owns are tests/test_gemm_grouped.c's business). CUDA against the CPU
 * reference with the dense GEMM's tolerances (docs/DESIGN.md, "GEMM
 * tolerances"), each row with its group's weight and scales:
 *   FP8: relative Frobenius error <= 1e-2; per element |y - ref| <=
 *     1e-2 |ref| + 1e-2 rms(ref) + 3e-2 * sum over 32-deep groups of
 *     |sum t_k| (+ 1e-3 * sum |t_k| with fast accumulation);
 *   BF16: 5e-3, and 1e-2 |ref| + 1e-2 rms(ref). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opcheck.h"

#define GG_MAX_G 8

typedef struct grouped_priv {
  int fp8;
  llmk_scaling sc;
  llmk_group_layout layout;
  int64_t G, N, K, rows, m_max, KB, NB;
  int32_t sizes[GG_MAX_G];
  int ix, iw, ixs, iws, isz, iy;
} grouped_priv;

/* The group of each row of x (all rows are owned in these cases). */
static int64_t group_of(const grouped_priv *q, int64_t r) {
  if (q->layout == LLMK_GROUP_MASKED) return r / q->m_max;
  int64_t end = 0;
  for (int64_t g = 0; g < q->G; g++) {
    end += q->sizes[g] > 0 ? q->sizes[g] : 0;
    if (r < end) return g;
  }
  return q->G - 1;
}

/* v [rows, cols] of N(0, 1) times a random power of two per row. */
static void gg_values(float *v, int64_t rows, int64_t cols, oc_rng *r) {
  for (int64_t i = 0; i < rows; i++) {
    const float mag = exp2f((float)(oc_uniform(r) * 4.0 - 2.0));
    for (int64_t k = 0; k < cols; k++) v[i * cols + k] = mag * oc_normal(r);
  }
}

/* Quantizes v [rows, K] into codes and contiguous scales with scaling sc
 * (BLOCK: block_m x 128). */
static void gg_quantize(llmk_handle cpu, llmk_scaling sc, int64_t block_m, const float *v, int64_t rows, int64_t K,
                        uint8_t *codes, float *scales) {
  llmk_quantize_desc d = LLMK_QUANTIZE_DESC_INIT;
  d.scaling = sc, d.block_m = block_m, d.block_k = 128;
  const int64_t kb = (K + 127) / 128, br = (rows + block_m - 1) / block_m;
  const llmk_tensor tv = llmk_tensor_2d((void *)v, LLMK_F32, rows, K, K);
  const llmk_tensor tq = llmk_tensor_2d(codes, LLMK_E4M3, rows, K, K);
  const llmk_tensor ts = sc == LLMK_SCALING_BLOCK  ? llmk_tensor_2d(scales, LLMK_F32, br, kb, kb)
                         : sc == LLMK_SCALING_ROW ? llmk_tensor_1d(scales, LLMK_F32, rows)
                                                  : llmk_tensor_1d(scales, LLMK_F32, 1);
  if (llmk_quantize_fp8(cpu, &d, &tv, &tq, &ts, NULL) != LLMK_SUCCESS)
    fprintf(stderr, "opcheck: grouped gemm inputs: llmk_quantize_fp8: %s\n", llmk_last_error());
}

static void fill_grouped(const oc_case *c, void *const *host, oc_rng *r, llmk_handle cpu) {
  const grouped_priv *q = OC_PARAMS(c, const grouped_priv);
  const int64_t N = q->N, K = q->K, rows = q->rows;
  float *v = malloc((size_t)((rows > N ? rows : N) * K + 1) * sizeof(float));
  memcpy(oc_at(c, host, q->isz, 0), q->sizes, (size_t)q->G * sizeof(int32_t));
  if (!q->fp8) {
    gg_values(v, rows, K, r);
    for (int64_t i = 0; i < rows * K; i++) ((uint16_t *)oc_at(c, host, q->ix, 0))[i] = llmk_float_to_bf16(v[i]);
    for (int64_t g = 0; g < q->G; g++) {
      gg_values(v, N, K, r);
      for (int64_t i = 0; i < N * K; i++)
        ((uint16_t *)oc_at(c, host, q->iw, 0))[g * N * K + i] = llmk_float_to_bf16(0.05f * v[i]);
    }
    free(v);
    return;
  }
  uint8_t *x = oc_at(c, host, q->ix, 0), *w = oc_at(c, host, q->iw, 0);
  float *xs = oc_at(c, host, q->ixs, 0), *ws = oc_at(c, host, q->iws, 0);
  gg_values(v, rows, K, r);
  if (q->sc == LLMK_SCALING_TENSOR) { /* one scale per group: each group's rows quantized together */
    int64_t r0 = 0;
    for (int64_t g = 0; g < q->G; g++) {
      int64_t n = q->layout == LLMK_GROUP_MASKED ? q->m_max : (q->sizes[g] > 0 ? q->sizes[g] : 0);
      if (q->layout == LLMK_GROUP_MASKED) r0 = g * q->m_max;
      if (n > 0) gg_quantize(cpu, LLMK_SCALING_TENSOR, 1, v + r0 * K, n, K, x + r0 * K, xs + g);
      else xs[g] = 1.0f;
      r0 += n;
    }
  } else {
    gg_quantize(cpu, q->sc, 1, v, rows, K, x, xs);
  }
  for (int64_t g = 0; g < q->G; g++) {
    gg_values(v, N, K, r);
    float *sg = ws + g * (q->sc == LLMK_SCALING_TENSOR ? 1 : q->sc == LLMK_SCALING_ROW ? N : q->NB * q->KB);
    gg_quantize(cpu, q->sc, 128, v, N, K, w + g * N * K, sg);
  }
  free(v);
}

static llmk_status run_grouped(const oc_case *c, const oc_env *e, void *stream) {
  const grouped_priv *q = OC_PARAMS(c, const grouped_priv);
  llmk_grouped_gemm_desc d = LLMK_GROUPED_GEMM_DESC_INIT;
  d.layout = q->layout, d.scaling = q->sc;
  return llmk_gemm_grouped(e->h, &d, &e->t[q->ix], &e->t[q->iw], q->fp8 ? &e->t[q->ixs] : NULL,
                           q->fp8 ? &e->t[q->iws] : NULL, NULL, &e->t[q->isz], &e->t[q->iy], stream);
}

static int64_t compare_grouped(const oc_case *c, int buf, void *const *in, const void *ref, const void *got,
                               const char *label, FILE *log) {
  const grouped_priv *q = OC_PARAMS(c, const grouped_priv);
  const int64_t N = q->N, K = q->K, rows = q->rows;
  const uint16_t *yr = (const uint16_t *)ref + c->buf[buf].offset, *yg = (const uint16_t *)got + c->buf[buf].offset;
  const int fast = q->fp8 && q->sc != LLMK_SCALING_BLOCK;
  const double frob_tol = q->fp8 ? 1e-2 : 5e-3;
  double sum2 = 0, err2 = 0;
  for (int64_t i = 0; i < rows * N; i++) sum2 += (double)llmk_bf16_to_float(yr[i]) * llmk_bf16_to_float(yr[i]);
  const double rms = rows * N > 0 ? sqrt(sum2 / (double)(rows * N)) : 0;
  const uint8_t *x = oc_at(c, in, q->ix, 0), *w = oc_at(c, in, q->iw, 0);
  const float *xs = q->fp8 ? oc_at(c, in, q->ixs, 0) : NULL, *ws = q->fp8 ? oc_at(c, in, q->iws, 0) : NULL;
  int64_t bad = 0;
  for (int64_t m = 0; m < rows; m++) {
    const int64_t g = group_of(q, m);
    for (int64_t n = 0; n < N; n++) {
      const double want = llmk_bf16_to_float(yr[m * N + n]), y = llmk_bf16_to_float(yg[m * N + n]);
      double tol = 1e-2 * fabs(want) + 1e-2 * rms;
      if (q->fp8) {
        double grp = 0, abs_grp = 0, abs_acc = 0;
        for (int64_t k = 0; k < K; k++) {
          const int64_t kb = k / 128;
          const double sx = q->sc == LLMK_SCALING_TENSOR ? xs[g] : q->sc == LLMK_SCALING_ROW ? xs[m] : xs[m * q->KB + kb];
          const double sw = q->sc == LLMK_SCALING_TENSOR ? ws[g]
                            : q->sc == LLMK_SCALING_ROW ? ws[g * N + n]
                                                        : ws[(g * q->NB + n / 128) * q->KB + kb];
          const double t = llmk_fp8_to_float(x[m * K + k], LLMK_E4M3) * sx *
                           llmk_fp8_to_float(w[(g * N + n) * K + k], LLMK_E4M3) * sw;
          grp += t, abs_acc += fabs(t);
          if (k % 32 == 31 || k == K - 1) abs_grp += fabs(grp), grp = 0;
        }
        tol += 3e-2 * abs_grp + (fast ? 1e-3 * abs_acc : 0);
      }
      err2 += (y - want) * (y - want);
      if (!(fabs(y - want) <= tol) && bad++ < 4)
        fprintf(log, "  %s: y[%lld,%lld] (group %lld): cuda %.8g, cpu %.8g (|diff| %.3g > tol %.3g)\n", label,
                (long long)m, (long long)n, (long long)g, y, want, fabs(y - want), tol);
    }
  }
  const double relerr = sum2 > 0 ? sqrt(err2 / sum2) : sqrt(err2);
  if (!(relerr <= frob_tol)) {
    fprintf(log, "  %s: relative Frobenius error %.3g > %.0e\n", label, relerr, frob_tol);
    bad++;
  }
  return bad;
}

/* One case: kind 0 tensor, 1 row, 2 block, 3 BF16; stacked rows = the sum
 * of the sizes, masked m_max rows per group (every size >= m_max). */
static void grouped_case(oc_case *c, int kind, llmk_group_layout layout, int64_t G, int64_t N, int64_t K,
                         int64_t m_max, const int32_t *sizes, uint64_t seed) {
  oc_case_init(c, "gemm_grouped", seed);
  _Static_assert(sizeof(grouped_priv) <= sizeof c->p, "grouped_priv");
  grouped_priv *q = OC_PARAMS(c, grouped_priv);
  memset(q, 0, sizeof *q);
  q->fp8 = kind < 3;
  q->sc = kind == 0 ? LLMK_SCALING_TENSOR : kind == 1 ? LLMK_SCALING_ROW : LLMK_SCALING_BLOCK;
  q->layout = layout, q->G = G, q->N = N, q->K = K, q->KB = (K + 127) / 128, q->NB = (N + 127) / 128;
  int64_t sum = 0;
  for (int64_t g = 0; g < G; g++) q->sizes[g] = sizes[g], sum += sizes[g] > 0 ? sizes[g] : 0;
  q->m_max = layout == LLMK_GROUP_MASKED ? m_max : 0;
  q->rows = layout == LLMK_GROUP_MASKED ? G * m_max : sum;
  static const char *const kinds[] = {"tensor", "row", "block", "bf16"};
  snprintf(c->name, sizeof c->name, "%s %s G=%lld N=%lld K=%lld rows=%lld", kinds[kind],
           layout == LLMK_GROUP_MASKED ? "masked" : "stacked", (long long)G, (long long)N, (long long)K,
           (long long)q->rows);
  snprintf(c->dtype, sizeof c->dtype, "%s", q->fp8 ? "e4m3" : "bf16");
  oc_key(c, "g", G);
  oc_key(c, "m", q->rows);
  oc_key(c, "n", N);
  oc_key(c, "k", K);
  const llmk_dtype et = q->fp8 ? LLMK_E4M3 : LLMK_BF16;
  const int stacked = layout == LLMK_GROUP_STACKED;
  const int64_t xsh[3] = {G, m_max, K}, wsh[3] = {G, N, K}, ysh[3] = {G, m_max, N};
  q->ix = stacked ? oc_buf_2d(c, "x", OC_IN, OC_CMP_BITS, et, q->rows, K, K, 0) : oc_buf_nd(c, "x", OC_IN, OC_CMP_BITS, et, 3, xsh);
  q->iw = oc_buf_nd(c, "w", OC_IN, OC_CMP_BITS, et, 3, wsh);
  q->ixs = q->iws = -1;
  if (q->fp8) {
    if (q->sc == LLMK_SCALING_TENSOR) {
      q->ixs = oc_buf_1d(c, "x_scale", OC_IN, OC_CMP_BITS, LLMK_F32, G);
      q->iws = oc_buf_1d(c, "w_scale", OC_IN, OC_CMP_BITS, LLMK_F32, G);
    } else if (q->sc == LLMK_SCALING_ROW) {
      const int64_t s2[2] = {G, m_max}, w2[2] = {G, N};
      q->ixs = stacked ? oc_buf_1d(c, "x_scale", OC_IN, OC_CMP_BITS, LLMK_F32, q->rows)
                       : oc_buf_nd(c, "x_scale", OC_IN, OC_CMP_BITS, LLMK_F32, 2, s2);
      q->iws = oc_buf_nd(c, "w_scale", OC_IN, OC_CMP_BITS, LLMK_F32, 2, w2);
    } else {
      const int64_t s2[2] = {q->rows, q->KB}, s3[3] = {G, m_max, q->KB}, w3[3] = {G, q->NB, q->KB};
      q->ixs = stacked ? oc_buf_nd(c, "x_scale", OC_IN, OC_CMP_BITS, LLMK_F32, 2, s2)
                       : oc_buf_nd(c, "x_scale", OC_IN, OC_CMP_BITS, LLMK_F32, 3, s3);
      q->iws = oc_buf_nd(c, "w_scale", OC_IN, OC_CMP_BITS, LLMK_F32, 3, w3);
    }
  }
  q->isz = oc_buf_1d(c, "sizes", OC_IN, OC_CMP_BITS, LLMK_I32, G);
  q->iy = stacked ? oc_buf_2d(c, "y", OC_OUT, OC_CMP_CUSTOM, LLMK_BF16, q->rows, N, N, 0)
                  : oc_buf_nd(c, "y", OC_OUT, OC_CMP_CUSTOM, LLMK_BF16, 3, ysh);
  c->fill = fill_grouped;
  c->run = run_grouped;
  c->compare = compare_grouped;
  const double es = q->fp8 ? 1.0 : 2.0;
  c->bytes = (double)(q->rows * K) * es + (double)(G * N * K) * es + (double)(q->rows * N) * 2.0;
}

void oc_gemm_grouped_cases(oc_list *l, int quick, uint64_t seed) {
  oc_rng r;
  oc_rng_seed(&r, seed);
  static const int32_t st_a[3] = {5, -2, 7}, st_b[5] = {1, 16, 0, 9, 40};
  static const int32_t mk_a[3] = {6, 9, 6}, mk_b[4] = {17, 17, 20, 17};
  for (int kind = 0; kind < 4; kind++) {
    oc_case *c = oc_list_add(l);
    grouped_case(c, kind, LLMK_GROUP_STACKED, 3, 24, 160, 0, st_a, oc_rand(&r));
    c->flags |= OC_QUICK;
    if (!quick) grouped_case(oc_list_add(l), kind, LLMK_GROUP_STACKED, 5, 136, 272, 0, st_b, oc_rand(&r));
    c = oc_list_add(l);
    grouped_case(c, kind, LLMK_GROUP_MASKED, 3, 24, 160, 6, mk_a, oc_rand(&r));
    c->flags |= OC_QUICK;
    if (!quick) grouped_case(oc_list_add(l), kind, LLMK_GROUP_MASKED, 4, 136, 272, 17, mk_b, oc_rand(&r));
  }
}
