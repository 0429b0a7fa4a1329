/* opcheck cases: llmk_attention_decode, CUDA against the CPU reference on
 * the same cache bytes (the cache written by the CPU backend), under
 * docs/DESIGN.md's tolerance: relative L2 error per (sequence, head) of
 * 2e-3 for BF16 caches and 1e-2 for FP8 and INT4, absolute LSE error
 * 1e-2; a sequence of length 0 gives out = +0 and lse = -inf exactly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opcheck.h"

typedef struct attn_priv {
  oc_attn_params p;
  oc_kv_store st; /* the cache's k, v and parameters */
  int64_t tcap, maxp;
  int iq, ibt, ilen, iout, ilse;
} attn_priv;

static llmk_kv_cache cache_of(const attn_priv *q, void *const *base) {
  llmk_kv_cache c = oc_kv_cache(&q->st, base, q->st.S0, 0);
  if (q->p.page) c.block_table = llmk_tensor_2d(base[q->ibt], LLMK_I32, q->p.B, q->maxp, q->maxp);
  return c;
}

/* Random bf16 K and V at every position of every sequence up to tcap (an
 * outlier token now and then), written by the CPU backend; random q. */
static void fill_attn(const oc_case *c, void *const *host, oc_rng *r, llmk_handle cpu) {
  const attn_priv *q = OC_PARAMS(c, const attn_priv);
  const oc_attn_params *p = &q->p;
  if (p->fmt == LLMK_KV_FP8_TENSOR) {
    *(float *)host[q->st.ikp] = 3.0f / 448.0f;
    *(float *)host[q->st.ivp] = 3.5f / 448.0f;
  }
  if (p->page) {
    int64_t *perm = malloc((size_t)q->st.S0 * 8);
    for (int64_t i = 0; i < q->st.S0; i++) perm[i] = i;
    for (int64_t i = q->st.S0 - 1; i > 0; i--) {
      const int64_t j = oc_range(r, 0, i), t = perm[i];
      perm[i] = perm[j], perm[j] = t;
    }
    for (int64_t i = 0; i < p->B * q->maxp; i++) ((int32_t *)host[q->ibt])[i] = (int32_t)perm[i];
    free(perm);
  }
  const int64_t T = p->B * q->tcap, rowe = p->hkv * p->D;
  uint16_t *k = malloc((size_t)(T * rowe) * 2), *v = malloc((size_t)(T * rowe) * 2);
  for (int64_t i = 0; i < T * rowe; i++) k[i] = llmk_float_to_bf16(oc_normal(r)), v[i] = llmk_float_to_bf16(oc_normal(r));
  for (int64_t i = 0; i < T; i += 97)
    for (int64_t e = 0; e < rowe; e += 7) k[i * rowe + e] = llmk_float_to_bf16(6.0f * oc_normal(r));
  int32_t *off = malloc((size_t)(p->B + 1) * 4), *sp = calloc((size_t)p->B, 4);
  for (int64_t b = 0; b <= p->B; b++) off[b] = (int32_t)(b * q->tcap);
  const llmk_kv_cache cache = cache_of(q, host);
  llmk_kv_loc loc = LLMK_KV_LOC_INIT;
  loc.offsets = llmk_tensor_1d(off, LLMK_I32, p->B + 1);
  loc.start_pos = llmk_tensor_1d(sp, LLMK_I32, p->B);
  const int64_t hs[3] = {T, p->hkv, p->D};
  const llmk_tensor tk = oc_tensor_nd(k, LLMK_BF16, 3, hs), tv = oc_tensor_nd(v, LLMK_BF16, 3, hs);
  if (llmk_kv_cache_write(cpu, &cache, &tk, &tv, &loc, NULL) != LLMK_SUCCESS)
    fprintf(stderr, "opcheck: %s %s: writing the cache: %s\n", c->op, c->name, llmk_last_error());
  uint16_t *qq = host[q->iq];
  for (int64_t i = 0; i < p->B * p->hq * p->D; i++) qq[i] = llmk_float_to_bf16(oc_normal(r));
  memcpy(host[q->ilen], p->lens, (size_t)p->B * 4);
  free(k), free(v), free(off), free(sp);
}

