/* llmk_gemm_grouped against the dense GEMM, group by group.
 *
 * include/llmk.h promises that each group's rows get exactly what
 * llmk_gemm_fp8 (or llmk_gemm_bf16) computes on those rows with the
 * group's weight, scales and bias. So every check here is bitwise: the
 * grouped output of each owned row against a dense call made by this test
 * from its own reading of the layout rules, and every row no group owns
 * (and the guard zones around y) still poisoned. Both layouts, every
 * scaling and BF16, empty groups, negative sizes, sizes past the rows
 * there are, G = 1 against one dense call, G = 256, K = 0, f32 and bf16
 * biases; then the argument errors, each of which must leave y untouched.
 *
 * With a Hopper GPU the same problems run on a CUDA handle, where the
 * reference is the GPU's own dense GEMM forced to the configuration whose
 * tiles the grouped kernel uses, at its K split (llmk_set_gemm_override):
 * the same instructions in the same order, so again bit for bit. Every
 * grouped configuration forced in turn, too, and graph replay with new
 * group sizes written between replays. */
#include <stdlib.h>
#include <string.h>

#include "guard_buf.h"
#include "harness.h"
#include "llmk.h"

static llmk_handle cpu;

typedef struct gprob {
  int fp8;
  llmk_scaling sc;
  llmk_group_layout layout;
  int64_t G, N, K, rows; /* rows of x: T (stacked) or G * m_max (masked) */
  int64_t m_max;
  uint8_t *x, *w; /* e4m3 codes, or bf16 bits (2 bytes each) */
  float *xs, *ws;
  void *bias;
  llmk_dtype bias_dt;
  int32_t *sizes;
} gprob;

static size_t es_of(const gprob *p) { return p->fp8 ? 1 : 2; }
static int64_t kb_of(const gprob *p) { return (p->K + 127) / 128; }
static int64_t nb_of(const gprob *p) { return (p->N + 127) / 128; }

/* A random e4m3 code that is not NaN, or a bf16 of a normal draw. */
static void fill_operand(uint8_t *v, int64_t n, int fp8) {
  for (int64_t i = 0; i < n; i++) {
    if (fp8) {
      uint8_t c = (uint8_t)t_rand_u64();
      if ((c & 0x7F) == 0x7F) c ^= 0x01;
      v[i] = c;
    } else {
      float f = t_rand_normal();
      uint32_t b;
      memcpy(&b, &f, 4);
      const uint16_t h = (uint16_t)(b >> 16);
      memcpy(v + 2 * i, &h, 2);
    }
  }
}

static float *rand_scales(int64_t n) {
  float *s = t_xmalloc((size_t)(n > 0 ? n : 1) * sizeof(float));
  for (int64_t i = 0; i < n; i++) s[i] = (float)(0.001 + 0.01 * t_rand_uniform());
  return s;
}

static void gprob_init(gprob *p, int fp8, llmk_scaling sc, llmk_group_layout layout, int64_t G, int64_t N, int64_t K,
                       int64_t rows_or_mmax, const int32_t *sizes, llmk_dtype bias_dt) {
  memset(p, 0, sizeof *p);
  p->fp8 = fp8, p->sc = sc, p->layout = layout, p->G = G, p->N = N, p->K = K;
  p->m_max = layout == LLMK_GROUP_MASKED ? rows_or_mmax : 0;
  p->rows = layout == LLMK_GROUP_MASKED ? G * rows_or_mmax : rows_or_mmax;
  const size_t es = es_of(p);
  p->x = t_xmalloc((size_t)(p->rows * K) * es + 1);
  p->w = t_xmalloc((size_t)(G * N * K) * es + 1);
  fill_operand(p->x, p->rows * K, fp8);
  fill_operand(p->w, G * N * K, fp8);
  if (fp8) {
    const int64_t nx = sc == LLMK_SCALING_TENSOR ? G : sc == LLMK_SCALING_ROW ? p->rows : p->rows * kb_of(p);
    const int64_t nw = sc == LLMK_SCALING_TENSOR ? G : sc == LLMK_SCALING_ROW ? G * N : G * nb_of(p) * kb_of(p);
    p->xs = rand_scales(nx), p->ws = rand_scales(nw);
  }
  p->bias_dt = bias_dt;
  if (bias_dt == LLMK_F32) {
    float *b = rand_scales(G * N);
    for (int64_t i = 0; i < G * N; i++) b[i] = 100.0f * (b[i] - 0.005f);
    p->bias = b;
  } else if (bias_dt == LLMK_BF16) {
    p->bias = t_xmalloc((size_t)(G * N > 0 ? G * N : 1) * 2);
    fill_operand(p->bias, G * N, 0);
  }
  p->sizes = t_xmalloc((size_t)(G > 0 ? G : 1) * sizeof(int32_t));
  if (G > 0) memcpy(p->sizes, sizes, (size_t)G * sizeof(int32_t));
}

static void gprob_free(gprob *p) {
  free(p->x), free(p->w), free(p->xs), free(p->ws), free(p->bias), free(p->sizes);
}

