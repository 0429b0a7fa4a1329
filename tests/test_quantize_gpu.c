/* GPU quantize / dequantize against the CPU reference, bit for bit. The
 * sweeps are op-check cases (tools/opcheck/ops_quantize.c), run here on
 * CUDA through the harness (outputs, guards and row padding poisoned, two
 * poisons per side, CUDA compared with the CPU): every scaling and block
 * shape (the band kernel's too), M x K from 1 x 1 to 4097 x 1000 and
 * 3 x 70000, f32 / f16 / bf16 inputs, e5m2 where allowed, fresh random
 * inputs of six distributions (normal, outliers, equal rows, zero rows,
 * NaN/Inf, wide exponents), aligned, odd and misaligned pitches and
 * starts, scale_ub below and above amax and num_rows as device pointers,
 * large and decode-sized shapes on the fast paths, and dequantization to
 * f32 and bf16. This file adds the hardware FP8 conversion over all 2^32
 * floats (per-tensor quantization with the scale pinned to 1) and
 * CUDA-graph replay with new bound values.
 * LLMK_TEST_QUICK=1 runs the quick subset of the cases and skips the
 * exhaustive part (for compute-sanitizer). */
#include <math.h>

#include "harness.h"
#include "llmk.h"
#include "opcheck_util.h"

static llmk_handle cpu, gpu;

#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>

/* All 2^32 float bit patterns through the GPU's per-tensor path with the
 * scale pinned to exactly 1 (an extra row of FP8_MAX values and scale_ub =
 * FP8_MAX), so q = cvt(x): checked against the host encoder. */
static void exhaustive_cvt(void) {
  const int64_t K = 1 << 14, M = (1 << 14) + 1, n = M * K;
  float *hx = malloc((size_t)n * 4);
  uint8_t *hq = malloc((size_t)n);
  void *dx, *dq, *ds, *dub;
  T_CU(cudaMalloc(&dx, (size_t)n * 4));
  T_CU(cudaMalloc(&dq, (size_t)n));
  T_CU(cudaMalloc(&ds, 4));
  T_CU(cudaMalloc(&dub, 4));
  llmk_tensor tx = llmk_tensor_2d(dx, LLMK_F32, M, K, K), ts = llmk_tensor_1d(ds, LLMK_F32, 1);
  int64_t bad[2] = {0, 0};
  for (int64_t chunk = 0; chunk < 16; chunk++) {
    const int64_t base = chunk << 28;
    for (int64_t i = 0; i < (INT64_C(1) << 28); i++) {
      uint32_t b = (uint32_t)(base + i);
      memcpy(&hx[i], &b, 4);
    }
    for (int fmt = 0; fmt < 2; fmt++) {
      float fmax = fmt ? 57344.0f : 448.0f;
      for (int64_t i = INT64_C(1) << 28; i < n; i++) hx[i] = fmax;
      T_CU(cudaMemcpy(dx, hx, (size_t)n * 4, cudaMemcpyHostToDevice));
      T_CU(cudaMemcpy(dub, &fmax, 4, cudaMemcpyHostToDevice));
      llmk_dtype qt = fmt ? LLMK_E5M2 : LLMK_E4M3;
      llmk_tensor tq = llmk_tensor_2d(dq, qt, M, K, K);
      llmk_quantize_desc d = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_TENSOR, 0, 0, dub, NULL};
      llmk_status s = llmk_quantize_fp8(gpu, &d, &tx, &tq, &ts, NULL);
      CHECK(s == LLMK_SUCCESS, "exhaustive: %s", llmk_last_error());
      float scale = 0;
      T_CU(cudaMemcpy(hq, dq, (size_t)n, cudaMemcpyDeviceToHost));
      T_CU(cudaMemcpy(&scale, ds, 4, cudaMemcpyDeviceToHost));
      CHECK(scale == 1.0f, "exhaustive: scale pinned to 1, got %a", scale);
      int64_t nbad = 0, first = 0;
#pragma omp parallel for reduction(+ : nbad)
      for (int64_t i = 0; i < (INT64_C(1) << 28); i++) nbad += hq[i] != llmk_float_to_fp8(hx[i], qt);
      while (nbad && hq[first] == llmk_float_to_fp8(hx[first], qt)) first++;
      if (nbad && !bad[fmt]) {
        uint32_t b;
        memcpy(&b, &hx[first], 4);
        fprintf(stderr, "  exhaustive %s: bits 0x%08x: gpu 0x%02x host 0x%02x\n", llmk_dtype_name(qt),
                b, hq[first], llmk_float_to_fp8(hx[first], qt));
      }
      bad[fmt] += nbad;
    }
  }
  CHECK(bad[0] == 0, "exhaustive: %lld floats convert to a different e4m3 code on the GPU", (long long)bad[0]);
  CHECK(bad[1] == 0, "exhaustive: %lld floats convert to a different e5m2 code on the GPU", (long long)bad[1]);
  T_CU(cudaFree(dx));
  T_CU(cudaFree(dq));
  T_CU(cudaFree(ds));
  T_CU(cudaFree(dub));
  free(hx);
  free(hq);
}

