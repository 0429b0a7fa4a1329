/* `llmk bench gemm`: FP8 GEMM with BF16 output. For each shape it first
 * checks sampled output rows against the CPU reference (the same inputs),
 * then times the call (CUDA events, L2 flushed between calls, median; plus
 * graph replay for M <= 128) and reports TFLOP/s and the fraction of the
 * shape's roofline: max(flops / FP8 peak, bytes / copy bandwidth), both
 * measured in the same run (peak: the best of cuBLASLt and llmk's own kernel
 * at 8192^3; bandwidth: a 1 GiB device copy). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

#ifdef LLMK_WITH_CUDA
static const int64_t LLAMA_M[] = {1, 16, 32, 64, 96, 128, 1024, 4096, 16384};
static const int64_t LLAMA_NK[][2] = {{1280, 8192},   {8192, 1024},   {7168, 8192},   {8192, 3584},
                                      {13312, 6656}, {13312, 16384}, {16384, 6656}, {16384, 16384}};

#define MAX_W_COPIES 32

typedef struct gemm_op {
  llmk_handle h;
  llmk_gemm_desc d; /* FP8; BF16 (in == LLMK_BF16) uses only its backend */
  llmk_dtype in;
  llmk_tensor x, w, xs, ws, y;
  /* Graph timing of small M rotates among copies of W totalling >= 128 MiB,
   * so no captured call finds its weights in L2 (as in a model, whose every
   * layer has its own); bench/peer_gemm.py does the same. */
  llmk_tensor wr[MAX_W_COPIES];
  int nw, next;
} gemm_op;

static llmk_status run_gemm(void *ctx, void *stream) {
  gemm_op *o = ctx;
  const llmk_tensor *w = o->nw ? &o->wr[o->next++ % o->nw] : &o->w;
  if (o->in == LLMK_BF16) return llmk_gemm_bf16(o->h, o->d.backend, &o->x, w, NULL, &o->y, stream);
  return llmk_gemm_fp8(o->h, &o->d, &o->x, w, &o->xs, &o->ws, NULL, &o->y, stream);
}

/* e4m3 codes of N(0, 1) samples, drawn through a table of 4096. */
static void fill_codes(uint8_t *p, int64_t n, uint64_t seed) {
  static uint8_t table[4096];
  static int ready;
  if (!ready) {
    uint64_t s = 12345;
    for (int i = 0; i < 4096; i++) {
      double u1 = ((cli_rng_next(&s) >> 11) + 1) * 0x1.0p-53, u2 = (cli_rng_next(&s) >> 11) * 0x1.0p-53;
      table[i] = llmk_float_to_fp8((float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2)), LLMK_E4M3);
    }
    ready = 1;
  }
#pragma omp parallel
  {
    uint64_t s = cli_rng_thread_state(seed, 7);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; i++) p[i] = table[cli_rng_next(&s) >> 52];
  }
}

