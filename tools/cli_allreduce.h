/* `llmk bench allreduce` and `llmk tune allreduce` (one runner,
 * cli_bench_allreduce.c) and the tune's report and table update
 * (cli_tune_allreduce.c). */
#ifndef LLMK_CLI_ALLREDUCE_H
#define LLMK_CLI_ALLREDUCE_H

#include <stddef.h>
#include <stdio.h>

int cli_bench_allreduce(int argc, char **argv);
int cli_tune_allreduce(int argc, char **argv);

#define CLI_AR_TUNE_MAX_SIZES 64

void cli_allreduce_tune_usage(FILE *f);
void cli_allreduce_tune_header(int world, const char *device, const char *peer, const char *dtype);
/* One size's times (us, slowest rank's median in graphs; < 0: failed or not run). */
void cli_allreduce_tune_row(size_t bytes, double t_one, double t_two, double t_nccl);
/* Fits the thresholds (llmk_allreduce_fit), prints them with what they cost
 * against the best algorithm and against NCCL per size, and with write_path
 * replaces (or adds) the world's line of that table file. Returns 1, or 0
 * after printing why (nothing measured, the file unreadable/unwritable). */
int cli_allreduce_tune_finish(int world, const char *device, const char *peer, const char *commit, int n,
                              const size_t *sizes, const double *t_one, const double *t_two, const double *t_nccl,
                              const char *write_path);

#endif
