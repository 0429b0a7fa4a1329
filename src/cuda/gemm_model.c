/* The GEMM cost model (gemm_model.h explains the form). */
#include "cuda/gemm_model.h"

#include <math.h>

#include "cuda/gemm_own.h"
#include "cuda/heuristics.h"

#ifdef LLMK_WITH_CUDA /* the configurations exist only in a CUDA build */
/* The fitted constants: llmk_gemm_model_params k_fitted = {...} */
#include "cuda/gemm_model.inc"

const llmk_gemm_model_params *llmk_gemm_model_fitted(void) { return &k_fitted; }

int llmk_gemm_model_is_fitted(const llmk_gemm_model_params *mp, int kind, int64_t M) {
  /* kind 4 (row or tensor scales with fp32 promotion) is predicted as block
   * scaling but no sweep measures it: never fitted */
  return kind >= 0 && kind < 4 && (mp->fitted[kind] >> (M > 128)) & 1;
}

const llmk_gemm_device *llmk_gemm_device_h100(void) {
  /* H100 80GB HBM3, 132 SMs, as bench/lab/cluster_occupancy.cu measured it
   * (2026-12-07): clusters of 7 or 8 CTAs fit only 15 at once; DRAM
   * 2 x 2619 MHz x 5120 bits */
  static const llmk_gemm_device d = {-1, 132, {0, 132, 66, 39, 30, 22, 17, 15, 15, 9, 7, 7, 7, 7, 7, 7, 7}, 3352.3};
  return &d;
}

static const char *const k_family_names[LLMK_FAM_COUNT] = {
    "swap", "split", "split_promote", "persist", "persist_tma", "promote", "ping", "mcast", "swap_promote",
    "bf16_swap", "bf16_split", "bf16_persist", "gemv"};

const char *llmk_gemm_family_name(llmk_gemm_family f) {
  return f >= 0 && f < LLMK_FAM_COUNT ? k_family_names[f] : "?";
}

llmk_gemm_family llmk_gemm_family_of(const llmk_gemm_own_cfg *g) {
  if (g->in_dtype == LLMK_BF16)
    return g->gemv ? LLMK_FAM_GEMV : g->swap ? LLMK_FAM_BF16_SWAP : g->k_split ? LLMK_FAM_BF16_SPLIT
                                                                             : LLMK_FAM_BF16_PERSIST;
  if (g->swap) return g->promote ? LLMK_FAM_SWAP_PROMOTE : LLMK_FAM_SWAP;
  if (g->k_split) return g->promote ? LLMK_FAM_SPLIT_PROMOTE : LLMK_FAM_SPLIT;
  if (g->promote) return LLMK_FAM_PROMOTE;
  if (g->multicast) return LLMK_FAM_MCAST;
  if (g->ping_pong) return LLMK_FAM_PING;
  return g->tma_store ? LLMK_FAM_PERSIST_TMA : LLMK_FAM_PERSIST;
}

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static double dmax(double a, double b) { return a > b ? a : b; }
static int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

/* The time no kernel beats: every operand byte once from DRAM and the
 * output once to it. */
static double floor_us(int64_t M, int64_t N, int64_t K, int es, double gbps) {
  const double bytes = (double)es * ((double)M * K + (double)N * K) + 2.0 * M * N;
  return bytes / (gbps * 1e3);
}

/* The model's body for any tile walk: `tiles` tiles of `slices` slices
 * per CTA at slice_us each, per_wave of them at once, the unique DRAM
 * bytes taking hbm_us in all. Each wave takes the longer of one CTA's
 * slices at its own rate and the wave's share of hbm_us, its share being
 * its tiles over all tiles: a partial last wave pays a whole CTA time for a
 * fraction of the bytes (the tail that a better tiling or K split avoids).
 * With one wave this is max(cta, hbm). */
static double waves_us(const llmk_gemm_family_params *fp, int64_t tiles, int64_t per_wave, int64_t slices,
                       double slice_us, double hbm_us, int splits, int tile_m, int tile_n) {
  if (per_wave < 1) per_wave = 1;
  const double cta = (double)slices * slice_us;
  const int64_t full = tiles / per_wave, rest = tiles % per_wave;
  double body = (double)full * dmax(cta, hbm_us * (double)per_wave / (double)tiles);
  if (rest) body += dmax(cta, hbm_us * (double)rest / (double)tiles);
  const double reduce = splits > 1 ? fp->reduce_us * (double)tile_m * tile_n / 8192.0 : 0.0;
  return fp->fixed_us + body + reduce;
}

