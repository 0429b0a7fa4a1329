/*
 * llmk_gemm_fp8 on the GPU, for each backend (LLMK_GEMM_OWN, LLMK_GEMM_CUBLASLT)
 * and accumulation (FAST, FP32), against two references on the same inputs:
 *  - the CPU reference (llmk_gemm_fp8 on a CPU handle), and
 *  - an fp64 computation written here on the dequantized inputs,
 * each within docs/DESIGN.md's GEMM tolerances: relative Frobenius error <= 1e-2
 * and |y - ref| <= 1e-2 * |ref| + 1e-2 * rms(ref) per element; the first
 * mismatches are printed with their coordinates.
 *
 * Inputs: normal, uniform and outlier-heavy data quantized to e4m3 with
 * llmk_quantize_fp8 (CPU handle), tensor- or row-wise. Shapes: M in {1, 2,
 * 3, 16, 17, 64, 100, 128, 1000, 4096} x (N, K) in {(8, 16), (24, 48),
 * (8*37, 16*67), (1280, 8192), (8192, 1024), (7168, 8192)}, and K = 65536
 * (and 16*1025) for small M; K = 0 (y = bias or 0);
 * bias none / f32 / bf16; y row pitches N, N + 8, N + 24. y is poisoned with
 * 0xFFFF (a bf16 NaN) before every run: every element must be written and
 * finite, the row padding and the row after y untouched. For large shapes
 * the references are computed on a random sample of rows (always the first
 * and the last) to keep the test fast; the other rows are still checked for
 * being written. A backend that answers LLMK_ERR_NOT_SUPPORTED for a shape
 * is counted as skipped (named with the shape), not as a pass, and must
 * have written nothing.
 *
 * Also: CUDA-graph capture of llmk_gemm_fp8, replayed after changing the
 * device values of x_scale and w_scale.
 */
#include <math.h>

#include "core/env.h"
#include "harness.h"
#include "llmk.h"

#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>

static llmk_handle cpu, gpu;
static double DQ[256];          /* e4m3 code -> value, from llmk_fp8_to_float */
static int n_runs, n_unsupported;
static char cfg_tag[96]; /* the forced own configuration, for labels */
static uint16_t *last_y;  /* run_gpu's output (y and the row after it), kept for comparisons */
static size_t last_ny;
static int n_out_of_tol[2]; /* runs out of tolerance, by accumulation: [0] fast, [1] fp32 */

/* The references cost about this many multiply-adds per shape at most:
 * larger shapes are checked on a sample of rows. */
#define REF_MACS (INT64_C(1) << 27)
/* docs/DESIGN.md's GEMM tolerances: relative Frobenius error <= FROB_TOL;
 * per element |y - ref| <= RTOL * |ref| + ATOL_RMS * rms(ref), plus, with
 * fast accumulation only, an allowance for Hopper's FP8 accumulate, which
 * keeps ~14 bits (DeepSeek-V3 report, section 3.3.2) in two ways:
 * - products are aligned to the largest one before they are summed, so an
 *   element whose sum cancels to near zero is off by up to ~2^-10 of
 *   sum_k |x_k xs w_k ws| (FAST_ATOL_ABS; cuBLASLt's fast path returns the
 *   very same values as llmk's: H100, 1.4% off at K = 65536 on such an
 *   element);
 * - the running sum is truncated to ~13 bits of its own magnitude as
 *   products are added into it, which with outlier-heavy rows (a running
 *   sum of 1.5e4 over K = 8192) moved single elements by 1.5e3 on the H100,
 *   cuBLASLt and llmk alike, always towards -inf. FAST_TRUNC_BITS and
 *   FAST_TRUNC_EVERY bound it as one unit of the 13th bit of |running sum|
 *   lost per 4 products: 3.7e3 there.
 * With fp32 accumulation too (promotion every 128 of K), the MMA itself
 * moved single elements by up to 2.4% at K = 1024 on the H100, identical
 * bits from cuBLASLt and llmk (uniform data: -4384 where fp64 is about
 * -4470; outlier rows: -6912 against -6751), i.e. each 32-deep MMA's
 * sum was ~2% off: MMA_REL * sum over 32-deep groups g of |sum_{k in g}
 * x_k xs w_k ws| covers it (3% of |y| where all products share a sign,
 * far less of the spread of random-sign sums).
 * A bug that drops or repeats a 128-deep K slice still fails FROB_TOL. */
#define FROB_TOL 1e-2
#define RTOL 1e-2
#define ATOL_RMS 1e-2
#define FAST_ATOL_ABS 1e-3
#define FAST_TRUNC_BITS 13
#define FAST_TRUNC_EVERY 4
#define MMA_REL 3e-2
#define POISON 0xFFFFu

/* ---- data ----------------------------------------------------------------- */

