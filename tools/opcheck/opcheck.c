/* opcheck: the harness (allocation, poisoning, runs on each backend,
 * checks, comparison, timing). The cases live in ops_*.c. */
#include "opcheck.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

/* snprintf without -Wformat-truncation (messages may be cut) */
static void msgf(char *dst, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(dst, n, fmt, ap);
  va_end(ap);
}

/* ---- random numbers --------------------------------------------------------- */

void oc_rng_seed(oc_rng *r, uint64_t seed) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  r->s = z ? z : 0x9E3779B97F4A7C15ull;
  r->has_spare = 0;
}
void oc_rng_split(oc_rng *r, uint64_t base, uint64_t i) { oc_rng_seed(r, base ^ (i * 0xD1B54A32D192ED03ull)); }
uint64_t oc_rand(oc_rng *r) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return r->s * 0x2545F4914F6CDD1Dull;
}
double oc_uniform(oc_rng *r) { return (double)(oc_rand(r) >> 11) * 0x1.0p-53; }
float oc_normal(oc_rng *r) { /* Marsaglia's polar method, both values used */
  if (r->has_spare) {
    r->has_spare = 0;
    return r->spare;
  }
  double u, v, s;
  do {
    u = 2.0 * oc_uniform(r) - 1.0;
    v = 2.0 * oc_uniform(r) - 1.0;
    s = u * u + v * v;
  } while (s >= 1.0 || s == 0.0);
  const double f = sqrt(-2.0 * log(s) / s);
  r->spare = (float)(v * f);
  r->has_spare = 1;
  return (float)(u * f);
}
int64_t oc_range(oc_rng *r, int64_t lo, int64_t hi) {
  return hi <= lo ? lo : lo + (int64_t)(oc_rand(r) % (uint64_t)(hi - lo + 1));
}
void oc_rand_bytes(oc_rng *r, void *p, size_t n) {
  uint8_t *b = p;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t v = oc_rand(r);
    memcpy(b + i, &v, 8);
  }
  for (; i < n; i++) b[i] = (uint8_t)oc_rand(r);
}

/* ---- values ------------------------------------------------------------------- */

void oc_put(void *p, llmk_dtype dt, int64_t i, float v) {
  if (dt == LLMK_F32) ((float *)p)[i] = v;
  else if (dt == LLMK_BF16) ((uint16_t *)p)[i] = llmk_float_to_bf16(v);
  else if (dt == LLMK_F16) ((uint16_t *)p)[i] = llmk_float_to_f16(v);
  else if (dt == LLMK_E4M3 || dt == LLMK_E5M2) ((uint8_t *)p)[i] = llmk_float_to_fp8(v, dt);
}
float oc_get(const void *p, llmk_dtype dt, int64_t i) {
  if (dt == LLMK_F32) return ((const float *)p)[i];
  if (dt == LLMK_BF16) return llmk_bf16_to_float(((const uint16_t *)p)[i]);
  if (dt == LLMK_F16) return llmk_f16_to_float(((const uint16_t *)p)[i]);
  if (dt == LLMK_E4M3 || dt == LLMK_E5M2) return llmk_fp8_to_float(((const uint8_t *)p)[i], dt);
  return NAN;
}

const char *oc_dist_name(int dist) {
  static const char *const n[] = {"normal", "outliers", "equal-rows", "zero-rows", "nan-inf", "wide",
                                  "tiny",   "huge",     "rows",       "bench",     "const"};
  return dist >= 0 && dist < OC_D_COUNT ? n[dist] : "?";
}

float oc_draw(oc_rng *r, int dist, int64_t row, float rv, int kind, float mag) {
  const float x = mag * oc_normal(r);
  switch (dist) {
    case OC_D_OUTLIER: return oc_rand(r) % 100 == 0 ? x * 1000.0f : x;
    case OC_D_EQUAL_ROWS: return rv;
    case OC_D_ZERO_ROWS: return row % 3 == 1 ? 0.0f : x;
    case OC_D_NAN_INF: {
      const double u = oc_uniform(r);
      return u < 0.01 ? NAN : u < 0.02 ? INFINITY : u < 0.03 ? -INFINITY : x;
    }
    case OC_D_WIDE: {
      const uint64_t u = oc_rand(r);
      return (u & 1 ? -1.0f : 1.0f) * ldexpf(1.0f + (float)oc_uniform(r), (int)((u >> 1) % 48) - 36);
    }
    case OC_D_TINY: return oc_normal(r) * 0x1p-128f;
    case OC_D_HUGE: return oc_normal(r) * 0x1p125f;
    case OC_D_ROWS: return kind == 0 ? rv : kind == 1 ? 0.0f : kind == 2 ? -fabsf(rv) : x;
    case OC_D_BENCH: return oc_uniform(r) < 1e-3 ? x * 100.0f : x;
    case OC_D_CONST: return 1.0f;
    default: return x;
  }
}

