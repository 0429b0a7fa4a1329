/* opcheck cases: llmk_quantize_fp8 and llmk_dequantize_fp8, bitwise CPU =
 * CUDA (docs/DESIGN.md, "Quantization" and "Dequantization"). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opcheck.h"

enum { B_X, B_Q, B_S, B_UB, B_NR }; /* quantize */
enum { D_Q, D_S, D_Y };             /* dequantize */

static int64_t nscales(const oc_quant_params *p) {
  switch (p->scaling) {
    case LLMK_SCALING_TENSOR: return 1;
    case LLMK_SCALING_ROW: return p->M;
    case LLMK_SCALING_COL: return p->K;
    default: return ((p->M + p->bm - 1) / p->bm) * ((p->K + p->bk - 1) / p->bk);
  }
}

static int add_scale(oc_case *c, const oc_quant_params *p, oc_role role) {
  if (p->scaling == LLMK_SCALING_BLOCK) {
    const int64_t kb = (p->K + p->bk - 1) / p->bk;
    return oc_buf_2d(c, "scale", role, OC_CMP_BITS, LLMK_F32, (p->M + p->bm - 1) / p->bm, kb, kb, 0);
  }
  return oc_buf_1d(c, "scale", role, OC_CMP_BITS, LLMK_F32, nscales(p));
}

static llmk_quantize_desc desc_of(const oc_quant_params *p, const oc_env *e, int quant) {
  llmk_quantize_desc d = LLMK_QUANTIZE_DESC_INIT;
  d.scaling = p->scaling;
  d.block_m = p->bm;
  d.block_k = p->bk;
  if (quant && p->ub) d.scale_ub = e->base[B_UB];
  if (quant && p->num_rows >= -1000) d.num_rows = e->base[p->ub ? B_NR : B_UB];
  return d;
}

/* Rows of x (dtype xt, pitch ld, view start x) from p->dist; returns the
 * largest finite |x|. */
static float fill_x(const oc_quant_params *p, void *x, llmk_dtype xt, int64_t ld, oc_rng *r) {
  float amax = 0;
  if (p->dist == OC_D_BENCH && ld == p->K) {
    oc_fill_bench(x, xt, p->M * p->K, 1.0f, 1e-3, oc_rand(r));
    return 0;
  }
  const uint64_t base = oc_rand(r);
#pragma omp parallel for schedule(static) reduction(max : amax) if (p->M * p->K > 100000)
  for (int64_t m = 0; m < p->M; m++) { /* one stream per row */
    oc_rng rr;
    oc_rng_split(&rr, base, (uint64_t)m);
    const float rv = oc_normal(&rr);
    for (int64_t k = 0; k < p->K; k++) {
      const float v = oc_draw(&rr, p->dist, m, rv, 0, 3.0f);
      oc_put(x, xt, m * ld + k, v);
      const float a = fabsf(oc_get(x, xt, m * ld + k));
      if (isfinite(a) && a > amax) amax = a;
    }
  }
  return amax;
}

static void fill_quant(const oc_case *c, void *const *host, oc_rng *r, llmk_handle cpu) {
  (void)cpu;
  const oc_quant_params *p = OC_PARAMS(c, const oc_quant_params);
  const float amax = fill_x(p, oc_at(c, host, B_X, 0), p->xt, p->K + p->padx, r);
  if (p->ub) *(float *)host[B_UB] = p->ub == 1 ? amax * 0.25f : amax * 4.0f + 1.0f;
  if (p->num_rows >= -1000) *(int64_t *)host[p->ub ? B_NR : B_UB] = p->num_rows;
}

static llmk_status run_quant(const oc_case *c, const oc_env *e, void *stream) {
  const oc_quant_params *p = OC_PARAMS(c, const oc_quant_params);
  const llmk_quantize_desc d = desc_of(p, e, 1);
  return llmk_quantize_fp8(e->h, &d, &e->t[B_X], &e->t[B_Q], &e->t[B_S], stream);
}

