/*
 * llmk_gemm_fp8 with block scaling (DeepSeek-V3: activations in 1 x 128
 * groups or 128 x 128 blocks, weights in 128 x 128 blocks), on the CPU
 * reference and, where a Hopper GPU is visible, on llmk's own kernels:
 *
 *  1. CPU, bit for bit, against this file's own reading of include/llmk.h:
 *     per 128-deep slice the exact sum rounded once to fp32, then acc =
 *     fmaf(part, sx * sw, acc), + bias, one rounding to bf16. Scales
 *     row-major and column-major, with padded strides; ragged K, N and M;
 *     x as [B, S, K]; K = 0; y padding untouched.
 *  2. CPU against an fp64 computation of the dequantized product: relative
 *     Frobenius error <= 1e-2 on outlier-heavy data, and smaller than
 *     row-wise scaling's on the same data.
 *  3. GPU against (1) on sampled rows: relative Frobenius error <= 1e-2 and
 *     per element 1e-2 |ref| + 1e-2 rms(ref) + MMA_REL * sum over 32-deep
 *     groups of |group sum| (Hopper's MMA, test_gemm_gpu.c says why); every
 *     own configuration that promotes (forced), at several K splits; y
 *     poisoned first; the same bits on a repeated run; a forced cuBLASLt
 *     runs with 1x128 groups in every scale layout (repacked) or has no
 *     algorithm, and answers NOT_SUPPORTED, writing nothing, for 128x128
 *     activation blocks.
 *  4. Bad arguments: INVALID_ARGUMENT, nothing written.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "llmk.h"

#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

#define POISON 0xFFFFu
#define MMA_REL 3e-2

static llmk_handle cpu;
static double DQ[256];

/* One problem: x [M, K] and w [N, K] e4m3, their scales canonical
 * (row-major [xr, KB] and [NB, KB]), bias f32 or bf16, y [M, ldy]. */
typedef struct prob {
  int64_t M, N, K, KB, xr, NB, ldy;
  int xbm;   /* 1 or 128 */
  int bias;  /* 0 none, 1 f32, 2 bf16 */
  uint8_t *x, *w;
  float *xs, *ws, *b32;
  uint16_t *b16, *y;
} prob;

static float draw(int outliers) {
  float v = t_rand_normal();
  if (outliers && t_rand_u64() % 1000 == 0) v *= 100.0f;
  return v;
}

/* values -> e4m3 codes and block scales through llmk_quantize_fp8 (CPU) */
static void quantize(const float *v, int64_t rows, int64_t K, int64_t bm, uint8_t *q, float *s) {
  llmk_quantize_desc d = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_BLOCK, bm, 128, NULL, NULL};
  const int64_t sr = (rows + bm - 1) / bm, kb = (K + 127) / 128;
  llmk_tensor tv = llmk_tensor_2d((void *)v, LLMK_F32, rows, K, K), tq = llmk_tensor_2d(q, LLMK_E4M3, rows, K, K);
  llmk_tensor ts = llmk_tensor_2d(s, LLMK_F32, sr, kb, kb);
  llmk_status st = llmk_quantize_fp8(cpu, &d, &tv, &tq, &ts, NULL);
  CHECK(st == LLMK_SUCCESS, "llmk_quantize_fp8: %s", llmk_last_error());
}

static void prob_init(prob *p, int64_t M, int64_t N, int64_t K, int xbm, int bias, int64_t pady, int outliers) {
  memset(p, 0, sizeof *p);
  p->M = M, p->N = N, p->K = K, p->KB = (K + 127) / 128, p->xbm = xbm, p->bias = bias;
  p->xr = (M + xbm - 1) / xbm, p->NB = (N + 127) / 128, p->ldy = N + pady;
  float *vx = t_xmalloc((size_t)(M * K + 1) * 4), *vw = t_xmalloc((size_t)(N * K + 1) * 4);
  for (int64_t i = 0; i < M * K; i++) vx[i] = draw(outliers);
  for (int64_t i = 0; i < N * K; i++) vw[i] = 0.02f * draw(outliers);
  p->x = t_xmalloc((size_t)(M * K + 1)), p->w = t_xmalloc((size_t)(N * K + 1));
  p->xs = t_xmalloc((size_t)(p->xr * p->KB + 1) * 4), p->ws = t_xmalloc((size_t)(p->NB * p->KB + 1) * 4);
  quantize(vx, M, K, xbm, p->x, p->xs);
  quantize(vw, N, K, 128, p->w, p->ws);
  free(vx), free(vw);
  p->b32 = t_xmalloc((size_t)N * 4 + 4), p->b16 = t_xmalloc((size_t)N * 2 + 2);
  for (int64_t n = 0; n < N; n++) {
    p->b16[n] = llmk_float_to_bf16(0.1f * t_rand_normal());
    p->b32[n] = llmk_bf16_to_float(p->b16[n]) + 0.001f;
  }
  p->y = t_xmalloc((size_t)(M * p->ldy + 1) * 2);
}

