/* The MoE ops' CPU reference against llmk.h's rules, written here a second
 * way: routing by sorting (qsort on the stated order) rather than
 * selection, the permutation by counting sort, the gather against
 * llmk_quantize_fp8 of the gathered rows, the combine by its formula; the
 * exp against the C library's within 2 ulp; and bad arguments: a clear
 * status and nothing written. */
#include <math.h>
#include <stdlib.h>

#include "core/moe.h"
#include "guard_buf.h"
#include "harness.h"
#include "llmk.h"

static llmk_handle cpu;

/* distance in units in the last place (finite floats of one sign) */
static float ulp_dist(float a, float b) {
  int32_t ia, ib;
  memcpy(&ia, &a, 4), memcpy(&ib, &b, 4);
  return (float)llabs((long long)ia - (long long)ib);
}

static void exp_accuracy(void) {
  float worst = 0.0f;
  for (int i = 0; i < 2000000; i++) {
    const float x = -103.0f + 191.0f * (float)t_rand_uniform();
    const float want = (float)exp((double)x), got = llmk_moe_exp(x);
    const float d = ulp_dist(got, want);
    if (d > worst) worst = d;
  }
  CHECK(worst <= 2.0f, "llmk_moe_exp: %g ulp from exp at worst", (double)worst);
  CHECK(llmk_moe_exp(0.0f) == 1.0f && llmk_moe_exp(-200.0f) == 0.0f && isinf(llmk_moe_exp(100.0f)) &&
            isnan(llmk_moe_exp(NAN)),
        "llmk_moe_exp's special values");
  CHECK(llmk_moe_before(1.0f, 5, 1.0f, 7) && !llmk_moe_before(1.0f, 7, 1.0f, 5) && llmk_moe_before(-INFINITY, 9, NAN, 0),
        "ties go to the lower index, NaN ranks last");
}

/* ---- routing by sorting ------------------------------------------------ */

static const float *g_key;
static int by_key(const void *a, const void *b) {
  const int ia = *(const int *)a, ib = *(const int *)b;
  return llmk_moe_before(g_key[ia], ia, g_key[ib], ib) ? -1 : llmk_moe_before(g_key[ib], ib, g_key[ia], ia) ? 1 : 0;
}
/* the order of n keys, best first */
static void order(const float *key, int n, int *idx) {
  for (int i = 0; i < n; i++) idx[i] = i;
  g_key = key;
  qsort(idx, (size_t)n, sizeof(int), by_key);
}

static void softmax2(const float *v, int n, float *w) {
  float m = -INFINITY, part[32] = {0};
  for (int e = 0; e < n; e++) m = fmaxf(m, v[e]);
  for (int e = 0; e < n; e++) w[e] = llmk_moe_exp(v[e] - m);
  for (int e = 0; e < n; e++) part[e % 32] = part[e % 32] + w[e];
  const float S = llmk_moe_fold32(part);
  for (int e = 0; e < n; e++) w[e] = w[e] / S;
}

/* one token of llmk.h's rules */
static void route_ref(const llmk_moe_route_desc *d, const float *l, const float *bias, int E, int32_t *ids,
                      float *wts) {
  float w[1024], c[1024], key[1024], gs[1024];
  int idx[1024], gi[1024];
  const int k = d->k;
  for (int e = 0; e < E; e++) key[e] = l[e];
  if (d->router == LLMK_MOE_SOFTMAX_TOPK) softmax2(l, E, w), memcpy(key, w, sizeof(float) * (size_t)E);
  if (d->router == LLMK_MOE_DEEPSEEK) {
    const int per = E / d->n_group;
    for (int e = 0; e < E; e++) w[e] = llmk_moe_sigmoid(l[e]), c[e] = w[e] + bias[e];
    for (int g = 0; g < d->n_group; g++) {
      order(c + g * per, per, idx);
      gs[g] = per > 1 ? c[g * per + idx[0]] + c[g * per + idx[1]] : c[g * per];
    }
    order(gs, d->n_group, gi);
    for (int e = 0; e < E; e++) {
      int kept = 0;
      for (int j = 0; j < d->topk_group; j++) kept |= gi[j] == e / per;
      key[e] = kept ? c[e] : NAN; /* dropped groups rank last, after every number */
      if (kept && isnan(c[e])) key[e] = -INFINITY; /* (not produced by these inputs) */
    }
  }
  order(key, E, idx);
  float out[32];
  for (int s = 0; s < k; s++) {
    ids[s] = idx[s];
    out[s] = d->router == LLMK_MOE_SIGMOID_TOPK ? llmk_moe_sigmoid(l[idx[s]])
             : d->router == LLMK_MOE_TOPK_SOFTMAX ? l[idx[s]]
                                                   : w[idx[s]];
  }
  if (d->router == LLMK_MOE_TOPK_SOFTMAX) {
    float v[32];
    memcpy(v, out, sizeof(float) * (size_t)k);
    softmax2(v, k, out);
  } else if (d->renormalize) {
    float sum = 0.0f;
    for (int s = 0; s < k; s++) sum = sum + out[s];
    for (int s = 0; s < k; s++) out[s] = out[s] / sum;
  }
  for (int s = 0; s < k; s++) wts[s] = out[s] * d->scaling;
}

