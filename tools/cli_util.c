/* CLI helpers: argument lookup, random data, and CUDA-event timing. */
#include "cli_util.h"

#include "opcheck/opcheck.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

const char *cli_arg(int argc, char **argv, const char *name, const char *def) {
  for (int i = 0; i + 1 < argc; i++)
    if (!strcmp(argv[i], name)) return argv[i + 1];
  return def;
}
int cli_flag(int argc, char **argv, const char *name) {
  for (int i = 0; i < argc; i++)
    if (!strcmp(argv[i], name)) return 1;
  return 0;
}
int cli_wants_help(int argc, char **argv) { return cli_flag(argc, argv, "--help") || cli_flag(argc, argv, "-h"); }

int cli_check_options(const char *cmd, int argc, char **argv, const char *const *valued, const char *const *flags) {
  for (int i = 1; i < argc; i++) {
    int known = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
    for (const char *const *v = valued; v && *v && !known; v++)
      if (!strcmp(argv[i], *v)) {
        if (i + 1 >= argc) {
          fprintf(stderr, "llmk %s: %s needs a value (llmk %s --help)\n", cmd, argv[i], cmd);
          return 0;
        }
        i++, known = 1;
      }
    for (const char *const *f = flags; f && *f && !known; f++) known = !strcmp(argv[i], *f);
    if (!known) {
      fprintf(stderr, "llmk %s: unknown option '%s' (llmk %s --help)\n", cmd, argv[i], cmd);
      return 0;
    }
  }
  return 1;
}

int64_t cli_int(int argc, char **argv, const char *name, int64_t def) {
  const char *v = cli_arg(argc, argv, name, NULL);
  return v ? strtoll(v, NULL, 0) : def;
}

uint64_t cli_rng_next(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 0x2545F4914F6CDD1Dull;
}

uint64_t cli_rng_thread_state(uint64_t seed, uint64_t salt) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + salt;
#ifdef _OPENMP
  extern int omp_get_thread_num(void);
  s += (uint64_t)omp_get_thread_num() * 0xD1B54A32D192ED03ull;
#endif
  return s;
}

void cli_fill_random(void *host, llmk_dtype dt, int64_t n, float sigma, double outliers,
                     uint64_t seed) {
#pragma omp parallel
  {
    uint64_t s = cli_rng_thread_state(seed, 1);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; i++) {
      double u1 = ((cli_rng_next(&s) >> 11) + 1) * 0x1.0p-53, u2 = (cli_rng_next(&s) >> 11) * 0x1.0p-53;
      float v = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2)) * sigma;
      if ((cli_rng_next(&s) >> 11) * 0x1.0p-53 < outliers) v *= 100.0f;
      if (dt == LLMK_F32) ((float *)host)[i] = v;
      else if (dt == LLMK_BF16) ((uint16_t *)host)[i] = llmk_float_to_bf16(v);
      else ((uint16_t *)host)[i] = llmk_float_to_f16(v);
    }
  }
}

void cli_fill_normal_bf16(uint16_t *a, int64_t n, float mean, float sigma, uint64_t seed) {
  const int64_t chunk = INT64_C(1) << 16, nc = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < nc; c++) {
    uint64_t s = (seed + 1) * 0x9E3779B97F4A7C15ull + (uint64_t)c * 0xD1B54A32D192ED03ull;
    s = (s ^ (s >> 31)) * 0xBF58476D1CE4E5B9ull, s ^= s >> 29; /* mix; xorshift needs s != 0 */
    if (!s) s = 1;
    const int64_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
    for (int64_t i = c * chunk; i < end;) {
      /* u, v uniform in (-1, 1) from the two halves of one draw (fp32 is
       * plenty for values rounded to bf16) */
      float u, v, r;
      do {
        const uint64_t x = cli_rng_next(&s);
        u = (float)(x >> 40) * 0x1.0p-23f - 1.0f;
        v = (float)((x >> 8) & 0xFFFFFF) * 0x1.0p-23f - 1.0f;
        r = u * u + v * v;
      } while (r >= 1.0f || r == 0.0f);
      const float f = sqrtf(-2.0f * logf(r) / r);
      a[i++] = llmk_float_to_bf16(mean + sigma * (u * f));
      if (i < end) a[i++] = llmk_float_to_bf16(mean + sigma * (v * f));
    }
  }
}

