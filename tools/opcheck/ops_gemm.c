/* opcheck cases: llmk_gemm_fp8 (tensor, row, block 1x128 and 128x128, two
 * planes) and llmk_gemm_bf16. CUDA against the CPU reference under
 * docs/DESIGN.md's "GEMM tolerances":
 *   FP8 one plane: relative Frobenius error <= 1e-2, per element
 *     |y - ref| <= 1e-2 |ref| + 1e-2 rms(ref) + MMA (+ FAST with fast accumulation),
 *     MMA = 3e-2 * sum over 32-deep groups g of |sum_{k in g} t_k|,
 *     FAST = 1e-3 * sum_k |t_k| + 2^-13 * sum_j |S_4j|, t_k = x_k xs w_k ws;
 *   two planes: 4e-3, and 2e-2 |ref| + 2e-2 rms(ref);
 *   BF16: 5e-3, and 1e-2 |ref| + 1e-2 rms(ref).
 * A forced backend may answer NOT_SUPPORTED (skipped, nothing written). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opcheck.h"

typedef struct gemm_priv {
  oc_gemm_params p;
  int ix, iw, ixs, iws, ib, iy;
  int64_t KB, xr, NB, ldx;
} gemm_priv;

static const char *backend_name(llmk_gemm_backend b) {
  return b == LLMK_GEMM_OWN ? "own" : b == LLMK_GEMM_CUBLASLT ? "cublaslt" : "auto";
}
static const char *accum_name(llmk_accum a) {
  return a == LLMK_ACCUM_FAST ? "fast" : a == LLMK_ACCUM_FP32 ? "fp32" : "default";
}

/* rows x cols values, each row times a random power of two in [2^-3, 2^3). */
static void values(float *v, int64_t rows, int64_t cols, int dist, float sigma, oc_rng *r) {
  for (int64_t i = 0; i < rows; i++) {
    const float mag = exp2f((float)(oc_uniform(r) * 6.0 - 3.0));
    for (int64_t k = 0; k < cols; k++) {
      float x = oc_normal(r) * sigma;
      if (dist == OC_D_OUTLIER && oc_rand(r) % 64 == 0) x *= 300.0f;
      if (dist == OC_D_WIDE) x = ldexpf(x, (int)(oc_rand(r) % 16) - 8);
      v[i * cols + k] = mag * x;
    }
  }
}

/* Quantizes v [rows, cols] on the CPU into codes (pitch ld) and a scale
 * tensor `st` (any strides) with `d`. */
static void quantize(llmk_handle cpu, const llmk_quantize_desc *d, const float *v, int64_t rows, int64_t cols,
                     uint8_t *codes, int64_t ld, const llmk_tensor *st) {
  const llmk_tensor tv = llmk_tensor_2d((void *)v, LLMK_F32, rows, cols, cols);
  const llmk_tensor tq = llmk_tensor_2d(codes, LLMK_E4M3, rows, cols, ld);
  llmk_tensor ts = *st;
  float *tmp = NULL;
  if (st->ndim == 2) { /* quantize into a row-major copy, then place it */
    tmp = calloc((size_t)(st->shape[0] * st->shape[1]) + 1, sizeof(float));
    ts = llmk_tensor_2d(tmp, LLMK_F32, st->shape[0], st->shape[1], st->shape[1]);
  }
  if (llmk_quantize_fp8(cpu, d, &tv, &tq, &ts, NULL) != LLMK_SUCCESS)
    fprintf(stderr, "opcheck: gemm inputs: llmk_quantize_fp8: %s\n", llmk_last_error());
  if (tmp) {
    for (int64_t i = 0; i < st->shape[0]; i++)
      for (int64_t j = 0; j < st->shape[1]; j++)
        ((float *)st->data)[i * st->strides[0] + j * st->strides[1]] = tmp[i * st->shape[1] + j];
    free(tmp);
  }
}

