/* llmk_cuda_rmsnorm and llmk_cuda_silu_mul_quant: the kernels of llmk.h's
 * "Normalization and activation" section, bitwise the CPU reference
 * (src/cpu/norm.c) through the scalar helpers of src/core/norm.h.
 *
 * Both kernels follow the row-team shape of quantize_rows.cu: a team of
 * `tpr` threads (a power of two) owns one row (rmsnorm) or one row segment
 * (silu_mul_quant: the row, or a 1 x 128 group), VPT 16-byte vectors of 8
 * bf16 per thread, held in registers between the passes. Small rows share
 * a CTA (256 / tpr rows each); long rows get up to 512 threads. Rows too
 * long for registers (VPT == 0: more than 4096 vectors) are streamed, and
 * re-read (mostly from L2) for each further pass.
 *
 * rmsnorm: pass 1 loads x (and the residual), forms s, writes residual_out
 * and sums s^2 in fp64; the team reduces ss in a fixed order and computes
 * r in fp64 once (team_rms), and pass 2 forms n = bf16((s * r) * w). A bf16 y is stored at
 * once; for an e4m3 y the team reduces max |n| and pass 3 quantizes from
 * the registers. The streamed form reads s back from residual_out (or x):
 * each thread reads only elements it wrote itself, so residual_out =
 * residual (in place) is safe, and residual loads are plain (coherent)
 * loads, not __ldg.
 *
 * silu_mul_quant: a = bf16(g / (1 + exp(-g)) * u) per element, the fp64
 * value (CUDA's fp64 exp), reached for most elements through an fp32
 * evaluation whose error bound proves the same bf16 (silu1 below), max |a|
 * over the team, then the quantization of llmk_quantize_fp8 (scale_ub
 * included).
 *
 * Knobs (environment, src/core/env.c): LLMK_NORM_TPR and LLMK_SILU_TPR
 * force the team size, LLMK_SILU_FP64=1 the fp64 formula for every element
 * (see forced_tpr below). */
#include "core/env.h"
#include "core/norm.h"
#include "cuda/common.cuh"

#include <stdlib.h>

namespace {

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

int pow2_ceil(int64_t n) {
  int p = 1;
  while (p < n && p < 1024) p *= 2;
  return p;
}

/* ---- bf16 vectors of 8 ----------------------------------------------------- */

/* Elements [c, c + 8) of a bf16 row as one raw vector; elements at or past
 * len read as 0. `vec`: the row allows 16-byte accesses (c is a multiple
 * of 8). `nc`: read-only for the kernel's lifetime (may use __ldg). */
__device__ __forceinline__ uint4 ld8(const uint16_t *row, int64_t c, int64_t len, bool vec, bool nc) {
  if (vec && c + 8 <= len) {
    const uint4 *p = reinterpret_cast<const uint4 *>(row + c);
    return nc ? __ldg(p) : *p;
  }
  uint32_t w[4] = {0, 0, 0, 0};
#pragma unroll
  for (int i = 0; i < 8; i++)
    if (c + i < len) w[i / 2] |= (uint32_t)row[c + i] << (16 * (i % 2));
  return make_uint4(w[0], w[1], w[2], w[3]);
}

/* Stores elements [c, min(c + 8, len)) of a bf16 row. */
__device__ __forceinline__ void st8(uint16_t *row, int64_t c, int64_t len, bool vec, const uint4 &u) {
  if (vec && c + 8 <= len) {
    *reinterpret_cast<uint4 *>(row + c) = u;
    return;
  }
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 8; i++)
    if (c + i < len) row[c + i] = (uint16_t)(w[i / 2] >> (16 * (i % 2)));
}

__device__ __forceinline__ uint32_t pack2(uint16_t lo, uint16_t hi) { return lo | (uint32_t)hi << 16; }

/* bf16(lo) | bf16(hi) << 16, nearest even (cvt rounds as llmk_bf16_from_f32
 * does, subnormals included); NaNs become LLMK_NORM_BF16_NAN as on the CPU. */
__device__ __forceinline__ uint32_t bf16x2(float lo, float hi) {
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  if (lo != lo || hi != hi) r = pack2(llmk_norm_bf16(lo), llmk_norm_bf16(hi));
  return r;
}

