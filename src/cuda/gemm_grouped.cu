/* Host side of the grouped GEMM (llmk_gemm_grouped): the grouped
 * instantiations of llmk's Hopper GEMM kernel (gemm_sm90.cuh, GROUPED),
 * the choice among them, tensor maps over the whole operands, and the
 * launch. The group sizes stay on the device: every CTA builds its table
 * of groups from them after the dependency wait, so the host sizes the grid
 * for the most tiles the sizes could make. */
#include <string.h>

#include "core/gemm.h"
#include "cuda/common.cuh"
#include "cuda/gemm_kernels.cuh"

static const char FN[] = "llmk_gemm_grouped";

/* A grouped kernel: tile sizes, whether it is a swapped decode tile
 * (always run as clusters of one CTA, one tile each) or persistent, and its
 * launch (gemm_kernels.cuh, GROUPED). */
typedef struct grouped_cfg {
  const char *name;
  int bm, bn, swap, promote, bf16;
  llmk_gemm_launcher launch;
} grouped_cfg;

/* Swapped tiles are split-K kernels, here with one rank per cluster; stores
 * are direct (a TMA store would write the next group's rows). */
template <int BM, int BN, int STAGES, bool PROMOTE, bool SWAP, bool BF16>
static llmk_status grouped_launch(const llmk_gemm_plan *p, const llmk_gemm_args &a, int grid, int splits,
                                  cudaStream_t st) {
  return llmk_gemm_launch<BM, BN, STAGES, PROMOTE, false, SWAP, SWAP, false, false, BF16, true>(p, a, grid, splits, st);
}

/* The grouped kernels: swapped decode tiles of 16, 32 and 64 tokens and a
 * persistent 128 x 128 tile, for fast accumulation, fp32 promotion (block
 * scales) and BF16. */
static const grouped_cfg k_cfgs[] = {
    {"grouped_swap_64x16_s16", 64, 16, 1, 0, 0, grouped_launch<64, 16, 16, false, true, false>},
    {"grouped_swap_64x32_s12", 64, 32, 1, 0, 0, grouped_launch<64, 32, 12, false, true, false>},
    {"grouped_swap_64x64_s12", 64, 64, 1, 0, 0, grouped_launch<64, 64, 12, false, true, false>},
    {"grouped_persist_128x128_s6", 128, 128, 0, 0, 0, grouped_launch<128, 128, 6, false, false, false>},
    {"grouped_swap_promote_64x16_s16", 64, 16, 1, 1, 0, grouped_launch<64, 16, 16, true, true, false>},
    {"grouped_swap_promote_64x32_s12", 64, 32, 1, 1, 0, grouped_launch<64, 32, 12, true, true, false>},
    {"grouped_swap_promote_64x64_s12", 64, 64, 1, 1, 0, grouped_launch<64, 64, 12, true, true, false>},
    {"grouped_persist_promote_128x128_s6", 128, 128, 0, 1, 0, grouped_launch<128, 128, 6, true, false, false>},
    {"grouped_bf16_swap_128x16_s11", 128, 16, 1, 0, 1, grouped_launch<128, 16, 11, false, true, true>},
    {"grouped_bf16_swap_128x32_s10", 128, 32, 1, 0, 1, grouped_launch<128, 32, 10, false, true, true>},
    {"grouped_bf16_swap_128x64_s8", 128, 64, 1, 0, 1, grouped_launch<128, 64, 8, false, true, true>},
    {"grouped_bf16_persist_128x128_s5", 128, 128, 0, 0, 1, grouped_launch<128, 128, 5, false, false, true>},
};

/* The kernel for p: by the rows a group holds on average (the sizes are on
 * the device; stacked: T / G, masked: M_max), a swapped tile just wide
 * enough for them up to 64 rows, the persistent tile above. */