enum { D_NORMAL, D_UNIFORM, D_OUTLIER, D_COUNT };
static const char *const dist_name[] = {"normal", "uniform", "outlier"};
static const char *const bias_name[] = {"none", "f32", "bf16"};

/* Counter-based random numbers, so rows can be generated in parallel. */
static uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static double u01(uint64_t h) { return (double)(h >> 11) * 0x1.0p-53; }

static float draw_at(int dist, uint64_t seed, uint64_t i) {
  uint64_t h1 = mix64(seed ^ (2 * i)), h2 = mix64(seed ^ (2 * i + 1));
  double u1 = u01(h1), u2 = u01(h2);
  if (dist == D_UNIFORM) return (float)(2.0 * u1 - 1.0);
  if (u1 < 1e-300) u1 = 1e-300;
  float v = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
  if (dist == D_OUTLIER && (h1 & 63) == 0) v *= 300.0f;
  return v;
}

/* rows x cols values of `dist`, each row times a random power of two in
 * [2^-3, 2^3), quantized to e4m3 (pitch cols) with `sc` scaling. */
static void make_fp8(int64_t rows, int64_t cols, int dist, llmk_scaling sc, uint8_t *q, float *scale) {
  float *v = t_xmalloc((size_t)(rows * cols) * sizeof(float));
  const uint64_t seed = t_rand_u64();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    float mag = exp2f((float)(u01(mix64(seed + 0x5555u + (uint64_t)r)) * 6.0 - 3.0));
    for (int64_t k = 0; k < cols; k++) v[r * cols + k] = mag * draw_at(dist, seed, (uint64_t)(r * cols + k));
  }
  llmk_quantize_desc d = {LLMK_QUANTIZE_DESC_SIZE, sc, 0, 0, NULL, NULL};
  llmk_tensor tv = llmk_tensor_2d(v, LLMK_F32, rows, cols, cols);
  llmk_tensor tq = llmk_tensor_2d(q, LLMK_E4M3, rows, cols, cols);
  llmk_tensor ts = llmk_tensor_1d(scale, LLMK_F32, sc == LLMK_SCALING_ROW ? rows : 1);
  llmk_status s = llmk_quantize_fp8(cpu, &d, &tv, &tq, &ts, NULL);
  if (s) {
    fprintf(stderr, "llmk_quantize_fp8: %s\n", llmk_last_error());
    exit(2);
  }
  free(v);
}

/* ---- one (N, K) problem: host and device copies of its inputs --------------- */

typedef struct problem {
  llmk_scaling scaling;
  int64_t Mmax, N, K;
  int dist;
  uint8_t *x, *w;       /* host: Mmax x K, N x K codes (dense) */
  float *xs, *ws;       /* host: Mmax or 1, N or 1 */
  float *bias_f32;      /* host: N */
  uint16_t *bias_bf16;  /* host: N */
  uint8_t *dx, *dw;     /* device copies */
  float *dxs, *dws, *dbias_f32;
  uint16_t *dbias_bf16;
} problem;

static void problem_init(problem *p, llmk_scaling sc, int64_t Mmax, int64_t N, int64_t K, int dist) {
  memset(p, 0, sizeof *p);
  p->scaling = sc;
  p->Mmax = Mmax;
  p->N = N;
  p->K = K;
  p->dist = dist;
  const int row = sc == LLMK_SCALING_ROW;
  const int64_t nxs = row ? Mmax : 1, nws = row ? N : 1;
  p->x = t_xmalloc((size_t)(Mmax * K));
  p->w = t_xmalloc((size_t)(N * K));
  p->xs = t_xmalloc((size_t)nxs * sizeof(float));
  p->ws = t_xmalloc((size_t)nws * sizeof(float));
  p->bias_f32 = t_xmalloc((size_t)N * sizeof(float));
  p->bias_bf16 = t_xmalloc((size_t)N * sizeof(uint16_t));
  make_fp8(Mmax, K, dist, sc, p->x, p->xs);
  make_fp8(N, K, (dist + 1) % D_COUNT, sc, p->w, p->ws);
  /* A bias of the order of the products' typical size (sqrt(K) * scales). */
  const float bmag = (float)sqrt((double)K) * 0.5f;
  for (int64_t n = 0; n < N; n++) {
    p->bias_f32[n] = bmag * t_rand_normal();
    p->bias_bf16[n] = llmk_float_to_bf16(bmag * t_rand_normal());
  }
  T_CU(cudaMalloc((void **)&p->dx, (size_t)(Mmax * K)));
  T_CU(cudaMalloc((void **)&p->dw, (size_t)(N * K)));
  T_CU(cudaMalloc((void **)&p->dxs, (size_t)nxs * sizeof(float)));
  T_CU(cudaMalloc((void **)&p->dws, (size_t)nws * sizeof(float)));
  T_CU(cudaMalloc((void **)&p->dbias_f32, (size_t)N * sizeof(float)));
  T_CU(cudaMalloc((void **)&p->dbias_bf16, (size_t)N * sizeof(uint16_t)));
  T_CU(cudaMemcpy(p->dx, p->x, (size_t)(Mmax * K), cudaMemcpyHostToDevice));
  T_CU(cudaMemcpy(p->dw, p->w, (size_t)(N * K), cudaMemcpyHostToDevice));
  T_CU(cudaMemcpy(p->dxs, p->xs, (size_t)nxs * sizeof(float), cudaMemcpyHostToDevice));
  T_CU(cudaMemcpy(p->dws, p->ws, (size_t)nws * sizeof(float), cudaMemcpyHostToDevice));
  T_CU(cudaMemcpy(p->dbias_f32, p->bias_f32, (size_t)N * sizeof(float), cudaMemcpyHostToDevice));
  T_CU(cudaMemcpy(p->dbias_bf16, p->bias_bf16, (size_t)N * sizeof(uint16_t), cudaMemcpyHostToDevice));
}

