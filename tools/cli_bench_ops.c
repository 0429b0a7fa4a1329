/* `llmk bench ops [--op NAME] [--json] [--perf]`: the op-check cases
 * (tools/opcheck) of every op, or of one: each is run on the CPU backend
 * and on CUDA with poisoned outputs and guards and CUDA compared with the
 * CPU (always); --perf also times it on CUDA (events with L2 flushed, and
 * CUDA-graph replay) and reports GB/s. Without a Hopper GPU the cases run
 * on the CPU only (timed on the CPU with --perf).
 * Options: --quick (the quick subset), --seed S (the fuzzed shapes and
 * data), --reps N (timed calls), --cpu (no CUDA), --list (names only).
 * Exit status 1 if a check failed. */
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "opcheck/opcheck.h"

/* One JSON string (case names hold no quotes or backslashes, but be safe). */
static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') putchar('\\');
    putchar(*s);
  }
  putchar('"');
}

static void print_row(const oc_case *c, const oc_result *r, int json, int cpu_only, const char *device) {
  const char *verdict = r->failed ? "FAIL" : r->skipped && !r->gpu_ran && !cpu_only ? "cpu-only" : "ok";
  if (!json) {
    printf("%-8s %-20s %s", verdict, c->op, c->name);
    if (r->median_us > 0) printf("  %.2f us", r->median_us);
    if (r->graph_us > 0) printf(" (graph %.2f us)", r->graph_us);
    if (r->gbps > 0) printf("  %.1f GB/s", r->gbps);
    printf("\n");
    return;
  }
  printf("{\"op\": ");
  json_str(c->op);
  printf(", \"case\": ");
  json_str(c->name);
  printf(", \"device\": ");
  json_str(device);
  printf(", \"shape\": {");
  for (int i = 0; i < c->nkeys; i++) printf("%s\"%s\": %lld", i ? ", " : "", c->key[i], (long long)c->val[i]);
  printf("}, \"dtype\": ");
  json_str(c->dtype);
  printf(", \"result\": \"%s\", \"checked\": %s", r->failed ? "fail" : "pass",
         !r->failed && (r->gpu_ran || cpu_only) ? "true" : "false");
  if (r->median_us > 0) printf(", \"llmk_us\": %.3f", r->median_us);
  if (r->graph_us > 0) printf(", \"llmk_us_graph\": %.3f", r->graph_us);
  if (r->gbps > 0) printf(", \"gbps\": %.1f", r->gbps);
  printf(", \"bytes\": %.0f, \"backend\": \"%s\"}\n", c->bytes, cpu_only ? "cpu" : "cuda");
}

int cli_bench_ops(int argc, char **argv) {
  static const char *const valued[] = {"--op", "--reps", "--seed", NULL};
  static const char *const flags[] = {"--json", "--perf", "--quick", "--list", "--cpu", NULL};
  if (cli_wants_help(argc, argv)) return cli_usage(stdout, "bench ops"), 0;
  if (!cli_check_options("bench ops", argc, argv, valued, flags)) return 2;
  const char *only = cli_arg(argc, argv, "--op", NULL);
  const int json = cli_flag(argc, argv, "--json"), perf = cli_flag(argc, argv, "--perf");
  const int quick = cli_flag(argc, argv, "--quick"), list = cli_flag(argc, argv, "--list");
  const int reps = (int)cli_int(argc, argv, "--reps", 20);
  const uint64_t seed = (uint64_t)cli_int(argc, argv, "--seed", 42);
  if (reps < 1) {
    fprintf(stderr, "bench ops: --reps must be positive\n");
    return 2;
  }
  oc_list l = {0};
  oc_all_cases(&l, quick, seed);
  int known = !only;
  for (int i = 0; i < l.n && !known; i++) known = !strcmp(l.v[i].op, only);
  if (!known) {
    fprintf(stderr, "bench ops: no op '%s'; the ops:", only);
    for (int i = 0; i < l.n; i++)
      if (i == 0 || strcmp(l.v[i].op, l.v[i - 1].op)) fprintf(stderr, " %s", l.v[i].op);
    fprintf(stderr, "\n");
    oc_list_free(&l);
    return 2;
  }
  if (list) {
    for (int i = 0; i < l.n; i++)
      if (!only || !strcmp(l.v[i].op, only)) printf("%-20s %s\n", l.v[i].op, l.v[i].name);
    oc_list_free(&l);
    return 0;
  }
  oc_ctx x;
  if (!oc_init(&x, !cli_flag(argc, argv, "--cpu"))) return 1;
  const int cpu_only = x.gpu == NULL;
  if (cpu_only && !cli_flag(argc, argv, "--cpu"))
    fprintf(stderr, "bench ops: %s: checking (and timing) on the CPU backend only\n", x.why_no_gpu);
  const char *device = cpu_only ? "cpu" : cli_device_name();
  int n = 0, failed = 0;
  for (int i = 0; i < l.n; i++) {
    const oc_case *c = &l.v[i];
    if (only && strcmp(c->op, only)) continue;
    oc_opts o = OC_OPTS_INIT;
    o.perf = perf, o.reps = reps, o.graph_calls = perf ? 20 : 0, o.cpu_only = cpu_only;
    oc_result r;
    oc_run(&x, c, &o, &r);
    print_row(c, &r, json, cpu_only, device);
    fflush(stdout);
    n++, failed += r.failed > 0;
  }
  if (!json) printf("%d cases, %d failed%s\n", n, failed, cpu_only ? " (CPU backend only)" : "");
  oc_list_free(&l);
  oc_fini(&x);
  return failed ? 1 : 0;
}
