/*
 * llmk_attention_decode on the CPU backend (the reference the CUDA kernels
 * are tested against): against a straightforward fp64 softmax over the
 * value table of tests/kv_ref.h (group sizes 1, 3, 8, 16; D 64/128/256;
 * every format; paged and contiguous; lengths 0, negative, clamped by
 * max_seq_len; lse; outputs' padding poisoned), and one 200000-token paged
 * sequence. RoPE: test_rope_cpu.c; the KV-cache writes: test_kvcache_cpu.c;
 * bad inputs: test_attention_errors.c.
 */
#include "kv_ref.h"

/* ------------------------------------------------------------------------ */
/* Decode attention                                                          */
/* ------------------------------------------------------------------------ */

/* Fills every position 0 .. len[b] - 1 of each sequence through
 * llmk_kv_cache_write, in chunks of at most `chunk` rows. */
static void fill_cache(tcache *t, const int64_t *len, int64_t chunk, float kscale) {
  const int64_t hd = t->hkv * t->D;
  uint16_t *k = amalloc((size_t)(chunk * hd) * 2), *v = amalloc((size_t)(chunk * hd) * 2);
  for (int64_t b = 0; b < t->B; b++)
    for (int64_t p0 = 0; p0 < len[b]; p0 += chunk) {
      const int64_t n = len[b] - p0 < chunk ? len[b] - p0 : chunk;
      for (int64_t i = 0; i < n * hd; i++) k[i] = bf(t_rand_normal() * kscale), v[i] = bf(draw(2, 1.0f));
      /* sequence b only: the other rows of the table are given empty ranges */
      int32_t *offs = t_xmalloc((size_t)(t->B + 1) * 4), *start = t_xmalloc((size_t)t->B * 4);
      for (int64_t s = 0; s <= t->B; s++) offs[s] = s <= b ? 0 : (int32_t)n;
      for (int64_t s = 0; s < t->B; s++) start[s] = s == b ? (int32_t)p0 : 0;
      llmk_kv_loc loc = LLMK_KV_LOC_INIT;
      loc.offsets = llmk_tensor_1d(offs, LLMK_I32, t->B + 1);
      loc.start_pos = llmk_tensor_1d(start, LLMK_I32, t->B);
      llmk_tensor tk = heads_t(k, LLMK_BF16, n, t->hkv, t->D, hd), tv = heads_t(v, LLMK_BF16, n, t->hkv, t->D, hd);
      llmk_status s = llmk_kv_cache_write(H, &t->c, &tk, &tv, &loc, NULL);
      if (s) CHECK(0, "fill_cache: %s", llmk_last_error());
      free(offs), free(start);
    }
  free(k), free(v);
}

/* A straightforward fp64 softmax of the value table for every (b, j):
 * scores stored, max, exponentials, weighted sum. */
static void ref_attention(const tcache *t, int64_t B, int64_t hq, const uint16_t *q, int64_t ldq,
                          const int32_t *seq_lens, int64_t max_len, float scale, double *out,
                          double *lse) {
  const int64_t D = t->D, group = hq / t->hkv;
  for (int64_t b = 0; b < B; b++) {
    int64_t L = seq_lens[b] < 0 ? 0 : seq_lens[b];
    if (L > max_len) L = max_len;
    for (int64_t h = 0; h < t->hkv; h++) {
      double *sc = t_xmalloc((size_t)(group * (L + 1)) * sizeof(double));
      float kv[256];
      for (int64_t p = 0; p < L; p++) {
        const int64_t sl = tslot(t, b, p, h);
        for (int64_t d = 0; d < D; d++) kv[d] = ref_value(t, 0, sl, d);
        for (int64_t g = 0; g < group; g++) {
          const uint16_t *qr = q + b * ldq + (h * group + g) * D;
          double dot = 0;
          for (int64_t d = 0; d < D; d++) dot += (double)fb(qr[d]) * kv[d];
          sc[g * L + p] = (double)scale * dot;
        }
      }
      for (int64_t g = 0; g < group; g++) {
        const int64_t j = h * group + g;
        double *o = out + (b * hq + j) * D;
        for (int64_t d = 0; d < D; d++) o[d] = 0;
        if (L == 0) {
          lse[b * hq + j] = -INFINITY;
          continue;
        }
        double m = -INFINITY, sum = 0;
        for (int64_t p = 0; p < L; p++) m = fmax(m, sc[g * L + p]);
        for (int64_t p = 0; p < L; p++) {
          sc[g * L + p] = exp(sc[g * L + p] - m);
          sum += sc[g * L + p];
        }
        lse[b * hq + j] = m + log(sum);
      }
      for (int64_t p = 0; p < L; p++) {
        const int64_t sl = tslot(t, b, p, h);
        for (int64_t d = 0; d < D; d++) kv[d] = ref_value(t, 1, sl, d);
        for (int64_t g = 0; g < group; g++) {
          double *o = out + (b * hq + h * group + g) * D;
          const double w = sc[g * L + p];
          for (int64_t d = 0; d < D; d++) o[d] += w * kv[d];
        }
      }
      for (int64_t g = 0; g < group && L > 0; g++) {
        double sum = 0;
        for (int64_t p = 0; p < L; p++) sum += sc[g * L + p];
        double *o = out + (b * hq + h * group + g) * D;
        for (int64_t d = 0; d < D; d++) o[d] /= sum;
      }
      free(sc);
    }
  }
}