static void route_case(llmk_moe_router router, int T, int E, int k, int ties, int n_group, int topk_group, int renorm) {
  float *l = t_xmalloc(sizeof(float) * (size_t)(T * E)), *bias = t_xmalloc(sizeof(float) * (size_t)E);
  for (int i = 0; i < T * E; i++) l[i] = ties ? (float)(t_rand_u64() % 3) : 2.0f * t_rand_normal();
  for (int e = 0; e < E; e++) bias[e] = ties ? 0.0f : 0.05f * t_rand_normal();
  int32_t *ids = t_xmalloc(sizeof(int32_t) * (size_t)(T * k)), want_ids[32];
  float *w = t_xmalloc(sizeof(float) * (size_t)(T * k)), want_w[32];
  llmk_moe_route_desc d = LLMK_MOE_ROUTE_DESC_INIT;
  d.router = router, d.k = k, d.renormalize = renorm, d.n_group = n_group, d.topk_group = topk_group;
  d.scaling = router == LLMK_MOE_DEEPSEEK ? 2.5f : 1.0f;
  llmk_tensor tl = llmk_tensor_2d(l, LLMK_F32, T, E, E), tb = llmk_tensor_1d(bias, LLMK_F32, E);
  llmk_tensor ti = llmk_tensor_2d(ids, LLMK_I32, T, k, k), tw = llmk_tensor_2d(w, LLMK_F32, T, k, k);
  const llmk_status s = llmk_moe_route(cpu, &d, &tl, router == LLMK_MOE_DEEPSEEK ? &tb : NULL, &ti, &tw, NULL);
  CHECK(s == LLMK_SUCCESS, "route: %s", llmk_last_error());
  int bad = 0;
  for (int t = 0; t < T && !bad; t++) {
    route_ref(&d, l + t * E, bias, E, want_ids, want_w);
    for (int j = 0; j < k; j++) bad |= ids[t * k + j] != want_ids[j] || memcmp(&w[t * k + j], &want_w[j], 4);
    if (bad) fprintf(stderr, "token %d: id %d weight %g, expected %d %g\n", t, ids[t * k], (double)w[t * k],
                     want_ids[0], (double)want_w[0]);
  }
  CHECK(!bad, "route router %d T %d E %d k %d ties %d groups %d/%d renorm %d", (int)router, T, E, k, ties, topk_group,
        n_group, renorm);
  if (router == LLMK_MOE_SOFTMAX_TOPK && renorm && !ties) {
    double sum = 0.0;
    for (int j = 0; j < k; j++) sum += w[j];
    CHECK(fabs(sum - 1.0) < 1e-5, "renormalized weights sum to %g", sum);
  }
  free(l), free(bias), free(ids), free(w);
}

