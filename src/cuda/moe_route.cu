/* The MoE routing kernels (llmk.h, llmk_moe_route and
 * llmk_moe_route_permute): one warp a token, by redux.sync reductions of
 * key codes (the rule where it applies), by shuffles (every shape), or
 * four lanes a token (forced only); and, for a decode batch, routing and
 * the permutation in one launch of one CTA. Every result is core/moe.h's
 * scalar numerics in llmk.h's order, the CPU reference's bit for bit. */
#include "core/env.h"
#include "cuda/launch.h"
#include "cuda/moe_common.cuh"

namespace {

using namespace llmk_moe;

/* ---- routing ----------------------------------------------------------- */

struct route_args {
  const void *logits;
  int64_t ld;
  bool bf16;
  const float *bias;
  int32_t *ids;
  float *weights;
  int T, E, k, renormalize, n_group, topk_group, router;
  float scaling;
};

__device__ __forceinline__ float logit_at(const route_args &a, int64_t t, int e) {
  return a.bf16 ? llmk_bf16_to_f32(static_cast<const uint16_t *>(a.logits)[t * a.ld + e])
                : static_cast<const float *>(a.logits)[t * a.ld + e];
}

/* A candidate expert: its key, index (-1: none) and weight. */
struct cand {
  float key;
  int idx;
  float w;
};

__device__ __forceinline__ cand first_of(const cand &a, const cand &b) {
  if (a.idx < 0) return b;
  if (b.idx < 0) return a;
  return llmk_moe_before(a.key, a.idx, b.key, b.idx) ? a : b;
}

/* The best candidate of the LPT aligned lanes, the same in each of them:
 * first_of is a total order's minimum, so the pairings do not change it. */
template <int LPT>
__device__ __forceinline__ cand lanes_first(cand c) {
#pragma unroll
  for (int o = LPT / 2; o > 0; o /= 2) {
    cand d;
    d.key = __shfl_xor_sync(FULL, c.key, o);
    d.idx = __shfl_xor_sync(FULL, c.idx, o);
    d.w = __shfl_xor_sync(FULL, c.w, o);
    c = first_of(c, d);
  }
  return c;
}

template <int LPT>
__device__ __forceinline__ float lanes_fmax(float v) {
#pragma unroll
  for (int o = LPT / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(FULL, v, o));
  return v;
}

/* The two best of a, b (a.first ranks before a.second, likewise b). */
__device__ __forceinline__ void merge_two(cand &a1, cand &a2, const cand &b1, const cand &b2) {
  if (b1.idx >= 0 && first_of(b1, a1).idx == b1.idx && b1.idx != a1.idx) {
    a2 = first_of(a1, b2);
    a1 = b1;
  } else {
    a2 = first_of(a2, b1);
  }
}

/* The two best of the LPT aligned lanes' pairs (b1 before b2), in every
 * one of them: the top two of a set, whatever the pairing order. */
template <int LPT>
__device__ __forceinline__ void lanes_top2(cand &b1, cand &b2) {
#pragma unroll
  for (int o = LPT / 2; o > 0; o /= 2) {
    cand d1, d2;
    d1.key = __shfl_xor_sync(FULL, b1.key, o), d1.idx = __shfl_xor_sync(FULL, b1.idx, o), d1.w = 0.0f;
    d2.key = __shfl_xor_sync(FULL, b2.key, o), d2.idx = __shfl_xor_sync(FULL, b2.idx, o), d2.w = 0.0f;
    merge_two(b1, b2, d1, d2);
  }
}

/* llmk.h's softmax fold: lane j + lane j + 16, then + 8, ... (xor pairs
 * add the same two values in either lane). */
__device__ __forceinline__ float warp_fold(float part) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) part = part + __shfl_xor_sync(FULL, part, o);
  return part;
}


constexpr int ROUTE_WARPS = 8;