/* Compares `rows` sampled rows of the device result with the CPU reference. */
static int check_rows(gemm_op *o, const void *hx, const void *hw, const float *hxs, const float *hws,
                      int64_t M, int64_t N, int64_t K, int rows, double *worst) {
  const int es = o->in == LLMK_BF16 ? 2 : 1;
  llmk_handle cpu;
  if (llmk_create_cpu(&cpu)) return 0;
  uint16_t *gy = malloc((size_t)N * 2), *cy = malloc((size_t)N * 2);
  int ok = 1;
  *worst = 0;
  for (int i = 0; i < rows && ok; i++) {
    const int64_t r = rows == 1 ? 0 : i == rows - 1 ? M - 1 : (M - 1) * i / (rows - 1);
    if (!cli_d2h(gy, (const uint16_t *)o->y.data + r * N, (size_t)N * 2)) ok = 0;
    llmk_tensor x = llmk_tensor_2d((void *)((const char *)hx + r * K * es), o->in, 1, K, K);
    llmk_tensor w = llmk_tensor_2d((void *)hw, o->in, N, K, K);
    const int row = o->d.scaling == LLMK_SCALING_ROW, blk = o->d.scaling == LLMK_SCALING_BLOCK;
    const int64_t kb = (K + 127) / 128;
    llmk_tensor xs = llmk_tensor_1d((void *)(row ? hxs + r : hxs), LLMK_F32, 1);
    llmk_tensor ws = llmk_tensor_1d((void *)hws, LLMK_F32, row ? N : 1);
    if (blk) {
      const llmk_tensor a = {(void *)(hxs + r), LLMK_F32, 2, {1, kb, 0, 0}, {1, M, 0, 0}};
      xs = a;
      ws = llmk_tensor_2d((void *)hws, LLMK_F32, (N + 127) / 128, kb, (kb + 3) / 4 * 4);
    }
    llmk_tensor y = llmk_tensor_2d(cy, LLMK_BF16, 1, N, N);
    const llmk_status cs = o->in == LLMK_BF16 ? llmk_gemm_bf16(cpu, LLMK_GEMM_AUTO, &x, &w, NULL, &y, NULL)
                                              : llmk_gemm_fp8(cpu, &o->d, &x, &w, &xs, &ws, NULL, &y, NULL);
    if (!ok || cs) {
      ok = 0;
      break;
    }
    /* bf16 against bf16: per element within 2e-2 |ref| + 2e-2 rms(row), and
     * NaN only where the reference has NaN; then the row's relative error. */
    double num = 0, den = 0;
    for (int64_t c = 0; c < N; c++) den += (double)llmk_bf16_to_float(cy[c]) * llmk_bf16_to_float(cy[c]);
    const double rms = sqrt(den / (double)N);
    for (int64_t c = 0; c < N; c++) {
      const double a = llmk_bf16_to_float(gy[c]), b = llmk_bf16_to_float(cy[c]);
      num += (a - b) * (a - b);
      if ((a != a) != (b != b) || fabs(a - b) > 2e-2 * fabs(b) + 2e-2 * rms) ok = 0;
    }
    const double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    if (rel > *worst) *worst = rel;
    if (rel > 1e-2) ok = 0;
  }
  free(gy);
  free(cy);
  llmk_destroy(cpu);
  return ok;
}

typedef struct shape_result {
  double us, graph_us, tflops, frac;
  int ok;
  char backend[64]; /* the path that ran (route_name) */
} shape_result;

/* One shape's inputs, on the host (for the CPU check) and on the device.
 * Scales: M and N of them (row-wise; tensor-wise uses the first), or
 * enough for block scaling in the layouts cuBLASLt reads (and DeepGEMM
 * and torch pass): x_scale [M, KB] stored [KB][M], w_scale [ceil(N/128),
 * KB] with a row pitch of roundup(KB, 4). */
typedef struct gemm_case {
  int64_t M, N, K;
  llmk_dtype in; /* of X and W: e4m3 (codes of N(0, 1) samples) or bf16 */
  void *hx, *hw;
  float *hxs, *hws;
  void *dx, *dw, *dy, *dxs, *dws;
  /* M <= 128: device copies of W (wcopy[0] is dw) totalling >= 128 MiB for
   * graph timing, made once per shape (a tune times many routes on them) */
  void *wcopy[MAX_W_COPIES];
  int nw;
} gemm_case;

static void case_free(gemm_case *c) {
  for (int i = 1; i < c->nw; i++) cli_dev_free(c->wcopy[i]);
  cli_dev_free(c->dx), cli_dev_free(c->dw), cli_dev_free(c->dy), cli_dev_free(c->dxs), cli_dev_free(c->dws);
  free(c->hx), free(c->hw), free(c->hxs), free(c->hws);
  memset(c, 0, sizeof *c);
}

