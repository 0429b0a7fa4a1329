/* The own GEMM kernels of unit tmastore in gemm_configs.def: FP8 persistent tiles with the TMA-store epilogue.
 * One of the translation units over which the configurations' template
 * instantiations are spread so they compile in parallel (gemm_kernels.cuh). */
#define LLMK_GEMM_UNIT_tmastore LLMK_GEMM_INSTANTIATE
#include "cuda/gemm_kernels.cuh"
