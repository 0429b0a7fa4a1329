/* The second part of `llmk demo`: one Llama-3-70B linear layer, the MLP's
 * up projection (W [28672, 8192]), in FP8 and in BF16 on the same random
 * weights and activations. FP8, two recipes: row-wise (W quantized once
 * per output row, as an engine loads weights; per call the activations
 * per row) and block-wise (W in 128x128 blocks, activations in 1x128
 * groups), each multiplied with llmk_gemm_fp8. BF16: llmk_gemm_bf16.
 * Printed: the error of each output against an fp64 reference on sampled
 * rows, and the time of each path (the FP8 paths including their
 * activation quantization) with the speedup. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

#define LIN_N 28672
#define LIN_K 8192

typedef struct lin_op {
  llmk_handle h;
  llmk_quantize_desc qd;
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

/* The weights quantized once, for one FP8 recipe. */
typedef struct lin_weights {
  llmk_scaling sc;
  void *wq, *ws;
} lin_weights;

/* Time of one op: the graph replay where it is faster, else the event median. */
static double best_us(const cli_timing *t) {
  return t->graph_us > 0 && t->graph_us < t->median_us ? t->graph_us : t->median_us;
}

/* The outlier channels: one in 512 (channel 77 of each 512), the same in every row. */
#define OUTLIER_EVERY 512
static int64_t outlier_channel(int c) { return (int64_t)c * OUTLIER_EVERY + 77; }

/* Multiplies the outlier channels (columns) of a [rows, K] bf16 matrix by f. */
static void scale_outlier_channels(uint16_t *a, int64_t rows, int64_t K, double f) {
  for (int64_t r = 0; r < rows; r++)
    for (int c = 0; outlier_channel(c) < K; c++) {
      uint16_t *e = &a[r * K + outlier_channel(c)];
      *e = llmk_float_to_bf16((float)(llmk_bf16_to_float(*e) * f));
    }
}

/* One M: activations with 0.1% of them 100x, or, when outlier > 0, with
 * the outlier channels of every row that many times the rest instead (the
 * case block scales exist for). */
