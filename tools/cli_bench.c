/* `llmk bench quantize`: median time (CUDA events, L2 flushed between
 * calls), graph-replayed time, GB/s and the fraction of the device-to-device
 * copy bandwidth measured in the same run. */
#include <stdlib.h>
#include <string.h>

#include "cli_allreduce.h"
#include "cli_util.h"

static int parse_dtype(const char *s, llmk_dtype *dt) {
  static const struct { const char *n; llmk_dtype d; } t[] = {
      {"f32", LLMK_F32}, {"f16", LLMK_F16}, {"bf16", LLMK_BF16}, {"e4m3", LLMK_E4M3}, {"e5m2", LLMK_E5M2}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (!strcmp(s, t[i].n)) return *dt = t[i].d, 1;
  return 0;
}

static int bench_quantize(int argc, char **argv) {
  const char *scaling = cli_arg(argc, argv, "--scaling", "row");
  int64_t M = cli_int(argc, argv, "--m", 16384), K = cli_int(argc, argv, "--k", 8192);
  int reps = (int)cli_int(argc, argv, "--reps", 50);
  int use_cpu = cli_flag(argc, argv, "--cpu"), json = cli_flag(argc, argv, "--json");
  llmk_dtype xt, qt;
  if (!parse_dtype(cli_arg(argc, argv, "--dtype", "bf16"), &xt) ||
      !parse_dtype(cli_arg(argc, argv, "--fp8", "e4m3"), &qt)) {
    fprintf(stderr, "bench: bad --dtype or --fp8\n");
    return 2;
  }
  cli_quant_op b;
  memset(&b, 0, sizeof b);
  b.d = (llmk_quantize_desc)LLMK_QUANTIZE_DESC_INIT;
  long long bm = 1, bk = 128;
  sscanf(cli_arg(argc, argv, "--block", "1x128"), "%lldx%lld", &bm, &bk);
  int64_t ns;
  char op[64];
  if (!strcmp(scaling, "row")) b.d.scaling = LLMK_SCALING_ROW, ns = M;
  else if (!strcmp(scaling, "tensor")) b.d.scaling = LLMK_SCALING_TENSOR, ns = 1;
  else if (!strcmp(scaling, "col")) b.d.scaling = LLMK_SCALING_COL, ns = K;
  else if (!strcmp(scaling, "block")) b.d.scaling = LLMK_SCALING_BLOCK, ns = ((M + bm - 1) / bm) * ((K + bk - 1) / bk);
  else {
    fprintf(stderr, "bench: --scaling must be row, tensor, col or block\n");
    return 2;
  }
  if (M < 1 || K < 1 || bm < 1 || bk < 1 || reps < 1) {
    fprintf(stderr, "bench: sizes and --reps must be positive\n");
    return 2;
  }
  b.d.block_m = bm;
  b.d.block_k = bk;
  if (b.d.scaling == LLMK_SCALING_BLOCK) snprintf(op, sizeof op, "quantize_fp8_block_%lldx%lld", bm, bk);
  else snprintf(op, sizeof op, "quantize_fp8_%s", scaling);
  if (qt == LLMK_E5M2) strncat(op, "_e5m2", sizeof op - strlen(op) - 1); /* no e4m3 peer matches it */

  const size_t es = llmk_dtype_size(xt), nx = (size_t)(M * K);
  void *hx = malloc(nx * es);
  cli_fill_random(hx, xt, (int64_t)nx, 1.0f, 1e-3, 42);
  int n = 0;
  llmk_cuda_device_count(&n);
  if (!n && !use_cpu) {
    fprintf(stderr, "bench: no CUDA device; timing the CPU reference instead (--cpu)\n");
    use_cpu = 1;
  }
  llmk_status s = use_cpu ? llmk_create_cpu(&b.h) : llmk_create_cuda(0, &b.h);
  if (s) {
    fprintf(stderr, "bench: %s\n", llmk_last_error());
    return 1;
  }
  void *x = hx, *q = NULL, *sc = NULL;
  if (use_cpu) {
    q = malloc(nx);
    sc = malloc((size_t)ns * 4);
  } else {
    x = cli_dev_alloc(nx * es);
    q = cli_dev_alloc(nx);
    sc = cli_dev_alloc((size_t)ns * 4);
    if (!x || !q || !sc || !cli_h2d(x, hx, nx * es)) {
      fprintf(stderr, "bench: device allocation failed\n");
      return 1;
    }
  }
  b.x = llmk_tensor_2d(x, xt, M, K, K);
  b.q = llmk_tensor_2d(q, qt, M, K, K);
  b.s = b.d.scaling == LLMK_SCALING_BLOCK
            ? llmk_tensor_2d(sc, LLMK_F32, (M + bm - 1) / bm, (K + bk - 1) / bk, (K + bk - 1) / bk)
            : llmk_tensor_1d(sc, LLMK_F32, ns);
  /* Bytes the op must move: x read (twice where the scale needs the whole
   * tensor or column before any output: tensor and col), q and scales written. */
  const int two_pass = b.d.scaling == LLMK_SCALING_TENSOR || b.d.scaling == LLMK_SCALING_COL;
  const double bytes = (double)nx * es * (two_pass ? 2 : 1) + (double)nx + ns * 4.0;
  cli_timing t = {0, 0};
  double copy = 0;
  if (use_cpu) {
    double t0 = cli_now_s();
    int r = 0;
    for (; r < reps && !s; r++) s = cli_run_quant(&b, NULL);
    t.median_us = (cli_now_s() - t0) / r * 1e6;
  } else {
    s = cli_time_op(cli_run_quant, &b, reps, 100, &t);
    copy = cli_copy_gbps((size_t)1 << 30);
  }
  if (s) {
    fprintf(stderr, "bench: %s\n", llmk_last_error());
    return 1;
  }
  const double gbps = bytes / (t.median_us * 1e-6) / 1e9;
  if (json) {
    printf("{\"op\": \"%s\", \"device\": \"%s\", \"shape\": {\"m\": %lld, \"k\": %lld}, \"dtype\": \"%s\", "
           "\"fp8\": \"%s\", \"llmk_us\": %.3f, ",
           op, use_cpu ? "cpu" : cli_device_name(), (long long)M, (long long)K, llmk_dtype_name(xt),
           llmk_dtype_name(qt), t.median_us);
    if (t.graph_us > 0) printf("\"llmk_us_graph\": %.3f, ", t.graph_us);
    printf("\"backend\": \"%s\", \"gbps\": %.1f, \"bytes\": %.0f, \"copy_gbps\": %.1f, \"frac_copy\": %.4f}\n",
           use_cpu ? "cpu" : "own", gbps, bytes, copy, copy > 0 ? gbps / copy : 0.0);
  } else {
    printf("%-28s %6lld x %-6lld %-4s->%-4s  %10.2f us", op, (long long)M, (long long)K,
           llmk_dtype_name(xt), llmk_dtype_name(qt), t.median_us);
    if (t.graph_us > 0) printf("  (graph %.2f us)", t.graph_us);
    printf("  %8.1f GB/s", gbps);
    if (copy > 0) printf("  %5.1f%% of copy (%.0f GB/s)", 100 * gbps / copy, copy);
    printf("\n");
  }
  if (!use_cpu) {
    cli_dev_free(x);
    cli_dev_free(q);
    cli_dev_free(sc);
  } else {
    free(q);
    free(sc);
  }
  free(hx);
  llmk_destroy(b.h);
  return 0;
}

/* tools/cli_bench_attention.c */
int cli_bench_attention(int argc, char **argv);
int cli_bench_rope(int argc, char **argv);
int cli_bench_kvcache(int argc, char **argv);

int cli_bench(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "gemm")) return cli_bench_gemm(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "attention")) return cli_bench_attention(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "rope")) return cli_bench_rope(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "kvcache")) return cli_bench_kvcache(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "allreduce")) return cli_bench_allreduce(argc - 1, argv + 1);
  if (argc < 2 || strcmp(argv[1], "quantize")) {
    fprintf(stderr, "usage: llmk bench quantize|gemm|attention|rope|kvcache|allreduce [options] (see llmk --help)\n");
    return 2;
  }
  return bench_quantize(argc - 1, argv + 1);
}
