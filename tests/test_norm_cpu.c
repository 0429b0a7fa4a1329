/*
 * llmk_rmsnorm and llmk_silu_mul_quant on the CPU backend.
 *
 * Every result is compared BITWISE with an oracle written here from the
 * text of llmk.h ("Normalization and activation"), taken literally: s, ss
 * summed in fp64 in index order, r rounded once to fp32, n = bf16((s*r)*w);
 * a = bf16 of the fp64 SiLU product, rounded once (by a rounding routine of
 * its own: truncate, then compare with both neighbours); FP8 output by
 * docs/DESIGN.md's quantization rule. Output buffers are poisoned, and writes
 * into row padding or past either end are counted. Then: hand-checked
 * values, the FP8 outputs against llmk_quantize_fp8 of the bf16 results,
 * the residual in place against a separate buffer, NaN/Inf rows, empty
 * shapes, and a bad-input test for every argument (status, message, no
 * output byte written).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard_buf.h"
#include "harness.h"
#include "llmk.h"

static llmk_handle H;

#define BF16_NAN 0x7FC0u
#define MIN_SCALE (1.0f / (448.0f * 512.0f))

static float bff(uint16_t b) { return llmk_bf16_to_float(b); }
static uint16_t bfb(float f) { return llmk_float_to_bf16(f); }
/* llmk.h: every NaN written to a bf16 output is 0x7FC0 */
static uint16_t o_bf16(float f) { return isnan(f) ? (uint16_t)BF16_NAN : llmk_float_to_bf16(f); }
static uint32_t fbits(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  return b;
}
static float unif(float a, float b) { return a + (b - a) * (float)t_rand_uniform(); }

/* fp64 -> bf16, nearest even, one rounding: lo = the largest bf16 magnitude
 * <= |d| (a float at or below |d|, truncated), then the nearer of lo and
 * its successor (2^128 standing for Inf), ties to the even code. */
static uint16_t o_bf16_from_double(double d) {
  if (isnan(d)) return (uint16_t)BF16_NAN;
  const uint16_t sign = signbit(d) ? 0x8000u : 0u;
  const double a = fabs(d);
  float f = (float)a;
  if ((double)f > a) f = nextafterf(f, 0.0f);
  const uint16_t lo = (uint16_t)(fbits(f) >> 16);
  if (lo >= 0x7F80u) return (uint16_t)(sign | 0x7F80u);
  const double vlo = bff(lo), vhi = lo == 0x7F7Fu ? ldexp(1.0, 128) : bff((uint16_t)(lo + 1));
  const double dl = a - vlo, dh = vhi - a; /* both exact */
  const uint16_t m = dl < dh ? lo : dh < dl ? (uint16_t)(lo + 1) : (lo & 1u) ? (uint16_t)(lo + 1) : lo;
  return (uint16_t)(sign | m);
}

/* docs/DESIGN.md's e4m3 group: scale and codes of n values v (optional ub). */
static float o_scale(const float *v, int64_t n, const float *ub) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; i++)
    if (isfinite(v[i]) && fabsf(v[i]) > amax) amax = fabsf(v[i]);
  if (ub) amax = fminf(amax, *ub);
  return fmaxf(amax / 448.0f, MIN_SCALE);
}

static int untouched(const gbuf *b) { return stray_writes(b, 0, 0, 1, 1) == 0; }

/* ------------------------------------------------------------------------ */
/* Data                                                                      */
/* ------------------------------------------------------------------------ */

enum { D_NORMAL, D_OUTLIER, D_SPECIAL, D_ROWS, D_TINY, D_HUGE, D_WIDE, N_DIST };
static const char *const dist_names[] = {"normal", "outlier", "nan/inf", "rows", "tiny", "huge", "wide"};

/* M x K values (already rounded to bf16). D_SPECIAL puts NaN or +-Inf in a
 * few rows only, so that most rows stay finite. */
static void gen(float *v, int64_t M, int64_t K, int dist, float mag) {
  for (int64_t r = 0; r < M; r++) {
    const int kind = (int)(t_rand_u64() % 4);
    const float rc = mag * t_rand_normal();
    const int special_row = dist == D_SPECIAL && r % 5 == 2;
    for (int64_t k = 0; k < K; k++) {
      float x = mag * t_rand_normal();
      const uint64_t u = t_rand_u64();
      switch (dist) {
        case D_OUTLIER: if (u % 50 == 0) x *= 1000.0f; break;
        case D_SPECIAL:
          if (special_row && u % 16 == 0) x = (u >> 8) % 3 == 0 ? NAN : (u >> 8) % 3 == 1 ? INFINITY : -INFINITY;
          break;
        case D_ROWS: x = kind == 0 ? rc : kind == 1 ? 0.0f : kind == 2 ? -fabsf(rc) : x; break;
        case D_TINY: x = t_rand_normal() * 0x1p-128f; break;          /* bf16 subnormals */
        case D_HUGE: x = t_rand_normal() * 0x1p125f; break;           /* squares overflow fp32 */
        case D_WIDE: x = (u & 1 ? -1.0f : 1.0f) * ldexpf(unif(1.0f, 2.0f), (int)((u >> 1) % 200) - 100); break;
        default: break;
      }
      v[r * K + k] = bff(bfb(x));
    }
  }
}

/* ------------------------------------------------------------------------ */
/* RMSNorm: oracle and cases                                                 */
/* ------------------------------------------------------------------------ */

/* llmk.h's rmsnorm text, literally. s (M*K bits), n (M*K bits), q and
 * scale (e4m3 y) are dense outputs. */
static void o_rmsnorm(const float *x, const float *res, const float *w, int64_t M, int64_t K, float eps,
                      uint16_t *s, uint16_t *n, uint8_t *q, float *scale) {
  float *nv = t_xmalloc((size_t)(K > 0 ? K : 1) * sizeof(float));
  for (int64_t m = 0; m < M; m++) {
    double ss = 0.0;
    for (int64_t k = 0; k < K; k++) {
      const int64_t i = m * K + k;
      s[i] = res ? o_bf16(x[i] + res[i]) : bfb(x[i]);
      const double d = (double)bff(s[i]);
      ss += d * d;
    }
    const float r = (float)(1.0 / sqrt(ss / (double)K + (double)eps));
    for (int64_t k = 0; k < K; k++) {
      const int64_t i = m * K + k;
      const float p = bff(s[i]) * r;
      n[i] = o_bf16(p * w[k]);
      nv[k] = bff(n[i]);
    }
    if (!q) continue;
    scale[m] = o_scale(nv, K, NULL);
    const float inv = 1.0f / scale[m];
    for (int64_t k = 0; k < K; k++) q[m * K + k] = llmk_float_to_fp8(nv[k] * inv, LLMK_E4M3);
  }
  free(nv);
}

enum { L_2D, L_3D, L_1D };
enum { R_NONE, R_SEPARATE, R_IN_PLACE };

typedef struct ncase {
  int64_t M, K;
  int layout;  /* L_3D: [2, M/2, K]; L_1D: [K] with M = 1 */
  int res;     /* R_* */
  int fp8;     /* y e4m3 with y_scale, else bf16 */
  int strided; /* row pitches K+3 (x), K+5 (residual), K+1 (residual_out), K+2 (y) */
  int dist;
  float eps;
} ncase;

static llmk_tensor view(void *data, llmk_dtype dt, const ncase *c, int64_t cols, int64_t ld) {
  if (c->layout == L_1D) return llmk_tensor_1d(data, dt, cols);
  if (c->layout == L_3D) {
    llmk_tensor t = {data, dt, 3, {2, c->M / 2, cols, 0}, {(c->M / 2) * ld, ld, 1, 0}};
    return t;
  }
  return llmk_tensor_2d(data, dt, c->M, cols, ld);
}

static void case_label(const ncase *c, char *b, size_t n) {
  snprintf(b, n, "[rmsnorm M=%lld K=%lld%s res=%s y=%s%s %s eps=%g]", (long long)c->M, (long long)c->K,
           c->layout == L_3D ? " 3d" : c->layout == L_1D ? " 1d" : "",
           c->res == R_NONE ? "none" : c->res == R_SEPARATE ? "separate" : "in-place", c->fp8 ? "e4m3" : "bf16",
           c->strided ? " strided" : "", dist_names[c->dist], (double)c->eps);
}

