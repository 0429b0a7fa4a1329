/* llmk_cuda_qkv_write: llmk_kv_cache_write and llmk_rope_qkv_write.
 *
 * One pass over the new rows: a CTA owns `tpc` consecutive tokens (rows)
 * and all their heads (Hq Q heads when q_out is given, then Hkv K and Hkv
 * V heads). A team of D / 8 lanes handles one head at a time, 8 elements
 * (one 16-byte bf16 vector) per lane, a ring of kRing = 4 head loads per
 * lane in flight: the CTA loads its first heads, then finds each token's
 * sequence, position and cache slot (a warp's 32-way search of offsets,
 * the block table) and the token's cosines and sines (fp64, once per token
 * and pair, in shared memory) while the loads are in flight. Per head:
 *   Q  rotate, round to bf16, one 16-byte store to q_out;
 *   K  rotate, quantize from the fp32 rotated values;
 *   V  quantize from its bf16 values.
 * Quantization (include/llmk.h, bit for bit with src/cpu/kvcache.c):
 *   BF16        one 16-byte store per lane
 *   FP8         head amax by xor shuffles in the team, scale by lane 0,
 *               8 codes (one 8-byte store) per lane
 *   FP8_TENSOR  8 codes per lane with 1 / param[0]
 *   INT4        group min / max by xor shuffles over G / 8 lanes, the
 *               group's (scale, shift) by its first lane (one 4-byte
 *               store), 8 nibbles (one 4-byte store) per lane.
 * Rows whose position is outside the cache (negative, past the capacity,
 * page number outside [0, num_pages)) and rows in no sequence (offsets not
 * covering them) are skipped whole: no K, V or Q is written for them (the
 * CPU backend refuses such calls). */
#include "cuda/rope_dev.cuh"

