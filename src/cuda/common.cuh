/* Helpers shared by llmk's CUDA files: error mapping, device selection,
 * 16-byte vector access and the FP8 numerics of docs/DESIGN.md on the device. */
#ifndef LLMK_CUDA_COMMON_CUH
#define LLMK_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <float.h>
#include <stdint.h>

#include "core/quant.h"
#include "fp8/fp8.h"

/* Maps a CUDA error to LLMK_ERR_CUDA, clearing it so none is left pending. */
/* How many clusters of `size` CTAs of `kernel` (`threads` threads, `smem`
 * bytes of dynamic shared memory each) can be resident at once: a cluster
 * must fit one GPC (cudaOccupancyMaxActiveClusters; 0 when none or the
 * query fails). Defined in device.cu, which also asks it for the cost
 * model's device description. */
int llmk_active_clusters(const void *kernel, int threads, int smem, int size);

static inline llmk_status llmk_cuda_error(cudaError_t e, const char *fn, const char *what) {
  if (e == cudaSuccess) return LLMK_SUCCESS;
  (void)cudaGetLastError();
  return llmk_set_error(LLMK_ERR_CUDA, fn, "%s: %s (%s)", what, cudaGetErrorString(e),
                        cudaGetErrorName(e));
}
#define LLMK_CUDA_TRY(call, fn)                                      \
  do {                                                               \
    llmk_status s_ = llmk_cuda_error((call), (fn), #call);           \
    if (s_) return s_;                                               \
  } while (0)

/* Runs the calls of one op with h's device current, restoring the caller's. */
typedef struct llmk_device_scope {
  int prev;
} llmk_device_scope;
static inline llmk_status llmk_scope_enter(llmk_handle h, llmk_device_scope *sc, const char *fn) {
  LLMK_CUDA_TRY(cudaGetDevice(&sc->prev), fn);
  if (sc->prev != h->device) LLMK_CUDA_TRY(cudaSetDevice(h->device), fn);
  return LLMK_SUCCESS;
}
static inline llmk_status llmk_scope_leave(llmk_handle h, llmk_device_scope *sc, llmk_status s,
                                           const char *fn) {
  if (sc->prev != h->device) {
    cudaError_t e = cudaSetDevice(sc->prev);
    if (!s) s = llmk_cuda_error(e, fn, "cudaSetDevice (restore)");
  }
  return s;
}
/* The attributes of a launch in 1-D clusters of `cluster` CTAs that is,
 * with pdl, a programmatic dependent of the kernel before it on the
 * stream: fills at, returns how many apply (cudaLaunchConfig_t.numAttrs). */
static inline unsigned llmk_cluster_attrs(cudaLaunchAttribute (&at)[2], unsigned cluster, bool pdl) {
  at[0].id = cudaLaunchAttributeClusterDimension;
  at[0].val.clusterDim.x = cluster, at[0].val.clusterDim.y = 1, at[0].val.clusterDim.z = 1;
  at[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  at[1].val.programmaticStreamSerializationAllowed = 1;
  return pdl ? 2u : 1u;
}
/* After a launch: reports (and clears) a launch error. */
static inline llmk_status llmk_launch_check(const char *fn, const char *kernel) {
  return llmk_cuda_error(cudaGetLastError(), fn, kernel);
}

/* ---- element types: 16-byte vectors of VEC elements ---------------------- */

template <typename T> struct llmk_elem {
  static constexpr int VEC = 16 / sizeof(T); /* elements per 16-byte vector */
};

/* Loads elements [c, c + VEC) of a row as one raw 16-byte vector; elements
 * at or past `len` read as 0. `vec_ok` says the row allows 16-byte accesses
 * (c is always a multiple of VEC). Raw vectors keep register use at 4 per
 * 16 bytes; llmk_unpack converts them when needed. */
template <typename T>
__device__ __forceinline__ uint4 llmk_load_raw(const T *row, int64_t c, int64_t len, bool vec_ok) {
  constexpr int V = llmk_elem<T>::VEC;
  if (vec_ok && c + V <= len) return __ldg(reinterpret_cast<const uint4 *>(row + c));
  /* Element by element, assembled with shifts so the vector stays in registers. */
  uint32_t w[4] = {0, 0, 0, 0};
  if (sizeof(T) == 4) {
    const uint32_t *e = reinterpret_cast<const uint32_t *>(row);
#pragma unroll
    for (int i = 0; i < 4; i++)
      if (c + i < len) w[i] = e[c + i];
  } else {
    const uint16_t *e = reinterpret_cast<const uint16_t *>(row);
#pragma unroll
    for (int i = 0; i < 8; i++)
      if (c + i < len) w[i / 2] |= (uint32_t)e[c + i] << (16 * (i % 2));
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}

/* Element i of a raw vector, as float (exact for every input type). */
template <typename T>
__device__ __forceinline__ float llmk_raw_elem(const uint4 &u, int i);
template <>
__device__ __forceinline__ float llmk_raw_elem<float>(const uint4 &u, int i) {
  const uint32_t w = i == 0 ? u.x : i == 1 ? u.y : i == 2 ? u.z : u.w;
  return __uint_as_float(w);
}
template <>
__device__ __forceinline__ float llmk_raw_elem<__nv_bfloat16>(const uint4 &u, int i) {
  const uint32_t w = (i / 2) == 0 ? u.x : (i / 2) == 1 ? u.y : (i / 2) == 2 ? u.z : u.w;
  return __uint_as_float(i % 2 ? (w & 0xFFFF0000u) : (w << 16));
}
template <>
__device__ __forceinline__ float llmk_raw_elem<__half>(const uint4 &u, int i) {
  const uint32_t w = (i / 2) == 0 ? u.x : (i / 2) == 1 ? u.y : (i / 2) == 2 ? u.z : u.w;
  return __half2float(__ushort_as_half((unsigned short)(i % 2 ? (w >> 16) : (w & 0xFFFFu))));
}

template <typename T>
__device__ __forceinline__ void llmk_unpack(const uint4 &u, float (&f)[llmk_elem<T>::VEC]) {
#pragma unroll
  for (int i = 0; i < llmk_elem<T>::VEC; i++) f[i] = llmk_raw_elem<T>(u, i);
}

/* max(m, |x|) where x is finite; NaN and +-Inf leave m as it is. */
__device__ __forceinline__ float llmk_amax1(float m, float x) {
  const float a = fabsf(x);
  return fmaxf(m, a <= FLT_MAX ? a : 0.0f);
}

/* max |x| over the finite elements (NaN and +-Inf skipped). */
template <int V>
__device__ __forceinline__ float llmk_vec_amax(const float (&f)[V], float m) {
#pragma unroll
  for (int i = 0; i < V; i++) m = llmk_amax1(m, f[i]);
  return m;
}

/* ---- FP8 numerics -------------------------------------------------------- */

template <bool E5M2>
__device__ __forceinline__ uint16_t llmk_cvt_fp8x2(float lo, float hi) {
  uint16_t r;
  if (E5M2)
    asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
  else
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
  return r;
}

/* scale = max(min(amax, *ub) / FP8_MAX, MIN_SCALE), as the CPU computes it. */
template <bool E5M2>
__device__ __forceinline__ float llmk_scale_from_amax(float amax, const float *ub) {
  if (ub) amax = fminf(amax, *ub);
  return fmaxf(__fdiv_rn(amax, llmk_fp8_max(E5M2)), llmk_fp8_min_scale(E5M2));
}

/* Quantizes f * inv and stores elements [c, c + V) of an FP8 row. */
template <bool E5M2, int V>
__device__ __forceinline__ void llmk_store_fp8(uint8_t *row, int64_t c, int64_t len, bool vec_ok,
                                               const float (&f)[V], float inv) {
  static_assert(V == 4 || V == 8, "FP8 stores are 4 or 8 bytes");
  uint16_t p[V / 2];
#pragma unroll
  for (int i = 0; i < V / 2; i++)
    p[i] = llmk_cvt_fp8x2<E5M2>(__fmul_rn(f[2 * i], inv), __fmul_rn(f[2 * i + 1], inv));
  if (vec_ok && c + V <= len) {
    if (V == 8) {
      uint2 u = make_uint2(p[0] | ((uint32_t)p[1] << 16), p[2] | ((uint32_t)p[3] << 16));
      *reinterpret_cast<uint2 *>(row + c) = u;
    } else {
      *reinterpret_cast<uint32_t *>(row + c) = p[0] | ((uint32_t)p[1] << 16);
    }
  } else {
#pragma unroll
    for (int i = 0; i < V; i++)
      if (c + i < len) row[c + i] = (uint8_t)(p[i / 2] >> (8 * (i % 2)));
  }
}

/* Max over the `width` lanes of each aligned lane group (width a power of 2 <= 32). */
__device__ __forceinline__ float llmk_group_max(float v, int width) {
  for (int o = width / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/* Max over each team of `tpr` consecutive threads (a power of two dividing
 * blockDim.x). Every thread of the CTA must call it; `red` is __shared__
 * float[32]. One barrier: a second call on the same `red` needs a
 * __syncthreads() between the two (the kernels call it once). */
__device__ __forceinline__ float llmk_team_max(float v, int tpr, float *red) {
  if (tpr <= 32) return llmk_group_max(v, tpr);
  v = llmk_group_max(v, 32);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  const int wpt = tpr / 32, w0 = (warp / wpt) * wpt;
  float m = red[w0];
  for (int i = 1; i < wpt; i++) m = fmaxf(m, red[w0 + i]);
  return m;
}

/* Quantizes a raw input vector with `inv` and stores it at row[c..]. */
template <typename T, bool E5M2>
__device__ __forceinline__ void llmk_quant_store(uint8_t *row, int64_t c, int64_t len, bool vec_st,
                                                 const uint4 &u, float inv) {
  float f[llmk_elem<T>::VEC];
  llmk_unpack<T>(u, f);
  llmk_store_fp8<E5M2, llmk_elem<T>::VEC>(row, c, len, vec_st, f, inv);
}

/* Quantizes two adjacent raw vectors (elements [c, c + 2 VEC)) and stores
 * them with one 2*VEC-byte store when `vec2_ok` says that is aligned and the
 * pair is whole; otherwise vector by vector. */
template <typename T, bool E5M2>
__device__ __forceinline__ void llmk_quant_store_pair(uint8_t *row, int64_t c, int64_t len, bool vec_ok,
                                                      bool vec2_ok, const uint4 &u0, const uint4 &u1,
                                                      float inv) {
  constexpr int V = llmk_elem<T>::VEC;
  if (vec2_ok && c + 2 * V <= len) {
    float a[V], b[V];
    llmk_unpack<T>(u0, a);
    llmk_unpack<T>(u1, b);
    uint32_t w[V / 2]; /* four codes per word: elements 4i .. 4i+3 of the pair */
#pragma unroll
    for (int i = 0; i < V / 2; i++) {
      const float e0 = 4 * i < V ? a[4 * i] : b[4 * i - V], e1 = 4 * i < V ? a[4 * i + 1] : b[4 * i + 1 - V];
      const float e2 = 4 * i < V ? a[4 * i + 2] : b[4 * i + 2 - V], e3 = 4 * i < V ? a[4 * i + 3] : b[4 * i + 3 - V];
      w[i] = llmk_cvt_fp8x2<E5M2>(__fmul_rn(e0, inv), __fmul_rn(e1, inv)) |
             (uint32_t)llmk_cvt_fp8x2<E5M2>(__fmul_rn(e2, inv), __fmul_rn(e3, inv)) << 16;
    }
    if constexpr (V == 8)
      *reinterpret_cast<uint4 *>(row + c) = make_uint4(w[0], w[1], w[2], w[3]);
    else
      *reinterpret_cast<uint2 *>(row + c) = make_uint2(w[0], w[1]);
    return;
  }
  llmk_quant_store<T, E5M2>(row, c, len, vec_ok, u0, inv);
  if (c + V < len) llmk_quant_store<T, E5M2>(row, c + V, len, vec_ok, u1, inv);
}

template <typename T>
__device__ __forceinline__ float llmk_raw_amax(const uint4 &u, float m) {
  float f[llmk_elem<T>::VEC];
  llmk_unpack<T>(u, f);
  return llmk_vec_amax(f, m);
}

static inline bool llmk_aligned(const void *p, size_t a) { return ((uintptr_t)p % a) == 0; }

/* Every row of m starts `bytes`-aligned: its base pointer and row pitch
 * allow `bytes`-byte vector accesses. */
static inline bool llmk_rows_aligned(const llmk_mat &m, size_t bytes) {
  const size_t es = llmk_dtype_size(m.dtype);
  return llmk_aligned(m.data, bytes) && (m.rows <= 1 || (m.ld * (int64_t)es) % (int64_t)bytes == 0);
}

/* Eight bf16 values (a 16-byte vector, element 0 in the low half of .x) as
 * floats, exactly. */
__device__ __forceinline__ void llmk_unpack_bf16x8(const uint4 &u, float (&f)[8]) {
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xFFFF0000u);
  }
}

#endif
