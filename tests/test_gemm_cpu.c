/*
 * Semantics of llmk_gemm_fp8 on the CPU backend (the reference of the GPU
 * tests), checked two ways on every case:
 *
 *  1. Against an independent fp64 computation written here: x and w are
 *     dequantized to double with llmk_fp8_to_float and multiplied by their
 *     scales in double, the products summed in double, the bias added. The
 *     result must be within docs/DESIGN.md's GEMM tolerances: relative Frobenius
 *     error <= 1e-2 and |y - ref| <= 1e-2 * |ref| + 1e-2 * rms(ref) per element.
 *  2. Bit for bit against the documented epilogue order, recomputed here in
 *     float: a = (float)exact_acc; v = a * xs; v = v * ws; v = v + (float)bias;
 *     y = bf16_rne(v). (A check of the check: the other association,
 *     a * (xs * ws), must differ somewhere on a large case.)
 *
 * Inputs are quantized with llmk_quantize_fp8 (CPU handle) from normal,
 * uniform and outlier-heavy data. Outputs are poisoned (bf16 0xFFFF, a NaN
 * pattern) with guard zones and row padding that must stay untouched.
 * Covered: TENSOR and ROW scaling; bias NULL, f32, bf16; every accum value
 * (identical bits on the CPU); M in {1, 2, 3, 16, 17, 64, 100}; N, K odd
 * multiples of 8 / 16 and arbitrary values (N = 3, K = 5); K = 0 (y = bias or
 * 0); M = 0 and N = 0 (nothing written); y and w with row pitches larger
 * than N / K; x as [B, S, K] with x_scale [M] or [B, S]; x as a 1-D [K];
 * NaN codes in x (the row becomes NaN) and in w (the column does).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "llmk.h"

static llmk_handle H;

/* ------------------------------------------------------------------------ */
/* Inputs: float data of a distribution, quantized by llmk                   */
/* ------------------------------------------------------------------------ */

enum { D_NORMAL, D_UNIFORM, D_OUTLIER, N_DIST };
static const char *const dist_names[] = {"normal", "uniform", "outlier"};

static float draw(int dist) {
  switch (dist) {
    case D_UNIFORM: return (float)(2.0 * t_rand_uniform() - 1.0);
    case D_OUTLIER: {
      float v = t_rand_normal();
      return t_rand_u64() % 32 == 0 ? v * 300.0f : v;
    }
    default: return t_rand_normal();
  }
}

/* rows x cols of `dist` (times a random per-row magnitude) quantized to e4m3
 * with `scaling` (TENSOR: one scale; ROW: one per row) into q (pitch ld) and
 * scale. */
static void make_fp8(int64_t rows, int64_t cols, int64_t ld, int dist, llmk_scaling scaling,
                     uint8_t *q, float *scale) {
  float *v = t_xmalloc((size_t)(rows * cols) * sizeof(float));
  for (int64_t r = 0; r < rows; r++) {
    float mag = exp2f((float)(t_rand_uniform() * 8.0 - 4.0));
    for (int64_t k = 0; k < cols; k++) v[r * cols + k] = mag * draw(dist);
  }
  llmk_quantize_desc d = {LLMK_QUANTIZE_DESC_SIZE, scaling, 0, 0, NULL, NULL};
  llmk_tensor tv = llmk_tensor_2d(v, LLMK_F32, rows, cols, cols);
  llmk_tensor tq = llmk_tensor_2d(q, LLMK_E4M3, rows, cols, ld);
  llmk_tensor ts = llmk_tensor_1d(scale, LLMK_F32, scaling == LLMK_SCALING_ROW ? rows : 1);
  llmk_status s = llmk_quantize_fp8(H, &d, &tv, &tq, &ts, NULL);
  if (s) {
    fprintf(stderr, "llmk_quantize_fp8: %s\n", llmk_last_error());
    exit(2);
  }
  free(v);
}

/* ------------------------------------------------------------------------ */
/* A case                                                                    */
/* ------------------------------------------------------------------------ */

enum { B_NONE, B_F32, B_BF16 };
static const char *const bias_names[] = {"none", "f32", "bf16"};
enum { L_2D, L_3D, L_3D_SCALE2, L_1D }; /* x [M,K]; [B,S,K] with x_scale [M] or [B,S]; [K] */
static const char *const layout_names[] = {"2d", "3d", "3d/scale[B,S]", "1d"};

