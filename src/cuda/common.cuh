/* Helpers shared by llmk's CUDA files: error mapping, device selection,
 * 16-byte vector access and the FP8 numerics of DESIGN.md on the device. */
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
/* After a launch: reports (and clears) a launch error. */
static inline llmk_status llmk_launch_check(const char *fn, const char *kernel) {
  return llmk_cuda_error(cudaGetLastError(), fn, kernel);
}

/* ---- element types: 16-byte vectors of VEC elements ---------------------- */

template <typename T> struct llmk_elem;
template <> struct llmk_elem<float> {
  static constexpr int VEC = 4;
  static __device__ __forceinline__ float to_f32(float v) { return v; }
};
template <> struct llmk_elem<__half> {
  static constexpr int VEC = 8;
  static __device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
};
template <> struct llmk_elem<__nv_bfloat16> {
  static constexpr int VEC = 8;
  static __device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
};

/* Loads elements [c, c + VEC) of a row into f; elements at or past `len`
 * read as 0. `vec_ok` says the row and c allow a 16-byte access. */
template <typename T>
__device__ __forceinline__ void llmk_load_vec(const T *row, int64_t c, int64_t len, bool vec_ok,
                                              float (&f)[llmk_elem<T>::VEC]) {
  constexpr int V = llmk_elem<T>::VEC;
  if (vec_ok && c + V <= len) {
    uint4 u = __ldg(reinterpret_cast<const uint4 *>(row + c));
    const T *e = reinterpret_cast<const T *>(&u);
#pragma unroll
    for (int i = 0; i < V; i++) f[i] = llmk_elem<T>::to_f32(e[i]);
  } else {
#pragma unroll
    for (int i = 0; i < V; i++) f[i] = c + i < len ? llmk_elem<T>::to_f32(row[c + i]) : 0.0f;
  }
}

/* max |x| over the finite elements (NaN and +-Inf skipped). */
template <int V>
__device__ __forceinline__ float llmk_vec_amax(const float (&f)[V], float m) {
#pragma unroll
  for (int i = 0; i < V; i++) {
    float a = fabsf(f[i]);
    m = fmaxf(m, a <= FLT_MAX ? a : 0.0f);
  }
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

static inline bool llmk_aligned(const void *p, size_t a) { return ((uintptr_t)p % a) == 0; }

#endif