static void problem_free(problem *p) {
  free(p->x);
  free(p->w);
  free(p->xs);
  free(p->ws);
  free(p->bias_f32);
  free(p->bias_bf16);
  T_CU(cudaFree(p->dx));
  T_CU(cudaFree(p->dw));
  T_CU(cudaFree(p->dxs));
  T_CU(cudaFree(p->dws));
  T_CU(cudaFree(p->dbias_f32));
  T_CU(cudaFree(p->dbias_bf16));
  memset(p, 0, sizeof *p);
}

/* ---- references on a set of rows -------------------------------------------- */

typedef struct refs {
  int64_t S;       /* number of sampled rows */
  int64_t *rows;   /* the rows of x / y they are */
  double *cpu;     /* S x N: the CPU reference's bf16 results, as double */
  double *fp64;    /* S x N: the fp64 reference */
  double *fast;    /* S x N: fast accumulation's allowance (FAST_ATOL_ABS, FAST_TRUNC_*) */
  double *mma;     /* S x N: the MMA's allowance in both accumulation modes (MMA_REL) */
} refs;

static void refs_free(refs *r) {
  free(r->rows);
  free(r->cpu);
  free(r->fp64);
  free(r->fast);
  free(r->mma);
  memset(r, 0, sizeof *r);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* Picks the rows of an M-row problem to check against the references: all
 * of them if the references stay under REF_MACS, else the first, the last
 * and random others. */
static void pick_rows(refs *r, int64_t M, int64_t N, int64_t K) {
  int64_t per_row = N * (K > 0 ? K : 1);
  int64_t S = M;
  if (M * per_row > REF_MACS) {
    S = REF_MACS / per_row;
    if (S < 8) S = 8;
    if (S > M) S = M;
  }
  r->S = S;
  r->rows = t_xmalloc((size_t)S * sizeof(int64_t));
  if (S == M) {
    for (int64_t i = 0; i < M; i++) r->rows[i] = i;
    return;
  }
  char *taken = calloc((size_t)M, 1);
  r->rows[0] = 0;
  r->rows[1] = M - 1;
  taken[0] = taken[M - 1] = 1;
  for (int64_t i = 2; i < S;) {
    int64_t m = (int64_t)(t_rand_u64() % (uint64_t)M);
    if (!taken[m]) taken[m] = 1, r->rows[i++] = m;
  }
  free(taken);
  qsort(r->rows, (size_t)S, sizeof(int64_t), cmp_i64);
}

/* Both references for rows r->rows of the first M rows of p, with bias `b`
 * and the scales xs / ws (host copies; the graph test changes them). */
static void compute_refs(const problem *p, refs *r, int b, const float *xs, const float *ws) {
  const int64_t S = r->S, N = p->N, K = p->K;
  const int row = p->scaling == LLMK_SCALING_ROW;
  /* The CPU reference on a compact copy of the sampled rows. */
  uint8_t *xsub = t_xmalloc((size_t)(S * K));
  float *xssub = t_xmalloc((size_t)(row ? S : 1) * sizeof(float));
  uint16_t *ysub = t_xmalloc((size_t)(S * N) * sizeof(uint16_t));
  for (int64_t i = 0; i < S; i++) {
    memcpy(xsub + i * K, p->x + r->rows[i] * K, (size_t)K);
    if (row) xssub[i] = xs[r->rows[i]];
  }
  if (!row) xssub[0] = xs[0];
  llmk_gemm_desc d = {LLMK_GEMM_DESC_SIZE, p->scaling, LLMK_ACCUM_DEFAULT, LLMK_GEMM_AUTO, 0};
  llmk_tensor tx = llmk_tensor_2d(xsub, LLMK_E4M3, S, K, K), tw = llmk_tensor_2d(p->w, LLMK_E4M3, N, K, K);
  llmk_tensor txs = llmk_tensor_1d(xssub, LLMK_F32, row ? S : 1), tws = llmk_tensor_1d((void *)ws, LLMK_F32, row ? N : 1);
  llmk_tensor tb = b == 2 ? llmk_tensor_1d(p->bias_bf16, LLMK_BF16, N) : llmk_tensor_1d(p->bias_f32, LLMK_F32, N);
  llmk_tensor ty = llmk_tensor_2d(ysub, LLMK_BF16, S, N, N);
  llmk_status s = llmk_gemm_fp8(cpu, &d, &tx, &tw, &txs, &tws, b ? &tb : NULL, &ty, NULL);
  CHECK(s == LLMK_SUCCESS, "CPU reference: %s", llmk_last_error());
  r->cpu = t_xmalloc((size_t)(S * N) * sizeof(double));
  r->fp64 = t_xmalloc((size_t)(S * N) * sizeof(double));
  r->fast = t_xmalloc((size_t)(S * N) * sizeof(double));
  r->mma = t_xmalloc((size_t)(S * N) * sizeof(double));
  for (int64_t i = 0; i < S * N; i++) r->cpu[i] = llmk_bf16_to_float(ysub[i]);
  /* The fp64 reference: dequantize, scale and sum in double. */
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t i = 0; i < S; i++)
    for (int64_t n = 0; n < N; n++) {
      const uint8_t *xr = xsub + i * K, *wr = p->w + n * K;
      double sx = row ? xssub[i] : xssub[0], sw = ws[row ? n : 0], acc = 0.0, abs_acc = 0.0, run_acc = 0.0;
      double grp = 0.0, abs_grp = 0.0;
      for (int64_t k = 0; k < K; k++) {
        const double t = (DQ[xr[k]] * sx) * (DQ[wr[k]] * sw);
        acc += t;
        abs_acc += fabs(t);
        if (k % FAST_TRUNC_EVERY == FAST_TRUNC_EVERY - 1) run_acc += fabs(acc);
        grp += t;
        if (k % 32 == 31 || k == K - 1) abs_grp += fabs(grp), grp = 0.0;
      }
      r->fast[i * N + n] = FAST_ATOL_ABS * abs_acc + ldexp(run_acc, -FAST_TRUNC_BITS);
      r->mma[i * N + n] = MMA_REL * abs_grp;
      double bias = b == 1 ? p->bias_f32[n] : b == 2 ? llmk_bf16_to_float(p->bias_bf16[n]) : 0.0;
      r->fp64[i * N + n] = acc + bias;
    }
  free(xsub);
  free(xssub);
  free(ysub);
}