static void prob_free(prob *p) {
  free(p->x), free(p->w), free(p->xs), free(p->ws), free(p->b32), free(p->b16), free(p->y);
}

/* (1): the documented order, in float */
static uint16_t spec_bits(const prob *p, int64_t m, int64_t n) {
  float acc = 0.0f;
  for (int64_t b = 0; b < p->KB; b++) {
    double part = 0.0; /* exact: e4m3 products summed over <= 128 */
    for (int64_t k = 128 * b; k < p->K && k < 128 * (b + 1); k++) part += DQ[p->x[m * p->K + k]] * DQ[p->w[n * p->K + k]];
    const float sx = p->xs[(m / p->xbm) * p->KB + b], sw = p->ws[(n / 128) * p->KB + b];
    const float s = sx * sw;
    acc = fmaf((float)part, s, acc);
  }
  if (p->bias == 1) acc = acc + p->b32[n];
  if (p->bias == 2) acc = acc + llmk_bf16_to_float(p->b16[n]);
  return llmk_float_to_bf16(acc);
}

/* fp64 of the dequantized product (+ bias), and the MMA allowance */
static double ref64(const prob *p, int64_t m, int64_t n, double *mma) {
  double acc = 0.0, grp = 0.0, agrp = 0.0;
  for (int64_t k = 0; k < p->K; k++) {
    const int64_t b = k / 128;
    const double t = DQ[p->x[m * p->K + k]] * p->xs[(m / p->xbm) * p->KB + b] * DQ[p->w[n * p->K + k]] *
                     p->ws[(n / 128) * p->KB + b];
    acc += t, grp += t;
    if (k % 32 == 31 || k == p->K - 1) agrp += fabs(grp), grp = 0.0;
  }
  if (mma) *mma = MMA_REL * agrp;
  if (p->bias == 1) acc += p->b32[n];
  if (p->bias == 2) acc += llmk_bf16_to_float(p->b16[n]);
  return acc;
}

/* A scale tensor over `base` (rows x kb canonical values copied into it),
 * row-major with row pitch `pitch` >= kb, or column-major with column
 * pitch `pitch` >= rows. */
static llmk_tensor scale_tensor(float *buf, const float *canon, int64_t rows, int64_t kb, int colmajor, int64_t pitch) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t b = 0; b < kb; b++) buf[colmajor ? b * pitch + r : r * pitch + b] = canon[r * kb + b];
  llmk_tensor t = {buf, LLMK_F32, 2, {rows, kb, 0, 0}, {colmajor ? 1 : pitch, colmajor ? pitch : 1, 0, 0}};
  return t;
}

static size_t scale_elems(int64_t rows, int64_t kb, int colmajor, int64_t pitch) {
  return (size_t)(colmajor ? kb * pitch : rows * pitch) + 1;
}

static llmk_tensor bias_tensor(prob *p, void *b32, void *b16) {
  return p->bias == 2 ? llmk_tensor_1d(b16, LLMK_BF16, p->N) : llmk_tensor_1d(b32, LLMK_F32, p->N);
}

