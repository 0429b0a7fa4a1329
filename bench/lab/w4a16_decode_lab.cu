/* Kernel lab for the W4A16 decode GEMM (bf16 x int4 -> bf16, M <= 16
 * tokens), in the manner of llm.c's dev/cuda: numbered versions, each
 * checked against a reference built from llmk's own INT4 ops (weights
 * quantized by llmk_int4_quantize on the CPU backend, dequantized by
 * llmk_int4_dequantize: w = bf16((q - z) s), llmk.h's rule) on fresh random
 * data, then timed with CUDA events, L2 flushed before each call, median;
 * beside them llmk's FP8 row-wise GEMM on the same shape (the speedup the
 * INT4 path must earn: 1.7x at M = 16) and the roofline on the packed
 * bytes (codes + scales + zeros).
 *
 * Versions:
 *   1  one thread an output, the plain codes (row-major, two a byte) and
 *      fp32 math: the correctness baseline.
 *   2  mma.sync m16n8k16 (bf16, fp32 accumulation). Codes in the "mma"
 *      layout: for each 16-row strip and 16-element k step, lane l's
 *      32-bit word holds the 8 codes of its A fragment (rows l/4 and
 *      l/4 + 8; columns 2(l%4), +1, +8, +9), nibble j the low half and
 *      nibble j + 4 the high half of fragment register j, so a 128-byte
 *      coalesced load feeds one mma. Dequantization in registers: (0x4300
 *      | nibble) is the bf16 128 + q; minus 128 + z is q - z exactly; times
 *      s rounds once (llmk.h's w). A CTA of 8 warps owns 128 rows and a
 *      K/KS slice; x's slice sits in shared memory; the K splits' fp32
 *      partials are summed in order by a second kernel (deterministic).
 *   3  version 2 on the "mma4" layout: a lane's words of four consecutive
 *      k steps adjacent, one 16-byte load for four mma (twice the bytes in
 *      flight at the same unroll, a quarter of the load instructions).
 *   4  the plain codes, no packing: lane (g, t) loads 16 bytes (32 codes)
 *      of rows g and g + 8 per 128-deep chunk, so four lanes read 64
 *      contiguous bytes of a row and a chunk is one group (one scale
 *      load). A word of 8 codes gives four bf16 pairs with one shift and
 *      one mask each: (e0, e4), (e1, e5), (e2, e6), (e3, e7), two mma's A
 *      registers; the mma's K order is permuted alike in A and B (x is
 *      staged in shared memory in that order), which a dot product does
 *      not see.
 *   5  version 4 with the scale and zero point applied after the mma, once
 *      per group of 128: the A registers are the bf16 128 + q (one shift and
 *      one mask a pair, no bf16x2 arithmetic), the mma sums x (128 + q) over
 *      the chunk into fresh accumulators P, and c += s (P - (128 + z) S_x),
 *      S_x each token's sum of x over the chunk (computed once a CTA). The
 *      weight is then the exact (q - z) s rather than its bf16 rounding, so
 *      it differs from the reference by that rounding (about 1e-3).
 *   lib  llmk_gemm_w4a16, the library's kernel (version 4 promoted, then
 *      given a cp.async ring of codes per lane and the scales in shared
 *      memory).
 *
 * Build: `make lab`; run on the GPU machine: w4a16_decode_lab [M] (one M,
 * else 1 8 16), shapes of Llama-3-70B's projections.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "cuda/gemm_model.h"
#include "cuda/int4_frag.cuh"
#include "llmk.h"

#define CK(call)                                                                              \
  do {                                                                                        \
    cudaError_t e_ = (call);                                                                  \
    if (e_ != cudaSuccess) {                                                                  \
      fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));  \
      exit(1);                                                                                \
    }                                                                                         \
  } while (0)
#define LK(call)                                                                              \
  do {                                                                                        \
    if ((call) != LLMK_SUCCESS) {                                                             \
      fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, llmk_last_error());       \
      exit(1);                                                                                \
    }                                                                                         \
  } while (0)

static const int GROUP = 128;

/* ---- version 1: one thread an output ------------------------------------ */

