/* Per-tensor quantization of small contiguous tensors (decode activations,
 * 32K to 256K elements) in one launch. The general path needs a zeroed
 * scale, an amax kernel, a quantize kernel and a finalize (8.3 us in a graph
 * at 16 x 8192 on the H100, torch.compile 5.1 us); one CTA is too little
 * bandwidth past 32K elements. Here one cluster of CLUSTER_CTAS CTAs holds
 * the whole tensor in registers: each CTA reduces its share, the CTAs
 * exchange their maxima through distributed shared memory, and every CTA
 * quantizes its share from registers. One pass, no workspace, nothing to
 * reset between graph replays. */
#include "cuda/common.cuh"
#include "cuda/launch.h"
#include "cuda/sm90.cuh"

#define CLUSTER_CTAS 8 /* the portable cluster size limit */

/* Max |x| over the finite elements of a raw vector at [c, c + VEC) that lie
 * below `lim` (the rows that count towards the scale). */
template <typename T>
__device__ __forceinline__ float raw_amax_below(const uint4 &u, int64_t c, int64_t lim, float m) {
  constexpr int V = llmk_elem<T>::VEC;
  if (c + V <= lim) return llmk_raw_amax<T>(u, m);
  float f[V];
  llmk_unpack<T>(u, f);
#pragma unroll
  for (int i = 0; i < V; i++)
    if (c + i < lim) m = llmk_amax1(m, f[i]);
  return m;
}

/* x and q are n contiguous elements; the scale is taken over the first
 * n_amax of them (num_rows * K, or n). */
template <typename T, bool E5M2, int VPT>
__global__ void __cluster_dims__(CLUSTER_CTAS, 1, 1) __launch_bounds__(1024)
    quant_tensor_cluster_kernel(llmk_qargs a, int64_t n) {
  constexpr int V = llmk_elem<T>::VEC;
  __shared__ float red[32];
  __shared__ float cta_amax;
  int64_t n_amax = n;
  if (a.num_rows) n_amax = max((int64_t)0, min(*a.num_rows, a.M)) * a.K;
  const T *x = static_cast<const T *>(a.x);
  const int64_t first = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;

  uint4 raw[VPT];
  float amax = 0.0f;
#pragma unroll
  for (int i = 0; i < VPT; i++) {
    const int64_t c = (first + i * step) * V;
    raw[i] = c < n ? llmk_load_raw<T>(x, c, n, a.vec_ld) : make_uint4(0, 0, 0, 0);
    if (c < n_amax) amax = raw_amax_below<T>(raw[i], c, n_amax, amax);
  }
  amax = llmk_team_max(amax, blockDim.x, red);
  if (threadIdx.x == 0) cta_amax = amax;
  llmk_cluster_sync(); /* every CTA's cta_amax is written and visible */

  /* Each warp gathers the CLUSTER_CTAS maxima itself: no further CTA barrier. */
  const int lane = threadIdx.x % 32;
  float m = lane < CLUSTER_CTAS ? llmk_ld_cluster_f32(llmk_cluster_map(&cta_amax, (uint32_t)lane)) : 0.0f;
  m = llmk_group_max(m, 32);
  llmk_cluster_arrive_relaxed(); /* done reading peers' shared memory */

  const float s = llmk_scale_from_amax<E5M2>(m, a.ub);
  const float inv = __fdiv_rn(1.0f, s);
  if (blockIdx.x == 0 && threadIdx.x == 0) a.scale[0] = s;
#pragma unroll
  for (int i = 0; i < VPT; i++) {
    const int64_t c = (first + i * step) * V;
    if (c < n) llmk_quant_store<T, E5M2>(a.q, c, n, a.vec_st, raw[i], inv);
  }
  llmk_cluster_wait(); /* no CTA leaves while a peer may still read its cta_amax */
}

template <typename T, bool E5M2>
static void launch_vpt(llmk_qargs a, int64_t n, int threads, int vpt, cudaStream_t st) {
  switch (vpt) {
    case 1: quant_tensor_cluster_kernel<T, E5M2, 1><<<CLUSTER_CTAS, threads, 0, st>>>(a, n); break;
    case 2: quant_tensor_cluster_kernel<T, E5M2, 2><<<CLUSTER_CTAS, threads, 0, st>>>(a, n); break;
    default: quant_tensor_cluster_kernel<T, E5M2, 4><<<CLUSTER_CTAS, threads, 0, st>>>(a, n); break;
  }
}

template <typename T>
static void launch_type(bool e5m2, llmk_qargs a, int64_t n, int threads, int vpt, cudaStream_t st) {
  if (e5m2)
    launch_vpt<T, true>(a, n, threads, vpt, st);
  else
    launch_vpt<T, false>(a, n, threads, vpt, st);
}

int llmk_tensor_cluster_ctas(void) { return CLUSTER_CTAS; }

llmk_status llmk_launch_quant_tensor_cluster(llmk_dtype xt, bool e5m2, llmk_qargs a, int64_t n, int threads,
                                             int vpt, cudaStream_t st) {
  if (xt == LLMK_F32) launch_type<float>(e5m2, a, n, threads, vpt, st);
  else if (xt == LLMK_F16) launch_type<__half>(e5m2, a, n, threads, vpt, st);
  else launch_type<__nv_bfloat16>(e5m2, a, n, threads, vpt, st);
  return llmk_launch_check("llmk_quantize_fp8", "quant_tensor_cluster_kernel");
}
