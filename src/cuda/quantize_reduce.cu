/* TENSOR and COL quantization: groups too large to hold on chip, so two
 * passes. (1) amax: every CTA reduces its share and merges it into the
 * caller's scale buffer with atomicMax on the float's bits (amax >= 0, so
 * unsigned order is float order; the buffer is zeroed first). (2) quantize:
 * each thread turns the amax into scale and 1/scale exactly as the CPU does
 * and quantizes its share; TENSOR walks the rows in reverse so that its
 * first reads hit what pass 1 left in L2. (3) finalize: amax -> scale in
 * place, once pass 2 no longer reads it. No host synchronization. */
#include "cuda/common.cuh"
#include "cuda/launch.h"

template <bool E5M2>
__global__ void finalize_scales_kernel(float *scale, int64_t n, const float *ub) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) scale[i] = llmk_scale_from_amax<E5M2>(scale[i], ub);
}

template <bool E5M2>
__device__ __forceinline__ float amax_to_inv(const float *amax, const float *ub) {
  return __fdiv_rn(1.0f, llmk_scale_from_amax<E5M2>(*amax, ub));
}

/* ---- TENSOR: row teams (at most 512 threads) in a grid-stride loop ------- */

template <typename T>
__global__ void __launch_bounds__(512) amax_tensor_kernel(llmk_qargs a) {
  constexpr int V = llmk_elem<T>::VEC;
  __shared__ float red[32];
  const int tpr = a.tpr, t = threadIdx.x % tpr, teams = blockDim.x / tpr;
  int64_t nr = a.M;
  if (a.num_rows) nr = max((int64_t)0, min(*a.num_rows, a.M));
  float amax = 0.0f;
  for (int64_t r = (int64_t)blockIdx.x * teams + threadIdx.x / tpr; r < nr;
       r += (int64_t)gridDim.x * teams) {
    const T *xr = static_cast<const T *>(a.x) + r * a.ldx;
#pragma unroll 4
    for (int64_t c = (int64_t)t * V; c < a.K; c += (int64_t)tpr * V)
      amax = llmk_raw_amax<T>(llmk_load_raw<T>(xr, c, a.K, a.vec_ld), amax);
  }
  amax = llmk_team_max(amax, blockDim.x, red);
  if (threadIdx.x == 0 && amax > 0.0f)
    atomicMax(reinterpret_cast<unsigned int *>(a.scale), __float_as_uint(amax));
}

template <typename T, bool E5M2>
__global__ void __launch_bounds__(512) quant_tensor_kernel(llmk_qargs a) {
  constexpr int V = llmk_elem<T>::VEC;
  const int tpr = a.tpr, t = threadIdx.x % tpr, teams = blockDim.x / tpr;
  const float inv = amax_to_inv<E5M2>(a.scale, a.ub);
  for (int64_t i = (int64_t)blockIdx.x * teams + threadIdx.x / tpr; i < a.M;
       i += (int64_t)gridDim.x * teams) {
    const int64_t r = a.M - 1 - i;
    const T *xr = static_cast<const T *>(a.x) + r * a.ldx;
    uint8_t *qr = a.q + r * a.ldq;
#pragma unroll 4
    for (int64_t c = (int64_t)t * V; c < a.K; c += (int64_t)tpr * V)
      llmk_quant_store<T, E5M2>(qr, c, a.K, a.vec_st, llmk_load_raw<T>(xr, c, a.K, a.vec_ld), inv);
  }
}

template <typename T, bool E5M2>
static void launch_tensor(llmk_qargs a, llmk_team_cfg cfg, int grid, cudaStream_t st) {
  amax_tensor_kernel<T><<<grid, cfg.block, 0, st>>>(a);
  quant_tensor_kernel<T, E5M2><<<grid, cfg.block, 0, st>>>(a);
  finalize_scales_kernel<E5M2><<<1, 32, 0, st>>>(a.scale, 1, a.ub);
}

llmk_status llmk_launch_quant_tensor(llmk_dtype xt, bool e5m2, llmk_qargs a, llmk_team_cfg cfg,
                                     int grid, cudaStream_t st) {
  static const char fn[] = "llmk_quantize_fp8";
  a.tpr = cfg.tpr;
  LLMK_CUDA_TRY(cudaMemsetAsync(a.scale, 0, sizeof(float), st), fn);
  if (xt == LLMK_F32) e5m2 ? launch_tensor<float, true>(a, cfg, grid, st) : launch_tensor<float, false>(a, cfg, grid, st);
  else if (xt == LLMK_F16) e5m2 ? launch_tensor<__half, true>(a, cfg, grid, st) : launch_tensor<__half, false>(a, cfg, grid, st);
  else e5m2 ? launch_tensor<__nv_bfloat16, true>(a, cfg, grid, st) : launch_tensor<__nv_bfloat16, false>(a, cfg, grid, st);
  return llmk_launch_check(fn, "quant_tensor kernels");
}

/* ---- COL: CTAs of 32 vector-columns x 8 row lanes over a chunk of rows ---- */

#define COL_LANES 32
#define COL_ROWS 8

