/* The grouped GEMM's configurations and the choice among them (see
 * gemm_grouped.h). Kept apart from the kernels: the choice is host logic
 * that tests check without a GPU. */
#include "cuda/gemm_grouped.h"

#ifdef LLMK_WITH_CUDA
#include <math.h>
#include <string.h>

#include "core/env.h"
#include "cuda/gemm_own.h"

/* Swapped decode tiles of 16, 32 and 64 tokens, one per cluster with K
 * split over it or walked by persistent CTAs, and unswapped persistent
 * tiles (128 x 128; 128 x 256; with fast accumulation ping-pong tiles
 * whose two consumers take whole tiles in turn), for fast accumulation,
 * fp32 promotion and BF16. gemm_grouped.cu instantiates them in this
 * order. */
const llmk_grouped_cfg llmk_grouped_cfgs[LLMK_GROUPED_NUM_CFGS] = {
    /* name, dense twin, tile_m, tile_n, stages, swap, split, ping, tma_store, promote, bf16 */
    {"grouped_swap_64x16_s16", "swap_64x16_s16", 64, 16, 16, 1, 1, 0, 0, 0, 0},
    {"grouped_swap_64x32_s12", "swap_64x32_s12", 64, 32, 12, 1, 1, 0, 0, 0, 0},
    {"grouped_swap_64x64_s12", "swap_64x64_s12", 64, 64, 12, 1, 1, 0, 0, 0, 0},
    {"grouped_swap_persist_64x16_s16", "swap_64x16_s16", 64, 16, 16, 1, 0, 0, 0, 0, 0},
    {"grouped_swap_persist_64x32_s12", "swap_64x32_s12", 64, 32, 12, 1, 0, 0, 0, 0, 0},
    {"grouped_swap_persist_64x64_s12", "swap_64x64_s12", 64, 64, 12, 1, 0, 0, 0, 0, 0},
    {"grouped_swap_persist_128x16_s11", "swap_128x16_s11", 128, 16, 11, 1, 0, 0, 0, 0, 0},
    {"grouped_swap_persist_128x32_s10", "swap_128x32_s10", 128, 32, 10, 1, 0, 0, 0, 0, 0},
    {"grouped_swap_persist_128x64_s8", "swap_128x64_s8", 128, 64, 8, 1, 0, 0, 0, 0, 0},
    {"grouped_persist_128x128_s6", "persist_128x128_s6", 128, 128, 6, 0, 0, 0, 0, 0, 0},
    {"grouped_persist_128x256_s4", "persist_128x256_s4", 128, 256, 4, 0, 0, 0, 0, 0, 0},
    {"grouped_persist_tmastore_128x128_s5", "persist_tmastore_128x128_s5", 128, 128, 5, 0, 0, 0, 1, 0, 0},
    {"grouped_persist_tmastore_128x256_s3", "persist_tmastore_128x256_s3", 128, 256, 3, 0, 0, 0, 1, 0, 0},
    {"grouped_ping_128x128_s6", "ping_128x128_s6", 128, 128, 6, 0, 0, 1, 0, 0, 0},
    {"grouped_ping_tmastore_128x128_s4", "ping_tmastore_128x128_s4", 128, 128, 4, 0, 0, 1, 1, 0, 0},
    {"grouped_ping_tmastore_64x256_s3", "ping_tmastore_64x256_s3", 64, 256, 3, 0, 0, 1, 1, 0, 0},
    {"grouped_swap_promote_64x16_s16", "swap_promote_64x16_s16", 64, 16, 16, 1, 1, 0, 0, 1, 0},
    {"grouped_swap_promote_64x32_s12", "swap_promote_64x32_s12", 64, 32, 12, 1, 1, 0, 0, 1, 0},
    {"grouped_swap_promote_64x64_s12", "swap_promote_64x64_s12", 64, 64, 12, 1, 1, 0, 0, 1, 0},
    {"grouped_swap_persist_promote_64x16_s16", "swap_promote_64x16_s16", 64, 16, 16, 1, 0, 0, 0, 1, 0},
    {"grouped_swap_persist_promote_64x32_s12", "swap_promote_64x32_s12", 64, 32, 12, 1, 0, 0, 0, 1, 0},
    {"grouped_swap_persist_promote_64x64_s12", "swap_promote_64x64_s12", 64, 64, 12, 1, 0, 0, 0, 1, 0},
    {"grouped_persist_promote_128x128_s6", "persist_promote_128x128_s6", 128, 128, 6, 0, 0, 0, 0, 1, 0},
    {"grouped_persist_promote_tmastore_128x128_s5", "persist_promote_tmastore_128x128_s5", 128, 128, 5, 0, 0, 0, 1, 1, 0},
    {"grouped_bf16_swap_128x16_s11", "bf16_swap_128x16_s11", 128, 16, 11, 1, 1, 0, 0, 0, 1},
    {"grouped_bf16_swap_128x32_s10", "bf16_swap_128x32_s10", 128, 32, 10, 1, 1, 0, 0, 0, 1},
    {"grouped_bf16_swap_128x64_s8", "bf16_swap_128x64_s8", 128, 64, 8, 1, 1, 0, 0, 0, 1},
    {"grouped_bf16_swap_persist_128x16_s11", "bf16_swap_128x16_s11", 128, 16, 11, 1, 0, 0, 0, 0, 1},
    {"grouped_bf16_swap_persist_128x32_s10", "bf16_swap_128x32_s10", 128, 32, 10, 1, 0, 0, 0, 0, 1},
    {"grouped_bf16_swap_persist_128x64_s8", "bf16_swap_128x64_s8", 128, 64, 8, 1, 0, 0, 0, 0, 1},
    {"grouped_bf16_persist_128x128_s5", "bf16_persist_tmastore_128x128_s5", 128, 128, 5, 0, 0, 0, 0, 0, 1},
    {"grouped_bf16_persist_128x256_s3", "bf16_persist_tmastore_128x256_s3", 128, 256, 3, 0, 0, 0, 0, 0, 1},
    {"grouped_bf16_persist_tmastore_128x128_s5", "bf16_persist_tmastore_128x128_s5", 128, 128, 5, 0, 0, 0, 1, 0, 1},
    {"grouped_bf16_persist_tmastore_128x256_s3", "bf16_persist_tmastore_128x256_s3", 128, 256, 3, 0, 0, 0, 1, 0, 1},
};

