/*
 * Semantics of llmk_quantize_fp8 / llmk_dequantize_fp8 on the CPU backend.
 *
 * Every case is compared BITWISE (codes and scale bits) with an oracle
 * written here from docs/DESIGN.md, "Numerics", taken literally: loop over the
 * groups, amax over the finite elements in fp32, optional fminf with
 * *scale_ub, scale = fmaxf(amax / FP8_MAX, MIN_SCALE), inv = 1.0f / scale,
 * q = llmk_float_to_fp8(x * inv). Output buffers are poisoned (twice, with
 * two different bytes) so that unwritten elements, and writes into row
 * padding or past either end, show. Targeted tests then check the special
 * cases of the text directly (zero groups, NaN/Inf, scale_ub, subnormal
 * codes, all-equal rows, num_rows, empty tensors, dequantization).
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

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static uint32_t fbits(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  return b;
}
static float bitsf(uint32_t b) {
  float f;
  memcpy(&f, &b, 4);
  return f;
}
static int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static float unif(float a, float b) { return a + (b - a) * (float)t_rand_uniform(); }
/* docs/DESIGN.md's constants, per FP8 format (MIN_SCALE = 1 / (FP8_MAX * 512)). */
static float fp8_max(llmk_dtype dt) { return dt == LLMK_E5M2 ? 57344.0f : 448.0f; }
static float min_scale(llmk_dtype dt) { return 1.0f / (fp8_max(dt) * 512.0f); }
static uint8_t max_code(llmk_dtype dt) { return dt == LLMK_E5M2 ? 0x7B : 0x7E; }

/* The input storage of x: values are generated as float, stored in x's dtype
 * and read back, so the oracle sees exactly what the library sees. */
static void store_x(void *base, llmk_dtype dt, int64_t i, float v) {
  if (dt == LLMK_F32) ((float *)base)[i] = v;
  else if (dt == LLMK_BF16) ((uint16_t *)base)[i] = llmk_float_to_bf16(v);
  else ((uint16_t *)base)[i] = llmk_float_to_f16(v);
}
static float load_x(const void *base, llmk_dtype dt, int64_t i) {
  if (dt == LLMK_F32) return ((const float *)base)[i];
  if (dt == LLMK_BF16) return llmk_bf16_to_float(((const uint16_t *)base)[i]);
  return llmk_f16_to_float(((const uint16_t *)base)[i]);
}


/* ------------------------------------------------------------------------ */
/* A case and its group geometry                                             */
/* ------------------------------------------------------------------------ */

enum { D_NORMAL, D_UNIFORM, D_OUTLIER, D_SPECIAL, D_ROWS, D_SUBNORMAL, D_RAMP, N_DIST };
static const char *const dist_names[] = {"normal", "uniform", "outlier", "nan/inf",
                                         "rows",   "subnormal", "ramp"};
enum { UB_NONE, UB_BELOW, UB_ABOVE, UB_ZERO, UB_INF, UB_NAN };
static const char *const ub_names[] = {"none", "below", "above", "0", "inf", "nan"};
enum { L_2D, L_1D, L_3D };

typedef struct qcase {
  llmk_scaling scaling;
  int64_t bm, bk;      /* BLOCK only */
  llmk_dtype in, out;  /* dtype of x, FP8 dtype of xq */
  int64_t M, K;        /* rows (leading dims flattened) x row length */
  int layout;          /* L_2D; L_1D: x is [K] (M == 1); L_3D: x is [2, M/2, K] */
  int strided;         /* row pitches K+5 (x), K+3 (xq), K+2 (y) instead of K */
  int dist;            /* D_*: how x is drawn (ignored when values is given) */
  const float *values; /* optional M*K row-major values to use instead */
  int ub;              /* UB_*: whether and where desc->scale_ub points */
  int use_num_rows;    /* TENSOR: pass desc->num_rows = &num_rows */
  int64_t num_rows;
} qcase;

/* What a case produced (for the targeted tests), dense row-major. */
typedef struct qresult {
  float *x;     /* M*K input values, as stored in x's dtype */
  uint8_t *q;   /* M*K codes written by llmk */
  float *scale; /* ngroups scales written by llmk */
  int64_t ngroups;
  float ub;
  int ok;       /* the quantize call succeeded */
} qresult;
static void qresult_free(qresult *r) {
  free(r->x);
  free(r->q);
  free(r->scale);
  memset(r, 0, sizeof *r);
}

typedef struct geom {
  int64_t ngr, ngc; /* the scale array is ngr x ngc, row-major */
} geom;
static geom geometry(const qcase *c) {
  geom g;
  switch (c->scaling) {
    case LLMK_SCALING_TENSOR: g.ngr = 1; g.ngc = 1; break;
    case LLMK_SCALING_ROW: g.ngr = c->M; g.ngc = 1; break;
    case LLMK_SCALING_COL: g.ngr = 1; g.ngc = c->K; break;
    default: g.ngr = cdiv(c->M, c->bm); g.ngc = cdiv(c->K, c->bk); break;
  }
  return g;
}
/* Rows [*r0, *r1) and columns [*c0, *c1) of group (gi, gj). */
static void group_bounds(const qcase *c, int64_t gi, int64_t gj, int64_t *r0, int64_t *r1,
                         int64_t *c0, int64_t *c1) {
  switch (c->scaling) {
    case LLMK_SCALING_TENSOR: *r0 = 0; *r1 = c->M; *c0 = 0; *c1 = c->K; break;
    case LLMK_SCALING_ROW: *r0 = gi; *r1 = gi + 1; *c0 = 0; *c1 = c->K; break;
    case LLMK_SCALING_COL: *r0 = 0; *r1 = c->M; *c0 = gj; *c1 = gj + 1; break;
    default:
      *r0 = gi * c->bm; *r1 = imin(*r0 + c->bm, c->M);
      *c0 = gj * c->bk; *c1 = imin(*c0 + c->bk, c->K);
      break;
  }
}
/* Index into the scale array of the group holding element (r, k). */
static int64_t group_of(const qcase *c, int64_t r, int64_t k) {
  switch (c->scaling) {
    case LLMK_SCALING_TENSOR: return 0;
    case LLMK_SCALING_ROW: return r;
    case LLMK_SCALING_COL: return k;
    default: return (r / c->bm) * cdiv(c->K, c->bk) + k / c->bk;
  }
}

