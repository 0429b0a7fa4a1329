/*
 * The GEMM cost model (src/cuda/gemm_model.h), host code only:
 *  - waves of resident clusters: a K split whose clusters do not all fit at
 *    once pays a second wave (2304 x 16384 at M = 16 on 128-row swapped
 *    tiles split 7 ways: 18 clusters, 16 resident on an H100);
 *  - a cluster size the device cannot hold is never predicted to run;
 *  - more K costs more, and no prediction beats the DRAM floor;
 *  - the candidates are the ones `llmk tune gemm` measures (dtype,
 *    promotion, swap width, split limits), and llmk_gemm_model_top returns
 *    them fastest first, its first being llmk_gemm_model_best's;
 *  - the dispatcher routes an untabulated shape to the model's choice;
 *  - the per-device memory of shapes: a model choice is found again, a
 *    tuning winner replaces it and is never displaced by a model choice,
 *    and other devices and kinds do not see it.
 */
#include <string.h>

#include "core/gemm.h"
#include "cuda/gemm_model.h"
#include "cuda/gemm_neighbours.h"
#include "cuda/gemm_own.h"
#include "cuda/gemm_tuned.h"
#include "cuda/heuristics.h"
#include "harness.h"

#ifdef LLMK_WITH_CUDA
static int cfg_named(const char *name) {
  for (int i = 0; i < LLMK_GEMM_NUM_CFGS; i++)
    if (!strcmp(llmk_gemm_cfgs[i].name, name)) return i;
  return -1;
}

static void waves(void) {
  /* a CTA streaming at its share of DRAM (~25 GB/s with 126 CTAs), so the waves show */
  llmk_gemm_model_params m = *llmk_gemm_model_fitted();
  m.fam[LLMK_FAM_SWAP].sm_gbps = 25.0;
  const llmk_gemm_model_params *mp = &m;
  const llmk_gemm_own_cfg *g = &llmk_gemm_cfgs[cfg_named("swap_128x16_s11")];
  llmk_gemm_device d = *llmk_gemm_device_h100(), roomy = d;
  roomy.clusters[7] = 18; /* all 18 clusters of 7 resident */
  const double two = llmk_gemm_model_own_us(mp, g, 7, 16, 2304, 16384, &d);
  const double one = llmk_gemm_model_own_us(mp, g, 7, 16, 2304, 16384, &roomy);
  CHECK(d.clusters[7] < 18 && two > one * 1.3, "18 clusters of 7 with %d resident: %.2f us, all resident %.2f",
        d.clusters[7], two, one);
  llmk_gemm_device none = d;
  none.clusters[7] = 0;
  CHECK(llmk_gemm_model_own_us(mp, g, 7, 16, 2304, 16384, &none) >= 1e29, "a cluster size that never fits");
  CHECK(!llmk_gemm_model_candidate(g, 7, 1, 16, 2304, 16384, &none), "not a candidate either");
}

static void bounds(void) {
  const llmk_gemm_model_params *mp = llmk_gemm_model_fitted();
  const llmk_gemm_device *d = llmk_gemm_device_h100();
  int checked = 0;
  for (int i = 0; i < LLMK_GEMM_NUM_CFGS; i++) {
    const llmk_gemm_own_cfg *g = &llmk_gemm_cfgs[i];
    const int kind = g->in_dtype == LLMK_BF16 ? 3 : g->promote ? 2 : 1;
    const int64_t M = g->swap ? (g->gemv ? 4 : g->tile_n) : 512, N = 4096;
    for (int q = 0; q < LLMK_GEMM_MODEL_NSPLITS; q++) {
      const int s = llmk_gemm_model_splits[q];
      if (!llmk_gemm_model_candidate(g, s, kind, M, N, 8192, d)) continue;
      const double a = llmk_gemm_model_own_us(mp, g, s, M, N, 8192, d);
      const double b = llmk_gemm_model_own_us(mp, g, s, M, N, 16384, d);
      const int es = g->in_dtype == LLMK_BF16 ? 2 : 1;
      const double floor_us = ((double)es * (M * 8192.0 + N * 8192.0) + 2.0 * M * N) / (d->hbm_gbps * 1e3);
      CHECK(b > a && a > floor_us, "%s k%d: %.2f us at K = 8192, %.2f at 16384, floor %.2f", g->name, s, a, b,
            floor_us);
      checked++;
    }
  }
  CHECK(checked > 20, "%d candidates checked", checked);
}

