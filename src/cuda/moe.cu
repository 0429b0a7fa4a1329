/* The MoE ops' CUDA kernels (llmk.h, "Mixture of experts"): routing (one
 * warp per token), the permutation (a count kernel and a placement kernel
 * over chunks of picks; one launch when the picks fit one chunk), the
 * gathered quantization (the row quantizer with a gather) and the combine.
 * No float atomics anywhere: every sum runs in the order llmk.h states,
 * with core/moe.h's scalar numerics, so the CPU reference matches bit for
 * bit. Integer counts use shared-memory atomics, whose result does not
 * depend on their order. */
#include "core/env.h"
#include "core/moe.h"
#include "cuda/common.cuh"
#include "cuda/heuristics.h"
#include "cuda/launch.h"

namespace {

constexpr unsigned FULL = 0xffffffffu;

__device__ __forceinline__ float canonical_nan(float w) { return w != w ? __int_as_float(0x7FC00000) : w; }

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
      v = a.bf16 ? llmk_bf16_to_f32(static_cast<const uint16_t *>(a.logits)[t * a.ld + e])
                 : static_cast<const float *>(a.logits)[t * a.ld + e];
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

__device__ __forceinline__ float logit_at(const route_args &a, int64_t t, int e) {
  return a.bf16 ? llmk_bf16_to_f32(static_cast<const uint16_t *>(a.logits)[t * a.ld + e])
                : static_cast<const float *>(a.logits)[t * a.ld + e];
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

/* ---- permutation ------------------------------------------------------- */

constexpr int PERM_THREADS = 1024, PERM_WARPS = PERM_THREADS / 32;
constexpr int PERM_CHUNK = 4096; /* picks per CTA */
static_assert(PERM_CHUNK % (32 * PERM_WARPS) == 0, "each warp walks whole batches of 32 picks");

struct permute_args {
  const int32_t *ids;
  int32_t *sizes, *offsets, *row_of, *src_of;
  int32_t *hist; /* [chunks, G] of the count kernel; unused with one chunk */
  int64_t picks, R, expert_begin, m_max;
  int G, chunks;
  bool masked;
};

__device__ __forceinline__ int local_expert(const permute_args &a, int64_t p) {
  const int64_t g = (int64_t)a.ids[p] - a.expert_begin;
  return g >= 0 && g < a.G ? (int)g : -1;
}

/* hist[c][g]: the picks of chunk c that go to local expert g. */
__global__ void __launch_bounds__(PERM_THREADS) permute_count_kernel(permute_args a) {
  extern __shared__ int cnt[];
  for (int g = threadIdx.x; g < a.G; g += PERM_THREADS) cnt[g] = 0;
  __syncthreads();
  const int64_t p0 = (int64_t)blockIdx.x * PERM_CHUNK;
  for (int64_t p = p0 + threadIdx.x; p < a.picks && p < p0 + PERM_CHUNK; p += PERM_THREADS) {
    const int g = local_expert(a, p);
    if (g >= 0) atomicAdd(&cnt[g], 1);
  }
  __syncthreads();
  for (int g = threadIdx.x; g < a.G; g += PERM_THREADS) a.hist[(int64_t)blockIdx.x * a.G + g] = cnt[g];
}

/* Exclusive prefix sum of v over the CTA's threads (thread i holds v_i),
 * and the total; `tmp` is __shared__ int[PERM_WARPS + 1]. */
__device__ __forceinline__ int cta_exclusive_scan(int v, int *tmp, int &total) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int x = v;
#pragma unroll
  for (int o = 1; o < 32; o *= 2) {
    const int y = __shfl_up_sync(FULL, x, o);
    if (lane >= o) x += y;
  }
  if (lane == 31) tmp[warp] = x;
  __syncthreads();
  if (warp == 0) {
    int w = lane < PERM_WARPS ? tmp[lane] : 0;
#pragma unroll
    for (int o = 1; o < 32; o *= 2) {
      const int y = __shfl_up_sync(FULL, w, o);
      if (lane >= o) w += y;
    }
    if (lane < PERM_WARPS) tmp[lane] = w; /* inclusive over warps */
  }
  __syncthreads();
  total = tmp[PERM_WARPS - 1];
  const int before = warp > 0 ? tmp[warp - 1] : 0;
  __syncthreads(); /* tmp may be reused by the caller */
  return before + x - v;
}

/* Chunk c's picks placed: per-warp counts, their prefix over the warps,
 * the chunks before (hist) and the groups' first rows give each warp a
 * base per expert; the warp then walks its picks in order, 32 at a time,
 * ranking equal experts by lane. */
__global__ void __launch_bounds__(PERM_THREADS) permute_place_kernel(permute_args a) {
  extern __shared__ int smem[];
  int *wbase = smem;                 /* [PERM_WARPS][G]: counts, then bases */
  int *first = wbase + PERM_WARPS * a.G; /* [G + 1]: each group's first row */
  int *sizes = first + a.G + 1;      /* [G] */
  __shared__ int tmp[PERM_WARPS + 1];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int i = threadIdx.x; i < PERM_WARPS * a.G; i += PERM_THREADS) wbase[i] = 0;
  __syncthreads();
  constexpr int PER_WARP = PERM_CHUNK / PERM_WARPS;
  const int64_t p0 = (int64_t)blockIdx.x * PERM_CHUNK + warp * PER_WARP;
  for (int64_t p = p0 + lane; p < a.picks && p < p0 + PER_WARP; p += 32) {
    const int g = local_expert(a, p);
    if (g >= 0) atomicAdd(&wbase[warp * a.G + g], 1);
  }
  __syncthreads();
  /* per expert: prefix over the warps, the chunks before, the total */
  for (int g = threadIdx.x; g < a.G; g += PERM_THREADS) {
    int run = 0;
    for (int w = 0; w < PERM_WARPS; w++) {
      const int c = wbase[w * a.G + g];
      wbase[w * a.G + g] = run;
      run += c;
    }
    int before = 0, total = run;
    for (int c = 0; c < a.chunks; c++) {
      if (c == (int)blockIdx.x) continue;
      const int n = a.hist[(int64_t)c * a.G + g];
      total += n;
      if (c < (int)blockIdx.x) before += n;
    }
    /* the within-expert rank of this warp's first pick, parked in first[] for now */
    first[g] = before;
    sizes[g] = a.masked ? (int)min((int64_t)total, a.m_max) : total;
  }
  __syncthreads();
  /* first rows: the prefix of the sizes (stacked) or g m_max (masked), G <= 1024 */
  int run_total = 0;
  const int gi = threadIdx.x;
  const int sz = gi < a.G ? sizes[gi] : 0;
  const int ex = cta_exclusive_scan(sz, tmp, run_total);
  int before_g = 0;
  if (gi < a.G) before_g = first[gi];
  __syncthreads();
  if (gi < a.G) {
    const int f = a.masked ? (int)(gi * a.m_max) : ex;
    first[gi] = f;
    for (int w = 0; w < PERM_WARPS; w++) wbase[w * a.G + gi] += before_g; /* within-expert ranks */
    if (blockIdx.x == 0) {
      a.sizes[gi] = sz;
      if (a.offsets) a.offsets[gi] = f;
    }
  }
  if (threadIdx.x == 0) {
    first[a.G] = a.masked ? (int)(a.G * a.m_max) : run_total;
    if (blockIdx.x == 0 && a.offsets) a.offsets[a.G] = first[a.G];
  }
  __syncthreads();
  /* place: rank j within expert g -> row first[g] + j (masked: while j < m_max) */
  const unsigned lt = (1u << lane) - 1u;
  for (int64_t b = p0; b < a.picks && b < p0 + PER_WARP; b += 32) {
    const int64_t p = b + lane;
    const int g = p < a.picks ? local_expert(a, p) : -1;
    const unsigned peers = __match_any_sync(FULL, g);
    int row = -1;
    if (g >= 0) {
      const int j = wbase[warp * a.G + g] + __popc(peers & lt);
      if (!a.masked || j < a.m_max) row = first[g] + j;
    }
    __syncwarp();
    if (g >= 0 && (peers & lt) == 0) wbase[warp * a.G + g] += __popc(peers);
    __syncwarp();
    if (p < a.picks) {
      a.row_of[p] = row;
      if (row >= 0) a.src_of[row] = (int32_t)p;
    }
  }
  /* rows no pick fills: -1, spread over the CTAs */
  const int64_t stride = (int64_t)gridDim.x * PERM_THREADS;
  if (!a.masked) {
    for (int64_t r = first[a.G] + (int64_t)blockIdx.x * PERM_THREADS + threadIdx.x; r < a.R; r += stride)
      a.src_of[r] = -1;
  } else {
    for (int64_t r = (int64_t)blockIdx.x * PERM_THREADS + threadIdx.x; r < a.R; r += stride)
      if (r % a.m_max >= sizes[r / a.m_max]) a.src_of[r] = -1;
  }
}

