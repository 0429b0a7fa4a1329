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

/* FP8 GEMM: which backend runs a shape under LLMK_GEMM_AUTO, and which of
 * the own kernel's configurations (an index for llmk_own_gemm_fp8; it always
 * names a configuration matching fast_accum, also when use_own is 0).
 * LLMK_GEMM_OWN_CFG=i forces configuration i where it matches. */
typedef struct llmk_gemm_choice {
  int use_own;
  int own_cfg;
  int splits; /* K split of a split configuration (1 otherwise); LLMK_GEMM_SPLITS=s forces it */
  int lt_algo; /* cuBLASLt: entry of its heuristic list; LLMK_GEMM_LT_ALGO=i forces it */
} llmk_gemm_choice;
llmk_gemm_choice llmk_gemm_choose(int row_scales, int64_t M, int64_t N, int64_t K, int fast_accum, int sm_count);

/* BF16 GEMM: as llmk_gemm_choose, from the table's BF16 entries (kind 3)
 * where they cover the shape, else cuBLASLt; own_cfg indexes the BF16 list
 * of gemm_own.h. LLMK_GEMM_OWN_CFG, LLMK_GEMM_SPLITS and LLMK_GEMM_LT_ALGO
 * force as for FP8. */
llmk_gemm_choice llmk_gemm_bf16_choose(int64_t M, int64_t N, int64_t K, int sm_count);
/* Block-scaled FP8 GEMM under LLMK_GEMM_AUTO: the table's entries for
 * block scaling (kind 2, written by `llmk tune gemm --scaling block`) where
 * they cover the shape, else a measured rule and the fp32 shape rule's
 * configuration. use_own 0 means cuBLASLt (the own kernels where it cannot
 * take the call). */
llmk_gemm_choice llmk_gemm_block_choose(int64_t M, int64_t N, int64_t K, int sm_count);
/* Whether own configuration g (of either list, gemm_own.h) is a swapped
 * (decode) one whose token width suits M (the tune tries only those). */
struct llmk_gemm_own_cfg;
int llmk_gemm_swap_fits(const struct llmk_gemm_own_cfg *g, int64_t M);
/* Output tiles of own configuration g for an M x N result. */
int64_t llmk_gemm_cfg_tiles(const struct llmk_gemm_own_cfg *g, int64_t M, int64_t N);

/* The backend that runs: `requested` (desc->backend) unless AUTO, else
 * LLMK_GEMM_BACKEND (own | cublaslt), else the table's choice `ch`. Never
 * returns AUTO; *forced says whether a request or the environment chose it
 * (an AUTO choice of cuBLASLt may still fall back to the own kernel). */
llmk_gemm_backend llmk_gemm_route(llmk_gemm_backend requested, const llmk_gemm_choice *ch, int *forced);

#ifdef __cplusplus
}
#endif
#endif