static void case_name(const qcase *c, char *buf, size_t n) {
  char sc[48];
  switch (c->scaling) {
    case LLMK_SCALING_TENSOR: snprintf(sc, sizeof sc, "tensor"); break;
    case LLMK_SCALING_ROW: snprintf(sc, sizeof sc, "row"); break;
    case LLMK_SCALING_COL: snprintf(sc, sizeof sc, "col"); break;
    default: snprintf(sc, sizeof sc, "block%lldx%lld", (long long)c->bm, (long long)c->bk); break;
  }
  char nr[40] = "";
  if (c->use_num_rows) snprintf(nr, sizeof nr, " num_rows=%lld", (long long)c->num_rows);
  snprintf(buf, n, "[%s %s->%s M=%lld K=%lld%s%s %s ub=%s%s]", sc, llmk_dtype_name(c->in),
           llmk_dtype_name(c->out), (long long)c->M, (long long)c->K,
           c->layout == L_3D ? " 3d" : c->layout == L_1D ? " 1d" : "",
           c->strided ? " strided" : "", c->values ? "given" : dist_names[c->dist],
           ub_names[c->ub], nr);
}

static llmk_tensor view(void *data, llmk_dtype dt, const qcase *c, int64_t ld) {
  if (c->layout == L_1D) return llmk_tensor_1d(data, dt, c->K);
  if (c->layout == L_3D) {
    llmk_tensor t = {data, dt, 3, {2, c->M / 2, c->K, 0}, {(c->M / 2) * ld, ld, 1, 0}};
    return t;
  }
  return llmk_tensor_2d(data, dt, c->M, c->K, ld);
}
static llmk_tensor scale_view(float *s, const qcase *c) {
  geom g = geometry(c);
  if (c->scaling == LLMK_SCALING_BLOCK) return llmk_tensor_2d(s, LLMK_F32, g.ngr, g.ngc, g.ngc);
  return llmk_tensor_1d(s, LLMK_F32, g.ngr * g.ngc);
}

/* ------------------------------------------------------------------------ */
/* The oracle: docs/DESIGN.md "Quantization", literally                           */
/* ------------------------------------------------------------------------ */

static void oracle_quantize(const qcase *c, const float *x, const float *scale_ub, uint8_t *q,
                            float *scale) {
  const float FP8_MAX = fp8_max(c->out);
  const float MIN_SCALE = 1.0f / (FP8_MAX * 512.0f);
  int64_t amax_rows = c->M; /* num_rows: only a prefix of rows sets the scale */
  if (c->use_num_rows) amax_rows = c->num_rows < 0 ? 0 : imin(c->num_rows, c->M);
  geom g = geometry(c);
  for (int64_t gi = 0; gi < g.ngr; gi++)
    for (int64_t gj = 0; gj < g.ngc; gj++) {
      int64_t r0, r1, c0, c1;
      group_bounds(c, gi, gj, &r0, &r1, &c0, &c1);
      float amax = 0.0f;
      for (int64_t r = r0; r < r1 && r < amax_rows; r++)
        for (int64_t k = c0; k < c1; k++) {
          float a = fabsf(x[r * c->K + k]);
          if (isfinite(a) && a > amax) amax = a;
        }
      if (scale_ub) amax = fminf(amax, *scale_ub);
      float s = fmaxf(amax / FP8_MAX, MIN_SCALE);
      float inv = 1.0f / s;
      scale[gi * g.ngc + gj] = s;
      for (int64_t r = r0; r < r1; r++)
        for (int64_t k = c0; k < c1; k++) q[r * c->K + k] = llmk_float_to_fp8(x[r * c->K + k] * inv, c->out);
    }
}

/* ------------------------------------------------------------------------ */
/* Data                                                                      */
/* ------------------------------------------------------------------------ */

static void gen_data(const qcase *c, float *v) {
  /* f16 has a narrow range: keep outliers (x1000) finite there. */
  float mag = c->in == LLMK_F16 ? exp2f(unif(-6.0f, 3.0f)) : exp2f(unif(-30.0f, 30.0f));
  for (int64_t r = 0; r < c->M; r++) {
    float row_const = mag * t_rand_normal();
    int row_kind = (int)(t_rand_u64() % 4);
    for (int64_t k = 0; k < c->K; k++) {
      float x = mag * t_rand_normal();
      uint64_t u = t_rand_u64();
      switch (c->dist) {
        case D_UNIFORM: x = mag * unif(-1.0f, 1.0f); break;
        case D_OUTLIER:
          if (u % 64 == 0) x *= 1000.0f;
          break;
        case D_SPECIAL:
          switch (u % 24) {
            case 0: x = NAN; break;
            case 1: x = -NAN; break;
            case 2: x = INFINITY; break;
            case 3: x = -INFINITY; break;
            case 4: x = 0.0f; break;
            case 5: x = -0.0f; break;
            case 6: if (c->in == LLMK_F32) x = bitsf(0x7F800001u); break; /* signaling NaN */
            default: break;
          }
          break;
        case D_ROWS: /* all-equal rows, zero rows, negated constant rows, normal rows */
          x = row_kind == 0 ? row_const : row_kind == 1 ? 0.0f : row_kind == 2 ? -fabsf(row_const) : x;
          break;
        case D_SUBNORMAL: /* mostly tiny values, a few large ones: FP8 subnormal codes */
          x = u % 128 == 0 ? mag * unif(1.0f, 2.0f) * (u & 256 ? -1.0f : 1.0f)
                           : mag * unif(-1.0f, 1.0f) * 0x1p-12f;
          break;
        case D_RAMP: x *= (float)(1 + r % 32); break;
        default: break;
      }
      v[r * c->K + k] = x;
    }
  }
}