static void routing(void) {
  for (int r = 0; r < 4; r++)
    for (int ties = 0; ties < 2; ties++) {
      const int ds = r == LLMK_MOE_DEEPSEEK;
      route_case((llmk_moe_router)r, 50, 8, 2, ties, ds ? 4 : 1, ds ? 2 : 1, 1);
      route_case((llmk_moe_router)r, 20, 256, 8, ties, ds ? 8 : 1, ds ? 4 : 1, ties);
      route_case((llmk_moe_router)r, 10, 128, 1, ties, ds ? 1 : 1, 1, 0);
      route_case((llmk_moe_router)r, 5, 1024, 32, ties, ds ? 32 : 1, ds ? 8 : 1, 1);
    }
  /* a hand case: ties go to the lower expert */
  float l[4] = {1.0f, 3.0f, 3.0f, 0.0f}, w[2];
  int32_t ids[2];
  llmk_moe_route_desc d = LLMK_MOE_ROUTE_DESC_INIT;
  d.router = LLMK_MOE_TOPK_SOFTMAX, d.k = 2;
  llmk_tensor tl = llmk_tensor_2d(l, LLMK_F32, 1, 4, 4), ti = llmk_tensor_2d(ids, LLMK_I32, 1, 2, 2);
  llmk_tensor tw = llmk_tensor_2d(w, LLMK_F32, 1, 2, 2);
  CHECK(llmk_moe_route(cpu, &d, &tl, NULL, &ti, &tw, NULL) == LLMK_SUCCESS && ids[0] == 1 && ids[1] == 2 &&
            w[0] == 0.5f && w[1] == 0.5f,
        "top-2 of {1, 3, 3, 0}: ids %d %d weights %g %g", ids[0], ids[1], (double)w[0], (double)w[1]);
}

/* ---- permutation by counting sort --------------------------------------- */

static void permute_case(int T, int k, int E, int G, int begin, llmk_group_layout layout, int m_max) {
  const int picks = T * k, R = layout == LLMK_GROUP_STACKED ? picks : G * m_max;
  int32_t *ids = t_xmalloc(sizeof(int32_t) * (size_t)(picks + 1));
  for (int i = 0; i < picks; i++) ids[i] = (int32_t)(t_rand_u64() % (uint64_t)(E + 2)) - 1; /* -1 and E too */
  gbuf bs, bo, br, bsrc;
  int32_t *sizes = gbuf_alloc(&bs, sizeof(int32_t) * (size_t)G, 0x7B);
  int32_t *offs = gbuf_alloc(&bo, sizeof(int32_t) * (size_t)(G + 1), 0x7B);
  int32_t *row_of = gbuf_alloc(&br, sizeof(int32_t) * (size_t)(picks + 1), 0x7B);
  int32_t *src_of = gbuf_alloc(&bsrc, sizeof(int32_t) * (size_t)(R + 1), 0x7B);
  llmk_moe_permute_desc d = LLMK_MOE_PERMUTE_DESC_INIT;
  d.layout = layout, d.expert_begin = begin, d.m_max = m_max;
  llmk_tensor ti = llmk_tensor_2d(ids, LLMK_I32, T, k, k), ts = llmk_tensor_1d(sizes, LLMK_I32, G);
  llmk_tensor to = llmk_tensor_1d(offs, LLMK_I32, G + 1), tr = llmk_tensor_2d(row_of, LLMK_I32, T, k, k);
  llmk_tensor tsrc = llmk_tensor_1d(src_of, LLMK_I32, R);
  CHECK(llmk_moe_permute(cpu, &d, &ti, &ts, &to, &tr, &tsrc, NULL) == LLMK_SUCCESS, "permute: %s", llmk_last_error());
  /* counting sort: count, each group's first row, then a stable pass */
  int bad = 0, *cnt = calloc((size_t)G + 1, sizeof(int)), *firsts = calloc((size_t)G + 1, sizeof(int));
  int *seen = calloc((size_t)G + 1, sizeof(int)), *filled = calloc((size_t)R + 1, sizeof(int));
  for (int i = 0; i < picks; i++)
    if (ids[i] - begin >= 0 && ids[i] - begin < G) cnt[ids[i] - begin]++;
  int total = 0;
  for (int g = 0; g < G; g++) {
    if (layout == LLMK_GROUP_MASKED && cnt[g] > m_max) cnt[g] = m_max;
    firsts[g] = layout == LLMK_GROUP_STACKED ? total : g * m_max;
    bad |= sizes[g] != cnt[g] || offs[g] != firsts[g];
    total += cnt[g];
  }
  bad |= offs[G] != (layout == LLMK_GROUP_STACKED ? total : G * m_max);
  for (int i = 0; i < picks; i++) {
    const int g = ids[i] - begin;
    int want = -1;
    if (g >= 0 && g < G && seen[g] < cnt[g]) want = firsts[g] + seen[g]++;
    bad |= row_of[i] != want;
    if (want >= 0) bad |= src_of[want] != i, filled[want] = 1;
  }
  for (int r = 0; r < R; r++) bad |= !filled[r] && src_of[r] != -1;
  CHECK(!bad, "permute T %d k %d E %d G %d begin %d %s m_max %d", T, k, E, G, begin, layout ? "masked" : "stacked",
        m_max);
  CHECK(stray_writes(&bsrc, 1, R, R, 4) == 0 && stray_writes(&br, 1, picks, picks, 4) == 0 &&
            stray_writes(&bs, 1, G, G, 4) == 0 && stray_writes(&bo, 1, G + 1, G + 1, 4) == 0,
        "permute wrote outside its outputs");
  free(ids), free(cnt), free(firsts), free(seen), free(filled);
  free(bs.base), free(bo.base), free(br.base), free(bsrc.base);
}

