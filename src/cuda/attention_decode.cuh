/* Split-KV (flash-decoding) GQA decode attention over a BF16, FP8 or INT4
 * cache, contiguous or paged. Included by one .cu file per cache format
 * (attention_decode_{bf16,fp8,int4}.cu) so they compile in parallel; the
 * launcher is attention_decode.cu.
 *
 * Grid (splits, Hkv, B). A CTA takes one split of one sequence's KV length
 * for one KV head and all its query heads (the group, padded to the 16 rows
 * of an mma tile), so each K/V byte is read once for the whole group. Its 4
 * warps each stream their own 16-token tiles (tiles w, w + 4, ...) through
 * a private cp.async ring of NST stages: 16-byte copies, zero-filled past
 * the sequence, so no warp waits on another inside the loop. Per tile:
 * S = Q K^T (mma.sync m16n8k16), online softmax in the log2 domain, O += P V.
 * The 4 warps' (m, l, O) merge in shared memory; with one split the CTA
 * writes the output, otherwise a partial (O, m, l) that
 * merge_kernel combines by log-sum-exp.
 *
 * Formats:
 *  - BF16: bf16 mma; K and V fragments by ldmatrix (V transposed) from
 *    XOR-swizzled tiles. P enters as two bf16 terms (hi + lo, 16 bits of
 *    mantissa), so rounding P costs no accuracy next to the output's.
 *  - FP8 (per token-head or per-tensor scale): e4m3 codes enter f16 mmas
 *    exactly (cvt.rn.f16x2.e4m3x2); Q is scaled by a power of two (exact)
 *    into f16's range. K's scales multiply S's columns in fp32; V's scales
 *    are folded into P, relative to the largest V scale seen so far (a
 *    running maximum, rescaled like the softmax maximum), so P stays <= 1.
 *  - INT4: each pair of codes becomes f16 values code * scale + shift in
 *    one fma.rn.f16x2 (one rounding: the stored f16 scale and shift keep
 *    every value in f16's range), then f16 mmas as for FP8.
 * Every fragment load is a 16-, 8-, 4- or 2-byte shared-memory read of bytes
 * the lane owns: Q is permuted to the order the lanes' K bytes give (q_dim). */
#ifndef LLMK_ATTENTION_DECODE_CUH
#define LLMK_ATTENTION_DECODE_CUH

#include "core/attn.h"
#include "core/env.h"
#include "cuda/attention_frag.cuh"
#include "cuda/common.cuh"

/* Lab builds only (bench/prof/int4_lab.sh; wrong outputs, never set in the
 * library): LLMK_ATTN_LAB=4 streams the tiles through the rings and skips
 * all compute (the copy pattern's floor), =8 computes on whatever the rings
 * hold and copies nothing (the compute floor). */
#ifndef LLMK_ATTN_LAB
#define LLMK_ATTN_LAB 0
#endif
#ifndef LLMK_ATTN_RING_BYTES /* a warp's ring; a build-time knob for the kernel lab */
#define LLMK_ATTN_RING_BYTES 24576
#endif

