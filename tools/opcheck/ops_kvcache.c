/* opcheck cases: llmk_rope, llmk_kv_cache_write, llmk_rope_qkv_write and
 * llmk_kv_cache_dequantize, bitwise CPU = CUDA (docs/ATTENTION.md): bf16
 * and f32 values compare NaN-equal (a NaN's payload is not specified);
 * e4m3, INT4 and parameter bytes compare exactly. The cache is updated in
 * place: it starts as random bytes, and every byte of it (written or not)
 * and of its parameters must equal the CPU's afterwards. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opcheck.h"

static const char *fmt_name(llmk_kv_format f) {
  static const char *const n[] = {"BF16", "FP8", "FP8_TENSOR", "INT4"};
  return n[f];
}

/* One head of D values: varied magnitudes (2^-12 .. 2^12), zero heads
 * (+-0), constant heads (INT4 scale 0), exact zeros, outliers; `special`
 * sprinkles NaN and +-Inf. */
static void draw_head(float *v, int64_t D, int special, oc_rng *r) {
  const double u = oc_uniform(r);
  if (u < 0.04) {
    for (int64_t d = 0; d < D; d++) v[d] = oc_rand(r) & 1 ? 0.0f : -0.0f;
  } else if (u < 0.07) {
    const float c = oc_normal(r);
    for (int64_t d = 0; d < D; d++) v[d] = c;
    if (oc_rand(r) & 1) v[oc_rand(r) % (uint64_t)D] = c * 2.0f; /* one group differs */
  } else {
    const float scale = ldexpf(1.0f, (int)oc_range(r, -12, 12));
    const int zeros = oc_uniform(r) < 0.15;
    for (int64_t d = 0; d < D; d++) {
      float x = oc_normal(r) * scale;
      if (oc_uniform(r) < 0.01) x *= 300.0f;
      if (zeros && oc_uniform(r) < 0.3) x = oc_rand(r) & 1 ? 0.0f : -0.0f;
      v[d] = x;
    }
  }
  if (special)
    for (int64_t d = 0; d < D; d++) {
      const double s = oc_uniform(r);
      if (s < 0.01) v[d] = NAN;
      else if (s < 0.02) v[d] = INFINITY;
      else if (s < 0.03) v[d] = -INFINITY;
    }
}

/* T rows of H heads of D values (dtype dt), row pitch ld. */
static void fill_heads(void *p, llmk_dtype dt, int64_t T, int64_t H, int64_t D, int64_t ld, int special, oc_rng *r) {
  const uint64_t base = oc_rand(r);
#pragma omp parallel for schedule(static) if (T * H * D > 100000)
  for (int64_t t = 0; t < T; t++) { /* one stream per token */
    oc_rng rr;
    oc_rng_split(&rr, base, (uint64_t)t);
    float v[256];
    for (int64_t h = 0; h < H; h++) {
      draw_head(v, D, special, &rr);
      for (int64_t d = 0; d < D; d++) oc_put(p, dt, t * ld + h * D + d, v[d]);
    }
  }
}

static llmk_rope_desc rope_of(llmk_rope_style st, int64_t R, double theta, int llama3) {
  llmk_rope_desc d = LLMK_ROPE_DESC_INIT;
  d.style = st, d.rotary_dim = R, d.theta = theta;
  if (llama3) d.llama3_factor = 8, d.low_freq_factor = 1, d.high_freq_factor = 4, d.original_max_position = 8192;
  return d;
}
/* partial: 0: R = D; 1: R = D / 2 (R/2 a multiple of 8); 2: R/2 not a multiple of 8; 3: R = 2 */
static int64_t rotary_dim(int64_t D, int partial) { return partial == 0 ? 0 : partial == 1 ? D / 2 : partial == 2 ? D - 28 : 2; }

static llmk_tensor heads3(void *data, llmk_dtype dt, int64_t T, int64_t H, int64_t D, int64_t ld) {
  const llmk_tensor t = {data, dt, 3, {T, H, D, 0}, {ld, D, 1, 0}};
  return t;
}

/* ---- rope ----------------------------------------------------------------------- */

enum { R_X, R_POS, R_Y };

static void fill_rope(const oc_case *c, void *const *host, oc_rng *r, llmk_handle cpu) {
  (void)cpu;
  const oc_rope_params *p = OC_PARAMS(c, const oc_rope_params);
  fill_heads(oc_at(c, host, R_X, 0), p->dt, p->T, p->H, p->D, p->H * p->D + p->pad, p->special, r);
  int32_t *pos = host[R_POS];
  for (int64_t t = 0; t < p->T; t++) {
    const double u = oc_uniform(r);
    pos[t] = u < 0.05   ? (int32_t)oc_range(r, -5000, -1)
             : u < 0.07 ? (int32_t)(INT32_MAX - oc_range(r, 0, 1000))
             : u < 0.08 ? (int32_t)(INT32_MIN + oc_range(r, 0, 1000))
                        : (int32_t)oc_range(r, 0, 1 << 20);
  }
  if (p->T > 0) pos[0] = 0;
}