static int case_init(gemm_case *c, int64_t M, int64_t N, int64_t K, llmk_dtype in) {
  memset(c, 0, sizeof *c);
  c->M = M, c->N = N, c->K = K, c->in = in;
  const size_t es = in == LLMK_BF16 ? 2 : 1, nx = (size_t)(M * K) * es, nw = (size_t)(N * K) * es;
  const size_t ny = (size_t)(M * N);
  const int64_t kb = (K + 127) / 128, nb = (N + 127) / 128;
  const size_t nxs = (size_t)(M * (kb > 1 ? kb : 1)), nws = (size_t)(nb * (kb + 3) / 4 * 4 > N ? nb * (kb + 3) / 4 * 4 : N);
  c->hx = malloc(nx), c->hw = malloc(nw), c->hxs = malloc(nxs * 4), c->hws = malloc(nws * 4);
  c->dx = cli_dev_alloc(nx), c->dw = cli_dev_alloc(nw), c->dy = cli_dev_alloc(ny * 2);
  c->dxs = cli_dev_alloc(nxs * 4), c->dws = cli_dev_alloc(nws * 4);
  if (!c->hx || !c->hw || !c->hxs || !c->hws || !c->dx || !c->dw || !c->dy || !c->dxs || !c->dws) {
    fprintf(stderr, "bench gemm: allocation failed for %lld x %lld x %lld\n", (long long)M, (long long)N, (long long)K);
    case_free(c);
    return 1;
  }
  if (in == LLMK_BF16) {
    cli_fill_random(c->hx, LLMK_BF16, M * K, 1.0f, 0.0, (uint64_t)(M * 31 + K));
    cli_fill_random(c->hw, LLMK_BF16, N * K, 0.02f, 0.0, (uint64_t)(N * 17 + K + 1));
  } else {
    fill_codes(c->hx, (int64_t)nx, (uint64_t)(M * 31 + K));
    fill_codes(c->hw, (int64_t)nw, (uint64_t)(N * 17 + K + 1));
  }
  uint64_t s = 99;
  for (size_t i = 0; i < nxs; i++) c->hxs[i] = 0.01f + 0.01f * (float)((cli_rng_next(&s) >> 40) % 1000) / 1000.0f;
  for (size_t i = 0; i < nws; i++) c->hws[i] = 0.01f + 0.01f * (float)((cli_rng_next(&s) >> 40) % 1000) / 1000.0f;
  if (!cli_h2d(c->dx, c->hx, nx) || !cli_h2d(c->dw, c->hw, nw) || !cli_h2d(c->dxs, c->hxs, nxs * 4) ||
      !cli_h2d(c->dws, c->hws, nws * 4)) {
    case_free(c);
    return 1;
  }
  c->wcopy[0] = c->dw;
  c->nw = 1;
  if (M <= 128) {
    int n = (int)(((size_t)128 << 20) / nw + 1);
    if (n > MAX_W_COPIES) n = MAX_W_COPIES;
    for (; c->nw < n; c->nw++)
      if (!(c->wcopy[c->nw] = cli_dev_alloc(nw)) || !cli_d2d(c->wcopy[c->nw], c->dw, nw)) {
        cli_dev_free(c->wcopy[c->nw]);
        break;
      }
  }
  return 0;
}

/* The path the dispatcher takes for a shape, as the results record it:
 * "cublaslt", or "own:<configuration>" with ":k<splits>" for a split one
 * (llmk_gemm_choice: the dispatcher's own answer). */
static void route_name(const llmk_gemm_route *r, char *buf, size_t n) {
  if (r->backend == LLMK_GEMM_CUBLASLT) {
    snprintf(buf, n, "cublaslt");
    return;
  }
  llmk_gemm_config c = LLMK_GEMM_CONFIG_INIT;
  const int split = !llmk_gemm_config_get(r->config, &c) && c.k_split;
  snprintf(buf, n, "own:%s", r->config_name);
  if (split) snprintf(buf + strlen(buf), n - strlen(buf), ":k%d", r->splits);
}