static void permutation(void) {
  permute_case(100, 8, 256, 32, 64, LLMK_GROUP_STACKED, 0);
  permute_case(1, 1, 4, 4, 0, LLMK_GROUP_STACKED, 0);
  permute_case(300, 2, 8, 8, 0, LLMK_GROUP_STACKED, 0);
  permute_case(300, 2, 8, 8, 0, LLMK_GROUP_MASKED, 10);
  permute_case(64, 4, 16, 12, 2, LLMK_GROUP_MASKED, 64);
  permute_case(0, 4, 16, 12, 2, LLMK_GROUP_STACKED, 0);
}

/* ---- gather + quantize against llmk_quantize_fp8 ------------------------- */

static void gather(void) {
  const int T = 20, k = 3, H = 300, R = T * k + 4;
  uint16_t *x = t_xmalloc(sizeof(uint16_t) * (size_t)(T * H));
  for (int i = 0; i < T * H; i++) x[i] = llmk_float_to_bf16(t_rand_normal() * (i % 11 ? 1.0f : 30.0f));
  int32_t *src = t_xmalloc(sizeof(int32_t) * (size_t)R);
  for (int r = 0; r < R; r++) src[r] = r % 7 == 3 ? -1 : r % 13 == 5 ? T * k : (int32_t)(t_rand_u64() % (uint64_t)(T * k));
  for (int kind = 0; kind < 2; kind++) {
    const int nseg = kind ? (H + 127) / 128 : 1;
    gbuf bq, bsc;
    uint8_t *q = gbuf_alloc(&bq, (size_t)(R * H), 0x5C);
    float *sc = gbuf_alloc(&bsc, sizeof(float) * (size_t)(R * nseg), 0x5C);
    llmk_quantize_desc d = LLMK_QUANTIZE_DESC_INIT;
    d.scaling = kind ? LLMK_SCALING_BLOCK : LLMK_SCALING_ROW, d.block_m = 1, d.block_k = 128;
    llmk_tensor tx = llmk_tensor_2d(x, LLMK_BF16, T, H, H), ts = llmk_tensor_1d(src, LLMK_I32, R);
    llmk_tensor tq = llmk_tensor_2d(q, LLMK_E4M3, R, H, H);
    llmk_tensor tsc = kind ? llmk_tensor_2d(sc, LLMK_F32, R, nseg, nseg) : llmk_tensor_1d(sc, LLMK_F32, R);
    CHECK(llmk_moe_gather_quant(cpu, &d, &tx, &ts, k, &tq, &tsc, NULL) == LLMK_SUCCESS, "gather: %s",
          llmk_last_error());
    /* each filled row against llmk_quantize_fp8 of that one row */
    int bad = 0;
    uint8_t q1[300];
    float s1[3];
    for (int r = 0; r < R; r++) {
      const int filled = src[r] >= 0 && src[r] < T * k;
      if (!filled) {
        for (int c = 0; c < H; c++) bad |= q[r * H + c] != 0x5C;
        continue;
      }
      llmk_tensor rx = llmk_tensor_2d(x + (src[r] / k) * H, LLMK_BF16, 1, H, H);
      llmk_tensor rq = llmk_tensor_2d(q1, LLMK_E4M3, 1, H, H);
      llmk_tensor rs = kind ? llmk_tensor_2d(s1, LLMK_F32, 1, nseg, nseg) : llmk_tensor_1d(s1, LLMK_F32, 1);
      llmk_quantize_fp8(cpu, &d, &rx, &rq, &rs, NULL);
      bad |= memcmp(q1, q + r * H, (size_t)H) != 0 || memcmp(s1, sc + r * nseg, sizeof(float) * (size_t)nseg) != 0;
    }
    CHECK(!bad, "gather %s: rows differ from llmk_quantize_fp8's, or an unfilled row was written",
          kind ? "1x128" : "row");
    CHECK(stray_writes(&bq, R, H, H, 1) == 0, "gather wrote outside xq");
    free(bq.base), free(bsc.base);
  }
  free(x), free(src);
}

