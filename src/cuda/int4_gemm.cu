/* llmk_gemm_w4a16's CUDA paths (llmk.h; docs/DESIGN.md, "INT4 GEMMs").
 *
 * Decode (M <= 16 a launch): the weight's bytes are the time, so the
 * kernel streams the plain codes ([N, K/2], no repacking) with 16-byte
 * loads and dequantizes in registers into mma.sync m16n8k16 A fragments:
 * lane (g, t) of a warp reads 16 bytes (32 codes) of rows g and g + 8 per
 * 128-deep chunk, so four lanes read 64 contiguous bytes of a row and a
 * chunk needs one scale per row and lane. A word of 8 codes e0..e7 gives
 * the bf16 pairs (e_j, e_j+4) with one shift and one mask each (the
 * exponent bits 0x43 make the bf16 128 + q): (e0, e4) and (e1, e5) are one
 * mma's K slots 2t, 2t + 1 and 2t + 8, 2t + 9, (e2, e6) and (e3, e7) the
 * next one's. x is staged in shared memory in that same order, so the
 * product's K order is permuted alike on both sides.
 * Dequantization: (128 + q) - (128 + z) = q - z exactly, times s rounded
 * once: llmk.h's w = bf16((q - z) s), two bf16x2 instructions per pair.
 * A CTA of 8 warps owns 128 rows (16 a warp) and one K slice; the CTAs of
 * a cluster (1..8) split K; partial sums are added warps-in-place, then
 * ranks in order, so a call repeats bit for bit.
 *
 * Larger M: W is dequantized in stripes of rows into the handle's
 * workspace and each stripe runs llmk_gemm_bf16 (the tensor-core path:
 * the dequantization is read once per stripe, the products are
 * compute-bound). */
#include <cuda_bf16.h>

#include "core/env.h"
#include "core/gemm.h"
#include "core/int4.h"
#include "cuda/attention_frag.cuh"
#include "cuda/common.cuh"
#include "cuda/int4_frag.cuh"
#include "cuda/sm90.cuh"

