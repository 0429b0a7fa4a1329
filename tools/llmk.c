/* llmk: the command-line tool. `llmk check`, `llmk bench <op> ...`, `llmk demo`. */
#include <stdio.h>
#include <string.h>

#include "cli_allreduce.h"
#include "cli_util.h"

static void usage(void) {
  printf(
      "usage: llmk <command> [options]\n"
      "  check                       build and device report\n"
      "  demo [--cpu]                quantize Llama-3-70B-shaped tensors: error and speed\n"
      "  bench quantize --scaling row|tensor|col|block --m M --k K [--dtype bf16|f16|f32]\n"
      "                 [--block BMxBK] [--fp8 e4m3|e5m2] [--reps N] [--cpu] [--json]\n"
      "  bench gemm [--dtype e4m3|bf16] --scaling row|tensor|block --m M --n N --k K [--backend auto|own|cublaslt]\n"
      "             [--accum default|fast|fp32] [--llama] [--reps N] [--check-rows R] [--json]\n"
      "  bench attention [--b B --t T | --shapes B:T,... | --sweep] [--hq 64 --hkv 8 --d 128]\n"
      "                  [--format bf16|fp8|fp8_tensor|int4] [--group 32|128] [--page-size 0|16|32|64]\n"
      "                  [--splits N] [--fill write|random] [--check 0|1] [--list] [--cpu] [--json]\n"
      "                               decode attention over a KV cache (llmk bench attention --help)\n"
      "  bench rope --t T [--h H --d D] [--dtype bf16|f32] [--style interleaved|neox] [--inplace] [--json]\n"
      "  bench kvcache --t T [--seqs S] [--hq --hkv --d] [--format F] [--group G] [--page-size P] [--json]\n"
      "                               fused rope + QKV write of T prefill tokens into the cache\n"
      "  bench allreduce [-b 1K] [-e 64M] [-f 2] [-G] [--ranks N] [--share-gpu] [--dtype bf16|f16|f32]\n"
      "                  [--algo auto|oneshot|twoshot|nccl] [--residual] [--json FILE]\n"
      "                               all-reduce across the GPUs, one process each, vs NCCL (--help)\n"
      "  bench ops [--op NAME] [--json] [--perf] [--quick] [--seed S] [--reps N] [--cpu] [--list]\n"
      "                               every op's op-check cases, CUDA checked against the CPU; timed with --perf\n"
      "  tune gemm [--scaling row|tensor|block|bf16|both|all] [--reps N] [--min-m M] [--max-m M]\n"
      "            [--shapes MxNxK,...] [--verbose]\n"
      "                               time both backends on the Llama shapes; prints src/cuda/gemm_table.inc\n"
      "  tune allreduce [-b 1K] [-e 64M] [--ranks N] [--write src/core/allreduce_table.inc]\n"
      "                               time one-shot, two-shot and NCCL on this node's GPUs; fit the thresholds\n");
}

int cli_check(int argc, char **argv) {
  (void)argc, (void)argv;
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

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    usage();
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "check")) return cli_check(argc - 1, argv + 1);
  if (!strcmp(argv[1], "bench")) return cli_bench(argc - 1, argv + 1);
  if (!strcmp(argv[1], "demo")) return cli_demo(argc - 1, argv + 1);
  if (!strcmp(argv[1], "tune") && argc >= 3 && !strcmp(argv[2], "gemm")) return cli_tune_gemm(argc - 2, argv + 2);
  if (!strcmp(argv[1], "tune") && argc >= 3 && !strcmp(argv[2], "allreduce"))
    return cli_tune_allreduce(argc - 2, argv + 2);
  fprintf(stderr, "llmk: unknown command '%s'\n", argv[1]);
  usage();
  return 2;
}