/* ---- combine by its formula --------------------------------------------- */

static void combine(void) {
  const int T = 30, k = 4, H = 77, R = T * k;
  uint16_t *y = t_xmalloc(sizeof(uint16_t) * (size_t)(R * H)), *add = t_xmalloc(sizeof(uint16_t) * (size_t)(T * H));
  uint16_t *out = t_xmalloc(sizeof(uint16_t) * (size_t)(T * H));
  for (int i = 0; i < R * H; i++) y[i] = llmk_float_to_bf16(t_rand_normal());
  for (int i = 0; i < T * H; i++) add[i] = llmk_float_to_bf16(t_rand_normal());
  int32_t *rows = t_xmalloc(sizeof(int32_t) * (size_t)(T * k));
  float *w = t_xmalloc(sizeof(float) * (size_t)(T * k));
  for (int i = 0; i < T * k; i++) rows[i] = i % 9 == 4 ? -1 : i % 17 == 3 ? R : (int32_t)(t_rand_u64() % (uint64_t)R),
                                  w[i] = (float)t_rand_uniform();
  llmk_tensor ty = llmk_tensor_2d(y, LLMK_BF16, R, H, H), tr = llmk_tensor_2d(rows, LLMK_I32, T, k, k);
  llmk_tensor tw = llmk_tensor_2d(w, LLMK_F32, T, k, k), ta = llmk_tensor_2d(add, LLMK_BF16, T, H, H);
  llmk_tensor to = llmk_tensor_2d(out, LLMK_BF16, T, H, H);
  CHECK(llmk_moe_combine(cpu, &ty, &tr, &tw, &ta, &to, NULL) == LLMK_SUCCESS, "combine: %s", llmk_last_error());
  int bad = 0;
  for (int t = 0; t < T; t++)
    for (int h = 0; h < H; h++) {
      float acc = 0.0f;
      for (int s = 0; s < k; s++) {
        const int r = rows[t * k + s];
        if (r >= 0 && r < R) acc = fmaf(w[t * k + s], llmk_bf16_to_float(y[r * H + h]), acc);
      }
      acc = acc + llmk_bf16_to_float(add[t * H + h]);
      bad |= out[t * H + h] != llmk_float_to_bf16(acc);
    }
  CHECK(!bad, "combine differs from its formula");
  /* in place: out = add */
  CHECK(llmk_moe_combine(cpu, &ty, &tr, &tw, &ta, &ta, NULL) == LLMK_SUCCESS && !memcmp(add, out, (size_t)(T * H) * 2),
        "combine in place (out = add) differs");
  free(y), free(add), free(out), free(rows), free(w);
}

/* ---- bad arguments: a status, a message, nothing written ----------------- */

