/* FP8 GEMM dispatch for CUDA handles: own kernels or cuBLASLt, by shape.
 * (Under construction: the backends land in the next commits.) */
#include "core/gemm.h"
#include "cuda/common.cuh"

extern "C" llmk_status llmk_cuda_gemm_fp8(llmk_handle h, const llmk_gemm_plan *p, void *stream) {
  (void)h, (void)p, (void)stream;
  return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, "llmk_gemm_fp8", "CUDA GEMM not built yet");
}