/* ------------------------------------------------------------------------ */
/* Dequantization check                                                      */
/* ------------------------------------------------------------------------ */

static int same_f32(float a, float b) { return fbits(a) == fbits(b) || (isnan(a) && isnan(b)); }
static int same_bf16(uint16_t a, uint16_t b) {
  return a == b || ((a & 0x7FFF) > 0x7F80 && (b & 0x7FFF) > 0x7F80);
}

/* Dequantizes q (pitch ldq) with `scale` into f32 and bf16 outputs and checks
 * y == bf16?(decode(q) * scale) bitwise. With x (the quantized input values,
 * dense), also checks the round trip error of f32 output against x. */
static void check_dequant(const qcase *c, const char *name, const llmk_quantize_desc *d,
                          const uint8_t *q, int64_t ldq, const float *scale, const float *x) {
  const int64_t M = c->M, K = c->K, ldy = c->strided ? K + 2 : K;
  const llmk_dtype ydts[2] = {LLMK_F32, LLMK_BF16};
  for (int yi = 0; yi < 2; yi++) {
    llmk_dtype ydt = ydts[yi];
    size_t es = llmk_dtype_size(ydt);
    gbuf yb;
    void *y = gbuf_alloc(&yb, (size_t)(M * ldy) * es, 0xA5);
    llmk_tensor tq = view((void *)q, c->out, c, ldq), ts = scale_view((float *)scale, c),
                ty = view(y, ydt, c, ldy);
    llmk_status st = llmk_dequantize_fp8(H, d, &tq, &ts, &ty, NULL);
    CHECK(st == LLMK_SUCCESS, "%s dequantize to %s: %s: %s", name, llmk_dtype_name(ydt),
          llmk_status_string(st), llmk_last_error());
    int64_t bad = 0, br = 0, bk = 0;
    for (int64_t r = 0; r < M; r++)
      for (int64_t k = 0; k < K; k++) {
        float e = llmk_fp8_to_float(q[r * ldq + k], c->out) * scale[group_of(c, r, k)];
        int ok = ydt == LLMK_F32 ? same_f32(((float *)y)[r * ldy + k], e)
                                 : same_bf16(((uint16_t *)y)[r * ldy + k], llmk_float_to_bf16(e));
        if (!ok && !bad++) br = r, bk = k;
      }
    CHECK(bad == 0, "%s dequantize to %s: %lld elements differ from decode(q)*scale, first (%lld,%lld): q=0x%02x scale=%a",
          name, llmk_dtype_name(ydt), (long long)bad, (long long)br, (long long)bk,
          bad ? q[br * ldq + bk] : 0, bad ? scale[group_of(c, br, bk)] : 0.0f);
    int64_t stray = stray_writes(&yb, M, K, ldy, es);
    CHECK(stray == 0, "%s dequantize to %s: %lld bytes written outside the elements (padding/guards)",
          name, llmk_dtype_name(ydt), (long long)stray);

    /* Round trip: e4m3 normal values within 2^-4 relative (3 mantissa bits,
     * round to nearest), e5m2 within 2^-3; below the smallest normal, half a
     * subnormal step times the scale. */
    if (x && ydt == LLMK_F32) {
      const int e5 = c->out == LLMK_E5M2;
      const float rel = e5 ? 0x1p-3f : 0x1p-4f, min_normal = e5 ? 0x1p-14f : 0x1p-6f,
                  half_sub = e5 ? 0x1p-17f : 0x1p-10f;
      int64_t nbad = 0, fr = 0, fk = 0;
      for (int64_t r = 0; r < M; r++)
        for (int64_t k = 0; k < K; k++) {
          float xv = x[r * K + k], s = scale[group_of(c, r, k)];
          if (!isfinite(xv)) continue;
          float yv = ((float *)y)[r * ldy + k];
          double err = fabs((double)yv - (double)xv);
          int ok = fabsf(xv) * (1.0f / s) >= min_normal ? err <= rel * fabs((double)xv)
                                                        : err <= half_sub * (double)s * 1.001;
          if (!ok && !nbad++) fr = r, fk = k;
        }
      CHECK(nbad == 0, "%s round trip: %lld elements off by more than FP8 precision, first (%lld,%lld): x=%a y=%a",
            name, (long long)nbad, (long long)fr, (long long)fk, nbad ? x[fr * K + fk] : 0.0f,
            nbad ? ((float *)y)[fr * ldy + fk] : 0.0f);
    }
    free(yb.base);
  }
}

/* ------------------------------------------------------------------------ */
/* One case: llmk against the oracle                                         */
/* ------------------------------------------------------------------------ */

