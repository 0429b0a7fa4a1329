/* The launch of one own GEMM configuration (gemm_configs.def): the
 * template that instantiates gemm_sm90.cuh's kernel for a line of the
 * list, and the machinery by which each gemm_kernels_<unit>.cu builds the
 * lines of its unit, so that the instantiations compile in parallel.
 *
 * A unit's translation unit defines LLMK_GEMM_UNIT_<unit> as
 * LLMK_GEMM_INSTANTIATE before including this file; every other unit's
 * macro defaults to nothing below. Each line of the list then expands to
 * LLMK_GEMM_UNIT_<its unit>(...): in its own unit, the definition of
 * llmk_gemm_launch_<name>; elsewhere, nothing. gemm_own.cu includes this
 * file with no unit defined, for the launchers' declarations. A line whose
 * unit has no default here fails to compile everywhere. */
#ifndef LLMK_GEMM_KERNELS_CUH
#define LLMK_GEMM_KERNELS_CUH

#include <cuda_runtime.h>
#include <string.h>

#include "cuda/common.cuh"
#include "cuda/gemm_own.h"
#include "cuda/gemm_sm90.cuh"

/* Host helpers of the launch, defined once in gemm_own.cu. */
/* Row-major matrix [rows, cols] of `dt` with a row pitch of ld bytes, read
 * or written in boxes of box_rows x box_cols with 128-byte swizzle. */
llmk_status llmk_gemm_make_map(CUtensorMap *m, CUtensorMapDataType dt, const void *base, int64_t rows, int64_t cols,
                               int64_t ld, int box_rows, int box_cols, const char *name, const char *fn);
/* Two-plane x [M, 2, K] (row pitch ld bytes) as a 3-D tensor {K, plane,
 * m}, read in boxes of 128 x 1 x 8: eight rows of one plane. */
llmk_status llmk_gemm_make_planes_map(CUtensorMap *m, const void *base, int64_t M, int64_t K, int64_t ld,
                                      const char *fn);
/* Programmatic dependent launch for the own kernels (the kernel side is
 * described in gemm_sm90.cuh); LLMK_GEMM_PDL=0 turns it off. */
bool llmk_gemm_pdl_enabled();
/* FP8 swapped decode tiles load their first ring of W slices before
 * griddepcontrol.wait (include/llmk.h, llmk_gemm_fp8, "Stream order"):
 * with PDL on and LLMK_GEMM_W_EARLY=1. */
bool llmk_gemm_w_early_enabled();

/* The launch attributes of an own GEMM kernel: clusters of csize CTAs
 * (0: no cluster attribute) and programmatic dependent launch where it is
 * on. Returns how many of at[] it set. */
static inline unsigned llmk_gemm_launch_attrs(cudaLaunchAttribute (&at)[2], int csize) {
  unsigned na = 0;
  if (csize > 0) {
    at[na].id = cudaLaunchAttributeClusterDimension;
    at[na].val.clusterDim.x = (unsigned)csize, at[na].val.clusterDim.y = 1, at[na].val.clusterDim.z = 1;
    na++;
  }
  if (llmk_gemm_pdl_enabled()) {
    at[na].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[na].val.programmaticStreamSerializationAllowed = 1;
    na++;
  }
  return na;
}

/* A configuration's launch: the kernel on `grid` CTAs (clusters of
 * `splits` for a split configuration) for the arguments a of plan p. */
typedef llmk_status (*llmk_gemm_launcher)(const llmk_gemm_plan *p, const llmk_gemm_args &a, int grid, int splits,
                                          cudaStream_t st);

/* The kernel of one configuration: template arguments as the columns of
 * gemm_configs.def (BM = tile_m, BN = tile_n, STAGES = stages, PROMOTE =
 * promote, TMA_EPI = tma_store, SPLIT = k_split, SWAP = swap, MCAST =
 * multicast, PING = ping_pong, BF16 = in is BF16), or (GROUPED) one of the
 * grouped GEMM's kernels (gemm_grouped.cu): W is a.groups stacked [N, K]
 * matrices, and the table of the groups follows the kernel's shared
 * memory. */
template <int BM, int BN, int STAGES, bool PROMOTE, bool TMA_EPI, bool SPLIT, bool SWAP, bool MCAST, bool PING,
          bool BF16, bool GROUPED = false>