namespace llmk_attn {

constexpr int WARPS = 4, THREADS = WARPS * 32, TOK = 16;
enum { F_BF16 = 0, F_FP8 = 1, F_FP8T = 2, F_INT4 = 3 };

struct args {
  const uint16_t *q;
  int64_t ldq;
  const uint8_t *k, *v, *kp, *vp; /* data; parameters (FP8 f32, INT4 f16 pairs, FP8T one f32) */
  int64_t S1, hkv;
  int page_shift;
  const int32_t *bt;
  int64_t bt_ld, npages;
  const int32_t *seq_lens;
  int64_t max_len;
  int group, hq;
  float sl; /* softmax_scale * log2(e) */
  int64_t chunk; /* tokens per split, a multiple of WARPS * TOK */
  int splits;
  uint16_t *out;
  int64_t ldo;
  float *lse;
  float *part_o, *part_ml; /* splits > 1: [B Hq splits][D] and [B Hq splits][2] */
};

template <int D, int FMT, int G> struct shape {
  static_assert(D == 64 || D == 128 || D == 256, "head dims 64, 128, 256");
  static_assert(FMT != F_INT4 || ((G == 32 || G == 128) && G <= D), "INT4 groups of 32 or 128, at most D");
  static constexpr int RB = FMT == F_BF16 ? 2 * D : FMT == F_INT4 ? D / 2 : D; /* data bytes per token-head */
  static constexpr int NCH = RB / 16;                                           /* 16-byte chunks per row */
  static constexpr int NG = FMT == F_INT4 ? D / G : 1;                          /* INT4 groups per row */
  static constexpr int PB = FMT == F_FP8 ? 4 : FMT == F_INT4 ? 4 * NG : 0;      /* parameter bytes per token-head */
  static constexpr int DATA = TOK * RB;
  static constexpr int TILE = (2 * DATA + 2 * TOK * PB + 127) / 128 * 128;
  /* ~24 KB in flight per warp keeps HBM busy with one or two CTAs per SM
   * (few sequences). (Shallower rings with more CTAs per SM measured the
   * same for many sequences and slower for few.) */
  static constexpr int NST_FIT = LLMK_ATTN_RING_BYTES / TILE;
  static constexpr int NST = NST_FIT < 2 ? 2 : NST_FIT > 8 ? 8 : NST_FIT;
  static constexpr int PIPE = WARPS * NST * TILE;
  static constexpr int OLD = D + 8;                 /* row pitch of the merge area: 8-byte stores without bank conflicts */
  static constexpr int MERGE = WARPS * 16 * OLD * 4; /* the warps' O rows, fp32, in register order */
  static constexpr int QRAW = 16 * D * 2;           /* Q rows, bf16 */
  static constexpr int BODY = PIPE > MERGE ? PIPE : MERGE;
  static constexpr int QF = (D / 16) * 32 * 16;      /* Q fragments, per k-step and lane */
  static constexpr int MISC = 2 * WARPS * 16 * 4 + WARPS * NST * 4; /* m, l per warp and row; stage counts */
  static constexpr int HEAD = (QRAW + QF + MISC + 127) / 128 * 128;
  static constexpr int SMEM = HEAD + BODY;
  static_assert(RB % 16 == 0 && TOK * NCH % 32 == 0, "rows of whole 16-byte chunks, spread evenly over a warp");
  static_assert(PB == 0 || PB == 4 || PB % 8 == 0, "parameter copies of 4, 8 or 16 bytes");
};

/* Which 16-byte chunk of a tile row holds logical chunk ch of token tok:
 * XOR swizzles chosen per reader so that a warp's fragment loads spread
 * over the banks (ldmatrix rows; FP8/INT4 K: 8 tokens x 4 lanes; V: the 4
 * token pairs of a k-step). */
template <int FMT, int NCH, bool V> __device__ __forceinline__ int swz(int tok, int ch) {
  int x;
  if constexpr (FMT == F_BF16) x = tok & 7;
  else if constexpr (FMT == F_INT4) x = V ? (tok >> 1) & 3 : tok & 7;
  else x = V ? ((tok >> 1) & 3) << 1 : (tok & 7) << 1;
  return ch ^ (x & (NCH - 1));
}

/* The head-dimension index that lane slot (ks, c, j) of Q's A fragment
 * carries: j = 0, 1 for k columns 2c, 2c + 1 and j = 2, 3 for 2c + 8, 2c + 9
 * of k-step ks. BF16 is natural (ldmatrix); FP8 lanes hold 8 consecutive
 * codes per 32 columns, pairs (0,1) (2,3) | (4,5) (6,7) per k-step; INT4
 * lanes hold 8 nibbles whose f16 pairs are (0,4) (1,5) | (2,6) (3,7). */
template <int FMT> __device__ __forceinline__ int q_dim(int ks, int c, int j) {
  if constexpr (FMT == F_BF16) return 16 * ks + 2 * c + (j & 1) + (j & 2 ? 8 : 0);
  const int base = 32 * (ks >> 1) + 8 * c, h = ks & 1;
  if constexpr (FMT == F_INT4) return base + 2 * h + (j & 2 ? 1 : 0) + (j & 1 ? 4 : 0);
  return base + 4 * h + j;
}

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

template <int D, int FMT, int G, bool PAGED>
__global__ void __launch_bounds__(THREADS, D > 128 ? 1 : FMT == F_BF16 ? 2 : 3) decode_kernel(const args a) {
  using S = shape<D, FMT, G>;
  constexpr bool F16 = FMT != F_BF16;
  constexpr int NKS = D / 16, NNT = D / 8, NG = S::NG, NST = S::NST, RB = S::RB, NCH = S::NCH;
  extern __shared__ __align__(128) uint8_t smem[];
  uint4 *qf = reinterpret_cast<uint4 *>(smem);                  /* [NKS][32] */
  uint16_t *qraw = reinterpret_cast<uint16_t *>(smem + S::QF);   /* [16][D] */
  float *red_m = reinterpret_cast<float *>(smem + S::QF + S::QRAW); /* [WARPS][16] */
  float *red_l = red_m + WARPS * 16;                             /* [WARPS][16] */
  int *vcount = reinterpret_cast<int *>(red_l + WARPS * 16);     /* [WARPS][NST] */
  uint8_t *body = smem + S::HEAD;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, c = lane & 3;
  const int split = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); /* the merge may start its launch */
  asm volatile("griddepcontrol.wait;" ::: "memory"); /* the kernel before (Q, the cache, the lengths) is done */
  const int64_t L = min((int64_t)max(a.seq_lens[b], 0), a.max_len);
  const int64_t t_begin = (int64_t)split * a.chunk, t_end = min(L, t_begin + a.chunk);
  const int ntiles = t_end > t_begin ? (int)((t_end - t_begin + TOK - 1) / TOK) : 0;
  const int group = a.group;

