/* The validated form of an FP8 GEMM call, shared by the CPU and CUDA backends. */
#ifndef LLMK_GEMM_H
#define LLMK_GEMM_H

#include "core/internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Y[M, N] = bf16((acc * xs[m or 0]) * ws[n or 0] + bias[n]), acc = X[M, K] . W[N, K]^T
 * (FP8), or bf16(acc + bias[n]) (BF16: no scales). Every pointer is memory
 * of the handle's backend; K-major X and W. */
typedef struct llmk_gemm_plan {
  llmk_scaling scaling; /* TENSOR (xs, ws have one element), ROW (xs[M], ws[N]) or BLOCK */
  int fast_accum;       /* 1: FP8 accumulate over all of K; 0: promote to fp32 every <= 128 of K */
  llmk_gemm_backend backend; /* as requested: AUTO, OWN or CUBLASLT (env not applied yet) */
  int64_t M, N, K;
  llmk_dtype in_dtype; /* of X and W: LLMK_E4M3 or LLMK_BF16 */
  const void *x;       /* row i at element i * ldx */
  int64_t ldx;
  const void *w; /* row j at element j * ldw */
  int64_t ldw;
  const float *xs, *ws; /* NULL for BF16 */
  /* BLOCK: the scale of x row m and K slice b (128 deep) is xs[(m / x_bm) *
   * xs_rs + b * xs_ks], that of w row n ws[(n / 128) * ws_rs + b * ws_ks] */
  int64_t x_bm;         /* 1 or 128 */
  int64_t xs_rs, xs_ks, ws_rs, ws_ks;
  size_t lt_ws_reserved; /* CUDA: bytes at the start of the handle's workspace that cuBLASLt must leave alone */
  const void *bias;       /* NULL or N elements of bias_dtype */
  llmk_dtype bias_dtype;  /* LLMK_F32 or LLMK_BF16 (meaningless when bias is NULL) */
  uint16_t *y;            /* bf16 bits, row i at y + i * ldy */
  int64_t ldy;
  /* 2: two-plane activations (ROW scaling): X has 2M rows, rows 2m and
   * 2m + 1 (scales xs[2m], xs[2m + 1]) both feed output row m; see
   * llmk_gemm_fp8. 1 otherwise. */
  int x_planes;
} llmk_gemm_plan;

/* The reference: exact products accumulated in fp64, converted once to
 * fp32, then the epilogue in fp32 exactly as docs/DESIGN.md orders it (BLOCK:
 * per 128-deep slice, as include/llmk.h orders it). */
llmk_status llmk_cpu_gemm_fp8(const llmk_gemm_plan *p);

/* BF16 reference: products of bf16 values (exact in fp64) summed in fp64,
 * converted once to fp32, + bias in fp32, rounded to bf16. */
llmk_status llmk_cpu_gemm_bf16(const llmk_gemm_plan *p);

/* CUDA backend (src/cuda/gemm.cu, or the no-CUDA stub). */
llmk_status llmk_cuda_gemm_fp8(llmk_handle h, const llmk_gemm_plan *p, void *stream);
llmk_status llmk_cuda_gemm_bf16(llmk_handle h, const llmk_gemm_plan *p, void *stream);

/* Checks shared by the GEMM entry points (src/core/gemm_api.c). */
typedef struct llmk_byte_range {
  const char *name;
  uintptr_t lo, hi;
} llmk_byte_range;
/* bias (NULL, or f32 or bf16 [N]) and y (bf16 [leading dims of x..., N],
 * rows of one stride), checked after the inputs; fills *my. */
llmk_status llmk_gemm_check_bias_y(const char *fn, const llmk_tensor *x, int64_t N, const llmk_tensor *bias,
                                   const llmk_tensor *y, llmk_mat *my);
/* In place is not allowed: y must not overlap any of the n inputs. */
llmk_status llmk_gemm_check_no_overlap(const char *fn, const llmk_mat *my, const llmk_byte_range *in, int n);
/* CUDA handles: the layout rules of llmk.h (16-byte bases and rows, N and
 * y's pitch multiples of 8), the n pointers on the handle's device, a
 * workspace. */
llmk_status llmk_gemm_check_cuda(llmk_handle h, const char *fn, const llmk_mat *mx, const llmk_mat *mw,
                                 const llmk_mat *my, const void *const *ptrs, const char *const *names, int n);

/* A validated grouped GEMM (llmk_gemm_grouped). `base` describes the whole
 * operands as one dense GEMM would: M = rows of x (T, or G * m_max), N, K,
 * x / ldx, w / ldw (row g * N + n is row n of group g), y / ldy, the
 * scaling and accumulation, bias (G * N elements) and, for FP8, the scale
 * arrays laid out as include/llmk.h states (BLOCK: 1 x 128 activation
 * groups, xs_rs = ws_rs = KB, xs_ks = ws_ks = 1, x_bm = 1). */
typedef struct llmk_grouped_plan {
  llmk_gemm_plan base;
  llmk_group_layout layout;
  int64_t G;
  int64_t m_max;        /* MASKED: rows of each group's block; STACKED: 0 */
  const int32_t *sizes; /* [G], the handle's memory */
} llmk_grouped_plan;

/* The dense plan of group g's rows [r0, r0 + rows) of the grouped plan
 * (rows of x, y and the row scales as laid out in base). */
llmk_gemm_plan llmk_grouped_group_plan(const llmk_grouped_plan *p, int64_t g, int64_t r0, int64_t rows);

/* Reference: each group's rows through llmk_cpu_gemm_fp8 / _bf16. */
llmk_status llmk_cpu_gemm_grouped(const llmk_grouped_plan *p);
/* CUDA backend (src/cuda/gemm_grouped.cu, or the no-CUDA stub). */
llmk_status llmk_cuda_gemm_grouped(llmk_handle h, const llmk_grouped_plan *p, void *stream);

/* The own configurations and the dispatcher's route (src/cuda/heuristics.c,
 * or the no-CUDA stub, which has no configurations): their count, the
 * public description of configuration i (0 <= i < count), and the route
 * of plan p on CUDA handle h (llmk_gemm_choice; all fields of *out but
 * size). */
int llmk_cuda_gemm_config_count(void);
llmk_gemm_config llmk_cuda_gemm_config_get(int i);
void llmk_cuda_gemm_route(llmk_handle h, const llmk_gemm_plan *p, llmk_gemm_route *out);

#ifdef __cplusplus
}
#endif
#endif
