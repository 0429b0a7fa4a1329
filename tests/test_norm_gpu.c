/* GPU llmk_rmsnorm and llmk_silu_mul_quant against the CPU reference, bit
 * for bit, on fresh random inputs of several distributions (normal at a
 * random magnitude, outliers, zero and constant rows, NaN/Inf rows, bf16
 * subnormals, huge values, a wide exponent spread), M in {1, 3, 17, 128,
 * 1000} x K in {8, 100, 4096, 8192, 28672} plus the streamed long rows;
 * dense rows, row pitches and 3-D views, and misaligned pointers with odd
 * pitches (the element-wise path); residual none, separate and in place;
 * bf16 and e4m3 outputs; silu with row and 1 x 128 scales, scale_ub, and
 * gate/up as the halves of one [M, 2F] buffer. Outputs are poisoned
 * differently on each side before every run, so unwritten elements show;
 * row padding must stay untouched. The first mismatches are printed with
 * their coordinates. At the end, informational timings at M = 16384
 * against a device-to-device copy of the same bytes (not checked). */
#include <math.h>
#include <stdlib.h>

#include "core/env.h"
#include "harness.h"
#include "llmk.h"

#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>

static llmk_handle cpu, gpu;

static float bff(uint16_t b) { return llmk_bf16_to_float(b); }
static uint16_t bfb(float f) { return llmk_float_to_bf16(f); }
static float unif(float a, float b) { return a + (b - a) * (float)t_rand_uniform(); }

enum { D_NORMAL, D_OUTLIER, D_ROWS, D_SPECIAL, D_TINY, D_HUGE, D_WIDE, N_DIST };
static const char *const dist_names[] = {"normal", "outlier", "rows", "nan/inf", "tiny", "huge", "wide"};

/* element (r, k) of a row-pitched bf16 buffer */
static float draw(int dist, int64_t r, float rc, int kind, float mag) {
  float x = mag * t_rand_normal();
  const uint64_t u = t_rand_u64();
  switch (dist) {
    case D_OUTLIER: return u % 50 == 0 ? x * 1000.0f : x;
    case D_ROWS: return kind == 0 ? rc : kind == 1 ? 0.0f : kind == 2 ? -fabsf(rc) : x;
    case D_SPECIAL:
      if (r % 7 == 3 && u % 32 == 0) return (u >> 8) % 3 == 0 ? NAN : (u >> 8) % 3 == 1 ? INFINITY : -INFINITY;
      return x;
    case D_TINY: return t_rand_normal() * 0x1p-128f;
    case D_HUGE: return t_rand_normal() * 0x1p125f;
    case D_WIDE: return (u & 1 ? -1.0f : 1.0f) * ldexpf(unif(1.0f, 2.0f), (int)((u >> 1) % 200) - 100);
    default: return x;
  }
}
static void fill_rows(uint16_t *b, int64_t M, int64_t K, int64_t ld, int dist, float mag) {
  for (int64_t r = 0; r < M; r++) {
    const float rc = mag * t_rand_normal();
    const int kind = (int)(t_rand_u64() % 4);
    for (int64_t k = 0; k < K; k++) b[r * ld + k] = bfb(draw(dist, r, rc, kind, mag));
  }
}

/* A host buffer for the CPU call and a device twin for the GPU call, with
 * the same bytes (inputs) or different poisons (outputs). 256 extra bytes
 * at the front let a view start misaligned. */
typedef struct dbuf {
  uint8_t *h, *d;
  size_t bytes;
} dbuf;
static void dbuf_make(dbuf *b, size_t bytes) {
  b->bytes = bytes + 256;
  b->h = t_xmalloc(b->bytes);
  T_CU(cudaMalloc((void **)&b->d, b->bytes));
}
static void dbuf_upload(dbuf *b) { T_CU(cudaMemcpy(b->d, b->h, b->bytes, cudaMemcpyHostToDevice)); }
static void dbuf_poison(dbuf *b) {
  memset(b->h, 0x5A, b->bytes);
  T_CU(cudaMemset(b->d, 0xA5, b->bytes));
}
static uint8_t *dbuf_fetch(const dbuf *b) {
  uint8_t *o = t_xmalloc(b->bytes);
  T_CU(cudaMemcpy(o, b->d, b->bytes, cudaMemcpyDeviceToHost));
  return o;
}
static void dbuf_free(dbuf *b) {
  free(b->h);
  T_CU(cudaFree(b->d));
}