/* Per-tensor in a captured graph, replayed with new scale_ub / num_rows
 * values: M x K picks the path (64 x 1024: one cluster; 512 x 1024: the
 * amax / quantize / finalize kernels). */
static void graph_replay(int64_t M, int64_t K) {
  uint16_t *hx = malloc(M * K * 2);
  for (int64_t i = 0; i < M * K; i++) hx[i] = llmk_float_to_bf16(t_rand_normal() + (i / K == 40 ? 50.0f : 0.0f));
  void *dx, *dq, *ds, *dub, *dnr;
  T_CU(cudaMalloc(&dx, M * K * 2));
  T_CU(cudaMalloc(&dq, M * K));
  T_CU(cudaMalloc(&ds, 8));
  T_CU(cudaMalloc(&dub, 4));
  T_CU(cudaMalloc(&dnr, 8));
  T_CU(cudaMemcpy(dx, hx, M * K * 2, cudaMemcpyHostToDevice));
  cudaStream_t st;
  T_CU(cudaStreamCreate(&st));
  llmk_tensor tx = llmk_tensor_2d(dx, LLMK_BF16, M, K, K), tq = llmk_tensor_2d(dq, LLMK_E4M3, M, K, K);
  llmk_tensor ts = llmk_tensor_1d(ds, LLMK_F32, 1);
  llmk_quantize_desc d = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_TENSOR, 0, 0, (const float *)dub, (const int64_t *)dnr};
  float ub = 1e30f;
  int64_t nr = M;
  T_CU(cudaMemcpy(dub, &ub, 4, cudaMemcpyHostToDevice));
  T_CU(cudaMemcpy(dnr, &nr, 8, cudaMemcpyHostToDevice));
  cudaGraph_t g;
  cudaGraphExec_t ge;
  T_CU(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
  llmk_status s = llmk_quantize_fp8(gpu, &d, &tx, &tq, &ts, st);
  T_CU(cudaStreamEndCapture(st, &g));
  CHECK(s == LLMK_SUCCESS, "capture: %s", llmk_last_error());
  T_CU(cudaGraphInstantiate(&ge, g, 0));
  /* replay with three (ub, num_rows) settings; compare with the CPU each time */
  float ubs[3] = {1e30f, 1.0f, 1e30f};
  int64_t nrs[3] = {M, M, 40};
  llmk_tensor cx = llmk_tensor_2d(hx, LLMK_BF16, M, K, K);
  for (int i = 0; i < 3; i++) {
    T_CU(cudaMemcpy(dub, &ubs[i], 4, cudaMemcpyHostToDevice));
    T_CU(cudaMemcpy(dnr, &nrs[i], 8, cudaMemcpyHostToDevice));
    T_CU(cudaGraphLaunch(ge, st));
    T_CU(cudaStreamSynchronize(st));
    float gsc, csc;
    uint8_t *gq = malloc(M * K), *cq = malloc(M * K);
    T_CU(cudaMemcpy(&gsc, ds, 4, cudaMemcpyDeviceToHost));
    T_CU(cudaMemcpy(gq, dq, M * K, cudaMemcpyDeviceToHost));
    llmk_tensor cqt = llmk_tensor_2d(cq, LLMK_E4M3, M, K, K), cst = llmk_tensor_1d(&csc, LLMK_F32, 1);
    llmk_quantize_desc cd = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_TENSOR, 0, 0, &ubs[i], &nrs[i]};
    CHECK(llmk_quantize_fp8(cpu, &cd, &cx, &cqt, &cst, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
    CHECK(gsc == csc && !memcmp(gq, cq, M * K), "graph replay %d: scale gpu %g cpu %g", i, gsc, csc);
    free(gq);
    free(cq);
  }
  T_CU(cudaGraphExecDestroy(ge));
  T_CU(cudaGraphDestroy(g));
  T_CU(cudaStreamDestroy(st));
  T_CU(cudaFree(dx));
  T_CU(cudaFree(dq));
  T_CU(cudaFree(ds));
  T_CU(cudaFree(dub));
  T_CU(cudaFree(dnr));
  free(hx);
}

#endif

int main(void) {
  t_seed();
  oc_ctx x;
  if (!oc_init(&x, 1)) {
    CHECK(0, "llmk_create_cpu: %s", llmk_last_error());
    TEST_END();
  }
  if (!x.gpu) {
    SKIP("%s: quantize / dequantize on the GPU", x.why_no_gpu);
    oc_fini(&x);
    TEST_END();
  }
  cpu = x.cpu, gpu = x.gpu;
  oc_list l = {0};
  oc_quantize_cases(&l, t_quick(), t_rand_u64());
  const int n = t_oc_run_list(&x, &l, t_quick());
  printf("%d GPU-vs-CPU cases\n", n);
  oc_list_free(&l);
#ifdef LLMK_WITH_CUDA
  graph_replay(64, 1024);
  graph_replay(512, 1024);
  if (t_quick())
    SKIP("exhaustive GPU conversion check (LLMK_TEST_QUICK=1)");
  else
    exhaustive_cvt();
#endif
  oc_fini(&x);
  TEST_END();
}
