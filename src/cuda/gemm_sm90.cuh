/* llmk's Hopper GEMM kernel, FP8 (Y[M, N] = bf16((X . W^T) * xs * ws +
 * bias), or block-scaled) and BF16 (Y = bf16(X . W^T + bias)); its
 * layout and epilogue parts are in gemm_sm90_layout.cuh and
 * gemm_sm90_epilogue.cuh.
 *
 * One CTA per SM (persistent), walking output tiles of BM x BN in a grouped
 * order (GROUP_M tile rows at a time, so a wave's X and W tiles are shared
 * through L2). Warpgroup 0 is the producer: one thread issues TMA loads of
 * 128-deep K slices of X (BM x 128 B) and W (BN x 128 B) into a ring of
 * STAGES shared-memory buffers (128-byte swizzle), guarded by full/empty
 * mbarriers. Warpgroups 1..BM/64 are consumers: each multiplies its 64 rows
 * of X by the BN rows of W with wgmma m64nBNk32 (four per K slice), keeping
 * one slice in flight before releasing the previous buffer. The epilogue
 * applies docs/DESIGN.md's order, (acc * xs) * ws + bias, rounds to bf16 and
 * either stores straight from the accumulator registers (bf16x2 stores), or
 * (TMA_EPI) writes the tile into a 128-byte-swizzled staging buffer per
 * consumer warpgroup and hands it to TMA stores of 64 x 64 boxes, which run
 * on while the warpgroup starts its next tile; TMA clips at the tensor's
 * bounds, so ragged edges need no masking.
 *
 * SPLIT (decode: too few tiles to occupy the SMs): a cluster of S CTAs
 * shares one output tile, rank r taking K slices [r nk / S, (r+1) nk / S).
 * After the main loop each CTA parks its fp32 partial tile in its own
 * (drained) stage ring; rank r then sums its share of every thread's
 * fragment over ranks 0..S-1 in that order through distributed shared
 * memory (deterministic, no workspace, nothing to reset between graph
 * replays) and runs the epilogue on it. One tile per cluster, no
 * persistence: the ring holds the partials.
 *
 * SWAP (decode, M <= 128): the roles of X and W are exchanged so that W
 * feeds wgmma's 64-row A operand and the few tokens its N (BN = 16..128):
 * a 128-deep slice of W then costs BM/64 x 4 wgmma m64nBNk32 instead of
 * 64-row tiles that are almost all padding, and the tensor cores stop
 * limiting how fast one SM streams weights. Tiles are BM rows of W (output
 * columns) x BN tokens (output rows); the epilogue writes the transposed
 * fragment. Always with SPLIT.
 *
 * MCAST (large shapes; not measured yet): clusters of 2 CTAs take vertically
 * adjacent tiles (rows m0, m0 + BM) of the same columns, and rank 0 loads
 * the shared W slice once with a TMA multicast into both CTAs, halving W's
 * L2-to-SM traffic. Every consumer warp releases a stage on the empty
 * barriers of both CTAs, so rank 0 refills a stage only when both are done
 * with it. With an odd number of tile rows, the last pair's rank 1 repeats
 * rank 0's tile and stores nothing.
 *
 * Programmatic dependent launch: the kernel lets the next one in the stream
 * be scheduled as soon as it starts, and itself touches no global memory
 * before griddepcontrol.wait other than its first W slices: L2 prefetches,
 * or with W_EARLY the loads of the first ring's W parts into shared
 * memory. Its launch, prologue and first weight fetches thus overlap the
 * tail of the kernel before it.
 *
 * PROMOTE (fast accumulation off): each 128-deep slice is accumulated into
 * fresh registers and added to fp32 totals, so no FP8 accumulate runs
 * longer than 128 of K. With block scales (a.block), the slice's partial
 * sums are multiplied by the product of their x and w block scales as they
 * are added: acc = fma(part, sx * sw, acc) (include/llmk.h).
 *
 * BF16 (llmk_gemm_bf16): X and W in bf16, a slice
 * is 64 deep (still 128 bytes per row), the wgmmas are m64nNk16 bf16 with
 * fp32 accumulation, and the epilogue applies no scales (a.unscaled):
 * (acc * 1) * 1 + bias is acc + bias exactly.
 *
 * Shape rules (checked by the caller): K % 16 == 0 (FP8) or K % 8 == 0
 * (BF16), N % 8 == 0, 16-byte aligned X and W rows (TMA), ldy % 8 == 0.
 * Ragged M, N and K edges come in as zeros from TMA and are masked in the
 * epilogue. */
#ifndef LLMK_GEMM_SM90_CUH
#define LLMK_GEMM_SM90_CUH

#include <cuda_bf16.h>