/* s = bf16(x + residual), element-wise (fp32 add). */
__device__ __forceinline__ uint4 add8(const uint4 &xv, const uint4 &rv) {
  float a[8], b[8];
  llmk_unpack_bf16x8(xv, a);
  llmk_unpack_bf16x8(rv, b);
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; i++)
    w[i] = bf16x2(__fadd_rn(a[2 * i], b[2 * i]), __fadd_rn(a[2 * i + 1], b[2 * i + 1]));
  return make_uint4(w[0], w[1], w[2], w[3]);
}

/* ss + sum of the squares (exact in fp64, so fma = multiply then add). */
__device__ __forceinline__ double sumsq8(const uint4 &sv, double ss) {
  float f[8];
  llmk_unpack_bf16x8(sv, f);
#pragma unroll
  for (int i = 0; i < 8; i++) {
    const double d = (double)f[i];
    ss = __fma_rn(d, d, ss);
  }
  return ss;
}

/* n = bf16((s * r) * w), element-wise. */
__device__ __forceinline__ uint4 norm8(const uint4 &sv, float r, const uint4 &wv) {
  float s[8], w[8];
  llmk_unpack_bf16x8(sv, s);
  llmk_unpack_bf16x8(wv, w);
  uint32_t o[4];
#pragma unroll
  for (int i = 0; i < 4; i++)
    o[i] = bf16x2(__fmul_rn(__fmul_rn(s[2 * i], r), w[2 * i]), __fmul_rn(__fmul_rn(s[2 * i + 1], r), w[2 * i + 1]));
  return make_uint4(o[0], o[1], o[2], o[3]);
}

/* a = bf16(g / (1 + exp(-g)) * u), the fp64 value of llmk.h, rounded once.
 *
 * The fp64 formula costs ~100 fp64 instructions. Most elements take an
 * exact shortcut instead: the same formula in fp32 (expf, at most 2 ulp;
 * three IEEE roundings) is within 2^-21 relative, 8 fp32 ulps, of the
 * exact value, and the fp64 value within 2^-50 of it. Where the fp32
 * value lies more than 64 fp32 ulps (2^-17 relative) from the midpoint
 * between two bf16 values, both round to the same bf16, which is then
 * taken from fp32. The shortcut is used only where that bound holds:
 * g = 0 or 2^-60 <= |g| <= 64 (so exp neither overflows nor underflows and
 * the quotient is a normal number), u finite, and the result normal with
 * 2^-100 <= |a| <= 2^100, or exactly zero because g or u is. Everything
 * else (about 1 element in 500 of normal data, and non-finite or extreme
 * inputs) takes the fp64 formula. `exact` forces the fp64 formula for all
 * elements (LLMK_SILU_FP64=1, for checking). */
__device__ __forceinline__ uint16_t silu1(float g, float u, bool exact) {
#ifdef __USE_FAST_MATH__
  exact = true; /* expf would be __expf, outside the bound above */
#endif
  const float ag = fabsf(g);
  if (!exact && (g == 0.0f || (ag >= 0x1p-60f && ag <= 64.0f)) && fabsf(u) <= FLT_MAX) {
    const float a = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
    const float aa = fabsf(a);
    const uint32_t low = __float_as_uint(a) & 0xFFFFu;
    if (a == 0.0f ? (g == 0.0f || u == 0.0f)
                  : aa >= 0x1p-100f && aa <= 0x1p100f && (low < 0x8000u - 64u || low > 0x8000u + 64u))
      return llmk_bf16_from_f32(a); /* not a NaN, not a tie */
  }
  return llmk_silu_mul_bf16(g, u);
}

__device__ __forceinline__ uint4 silu8(const uint4 &gv, const uint4 &uv, bool exact) {
  float g[8], u[8];
  llmk_unpack_bf16x8(gv, g);
  llmk_unpack_bf16x8(uv, u);
  uint32_t o[4];
#pragma unroll
  for (int i = 0; i < 4; i++) o[i] = pack2(silu1(g[2 * i], u[2 * i], exact), silu1(g[2 * i + 1], u[2 * i + 1], exact));
  return make_uint4(o[0], o[1], o[2], o[3]);
}

/* r = (float)(1 / sqrt(ss / K + eps)) in fp64, as llmk.h states. */
__device__ __forceinline__ float rms_factor(double ss, int64_t K, float eps) {
  return __double2float_rn(__ddiv_rn(1.0, __dsqrt_rn(__dadd_rn(__ddiv_rn(ss, (double)K), (double)eps))));
}

