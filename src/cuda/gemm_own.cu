/* Host side of llmk's own FP8 GEMM: tensor maps, the compiled tile
 * configurations, and the launch. Which configuration runs is chosen in
 * heuristics.c (llmk_gemm_own_config). */
#include <cudaTypedefs.h>
#include <stdlib.h>
#include <string.h>

#include "core/env.h"
#include "core/gemm.h"
#include "cuda/common.cuh"
#include "cuda/gemm_sm90.cuh"
#include "cuda/gemm_own.h"

static const char FN[] = "llmk_gemm_fp8";

/* cuTensorMapEncodeTiled through the runtime, so libcuda is never linked
 * (docs/DESIGN.md, "Loading without a GPU"). Resolved once; C++ makes the static
 * initialisation thread-safe. */
static PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void *p = nullptr;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      p = nullptr;
    (void)cudaGetLastError();
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
  }();
  return fn;
}

/* Row-major matrix [rows, cols] of `dt` with a row pitch of ld bytes, read or
 * written in boxes of box_rows x box_cols with 128-byte swizzle. */
static llmk_status make_map(CUtensorMap *m, CUtensorMapDataType dt, const void *base, int64_t rows, int64_t cols,
                            int64_t ld, int box_rows, int box_cols, const char *name) {
  PFN_cuTensorMapEncodeTiled_v12000 enc = encode_fn();
  if (!enc) return llmk_set_error(LLMK_ERR_CUDA, FN, "cuTensorMapEncodeTiled is not available from the driver");
  const cuuint64_t dims[2] = {(cuuint64_t)cols, (cuuint64_t)rows}, strides[1] = {(cuuint64_t)ld};
  const cuuint32_t box[2] = {(cuuint32_t)box_cols, (cuuint32_t)box_rows}, estr[2] = {1, 1};
  CUresult r = enc(m, dt, 2, const_cast<void *>(base), dims, strides, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE,
                   CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    return llmk_set_error(LLMK_ERR_CUDA, FN, "cuTensorMapEncodeTiled(%s: %lld x %lld, pitch %lld bytes) failed with %d",
                          name, (long long)rows, (long long)cols, (long long)ld, (int)r);
  return LLMK_SUCCESS;
}

/* Two-plane x [M, 2, K] (row pitch ld bytes) as a 3-D tensor {K, plane,
 * m}, read in boxes of 128 x 1 x 8: eight rows of one plane. */
static llmk_status make_planes_map(CUtensorMap *m, const void *base, int64_t M, int64_t K, int64_t ld) {
  PFN_cuTensorMapEncodeTiled_v12000 enc = encode_fn();
  if (!enc) return llmk_set_error(LLMK_ERR_CUDA, FN, "cuTensorMapEncodeTiled is not available from the driver");
  const cuuint64_t dims[3] = {(cuuint64_t)K, 2, (cuuint64_t)M}, strides[2] = {(cuuint64_t)ld, (cuuint64_t)(2 * ld)};
  const cuuint32_t box[3] = {LLMK_GEMM_BK, 1, 8}, estr[3] = {1, 1, 1};
  CUresult r = enc(m, CU_TENSOR_MAP_DATA_TYPE_UINT8, 3, const_cast<void *>(base), dims, strides, box, estr,
                   CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                   CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    return llmk_set_error(LLMK_ERR_CUDA, FN, "cuTensorMapEncodeTiled(x planes: %lld x 2 x %lld, pitch %lld bytes) failed with %d",
                          (long long)M, (long long)K, (long long)ld, (int)r);
  return LLMK_SUCCESS;
}

/* Programmatic dependent launch for the own kernels (the kernel side is
 * described in gemm_sm90.cuh); LLMK_GEMM_PDL=0 turns it off. */
static bool pdl_enabled() { return llmk_env_get()->gemm_pdl != 0; }

/* Whether `splits`-CTA clusters of `kernel` can be resident at all (the
 * cluster must fit one GPC); asked once per kernel and size. */
static bool clusters_fit(const void *kernel, int threads, int smem, int splits) {
  cudaLaunchConfig_t cfg = {};
  cudaLaunchAttribute at[1];
  at[0].id = cudaLaunchAttributeClusterDimension;
  at[0].val.clusterDim.x = (unsigned)splits, at[0].val.clusterDim.y = 1, at[0].val.clusterDim.z = 1;
  cfg.gridDim = dim3((unsigned)splits), cfg.blockDim = dim3((unsigned)threads), cfg.dynamicSmemBytes = (size_t)smem;
  cfg.attrs = at, cfg.numAttrs = 1;
  int n = 0;
  const bool ok = cudaOccupancyMaxActiveClusters(&n, kernel, &cfg) == cudaSuccess && n > 0;
  (void)cudaGetLastError();
  return ok;
}

template <int BM, int BN, int STAGES, bool PROMOTE, bool TMA_EPI, bool SPLIT, bool SWAP, bool MCAST, bool PING,
          bool BF16 = false>
static llmk_status launch(const llmk_gemm_plan *p, const llmk_gemm_args &a, int grid, int splits, cudaStream_t st) {
  using L = llmk_gemm_smem<BM, BN, STAGES, TMA_EPI, SPLIT, PING>;
  auto kernel = llmk_gemm_fp8_kernel<BM, BN, STAGES, PROMOTE, TMA_EPI, SPLIT, SWAP, MCAST, PING, BF16>;
  const char *const FN = BF16 ? "llmk_gemm_bf16" : ::FN;
  constexpr int THREADS = 128 * (1 + L::CONSUMERS);
  static bool attr_set = false; /* idempotent: a race only repeats the calls */
  static signed char fits[LLMK_GEMM_MAX_SPLITS + 1];
  if (!attr_set) {
    LLMK_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, L::BYTES), FN);
    if (SPLIT) LLMK_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1), FN);
    attr_set = true;
  }
  const int csize = SPLIT ? splits : MCAST ? 2 : 1; /* CTAs per cluster */
  if (SPLIT || MCAST) {
    if (!fits[csize]) fits[csize] = clusters_fit((const void *)kernel, THREADS, L::BYTES, csize) ? 1 : -1;
    if (fits[csize] < 0)
      return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, FN, "a cluster of %d CTAs of the %dx%d kernel does not fit the GPU",
                            csize, BM, BN);
  }
  CUtensorMap mx, mw, my;
  memset(&my, 0, sizeof my);
  /* boxes: the A operand has BM rows, the B operand BN (SWAP: W is A) */
  /* a box is one 128-byte swizzle row wide: 128 FP8 or 64 BF16 elements */
  const CUtensorMapDataType dt = BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_UINT8;
  const int es = BF16 ? 2 : 1, box_k = LLMK_GEMM_BK / es;
  /* two planes: the swapped kernel reads the 2M plane rows as rows; the
   * unswapped one reads 8-row boxes of each plane, and stores 32-row boxes
   * (64 plane rows make 32 output rows) */
  const bool planes = a.planes == 2 && !SWAP;
  llmk_status s = planes ? make_planes_map(&mx, p->x, p->M, p->K, p->ldx)
                         : make_map(&mx, dt, p->x, a.M, p->K, p->ldx * es, SWAP ? BN : BM, box_k, "x");
  if (!s) s = make_map(&mw, dt, p->w, p->N, p->K, p->ldw * es, SWAP ? BM : BN, box_k, "w");
  if (!s && TMA_EPI)
    s = make_map(&my, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, p->y, p->M, p->N, p->ldy * 2, planes ? 32 : 64, 64, "y");
  if (s) return s;
  cudaLaunchConfig_t cfg = {};
  cudaLaunchAttribute at[2];
  unsigned na = 0;
  if (SPLIT || MCAST) {
    at[na].id = cudaLaunchAttributeClusterDimension;
    at[na].val.clusterDim.x = (unsigned)csize, at[na].val.clusterDim.y = 1, at[na].val.clusterDim.z = 1;
    na++;
  }
  if (pdl_enabled()) {
    at[na].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[na].val.programmaticStreamSerializationAllowed = 1;
    na++;
  }
  cfg.gridDim = dim3((unsigned)grid), cfg.blockDim = dim3(THREADS), cfg.dynamicSmemBytes = L::BYTES, cfg.stream = st;
  cfg.attrs = at, cfg.numAttrs = na;
  LLMK_CUDA_TRY(cudaLaunchKernelEx(&cfg, kernel, mx, mw, my, a), FN);
  return llmk_launch_check(FN, "llmk_gemm_fp8_kernel");
}