#include "cuda/gemm_sm90_epilogue.cuh"
#include "cuda/gemm_sm90_layout.cuh"
#include "cuda/sm90.cuh"
#include "cuda/wgmma_bf16.cuh"
#include "cuda/wgmma_fp8.cuh"

/* Phase probes for the decode-phase lab (bench/lab/gemm_decode_phases.cu),
 * which defines LLMK_GEMM_PROBE_AT(point) to record a timestamp and renames
 * the kernel; in the library they are nothing. Points: 0 kernel entry, 1
 * the producer past griddepcontrol.wait, 2 a consumer's first K slice
 * landed, 3 its main loop done, 4 (K split) every rank's partial visible,
 * 5 its epilogue stored, 6 its exit. */
#ifndef LLMK_GEMM_PROBE_AT
#define LLMK_GEMM_PROBE_AT(point) do { } while (0)
#endif

/* The 4 wgmmas of a 128-byte K slice: k32 steps of FP8 or k16 steps of
 * BF16, each 32 bytes further along the swizzled rows (+2 in a descriptor). */
template <bool BF16, int BN>
__device__ __forceinline__ void llmk_wgmma_slice_step(float (&d)[BN / 2], uint64_t da, uint64_t db, int scale_d) {
  if constexpr (BF16)
    llmk_wgmma_bf16<BN>(d, da, db, scale_d);
  else
    llmk_wgmma_e4m3<BN>(d, da, db, scale_d);
}

/* The template parameters are the columns of a gemm_configs.def line
 * (gemm_kernels.cuh instantiates one kernel per line):
 *   BM       tile_m: rows of wgmma's A operand per tile (X rows; SWAP: W rows)
 *   BN       tile_n: rows of the B operand per tile (W rows; SWAP: tokens)
 *   STAGES   stages: 128-byte-deep K slices in the shared-memory ring
 *   PROMOTE  promote: fp32 promotion of each 128-deep slice (FP32 accumulation, block scales)
 *   TMA_EPI  tma_store: epilogue through a swizzled staging tile and TMA stores
 *   SPLIT    k_split: a cluster of CTAs shares each tile, each a K range
 *   SWAP     swap: W feeds the A operand, the tokens the N (decode)
 *   MCAST    multicast: 2-CTA clusters on tile pairs, W slices multicast
 *   PING     ping_pong: two consumer warpgroups take whole tiles in turn
 *   BF16     in = BF16: bf16 operands (llmk_gemm_bf16), no scales
 *   MINB     CTAs per SM the kernel is built for: 1 (every configuration of
 *            the list), or 2 for small swapped tiles in the decode-phase lab
 *   GROUPED  one GEMM per group over the rows the device's group sizes give
 *            it (llmk_gemm_grouped): tiles found from a per-CTA table of
 *            the groups, W rows offset by g N, per-group scales and bias,
 *            rows past the group's end neither stored nor scaled; swapped
 *            tiles may also be walked by persistent CTAs (SWAP without
 *            SPLIT), and TMA stores go only to rows all in the tile's group
 *   W_EARLY  the first ring of W slices loaded into shared memory before
 *            griddepcontrol.wait, X's after it: only for a W that no kernel
 *            still in flight on the stream writes (FP8 swapped tiles,
 *            gemm_kernels.cuh) */
template <int BM, int BN, int STAGES, bool PROMOTE, bool TMA_EPI, bool SPLIT, bool SWAP, bool MCAST, bool PING,
          bool BF16 = false, int MINB = 1, bool W_EARLY = false, bool GROUPED = false>
