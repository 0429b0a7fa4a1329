/* Shared helpers of the llmk CLI: argument lookup, random data, timing. */
#ifndef LLMK_CLI_UTIL_H
#define LLMK_CLI_UTIL_H

#include <stdint.h>
#include <stdio.h>

#include "llmk.h"

/* --name VALUE lookup; returns def when absent. */
const char *cli_arg(int argc, char **argv, const char *name, const char *def);
int cli_flag(int argc, char **argv, const char *name);
int64_t cli_int(int argc, char **argv, const char *name, int64_t def);

/* Fills n elements of dt (f32/f16/bf16) with N(0, sigma^2) and a fraction
 * `outliers` of values 100x larger, from a seeded generator. */
void cli_fill_random(void *host, llmk_dtype dt, int64_t n, float sigma, double outliers,
                     uint64_t seed);
/* n bf16 values of mean + sigma * N(0, 1) (Marsaglia's polar method), one
 * generator per chunk of 64K values, so the values do not depend on the
 * thread count; several times cheaper than cli_fill_random (for the
 * billion-element weights of the layer demo). */
void cli_fill_normal_bf16(uint16_t *a, int64_t n, float mean, float sigma, uint64_t seed);
double cli_now_s(void);
/* xorshift64*: the CLI's one random generator (state must be nonzero). */
uint64_t cli_rng_next(uint64_t *s);
/* The xorshift state of the calling OpenMP thread's stream for `seed`
 * (salt separates the streams of different fills). */
uint64_t cli_rng_thread_state(uint64_t seed, uint64_t salt);

/* One quantize call, as the timing helpers replay it. */
typedef struct cli_quant_op {
  llmk_handle h;
  llmk_quantize_desc d;
  llmk_tensor x, q, s;
} cli_quant_op;
llmk_status cli_run_quant(void *op, void *stream);

/* Device side (built with CUDA only; return LLMK_ERR_NOT_SUPPORTED otherwise). */
typedef llmk_status (*cli_op_fn)(void *ctx, void *stream);
typedef struct cli_timing {
  double median_us;      /* CUDA events around each call, L2 flushed between calls */
  double graph_us;       /* per call, from replaying a graph of graph_calls calls (0: not measured) */
} cli_timing;
/* graph_calls = 0 skips the graph measurement. */
llmk_status cli_time_op(cli_op_fn fn, void *ctx, int reps, int graph_calls, cli_timing *t);
/* A sequence of ops timed as one CUDA graph: fn(ctx, stream) is called
 * twice eagerly (warm-up), captured once into a graph, replayed once, then
 * replayed `reps` times with CUDA events around each replay; *median_us is
 * the median. Returns 1, or 0 after printing why to stderr (prefixed with
 * `what`; llmk_last_error() for a failed op). */
int cli_time_graph(const char *what, cli_op_fn fn, void *ctx, int reps, double *median_us);
/* Device-to-device copy bandwidth in GB/s (bytes read + written) for `bytes`. */
double cli_copy_gbps(size_t bytes);
void *cli_dev_alloc(size_t bytes); /* NULL on failure */
void cli_dev_free(void *p);
int cli_h2d(void *dst, const void *src, size_t bytes);
int cli_d2h(void *dst, const void *src, size_t bytes);
int cli_d2d(void *dst, const void *src, size_t bytes);
const char *cli_device_name(void);

/* Memory of a handle's backend (device memory for gpu, else host), freed
 * all at once by cli_mem_release: the demos' buffers. A failed allocation
 * sets failed and returns NULL. */
typedef struct cli_mem {
  int gpu, failed, n;
  void *p[64];
} cli_mem;
void *cli_mem_alloc(cli_mem *m, size_t bytes);
void cli_mem_release(cli_mem *m);
int cli_mem_put(const cli_mem *m, void *dst, const void *src, size_t n); /* host -> m's memory */
int cli_mem_get(const cli_mem *m, void *dst, const void *src, size_t n); /* m's memory -> host */
/* n bf16 values mean + sigma N(0, 1) into dst (m's backend). */
int cli_mem_fill(const cli_mem *m, void *dst, int64_t n, float mean, float sigma, uint64_t seed);
/* A CUDA handle on device 0 for command `cmd`: 1, or 0 after printing why
 * there is none ("<cmd>: needs a CUDA device (...)"). */
int cli_open_cuda(const char *cmd, llmk_handle *h);

/* 1 if the arguments ask for help (--help or -h). */
int cli_wants_help(int argc, char **argv);
/* Every argument after argv[0] must be a known option: `valued` ones take
 * the next argument, `flags` none (both NULL-terminated; --help and -h are
 * always known). Returns 1, or 0 after printing to stderr why ("llmk <cmd>:
 * unknown option ..."): the caller exits with 2. */
int cli_check_options(const char *cmd, int argc, char **argv, const char *const *valued, const char *const *flags);
/* The usage of command `cmd` ("bench gemm"; NULL: every command) from the
 * command table of tools/llmk.c, to f. Returns 0 if cmd is not a command. */
int cli_usage(FILE *f, const char *cmd);

int cli_check(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_bench_gemm(int argc, char **argv);
/* `bench gemm --grouped` (tools/cli_bench_grouped.c). */
int cli_bench_gemm_grouped(int argc, char **argv);
int cli_tune_gemm(int argc, char **argv);
int cli_demo(int argc, char **argv);
/* The FP8-vs-BF16 linear layer part of the demo (shapes divided by shrink per dim). */
int cli_demo_linear(llmk_handle h, int gpu, int shrink);

#endif
