/* The BF16 GEMM for a few tokens (M <= 8 per tile): decode, where the
 * weights are read once and every byte of them costs more than the math.
 * mma.sync m16n8k16 with 16 weight rows as the A operand and 8 tokens as
 * B; each thread reads 16 contiguous bytes of two weight rows per 32-deep
 * chunk, so the chunk's K order is permuted the same way in A and B (a dot
 * product does not care). A CTA of 8 warps owns 16 weight rows; its warps,
 * and the CTAs of its cluster, split K, and the partial sums are added in
 * a fixed order (warps, then cluster ranks), so results repeat bit for bit
 * for a given split. */
#include <stdint.h>

#include "core/gemm.h"
#include "cuda/common.cuh"
#include "cuda/gemm_own.h"
#include "cuda/sm90.cuh"

namespace {

constexpr int WARPS = 8;   /* K parts per CTA */
constexpr int ROWS = 16;   /* weight rows per CTA (mma M) */
constexpr int TOKENS = 8;  /* tokens per CTA (mma N) */
constexpr int CHUNK = 32;  /* K per thread group step: 4 threads x 8 elements */
constexpr int UNROLL = 4;  /* chunks whose loads are in flight together (8 measured no faster) */
static_assert(CHUNK == 4 * 8, "a row's chunk is 4 threads' 16-byte loads");

struct gemv_args {
  const __nv_bfloat16 *x, *w;
  int64_t ldx, ldw, ldy;
  const void *bias;
  int bias_f32;
  __nv_bfloat16 *y;
  int M, N, K;
};

/* Weights are read once: no L1 allocation. */
__device__ __forceinline__ uint4 ld_stream(const __nv_bfloat16 *p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

/* d += A (16 x 16, rows g and g + 8 of this thread in a0..a3) . B (16 x 8). */
__device__ __forceinline__ void mma_bf16(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* grid.x = row tiles x cluster size (the cluster splits K), grid.y = token tiles. */
__global__ void __launch_bounds__(WARPS * 32) llmk_gemv_bf16_kernel(const gemv_args a) {
  __shared__ float4 part[WARPS][32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int csize = (int)llmk_cluster_size(), rank = (int)llmk_cluster_rank();
  const int n0 = (int)(blockIdx.x / csize) * ROWS, m0 = (int)blockIdx.y * TOKENS;
  /* this warp's chunks: part rank * WARPS + warp of csize * WARPS */
  const int nparts = csize * WARPS, p = rank * WARPS + warp, nchunks = (a.K + CHUNK - 1) / CHUNK;
  const int c_begin = (int)((int64_t)p * nchunks / nparts), c_end = (int)((int64_t)(p + 1) * nchunks / nparts);
  const bool row_lo = n0 + g < a.N, row_hi = n0 + g + 8 < a.N, tok = m0 + g < a.M;
  const __nv_bfloat16 *w_lo = a.w + (int64_t)(row_lo ? n0 + g : 0) * a.ldw + 8 * t;
  const __nv_bfloat16 *w_hi = a.w + (int64_t)(row_hi ? n0 + g + 8 : 0) * a.ldw + 8 * t;
  const __nv_bfloat16 *xr = a.x + (int64_t)(tok ? m0 + g : 0) * a.ldx + 8 * t;
  llmk_griddep_wait(); /* x (and y) may belong to the previous kernel */
  llmk_griddep_launch_dependents();
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  const uint4 zero = make_uint4(0, 0, 0, 0);
  for (int c = c_begin; c < c_end; c += UNROLL) {
    uint4 wl[UNROLL], wh[UNROLL], xv[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; u++) {
      const int k = (c + u) * CHUNK; /* K is a multiple of 8: a thread's 8 elements are all in or all out */
      const bool in = c + u < c_end && k + 8 * t < a.K;
      wl[u] = in && row_lo ? ld_stream(w_lo + k) : zero;
      wh[u] = in && row_hi ? ld_stream(w_hi + k) : zero;
      xv[u] = in && tok ? __ldg(reinterpret_cast<const uint4 *>(xr + k)) : zero;
    }
#pragma unroll
    for (int u = 0; u < UNROLL; u++) {
      /* elements 8t .. 8t+3 of the chunk as mma K 2t, 2t+1, 2t+8, 2t+9; 8t+4 .. 8t+7 in a second mma */
      mma_bf16(acc, wl[u].x, wh[u].x, wl[u].y, wh[u].y, xv[u].x, xv[u].y);
      mma_bf16(acc, wl[u].z, wh[u].z, wl[u].w, wh[u].w, xv[u].z, xv[u].w);
    }
  }
  part[warp][lane] = make_float4(acc[0], acc[1], acc[2], acc[3]);
  __syncthreads();
  if (warp == 0) { /* the CTA's sum, warps in order */
    float4 s = part[0][lane];
#pragma unroll
    for (int i = 1; i < WARPS; i++) {
      const float4 v = part[i][lane];
      s.x += v.x, s.y += v.y, s.z += v.z, s.w += v.w;
    }
    part[0][lane] = s;
  }
  if (csize > 1) llmk_cluster_sync(); /* every rank's sum is in its part[0] */
  if (rank == 0 && warp == 0) {
    float4 s = part[0][lane];
    for (int r = 1; r < csize; r++) {
      const float4 v = llmk_ld_cluster_f32x4(llmk_cluster_map(&part[0][lane], (uint32_t)r));
      s.x += v.x, s.y += v.y, s.z += v.z, s.w += v.w;
    }
    /* s: (row g, tokens 2t, 2t+1), (row g + 8, tokens 2t, 2t+1) */
    const float v[4] = {s.x, s.y, s.z, s.w};
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int n = n0 + g + 8 * h;
      if (n >= a.N) continue;
      float b = 0.0f;
      if (a.bias) b = a.bias_f32 ? ((const float *)a.bias)[n] : __bfloat162float(((const __nv_bfloat16 *)a.bias)[n]);
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int m = m0 + 2 * t + e;
        if (m < a.M) a.y[(int64_t)m * a.ldy + n] = __float2bfloat16_rn(a.bias ? __fadd_rn(v[2 * h + e], b) : v[2 * h + e]);
      }
    }
  }
  if (csize > 1) llmk_cluster_sync(); /* rank 0 has read every rank's shared memory */
}

} // namespace

extern "C" llmk_status llmk_own_gemv_bf16(const llmk_gemm_plan *p, int splits, int pdl, void *stream) {
  static const char fn[] = "llmk_gemm_bf16";
  if (splits < 1 || splits > LLMK_GEMV_MAX_SPLITS)
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn, "BF16 GEMV: K split %d outside 1..%d (its clusters)", splits,
                          LLMK_GEMV_MAX_SPLITS);
  const gemv_args a = {(const __nv_bfloat16 *)p->x,
                       (const __nv_bfloat16 *)p->w,
                       p->ldx,
                       p->ldw,
                       p->ldy,
                       p->bias,
                       p->bias && p->bias_dtype == LLMK_F32,
                       (__nv_bfloat16 *)p->y,
                       (int)p->M,
                       (int)p->N,
                       (int)p->K};
  const int64_t row_tiles = (p->N + ROWS - 1) / ROWS, tok_tiles = (p->M + TOKENS - 1) / TOKENS;
  if (row_tiles * splits > INT32_MAX || tok_tiles > 65535)
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn, "BF16 GEMV: %lld x %lld is too large a grid",
                          (long long)p->M, (long long)p->N);
  cudaLaunchConfig_t cfg = {};
  cudaLaunchAttribute at[2];
  cfg.gridDim = dim3((unsigned)(row_tiles * splits), (unsigned)tok_tiles), cfg.blockDim = dim3(WARPS * 32);
  cfg.stream = (cudaStream_t)stream, cfg.attrs = at, cfg.numAttrs = llmk_cluster_attrs(at, (unsigned)splits, pdl);
  LLMK_CUDA_TRY(cudaLaunchKernelEx(&cfg, llmk_gemv_bf16_kernel, a), fn);
  return llmk_launch_check(fn, "llmk_gemv_bf16_kernel");
}
