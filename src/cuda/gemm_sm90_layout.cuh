/* The parts of llmk's Hopper GEMM kernel (gemm_sm90.cuh) that describe a
 * problem and a CTA's shared memory: the kernel arguments, the grouped
 * tile raster, and the shared-memory layout per configuration. */
#ifndef LLMK_GEMM_SM90_LAYOUT_CUH
#define LLMK_GEMM_SM90_LAYOUT_CUH

#include <cuda_bf16.h>
#include <stdint.h>

#define LLMK_GEMM_BK 128 /* bytes of a K slice per stage and row: one 128-byte swizzle row (128 FP8 or 64 BF16) */

struct llmk_gemm_args {
  int M, N, K;
  const float *xs, *ws;   /* [M] and [N] for row-wise, [1] each for tensor-wise */
  int row_scales;
  /* block scaling (PROMOTE, not SWAP): the scale of x row m and K slice b is
   * xs[(m / x_bm) * xs_rs + b * xs_ks], that of w row n ws[(n / 128) * ws_rs
   * + b * ws_ks]; each slice's partial sum is scaled as it is promoted, and
   * the epilogue applies no scale. */
  int block, x_bm;
  int64_t xs_rs, xs_ks, ws_rs, ws_ks;
  int unscaled; /* BF16: no scales at all */
  /* two-plane x (SWAP only): token rows 2m, 2m + 1 are the hi and lo planes
   * of output row m, summed in the epilogue; M counts plane rows */
  int planes;
  const void *bias;       /* NULL, or [N] f32 (bias_f32) or bf16 */
  int bias_f32;
  __nv_bfloat16 *y;
  int64_t ldy;
  int tiles_m, tiles_n, group_m;
};

/* Tile t of the grouped raster -> (first row, first column). With multicast
 * pairs (mrank >= 0), t counts pairs of BM-row tiles: rank mrank takes the
 * pair's row mrank, or row 0 again past the last tile row (*store = 0). */
__device__ __forceinline__ void llmk_tile_origin(int t, const llmk_gemm_args &a, int BM, int BN, int &m0, int &n0) {
  const int per_group = a.group_m * a.tiles_n;
  const int g = t / per_group, first_m = g * a.group_m;
  const int rows = min(a.tiles_m - first_m, a.group_m);
  const int r = t - g * per_group;
  m0 = (first_m + r % rows) * BM;
  n0 = (r / rows) * BN;
}

__device__ __forceinline__ void llmk_pair_origin(int t, const llmk_gemm_args &a, int BM, int BN, int mrank, int &m0,
                                                 int &n0, bool &store) {
  llmk_tile_origin(t, a, 2 * BM, BN, m0, n0);
  store = m0 + mrank * BM < a.M;
  if (store) m0 += mrank * BM;
}

template <int BM, int BN, int STAGES, bool TMA_EPI, bool SPLIT, bool PING>
struct llmk_gemm_smem {
  static constexpr int CONSUMERS = PING ? 2 : BM / 64, WG_ROWS = PING ? BM : 64; /* consumers, rows of each */
  static constexpr int A_BYTES = BM * LLMK_GEMM_BK, B_BYTES = BN * LLMK_GEMM_BK;
  static constexpr int STAGE_BYTES = A_BYTES + B_BYTES;
  static constexpr int EPI_OFFSET = STAGES * STAGE_BYTES;
  static constexpr int EPI_WG_BYTES = TMA_EPI ? WG_ROWS * BN * 2 : 0; /* a consumer's rows of the tile, bf16 */
  /* persistent tiles: each consumer's column scales and bias of a tile, two
   * tiles deep (written after tile i's main loop, read in its epilogue) */
  static constexpr int COLS_OFFSET = EPI_OFFSET + CONSUMERS * EPI_WG_BYTES;
  static constexpr int COLS_WG_FLOATS = SPLIT ? 0 : 2 * 2 * BN;
  static constexpr int BAR_OFFSET = COLS_OFFSET + CONSUMERS * COLS_WG_FLOATS * 4;
  static constexpr int BYTES = BAR_OFFSET + (2 * STAGES + 2) * 8 + 1024; /* full, empty, turn; alignment slack */
  static_assert(A_BYTES % 1024 == 0 && B_BYTES % 1024 == 0, "swizzled tiles must stay 1024-byte aligned");
  static_assert(!TMA_EPI || BN % 64 == 0, "TMA epilogue boxes are 64 columns (128 bytes) wide");
  static_assert(BYTES <= 227 * 1024, "shared memory per CTA");
};

#endif