static llmk_status run_rope(const oc_case *c, const oc_env *e, void *stream) {
  const oc_rope_params *p = OC_PARAMS(c, const oc_rope_params);
  const llmk_rope_desc d = rope_of(p->style, p->rotary_dim, p->theta, p->llama3);
  return llmk_rope(e->h, &d, &e->t[R_X], &e->t[R_POS], &e->t[p->in_place ? R_X : R_Y], stream);
}

void oc_rope_case(oc_case *c, const oc_rope_params *p, uint64_t seed) {
  oc_case_init(c, "rope", seed);
  _Static_assert(sizeof(oc_rope_params) <= sizeof c->p, "oc_rope_params");
  memcpy(c->p, p, sizeof *p);
  snprintf(c->name, sizeof c->name, "%s T=%lld H=%lld D=%lld %s R=%lld llama3=%d %s pad=%lld off=%lld%s",
           llmk_dtype_name(p->dt), (long long)p->T, (long long)p->H, (long long)p->D,
           p->style == LLMK_ROPE_NEOX ? "neox" : "interleaved", (long long)p->rotary_dim, p->llama3,
           p->in_place ? "in-place" : "out-of-place", (long long)p->pad, (long long)p->off, p->special ? " nan-inf" : "");
  snprintf(c->dtype, sizeof c->dtype, "%s", llmk_dtype_name(p->dt));
  oc_key(c, "t", p->T);
  oc_key(c, "h", p->H);
  oc_key(c, "d", p->D);
  const int64_t ld = p->H * p->D + p->pad, sh[3] = {p->T, p->H, p->D}, st[3] = {ld, p->D, 1};
  oc_buf_view(c, p->in_place ? "x = y" : "x", p->in_place ? OC_INOUT : OC_IN, OC_CMP_NANEQ, p->dt, 3, sh, st, p->off);
  oc_buf_1d(c, "positions", OC_IN, OC_CMP_BITS, LLMK_I32, p->T);
  if (!p->in_place) oc_buf_view(c, "y", OC_OUT, OC_CMP_NANEQ, p->dt, 3, sh, st, p->off);
  c->fill = fill_rope;
  c->run = run_rope;
  c->bytes = (double)(p->T * p->H * p->D) * (double)llmk_dtype_size(p->dt) * 2.0 + 4.0 * (double)p->T;
}

/* ---- caches: the plan of a write case ------------------------------------------------- */

/* Everything a write case's sizes and contents depend on, drawn from its
 * seed (the case's constructor and its fill draw the same plan). */
typedef struct plan {
  int64_t B, T, Tl;        /* sequences, rows (with the uncovered ones), rows of sequences */
  int64_t cap, page;       /* capacity per sequence; page size (0: contiguous) */
  int64_t S0, S1;          /* B_cache x T_max, or num_pages x page_size */
  int64_t max_pages, bt_ld;
  int32_t lead;
  int32_t *start, *off;    /* [B], [B + 1] (off NULL: decode) */
  int64_t *len;            /* [B] */
  int32_t *bt;             /* [B * bt_ld + 1] */
} plan;

static void plan_free(plan *L) {
  free(L->start), free(L->off), free(L->len), free(L->bt);
  L->start = L->off = L->bt = NULL, L->len = NULL;
}

/* Page numbers for every page sequence b's (in-capacity) rows touch:
 * distinct pages of a shuffled pool; entries no row touches keep -1 or
 * get garbage (never read). */
static void assign_pages(plan *L, const int32_t *st, const int64_t *ln, int garbage, oc_rng *r) {
  int64_t used = 0;
  for (int64_t b = 0; b < L->B; b++) {
    if (!ln[b]) continue;
    const int64_t p0 = st[b], p1 = st[b] + ln[b] - 1;
    for (int64_t j = p0 / L->S1; j <= p1 / L->S1; j++) L->bt[b * L->bt_ld + j] = (int32_t)used++;
  }
  int32_t *perm = malloc((size_t)L->S0 * 4);
  for (int64_t i = 0; i < L->S0; i++) perm[i] = (int32_t)i;
  for (int64_t i = L->S0 - 1; i > 0; i--) {
    const int64_t j = oc_range(r, 0, i);
    const int32_t x = perm[i];
    perm[i] = perm[j], perm[j] = x;
  }
  for (int64_t i = 0; i < L->B * L->bt_ld; i++) {
    if (L->bt[i] >= 0) L->bt[i] = perm[L->bt[i]];
    else if (garbage && (i % L->bt_ld) < L->max_pages && L->max_pages <= 4096)
      L->bt[i] = (int32_t)oc_range(r, -3, L->S0 + 3);
  }
  free(perm);
}

