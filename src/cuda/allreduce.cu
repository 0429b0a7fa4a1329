/* The all-reduce kernels (include/llmk.h, llmk_allreduce): one-shot and
 * two-shot sums over the ranks' buffers, mapped here through CUDA IPC
 * (src/cuda/comm.cu sets them up; src/core/comm.h has the layout).
 *
 * A call on every rank launches the same grid. CTA b of a rank only ever
 * waits for CTA b of each peer, and handles the same element ranges on
 * every rank, so per-CTA flags suffice:
 *   barrier(X, b): __syncthreads; thread p < world writes E + 1 into peer
 *   p's flag slot X[b][rank] (release, system scope, after a system fence
 *   that orders the whole CTA's earlier writes) and then spins on its own
 *   slot X[b][p] (acquire, system scope) until it reaches E + 1 (counters
 *   only grow: a later call's value also satisfies the wait); a spin past
 *   the timeout records the missing rank in pinned host memory and the CTA
 *   abandons the call.
 * E is the communicator's call counter, in this rank's device memory: every
 * CTA reads it at the start, and the last CTA to finish increments it, so
 * replays of a captured graph keep counting (no host value is baked in).
 * Calls alternate between the two parity buffers (E % 2): a rank can start
 * call E + 2 only after every peer arrived at call E + 1's barrier, i.e.
 * finished call E and its reads of this parity buffer.
 *
 * one-shot: copy the CTA's slice of x into the parity buffer; barrier A;
 *   sum the slice over all ranks' buffers in rank order (fp32), add the
 *   residual, store y. Registered input (x is the registered buffer): no
 *   copy, and barrier C at the end (peers read the registered buffer
 *   directly, so the caller may not overwrite it before they are done).
 * two-shot: the message is cut into `world` segments; CTA b owns chunk b
 *   of every segment. Copy in; barrier A; reduce chunk b of this rank's
 *   segment over all ranks: the fp32 sums into this call's results area
 *   (parity E % 2, safe by the same argument), y = round(sum + residual);
 *   barrier B; gather chunk b of every other segment's fp32 sums from its
 *   owner and round them with this rank's residual: every element is
 *   rounded once, as in one-shot, and ranks may have different residuals.
 * Peers' data is read with L2-only loads (never a possibly stale L1 line). */
#include "core/comm.h"
#include "cuda/allreduce.h"
#include "cuda/common.cuh"

