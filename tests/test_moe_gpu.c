/* The MoE ops on the GPU against the CPU reference, bit for bit, on fresh
 * random inputs: routing for every router over E in {8, 60, 128, 256,
 * 1024}, k in {1, 2, 8}, f32 and bf16 logits, with ties (logits drawn
 * from a few values) and NaN rows; the permutation in both layouts, below
 * and above one chunk of picks, with picks for other GPUs' experts and
 * ids out of range; gather + quantize with row and 1 x 128 scales and the
 * plain bf16 gather, aligned and not; the combine with and without an
 * addend (in place too) and odd H. Outputs start poisoned, so a row or
 * entry the op must not write is checked as well. Then a CUDA graph of
 * route + permute + gather + combine replayed with new logits written
 * between replays, and informational timings at 16 and 16384 tokens.
 * Routing runs every case on each routing kernel (LLMK_MOE_ROUTE: redux,
 * shuffle, lanes4; a kernel that does not take a shape leaves it to the
 * shuffle kernel). */
#include <math.h>
#include <stdlib.h>

#include "core/env.h"
#include "harness.h"
#include "llmk.h"

#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>

static llmk_handle cpu, gpu;

/* A host buffer and its device twin, both filled with `poison`. */
typedef struct twin {
  void *h, *d;
  size_t n;
} twin;

static twin twin_new(size_t n, int poison) {
  twin t = {t_xmalloc(n), NULL, n};
  memset(t.h, poison, n);
  T_CU(cudaMalloc(&t.d, n ? n : 16));
  T_CU(cudaMemset(t.d, poison, n ? n : 16));
  return t;
}
static twin twin_of(const void *src, size_t n) {
  twin t = twin_new(n, 0);
  memcpy(t.h, src, n);
  if (n) T_CU(cudaMemcpy(t.d, src, n, cudaMemcpyHostToDevice));
  return t;
}
static void twin_free(twin *t) {
  free(t->h);
  T_CU(cudaFree(t->d));
}
/* The device bytes equal the host's; the first difference is reported. */
static int twin_same(const twin *t, const char *what) {
  uint8_t *g = t_xmalloc(t->n);
  if (t->n) T_CU(cudaMemcpy(g, t->d, t->n, cudaMemcpyDeviceToHost));
  size_t i = 0;
  while (i < t->n && g[i] == ((uint8_t *)t->h)[i]) i++;
  CHECK(i == t->n, "%s: GPU differs from CPU at byte %zu of %zu (%02x vs %02x)", what, i, t->n,
        i < t->n ? g[i] : 0, i < t->n ? ((uint8_t *)t->h)[i] : 0);
  free(g);
  return i == t->n;
}

static float rand_logit(int ties) {
  return ties ? (float)(t_rand_u64() % 4) * 0.5f : 3.0f * t_rand_normal();
}

static const char *router_name(llmk_moe_router r) {
  static const char *const n[] = {"softmax_topk", "topk_softmax", "sigmoid_topk", "deepseek"};
  return n[r];
}

/* One routing case on both backends. */
static void route_case(llmk_moe_router router, int64_t T, int64_t E, int k, int bf16, int ties, int n_group,
                       int topk_group, int renorm) {
  const size_t es = bf16 ? 2 : 4;
  const int64_t ld = E + (t_rand_u64() % 2) * 8; /* a row pitch past E, sometimes */
  uint8_t *lg = t_xmalloc((size_t)(T * ld) * es);
  for (int64_t i = 0; i < T * ld; i++) {
    float v = rand_logit(ties);
    if (i / ld == 1 && i % ld == 3) v = NAN; /* one NaN in token 1 */
    if (bf16) ((uint16_t *)lg)[i] = llmk_float_to_bf16(v);
    else ((float *)lg)[i] = v;
  }
  float *bias = t_xmalloc((size_t)E * 4);
  for (int64_t e = 0; e < E; e++) bias[e] = ties ? (float)(e % 3) * 0.25f : 0.1f * t_rand_normal();
  twin L = twin_of(lg, (size_t)(T * ld) * es), B = twin_of(bias, (size_t)E * 4);
  twin I = twin_new((size_t)(T * k) * 4, 0x7B), W = twin_new((size_t)(T * k) * 4, 0x7B);
  llmk_moe_route_desc d = LLMK_MOE_ROUTE_DESC_INIT;
  d.router = router, d.k = k, d.renormalize = renorm, d.n_group = n_group, d.topk_group = topk_group;
  d.scaling = router == LLMK_MOE_DEEPSEEK ? 2.5f : 1.0f;
  const int ds = router == LLMK_MOE_DEEPSEEK;
  for (int side = 0; side < 2; side++) {
    llmk_tensor l = llmk_tensor_2d(side ? L.d : L.h, bf16 ? LLMK_BF16 : LLMK_F32, T, E, ld);
    llmk_tensor b = llmk_tensor_1d(side ? B.d : B.h, LLMK_F32, E);
    llmk_tensor ids = llmk_tensor_2d(side ? I.d : I.h, LLMK_I32, T, k, k);
    llmk_tensor w = llmk_tensor_2d(side ? W.d : W.h, LLMK_F32, T, k, k);
    const llmk_status s = llmk_moe_route(side ? gpu : cpu, &d, &l, ds ? &b : NULL, &ids, &w, NULL);
    CHECK(s == LLMK_SUCCESS, "route %s on %s: %s", router_name(router), side ? "GPU" : "CPU", llmk_last_error());
  }
  T_CU(cudaDeviceSynchronize());
  char what[160];
  snprintf(what, sizeof what, "route %s T %lld E %lld k %d %s%s ngroup %d/%d renorm %d", router_name(router),
           (long long)T, (long long)E, k, bf16 ? "bf16" : "f32", ties ? " ties" : "", topk_group, n_group, renorm);
  if (twin_same(&I, what)) twin_same(&W, what);
  twin_free(&L), twin_free(&B), twin_free(&I), twin_free(&W);
  free(lg), free(bias);
}