static void run_case(const qcase *c, qresult *res) {
  char name[256];
  case_name(c, name, sizeof name);
  const int64_t M = c->M, K = c->K, n = M * K;
  const int64_t ldx = c->strided ? K + 5 : K, ldq = c->strided ? K + 3 : K;
  const geom g = geometry(c);
  const int64_t ng = g.ngr * g.ngc;
  const size_t xes = llmk_dtype_size(c->in);

  /* x: padding holds large finite values that would change any scale they
   * leaked into; the values are read back so the oracle sees what llmk sees. */
  float *v = t_xmalloc((size_t)n * sizeof(float));
  if (c->values) memcpy(v, c->values, (size_t)n * sizeof(float));
  else gen_data(c, v);
  void *xb = t_xmalloc((size_t)(M * ldx) * xes);
  for (int64_t i = 0; i < M * ldx; i++) store_x(xb, c->in, i, c->in == LLMK_F16 ? 60000.0f : 1e30f);
  for (int64_t r = 0; r < M; r++)
    for (int64_t k = 0; k < K; k++) {
      store_x(xb, c->in, r * ldx + k, v[r * K + k]);
      v[r * K + k] = load_x(xb, c->in, r * ldx + k);
    }
  void *xcopy = t_xmalloc((size_t)(M * ldx) * xes);
  memcpy(xcopy, xb, (size_t)(M * ldx) * xes);

  float ub = 0.0f, amax_all = 0.0f;
  for (int64_t i = 0; i < n; i++)
    if (isfinite(v[i]) && fabsf(v[i]) > amax_all) amax_all = fabsf(v[i]);
  switch (c->ub) {
    case UB_BELOW: ub = amax_all > 0.0f ? amax_all / 8.0f : 1.0f; break;
    case UB_ABOVE: ub = amax_all > 0.0f ? amax_all * 4.0f : 1.0f; break;
    case UB_ZERO: ub = 0.0f; break;
    case UB_INF: ub = INFINITY; break;
    case UB_NAN: ub = NAN; break;
    default: break;
  }
  int64_t num_rows = c->num_rows;
  llmk_quantize_desc d = {LLMK_QUANTIZE_DESC_SIZE, c->scaling, c->bm, c->bk, c->ub ? &ub : NULL,
                       c->use_num_rows ? &num_rows : NULL};

  uint8_t *oq = t_xmalloc((size_t)n);
  float *os = t_xmalloc((size_t)ng * sizeof(float));
  oracle_quantize(c, v, c->ub ? &ub : NULL, oq, os);

  static const uint8_t poisons[2] = {0xA5, 0x5A};
  for (int p = 0; p < 2; p++) {
    gbuf qb, sb;
    uint8_t *q = gbuf_alloc(&qb, (size_t)(M * ldq), poisons[p]);
    float *s = gbuf_alloc(&sb, (size_t)ng * sizeof(float), poisons[p]);
    llmk_tensor tx = view(xb, c->in, c, ldx), tq = view(q, c->out, c, ldq), ts = scale_view(s, c);
    llmk_status st = llmk_quantize_fp8(H, &d, &tx, &tq, &ts, NULL);
    CHECK(st == LLMK_SUCCESS, "%s quantize: %s: %s", name, llmk_status_string(st), llmk_last_error());
    if (res) res->ok = st == LLMK_SUCCESS;

    int64_t bad = 0, br = 0, bk = 0;
    for (int64_t r = 0; r < M; r++)
      for (int64_t k = 0; k < K; k++)
        if (q[r * ldq + k] != oq[r * K + k] && !bad++) br = r, bk = k;
    CHECK(bad == 0, "%s poison 0x%02X: %lld of %lld codes differ from the oracle, first (%lld,%lld): x=%a llmk 0x%02x oracle 0x%02x",
          name, poisons[p], (long long)bad, (long long)n, (long long)br, (long long)bk,
          bad ? v[br * K + bk] : 0.0f, bad ? q[br * ldq + bk] : 0, bad ? oq[br * K + bk] : 0);
    int64_t sbad = 0, sfirst = 0;
    for (int64_t i = 0; i < ng; i++)
      if (fbits(s[i]) != fbits(os[i]) && !sbad++) sfirst = i;
    CHECK(sbad == 0, "%s poison 0x%02X: %lld of %lld scales differ from the oracle, first [%lld]: llmk %a oracle %a",
          name, poisons[p], (long long)sbad, (long long)ng, (long long)sfirst,
          sbad ? s[sfirst] : 0.0f, sbad ? os[sfirst] : 0.0f);
    int64_t stray = stray_writes(&qb, M, K, ldq, 1);
    CHECK(stray == 0, "%s poison 0x%02X: %lld xq bytes written outside the elements (row padding/guards)",
          name, poisons[p], (long long)stray);
    stray = stray_writes(&sb, 1, ng, ng, sizeof(float));
    CHECK(stray == 0, "%s poison 0x%02X: %lld bytes written outside the %lld scales", name,
          poisons[p], (long long)stray, (long long)ng);

    if (p == 1) {
      check_dequant(c, name, &d, q, ldq, s,
                    c->ub == UB_NONE && !c->use_num_rows && st == LLMK_SUCCESS ? v : NULL);
      if (res) {
        res->q = t_xmalloc((size_t)n);
        for (int64_t r = 0; r < M; r++) memcpy(res->q + r * K, q + r * ldq, (size_t)K);
        res->scale = t_xmalloc((size_t)ng * sizeof(float));
        memcpy(res->scale, s, (size_t)ng * sizeof(float));
        res->ngroups = ng;
        res->ub = ub;
      }
    }
    free(qb.base);
    free(sb.base);
  }
  CHECK(memcmp(xb, xcopy, (size_t)(M * ldx) * xes) == 0, "%s: quantize modified x", name);
  if (res) res->x = v;
  else free(v);
  free(xb);
  free(xcopy);
  free(oq);
  free(os);
}

/* ------------------------------------------------------------------------ */
/* The grid: every scaling x dtype x shape x layout x distribution           */
/* ------------------------------------------------------------------------ */

typedef struct scfg {
  llmk_scaling s;
  int64_t bm, bk;
} scfg;
static const scfg SCALINGS[] = {
    {LLMK_SCALING_TENSOR, 0, 0}, {LLMK_SCALING_ROW, 0, 0},     {LLMK_SCALING_COL, 0, 0},
    {LLMK_SCALING_BLOCK, 1, 128}, {LLMK_SCALING_BLOCK, 128, 128}, {LLMK_SCALING_BLOCK, 128, 1},
    {LLMK_SCALING_BLOCK, 3, 5},  {LLMK_SCALING_BLOCK, 7, 1},     {LLMK_SCALING_BLOCK, 1, 1},
    {LLMK_SCALING_BLOCK, 200, 300}};