typedef struct acase {
  llmk_kv_format f;
  int paged;
  int64_t B, hkv, group, D, G;
  int with_lse;
} acase;

/* Runs llmk_attention_decode on t (filled) and compares with ref_attention. */
static void check_attention(const tcache *t, int64_t hq, const int32_t *seq_lens, int64_t max_len,
                            int with_lse, float qscale, const char *name) {
  const int64_t B = t->B, D = t->D, ldq = hq * D + 8, ldo = hq * D + 24;
  uint16_t *q = amalloc((size_t)(B * ldq) * 2), *out = amalloc((size_t)(B * ldo) * 2);
  float *lse = amalloc((size_t)(B * hq) * 4);
  for (int64_t i = 0; i < B * ldq; i++) q[i] = bf(t_rand_normal() * qscale);
  memset(out, 0xA5, (size_t)(B * ldo) * 2);
  memset(lse, 0xA5, (size_t)(B * hq) * 4);
  llmk_attention_desc ad = {LLMK_ATTENTION_DESC_SIZE, 1.0f / sqrtf((float)D), max_len, 0};
  llmk_tensor tq = heads_t(q, LLMK_BF16, B, hq, D, ldq), to = heads_t(out, LLMK_BF16, B, hq, D, ldo);
  llmk_tensor tl = llmk_tensor_2d(lse, LLMK_F32, B, hq, hq), ts = llmk_tensor_1d((void *)seq_lens, LLMK_I32, B);
  llmk_status s = llmk_attention_decode(H, &ad, &tq, &t->c, &ts, &to, with_lse ? &tl : NULL, NULL);
  CHECK(s == LLMK_SUCCESS, "%s: %s", name, llmk_last_error());
  double *ro = t_xmalloc((size_t)(B * hq * D) * sizeof(double)), *rl = t_xmalloc((size_t)(B * hq) * sizeof(double));
  ref_attention(t, B, hq, q, ldq, seq_lens, max_len, ad.softmax_scale, ro, rl);
  int64_t bad = 0, bad_lse = 0, bad_pad = 0;
  for (int64_t b = 0; b < B; b++)
    for (int64_t j = 0; j < hq; j++) {
      for (int64_t d = 0; d < D; d++) {
        const uint16_t gb = out[b * ldo + j * D + d];
        const double want = ro[(b * hq + j) * D + d], got = fb(gb);
        const int ok = want == 0 ? gb == 0 : fabs(got - want) <= fabs(want) * 0x1p-8;
        if (!ok) {
          if (!bad)
            fprintf(stderr, "%s: out[%lld][%lld][%lld] = %g, reference %.9g\n", name, (long long)b,
                    (long long)j, (long long)d, got, want);
          bad++;
        }
      }
      if (with_lse) {
        const double want = rl[b * hq + j], got = lse[b * hq + j];
        const int ok = isinf(want) ? (isinf(got) && got < 0) : fabs(got - want) <= 1e-6 * fmax(1.0, fabs(want));
        if (!ok) {
          if (!bad_lse)
            fprintf(stderr, "%s: lse[%lld][%lld] = %.9g, reference %.9g\n", name, (long long)b, (long long)j,
                    got, want);
          bad_lse++;
        }
      }
    }
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = hq * D; i < ldo; i++) bad_pad += out[b * ldo + i] != 0xA5A5;
  if (!with_lse)
    for (int64_t i = 0; i < B * hq; i++) bad_pad += fbits(lse[i]) != 0xA5A5A5A5u;
  CHECK(bad == 0, "%s: %lld outputs differ from the fp64 reference by more than 2^-8 relative", name,
        (long long)bad);
  CHECK(bad_lse == 0, "%s: %lld lse values differ from the reference", name, (long long)bad_lse);
  CHECK(bad_pad == 0, "%s: %lld elements outside out (padding, or lse when NULL) written", name,
        (long long)bad_pad);
  free(q), free(out), free(lse), free(ro), free(rl);
}