/* One warp per token; lane j holds experts j, j + 32, ... (EPL of them). */
template <int EPL>
__global__ void __launch_bounds__(32 * ROUTE_WARPS) route_kernel(route_args a) {
  extern __shared__ float route_smem[]; /* DEEPSEEK: per warp n_group scores, then n_group kept flags */
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t t = (int64_t)blockIdx.x * ROUTE_WARPS + warp;
  if (t >= a.T) return; /* the whole warp: no CTA-wide barrier follows */
  float key[EPL], w[EPL];
  uint32_t avail = 0;
#pragma unroll
  for (int i = 0; i < EPL; i++) {
    const int e = lane + 32 * i;
    float v = 0.0f;
    if (e < a.E) {
      v = logit_at(a, t, e);
      avail |= 1u << i;
    }
    key[i] = v, w[i] = v;
  }
  if (a.router == LLMK_MOE_SOFTMAX_TOPK) {
    float m = -INFINITY;
#pragma unroll
    for (int i = 0; i < EPL; i++)
      if (avail >> i & 1) m = fmaxf(m, key[i]);
    m = lanes_fmax<32>(m);
    float part = 0.0f;
#pragma unroll
    for (int i = 0; i < EPL; i++)
      if (avail >> i & 1) w[i] = llmk_moe_exp(key[i] - m), part = part + w[i];
    const float S = warp_fold(part);
#pragma unroll
    for (int i = 0; i < EPL; i++) w[i] = w[i] / S, key[i] = w[i];
  } else if (a.router == LLMK_MOE_DEEPSEEK) {
#pragma unroll
    for (int i = 0; i < EPL; i++)
      if (avail >> i & 1) w[i] = llmk_moe_sigmoid(key[i]), key[i] = w[i] + a.bias[lane + 32 * i];
    const int per = a.E / a.n_group;
    float *gs = route_smem + warp * 2 * a.n_group;
    float *kept = gs + a.n_group;
    for (int g = 0; g < a.n_group; g++) {
      cand b1 = {0.0f, -1, 0.0f}, b2 = {0.0f, -1, 0.0f};
#pragma unroll
      for (int i = 0; i < EPL; i++) {
        const int e = lane + 32 * i;
        if ((avail >> i & 1) && e / per == g) {
          const cand c = {key[i], e, 0.0f};
          merge_two(b1, b2, c, cand{0.0f, -1, 0.0f});
        }
      }
      lanes_top2<32>(b1, b2);
      if (lane == 0) gs[g] = per > 1 ? b1.key + b2.key : b1.key, kept[g] = 0.0f;
    }
    __syncwarp();
    uint32_t gtaken = 0; /* lane's groups lane, lane + 32, ... */
    for (int r = 0; r < a.topk_group; r++) {
      cand c = {0.0f, -1, 0.0f};
      for (int j = lane, q = 0; j < a.n_group; j += 32, q++)
        if (!(gtaken >> q & 1)) c = first_of(c, cand{gs[j], j, 0.0f});
      c = lanes_first<32>(c);
      if (c.idx % 32 == lane) gtaken |= 1u << (c.idx / 32), kept[c.idx] = 1.0f;
    }
    __syncwarp();
#pragma unroll
    for (int i = 0; i < EPL; i++)
      if ((avail >> i & 1) && kept[(lane + 32 * i) / per] == 0.0f) avail &= ~(1u << i);
  }
  /* top k: k rounds of the warp's best remaining expert */
  cand mine = {0.0f, -1, 0.0f};
  float sum = 0.0f;
  for (int s = 0; s < a.k; s++) {
    cand c = {0.0f, -1, 0.0f};
#pragma unroll
    for (int i = 0; i < EPL; i++)
      if (avail >> i & 1) c = first_of(c, cand{key[i], lane + 32 * i, w[i]});
    c = lanes_first<32>(c);
    if (c.idx % 32 == lane) avail &= ~(1u << (c.idx / 32));
    if (a.router == LLMK_MOE_SIGMOID_TOPK) c.w = llmk_moe_sigmoid(c.key);
    sum = sum + c.w;
    if (lane == s) mine = c;
  }
  float wt = mine.w;
  if (a.router == LLMK_MOE_TOPK_SOFTMAX) {
    /* softmax over the k chosen logits, lane s holding slot s */
    const float m = lanes_fmax<32>(lane < a.k ? mine.key : -INFINITY);
    const float z = lane < a.k ? llmk_moe_exp(mine.key - m) : 0.0f;
    wt = z / warp_fold(z);
  } else if (a.renormalize) {
    wt = wt / sum;
  }
  if (lane < a.k) {
    a.ids[t * a.k + lane] = mine.idx;
    a.weights[t * a.k + lane] = canonical_nan(wt * a.scaling);
  }
}