static void candidates(void) {
  const llmk_gemm_device *d = llmk_gemm_device_h100();
  const llmk_gemm_model_params *mp = llmk_gemm_model_fitted();
  static const int64_t ms[] = {1, 7, 16, 33, 64, 100, 128, 129, 1024, 5000};
  static const int64_t nks[][2] = {{576, 7168}, {2304, 16384}, {4096, 512}, {14336, 8192}, {106496, 16384}};
  for (int kind = 0; kind < 5; kind++)
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
      for (size_t b = 0; b < sizeof nks / sizeof nks[0]; b++) {
        const int64_t M = ms[a], N = nks[b][0], K = nks[b][1];
        for (int i = 0; i < LLMK_GEMM_NUM_CFGS; i++) {
          const llmk_gemm_own_cfg *g = &llmk_gemm_cfgs[i];
          for (int q = 0; q < LLMK_GEMM_MODEL_NSPLITS; q++) {
            const int s = llmk_gemm_model_splits[q];
            if (!llmk_gemm_model_candidate(g, s, kind, M, N, K, d)) continue;
            const int promote = kind == 2 || kind == 4, slice = kind == 3 ? 64 : 128;
            const int ok = g->in_dtype == (kind == 3 ? LLMK_BF16 : LLMK_E4M3) &&
                           (kind == 3 || g->promote == promote) && (!g->swap || llmk_gemm_swap_fits(g, M)) &&
                           (g->k_split || s == 1) && (!g->k_split || s == 1 || s <= (K + slice - 1) / slice / 2);
            if (!ok) CHECK(0, "kind %d %s k%d taken for %lld x %lld x %lld", kind, g->name, s, (long long)M,
                           (long long)N, (long long)K);
          }
        }
        int cfg[4], sp[4], c1, s1;
        double us[4];
        const int n = llmk_gemm_model_top(mp, kind, M, N, K, d, 4, cfg, sp, us);
        const double best = llmk_gemm_model_best(mp, kind, M, N, K, d, &c1, &s1);
        int sorted = n >= 1;
        for (int i = 1; i < n; i++) sorted &= us[i - 1] <= us[i];
        CHECK(sorted && cfg[0] == c1 && sp[0] == s1 && us[0] == best, "kind %d %lld x %lld x %lld: top %d sorted %d",
              kind, (long long)M, (long long)N, (long long)K, n, sorted);
      }
}

static void routed(void) {
  /* an untabulated decode shape: the route is the model's own choice or cuBLASLt, as it predicts */
  llmk_gemm_plan p;
  memset(&p, 0, sizeof p);
  p.scaling = LLMK_SCALING_ROW, p.fast_accum = 1, p.backend = LLMK_GEMM_AUTO, p.in_dtype = LLMK_E4M3;
  p.M = 16, p.N = 2304, p.K = 16384, p.x_planes = 1;
  llmk_gemm_route r = LLMK_GEMM_ROUTE_INIT;
  llmk_gemm_route_for(&p, NULL, NULL, &r);
  const llmk_gemm_model_params *mp = llmk_gemm_model_fitted();
  int cfg, splits, ncfg, nsplits;
  const double own = llmk_gemm_model_best(mp, 1, 16, 2304, 16384, llmk_gemm_device_h100(), &cfg, &splits);
  const double lt = llmk_gemm_model_lt_us(mp, 1, 16, 2304, 16384, llmk_gemm_device_h100());
  if (llmk_gemm_neighbours_pick(llmk_gemm_neighbours(), 1, 16, 2304, 16384, llmk_gemm_device_h100(), 0, 0, &ncfg,
                                &nsplits)) {
    /* the measured neighbours choose; a cuBLASLt pick keeps the model's configuration as its fallback */
    CHECK(r.source == LLMK_GEMM_SOURCE_RULE && (r.backend == LLMK_GEMM_OWN) == (ncfg >= 0) &&
              r.config == (ncfg >= 0 ? ncfg : cfg) && r.splits == (ncfg >= 0 ? nsplits : splits),
          "route %s k%d backend %d, neighbours' pick %d k%d", r.config_name, r.splits, (int)r.backend, ncfg, nsplits);
  } else {
    CHECK(r.source == LLMK_GEMM_SOURCE_RULE && r.config == cfg && r.splits == splits, "route %s k%d, model %s k%d",
          r.config_name, r.splits, llmk_gemm_cfgs[cfg].name, splits);
    if (llmk_gemm_model_is_fitted(mp, 1, 16))
      CHECK((r.backend == LLMK_GEMM_OWN) == (own <= lt), "backend %d, model own %.2f us, cuBLASLt %.2f",
            (int)r.backend, own, lt);
    else /* the table's measured preference for row-wise decode */
      CHECK(r.backend == LLMK_GEMM_OWN, "untabulated row-wise decode: backend %d", (int)r.backend);
  }
  p.M = 4096; /* and for prefill, cuBLASLt */
  llmk_gemm_route_for(&p, NULL, NULL, &r);
  if (!llmk_gemm_model_is_fitted(mp, 1, 4096)) CHECK(r.backend == LLMK_GEMM_CUBLASLT, "untabulated row-wise prefill: backend %d", (int)r.backend);
}

