/* The own GEMM kernels of unit swap in gemm_configs.def: FP8 swapped decode tiles.
 * One of the translation units over which the configurations' template
 * instantiations are spread so they compile in parallel (gemm_kernels.cuh). */
#define LLMK_GEMM_UNIT_swap LLMK_GEMM_INSTANTIATE
#include "cuda/gemm_kernels.cuh"