/* r of each team of tpr threads from the threads' partial sums of squares.
 * Every thread of the CTA calls it. The sum is formed in one fixed order
 * (xor butterflies within a warp, every lane gets the same bits; then the
 * warps of a team in order), and for teams wider than a warp r is computed
 * by the team's first thread only and shared (two barriers), so the fp64
 * division and square root run once per row rather than once per warp. */
__device__ __forceinline__ float team_rms(double v, int tpr, int64_t K, float eps, double *red, float *rsh) {
  const int width = tpr < 32 ? tpr : 32;
  for (int o = width / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (tpr <= 32) return rms_factor(v, K, eps);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  const int wpt = tpr / 32, w0 = (warp / wpt) * wpt;
  if (threadIdx.x % tpr == 0) {
    double s = red[w0];
    for (int i = 1; i < wpt; i++) s += red[w0 + i];
    rsh[warp / wpt] = rms_factor(s, K, eps);
  }
  __syncthreads();
  return rsh[warp / wpt];
}

/* Slot i of thread t's VPT vectors -> vector index within the row (as in
 * quantize_rows.cu: even VPT gives each thread adjacent pairs, so FP8
 * codes of a pair go out in one 16-byte store). */
template <int VPT>
__device__ __forceinline__ int64_t slot_vec(int i, int t, int tpr) {
  if (VPT % 2 == 0) return (int64_t)(i / 2) * 2 * tpr + 2 * t + (i % 2);
  return t + (int64_t)i * tpr;
}

/* Quantizes the register-held bf16 vectors v with inv and stores them. */
template <int VPT>
__device__ __forceinline__ void store_codes(uint8_t *q, int t, int tpr, int64_t len, bool vst, bool vst2,
                                            const uint4 (&v)[VPT], float inv) {
  if (VPT % 2 == 0) {
#pragma unroll
    for (int i = 0; i < VPT; i += 2) {
      const int64_t c = slot_vec<VPT>(i, t, tpr) * 8;
      if (c < len) llmk_quant_store_pair<__nv_bfloat16, false>(q, c, len, vst, vst2, v[i], v[i + 1], inv);
    }
  } else {
#pragma unroll
    for (int i = 0; i < VPT; i++) {
      const int64_t c = slot_vec<VPT>(i, t, tpr) * 8;
      if (c < len) llmk_quant_store<__nv_bfloat16, false>(q, c, len, vst, v[i], inv);
    }
  }
}

/* The lo plane's input for 8 register-held bf16 values n: d = n - y * scale,
 * y the e4m3 value that the hi plane stores for n * inv (fp32 multiply,
 * then subtract, as the CPU reference). */
__device__ __forceinline__ void lo8(const uint4 &nv, float inv, float scale, float (&d)[8]) {
  float f[8];
  llmk_unpack_bf16x8(nv, f);
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const uint16_t c = llmk_cvt_fp8x2<false>(__fmul_rn(f[2 * i], inv), __fmul_rn(f[2 * i + 1], inv));
    d[2 * i] = __fsub_rn(f[2 * i], __fmul_rn(llmk_e4m3_to_f32((uint8_t)c), scale));
    d[2 * i + 1] = __fsub_rn(f[2 * i + 1], __fmul_rn(llmk_e4m3_to_f32((uint8_t)(c >> 8)), scale));
  }
}

/* ---- rmsnorm ------------------------------------------------------------- */

struct norm_args {
  const uint16_t *x, *res, *w;
  uint16_t *res_out;
  void *y;
  float *y_scale;
  int64_t ldx, ldr, ldro, ldy; /* elements */
  int64_t M, K;
  float eps;
  int tpr;
  int planes;           /* e4m3 y: 1, or 2 (hi at row 2m, lo at 2m + 1; scales likewise) */
  bool vx, vr, vro, vw; /* 16-byte accesses of x, residual, residual_out, weight */
  bool vy;              /* bf16 y: 16-byte stores; e4m3 y: 8-byte stores */
  bool vy2;             /* e4m3 y: 16-byte stores of vector pairs */
};