static void fill_gemm(const oc_case *c, void *const *host, oc_rng *r, llmk_handle cpu) {
  const gemm_priv *q = OC_PARAMS(c, const gemm_priv);
  const oc_gemm_params *p = &q->p;
  const int64_t M = p->M, N = p->N, K = p->K, xrows = p->planes == 2 ? 2 * M : M;
  float *v = malloc((size_t)((xrows > N ? xrows : N) * (K > 0 ? K : 1)) * sizeof(float));
  if (p->bf16) {
    values(v, M, K, p->dist, 1.0f, r);
    for (int64_t m = 0; m < M; m++)
      for (int64_t k = 0; k < K; k++) ((uint16_t *)oc_at(c, host, q->ix, 0))[m * q->ldx + k] = llmk_float_to_bf16(v[m * K + k]);
    values(v, N, K, p->dist, 0.02f, r);
    for (int64_t i = 0; i < N * K; i++) ((uint16_t *)oc_at(c, host, q->iw, 0))[i] = llmk_float_to_bf16(v[i]);
  } else {
    llmk_quantize_desc d = LLMK_QUANTIZE_DESC_INIT;
    d.scaling = p->scaling;
    d.block_m = p->xblock, d.block_k = 128;
    const llmk_tensor xs = oc_view(c, q->ixs, host[q->ixs]), ws = oc_view(c, q->iws, host[q->iws]);
    uint8_t *x = oc_at(c, host, q->ix, 0);
    values(v, M, K, p->dist, 1.0f, r);
    if (p->planes == 2) { /* hi = the row quantization of v, lo = that of v - hi */
      float *hs = malloc((size_t)M * sizeof(float)), *ls = malloc((size_t)M * sizeof(float));
      uint8_t *hq = malloc((size_t)(M * K) + 1);
      const llmk_tensor ths = llmk_tensor_1d(hs, LLMK_F32, M), tls = llmk_tensor_1d(ls, LLMK_F32, M);
      quantize(cpu, &d, v, M, K, hq, K, &ths);
      for (int64_t m = 0; m < M; m++)
        for (int64_t k = 0; k < K; k++) {
          x[2 * m * q->ldx + k] = hq[m * K + k];
          v[m * K + k] -= llmk_fp8_to_float(hq[m * K + k], LLMK_E4M3) * hs[m];
        }
      quantize(cpu, &d, v, M, K, hq, K, &tls);
      for (int64_t m = 0; m < M; m++) {
        for (int64_t k = 0; k < K; k++) x[(2 * m + 1) * q->ldx + k] = hq[m * K + k];
        ((float *)xs.data)[2 * m] = hs[m], ((float *)xs.data)[2 * m + 1] = ls[m];
      }
      free(hs), free(ls), free(hq);
    } else {
      quantize(cpu, &d, v, M, K, x, q->ldx, &xs);
    }
    d.block_m = 128;
    values(v, N, K, p->dist == OC_D_OUTLIER ? OC_D_NORMAL : OC_D_OUTLIER, 1.0f, r);
    quantize(cpu, &d, v, N, K, oc_at(c, host, q->iw, 0), K, &ws);
  }
  if (q->ib >= 0) { /* a bias of the order of the products' typical size */
    const float bmag = (float)sqrt((double)(K > 0 ? K : 1)) * (p->bf16 ? 0.01f : 0.5f);
    for (int64_t n = 0; n < N; n++) oc_put(oc_at(c, host, q->ib, 0), c->buf[q->ib].dtype, n, bmag * oc_normal(r));
  }
  free(v);
}

static llmk_status run_gemm(const oc_case *c, const oc_env *e, void *stream) {
  const gemm_priv *q = OC_PARAMS(c, const gemm_priv);
  const llmk_tensor *bias = q->ib >= 0 ? &e->t[q->ib] : NULL;
  if (q->p.bf16) return llmk_gemm_bf16(e->h, q->p.backend, &e->t[q->ix], &e->t[q->iw], bias, &e->t[q->iy], stream);
  llmk_gemm_desc d = LLMK_GEMM_DESC_INIT;
  d.scaling = q->p.scaling;
  d.accum = q->p.accum;
  d.backend = q->p.backend;
  d.x_planes = q->p.planes == 2 ? 2 : 0;
  return llmk_gemm_fp8(e->h, &d, &e->t[q->ix], &e->t[q->iw], &e->t[q->ixs], &e->t[q->iws], bias, &e->t[q->iy],
                       stream);
}

/* The scale of element (row, k-slice kb) of a scale buffer (TENSOR, ROW or BLOCK). */
static double scale_at(const oc_case *c, void *const *in, int i, int64_t row, int64_t kb) {
  const oc_buf *b = &c->buf[i];
  const float *s = oc_at(c, in, i, 0);
  if (b->ndim == 1) return s[b->shape[0] == 1 ? 0 : row];
  return s[row * b->strides[0] + kb * b->strides[1]];
}

