/* llmk_cuda_kv_dequantize: every stored K and V element as a value
 * (include/llmk.h, llmk_kv_cache's table), bit for bit as
 * src/cpu/kvcache.c (NaN codes give NaN; its payload is not specified).
 *
 * The storage is contiguous, so "octet" i (elements 8i .. 8i + 7 of the
 * flat [S0, S1, Hkv, D] output) reads bytes [i E8, (i + 1) E8) of the
 * storage, E8 = 16 (BF16), 8 (FP8) or 4 (INT4) bytes. Each thread
 * converts U octets per step of a grid-stride loop (blockIdx.y: K or V):
 * U loads in flight, then U 16-byte (bf16) or 2 x 16-byte (f32) stores
 * (2-byte stores where an output is not 16-byte aligned). */
#include "cuda/rope_dev.cuh"

namespace {

struct kvdq_args {
  const uint8_t *src[2];
  const void *param[2];
  void *out[2];
  int64_t n_oct;     /* token-heads * D / 8 */
  int oct_shift;     /* log2(D / 8): octet i is in token-head i >> oct_shift */
  int group_shift;   /* INT4: log2(G / 8): octet o of a head is in group o >> group_shift */
  int param_elems;   /* INT4: f16 per token-head */
  bool vec_out;      /* 16-byte stores aligned (else 2-byte stores) */
};

constexpr int kU = 4;

template <int FMT> struct src_vec;
template <> struct src_vec<LLMK_KV_BF16> { using T = uint4; };
template <> struct src_vec<LLMK_KV_FP8> { using T = uint2; };
template <> struct src_vec<LLMK_KV_FP8_TENSOR> { using T = uint2; };
template <> struct src_vec<LLMK_KV_INT4> { using T = uint32_t; };

__device__ __forceinline__ void decode_fp8(const uint2 &u, float s, float (&f)[8]) {
#pragma unroll
  for (int i = 0; i < 8; i++)
    f[i] = __fmul_rn(llmk_e4m3_to_f32((uint8_t)((i < 4 ? u.x : u.y) >> (8 * (i % 4)))), s);
}

template <int FMT, typename TO>
__global__ void __launch_bounds__(256) kv_dequant_kernel(const __grid_constant__ kvdq_args a) {
  using V = typename src_vec<FMT>::T;
  const int z = blockIdx.y;
  const V *src = reinterpret_cast<const V *>(a.src[z]);
  const float *fparam = static_cast<const float *>(a.param[z]);
  const uint32_t *hparam = static_cast<const uint32_t *>(a.param[z]); /* INT4: (scale, shift) pairs */
  TO *out = static_cast<TO *>(a.out[z]);
  const float tscale = FMT == LLMK_KV_FP8_TENSOR ? fparam[0] : 0.0f;
  const int64_t step = (int64_t)gridDim.x * blockDim.x * kU;
  for (int64_t i0 = (int64_t)blockIdx.x * blockDim.x * kU + threadIdx.x; i0 < a.n_oct; i0 += step) {
    V raw[kU];
    uint32_t prm[kU]; /* FP8: scale bits; INT4: the group's (scale, shift) */
#pragma unroll
    for (int u = 0; u < kU; u++) {
      const int64_t i = i0 + (int64_t)u * blockDim.x;
      if (i < a.n_oct) {
        raw[u] = src[i];
        const int64_t head = i >> a.oct_shift;
        if (FMT == LLMK_KV_FP8) prm[u] = __float_as_uint(fparam[head]);
        if (FMT == LLMK_KV_INT4) {
          const int64_t o = i & ((INT64_C(1) << a.oct_shift) - 1);
          prm[u] = hparam[(head * a.param_elems >> 1) + (o >> a.group_shift)];
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kU; u++) {
      const int64_t i = i0 + (int64_t)u * blockDim.x;
      if (i >= a.n_oct) break;
      float f[8];
      if constexpr (FMT == LLMK_KV_BF16) {
        llmk_unpack_bf16x8(raw[u], f);
      } else if constexpr (FMT == LLMK_KV_FP8) {
        decode_fp8(raw[u], __uint_as_float(prm[u]), f);
      } else if constexpr (FMT == LLMK_KV_FP8_TENSOR) {
        decode_fp8(raw[u], tscale, f);
      } else {
        const float scale = llmk_f16_to_f32((uint16_t)prm[u]), shift = llmk_f16_to_f32((uint16_t)(prm[u] >> 16));
#pragma unroll
        for (int j = 0; j < 8; j++) f[j] = __fmaf_rn((float)((raw[u] >> (4 * j)) & 0xFu), scale, shift);
      }
      if constexpr (sizeof(TO) == 4) {
        const uint4 lo = make_uint4(__float_as_uint(f[0]), __float_as_uint(f[1]), __float_as_uint(f[2]),
                                    __float_as_uint(f[3]));
        const uint4 hi = make_uint4(__float_as_uint(f[4]), __float_as_uint(f[5]), __float_as_uint(f[6]),
                                    __float_as_uint(f[7]));
        llmk_st16(out + 8 * i, lo, a.vec_out);
        llmk_st16(out + 8 * i + 4, hi, a.vec_out);
      } else {
        llmk_st16(out + 8 * i, llmk_pack_bf16x8(f), a.vec_out);
      }
    }
  }
}

template <int FMT>
void launch_fmt(const kvdq_args &a, bool f32, dim3 grid, cudaStream_t st) {
  if (f32)
    kv_dequant_kernel<FMT, float><<<grid, 256, 0, st>>>(a);
  else
    kv_dequant_kernel<FMT, uint16_t><<<grid, 256, 0, st>>>(a);
}

int log2i(int64_t x) {
  int s = 0;
  while ((INT64_C(1) << s) < x) s++;
  return s;
}

}  // namespace

extern "C" llmk_status llmk_cuda_kv_dequantize(llmk_handle h, const llmk_kv_plan *c, void *k_out,
                                               void *v_out, llmk_dtype out_dtype, void *stream) {
  static const char fn[] = "llmk_kv_cache_dequantize";
  kvdq_args a;
  memset(&a, 0, sizeof a);
  a.src[0] = (const uint8_t *)c->k;
  a.src[1] = (const uint8_t *)c->v;
  a.param[0] = c->k_param;
  a.param[1] = c->v_param;
  a.out[0] = k_out;
  a.out[1] = v_out;
  a.n_oct = c->S0 * c->S1 * c->hkv * (c->d / 8);
  a.oct_shift = log2i(c->d / 8);
  a.group_shift = c->format == LLMK_KV_INT4 ? log2i(c->group / 8) : 0;
  a.param_elems = (int)c->param_elems;
  a.vec_out = llmk_aligned(k_out, 16) && llmk_aligned(v_out, 16);
  if (a.n_oct == 0) return LLMK_SUCCESS;
  /* enough CTAs to fill the GPU (8 of 256 threads per SM), no more */
  const int64_t per_cta = 256 * kU;
  int64_t blocks = (a.n_oct + per_cta - 1) / per_cta;
  const int64_t full = 8 * (int64_t)h->sm_count;
  if (blocks > full) blocks = full;
  const dim3 grid((unsigned)blocks, 2);

  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, fn);
  if (s) return s;
  const cudaStream_t st = (cudaStream_t)stream;
  const bool f32 = out_dtype == LLMK_F32;
  switch (c->format) {
    case LLMK_KV_BF16: launch_fmt<LLMK_KV_BF16>(a, f32, grid, st); break;
    case LLMK_KV_FP8: launch_fmt<LLMK_KV_FP8>(a, f32, grid, st); break;
    case LLMK_KV_FP8_TENSOR: launch_fmt<LLMK_KV_FP8_TENSOR>(a, f32, grid, st); break;
    case LLMK_KV_INT4: launch_fmt<LLMK_KV_INT4>(a, f32, grid, st); break;
  }
  s = llmk_launch_check(fn, "kv_dequant_kernel");
  return llmk_scope_leave(h, &sc, s, fn);
}
