/* opcheck cases: the mixture-of-experts ops (llmk_moe_route, _permute,
 * _route_permute, _gather_quant, _combine). llmk.h specifies all five bit
 * for bit on both backends, NaNs included (a NaN weight or combine output
 * is written as one canonical NaN; gather_quant's rows are
 * llmk_quantize_fp8's), so every output is compared bitwise: NaN-equal
 * would let a non-canonical NaN through.
 * The harness wants every output element written, but gather_quant leaves
 * the rows whose src_of is -1 as they are: here src_of names a valid pick
 * on every row (distinct picks, a permutation when R = T k). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opcheck.h"

enum { MOE_ROUTE, MOE_PERMUTE, MOE_ROUTE_PERMUTE, MOE_GATHER, MOE_COMBINE };
enum { GQ_ROW, GQ_BLOCK, GQ_BF16 };
/* logits on a grid of 1/4: many equal keys, which rank by expert index */
enum { MOE_TIES = OC_D_COUNT };

typedef struct moe_priv {
  int op;
  llmk_moe_route_desc rd;
  llmk_moe_permute_desc pd;
  llmk_dtype lt;            /* logits */
  int64_t T, E, k, G, H, R; /* permute: ids drawn from 0 .. E-1 (and a few out of range) */
  int dist;
  int hot;                  /* permute: percent of the picks sent to one local expert (MASKED drops some) */
  int qk;                   /* gather: GQ_* */
  int drop;                 /* combine: percent of row_of outside [0, R) */
  int il, ib, iid, iw, isz, ioff, irow, isrc, ix, ixq, isc, iub, iy, iadd, iout;
} moe_priv;

static const char *const router_names[] = {"softmax_topk", "topk_softmax", "sigmoid_topk", "deepseek"};

static const llmk_tensor *tv(const oc_env *e, int i) { return i < 0 ? NULL : &e->t[i]; }

/* Random ints no expert has: negative, past E, the int32 extremes. */
static int32_t stray_id(oc_rng *r, int64_t E) {
  static const int32_t v[] = {-1, INT32_MIN, INT32_MAX, 1 << 20, -100000};
  return oc_rand(r) % 6 == 5 ? (int32_t)E : v[oc_rand(r) % 5];
}

