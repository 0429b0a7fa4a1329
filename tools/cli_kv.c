/* The helpers of cli_kv.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli_kv.h"
#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

/* A whole decimal or 0x number, or def when absent; *ok = 0 if malformed. */
int64_t kvb_opt_int(int argc, char **argv, const char *name, int64_t def, int *ok) {
  const char *v = cli_arg(argc, argv, name, NULL);
  if (!v) return def;
  char *end = NULL;
  const long long x = strtoll(v, &end, 0);
  if (end == v || *end) {
    fprintf(stderr, "bench: %s wants an integer, got '%s'\n", name, v);
    *ok = 0;
  }
  return x;
}

static const struct {
  const char *name;
  llmk_kv_format f;
} FORMATS[] = {{"bf16", LLMK_KV_BF16}, {"fp8", LLMK_KV_FP8}, {"fp8_tensor", LLMK_KV_FP8_TENSOR}, {"int4", LLMK_KV_INT4}};

int kvb_parse_format(const char *s, llmk_kv_format *f) {
  for (size_t i = 0; i < sizeof FORMATS / sizeof FORMATS[0]; i++)
    if (!strcmp(s, FORMATS[i].name)) return *f = FORMATS[i].f, 1;
  return 0;
}
const char *kvb_format_name(llmk_kv_format f) {
  for (size_t i = 0; i < sizeof FORMATS / sizeof FORMATS[0]; i++)
    if (FORMATS[i].f == f) return FORMATS[i].name;
  return "?";
}

/* Cache format, group and page size: checked as llmk.h states them. */
int kvb_check_cache_opts(const char *cmd, llmk_kv_format fmt, int64_t hq, int64_t hkv, int64_t d,
                     int64_t group, int64_t page) {
  if (d != 64 && d != 128 && d != 256) return fprintf(stderr, "bench %s: --d must be 64, 128 or 256\n", cmd), 0;
  if (hkv < 1 || hq < 1 || hq % hkv) return fprintf(stderr, "bench %s: --hq must be a positive multiple of --hkv\n", cmd), 0;
  if (fmt == LLMK_KV_INT4 && ((group != 32 && group != 128) || group > d))
    return fprintf(stderr, "bench %s: --group must be 32 or 128 (and at most D)\n", cmd), 0;
  if (page < 0 || (page & (page - 1)))
    return fprintf(stderr, "bench %s: --page-size must be 0 (contiguous) or a power of two\n", cmd), 0;
  return 1;
}

/* ------------------------------------------------------------------------ */
/* Memory of the backend (device, or host for --cpu)                         */
/* ------------------------------------------------------------------------ */

void *kvb_mem_alloc(int gpu, size_t n) {
  n = (n + 255) / 256 * 256;
  if (!n) n = 256;
  return gpu ? cli_dev_alloc(n) : aligned_alloc(256, n);
}
void kvb_mem_free(int gpu, void *p) {
  if (!p) return;
  if (gpu) cli_dev_free(p);
  else free(p);
}
int kvb_mem_h2d(int gpu, void *d, const void *s, size_t n) {
  if (gpu) return cli_h2d(d, s, n);
  memcpy(d, s, n);
  return 1;
}
int kvb_mem_d2h(int gpu, void *d, const void *s, size_t n) {
  if (gpu) return cli_d2h(d, s, n);
  memcpy(d, s, n);
  return 1;
}
static int kvb_mem_d2d(int gpu, void *d, const void *s, size_t n) {
  if (!gpu) {
    memcpy(d, s, n);
    return 1;
  }
#ifdef LLMK_WITH_CUDA
  return cudaMemcpy(d, s, n, cudaMemcpyDeviceToDevice) == cudaSuccess;
#else
  return 0;
#endif
}
/* rows of `width` bytes, `spitch` apart in the backend's memory, to the host (packed) */
int kvb_mem_rows_d2h(int gpu, void *dst, const void *src, size_t width, size_t spitch, size_t rows) {
  if (!gpu) {
    for (size_t r = 0; r < rows; r++) memcpy((char *)dst + r * width, (const char *)src + r * spitch, width);
    return 1;
  }
#ifdef LLMK_WITH_CUDA
  return cudaMemcpy2D(dst, width, src, spitch, width, rows, cudaMemcpyDeviceToHost) == cudaSuccess;
#else
  return 0;
#endif
}
/* Free device memory (0 when unknown or on the CPU). */
size_t kvb_dev_free_bytes(int gpu) {
#ifdef LLMK_WITH_CUDA
  size_t f = 0, t = 0;
  if (gpu && cudaMemGetInfo(&f, &t) == cudaSuccess) return f;
  cudaGetLastError();
#else
  (void)gpu;
#endif
  return 0;
}
/* Repeats pattern (plen bytes) over n bytes of backend memory. */
static int kvb_mem_fill_pattern(int gpu, void *dst, size_t n, const void *pattern, size_t plen) {
  for (size_t off = 0; off < n; off += plen)
    if (!kvb_mem_h2d(gpu, (char *)dst + off, pattern, n - off < plen ? n - off : plen)) return 0;
  return 1;
}

