/* Device pieces shared by the RoPE kernel (rope.cu) and the KV-cache write
 * kernel (kv_write.cu).
 *
 * Work layout of both: a head of D elements (D = 64, 128 or 256) belongs to
 * a team of D / 8 consecutive lanes of one warp; lane t of a team holds
 * elements [8 t, 8 t + 8) in registers (one 16-byte vector of bf16, two of
 * f32). Reductions over a head or an INT4 group are xor shuffles inside the
 * team. A CTA owns a few whole tokens; their cosines and sines are computed
 * once per (token, pair) into shared memory and read by every head.
 *
 * Every shuffle and __syncwarp() here is executed by all 32 lanes of the
 * warp with the full mask, whatever a lane's item (Q, K, V head, or none):
 * callers keep those calls outside any per-item condition. */
#ifndef LLMK_CUDA_ROPE_DEV_CUH
#define LLMK_CUDA_ROPE_DEV_CUH

#include "core/attn.h"
#include "cuda/common.cuh"

#define LLMK_ROPE_MAX_TPC 16 /* tokens per CTA */
#define LLMK_FULL_MASK 0xffffffffu

/* Launch geometry of both kernels, T tokens of `heads` rows each, tpr lanes
 * per row: for prefill, CTAs of about 256 threads owning whole tokens,
 * about `per_lane` rows in flight per lane; with fewer than two CTAs per SM
 * that way (decode), one CTA per token with every row in flight, at most
 * 512 threads. tpc: tokens per CTA; teams: rows processed at once. */
struct llmk_rows_grid {
  int64_t tpc, grid, teams;
};
static inline llmk_rows_grid llmk_rows_grid_of(int64_t T, int64_t heads, int tpr, int per_lane, int sm_count) {
  const int max_teams = 512 / tpr, want_teams = 256 / tpr;
  int64_t tpc = (int64_t)want_teams * per_lane / heads;
  if (tpc < 1) tpc = 1;
  if (tpc > LLMK_ROPE_MAX_TPC) tpc = LLMK_ROPE_MAX_TPC;
  if (tpc > T) tpc = T;
  llmk_rows_grid r = {tpc, (T + tpc - 1) / tpc, (tpc * heads + per_lane - 1) / per_lane};
  if (r.grid < 2 * (int64_t)sm_count) r = {1, T, heads};
  if (r.teams > max_teams) r.teams = max_teams;
  return r;
}

/* The rotation as the kernels see it (the plan's frequencies stay in the
 * kernel parameters, read through a __grid_constant__ reference). */
struct llmk_rope_dev {
  int n_pairs; /* R / 2; 0: no rotation */
  int neox;
  int shfl;    /* neox with R / 2 a multiple of 8: partners by shuffle, else through xbuf */
};

/* cos and sin (fp32) of the angle (double)pos * f: fp64 angle, fp64 sincos,
 * each rounded once to fp32 (include/llmk.h, llmk_rope_desc). */
__device__ __forceinline__ float2 llmk_rope_cs(int64_t pos, double f) {
  double s, c;
  sincos(__dmul_rn((double)pos, f), &s, &c);
  return make_float2(__double2float_rn(c), __double2float_rn(s));
}

/* Fills cs[k * n_pairs + i] (k < ntok) with the cos/sin of token k's
 * position pos[k] (pos: shared) at frequency inv_freq[i]. Whole CTA. */
__device__ __forceinline__ void llmk_rope_fill(float2 *cs, const int64_t *pos, int ntok,
                                               const double *inv_freq, int n_pairs) {
  const int n = ntok * n_pairs;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const int k = i / n_pairs, p = i - k * n_pairs;
    cs[i] = llmk_rope_cs(pos[k], inv_freq[p]);
  }
}

/* y_a = x_a c - x_b s, y_b = x_a s + x_b c, every product rounded to fp32. */
__device__ __forceinline__ float llmk_rot_a(float a, float b, float2 cs) {
  return __fsub_rn(__fmul_rn(a, cs.x), __fmul_rn(b, cs.y));
}
__device__ __forceinline__ float llmk_rot_b(float a, float b, float2 cs) {
  return __fadd_rn(__fmul_rn(a, cs.y), __fmul_rn(b, cs.x));
}

