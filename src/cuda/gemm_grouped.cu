/* Host side of the grouped GEMM (llmk_gemm_grouped): the grouped
 * instantiations of llmk's Hopper GEMM kernel (gemm_sm90.cuh, GROUPED),
 * the choice among them, tensor maps over the whole operands, and the
 * launch. The group sizes stay on the device: every CTA builds its table
 * of groups from them after the dependency wait, so the host sizes the grid
 * for the most tiles the sizes could make. */
#include <string.h>

#include "core/env.h"
#include "core/gemm.h"
#include "cuda/common.cuh"
#include "cuda/gemm_grouped.h"
#include "cuda/gemm_kernels.cuh"

static const char FN[] = "llmk_gemm_grouped";

/* Split tiles (swapped, one per cluster of `splits` CTAs) or persistent
 * CTAs walking the tiles. TMA_EPI: a consumer's rows go out by TMA store
 * where they all belong to the tile's group, directly otherwise (a box
 * would write the next group's rows). */
template <int BM, int BN, int STAGES, bool PROMOTE, bool SWAP, bool SPLIT, bool BF16, bool PING, bool TMA>
static llmk_status grouped_launch(const llmk_gemm_plan *p, const llmk_gemm_args &a, int grid, int splits,
                                  cudaStream_t st) {
  return llmk_gemm_launch<BM, BN, STAGES, PROMOTE, TMA, SPLIT, SWAP, false, PING, BF16, true>(p, a, grid, splits, st);
}

/* The launches of llmk_grouped_cfgs (gemm_grouped_choice.c), in its order:
 * tile, stages, then promote, swap, split, bf16, ping, tma_store. */
static const llmk_gemm_launcher k_launch[] = {
    grouped_launch<64, 16, 16, false, true, true, false, false, false>,
    grouped_launch<64, 32, 12, false, true, true, false, false, false>,
    grouped_launch<64, 64, 12, false, true, true, false, false, false>,
    grouped_launch<64, 16, 16, false, true, false, false, false, false>,
    grouped_launch<64, 32, 12, false, true, false, false, false, false>,
    grouped_launch<64, 64, 12, false, true, false, false, false, false>,
    grouped_launch<128, 16, 11, false, true, false, false, false, false>,
    grouped_launch<128, 32, 10, false, true, false, false, false, false>,
    grouped_launch<128, 64, 8, false, true, false, false, false, false>,
    grouped_launch<128, 128, 6, false, false, false, false, false, false>,
    grouped_launch<128, 256, 4, false, false, false, false, false, false>,
    grouped_launch<128, 128, 5, false, false, false, false, false, true>,
    grouped_launch<128, 256, 3, false, false, false, false, false, true>,
    grouped_launch<128, 128, 6, false, false, false, false, true, false>,
    grouped_launch<128, 128, 4, false, false, false, false, true, true>,
    grouped_launch<64, 256, 3, false, false, false, false, true, true>,
    grouped_launch<64, 16, 16, true, true, true, false, false, false>,
    grouped_launch<64, 32, 12, true, true, true, false, false, false>,
    grouped_launch<64, 64, 12, true, true, true, false, false, false>,
    grouped_launch<64, 16, 16, true, true, false, false, false, false>,
    grouped_launch<64, 32, 12, true, true, false, false, false, false>,
    grouped_launch<64, 64, 12, true, true, false, false, false, false>,
    grouped_launch<128, 128, 6, true, false, false, false, false, false>,
    grouped_launch<128, 128, 5, true, false, false, false, false, true>,
    grouped_launch<128, 16, 11, false, true, true, true, false, false>,
    grouped_launch<128, 32, 10, false, true, true, true, false, false>,
    grouped_launch<128, 64, 8, false, true, true, true, false, false>,
    grouped_launch<128, 16, 11, false, true, false, true, false, false>,
    grouped_launch<128, 32, 10, false, true, false, true, false, false>,
    grouped_launch<128, 64, 8, false, true, false, true, false, false>,
    grouped_launch<128, 128, 5, false, false, false, true, false, false>,
    grouped_launch<128, 256, 3, false, false, false, true, false, false>,
    grouped_launch<128, 128, 5, false, false, false, true, false, true>,
    grouped_launch<128, 256, 3, false, false, false, true, false, true>,
};
static_assert(sizeof k_launch / sizeof k_launch[0] == LLMK_GROUPED_NUM_CFGS, "one launch per configuration");

extern "C" llmk_status llmk_cuda_gemm_grouped(llmk_handle h, const llmk_grouped_plan *p, void *stream) {
  const llmk_gemm_plan *b = &p->base;
  if (p->G > LLMK_GROUPED_MAX_G)
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, FN, "G = %lld groups: the CUDA kernels take at most %d",
                          (long long)p->G, LLMK_GROUPED_MAX_G);
  if (b->M > INT32_MAX || p->G * b->N > INT32_MAX || b->K > INT32_MAX)
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, FN, "the own kernels take dimensions below 2^31");
  const llmk_grouped_shape shape = llmk_grouped_shape_of(p);
  const llmk_grouped_choice ch = llmk_grouped_choose(&shape, &h->gemm_dev);
  if (ch.cfg < 0) return llmk_set_error(LLMK_ERR_INTERNAL, FN, "no grouped configuration serves the call");
  const llmk_grouped_cfg &c = llmk_grouped_cfgs[ch.cfg];
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
  /* the tiles across N, and the most row tiles the sizes can make */
  const int bt = c.swap ? c.tile_n : c.tile_m, splits = c.split ? ch.splits : 1;
  a.tiles_n = c.swap ? (a.N + c.tile_m - 1) / c.tile_m : (a.N + c.tile_n - 1) / c.tile_n;
  a.tiles_m = 0, a.group_m = llmk_env_get()->gemm_band > 0 ? llmk_env_get()->gemm_band : 8; /* unswapped: bands of row tiles (gemm_sm90_layout.cuh) */
  const int64_t tiles = llmk_grouped_max_row_tiles(&shape, bt) * a.tiles_n;
  if (tiles * splits > INT32_MAX) return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, FN, "too many output tiles");
  /* split: one cluster of `splits` CTAs per possible tile (those past the
   * device's count leave at once); persistent: one CTA per SM walks the tiles */
  const int grid = c.split ? (int)(tiles * splits) : (int)(tiles < h->sm_count ? tiles : h->sm_count);
  if (grid == 0) return LLMK_SUCCESS;
  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, FN);
  if (s) return s;
  s = k_launch[ch.cfg](b, a, grid, splits, (cudaStream_t)stream);
  return llmk_scope_leave(h, &sc, s, FN);
}