static llmk_status run_attn(const oc_case *c, const oc_env *e, void *stream) {
  const attn_priv *q = OC_PARAMS(c, const attn_priv);
  llmk_attention_desc d = LLMK_ATTENTION_DESC_INIT;
  d.softmax_scale = 1.0f / sqrtf((float)q->p.D);
  d.max_seq_len = q->tcap;
  d.num_splits = q->p.splits;
  const llmk_kv_cache cache = cache_of(q, e->base);
  return llmk_attention_decode(e->h, &d, &e->t[q->iq], &cache, &e->t[q->ilen], &e->t[q->iout],
                               q->ilse >= 0 ? &e->t[q->ilse] : NULL, stream);
}

static int64_t length(const attn_priv *q, void *const *in, int64_t b) {
  int64_t L = ((const int32_t *)in[q->ilen])[b];
  if (L < 0) L = 0;
  return L > q->tcap ? q->tcap : L;
}

static int64_t compare_attn(const oc_case *c, int buf, void *const *in, const void *ref, const void *got,
                            const char *label, FILE *log) {
  const attn_priv *q = OC_PARAMS(c, const attn_priv);
  const oc_attn_params *p = &q->p;
  int64_t bad = 0;
  if (buf == q->iout) {
    const double tol = p->fmt == LLMK_KV_BF16 ? 2e-3 : 1e-2;
    const uint16_t *R = ref, *G = got;
    for (int64_t b = 0; b < p->B; b++)
      for (int64_t j = 0; j < p->hq; j++) {
        const uint16_t *x = R + (b * p->hq + j) * p->D, *y = G + (b * p->hq + j) * p->D;
        double num = 0, den = 0;
        int zero = 1;
        for (int64_t d = 0; d < p->D; d++) {
          const double gv = llmk_bf16_to_float(y[d]), rv = llmk_bf16_to_float(x[d]);
          num += (gv - rv) * (gv - rv), den += rv * rv;
          zero &= y[d] == 0;
        }
        const double e = den > 0 ? sqrt(num / den) : sqrt(num);
        const int ok = length(q, in, b) == 0 ? zero : e <= tol;
        if (!ok && bad++ < 3)
          fprintf(log, "  %s: out[%lld,%lld]: relative L2 error %.3g (tol %.0e)%s\n", label, (long long)b, (long long)j,
                  e, tol, length(q, in, b) == 0 ? ", length 0: expected +0" : "");
      }
  } else {
    const float *R = ref, *G = got;
    for (int64_t b = 0; b < p->B; b++)
      for (int64_t j = 0; j < p->hq; j++) {
        const float x = R[b * p->hq + j], y = G[b * p->hq + j];
        const int ok = length(q, in, b) == 0 ? isinf(y) && y < 0 : fabs((double)x - (double)y) <= 1e-2;
        if (!ok && bad++ < 3)
          fprintf(log, "  %s: lse[%lld,%lld]: cuda %.8g, cpu %.8g\n", label, (long long)b, (long long)j, y, x);
      }
  }
  return bad;
}

