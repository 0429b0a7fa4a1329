/* CPU reference of llmk_attention_decode, in fp64: for query head j of
 * sequence b (KV head j / group) over positions t < L_b,
 *   s_t = softmax_scale * (q . k_t),  m = max s_t,
 *   out = sum_t exp(s_t - m) v_t / sum_t exp(s_t - m)   (rounded once to bf16),
 *   lse = m + log(sum_t exp(s_t - m))                   (rounded to f32),
 * with q, k_t and v_t the fp32 values of llmk.h's table (bf16 inputs,
 * dequantized cache entries) taken exactly into fp64. L_b = 0 gives zeros
 * and lse = -inf. The scores are computed twice (once for m, once for the
 * sums) rather than stored, so the reference allocates nothing. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cpu/attn_cpu.h"
#include "fp8/fp8.h"

#define INV LLMK_ERR_INVALID_ARGUMENT

/* fp64 -> bf16 bits with a single rounding (nearest even): round to fp32
 * by truncation with a sticky last bit (round to odd), which keeps the
 * information a second rounding to bf16 needs, then round to bf16. */
static uint16_t bf16_from_f64(double x) {
  float f = (float)x;
  if (isfinite(f) && (double)f != x) {
    uint32_t b = llmk_f32_bits(f);
    if (fabs((double)f) > fabs(x)) b -= 1; /* one ulp toward zero: the truncation */
    f = llmk_f32_from_bits(b | 1u);
  }
  return llmk_bf16_from_f32(f);
}

static int64_t clamp_len(const llmk_attn_plan *a, int64_t b) {
  int64_t L = a->seq_lens[b];
  if (L < 0) L = 0;
  return L < a->max_len ? L : a->max_len;
}

/* Token-head slot of KV head h at position t of sequence b. */
static int64_t slot_at(const llmk_kv_plan *c, int64_t b, int64_t t, int64_t h) {
  int64_t s0 = b, s1 = t;
  if (c->paged) {
    s0 = c->block_table[b * c->bt_ld + (t >> c->page_shift)];
    s1 = t & ((INT64_C(1) << c->page_shift) - 1);
  }
  return (s0 * c->S1 + s1) * c->hkv + h;
}

/* q . k_t in fp64 over D elements, times the scale. */
static double score(const double *q, const float *k, int64_t D, double scale) {
  double dot = 0.0;
  for (int64_t d = 0; d < D; d++) dot += q[d] * (double)k[d];
  return scale * dot;
}

llmk_status llmk_cpu_attention_decode(const llmk_attn_plan *a, const llmk_kv_plan *c) {
  static const char fn[] = "llmk_attention_decode";
  /* Every page the call reads must exist (before anything is written). */
  if (c->paged) {
    for (int64_t b = 0; b < a->B; b++) {
      const int64_t L = clamp_len(a, b);
      const int64_t pages = (L + (INT64_C(1) << c->page_shift) - 1) >> c->page_shift;
      for (int64_t p = 0; p < pages; p++) {
        const int32_t page = c->block_table[b * c->bt_ld + p];
        if (page < 0 || page >= c->S0)
          return llmk_set_error(INV, fn,
                                "sequence %lld (length %lld): block_table[%lld][%lld] = %d is not a "
                                "page in [0, %lld)",
                                (long long)b, (long long)L, (long long)b, (long long)p, (int)page,
                                (long long)c->S0);
      }
    }
  }
  const int64_t D = c->d, Hq = a->hq;
  const double scale = (double)a->softmax_scale;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t bj = 0; bj < a->B * Hq; bj++) {
    const int64_t b = bj / Hq, j = bj % Hq, h = j / a->group;
    const int64_t L = clamp_len(a, b);
    uint16_t *out = a->out + b * a->ldo + j * D;
    if (L == 0) {
      memset(out, 0, (size_t)D * sizeof *out);
      if (a->lse) a->lse[b * Hq + j] = -INFINITY;
      continue;
    }
    double q[256], acc[256];
    float kv[256];
    const uint16_t *qs = a->q + b * a->ldq + j * D;
    for (int64_t d = 0; d < D; d++) q[d] = (double)llmk_bf16_to_f32(qs[d]);
    double m = -INFINITY;
    for (int64_t t = 0; t < L; t++) {
      llmk_cpu_kv_load(c, 0, slot_at(c, b, t, h), kv);
      const double st = score(q, kv, D, scale);
      if (st > m) m = st;
    }
    double sum = 0.0;
    for (int64_t d = 0; d < D; d++) acc[d] = 0.0;
    for (int64_t t = 0; t < L; t++) {
      const int64_t slot = slot_at(c, b, t, h);
      llmk_cpu_kv_load(c, 0, slot, kv);
      const double p = exp(score(q, kv, D, scale) - m);
      sum += p;
      llmk_cpu_kv_load(c, 1, slot, kv);
      for (int64_t d = 0; d < D; d++) acc[d] += p * (double)kv[d];
    }
    for (int64_t d = 0; d < D; d++) out[d] = bf16_from_f64(acc[d] / sum);
    if (a->lse) a->lse[b * Hq + j] = (float)(m + log(sum));
  }
  return LLMK_SUCCESS;
}
