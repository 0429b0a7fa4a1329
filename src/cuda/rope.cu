/* llmk_cuda_rope: y = rope(x) per head at each token's position.
 *
 * One CTA per `tpc` consecutive tokens (src/cuda/rope_dev.cuh has the
 * layout): each team of D / 8 lanes rotates one head at a time, with a
 * ring of 64 bytes of loads per lane in flight (4 bf16 or 2 f32 heads; the
 * first ones issued before the angles are computed, so the fp64 sincos
 * hides behind them). The cosines and sines of the CTA's tokens
 * are computed once into shared memory. Bitwise the CPU reference's
 * numerics: rotated elements are rounded once to y's dtype, the others are
 * copied bit for bit. In place (y = x) is safe: every element is read by
 * the lane that writes it, before it writes it. */
#include "cuda/rope_dev.cuh"

namespace {

struct rope_args {
  llmk_rope_plan plan;
  llmk_rope_dev rd;
  const char *x;
  char *y;
  int64_t ldx, ldy; /* bytes */
  const int32_t *pos;
  int64_t T;
  int H, D, tpc;
  bool vec_x, vec_y; /* 16-byte accesses of x / y are aligned */
};

/* 8 elements of type T as raw 16-byte vectors. */
template <typename T> struct oct8 {
  static constexpr int N = sizeof(T) / 2; /* vectors: 1 (bf16), 2 (f32) */
  uint4 u[N];
};

template <typename T>
__device__ __forceinline__ void load8(oct8<T> &o, const char *p, bool vec) {
#pragma unroll
  for (int i = 0; i < oct8<T>::N; i++) o.u[i] = llmk_ld16(p + 16 * i, vec);
}

__device__ __forceinline__ void unpack8(const oct8<float> &o, float (&f)[8]) {
#pragma unroll
  for (int i = 0; i < 2; i++) {
    f[4 * i] = __uint_as_float(o.u[i].x);
    f[4 * i + 1] = __uint_as_float(o.u[i].y);
    f[4 * i + 2] = __uint_as_float(o.u[i].z);
    f[4 * i + 3] = __uint_as_float(o.u[i].w);
  }
}
__device__ __forceinline__ void unpack8(const oct8<__nv_bfloat16> &o, float (&f)[8]) {
  llmk_unpack_bf16x8(o.u[0], f);
}

/* Stores the rotated elements (mask bit j set) from f and the others from
 * the raw input bits. f32: f holds the input bits where nothing rotated. */
__device__ __forceinline__ void store8(char *p, const float (&f)[8], const oct8<float> &o,
                                       unsigned m, bool vec) {
  (void)o;
  (void)m;
  llmk_st16(p, make_uint4(__float_as_uint(f[0]), __float_as_uint(f[1]), __float_as_uint(f[2]),
                          __float_as_uint(f[3])), vec);
  llmk_st16(p + 16, make_uint4(__float_as_uint(f[4]), __float_as_uint(f[5]), __float_as_uint(f[6]),
                               __float_as_uint(f[7])), vec);
}
__device__ __forceinline__ void store8(char *p, const float (&f)[8], const oct8<__nv_bfloat16> &o,
                                       unsigned m, bool vec) {
  const uint32_t raw[4] = {o.u[0].x, o.u[0].y, o.u[0].z, o.u[0].w};
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const uint32_t sel = ((m >> (2 * i)) & 1u ? 0x0000FFFFu : 0u) | ((m >> (2 * i + 1)) & 1u ? 0xFFFF0000u : 0u);
    w[i] = sel ? (llmk_bf16x2(f[2 * i], f[2 * i + 1]) & sel) | (raw[i] & ~sel) : raw[i];
  }
  llmk_st16(p, make_uint4(w[0], w[1], w[2], w[3]), vec);
}

