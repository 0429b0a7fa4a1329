/* The second part of `llmk demo`: one Llama-3-70B linear layer, the MLP's
 * up projection (W [28672, 8192]), in FP8 and in BF16 on the same random
 * weights and activations. FP8: W quantized once per output row (offline,
 * as an engine loads weights); per call the activations are quantized per
 * row and multiplied with llmk_gemm_fp8 (row-wise scales). BF16:
 * llmk_gemm_bf16. Printed: the error of each output against an fp64
 * reference on sampled rows, and the time of each path (the FP8 path
 * including its activation quantization) with the speedup. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

#define LIN_N 28672
#define LIN_K 8192

typedef struct lin_op {
  llmk_handle h;
  llmk_quant_desc qd;
  llmk_gemm_desc gd;
  llmk_tensor x, xq, xs, wq, ws, w, y8, y16;
} lin_op;

static llmk_status run_fp8(void *ctx, void *stream) {
  lin_op *o = ctx;
  llmk_status s = llmk_quantize_fp8(o->h, &o->qd, &o->x, &o->xq, &o->xs, stream);
  return s ? s : llmk_gemm_fp8(o->h, &o->gd, &o->xq, &o->wq, &o->xs, &o->ws, NULL, &o->y8, stream);
}

static llmk_status run_bf16(void *ctx, void *stream) {
  lin_op *o = ctx;
  return llmk_gemm_bf16(o->h, LLMK_GEMM_AUTO, &o->x, &o->w, NULL, &o->y16, stream);
}

/* Device or host buffer, as the handle needs. */
static void *buf(int gpu, size_t n) { return gpu ? cli_dev_alloc(n) : malloc(n ? n : 1); }
/* Copies n bytes from the host into a buffer of buf(); 0 on failure. */
static int buf_put(int gpu, void *dst, const void *src, size_t n) {
  if (gpu) return cli_h2d(dst, src, n);
  memcpy(dst, src, n);
  return 1;
}
static void buf_free(int gpu, void *p) {
  if (gpu)
    cli_dev_free(p);
  else
    free(p);
}

/* ||y - ref|| / ||ref|| over the sampled rows, ref in fp64 from the bf16 inputs. */
static double rel_err(const uint16_t *y, const double *ref, int64_t rows, int64_t N) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < rows * N; i++) {
    const double d = llmk_bf16_to_float(y[i]) - ref[i];
    num += d * d, den += ref[i] * ref[i];
  }
  return sqrt(num / den);
}

static int one_m(llmk_handle h, int gpu, int shrink, int64_t M, const uint16_t *hw, void *w, void *wq, void *ws) {
  const int64_t N = LIN_N / shrink, K = LIN_K / shrink;
  uint16_t *hx = malloc((size_t)(M * K) * 2);
  cli_fill_random(hx, LLMK_BF16, M * K, 1.0f, 1e-3, 77 + (uint64_t)M);
  void *x = buf(gpu, (size_t)(M * K) * 2), *xq = buf(gpu, (size_t)(M * K)), *xs = buf(gpu, (size_t)M * 4);
  void *y8 = buf(gpu, (size_t)(M * N) * 2), *y16 = buf(gpu, (size_t)(M * N) * 2);
  int rc = 1;
  if (!hx || !x || !xq || !xs || !y8 || !y16 || !buf_put(gpu, x, hx, (size_t)(M * K) * 2)) {
    fprintf(stderr, "demo: allocation failed\n");
    goto out;
  }
  lin_op o = {h, {LLMK_SCALING_ROW, 0, 0, NULL, NULL}, {LLMK_SCALING_ROW, LLMK_ACCUM_DEFAULT, LLMK_GEMM_AUTO},
              llmk_tensor_2d(x, LLMK_BF16, M, K, K), llmk_tensor_2d(xq, LLMK_E4M3, M, K, K),
              llmk_tensor_1d(xs, LLMK_F32, M), llmk_tensor_2d(wq, LLMK_E4M3, N, K, K), llmk_tensor_1d(ws, LLMK_F32, N),
              llmk_tensor_2d(w, LLMK_BF16, N, K, K), llmk_tensor_2d(y8, LLMK_BF16, M, N, N),
              llmk_tensor_2d(y16, LLMK_BF16, M, N, N)};
  cli_timing t8 = {0, 0}, t16 = {0, 0};
  llmk_status s;
  if (gpu) {
    s = cli_time_op(run_fp8, &o, 20, M <= 128 ? 20 : 0, &t8);
    if (!s) s = cli_time_op(run_bf16, &o, 20, M <= 128 ? 20 : 0, &t16);
  } else {
    double t0 = cli_now_s();
    s = run_fp8(&o, NULL);
    t8.median_us = (cli_now_s() - t0) * 1e6, t0 = cli_now_s();
    if (!s) s = run_bf16(&o, NULL);
    t16.median_us = (cli_now_s() - t0) * 1e6;
  }
  if (s) {
    fprintf(stderr, "demo: %s\n", llmk_last_error());
    goto out;
  }
  /* fp64 reference on up to 8 rows spread over M */
  const int64_t rows = M < 8 ? M : 8;
  uint16_t *h8 = malloc((size_t)(rows * N) * 2), *h16 = malloc((size_t)(rows * N) * 2);
  double *ref = malloc((size_t)(rows * N) * sizeof(double));
  int ok = h8 && h16 && ref;
  for (int64_t r = 0; ok && r < rows; r++) {
    const int64_t m = r * (M - 1) / (rows > 1 ? rows - 1 : 1);
    const size_t off = (size_t)(m * N) * 2, nb = (size_t)N * 2;
    if (gpu)
      ok = cli_d2h(h8 + r * N, (char *)y8 + off, nb) && cli_d2h(h16 + r * N, (char *)y16 + off, nb);
    else
      memcpy(h8 + r * N, (char *)y8 + off, nb), memcpy(h16 + r * N, (char *)y16 + off, nb);
#pragma omp parallel for
    for (int64_t n = 0; n < N; n++) {
      double acc = 0;
      for (int64_t k = 0; k < K; k++)
        acc += (double)llmk_bf16_to_float(hx[m * K + k]) * llmk_bf16_to_float(hw[n * K + k]);
      ref[r * N + n] = acc;
    }
  }
  if (ok) {
    const double us8 = t8.graph_us > 0 && t8.graph_us < t8.median_us ? t8.graph_us : t8.median_us;
    const double us16 = t16.graph_us > 0 && t16.graph_us < t16.median_us ? t16.graph_us : t16.median_us;
    char shape[48];
    snprintf(shape, sizeof shape, "%lldx%lldx%lld", (long long)M, (long long)N, (long long)K);
    char speedup[16] = "-"; /* CPU reference times say nothing about speed */
    if (gpu) snprintf(speedup, sizeof speedup, "%.2fx", us16 / us8);
    printf("%-20s %-10.3e %-10.3e %12.1f %12.1f %9s\n", shape, rel_err(h8, ref, rows, N),
           rel_err(h16, ref, rows, N), us8, us16, speedup);
    rc = 0;
  } else {
    fprintf(stderr, "demo: copy or allocation failed\n");
  }
  free(h8), free(h16), free(ref);
out:
  free(hx);
  buf_free(gpu, x), buf_free(gpu, xq), buf_free(gpu, xs), buf_free(gpu, y8), buf_free(gpu, y16);
  return rc;
}