#define N_SCALINGS (sizeof SCALINGS / sizeof SCALINGS[0])
static const llmk_dtype INS[] = {LLMK_F32, LLMK_BF16, LLMK_F16};
static const llmk_dtype OUTS[] = {LLMK_E4M3, LLMK_E5M2};

static int e5m2_ok(llmk_scaling s) { return s == LLMK_SCALING_TENSOR || s == LLMK_SCALING_ROW; }

static qcase make_case(const scfg *sc, llmk_dtype in, llmk_dtype out, int64_t M, int64_t K) {
  qcase c;
  memset(&c, 0, sizeof c);
  c.scaling = sc->s;
  c.bm = sc->bm;
  c.bk = sc->bk;
  c.in = in;
  c.out = out;
  c.M = M;
  c.K = K;
  return c;
}

static void test_grid(void) {
  static const int64_t Ms[] = {1, 3, 17, 4097}, Ks[] = {1, 3, 17, 128, 129, 4097};
  int dist = 0;
  for (size_t mi = 0; mi < 4; mi++)
    for (size_t ki = 0; ki < 6; ki++) {
      int64_t M = Ms[mi], K = Ks[ki];
      if ((M == 4097 && K > 17) || (K == 4097 && M > 17)) continue;
      for (size_t si = 0; si < N_SCALINGS; si++)
        for (int oi = 0; oi < 2; oi++) {
          if (OUTS[oi] == LLMK_E5M2 && !e5m2_ok(SCALINGS[si].s)) continue;
          for (int ii = 0; ii < 3; ii++)
            for (int strided = 0; strided < 2; strided++) {
              /* Large shapes rotate through the distributions, small ones get all. */
              int nd = M * K > 4096 ? 2 : N_DIST;
              for (int di = 0; di < nd; di++) {
                qcase c = make_case(&SCALINGS[si], INS[ii], OUTS[oi], M, K);
                c.strided = strided;
                c.dist = nd == N_DIST ? di : dist++ % N_DIST;
                run_case(&c, NULL);
              }
            }
        }
    }
}

/* 3-D [2, 3, K] and 1-D [K] inputs, contiguous and pitched. */
static void test_layouts(void) {
  static const int64_t Ks[] = {1, 17, 129};
  for (size_t ki = 0; ki < 3; ki++)
    for (size_t si = 0; si < N_SCALINGS; si++)
      for (int oi = 0; oi < 2; oi++) {
        if (OUTS[oi] == LLMK_E5M2 && !e5m2_ok(SCALINGS[si].s)) continue;
        for (int ii = 0; ii < 3; ii++)
          for (int strided = 0; strided < 2; strided++) {
            qcase c = make_case(&SCALINGS[si], INS[ii], OUTS[oi], 6, Ks[ki]);
            c.layout = L_3D;
            c.strided = strided;
            c.dist = (int)(t_rand_u64() % N_DIST);
            run_case(&c, NULL);
            c = make_case(&SCALINGS[si], INS[ii], OUTS[oi], 1, Ks[ki] * 31);
            c.layout = L_1D;
            c.dist = (int)(t_rand_u64() % N_DIST);
            run_case(&c, NULL);
          }
      }
}

/* ------------------------------------------------------------------------ */
/* Targeted tests                                                            */
/* ------------------------------------------------------------------------ */