__global__ void v1_kernel(const uint16_t *x, const uint8_t *codes, const uint16_t *scales, const uint8_t *zeros,
                          uint16_t *y, int M, int N, int K) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x, m = blockIdx.y;
  if (n >= N) return;
  float acc = 0.0f;
  for (int k = 0; k < K; k++) {
    const int g = n * (K / GROUP) + k / GROUP, c = codes[(size_t)n * (K / 2) + k / 2];
    const int q = k % 2 ? c >> 4 : c & 15;
    const float s = __uint_as_float((uint32_t)scales[g] << 16);
    const float w = __bfloat162float(__float2bfloat16_rn((float)(q - zeros[g]) * s));
    acc += __uint_as_float((uint32_t)x[(size_t)m * K + k] << 16) * w;
  }
  y[(size_t)m * N + n] = __bfloat16_as_ushort(__float2bfloat16_rn(acc));
}

/* ---- version 2: mma.sync, codes in the mma layout ------------------------ */

/* Host: the plain codes [N, K/2] into the mma layout, [N/16][K/16][32 lanes] words. */
static std::vector<uint32_t> pack_mma(const uint8_t *codes, int N, int K) {
  std::vector<uint32_t> out((size_t)N * K / 8);
  auto code = [&](int n, int k) { return (uint32_t)(k % 2 ? codes[(size_t)n * (K / 2) + k / 2] >> 4 : codes[(size_t)n * (K / 2) + k / 2] & 15); };
  for (int st = 0; st < N / 16; st++)
    for (int ks = 0; ks < K / 16; ks++)
      for (int l = 0; l < 32; l++) {
        const int r = st * 16 + l / 4, c = ks * 16 + 2 * (l % 4);
        /* fragment registers: a0 (r, c..c+1), a1 (r+8, c..), a2 (r, c+8..), a3 (r+8, c+8..) */
        const int rows[4] = {r, r + 8, r, r + 8}, cols[4] = {c, c, c + 8, c + 8};
        uint32_t w = 0;
        for (int j = 0; j < 4; j++) w |= code(rows[j], cols[j]) << (4 * j) | code(rows[j], cols[j] + 1) << (4 * (j + 4));
        out[((size_t)st * (K / 16) + ks) * 32 + l] = w;
      }
  return out;
}

__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}


constexpr int V2_WARPS = 8, V2_ROWS = 16 * V2_WARPS;

/* grid (N / 128, KS); x [M, K] bf16 (M <= 16), partial [KS][16][N] f32.
 * WPL: code words a lane loads at once (1: the mma layout, 4: the mma4
 * layout, a lane's words of four consecutive k steps adjacent: one 16-byte
 * load per lane, twice the bytes in flight for the same unroll). */
