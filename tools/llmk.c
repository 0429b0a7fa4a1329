/* llmk: the command-line tool. `llmk check`, `llmk bench <op> ...`, `llmk demo`. */
#include <stdio.h>
#include <string.h>

#include "cli_allreduce.h"
#include "cli_util.h"

/* Every command: its name, its usage line(s) and what it does. `llmk
 * --help`, `llmk help [command]` and each command's --help print from here
 * (bench attention, kvcache, rope and allreduce and tune allreduce print
 * their longer usage themselves). */
typedef struct cli_command {
  const char *name, *usage, *what;
} cli_command;

static const cli_command k_commands[] = {
    {"check", "check", "build and device report"},
    {"demo", "demo [--cpu]",
     "Llama-3 shapes in FP8 against BF16: quantization error per scaling, an FP8 linear layer, one decode step of\n"
     "attention over BF16/FP8/INT4 caches and of a whole decoder layer (the CPU backend at smaller shapes, errors\n"
     "only, without a GPU)"},
    {"help", "help [command]", "this list, or one command's usage"},
    {"bench quantize",
     "bench quantize --scaling row|tensor|col|block --m M --k K [--dtype bf16|f16|f32]\n"
     "                 [--block BMxBK] [--fp8 e4m3|e5m2] [--reps N] [--cpu] [--json]",
     "llmk_quantize_fp8 checked against the CPU backend, then timed (GB/s, fraction of the copy bandwidth)"},
    {"bench gemm",
     "bench gemm [--dtype e4m3|bf16] --scaling row|tensor|block (--m M --n N --k K | --llama)\n"
     "             [--backend auto|own|cublaslt] [--accum default|fast|fp32] [--reps N] [--check-rows R]\n"
     "             [--peak TFLOPS] [--json]\n"
     "  bench gemm --grouped [--dtype e4m3|bf16] [--scaling row|block] [--model all|deepseek-v3|llama4-maverick|\n"
     "             llama4-scout|mixtral-8x7b] [--which gate_up|down|both] [--batch B] [--routing uniform|skewed]\n"
     "             [--layout stacked|masked] [--reps N] [--json]",
     "llmk_gemm_fp8 / llmk_gemm_bf16 checked against the CPU backend, then timed (TFLOP/s, roofline fraction);\n"
     "--grouped: llmk_gemm_grouped on mixture-of-experts expert shapes with a simulated router"},
    {"bench attention",
     "bench attention [--b B --t T | --shapes B:T,... | --sweep] [--hq 64 --hkv 8 --d 128]\n"
     "                  [--format bf16|fp8|fp8_tensor|int4] [--group 32|128] [--page-size 0|16|32|64]\n"
     "                  [--splits N] [--fill write|random] [--check 0|1] [--list] [--cpu] [--json]",
     "decode attention over a KV cache"},
    {"bench rope", "bench rope --t T [--h H --d D] [--dtype bf16|f32] [--style interleaved|neox] [--inplace] [--json]",
     "llmk_rope on T tokens"},
    {"bench kvcache", "bench kvcache --t T [--seqs S] [--hq --hkv --d] [--format F] [--group G] [--page-size P] [--json]",
     "fused rope + QKV write of T prefill tokens into the cache"},
    {"bench allreduce",
     "bench allreduce [-b 1K] [-e 64M] [-f 2] [-G] [--ranks N] [--share-gpu] [--dtype bf16|f16|f32]\n"
     "                  [--algo auto|oneshot|twoshot|nccl] [--residual] [--json FILE]",
     "all-reduce across the GPUs, one process each, vs NCCL"},
    {"bench ops", "bench ops [--op NAME] [--json] [--perf] [--quick] [--seed S] [--reps N] [--cpu] [--list]",
     "every op's op-check cases, CUDA checked against the CPU; timed with --perf"},
    {"tune gemm",
     "tune gemm [--scaling row|tensor|block|bf16|both|all] [--reps N] [--min-m M] [--max-m M]\n"
     "            [--shapes MxNxK,...] [--lt-algos N] [--dump FILE.jsonl] [--verbose]",
     "time both backends on the Llama shapes; prints src/cuda/gemm_table.inc"},
    {"tune allreduce", "tune allreduce [-b 1K] [-e 64M] [--ranks N] [--write src/core/allreduce_table.inc]",
     "time one-shot, two-shot and NCCL on this node's GPUs; fit the thresholds"},
};
#define N_COMMANDS ((int)(sizeof k_commands / sizeof k_commands[0]))