  /* ---- this warp's pipeline ---- */
  const int nw = ntiles > warp ? (ntiles - warp + WARPS - 1) / WARPS : 0;
  uint8_t *ring = body + warp * NST * S::TILE;
  const int64_t tstride = a.hkv * RB; /* bytes between consecutive positions */
  const int64_t pmask = PAGED ? ((int64_t)1 << a.page_shift) - 1 : 0;
  auto page_of = [&](int it) -> int {
    if constexpr (!PAGED) return 0;
    if (it >= nw) return 0;
    const int64_t t0 = t_begin + (int64_t)(warp + WARPS * it) * TOK;
    return a.bt[b * a.bt_ld + (t0 >> a.page_shift)];
  };
  /* A lane's copies of a tile: 16-byte chunk l_ch of tokens l_tok + j
   * TOK_STEP (j < COPIES_PER_LANE), K and V alike; then the dequantization
   * parameters, each token's PB bytes as PARAM_PARTS copies of PARAM_CHUNK
   * bytes, copy i = lane + 32 jp (jp < PARAM_COPIES_PER_LANE). Their
   * offsets within a tile are fixed, so a tile costs one row index (a page
   * lookup, or a step from the previous tile) and the copies. */
  constexpr int TOK_STEP = 32 / NCH, COPIES_PER_LANE = TOK * NCH / 32;
  static_assert(32 % NCH == 0 && COPIES_PER_LANE >= 1, "a warp's copies cover whole rows");
  constexpr int PARAM_CHUNK = S::PB < 16 ? S::PB : 16, PARAM_PARTS = S::PB > 0 ? S::PB / PARAM_CHUNK : 1;
  constexpr int PARAM_COPIES_PER_LANE = 2 * TOK * PARAM_PARTS / 32;
  static_assert(S::PB == 0 || 2 * TOK * PARAM_PARTS % 32 == 0, "parameter copies spread evenly over a warp");
  const int l_tok = lane / NCH, l_ch = lane % NCH;
  const int64_t l_src = (int64_t)l_tok * tstride + l_ch * 16, j_src = (int64_t)TOK_STEP * tstride;
  const int n_split = (int)(t_end > t_begin ? t_end - t_begin : 0); /* <= chunk */
  const int64_t row_first = ((int64_t)b * a.S1 + t_begin + warp * TOK) * a.hkv + h, row_step = (int64_t)WARPS * TOK * a.hkv;
  auto issue = [&](int it, int page) {
    const int st = it % NST;
    uint8_t *buf = ring + st * S::TILE;
    const int rel = (warp + WARPS * it) * TOK; /* the tile's first position within the split */
    int nval = min(TOK, n_split - rel);
    int64_t row0;
    if constexpr (PAGED) {
      const bool ok = page >= 0 && page < a.npages;
      if (!ok) nval = 0;
      row0 = ((((int64_t)(ok ? page : 0)) << a.page_shift) + ((t_begin + rel) & pmask)) * a.hkv + h;
    } else {
      row0 = row_first + it * row_step;
    }
    if (lane == 0) vcount[warp * NST + st] = nval;
    const uint8_t *ks = a.k + row0 * RB + l_src, *vs = a.v + row0 * RB + l_src;
    const bool full = nval == TOK; /* every tile but a split's last */
#pragma unroll
    for (int j = 0; j < COPIES_PER_LANE; j++) {
      const int tok = l_tok + j * TOK_STEP;
      const bool in = full || tok < nval;
      cp_async_zfill<16>(buf + tok * RB + swz<FMT, NCH, false>(tok, l_ch) * 16, in ? ks + j * j_src : a.k, in ? 16 : 0);
      cp_async_zfill<16>(buf + S::DATA + tok * RB + swz<FMT, NCH, true>(tok, l_ch) * 16, in ? vs + j * j_src : a.v,
                         in ? 16 : 0);
    }
    if constexpr (S::PB > 0) {
#pragma unroll
      for (int jp = 0; jp < PARAM_COPIES_PER_LANE; jp++) {
        const int i = lane + 32 * jp, kv = i / (TOK * PARAM_PARTS), tok = (i % (TOK * PARAM_PARTS)) / PARAM_PARTS, part = i % PARAM_PARTS;
        const bool in = full || tok < nval;
        const uint8_t *src = (kv ? a.vp : a.kp) + (row0 + (int64_t)tok * a.hkv) * S::PB + part * PARAM_CHUNK;
        cp_async_zfill<PARAM_CHUNK>(buf + 2 * S::DATA + (kv * TOK + tok) * S::PB + part * PARAM_CHUNK, in ? src : a.kp,
                                    in ? PARAM_CHUNK : 0);
      }
    }
  };

