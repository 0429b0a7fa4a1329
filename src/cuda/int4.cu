/* INT4 weights' CUDA kernels (llmk.h, "INT4 weights"): the quantizer (a
 * thread a group) and the dequantizer (a thread 8 elements), with
 * core/int4.h's scalar rules, which the CPU reference shares: the same
 * bits on both backends. Both run once per weight, off the decode path. */
#include "core/int4.h"
#include "cuda/common.cuh"

namespace {

__global__ void __launch_bounds__(256) int4_quantize_kernel(llmk_int4_plan p) {
  const int64_t i = (int64_t)blockIdx.x * 256 + threadIdx.x;
  if (i >= p.N * p.ngroups) return;
  const int64_t n = i / p.ngroups, g = i % p.ngroups;
  const uint16_t *v = static_cast<const uint16_t *>(p.w.data) + n * p.w.ld + g * p.group;
  uint16_t s;
  int z;
  llmk_int4_group_params(v, p.group, p.asymmetric, &s, &z);
  p.scales[i] = s;
  if (p.zeros) p.zeros[i] = (uint8_t)z;
  uint8_t *c = static_cast<uint8_t *>(p.codes.data) + n * p.codes.ld + g * p.group / 2;
  for (int64_t k = 0; k < p.group; k += 2)
    c[k / 2] = (uint8_t)(llmk_int4_code(llmk_bf16_to_f32(v[k]), s, z) |
                         llmk_int4_code(llmk_bf16_to_f32(v[k + 1]), s, z) << 4);
}

template <bool F32>
__global__ void __launch_bounds__(256) int4_dequantize_kernel(llmk_int4_plan p) {
  const int64_t per_row = p.K / 8, i = (int64_t)blockIdx.x * 256 + threadIdx.x;
  if (i >= p.N * per_row) return;
  const int64_t n = i / per_row, k0 = (i % per_row) * 8, g = n * p.ngroups + k0 / p.group;
  const uint8_t *c = static_cast<const uint8_t *>(p.codes.data) + n * p.codes.ld + k0 / 2;
  const uint16_t s = p.scales[g];
  const int z = p.zeros ? p.zeros[g] : 8;
  /* the 8 codes' 4 bytes, then 16- or 32-byte stores where y's address allows (element stores
   * else): the stripes of llmk_gemm_w4a16 write gigabytes through here */
  const uint32_t cw = (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 | (uint32_t)c[3] << 24;
  float v[8];
#pragma unroll
  for (int j = 0; j < 8; j++) v[j] = llmk_int4_value((int)(cw >> (4 * j)) & 15, s, z);
  if (F32) {
    float *y = static_cast<float *>(p.w.data) + n * p.w.ld + k0;
    if ((reinterpret_cast<uintptr_t>(y) & 15) == 0) {
      reinterpret_cast<float4 *>(y)[0] = make_float4(v[0], v[1], v[2], v[3]);
      reinterpret_cast<float4 *>(y)[1] = make_float4(v[4], v[5], v[6], v[7]);
    } else {
#pragma unroll
      for (int j = 0; j < 8; j++) y[j] = v[j];
    }
  } else {
    uint16_t *y = static_cast<uint16_t *>(p.w.data) + n * p.w.ld + k0;
    uint32_t b[4];
#pragma unroll
    for (int j = 0; j < 4; j++) b[j] = llmk_bf16_from_f32(v[2 * j]) | (uint32_t)llmk_bf16_from_f32(v[2 * j + 1]) << 16;
    if ((reinterpret_cast<uintptr_t>(y) & 15) == 0) {
      *reinterpret_cast<uint4 *>(y) = make_uint4(b[0], b[1], b[2], b[3]);
    } else {
#pragma unroll
      for (int j = 0; j < 8; j++) y[j] = (uint16_t)(b[j / 2] >> (16 * (j % 2)));
    }
  }
}

unsigned blocks_of(int64_t threads) { return (unsigned)((threads + 255) / 256); }

}  // namespace

extern "C" llmk_status llmk_cuda_int4_quantize(llmk_handle h, const llmk_int4_plan *p, void *stream) {
  static const char fn[] = "llmk_int4_quantize";
  if (blocks_of(p->N * p->ngroups) >= (1u << 31))
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "too many groups for one launch");
  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, fn);
  if (s) return s;
  int4_quantize_kernel<<<blocks_of(p->N * p->ngroups), 256, 0, (cudaStream_t)stream>>>(*p);
  s = llmk_launch_check(fn, "int4_quantize_kernel");
  return llmk_scope_leave(h, &sc, s, fn);
}

extern "C" llmk_status llmk_cuda_int4_dequantize(llmk_handle h, const llmk_int4_plan *p, void *stream) {
  static const char fn[] = "llmk_int4_dequantize";
  const int64_t threads = p->N * (p->K / 8);
  if (blocks_of(threads) >= (1u << 31))
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "too many elements for one launch");
  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, fn);
  if (s) return s;
  const cudaStream_t st = (cudaStream_t)stream;
  if (p->w.dtype == LLMK_F32) int4_dequantize_kernel<true><<<blocks_of(threads), 256, 0, st>>>(*p);
  else int4_dequantize_kernel<false><<<blocks_of(threads), 256, 0, st>>>(*p);
  s = llmk_launch_check(fn, "int4_dequantize_kernel");
  return llmk_scope_leave(h, &sc, s, fn);
}