static void print_command(FILE *f, const cli_command *c) {
  fprintf(f, "  %s\n", c->usage);
  for (const char *w = c->what; *w;) { /* the description, indented, line by line */
    const char *e = strchr(w, '\n');
    const int n = e ? (int)(e - w) : (int)strlen(w);
    fprintf(f, "      %.*s\n", n, w);
    w += n + (e ? 1 : 0);
  }
}

/* cmd: a command ("bench gemm"), or a group ("bench", "tune": its commands). */
int cli_usage(FILE *f, const char *cmd) {
  int found = 0;
  if (!cmd) fprintf(f, "usage: llmk <command> [options]   (llmk help <command>, llmk <command> --help)\n");
  for (int i = 0; i < N_COMMANDS; i++) {
    const char *n = k_commands[i].name;
    const size_t l = cmd ? strlen(cmd) : 0;
    if (cmd && strcmp(n, cmd) && !(strncmp(n, cmd, l) == 0 && n[l] == ' ')) continue;
    if (cmd && !found) fprintf(f, "usage: llmk\n");
    print_command(f, &k_commands[i]);
    found = 1;
  }
  return found || !cmd;
}

static int dispatch(int argc, char **argv);

/* `llmk help [command words]`: that command's own --help. */
static int help(int argc, char **argv) {
  if (argc < 2) return cli_usage(stdout, NULL), 0;
  char *args[8];
  int n = 0;
  for (int i = 1; i < argc && n < 6; i++) args[n++] = argv[i];
  args[n++] = (char *)"--help";
  args[n] = NULL;
  return dispatch(n, args);
}

int cli_check(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) return cli_usage(stdout, "check"), 0;
  if (!cli_check_options("check", argc, argv, NULL, NULL)) return 2;
  llmk_build_info b = LLMK_BUILD_INFO_INIT;
  llmk_get_build_info(&b);
  printf("llmk %d.%d.%d\n", b.version_major, b.version_minor, b.version_patch);
  if (b.has_cuda)
    printf("built with CUDA %d.%d (cuBLAS %d.%d.%d headers, NCCL %d), kernels for %s\n",
           b.cuda_version / 1000, (b.cuda_version % 1000) / 10, b.cublas_version / 10000,
           (b.cublas_version / 100) % 100, b.cublas_version % 100, b.nccl_version, b.cuda_archs);
  else
    printf("built without CUDA: CPU reference backend only\n");
  int n = 0;
  llmk_cuda_device_count(&n);
  printf("visible CUDA devices: %d\n", n);
  for (int d = 0; d < n; d++) {
    llmk_device_info i = LLMK_DEVICE_INFO_INIT;
    if (llmk_cuda_device_info(d, &i) != LLMK_SUCCESS) {
      printf("  device %d: %s\n", d, llmk_last_error());
      continue;
    }
    printf("  device %d: %s, sm_%d%d, %d SMs, %.1f GiB, L2 %.0f MiB%s\n", d, i.name, i.cc_major,
           i.cc_minor, i.sm_count, i.total_memory / 1073741824.0, i.l2_bytes / 1048576.0,
           i.supported ? "" : " (not Hopper: llmk ops return NOT_SUPPORTED)");
  }
  if (n == 0) printf("  (no GPU: `llmk demo` and the tests use the CPU backend)\n");
  return 0;
}

/* argv[0] is the command's first word. */
static int dispatch(int argc, char **argv) {
  const char *c = argv[0];
  if (!strcmp(c, "-h") || !strcmp(c, "--help")) return cli_usage(stdout, NULL), 0;
  if (!strcmp(c, "help")) return help(argc, argv);
  if (!strcmp(c, "check")) return cli_check(argc, argv);
  if (!strcmp(c, "bench")) return cli_bench(argc, argv);
  if (!strcmp(c, "demo")) return cli_demo(argc, argv);
  if (!strcmp(c, "tune")) {
    if (argc >= 2 && !strcmp(argv[1], "gemm")) return cli_tune_gemm(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "allreduce")) return cli_tune_allreduce(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return cli_usage(stdout, "tune"), 0;
    fprintf(stderr, argc < 2 ? "llmk tune: which? gemm or allreduce\n" : "llmk tune: unknown command '%s'\n",
            argc < 2 ? "" : argv[1]);
    cli_usage(stderr, "tune");
    return 2;
  }
  fprintf(stderr, "llmk: unknown command '%s'\n", c);
  cli_usage(stderr, NULL);
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    cli_usage(stderr, NULL);
    return 2;
  }
  return dispatch(argc - 1, argv + 1);
}
