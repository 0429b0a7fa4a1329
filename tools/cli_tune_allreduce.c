/* `llmk tune allreduce`: the report and the table update. The runner
 * (cli_bench_allreduce.c) times one-shot, two-shot and NCCL at every size
 * in CUDA graphs on this machine's GPUs; here the thresholds are fitted
 * (llmk_allreduce_fit, tools/allreduce_fit.c) and written into
 * src/core/allreduce_table.inc, whose line for this world size they
 * replace. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_allreduce.h"
#include "allreduce_fit.h"

void cli_allreduce_tune_usage(FILE *f) {
  fprintf(f,
          "usage: llmk tune allreduce [-b 1K] [-e 64M] [-f 2] [--ranks N] [--dtype bf16|f16|f32]\n"
          "                           [--graph-calls 50] [--reps 15] [--write src/core/allreduce_table.inc]\n"
          "  Times one-shot, two-shot and NCCL at every size from -b to -e (x -f) across N ranks, one\n"
          "  process per GPU (N defaults to the GPU count), each in CUDA graphs and checked against the\n"
          "  exact sum, then fits the thresholds of llmk's choice for N ranks: one-shot up to `one`\n"
          "  bytes, two-shot up to `two`, NCCL above, minimizing the summed time relative to the best\n"
          "  algorithm of each size. --write FILE replaces the line for N ranks in that table file\n"
          "  (rebuild to use it). --share-gpu runs the ranks on GPU 0 without NCCL (a smoke run; no\n"
          "  --write).\n");
}

void cli_allreduce_tune_header(int world, const char *device, const char *peer, const char *dtype) {
  printf("# llmk tune allreduce: %d ranks, %s, %s, peer %s; CUDA graphs, slowest rank's median, us\n", world,
         device, dtype, peer);
  printf("#%11s %10s %10s %10s %8s\n", "size(B)", "oneshot", "twoshot", "nccl", "best");
  fflush(stdout);
}

static const char *const NAMES[3] = {"oneshot", "twoshot", "nccl"};

static int best_of(double a, double b, double c) {
  const double t[3] = {a, b, c};
  int k = -1;
  for (int i = 0; i < 3; i++)
    if (t[i] > 0 && (k < 0 || t[i] < t[k])) k = i;
  return k;
}

static void col(char *buf, size_t n, double t) {
  if (t > 0) snprintf(buf, n, "%.2f", t);
  else snprintf(buf, n, "-");
}

void cli_allreduce_tune_row(size_t bytes, double t_one, double t_two, double t_nccl) {
  char a[32], b[32], c[32];
  col(a, sizeof a, t_one), col(b, sizeof b, t_two), col(c, sizeof c, t_nccl);
  const int k = best_of(t_one, t_two, t_nccl);
  printf("%12zu %10s %10s %10s %8s\n", bytes, a, b, c, k < 0 ? "-" : NAMES[k]);
  fflush(stdout);
}

/* Replaces the line starting "{world," of path (or adds one at the end). */
static int write_line(const char *path, int world, const char *line) {
  FILE *f = fopen(path, "r");
  if (!f) return fprintf(stderr, "tune allreduce: cannot read %s\n", path), 0;
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *o = fopen(tmp, "w");
  if (!o) {
    fclose(f);
    return fprintf(stderr, "tune allreduce: cannot write %s\n", tmp), 0;
  }
  char key[16], buf[1024];
  snprintf(key, sizeof key, "{%d,", world);
  int done = 0;
  while (fgets(buf, sizeof buf, f)) {
    if (!done && !strncmp(buf, key, strlen(key))) {
      fputs(line, o);
      done = 1;
    } else {
      fputs(buf, o);
    }
  }
  if (!done) fputs(line, o);
  fclose(f);
  const int ok = fclose(o) == 0 && rename(tmp, path) == 0;
  if (!ok) fprintf(stderr, "tune allreduce: cannot replace %s\n", path);
  return ok;
}

int cli_allreduce_tune_finish(int world, const char *device, const char *peer, const char *commit, int n,
                              const size_t *sizes, const double *t_one, const double *t_two, const double *t_nccl,
                              const char *write_path) {
  if (n < 1) return fprintf(stderr, "tune allreduce: no size was measured\n"), 0;
  size_t one, two;
  llmk_allreduce_fit(n, sizes, t_one, t_two, t_nccl, &one, &two);
  printf("# thresholds for %d ranks: one-shot up to %zu bytes, two-shot up to %zu, NCCL above\n", world, one, two);
  printf("#%11s %8s %10s %10s %10s\n", "size(B)", "choice", "us", "/best", "/nccl");
  double worst_best = 0, worst_nccl = 0;
  for (int i = 0; i < n; i++) {
    const int a = sizes[i] <= one ? 0 : sizes[i] <= two ? 1 : 2;
    const double t[3] = {t_one[i], t_two[i], t_nccl[i]};
    const int k = best_of(t[0], t[1], t[2]);
    if (k < 0 || !(t[a] > 0)) continue;
    const double rb = t[a] / t[k], rn = t[2] > 0 ? t[a] / t[2] : 0;
    if (rb > worst_best) worst_best = rb;
    if (rn > worst_nccl) worst_nccl = rn;
    char c[32];
    col(c, sizeof c, rn);
    printf("%12zu %8s %10.2f %10.3f %10s\n", sizes[i], NAMES[a], t[a], rb, c);
  }
  printf("# worst: %.3fx the best algorithm, %.3fx NCCL (above 1: slower than NCCL)\n", worst_best, worst_nccl);
  char day[32] = "";
  const time_t now = time(NULL);
  struct tm tmv;
  if (gmtime_r(&now, &tmv)) strftime(day, sizeof day, "%Y-%m-%d", &tmv);
  char line[512];
  snprintf(line, sizeof line, "{%d, %zu, %zu}, /* measured: %s, %s, %s, commit %s, %zu..%zu bytes */\n", world, one,
           two, device, peer, day, commit, sizes[0], sizes[n - 1]);
  printf("# table line: %s", line);
  if (!write_path) return 1;
  if (!write_line(write_path, world, line)) return 0;
  printf("# written to %s (rebuild llmk to use it)\n", write_path);
  return 1;
}
