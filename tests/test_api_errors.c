/* Bad-input tests of llmk_quantize_fp8 and llmk_dequantize_fp8
 * (docs/DESIGN.md, "Testing"; the machinery is tests/api_errors.h).
 *
 * Null pointers, invalid enum values, wrong dtypes, mismatched shapes,
 * negative and overflowing sizes, bad strides, misaligned pointers, bad block
 * sizes, overlapping tensors and, where a CUDA device is visible, host or
 * wrong-device pointers given to a CUDA handle. Every bad call must
 *  - return its documented status (LLMK_ERR_INVALID_ARGUMENT for all of these),
 *  - leave a fresh llmk_last_error() ("<function>: ...") naming the argument,
 *  - write nothing: the output arena is poisoned before each call and every
 *    byte is compared after it (the input arena must be unchanged too),
 *  - leave the library usable: a valid quantize + dequantize on the live
 *    handle right after it gives the exact expected bits and does not touch
 *    the last error.
 * Each bad call is one CHECK whose failure message lists what went wrong.
 * llmk_gemm_fp8 and llmk_set_workspace: test_api_errors_gemm.c; handles,
 * devices, build info and the scalar helpers: test_api_errors_misc.c. */
#include "api_errors.h"

/* ---- the quantize and dequantize cases ----------------------------------- */

