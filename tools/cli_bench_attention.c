/* `llmk bench attention | rope | kvcache`: decode attention over a KV cache
 * (llmk_attention_decode), rotary embeddings (llmk_rope) and the fused
 * prefill write (llmk_rope_qkv_write).
 *
 * attention: for each shape (B sequences, all of length T, max_seq_len = T)
 * a cache of the chosen format and layout is built on the GPU and filled
 * through llmk_kv_cache_write from random bf16 K and V (or with random
 * codes and fixed parameters: --fill random; the timing does not depend on
 * the values). One call is checked against the CPU reference (one KV head
 * of the last sequence). The call is then timed with cli_time_op: CUDA
 * events around single calls with L2 flushed (llmk_us, median) and replay of
 * a CUDA graph of back-to-back calls (llmk_us_graph, median of 7 replays)
 * that rotate among copies of the cache totalling >= 256 MiB, so no
 * captured call finds its cache in L2 (as in a model, whose every layer has
 * its own cache). bench/peer_attention.py times torch SDPA the same way.
 * Bytes read = K and V data and parameters of B T positions (+ q, out, the
 * block table); GB/s uses the graph time, and frac_copy compares it with a
 * device-to-device copy of max(1 GiB, the largest cache of the run) timed
 * the same way (graph replay, bytes read + written) in the same process.
 *
 * rope, kvcache: llmk_rope over [T, H, D], and llmk_rope_qkv_write of T new
 * tokens (one sequence or several) into a cache; bytes moved over the
 * events median (L2 flushed), against the same copy bandwidth. kvcache
 * checks the first rows bit for bit against the CPU backend. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

int cli_bench_attention(int argc, char **argv);
int cli_bench_rope(int argc, char **argv);
int cli_bench_kvcache(int argc, char **argv);

#define MIB ((size_t)1 << 20)
#define ROTATE_BYTES (256 * MIB) /* graph replay: cache copies totalling at least this */
#define MAX_COPIES 256
#define MAX_SHAPES 64

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

/* Every argument after the subcommand must be a known option; `valued`
 * options take the next argument. Returns 0 and prints why otherwise. */
static int check_options(const char *cmd, int argc, char **argv, const char *const *valued,
                         const char *const *flags) {
  for (int i = 1; i < argc; i++) {
    int known = 0;
    for (const char *const *v = valued; *v && !known; v++)
      if (!strcmp(argv[i], *v)) {
        if (i + 1 >= argc) {
          fprintf(stderr, "bench %s: %s needs a value\n", cmd, argv[i]);
          return 0;
        }
        i++, known = 1;
      }
    for (const char *const *f = flags; *f && !known; f++) known = !strcmp(argv[i], *f);
    if (!known) {
      fprintf(stderr, "bench %s: unknown option '%s' (llmk bench %s --help)\n", cmd, argv[i], cmd);
      return 0;
    }
  }
  return 1;
}