static int one_m(llmk_handle h, int gpu, int shrink, int64_t M, double outlier, const uint16_t *hw, void *w,
                 const lin_weights *lw) {
  const int64_t N = LIN_N / shrink, K = LIN_K / shrink, KB = (K + 127) / 128;
  uint16_t *hx = malloc((size_t)(M * K) * 2);
  if (hx) {
    cli_fill_random(hx, LLMK_BF16, M * K, 1.0f, outlier > 0 ? 0 : 1e-3, 77 + (uint64_t)M);
    if (outlier > 0) scale_outlier_channels(hx, M, K, outlier);
  }
  void *x = buf(gpu, (size_t)(M * K) * 2), *xq = buf(gpu, (size_t)(M * K)), *xs = buf(gpu, (size_t)(M * KB) * 4);
  void *y8[2] = {buf(gpu, (size_t)(M * N) * 2), buf(gpu, (size_t)(M * N) * 2)}, *y16 = buf(gpu, (size_t)(M * N) * 2);
  int rc = 1;
  if (!hx || !x || !xq || !xs || !y8[0] || !y8[1] || !y16 || !buf_put(gpu, x, hx, (size_t)(M * K) * 2)) {
    fprintf(stderr, "demo: allocation failed\n");
    goto out;
  }
  /* o[0]: row-wise, o[1]: block-wise (1x128 activation groups, 128x128 weight blocks) */
  lin_op o[2];
  for (int b = 0; b < 2; b++) {
    const lin_op t = {h,
                      {LLMK_QUANTIZE_DESC_SIZE, lw[b].sc, 1, 128, NULL, NULL},
                      {LLMK_GEMM_DESC_SIZE, lw[b].sc, LLMK_ACCUM_DEFAULT, LLMK_GEMM_AUTO, 0},
                      llmk_tensor_2d(x, LLMK_BF16, M, K, K),
                      llmk_tensor_2d(xq, LLMK_E4M3, M, K, K),
                      b ? llmk_tensor_2d(xs, LLMK_F32, M, KB, KB) : llmk_tensor_1d(xs, LLMK_F32, M),
                      llmk_tensor_2d(lw[b].wq, LLMK_E4M3, N, K, K),
                      b ? llmk_tensor_2d(lw[b].ws, LLMK_F32, (N + 127) / 128, KB, KB) : llmk_tensor_1d(lw[b].ws, LLMK_F32, N),
                      llmk_tensor_2d(w, LLMK_BF16, N, K, K),
                      llmk_tensor_2d(y8[b], LLMK_BF16, M, N, N),
                      llmk_tensor_2d(y16, LLMK_BF16, M, N, N)};
    o[b] = t;
  }
  cli_timing t8[2] = {{0, 0}, {0, 0}}, t16 = {0, 0};
  llmk_status s = LLMK_SUCCESS;
  for (int b = 0; b < 3 && !s; b++) {
    cli_timing *t = b < 2 ? &t8[b] : &t16;
    llmk_status (*fn)(void *, void *) = b < 2 ? run_fp8 : run_bf16;
    if (gpu) {
      s = cli_time_op(fn, &o[b < 2 ? b : 0], 20, M <= 128 ? 20 : 0, t);
    } else {
      const double t0 = cli_now_s();
      s = fn(&o[b < 2 ? b : 0], NULL);
      t->median_us = (cli_now_s() - t0) * 1e6;
    }
  }
  if (s) {
    fprintf(stderr, "demo: %s\n", llmk_last_error());
    goto out;
  }
  /* fp64 reference on up to 8 rows spread over M */
  const int64_t rows = M < 8 ? M : 8;
  uint16_t *h8[2] = {malloc((size_t)(rows * N) * 2), malloc((size_t)(rows * N) * 2)};
  uint16_t *h16 = malloc((size_t)(rows * N) * 2);
  double *ref = malloc((size_t)(rows * N) * sizeof(double));
  int ok = h8[0] && h8[1] && h16 && ref;
  for (int64_t r = 0; ok && r < rows; r++) {
    const int64_t m = r * (M - 1) / (rows > 1 ? rows - 1 : 1);
    const size_t off = (size_t)(m * N) * 2, nb = (size_t)N * 2;
    void *const src[3] = {(char *)y8[0] + off, (char *)y8[1] + off, (char *)y16 + off};
    uint16_t *const dst[3] = {h8[0] + r * N, h8[1] + r * N, h16 + r * N};
    for (int b = 0; b < 3 && ok; b++) {
      if (gpu)
        ok = cli_d2h(dst[b], src[b], nb);
      else
        memcpy(dst[b], src[b], nb);
    }
#pragma omp parallel for
    for (int64_t n = 0; n < N; n++) {
      double acc = 0;
      for (int64_t k = 0; k < K; k++)
        acc += (double)llmk_bf16_to_float(hx[m * K + k]) * llmk_bf16_to_float(hw[n * K + k]);
      ref[r * N + n] = acc;
    }
  }
  if (ok) {
    char shape[64];
    snprintf(shape, sizeof shape, "%lldx%lldx%lld%s", (long long)M, (long long)N, (long long)K,
             outlier > 0 ? " *" : "");
    for (int b = 0; b < 2; b++) {
      /* the CPU reference's times say nothing about a GPU's: not shown */
      char speedup[16] = "-", us8[16] = "-", us16[16] = "-";
      if (gpu) {
        snprintf(speedup, sizeof speedup, "%.2fx", best_us(&t16) / best_us(&t8[b]));
        snprintf(us8, sizeof us8, "%.1f", best_us(&t8[b])), snprintf(us16, sizeof us16, "%.1f", best_us(&t16));
      }
      printf("%-20s %-7s %-10.3e %-10.3e %12s %12s %9s\n", shape, b ? "block" : "row", rel_err(h8[b], ref, rows, N),
             rel_err(h16, ref, rows, N), us8, us16, speedup);
    }
    rc = 0;
  } else {
    fprintf(stderr, "demo: copy or allocation failed\n");
  }
  free(h8[0]), free(h8[1]), free(h16), free(ref);
out:
  free(hx);
  buf_free(gpu, x), buf_free(gpu, xq), buf_free(gpu, xs), buf_free(gpu, y8[0]), buf_free(gpu, y8[1]);
  buf_free(gpu, y16);
  return rc;
}

/* The weights of one run: bf16 on the host and the device, and quantized
 * once for each FP8 recipe (per output row; 128x128 blocks). */
typedef struct lin_layer {
  uint16_t *hw;
  void *w;
  lin_weights lw[2];
} lin_layer;

static void layer_free(int gpu, lin_layer *l) {
  free(l->hw);
  buf_free(gpu, l->w);
  for (int b = 0; b < 2; b++) buf_free(gpu, l->lw[b].wq), buf_free(gpu, l->lw[b].ws);
}

/* Random weights (with 0.1% of them 100x, or, when outlier > 0, none);
 * outlier > 0 divides the outlier channels' columns by it,
 * so that the outlier activations' products stay as large as the others'
 * (otherwise they alone would set the output and its error). 0 on failure. */
