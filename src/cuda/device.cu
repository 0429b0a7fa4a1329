/* CUDA handle creation, device queries and pointer checks. */
#include <stdio.h>
#include <string.h>

#include "cuda/common.cuh"
#include "cuda/gemm_cublaslt.h"

static llmk_status alloc_workspace(llmk_handle h, const char *fn);

static llmk_status count_devices(int *n, const char *fn) {
  cudaError_t e = cudaGetDeviceCount(n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    *n = 0;
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn, "no CUDA driver or device found (%s)",
                          cudaGetErrorString(e));
  }
  return LLMK_SUCCESS;
}

extern "C" llmk_status llmk_cuda_device_count(int *count) {
  if (!count) return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, __func__, "count is NULL");
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) { /* no driver means zero devices, not an error */
    (void)cudaGetLastError();
    n = 0;
  }
  *count = n;
  return LLMK_SUCCESS;
}

extern "C" llmk_status llmk_cuda_device_info(int device, llmk_device_info *info) {
  static const char fn[] = "llmk_cuda_device_info";
  llmk_device_info full = LLMK_DEVICE_INFO_INIT;
  llmk_status s = llmk_sized_write(info, NULL, LLMK_DEVICE_INFO_SIZE, LLMK_DEVICE_INFO_SIZE, fn, "info",
                                   "LLMK_DEVICE_INFO_INIT"); /* the checks alone */
  if (s) return s;
  int n;
  s = count_devices(&n, fn);
  if (s) return s;
  if (device < 0 || device >= n)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "device %d is out of range (%d visible)",
                          device, n);
  cudaDeviceProp p;
  LLMK_CUDA_TRY(cudaGetDeviceProperties(&p, device), fn);
  snprintf(full.name, sizeof full.name, "%s", p.name);
  full.device = device;
  full.sm_count = p.multiProcessorCount;
  full.cc_major = p.major;
  full.cc_minor = p.minor;
  full.total_memory = p.totalGlobalMem;
  full.l2_bytes = (size_t)p.l2CacheSize;
  full.supported = p.major == 9;
  return llmk_sized_write(info, &full, LLMK_DEVICE_INFO_SIZE, LLMK_DEVICE_INFO_SIZE, fn, "info",
                          "LLMK_DEVICE_INFO_INIT");
}

/* A kernel of SM-filling CTAs (the GEMM kernels' shape: one CTA per SM by
 * shared memory), asked how many clusters of each size can be resident:
 * clusters sit inside one GPC, so it is less than SMs / size (the cost
 * model's waves, src/cuda/gemm_model.h). Never launched. */
__global__ void llmk_occupancy_probe(int *p) {
  extern __shared__ int s[];
  if (p) p[threadIdx.x] = s[threadIdx.x];
}

int llmk_active_clusters(const void *kernel, int threads, int smem, int size) {
  cudaLaunchConfig_t cfg = {};
  cudaLaunchAttribute at[1];
  at[0].id = cudaLaunchAttributeClusterDimension;
  at[0].val.clusterDim.x = (unsigned)size, at[0].val.clusterDim.y = 1, at[0].val.clusterDim.z = 1;
  cfg.gridDim = dim3((unsigned)size), cfg.blockDim = dim3((unsigned)threads), cfg.dynamicSmemBytes = (size_t)smem;
  cfg.attrs = at, cfg.numAttrs = 1;
  int n = 0;
  if (cudaOccupancyMaxActiveClusters(&n, kernel, &cfg) != cudaSuccess) n = 0;
  (void)cudaGetLastError();
  return n;
}