void oc_fill_bench(void *p, llmk_dtype dt, int64_t n, float sigma, double outliers, uint64_t seed) {
  const int64_t chunk = INT64_C(1) << 16, nc = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
  for (int64_t ci = 0; ci < nc; ci++) {
    oc_rng r;
    oc_rng_split(&r, seed, (uint64_t)ci);
    const int64_t end = (ci + 1) * chunk < n ? (ci + 1) * chunk : n;
    for (int64_t i = ci * chunk; i < end; i++) {
      float v = oc_normal(&r) * sigma;
      if (oc_uniform(&r) < outliers) v *= 100.0f;
      oc_put(p, dt, i, v);
    }
  }
}

/* ---- cases -------------------------------------------------------------------- */

void oc_case_init(oc_case *c, const char *op, uint64_t seed) {
  memset(c, 0, sizeof *c);
  snprintf(c->op, sizeof c->op, "%s", op);
  c->seed = seed;
}

void oc_key(oc_case *c, const char *key, int64_t v) {
  if (c->nkeys >= OC_MAX_KEYS) return;
  snprintf(c->key[c->nkeys], sizeof c->key[0], "%s", key);
  c->val[c->nkeys++] = v;
}

static size_t view_extent(int ndim, const int64_t *shape, const int64_t *strides) {
  int64_t e = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] <= 0) return 0;
    e += (shape[d] - 1) * (strides[d] < 0 ? -strides[d] : strides[d]);
  }
  return (size_t)e;
}

int oc_buf_view(oc_case *c, const char *name, oc_role role, oc_cmp cmp, llmk_dtype dt, int ndim,
                const int64_t *shape, const int64_t *strides, int64_t offset) {
  if (c->nbuf >= OC_MAX_BUFS) {
    fprintf(stderr, "opcheck: %s: more than %d buffers\n", c->op, OC_MAX_BUFS);
    abort();
  }
  oc_buf *b = &c->buf[c->nbuf];
  memset(b, 0, sizeof *b);
  b->name = name, b->role = role, b->cmp = cmp, b->dtype = dt, b->ndim = ndim, b->offset = offset;
  for (int d = 0; d < ndim; d++) b->shape[d] = shape[d], b->strides[d] = strides[d];
  b->bytes = ((size_t)offset + view_extent(ndim, shape, strides)) * llmk_dtype_size(dt);
  return c->nbuf++;
}

int oc_buf_2d(oc_case *c, const char *name, oc_role role, oc_cmp cmp, llmk_dtype dt, int64_t rows, int64_t cols,
              int64_t ld, int64_t offset) {
  const int64_t sh[2] = {rows, cols}, st[2] = {ld, 1};
  const int i = oc_buf_view(c, name, role, cmp, dt, 2, sh, st, offset);
  if (rows > 0) c->buf[i].bytes = (size_t)(offset + rows * ld) * llmk_dtype_size(dt); /* the last row's padding */
  return i;
}

int oc_buf_nd(oc_case *c, const char *name, oc_role role, oc_cmp cmp, llmk_dtype dt, int ndim, const int64_t *shape) {
  int64_t st[LLMK_MAX_DIMS], s = 1;
  for (int d = ndim - 1; d >= 0; d--) st[d] = s, s *= shape[d];
  return oc_buf_view(c, name, role, cmp, dt, ndim, shape, st, 0);
}

int oc_buf_1d(oc_case *c, const char *name, oc_role role, oc_cmp cmp, llmk_dtype dt, int64_t n) {
  return oc_buf_nd(c, name, role, cmp, dt, 1, &n);
}

void *oc_at(const oc_case *c, void *const *host, int i, int64_t elem) {
  return (char *)host[i] + (size_t)(c->buf[i].offset + elem) * llmk_dtype_size(c->buf[i].dtype);
}

llmk_tensor oc_view(const oc_case *c, int i, void *base) {
  const oc_buf *b = &c->buf[i];
  llmk_tensor t;
  memset(&t, 0, sizeof t);
  t.data = (char *)base + (size_t)b->offset * llmk_dtype_size(b->dtype);
  t.dtype = b->dtype;
  t.ndim = b->ndim;
  for (int d = 0; d < b->ndim; d++) t.shape[d] = b->shape[d], t.strides[d] = b->strides[d];
  return t;
}

oc_case *oc_list_add(oc_list *l) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 64;
    oc_case *v = realloc(l->v, (size_t)l->cap * sizeof *v);
    if (!v) {
      fprintf(stderr, "opcheck: out of memory\n");
      exit(2);
    }
    l->v = v;
  }
  return &l->v[l->n++];
}
void oc_list_free(oc_list *l) {
  free(l->v);
  memset(l, 0, sizeof *l);
}