static int64_t compare_gemm(const oc_case *c, int buf, void *const *in, const void *ref, const void *got,
                            const char *label, FILE *log) {
  const gemm_priv *q = OC_PARAMS(c, const gemm_priv);
  const oc_gemm_params *p = &q->p;
  const int64_t M = p->M, N = p->N, K = p->K, ldy = c->buf[buf].strides[0];
  const uint16_t *yr = (const uint16_t *)ref + c->buf[buf].offset, *yg = (const uint16_t *)got + c->buf[buf].offset;
  const int fast = !p->bf16 && p->planes != 2 &&
                   (p->accum == LLMK_ACCUM_FAST || (p->accum == LLMK_ACCUM_DEFAULT && p->scaling != LLMK_SCALING_BLOCK));
  const double frob_tol = p->bf16 ? 5e-3 : p->planes == 2 ? 4e-3 : 1e-2, rel = p->planes == 2 ? 2e-2 : 1e-2;
  const int mma_term = !p->bf16 && p->planes != 2;
  /* the rows checked: all, or (large problems) the first, the last and others */
  int64_t S = M;
  const int64_t per_row = N * (K > 0 ? K : 1);
  if (mma_term && M * per_row > (INT64_C(1) << 27)) S = (INT64_C(1) << 27) / per_row < 8 ? 8 : (INT64_C(1) << 27) / per_row;
  if (S > M) S = M;
  double sum2 = 0, err2 = 0;
  for (int64_t i = 0; i < S; i++) {
    const int64_t m = S == M ? i : i == S - 1 ? M - 1 : i * (M / S);
    for (int64_t n = 0; n < N; n++) {
      const double w = llmk_bf16_to_float(yr[m * ldy + n]);
      sum2 += w * w;
    }
  }
  const double rms = S * N > 0 ? sqrt(sum2 / (double)(S * N)) : 0;
  int64_t bad = 0;
  const uint8_t *x = oc_at(c, in, q->ix, 0), *w = oc_at(c, in, q->iw, 0);
  for (int64_t i = 0; i < S; i++) {
    const int64_t m = S == M ? i : i == S - 1 ? M - 1 : i * (M / S);
    for (int64_t n = 0; n < N; n++) {
      const double want = llmk_bf16_to_float(yr[m * ldy + n]), y = llmk_bf16_to_float(yg[m * ldy + n]);
      double tol = rel * fabs(want) + rel * rms;
      if (mma_term) {
        double grp = 0, abs_grp = 0, acc = 0, abs_acc = 0, run = 0;
        for (int64_t k = 0; k < K; k++) {
          const int64_t kb = k / 128;
          const double xs = scale_at(c, in, q->ixs, p->scaling == LLMK_SCALING_BLOCK && p->xblock == 128 ? m / 128 : m, kb);
          const double ws = scale_at(c, in, q->iws, p->scaling == LLMK_SCALING_BLOCK ? n / 128 : n, kb);
          const double t = llmk_fp8_to_float(x[m * q->ldx + k], LLMK_E4M3) * xs * llmk_fp8_to_float(w[n * K + k], LLMK_E4M3) * ws;
          acc += t, abs_acc += fabs(t), grp += t;
          if (k % 4 == 3) run += fabs(acc);
          if (k % 32 == 31 || k == K - 1) abs_grp += fabs(grp), grp = 0;
        }
        tol += 3e-2 * abs_grp + (fast ? 1e-3 * abs_acc + ldexp(run, -13) : 0);
      }
      err2 += (y - want) * (y - want);
      if (!(fabs(y - want) <= tol) && bad++ < 4)
        fprintf(log, "  %s: y[%lld,%lld]: cuda %.8g, cpu %.8g (|diff| %.3g > tol %.3g)\n", label, (long long)m,
                (long long)n, y, want, fabs(y - want), tol);
    }
  }
  const double relerr = sum2 > 0 ? sqrt(err2 / sum2) : sqrt(err2);
  if (!(relerr <= frob_tol)) {
    fprintf(log, "  %s: relative Frobenius error %.3g > %.0e\n", label, relerr, frob_tol);
    bad++;
  }
  return bad;
}