/* One slice's time for a CTA of the family: its bytes at the CTA's
 * streaming rate or its flops at the CTA's tensor-core rate. */
static double slice_us(const llmk_gemm_family_params *fp, double slice_bytes, int tile_m, int tile_n, int64_t ks) {
  const double slice_flops = 2.0 * tile_m * tile_n * (double)ks;
  return dmax(slice_bytes / (fp->sm_gbps * 1e3), slice_flops / (fp->mma_tflops * 1e6));
}

double llmk_gemm_model_own_us(const llmk_gemm_model_params *mp, const llmk_gemm_own_cfg *g, int splits, int64_t M,
                              int64_t N, int64_t K, const llmk_gemm_device *dev) {
  const llmk_gemm_family f = llmk_gemm_family_of(g);
  const llmk_gemm_family_params *fp = &mp->fam[f];
  const int bf16 = g->in_dtype == LLMK_BF16, es = bf16 ? 2 : 1;
  const int64_t ks = bf16 ? 64 : 128, nk = cdiv(K, ks);
  /* A-operand rows (X, or W when swapped) and B-operand rows in all */
  const int64_t rows_a = g->swap ? N : M, rows_b = g->swap ? M : N;
  const int64_t tiles = cdiv(rows_a, g->tile_m) * cdiv(rows_b, g->tile_n);
  const double a_rows = (double)imin(g->tile_m, rows_a), b_rows = (double)imin(g->tile_n, rows_b);
  const double su = slice_us(fp, 128.0 * (a_rows + (g->multicast ? b_rows / 2 : b_rows)), g->tile_m, g->tile_n, ks);
  int s = g->k_split ? splits : 1;
  if (s < 1) s = 1;
  /* per_wave: the tiles that run at once */
  int64_t per_wave, slices;
  if (g->gemv) {
    /* small CTAs, eight to an SM */
    per_wave = (int64_t)dev->sm_count * 8 / s;
    slices = cdiv(nk, s);
  } else if (g->k_split) {
    if (s > LLMK_GEMM_MAX_SPLITS || dev->clusters[s] <= 0) return 1e30;
    per_wave = dev->clusters[s];
    slices = cdiv(nk, s);
  } else {
    per_wave = g->multicast ? 2 * imin(cdiv(tiles, 2), dev->sm_count / 2) : imin(tiles, dev->sm_count);
    slices = nk;
  }
  const double hbm = floor_us(M, N, K, es, dev->hbm_gbps * mp->hbm_eff);
  return waves_us(fp, tiles, per_wave, slices, su, hbm, s, g->tile_m, g->tile_n);
}

double llmk_gemm_model_tiles_us(const llmk_gemm_model_params *mp, llmk_gemm_family f, int tile_m, int tile_n,
                                int splits, int64_t tiles, int64_t K, double bytes, const llmk_gemm_device *dev) {
  if (f < 0 || f >= LLMK_FAM_COUNT || f == LLMK_FAM_GEMV) return 1e30;
  const llmk_gemm_family_params *fp = &mp->fam[f];
  const int bf16 = f == LLMK_FAM_BF16_SWAP || f == LLMK_FAM_BF16_SPLIT || f == LLMK_FAM_BF16_PERSIST;
  const int64_t ks = bf16 ? 64 : 128, nk = cdiv(K, ks);
  const int split = f == LLMK_FAM_SWAP || f == LLMK_FAM_SPLIT || f == LLMK_FAM_SPLIT_PROMOTE ||
                    f == LLMK_FAM_SWAP_PROMOTE || f == LLMK_FAM_BF16_SWAP || f == LLMK_FAM_BF16_SPLIT;
  const int s = split && splits > 1 ? splits : 1;
  if (s > LLMK_GEMM_MAX_SPLITS || (split && dev->clusters[s] <= 0)) return 1e30;
  const int64_t per_wave = split ? dev->clusters[s] : imin(tiles, dev->sm_count);
  const double su = slice_us(fp, 128.0 * (tile_m + tile_n), tile_m, tile_n, ks);
  const double hbm = bytes / (dev->hbm_gbps * mp->hbm_eff * 1e3);
  return waves_us(fp, tiles, per_wave, cdiv(nk, s), su, hbm, s, tile_m, tile_n);
}