/* y (host copy, pitch ldy) on the sampled rows against one reference: the
 * tolerances of docs/DESIGN.md. Returns 1 if within them. */
static int compare(const char *label, const char *refname, const uint16_t *y, int64_t ldy,
                   const refs *r, const double *ref, int64_t N, int fast) {
  double sum2 = 0.0, err2 = 0.0;
  for (int64_t i = 0; i < r->S * N; i++) sum2 += ref[i] * ref[i];
  const double rms = r->S * N > 0 ? sqrt(sum2 / (double)(r->S * N)) : 0.0;
  int64_t bad = 0;
  for (int64_t i = 0; i < r->S; i++)
    for (int64_t n = 0; n < N; n++) {
      const double want = ref[i * N + n], got = llmk_bf16_to_float(y[r->rows[i] * ldy + n]);
      const double e = fabs(got - want),
                   tol = RTOL * fabs(want) + ATOL_RMS * rms + r->mma[i * N + n] + (fast ? r->fast[i * N + n] : 0.0);
      err2 += (got - want) * (got - want);
      if (!(e <= tol)) {
        if (bad < 5)
          fprintf(stderr, "  %s: y[%lld,%lld] = %.8g, %s %.8g (|diff| %.3g > tol %.3g)\n", label,
                  (long long)r->rows[i], (long long)n, got, refname, want, e, tol);
        bad++;
      }
    }
  const double rel = sum2 > 0.0 ? sqrt(err2 / sum2) : sqrt(err2);
  CHECK(bad == 0 && rel <= FROB_TOL, "%s vs %s: %lld of %lld elements out of tolerance, relative Frobenius error %.3g",
        label, refname, (long long)bad, (long long)(r->S * N), rel);
  return bad == 0 && rel <= FROB_TOL;
}

/* ---- one GPU run --------------------------------------------------------------- */

static const char *backend_name(llmk_gemm_backend b) {
  return b == LLMK_GEMM_OWN ? "own" : b == LLMK_GEMM_CUBLASLT ? "cublaslt" : "auto";
}

/* Runs the first M rows of p on the GPU (backend be, accumulation acc, bias
 * b, y pitch N + pady) and checks y against the references r. */
