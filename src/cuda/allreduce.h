/* Launch interface of the all-reduce kernels (src/cuda/allreduce.cu),
 * used by src/cuda/comm.cu. */
#ifndef LLMK_CUDA_ALLREDUCE_H
#define LLMK_CUDA_ALLREDUCE_H

#include <cuda_runtime.h>

#include "core/comm.h"

struct llmk_ar_args {
  const void *x, *residual; /* residual: NULL or n elements */
  void *y;
  char *peer[LLMK_COMM_MAX_RANKS]; /* every rank's allocation as mapped here */
  size_t B;                        /* buffer_bytes */
  size_t flags_off;                /* byte offset of the flag arrays in each allocation */
  size_t res_off, res_half;        /* two-shot fp32 results: two parity halves */
  uint32_t *epoch, *done;          /* this rank's call counter and finished-CTA count */
  llmk_comm_fault *fault;          /* device view of the pinned fault record */
  uint64_t timeout_ns;
  int64_t nvec; /* 16-byte vectors in the message */
  int rank, world;
  int registered; /* x is the registered buffer: no copy-in */
};

llmk_status llmk_ar_launch(const llmk_ar_args &a, llmk_allreduce_algo algo, llmk_dtype dt, int grid, int block,
                           cudaStream_t st, const char *fn);
/* y = x + r element-wise (fp32, one rounding): NCCL's sum plus the residual. */
llmk_status llmk_ar_add_residual(llmk_dtype dt, const void *x, const void *r, void *y, int64_t n, int sm_count,
                                 cudaStream_t st, const char *fn);

#endif