/* The grouped call's tensors. */
typedef struct gcall {
  llmk_tensor x, w, xs, ws, bias, sizes, y;
  llmk_grouped_gemm_desc d;
} gcall;

static gcall make_call(const gprob *p, uint16_t *y) {
  gcall c;
  const llmk_dtype in = p->fp8 ? LLMK_E4M3 : LLMK_BF16;
  const int stacked = p->layout == LLMK_GROUP_STACKED;
  const llmk_grouped_gemm_desc d = LLMK_GROUPED_GEMM_DESC_INIT;
  const llmk_tensor none = LLMK_TENSOR_NONE;
  c.d = d;
  c.d.layout = p->layout, c.d.scaling = p->sc;
  c.x = stacked ? llmk_tensor_2d(p->x, in, p->rows, p->K, p->K) : llmk_tensor_3d(p->x, in, p->G, p->m_max, p->K);
  c.w = llmk_tensor_3d(p->w, in, p->G, p->N, p->K);
  c.y = stacked ? llmk_tensor_2d(y, LLMK_BF16, p->rows, p->N, p->N)
                : llmk_tensor_3d(y, LLMK_BF16, p->G, p->m_max, p->N);
  c.xs = c.ws = c.bias = none;
  if (p->fp8) {
    const int64_t kb = kb_of(p);
    if (p->sc == LLMK_SCALING_TENSOR) {
      c.xs = llmk_tensor_1d(p->xs, LLMK_F32, p->G), c.ws = llmk_tensor_1d(p->ws, LLMK_F32, p->G);
    } else if (p->sc == LLMK_SCALING_ROW) {
      c.xs = stacked ? llmk_tensor_1d(p->xs, LLMK_F32, p->rows) : llmk_tensor_2d(p->xs, LLMK_F32, p->G, p->m_max, p->m_max);
      c.ws = llmk_tensor_2d(p->ws, LLMK_F32, p->G, p->N, p->N);
    } else {
      c.xs = stacked ? llmk_tensor_2d(p->xs, LLMK_F32, p->rows, kb, kb) : llmk_tensor_3d(p->xs, LLMK_F32, p->G, p->m_max, kb);
      c.ws = llmk_tensor_3d(p->ws, LLMK_F32, p->G, nb_of(p), kb);
    }
  }
  if (p->bias) c.bias = llmk_tensor_2d(p->bias, p->bias_dt, p->G, p->N, p->N);
  c.sizes = llmk_tensor_1d(p->sizes, LLMK_I32, p->G);
  return c;
}

static llmk_status run_grouped(llmk_handle h, gcall *c, int fp8) {
  return llmk_gemm_grouped(h, &c->d, &c->x, &c->w, fp8 ? &c->xs : NULL, fp8 ? &c->ws : NULL,
                           c->bias.data ? &c->bias : NULL, &c->sizes, &c->y, NULL);
}

/* The dense call on handle h on group g's rows [r0, r0 + n) into out [n,
 * N] (p's pointers and out in h's memory). */
static void dense_group(llmk_handle h, const gprob *p, int64_t g, int64_t r0, int64_t n, uint16_t *out) {
  const llmk_dtype in = p->fp8 ? LLMK_E4M3 : LLMK_BF16;
  const size_t es = es_of(p);
  llmk_tensor x = llmk_tensor_2d(p->x + (size_t)(r0 * p->K) * es, in, n, p->K, p->K);
  llmk_tensor w = llmk_tensor_2d(p->w + (size_t)(g * p->N * p->K) * es, in, p->N, p->K, p->K);
  llmk_tensor y = llmk_tensor_2d(out, LLMK_BF16, n, p->N, p->N);
  llmk_tensor b = llmk_tensor_1d(p->bias ? (uint8_t *)p->bias + (size_t)(g * p->N) * (p->bias_dt == LLMK_BF16 ? 2 : 4)
                                         : NULL,
                                 p->bias_dt, p->N);
  llmk_status s;
  if (!p->fp8) {
    s = llmk_gemm_bf16(h, LLMK_GEMM_AUTO, &x, &w, p->bias ? &b : NULL, &y, NULL);
  } else {
    llmk_gemm_desc d = LLMK_GEMM_DESC_INIT;
    d.scaling = p->sc;
    llmk_tensor xs, ws;
    const int64_t kb = kb_of(p), nb = nb_of(p);
    if (p->sc == LLMK_SCALING_TENSOR) {
      xs = llmk_tensor_1d(p->xs + g, LLMK_F32, 1), ws = llmk_tensor_1d(p->ws + g, LLMK_F32, 1);
    } else if (p->sc == LLMK_SCALING_ROW) {
      xs = llmk_tensor_1d(p->xs + r0, LLMK_F32, n), ws = llmk_tensor_1d(p->ws + g * p->N, LLMK_F32, p->N);
    } else {
      xs = llmk_tensor_2d(p->xs + r0 * kb, LLMK_F32, n, kb, kb);
      ws = llmk_tensor_2d(p->ws + g * nb * kb, LLMK_F32, nb, kb, kb);
    }
    s = llmk_gemm_fp8(h, &d, &x, &w, &xs, &ws, p->bias ? &b : NULL, &y, NULL);
  }
  CHECK(s == LLMK_SUCCESS, "dense group %lld: %s", (long long)g, llmk_last_error());
}