/* Indices are stable: src/cuda/gemm_table.inc names configurations by index. */
static const llmk_gemm_own_cfg k_cfgs[] = {
    /* bm, bn, stages, promote, tma_epi, split, swap (bm = W rows, bn = tokens), mcast, ping, gemv */
    {128, 256, 4, 0, 0, 0, 0, 0, 0, 0},
    {128, 128, 6, 0, 0, 0, 0, 0, 0, 0},
    {64, 256, 5, 0, 0, 0, 0, 0, 0, 0},
    {64, 128, 8, 0, 0, 0, 0, 0, 0, 0},
    {128, 128, 6, 1, 0, 0, 0, 0, 0, 0},
    {64, 128, 8, 1, 0, 0, 0, 0, 0, 0},
    {128, 256, 3, 0, 1, 0, 0, 0, 0, 0},
    {128, 128, 5, 0, 1, 0, 0, 0, 0, 0},
    {64, 256, 4, 0, 1, 0, 0, 0, 0, 0},
    {64, 128, 8, 0, 1, 0, 0, 0, 0, 0},
    {128, 128, 5, 1, 1, 0, 0, 0, 0, 0},
    {64, 64, 12, 0, 0, 1, 0, 0, 0, 0},
    {64, 128, 8, 0, 0, 1, 0, 0, 0, 0},
    {128, 128, 6, 0, 0, 1, 0, 0, 0, 0},
    {64, 64, 12, 1, 0, 1, 0, 0, 0, 0},
    {64, 128, 8, 1, 0, 1, 0, 0, 0, 0},
    {128, 128, 6, 1, 0, 1, 0, 0, 0, 0},
    {128, 16, 11, 0, 0, 1, 1, 0, 0, 0},
    {128, 32, 10, 0, 0, 1, 1, 0, 0, 0},
    {128, 64, 8, 0, 0, 1, 1, 0, 0, 0},
    {128, 128, 6, 0, 0, 1, 1, 0, 0, 0},
    {64, 16, 16, 0, 0, 1, 1, 0, 0, 0},
    {64, 32, 12, 0, 0, 1, 1, 0, 0, 0},
    {64, 64, 12, 0, 0, 1, 1, 0, 0, 0},
    {128, 96, 7, 0, 0, 1, 1, 0, 0, 0},
    {64, 96, 10, 0, 0, 1, 1, 0, 0, 0},
    {64, 128, 8, 0, 0, 1, 1, 0, 0, 0},
    {128, 256, 3, 0, 1, 0, 0, 1, 0, 0},
    {128, 128, 5, 0, 1, 0, 0, 1, 0, 0},
    {128, 128, 4, 0, 1, 0, 0, 0, 1, 0},
    {64, 256, 3, 0, 1, 0, 0, 0, 1, 0},
    {128, 128, 6, 0, 0, 0, 0, 0, 1, 0},
    {64, 256, 5, 0, 0, 0, 0, 0, 1, 0},
    {192, 128, 4, 1, 1, 0, 0, 0, 0, 0},
};