void oc_gemm_case(oc_case *c, const oc_gemm_params *p, uint64_t seed) {
  oc_case_init(c, p->bf16 ? "gemm_bf16" : "gemm_fp8", seed);
  _Static_assert(sizeof(gemm_priv) <= sizeof c->p, "gemm_priv");
  gemm_priv *q = OC_PARAMS(c, gemm_priv);
  q->p = *p;
  const int64_t M = p->M, N = p->N, K = p->K;
  static const char *const bias_names[] = {"none", "f32", "bf16"};
  static const char *const sc_names[] = {"tensor", "row", "col", "block"};
  char sc[40];
  if (p->bf16) snprintf(sc, sizeof sc, "bf16");
  else if (p->scaling == LLMK_SCALING_BLOCK)
    snprintf(sc, sizeof sc, "block x%s%s", p->xblock == 128 ? "128x128" : "1x128", p->scale_colmajor ? " col-major" : "");
  else snprintf(sc, sizeof sc, "%s%s", sc_names[p->scaling], p->planes == 2 ? " two-plane" : "");
  snprintf(c->name, sizeof c->name, "%s M=%lld N=%lld K=%lld bias=%s accum=%s backend=%s ldx=K+%lld ldy=N+%lld %s", sc,
           (long long)M, (long long)N, (long long)K, bias_names[p->bias], accum_name(p->accum),
           backend_name(p->backend), (long long)p->padx, (long long)p->pady, oc_dist_name(p->dist));
  snprintf(c->dtype, sizeof c->dtype, "%s", p->bf16 ? "bf16" : "e4m3");
  oc_key(c, "m", M);
  oc_key(c, "n", N);
  oc_key(c, "k", K);
  const llmk_dtype et = p->bf16 ? LLMK_BF16 : LLMK_E4M3;
  q->ldx = K + p->padx;
  if (p->planes == 2) {
    const int64_t sh[3] = {M, 2, K}, st[3] = {2 * q->ldx, q->ldx, 1};
    q->ix = oc_buf_view(c, "x", OC_IN, OC_CMP_BITS, et, 3, sh, st, 0);
    c->buf[q->ix].bytes = (size_t)(2 * M * q->ldx);
  } else {
    q->ix = oc_buf_2d(c, "x", OC_IN, OC_CMP_BITS, et, M, K, q->ldx, 0);
  }
  q->iw = oc_buf_2d(c, "w", OC_IN, OC_CMP_BITS, et, N, K, K, 0);
  q->ixs = q->iws = -1;
  q->KB = (K + 127) / 128;
  q->xr = p->xblock == 128 ? (M + 127) / 128 : M;
  q->NB = (N + 127) / 128;
  if (!p->bf16) {
    if (p->scaling == LLMK_SCALING_BLOCK) {
      const int64_t KB = q->KB > 0 ? q->KB : 0;
      const int64_t xsh[2] = {q->xr, KB}, wsh[2] = {q->NB, KB};
      const int64_t xst[2] = {p->scale_colmajor ? 1 : KB, p->scale_colmajor ? q->xr : 1};
      const int64_t wst[2] = {p->scale_colmajor ? 1 : KB, p->scale_colmajor ? q->NB : 1};
      q->ixs = oc_buf_view(c, "x_scale", OC_IN, OC_CMP_BITS, LLMK_F32, 2, xsh, xst, 0);
      q->iws = oc_buf_view(c, "w_scale", OC_IN, OC_CMP_BITS, LLMK_F32, 2, wsh, wst, 0);
    } else {
      const int row = p->scaling == LLMK_SCALING_ROW;
      q->ixs = oc_buf_1d(c, "x_scale", OC_IN, OC_CMP_BITS, LLMK_F32, row ? (p->planes == 2 ? 2 * M : M) : 1);
      q->iws = oc_buf_1d(c, "w_scale", OC_IN, OC_CMP_BITS, LLMK_F32, row ? N : 1);
    }
  }
  q->ib = p->bias ? oc_buf_1d(c, "bias", OC_IN, OC_CMP_BITS, p->bias == 1 ? LLMK_F32 : LLMK_BF16, N) : -1;
  q->iy = oc_buf_2d(c, "y", OC_OUT, OC_CMP_CUSTOM, LLMK_BF16, M, N, N + p->pady, 0);
  c->fill = fill_gemm;
  c->run = run_gemm;
  c->compare = compare_gemm;
  if (p->backend != LLMK_GEMM_AUTO) c->flags |= OC_MAY_REFUSE;
  const double es = p->bf16 ? 2.0 : 1.0;
  c->bytes = (double)(M * K) * es * (p->planes == 2 ? 2 : 1) + (double)(N * K) * es + (double)(M * N) * 2.0;
}

/* ---- the list ----------------------------------------------------------------------- */

