/* Launch-configuration choice for llmk's CUDA kernels, by shape. Kept apart
 * from the kernel bodies so it can be read, tested and tuned on its own. */
#ifndef LLMK_HEURISTICS_H
#define LLMK_HEURISTICS_H

#include <stdint.h>

#include "llmk.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A "team" of `tpr` threads (a power of two, 1..1024) owns one row segment
 * of up to tpr * vpt 16-byte vectors held in registers (vpt in {1,2,4,8});
 * vpt == 0 means the segment is too long for registers and is streamed
 * twice; vpt == 8 implies tpr <= 512. `block` threads per CTA (a multiple of tpr, >= 256 or == tpr). */
typedef struct llmk_team_cfg {
  int tpr, vpt, block;
} llmk_team_cfg;

/* For `units` independent segments of `nvec` vectors each on `sm_count`
 * SMs. LLMK_QUANT_TPR and LLMK_QUANT_VPT (environment) force tpr / vpt for
 * tuning; invalid values are ignored. */
llmk_team_cfg llmk_team_config(int64_t nvec, int64_t units, int sm_count);

/* Threads per CTA and registers-resident vectors per thread for one CTA per
 * gm x gk tile of `items` 16-byte vectors: vpt in {1,2,4,8} or 0 (stream). */
int llmk_tile_vpt(int64_t items);

/* Whether gm x gk blocks (gm > 1) go to the band kernel (one CTA per gm-row
 * band x `band_width`-column strip) rather than one CTA per block: only
 * power-of-two gk <= band_width qualify. LLMK_QUANT_BANDS=0 disables it. */
int llmk_use_band_kernel(int64_t gm, int64_t gk, int band_width);

/* Whether a contiguous per-tensor quantization of `nvec` 16-byte vectors
 * runs as one cluster of `ctas` CTAs holding it in registers, and if so with
 * how many threads per CTA (32..1024) and vectors per thread (1, 2 or 4).
 * Returns 0 when it does not fit or LLMK_TENSOR_CLUSTER=0. */
int llmk_tensor_cluster_config(int64_t nvec, int ctas, int *threads, int *vpt);

/* Largest element count for which a contiguous per-tensor quantization with
 * no num_rows runs as one CTA (LLMK_TENSOR_ONE_CTA_MAX overrides; 0
 * disables). */
int64_t llmk_tensor_one_cta_max(void);

/* GEMM: the route of a call (llmk_gemm_route_for, below) from the
 * measured table src/cuda/gemm_table.inc (`llmk tune gemm`) and the rule
 * for shapes off it. The table's kinds: */
typedef enum llmk_table_kind {
  LLMK_TABLE_TENSOR = 0, /* FP8, tensor-wise scales, fast accumulation */
  LLMK_TABLE_ROW = 1,    /* FP8, row-wise scales, fast accumulation */
  LLMK_TABLE_BLOCK = 2,  /* FP8, block scales (fp32 promotion) */
  LLMK_TABLE_BF16 = 3    /* BF16 */
} llmk_table_kind;

/* One measured shape: the fastest own configuration (LLMK_CFG_<name> of
 * gemm_own.h; LLMK_CFG_NONE if none ran) at its K split and cuBLASLt's
 * fastest heuristic entry, their times, and which won (use_own). */
typedef struct llmk_gemm_table_entry {
  llmk_table_kind kind;
  int64_t M, N, K;
  int use_own, own_cfg, splits;
  double own_us, lt_us; /* 1e30: nothing ran */
  int lt_algo;          /* 0 when not measured */
} llmk_gemm_table_entry;

/* The table's entries, for tests: *n gets their count. */
const llmk_gemm_table_entry *llmk_gemm_table(int *n);

/* What a GEMM call runs, into *out (all fields of llmk.h's llmk_gemm_route;
 * out->size is left alone): for plan p (in_dtype, scaling, fast_accum,
 * backend as requested, M, N, K, x_planes, bias and its dtype; the
 * pointers are not read) on device dev (NULL: an H100, nothing
 * remembered), with the handle's
 * override ovr (NULL: none). llmk_cuda_gemm_fp8 and _bf16 run exactly
 * this; llmk_gemm_choice reports it. Precedence, field by field: a
 * requested backend, then ovr, then the environment (LLMK_GEMM_BACKEND:
 * FP8 only), then the table, then the cost model (gemm_model.h). A forced configuration applies
 * only where it serves the call (dtype, and for FP8 the accumulation
 * mode); forced splits apply to split configurations only. */
struct llmk_gemm_plan;
struct llmk_gemm_device;
void llmk_gemm_route_for(const struct llmk_gemm_plan *p, const llmk_gemm_override *ovr,
                         const struct llmk_gemm_device *dev, llmk_gemm_route *out);

/* The backend the measured table favours for an untabulated shape of model
 * kind `kind` (gemm_model.h): 1 the own kernels, 0 cuBLASLt. The
 * dispatcher follows it where the cost model was not fitted. */
int llmk_gemm_rule_own(int kind, int64_t M, int64_t N, int64_t K);

/* Whether own configuration g is a swapped (decode) one whose token width
 * suits M, or the gemv and M fits its 8 tokens (the rule and the tune try
 * only those); llmk_gemm_config's m_min .. m_max say the same for M >= 1. */
struct llmk_gemm_own_cfg;
int llmk_gemm_swap_fits(const struct llmk_gemm_own_cfg *g, int64_t M);
/* Output tiles of own configuration g for an M x N result. */
int64_t llmk_gemm_cfg_tiles(const struct llmk_gemm_own_cfg *g, int64_t M, int64_t N);

#ifdef __cplusplus
}
#endif
#endif