typedef struct gcase {
  llmk_scaling scaling;
  int64_t M, N, K;
  int bias, dist, layout;
  int64_t padx, padw, pady; /* row pitch = K + padx, K + padw, N + pady */
  llmk_accum accum;
  int nan_x, nan_w;         /* put a NaN code in x (one row) / w (one row) */
} gcase;

static void case_name(const gcase *c, char *buf, size_t n) {
  snprintf(buf, n, "[%s M=%lld N=%lld K=%lld bias=%s %s %s pads=%lld/%lld/%lld accum=%d%s%s]",
           c->scaling == LLMK_SCALING_ROW ? "row" : "tensor", (long long)c->M, (long long)c->N,
           (long long)c->K, bias_names[c->bias], dist_names[c->dist], layout_names[c->layout],
           (long long)c->padx, (long long)c->padw, (long long)c->pady, (int)c->accum,
           c->nan_x ? " nan-x" : "", c->nan_w ? " nan-w" : "");
}

/* Everything a case produces, kept for the targeted checks. */
typedef struct gdata {
  int64_t ldx, ldw, ldy;
  uint8_t *x, *w;       /* M x ldx, N x ldw codes */
  float *xs, *ws;       /* M or 1, N or 1 */
  void *bias;           /* N elements or NULL */
  uint16_t *ybuf, *y;   /* y = ybuf + GUARD, M x ldy */
  size_t ybuf_elems;
  int64_t nan_row, nan_col;
} gdata;

#define GUARD 32 /* bf16 elements of poison before and after y */
#define POISON 0xFFFFu

static void gdata_free(gdata *g) {
  free(g->x);
  free(g->w);
  free(g->xs);
  free(g->ws);
  free(g->bias);
  free(g->ybuf);
  memset(g, 0, sizeof *g);
}

static float bias_at(const gcase *c, const gdata *g, int64_t n) {
  if (c->bias == B_F32) return ((const float *)g->bias)[n];
  if (c->bias == B_BF16) return llmk_bf16_to_float(((const uint16_t *)g->bias)[n]);
  return 0.0f;
}

static void build(const gcase *c, gdata *g) {
  memset(g, 0, sizeof *g);
  g->ldx = c->K + c->padx;
  g->ldw = c->K + c->padw;
  g->ldy = c->N + c->pady;
  int row = c->scaling == LLMK_SCALING_ROW;
  g->x = t_xmalloc((size_t)(c->M * g->ldx));
  g->w = t_xmalloc((size_t)(c->N * g->ldw));
  /* Padding holds NaN codes: a read past the row would show. */
  memset(g->x, 0x7F, (size_t)(c->M * g->ldx));
  memset(g->w, 0xFF, (size_t)(c->N * g->ldw));
  g->xs = t_xmalloc((size_t)(row ? c->M : 1) * sizeof(float));
  g->ws = t_xmalloc((size_t)(row ? c->N : 1) * sizeof(float));
  g->xs[0] = g->ws[0] = 1.0f;
  if (c->M > 0 && c->K > 0) make_fp8(c->M, c->K, g->ldx, c->dist, c->scaling, g->x, g->xs);
  if (c->N > 0 && c->K > 0) make_fp8(c->N, c->K, g->ldw, (c->dist + 1) % N_DIST, c->scaling, g->w, g->ws);
  if (c->K == 0) { /* no data to quantize: arbitrary positive scales */
    for (int64_t i = 0; i < (row ? c->M : 1); i++) g->xs[i] = (float)(0.5 + t_rand_uniform());
    for (int64_t i = 0; i < (row ? c->N : 1); i++) g->ws[i] = (float)(0.5 + t_rand_uniform());
  }
  if (c->bias != B_NONE) {
    g->bias = t_xmalloc((size_t)c->N * 4);
    for (int64_t n = 0; n < c->N; n++) {
      float b = t_rand_normal() * 4.0f;
      if (n % 7 == 3) b = 0.0f;
      if (c->bias == B_F32) ((float *)g->bias)[n] = b;
      else ((uint16_t *)g->bias)[n] = llmk_float_to_bf16(b);
    }
  }
  g->nan_row = g->nan_col = -1;
  if (c->nan_x && c->M > 0 && c->K > 0) {
    g->nan_row = (int64_t)(t_rand_u64() % (uint64_t)c->M);
    g->x[g->nan_row * g->ldx + (int64_t)(t_rand_u64() % (uint64_t)c->K)] = t_rand_u64() & 1 ? 0x7F : 0xFF;
  }
  if (c->nan_w && c->N > 0 && c->K > 0) {
    g->nan_col = (int64_t)(t_rand_u64() % (uint64_t)c->N);
    g->w[g->nan_col * g->ldw + (int64_t)(t_rand_u64() % (uint64_t)c->K)] = 0x7F;
  }
  g->ybuf_elems = (size_t)(c->M * g->ldy) + 2 * GUARD;
  g->ybuf = t_xmalloc(g->ybuf_elems * 2);
  for (size_t i = 0; i < g->ybuf_elems; i++) g->ybuf[i] = POISON;
  g->y = g->ybuf + GUARD;
}