/* [M, K] (or [2, M/2, K] when three_d) view at byte offset off of data. */
static llmk_tensor view(uint8_t *data, size_t off, llmk_dtype dt, int64_t M, int64_t K, int64_t ld, int three_d) {
  if (three_d) {
    llmk_tensor t = {data + off, dt, 3, {2, M / 2, K, 0}, {(M / 2) * ld, ld, 1, 0}};
    return t;
  }
  return llmk_tensor_2d(data + off, dt, M, K, ld);
}

/* Counts elements of an M x K output (element size es, pitch ld, at byte
 * offset off) where the CPU's bytes differ from the GPU's, and bytes
 * outside the elements that the GPU changed from `pad` (pad < 0: compare
 * with the CPU buffer's bytes there instead, for in-place outputs). */
static int64_t compare(const char *label, const char *what, const uint8_t *hc, const uint8_t *hg, size_t bytes,
                       size_t off, int64_t M, int64_t K, int64_t ld, size_t es, int pad, int64_t *bad_pad) {
  int64_t bad = 0;
  for (int64_t r = 0; r < M; r++)
    for (int64_t k = 0; k < K; k++) {
      const size_t i = off + (size_t)(r * ld + k) * es;
      if (memcmp(hc + i, hg + i, es) != 0 && bad++ < 4) {
        uint32_t a = 0, b = 0;
        memcpy(&a, hc + i, es);
        memcpy(&b, hg + i, es);
        fprintf(stderr, "  %s: %s[%lld,%lld] cpu 0x%0*x gpu 0x%0*x\n", label, what, (long long)r, (long long)k,
                (int)(2 * es), a, (int)(2 * es), b);
      }
    }
  for (size_t i = 0; i < bytes; i++) {
    int inside = 0;
    if (i >= off && M > 0 && K > 0) {
      const size_t j = i - off, pitch = (size_t)ld * es;
      inside = (int64_t)(j / pitch) < M && j % pitch < (size_t)K * es;
    }
    if (!inside) *bad_pad += pad >= 0 ? hg[i] != (uint8_t)pad : hg[i] != hc[i];
  }
  return bad;
}

/* ------------------------------------------------------------------------ */
/* rmsnorm                                                                   */
/* ------------------------------------------------------------------------ */

enum { R_NONE, R_SEPARATE, R_IN_PLACE };
enum { LAY_DENSE, LAY_PITCH, LAY_MISALIGNED };
static const char *const lay_names[] = {"dense", "pitch", "misaligned"};

typedef struct ncase {
  int64_t M, K;
  int res, fp8, lay, dist; /* fp8: 0 bf16 y, 1 e4m3 y, 2 e4m3 y in two planes (hi, lo) */
} ncase;

