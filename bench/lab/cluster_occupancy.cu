// How many thread-block clusters of S CTAs (S = 1..16) can be resident at
// once on GPU 0, for CTAs that each fill an SM (the GEMM kernels' shape: one
// CTA per SM by shared memory), and the DRAM peak: what the GEMM cost model
// learns of a device (llmk_gemm_device_query, src/cuda/device.cu). On Hopper
// the cluster count is not SMs / S: a cluster must sit inside one GPC, so
// GPC sizes decide how many fit (a K-split decode GEMM whose clusters do not
// all fit runs a second wave). One JSON line per S, the input of
// tools/fit_gemm_model.c.
#include <cstdio>

#include <cuda_runtime.h>

#include "cuda/gemm_model.h"

int main() {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    fprintf(stderr, "cluster_occupancy: no CUDA device\n");
    return 1;
  }
  llmk_gemm_device d;
  llmk_gemm_device_query(0, prop.multiProcessorCount, &d);
  for (int s = 1; s <= LLMK_GEMM_MAX_SPLITS; s++)
    printf("{\"device\": \"%s\", \"sms\": %d, \"hbm_gbps\": %.1f, \"cluster\": %d, \"max_active_clusters\": %d}\n",
           prop.name, d.sm_count, d.hbm_gbps, s, d.clusters[s]);
  return 0;
}