template <typename T>
__global__ void __launch_bounds__(COL_LANES *COL_ROWS) amax_cols_kernel(llmk_qargs a, int64_t chunk) {
  constexpr int V = llmk_elem<T>::VEC;
  __shared__ float part[COL_ROWS][COL_LANES * V];
  const int lane = threadIdx.x % COL_LANES, ty = threadIdx.x / COL_LANES;
  const int64_t c = ((int64_t)blockIdx.x * COL_LANES + lane) * V;
  const int64_t r0 = (int64_t)blockIdx.y * chunk, r1 = min(r0 + chunk, a.M);
  float m[V];
#pragma unroll
  for (int i = 0; i < V; i++) m[i] = 0.0f;
  if (c < a.K) {
#pragma unroll 4
    for (int64_t r = r0 + ty; r < r1; r += COL_ROWS) {
      float f[V];
      llmk_unpack<T>(llmk_load_raw<T>(static_cast<const T *>(a.x) + r * a.ldx, c, a.K, a.vec_ld), f);
#pragma unroll
      for (int i = 0; i < V; i++) m[i] = llmk_amax1(m[i], f[i]);
    }
  }
#pragma unroll
  for (int i = 0; i < V; i++) part[ty][lane * V + i] = m[i];
  __syncthreads();
  for (int j = threadIdx.x; j < COL_LANES * V; j += COL_LANES * COL_ROWS) {
    float v = part[0][j];
#pragma unroll
    for (int k = 1; k < COL_ROWS; k++) v = fmaxf(v, part[k][j]);
    const int64_t col = (int64_t)blockIdx.x * COL_LANES * V + j;
    if (col < a.K && v > 0.0f)
      atomicMax(reinterpret_cast<unsigned int *>(a.scale) + col, __float_as_uint(v));
  }
}

template <typename T>
__global__ void __launch_bounds__(COL_LANES *COL_ROWS) quant_cols_kernel(llmk_qargs a, int64_t chunk) {
  constexpr int V = llmk_elem<T>::VEC;
  const int lane = threadIdx.x % COL_LANES, ty = threadIdx.x / COL_LANES;
  const int64_t c = ((int64_t)blockIdx.x * COL_LANES + lane) * V;
  if (c >= a.K) return;
  const int64_t r0 = (int64_t)blockIdx.y * chunk, r1 = min(r0 + chunk, a.M);
  float inv[V];
#pragma unroll
  for (int i = 0; i < V; i++) inv[i] = c + i < a.K ? amax_to_inv<false>(a.scale + c + i, a.ub) : 0.0f;
#pragma unroll 4
  for (int64_t r = r0 + ty; r < r1; r += COL_ROWS) {
    float f[V];
    llmk_unpack<T>(llmk_load_raw<T>(static_cast<const T *>(a.x) + r * a.ldx, c, a.K, a.vec_ld), f);
#pragma unroll
    for (int i = 0; i < V; i++) f[i] = __fmul_rn(f[i], inv[i]);
    llmk_store_fp8<false, V>(a.q + r * a.ldq, c, a.K, a.vec_st, f, 1.0f);
  }
}

template <typename T>
static void launch_cols(llmk_qargs a, int row_chunks, cudaStream_t st) {
  constexpr int V = llmk_elem<T>::VEC;
  const int64_t chunk = (a.M + row_chunks - 1) / row_chunks;
  dim3 grid((unsigned)((a.K + COL_LANES * V - 1) / (COL_LANES * V)), (unsigned)row_chunks);
  amax_cols_kernel<T><<<grid, COL_LANES * COL_ROWS, 0, st>>>(a, chunk);
  quant_cols_kernel<T><<<grid, COL_LANES * COL_ROWS, 0, st>>>(a, chunk);
  finalize_scales_kernel<false><<<(unsigned)((a.K + 255) / 256), 256, 0, st>>>(a.scale, a.K, a.ub);
}

llmk_status llmk_launch_quant_cols(llmk_dtype xt, llmk_qargs a, int row_chunks, cudaStream_t st) {
  static const char fn[] = "llmk_quantize_fp8";
  if ((a.K + 255) / 256 > INT32_MAX)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "too many columns (%lld)", (long long)a.K);
  LLMK_CUDA_TRY(cudaMemsetAsync(a.scale, 0, (size_t)a.K * sizeof(float), st), fn);
  if (xt == LLMK_F32) launch_cols<float>(a, row_chunks, st);
  else if (xt == LLMK_F16) launch_cols<__half>(a, row_chunks, st);
  else launch_cols<__nv_bfloat16>(a, row_chunks, st);
  return llmk_launch_check(fn, "quant_cols kernels");
}

/* Groups with no elements (M or K is 0): scale = f(amax = 0) = MIN_SCALE,
 * or less when *ub says so, exactly as the CPU computes it. */
llmk_status llmk_launch_empty_scales(float *scale, int64_t n, bool e5m2, const float *ub,
                                     cudaStream_t st) {
  static const char fn[] = "llmk_quantize_fp8";
  LLMK_CUDA_TRY(cudaMemsetAsync(scale, 0, (size_t)n * sizeof(float), st), fn);
  const unsigned grid = (unsigned)((n + 255) / 256);
  if (e5m2)
    finalize_scales_kernel<true><<<grid, 256, 0, st>>>(scale, n, ub);
  else
    finalize_scales_kernel<false><<<grid, 256, 0, st>>>(scale, n, ub);
  return llmk_launch_check(fn, "finalize_scales_kernel");
}
