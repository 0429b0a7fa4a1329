/* The kernel launchers of the quantization family, called by quantize.cu. */
#ifndef LLMK_CUDA_LAUNCH_H
#define LLMK_CUDA_LAUNCH_H

#include <cuda_runtime.h>

#include "core/quant.h"
#include "cuda/heuristics.h"

/* One quantization call as the kernels see it. */
struct llmk_qargs {
  const void *x;
  int64_t ldx;
  uint8_t *q;
  int64_t ldq;
  float *scale;
  int64_t M, K, gm, gk, ngc;
  const float *ub;
  const int64_t *num_rows;
  bool vec_ld, vec_st; /* 16-byte loads of x / VEC-byte stores of q are aligned */
  bool vec_st2;        /* 2*VEC-byte stores of q (vector pairs) are aligned */
  int tpr;             /* team size, for the row-team kernels */
  /* Row gather (llmk_moe_gather_quant; quant_rows_kernel only): output row
   * r reads x row gather[r] / gather_k, and is skipped (nothing written)
   * unless 0 <= gather[r] < gather_n. NULL: row r reads x row r. */
  const int32_t *gather;
  int32_t gather_k;
  int64_t gather_n;
};

/* ROW and 1 x gk BLOCK: one pass, a team of threads per row segment. */
llmk_status llmk_launch_quant_rows(llmk_dtype xt, bool e5m2, llmk_qargs a, llmk_team_cfg cfg,
                                   cudaStream_t st);
/* gm x gk BLOCK with gm > 1: one CTA per group tile. */
llmk_status llmk_launch_quant_tiles(llmk_dtype xt, llmk_qargs a, int vpt, cudaStream_t st);
/* gm x gk BLOCK with gm > 1 and gk a power of two <= llmk_band_width(xt):
 * one CTA per band of gm rows x strip of llmk_band_width columns. */
llmk_status llmk_launch_quant_bands(llmk_dtype xt, llmk_qargs a, cudaStream_t st);
int llmk_band_width(llmk_dtype xt);
/* TENSOR over n contiguous elements held by one cluster of
 * llmk_tensor_cluster_ctas() CTAs (llmk_tensor_cluster_config). */
llmk_status llmk_launch_quant_tensor_cluster(llmk_dtype xt, bool e5m2, llmk_qargs a, int64_t n, int threads,
                                             int vpt, cudaStream_t st);
int llmk_tensor_cluster_ctas(void);
/* TENSOR and COL: an amax pass, a quantize pass, a finalize. */
llmk_status llmk_launch_quant_tensor(llmk_dtype xt, bool e5m2, llmk_qargs a, llmk_team_cfg cfg,
                                     int grid, cudaStream_t st);
llmk_status llmk_launch_quant_cols(llmk_dtype xt, llmk_qargs a, int row_chunks, cudaStream_t st);
/* n scales of empty groups. */
llmk_status llmk_launch_empty_scales(float *scale, int64_t n, bool e5m2, const float *ub,
                                     cudaStream_t st);

/* Dequantize: y = q * scale(group), any granularity. */
struct llmk_dqargs {
  const uint8_t *q;
  int64_t ldq;
  const float *scale;
  void *y;
  int64_t ldy;
  int64_t M, K, gm, gk, ngc;
  bool vec; /* 8-byte loads of q and 8-element stores of y are aligned */
  int tpr;
};
llmk_status llmk_launch_dequant(bool e5m2, llmk_dtype yt, llmk_dqargs a, llmk_team_cfg cfg,
                                int grid, cudaStream_t st);

#endif
