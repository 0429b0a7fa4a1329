/* INT4 weights' CPU reference (llmk.h, "INT4 weights"): the quantizer and
 * the dequantizer, group by group with core/int4.h's scalar rules, which
 * the CUDA kernels share, and llmk_gemm_w4a16 as its definition reads: the
 * BF16 reference GEMM on the dequantized weight. */
#include "core/int4.h"

static const uint16_t *w_row(const llmk_mat *m, int64_t n) {
  return (const uint16_t *)m->data + (size_t)(n * m->ld);
}

llmk_status llmk_cpu_int4_quantize(const llmk_int4_plan *p) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < p->N; n++) {
    const uint16_t *w = w_row(&p->w, n);
    uint8_t *c = (uint8_t *)p->codes.data + (size_t)(n * p->codes.ld);
    for (int64_t g = 0; g < p->ngroups; g++) {
      uint16_t s;
      int z;
      const uint16_t *v = w + g * p->group;
      llmk_int4_group_params(v, p->group, p->asymmetric, &s, &z);
      p->scales[n * p->ngroups + g] = s;
      if (p->zeros) p->zeros[n * p->ngroups + g] = (uint8_t)z;
      for (int64_t i = 0; i < p->group; i += 2) {
        const int lo = llmk_int4_code(llmk_bf16_to_f32(v[i]), s, z);
        const int hi = llmk_int4_code(llmk_bf16_to_f32(v[i + 1]), s, z);
        c[(g * p->group + i) / 2] = (uint8_t)(lo | hi << 4);
      }
    }
  }
  return LLMK_SUCCESS;
}

llmk_status llmk_cpu_int4_dequantize(const llmk_int4_plan *p) {
  const int f32 = p->w.dtype == LLMK_F32;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < p->N; n++) {
    const uint8_t *c = (const uint8_t *)p->codes.data + (size_t)(n * p->codes.ld);
    for (int64_t k = 0; k < p->K; k++) {
      const int64_t g = n * p->ngroups + k / p->group;
      const int q = k % 2 ? c[k / 2] >> 4 : c[k / 2] & 15;
      const float v = llmk_int4_value(q, p->scales[g], p->zeros ? p->zeros[g] : 8);
      if (f32) ((float *)p->w.data)[n * p->w.ld + k] = v;
      else ((uint16_t *)p->w.data)[n * p->w.ld + k] = llmk_bf16_from_f32(v);
    }
  }
  return LLMK_SUCCESS;
}

/* The bf16 weight of element (n, k). */
static float w_at(const llmk_int4_plan *p, int64_t n, int64_t k) {
  const uint8_t c = ((const uint8_t *)p->codes.data)[n * p->codes.ld + k / 2];
  const int64_t g = n * p->ngroups + k / p->group;
  const float v = llmk_int4_value(k % 2 ? c >> 4 : c & 15, p->scales[g], p->zeros ? p->zeros[g] : 8);
  return llmk_bf16_to_f32(llmk_bf16_from_f32(v));
}

/* llmk_cpu_gemm_bf16's sums (fp64, four interleaved partial sums in k
 * order, then fp32) on the weight as llmk_int4_dequantize writes it, so
 * that the result is llmk_gemm_bf16's on the dequantized weight bit for
 * bit; the weight is dequantized element by element, in no extra memory. */
llmk_status llmk_cpu_gemm_w4a16(const llmk_w4a16_plan *p) {
  const int64_t K = p->w.K;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t m = 0; m < p->M; m++)
    for (int64_t n = 0; n < p->w.N; n++) {
      const uint16_t *a = (const uint16_t *)p->x.data + m * p->x.ld;
      double s[4] = {0.0, 0.0, 0.0, 0.0};
      for (int64_t k = 0; k < K; k++) s[k % 4] += (double)llmk_bf16_to_f32(a[k]) * w_at(&p->w, n, k);
      float v = (float)((s[0] + s[1]) + (s[2] + s[3]));
      if (p->bias)
        v += p->bias_dtype == LLMK_BF16 ? llmk_bf16_to_f32(((const uint16_t *)p->bias)[n]) : ((const float *)p->bias)[n];
      ((uint16_t *)p->y.data)[m * p->y.ld + n] = llmk_bf16_from_f32(v);
    }
  return LLMK_SUCCESS;
}