namespace {

constexpr int WARPS = 8;            /* 16-row strips a CTA */
constexpr int ROWS = 16 * WARPS;    /* weight rows a CTA */
constexpr int TOKENS = 16;          /* tokens a launch: two mma N tiles of 8 */
constexpr int CHUNK = 128;          /* K a step: 4 lanes x 32 codes of a row */
constexpr int STAGES = 4;           /* chunks of codes in flight a lane (its cp.async ring) */
constexpr int MAX_SPLITS = 8;       /* portable cluster size */
constexpr int MAX_SLICE = 4608;     /* K a CTA: x's slice, the scales and the ring fit shared memory */
constexpr int RING_BYTES = WARPS * STAGES * 2 * 32 * 16;
static_assert(CHUNK == 4 * 32, "a chunk row is four lanes' 16-byte loads of 32 codes");
static_assert(CHUNK % 64 == 0, "a lane's 32 codes never straddle a group of 64 or 128");
static_assert(MAX_SLICE % CHUNK == 0, "a slice is whole chunks");
/* The most dynamic shared memory a launch asks for: x [TOKENS][MAX_SLICE / 8 + 4] uint4, the scales
 * [ROWS][MAX_SLICE / 64] u32 (groups of 64), the ring; the partial sums are static. */
constexpr int MAX_DYNAMIC_SMEM = TOKENS * (MAX_SLICE / 8 + 4) * 16 + ROWS * (MAX_SLICE / 64) * 4 + RING_BYTES;
static_assert(MAX_DYNAMIC_SMEM + WARPS * 2 * 32 * 16 <= 227 * 1024, "one CTA's shared memory fits an SM's");

struct w4a16_args {
  const uint16_t *x;
  int64_t ldx;
  const uint8_t *codes;
  int64_t ldc;
  const uint16_t *scales;
  const uint8_t *zeros; /* NULL: symmetric (z = 8) */
  int ng, group;
  const void *bias;
  int bias_f32;
  uint16_t *y;
  int64_t ldy;
  int M, N, K;
  int kslice; /* K a cluster rank: a multiple of CHUNK */
  int m0;     /* first token of this launch */
};

/* grid.x = row tiles x splits (the cluster splits K), one launch per 16
 * tokens. NT: mma N tiles (1: at most 8 tokens). Shared memory, in order:
 * - x's slice, [TOKENS][kslice / 8 + 4] uint4, lane t's word i of chunk c
 *   (8 k from 128 c + 32 t + 8 i) at 16 c + 4 i + t, its pairs in the
 *   order (x0 x4)(x1 x5)(x2 x6)(x3 x7); the 4-uint4 pad puts rows g and
 *   g + 1 of a 16-byte load phase on different banks;
 * - the CTA's scales and zero points, [ROWS][kslice / group] u32: the bf16
 *   scale in the low half, bf16 128 + z in the high half (out of range:
 *   scale 0, so the weight is 0);
 * - each lane's ring of STAGES chunks (16 bytes of rows g and g + 8 each),
 *   filled by its own cp.async and read by itself only: no barrier. */
template <int NT>
__global__ void __launch_bounds__(WARPS * 32) w4a16_decode_kernel(const w4a16_args a) {
  extern __shared__ uint4 smem[];
  __shared__ float4 part[WARPS][NT][32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int splits = (int)llmk_cluster_size(), rank = (int)llmk_cluster_rank();
  const int tile = (int)blockIdx.x / splits;
  const int kbeg = rank * a.kslice, kend = min(a.K, kbeg + a.kslice);
  const int row16 = a.kslice / 8 + 4, gps = a.kslice / a.group; /* groups a slice */
  uint4 *xs = smem;
  uint32_t *sz = reinterpret_cast<uint32_t *>(xs + TOKENS * row16);
  uint4 *ring = reinterpret_cast<uint4 *>(sz + ROWS * gps) + warp * (STAGES * 2 * 32) + lane;

  const int r_lo = tile * ROWS + warp * 16 + g, r_hi = r_lo + 8;
  const bool ok_lo = r_lo < a.N, ok_hi = r_hi < a.N;
  const uint8_t *p_lo = a.codes + (int64_t)(ok_lo ? r_lo : 0) * a.ldc + kbeg / 2 + 16 * t;
  const uint8_t *p_hi = a.codes + (int64_t)(ok_hi ? r_hi : 0) * a.ldc + kbeg / 2 + 16 * t;
  const int nchunks = (kend - kbeg + CHUNK - 1) / CHUNK;
  /* chunk c of this lane into ring slot c % STAGES (zeros past the slice or N) */
  auto fetch = [&](int c) {
    const bool in = c < nchunks && kbeg + c * CHUNK + 32 * t < kend;
    uint4 *slot = ring + (c % STAGES) * 64;
    cp_async_zfill<16>(slot, p_lo + (in && ok_lo ? c * (CHUNK / 2) : 0), in && ok_lo ? 16 : 0);
    cp_async_zfill<16>(slot + 32, p_hi + (in && ok_hi ? c * (CHUNK / 2) : 0), in && ok_hi ? 16 : 0);
    cp_async_commit();
  };

  llmk_griddep_wait(); /* x may be the previous kernel's output */
  llmk_griddep_launch_dependents();
#pragma unroll
  for (int c = 0; c < STAGES - 1; c++) fetch(c); /* in flight while x and the scales are staged */
  /* x's slice: XBATCH 16-byte loads in flight a thread (one L2 round trip per batch, not per load) */
  constexpr int XBATCH = 8;
  const int per_row = a.kslice / 8, xtotal = TOKENS * per_row;
  for (int i0 = threadIdx.x; i0 < xtotal; i0 += XBATCH * WARPS * 32) {
    uint4 r[XBATCH];
#pragma unroll
    for (int u = 0; u < XBATCH; u++) {
      const int i = i0 + u * WARPS * 32, m = i / per_row, k = kbeg + 8 * (i % per_row);
      r[u] = make_uint4(0, 0, 0, 0);
      if (i < xtotal && a.m0 + m < a.M && k < kend) /* K % 64 == 0: 8 elements are all in or all out */
        r[u] = __ldg(reinterpret_cast<const uint4 *>(a.x + (int64_t)(a.m0 + m) * a.ldx + k));
    }
#pragma unroll
    for (int u = 0; u < XBATCH; u++) {
      const int i = i0 + u * WARPS * 32, m = i / per_row, o = i % per_row;
      if (i >= xtotal) break;
      uint4 v;
      v.x = __byte_perm(r[u].x, r[u].z, 0x5410), v.y = __byte_perm(r[u].x, r[u].z, 0x7632);
      v.z = __byte_perm(r[u].y, r[u].w, 0x5410), v.w = __byte_perm(r[u].y, r[u].w, 0x7632);
      xs[m * row16 + 16 * (o / 16) + 4 * (o % 4) + (o / 4) % 4] = v;
    }
  }
  /* the scales and zero points, SBATCH a thread at once */
  constexpr int SBATCH = 4;
  for (int i0 = threadIdx.x; i0 < ROWS * gps; i0 += SBATCH * WARPS * 32) {
    uint32_t v[SBATCH];
#pragma unroll
    for (int u = 0; u < SBATCH; u++) {
      const int i = i0 + u * WARPS * 32, rl = i / gps, gl = i % gps, r = tile * ROWS + rl;
      v[u] = 0x43000000u; /* scale 0 */
      if (i < ROWS * gps && r < a.N && gl * a.group + kbeg < kend) {
        const int64_t j = (int64_t)r * a.ng + kbeg / a.group + gl;
        v[u] = (uint32_t)a.scales[j] | (0x4300u + (a.zeros ? a.zeros[j] : 8u)) << 16;
      }
    }
#pragma unroll
    for (int u = 0; u < SBATCH; u++)
      if (i0 + u * WARPS * 32 < ROWS * gps) sz[i0 + u * WARPS * 32] = v[u];
  }
  __syncthreads();

  const uint32_t *sz_lo = sz + (warp * 16 + g) * gps, *sz_hi = sz_lo + 8 * gps;
  float acc[NT][4] = {};
#pragma unroll 2
  for (int c = 0; c < nchunks; c++) {
    fetch(c + STAGES - 1);
    cp_async_wait<STAGES - 1>(); /* this lane's chunk c has landed */
    const uint4 wl = ring[(c % STAGES) * 64], wh = ring[(c % STAGES) * 64 + 32];
    const int gl = (c * CHUNK + 32 * t) / a.group;
    const uint32_t vl = sz_lo[gl], vh = sz_hi[gl];
    const uint32_t s_lo = __byte_perm(vl, 0, 0x1010), z_lo = __byte_perm(vl, 0, 0x3232);
    const uint32_t s_hi = __byte_perm(vh, 0, 0x1010), z_hi = __byte_perm(vh, 0, 0x3232);
    const uint32_t lo[4] = {wl.x, wl.y, wl.z, wl.w}, hi[4] = {wh.x, wh.y, wh.z, wh.w};
#pragma unroll
    for (int i = 0; i < 4; i++) { /* word i: two mma */
      uint32_t pl[4], ph[4];
      llmk_int4_dequant_word(lo[i], z_lo, s_lo, pl);
      llmk_int4_dequant_word(hi[i], z_hi, s_hi, ph);
      const uint32_t a0[4] = {pl[0], ph[0], pl[1], ph[1]}, a1[4] = {pl[2], ph[2], pl[3], ph[3]};
#pragma unroll
      for (int n = 0; n < NT; n++) {
        const uint4 xv = xs[(g + 8 * n) * row16 + 16 * c + 4 * i + t];
        mma16816<false>(acc[n], a0, xv.x, xv.y);
        mma16816<false>(acc[n], a1, xv.z, xv.w);
      }
    }
  }
  cp_async_wait<0>(); /* no copy lands after the CTA's shared memory is gone */

#pragma unroll
  for (int n = 0; n < NT; n++) part[warp][n][lane] = make_float4(acc[n][0], acc[n][1], acc[n][2], acc[n][3]);
  if (splits > 1) llmk_cluster_sync(); /* every rank's partials are in its part */
  else __syncthreads();
  if (warp % splits != rank) { /* rank r sums the strips w with w % splits == r */
    if (splits > 1) llmk_cluster_sync();
    return;
  }
  float b[2] = {0.0f, 0.0f};
  if (a.bias)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int r = (h ? r_hi : r_lo);
      if (r < a.N)
        b[h] = a.bias_f32 ? static_cast<const float *>(a.bias)[r]
                          : __bfloat162float(static_cast<const __nv_bfloat16 *>(a.bias)[r]);
    }
#pragma unroll
  for (int n = 0; n < NT; n++) {
    float4 s = part[warp][n][lane];
    if (splits > 1) {
      s = llmk_ld_cluster_f32x4(llmk_cluster_map(&part[warp][n][lane], 0));
      for (int q = 1; q < splits; q++) { /* ranks in order */
        const float4 v = llmk_ld_cluster_f32x4(llmk_cluster_map(&part[warp][n][lane], (uint32_t)q));
        s.x += v.x, s.y += v.y, s.z += v.z, s.w += v.w;
      }
    }
    /* s: (row g, tokens 2t, 2t + 1), (row g + 8, the same tokens) of N tile n */
    const float v[4] = {s.x, s.y, s.z, s.w};
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int r = h ? r_hi : r_lo;
      if (r >= a.N) continue;
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int m = a.m0 + 8 * n + 2 * t + e;
        if (m < a.M)
          a.y[(int64_t)m * a.ldy + r] =
              __bfloat16_as_ushort(__float2bfloat16_rn(a.bias ? __fadd_rn(v[2 * h + e], b[h]) : v[2 * h + e]));
      }
    }
  }
  if (splits > 1) llmk_cluster_sync(); /* the other ranks' shared memory stays until read */
}