/* LLMK_MOE_ROUTE: the routing kernel forced (NULL: the rule's) */
static void route_kernel(const char *v) {
  if (v) setenv("LLMK_MOE_ROUTE", v, 1);
  else unsetenv("LLMK_MOE_ROUTE");
  llmk_env_refresh();
}

static void route_sweep_once(void) {
  static const int64_t Es[] = {8, 60, 128, 256, 1024};
  static const int ks[] = {1, 2, 8};
  for (int r = 0; r < 4; r++)
    for (int ei = 0; ei < 5; ei++)
      for (int ki = 0; ki < 3; ki++) {
        const int64_t E = Es[ei];
        const int k = ks[ki];
        if (k > E) continue;
        int ng = 1, tg = 1;
        if (r == LLMK_MOE_DEEPSEEK) {
          ng = E % 8 == 0 ? 8 : E % 4 == 0 ? 4 : 1;
          tg = ng > 1 ? ng / 2 : 1;
          if ((int64_t)tg * (E / ng) < k) tg = ng;
        }
        const int64_t T = (ei + ki) % 2 ? 37 : 300;
        route_case((llmk_moe_router)r, T, E, k, (ei + ki + r) % 2, 0, ng, tg, ki % 2);
        route_case((llmk_moe_router)r, T, E, k, (ei + r) % 2, 1, ng, tg, 1 - ki % 2);
      }
  /* DeepSeek-V3's own: 256 experts, 8 groups, 4 kept, k 8, 16384 tokens */
  route_case(LLMK_MOE_DEEPSEEK, 16384, 256, 8, 0, 0, 8, 4, 1);
  route_case(LLMK_MOE_DEEPSEEK, 4, 256, 8, 1, 1, 256, 16, 1); /* one expert a group */
  route_case(LLMK_MOE_DEEPSEEK, 77, 512, 8, 1, 0, 8, 3, 1);   /* groups of two registers */
  route_case(LLMK_MOE_DEEPSEEK, 77, 64, 6, 0, 1, 64, 6, 1);   /* 64 groups of one */
  route_case(LLMK_MOE_DEEPSEEK, 77, 96, 4, 0, 1, 12, 2, 0);   /* groups of 8, E not a multiple of 32 */
}

/* every case on every routing kernel */
static void route_sweep(void) {
  static const char *const kernels[] = {"redux", "shuffle", "lanes4"};
  for (int i = 0; i < 3; i++) {
    route_kernel(kernels[i]);
    route_sweep_once();
  }
  route_kernel(NULL);
}

/* Random ids: some local (expert_begin .. + G), some elsewhere, a few out of range. */
static int32_t *rand_ids(int64_t picks, int64_t E, int skew) {
  int32_t *ids = t_xmalloc((size_t)(picks > 0 ? picks : 1) * 4);
  for (int64_t i = 0; i < picks; i++) {
    const uint64_t r = t_rand_u64();
    ids[i] = skew && (r & 1) ? (int32_t)((r >> 8) % 3) : (int32_t)((r >> 8) % (uint64_t)E);
    if (r % 97 == 0) ids[i] = (r >> 20) & 1 ? -5 : (int32_t)E + 7;
  }
  return ids;
}

