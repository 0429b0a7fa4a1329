/* The validated forms of the MoE calls (src/core/moe_api.c: llmk_moe_route,
 * llmk_moe_permute, llmk_moe_gather_quant, llmk_moe_combine), shared by the
 * CPU reference (src/cpu/moe.c) and the CUDA kernels (src/cuda/moe*.cu),
 * and the scalar numerics of llmk.h's routing rules that both backends
 * use, so that they agree bit for bit. */
#ifndef LLMK_MOE_H
#define LLMK_MOE_H

#include <math.h>

#include "core/internal.h"
#include "fp8/fp8.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LLMK_MOE_MAX_E 1024 /* experts a router chooses among */
#define LLMK_MOE_MAX_K 32   /* picks per token */
#define LLMK_MOE_MAX_G 1024 /* local experts of a permutation */

typedef struct llmk_moe_route_plan {
  int64_t T, E;
  int k, renormalize, n_group, topk_group;
  llmk_moe_router router;
  float scaling;
  llmk_mat logits;   /* f32 or bf16 */
  const float *bias; /* DEEPSEEK only */
  int32_t *ids;      /* [T, k] */
  float *weights;    /* [T, k] */
} llmk_moe_route_plan;

typedef struct llmk_moe_permute_plan {
  int64_t T, G, R, expert_begin, m_max;
  int k;
  llmk_group_layout layout;
  const int32_t *ids; /* [T, k] */
  int32_t *sizes;     /* [G] */
  int32_t *offsets;   /* [G + 1] or NULL */
  int32_t *row_of;    /* [T, k] */
  int32_t *src_of;    /* [R] */
} llmk_moe_permute_plan;

/* Rows of H elements, each split into nseg segments of gk (the last
 * partial) that each get one scale, as llmk_silu_plan: ROW nseg = 1,
 * 1 x 128 blocks gk = 128. xq bf16: a plain gather (scale NULL). */
typedef struct llmk_moe_gather_plan {
  int64_t T, H, R, gk, nseg;
  int k;
  llmk_mat x, xq;
  const int32_t *src_of;
  float *scale;
  const float *scale_ub;
} llmk_moe_gather_plan;

typedef struct llmk_moe_combine_plan {
  int64_t T, H, R;
  int k;
  llmk_mat y, add, out; /* add.data NULL: none */
  const int32_t *row_of;
  const float *weights;
} llmk_moe_combine_plan;

llmk_status llmk_cpu_moe_route(const llmk_moe_route_plan *p);
llmk_status llmk_cpu_moe_permute(const llmk_moe_permute_plan *p);
llmk_status llmk_cpu_moe_gather_quant(const llmk_moe_gather_plan *p);
llmk_status llmk_cpu_moe_combine(const llmk_moe_combine_plan *p);
llmk_status llmk_cuda_moe_route(llmk_handle h, const llmk_moe_route_plan *p, void *stream);
llmk_status llmk_cuda_moe_permute(llmk_handle h, const llmk_moe_permute_plan *p, void *stream);
/* one launch where the shape allows, else route then permute */
llmk_status llmk_cuda_moe_route_permute(llmk_handle h, const llmk_moe_route_plan *rp, const llmk_moe_permute_plan *pp,
                                        void *stream);
llmk_status llmk_cuda_moe_gather_quant(llmk_handle h, const llmk_moe_gather_plan *p, void *stream);
llmk_status llmk_cuda_moe_combine(llmk_handle h, const llmk_moe_combine_plan *p, void *stream);

#ifdef __cplusplus
}
#endif

/* ---- scalar numerics shared by both backends ----------------------------- */
/* Every operation below is one IEEE fp32 operation rounded to nearest even
 * (the fused ones written as fmaf); no multiply feeds an add outside an
 * fmaf, so a compiler that contracts a * b + c has nothing to contract. */

/* exp(x): n = rint(x log2 e); r = x - n ln 2 (ln 2 in two parts, two fused
 * steps, exact to about 2^-40 for |n| <= 150); e^r by its Taylor series
 * to r^7 (|r| <= 0.35: truncation below 2^-28) in fused Horner steps; then
 * times 2^n in two exact-or-once-rounded multiplications. */
LLMK_HD float llmk_moe_exp(float x) {
  if (x != x) return x;
  if (x > 88.72284f) return INFINITY;
  if (x < -103.97208f) return 0.0f;
  const float n = rintf(x * 1.44269504f);
  float r = fmaf(-n, 0.693145752f, x);   /* ln 2's high part: 12 significant bits, n * it exact */
  r = fmaf(-n, 1.42860677e-06f, r);      /* ln 2 - 0.693145752 */
  float q = 1.98412698e-04f;             /* 1/7! ... 1/0! */
  q = fmaf(q, r, 1.38888889e-03f);
  q = fmaf(q, r, 8.33333333e-03f);
  q = fmaf(q, r, 4.16666667e-02f);
  q = fmaf(q, r, 1.66666667e-01f);
  q = fmaf(q, r, 0.5f);
  q = fmaf(q, r, 1.0f);
  q = fmaf(q, r, 1.0f);
  /* 2^n as two powers of two, each a normal float (n in -150 .. 128) */
  const int ni = (int)n, a = ni / 2, b = ni - a;
  return q * llmk_f32_from_bits((uint32_t)(a + 127) << 23) * llmk_f32_from_bits((uint32_t)(b + 127) << 23);
}

LLMK_HD float llmk_moe_sigmoid(float x) { return 1.0f / (1.0f + llmk_moe_exp(-x)); }

/* Key a ranks before key b (expert ia against ib): larger first, equal
 * keys by lower index, NaN after every number. */
LLMK_HD int llmk_moe_before(float a, int ia, float b, int ib) {
  const int na = a != a, nb = b != b;
  if (na || nb) return na == nb ? ia < ib : nb;
  return a > b || (a == b && ia < ib);
}

/* The softmax denominator's fold of 32 lane partial sums (llmk.h):
 * lane j + lane j + 16, then + 8, + 4, + 2, + 1; part[0] ends as the sum. */
LLMK_HD float llmk_moe_fold32(float *part) {
  for (int w = 16; w >= 1; w /= 2)
    for (int j = 0; j < w; j++) part[j] = part[j] + part[j + w];
  return part[0];
}
#endif
