/* CPU reference for llmk_rmsnorm and llmk_silu_mul_quant: the executable
 * form of the numerics in llmk.h's "Normalization and activation" section.
 * Plain loops, one row at a time (rows in parallel); the build uses
 * -ffp-contract=off, so every operation rounds as written. */
#include <math.h>

#include "core/norm.h"

static float bf(uint16_t bits) { return llmk_bf16_to_f32(bits); }


/* n_k = bf16((s_k * r) * w_k) */
static uint16_t norm_elem(float s, float r, uint16_t w) { return llmk_norm_bf16(s * r * bf(w)); }

llmk_status llmk_cpu_rmsnorm(const llmk_rmsnorm_plan *p) {
  const int res = p->residual.data != NULL, fp8 = p->y.dtype == LLMK_E4M3;
  const int64_t K = p->K;
  const uint16_t *w = p->weight;
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < p->M; m++) {
    const uint16_t *x = (const uint16_t *)p->x.data + m * p->x.ld;
    const uint16_t *rin = res ? (const uint16_t *)p->residual.data + m * p->residual.ld : NULL;
    uint16_t *rout = res ? (uint16_t *)p->residual_out.data + m * p->residual_out.ld : NULL;
    /* s is read back from residual_out (which may be the residual itself) */
    const uint16_t *s = res ? rout : x;
    double ss = 0.0;
    for (int64_t k = 0; k < K; k++) {
      if (res) rout[k] = llmk_norm_bf16(bf(x[k]) + bf(rin[k]));
      const double v = (double)bf(s[k]);
      ss += v * v;
    }
    const float r = (float)(1.0 / sqrt(ss / (double)K + (double)p->eps));
    if (!fp8) {
      uint16_t *y = (uint16_t *)p->y.data + m * p->y.ld;
      for (int64_t k = 0; k < K; k++) y[k] = norm_elem(bf(s[k]), r, w[k]);
      continue;
    }
    /* e4m3: llmk_quantize_fp8's ROW rule on the bf16 values n */
    float amax = 0.0f;
    for (int64_t k = 0; k < K; k++) amax = llmk_amax_step(amax, bf(norm_elem(bf(s[k]), r, w[k])));
    const float scale = llmk_e4m3_group_scale(amax, NULL), inv = 1.0f / scale;
    const int64_t row = m * p->planes;
    p->y_scale[row] = scale;
    uint8_t *q = (uint8_t *)p->y.data + row * p->y.ld;
    for (int64_t k = 0; k < K; k++) q[k] = llmk_e4m3_from_f32(bf(norm_elem(bf(s[k]), r, w[k])) * inv);
    if (p->planes == 1) continue;
    /* the lo plane: the same row rule on d_k = n_k - y_k * scale (fp32) */
    uint8_t *lo = q + p->y.ld;
    float amax_lo = 0.0f;
    for (int64_t k = 0; k < K; k++)
      amax_lo = llmk_amax_step(amax_lo, bf(norm_elem(bf(s[k]), r, w[k])) - llmk_e4m3_to_f32(q[k]) * scale);
    const float scale_lo = llmk_e4m3_group_scale(amax_lo, NULL), inv_lo = 1.0f / scale_lo;
    p->y_scale[row + 1] = scale_lo;
    for (int64_t k = 0; k < K; k++)
      lo[k] = llmk_e4m3_from_f32((bf(norm_elem(bf(s[k]), r, w[k])) - llmk_e4m3_to_f32(q[k]) * scale) * inv_lo);
  }
  return LLMK_SUCCESS;
}

llmk_status llmk_cpu_silu_mul_quant(const llmk_silu_plan *p) {
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < p->M; m++) {
    const uint16_t *g = (const uint16_t *)p->gate.data + m * p->gate.ld;
    const uint16_t *u = (const uint16_t *)p->up.data + m * p->up.ld;
    if (p->xq.dtype == LLMK_BF16) {
      uint16_t *a = (uint16_t *)p->xq.data + m * p->xq.ld;
      for (int64_t k = 0; k < p->F; k++) a[k] = llmk_silu_mul_bf16(bf(g[k]), bf(u[k]));
      continue;
    }
    uint8_t *q = (uint8_t *)p->xq.data + m * p->xq.ld;
    for (int64_t j = 0; j < p->nseg; j++) {
      const int64_t c0 = j * p->gk, c1 = c0 + p->gk < p->F ? c0 + p->gk : p->F;
      /* a_k is computed twice (amax, then quantization): no scratch memory */
      float amax = 0.0f;
      for (int64_t k = c0; k < c1; k++) amax = llmk_amax_step(amax, bf(llmk_silu_mul_bf16(bf(g[k]), bf(u[k]))));
      const float scale = llmk_e4m3_group_scale(amax, p->scale_ub), inv = 1.0f / scale;
      p->scale[m * p->nseg + j] = scale;
      for (int64_t k = c0; k < c1; k++)
        q[k] = llmk_e4m3_from_f32(bf(llmk_silu_mul_bf16(bf(g[k]), bf(u[k]))) * inv);
    }
  }
  return LLMK_SUCCESS;
}