static void permute_case(int64_t T, int k, int64_t E, int64_t G, int64_t begin, llmk_group_layout layout,
                         int64_t m_max, int skew) {
  const int64_t picks = T * k, R = layout == LLMK_GROUP_STACKED ? picks : G * m_max;
  int32_t *ids = rand_ids(picks, E, skew);
  twin I = twin_of(ids, (size_t)picks * 4);
  twin S = twin_new((size_t)G * 4, 0x7B), O = twin_new((size_t)(G + 1) * 4, 0x7B);
  twin RO = twin_new((size_t)picks * 4, 0x7B), SO = twin_new((size_t)R * 4, 0x7B);
  llmk_moe_permute_desc d = LLMK_MOE_PERMUTE_DESC_INIT;
  d.layout = layout, d.expert_begin = begin, d.m_max = m_max;
  for (int side = 0; side < 2; side++) {
    llmk_tensor ti = llmk_tensor_2d(side ? I.d : I.h, LLMK_I32, T, k, k);
    llmk_tensor ts = llmk_tensor_1d(side ? S.d : S.h, LLMK_I32, G);
    llmk_tensor to = llmk_tensor_1d(side ? O.d : O.h, LLMK_I32, G + 1);
    llmk_tensor tr = llmk_tensor_2d(side ? RO.d : RO.h, LLMK_I32, T, k, k);
    llmk_tensor tsrc = llmk_tensor_1d(side ? SO.d : SO.h, LLMK_I32, R);
    const llmk_status s = llmk_moe_permute(side ? gpu : cpu, &d, &ti, &ts, &to, &tr, &tsrc, NULL);
    CHECK(s == LLMK_SUCCESS, "permute on %s: %s", side ? "GPU" : "CPU", llmk_last_error());
  }
  T_CU(cudaDeviceSynchronize());
  char what[160];
  snprintf(what, sizeof what, "permute T %lld k %d E %lld G %lld begin %lld %s m_max %lld%s", (long long)T, k,
           (long long)E, (long long)G, (long long)begin, layout ? "masked" : "stacked", (long long)m_max,
           skew ? " skewed" : "");
  twin_same(&S, what), twin_same(&O, what), twin_same(&RO, what), twin_same(&SO, what);
  twin_free(&I), twin_free(&S), twin_free(&O), twin_free(&RO), twin_free(&SO);
  free(ids);
}

static void permute_sweep(void) {
  /* one chunk (4096 picks) and several; DeepSeek-V3's share (32 of 256 from 64) */
  permute_case(1, 8, 256, 32, 64, LLMK_GROUP_STACKED, 0, 0);
  permute_case(16, 8, 256, 32, 64, LLMK_GROUP_STACKED, 0, 0);
  permute_case(512, 8, 256, 256, 0, LLMK_GROUP_STACKED, 0, 0);
  permute_case(513, 8, 256, 256, 0, LLMK_GROUP_STACKED, 0, 1);
  permute_case(16384, 8, 256, 32, 224, LLMK_GROUP_STACKED, 0, 0);
  permute_case(16384, 8, 256, 256, 0, LLMK_GROUP_STACKED, 0, 1);
  permute_case(4096, 1, 16, 16, 0, LLMK_GROUP_STACKED, 0, 1);
  permute_case(3000, 2, 8, 8, 0, LLMK_GROUP_STACKED, 0, 0);
  permute_case(777, 4, 1024, 1024, 0, LLMK_GROUP_STACKED, 0, 0);
  permute_case(20000, 3, 1000, 1000, 0, LLMK_GROUP_STACKED, 0, 0);
  permute_case(0, 8, 256, 32, 0, LLMK_GROUP_STACKED, 0, 0);
  permute_case(128, 8, 256, 32, 0, LLMK_GROUP_MASKED, 128, 0);
  permute_case(128, 8, 64, 64, 0, LLMK_GROUP_MASKED, 4, 1); /* drops past m_max */
  permute_case(9000, 2, 8, 8, 0, LLMK_GROUP_MASKED, 2000, 1);
  permute_case(0, 2, 8, 8, 0, LLMK_GROUP_MASKED, 3, 0);
  permute_case(100, 10, 1024, 1024, 0, LLMK_GROUP_STACKED, 0, 1); /* few picks, every group local */
  permute_case(16, 8, 256, 32, 0, LLMK_GROUP_MASKED, 1024, 0);   /* few picks, rows past the few kernel's */
}

/* llmk_moe_route_permute on the GPU against llmk_moe_route then
 * llmk_moe_permute on the CPU: every output bit for bit. */
