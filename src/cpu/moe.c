/* The MoE ops' CPU reference (llmk.h, "Mixture of experts"): routing,
 * permutation, gather + quantize and combine, written plainly in the
 * order the header states, with the scalar numerics of core/moe.h that
 * the CUDA kernels share, so that both backends agree bit for bit. */
#include <stdlib.h>
#include <string.h>

#include "core/moe.h"

static float logit(const llmk_mat *m, int64_t t, int64_t e) {
  const char *row = (const char *)m->data + (size_t)(t * m->ld) * llmk_dtype_size(m->dtype);
  return m->dtype == LLMK_F32 ? ((const float *)row)[e] : llmk_bf16_to_f32(((const uint16_t *)row)[e]);
}

/* softmax over v[0 .. n) into w, by llmk.h's fold of 32 lane sums */
static void softmax(const float *v, int n, float *w) {
  float m = v[0];
  for (int e = 1; e < n; e++) m = fmaxf(m, v[e]);
  float part[32] = {0};
  for (int e = 0; e < n; e++) w[e] = llmk_moe_exp(v[e] - m), part[e % 32] = part[e % 32] + w[e];
  const float S = llmk_moe_fold32(part);
  for (int e = 0; e < n; e++) w[e] = w[e] / S;
}

/* the k best of key[0 .. n) (skipping those with allowed[e] == 0) into idx */
static void top_k(const float *key, const unsigned char *allowed, int n, int k, int *idx) {
  for (int s = 0; s < k; s++) {
    int best = -1;
    for (int e = 0; e < n; e++) {
      if (allowed && !allowed[e]) continue;
      int taken = 0;
      for (int j = 0; j < s; j++) taken |= idx[j] == e;
      if (!taken && (best < 0 || llmk_moe_before(key[e], e, key[best], best))) best = e;
    }
    idx[s] = best;
  }
}

llmk_status llmk_cpu_moe_route(const llmk_moe_route_plan *p) {
  const int E = (int)p->E, k = p->k;
  float *l = (float *)malloc(sizeof(float) * 3 * (size_t)E);
  unsigned char *allowed = (unsigned char *)malloc((size_t)E);
  if (!l || !allowed) {
    free(l), free(allowed);
    return llmk_set_error(LLMK_ERR_OUT_OF_MEMORY, "llmk_moe_route", "CPU scratch of %d experts", E);
  }
  float *w = l + E, *c = w + E;
  for (int64_t t = 0; t < p->T; t++) {
    int idx[LLMK_MOE_MAX_K];
    float wk[LLMK_MOE_MAX_K];
    for (int e = 0; e < E; e++) l[e] = logit(&p->logits, t, e);
    switch (p->router) {
      case LLMK_MOE_SOFTMAX_TOPK:
        softmax(l, E, w);
        top_k(w, NULL, E, k, idx);
        for (int s = 0; s < k; s++) wk[s] = w[idx[s]];
        break;
      case LLMK_MOE_TOPK_SOFTMAX: {
        top_k(l, NULL, E, k, idx);
        float v[LLMK_MOE_MAX_K];
        for (int s = 0; s < k; s++) v[s] = l[idx[s]];
        softmax(v, k, wk);
        break;
      }
      case LLMK_MOE_SIGMOID_TOPK:
        top_k(l, NULL, E, k, idx);
        for (int s = 0; s < k; s++) wk[s] = llmk_moe_sigmoid(l[idx[s]]);
        break;
      default: { /* DEEPSEEK */
        const int per = E / p->n_group;
        for (int e = 0; e < E; e++) w[e] = llmk_moe_sigmoid(l[e]), c[e] = w[e] + p->bias[e];
        float gs[LLMK_MOE_MAX_E];
        for (int g = 0; g < p->n_group; g++) {
          int two[2];
          top_k(c + g * per, NULL, per, per > 1 ? 2 : 1, two);
          gs[g] = per > 1 ? c[g * per + two[0]] + c[g * per + two[1]] : c[g * per];
        }
        int keep[LLMK_MOE_MAX_E];
        top_k(gs, NULL, p->n_group, p->topk_group, keep);
        memset(allowed, 0, (size_t)E);
        for (int j = 0; j < p->topk_group; j++) memset(allowed + keep[j] * per, 1, (size_t)per);
        top_k(c, allowed, E, k, idx);
        for (int s = 0; s < k; s++) wk[s] = w[idx[s]];
        break;
      }
    }
    if (p->renormalize && p->router != LLMK_MOE_TOPK_SOFTMAX) {
      float sum = 0.0f;
      for (int s = 0; s < k; s++) sum = sum + wk[s];
      for (int s = 0; s < k; s++) wk[s] = wk[s] / sum;
    }
    for (int s = 0; s < k; s++) {
      p->ids[t * k + s] = idx[s];
      const float v = wk[s] * p->scaling;
      p->weights[t * k + s] = v != v ? llmk_f32_from_bits(0x7FC00000u) : v;
    }
  }
  free(l), free(allowed);
  return LLMK_SUCCESS;
}

