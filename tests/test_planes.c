/*
 * Two-plane FP8 activations (llmk_rmsnorm's fp8_planes = 2 feeding
 * llmk_gemm_fp8's x_planes = 2) and llmk_silu_mul_quant's bf16 output.
 *
 * CPU, bitwise against oracles built from other public ops, as llmk.h
 * defines them:
 *   - the hi plane and its scale are the one-plane output;
 *   - the lo plane is llmk_quantize_fp8 (ROW) of d = n - hi * scale in
 *     fp32, n the bf16 output of the same RMSNorm;
 *   - the two-plane GEMM is bf16((P_0 + P_1) [+ bias]) of the one-plane
 *     GEMMs of each plane's rows (no bias), in fp32;
 *   - silu_mul_quant's bf16 output, quantized by llmk_quantize_fp8, is its
 *     e4m3 output.
 * Accuracy: hi + lo is within 2^-8 of n (one plane: ~2^-5), and the
 * two-plane GEMM is closer to the exact product with the dequantized
 * weights than the one-plane GEMM. Bad arguments give INVALID_ARGUMENT and
 * write nothing. With a Hopper GPU: the CUDA results equal the CPU's bit
 * for bit for the norms and silu, and within the FP8 GEMM tolerance (fast
 * accumulation) for the two-plane GEMM, including the workspace-chunked path,
 * and the two-plane GEMM is bit for bit the sum of its own kernel's plane
 * products (the fused epilogue of decode sizes and the two-pass path).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "llmk.h"

static llmk_handle CPU;
#ifdef LLMK_WITH_CUDA
static llmk_handle GPU;
#endif
static llmk_accum g_accum = LLMK_ACCUM_DEFAULT; /* of gemm2b's calls */

static uint16_t bfb(float f) { return llmk_float_to_bf16(f); }
static float bff(uint16_t b) { return llmk_bf16_to_float(b); }
/* e4m3 code -> value (OCP FP8: bias 7, no infinities, S.1111.111 NaN) */
static float e4(uint8_t c) {
  const int e = (c >> 3) & 15, m = c & 7;
  if ((c & 0x7F) == 0x7F) return NAN;
  const float v = e ? ldexpf(1.0f + m / 8.0f, e - 7) : ldexpf(m / 8.0f, -6);
  return c & 0x80 ? -v : v;
}

/* Memory of a handle's backend: host, or device (then `host` mirrors it). */
typedef struct buf {
  void *p;
  size_t n;
  int dev;
} buf;
static buf balloc(int dev, size_t n) {
  buf b = {NULL, n, dev};
#ifdef LLMK_WITH_CUDA
  if (dev) {
    T_CU(cudaMalloc(&b.p, n ? n : 16));
    T_CU(cudaMemset(b.p, 0xA5, n ? n : 16));
    return b;
  }
#endif
  b.p = t_xmalloc(n);
  memset(b.p, 0xA5, n);
  return b;
}
static void bput(buf *b, const void *h) {
#ifdef LLMK_WITH_CUDA
  if (b->dev) {
    T_CU(cudaMemcpy(b->p, h, b->n, cudaMemcpyHostToDevice));
    return;
  }
#endif
  memcpy(b->p, h, b->n);
}
static void *bget(const buf *b) {
  void *h = t_xmalloc(b->n);
#ifdef LLMK_WITH_CUDA
  if (b->dev) {
    T_CU(cudaDeviceSynchronize());
    T_CU(cudaMemcpy(h, b->p, b->n, cudaMemcpyDeviceToHost));
    return h;
  }
#endif
  memcpy(h, b->p, b->n);
  return h;
}
static void bfree(buf *b) {
#ifdef LLMK_WITH_CUDA
  if (b->dev) {
    cudaFree(b->p);
    return;
  }
#endif
  free(b->p);
}

static llmk_tensor t3(void *p, llmk_dtype dt, int64_t a, int64_t b, int64_t c) {
  llmk_tensor t = {p, dt, 3, {a, b, c, 0}, {b * c, c, 1, 0}};
  return t;
}

/* RMSNorm of M x K bf16 rows x (weight w) on handle h: bf16 n, one plane
 * (q1, s1) and two planes (q2 [M, 2, K], s2 [2M]), as host copies. */