/* NaN, +-Inf, zero groups, all-equal rows, rows with no finite element. */
static void test_special_values(void) {
  enum { M = 6, K = 40 };
  static float v[M * K], v0[M * K];
  static const scfg cfgs[] = {{LLMK_SCALING_ROW, 0, 0}, {LLMK_SCALING_BLOCK, 1, 16},
                              {LLMK_SCALING_TENSOR, 0, 0}, {LLMK_SCALING_COL, 0, 0},
                              {LLMK_SCALING_BLOCK, 4, 7}};
  for (int oi = 0; oi < 2; oi++)
    for (int ii = 0; ii < 3; ii++)
      for (int ci = 0; ci < 5; ci++) {
        llmk_dtype out = OUTS[oi];
        if (out == LLMK_E5M2 && !e5m2_ok(cfgs[ci].s)) continue;
        const float cst = unif(0.5f, 8.0f);
        for (int k = 0; k < K; k++) {
          v[0 * K + k] = t_rand_normal() * 3.0f;       /* specials placed below */
          v[1 * K + k] = 0.0f;                          /* zero row */
          v[2 * K + k] = cst;                           /* all equal */
          v[3 * K + k] = -cst;                          /* all equal, negative */
          v[4 * K + k] = k % 3 == 0 ? NAN : k % 3 == 1 ? INFINITY : -INFINITY; /* nothing finite */
          v[5 * K + k] = t_rand_normal();
        }
        static const int nan_at[] = {5, 21}, pinf_at[] = {11, 30}, ninf_at[] = {13, 39};
        v[nan_at[0]] = NAN;
        v[nan_at[1]] = -NAN;
        for (int i = 0; i < 2; i++) v[pinf_at[i]] = INFINITY, v[ninf_at[i]] = -INFINITY;
        memcpy(v0, v, sizeof v);
        for (int i = 0; i < 2; i++) v0[nan_at[i]] = v0[pinf_at[i]] = v0[ninf_at[i]] = 0.0f;

        qcase c = make_case(&cfgs[ci], INS[ii], out, M, K);
        c.values = v;
        qresult a = {0}, b = {0};
        run_case(&c, &a);
        c.values = v0;
        run_case(&c, &b);
        if (!a.ok || !b.ok) {
          qresult_free(&a);
          qresult_free(&b);
          continue;
        }
        char name[256];
        case_name(&c, name, sizeof name);
        const uint8_t mc = max_code(out);
        for (int i = 0; i < 2; i++) {
          CHECK(a.q[nan_at[i]] == 0x7F, "%s: NaN gave code 0x%02x, expected 0x7F", name, a.q[nan_at[i]]);
          CHECK(a.q[pinf_at[i]] == mc, "%s: +Inf gave 0x%02x, expected 0x%02x", name, a.q[pinf_at[i]], mc);
          CHECK(a.q[ninf_at[i]] == (0x80 | mc), "%s: -Inf gave 0x%02x, expected 0x%02x", name,
                a.q[ninf_at[i]], 0x80 | mc);
        }
        /* NaN/Inf do not change any scale: same scales as with zeros there,
         * and the same codes everywhere else. */
        int same = 1;
        for (int64_t g = 0; g < a.ngroups; g++) same &= fbits(a.scale[g]) == fbits(b.scale[g]);
        CHECK(same, "%s: NaN/Inf elements changed a scale", name);
        int64_t diff = 0;
        for (int i = 0; i < M * K; i++) diff += isfinite(v[i]) && a.q[i] != b.q[i];
        CHECK(diff == 0, "%s: NaN/Inf elements changed %lld codes of finite elements", name, (long long)diff);

        if (cfgs[ci].s == LLMK_SCALING_ROW) {
          const float ms = min_scale(out), fm = fp8_max(out);
          const float c2 = a.x[2 * K]; /* cst as stored in x's dtype */
          int zq = 1, pq = 1, nq = 1;
          for (int k = 0; k < K; k++) {
            zq &= a.q[1 * K + k] == 0x00;
            pq &= a.q[2 * K + k] == mc;
            nq &= a.q[3 * K + k] == (0x80 | mc);
          }
          CHECK(fbits(a.scale[1]) == fbits(ms), "%s: zero row scale %a, expected MIN_SCALE %a", name, a.scale[1], ms);
          CHECK(zq, "%s: zero row has nonzero codes", name);
          CHECK(fbits(a.scale[2]) == fbits(c2 / fm), "%s: all-equal row scale %a, expected %a", name, a.scale[2], c2 / fm);
          CHECK(fbits(a.scale[3]) == fbits(c2 / fm), "%s: all-equal negative row scale %a, expected %a", name, a.scale[3], c2 / fm);
          CHECK(pq && nq, "%s: all-equal rows must give +-max code everywhere", name);
          CHECK(fbits(a.scale[4]) == fbits(ms), "%s: row without finite elements: scale %a, expected MIN_SCALE", name, a.scale[4]);
        }
        qresult_free(&a);
        qresult_free(&b);
      }
}

/* scale_ub below the amax clamps the scale to ub / FP8_MAX and saturates the
 * outliers; above the amax (or +Inf, or NaN under fminf) it changes nothing. */
static void test_scale_ub(void) {
  static const int64_t shapes[][2] = {{3, 129}, {17, 17}, {4097, 3}, {1, 4097}, {9, 70}};
  for (size_t shi = 0; shi < 5; shi++)
    for (size_t si = 0; si < N_SCALINGS; si++)
      for (int oi = 0; oi < 2; oi++) {
        if (OUTS[oi] == LLMK_E5M2 && !e5m2_ok(SCALINGS[si].s)) continue;
        for (int ii = 0; ii < 2; ii++) {
          qcase c = make_case(&SCALINGS[si], INS[ii], OUTS[oi], shapes[shi][0], shapes[shi][1]);
          const int64_t n = c.M * c.K;
          float *v = t_xmalloc((size_t)n * sizeof(float));
          c.dist = shi % 2 ? D_OUTLIER : D_SPECIAL;
          c.strided = (int)(shi % 2);
          gen_data(&c, v);
          c.values = v;
          char name[256];
          qresult none = {0}, r = {0};
          run_case(&c, &none);
          for (int ub = UB_BELOW; ub <= UB_NAN; ub++) {
            c.ub = ub;
            case_name(&c, name, sizeof name);
            run_case(&c, &r);
            if (!r.ok || !none.ok) {
              qresult_free(&r);
              continue;
            }
            if (ub == UB_ABOVE || ub == UB_INF || ub == UB_NAN) {
              CHECK(memcmp(r.q, none.q, (size_t)n) == 0 &&
                        memcmp(r.scale, none.scale, (size_t)r.ngroups * sizeof(float)) == 0,
                    "%s: a scale_ub above the amax changed the result", name);
            } else {
              const float fm = fp8_max(c.out), ms = min_scale(c.out), ubs = fmaxf(r.ub / fm, ms);
              const uint8_t mc = max_code(c.out);
              /* Each group's amax, then the clamped scale. */
              float *gamax = calloc((size_t)r.ngroups, sizeof(float));
              for (int64_t i = 0; i < n; i++) {
                float a = fabsf(r.x[i]);
                int64_t g = group_of(&c, i / c.K, i % c.K);
                if (isfinite(a) && a > gamax[g]) gamax[g] = a;
              }
              int64_t bad_s = 0, bad_q = 0, sat = 0;
              for (int64_t g = 0; g < r.ngroups; g++) {
                float expect = gamax[g] >= r.ub ? ubs : fmaxf(gamax[g] / fm, ms);
                bad_s += fbits(r.scale[g]) != fbits(expect);
              }
              /* Unless MIN_SCALE wins, |x| >= ub means |x * inv| >= FP8_MAX. */
              const int clamps = r.ub / fm > ms;
              for (int64_t i = 0; i < n; i++)
                if (clamps && isfinite(r.x[i]) && fabsf(r.x[i]) >= r.ub) {
                  sat++;
                  bad_q += r.q[i] != ((r.x[i] < 0 ? 0x80 : 0x00) | mc);
                }
              CHECK(bad_s == 0, "%s: %lld groups whose scale is not min(amax, ub)/FP8_MAX", name, (long long)bad_s);
              CHECK(bad_q == 0, "%s: %lld of %lld elements above ub did not saturate", name, (long long)bad_q, (long long)sat);
              CHECK(!clamps || sat > 0, "%s: test data has no element above ub", name);
              free(gamax);
            }
            qresult_free(&r);
          }
          qresult_free(&none);
          free(v);
        }
      }
}