template <int EPL>
void launch_route(const route_args &a, cudaStream_t st) {
  const size_t smem = a.router == LLMK_MOE_DEEPSEEK ? sizeof(float) * 2 * (size_t)a.n_group * ROUTE_WARPS : 0;
  if (smem > 48 * 1024) cudaFuncSetAttribute(route_kernel<EPL>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  const unsigned grid = (unsigned)((a.T + ROUTE_WARPS - 1) / ROUTE_WARPS);
  route_kernel<EPL><<<grid, 32 * ROUTE_WARPS, smem, st>>>(a);
}

/* One warp per token with redux.sync: a top-k round is two warp
 * reductions of 32-bit codes (the best key, then the lowest index holding
 * it) instead of five shuffle-and-compare steps of (key, index, weight);
 * DeepSeek's group scores are top-2 reductions of the same codes, every
 * group at once. A key's code orders as llmk_moe_before does: larger key
 * larger code, -0 as +0 (equal keys), NaN 1 (below -Inf), 0 for no
 * candidate. The shuffle kernel above keeps the shapes this one does not
 * take (DeepSeek groups neither dividing 32 nor a multiple of it, or more
 * than ROUTE_REDUX_GROUPS groups). */
constexpr int ROUTE_REDUX_GROUPS = 64;

__device__ __forceinline__ uint32_t key_code(float v) {
  if (v != v) return 1u;
  const uint32_t b = __float_as_uint(v + 0.0f); /* -0 + 0 = +0 */
  return b & 0x80000000u ? ~b : b | 0x80000000u;
}

/* The key of a code >= 1 (NaN for 1; -0 comes back as +0). */
__device__ __forceinline__ float code_key(uint32_t c) {
  if (c == 1u) return __int_as_float(0x7FC00000);
  return __uint_as_float(c & 0x80000000u ? c & 0x7fffffffu : ~c);
}

/* The two largest of {a1, a2, b1, b2}, given a1 >= a2 and b1 >= b2. */
__device__ __forceinline__ void top2_merge(uint32_t &a1, uint32_t &a2, uint32_t b1, uint32_t b2) {
  const uint32_t lo = min(a1, b1);
  a1 = max(a1, b1);
  a2 = max(lo, max(a2, b2));
}

/* Token t routed by the calling warp (gs, kp: the warp's shared scratch
 * of ROUTE_REDUX_GROUPS each); ids and weights written. Returns, in lane
 * s < k, slot s's expert. */
template <int EPL>
__device__ __forceinline__ int route_token_redux(const route_args &a, int64_t t, float *gs, int *kp) {
  const int lane = threadIdx.x % 32;
  /* code: the key's code (0 once taken or not a candidate); w: the
   * weight, or the logit where the weight is computed after the choice */
  uint32_t code[EPL];
  float w[EPL];
#pragma unroll
  for (int i = 0; i < EPL; i++) {
    const int e = lane + 32 * i;
    w[i] = e < a.E ? logit_at(a, t, e) : 0.0f;
  }
  if (a.router == LLMK_MOE_SOFTMAX_TOPK) {
    float m = -INFINITY;
#pragma unroll
    for (int i = 0; i < EPL; i++)
      if (lane + 32 * i < a.E) m = fmaxf(m, w[i]);
    m = lanes_fmax<32>(m);
    float part = 0.0f;
#pragma unroll
    for (int i = 0; i < EPL; i++)
      if (lane + 32 * i < a.E) w[i] = llmk_moe_exp(w[i] - m), part = part + w[i];
    const float S = warp_fold(part);
#pragma unroll
    for (int i = 0; i < EPL; i++) w[i] = w[i] / S, code[i] = lane + 32 * i < a.E ? key_code(w[i]) : 0u;
  } else if (a.router == LLMK_MOE_DEEPSEEK) {
#pragma unroll
    for (int i = 0; i < EPL; i++) {
      const int e = lane + 32 * i;
      code[i] = 0u;
      if (e < a.E) w[i] = llmk_moe_sigmoid(w[i]), code[i] = key_code(w[i] + a.bias[e]);
    }
    const int per = a.E / a.n_group;
    if (per >= 32) {
      /* a group is per / 32 whole registers: each register's top two over
       * the warp, merged along the group's registers */
      const int rpg = per / 32;
      uint32_t g1 = 0u, g2 = 0u;
#pragma unroll
      for (int i = 0; i < EPL; i++) {
        if (32 * i >= a.E) break;
        const uint32_t m1 = __reduce_max_sync(FULL, code[i]);
        const int n1 = __popc(__ballot_sync(FULL, code[i] == m1));
        const uint32_t m2 = n1 > 1 ? m1 : __reduce_max_sync(FULL, code[i] == m1 ? 0u : code[i]);
        if (i % rpg == 0) g1 = m1, g2 = m2;
        else top2_merge(g1, g2, m1, m2);
        if (i % rpg == rpg - 1 && lane == 0) gs[i / rpg] = code_key(g1) + code_key(g2);
      }
    } else {
      /* per divides 32: a group is per consecutive lanes of one register */
#pragma unroll
      for (int i = 0; i < EPL; i++) {
        if (32 * i >= a.E) break;
        uint32_t c1 = code[i], c2 = 0u;
        for (int o = 1; o < per; o *= 2) {
          const uint32_t d1 = __shfl_xor_sync(FULL, c1, o), d2 = __shfl_xor_sync(FULL, c2, o);
          top2_merge(c1, c2, d1, d2);
        }
        const int g = (32 * i + lane) / per;
        if (lane % per == 0 && g < a.n_group) gs[g] = per > 1 ? code_key(c1) + code_key(c2) : code_key(c1);
      }
    }
    __syncwarp();
    /* a group is kept if fewer than topk_group groups rank before it */
    for (int g = lane; g < a.n_group; g += 32) {
      int rank = 0;
      for (int j = 0; j < a.n_group; j++) rank += llmk_moe_before(gs[j], j, gs[g], g);
      kp[g] = rank < a.topk_group;
    }
    __syncwarp();
#pragma unroll
    for (int i = 0; i < EPL; i++) {
      const int e = lane + 32 * i;
      if (e < a.E && !kp[e / per]) code[i] = 0u;
    }
  } else {
#pragma unroll
    for (int i = 0; i < EPL; i++) code[i] = lane + 32 * i < a.E ? key_code(w[i]) : 0u;
  }
  /* top k: per round, the best code over the warp, then the lowest expert
   * index holding it; lane s keeps slot s */
  int mine = -1;
  float mine_w = 0.0f, sum = 0.0f;
  for (int s = 0; s < a.k; s++) {
    uint32_t bc = 0u;
    float bw = 0.0f;
    int bi = 0;
#pragma unroll
    for (int i = 0; i < EPL; i++)
      if (code[i] > bc) bc = code[i], bw = w[i], bi = i; /* strict: the lower index on a tie */
    const uint32_t m = __reduce_max_sync(FULL, bc);
    const uint32_t idx = __reduce_min_sync(FULL, bc == m && m != 0u ? (uint32_t)(lane + 32 * bi) : 0xffffffffu);
    const int owner = (int)(idx % 32);
#pragma unroll
    for (int i = 0; i < EPL; i++)
      if ((uint32_t)(lane + 32 * i) == idx) code[i] = 0u;
    float wv = __shfl_sync(FULL, bw, owner);
    if (a.router == LLMK_MOE_SIGMOID_TOPK) wv = llmk_moe_sigmoid(wv);
    sum = sum + wv;
    if (lane == s) mine = (int)idx, mine_w = wv;
  }
  float wt = mine_w;
  if (a.router == LLMK_MOE_TOPK_SOFTMAX) {
    const float m = lanes_fmax<32>(lane < a.k ? mine_w : -INFINITY);
    const float z = lane < a.k ? llmk_moe_exp(mine_w - m) : 0.0f;
    wt = z / warp_fold(z);
  } else if (a.renormalize) {
    wt = wt / sum;
  }
  if (lane < a.k) {
    a.ids[t * a.k + lane] = mine;
    a.weights[t * a.k + lane] = canonical_nan(wt * a.scaling);
  }
  __syncwarp(); /* gs and kp are reused by the warp's next token */
  return mine;
}

template <int EPL>
__global__ void __launch_bounds__(32 * ROUTE_WARPS) route_redux_kernel(route_args a) {
  __shared__ float gsc[ROUTE_WARPS][ROUTE_REDUX_GROUPS];
  __shared__ int kept[ROUTE_WARPS][ROUTE_REDUX_GROUPS];
  const int warp = threadIdx.x / 32;
  const int64_t t = (int64_t)blockIdx.x * ROUTE_WARPS + warp;
  if (t < a.T) route_token_redux<EPL>(a, t, gsc[warp], kept[warp]);
}

template <int EPL>
void launch_route_redux(const route_args &a, cudaStream_t st) {
  const unsigned grid = (unsigned)((a.T + ROUTE_WARPS - 1) / ROUTE_WARPS);
  route_redux_kernel<EPL><<<grid, 32 * ROUTE_WARPS, 0, st>>>(a);
}

/* A few lanes a token (LPT = 4: eight tokens a warp), for many tokens: the
 * warp-per-token kernel spends about 340 shuffles a token on DeepSeek-V3's
 * router, and at 16384 tokens the shuffle rate bounds it. Lane q of a
 * token holds experts q, q + LPT, ...; reductions are log2(LPT) xor steps
 * within the token's lanes. The softmax fold of llmk.h is kept: lane q
 * holds the partial sums of lanes j = q, q + LPT, ... (j = e mod 32), folds
 * the levels 16 .. LPT in its registers and the rest by xor steps. Only
 * the keys stay in registers; a chosen expert's weight is recomputed from
 * its logit (the same operations, so the same bits). Each round's winner
 * is written at once (ids, and the raw weight or logit), and a last pass
 * over the lane's slots renormalizes or takes the softmax of the k. */
template <int LPT, int NP>
__device__ __forceinline__ float lanes_fold(float (&part)[NP]) {
#pragma unroll
  for (int wd = 16; wd >= LPT; wd /= 2)
#pragma unroll
    for (int p = 0; p < wd / LPT; p++) part[p] = part[p] + part[p + wd / LPT];
  float v = part[0];
#pragma unroll
  for (int o = LPT / 2; o > 0; o /= 2) v = v + __shfl_xor_sync(FULL, v, o);
  return v;
}



template <int LPT, int EPL>
__global__ void __launch_bounds__(32 * ROUTE_WARPS) route_lanes_kernel(route_args a) {
  static_assert(32 % LPT == 0 && EPL <= 64, "a token's lanes divide the warp; 64 experts a lane at most");
  constexpr int TPW = 32 / LPT, NP = 32 / LPT;
  extern __shared__ float route_smem[]; /* DEEPSEEK: per token, n_group scores then n_group kept flags */
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, q = lane % LPT, slot = lane / LPT;
  const int64_t t0 = ((int64_t)blockIdx.x * ROUTE_WARPS + warp) * TPW, t = t0 + slot;
  if (t0 >= a.T) return; /* the whole warp */
  const bool live = t < a.T;
  float key[EPL];
  uint64_t avail = 0;
#pragma unroll
  for (int i = 0; i < EPL; i++) {
    const int e = q + LPT * i;
    key[i] = 0.0f;
    if (live && e < a.E) key[i] = logit_at(a, t, e), avail |= 1ull << i;
  }
  if (a.router == LLMK_MOE_SOFTMAX_TOPK) {
    float m = -INFINITY;
#pragma unroll
    for (int i = 0; i < EPL; i++)
      if (avail >> i & 1) m = fmaxf(m, key[i]);
    m = lanes_fmax<LPT>(m);
    float part[NP];
#pragma unroll
    for (int p = 0; p < NP; p++) part[p] = 0.0f;
#pragma unroll
    for (int i = 0; i < EPL; i++)
      if (avail >> i & 1) key[i] = llmk_moe_exp(key[i] - m), part[i % NP] = part[i % NP] + key[i];
    const float S = lanes_fold<LPT, NP>(part);
#pragma unroll
    for (int i = 0; i < EPL; i++) key[i] = key[i] / S;
  } else if (a.router == LLMK_MOE_DEEPSEEK) {
#pragma unroll
    for (int i = 0; i < EPL; i++)
      if (avail >> i & 1) key[i] = llmk_moe_sigmoid(key[i]) + a.bias[q + LPT * i];
    const int per = a.E / a.n_group;
    float *gs = route_smem + (warp * TPW + slot) * 2 * a.n_group;
    float *kept = gs + a.n_group;
    for (int g = 0; g < a.n_group; g++) {
      const int lo = g * per, hi = lo + per;
      cand b1 = {0.0f, -1, 0.0f}, b2 = {0.0f, -1, 0.0f};
#pragma unroll
      for (int i = 0; i < EPL; i++) {
        const int e = q + LPT * i;
        if ((avail >> i & 1) && e >= lo && e < hi) merge_two(b1, b2, cand{key[i], e, 0.0f}, cand{0.0f, -1, 0.0f});
      }
      lanes_top2<LPT>(b1, b2);
      if (q == 0) gs[g] = per > 1 ? b1.key + b2.key : b1.key, kept[g] = 0.0f;
    }
    __syncwarp();
    for (int r = 0; r < a.topk_group; r++) {
      cand c = {0.0f, -1, 0.0f};
      for (int j = q; j < a.n_group; j += LPT)
        if (kept[j] == 0.0f) c = first_of(c, cand{gs[j], j, 0.0f});
      c = lanes_first<LPT>(c);
      __syncwarp();
      if (c.idx % LPT == q && c.idx >= 0) kept[c.idx] = 1.0f;
      __syncwarp();
    }
    int g = q / per, rem = q - g * per; /* expert q + LPT i's group, stepped along i */
#pragma unroll
    for (int i = 0; i < EPL; i++) {
      if ((avail >> i & 1) && kept[g] == 0.0f) avail &= ~(1ull << i);
      rem += LPT;
      while (rem >= per) rem -= per, g++;
    }
  }
  /* top k: each round's winner written at once by lane s % LPT */
  float sum = 0.0f;
  for (int s = 0; s < a.k; s++) {
    cand c = {0.0f, -1, 0.0f};
#pragma unroll
    for (int i = 0; i < EPL; i++)
      if (avail >> i & 1) c = first_of(c, cand{key[i], q + LPT * i, 0.0f});
    c = lanes_first<LPT>(c);
    if (c.idx >= 0 && c.idx % LPT == q) avail &= ~(1ull << (c.idx / LPT));
    /* the weight (or, TOPK_SOFTMAX, the logit) */
    float wv = c.key;
    if (live && c.idx >= 0) {
      if (a.router == LLMK_MOE_SIGMOID_TOPK) wv = llmk_moe_sigmoid(c.key);
      if (a.router == LLMK_MOE_DEEPSEEK) wv = llmk_moe_sigmoid(logit_at(a, t, c.idx));
    }
    sum = sum + wv;
    if (live && s % LPT == q) a.ids[t * a.k + s] = c.idx, a.weights[t * a.k + s] = wv;
  }
  if (a.router == LLMK_MOE_TOPK_SOFTMAX) {
    /* softmax over the k chosen logits: slot s is lane j = s of the fold */
    float m = -INFINITY, part[NP];
#pragma unroll
    for (int p = 0; p < NP; p++) {
      const int s = q + LPT * p;
      part[p] = 0.0f;
      if (live && s < a.k) m = fmaxf(m, a.weights[t * a.k + s]);
    }
    m = lanes_fmax<LPT>(m);
    float z[NP];
#pragma unroll
    for (int p = 0; p < NP; p++) {
      const int s = q + LPT * p;
      z[p] = live && s < a.k ? llmk_moe_exp(a.weights[t * a.k + s] - m) : 0.0f;
      part[p] = part[p] + z[p];
    }
    const float S = lanes_fold<LPT, NP>(part);
#pragma unroll
    for (int p = 0; p < NP; p++) {
      const int s = q + LPT * p;
      if (live && s < a.k) a.weights[t * a.k + s] = canonical_nan(z[p] / S * a.scaling);
    }
  } else if (live) {
    for (int s = q; s < a.k; s += LPT) {
      const float v = a.renormalize ? a.weights[t * a.k + s] / sum : a.weights[t * a.k + s];
      a.weights[t * a.k + s] = canonical_nan(v * a.scaling);
    }
  }
}

template <int EPL>
void launch_route_lanes(const route_args &a, cudaStream_t st) {
  constexpr int LPT = 4, TPC = ROUTE_WARPS * 32 / LPT; /* tokens a CTA */
  const size_t smem = a.router == LLMK_MOE_DEEPSEEK ? sizeof(float) * 2 * (size_t)a.n_group * TPC : 0;
  if (smem > 48 * 1024)
    cudaFuncSetAttribute(route_lanes_kernel<LPT, EPL>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  const unsigned grid = (unsigned)((a.T + TPC - 1) / TPC);
  route_lanes_kernel<LPT, EPL><<<grid, 32 * ROUTE_WARPS, smem, st>>>(a);
}

/* Route and permute in one CTA (a decode batch): warp w routes tokens w,
 * w + 32, ... with the redux kernel's code, keeping each pick's local
 * expert in shared memory, then the CTA permutes them (permute_few). */
constexpr int ROUTE_PERMUTE_TOKENS = 64;

template <int EPL>
__global__ void __launch_bounds__(PERM_THREADS) route_permute_kernel(route_args r, permute_args a) {
  static_assert(EPL <= 8, "1024 threads leave 64 registers a thread: 256 experts at most");
  __shared__ float gsc[PERM_WARPS][ROUTE_REDUX_GROUPS];
  __shared__ int kept[PERM_WARPS][ROUTE_REDUX_GROUPS];
  __shared__ int gl[PERM_THREADS], cnt[LLMK_MOE_MAX_G + 1], szs[LLMK_MOE_MAX_G], tmp[PERM_WARPS + 1];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int t = warp; t < r.T; t += PERM_WARPS) {
    const int e = route_token_redux<EPL>(r, t, gsc[warp], kept[warp]);
    if (lane < r.k) {
      const int64_t g = (int64_t)e - a.expert_begin;
      gl[t * r.k + lane] = g >= 0 && g < a.G ? (int)g : -1;
    }
  }
  permute_few(a, gl, cnt, szs, tmp);
}

route_args make_route_args(const llmk_moe_route_plan *p) {
  route_args a;
  a.logits = p->logits.data, a.ld = p->logits.ld, a.bf16 = p->logits.dtype == LLMK_BF16;
  a.bias = p->bias, a.ids = p->ids, a.weights = p->weights;
  a.T = (int)p->T, a.E = (int)p->E, a.k = p->k, a.renormalize = p->renormalize;
  a.n_group = p->n_group, a.topk_group = p->topk_group, a.router = (int)p->router, a.scaling = p->scaling;
  return a;
}

/* The redux kernel takes every router but DeepSeek groups that neither
 * divide 32 nor are a multiple of it, or more than ROUTE_REDUX_GROUPS of
 * them; LLMK_MOE_ROUTE can turn it off. */
bool route_redux_takes(const route_args &a) {
  const int forced = llmk_env_get()->moe_route;
  if (forced == LLMK_MOE_ROUTE_SHUFFLE || forced == LLMK_MOE_ROUTE_LANES4) return false;
  if (a.router != LLMK_MOE_DEEPSEEK) return true;
  const int per = a.E / a.n_group;
  return a.n_group <= ROUTE_REDUX_GROUPS && (per % 32 == 0 || 32 % per == 0);
}

/* The routing launch (inside the caller's device scope). */
llmk_status route_launch(const route_args &a, cudaStream_t st, const char *fn) {
  const bool quad = a.E <= 256 && (a.router != LLMK_MOE_DEEPSEEK || a.E / a.n_group >= 4) &&
                    (size_t)a.n_group * 2 * sizeof(float) * ROUTE_WARPS * 8 <= 96 * 1024;
  const char *kname = "route_kernel";
  if (llmk_env_get()->moe_route == LLMK_MOE_ROUTE_LANES4 && quad) {
    if (a.E <= 64) launch_route_lanes<16>(a, st);
    else if (a.E <= 128) launch_route_lanes<32>(a, st);
    else launch_route_lanes<64>(a, st);
    kname = "route_lanes_kernel";
  } else if (route_redux_takes(a)) {
    if (a.E <= 32) launch_route_redux<1>(a, st);
    else if (a.E <= 64) launch_route_redux<2>(a, st);
    else if (a.E <= 128) launch_route_redux<4>(a, st);
    else if (a.E <= 256) launch_route_redux<8>(a, st);
    else if (a.E <= 512) launch_route_redux<16>(a, st);
    else launch_route_redux<32>(a, st);
    kname = "route_redux_kernel";
  } else if (a.E <= 32) launch_route<1>(a, st);
  else if (a.E <= 64) launch_route<2>(a, st);
  else if (a.E <= 128) launch_route<4>(a, st);
  else if (a.E <= 256) launch_route<8>(a, st);
  else if (a.E <= 512) launch_route<16>(a, st);
  else launch_route<32>(a, st);
  return llmk_launch_check(fn, kname);
}

llmk_status check_tokens(int64_t T, const char *fn) {
  if (T > (int64_t)INT32_MAX * ROUTE_WARPS / 2)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "too many tokens (%lld) for one launch", (long long)T);
  return LLMK_SUCCESS;
}

}  // namespace