__global__ void __launch_bounds__(128 * (1 + (PING ? 2 : BM / 64)), MINB)
    llmk_gemm_fp8_kernel(const __grid_constant__ CUtensorMap tmx, const __grid_constant__ CUtensorMap tmw,
                         const __grid_constant__ CUtensorMap tmy, const llmk_gemm_args a) {
  static_assert(BM == 64 || BM == 128 || (BM == 192 && PROMOTE && !SPLIT && !PING),
                "one or two consumer warpgroups of 64 rows; three for promoting tiles, whose wgmma waits leave "
                "gaps that a third warpgroup fills");
  static_assert(BN % 8 == 0 && BN >= 8 && BN <= 256, "wgmma N");
  static_assert(!PROMOTE || BN <= 128, "PROMOTE keeps two accumulator sets: BN <= 128 fits the registers");
  static_assert(!SPLIT || !TMA_EPI, "split tiles store directly: each rank writes a share of every fragment");
  static_assert(!SPLIT || BN <= 128, "the split reduction's predicated fragment loops spill past 64 accumulators");
  static_assert(!SWAP || SPLIT || GROUPED,
                "swapped tiles are decode tiles: K split over a cluster, or (grouped) walked by persistent CTAs, "
                "whose many small tiles would otherwise each pay a CTA's start");
  static_assert(!MCAST || !SPLIT, "multicast pairs walk whole tiles");
  static_assert(!SPLIT || STAGES * (BM * LLMK_GEMM_BK + BN * LLMK_GEMM_BK) >= BM * BN * 4,
                "the drained stage ring holds the fp32 partial tile");
  static_assert(!PING || (!PROMOTE && !SPLIT && !SWAP && !MCAST), "ping-pong: persistent fast-accumulation tiles");
  static_assert(!BF16 || !PROMOTE, "BF16 wgmmas accumulate in fp32: nothing to promote");
  constexpr int KS = BF16 ? 64 : 128; /* K elements per slice */
  static_assert(!PROMOTE || (SWAP ? BN <= 64 : 128 % BN == 0),
                "block scales: a tile's W rows share one 128-row w block (unswapped: its columns, 128 % BN == 0); "
                "swapped, each thread holds BN / 4 token scales twice beside two accumulator sets: BN <= 64");
  static_assert(!W_EARLY || !MCAST, "early W loads: one CTA's own ring (a multicast needs its partner's barriers)");
  static_assert(!GROUPED || (!W_EARLY && !MCAST && (!TMA_EPI || !SWAP)),
                "grouped tiles: known only after the wait (no early W), each CTA its own tiles; TMA stores only "
                "for unswapped tiles, and only of rows that all belong to the tile's group");
  using L = llmk_gemm_smem<BM, BN, STAGES, TMA_EPI, SPLIT, PING>;
  static_assert(MINB == 1 || (MINB == 2 && SWAP && BM == 64 && 2 * (L::BYTES + 1024) <= 228 * 1024),
                "two CTAs per SM: small swapped decode tiles whose rings fit twice in shared memory (and 128 "
                "registers a thread, so no register reallocation)");
  /* MS: 64-row blocks of the tile per consumer (PING: all of them; else one) */
  constexpr int CONSUMERS = L::CONSUMERS, MS = PING ? BM / 64 : 1, R = BN / 2;
  static_assert(MS * R <= 128, "accumulators of one consumer thread");

  extern __shared__ uint8_t smem_raw[];
  uint8_t *smem = (uint8_t *)(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);
  uint64_t *full = (uint64_t *)(smem + L::BAR_OFFSET), *empty = full + STAGES, *turn = empty + STAGES;
  LLMK_GEMM_PROBE_AT(0);

  const int wg = threadIdx.x / 128, tid = threadIdx.x % 128;
  /* GROUPED: the group sizes are the previous kernel's output, so the table
   * of row tiles per group is built after the dependency wait, by one warp,
   * before any role starts (gemm_sm90_layout.cuh). */
  int *const gtab = GROUPED ? reinterpret_cast<int *>(smem + L::BYTES - 1024) : nullptr; /* past the barriers */
  if constexpr (GROUPED) {
    llmk_griddep_wait();
    if (threadIdx.x < 32) llmk_grouped_table(a, SWAP ? BN : BM, gtab);
    __syncthreads();
  }
  const int ntiles = GROUPED ? gtab[a.groups] * a.tiles_n : a.tiles_m * a.tiles_n, nk = (a.K + KS - 1) / KS;
  /* SPLIT: cluster = one tile, rank = its share of K. MCAST: a cluster walks
   * tile pairs (a.tiles_m counts pair rows). Otherwise one CTA walks tiles. */
  const int nsplit = SPLIT ? (int)llmk_cluster_size() : 1, rank = SPLIT ? (int)llmk_cluster_rank() : 0;
  const int mrank = MCAST ? (int)llmk_cluster_rank() : 0;
  const int t_first = SPLIT ? blockIdx.x / nsplit : MCAST ? blockIdx.x / 2 : blockIdx.x;
  const int t_step = SPLIT ? ntiles : MCAST ? gridDim.x / 2 : gridDim.x;
  const int kb_begin = rank * nk / nsplit, kb_end = (rank + 1) * nk / nsplit;
  /* tile t -> its origin, and whether this CTA stores it (MCAST's repeat
   * does not); GROUPED: its group g and the group's end row */
  auto origin = [&](int t, int &m0, int &n0, bool &store, int &grp, int &end) {
    store = true, grp = 0, end = a.M;
    if (GROUPED)
      llmk_grouped_origin(t, a, gtab, BM, BN, SWAP, m0, n0, grp, end);
    else if (MCAST)
      llmk_pair_origin(t, a, BM, BN, mrank, m0, n0, store);
    else
      llmk_tile_origin(t, a, BM, BN, m0, n0);
  };

  if (threadIdx.x == 0) {
    for (int s = 0; s < STAGES; s++) {
      llmk_mbar_init(&full[s], 1);
      /* lane 0 of every consumer warp that reads the stage (of both CTAs) */
      llmk_mbar_init(&empty[s], (PING ? 1 : CONSUMERS) * 4 * (MCAST ? 2 : 1));
    }
    if (PING) llmk_mbar_init(&turn[0], 128), llmk_mbar_init(&turn[1], 128);
    llmk_fence_mbar_init();
    llmk_tma_prefetch_desc(&tmx);
    llmk_tma_prefetch_desc(&tmw);
    if (TMA_EPI) llmk_tma_prefetch_desc(&tmy);
  }
  if constexpr (MCAST)
    llmk_cluster_sync(); /* both CTAs' barriers exist before any multicast or remote arrive */
  else
    __syncthreads();
  llmk_griddep_launch_dependents();

  if (wg == 0) { /* ---------------- producer ---------------- */
    if constexpr (MINB == 1)
      llmk_setmaxnreg_dec<CONSUMERS == 3 ? 24 : 40>(); /* 128 x 24 + 384 x 160 <= 64 K registers */
    if (tid == 0) {
      /* The first weight slices while the previous kernel finishes. Without
       * W_EARLY into L2 only, a hint (the data itself is read after the
       * wait, from L2, where the previous kernel's writes have landed);
       * with it, the first tile's first ring of W slices into shared
       * memory, their stages' X parts after the wait. */
      int kb_early = kb_begin;
      if (t_first < ntiles) {
        int m0, n0, grp, end;
        bool store;
        origin(t_first, m0, n0, store, grp, end);
        const int wr = (SWAP ? m0 : n0) + grp * a.N; /* the tile's first W row */
        for (int kb = kb_begin; kb < kb_end && kb < kb_begin + STAGES; kb++) {
          if constexpr (W_EARLY) {
            const int s = kb - kb_begin;
            uint8_t *st = smem + s * L::STAGE_BYTES;
            llmk_mbar_arrive_expect_tx(&full[s], L::STAGE_BYTES);
            llmk_tma_load_2d(st + (SWAP ? 0 : L::A_BYTES), &tmw, &full[s], kb * KS, wr);
            kb_early = kb + 1;
          } else {
            llmk_tma_prefetch_l2_2d(&tmw, kb * KS, wr);
          }
        }
      }
      llmk_griddep_wait();
      LLMK_GEMM_PROBE_AT(1);
      int s = 0;
      uint32_t phase = 0;
      for (int t = t_first; t < ntiles; t += t_step) {
        int m0, n0, grp, end;
        bool store;
        origin(t, m0, n0, store, grp, end);
        const int wr = (SWAP ? m0 : n0) + grp * a.N;
        for (int kb = kb_begin; kb < kb_end; kb++) {
          /* a stage whose W part went out before the wait: fresh, its bytes expected */
          const bool early = W_EARLY && t == t_first && kb < kb_early;
          uint8_t *st = smem + s * L::STAGE_BYTES;
          if (!early) {
            llmk_mbar_wait(&empty[s], phase ^ 1); /* MCAST: free in both CTAs */
            llmk_mbar_arrive_expect_tx(&full[s], L::STAGE_BYTES);
          }
          /* A: X rows (or, SWAP, W rows); B: W rows (or, SWAP, tokens) */
          if (!SWAP && a.planes == 2) {
            /* two planes, unswapped: 8-row box j of the tile is plane j % 2 of
             * output rows m0 / 2 + 8 (j / 2) + [0, 8), so a consumer thread's
             * fragment rows r and r + 8 are the hi and lo planes of one output */
#pragma unroll
            for (int j = 0; j < BM / 8; j++)
              llmk_tma_load_3d(st + j * 8 * LLMK_GEMM_BK, &tmx, &full[s], kb * KS, j & 1, m0 / 2 + 8 * (j >> 1));
          } else if (!early || !SWAP) {
            llmk_tma_load_2d(st, SWAP ? &tmw : &tmx, &full[s], kb * KS, SWAP ? wr : m0);
          }
          if (!MCAST) {
            if (!early || SWAP) llmk_tma_load_2d(st + L::A_BYTES, SWAP ? &tmx : &tmw, &full[s], kb * KS, SWAP ? n0 : wr);
          } else if (mrank == 0) {
            llmk_tma_load_2d_multicast(st + L::A_BYTES, &tmw, &full[s], kb * KS, n0, 0x3);
          }
          if (++s == STAGES) s = 0, phase ^= 1;
        }
      }
    }
    if constexpr (SPLIT) {
      /* the consumers' two cluster barriers per tile (one tile per cluster) */
      __syncwarp();
      if (t_first < ntiles) llmk_cluster_sync(), llmk_cluster_sync();
    }
    return;
  }

  /* ---------------- consumers ---------------- */
  if constexpr (MINB == 1) llmk_setmaxnreg_inc<CONSUMERS == 3 ? 160 : 232>();
  llmk_griddep_wait(); /* before the epilogue's reads of scales and bias, and its writes of y */
  const int cw = wg - 1, warp = tid / 32, lane = tid % 32;
  float acc[MS][R], part[PROMOTE ? R : 1];
  int s = 0;
  uint32_t phase = 0;
  /* PING: the two consumers take the CTA's tiles in turn (tile i to
   * consumer i % 2), so one's epilogue runs beside the other's main loop;
   * the producer fills the ring in tile order, so a consumer skips the
   * other's slices. Else: both take every tile, rows cw * 64 of it. */
  const int row0 = PING ? 0 : cw * 64, nkb = kb_end - kb_begin;
  const int t_own = PING ? t_first + cw * t_step : t_first, t_own_step = PING ? 2 * t_step : t_step;
  /* MCAST: a consumer warp releases a stage in both CTAs */
  auto release = [&](int st) {
    llmk_mbar_arrive(&empty[st]);
    if constexpr (MCAST) llmk_mbar_arrive_remote(&empty[st], (uint32_t)(mrank ^ 1));
  };
  /* persistent tiles: column j of the tile, j = tid + 128 i, has its scale
   * and bias staged at cols + (it % 2) * 2 BN (it counts this CTA's tiles) */
  /* STAGE_COLS: unswapped persistent tiles stage their columns' scales and
   * bias; a swapped tile's W rows are its fragment rows (rs_lo, rs_hi) */
  constexpr bool STAGE_COLS = !SPLIT && !SWAP;
  constexpr int CPT = STAGE_COLS ? (BN + 127) / 128 : 1;
  float *cols = reinterpret_cast<float *>(smem + L::COLS_OFFSET) + cw * L::COLS_WG_FLOATS;
  int it = 0;
  for (int t = t_own; t < ntiles; t += t_own_step, it++) {
    int m0, n0, grp, end;
    bool store;
    origin(t, m0, n0, store, grp, end);
    /* the tile's operands: the kernel's own, or (GROUPED) its group's view */
    llmk_gemm_args av;
    if constexpr (GROUPED) av = llmk_grouped_view(a, grp, end);
    const llmk_gemm_args &at = GROUPED ? av : a;
    if constexpr (PING) {
      /* The CTA's tile 2 it + cw starts at ring slice (2 it + cw) nkb. A
       * full barrier's parity only tells its last two phases apart, so a
       * consumer may wait on this tile's slices only once the other has
       * waited on all of its previous tile's: turn[cw] completes its phase
       * k when the other consumer has done so for its k-th tile. This also
       * keeps the two main loops in turn. */
      const uint32_t q = (uint32_t)(2 * it + cw) * (uint32_t)nkb;
      s = (int)(q % STAGES), phase = (q / STAGES) & 1;
      if (cw == 1)
        llmk_mbar_wait(&turn[1], (uint32_t)it & 1);
      else if (it > 0)
        llmk_mbar_wait(&turn[0], (uint32_t)(it - 1) & 1);
    }
    /* The epilogue's scales and biases are loaded now and land while the
     * main loop runs: loaded after it, every round trip would stall the
     * tensor cores (global loads cannot pass the epilogue's stores). Row
     * i of this thread's fragment in 64-row block ms: 16 * warp + lane / 4
     * + 8 i of the block; its scale is xs[m], or (SWAP) ws[n]. */
    const int rr_lo = 16 * warp + lane / 4;
    const int rows = SWAP ? at.N : at.M;
    const float *rs = SWAP ? at.ws : at.xs;
    /* two planes, unswapped (see the producer): fragment rows r, r + 8 are
     * plane rows 2m, 2m + 1 of output row m; r_lo holds 2m */
    const bool pl = !SWAP && at.planes == 2;
    int r_lo[MS];
    float rs_lo[MS], rs_hi[MS];
#pragma unroll
    for (int ms = 0; ms < MS; ms++) {
      r_lo[ms] = pl ? m0 + row0 + 64 * ms + 2 * (8 * warp + lane / 4) : m0 + row0 + 64 * ms + rr_lo;
      const int hi = r_lo[ms] + (pl ? 1 : 8);
      const bool one = at.block || at.unscaled;
      rs_lo[ms] = one ? 1.0f : at.row_scales ? (r_lo[ms] < rows ? rs[r_lo[ms]] : 0.0f) : rs[0];
      rs_hi[ms] = one ? 1.0f : at.row_scales ? (hi < rows ? rs[hi] : 0.0f) : rs[0];
    }
    const float ws0 = at.block || at.unscaled ? 1.0f : at.row_scales ? 0.0f : at.ws[0];
    float cw_v[CPT], cb_v[CPT];
    if constexpr (STAGE_COLS) {
#pragma unroll
      for (int i = 0; i < CPT; i++)
        if (tid + 128 * i < BN) llmk_gemm_col(at, n0 + tid + 128 * i, ws0, cw_v[i], cb_v[i]);
    }
#pragma unroll
    for (int ms = 0; ms < MS; ms++)
#pragma unroll
      for (int i = 0; i < R; i++) acc[ms][i] = 0.0f;
    int prev = -1; /* stage whose wgmmas may still be reading shared memory */
    /* Block scales, one slice ahead: an L2 round trip is longer than a
     * slice's wgmmas, so slice kb's scales are loaded during slice kb - 1. */
    float nx_lo = 1.0f, nx_hi = 1.0f, nw = 1.0f;
    const float *xs_lo = at.xs + (int64_t)(r_lo[0] / at.x_bm) * at.xs_rs;
    const float *xs_hi = at.xs + (int64_t)((r_lo[0] + 8) / at.x_bm) * at.xs_rs;
    /* the tile's W rows share one 128-row block: unswapped its columns
     * (128 % BN == 0), swapped its rows (BM <= 128, tiles aligned to BM) */
    const float *ws_n = at.ws + (int64_t)((SWAP ? m0 : n0) / 128) * at.ws_rs;
    /* SWAP: the tokens are the fragment's columns, 8 j + 2 (lane % 4) + e;
     * the scale of column pair q = 2 j + e is nxc[q] */
    constexpr int NXC = SWAP && PROMOTE ? BN / 4 : 1;
    float nxc[NXC];
#pragma unroll
    for (int q = 0; q < NXC; q++) nxc[q] = 1.0f;
    auto load_scales = [&](int kb) {
      if constexpr (SWAP) {
#pragma unroll
        for (int q = 0; q < NXC; q++) {
          const int tok = n0 + 8 * (q >> 1) + 2 * (lane % 4) + (q & 1);
          nxc[q] = tok < at.M ? at.xs[(int64_t)(tok / at.x_bm) * at.xs_rs + (int64_t)kb * at.xs_ks] : 0.0f;
        }
      } else {
        if (r_lo[0] < at.M) nx_lo = xs_lo[(int64_t)kb * at.xs_ks];
        if (r_lo[0] + 8 < at.M) nx_hi = xs_hi[(int64_t)kb * at.xs_ks];
      }
      nw = ws_n[(int64_t)kb * at.ws_ks];
    };
    if (PROMOTE && at.block && kb_begin < kb_end) load_scales(kb_begin);
    /* GROUPED, both consumers on one tile: a group's last row tile may end
     * in the first consumer's rows; the second then has no row to compute
     * and only hands each slice back, so the first runs its wgmmas alone
     * at up to twice the rate (the tensor cores are shared). */
    const bool idle = GROUPED && !SWAP && !PING && m0 + row0 >= end;
    /* a loop of its own, so that the wgmma loop below stays one pipeline
     * (ptxas serializes wgmmas whose accumulators another path defines) */
    if (idle) {
      for (int kb = kb_begin; kb < kb_end; kb++) {
        llmk_mbar_wait(&full[s], phase);
        if (lane == 0) release(s);
        if (++s == STAGES) s = 0, phase ^= 1;
      }
    }
    for (int kb = idle ? kb_end : kb_begin; kb < kb_end; kb++) {
      const float bx_lo = nx_lo, bx_hi = nx_hi, bw = nw;
      float bxc[NXC];
#pragma unroll
      for (int q = 0; q < NXC; q++) bxc[q] = nxc[q];
      if (PROMOTE && at.block && kb + 1 < kb_end) load_scales(kb + 1);
      llmk_mbar_wait(&full[s], phase);
      if (kb == kb_begin) LLMK_GEMM_PROBE_AT(2);
      const uint8_t *st = smem + s * L::STAGE_BYTES;
      const uint64_t da = llmk_desc_k128_sw128(st + row0 * LLMK_GEMM_BK); /* block ms: + 8 KB */
      const uint64_t db = llmk_desc_k128_sw128(st + L::A_BYTES);
      if constexpr (PROMOTE) {
        llmk_fence_regs(part);
        llmk_wgmma_fence();
#pragma unroll
        for (int k = 0; k < LLMK_GEMM_BK / 32; k++) llmk_wgmma_slice_step<BF16, BN>(part, da + 2 * k, db + 2 * k, k > 0);
        llmk_wgmma_commit();
        llmk_wgmma_wait<0>();
        llmk_fence_regs(part);
        if (at.block && SWAP) {
#pragma unroll
          for (int i = 0; i < R; i++) /* accumulator i is on column pair 2 (i >> 2) + (i & 1) */
            acc[0][i] = __fmaf_rn(part[i], __fmul_rn(bxc[2 * (i >> 2) + (i & 1)], bw), acc[0][i]);
        } else if (at.block) {
          const float s_lo = __fmul_rn(bx_lo, bw), s_hi = __fmul_rn(bx_hi, bw);
#pragma unroll
          for (int i = 0; i < R; i++) /* accumulator i is on row r_lo + 8 ((i >> 1) & 1) */
            acc[0][i] = __fmaf_rn(part[i], (i & 2) ? s_hi : s_lo, acc[0][i]);
        } else {
#pragma unroll
          for (int i = 0; i < R; i++) acc[0][i] += part[i];
        }
        if (lane == 0) release(s);
      } else {
#pragma unroll
        for (int ms = 0; ms < MS; ms++) llmk_fence_regs(acc[ms]);
        llmk_wgmma_fence();
#pragma unroll
        for (int ms = 0; ms < MS; ms++)
#pragma unroll
          for (int k = 0; k < LLMK_GEMM_BK / 32; k++)
            llmk_wgmma_slice_step<BF16, BN>(acc[ms], da + 64 * ms * (LLMK_GEMM_BK / 16) + 2 * k, db + 2 * k, 1);
        llmk_wgmma_commit();
        llmk_wgmma_wait<1>(); /* the previous slice's wgmmas are done: release its buffer */
#pragma unroll
        for (int ms = 0; ms < MS; ms++) llmk_fence_regs(acc[ms]);
        if (prev >= 0 && lane == 0) release(prev);
        prev = s;
      }
      if (++s == STAGES) s = 0, phase ^= 1;
    }
    if constexpr (PING) llmk_mbar_arrive(&turn[cw ^ 1]); /* every thread has waited on this tile's slices */
    if constexpr (!PROMOTE) {
      llmk_wgmma_wait<0>();
#pragma unroll
      for (int ms = 0; ms < MS; ms++) llmk_fence_regs(acc[ms]);
      if (prev >= 0 && lane == 0) release(prev);
    }
    LLMK_GEMM_PROBE_AT(3);
    float *cs = cols + (it % 2) * 2 * BN;
    if constexpr (STAGE_COLS) {
      /* Stage the columns. Buffer it % 2 was last read in tile it - 2's
       * epilogue, which every thread of the warpgroup finished before the
       * sync below in tile it - 1. TMA_EPI: the previous tile's stores must
       * also have read the staging buffer before it is rewritten. */
#pragma unroll
      for (int i = 0; i < CPT; i++)
        if (tid + 128 * i < BN) cs[tid + 128 * i] = cw_v[i], cs[BN + tid + 128 * i] = cb_v[i];
      if (TMA_EPI && tid == 0) llmk_bulk_wait_read0();
      llmk_named_sync(1 + cw, 128);
    }
    if (!store) continue; /* MCAST: a repeated tile past the last tile row */

    /* Epilogue. Accumulator i of this thread: row 16*warp + lane/4 + 8*((i>>1)&1),
     * column 8*(i>>2) + 2*(lane%4) + (i&1) of the warpgroup's 64 x BN block. */
    uint8_t *stage_y = smem + L::EPI_OFFSET + cw * L::EPI_WG_BYTES;
    /* GROUPED with TMA stores: a box of this consumer's rows would write
     * the next group's rows where the group ends inside it; such a tile
     * stores directly, masked at the group's end (uniform per warpgroup) */
    const bool direct = GROUPED && m0 + row0 + 64 * MS > at.M;
    if constexpr (SWAP && !SPLIT) {
      /* a persistent swapped tile holds the whole K sum: stored from the
       * registers, token columns at or past the group's end masked */
      if (r_lo[0] < rows) {
#pragma unroll
        for (int j = 0; j < BN / 8; j++) {
          const float v[4] = {acc[0][4 * j], acc[0][4 * j + 1], acc[0][4 * j + 2], acc[0][4 * j + 3]};
          llmk_gemm_epi_group_swap(at, v, j, n0, r_lo[0], rs_lo[0], rs_hi[0]);
        }
      }
    } else if constexpr (SPLIT) {
      /* Partial tile of this warpgroup at cw * 64 * BN floats, fragment-major:
       * float4 j of thread tid at (j * 128 + tid) * 16 bytes (each warp
       * writes 512 contiguous bytes). Rows at or past M are neither written
       * nor read. The other consumer warpgroup may still be reading the ring. */
      float4 *part4 = reinterpret_cast<float4 *>(smem) + cw * 16 * BN;
      llmk_named_sync(1 + CONSUMERS, 128 * CONSUMERS);
      if (r_lo[0] < rows) {
#pragma unroll
        for (int j = 0; j < BN / 8; j++)
          part4[j * 128 + tid] = make_float4(acc[0][4 * j], acc[0][4 * j + 1], acc[0][4 * j + 2], acc[0][4 * j + 3]);
      }
      llmk_cluster_sync(); /* every rank's partial is written and visible */
      LLMK_GEMM_PROBE_AT(4);
      /* This rank's share: 8-column groups [j0, j1) of every fragment, summed
       * over ranks 0..S-1 in that order (the same sum on every run) into
       * acc, whose own values are parked in shared memory by now. Each
       * rank's loads are issued back to back: distributed shared memory
       * costs hundreds of cycles per round trip. */
      const int j0 = rank * (BN / 8) / nsplit, j1 = (rank + 1) * (BN / 8) / nsplit;
      if (r_lo[0] < rows) {
        for (int q = 0; q < nsplit; q++) {
          const uint32_t base = llmk_cluster_map(part4 + tid, (uint32_t)q);
#pragma unroll
          for (int j = 0; j < BN / 8; j++) {
            if (j < j0 || j >= j1) continue;
            const float4 p = llmk_ld_cluster_f32x4(base + j * 128 * 16);
            float *v = &acc[0][4 * j];
            if (q == 0) {
              v[0] = p.x, v[1] = p.y, v[2] = p.z, v[3] = p.w;
            } else {
              v[0] = __fadd_rn(v[0], p.x), v[1] = __fadd_rn(v[1], p.y);
              v[2] = __fadd_rn(v[2], p.z), v[3] = __fadd_rn(v[3], p.w);
            }
          }
        }
#pragma unroll
        for (int j = 0; j < BN / 8; j++) {
          if (j < j0 || j >= j1) continue;
          const float v[4] = {acc[0][4 * j], acc[0][4 * j + 1], acc[0][4 * j + 2], acc[0][4 * j + 3]};
          if constexpr (SWAP)
            llmk_gemm_epi_group_swap(at, v, j, n0, r_lo[0], rs_lo[0], rs_hi[0]);
          else
            llmk_gemm_epi_group<false>(at, v, j, n0, r_lo[0], rr_lo, rs_lo[0], rs_hi[0], llmk_gemm_cols_global(at, j, n0, ws0),
                                       stage_y);
        }
      }
      LLMK_GEMM_PROBE_AT(5);
      llmk_cluster_sync(); /* no CTA leaves while a peer may still read its partial */
      LLMK_GEMM_PROBE_AT(6);
    } else {
      /* 8 groups at a time: their staged columns are read before any of
       * their stores, which the compiler cannot move loads across */
      static_assert(BN % 64 == 0 || BN < 64, "epilogue chunks of 8 column groups");
      constexpr int CH = BN < 64 ? BN / 8 : 8;
#pragma unroll
      for (int j0 = 0; j0 < BN / 8; j0 += CH) {
        llmk_gemm_cols q[CH];
#pragma unroll
        for (int j = 0; j < CH; j++) q[j] = llmk_gemm_cols_staged<BN>(cs, j0 + j);
#pragma unroll
        for (int ms = 0; ms < MS; ms++)
#pragma unroll
          for (int j = 0; j < CH; j++) {
            const int g = j0 + j;
            const float v[4] = {acc[ms][4 * g], acc[ms][4 * g + 1], acc[ms][4 * g + 2], acc[ms][4 * g + 3]};
            if (direct)
              llmk_gemm_epi_group<false>(at, v, g, n0, r_lo[ms], rr_lo, rs_lo[ms], rs_hi[ms], q[j], stage_y);
            else
              llmk_gemm_epi_group<TMA_EPI>(at, v, g, n0, r_lo[ms], rr_lo, rs_lo[ms], rs_hi[ms], q[j],
                                           stage_y + ms * 64 * BN * 2);
          }
      }
      if (TMA_EPI && !direct) {
        llmk_fence_proxy_async_smem();
        llmk_named_sync(1 + cw, 128);
        if (tid == 0) {
#pragma unroll
          for (int ms = 0; ms < MS; ms++)
#pragma unroll
            for (int b = 0; b < BN / 64; b++)
              llmk_tma_store_2d(&tmy, stage_y + ms * 64 * BN * 2 + b * 64 * 128, n0 + 64 * b,
                                (m0 + row0 + 64 * ms) / (pl ? 2 : 1)); /* two planes: 32-row boxes */
          llmk_bulk_commit();
        }
      }
    }
  }
  if constexpr (TMA_EPI) {
    if (tid == 0) llmk_bulk_wait_read0(); /* shared memory must outlive the stores' reads */
  }
  /* MCAST: neither CTA leaves while the other may still arrive on its barriers */
  if constexpr (MCAST) llmk_cluster_sync();
}

#endif
