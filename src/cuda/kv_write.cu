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
 *   FP8         head amax by xor shuffles in the team, 8 codes (one 8-byte
 *               store) per lane, the scale by lane 0
 *   FP8_TENSOR  8 codes per lane with 1 / param[0]
 *   INT4        group min / max by xor shuffles over G / 8 lanes, 8 nibbles
 *               (one 4-byte store) per lane, the group's (scale, shift) by
 *               its first lane (one 4-byte store, converted by one packed
 *               f16x2 cvt).
 * The FP8 and INT4 reductions run only in warps with a K or V row to write
 * (a vote; most warps hold Q heads), on a fast path (plain fmaxf / fminf)
 * unless a second vote finds a head or group whose extremes the fast path
 * may get wrong (+-Inf, no number, a zero extreme), for which the warp runs
 * the exact reduction (see "K and V quantization" below).
 * Per-token values (storage row and offsets, q_out row) are computed once
 * per token into shared memory; item indices advance without divisions.
 * VEC (template): every 16-byte access is aligned (the usual case), so the
 * 2-byte fallback of misaligned rows is compiled out.
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
  int tpr_shift;            /* log2(D / 8): lanes per head */
  int gl_shift;             /* INT4: log2(G / 8): lanes per group */
  int iters;                /* items per lane: ceil(tpc * nh / teams) */
  int step_tok, step_h;     /* teams (threads / (D / 8)) = step_tok * nh + step_h */
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

/* llmk_pack_bf16x8 with one NaN test for the eight values (the same bits:
 * the hardware conversion, or llmk_bf16x2's where some value is NaN). */
__device__ __forceinline__ uint4 pack_bf16x8(const float (&f)[8]) {
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; i++) asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(w[i]) : "f"(f[2 * i + 1]), "f"(f[2 * i]));
  bool nan = false;
#pragma unroll
  for (int i = 0; i < 8; i++) nan |= f[i] != f[i];
  if (nan) {
#pragma unroll
    for (int i = 0; i < 4; i++) w[i] = llmk_bf16x2(f[2 * i], f[2 * i + 1]);
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}

/* ---- K and V quantization ---------------------------------------------------
 *
 * Every lane of a team holds 8 elements of one head; the reductions over a
 * head (FP8) or an INT4 group run as xor shuffles over its lanes. They run
 * only in warps that write a K or V row (a vote skips them in the warps of Q
 * heads), with every lane of such a warp taking part (the shuffles need the
 * full warp; lanes that do not write compute and discard).
 *
 * Fast paths: the reductions use plain fmaxf / fminf, which skip NaN but let
 * +-Inf in and do not define the sign of a zero result. Where that can differ
 * from the rule (a non-finite extreme, or a zero extreme whose sign the CPU's
 * scan decides), a second vote sends the whole warp through the exact
 * reduction (rare: +-Inf inputs, all-NaN heads, zero extremes). */

/* Max over the `width` lanes of each aligned lane group (width a power of two
 * <= 32), unrolled: the guard is the same in every lane. */
__device__ __forceinline__ float grp_max(float v, int width) {
#pragma unroll
  for (int o = 1; o < 32; o *= 2)
    if (o < width) v = fmaxf(v, __shfl_xor_sync(LLMK_FULL_MASK, v, o));
  return v;
}

/* FP8: max |x| over the finite values of the team's head (0 if none). */
__device__ __forceinline__ float head_amax(const float (&f)[8], bool w, int tpr) {
  /* max |x| over the non-NaN values, +Inf included; NaN if every value is NaN */
  float m = fmaxf(fmaxf(fmaxf(fabsf(f[0]), fabsf(f[1])), fmaxf(fabsf(f[2]), fabsf(f[3]))),
                  fmaxf(fmaxf(fabsf(f[4]), fabsf(f[5])), fmaxf(fabsf(f[6]), fabsf(f[7]))));
  m = grp_max(m, tpr);
  /* finite m: no +-Inf in the head and at least one number, so m is the
   * finite maximum (>= 0, and +0 where it is zero, as the CPU's 0 start) */
  if (__any_sync(LLMK_FULL_MASK, w && !(m <= FLT_MAX))) m = grp_max(llmk_vec_amax<8>(f, 0.0f), tpr);
  return m;
}

