/* Host side of llmk's own FP8 GEMM: tensor maps, the compiled tile
 * configurations, and the launch. Which configuration runs is chosen in
 * heuristics.c (llmk_gemm_own_config). */
#include <cudaTypedefs.h>

#include "core/gemm.h"
#include "cuda/common.cuh"
#include "cuda/gemm_fp8_sm90.cuh"
#include "cuda/gemm_own.h"

static const char FN[] = "llmk_gemm_fp8";

/* cuTensorMapEncodeTiled through the runtime, so libcuda is never linked
 * (DESIGN.md, "Loading without a GPU"). Resolved once; C++ makes the static
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

/* Row-major FP8 matrix [rows, K] with row pitch ld bytes, boxes of `box_rows` x 128 bytes. */
static llmk_status make_map(CUtensorMap *m, const void *base, int64_t rows, int64_t K, int64_t ld, int box_rows,
                            const char *name) {
  PFN_cuTensorMapEncodeTiled_v12000 enc = encode_fn();
  if (!enc) return llmk_set_error(LLMK_ERR_CUDA, FN, "cuTensorMapEncodeTiled is not available from the driver");
  const cuuint64_t dims[2] = {(cuuint64_t)K, (cuuint64_t)rows}, strides[1] = {(cuuint64_t)ld};
  const cuuint32_t box[2] = {LLMK_GEMM_BK, (cuuint32_t)box_rows}, estr[2] = {1, 1};
  CUresult r = enc(m, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<void *>(base), dims, strides, box, estr,
                   CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                   CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    return llmk_set_error(LLMK_ERR_CUDA, FN, "cuTensorMapEncodeTiled(%s: %lld x %lld, pitch %lld) failed with %d",
                          name, (long long)rows, (long long)K, (long long)ld, (int)r);
  return LLMK_SUCCESS;
}

template <int BM, int BN, int STAGES, bool PROMOTE>
static llmk_status launch(const llmk_gemm_plan *p, const llmk_gemm_args &a, int grid, cudaStream_t st) {
  using L = llmk_gemm_smem<BM, BN, STAGES>;
  auto kernel = llmk_gemm_fp8_kernel<BM, BN, STAGES, PROMOTE>;
  static bool attr_set = false; /* idempotent: a race only repeats the call */
  if (!attr_set) {
    LLMK_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, L::BYTES), FN);
    attr_set = true;
  }
  CUtensorMap mx, mw;
  llmk_status s = make_map(&mx, p->x, p->M, p->K, p->ldx, BM, "x");
  if (!s) s = make_map(&mw, p->w, p->N, p->K, p->ldw, BN, "w");
  if (s) return s;
  kernel<<<grid, 128 * (1 + BM / 64), L::BYTES, st>>>(mx, mw, a);
  return llmk_launch_check(FN, "llmk_gemm_fp8_kernel");
}

static const llmk_gemm_own_cfg k_cfgs[] = {
    /* bm, bn, stages, promote */
    {128, 256, 4, 0},
    {128, 128, 6, 0},
    {64, 256, 5, 0},
    {64, 128, 8, 0},
    {128, 128, 6, 1},
    {64, 128, 8, 1},
};

int llmk_gemm_own_num_cfgs(void) { return (int)(sizeof k_cfgs / sizeof k_cfgs[0]); }
llmk_gemm_own_cfg llmk_gemm_own_cfg_at(int i) { return k_cfgs[i]; }

llmk_status llmk_own_gemm_fp8(llmk_handle h, const llmk_gemm_plan *p, int cfg, void *stream) {
  if (cfg < 0 || cfg >= llmk_gemm_own_num_cfgs())
    return llmk_set_error(LLMK_ERR_INTERNAL, FN, "own GEMM config %d out of range", cfg);
  const llmk_gemm_own_cfg c = k_cfgs[cfg];
  if (c.promote != !p->fast_accum)
    return llmk_set_error(LLMK_ERR_INTERNAL, FN, "own GEMM config %d does not match the accumulation mode", cfg);
  if (p->M > INT32_MAX || p->N > INT32_MAX || p->K > INT32_MAX)
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, FN, "the own kernels take dimensions below 2^31");
  llmk_gemm_args a;
  a.M = (int)p->M, a.N = (int)p->N, a.K = (int)p->K;
  a.xs = p->xs, a.ws = p->ws, a.row_scales = p->scaling == LLMK_SCALING_ROW;
  a.bias = p->bias, a.bias_f32 = p->bias && p->bias_dtype == LLMK_F32;
  a.y = reinterpret_cast<__nv_bfloat16 *>(p->y), a.ldy = p->ldy;
  a.tiles_m = (a.M + c.bm - 1) / c.bm, a.tiles_n = (a.N + c.bn - 1) / c.bn;
  a.group_m = 8;
  const int64_t tiles = (int64_t)a.tiles_m * a.tiles_n;
  if (tiles > INT32_MAX) return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, FN, "too many output tiles");
  const int grid = (int)(tiles < h->sm_count ? tiles : h->sm_count);
  const cudaStream_t st = (cudaStream_t)stream;
  if (c.bm == 128 && c.bn == 256 && !c.promote) return launch<128, 256, 4, false>(p, a, grid, st);
  if (c.bm == 128 && c.bn == 128 && !c.promote) return launch<128, 128, 6, false>(p, a, grid, st);
  if (c.bm == 64 && c.bn == 256 && !c.promote) return launch<64, 256, 5, false>(p, a, grid, st);
  if (c.bm == 64 && c.bn == 128 && !c.promote) return launch<64, 128, 8, false>(p, a, grid, st);
  if (c.bm == 128 && c.bn == 128 && c.promote) return launch<128, 128, 6, true>(p, a, grid, st);
  return launch<64, 128, 8, true>(p, a, grid, st);
}