static void quantize_cases(llmk_handle h, llmk_handle bogus) {
  unsigned char *in = g_in, *out = g_out;
  const call q0 = quant_call(h, in, out);

  /* null pointers */
  { call c = q0; c.h = NULL; BAD("quantize: NULL handle", c, "handle", "NULL"); }
  { call c = q0; c.h = bogus; BAD("quantize: garbage handle", c, "handle", NULL); }
  { call c = q0; c.nulls = NULL_DESC; BAD("quantize: NULL desc", c, "desc", "NULL"); }
  { call c = q0; c.nulls = NULL_T0; BAD("quantize: NULL x", c, "x", "NULL"); }
  { call c = q0; c.nulls = NULL_T1; BAD("quantize: NULL xq", c, "xq", "NULL"); }
  { call c = q0; c.nulls = NULL_T2; BAD("quantize: NULL scale", c, "scale", "NULL"); }
  { call c = q0; c.t[0].data = NULL; BAD("quantize: x.data NULL", c, "x", "NULL"); }
  { call c = q0; c.t[1].data = NULL; BAD("quantize: xq.data NULL", c, "xq", "NULL"); }
  { call c = q0; c.t[2].data = NULL; BAD("quantize: scale.data NULL", c, "scale", "NULL"); }

  /* invalid enum values */
  { call c = q0; c.t[0].dtype = (llmk_dtype)99; BAD("quantize: x.dtype 99", c, "x", "dtype"); }
  { call c = q0; c.t[1].dtype = (llmk_dtype)-1; BAD("quantize: xq.dtype -1", c, "xq", "dtype"); }
  { call c = q0; c.d.scaling = (llmk_scaling)4; BAD("quantize: scaling 4", c, "scaling", NULL); }
  { call c = q0; c.d.scaling = (llmk_scaling)-1; BAD("quantize: scaling -1", c, "scaling", NULL); }

  /* wrong dtypes */
  { call c = q0; c.t[0].dtype = LLMK_E4M3; BAD("quantize: x e4m3", c, "x", "e4m3"); }
  { call c = q0; c.t[1].dtype = LLMK_BF16; BAD("quantize: xq bf16", c, "xq", "bf16"); }
  { call c = q0; c.t[1].dtype = LLMK_U8; BAD("quantize: xq u8", c, "xq", "u8"); }
  { call c = q0; c.t[2].dtype = LLMK_BF16; BAD("quantize: scale bf16", c, "scale", "bf16"); }
  { call c = q0; c.t[1].dtype = LLMK_E5M2; use_scaling(&c, LLMK_SCALING_COL);
    BAD("quantize: e5m2 with col scaling", c, "e5m2", "col"); }
  { call c = q0; c.t[1].dtype = LLMK_E5M2; use_block(&c, 1, 4);
    BAD("quantize: e5m2 with block scaling", c, "e5m2", "block"); }

  /* mismatched shapes */
  { call c = q0; c.t[1].shape[1] = K - 1; BAD("quantize: xq [4,7] vs x [4,8]", c, "xq", "shape"); }
  { call c = q0; c.t[1] = llmk_tensor_1d(out + OUT_Q, LLMK_E4M3, M * K);
    BAD("quantize: xq 1-D", c, "xq", "dims"); }
  { call c = q0; c.t[2].shape[0] = M - 1; BAD("quantize: row scale [3]", c, "scale", "shape"); }
  { call c = q0; use_scaling(&c, LLMK_SCALING_COL); c.t[2].shape[0] = M;
    BAD("quantize: col scale [M] instead of [K]", c, "scale", "shape"); }
  { call c = q0; use_scaling(&c, LLMK_SCALING_TENSOR); c.t[2].shape[0] = 2;
    BAD("quantize: tensor scale [2]", c, "scale", "shape"); }
  { call c = q0; use_block(&c, 2, 4); c.t[2] = llmk_tensor_1d(out + OUT_S, LLMK_F32, 4);
    BAD("quantize: block scale 1-D", c, "scale", "dims"); }
  { call c = q0; use_block(&c, 2, 4); c.t[2] = llmk_tensor_2d(out + OUT_S, LLMK_F32, 2, 3, 3);
    BAD("quantize: block scale [2,3] instead of [2,2]", c, "scale", "shape"); }
  { call c = q0; use_block(&c, 3, 8); c.t[2] = llmk_tensor_2d(out + OUT_S, LLMK_F32, 1, 1, 1);
    BAD("quantize: block scale floor(M/bm) rows", c, "scale", "shape"); }
  { call c = q0; c.t[2].strides[0] = 2; BAD("quantize: scale stride 2", c, "scale", "contiguous"); }
  { call c = q0; c.t[0].ndim = 0; BAD("quantize: x ndim 0", c, "x", "ndim"); }
  { call c = q0; c.t[1].ndim = 5; BAD("quantize: xq ndim 5", c, "xq", "ndim"); }

  /* negative and overflowing sizes */
  { call c = q0; c.t[0].shape[0] = -1; BAD("quantize: x.shape[0] -1", c, "x", "shape"); }
  { call c = q0; c.t[1].shape[0] = -M; BAD("quantize: xq.shape[0] -4", c, "xq", "shape"); }
  { call c = q0; c.t[0].strides[0] = -K; BAD("quantize: x row stride -8", c, "x", "stride"); }
  { call c = q0; c.t[0].shape[0] = c.t[1].shape[0] = INT64_C(1) << 62;
    BAD("quantize: x.shape[0] 1<<62", c, "x", "shape"); }
  { call c = q0; int64_t g = INT64_C(1) << 30;
    c.t[0] = t3(in + IN_X, LLMK_F32, g, g, K, g * K, K);
    c.t[1] = t3(out + OUT_Q, LLMK_E4M3, g, g, K, g * K, K);
    BAD("quantize: x [2^30, 2^30, 8] rows overflow", c, "x", "overflow"); }
  { call c = q0; int64_t g = INT64_C(1) << 25;
    c.t[0] = llmk_tensor_2d(in + IN_X, LLMK_F32, g, g, g);
    c.t[1] = llmk_tensor_2d(out + OUT_Q, LLMK_E4M3, g, g, g);
    c.t[2].shape[0] = g;
    BAD("quantize: x [2^25, 2^25] extent overflow", c, "x", "overflow"); }
  { call c = q0; c.t[0].strides[0] = INT64_C(1) << 48;
    BAD("quantize: x row stride 2^48", c, "x", "overflow"); }

  /* strides */
  { call c = q0; c.t[0].strides[1] = 2; BAD("quantize: x last-dim stride 2", c, "x", "stride"); }
  { call c = q0; c.t[1].strides[1] = 0; BAD("quantize: xq last-dim stride 0", c, "xq", "stride"); }
  { call c = q0; c.t[0].strides[0] = K - 1; BAD("quantize: x row stride 7 < 8", c, "x", "stride"); }
  { call c = q0; c.t[1].strides[0] = 0; BAD("quantize: xq row stride 0", c, "xq", "stride"); }
  { call c = q0; c.t[0] = t3(in + IN_X, LLMK_F32, 2, 2, K, 3 * K, K);
    c.t[1] = t3(out + OUT_Q, LLMK_E4M3, 2, 2, K, 2 * K, K);
    BAD("quantize: x 3-D with a gap between batches", c, "x", "stride"); }
  { call c = q0; c.t[0] = t3(in + IN_X, LLMK_F32, 2, 2, K, 2 * K, K);
    c.t[1] = t3(out + OUT_Q, LLMK_E4M3, 2, 2, K, 2 * K + 4, K);
    BAD("quantize: xq 3-D with a gap between batches", c, "xq", "stride"); }
  /* [4,1,8] with strides [4,4,1]: rows 4 elements apart, i.e. overlapping
   * output rows, hidden behind a size-1 dim. */
  { call c = q0; c.t[0] = t3(in + IN_X, LLMK_F32, M, 1, K, K, K);
    c.t[1] = t3(out + OUT_Q, LLMK_E4M3, M, 1, K, K / 2, K / 2);
    BAD("quantize: xq [4,1,8] strides [4,4,1] (row pitch 4 < 8)", c, "xq", "stride"); }

  /* misaligned element pointers */
  { call c = q0; c.t[0].data = in + IN_X + 1; c.t[0].dtype = LLMK_BF16;
    BAD("quantize: bf16 x at an odd address", c, "x", "align"); }
  { call c = q0; c.t[0].data = in + IN_X + 2; BAD("quantize: f32 x at +2", c, "x", "align"); }
  { call c = q0; c.t[2].data = out + OUT_S + 1; BAD("quantize: f32 scale at +1", c, "scale", "align"); }
  { call c = q0; use_scaling(&c, LLMK_SCALING_TENSOR); c.d.scale_ub = (const float *)(in + IN_UB + 1);
    BAD("quantize: scale_ub at +1", c, "scale_ub", "align"); }
  { call c = q0; use_scaling(&c, LLMK_SCALING_TENSOR); c.d.num_rows = (const int64_t *)(in + IN_NR + 4);
    BAD("quantize: num_rows at +4", c, "num_rows", "align"); }

  /* block sizes and desc combinations */
  { call c = q0; use_block(&c, 1, 4); c.d.block_m = 0; BAD("quantize: block_m 0", c, "block", NULL); }
  { call c = q0; use_block(&c, 1, 4); c.d.block_k = -128; BAD("quantize: block_k -128", c, "block", NULL); }
  { call c = q0; use_block(&c, 1, 4); c.d.block_m = INT64_C(1) << 40;
    BAD("quantize: block_m 2^40", c, "block", NULL); }
  { call c = q0; c.d.num_rows = (const int64_t *)(in + IN_NR);
    BAD("quantize: num_rows with row scaling", c, "num_rows", "row"); }
  { call c = q0; use_block(&c, 2, 4); c.d.num_rows = (const int64_t *)(in + IN_NR);
    BAD("quantize: num_rows with block scaling", c, "num_rows", NULL); }

  /* overlapping tensors */
  { call c = q0; c.t[0].data = out + OUT_Q; c.t[1].data = out + OUT_Q + 16;
    BAD("quantize: x overlaps xq", c, NULL, "overlap"); }
  { call c = q0; c.t[0] = llmk_tensor_2d(out + OUT_Q, LLMK_BF16, M, K, K);
    BAD("quantize: in place (x == xq)", c, NULL, "overlap"); }
  { call c = q0; c.t[2].data = out + OUT_Q + 8; BAD("quantize: scale overlaps xq", c, NULL, "overlap"); }
}

