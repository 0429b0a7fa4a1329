/* The MoE ops' CUDA kernels after routing (llmk.h, "Mixture of
 * experts"; routing is moe_route.cu): the permutation (one CTA for few
 * picks, else a count kernel and a placement kernel over chunks of picks;
 * one launch when the picks fit one chunk), the gathered quantization (the
 * row quantizer with a gather) and the combine. No float atomics anywhere:
 * every sum runs in the order llmk.h states, with core/moe.h's scalar
 * numerics, so the CPU reference matches bit for bit. Integer counts use
 * shared-memory atomics, whose result does not depend on their order. */
#include "core/env.h"
#include "cuda/heuristics.h"
#include "cuda/launch.h"
#include "cuda/moe_common.cuh"

namespace {

using namespace llmk_moe;

/* ---- permutation ------------------------------------------------------- */

/* hist[c][g]: the picks of chunk c that go to local expert g. */
__global__ void __launch_bounds__(PERM_THREADS) permute_count_kernel(permute_args a) {
  extern __shared__ int cnt[];
  for (int g = threadIdx.x; g < a.G; g += PERM_THREADS) cnt[g] = 0;
  __syncthreads();
  const int64_t p0 = (int64_t)blockIdx.x * PERM_CHUNK;
  for (int64_t p = p0 + threadIdx.x; p < a.picks && p < p0 + PERM_CHUNK; p += PERM_THREADS) {
    const int g = local_expert(a, p);
    if (g >= 0) atomicAdd(&cnt[g], 1);
  }
  __syncthreads();
  for (int g = threadIdx.x; g < a.G; g += PERM_THREADS) a.hist[(int64_t)blockIdx.x * a.G + g] = cnt[g];
}

/* Chunk c's picks placed: per-warp counts, their prefix over the warps,
 * the chunks before (hist) and the groups' first rows give each warp a
 * base per expert; the warp then walks its picks in order, 32 at a time,
 * ranking equal experts by lane. */
__global__ void __launch_bounds__(PERM_THREADS) permute_place_kernel(permute_args a) {
  extern __shared__ int smem[];
  int *wbase = smem;                 /* [PERM_WARPS][G]: counts, then bases */
  int *first = wbase + PERM_WARPS * a.G; /* [G + 1]: each group's first row */
  int *sizes = first + a.G + 1;      /* [G] */
  __shared__ int tmp[PERM_WARPS + 1];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int i = threadIdx.x; i < PERM_WARPS * a.G; i += PERM_THREADS) wbase[i] = 0;
  __syncthreads();
  constexpr int PER_WARP = PERM_CHUNK / PERM_WARPS;
  const int64_t p0 = (int64_t)blockIdx.x * PERM_CHUNK + warp * PER_WARP;
  for (int64_t p = p0 + lane; p < a.picks && p < p0 + PER_WARP; p += 32) {
    const int g = local_expert(a, p);
    if (g >= 0) atomicAdd(&wbase[warp * a.G + g], 1);
  }
  __syncthreads();
  /* per expert: prefix over the warps, the chunks before, the total */
  for (int g = threadIdx.x; g < a.G; g += PERM_THREADS) {
    int run = 0;
    for (int w = 0; w < PERM_WARPS; w++) {
      const int c = wbase[w * a.G + g];
      wbase[w * a.G + g] = run;
      run += c;
    }
    int before = 0, total = run;
    for (int c = 0; c < a.chunks; c++) {
      if (c == (int)blockIdx.x) continue;
      const int n = a.hist[(int64_t)c * a.G + g];
      total += n;
      if (c < (int)blockIdx.x) before += n;
    }
    /* the within-expert rank of this warp's first pick, parked in first[] for now */
    first[g] = before;
    sizes[g] = a.masked ? (int)min((int64_t)total, a.m_max) : total;
  }
  __syncthreads();
  /* first rows: the prefix of the sizes (stacked) or g m_max (masked), G <= 1024 */
  int run_total = 0;
  const int gi = threadIdx.x;
  const int sz = gi < a.G ? sizes[gi] : 0;
  const int ex = cta_exclusive_scan(sz, tmp, run_total);
  int before_g = 0;
  if (gi < a.G) before_g = first[gi];
  __syncthreads();
  if (gi < a.G) {
    const int f = a.masked ? (int)(gi * a.m_max) : ex;
    first[gi] = f;
    for (int w = 0; w < PERM_WARPS; w++) wbase[w * a.G + gi] += before_g; /* within-expert ranks */
    if (blockIdx.x == 0) {
      a.sizes[gi] = sz;
      if (a.offsets) a.offsets[gi] = f;
    }
  }
  if (threadIdx.x == 0) {
    first[a.G] = a.masked ? (int)(a.G * a.m_max) : run_total;
    if (blockIdx.x == 0 && a.offsets) a.offsets[a.G] = first[a.G];
  }
  __syncthreads();
  /* place: rank j within expert g -> row first[g] + j (masked: while j < m_max) */
  const unsigned lt = (1u << lane) - 1u;
  for (int64_t b = p0; b < a.picks && b < p0 + PER_WARP; b += 32) {
    const int64_t p = b + lane;
    const int g = p < a.picks ? local_expert(a, p) : -1;
    const unsigned peers = __match_any_sync(FULL, g);
    int row = -1;
    if (g >= 0) {
      const int j = wbase[warp * a.G + g] + __popc(peers & lt);
      if (!a.masked || j < a.m_max) row = first[g] + j;
    }
    __syncwarp();
    if (g >= 0 && (peers & lt) == 0) wbase[warp * a.G + g] += __popc(peers);
    __syncwarp();
    if (p < a.picks) {
      a.row_of[p] = row;
      if (row >= 0) a.src_of[row] = (int32_t)p;
    }
  }
  /* rows no pick fills: -1, spread over the CTAs */
  const int64_t stride = (int64_t)gridDim.x * PERM_THREADS;
  if (!a.masked) {
    for (int64_t r = first[a.G] + (int64_t)blockIdx.x * PERM_THREADS + threadIdx.x; r < a.R; r += stride)
      a.src_of[r] = -1;
  } else {
    for (int64_t r = (int64_t)blockIdx.x * PERM_THREADS + threadIdx.x; r < a.R; r += stride)
      if (r % a.m_max >= sizes[r / a.m_max]) a.src_of[r] = -1;
  }
}