static void make_plan(const oc_kv_params *w, uint64_t seed, plan *L) {
  oc_rng r;
  oc_rng_seed(&r, seed);
  memset(L, 0, sizeof *L);
  const int paged = w->layout != 0, sparse = w->layout < 0;
  L->page = paged ? (sparse ? -w->layout : w->layout) : 0;
  L->cap = sparse ? (INT64_C(1) << 20) : paged ? L->page * oc_range(&r, 2, 6) : 4 * oc_range(&r, 4, 40);
  const int64_t B = L->B = w->B, cap = L->cap;
  L->start = malloc((size_t)B * 4);
  L->len = malloc((size_t)B * 8);
  if (!w->decode) L->off = malloc((size_t)(B + 1) * 4);
  int64_t T = 0;
  for (int64_t b = 0; b < B; b++) {
    int64_t len = w->decode ? 1 : oc_range(&r, 0, w->maxlen);
    if (!w->decode && B > 1 && b == B / 2) len = 0; /* an empty sequence */
    if (len > cap) len = cap;
    L->len[b] = len;
    L->start[b] = (int32_t)oc_range(&r, 0, cap - (len ? len : 1));
    if (L->off) L->off[b] = (int32_t)T;
    T += len;
  }
  if (L->off) L->off[B] = (int32_t)T;
  L->Tl = T;
  /* rows CUDA must skip: positions past the capacity or negative, pages outside the pool */
  int64_t *bad_page = calloc((size_t)B, 8);
  int32_t trail = 0;
  if (w->bad) {
    for (int64_t b = 0; b < B; b++) {
      bad_page[b] = -1;
      if (!L->len[b]) continue;
      const int kind = (int)(oc_rand(&r) % 5);
      if (kind == 0) L->start[b] = (int32_t)oc_range(&r, -40, -1);                                  /* some negative */
      else if (kind == 1) L->start[b] = (int32_t)(cap - oc_range(&r, 0, L->len[b] > 1 ? L->len[b] - 1 : 0)); /* straddles the end */
      else if (kind == 2) L->start[b] = (int32_t)(cap + oc_range(&r, 0, 1000));                      /* all past the end */
      else if (kind == 3 && paged) bad_page[b] = 1;                                                  /* a spoiled page */
    }
    if (L->off) { /* rows no sequence covers: two before, three after */
      L->lead = 2, trail = 3;
      for (int64_t b = 0; b <= B; b++) L->off[b] += L->lead;
    }
  }
  L->T = T + L->lead + trail;
  if (paged) {
    int32_t *st = malloc((size_t)B * 4);
    int64_t *ln = malloc((size_t)B * 8), need = 0;
    for (int64_t b = 0; b < B; b++) { /* the in-capacity part of each sequence */
      int64_t s0 = L->start[b] < 0 ? 0 : L->start[b], s1 = L->start[b] + L->len[b];
      if (s1 > cap) s1 = cap;
      st[b] = (int32_t)s0, ln[b] = s1 > s0 ? s1 - s0 : 0;
      if (s1 > s0) need += (s1 - 1) / L->page - s0 / L->page + 1;
    }
    L->S0 = need + oc_range(&r, 1, 8), L->S1 = L->page;
    L->max_pages = cap / L->page;
    L->bt_ld = (L->max_pages + 4) / 4 * 4 + (oc_rand(&r) & 1 ? 4 : 0);
    L->bt = malloc((size_t)(B * L->bt_ld + 1) * 4);
    for (int64_t i = 0; i < B * L->bt_ld + 1; i++) L->bt[i] = -1;
    assign_pages(L, st, ln, !w->bad, &r);
    for (int64_t b = 0; b < B; b++)
      if (w->bad && bad_page[b] >= 0 && ln[b] > 0) /* spoil the first page of the sequence's rows */
        L->bt[b * L->bt_ld + st[b] / L->page] =
            oc_rand(&r) & 1 ? -1 - (int32_t)oc_range(&r, 0, 5) : (int32_t)(L->S0 + oc_range(&r, 0, 5));
    free(st), free(ln);
  } else {
    L->S0 = B + oc_range(&r, 0, 2), L->S1 = cap;
  }
  free(bad_page);
}

/* ---- caches: buffers and views ----------------------------------------------------------- */

typedef struct kv_priv {
  oc_kv_params p;
  uint64_t plan_seed;
  oc_kv_store st; /* the cache's k, v and parameters */
  int64_t T, B, cap, page, max_pages, bt_ld, row_bytes, width, ldq, ldo;
  int iqkv, iqo, ibt, ioff, istart; /* -1: absent */
} kv_priv;