static void run_gpu(const problem *p, int64_t M, llmk_gemm_backend be, llmk_accum acc, int b,
                    int64_t pady, const refs *r) {
  const int64_t N = p->N, K = p->K, ldy = N + pady;
  const int row = p->scaling == LLMK_SCALING_ROW;
  char label[256];
  snprintf(label, sizeof label, "[%s%s %s M=%lld N=%lld K=%lld bias=%s accum=%s ldy=%lld %s]",
           backend_name(be), cfg_tag, row ? "row" : "tensor", (long long)M, (long long)N, (long long)K,
           bias_name[b], acc == LLMK_ACCUM_FP32 ? "fp32" : "fast", (long long)ldy, dist_name[p->dist]);
  /* y plus one more row of poison after it */
  const size_t ny = (size_t)((M + 1) * ldy);
  uint16_t *dy, *hy = t_xmalloc(ny * sizeof(uint16_t));
  T_CU(cudaMalloc((void **)&dy, ny * sizeof(uint16_t)));
  T_CU(cudaMemset(dy, 0xFF, ny * sizeof(uint16_t)));

  llmk_gemm_desc d = {LLMK_GEMM_DESC_SIZE, p->scaling, acc, be, 0};
  llmk_tensor tx = llmk_tensor_2d(p->dx, LLMK_E4M3, M, K, K), tw = llmk_tensor_2d(p->dw, LLMK_E4M3, N, K, K);
  llmk_tensor txs = llmk_tensor_1d(p->dxs, LLMK_F32, row ? M : 1), tws = llmk_tensor_1d(p->dws, LLMK_F32, row ? N : 1);
  llmk_tensor tb = b == 2 ? llmk_tensor_1d(p->dbias_bf16, LLMK_BF16, N) : llmk_tensor_1d(p->dbias_f32, LLMK_F32, N);
  llmk_tensor ty = llmk_tensor_2d(dy, LLMK_BF16, M, N, ldy);
  llmk_status s = llmk_gemm_fp8(gpu, &d, &tx, &tw, &txs, &tws, b ? &tb : NULL, &ty, NULL);
  cudaError_t e = cudaDeviceSynchronize();
  CHECK(e == cudaSuccess, "%s: the GEMM left a CUDA error: %s", label, cudaGetErrorString(e));
  if (e != cudaSuccess) exit(2); /* the context is gone */
  T_CU(cudaMemcpy(hy, dy, ny * sizeof(uint16_t), cudaMemcpyDeviceToHost));
  int64_t touched = 0;
  if (s == LLMK_ERR_NOT_SUPPORTED) {
    n_unsupported++;
    SKIP("%s: not supported: %s", label, llmk_last_error());
    for (size_t i = 0; i < ny; i++) touched += hy[i] != POISON;
    CHECK(touched == 0, "%s: returned NOT_SUPPORTED but wrote %lld elements", label, (long long)touched);
  } else {
    CHECK(s == LLMK_SUCCESS, "%s: %s: %s", label, llmk_status_string(s), llmk_last_error());
    if (s == LLMK_SUCCESS) {
      n_runs++;
      /* every element written and finite (no input is NaN); padding and the row after y untouched */
      int64_t unwritten = 0, nonfinite = 0, pad = 0;
      for (int64_t m = 0; m <= M; m++)
        for (int64_t n = 0; n < ldy; n++) {
          uint16_t v = hy[m * ldy + n];
          if (m == M || n >= N) {
            pad += v != POISON;
          } else if (v == POISON) {
            if (unwritten++ < 3) fprintf(stderr, "  %s: y[%lld,%lld] not written\n", label, (long long)m, (long long)n);
          } else if (!isfinite(llmk_bf16_to_float(v))) {
            if (nonfinite++ < 3)
              fprintf(stderr, "  %s: y[%lld,%lld] = %g\n", label, (long long)m, (long long)n, llmk_bf16_to_float(v));
          }
        }
      CHECK(unwritten == 0 && nonfinite == 0, "%s: %lld elements not written, %lld not finite", label,
            (long long)unwritten, (long long)nonfinite);
      CHECK(pad == 0, "%s: %lld elements of the row padding / the row after y were written", label, (long long)pad);
      int ok = compare(label, "CPU reference", hy, ldy, r, r->cpu, N, acc != LLMK_ACCUM_FP32);
      ok &= compare(label, "fp64 reference", hy, ldy, r, r->fp64, N, acc != LLMK_ACCUM_FP32);
      if (!ok) n_out_of_tol[acc == LLMK_ACCUM_FP32]++;
    }
  }
  T_CU(cudaFree(dy));
  free(last_y);
  last_y = hy, last_ny = ny;
}

/* All M of one (N, K) problem: per M one bias and pitch, both backends and
 * both accumulations against the same references. */