__global__ void __launch_bounds__(PERM_THREADS) permute_few_kernel(permute_args a) {
  __shared__ int gl[PERM_THREADS], cnt[LLMK_MOE_MAX_G + 1], szs[LLMK_MOE_MAX_G], tmp[PERM_WARPS + 1];
  if (threadIdx.x < a.picks) gl[threadIdx.x] = local_expert(a, threadIdx.x);
  permute_few(a, gl, cnt, szs, tmp); /* its first barrier publishes gl */
}

/* ---- combine ----------------------------------------------------------- */

struct combine_args {
  const uint16_t *y, *add;
  uint16_t *out;
  int64_t ldy, lda, ldo, T, H, R;
  const int32_t *row_of;
  const float *weights;
  int k;
};

constexpr int COMBINE_THREADS = 128;

__device__ __forceinline__ uint16_t bf16_out(float acc) {
  return acc != acc ? (uint16_t)0x7FC0u : llmk_bf16_from_f32(acc);
}

/* One CTA per (token, 8 x COMBINE_THREADS columns); VEC: 16-byte rows. */
template <bool VEC>
__global__ void __launch_bounds__(COMBINE_THREADS) combine_kernel(combine_args a) {
  __shared__ int rows[LLMK_MOE_MAX_K];
  __shared__ float wts[LLMK_MOE_MAX_K];
  const int64_t t = blockIdx.x;
  if (threadIdx.x < a.k) {
    const int32_t r = a.row_of[t * a.k + threadIdx.x];
    rows[threadIdx.x] = r >= 0 && r < a.R ? r : -1;
    wts[threadIdx.x] = a.weights[t * a.k + threadIdx.x];
  }
  __syncthreads();
  const int64_t c = ((int64_t)blockIdx.y * COMBINE_THREADS + threadIdx.x) * 8;
  if (c >= a.H) return;
  float acc[8];
#pragma unroll
  for (int j = 0; j < 8; j++) acc[j] = 0.0f;
  const int n = VEC ? 8 : (int)min((int64_t)8, a.H - c);
  for (int s = 0; s < a.k; s++) {
    const int r = rows[s];
    if (r < 0) continue;
    const uint16_t *yr = a.y + (int64_t)r * a.ldy + c;
    if (VEC) {
      const uint4 u = __ldg(reinterpret_cast<const uint4 *>(yr));
      const uint32_t wd[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
      for (int j = 0; j < 8; j++)
        acc[j] = __fmaf_rn(wts[s], llmk_bf16_to_f32((uint16_t)(wd[j / 2] >> (16 * (j % 2)))), acc[j]);
    } else {
#pragma unroll
      for (int j = 0; j < 8; j++)
        if (j < n) acc[j] = __fmaf_rn(wts[s], llmk_bf16_to_f32(yr[j]), acc[j]);
    }
  }
  uint16_t o[8];
  if (a.add) {
    const uint16_t *ar = a.add + t * a.lda + c;
    if (VEC) {
      const uint4 u = *reinterpret_cast<const uint4 *>(ar); /* may be out itself: not __ldg */
      const uint32_t wd[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
      for (int j = 0; j < 8; j++) acc[j] = __fadd_rn(acc[j], llmk_bf16_to_f32((uint16_t)(wd[j / 2] >> (16 * (j % 2)))));
    } else {
#pragma unroll
      for (int j = 0; j < 8; j++)
        if (j < n) acc[j] = __fadd_rn(acc[j], llmk_bf16_to_f32(ar[j]));
    }
  }
#pragma unroll
  for (int j = 0; j < 8; j++) o[j] = bf16_out(acc[j]);
  uint16_t *orow = a.out + t * a.ldo + c;
  if (VEC) {
    uint4 u;
    u.x = o[0] | ((uint32_t)o[1] << 16), u.y = o[2] | ((uint32_t)o[3] << 16);
    u.z = o[4] | ((uint32_t)o[5] << 16), u.w = o[6] | ((uint32_t)o[7] << 16);
    *reinterpret_cast<uint4 *>(orow) = u;
  } else {
#pragma unroll
    for (int j = 0; j < 8; j++)
      if (j < n) orow[j] = o[j];
  }
}

/* ---- plain gather (bf16 xq) --------------------------------------------- */

struct gather_args {
  const uint16_t *x;
  uint16_t *xq;
  int64_t ldx, ldq, H, R, picks;
  const int32_t *src_of;
  int k;
};

template <bool VEC>
__global__ void __launch_bounds__(128) gather_bf16_kernel(gather_args a) {
  const int64_t r = blockIdx.x;
  const int32_t src = a.src_of[r];
  if (src < 0 || src >= a.picks) return;
  const uint16_t *x = a.x + (int64_t)(src / a.k) * a.ldx;
  uint16_t *q = a.xq + r * a.ldq;
  const int H = (int)a.H; /* < 2^31 elements a row */
  if (VEC) {
#pragma unroll 1
    for (int c = threadIdx.x * 8; c < H; c += 128 * 8)
      *reinterpret_cast<uint4 *>(q + c) = __ldg(reinterpret_cast<const uint4 *>(x + c));
  } else {
#pragma unroll 1
    for (int c = threadIdx.x; c < H; c += 128) q[c] = x[c];
  }
}

}  // namespace

namespace llmk_moe {

/* The permutation's launches: one CTA for few picks, one chunk's CTA, or
 * count + place over the chunks (inside the caller's device scope). */
llmk_status permute_launch(const permute_args &a, cudaStream_t st, const char *fn) {
  if (permute_is_few(a)) {
    permute_few_kernel<<<1, PERM_THREADS, 0, st>>>(a);
    return llmk_launch_check(fn, "permute_few_kernel");
  }
  const size_t smem = sizeof(int) * ((size_t)PERM_WARPS * a.G + 2 * (size_t)a.G + 1);
  llmk_status s;
  if (a.chunks > 1) {
    permute_count_kernel<<<(unsigned)a.chunks, PERM_THREADS, sizeof(int) * (size_t)a.G, st>>>(a);
    if ((s = llmk_launch_check(fn, "permute_count_kernel"))) return s;
  }
  if (smem > 48 * 1024) cudaFuncSetAttribute(permute_place_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  permute_place_kernel<<<(unsigned)a.chunks, PERM_THREADS, smem, st>>>(a);
  return llmk_launch_check(fn, "permute_place_kernel");
}

}  // namespace llmk_moe

using namespace llmk_moe;

extern "C" llmk_status llmk_cuda_moe_permute(llmk_handle h, const llmk_moe_permute_plan *p, void *stream) {
  static const char fn[] = "llmk_moe_permute";
  const permute_args a = make_permute_args(h, p);
  llmk_status s = check_workspace(h, a, fn);
  if (s) return s;
  llmk_device_scope sc;
  if ((s = llmk_scope_enter(h, &sc, fn))) return s;
  s = permute_launch(a, (cudaStream_t)stream, fn);
  return llmk_scope_leave(h, &sc, s, fn);
}

extern "C" llmk_status llmk_cuda_moe_gather_quant(llmk_handle h, const llmk_moe_gather_plan *p, void *stream) {
  static const char fn[] = "llmk_moe_gather_quant";
  if (p->R > INT32_MAX) return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "too many rows for one launch");
  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, fn);
  if (s) return s;
  const cudaStream_t st = (cudaStream_t)stream;
  if (p->xq.dtype == LLMK_BF16) {
    gather_args g;
    g.x = static_cast<const uint16_t *>(p->x.data), g.xq = static_cast<uint16_t *>(p->xq.data);
    g.ldx = p->x.ld, g.ldq = p->xq.ld, g.H = p->H, g.R = p->R, g.picks = p->T * p->k;
    g.src_of = p->src_of, g.k = p->k;
    const bool vec = p->H % 8 == 0 && llmk_rows_aligned(p->x, 16) &&
                     llmk_rows_aligned(p->xq, 16);
    if (vec) gather_bf16_kernel<true><<<(unsigned)p->R, 128, 0, st>>>(g);
    else gather_bf16_kernel<false><<<(unsigned)p->R, 128, 0, st>>>(g);
    s = llmk_launch_check(fn, "gather_bf16_kernel");
    return llmk_scope_leave(h, &sc, s, fn);
  }
  /* the row quantizer, reading row src_of[r] / k for output row r */
  const bool one_seg = p->gk >= p->H;
  llmk_qargs a = {};
  a.x = p->x.data, a.ldx = p->x.ld;
  a.q = static_cast<uint8_t *>(p->xq.data), a.ldq = p->xq.ld;
  a.scale = p->scale;
  a.M = p->R, a.K = p->H, a.gm = 1, a.gk = p->gk, a.ngc = p->nseg;
  a.ub = p->scale_ub;
  a.vec_ld = llmk_rows_aligned(p->x, 16) && (one_seg || (p->gk * 2) % 16 == 0);
  a.vec_st = llmk_rows_aligned(p->xq, 8) && (one_seg || p->gk % 8 == 0);
  a.vec_st2 = llmk_rows_aligned(p->xq, 16) && (one_seg || p->gk % 16 == 0);
  a.gather = p->src_of, a.gather_k = p->k, a.gather_n = p->T * p->k;
  const int64_t nvec = ((one_seg ? p->H : p->gk) + 7) / 8;
  s = llmk_launch_quant_rows(LLMK_BF16, false, a, llmk_team_config(nvec, p->R * p->nseg, h->sm_count), st);
  return llmk_scope_leave(h, &sc, s, fn);
}