void oc_attention_case(oc_case *c, const oc_attn_params *p, uint64_t seed) {
  static const char *const fmts[] = {"BF16", "FP8", "FP8_TENSOR", "INT4"};
  oc_case_init(c, "attention_decode", seed);
  _Static_assert(sizeof(attn_priv) <= sizeof c->p, "attn_priv");
  attn_priv *q = OC_PARAMS(c, attn_priv);
  q->p = *p;
  if (q->p.fmt != LLMK_KV_INT4) q->p.G = 0;
  q->tcap = 0;
  char lens[96] = "";
  for (int64_t b = 0; b < p->B; b++) {
    q->tcap = p->lens[b] > q->tcap ? p->lens[b] : q->tcap;
    snprintf(lens + strlen(lens), sizeof lens - strlen(lens), "%s%d", b ? "," : "", p->lens[b]);
  }
  if (q->tcap == 0) q->tcap = 16;
  if (p->page) {
    q->maxp = (q->tcap + p->page - 1) / p->page;
    q->st.S0 = p->B * q->maxp + 3, q->st.S1 = p->page; /* spare pages */
  } else {
    q->st.S0 = p->B, q->st.S1 = q->tcap;
  }
  q->st.E = p->fmt == LLMK_KV_INT4 ? p->D / 2 : p->D;
  q->st.pe = p->fmt == LLMK_KV_INT4 ? 2 * p->D / p->G : 1;
  snprintf(c->name, sizeof c->name, "%s D=%lld Hq=%lld Hkv=%lld B=%lld page=%lld G=%lld splits=%d lens=%s%s", fmts[p->fmt],
           (long long)p->D, (long long)p->hq, (long long)p->hkv, (long long)p->B, (long long)p->page, (long long)q->p.G,
           p->splits, lens, p->lse ? " lse" : "");
  snprintf(c->dtype, sizeof c->dtype, "%s", fmts[p->fmt]);
  oc_key(c, "b", p->B);
  oc_key(c, "t", q->tcap);
  oc_key(c, "hq", p->hq);
  oc_key(c, "hkv", p->hkv);
  oc_key(c, "d", p->D);
  const int64_t qs[3] = {p->B, p->hq, p->D};
  q->iq = oc_buf_nd(c, "q", OC_IN, OC_CMP_BITS, LLMK_BF16, 3, qs);
  q->st.fmt = p->fmt, q->st.group = p->G, q->st.hkv = p->hkv;
  oc_kv_add(c, &q->st, OC_IN, OC_CMP_BITS);
  q->ibt = q->ilse = -1;
  if (p->page) q->ibt = oc_buf_1d(c, "block_table", OC_IN, OC_CMP_BITS, LLMK_I32, p->B * q->maxp);
  q->ilen = oc_buf_1d(c, "seq_lens", OC_IN, OC_CMP_BITS, LLMK_I32, p->B);
  q->iout = oc_buf_nd(c, "out", OC_OUT, OC_CMP_CUSTOM, LLMK_BF16, 3, qs);
  if (p->lse) {
    const int64_t ls[2] = {p->B, p->hq};
    q->ilse = oc_buf_nd(c, "lse", OC_OUT, OC_CMP_CUSTOM, LLMK_F32, 2, ls);
  }
  c->fill = fill_attn;
  c->run = run_attn;
  c->compare = compare_attn;
  int64_t tokens = 0;
  for (int64_t b = 0; b < p->B; b++) tokens += p->lens[b] > 0 ? p->lens[b] : 0;
  const double per_token = 2.0 * (double)(p->hkv * q->st.E) * (double)llmk_dtype_size(oc_kv_storage_dtype(p->fmt)) +
                           (p->fmt == LLMK_KV_FP8 ? 8.0 * (double)p->hkv : p->fmt == LLMK_KV_INT4 ? 4.0 * (double)(p->hkv * q->st.pe) : 0);
  c->bytes = (double)tokens * per_token + 4.0 * (double)(p->B * p->hq * p->D);
}

/* Every format; contiguous and paged; D 64, 128, 256; group sizes 1, 3, 8,
 * 16; lengths 0 .. 1000 mixed in a batch; forced and automatic splits. */
void oc_attention_cases(oc_list *l, int quick, uint64_t seed) {
  oc_rng r;
  oc_rng_seed(&r, seed);
  for (int f = 0; f < 4; f++) {
    const int64_t g = f == 3 ? 32 : 0;
    for (int64_t d = 64; d <= 256; d *= 2) {
      const oc_attn_params a = {(llmk_kv_format)f, d, 8, 1, 5, 0, g, {0, 1, 2, 1000, 65}, 0, 1};
      oc_case *c = oc_list_add(l);
      oc_attention_case(c, &a, oc_rand(&r));
      if (d == 128) c->flags |= OC_QUICK;
      const oc_attn_params p = {(llmk_kv_format)f, d, 8, 2, 3, 16, g, {63, 64, 65}, 0, d == 64};
      oc_attention_case(oc_list_add(l), &p, oc_rand(&r));
    }
    if (quick) continue;
    const oc_attn_params g1 = {(llmk_kv_format)f, 128, 3, 3, 1, 32, g, {1}, 0, 1};
    const oc_attn_params g3 = {(llmk_kv_format)f, 128, 6, 2, 3, 0, g, {63, 64, 65}, 3, 1};
    const oc_attn_params g16 = {(llmk_kv_format)f, 128, 64, 4, 2, 64, g, {300, 77}, 0, 1};
    const oc_attn_params s1 = {(llmk_kv_format)f, 128, 8, 1, 1, 0, g, {700}, 1, 0};
    oc_attention_case(oc_list_add(l), &g1, oc_rand(&r));
    oc_attention_case(oc_list_add(l), &g3, oc_rand(&r));
    oc_attention_case(oc_list_add(l), &g16, oc_rand(&r));
    oc_attention_case(oc_list_add(l), &s1, oc_rand(&r));
  }
  const oc_attn_params i128 = {LLMK_KV_INT4, 128, 8, 2, 5, 32, 128, {0, 1, 2, 1000, 65}, 0, 1};
  oc_case *c = oc_list_add(l);
  oc_attention_case(c, &i128, oc_rand(&r));
  c->flags |= OC_QUICK;
}
