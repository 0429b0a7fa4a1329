/* CPU reference for the FP8 GEMM: the executable form of DESIGN.md's
 * "Scaled GEMM" text, and the oracle of the GPU tests.
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

llmk_status llmk_cpu_gemm_fp8(const llmk_gemm_plan *p) {
  double dec[256]; /* e4m3 code -> value (NaN for 0x7F/0xFF), exact */
  for (int c = 0; c < 256; c++) dec[c] = (double)llmk_e4m3_to_f32((uint8_t)c);
  const int row_scaled = p->scaling == LLMK_SCALING_ROW;

  /* One (m, n) element per iteration: rows and columns both spread over
   * threads, so decode-sized M (1, 2, 3) still runs in parallel. */
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t m = 0; m < p->M; m++)
    for (int64_t n = 0; n < p->N; n++) {
      double acc = p->K > 0 ? dot_e4m3(p->x + m * p->ldx, p->w + n * p->ldw, p->K, dec) : 0.0;
      float v = (float)acc;
      v = v * p->xs[row_scaled ? m : 0];
      v = v * p->ws[row_scaled ? n : 0];
      if (p->bias) {
        float b = p->bias_dtype == LLMK_BF16 ? llmk_bf16_to_f32(((const uint16_t *)p->bias)[n])
                                             : ((const float *)p->bias)[n];
        v = v + b;
      }
      p->y[m * p->ldy + n] = llmk_bf16_from_f32(v);
    }
  return LLMK_SUCCESS;
}