typedef struct norm_out {
  uint16_t *n;
  uint8_t *q1, *q2;
  float *s1, *s2;
} norm_out;
static int run_norms(llmk_handle h, int dev, int64_t M, int64_t K, const uint16_t *x, const uint16_t *w,
                     norm_out *o) {
  buf bx = balloc(dev, (size_t)(M * K) * 2), bw = balloc(dev, (size_t)K * 2);
  buf bn = balloc(dev, (size_t)(M * K) * 2), bq1 = balloc(dev, (size_t)(M * K)), bs1 = balloc(dev, (size_t)M * 4);
  buf bq2 = balloc(dev, (size_t)(2 * M * K)), bs2 = balloc(dev, (size_t)(2 * M) * 4);
  bput(&bx, x);
  bput(&bw, w);
  llmk_tensor tx = llmk_tensor_2d(bx.p, LLMK_BF16, M, K, K), tw = llmk_tensor_1d(bw.p, LLMK_BF16, K);
  llmk_tensor tn = llmk_tensor_2d(bn.p, LLMK_BF16, M, K, K), tq1 = llmk_tensor_2d(bq1.p, LLMK_E4M3, M, K, K);
  llmk_tensor ts1 = llmk_tensor_1d(bs1.p, LLMK_F32, M), tq2 = t3(bq2.p, LLMK_E4M3, M, 2, K);
  llmk_tensor ts2 = llmk_tensor_1d(bs2.p, LLMK_F32, 2 * M);
  llmk_rmsnorm_desc d1 = {LLMK_RMSNORM_DESC_SIZE, 1e-5f, 0}, d2 = {LLMK_RMSNORM_DESC_SIZE, 1e-5f, 2};
  int ok = llmk_rmsnorm(h, &d1, &tx, NULL, &tw, &tn, NULL, NULL, NULL) == LLMK_SUCCESS &&
           llmk_rmsnorm(h, &d1, &tx, NULL, &tw, &tq1, &ts1, NULL, NULL) == LLMK_SUCCESS &&
           llmk_rmsnorm(h, &d2, &tx, NULL, &tw, &tq2, &ts2, NULL, NULL) == LLMK_SUCCESS;
  CHECK(ok, "rmsnorm (%s) M=%lld K=%lld: %s", dev ? "gpu" : "cpu", (long long)M, (long long)K, llmk_last_error());
  o->n = bget(&bn), o->q1 = bget(&bq1), o->s1 = bget(&bs1), o->q2 = bget(&bq2), o->s2 = bget(&bs2);
  bfree(&bx), bfree(&bw), bfree(&bn), bfree(&bq1), bfree(&bs1), bfree(&bq2), bfree(&bs2);
  return ok;
}
static void free_norm(norm_out *o) { free(o->n), free(o->q1), free(o->q2), free(o->s1), free(o->s2); }

static void fill_x(uint16_t *x, int64_t n, float mag) {
  for (int64_t i = 0; i < n; i++) {
    float v = t_rand_normal() * mag;
    if (t_rand_u64() % 997 == 0) v *= 60.0f; /* a few outliers */
    x[i] = bfb(v);
  }
}