/* Runs one case on the CPU handle against the oracle. */
static void run_norm(const ncase *c) {
  char name[200];
  case_label(c, name, sizeof name);
  const int64_t M = c->M, K = c->K, n = M * K;
  const int64_t ldx = c->strided ? K + 3 : K, ldr = c->strided ? K + 5 : K, ldo = c->strided ? K + 1 : K,
                ldy = c->strided ? K + 2 : K;
  const float mag = c->dist == D_NORMAL ? exp2f(unif(-20.0f, 20.0f)) : 1.0f;
  float *xv = t_xmalloc((size_t)(n + 1) * 4), *rv = t_xmalloc((size_t)(n + 1) * 4), *wv = t_xmalloc((size_t)(K + 1) * 4);
  gen(xv, M, K, c->dist, mag);
  gen(rv, M, K, c->dist == D_SPECIAL ? D_NORMAL : c->dist, mag);
  for (int64_t k = 0; k < K; k++) wv[k] = k % 17 == 5 ? 0.0f : bff(bfb(unif(-2.0f, 2.0f)));

  /* inputs; the padding holds huge values that would show if read */
  uint16_t *xb = t_xmalloc((size_t)(M * ldx + 1) * 2), *rb = t_xmalloc((size_t)(M * ldr + 1) * 2);
  uint16_t *wb = t_xmalloc((size_t)(K + 1) * 2);
  for (int64_t i = 0; i < M * ldx; i++) xb[i] = 0x7F00;
  for (int64_t i = 0; i < M * ldr; i++) rb[i] = 0x7F00;
  for (int64_t r = 0; r < M; r++)
    for (int64_t k = 0; k < K; k++) {
      xb[r * ldx + k] = bfb(xv[r * K + k]);
      rb[r * ldr + k] = bfb(rv[r * K + k]);
    }
  for (int64_t k = 0; k < K; k++) wb[k] = bfb(wv[k]);
  uint16_t *xcopy = t_xmalloc((size_t)(M * ldx + 1) * 2), *rcopy = t_xmalloc((size_t)(M * ldr + 1) * 2);
  memcpy(xcopy, xb, (size_t)(M * ldx) * 2);
  memcpy(rcopy, rb, (size_t)(M * ldr) * 2);

  uint16_t *os = t_xmalloc((size_t)(n + 1) * 2), *on = t_xmalloc((size_t)(n + 1) * 2);
  uint8_t *oq = t_xmalloc((size_t)(n + 1));
  float *osc = t_xmalloc((size_t)(M + 1) * 4);
  o_rmsnorm(xv, c->res ? rv : NULL, wv, M, K, c->eps, os, on, c->fp8 ? oq : NULL, osc);

  const llmk_dtype yt = c->fp8 ? LLMK_E4M3 : LLMK_BF16;
  const size_t yes = c->fp8 ? 1 : 2;
  static const uint8_t poisons[2] = {0xA5, 0x5A};
  for (int pi = 0; pi < 2; pi++) {
    gbuf yb, sb, ob;
    void *y = gbuf_alloc(&yb, (size_t)(M * ldy) * yes, poisons[pi]);
    float *ys = gbuf_alloc(&sb, (size_t)M * 4, poisons[pi]);
    uint16_t *ro = gbuf_alloc(&ob, (size_t)(M * ldo) * 2, poisons[pi]);
    if (c->res == R_IN_PLACE) memcpy(rb, rcopy, (size_t)(M * ldr) * 2);
    llmk_rmsnorm_desc d = {LLMK_RMSNORM_DESC_SIZE, c->eps, 0};
    llmk_tensor tx = view(xb, LLMK_BF16, c, K, ldx), tr = view(rb, LLMK_BF16, c, K, ldr);
    llmk_tensor tw = llmk_tensor_1d(wb, LLMK_BF16, K), ty = view(y, yt, c, K, ldy);
    llmk_tensor tys = llmk_tensor_1d(ys, LLMK_F32, M);
    llmk_tensor to = c->res == R_IN_PLACE ? tr : view(ro, LLMK_BF16, c, K, ldo);
    const int64_t ldso = c->res == R_IN_PLACE ? ldr : ldo;
    const uint16_t *sout = c->res == R_IN_PLACE ? rb : ro;
    llmk_status st = llmk_rmsnorm(H, &d, &tx, c->res ? &tr : NULL, &tw, &ty, c->fp8 ? &tys : NULL,
                                  c->res ? &to : NULL, NULL);
    CHECK(st == LLMK_SUCCESS, "%s: %s: %s", name, llmk_status_string(st), llmk_last_error());

    int64_t bad_s = 0, bad_y = 0, bad_sc = 0, fr = -1, fk = -1;
    for (int64_t r = 0; r < M; r++)
      for (int64_t k = 0; k < K; k++) {
        const int64_t i = r * K + k;
        if (c->res && sout[r * ldso + k] != os[i]) bad_s++;
        const int ybad = c->fp8 ? ((uint8_t *)y)[r * ldy + k] != oq[i] : ((uint16_t *)y)[r * ldy + k] != on[i];
        if (ybad && !bad_y++) fr = r, fk = k;
      }
    if (c->fp8)
      for (int64_t r = 0; r < M; r++) bad_sc += fbits(ys[r]) != fbits(osc[r]);
    CHECK(bad_s == 0 && bad_y == 0 && bad_sc == 0,
          "%s poison 0x%02X: %lld residual_out, %lld y, %lld y_scale differ from the oracle; first y (%lld,%lld): "
          "llmk 0x%04x oracle 0x%04x",
          name, poisons[pi], (long long)bad_s, (long long)bad_y, (long long)bad_sc, (long long)fr, (long long)fk,
          bad_y ? (c->fp8 ? ((uint8_t *)y)[fr * ldy + fk] : ((uint16_t *)y)[fr * ldy + fk]) : 0,
          bad_y ? (c->fp8 ? oq[fr * K + fk] : on[fr * K + fk]) : 0);
    int64_t stray = stray_writes(&yb, M, K, ldy, yes) + stray_writes(&sb, c->fp8 ? M : 0, 1, 1, 4) +
                    stray_writes(&ob, c->res == R_SEPARATE ? M : 0, K, ldo, 2);
    int64_t in_bad = memcmp(xb, xcopy, (size_t)(M * ldx) * 2) != 0;
    if (c->res == R_SEPARATE) in_bad += memcmp(rb, rcopy, (size_t)(M * ldr) * 2) != 0;
    if (c->res == R_IN_PLACE) /* only the elements, not the padding */
      for (int64_t r = 0; r < M; r++)
        for (int64_t k = K; k < ldr; k++) in_bad += rb[r * ldr + k] != rcopy[r * ldr + k];
    CHECK(stray == 0 && in_bad == 0, "%s: %lld bytes written outside the outputs, inputs changed: %lld", name,
          (long long)stray, (long long)in_bad);
    free(yb.base);
    free(sb.base);
    free(ob.base);
  }
  free(xv), free(rv), free(wv), free(xb), free(rb), free(wb), free(xcopy), free(rcopy);
  free(os), free(on), free(oq), free(osc);
}

/* ------------------------------------------------------------------------ */
/* RMSNorm: hand-checked values and properties                               */
/* ------------------------------------------------------------------------ */

static llmk_status norm_dense(int64_t M, int64_t K, float eps, const uint16_t *x, const uint16_t *res,
                              const uint16_t *w, void *y, llmk_dtype yt, float *ys, uint16_t *ro) {
  llmk_rmsnorm_desc d = {LLMK_RMSNORM_DESC_SIZE, eps, 0};
  llmk_tensor tx = llmk_tensor_2d((void *)x, LLMK_BF16, M, K, K), tr = llmk_tensor_2d((void *)res, LLMK_BF16, M, K, K);
  llmk_tensor tw = llmk_tensor_1d((void *)w, LLMK_BF16, K), ty = llmk_tensor_2d(y, yt, M, K, K);
  llmk_tensor ts = llmk_tensor_1d(ys, LLMK_F32, M), to = llmk_tensor_2d(ro, LLMK_BF16, M, K, K);
  return llmk_rmsnorm(H, &d, &tx, res ? &tr : NULL, &tw, &ty, yt == LLMK_E4M3 ? &ts : NULL, res ? &to : NULL, NULL);
}