/* Runs the GEMM of c on g (y poisoned first). */
static llmk_status run(const gcase *c, gdata *g) {
  for (size_t i = 0; i < g->ybuf_elems; i++) g->ybuf[i] = POISON;
  const int64_t M = c->M, N = c->N, K = c->K;
  llmk_tensor tx, ty, txs;
  const int64_t S = 3, B = M / 3; /* L_3D: M = B * S */
  switch (c->layout) {
    case L_1D:
      tx = llmk_tensor_1d(g->x, LLMK_E4M3, K);
      ty = llmk_tensor_1d(g->y, LLMK_BF16, N);
      break;
    case L_3D: case L_3D_SCALE2: {
      llmk_tensor a = {g->x, LLMK_E4M3, 3, {B, S, K, 0}, {S * g->ldx, g->ldx, 1, 0}};
      llmk_tensor b = {g->y, LLMK_BF16, 3, {B, S, N, 0}, {S * g->ldy, g->ldy, 1, 0}};
      tx = a;
      ty = b;
      break;
    }
    default:
      tx = llmk_tensor_2d(g->x, LLMK_E4M3, M, K, g->ldx);
      ty = llmk_tensor_2d(g->y, LLMK_BF16, M, N, g->ldy);
      break;
  }
  int row = c->scaling == LLMK_SCALING_ROW;
  txs = llmk_tensor_1d(g->xs, LLMK_F32, row ? M : 1);
  if (row && c->layout == L_3D_SCALE2) txs = llmk_tensor_2d(g->xs, LLMK_F32, B, S, S);
  llmk_tensor tw = llmk_tensor_2d(g->w, LLMK_E4M3, N, K, g->ldw);
  llmk_tensor tws = llmk_tensor_1d(g->ws, LLMK_F32, row ? N : 1);
  llmk_tensor tb = llmk_tensor_1d(g->bias, c->bias == B_BF16 ? LLMK_BF16 : LLMK_F32, N);
  llmk_gemm_desc d = {LLMK_GEMM_DESC_SIZE, c->scaling, c->accum, (llmk_gemm_backend)(t_rand_u64() % 3), 0};
  return llmk_gemm_fp8(H, &d, &tx, &tw, &txs, &tws, c->bias ? &tb : NULL, &ty, NULL);
}

/* Poisoned bf16 elements outside the M x N output (guards, row padding)
 * that changed. */
static int64_t stray(const gcase *c, const gdata *g) {
  int64_t bad = 0;
  for (size_t i = 0; i < g->ybuf_elems; i++) {
    int inside = 0;
    if (i >= GUARD && i < GUARD + (size_t)(c->M * g->ldy)) inside = (int64_t)((i - GUARD) % (size_t)g->ldy) < c->N;
    if (!inside && g->ybuf[i] != POISON) bad++;
  }
  return bad;
}

/* ------------------------------------------------------------------------ */
/* The two oracles                                                           */
/* ------------------------------------------------------------------------ */

/* e4m3 code -> value, filled from llmk_fp8_to_float (a table only for speed). */
static double DQ[256];

/* Exact sum of products (in double, as the fp64 text says; the sum of e4m3
 * products is exact for these K, so any order gives the same value). */
static double exact_acc(const gcase *c, const gdata *g, int64_t m, int64_t n) {
  double acc = 0.0;
  for (int64_t k = 0; k < c->K; k++)
    acc += DQ[g->x[m * g->ldx + k]] * DQ[g->w[n * g->ldw + k]];
  return acc;
}

/* The documented epilogue, in float, in order; returns bf16 bits. When
 * `swap` is set, the other association a * (xs * ws) (for the check of
 * the check). */
