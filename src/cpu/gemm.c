/* CPU references for the FP8 and BF16 GEMMs: the executable form of
 * docs/DESIGN.md's "Scaled GEMM" text, and the oracle of the GPU tests.
 *
 *   acc = sum_k e4m3(x[m, k]) * e4m3(w[n, k])    in fp64
 *   a   = (float)acc                              one rounding
 *   v   = a * xs;  v = v * ws                     fp32, in this order
 *   v   = v + (float)bias[n]                      only when a bias is given
 *   y   = bf16_rne(v)
 *
 * Each product of two e4m3 values is exact in fp64 (4 + 4 significant
 * bits), and so is the whole sum: every product is a multiple of 2^-18 (the
 * square of the least e4m3 subnormal) and at most 448^2 < 2^18 in
 * magnitude, so partial sums stay exact while K * 448^2 < 2^35, i.e. for K up
 * to 171196. The summation order therefore does not change acc, which lets
 * the dot product keep four independent partial sums. acc is the exact
 * value of the integer-scaled product, so desc->accum (fast_accum) has no
 * effect here: the CPU is exact either way, and the GPU's FAST and FP32
 * paths are both measured against this.
 *
 * The build uses -ffp-contract=off: nothing below is fused into an FMA. */
#include <math.h>
#include <stdint.h>

#include "core/gemm.h"
#include "fp8/fp8.h"

/* Exact dot product of two e4m3 rows of length K through the decode table. */
static double dot_e4m3(const uint8_t *a, const uint8_t *b, int64_t K, const double *dec) {
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
  int64_t k = 0;
  for (; k + 4 <= K; k += 4) {
    s0 += dec[a[k]] * dec[b[k]];
    s1 += dec[a[k + 1]] * dec[b[k + 1]];
    s2 += dec[a[k + 2]] * dec[b[k + 2]];
    s3 += dec[a[k + 3]] * dec[b[k + 3]];
  }
  for (; k < K; k++) s0 += dec[a[k]] * dec[b[k]];
  return (s0 + s1) + (s2 + s3);
}

/* The shared tail: v (fp32) + bias[n] as fp32 when given, rounded to bf16. */
static uint16_t finish(const llmk_gemm_plan *p, float v, int64_t n) {
  if (p->bias) {
    float b = p->bias_dtype == LLMK_BF16 ? llmk_bf16_to_f32(((const uint16_t *)p->bias)[n])
                                         : ((const float *)p->bias)[n];
    v = v + b;
  }
  return llmk_bf16_from_f32(v);
}

/* Block scaling (include/llmk.h): per 128-deep slice b, the exact slice sum
 * rounded once to fp32, then acc = fmaf(part, xs * ws, acc). */
static llmk_status gemm_fp8_block(const llmk_gemm_plan *p, const double *dec) {
  const uint8_t *x = p->x, *w = p->w;
  const int64_t nkb = (p->K + 127) / 128;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t m = 0; m < p->M; m++)
    for (int64_t n = 0; n < p->N; n++) {
      float acc = 0.0f;
      for (int64_t b = 0; b < nkb; b++) {
        const int64_t k0 = 128 * b, len = p->K - k0 < 128 ? p->K - k0 : 128;
        const float part = (float)dot_e4m3(x + m * p->ldx + k0, w + n * p->ldw + k0, len, dec);
        const float sx = p->xs[(m / p->x_bm) * p->xs_rs + b * p->xs_ks];
        const float sw = p->ws[(n / 128) * p->ws_rs + b * p->ws_ks];
        acc = fmaf(part, sx * sw, acc);
      }
      p->y[m * p->ldy + n] = finish(p, acc, n);
    }
  return LLMK_SUCCESS;
}

llmk_status llmk_cpu_gemm_fp8(const llmk_gemm_plan *p) {
  double dec[256]; /* e4m3 code -> value (NaN for 0x7F/0xFF), exact */
  for (int c = 0; c < 256; c++) dec[c] = (double)llmk_e4m3_to_f32((uint8_t)c);
  if (p->scaling == LLMK_SCALING_BLOCK) return gemm_fp8_block(p, dec);
  const int row_scaled = p->scaling == LLMK_SCALING_ROW;
  const uint8_t *x = p->x, *w = p->w;

  /* One (m, n) element per iteration: rows and columns both spread over
   * threads, so decode-sized M (1, 2, 3) still runs in parallel. */
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t m = 0; m < p->M; m++)
    for (int64_t n = 0; n < p->N; n++) {
      if (p->x_planes == 2) {
        /* P_j = bf16((acc_j * xs[2m + j]) * ws[n]), then (P_0 + P_1) [+ bias] */
        float v = 0.0f;
        for (int64_t j = 0; j < 2; j++) {
          const int64_t r = 2 * m + j;
          float pj = (float)(p->K > 0 ? dot_e4m3(x + r * p->ldx, w + n * p->ldw, p->K, dec) : 0.0);
          pj = pj * p->xs[r];
          pj = pj * p->ws[n];
          const float b = llmk_bf16_to_f32(llmk_bf16_from_f32(pj));
          v = j ? v + b : b;
        }
        p->y[m * p->ldy + n] = finish(p, v, n);
        continue;
      }
      double acc = p->K > 0 ? dot_e4m3(x + m * p->ldx, w + n * p->ldw, p->K, dec) : 0.0;
      float v = (float)acc;
      v = v * p->xs[row_scaled ? m : 0];
      v = v * p->ws[row_scaled ? n : 0];
      p->y[m * p->ldy + n] = finish(p, v, n);
    }
  return LLMK_SUCCESS;
}

/* BF16: each product of two bf16 values is exact in fp64 (8 + 8 significant
 * bits), the sum is not in general (exponents span 2^-133..2^127): fp64
 * accumulation in k order (four interleaved partial sums) is the reference,
 * about 2^-50 of sum |products| from the exact value. */
llmk_status llmk_cpu_gemm_bf16(const llmk_gemm_plan *p) {
  const uint16_t *x = p->x, *w = p->w;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t m = 0; m < p->M; m++)
    for (int64_t n = 0; n < p->N; n++) {
      const uint16_t *a = x + m * p->ldx, *b = w + n * p->ldw;
      double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
      int64_t k = 0;
      for (; k + 4 <= p->K; k += 4) {
        s0 += (double)llmk_bf16_to_f32(a[k]) * llmk_bf16_to_f32(b[k]);
        s1 += (double)llmk_bf16_to_f32(a[k + 1]) * llmk_bf16_to_f32(b[k + 1]);
        s2 += (double)llmk_bf16_to_f32(a[k + 2]) * llmk_bf16_to_f32(b[k + 2]);
        s3 += (double)llmk_bf16_to_f32(a[k + 3]) * llmk_bf16_to_f32(b[k + 3]);
      }
      for (; k < p->K; k++) s0 += (double)llmk_bf16_to_f32(a[k]) * llmk_bf16_to_f32(b[k]);
      p->y[m * p->ldy + n] = finish(p, (float)((s0 + s1) + (s2 + s3)), n);
    }
  return LLMK_SUCCESS;
}