static void run_norm(const ncase *c) {
  const int64_t M = c->M, K = c->K;
  char label[200];
  snprintf(label, sizeof label, "rmsnorm M=%lld K=%lld res=%s y=%s %s %s", (long long)M, (long long)K,
           c->res == R_NONE ? "none" : c->res == R_SEPARATE ? "separate" : "in-place",
           c->fp8 == 2 ? "e4m3x2" : c->fp8 ? "e4m3" : "bf16",
           lay_names[c->lay], dist_names[c->dist]);
  const int planes = c->fp8 == 2 ? 2 : 1; /* y and y_scale have planes * M rows */
  const int mis = c->lay == LAY_MISALIGNED, three_d = c->lay == LAY_PITCH && M % 2 == 0 && planes == 1;
  const int64_t pad = c->lay == LAY_PITCH ? 8 : mis ? 1 : 0;
  const int64_t ldx = K + pad, ldr = K + (mis ? 3 : pad), ldo = K + pad, ldy = K + (mis ? 5 : pad);
  const size_t o2 = mis ? 2 : 0, o1 = mis ? 1 : 0; /* byte offsets of the views */
  const size_t ysz = c->fp8 ? 1 : 2;
  dbuf x, r, w, y, ys, ro;
  dbuf_make(&x, (size_t)(M * ldx) * 2);
  dbuf_make(&r, (size_t)(M * ldr) * 2);
  dbuf_make(&w, (size_t)K * 2);
  dbuf_make(&y, (size_t)(planes * M * ldy) * ysz);
  dbuf_make(&ys, (size_t)(planes * M) * 4);
  dbuf_make(&ro, (size_t)(M * ldo) * 2);
  const float mag = c->dist == D_NORMAL ? exp2f(unif(-16.0f, 16.0f)) : 1.0f;
  for (size_t i = 0; i < x.bytes / 2; i++) ((uint16_t *)x.h)[i] = 0x7F00; /* padding: huge */
  for (size_t i = 0; i < r.bytes / 2; i++) ((uint16_t *)r.h)[i] = 0x7F00;
  fill_rows((uint16_t *)(x.h + o2), M, K, ldx, c->dist, mag);
  fill_rows((uint16_t *)(r.h + o2), M, K, ldr, c->dist == D_SPECIAL ? D_NORMAL : c->dist, mag);
  for (int64_t k = 0; k < K; k++) ((uint16_t *)(w.h + o2))[k] = k % 29 == 3 ? 0 : bfb(unif(-2.0f, 2.0f));
  dbuf_upload(&x);
  dbuf_upload(&r);
  dbuf_upload(&w);
  uint8_t *r_orig = t_xmalloc(r.bytes);
  memcpy(r_orig, r.h, r.bytes);
  dbuf_poison(&y);
  dbuf_poison(&ys);
  dbuf_poison(&ro);

  const llmk_dtype yt = c->fp8 ? LLMK_E4M3 : LLMK_BF16;
  llmk_rmsnorm_desc d = {LLMK_RMSNORM_DESC_SIZE, c->dist == D_ROWS ? 1e-6f : 1e-5f, planes};
  llmk_status st[2];
  for (int side = 0; side < 2; side++) {
    uint8_t *px = side ? x.d : x.h, *pr = side ? r.d : r.h, *pw = side ? w.d : w.h, *py = side ? y.d : y.h;
    uint8_t *pys = side ? ys.d : ys.h, *pro = side ? ro.d : ro.h;
    llmk_tensor tx = view(px, o2, LLMK_BF16, M, K, ldx, three_d), tr = view(pr, o2, LLMK_BF16, M, K, ldr, three_d);
    llmk_tensor tw = llmk_tensor_1d(pw + o2, LLMK_BF16, K);
    llmk_tensor ty = view(py, c->fp8 ? o1 : o2, yt, M, K, ldy, three_d);
    if (planes == 2) { /* [M, 2, K]: plane rows ldy apart */
      const llmk_tensor t3 = {py + o1, yt, 3, {M, 2, K, 0}, {2 * ldy, ldy, 1, 0}};
      ty = t3;
    }
    llmk_tensor tys = llmk_tensor_1d(pys, LLMK_F32, planes * M);
    llmk_tensor to = c->res == R_IN_PLACE ? tr : view(pro, o2, LLMK_BF16, M, K, ldo, three_d);
    st[side] = llmk_rmsnorm(side ? gpu : cpu, &d, &tx, c->res ? &tr : NULL, &tw, &ty, c->fp8 ? &tys : NULL,
                            c->res ? &to : NULL, NULL);
    CHECK(st[side] == LLMK_SUCCESS, "%s: %s: %s", label, side ? "gpu" : "cpu", llmk_last_error());
  }
  T_CU(cudaDeviceSynchronize());
  uint8_t *gy = dbuf_fetch(&y), *gys = dbuf_fetch(&ys), *gro = dbuf_fetch(&ro), *gr = dbuf_fetch(&r);
  int64_t bad_pad = 0, bad = 0;
  bad += compare(label, "y", y.h, gy, y.bytes, c->fp8 ? o1 : o2, planes * M, K, ldy, ysz, 0xA5, &bad_pad);
  bad += compare(label, "y_scale", ys.h, gys, ys.bytes, 0, c->fp8 ? planes * M : 0, 1, 1, 4, 0xA5, &bad_pad);
  if (c->res == R_SEPARATE) {
    bad += compare(label, "residual_out", ro.h, gro, ro.bytes, o2, M, K, ldo, 2, 0xA5, &bad_pad);
    bad_pad += memcmp(gr, r_orig, r.bytes) != 0; /* the residual is an input */
  } else {
    bad += compare(label, "residual_out", r.h, gr, r.bytes, o2, c->res == R_IN_PLACE ? M : 0, K, ldr, 2, -1, &bad_pad);
    (void)compare(label, "unused", ro.h, gro, ro.bytes, 0, 0, 0, 1, 1, 0xA5, &bad_pad);
  }
  CHECK(bad == 0, "%s: %lld elements differ between CPU and GPU", label, (long long)bad);
  CHECK(bad_pad == 0, "%s: %lld bytes outside the outputs were written", label, (long long)bad_pad);
  free(gy), free(gys), free(gro), free(gr), free(r_orig);
  dbuf_free(&x), dbuf_free(&r), dbuf_free(&w), dbuf_free(&y), dbuf_free(&ys), dbuf_free(&ro);
}

