/* The own GEMM kernels of unit persist in gemm_configs.def: FP8 persistent tiles with direct stores.
 * One of the translation units over which the configurations' template
 * instantiations are spread so they compile in parallel (gemm_kernels.cuh). */
#define LLMK_GEMM_UNIT_persist LLMK_GEMM_INSTANTIATE
#include "cuda/gemm_kernels.cuh"