/* The cache on a backend; seq >= 0: a one-sequence view (contiguous: the
 * sequence's slice; paged: its row of the block table). */
static llmk_kv_cache cache_view(const kv_priv *q, const oc_env *e, int64_t seq) {
  const int one = seq >= 0 && !q->page; /* contiguous: the sequence's slice of token-heads */
  llmk_kv_cache k = oc_kv_cache(&q->st, e->base, one ? 1 : q->st.S0, one ? seq * q->st.S1 * q->p.hkv : 0);
  if (q->page) {
    const int64_t rows = seq >= 0 ? 1 : q->B;
    k.block_table = llmk_tensor_2d((int32_t *)e->base[q->ibt] + (seq >= 0 ? seq * q->bt_ld : 0), LLMK_I32, rows,
                                   q->max_pages, q->bt_ld);
  }
  return k;
}

static void fill_tensor_scales(const oc_case *c, const kv_priv *q, void *const *host, oc_rng *r) {
  if (q->p.fmt != LLMK_KV_FP8_TENSOR) return;
  *(float *)oc_at(c, host, q->st.ikp, 0) = ldexpf(1.0f + (float)oc_uniform(r), -5);
  *(float *)oc_at(c, host, q->st.ivp, 0) = ldexpf(1.0f + (float)oc_uniform(r), -7);
}

/* ---- writes ------------------------------------------------------------------------------ */

static void fill_write(const oc_case *c, void *const *host, oc_rng *r, llmk_handle cpu) {
  (void)cpu;
  const kv_priv *q = OC_PARAMS(c, const kv_priv);
  plan L;
  make_plan(&q->p, q->plan_seed, &L);
  fill_heads(oc_at(c, host, q->iqkv, 0), LLMK_BF16, q->T, q->p.hq + 2 * q->p.hkv, q->p.D, q->ldq, q->p.special, r);
  fill_tensor_scales(c, q, host, r);
  memcpy(host[q->istart], L.start, (size_t)L.B * 4);
  if (q->ioff >= 0) memcpy(host[q->ioff], L.off, (size_t)(L.B + 1) * 4);
  if (q->ibt >= 0) memcpy(host[q->ibt], L.bt, (size_t)(L.B * L.bt_ld + 1) * 4);
  plan_free(&L);
}

static llmk_rope_desc rope_of_case(const oc_kv_params *p) {
  return rope_of(p->style, rotary_dim(p->D, p->partial), 500000.0, p->llama3);
}

/* One call over rows r0 .. r0 + T - 1 of the buffers, with the cache view and loc. */
static llmk_status write_rows(const kv_priv *q, const oc_env *e, const llmk_kv_cache *cache, const llmk_kv_loc *loc,
                              int64_t r0, int64_t T, void *stream) {
  const oc_kv_params *p = &q->p;
  const int64_t D = p->D;
  uint16_t *qkv = (uint16_t *)e->t[q->iqkv].data + r0 * q->ldq;
  if (p->op < 2) {
    const llmk_rope_desc rd = rope_of_case(p);
    const llmk_tensor x = llmk_tensor_2d(qkv, LLMK_BF16, T, q->width, q->ldq);
    const llmk_tensor qo = heads3((uint16_t *)e->t[q->iqo].data + r0 * q->ldo, LLMK_BF16, T, p->hq, D, q->ldo);
    return llmk_rope_qkv_write(e->h, p->op == 0 ? &rd : NULL, &x, p->hq, cache, loc, &qo, stream);
  }
  const llmk_tensor k = heads3(qkv + p->hq * D, LLMK_BF16, T, p->hkv, D, q->ldq);
  const llmk_tensor v = heads3(qkv + (p->hq + p->hkv) * D, LLMK_BF16, T, p->hkv, D, q->ldq);
  return llmk_kv_cache_write(e->h, cache, &k, &v, loc, stream);
}

