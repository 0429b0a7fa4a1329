/* The validated form of a quantize/dequantize call, shared by both backends. */
#ifndef LLMK_QUANT_H
#define LLMK_QUANT_H

#include "core/internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Groups tile the M x K matrix as a grid of ngr x ngc groups of gm x gk
 * elements (edge groups partial); group (i, j) has scale[i * ngc + j]. */
typedef struct llmk_qplan {
  llmk_scaling scaling;
  int64_t M, K;
  int64_t gm, gk;   /* >= 1 */
  int64_t ngr, ngc; /* ceil(M / gm), ceil(K / gk); for TENSOR 1 x 1 */
  int is_e5m2;
  const float *scale_ub;   /* optional */
  const int64_t *num_rows; /* optional, TENSOR only */
} llmk_qplan;

llmk_status llmk_cpu_quantize(const llmk_qplan *p, const llmk_mat *x, const llmk_mat *q,
                              float *scale);
void llmk_cpu_dequantize(const llmk_qplan *p, const llmk_mat *q, const float *scale,
                         const llmk_mat *y);

llmk_status llmk_cuda_quantize(llmk_handle h, const llmk_qplan *p, const llmk_mat *x,
                               const llmk_mat *q, float *scale, void *stream);
llmk_status llmk_cuda_dequantize(llmk_handle h, const llmk_qplan *p, const llmk_mat *q,
                                 const float *scale, const llmk_mat *y, void *stream);

#ifdef __cplusplus
}
#endif
#endif