static uint16_t epilogue_bits(const gcase *c, const gdata *g, int64_t m, int64_t n, double acc, int swap) {
  int row = c->scaling == LLMK_SCALING_ROW;
  float xs = g->xs[row ? m : 0], ws = g->ws[row ? n : 0];
  float a = (float)acc, v;
  if (swap) {
    float s = xs * ws;
    v = a * s;
  } else {
    v = a * xs;
    v = v * ws;
  }
  if (c->bias != B_NONE) v = v + bias_at(c, g, n);
  return llmk_float_to_bf16(v);
}

/* The independent fp64 reference: dequantize to double, scale in double. */
static double ref64(const gcase *c, const gdata *g, int64_t m, int64_t n) {
  int row = c->scaling == LLMK_SCALING_ROW;
  double xs = g->xs[row ? m : 0], ws = g->ws[row ? n : 0], acc = 0.0;
  for (int64_t k = 0; k < c->K; k++) {
    double xv = DQ[g->x[m * g->ldx + k]] * xs;
    double wv = DQ[g->w[n * g->ldw + k]] * ws;
    acc += xv * wv;
  }
  return acc + (double)bias_at(c, g, n);
}

/* Checks y of a successful run against both oracles; returns the number of
 * problems found (0 = all good). */
static int64_t verify(const gcase *c, const gdata *g, const char *name) {
  const int64_t M = c->M, N = c->N;
  double *ref = t_xmalloc((size_t)(M * N) * sizeof(double));
  int64_t bits_bad = 0, nan_bad = 0;
  double sum2 = 0.0;
  int64_t nfin = 0;
#pragma omp parallel for reduction(+ : bits_bad, nan_bad, sum2, nfin) schedule(static)
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      double acc = exact_acc(c, g, m, n);
      uint16_t want = epilogue_bits(c, g, m, n, acc, 0), got = g->y[m * g->ldy + n];
      /* NaN sign and payload are not specified: any NaN matches any NaN. */
      int both_nan = isnan(llmk_bf16_to_float(got)) && isnan(llmk_bf16_to_float(want));
      if (got != want && !both_nan) {
        if (bits_bad < 3) {
#pragma omp critical
          fprintf(stderr, "  %s: y[%lld,%lld] = 0x%04x, the documented epilogue gives 0x%04x (acc %.17g)\n",
                  name, (long long)m, (long long)n, got, want, acc);
        }
        bits_bad++;
      }
      ref[m * N + n] = ref64(c, g, m, n);
      int expect_nan = m == g->nan_row || n == g->nan_col;
      if (expect_nan != (isnan(ref[m * N + n]) != 0) || expect_nan != (isnan(llmk_bf16_to_float(got)) != 0))
        nan_bad++;
      if (!expect_nan) {
        sum2 += ref[m * N + n] * ref[m * N + n];
        nfin++;
      }
    }
  CHECK(bits_bad == 0, "%s: %lld elements differ from the documented epilogue order", name, (long long)bits_bad);
  CHECK(nan_bad == 0, "%s: %lld elements where NaN is not exactly in the row of the NaN code in x "
        "or the column of the one in w (row %lld, col %lld)", name, (long long)nan_bad,
        (long long)g->nan_row, (long long)g->nan_col);

  /* Tolerances against the fp64 reference, over the finite elements. */
  const double rms = nfin ? sqrt(sum2 / (double)nfin) : 0.0;
  double err2 = 0.0;
  int64_t tol_bad = 0;
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      if (m == g->nan_row || n == g->nan_col) continue;
      double r = ref[m * N + n], y = (double)llmk_bf16_to_float(g->y[m * g->ldy + n]);
      double e = fabs(y - r);
      err2 += (y - r) * (y - r);
      if (!(e <= 1e-2 * fabs(r) + 1e-2 * rms)) {
        if (tol_bad < 3)
          fprintf(stderr, "  %s: y[%lld,%lld] = %.9g, fp64 reference %.9g (|diff| %.3g > %.3g)\n",
                  name, (long long)m, (long long)n, y, r, e, 1e-2 * fabs(r) + 1e-2 * rms);
        tol_bad++;
      }
    }
  double rel = sum2 > 0.0 ? sqrt(err2 / sum2) : sqrt(err2);
  CHECK(rel <= 1e-2, "%s: relative Frobenius error %.3g > 1e-2", name, rel);
  CHECK(tol_bad == 0, "%s: %lld elements outside 1e-2*|ref| + 1e-2*rms(ref)", name, (long long)tol_bad);
  int64_t st = stray(c, g);
  CHECK(st == 0, "%s: %lld bf16 elements outside y's M x N elements were written", name, (long long)st);
  free(ref);
  return bits_bad + nan_bad + tol_bad + st + (rel > 1e-2);
}