/* ---------------------------------------------------------------- 1 + 2 */
static void cpu_case(int64_t M, int64_t N, int64_t K, int xbm, int bias, int colmajor, int pad, int batched) {
  prob p;
  prob_init(&p, M, N, K, xbm, bias, pad ? 8 : 0, 1);
  char label[128];
  snprintf(label, sizeof label, "cpu %lldx%lldx%lld x%d-row blocks bias %d %s scales pad %d%s", (long long)M,
           (long long)N, (long long)K, xbm, bias, colmajor ? "column-major" : "row-major", pad,
           batched ? " x[B,S,K]" : "");
  const int64_t xp = colmajor ? p.xr + 3 * pad : p.KB + 3 * pad, wp = colmajor ? p.NB + pad : p.KB + pad;
  float *bx = t_xmalloc(scale_elems(p.xr, p.KB, colmajor, xp) * 4), *bw = t_xmalloc(scale_elems(p.NB, p.KB, colmajor, wp) * 4);
  llmk_tensor txs = scale_tensor(bx, p.xs, p.xr, p.KB, colmajor, xp), tws = scale_tensor(bw, p.ws, p.NB, p.KB, colmajor, wp);
  llmk_tensor tx = llmk_tensor_2d(p.x, LLMK_E4M3, M, K, K), tw = llmk_tensor_2d(p.w, LLMK_E4M3, N, K, K);
  llmk_tensor ty = llmk_tensor_2d(p.y, LLMK_BF16, M, N, p.ldy), tb = bias_tensor(&p, p.b32, p.b16);
  if (batched && M % 2 == 0) {
    llmk_tensor a = {p.x, LLMK_E4M3, 3, {2, M / 2, K, 0}, {(M / 2) * K, K, 1, 0}};
    llmk_tensor c = {p.y, LLMK_BF16, 3, {2, M / 2, N, 0}, {(M / 2) * p.ldy, p.ldy, 1, 0}};
    tx = a, ty = c;
  }
  for (int64_t i = 0; i < M * p.ldy; i++) p.y[i] = POISON;
  llmk_gemm_desc d = {LLMK_GEMM_DESC_SIZE, LLMK_SCALING_BLOCK, t_rand_u64() % 2 ? LLMK_ACCUM_DEFAULT : LLMK_ACCUM_FP32, LLMK_GEMM_AUTO, 0};
  llmk_status s = llmk_gemm_fp8(cpu, &d, &tx, &tw, &txs, &tws, bias ? &tb : NULL, &ty, NULL);
  CHECK(s == LLMK_SUCCESS, "%s: %s", label, llmk_last_error());
  int64_t bad = 0, stray = 0;
  double e2 = 0.0, r2 = 0.0;
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < p.ldy; n++) {
      const uint16_t got = p.y[m * p.ldy + n];
      if (n >= N) {
        stray += got != POISON;
        continue;
      }
      const uint16_t want = spec_bits(&p, m, n);
      if (got != want && bad++ < 3)
        fprintf(stderr, "  %s: y[%lld,%lld] = 0x%04x, the documented order gives 0x%04x\n", label, (long long)m,
                (long long)n, got, want);
      const double r = ref64(&p, m, n, NULL), g = llmk_bf16_to_float(got);
      e2 += (g - r) * (g - r), r2 += r * r;
    }
  CHECK(bad == 0, "%s: %lld elements differ from the documented order", label, (long long)bad);
  CHECK(stray == 0, "%s: %lld padding elements written", label, (long long)stray);
  const double rel = r2 > 0 ? sqrt(e2 / r2) : sqrt(e2);
  CHECK(rel <= 1e-2, "%s: relative Frobenius error %.3g against fp64 (> 1e-2)", label, rel);
  free(bx), free(bw);
  prob_free(&p);
}

/* 2: on outlier-heavy rows, 1x128 groups lose less than per-row scales:
 * the same values quantized row-wise, both against the exact product of
 * the unquantized values. The outliers are LLM-like: a few activation
 * channels (4 of 2048) `big` times the rest, the weights that read them
 * 1/big as large, so they do not dominate the output. FP8 is a float
 * format: a row's outlier costs its other values nothing until it pushes
 * them into e4m3's subnormals (2^-6 of the scale's unit), so at 100x both
 * scalings err alike and the gap opens past ~10^4 x. */