void oc_all_cases(oc_list *l, int quick, uint64_t seed) {
  oc_quantize_cases(l, quick, seed ^ 0x1111);
  oc_gemm_cases(l, quick, seed ^ 0x2222);
  oc_gemm_grouped_cases(l, quick, seed ^ 0x6666);
  oc_norm_cases(l, quick, seed ^ 0x3333);
  oc_kvcache_cases(l, quick, seed ^ 0x4444);
  oc_attention_cases(l, quick, seed ^ 0x5555);
  oc_moe_cases(l, quick, seed ^ 0x7777);
  oc_int4_cases(l, quick, seed ^ 0x8888);
}

/* ---- the context ----------------------------------------------------------------- */

int oc_init(oc_ctx *x, int want_gpu) {
  memset(x, 0, sizeof *x);
  x->log = stderr;
  if (llmk_create_cpu(&x->cpu) != LLMK_SUCCESS) {
    fprintf(stderr, "opcheck: llmk_create_cpu: %s\n", llmk_last_error());
    return 0;
  }
  if (!want_gpu) {
    snprintf(x->why_no_gpu, sizeof x->why_no_gpu, "CPU only");
    return 1;
  }
  int n = 0;
  llmk_cuda_device_count(&n);
  llmk_device_info info = LLMK_DEVICE_INFO_INIT;
  if (!n) {
    snprintf(x->why_no_gpu, sizeof x->why_no_gpu, "no Hopper GPU: no CUDA device");
  } else if (llmk_cuda_device_info(0, &info) != LLMK_SUCCESS) {
    snprintf(x->why_no_gpu, sizeof x->why_no_gpu, "no Hopper GPU: %s", llmk_last_error());
  } else if (!info.supported) {
    msgf(x->why_no_gpu, sizeof x->why_no_gpu, "no Hopper GPU: device 0 is %s (sm_%d%d)", info.name,
             info.cc_major, info.cc_minor);
  } else if (llmk_create_cuda(0, &x->gpu) != LLMK_SUCCESS) {
    snprintf(x->why_no_gpu, sizeof x->why_no_gpu, "llmk_create_cuda: %s", llmk_last_error());
    x->gpu = NULL;
  }
  return 1;
}

void oc_fini(oc_ctx *x) {
  llmk_destroy(x->gpu);
  llmk_destroy(x->cpu);
  x->gpu = x->cpu = NULL;
}

/* ---- element helpers -------------------------------------------------------------- */

static int is_nan_at(const uint8_t *p, llmk_dtype dt) {
  uint32_t v = 0;
  switch (dt) {
    case LLMK_F32: memcpy(&v, p, 4); return (v & 0x7FFFFFFFu) > 0x7F800000u;
    case LLMK_BF16: memcpy(&v, p, 2); return (v & 0x7FFFu) > 0x7F80u;
    case LLMK_F16: memcpy(&v, p, 2); return (v & 0x7FFFu) > 0x7C00u;
    case LLMK_E4M3: return (p[0] & 0x7F) == 0x7F;
    case LLMK_E5M2: return (p[0] & 0x7F) > 0x7C;
    default: return 0;
  }
}

static void fmt_elem(char *s, size_t n, const uint8_t *p, llmk_dtype dt) {
  const size_t es = llmk_dtype_size(dt);
  uint64_t bits = 0;
  memcpy(&bits, p, es < 8 ? es : 8);
  double v = 0;
  int has_v = 1;
  switch (dt) {
    case LLMK_F32: v = *(const float *)(const void *)p; break;
    case LLMK_BF16: v = llmk_bf16_to_float((uint16_t)bits); break;
    case LLMK_F16: v = llmk_f16_to_float((uint16_t)bits); break;
    case LLMK_E4M3: case LLMK_E5M2: v = llmk_fp8_to_float((uint8_t)bits, dt); break;
    case LLMK_I32: v = (int32_t)bits; break;
    default: has_v = 0;
  }
  if (has_v) snprintf(s, n, "0x%0*llx (%.9g)", (int)(2 * es), (unsigned long long)bits, v);
  else snprintf(s, n, "0x%0*llx", (int)(2 * es), (unsigned long long)bits);
}

/* A view normalized to 4 dims (leading dims of 1). */
typedef struct view4 {
  int64_t d[4], st[4], off;
  int lead; /* dims added in front */
  size_t es;
} view4;
static void view4_of(const oc_buf *b, view4 *v) {
  v->lead = 4 - b->ndim;
  for (int i = 0; i < 4; i++) {
    const int j = i - v->lead;
    v->d[i] = j >= 0 ? b->shape[j] : 1;
    v->st[i] = j >= 0 ? b->strides[j] : 0;
  }
  if (b->ndim == 0) v->d[3] = 0;
  v->off = b->offset;
  v->es = llmk_dtype_size(b->dtype);
}
static void fmt_index(char *s, size_t n, const view4 *v, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
  const int64_t ix[4] = {i0, i1, i2, i3};
  size_t k = 0;
  s[0] = 0;
  for (int i = v->lead; i < 4 && k < n; i++)
    k += (size_t)snprintf(s + k, n - k, "%s%lld", i > v->lead ? "," : "", (long long)ix[i]);
}

