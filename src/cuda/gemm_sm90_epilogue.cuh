/* The epilogue of llmk's Hopper GEMM kernel (gemm_sm90.cuh): per 8-column
 * group of a thread's accumulator fragment, the scales and bias of its
 * columns (from global memory or the tile's staged copy) and the scaled,
 * rounded stores (direct, into the TMA staging tile, or transposed for
 * swapped decode tiles), in docs/DESIGN.md's order of operations. */
#ifndef LLMK_GEMM_SM90_EPILOGUE_CUH
#define LLMK_GEMM_SM90_EPILOGUE_CUH

#include "cuda/gemm_sm90_layout.cuh"

/* Column scale and bias of output column c (ws0 for tensor-wise scales; 0
 * past N): bias is element-aligned only, hence scalar loads. */
__device__ __forceinline__ void llmk_gemm_col(const llmk_gemm_args &a, int c, float ws0, float &w, float &b) {
  const bool in = c < a.N;
  w = a.row_scales ? (in ? a.ws[c] : 0.0f) : ws0;
  b = 0.0f;
  if (a.bias && in)
    b = a.bias_f32 ? ((const float *)a.bias)[c] : __bfloat162float(((const __nv_bfloat16 *)a.bias)[c]);
}

/* One plane's product of a two-plane output, as llmk.h orders it:
 * bf16((acc * xs) * ws), back in fp32 for the sum of the planes. */
__device__ __forceinline__ float llmk_gemm_plane(float acc, float xs, float ws) {
  return __bfloat162float(__float2bfloat16_rn(__fmul_rn(__fmul_rn(acc, xs), ws)));
}

/* Scales and bias of a thread's two columns in 8-column group j. */
struct llmk_gemm_cols {
  float w0, w1, b0, b1;
};

__device__ __forceinline__ llmk_gemm_cols llmk_gemm_cols_global(const llmk_gemm_args &a, int j, int n0, float ws0) {
  const int c = n0 + 8 * j + 2 * (threadIdx.x % 4);
  llmk_gemm_cols q;
  llmk_gemm_col(a, c, ws0, q.w0, q.b0);
  llmk_gemm_col(a, c + 1, ws0, q.w1, q.b1);
  return q;
}

/* The same from the tile's staged copy (cs: BN scales, then BN biases). */
template <int BN>
__device__ __forceinline__ llmk_gemm_cols llmk_gemm_cols_staged(const float *cs, int j) {
  const int c = 8 * j + 2 * (threadIdx.x % 4);
  const float2 w = *reinterpret_cast<const float2 *>(cs + c), b = *reinterpret_cast<const float2 *>(cs + BN + c);
  return {w.x, w.y, b.x, b.y};
}

/* Epilogue of 8-column group j of a thread's fragment (v = its 4
 * accumulators: rows r_lo, r_hi x columns c, c + 1), direct bf16x2 stores
 * or (TMA_EPI) writes into the 128-byte-swizzled staging tile. Two planes
 * (a.planes == 2): the rows are one output row's hi and lo planes, summed. */