int cli_demo_linear(llmk_handle h, int gpu, int shrink) {
  const int64_t N = LIN_N / shrink, K = LIN_K / shrink;
  printf("\nLlama-3-70B MLP up projection, W [%lld, %lld]: FP8 (row-wise, llmk) vs BF16\n", (long long)N,
         (long long)K);
  uint16_t *hw = malloc((size_t)(N * K) * 2);
  void *w = buf(gpu, (size_t)(N * K) * 2), *wq = buf(gpu, (size_t)(N * K)), *ws = buf(gpu, (size_t)N * 4);
  int rc = 1;
  if (!hw || !w || !wq || !ws) {
    fprintf(stderr, "demo: allocation failed\n");
    goto out;
  }
  cli_fill_random(hw, LLMK_BF16, N * K, 0.02f, 1e-3, 4242);
  if (!buf_put(gpu, w, hw, (size_t)(N * K) * 2)) goto out;
  /* the weights, quantized once per output row */
  const llmk_quant_desc qd = {LLMK_SCALING_ROW, 0, 0, NULL, NULL};
  const llmk_tensor tw = llmk_tensor_2d(w, LLMK_BF16, N, K, K), twq = llmk_tensor_2d(wq, LLMK_E4M3, N, K, K);
  const llmk_tensor tws = llmk_tensor_1d(ws, LLMK_F32, N);
  if (llmk_quantize_fp8(h, &qd, &tw, &twq, &tws, NULL)) {
    fprintf(stderr, "demo: %s\n", llmk_last_error());
    goto out;
  }
  printf("%-20s %-10s %-10s %12s %12s %9s\n", "M x N x K", "FP8 err", "BF16 err", "FP8 us", "BF16 us", "speedup");
  rc = 0;
  static const int64_t Ms[] = {16, 4096};
  for (size_t i = 0; i < sizeof Ms / sizeof Ms[0]; i++) rc |= one_m(h, gpu, shrink, Ms[i] / (i ? shrink : 1), hw, w, wq, ws);
  printf("err = ||y - y64|| / ||y64|| on 8 sampled rows, y64 the fp64 product of the bf16 inputs\n"
         "(activations with 0.1%% outliers, as above). FP8 us includes quantizing the activations per\n"
         "row. %s\n",
         gpu ? "M = 16: CUDA-graph replay; M = 4096: event medians, L2 flushed."
             : "CPU reference: single calls, no speedup shown.");
out:
  free(hw);
  buf_free(gpu, w), buf_free(gpu, wq), buf_free(gpu, ws);
  return rc;
}