/* ------------------------------------------------------------------------ */
/* Timing and the copy bandwidth                                             */
/* ------------------------------------------------------------------------ */

static int kvb_cmp_dbl(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The GPU: cli_time_op. The CPU: wall clock of single calls, median. */
llmk_status kvb_time_it(int gpu, cli_op_fn fn, void *ctx, int reps, int graph_calls, cli_timing *t) {
  if (gpu) return cli_time_op(fn, ctx, reps, graph_calls, t);
  t->median_us = t->graph_us = 0;
  llmk_status s = fn(ctx, NULL);
  double *us = malloc(sizeof(double) * (size_t)reps);
  if (!us) return LLMK_ERR_OUT_OF_MEMORY;
  for (int i = 0; i < reps && !s; i++) {
    const double t0 = cli_now_s();
    s = fn(ctx, NULL);
    us[i] = (cli_now_s() - t0) * 1e6;
  }
  if (!s) {
    qsort(us, (size_t)reps, sizeof *us, kvb_cmp_dbl);
    t->median_us = us[reps / 2];
  }
  free(us);
  return s;
}

#ifdef LLMK_WITH_CUDA
typedef struct copy_op {
  void *dst;
  const void *src;
  size_t n;
} copy_op;

static llmk_status kvb_run_copy(void *ctx, void *stream) {
  copy_op *c = ctx;
  return cudaMemcpyAsync(c->dst, c->src, c->n, cudaMemcpyDeviceToDevice, (cudaStream_t)stream) == cudaSuccess
             ? LLMK_SUCCESS
             : LLMK_ERR_CUDA;
}
#endif

/* Device-to-device copy of `bytes` (halved until it fits, down to 256 MiB),
 * timed as the attention calls are (graph replay of back-to-back copies,
 * events where capture fails): GB/s of bytes read + written. *used gets
 * the size copied. 0 on the CPU or on failure. */
double kvb_measure_copy(int gpu, size_t bytes, size_t *used) {
  *used = 0;
#ifdef LLMK_WITH_CUDA
  if (!gpu) return 0;
  for (; bytes >= 256 * MIB; bytes /= 2) {
    void *a = cli_dev_alloc(bytes), *b = a ? cli_dev_alloc(bytes) : NULL;
    if (!a || !b) {
      cli_dev_free(a);
      continue;
    }
    cudaMemset(a, 0x3c, bytes);
    copy_op c = {b, a, bytes};
    cli_timing t = {0, 0};
    const llmk_status s = cli_time_op(kvb_run_copy, &c, 10, 5, &t);
    cli_dev_free(a);
    cli_dev_free(b);
    if (s) return 0;
    const double us = t.graph_us > 0 ? t.graph_us : t.median_us;
    *used = bytes;
    return 2.0 * (double)bytes / (us * 1e-6) / 1e9;
  }
#else
  (void)gpu, (void)bytes;
#endif
  return 0;
}

/* The backend's handle: CUDA device 0, or the CPU with --cpu. */
int kvb_open_handle(const char *cmd, int use_cpu, llmk_handle *h) {
  if (use_cpu) {
    if (llmk_create_cpu(h)) return fprintf(stderr, "bench %s: %s\n", cmd, llmk_last_error()), 0;
    return 1;
  }
  int n = 0;
  llmk_cuda_device_count(&n);
  if (!n) {
    llmk_build_info b = LLMK_BUILD_INFO_INIT;
    llmk_get_build_info(&b);
    fprintf(stderr, "bench %s: needs a CUDA device (%s); --cpu times the CPU reference instead\n", cmd,
            b.has_cuda ? "none visible" : "this llmk was built without CUDA");
    return 0;
  }
  if (llmk_create_cuda(0, h)) return fprintf(stderr, "bench %s: %s\n", cmd, llmk_last_error()), 0;
  return 1;
}

void kvb_print_commit(void) {
  const char *c = getenv("LLMK_COMMIT");
  if (c && *c) printf(", \"commit\": \"%s\"", c);
}

/* ------------------------------------------------------------------------ */
/* KV caches                                                                 */
/* ------------------------------------------------------------------------ */


void kvb_geom_init(kv_geom *g, llmk_kv_format fmt, int64_t group, int64_t hkv, int64_t d, int64_t page,
               int64_t nseq, int64_t cap) {
  memset(g, 0, sizeof *g);
  g->fmt = fmt, g->group = group, g->hkv = hkv, g->d = d, g->page = page, g->nseq = nseq, g->cap = cap;
  g->e = fmt == LLMK_KV_INT4 ? d / 2 : d;
  g->row_bytes = fmt == LLMK_KV_BF16 ? 2 * d : fmt == LLMK_KV_INT4 ? d / 2 : d;
  g->param_bytes = fmt == LLMK_KV_FP8 ? 4 : fmt == LLMK_KV_INT4 ? 2 * (2 * d / group) : 0;
  if (page) {
    g->max_pages = (cap + page - 1) / page;
    g->bt_ld = (g->max_pages + 3) / 4 * 4; /* rows 16-byte aligned */
    g->s0 = nseq * g->max_pages, g->s1 = page;
  } else {
    g->s0 = nseq, g->s1 = cap;
  }
}
size_t kvb_geom_data_bytes(const kv_geom *g) { return (size_t)(g->s0 * g->s1 * g->hkv * g->row_bytes); }
size_t kvb_geom_param_bytes(const kv_geom *g) {
  return g->fmt == LLMK_KV_FP8_TENSOR ? 4 : (size_t)(g->s0 * g->s1 * g->hkv * g->param_bytes);
}
/* Bytes of K and V (data and parameters) of `tokens` positions. */
double kvb_kv_bytes_of(const kv_geom *g, double tokens) {
  return 2.0 * tokens * (double)g->hkv * (double)(g->row_bytes + g->param_bytes) +
         (g->fmt == LLMK_KV_FP8_TENSOR ? 8.0 : 0.0);
}


void kvb_store_free(int gpu, kv_store *s) {
  kvb_mem_free(gpu, s->k), kvb_mem_free(gpu, s->v), kvb_mem_free(gpu, s->kp), kvb_mem_free(gpu, s->vp);
  memset(s, 0, sizeof *s);
}
int kvb_store_alloc(int gpu, const kv_geom *g, kv_store *s) {
  memset(s, 0, sizeof *s);
  const size_t db = kvb_geom_data_bytes(g), pb = kvb_geom_param_bytes(g);
  s->k = kvb_mem_alloc(gpu, db), s->v = kvb_mem_alloc(gpu, db);
  if (pb) s->kp = kvb_mem_alloc(gpu, pb), s->vp = kvb_mem_alloc(gpu, pb);
  if (!s->k || !s->v || (pb && (!s->kp || !s->vp))) {
    kvb_store_free(gpu, s);
    return 0;
  }
  return 1;
}
int kvb_store_copy(int gpu, const kv_geom *g, kv_store *dst, const kv_store *src) {
  const size_t db = kvb_geom_data_bytes(g), pb = kvb_geom_param_bytes(g);
  return kvb_mem_d2d(gpu, dst->k, src->k, db) && kvb_mem_d2d(gpu, dst->v, src->v, db) &&
         (!pb || (kvb_mem_d2d(gpu, dst->kp, src->kp, pb) && kvb_mem_d2d(gpu, dst->vp, src->vp, pb)));
}

/* FP8_TENSOR: the scale of all of K and of all of V. */
static const float kvb_TENSOR_SCALE = 0.01f;

int kvb_store_set_tensor_scale(int gpu, const kv_geom *g, kv_store *s) {
  if (g->fmt != LLMK_KV_FP8_TENSOR) return 1;
  return kvb_mem_h2d(gpu, s->kp, &kvb_TENSOR_SCALE, 4) && kvb_mem_h2d(gpu, s->vp, &kvb_TENSOR_SCALE, 4);
}

llmk_kv_cache kvb_make_cache(const kv_geom *g, const kv_store *s, void *bt) {
  llmk_kv_cache c = LLMK_KV_CACHE_INIT;
  c.format = g->fmt;
  c.int4_group = g->fmt == LLMK_KV_INT4 ? (int32_t)g->group : 0;
  const llmk_dtype dt = g->fmt == LLMK_KV_BF16 ? LLMK_BF16 : g->fmt == LLMK_KV_INT4 ? LLMK_U8 : LLMK_E4M3;
  c.k = llmk_tensor_4d(s->k, dt, g->s0, g->s1, g->hkv, g->e);
  c.v = llmk_tensor_4d(s->v, dt, g->s0, g->s1, g->hkv, g->e);
  if (g->fmt == LLMK_KV_FP8) {
    c.k_param = llmk_tensor_3d(s->kp, LLMK_F32, g->s0, g->s1, g->hkv);
    c.v_param = llmk_tensor_3d(s->vp, LLMK_F32, g->s0, g->s1, g->hkv);
  } else if (g->fmt == LLMK_KV_FP8_TENSOR) {
    c.k_param = llmk_tensor_1d(s->kp, LLMK_F32, 1);
    c.v_param = llmk_tensor_1d(s->vp, LLMK_F32, 1);
  } else if (g->fmt == LLMK_KV_INT4) {
    c.k_param = llmk_tensor_4d(s->kp, LLMK_F16, g->s0, g->s1, g->hkv, 2 * g->d / g->group);
    c.v_param = llmk_tensor_4d(s->vp, LLMK_F16, g->s0, g->s1, g->hkv, 2 * g->d / g->group);
  }
  if (g->page) c.block_table = llmk_tensor_2d(bt, LLMK_I32, g->nseq, g->max_pages, g->bt_ld);
  return c;
}

/* Host block table: every page used once, in a shuffled (seeded) order, as
 * an engine's allocator leaves them after a while. */
int32_t *kvb_make_block_table(const kv_geom *g, uint64_t seed) {
  const int64_t np = g->s0;
  int32_t *perm = malloc(sizeof(int32_t) * (size_t)np), *bt = calloc((size_t)(g->nseq * g->bt_ld), sizeof(int32_t));
  if (!perm || !bt) {
    free(perm), free(bt);
    return NULL;
  }
  for (int64_t i = 0; i < np; i++) perm[i] = (int32_t)i;
  uint64_t s = seed | 1;
  for (int64_t i = np - 1; i > 0; i--) {
    const int64_t j = (int64_t)(cli_rng_next(&s) % (uint64_t)(i + 1));
    const int32_t x = perm[i];
    perm[i] = perm[j], perm[j] = x;
  }
  for (int64_t b = 0; b < g->nseq; b++)
    for (int64_t p = 0; p < g->max_pages; p++) bt[b * g->bt_ld + p] = perm[b * g->max_pages + p];
  free(perm);
  return bt;
}

/* Fills positions 0 .. len - 1 of every sequence through
 * llmk_kv_cache_write, from a pool of random bf16 K and V rows: each call
 * writes n positions of every sequence (offsets [nseq + 1], start_pos the
 * same for all). */
int kvb_fill_by_write(llmk_handle h, int gpu, const kv_geom *g, const llmk_kv_cache *c, int64_t len,
                  uint64_t seed) {
  const int64_t nseq = g->nseq, per = (int64_t)32768 / nseq;
  const int64_t n = per < 1 ? 1 : per > len ? len : per, rows = nseq * n, elems = rows * g->hkv * g->d;
  uint16_t *hk = malloc((size_t)elems * 2), *hv = malloc((size_t)elems * 2);
  int32_t *ho = malloc(sizeof(int32_t) * (size_t)(nseq + 1)), *hs = malloc(sizeof(int32_t) * (size_t)nseq);
  void *dk = kvb_mem_alloc(gpu, (size_t)elems * 2), *dv = kvb_mem_alloc(gpu, (size_t)elems * 2);
  void *doff = kvb_mem_alloc(gpu, sizeof(int32_t) * (size_t)(nseq + 1)), *dst = kvb_mem_alloc(gpu, sizeof(int32_t) * (size_t)nseq);
  int ok = hk && hv && ho && hs && dk && dv && doff && dst;
  if (ok) {
    cli_fill_random(hk, LLMK_BF16, elems, 1.0f, 0.0, seed);
    cli_fill_random(hv, LLMK_BF16, elems, 1.0f, 0.0, seed + 1);
    ok = kvb_mem_h2d(gpu, dk, hk, (size_t)elems * 2) && kvb_mem_h2d(gpu, dv, hv, (size_t)elems * 2);
  }
  for (int64_t t0 = 0; ok && t0 < len; t0 += n) {
    const int64_t m = len - t0 < n ? len - t0 : n;
    for (int64_t b = 0; b <= nseq; b++) ho[b] = (int32_t)(b * m);
    for (int64_t b = 0; b < nseq; b++) hs[b] = (int32_t)t0;
    ok = kvb_mem_h2d(gpu, doff, ho, sizeof(int32_t) * (size_t)(nseq + 1)) && kvb_mem_h2d(gpu, dst, hs, sizeof(int32_t) * (size_t)nseq);
    if (!ok) break;
    const llmk_tensor k = llmk_tensor_3d(dk, LLMK_BF16, nseq * m, g->hkv, g->d), v = llmk_tensor_3d(dv, LLMK_BF16, nseq * m, g->hkv, g->d);
    llmk_kv_loc loc = LLMK_KV_LOC_INIT;
    loc.offsets = llmk_tensor_1d(doff, LLMK_I32, nseq + 1);
    loc.start_pos = llmk_tensor_1d(dst, LLMK_I32, nseq);
    const llmk_status s = llmk_kv_cache_write(h, c, &k, &v, &loc, NULL);
    if (s) {
      fprintf(stderr, "bench: filling the cache: llmk_kv_cache_write: %s (%s); --fill random avoids it\n",
              llmk_status_string(s), llmk_last_error());
      ok = 0;
    }
  }
  /* the next host copy orders after the writes (legacy default stream) */
  free(hk), free(hv), free(ho), free(hs);
  kvb_mem_free(gpu, dk), kvb_mem_free(gpu, dv), kvb_mem_free(gpu, doff), kvb_mem_free(gpu, dst);
  return ok;
}

/* Fills the whole storage with random codes of N(0, 1)-like values and
 * fixed parameters (FP8: scale 0.01 for codes of 100 x N(0, 1); INT4:
 * scale 2/15, shift -1), a 16 MiB pattern repeated. */
int kvb_fill_random(int gpu, const kv_geom *g, kv_store *s, uint64_t seed) {
  const size_t db = kvb_geom_data_bytes(g), plen = db < 16 * MIB ? db : 16 * MIB;
  uint8_t *pat = malloc(plen);
  if (!pat) return 0;
  uint64_t r = seed | 1;
  if (g->fmt == LLMK_KV_BF16) {
    cli_fill_random(pat, LLMK_BF16, (int64_t)(plen / 2), 1.0f, 0.0, seed);
  } else if (g->fmt == LLMK_KV_INT4) {
    for (size_t i = 0; i < plen; i++) pat[i] = (uint8_t)(cli_rng_next(&r) >> 56);
  } else {
    uint8_t table[1024];
    for (int i = 0; i < 1024; i++) {
      const double u1 = ((cli_rng_next(&r) >> 11) + 1) * 0x1.0p-53, u2 = (cli_rng_next(&r) >> 11) * 0x1.0p-53;
      table[i] = llmk_float_to_fp8((float)(100.0 * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2)), LLMK_E4M3);
    }
    for (size_t i = 0; i < plen; i++) pat[i] = table[cli_rng_next(&r) >> 54];
  }
  int ok = kvb_mem_fill_pattern(gpu, s->k, db, pat, plen) && kvb_mem_fill_pattern(gpu, s->v, db, pat + plen / 2, plen / 2);
  free(pat);
  if (!ok) return 0;
  if (g->fmt == LLMK_KV_FP8) {
    float p[1024];
    for (int i = 0; i < 1024; i++) p[i] = 0.01f;
    ok = kvb_mem_fill_pattern(gpu, s->kp, kvb_geom_param_bytes(g), p, sizeof p) &&
         kvb_mem_fill_pattern(gpu, s->vp, kvb_geom_param_bytes(g), p, sizeof p);
  } else if (g->fmt == LLMK_KV_INT4) {
    uint16_t p[1024];
    for (int i = 0; i < 1024; i += 2) p[i] = llmk_float_to_f16(2.0f / 15.0f), p[i + 1] = llmk_float_to_f16(-1.0f);
    ok = kvb_mem_fill_pattern(gpu, s->kp, kvb_geom_param_bytes(g), p, sizeof p) &&
         kvb_mem_fill_pattern(gpu, s->vp, kvb_geom_param_bytes(g), p, sizeof p);
  } else if (g->fmt == LLMK_KV_FP8_TENSOR) {
    ok = kvb_store_set_tensor_scale(gpu, g, s);
  }
  return ok;
}

/* Positions t0 .. t0 + n - 1 of sequence b, KV heads h0 .. h0 + nh - 1, of
 * one storage tensor whose token-heads hold `per` bytes each, to the host
 * (packed [n, nh, per]). bt: the host block table (paged). */
int kvb_gather_rows(int gpu, const kv_geom *g, const void *base, int64_t per, const int32_t *bt, int64_t b,
                int64_t t0, int64_t n, int64_t h0, int64_t nh, void *dst) {
  const size_t width = (size_t)(nh * per), pitch = (size_t)(g->hkv * per);
  for (int64_t t = t0; t < t0 + n;) {
    int64_t s0, s1, run;
    if (g->page) {
      s0 = bt[b * g->bt_ld + t / g->page], s1 = t % g->page;
      run = g->page - s1;
    } else {
      s0 = b, s1 = t, run = t0 + n - t;
    }
    if (run > t0 + n - t) run = t0 + n - t;
    const char *src = (const char *)base + ((s0 * g->s1 + s1) * g->hkv + h0) * per;
    if (!kvb_mem_rows_d2h(gpu, (char *)dst + (size_t)(t - t0) * width, src, width, pitch, (size_t)run)) return 0;
    t += run;
  }
  return 1;
}