namespace {

__device__ __forceinline__ void st_release_sys(uint32_t *p, uint32_t v) {
  asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ uint32_t ld_acquire_sys(const uint32_t *p) {
  uint32_t v;
  asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ uint64_t globaltimer() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

/* 16 bytes as fp32 values (8 for bf16 / f16, 4 for f32), exactly. */
template <typename T> struct vec;
template <> struct vec<__nv_bfloat16> {
  static constexpr int N = 8;
  static __device__ __forceinline__ void add(const uint4 &u, float (&a)[8]) {
    float f[8];
    llmk_unpack_bf16x8(u, f);
#pragma unroll
    for (int i = 0; i < 8; i++) a[i] += f[i];
  }
  static __device__ __forceinline__ uint4 pack(const float (&a)[8]) {
    uint32_t w[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const __nv_bfloat162 h = __floats2bfloat162_rn(a[2 * i], a[2 * i + 1]);
      w[i] = *reinterpret_cast<const uint32_t *>(&h);
    }
    return make_uint4(w[0], w[1], w[2], w[3]);
  }
};
template <> struct vec<__half> {
  static constexpr int N = 8;
  static __device__ __forceinline__ void add(const uint4 &u, float (&a)[8]) {
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const float2 f = __half22float2(*reinterpret_cast<const __half2 *>(&w[i]));
      a[2 * i] += f.x;
      a[2 * i + 1] += f.y;
    }
  }
  static __device__ __forceinline__ uint4 pack(const float (&a)[8]) {
    uint32_t w[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const __half2 h = __floats2half2_rn(a[2 * i], a[2 * i + 1]);
      w[i] = *reinterpret_cast<const uint32_t *>(&h);
    }
    return make_uint4(w[0], w[1], w[2], w[3]);
  }
};
template <> struct vec<float> {
  static constexpr int N = 4;
  static __device__ __forceinline__ void add(const uint4 &u, float (&a)[4]) {
    a[0] += __uint_as_float(u.x), a[1] += __uint_as_float(u.y);
    a[2] += __uint_as_float(u.z), a[3] += __uint_as_float(u.w);
  }
  static __device__ __forceinline__ uint4 pack(const float (&a)[4]) {
    return make_uint4(__float_as_uint(a[0]), __float_as_uint(a[1]), __float_as_uint(a[2]), __float_as_uint(a[3]));
  }
};

/* Sum of vector v over ranks 0..world-1 of the buffers at byte offset off,
 * in rank order, into acc (fp32). -0 starts the sum: -0 + x = x exactly for
 * every x (+0 would turn a -0 input into +0). */
template <typename T>
__device__ __forceinline__ void sum_vec(const llmk_ar_args &a, size_t off, int64_t v, float (&acc)[vec<T>::N]) {
#pragma unroll
  for (int i = 0; i < vec<T>::N; i++) acc[i] = -0.0f;
#pragma unroll 1
  for (int r = 0; r < a.world; r++) vec<T>::add(__ldcg(reinterpret_cast<const uint4 *>(a.peer[r] + off) + v), acc);
}

/* y[v] = round(acc + residual[v]): one rounding after the fp32 sum. */
template <typename T>
__device__ __forceinline__ void store_y(const llmk_ar_args &a, int64_t v, float (&acc)[vec<T>::N]) {
  if (a.residual) vec<T>::add(reinterpret_cast<const uint4 *>(a.residual)[v], acc);
  reinterpret_cast<uint4 *>(a.y)[v] = vec<T>::pack(acc);
}

/* Returns false when a peer did not arrive in time (fault recorded). */
__device__ bool barrier(const llmk_ar_args &a, int which, uint32_t target) {
  __shared__ int failed;
  const int t = threadIdx.x;
  if (t == 0) failed = 0;
  __syncthreads();
  const size_t slot = (size_t)which * LLMK_COMM_FLAG_WORDS + (size_t)blockIdx.x * LLMK_COMM_MAX_RANKS;
  if (t < a.world) {
    uint32_t *peer_flags = reinterpret_cast<uint32_t *>(a.peer[t] + a.flags_off);
    __threadfence_system(); /* the CTA's writes (ordered before by the barrier above) go first */
    st_release_sys(peer_flags + slot + a.rank, target);
    const uint32_t *mine = reinterpret_cast<const uint32_t *>(a.peer[a.rank] + a.flags_off) + slot + t;
    const uint64_t t0 = globaltimer();
    int spins = 0;
    while ((int32_t)(ld_acquire_sys(mine) - target) < 0) {
      if (++spins % 64 == 0 && globaltimer() - t0 > a.timeout_ns) {
        /* plain stores (PCIe may not carry atomics to host memory); CTAs
         * that time out together write the same kind of record */
        volatile llmk_comm_fault *f = a.fault;
        f->missing = (uint32_t)t;
        f->epoch = target - 1;
        f->barrier = (uint32_t)which;
        __threadfence_system();
        f->code = 1u;
        failed = 1;
        break;
      }
    }
  }
  __syncthreads();
  return !failed;
}

/* The last CTA to finish advances the call counter. */
__device__ void finish(const llmk_ar_args &a, uint32_t E) {
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    if (atomicAdd(a.done, 1u) == gridDim.x - 1) {
      *a.done = 0;
      __threadfence();
      atomicExch(a.epoch, E + 1);
    }
  }
}

/* Elements [lo, hi) (16-byte vectors) of CTA b's share of n vectors. */
__device__ __forceinline__ void share(int64_t n, int64_t &lo, int64_t &hi) {
  const int64_t per = (n + gridDim.x - 1) / gridDim.x;
  lo = min(n, (int64_t)blockIdx.x * per);
  hi = min(n, lo + per);
}

template <typename T>
__global__ void __launch_bounds__(512) oneshot_kernel(const __grid_constant__ llmk_ar_args a) {
  const uint32_t E = *(volatile uint32_t *)a.epoch;
  const size_t buf = a.registered ? 2 * a.B : (E & 1) * a.B; /* where every rank's input lies */
  int64_t lo, hi;
  share(a.nvec, lo, hi);
  if (!a.registered) {
    uint4 *dst = reinterpret_cast<uint4 *>(a.peer[a.rank] + buf);
    for (int64_t v = lo + threadIdx.x; v < hi; v += blockDim.x) dst[v] = reinterpret_cast<const uint4 *>(a.x)[v];
  }
  if (!barrier(a, 0, E + 1)) return;
  for (int64_t v = lo + threadIdx.x; v < hi; v += blockDim.x) {
    float acc[vec<T>::N];
    sum_vec<T>(a, buf, v, acc);
    store_y<T>(a, v, acc);
  }
  if (a.registered && !barrier(a, 2, E + 1)) return;
  finish(a, E);
}

template <typename T>
__global__ void __launch_bounds__(512) twoshot_kernel(const __grid_constant__ llmk_ar_args a) {
  const uint32_t E = *(volatile uint32_t *)a.epoch;
  const size_t par = (E & 1) * a.B, src = a.registered ? 2 * a.B : par; /* the inputs */
  /* segments of seg vectors (the last one shorter); CTA b: chunk b of each */
  const int64_t seg = (a.nvec + a.world - 1) / a.world;
  int64_t lo, hi;
  share(seg, lo, hi);
  if (!a.registered) {
    uint4 *dst = reinterpret_cast<uint4 *>(a.peer[a.rank] + par);
    for (int s = 0; s < a.world; s++) {
      const int64_t s0 = (int64_t)s * seg, e = min(a.nvec, s0 + hi);
      for (int64_t v = s0 + lo + threadIdx.x; v < e; v += blockDim.x) dst[v] = reinterpret_cast<const uint4 *>(a.x)[v];
    }
  }
  if (!barrier(a, 0, E + 1)) return;
  /* this rank's segment: the fp32 sums (no residual: each rank adds its
   * own) go to the results area of this call's parity, N / 4 float4 per
   * vector, indexed from the segment's start */
  constexpr int F4 = vec<T>::N / 4;
  const size_t res = a.res_off + (E & 1) * a.res_half;
  {
    const int64_t s0 = (int64_t)a.rank * seg, e = min(a.nvec, s0 + hi);
    float4 *out = reinterpret_cast<float4 *>(a.peer[a.rank] + res);
    for (int64_t v = s0 + lo + threadIdx.x; v < e; v += blockDim.x) {
      float acc[vec<T>::N];
      sum_vec<T>(a, src, v, acc);
#pragma unroll
      for (int i = 0; i < F4; i++) out[(v - s0) * F4 + i] = make_float4(acc[4 * i], acc[4 * i + 1], acc[4 * i + 2], acc[4 * i + 3]);
      store_y<T>(a, v, acc);
    }
  }
  if (!barrier(a, 1, E + 1)) return;
  for (int s = 0; s < a.world; s++) {
    if (s == a.rank) continue;
    const int64_t s0 = (int64_t)s * seg, e = min(a.nvec, s0 + hi);
    const float4 *in = reinterpret_cast<const float4 *>(a.peer[s] + res);
    for (int64_t v = s0 + lo + threadIdx.x; v < e; v += blockDim.x) {
      float acc[vec<T>::N];
#pragma unroll
      for (int i = 0; i < F4; i++) {
        const float4 f = __ldcg(in + (v - s0) * F4 + i);
        acc[4 * i] = f.x, acc[4 * i + 1] = f.y, acc[4 * i + 2] = f.z, acc[4 * i + 3] = f.w;
      }
      store_y<T>(a, v, acc);
    }
  }
  finish(a, E);
}

/* y = x + residual (after NCCL's sum), in fp32, rounded once. */
template <typename T>
__global__ void add_kernel(const T *x, const T *r, T *y, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float v = __fadd_rn((float)x[i], (float)r[i]);
    y[i] = (T)v;
  }
}

}  // namespace