int llmk_gemm_own_num_cfgs(void) { return (int)(sizeof k_cfgs / sizeof k_cfgs[0]); }
llmk_gemm_own_cfg llmk_gemm_own_cfg_at(int i) { return k_cfgs[i]; }

/* The kernel's arguments and grid for plan p on configuration c (shared by
 * the FP8 and BF16 entry points); *splits becomes 1 for unsplit ones. */
static llmk_status plan_args(llmk_handle h, const llmk_gemm_plan *p, const llmk_gemm_own_cfg &c, int cfg, int *splits_io,
                             const char *fn, llmk_gemm_args *out, int *grid_out) {
  if (!c.split) *splits_io = 1;
  const int splits = *splits_io;
  if (splits < 1 || splits > LLMK_GEMM_MAX_SPLITS)
    return llmk_set_error(LLMK_ERR_INTERNAL, fn, "own GEMM split count %d out of range", splits);
  if (p->M * (p->x_planes == 2 ? 2 : 1) > INT32_MAX || p->N > INT32_MAX || p->K > INT32_MAX)
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn, "the own kernels take dimensions below 2^31");
  llmk_gemm_args a;
  memset(&a, 0, sizeof a);
  /* two planes: the kernel sees the 2M plane rows; its epilogue sums each pair */
  a.planes = p->x_planes == 2 ? 2 : 1;
  if (a.planes == 2 && (p->in_dtype != LLMK_E4M3 || p->scaling != LLMK_SCALING_ROW))
    return llmk_set_error(LLMK_ERR_INTERNAL, fn, "two planes need e4m3 x with row scales");
  a.M = (int)(p->M * a.planes), a.N = (int)p->N, a.K = (int)p->K;
  a.xs = p->xs, a.ws = p->ws, a.row_scales = p->scaling == LLMK_SCALING_ROW;
  a.unscaled = p->in_dtype == LLMK_BF16;
  a.block = !a.unscaled && p->scaling == LLMK_SCALING_BLOCK, a.x_bm = (int)(p->x_bm > 0 ? p->x_bm : 1);
  a.xs_rs = p->xs_rs, a.xs_ks = p->xs_ks, a.ws_rs = p->ws_rs, a.ws_ks = p->ws_ks;
  if (a.unscaled) a.row_scales = 0;
  if (a.block && (!c.promote || c.swap))
    return llmk_set_error(LLMK_ERR_INTERNAL, fn, "own GEMM config %d cannot apply block scales", cfg);
  a.bias = p->bias, a.bias_f32 = p->bias && p->bias_dtype == LLMK_F32;
  a.y = reinterpret_cast<__nv_bfloat16 *>(p->y), a.ldy = p->ldy;
  /* tiles: A-operand rows x B-operand rows (SWAP: W rows x tokens; MCAST:
   * pairs of tile rows) */
  a.tiles_m = c.swap ? (a.N + c.bm - 1) / c.bm : (a.M + c.bm - 1) / c.bm;
  a.tiles_n = c.swap ? (a.M + c.bn - 1) / c.bn : (a.N + c.bn - 1) / c.bn;
  if (c.mcast) a.tiles_m = (a.tiles_m + 1) / 2;
  a.group_m = 8;
  const int64_t tiles = (int64_t)a.tiles_m * a.tiles_n;
  if (tiles * splits > INT32_MAX) return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn, "too many output tiles");
  /* persistent: one CTA per SM walks the tiles (MCAST: one 2-CTA cluster
   * per SM pair walks tile pairs); split: one cluster per tile */
  if (c.split) {
    *grid_out = (int)(tiles * splits);
  } else if (c.mcast) {
    const int64_t pairs = (int64_t)a.tiles_m * a.tiles_n;
    *grid_out = 2 * (int)(pairs < h->sm_count / 2 ? pairs : h->sm_count / 2);
  } else {
    *grid_out = (int)(tiles < h->sm_count ? tiles : h->sm_count);
  }
  *out = a;
  return LLMK_SUCCESS;
}

