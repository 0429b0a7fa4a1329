/* CPU reference of the rotary embedding (include/llmk.h, llmk_rope_desc):
 * angles, cosines and sines in fp64 rounded to fp32, then the rotation in
 * fp32 with every product rounded (one statement per rounding, and the
 * build's -ffp-contract=off, so nothing is fused). */
#include <math.h>
#include <stdint.h>

#include "cpu/attn_cpu.h"
#include "fp8/fp8.h"

void llmk_cpu_rope_angles(const llmk_rope_plan *r, int64_t pos, float *c, float *s) {
  for (int64_t i = 0; i < r->n_pairs; i++) {
    const double a = (double)pos * r->inv_freq[i];
    c[i] = (float)cos(a);
    s[i] = (float)sin(a);
  }
}

void llmk_cpu_rope_rotate(const llmk_rope_plan *r, const float *c, const float *s, float *v) {
  const int64_t n = r->n_pairs;
  for (int64_t i = 0; i < n; i++) {
    const int64_t ia = r->neox ? i : 2 * i, ib = r->neox ? i + n : 2 * i + 1;
    const float xa = v[ia], xb = v[ib];
    const float ac = xa * c[i], bs = xb * s[i], as = xa * s[i], bc = xb * c[i];
    v[ia] = ac - bs;
    v[ib] = as + bc;
  }
}

llmk_status llmk_cpu_rope(const llmk_rope_plan *r, const llmk_heads *x, const int32_t *pos,
                          const llmk_heads *y) {
  const int64_t H = x->H, D = x->D, R = 2 * r->n_pairs;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < x->T; t++) {
    float c[LLMK_ROPE_MAX_PAIRS], s[LLMK_ROPE_MAX_PAIRS], v[2 * LLMK_ROPE_MAX_PAIRS];
    llmk_cpu_rope_angles(r, pos[t], c, s);
    for (int64_t h = 0; h < H; h++) {
      const int64_t off = t * x->ld + h * D, yoff = t * y->ld + h * D;
      /* the rotated part is read before any of it is written (in place) */
      if (x->dtype == LLMK_F32) {
        for (int64_t d = 0; d < R; d++) v[d] = ((const float *)x->data)[off + d];
      } else {
        for (int64_t d = 0; d < R; d++) v[d] = llmk_bf16_to_f32(((const uint16_t *)x->data)[off + d]);
      }
      llmk_cpu_rope_rotate(r, c, s, v);
      /* rotated elements are rounded once to y's dtype; the rest are copied bit for bit */
      if (y->dtype == LLMK_F32) {
        for (int64_t d = 0; d < R; d++) ((float *)y->data)[yoff + d] = v[d];
        for (int64_t d = R; d < D; d++) ((float *)y->data)[yoff + d] = ((const float *)x->data)[off + d];
      } else {
        for (int64_t d = 0; d < R; d++) ((uint16_t *)y->data)[yoff + d] = llmk_bf16_from_f32(v[d]);
        for (int64_t d = R; d < D; d++)
          ((uint16_t *)y->data)[yoff + d] = ((const uint16_t *)x->data)[off + d];
      }
    }
  }
  return LLMK_SUCCESS;
}