/* One large value and many tiny ones: the scale is exactly 1 and the tiny
 * values land on FP8 subnormal codes, rounded to nearest even. */
static void test_subnormal(void) {
  enum { M = 5, K = 300 };
  static float v[M * K];
  for (int oi = 0; oi < 2; oi++) {
    const llmk_dtype out = OUTS[oi];
    const float fm = fp8_max(out), min_normal = out == LLMK_E5M2 ? 0x1p-14f : 0x1p-6f,
                step = out == LLMK_E5M2 ? 0x1p-16f : 0x1p-9f;
    for (int i = 0; i < M * K; i++) v[i] = unif(-1.0f, 1.0f) * min_normal * 1.2f;
    v[(int)(t_rand_u64() % (M * K))] = -fm;
    qcase c = make_case(&SCALINGS[0], LLMK_F32, out, M, K); /* tensor */
    c.values = v;
    c.strided = 1;
    qresult r = {0};
    run_case(&c, &r);
    if (r.ok) {
      CHECK(r.scale[0] == 1.0f, "%s: scale %a, expected 1", llmk_dtype_name(out), r.scale[0]);
      int64_t nsub = 0, bad = 0;
      for (int i = 0; i < M * K; i++) {
        float x = r.x[i];
        if (fabsf(x) >= min_normal || x == -fm) continue;
        float expect = rintf(x / step) * step; /* default rounding: nearest even */
        float got = llmk_fp8_to_float(r.q[i], out);
        int exp_field = out == LLMK_E5M2 ? (r.q[i] >> 2) & 0x1F : (r.q[i] >> 3) & 0xF;
        if (exp_field == 0 && (r.q[i] & 0x7F) != 0) nsub++;
        bad += got != expect && !(got == 0.0f && expect == 0.0f);
      }
      CHECK(bad == 0, "%s: %lld tiny values not rounded to the nearest subnormal", llmk_dtype_name(out), (long long)bad);
      CHECK(nsub > M * K / 4, "%s: only %lld subnormal codes", llmk_dtype_name(out), (long long)nsub);
    }
    qresult_free(&r);
  }
}

/* TENSOR with num_rows: only the first min(max(n, 0), M) rows set the scale,
 * every row is quantized. */
static void test_num_rows(void) {
  static const int64_t ns[] = {0, 1, 5, 16, 17, 18, 1000, -1, -7, INT64_MIN, INT64_MAX};
  const int64_t M = 17, K = 33;
  for (int oi = 0; oi < 2; oi++)
    for (int ii = 0; ii < 3; ii++)
      for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (int variant = 0; variant < 3; variant++) {
          qcase c = make_case(&SCALINGS[0], INS[ii], OUTS[oi], M, K);
          c.use_num_rows = 1;
          c.num_rows = ns[ni];
          c.dist = variant == 2 ? D_SPECIAL : D_RAMP;
          c.strided = variant >= 1;
          c.ub = variant == 1 ? UB_BELOW : UB_NONE;
          if (variant == 2) c.M = 18, c.layout = L_3D; /* [2, 9, K] */
          qresult r = {0};
          run_case(&c, &r);
          if (r.ok && variant == 0) {
            char name[256];
            case_name(&c, name, sizeof name);
            int64_t rows = ns[ni] < 0 ? 0 : imin(ns[ni], M);
            float amax = 0.0f;
            for (int64_t i = 0; i < rows * K; i++) amax = fmaxf(amax, fabsf(r.x[i]));
            float expect = fmaxf(amax / fp8_max(c.out), min_scale(c.out));
            CHECK(fbits(r.scale[0]) == fbits(expect), "%s: scale %a, expected %a from the first %lld rows",
                  name, r.scale[0], expect, (long long)rows);
            /* Rows past the prefix are quantized with its scale: values at or
             * above its amax saturate. */
            int64_t bad = 0;
            if (expect > min_scale(c.out))
              for (int64_t i = rows * K; i < M * K; i++)
                bad += fabsf(r.x[i]) >= amax && (r.q[i] & 0x7F) != max_code(c.out);
            CHECK(bad == 0, "%s: %lld values past the first %lld rows above their amax did not saturate",
                  name, (long long)bad, (long long)rows);
          }
          qresult_free(&r);
        }
}

