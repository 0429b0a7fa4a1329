/* opcheck cases: llmk_rmsnorm and llmk_silu_mul_quant, bitwise CPU = CUDA
 * (docs/DESIGN.md, "RMSNorm" and "SiLU-multiply-quantize"). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "opcheck.h"

static float unif(oc_rng *r, float a, float b) { return a + (b - a) * (float)oc_uniform(r); }

/* The norm family's distributions: normal at a magnitude, outliers (2%
 * x1000), rows (constant, zero, negative-constant or normal), NaN/Inf in
 * every 7th row, bf16 subnormals, huge values, a wide exponent spread
 * (2^-100 .. 2^100). */
static float draw(oc_rng *r, int dist, int64_t row, float rc, int kind, float mag) {
  const float x = mag * oc_normal(r);
  const uint64_t u = oc_rand(r);
  switch (dist) {
    case OC_D_OUTLIER: return u % 50 == 0 ? x * 1000.0f : x;
    case OC_D_ROWS: return kind == 0 ? rc : kind == 1 ? 0.0f : kind == 2 ? -fabsf(rc) : x;
    case OC_D_NAN_INF:
      if (row % 7 == 3 && u % 32 == 0) return (u >> 8) % 3 == 0 ? NAN : (u >> 8) % 3 == 1 ? INFINITY : -INFINITY;
      return x;
    case OC_D_TINY: return oc_normal(r) * 0x1p-128f;
    case OC_D_HUGE: return oc_normal(r) * 0x1p125f;
    case OC_D_WIDE: return (u & 1 ? -1.0f : 1.0f) * ldexpf(unif(r, 1.0f, 2.0f), (int)((u >> 1) % 200) - 100);
    case OC_D_CONST: return 1.0f;
    default: return x;
  }
}
static const int norm_dists[7] = {OC_D_NORMAL, OC_D_OUTLIER, OC_D_ROWS, OC_D_NAN_INF, OC_D_TINY, OC_D_HUGE, OC_D_WIDE};

/* bf16 rows (pitch ld) of the view at p. */
static void fill_rows(uint16_t *p, int64_t M, int64_t K, int64_t ld, int dist, float mag, oc_rng *r) {
  const uint64_t base = oc_rand(r);
  if (dist == OC_D_CONST) { /* perf-only cases: 1.0 */
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++)
      for (int64_t k = 0; k < K; k++) p[m * ld + k] = 0x3F80;
    return;
  }
#pragma omp parallel for schedule(static) if (M * K > 100000)
  for (int64_t m = 0; m < M; m++) { /* one stream per row */
    oc_rng rr;
    oc_rng_split(&rr, base, (uint64_t)m);
    const float rc = mag * oc_normal(&rr);
    const int kind = (int)(oc_rand(&rr) % 4);
    for (int64_t k = 0; k < K; k++) p[m * ld + k] = llmk_float_to_bf16(draw(&rr, dist, m, rc, kind, mag));
  }
}

/* ---- rmsnorm ------------------------------------------------------------------- */

typedef struct norm_priv {
  oc_norm_params p;
  int ix, ir, iw, iy, iys, iro; /* buffer indices (-1: absent) */
  int64_t ldx, ldr;
} norm_priv;

static void fill_norm(const oc_case *c, void *const *host, oc_rng *r, llmk_handle cpu) {
  (void)cpu;
  const norm_priv *q = OC_PARAMS(c, const norm_priv);
  const oc_norm_params *p = &q->p;
  const float mag = p->dist == OC_D_NORMAL ? exp2f(unif(r, -16.0f, 16.0f)) : 1.0f;
  fill_rows(oc_at(c, host, q->ix, 0), p->M, p->K, q->ldx, p->dist, mag, r);
  if (q->ir >= 0)
    fill_rows(oc_at(c, host, q->ir, 0), p->M, p->K, q->ldr, p->dist == OC_D_NAN_INF ? OC_D_NORMAL : p->dist, mag, r);
  uint16_t *w = oc_at(c, host, q->iw, 0);
  for (int64_t k = 0; k < p->K; k++)
    w[k] = p->dist == OC_D_CONST ? 0x3F80 : k % 29 == 3 ? 0 : llmk_float_to_bf16(unif(r, -2.0f, 2.0f));
}

static llmk_status run_norm(const oc_case *c, const oc_env *e, void *stream) {
  const norm_priv *q = OC_PARAMS(c, const norm_priv);
  llmk_rmsnorm_desc d = LLMK_RMSNORM_DESC_INIT;
  d.eps = q->p.dist == OC_D_ROWS ? 1e-6f : 1e-5f;
  d.fp8_planes = q->p.fp8 == 2 ? 2 : 1;
  const llmk_tensor *res = q->ir >= 0 ? &e->t[q->ir] : NULL;
  const llmk_tensor *ro = q->p.res == 2 ? res : q->iro >= 0 ? &e->t[q->iro] : NULL;
  return llmk_rmsnorm(e->h, &d, &e->t[q->ix], res, &e->t[q->iw], &e->t[q->iy], q->iys >= 0 ? &e->t[q->iys] : NULL,
                      ro, stream);
}