typedef struct reporter {
  FILE *log;
  const char *label;
  int64_t shown;
} reporter;

/* Elements of view v where images a and b differ (naneq: NaN = NaN);
 * prints the first three. */
static int64_t cmp_view(const oc_buf *b, const uint8_t *a, const uint8_t *g, int naneq, const char *wa,
                        const char *wg, reporter *rep) {
  view4 v;
  view4_of(b, &v);
  int64_t bad = 0;
  for (int64_t i0 = 0; i0 < v.d[0]; i0++)
    for (int64_t i1 = 0; i1 < v.d[1]; i1++)
      for (int64_t i2 = 0; i2 < v.d[2]; i2++) {
        const int64_t rb = v.off + i0 * v.st[0] + i1 * v.st[1] + i2 * v.st[2];
        if (v.st[3] == 1 && v.d[3] > 0 && !memcmp(a + rb * v.es, g + rb * v.es, (size_t)v.d[3] * v.es)) continue;
        for (int64_t i3 = 0; i3 < v.d[3]; i3++) {
          const size_t o = (size_t)(rb + i3 * v.st[3]) * v.es;
          if (!memcmp(a + o, g + o, v.es) || (naneq && is_nan_at(a + o, b->dtype) && is_nan_at(g + o, b->dtype)))
            continue;
          if (bad++ < 3 && rep->shown++ < 12) {
            char ix[64], sa[64], sg[64];
            fmt_index(ix, sizeof ix, &v, i0, i1, i2, i3);
            fmt_elem(sa, sizeof sa, a + o, b->dtype);
            fmt_elem(sg, sizeof sg, g + o, b->dtype);
            fprintf(rep->log, "  %s: %s[%s]: %s %s, %s %s\n", rep->label, b->name, ix, wa, sa, wg, sg);
          }
        }
      }
  return bad;
}

/* Elements of a whole buffer (an in-place one) that differ. */
static int64_t cmp_flat(const oc_buf *b, const uint8_t *a, const uint8_t *g, int naneq, const char *wa,
                        const char *wg, reporter *rep) {
  const size_t es = llmk_dtype_size(b->dtype), n = b->bytes / es;
  if (!memcmp(a, g, b->bytes)) return 0;
  int64_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *x = a + i * es, *y = g + i * es;
    if (!memcmp(x, y, es) || (naneq && is_nan_at(x, b->dtype) && is_nan_at(y, b->dtype))) continue;
    if (bad++ < 3 && rep->shown++ < 12) {
      char sa[64], sg[64];
      fmt_elem(sa, sizeof sa, x, b->dtype);
      fmt_elem(sg, sizeof sg, y, b->dtype);
      fprintf(rep->log, "  %s: %s, element %zu of the buffer: %s %s, %s %s\n", rep->label, b->name, i, wa, sa, wg, sg);
    }
  }
  for (size_t i = n * es; i < b->bytes; i++) bad += a[i] != g[i];
  return bad;
}

/* 1 for every byte of the data region inside the view's elements. */
static uint8_t *element_mask(const oc_buf *b) {
  uint8_t *m = calloc(b->bytes ? b->bytes : 1, 1);
  if (!m) {
    fprintf(stderr, "opcheck: out of memory\n");
    exit(2);
  }
  view4 v;
  view4_of(b, &v);
  for (int64_t i0 = 0; i0 < v.d[0]; i0++)
    for (int64_t i1 = 0; i1 < v.d[1]; i1++)
      for (int64_t i2 = 0; i2 < v.d[2]; i2++) {
        const int64_t rb = v.off + i0 * v.st[0] + i1 * v.st[1] + i2 * v.st[2];
        if (v.st[3] == 1) {
          if (v.d[3] > 0) memset(m + rb * v.es, 1, (size_t)v.d[3] * v.es);
        } else {
          for (int64_t i3 = 0; i3 < v.d[3]; i3++) memset(m + (rb + i3 * v.st[3]) * v.es, 1, v.es);
        }
      }
  return m;
}

/* ---- backends: allocation and copies ----------------------------------------------- */

typedef struct side {
  int gpu;
  uint8_t *alloc[OC_MAX_BUFS]; /* OC_GUARD + bytes + OC_GUARD */
} side;

static size_t total_of(const oc_buf *b) { return OC_GUARD + b->bytes + OC_GUARD; }