/* The dequantize inputs: codes and scales from quantizing random data on the CPU. */
static void fill_dequant(const oc_case *c, void *const *host, oc_rng *r, llmk_handle cpu) {
  const oc_quant_params *p = OC_PARAMS(c, const oc_quant_params);
  const int64_t ld = p->K + p->padx;
  float *x = calloc((size_t)(p->M * ld) + 1, sizeof(float));
  fill_x(p, x, LLMK_F32, ld, r);
  oc_quant_params q = *p;
  q.ub = 0, q.num_rows = -2000;
  oc_env e;
  memset(&e, 0, sizeof e);
  const llmk_quantize_desc d = desc_of(&q, &e, 0);
  const llmk_tensor tx = llmk_tensor_2d(x, LLMK_F32, p->M, p->K, ld);
  const llmk_tensor tq = oc_view(c, D_Q, host[D_Q]), ts = oc_view(c, D_S, host[D_S]);
  if (llmk_quantize_fp8(cpu, &d, &tx, &tq, &ts, NULL) != LLMK_SUCCESS)
    fprintf(stderr, "opcheck: %s %s: quantizing the inputs: %s\n", c->op, c->name, llmk_last_error());
  free(x);
}

static llmk_status run_dequant(const oc_case *c, const oc_env *e, void *stream) {
  const oc_quant_params *p = OC_PARAMS(c, const oc_quant_params);
  const llmk_quantize_desc d = desc_of(p, e, 0);
  return llmk_dequantize_fp8(e->h, &d, &e->t[D_Q], &e->t[D_S], &e->t[D_Y], stream);
}

static const char *scaling_name(const oc_quant_params *p, char *buf, size_t n) {
  static const char *const names[] = {"tensor", "row", "col", "block"};
  if (p->scaling == LLMK_SCALING_BLOCK) snprintf(buf, n, "block%lldx%lld", (long long)p->bm, (long long)p->bk);
  else snprintf(buf, n, "%s", names[p->scaling]);
  return buf;
}

void oc_quantize_case(oc_case *c, const oc_quant_params *p, uint64_t seed) {
  oc_case_init(c, p->dequant ? "dequantize_fp8" : "quantize_fp8", seed);
  _Static_assert(sizeof(oc_quant_params) <= sizeof c->p, "oc_quant_params");
  memcpy(c->p, p, sizeof *p);
  char sc[48];
  scaling_name(p, sc, sizeof sc);
  const int64_t M = p->M, K = p->K, ns = nscales(p);
  const size_t xs = llmk_dtype_size(p->xt);
  oc_key(c, "m", M);
  oc_key(c, "k", K);
  if (!p->dequant) {
    snprintf(c->name, sizeof c->name, "%s x=%s q=%s M=%lld K=%lld ldx=K+%lld ldq=K+%lld off=%lld %s ub=%d nr=%lld", sc,
             llmk_dtype_name(p->xt), llmk_dtype_name(p->qt), (long long)M, (long long)K, (long long)p->padx,
             (long long)p->padq, (long long)p->offx, oc_dist_name(p->dist), p->ub,
             (long long)(p->num_rows >= -1000 ? p->num_rows : -1));
    snprintf(c->dtype, sizeof c->dtype, "%s", llmk_dtype_name(p->xt));
    oc_buf_2d(c, "x", OC_IN, OC_CMP_BITS, p->xt, M, K, K + p->padx, p->offx);
    oc_buf_2d(c, "xq", OC_OUT, OC_CMP_BITS, p->qt, M, K, K + p->padq, 0);
    add_scale(c, p, OC_OUT);
    if (p->ub) oc_buf_1d(c, "scale_ub", OC_IN, OC_CMP_BITS, LLMK_F32, 1);
    if (p->num_rows >= -1000) oc_buf_1d(c, "num_rows", OC_IN, OC_CMP_BITS, LLMK_I64, 1);
    c->fill = fill_quant;
    c->run = run_quant;
    /* bytes moved: x read (twice where the scale needs the whole tensor or
     * column before any output: tensor and col), q and scales written */
    const int two_pass = p->scaling == LLMK_SCALING_TENSOR || p->scaling == LLMK_SCALING_COL;
    c->bytes = (double)(M * K) * (double)xs * (two_pass ? 2 : 1) + (double)(M * K) + (double)ns * 4.0;
  } else {
    snprintf(c->name, sizeof c->name, "%s q=%s y=%s M=%lld K=%lld ldq=K+%lld ldy=K+%lld %s", sc,
             llmk_dtype_name(p->qt), llmk_dtype_name(p->xt), (long long)M, (long long)K, (long long)p->padx,
             (long long)p->padq, oc_dist_name(p->dist));
    snprintf(c->dtype, sizeof c->dtype, "%s", llmk_dtype_name(p->qt));
    oc_buf_2d(c, "xq", OC_IN, OC_CMP_BITS, p->qt, M, K, K + p->padx, 0);
    add_scale(c, p, OC_IN);
    oc_buf_2d(c, "y", OC_OUT, OC_CMP_NANEQ, p->xt, M, K, K + p->padq, 0);
    c->fill = fill_dequant;
    c->run = run_dequant;
    c->bytes = (double)(M * K) * (1.0 + (double)xs) + (double)ns * 4.0;
  }
}