template <int NT, int WPL>
__global__ void __launch_bounds__(32 * V2_WARPS) mma_kernel(const uint16_t *x, const uint32_t *packed,
                                                           const uint16_t *scales, const uint8_t *zeros, float *partial,
                                                           int M, int N, int K, int kslice) {
  static_assert(WPL == 1 || WPL == 4, "one word or four a load");
  /* [16 tokens][kslice / 2 + 4] bf16 pairs: the 4-word pad puts the eight
   * tokens a B fragment load reads (lane / 4) on distinct banks */
  extern __shared__ uint32_t xs[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, k0 = blockIdx.y * kslice;
  const int pairs = kslice / 2 + 4;
  for (int i = threadIdx.x; i < 16 * (kslice / 2); i += blockDim.x) {
    const int m = i / (kslice / 2), p = i % (kslice / 2);
    xs[m * pairs + p] = m < M ? reinterpret_cast<const uint32_t *>(x + (size_t)m * K + k0)[p] : 0u;
  }
  __syncthreads();
  const int strip = blockIdx.x * V2_WARPS + warp, r = strip * 16 + lane / 4;
  /* both layouts: a strip's k steps ks .. are 32 words each from here (mma4: in blocks of 4 x 32) */
  const uint32_t *pw = packed + ((size_t)strip * (K / 16) + k0 / 16) * 32 + lane * WPL;
  float c[NT][4] = {};
  uint32_t s_lo = 0, s_hi = 0, z_lo = 0, z_hi = 0;
#pragma unroll(8 / WPL) /* eight k steps' code loads in flight a warp: they do not wait on the mma */
  for (int kb = 0; kb < kslice / 16; kb += WPL) {
    uint32_t wv[WPL];
    if constexpr (WPL == 4) {
      const uint4 v = *reinterpret_cast<const uint4 *>(pw + (size_t)kb * 32);
      wv[0] = v.x, wv[1] = v.y, wv[2] = v.z, wv[3] = v.w;
    } else {
      wv[0] = pw[(size_t)kb * 32];
    }
#pragma unroll
    for (int u = 0; u < WPL; u++) {
      const int ks = kb + u, k = k0 + ks * 16;
      if (k % GROUP == 0) {
        const int g = k / GROUP, ng = K / GROUP;
        const uint32_t sa = scales[(size_t)r * ng + g], sb = scales[(size_t)(r + 8) * ng + g];
        s_lo = sa | sa << 16, s_hi = sb | sb << 16;
        const uint32_t za = 0x4300u + zeros[(size_t)r * ng + g], zb = 0x4300u + zeros[(size_t)(r + 8) * ng + g];
        z_lo = za | za << 16, z_hi = zb | zb << 16; /* bf16 128 + z, twice */
      }
      const uint32_t w = wv[u];
      uint32_t a[4];
      /* nibble j is the low half of a[j], nibble j + 4 its high half */
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const uint32_t lo = (w >> (4 * j)) & 0xFu, hi = (w >> (4 * (j + 4))) & 0xFu;
        const uint32_t q = (0x4300u | lo) | (0x4300u | hi) << 16;
        const bool row_hi = j % 2; /* a1, a3: row r + 8 */
        a[j] = llmk_bmul2(llmk_bsub2(q, row_hi ? z_hi : z_lo), row_hi ? s_hi : s_lo);
      }
      /* B: x^T, k rows 2(l%4), +1 and +8, +9; token column l/4 (+ 8 for the second tile) */
      const int kk = ks * 16 + 2 * (lane % 4);
#pragma unroll
      for (int t = 0; t < NT; t++) {
        const int m = lane / 4 + 8 * t;
        mma_bf16(c[t], a, xs[m * pairs + kk / 2], xs[m * pairs + kk / 2 + 4]);
      }
    }
  }
  /* C: rows r (c0, c1) and r + 8 (c2, c3), token columns 2(l%4), +1 */
  float *out = partial + (size_t)blockIdx.y * 16 * N;
#pragma unroll
  for (int t = 0; t < NT; t++) {
    const int m = 8 * t + 2 * (lane % 4);
    out[(size_t)m * N + r] = c[t][0], out[(size_t)(m + 1) * N + r] = c[t][1];
    out[(size_t)m * N + r + 8] = c[t][2], out[(size_t)(m + 1) * N + r + 8] = c[t][3];
  }
}

/* ---- version 4: the plain codes, K permuted alike in A and B ----------- */

constexpr int V4_CHUNK = 128; /* k per chunk: 4 lanes x 32 codes of a row */
constexpr int V4_UNROLL = 4;  /* chunks whose code loads are in flight together */