template <bool TMA_EPI>
__device__ __forceinline__ void llmk_gemm_epi_group(const llmk_gemm_args &a, const float (&v)[4], int j, int n0,
                                                    int r_lo, int rr_lo, float rs_lo, float rs_hi,
                                                    const llmk_gemm_cols &q, uint8_t *stage_y) {
  const int lane = threadIdx.x % 32;
  const int c = n0 + 8 * j + 2 * (lane % 4);
  if (!TMA_EPI && c >= a.N) return; /* N % 8 == 0: c < N implies c + 1 < N */
  const float w0 = q.w0, w1 = q.w1, b0 = q.b0, b1 = q.b1;
  if (a.planes == 2) {
    /* r_lo = 2m: v[0..1] the hi plane of output row m, v[2..3] its lo plane
     * (rs_lo, rs_hi their scales); each plane's product rounded to bf16,
     * then their fp32 sum [+ bias], rounded once (llmk.h) */
    float v0 = __fadd_rn(llmk_gemm_plane(v[0], rs_lo, w0), llmk_gemm_plane(v[2], rs_hi, w0));
    float v1 = __fadd_rn(llmk_gemm_plane(v[1], rs_lo, w1), llmk_gemm_plane(v[3], rs_hi, w1));
    if (a.bias) v0 = __fadd_rn(v0, b0), v1 = __fadd_rn(v1, b1);
    const __nv_bfloat162 o = __floats2bfloat162_rn(v0, v1);
    if constexpr (TMA_EPI) {
      /* the block's 64 plane rows are 32 output rows: row (rr_lo + lane / 4) / 2 of a 32-row box */
      const int rr = (rr_lo + lane / 4) / 2;
      uint8_t *p = stage_y + (j / 8) * (64 * 128) + rr * 128 + (((j % 8) ^ (rr % 8)) << 4) + 4 * (lane % 4);
      *reinterpret_cast<__nv_bfloat162 *>(p) = o;
    } else if (r_lo < a.M) {
      *reinterpret_cast<__nv_bfloat162 *>(a.y + (int64_t)(r_lo / 2) * a.ldy + c) = o;
    }
    return;
  }
#pragma unroll
  for (int h = 0; h < 2; h++) {
    const float x_s = h ? rs_hi : rs_lo;
    float v0 = __fmul_rn(__fmul_rn(v[2 * h], x_s), w0);
    float v1 = __fmul_rn(__fmul_rn(v[2 * h + 1], x_s), w1);
    if (a.bias) v0 = __fadd_rn(v0, b0), v1 = __fadd_rn(v1, b1); /* no bias: no +0, as the CPU */
    const __nv_bfloat162 o = __floats2bfloat162_rn(v0, v1);
    if constexpr (TMA_EPI) {
      /* 64-column box j/8, row rr: 16-byte chunk (j%8) XOR (rr%8), as TMA's 128-byte swizzle reads it */
      const int rr = rr_lo + 8 * h;
      uint8_t *p = stage_y + (j / 8) * (64 * 128) + rr * 128 + (((j % 8) ^ (rr % 8)) << 4) + 4 * (lane % 4);
      *reinterpret_cast<__nv_bfloat162 *>(p) = o;
    } else {
      const int r = r_lo + 8 * h;
      if (r < a.M) *reinterpret_cast<__nv_bfloat162 *>(a.y + (int64_t)r * a.ldy + c) = o;
    }
  }
}

/* SWAP epilogue of 8-column group j: fragment rows r_lo, r_lo + 8 are
 * output columns n (weights), fragment columns c, c + 1 are output rows m
 * (tokens); v = {(r_lo, c), (r_lo, c+1), (r_lo+8, c), (r_lo+8, c+1)}. The
 * same order of operations as llmk_gemm_epi_group: (acc * xs[m]) * ws[n]
 * + bias[n]. Two planes (a.planes == 2): c is even (tiles and groups start
 * at multiples of 8), so c and c + 1 are the hi and lo plane rows of output
 * row c / 2, and the thread stores bf16((P_hi + P_lo) [+ bias]) with each
 * P = bf16((acc * xs) * ws), llmk.h's two-plane numerics. */
__device__ __forceinline__ void llmk_gemm_epi_group_swap(const llmk_gemm_args &a, const float (&v)[4], int j, int m0,
                                                         int r_lo, float ws_lo, float ws_hi) {
  const int lane = threadIdx.x % 32;
  const int c = m0 + 8 * j + 2 * (lane % 4);
#pragma unroll
  for (int h = 0; h < 2; h++) {
    const int n = r_lo + 8 * h;
    if (n >= a.N) continue;
    const float w_s = h ? ws_hi : ws_lo;
    float b = 0.0f;
    if (a.bias) b = a.bias_f32 ? ((const float *)a.bias)[n] : __bfloat162float(((const __nv_bfloat16 *)a.bias)[n]);
    if (a.planes == 2) {
      if (c >= a.M) continue; /* M even: c < M implies c + 1 < M */
      float o = __fadd_rn(llmk_gemm_plane(v[2 * h], a.xs[c], w_s), llmk_gemm_plane(v[2 * h + 1], a.xs[c + 1], w_s));
      if (a.bias) o = __fadd_rn(o, b);
      a.y[(int64_t)(c / 2) * a.ldy + n] = __float2bfloat16_rn(o);
      continue;
    }
#pragma unroll
    for (int e = 0; e < 2; e++) {
      const int m = c + e;
      if (m >= a.M) continue;
      /* block scales were applied per slice: their epilogue scales are 1 */
      float o = __fmul_rn(__fmul_rn(v[2 * h + e], a.unscaled || a.block ? 1.0f : a.xs[a.row_scales ? m : 0]), w_s);
      if (a.bias) o = __fadd_rn(o, b);
      a.y[(int64_t)m * a.ldy + n] = __float2bfloat16_rn(o);
    }
  }
}

#endif