/* INT4: lo = min, hi = max over the finite values of the lane's group of
 * gl = G / 8 lanes, as the CPU's scan in index order: 0 and 0 when there is
 * none; a zero extreme takes the sign of the group's first zero (lane t
 * holds elements 8 t .. 8 t + 7). */
__device__ __forceinline__ void group_range(const float (&f)[8], bool w, int t, int gl, float &lo_out,
                                            float &hi_out) {
  float lo = fminf(fminf(fminf(f[0], f[1]), fminf(f[2], f[3])), fminf(fminf(f[4], f[5]), fminf(f[6], f[7])));
  float hi = fmaxf(fmaxf(fmaxf(f[0], f[1]), fmaxf(f[2], f[3])), fmaxf(fmaxf(f[4], f[5]), fmaxf(f[6], f[7])));
#pragma unroll
  for (int o = 1; o < 16; o *= 2)
    if (o < gl) {
      lo = fminf(lo, __shfl_xor_sync(LLMK_FULL_MASK, lo, o));
      hi = fmaxf(hi, __shfl_xor_sync(LLMK_FULL_MASK, hi, o));
    }
  /* lo and hi finite: no +-Inf in the group and at least one number, so they
   * are the finite extremes; nonzero: their sign is their value's */
  const bool fine = fabsf(lo) <= FLT_MAX && fabsf(hi) <= FLT_MAX && lo != 0.0f && hi != 0.0f;
  if (__any_sync(LLMK_FULL_MASK, w && !fine)) {
    lo = INFINITY, hi = -INFINITY;
    uint32_t zkey = 0xFFFFFFFFu; /* (index << 1 | sign) of the group's first zero */
#pragma unroll
    for (int j = 7; j >= 0; j--) {
      if (fabsf(f[j]) <= FLT_MAX) {
        lo = fminf(lo, f[j]);
        hi = fmaxf(hi, f[j]);
      }
      if (f[j] == 0.0f) zkey = (uint32_t)(8 * t + j) << 1 | __float_as_uint(f[j]) >> 31;
    }
#pragma unroll
    for (int o = 1; o < 16; o *= 2)
      if (o < gl) {
        lo = fminf(lo, __shfl_xor_sync(LLMK_FULL_MASK, lo, o));
        hi = fmaxf(hi, __shfl_xor_sync(LLMK_FULL_MASK, hi, o));
        zkey = min(zkey, __shfl_xor_sync(LLMK_FULL_MASK, zkey, o));
      }
    /* no finite value gives 0 and 0; a zero extreme takes the sign of the first zero */
    if (lo > hi) lo = hi = 0.0f;
    if (zkey != 0xFFFFFFFFu) {
      const float z = zkey & 1u ? -0.0f : 0.0f;
      if (lo == 0.0f) lo = z;
      if (hi == 0.0f) hi = z;
    }
  }
  lo_out = lo;
  hi_out = hi;
}

/* f16 bits of x (low half) and y (high half), nearest even, saturated to
 * +-65504: PTX's .satfinite gives +-65504 for |v| > 65504, +-Inf included
 * (f16_sat of src/cpu/kvcache.c; x and y are not NaN). */