template <typename T, int NH>
__global__ void __launch_bounds__(512) rope_kernel(const __grid_constant__ rope_args a) {
  extern __shared__ float4 rope_smem[];
  __shared__ int64_t tpos[LLMK_ROPE_MAX_TPC];
  const int np = a.rd.n_pairs;
  float2 *cs = reinterpret_cast<float2 *>(rope_smem);
  float *xbuf = reinterpret_cast<float *>(rope_smem + (a.tpc * np + 1) / 2);
  const int tpr = a.D / 8, t = threadIdx.x & (tpr - 1), team = threadIdx.x / tpr;
  const int teams = blockDim.x / tpr;
  const int64_t r0 = (int64_t)blockIdx.x * a.tpc;
  const int ntok = (int)min((int64_t)a.tpc, a.T - r0);
  const int items = ntok * a.H;
  const int64_t es = sizeof(T);

  /* A ring of NH loads in flight per lane (as src/cuda/kv_write.cu). */
  oct8<T> raw[NH];
  auto load_item = [&](oct8<T> &o, int item) {
    if (item < items) {
      const int tok = item / a.H, h = item - tok * a.H;
      load8<T>(o, a.x + (r0 + tok) * a.ldx + ((int64_t)h * a.D + 8 * t) * es, a.vec_x);
    }
  };
#pragma unroll
  for (int k = 0; k < NH; k++) load_item(raw[k], team + k * teams);
  if ((int)threadIdx.x < ntok) tpos[threadIdx.x] = a.pos[r0 + threadIdx.x];
  __syncthreads();
  llmk_rope_fill(cs, tpos, ntok, a.plan.inv_freq, np);
  __syncthreads();

  float *tbuf = xbuf + team * 8 * tpr;
  const int iters = (items + teams - 1) / teams;
#pragma unroll 1
  for (int i = 0; i < iters; i++) {
    const int item = team + i * teams;
    const oct8<T> cur = raw[0];
#pragma unroll
    for (int k = 0; k + 1 < NH; k++) raw[k] = raw[k + 1];
    load_item(raw[NH - 1], item + NH * teams);
    const bool valid = item < items;
    const int tok = valid ? item / a.H : 0, h = valid ? item - tok * a.H : 0;
    float f[8];
    unpack8(cur, f);
    const unsigned m = llmk_rope_apply(f, valid, t, tpr, np, a.rd.neox, a.rd.shfl, tbuf, cs + tok * np);
    if (valid) store8(a.y + (r0 + tok) * a.ldy + ((int64_t)h * a.D + 8 * t) * es, f, cur, m, a.vec_y);
  }
}

constexpr int kRing = 4; /* 16-byte loads in flight per lane */

template <typename T>
void launch(const rope_args &a, unsigned grid, unsigned threads, size_t smem, cudaStream_t st) {
  rope_kernel<T, kRing / oct8<T>::N><<<grid, threads, smem, st>>>(a);
}

}  // namespace

extern "C" llmk_status llmk_cuda_rope(llmk_handle h, const llmk_rope_plan *r, const llmk_heads *x,
                                      const int32_t *pos, const llmk_heads *y, void *stream) {
  static const char fn[] = "llmk_rope";
  if (x->T == 0 || x->H == 0) return LLMK_SUCCESS;
  if (x->H > INT32_MAX / LLMK_ROPE_MAX_TPC)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "x: %lld heads per token are too many",
                          (long long)x->H);
  const int64_t es = (int64_t)llmk_dtype_size(x->dtype);
  static_assert(sizeof(rope_args) <= 4096, "rope_args must fit the kernel parameter space");
  rope_args a;
  memset(&a, 0, sizeof a);
  a.plan = *r;
  a.rd.n_pairs = (int)r->n_pairs;
  a.rd.neox = r->neox;
  a.rd.shfl = r->neox && r->n_pairs % 8 == 0;
  a.x = (const char *)x->data;
  a.y = (char *)y->data;
  a.ldx = x->ld * es;
  a.ldy = y->ld * es;
  a.pos = pos;
  a.T = x->T;
  a.H = (int)x->H;
  a.D = (int)x->D;
  a.vec_x = llmk_aligned(x->data, 16) && (x->T <= 1 || a.ldx % 16 == 0);
  a.vec_y = llmk_aligned(y->data, 16) && (y->T <= 1 || a.ldy % 16 == 0);

  const int tpr = a.D / 8;
  const llmk_rows_grid rg = llmk_rows_grid_of(a.T, a.H, tpr, 4, h->sm_count);
  const int64_t tpc = rg.tpc, grid = rg.grid, teams = rg.teams;
  if (grid > INT32_MAX)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "x: %lld tokens are too many for one launch",
                          (long long)a.T);
  a.tpc = (int)tpc;
  const int64_t threads = (teams * tpr + 31) / 32 * 32;
  size_t smem = (size_t)((tpc * r->n_pairs + 1) / 2) * 16;
  if (a.rd.neox && !a.rd.shfl) smem += (size_t)threads * 8 * sizeof(float);

  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, fn);
  if (s) return s;
  if (x->dtype == LLMK_F32)
    launch<float>(a, (unsigned)grid, (unsigned)threads, smem, (cudaStream_t)stream);
  else
    launch<__nv_bfloat16>(a, (unsigned)grid, (unsigned)threads, smem, (cudaStream_t)stream);
  s = llmk_launch_check(fn, "rope_kernel");
  return llmk_scope_leave(h, &sc, s, fn);
}