static void fill_moe(const oc_case *c, void *const *host, oc_rng *r, llmk_handle cpu) {
  (void)cpu;
  const moe_priv *q = OC_PARAMS(c, const moe_priv);
  if (q->il >= 0) {
    const int64_t ld = c->buf[q->il].strides[0];
    for (int64_t t = 0; t < q->T; t++)
      for (int64_t e = 0; e < q->E; e++) {
        const float v = q->dist == MOE_TIES ? 0.25f * rintf(8.0f * oc_normal(r)) : oc_draw(r, q->dist, t, 0, 0, 2.0f);
        oc_put(oc_at(c, host, q->il, 0), q->lt, t * ld + e, v);
      }
  }
  if (q->ib >= 0)
    for (int64_t e = 0; e < q->E; e++) ((float *)oc_at(c, host, q->ib, 0))[e] = 0.3f * oc_normal(r);
  if (q->op == MOE_PERMUTE)
    for (int64_t p = 0; p < q->T * q->k; p++) {
      const double u = oc_uniform(r);
      ((int32_t *)oc_at(c, host, q->iid, 0))[p] = u < 0.03                    ? stray_id(r, q->E)
                                                  : u < 0.03 + q->hot * 0.01 ? (int32_t)(q->pd.expert_begin + q->G / 2)
                                                                              : (int32_t)oc_range(r, 0, q->E - 1);
    }
  if (q->op == MOE_GATHER) {
    const int64_t ld = c->buf[q->ix].strides[0];
    float amax = 0;
    for (int64_t t = 0; t < q->T; t++) {
      const float mag = exp2f((float)(oc_uniform(r) * 8.0 - 4.0)), rv = mag * oc_normal(r);
      for (int64_t h = 0; h < q->H; h++) {
        uint16_t *x = oc_at(c, host, q->ix, t * ld + h);
        *x = llmk_float_to_bf16(oc_draw(r, q->dist, t, rv, 0, mag));
        const float a = fabsf(llmk_bf16_to_float(*x));
        if (isfinite(a) && a > amax) amax = a;
      }
    }
    /* R distinct picks: the first R of a random permutation of 0 .. T k - 1 */
    const int64_t n = q->T * q->k;
    int32_t *perm = malloc((size_t)n * sizeof *perm), *src = oc_at(c, host, q->isrc, 0);
    for (int64_t i = 0; i < n; i++) perm[i] = (int32_t)i;
    for (int64_t i = 0; i < q->R; i++) {
      const int64_t j = oc_range(r, i, n - 1);
      const int32_t s = perm[j];
      perm[j] = perm[i], perm[i] = s, src[i] = s;
    }
    free(perm);
    if (q->iub >= 0) *(float *)oc_at(c, host, q->iub, 0) = amax > 0 ? 0.25f * amax : 1.0f; /* clamps the larger rows */
  }
  if (q->op == MOE_COMBINE) {
    const int64_t ld = c->buf[q->iy].strides[0];
    for (int64_t i = 0; i < q->R; i++)
      for (int64_t h = 0; h < q->H; h++)
        *(uint16_t *)oc_at(c, host, q->iy, i * ld + h) = llmk_float_to_bf16(oc_draw(r, q->dist, i, 0, 0, 1.0f));
    int32_t *row = oc_at(c, host, q->irow, 0);
    float *w = oc_at(c, host, q->iw, 0);
    for (int64_t p = 0; p < q->T * q->k; p++) {
      /* a dropped pick is -1, now and then another row outside [0, R) */
      row[p] = oc_uniform(r) * 100 >= q->drop ? (int32_t)oc_range(r, 0, q->R - 1)
               : oc_rand(r) % 8                ? -1
                                               : (oc_rand(r) % 2 ? (int32_t)q->R : INT32_MIN);
      w[p] = 0.5f * oc_normal(r);
    }
    if (q->iadd >= 0) {
      const int64_t lda = c->buf[q->iadd].strides[0];
      for (int64_t t = 0; t < q->T; t++)
        for (int64_t h = 0; h < q->H; h++)
          *(uint16_t *)oc_at(c, host, q->iadd, t * lda + h) = llmk_float_to_bf16(oc_normal(r));
    }
  }
}

static llmk_status run_moe(const oc_case *c, const oc_env *e, void *stream) {
  const moe_priv *q = OC_PARAMS(c, const moe_priv);
  switch (q->op) {
    case MOE_ROUTE:
      return llmk_moe_route(e->h, &q->rd, &e->t[q->il], tv(e, q->ib), &e->t[q->iid], &e->t[q->iw], stream);
    case MOE_PERMUTE:
      return llmk_moe_permute(e->h, &q->pd, &e->t[q->iid], &e->t[q->isz], tv(e, q->ioff), &e->t[q->irow],
                              &e->t[q->isrc], stream);
    case MOE_ROUTE_PERMUTE:
      return llmk_moe_route_permute(e->h, &q->rd, &q->pd, &e->t[q->il], tv(e, q->ib), &e->t[q->iid], &e->t[q->iw],
                                    &e->t[q->isz], tv(e, q->ioff), &e->t[q->irow], &e->t[q->isrc], stream);
    case MOE_GATHER: {
      llmk_quantize_desc d = LLMK_QUANTIZE_DESC_INIT;
      d.scaling = q->qk == GQ_ROW ? LLMK_SCALING_ROW : LLMK_SCALING_BLOCK;
      d.block_m = 1, d.block_k = 128;
      if (q->iub >= 0) d.scale_ub = e->t[q->iub].data;
      return llmk_moe_gather_quant(e->h, q->qk == GQ_BF16 ? NULL : &d, &e->t[q->ix], &e->t[q->isrc], (int32_t)q->k,
                                   &e->t[q->ixq], tv(e, q->isc), stream);
    }
    default:
      return llmk_moe_combine(e->h, &e->t[q->iy], &e->t[q->irow], &e->t[q->iw], tv(e, q->iadd), &e->t[q->iout],
                              stream);
  }
}