static void route_permute_case(llmk_moe_router router, int64_t T, int64_t E, int k, int n_group, int topk_group,
                               int64_t G, int64_t begin, llmk_group_layout layout, int64_t m_max) {
  const int64_t picks = T * k, R = layout == LLMK_GROUP_STACKED ? picks : G * m_max;
  float *lg = t_xmalloc((size_t)(T * E + 1) * 4), *bias = t_xmalloc((size_t)E * 4);
  for (int64_t i = 0; i < T * E; i++) lg[i] = rand_logit((i / E) % 5 == 4);
  for (int64_t e = 0; e < E; e++) bias[e] = 0.1f * t_rand_normal();
  twin L = twin_of(lg, (size_t)(T * E + 1) * 4), B = twin_of(bias, (size_t)E * 4);
  twin I = twin_new((size_t)picks * 4 + 4, 0x7B), W = twin_new((size_t)picks * 4 + 4, 0x7B);
  twin S = twin_new((size_t)G * 4, 0x7B), O = twin_new((size_t)(G + 1) * 4, 0x7B);
  twin RO = twin_new((size_t)picks * 4 + 4, 0x7B), SO = twin_new((size_t)R * 4 + 4, 0x7B);
  llmk_moe_route_desc rd = LLMK_MOE_ROUTE_DESC_INIT;
  rd.router = router, rd.k = k, rd.renormalize = 1, rd.n_group = n_group, rd.topk_group = topk_group;
  const int ds = router == LLMK_MOE_DEEPSEEK;
  llmk_moe_permute_desc pd = LLMK_MOE_PERMUTE_DESC_INIT;
  pd.layout = layout, pd.expert_begin = begin, pd.m_max = m_max;
  for (int side = 0; side < 2; side++) {
    llmk_tensor tl = llmk_tensor_2d(side ? L.d : L.h, LLMK_F32, T, E, E);
    llmk_tensor tb = llmk_tensor_1d(side ? B.d : B.h, LLMK_F32, E);
    llmk_tensor ti = llmk_tensor_2d(side ? I.d : I.h, LLMK_I32, T, k, k);
    llmk_tensor tw = llmk_tensor_2d(side ? W.d : W.h, LLMK_F32, T, k, k);
    llmk_tensor ts = llmk_tensor_1d(side ? S.d : S.h, LLMK_I32, G);
    llmk_tensor to = llmk_tensor_1d(side ? O.d : O.h, LLMK_I32, G + 1);
    llmk_tensor tr = llmk_tensor_2d(side ? RO.d : RO.h, LLMK_I32, T, k, k);
    llmk_tensor tsrc = llmk_tensor_1d(side ? SO.d : SO.h, LLMK_I32, R);
    llmk_status s;
    if (side) {
      s = llmk_moe_route_permute(gpu, &rd, &pd, &tl, ds ? &tb : NULL, &ti, &tw, &ts, &to, &tr, &tsrc, NULL);
    } else {
      s = T > 0 ? llmk_moe_route(cpu, &rd, &tl, ds ? &tb : NULL, &ti, &tw, NULL) : LLMK_SUCCESS;
      if (!s) s = llmk_moe_permute(cpu, &pd, &ti, &ts, &to, &tr, &tsrc, NULL);
    }
    CHECK(s == LLMK_SUCCESS, "route_permute on %s: %s", side ? "GPU" : "CPU", llmk_last_error());
  }
  T_CU(cudaDeviceSynchronize());
  char what[160];
  snprintf(what, sizeof what, "route_permute %s T %lld E %lld k %d G %lld begin %lld %s", router_name(router),
           (long long)T, (long long)E, k, (long long)G, (long long)begin, layout ? "masked" : "stacked");
  twin *all[] = {&I, &W, &S, &O, &RO, &SO};
  for (int i = 0; i < 6; i++) twin_same(all[i], what);
  twin *mine[] = {&L, &B, &I, &W, &S, &O, &RO, &SO};
  for (int i = 0; i < 8; i++) twin_free(mine[i]);
  free(lg), free(bias);
}

static void route_permute_sweep(void) {
  /* one launch: decode batches of DeepSeek-V3's share, Scout, Mixtral; then two launches */
  route_permute_case(LLMK_MOE_DEEPSEEK, 16, 256, 8, 8, 4, 32, 64, LLMK_GROUP_STACKED, 0);
  route_permute_case(LLMK_MOE_DEEPSEEK, 1, 256, 8, 8, 4, 256, 0, LLMK_GROUP_STACKED, 0);
  route_permute_case(LLMK_MOE_DEEPSEEK, 64, 256, 8, 8, 4, 32, 224, LLMK_GROUP_MASKED, 64);
  route_permute_case(LLMK_MOE_SIGMOID_TOPK, 33, 16, 1, 1, 1, 16, 0, LLMK_GROUP_STACKED, 0);
  route_permute_case(LLMK_MOE_SOFTMAX_TOPK, 64, 8, 2, 1, 1, 8, 0, LLMK_GROUP_MASKED, 20);
  route_permute_case(LLMK_MOE_TOPK_SOFTMAX, 20, 128, 4, 1, 1, 64, 32, LLMK_GROUP_STACKED, 0);
  route_permute_case(LLMK_MOE_DEEPSEEK, 0, 256, 8, 8, 4, 32, 0, LLMK_GROUP_STACKED, 0);
  route_permute_case(LLMK_MOE_DEEPSEEK, 65, 256, 8, 8, 4, 32, 0, LLMK_GROUP_STACKED, 0);     /* two launches */
  route_permute_case(LLMK_MOE_SOFTMAX_TOPK, 40, 512, 8, 1, 1, 512, 0, LLMK_GROUP_STACKED, 0); /* E > 256 */
  route_permute_case(LLMK_MOE_DEEPSEEK, 16384, 256, 8, 8, 4, 32, 32, LLMK_GROUP_STACKED, 0);
}