/* ------------------------------------------------------------------------ */
/* silu_mul_quant                                                            */
/* ------------------------------------------------------------------------ */

enum { S_SEPARATE, S_HALVES, S_MISALIGNED };
static const char *const slay_names[] = {"separate", "halves", "misaligned"};

typedef struct scase {
  int64_t M, F;
  int block, ub, lay, dist; /* block: 0 row scales, 1 1x128 groups, 2 bf16 xq (no quantization) */
} scase;

static int64_t g_silu_elems, g_silu_mismatch;

static void run_silu(const scase *c) {
  const int64_t M = c->M, F = c->F;
  char label[200];
  snprintf(label, sizeof label, "silu M=%lld F=%lld %s ub=%d %s %s", (long long)M, (long long)F,
           c->block == 2 ? "bf16-out" : c->block ? "block1x128" : "row", c->ub, slay_names[c->lay],
           dist_names[c->dist]);
  const int bf = c->block == 2;
  const size_t qsz = bf ? 2 : 1;
  const int mis = c->lay == S_MISALIGNED, halves = c->lay == S_HALVES;
  const int64_t ldgu = halves ? 2 * F : mis ? F + 1 : F, ldq = mis ? F + 3 : F;
  const size_t o2 = mis ? 2 : 0, o1 = mis ? 1 : 0;
  const int64_t nseg = bf ? 0 : c->block ? (F + 127) / 128 : 1;
  dbuf g, u, q, s, ub;
  dbuf_make(&g, (size_t)(M * ldgu) * 2);
  dbuf_make(&u, (size_t)(M * ldgu) * 2);
  dbuf_make(&q, (size_t)(M * ldq) * qsz);
  dbuf_make(&s, (size_t)(M * (nseg ? nseg : 1)) * 4);
  dbuf_make(&ub, 4);
  for (size_t i = 0; i < g.bytes / 2; i++) ((uint16_t *)g.h)[i] = ((uint16_t *)u.h)[i] = 0x7F00;
  const size_t uoff = halves ? (size_t)F * 2 : o2; /* up: the second half of g's rows */
  uint8_t *ubase_h = halves ? g.h : u.h;
  fill_rows((uint16_t *)(g.h + o2), M, F, ldgu, c->dist == D_HUGE ? D_NORMAL : c->dist, 3.0f);
  fill_rows((uint16_t *)(ubase_h + uoff), M, F, ldgu, c->dist == D_SPECIAL ? D_NORMAL : c->dist, 1.0f);
  if (c->dist == D_SPECIAL) /* exp overflow and zeros */
    for (int64_t i = 0; i < M * F; i++) {
      const uint64_t v = t_rand_u64() % 64;
      uint16_t *gp = (uint16_t *)(g.h + o2) + (i / F) * ldgu + i % F;
      if (v == 0) *gp = bfb(-800.0f);
      else if (v == 1) *gp = 0x8000;
    }
  if (c->dist == D_HUGE)
    for (int64_t i = 0; i < M * F; i++) {
      uint16_t *up = (uint16_t *)(ubase_h + uoff) + (i / F) * ldgu + i % F;
      *up = bfb(bff(*up) * 0x1p126f);
    }
  float amax = 0.0f;
  for (int64_t i = 0; i < M * F; i++) { /* a bound from |g| * |u| is enough to place scale_ub */
    const float gv = bff(((uint16_t *)(g.h + o2))[(i / F) * ldgu + i % F]);
    const float uv = bff(((uint16_t *)(ubase_h + uoff))[(i / F) * ldgu + i % F]);
    const float a = fabsf(gv * uv);
    if (isfinite(a) && a > amax) amax = a;
  }
  float ubv = c->ub == 1 ? amax / 16.0f : amax * 4.0f + 1.0f;
  memcpy(ub.h, &ubv, 4);
  dbuf_upload(&g);
  dbuf_upload(&u);
  dbuf_upload(&ub);
  dbuf_poison(&q);
  dbuf_poison(&s);

  llmk_status st[2];
  for (int side = 0; side < 2; side++) {
    uint8_t *pg = side ? g.d : g.h, *pu = halves ? pg : side ? u.d : u.h;
    uint8_t *pq = side ? q.d : q.h, *ps = side ? s.d : s.h;
    llmk_quantize_desc d = {LLMK_QUANTIZE_DESC_SIZE, c->block ? LLMK_SCALING_BLOCK : LLMK_SCALING_ROW, 1, 128,
                         c->ub ? (const float *)(side ? ub.d : ub.h) : NULL, NULL};
    llmk_tensor tg = view(pg, o2, LLMK_BF16, M, F, ldgu, 0), tu = view(pu, uoff, LLMK_BF16, M, F, ldgu, 0);
    llmk_tensor tq = view(pq, bf ? o2 : o1, bf ? LLMK_BF16 : LLMK_E4M3, M, F, ldq, 0);
    llmk_tensor ts = c->block ? llmk_tensor_2d(ps, LLMK_F32, M, nseg, nseg) : llmk_tensor_1d(ps, LLMK_F32, M);
    st[side] = llmk_silu_mul_quant(side ? gpu : cpu, bf ? NULL : &d, &tg, &tu, &tq, bf ? NULL : &ts, NULL);
    CHECK(st[side] == LLMK_SUCCESS, "%s: %s: %s", label, side ? "gpu" : "cpu", llmk_last_error());
  }
  T_CU(cudaDeviceSynchronize());
  uint8_t *gq = dbuf_fetch(&q), *gs = dbuf_fetch(&s);
  int64_t bad_pad = 0;
  const int64_t bq = compare(label, "xq", q.h, gq, q.bytes, bf ? o2 : o1, M, F, ldq, qsz, 0xA5, &bad_pad);
  const int64_t bs = compare(label, "scale", s.h, gs, s.bytes, 0, M * nseg, 1, 1, 4, 0xA5, &bad_pad);
  g_silu_elems += M * F;
  g_silu_mismatch += bq;
  CHECK(bq == 0 && bs == 0, "%s: %lld codes and %lld scales differ between CPU and GPU (llmk.h: the fp64 exp "
        "of CUDA and of the C library may differ in the last ulp; bitwise agreement is expected on random data)",
        label, (long long)bq, (long long)bs);
  CHECK(bad_pad == 0, "%s: %lld bytes outside the outputs were written", label, (long long)bad_pad);
  free(gq), free(gs);
  dbuf_free(&g), dbuf_free(&u), dbuf_free(&q), dbuf_free(&s), dbuf_free(&ub);
}