/* The K split of the decode kernel: clusters of up to 8 CTAs, enough CTAs
 * for two per SM where K allows, a slice within MAX_SLICE; 0 if K is too
 * deep for eight slices. A forced split is raised to the least that fits. */
int decode_splits(int64_t N, int64_t K, int sms, int forced) {
  const int64_t chunks = (K + CHUNK - 1) / CHUNK, tiles = (N + ROWS - 1) / ROWS;
  const int64_t least = (chunks + MAX_SLICE / CHUNK - 1) / (MAX_SLICE / CHUNK); /* slices that fit */
  if (least > MAX_SPLITS) return 0;
  if (forced > 0) return (int)(forced < least ? least : forced < chunks ? forced : chunks);
  int s = 1;
  while (s < MAX_SPLITS && 2 * s <= chunks && (tiles * s < 2 * sms || (chunks + s - 1) / s * CHUNK > 2048)) s *= 2;
  return s; /* least <= MAX_SPLITS: a slice of s fits whenever the loop stopped at 8 or at 2 s > chunks */
}

template <int NT>
llmk_status launch_decode(const w4a16_args &a, int splits, size_t smem, cudaStream_t st, const char *fn) {
  static bool attr_set[64]; /* per device; idempotent: a race only repeats the call */
  int dev = 0;
  LLMK_CUDA_TRY(cudaGetDevice(&dev), fn);
  if (dev >= 64 || !attr_set[dev]) {
    LLMK_CUDA_TRY(cudaFuncSetAttribute(w4a16_decode_kernel<NT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       MAX_DYNAMIC_SMEM),
                  fn);
    if (dev < 64) attr_set[dev] = true;
  }
  cudaLaunchConfig_t cfg = {};
  cudaLaunchAttribute at[2];
  const int64_t tiles = (a.N + ROWS - 1) / ROWS;
  cfg.gridDim = dim3((unsigned)(tiles * splits)), cfg.blockDim = dim3(WARPS * 32), cfg.dynamicSmemBytes = smem;
  cfg.stream = st, cfg.attrs = at, cfg.numAttrs = llmk_cluster_attrs(at, (unsigned)splits, llmk_env_get()->gemm_pdl);
  LLMK_CUDA_TRY(cudaLaunchKernelEx(&cfg, w4a16_decode_kernel<NT>, a), fn);
  return llmk_launch_check(fn, "w4a16_decode_kernel");
}