extern "C" void llmk_gemm_device_query(int device, int sms, llmk_gemm_device *d) {
  *d = *llmk_gemm_device_h100();
  d->cache_id = device, d->sm_count = sms;
  int khz = 0, bits = 0;
  if (cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, device) == cudaSuccess &&
      cudaDeviceGetAttribute(&bits, cudaDevAttrGlobalMemoryBusWidth, device) == cudaSuccess && khz > 0 && bits > 0)
    d->hbm_gbps = 2.0 * khz * 1e3 * (bits / 8) / 1e9; /* double data rate */
  const int smem = 200 * 1024;
  int prev = -1;
  (void)cudaGetDevice(&prev);
  if (cudaSetDevice(device) == cudaSuccess &&
      cudaFuncSetAttribute(llmk_occupancy_probe, cudaFuncAttributeMaxDynamicSharedMemorySize, smem) == cudaSuccess &&
      cudaFuncSetAttribute(llmk_occupancy_probe, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) == cudaSuccess) {
    for (int s = 1; s <= LLMK_GEMM_MAX_SPLITS; s++)
      d->clusters[s] = llmk_active_clusters((const void *)llmk_occupancy_probe, 384, smem, s);
  }
  (void)cudaGetLastError();
  if (prev >= 0) (void)cudaSetDevice(prev);
}

extern "C" llmk_status llmk_cuda_create(llmk_handle h, int device) {
  static const char fn[] = "llmk_create_cuda";
  int n;
  llmk_status s = count_devices(&n, fn);
  if (s) return s;
  if (device < 0 || device >= n)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "device %d is out of range (%d visible)",
                          device, n);
  int major = 0, sms = 0, l2 = 0;
  LLMK_CUDA_TRY(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), fn);
  LLMK_CUDA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), fn);
  LLMK_CUDA_TRY(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device), fn);
  h->device = device;
  h->sm_count = sms;
  h->l2_bytes = (size_t)l2;
  h->supported = major == 9;
  if (h->supported) llmk_gemm_device_query(device, sms, &h->gemm_dev);
  if ((s = alloc_workspace(h, fn))) return s;
  if ((s = llmk_lt_create(h))) llmk_cuda_release(h);
  return s;
}

static void free_workspace(llmk_handle h) {
  if (h->workspace_owned && h->workspace) {
    int prev = -1;
    (void)cudaGetDevice(&prev);
    (void)cudaSetDevice(h->device);
    (void)cudaFree(h->workspace);
    if (prev >= 0) (void)cudaSetDevice(prev);
    (void)cudaGetLastError();
  }
  h->workspace = NULL;
  h->workspace_bytes = 0;
  h->workspace_owned = 0;
}

extern "C" void llmk_cuda_release(llmk_handle h) {
  free_workspace(h);
  llmk_lt_destroy(h);
}

/* The handle's own workspace, on its device; `fn` names the public call. */
static llmk_status alloc_workspace(llmk_handle h, const char *fn) {
  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, fn);
  if (s) return s;
  cudaError_t e = cudaMalloc(&h->workspace, LLMK_DEFAULT_WORKSPACE_BYTES);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    h->workspace = NULL;
    s = llmk_set_error(LLMK_ERR_OUT_OF_MEMORY, fn, "cannot allocate the %zu-byte GEMM workspace (%s)",
                       (size_t)LLMK_DEFAULT_WORKSPACE_BYTES, cudaGetErrorString(e));
  } else {
    h->workspace_bytes = LLMK_DEFAULT_WORKSPACE_BYTES;
    h->workspace_owned = 1;
  }
  return llmk_scope_leave(h, &sc, s, fn);
}

extern "C" llmk_status llmk_cuda_set_workspace(llmk_handle h, void *ptr, size_t bytes) {
  free_workspace(h);
  if (!ptr) return alloc_workspace(h, "llmk_set_workspace");
  h->workspace = ptr;
  h->workspace_bytes = bytes;
  return LLMK_SUCCESS;
}

extern "C" llmk_status llmk_cuda_check_ptr(llmk_handle h, const void *p, const char *fn,
                                           const char *name) {
  cudaPointerAttributes a;
  cudaError_t e = cudaPointerGetAttributes(&a, p);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "%s = %p is not a CUDA pointer (%s)",
                          name, p, cudaGetErrorString(e));
  }
  if (a.type == cudaMemoryTypeManaged) return LLMK_SUCCESS;
  if (a.type != cudaMemoryTypeDevice)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "%s = %p is host memory; a CUDA handle needs device or managed memory",
                          name, p);
  if (a.device != h->device)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "%s = %p is memory of device %d, but the handle is on device %d", name,
                          p, a.device, h->device);
  return LLMK_SUCCESS;
}