static void norm_planes_cpu(int64_t M, int64_t K) {
  uint16_t *x = t_xmalloc((size_t)(M * K) * 2), *w = t_xmalloc((size_t)K * 2);
  fill_x(x, M * K, exp2f((float)(t_rand_u64() % 20) - 10.0f));
  for (int64_t k = 0; k < K; k++) w[k] = bfb(1.0f + 0.2f * t_rand_normal());
  norm_out o;
  if (!run_norms(CPU, 0, M, K, x, w, &o)) goto out;
  /* hi plane = one plane; lo plane = quantize_fp8 ROW of d */
  float *d = t_xmalloc((size_t)(M * K) * 4), *sl = t_xmalloc((size_t)M * 4);
  uint8_t *ql = t_xmalloc((size_t)(M * K));
  int64_t bad_hi = 0, bad_lo = 0;
  double e1 = 0, e2 = 0, nn = 0;
  for (int64_t m = 0; m < M; m++) {
    bad_hi += memcmp(o.q2 + 2 * m * K, o.q1 + m * K, (size_t)K) != 0 || memcmp(&o.s2[2 * m], &o.s1[m], 4) != 0;
    for (int64_t k = 0; k < K; k++) {
      const volatile float hi = e4(o.q1[m * K + k]) * o.s1[m]; /* fp32 multiply, then subtract */
      d[m * K + k] = bff(o.n[m * K + k]) - hi;
    }
  }
  llmk_quantize_desc qd = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_ROW, 0, 0, NULL, NULL};
  llmk_tensor td = llmk_tensor_2d(d, LLMK_F32, M, K, K), tql = llmk_tensor_2d(ql, LLMK_E4M3, M, K, K);
  llmk_tensor tsl = llmk_tensor_1d(sl, LLMK_F32, M);
  CHECK(llmk_quantize_fp8(CPU, &qd, &td, &tql, &tsl, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
  for (int64_t m = 0; m < M; m++) {
    bad_lo += memcmp(o.q2 + (2 * m + 1) * K, ql + m * K, (size_t)K) != 0 || memcmp(&o.s2[2 * m + 1], &sl[m], 4) != 0;
    for (int64_t k = 0; k < K; k++) {
      const double n = bff(o.n[m * K + k]), h = (double)e4(o.q1[m * K + k]) * o.s1[m];
      const double l = (double)e4(o.q2[(2 * m + 1) * K + k]) * o.s2[2 * m + 1];
      if (!isfinite(n)) continue;
      e1 += (h - n) * (h - n), e2 += (h + l - n) * (h + l - n), nn += n * n;
    }
  }
  CHECK(bad_hi == 0, "rmsnorm planes M=%lld K=%lld: %lld hi rows differ from the one-plane output", (long long)M,
        (long long)K, (long long)bad_hi);
  CHECK(bad_lo == 0, "rmsnorm planes M=%lld K=%lld: %lld lo rows differ from quantize_fp8(n - hi * scale)",
        (long long)M, (long long)K, (long long)bad_lo);
  if (nn > 0) {
    CHECK(sqrt(e2 / nn) < 1.0 / 256 && sqrt(e2 / nn) < sqrt(e1 / nn) / 8,
          "rmsnorm planes M=%lld K=%lld: rel err one plane %.3e, two planes %.3e", (long long)M, (long long)K,
          sqrt(e1 / nn), sqrt(e2 / nn));
  }
  free(d), free(sl), free(ql);
  free_norm(&o);
out:
  free(x), free(w);
}

/* Two-plane GEMM of q2 [M, 2, K] (scales s2) with random e4m3 W [N, K] on
 * handle h, optional bf16 bias, backend be; returns y (host copy, M x N bf16). */
static uint16_t *gemm2b(llmk_handle h, int dev, int64_t M, int64_t N, int64_t K, const uint8_t *q2, const float *s2,
                        const uint8_t *w, const float *ws, const uint16_t *bias, int planes, llmk_gemm_backend be) {
  const int64_t R = planes * M;
  buf bq = balloc(dev, (size_t)(R * K)), bs = balloc(dev, (size_t)R * 4), bw = balloc(dev, (size_t)(N * K));
  buf bws = balloc(dev, (size_t)N * 4), bb = balloc(dev, (size_t)N * 2), by = balloc(dev, (size_t)(M * N) * 2);
  bput(&bq, q2), bput(&bs, s2), bput(&bw, w), bput(&bws, ws);
  if (bias) bput(&bb, bias);
  llmk_tensor tq = planes == 2 ? t3(bq.p, LLMK_E4M3, M, 2, K) : llmk_tensor_2d(bq.p, LLMK_E4M3, R, K, K);
  llmk_tensor ts = llmk_tensor_1d(bs.p, LLMK_F32, R), tw = llmk_tensor_2d(bw.p, LLMK_E4M3, N, K, K);
  llmk_tensor tws = llmk_tensor_1d(bws.p, LLMK_F32, N), tb = llmk_tensor_1d(bb.p, LLMK_BF16, N);
  llmk_tensor ty = llmk_tensor_2d(by.p, LLMK_BF16, M, N, N);
  llmk_gemm_desc gd = {LLMK_GEMM_DESC_SIZE, LLMK_SCALING_ROW, g_accum, be, planes};
  const llmk_status st = llmk_gemm_fp8(h, &gd, &tq, &tw, &ts, &tws, bias ? &tb : NULL, &ty, NULL);
  CHECK(st == LLMK_SUCCESS, "gemm planes=%d (%s) M=%lld N=%lld K=%lld: %s", planes, dev ? "gpu" : "cpu",
        (long long)M, (long long)N, (long long)K, llmk_last_error());
  uint16_t *y = st == LLMK_SUCCESS ? bget(&by) : NULL;
  bfree(&bq), bfree(&bs), bfree(&bw), bfree(&bws), bfree(&bb), bfree(&by);
  return y;
}
static uint16_t *gemm2(llmk_handle h, int dev, int64_t M, int64_t N, int64_t K, const uint8_t *q2, const float *s2,
                       const uint8_t *w, const float *ws, const uint16_t *bias, int planes) {
  return gemm2b(h, dev, M, N, K, q2, s2, w, ws, bias, planes, LLMK_GEMM_AUTO);
}

/* bf16(P[2m] + P[2m + 1] [+ bias]) of plane products P [2M, N]: the
 * documented two-plane result from one-plane GEMMs; how many of M x N
 * elements of y differ from it. */
static int64_t plane_sum_mismatches(const uint16_t *P, const uint16_t *y, const uint16_t *bias, int64_t M, int64_t N) {
  int64_t bad = 0;
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      float v = bff(P[(2 * m) * N + n]) + bff(P[(2 * m + 1) * N + n]);
      if (bias) v = v + bff(bias[n]);
      bad += y[m * N + n] != bfb(v);
    }
  return bad;
}