  float o[NNT][4];
#pragma unroll
  for (int j = 0; j < NNT; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
  float vmax = 0.0f, vinv = 0.0f; /* FP8: the V scale P is relative to, its inverse */
  const float k_t = FMT == F_FP8T ? reinterpret_cast<const float *>(a.kp)[0] : 1.0f;
  const float v_t = FMT == F_FP8T ? reinterpret_cast<const float *>(a.vp)[0] : 1.0f;

#pragma unroll 1
  for (int it = 0; it < NST - 1; it++) {
    if (it < nw && !(LLMK_ATTN_LAB & 8)) issue(it, page_of(it));
    cp_async_commit();
  }
  int page_next = page_of(NST - 1);
  /* ---- Q (while the first tiles are in flight): rows of the group (zero
   * past it), its fragments, its scale ---- */
  for (int i = tid; i < 16 * D / 8; i += THREADS) {
    const int r = i / (D / 8), cc = i % (D / 8);
    uint4 v = make_uint4(0, 0, 0, 0);
    if (r < group) v = *reinterpret_cast<const uint4 *>(a.q + b * a.ldq + (int64_t)(h * group + r) * D + 8 * cc);
    reinterpret_cast<uint4 *>(qraw)[i] = v;
  }
  __syncthreads();
  float qmul = 1.0f;
  if constexpr (F16) {
    /* f16 keeps 11 bits where bf16 has 8: scaling by a power of two that
     * puts Q's largest element in [2^14, 2^15) is exact for every element
     * within 2^-24 of it, and cannot overflow. */
    float m = 0.0f;
    for (int i = tid; i < 16 * D; i += THREADS) m = fmaxf(m, fabsf(__uint_as_float((uint32_t)qraw[i] << 16)));
    for (int o = 16; o; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (lane == 0) red_m[warp] = m;
    __syncthreads();
    m = fmaxf(fmaxf(red_m[0], red_m[1]), fmaxf(red_m[2], red_m[3]));
    if (m > 0.0f && m <= FLT_MAX) qmul = exp2f((float)(14 - max(ilogbf(m), -100)));
    __syncthreads(); /* red_m is reused below */
  }
  auto qval = [&](int r, int d) -> float { return __uint_as_float((uint32_t)qraw[r * D + d] << 16); };
  for (int i = tid; i < NKS * 32; i += THREADS) {
    const int ks = i >> 5, gl = (i & 31) >> 2, cl = i & 3;
    uint32_t w[4];
#pragma unroll
    for (int half = 0; half < 2; half++) /* a0/a1: k columns 2c, 2c+1; a2/a3: 2c+8, 2c+9 */
#pragma unroll
      for (int rr = 0; rr < 2; rr++) {
        const int r = gl + 8 * rr, d0 = q_dim<FMT>(ks, cl, 2 * half), d1 = q_dim<FMT>(ks, cl, 2 * half + 1);
        if constexpr (F16) w[2 * half + rr] = pack_f16x2(qval(r, d0) * qmul, qval(r, d1) * qmul);
        else w[2 * half + rr] = (uint32_t)qraw[r * D + d0] | ((uint32_t)qraw[r * D + d1] << 16);
      }
    qf[i] = make_uint4(w[0], w[1], w[2], w[3]);
  }
  __syncthreads(); /* Q fragments ready */
  const float s_mul = a.sl * k_t / qmul; /* scores = acc * s_mul (* K's scale, FP8) */

  /* O's rows times f0, f1: skipped when no lane's factor moved (the running
   * maxima settle after a few tiles) */
  auto rescale = [&](float f0, float f1) {
    if (__all_sync(0xffffffffu, f0 == 1.0f && f1 == 1.0f)) return;
#pragma unroll
    for (int j = 0; j < NNT; j++) o[j][0] *= f0, o[j][1] *= f0, o[j][2] *= f1, o[j][3] *= f1;
  };
  /* ---- S = Q K^T of the tile in stage st: s[nt][i], row g + 8 (i >> 1),
   * token 8 nt + 2c + (i & 1). With QK_AHEAD the loop computes the next
   * tile's S before this tile's softmax and P V, so that the two chains of
   * dependent work overlap in one warp's instruction stream, at the cost of
   * one tile less in flight: measured on the H100, INT4 with groups of 32
   * (four parameter loads and scale pairs per row) gains 9-12%; FP8, BF16
   * and INT4 with groups of 128 lose 2-7%. ---- */
  constexpr bool QK_AHEAD = FMT == F_INT4 && G == 32;
  auto qk = [&](int st, float (&s)[2][4]) {
    const uint8_t *kb = ring + st * S::TILE, *kpar = kb + 2 * S::DATA;
    /* two accumulators per n-tile (even and odd k-steps): two chains of
     * dependent mmas where one would leave the tensor pipe waiting */
    float s2[2][4];
#pragma unroll
    for (int nt = 0; nt < 2; nt++)
#pragma unroll
      for (int i = 0; i < 4; i++) s[nt][i] = s2[nt][i] = 0.0f;
    if constexpr (FMT == F_BF16) {
      const int trow = ((lane >> 4) << 3) + (lane & 7);
#pragma unroll
      for (int ks = 0; ks < NKS; ks++) {
        const uint4 q4 = qf[ks * 32 + lane];
        const uint32_t qa[4] = {q4.x, q4.y, q4.z, q4.w};
        uint32_t kf[4];
        ldmatrix_x4(kf, kb + trow * RB + swz<FMT, NCH, false>(trow, 2 * ks + ((lane >> 3) & 1)) * 16);
        mma16816<false>(ks & 1 ? s2[0] : s[0], qa, kf[0], kf[1]);
        mma16816<false>(ks & 1 ? s2[1] : s[1], qa, kf[2], kf[3]);
      }
    } else if constexpr (FMT == F_FP8 || FMT == F_FP8T) {
#pragma unroll
      for (int blk = 0; blk < D / 32; blk++) {
        const uint4 q0 = qf[(2 * blk) * 32 + lane], q1 = qf[(2 * blk + 1) * 32 + lane];
        const uint32_t qa0[4] = {q0.x, q0.y, q0.z, q0.w}, qa1[4] = {q1.x, q1.y, q1.z, q1.w};
#pragma unroll
        for (int nt = 0; nt < 2; nt++) {
          const int tok = 8 * nt + g;
          const uint2 w = *reinterpret_cast<const uint2 *>(
              kb + tok * RB + swz<FMT, NCH, false>(tok, 2 * blk + (c >> 1)) * 16 + (c & 1) * 8);
          mma16816<true>(s[nt], qa0, e4m3x2_to_f16x2(w.x), e4m3x2_to_f16x2(w.x >> 16));
          mma16816<true>(s2[nt], qa1, e4m3x2_to_f16x2(w.y), e4m3x2_to_f16x2(w.y >> 16));
        }
      }
    } else {
#pragma unroll
      for (int blk = 0; blk < D / 32; blk++) {
        const uint4 q0 = qf[(2 * blk) * 32 + lane], q1 = qf[(2 * blk + 1) * 32 + lane];
        const uint32_t qa0[4] = {q0.x, q0.y, q0.z, q0.w}, qa1[4] = {q1.x, q1.y, q1.z, q1.w};
#pragma unroll
        for (int nt = 0; nt < 2; nt++) {
          const int tok = 8 * nt + g;
          const uint32_t w =
              *reinterpret_cast<const uint32_t *>(kb + tok * RB + swz<FMT, NCH, false>(tok, blk) * 16 + 4 * c);
          const uint32_t pr = *reinterpret_cast<const uint32_t *>(kpar + tok * S::PB + 4 * (blk * 32 / G));
          const uint32_t sc = dup_lo(pr), sh = dup_hi(pr); /* (scale, scale), (shift, shift) */
          const uint32_t w8 = w >> 8;
          mma16816<true>(s[nt], qa0, hfma2(nib_lo(w), sc, sh), hfma2(nib_hi(w), sc, sh));
          mma16816<true>(s2[nt], qa1, hfma2(nib_lo(w8), sc, sh), hfma2(nib_hi(w8), sc, sh));
        }
      }
    }

#pragma unroll
    for (int nt = 0; nt < 2; nt++)
#pragma unroll
      for (int i = 0; i < 4; i++) s[nt][i] += s2[nt][i];
  };

  float s[2][4]; /* this tile's scores */
  if (QK_AHEAD && nw > 0) {
    cp_async_wait<NST - 2>(); /* tile 0 */
    __syncwarp();
    qk(0, s);
  }
#pragma unroll 1
  for (int it = 0; it < nw; it++) {
    if (!(LLMK_ATTN_LAB & 8) && it + NST - 1 < nw) issue(it + NST - 1, page_next);
    cp_async_commit();
    page_next = page_of(it + NST);
    cp_async_wait<QK_AHEAD ? NST - 2 : NST - 1>(); /* tile it (and it + 1) */
    __syncwarp();
    if (LLMK_ATTN_LAB & 4) { /* keep a use of the stage so the copies stay */
      if (lane == 0 && vcount[warp * NST + it % NST] == 12345) m_run[0] = 1.0f;
      continue;
    }
    float s_next[2][4];
    if constexpr (QK_AHEAD) {
      if (it + 1 < nw) qk((it + 1) % NST, s_next);
    } else {
      qk(it % NST, s);
    }
    const int st = it % NST;
    const uint8_t *kb = ring + st * S::TILE, *vb = kb + S::DATA;
    const uint8_t *kpar = kb + 2 * S::DATA, *vpar = kpar + TOK * S::PB;
    const int nval = vcount[warp * NST + st];

    /* ---- scale, mask, online softmax (log2 domain) ---- */
    float corr[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < 2; nt++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const int tok = 8 * nt + 2 * c + e;
          float f = s_mul;
          if constexpr (FMT == F_FP8) f *= reinterpret_cast<const float *>(kpar)[tok];
          const float x = tok < nval ? s[nt][2 * r + e] * f : -INFINITY;
          s[nt][2 * r + e] = x;
          mx = fmaxf(mx, x);
        }
      mx = quad_max(mx);
      const float m_new = fmaxf(m_run[r], mx);
      corr[r] = m_new == -INFINITY ? 1.0f : ex2_fast(m_run[r] - m_new);
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;
      m_run[r] = m_new;
      float sum = 0.0f;
#pragma unroll
      for (int nt = 0; nt < 2; nt++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const float p = ex2_fast(s[nt][2 * r + e] - m_use);
          s[nt][2 * r + e] = p;
          sum += p;
        }
      l_run[r] = l_run[r] * corr[r] + sum;
    }

    /* ---- O += P V ---- */
    if constexpr (FMT == F_BF16) {
      rescale(corr[0], corr[1]);
      uint32_t pa[4], pb[4]; /* P = hi + lo, both bf16 */
#pragma unroll
      for (int i = 0; i < 4; i++) {
        const float x0 = s[i >> 1][2 * (i & 1)], x1 = s[i >> 1][2 * (i & 1) + 1];
        pa[i] = pack_bf16x2(x0, x1);
        pb[i] = pack_bf16x2(x0 - __uint_as_float(pa[i] << 16), x1 - __uint_as_float(pa[i] & 0xFFFF0000u));
      }
      const int trow = (((lane >> 3) & 1) << 3) + (lane & 7);
#pragma unroll
      for (int j = 0; j < NNT; j += 2) {
        uint32_t vf[4];
        ldmatrix_x4_trans(vf, vb + trow * RB + swz<FMT, NCH, true>(trow, j + (lane >> 4)) * 16);
        mma16816<false>(o[j], pa, vf[0], vf[1]);
        mma16816<false>(o[j + 1], pa, vf[2], vf[3]);
        mma16816<false>(o[j], pb, vf[0], vf[1]);
        mma16816<false>(o[j + 1], pb, vf[2], vf[3]);
      }
    } else {
      /* this lane's tokens 2c, 2c + 1, 2c + 8, 2c + 9 (k slots of P) */
      const int tk[4] = {2 * c, 2 * c + 1, 2 * c + 8, 2 * c + 9};
      float vfac = 1.0f;
      if constexpr (FMT == F_FP8) {
        float vnew = vmax;
#pragma unroll
        for (int i = 0; i < 4; i++) vnew = fmaxf(vnew, reinterpret_cast<const float *>(vpar)[tk[i]]);
        vnew = quad_max(vnew);
        if (vnew != vmax) { /* warp-uniform (each quad sees all 16 tokens); rare once the maximum settles */
          vfac = vmax / vnew;
          vinv = 1.0f / vnew;
          vmax = vnew;
        }
      }
      rescale(corr[0] * vfac, corr[1] * vfac);
      /* p of (row r, k slot i): s[i >> 1][2 r + (i & 1)] */
      float pv[2][4];
#pragma unroll
      for (int r = 0; r < 2; r++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
          const float sc = FMT == F_FP8 ? reinterpret_cast<const float *>(vpar)[tk[i]] * vinv : 1.0f;
          pv[r][i] = s[i >> 1][2 * r + (i & 1)] * sc;
        }
      const uint32_t pa[4] = {pack_f16x2(pv[0][0], pv[0][1]), pack_f16x2(pv[1][0], pv[1][1]),
                              pack_f16x2(pv[0][2], pv[0][3]), pack_f16x2(pv[1][2], pv[1][3])};
      if constexpr (FMT == F_FP8 || FMT == F_FP8T) {
        /* lane g holds head dims g * (D / 8) + j of n-tile j: D / 8 bytes of each of its 4 tokens */
        constexpr int BPT = D / 8;
#pragma unroll
        for (int q16 = 0; q16 < (BPT + 15) / 16; q16++) {
          constexpr int NB = BPT < 16 ? BPT : 16; /* bytes in this 16-byte piece */
          uint32_t w[4][4];
#pragma unroll
          for (int i = 0; i < 4; i++) {
            const int byte = g * BPT + 16 * q16;
            const uint8_t *p = vb + tk[i] * RB + swz<FMT, NCH, true>(tk[i], byte >> 4) * 16 + (byte & 15);
            if constexpr (NB == 16) {
              const uint4 u = *reinterpret_cast<const uint4 *>(p);
              w[i][0] = u.x, w[i][1] = u.y, w[i][2] = u.z, w[i][3] = u.w;
            } else {
              const uint2 u = *reinterpret_cast<const uint2 *>(p);
              w[i][0] = u.x, w[i][1] = u.y, w[i][2] = w[i][3] = 0;
            }
          }
#pragma unroll
          for (int wd = 0; wd < NB / 4; wd++) {
            const uint32_t x01 = prmt(w[0][wd], w[1][wd], 0x5140), x23 = prmt(w[0][wd], w[1][wd], 0x7362);
            const uint32_t y01 = prmt(w[2][wd], w[3][wd], 0x5140), y23 = prmt(w[2][wd], w[3][wd], 0x7362);
            const int j = 16 * q16 + 4 * wd;
            mma16816<true>(o[j], pa, e4m3x2_to_f16x2(x01), e4m3x2_to_f16x2(y01));
            mma16816<true>(o[j + 1], pa, e4m3x2_to_f16x2(x01 >> 16), e4m3x2_to_f16x2(y01 >> 16));
            mma16816<true>(o[j + 2], pa, e4m3x2_to_f16x2(x23), e4m3x2_to_f16x2(y23));
            mma16816<true>(o[j + 3], pa, e4m3x2_to_f16x2(x23 >> 16), e4m3x2_to_f16x2(y23 >> 16));
          }
        }
      } else {
#pragma unroll
        for (int gi = 0; gi < NG; gi++) {
          /* (scale, shift) of tokens (2c, 2c + 1) and (2c + 8, 2c + 9) as f16 pairs */
          uint32_t pr[4];
#pragma unroll
          for (int i = 0; i < 4; i++) pr[i] = *reinterpret_cast<const uint32_t *>(vpar + tk[i] * S::PB + 4 * gi);
          const uint32_t sc01 = prmt(pr[0], pr[1], 0x5410), sh01 = prmt(pr[0], pr[1], 0x7632);
          const uint32_t sc89 = prmt(pr[2], pr[3], 0x5410), sh89 = prmt(pr[2], pr[3], 0x7632);
          /* lane g holds head dims gi G + g (G / 8) + jj of n-tile gi (G / 8) + jj */
          constexpr int BPG = G / 16; /* bytes per token and group for this lane */
          uint32_t w[4][BPG >= 4 ? BPG / 4 : 1];
#pragma unroll
          for (int i = 0; i < 4; i++) {
            const int byte = gi * (G / 2) + g * BPG;
            const uint8_t *p = vb + tk[i] * RB + swz<FMT, NCH, true>(tk[i], byte >> 4) * 16 + (byte & 15);
            if constexpr (BPG == 8) {
              const uint2 u = *reinterpret_cast<const uint2 *>(p);
              w[i][0] = u.x, w[i][1] = u.y;
            } else {
              w[i][0] = *reinterpret_cast<const uint16_t *>(p);
            }
          }
#pragma unroll
          for (int by = 0; by < BPG; by++) {
            const uint32_t sel = 0x0400u + 0x0101u * (uint32_t)(by & 3);
            const uint32_t x = prmt(w[0][by >> 2], w[1][by >> 2], sel), y = prmt(w[2][by >> 2], w[3][by >> 2], sel);
            const int j = gi * (G / 8) + 2 * by;
            mma16816<true>(o[j], pa, hfma2(nib_lo(x), sc01, sh01), hfma2(nib_lo(y), sc89, sh89));
            mma16816<true>(o[j + 1], pa, hfma2(nib_hi(x), sc01, sh01), hfma2(nib_hi(y), sc89, sh89));
          }
        }
      }
    }
    if constexpr (QK_AHEAD) {
#pragma unroll
      for (int nt = 0; nt < 2; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++) s[nt][i] = s_next[nt][i];
    }
    __syncwarp(); /* every lane is done with this stage before it is refilled */
  }
  cp_async_wait<0>();

  /* ---- the warp's rows in true units, then the CTA's merge ---- */
#pragma unroll
  for (int r = 0; r < 2; r++) {
    l_run[r] = quad_sum(l_run[r]);
  }
  __syncthreads(); /* every warp is out of its ring: the merge area aliases it */
  /* Slot 8 j + n of a row holds n-tile j's column n: this lane's pairs
   * (n = 2c, 2c + 1) are 8-byte stores, and the reader maps head dims to
   * slots (slot_of). */
  float *red_o = reinterpret_cast<float *>(body) + warp * 16 * S::OLD;
#pragma unroll
  for (int j = 0; j < NNT; j++)
#pragma unroll
    for (int r = 0; r < 2; r++) {
      float x0 = o[j][2 * r], x1 = o[j][2 * r + 1];
      if constexpr (FMT == F_FP8 || FMT == F_FP8T) {
        const float f = FMT == F_FP8T ? v_t : vmax;
        x0 *= f, x1 *= f;
      }
      *reinterpret_cast<float2 *>(red_o + (g + 8 * r) * S::OLD + 8 * j + 2 * c) = make_float2(x0, x1);
    }
  if (c == 0) {
    red_m[warp * 16 + g] = m_run[0], red_m[warp * 16 + g + 8] = m_run[1];
    red_l[warp * 16 + g] = l_run[0], red_l[warp * 16 + g + 8] = l_run[1];
  }
  __syncthreads();
  const float *all_o = reinterpret_cast<const float *>(body);
  /* the slot of head dim d: the inverse of the PV fragment maps */
  auto slot_of = [](int d) -> int {
    if constexpr (FMT == F_BF16) return d;
    else if constexpr (FMT == F_INT4) {
      const int gi = d / G, rem = d % G;
      return 8 * (gi * (G / 8) + rem % (G / 8)) + rem / (G / 8);
    } else {
      return 8 * (d % (D / 8)) + d / (D / 8);
    }
  };
  for (int i = tid; i < group * D; i += THREADS) {
    const int r = i / D, d = i % D, sl = slot_of(d);
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < WARPS; w++) M = fmaxf(M, red_m[w * 16 + r]);
    float Lsum = 0.0f, O = 0.0f;
    if (M != -INFINITY) {
#pragma unroll
      for (int w = 0; w < WARPS; w++) {
        const float e = exp2f(red_m[w * 16 + r] - M);
        Lsum = fmaf(red_l[w * 16 + r], e, Lsum);
        O = fmaf(all_o[(w * 16 + r) * S::OLD + sl], e, O);
      }
    }
    const int j = h * group + r;
    if (a.splits == 1) {
      a.out[b * a.ldo + (int64_t)j * D + d] = __bfloat16_as_ushort(__float2bfloat16_rn(Lsum > 0.0f ? O / Lsum : 0.0f));
      if (a.lse && d == 0) a.lse[(int64_t)b * a.hq + j] = Lsum > 0.0f ? (M + log2f(Lsum)) * 0.69314718055994531f : -INFINITY;
    } else {
      const int64_t pi = ((int64_t)b * a.hq + j) * a.splits + split;
      a.part_o[pi * D + d] = O;
      if (d == 0) a.part_ml[2 * pi] = M, a.part_ml[2 * pi + 1] = Lsum;
    }
  }
}