static moe_priv *moe_init(oc_case *c, const char *op, int kind, uint64_t seed) {
  oc_case_init(c, op, seed);
  _Static_assert(sizeof(moe_priv) <= sizeof c->p, "moe_priv");
  moe_priv *q = OC_PARAMS(c, moe_priv);
  memset(q, 0, sizeof *q);
  q->op = kind;
  q->il = q->ib = q->iid = q->iw = q->isz = q->ioff = q->irow = q->isrc = -1;
  q->ix = q->ixq = q->isc = q->iub = q->iy = q->iadd = q->iout = -1;
  c->fill = fill_moe;
  c->run = run_moe;
  return q;
}

/* The routers as the models use them: Mixtral / Qwen3 renormalize,
 * gpt-oss and Llama 4 do not, DeepSeek-V3 (8 groups, 4 kept, x 2.5) does. */
static void route_setup(oc_case *c, moe_priv *q, llmk_moe_router rt, llmk_dtype lt, int64_t T, int64_t E, int64_t k,
                        int64_t ldpad) {
  llmk_moe_route_desc d = LLMK_MOE_ROUTE_DESC_INIT;
  d.router = rt, d.k = (int32_t)k;
  d.renormalize = rt == LLMK_MOE_SOFTMAX_TOPK || rt == LLMK_MOE_DEEPSEEK;
  if (rt == LLMK_MOE_DEEPSEEK) d.n_group = 8, d.topk_group = 4, d.scaling = 2.5f;
  q->rd = d, q->lt = lt, q->T = T, q->E = E, q->k = k;
  const int64_t sh[2] = {T, k};
  q->il = oc_buf_2d(c, "logits", OC_IN, OC_CMP_BITS, lt, T, E, E + ldpad, 0);
  if (rt == LLMK_MOE_DEEPSEEK) q->ib = oc_buf_1d(c, "bias", OC_IN, OC_CMP_BITS, LLMK_F32, E);
  q->iid = oc_buf_nd(c, "ids", OC_OUT, OC_CMP_BITS, LLMK_I32, 2, sh);
  q->iw = oc_buf_nd(c, "weights", OC_OUT, OC_CMP_BITS, LLMK_F32, 2, sh);
  snprintf(c->dtype, sizeof c->dtype, "%s", llmk_dtype_name(lt));
  oc_key(c, "t", T);
  oc_key(c, "e", E);
  oc_key(c, "k", k);
  c->bytes = (double)(T * E) * (double)llmk_dtype_size(lt) + (double)(T * k) * 8.0;
}

static void permute_setup(oc_case *c, moe_priv *q, llmk_group_layout layout, int64_t G, int64_t begin,
                          int64_t m_max, int offsets) {
  const llmk_moe_permute_desc d = LLMK_MOE_PERMUTE_DESC_INIT;
  q->pd = d;
  q->pd.layout = layout, q->pd.expert_begin = begin, q->pd.m_max = m_max;
  q->G = G, q->R = layout == LLMK_GROUP_MASKED ? G * m_max : q->T * q->k;
  const int64_t sh[2] = {q->T, q->k};
  q->isz = oc_buf_1d(c, "sizes", OC_OUT, OC_CMP_BITS, LLMK_I32, G);
  if (offsets) q->ioff = oc_buf_1d(c, "offsets", OC_OUT, OC_CMP_BITS, LLMK_I32, G + 1);
  q->irow = oc_buf_nd(c, "row_of", OC_OUT, OC_CMP_BITS, LLMK_I32, 2, sh);
  q->isrc = oc_buf_1d(c, "src_of", OC_OUT, OC_CMP_BITS, LLMK_I32, q->R);
  oc_key(c, "g", G);
  c->bytes += (double)(q->T * q->k) * 8.0 + (double)q->R * 4.0 + (double)(2 * G + 1) * 4.0;
}

