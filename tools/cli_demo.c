/* `llmk demo`: quantize and dequantize Llama-3-70B-shaped weights and
 * activations with each scaling, and report the error against the bf16
 * original and the time of the quantization; then one linear layer in FP8
 * against BF16 (cli_demo_linear.c); then one decode step of the attention
 * block over BF16, FP8 and INT4 KV caches (cli_demo_attention.c, GPU only);
 * then one decode step of a whole Llama-3 8B and 70B decoder layer in FP8
 * against BF16 (cli_demo_layer.c); then one mixture-of-experts block in FP8
 * against BF16, Llama-4-Scout- and DeepSeek-V3-shaped (cli_demo_moe.c).
 * On a machine without a GPU it runs the CPU reference on shapes 8x smaller
 * in each dimension (the attention step at 2 sequences x 256 tokens, a tiny
 * layer) and shows errors only: no time is printed for the CPU. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

/* tools/cli_demo_attention.c */
int cli_demo_attention(llmk_handle h, int gpu);
/* tools/cli_demo_layer.c */
int cli_demo_layer(llmk_handle h, int gpu);
/* tools/cli_demo_moe.c */
int cli_demo_moe(llmk_handle h, int gpu);

typedef struct demo_tensor {
  const char *name;
  int64_t m, k;
  int weight;
} demo_tensor;

/* Llama-3-70B: hidden 8192, 64 query / 8 KV heads of 128, MLP 28672. */
static const demo_tensor tensors[] = {
    {"x decode (16 tokens)", 16, 8192, 0},
    {"x prefill (4096 tokens)", 4096, 8192, 0},
    {"W_qkv", 10240, 8192, 1},
    {"W_o", 8192, 8192, 1},
    {"W_up", 28672, 8192, 1},
    {"W_down", 8192, 28672, 1},
};