/* Checks `check_n` sampled rows (0: none), then times desc on the case. */
static int bench_case(llmk_handle h, const llmk_gemm_desc *d, const gemm_case *c, int reps, int check_n, double peak,
                      double bw, shape_result *res) {
  const int64_t M = c->M, N = c->N, K = c->K;
  gemm_op o;
  memset(&o, 0, sizeof o);
  o.h = h;
  o.d = *d;
  o.in = c->in;
  const int row = d->scaling == LLMK_SCALING_ROW, es = c->in == LLMK_BF16 ? 2 : 1;
  o.x = llmk_tensor_2d(c->dx, c->in, M, K, K);
  o.w = llmk_tensor_2d(c->dw, c->in, N, K, K);
  o.xs = llmk_tensor_1d(c->dxs, LLMK_F32, row ? M : 1);
  o.ws = llmk_tensor_1d(c->dws, LLMK_F32, row ? N : 1);
  if (d->scaling == LLMK_SCALING_BLOCK) {
    const int64_t kb = (K + 127) / 128;
    const llmk_tensor a = {c->dxs, LLMK_F32, 2, {M, kb, 0, 0}, {1, M, 0, 0}};
    o.xs = a;
    o.ws = llmk_tensor_2d(c->dws, LLMK_F32, (N + 127) / 128, kb, (kb + 3) / 4 * 4);
  }
  o.y = llmk_tensor_2d(c->dy, LLMK_BF16, M, N, N);
  memset(res, 0, sizeof *res);
  res->ok = 1;
  llmk_gemm_route route = LLMK_GEMM_ROUTE_INIT;
  if (llmk_gemm_choice(h, d, c->in, M, N, K, &route)) {
    fprintf(stderr, "bench gemm: %s\n", llmk_last_error());
    return 1;
  }
  route_name(&route, res->backend, sizeof res->backend);
  if (route.lt_fallback) {
    /* AUTO falls back to the own kernels where cuBLASLt has no algorithm
     * (the bench passes no bias): ask cuBLASLt */
    gemm_op probe = o;
    probe.d.backend = LLMK_GEMM_CUBLASLT;
    if (run_gemm(&probe, NULL) == LLMK_ERR_NOT_SUPPORTED) {
      route.backend = LLMK_GEMM_OWN;
      route_name(&route, res->backend, sizeof res->backend);
    }
  }
  if (check_n > 0) {
    if (run_gemm(&o, NULL)) {
      fprintf(stderr, "bench gemm: %s\n", llmk_last_error());
      return 1;
    }
    double worst = 0;
    res->ok = check_rows(&o, c->hx, c->hw, c->hxs, c->hws, M, N, K, check_n, &worst);
    if (!res->ok)
      fprintf(stderr, "bench gemm: CHECK FAILED for %lld x %lld x %lld (rel err %.3g)\n", (long long)M, (long long)N,
              (long long)K, worst);
  }
  if (M <= 128)
    for (o.nw = 0; o.nw < c->nw; o.nw++) o.wr[o.nw] = llmk_tensor_2d(c->wcopy[o.nw], c->in, N, K, K);
  cli_timing t = {0, 0};
  const llmk_status ts = cli_time_op(run_gemm, &o, reps, M <= 128 ? 20 : 0, &t);
  if (ts) {
    fprintf(stderr, "bench gemm: %s\n", llmk_last_error());
    return 1;
  }
  const double flops = 2.0 * M * N * K, bytes = es * ((double)M * K + (double)N * K) + 2.0 * M * N;
  const double best_us = t.graph_us > 0 && t.graph_us < t.median_us ? t.graph_us : t.median_us;
  res->us = t.median_us;
  res->graph_us = t.graph_us;
  res->tflops = flops / (best_us * 1e-6) / 1e12;
  const double roof_us = fmax(peak > 0 ? flops / (peak * 1e12) * 1e6 : 0, bw > 0 ? bytes / (bw * 1e9) * 1e6 : 0);
  res->frac = roof_us / best_us;
  return 0;
}

static int bench_shape(llmk_handle h, const llmk_gemm_desc *d, llmk_dtype in, int64_t M, int64_t N, int64_t K,
                       int reps, int check_n, double peak, double bw, shape_result *res) {
  gemm_case c;
  if (case_init(&c, M, N, K, in)) return 1;
  const int rc = bench_case(h, d, &c, reps, check_n, peak, bw, res);
  case_free(&c);
  return rc;
}

/* Peak: the best TFLOP/s of either backend at 8192^3 (FP8: tensor-wise,
 * fast accumulation; or BF16). */
static double measure_peak(llmk_handle h, llmk_dtype in) {
  double best = 0;
  for (int b = 1; b <= 2; b++) {
    llmk_gemm_desc d = {LLMK_GEMM_DESC_SIZE, LLMK_SCALING_TENSOR, LLMK_ACCUM_FAST, (llmk_gemm_backend)b, 0};
    shape_result r;
    if (!bench_shape(h, &d, in, 8192, 8192, 8192, 10, 0, 0, 0, &r) && r.tflops > best) best = r.tflops;
  }
  return best;
}
#endif