static void route_case(oc_case *c, llmk_moe_router rt, llmk_dtype lt, int64_t T, int64_t E, int64_t k, int64_t ldpad,
                       int dist, uint64_t seed) {
  moe_priv *q = moe_init(c, "moe_route", MOE_ROUTE, seed);
  q->dist = dist;
  route_setup(c, q, rt, lt, T, E, k, ldpad);
  snprintf(c->name, sizeof c->name, "%s %s T=%lld E=%lld k=%lld ld=%lld %s", router_names[rt], c->dtype, (long long)T,
           (long long)E, (long long)k, (long long)(E + ldpad), dist == MOE_TIES ? "ties" : oc_dist_name(dist));
}

static void permute_case(oc_case *c, llmk_group_layout layout, int64_t T, int64_t k, int64_t E, int64_t G,
                         int64_t begin, int64_t m_max, int offsets, int hot, uint64_t seed) {
  moe_priv *q = moe_init(c, "moe_permute", MOE_PERMUTE, seed);
  q->T = T, q->k = k, q->E = E, q->hot = hot;
  const int64_t sh[2] = {T, k};
  q->iid = oc_buf_nd(c, "ids", OC_IN, OC_CMP_BITS, LLMK_I32, 2, sh);
  snprintf(c->dtype, sizeof c->dtype, "i32");
  oc_key(c, "t", T);
  oc_key(c, "k", k);
  permute_setup(c, q, layout, G, begin, m_max, offsets);
  snprintf(c->name, sizeof c->name, "%s T=%lld k=%lld ids<%lld G=%lld begin=%lld m_max=%lld%s hot=%d%%",
           layout == LLMK_GROUP_MASKED ? "masked" : "stacked", (long long)T, (long long)k, (long long)E,
           (long long)G, (long long)begin, (long long)m_max, offsets ? " offsets" : "", hot);
}

static void route_permute_case(oc_case *c, llmk_moe_router rt, llmk_dtype lt, int64_t T, int64_t E, int64_t k,
                               llmk_group_layout layout, int64_t G, int64_t begin, int64_t m_max, const char *tag,
                               uint64_t seed) {
  moe_priv *q = moe_init(c, "moe_route_permute", MOE_ROUTE_PERMUTE, seed);
  q->dist = OC_D_NORMAL;
  route_setup(c, q, rt, lt, T, E, k, 0);
  permute_setup(c, q, layout, G, begin, m_max, 1);
  snprintf(c->name, sizeof c->name, "%s %s T=%lld E=%lld k=%lld %s G=%lld begin=%lld m_max=%lld%s", router_names[rt],
           c->dtype, (long long)T, (long long)E, (long long)k, layout == LLMK_GROUP_MASKED ? "masked" : "stacked",
           (long long)G, (long long)begin, (long long)m_max, tag);
}

/* R rows gathered from T tokens of H; padx, padq: row padding of x and xq. */
static void gather_case(oc_case *c, int qk, int64_t T, int64_t k, int64_t H, int64_t R, int64_t padx, int64_t padq,
                        int ub, int dist, const char *tag, uint64_t seed) {
  moe_priv *q = moe_init(c, "moe_gather_quant", MOE_GATHER, seed);
  q->qk = qk, q->T = T, q->k = k, q->H = H, q->R = R, q->dist = dist;
  const int64_t nseg = (H + 127) / 128;
  q->ix = oc_buf_2d(c, "x", OC_IN, OC_CMP_BITS, LLMK_BF16, T, H, H + padx, 0);
  q->isrc = oc_buf_1d(c, "src_of", OC_IN, OC_CMP_BITS, LLMK_I32, R);
  q->ixq = oc_buf_2d(c, "xq", OC_OUT, OC_CMP_BITS, qk == GQ_BF16 ? LLMK_BF16 : LLMK_E4M3, R, H, H + padq, 0);
  if (qk == GQ_ROW) q->isc = oc_buf_1d(c, "scale", OC_OUT, OC_CMP_BITS, LLMK_F32, R);
  if (qk == GQ_BLOCK) q->isc = oc_buf_2d(c, "scale", OC_OUT, OC_CMP_BITS, LLMK_F32, R, nseg, nseg, 0);
  if (ub) q->iub = oc_buf_1d(c, "scale_ub", OC_IN, OC_CMP_BITS, LLMK_F32, 1);
  static const char *const kinds[] = {"e4m3 row", "e4m3 1x128", "bf16"};
  snprintf(c->name, sizeof c->name, "%s T=%lld k=%lld H=%lld R=%lld ldx=%lld ldq=%lld%s %s%s", kinds[qk],
           (long long)T, (long long)k, (long long)H, (long long)R, (long long)(H + padx), (long long)(H + padq),
           ub ? " scale_ub" : "", oc_dist_name(dist), tag);
  snprintf(c->dtype, sizeof c->dtype, "bf16");
  oc_key(c, "r", R);
  oc_key(c, "h", H);
  oc_key(c, "k", k);
  c->bytes = (double)(R * H) * (qk == GQ_BF16 ? 4.0 : 3.0) + (double)R * 4.0 +
             (qk == GQ_ROW ? (double)R * 4.0 : qk == GQ_BLOCK ? (double)(R * nseg) * 4.0 : 0.0);
}