namespace {

constexpr int kRing = 4; /* loads in flight per lane */

struct kvw_args {
  llmk_rope_plan plan;
  llmk_rope_dev rd;
  const uint16_t *src[3]; /* Q, K, V rows (bf16) */
  int64_t ld[3];
  uint16_t *qo; /* NULL: no Q */
  int64_t ldqo;
  int hq, hkv, nh, d; /* nh = hq + 2 hkv heads per token */
  int64_t T, B;
  const int32_t *offsets, *start_pos;
  uint8_t *cache[2]; /* K, V storage */
  void *param[2];
  int64_t S0, S1, cap;
  int paged, page_shift;
  const int32_t *bt;
  int64_t bt_rows, bt_ld;
  int group, row_bytes, param_elems;
  int tpc;
  bool vec_src[3], vec_qo; /* 16-byte accesses aligned */
};

/* The sequence of row r (-1: none), the same in every lane of the calling
 * warp (all 32 lanes call it): the last b with offsets[b] <= r, found by a
 * 32-way search (one round for B <= 32, two for B <= 1024), then checked:
 * offsets[b] <= r < offsets[b + 1]. *first = offsets[b]. */
__device__ __forceinline__ int64_t find_seq(const kvw_args &a, int64_t r, int lane, int64_t *first) {
  *first = r;
  if (!a.offsets) return r < a.B ? r : -1;
  if (a.B <= 0) return -1;
  int64_t lo = 0, hi = a.B - 1;
  while (lo < hi) {
    const int64_t step = (hi - lo + 32) / 32, idx = lo + lane * step;
    const unsigned ball = __ballot_sync(LLMK_FULL_MASK, idx <= hi && __ldg(a.offsets + idx) <= r);
    if (!ball) return -1; /* offsets[0] > r */
    const int k = 31 - __clz(ball);
    lo += k * step;
    hi = min(hi, lo + step - 1);
  }
  const int64_t f = __ldg(a.offsets + lo), next = __ldg(a.offsets + lo + 1);
  *first = f;
  return f <= r && r < next ? lo : -1;
}

/* Position and cache slot ((s0 * S1 + s1); -1: not written) of row r of sequence b >= 0. */
__device__ __forceinline__ void locate(const kvw_args &a, int64_t r, int64_t b, int64_t first,
                                       int64_t *pos, int64_t *slot) {
  const int64_t p = (int64_t)__ldg(a.start_pos + b) + (r - first);
  *pos = p;
  *slot = -1;
  if (p < 0 || p >= a.cap) return;
  if (a.paged) {
    if (b >= a.bt_rows) return;
    const int64_t page = __ldg(a.bt + b * a.bt_ld + (p >> a.page_shift));
    if (page < 0 || page >= a.S0) return;
    *slot = page * a.S1 + (p & (a.S1 - 1));
  } else {
    if (b >= a.S0) return;
    *slot = b * a.S1 + p;
  }
}

/* f16 bits of x, nearest even, saturated to +-65504 (x is not NaN). */
__device__ __forceinline__ uint32_t f16_sat(float x) {
  uint32_t b = llmk_f16_from_f32(x);
  if ((b & 0x7FFFu) == 0x7C00u) b = (b & 0x8000u) | 0x7BFFu;
  return b;
}

template <int FMT, int NH>
__global__ void __launch_bounds__(512) kv_write_kernel(const __grid_constant__ kvw_args a) {
  extern __shared__ float4 kvw_smem[];
  __shared__ int64_t tpos[LLMK_ROPE_MAX_TPC], tslot[LLMK_ROPE_MAX_TPC];
  const int np = a.rd.n_pairs;
  float2 *cs = reinterpret_cast<float2 *>(kvw_smem);
  float *xbuf = reinterpret_cast<float *>(kvw_smem + (a.tpc * np + 1) / 2);
  const int tpr = a.d / 8, t = threadIdx.x & (tpr - 1), team = threadIdx.x / tpr;
  const int teams = blockDim.x / tpr;
  const int64_t r0 = (int64_t)blockIdx.x * a.tpc;
  const int ntok = (int)min((int64_t)a.tpc, a.T - r0);
  const int items = ntok * a.nh;

  /* A ring of NH loads in flight per lane: iteration i handles the lane's
   * team's item team + i * teams and issues the load of item i + NH. The
   * iteration count is the same for the whole CTA (shuffles stay converged). */
  uint4 raw[NH];
  auto load_item = [&](int item) {
    uint4 u = make_uint4(0, 0, 0, 0);
    if (item < items) {
      const int tok = item / a.nh, h = item - tok * a.nh;
      const int kind = h < a.hq ? 0 : h < a.hq + a.hkv ? 1 : 2;
      const int kh = kind == 0 ? h : kind == 1 ? h - a.hq : h - a.hq - a.hkv;
      u = llmk_ld16(a.src[kind] + (r0 + tok) * a.ld[kind] + (int64_t)kh * a.d + 8 * t,
                    a.vec_src[kind]);
    }
    return u;
  };
#pragma unroll
  for (int k = 0; k < NH; k++) raw[k] = load_item(team + k * teams);
  /* each token's sequence, position and slot: one warp per token */
  for (int k = threadIdx.x / 32; k < ntok; k += blockDim.x / 32) {
    const int lane = threadIdx.x & 31;
    int64_t first, p = 0, sl = -1;
    const int64_t b = find_seq(a, r0 + k, lane, &first);
    if (lane == 0) {
      if (b >= 0) locate(a, r0 + k, b, first, &p, &sl);
      tpos[k] = p;
      tslot[k] = sl;
    }
  }
  float tinv[2] = {0.0f, 0.0f}; /* FP8_TENSOR: 1 / param[0] of K and V */
  if (FMT == LLMK_KV_FP8_TENSOR) {
    tinv[0] = __fdiv_rn(1.0f, *static_cast<const float *>(a.param[0]));
    tinv[1] = __fdiv_rn(1.0f, *static_cast<const float *>(a.param[1]));
  }
  __syncthreads();
  if (np) {
    llmk_rope_fill(cs, tpos, ntok, a.plan.inv_freq, np);
    __syncthreads();
  }

  float *tbuf = xbuf + team * 8 * tpr;
  const int iters = (items + teams - 1) / teams;
#pragma unroll 1
  for (int i = 0; i < iters; i++) {
    const int item = team + i * teams;
    const uint4 cur = raw[0];
#pragma unroll
    for (int k = 0; k + 1 < NH; k++) raw[k] = raw[k + 1];
    raw[NH - 1] = load_item(item + NH * teams);
    const bool valid = item < items;
    const int tok = valid ? item / a.nh : 0, h = valid ? item - tok * a.nh : 0;
    const int kind = h < a.hq ? 0 : h < a.hq + a.hkv ? 1 : 2;
    const int kh = kind == 0 ? h : kind == 1 ? h - a.hq : h - a.hq - a.hkv;
    const int64_t slot = tslot[tok];
    const bool has = valid && slot >= 0; /* rows outside the cache are skipped whole */
    float f[8];
    llmk_unpack_bf16x8(cur, f);
    if (np)
      (void)llmk_rope_apply(f, has && kind < 2, t, tpr, np, a.rd.neox, a.rd.shfl, tbuf, cs + tok * np);
    if (kind == 0 && has)
      llmk_st16(a.qo + (r0 + tok) * a.ldqo + (int64_t)h * a.d + 8 * t, llmk_pack_bf16x8(f), a.vec_qo);

    /* K and V: the reductions run on every lane (shuffles), the stores where the row is written */
    const bool w = has && kind > 0;
    const int kv = kind == 2;
    const int64_t row = slot * a.hkv + kh; /* token-head index in the storage */
    uint8_t *dst = a.cache[kv] + row * a.row_bytes;
    if (FMT == LLMK_KV_BF16) {
      if (w) *reinterpret_cast<uint4 *>(dst + 16 * t) = llmk_pack_bf16x8(f);
    } else if (FMT == LLMK_KV_FP8 || FMT == LLMK_KV_FP8_TENSOR) {
      float inv = tinv[kv];
      if (FMT == LLMK_KV_FP8) {
        const float amax = llmk_group_max(llmk_vec_amax<8>(f, 0.0f), tpr);
        const float scale = llmk_scale_from_amax<false>(amax, nullptr);
        inv = __fdiv_rn(1.0f, scale);
        if (w && t == 0) static_cast<float *>(a.param[kv])[row] = scale;
      }
      if (w) {
        uint32_t c[4];
#pragma unroll
        for (int e = 0; e < 4; e++)
          c[e] = llmk_cvt_fp8x2<false>(__fmul_rn(f[2 * e], inv), __fmul_rn(f[2 * e + 1], inv));
        *reinterpret_cast<uint2 *>(dst + 8 * t) = make_uint2(c[0] | c[1] << 16, c[2] | c[3] << 16);
      }
    } else { /* INT4 */
      float lo = INFINITY, hi = -INFINITY;
      uint32_t zkey = 0xFFFFFFFFu; /* (index << 1 | sign) of the group's first zero */
#pragma unroll
      for (int j = 7; j >= 0; j--) {
        if (fabsf(f[j]) <= FLT_MAX) {
          lo = fminf(lo, f[j]);
          hi = fmaxf(hi, f[j]);
        }
        if (f[j] == 0.0f) zkey = (uint32_t)(8 * t + j) << 1 | __float_as_uint(f[j]) >> 31;
      }
      for (int o = 1; o < a.group / 8; o *= 2) {
        lo = fminf(lo, __shfl_xor_sync(LLMK_FULL_MASK, lo, o));
        hi = fmaxf(hi, __shfl_xor_sync(LLMK_FULL_MASK, hi, o));
        zkey = min(zkey, __shfl_xor_sync(LLMK_FULL_MASK, zkey, o));
      }
      if (w) {
        /* As the CPU's scan in index order: no finite value gives 0 and 0;
         * a zero extreme takes the sign of the group's first zero. */
        if (lo > hi) lo = hi = 0.0f;
        if (zkey != 0xFFFFFFFFu) {
          const float z = zkey & 1u ? -0.0f : 0.0f;
          if (lo == 0.0f) lo = z;
          if (hi == 0.0f) hi = z;
        }
        const uint32_t sb = f16_sat(__fdiv_rn(__fsub_rn(hi, lo), 15.0f)), hb = f16_sat(lo);
        const float scale = llmk_f16_to_f32((uint16_t)sb), shift = llmk_f16_to_f32((uint16_t)hb);
        const float inv = __fdiv_rn(1.0f, scale);
        uint32_t word = 0;
        if (scale != 0.0f) {
#pragma unroll
          for (int j = 0; j < 8; j++) {
            const float u = __fmul_rn(__fsub_rn(f[j], shift), inv);
            word |= (uint32_t)fminf(fmaxf(rintf(u), 0.0f), 15.0f) << (4 * j);
          }
        }
        *reinterpret_cast<uint32_t *>(dst + 4 * t) = word;
        if ((8 * t) % a.group == 0) {
          uint16_t *pp = static_cast<uint16_t *>(a.param[kv]) + row * a.param_elems + 2 * (8 * t / a.group);
          *reinterpret_cast<uint32_t *>(pp) = sb | hb << 16;
        }
      }
    }
  }
}

template <int FMT>
void launch_fmt(const kvw_args &a, unsigned grid, unsigned threads, size_t smem, cudaStream_t st) {
  kv_write_kernel<FMT, kRing><<<grid, threads, smem, st>>>(a);
}

}  // namespace