/* [M, K] at pitch ld, or [2, M/2, K] when three_d. */
static int add_rows(oc_case *c, const char *name, oc_role role, llmk_dtype dt, int64_t M, int64_t K, int64_t ld,
                    int64_t off, int three_d) {
  if (!three_d) return oc_buf_2d(c, name, role, OC_CMP_BITS, dt, M, K, ld, off);
  const int64_t sh[3] = {2, M / 2, K}, st[3] = {(M / 2) * ld, ld, 1};
  const int i = oc_buf_view(c, name, role, OC_CMP_BITS, dt, 3, sh, st, off);
  c->buf[i].bytes = (size_t)(off + M * ld) * llmk_dtype_size(dt);
  return i;
}

void oc_norm_case(oc_case *c, const oc_norm_params *p, uint64_t seed) {
  static const char *const lay[] = {"dense", "pitch", "misaligned"};
  oc_case_init(c, "rmsnorm", seed);
  _Static_assert(sizeof(norm_priv) <= sizeof c->p, "norm_priv");
  norm_priv *q = OC_PARAMS(c, norm_priv);
  q->p = *p;
  const int64_t M = p->M, K = p->K;
  const int planes = p->fp8 == 2 ? 2 : 1, mis = p->lay == 2;
  const int three_d = p->lay == 1 && M % 2 == 0 && planes == 1;
  const int64_t pad = p->lay == 1 ? 8 : mis ? 1 : 0, off = mis ? 1 : 0;
  const int64_t ldo = K + pad, ldy = K + (mis ? 5 : pad);
  q->ldx = K + pad, q->ldr = K + (mis ? 3 : pad);
  snprintf(c->name, sizeof c->name, "M=%lld K=%lld res=%s y=%s %s %s", (long long)M, (long long)K,
           p->res == 0 ? "none" : p->res == 1 ? "separate" : "in-place",
           p->fp8 == 2 ? "e4m3x2" : p->fp8 ? "e4m3" : "bf16", lay[p->lay], oc_dist_name(p->dist));
  snprintf(c->dtype, sizeof c->dtype, "bf16");
  oc_key(c, "m", M);
  oc_key(c, "k", K);
  q->ix = add_rows(c, "x", OC_IN, LLMK_BF16, M, K, q->ldx, off, three_d);
  q->ir = p->res ? add_rows(c, p->res == 2 ? "residual (in place)" : "residual", p->res == 2 ? OC_INOUT : OC_IN,
                            LLMK_BF16, M, K, q->ldr, off, three_d)
                 : -1;
  q->iw = oc_buf_1d(c, "weight", OC_IN, OC_CMP_BITS, LLMK_BF16, K + off);
  c->buf[q->iw].shape[0] = K, c->buf[q->iw].offset = off;
  const llmk_dtype yt = p->fp8 ? LLMK_E4M3 : LLMK_BF16;
  if (planes == 2) { /* [M, 2, K]: plane rows ldy apart */
    const int64_t sh[3] = {M, 2, K}, st[3] = {2 * ldy, ldy, 1};
    q->iy = oc_buf_view(c, "y", OC_OUT, OC_CMP_BITS, yt, 3, sh, st, off);
    c->buf[q->iy].bytes = (size_t)(off + 2 * M * ldy);
  } else {
    q->iy = add_rows(c, "y", OC_OUT, yt, M, K, ldy, off, three_d);
  }
  q->iys = p->fp8 ? oc_buf_1d(c, "y_scale", OC_OUT, OC_CMP_BITS, LLMK_F32, planes * M) : -1;
  q->iro = p->res == 1 ? add_rows(c, "residual_out", OC_OUT, LLMK_BF16, M, K, ldo, off, three_d) : -1;
  c->fill = fill_norm;
  c->run = run_norm;
  c->bytes = (double)(M * K) * (2.0 + (p->fp8 ? planes : 2) + (p->res ? 4 : 0)) + K * 2.0 + (p->fp8 ? 4.0 * planes * M : 0);
}

/* ---- silu_mul_quant -------------------------------------------------------------- */

typedef struct silu_priv {
  oc_silu_params p;
  int ig, iu, iq, is, iub;
  int64_t ldgu, nseg;
} silu_priv;