int cli_bench_gemm(int argc, char **argv) {
  static const char *const valued[] = {"--scaling", "--backend", "--accum", "--dtype", "--reps", "--check-rows",
                                       "--m", "--n", "--k", "--peak", "--model", "--which", "--batch",
                                       "--routing", "--layout", NULL};
  static const char *const flags[] = {"--json", "--llama", "--grouped", NULL};
  if (cli_wants_help(argc, argv)) return cli_usage(stdout, "bench gemm"), 0;
  if (!cli_check_options("bench gemm", argc, argv, valued, flags)) return 2;
  if (cli_flag(argc, argv, "--grouped")) return cli_bench_gemm_grouped(argc, argv);
#ifndef LLMK_WITH_CUDA
  fprintf(stderr, "bench gemm: this llmk was built without CUDA\n");
  return 1;
#else
  const char *scaling = cli_arg(argc, argv, "--scaling", "row");
  const char *backend = cli_arg(argc, argv, "--backend", "auto");
  const char *accum = cli_arg(argc, argv, "--accum", "default");
  const char *dtype = cli_arg(argc, argv, "--dtype", "e4m3");
  if (strcmp(dtype, "e4m3") && strcmp(dtype, "bf16")) return fprintf(stderr, "bench gemm: --dtype must be e4m3 or bf16\n"), 2;
  const llmk_dtype in = strcmp(dtype, "bf16") ? LLMK_E4M3 : LLMK_BF16; /* bf16: --scaling and --accum do not apply */
  const int json = cli_flag(argc, argv, "--json"), llama = cli_flag(argc, argv, "--llama");
  const int reps = (int)cli_int(argc, argv, "--reps", 30), check_n = (int)cli_int(argc, argv, "--check-rows", 2);
  llmk_gemm_desc d = LLMK_GEMM_DESC_INIT;
  if (!strcmp(scaling, "row")) d.scaling = LLMK_SCALING_ROW;
  else if (!strcmp(scaling, "tensor")) d.scaling = LLMK_SCALING_TENSOR;
  else if (!strcmp(scaling, "block")) d.scaling = LLMK_SCALING_BLOCK;
  else return fprintf(stderr, "bench gemm: --scaling must be row, tensor or block\n"), 2;
  if (!strcmp(backend, "own")) d.backend = LLMK_GEMM_OWN;
  else if (!strcmp(backend, "cublaslt")) d.backend = LLMK_GEMM_CUBLASLT;
  else if (strcmp(backend, "auto")) return fprintf(stderr, "bench gemm: --backend must be auto, own or cublaslt\n"), 2;
  if (!strcmp(accum, "fast")) d.accum = LLMK_ACCUM_FAST;
  else if (!strcmp(accum, "fp32")) d.accum = LLMK_ACCUM_FP32;
  else if (strcmp(accum, "default")) return fprintf(stderr, "bench gemm: --accum must be default, fast or fp32\n"), 2;
  llmk_handle h;
  if (!cli_open_cuda("bench gemm", &h)) return 1;
  /* --peak P skips the 8192^3 measurement (quick runs, profilers) */
  const double given_peak = (double)cli_int(argc, argv, "--peak", 0);
  const double bw = cli_copy_gbps((size_t)1 << 30), peak = given_peak > 0 ? given_peak : measure_peak(h, in);
  if (!json)
    printf("%s peak (best of cuBLASLt and own at 8192^3): %.0f TFLOP/s; copy bandwidth %.0f GB/s\n",
           in == LLMK_BF16 ? "BF16" : "FP8", peak, bw);
  int64_t shapes[80][3], ns = 0;
  if (llama) {
    for (size_t i = 0; i < sizeof LLAMA_NK / sizeof LLAMA_NK[0]; i++)
      for (size_t j = 0; j < sizeof LLAMA_M / sizeof LLAMA_M[0]; j++)
        shapes[ns][0] = LLAMA_M[j], shapes[ns][1] = LLAMA_NK[i][0], shapes[ns][2] = LLAMA_NK[i][1], ns++;
  } else {
    shapes[0][0] = cli_int(argc, argv, "--m", 4096), shapes[0][1] = cli_int(argc, argv, "--n", 8192);
    shapes[0][2] = cli_int(argc, argv, "--k", 8192);
    ns = 1;
    if (shapes[0][0] < 1 || shapes[0][1] < 1 || shapes[0][2] < 1) return fprintf(stderr, "bench gemm: bad sizes\n"), 2;
  }
  const char *op = in == LLMK_BF16                    ? "gemm_bf16"
                   : d.scaling == LLMK_SCALING_ROW   ? "gemm_fp8_rowwise"
                   : d.scaling == LLMK_SCALING_BLOCK ? "gemm_fp8_blockwise"
                                                     : "gemm_fp8_tensorwise";
  if (!json) printf("%-20s %6s %6s %6s %10s %10s %9s %7s %s\n", "op", "M", "N", "K", "us", "graph us", "TFLOP/s", "roof%", "backend");
  int fails = 0;
  for (int64_t i = 0; i < ns; i++) {
    const int64_t M = shapes[i][0], N = shapes[i][1], K = shapes[i][2];
    shape_result r;
    memset(&r, 0, sizeof r);
    if (bench_shape(h, &d, in, M, N, K, reps, check_n, peak, bw, &r)) {
      fails++;
      continue;
    }
    fails += !r.ok;
    if (json) {
      printf("{\"op\": \"%s\", \"device\": \"%s\", \"shape\": {\"m\": %lld, \"n\": %lld, \"k\": %lld}, \"dtype\": \"%s\", "
             "\"llmk_us\": %.3f, ",
             op, cli_device_name(), (long long)M, (long long)N, (long long)K, dtype, r.us);
      if (r.graph_us > 0) printf("\"llmk_us_graph\": %.3f, ", r.graph_us);
      printf("\"backend\": \"%s\", \"accum\": \"%s\", \"tflops\": %.1f, \"frac_roofline\": %.4f, \"peak_tflops\": %.0f, "
             "\"copy_gbps\": %.0f, \"checked\": %s}\n",
             r.backend, accum, r.tflops, r.frac, peak, bw, r.ok ? "true" : "false");
    } else {
      printf("%-20s %6lld %6lld %6lld %10.2f %10.2f %9.1f %6.1f%% %s%s\n", op, (long long)M, (long long)N, (long long)K,
             r.us, r.graph_us, r.tflops, 100 * r.frac, r.backend, r.ok ? "" : "  CHECK FAILED");
    }
    fflush(stdout);
  }
  llmk_destroy(h);
  return fails ? 1 : 0;
#endif
}