/* ------------------------------------------------------------------------ */
/* A few GPU-only argument checks, and timings                               */
/* ------------------------------------------------------------------------ */

static void gpu_bad_inputs(void) {
  static uint16_t hx[64] __attribute__((aligned(16)));
  memset(hx, 0, sizeof hx);
  void *dx, *dy;
  T_CU(cudaMalloc(&dx, 4096));
  T_CU(cudaMalloc(&dy, 4096));
  T_CU(cudaMemset(dy, 0xA5, 4096));
  llmk_rmsnorm_desc d = {LLMK_RMSNORM_DESC_SIZE, 1e-5f, 0};
  llmk_tensor x = llmk_tensor_2d(hx, LLMK_BF16, 4, 8, 8), w = llmk_tensor_1d((char *)dx + 1024, LLMK_BF16, 8);
  llmk_tensor y = llmk_tensor_2d(dy, LLMK_BF16, 4, 8, 8);
  llmk_status st = llmk_rmsnorm(gpu, &d, &x, NULL, &w, &y, NULL, NULL, NULL);
  CHECK(st == LLMK_ERR_INVALID_ARGUMENT && strstr(llmk_last_error(), "x.data"), "rmsnorm with a host x: %s: %s",
        llmk_status_string(st), llmk_last_error());
  x.data = dx;
  w.data = hx;
  st = llmk_rmsnorm(gpu, &d, &x, NULL, &w, &y, NULL, NULL, NULL);
  CHECK(st == LLMK_ERR_INVALID_ARGUMENT && strstr(llmk_last_error(), "weight.data"),
        "rmsnorm with a host weight: %s: %s", llmk_status_string(st), llmk_last_error());
  llmk_quantize_desc qd = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_ROW, 0, 0, (const float *)hx, NULL};
  llmk_tensor g = llmk_tensor_2d(dx, LLMK_BF16, 4, 8, 8), q = llmk_tensor_2d(dy, LLMK_E4M3, 4, 8, 8);
  llmk_tensor s = llmk_tensor_1d((char *)dy + 1024, LLMK_F32, 4);
  st = llmk_silu_mul_quant(gpu, &qd, &g, &g, &q, &s, NULL);
  CHECK(st == LLMK_ERR_INVALID_ARGUMENT && strstr(llmk_last_error(), "scale_ub"),
        "silu_mul_quant with a host scale_ub: %s: %s", llmk_status_string(st), llmk_last_error());
  uint8_t out[4096];
  T_CU(cudaMemcpy(out, dy, 4096, cudaMemcpyDeviceToHost));
  int wrote = 0;
  for (int i = 0; i < 4096; i++) wrote |= out[i] != 0xA5;
  CHECK(!wrote && cudaPeekAtLastError() == cudaSuccess, "bad GPU calls wrote to their outputs or left a CUDA error");
  T_CU(cudaFree(dx));
  T_CU(cudaFree(dy));
}