llmk_status llmk_own_gemm_fp8(llmk_handle h, const llmk_gemm_plan *p, int cfg, int splits, void *stream) {
  if (cfg < 0 || cfg >= llmk_gemm_own_num_cfgs())
    return llmk_set_error(LLMK_ERR_INTERNAL, FN, "own GEMM config %d out of range", cfg);
  const llmk_gemm_own_cfg c = k_cfgs[cfg];
  if (c.promote != !p->fast_accum)
    return llmk_set_error(LLMK_ERR_INTERNAL, FN, "own GEMM config %d does not match the accumulation mode", cfg);
  llmk_gemm_args a;
  int grid;
  llmk_status s = plan_args(h, p, c, cfg, &splits, FN, &a, &grid);
  if (s) return s;
  const cudaStream_t st = (cudaStream_t)stream;
#define LLMK_CFG(BM, BN, S, P, E, K, W, C, G)                                                           \
  if (c.bm == BM && c.bn == BN && c.stages == S && c.promote == P && c.tma_epi == E && c.split == K && \
      c.swap == W && c.mcast == C && c.ping == G)                                                       \
  return launch<BM, BN, S, P, E, K, W, C, G>(p, a, grid, splits, st)
  LLMK_CFG(128, 256, 4, false, false, false, false, false, false);
  LLMK_CFG(128, 128, 6, false, false, false, false, false, false);
  LLMK_CFG(64, 256, 5, false, false, false, false, false, false);
  LLMK_CFG(64, 128, 8, false, false, false, false, false, false);
  LLMK_CFG(128, 128, 6, true, false, false, false, false, false);
  LLMK_CFG(64, 128, 8, true, false, false, false, false, false);
  LLMK_CFG(128, 256, 3, false, true, false, false, false, false);
  LLMK_CFG(128, 128, 5, false, true, false, false, false, false);
  LLMK_CFG(64, 256, 4, false, true, false, false, false, false);
  LLMK_CFG(64, 128, 8, false, true, false, false, false, false);
  LLMK_CFG(128, 128, 5, true, true, false, false, false, false);
  LLMK_CFG(64, 64, 12, false, false, true, false, false, false);
  LLMK_CFG(64, 128, 8, false, false, true, false, false, false);
  LLMK_CFG(128, 128, 6, false, false, true, false, false, false);
  LLMK_CFG(64, 64, 12, true, false, true, false, false, false);
  LLMK_CFG(64, 128, 8, true, false, true, false, false, false);
  LLMK_CFG(128, 128, 6, true, false, true, false, false, false);
  LLMK_CFG(128, 16, 11, false, false, true, true, false, false);
  LLMK_CFG(128, 32, 10, false, false, true, true, false, false);
  LLMK_CFG(128, 64, 8, false, false, true, true, false, false);
  LLMK_CFG(128, 128, 6, false, false, true, true, false, false);
  LLMK_CFG(64, 16, 16, false, false, true, true, false, false);
  LLMK_CFG(64, 32, 12, false, false, true, true, false, false);
  LLMK_CFG(64, 64, 12, false, false, true, true, false, false);
  LLMK_CFG(128, 96, 7, false, false, true, true, false, false);
  LLMK_CFG(64, 96, 10, false, false, true, true, false, false);
  LLMK_CFG(64, 128, 8, false, false, true, true, false, false);
  LLMK_CFG(128, 256, 3, false, true, false, false, true, false);
  LLMK_CFG(128, 128, 5, false, true, false, false, true, false);
  LLMK_CFG(128, 128, 4, false, true, false, false, false, true);
  LLMK_CFG(64, 256, 3, false, true, false, false, false, true);
  LLMK_CFG(128, 128, 6, false, false, false, false, false, true);
  LLMK_CFG(64, 256, 5, false, false, false, false, false, true);
  LLMK_CFG(192, 128, 4, true, true, false, false, false, false);
#undef LLMK_CFG
  return llmk_set_error(LLMK_ERR_INTERNAL, FN, "own GEMM config %d has no compiled kernel", cfg);
}