llmk_grouped_shape llmk_grouped_shape_of(const llmk_grouped_plan *p) {
  llmk_grouped_shape s;
  s.layout = p->layout, s.G = p->G, s.rows = p->base.M, s.m_max = p->m_max;
  s.N = p->base.N, s.K = p->base.K;
  s.bf16 = p->base.in_dtype == LLMK_BF16;
  s.promote = !s.bf16 && !p->base.fast_accum;
  return s;
}

llmk_grouped_load llmk_grouped_expected(const llmk_grouped_shape *s) {
  llmk_grouped_load l = {0, 0, 0};
  l.rows = (double)(s->layout == LLMK_GROUP_MASKED ? s->m_max : s->rows);
  if (s->G <= 0 || l.rows <= 0) return l;
  l.active = (double)s->G * -expm1((double)l.rows * log1p(-1.0 / (double)s->G));
  if (s->G == 1) l.active = 1;
  if (l.active < 1) l.active = 1;
  l.per_group = l.rows / l.active;
  return l;
}

double llmk_grouped_expected_row_tiles(const llmk_grouped_load *l, int bt) {
  return l->active * ceil(l->per_group / bt - 1e-9);
}

int64_t llmk_grouped_max_row_tiles(const llmk_grouped_shape *s, int bt) {
  if (s->layout == LLMK_GROUP_MASKED) return s->G * ((s->m_max + bt - 1) / bt);
  return (s->rows + bt - 1) / bt + (s->G < s->rows ? s->G : s->rows);
}

/* The cost model's family of a grouped configuration: its dense twin's
 * (the same kernel body on one group's rows). */
static llmk_gemm_family family(const llmk_grouped_cfg *c) {
  for (int i = 0; i < LLMK_GEMM_NUM_CFGS; i++)
    if (!strcmp(llmk_gemm_cfgs[i].name, c->dense)) return llmk_gemm_family_of(&llmk_gemm_cfgs[i]);
  return LLMK_FAM_COUNT; /* not reached: the test checks every twin exists; the model prices it at 1e30 */
}

static int serves(const llmk_grouped_cfg *c, const llmk_grouped_shape *s) {
  return c->bf16 == s->bf16 && (s->bf16 || c->promote == s->promote);
}

/* The cheapest K split of split configuration c by the cost model, on
 * `tiles` expected tiles and `bytes` unique bytes (each rank at least two
 * K slices, clusters resident on dev, within two waves). */
static int model_splits(const llmk_grouped_cfg *c, const llmk_grouped_shape *s, double tiles, double bytes,
                        const llmk_gemm_device *dev, double *us_out) {
  const int64_t ks = s->bf16 ? 64 : 128, nk = (s->K + ks - 1) / ks;
  const llmk_gemm_model_params *mp = llmk_gemm_model_fitted();
  int best = 1;
  double best_us = 1e30;
  for (int q = 0; q < LLMK_GEMM_MODEL_NSPLITS; q++) {
    const int sp = llmk_gemm_model_splits[q];
    if (sp > 1 && (sp > nk / 2 || dev->clusters[sp] <= 0 || tiles * sp > 2.0 * dev->sm_count)) continue;
    const double us = llmk_gemm_model_tiles_us(mp, family(c), c->tile_m, c->tile_n, sp, (int64_t)ceil(tiles), s->K,
                                               bytes, dev);
    if (us < best_us) best = sp, best_us = us;
  }
  *us_out = best_us;
  return best;
}

