/* The one place llmk reads its environment variables (env.h). */
#include "core/env.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmk.h"

static llmk_env g_env;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

/* The integer value of `name` if it is one in [lo, hi], else -1. */
static int64_t env_int(const char *name, int64_t lo, int64_t hi) {
  const char *e = getenv(name);
  if (!e || !*e) return -1;
  char *end;
  const long long v = strtoll(e, &end, 10);
  return *end || v < lo || v > hi ? -1 : (int64_t)v;
}

static int pow2_or_unset(int64_t v) { return v > 0 && (v & (v - 1)) == 0 ? (int)v : -1; }

static void read_env(void) {
  llmk_env e;
  memset(&e, 0, sizeof e);
  const char *b = getenv("LLMK_GEMM_BACKEND");
  e.gemm_backend = b && !strcmp(b, "own") ? LLMK_GEMM_OWN : b && !strcmp(b, "cublaslt") ? LLMK_GEMM_CUBLASLT : -1;
  const char *c = getenv("LLMK_GEMM_OWN_CFG");
  if (c && strlen(c) < sizeof e.gemm_own_cfg) snprintf(e.gemm_own_cfg, sizeof e.gemm_own_cfg, "%s", c);
  e.gemm_splits = (int)env_int("LLMK_GEMM_SPLITS", 1, 64);
  e.gemm_band = (int)env_int("LLMK_GEMM_BAND", 1, 64);
  e.gemm_lt_algo = (int)env_int("LLMK_GEMM_LT_ALGO", 0, 63);
  const char *p = getenv("LLMK_GEMM_PDL");
  e.gemm_pdl = !(p && !strcmp(p, "0"));
  const char *we = getenv("LLMK_GEMM_W_EARLY");
  e.gemm_w_early = we && !strcmp(we, "1");
  e.gemm_tune = env_int("LLMK_GEMM_TUNE", 0, 1) == 1;
  const char *tf = getenv("LLMK_GEMM_TUNE_FILE");
  if (tf && strlen(tf) < sizeof e.gemm_tune_file) snprintf(e.gemm_tune_file, sizeof e.gemm_tune_file, "%s", tf);
  e.quant_tpr = pow2_or_unset(env_int("LLMK_QUANT_TPR", 1, 1024));
  const int64_t vpt = env_int("LLMK_QUANT_VPT", 0, 8);
  e.quant_vpt = vpt == 0 || vpt == 1 || vpt == 2 || vpt == 4 || vpt == 8 ? (int)vpt : -1;
  e.quant_bands = (int)env_int("LLMK_QUANT_BANDS", 0, 1);
  e.tensor_cluster = (int)env_int("LLMK_TENSOR_CLUSTER", 0, 1);
  e.tensor_one_cta_max = env_int("LLMK_TENSOR_ONE_CTA_MAX", 0, INT64_MAX);
  e.norm_tpr = pow2_or_unset(env_int("LLMK_NORM_TPR", 1, 512));
  e.silu_tpr = pow2_or_unset(env_int("LLMK_SILU_TPR", 1, 512));
  e.silu_fp64 = env_int("LLMK_SILU_FP64", 0, 1) == 1;
  const int64_t mp = env_int("LLMK_ATTN_MERGE_PARTS", 1, 4);
  e.attn_merge_parts = mp == 3 ? -1 : (int)mp;
  const char *mr = getenv("LLMK_MOE_ROUTE");
  e.moe_route = !mr                       ? 0
                : !strcmp(mr, "shuffle") ? LLMK_MOE_ROUTE_SHUFFLE
                : !strcmp(mr, "redux")   ? LLMK_MOE_ROUTE_REDUX
                : !strcmp(mr, "lanes4")  ? LLMK_MOE_ROUTE_LANES4
                                         : 0;
  e.w4a16_splits = (int)env_int("LLMK_W4A16_SPLITS", 1, 8);
  e.w4a16_stripes = (int)env_int("LLMK_W4A16_STRIPES", 0, 1);
  const char *ap = getenv("LLMK_ATTN_PDL");
  e.attn_pdl = !(ap && !strcmp(ap, "0"));
  const char *a = getenv("LLMK_ALLREDUCE");
  e.allreduce = !a                       ? 0
                : !strcmp(a, "oneshot") ? LLMK_ALLREDUCE_ONESHOT
                : !strcmp(a, "twoshot") ? LLMK_ALLREDUCE_TWOSHOT
                : !strcmp(a, "nccl")    ? LLMK_ALLREDUCE_NCCL
                                        : 0;
  e.comm_timeout_ms = env_int("LLMK_COMM_TIMEOUT_MS", 1, 3600000);
  pthread_mutex_lock(&g_lock);
  g_env = e;
  pthread_mutex_unlock(&g_lock);
}

const llmk_env *llmk_env_get(void) {
  pthread_once(&g_once, read_env);
  return &g_env;
}

void llmk_env_refresh(void) {
  pthread_once(&g_once, read_env);
  read_env();
}
