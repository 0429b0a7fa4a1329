/* Host side of llmk's own GEMM: the configurations of gemm_configs.def
 * (the array, the names, the compile-time checks of each line), tensor
 * maps, and the launch of a configuration by id. The kernels are
 * instantiated in gemm_kernels_*.cu (gemm_kernels.cuh); which
 * configuration runs is chosen in heuristics.c (llmk_gemm_route_for). */
#include <cudaTypedefs.h>
#include <stdlib.h>
#include <string.h>

#include "core/env.h"
#include "core/gemm.h"
#include "cuda/common.cuh"
#include "cuda/gemm_kernels.cuh"
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

llmk_status llmk_gemm_make_map(CUtensorMap *m, CUtensorMapDataType dt, const void *base, int64_t rows, int64_t cols,
                               int64_t ld, int box_rows, int box_cols, const char *name, const char *fn) {
  PFN_cuTensorMapEncodeTiled_v12000 enc = encode_fn();
  if (!enc) return llmk_set_error(LLMK_ERR_CUDA, fn, "cuTensorMapEncodeTiled is not available from the driver");
  const cuuint64_t dims[2] = {(cuuint64_t)cols, (cuuint64_t)rows}, strides[1] = {(cuuint64_t)ld};
  const cuuint32_t box[2] = {(cuuint32_t)box_cols, (cuuint32_t)box_rows}, estr[2] = {1, 1};
  CUresult r = enc(m, dt, 2, const_cast<void *>(base), dims, strides, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE,
                   CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    return llmk_set_error(LLMK_ERR_CUDA, fn, "cuTensorMapEncodeTiled(%s: %lld x %lld, pitch %lld bytes) failed with %d",
                          name, (long long)rows, (long long)cols, (long long)ld, (int)r);
  return LLMK_SUCCESS;
}

llmk_status llmk_gemm_make_planes_map(CUtensorMap *m, const void *base, int64_t M, int64_t K, int64_t ld,
                                      const char *fn) {
  PFN_cuTensorMapEncodeTiled_v12000 enc = encode_fn();
  if (!enc) return llmk_set_error(LLMK_ERR_CUDA, fn, "cuTensorMapEncodeTiled is not available from the driver");
  const cuuint64_t dims[3] = {(cuuint64_t)K, 2, (cuuint64_t)M}, strides[2] = {(cuuint64_t)ld, (cuuint64_t)(2 * ld)};
  const cuuint32_t box[3] = {LLMK_GEMM_BK, 1, 8}, estr[3] = {1, 1, 1};
  CUresult r = enc(m, CU_TENSOR_MAP_DATA_TYPE_UINT8, 3, const_cast<void *>(base), dims, strides, box, estr,
                   CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                   CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    return llmk_set_error(LLMK_ERR_CUDA, fn, "cuTensorMapEncodeTiled(x planes: %lld x 2 x %lld, pitch %lld bytes) failed with %d",
                          (long long)M, (long long)K, (long long)ld, (int)r);
  return LLMK_SUCCESS;
}

bool llmk_gemm_pdl_enabled() { return llmk_env_get()->gemm_pdl != 0; }
bool llmk_gemm_w_early_enabled() { return llmk_gemm_pdl_enabled() && llmk_env_get()->gemm_w_early != 0; }

/* The list (gemm_configs.def), by id. */
const llmk_gemm_own_cfg llmk_gemm_cfgs[LLMK_GEMM_NUM_CFGS] = {
#define LLMK_GEMM_CONFIG(name, unit, in, tile_m, tile_n, stages, promote, tma_store, k_split, swap, multicast, \
                         ping_pong, gemv)                                                                     \
  {#name, LLMK_##in, tile_m, tile_n, stages, promote, tma_store, k_split, swap, multicast, ping_pong, gemv},
#include "cuda/gemm_configs.def"
#undef LLMK_GEMM_CONFIG
};

/* Each line's invariants, checked where the line is read rather than deep
 * in the kernel's instantiation (gemm_sm90.cuh asserts them again, with
 * the reasons). */
#define LLMK_GEMM_CONFIG(name, unit, in, tile_m, tile_n, stages, promote, tma_store, k_split, swap, multicast,    \
                         ping_pong, gemv)                                                                        \
  static_assert((promote | tma_store | k_split | swap | multicast | ping_pong | gemv) >> 1 == 0,                 \
                #name ": the flags are 0 or 1");                                                                 \
  static_assert(gemv ? tile_m == 16 && tile_n == 8 && stages == 0 && k_split && swap && LLMK_##in == LLMK_BF16 \
                     : tile_m % 64 == 0 && stages >= 2,                                                          \
                #name ": tile_m is a multiple of 64 (the gemv: 16 x 8, no stages)");                             \
  static_assert(tile_m <= 128 || (tile_m == 192 && promote && !k_split && !ping_pong),                           \
                #name ": 64 or 128 rows, 192 for persistent promoting tiles only");                              \
  static_assert(tile_n % 8 == 0 && tile_n >= 8 && tile_n <= 256, #name ": wgmma's N is 8..256 by 8");            \
  static_assert(gemv || !swap || (k_split && tile_n % 16 == 0 && tile_n <= 128),                                 \
                #name ": swapped tiles are K-split, 16..128 tokens by 16");                                      \
  static_assert(!k_split || (!tma_store && !multicast && !ping_pong && tile_n <= 128),                           \
                #name ": split tiles store directly, one tile per cluster, BN <= 128");                          \
  static_assert(!promote || (LLMK_##in == LLMK_E4M3 && tile_n <= (swap ? 64 : 128)),                           \
                #name ": promotion is FP8's, BN <= 128 (swapped: <= 64 tokens)");                               \
  static_assert(!ping_pong || (!promote && !multicast), #name ": ping-pong takes fast-accumulation tiles");      \
  static_assert(!tma_store || tile_n % 64 == 0, #name ": TMA-store boxes are 64 columns wide");                  \
  static_assert(gemv || llmk_gemm_smem<tile_m, tile_n, stages, tma_store != 0, k_split != 0,                     \
                                       ping_pong != 0>::BYTES <= 227 * 1024,                                     \
                #name ": the stages and staging tiles fit 227 KiB of shared memory");
#include "cuda/gemm_configs.def"
#undef LLMK_GEMM_CONFIG

/* Each configuration's launcher (gemm_kernels.cuh; none for the gemv,
 * which llmk_own_gemm_bf16 launches itself). */
#define LLMK_GEMM_LAUNCHER_0(name) &llmk_gemm_launch_##name
#define LLMK_GEMM_LAUNCHER_1(name) nullptr
#define LLMK_GEMM_LAUNCHER(gemv, name) LLMK_GEMM_LAUNCHER_##gemv(name)
static const llmk_gemm_launcher k_launchers[LLMK_GEMM_NUM_CFGS] = {
#define LLMK_GEMM_CONFIG(name, unit, in, tile_m, tile_n, stages, promote, tma_store, k_split, swap, multicast, \
                         ping_pong, gemv)                                                                     \
  LLMK_GEMM_LAUNCHER(gemv, name),
#include "cuda/gemm_configs.def"
#undef LLMK_GEMM_CONFIG
};

/* The kernel's arguments and grid for plan p on configuration c (shared by
 * the FP8 and BF16 entry points); *splits becomes 1 for unsplit ones. */
static llmk_status plan_args(llmk_handle h, const llmk_gemm_plan *p, const llmk_gemm_own_cfg &c, int *splits_io,
                             const char *fn, llmk_gemm_args *out, int *grid_out) {
  if (!c.k_split) *splits_io = 1;
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
  if (a.block && !c.promote)
    return llmk_set_error(LLMK_ERR_INTERNAL, fn, "own GEMM configuration %s cannot apply block scales", c.name);
  a.bias = p->bias, a.bias_f32 = p->bias && p->bias_dtype == LLMK_F32;
  a.y = reinterpret_cast<__nv_bfloat16 *>(p->y), a.ldy = p->ldy;
  /* tiles: A-operand rows x B-operand rows (SWAP: W rows x tokens; MCAST:
   * pairs of tile rows) */
  a.tiles_m = c.swap ? (a.N + c.tile_m - 1) / c.tile_m : (a.M + c.tile_m - 1) / c.tile_m;
  a.tiles_n = c.swap ? (a.M + c.tile_n - 1) / c.tile_n : (a.N + c.tile_n - 1) / c.tile_n;
  if (c.multicast) a.tiles_m = (a.tiles_m + 1) / 2;
  a.group_m = llmk_env_get()->gemm_band > 0 ? llmk_env_get()->gemm_band : 8;
  const int64_t tiles = (int64_t)a.tiles_m * a.tiles_n;
  if (tiles * splits > INT32_MAX) return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn, "too many output tiles");
  /* persistent: one CTA per SM walks the tiles (MCAST: one 2-CTA cluster
   * per SM pair walks tile pairs); split: one cluster per tile */
  if (c.k_split) {
    *grid_out = (int)(tiles * splits);
  } else if (c.multicast) {
    const int64_t pairs = (int64_t)a.tiles_m * a.tiles_n;
    *grid_out = 2 * (int)(pairs < h->sm_count / 2 ? pairs : h->sm_count / 2);
  } else {
    *grid_out = (int)(tiles < h->sm_count ? tiles : h->sm_count);
  }
  *out = a;
  return LLMK_SUCCESS;
}


/* Configuration cfg of p's dtype (and, FP8, p's accumulation mode), or an
 * INTERNAL error: the dispatcher chose something the list cannot run. */
static llmk_status check_cfg(const llmk_gemm_plan *p, int cfg, const char *fn) {
  if (cfg < 0 || cfg >= LLMK_GEMM_NUM_CFGS)
    return llmk_set_error(LLMK_ERR_INTERNAL, fn, "own GEMM configuration %d out of range", cfg);
  const llmk_gemm_own_cfg &c = llmk_gemm_cfgs[cfg];
  if (c.in_dtype != p->in_dtype)
    return llmk_set_error(LLMK_ERR_INTERNAL, fn, "own GEMM configuration %s takes %s, the call %s", c.name,
                          llmk_dtype_name(c.in_dtype), llmk_dtype_name(p->in_dtype));
  if (p->in_dtype == LLMK_E4M3 && c.promote != !p->fast_accum)
    return llmk_set_error(LLMK_ERR_INTERNAL, fn, "own GEMM configuration %s does not match the accumulation mode",
                          c.name);
  return LLMK_SUCCESS;
}

/* Both entry points: the gemv by its own launch, the others by their
 * launcher with the kernel arguments of plan_args. */
static llmk_status run_cfg(llmk_handle h, const llmk_gemm_plan *p, int cfg, int splits, void *stream, const char *fn) {
  llmk_status s = check_cfg(p, cfg, fn);
  if (s) return s;
  const llmk_gemm_own_cfg &c = llmk_gemm_cfgs[cfg];
  if (c.gemv) return llmk_own_gemv_bf16(p, splits, llmk_gemm_pdl_enabled(), stream);
  llmk_gemm_args a;
  int grid = 0;
  if ((s = plan_args(h, p, c, &splits, fn, &a, &grid))) return s;
  return k_launchers[cfg](p, a, grid, splits, (cudaStream_t)stream);
}

llmk_status llmk_own_gemm_fp8(llmk_handle h, const llmk_gemm_plan *p, int cfg, int splits, void *stream) {
  return run_cfg(h, p, cfg, splits, stream, FN);
}

llmk_status llmk_own_gemm_bf16(llmk_handle h, const llmk_gemm_plan *p, int cfg, int splits, void *stream) {
  return run_cfg(h, p, cfg, splits, stream, "llmk_gemm_bf16");
}