__device__ __forceinline__ uint32_t f16x2_sat(float x, float y) {
  uint32_t r;
  asm("cvt.rn.satfinite.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(y), "f"(x));
  return r;
}
__device__ __forceinline__ float f16_bits_to_f32(uint32_t h) {
  return __half2float(__ushort_as_half((unsigned short)h));
}

/* INT4 codes of 8 elements, 4 bits each, element j in bits 4j .. 4j+3:
 * clamp(rintf((x - shift) * inv), 0, 15). The clamp comes first (same codes:
 * 0 and 15 are integers, rintf is monotone; NaN gives 0 as fmaxf(NaN, 0));
 * then v + 1.5 * 2^23 rounds v in [0, 15] to an integer, nearest even as
 * rintf, which lands in the low 4 bits of the sum's encoding (whose low 22
 * bits are otherwise 0). */
__device__ __forceinline__ uint32_t int4_codes(const float (&f)[8], float shift, float inv) {
  uint32_t m[8];
#pragma unroll
  for (int j = 0; j < 8; j++) {
    const float u = __fmul_rn(__fsub_rn(f[j], shift), inv);
    m[j] = __float_as_uint(__fadd_rn(fminf(fmaxf(u, 0.0f), 15.0f), 12582912.0f));
  }
  uint32_t b[4]; /* low byte: code 2i | code 2i+1 << 4 (the rest is discarded) */
#pragma unroll
  for (int i = 0; i < 4; i++) b[i] = m[2 * i] + (m[2 * i + 1] << 4);
  return __byte_perm(__byte_perm(b[0], b[1], 0x0040), __byte_perm(b[2], b[3], 0x0040), 0x5410);
}

/* VEC: every 16-byte access is aligned (a's vec_src of the kinds used and
 * vec_qo are all true); else they are read from a. */
template <int FMT, int NH, bool VEC>
__global__ void __launch_bounds__(512) kv_write_kernel(const __grid_constant__ kvw_args a) {
  extern __shared__ float4 kvw_smem[];
  /* per token: position; first K/V storage row (slot * Hkv; -1: not written),
   * its byte offset in k / v and element offset in k_param / v_param; q_out row */
  __shared__ int64_t tpos[LLMK_ROPE_MAX_TPC], trow[LLMK_ROPE_MAX_TPC], tdat[LLMK_ROPE_MAX_TPC],
      tpar[LLMK_ROPE_MAX_TPC], tq[LLMK_ROPE_MAX_TPC];
  const int np = a.rd.n_pairs;
  float2 *cs = reinterpret_cast<float2 *>(kvw_smem);
  float *xbuf = reinterpret_cast<float *>(kvw_smem + (a.tpc * np + 1) / 2);
  const int tpr = 1 << a.tpr_shift, t = threadIdx.x & (tpr - 1), team = threadIdx.x >> a.tpr_shift;
  const int64_t r0 = (int64_t)blockIdx.x * a.tpc;
  const int ntok = (int)min((int64_t)a.tpc, a.T - r0);

  /* A ring of NH loads in flight per lane: iteration i handles the lane's
   * team's item team + i * teams, (token, head) = (ctok, ch), and issues the
   * load of item i + NH, (ltok, lh). Items advance by teams = step_tok * nh +
   * step_h heads. The iteration count, a.iters, is the same for the whole
   * CTA (shuffles and votes stay converged; a last CTA with fewer tokens runs
   * empty iterations). */
  const int nh = a.nh;
  auto advance = [&](int &tok, int &h) {
    h += a.step_h;
    tok += a.step_tok;
    if (h >= nh) {
      h -= nh;
      tok++;
    }
  };
  int ctok = 0, ch = team;
  if (team >= nh) {
    ctok = team / nh;
    ch = team - ctok * nh;
  }
  uint4 raw[NH];
  auto load_item = [&](int tok, int h) {
    uint4 u = make_uint4(0, 0, 0, 0);
    if (tok < ntok) {
      const int kind = h < a.hq ? 0 : h < a.hq + a.hkv ? 1 : 2;
      const int kh = kind == 0 ? h : kind == 1 ? h - a.hq : h - a.hq - a.hkv;
      u = llmk_ld16(a.src[kind] + (r0 + tok) * a.ld[kind] + (int64_t)kh * a.d + 8 * t,
                    VEC || a.vec_src[kind]);
    }
    return u;
  };
  int ltok = ctok, lh = ch;
#pragma unroll
  for (int k = 0; k < NH; k++) {
    raw[k] = load_item(ltok, lh);
    advance(ltok, lh);
  }
  /* each token's sequence, position and slot: one warp per token */
  for (int k = threadIdx.x / 32; k < ntok; k += blockDim.x / 32) {
    const int lane = threadIdx.x & 31;
    int64_t first, p = 0, sl = -1;
    const int64_t b = find_seq(a, r0 + k, lane, &first);
    if (lane == 0) {
      if (b >= 0) locate(a, r0 + k, b, first, &p, &sl);
      const int64_t row0 = sl < 0 ? -1 : sl * a.hkv;
      tpos[k] = p;
      trow[k] = row0;
      tdat[k] = row0 * a.row_bytes;
      tpar[k] = row0 * a.param_elems;
      tq[k] = (r0 + k) * a.ldqo;
    }
  }
  float tinv0 = 0.0f, tinv1 = 0.0f; /* FP8_TENSOR: 1 / param[0] of K and V */
  if (FMT == LLMK_KV_FP8_TENSOR) {
    tinv0 = __fdiv_rn(1.0f, *static_cast<const float *>(a.param[0]));
    tinv1 = __fdiv_rn(1.0f, *static_cast<const float *>(a.param[1]));
  }
  __syncthreads();
  if (np) {
    llmk_rope_fill(cs, tpos, ntok, a.plan.inv_freq, np);
    __syncthreads();
  }

  float *tbuf = xbuf + team * 8 * tpr;
#pragma unroll 1
  for (int i = 0; i < a.iters; i++) {
    const uint4 cur = raw[0];
#pragma unroll
    for (int k = 0; k + 1 < NH; k++) raw[k] = raw[k + 1];
    raw[NH - 1] = load_item(ltok, lh);
    advance(ltok, lh);
    const bool valid = ctok < ntok;
    const int tok = valid ? ctok : 0, h = ch;
    advance(ctok, ch);
    const int kind = h < a.hq ? 0 : h < a.hq + a.hkv ? 1 : 2;
    const bool has = valid && trow[tok] >= 0; /* rows outside the cache are skipped whole */
    float f[8];
    llmk_unpack_bf16x8(cur, f);
    if (np)
      (void)llmk_rope_apply(f, has && kind < 2, t, tpr, np, a.rd.neox, a.rd.shfl, tbuf, cs + tok * np);
    if (kind == 0 && has)
      llmk_st16(a.qo + tq[tok] + ((int64_t)h * a.d + 8 * t), pack_bf16x8(f), VEC || a.vec_qo);

    /* K and V: the row is written where w; the reductions (shuffles) run in
     * every lane of a warp where some lane writes */
    const bool w = has && kind > 0;
    const int kv = kind == 2;
    /* KV head kh of the token: storage row trow + kh, data at byte tdat + kh
     * row_bytes, parameters at element tpar + kh param_elems */
    const int kh = kv ? h - a.hq - a.hkv : h - a.hq;
    auto dst_at = [&](int off) { return a.cache[kv] + tdat[tok] + ((int64_t)kh * a.row_bytes + off); };
    if (FMT == LLMK_KV_BF16) {
      if (w) *reinterpret_cast<uint4 *>(dst_at(16 * t)) = pack_bf16x8(f);
    } else if (FMT == LLMK_KV_FP8_TENSOR) {
      if (w) {
        const float inv = kv ? tinv1 : tinv0;
        uint32_t c[4];
#pragma unroll
        for (int e = 0; e < 4; e++)
          c[e] = llmk_cvt_fp8x2<false>(__fmul_rn(f[2 * e], inv), __fmul_rn(f[2 * e + 1], inv));
        *reinterpret_cast<uint2 *>(dst_at(8 * t)) = make_uint2(c[0] | c[1] << 16, c[2] | c[3] << 16);
      }
    } else if (__any_sync(LLMK_FULL_MASK, w)) {
      if (FMT == LLMK_KV_FP8) {
        const float scale = llmk_scale_from_amax<false>(head_amax(f, w, tpr), nullptr);
        if (w) {
          const float inv = __fdiv_rn(1.0f, scale);
          if (t == 0) static_cast<float *>(a.param[kv])[tpar[tok] + kh] = scale;
          uint32_t c[4];
#pragma unroll
          for (int e = 0; e < 4; e++)
            c[e] = llmk_cvt_fp8x2<false>(__fmul_rn(f[2 * e], inv), __fmul_rn(f[2 * e + 1], inv));
          *reinterpret_cast<uint2 *>(dst_at(8 * t)) = make_uint2(c[0] | c[1] << 16, c[2] | c[3] << 16);
        }
      } else { /* INT4 */
        float lo, hi;
        group_range(f, w, t, 1 << a.gl_shift, lo, hi);
        if (w) {
          /* (scale, shift) f16 bits as stored: scale in the low half */
          const uint32_t sp = f16x2_sat(__fdiv_rn(__fsub_rn(hi, lo), 15.0f), lo);
          const float scale = f16_bits_to_f32(sp), shift = f16_bits_to_f32(sp >> 16);
          const float inv = __fdiv_rn(1.0f, scale);
          const uint32_t word = scale != 0.0f ? int4_codes(f, shift, inv) : 0u;
          *reinterpret_cast<uint32_t *>(dst_at(4 * t)) = word;
          if ((t & ((1 << a.gl_shift) - 1)) == 0) { /* the group's first lane: its (scale, shift) */
            uint16_t *pp = static_cast<uint16_t *>(a.param[kv]) + tpar[tok] +
                           (kh * a.param_elems + 2 * (t >> a.gl_shift));
            *reinterpret_cast<uint32_t *>(pp) = sp;
          }
        }
      }
    }
  }
}

template <int FMT>
void launch_fmt(const kvw_args &a, bool vec, unsigned grid, unsigned threads, size_t smem, cudaStream_t st) {
  if (vec)
    kv_write_kernel<FMT, kRing, true><<<grid, threads, smem, st>>>(a);
  else
    kv_write_kernel<FMT, kRing, false><<<grid, threads, smem, st>>>(a);
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

  /* about kRing rows per lane: the whole ring loaded up front */
  const int tpr = a.d / 8;
  const llmk_rows_grid rg = llmk_rows_grid_of(a.T, nh, tpr, kRing, h->sm_count);
  const int64_t tpc = rg.tpc, grid = rg.grid, teams = rg.teams;
  if (grid > INT32_MAX)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "%lld rows are too many for one launch",
                          (long long)a.T);
  a.tpc = (int)tpc;
  const int64_t threads = (teams * tpr + 31) / 32 * 32;
  const int64_t teams_k = threads / tpr; /* the kernel's teams (threads rounded up to warps) */
  a.step_tok = (int)(teams_k / nh);
  a.step_h = (int)(teams_k % nh);
  a.iters = (int)((tpc * nh + teams_k - 1) / teams_k);
  a.tpr_shift = __builtin_ctz((unsigned)tpr);
  a.gl_shift = c->format == LLMK_KV_INT4 ? __builtin_ctz((unsigned)(c->group / 8)) : 0;
  bool vec = !hq || a.vec_qo;
  for (int i = hq ? 0 : 1; i < 3; i++) vec = vec && a.vec_src[i];
  size_t smem = (size_t)((tpc * np + 1) / 2) * 16;
  if (a.rd.neox && !a.rd.shfl) smem += (size_t)threads * 8 * sizeof(float);

  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, fn);
  if (s) return s;
  const cudaStream_t st = (cudaStream_t)stream;
  switch (c->format) {
    case LLMK_KV_BF16: launch_fmt<LLMK_KV_BF16>(a, vec, (unsigned)grid, (unsigned)threads, smem, st); break;
    case LLMK_KV_FP8: launch_fmt<LLMK_KV_FP8>(a, vec, (unsigned)grid, (unsigned)threads, smem, st); break;
    case LLMK_KV_FP8_TENSOR:
      launch_fmt<LLMK_KV_FP8_TENSOR>(a, vec, (unsigned)grid, (unsigned)threads, smem, st);
      break;
    case LLMK_KV_INT4: launch_fmt<LLMK_KV_INT4>(a, vec, (unsigned)grid, (unsigned)threads, smem, st); break;
  }
  s = llmk_launch_check(fn, "kv_write_kernel");
  return llmk_scope_leave(h, &sc, s, fn);
}