llmk_status llmk_cpu_moe_permute(const llmk_moe_permute_plan *p) {
  const int64_t picks = p->T * p->k;
  int64_t total = 0;
  memset(p->sizes, 0, sizeof(int32_t) * (size_t)p->G);
  for (int64_t i = 0; i < picks; i++) {
    const int64_t g = (int64_t)p->ids[i] - p->expert_begin;
    if (g >= 0 && g < p->G && (p->layout == LLMK_GROUP_STACKED || p->sizes[g] < p->m_max)) p->sizes[g]++;
  }
  int64_t first[LLMK_MOE_MAX_G + 1];
  for (int64_t g = 0; g <= p->G; g++) {
    first[g] = p->layout == LLMK_GROUP_STACKED ? total : g * p->m_max;
    if (p->offsets) p->offsets[g] = (int32_t)first[g];
    if (g < p->G) total += p->sizes[g];
  }
  for (int64_t r = 0; r < p->R; r++) p->src_of[r] = -1;
  int32_t seen[LLMK_MOE_MAX_G];
  memset(seen, 0, sizeof(int32_t) * (size_t)p->G);
  for (int64_t i = 0; i < picks; i++) {
    const int64_t g = (int64_t)p->ids[i] - p->expert_begin;
    p->row_of[i] = -1;
    if (g < 0 || g >= p->G || seen[g] >= p->sizes[g]) continue;
    const int64_t row = first[g] + seen[g]++;
    p->row_of[i] = (int32_t)row;
    p->src_of[row] = (int32_t)i;
  }
  return LLMK_SUCCESS;
}

llmk_status llmk_cpu_moe_gather_quant(const llmk_moe_gather_plan *p) {
  const size_t xb = llmk_dtype_size(p->x.dtype), qb = llmk_dtype_size(p->xq.dtype);
  for (int64_t r = 0; r < p->R; r++) {
    const int32_t src = p->src_of[r];
    if (src < 0 || src >= p->T * p->k) continue;
    const uint16_t *x = (const uint16_t *)((const char *)p->x.data + (size_t)((src / p->k) * p->x.ld) * xb);
    char *q = (char *)p->xq.data + (size_t)(r * p->xq.ld) * qb;
    if (p->xq.dtype == LLMK_BF16) {
      memcpy(q, x, (size_t)p->H * 2);
      continue;
    }
    for (int64_t j = 0; j < p->nseg; j++) {
      const int64_t c0 = j * p->gk, n = p->H - c0 < p->gk ? p->H - c0 : p->gk;
      float amax = 0.0f;
      for (int64_t c = 0; c < n; c++) amax = llmk_amax_step(amax, llmk_bf16_to_f32(x[c0 + c]));
      const float scale = llmk_e4m3_group_scale(amax, p->scale_ub);
      const float inv = 1.0f / scale;
      for (int64_t c = 0; c < n; c++)
        ((uint8_t *)q)[c0 + c] = llmk_e4m3_from_f32(llmk_bf16_to_f32(x[c0 + c]) * inv);
      p->scale[r * p->nseg + j] = scale;
    }
  }
  return LLMK_SUCCESS;
}

llmk_status llmk_cpu_moe_combine(const llmk_moe_combine_plan *p) {
  for (int64_t t = 0; t < p->T; t++) {
    uint16_t *out = (uint16_t *)p->out.data + t * p->out.ld;
    const uint16_t *add = p->add.data ? (const uint16_t *)p->add.data + t * p->add.ld : NULL;
    for (int64_t h = 0; h < p->H; h++) {
      float acc = 0.0f;
      for (int s = 0; s < p->k; s++) {
        const int32_t row = p->row_of[t * p->k + s];
        if (row < 0 || row >= p->R) continue;
        acc = fmaf(p->weights[t * p->k + s], llmk_bf16_to_f32(((const uint16_t *)p->y.data)[row * p->y.ld + h]), acc);
      }
      if (add) acc = acc + llmk_bf16_to_f32(add[h]);
      out[h] = acc != acc ? (uint16_t)0x7FC0u : llmk_bf16_from_f32(acc);
    }
  }
  return LLMK_SUCCESS;
}