/* Few picks (at most PERM_THREADS, R at most PERM_FEW_ROWS) in one CTA:
 * pick p's rank within its expert is the count of the picks before it with
 * the same expert (a scan of gl[0 .. p), broadcast reads), the sizes come
 * from shared atomics (whose order does not matter), the first rows from a
 * CTA scan. gl: the picks' local experts (-1: dropped), in shared memory,
 * complete before the call; cnt [G + 1], szs [G], tmp [PERM_WARPS + 1]. */
constexpr int PERM_FEW_ROWS = 16384;
static_assert(LLMK_MOE_MAX_G <= PERM_THREADS, "one thread a group in the CTA scan");

__device__ void permute_few(const permute_args &a, const int *gl, int *cnt, int *szs, int *tmp) {
  const int tid = threadIdx.x, picks = (int)a.picks;
  for (int g = tid; g <= a.G; g += PERM_THREADS) cnt[g] = 0;
  __syncthreads();
  const int g = tid < picks ? gl[tid] : -1;
  int j = 0;
  if (g >= 0) {
    atomicAdd(&cnt[g], 1);
    for (int q = 0; q < tid; q++) j += gl[q] == g;
  }
  __syncthreads();
  const int n = tid < a.G ? cnt[tid] : 0;
  const int sz = a.masked ? (int)min((int64_t)n, a.m_max) : n;
  int total = 0;
  const int ex = cta_exclusive_scan(sz, tmp, total); /* its barriers order the reads of cnt before the writes */
  if (tid < a.G) {
    const int f = a.masked ? (int)(tid * a.m_max) : ex;
    cnt[tid] = f, szs[tid] = sz;
    a.sizes[tid] = sz;
    if (a.offsets) a.offsets[tid] = f;
  }
  if (tid == 0) {
    const int end = a.masked ? (int)(a.G * a.m_max) : total;
    cnt[a.G] = end;
    if (a.offsets) a.offsets[a.G] = end;
  }
  __syncthreads();
  if (tid < picks) {
    int row = -1;
    if (g >= 0 && (!a.masked || j < a.m_max)) row = cnt[g] + j;
    a.row_of[tid] = row;
    if (row >= 0) a.src_of[row] = tid;
  }
  if (!a.masked) {
    for (int64_t r = cnt[a.G] + tid; r < a.R; r += PERM_THREADS) a.src_of[r] = -1;
  } else {
    for (int64_t r = tid; r < a.R; r += PERM_THREADS)
      if (r % a.m_max >= szs[r / a.m_max]) a.src_of[r] = -1;
  }
}