static const grouped_cfg &choose(const llmk_grouped_plan *p) {
  const llmk_gemm_plan *b = &p->base;
  const int bf16 = b->in_dtype == LLMK_BF16, promote = !bf16 && !b->fast_accum;
  const int64_t per = p->layout == LLMK_GROUP_MASKED ? p->m_max : (b->M + p->G - 1) / p->G;
  const int want_bn = per <= 16 ? 16 : per <= 32 ? 32 : per <= 64 ? 64 : 0;
  for (const grouped_cfg &c : k_cfgs)
    if (c.bf16 == bf16 && c.promote == (bf16 ? 0 : promote) && (want_bn ? c.swap && c.bn == want_bn : !c.swap))
      return c;
  return k_cfgs[3]; /* not reached: every kind has all four */
}

extern "C" llmk_status llmk_cuda_gemm_grouped(llmk_handle h, const llmk_grouped_plan *p, void *stream) {
  const llmk_gemm_plan *b = &p->base;
  if (p->G > LLMK_GROUPED_MAX_G)
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, FN, "G = %lld groups: the CUDA kernels take at most %d",
                          (long long)p->G, LLMK_GROUPED_MAX_G);
  if (b->M > INT32_MAX || p->G * b->N > INT32_MAX || b->K > INT32_MAX)
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, FN, "the own kernels take dimensions below 2^31");
  const grouped_cfg &c = choose(p);
  llmk_gemm_args a;
  memset(&a, 0, sizeof a);
  a.planes = 1;
  a.M = (int)b->M, a.N = (int)b->N, a.K = (int)b->K;
  a.xs = b->xs, a.ws = b->ws, a.row_scales = b->scaling == LLMK_SCALING_ROW;
  a.unscaled = b->in_dtype == LLMK_BF16;
  a.block = !a.unscaled && b->scaling == LLMK_SCALING_BLOCK, a.x_bm = 1;
  a.xs_rs = b->xs_rs, a.xs_ks = b->xs_ks, a.ws_rs = b->ws_rs, a.ws_ks = b->ws_ks;
  if (a.unscaled) a.row_scales = 0;
  a.bias = b->bias, a.bias_f32 = b->bias && b->bias_dtype == LLMK_F32;
  a.y = reinterpret_cast<__nv_bfloat16 *>(b->y), a.ldy = b->ldy;
  a.groups = (int)p->G, a.m_max = (int)p->m_max, a.gsizes = p->sizes;
  a.ws_group = b->scaling == LLMK_SCALING_TENSOR ? 1
               : b->scaling == LLMK_SCALING_ROW  ? b->N
                                                 : ((b->N + 127) / 128) * ((b->K + 127) / 128);
  a.xs_group = b->scaling == LLMK_SCALING_TENSOR ? 1 : 0;
  if (a.unscaled) a.ws_group = 0, a.xs_group = 0;
  /* the tiles across N, and the most row tiles the sizes can make: each
   * non-empty group (at most min(G, rows) of them) adds one partial tile */
  const int bt = c.swap ? c.bn : c.bm;
  a.tiles_n = c.swap ? (a.N + c.bm - 1) / c.bm : (a.N + c.bn - 1) / c.bn;
  a.tiles_m = 0, a.group_m = 1;
  const int64_t row_tiles = p->layout == LLMK_GROUP_MASKED ? p->G * ((p->m_max + bt - 1) / bt)
                                                           : (b->M + bt - 1) / bt + (p->G < b->M ? p->G : b->M);
  const int64_t tiles = row_tiles * a.tiles_n;
  if (tiles > INT32_MAX) return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, FN, "too many output tiles");
  /* swapped: one CTA per possible tile (those past the device's count
   * leave at once); persistent: one CTA per SM walks the tiles */
  const int grid = c.swap ? (int)tiles : (int)(tiles < h->sm_count ? tiles : h->sm_count);
  if (grid == 0) return LLMK_SUCCESS;
  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, FN);
  if (s) return s;
  s = c.launch(b, a, grid, 1, (cudaStream_t)stream);
  return llmk_scope_leave(h, &sc, s, FN);
}