/* Rotates elements [8 t, 8 t + 8) of a head in place when `rot` (cs: the
 * token's table of n_pairs = half (cos, sin)); returns a mask of the
 * elements that rotated (bit j: element 8 t + j). Neox pairs (i, i + R/2)
 * take the partner element from another lane: by shuffle when R/2 is a
 * multiple of 8 (`shfl`: every element of a lane has its partner in the
 * same slot of one lane), else through xbuf (the team's 8 tpr floats of
 * shared memory). All 32 lanes of the warp must call it (shuffles,
 * __syncwarp), whatever their `rot`. */
__device__ __forceinline__ unsigned llmk_rope_apply(float (&f)[8], bool rot, int t, int tpr,
                                                    int half, bool neox, bool shfl, float *xbuf,
                                                    const float2 *cs) {
  const int d0 = 8 * t;
  unsigned m = 0;
  if (!neox) {
    if (rot) {
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const int i = d0 / 2 + j;
        if (i < half) {
          const float2 c = cs[i];
          const float a = f[2 * j], b = f[2 * j + 1];
          f[2 * j] = llmk_rot_a(a, b, c);
          f[2 * j + 1] = llmk_rot_b(a, b, c);
          m |= 3u << (2 * j);
        }
      }
    }
    return m;
  }
  if (shfl) {
    const int q = half / 8; /* lanes per half */
    const bool first = t < q, second = !first && t < 2 * q;
    const int src = ((threadIdx.x & 31) & ~(tpr - 1)) | (first ? t + q : second ? t - q : t);
    const float2 *c = cs + (first ? d0 : d0 - 8 * q);
    rot = rot && (first || second);
#pragma unroll
    for (int j = 0; j < 8; j++) {
      /* in lockstep: the partner's element j is read before it is rotated */
      const float pj = __shfl_sync(LLMK_FULL_MASK, f[j], src);
      if (rot) f[j] = first ? llmk_rot_a(f[j], pj, c[j]) : llmk_rot_b(pj, f[j], c[j]);
    }
    return rot ? 0xFFu : 0u;
  }
  float4 *w = reinterpret_cast<float4 *>(xbuf + d0);
  w[0] = make_float4(f[0], f[1], f[2], f[3]);
  w[1] = make_float4(f[4], f[5], f[6], f[7]);
  __syncwarp();
  if (rot) {
#pragma unroll
    for (int j = 0; j < 8; j++) {
      const int d = d0 + j;
      if (d < half) {
        f[j] = llmk_rot_a(f[j], xbuf[d + half], cs[d]);
        m |= 1u << j;
      } else if (d < 2 * half) {
        f[j] = llmk_rot_b(xbuf[d - half], f[j], cs[d - half]);
        m |= 1u << j;
      }
    }
  }
  __syncwarp(); /* the buffer is rewritten by the next item */
  return m;
}

/* ---- 8-element vectors --------------------------------------------------- */

/* float -> bf16 bits, nearest even, NaN as src/fp8/fp8.h (sign and payload
 * kept, quietened): the hardware conversion, with fp8.h's where a NaN is. */
__device__ __forceinline__ uint32_t llmk_bf16x2(float lo, float hi) {
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  if (lo != lo || hi != hi) r = llmk_bf16_from_f32(lo) | (uint32_t)llmk_bf16_from_f32(hi) << 16;
  return r;
}

__device__ __forceinline__ uint4 llmk_pack_bf16x8(const float (&f)[8]) {
  return make_uint4(llmk_bf16x2(f[0], f[1]), llmk_bf16x2(f[2], f[3]), llmk_bf16x2(f[4], f[5]),
                    llmk_bf16x2(f[6], f[7]));
}

/* 16 bytes at p (16-byte aligned when vec; else 2-byte aligned, read as
 * 16-bit halves). Plain loads: rope may run in place. */
__device__ __forceinline__ uint4 llmk_ld16(const void *p, bool vec) {
  if (vec) return *reinterpret_cast<const uint4 *>(p);
  const uint16_t *e = static_cast<const uint16_t *>(p);
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; i++) w[i] = e[2 * i] | (uint32_t)e[2 * i + 1] << 16;
  return make_uint4(w[0], w[1], w[2], w[3]);
}

__device__ __forceinline__ void llmk_st16(void *p, const uint4 &u, bool vec) {
  if (vec) {
    *reinterpret_cast<uint4 *>(p) = u;
    return;
  }
  uint16_t *e = static_cast<uint16_t *>(p);
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    e[2 * i] = (uint16_t)w[i];
    e[2 * i + 1] = (uint16_t)(w[i] >> 16);
  }
}

#endif