/* The decode kernel over every 16 tokens of p, K split `splits` ways (decode_splits). */
llmk_status run_decode(const llmk_w4a16_plan *p, int splits, cudaStream_t st, const char *fn) {
  if (splits == 0)
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn,
                          "K = %lld is deeper than the decode kernel's 8 slices of %d (and the stripes path "
                          "needs N and y's row stride a multiple of 8)",
                          (long long)p->w.K, MAX_SLICE);
  const int64_t chunks = (p->w.K + CHUNK - 1) / CHUNK, per = (chunks + splits - 1) / splits;
  w4a16_args a;
  a.x = static_cast<const uint16_t *>(p->x.data), a.ldx = p->x.ld;
  a.codes = static_cast<const uint8_t *>(p->w.codes.data), a.ldc = p->w.codes.ld;
  a.scales = p->w.scales, a.zeros = p->w.zeros, a.ng = (int)p->w.ngroups, a.group = (int)p->w.group;
  a.bias = p->bias, a.bias_f32 = p->bias && p->bias_dtype == LLMK_F32;
  a.y = static_cast<uint16_t *>(p->y.data), a.ldy = p->y.ld;
  a.M = (int)p->M, a.N = (int)p->w.N, a.K = (int)p->w.K;
  a.kslice = (int)(per * CHUNK);
  const int used = (int)((chunks + per - 1) / per); /* every rank has a chunk */
  const size_t smem = (size_t)TOKENS * (a.kslice / 8 + 4) * 16 + (size_t)ROWS * (a.kslice / a.group) * 4 + RING_BYTES;
  for (int64_t m0 = 0; m0 < p->M; m0 += TOKENS) {
    a.m0 = (int)m0;
    const llmk_status s = p->M - m0 <= 8 ? launch_decode<1>(a, used, smem, st, fn) : launch_decode<2>(a, used, smem, st, fn);
    if (s) return s;
  }
  return LLMK_SUCCESS;
}