static void check_rows(llmk_handle h, const gprob *p, const int32_t *sizes, const uint8_t *ybase, const char *label);

/* ---- CUDA --------------------------------------------------------------- */
#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>

#include "core/env.h"
#include "core/internal.h" /* the handle's device, which the grouped choice weighs */
#include "cuda/gemm_grouped.h"

static llmk_handle gpu;

static void *dev_copy(const void *h, size_t n) {
  void *d = NULL;
  T_CU(cudaMalloc(&d, n ? n : 1));
  if (n) T_CU(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice));
  return d;
}

/* The grouped kernel the library runs on p and its K split
 * (gemm_grouped_choice.c), and with it the dense configuration of the same
 * tiles and numerics, which the reference is forced to. */
static llmk_grouped_choice grouped_choice(const gprob *p) {
  llmk_grouped_shape s;
  s.layout = p->layout, s.G = p->G, s.rows = p->rows, s.m_max = p->m_max, s.N = p->N, s.K = p->K;
  s.bf16 = !p->fp8, s.promote = p->fp8 && p->sc == LLMK_SCALING_BLOCK;
  return llmk_grouped_choose(&s, &gpu->gemm_dev);
}

/* Device copies of a problem's operands. */
typedef struct dprob {
  gprob h;       /* host problem, its pointers replaced by device ones */
  uint8_t *ybase; /* y with GUARD poisoned bytes either side */
} dprob;

static void dprob_init(dprob *d, const gprob *p) {
  d->h = *p;
  const size_t es = es_of(p);
  d->h.x = dev_copy(p->x, (size_t)(p->rows * p->K) * es);
  d->h.w = dev_copy(p->w, (size_t)(p->G * p->N * p->K) * es);
  if (p->fp8) {
    const int64_t kb = kb_of(p), nb = nb_of(p);
    const int64_t nx = p->sc == LLMK_SCALING_TENSOR ? p->G : p->sc == LLMK_SCALING_ROW ? p->rows : p->rows * kb;
    const int64_t nw = p->sc == LLMK_SCALING_TENSOR ? p->G : p->sc == LLMK_SCALING_ROW ? p->G * p->N : p->G * nb * kb;
    d->h.xs = dev_copy(p->xs, (size_t)nx * 4), d->h.ws = dev_copy(p->ws, (size_t)nw * 4);
  }
  if (p->bias) d->h.bias = dev_copy(p->bias, (size_t)(p->G * p->N) * (p->bias_dt == LLMK_BF16 ? 2 : 4));
  d->h.sizes = dev_copy(p->sizes, (size_t)p->G * 4);
  const size_t yb = (size_t)(p->rows * p->N) * 2 + 2 * GUARD;
  T_CU(cudaMalloc((void **)&d->ybase, yb));
  T_CU(cudaMemset(d->ybase, 0xA5, yb));
}

static void dprob_free(dprob *d) {
  cudaFree(d->h.x), cudaFree(d->h.w), cudaFree(d->h.xs), cudaFree(d->h.ws), cudaFree(d->h.bias);
  cudaFree(d->h.sizes), cudaFree(d->ybase);
}

static void check_grouped_gpu(const gprob *p, const char *label) {
  dprob d;
  dprob_init(&d, p);
  gcall c = make_call(&d.h, (uint16_t *)(d.ybase + GUARD));
  const llmk_status s = run_grouped(gpu, &c, p->fp8);
  CHECK(s == LLMK_SUCCESS, "[gpu %s] %s", label, llmk_last_error());
  T_CU(cudaDeviceSynchronize());
  if (s == LLMK_SUCCESS) check_rows(gpu, &d.h, p->sizes, d.ybase, label);
  dprob_free(&d);
}

/* A captured grouped GEMM replays with the sizes the device holds: new
 * sizes (more rows in one group, none in another, a total past T) written
 * between replays. */