template <int VPT, bool RES, bool FP8>
__global__ void __launch_bounds__(VPT >= 8 || VPT == 0 ? 512 : 1024, 1) rmsnorm_kernel(const __grid_constant__ norm_args a) {
  __shared__ double red_d[32];
  __shared__ float red_f[32], red_r[32], red_lo[32];
  const int tpr = a.tpr, t = threadIdx.x % tpr;
  const int64_t row = (int64_t)blockIdx.x * (blockDim.x / tpr) + threadIdx.x / tpr;
  const bool active = row < a.M;
  const int64_t m = active ? row : 0, len = active ? a.K : 0;
  const uint16_t *xr = a.x + m * a.ldx;
  const uint16_t *rr = RES ? a.res + m * a.ldr : nullptr;
  uint16_t *ror = RES ? a.res_out + m * a.ldro : nullptr;

  /* pass 1: s (and residual_out), ss */
  double ss = 0.0;
  uint4 v[VPT > 0 ? VPT : 1];
  if (VPT > 0) {
#pragma unroll
    for (int i = 0; i < VPT; i++) {
      const int64_t c = slot_vec<VPT>(i, t, tpr) * 8;
      v[i] = make_uint4(0, 0, 0, 0);
      if (c < len) {
        v[i] = ld8(xr, c, len, a.vx, true);
        if (RES) {
          v[i] = add8(v[i], ld8(rr, c, len, a.vr, false));
          st8(ror, c, len, a.vro, v[i]);
        }
        ss = sumsq8(v[i], ss);
      }
    }
  } else {
    for (int64_t c = (int64_t)t * 8; c < len; c += (int64_t)tpr * 8) {
      uint4 s = ld8(xr, c, len, a.vx, true);
      if (RES) {
        s = add8(s, ld8(rr, c, len, a.vr, false));
        st8(ror, c, len, a.vro, s);
      }
      ss = sumsq8(s, ss);
    }
  }
  const float r = team_rms(ss, tpr, a.K, a.eps, red_d, red_r);

  /* pass 2: n; a bf16 y is stored now, an e4m3 y needs max |n| first */
  float amax = 0.0f;
  uint16_t *yb = static_cast<uint16_t *>(a.y) + m * a.ldy;
  uint8_t *yq = static_cast<uint8_t *>(a.y) + m * a.planes * a.ldy;
  if (VPT > 0) {
#pragma unroll
    for (int i = 0; i < VPT; i++) {
      const int64_t c = slot_vec<VPT>(i, t, tpr) * 8;
      if (c < len) {
        v[i] = norm8(v[i], r, ld8(a.w, c, a.K, a.vw, true));
        if (FP8) amax = llmk_raw_amax<__nv_bfloat16>(v[i], amax);
        else st8(yb, c, len, a.vy, v[i]);
      }
    }
  } else {
    for (int64_t c = (int64_t)t * 8; c < len; c += (int64_t)tpr * 8) {
      const uint4 s = RES ? ld8(ror, c, len, a.vro, false) : ld8(xr, c, len, a.vx, true);
      const uint4 n = norm8(s, r, ld8(a.w, c, a.K, a.vw, true));
      if (FP8) amax = llmk_raw_amax<__nv_bfloat16>(n, amax);
      else st8(yb, c, len, a.vy, n);
    }
  }
  if (!FP8) return;

  /* pass 3 (e4m3 y): llmk_quantize_fp8's ROW rule on n */
  amax = llmk_team_max(amax, tpr, red_f);
  const float scale = llmk_scale_from_amax<false>(amax, nullptr);
  const float inv = __fdiv_rn(1.0f, scale);
  if (active && t == 0) a.y_scale[m * a.planes] = scale;
  if (VPT > 0) {
    store_codes<(VPT > 0 ? VPT : 1)>(yq, t, tpr, len, a.vy, a.vy2, v, inv);
  } else {
    for (int64_t c = (int64_t)t * 8; c < len; c += (int64_t)tpr * 8) {
      const uint4 s = RES ? ld8(ror, c, len, a.vro, false) : ld8(xr, c, len, a.vx, true);
      const uint4 n = norm8(s, r, ld8(a.w, c, a.K, a.vw, true));
      llmk_quant_store<__nv_bfloat16, false>(yq, c, len, a.vy, n, inv);
    }
  }
  if (a.planes == 1) return; /* uniform over the CTA: the team reductions below stay collective */

  /* two planes: the same ROW rule on the residual d = n - y * scale */
  float amax_lo = 0.0f, d[8];
  if (VPT > 0) {
#pragma unroll
    for (int i = 0; i < VPT; i++) {
      const int64_t c = slot_vec<VPT>(i, t, tpr) * 8;
      if (c < len) {
        lo8(v[i], inv, scale, d);
        amax_lo = llmk_vec_amax(d, amax_lo);
      }
    }
  } else {
    for (int64_t c = (int64_t)t * 8; c < len; c += (int64_t)tpr * 8) {
      const uint4 s = RES ? ld8(ror, c, len, a.vro, false) : ld8(xr, c, len, a.vx, true);
      lo8(norm8(s, r, ld8(a.w, c, a.K, a.vw, true)), inv, scale, d);
      amax_lo = llmk_vec_amax(d, amax_lo);
    }
  }
  amax_lo = llmk_team_max(amax_lo, tpr, red_lo);
  const float scale_lo = llmk_scale_from_amax<false>(amax_lo, nullptr);
  const float inv_lo = __fdiv_rn(1.0f, scale_lo);
  if (active && t == 0) a.y_scale[2 * m + 1] = scale_lo;
  uint8_t *ylo = yq + a.ldy;
  if (VPT > 0) {
#pragma unroll
    for (int i = 0; i < VPT; i++) {
      const int64_t c = slot_vec<VPT>(i, t, tpr) * 8;
      if (c < len) {
        lo8(v[i], inv, scale, d);
        llmk_store_fp8<false, 8>(ylo, c, len, a.vy, d, inv_lo);
      }
    }
  } else {
    for (int64_t c = (int64_t)t * 8; c < len; c += (int64_t)tpr * 8) {
      const uint4 s = RES ? ld8(ror, c, len, a.vro, false) : ld8(xr, c, len, a.vx, true);
      lo8(norm8(s, r, ld8(a.w, c, a.K, a.vw, true)), inv, scale, d);
      llmk_store_fp8<false, 8>(ylo, c, len, a.vy, d, inv_lo);
    }
  }
}