/* Gather + quantize: scaling 0 bf16 (plain gather), 1 row, 2 1 x 128 blocks. */
static void gather_case(int64_t T, int k, int64_t H, int kind, int misalign, int with_ub) {
  const int64_t picks = T * k, R = picks + 5, ldx = H + (misalign ? 3 : 0), ldq = H + (misalign ? 1 : 0);
  uint16_t *x = t_xmalloc((size_t)(T * ldx + 1) * 2);
  for (int64_t i = 0; i < T * ldx + 1; i++) {
    float v = t_rand_normal() * (i % 7 == 0 ? 100.0f : 1.0f);
    if (i % 1009 == 5) v = (i & 1) ? NAN : INFINITY;
    x[i] = llmk_float_to_bf16(v);
  }
  int32_t *src = t_xmalloc((size_t)R * 4);
  for (int64_t r = 0; r < R; r++) {
    const uint64_t u = t_rand_u64();
    src[r] = u % 5 == 0 ? -1 : u % 11 == 0 ? (int32_t)(picks + 3) : (int32_t)((u >> 8) % (uint64_t)(picks ? picks : 1));
  }
  const int64_t nseg = kind == 2 ? (H + 127) / 128 : 1;
  const float ub = 50.0f;
  const size_t qes = kind ? 1 : 2;
  twin X = twin_of(x, (size_t)(T * ldx + 1) * 2), S = twin_of(src, (size_t)R * 4), U = twin_of(&ub, 4);
  twin Q = twin_new((size_t)(R * ldq) * qes + 1, 0x5C), SC = twin_new((size_t)(R * nseg) * 4, 0x5C);
  llmk_quantize_desc d = LLMK_QUANTIZE_DESC_INIT;
  d.scaling = kind == 2 ? LLMK_SCALING_BLOCK : LLMK_SCALING_ROW, d.block_m = 1, d.block_k = 128;
  for (int side = 0; side < 2; side++) {
    d.scale_ub = with_ub ? (const float *)(side ? U.d : U.h) : NULL;
    llmk_tensor tx = llmk_tensor_2d((uint16_t *)(side ? X.d : X.h) + misalign, LLMK_BF16, T, H, ldx);
    llmk_tensor ts = llmk_tensor_1d(side ? S.d : S.h, LLMK_I32, R);
    llmk_tensor tq = llmk_tensor_2d((char *)(side ? Q.d : Q.h) + misalign * qes, kind ? LLMK_E4M3 : LLMK_BF16, R, H,
                                    ldq);
    llmk_tensor tsc = kind == 2 ? llmk_tensor_2d(side ? SC.d : SC.h, LLMK_F32, R, nseg, nseg)
                                : llmk_tensor_1d(side ? SC.d : SC.h, LLMK_F32, R);
    const llmk_status s = llmk_moe_gather_quant(side ? gpu : cpu, kind ? &d : NULL, &tx, &ts, k, &tq,
                                                kind ? &tsc : NULL, NULL);
    CHECK(s == LLMK_SUCCESS, "gather on %s: %s", side ? "GPU" : "CPU", llmk_last_error());
  }
  T_CU(cudaDeviceSynchronize());
  char what[160];
  snprintf(what, sizeof what, "gather T %lld k %d H %lld %s%s%s", (long long)T, k, (long long)H,
           kind == 0 ? "bf16" : kind == 1 ? "row" : "1x128", misalign ? " misaligned" : "", with_ub ? " ub" : "");
  twin_same(&Q, what), twin_same(&SC, what);
  twin_free(&X), twin_free(&S), twin_free(&U), twin_free(&Q), twin_free(&SC);
  free(x), free(src);
}

static void gather_sweep(void) {
  static const int64_t Hs[] = {7168, 5120, 2048, 100, 8};
  for (int hi = 0; hi < 5; hi++)
    for (int kind = 0; kind < 3; kind++) {
      gather_case(64, 8, Hs[hi], kind, 0, kind == 1 && hi == 0);
      gather_case(33, 2, Hs[hi], kind, 1, 0);
    }
  gather_case(1, 1, 7168, 2, 0, 1);
}

static void combine_case(int64_t T, int k, int64_t H, int add_kind, int misalign) {
  const int64_t R = T * k + 3, ld = H + (misalign ? 1 : 0);
  uint16_t *y = t_xmalloc((size_t)(R * ld + 1) * 2), *a = t_xmalloc((size_t)(T * ld + 1) * 2);
  for (int64_t i = 0; i < R * ld + 1; i++) y[i] = llmk_float_to_bf16(t_rand_normal());
  for (int64_t i = 0; i < T * ld + 1; i++) a[i] = llmk_float_to_bf16(i % 4099 == 7 ? NAN : t_rand_normal());
  int32_t *rows = t_xmalloc((size_t)(T * k + 1) * 4);
  float *w = t_xmalloc((size_t)(T * k + 1) * 4);
  for (int64_t i = 0; i < T * k; i++) {
    const uint64_t u = t_rand_u64();
    rows[i] = u % 13 == 0 ? -1 : u % 29 == 0 ? (int32_t)(R + 2) : (int32_t)((u >> 8) % (uint64_t)R);
    w[i] = (float)t_rand_uniform();
  }
  twin Y = twin_of(y, (size_t)(R * ld + 1) * 2), RO = twin_of(rows, (size_t)(T * k) * 4);
  twin W = twin_of(w, (size_t)(T * k) * 4), A = twin_of(a, (size_t)(T * ld + 1) * 2);
  twin O = twin_new((size_t)(T * ld + 1) * 2, 0x5C);
  for (int side = 0; side < 2; side++) {
    llmk_tensor ty = llmk_tensor_2d((uint16_t *)(side ? Y.d : Y.h) + misalign, LLMK_BF16, R, H, ld);
    llmk_tensor tr = llmk_tensor_2d(side ? RO.d : RO.h, LLMK_I32, T, k, k);
    llmk_tensor tw = llmk_tensor_2d(side ? W.d : W.h, LLMK_F32, T, k, k);
    llmk_tensor ta = llmk_tensor_2d((uint16_t *)(side ? A.d : A.h) + misalign, LLMK_BF16, T, H, ld);
    llmk_tensor to = add_kind == 2 ? ta : llmk_tensor_2d((uint16_t *)(side ? O.d : O.h) + misalign, LLMK_BF16, T, H, ld);
    const llmk_status s = llmk_moe_combine(side ? gpu : cpu, &ty, &tr, &tw, add_kind ? &ta : NULL, &to, NULL);
    CHECK(s == LLMK_SUCCESS, "combine on %s: %s", side ? "GPU" : "CPU", llmk_last_error());
  }
  T_CU(cudaDeviceSynchronize());
  char what[160];
  snprintf(what, sizeof what, "combine T %lld k %d H %lld add %s%s", (long long)T, k, (long long)H,
           add_kind == 0 ? "none" : add_kind == 1 ? "separate" : "in place", misalign ? " misaligned" : "");
  twin_same(add_kind == 2 ? &A : &O, what);
  twin_free(&Y), twin_free(&RO), twin_free(&W), twin_free(&A), twin_free(&O);
  free(y), free(a), free(rows), free(w);
}

