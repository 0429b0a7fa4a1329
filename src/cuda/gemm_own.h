/* llmk's own Hopper GEMM kernels: the configurations of gemm_configs.def
 * and their launch (gemm_own.cu; the kernels are instantiated in
 * gemm_kernels_*.cu and gemv_bf16.cu). Which configuration runs is chosen
 * in heuristics.c (llmk_gemm_route_for). */
#ifndef LLMK_GEMM_OWN_H
#define LLMK_GEMM_OWN_H

#include "core/gemm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A configuration's id: LLMK_CFG_<name> for each line of gemm_configs.def,
 * its position in the list (and llmk_gemm_cfgs[]). LLMK_CFG_NONE: no
 * configuration (a table entry where no own configuration ran). */
typedef enum llmk_gemm_cfg_id {
  LLMK_CFG_NONE = -1,
#define LLMK_GEMM_CONFIG(name, ...) LLMK_CFG_##name,
#include "cuda/gemm_configs.def"
#undef LLMK_GEMM_CONFIG
  LLMK_GEMM_NUM_CFGS
} llmk_gemm_cfg_id;

/* One configuration, the fields of its gemm_configs.def line (which
 * explains each); the flags are 0 or 1. */
typedef struct llmk_gemm_own_cfg {
  const char *name;
  llmk_dtype in_dtype;  /* LLMK_E4M3 or LLMK_BF16 */
  int tile_m, tile_n;   /* BM x BN; swapped: weight rows x tokens; gemv: 16 x 8 */
  int stages;           /* K slices in the shared-memory ring (0: gemv) */
  int promote;          /* fp32 promotion every 128 of K */
  int tma_store;        /* epilogue through shared memory and TMA stores */
  int k_split;          /* K split over a cluster of CTAs per tile */
  int swap;             /* W is wgmma's A operand, tokens its N (decode) */
  int multicast;        /* persistent 2-CTA clusters sharing W by TMA multicast */
  int ping_pong;        /* two consumer warpgroups taking whole tiles in turn */
  int gemv;             /* BF16 mma.sync kernel for a few tokens (gemv_bf16.cu) */
} llmk_gemm_own_cfg;

/* Every configuration, indexed by llmk_gemm_cfg_id. */
extern const llmk_gemm_own_cfg llmk_gemm_cfgs[LLMK_GEMM_NUM_CFGS];

/* The largest K split is llmk.h's LLMK_GEMM_MAX_SPLITS (16: the H100's
 * non-portable cluster size). */

/* Runs p with configuration `cfg` (of p's dtype; for FP8 its promote flag
 * must match !p->fast_accum), K split `splits` ways if cfg is a split
 * configuration (ignored otherwise). The caller has checked the shape
 * rules of llmk.h and made h's device current. NOT_SUPPORTED when such a
 * cluster cannot be resident on the device. llmk_own_gemm_fp8 takes e4m3
 * plans; llmk_own_gemm_bf16 takes bf16 ones: y = bf16(x . w^T + bias), no
 * scales. */
llmk_status llmk_own_gemm_fp8(llmk_handle h, const llmk_gemm_plan *p, int cfg, int splits, void *stream);
llmk_status llmk_own_gemm_bf16(llmk_handle h, const llmk_gemm_plan *p, int cfg, int splits, void *stream);
/* The gemv configuration's launch: K split over `splits` (1 ..
 * LLMK_GEMV_MAX_SPLITS) CTAs of a cluster; pdl: programmatic dependent
 * launch. */
#define LLMK_GEMV_MAX_SPLITS 8
llmk_status llmk_own_gemv_bf16(const llmk_gemm_plan *p, int splits, int pdl, void *stream);

#ifdef __cplusplus
}
#endif
#endif