llmk_status llmk_ar_launch(const llmk_ar_args &a, llmk_allreduce_algo algo, llmk_dtype dt, int grid, int block,
                           cudaStream_t st, const char *fn) {
  const bool one = algo == LLMK_ALLREDUCE_ONESHOT;
  switch (dt) {
    case LLMK_BF16:
      if (one) oneshot_kernel<__nv_bfloat16><<<grid, block, 0, st>>>(a);
      else twoshot_kernel<__nv_bfloat16><<<grid, block, 0, st>>>(a);
      break;
    case LLMK_F16:
      if (one) oneshot_kernel<__half><<<grid, block, 0, st>>>(a);
      else twoshot_kernel<__half><<<grid, block, 0, st>>>(a);
      break;
    default:
      if (one) oneshot_kernel<float><<<grid, block, 0, st>>>(a);
      else twoshot_kernel<float><<<grid, block, 0, st>>>(a);
      break;
  }
  return llmk_launch_check(fn, one ? "allreduce oneshot_kernel" : "allreduce twoshot_kernel");
}

llmk_status llmk_ar_add_residual(llmk_dtype dt, const void *x, const void *r, void *y, int64_t n, int sm_count,
                                 cudaStream_t st, const char *fn) {
  const int64_t want = (n + 255) / 256;
  const int grid = (int)(want < 4 * (int64_t)sm_count ? want : 4 * sm_count);
  switch (dt) {
    case LLMK_BF16:
      add_kernel<<<grid, 256, 0, st>>>((const __nv_bfloat16 *)x, (const __nv_bfloat16 *)r, (__nv_bfloat16 *)y, n);
      break;
    case LLMK_F16:
      add_kernel<<<grid, 256, 0, st>>>((const __half *)x, (const __half *)r, (__half *)y, n);
      break;
    default:
      add_kernel<<<grid, 256, 0, st>>>((const float *)x, (const float *)r, (float *)y, n);
      break;
  }
  return llmk_launch_check(fn, "allreduce add_kernel");
}