extern "C" llmk_status llmk_cuda_moe_route(llmk_handle h, const llmk_moe_route_plan *p, void *stream) {
  static const char fn[] = "llmk_moe_route";
  llmk_status s = check_tokens(p->T, fn);
  if (s) return s;
  llmk_device_scope sc;
  if ((s = llmk_scope_enter(h, &sc, fn))) return s;
  s = route_launch(make_route_args(p), (cudaStream_t)stream, fn);
  return llmk_scope_leave(h, &sc, s, fn);
}

extern "C" llmk_status llmk_cuda_moe_route_permute(llmk_handle h, const llmk_moe_route_plan *rp,
                                                   const llmk_moe_permute_plan *pp, void *stream) {
  static const char fn[] = "llmk_moe_route_permute";
  const route_args r = make_route_args(rp);
  const permute_args a = make_permute_args(h, pp);
  llmk_status s = check_tokens(rp->T, fn);
  if (!s) s = check_workspace(h, a, fn);
  if (s) return s;
  llmk_device_scope sc;
  if ((s = llmk_scope_enter(h, &sc, fn))) return s;
  const cudaStream_t st = (cudaStream_t)stream;
  if (r.T <= ROUTE_PERMUTE_TOKENS && r.E <= 256 && permute_is_few(a) && route_redux_takes(r)) {
    if (r.E <= 32) route_permute_kernel<1><<<1, PERM_THREADS, 0, st>>>(r, a);
    else if (r.E <= 64) route_permute_kernel<2><<<1, PERM_THREADS, 0, st>>>(r, a);
    else if (r.E <= 128) route_permute_kernel<4><<<1, PERM_THREADS, 0, st>>>(r, a);
    else route_permute_kernel<8><<<1, PERM_THREADS, 0, st>>>(r, a);
    s = llmk_launch_check(fn, "route_permute_kernel");
  } else {
    if (r.T > 0) s = route_launch(r, st, fn);
    if (!s) s = permute_launch(a, st, fn);
  }
  return llmk_scope_leave(h, &sc, s, fn);
}