static int64_t run_and_verify(const gcase *c) {
  char name[256];
  case_name(c, name, sizeof name);
  gdata g;
  build(c, &g);
  llmk_status s = run(c, &g);
  CHECK(s == LLMK_SUCCESS, "%s: %s: %s", name, llmk_status_string(s), llmk_last_error());
  int64_t bad = s == LLMK_SUCCESS ? verify(c, &g, name) : 1;
  gdata_free(&g);
  return bad;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */
/* ------------------------------------------------------------------------ */

static gcase mk(llmk_scaling sc, int64_t M, int64_t N, int64_t K, int bias, int dist) {
  gcase c;
  memset(&c, 0, sizeof c);
  c.scaling = sc;
  c.M = M;
  c.N = N;
  c.K = K;
  c.bias = bias;
  c.dist = dist;
  c.layout = L_2D;
  c.accum = LLMK_ACCUM_DEFAULT;
  return c;
}

/* Every scaling x bias x M x (N, K), distributions, pitches and accum
 * values rotating through the grid. */
static void test_grid(void) {
  static const int64_t Ms[] = {1, 2, 3, 16, 17, 64, 100};
  static const int64_t NK[][2] = {{8, 16}, {40, 48}, {56, 144}, {3, 5}, {1, 1}, {13, 31}, {24, 208}, {8, 1}};
  int i = 0;
  for (int si = 0; si < 2; si++)
    for (int b = 0; b < 3; b++)
      for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++)
        for (size_t nk = 0; nk < sizeof NK / sizeof NK[0]; nk++, i++) {
          gcase c = mk(si ? LLMK_SCALING_ROW : LLMK_SCALING_TENSOR, Ms[mi], NK[nk][0], NK[nk][1], b, i % N_DIST);
          c.accum = (llmk_accum)(i % 3);
          if (i % 4 == 1) c.pady = 8;
          if (i % 4 == 2) c.pady = 3, c.padx = 16, c.padw = 7;
          if (i % 4 == 3) c.padw = 16;
          run_and_verify(&c);
        }
  /* Shapes that tile nothing: N = 8 * 37, K = 16 * 67. */
  for (int si = 0; si < 2; si++)
    for (int d = 0; d < N_DIST; d++) {
      gcase c = mk(si ? LLMK_SCALING_ROW : LLMK_SCALING_TENSOR, 64, 8 * 37, 16 * 67, d, d);
      c.pady = 16 * si;
      run_and_verify(&c);
    }
}

/* x as [B, S, K] (x_scale [M] or [B, S]) and as a 1-D [K]. */
static void test_layouts(void) {
  for (int si = 0; si < 2; si++)
    for (int l = L_3D; l <= L_1D; l++)
      for (int pad = 0; pad < 2; pad++) {
        gcase c = mk(si ? LLMK_SCALING_ROW : LLMK_SCALING_TENSOR, l == L_1D ? 1 : 12, 24, 80, (l + pad) % 3, l % N_DIST);
        c.layout = l;
        if (pad) c.padx = 16, c.pady = 8, c.padw = 5;
        run_and_verify(&c);
      }
}

/* The accum flag and the backend field do not change the CPU's bits. */
static void test_accum_identical(void) {
  for (int si = 0; si < 2; si++) {
    gcase c = mk(si ? LLMK_SCALING_ROW : LLMK_SCALING_TENSOR, 17, 40, 272, B_BF16, D_OUTLIER);
    gdata g;
    build(&c, &g);
    uint16_t *first = t_xmalloc((size_t)(c.M * g.ldy) * 2);
    int same = 1;
    for (int a = 0; a < 3; a++) {
      c.accum = (llmk_accum)a;
      llmk_status s = run(&c, &g);
      CHECK(s == LLMK_SUCCESS, "accum %d: %s", a, llmk_last_error());
      if (a == 0) memcpy(first, g.y, (size_t)(c.M * g.ldy) * 2);
      else same &= memcmp(first, g.y, (size_t)(c.M * g.ldy) * 2) == 0;
    }
    CHECK(same, "scaling %d: DEFAULT, FAST and FP32 accumulation give different bits on the CPU", si);
    free(first);
    gdata_free(&g);
  }
}