template <int VPT>
void launch_norm(const norm_args &a, bool res, bool fp8, unsigned grid, int block, cudaStream_t st) {
  if (res && fp8) rmsnorm_kernel<VPT, true, true><<<grid, block, 0, st>>>(a);
  else if (res) rmsnorm_kernel<VPT, true, false><<<grid, block, 0, st>>>(a);
  else if (fp8) rmsnorm_kernel<VPT, false, true><<<grid, block, 0, st>>>(a);
  else rmsnorm_kernel<VPT, false, false><<<grid, block, 0, st>>>(a);
}

/* ---- silu_mul_quant ------------------------------------------------------ */

struct silu_args {
  const uint16_t *g, *u;
  uint8_t *q;
  float *scale;
  const float *ub;
  int64_t ldg, ldu, ldq; /* elements */
  int64_t M, F, gk, nseg;
  int tpr;
  bool vg, vu;  /* 16-byte loads of gate, up */
  bool vq, vq2; /* 8-byte / 16-byte (pair) stores of xq */
  bool exact;   /* every element through the fp64 formula (LLMK_SILU_FP64=1) */
  bool bf;      /* xq is bf16: store a itself (vq: 16-byte stores), no scales */
};

template <int VPT>
__global__ void __launch_bounds__(512, 1) silu_mul_quant_kernel(const __grid_constant__ silu_args a) {
  __shared__ float red[32];
  const int tpr = a.tpr, t = threadIdx.x % tpr;
  const int64_t unit = (int64_t)blockIdx.x * (blockDim.x / tpr) + threadIdx.x / tpr;
  const bool active = unit < a.M * a.nseg;
  int64_t m = 0, c0 = 0, len = 0;
  if (active) {
    m = a.nseg == 1 ? unit : unit / a.nseg;
    c0 = (unit - m * a.nseg) * a.gk;
    len = min(a.gk, a.F - c0);
  }
  const uint16_t *gs = a.g + m * a.ldg + c0, *us = a.u + m * a.ldu + c0;
  uint8_t *qs = a.q + m * a.ldq + c0;
  uint16_t *bs = reinterpret_cast<uint16_t *>(a.q) + m * a.ldq + c0;

  float amax = 0.0f;
  uint4 v[VPT > 0 ? VPT : 1];
  if (VPT > 0) {
#pragma unroll
    for (int i = 0; i < VPT; i++) {
      const int64_t c = slot_vec<VPT>(i, t, tpr) * 8;
      v[i] = make_uint4(0, 0, 0, 0);
      if (c < len) {
        v[i] = silu8(ld8(gs, c, len, a.vg, true), ld8(us, c, len, a.vu, true), a.exact);
        if (a.bf) st8(bs, c, len, a.vq, v[i]);
        else amax = llmk_raw_amax<__nv_bfloat16>(v[i], amax);
      }
    }
  } else {
    for (int64_t c = (int64_t)t * 8; c < len; c += (int64_t)tpr * 8) {
      const uint4 x = silu8(ld8(gs, c, len, a.vg, true), ld8(us, c, len, a.vu, true), a.exact);
      if (a.bf) st8(bs, c, len, a.vq, x);
      else amax = llmk_raw_amax<__nv_bfloat16>(x, amax);
    }
  }
  if (a.bf) return; /* uniform over the launch: no team reduction below runs */
  amax = llmk_team_max(amax, tpr, red);
  const float scale = llmk_scale_from_amax<false>(amax, a.ub);
  const float inv = __fdiv_rn(1.0f, scale);
  if (active && t == 0) a.scale[unit] = scale; /* ROW: unit == m; BLOCK: m * nseg + segment */
  if (VPT > 0) {
    store_codes<(VPT > 0 ? VPT : 1)>(qs, t, tpr, len, a.vq, a.vq2, v, inv);
  } else {
    for (int64_t c = (int64_t)t * 8; c < len; c += (int64_t)tpr * 8)
      llmk_quant_store<__nv_bfloat16, false>(
          qs, c, len, a.vq, silu8(ld8(gs, c, len, a.vg, true), ld8(us, c, len, a.vu, true), a.exact), inv);
  }
}