__device__ __forceinline__ uint4 ld_stream16(const void *p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

/* grid (N / 128, KS), kslice % 128 == 0; partial as version 2's.
 * Shared x: per token, per chunk, per word i of a lane (8 k), per lane t,
 * the 8 values in the order the pairs use them (0 4 1 5 2 6 3 7): lane t's
 * word i of chunk c covers k = 128 c + 32 t + 8 i .. + 7; a token row is
 * padded by 16 words so that lanes g and g + 1 fall on different banks. */
template <int NT, bool POST>
__global__ void __launch_bounds__(32 * V2_WARPS) rows_kernel(const uint16_t *x, const uint8_t *codes,
                                                            const uint16_t *scales, const uint8_t *zeros,
                                                            float *partial, int M, int N, int K, int kslice) {
  extern __shared__ uint4 xs4[]; /* [16][kslice / 8 + 4] uint4 */
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4, k0 = blockIdx.y * kslice;
  const int row16 = kslice / 8 + 4; /* uint4 per token row */
  for (int i = threadIdx.x; i < 16 * (kslice / 8); i += blockDim.x) {
    const int m = i / (kslice / 8), o = i % (kslice / 8); /* o: the 8-group of k = 8 o in the slice */
    uint4 v = make_uint4(0, 0, 0, 0);
    if (m < M) {
      const uint4 raw = *reinterpret_cast<const uint4 *>(x + (size_t)m * K + k0 + 8 * o);
      /* (x0 x1)(x2 x3)(x4 x5)(x6 x7) -> (x0 x4)(x1 x5)(x2 x6)(x3 x7) */
      v.x = __byte_perm(raw.x, raw.z, 0x5410), v.y = __byte_perm(raw.x, raw.z, 0x7632);
      v.z = __byte_perm(raw.y, raw.w, 0x5410), v.w = __byte_perm(raw.y, raw.w, 0x7632);
    }
    /* o = 16 c + 4 t' + i' (chunk c, lane t', word i') -> stored at 16 c + 4 i' + t' */
    const int c = o / 16, tt = (o / 4) % 4, ii = o % 4;
    xs4[m * row16 + 16 * c + 4 * ii + tt] = v;
  }
  __syncthreads();
  const int nchunks = kslice / V4_CHUNK;
  /* POST: each token's sum of x over each chunk (one group), in a fixed order */
  float *sx = reinterpret_cast<float *>(xs4 + 16 * row16); /* [16][nchunks] */
  if (POST) {
    for (int j = threadIdx.x; j < 16 * nchunks; j += blockDim.x) {
      const int m = j / nchunks, cc = j % nchunks;
      float sum = 0.0f;
      for (int q = 0; q < 16; q++) {
        const uint4 v = xs4[m * row16 + 16 * cc + q];
        const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int h = 0; h < 4; h++) sum += __uint_as_float(w[h] << 16) + __uint_as_float(w[h] & 0xFFFF0000u);
      }
      sx[j] = sum;
    }
    __syncthreads();
  }
  const int strip = blockIdx.x * V2_WARPS + warp, r = strip * 16 + g, ng = K / GROUP;
  const uint8_t *p_lo = codes + (size_t)r * (K / 2) + k0 / 2 + 16 * t, *p_hi = p_lo + (size_t)8 * (K / 2);
  float c[NT][4] = {};
  for (int c0 = 0; c0 < nchunks; c0 += V4_UNROLL) {
    uint4 wl[V4_UNROLL], wh[V4_UNROLL];
    uint32_t sl[V4_UNROLL], sh[V4_UNROLL], zl[V4_UNROLL], zh[V4_UNROLL];
#pragma unroll
    for (int u = 0; u < V4_UNROLL; u++) {
      const int gi = (k0 + (c0 + u) * V4_CHUNK) / GROUP;
      wl[u] = ld_stream16(p_lo + (size_t)(c0 + u) * 64), wh[u] = ld_stream16(p_hi + (size_t)(c0 + u) * 64);
      sl[u] = scales[(size_t)r * ng + gi], sh[u] = scales[(size_t)(r + 8) * ng + gi];
      zl[u] = zeros[(size_t)r * ng + gi], zh[u] = zeros[(size_t)(r + 8) * ng + gi];
    }
#pragma unroll
    for (int u = 0; u < V4_UNROLL; u++) {
      const uint32_t s_lo = sl[u] | sl[u] << 16, s_hi = sh[u] | sh[u] << 16;
      const uint32_t z_lo = (0x4300u + zl[u]) * 0x10001u, z_hi = (0x4300u + zh[u]) * 0x10001u;
      const uint32_t lo[4] = {wl[u].x, wl[u].y, wl[u].z, wl[u].w}, hi[4] = {wh[u].x, wh[u].y, wh[u].z, wh[u].w};
      float p[NT][4] = {}; /* POST: the chunk's sums of x (128 + q) */
#pragma unroll
      for (int i = 0; i < 4; i++) { /* word i: two mma */
        uint32_t pl[4], ph[4];
        if (POST) {
#pragma unroll
          for (int j = 0; j < 4; j++) { /* bf16 128 + q: one shift and one mask a pair */
            pl[j] = ((lo[i] >> (4 * j)) & 0x000F000Fu) | 0x43004300u;
            ph[j] = ((hi[i] >> (4 * j)) & 0x000F000Fu) | 0x43004300u;
          }
        } else {
          llmk_int4_dequant_word(lo[i], z_lo, s_lo, pl); /* (e_j, e_j+4) */
          llmk_int4_dequant_word(hi[i], z_hi, s_hi, ph);
        }
#pragma unroll
        for (int tk = 0; tk < NT; tk++) {
          const uint4 xv = xs4[(g + 8 * tk) * row16 + 16 * (c0 + u) + 4 * i + t];
          const uint32_t a0[4] = {pl[0], ph[0], pl[1], ph[1]}, a1[4] = {pl[2], ph[2], pl[3], ph[3]};
          mma_bf16(POST ? p[tk] : c[tk], a0, xv.x, xv.y);
          mma_bf16(POST ? p[tk] : c[tk], a1, xv.z, xv.w);
        }
      }
      if (POST) { /* c += s (P - (128 + z) S_x): the exact (q - z) s weight's product */
        const float fs_lo = __uint_as_float(sl[u] << 16), fs_hi = __uint_as_float(sh[u] << 16);
        const float fz_lo = 128.0f + (float)zl[u], fz_hi = 128.0f + (float)zh[u];
#pragma unroll
        for (int tk = 0; tk < NT; tk++) {
          const float s0 = sx[(8 * tk + 2 * t) * nchunks + c0 + u], s1 = sx[(8 * tk + 2 * t + 1) * nchunks + c0 + u];
          c[tk][0] = fmaf(fs_lo, fmaf(-fz_lo, s0, p[tk][0]), c[tk][0]);
          c[tk][1] = fmaf(fs_lo, fmaf(-fz_lo, s1, p[tk][1]), c[tk][1]);
          c[tk][2] = fmaf(fs_hi, fmaf(-fz_hi, s0, p[tk][2]), c[tk][2]);
          c[tk][3] = fmaf(fs_hi, fmaf(-fz_hi, s1, p[tk][3]), c[tk][3]);
        }
      }
    }
  }
  float *out = partial + (size_t)blockIdx.y * 16 * N;
#pragma unroll
  for (int tk = 0; tk < NT; tk++) {
    const int m = 8 * tk + 2 * t;
    out[(size_t)m * N + r] = c[tk][0], out[(size_t)(m + 1) * N + r] = c[tk][1];
    out[(size_t)m * N + r + 8] = c[tk][2], out[(size_t)(m + 1) * N + r + 8] = c[tk][3];
  }
}