typedef struct gemm_case {
  int64_t M, N, K;
  uint16_t *x, *wb, *bias;
  uint8_t *w;
  float *ws;
  norm_out o;
} gemm_case;

static int make_case(gemm_case *c, int64_t M, int64_t N, int64_t K, int with_bias) {
  memset(c, 0, sizeof *c);
  c->M = M, c->N = N, c->K = K;
  c->x = t_xmalloc((size_t)(M * K) * 2);
  uint16_t *nw = t_xmalloc((size_t)K * 2);
  fill_x(c->x, M * K, 1.0f);
  for (int64_t k = 0; k < K; k++) nw[k] = bfb(1.0f + 0.1f * t_rand_normal());
  c->wb = t_xmalloc((size_t)(N * K) * 2);
  for (int64_t i = 0; i < N * K; i++) c->wb[i] = bfb(t_rand_normal() / sqrtf((float)K));
  c->w = t_xmalloc((size_t)(N * K));
  c->ws = t_xmalloc((size_t)N * 4);
  llmk_quantize_desc qd = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_ROW, 0, 0, NULL, NULL};
  llmk_tensor tw = llmk_tensor_2d(c->wb, LLMK_BF16, N, K, K), tq = llmk_tensor_2d(c->w, LLMK_E4M3, N, K, K);
  llmk_tensor ts = llmk_tensor_1d(c->ws, LLMK_F32, N);
  CHECK(llmk_quantize_fp8(CPU, &qd, &tw, &tq, &ts, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
  if (with_bias) {
    c->bias = t_xmalloc((size_t)N * 2);
    for (int64_t n = 0; n < N; n++) c->bias[n] = bfb(t_rand_normal());
  }
  const int ok = run_norms(CPU, 0, M, K, c->x, nw, &c->o);
  free(nw);
  return ok;
}
static void free_case(gemm_case *c) {
  free(c->x), free(c->wb), free(c->w), free(c->ws), free(c->bias);
  free_norm(&c->o);
}

static void gemm_planes_cpu(int64_t M, int64_t N, int64_t K, int with_bias) {
  gemm_case c;
  if (!make_case(&c, M, N, K, with_bias)) {
    free_case(&c);
    return;
  }
  uint16_t *y2 = gemm2(CPU, 0, M, N, K, c.o.q2, c.o.s2, c.w, c.ws, c.bias, 2);
  uint16_t *p = gemm2(CPU, 0, 2 * M, N, K, c.o.q2, c.o.s2, c.w, c.ws, NULL, 1); /* the plane rows, one plane */
  uint16_t *y1 = gemm2(CPU, 0, M, N, K, c.o.q1, c.o.s1, c.w, c.ws, NULL, 1);
  if (y2 && p && y1) {
    const int64_t bad = plane_sum_mismatches(p, y2, c.bias, M, N);
    double e1 = 0, e2 = 0, rr = 0;
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) {
        /* the exact product of the bf16 activation n with the dequantized weights */
        double ref = 0;
        for (int64_t k = 0; k < K; k++) ref += (double)bff(c.o.n[m * K + k]) * e4(c.w[n * K + k]) * c.ws[n];
        const double a = bff(y1[m * N + n]) - ref, b = bff(y2[m * N + n]) - (c.bias ? bff(c.bias[n]) : 0) - ref;
        e1 += a * a, e2 += b * b, rr += ref * ref;
      }
    CHECK(bad == 0, "gemm planes M=%lld N=%lld K=%lld bias=%d: %lld of %lld differ from bf16(P0 + P1 [+ b])",
          (long long)M, (long long)N, (long long)K, with_bias, (long long)bad, (long long)(M * N));
    /* two planes leave the bf16 roundings of P_0, P_1 and y (~2e-3 rms), one
     * plane e4m3's (~1e-2): at least half, where enough outputs average it
     * (one row of 32 may happen to quantize well) */
    if (M * N >= 1024)
      CHECK(sqrt(e2 / rr) < sqrt(e1 / rr) / 2, "gemm planes M=%lld N=%lld K=%lld: activation error one plane %.3e, "
            "two planes %.3e", (long long)M, (long long)N, (long long)K, sqrt(e1 / rr), sqrt(e2 / rr));
  }
  free(y2), free(p), free(y1);
  free_case(&c);
}