static void dequantize_cases(llmk_handle h) {
  unsigned char *in = g_in, *out = g_out;
  const call d0 = dequant_call(h, in, out);

  { call c = d0; c.h = NULL; BAD("dequantize: NULL handle", c, "handle", "NULL"); }
  { call c = d0; c.nulls = NULL_DESC; BAD("dequantize: NULL desc", c, "desc", "NULL"); }
  { call c = d0; c.nulls = NULL_T0; BAD("dequantize: NULL xq", c, "xq", "NULL"); }
  { call c = d0; c.nulls = NULL_T1; BAD("dequantize: NULL scale", c, "scale", "NULL"); }
  { call c = d0; c.nulls = NULL_T2; BAD("dequantize: NULL y", c, "y", "NULL"); }
  { call c = d0; c.t[2].data = NULL; BAD("dequantize: y.data NULL", c, "y", "NULL"); }

  { call c = d0; c.t[0].dtype = LLMK_BF16; BAD("dequantize: xq bf16", c, "xq", "bf16"); }
  { call c = d0; c.t[1].dtype = LLMK_BF16; BAD("dequantize: scale bf16", c, "scale", "bf16"); }
  { call c = d0; c.t[2].dtype = LLMK_E4M3; BAD("dequantize: y e4m3", c, "y", "e4m3"); }
  { call c = d0; c.t[2].dtype = LLMK_F16; BAD("dequantize: y f16", c, "y", "f16"); }
  { call c = d0; c.t[2].dtype = (llmk_dtype)42; BAD("dequantize: y.dtype 42", c, "y", "dtype"); }
  { call c = d0; c.d.scaling = (llmk_scaling)9; BAD("dequantize: scaling 9", c, "scaling", NULL); }
  { call c = d0; c.t[0].dtype = LLMK_E5M2; use_scaling(&c, LLMK_SCALING_COL);
    BAD("dequantize: e5m2 with col scaling", c, "e5m2", NULL); }

  { call c = d0; c.t[2].shape[1] = K - 1; BAD("dequantize: y [4,7] vs xq [4,8]", c, "y", "shape"); }
  { call c = d0; c.t[2] = t3(out + OUT_Y, LLMK_F32, 1, M, K, M * K, K);
    BAD("dequantize: y 3-D vs xq 2-D", c, "y", "dims"); }
  { call c = d0; c.t[1].shape[0] = M + 1; BAD("dequantize: row scale [5]", c, "scale", "shape"); }
  { call c = d0; use_block(&c, 2, 4); c.t[1].shape[0] = 1;
    BAD("dequantize: block scale [1,2] instead of [2,2]", c, "scale", "shape"); }
  { call c = d0; use_block(&c, 2, 4); c.d.block_k = 0; BAD("dequantize: block_k 0", c, "block", NULL); }

  { call c = d0; c.t[2].shape[0] = c.t[0].shape[0] = -M; BAD("dequantize: shape[0] -4", c, "xq", "shape"); }
  { call c = d0; c.t[2].strides[1] = 2; BAD("dequantize: y last-dim stride 2", c, "y", "stride"); }
  { call c = d0; c.t[2].strides[0] = K / 2; BAD("dequantize: y row stride 4 < 8", c, "y", "stride"); }
  { call c = d0; c.t[0] = t3(in + IN_Q, LLMK_E4M3, 2, 2, K, 2 * K, K);
    c.t[2] = t3(out + OUT_Y, LLMK_F32, 2, 2, K, 3 * K, K);
    BAD("dequantize: y 3-D with a gap between batches", c, "y", "stride"); }
  { call c = d0; c.t[2].data = out + OUT_Y + 1; c.t[2].dtype = LLMK_BF16;
    BAD("dequantize: bf16 y at an odd address", c, "y", "align"); }
  { call c = d0; c.t[1].data = in + IN_S + 1; BAD("dequantize: f32 scale at +1", c, "scale", "align"); }

  { call c = d0; c.t[0].data = out + OUT_Y + 8; BAD("dequantize: y overlaps xq", c, NULL, "overlap"); }
  { call c = d0; c.t[1].data = out + OUT_Y + 4; BAD("dequantize: y overlaps scale", c, NULL, "overlap"); }
}