static void norm_hand(void) {
  /* r = (float)(1/sqrt(1 + 1e-5)) = 0.999995; n = bf16(r * w) */
  const float xa[8] = {1, -1, 1, -1, 3, 4, 0, 0}, wa[4] = {1, 2, 0.5f, -3}, wb[4] = {1, 1, 1, 1};
  uint16_t x[8], w1[4], w2[4], y[8];
  for (int i = 0; i < 8; i++) x[i] = bfb(xa[i]);
  for (int i = 0; i < 4; i++) w1[i] = bfb(wa[i]), w2[i] = bfb(wb[i]);
  CHECK(norm_dense(1, 4, 1e-5f, x, NULL, w1, y, LLMK_BF16, NULL, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
  CHECK(y[0] == 0x3F80 && y[1] == 0xC000 && y[2] == 0x3F00 && y[3] == 0x4040,
        "hand row {1,-1,1,-1} * {1,2,.5,-3}: got %04x %04x %04x %04x, want 3f80 c000 3f00 4040", y[0], y[1], y[2], y[3]);
  /* {3,4,0,0}: ss = 25, r = 0.39999968; bf16(1.19999) = 1.203125, bf16(1.59999) = 1.6015625 */
  CHECK(norm_dense(1, 4, 1e-5f, x + 4, NULL, w2, y, LLMK_BF16, NULL, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
  CHECK(y[0] == 0x3F9A && y[1] == 0x3FCD && y[2] == 0 && y[3] == 0,
        "hand row {3,4,0,0}: got %04x %04x %04x %04x, want 3f9a 3fcd 0 0", y[0], y[1], y[2], y[3]);
  /* residual: x {1,2,3,4} + {0.5,-2,1,0} = s {1.5, +0, 4, 4}; ss = 34.25,
   * r = 0.34174287; n = {0.51171875, 0, 1.3671875, 1.3671875} */
  const float xr[4] = {1, 2, 3, 4}, rr[4] = {0.5f, -2, 1, 0};
  uint16_t xx[4], res[4], ro[4];
  for (int i = 0; i < 4; i++) xx[i] = bfb(xr[i]), res[i] = bfb(rr[i]);
  CHECK(norm_dense(1, 4, 1e-5f, xx, res, w2, y, LLMK_BF16, NULL, ro) == LLMK_SUCCESS, "%s", llmk_last_error());
  CHECK(ro[0] == 0x3FC0 && ro[1] == 0x0000 && ro[2] == 0x4080 && ro[3] == 0x4080,
        "hand residual_out: got %04x %04x %04x %04x, want 3fc0 0000 4080 4080", ro[0], ro[1], ro[2], ro[3]);
  CHECK(y[0] == 0x3F03 && y[1] == 0 && y[2] == 0x3FAF && y[3] == 0x3FAF,
        "hand residual y: got %04x %04x %04x %04x, want 3f03 0 3faf 3faf", y[0], y[1], y[2], y[3]);
  /* e4m3: n = {1, -2, 0.5, 3}, scale = 3/448, inv = 149.33333:
   * codes 144 (0x71), -288 (0xF9), 72 (0x69), 448 (0x7E) */
  uint8_t q[4];
  float sc = 0;
  CHECK(norm_dense(1, 4, 1e-5f, x, NULL, w1, q, LLMK_E4M3, &sc, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
  CHECK(q[0] == 0x71 && q[1] == 0xF9 && q[2] == 0x69 && q[3] == 0x7E && sc == 3.0f / 448.0f,
        "hand e4m3: got %02x %02x %02x %02x scale %a, want 71 f9 69 7e scale %a", q[0], q[1], q[2], q[3], sc,
        3.0f / 448.0f);
  /* a zero row with eps = 1: r = 1, n = +-0 (the signs of s and w); e4m3 scale = MIN_SCALE */
  uint16_t z[4] = {0, 0x8000, 0, 0};
  CHECK(norm_dense(1, 4, 1.0f, z, NULL, w1, q, LLMK_E4M3, &sc, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
  CHECK(((q[0] | q[1] | q[2] | q[3]) & 0x7F) == 0 && sc == MIN_SCALE, "zero row: codes %02x %02x %02x %02x scale %a",
        q[0], q[1], q[2], q[3], sc);
}

/* NaN and Inf rows: what llmk.h says falls out. */
static void norm_nonfinite(void) {
  const int64_t K = 8;
  uint16_t x[3 * 8], w[8], y[3 * 8];
  for (int k = 0; k < 8; k++) {
    x[k] = bfb((float)(k + 1));           /* finite */
    x[8 + k] = bfb(k == 3 ? INFINITY : (float)(k - 4)); /* one +Inf */
    x[16 + k] = bfb(k == 6 ? NAN : 1.0f); /* one NaN */
    w[k] = bfb(k % 2 ? -1.5f : 0.75f);
  }
  CHECK(norm_dense(3, K, 1e-5f, x, NULL, w, y, LLMK_BF16, NULL, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
  int bad_inf = 0, bad_nan = 0;
  for (int k = 0; k < 8; k++) {
    bad_inf += k == 3 ? y[8 + k] != BF16_NAN : (y[8 + k] & 0x7FFF) != 0;
    bad_nan += y[16 + k] != BF16_NAN;
  }
  CHECK(bad_inf == 0, "Inf row: want +-0 except 0x7FC0 at the Inf (%d wrong)", bad_inf);
  CHECK(bad_nan == 0, "NaN row: want 0x7FC0 everywhere (%d wrong)", bad_nan);
  uint8_t q[3 * 8];
  float sc[3];
  CHECK(norm_dense(3, K, 1e-5f, x, NULL, w, q, LLMK_E4M3, sc, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
  bad_inf = bad_nan = 0;
  for (int k = 0; k < 8; k++) {
    bad_inf += k == 3 ? q[8 + k] != 0x7F : (q[8 + k] & 0x7F) != 0;
    bad_nan += q[16 + k] != 0x7F;
  }
  CHECK(bad_inf == 0 && sc[1] == MIN_SCALE, "Inf row e4m3: %d codes wrong, scale %a", bad_inf, sc[1]);
  CHECK(bad_nan == 0 && sc[2] == MIN_SCALE, "NaN row e4m3: %d codes wrong, scale %a", bad_nan, sc[2]);
  CHECK(sc[0] > MIN_SCALE, "finite row e4m3: scale %a", sc[0]);
}

/* The e4m3 output equals llmk_quantize_fp8 (ROW) of the bf16 output, and a
 * residual in place equals a separate residual_out. */
static void norm_properties(void) {
  static const int64_t Ks[] = {1, 7, 8, 100, 4096};
  for (size_t i = 0; i < sizeof Ks / sizeof Ks[0]; i++)
    for (int dist = 0; dist < N_DIST; dist++) {
      const int64_t M = 1 + (int64_t)(t_rand_u64() % 9), K = Ks[i], n = M * K;
      char name[96];
      snprintf(name, sizeof name, "[M=%lld K=%lld %s]", (long long)M, (long long)K, dist_names[dist]);
      uint16_t *x = t_xmalloc((size_t)n * 2), *r = t_xmalloc((size_t)n * 2), *r2 = t_xmalloc((size_t)n * 2);
      uint16_t *w = t_xmalloc((size_t)K * 2), *y = t_xmalloc((size_t)n * 2), *y2 = t_xmalloc((size_t)n * 2);
      uint16_t *ro = t_xmalloc((size_t)n * 2);
      uint8_t *q = t_xmalloc((size_t)n), *q2 = t_xmalloc((size_t)n);
      float *v = t_xmalloc((size_t)n * 4), *s = t_xmalloc((size_t)M * 4), *s2 = t_xmalloc((size_t)M * 4);
      gen(v, M, K, dist, 1.0f);
      for (int64_t j = 0; j < n; j++) x[j] = bfb(v[j]);
      gen(v, M, K, D_NORMAL, 1.0f);
      for (int64_t j = 0; j < n; j++) r[j] = r2[j] = bfb(v[j]);
      for (int64_t k = 0; k < K; k++) w[k] = bfb(unif(-2.0f, 2.0f));

      /* bf16 output with a separate residual_out, then quantized */
      CHECK(norm_dense(M, K, 1e-6f, x, r, w, y, LLMK_BF16, NULL, ro) == LLMK_SUCCESS, "%s", llmk_last_error());
      llmk_quantize_desc qd = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_ROW, 0, 0, NULL, NULL};
      llmk_tensor ty = llmk_tensor_2d(y, LLMK_BF16, M, K, K), tq = llmk_tensor_2d(q, LLMK_E4M3, M, K, K);
      llmk_tensor ts = llmk_tensor_1d(s, LLMK_F32, M);
      CHECK(llmk_quantize_fp8(H, &qd, &ty, &tq, &ts, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
      /* e4m3 output, residual in place (r2 = r) */
      CHECK(norm_dense(M, K, 1e-6f, x, r2, w, q2, LLMK_E4M3, s2, r2) == LLMK_SUCCESS, "%s", llmk_last_error());
      int64_t bq = 0, bs = 0, br = 0;
      for (int64_t j = 0; j < n; j++) bq += q[j] != q2[j], br += ro[j] != r2[j];
      for (int64_t m = 0; m < M; m++) bs += fbits(s[m]) != fbits(s2[m]);
      CHECK(bq == 0 && bs == 0, "%s e4m3 y vs llmk_quantize_fp8(bf16 y): %lld codes, %lld scales differ", name,
            (long long)bq, (long long)bs);
      CHECK(br == 0, "%s residual in place vs separate: %lld elements differ", name, (long long)br);
      /* bf16 output in place equals the separate run too */
      memcpy(r2, r, (size_t)n * 2);
      CHECK(norm_dense(M, K, 1e-6f, x, r2, w, y2, LLMK_BF16, NULL, r2) == LLMK_SUCCESS, "%s", llmk_last_error());
      CHECK(memcmp(y, y2, (size_t)n * 2) == 0 && memcmp(ro, r2, (size_t)n * 2) == 0, "%s bf16 in place vs separate differ",
            name);
      free(x), free(r), free(r2), free(w), free(y), free(y2), free(ro), free(q), free(q2), free(v), free(s), free(s2);
    }
}

/* M = 0 writes nothing; K = 0 writes only the e4m3 y_scale (MIN_SCALE). */
static void norm_empty(void) {
  gbuf yb, sb, ob;
  uint16_t x[4] = {0}, w[4] = {0}, r[4] = {0};
  void *y = gbuf_alloc(&yb, 64, 0xA5);
  float *ys = gbuf_alloc(&sb, 64, 0xA5);
  uint16_t *ro = gbuf_alloc(&ob, 64, 0xA5);
  llmk_rmsnorm_desc d = {LLMK_RMSNORM_DESC_SIZE, 1e-5f, 0};
  for (int fp8 = 0; fp8 < 2; fp8++) {
    llmk_tensor tx = llmk_tensor_2d(x, LLMK_BF16, 0, 4, 4), tr = llmk_tensor_2d(r, LLMK_BF16, 0, 4, 4);
    llmk_tensor tw = llmk_tensor_1d(w, LLMK_BF16, 4), ty = llmk_tensor_2d(y, fp8 ? LLMK_E4M3 : LLMK_BF16, 0, 4, 4);
    llmk_tensor ts = llmk_tensor_1d(ys, LLMK_F32, 0), to = llmk_tensor_2d(ro, LLMK_BF16, 0, 4, 4);
    llmk_status st = llmk_rmsnorm(H, &d, &tx, &tr, &tw, &ty, fp8 ? &ts : NULL, &to, NULL);
    CHECK(st == LLMK_SUCCESS && untouched(&yb) && untouched(&sb) && untouched(&ob), "M = 0 (%s): %s",
          fp8 ? "e4m3" : "bf16", st ? llmk_last_error() : "wrote to an output");
  }
  /* K = 0, M = 3 */
  llmk_tensor tx = llmk_tensor_2d(NULL, LLMK_BF16, 3, 0, 0), tw = llmk_tensor_1d(NULL, LLMK_BF16, 0);
  llmk_tensor ty = llmk_tensor_2d(y, LLMK_BF16, 3, 0, 0), ts = llmk_tensor_1d(ys, LLMK_F32, 3);
  llmk_status st = llmk_rmsnorm(H, &d, &tx, NULL, &tw, &ty, NULL, NULL, NULL);
  CHECK(st == LLMK_SUCCESS && untouched(&yb), "K = 0 bf16: %s", st ? llmk_last_error() : "wrote to y");
  ty.dtype = LLMK_E4M3;
  st = llmk_rmsnorm(H, &d, &tx, NULL, &tw, &ty, &ts, NULL, NULL);
  CHECK(st == LLMK_SUCCESS && ys[0] == MIN_SCALE && ys[1] == MIN_SCALE && ys[2] == MIN_SCALE &&
            stray_writes(&sb, 3, 1, 1, 4) == 0 && untouched(&yb),
        "K = 0 e4m3: %s; y_scale %a %a %a", st ? llmk_last_error() : "", ys[0], ys[1], ys[2]);
  free(yb.base), free(sb.base), free(ob.base);
}

/* ------------------------------------------------------------------------ */
/* SiLU * up, quantized: oracle and cases                                    */
/* ------------------------------------------------------------------------ */

static float o_silu(float g, float u) {
  return bff(o_bf16_from_double((double)g / (1.0 + exp(-(double)g)) * (double)u));
}

typedef struct scase {
  int64_t M, F;
  int block;   /* 0: ROW, 1: 1 x 128 blocks */
  int ub;      /* 0 none, 1 below amax, 2 above, 3 zero */
  int halves;  /* gate and up are the halves of one [M, 2F] buffer */
  int strided; /* xq row pitch F + 3, gate/up pitch F + 5 (separate buffers) */
  int layout;  /* L_2D or L_3D */
  int dist;
} scase;

static void gen_gate(float *g, float *u, int64_t M, int64_t F, int dist) {
  gen(g, M, F, dist == D_HUGE ? D_NORMAL : dist, 3.0f);
  gen(u, M, F, dist == D_SPECIAL ? D_NORMAL : dist, 1.0f);
  if (dist == D_SPECIAL) /* gates past the fp64 exp overflow, and signed zeros */
    for (int64_t i = 0; i < M * F; i++) {
      const uint64_t r = t_rand_u64() % 64;
      if (r == 0) g[i] = -800.0f;
      else if (r == 1) g[i] = -0.0f;
      else if (r == 2) u[i] = 0.0f;
    }
  if (dist == D_HUGE) /* products beyond the bf16 range (Inf) and near it */
    for (int64_t i = 0; i < M * F; i++) u[i] = bff(bfb(u[i] * 0x1p126f));
}

static void run_silu(const scase *c) {
  const int64_t M = c->M, F = c->F, n = M * F;
  char name[200];
  snprintf(name, sizeof name, "[silu M=%lld F=%lld %s ub=%d%s%s%s %s]", (long long)M, (long long)F,
           c->block ? "block1x128" : "row", c->ub, c->halves ? " halves" : "", c->strided ? " strided" : "",
           c->layout == L_3D ? " 3d" : "", dist_names[c->dist]);
  float *g = t_xmalloc((size_t)(n + 1) * 4), *u = t_xmalloc((size_t)(n + 1) * 4), *a = t_xmalloc((size_t)(n + 1) * 4);
  gen_gate(g, u, M, F, c->dist);
  const int64_t ldgu = c->halves ? 2 * F : c->strided ? F + 5 : F, ldq = c->strided ? F + 3 : F;
  uint16_t *gb = t_xmalloc((size_t)(M * ldgu + 1) * 2), *ub_ = c->halves ? gb + F : t_xmalloc((size_t)(M * ldgu + 1) * 2);
  for (int64_t i = 0; i < M * ldgu; i++) gb[i] = 0x7F00;
  if (!c->halves)
    for (int64_t i = 0; i < M * ldgu; i++) ub_[i] = 0x7F00;
  for (int64_t r = 0; r < M; r++)
    for (int64_t k = 0; k < F; k++) {
      gb[r * ldgu + k] = bfb(g[r * F + k]);
      ub_[r * ldgu + k] = bfb(u[r * F + k]);
    }
  /* oracle */
  const int64_t gk = c->block ? 128 : (F > 0 ? F : 1), nseg = c->block ? (F + 127) / 128 : 1;
  float amax_all = 0.0f;
  for (int64_t i = 0; i < n; i++) {
    a[i] = o_silu(g[i], u[i]);
    if (isfinite(a[i]) && fabsf(a[i]) > amax_all) amax_all = fabsf(a[i]);
  }
  float ubv = c->ub == 1 ? amax_all / 8.0f : c->ub == 2 ? amax_all * 4.0f + 1.0f : 0.0f;
  const float *ubp = c->ub ? &ubv : NULL;
  uint8_t *oq = t_xmalloc((size_t)(n + 1));
  float *os = t_xmalloc((size_t)(M * nseg + 1) * 4);
  for (int64_t r = 0; r < M; r++)
    for (int64_t j = 0; j < nseg; j++) {
      const int64_t c0 = j * gk, len = c0 + gk < F ? gk : F - c0;
      const float sc = o_scale(a + r * F + c0, len, ubp), inv = 1.0f / sc;
      os[r * nseg + j] = sc;
      for (int64_t k = c0; k < c0 + len; k++) oq[r * F + k] = llmk_float_to_fp8(a[r * F + k] * inv, LLMK_E4M3);
    }

  gbuf qb, sb;
  uint8_t *q = gbuf_alloc(&qb, (size_t)(M * ldq), 0xA5);
  float *s = gbuf_alloc(&sb, (size_t)(M * nseg) * 4, 0xA5);
  llmk_quantize_desc d = {LLMK_QUANTIZE_DESC_SIZE, c->block ? LLMK_SCALING_BLOCK : LLMK_SCALING_ROW, 1, 128, ubp, NULL};
  ncase lay = {M, F, c->layout, 0, 0, 0, 0, 0};
  llmk_tensor tg = view(gb, LLMK_BF16, &lay, F, ldgu), tu = view(ub_, LLMK_BF16, &lay, F, ldgu);
  llmk_tensor tq = view(q, LLMK_E4M3, &lay, F, ldq);
  llmk_tensor ts = c->block ? llmk_tensor_2d(s, LLMK_F32, M, nseg, nseg) : llmk_tensor_1d(s, LLMK_F32, M);
  llmk_status st = llmk_silu_mul_quant(H, &d, &tg, &tu, &tq, &ts, NULL);
  CHECK(st == LLMK_SUCCESS, "%s: %s: %s", name, llmk_status_string(st), llmk_last_error());
  int64_t bq = 0, bs = 0, fr = -1, fk = -1;
  for (int64_t r = 0; r < M; r++)
    for (int64_t k = 0; k < F; k++)
      if (q[r * ldq + k] != oq[r * F + k] && !bq++) fr = r, fk = k;
  for (int64_t i = 0; i < M * nseg; i++) bs += fbits(s[i]) != fbits(os[i]);
  CHECK(bq == 0 && bs == 0, "%s: %lld codes and %lld scales differ from the oracle; first (%lld,%lld): g=%a u=%a llmk 0x%02x oracle 0x%02x",
        name, (long long)bq, (long long)bs, (long long)fr, (long long)fk, bq ? g[fr * F + fk] : 0.0f,
        bq ? u[fr * F + fk] : 0.0f, bq ? q[fr * ldq + fk] : 0, bq ? oq[fr * F + fk] : 0);
  const int64_t stray = stray_writes(&qb, M, F, ldq, 1) + stray_writes(&sb, M * nseg, 1, 1, 4);
  CHECK(stray == 0, "%s: %lld bytes written outside the outputs", name, (long long)stray);

  /* llmk_quantize_fp8 of the bf16 tensor a, with the same desc, gives the same bits */
  if (st == LLMK_SUCCESS && n > 0) {
    uint16_t *ab = t_xmalloc((size_t)n * 2);
    uint8_t *q2 = t_xmalloc((size_t)n);
    float *s2 = t_xmalloc((size_t)(M * nseg) * 4);
    for (int64_t i = 0; i < n; i++) ab[i] = o_bf16_from_double((double)a[i]);
    llmk_tensor ta = llmk_tensor_2d(ab, LLMK_BF16, M, F, F), tq2 = llmk_tensor_2d(q2, LLMK_E4M3, M, F, F);
    llmk_tensor ts2 = c->block ? llmk_tensor_2d(s2, LLMK_F32, M, nseg, nseg) : llmk_tensor_1d(s2, LLMK_F32, M);
    CHECK(llmk_quantize_fp8(H, &d, &ta, &tq2, &ts2, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
    int64_t b2 = 0;
    for (int64_t r = 0; r < M; r++)
      for (int64_t k = 0; k < F; k++) b2 += q2[r * F + k] != q[r * ldq + k];
    for (int64_t i = 0; i < M * nseg; i++) b2 += fbits(s2[i]) != fbits(s[i]);
    CHECK(b2 == 0, "%s: %lld codes or scales differ from llmk_quantize_fp8 of bf16(a)", name, (long long)b2);
    free(ab), free(q2), free(s2);
  }
  free(g), free(u), free(a), free(gb), free(oq), free(os), free(qb.base), free(sb.base);
  if (!c->halves) free(ub_);
}

static void silu_hand(void) {
  /* silu(0)*5 = 0; silu(1) = 0.7310586 -> 0.73046875 (0x3F3B); silu(-1) =
   * -0.2689414 -> -0.26953125 (0xBE8A); silu(2) * -3 = -5.2847825 -> -5.28125 (0xC0A9) */
  const float gv[4] = {0, 1, -1, 2}, uv[4] = {5, 1, 1, -3};
  const uint16_t want[4] = {0x0000, 0x3F3B, 0xBE8A, 0xC0A9};
  int bad = 0;
  for (int i = 0; i < 4; i++) bad += o_bf16_from_double((double)gv[i] / (1.0 + exp(-(double)gv[i])) * uv[i]) != want[i];
  CHECK(bad == 0, "the oracle's hand values differ (%d)", bad);
  uint16_t g[4], u[4];
  for (int i = 0; i < 4; i++) g[i] = bfb(gv[i]), u[i] = bfb(uv[i]);
  uint8_t q[4];
  float s = 0;
  llmk_quantize_desc d = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_ROW, 0, 0, NULL, NULL};
  llmk_tensor tg = llmk_tensor_1d(g, LLMK_BF16, 4), tu = llmk_tensor_1d(u, LLMK_BF16, 4);
  llmk_tensor tq = llmk_tensor_1d(q, LLMK_E4M3, 4), ts = llmk_tensor_1d(&s, LLMK_F32, 1);
  CHECK(llmk_silu_mul_quant(H, &d, &tg, &tu, &tq, &ts, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
  const float sc = 5.28125f / 448.0f, inv = 1.0f / sc;
  CHECK(s == sc && q[0] == 0 && q[3] == 0xFE && q[1] == llmk_float_to_fp8(0.73046875f * inv, LLMK_E4M3) &&
            q[2] == llmk_float_to_fp8(-0.26953125f * inv, LLMK_E4M3),
        "hand silu: scale %a (want %a), codes %02x %02x %02x %02x", s, sc, q[0], q[1], q[2], q[3]);
  /* the fp64 -> bf16 rounding: ties to even, no double rounding through fp32 */
  CHECK(o_bf16_from_double(1.0 + 0x1p-8) == 0x3F80 && o_bf16_from_double(1.0 + 0x1p-8 + 0x1p-40) == 0x3F81 &&
            o_bf16_from_double(1.0 + 3 * 0x1p-8) == 0x3F82 && o_bf16_from_double(-1e300) == 0xFF80 &&
            o_bf16_from_double(0x1p-134) == 0 && o_bf16_from_double(0x1p-134 + 0x1p-160) == 1,
        "oracle fp64 -> bf16 rounding");
}

static void silu_empty(void) {
  gbuf qb, sb;
  uint8_t *q = gbuf_alloc(&qb, 64, 0xA5);
  float *s = gbuf_alloc(&sb, 64, 0xA5);
  uint16_t g[8] = {0};
  llmk_quantize_desc d = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_ROW, 0, 0, NULL, NULL};
  llmk_tensor tg = llmk_tensor_2d(g, LLMK_BF16, 0, 8, 8), tq = llmk_tensor_2d(q, LLMK_E4M3, 0, 8, 8);
  llmk_tensor ts = llmk_tensor_1d(s, LLMK_F32, 0);
  llmk_status st = llmk_silu_mul_quant(H, &d, &tg, &tg, &tq, &ts, NULL);
  CHECK(st == LLMK_SUCCESS && untouched(&qb) && untouched(&sb), "silu M = 0: %s", st ? llmk_last_error() : "wrote");
  d.scaling = LLMK_SCALING_BLOCK;
  d.block_m = 1;
  d.block_k = 128;
  ts = llmk_tensor_2d(s, LLMK_F32, 0, 1, 1);
  st = llmk_silu_mul_quant(H, &d, &tg, &tg, &tq, &ts, NULL);
  CHECK(st == LLMK_SUCCESS && untouched(&qb) && untouched(&sb), "silu block M = 0: %s", st ? llmk_last_error() : "wrote");
  /* F = 0: row scales of empty groups, nothing else */
  tg = llmk_tensor_2d(NULL, LLMK_BF16, 3, 0, 0);
  tq = llmk_tensor_2d(q, LLMK_E4M3, 3, 0, 0);
  ts = llmk_tensor_2d(s, LLMK_F32, 3, 0, 0);
  st = llmk_silu_mul_quant(H, &d, &tg, &tg, &tq, &ts, NULL);
  CHECK(st == LLMK_SUCCESS && untouched(&qb) && untouched(&sb), "silu block F = 0: %s", st ? llmk_last_error() : "wrote");
  d.scaling = LLMK_SCALING_ROW;
  ts = llmk_tensor_1d(s, LLMK_F32, 3);
  st = llmk_silu_mul_quant(H, &d, &tg, &tg, &tq, &ts, NULL);
  CHECK(st == LLMK_SUCCESS && s[0] == MIN_SCALE && s[2] == MIN_SCALE && stray_writes(&sb, 3, 1, 1, 4) == 0 &&
            untouched(&qb),
        "silu row F = 0: %s; scales %a %a", st ? llmk_last_error() : "", s[0], s[2]);
  free(qb.base), free(sb.base);
}

/* ------------------------------------------------------------------------ */
/* Bad inputs                                                                */
/* ------------------------------------------------------------------------ */

/* Inputs live in g_in (checked unchanged), outputs in g_out (poisoned). */
enum { ARENA = 2048 };
static unsigned char g_in[ARENA] __attribute__((aligned(64))), g_in_ref[ARENA];
static unsigned char g_out[ARENA] __attribute__((aligned(64)));
static const unsigned char OUT_POISON = 0xA5;

enum { NM = 4, NK = 8 };
/* rmsnorm: x @0, residual @128, weight @256 (inputs); y @0 (e4m3), y_scale
 * @128, residual_out @256, y bf16 @512 (outputs) */
typedef struct ncall {
  llmk_handle h;
  llmk_rmsnorm_desc d;
  llmk_tensor x, res, w, y, ys, ro;
  int no_desc, no_x, no_res, no_w, no_y, no_ys, no_ro;
} ncall;

static ncall norm_call(void) {
  ncall c;
  memset(&c, 0, sizeof c);
  c.h = H;
  c.d = (llmk_rmsnorm_desc)LLMK_RMSNORM_DESC_INIT;
  c.d.eps = 1e-5f;
  c.x = llmk_tensor_2d(g_in, LLMK_BF16, NM, NK, NK);
  c.res = llmk_tensor_2d(g_in + 128, LLMK_BF16, NM, NK, NK);
  c.w = llmk_tensor_1d(g_in + 256, LLMK_BF16, NK);
  c.y = llmk_tensor_2d(g_out, LLMK_E4M3, NM, NK, NK);
  c.ys = llmk_tensor_1d(g_out + 128, LLMK_F32, NM);
  c.ro = llmk_tensor_2d(g_out + 256, LLMK_BF16, NM, NK, NK);
  return c;
}

static llmk_status do_norm(const ncall *c) {
  return llmk_rmsnorm(c->h, c->no_desc ? NULL : &c->d, c->no_x ? NULL : &c->x, c->no_res ? NULL : &c->res,
                      c->no_w ? NULL : &c->w, c->no_y ? NULL : &c->y, c->no_ys ? NULL : &c->ys,
                      c->no_ro ? NULL : &c->ro, NULL);
}

/* The call must fail with INVALID_ARGUMENT, a "<fn>: " message containing
 * `word`, and leave both arenas as they were. */
static void expect_bad(int line, const char *what, llmk_status st, const char *fn, const char *word) {
  const char *msg = llmk_last_error();
  int out_ok = 1;
  for (int i = 0; i < ARENA; i++) out_ok &= g_out[i] == OUT_POISON;
  const int in_ok = memcmp(g_in, g_in_ref, ARENA) == 0;
  const size_t fl = strlen(fn);
  const int msg_ok = strncmp(msg, fn, fl) == 0 && strncmp(msg + fl, ": ", 2) == 0 && msg[fl + 2] &&
                     (!word || strstr(msg, word));
  if (getenv("LLMK_TEST_VERBOSE")) printf("line %d: %s: %s\n", line, what, msg);
  CHECK(st == LLMK_ERR_INVALID_ARGUMENT && msg_ok && out_ok && in_ok,
        "line %d: %s: status %s, message \"%s\" (want \"%s: ...%s...\"), outputs %s, inputs %s", line, what,
        llmk_status_string(st), msg, fn, word ? word : "", out_ok ? "intact" : "WRITTEN", in_ok ? "intact" : "CHANGED");
  memset(g_out, OUT_POISON, ARENA);
  memcpy(g_in, g_in_ref, ARENA);
  (void)llmk_get_build_info(NULL); /* resets the last error to another function's */
}
#define BADN(what, c, word) expect_bad(__LINE__, what, do_norm(&(c)), "llmk_rmsnorm", word)

static void norm_bad_inputs(void) {
  const ncall c0 = norm_call();
  unsigned char bogus_mem[256];
  memset(bogus_mem, 0xA5, sizeof bogus_mem);
  { ncall c = c0; CHECK(do_norm(&c) == LLMK_SUCCESS, "the base rmsnorm call fails: %s", llmk_last_error());
    memset(g_out, OUT_POISON, ARENA); }
  { ncall c = c0; c.h = NULL; BADN("NULL handle", c, "handle"); }
  { ncall c = c0; c.h = (llmk_handle)(void *)bogus_mem; BADN("garbage handle", c, "handle"); }
  { ncall c = c0; c.no_desc = 1; BADN("NULL desc", c, "desc"); }
  { ncall c = c0; c.d.eps = 0.0f; BADN("eps 0", c, "eps"); }
  { ncall c = c0; c.d.eps = -1e-5f; BADN("eps < 0", c, "eps"); }
  { ncall c = c0; c.d.eps = NAN; BADN("eps NaN", c, "eps"); }
  { ncall c = c0; c.d.eps = INFINITY; BADN("eps Inf", c, "eps"); }
  /* x */
  { ncall c = c0; c.no_x = 1; BADN("NULL x", c, "x is NULL"); }
  { ncall c = c0; c.x.data = NULL; BADN("x.data NULL", c, "x.data"); }
  { ncall c = c0; c.x.dtype = LLMK_F32; BADN("x f32", c, "x: expected dtype bf16"); }
  { ncall c = c0; c.x.dtype = (llmk_dtype)99; BADN("x dtype 99", c, "x: invalid dtype"); }
  { ncall c = c0; c.x.ndim = 0; BADN("x ndim 0", c, "x: ndim"); }
  { ncall c = c0; c.x.ndim = 5; BADN("x ndim 5", c, "x: ndim"); }
  { ncall c = c0; c.x.strides[1] = 2; BADN("x last stride 2", c, "x: the last dim"); }
  { ncall c = c0; c.x.strides[0] = NK - 1; BADN("x row stride < K", c, "x: row stride"); }
  { ncall c = c0; c.x.shape[0] = -1; BADN("x shape -1", c, "x: shape"); }
  { ncall c = c0; c.x.shape[0] = INT64_MAX; BADN("x shape huge", c, "x: shape"); }
  { ncall c = c0; c.x.data = g_in + 1; BADN("x misaligned", c, "x.data"); }
  { ncall c = c0; llmk_tensor t = {g_in, LLMK_BF16, 3, {2, 2, NK, 0}, {NK, 2 * NK, 1, 0}}; c.x = t;
    BADN("x leading dims not collapsible", c, "x: leading dims"); }
  /* residual and residual_out */
  { ncall c = c0; c.res.dtype = LLMK_F16; BADN("residual f16", c, "residual: expected dtype bf16"); }
  { ncall c = c0; c.res.shape[1] = NK - 1; BADN("residual [4,7]", c, "residual: expected shape [4, 8], got [4, 7]"); }
  { ncall c = c0; c.res = llmk_tensor_1d(g_in + 128, LLMK_BF16, NM * NK); BADN("residual 1-D", c, "residual: expected shape"); }
  { ncall c = c0; c.res.data = g_in + 129; BADN("residual misaligned", c, "residual.data"); }
  { ncall c = c0; c.no_ro = 1; BADN("residual without residual_out", c, "residual_out is NULL"); }
  { ncall c = c0; c.no_res = 1; BADN("residual_out without residual", c, "residual_out must be NULL"); }
  { ncall c = c0; c.ro.dtype = LLMK_F32; BADN("residual_out f32", c, "residual_out: expected dtype bf16"); }
  { ncall c = c0; c.ro.shape[0] = NM + 1; BADN("residual_out [5,8]", c, "residual_out: expected shape [4, 8], got [5, 8]"); }
  { ncall c = c0; c.ro.data = NULL; BADN("residual_out.data NULL", c, "residual_out.data"); }
  { ncall c = c0; c.ro.data = g_in; BADN("residual_out overlaps x", c, "residual_out overlaps x"); }
  { ncall c = c0; c.ro.data = g_in + 128 + 2; BADN("residual_out shifted into residual", c, "overlaps residual"); }
  { ncall c = c0; c.ro = c.res; c.ro.strides[0] = NK + 1; c.ro.shape[0] = NM; BADN("residual_out = residual, other stride", c, "overlaps residual"); }
  { ncall c = c0; c.ro.data = g_out; BADN("residual_out overlaps y", c, "overlaps"); }
  { ncall c = c0; c.ro.data = g_in + 256; BADN("residual_out overlaps weight", c, "overlaps weight"); }
  /* weight */
  { ncall c = c0; c.no_w = 1; BADN("NULL weight", c, "weight is NULL"); }
  { ncall c = c0; c.w.shape[0] = NK - 1; BADN("weight [7]", c, "weight: expected shape [8], got [7]"); }
  { ncall c = c0; c.w = llmk_tensor_2d(g_in + 256, LLMK_BF16, 1, NK, NK); BADN("weight [1,8]", c, "weight: expected shape [8], got [1, 8]"); }
  { ncall c = c0; c.w.dtype = LLMK_F32; BADN("weight f32", c, "weight: expected dtype bf16"); }
  { ncall c = c0; c.w.strides[0] = 2; BADN("weight stride 2", c, "weight must be contiguous"); }
  { ncall c = c0; c.w.data = NULL; BADN("weight.data NULL", c, "weight.data"); }
  { ncall c = c0; c.w.data = g_in + 257; BADN("weight misaligned", c, "weight.data"); }
  /* y and y_scale */
  { ncall c = c0; c.no_y = 1; BADN("NULL y", c, "y is NULL"); }
  { ncall c = c0; c.y.dtype = LLMK_F32; BADN("y f32", c, "y: expected dtype bf16 or e4m3"); }
  { ncall c = c0; c.y.dtype = LLMK_E5M2; BADN("y e5m2", c, "y: expected dtype bf16 or e4m3"); }
  { ncall c = c0; c.y.shape[1] = NK + 1; c.y.strides[0] = NK + 1; BADN("y [4,9]", c, "y: expected shape [4, 8], got [4, 9]"); }
  { ncall c = c0; c.y.data = NULL; BADN("y.data NULL", c, "y.data"); }
  { ncall c = c0; c.y.strides[0] = 4; BADN("y row stride 4", c, "y: row stride"); }
  { ncall c = c0; c.no_ys = 1; BADN("e4m3 y without y_scale", c, "y_scale is NULL"); }
  { ncall c = c0; c.y = llmk_tensor_2d(g_out + 512, LLMK_BF16, NM, NK, NK); BADN("bf16 y with y_scale", c, "y_scale must be NULL"); }
  { ncall c = c0; c.ys.shape[0] = NM - 1; BADN("y_scale [3]", c, "y_scale: expected shape [4], got [3]"); }
  { ncall c = c0; c.ys = llmk_tensor_2d(g_out + 128, LLMK_F32, NM, 1, 1); BADN("y_scale [4,1]", c, "y_scale: expected shape [4], got [4, 1]"); }
  { ncall c = c0; c.ys.dtype = LLMK_BF16; BADN("y_scale bf16", c, "y_scale: expected dtype f32"); }
  { ncall c = c0; c.ys.strides[0] = 2; BADN("y_scale stride 2", c, "y_scale must be contiguous"); }
  { ncall c = c0; c.ys.data = g_out + 130; BADN("y_scale misaligned", c, "y_scale.data"); }
  { ncall c = c0; c.ys.data = NULL; BADN("y_scale.data NULL", c, "y_scale.data"); }
  { ncall c = c0; c.y.data = g_in; BADN("y overlaps x", c, "y overlaps x"); }
  { ncall c = c0; c.y.data = g_in + 128; BADN("y overlaps residual", c, "overlaps residual"); }
  { ncall c = c0; c.ys.data = g_out + 16; BADN("y_scale overlaps y", c, "overlaps"); }
  { ncall c = c0; c.ys.data = g_in + 256; BADN("y_scale overlaps weight", c, "y_scale overlaps weight"); }
  { ncall c = c0; CHECK(do_norm(&c) == LLMK_SUCCESS, "a valid rmsnorm call after the bad ones fails: %s", llmk_last_error()); }
}

/* silu: gate @0 and up @256 (4 x 16 bf16), xq @0, scale @128 */
enum { SF = 16 };
typedef struct scall {
  llmk_handle h;
  llmk_quantize_desc d;
  llmk_tensor g, u, q, s;
  int no_desc, no_g, no_u, no_q, no_s;
} scall;

static scall silu_call(void) {
  scall c;
  memset(&c, 0, sizeof c);
  c.h = H;
  c.d = (llmk_quantize_desc)LLMK_QUANTIZE_DESC_INIT;
  c.d.scaling = LLMK_SCALING_ROW;
  c.g = llmk_tensor_2d(g_in, LLMK_BF16, NM, SF, SF);
  c.u = llmk_tensor_2d(g_in + 256, LLMK_BF16, NM, SF, SF);
  c.q = llmk_tensor_2d(g_out, LLMK_E4M3, NM, SF, SF);
  c.s = llmk_tensor_1d(g_out + 128, LLMK_F32, NM);
  return c;
}
static llmk_status do_silu(const scall *c) {
  return llmk_silu_mul_quant(c->h, c->no_desc ? NULL : &c->d, c->no_g ? NULL : &c->g, c->no_u ? NULL : &c->u,
                             c->no_q ? NULL : &c->q, c->no_s ? NULL : &c->s, NULL);
}
#define BADS(what, c, word) expect_bad(__LINE__, what, do_silu(&(c)), "llmk_silu_mul_quant", word)

static void silu_bad_inputs(void) {
  const scall c0 = silu_call();
  static float ub_ok = 1.0f;
  unsigned char bogus_mem[256];
  memset(bogus_mem, 0xA5, sizeof bogus_mem);
  { scall c = c0; CHECK(do_silu(&c) == LLMK_SUCCESS, "the base silu call fails: %s", llmk_last_error());
    memset(g_out, OUT_POISON, ARENA); }
  { scall c = c0; c.d.scaling = LLMK_SCALING_BLOCK; c.d.block_m = 1; c.d.block_k = 128;
    c.s = llmk_tensor_2d(g_out + 128, LLMK_F32, NM, 1, 1); c.d.scale_ub = &ub_ok;
    CHECK(do_silu(&c) == LLMK_SUCCESS, "the base block silu call fails: %s", llmk_last_error());
    memset(g_out, OUT_POISON, ARENA); }
  { scall c = c0; c.h = NULL; BADS("NULL handle", c, "handle"); }
  { scall c = c0; c.h = (llmk_handle)(void *)bogus_mem; BADS("garbage handle", c, "handle"); }
  { scall c = c0; c.no_desc = 1; BADS("NULL desc", c, "desc is NULL"); }
  { scall c = c0; c.no_g = 1; BADS("NULL gate", c, "gate is NULL"); }
  { scall c = c0; c.no_u = 1; BADS("NULL up", c, "up is NULL"); }
  { scall c = c0; c.no_q = 1; BADS("NULL xq", c, "xq is NULL"); }
  { scall c = c0; c.no_s = 1; BADS("NULL scale", c, "scale is NULL"); }
  { scall c = c0; c.g.data = NULL; BADS("gate.data NULL", c, "gate.data"); }
  { scall c = c0; c.u.data = NULL; BADS("up.data NULL", c, "up.data"); }
  { scall c = c0; c.q.data = NULL; BADS("xq.data NULL", c, "xq.data"); }
  { scall c = c0; c.s.data = NULL; BADS("scale.data NULL", c, "scale.data"); }
  { scall c = c0; c.g.dtype = LLMK_F32; BADS("gate f32", c, "gate: expected dtype bf16"); }
  { scall c = c0; c.u.dtype = LLMK_F16; BADS("up f16", c, "up: expected dtype bf16"); }
  { scall c = c0; c.u.dtype = (llmk_dtype)-3; BADS("up dtype -3", c, "up: invalid dtype"); }
  { scall c = c0; c.q.dtype = LLMK_E5M2; BADS("xq e5m2", c, "xq: expected dtype e4m3"); }
  { scall c = c0; c.q.dtype = LLMK_BF16; BADS("xq bf16 with a scale", c, "scale must be NULL when xq is bf16"); }
  { scall c = c0; c.s.dtype = LLMK_BF16; BADS("scale bf16", c, "scale: expected dtype f32"); }
  { scall c = c0; c.u.shape[1] = SF - 1; BADS("up [4,15]", c, "up: expected shape [4, 16], got [4, 15]"); }
  { scall c = c0; c.q.shape[0] = NM - 1; BADS("xq [3,16]", c, "xq: expected shape [4, 16], got [3, 16]"); }
  { scall c = c0; c.g.strides[1] = 2; BADS("gate last stride 2", c, "gate: the last dim"); }
  { scall c = c0; c.u.strides[0] = SF - 2; BADS("up row stride < F", c, "up: row stride"); }
  { scall c = c0; c.g.data = g_in + 1; BADS("gate misaligned", c, "gate.data"); }
  { scall c = c0; c.g.ndim = 0; BADS("gate ndim 0", c, "gate: ndim"); }
  { scall c = c0; c.q.strides[1] = 0; BADS("xq last stride 0", c, "xq: the last dim"); }
  /* desc */
  { scall c = c0; c.d.scaling = LLMK_SCALING_TENSOR; c.s.shape[0] = 1; BADS("tensor scaling", c, "only row scaling and 1 x 128 block scaling"); }
  { scall c = c0; c.d.scaling = LLMK_SCALING_COL; c.s.shape[0] = SF; BADS("col scaling", c, "only row scaling"); }
  { scall c = c0; c.d.scaling = (llmk_scaling)7; BADS("scaling 7", c, "desc->scaling"); }
  { scall c = c0; c.d.scaling = LLMK_SCALING_BLOCK; c.d.block_m = 128; c.d.block_k = 128;
    c.s = llmk_tensor_2d(g_out + 128, LLMK_F32, 1, 1, 1); BADS("block 128x128", c, "1 x 128"); }
  { scall c = c0; c.d.scaling = LLMK_SCALING_BLOCK; c.d.block_m = 1; c.d.block_k = 64;
    c.s = llmk_tensor_2d(g_out + 128, LLMK_F32, NM, 1, 1); BADS("block 1x64", c, "1 x 128"); }
  { scall c = c0; c.d.scaling = LLMK_SCALING_BLOCK; c.d.block_m = 0; c.d.block_k = 0; BADS("block 0x0", c, "1 x 128"); }
  { scall c = c0; int64_t nr = 2; c.d.num_rows = &nr; BADS("num_rows given", c, "num_rows"); }
  { scall c = c0; c.d.scale_ub = (const float *)(g_in + 1001); BADS("scale_ub misaligned", c, "scale_ub"); }
  { scall c = c0; c.d.scale_ub = (const float *)(g_out + 128); BADS("scale_ub inside scale", c, "scale_ub"); }
  /* scale */
  { scall c = c0; c.s.shape[0] = NM - 1; BADS("row scale [3]", c, "scale: expected shape [4], got [3]"); }
  { scall c = c0; c.s.strides[0] = 2; BADS("row scale stride 2", c, "scale must be contiguous"); }
  { scall c = c0; c.s.data = g_out + 129; BADS("scale misaligned", c, "scale.data"); }
  { scall c = c0; c.d.scaling = LLMK_SCALING_BLOCK; c.d.block_m = 1; c.d.block_k = 128;
    BADS("block scale 1-D", c, "scale: expected shape [4, 1], got [4]"); }
  { scall c = c0; c.d.scaling = LLMK_SCALING_BLOCK; c.d.block_m = 1; c.d.block_k = 128;
    c.s = llmk_tensor_2d(g_out + 128, LLMK_F32, NM, 2, 2); BADS("block scale [4,2]", c, "scale: expected shape [4, 1], got [4, 2]"); }
  /* overlaps */
  { scall c = c0; c.q.data = g_in + 64; BADS("xq overlaps gate", c, "xq overlaps gate"); }
  { scall c = c0; c.q.data = g_in + 256; BADS("xq overlaps up", c, "xq overlaps up"); }
  { scall c = c0; c.s.data = g_out + 32; BADS("scale overlaps xq", c, "overlaps"); }
  { scall c = c0; c.s.data = g_in + 300; BADS("scale overlaps up", c, "scale overlaps up"); }
  /* gate and up may share memory (inputs) */
  { scall c = c0; c.u = c.g; CHECK(do_silu(&c) == LLMK_SUCCESS, "gate = up is allowed: %s", llmk_last_error());
    memset(g_out, OUT_POISON, ARENA); }
  { scall c = c0; CHECK(do_silu(&c) == LLMK_SUCCESS, "a valid silu call after the bad ones fails: %s", llmk_last_error()); }
}

/* ------------------------------------------------------------------------ */

int main(void) {
  t_seed();
  CHECK(llmk_create_cpu(&H) == LLMK_SUCCESS, "%s", llmk_last_error());
  if (!H) TEST_END();

  norm_hand();
  norm_nonfinite();
  norm_empty();
  int ncases = 0;
  static const int64_t Ms[] = {1, 2, 3, 17};
  static const int64_t Ks[] = {1, 4, 7, 8, 13, 100, 1000, 4096};
  for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++)
    for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++)
      for (int v = 0; v < 6; v++) {
        ncase c = {Ms[mi], Ks[ki], L_2D, v % 3, v / 3, (int)((mi + ki + v) % 2), (int)((mi * 5 + ki * 3 + v) % N_DIST), 1e-5f};
        if (Ms[mi] == 1 && v == 4) c.layout = L_1D;
        if (Ms[mi] % 2 == 0 && v == 5) c.layout = L_3D;
        if (v == 2) c.eps = 1e-6f;
        if (v == 3) c.eps = 0.5f;
        run_norm(&c);
        ncases++;
      }
  for (int dist = 0; dist < N_DIST; dist++)
    for (int v = 0; v < 6; v++) {
      ncase c = {5, 8192 + (dist == 2 ? 3 : 0), L_2D, v % 3, v / 3, v % 2, dist, 1e-5f};
      run_norm(&c);
      ncases++;
    }
  norm_properties();
  printf("%d rmsnorm oracle cases\n", ncases);

  silu_hand();
  silu_empty();
  int scases = 0;
  static const int64_t Fs[] = {1, 7, 8, 100, 128, 129, 1000, 4096};
  for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++)
    for (size_t fi = 0; fi < sizeof Fs / sizeof Fs[0]; fi++)
      for (int v = 0; v < 6; v++) {
        scase c = {Ms[mi], Fs[fi], v % 2, (v / 2) % 4, v == 3 || v == 4, v == 2 || v == 5, L_2D,
                   (int)((mi * 3 + fi + v) % N_DIST)};
        if (Ms[mi] % 2 == 0 && v == 1) c.layout = L_3D;
        if (v == 5) c.ub = 3;
        run_silu(&c);
        scases++;
      }
  for (int dist = 0; dist < N_DIST; dist++) {
    scase c = {9, 14336, dist % 2, dist % 3, dist % 2, 0, L_2D, dist};
    run_silu(&c);
    scases++;
  }
  printf("%d silu_mul_quant oracle cases\n", scases);

  for (int i = 0; i < ARENA; i++) g_in[i] = g_in_ref[i] = (unsigned char)(i * 37u + 11u);
  for (int i = 0; i < ARENA / 2; i++) g_in[2 * i + 1] = g_in_ref[2 * i + 1] = 0x3F; /* finite bf16 values */
  memset(g_out, OUT_POISON, ARENA);
  norm_bad_inputs();
  silu_bad_inputs();

  llmk_destroy(H);
  TEST_END();
}