llmk_grouped_choice llmk_grouped_choose(const llmk_grouped_shape *s, const llmk_gemm_device *dev) {
  llmk_grouped_choice best = {-1, 1, 0, 0};
  const llmk_env *env = llmk_env_get();
  const llmk_grouped_load l = llmk_grouped_expected(s);
  for (int i = 0; i < LLMK_GROUPED_NUM_CFGS && best.cfg < 0; i++)
    if (serves(&llmk_grouped_cfgs[i], s) && !strcmp(env->gemm_own_cfg, llmk_grouped_cfgs[i].name))
      best.cfg = i, best.forced = 1;
  /* The tile. A group's rows vary about their mean (about as a Poisson
   * count): a swapped tile covers two standard deviations above it (a
   * group that spills into a second row tile costs a second pass of its
   * tokens over the group's W), 16 or 32 tokens; masked, M_max. Above 32
   * rows, an unswapped persistent tile with TMA stores, 128 x 256 (fp32
   * promotion keeps two accumulator sets and takes 128 x 128). Measured on
   * the H100 (`bench/gpu_run.sh grouped_sweep`): 64-token swapped tiles
   * lost to the unswapped tile wherever groups held about 32 rows or more
   * (Maverick down at 4096 tokens: 2666 against 1806 us), and 128 x 256
   * with TMA stores was fastest or within 3% at 4096 and 16384 tokens. */
  const double per = s->layout == LLMK_GROUP_MASKED ? (double)s->m_max : l.per_group + 2.0 * sqrt(l.per_group);
  const double eps = 1e-6; /* G (1 - (1 - 1/G)^rows) falls just short of G */
  /* fp32 promotion (block scales): the promoting swapped tiles rescale
   * their 16-32 token columns every K slice and lost to the unswapped
   * promoting 128 x 128 tile from about 1.5 rows a group up (H100,
   * DeepSeek-V3 down at 128 tokens, 4 rows a group: 185 against 323 us;
   * at 32 tokens, 1.6 rows: 178 against 191; Mixtral down at 8 tokens, 2
   * rows: 186 against 226); below, the persistent swapped tile won
   * (Maverick down at 32 tokens, 1.1 rows: 447 against 523) */
  const int want = s->promote && l.per_group >= 1.5 ? 0 : per <= 16 + eps ? 16 : per <= 32 + eps ? 32 : 0;
  const int wide = !s->promote;
  /* Swapped tiles of that width: walked by persistent CTAs when the tiles
   * outnumber the SMs (each tile's own CTA would pay a CTA's start for a
   * few slices), else one cluster per tile with K split by the cost model. */
  const int es = s->bf16 ? 2 : 1;
  const double bytes = (double)es * (l.active * (double)s->N * (double)s->K + l.rows * (double)s->K) +
                       2.0 * l.rows * (double)s->N;
  const int swap_m = s->bf16 ? 128 : 64; /* the W rows of the swapped tiles the rule picks */
  const double swap_tiles =
      want ? llmk_grouped_expected_row_tiles(&l, want) * (double)((s->N + swap_m - 1) / swap_m) : 0;
  const int split = swap_tiles < dev->sm_count;
  for (int i = 0; i < LLMK_GROUPED_NUM_CFGS && best.cfg < 0; i++) {
    const llmk_grouped_cfg *c = &llmk_grouped_cfgs[i];
    if (!serves(c, s) || c->ping) continue;
    if (want ? c->swap && c->tile_n == want && c->split == split && c->tile_m == swap_m
             : !c->swap && c->tma_store && c->tile_n == (wide ? 256 : 128))
      best.cfg = i;
  }
  if (best.cfg < 0) return best;
  const llmk_grouped_cfg *c = &llmk_grouped_cfgs[best.cfg];
  if (!c->split) return best;
  if (best.forced && env->gemm_splits > 0) {
    best.splits = env->gemm_splits < LLMK_GEMM_MAX_SPLITS ? env->gemm_splits : LLMK_GEMM_MAX_SPLITS;
    return best;
  }
  const double tiles = llmk_grouped_expected_row_tiles(&l, c->tile_n) * (double)((s->N + c->tile_m - 1) / c->tile_m);
  best.splits = model_splits(c, s, tiles, bytes, dev, &best.us);
  return best;
}
#endif