/* ---- launch configuration ------------------------------------------------ */

/* A team for rows of nvec vectors: `target` vectors per thread, at most
 * 512 threads (8 vectors each, 32768 elements, in registers); longer rows
 * are streamed by 512 threads. CTAs of at least 256 threads. `forced` (a
 * power of two <= 512, from the environment; 0: none) replaces the team
 * size where the row still fits 8 vectors a thread. */
struct team {
  int tpr, vpt, block;
};
team team_for(int64_t nvec, int target, int forced) {
  if (nvec < 1) nvec = 1;
  team c;
  c.tpr = pow2_ceil(cdiv(nvec, target));
  if (c.tpr > 512) c.tpr = 512;
  if (forced > 0 && cdiv(nvec, forced) <= 8) c.tpr = forced;
  const int64_t v = cdiv(nvec, c.tpr);
  c.vpt = v <= 1 ? 1 : v <= 2 ? 2 : v <= 4 ? 4 : v <= 8 ? 8 : 0;
  if (c.vpt == 0) c.tpr = 512;
  c.block = c.tpr < 256 ? 256 : c.tpr;
  return c;
}

/* Tuning and checking knobs (src/core/env.c): LLMK_NORM_TPR and
 * LLMK_SILU_TPR force the team size of rmsnorm / silu_mul_quant (a power of
 * two, 1..512; 0 here: unset); LLMK_SILU_FP64=1 sends every SiLU element
 * through the fp64 formula (same results, slower). */
int forced_tpr(int v) { return v > 0 ? v : 0; }


}  // namespace

