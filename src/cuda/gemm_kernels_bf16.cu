/* The own GEMM kernels of unit bf16 in gemm_configs.def: BF16 wgmma tiles (persistent, swapped and split).
 * One of the translation units over which the configurations' template
 * instantiations are spread so they compile in parallel (gemm_kernels.cuh). */
#define LLMK_GEMM_UNIT_bf16 LLMK_GEMM_INSTANTIATE
#include "cuda/gemm_kernels.cuh"