/* Valid edge cases next to the bad ones: these must be accepted. */
static void valid_edges(llmk_handle h) {
  unsigned char *in = g_in, *out = g_out;
  const call q0 = quant_call(h, in, out);
  llmk_status s;
  { call c = q0; c.t[0].data = c.t[1].data = NULL; c.t[2].data = NULL;
    c.t[0].shape[0] = c.t[1].shape[0] = c.t[2].shape[0] = 0;
    poison();
    s = do_call(&c);
    CHECK(s == LLMK_SUCCESS && arenas_intact(), "M = 0 with NULL data: %s %s", llmk_status_string(s),
          llmk_last_error()); }
  { call c = q0; c.t[0] = t3(in + IN_X, LLMK_F32, 2, 2, K, 4 * K, 2 * K);
    c.t[1] = t3(out + OUT_Q, LLMK_E4M3, 2, 2, K, 2 * K + 2 * K, 2 * K);
    s = do_call(&c);
    CHECK(s == LLMK_SUCCESS, "3-D x/xq with row pitch 16 > K: %s %s", llmk_status_string(s),
          llmk_last_error()); }
  /* [4,1,8] with strides [8,3,1]: the size-1 dim's stride is meaningless
   * (PyTorch's view rules); the rows are contiguous, so this is valid. */
  { call c = q0; c.t[0] = t3(in + IN_X, LLMK_F32, M, 1, K, K, 3);
    c.t[1] = t3(out + OUT_Q, LLMK_E4M3, M, 1, K, K, K);
    s = do_call(&c);
    CHECK(s == LLMK_SUCCESS, "x [4,1,8] strides [8,3,1] (contiguous rows): %s %s",
          llmk_status_string(s), llmk_last_error()); }
}