/* Zero-sized M or K: every (empty) group gets MIN_SCALE, nothing else is written. */
static void test_empty(void) {
  static const int64_t shapes[][2] = {{0, 5}, {3, 0}, {0, 0}, {0, 129}, {4097, 0}};
  for (size_t shi = 0; shi < 5; shi++)
    for (size_t si = 0; si < N_SCALINGS; si++)
      for (int oi = 0; oi < 2; oi++) {
        if (OUTS[oi] == LLMK_E5M2 && !e5m2_ok(SCALINGS[si].s)) continue;
        for (int ii = 0; ii < 3; ii++)
          for (int strided = 0; strided < 2; strided++) {
            qcase c = make_case(&SCALINGS[si], INS[ii], OUTS[oi], shapes[shi][0], shapes[shi][1]);
            c.strided = strided;
            c.use_num_rows = c.scaling == LLMK_SCALING_TENSOR && strided;
            c.num_rows = 2;
            qresult r = {0};
            run_case(&c, &r);
            if (r.ok) {
              char name[256];
              case_name(&c, name, sizeof name);
              int64_t expect_n = c.scaling == LLMK_SCALING_TENSOR ? 1
                                 : c.scaling == LLMK_SCALING_ROW ? c.M
                                 : c.scaling == LLMK_SCALING_COL ? c.K
                                 : cdiv(c.M, c.bm) * cdiv(c.K, c.bk);
              int64_t ok = 0;
              for (int64_t g = 0; g < r.ngroups; g++) ok += fbits(r.scale[g]) == fbits(min_scale(c.out));
              CHECK(r.ngroups == expect_n && ok == expect_n, "%s: %lld of %lld scales are MIN_SCALE",
                    name, (long long)ok, (long long)expect_n);
            }
            qresult_free(&r);
          }
      }

  /* Empty tensors may have NULL data; the per-tensor scale is still written. */
  llmk_quantize_desc d = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_TENSOR, 0, 0, NULL, NULL};
  llmk_tensor tx = llmk_tensor_2d(NULL, LLMK_F32, 0, 64, 64), tq = llmk_tensor_2d(NULL, LLMK_E4M3, 0, 64, 64);
  float s[3] = {-1.0f, -1.0f, -1.0f};
  llmk_tensor ts = llmk_tensor_1d(&s[1], LLMK_F32, 1);
  llmk_status st = llmk_quantize_fp8(H, &d, &tx, &tq, &ts, NULL);
  CHECK(st == LLMK_SUCCESS, "NULL empty tensors: %s: %s", llmk_status_string(st), llmk_last_error());
  CHECK(fbits(s[1]) == fbits(min_scale(LLMK_E4M3)) && s[0] == -1.0f && s[2] == -1.0f,
        "NULL empty tensors: scale %a (neighbours %g %g)", s[1], s[0], s[2]);
  llmk_quantize_desc db = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_BLOCK, 128, 128, NULL, NULL};
  llmk_tensor tsb = llmk_tensor_2d(NULL, LLMK_F32, 0, 1, 1);
  st = llmk_quantize_fp8(H, &db, &tx, &tq, &tsb, NULL);
  CHECK(st == LLMK_SUCCESS, "NULL empty tensors, block: %s: %s", llmk_status_string(st), llmk_last_error());
  llmk_tensor ty = llmk_tensor_2d(NULL, LLMK_BF16, 0, 64, 64);
  st = llmk_dequantize_fp8(H, &db, &tq, &tsb, &ty, NULL);
  CHECK(st == LLMK_SUCCESS, "NULL empty dequantize: %s: %s", llmk_status_string(st), llmk_last_error());
}

/* Dequantization of arbitrary codes (all 256, NaN and e5m2 Inf included) with
 * arbitrary positive scales, some overflowing to Inf. */
static void test_dequant_codes(void) {
  static const int64_t shapes[][2] = {{17, 129}, {1, 300}, {130, 3}, {3, 257}};
  for (size_t shi = 0; shi < 4; shi++)
    for (size_t si = 0; si < N_SCALINGS; si++)
      for (int oi = 0; oi < 2; oi++) {
        if (OUTS[oi] == LLMK_E5M2 && !e5m2_ok(SCALINGS[si].s)) continue;
        for (int strided = 0; strided < 2; strided++) {
          qcase c = make_case(&SCALINGS[si], LLMK_F32, OUTS[oi], shapes[shi][0], shapes[shi][1]);
          c.strided = strided;
          const int64_t ldq = strided ? c.K + 3 : c.K, ng = geometry(&c).ngr * geometry(&c).ngc;
          uint8_t *q = t_xmalloc((size_t)(c.M * ldq));
          float *s = t_xmalloc((size_t)ng * sizeof(float));
          for (int64_t i = 0; i < c.M * ldq; i++) q[i] = i < 256 ? (uint8_t)i : (uint8_t)t_rand_u64();
          for (int64_t g = 0; g < ng; g++) {
            uint64_t u = t_rand_u64() % 8;
            s[g] = u == 0 ? min_scale(c.out) : u == 1 ? 3e38f : exp2f(unif(-40.0f, 40.0f)) * unif(1.0f, 2.0f);
          }
          char name[256];
          case_name(&c, name, sizeof name);
          strcat(name, " random codes");
          llmk_quantize_desc d = {LLMK_QUANTIZE_DESC_SIZE, c.scaling, c.bm, c.bk, NULL, NULL};
          check_dequant(&c, name, &d, q, ldq, s, NULL);
          free(q);
          free(s);
        }
      }
  /* Two values worked by hand. */
  uint8_t q[2] = {0x7E, 0xB9}; /* e4m3: 448, -(1 + 1/8) * 2^0 */
  float s = 2.0f, y[2] = {0, 0};
  llmk_quantize_desc d = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_TENSOR, 0, 0, NULL, NULL};
  llmk_tensor tq = llmk_tensor_1d(q, LLMK_E4M3, 2), ts = llmk_tensor_1d(&s, LLMK_F32, 1),
              ty = llmk_tensor_1d(y, LLMK_F32, 2);
  CHECK(llmk_dequantize_fp8(H, &d, &tq, &ts, &ty, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
  CHECK(y[0] == 896.0f && y[1] == -2.25f, "hand-worked dequantize: %g %g, expected 896 -2.25", y[0], y[1]);
}

int main(void) {
  t_seed();
  llmk_status st = llmk_create_cpu(&H);
  CHECK(st == LLMK_SUCCESS, "llmk_create_cpu: %s", llmk_last_error());
  if (st != LLMK_SUCCESS) TEST_END();
  test_special_values();
  test_subnormal();
  test_scale_ub();
  test_num_rows();
  test_empty();
  test_dequant_codes();
  test_layouts();
  test_grid();
  llmk_destroy(H);
  TEST_END();
}