static void combine_sweep(void) {
  static const int64_t Hs[] = {7168, 5120, 1000, 8, 13};
  static const int ks[] = {1, 2, 8};
  for (int hi = 0; hi < 5; hi++)
    for (int ki = 0; ki < 3; ki++)
      for (int add = 0; add < 3; add++) combine_case(hi < 3 ? 40 : 7, ks[ki], Hs[hi], add, (hi + add) % 2 && Hs[hi] > 8);
}

/* route -> permute -> gather -> combine captured once, replayed with new
 * logits written between replays; each replay against the CPU. */
static void graph_replay(void) {
  const int64_t T = 300, E = 64, k = 4, G = 32, H = 256, R = T * k;
  llmk_moe_route_desc rd = LLMK_MOE_ROUTE_DESC_INIT;
  rd.router = LLMK_MOE_SOFTMAX_TOPK, rd.k = (int)k, rd.renormalize = 1;
  llmk_moe_permute_desc pd = LLMK_MOE_PERMUTE_DESC_INIT;
  pd.expert_begin = 16;
  llmk_quantize_desc qd = LLMK_QUANTIZE_DESC_INIT;
  qd.scaling = LLMK_SCALING_ROW;
  float *lg = t_xmalloc((size_t)(T * E) * 4);
  uint16_t *x = t_xmalloc((size_t)(T * H) * 2);
  for (int64_t i = 0; i < T * H; i++) x[i] = llmk_float_to_bf16(t_rand_normal());
  twin L = twin_new((size_t)(T * E) * 4, 0), X = twin_of(x, (size_t)(T * H) * 2);
  twin I = twin_new((size_t)(T * k) * 4, 0), W = twin_new((size_t)(T * k) * 4, 0);
  twin S = twin_new((size_t)G * 4, 0), RO = twin_new((size_t)(T * k) * 4, 0), SO = twin_new((size_t)R * 4, 0);
  twin Q = twin_new((size_t)(R * H), 0), SC = twin_new((size_t)R * 4, 0);
  twin Yb = twin_new((size_t)(R * H) * 2, 0), O = twin_new((size_t)(T * H) * 2, 0);
  uint16_t *yb = t_xmalloc((size_t)(R * H) * 2);
  for (int64_t i = 0; i < R * H; i++) yb[i] = llmk_float_to_bf16(t_rand_normal());
  memcpy(Yb.h, yb, (size_t)(R * H) * 2);
  T_CU(cudaMemcpy(Yb.d, yb, (size_t)(R * H) * 2, cudaMemcpyHostToDevice));
  cudaStream_t st;
  T_CU(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  cudaGraph_t graph = NULL;
  cudaGraphExec_t exec = NULL;
  for (int rep = 0; rep < 4; rep++) {
    for (int64_t i = 0; i < T * E; i++) lg[i] = rand_logit(rep == 2);
    memcpy(L.h, lg, (size_t)(T * E) * 4);
    T_CU(cudaMemcpyAsync(L.d, lg, (size_t)(T * E) * 4, cudaMemcpyHostToDevice, st));
    for (int side = 0; side < 2; side++) {
      if (side == 1 && exec) break;
      llmk_handle h = side ? gpu : cpu;
      void *stream = side ? (void *)st : NULL;
      if (side) T_CU(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
      llmk_tensor tl = llmk_tensor_2d(side ? L.d : L.h, LLMK_F32, T, E, E);
      llmk_tensor ti = llmk_tensor_2d(side ? I.d : I.h, LLMK_I32, T, k, k);
      llmk_tensor tw = llmk_tensor_2d(side ? W.d : W.h, LLMK_F32, T, k, k);
      llmk_tensor ts = llmk_tensor_1d(side ? S.d : S.h, LLMK_I32, G);
      llmk_tensor tr = llmk_tensor_2d(side ? RO.d : RO.h, LLMK_I32, T, k, k);
      llmk_tensor tso = llmk_tensor_1d(side ? SO.d : SO.h, LLMK_I32, R);
      llmk_tensor tx = llmk_tensor_2d(side ? X.d : X.h, LLMK_BF16, T, H, H);
      llmk_tensor tq = llmk_tensor_2d(side ? Q.d : Q.h, LLMK_E4M3, R, H, H);
      llmk_tensor tsc = llmk_tensor_1d(side ? SC.d : SC.h, LLMK_F32, R);
      llmk_tensor ty = llmk_tensor_2d(side ? Yb.d : Yb.h, LLMK_BF16, R, H, H);
      llmk_tensor to = llmk_tensor_2d(side ? O.d : O.h, LLMK_BF16, T, H, H);
      int ok = llmk_moe_route(h, &rd, &tl, NULL, &ti, &tw, stream) == LLMK_SUCCESS;
      ok = ok && llmk_moe_permute(h, &pd, &ti, &ts, NULL, &tr, &tso, stream) == LLMK_SUCCESS;
      ok = ok && llmk_moe_gather_quant(h, &qd, &tx, &tso, (int32_t)k, &tq, &tsc, stream) == LLMK_SUCCESS;
      ok = ok && llmk_moe_combine(h, &ty, &tr, &tw, NULL, &to, stream) == LLMK_SUCCESS;
      CHECK(ok, "graph replay's calls on %s: %s", side ? "GPU" : "CPU", llmk_last_error());
      if (side) {
        T_CU(cudaStreamEndCapture(st, &graph));
        T_CU(cudaGraphInstantiate(&exec, graph, 0));
      }
    }
    T_CU(cudaGraphLaunch(exec, st));
    T_CU(cudaStreamSynchronize(st));
    char what[64];
    snprintf(what, sizeof what, "graph replay %d", rep);
    twin_same(&I, what), twin_same(&W, what), twin_same(&S, what), twin_same(&SO, what);
    twin_same(&Q, what), twin_same(&SC, what), twin_same(&O, what);
  }
  T_CU(cudaGraphExecDestroy(exec));
  T_CU(cudaGraphDestroy(graph));
  T_CU(cudaStreamDestroy(st));
  twin *all[] = {&L, &X, &I, &W, &S, &RO, &SO, &Q, &SC, &Yb, &O};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) twin_free(all[i]);
  free(lg), free(x), free(yb);
}

/* Informational: microseconds per call at DeepSeek-V3's shape (16384 and
 * 16 tokens, E = 256, k = 8, 32 local experts, H = 7168), under a graph of
 * 20 calls; and the bandwidth of the gather and the combine on the bytes
 * they must move, against a device-to-device copy. */
static void timings(void) {
  static const int64_t Ts[] = {16, 16384};
  const int64_t E = 256, k = 8, G = 256, H = 7168; /* every expert local: every row filled */
  cudaStream_t st;
  T_CU(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  cudaEvent_t e0, e1;
  T_CU(cudaEventCreate(&e0));
  T_CU(cudaEventCreate(&e1));
  for (int ti = 0; ti < 2; ti++) {
    const int64_t T = Ts[ti], R = T * k;
    float *lg = t_xmalloc((size_t)(T * E) * 4), bias[256];
    for (int64_t i = 0; i < T * E; i++) lg[i] = t_rand_normal();
    for (int e = 0; e < 256; e++) bias[e] = 0.1f * t_rand_normal();
    void *L = t_to_dev(lg, (size_t)(T * E) * 4), *B = t_to_dev(bias, sizeof bias), *I, *W, *S, *RO, *SO, *X, *Q, *SC,
         *Y, *O;
    T_CU(cudaMalloc(&I, (size_t)R * 4)); T_CU(cudaMalloc(&W, (size_t)R * 4)); T_CU(cudaMalloc(&S, (size_t)G * 4));
    T_CU(cudaMalloc(&RO, (size_t)R * 4)); T_CU(cudaMalloc(&SO, (size_t)R * 4));
    T_CU(cudaMalloc(&X, (size_t)(T * H) * 2)); T_CU(cudaMalloc(&Q, (size_t)(R * H))); T_CU(cudaMalloc(&SC, (size_t)(R * (H / 128)) * 4));
    T_CU(cudaMalloc(&Y, (size_t)(R * H) * 2)); T_CU(cudaMalloc(&O, (size_t)(T * H) * 2));
    T_CU(cudaMemset(X, 0x3C, (size_t)(T * H) * 2)); T_CU(cudaMemset(Y, 0x3C, (size_t)(R * H) * 2));
    llmk_moe_route_desc rd = LLMK_MOE_ROUTE_DESC_INIT;
    rd.router = LLMK_MOE_DEEPSEEK, rd.k = (int)k, rd.renormalize = 1, rd.n_group = 8, rd.topk_group = 4;
    rd.scaling = 2.5f;
    llmk_moe_permute_desc pd = LLMK_MOE_PERMUTE_DESC_INIT;
    pd.expert_begin = 0;
    llmk_quantize_desc qd = LLMK_QUANTIZE_DESC_INIT;
    qd.scaling = LLMK_SCALING_BLOCK, qd.block_m = 1, qd.block_k = 128;
    llmk_tensor tl = llmk_tensor_2d(L, LLMK_F32, T, E, E), tb = llmk_tensor_1d(B, LLMK_F32, E);
    llmk_tensor ti = llmk_tensor_2d(I, LLMK_I32, T, k, k), tw = llmk_tensor_2d(W, LLMK_F32, T, k, k);
    llmk_tensor ts = llmk_tensor_1d(S, LLMK_I32, G), tr = llmk_tensor_2d(RO, LLMK_I32, T, k, k);
    llmk_tensor tso = llmk_tensor_1d(SO, LLMK_I32, R), tx = llmk_tensor_2d(X, LLMK_BF16, T, H, H);
    llmk_tensor tq = llmk_tensor_2d(Q, LLMK_E4M3, R, H, H), tsc = llmk_tensor_2d(SC, LLMK_F32, R, H / 128, H / 128);
    llmk_tensor ty = llmk_tensor_2d(Y, LLMK_BF16, R, H, H), to = llmk_tensor_2d(O, LLMK_BF16, T, H, H);
    for (int op = 0; op < 8; op++) {
      route_kernel(op == 5 ? "lanes4" : op == 6 ? "shuffle" : NULL);
      cudaGraph_t g;
      cudaGraphExec_t ex;
      T_CU(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
      for (int rep = 0; rep < 20; rep++) {
        if (op == 7) {
          llmk_moe_route_permute(gpu, &rd, &pd, &tl, &tb, &ti, &tw, &ts, NULL, &tr, &tso, st);
        } else if (op == 0 || op >= 5) {
          llmk_moe_route(gpu, &rd, &tl, &tb, &ti, &tw, st);
        } else if (op == 1) {
          llmk_moe_permute(gpu, &pd, &ti, &ts, NULL, &tr, &tso, st);
        } else if (op == 2) {
          llmk_moe_gather_quant(gpu, &qd, &tx, &tso, (int32_t)k, &tq, &tsc, st);
        } else if (op == 3) {
          llmk_moe_combine(gpu, &ty, &tr, &tw, NULL, &to, st);
        } else {
          T_CU(cudaMemcpyAsync(Y, Q, (size_t)(R * H), cudaMemcpyDeviceToDevice, st));
        }
      }
      T_CU(cudaStreamEndCapture(st, &g));
      T_CU(cudaGraphInstantiate(&ex, g, 0));
      T_CU(cudaGraphLaunch(ex, st));
      T_CU(cudaEventRecord(e0, st));
      T_CU(cudaGraphLaunch(ex, st));
      T_CU(cudaEventRecord(e1, st));
      T_CU(cudaStreamSynchronize(st));
      float ms = 0;
      T_CU(cudaEventElapsedTime(&ms, e0, e1));
      const double us = 1000.0 * ms / 20;
      static const char *const names[] = {"route", "permute", "gather+quant", "combine", "copy", "route (lanes4)",
                                                  "route (shuffle)", "route+permute (one call)"};
      /* bytes that must move: gather reads R bf16 rows and writes R fp8
       * rows; combine reads R bf16 rows and writes T; the copy R fp8 rows */
      const double bytes = op == 2 ? 3.0 * (double)(R * H) : op == 3 ? 2.0 * (double)((R + T) * H)
                         : op == 4 ? 2.0 * (double)(R * H) : 0.0;
      printf("timing T %lld %s: %.1f us", (long long)T, names[op], us);
      if (bytes > 0) printf(", %.0f GB/s", bytes / us * 1e-3);
      printf("\n");
      T_CU(cudaGraphExecDestroy(ex));
      T_CU(cudaGraphDestroy(g));
    }
    route_kernel(NULL);
    void *bufs[] = {L, B, I, W, S, RO, SO, X, Q, SC, Y, O};
    for (int i = 0; i < 12; i++) T_CU(cudaFree(bufs[i]));
    free(lg);
  }
  T_CU(cudaEventDestroy(e0));
  T_CU(cudaEventDestroy(e1));
  T_CU(cudaStreamDestroy(st));
}
#endif

int main(void) {
  t_seed();
#ifdef LLMK_WITH_CUDA
  if (llmk_create_cpu(&cpu) != LLMK_SUCCESS) return 2;
  if (t_hopper_handle("the MoE ops on the GPU", &gpu)) {
    static const t_part parts[] = {{"route", route_sweep},     {"permute", permute_sweep}, {"route_permute", route_permute_sweep},
                                   {"gather", gather_sweep},
                                   {"combine", combine_sweep}, {"graph", graph_replay},    {"timings", timings}};
    t_run_parts(parts, sizeof parts / sizeof parts[0]);
    llmk_destroy(gpu);
  }
  llmk_destroy(cpu);
#else
  SKIP("built without CUDA: the MoE ops on the GPU");
#endif
  TEST_END();
}