#ifdef LLMK_WITH_CUDA
/* The table's kinds (src/cuda/gemm_table.inc's first field), in the order
 * the tune prints them. */
typedef enum tune_kind { KIND_TENSOR, KIND_ROW, KIND_BLOCK, KIND_BF16 } tune_kind;
static const char *const KIND_NAMES[] = {"tensor", "row", "block", "bf16"};
static const char *const KIND_IDS[] = {"LLMK_TABLE_TENSOR", "LLMK_TABLE_ROW", "LLMK_TABLE_BLOCK", "LLMK_TABLE_BF16"};

/* Output tiles of configuration c for an M x N result (swapped: weight
 * rows x tokens). */
static int64_t cfg_tiles(const llmk_gemm_config *c, int64_t M, int64_t N) {
  const int64_t rows = c->swap ? N : M, cols = c->swap ? M : N;
  return ((rows + c->tile_m - 1) / c->tile_m) * ((cols + c->tile_n - 1) / c->tile_n);
}

/* Runs the case steered by override o (llmk_set_gemm_override); its time
 * (graph replay where measured), or a negative value if it did not run. */
static double tune_run(llmk_handle h, const llmk_gemm_desc *d, const gemm_case *c, const llmk_gemm_override *o,
                       int reps) {
  shape_result r;
  if (llmk_set_gemm_override(h, o)) {
    fprintf(stderr, "tune gemm: %s\n", llmk_last_error());
    return -1;
  }
  const int rc = bench_case(h, d, c, reps, 0, 0, 0, &r);
  llmk_set_gemm_override(h, NULL);
  if (rc) return -1;
  return r.graph_us > 0 ? r.graph_us : r.us;
}

/* One table line: cuBLASLt and every own configuration that suits the shape
 * (split ones at each K split that keeps every rank at >= 2 slices and the
 * clusters within two waves of the SMs), fastest of each. Block scales
 * are in cuBLASLt's layout, as the bench passes them. */