extern "C" llmk_status llmk_cuda_rmsnorm(llmk_handle h, const llmk_rmsnorm_plan *p, void *stream) {
  static const char fn[] = "llmk_rmsnorm";
  const bool res = p->residual.data != nullptr, fp8 = p->y.dtype == LLMK_E4M3;
  norm_args a = {};
  a.x = static_cast<const uint16_t *>(p->x.data);
  a.res = static_cast<const uint16_t *>(p->residual.data);
  a.res_out = static_cast<uint16_t *>(p->residual_out.data);
  a.w = p->weight;
  a.y = p->y.data;
  a.y_scale = p->y_scale;
  a.ldx = p->x.ld;
  a.ldr = p->residual.ld;
  a.ldro = p->residual_out.ld;
  a.ldy = p->y.ld;
  a.M = p->M;
  a.K = p->K;
  a.eps = p->eps;
  a.planes = p->planes;
  a.vx = llmk_rows_aligned(p->x, 16);
  a.vr = res && llmk_rows_aligned(p->residual, 16);
  a.vro = res && llmk_rows_aligned(p->residual_out, 16);
  a.vw = llmk_aligned(p->weight, 16);
  a.vy = llmk_rows_aligned(p->y, fp8 ? 8 : 16);
  a.vy2 = fp8 && llmk_rows_aligned(p->y, 16);
  /* Measured on the H100 at M = 16384, K = 8192 (tests/test_norm_gpu.c's
   * timings, % of a device-to-device copy's bandwidth): a bf16 y runs best
   * with 2 vectors a thread (512 threads: 75% without residual, 90% with
   * one in place; 4 vectors: 64% and 64%), an e4m3 y with 4 (67% and 96%;
   * 2 vectors: 50% and 91%). */
  const team c = team_for(cdiv(p->K, 8), fp8 ? 4 : 2, forced_tpr(llmk_env_get()->norm_tpr));
  a.tpr = c.tpr;
  const int64_t grid = cdiv(p->M, c.block / c.tpr);
  if (grid > INT32_MAX)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "too many rows (%lld) for one launch", (long long)p->M);
  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, fn);
  if (s) return s;
  const cudaStream_t st = (cudaStream_t)stream;
  switch (c.vpt) {
    case 1: launch_norm<1>(a, res, fp8, (unsigned)grid, c.block, st); break;
    case 2: launch_norm<2>(a, res, fp8, (unsigned)grid, c.block, st); break;
    case 4: launch_norm<4>(a, res, fp8, (unsigned)grid, c.block, st); break;
    case 8: launch_norm<8>(a, res, fp8, (unsigned)grid, c.block, st); break;
    default: launch_norm<0>(a, res, fp8, (unsigned)grid, c.block, st); break;
  }
  s = llmk_launch_check(fn, "rmsnorm_kernel");
  return llmk_scope_leave(h, &sc, s, fn);
}

extern "C" llmk_status llmk_cuda_silu_mul_quant(llmk_handle h, const llmk_silu_plan *p, void *stream) {
  static const char fn[] = "llmk_silu_mul_quant";
  silu_args a = {};
  a.g = static_cast<const uint16_t *>(p->gate.data);
  a.u = static_cast<const uint16_t *>(p->up.data);
  a.q = static_cast<uint8_t *>(p->xq.data);
  a.scale = p->scale;
  a.ub = p->scale_ub;
  a.ldg = p->gate.ld;
  a.ldu = p->up.ld;
  a.ldq = p->xq.ld;
  a.M = p->M;
  a.F = p->F;
  a.gk = p->gk;
  a.nseg = p->nseg;
  /* 1 x 128 groups start 256 (bf16) and 128 (e4m3) bytes apart: aligned
   * whenever the row starts are */
  a.vg = llmk_rows_aligned(p->gate, 16);
  a.vu = llmk_rows_aligned(p->up, 16);
  a.bf = p->xq.dtype == LLMK_BF16;
  a.vq = llmk_rows_aligned(p->xq, a.bf ? 16 : 8);
  a.vq2 = llmk_rows_aligned(p->xq, 16);
  a.exact = llmk_env_get()->silu_fp64 == 1;
  /* fp64 SiLU is compute-heavy: 2 vectors per thread, more threads */
  const team c = team_for(cdiv(p->gk < p->F ? p->gk : p->F, 8), 2, forced_tpr(llmk_env_get()->silu_tpr));
  a.tpr = c.tpr;
  const int64_t units = p->M * p->nseg, grid = cdiv(units, c.block / c.tpr);
  if (grid > INT32_MAX)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "too many row segments (%lld) for one launch",
                          (long long)units);
  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, fn);
  if (s) return s;
  const cudaStream_t st = (cudaStream_t)stream;
  switch (c.vpt) {
    case 1: silu_mul_quant_kernel<1><<<(unsigned)grid, c.block, 0, st>>>(a); break;
    case 2: silu_mul_quant_kernel<2><<<(unsigned)grid, c.block, 0, st>>>(a); break;
    case 4: silu_mul_quant_kernel<4><<<(unsigned)grid, c.block, 0, st>>>(a); break;
    case 8: silu_mul_quant_kernel<8><<<(unsigned)grid, c.block, 0, st>>>(a); break;
    default: silu_mul_quant_kernel<0><<<(unsigned)grid, c.block, 0, st>>>(a); break;
  }
  s = llmk_launch_check(fn, "silu_mul_quant_kernel");
  return llmk_scope_leave(h, &sc, s, fn);
}