static llmk_status llmk_gemm_launch(const llmk_gemm_plan *p, const llmk_gemm_args &a, int grid, int splits,
                                    cudaStream_t st) {
  using L = llmk_gemm_smem<BM, BN, STAGES, TMA_EPI, SPLIT, PING>;
  constexpr int SMEM = L::BYTES + (GROUPED ? 4 * LLMK_GROUPED_TAB_INTS : 0);
  static_assert(SMEM <= 227 * 1024, "shared memory per CTA");
  /* Early W loads only where W is FP8: no llmk kernel that lets its
   * dependents launch early writes an e4m3 tensor (they write bf16), so
   * the kernel ahead of this one cannot be writing W. A bf16 W may be the
   * previous GEMM's output. */
  constexpr bool EARLY_OK = SWAP && !MCAST && !BF16 && !GROUPED;
  const bool early = EARLY_OK && llmk_gemm_w_early_enabled();
  auto kernel =
      early ? llmk_gemm_fp8_kernel<BM, BN, STAGES, PROMOTE, TMA_EPI, SPLIT, SWAP, MCAST, PING, BF16, 1, EARLY_OK, GROUPED>
            : llmk_gemm_fp8_kernel<BM, BN, STAGES, PROMOTE, TMA_EPI, SPLIT, SWAP, MCAST, PING, BF16, 1, false, GROUPED>;
  const char *const FN = GROUPED ? "llmk_gemm_grouped" : BF16 ? "llmk_gemm_bf16" : "llmk_gemm_fp8";
  constexpr int THREADS = 128 * (1 + L::CONSUMERS);
  static bool attr_set[2] = {false, false}; /* per kernel; idempotent: a race only repeats the calls */
  static signed char fits[LLMK_GEMM_MAX_SPLITS + 1];
  if (!attr_set[early]) {
    LLMK_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM), FN);
    if (SPLIT) LLMK_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1), FN);
    attr_set[early] = true;
  }
  const int csize = SPLIT ? splits : MCAST ? 2 : 1; /* CTAs per cluster */
  if (SPLIT || MCAST) {
    if (!fits[csize]) fits[csize] = llmk_active_clusters((const void *)kernel, THREADS, SMEM, csize) > 0 ? 1 : -1;
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
  /* K = 0 (grouped; the dense entry points fill y without a kernel): no
   * slice is ever loaded, but a map needs an extent of a box; y stands in */
  const bool k0 = p->K == 0;
  const int64_t w_rows = (GROUPED ? (int64_t)a.groups : 1) * p->N;
  llmk_status s = k0       ? llmk_gemm_make_map(&mx, dt, p->y, 256, box_k, LLMK_GEMM_BK, SWAP ? BN : BM, box_k, "x", FN)
                  : planes ? llmk_gemm_make_planes_map(&mx, p->x, p->M, p->K, p->ldx, FN)
                           : llmk_gemm_make_map(&mx, dt, p->x, a.M, p->K, p->ldx * es, SWAP ? BN : BM, box_k, "x", FN);
  if (!s)
    s = k0 ? llmk_gemm_make_map(&mw, dt, p->y, 256, box_k, LLMK_GEMM_BK, SWAP ? BM : BN, box_k, "w", FN)
           : llmk_gemm_make_map(&mw, dt, p->w, w_rows, p->K, p->ldw * es, SWAP ? BM : BN, box_k, "w", FN);
  if (!s && TMA_EPI)
    s = llmk_gemm_make_map(&my, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, p->y, p->M, p->N, p->ldy * 2, planes ? 32 : 64, 64,
                           "y", FN);
  if (s) return s;
  cudaLaunchConfig_t cfg = {};
  cudaLaunchAttribute at[2];
  const unsigned na = llmk_gemm_launch_attrs(at, SPLIT || MCAST ? csize : 0);
  cfg.gridDim = dim3((unsigned)grid), cfg.blockDim = dim3(THREADS), cfg.dynamicSmemBytes = SMEM, cfg.stream = st;
  cfg.attrs = at, cfg.numAttrs = na;
  LLMK_CUDA_TRY(cudaLaunchKernelEx(&cfg, kernel, mx, mw, my, a), FN);
  return llmk_launch_check(FN, "llmk_gemm_fp8_kernel");
}

/* Every configuration's launcher, llmk_gemm_launch_<name> (the gemv's is
 * declared but never defined: gemm_own.cu launches it directly). */
#define LLMK_GEMM_CONFIG(name, ...)                                                                            \
  llmk_status llmk_gemm_launch_##name(const llmk_gemm_plan *p, const llmk_gemm_args &a, int grid, int splits, \
                                      cudaStream_t st);
#include "cuda/gemm_configs.def"
#undef LLMK_GEMM_CONFIG

/* The definition of a line's launcher: its template arguments are the
 * line's columns, nothing else. */
#define LLMK_GEMM_INSTANTIATE(name, in, tile_m, tile_n, stages, promote, tma_store, k_split, swap, multicast,          \
                              ping_pong, gemv)                                                                         \
  llmk_status llmk_gemm_launch_##name(const llmk_gemm_plan *p, const llmk_gemm_args &a, int grid, int splits,         \
                                      cudaStream_t st) {                                                               \
    return llmk_gemm_launch<tile_m, tile_n, stages, promote != 0, tma_store != 0, k_split != 0, swap != 0,            \
                            multicast != 0, ping_pong != 0, LLMK_##in == LLMK_BF16>(p, a, grid, splits, st);           \
  }

/* The units (gemm_configs.def names each line's): nothing, unless the
 * including translation unit is that unit. */
#ifndef LLMK_GEMM_UNIT_persist
#define LLMK_GEMM_UNIT_persist(...)
#endif
#ifndef LLMK_GEMM_UNIT_tmastore
#define LLMK_GEMM_UNIT_tmastore(...)
#endif
#ifndef LLMK_GEMM_UNIT_split
#define LLMK_GEMM_UNIT_split(...)
#endif
#ifndef LLMK_GEMM_UNIT_swap
#define LLMK_GEMM_UNIT_swap(...)
#endif
#ifndef LLMK_GEMM_UNIT_mcast_ping
#define LLMK_GEMM_UNIT_mcast_ping(...)
#endif
#ifndef LLMK_GEMM_UNIT_bf16
#define LLMK_GEMM_UNIT_bf16(...)
#endif
/* gemv: gemv_bf16.cu's kernel is no template; gemm_own.cu launches it */
#define LLMK_GEMM_UNIT_gemv(...)

#define LLMK_GEMM_CONFIG(name, unit, ...) LLMK_GEMM_UNIT_##unit(name, __VA_ARGS__)
#include "cuda/gemm_configs.def"
#undef LLMK_GEMM_CONFIG

#endif
