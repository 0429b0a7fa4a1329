/* CPU reference for FP8 quantize and dequantize: the executable form of
 * docs/DESIGN.md's quantization text. Plain loops, fp32 arithmetic exactly as
 * written there (the build uses -ffp-contract=off, so nothing is fused). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant.h"
#include "fp8/fp8.h"

static float load_elem(const llmk_mat *x, int64_t r, int64_t c) {
  const char *row = (const char *)x->data + (size_t)(r * x->ld) * llmk_dtype_size(x->dtype);
  switch (x->dtype) {
    case LLMK_F32: return ((const float *)row)[c];
    case LLMK_F16: return llmk_f16_to_f32(((const uint16_t *)row)[c]);
    case LLMK_BF16: return llmk_bf16_to_f32(((const uint16_t *)row)[c]);
    case LLMK_E4M3: return llmk_e4m3_to_f32(((const uint8_t *)row)[c]);
    case LLMK_E5M2: return llmk_e5m2_to_f32(((const uint8_t *)row)[c]);
    default: return 0.0f;
  }
}

/* Rows that contribute to the amax (TENSOR with num_rows: a prefix). */
static int64_t amax_rows(const llmk_qplan *p) {
  if (!p->num_rows) return p->M;
  int64_t n = *p->num_rows;
  return n < 0 ? 0 : (n > p->M ? p->M : n);
}

llmk_status llmk_cpu_quantize(const llmk_qplan *p, const llmk_mat *x, const llmk_mat *q,
                              float *scale) {
  const int64_t ngroups = p->ngr * p->ngc;
  float *amax = calloc((size_t)(ngroups > 0 ? ngroups : 1), sizeof *amax);
  float *inv = calloc((size_t)(ngroups > 0 ? ngroups : 1), sizeof *inv);
  if (!amax || !inv) { /* checked before anything is written */
    free(amax);
    free(inv);
    return llmk_set_error(LLMK_ERR_OUT_OF_MEMORY, "llmk_quantize_fp8",
                          "cannot allocate %lld group maxima", (long long)ngroups);
  }
  const int64_t mr = amax_rows(p);
  /* Row bands of gm rows own disjoint groups, so bands can run in parallel. */
#pragma omp parallel for schedule(static)
  for (int64_t band = 0; band < p->ngr; band++) {
    int64_t r_end = (band + 1) * p->gm < mr ? (band + 1) * p->gm : mr;
    for (int64_t r = band * p->gm; r < r_end; r++)
      for (int64_t c = 0; c < p->K; c++) {
        float a = fabsf(load_elem(x, r, c));
        float *g = &amax[band * p->ngc + c / p->gk];
        if (isfinite(a) && a > *g) *g = a;
      }
  }
  const float fmax = llmk_fp8_max(p->is_e5m2), min_scale = llmk_fp8_min_scale(p->is_e5m2);
  for (int64_t g = 0; g < ngroups; g++) {
    float a = amax[g];
    if (p->scale_ub) a = fminf(a, *p->scale_ub);
    float s = fmaxf(a / fmax, min_scale);
    scale[g] = s;
    inv[g] = 1.0f / s;
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < p->M; r++) {
    uint8_t *qrow = (uint8_t *)q->data + r * q->ld;
    const float *inv_row = inv + (r / p->gm) * p->ngc;
    for (int64_t c = 0; c < p->K; c++) {
      float v = load_elem(x, r, c) * inv_row[c / p->gk];
      qrow[c] = p->is_e5m2 ? llmk_e5m2_from_f32(v) : llmk_e4m3_from_f32(v);
    }
  }
  free(amax);
  free(inv);
  return LLMK_SUCCESS;
}

void llmk_cpu_dequantize(const llmk_qplan *p, const llmk_mat *q, const float *scale,
                         const llmk_mat *y) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < p->M; r++) {
    const float *srow = scale + (r / p->gm) * p->ngc;
    for (int64_t c = 0; c < p->K; c++) {
      float v = load_elem(q, r, c) * srow[c / p->gk];
      if (y->dtype == LLMK_F32)
        ((float *)y->data)[r * y->ld + c] = v;
      else
        ((uint16_t *)y->data)[r * y->ld + c] = llmk_bf16_from_f32(v);
    }
  }
}