extern "C" llmk_status llmk_cuda_qkv_write(llmk_handle h, const llmk_rope_plan *r,
                                           const llmk_qkv_plan *q, const llmk_kv_plan *c,
                                           const llmk_loc_plan *loc, void *stream) {
  const char *fn = q->q_out.data ? "llmk_rope_qkv_write" : "llmk_kv_cache_write";
  if (loc->T == 0) return LLMK_SUCCESS;
  const int64_t hq = q->q_out.data ? q->q_in.H : 0, nh = hq + 2 * c->hkv;
  if (nh > INT32_MAX / LLMK_ROPE_MAX_TPC)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "%lld heads per token are too many",
                          (long long)nh);
  static_assert(sizeof(kvw_args) <= 4096, "kvw_args must fit the kernel parameter space");
  kvw_args a;
  memset(&a, 0, sizeof a);
  const int64_t np = r ? r->n_pairs : 0;
  if (np) a.plan = *r;
  a.rd.n_pairs = (int)np;
  a.rd.neox = np && r->neox;
  a.rd.shfl = a.rd.neox && np % 8 == 0;
  const llmk_heads *src[3] = {&q->q_in, &q->k, &q->v};
  for (int i = 0; i < 3; i++) {
    if (i == 0 && !hq) continue;
    a.src[i] = (const uint16_t *)src[i]->data;
    a.ld[i] = src[i]->ld;
    a.vec_src[i] = llmk_aligned(src[i]->data, 16) && (loc->T <= 1 || src[i]->ld % 8 == 0);
  }
  if (hq) {
    a.qo = (uint16_t *)q->q_out.data;
    a.ldqo = q->q_out.ld;
    a.vec_qo = llmk_aligned(a.qo, 16) && (loc->T <= 1 || a.ldqo % 8 == 0);
  }
  a.hq = (int)hq;
  a.hkv = (int)c->hkv;
  a.nh = (int)nh;
  a.d = (int)c->d;
  a.T = loc->T;
  a.B = loc->B;
  a.offsets = loc->offsets;
  a.start_pos = loc->start_pos;
  a.cache[0] = (uint8_t *)c->k;
  a.cache[1] = (uint8_t *)c->v;
  a.param[0] = c->k_param;
  a.param[1] = c->v_param;
  a.S0 = c->S0;
  a.S1 = c->S1;
  a.cap = llmk_kv_capacity(c);
  a.paged = c->paged;
  a.page_shift = c->page_shift;
  a.bt = c->block_table;
  a.bt_rows = c->bt_rows;
  a.bt_ld = c->bt_ld;
  a.group = (int)c->group;
  a.row_bytes = (int)c->row_bytes;
  a.param_elems = (int)c->param_elems;

  /* Prefill: CTAs of about 256 threads, whole tokens, about kRing heads
   * per lane (the whole ring loaded up front). Few tokens (decode): one CTA
   * per token with up to 512 threads, every head in flight at once. */
  const int tpr = a.d / 8, max_teams = 512 / tpr, want_teams = 256 / tpr;
  int64_t tpc = (int64_t)want_teams * kRing / nh;
  if (tpc < 1) tpc = 1;
  if (tpc > LLMK_ROPE_MAX_TPC) tpc = LLMK_ROPE_MAX_TPC;
  if (tpc > a.T) tpc = a.T;
  int64_t grid = (a.T + tpc - 1) / tpc, teams = (tpc * nh + kRing - 1) / kRing;
  if (grid < 2 * (int64_t)h->sm_count) {
    tpc = 1;
    grid = a.T;
    teams = nh;
  }
  if (teams > max_teams) teams = max_teams;
  if (grid > INT32_MAX)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "%lld rows are too many for one launch",
                          (long long)a.T);
  a.tpc = (int)tpc;
  const int64_t threads = (teams * tpr + 31) / 32 * 32;
  size_t smem = (size_t)((tpc * np + 1) / 2) * 16;
  if (a.rd.neox && !a.rd.shfl) smem += (size_t)threads * 8 * sizeof(float);

  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, fn);
  if (s) return s;
  const cudaStream_t st = (cudaStream_t)stream;
  switch (c->format) {
    case LLMK_KV_BF16: launch_fmt<LLMK_KV_BF16>(a, (unsigned)grid, (unsigned)threads, smem, st); break;
    case LLMK_KV_FP8: launch_fmt<LLMK_KV_FP8>(a, (unsigned)grid, (unsigned)threads, smem, st); break;
    case LLMK_KV_FP8_TENSOR:
      launch_fmt<LLMK_KV_FP8_TENSOR>(a, (unsigned)grid, (unsigned)threads, smem, st);
      break;
    case LLMK_KV_INT4: launch_fmt<LLMK_KV_INT4>(a, (unsigned)grid, (unsigned)threads, smem, st); break;
  }
  s = llmk_launch_check(fn, "kv_write_kernel");
  return llmk_scope_leave(h, &sc, s, fn);
}