static void block_beats_row(double big, int must_halve) {
  const int64_t M = 64, N = 256, K = 2048;
  float *vx = t_xmalloc((size_t)(M * K) * 4), *vw = t_xmalloc((size_t)(N * K) * 4);
  for (int64_t i = 0; i < M * K; i++) vx[i] = t_rand_normal() * (i % K % 512 == 77 ? (float)big : 1.0f);
  for (int64_t i = 0; i < N * K; i++) vw[i] = 0.02f * t_rand_normal() / (i % K % 512 == 77 ? (float)big : 1.0f);
  uint8_t *qx = t_xmalloc((size_t)(M * K)), *qw = t_xmalloc((size_t)(N * K));
  float *sxb = t_xmalloc((size_t)(M * 16) * 4), *swb = t_xmalloc((size_t)(2 * 16) * 4);
  float *sxr = t_xmalloc((size_t)M * 4), *swr = t_xmalloc((size_t)N * 4);
  uint16_t *yb = t_xmalloc((size_t)(M * N) * 2), *yr = t_xmalloc((size_t)(M * N) * 2);
  llmk_tensor tvx = llmk_tensor_2d(vx, LLMK_F32, M, K, K), tvw = llmk_tensor_2d(vw, LLMK_F32, N, K, K);
  llmk_tensor tqx = llmk_tensor_2d(qx, LLMK_E4M3, M, K, K), tqw = llmk_tensor_2d(qw, LLMK_E4M3, N, K, K);
  double err[2];
  for (int blk = 0; blk < 2; blk++) {
    llmk_quantize_desc dx = {LLMK_QUANTIZE_DESC_SIZE, blk ? LLMK_SCALING_BLOCK : LLMK_SCALING_ROW, 1, 128, NULL, NULL};
    llmk_quantize_desc dw = {LLMK_QUANTIZE_DESC_SIZE, blk ? LLMK_SCALING_BLOCK : LLMK_SCALING_ROW, 128, 128, NULL, NULL};
    llmk_tensor tsx = blk ? llmk_tensor_2d(sxb, LLMK_F32, M, 16, 16) : llmk_tensor_1d(sxr, LLMK_F32, M);
    llmk_tensor tsw = blk ? llmk_tensor_2d(swb, LLMK_F32, 2, 16, 16) : llmk_tensor_1d(swr, LLMK_F32, N);
    CHECK(llmk_quantize_fp8(cpu, &dx, &tvx, &tqx, &tsx, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
    CHECK(llmk_quantize_fp8(cpu, &dw, &tvw, &tqw, &tsw, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
    uint16_t *y = blk ? yb : yr;
    llmk_tensor ty = llmk_tensor_2d(y, LLMK_BF16, M, N, N);
    llmk_gemm_desc d = {LLMK_GEMM_DESC_SIZE, blk ? LLMK_SCALING_BLOCK : LLMK_SCALING_ROW, LLMK_ACCUM_DEFAULT, LLMK_GEMM_AUTO, 0};
    CHECK(llmk_gemm_fp8(cpu, &d, &tqx, &tqw, &tsx, &tsw, NULL, &ty, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
    double e2 = 0.0, r2 = 0.0;
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) {
        double r = 0.0;
        for (int64_t k = 0; k < K; k++) r += (double)vx[m * K + k] * vw[n * K + k];
        const double g = llmk_bf16_to_float(y[m * N + n]);
        e2 += (g - r) * (g - r), r2 += r * r;
      }
    err[blk] = sqrt(e2 / r2);
  }
  /* below ~10^5 x the two differ by noise only: printed, not checked */
  if (must_halve)
    CHECK(err[1] <= 0.5 * err[0], "outliers %gx: block-scaled error %.3g is not at most half of row-wise %.3g", big,
          err[1], err[0]);
  printf("4 activation channels of %gx, %lldx%lldx%lld: relative error row-wise %.3g, block 1x128 x "
         "128x128 %.3g\n",
         big, (long long)M, (long long)N, (long long)K, err[0], err[1]);
  free(vx), free(vw), free(qx), free(qw), free(sxb), free(swb), free(sxr), free(swr), free(yb), free(yr);
}

static void k0_case(void) {
  /* K = 0: scales [M or NB, 0], y = bias or 0 */
  static uint8_t x[4], w[8];
  static float b32[16];
  static uint16_t y[3 * 16];
  for (int i = 0; i < 16; i++) b32[i] = (float)i - 7.5f;
  for (int bias = 0; bias < 2; bias++) {
    for (int i = 0; i < 3 * 16; i++) y[i] = POISON;
    llmk_tensor tx = llmk_tensor_2d(x, LLMK_E4M3, 3, 0, 0), tw = llmk_tensor_2d(w, LLMK_E4M3, 16, 0, 0);
    llmk_tensor txs = {NULL, LLMK_F32, 2, {3, 0, 0, 0}, {0, 1, 0, 0}}, tws = {NULL, LLMK_F32, 2, {1, 0, 0, 0}, {0, 1, 0, 0}};
    llmk_tensor ty = llmk_tensor_2d(y, LLMK_BF16, 3, 16, 16), tb = llmk_tensor_1d(b32, LLMK_F32, 16);
    llmk_gemm_desc d = {LLMK_GEMM_DESC_SIZE, LLMK_SCALING_BLOCK, LLMK_ACCUM_DEFAULT, LLMK_GEMM_AUTO, 0};
    llmk_status s = llmk_gemm_fp8(cpu, &d, &tx, &tw, &txs, &tws, bias ? &tb : NULL, &ty, NULL);
    CHECK(s == LLMK_SUCCESS, "K = 0: %s", llmk_last_error());
    int bad = 0;
    for (int i = 0; i < 3 * 16; i++) bad += y[i] != llmk_float_to_bf16(bias ? b32[i % 16] : 0.0f);
    CHECK(bad == 0, "K = 0 (bias %d): %d elements are not bf16(bias) / 0", bias, bad);
  }
}

static void cpu_cases(void) {
  static const int64_t shapes[][3] = {{1, 128, 128}, {3, 136, 272}, {17, 264, 1040}, {130, 384, 512}, {64, 200, 100}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    for (int xbm = 1; xbm <= 128; xbm += 127)
      for (int v = 0; v < 4; v++)
        cpu_case(shapes[i][0], shapes[i][1], shapes[i][2], xbm, (int)((i + v) % 3), v & 1, (v >> 1) & 1, v == 2);
  block_beats_row(100.0, 0);
  block_beats_row(1000.0, 0);
  block_beats_row(10000.0, 0);
  block_beats_row(100000.0, 1);
  block_beats_row(1000000.0, 1);
  k0_case();
}

/* ------------------------------------------------------------------- 4 */
static void bad_cases(llmk_handle h, uint8_t *x, uint8_t *w, float *s, uint16_t *y, const char *where) {
  /* x [4, 256], w [8, 256]: KB = 2; y [4, 8] */
  llmk_tensor tx = llmk_tensor_2d(x, LLMK_E4M3, 4, 256, 256), tw = llmk_tensor_2d(w, LLMK_E4M3, 8, 256, 256);
  llmk_tensor txs = llmk_tensor_2d(s, LLMK_F32, 4, 2, 2), tws = llmk_tensor_2d(s + 16, LLMK_F32, 1, 2, 2);
  llmk_tensor ty = llmk_tensor_2d(y, LLMK_BF16, 4, 8, 8);
  llmk_tensor xs_1d = llmk_tensor_1d(s, LLMK_F32, 4), xs_kb3 = llmk_tensor_2d(s, LLMK_F32, 4, 3, 3);
  llmk_tensor xs_rows2 = llmk_tensor_2d(s, LLMK_F32, 2, 2, 2), ws_rows2 = llmk_tensor_2d(s + 16, LLMK_F32, 2, 2, 2);
  llmk_tensor xs_strided = {s, LLMK_F32, 2, {4, 2, 0, 0}, {2, 2, 0, 0}}, xs_short = {s, LLMK_F32, 2, {4, 2, 0, 0}, {1, 3, 0, 0}};
  llmk_tensor ws_bf16 = tws;
  ws_bf16.dtype = LLMK_BF16;
  llmk_tensor xs_null = txs;
  xs_null.data = NULL;
  llmk_tensor ty_on_scales = llmk_tensor_2d(s, LLMK_BF16, 4, 8, 8);
  llmk_gemm_desc d = {LLMK_GEMM_DESC_SIZE, LLMK_SCALING_BLOCK, LLMK_ACCUM_DEFAULT, LLMK_GEMM_AUTO, 0};
  llmk_gemm_desc fast = {LLMK_GEMM_DESC_SIZE, LLMK_SCALING_BLOCK, LLMK_ACCUM_FAST, LLMK_GEMM_AUTO, 0};
  llmk_gemm_desc col = {LLMK_GEMM_DESC_SIZE, LLMK_SCALING_COL, LLMK_ACCUM_DEFAULT, LLMK_GEMM_AUTO, 0};
  const struct {
    const char *what;
    llmk_status st;
  } r[] = {
      {"FAST accumulation", llmk_gemm_fp8(h, &fast, &tx, &tw, &txs, &tws, NULL, &ty, NULL)},
      {"column scaling", llmk_gemm_fp8(h, &col, &tx, &tw, &txs, &tws, NULL, &ty, NULL)},
      {"x_scale 1-d", llmk_gemm_fp8(h, &d, &tx, &tw, &xs_1d, &tws, NULL, &ty, NULL)},
      {"x_scale KB = 3", llmk_gemm_fp8(h, &d, &tx, &tw, &xs_kb3, &tws, NULL, &ty, NULL)},
      {"x_scale 2 rows", llmk_gemm_fp8(h, &d, &tx, &tw, &xs_rows2, &tws, NULL, &ty, NULL)},
      {"w_scale 2 rows", llmk_gemm_fp8(h, &d, &tx, &tw, &txs, &ws_rows2, NULL, &ty, NULL)},
      {"x_scale strides {2, 2}", llmk_gemm_fp8(h, &d, &tx, &tw, &xs_strided, &tws, NULL, &ty, NULL)},
      {"x_scale column pitch 3 < 4 rows", llmk_gemm_fp8(h, &d, &tx, &tw, &xs_short, &tws, NULL, &ty, NULL)},
      {"w_scale bf16", llmk_gemm_fp8(h, &d, &tx, &tw, &txs, &ws_bf16, NULL, &ty, NULL)},
      {"x_scale NULL data", llmk_gemm_fp8(h, &d, &tx, &tw, &xs_null, &tws, NULL, &ty, NULL)},
      {"NULL w_scale", llmk_gemm_fp8(h, &d, &tx, &tw, &txs, NULL, NULL, &ty, NULL)},
      {"y overlaps the scales", llmk_gemm_fp8(h, &d, &tx, &tw, &txs, &tws, NULL, &ty_on_scales, NULL)},
  };
  for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
    CHECK(r[i].st == LLMK_ERR_INVALID_ARGUMENT, "%s: %s: got %s", where, r[i].what, llmk_status_string(r[i].st));
}

/* ------------------------------------------------------------------- 3 */
#ifdef LLMK_WITH_CUDA
/* y (host copy) on sampled rows against spec_bits / ref64 */
static int gpu_check(const prob *p, const char *label) {
  const int64_t S = p->M <= 64 ? p->M : 24;
  int64_t rows[64], bad = 0, unwritten = 0;
  double e2 = 0.0, r2 = 0.0, s2 = 0.0;
  for (int64_t i = 0; i < S; i++) {
    rows[i] = S == p->M ? i : i == 0 ? 0 : i == 1 ? p->M - 1 : (int64_t)(t_rand_u64() % (uint64_t)p->M);
    for (int64_t n = 0; n < p->N; n++) s2 += pow(ref64(p, rows[i], n, NULL), 2);
  }
  const double rms = sqrt(s2 / (double)(S * p->N));
  for (int64_t m = 0; m < p->M; m++)
    for (int64_t n = 0; n < p->N; n++) unwritten += p->y[m * p->ldy + n] == POISON;
  for (int64_t i = 0; i < S; i++) {
    const int64_t m = rows[i];
    for (int64_t n = 0; n < p->N; n++) {
      double mma;
      const double r64 = ref64(p, m, n, &mma), want = llmk_bf16_to_float(spec_bits(p, m, n));
      const double got = llmk_bf16_to_float(p->y[m * p->ldy + n]);
      const double tol = 1e-2 * fabs(want) + 1e-2 * rms + mma;
      e2 += (got - r64) * (got - r64), r2 += r64 * r64;
      if (!(fabs(got - want) <= tol) && bad++ < 3)
        fprintf(stderr, "  %s: y[%lld,%lld] = %.6g, reference %.6g (tol %.3g)\n", label, (long long)m, (long long)n, got,
                want, tol);
    }
  }
  const double rel = r2 > 0 ? sqrt(e2 / r2) : sqrt(e2);
  CHECK(unwritten == 0, "%s: %lld elements not written", label, (long long)unwritten);
  CHECK(bad == 0 && rel <= 1e-2, "%s: %lld elements out of tolerance, relative Frobenius error %.3g", label,
        (long long)bad, rel);
  return bad == 0 && rel <= 1e-2;
}

/* Scale layouts of the GPU cases: row-major (x and w, padded w pitch),
 * column-major (padded), and cuBLASLt's (x [KB][M], w pitch roundup(KB, 4)) */
enum { LAYOUT_ROW, LAYOUT_COL, LAYOUT_LT, LAYOUTS };
static const char *const layout_name[] = {"row-major", "column-major", "cuBLASLt's"};

static void gpu_case(llmk_handle gpu, int64_t M, int64_t N, int64_t K, int xbm, int bias, int layout, int cfg,
                     int splits) {
  prob p;
  prob_init(&p, M, N, K, xbm, bias, layout == LAYOUT_COL ? 8 : 0, t_rand_u64() % 2);
  char label[160];
  llmk_gemm_config g = LLMK_GEMM_CONFIG_INIT;
  if (cfg >= 0) CHECK(llmk_gemm_config_get(cfg, &g) == LLMK_SUCCESS, "configuration %d: %s", cfg, llmk_last_error());
  snprintf(label, sizeof label, "gpu %lldx%lldx%lld x%d-row blocks bias %d %s scales cfg %s k%d", (long long)M,
           (long long)N, (long long)K, xbm, bias, layout_name[layout], g.name ? g.name : "-", splits);
  const int xcol = layout != LAYOUT_ROW, wcol = layout == LAYOUT_COL;
  const int64_t xp = layout == LAYOUT_COL ? p.xr + 4 : layout == LAYOUT_LT ? p.xr : p.KB;
  const int64_t wp = layout == LAYOUT_COL ? p.NB : layout == LAYOUT_LT ? (p.KB + 3) / 4 * 4 : p.KB + 3;
  const size_t nxs = scale_elems(p.xr, p.KB, xcol, xp), nws = scale_elems(p.NB, p.KB, wcol, wp);
  float *hx = t_xmalloc(nxs * 4), *hw = t_xmalloc(nws * 4);
  llmk_tensor txs = scale_tensor(hx, p.xs, p.xr, p.KB, xcol, xp), tws = scale_tensor(hw, p.ws, p.NB, p.KB, wcol, wp);
  void *dx = t_to_dev(p.x, (size_t)(M * K)), *dw = t_to_dev(p.w, (size_t)(N * K));
  void *dxs = t_to_dev(hx, nxs * 4), *dws = t_to_dev(hw, nws * 4), *db32 = t_to_dev(p.b32, (size_t)N * 4),
       *db16 = t_to_dev(p.b16, (size_t)N * 2);
  const size_t ny = (size_t)(M * p.ldy) * 2;
  void *dy;
  T_CU(cudaMalloc(&dy, ny));
  txs.data = dxs, tws.data = dws;
  llmk_tensor tx = llmk_tensor_2d(dx, LLMK_E4M3, M, K, K), tw = llmk_tensor_2d(dw, LLMK_E4M3, N, K, K);
  llmk_tensor ty = llmk_tensor_2d(dy, LLMK_BF16, M, N, p.ldy), tb = bias_tensor(&p, db32, db16);
  /* the configuration and K split forced through the handle's override */
  llmk_gemm_override o = LLMK_GEMM_OVERRIDE_INIT;
  o.config = cfg, o.splits = splits > 0 ? splits : 0;
  CHECK(llmk_set_gemm_override(gpu, &o) == LLMK_SUCCESS, "%s: override: %s", label, llmk_last_error());
  /* Runs 0 and 1: the dispatcher's choice (a forced configuration: the own
   * kernels), twice, for the same bits; run 2 (dispatcher cases): the own
   * kernels, whatever the dispatcher would pick. */
  uint16_t *first = t_xmalloc(ny);
  for (int rep = 0; rep < (cfg < 0 ? 3 : 2); rep++) {
    T_CU(cudaMemset(dy, 0xFF, ny));
    llmk_gemm_desc d = {LLMK_GEMM_DESC_SIZE, LLMK_SCALING_BLOCK, LLMK_ACCUM_DEFAULT, cfg >= 0 || rep == 2 ? LLMK_GEMM_OWN : LLMK_GEMM_AUTO, 0};
    llmk_status s = llmk_gemm_fp8(gpu, &d, &tx, &tw, &txs, &tws, bias ? &tb : NULL, &ty, NULL);
    CHECK(s == LLMK_SUCCESS, "%s run %d: %s", label, rep, llmk_last_error());
    cudaError_t e = cudaDeviceSynchronize();
    CHECK(e == cudaSuccess, "%s run %d: %s", label, rep, cudaGetErrorString(e));
    if (s || e) break;
    T_CU(cudaMemcpy(rep == 0 ? first : p.y, dy, ny, cudaMemcpyDeviceToHost));
    if (rep == 1) CHECK(memcmp(first, p.y, ny) == 0, "%s: two runs gave different bits", label);
    if (rep == 0) continue;
    /* padding between rows untouched */
    int64_t stray = 0;
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = N; n < p.ldy; n++) stray += p.y[m * p.ldy + n] != POISON;
    CHECK(stray == 0, "%s run %d: %lld padding elements written", label, rep, (long long)stray);
    char rl[192];
    snprintf(rl, sizeof rl, "%s run %d", label, rep);
    gpu_check(&p, rl);
  }
  llmk_set_gemm_override(gpu, NULL);
  /* Forced cuBLASLt: with 1x128 activation groups, in any layout (repacked
   * into its own), the reference's result (or NOT_SUPPORTED where it has
   * no algorithm, e.g. M = 1); with 128x128 blocks NOT_SUPPORTED. Nothing
   * written when not. */
  if (cfg < 0) {
    T_CU(cudaMemset(dy, 0xFF, ny));
    llmk_gemm_desc d = {LLMK_GEMM_DESC_SIZE, LLMK_SCALING_BLOCK, LLMK_ACCUM_FP32, LLMK_GEMM_CUBLASLT, 0};
    llmk_status s = llmk_gemm_fp8(gpu, &d, &tx, &tw, &txs, &tws, bias ? &tb : NULL, &ty, NULL);
    const int fits = xbm == 1 || M == 1;
    char lt_label[192];
    snprintf(lt_label, sizeof lt_label, "%s, forced cuBLASLt", label);
    CHECK(s == LLMK_ERR_NOT_SUPPORTED || (fits && s == LLMK_SUCCESS), "%s: %s", lt_label, llmk_status_string(s));
    T_CU(cudaDeviceSynchronize());
    T_CU(cudaMemcpy(p.y, dy, ny, cudaMemcpyDeviceToHost));
    if (s == LLMK_SUCCESS) {
      gpu_check(&p, lt_label);
    } else {
      int64_t written = 0;
      for (size_t i = 0; i < ny / 2; i++) written += p.y[i] != POISON;
      CHECK(written == 0, "%s: wrote %lld elements", lt_label, (long long)written);
    }
    if (fits && s != LLMK_SUCCESS) printf("note: %s: no cuBLASLt algorithm (%s)\n", lt_label, llmk_last_error());
  }
  free(first), free(hx), free(hw);
  void *const bufs[] = {dx, dw, dxs, dws, db32, db16, dy};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) T_CU(cudaFree(bufs[i]));
  prob_free(&p);
}

static void gpu_cases(void) {
  llmk_handle gpu;
  if (!t_hopper_handle("the CUDA part of the block-scaled GEMM test", &gpu)) return;
  /* the dispatcher's choice, both scale layouts and both activation blocks */
  static const int64_t shapes[][3] = {{1, 128, 128},    {3, 136, 272},     {17, 264, 1040},  {130, 384, 512},
                                      {128, 1280, 8192}, {1000, 1024, 4096}, {4096, 7168, 1024}, {2, 512, 65536}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    for (int v = 0; v < 4; v++)
      gpu_case(gpu, shapes[i][0], shapes[i][1], shapes[i][2], v == 3 ? 128 : 1, (int)((i + v) % 3),
               v == 3 ? LAYOUT_LT : v, -1, 0);
  /* every own configuration that promotes, forced, on ragged shapes */
  for (int c = 0; c < llmk_gemm_config_count(); c++) {
    llmk_gemm_config g = LLMK_GEMM_CONFIG_INIT;
    if (llmk_gemm_config_get(c, &g) || g.in_dtype != LLMK_E4M3 || !g.fp32_promote) continue;
    static const int ks[] = {1, 2, 3, 8};
    for (size_t q = 0; q < sizeof ks / sizeof ks[0]; q++) {
      gpu_case(gpu, 200, 392, 1040, 1, (int)(q % 3), (int)(q % LAYOUTS), c, ks[q]);
      gpu_case(gpu, 3, 264, 4096 + 16, q % 2 ? 128 : 1, (int)((q + 1) % 3), 0, c, ks[q]);
    }
  }
  /* CUDA layout rules hold for block scaling too */
  uint8_t *d;
  T_CU(cudaMalloc((void **)&d, 1 << 16));
  llmk_tensor tx = llmk_tensor_2d(d, LLMK_E4M3, 4, 136, 136), tw = llmk_tensor_2d(d + 4096, LLMK_E4M3, 8, 136, 136);
  llmk_tensor txs = llmk_tensor_2d(d + 8192, LLMK_F32, 4, 2, 2), tws = llmk_tensor_2d(d + 8192 + 64, LLMK_F32, 1, 2, 2);
  llmk_tensor ty = llmk_tensor_2d(d + 12288, LLMK_BF16, 4, 8, 8);
  llmk_gemm_desc dd = {LLMK_GEMM_DESC_SIZE, LLMK_SCALING_BLOCK, LLMK_ACCUM_DEFAULT, LLMK_GEMM_AUTO, 0};
  llmk_status s = llmk_gemm_fp8(gpu, &dd, &tx, &tw, &txs, &tws, NULL, &ty, NULL);
  CHECK(s == LLMK_ERR_INVALID_ARGUMENT, "K = 136 (not a multiple of 16) on CUDA: got %s", llmk_status_string(s));
  bad_cases(gpu, d, d + 4096, (float *)(d + 8192), (uint16_t *)(d + 16384), "cuda");
  T_CU(cudaFree(d));
  llmk_destroy(gpu);
}
#else
static void gpu_cases(void) { SKIP("built without CUDA: the CUDA part of the block-scaled GEMM test"); }
#endif

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  t_seed();
  for (int c = 0; c < 256; c++) DQ[c] = (double)llmk_fp8_to_float((uint8_t)c, LLMK_E4M3);
  CHECK(llmk_create_cpu(&cpu) == LLMK_SUCCESS, "%s", llmk_last_error());
  cpu_cases();
  static uint8_t hx[4 * 256], hw[8 * 256];
  static float hs[32];
  static uint16_t hy[4 * 8];
  bad_cases(cpu, hx, hw, hs, hy, "cpu");
  gpu_cases();
  llmk_destroy(cpu);
  TEST_END();
}
