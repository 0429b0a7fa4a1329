/* The validated forms of the INT4 weight calls (src/core/int4_api.c:
 * llmk_int4_quantize, llmk_int4_dequantize, llmk_gemm_w4a16), shared by
 * the CPU reference (src/cpu/int4.c) and the CUDA kernels (src/cuda/int4.cu,
 * int4_gemm.cu), and the scalar rules of llmk.h's "INT4 weights" that both
 * use, so that they agree bit for bit. */
#ifndef LLMK_INT4_H
#define LLMK_INT4_H

#include <math.h>

#include "core/internal.h"
#include "fp8/fp8.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct llmk_int4_plan {
  int64_t N, K, group, ngroups; /* ngroups = K / group */
  int asymmetric;
  llmk_mat w;       /* quantize: the bf16 weight; dequantize: y (bf16 or f32) */
  llmk_mat codes;   /* u8 [N, K/2] */
  uint16_t *scales; /* bf16 [N, ngroups] */
  uint8_t *zeros;   /* u8 [N, ngroups], or NULL (symmetric) */
} llmk_int4_plan;

/* A validated llmk_gemm_w4a16: y [M, N] = x [M, K] . W^T (+ bias), W in
 * `w`'s codes, scales and zeros (w.w unused). */
typedef struct llmk_w4a16_plan {
  llmk_int4_plan w;
  int64_t M;
  llmk_mat x, y;         /* bf16 rows */
  const void *bias;      /* NULL or N elements of bias_dtype */
  llmk_dtype bias_dtype; /* LLMK_F32 or LLMK_BF16 */
} llmk_w4a16_plan;

/* One group's scale (bf16 bits) and zero point from its n bf16 elements
 * (llmk.h, llmk_int4_quantize). */
LLMK_HD void llmk_int4_group_params(const uint16_t *v, int64_t n, int asymmetric, uint16_t *s_out, int *z_out) {
  float a = 0.0f, lo = 0.0f, hi = 0.0f;
  for (int64_t i = 0; i < n; i++) {
    const float x = llmk_bf16_to_f32(v[i]);
    if (!isfinite(x)) continue;
    a = fmaxf(a, fabsf(x)), lo = fminf(lo, x), hi = fmaxf(hi, x);
  }
  if (!asymmetric) {
    *s_out = llmk_bf16_from_f32(a / 7.0f), *z_out = 8;
    return;
  }
  const uint16_t s = llmk_bf16_from_f32((float)(((double)hi - (double)lo) / 15.0));
  const float sf = llmk_bf16_to_f32(s);
  *s_out = s;
  *z_out = sf > 0.0f ? (int)fminf(fmaxf(rintf(-lo / sf), 0.0f), 15.0f) : 0;
}

/* The code of element x under scale s (bf16 bits) and zero point z. */
LLMK_HD int llmk_int4_code(float x, uint16_t s, int z) {
  const float sf = llmk_bf16_to_f32(s);
  if (!(sf > 0.0f) || x != x) return z;
  const float q = rintf(x / sf) + (float)z; /* an integer or +-Inf: exact */
  return (int)fminf(fmaxf(q, 0.0f), 15.0f);
}

/* The f32 weight a code stands for: (q - z) s, exact. */
LLMK_HD float llmk_int4_value(int q, uint16_t s, int z) { return (float)(q - z) * llmk_bf16_to_f32(s); }

llmk_status llmk_cpu_int4_quantize(const llmk_int4_plan *p);
llmk_status llmk_cpu_int4_dequantize(const llmk_int4_plan *p);
llmk_status llmk_cpu_gemm_w4a16(const llmk_w4a16_plan *p);
llmk_status llmk_cuda_gemm_w4a16(llmk_handle h, const llmk_w4a16_plan *p, void *stream);
llmk_status llmk_cuda_int4_quantize(llmk_handle h, const llmk_int4_plan *p, void *stream);
llmk_status llmk_cuda_int4_dequantize(llmk_handle h, const llmk_int4_plan *p, void *stream);

#ifdef __cplusplus
}
#endif
#endif
