/* The GEMM dispatcher's cost model: a predicted time for every own
 * configuration and K split, and for cuBLASLt, on a shape no table entry
 * holds. The dispatcher (heuristics.c) runs the cheapest prediction.
 *
 * The form is physical, the constants are fitted (tools/fit_gemm_model.c,
 * on `llmk tune gemm --dump` sweeps of the fit half of bench/gemm_shapes.py;
 * docs/DESIGN.md "The cost model" and docs/PERFORMANCE_LOG.md say how it
 * was validated). For an own configuration of tile_m x tile_n and split s:
 *
 *   slices   K slices of 128 bytes per row (128 FP8 or 64 BF16 elements)
 *            each CTA runs per tile: ceil(ceil(K / slice) / s)
 *   bytes    per slice: 128 x (A rows + B rows) the tile really loads (TMA
 *            fetches nothing for rows past the matrix; a multicast pair
 *            loads its shared W slice once for two CTAs)
 *   waves    K-split: clusters of s CTAs run at most `clusters[s]` at once
 *            (clusters sit inside one GPC, so this is less than SMs / s);
 *            persistent: tiles over the CTAs that walk them
 *   cta      slices x max(bytes / sm_gbps, flops / mma_tflops)
 *   wave     max(cta, the wave's share of the unique HBM bytes / (hbm_gbps
 *            x hbm_eff)), its share being its tiles over all tiles: a
 *            partial last wave costs a whole cta for a fraction of the bytes
 *   total    fixed_us + the sum of the waves
 *            + reduce_us x (tile_m x tile_n / 8192) when s > 1
 *
 * with fixed_us, sm_gbps, mma_tflops and reduce_us per family of
 * configurations (llmk_gemm_family). cuBLASLt: lt_fixed_us + max(bytes /
 * (hbm_gbps x lt_mem_eff), flops / lt_tflops), in two token-count classes
 * (M <= 128 and above), per call kind. Host code only. */
#ifndef LLMK_GEMM_MODEL_H
#define LLMK_GEMM_MODEL_H

#include <stdint.h>

#include "llmk.h"