__global__ void __launch_bounds__(PERM_THREADS) permute_few_kernel(permute_args a) {
  __shared__ int gl[PERM_THREADS], cnt[LLMK_MOE_MAX_G + 1], szs[LLMK_MOE_MAX_G], tmp[PERM_WARPS + 1];
  if (threadIdx.x < a.picks) gl[threadIdx.x] = local_expert(a, threadIdx.x);
  permute_few(a, gl, cnt, szs, tmp); /* its first barrier publishes gl */
}

__host__ __device__ inline bool permute_is_few(const permute_args &a) {
  return a.picks <= PERM_THREADS && a.R <= PERM_FEW_ROWS;
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

/* ---- combine ----------------------------------------------------------- */

struct combine_args {
  const uint16_t *y, *add;
  uint16_t *out;
  int64_t ldy, lda, ldo, T, H, R;
  const int32_t *row_of;
  const float *weights;
  int k;
};

constexpr int COMBINE_THREADS = 128;

__device__ __forceinline__ uint16_t bf16_out(float acc) {
  return acc != acc ? (uint16_t)0x7FC0u : llmk_bf16_from_f32(acc);
}

/* One CTA per (token, 8 x COMBINE_THREADS columns); VEC: 16-byte rows. */
template <bool VEC>
__global__ void __launch_bounds__(COMBINE_THREADS) combine_kernel(combine_args a) {
  __shared__ int rows[LLMK_MOE_MAX_K];
  __shared__ float wts[LLMK_MOE_MAX_K];
  const int64_t t = blockIdx.x;
  if (threadIdx.x < a.k) {
    const int32_t r = a.row_of[t * a.k + threadIdx.x];
    rows[threadIdx.x] = r >= 0 && r < a.R ? r : -1;
    wts[threadIdx.x] = a.weights[t * a.k + threadIdx.x];
  }
  __syncthreads();
  const int64_t c = ((int64_t)blockIdx.y * COMBINE_THREADS + threadIdx.x) * 8;
  if (c >= a.H) return;
  float acc[8];
#pragma unroll
  for (int j = 0; j < 8; j++) acc[j] = 0.0f;
  const int n = VEC ? 8 : (int)min((int64_t)8, a.H - c);
  for (int s = 0; s < a.k; s++) {
    const int r = rows[s];
    if (r < 0) continue;
    const uint16_t *yr = a.y + (int64_t)r * a.ldy + c;
    if (VEC) {
      const uint4 u = __ldg(reinterpret_cast<const uint4 *>(yr));
      const uint32_t wd[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
      for (int j = 0; j < 8; j++)
        acc[j] = __fmaf_rn(wts[s], llmk_bf16_to_f32((uint16_t)(wd[j / 2] >> (16 * (j % 2)))), acc[j]);
    } else {
#pragma unroll
      for (int j = 0; j < 8; j++)
        if (j < n) acc[j] = __fmaf_rn(wts[s], llmk_bf16_to_f32(yr[j]), acc[j]);
    }
  }
  uint16_t o[8];
  if (a.add) {
    const uint16_t *ar = a.add + t * a.lda + c;
    if (VEC) {
      const uint4 u = *reinterpret_cast<const uint4 *>(ar); /* may be out itself: not __ldg */
      const uint32_t wd[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
      for (int j = 0; j < 8; j++) acc[j] = __fadd_rn(acc[j], llmk_bf16_to_f32((uint16_t)(wd[j / 2] >> (16 * (j % 2)))));
    } else {
#pragma unroll
      for (int j = 0; j < 8; j++)
        if (j < n) acc[j] = __fadd_rn(acc[j], llmk_bf16_to_f32(ar[j]));
    }
  }
#pragma unroll
  for (int j = 0; j < 8; j++) o[j] = bf16_out(acc[j]);
  uint16_t *orow = a.out + t * a.ldo + c;
  if (VEC) {
    uint4 u;
    u.x = o[0] | ((uint32_t)o[1] << 16), u.y = o[2] | ((uint32_t)o[3] << 16);
    u.z = o[4] | ((uint32_t)o[5] << 16), u.w = o[6] | ((uint32_t)o[7] << 16);
    *reinterpret_cast<uint4 *>(orow) = u;
  } else {
#pragma unroll
    for (int j = 0; j < 8; j++)
      if (j < n) orow[j] = o[j];
  }
}

/* ---- plain gather (bf16 xq) --------------------------------------------- */

struct gather_args {
  const uint16_t *x;
  uint16_t *xq;
  int64_t ldx, ldq, H, R, picks;
  const int32_t *src_of;
  int k;
};

template <bool VEC>
__global__ void __launch_bounds__(128) gather_bf16_kernel(gather_args a) {
  const int64_t r = blockIdx.x;
  const int32_t src = a.src_of[r];
  if (src < 0 || src >= a.picks) return;
  const uint16_t *x = a.x + (int64_t)(src / a.k) * a.ldx;
  uint16_t *q = a.xq + r * a.ldq;
  const int H = (int)a.H; /* < 2^31 elements a row */
  if (VEC) {
#pragma unroll 1
    for (int c = threadIdx.x * 8; c < H; c += 128 * 8)
      *reinterpret_cast<uint4 *>(q + c) = __ldg(reinterpret_cast<const uint4 *>(x + c));
  } else {
#pragma unroll 1
    for (int c = threadIdx.x; c < H; c += 128) q[c] = x[c];
  }
}

}  // namespace

namespace {

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

permute_args make_permute_args(llmk_handle h, const llmk_moe_permute_plan *p) {
  permute_args a;
  a.ids = p->ids, a.sizes = p->sizes, a.offsets = p->offsets, a.row_of = p->row_of, a.src_of = p->src_of;
  a.picks = p->T * p->k, a.R = p->R, a.expert_begin = p->expert_begin, a.m_max = p->m_max;
  a.G = (int)p->G, a.masked = p->layout == LLMK_GROUP_MASKED;
  a.chunks = (int)(a.picks > 0 ? (a.picks + PERM_CHUNK - 1) / PERM_CHUNK : 1);
  a.hist = static_cast<int32_t *>(h->workspace);
  return a;
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

/* The permutation's launches: one CTA for few picks, one chunk's CTA, or
 * count + place over the chunks (inside the caller's device scope). */
llmk_status permute_launch(const permute_args &a, cudaStream_t st, const char *fn) {
  if (permute_is_few(a)) {
    permute_few_kernel<<<1, PERM_THREADS, 0, st>>>(a);
    return llmk_launch_check(fn, "permute_few_kernel");
  }
  const size_t smem = sizeof(int) * ((size_t)PERM_WARPS * a.G + 2 * (size_t)a.G + 1);
  llmk_status s;
  if (a.chunks > 1) {
    permute_count_kernel<<<(unsigned)a.chunks, PERM_THREADS, sizeof(int) * (size_t)a.G, st>>>(a);
    if ((s = llmk_launch_check(fn, "permute_count_kernel"))) return s;
  }
  if (smem > 48 * 1024) cudaFuncSetAttribute(permute_place_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  permute_place_kernel<<<(unsigned)a.chunks, PERM_THREADS, smem, st>>>(a);
  return llmk_launch_check(fn, "permute_place_kernel");
}

llmk_status check_workspace(llmk_handle h, const permute_args &a, const char *fn) {
  if (a.chunks > 1 && (!h->workspace || (size_t)a.chunks * (size_t)a.G * sizeof(int32_t) > h->workspace_bytes))
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "the handle's workspace (%zu bytes) holds no %d x %d counts (set a larger one)",
                          h->workspace_bytes, a.chunks, a.G);
  return LLMK_SUCCESS;
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

extern "C" llmk_status llmk_cuda_moe_permute(llmk_handle h, const llmk_moe_permute_plan *p, void *stream) {
  static const char fn[] = "llmk_moe_permute";
  const permute_args a = make_permute_args(h, p);
  llmk_status s = check_workspace(h, a, fn);
  if (s) return s;
  llmk_device_scope sc;
  if ((s = llmk_scope_enter(h, &sc, fn))) return s;
  s = permute_launch(a, (cudaStream_t)stream, fn);
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

extern "C" llmk_status llmk_cuda_moe_gather_quant(llmk_handle h, const llmk_moe_gather_plan *p, void *stream) {
  static const char fn[] = "llmk_moe_gather_quant";
  if (p->R > INT32_MAX) return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "too many rows for one launch");
  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, fn);
  if (s) return s;
  const cudaStream_t st = (cudaStream_t)stream;
  if (p->xq.dtype == LLMK_BF16) {
    gather_args g;
    g.x = static_cast<const uint16_t *>(p->x.data), g.xq = static_cast<uint16_t *>(p->xq.data);
    g.ldx = p->x.ld, g.ldq = p->xq.ld, g.H = p->H, g.R = p->R, g.picks = p->T * p->k;
    g.src_of = p->src_of, g.k = p->k;
    const bool vec = p->H % 8 == 0 && llmk_rows_aligned(p->x, 16) &&
                     llmk_rows_aligned(p->xq, 16);
    if (vec) gather_bf16_kernel<true><<<(unsigned)p->R, 128, 0, st>>>(g);
    else gather_bf16_kernel<false><<<(unsigned)p->R, 128, 0, st>>>(g);
    s = llmk_launch_check(fn, "gather_bf16_kernel");
    return llmk_scope_leave(h, &sc, s, fn);
  }
  /* the row quantizer, reading row src_of[r] / k for output row r */
  const bool one_seg = p->gk >= p->H;
  llmk_qargs a = {};
  a.x = p->x.data, a.ldx = p->x.ld;
  a.q = static_cast<uint8_t *>(p->xq.data), a.ldq = p->xq.ld;
  a.scale = p->scale;
  a.M = p->R, a.K = p->H, a.gm = 1, a.gk = p->gk, a.ngc = p->nseg;
  a.ub = p->scale_ub;
  a.vec_ld = llmk_rows_aligned(p->x, 16) && (one_seg || (p->gk * 2) % 16 == 0);
  a.vec_st = llmk_rows_aligned(p->xq, 8) && (one_seg || p->gk % 8 == 0);
  a.vec_st2 = llmk_rows_aligned(p->xq, 16) && (one_seg || p->gk % 16 == 0);
  a.gather = p->src_of, a.gather_k = p->k, a.gather_n = p->T * p->k;
  const int64_t nvec = ((one_seg ? p->H : p->gk) + 7) / 8;
  s = llmk_launch_quant_rows(LLMK_BF16, false, a, llmk_team_config(nvec, p->R * p->nseg, h->sm_count), st);
  return llmk_scope_leave(h, &sc, s, fn);
}

extern "C" llmk_status llmk_cuda_moe_combine(llmk_handle h, const llmk_moe_combine_plan *p, void *stream) {
  static const char fn[] = "llmk_moe_combine";
  const int64_t col_blocks = (p->H + 8 * COMBINE_THREADS - 1) / (8 * COMBINE_THREADS);
  if (p->T > INT32_MAX || col_blocks > 65535)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "T = %lld, H = %lld: too large for one launch",
                          (long long)p->T, (long long)p->H);
  combine_args a;
  a.y = static_cast<const uint16_t *>(p->y.data), a.add = static_cast<const uint16_t *>(p->add.data);
  a.out = static_cast<uint16_t *>(p->out.data);
  a.ldy = p->y.ld, a.lda = p->add.ld, a.ldo = p->out.ld, a.T = p->T, a.H = p->H, a.R = p->R;
  a.row_of = p->row_of, a.weights = p->weights, a.k = p->k;
  const bool vec = p->H % 8 == 0 && llmk_rows_aligned(p->y, 16) &&
                   llmk_rows_aligned(p->out, 16) &&
                   (!p->add.data || llmk_rows_aligned(p->add, 16));
  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, fn);
  if (s) return s;
  const dim3 grid((unsigned)p->T, (unsigned)col_blocks);
  if (vec) combine_kernel<true><<<grid, COMBINE_THREADS, 0, (cudaStream_t)stream>>>(a);
  else combine_kernel<false><<<grid, COMBINE_THREADS, 0, (cudaStream_t)stream>>>(a);
  s = llmk_launch_check(fn, "combine_kernel");
  return llmk_scope_leave(h, &sc, s, fn);
}
