// How many thread-block clusters of S CTAs (S = 1..16) can be resident at
// once on GPU 0, for CTAs that each fill an SM (the GEMM kernels' shape: one
// CTA per SM by shared memory). On Hopper the answer is not SMs / S: a
// cluster must sit inside one GPC, so GPC sizes decide how many fit (a
// K-split decode GEMM whose clusters do not all fit runs a second wave).
// Prints one JSON line per S; the dispatcher's cost model is fitted with
// these counts (tools/fit_gemm_model.c), and the library asks the same
// question of its device (src/cuda/gemm_model_device.cu).
#include <cstdio>

#include <cuda_runtime.h>

__global__ void one_per_sm(int *p) {
  extern __shared__ int s[];
  if (p) p[threadIdx.x] = s[threadIdx.x];
}

int main() {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    fprintf(stderr, "cluster_occupancy: no CUDA device\n");
    return 1;
  }
  int mem_khz = 0, bus_bits = 0;
  cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, 0);
  cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0);
  const double hbm_gbps = 2.0 * mem_khz * 1e3 * (bus_bits / 8) / 1e9;  // double data rate
  const int smem = 200 * 1024;  // more than half of the SM's shared memory: one CTA per SM
  cudaFuncSetAttribute(one_per_sm, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  cudaFuncSetAttribute(one_per_sm, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
  for (int s = 1; s <= 16; s++) {
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeClusterDimension;
    at[0].val.clusterDim.x = (unsigned)s, at[0].val.clusterDim.y = 1, at[0].val.clusterDim.z = 1;
    cfg.gridDim = dim3((unsigned)s), cfg.blockDim = dim3(384), cfg.dynamicSmemBytes = (size_t)smem;
    cfg.attrs = at, cfg.numAttrs = 1;
    int n = 0;
    const cudaError_t e = cudaOccupancyMaxActiveClusters(&n, one_per_sm, &cfg);
    printf("{\"device\": \"%s\", \"sms\": %d, \"hbm_gbps\": %.1f, \"cluster\": %d, \"max_active_clusters\": %d, "
           "\"status\": \"%s\"}\n",
           prop.name, prop.multiProcessorCount, hbm_gbps, s, e == cudaSuccess ? n : 0, cudaGetErrorString(e));
    (void)cudaGetLastError();
  }
  return 0;
}