/* ---- the list -------------------------------------------------------------------- */

/* The fuzzed grid: every scaling (and the band kernel's block shapes) x M x
 * K, dtypes, e5m2 where allowed, alignment edges (aligned pitch, odd pitch,
 * misaligned start), scale_ub below and above amax, num_rows; then large
 * and decode-sized shapes on the fast paths, every distribution; then
 * dequantization to f32 and bf16. */
void oc_quantize_cases(oc_list *l, int quick, uint64_t seed) {
  oc_rng r;
  oc_rng_seed(&r, seed);
  static const int64_t Ms[] = {1, 3, 17, 128, 257};
  static const int64_t Ks[] = {1, 3, 17, 128, 129, 1000, 4096};
  static const llmk_dtype xts[] = {LLMK_BF16, LLMK_F16, LLMK_F32};
  static const struct { llmk_scaling s; int64_t bm, bk; } sc[] = {
      {LLMK_SCALING_ROW, 0, 0},     {LLMK_SCALING_TENSOR, 0, 0},    {LLMK_SCALING_COL, 0, 0},
      {LLMK_SCALING_BLOCK, 1, 128}, {LLMK_SCALING_BLOCK, 128, 128}, {LLMK_SCALING_BLOCK, 128, 1},
      {LLMK_SCALING_BLOCK, 3, 5},   {LLMK_SCALING_BLOCK, 1, 24},    {LLMK_SCALING_BLOCK, 64, 256},
      /* band kernel: power-of-two gk up to the strip width, bands of 1..16 rows per thread and streamed */
      {LLMK_SCALING_BLOCK, 16, 8},  {LLMK_SCALING_BLOCK, 200, 2},   {LLMK_SCALING_BLOCK, 2, 32}};
  const int nsc = (int)(sizeof sc / sizeof sc[0]);
  int idx = 0;
  for (int si = 0; si < nsc; si++)
    for (int mi = 0; mi < 5; mi++)
      for (int ki = 0; ki < 7; ki++, idx++) {
        oc_quant_params p;
        memset(&p, 0, sizeof p);
        p.scaling = sc[si].s, p.bm = sc[si].bm, p.bk = sc[si].bk;
        p.xt = xts[(mi + ki) % 3];
        p.qt = LLMK_E4M3;
        p.M = Ms[mi], p.K = Ks[ki];
        p.dist = (mi * 7 + ki + si) % 6; /* normal .. wide */
        p.num_rows = -2000;
        const int e5ok = p.scaling == LLMK_SCALING_TENSOR || p.scaling == LLMK_SCALING_ROW;
        if (e5ok && (mi + ki) % 2) p.qt = LLMK_E5M2;
        const int variant = (mi + 2 * ki + si) % 4; /* aligned pitch, odd pitch, misaligned start */
        if (variant == 1) p.padx = 8, p.padq = 16;
        if (variant == 2) p.padx = 1, p.padq = 3;
        if (variant == 3) p.offx = 1, p.padx = 5, p.padq = 1;
        p.ub = (mi + ki) % 3;
        if (p.scaling == LLMK_SCALING_TENSOR && ki % 2) p.num_rows = (int64_t)(mi * 5) - 3;
        oc_case *c = oc_list_add(l);
        oc_quantize_case(c, &p, oc_rand(&r));
        if (idx % 9 == 0) c->flags |= OC_QUICK;
        /* the dequantization of the same shape, to f32 or bf16, odd y pitches */
        if (p.M * p.K > 0 && idx % 2 == 0) {
          oc_quant_params d = p;
          d.dequant = 1;
          d.xt = idx % 4 ? LLMK_BF16 : LLMK_F32;
          d.padx = p.padq, d.padq = idx % 3 ? 3 : 0, d.offx = 0, d.ub = 0;
          c = oc_list_add(l);
          oc_quantize_case(c, &d, oc_rand(&r));
          if (idx % 18 == 0) c->flags |= OC_QUICK;
        }
      }
  /* large and decode-sized shapes on the fast paths, every distribution */
  static const struct { llmk_scaling s; int64_t bm, bk, M, K; } big[] = {
      {LLMK_SCALING_ROW, 0, 0, 16, 8192},        {LLMK_SCALING_ROW, 0, 0, 1024, 8192},
      {LLMK_SCALING_ROW, 0, 0, 3, 70000},        {LLMK_SCALING_ROW, 0, 0, 4097, 3},
      {LLMK_SCALING_TENSOR, 0, 0, 1024, 8192},   {LLMK_SCALING_COL, 0, 0, 4097, 1000},
      {LLMK_SCALING_BLOCK, 1, 128, 1024, 8192},  {LLMK_SCALING_BLOCK, 128, 128, 1000, 7168},
      {LLMK_SCALING_BLOCK, 128, 1, 300, 520},    {LLMK_SCALING_BLOCK, 512, 512, 600, 700},
      {LLMK_SCALING_BLOCK, 1, 100000, 5, 70000}, {LLMK_SCALING_TENSOR, 0, 0, 0, 128},
      {LLMK_SCALING_ROW, 0, 0, 5, 0},            {LLMK_SCALING_COL, 0, 0, 0, 33},
      {LLMK_SCALING_BLOCK, 128, 1, 1000, 8192},  {LLMK_SCALING_BLOCK, 256, 4, 700, 3000},
      {LLMK_SCALING_BLOCK, 128, 128, 300, 8200}, {LLMK_SCALING_ROW, 0, 0, 33, 8200},
      /* per-tensor around the cluster path's limits (32K one CTA, 256K bf16 / 128K f32 cluster) */
      {LLMK_SCALING_TENSOR, 0, 0, 16, 8192},     {LLMK_SCALING_TENSOR, 0, 0, 32, 8192},
      {LLMK_SCALING_TENSOR, 0, 0, 33, 8192},     {LLMK_SCALING_TENSOR, 0, 0, 5, 6553}};
  const int nbig = (int)(sizeof big / sizeof big[0]);
  for (int i = 0; i < nbig; i++)
    for (int dist = 0; dist < 6; dist++) {
      const int64_t n = big[i].M * big[i].K;
      if (quick && (n > (1 << 20) || dist != i % 6)) continue; /* one distribution each, no large shape */
      oc_quant_params p;
      memset(&p, 0, sizeof p);
      p.scaling = big[i].s, p.bm = big[i].bm, p.bk = big[i].bk;
      p.xt = xts[(i + dist) % 3];
      p.qt = LLMK_E4M3;
      p.M = big[i].M, p.K = big[i].K;
      p.dist = dist;
      p.ub = dist % 3;
      p.num_rows = -2000;
      if ((p.scaling == LLMK_SCALING_ROW || p.scaling == LLMK_SCALING_TENSOR) && dist % 2) p.qt = LLMK_E5M2;
      oc_case *c = oc_list_add(l);
      oc_quantize_case(c, &p, oc_rand(&r));
      if (dist == i % 6 && n <= (1 << 20)) c->flags |= OC_QUICK;
    }
  /* the named edges: 1 x 1, 3 x 17, 33 x 129, row pitches above K, scale_ub with num_rows */
  static const int64_t edge[][2] = {{1, 1}, {3, 17}, {33, 129}};
  for (int e = 0; e < 3; e++)
    for (int si = 0; si < 5; si++) {
      oc_quant_params p;
      memset(&p, 0, sizeof p);
      p.scaling = sc[si].s, p.bm = sc[si].bm, p.bk = sc[si].bk;
      p.xt = xts[(e + si) % 3], p.qt = si == 0 && e == 1 ? LLMK_E5M2 : LLMK_E4M3;
      p.M = edge[e][0], p.K = edge[e][1];
      p.padx = 16 + e, p.padq = 8 + si;
      p.dist = (e + si) % 6;
      p.ub = 1 + (e + si) % 2;
      p.num_rows = p.scaling == LLMK_SCALING_TENSOR ? p.M / 2 : -2000;
      oc_case *c = oc_list_add(l);
      oc_quantize_case(c, &p, oc_rand(&r));
      c->flags |= OC_QUICK;
    }
}
