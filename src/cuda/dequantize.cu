/* Dequantize, any granularity: y = decode(q) * scale(group), fp32 multiply,
 * one rounding to y's type. Row teams over a grid-stride loop; each thread
 * converts 8 codes (one 8-byte load) at a time. Decoding uses the same
 * bit-exact functions as the CPU so results agree bit for bit (NaN codes
 * give NaN; its payload is not specified). */
#include "cuda/common.cuh"
#include "cuda/launch.h"

template <typename Y> __device__ __forceinline__ void store_y(Y *p, float v);
template <> __device__ __forceinline__ void store_y<float>(float *p, float v) { *p = v; }
template <> __device__ __forceinline__ void store_y<uint16_t>(uint16_t *p, float v) {
  *p = llmk_bf16_from_f32(v);
}

template <bool E5M2, typename Y>
__global__ void __launch_bounds__(512) dequant_kernel(llmk_dqargs a) {
  const int tpr = a.tpr, t = threadIdx.x % tpr, teams = blockDim.x / tpr;
  const bool one_scale_per_vec = a.gk % 8 == 0;
  for (int64_t r = (int64_t)blockIdx.x * teams + threadIdx.x / tpr; r < a.M;
       r += (int64_t)gridDim.x * teams) {
    const uint8_t *qr = a.q + r * a.ldq;
    Y *yr = static_cast<Y *>(a.y) + r * a.ldy;
    const float *srow = a.scale + (r / a.gm) * a.ngc;
    for (int64_t c = (int64_t)t * 8; c < a.K; c += (int64_t)tpr * 8) {
      uint8_t b[8];
      const bool full = a.vec && c + 8 <= a.K;
      if (full) {
        const uint2 u = *reinterpret_cast<const uint2 *>(qr + c);
#pragma unroll
        for (int i = 0; i < 8; i++) b[i] = (uint8_t)((i < 4 ? u.x : u.y) >> (8 * (i % 4)));
      } else {
#pragma unroll
        for (int i = 0; i < 8; i++) b[i] = c + i < a.K ? qr[c + i] : 0;
      }
      const float s0 = srow[c / a.gk];
      float v[8];
#pragma unroll
      for (int i = 0; i < 8; i++) {
        const float s = one_scale_per_vec ? s0 : srow[min(c + i, a.K - 1) / a.gk];
        v[i] = __fmul_rn(E5M2 ? llmk_e5m2_to_f32(b[i]) : llmk_e4m3_to_f32(b[i]), s);
      }
      if (full && sizeof(Y) == 2) {
        uint4 o;
        o.x = llmk_bf16_from_f32(v[0]) | ((uint32_t)llmk_bf16_from_f32(v[1]) << 16);
        o.y = llmk_bf16_from_f32(v[2]) | ((uint32_t)llmk_bf16_from_f32(v[3]) << 16);
        o.z = llmk_bf16_from_f32(v[4]) | ((uint32_t)llmk_bf16_from_f32(v[5]) << 16);
        o.w = llmk_bf16_from_f32(v[6]) | ((uint32_t)llmk_bf16_from_f32(v[7]) << 16);
        *reinterpret_cast<uint4 *>(yr + c) = o;
      } else if (full) {
        float4 *o = reinterpret_cast<float4 *>(yr + c);
        o[0] = make_float4(v[0], v[1], v[2], v[3]);
        o[1] = make_float4(v[4], v[5], v[6], v[7]);
      } else {
#pragma unroll
        for (int i = 0; i < 8; i++)
          if (c + i < a.K) store_y<Y>(yr + c + i, v[i]);
      }
    }
  }
}

llmk_status llmk_launch_dequant(bool e5m2, llmk_dtype yt, llmk_dqargs a, llmk_team_cfg cfg,
                                int grid, cudaStream_t st) {
  a.tpr = cfg.tpr;
  if (yt == LLMK_F32)
    e5m2 ? dequant_kernel<true, float><<<grid, cfg.block, 0, st>>>(a)
         : dequant_kernel<false, float><<<grid, cfg.block, 0, st>>>(a);
  else
    e5m2 ? dequant_kernel<true, uint16_t><<<grid, cfg.block, 0, st>>>(a)
         : dequant_kernel<false, uint16_t><<<grid, cfg.block, 0, st>>>(a);
  return llmk_launch_check("llmk_dequantize_fp8", "dequant_kernel");
}