llmk_status cli_run_quant(void *op, void *stream) {
  cli_quant_op *o = op;
  return llmk_quantize_fp8(o->h, &o->d, &o->x, &o->q, &o->s, stream);
}

/* The op-check harness's timing (tools/opcheck: events with L2 flushed,
 * then graph replay); NOT_SUPPORTED without CUDA. */
llmk_status cli_time_op(cli_op_fn fn, void *ctx, int reps, int graph_calls, cli_timing *t) {
  double median = 0, graph = 0;
  const llmk_status s = oc_time_fn(fn, ctx, reps, graph_calls, &median, &graph);
  if (s == LLMK_SUCCESS) t->median_us = median;
  t->graph_us = graph;
  return s;
}

double cli_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#ifdef LLMK_WITH_CUDA
static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

void *cli_dev_alloc(size_t bytes) {
  void *p = NULL;
  if (cudaMalloc(&p, bytes) != cudaSuccess) {
    cudaGetLastError();
    return NULL;
  }
  return p;
}
void cli_dev_free(void *p) { cudaFree(p); }
int cli_h2d(void *d, const void *s, size_t n) { return cudaMemcpy(d, s, n, cudaMemcpyHostToDevice) == cudaSuccess; }
int cli_d2h(void *d, const void *s, size_t n) { return cudaMemcpy(d, s, n, cudaMemcpyDeviceToHost) == cudaSuccess; }
int cli_d2d(void *d, const void *s, size_t n) { return cudaMemcpy(d, s, n, cudaMemcpyDeviceToDevice) == cudaSuccess; }
const char *cli_device_name(void) {
  static char name[256];
  llmk_device_info info = LLMK_DEVICE_INFO_INIT;
  if (llmk_cuda_device_info(0, &info) == LLMK_SUCCESS) snprintf(name, sizeof name, "%s", info.name);
  else snprintf(name, sizeof name, "cpu");
  return name;
}

int cli_time_graph(const char *what, cli_op_fn fn, void *ctx, int reps, double *median_us) {
  cudaStream_t st = NULL;
  cudaEvent_t e0 = NULL, e1 = NULL;
  cudaGraph_t g = NULL;
  cudaGraphExec_t ge = NULL;
  double *us = reps > 0 ? malloc(sizeof(double) * (size_t)reps) : NULL;
  llmk_status s = LLMK_SUCCESS;
  cudaError_t ce = us ? cudaStreamCreate(&st) : cudaErrorMemoryAllocation;
  if (ce == cudaSuccess) ce = cudaEventCreate(&e0);
  if (ce == cudaSuccess) ce = cudaEventCreate(&e1);
  for (int i = 0; i < 2 && ce == cudaSuccess && !s; i++) s = fn(ctx, st); /* warm-up */
  if (ce == cudaSuccess && !s) ce = cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal);
  if (ce == cudaSuccess && !s) {
    s = fn(ctx, st);
    const cudaError_t end = cudaStreamEndCapture(st, &g); /* always ends the capture */
    if (!s) ce = end;
  }
  if (ce == cudaSuccess && !s) ce = cudaGraphInstantiate(&ge, g, 0);
  if (ce == cudaSuccess && !s) ce = cudaGraphLaunch(ge, st); /* first replay: untimed */
  for (int i = 0; i < reps && ce == cudaSuccess && !s; i++) {
    float f = 0;
    cudaEventRecord(e0, st);
    cudaGraphLaunch(ge, st);
    cudaEventRecord(e1, st);
    ce = cudaEventSynchronize(e1);
    if (ce == cudaSuccess) ce = cudaEventElapsedTime(&f, e0, e1);
    us[i] = f * 1e3;
  }
  if (st) cudaStreamSynchronize(st);
  if (s)
    fprintf(stderr, "%s: %s: %s\n", what, llmk_status_string(s), llmk_last_error());
  else if (ce != cudaSuccess)
    fprintf(stderr, "%s: CUDA graph timing: %s\n", what, cudaGetErrorString(ce));
  const int ok = !s && ce == cudaSuccess;
  if (ok) {
    qsort(us, (size_t)reps, sizeof *us, cmp_double);
    *median_us = us[reps / 2];
  }
  if (ge) cudaGraphExecDestroy(ge);
  if (g) cudaGraphDestroy(g);
  if (e0) cudaEventDestroy(e0);
  if (e1) cudaEventDestroy(e1);
  if (st) cudaStreamDestroy(st);
  cudaGetLastError();
  free(us);
  return ok;
}