static void bad_args(void) {
  int wrote = 0;
  float l[64] = {0}, bias[8] = {0}, w[16];
  int32_t ids[16];
  memset(w, 0x5C, sizeof w), memset(ids, 0x5C, sizeof ids);
  llmk_tensor tl = llmk_tensor_2d(l, LLMK_F32, 8, 8, 8), tb = llmk_tensor_1d(bias, LLMK_F32, 8);
  llmk_tensor ti = llmk_tensor_2d(ids, LLMK_I32, 8, 2, 2), tw = llmk_tensor_2d(w, LLMK_F32, 8, 2, 2);
  struct {
    const char *what;
    llmk_moe_route_desc d;
    int with_bias;
  } cases[] = {
      {"k > E", {LLMK_MOE_ROUTE_DESC_SIZE, LLMK_MOE_SOFTMAX_TOPK, 9, 0, 1, 1, 1.0f}, 0},
      {"k = 0", {LLMK_MOE_ROUTE_DESC_SIZE, LLMK_MOE_SOFTMAX_TOPK, 0, 0, 1, 1, 1.0f}, 0},
      {"n_group not dividing E", {LLMK_MOE_ROUTE_DESC_SIZE, LLMK_MOE_DEEPSEEK, 2, 1, 3, 1, 1.0f}, 1},
      {"topk_group > n_group", {LLMK_MOE_ROUTE_DESC_SIZE, LLMK_MOE_DEEPSEEK, 2, 1, 4, 5, 1.0f}, 1},
      {"too few experts in the kept groups", {LLMK_MOE_ROUTE_DESC_SIZE, LLMK_MOE_DEEPSEEK, 2, 1, 8, 1, 1.0f}, 1},
      {"no bias for DEEPSEEK", {LLMK_MOE_ROUTE_DESC_SIZE, LLMK_MOE_DEEPSEEK, 2, 1, 4, 2, 1.0f}, 0},
      {"a bias for SOFTMAX_TOPK", {LLMK_MOE_ROUTE_DESC_SIZE, LLMK_MOE_SOFTMAX_TOPK, 2, 1, 1, 1, 1.0f}, 1},
      {"bad router", {LLMK_MOE_ROUTE_DESC_SIZE, (llmk_moe_router)7, 2, 1, 1, 1, 1.0f}, 0},
      {"infinite scaling", {LLMK_MOE_ROUTE_DESC_SIZE, LLMK_MOE_SOFTMAX_TOPK, 2, 1, 1, 1, INFINITY}, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const llmk_status s = llmk_moe_route(cpu, &cases[i].d, &tl, cases[i].with_bias ? &tb : NULL, &ti, &tw, NULL);
    CHECK(s == LLMK_ERR_INVALID_ARGUMENT && strlen(llmk_last_error()) > 0, "route with %s: %s", cases[i].what,
          llmk_status_string(s));
  }
  llmk_moe_route_desc d = LLMK_MOE_ROUTE_DESC_INIT;
  d.k = 2;
  llmk_tensor ti_f = llmk_tensor_2d(ids, LLMK_F32, 8, 2, 2);
  CHECK(llmk_moe_route(cpu, &d, &tl, NULL, &ti_f, &tw, NULL) == LLMK_ERR_INVALID_ARGUMENT, "route: f32 ids accepted");
  llmk_tensor tw_alias = llmk_tensor_2d(ids, LLMK_F32, 8, 2, 2);
  CHECK(llmk_moe_route(cpu, &d, &tl, NULL, &ti, &tw_alias, NULL) == LLMK_ERR_INVALID_ARGUMENT,
        "route: weights overlapping ids accepted");
  /* permute */
  int32_t sizes[4], src[16];
  memset(sizes, 0x5C, sizeof sizes), memset(src, 0x5C, sizeof src);
  llmk_moe_permute_desc pd = LLMK_MOE_PERMUTE_DESC_INIT;
  llmk_tensor ts = llmk_tensor_1d(sizes, LLMK_I32, 4), tsrc = llmk_tensor_1d(src, LLMK_I32, 16);
  llmk_tensor tro = llmk_tensor_2d(w, LLMK_I32, 8, 2, 2);
  pd.layout = LLMK_GROUP_MASKED, pd.m_max = 0;
  CHECK(llmk_moe_permute(cpu, &pd, &ti, &ts, NULL, &tro, &tsrc, NULL) == LLMK_ERR_INVALID_ARGUMENT,
        "permute: masked with m_max 0 accepted");
  pd.layout = (llmk_group_layout)5;
  CHECK(llmk_moe_permute(cpu, &pd, &ti, &ts, NULL, &tro, &tsrc, NULL) == LLMK_ERR_INVALID_ARGUMENT,
        "permute: bad layout accepted");
  pd.layout = LLMK_GROUP_STACKED;
  llmk_tensor tsrc_short = llmk_tensor_1d(src, LLMK_I32, 15);
  CHECK(llmk_moe_permute(cpu, &pd, &ti, &ts, NULL, &tro, &tsrc_short, NULL) == LLMK_ERR_INVALID_ARGUMENT,
        "permute: src_of of 15 rows for 16 picks accepted");
  /* route + permute in one call: either op's checks, and outputs that overlap across the two */
  int32_t rows[16];
  memset(rows, 0x5C, sizeof rows);
  llmk_tensor trows = llmk_tensor_2d(rows, LLMK_I32, 8, 2, 2);
  d.k = 2;
  llmk_moe_route_desc dbad = d;
  dbad.k = 9;
  CHECK(llmk_moe_route_permute(cpu, &dbad, &pd, &tl, NULL, &ti, &tw, &ts, NULL, &trows, &tsrc, NULL) ==
            LLMK_ERR_INVALID_ARGUMENT,
        "route_permute: k > E accepted");
  CHECK(llmk_moe_route_permute(cpu, &d, &pd, &tl, NULL, &ti, &tw, &ts, NULL, &trows, &tsrc_short, NULL) ==
            LLMK_ERR_INVALID_ARGUMENT,
        "route_permute: src_of of 15 rows accepted");
  llmk_tensor tro_on_w = llmk_tensor_2d(w, LLMK_I32, 8, 2, 2);
  CHECK(llmk_moe_route_permute(cpu, &d, &pd, &tl, NULL, &ti, &tw, &ts, NULL, &tro_on_w, &tsrc, NULL) ==
            LLMK_ERR_INVALID_ARGUMENT,
        "route_permute: row_of overlapping weights accepted");
  llmk_tensor tsrc_on_l = llmk_tensor_1d(l, LLMK_I32, 16);
  CHECK(llmk_moe_route_permute(cpu, &d, &pd, &tl, NULL, &ti, &tw, &ts, NULL, &trows, &tsrc_on_l, NULL) ==
            LLMK_ERR_INVALID_ARGUMENT,
        "route_permute: src_of overlapping logits accepted");
  const float zero[64] = {0};
  wrote |= memcmp(l, zero, sizeof l) != 0;
  for (int i = 0; i < 16; i++) wrote |= rows[i] != 0x5C5C5C5C;
  /* gather and combine */
  uint16_t x[64] = {0};
  uint8_t q[256];
  memset(q, 0x5C, sizeof q);
  llmk_tensor tx = llmk_tensor_2d(x, LLMK_BF16, 4, 16, 16), tq = llmk_tensor_2d(q, LLMK_E4M3, 16, 16, 16);
  llmk_quantize_desc qd = LLMK_QUANTIZE_DESC_INIT;
  qd.scaling = LLMK_SCALING_ROW;
  CHECK(llmk_moe_gather_quant(cpu, &qd, &tx, &tsrc, 0, &tq, &ts, NULL) == LLMK_ERR_INVALID_ARGUMENT,
        "gather: k = 0 accepted");
  CHECK(llmk_moe_gather_quant(cpu, &qd, &tx, &tsrc, 2, &tq, NULL, NULL) == LLMK_ERR_INVALID_ARGUMENT,
        "gather: e4m3 xq without scales accepted");
  qd.scaling = LLMK_SCALING_TENSOR;
  llmk_tensor tsc16 = llmk_tensor_1d(w, LLMK_F32, 16);
  CHECK(llmk_moe_gather_quant(cpu, &qd, &tx, &tsrc, 2, &tq, &tsc16, NULL) == LLMK_ERR_INVALID_ARGUMENT,
        "gather: tensor scaling accepted");
  llmk_tensor ty = llmk_tensor_2d(x, LLMK_BF16, 4, 16, 16);
  llmk_tensor tr8 = llmk_tensor_2d(ids, LLMK_I32, 8, 2, 2);
  llmk_tensor to_bad = llmk_tensor_2d(q, LLMK_BF16, 8, 15, 15);
  CHECK(llmk_moe_combine(cpu, &ty, &tr8, &tw, NULL, &to_bad, NULL) == LLMK_ERR_INVALID_ARGUMENT,
        "combine: out of 15 columns for H 16 accepted");
  llmk_tensor to_over = llmk_tensor_2d(x, LLMK_BF16, 8, 4, 4);
  CHECK(llmk_moe_combine(cpu, &ty, &tr8, &tw, NULL, &to_over, NULL) == LLMK_ERR_INVALID_ARGUMENT,
        "combine: out overlapping y accepted");
  for (size_t i = 0; i < sizeof q; i++) wrote |= q[i] != 0x5C;
  for (int i = 0; i < 16; i++) wrote |= src[i] != 0x5C5C5C5C || ids[i] != 0x5C5C5C5C;
  for (int i = 0; i < 4; i++) wrote |= sizes[i] != 0x5C5C5C5C;
  CHECK(!wrote, "a refused call wrote to its outputs");
}

int main(void) {
  t_seed();
  if (llmk_create_cpu(&cpu) != LLMK_SUCCESS) return 2;
  static const t_part parts[] = {{"exp", exp_accuracy}, {"routing", routing},     {"permutation", permutation},
                                 {"gather", gather},    {"combine", combine},     {"bad arguments", bad_args}};
  t_run_parts(parts, sizeof parts / sizeof parts[0]);
  llmk_destroy(cpu);
  TEST_END();
}