double llmk_gemm_model_lt_us(const llmk_gemm_model_params *mp, int kind, int64_t M, int64_t N, int64_t K,
                             const llmk_gemm_device *dev) {
  if (kind == 4) kind = 2; /* fp32 promotion of row or tensor scales: as block scaling */
  if (kind < 0 || kind > 3) return 1e30;
  const llmk_gemm_lt_params *lp = &mp->lt[kind][M > 128];
  const int es = kind == 3 ? 2 : 1;
  const double flops = 2.0 * (double)M * N * K;
  return lp->fixed_us + dmax(floor_us(M, N, K, es, dev->hbm_gbps * lp->mem_eff), flops / (lp->tflops * 1e6));
}

int llmk_gemm_model_candidate(const llmk_gemm_own_cfg *g, int splits, int kind, int64_t M, int64_t N, int64_t K,
                              const llmk_gemm_device *dev) {
  const int bf16 = kind == 3;
  if (g->in_dtype != (bf16 ? LLMK_BF16 : LLMK_E4M3)) return 0;
  if (!bf16 && g->promote != (kind == 2 || kind == 4)) return 0;
  if ((g->swap || g->gemv) && !llmk_gemm_swap_fits(g, M)) return 0;
  if (!g->k_split) return splits == 1;
  /* the K splits `llmk tune gemm` measures: each rank >= 2 slices, the
   * clusters within two waves of the SMs (the gemv: its cluster limit) */
  const int64_t nk = (K + (bf16 ? 63 : 127)) / (bf16 ? 64 : 128);
  const int max = g->gemv ? LLMK_GEMV_MAX_SPLITS : LLMK_GEMM_MAX_SPLITS;
  if (splits < 1 || splits > max || (splits == 1 && !g->swap) || (splits > 1 && splits > nk / 2)) return 0;
  if (!g->gemv && (llmk_gemm_cfg_tiles(g, M, N) * splits > 2 * (int64_t)dev->sm_count || dev->clusters[splits] <= 0))
    return 0;
  return 1;
}

const int llmk_gemm_model_splits[LLMK_GEMM_MODEL_NSPLITS] = {1, 2, 3, 4, 5, 6, 8, 10, 12, 16};

int llmk_gemm_model_top(const llmk_gemm_model_params *mp, int kind, int64_t M, int64_t N, int64_t K,
                        const llmk_gemm_device *dev, int n, int *cfg, int *splits, double *us) {
  int have = 0;
  for (int i = 0; i < LLMK_GEMM_NUM_CFGS; i++) {
    const llmk_gemm_own_cfg *g = &llmk_gemm_cfgs[i];
    for (int q = 0; q < (g->k_split ? LLMK_GEMM_MODEL_NSPLITS : 1); q++) {
      const int s = llmk_gemm_model_splits[q];
      if (!llmk_gemm_model_candidate(g, s, kind, M, N, K, dev)) continue;
      const double t = llmk_gemm_model_own_us(mp, g, s, M, N, K, dev);
      /* insertion into the sorted list of the n best (ties: the earlier in the list) */
      int j = have < n ? have++ : n;
      if (j == n && !(t < us[n - 1])) continue;
      if (j == n) j = n - 1;
      while (j > 0 && t < us[j - 1]) cfg[j] = cfg[j - 1], splits[j] = splits[j - 1], us[j] = us[j - 1], j--;
      cfg[j] = i, splits[j] = s, us[j] = t;
    }
  }
  return have;
}

double llmk_gemm_model_best(const llmk_gemm_model_params *mp, int kind, int64_t M, int64_t N, int64_t K,
                            const llmk_gemm_device *dev, int *cfg, int *splits) {
  double us = 1e30;
  *cfg = -1, *splits = 1;
  return llmk_gemm_model_top(mp, kind, M, N, K, dev, 1, cfg, splits, &us) ? us : 1e30;
}
#endif
