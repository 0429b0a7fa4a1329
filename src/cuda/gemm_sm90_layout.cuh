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
  /* grouped GEMM (GROUPED kernels; tiles_n then counts the tiles across N,
   * and M the rows of x, T or G * m_max): G groups whose sizes the device
   * holds; masked layout: m_max rows per group (0: stacked). Group g's W
   * rows are g N .. g N + N - 1 of the W tensor map; its scales and bias
   * are at ws + g ws_group, xs + g xs_group (tensor-wise: 1, else 0) and
   * bias + g N. */
  int groups, m_max;
  const int *gsizes;
  int64_t ws_group;
  int xs_group;
};

/* The grouped kernels' table, built per CTA in shared memory: P[0..G] the
 * prefix sums of each group's row tiles, then start[G] and end[G], the rows
 * of x the group owns (include/llmk.h, llmk_gemm_grouped). */
#define LLMK_GROUPED_MAX_G 512
#define LLMK_GROUPED_TAB_INTS (3 * LLMK_GROUPED_MAX_G + 1)

/* One warp builds the table from the device's group sizes: stacked groups
 * take consecutive rows clipped to [0, M) (a negative size counts as 0),
 * masked group g rows g m_max .. g m_max + min(size, m_max); each group
 * ceil(rows / BT) row tiles of BT rows. Sums run in 64 bits: sizes are the
 * caller's data and may add past 2^31. */
__device__ __forceinline__ void llmk_grouped_table(const llmk_gemm_args &a, int BT, int *tab) {
  const int lane = threadIdx.x % 32, G = a.groups;
  int *P = tab, *start = tab + G + 1, *end = start + G;
  long long row_carry = 0;
  int tile_carry = 0;
  if (lane == 0) P[0] = 0;
  for (int base = 0; base < G; base += 32) {
    const int g = base + lane;
    const long long sz = g < G ? max(a.gsizes[g], 0) : 0;
    long long incl = sz; /* inclusive prefix of the sizes within the chunk */
#pragma unroll
    for (int d = 1; d < 32; d *= 2) {
      const long long o = __shfl_up_sync(0xffffffffu, incl, d);
      if (lane >= d) incl += o;
    }
    long long r0, r1;
    if (a.m_max > 0) {
      r0 = (long long)g * a.m_max, r1 = r0 + min(sz, (long long)a.m_max);
    } else {
      r0 = min(row_carry + incl - sz, (long long)a.M), r1 = min(row_carry + incl, (long long)a.M);
    }
    int tiles = (int)((r1 - r0 + BT - 1) / BT), tincl = tiles;
#pragma unroll
    for (int d = 1; d < 32; d *= 2) {
      const int o = __shfl_up_sync(0xffffffffu, tincl, d);
      if (lane >= d) tincl += o;
    }
    if (g < G) start[g] = (int)r0, end[g] = (int)r1, P[g + 1] = tile_carry + tincl;
    row_carry = min(row_carry + __shfl_sync(0xffffffffu, incl, 31), (long long)a.M);
    tile_carry += __shfl_sync(0xffffffffu, tincl, 31);
  }
  __syncwarp();
}

/* Grouped tile t of R = P[G] row tiles (counted over the groups in order)
 * times tiles_n column tiles. Unswapped: in bands of group_m row tiles,
 * column-major within a band (as the dense raster), so the CTAs at work
 * share a few row tiles' X and each slice of W feeds group_m of them from
 * L2 (a group of many rows over a wide W would otherwise stream its W from
 * DRAM once per row tile). Swapped (decode): row tile t % R, column tile
 * t / R, so a group's row tiles over one slice of W run side by side and
 * its W is read from DRAM once. The row tile's group g is the last with
 * P[g] <= the row tile (empty groups share their P with the next). The
 * token rows are absolute rows of x; the W side (m0 when swapped, n0
 * otherwise) is local to the group. */
__device__ __forceinline__ void llmk_grouped_origin(int t, const llmk_gemm_args &a, const int *tab, int BM, int BN,
                                                    bool swap, int &m0, int &n0, int &g, int &end) {
  const int G = a.groups, R = tab[G];
  int rt, j;
  if (swap) {
    rt = t % R, j = t / R;
  } else {
    const int per_band = a.group_m * a.tiles_n, band = t / per_band, first = band * a.group_m;
    const int rows = min(R - first, a.group_m), r = t - band * per_band;
    rt = first + r % rows, j = r / rows;
  }
  const int *P = tab, *start = tab + G + 1, *gend = start + G;
  int lo = 0, hi = G;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (P[mid] <= rt) lo = mid; else hi = mid;
  }
  g = lo, end = gend[g];
  const int tok = start[g] + (rt - P[g]) * (swap ? BN : BM);
  m0 = swap ? j * BM : tok;
  n0 = swap ? tok : j * BN;
}

/* Group g's operands as one dense GEMM on rows below `end` sees them. */
__device__ __forceinline__ llmk_gemm_args llmk_grouped_view(const llmk_gemm_args &a, int g, int end) {
  llmk_gemm_args v = a;
  v.M = end;
  v.ws = a.ws ? a.ws + g * a.ws_group : a.ws;
  v.xs = a.xs ? a.xs + g * a.xs_group : a.xs;
  if (a.bias) v.bias = (const uint8_t *)a.bias + (int64_t)g * a.N * (a.bias_f32 ? 4 : 2);
  return v;
}

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
