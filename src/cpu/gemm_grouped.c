/* CPU reference of the grouped GEMM: each group's rows are an ordinary
 * dense GEMM over its weight, scales and bias, computed by the dense
 * reference itself, so a group's rows match llmk_gemm_fp8 / _bf16 on the
 * same rows bit for bit by construction. The group sizes are read here,
 * on the host, exactly as include/llmk.h states the kernels read them. */
#include <stdint.h>

#include "core/gemm.h"

llmk_gemm_plan llmk_grouped_group_plan(const llmk_grouped_plan *p, int64_t g, int64_t r0, int64_t rows) {
  const llmk_gemm_plan *b = &p->base;
  llmk_gemm_plan q = *b;
  const size_t es = b->in_dtype == LLMK_BF16 ? 2 : 1;
  q.M = rows;
  q.x = (const uint8_t *)b->x + (size_t)(r0 * b->ldx) * es;
  q.w = (const uint8_t *)b->w + (size_t)(g * b->N * b->ldw) * es;
  q.y = b->y + r0 * b->ldy;
  if (b->bias) q.bias = (const uint8_t *)b->bias + (size_t)(g * b->N) * (b->bias_dtype == LLMK_BF16 ? 2 : 4);
  if (b->xs) {
    switch (b->scaling) {
      case LLMK_SCALING_TENSOR: q.xs = b->xs + g, q.ws = b->ws + g; break;
      case LLMK_SCALING_ROW: q.xs = b->xs + r0, q.ws = b->ws + g * b->N; break;
      default: /* BLOCK */
        q.xs = b->xs + r0 * b->xs_rs;
        q.ws = b->ws + g * ((b->N + 127) / 128) * b->ws_rs;
        break;
    }
  }
  return q;
}

llmk_status llmk_cpu_gemm_grouped(const llmk_grouped_plan *p) {
  const int stacked = p->layout == LLMK_GROUP_STACKED;
  int64_t next = 0; /* stacked: the first row of the next group */
  for (int64_t g = 0; g < p->G; g++) {
    const int64_t s = p->sizes[g] > 0 ? p->sizes[g] : 0;
    int64_t r0, rows;
    if (stacked) {
      r0 = next < p->base.M ? next : p->base.M;
      rows = s < p->base.M - r0 ? s : p->base.M - r0;
      next += s;
    } else {
      r0 = g * p->m_max;
      rows = s < p->m_max ? s : p->m_max;
    }
    if (rows == 0 || p->base.N == 0) continue;
    const llmk_gemm_plan q = llmk_grouped_group_plan(p, g, r0, rows);
    const llmk_status st = q.in_dtype == LLMK_BF16 ? llmk_cpu_gemm_bf16(&q) : llmk_cpu_gemm_fp8(&q);
    if (st) return st;
  }
  return LLMK_SUCCESS;
}