static float time_ms(cudaEvent_t e0, cudaEvent_t e1) {
  float ms = 0;
  T_CU(cudaEventElapsedTime(&ms, e0, e1));
  return ms;
}
static int cmp_f(const void *a, const void *b) {
  const float x = *(const float *)a, y = *(const float *)b;
  return x < y ? -1 : x > y;
}

/* Median over `reps` of op(), in microseconds. kind: 0 copy, 1 rmsnorm, 2 silu. */
typedef struct bench_args {
  int kind;
  llmk_rmsnorm_desc nd;
  llmk_quantize_desc qd;
  llmk_tensor t[6];
  int res, fp8;
  void *dst, *src;
  size_t bytes;
} bench_args;
static llmk_status bench_op(const bench_args *b) {
  if (b->kind == 0) {
    T_CU(cudaMemcpyAsync(b->dst, b->src, b->bytes, cudaMemcpyDeviceToDevice, 0));
    return LLMK_SUCCESS;
  }
  if (b->kind == 1)
    return llmk_rmsnorm(gpu, &b->nd, &b->t[0], b->res ? &b->t[1] : NULL, &b->t[2], &b->t[3],
                        b->fp8 ? &b->t[4] : NULL, b->res ? &b->t[5] : NULL, NULL);
  return llmk_silu_mul_quant(gpu, &b->qd, &b->t[0], &b->t[1], &b->t[2], &b->t[3], NULL);
}
static float bench_us(const bench_args *b) {
  cudaEvent_t e0, e1;
  T_CU(cudaEventCreate(&e0));
  T_CU(cudaEventCreate(&e1));
  llmk_status st = bench_op(b);
  CHECK(st == LLMK_SUCCESS, "timing call (kind %d): %s", b->kind, llmk_last_error());
  for (int i = 0; i < 2; i++) (void)bench_op(b);
  float t[15];
  for (int i = 0; i < 15; i++) {
    T_CU(cudaEventRecord(e0, 0));
    (void)bench_op(b);
    T_CU(cudaEventRecord(e1, 0));
    T_CU(cudaEventSynchronize(e1));
    t[i] = time_ms(e0, e1) * 1000.0f;
  }
  qsort(t, 15, sizeof t[0], cmp_f);
  T_CU(cudaEventDestroy(e0));
  T_CU(cudaEventDestroy(e1));
  return t[7];
}

/* Sets (value non-NULL) or clears an LLMK_ knob of src/cuda/norm.cu. */
static void knob(const char *name, const char *value) {
  if (value) setenv(name, value, 1);
  else unsetenv(name);
  llmk_env_refresh(); /* the library reads its environment once */
}

