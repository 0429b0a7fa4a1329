/* The own GEMM kernels of unit mcast_ping in gemm_configs.def: FP8 multicast pairs and ping-pong tiles.
 * One of the translation units over which the configurations' template
 * instantiations are spread so they compile in parallel (gemm_kernels.cuh). */
#define LLMK_GEMM_UNIT_mcast_ping LLMK_GEMM_INSTANTIATE
#include "cuda/gemm_kernels.cuh"