static void *xmalloc(size_t n) {
  void *p = aligned_alloc(256, (n + 255) / 256 * 256);
  if (!p) {
    fprintf(stderr, "opcheck: out of memory (%zu bytes)\n", n);
    exit(2);
  }
  return p;
}

/* 0 and a reason in why on failure (device memory). */
static int side_alloc(side *s, const oc_case *c, char *why, size_t n) {
  for (int i = 0; i < c->nbuf; i++) {
    const size_t t = total_of(&c->buf[i]);
    if (!s->gpu) {
      s->alloc[i] = xmalloc(t);
      continue;
    }
#ifdef LLMK_WITH_CUDA
    const cudaError_t e = cudaMalloc((void **)&s->alloc[i], t);
    if (e != cudaSuccess) {
      snprintf(why, n, "cudaMalloc of %zu bytes for %s: %s", t, c->buf[i].name, cudaGetErrorString(e));
      s->alloc[i] = NULL;
      cudaGetLastError();
      return 0;
    }
#else
    snprintf(why, n, "built without CUDA");
    return 0;
#endif
  }
  return 1;
}
static void side_free(side *s, const oc_case *c) {
  for (int i = 0; i < c->nbuf; i++) {
    if (!s->alloc[i]) continue;
#ifdef LLMK_WITH_CUDA
    if (s->gpu) cudaFree(s->alloc[i]);
    else free(s->alloc[i]);
#else
    free(s->alloc[i]);
#endif
    s->alloc[i] = NULL;
  }
}
static int put_bytes(side *s, int i, const void *src, size_t n) {
  if (!s->gpu) return memcpy(s->alloc[i], src, n), 1;
#ifdef LLMK_WITH_CUDA
  return cudaMemcpy(s->alloc[i], src, n, cudaMemcpyHostToDevice) == cudaSuccess;
#else
  return 0;
#endif
}
static int set_bytes(side *s, int i, uint8_t v, size_t n) {
  if (!s->gpu) return memset(s->alloc[i], v, n), 1;
#ifdef LLMK_WITH_CUDA
  return cudaMemset(s->alloc[i], v, n) == cudaSuccess;
#else
  return 0;
#endif
}
static int get_bytes(side *s, int i, void *dst, size_t n) {
  if (!s->gpu) return memcpy(dst, s->alloc[i], n), 1;
#ifdef LLMK_WITH_CUDA
  return cudaMemcpy(dst, s->alloc[i], n, cudaMemcpyDeviceToHost) == cudaSuccess;
#else
  return 0;
#endif
}
static int side_sync(side *s, char *why, size_t n) {
  if (!s->gpu) return 1;
#ifdef LLMK_WITH_CUDA
  const cudaError_t e = cudaDeviceSynchronize();
  if (e != cudaSuccess) {
    snprintf(why, n, "CUDA error after the op: %s", cudaGetErrorString(e));
    return 0;
  }
  return 1;
#else
  (void)why, (void)n;
  return 0;
#endif
}

static void env_of(const oc_case *c, side *s, llmk_handle h, void *const *host, oc_env *e) {
  memset(e, 0, sizeof *e);
  e->h = h;
  e->backend = s->gpu ? LLMK_BACKEND_CUDA : LLMK_BACKEND_CPU;
  e->host = host;
  for (int i = 0; i < c->nbuf; i++) {
    e->base[i] = s->alloc[i] + OC_GUARD;
    e->t[i] = oc_view(c, i, e->base[i]);
  }
}

/* ---- one case ------------------------------------------------------------------------ */

typedef struct run_state {
  oc_ctx *x;
  const oc_case *c;
  oc_result *r;
  char label[300];
} run_state;

static void check(run_state *st, int ok, const char *fmt, ...) {
  st->r->checks++;
  if (ok) return;
  st->r->failed++;
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(st->x->log, "FAIL opcheck %s: %s\n", st->label, msg);
  if (!st->r->failure[0]) msgf(st->r->failure, sizeof st->r->failure, "%s: %s", st->label, msg);
}

/* Bytes of an output's allocation outside its elements that differ from the poison. */
static int64_t stray_bytes(const oc_buf *b, const uint8_t *img, const uint8_t *mask, uint8_t poison, int64_t *first) {
  int64_t bad = 0;
  *first = -1;
  const size_t t = total_of(b);
  for (size_t i = 0; i < t; i++) {
    const int inside = i >= OC_GUARD && i < OC_GUARD + b->bytes && mask[i - OC_GUARD];
    if (!inside && img[i] != poison) {
      if (*first < 0) *first = (int64_t)i - OC_GUARD;
      bad++;
    }
  }
  return bad;
}