static void run_problem(llmk_scaling sc, const int64_t *Ms, int nm, int64_t N, int64_t K, int *variant) {
  int64_t Mmax = 0;
  for (int i = 0; i < nm; i++) Mmax = Ms[i] > Mmax ? Ms[i] : Mmax;
  problem p;
  problem_init(&p, sc, Mmax, N, K, *variant % D_COUNT);
  static const llmk_gemm_backend backends[] = {LLMK_GEMM_OWN, LLMK_GEMM_CUBLASLT};
  for (int i = 0; i < nm; i++, (*variant)++) {
    const int b = *variant % 3;
    static const int64_t pads[3] = {0, 8, 24};
    const int64_t pady = pads[(*variant / 3) % 3]; /* with b: all 9 pairs over 9 consecutive M */
    refs r;
    memset(&r, 0, sizeof r);
    pick_rows(&r, Ms[i], N, K);
    compute_refs(&p, &r, b, p.xs, p.ws);
    for (int bi = 0; bi < 2; bi++)
      for (int ai = 0; ai < 2; ai++)
        run_gpu(&p, Ms[i], backends[bi], ai ? LLMK_ACCUM_FP32 : LLMK_ACCUM_FAST, b, pady, &r);
    /* The dispatcher's own choice too, with the default accumulation. */
    if (i % 3 == 0) run_gpu(&p, Ms[i], LLMK_GEMM_AUTO, LLMK_ACCUM_DEFAULT, b, pady, &r);
    refs_free(&r);
  }
  problem_free(&p);
}

/* Every own FP8 configuration forced in turn (the handle's override), the
 * split ones with several cluster sizes (16 needs the
 * non-portable cluster size and may be refused: a skip), on ragged shapes:
 * partial tiles in M and N, a partial last K slice, and more ranks than K
 * slices (ranks with no K slice contribute zeros), each K split run twice
 * for identical bits; with persistent_only,
 * the persistent configurations alone (large M: many tiles per CTA). */
static void run_configs(llmk_scaling sc, int64_t N, int64_t K, const int64_t *Ms, int nm, int *variant,
                        int persistent_only) {
  static const int splits[] = {1, 2, 3, 8, 16};
  int64_t Mmax = 0;
  for (int i = 0; i < nm; i++) Mmax = Ms[i] > Mmax ? Ms[i] : Mmax;
  problem p;
  problem_init(&p, sc, Mmax, N, K, *variant % D_COUNT);
  for (int i = 0; i < nm; i++) {
    refs r[3];
    for (int b = 0; b < 3; b++) {
      memset(&r[b], 0, sizeof r[b]);
      pick_rows(&r[b], Ms[i], N, K);
      compute_refs(&p, &r[b], b, p.xs, p.ws);
    }
    for (int c = 0; c < llmk_gemm_config_count(); c++) {
      llmk_gemm_config g = LLMK_GEMM_CONFIG_INIT;
      if (llmk_gemm_config_get(c, &g) || g.in_dtype != LLMK_E4M3) continue;
      if (persistent_only && g.k_split) continue;
      for (size_t q = 0; q < (g.k_split ? sizeof splits / sizeof splits[0] : 1); q++, (*variant)++) {
        llmk_gemm_override o = LLMK_GEMM_OVERRIDE_INIT;
        o.config = c, o.splits = g.k_split ? splits[q] : 0;
        CHECK(llmk_set_gemm_override(gpu, &o) == LLMK_SUCCESS, "override %s: %s", g.name, llmk_last_error());
        snprintf(cfg_tag, sizeof cfg_tag, " cfg %s k%d", g.name, g.k_split ? splits[q] : 1);
        const int b = *variant % 3;
        const llmk_accum acc = g.fp32_promote ? LLMK_ACCUM_FP32 : LLMK_ACCUM_FAST;
        run_gpu(&p, Ms[i], LLMK_GEMM_OWN, acc, b, 8 * (*variant % 2), &r[b]);
        if (g.k_split && splits[q] > 1 && last_y) {
          /* the ranks' partial sums are added in rank order: the same bits on every run */
          uint16_t *first = last_y;
          const size_t n = last_ny;
          last_y = NULL;
          run_gpu(&p, Ms[i], LLMK_GEMM_OWN, acc, b, 8 * (*variant % 2), &r[b]);
          CHECK(last_y && last_ny == n && !memcmp(first, last_y, n * sizeof *first),
                "[%s M=%lld]: two runs of a K-split GEMM differ", cfg_tag, (long long)Ms[i]);
          free(first);
        }
      }
    }
    llmk_set_gemm_override(gpu, NULL);
    cfg_tag[0] = 0;
    for (int b = 0; b < 3; b++) refs_free(&r[b]);
  }
  problem_free(&p);
}

/* ---- CUDA graphs ------------------------------------------------------------------ */

/* A captured llmk_gemm_fp8 replays with new x_scale / w_scale values read
 * from the same device buffers. */