static void tune_shape(llmk_handle h, tune_kind kind, int64_t M, int64_t N, int64_t K, int reps, int verbose,
                       int sms, int lt_algos, FILE *dump) {
  gemm_case c;
  const int bf16 = kind == KIND_BF16;
  if (case_init(&c, M, N, K, bf16 ? LLMK_BF16 : LLMK_E4M3)) return;
  static const llmk_scaling scalings[] = {LLMK_SCALING_TENSOR, LLMK_SCALING_ROW, LLMK_SCALING_BLOCK,
                                          LLMK_SCALING_TENSOR};
  const char *sc = KIND_NAMES[kind];
  llmk_gemm_desc d = {LLMK_GEMM_DESC_SIZE, scalings[kind], kind == KIND_BLOCK ? LLMK_ACCUM_FP32 : LLMK_ACCUM_FAST,
                      LLMK_GEMM_CUBLASLT, 0};
  double lt = 1e30, own = 1e30;
  int cfg = -1, splits = 1, lt_algo = 0;
  /* cuBLASLt: each entry of its heuristic list (the first is its own choice) */
  for (int i = 0; i < lt_algos; i++) {
    llmk_gemm_override o = LLMK_GEMM_OVERRIDE_INIT;
    o.lt_algo = i;
    const double us = tune_run(h, &d, &c, &o, reps);
    if (us < 0) continue;
    if (verbose)
      fprintf(stderr, "%s %lld x %lld x %lld  cublaslt algo %d %.2f\n", sc, (long long)M, (long long)N, (long long)K,
              i, us);
    if (dump)
      fprintf(dump, "{\"kind\": \"%s\", \"m\": %lld, \"n\": %lld, \"k\": %lld, \"backend\": \"cublaslt\", "
                    "\"lt_algo\": %d, \"us\": %.3f}\n", sc, (long long)M, (long long)N, (long long)K, i, us);
    if (us < lt) lt = us, lt_algo = i;
  }
  d.backend = LLMK_GEMM_OWN;
  static const int ks[] = {1, 2, 3, 4, 5, 6, 8, 10, 12, 16};
  const int64_t nk = (K + (bf16 ? 63 : 127)) / (bf16 ? 64 : 128); /* K slices */
  const int ncfg = llmk_gemm_config_count();
  for (int k = 0; k < ncfg; k++) {
    llmk_gemm_config g = LLMK_GEMM_CONFIG_INIT;
    if (llmk_gemm_config_get(k, &g)) continue;
    /* the configurations of the kind's dtype and accumulation mode; swapped
     * ones (and the gemv) only for the token counts they are meant for */
    if (g.in_dtype != (bf16 ? LLMK_BF16 : LLMK_E4M3) || g.fp32_promote != (kind == KIND_BLOCK) ||
        ((g.swap || g.gemv) && (M < g.m_min || M > g.m_max)))
      continue;
    const int64_t tiles = cfg_tiles(&g, M, N);
    for (size_t q = 0; q < (g.k_split ? sizeof ks / sizeof ks[0] : 1); q++) {
      /* the gemv kernel's CTAs are small: no wave limit, only its cluster limit */
      if (g.k_split && ((ks[q] == 1 && !g.swap) || ks[q] > nk / 2 || ks[q] > g.max_splits ||
                        (!g.gemv && tiles * ks[q] > 2 * sms)))
        continue;
      llmk_gemm_override o = LLMK_GEMM_OVERRIDE_INIT;
      o.config = k, o.splits = g.k_split ? ks[q] : 0;
      const double us = tune_run(h, &d, &c, &o, reps);
      if (us < 0) continue;
      if (verbose)
        fprintf(stderr, "%s %lld x %lld x %lld  own %s k%d %.2f\n", sc, (long long)M, (long long)N, (long long)K,
                g.name, g.k_split ? ks[q] : 1, us);
      if (dump)
        fprintf(dump, "{\"kind\": \"%s\", \"m\": %lld, \"n\": %lld, \"k\": %lld, \"backend\": \"own\", "
                      "\"config\": \"%s\", \"splits\": %d, \"us\": %.3f}\n",
                sc, (long long)M, (long long)N, (long long)K, g.name, g.k_split ? ks[q] : 1, us);
      if (us < own) own = us, cfg = k, splits = g.k_split ? ks[q] : 1;
    }
  }
  case_free(&c);
  if (dump) fflush(dump);
  /* 1e30: no candidate ran (cuBLASLt has no algorithm, or no configuration suits) */
  char own_s[32], lt_s[32];
  snprintf(own_s, sizeof own_s, own < 1e29 ? "%.2f" : "1e30", own);
  snprintf(lt_s, sizeof lt_s, lt < 1e29 ? "%.2f" : "1e30", lt);
  llmk_gemm_config best = LLMK_GEMM_CONFIG_INIT;
  const char *name = cfg >= 0 && !llmk_gemm_config_get(cfg, &best) ? best.name : "NONE";
  printf("{%s, %lld, %lld, %lld, %d, LLMK_CFG_%s, %d, %s, %s, %d},\n", KIND_IDS[kind], (long long)M, (long long)N,
         (long long)K, cfg >= 0 && own < lt, name, splits, own_s, lt_s, lt_algo);
  fflush(stdout);
}
#endif

/* `llmk tune gemm`: times cuBLASLt and the own configurations (fast
 * accumulation, row- and/or tensor-wise scales) on the Llama shape set and
 * prints src/cuda/gemm_table.inc, the table behind LLMK_GEMM_AUTO. */
