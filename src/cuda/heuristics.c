/* Launch configurations by shape (see heuristics.h). Measurements behind the
 * choices are in bench/NOTES.md. */
#include "cuda/heuristics.h"

#include <stdlib.h>

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
  /* Many segments: 4 vectors per thread keep enough loads in flight with
   * few threads per segment. Few segments (decode-sized M): spread each one
   * over more threads so that latency, not per-thread work, sets the time. */
  int target = units >= 2 * (int64_t)sm_count ? 4 : 1;
  int tpr = pow2_ceil((nvec + target - 1) / target);
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

int64_t llmk_tensor_one_cta_max(void) {
  const char *e = getenv("LLMK_TENSOR_ONE_CTA_MAX");
  if (e) {
    char *end;
    long long v = strtoll(e, &end, 10);
    if (!*end && v >= 0) return v;
  }
  return INT64_C(1) << 17;
}