/* Host: the mma layout into the mma4 layout (a lane's words of k steps 4j .. 4j + 3 adjacent). */
static std::vector<uint32_t> pack_mma4(const std::vector<uint32_t> &mma, int N, int K) {
  std::vector<uint32_t> out(mma.size());
  for (int st = 0; st < N / 16; st++)
    for (int ks = 0; ks < K / 16; ks++)
      for (int l = 0; l < 32; l++)
        out[(((size_t)st * (K / 64) + ks / 4) * 32 + l) * 4 + ks % 4] = mma[((size_t)st * (K / 16) + ks) * 32 + l];
  return out;
}

/* y[m, n] = bf16(sum over the splits, in order) */
__global__ void v2_reduce(const float *partial, uint16_t *y, int M, int N, int KS) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= M * N) return;
  const int m = i / N, n = i % N;
  float acc = 0.0f;
  for (int s = 0; s < KS; s++) acc += partial[((size_t)s * 16 + m) * N + n];
  y[i] = __bfloat16_as_ushort(__float2bfloat16_rn(acc));
}

/* ---- the harness --------------------------------------------------------- */

struct shape {
  const char *name;
  int N, K;
};
static const shape SHAPES[] = {{"70b qkv", 10240, 8192}, {"70b o", 8192, 8192}, {"70b gate+up", 57344, 8192},
                               {"70b down", 8192, 28672}};

