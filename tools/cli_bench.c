/* `llmk bench quantize`: one op-check case of llmk_quantize_fp8
 * (tools/opcheck/ops_quantize.c) for the shape: checked bit for bit
 * against the CPU backend (outputs and guards poisoned, two runs), then
 * timed: median time (CUDA events, L2 flushed between calls),
 * graph-replayed time, GB/s and the fraction of the device-to-device copy
 * bandwidth measured in the same run. With --cpu (or no GPU), the CPU
 * backend is checked and timed (wall clock). */
#include <stdlib.h>
#include <string.h>

#include "cli_allreduce.h"
#include "cli_util.h"
#include "opcheck/opcheck.h"

static int parse_dtype(const char *s, llmk_dtype *dt) {
  static const struct { const char *n; llmk_dtype d; } t[] = {
      {"f32", LLMK_F32}, {"f16", LLMK_F16}, {"bf16", LLMK_BF16}, {"e4m3", LLMK_E4M3}, {"e5m2", LLMK_E5M2}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (!strcmp(s, t[i].n)) return *dt = t[i].d, 1;
  return 0;
}

static int bench_quantize(int argc, char **argv) {
  static const char *const valued[] = {"--scaling", "--m", "--k", "--dtype", "--block", "--fp8", "--reps", NULL};
  static const char *const flags[] = {"--cpu", "--json", NULL};
  if (cli_wants_help(argc, argv)) return cli_usage(stdout, "bench quantize"), 0;
  if (!cli_check_options("bench quantize", argc, argv, valued, flags)) return 2;
  const char *scaling = cli_arg(argc, argv, "--scaling", "row");
  int64_t M = cli_int(argc, argv, "--m", 16384), K = cli_int(argc, argv, "--k", 8192);
  int reps = (int)cli_int(argc, argv, "--reps", 50);
  int use_cpu = cli_flag(argc, argv, "--cpu"), json = cli_flag(argc, argv, "--json");
  oc_quant_params p;
  memset(&p, 0, sizeof p);
  if (!parse_dtype(cli_arg(argc, argv, "--dtype", "bf16"), &p.xt) ||
      !parse_dtype(cli_arg(argc, argv, "--fp8", "e4m3"), &p.qt)) {
    fprintf(stderr, "bench: bad --dtype or --fp8\n");
    return 2;
  }
  long long bm = 1, bk = 128;
  sscanf(cli_arg(argc, argv, "--block", "1x128"), "%lldx%lld", &bm, &bk);
  char op[64];
  if (!strcmp(scaling, "row")) p.scaling = LLMK_SCALING_ROW;
  else if (!strcmp(scaling, "tensor")) p.scaling = LLMK_SCALING_TENSOR;
  else if (!strcmp(scaling, "col")) p.scaling = LLMK_SCALING_COL;
  else if (!strcmp(scaling, "block")) p.scaling = LLMK_SCALING_BLOCK;
  else {
    fprintf(stderr, "bench: --scaling must be row, tensor, col or block\n");
    return 2;
  }
  if (M < 1 || K < 1 || bm < 1 || bk < 1 || reps < 1) {
    fprintf(stderr, "bench: sizes and --reps must be positive\n");
    return 2;
  }
  p.bm = bm, p.bk = bk, p.M = M, p.K = K;
  p.dist = OC_D_BENCH; /* N(0, 1), 1e-3 of the values 100x larger */
  p.num_rows = -2000;  /* no num_rows, no scale_ub */
  if (p.scaling == LLMK_SCALING_BLOCK) snprintf(op, sizeof op, "quantize_fp8_block_%lldx%lld", bm, bk);
  else snprintf(op, sizeof op, "quantize_fp8_%s", scaling);
  if (p.qt == LLMK_E5M2) strncat(op, "_e5m2", sizeof op - strlen(op) - 1); /* no e4m3 peer matches it */

  int n = 0;
  llmk_cuda_device_count(&n);
  if (!n && !use_cpu) {
    fprintf(stderr, "bench: no CUDA device; timing the CPU reference instead (--cpu)\n");
    use_cpu = 1;
  }
  oc_ctx x;
  if (!oc_init(&x, !use_cpu)) return 1;
  if (!use_cpu && !x.gpu) {
    fprintf(stderr, "bench: %s\n", x.why_no_gpu);
    oc_fini(&x);
    return 1;
  }
  oc_case c;
  oc_quantize_case(&c, &p, 42);
  oc_opts o = OC_OPTS_INIT;
  o.perf = 1, o.reps = reps, o.graph_calls = 100, o.cpu_only = use_cpu;
  oc_result r;
  oc_run(&x, &c, &o, &r);
  oc_fini(&x);
  if (r.failed || !(r.median_us > 0)) {
    fprintf(stderr, "bench: %s\n", r.failure[0] ? r.failure : "the case did not run");
    return 1;
  }
  const double copy = use_cpu ? 0 : cli_copy_gbps((size_t)1 << 30);
  /* Bytes the op must move (the case's): x read (twice where the scale needs
   * the whole tensor or column before any output: tensor and col), q and
   * scales written. */
  const double bytes = c.bytes, gbps = bytes / (r.median_us * 1e-6) / 1e9;
  if (json) {
    printf("{\"op\": \"%s\", \"device\": \"%s\", \"shape\": {\"m\": %lld, \"k\": %lld}, \"dtype\": \"%s\", "
           "\"fp8\": \"%s\", \"llmk_us\": %.3f, ",
           op, use_cpu ? "cpu" : cli_device_name(), (long long)M, (long long)K, llmk_dtype_name(p.xt),
           llmk_dtype_name(p.qt), r.median_us);
    if (r.graph_us > 0) printf("\"llmk_us_graph\": %.3f, ", r.graph_us);
    printf("\"backend\": \"%s\", \"gbps\": %.1f, \"bytes\": %.0f, \"copy_gbps\": %.1f, \"frac_copy\": %.4f}\n",
           use_cpu ? "cpu" : "own", gbps, bytes, copy, copy > 0 ? gbps / copy : 0.0);
  } else {
    printf("%-28s %6lld x %-6lld %-4s->%-4s  %10.2f us", op, (long long)M, (long long)K,
           llmk_dtype_name(p.xt), llmk_dtype_name(p.qt), r.median_us);
    if (r.graph_us > 0) printf("  (graph %.2f us)", r.graph_us);
    printf("  %8.1f GB/s", gbps);
    if (copy > 0) printf("  %5.1f%% of copy (%.0f GB/s)", 100 * gbps / copy, copy);
    printf("\n");
  }
  return 0;
}

/* tools/cli_bench_attention.c */
int cli_bench_attention(int argc, char **argv);
int cli_bench_rope(int argc, char **argv);
int cli_bench_kvcache(int argc, char **argv);
/* tools/cli_bench_ops.c */
int cli_bench_ops(int argc, char **argv);

int cli_bench(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "gemm")) return cli_bench_gemm(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "attention")) return cli_bench_attention(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "rope")) return cli_bench_rope(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "kvcache")) return cli_bench_kvcache(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "allreduce")) return cli_bench_allreduce(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "ops")) return cli_bench_ops(argc - 1, argv + 1);
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return cli_usage(stdout, "bench"), 0;
  if (argc < 2 || strcmp(argv[1], "quantize")) {
    if (argc < 2) fprintf(stderr, "llmk bench: which op?\n");
    else fprintf(stderr, "llmk bench: unknown op '%s'\n", argv[1]);
    cli_usage(stderr, "bench");
    return 2;
  }
  return bench_quantize(argc - 1, argv + 1);
}
