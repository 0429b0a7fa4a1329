/* The grouped GEMM's kernels (gemm_grouped.cu) and the choice among them
 * (gemm_grouped_choice.c): which configuration and K split runs a call of
 * llmk_gemm_grouped. Host code only. */
#ifndef LLMK_GEMM_GROUPED_H
#define LLMK_GEMM_GROUPED_H

#include <stdint.h>

#include "core/gemm.h"
#include "cuda/gemm_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A grouped configuration: the kernel of gemm_sm90.cuh with GROUPED set,
 * its tile, ring and kind. `dense` names the dense configuration
 * (gemm_configs.def) with the same tile and the same numerics: on a group's
 * rows, at the same K split, the two agree bit for bit. */
typedef struct llmk_grouped_cfg {
  const char *name, *dense;
  int tile_m, tile_n; /* swapped: weight rows x tokens */
  int stages;
  int swap;           /* swapped decode tile (W rows x tokens) */
  int split;          /* one tile per cluster of CTAs, K split over it; else persistent CTAs walk the tiles */
  int ping;           /* persistent, two consumer warpgroups taking whole tiles in turn */
  int tma_store;      /* epilogue through shared memory and TMA stores (a tile whose rows all belong to its group) */
  int promote;        /* fp32 promotion (FP8 with fp32 accumulation or block scales) */
  int bf16;           /* BF16 operands */
} llmk_grouped_cfg;

#define LLMK_GROUPED_NUM_CFGS 34
extern const llmk_grouped_cfg llmk_grouped_cfgs[LLMK_GROUPED_NUM_CFGS];

/* What the choice knows of a call: all host-side, the sizes being on the
 * device. rows: x's rows (stacked T; masked G x M_max). */
typedef struct llmk_grouped_shape {
  llmk_group_layout layout;
  int64_t G, rows, m_max, N, K;
  int bf16, promote;
} llmk_grouped_shape;

llmk_grouped_shape llmk_grouped_shape_of(const llmk_grouped_plan *p);

/* The expected work of a call, which the choice prices: the rows the groups
 * hold in all (stacked: T; masked: M_max, FBGEMM's convention of a block as
 * deep as the batch's tokens), spread as a uniform router spreads them over
 * the G groups, so that A = G (1 - (1 - 1/G)^rows) groups hold rows, rows / A
 * rows each. */
typedef struct llmk_grouped_load {
  double rows, active, per_group;
} llmk_grouped_load;

llmk_grouped_load llmk_grouped_expected(const llmk_grouped_shape *s);

/* Row tiles of `bt` rows the expected load makes, and those the grid must
 * cover at most (stacked: ceil(T / bt) + min(G, T), each non-empty group
 * adding one partial tile; masked: G ceil(M_max / bt)). */
double llmk_grouped_expected_row_tiles(const llmk_grouped_load *l, int bt);
int64_t llmk_grouped_max_row_tiles(const llmk_grouped_shape *s, int bt);

typedef struct llmk_grouped_choice {
  int cfg;       /* index into llmk_grouped_cfgs */
  int splits;    /* K split of a split configuration (1 for persistent ones) */
  double us;     /* the cost model's prediction of the chosen split (0 where no split was priced) */
  int forced;    /* 1: LLMK_GEMM_OWN_CFG named a grouped configuration of the call's kind */
} llmk_grouped_choice;

/* The configuration and K split for shape s on device dev: the
 * environment's (LLMK_GEMM_OWN_CFG naming a grouped configuration of s's
 * kind; with it, LLMK_GEMM_SPLITS the split of a split one); else the
 * tile for the rows a group is expected to hold (gemm_grouped_choice.c
 * gives the rule and its measurements), and for a split configuration the
 * K split the GEMM cost model (gemm_model.h, llmk_gemm_model_tiles_us)
 * predicts cheapest on the expected load, among those the dense dispatcher
 * also weighs (each rank at least two K slices, clusters resident on dev,
 * within two waves). */
llmk_grouped_choice llmk_grouped_choose(const llmk_grouped_shape *s, const llmk_gemm_device *dev);

#ifdef __cplusplus
}
#endif
#endif