static void fill_silu(const oc_case *c, void *const *host, oc_rng *r, llmk_handle cpu) {
  (void)cpu;
  const silu_priv *q = OC_PARAMS(c, const silu_priv);
  const oc_silu_params *p = &q->p;
  const int64_t M = p->M, F = p->F, ld = q->ldgu;
  uint16_t *g = oc_at(c, host, q->ig, 0);
  uint16_t *u = q->iu >= 0 ? (uint16_t *)oc_at(c, host, q->iu, 0) : g + F; /* halves: up is the second half */
  fill_rows(g, M, F, ld, p->dist == OC_D_HUGE ? OC_D_NORMAL : p->dist, 3.0f, r);
  fill_rows(u, M, F, ld, p->dist == OC_D_NAN_INF ? OC_D_NORMAL : p->dist, 1.0f, r);
  for (int64_t i = 0; i < M * F; i++) {
    uint16_t *gp = g + (i / F) * ld + i % F, *up = u + (i / F) * ld + i % F;
    if (p->dist == OC_D_NAN_INF) { /* exp overflow and zeros */
      const uint64_t v = oc_rand(r) % 64;
      if (v == 0) *gp = llmk_float_to_bf16(-800.0f);
      else if (v == 1) *gp = 0x8000;
    }
    if (p->dist == OC_D_HUGE) *up = llmk_float_to_bf16(llmk_bf16_to_float(*up) * 0x1p126f);
  }
  if (q->iub >= 0) {
    float amax = 0.0f; /* a bound from |g| * |u| is enough to place scale_ub */
    for (int64_t i = 0; i < M * F; i++) {
      const float a = fabsf(llmk_bf16_to_float(g[(i / F) * ld + i % F]) * llmk_bf16_to_float(u[(i / F) * ld + i % F]));
      if (isfinite(a) && a > amax) amax = a;
    }
    *(float *)host[q->iub] = p->ub == 1 ? amax / 16.0f : amax * 4.0f + 1.0f;
  }
}

static llmk_status run_silu(const oc_case *c, const oc_env *e, void *stream) {
  const silu_priv *q = OC_PARAMS(c, const silu_priv);
  llmk_quantize_desc d = LLMK_QUANTIZE_DESC_INIT;
  d.scaling = q->p.out == 1 ? LLMK_SCALING_BLOCK : LLMK_SCALING_ROW;
  d.block_m = 1, d.block_k = 128;
  d.scale_ub = q->iub >= 0 ? e->base[q->iub] : NULL;
  llmk_tensor up;
  if (q->iu >= 0) {
    up = e->t[q->iu];
  } else {
    up = e->t[q->ig];
    up.data = (uint16_t *)up.data + q->p.F;
  }
  const int bf = q->p.out == 2;
  return llmk_silu_mul_quant(e->h, bf ? NULL : &d, &e->t[q->ig], &up, &e->t[q->iq], bf ? NULL : &e->t[q->is], stream);
}

void oc_silu_case(oc_case *c, const oc_silu_params *p, uint64_t seed) {
  static const char *const lay[] = {"separate", "halves", "misaligned"};
  oc_case_init(c, "silu_mul_quant", seed);
  _Static_assert(sizeof(silu_priv) <= sizeof c->p, "silu_priv");
  silu_priv *q = OC_PARAMS(c, silu_priv);
  q->p = *p;
  const int64_t M = p->M, F = p->F;
  const int bf = p->out == 2, mis = p->lay == 2, halves = p->lay == 1;
  const int64_t off = mis ? 1 : 0, ldq = mis ? F + 3 : F;
  q->ldgu = halves ? 2 * F : mis ? F + 1 : F;
  q->nseg = bf ? 0 : p->out == 1 ? (F + 127) / 128 : 1;
  snprintf(c->name, sizeof c->name, "M=%lld F=%lld %s ub=%d %s %s", (long long)M, (long long)F,
           bf ? "bf16-out" : p->out ? "block1x128" : "row", p->ub, lay[p->lay], oc_dist_name(p->dist));
  snprintf(c->dtype, sizeof c->dtype, "bf16");
  oc_key(c, "m", M);
  oc_key(c, "f", F);
  q->ig = oc_buf_2d(c, halves ? "gate|up" : "gate", OC_IN, OC_CMP_BITS, LLMK_BF16, M, F, q->ldgu, off);
  q->iu = halves ? -1 : oc_buf_2d(c, "up", OC_IN, OC_CMP_BITS, LLMK_BF16, M, F, q->ldgu, off);
  q->iq = oc_buf_2d(c, "xq", OC_OUT, OC_CMP_BITS, bf ? LLMK_BF16 : LLMK_E4M3, M, F, ldq, off);
  q->is = bf ? -1
             : p->out == 1 ? oc_buf_2d(c, "scale", OC_OUT, OC_CMP_BITS, LLMK_F32, M, q->nseg, q->nseg, 0)
                           : oc_buf_1d(c, "scale", OC_OUT, OC_CMP_BITS, LLMK_F32, M);
  q->iub = p->ub && !bf ? oc_buf_1d(c, "scale_ub", OC_IN, OC_CMP_BITS, LLMK_F32, 1) : -1;
  c->fill = fill_silu;
  c->run = run_silu;
  c->bytes = (double)(M * F) * (4.0 + (bf ? 2 : 1)) + 4.0 * (double)(M * q->nseg);
}