static void timings(void) {
  const int64_t M = 16384, K = 8192, n = M * K, F = 14336;
  void *bx, *br, *bw, *by, *bs, *bo;
  T_CU(cudaMalloc(&bx, (size_t)M * 2 * F * 2));
  T_CU(cudaMalloc(&br, (size_t)n * 2));
  T_CU(cudaMalloc(&bw, (size_t)K * 2));
  T_CU(cudaMalloc(&by, (size_t)M * F * 2));
  T_CU(cudaMalloc(&bs, (size_t)M * 112 * 4));
  T_CU(cudaMalloc(&bo, (size_t)n * 2));
  T_CU(cudaMemset(bx, 0x3C, (size_t)M * 2 * F * 2));
  T_CU(cudaMemset(br, 0x3C, (size_t)n * 2));
  T_CU(cudaMemset(bw, 0x3F, (size_t)K * 2));
  bench_args c = {0};
  c.kind = 0, c.dst = by, c.src = bx, c.bytes = (size_t)n * 2;
  const float copy_us = bench_us(&c), copy_gbs = 2.0f * (float)c.bytes / copy_us * 1e-3f;
  printf("timing (info) M=%lld K=%lld: copy of %zu bytes %.1f us = %.0f GB/s\n", (long long)M, (long long)K, c.bytes,
         copy_us, copy_gbs);
  static const char *const tprs[] = {NULL, "128", "512"};
  for (int v = 0; v < 4; v++)
    for (int ti = 0; ti < 3; ti++) {
      bench_args b = {0};
      b.kind = 1, b.nd = (llmk_rmsnorm_desc)LLMK_RMSNORM_DESC_INIT, b.nd.eps = 1e-5f, b.res = v >= 2, b.fp8 = v % 2;
      b.t[0] = llmk_tensor_2d(bx, LLMK_BF16, M, K, K);
      b.t[1] = llmk_tensor_2d(br, LLMK_BF16, M, K, K);
      b.t[2] = llmk_tensor_1d(bw, LLMK_BF16, K);
      b.t[3] = llmk_tensor_2d(by, b.fp8 ? LLMK_E4M3 : LLMK_BF16, M, K, K);
      b.t[4] = llmk_tensor_1d(bs, LLMK_F32, M);
      b.t[5] = llmk_tensor_2d(br, LLMK_BF16, M, K, K); /* in place */
      knob("LLMK_NORM_TPR", tprs[ti]);
      const float us = bench_us(&b);
      const double bytes = (double)n * (2 + (b.fp8 ? 1 : 2) + (b.res ? 4 : 0));
      const double gbs = bytes / us * 1e-3;
      printf("timing (info) rmsnorm res=%s y=%s tpr=%s: %.1f us = %.0f GB/s = %.0f%% of copy\n",
             b.res ? "in-place" : "none", b.fp8 ? "e4m3" : "bf16", tprs[ti] ? tprs[ti] : "default", us, gbs,
             100.0 * gbs / copy_gbs);
    }
  knob("LLMK_NORM_TPR", NULL);
  static const char *const stprs[2][3] = {{NULL, "256", "128"}, {NULL, "4", "16"}};
  for (int v = 0; v < 2; v++)
    for (int ti = 0; ti < 4; ti++) {
      bench_args b = {0};
      b.kind = 2;
      b.qd = (llmk_quantize_desc)LLMK_QUANTIZE_DESC_INIT;
      b.qd.scaling = v ? LLMK_SCALING_BLOCK : LLMK_SCALING_ROW, b.qd.block_m = 1, b.qd.block_k = 128;
      b.t[0] = llmk_tensor_2d(bx, LLMK_BF16, M, F, 2 * F);
      b.t[1] = llmk_tensor_2d((char *)bx + F * 2, LLMK_BF16, M, F, 2 * F);
      b.t[2] = llmk_tensor_2d(by, LLMK_E4M3, M, F, F);
      b.t[3] = v ? llmk_tensor_2d(bs, LLMK_F32, M, F / 128, F / 128) : llmk_tensor_1d(bs, LLMK_F32, M);
      knob("LLMK_SILU_TPR", ti < 3 ? stprs[v][ti] : NULL);
      knob("LLMK_SILU_FP64", ti == 3 ? "1" : NULL);
      const float us = bench_us(&b);
      const double gbs = (double)M * F * 5 / us * 1e-3;
      printf("timing (info) silu_mul_quant M=%lld F=%lld %s %s: %.1f us = %.0f GB/s = %.0f%% of copy\n",
             (long long)M, (long long)F, v ? "block1x128" : "row",
             ti == 3 ? "all-fp64" : ti == 0 ? "tpr=default" : v ? (ti == 1 ? "tpr=4" : "tpr=16") : (ti == 1 ? "tpr=256" : "tpr=128"),
             us, gbs, 100.0 * gbs / copy_gbs);
    }
  knob("LLMK_SILU_TPR", NULL);
  knob("LLMK_SILU_FP64", NULL);
  void *bufs[] = {bx, br, bw, by, bs, bo};
  for (int i = 0; i < 6; i++) T_CU(cudaFree(bufs[i]));
}

