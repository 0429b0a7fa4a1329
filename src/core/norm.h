/* The validated forms of llmk_rmsnorm and llmk_silu_mul_quant calls
 * (src/core/norm_api.c), shared by the CPU reference (src/cpu/norm.c) and
 * the CUDA kernels (src/cuda/norm.cu), and the scalar numerics of llmk.h's
 * "Normalization and activation" section that both backends use. */
#ifndef LLMK_NORM_H
#define LLMK_NORM_H

#include <math.h>

#include "core/internal.h"
#include "fp8/fp8.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One llmk_rmsnorm call: M rows of K elements. The bf16 matrices are
 * views of uint16_t bits; residual.data and residual_out.data are NULL
 * without a residual (residual_out.data == residual.data: in place). */
typedef struct llmk_rmsnorm_plan {
  int64_t M, K;
  float eps;
  llmk_mat x, residual, residual_out, y; /* y: bf16 or e4m3 (planes = 2: 2M rows, hi and lo of row m at 2m, 2m + 1) */
  const uint16_t *weight;                /* K elements, contiguous */
  float *y_scale;                        /* M (planes = 2: 2M) scales when y is e4m3, else NULL */
  int planes;                            /* 1, or 2 (e4m3 y only) */
} llmk_rmsnorm_plan;

/* One llmk_silu_mul_quant call: M rows of F elements, each row split into
 * nseg segments of gk elements (the last partial) that each get one scale:
 * row scaling has nseg = 1 and gk = max(F, 1); 1 x 128 blocks have
 * gk = 128 and nseg = ceil(F / 128). Segment j of row m has scale[m * nseg + j]. */
typedef struct llmk_silu_plan {
  int64_t M, F, gk, nseg;
  llmk_mat gate, up, xq; /* xq: e4m3, or bf16 (the unquantized a; scale NULL, nseg 1) */
  float *scale;
  const float *scale_ub; /* optional */
} llmk_silu_plan;

llmk_status llmk_cpu_rmsnorm(const llmk_rmsnorm_plan *p);
llmk_status llmk_cpu_silu_mul_quant(const llmk_silu_plan *p);
llmk_status llmk_cuda_rmsnorm(llmk_handle h, const llmk_rmsnorm_plan *p, void *stream);
llmk_status llmk_cuda_silu_mul_quant(llmk_handle h, const llmk_silu_plan *p, void *stream);

#ifdef __cplusplus
}
#endif

/* ---- scalar numerics shared by both backends ----------------------------- */

/* The bf16 NaN that these ops write for every NaN result. */
#define LLMK_NORM_BF16_NAN 0x7FC0u

/* float -> bf16 bits, nearest even; every NaN becomes LLMK_NORM_BF16_NAN. */
LLMK_HD uint16_t llmk_norm_bf16(float f) {
  return f != f ? (uint16_t)LLMK_NORM_BF16_NAN : llmk_bf16_from_f32(f);
}

/* double -> bf16 bits, rounded once to nearest even (no intermediate fp32
 * rounding); overflow gives +-Inf, NaN gives LLMK_NORM_BF16_NAN. */
LLMK_HD uint16_t llmk_bf16_from_f64(double d) {
  uint64_t b;
  memcpy(&b, &d, 8);
  const uint16_t sign = (uint16_t)((b >> 48) & 0x8000u);
  const uint64_t a = b & 0x7FFFFFFFFFFFFFFFull;
  if (a > 0x7FF0000000000000ull) return (uint16_t)LLMK_NORM_BF16_NAN;
  const int e = (int)(a >> 52) - 1023;                   /* unbiased exponent */
  if (e >= 128) return (uint16_t)(sign | 0x7F80u);       /* >= 2^128 (and Inf) */
  if (e < -134 - 1) return sign;                         /* below a quarter of the least subnormal */
  const uint64_t full = (a & 0xFFFFFFFFFFFFFull) | (1ull << 52); /* 53 significant bits */
  /* Normal bf16 (e >= -126): keep 8 significant bits, the exponent field
   * rides above them; subnormal: the code is the value / 2^-133. */
  const int shift = e >= -126 ? 45 : 52 - (e + 133); /* 46 .. 54 for subnormals */
  uint64_t base = full >> shift;
  if (e >= -126) base = ((uint64_t)(e + 127) << 7) + (base & 0x7Fu);
  const uint64_t rem = full & ((1ull << shift) - 1u);
  const uint64_t half = 1ull << (shift - 1);
  if (rem > half || (rem == half && (base & 1u))) base += 1; /* may carry into the exponent, up to Inf */
  return (uint16_t)(sign | (uint16_t)base);
}

/* a = bf16( g / (1 + exp(-g)) * u ) in fp64, as llmk.h states. */
LLMK_HD uint16_t llmk_silu_mul_bf16(float g, float u) {
  const double gd = (double)g;
  const double v = gd / (1.0 + exp(-gd)) * (double)u;
  return llmk_bf16_from_f64(v);
}
#endif
