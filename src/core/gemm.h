/* The validated form of an FP8 GEMM call, shared by the CPU and CUDA backends. */
#ifndef LLMK_GEMM_H
#define LLMK_GEMM_H

#include "core/internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Y[M, N] = bf16((acc * xs[m or 0]) * ws[n or 0] + bias[n]), acc = X[M, K] . W[N, K]^T.
 * Every pointer is memory of the handle's backend; K-major X and W. */
typedef struct llmk_gemm_plan {
  llmk_scaling scaling; /* TENSOR (xs, ws have one element) or ROW (xs[M], ws[N]) */
  int fast_accum;       /* 1: FP8 accumulate over all of K; 0: promote to fp32 every <= 128 of K */
  llmk_gemm_backend backend; /* as requested: AUTO, OWN or CUBLASLT (env not applied yet) */
  int64_t M, N, K;
  const uint8_t *x; /* e4m3, row i at x + i * ldx */
  int64_t ldx;
  const uint8_t *w; /* e4m3, row j at w + j * ldw */
  int64_t ldw;
  const float *xs, *ws;
  const void *bias;       /* NULL or N elements of bias_dtype */
  llmk_dtype bias_dtype;  /* LLMK_F32 or LLMK_BF16 (meaningless when bias is NULL) */
  uint16_t *y;            /* bf16 bits, row i at y + i * ldy */
  int64_t ldy;
} llmk_gemm_plan;

/* The reference: exact products accumulated in fp64, converted once to
 * fp32, then the epilogue in fp32 exactly as DESIGN.md orders it. */
llmk_status llmk_cpu_gemm_fp8(const llmk_gemm_plan *p);

/* CUDA backend (src/cuda/gemm.cu, or the no-CUDA stub). */
llmk_status llmk_cuda_gemm_fp8(llmk_handle h, const llmk_gemm_plan *p, void *stream);

#ifdef __cplusplus
}
#endif
#endif