static void graph_replay_gpu(int fp8, llmk_scaling sc) {
  const int32_t first[4] = {3, 9, 0, 4}, second[4] = {0, 2, 14, 3};
  gprob p;
  gprob_init(&p, fp8, sc, LLMK_GROUP_STACKED, 4, 64, 256, 16, first, LLMK_F32);
  dprob d;
  dprob_init(&d, &p);
  gcall c = make_call(&d.h, (uint16_t *)(d.ybase + GUARD));
  cudaStream_t st;
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  T_CU(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  T_CU(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  const llmk_status s = llmk_gemm_grouped(gpu, &c.d, &c.x, &c.w, fp8 ? &c.xs : NULL, fp8 ? &c.ws : NULL, &c.bias,
                                          &c.sizes, &c.y, st);
  T_CU(cudaStreamEndCapture(st, &graph));
  CHECK(s == LLMK_SUCCESS, "[graph] %s", llmk_last_error());
  T_CU(cudaGraphInstantiate(&exec, graph, 0));
  for (int rep = 0; rep < 2; rep++) {
    const int32_t *sz = rep ? second : first;
    T_CU(cudaMemcpy(d.h.sizes, sz, sizeof first, cudaMemcpyHostToDevice));
    T_CU(cudaMemset(d.ybase, 0xA5, (size_t)(p.rows * p.N) * 2 + 2 * GUARD));
    T_CU(cudaGraphLaunch(exec, st));
    T_CU(cudaStreamSynchronize(st));
    check_rows(gpu, &d.h, sz, d.ybase, rep ? "graph replay, second sizes" : "graph replay, first sizes");
  }
  cudaGraphExecDestroy(exec), cudaGraphDestroy(graph), cudaStreamDestroy(st);
  dprob_free(&d);
  gprob_free(&p);
}
#endif

/* Group g's rows [r0, r0 + n) by handle h's dense GEMM, into host out. */
static void dense_rows(llmk_handle h, const gprob *p, int64_t g, int64_t r0, int64_t n, uint16_t *out) {
  if (h == cpu) {
    dense_group(h, p, g, r0, n, out);
    return;
  }
#ifdef LLMK_WITH_CUDA
  uint16_t *dy = NULL;
  T_CU(cudaMalloc((void **)&dy, (size_t)(n * p->N) * 2));
  dense_group(h, p, g, r0, n, dy);
  T_CU(cudaDeviceSynchronize());
  T_CU(cudaMemcpy(out, dy, (size_t)(n * p->N) * 2, cudaMemcpyDeviceToHost));
  cudaFree(dy);
#endif
}

/* The grouped output of p on handle h (y with GUARD poisoned bytes either
 * side at ybase, in h's memory; already run), with row ownership by the
 * host sizes `sizes`: every owned row bitwise its group's dense GEMM on h
 * (on a GPU forced to the grouped kernel's tiles and K split, grouped_choice), every other
 * row and both guards still poisoned. */
static void check_rows(llmk_handle h, const gprob *p, const int32_t *sizes, const uint8_t *ybase, const char *label) {
  const size_t ybytes = (size_t)(p->rows * p->N) * 2;
  uint8_t *yb = t_xmalloc(ybytes + 2 * GUARD);
  if (h == cpu) memcpy(yb, ybase, ybytes + 2 * GUARD);
#ifdef LLMK_WITH_CUDA
  if (h != cpu) {
    T_CU(cudaMemcpy(yb, ybase, ybytes + 2 * GUARD, cudaMemcpyDeviceToHost));
    const llmk_grouped_choice ch = grouped_choice(p);
    CHECK(ch.cfg >= 0, "[gpu %s] no grouped configuration serves the call", label);
    llmk_gemm_override o = LLMK_GEMM_OVERRIDE_INIT;
    o.backend = LLMK_GEMM_OWN; /* never cuBLASLt, whatever the dense dispatcher's table says */
    o.splits = ch.cfg >= 0 ? ch.splits : 1;
    CHECK(llmk_gemm_config_find(ch.cfg >= 0 ? llmk_grouped_cfgs[ch.cfg].dense : "", &o.config) == LLMK_SUCCESS, "%s",
          llmk_last_error());
    CHECK(llmk_set_gemm_override(h, &o) == LLMK_SUCCESS, "%s", llmk_last_error());
  }
#endif
  const uint16_t *y = (const uint16_t *)(yb + GUARD);
  uint8_t *owned = calloc((size_t)(p->rows > 0 ? p->rows : 1), 1);
  uint16_t *ref = t_xmalloc((size_t)(p->rows * p->N + 1) * 2);
  int64_t next = 0, bad = 0;
  for (int64_t g = 0; g < p->G; g++) {
    const int64_t sz = sizes[g] > 0 ? sizes[g] : 0;
    int64_t r0, n;
    if (p->layout == LLMK_GROUP_STACKED) {
      r0 = next < p->rows ? next : p->rows;
      n = sz < p->rows - r0 ? sz : p->rows - r0;
      next += sz;
    } else {
      r0 = g * p->m_max, n = sz < p->m_max ? sz : p->m_max;
    }
    if (n == 0 || p->N == 0) continue;
    dense_rows(h, p, g, r0, n, ref);
    for (int64_t r = 0; r < n; r++) owned[r0 + r] = 1;
    if (memcmp(ref, y + r0 * p->N, (size_t)(n * p->N) * 2)) {
      if (!bad) { /* the first difference, to reproduce it */
        int64_t i = 0;
        while (ref[i] == y[r0 * p->N + i]) i++;
        fprintf(stderr, "  [%s %s] G %lld N %lld K %lld: group %lld (rows %lld..%lld) row %lld col %lld: 0x%04x, "
                "dense 0x%04x\n", h == cpu ? "cpu" : "gpu", label, (long long)p->G, (long long)p->N, (long long)p->K,
                (long long)g, (long long)r0, (long long)(r0 + n), (long long)(r0 + i / p->N), (long long)(i % p->N),
                y[r0 * p->N + i], ref[i]);
      }
      bad++;
    }
  }
  if (h != cpu) llmk_set_gemm_override(h, NULL);
  const char *where = h == cpu ? "cpu" : "gpu";
  CHECK(bad == 0, "[%s %s] %lld groups differ from their dense GEMM", where, label, (long long)bad);
  int64_t stray = 0, guard = 0;
  for (int64_t r = 0; r < p->rows; r++)
    if (!owned[r])
      for (int64_t j = 0; j < p->N * 2; j++) stray += ((const uint8_t *)(y + r * p->N))[j] != 0xA5;
  CHECK(stray == 0, "[%s %s] %lld bytes written in rows no group owns", where, label, (long long)stray);
  for (int i = 0; i < GUARD; i++) guard += (yb[i] != 0xA5) + (yb[GUARD + ybytes + i] != 0xA5);
  CHECK(guard == 0, "[%s %s] %lld guard bytes around y overwritten", where, label, (long long)guard);
  free(owned), free(ref), free(yb);
}

/* Runs the grouped GEMM on p on the CPU (and the GPU) and checks its rows. */
static void check_grouped(const gprob *p, const char *label) {
  gbuf yb;
  uint16_t *y = gbuf_alloc(&yb, (size_t)(p->rows * p->N) * 2, 0xA5);
  gcall c = make_call(p, y);
  const llmk_status s = run_grouped(cpu, &c, p->fp8);
  CHECK(s == LLMK_SUCCESS, "[%s] %s", label, llmk_last_error());
  if (s == LLMK_SUCCESS) check_rows(cpu, p, p->sizes, yb.base, label);
  free(yb.base);
#ifdef LLMK_WITH_CUDA
  if (gpu) check_grouped_gpu(p, label);
#endif
}

static const char *kind_name(int fp8, llmk_scaling sc) {
  return !fp8 ? "bf16" : sc == LLMK_SCALING_TENSOR ? "tensor" : sc == LLMK_SCALING_ROW ? "row" : "block";
}

/* Every scaling and both layouts on ragged groups (an empty group, a
 * negative size, a group larger than M_max, sizes past T). */
static void layouts_and_scalings(void) {
  static const int32_t st_sizes[] = {5, 0, 12, -3, 3};       /* stacked, T = 20: all rows owned */
  static const int32_t over_sizes[] = {4, 9, 7, 2, 0};       /* T = 20: the third clipped, the fourth gets none */
  static const int32_t under_sizes[] = {2, 3, 0, 1, 0};      /* T = 20: rows 6..19 unowned */
  static const int32_t mk_sizes[] = {3, 0, 7, 9, -1};        /* masked, M_max = 7 */
  for (int kind = 0; kind < 4; kind++) {
    const int fp8 = kind < 3;
    const llmk_scaling sc = kind == 0 ? LLMK_SCALING_TENSOR : kind == 1 ? LLMK_SCALING_ROW : LLMK_SCALING_BLOCK;
    for (int bi = 0; bi < 3; bi++) {
      const llmk_dtype bdt = bi == 0 ? (llmk_dtype)-1 : bi == 1 ? LLMK_F32 : LLMK_BF16;
      const int32_t *cases[] = {st_sizes, over_sizes, under_sizes};
      for (int ci = 0; ci < 3; ci++) {
        gprob p;
        char label[96];
        gprob_init(&p, fp8, sc, LLMK_GROUP_STACKED, 5, 24, 272, 20, cases[ci], bdt);
        snprintf(label, sizeof label, "stacked %s case %d bias %d", kind_name(fp8, sc), ci, bi);
        check_grouped(&p, label);
        gprob_free(&p);
      }
      gprob p;
      char label[96];
      gprob_init(&p, fp8, sc, LLMK_GROUP_MASKED, 5, 24, 272, 7, mk_sizes, bdt);
      snprintf(label, sizeof label, "masked %s bias %d", kind_name(fp8, sc), bi);
      check_grouped(&p, label);
      gprob_free(&p);
    }
  }
}

/* G = 1 owning every row is the dense GEMM itself; G = 256 with random
 * sizes; K = 0 writes the bias into owned rows only. */
static void edge_counts(void) {
  for (int kind = 0; kind < 4; kind++) {
    const int fp8 = kind < 3;
    const llmk_scaling sc = kind == 0 ? LLMK_SCALING_TENSOR : kind == 1 ? LLMK_SCALING_ROW : LLMK_SCALING_BLOCK;
    const int32_t all[1] = {33};
    gprob p;
    gprob_init(&p, fp8, sc, LLMK_GROUP_STACKED, 1, 40, 400, 33, all, LLMK_F32);
    check_grouped(&p, kind_name(fp8, sc));
    gprob_free(&p);

    int32_t many[256];
    int64_t T = 0;
    for (int g = 0; g < 256; g++) many[g] = (int32_t)(t_rand_u64() % 4), T += many[g];
    gprob_init(&p, fp8, sc, LLMK_GROUP_STACKED, 256, 8, 48, T, many, (llmk_dtype)-1);
    char label[64];
    snprintf(label, sizeof label, "%s G = 256 stacked", kind_name(fp8, sc));
    check_grouped(&p, label);
    gprob_free(&p);
    gprob_init(&p, fp8, sc, LLMK_GROUP_MASKED, 256, 8, 48, 3, many, (llmk_dtype)-1);
    snprintf(label, sizeof label, "%s G = 256 masked", kind_name(fp8, sc));
    check_grouped(&p, label);
    gprob_free(&p);

    const int32_t k0[3] = {2, 0, 3};
    gprob_init(&p, fp8, sc, LLMK_GROUP_STACKED, 3, 16, 0, 6, k0, LLMK_BF16);
    check_grouped(&p, "K = 0");
    gprob_free(&p);
  }
}

/* One problem per tile the choice can make: few rows over a long K (a
 * swapped tile of 16 tokens, K split over a cluster), many small groups
 * over a wide W (swapped tiles walked by persistent CTAs), groups of about
 * 25, 45 and 120 rows (the 32- and 64-token swapped tiles and the
 * persistent tile), stacked and masked. */
static void tile_regimes(void) {
  static const int32_t few[3] = {1, 0, 3}, s25[2] = {20, 30}, s45[2] = {40, 50}, s120[2] = {150, 90};
  for (int kind = 0; kind < 4; kind++) {
    const int fp8 = kind < 3;
    const llmk_scaling sc = kind == 0 ? LLMK_SCALING_TENSOR : kind == 1 ? LLMK_SCALING_ROW : LLMK_SCALING_BLOCK;
    gprob p;
    gprob_init(&p, fp8, sc, LLMK_GROUP_STACKED, 3, 136, 2000, 4, few, LLMK_F32);
    check_grouped(&p, "few rows, long K, stacked");
    gprob_free(&p);
    gprob_init(&p, fp8, sc, LLMK_GROUP_MASKED, 3, 136, 2000, 4, few, LLMK_BF16);
    check_grouped(&p, "few rows, long K, masked");
    gprob_free(&p);
    /* enough tiles that swapped tiles are walked by persistent CTAs */
    int32_t many[32];
    int64_t T = 0;
    for (int g = 0; g < 16; g++) many[g] = (int32_t)(t_rand_u64() % 9), T += many[g];
    gprob_init(&p, fp8, sc, LLMK_GROUP_STACKED, 16, 1024, 256, T, many, LLMK_F32);
    check_grouped(&p, "persistent swapped tiles, stacked");
    gprob_free(&p);
    for (int g = 0; g < 32; g++) many[g] = (int32_t)(t_rand_u64() % 20) - 2;
    gprob_init(&p, fp8, sc, LLMK_GROUP_MASKED, 32, 1024, 256, 16, many, (llmk_dtype)-1);
    check_grouped(&p, "persistent swapped tiles, masked");
    gprob_free(&p);
    const int32_t *sizes[3] = {s25, s45, s120};
    for (int i = 0; i < 3; i++) {
      gprob_init(&p, fp8, sc, LLMK_GROUP_STACKED, 2, 200, 384, sizes[i][0] + sizes[i][1], sizes[i], (llmk_dtype)-1);
      check_grouped(&p, i == 0 ? "about 25 rows a group" : i == 1 ? "about 45 rows a group" : "about 120 rows a group");
      gprob_free(&p);
    }
  }
}

#ifdef LLMK_WITH_CUDA
/* The choice (gemm_grouped_choice.c), host logic: on the H100's figures
 * every call gets a configuration of its kind and a K split the kernels
 * take; decode rows take swapped tiles, prefill the persistent one; few
 * rows over a long K split K; LLMK_GEMM_OWN_CFG / LLMK_GEMM_SPLITS force. */
static void choice(void) {
  const llmk_gemm_device *dev = llmk_gemm_device_h100();
  static const int64_t Gs[] = {1, 8, 32, 128, 256}, Ts[] = {1, 8, 64, 512, 16384}, Ns[] = {136, 4096, 28672},
                       Ks[] = {0, 272, 7168};
  int64_t bad = 0, split = 0;
  for (int kind = 0; kind < 3; kind++)
    for (int lay = 0; lay < 2; lay++)
      for (int gi = 0; gi < 5; gi++)
        for (int ti = 0; ti < 5; ti++)
          for (int ni = 0; ni < 3; ni++)
            for (int ki = 0; ki < 3; ki++) {
              llmk_grouped_shape s;
              s.layout = lay ? LLMK_GROUP_MASKED : LLMK_GROUP_STACKED, s.G = Gs[gi];
              s.m_max = lay ? Ts[ti] : 0, s.rows = lay ? Gs[gi] * Ts[ti] : Ts[ti];
              s.N = Ns[ni], s.K = Ks[ki], s.bf16 = kind == 2, s.promote = kind == 1;
              const llmk_grouped_choice c = llmk_grouped_choose(&s, dev);
              const llmk_grouped_cfg *g = c.cfg >= 0 && c.cfg < LLMK_GROUPED_NUM_CFGS ? &llmk_grouped_cfgs[c.cfg] : NULL;
              if (!g || g->bf16 != s.bf16 || (!s.bf16 && g->promote != s.promote) || c.splits < 1 ||
                  c.splits > LLMK_GEMM_MAX_SPLITS || (!g->split && c.splits != 1) || c.forced)
                bad++;
              else if (g->split && c.splits > 1)
                split++;
            }
  CHECK(bad == 0, "%lld grouped choices outside the rules", (long long)bad);
  /* every configuration's dense twin exists with its tile, operand kind,
   * promotion, swap and consumers (the GPU half compares them bit for bit;
   * the cost model prices a configuration by its twin's family) */
  int64_t twins = 0;
  for (int i = 0; i < LLMK_GROUPED_NUM_CFGS; i++) {
    const llmk_grouped_cfg *c = &llmk_grouped_cfgs[i];
    int idx = -1;
    llmk_gemm_config d = LLMK_GEMM_CONFIG_INIT;
    if (llmk_gemm_config_find(c->dense, &idx) == LLMK_SUCCESS && llmk_gemm_config_get(idx, &d) == LLMK_SUCCESS &&
        d.in_dtype == (c->bf16 ? LLMK_BF16 : LLMK_E4M3) && d.tile_m == c->tile_m && d.tile_n == c->tile_n &&
        d.fp32_promote == c->promote && d.swap == c->swap && d.ping_pong == c->ping)
      twins++;
    else
      CHECK(0, "%s: no dense twin %s of the same tile and kind", c->name, c->dense);
  }
  CHECK(twins == LLMK_GROUPED_NUM_CFGS, "dense twins");
  CHECK(split > 0, "no call split K");
  llmk_grouped_shape decode = {LLMK_GROUP_STACKED, 32, 8, 0, 4096, 7168, 0, 0};
  llmk_grouped_shape prefill = decode;
  prefill.rows = 16384;
  CHECK(llmk_grouped_cfgs[llmk_grouped_choose(&decode, dev).cfg].swap, "decode rows take a swapped tile");
  llmk_grouped_shape batch = decode, one = decode;
  batch.rows = 128, one.rows = 1;
  CHECK(!llmk_grouped_cfgs[llmk_grouped_choose(&batch, dev).cfg].split, "128 rows: persistent swapped tiles");
  CHECK(llmk_grouped_cfgs[llmk_grouped_choose(&one, dev).cfg].split, "one row: a split swapped tile");
  CHECK(!llmk_grouped_cfgs[llmk_grouped_choose(&prefill, dev).cfg].swap, "prefill takes the persistent tile");
  setenv("LLMK_GEMM_OWN_CFG", "grouped_swap_64x32_s12", 1); /* a split configuration */
  setenv("LLMK_GEMM_SPLITS", "3", 1);
  llmk_env_refresh();
  const llmk_grouped_choice f = llmk_grouped_choose(&prefill, dev);
  CHECK(f.forced && f.splits == 3 && !strcmp(llmk_grouped_cfgs[f.cfg].name, "grouped_swap_64x32_s12"),
        "LLMK_GEMM_OWN_CFG and LLMK_GEMM_SPLITS force a grouped configuration");
  llmk_grouped_shape bf = prefill;
  bf.bf16 = 1;
  CHECK(!llmk_grouped_choose(&bf, dev).forced, "a forced FP8 configuration leaves BF16 calls alone");
  unsetenv("LLMK_GEMM_OWN_CFG"), unsetenv("LLMK_GEMM_SPLITS");
  llmk_env_refresh();
}
#endif

#ifdef LLMK_WITH_CUDA
/* Every grouped configuration, forced through LLMK_GEMM_OWN_CFG (as
 * `bench/gpu_run.sh grouped_sweep` forces them), against its dense twin on
 * ragged groups: a group ending inside a row tile, an empty group, column
 * tiles past N, stacked and masked. */
static void every_config_gpu(void) {
  static const int32_t st[3] = {70, 0, 150}, mk[3] = {33, 0, 64};
  for (int i = 0; i < LLMK_GROUPED_NUM_CFGS; i++) {
    const llmk_grouped_cfg *c = &llmk_grouped_cfgs[i];
    const int fp8 = !c->bf16;
    const llmk_scaling sc = c->promote ? LLMK_SCALING_BLOCK : LLMK_SCALING_ROW;
    setenv("LLMK_GEMM_OWN_CFG", c->name, 1);
    llmk_env_refresh();
    char label[96];
    gprob p;
    gprob_init(&p, fp8, sc, LLMK_GROUP_STACKED, 3, 264, 640, 220, st, LLMK_F32);
    snprintf(label, sizeof label, "%s, stacked", c->name);
    CHECK(grouped_choice(&p).forced, "[%s] not forced", label);
    check_grouped_gpu(&p, label);
    gprob_free(&p);
    gprob_init(&p, fp8, sc, LLMK_GROUP_MASKED, 3, 264, 640, 64, mk, LLMK_BF16);
    snprintf(label, sizeof label, "%s, masked", c->name);
    check_grouped_gpu(&p, label);
    gprob_free(&p);
  }
  unsetenv("LLMK_GEMM_OWN_CFG");
  llmk_env_refresh();
}
#endif

/* Bad arguments: a clear status, and y untouched. */
static void errors(void) {
  const int32_t sz[3] = {2, 2, 2};
  gprob p;
  gprob_init(&p, 1, LLMK_SCALING_ROW, LLMK_GROUP_STACKED, 3, 16, 64, 6, sz, LLMK_F32);
  uint16_t *y = t_xmalloc((size_t)(p.rows * p.N) * 2);
  memset(y, 0x5A, (size_t)(p.rows * p.N) * 2);
  struct {
    const char *what;
    llmk_status want;
  } cases[] = {
      {"layout 7", LLMK_ERR_INVALID_ARGUMENT},     {"backend cublaslt", LLMK_ERR_NOT_SUPPORTED},
      {"fast + block", LLMK_ERR_INVALID_ARGUMENT}, {"col scaling", LLMK_ERR_INVALID_ARGUMENT},
      {"w 2 dims", LLMK_ERR_INVALID_ARGUMENT},     {"x K differs", LLMK_ERR_INVALID_ARGUMENT},
      {"y N differs", LLMK_ERR_INVALID_ARGUMENT},  {"sizes f32", LLMK_ERR_INVALID_ARGUMENT},
      {"sizes [2]", LLMK_ERR_INVALID_ARGUMENT},    {"w_scale [G]", LLMK_ERR_INVALID_ARGUMENT},
      {"x_scale NULL", LLMK_ERR_INVALID_ARGUMENT}, {"bias [N]", LLMK_ERR_INVALID_ARGUMENT},
      {"y overlaps x", LLMK_ERR_INVALID_ARGUMENT}, {"masked x 2 dims", LLMK_ERR_INVALID_ARGUMENT},
      {"x bf16, w e4m3", LLMK_ERR_INVALID_ARGUMENT}, {"desc NULL", LLMK_ERR_INVALID_ARGUMENT},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    gcall c = make_call(&p, y);
    const llmk_grouped_gemm_desc *dp = &c.d;
    const llmk_tensor *xs = &c.xs;
    switch (i) {
      case 0: c.d.layout = (llmk_group_layout)7; break;
      case 1: c.d.backend = LLMK_GEMM_CUBLASLT; break;
      case 2: c.d.scaling = LLMK_SCALING_BLOCK, c.d.accum = LLMK_ACCUM_FAST; break;
      case 3: c.d.scaling = LLMK_SCALING_COL; break;
      case 4: c.w = llmk_tensor_2d(p.w, LLMK_E4M3, p.N, p.K, p.K); break;
      case 5: c.x.shape[1] = 32, c.x.strides[0] = 64; break;
      case 6: c.y.shape[1] = 8; break;
      case 7: c.sizes.dtype = LLMK_F32; break;
      case 8: c.sizes.shape[0] = 2; break;
      case 9: c.ws = llmk_tensor_1d(p.ws, LLMK_F32, p.G); break;
      case 10: xs = NULL; break;
      case 11: c.bias = llmk_tensor_1d(p.bias, LLMK_F32, p.N); break;
      case 12: c.y = llmk_tensor_2d(p.x, LLMK_BF16, 3, p.N, p.N); break;
      case 13: c.d.layout = LLMK_GROUP_MASKED; break;
      case 14: c.x.dtype = LLMK_BF16, c.x.strides[0] = p.K, c.x.shape[1] = p.K / 2; break;
      case 15: dp = NULL; break;
    }
    const llmk_status s = llmk_gemm_grouped(cpu, dp, &c.x, &c.w, xs, &c.ws, c.bias.data ? &c.bias : NULL,
                                            &c.sizes, &c.y, NULL);
    CHECK(s == cases[i].want, "error case \"%s\": status %d, expected %d (%s)", cases[i].what, (int)s,
          (int)cases[i].want, llmk_last_error());
    int64_t touched = 0;
    for (int64_t j = 0; j < p.rows * p.N * 2; j++) touched += ((uint8_t *)y)[j] != 0x5A;
    CHECK(touched == 0, "error case \"%s\": %lld bytes of y written", cases[i].what, (long long)touched);
  }
  CHECK(llmk_struct_size(LLMK_STRUCT_GROUPED_GEMM_DESC) == LLMK_GROUPED_GEMM_DESC_SIZE, "struct size");
  free(y);
  gprob_free(&p);
}

int main(void) {
  t_seed();
  CHECK(llmk_create_cpu(&cpu) == LLMK_SUCCESS, "%s", llmk_last_error());
#ifdef LLMK_WITH_CUDA
  int ndev = 0;
  llmk_device_info info = LLMK_DEVICE_INFO_INIT;
  if (llmk_cuda_device_count(&ndev) == LLMK_SUCCESS && ndev > 0 && llmk_cuda_device_info(0, &info) == LLMK_SUCCESS &&
      info.supported)
    CHECK(llmk_create_cuda(0, &gpu) == LLMK_SUCCESS, "%s", llmk_last_error());
  else
    SKIP("no Hopper GPU: the CUDA half of the grouped GEMM test");
#endif
  layouts_and_scalings();
  edge_counts();
  tile_regimes();
  errors();
#ifdef LLMK_WITH_CUDA
  choice();
  if (gpu) {
    every_config_gpu();
    graph_replay_gpu(1, LLMK_SCALING_ROW);
    graph_replay_gpu(1, LLMK_SCALING_BLOCK);
    graph_replay_gpu(0, LLMK_SCALING_ROW);
    llmk_destroy(gpu);
  }
#endif
  llmk_destroy(cpu);
  TEST_END();
}