/* Stripes of W's rows dequantized into the handle's workspace, each run
 * through llmk_gemm_bf16's dispatcher into y's columns. */
llmk_status run_stripes(llmk_handle h, const llmk_w4a16_plan *p, cudaStream_t st, const char *fn) {
  const int64_t K = p->w.K, N = p->w.N;
  const size_t room = h->workspace_bytes > LLMK_MIN_WORKSPACE_BYTES ? h->workspace_bytes - LLMK_MIN_WORKSPACE_BYTES : 0;
  int64_t rows = (int64_t)(room / ((size_t)K * 2)) / ROWS * ROWS;
  if (rows < ROWS)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "the handle's workspace (%zu bytes, less cuBLASLt's %zu) cannot hold %d dequantized rows "
                          "of K = %lld (give it more with llmk_set_workspace)",
                          h->workspace_bytes, (size_t)LLMK_MIN_WORKSPACE_BYTES, ROWS, (long long)K);
  if (rows > N) rows = (N + 7) / 8 * 8;
  for (int64_t n0 = 0; n0 < N; n0 += rows) {
    const int64_t nr = N - n0 < rows ? N - n0 : rows;
    llmk_int4_plan d = p->w;
    d.N = nr;
    d.codes.data = static_cast<uint8_t *>(p->w.codes.data) + n0 * p->w.codes.ld;
    d.codes.rows = nr;
    d.scales = p->w.scales + n0 * p->w.ngroups;
    d.zeros = p->w.zeros ? p->w.zeros + n0 * p->w.ngroups : NULL;
    d.w.data = h->workspace, d.w.dtype = LLMK_BF16, d.w.rows = nr, d.w.cols = K, d.w.ld = K;
    llmk_status s = llmk_cuda_int4_dequantize(h, &d, st);
    if (s) return s;
    llmk_gemm_plan g;
    memset(&g, 0, sizeof g);
    g.scaling = LLMK_SCALING_TENSOR; /* unused: no scales */
    g.backend = LLMK_GEMM_AUTO;
    g.M = p->M, g.N = nr, g.K = K;
    g.in_dtype = LLMK_BF16;
    g.x = p->x.data, g.ldx = p->x.ld;
    g.w = h->workspace, g.ldw = K;
    g.x_bm = 1;
    g.lt_ws_reserved = ((size_t)nr * K * 2 + 255) / 256 * 256;
    g.bias = p->bias ? static_cast<const char *>(p->bias) + n0 * (p->bias_dtype == LLMK_BF16 ? 2 : 4) : NULL;
    g.bias_dtype = p->bias_dtype;
    g.y = static_cast<uint16_t *>(p->y.data) + n0, g.ldy = p->y.ld;
    g.x_planes = 1;
    if ((s = llmk_cuda_gemm_bf16(h, &g, st))) return s;
  }
  return LLMK_SUCCESS;
}

}  // namespace

extern "C" llmk_status llmk_cuda_gemm_w4a16(llmk_handle h, const llmk_w4a16_plan *p, void *stream) {
  static const char fn[] = "llmk_gemm_w4a16";
  if (p->M > INT32_MAX || p->w.N > INT32_MAX || p->w.K > INT32_MAX)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "M, N and K must each be below 2^31");
  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, fn);
  if (s) return s;
  const cudaStream_t st = (cudaStream_t)stream;
  /* the stripes need llmk_gemm_bf16's layout: N and y's row stride multiples of 8 */
  const bool stripes_ok = p->w.N % 8 == 0 && (p->M == 1 || p->y.ld % 8 == 0);
  const int forced = llmk_env_get()->w4a16_stripes;
  const int splits = decode_splits(p->w.N, p->w.K, h->gemm_dev.sm_count, llmk_env_get()->w4a16_splits);
  const bool stripes = stripes_ok && (forced == 1 || (forced != 0 && (p->M > TOKENS || splits == 0)));
  s = stripes ? run_stripes(h, p, st, fn) : run_decode(p, splits, st, fn);
  return llmk_scope_leave(h, &sc, s, fn);
}
