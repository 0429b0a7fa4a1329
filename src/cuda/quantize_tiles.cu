/* gm x gk BLOCK quantization with gm > 1 (128x128 weights, 128x1, ...): one
 * CTA of 256 threads per group tile. The tile's rows x ceil(cols/VEC)
 * vectors are spread over the CTA, VPT per thread kept in registers (one
 * pass), or streamed twice when the tile is larger (VPT == 0). Output is
 * e4m3 only: docs/DESIGN.md allows e5m2 for tensor and row scaling alone. */
#include "cuda/common.cuh"
#include "cuda/launch.h"

#define TILE_THREADS 256

/* Walks this thread's items i = tid, tid + 256, ... of a tile with `vpr`
 * vectors per row as (row, vector column) without a division per item
 * (64-bit divisions per item made the 128x128 kernel issue-bound). */
struct tile_walk {
  int rr, cc, drr, dcc, vpr;
  __device__ tile_walk(int vpr_) : vpr(vpr_) {
    rr = threadIdx.x / vpr_;
    cc = threadIdx.x - rr * vpr_;
    drr = TILE_THREADS / vpr_;
    dcc = TILE_THREADS - drr * vpr_;
  }
  __device__ void next() {
    rr += drr;
    cc += dcc;
    if (cc >= vpr) cc -= vpr, rr++;
  }
};

template <typename T, int VPT>
__global__ void __launch_bounds__(TILE_THREADS) quant_tiles_kernel(llmk_qargs a) {
  constexpr int V = llmk_elem<T>::VEC;
  __shared__ float red[32];
  const int64_t g = blockIdx.x, gi = g / a.ngc, gj = g - gi * a.ngc;
  const int64_t r0 = gi * a.gm, c0 = gj * a.gk;
  /* tile dims fit in int: the API limits block sizes to 2^31 - 1 */
  const int rows = (int)min(a.gm, a.M - r0), cols = (int)min(a.gk, a.K - c0);
  const int vpr = (cols + V - 1) / V;
  const T *xs = static_cast<const T *>(a.x) + r0 * a.ldx + c0;
  uint8_t *qs = a.q + r0 * a.ldq + c0;

  float amax = 0.0f;
  uint4 raw[VPT > 0 ? VPT : 1];
  tile_walk w(vpr);
  if (VPT > 0) {
#pragma unroll
    for (int j = 0; j < VPT; j++, w.next()) {
      raw[j] = w.rr < rows ? llmk_load_raw<T>(xs + w.rr * a.ldx, (int64_t)w.cc * V, cols, a.vec_ld)
                           : make_uint4(0, 0, 0, 0);
      amax = llmk_raw_amax<T>(raw[j], amax);
    }
  } else {
    for (; w.rr < rows; w.next())
      amax = llmk_raw_amax<T>(llmk_load_raw<T>(xs + w.rr * a.ldx, (int64_t)w.cc * V, cols, a.vec_ld), amax);
  }
  amax = llmk_team_max(amax, TILE_THREADS, red);
  const float s = llmk_scale_from_amax<false>(amax, a.ub);
  const float inv = __fdiv_rn(1.0f, s);
  if (threadIdx.x == 0) a.scale[g] = s;
  tile_walk v(vpr);
  if (VPT > 0) {
#pragma unroll
    for (int j = 0; j < VPT; j++, v.next())
      if (v.rr < rows) llmk_quant_store<T, false>(qs + v.rr * a.ldq, (int64_t)v.cc * V, cols, a.vec_st, raw[j], inv);
  } else {
    for (; v.rr < rows; v.next())
      llmk_quant_store<T, false>(qs + v.rr * a.ldq, (int64_t)v.cc * V, cols, a.vec_st,
                                 llmk_load_raw<T>(xs + v.rr * a.ldx, (int64_t)v.cc * V, cols, a.vec_ld), inv);
  }
}

template <typename T>
static void launch_vpt(llmk_qargs a, int vpt, unsigned grid, cudaStream_t st) {
  switch (vpt) {
    case 1: quant_tiles_kernel<T, 1><<<grid, TILE_THREADS, 0, st>>>(a); break;
    case 2: quant_tiles_kernel<T, 2><<<grid, TILE_THREADS, 0, st>>>(a); break;
    case 4: quant_tiles_kernel<T, 4><<<grid, TILE_THREADS, 0, st>>>(a); break;
    case 8: quant_tiles_kernel<T, 8><<<grid, TILE_THREADS, 0, st>>>(a); break;
    default: quant_tiles_kernel<T, 0><<<grid, TILE_THREADS, 0, st>>>(a); break;
  }
}

llmk_status llmk_launch_quant_tiles(llmk_dtype xt, llmk_qargs a, int vpt, cudaStream_t st) {
  const int64_t groups = ((a.M + a.gm - 1) / a.gm) * a.ngc;
  if (groups > INT32_MAX)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, "llmk_quantize_fp8",
                          "too many blocks (%lld) for one launch", (long long)groups);
  if (xt == LLMK_F32) launch_vpt<float>(a, vpt, (unsigned)groups, st);
  else if (xt == LLMK_F16) launch_vpt<__half>(a, vpt, (unsigned)groups, st);
  else launch_vpt<__nv_bfloat16>(a, vpt, (unsigned)groups, st);
  return llmk_launch_check("llmk_quantize_fp8", "quant_tiles_kernel");
}