static void graph_replay(llmk_scaling sc, llmk_gemm_backend be, llmk_accum acc) {
  const int64_t M = 100, N = 8 * 37, K = 16 * 67, ldy = N + 8;
  const int row = sc == LLMK_SCALING_ROW;
  const int64_t nxs = row ? M : 1, nws = row ? N : 1;
  char label[128];
  snprintf(label, sizeof label, "graph [%s %s M=%lld N=%lld K=%lld accum=%s]", backend_name(be),
           row ? "row" : "tensor", (long long)M, (long long)N, (long long)K,
           acc == LLMK_ACCUM_FP32 ? "fp32" : "default");
  problem p;
  problem_init(&p, sc, M, N, K, D_OUTLIER);
  uint16_t *dy, *hy = t_xmalloc((size_t)(M * ldy) * sizeof(uint16_t));
  T_CU(cudaMalloc((void **)&dy, (size_t)(M * ldy) * sizeof(uint16_t)));
  cudaStream_t st;
  T_CU(cudaStreamCreate(&st));
  llmk_gemm_desc d = {LLMK_GEMM_DESC_SIZE, sc, acc, be, 0};
  llmk_tensor tx = llmk_tensor_2d(p.dx, LLMK_E4M3, M, K, K), tw = llmk_tensor_2d(p.dw, LLMK_E4M3, N, K, K);
  llmk_tensor txs = llmk_tensor_1d(p.dxs, LLMK_F32, nxs), tws = llmk_tensor_1d(p.dws, LLMK_F32, nws);
  /* bf16 bias: the one every backend takes (cuBLASLt has no FP8 algorithm with an f32 bias for many shapes) */
  llmk_tensor tb = llmk_tensor_1d(p.dbias_bf16, LLMK_BF16, N), ty = llmk_tensor_2d(dy, LLMK_BF16, M, N, ldy);

  cudaGraph_t g = NULL;
  cudaGraphExec_t ge = NULL;
  T_CU(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
  llmk_status s = llmk_gemm_fp8(gpu, &d, &tx, &tw, &txs, &tws, &tb, &ty, st);
  cudaError_t e = cudaStreamEndCapture(st, &g);
  if (s == LLMK_ERR_NOT_SUPPORTED) {
    n_unsupported++;
    SKIP("%s: not supported: %s", label, llmk_last_error());
  } else {
    CHECK(s == LLMK_SUCCESS, "%s: capture: %s: %s", label, llmk_status_string(s), llmk_last_error());
    CHECK(e == cudaSuccess, "%s: the capture was invalidated: %s", label, cudaGetErrorString(e));
  }
  (void)cudaGetLastError();
  if (s == LLMK_SUCCESS && e == cudaSuccess) {
    T_CU(cudaGraphInstantiate(&ge, g, 0));
    float *xs = t_xmalloc((size_t)nxs * sizeof(float)), *ws = t_xmalloc((size_t)nws * sizeof(float));
    for (int rep = 0; rep < 3; rep++) {
      /* new scales each replay (the first replay keeps the captured values) */
      for (int64_t i = 0; i < nxs; i++) xs[i] = rep ? p.xs[i] * (float)(0.25 + 2.0 * t_rand_uniform()) : p.xs[i];
      for (int64_t i = 0; i < nws; i++) ws[i] = rep ? p.ws[i] * (float)(0.25 + 2.0 * t_rand_uniform()) : p.ws[i];
      T_CU(cudaMemcpy(p.dxs, xs, (size_t)nxs * sizeof(float), cudaMemcpyHostToDevice));
      T_CU(cudaMemcpy(p.dws, ws, (size_t)nws * sizeof(float), cudaMemcpyHostToDevice));
      T_CU(cudaMemset(dy, 0xFF, (size_t)(M * ldy) * sizeof(uint16_t)));
      T_CU(cudaGraphLaunch(ge, st));
      T_CU(cudaStreamSynchronize(st));
      T_CU(cudaMemcpy(hy, dy, (size_t)(M * ldy) * sizeof(uint16_t), cudaMemcpyDeviceToHost));
      refs r;
      memset(&r, 0, sizeof r);
      pick_rows(&r, M, N, K);
      compute_refs(&p, &r, 2, xs, ws);
      char l2[160];
      snprintf(l2, sizeof l2, "%s replay %d", label, rep);
      int ok = compare(l2, "CPU reference", hy, ldy, &r, r.cpu, N, acc != LLMK_ACCUM_FP32);
      ok &= compare(l2, "fp64 reference", hy, ldy, &r, r.fp64, N, acc != LLMK_ACCUM_FP32);
      if (!ok) n_out_of_tol[acc == LLMK_ACCUM_FP32]++;
      int64_t pad = 0;
      for (int64_t m = 0; m < M; m++)
        for (int64_t n = N; n < ldy; n++) pad += hy[m * ldy + n] != POISON;
      CHECK(pad == 0, "%s: %lld padding elements written", l2, (long long)pad);
      refs_free(&r);
    }
    free(xs);
    free(ws);
    T_CU(cudaGraphExecDestroy(ge));
  }
  if (g) T_CU(cudaGraphDestroy(g));
  T_CU(cudaStreamDestroy(st));
  T_CU(cudaFree(dy));
  free(hy);
  problem_free(&p);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep "skipped:" lines in order with stderr's mismatches */
  t_seed();
  for (int i = 0; i < 256; i++) DQ[i] = (double)llmk_fp8_to_float((uint8_t)i, LLMK_E4M3);
  int ndev = 0;
  llmk_cuda_device_count(&ndev);
  if (ndev == 0) {
    SKIP("no CUDA device");
    TEST_END();
  }
  llmk_device_info info = LLMK_DEVICE_INFO_INIT;
  if (llmk_cuda_device_info(0, &info) == LLMK_SUCCESS && !info.supported) {
    SKIP("device 0 (%s) is not a Hopper GPU", info.name);
    TEST_END();
  }
  CHECK(llmk_create_cpu(&cpu) == LLMK_SUCCESS, "%s", llmk_last_error());
  llmk_status cs = llmk_create_cuda(0, &gpu);
  CHECK(cs == LLMK_SUCCESS, "%s", llmk_last_error());
  if (cs) TEST_END();

  /* LLMK_TEST_QUICK=1 (compute-sanitizer runs): every configuration on the
   * small ragged problem, and graph replay; nothing large. */
  const int quick = getenv("LLMK_TEST_QUICK") != NULL;
  static const int64_t Ms[] = {1, 2, 3, 16, 17, 64, 100, 128, 1000, 4096};
  static const int64_t small_Ms[] = {1, 2, 3, 16, 17};
  static const int64_t NK[][2] = {{8, 16}, {24, 48}, {8 * 37, 16 * 67}, {1280, 8192}, {8192, 1024},
                                       {7168, 8192}};
  int variant = 0;
  for (int si = 0; si < 2 && !quick; si++) {
    const llmk_scaling sc = si ? LLMK_SCALING_ROW : LLMK_SCALING_TENSOR;
    for (size_t i = 0; i < sizeof NK / sizeof NK[0]; i++)
      run_problem(sc, Ms, (int)(sizeof Ms / sizeof Ms[0]), NK[i][0], NK[i][1], &variant);
    /* long K, decode-sized M */
    run_problem(sc, small_Ms, 5, 512, 65536, &variant);
    run_problem(sc, small_Ms, 3, 8 * 37, 16 * 1025, &variant);
    /* K = 0: y = bf16(bias), or 0 */
    run_problem(sc, small_Ms, 5, 24, 0, &variant);
  }
  static const int64_t cfg_Ms[] = {1, 17, 100, 129};
  run_configs(LLMK_SCALING_ROW, 8 * 37, 16 * 67, cfg_Ms, 4, &variant, 0);
  run_configs(LLMK_SCALING_TENSOR, 8 * 37, 16 * 67, cfg_Ms, 2, &variant, 0);
  /* the swapped tiles again with their first W slices loaded before the
   * dependency wait (LLMK_GEMM_W_EARLY=1) */
  setenv("LLMK_GEMM_W_EARLY", "1", 1);
  llmk_env_refresh();
  run_configs(LLMK_SCALING_ROW, 8 * 37, 16 * 67, small_Ms, 2, &variant, 0);
  unsetenv("LLMK_GEMM_W_EARLY");
  llmk_env_refresh();
  if (!quick) run_configs(LLMK_SCALING_ROW, 1280, 8192, cfg_Ms, 2, &variant, 0);
  /* persistent configurations walking many tiles (multicast pairs: an odd
   * number of tile rows, several pairs per cluster) */
  static const int64_t big_Ms[] = {1900, 4096};
  if (!quick) run_configs(LLMK_SCALING_ROW, 8192, 1024, big_Ms, 2, &variant, 1);
  for (int si = 0; si < 2; si++) {
    const llmk_scaling sc = si ? LLMK_SCALING_ROW : LLMK_SCALING_TENSOR;
    for (int ai = 0; ai < 2; ai++) {
      const llmk_accum acc = ai ? LLMK_ACCUM_FP32 : LLMK_ACCUM_DEFAULT;
      graph_replay(sc, LLMK_GEMM_OWN, acc);
      graph_replay(sc, LLMK_GEMM_CUBLASLT, acc);
      graph_replay(sc, LLMK_GEMM_AUTO, acc);
    }
  }
  printf("%d GPU GEMM runs checked, %d not supported (skipped); out of tolerance: %d with fast "
         "accumulation, %d with fp32\n", n_runs, n_unsupported, n_out_of_tol[0], n_out_of_tol[1]);
  llmk_destroy(gpu);
  llmk_destroy(cpu);
  free(last_y);
  TEST_END();
}

#else
int main(void) {
  SKIP("built without CUDA");
  TEST_END();
}
#endif