#ifdef LLMK_WITH_CUDA
/* CUDA handles: host and wrong-device pointers. */
static void gpu_cases(llmk_handle hcpu, int ndev) {
  llmk_handle hg = ae_gpu_begin();
  if (!hg) return;
  const call q0 = quant_call(hg, g_din, g_dout), d0 = dequant_call(hg, g_din, g_dout);
  { call c = q0; c.t[0].data = g_in + IN_X; BAD("cuda quantize: host x", c, "x", "host"); }
  { call c = q0; c.t[1].data = g_out + OUT_Q; BAD("cuda quantize: host xq", c, "xq", "host"); }
  { call c = q0; c.t[2].data = g_out + OUT_S; BAD("cuda quantize: host scale", c, "scale", "host"); }
  { call c = q0; use_scaling(&c, LLMK_SCALING_TENSOR); c.d.scale_ub = (const float *)(g_in + IN_UB);
    BAD("cuda quantize: host scale_ub", c, "scale_ub", "host"); }
  { call c = q0; use_scaling(&c, LLMK_SCALING_TENSOR); c.d.num_rows = (const int64_t *)(g_in + IN_NR);
    BAD("cuda quantize: host num_rows", c, "num_rows", "host"); }
  { call c = d0; c.t[0].data = g_in + IN_Q; BAD("cuda dequantize: host xq", c, "xq", "host"); }
  { call c = d0; c.t[1].data = g_in + IN_S; BAD("cuda dequantize: host scale", c, "scale", "host"); }
  { call c = d0; c.t[2].data = g_out + OUT_Y; BAD("cuda dequantize: host y", c, "y", "host"); }
  /* shape errors are caught before any device work */
  { call c = q0; c.t[2].shape[0] = M - 1; BAD("cuda quantize: row scale [3]", c, "scale", "shape"); }
  { call c = d0; c.t[2].strides[0] = K / 2; BAD("cuda dequantize: y row stride 4", c, "y", "stride"); }

  if (ndev >= 2) {
    int prev = 0;
    unsigned char *other = NULL;
    (void)cudaGetDevice(&prev);
    if (cudaSetDevice(1) == cudaSuccess && cudaMalloc((void **)&other, ARENA) == cudaSuccess) {
      (void)cudaSetDevice(prev);
      { call c = q0; c.t[0].data = other; BAD("cuda quantize: x on device 1", c, "x", "device"); }
      { call c = d0; c.t[2].data = other; BAD("cuda dequantize: y on device 1", c, "y", "device"); }
      (void)cudaFree(other);
    } else {
      (void)cudaSetDevice(prev);
      (void)cudaGetLastError();
      SKIP("cannot allocate on device 1");
    }
  } else {
    SKIP("one CUDA device: wrong-device pointer cases");
  }
  ae_gpu_end(hg, hcpu);
}
#endif

int main(void) {
  llmk_handle h = NULL, bogus = NULL;
  int ndev = 0;
  if (!ae_setup(&h, &bogus, &ndev)) TEST_END();
  quantize_cases(h, bogus);
  dequantize_cases(h);
  valid_edges(h);
#ifdef LLMK_WITH_CUDA
  if (ndev >= 1)
    gpu_cases(h, ndev);
  else
    SKIP("no CUDA device");
#else
  SKIP("no CUDA device");
#endif
  ae_teardown(h, bogus);
  TEST_END();
}
