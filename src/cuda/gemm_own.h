/* llmk's own Hopper FP8 GEMM kernels (src/cuda/gemm_own.cu). */
#ifndef LLMK_GEMM_OWN_H
#define LLMK_GEMM_OWN_H

#include "core/gemm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One compiled tile configuration: BM x BN output tiles, a ring of `stages`
 * 128-deep K slices, `promote` = fp32 promotion every 128 of K, `tma_epi` =
 * epilogue through shared memory and TMA stores (else direct stores),
 * `split` = K split over a cluster of CTAs per tile (the count chosen per
 * call, 1..LLMK_GEMM_MAX_SPLITS), else persistent CTAs walking the tiles,
 * `swap` = decode tiles of bm weight rows x bn tokens (W is wgmma's A),
 * `mcast` = persistent 2-CTA clusters sharing W slices by TMA multicast,
 * `ping` = two consumer warpgroups taking whole tiles in turn (one's
 * epilogue beside the other's main loop), `gemv` = BF16 only: the
 * mma.sync kernel for a few tokens (gemv_bf16.cu; bm = 16 weight rows, bn =
 * 8 tokens, K split over a cluster of at most 8 CTAs). */
typedef struct llmk_gemm_own_cfg {
  int bm, bn, stages, promote, tma_epi, split, swap, mcast, ping, gemv;
} llmk_gemm_own_cfg;

/* Largest cluster: 8 is portable, 16 needs the H100's non-portable opt-in. */
#define LLMK_GEMM_MAX_SPLITS 16

int llmk_gemm_own_num_cfgs(void);
llmk_gemm_own_cfg llmk_gemm_own_cfg_at(int i);

/* Runs p with configuration `cfg` (whose promote flag must match
 * !p->fast_accum), K split `splits` ways if cfg is a split configuration
 * (ignored otherwise). The caller has checked the shape rules of llmk.h and
 * made h's device current. NOT_SUPPORTED when such a cluster cannot be
 * resident on the device. */
llmk_status llmk_own_gemm_fp8(llmk_handle h, const llmk_gemm_plan *p, int cfg, int splits, void *stream);

/* The BF16 configurations (a list of their own, same fields; promote and
 * mcast are 0) and their launch: y = bf16(x . w^T + bias), no scales. */
int llmk_gemm_own_bf16_num_cfgs(void);
llmk_gemm_own_cfg llmk_gemm_own_bf16_cfg_at(int i);
llmk_status llmk_own_gemm_bf16(llmk_handle h, const llmk_gemm_plan *p, int cfg, int splits, void *stream);
/* The gemv configuration's launch: K split over `splits` (1 ..
 * LLMK_GEMV_MAX_SPLITS) CTAs of a cluster; pdl: programmatic dependent
 * launch. */
#define LLMK_GEMV_MAX_SPLITS 8
llmk_status llmk_own_gemv_bf16(const llmk_gemm_plan *p, int splits, int pdl, void *stream);

#ifdef __cplusplus
}
#endif
#endif