static void neighbours(void) {
  /* the compiled-in table: known configurations, relative times >= 1, each
   * shape's fastest at 1; every pick serves its call; a shape of the table
   * chooses a candidate measured near the fastest at it and its neighbours */
  const llmk_gemm_nb_table *t = llmk_gemm_neighbours();
  const llmk_gemm_device *d = llmk_gemm_device_h100();
  for (int j = 0; j < t->nshapes; j++) {
    const llmk_gemm_nb_shape *s = &t->shapes[j];
    float least = 1e30f;
    int sane = s->count > 0 && s->kind >= 0 && s->kind < 4 && s->m >= 1 && s->m <= 128;
    for (int e = s->first; e < s->first + s->count; e++) {
      const llmk_gemm_nb_cand *q = &t->cands[e];
      sane &= q->cfg >= -1 && q->cfg < LLMK_GEMM_NUM_CFGS && q->rel >= 0.999f;
      if (q->rel < least) least = q->rel;
    }
    CHECK(sane && least < 1.001f, "table shape %d (kind %d, %lld x %lld x %lld): %d candidates, least %.3f", j,
          s->kind, (long long)s->m, (long long)s->n, (long long)s->k, s->count, (double)least);
    int cfg, splits;
    if (llmk_gemm_neighbours_pick(t, s->kind, s->m, s->n, s->k, d, 0, 0, &cfg, &splits) && cfg >= 0)
      CHECK(llmk_gemm_model_candidate(&llmk_gemm_cfgs[cfg], splits, s->kind, s->m, s->n, s->k, d),
            "pick %s k%d serves %lld x %lld x %lld", llmk_gemm_cfgs[cfg].name, splits, (long long)s->m,
            (long long)s->n, (long long)s->k);
  }
  /* a kind and token class the table holds nothing of: no choice, nothing written */
  for (int kind = 0; kind < 4; kind++)
    for (int cls = 0; cls < 2; cls++) {
      int held = 0;
      for (int j = 0; j < t->nshapes; j++) held += t->shapes[j].kind == kind && (t->shapes[j].m > 128) == cls;
      if (held) continue;
      int cfg = 7, splits = 7;
      CHECK(!llmk_gemm_neighbours_pick(t, kind, cls ? 4096 : 16, 4096, 4096, d, 0, 0, &cfg, &splits) && cfg == 7 &&
                splits == 7,
            "kind %d, class %d: not in the table, no choice", kind, cls);
    }
}

static void memo(void) {
  llmk_gemm_tuned_forget();
  llmk_gemm_pick p = {0, 0, 0};
  int tuned = -1;
  CHECK(!llmk_gemm_memo_find(3, 1, 16, 2304, 16384, &p, &tuned), "nothing remembered yet");
  const llmk_gemm_pick model = {1, 5, 3}, winner = {0, 7, 2};
  llmk_gemm_memo_model(3, 1, 16, 2304, 16384, &model);
  CHECK(llmk_gemm_memo_find(3, 1, 16, 2304, 16384, &p, &tuned) && !tuned && p.use_own == 1 && p.cfg == 5 &&
            p.splits == 3,
        "the model's choice: found %d, tuned %d, pick %d %d %d", 1, tuned, p.use_own, p.cfg, p.splits);
  CHECK(!llmk_gemm_memo_find(2, 1, 16, 2304, 16384, &p, &tuned) && !llmk_gemm_memo_find(3, 0, 16, 2304, 16384, &p, &tuned),
        "another device or kind does not see it");
  llmk_gemm_tuned_put(3, 1, 16, 2304, 16384, &winner, 12.5);
  llmk_gemm_memo_model(3, 1, 16, 2304, 16384, &model); /* must not displace the winner */
  CHECK(llmk_gemm_memo_find(3, 1, 16, 2304, 16384, &p, &tuned) && tuned && p.use_own == 0 && p.cfg == 7 && p.splits == 2,
        "the winner: tuned %d, pick %d %d %d", tuned, p.use_own, p.cfg, p.splits);
  /* many shapes: each one's own entry, winners kept */
  int ok = 1;
  for (int64_t m = 1; m <= 2000; m++) {
    const llmk_gemm_pick q = {(int)(m & 1), (int)(m % 40), (int)(m % 16) + 1};
    llmk_gemm_memo_model(3, 1, m, 4096, 4096 + m, &q);
  }
  for (int64_t m = 1; m <= 2000; m++)
    if (llmk_gemm_memo_find(3, 1, m, 4096, 4096 + m, &p, &tuned) && (tuned || p.cfg != (int)(m % 40))) ok = 0;
  CHECK(ok, "a remembered shape returned another shape's pick");
  CHECK(llmk_gemm_memo_find(3, 1, 16, 2304, 16384, &p, &tuned) && tuned && p.cfg == 7, "the winner survived 2000 more shapes");
  llmk_gemm_tuned_forget();
  CHECK(!llmk_gemm_memo_find(3, 1, 16, 2304, 16384, &p, &tuned), "forgotten");
}
#endif

int main(void) {
#ifdef LLMK_WITH_CUDA
  waves();
  bounds();
  candidates();
  routed();
  neighbours();
  memo();
#else
  SKIP("a build without CUDA has no GEMM configurations to model");
#endif
  TEST_END();
}