/* silu_mul_quant: quantize_fp8 ROW of the bf16 output = the e4m3 output. */
static void silu_bf16_cpu(int64_t M, int64_t F) {
  uint16_t *g = t_xmalloc((size_t)(M * F) * 2), *u = t_xmalloc((size_t)(M * F) * 2), *a = t_xmalloc((size_t)(M * F) * 2);
  uint8_t *q = t_xmalloc((size_t)(M * F)), *q2 = t_xmalloc((size_t)(M * F));
  float *s = t_xmalloc((size_t)M * 4), *s2 = t_xmalloc((size_t)M * 4);
  fill_x(g, M * F, 3.0f);
  fill_x(u, M * F, 1.0f);
  llmk_tensor tg = llmk_tensor_2d(g, LLMK_BF16, M, F, F), tu = llmk_tensor_2d(u, LLMK_BF16, M, F, F);
  llmk_tensor ta = llmk_tensor_2d(a, LLMK_BF16, M, F, F), tq = llmk_tensor_2d(q, LLMK_E4M3, M, F, F);
  llmk_tensor tq2 = llmk_tensor_2d(q2, LLMK_E4M3, M, F, F), ts = llmk_tensor_1d(s, LLMK_F32, M);
  llmk_tensor ts2 = llmk_tensor_1d(s2, LLMK_F32, M);
  llmk_quantize_desc qd = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_ROW, 0, 0, NULL, NULL};
  int ok = llmk_silu_mul_quant(CPU, NULL, &tg, &tu, &ta, NULL, NULL) == LLMK_SUCCESS &&
           llmk_silu_mul_quant(CPU, &qd, &tg, &tu, &tq, &ts, NULL) == LLMK_SUCCESS &&
           llmk_quantize_fp8(CPU, &qd, &ta, &tq2, &ts2, NULL) == LLMK_SUCCESS;
  CHECK(ok, "silu bf16 M=%lld F=%lld: %s", (long long)M, (long long)F, llmk_last_error());
  if (ok)
    CHECK(!memcmp(q, q2, (size_t)(M * F)) && !memcmp(s, s2, (size_t)M * 4),
          "silu bf16 M=%lld F=%lld: quantize_fp8(bf16 output) differs from the e4m3 output", (long long)M, (long long)F);
  free(g), free(u), free(a), free(q), free(q2), free(s), free(s2);
}