int cli_tune_gemm(int argc, char **argv) {
  static const char *const valued[] = {"--scaling", "--reps", "--min-m", "--max-m", "--shapes", "--dump", "--lt-algos", NULL};
  static const char *const flags[] = {"--verbose", NULL};
  if (cli_wants_help(argc, argv)) return cli_usage(stdout, "tune gemm"), 0;
  if (!cli_check_options("tune gemm", argc, argv, valued, flags)) return 2;
#ifndef LLMK_WITH_CUDA
  fprintf(stderr, "tune gemm: this llmk was built without CUDA\n");
  return 1;
#else
  const int reps = (int)cli_int(argc, argv, "--reps", 15), verbose = cli_flag(argc, argv, "--verbose");
  const int64_t max_m = cli_int(argc, argv, "--max-m", INT64_C(1) << 40), min_m = cli_int(argc, argv, "--min-m", 1);
  const char *scalings = cli_arg(argc, argv, "--scaling", "both");
  if (strcmp(scalings, "both") && strcmp(scalings, "all") && strcmp(scalings, "row") && strcmp(scalings, "tensor") &&
      strcmp(scalings, "block") && strcmp(scalings, "bf16"))
    return fprintf(stderr, "tune gemm: --scaling must be row, tensor, block, bf16, both (row and tensor) or all\n"), 2;
  /* --dump FILE: every candidate's time as a JSON line (the data
   * tools/fit_gemm_model.c fits the dispatcher's cost model on) */
  const char *dump_path = cli_arg(argc, argv, "--dump", NULL);
  /* --lt-algos N: the first N entries of cuBLASLt's heuristic list (1: its own choice only) */
  const int lt_algos = (int)cli_int(argc, argv, "--lt-algos", LLMK_GEMM_LT_ALGOS);
  if (lt_algos < 0 || lt_algos > LLMK_GEMM_LT_ALGOS)
    return fprintf(stderr, "tune gemm: --lt-algos must be 0..%d\n", LLMK_GEMM_LT_ALGOS), 2;
  int n = 0;
  llmk_cuda_device_count(&n);
  llmk_handle h;
  if (!n || llmk_create_cuda(0, &h)) {
    fprintf(stderr, "tune gemm: needs a CUDA device\n");
    return 1;
  }
  FILE *dump = dump_path ? fopen(dump_path, "w") : NULL;
  if (dump_path && !dump) {
    fprintf(stderr, "tune gemm: cannot write %s\n", dump_path);
    llmk_destroy(h);
    return 1;
  }
  llmk_device_info info = LLMK_DEVICE_INFO_INIT;
  const int sms = llmk_cuda_device_info(0, &info) ? 132 : info.sm_count;
  printf("/* Generated by `llmk tune gemm` on %s; do not edit. Fast accumulation\n"
         " * (block scaling: fp32 promotion), CUDA-event medians with L2 flushed\n"
         " * (graph replay for M <= 128).\n"
         " * {kind (LLMK_TABLE_*), M, N, K, use_own (1: the own kernel was faster), the fastest own\n"
         " *  configuration (LLMK_CFG_<name>, src/cuda/gemm_configs.def), its K split, own_us, cublaslt_us,\n"
         " *  the fastest cuBLASLt heuristic entry} */\n",
         cli_device_name());
  static const tune_kind order[] = {KIND_ROW, KIND_TENSOR, KIND_BLOCK, KIND_BF16};
  /* --shapes MxNxK,...: those shapes instead of the Llama set (a table
   * entry serves every M of its N and K, so extra shapes must not share an
   * (N, K) with the set) */
  const char *extra = cli_arg(argc, argv, "--shapes", NULL);
  for (int o = 0; o < 4; o++) {
    const tune_kind kind = order[o];
    const int both = !strcmp(scalings, "both") && (kind == KIND_ROW || kind == KIND_TENSOR);
    if (strcmp(scalings, "all") && !both && strcmp(scalings, KIND_NAMES[kind])) continue;
    for (const char *q = extra; q && *q;) {
      long long m, n, k;
      int used = 0;
      if (sscanf(q, "%lldx%lldx%lld%n", &m, &n, &k, &used) != 3 || m < 1 || n < 1 || k < 1) {
        fprintf(stderr, "tune gemm: --shapes wants MxNxK[,MxNxK...], got \"%s\"\n", q);
        llmk_destroy(h);
        if (dump) fclose(dump);
        return 2;
      }
      tune_shape(h, kind, m, n, k, reps, verbose, sms, lt_algos, dump);
      q += used;
      if (*q == ',') q++;
    }
    for (size_t i = 0; !extra && i < sizeof LLAMA_NK / sizeof LLAMA_NK[0]; i++)
      for (size_t j = 0; j < sizeof LLAMA_M / sizeof LLAMA_M[0]; j++)
        if (LLAMA_M[j] >= min_m && LLAMA_M[j] <= max_m)
          tune_shape(h, kind, LLAMA_M[j], LLAMA_NK[i][0], LLAMA_NK[i][1], reps, verbose, sms, lt_algos, dump);
  }
  if (dump) fclose(dump);
  llmk_destroy(h);
  return 0;
#endif
}