static int layer_init(llmk_handle h, int gpu, int64_t N, int64_t K, double outlier, lin_layer *l) {
  const int64_t KB = (K + 127) / 128, NB = (N + 127) / 128;
  l->hw = malloc((size_t)(N * K) * 2), l->w = buf(gpu, (size_t)(N * K) * 2);
  const lin_weights lw[2] = {{LLMK_SCALING_ROW, buf(gpu, (size_t)(N * K)), buf(gpu, (size_t)N * 4)},
                             {LLMK_SCALING_BLOCK, buf(gpu, (size_t)(N * K)), buf(gpu, (size_t)(NB * KB) * 4)}};
  l->lw[0] = lw[0], l->lw[1] = lw[1];
  if (!l->hw || !l->w || !lw[0].wq || !lw[0].ws || !lw[1].wq || !lw[1].ws) {
    fprintf(stderr, "demo: allocation failed\n");
    return 0;
  }
  cli_fill_random(l->hw, LLMK_BF16, N * K, 0.02f, outlier > 0 ? 0 : 1e-3, 4242);
  if (outlier > 0) scale_outlier_channels(l->hw, N, K, 1.0 / outlier);
  if (!buf_put(gpu, l->w, l->hw, (size_t)(N * K) * 2)) return 0;
  for (int b = 0; b < 2; b++) {
    const llmk_quantize_desc qd = {LLMK_QUANTIZE_DESC_SIZE, lw[b].sc, 128, 128, NULL, NULL};
    const llmk_tensor tw = llmk_tensor_2d(l->w, LLMK_BF16, N, K, K), twq = llmk_tensor_2d(lw[b].wq, LLMK_E4M3, N, K, K);
    const llmk_tensor tws = b ? llmk_tensor_2d(lw[b].ws, LLMK_F32, NB, KB, KB) : llmk_tensor_1d(lw[b].ws, LLMK_F32, N);
    if (llmk_quantize_fp8(h, &qd, &tw, &twq, &tws, NULL)) {
      fprintf(stderr, "demo: %s\n", llmk_last_error());
      return 0;
    }
  }
  return 1;
}

int cli_demo_linear(llmk_handle h, int gpu, int shrink) {
  const int64_t N = LIN_N / shrink, K = LIN_K / shrink;
  printf("\nLlama-3-70B MLP up projection, W [%lld, %lld]: FP8 (llmk; row-wise and block-wise) vs BF16\n"
         "Shows how far an FP8 linear layer's output is from the exact product, next to BF16's%s.\n",
         (long long)N, (long long)K, gpu ? ", and how much faster it runs" : "");
  printf("%-20s %-7s %-10s %-10s %12s %12s %9s\n", "M x N x K", "FP8", "FP8 err", "BF16 err", "FP8 us", "BF16 us",
         "speedup");
  int rc = 0;
  static const int64_t Ms[] = {16, 4096};
  for (int run = 0; run < 2 && !rc; run++) {
    /* run 1: outlier channels at 1e5x, with their weights at 1e-5x */
    const double outlier = run ? 1e5 : 0;
    lin_layer l = {NULL, NULL, {{LLMK_SCALING_ROW, NULL, NULL}, {LLMK_SCALING_BLOCK, NULL, NULL}}};
    if (!layer_init(h, gpu, N, K, outlier, &l))
      rc = 1;
    else if (!run)
      for (size_t i = 0; i < sizeof Ms / sizeof Ms[0]; i++)
        rc |= one_m(h, gpu, shrink, Ms[i] / (i ? shrink : 1), 0, l.hw, l.w, l.lw);
    else
      rc |= one_m(h, gpu, shrink, 16, outlier, l.hw, l.w, l.lw);
    layer_free(gpu, &l);
  }
  printf("err = ||y - y64|| / ||y64|| on 8 sampled rows, y64 the fp64 product of the bf16 inputs\n"
         "(activations with 0.1%% outliers, as above). *: outlier channels instead, 1 in %d, at\n"
         "1e5x in every row (their weights at 1e-5x, no other outliers): a row's scale follows its\n"
         "outliers and its other values fall below e4m3's normal range; 1x128 groups keep all but\n"
         "the outliers' groups. Scattered 100x outliers (the other rows) fit e4m3's exponent range:\n"
         "there the two recipes err alike, either ahead by a few tens of percent with the draw.\n"
         "FP8 us includes quantizing the activations (per row, or in 1x128 groups).\n%s\n",
         OUTLIER_EVERY,
         gpu ? "M = 16: CUDA-graph replay; M = 4096: event medians, L2 flushed."
             : "CPU reference backend: errors only (its times would say nothing about a GPU's).");
  return rc;
}