static void bad_inputs(void) {
  static uint16_t x[4 * 32] __attribute__((aligned(16))), w[32];
  static uint8_t y[2 * 4 * 32], snap[sizeof y];
  static float s[8];
  for (int i = 0; i < 32; i++) w[i] = bfb(1.0f);
  memset(y, 0xA5, sizeof y);
  memcpy(snap, y, sizeof y);
  llmk_tensor tx = llmk_tensor_2d(x, LLMK_BF16, 4, 32, 32), tw = llmk_tensor_1d(w, LLMK_BF16, 32);
  llmk_tensor ty3 = t3(y, LLMK_E4M3, 4, 2, 32), ty2 = llmk_tensor_2d(y, LLMK_E4M3, 4, 32, 32);
  llmk_tensor tyb = t3(y, LLMK_BF16, 4, 2, 16), ts8 = llmk_tensor_1d(s, LLMK_F32, 8), ts4 = llmk_tensor_1d(s, LLMK_F32, 4);
  llmk_rmsnorm_desc d3 = {LLMK_RMSNORM_DESC_SIZE, 1e-5f, 3}, d2 = {LLMK_RMSNORM_DESC_SIZE, 1e-5f, 2};
  CHECK(llmk_rmsnorm(CPU, &d3, &tx, NULL, &tw, &ty3, &ts8, NULL, NULL) == LLMK_ERR_INVALID_ARGUMENT, "fp8_planes 3");
  CHECK(llmk_rmsnorm(CPU, &d2, &tx, NULL, &tw, &ty2, &ts8, NULL, NULL) == LLMK_ERR_INVALID_ARGUMENT, "y without plane dim");
  CHECK(llmk_rmsnorm(CPU, &d2, &tx, NULL, &tw, &ty3, &ts4, NULL, NULL) == LLMK_ERR_INVALID_ARGUMENT, "y_scale [M]");
  CHECK(llmk_rmsnorm(CPU, &d2, &tx, NULL, &tw, &tyb, NULL, NULL, NULL) == LLMK_ERR_INVALID_ARGUMENT, "bf16 y, 2 planes");
  CHECK(!memcmp(y, snap, sizeof y), "rmsnorm wrote on error");

  static uint8_t q[4 * 2 * 32], wq[16 * 32];
  static float xs[8], wsc[16];
  static uint16_t out[4 * 16], out_snap[4 * 16];
  memset(out, 0xA5, sizeof out);
  memcpy(out_snap, out, sizeof out);
  llmk_tensor tq = t3(q, LLMK_E4M3, 4, 2, 32), tq2 = llmk_tensor_2d(q, LLMK_E4M3, 8, 32, 32);
  llmk_tensor twq = llmk_tensor_2d(wq, LLMK_E4M3, 16, 32, 32), txs = llmk_tensor_1d(xs, LLMK_F32, 8);
  llmk_tensor tws = llmk_tensor_1d(wsc, LLMK_F32, 16), to = llmk_tensor_2d(out, LLMK_BF16, 4, 16, 16);
  llmk_tensor to8 = llmk_tensor_2d(out, LLMK_BF16, 2, 16, 16), tws1 = llmk_tensor_1d(wsc, LLMK_F32, 1);
  llmk_tensor txs1 = llmk_tensor_1d(xs, LLMK_F32, 1);
  llmk_gemm_desc g2 = {LLMK_GEMM_DESC_SIZE, LLMK_SCALING_ROW, LLMK_ACCUM_DEFAULT, LLMK_GEMM_AUTO, 2};
  llmk_gemm_desc gt = {LLMK_GEMM_DESC_SIZE, LLMK_SCALING_TENSOR, LLMK_ACCUM_DEFAULT, LLMK_GEMM_AUTO, 2};
  llmk_gemm_desc g5 = {LLMK_GEMM_DESC_SIZE, LLMK_SCALING_ROW, LLMK_ACCUM_DEFAULT, LLMK_GEMM_AUTO, 5};
  CHECK(llmk_gemm_fp8(CPU, &g5, &tq, &twq, &txs, &tws, NULL, &to, NULL) == LLMK_ERR_INVALID_ARGUMENT, "x_planes 5");
  CHECK(llmk_gemm_fp8(CPU, &gt, &tq, &twq, &txs1, &tws1, NULL, &to, NULL) == LLMK_ERR_INVALID_ARGUMENT, "tensor scaling");
  CHECK(llmk_gemm_fp8(CPU, &g2, &tq2, &twq, &txs, &tws, NULL, &to, NULL) == LLMK_ERR_INVALID_ARGUMENT, "x [2M, K]");
  CHECK(llmk_gemm_fp8(CPU, &g2, &tq, &twq, &txs, &tws, NULL, &to8, NULL) == LLMK_ERR_INVALID_ARGUMENT, "y rows");
  CHECK(llmk_gemm_fp8(CPU, &g2, &tq, &twq, &txs1, &tws, NULL, &to, NULL) == LLMK_ERR_INVALID_ARGUMENT, "x_scale [1]");
  CHECK(!memcmp(out, out_snap, sizeof out), "gemm wrote on error");

  static uint16_t ga[4 * 32];
  llmk_tensor tg = llmk_tensor_2d(ga, LLMK_BF16, 4, 32, 32), tab = llmk_tensor_2d(out, LLMK_BF16, 4, 16, 16);
  llmk_tensor ta = llmk_tensor_2d(x, LLMK_BF16, 4, 32, 32);
  CHECK(llmk_silu_mul_quant(CPU, NULL, &tg, &tg, &ta, &ts4, NULL) == LLMK_ERR_INVALID_ARGUMENT, "bf16 xq with scale");
  CHECK(llmk_silu_mul_quant(CPU, NULL, &tg, &tg, &tab, NULL, NULL) == LLMK_ERR_INVALID_ARGUMENT, "bf16 xq shape");
}

#ifdef LLMK_WITH_CUDA
/* GPU = CPU, bit for bit: the norms, the two-plane GEMM (with a workspace
 * small enough to force row chunks when `small_ws`), silu's bf16 output. */