/* The exact-bit check can tell the documented order from the other one:
 * scale pairs found by search where (a * xs) * ws and a * (xs * ws) round to
 * different bf16 values go on the diagonal of a row-scaled GEMM with
 * x = 1.5, w = 3 (a = 4.5 everywhere, K = 1); y must follow the first. */
static void test_order_matters(void) {
  enum { P = 8 };
  const float a = 4.5f;
  gcase c = mk(LLMK_SCALING_ROW, P, P, 1, B_NONE, D_NORMAL);
  gdata g;
  build(&c, &g);
  for (int i = 0; i < P; i++) {
    g.x[i * g.ldx] = 0x3C; /* 1.5 */
    g.w[i * g.ldw] = 0x44; /* 3 */
    float xs = 1.0f, ws = 1.0f;
    for (long tries = 0; tries < 100000000L; tries++) {
      xs = (float)(1.0 + t_rand_uniform()) * exp2f((float)(t_rand_u64() % 16) - 8.0f);
      ws = (float)(1.0 + t_rand_uniform()) * exp2f((float)(t_rand_u64() % 16) - 8.0f);
      float v1 = a * xs, s = xs * ws;
      v1 = v1 * ws;
      if (llmk_float_to_bf16(v1) != llmk_float_to_bf16(a * s)) break;
    }
    g.xs[i] = xs;
    g.ws[i] = ws;
  }
  llmk_status s = run(&c, &g);
  CHECK(s == LLMK_SUCCESS, "order: %s", llmk_last_error());
  int64_t differ = 0, bad = 0;
  for (int64_t m = 0; m < c.M; m++)
    for (int64_t n = 0; n < c.N; n++) {
      double acc = exact_acc(&c, &g, m, n);
      uint16_t doc = epilogue_bits(&c, &g, m, n, acc, 0), other = epilogue_bits(&c, &g, m, n, acc, 1);
      differ += m == n && doc != other;
      bad += g.y[m * g.ldy + n] != doc;
    }
  CHECK(bad == 0, "order: %lld elements differ from (a * xs) * ws", (long long)bad);
  CHECK(differ == P, "order: only %lld of %d diagonal elements tell the two orders apart", (long long)differ, P);
  gdata_free(&g);
}

/* K = 0: y = bf16(bias), or 0 without a bias, everywhere (x and w may be NULL). */
static void test_k0(void) {
  for (int si = 0; si < 2; si++)
    for (int b = 0; b < 3; b++)
      for (int nul = 0; nul < 2; nul++) {
        gcase c = mk(si ? LLMK_SCALING_ROW : LLMK_SCALING_TENSOR, 5, 24, 0, b, D_NORMAL);
        c.pady = 8;
        char name[256];
        case_name(&c, name, sizeof name);
        gdata g;
        build(&c, &g);
        if (nul) { /* NULL data is allowed for zero-element x and w */
          free(g.x);
          free(g.w);
          g.x = g.w = NULL;
          g.ldx = g.ldw = 0;
        }
        llmk_status s = run(&c, &g);
        CHECK(s == LLMK_SUCCESS, "%s%s: %s", name, nul ? " NULL x/w" : "", llmk_last_error());
        int64_t bad = 0;
        for (int64_t m = 0; m < c.M; m++)
          for (int64_t n = 0; n < c.N; n++) {
            float want = c.bias ? llmk_bf16_to_float(llmk_float_to_bf16(bias_at(&c, &g, n))) : 0.0f;
            bad += llmk_bf16_to_float(g.y[m * g.ldy + n]) != want;
          }
        CHECK(bad == 0, "%s: %lld elements are not bf16(bias) (or 0)", name, (long long)bad);
        CHECK(stray(&c, &g) == 0, "%s: wrote outside y", name);
        if (!nul) verify(&c, &g, name);
        gdata_free(&g);
      }
}

/* M = 0 or N = 0: success, nothing written (y, its guards and padding keep
 * the poison). */