static llmk_status run_write(const oc_case *c, const oc_env *e, void *stream) {
  const kv_priv *q = OC_PARAMS(c, const kv_priv);
  if (!(q->p.bad && e->backend == LLMK_BACKEND_CPU)) {
    const llmk_kv_cache cache = cache_view(q, e, -1);
    llmk_kv_loc loc = LLMK_KV_LOC_INIT;
    loc.start_pos = e->t[q->istart];
    if (q->ioff >= 0) loc.offsets = e->t[q->ioff];
    return write_rows(q, e, &cache, &loc, 0, q->T, stream);
  }
  /* the CPU reference of a case with rows CUDA skips: the valid rows one by
   * one (the CPU refuses positions outside the cache) */
  const int32_t *start = e->host[q->istart], *off = q->ioff >= 0 ? e->host[q->ioff] : NULL;
  const int32_t *bt = q->ibt >= 0 ? e->host[q->ibt] : NULL;
  for (int64_t b = 0; b < q->B; b++) {
    const int64_t r0 = off ? off[b] : b, len = off ? off[b + 1] - off[b] : 1;
    for (int64_t i = 0; i < len; i++) {
      const int64_t pos = (int64_t)start[b] + i;
      int ok = pos >= 0 && pos < q->cap;
      if (ok && q->page) {
        const int32_t pg = bt[b * q->bt_ld + pos / q->page];
        ok = pg >= 0 && pg < q->st.S0;
      }
      if (!ok) continue;
      const llmk_kv_cache cache = cache_view(q, e, b);
      int32_t p32 = (int32_t)pos;
      llmk_kv_loc loc = LLMK_KV_LOC_INIT;
      loc.start_pos = llmk_tensor_1d(&p32, LLMK_I32, 1);
      const llmk_status s = write_rows(q, e, &cache, &loc, r0 + i, 1, stream);
      if (s != LLMK_SUCCESS) return s;
    }
  }
  return LLMK_SUCCESS;
}

static void sizes_of(kv_priv *q) {
  const oc_kv_params *p = &q->p;
  q->st.fmt = p->fmt, q->st.group = p->G, q->st.hkv = p->hkv;
  q->st.E = p->fmt == LLMK_KV_INT4 ? p->D / 2 : p->D;
  q->row_bytes = q->st.E * (int64_t)llmk_dtype_size(oc_kv_storage_dtype(p->fmt));
  q->st.pe = p->fmt == LLMK_KV_FP8 ? 1 : p->fmt == LLMK_KV_INT4 ? 2 * p->D / p->G : 0;
}

static void write_case(oc_case *c, const oc_kv_params *p, uint64_t seed) {
  static const char *const ops[] = {"rope_qkv_write", "rope_qkv_write", "kv_cache_write"};
  oc_case_init(c, ops[p->op], seed);
  _Static_assert(sizeof(kv_priv) <= sizeof c->p, "kv_priv");
  kv_priv *q = OC_PARAMS(c, kv_priv);
  q->p = *p;
  if (q->p.fmt != LLMK_KV_INT4) q->p.G = 0;
  plan L;
  uint64_t ps = seed;
  for (int tries = 0;; tries++, ps = ps * 0x9E3779B97F4A7C15ull + 1) { /* a plan with rows */
    make_plan(p, ps, &L);
    if (L.T > 0 || tries == 20) break;
    plan_free(&L);
  }
  q->plan_seed = ps;
  q->st.S0 = L.S0, q->st.S1 = L.S1, q->T = L.T, q->B = L.B, q->cap = L.cap, q->page = L.page;
  q->max_pages = L.max_pages, q->bt_ld = L.bt_ld;
  sizes_of(q);
  const int64_t D = p->D, T = q->T;
  q->width = (p->hq + 2 * p->hkv) * D;
  q->ldq = q->width + p->pad, q->ldo = p->hq * D + p->pad;
  const char *lay = p->layout == 0 ? "contiguous" : p->layout < 0 ? "paged-sparse" : "paged";
  snprintf(c->name, sizeof c->name, "%s%s %s D=%lld G=%lld Hq=%lld Hkv=%lld %s B=%lld T=%lld %s R=%lld llama3=%d pad=%lld%s%s",
           fmt_name(p->fmt), p->op == 1 ? " (rope NULL)" : "", lay, (long long)D, (long long)q->p.G, (long long)p->hq,
           (long long)p->hkv, p->decode ? "decode" : "prefill", (long long)L.B, (long long)T,
           p->style ? "neox" : "interleaved", (long long)rotary_dim(D, p->partial), p->llama3, (long long)p->pad,
           p->special ? " nan-inf" : "", p->bad ? " skipped-rows" : "");
  if (q->page) {
    char tail[32];
    snprintf(tail, sizeof tail, " page=%lld", (long long)q->page);
    strncat(c->name, tail, sizeof c->name - strlen(c->name) - 1);
  }
  snprintf(c->dtype, sizeof c->dtype, "%s", fmt_name(p->fmt));
  oc_key(c, "b", L.B);
  oc_key(c, "t", T);
  oc_key(c, "hq", p->hq);
  oc_key(c, "hkv", p->hkv);
  oc_key(c, "d", D);
  q->iqkv = oc_buf_2d(c, "qkv", OC_IN, OC_CMP_BITS, LLMK_BF16, T, q->width, q->ldq, 0);
  q->iqo = -1;
  if (p->op < 2) { /* rows CUDA skips keep their q_out: then in place */
    const int64_t sh[3] = {T, p->hq, D}, st[3] = {q->ldo, D, 1};
    q->iqo = oc_buf_view(c, "q_out", p->bad ? OC_INOUT : OC_OUT, OC_CMP_NANEQ, LLMK_BF16, 3, sh, st, 0);
    c->buf[q->iqo].bytes = (size_t)(T * q->ldo) * 2;
  }
  oc_kv_add(c, &q->st, OC_INOUT, q->p.fmt == LLMK_KV_BF16 ? OC_CMP_NANEQ : OC_CMP_BITS);
  q->ibt = q->page ? oc_buf_1d(c, "block_table", OC_IN, OC_CMP_BITS, LLMK_I32, L.B * L.bt_ld + 1) : -1;
  q->ioff = p->decode ? -1 : oc_buf_1d(c, "offsets", OC_IN, OC_CMP_BITS, LLMK_I32, L.B + 1);
  q->istart = oc_buf_1d(c, "start_pos", OC_IN, OC_CMP_BITS, LLMK_I32, L.B);
  plan_free(&L);
  c->fill = fill_write;
  c->run = run_write;
  const double kv_bytes = 2.0 * (double)(T * p->hkv) * (double)(q->row_bytes + q->st.pe * (p->fmt == LLMK_KV_INT4 ? 2 : 4));
  c->bytes = (p->op < 2 ? (double)(T * q->width) * 2.0 + (double)(T * p->hq * D) * 2.0 : (double)(T * 2 * p->hkv * D) * 2.0) +
             kv_bytes;
}