static void gpu_vs_cpu(int64_t M, int64_t N, int64_t K, int with_bias, int small_ws) {
  gemm_case c;
  if (!make_case(&c, M, N, K, with_bias)) {
    free_case(&c);
    return;
  }
  uint16_t *nw = t_xmalloc((size_t)K * 2);
  for (int64_t k = 0; k < K; k++) nw[k] = bfb(1.0f + 0.1f * t_rand_normal());
  norm_out oc, og;
  if (run_norms(CPU, 0, M, K, c.x, nw, &oc) && run_norms(GPU, 1, M, K, c.x, nw, &og)) {
    CHECK(!memcmp(oc.q2, og.q2, (size_t)(2 * M * K)) && !memcmp(oc.s2, og.s2, (size_t)(2 * M) * 4) &&
              !memcmp(oc.q1, og.q1, (size_t)(M * K)) && !memcmp(oc.n, og.n, (size_t)(M * K) * 2),
          "rmsnorm planes M=%lld K=%lld: GPU differs from CPU", (long long)M, (long long)K);
    free_norm(&og);
  }
  free_norm(&oc);
  void *ws = NULL;
  if (small_ws) { /* room for the cuBLASLt minimum and a few row pairs only */
    const size_t bytes = LLMK_MIN_WORKSPACE_BYTES + ((size_t)N * 4 * 3 + 255) / 256 * 256;
    T_CU(cudaMalloc(&ws, bytes));
    CHECK(llmk_set_workspace(GPU, ws, bytes) == LLMK_SUCCESS, "%s", llmk_last_error());
  }
  uint16_t *yc = gemm2(CPU, 0, M, N, K, c.o.q2, c.o.s2, c.w, c.ws, c.bias, 2);
  uint16_t *yg = gemm2(GPU, 1, M, N, K, c.o.q2, c.o.s2, c.w, c.ws, c.bias, 2);
  if (yc && yg) {
    /* the GPU's FP8 fast accumulation differs from the CPU's exact sums in
     * low bits (as in test_gemm_gpu): a tolerance, not bit equality */
    double num = 0, den = 0, worst = 0;
    for (int64_t i = 0; i < M * N; i++) {
      const double d = (double)bff(yg[i]) - bff(yc[i]);
      num += d * d, den += (double)bff(yc[i]) * bff(yc[i]);
    }
    const double rms = sqrt(den / (double)(M * N));
    for (int64_t i = 0; i < M * N; i++) {
      const double d = fabs((double)bff(yg[i]) - bff(yc[i])) / (2e-2 * fabs(bff(yc[i])) + 2e-2 * rms);
      if (d > worst) worst = d;
    }
    CHECK(sqrt(num / den) < 4e-3 && worst <= 1.0,
          "gemm planes M=%lld N=%lld K=%lld bias=%d small_ws=%d: GPU vs CPU rel err %.3e, worst element %.2f of "
          "its tolerance", (long long)M, (long long)N, (long long)K, with_bias, small_ws, sqrt(num / den), worst);
  }
  if (yg && !small_ws) {
    /* the same kernel on the 2M plane rows as one plane (own kernels, as the
     * two-plane path runs them), summed here: bit for bit the two-plane
     * output, whether the epilogue summed the pairs (decode sizes) or a
     * second pass did */
    uint16_t *pg = gemm2b(GPU, 1, 2 * M, N, K, c.o.q2, c.o.s2, c.w, c.ws, NULL, 1, LLMK_GEMM_OWN);
    if (pg)
      CHECK(plane_sum_mismatches(pg, yg, c.bias, M, N) == 0,
            "gemm planes M=%lld N=%lld K=%lld bias=%d: GPU two-plane output differs from bf16(P0 + P1 [+ b]) of its "
            "own plane products", (long long)M, (long long)N, (long long)K, with_bias);
    free(pg);
  }
  if (small_ws) {
    CHECK(llmk_set_workspace(GPU, NULL, 0) == LLMK_SUCCESS, "%s", llmk_last_error());
    cudaFree(ws);
  }
  free(yc), free(yg), free(nw);
  /* silu bf16 output */
  const int64_t F = K;
  buf bg = balloc(1, (size_t)(M * F) * 2), ba = balloc(1, (size_t)(M * F) * 2);
  uint16_t *g = t_xmalloc((size_t)(M * F) * 2), *ac = t_xmalloc((size_t)(M * F) * 2);
  fill_x(g, M * F, 3.0f);
  bput(&bg, g);
  llmk_tensor tg = llmk_tensor_2d(g, LLMK_BF16, M, F, F), tac = llmk_tensor_2d(ac, LLMK_BF16, M, F, F);
  llmk_tensor tgd = llmk_tensor_2d(bg.p, LLMK_BF16, M, F, F), tad = llmk_tensor_2d(ba.p, LLMK_BF16, M, F, F);
  const int ok = llmk_silu_mul_quant(CPU, NULL, &tg, &tg, &tac, NULL, NULL) == LLMK_SUCCESS &&
                 llmk_silu_mul_quant(GPU, NULL, &tgd, &tgd, &tad, NULL, NULL) == LLMK_SUCCESS;
  CHECK(ok, "silu bf16: %s", llmk_last_error());
  uint16_t *ag = bget(&ba);
  if (ok) CHECK(!memcmp(ac, ag, (size_t)(M * F) * 2), "silu bf16 M=%lld F=%lld: GPU differs from CPU", (long long)M,
                (long long)F);
  free(g), free(ac), free(ag);
  bfree(&bg), bfree(&ba);
  free_case(&c);
}
#endif