#ifdef __cplusplus
extern "C" {
#endif

struct llmk_gemm_own_cfg;

/* Families of configurations that share the model's constants. */
typedef enum llmk_gemm_family {
  LLMK_FAM_SWAP = 0,         /* FP8 swapped decode tiles */
  LLMK_FAM_SPLIT,            /* FP8 K-split tiles, fast accumulation */
  LLMK_FAM_SPLIT_PROMOTE,    /* FP8 K-split tiles, fp32 promotion */
  LLMK_FAM_PERSIST,          /* FP8 persistent, direct stores */
  LLMK_FAM_PERSIST_TMA,      /* FP8 persistent, TMA-store epilogue */
  LLMK_FAM_PROMOTE,          /* FP8 persistent, fp32 promotion (both epilogues) */
  LLMK_FAM_PING,             /* FP8 ping-pong consumers */
  LLMK_FAM_MCAST,            /* FP8 multicast pairs */
  LLMK_FAM_SWAP_PROMOTE,     /* FP8 swapped decode tiles, fp32 promotion (block scaling at decode) */
  LLMK_FAM_BF16_SWAP,        /* BF16 swapped decode tiles */
  LLMK_FAM_BF16_SPLIT,       /* BF16 K-split tiles */
  LLMK_FAM_BF16_PERSIST,     /* BF16 persistent */
  LLMK_FAM_GEMV,             /* the BF16 mma.sync kernel */
  LLMK_FAM_COUNT
} llmk_gemm_family;

typedef struct llmk_gemm_family_params {
  double fixed_us;   /* launch, prologue, pipeline fill and drain */
  double sm_gbps;    /* what one CTA streams through its slices (GB/s) */
  double mma_tflops; /* one CTA's tensor-core rate on this family's tiles */
  double reduce_us;  /* the K-split reduction of an 8192-element tile */
} llmk_gemm_family_params;

/* cuBLASLt's constants per call kind (llmk_table_kind order: tensor, row,
 * block, bf16) and token class (0: M <= 128, 1: larger). */
typedef struct llmk_gemm_lt_params {
  double fixed_us, mem_eff, tflops;
} llmk_gemm_lt_params;

typedef struct llmk_gemm_model_params {
  /* per call kind, which token classes the constants were fitted on
   * (bit 0: M <= 128, bit 1: M > 128); elsewhere the dispatcher keeps its
   * measured backend rule (llmk_gemm_rule_own) and uses the model only
   * among the own configurations */
  int fitted[4];
  double hbm_eff; /* the fraction of the peak DRAM bandwidth a GEMM streams at */
  llmk_gemm_family_params fam[LLMK_FAM_COUNT];
  llmk_gemm_lt_params lt[4][2];
} llmk_gemm_model_params;

/* What the model needs of the device: its SMs, how many clusters of s
 * SM-filling CTAs can be resident at once (s = 1 .. LLMK_GEMM_MAX_SPLITS;
 * 0: none), and the peak DRAM bandwidth. */
typedef struct llmk_gemm_device {
  int cache_id; /* the CUDA ordinal: choices are remembered per device; -1: not remembered */
  int sm_count;
  int clusters[LLMK_GEMM_MAX_SPLITS + 1];
  double hbm_gbps;
} llmk_gemm_device;

/* Asks CUDA device `device` (of `sms` SMs) for its resident clusters of
 * each size (cudaOccupancyMaxActiveClusters on a never-launched kernel of
 * SM-filling CTAs) and its DRAM peak (memory clock x bus width); fields it
 * cannot learn keep the H100's values. Implemented in device.cu. */
void llmk_gemm_device_query(int device, int sms, llmk_gemm_device *d);

/* The H100 SXM (132 SMs, 3352 GB/s, clusters as measured by
 * bench/lab/cluster_occupancy.cu): the model's device where none is known
 * (tests, a device whose query failed). */
const llmk_gemm_device *llmk_gemm_device_h100(void);

/* The fitted constants (src/cuda/gemm_model.inc). */
const llmk_gemm_model_params *llmk_gemm_model_fitted(void);

/* Whether mp was fitted on calls of `kind` (as llmk_gemm_model_lt_us;
 * kind 4, never measured, is not) in M's token class. */
int llmk_gemm_model_is_fitted(const llmk_gemm_model_params *mp, int kind, int64_t M);

llmk_gemm_family llmk_gemm_family_of(const struct llmk_gemm_own_cfg *g);
const char *llmk_gemm_family_name(llmk_gemm_family f);

/* Predicted microseconds of configuration g at K split `splits` (1 for
 * unsplit ones) on an M x N x K call; a huge value when it cannot run
 * (no cluster of that size fits the device). */
double llmk_gemm_model_own_us(const llmk_gemm_model_params *mp, const struct llmk_gemm_own_cfg *g, int splits,
                              int64_t M, int64_t N, int64_t K, const llmk_gemm_device *dev);

/* The same prediction for a walk the caller counts itself (the grouped
 * GEMM's, whose tiles are spread over groups): `tiles` tiles of tile_m x
 * tile_n of family f, K split `splits` ways (split families; 1
 * otherwise), `bytes` the unique DRAM bytes of the call. 1e30 where it
 * cannot run. */
double llmk_gemm_model_tiles_us(const llmk_gemm_model_params *mp, llmk_gemm_family f, int tile_m, int tile_n,
                                int splits, int64_t tiles, int64_t K, double bytes, const llmk_gemm_device *dev);

/* Predicted microseconds of cuBLASLt on a call of `kind` (0 tensor, 1 row,
 * 2 block, 3 bf16: llmk_table_kind; 4: row or tensor scales with fp32
 * promotion, predicted as block scaling). */
double llmk_gemm_model_lt_us(const llmk_gemm_model_params *mp, int kind, int64_t M, int64_t N, int64_t K,
                             const llmk_gemm_device *dev);

/* Whether the dispatcher considers configuration g at K split `splits`
 * for a call of `kind` (as llmk_gemm_model_lt_us): g serves the kind
 * (dtype; FP8: promoting configurations for kinds 2 and 4 only), a swapped tile's token width suits M, and the split is
 * one of llmk_gemm_model_splits that `llmk tune gemm` also measures (each
 * rank at least two K slices, the clusters within two waves of the SMs
 * and resident on the device; 1 for unsplit configurations). */
int llmk_gemm_model_candidate(const struct llmk_gemm_own_cfg *g, int splits, int kind, int64_t M, int64_t N,
                              int64_t K, const llmk_gemm_device *dev);
#define LLMK_GEMM_MODEL_NSPLITS 10
extern const int llmk_gemm_model_splits[LLMK_GEMM_MODEL_NSPLITS];

/* The n own candidates with the least predicted times, fastest first,
 * into cfg[], splits[] and us[] (n entries each); returns how many there
 * are (at most n). */
int llmk_gemm_model_top(const llmk_gemm_model_params *mp, int kind, int64_t M, int64_t N, int64_t K,
                        const llmk_gemm_device *dev, int n, int *cfg, int *splits, double *us);

/* The own candidate with the least predicted time: its configuration and
 * split into *cfg and *splits (-1 and 1 if none serves), the time
 * returned (1e30 if none). */
double llmk_gemm_model_best(const llmk_gemm_model_params *mp, int kind, int64_t M, int64_t N, int64_t K,
                            const llmk_gemm_device *dev, int *cfg, int *splits);

#ifdef __cplusplus
}
#endif
#endif