/* ---- dequantize ---------------------------------------------------------------------------- */

typedef struct dq_priv {
  kv_priv k;
  int iko, ivo;
} dq_priv;

/* A random cache (every code, NaN codes, random parameters), or tokens
 * written at every position of every sequence by the CPU backend. */
static void fill_dequant(const oc_case *c, void *const *host, oc_rng *r, llmk_handle cpu) {
  const dq_priv *d = OC_PARAMS(c, const dq_priv);
  const kv_priv *q = &d->k;
  fill_tensor_scales(c, q, host, r);
  if (q->p.random_cache) return;
  const int64_t T = q->st.S0 * q->st.S1, hkv = q->p.hkv, D = q->p.D;
  uint16_t *k = malloc((size_t)(T * hkv * D) * 2), *v = malloc((size_t)(T * hkv * D) * 2);
  fill_heads(k, LLMK_BF16, T, hkv, D, hkv * D, q->p.special, r);
  fill_heads(v, LLMK_BF16, T, hkv, D, hkv * D, q->p.special, r);
  int32_t *off = malloc((size_t)(q->st.S0 + 1) * 4), *sp = calloc((size_t)q->st.S0, 4);
  for (int64_t b = 0; b <= q->st.S0; b++) off[b] = (int32_t)(b * q->st.S1);
  oc_env e;
  memset(&e, 0, sizeof e);
  e.base[q->st.ik] = host[q->st.ik], e.base[q->st.iv] = host[q->st.iv];
  if (q->st.ikp >= 0) e.base[q->st.ikp] = host[q->st.ikp], e.base[q->st.ivp] = host[q->st.ivp];
  const llmk_kv_cache cache = cache_view(q, &e, -1);
  llmk_kv_loc loc = LLMK_KV_LOC_INIT;
  loc.offsets = llmk_tensor_1d(off, LLMK_I32, q->st.S0 + 1);
  loc.start_pos = llmk_tensor_1d(sp, LLMK_I32, q->st.S0);
  const llmk_tensor tk = heads3(k, LLMK_BF16, T, hkv, D, hkv * D), tv = heads3(v, LLMK_BF16, T, hkv, D, hkv * D);
  if (llmk_kv_cache_write(cpu, &cache, &tk, &tv, &loc, NULL) != LLMK_SUCCESS)
    fprintf(stderr, "opcheck: %s %s: writing the cache: %s\n", c->op, c->name, llmk_last_error());
  free(k), free(v), free(off), free(sp);
}

static llmk_status run_dequant(const oc_case *c, const oc_env *e, void *stream) {
  const dq_priv *d = OC_PARAMS(c, const dq_priv);
  const llmk_kv_cache cache = cache_view(&d->k, e, -1);
  return llmk_kv_cache_dequantize(e->h, &cache, &e->t[d->iko], &e->t[d->ivo], stream);
}