#ifdef LLMK_WITH_CUDA
/* Every own FP8 configuration forced in turn (llmk_set_gemm_override; fp32
 * accumulation for the promoting ones): the two-plane output is bit for bit
 * the sum of the same configuration's one-plane products of the plane rows,
 * and within the GEMM tolerance of the CPU. Swapped, split, persistent,
 * TMA-store, multicast and ping-pong tiles each sum the planes their own way. */
static void gpu_planes_every_cfg(int64_t M, int64_t N, int64_t K) {
  gemm_case c;
  if (!make_case(&c, M, N, K, 1)) {
    free_case(&c);
    return;
  }
  for (int i = 0; i < llmk_gemm_config_count(); i++) {
    llmk_gemm_config g = LLMK_GEMM_CONFIG_INIT;
    if (llmk_gemm_config_get(i, &g) || g.in_dtype != LLMK_E4M3) continue;
    llmk_gemm_override o = LLMK_GEMM_OVERRIDE_INIT;
    o.config = i;
    CHECK(llmk_set_gemm_override(GPU, &o) == LLMK_SUCCESS, "override %s: %s", g.name, llmk_last_error());
    g_accum = g.fp32_promote ? LLMK_ACCUM_FP32 : LLMK_ACCUM_FAST;
    uint16_t *yc = gemm2(CPU, 0, M, N, K, c.o.q2, c.o.s2, c.w, c.ws, c.bias, 2);
    uint16_t *yg = gemm2b(GPU, 1, M, N, K, c.o.q2, c.o.s2, c.w, c.ws, c.bias, 2, LLMK_GEMM_OWN);
    uint16_t *pg = gemm2b(GPU, 1, 2 * M, N, K, c.o.q2, c.o.s2, c.w, c.ws, NULL, 1, LLMK_GEMM_OWN);
    if (yc && yg && pg) {
      CHECK(plane_sum_mismatches(pg, yg, c.bias, M, N) == 0,
            "gemm planes, config %s M=%lld N=%lld K=%lld: differs from the sum of its plane products", g.name,
            (long long)M, (long long)N, (long long)K);
      double num = 0, den = 0;
      for (int64_t e = 0; e < M * N; e++) {
        const double d = (double)bff(yg[e]) - bff(yc[e]);
        num += d * d, den += (double)bff(yc[e]) * bff(yc[e]);
      }
      CHECK(sqrt(num / den) < 4e-3, "gemm planes, config %s M=%lld: GPU vs CPU rel err %.3e", g.name, (long long)M,
            sqrt(num / den));
    }
    free(yc), free(yg), free(pg);
  }
  llmk_set_gemm_override(GPU, NULL);
  g_accum = LLMK_ACCUM_DEFAULT;
  free_case(&c);
}
#endif

int main(void) {
  t_seed();
  if (llmk_create_cpu(&CPU) != LLMK_SUCCESS) {
    fprintf(stderr, "llmk_create_cpu: %s\n", llmk_last_error());
    return 1;
  }
  static const int64_t Ms[] = {1, 3, 16}, Ks[] = {16, 100, 4096};
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) norm_planes_cpu(Ms[i], Ks[j]);
  gemm_planes_cpu(1, 16, 32, 0);
  gemm_planes_cpu(5, 40, 256, 1);
  gemm_planes_cpu(16, 64, 1024, 0);
  silu_bf16_cpu(3, 100);
  silu_bf16_cpu(16, 4096);
  bad_inputs();
#ifdef LLMK_WITH_CUDA
  if (t_hopper_handle("two-plane GPU-vs-CPU checks", &GPU)) {
    gpu_vs_cpu(16, 1024, 4096, 0, 0);
    gpu_vs_cpu(16, 512, 1024, 1, 1);
    gpu_vs_cpu(100, 256, 512, 1, 0);
    gpu_vs_cpu(100, 256, 512, 1, 1);
    gpu_vs_cpu(3, 4096, 512, 0, 1);
    gpu_vs_cpu(3, 4096, 512, 1, 0);
    gpu_vs_cpu(64, 8192, 1024, 1, 0);
    gpu_vs_cpu(65, 1000, 640, 0, 0);
    gpu_planes_every_cfg(40, 512, 768);
    gpu_planes_every_cfg(7, 264, 256);
    llmk_destroy(GPU);
  }
#else
  SKIP("built without CUDA: two-plane GPU-vs-CPU checks");
#endif
  llmk_destroy(CPU);
  TEST_END();
}
