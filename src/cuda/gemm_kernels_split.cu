/* The own GEMM kernels of unit split in gemm_configs.def: FP8 K-split cluster tiles.
 * One of the translation units over which the configurations' template
 * instantiations are spread so they compile in parallel (gemm_kernels.cuh). */
#define LLMK_GEMM_UNIT_split LLMK_GEMM_INSTANTIATE
#include "cuda/gemm_kernels.cuh"