static void dequant_case(oc_case *c, const oc_kv_params *p, uint64_t seed) {
  oc_case_init(c, "kv_cache_dequantize", seed);
  _Static_assert(sizeof(dq_priv) <= sizeof c->p, "dq_priv");
  dq_priv *d = OC_PARAMS(c, dq_priv);
  kv_priv *q = &d->k;
  q->p = *p;
  if (q->p.fmt != LLMK_KV_INT4) q->p.G = 0;
  oc_rng r;
  oc_rng_seed(&r, seed);
  q->st.S0 = p->B, q->st.S1 = p->maxlen > 0 ? p->maxlen : 20;
  q->B = q->st.S0;
  q->ibt = q->ioff = q->istart = q->iqkv = q->iqo = -1;
  sizes_of(q);
  snprintf(c->name, sizeof c->name, "%s %s cache D=%lld G=%lld Hkv=%lld [%lld, %lld] to %s off=%lld%s",
           p->random_cache ? "random" : "written", fmt_name(p->fmt), (long long)p->D, (long long)q->p.G,
           (long long)p->hkv, (long long)q->st.S0, (long long)q->st.S1, llmk_dtype_name(p->odt), (long long)p->ooff,
           p->special ? " nan-inf" : "");
  snprintf(c->dtype, sizeof c->dtype, "%s", fmt_name(p->fmt));
  oc_key(c, "s0", q->st.S0);
  oc_key(c, "s1", q->st.S1);
  oc_key(c, "hkv", p->hkv);
  oc_key(c, "d", p->D);
  oc_kv_add(c, &q->st, OC_IN, q->p.fmt == LLMK_KV_BF16 ? OC_CMP_NANEQ : OC_CMP_BITS);
  const int64_t sh[4] = {q->st.S0, q->st.S1, p->hkv, p->D}, st[4] = {q->st.S1 * p->hkv * p->D, p->hkv * p->D, p->D, 1};
  d->iko = oc_buf_view(c, "k_out", OC_OUT, OC_CMP_NANEQ, p->odt, 4, sh, st, p->ooff);
  d->ivo = oc_buf_view(c, "v_out", OC_OUT, OC_CMP_NANEQ, p->odt, 4, sh, st, p->ooff);
  c->fill = fill_dequant;
  c->run = run_dequant;
  const double n = (double)(q->st.S0 * q->st.S1 * p->hkv);
  c->bytes = 2.0 * n * ((double)q->row_bytes + (double)q->st.pe * (p->fmt == LLMK_KV_INT4 ? 2 : 4) +
                        (double)(p->D * (int64_t)llmk_dtype_size(p->odt)));
}

void oc_kv_case(oc_case *c, const oc_kv_params *p, uint64_t seed) {
  if (p->op == 3) dequant_case(c, p, seed);
  else write_case(c, p, seed);
}

/* ---- the list ---------------------------------------------------------------------------- */

/* rope: interleaved and neox, full and partial rotary dims (R/2 a multiple
 * of 8 or not), Llama 3.1 scaling, f32 and bf16, in place and out of
 * place, padded and misaligned rows, positions up to 2^20 (a few negative
 * and near +-2^31), many tokens. Writes: the four formats, contiguous and
 * paged caches (pages 16, 32, 64, shuffled tables; sparse tables for
 * positions up to 2^20), decode and variable-length prefill (with an
 * empty sequence), D = 64, 128, 256, INT4 groups 32 and 128, rows CUDA
 * must skip, Llama-3-70B heads. Dequantization of random and written
 * caches to f32 and bf16. */