int main(void) {
  t_seed();
  int n = 0;
  llmk_cuda_device_count(&n);
  if (n == 0) {
    SKIP("no CUDA device");
    TEST_END();
  }
  CHECK(llmk_create_cpu(&cpu) == LLMK_SUCCESS, "%s", llmk_last_error());
  if (!t_hopper_handle("rmsnorm / silu_mul_quant GPU tests", &gpu)) {
    llmk_destroy(cpu);
    TEST_END();
  }

  static const int64_t Ms[] = {1, 3, 17, 128, 1000};
  static const int64_t Ks[] = {8, 100, 4096, 8192, 28672};
  int n_norm = 0, idx = 0;
  for (size_t mi = 0; mi < 5; mi++)
    for (size_t ki = 0; ki < 5; ki++) {
      const int big = Ms[mi] * Ks[ki] > 2000000;
      for (int res = 0; res < 3; res++)
        for (int fp8 = 0; fp8 < 3; fp8++)
          for (int lay = 0; lay < 3; lay++) {
            idx++;
            if (big && (res * 9 + fp8 * 3 + lay) % 9 != (int)((mi + ki) % 9)) continue; /* 3 of 27 */
            ncase c = {Ms[mi], Ks[ki], res, fp8, lay, (int)(idx % N_DIST)};
            run_norm(&c);
            n_norm++;
          }
    }
  /* streamed rows (K > 32768), odd sizes, one element, empty rows */
  static const int64_t Kx[] = {1, 3, 33, 40000, 65536, 65543};
  for (size_t ki = 0; ki < sizeof Kx / sizeof Kx[0]; ki++)
    for (int v = 0; v < 9; v++) {
      ncase c = {Kx[ki] > 30000 ? 5 : 33, Kx[ki], v % 3, v / 3, (int)((ki + v) % 3), (int)((ki * 3 + v) % N_DIST)};
      run_norm(&c);
      n_norm++;
    }
  for (int fp8 = 0; fp8 < 3; fp8++) {
    ncase c = {7, 0, R_SEPARATE, fp8, LAY_DENSE, D_NORMAL};
    run_norm(&c);
    n_norm++;
  }
  /* forced team sizes (the tuning knob): the <= 32 and > 32 reductions at other widths */
  static const char *const force[] = {"1", "4", "32", "64", "128", "512"};
  for (size_t fi = 0; fi < sizeof force / sizeof force[0]; fi++) {
    knob("LLMK_NORM_TPR", force[fi]);
    static const int64_t Kf[] = {100, 4096, 8192};
    for (size_t ki = 0; ki < 3; ki++) {
      ncase c = {17, Kf[ki], (int)((fi + ki) % 3), (int)((fi + ki) % 3), (int)(fi % 3), (int)((fi + ki) % N_DIST)};
      run_norm(&c);
      n_norm++;
    }
  }
  knob("LLMK_NORM_TPR", NULL);
  printf("%d rmsnorm GPU-vs-CPU cases\n", n_norm);

  int scase_n = 0;
  idx = 0;
  for (size_t mi = 0; mi < 5; mi++)
    for (size_t ki = 0; ki < 5; ki++) {
      const int big = Ms[mi] * Ks[ki] > 2000000;
      for (int block = 0; block < 3; block++)
        for (int lay = 0; lay < 3; lay++) {
          idx++;
          if (big && (block * 3 + lay) % 3 != (int)((mi + ki) % 3)) continue; /* 3 of 9 */
          scase c = {Ms[mi], Ks[ki], block, (int)(idx % 3), lay, (int)(idx % N_DIST)};
          run_silu(&c);
          scase_n++;
        }
    }
  static const int64_t Fx[] = {1, 127, 129, 40000, 65536};
  for (size_t fi = 0; fi < sizeof Fx / sizeof Fx[0]; fi++)
    for (int v = 0; v < 6; v++) {
      scase c = {Fx[fi] > 30000 ? 5 : 33, Fx[fi], v % 3, v % 3, (int)((fi + v) % 3), (int)((fi * 2 + v) % N_DIST)};
      run_silu(&c);
      scase_n++;
    }
  /* forced team sizes, and every element through the fp64 formula */
  static const char *const sforce[] = {"1", "16", "64", "512"};
  for (size_t fi = 0; fi < 5; fi++) {
    knob("LLMK_SILU_TPR", fi < 4 ? sforce[fi] : NULL);
    knob("LLMK_SILU_FP64", fi == 4 ? "1" : NULL);
    for (int v = 0; v < 4; v++) {
      scase c = {17, v < 2 ? 1000 : 4096, v % 2, v % 3, (int)((fi + v) % 3), (int)((fi * 4 + v) % N_DIST)};
      run_silu(&c);
      scase_n++;
    }
  }
  knob("LLMK_SILU_TPR", NULL);
  knob("LLMK_SILU_FP64", NULL);
  {
    scase c = {6, 0, 0, 1, S_SEPARATE, D_NORMAL};
    run_silu(&c);
    scase_n++;
  }
  printf("%d silu_mul_quant GPU-vs-CPU cases: %lld of %lld codes differ\n", scase_n, (long long)g_silu_mismatch,
         (long long)g_silu_elems);
  gpu_bad_inputs();
  timings();
  llmk_destroy(gpu);
  llmk_destroy(cpu);
  TEST_END();
}

#else
int main(void) {
  SKIP("no CUDA device (built without CUDA)");
  TEST_END();
}
#endif