static void test_attention_case(const acase *a) {
  const int64_t ps = 16, max_pages = 4, S1 = a->paged ? ps : 48;
  const int64_t S0 = a->paged ? a->B * max_pages + 3 : a->B + 1;
  tcache t;
  tcache_init(&t, a->f, a->paged, S0, S1, a->hkv, a->D, a->G, a->B, max_pages);
  const int64_t cap = tcache_capacity(&t), hq = a->hkv * a->group;
  char name[160];
  snprintf(name, sizeof name, "[attention %s %s B=%lld Hkv=%lld group=%lld D=%lld%s]", fmt_name(a->f),
           a->paged ? "paged" : "contiguous", (long long)a->B, (long long)a->hkv, (long long)a->group,
           (long long)a->D, a->with_lse ? " lse" : "");
  int64_t len[8];
  for (int64_t b = 0; b < a->B; b++) len[b] = cap;
  fill_cache(&t, len, 64, 1.0f);
  /* lengths: 0, full, negative, beyond max_seq_len, random, 1 */
  const int64_t max_len = a->B % 2 ? cap : cap - 7;
  int32_t sl[8];
  const int32_t pattern[6] = {0, (int32_t)cap, -5, (int32_t)cap + 100, (int32_t)(1 + irand(cap)), 1};
  for (int64_t b = 0; b < a->B; b++) sl[b] = pattern[(b + a->B) % 6];
  check_attention(&t, hq, sl, max_len, a->with_lse, 1.0f, name);
  /* peaked softmax: large scores */
  for (int64_t b = 0; b < a->B; b++) sl[b] = (int32_t)(1 + irand(max_len));
  check_attention(&t, hq, sl, max_len, 1, 6.0f, name);
  /* max_seq_len = 0: every sequence is empty */
  check_attention(&t, hq, sl, 0, 1, 1.0f, name);
  tcache_free(&t);
}

static void test_attention(void) {
  const acase cases[] = {
      {LLMK_KV_BF16, 0, 3, 2, 1, 64, 0, 1},   {LLMK_KV_BF16, 1, 2, 3, 16, 256, 0, 0},
      {LLMK_KV_FP8, 1, 4, 1, 3, 128, 0, 1},   {LLMK_KV_FP8, 0, 5, 1, 1, 64, 0, 0},
      {LLMK_KV_FP8_TENSOR, 0, 2, 2, 8, 256, 0, 1}, {LLMK_KV_FP8_TENSOR, 1, 3, 1, 16, 64, 0, 1},
      {LLMK_KV_INT4, 1, 3, 2, 16, 128, 32, 1}, {LLMK_KV_INT4, 0, 2, 1, 8, 256, 128, 0},
      {LLMK_KV_INT4, 1, 1, 2, 3, 64, 32, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_attention_case(&cases[i]);
  /* one long paged sequence: 200000 tokens, INT4, group 4 */
  {
    tcache t;
    const int64_t ps = 1024, max_pages = 196, L = 200000;
    tcache_init(&t, LLMK_KV_INT4, 1, 200, ps, 1, 128, 32, 1, max_pages);
    int64_t len[1] = {L};
    fill_cache(&t, len, 50000, 1.0f);
    int32_t sl[1] = {(int32_t)L};
    check_attention(&t, 4, sl, max_pages * ps, 1, 2.0f, "[attention INT4 paged L=200000 group=4]");
    tcache_free(&t);
  }
}

int main(void) {
  t_seed();
  if (llmk_create_cpu(&H) != LLMK_SUCCESS) {
    fprintf(stderr, "llmk_create_cpu: %s\n", llmk_last_error());
    return 2;
  }
  const t_part parts[] = {{"attention", test_attention}};
  t_run_parts(parts, sizeof parts / sizeof parts[0]);
  llmk_destroy(H);
  TEST_END();
}