/* ---- the list ----------------------------------------------------------------------- */

/* rmsnorm: M in {1, 3, 17, 128, 1000} x K in {8, 100, 4096, 8192, 28672}
 * (all 27 variants of residual x output x layout where M K <= 2e6, 3 of
 * them above), the streamed long rows (K > 32768), odd sizes, K = 0.
 * silu_mul_quant: the same grid (9 variants, 3 above 2e6), F in {1, 127,
 * 129, 40000, 65536}, F = 0. */
void oc_norm_cases(oc_list *l, int quick, uint64_t seed) {
  oc_rng r;
  oc_rng_seed(&r, seed);
  static const int64_t Ms[] = {1, 3, 17, 128, 1000};
  static const int64_t Ks[] = {8, 100, 4096, 8192, 28672};
  int idx = 0;
  for (int mi = 0; mi < 5; mi++)
    for (int ki = 0; ki < 5; ki++) {
      const int big = Ms[mi] * Ks[ki] > 2000000;
      for (int res = 0; res < 3; res++)
        for (int fp8 = 0; fp8 < 3; fp8++)
          for (int lay = 0; lay < 3; lay++) {
            idx++;
            const int sub = (res * 9 + fp8 * 3 + lay) % 9 == (mi + ki) % 9;
            if (big && !sub) continue; /* 3 of 27 */
            if (quick && Ms[mi] * Ks[ki] > (1 << 20)) continue;
            const oc_norm_params p = {Ms[mi], Ks[ki], res, fp8, lay, norm_dists[idx % 7]};
            oc_case *c = oc_list_add(l);
            oc_norm_case(c, &p, oc_rand(&r));
            if (idx % 7 == 0 && Ms[mi] * Ks[ki] <= (1 << 20)) c->flags |= OC_QUICK;
          }
    }
  static const int64_t Kx[] = {1, 3, 33, 40000, 65536, 65543};
  for (int ki = 0; ki < 6; ki++)
    for (int v = 0; v < 9; v++) {
      const oc_norm_params p = {Kx[ki] > 30000 ? 5 : 33, Kx[ki], v % 3, v / 3, (ki + v) % 3, norm_dists[(ki * 3 + v) % 7]};
      oc_case *c = oc_list_add(l);
      oc_norm_case(c, &p, oc_rand(&r));
      if (v % 4 == 0) c->flags |= OC_QUICK;
    }
  for (int fp8 = 0; fp8 < 3; fp8++) {
    const oc_norm_params p = {7, 0, 1, fp8, 0, OC_D_NORMAL};
    oc_case *c = oc_list_add(l);
    oc_norm_case(c, &p, oc_rand(&r));
    c->flags |= OC_QUICK;
  }

  idx = 0;
  for (int mi = 0; mi < 5; mi++)
    for (int ki = 0; ki < 5; ki++) {
      const int big = Ms[mi] * Ks[ki] > 2000000;
      for (int out = 0; out < 3; out++)
        for (int lay = 0; lay < 3; lay++) {
          idx++;
          if (big && (out * 3 + lay) % 3 != (mi + ki) % 3) continue; /* 3 of 9 */
          if (quick && Ms[mi] * Ks[ki] > (1 << 20)) continue;
          const oc_silu_params p = {Ms[mi], Ks[ki], out, idx % 3, lay, norm_dists[idx % 7]};
          oc_case *c = oc_list_add(l);
          oc_silu_case(c, &p, oc_rand(&r));
          if (idx % 5 == 0 && Ms[mi] * Ks[ki] <= (1 << 20)) c->flags |= OC_QUICK;
        }
    }
  static const int64_t Fx[] = {1, 127, 129, 40000, 65536};
  for (int fi = 0; fi < 5; fi++)
    for (int v = 0; v < 6; v++) {
      const oc_silu_params p = {Fx[fi] > 30000 ? 5 : 33, Fx[fi], v % 3, v % 3, (fi + v) % 3, norm_dists[(fi * 2 + v) % 7]};
      oc_case *c = oc_list_add(l);
      oc_silu_case(c, &p, oc_rand(&r));
      if (v % 3 == 0) c->flags |= OC_QUICK;
    }
  const oc_silu_params z = {6, 0, 0, 1, 0, OC_D_NORMAL};
  oc_case *c = oc_list_add(l);
  oc_silu_case(c, &z, oc_rand(&r));
  c->flags |= OC_QUICK;
}
