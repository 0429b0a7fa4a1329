/* What the MoE ops' two CUDA files share (moe_route.cu: routing, and
 * routing + permutation in one launch; moe.cu: the permutation, gather
 * and combine): the permutation's arguments, its CTA scan and its
 * one-CTA form for few picks (which the one-launch route + permute runs
 * after routing), and the host's view of them. */
#ifndef LLMK_CUDA_MOE_COMMON_CUH
#define LLMK_CUDA_MOE_COMMON_CUH

#include "core/moe.h"
#include "cuda/common.cuh"

namespace llmk_moe {

constexpr unsigned FULL = 0xffffffffu;

__device__ __forceinline__ float canonical_nan(float w) { return w != w ? __int_as_float(0x7FC00000) : w; }

constexpr int PERM_THREADS = 1024, PERM_WARPS = PERM_THREADS / 32;
constexpr int PERM_CHUNK = 4096; /* picks per CTA */
static_assert(PERM_CHUNK % (32 * PERM_WARPS) == 0, "each warp walks whole batches of 32 picks");

struct permute_args {
  const int32_t *ids;
  int32_t *sizes, *offsets, *row_of, *src_of;
  int32_t *hist; /* [chunks, G] of the count kernel; unused with one chunk */
  int64_t picks, R, expert_begin, m_max;
  int G, chunks;
  bool masked;
};

__device__ __forceinline__ int local_expert(const permute_args &a, int64_t p) {
  const int64_t g = (int64_t)a.ids[p] - a.expert_begin;
  return g >= 0 && g < a.G ? (int)g : -1;
}

/* Exclusive prefix sum of v over the CTA's threads (thread i holds v_i),
 * and the total; `tmp` is __shared__ int[PERM_WARPS + 1]. */
__device__ __forceinline__ int cta_exclusive_scan(int v, int *tmp, int &total) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int x = v;
#pragma unroll
  for (int o = 1; o < 32; o *= 2) {
    const int y = __shfl_up_sync(FULL, x, o);
    if (lane >= o) x += y;
  }
  if (lane == 31) tmp[warp] = x;
  __syncthreads();
  if (warp == 0) {
    int w = lane < PERM_WARPS ? tmp[lane] : 0;
#pragma unroll
    for (int o = 1; o < 32; o *= 2) {
      const int y = __shfl_up_sync(FULL, w, o);
      if (lane >= o) w += y;
    }
    if (lane < PERM_WARPS) tmp[lane] = w; /* inclusive over warps */
  }
  __syncthreads();
  total = tmp[PERM_WARPS - 1];
  const int before = warp > 0 ? tmp[warp - 1] : 0;
  __syncthreads(); /* tmp may be reused by the caller */
  return before + x - v;
}

/* Few picks (at most PERM_THREADS, R at most PERM_FEW_ROWS) in one CTA:
 * pick p's rank within its expert is the count of the picks before it with
 * the same expert (a scan of gl[0 .. p), broadcast reads), the sizes come
 * from shared atomics (whose order does not matter), the first rows from a
 * CTA scan. gl: the picks' local experts (-1: dropped), in shared memory,
 * complete before the call; cnt [G + 1], szs [G], tmp [PERM_WARPS + 1]. */
constexpr int PERM_FEW_ROWS = 16384;
static_assert(LLMK_MOE_MAX_G <= PERM_THREADS, "one thread a group in the CTA scan");

__device__ inline void permute_few(const permute_args &a, const int *gl, int *cnt, int *szs, int *tmp) {
  const int tid = threadIdx.x, picks = (int)a.picks;
  for (int g = tid; g <= a.G; g += PERM_THREADS) cnt[g] = 0;
  __syncthreads();
  const int g = tid < picks ? gl[tid] : -1;
  int j = 0;
  if (g >= 0) {
    atomicAdd(&cnt[g], 1);
    for (int q = 0; q < tid; q++) j += gl[q] == g;
  }
  __syncthreads();
  const int n = tid < a.G ? cnt[tid] : 0;
  const int sz = a.masked ? (int)min((int64_t)n, a.m_max) : n;
  int total = 0;
  const int ex = cta_exclusive_scan(sz, tmp, total); /* its barriers order the reads of cnt before the writes */
  if (tid < a.G) {
    const int f = a.masked ? (int)(tid * a.m_max) : ex;
    cnt[tid] = f, szs[tid] = sz;
    a.sizes[tid] = sz;
    if (a.offsets) a.offsets[tid] = f;
  }
  if (tid == 0) {
    const int end = a.masked ? (int)(a.G * a.m_max) : total;
    cnt[a.G] = end;
    if (a.offsets) a.offsets[a.G] = end;
  }
  __syncthreads();
  if (tid < picks) {
    int row = -1;
    if (g >= 0 && (!a.masked || j < a.m_max)) row = cnt[g] + j;
    a.row_of[tid] = row;
    if (row >= 0) a.src_of[row] = tid;
  }
  if (!a.masked) {
    for (int64_t r = cnt[a.G] + tid; r < a.R; r += PERM_THREADS) a.src_of[r] = -1;
  } else {
    for (int64_t r = tid; r < a.R; r += PERM_THREADS)
      if (r % a.m_max >= szs[r / a.m_max]) a.src_of[r] = -1;
  }
}

__host__ __device__ inline bool permute_is_few(const permute_args &a) {
  return a.picks <= PERM_THREADS && a.R <= PERM_FEW_ROWS;
}

inline permute_args make_permute_args(llmk_handle h, const llmk_moe_permute_plan *p) {
  permute_args a;
  a.ids = p->ids, a.sizes = p->sizes, a.offsets = p->offsets, a.row_of = p->row_of, a.src_of = p->src_of;
  a.picks = p->T * p->k, a.R = p->R, a.expert_begin = p->expert_begin, a.m_max = p->m_max;
  a.G = (int)p->G, a.masked = p->layout == LLMK_GROUP_MASKED;
  a.chunks = (int)(a.picks > 0 ? (a.picks + PERM_CHUNK - 1) / PERM_CHUNK : 1);
  a.hist = static_cast<int32_t *>(h->workspace);
  return a;
}

inline llmk_status check_workspace(llmk_handle h, const permute_args &a, const char *fn) {
  if (a.chunks > 1 && (!h->workspace || (size_t)a.chunks * (size_t)a.G * sizeof(int32_t) > h->workspace_bytes))
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "the handle's workspace (%zu bytes) holds no %d x %d counts (set a larger one)",
                          h->workspace_bytes, a.chunks, a.G);
  return LLMK_SUCCESS;
}

/* The permutation's launches (moe.cu), inside the caller's device scope. */
llmk_status permute_launch(const permute_args &a, cudaStream_t st, const char *fn);

}  // namespace llmk_moe

#endif