double cli_copy_gbps(size_t bytes) {
  void *a = cli_dev_alloc(bytes), *b = cli_dev_alloc(bytes);
  double gbps = 0;
  if (a && b) {
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    cudaMemset(a, 1, bytes);
    double ms[9];
    for (int i = 0; i < 9; i++) {
      cudaEventRecord(e0, 0);
      cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0);
      cudaEventRecord(e1, 0);
      cudaEventSynchronize(e1);
      float f;
      cudaEventElapsedTime(&f, e0, e1);
      ms[i] = f;
    }
    qsort(ms, 9, sizeof *ms, cmp_double);
    gbps = 2.0 * (double)bytes / (ms[4] * 1e-3) / 1e9;
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
  }
  cli_dev_free(a);
  cli_dev_free(b);
  return gbps;
}
#else
void *cli_dev_alloc(size_t bytes) { (void)bytes; return NULL; }
void cli_dev_free(void *p) { (void)p; }
int cli_h2d(void *d, const void *s, size_t n) { (void)d, (void)s, (void)n; return 0; }
int cli_d2h(void *d, const void *s, size_t n) { (void)d, (void)s, (void)n; return 0; }
int cli_d2d(void *d, const void *s, size_t n) { (void)d, (void)s, (void)n; return 0; }
const char *cli_device_name(void) { return "cpu"; }
int cli_time_graph(const char *what, cli_op_fn fn, void *ctx, int reps, double *median_us) {
  (void)fn, (void)ctx, (void)reps, (void)median_us;
  fprintf(stderr, "%s: CUDA graph timing: llmk CLI built without CUDA\n", what);
  return 0;
}
double cli_copy_gbps(size_t bytes) { (void)bytes; return 0; }
#endif

int cli_open_cuda(const char *cmd, llmk_handle *h) {
  int n = 0;
  llmk_cuda_device_count(&n);
  if (n && llmk_create_cuda(0, h) == LLMK_SUCCESS) return 1;
  fprintf(stderr, "%s: needs a CUDA device (%s)\n", cmd, n ? llmk_last_error() : "none visible");
  return 0;
}

/* ---- the demos' memory ---- */

void *cli_mem_alloc(cli_mem *m, size_t bytes) {
  void *p = NULL;
  if (m->n < (int)(sizeof m->p / sizeof m->p[0])) p = m->gpu ? cli_dev_alloc(bytes) : malloc(bytes ? bytes : 1);
  if (p) m->p[m->n++] = p;
  else m->failed = 1;
  return p;
}
void cli_mem_release(cli_mem *m) {
  for (int i = 0; i < m->n; i++) m->gpu ? cli_dev_free(m->p[i]) : free(m->p[i]);
  m->n = 0;
}
int cli_mem_put(const cli_mem *m, void *dst, const void *src, size_t n) {
  return m->gpu ? cli_h2d(dst, src, n) : (memcpy(dst, src, n), 1);
}
int cli_mem_get(const cli_mem *m, void *dst, const void *src, size_t n) {
  return m->gpu ? cli_d2h(dst, src, n) : (memcpy(dst, src, n), 1);
}
int cli_mem_fill(const cli_mem *m, void *dst, int64_t n, float mean, float sigma, uint64_t seed) {
  if (!m->gpu) return cli_fill_normal_bf16(dst, n, mean, sigma, seed), 1;
  uint16_t *t = malloc((size_t)n * 2);
  int ok = t != NULL;
  if (ok) cli_fill_normal_bf16(t, n, mean, sigma, seed), ok = cli_h2d(dst, t, (size_t)n * 2);
  free(t);
  return ok;
}
