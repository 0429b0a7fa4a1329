/* The environment variables llmk reads (docs/DESIGN.md, "Environment
 * variables"): read once per process, here and nowhere else. They are for
 * users and benchmarks; programs steer the library through its API
 * (llmk_gemm_desc.backend, llmk_set_gemm_override). */
#ifndef LLMK_ENV_H
#define LLMK_ENV_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* LLMK_MOE_ROUTE: the routing kernels llmk_moe_route can be made to take */
typedef enum llmk_moe_route_kernel {
  LLMK_MOE_ROUTE_SHUFFLE = 1, /* one warp a token, shuffle reductions: every shape */
  LLMK_MOE_ROUTE_REDUX = 2,   /* one warp a token, redux.sync top k: the rule where it applies */
  LLMK_MOE_ROUTE_LANES4 = 3   /* four lanes a token */
} llmk_moe_route_kernel;

/* -1 (or "") means unset or invalid: the library's own choice applies. */
typedef struct llmk_env {
  /* GEMM */
  int gemm_backend;       /* LLMK_GEMM_BACKEND=own|cublaslt: LLMK_GEMM_OWN or _CUBLASLT; auto: -1 */
  char gemm_own_cfg[64];  /* LLMK_GEMM_OWN_CFG: a configuration's name (or its index) */
  int gemm_splits;        /* LLMK_GEMM_SPLITS: 1..64 (the dispatcher caps it) */
  int gemm_band;          /* LLMK_GEMM_BAND: 1..64 row tiles a band of the unswapped raster */
  int gemm_lt_algo;       /* LLMK_GEMM_LT_ALGO: 0..63, an entry of cuBLASLt's heuristic list */
  int gemm_pdl;           /* LLMK_GEMM_PDL=0: 0; else 1 (programmatic dependent launch on) */
  int gemm_w_early;       /* LLMK_GEMM_W_EARLY=1: 1 (FP8 decode tiles load W before the wait); else 0 */
  int gemm_tune;          /* LLMK_GEMM_TUNE=1: 1, else 0 (online tuning for handles left at LLMK_GEMM_TUNE_ENV) */
  char gemm_tune_file[1024]; /* LLMK_GEMM_TUNE_FILE: where tuning winners persist; "" for none */
  /* quantization */
  int quant_tpr;          /* LLMK_QUANT_TPR: threads per row team, a power of two 1..1024 */
  int quant_vpt;          /* LLMK_QUANT_VPT: vectors per thread, 0 (stream), 1, 2, 4 or 8 */
  int quant_bands;        /* LLMK_QUANT_BANDS: 0 or 1 */
  int tensor_cluster;     /* LLMK_TENSOR_CLUSTER: 0 or 1 */
  int64_t tensor_one_cta_max; /* LLMK_TENSOR_ONE_CTA_MAX: >= 0 elements */
  /* RMSNorm and SiLU-mul-quant */
  int norm_tpr;           /* LLMK_NORM_TPR: a power of two 1..512 */
  int silu_tpr;           /* LLMK_SILU_TPR: a power of two 1..512 */
  int silu_fp64;          /* LLMK_SILU_FP64=1: 1, else 0 */
  /* decode attention */
  int attn_merge_parts;   /* LLMK_ATTN_MERGE_PARTS: 1, 2 or 4 threads per output column of the split merge */
  int attn_pdl;           /* LLMK_ATTN_PDL=0: 0; else 1 (the split kernel launched as a programmatic dependent) */
  /* MoE */
  int moe_route;          /* LLMK_MOE_ROUTE: a forced routing kernel (llmk_moe_route_kernel), 0: the rule */
  /* INT4 GEMMs */
  int w4a16_splits;       /* LLMK_W4A16_SPLITS: 1..8, the decode kernel's K split (cluster size) */
  int w4a16_stripes;      /* LLMK_W4A16_STRIPES=1: 1 (every M runs the dequantized stripes), 0: force the
                           * decode kernel (per 16 tokens) at any M; -1: the rule */
  /* all-reduce (read when a communicator is created) */
  int allreduce;          /* LLMK_ALLREDUCE=oneshot|twoshot|nccl: the llmk_allreduce_algo; else 0 */
  int64_t comm_timeout_ms; /* LLMK_COMM_TIMEOUT_MS: 1..3600000 */
} llmk_env;

/* The values, read at the first call (thread-safe). */
const llmk_env *llmk_env_get(void);

/* Reads the environment again. For tests that change a variable with
 * setenv inside one process; never called by the library. */
void llmk_env_refresh(void);

#ifdef __cplusplus
}
#endif
#endif