extern "C" llmk_status llmk_cuda_moe_combine(llmk_handle h, const llmk_moe_combine_plan *p, void *stream) {
  static const char fn[] = "llmk_moe_combine";
  const int64_t col_blocks = (p->H + 8 * COMBINE_THREADS - 1) / (8 * COMBINE_THREADS);
  if (p->T > INT32_MAX || col_blocks > 65535)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "T = %lld, H = %lld: too large for one launch",
                          (long long)p->T, (long long)p->H);
  combine_args a;
  a.y = static_cast<const uint16_t *>(p->y.data), a.add = static_cast<const uint16_t *>(p->add.data);
  a.out = static_cast<uint16_t *>(p->out.data);
  a.ldy = p->y.ld, a.lda = p->add.ld, a.ldo = p->out.ld, a.T = p->T, a.H = p->H, a.R = p->R;
  a.row_of = p->row_of, a.weights = p->weights, a.k = p->k;
  const bool vec = p->H % 8 == 0 && llmk_rows_aligned(p->y, 16) &&
                   llmk_rows_aligned(p->out, 16) &&
                   (!p->add.data || llmk_rows_aligned(p->add, 16));
  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, fn);
  if (s) return s;
  const dim3 grid((unsigned)p->T, (unsigned)col_blocks);
  if (vec) combine_kernel<true><<<grid, COMBINE_THREADS, 0, (cudaStream_t)stream>>>(a);
  else combine_kernel<false><<<grid, COMBINE_THREADS, 0, (cudaStream_t)stream>>>(a);
  s = llmk_launch_check(fn, "combine_kernel");
  return llmk_scope_leave(h, &sc, s, fn);
}
