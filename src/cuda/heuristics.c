/* Launch configurations by shape (see heuristics.h). Measurements behind the
 * choices are in bench/NOTES.md. */
#include "cuda/heuristics.h"

#include <stdlib.h>

#ifdef LLMK_WITH_CUDA
#include "cuda/gemm_own.h"
#endif

static int pow2_ceil(int64_t n) {
  int p = 1;
  while (p < n && p < 1024) p *= 2;
  return p;
}

static int env_int(const char *name, int lo, int hi) {
  const char *e = getenv(name);
  if (!e) return -1;
  char *end;
  long v = strtol(e, &end, 10);
  if (*end || v < lo || v > hi) return -1;
  return (int)v;
}

static int vpt_round(int64_t v) { return v <= 1 ? 1 : v <= 2 ? 2 : v <= 4 ? 4 : v <= 8 ? 8 : 0; }

llmk_team_cfg llmk_team_config(int64_t nvec, int64_t units, int sm_count) {
  if (nvec < 1) nvec = 1;
  /* Measured on the H100 (bench/lab_quantize_configs.sh, bench/NOTES.md):
   * 4 vectors per thread and at most 256 threads per segment is best for
   * every M at K = 8192 (1024-thread teams pay a 32-warp reduction: 3.46 vs
   * 2.61 us at 16 x 8192). When the whole call is small (fewer vectors than
   * ~1024 per SM), spreading short segments over more CTAs wins instead:
   * 1x128 groups at 16 x 8192 take 1.92 us with 16 threads x 1 vector, 2.37
   * with 4 x 4. Segments too long for 256 x 8 vectors get wider teams. */
  const int target = units * nvec < (int64_t)sm_count * 1024 ? 1 : 4;
  int tpr = pow2_ceil((nvec + target - 1) / target);
  if (tpr > 256) tpr = 256;
  const int wide = pow2_ceil((nvec + 7) / 8);
  if (wide > tpr) tpr = wide;
  int forced = env_int("LLMK_QUANT_TPR", 1, 1024);
  if (forced > 0 && (forced & (forced - 1)) == 0) tpr = forced;
  int vpt = vpt_round((nvec + tpr - 1) / tpr);
  int fv = env_int("LLMK_QUANT_VPT", 0, 8);
  if (fv >= 0 && (fv == 0 || vpt_round(fv) == fv) && (fv == 0 || (int64_t)fv * tpr >= nvec)) vpt = fv;
  if (vpt == 8 && tpr > 512) vpt = 0; /* 8 vectors per thread fit registers only at <= 512 threads */
  llmk_team_cfg c = {tpr, vpt, tpr < 256 ? 256 : tpr};
  return c;
}

int llmk_tile_vpt(int64_t items) { return vpt_round((items + 255) / 256); }

int llmk_use_band_kernel(int64_t gm, int64_t gk, int band_width) {
  if (gm <= 1 || gk > band_width || (gk & (gk - 1)) != 0) return 0;
  /* 128x1 at 16384 x 8192 bf16: one CTA per block ran at 3% of copy (bench/NOTES.md). */
  return env_int("LLMK_QUANT_BANDS", 0, 1) != 0;
}

int llmk_tensor_cluster_config(int64_t nvec, int ctas, int *threads, int *vpt) {
  if (env_int("LLMK_TENSOR_CLUSTER", 0, 1) == 0 || nvec > (int64_t)ctas * 1024 * 4) return 0;
  int t = pow2_ceil((nvec + 4 * ctas - 1) / (4 * ctas)); /* 4 vectors per thread, as the row teams */
  if (t < 32) t = 32;
  *threads = t;
  *vpt = vpt_round((nvec + (int64_t)ctas * t - 1) / ((int64_t)ctas * t));
  return 1;
}

int64_t llmk_tensor_one_cta_max(void) {
  const char *e = getenv("LLMK_TENSOR_ONE_CTA_MAX");
  if (e) {
    char *end;
    long long v = strtoll(e, &end, 10);
    if (!*end && v >= 0) return v;
  }
  /* Measured against the 8-CTA cluster kernel (graph replay, H100): 1 x 8192
   * one CTA 2.22 us, cluster 2.94; 4 x 8192 one CTA 4.10, cluster 3.07. The
   * crossover lies between 8K and 32K elements; 16K is not measured. */
  return INT64_C(1) << 14;
}

#ifdef LLMK_WITH_CUDA /* the GEMM configurations exist only in a CUDA build */
/* Provisional (no measurements yet): among the configurations of the right
 * accumulation mode, the one with the best product of wave efficiency
 * (tiles over whole waves of sm_count CTAs) and a per-tile-shape efficiency
 * guess; cuBLASLt for AUTO until the own kernels are measured. */
llmk_gemm_choice llmk_gemm_choose(int64_t M, int64_t N, int64_t K, int fast_accum, int sm_count) {
  (void)K;
  llmk_gemm_choice c = {0, -1};
  double best = -1.0;
  const int n = llmk_gemm_own_num_cfgs();
  for (int i = 0; i < n; i++) {
    const llmk_gemm_own_cfg g = llmk_gemm_own_cfg_at(i);
    if (g.promote != !fast_accum) continue;
    const int64_t tiles = ((M + g.bm - 1) / g.bm) * ((N + g.bn - 1) / g.bn);
    const int64_t waves = (tiles + sm_count - 1) / sm_count;
    const double useful = (double)M * N / ((double)tiles * g.bm * g.bn); /* edge waste */
    const double shape = g.bm == 128 ? (g.bn == 256 ? 1.0 : 0.92) : (g.bn == 256 ? 0.88 : 0.8);
    const double score = (double)tiles / ((double)waves * sm_count) * useful * shape;
    if (score > best) best = score, c.own_cfg = i;
  }
  const int forced = env_int("LLMK_GEMM_OWN_CFG", 0, n - 1);
  if (forced >= 0 && llmk_gemm_own_cfg_at(forced).promote == !fast_accum) c.own_cfg = forced;
  return c;
}
#endif