void oc_gemm_cases(oc_list *l, int quick, uint64_t seed) {
  oc_rng r;
  oc_rng_seed(&r, seed);
  static const int64_t Ms[] = {1, 16, 100, 256};
  static const int64_t NK[][2] = {{8, 16}, {24, 48}, {296, 1072}, {256, 2048}};
  static const llmk_gemm_backend be[] = {LLMK_GEMM_AUTO, LLMK_GEMM_OWN, LLMK_GEMM_CUBLASLT};
  static const llmk_accum ac[] = {LLMK_ACCUM_DEFAULT, LLMK_ACCUM_FAST, LLMK_ACCUM_FP32};
  static const int64_t pads[] = {0, 8, 24};
  int v = 0;
  /* tensor and row scaling */
  for (int s = 0; s < 2; s++)
    for (int mi = 0; mi < 4; mi++)
      for (int ni = 0; ni < 4; ni++, v++) {
        if (quick && (mi + ni + s) % 3) continue;
        oc_gemm_params p;
        memset(&p, 0, sizeof p);
        p.scaling = s ? LLMK_SCALING_ROW : LLMK_SCALING_TENSOR;
        p.M = Ms[mi], p.N = NK[ni][0], p.K = NK[ni][1];
        p.bias = v % 3, p.pady = pads[(v / 3) % 3], p.padx = v % 4 == 1 ? 16 : 0;
        p.accum = ac[v % 3], p.backend = be[(v / 2) % 3], p.dist = v % 2 ? OC_D_OUTLIER : OC_D_NORMAL;
        oc_case *c = oc_list_add(l);
        oc_gemm_case(c, &p, oc_rand(&r));
        if ((mi + ni + s) % 3 == 0) c->flags |= OC_QUICK;
      }
  /* block scaling: 1x128 and 128x128 activations, row- and column-major scales */
  static const int64_t BNK[][2] = {{128, 256}, {256, 384}, {136, 272}};
  for (int xb = 0; xb < 2; xb++)
    for (int mi = 0; mi < 4; mi++)
      for (int ni = 0; ni < 3; ni++, v++) {
        if (quick && (mi + ni + xb) % 3) continue;
        oc_gemm_params p;
        memset(&p, 0, sizeof p);
        p.scaling = LLMK_SCALING_BLOCK, p.xblock = xb ? 128 : 1, p.scale_colmajor = (mi + ni) % 2;
        p.M = Ms[mi], p.N = BNK[ni][0], p.K = BNK[ni][1];
        p.bias = v % 3, p.pady = pads[(v / 3) % 3], p.padx = v % 4 == 1 ? 32 : 0;
        p.accum = v % 2 ? LLMK_ACCUM_FP32 : LLMK_ACCUM_DEFAULT;
        p.backend = xb ? LLMK_GEMM_AUTO : be[(v / 2) % 3], p.dist = OC_D_OUTLIER;
        oc_case *c = oc_list_add(l);
        oc_gemm_case(c, &p, oc_rand(&r));
        if ((mi + ni + xb) % 3 == 0) c->flags |= OC_QUICK;
      }
  /* two planes (row scaling) */
  for (int mi = 0; mi < 3; mi++)
    for (int ni = 1; ni < 3; ni++, v++) {
      oc_gemm_params p;
      memset(&p, 0, sizeof p);
      p.scaling = LLMK_SCALING_ROW, p.planes = 2;
      p.M = Ms[mi], p.N = NK[ni][0], p.K = NK[ni][1];
      p.bias = v % 3, p.pady = pads[v % 3];
      oc_case *c = oc_list_add(l);
      oc_gemm_case(c, &p, oc_rand(&r));
      if (mi == 1) c->flags |= OC_QUICK;
    }
  /* BF16 */
  for (int mi = 0; mi < 4; mi++)
    for (int ni = 0; ni < 3; ni++, v++) {
      oc_gemm_params p;
      memset(&p, 0, sizeof p);
      p.bf16 = 1;
      p.M = Ms[mi], p.N = NK[ni][0], p.K = NK[ni][1];
      p.bias = v % 3, p.pady = pads[(v / 3) % 3], p.padx = v % 4 == 1 ? 8 : 0;
      p.backend = be[v % 3];
      oc_case *c = oc_list_add(l);
      oc_gemm_case(c, &p, oc_rand(&r));
      if ((mi + ni) % 3 == 0) c->flags |= OC_QUICK;
    }
  /* K = 0: y = bf16(bias) or zeros */
  for (int k = 0; k < 3; k++) {
    oc_gemm_params p;
    memset(&p, 0, sizeof p);
    p.bf16 = k == 2;
    p.scaling = k == 1 ? LLMK_SCALING_BLOCK : LLMK_SCALING_ROW, p.xblock = 1;
    p.M = 16, p.N = 24, p.K = 0, p.bias = 1 + k % 2, p.pady = 8;
    oc_case *c = oc_list_add(l);
    oc_gemm_case(c, &p, oc_rand(&r));
    c->flags |= OC_QUICK;
  }
}