/* add: 0 none, 1 a separate add, 2 out = add (in place). drop: percent of
 * the picks outside [0, R). */
static void combine_case(oc_case *c, int64_t T, int64_t k, int64_t H, int64_t R, int64_t pady, int add, int drop,
                         int dist, const char *tag, uint64_t seed) {
  moe_priv *q = moe_init(c, "moe_combine", MOE_COMBINE, seed);
  q->T = T, q->k = k, q->H = H, q->R = R, q->drop = drop, q->dist = dist;
  const int64_t sh[2] = {T, k};
  q->iy = oc_buf_2d(c, "y", OC_IN, OC_CMP_BITS, LLMK_BF16, R, H, H + pady, 0);
  q->irow = oc_buf_nd(c, "row_of", OC_IN, OC_CMP_BITS, LLMK_I32, 2, sh);
  q->iw = oc_buf_nd(c, "weights", OC_IN, OC_CMP_BITS, LLMK_F32, 2, sh);
  if (add == 1) q->iadd = oc_buf_2d(c, "add", OC_IN, OC_CMP_BITS, LLMK_BF16, T, H, H + 3, 0);
  if (add == 2) q->iout = q->iadd = oc_buf_2d(c, "out", OC_INOUT, OC_CMP_BITS, LLMK_BF16, T, H, H, 0);
  else q->iout = oc_buf_2d(c, "out", OC_OUT, OC_CMP_BITS, LLMK_BF16, T, H, H + (H % 2), 0);
  static const char *const adds[] = {"", " add", " out=add"};
  snprintf(c->name, sizeof c->name, "T=%lld k=%lld H=%lld R=%lld ldy=%lld%s drop=%d%% %s%s", (long long)T, (long long)k,
           (long long)H, (long long)R, (long long)(H + pady), adds[add], drop, oc_dist_name(dist), tag);
  snprintf(c->dtype, sizeof c->dtype, "bf16");
  oc_key(c, "t", T);
  oc_key(c, "k", k);
  oc_key(c, "h", H);
  oc_key(c, "r", R);
  c->bytes = (double)(T * k) * (1.0 - drop * 0.01) * (double)H * 2.0 + (double)(T * H) * (add ? 4.0 : 2.0) +
             (double)(T * k) * 8.0;
}

/* DeepSeek-V3 at decode (128 tokens) and prefill (4096) on one GPU of
 * eight (experts 0-31 of 256, about T rows each), as `llmk demo moe`
 * runs it: the rows are the ones named "decode" and "prefill" (timed by
 * --perf as every case is). */