typedef struct timing_ctx {
  const oc_case *c;
  const oc_env *e;
} timing_ctx;
static llmk_status timed_call(void *p, void *stream) {
  const timing_ctx *t = p;
  return t->c->run(t->c, t->e, stream);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Runs the case on one backend twice (two poisons); keeps the first run's
 * output images in out[]. Returns 1 if the runs succeeded (0 also when
 * CUDA refused the case: then r->skipped). */
static int run_side(run_state *st, side *s, uint8_t *const *img, void *const *host, uint8_t **mask, uint8_t **out,
                    const uint8_t poisons[2], int passes, const oc_opts *o) {
  const oc_case *c = st->c;
  oc_ctx *x = st->x;
  const char *who = s->gpu ? "cuda" : "cpu";
  char why[256] = "";
  if (!side_alloc(s, c, why, sizeof why)) {
    side_free(s, c);
    check(st, 0, "%s: %s", who, why);
    return 0;
  }
  oc_env env;
  env_of(c, s, s->gpu ? x->gpu : x->cpu, host, &env);
  uint8_t *tmp = NULL;
  size_t tmp_n = 0;
  for (int i = 0; i < c->nbuf; i++) tmp_n = total_of(&c->buf[i]) > tmp_n ? total_of(&c->buf[i]) : tmp_n;
  tmp = xmalloc(tmp_n);
  int ok = 1;
  for (int pass = 0; pass < passes && ok; pass++) {
    for (int i = 0; i < c->nbuf && ok; i++) {
      const oc_buf *b = &c->buf[i];
      if (b->role == OC_OUT) ok = set_bytes(s, i, poisons[pass], total_of(b));
      else if (pass == 0 || b->role == OC_INOUT) ok = put_bytes(s, i, img[i], total_of(b));
    }
    if (!ok) {
      check(st, 0, "%s: copying the inputs failed", who);
      break;
    }
    const llmk_status status = c->run(c, &env, NULL);
    if (!side_sync(s, why, sizeof why)) {
      check(st, 0, "%s: %s", who, why);
      x->gpu_broken = 1;
      ok = 0;
      break;
    }
    if (s->gpu && status == LLMK_ERR_NOT_SUPPORTED && (c->flags & OC_MAY_REFUSE)) {
      st->r->skipped++;
      msgf(st->r->skip_why, sizeof st->r->skip_why, "%s: not supported: %s", st->label, llmk_last_error());
      for (int i = 0; i < c->nbuf; i++) { /* nothing written */
        const oc_buf *b = &c->buf[i];
        if (b->role == OC_IN) continue;
        int untouched = get_bytes(s, i, tmp, total_of(b));
        if (b->role == OC_OUT)
          for (size_t k = 0; k < total_of(b); k++) untouched &= tmp[k] == poisons[pass];
        else
          untouched = untouched && !memcmp(tmp, img[i], total_of(b));
        check(st, untouched, "cuda answered NOT_SUPPORTED but wrote into %s", b->name);
      }
      ok = 0;
      break;
    }
    check(st, status == LLMK_SUCCESS, "%s: %s: %s", who, llmk_status_string(status), llmk_last_error());
    if (status != LLMK_SUCCESS) {
      ok = 0;
      break;
    }
    if (o && !o->check) break; /* perf only: one run, no checks */
    for (int i = 0; i < c->nbuf && ok; i++) {
      const oc_buf *b = &c->buf[i];
      if (b->role == OC_IN) continue;
      uint8_t *dst = pass == 0 ? out[i] : tmp;
      if (!get_bytes(s, i, dst, total_of(b))) {
        check(st, 0, "%s: copying %s back failed", who, b->name);
        ok = 0;
        break;
      }
      reporter rep = {x->log, st->label, 0};
      char wa[32], wb[32];
      snprintf(wa, sizeof wa, "%s run 1", who);
      snprintf(wb, sizeof wb, "%s run 2", who);
      if (b->role == OC_OUT) {
        int64_t first;
        const int64_t bad = stray_bytes(b, dst, mask[i], poisons[pass], &first);
        check(st, bad == 0, "%s: %lld bytes of %s's guards or row padding were written (the first at byte %lld)", who,
              (long long)bad, b->name, (long long)first);
        if (pass == 1) {
          const int64_t nd = cmp_view(b, out[i] + OC_GUARD, dst + OC_GUARD, b->cmp == OC_CMP_NANEQ, wa, wb, &rep);
          check(st, nd == 0, "%s: %lld elements of %s differ between runs with poisons 0x%02x and 0x%02x "
                "(not written, or not deterministic)", who, (long long)nd, b->name, poisons[0], poisons[1]);
        }
      } else {
        const int g_ok = !memcmp(dst, img[i], OC_GUARD) &&
                         !memcmp(dst + OC_GUARD + b->bytes, img[i] + OC_GUARD + b->bytes, OC_GUARD);
        check(st, g_ok, "%s: the guards of %s (in place) were written", who, b->name);
        if (pass == 1) {
          const int64_t nd = cmp_flat(b, out[i] + OC_GUARD, dst + OC_GUARD, b->cmp == OC_CMP_NANEQ, wa, wb, &rep);
          check(st, nd == 0, "%s: %lld elements of %s (in place) differ between two runs", who, (long long)nd, b->name);
        }
      }
    }
  }
  if (ok && (!o || o->check))
    for (int i = 0; i < c->nbuf; i++) { /* inputs unchanged, guards included */
      const oc_buf *b = &c->buf[i];
      if (b->role != OC_IN) continue;
      const int got = get_bytes(s, i, tmp, total_of(b));
      check(st, got && !memcmp(tmp, img[i], total_of(b)), "%s: input %s (or its guards) was written", who, b->name);
    }
  if (ok && o && o->perf) {
    if (s->gpu) {
      timing_ctx tc = {c, &env};
      double med = 0, gr = 0;
      const llmk_status ts = oc_time_fn(timed_call, &tc, o->reps > 0 ? o->reps : 20, o->graph_calls, &med, &gr);
      if (ts == LLMK_SUCCESS) {
        st->r->median_us = med, st->r->graph_us = gr;
      } else {
        check(st, 0, "cuda: timing: %s: %s", llmk_status_string(ts), llmk_last_error());
      }
    } else {
      const int reps = o->reps > 0 ? o->reps : 20;
      const double t0 = now_s();
      int n = 0;
      llmk_status ts = LLMK_SUCCESS;
      for (; n < reps && ts == LLMK_SUCCESS; n++) ts = c->run(c, &env, NULL);
      st->r->median_us = (now_s() - t0) / n * 1e6;
      check(st, ts == LLMK_SUCCESS, "cpu: timing: %s", llmk_last_error());
    }
    const double us = st->r->graph_us > 0 ? st->r->graph_us : st->r->median_us;
    if (us > 0) st->r->gbps = c->bytes / (us * 1e-6) / 1e9;
  }
  free(tmp);
  side_free(s, c);
  return ok;
}

int oc_run(oc_ctx *x, const oc_case *c, const oc_opts *opts, oc_result *r) {
  static const oc_opts defaults = OC_OPTS_INIT;
  const oc_opts *o = opts ? opts : &defaults;
  memset(r, 0, sizeof *r);
  run_state st = {x, c, r, ""};
  snprintf(st.label, sizeof st.label, "%s %s", c->op, c->name);
  const int want_gpu = !o->cpu_only && !(c->flags & OC_CPU_ONLY);
  const int use_gpu = want_gpu && x->gpu && !x->gpu_broken;
  if (want_gpu && !use_gpu) {
    r->skipped++;
    snprintf(r->skip_why, sizeof r->skip_why, "%s",
             x->gpu_broken ? "an earlier CUDA error left the context unusable" : x->why_no_gpu);
  }
  if (!o->check && !use_gpu && !o->cpu_only) return 1; /* perf only, without CUDA: nothing to do */

  /* host images: inputs and in-place buffers filled (random bytes first) */
  uint8_t *img[OC_MAX_BUFS] = {0}, *mask[OC_MAX_BUFS] = {0};
  uint8_t *out[2][OC_MAX_BUFS] = {{0}};
  void *host[OC_MAX_BUFS] = {0};
  oc_rng rng;
  oc_rng_seed(&rng, c->seed ^ 0x6F70636865636Bull);
  for (int i = 0; i < c->nbuf; i++) {
    const oc_buf *b = &c->buf[i];
    if (b->role == OC_OUT) {
      if (!o->check) continue;
      mask[i] = element_mask(b);
      for (int k = 0; k < 2; k++) out[k][i] = xmalloc(total_of(b));
      continue;
    }
    img[i] = xmalloc(total_of(b));
    oc_rand_bytes(&rng, img[i], total_of(b));
    host[i] = img[i] + OC_GUARD;
    if (b->role == OC_INOUT && o->check)
      for (int k = 0; k < 2; k++) out[k][i] = xmalloc(total_of(b));
  }
  if (c->fill) c->fill(c, host, &rng, x->cpu);

  static const uint8_t cpu_poison[2] = {0xFF, 0xA5}, gpu_poison[2] = {0x5A, 0xFF};
  int cpu_ok = 0, gpu_ok = 0;
  if (o->check || o->cpu_only) {
    side s = {0, {0}};
    cpu_ok = run_side(&st, &s, img, host, mask, out[0], cpu_poison, o->check ? 2 : 1, o->cpu_only ? o : NULL);
    if (o->cpu_only && !o->check) cpu_ok = 0;
  }
  if (use_gpu) {
    side s = {1, {0}};
    gpu_ok = run_side(&st, &s, img, host, mask, out[1], gpu_poison, o->check ? 2 : 1, o);
    r->gpu_ran = gpu_ok;
  }
  if (cpu_ok && gpu_ok && o->check) {
    for (int i = 0; i < c->nbuf; i++) {
      const oc_buf *b = &c->buf[i];
      if (b->role == OC_IN || b->cmp == OC_CMP_NONE) continue;
      reporter rep = {x->log, st.label, 0};
      int64_t bad;
      if (b->cmp == OC_CMP_CUSTOM)
        bad = c->compare(c, i, host, out[0][i] + OC_GUARD, out[1][i] + OC_GUARD, st.label, x->log);
      else if (b->role == OC_OUT)
        bad = cmp_view(b, out[0][i] + OC_GUARD, out[1][i] + OC_GUARD, b->cmp == OC_CMP_NANEQ, "cpu", "cuda", &rep);
      else
        bad = cmp_flat(b, out[0][i] + OC_GUARD, out[1][i] + OC_GUARD, b->cmp == OC_CMP_NANEQ, "cpu", "cuda", &rep);
      check(&st, bad == 0, "%lld elements of %s differ between CUDA and the CPU%s", (long long)bad, b->name,
            b->cmp == OC_CMP_CUSTOM ? " beyond the tolerance" : "");
    }
  }
  for (int i = 0; i < c->nbuf; i++) {
    free(img[i]);
    free(mask[i]);
    free(out[0][i]);
    free(out[1][i]);
  }
  return r->failed == 0;
}

/* ---- timing -------------------------------------------------------------------------- */

#ifdef LLMK_WITH_CUDA
static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

llmk_status oc_time_fn(oc_op_fn fn, void *ctx, int reps, int graph_calls, double *median_us, double *graph_us) {
  const size_t flush_bytes = (size_t)256 << 20; /* larger than L2 (50 MB on H100) */
  void *flush = NULL;
  cudaStream_t st;
  cudaEvent_t e0, e1;
  if (reps < 1) reps = 1;
  if (cudaMalloc(&flush, flush_bytes) != cudaSuccess) {
    cudaGetLastError();
    return LLMK_ERR_CUDA;
  }
  if (cudaStreamCreate(&st) != cudaSuccess) {
    cudaFree(flush);
    return LLMK_ERR_CUDA;
  }
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  llmk_status s = LLMK_SUCCESS;
  for (int i = 0; i < 5 && !s; i++) s = fn(ctx, st); /* warm-up */
  double *ms = malloc(sizeof(double) * (size_t)reps);
  for (int i = 0; i < reps && !s; i++) {
    cudaMemsetAsync(flush, i & 0xFF, flush_bytes, st);
    cudaEventRecord(e0, st);
    s = fn(ctx, st);
    cudaEventRecord(e1, st);
    cudaEventSynchronize(e1);
    float f = 0;
    cudaEventElapsedTime(&f, e0, e1);
    ms[i] = f;
  }
  if (!s) {
    qsort(ms, (size_t)reps, sizeof *ms, cmp_double);
    *median_us = ms[reps / 2] * 1e3;
  }
  free(ms);
  /* a graph of back-to-back calls: launch overhead amortized, as an engine replays it */
  *graph_us = 0;
  cudaGraph_t g;
  cudaGraphExec_t ge;
  if (!s && graph_calls > 0 && cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal) == cudaSuccess) {
    llmk_status cs = LLMK_SUCCESS;
    for (int i = 0; i < graph_calls && !cs; i++) cs = fn(ctx, st);
    if (cudaStreamEndCapture(st, &g) == cudaSuccess) {
      if (!cs && cudaGraphInstantiate(&ge, g, 0) == cudaSuccess) {
        double best[7];
        for (int r = 0; r < 7; r++) {
          cudaGraphLaunch(ge, st);
          cudaEventRecord(e0, st);
          cudaGraphLaunch(ge, st);
          cudaEventRecord(e1, st);
          cudaEventSynchronize(e1);
          float f = 0;
          cudaEventElapsedTime(&f, e0, e1);
          best[r] = f * 1e3 / graph_calls;
        }
        qsort(best, 7, sizeof *best, cmp_double);
        *graph_us = best[3];
        cudaGraphExecDestroy(ge);
      }
      cudaGraphDestroy(g);
    }
  }
  cudaStreamSynchronize(st);
  cudaGetLastError();
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaStreamDestroy(st);
  cudaFree(flush);
  return s;
}
#else
llmk_status oc_time_fn(oc_op_fn fn, void *ctx, int reps, int graph_calls, double *median_us, double *graph_us) {
  (void)fn, (void)ctx, (void)reps, (void)graph_calls, (void)median_us, (void)graph_us;
  return LLMK_ERR_NOT_SUPPORTED;
}
#endif