void oc_kvcache_cases(oc_list *l, int quick, uint64_t seed) {
  oc_rng r;
  oc_rng_seed(&r, seed);
  static const int64_t Ds[] = {64, 128, 256};
  int k = 0;
  for (int dti = 0; dti < 2; dti++)
    for (int style = 0; style < 2; style++)
      for (int partial = 0; partial < 4; partial++)
        for (int di = 0; di < 3; di++, k++) {
          static const int64_t Ts[] = {1, 7, 300, 33};
          static const int64_t Hs[] = {1, 3, 8, 64};
          oc_rope_params p;
          memset(&p, 0, sizeof p);
          p.dt = dti ? LLMK_BF16 : LLMK_F32;
          p.D = Ds[di], p.T = Ts[k % 4], p.H = Hs[(k / 4) % 4];
          p.style = style ? LLMK_ROPE_NEOX : LLMK_ROPE_INTERLEAVED;
          p.rotary_dim = rotary_dim(p.D, partial);
          p.theta = k % 3 ? 500000.0 : 10000.0;
          p.llama3 = k % 2, p.in_place = k % 2;
          p.pad = k % 3 == 0 ? 0 : k % 3 == 1 ? 8 : 3;
          p.off = k % 5 == 4 ? 1 : 0;
          p.special = k % 7 == 3;
          oc_case *c = oc_list_add(l);
          oc_rope_case(c, &p, oc_rand(&r));
          if (k % 4 == 0) c->flags |= OC_QUICK;
        }
  static const struct { llmk_dtype dt; int64_t T, H; int neox, llama3, in_place; } many[] = {
      {LLMK_BF16, 4096, 8, 1, 1, 1}, {LLMK_BF16, 1000, 1, 0, 0, 0}, {LLMK_F32, 2000, 2, 1, 1, 0}};
  for (int i = 0; i < 3; i++) {
    if (quick && i == 0) continue;
    oc_rope_params p;
    memset(&p, 0, sizeof p);
    p.dt = many[i].dt, p.T = many[i].T, p.H = many[i].H, p.D = i == 2 ? 64 : 128;
    p.style = many[i].neox ? LLMK_ROPE_NEOX : LLMK_ROPE_INTERLEAVED;
    p.theta = 500000.0, p.llama3 = many[i].llama3, p.in_place = many[i].in_place;
    oc_rope_case(oc_list_add(l), &p, oc_rand(&r));
  }

  static const int layouts[] = {0, 16, 32, 64, -16, -64};
  static const int64_t hkvs[] = {1, 2, 8};
  static const int64_t groups[] = {1, 4, 8};
  k = 0;
  for (int f = 0; f < 4; f++)
    for (int li = 0; li < 6; li++)
      for (int dec = 0; dec < 2; dec++, k++) {
        oc_kv_params w;
        memset(&w, 0, sizeof w);
        w.fmt = (llmk_kv_format)f;
        w.D = Ds[(k + li) % 3];
        w.G = w.D >= 128 && (k / 3) % 2 ? 128 : 32;
        w.hkv = hkvs[k % 3];
        w.hq = w.hkv * groups[(k / 2) % 3];
        w.layout = layouts[li];
        w.decode = dec;
        w.B = dec ? (int64_t[]){1, 7, 40}[k % 3] : (int64_t[]){1, 3, 9}[k % 3];
        w.maxlen = 48;
        w.op = k % 3;
        w.style = (llmk_rope_style)((k / 3) % 2);
        w.partial = k % 4;
        w.llama3 = (k / 5) % 2;
        w.special = k % 5 == 2;
        w.pad = k % 4 == 1 ? 8 : k % 4 == 3 ? 3 : 0;
        oc_case *c = oc_list_add(l);
        oc_kv_case(c, &w, oc_rand(&r));
        if (k % 3 == 0) c->flags |= OC_QUICK;
      }
  /* rows CUDA skips, every format, contiguous and paged, decode and prefill */
  for (int f = 0; f < 4; f++)
    for (int li = 0; li < 3; li++)
      for (int dec = 0; dec < 2; dec++, k++) {
        oc_kv_params w;
        memset(&w, 0, sizeof w);
        w.fmt = (llmk_kv_format)f;
        w.D = Ds[k % 3], w.G = 32, w.hkv = 2, w.hq = 8;
        w.layout = (int[]){0, 16, 64}[li];
        w.decode = dec;
        w.B = dec ? 24 : 7;
        w.maxlen = 30;
        w.op = k % 3;
        w.style = (llmk_rope_style)(k % 2);
        w.partial = k % 3 == 2 ? 2 : 0;
        w.bad = 1;
        oc_case *c = oc_list_add(l);
        oc_kv_case(c, &w, oc_rand(&r));
        if (k % 4 == 0) c->flags |= OC_QUICK;
      }
  /* Llama-3-70B heads: prefill of several hundred tokens per sequence, and decode of 64 sequences */
  for (int f = 0; f < 5; f++) {
    if (quick && f < 4) continue;
    oc_kv_params w;
    memset(&w, 0, sizeof w);
    w.fmt = f < 4 ? (llmk_kv_format)f : LLMK_KV_FP8;
    w.D = 128, w.G = f == 3 ? 128 : 32, w.hkv = 8, w.hq = 64;
    w.layout = f == 4 ? 16 : f % 2 ? 64 : -16;
    w.decode = f == 4;
    w.B = f == 4 ? 64 : 4, w.maxlen = f == 4 ? 1 : 700;
    w.op = f == 2 ? 2 : 0;
    w.style = (llmk_rope_style)(f % 2), w.llama3 = 1;
    oc_kv_case(oc_list_add(l), &w, oc_rand(&r));
  }
  /* dequantization: random caches (every code) and written ones, f32 and bf16, misaligned outputs */
  for (int f = 0; f < 4; f++)
    for (int di = 0; di < 3; di++)
      for (int written = 0; written < 2; written++) {
        oc_kv_params w;
        memset(&w, 0, sizeof w);
        w.op = 3;
        w.fmt = (llmk_kv_format)f;
        w.D = Ds[di], w.G = w.D >= 128 && f % 2 ? 128 : 32, w.hkv = (int64_t[]){1, 3, 8}[di];
        w.B = 3, w.maxlen = 20;
        w.random_cache = !written;
        w.odt = (di + written) % 2 ? LLMK_BF16 : LLMK_F32;
        w.ooff = di == 1 ? 1 : 0;
        w.special = written && f == 1;
        oc_case *c = oc_list_add(l);
        oc_kv_case(c, &w, oc_rand(&r));
        if ((f + di + written) % 3 == 0) c->flags |= OC_QUICK;
      }
}
