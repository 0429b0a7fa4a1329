/* Row-segment quantization: ROW scaling (one segment per row) and 1 x gk
 * BLOCK scaling (ceil(K/gk) segments per row). One pass over the input: a
 * team of tpr threads loads its segment into registers (VPT 16-byte vectors
 * each), reduces the amax across the team, and quantizes from registers.
 * Segments longer than tpr * VPT vectors (VPT == 0) are read twice, the
 * second time mostly from L2.
 *
 * With an even VPT a thread owns adjacent vector pairs (2t, 2t+1, then
 * + 2 tpr, ...) and writes each pair's FP8 bytes with one store: 16-byte
 * stores for 16-bit inputs. bench/lab/quant_rows_lab.cu measured this at
 * 16384 x 8192 bf16 on the H100: 136.0 us against 140.1 us with one 8-byte
 * store per vector (docs/PERFORMANCE_LOG.md, v4 against v1). */
#include "cuda/common.cuh"
#include "cuda/launch.h"

/* Slot i of thread t's VPT vectors -> vector index within the segment. */
template <int VPT>
__device__ __forceinline__ int64_t slot_vec(int i, int t, int tpr) {
  if (VPT % 2 == 0) return (int64_t)(i / 2) * 2 * tpr + 2 * t + (i % 2);
  return t + (int64_t)i * tpr;
}

template <typename T, bool E5M2, int VPT>
__global__ void __launch_bounds__(VPT >= 8 ? 512 : 1024) quant_rows_kernel(llmk_qargs a) {
  constexpr int V = llmk_elem<T>::VEC;
  __shared__ float red[32];
  const int tpr = a.tpr, t = threadIdx.x % tpr;
  const bool one_seg = a.gk >= a.K; /* ROW: no 64-bit division per thread */
  const int64_t nseg = one_seg ? 1 : (a.K + a.gk - 1) / a.gk;
  const int64_t unit = (int64_t)blockIdx.x * (blockDim.x / tpr) + threadIdx.x / tpr;
  bool active = unit < a.M * nseg;
  int64_t r = 0, c0 = 0, len = 0, rx = 0;
  if (active) {
    r = one_seg ? unit : unit / nseg;
    c0 = (unit - r * nseg) * a.gk;
    len = min(a.gk, a.K - c0);
    rx = r;
    if (a.gather) {
      const int32_t src = a.gather[r];
      if (src >= 0 && src < a.gather_n)
        rx = src / a.gather_k;
      else
        active = false, len = 0; /* a row no pick fills: nothing read or written */
    }
  }
  const T *xs = static_cast<const T *>(a.x) + rx * a.ldx + c0;
  uint8_t *qs = a.q + r * a.ldq + c0;

  float amax = 0.0f;
  uint4 raw[VPT > 0 ? VPT : 1];
  if (VPT > 0) {
#pragma unroll
    for (int i = 0; i < VPT; i++) {
      const int64_t c = slot_vec<VPT>(i, t, tpr) * V;
      raw[i] = c < len ? llmk_load_raw<T>(xs, c, len, a.vec_ld) : make_uint4(0, 0, 0, 0);
      amax = llmk_raw_amax<T>(raw[i], amax);
    }
  } else {
#pragma unroll 4
    for (int64_t c = (int64_t)t * V; c < len; c += (int64_t)tpr * V)
      amax = llmk_raw_amax<T>(llmk_load_raw<T>(xs, c, len, a.vec_ld), amax);
  }
  amax = llmk_team_max(amax, tpr, red);
  const float s = llmk_scale_from_amax<E5M2>(amax, a.ub);
  const float inv = __fdiv_rn(1.0f, s);
  if (active && t == 0) a.scale[unit] = s; /* ROW: unit == r; BLOCK: r * ngc + segment */
  if (VPT > 0 && VPT % 2 == 0) {
#pragma unroll
    for (int i = 0; i < VPT; i += 2) {
      const int64_t c = slot_vec<VPT>(i, t, tpr) * V;
      if (c < len) llmk_quant_store_pair<T, E5M2>(qs, c, len, a.vec_st, a.vec_st2, raw[i], raw[i + 1], inv);
    }
  } else if (VPT > 0) {
#pragma unroll
    for (int i = 0; i < VPT; i++) {
      const int64_t c = slot_vec<VPT>(i, t, tpr) * V;
      if (c < len) llmk_quant_store<T, E5M2>(qs, c, len, a.vec_st, raw[i], inv);
    }
  } else {
#pragma unroll 4
    for (int64_t c = (int64_t)t * V; c < len; c += (int64_t)tpr * V)
      llmk_quant_store<T, E5M2>(qs, c, len, a.vec_st, llmk_load_raw<T>(xs, c, len, a.vec_ld), inv);
  }
}

template <typename T, bool E5M2>
static void launch_vpt(llmk_qargs a, llmk_team_cfg cfg, unsigned grid, cudaStream_t st) {
  switch (cfg.vpt) {
    case 1: quant_rows_kernel<T, E5M2, 1><<<grid, cfg.block, 0, st>>>(a); break;
    case 2: quant_rows_kernel<T, E5M2, 2><<<grid, cfg.block, 0, st>>>(a); break;
    case 4: quant_rows_kernel<T, E5M2, 4><<<grid, cfg.block, 0, st>>>(a); break;
    case 8: quant_rows_kernel<T, E5M2, 8><<<grid, cfg.block, 0, st>>>(a); break;
    default: quant_rows_kernel<T, E5M2, 0><<<grid, cfg.block, 0, st>>>(a); break;
  }
}

template <typename T>
static void launch_type(bool e5m2, llmk_qargs a, llmk_team_cfg cfg, unsigned grid, cudaStream_t st) {
  if (e5m2)
    launch_vpt<T, true>(a, cfg, grid, st);
  else
    launch_vpt<T, false>(a, cfg, grid, st);
}

llmk_status llmk_launch_quant_rows(llmk_dtype xt, bool e5m2, llmk_qargs a, llmk_team_cfg cfg,
                                   cudaStream_t st) {
  a.tpr = cfg.tpr;
  const int64_t units = a.M * ((a.K + a.gk - 1) / a.gk);
  const int64_t per_cta = cfg.block / cfg.tpr;
  const int64_t grid = (units + per_cta - 1) / per_cta;
  if (grid > INT32_MAX)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, "llmk_quantize_fp8",
                          "too many row segments (%lld) for one launch", (long long)units);
  if (xt == LLMK_F32) launch_type<float>(e5m2, a, cfg, (unsigned)grid, st);
  else if (xt == LLMK_F16) launch_type<__half>(e5m2, a, cfg, (unsigned)grid, st);
  else launch_type<__nv_bfloat16>(e5m2, a, cfg, (unsigned)grid, st);
  return llmk_launch_check("llmk_quantize_fp8", "quant_rows_kernel");
}