static double median_us(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <class F>
static double time_us(F f, void *flush, cudaStream_t st, int reps = 20) {
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  std::vector<double> t;
  for (int i = 0; i < reps + 2; i++) {
    CK(cudaMemsetAsync(flush, i & 0xFF, 256u << 20, st));
    CK(cudaEventRecord(e0, st));
    f();
    CK(cudaEventRecord(e1, st));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    if (i >= 2) t.push_back(ms * 1000.0);
  }
  CK(cudaEventDestroy(e0));
  CK(cudaEventDestroy(e1));
  return median_us(t);
}

static uint64_t rng = 88172645463325252ull;
static float randn() {
  double s = 0;
  for (int i = 0; i < 12; i++) rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17, s += (double)(rng >> 11) * 0x1.0p-53;
  return (float)(s - 6.0);
}

int main(int argc, char **argv) {
  std::vector<int> Ms = {1, 8, 16};
  if (argc > 1) Ms = {atoi(argv[1])};
  llmk_handle cpu, gpu;
  LK(llmk_create_cpu(&cpu));
  LK(llmk_create_cuda(0, &gpu));
  cudaStream_t st;
  CK(cudaStreamCreate(&st));
  void *flush;
  CK(cudaMalloc(&flush, 256u << 20));
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  llmk_gemm_device dev;
  llmk_gemm_device_query(0, prop.multiProcessorCount, &dev); /* the measured DRAM peak the GEMM model uses */
  const double peak_gbps = dev.hbm_gbps;
  printf("device %s, HBM %.0f GB/s (measured)\n", prop.name, peak_gbps);
  for (const shape &sh : SHAPES) {
    const int N = sh.N, K = sh.K, ng = K / GROUP;
    /* weights: llmk_int4_quantize (CPU backend, asymmetric, groups of 128) */
    std::vector<uint16_t> w((size_t)N * K), sc((size_t)N * ng), wd((size_t)N * K);
    std::vector<uint8_t> codes((size_t)N * K / 2), zs((size_t)N * ng);
    for (auto &v : w) v = llmk_float_to_bf16(0.02f * randn());
    llmk_int4_desc d = LLMK_INT4_DESC_INIT;
    d.asymmetric = 1;
    llmk_tensor tw = llmk_tensor_2d(w.data(), LLMK_BF16, N, K, K), tc = llmk_tensor_2d(codes.data(), LLMK_U8, N, K / 2, K / 2);
    llmk_tensor ts = llmk_tensor_2d(sc.data(), LLMK_BF16, N, ng, ng), tz = llmk_tensor_2d(zs.data(), LLMK_U8, N, ng, ng);
    llmk_tensor twd = llmk_tensor_2d(wd.data(), LLMK_BF16, N, K, K);
    LK(llmk_int4_quantize(cpu, &d, &tw, &tc, &ts, &tz, NULL));
    LK(llmk_int4_dequantize(cpu, &d, &tc, &ts, &tz, &twd, NULL));
    const std::vector<uint32_t> packed = pack_mma(codes.data(), N, K), packed4 = pack_mma4(packed, N, K);
    /* FP8 peer weights: llmk_quantize_fp8 per row */
    std::vector<uint8_t> wq((size_t)N * K);
    std::vector<float> wsc(N);
    llmk_quantize_desc qd = LLMK_QUANTIZE_DESC_INIT;
    qd.scaling = LLMK_SCALING_ROW;
    llmk_tensor twq = llmk_tensor_2d(wq.data(), LLMK_E4M3, N, K, K), twsc = llmk_tensor_1d(wsc.data(), LLMK_F32, N);
    LK(llmk_quantize_fp8(cpu, &qd, &tw, &twq, &twsc, NULL));
    uint8_t *d_codes, *d_zeros, *d_wq;
    uint16_t *d_scales, *d_x, *d_y;
    uint32_t *d_packed, *d_packed4;
    float *d_part, *d_wsc, *d_xsc;
    uint8_t *d_xq;
    CK(cudaMalloc(&d_codes, codes.size()));
    CK(cudaMalloc(&d_zeros, zs.size()));
    CK(cudaMalloc(&d_scales, sc.size() * 2));
    CK(cudaMalloc(&d_packed, packed.size() * 4));
    CK(cudaMalloc(&d_packed4, packed4.size() * 4));
    CK(cudaMalloc(&d_wq, wq.size()));
    CK(cudaMalloc(&d_wsc, wsc.size() * 4));
    CK(cudaMemcpy(d_codes, codes.data(), codes.size(), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d_zeros, zs.data(), zs.size(), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d_scales, sc.data(), sc.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d_packed, packed.data(), packed.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d_packed4, packed4.data(), packed4.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d_wq, wq.data(), wq.size(), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d_wsc, wsc.data(), wsc.size() * 4, cudaMemcpyHostToDevice));
    const double bytes = (double)N * K / 2 + (double)N * ng * 3; /* codes, bf16 scales, u8 zeros */
    for (int M : Ms) {
      std::vector<uint16_t> x((size_t)M * K), y((size_t)M * N);
      for (auto &v : x) v = llmk_float_to_bf16(randn());
      /* the reference: fp64 sums of x times the dequantized w */
      std::vector<double> ref((size_t)M * N);
#pragma omp parallel for collapse(2) schedule(static)
      for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
          double acc = 0;
          for (int k = 0; k < K; k++)
            acc += (double)llmk_bf16_to_float(x[(size_t)m * K + k]) * llmk_bf16_to_float(wd[(size_t)n * K + k]);
          ref[(size_t)m * N + n] = acc;
        }
      CK(cudaMalloc(&d_x, x.size() * 2));
      CK(cudaMalloc(&d_y, y.size() * 2));
      CK(cudaMalloc(&d_xq, x.size()));
      CK(cudaMalloc(&d_xsc, (size_t)M * 4));
      CK(cudaMemcpy(d_x, x.data(), x.size() * 2, cudaMemcpyHostToDevice));
      const int KS = std::max(1, std::min(K / 1024, 32)), kslice = K / KS; /* x slices of 32 KB: several CTAs an SM */
      CK(cudaMalloc(&d_part, (size_t)KS * 16 * N * 4));
      auto check = [&](const char *what) {
        CK(cudaMemcpy(y.data(), d_y, y.size() * 2, cudaMemcpyDeviceToHost));
        double num = 0, den = 0;
        for (size_t i = 0; i < y.size(); i++) {
          const double e = llmk_bf16_to_float(y[i]) - ref[i];
          num += e * e, den += ref[i] * ref[i];
        }
        const double rel = sqrt(num / (den > 0 ? den : 1));
        if (rel > 1e-2) printf("  %s: rel err %.2e: FAIL\n", what, rel);
        return rel;
      };
      auto v1 = [&]() { v1_kernel<<<dim3((N + 127) / 128, M), 128, 0, st>>>(d_x, d_codes, d_scales, d_zeros, d_y, M, N, K); };
      const size_t smem = (size_t)16 * (kslice / 2 + 4) * 4;
      /* outside the timed calls: the shared memory the x slice needs */
      CK(cudaFuncSetAttribute(mma_kernel<1, 1>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
      CK(cudaFuncSetAttribute(mma_kernel<2, 1>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
      CK(cudaFuncSetAttribute(mma_kernel<1, 4>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
      CK(cudaFuncSetAttribute(mma_kernel<2, 4>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
      auto mma = [&](auto kernel1, auto kernel2, const uint32_t *words) {
        auto kernel = M <= 8 ? kernel1 : kernel2;
        kernel<<<dim3(N / V2_ROWS, KS), 32 * V2_WARPS, smem, st>>>(d_x, words, d_scales, d_zeros, d_part, M, N, K, kslice);
        v2_reduce<<<(M * N + 255) / 256, 256, 0, st>>>(d_part, d_y, M, N, KS);
      };
      auto v2 = [&]() { mma(mma_kernel<1, 1>, mma_kernel<2, 1>, d_packed); };
      auto v3 = [&]() { mma(mma_kernel<1, 4>, mma_kernel<2, 4>, d_packed4); };
      const size_t smem4 = (size_t)16 * (kslice / 8 + 4) * 16 + (size_t)16 * (kslice / V4_CHUNK) * 4;
      CK(cudaFuncSetAttribute(rows_kernel<1, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem4));
      CK(cudaFuncSetAttribute(rows_kernel<2, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem4));
      CK(cudaFuncSetAttribute(rows_kernel<1, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem4));
      CK(cudaFuncSetAttribute(rows_kernel<2, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem4));
      auto rows = [&](auto kernel1, auto kernel2) {
        auto kernel = M <= 8 ? kernel1 : kernel2;
        kernel<<<dim3(N / V2_ROWS, KS), 32 * V2_WARPS, smem4, st>>>(d_x, d_codes, d_scales, d_zeros, d_part, M, N, K, kslice);
        v2_reduce<<<(M * N + 255) / 256, 256, 0, st>>>(d_part, d_y, M, N, KS);
      };
      auto v4 = [&]() { rows(rows_kernel<1, false>, rows_kernel<2, false>); };
      auto v5 = [&]() { rows(rows_kernel<1, true>, rows_kernel<2, true>); };
      /* the FP8 peer: llmk_gemm_fp8 on x quantized per row beforehand (the GEMM alone is timed) */
      llmk_tensor tx = llmk_tensor_2d(d_x, LLMK_BF16, M, K, K), txq = llmk_tensor_2d(d_xq, LLMK_E4M3, M, K, K);
      llmk_tensor txs = llmk_tensor_1d(d_xsc, LLMK_F32, M), tws = llmk_tensor_1d(d_wsc, LLMK_F32, N);
      llmk_tensor twq8 = llmk_tensor_2d(d_wq, LLMK_E4M3, N, K, K), ty = llmk_tensor_2d(d_y, LLMK_BF16, M, N, N);
      llmk_gemm_desc gd = LLMK_GEMM_DESC_INIT;
      gd.scaling = LLMK_SCALING_ROW;
      LK(llmk_quantize_fp8(gpu, &qd, &tx, &txq, &txs, st));
      auto fp8 = [&]() { LK(llmk_gemm_fp8(gpu, &gd, &txq, &twq8, &txs, &tws, NULL, &ty, st)); };
      /* the library's llmk_gemm_w4a16 (the promoted version: version 4 with a cp.async ring of codes,
       * the scales staged in shared memory, a cluster K split) on the same plain codes */
      llmk_tensor tcod = llmk_tensor_2d(d_codes, LLMK_U8, N, K / 2, K / 2);
      llmk_tensor tsc = llmk_tensor_2d(d_scales, LLMK_BF16, N, ng, ng), tzs = llmk_tensor_2d(d_zeros, LLMK_U8, N, ng, ng);
      auto lib = [&]() { LK(llmk_gemm_w4a16(gpu, &d, &tx, &tcod, &tsc, &tzs, NULL, &ty, st)); };
      struct { const char *name; std::function<void()> f; } runs[] = {{"v1", v1}, {"v2", v2}, {"v3", v3}, {"v4", v4}, {"v5", v5}, {"lib", lib}};
      fp8();
      CK(cudaStreamSynchronize(st));
      const double t_fp8 = time_us(fp8, flush, st);
      for (auto &r : runs) {
        CK(cudaMemset(d_y, 0xFF, y.size() * 2));
        r.f();
        CK(cudaStreamSynchronize(st));
        const double rel = check(r.name);
        const double us = time_us(r.f, flush, st);
        printf("{\"lab\": \"w4a16_decode\", \"version\": \"%s\", \"shape\": \"%s\", \"m\": %d, \"n\": %d, \"k\": %d, "
               "\"us\": %.2f, \"gbps\": %.0f, \"frac_peak\": %.3f, \"rel_err\": %.2e, \"fp8_us\": %.2f, "
               "\"x_fp8\": %.3f}\n",
               r.name, sh.name, M, N, K, us, bytes / us / 1e3, bytes / us / 1e3 / peak_gbps, rel, t_fp8, t_fp8 / us);
      }
      CK(cudaFree(d_x));
      CK(cudaFree(d_y));
      CK(cudaFree(d_xq));
      CK(cudaFree(d_xsc));
      CK(cudaFree(d_part));
    }
    CK(cudaFree(d_codes));
    CK(cudaFree(d_zeros));
    CK(cudaFree(d_scales));
    CK(cudaFree(d_packed));
    CK(cudaFree(d_packed4));
    CK(cudaFree(d_wq));
    CK(cudaFree(d_wsc));
  }
  llmk_destroy(gpu);
  llmk_destroy(cpu);
  return 0;
}