void oc_moe_cases(oc_list *l, int quick, uint64_t seed) {
  oc_rng r;
  oc_rng_seed(&r, seed);
  const llmk_moe_router SM = LLMK_MOE_SOFTMAX_TOPK, TS = LLMK_MOE_TOPK_SOFTMAX, SG = LLMK_MOE_SIGMOID_TOPK,
                        DS = LLMK_MOE_DEEPSEEK;
  const llmk_dtype F = LLMK_F32, B = LLMK_BF16;
  const llmk_group_layout ST = LLMK_GROUP_STACKED, MK = LLMK_GROUP_MASKED;
  static const int NI = OC_D_NAN_INF, TI = MOE_TIES, NO = OC_D_NORMAL;
  /* route: every router in f32 and bf16; T = 300 E = 256 k = 8 is
   * DeepSeek-V3's; E = 16 k = 1 Llama 4 Scout's; groups of 12 miss the
   * redux kernel; E = 1024 k = 32 the limits. */
  const struct { llmk_moe_router rt; llmk_dtype lt; int64_t T, E, k, ldpad; int dist, quick; } rc[] = {
      {SM, F, 37, 64, 4, 0, NO, 1},   {SM, B, 37, 64, 4, 5, NI, 1},   {TS, F, 37, 64, 4, 0, TI, 1},
      {TS, B, 37, 64, 4, 0, NO, 0},   {SG, F, 37, 64, 1, 0, NI, 1},   {SG, B, 37, 64, 1, 0, TI, 0},
      {DS, F, 37, 64, 4, 0, NO, 1},   {DS, B, 37, 64, 4, 3, TI, 1},   {SM, B, 300, 256, 8, 0, NO, 0},
      {TS, F, 300, 256, 8, 0, NI, 0}, {SG, B, 300, 256, 1, 0, NO, 0}, {DS, F, 300, 256, 8, 0, NO, 1},
      {DS, B, 300, 256, 8, 7, NI, 0}, {SG, B, 37, 16, 1, 0, NO, 1},   {DS, F, 37, 96, 8, 0, TI, 1},
      {SM, F, 5, 1024, 32, 1, NO, 0}};
  for (size_t i = 0; i < sizeof rc / sizeof rc[0]; i++) {
    if (quick && !rc[i].quick) continue;
    oc_case *c = oc_list_add(l);
    route_case(c, rc[i].rt, rc[i].lt, rc[i].T, rc[i].E, rc[i].k, rc[i].ldpad, rc[i].dist, oc_rand(&r));
    if (rc[i].quick) c->flags |= OC_QUICK;
  }
  /* permute: 148 picks (the one-CTA kernel), 2400 (one chunk), 8000
   * (count + place over chunks); the masked m_max below the hot expert's
   * count, so picks are dropped; T = 0 writes sizes, offsets, src_of. */
  const struct { llmk_group_layout lay; int64_t T, k, E, G, begin, m_max; int offsets, hot, quick; } pc[] = {
      {ST, 37, 4, 64, 16, 16, 0, 1, 0, 1},     {MK, 37, 4, 64, 16, 16, 3, 1, 20, 1},
      {ST, 300, 8, 256, 32, 64, 0, 0, 10, 1},  {MK, 300, 8, 256, 32, 64, 8, 1, 10, 1},
      {ST, 1000, 8, 256, 256, 0, 0, 1, 0, 0},  {MK, 1000, 8, 256, 32, 224, 24, 0, 10, 0},
      {ST, 1000, 8, 300, 1024, 7, 0, 1, 5, 0}, {MK, 3, 2, 4, 1, 2, 1, 1, 30, 1},
      {MK, 0, 4, 64, 16, 0, 5, 1, 0, 1}};
  for (size_t i = 0; i < sizeof pc / sizeof pc[0]; i++) {
    if (quick && !pc[i].quick) continue;
    oc_case *c = oc_list_add(l);
    permute_case(c, pc[i].lay, pc[i].T, pc[i].k, pc[i].E, pc[i].G, pc[i].begin, pc[i].m_max, pc[i].offsets, pc[i].hot,
                 oc_rand(&r));
    if (pc[i].quick) c->flags |= OC_QUICK;
  }
  /* route + permute: T = 16 in one launch, T = 100 as two (T > 64) */
  const struct { llmk_moe_router rt; llmk_dtype lt; int64_t T, E, k; llmk_group_layout lay; int64_t G, begin, m_max;
                 const char *tag; int quick; } rp[] = {
      {DS, F, 16, 256, 8, ST, 32, 64, 0, "", 1},
      {DS, B, 100, 256, 8, ST, 32, 64, 0, "", 1},
      {SM, B, 16, 64, 4, MK, 16, 8, 2, "", 1},
      {DS, F, 128, 256, 8, ST, 32, 0, 0, " decode", 0},
      {DS, B, 4096, 256, 8, ST, 32, 0, 0, " prefill", 0}};
  for (size_t i = 0; i < sizeof rp / sizeof rp[0]; i++) {
    if (quick && !rp[i].quick) continue;
    oc_case *c = oc_list_add(l);
    route_permute_case(c, rp[i].rt, rp[i].lt, rp[i].T, rp[i].E, rp[i].k, rp[i].lay, rp[i].G, rp[i].begin,
                       rp[i].m_max, rp[i].tag, oc_rand(&r));
    if (rp[i].quick) c->flags |= OC_QUICK;
  }
  /* gather: H = 7168 (DeepSeek-V3), 200 (a partial 128-block), 131 (odd:
   * the unvectorized paths) */
  const struct { int qk; int64_t T, k, H, R, padx, padq; int ub, dist; const char *tag; int quick; } gc[] = {
      {GQ_ROW, 37, 4, 7168, 148, 0, 0, 0, NO, "", 1},
      {GQ_BLOCK, 37, 4, 7168, 148, 64, 0, 0, OC_D_ZERO_ROWS, "", 1},
      {GQ_BF16, 37, 4, 7168, 148, 0, 16, 0, NO, "", 1},
      {GQ_ROW, 21, 8, 200, 100, 8, 0, 1, OC_D_OUTLIER, "", 1},
      {GQ_BLOCK, 21, 8, 200, 168, 0, 8, 1, NI, "", 1},
      {GQ_BF16, 21, 8, 200, 168, 3, 0, 0, NI, "", 1},
      {GQ_BLOCK, 9, 2, 131, 18, 1, 3, 0, OC_D_WIDE, "", 1},
      {GQ_BF16, 9, 2, 131, 17, 1, 1, 0, NO, "", 1},
      {GQ_BLOCK, 128, 8, 7168, 128, 0, 0, 0, NO, " decode", 0},
      {GQ_BLOCK, 4096, 8, 7168, 4096, 0, 0, 0, NO, " prefill", 0}};
  for (size_t i = 0; i < sizeof gc / sizeof gc[0]; i++) {
    if (quick && !gc[i].quick) continue;
    oc_case *c = oc_list_add(l);
    gather_case(c, gc[i].qk, gc[i].T, gc[i].k, gc[i].H, gc[i].R, gc[i].padx, gc[i].padq, gc[i].ub, gc[i].dist,
                gc[i].tag, oc_rand(&r));
    if (gc[i].quick) c->flags |= OC_QUICK;
  }
  /* combine: with and without add (and in place), H odd, dropped picks;
   * decode and prefill keep the picks of one GPU of eight */
  const struct { int64_t T, k, H, R, pady; int add, drop, dist; const char *tag; int quick; } cc[] = {
      {37, 4, 7168, 148, 0, 1, 10, NO, "", 1},   {37, 4, 7168, 100, 8, 0, 30, NO, "", 1},
      {21, 8, 333, 120, 5, 1, 20, NI, "", 1},    {21, 8, 333, 120, 0, 2, 20, NO, "", 1},
      {5, 1, 64, 3, 0, 0, 40, NO, "", 1},
      {128, 8, 7168, 128, 0, 1, 88, NO, " decode", 0}, {4096, 8, 7168, 4096, 0, 1, 88, NO, " prefill", 0}};
  for (size_t i = 0; i < sizeof cc / sizeof cc[0]; i++) {
    if (quick && !cc[i].quick) continue;
    oc_case *c = oc_list_add(l);
    combine_case(c, cc[i].T, cc[i].k, cc[i].H, cc[i].R, cc[i].pady, cc[i].add, cc[i].drop, cc[i].dist, cc[i].tag,
                 oc_rand(&r));
    if (cc[i].quick) c->flags |= OC_QUICK;
  }
}