int cli_demo(int argc, char **argv) {
  static const char *const flags[] = {"--cpu", NULL};
  if (cli_wants_help(argc, argv)) return cli_usage(stdout, "demo"), 0;
  if (!cli_check_options("demo", argc, argv, NULL, flags)) return 2;
  int n = 0;
  llmk_cuda_device_count(&n);
  const int gpu = n > 0 && !cli_flag(argc, argv, "--cpu");
  const int shrink = gpu ? 1 : 8;
  llmk_handle h;
  if ((gpu ? llmk_create_cuda(0, &h) : llmk_create_cpu(&h)) != LLMK_SUCCESS) {
    fprintf(stderr, "demo: %s\n", llmk_last_error());
    return 1;
  }
  printf("llmk demo: FP8 (e4m3) quantization of Llama-3-70B-shaped tensors, bf16 input\n"
         "Shows how much each scaling (per tensor, row, block) loses when a tensor is stored in FP8%s.\n",
         gpu ? ", and how fast llmk quantizes it" : "");
  if (gpu)
    printf("backend: CUDA on %s\n\n", cli_device_name());
  else
    printf("backend: CPU reference (no GPU visible); shapes are 1/%d of the real ones per dim\n\n", shrink);
  printf("%-26s %-13s %-14s %12s %12s %10s\n", "tensor", "shape", "scaling", "rel. error", "time (us)", "GB/s");
  int rc = 0;
  for (size_t ti = 0; ti < sizeof tensors / sizeof tensors[0]; ti++) {
    const demo_tensor *t = &tensors[ti];
    const int64_t M = (t->m + shrink - 1) / shrink, K = t->k / shrink, nx = M * K;
    uint16_t *hx = malloc((size_t)nx * 2);
    float *hy = malloc((size_t)nx * 4);
    /* weights ~ N(0, 0.02^2), activations ~ N(0, 1); 0.1% outliers 100x larger */
    cli_fill_random(hx, LLMK_BF16, nx, t->weight ? 0.02f : 1.0f, 1e-3, 1000 + ti);
    struct { const char *name; llmk_scaling s; int64_t bm, bk; } sc[] = {
        {"tensor", LLMK_SCALING_TENSOR, 0, 0},
        {"row", LLMK_SCALING_ROW, 0, 0},
        {t->weight ? "block 128x128" : "block 1x128", LLMK_SCALING_BLOCK, t->weight ? 128 : 1, 128}};
    for (size_t si = 0; si < 3; si++) {
      int64_t ns = sc[si].s == LLMK_SCALING_TENSOR ? 1
                   : sc[si].s == LLMK_SCALING_ROW  ? M
                                                   : ((M + sc[si].bm - 1) / sc[si].bm) * ((K + 127) / 128);
      void *x = hx, *q, *s, *y = hy;
      if (gpu) {
        x = cli_dev_alloc((size_t)nx * 2);
        y = cli_dev_alloc((size_t)nx * 4);
        if (!x || !y || !cli_h2d(x, hx, (size_t)nx * 2)) {
          fprintf(stderr, "demo: device allocation failed\n");
          return 1;
        }
      }
      q = gpu ? cli_dev_alloc((size_t)nx) : malloc((size_t)nx);
      s = gpu ? cli_dev_alloc((size_t)ns * 4) : malloc((size_t)ns * 4);
      cli_quant_op o = {h, {LLMK_QUANTIZE_DESC_SIZE, sc[si].s, sc[si].bm, sc[si].bk, NULL, NULL}, llmk_tensor_2d(x, LLMK_BF16, M, K, K),
                   llmk_tensor_2d(q, LLMK_E4M3, M, K, K), llmk_tensor_1d(s, LLMK_F32, ns)};
      if (sc[si].s == LLMK_SCALING_BLOCK)
        o.s = llmk_tensor_2d(s, LLMK_F32, (M + sc[si].bm - 1) / sc[si].bm, (K + 127) / 128, (K + 127) / 128);
      llmk_tensor ty = llmk_tensor_2d(y, LLMK_F32, M, K, K);
      cli_timing tm = {0, 0};
      llmk_status st;
      if (gpu) {
        st = cli_time_op(cli_run_quant, &o, 20, 100, &tm);
      } else {
        st = cli_run_quant(&o, NULL);
      }
      if (!st) st = llmk_dequantize_fp8(h, &o.d, &o.q, &o.s, &ty, NULL);
      if (!st && gpu && !cli_d2h(hy, y, (size_t)nx * 4)) st = LLMK_ERR_CUDA;
      if (st) {
        fprintf(stderr, "demo: %s\n", llmk_last_error());
        rc = 1;
      } else {
        double num = 0, den = 0;
#pragma omp parallel for reduction(+ : num, den)
        for (int64_t i = 0; i < nx; i++) {
          double a = llmk_bf16_to_float(hx[i]), d = hy[i] - a;
          num += d * d;
          den += a * a;
        }
        char shape[32];
        snprintf(shape, sizeof shape, "%lldx%lld", (long long)M, (long long)K);
        /* the CPU reference's times say nothing about a GPU's: not shown */
        const double bytes = nx * 3.0 * (sc[si].s == LLMK_SCALING_TENSOR ? 5.0 / 3.0 : 1.0);
        const double us = tm.graph_us > 0 && tm.graph_us < tm.median_us ? tm.graph_us : tm.median_us;
        char t_us[16] = "-", gbs[16] = "-";
        if (gpu) snprintf(t_us, sizeof t_us, "%.1f", us), snprintf(gbs, sizeof gbs, "%.0f", bytes / (us * 1e-6) / 1e9);
        printf("%-26s %-13s %-14s %12.3e %12s %10s\n", t->name, shape, sc[si].name, sqrt(num / den), t_us, gbs);
      }
      if (gpu) {
        cli_dev_free(x);
        cli_dev_free(y);
        cli_dev_free(q);
        cli_dev_free(s);
      } else {
        free(q);
        free(s);
      }
    }
    free(hx);
    free(hy);
  }
  printf("\nrel. error = ||dequantize(quantize(x)) - x|| / ||x|| (Frobenius). A group's scale is\n"
         "set by its largest finite element, so the 0.1%% outliers (100x) scattered at random\n"
         "coarsen every group they land in: 1x128 groups isolate them best; a 128x128 block\n"
         "holds ~16 of them, a 1024-wide row about one. %s\n",
         gpu ? "time: CUDA-graph replay (or event median, whichever is less) on the GPU."
             : "CPU reference backend: errors only (its times would say nothing about a GPU's).");
  rc |= cli_demo_linear(h, gpu, shrink);
  rc |= cli_demo_attention(h, gpu);
  rc |= cli_demo_layer(h, gpu);
  rc |= cli_demo_moe(h, gpu);
  llmk_destroy(h);
  return rc;
}