static void test_empty(void) {
  static const int64_t shapes[][3] = {{0, 8, 16}, {4, 0, 16}, {0, 0, 0}, {0, 3, 0}, {3, 0, 0}, {0, 24, 5}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    for (int si = 0; si < 2; si++)
      for (int b = 0; b < 3; b++) {
        gcase c = mk(si ? LLMK_SCALING_ROW : LLMK_SCALING_TENSOR, shapes[i][0], shapes[i][1], shapes[i][2], b, D_NORMAL);
        c.pady = 8; /* y still has M rows of padding when N = 0 */
        char name[256];
        case_name(&c, name, sizeof name);
        gdata g;
        build(&c, &g);
        llmk_status s = run(&c, &g);
        int64_t untouched = 0;
        for (size_t j = 0; j < g.ybuf_elems; j++) untouched += g.ybuf[j] == POISON;
        CHECK(s == LLMK_SUCCESS, "%s: %s", name, llmk_last_error());
        CHECK(untouched == (int64_t)g.ybuf_elems, "%s: %lld elements of y's buffer written",
              name, (long long)g.ybuf_elems - untouched);
        gdata_free(&g);
      }
}

/* A NaN code in x makes its row NaN and leaves the others alone; one in w
 * does the same to its column. */
static void test_nan(void) {
  for (int si = 0; si < 2; si++)
    for (int which = 0; which < 3; which++) {
      gcase c = mk(si ? LLMK_SCALING_ROW : LLMK_SCALING_TENSOR, 17, 40, 96, which, D_NORMAL);
      c.nan_x = which != 1;
      c.nan_w = which != 0;
      c.pady = 8;
      run_and_verify(&c);
    }
}

/* Hand-worked values: x = [[1, 2], [448, -0.5]], w = [[1, 1], [0.25, -2]]. */
static void test_hand(void) {
  uint8_t x[4] = {0x38, 0x40, 0x7E, 0xB0}; /* 1, 2, 448, -0.5 */
  uint8_t w[4] = {0x38, 0x38, 0x28, 0xC0}; /* 1, 1, 0.25, -2 */
  float xs[2] = {0.5f, 2.0f}, ws[2] = {3.0f, 0.125f}, bias[2] = {1.0f, -1.0f};
  uint16_t y[4] = {POISON, POISON, POISON, POISON};
  llmk_tensor tx = llmk_tensor_2d(x, LLMK_E4M3, 2, 2, 2), tw = llmk_tensor_2d(w, LLMK_E4M3, 2, 2, 2);
  llmk_tensor txs = llmk_tensor_1d(xs, LLMK_F32, 2), tws = llmk_tensor_1d(ws, LLMK_F32, 2);
  llmk_tensor tb = llmk_tensor_1d(bias, LLMK_F32, 2), ty = llmk_tensor_2d(y, LLMK_BF16, 2, 2, 2);
  llmk_gemm_desc d = {LLMK_GEMM_DESC_SIZE, LLMK_SCALING_ROW, LLMK_ACCUM_DEFAULT, LLMK_GEMM_AUTO, 0};
  llmk_status s = llmk_gemm_fp8(H, &d, &tx, &tw, &txs, &tws, &tb, &ty, NULL);
  CHECK(s == LLMK_SUCCESS, "hand: %s", llmk_last_error());
  /* acc = [[3, -3.75], [447.5, 113]]; * xs[m] * ws[n] + bias[n]. */
  const float want[4] = {3 * 0.5f * 3 + 1, -3.75f * 0.5f * 0.125f - 1, 447.5f * 2 * 3 + 1, 113.0f * 2 * 0.125f - 1};
  for (int i = 0; i < 4; i++)
    CHECK(y[i] == llmk_float_to_bf16(want[i]), "hand: y[%d] = %g, expected bf16(%g) = %g", i,
          llmk_bf16_to_float(y[i]), want[i], llmk_bf16_to_float(llmk_float_to_bf16(want[i])));
}

int main(void) {
  t_seed();
  for (int i = 0; i < 256; i++) DQ[i] = (double)llmk_fp8_to_float((uint8_t)i, LLMK_E4M3);
  llmk_status st = llmk_create_cpu(&H);
  CHECK(st == LLMK_SUCCESS, "llmk_create_cpu: %s", llmk_last_error());
  if (st != LLMK_SUCCESS) TEST_END();
  test_hand();
  test_grid();
  test_layouts();
  test_accum_identical();
  test_order_matters();
  test_k0();
  test_empty();
  test_nan();
  llmk_destroy(H);
  TEST_END();
}