/* One block per (sequence, query head), of P x D threads: the splits'
 * partial results weighted by 2^(m_s - M), M their maximum. Thread
 * (p, d) sums column d of the splits s = p, p + P, ...;
 * the parts are then added in the order p = 0, 1, ... (the same order on
 * every run). Several parts keep several L2 loads of partials in flight per
 * column: with one sequence and few heads the merge has only B x Hq blocks,
 * and a single thread per column would wait on one round trip after another.
 * The weights go through shared memory a chunk at a time so that each
 * thread's loads of its column are independent (unrolled), not a chain. */
template <int D, int P> __global__ void __launch_bounds__(D * P) merge_kernel(const args a) {
  constexpr int CH = 256, T = D * P;
  static_assert(D % 32 == 0 && T <= 1024, "whole warps, at most 1024 threads");
  __shared__ float wgt[CH], red[T / 32], osum[P][D];
  const int64_t bj = blockIdx.x; /* b * hq + j */
  const int t = threadIdx.x, d = t % D, part = t / D, S = a.splits;
  asm volatile("griddepcontrol.wait;" ::: "memory"); /* the partials are complete */
  const float *ml = a.part_ml + bj * S * 2, *po = a.part_o + bj * S * D;
  auto block_reduce = [&](float x, bool is_max) {
    for (int o = 16; o; o >>= 1) {
      const float y = __shfl_xor_sync(0xffffffffu, x, o);
      x = is_max ? fmaxf(x, y) : x + y;
    }
    __syncthreads(); /* red is free */
    if ((t & 31) == 0) red[t >> 5] = x;
    __syncthreads();
    x = red[0];
    for (int w = 1; w < T / 32; w++) x = is_max ? fmaxf(x, red[w]) : x + red[w];
    return x;
  };
  float M = -INFINITY;
  for (int s = t; s < S; s += T) M = fmaxf(M, ml[2 * s]);
  M = block_reduce(M, true);
  float lpart = 0.0f, O = 0.0f;
  if (M != -INFINITY) {
    for (int base = 0; base < S; base += CH) {
      const int n = min(CH, S - base);
      __syncthreads(); /* the previous chunk's weights are used */
      for (int s = t; s < n; s += T) {
        const float e = exp2f(ml[2 * (base + s)] - M);
        wgt[s] = e;
        lpart = fmaf(ml[2 * (base + s) + 1], e, lpart);
      }
      __syncthreads();
      const float *col = po + (int64_t)base * D + d;
#pragma unroll 8
      for (int s = part; s < n; s += P) O = fmaf(col[(int64_t)s * D], wgt[s], O);
    }
  }
  const float Lsum = block_reduce(lpart, false);
  osum[part][d] = O;
  __syncthreads();
  if (part) return;
  for (int q = 1; q < P; q++) O += osum[q][d];
  const int64_t b = bj / a.hq, j = bj % a.hq;
  a.out[b * a.ldo + j * D + d] = __bfloat16_as_ushort(__float2bfloat16_rn(Lsum > 0.0f ? O / Lsum : 0.0f));
  if (a.lse && d == 0) a.lse[bj] = Lsum > 0.0f ? (M + log2f(Lsum)) * 0.69314718055994531f : -INFINITY;
}