/* BF16: persistent tiles with the TMA-store epilogue, K-split swapped
 * tiles for decode, one K-split plain tile, and the mma.sync kernel for a
 * few tokens (gemv_bf16.cu).
 * Indices are stable (LLMK_GEMM_OWN_CFG names them for BF16 calls). */
static const llmk_gemm_own_cfg k_bf16_cfgs[] = {
    /* bm, bn, stages, promote, tma_epi, split, swap, mcast, ping, gemv */
    {128, 256, 3, 0, 1, 0, 0, 0, 0, 0}, {128, 128, 5, 0, 1, 0, 0, 0, 0, 0}, {64, 256, 4, 0, 1, 0, 0, 0, 0, 0},
    {64, 128, 8, 0, 1, 0, 0, 0, 0, 0},  {128, 16, 11, 0, 0, 1, 1, 0, 0, 0}, {128, 32, 10, 0, 0, 1, 1, 0, 0, 0},
    {128, 64, 8, 0, 0, 1, 1, 0, 0, 0},  {128, 128, 6, 0, 0, 1, 1, 0, 0, 0}, {64, 128, 8, 0, 0, 1, 0, 0, 0, 0},
    {16, 8, 0, 0, 0, 1, 1, 0, 0, 1},
};

int llmk_gemm_own_bf16_num_cfgs(void) { return (int)(sizeof k_bf16_cfgs / sizeof k_bf16_cfgs[0]); }
llmk_gemm_own_cfg llmk_gemm_own_bf16_cfg_at(int i) { return k_bf16_cfgs[i]; }

llmk_status llmk_own_gemm_bf16(llmk_handle h, const llmk_gemm_plan *p, int cfg, int splits, void *stream) {
  static const char fn[] = "llmk_gemm_bf16";
  if (cfg < 0 || cfg >= llmk_gemm_own_bf16_num_cfgs())
    return llmk_set_error(LLMK_ERR_INTERNAL, fn, "own BF16 GEMM config %d out of range", cfg);
  const llmk_gemm_own_cfg c = k_bf16_cfgs[cfg];
  if (c.gemv) return llmk_own_gemv_bf16(p, splits, pdl_enabled(), stream);
  llmk_gemm_args a;
  int grid;
  llmk_status s = plan_args(h, p, c, cfg, &splits, fn, &a, &grid);
  if (s) return s;
  const cudaStream_t st = (cudaStream_t)stream;
#define LLMK_CFG(BM, BN, S, E, K, W)                                                                   \
  if (c.bm == BM && c.bn == BN && c.stages == S && c.tma_epi == E && c.split == K && c.swap == W) \
  return launch<BM, BN, S, false, E, K, W, false, false, true>(p, a, grid, splits, st)
  LLMK_CFG(128, 256, 3, true, false, false);
  LLMK_CFG(128, 128, 5, true, false, false);
  LLMK_CFG(64, 256, 4, true, false, false);
  LLMK_CFG(64, 128, 8, true, false, false);
  LLMK_CFG(128, 16, 11, false, true, true);
  LLMK_CFG(128, 32, 10, false, true, true);
  LLMK_CFG(128, 64, 8, false, true, true);
  LLMK_CFG(128, 128, 6, false, true, true);
  LLMK_CFG(64, 128, 8, false, true, false);
#undef LLMK_CFG
  return llmk_set_error(LLMK_ERR_INTERNAL, fn, "own BF16 GEMM config %d has no compiled kernel", cfg);
}