/* A whole decimal or 0x number, or def when absent; *ok = 0 if malformed. */
static int64_t opt_int(int argc, char **argv, const char *name, int64_t def, int *ok) {
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

static int parse_format(const char *s, llmk_kv_format *f) {
  for (size_t i = 0; i < sizeof FORMATS / sizeof FORMATS[0]; i++)
    if (!strcmp(s, FORMATS[i].name)) return *f = FORMATS[i].f, 1;
  return 0;
}
static const char *format_name(llmk_kv_format f) {
  for (size_t i = 0; i < sizeof FORMATS / sizeof FORMATS[0]; i++)
    if (FORMATS[i].f == f) return FORMATS[i].name;
  return "?";
}

/* Cache format, group and page size: checked as llmk.h states them. */
static int check_cache_opts(const char *cmd, llmk_kv_format fmt, int64_t hq, int64_t hkv, int64_t d,
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

static void *mem_alloc(int gpu, size_t n) {
  n = (n + 255) / 256 * 256;
  if (!n) n = 256;
  return gpu ? cli_dev_alloc(n) : aligned_alloc(256, n);
}
static void mem_free(int gpu, void *p) {
  if (!p) return;
  if (gpu) cli_dev_free(p);
  else free(p);
}
static int mem_h2d(int gpu, void *d, const void *s, size_t n) {
  if (gpu) return cli_h2d(d, s, n);
  memcpy(d, s, n);
  return 1;
}
static int mem_d2h(int gpu, void *d, const void *s, size_t n) {
  if (gpu) return cli_d2h(d, s, n);
  memcpy(d, s, n);
  return 1;
}
static int mem_d2d(int gpu, void *d, const void *s, size_t n) {
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
static int mem_rows_d2h(int gpu, void *dst, const void *src, size_t width, size_t spitch, size_t rows) {
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
static size_t dev_free_bytes(int gpu) {
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
static int mem_fill_pattern(int gpu, void *dst, size_t n, const void *pattern, size_t plen) {
  for (size_t off = 0; off < n; off += plen)
    if (!mem_h2d(gpu, (char *)dst + off, pattern, n - off < plen ? n - off : plen)) return 0;
  return 1;
}

/* ------------------------------------------------------------------------ */
/* Timing and the copy bandwidth                                             */
/* ------------------------------------------------------------------------ */

static int cmp_dbl(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The GPU: cli_time_op. The CPU: wall clock of single calls, median. */
static llmk_status time_it(int gpu, cli_op_fn fn, void *ctx, int reps, int graph_calls, cli_timing *t) {
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
    qsort(us, (size_t)reps, sizeof *us, cmp_dbl);
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

static llmk_status run_copy(void *ctx, void *stream) {
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
static double measure_copy(int gpu, size_t bytes, size_t *used) {
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
    const llmk_status s = cli_time_op(run_copy, &c, 10, 5, &t);
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
static int open_handle(const char *cmd, int use_cpu, llmk_handle *h) {
  if (use_cpu) {
    if (llmk_create_cpu(h)) return fprintf(stderr, "bench %s: %s\n", cmd, llmk_last_error()), 0;
    return 1;
  }
  int n = 0;
  llmk_cuda_device_count(&n);
  if (!n) {
    llmk_build_info b;
    llmk_get_build_info(&b);
    fprintf(stderr, "bench %s: needs a CUDA device (%s); --cpu times the CPU reference instead\n", cmd,
            b.has_cuda ? "none visible" : "this llmk was built without CUDA");
    return 0;
  }
  if (llmk_create_cuda(h, 0)) return fprintf(stderr, "bench %s: %s\n", cmd, llmk_last_error()), 0;
  return 1;
}

static void print_commit(void) {
  const char *c = getenv("LLMK_COMMIT");
  if (c && *c) printf(", \"commit\": \"%s\"", c);
}

/* ------------------------------------------------------------------------ */
/* KV caches                                                                 */
/* ------------------------------------------------------------------------ */

/* Geometry of a cache of nseq sequences of capacity cap positions. */
typedef struct kv_geom {
  llmk_kv_format fmt;
  int64_t group;                 /* INT4: G */
  int64_t hkv, d, e;             /* e: storage elements per token-head */
  int64_t page;                  /* 0: contiguous */
  int64_t nseq, cap;
  int64_t s0, s1;                /* storage [s0, s1, hkv, e] */
  int64_t max_pages, bt_ld;      /* paged: block table [nseq, max_pages], row pitch bt_ld */
  int64_t row_bytes, param_bytes; /* per token-head (FP8_TENSOR: 0, its [1] aside) */
} kv_geom;

static void geom_init(kv_geom *g, llmk_kv_format fmt, int64_t group, int64_t hkv, int64_t d, int64_t page,
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
static size_t geom_data_bytes(const kv_geom *g) { return (size_t)(g->s0 * g->s1 * g->hkv * g->row_bytes); }
static size_t geom_param_bytes(const kv_geom *g) {
  return g->fmt == LLMK_KV_FP8_TENSOR ? 4 : (size_t)(g->s0 * g->s1 * g->hkv * g->param_bytes);
}
/* Bytes of K and V (data and parameters) of `tokens` positions. */
static double kv_bytes_of(const kv_geom *g, double tokens) {
  return 2.0 * tokens * (double)g->hkv * (double)(g->row_bytes + g->param_bytes) +
         (g->fmt == LLMK_KV_FP8_TENSOR ? 8.0 : 0.0);
}

typedef struct kv_store {
  void *k, *v, *kp, *vp;
} kv_store;

static void store_free(int gpu, kv_store *s) {
  mem_free(gpu, s->k), mem_free(gpu, s->v), mem_free(gpu, s->kp), mem_free(gpu, s->vp);
  memset(s, 0, sizeof *s);
}
static int store_alloc(int gpu, const kv_geom *g, kv_store *s) {
  memset(s, 0, sizeof *s);
  const size_t db = geom_data_bytes(g), pb = geom_param_bytes(g);
  s->k = mem_alloc(gpu, db), s->v = mem_alloc(gpu, db);
  if (pb) s->kp = mem_alloc(gpu, pb), s->vp = mem_alloc(gpu, pb);
  if (!s->k || !s->v || (pb && (!s->kp || !s->vp))) {
    store_free(gpu, s);
    return 0;
  }
  return 1;
}
static int store_copy(int gpu, const kv_geom *g, kv_store *dst, const kv_store *src) {
  const size_t db = geom_data_bytes(g), pb = geom_param_bytes(g);
  return mem_d2d(gpu, dst->k, src->k, db) && mem_d2d(gpu, dst->v, src->v, db) &&
         (!pb || (mem_d2d(gpu, dst->kp, src->kp, pb) && mem_d2d(gpu, dst->vp, src->vp, pb)));
}

/* FP8_TENSOR: the scale of all of K and of all of V. */
static const float TENSOR_SCALE = 0.01f;

static int store_set_tensor_scale(int gpu, const kv_geom *g, kv_store *s) {
  if (g->fmt != LLMK_KV_FP8_TENSOR) return 1;
  return mem_h2d(gpu, s->kp, &TENSOR_SCALE, 4) && mem_h2d(gpu, s->vp, &TENSOR_SCALE, 4);
}

static llmk_kv_cache make_cache(const kv_geom *g, const kv_store *s, void *bt) {
  llmk_kv_cache c;
  memset(&c, 0, sizeof c);
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
static int32_t *make_block_table(const kv_geom *g, uint64_t seed) {
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
static int fill_by_write(llmk_handle h, int gpu, const kv_geom *g, const llmk_kv_cache *c, int64_t len,
                         uint64_t seed) {
  const int64_t nseq = g->nseq, per = (int64_t)32768 / nseq;
  const int64_t n = per < 1 ? 1 : per > len ? len : per, rows = nseq * n, elems = rows * g->hkv * g->d;
  uint16_t *hk = malloc((size_t)elems * 2), *hv = malloc((size_t)elems * 2);
  int32_t *ho = malloc(sizeof(int32_t) * (size_t)(nseq + 1)), *hs = malloc(sizeof(int32_t) * (size_t)nseq);
  void *dk = mem_alloc(gpu, (size_t)elems * 2), *dv = mem_alloc(gpu, (size_t)elems * 2);
  void *doff = mem_alloc(gpu, sizeof(int32_t) * (size_t)(nseq + 1)), *dst = mem_alloc(gpu, sizeof(int32_t) * (size_t)nseq);
  int ok = hk && hv && ho && hs && dk && dv && doff && dst;
  if (ok) {
    cli_fill_random(hk, LLMK_BF16, elems, 1.0f, 0.0, seed);
    cli_fill_random(hv, LLMK_BF16, elems, 1.0f, 0.0, seed + 1);
    ok = mem_h2d(gpu, dk, hk, (size_t)elems * 2) && mem_h2d(gpu, dv, hv, (size_t)elems * 2);
  }
  for (int64_t t0 = 0; ok && t0 < len; t0 += n) {
    const int64_t m = len - t0 < n ? len - t0 : n;
    for (int64_t b = 0; b <= nseq; b++) ho[b] = (int32_t)(b * m);
    for (int64_t b = 0; b < nseq; b++) hs[b] = (int32_t)t0;
    ok = mem_h2d(gpu, doff, ho, sizeof(int32_t) * (size_t)(nseq + 1)) && mem_h2d(gpu, dst, hs, sizeof(int32_t) * (size_t)nseq);
    if (!ok) break;
    const llmk_tensor k = llmk_tensor_3d(dk, LLMK_BF16, nseq * m, g->hkv, g->d), v = llmk_tensor_3d(dv, LLMK_BF16, nseq * m, g->hkv, g->d);
    llmk_kv_loc loc;
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
  mem_free(gpu, dk), mem_free(gpu, dv), mem_free(gpu, doff), mem_free(gpu, dst);
  return ok;
}

/* Fills the whole storage with random codes of N(0, 1)-like values and
 * fixed parameters (FP8: scale 0.01 for codes of 100 x N(0, 1); INT4:
 * scale 2/15, shift -1), a 16 MiB pattern repeated. */
static int fill_random(int gpu, const kv_geom *g, kv_store *s, uint64_t seed) {
  const size_t db = geom_data_bytes(g), plen = db < 16 * MIB ? db : 16 * MIB;
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
  int ok = mem_fill_pattern(gpu, s->k, db, pat, plen) && mem_fill_pattern(gpu, s->v, db, pat + plen / 2, plen / 2);
  free(pat);
  if (!ok) return 0;
  if (g->fmt == LLMK_KV_FP8) {
    float p[1024];
    for (int i = 0; i < 1024; i++) p[i] = 0.01f;
    ok = mem_fill_pattern(gpu, s->kp, geom_param_bytes(g), p, sizeof p) &&
         mem_fill_pattern(gpu, s->vp, geom_param_bytes(g), p, sizeof p);
  } else if (g->fmt == LLMK_KV_INT4) {
    uint16_t p[1024];
    for (int i = 0; i < 1024; i += 2) p[i] = llmk_float_to_f16(2.0f / 15.0f), p[i + 1] = llmk_float_to_f16(-1.0f);
    ok = mem_fill_pattern(gpu, s->kp, geom_param_bytes(g), p, sizeof p) &&
         mem_fill_pattern(gpu, s->vp, geom_param_bytes(g), p, sizeof p);
  } else if (g->fmt == LLMK_KV_FP8_TENSOR) {
    ok = store_set_tensor_scale(gpu, g, s);
  }
  return ok;
}

/* Positions t0 .. t0 + n - 1 of sequence b, KV heads h0 .. h0 + nh - 1, of
 * one storage tensor whose token-heads hold `per` bytes each, to the host
 * (packed [n, nh, per]). bt: the host block table (paged). */
static int gather_rows(int gpu, const kv_geom *g, const void *base, int64_t per, const int32_t *bt, int64_t b,
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
    if (!mem_rows_d2h(gpu, (char *)dst + (size_t)(t - t0) * width, src, width, pitch, (size_t)run)) return 0;
    t += run;
  }
  return 1;
}

/* ------------------------------------------------------------------------ */
/* bench attention                                                           */
/* ------------------------------------------------------------------------ */

static void attention_usage(FILE *f) {
  fprintf(f,
          "usage: llmk bench attention [--b B --t T | --shapes B:T,B:T,... | --sweep]\n"
          "                            [--hq 64] [--hkv 8] [--d 128] [--format bf16|fp8|fp8_tensor|int4]\n"
          "                            [--group 32|128] [--page-size 0|16|32|64|...] [--splits N]\n"
          "                            [--fill write|random] [--check 0|1] [--reps N] [--graph-calls N]\n"
          "                            [--list] [--cpu] [--json]\n"
          "  Times llmk_attention_decode over a cache of B sequences of T positions (max_seq_len T):\n"
          "  CUDA events with L2 flushed (us) and CUDA-graph replay rotating among cache copies\n"
          "  totalling >= 256 MiB (graph us); GB/s of K/V data + parameters read, and the fraction of a\n"
          "  device copy of max(1 GiB, the largest cache) timed the same way in the same run.\n"
          "  --sweep: B in {1, 8, 32} x T in {1024, 8192, 32768}, and B:T 1:131072, 1:262144, 8:131072\n"
          "           (Llama-3-70B heads: Hq 64, Hkv 8, D 128).\n"
          "  --splits 0 lets llmk choose the KV split; --check 1 (default) compares one KV head of the\n"
          "  last sequence with the CPU reference; --list prints the shapes and bytes without a GPU.\n");
}

typedef struct attn_op {
  llmk_handle h;
  llmk_attn_desc desc;
  llmk_tensor q, seq_lens, out;
  llmk_kv_cache *caches; /* n copies; calls rotate among them */
  int n, next;
} attn_op;

static llmk_status run_attn(void *ctx, void *stream) {
  attn_op *o = ctx;
  const llmk_kv_cache *c = &o->caches[o->next++ % o->n];
  return llmk_attention_decode(o->h, &o->desc, &o->q, c, &o->seq_lens, &o->out, NULL, stream);
}

typedef struct attn_cfg {
  int64_t hq, hkv, d, group, page;
  llmk_kv_format fmt;
  int splits, reps, graph_calls, check, json, gpu, random_fill;
} attn_cfg;

/* One KV head (the last) of the last sequence against the CPU backend: a
 * one-head contiguous copy of its cache and the query heads of its group. */
static int check_attention(const attn_cfg *a, const kv_geom *g, const kv_store *st, const int32_t *hbt,
                           const uint16_t *hq, const attn_op *o, int64_t B, int64_t T, double *err) {
  const int64_t b = B - 1, h = a->hkv - 1, gq = a->hq / a->hkv, D = a->d;
  *err = 0;
  kv_geom g1;
  geom_init(&g1, g->fmt, g->group, 1, D, 0, 1, T);
  kv_store hs;
  if (!store_alloc(0, &g1, &hs)) return 0;
  uint16_t *gout = malloc((size_t)(B * a->hq * D) * 2), *cout = malloc((size_t)(gq * D) * 2);
  llmk_handle cpu = NULL;
  int ok = gout && cout && !llmk_create_cpu(&cpu);
  ok = ok && gather_rows(a->gpu, g, st->k, g->row_bytes, hbt, b, 0, T, h, 1, hs.k) &&
       gather_rows(a->gpu, g, st->v, g->row_bytes, hbt, b, 0, T, h, 1, hs.v);
  if (ok && g->fmt == LLMK_KV_FP8_TENSOR)
    ok = mem_d2h(a->gpu, hs.kp, st->kp, 4) && mem_d2h(a->gpu, hs.vp, st->vp, 4);
  else if (ok && g->param_bytes)
    ok = gather_rows(a->gpu, g, st->kp, g->param_bytes, hbt, b, 0, T, h, 1, hs.kp) &&
         gather_rows(a->gpu, g, st->vp, g->param_bytes, hbt, b, 0, T, h, 1, hs.vp);
  ok = ok && mem_d2h(a->gpu, gout, o->out.data, (size_t)(B * a->hq * D) * 2);
  if (ok) {
    const llmk_kv_cache c = make_cache(&g1, &hs, NULL);
    int32_t len = (int32_t)T;
    const llmk_tensor q = llmk_tensor_3d((void *)(hq + (b * a->hq + h * gq) * D), LLMK_BF16, 1, gq, D);
    const llmk_tensor out = llmk_tensor_3d(cout, LLMK_BF16, 1, gq, D), sl = llmk_tensor_1d(&len, LLMK_I32, 1);
    const llmk_status s = llmk_attention_decode(cpu, &o->desc, &q, &c, &sl, &out, NULL, NULL);
    if (s) {
      fprintf(stderr, "bench attention: CPU reference: %s (%s)\n", llmk_status_string(s), llmk_last_error());
      ok = 0;
    }
  }
  if (ok) {
    /* per element within 2e-2 |ref| + 2e-2 rms(ref), NaN only where the
     * reference has one; relative Frobenius error below 1e-2 */
    const uint16_t *got = gout + (b * a->hq + h * gq) * D;
    double num = 0, den = 0;
    for (int64_t i = 0; i < gq * D; i++) den += (double)llmk_bf16_to_float(cout[i]) * llmk_bf16_to_float(cout[i]);
    const double rms = sqrt(den / (double)(gq * D));
    for (int64_t i = 0; i < gq * D; i++) {
      const double x = llmk_bf16_to_float(got[i]), r = llmk_bf16_to_float(cout[i]);
      if ((x != x) != (r != r) || fabs(x - r) > 2e-2 * fabs(r) + 2e-2 * rms) ok = 0;
      if (x == x && r == r) num += (x - r) * (x - r);
    }
    *err = den > 0 ? sqrt(num / den) : sqrt(num);
    if (!(*err < 1e-2)) ok = 0;
  }
  llmk_destroy(cpu);
  free(gout), free(cout);
  store_free(0, &hs);
  return ok;
}

typedef struct attn_result {
  double us, graph_us, kv_bytes, bytes, gbps, err;
  int copies, graph_calls, checked; /* checked: 1 passed, 0 failed, -1 not checked */
} attn_result;

/* 0: done; 1: failed; 2: skipped (does not fit). */
static int bench_attention_shape(llmk_handle h, const attn_cfg *a, int64_t B, int64_t T, attn_result *r) {
  const int gpu = a->gpu;
  memset(r, 0, sizeof *r);
  r->checked = -1;
  kv_geom g;
  geom_init(&g, a->fmt, a->group, a->hkv, a->d, a->page, B, T);
  const size_t one = geom_data_bytes(&g) * 2 + geom_param_bytes(&g) * 2;
  r->kv_bytes = kv_bytes_of(&g, (double)(B * T));
  const double qo = 2.0 * (double)(B * a->hq * a->d) * 2.0, btb = g.page ? 4.0 * (double)(B * g.max_pages) : 0.0;
  r->bytes = r->kv_bytes + qo + btb + 4.0 * (double)B;
  int copies = 1;
  if (gpu && a->graph_calls > 0) {
    copies = (int)((ROTATE_BYTES + one - 1) / one);
    if (copies > MAX_COPIES) copies = MAX_COPIES;
    if (copies < 1) copies = 1;
  }
  const size_t free_b = dev_free_bytes(gpu), need = one * (size_t)copies + 2 * 256 * MIB + 256 * MIB;
  if (gpu && free_b && need > free_b) {
    fprintf(stderr, "bench attention: B=%lld T=%lld %s needs about %.1f GiB, %.1f GiB free: skipped\n", (long long)B,
            (long long)T, format_name(a->fmt), need / 1073741824.0, free_b / 1073741824.0);
    return 2;
  }
  kv_store st[MAX_COPIES];
  llmk_kv_cache caches[MAX_COPIES];
  memset(st, 0, sizeof st);
  int32_t *hbt = NULL, *hlen = malloc(sizeof(int32_t) * (size_t)B);
  uint16_t *hq = malloc((size_t)(B * a->hq * a->d) * 2);
  void *dbt = NULL, *dq = mem_alloc(gpu, (size_t)(B * a->hq * a->d) * 2);
  void *dout = mem_alloc(gpu, (size_t)(B * a->hq * a->d) * 2), *dlen = mem_alloc(gpu, sizeof(int32_t) * (size_t)B);
  int rc = 1, ok = hlen && hq && dq && dout && dlen && store_alloc(gpu, &g, &st[0]);
  if (ok && g.page) {
    ok = (hbt = make_block_table(&g, 1234 + (uint64_t)B)) != NULL &&
         (dbt = mem_alloc(gpu, sizeof(int32_t) * (size_t)(B * g.bt_ld))) != NULL &&
         mem_h2d(gpu, dbt, hbt, sizeof(int32_t) * (size_t)(B * g.bt_ld));
  }
  if (!ok) fprintf(stderr, "bench attention: allocation failed for B=%lld T=%lld\n", (long long)B, (long long)T);
  attn_op o;
  memset(&o, 0, sizeof o);
  o.h = h;
  o.desc.softmax_scale = (float)(1.0 / sqrt((double)a->d));
  o.desc.max_seq_len = T;
  o.desc.num_splits = a->splits;
  o.caches = caches;
  o.n = 1;
  if (ok) {
    for (int64_t i = 0; i < B; i++) hlen[i] = (int32_t)T;
    cli_fill_random(hq, LLMK_BF16, B * a->hq * a->d, 1.0f, 0.0, 77 + (uint64_t)B);
    ok = mem_h2d(gpu, dq, hq, (size_t)(B * a->hq * a->d) * 2) && mem_h2d(gpu, dlen, hlen, sizeof(int32_t) * (size_t)B) &&
         store_set_tensor_scale(gpu, &g, &st[0]);
    caches[0] = make_cache(&g, &st[0], dbt);
    o.q = llmk_tensor_3d(dq, LLMK_BF16, B, a->hq, a->d);
    o.out = llmk_tensor_3d(dout, LLMK_BF16, B, a->hq, a->d);
    o.seq_lens = llmk_tensor_1d(dlen, LLMK_I32, B);
  }
  if (ok) ok = a->random_fill ? fill_random(gpu, &g, &st[0], 99 + (uint64_t)(B * 7 + T))
                              : fill_by_write(h, gpu, &g, &caches[0], T, 99 + (uint64_t)(B * 7 + T));
  if (ok) {
    const llmk_status s = run_attn(&o, NULL);
    if (s) {
      fprintf(stderr, "bench attention: %s (%s)\n", llmk_status_string(s), llmk_last_error());
      ok = 0;
    }
  }
  if (ok && a->check) {
    r->checked = check_attention(a, &g, &st[0], hbt, hq, &o, B, T, &r->err);
    if (!r->checked)
      fprintf(stderr, "bench attention: CHECK FAILED for B=%lld T=%lld %s (rel err %.3g)\n", (long long)B,
              (long long)T, format_name(a->fmt), r->err);
  }
  /* graph replay rotates among copies of the cache (the block table is shared) */
  for (int i = 1; ok && i < copies; i++) {
    if (!store_alloc(gpu, &g, &st[i]) || !store_copy(gpu, &g, &st[i], &st[0])) break;
    caches[i] = make_cache(&g, &st[i], dbt);
    o.n = i + 1;
  }
  if (ok) {
    r->copies = o.n;
    r->graph_calls = gpu && a->graph_calls > 0 ? (a->graph_calls > o.n ? a->graph_calls : o.n) : 0;
    cli_timing t = {0, 0};
    o.next = 0;
    const llmk_status s = time_it(gpu, run_attn, &o, a->reps, r->graph_calls, &t);
    if (s) {
      fprintf(stderr, "bench attention: %s (%s)\n", llmk_status_string(s), llmk_last_error());
    } else {
      r->us = t.median_us, r->graph_us = t.graph_us;
      if (r->graph_us <= 0) r->graph_calls = 0;
      const double best = r->graph_us > 0 ? r->graph_us : r->us;
      r->gbps = r->bytes / (best * 1e-6) / 1e9;
      rc = 0;
    }
  }
  for (int i = 0; i < MAX_COPIES; i++) store_free(gpu, &st[i]);
  mem_free(gpu, dbt), mem_free(gpu, dq), mem_free(gpu, dout), mem_free(gpu, dlen);
  free(hbt), free(hlen), free(hq);
  return rc;
}

static const int64_t SWEEP[][2] = {{1, 1024},  {1, 8192},  {1, 32768},  {8, 1024},   {8, 8192},   {8, 32768},
                                   {32, 1024}, {32, 8192}, {32, 32768}, {1, 131072}, {1, 262144}, {8, 131072}};

/* --shapes B:T,...: into shapes[][2]; returns the count, -1 on a bad list. */
static int parse_bt_list(const char *s, int64_t (*shapes)[2], int max) {
  int n = 0;
  while (*s) {
    long long b, t;
    int used = 0;
    if (n >= max || sscanf(s, "%lld:%lld%n", &b, &t, &used) != 2 || b < 1 || t < 1 || (s[used] && s[used] != ','))
      return -1;
    shapes[n][0] = b, shapes[n][1] = t, n++;
    s += used;
    if (*s == ',') s++;
  }
  return n;
}

int cli_bench_attention(int argc, char **argv) {
  static const char *const valued[] = {"--b",     "--t",      "--shapes", "--hq",  "--hkv",         "--d",
                                       "--format", "--group", "--page-size", "--splits", "--fill", "--check",
                                       "--reps",  "--graph-calls", NULL};
  static const char *const flags[] = {"--sweep", "--list", "--cpu", "--json", "--help", "-h", NULL};
  if (cli_flag(argc, argv, "--help") || cli_flag(argc, argv, "-h")) return attention_usage(stdout), 0;
  if (!check_options("attention", argc, argv, valued, flags)) return 2;
  int ok = 1;
  attn_cfg a;
  memset(&a, 0, sizeof a);
  a.hq = opt_int(argc, argv, "--hq", 64, &ok), a.hkv = opt_int(argc, argv, "--hkv", 8, &ok);
  a.d = opt_int(argc, argv, "--d", 128, &ok), a.group = opt_int(argc, argv, "--group", 128, &ok);
  a.page = opt_int(argc, argv, "--page-size", 0, &ok);
  a.splits = (int)opt_int(argc, argv, "--splits", 0, &ok), a.reps = (int)opt_int(argc, argv, "--reps", 30, &ok);
  a.graph_calls = (int)opt_int(argc, argv, "--graph-calls", 20, &ok);
  a.check = (int)opt_int(argc, argv, "--check", 1, &ok);
  a.json = cli_flag(argc, argv, "--json");
  const int use_cpu = cli_flag(argc, argv, "--cpu"), list = cli_flag(argc, argv, "--list");
  const char *fill = cli_arg(argc, argv, "--fill", "write");
  if (!ok) return 2;
  if (!parse_format(cli_arg(argc, argv, "--format", "bf16"), &a.fmt))
    return fprintf(stderr, "bench attention: --format must be bf16, fp8, fp8_tensor or int4\n"), 2;
  if (!check_cache_opts("attention", a.fmt, a.hq, a.hkv, a.d, a.group, a.page)) return 2;
  if (a.hq / a.hkv > 16) return fprintf(stderr, "bench attention: --hq / --hkv must be at most 16\n"), 2;
  if (a.splits < 0 || a.reps < 1 || a.graph_calls < 0 || (a.check != 0 && a.check != 1))
    return fprintf(stderr, "bench attention: --splits, --graph-calls >= 0, --reps >= 1, --check 0 or 1\n"), 2;
  if (strcmp(fill, "write") && strcmp(fill, "random"))
    return fprintf(stderr, "bench attention: --fill must be write or random\n"), 2;
  a.random_fill = !strcmp(fill, "random");

  int64_t shapes[MAX_SHAPES][2];
  int ns = 0;
  const char *list_arg = cli_arg(argc, argv, "--shapes", NULL);
  const int nsrc = !!list_arg + cli_flag(argc, argv, "--sweep") + (cli_arg(argc, argv, "--b", NULL) || cli_arg(argc, argv, "--t", NULL));
  if (nsrc > 1) return fprintf(stderr, "bench attention: give one of --b/--t, --shapes or --sweep\n"), 2;
  if (list_arg) {
    if ((ns = parse_bt_list(list_arg, shapes, MAX_SHAPES)) <= 0)
      return fprintf(stderr, "bench attention: --shapes wants B:T[,B:T...] (at most %d), got '%s'\n", MAX_SHAPES, list_arg), 2;
  } else if (cli_flag(argc, argv, "--sweep")) {
    for (size_t i = 0; i < sizeof SWEEP / sizeof SWEEP[0]; i++) shapes[ns][0] = SWEEP[i][0], shapes[ns][1] = SWEEP[i][1], ns++;
  } else {
    shapes[0][0] = opt_int(argc, argv, "--b", 1, &ok), shapes[0][1] = opt_int(argc, argv, "--t", 8192, &ok);
    if (!ok) return 2;
    if (shapes[0][0] < 1 || shapes[0][1] < 1) return fprintf(stderr, "bench attention: --b and --t must be positive\n"), 2;
    ns = 1;
  }
  for (int i = 0; i < ns; i++)
    if (shapes[i][1] > INT32_MAX || shapes[i][0] > (INT64_C(1) << 24))
      return fprintf(stderr, "bench attention: T must fit in int32 and B be at most 2^24\n"), 2;

  double largest = 0;
  for (int i = 0; i < ns; i++) {
    kv_geom g;
    geom_init(&g, a.fmt, a.group, a.hkv, a.d, a.page, shapes[i][0], shapes[i][1]);
    const double kb = kv_bytes_of(&g, (double)(shapes[i][0] * shapes[i][1]));
    if (kb > largest) largest = kb;
    if (list)
      printf("attention_decode B=%-4lld T=%-7lld hq=%lld hkv=%lld d=%lld %s%s page=%lld: KV bytes %.0f (%.1f MiB)\n",
             (long long)shapes[i][0], (long long)shapes[i][1], (long long)a.hq, (long long)a.hkv, (long long)a.d,
             format_name(a.fmt), a.fmt == LLMK_KV_INT4 ? (a.group == 32 ? " g32" : " g128") : "", (long long)a.page, kb,
             kb / MIB);
  }
  if (list) return 0;

  llmk_handle h;
  if (!open_handle("attention", use_cpu, &h)) return 1;
  a.gpu = !use_cpu;
  size_t copy_bytes = 0;
  const size_t want = largest > (double)(1024 * MIB) ? (size_t)largest : 1024 * MIB;
  const double copy = measure_copy(a.gpu, want, &copy_bytes);
  char backend[48];
  snprintf(backend, sizeof backend, "%s:%s", use_cpu ? "cpu" : "own", format_name(a.fmt));
  if (a.fmt == LLMK_KV_INT4) snprintf(backend + strlen(backend), sizeof backend - strlen(backend), "g%lld", (long long)a.group);
  if (a.page) snprintf(backend + strlen(backend), sizeof backend - strlen(backend), "/paged%lld", (long long)a.page);
  if (!a.json) {
    if (copy > 0) printf("device copy bandwidth: %.0f GB/s (%.2f GiB, graph replay)\n", copy, copy_bytes / 1073741824.0);
    printf("%-20s %5s %7s %10s %10s %10s %9s %7s %s\n", "format", "B", "T", "KV MiB", "us", "graph us", "GB/s", "copy%",
           "check");
  }
  int fails = 0;
  for (int i = 0; i < ns; i++) {
    const int64_t B = shapes[i][0], T = shapes[i][1];
    attn_result r;
    const int rc = bench_attention_shape(h, &a, B, T, &r);
    if (rc == 2) continue;
    if (rc) {
      fails++;
      continue;
    }
    fails += r.checked == 0;
    const double frac = copy > 0 ? r.gbps / copy : 0;
    if (a.json) {
      printf("{\"op\": \"attention_decode\", \"device\": \"%s\", \"shape\": {\"b\": %lld, \"t\": %lld, \"hq\": %lld, "
             "\"hkv\": %lld, \"d\": %lld}, \"dtype\": \"bf16\", \"format\": \"%s\", ",
             use_cpu ? "cpu" : cli_device_name(), (long long)B, (long long)T, (long long)a.hq, (long long)a.hkv,
             (long long)a.d, format_name(a.fmt));
      if (a.fmt == LLMK_KV_INT4) printf("\"int4_group\": %lld, ", (long long)a.group);
      printf("\"page_size\": %lld, \"splits\": %d, \"llmk_us\": %.3f, ", (long long)a.page, a.splits, r.us);
      if (r.graph_us > 0) printf("\"llmk_us_graph\": %.3f, ", r.graph_us);
      printf("\"backend\": \"%s\", \"kv_bytes\": %.0f, \"bytes\": %.0f, \"gbps\": %.1f, \"copy_gbps\": %.1f, "
             "\"copy_bytes\": %zu, \"frac_copy\": %.4f, \"graph_calls\": %d, \"cache_copies\": %d, \"fill\": \"%s\", "
             "\"checked\": %s",
             backend, r.kv_bytes, r.bytes, r.gbps, copy, copy_bytes, frac, r.graph_calls, r.copies,
             a.random_fill ? "random" : "write", r.checked < 0 ? "null" : r.checked ? "true" : "false");
      if (r.checked >= 0) printf(", \"max_rel_err\": %.3g", r.err);
      print_commit();
      printf("}\n");
    } else {
      char chk[32];
      if (r.checked < 0) snprintf(chk, sizeof chk, "-");
      else snprintf(chk, sizeof chk, "%s %.1e", r.checked ? "ok" : "FAILED", r.err);
      char gus[32];
      if (r.graph_us > 0) snprintf(gus, sizeof gus, "%.2f", r.graph_us);
      else snprintf(gus, sizeof gus, "-");
      printf("%-20s %5lld %7lld %10.1f %10.2f %10s %9.1f %6.1f%% %s\n", backend + 4 /* past "own:" or "cpu:" */,
             (long long)B, (long long)T, r.kv_bytes / MIB, r.us, gus, r.gbps, 100 * frac, chk);
    }
    fflush(stdout);
  }
  llmk_destroy(h);
  return fails ? 1 : 0;
}

/* ------------------------------------------------------------------------ */
/* RoPE descriptors shared by rope and kvcache                               */
/* ------------------------------------------------------------------------ */

/* Llama 3.1's rope (theta 500000, factor 8, 1, 4, 8192), interleaved or neox. */
static int parse_rope(const char *cmd, int argc, char **argv, llmk_rope_desc *r, int *ok) {
  memset(r, 0, sizeof *r);
  const char *style = cli_arg(argc, argv, "--style", "interleaved");
  if (!strcmp(style, "neox")) r->style = LLMK_ROPE_NEOX;
  else if (!strcmp(style, "interleaved")) r->style = LLMK_ROPE_INTERLEAVED;
  else return fprintf(stderr, "bench %s: --style must be interleaved or neox\n", cmd), 0;
  r->rotary_dim = opt_int(argc, argv, "--rotary-dim", 0, ok);
  r->theta = 500000.0;
  r->llama3_factor = cli_flag(argc, argv, "--no-llama3-scaling") ? 0.0 : 8.0;
  r->low_freq_factor = 1.0, r->high_freq_factor = 4.0, r->original_max_position = 8192.0;
  return 1;
}

/* ------------------------------------------------------------------------ */
/* bench rope                                                                */
/* ------------------------------------------------------------------------ */

typedef struct rope_op {
  llmk_handle h;
  llmk_rope_desc desc;
  llmk_tensor x, pos, y;
} rope_op;

static llmk_status run_rope(void *ctx, void *stream) {
  rope_op *o = ctx;
  return llmk_rope(o->h, &o->desc, &o->x, &o->pos, &o->y, stream);
}

static void rope_usage(FILE *f) {
  fprintf(f,
          "usage: llmk bench rope --t T [--h 64] [--d 128] [--dtype bf16|f32] [--rotary-dim R]\n"
          "                       [--style interleaved|neox] [--no-llama3-scaling] [--inplace]\n"
          "                       [--reps N] [--cpu] [--json]\n"
          "  Times llmk_rope on x [T, H, D] at positions 0 .. T-1 (Llama 3.1's frequencies): CUDA events\n"
          "  with L2 flushed (us, median) and graph replay; GB/s of x read + y written + positions, and the\n"
          "  fraction of a 1 GiB device copy timed in the same run.\n");
}

int cli_bench_rope(int argc, char **argv) {
  static const char *const valued[] = {"--t", "--h", "--d", "--dtype", "--rotary-dim", "--style", "--reps", NULL};
  static const char *const flags[] = {"--inplace", "--no-llama3-scaling", "--cpu", "--json", "--help", "-h", NULL};
  if (cli_flag(argc, argv, "--help") || cli_flag(argc, argv, "-h")) return rope_usage(stdout), 0;
  if (!check_options("rope", argc, argv, valued, flags)) return 2;
  int ok = 1;
  const int64_t T = opt_int(argc, argv, "--t", 16384, &ok), H = opt_int(argc, argv, "--h", 64, &ok),
                D = opt_int(argc, argv, "--d", 128, &ok);
  const int reps = (int)opt_int(argc, argv, "--reps", 50, &ok), json = cli_flag(argc, argv, "--json");
  const int use_cpu = cli_flag(argc, argv, "--cpu"), inplace = cli_flag(argc, argv, "--inplace");
  const char *dts = cli_arg(argc, argv, "--dtype", "bf16");
  llmk_rope_desc rd;
  if (!parse_rope("rope", argc, argv, &rd, &ok) || !ok) return 2;
  if (strcmp(dts, "bf16") && strcmp(dts, "f32")) return fprintf(stderr, "bench rope: --dtype must be bf16 or f32\n"), 2;
  if (T < 1 || T > INT32_MAX || H < 1 || D < 2 || D % 2 || reps < 1)
    return fprintf(stderr, "bench rope: --t, --h, --reps must be positive, --d even\n"), 2;
  const llmk_dtype dt = strcmp(dts, "bf16") ? LLMK_F32 : LLMK_BF16;
  const size_t es = llmk_dtype_size(dt), n = (size_t)(T * H * D);

  llmk_handle h;
  if (!open_handle("rope", use_cpu, &h)) return 1;
  const int gpu = !use_cpu;
  size_t copy_bytes = 0;
  const double copy = measure_copy(gpu, 1024 * MIB, &copy_bytes);
  void *hx = malloc(n * es);
  int32_t *hp = malloc(sizeof(int32_t) * (size_t)T);
  void *dx = mem_alloc(gpu, n * es), *dy = inplace ? dx : mem_alloc(gpu, n * es), *dp = mem_alloc(gpu, 4 * (size_t)T);
  int rc = 1;
  if (!hx || !hp || !dx || !dy || !dp) {
    fprintf(stderr, "bench rope: allocation failed\n");
  } else {
    cli_fill_random(hx, dt, (int64_t)n, 1.0f, 0.0, 5);
    for (int64_t t = 0; t < T; t++) hp[t] = (int32_t)t;
    rope_op o;
    o.h = h, o.desc = rd;
    o.x = llmk_tensor_3d(dx, dt, T, H, D), o.y = llmk_tensor_3d(dy, dt, T, H, D), o.pos = llmk_tensor_1d(dp, LLMK_I32, T);
    cli_timing t = {0, 0};
    llmk_status s = LLMK_ERR_CUDA;
    if (mem_h2d(gpu, dx, hx, n * es) && mem_h2d(gpu, dp, hp, 4 * (size_t)T)) s = time_it(gpu, run_rope, &o, reps, gpu ? 20 : 0, &t);
    if (s) {
      fprintf(stderr, "bench rope: %s (%s)\n", llmk_status_string(s), llmk_last_error());
    } else {
      rc = 0;
      const double bytes = 2.0 * (double)(n * es) + 4.0 * (double)T, gbps = bytes / (t.median_us * 1e-6) / 1e9;
      const double frac = copy > 0 ? gbps / copy : 0;
      if (json) {
        printf("{\"op\": \"rope\", \"device\": \"%s\", \"shape\": {\"t\": %lld, \"h\": %lld, \"d\": %lld}, \"dtype\": \"%s\", "
               "\"style\": \"%s\", \"rotary_dim\": %lld, \"inplace\": %s, \"llmk_us\": %.3f, ",
               use_cpu ? "cpu" : cli_device_name(), (long long)T, (long long)H, (long long)D, dts,
               rd.style == LLMK_ROPE_NEOX ? "neox" : "interleaved", (long long)(rd.rotary_dim ? rd.rotary_dim : D),
               inplace ? "true" : "false", t.median_us);
        if (t.graph_us > 0) printf("\"llmk_us_graph\": %.3f, ", t.graph_us);
        printf("\"backend\": \"%s\", \"bytes\": %.0f, \"gbps\": %.1f, \"copy_gbps\": %.1f, \"copy_bytes\": %zu, "
               "\"frac_copy\": %.4f",
               use_cpu ? "cpu" : "own", bytes, gbps, copy, copy_bytes, frac);
        print_commit();
        printf("}\n");
      } else {
        printf("rope %lld x %lld x %lld %s%s: %.2f us", (long long)T, (long long)H, (long long)D, dts,
               inplace ? " in place" : "", t.median_us);
        if (t.graph_us > 0) printf(" (graph %.2f us)", t.graph_us);
        printf("  %.1f GB/s", gbps);
        if (copy > 0) printf("  %.1f%% of copy (%.0f GB/s)", 100 * frac, copy);
        printf("\n");
      }
    }
  }
  free(hx), free(hp);
  mem_free(gpu, dx), mem_free(gpu, dp);
  if (!inplace) mem_free(gpu, dy);
  llmk_destroy(h);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* bench kvcache: llmk_rope_qkv_write                                        */
/* ------------------------------------------------------------------------ */

typedef struct qkv_op {
  llmk_handle h;
  const llmk_rope_desc *rope; /* NULL: no rotation */
  llmk_tensor qkv, q_out;
  int64_t hq;
  llmk_kv_cache cache;
  llmk_kv_loc loc;
} qkv_op;

static llmk_status run_qkv(void *ctx, void *stream) {
  qkv_op *o = ctx;
  return llmk_rope_qkv_write(o->h, o->rope, &o->qkv, o->hq, &o->cache, &o->loc, &o->q_out, stream);
}

static void kvcache_usage(FILE *f) {
  fprintf(f,
          "usage: llmk bench kvcache --t T [--seqs S] [--hq 64] [--hkv 8] [--d 128]\n"
          "                          [--format bf16|fp8|fp8_tensor|int4] [--group 32|128] [--page-size P]\n"
          "                          [--style interleaved|neox] [--no-rope] [--check-rows R] [--reps N]\n"
          "                          [--cpu] [--json]\n"
          "  Times llmk_rope_qkv_write of T new tokens (packed bf16 QKV) of S sequences (T/S tokens each,\n"
          "  from position 0; S = T is the decode form, offsets NULL) into a cache of that format: CUDA\n"
          "  events with L2 flushed (us, median) and graph replay. GB/s of qkv read + q_out written + cache\n"
          "  data and parameters written, and the fraction of a device copy (max(1 GiB, those bytes)) timed\n"
          "  in the same run. The first R rows (64) of sequence 0 are checked bit for bit against the CPU.\n");
}

/* Rows 0 .. R-1 of sequence 0 through the CPU backend, compared bit for bit
 * (q_out, and K, V and their parameters in the cache). */
static int check_qkv(int gpu, const qkv_op *o, const kv_geom *g, const kv_store *st, const int32_t *hbt,
                     const uint16_t *hqkv, int64_t W, int64_t R, long long *bad) {
  const int64_t hq = o->hq, D = g->d;
  *bad = 0;
  kv_geom g1;
  geom_init(&g1, g->fmt, g->group, g->hkv, D, 0, 1, R);
  kv_store cs;
  if (!store_alloc(0, &g1, &cs)) return 0;
  const size_t qb = (size_t)(R * hq * D) * 2, db = geom_data_bytes(&g1), pb = geom_param_bytes(&g1);
  uint8_t *cq = malloc(qb), *gq = malloc(qb), *gk = malloc(db), *gv = malloc(db);
  uint8_t *gkp = pb ? malloc(pb) : NULL, *gvp = pb ? malloc(pb) : NULL;
  llmk_handle cpu = NULL;
  int ok = cq && gq && gk && gv && (!pb || (gkp && gvp)) && !llmk_create_cpu(&cpu);
  ok = ok && store_set_tensor_scale(0, &g1, &cs);
  ok = ok && mem_rows_d2h(gpu, gq, o->q_out.data, (size_t)(hq * D) * 2, (size_t)o->q_out.strides[0] * 2, (size_t)R) &&
       gather_rows(gpu, g, st->k, g->row_bytes, hbt, 0, 0, R, 0, g->hkv, gk) &&
       gather_rows(gpu, g, st->v, g->row_bytes, hbt, 0, 0, R, 0, g->hkv, gv);
  if (ok && g->param_bytes)
    ok = gather_rows(gpu, g, st->kp, g->param_bytes, hbt, 0, 0, R, 0, g->hkv, gkp) &&
         gather_rows(gpu, g, st->vp, g->param_bytes, hbt, 0, 0, R, 0, g->hkv, gvp);
  if (ok) {
    int32_t off[2] = {0, (int32_t)R}, start = 0;
    llmk_kv_loc loc;
    loc.offsets = llmk_tensor_1d(off, LLMK_I32, 2);
    loc.start_pos = llmk_tensor_1d(&start, LLMK_I32, 1);
    const llmk_kv_cache c = make_cache(&g1, &cs, NULL);
    const llmk_tensor qkv = llmk_tensor_2d((void *)hqkv, LLMK_BF16, R, W, W), q = llmk_tensor_3d(cq, LLMK_BF16, R, hq, D);
    const llmk_status s = llmk_rope_qkv_write(cpu, o->rope, &qkv, hq, &c, &loc, &q, NULL);
    if (s) {
      fprintf(stderr, "bench kvcache: CPU reference: %s (%s)\n", llmk_status_string(s), llmk_last_error());
      ok = 0;
    }
  }
  if (ok) {
    for (size_t i = 0; i < qb; i++) *bad += cq[i] != gq[i];
    for (size_t i = 0; i < db; i++) *bad += ((uint8_t *)cs.k)[i] != gk[i];
    for (size_t i = 0; i < db; i++) *bad += ((uint8_t *)cs.v)[i] != gv[i];
    if (g->param_bytes)
      for (size_t i = 0; i < pb; i++) *bad += (((uint8_t *)cs.kp)[i] != gkp[i]) + (((uint8_t *)cs.vp)[i] != gvp[i]);
    ok = *bad == 0;
  }
  llmk_destroy(cpu);
  free(cq), free(gq), free(gk), free(gv), free(gkp), free(gvp);
  store_free(0, &cs);
  return ok;
}

int cli_bench_kvcache(int argc, char **argv) {
  static const char *const valued[] = {"--t",   "--seqs",  "--hq",    "--hkv",       "--d",     "--format",
                                       "--group", "--page-size", "--style", "--rotary-dim", "--check-rows",
                                       "--reps", NULL};
  static const char *const flags[] = {"--no-rope", "--no-llama3-scaling", "--cpu", "--json", "--help", "-h", NULL};
  if (cli_flag(argc, argv, "--help") || cli_flag(argc, argv, "-h")) return kvcache_usage(stdout), 0;
  if (!check_options("kvcache", argc, argv, valued, flags)) return 2;
  int ok = 1;
  const int64_t T = opt_int(argc, argv, "--t", 16384, &ok), S = opt_int(argc, argv, "--seqs", 1, &ok);
  const int64_t hq = opt_int(argc, argv, "--hq", 64, &ok), hkv = opt_int(argc, argv, "--hkv", 8, &ok);
  const int64_t D = opt_int(argc, argv, "--d", 128, &ok), group = opt_int(argc, argv, "--group", 128, &ok);
  const int64_t page = opt_int(argc, argv, "--page-size", 0, &ok), check_rows = opt_int(argc, argv, "--check-rows", 64, &ok);
  const int reps = (int)opt_int(argc, argv, "--reps", 30, &ok), json = cli_flag(argc, argv, "--json");
  const int use_cpu = cli_flag(argc, argv, "--cpu"), no_rope = cli_flag(argc, argv, "--no-rope");
  llmk_kv_format fmt;
  llmk_rope_desc rd;
  if (!parse_rope("kvcache", argc, argv, &rd, &ok) || !ok) return 2;
  if (!parse_format(cli_arg(argc, argv, "--format", "bf16"), &fmt))
    return fprintf(stderr, "bench kvcache: --format must be bf16, fp8, fp8_tensor or int4\n"), 2;
  if (!check_cache_opts("kvcache", fmt, hq, hkv, D, group, page)) return 2;
  if (T < 1 || T > INT32_MAX || S < 1 || S > T || reps < 1 || check_rows < 0)
    return fprintf(stderr, "bench kvcache: --t >= --seqs >= 1, --reps >= 1, --check-rows >= 0\n"), 2;

  /* sequence b gets T / S rows, the first T % S one more; capacity: the longest */
  const int64_t cap = (T + S - 1) / S, W = (hq + 2 * hkv) * D;
  kv_geom g;
  geom_init(&g, fmt, group, hkv, D, page, S, cap);
  const double cache_w = kv_bytes_of(&g, (double)T) - (fmt == LLMK_KV_FP8_TENSOR ? 8.0 : 0.0);
  const double bytes = 2.0 * (double)(T * W) + 2.0 * (double)(T * hq * D) + cache_w +
                       (fmt == LLMK_KV_FP8_TENSOR ? 8.0 : 0.0) + 4.0 * (double)(2 * S + 1) +
                       (page ? 4.0 * (double)(S * g.max_pages) : 0.0);

  llmk_handle h;
  if (!open_handle("kvcache", use_cpu, &h)) return 1;
  const int gpu = !use_cpu;
  size_t copy_bytes = 0;
  const double copy = measure_copy(gpu, bytes > (double)(1024 * MIB) ? (size_t)bytes : 1024 * MIB, &copy_bytes);
  kv_store st;
  memset(&st, 0, sizeof st);
  uint16_t *hqkv = malloc((size_t)(T * W) * 2);
  int32_t *ho = malloc(sizeof(int32_t) * (size_t)(S + 1)), *hs = calloc((size_t)S, sizeof(int32_t)), *hbt = NULL;
  void *dqkv = mem_alloc(gpu, (size_t)(T * W) * 2), *dq = mem_alloc(gpu, (size_t)(T * hq * D) * 2);
  void *doff = mem_alloc(gpu, sizeof(int32_t) * (size_t)(S + 1)), *dst = mem_alloc(gpu, sizeof(int32_t) * (size_t)S), *dbt = NULL;
  ok = hqkv && ho && hs && dqkv && dq && doff && dst && store_alloc(gpu, &g, &st);
  if (ok && page)
    ok = (hbt = make_block_table(&g, 4321)) != NULL && (dbt = mem_alloc(gpu, sizeof(int32_t) * (size_t)(S * g.bt_ld))) &&
         mem_h2d(gpu, dbt, hbt, sizeof(int32_t) * (size_t)(S * g.bt_ld));
  int rc = 1;
  qkv_op o;
  memset(&o, 0, sizeof o);
  if (!ok) fprintf(stderr, "bench kvcache: allocation failed\n");
  if (ok) {
    cli_fill_random(hqkv, LLMK_BF16, T * W, 1.0f, 0.0, 11);
    for (int64_t b = 0, r = 0; b <= S; b++) ho[b] = (int32_t)r, r += b < T % S ? T / S + 1 : T / S;
    ok = mem_h2d(gpu, dqkv, hqkv, (size_t)(T * W) * 2) && mem_h2d(gpu, doff, ho, sizeof(int32_t) * (size_t)(S + 1)) &&
         mem_h2d(gpu, dst, hs, sizeof(int32_t) * (size_t)S) && store_set_tensor_scale(gpu, &g, &st);
    o.h = h, o.rope = no_rope ? NULL : &rd, o.hq = hq;
    o.qkv = llmk_tensor_2d(dqkv, LLMK_BF16, T, W, W);
    o.q_out = llmk_tensor_3d(dq, LLMK_BF16, T, hq, D);
    o.cache = make_cache(&g, &st, dbt);
    if (S < T) o.loc.offsets = llmk_tensor_1d(doff, LLMK_I32, S + 1); /* S == T: decode form, offsets NULL */
    o.loc.start_pos = llmk_tensor_1d(dst, LLMK_I32, S);
  }
  /* one call, the check of its first rows, then the timing */
  llmk_status s = ok ? run_qkv(&o, NULL) : LLMK_ERR_INTERNAL;
  int checked = -1;
  long long bad = 0;
  const int64_t R = check_rows < T / S ? check_rows : T / S;
  if (ok && !s && R > 0) {
    checked = check_qkv(gpu, &o, &g, &st, hbt, hqkv, W, R, &bad);
    if (!checked)
      fprintf(stderr, "bench kvcache: CHECK FAILED: %lld bytes differ from the CPU backend in the first %lld rows\n",
              bad, (long long)R);
  }
  cli_timing t = {0, 0};
  if (ok && !s) s = time_it(gpu, run_qkv, &o, reps, gpu ? 20 : 0, &t);
  if (ok && s) {
    fprintf(stderr, "bench kvcache: %s (%s)\n", llmk_status_string(s), llmk_last_error());
  } else if (ok) {
    rc = checked == 0;
    const double gbps = bytes / (t.median_us * 1e-6) / 1e9, frac = copy > 0 ? gbps / copy : 0;
    if (json) {
      printf("{\"op\": \"rope_qkv_write\", \"device\": \"%s\", \"shape\": {\"t\": %lld, \"seqs\": %lld, \"hq\": %lld, "
             "\"hkv\": %lld, \"d\": %lld}, \"dtype\": \"bf16\", \"format\": \"%s\", ",
             use_cpu ? "cpu" : cli_device_name(), (long long)T, (long long)S, (long long)hq, (long long)hkv, (long long)D,
             format_name(fmt));
      if (fmt == LLMK_KV_INT4) printf("\"int4_group\": %lld, ", (long long)group);
      printf("\"page_size\": %lld, \"rope\": \"%s\", \"llmk_us\": %.3f, ", (long long)page,
             no_rope ? "none" : rd.style == LLMK_ROPE_NEOX ? "llama3.1 neox" : "llama3.1 interleaved", t.median_us);
      if (t.graph_us > 0) printf("\"llmk_us_graph\": %.3f, ", t.graph_us);
      printf("\"backend\": \"%s:%s", use_cpu ? "cpu" : "own", format_name(fmt));
      if (fmt == LLMK_KV_INT4) printf("g%lld", (long long)group);
      if (page) printf("/paged%lld", (long long)page);
      printf("\", \"bytes\": %.0f, \"gbps\": %.1f, \"copy_gbps\": %.1f, \"copy_bytes\": %zu, \"frac_copy\": %.4f, "
             "\"checked\": %s",
             bytes, gbps, copy, copy_bytes, frac, checked < 0 ? "null" : checked ? "true" : "false");
      if (checked >= 0) printf(", \"check_rows\": %lld, \"mismatched_bytes\": %lld", (long long)R, bad);
      print_commit();
      printf("}\n");
    } else {
      if (copy > 0) printf("device copy bandwidth: %.0f GB/s (%.2f GiB, graph replay)\n", copy, copy_bytes / 1073741824.0);
      printf("rope_qkv_write T=%lld seqs=%lld hq=%lld hkv=%lld d=%lld %s%s", (long long)T, (long long)S, (long long)hq,
             (long long)hkv, (long long)D, format_name(fmt), fmt == LLMK_KV_INT4 ? (group == 32 ? " g32" : " g128") : "");
      if (page) printf(" paged %lld", (long long)page);
      printf(": %.2f us", t.median_us);
      if (t.graph_us > 0) printf(" (graph %.2f us)", t.graph_us);
      printf("  %.1f GB/s", gbps);
      if (copy > 0) printf("  %.1f%% of copy", 100 * frac);
      if (checked >= 0) printf("  check %s", checked ? "ok" : "FAILED");
      printf("\n");
    }
  }
  store_free(gpu, &st);
  free(hqkv), free(ho), free(hs), free(hbt);
  mem_free(gpu, dqkv), mem_free(gpu, dq), mem_free(gpu, doff), mem_free(gpu, dst), mem_free(gpu, dbt);
  llmk_destroy(h);
  return rc;
}