/* The launchers each format's .cu file instantiates. */
typedef llmk_status (*launch_fn)(const args &a, dim3 grid, cudaStream_t st, int *ctas_per_sm);

template <int D, int FMT, int G, bool PAGED>
llmk_status launch(const args &a, dim3 grid, cudaStream_t st, int *ctas_per_sm) {
  using S = shape<D, FMT, G>;
  auto k = decode_kernel<D, FMT, G, PAGED>;
  static int occ[64]; /* per device: the attribute is set and the occupancy read once */
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return llmk_cuda_error(cudaGetLastError(), "llmk_attention_decode", "cudaGetDevice");
  int *o = dev < 64 ? &occ[dev] : nullptr, n = o ? *o : 0;
  if (!n) {
    if (cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, S::SMEM) != cudaSuccess)
      return llmk_cuda_error(cudaGetLastError(), "llmk_attention_decode", "cudaFuncSetAttribute");
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, k, THREADS, S::SMEM) != cudaSuccess)
      return llmk_cuda_error(cudaGetLastError(), "llmk_attention_decode", "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
    if (n < 1) n = 1;
    if (o) *o = n;
  }
  if (ctas_per_sm) {
    *ctas_per_sm = n;
    return LLMK_SUCCESS;
  }
  /* a programmatic dependent of the kernel before it (LLMK_ATTN_PDL=0: not):
   * the CTAs become resident while that kernel ends and wait at
   * griddepcontrol.wait before their first global access */
  cudaLaunchConfig_t cfg = {};
  cudaLaunchAttribute at[1];
  at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  at[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.gridDim = grid, cfg.blockDim = dim3(THREADS), cfg.dynamicSmemBytes = S::SMEM, cfg.stream = st;
  cfg.attrs = at, cfg.numAttrs = llmk_env_get()->attn_pdl ? 1 : 0;
  return llmk_cuda_error(cudaLaunchKernelEx(&cfg, k, a), "llmk_attention_decode", "launch");
}

} /* namespace llmk_attn */

/* The launchers per format (attention_decode_<fmt>.cu): fn for head dim d,
 * paged or not, INT4 group g; NULL if the combination does not exist. */
llmk_attn::launch_fn llmk_attn_launcher_bf16(int d, bool paged);
llmk_attn::launch_fn llmk_attn_launcher_fp8(int d, bool paged, bool tensor);
llmk_attn::launch_fn llmk_attn_launcher_int4(int d, bool paged, int g);
llmk_status llmk_attn_launch_merge(const llmk_attn::args &a, int d, int rows, cudaStream_t st);

#endif
