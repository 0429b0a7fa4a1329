/* Shared by the bad-input tests of the quantize, GEMM and handle / device
 * functions (tests/test_api_errors*.c; docs/DESIGN.md, "Testing"): the
 * input and output arenas (the output poisoned before each bad call and
 * compared byte for byte after it, the input compared with its reference
 * copy), "the library is still usable" (a valid quantize + dequantize with
 * the exact expected bits, leaving the last error alone), the message
 * checks (a fresh "<function>: ..." naming the argument), and the
 * quantize / dequantize call builders with BAD(). */
#ifndef LLMK_TESTS_API_ERRORS_H
#define LLMK_TESTS_API_ERRORS_H

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "llmk.h"

#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

#define INV LLMK_ERR_INVALID_ARGUMENT

/* ---- arenas ------------------------------------------------------------- */

/* The bad calls read from g_in and write to g_out (both malloc'd, so host
 * memory); with a CUDA handle, from/to their device twins g_din / g_dout. */
enum { M = 4, K = 8, ARENA = 4096 };
enum { IN_X = 0, IN_Q = 1024, IN_S = 1536, IN_UB = 1792, IN_NR = 1856 }; /* byte offsets */
enum { OUT_Q = 0, OUT_S = 1024, OUT_Y = 2048 };

static unsigned char *g_in, *g_in_ref, *g_out;
#ifdef LLMK_WITH_CUDA
static unsigned char *g_din, *g_dout; /* NULL unless the CUDA part runs */
#endif
static llmk_handle g_live;             /* the handle checked for usability */

static inline unsigned char poison_byte(size_t i) { return (unsigned char)(0xA5u ^ (i * 7u)); }

static inline void poison(void) {
  for (size_t i = 0; i < ARENA; i++) g_out[i] = poison_byte(i);
#ifdef LLMK_WITH_CUDA
  if (g_dout) {
    (void)cudaMemcpy(g_dout, g_out, ARENA, cudaMemcpyHostToDevice);
    (void)cudaMemcpy(g_din, g_in_ref, ARENA, cudaMemcpyHostToDevice);
  }
#endif
}

/* 1 if no output byte changed and the inputs are intact. */
static inline int arenas_intact(void) {
  for (size_t i = 0; i < ARENA; i++)
    if (g_out[i] != poison_byte(i) || g_in[i] != g_in_ref[i]) return 0;
#ifdef LLMK_WITH_CUDA
  if (g_dout) {
    unsigned char *o = malloc(ARENA), *in = malloc(ARENA);
    int ok = o && in && cudaMemcpy(o, g_dout, ARENA, cudaMemcpyDeviceToHost) == cudaSuccess &&
             cudaMemcpy(in, g_din, ARENA, cudaMemcpyDeviceToHost) == cudaSuccess;
    for (size_t i = 0; ok && i < ARENA; i++)
      if (o[i] != poison_byte(i) || in[i] != g_in_ref[i]) ok = 0;
    free(o);
    free(in);
    if (!ok) return 0;
  }
#endif
  return 1;
}

/* ---- "the library is still usable" ------------------------------------- */

#ifdef LLMK_WITH_CUDA
static unsigned char *g_dok; /* device scratch of usable(): x @0, q @64, s @128, y @192 */
#endif

/* Row-scaled quantize then dequantize of a fixed 2 x 4 input on h. */
static inline llmk_status roundtrip(llmk_handle h, const float *x, uint8_t *q, float *s, float *y) {
  llmk_backend b = LLMK_BACKEND_CPU;
  int dev = -1;
  llmk_status st = llmk_handle_backend(h, &b, &dev);
  if (st) return st;
  llmk_quantize_desc d = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_ROW, 0, 0, NULL, NULL};
  unsigned char *base = NULL;
  float *px = (float *)x;
  uint8_t *pq = q;
  float *ps = s, *py = y;
#ifdef LLMK_WITH_CUDA
  if (b == LLMK_BACKEND_CUDA) {
    base = g_dok;
    if (!base || cudaMemcpy(base, x, 8 * sizeof(float), cudaMemcpyHostToDevice) ||
        cudaMemset(base + 64, 0xA5, 192))
      return LLMK_ERR_CUDA;
    px = (float *)base;
    pq = base + 64;
    ps = (float *)(base + 128);
    py = (float *)(base + 192);
  }
#endif
  llmk_tensor tx = llmk_tensor_2d(px, LLMK_F32, 2, 4, 4), tq = llmk_tensor_2d(pq, LLMK_E4M3, 2, 4, 4),
              ts = llmk_tensor_1d(ps, LLMK_F32, 2), ty = llmk_tensor_2d(py, LLMK_F32, 2, 4, 4);
  if ((st = llmk_quantize_fp8(h, &d, &tx, &tq, &ts, NULL))) return st;
  if ((st = llmk_dequantize_fp8(h, &d, &tq, &ts, &ty, NULL))) return st;
#ifdef LLMK_WITH_CUDA
  if (base && (cudaMemcpy(q, pq, 8, cudaMemcpyDeviceToHost) ||
               cudaMemcpy(s, ps, 2 * sizeof(float), cudaMemcpyDeviceToHost) ||
               cudaMemcpy(y, py, 8 * sizeof(float), cudaMemcpyDeviceToHost)))
    return LLMK_ERR_CUDA;
#endif
  (void)base;
  return LLMK_SUCCESS;
}

/* 1 if a valid call on h succeeds with the exact docs/DESIGN.md bits and leaves
 * the last error as it was. */
static inline int usable(llmk_handle h) {
  char before[1024];
  snprintf(before, sizeof before, "%s", llmk_last_error());
  static const float x[8] = {1, -2, 3, 0, 0.5f, 448, -448, 7};
  uint8_t q[8];
  float s[2], y[8];
  memset(q, 0xA5, sizeof q);
  memset(s, 0xA5, sizeof s);
  memset(y, 0xA5, sizeof y);
  if (roundtrip(h, x, q, s, y) != LLMK_SUCCESS) return 0;
  if (s[0] != 3.0f / 448.0f || s[1] != 1.0f) return 0;
  for (int i = 0; i < 8; i++) {
    float sc = s[i / 4];
    if (q[i] != llmk_float_to_fp8(x[i] * (1.0f / sc), LLMK_E4M3)) return 0;
    if (y[i] != llmk_fp8_to_float(q[i], LLMK_E4M3) * sc) return 0;
  }
  return q[2] == 0x7E && q[5] == 0x7E && q[6] == 0xFE && y[5] == 448.0f &&
         strcmp(before, llmk_last_error()) == 0;
}

/* ---- message checks ------------------------------------------------------ */

static inline int is_ident(char ch) { return isalnum((unsigned char)ch) || ch == '_'; }

/* 1 if w occurs in msg as a whole identifier ("x" matches "x.data", not "xq"). */
static inline int has_word(const char *msg, const char *w) {
  size_t n = strlen(w);
  for (const char *p = strstr(msg, w); p; p = strstr(p + 1, w))
    if ((p == msg || !is_ident(p[-1])) && !is_ident(p[n])) return 1;
  return 0;
}

/* Overwrites the last error with a message from another function, so that a
 * later "<fn>: " prefix proves the call under test set it. */
static inline void reset_error(const char *fn) {
  if (strcmp(fn, "llmk_get_build_info") != 0)
    (void)llmk_get_build_info(NULL);
  else
    (void)llmk_create_cpu(NULL);
}

/* Appends to why[] each way (status, message) differs from what is expected;
 * returns 1 if nothing did. arg must occur as a word, detail as a substring. */
static inline int status_ok(char *why, size_t n, llmk_status got, llmk_status want, const char *fn,
                     const char *arg, const char *detail) {
  const char *msg = llmk_last_error();
  size_t fl = strlen(fn), len = strlen(why);
  int ok = 1;
  if (got != want) {
    snprintf(why + len, n - len, "got %s, want %s; ", llmk_status_string(got),
             llmk_status_string(want));
    ok = 0;
  } else if (strncmp(msg, fn, fl) != 0 || strncmp(msg + fl, ": ", 2) != 0 || !msg[fl + 2]) {
    snprintf(why + len, n - len, "message \"%s\" is not a fresh \"%s: ...\"; ", msg, fn);
    ok = 0;
  } else if ((arg && !has_word(msg, arg)) || (detail && !strstr(msg, detail))) {
    snprintf(why + len, n - len, "message \"%s\" does not name '%s'%s%s%s; ", msg, arg ? arg : "",
             detail ? " and '" : "", detail ? detail : "", detail ? "'" : "");
    ok = 0;
  }
  return ok;
}

/* A non-quantization call: status and message. */
static inline void expect_status(const char *what, llmk_status got, llmk_status want, const char *fn,
                          const char *arg, const char *detail) {
  char why[1024] = "";
  int ok = status_ok(why, sizeof why, got, want, fn, arg, detail);
  CHECK(ok, "%s: %s", what, why);
}

/* ---- quantize / dequantize calls ----------------------------------------- */

enum { OP_QUANT, OP_DEQUANT };
enum { NULL_T0 = 1, NULL_T1 = 2, NULL_T2 = 4, NULL_DESC = 8 };

typedef struct call {
  int op;
  llmk_handle h;
  llmk_quantize_desc d;
  llmk_tensor t[3]; /* quantize: x, xq, scale; dequantize: xq, scale, y */
  unsigned nulls;   /* NULL_* bits: pass NULL instead of that argument */
} call;

static inline llmk_status do_call(const call *c) {
  const llmk_tensor *a = c->nulls & NULL_T0 ? NULL : &c->t[0];
  const llmk_tensor *b = c->nulls & NULL_T1 ? NULL : &c->t[1];
  const llmk_tensor *s = c->nulls & NULL_T2 ? NULL : &c->t[2];
  const llmk_quantize_desc *d = c->nulls & NULL_DESC ? NULL : &c->d;
  return c->op == OP_QUANT ? llmk_quantize_fp8(c->h, d, a, b, s, NULL)
                           : llmk_dequantize_fp8(c->h, d, a, b, s, NULL);
}

/* A valid row-scaled M x K call whose inputs lie in `in`, outputs in `out`. */
static inline call quant_call(llmk_handle h, unsigned char *in, unsigned char *out) {
  call c;
  memset(&c, 0, sizeof c);
  c.op = OP_QUANT;
  c.h = h;
  c.d = (llmk_quantize_desc)LLMK_QUANTIZE_DESC_INIT;
  c.d.scaling = LLMK_SCALING_ROW;
  c.t[0] = llmk_tensor_2d(in + IN_X, LLMK_F32, M, K, K);
  c.t[1] = llmk_tensor_2d(out + OUT_Q, LLMK_E4M3, M, K, K);
  c.t[2] = llmk_tensor_1d(out + OUT_S, LLMK_F32, M);
  return c;
}

static inline call dequant_call(llmk_handle h, unsigned char *in, unsigned char *out) {
  call c;
  memset(&c, 0, sizeof c);
  c.op = OP_DEQUANT;
  c.h = h;
  c.d = (llmk_quantize_desc)LLMK_QUANTIZE_DESC_INIT;
  c.d.scaling = LLMK_SCALING_ROW;
  c.t[0] = llmk_tensor_2d(in + IN_Q, LLMK_E4M3, M, K, K);
  c.t[1] = llmk_tensor_1d(in + IN_S, LLMK_F32, M);
  c.t[2] = llmk_tensor_2d(out + OUT_Y, LLMK_F32, M, K, K);
  return c;
}

static inline llmk_tensor *scale_of(call *c) { return &c->t[c->op == OP_QUANT ? 2 : 1]; }

/* Switches c to block scaling with the correct [ceil(M/bm), ceil(K/bk)] scale. */
static inline void use_block(call *c, int64_t bm, int64_t bk) {
  c->d.scaling = LLMK_SCALING_BLOCK;
  c->d.block_m = bm;
  c->d.block_k = bk;
  llmk_tensor *s = scale_of(c);
  int64_t gr = (M + bm - 1) / bm, gc = (K + bk - 1) / bk;
  *s = llmk_tensor_2d(s->data, LLMK_F32, gr, gc, gc);
}

static inline void use_scaling(call *c, llmk_scaling sc) {
  c->d.scaling = sc;
  llmk_tensor *s = scale_of(c);
  *s = llmk_tensor_1d(s->data, LLMK_F32, sc == LLMK_SCALING_TENSOR ? 1 : sc == LLMK_SCALING_COL ? K : M);
}

static inline llmk_tensor t3(void *p, llmk_dtype dt, int64_t a, int64_t b, int64_t k, int64_t sa,
                      int64_t sb) {
  llmk_tensor t = {p, dt, 3, {a, b, k, 0}, {sa, sb, 1, 0}};
  return t;
}

static inline void append(char *why, size_t n, const char *text) {
  size_t len = strlen(why);
  snprintf(why + len, n - len, "%s", text);
}

/* After a call that must be refused: status s is `want` with a message
 * naming arg/detail, no CUDA error is left pending, nothing was written,
 * and g_live still works. */
static inline void judge_bad(int line, const char *what, llmk_status s, llmk_status want, const char *fn,
                             const char *arg, const char *detail) {
  char why[1024] = "";
  int ok = status_ok(why, sizeof why, s, want, fn, arg, detail);
#ifdef LLMK_WITH_CUDA
  if (g_dout && cudaPeekAtLastError() != cudaSuccess) { /* only meaningful with a device */
    append(why, sizeof why, "a CUDA error was left pending; ");
    (void)cudaGetLastError();
    ok = 0;
  }
#endif
  if (!arenas_intact()) {
    append(why, sizeof why, "it wrote to memory; ");
    ok = 0;
  }
  if (!usable(g_live)) {
    append(why, sizeof why, "a valid call after it failed or gave wrong results; ");
    ok = 0;
  }
  if (getenv("LLMK_TEST_VERBOSE")) printf("line %d: %s: %s\n", line, what, llmk_last_error());
  CHECK(ok, "line %d: %s: %s", line, what, why);
}

/* The bad call c must fail with `want`, name arg/detail, write nothing and
 * leave g_live usable. */
static inline void expect_bad_st(int line, const char *what, const call *c, llmk_status want,
                          const char *arg, const char *detail) {
  const char *fn = c->op == OP_QUANT ? "llmk_quantize_fp8" : "llmk_dequantize_fp8";
  reset_error(fn);
  poison();
  judge_bad(line, what, do_call(c), want, fn, arg, detail);
}
#define BAD(what, c, arg, detail) expect_bad_st(__LINE__, what, &(c), INV, arg, detail)

/* ---- set-up shared by the tests --------------------------------------------- */

/* The arenas (random inputs), a garbage "handle", the CPU handle (g_live)
 * and the device count. Checks first that the last error starts as "".
 * Returns 0 if the set-up failed. */
static inline int ae_setup(llmk_handle *h, llmk_handle *bogus, int *ndev) {
  /* Before any failed call the last error is "". */
  const char *first = llmk_last_error();
  CHECK(first && first[0] == '\0', "initial llmk_last_error() is \"%s\"", first ? first : "(null)");
  t_seed();
  g_in = malloc(ARENA);
  g_in_ref = malloc(ARENA);
  g_out = malloc(ARENA);
  *bogus = malloc(256); /* not a handle: garbage bytes */
  if (!g_in || !g_in_ref || !g_out || !*bogus) {
    CHECK(0, "malloc failed");
    return 0;
  }
  memset((void *)*bogus, 0xA5, 256);
  for (int i = 0; i < IN_Q / 4; i++) ((float *)g_in)[i] = t_rand_normal();
  for (int i = IN_Q; i < IN_S; i++) g_in[i] = llmk_float_to_fp8(t_rand_normal() * 100.0f, LLMK_E4M3);
  for (int i = IN_S / 4; i < IN_UB / 4; i++) ((float *)g_in)[i] = 0.01f + (float)t_rand_uniform();
  for (int i = IN_UB; i < IN_NR; i++) g_in[i] = 0x41; /* f32 ~12 at IN_UB */
  for (int i = IN_NR; i < ARENA; i++) g_in[i] = 0;
  ((int64_t *)(g_in + IN_NR))[0] = 2;
  memcpy(g_in_ref, g_in, ARENA);
  llmk_status s = llmk_create_cpu(h);
  CHECK(s == LLMK_SUCCESS && *h, "llmk_create_cpu: %s", llmk_last_error());
  if (s) return 0;
  g_live = *h;
  *ndev = 0;
  CHECK(llmk_cuda_device_count(ndev) == LLMK_SUCCESS && *ndev >= 0, "llmk_cuda_device_count: %s",
        llmk_last_error());
  return 1;
}

static inline void ae_teardown(llmk_handle h, llmk_handle bogus) {
  CHECK(llmk_destroy(h) == LLMK_SUCCESS, "llmk_destroy: %s", llmk_last_error());
  free((void *)bogus);
  free(g_in);
  free(g_in_ref);
  free(g_out);
}

#ifdef LLMK_WITH_CUDA
/* A CUDA handle on device 0 with the device arenas, made the live handle;
 * NULL (skipped) if device 0 is not a Hopper GPU. */
static inline llmk_handle ae_gpu_begin(void) {
  llmk_handle hg = NULL;
  llmk_status s = llmk_create_cuda(0, &hg);
  CHECK(s == LLMK_SUCCESS && hg, "llmk_create_cuda(0, &h): %s", llmk_last_error());
  if (s) return NULL;
  llmk_device_info info = LLMK_DEVICE_INFO_INIT;
  s = llmk_cuda_device_info(0, &info);
  CHECK(s == LLMK_SUCCESS, "llmk_cuda_device_info(0): %s", llmk_last_error());
  if (s || !info.supported) {
    SKIP("device 0 (%s) is not a Hopper GPU: CUDA-handle pointer checks", s ? "?" : info.name);
    llmk_destroy(hg);
    return NULL;
  }
  if (cudaMalloc((void **)&g_din, ARENA) || cudaMalloc((void **)&g_dout, ARENA) ||
      cudaMalloc((void **)&g_dok, 256)) {
    CHECK(0, "cudaMalloc failed");
    llmk_destroy(hg);
    return NULL;
  }
  g_live = hg;
  CHECK(usable(hg), "a valid quantize/dequantize on the CUDA handle: %s", llmk_last_error());
  return hg;
}

static inline void ae_gpu_end(llmk_handle hg, llmk_handle hcpu) {
  (void)cudaFree(g_din);
  (void)cudaFree(g_dout);
  (void)cudaFree(g_dok);
  g_din = g_dout = g_dok = NULL;
  g_live = hcpu;
  CHECK(llmk_destroy(hg) == LLMK_SUCCESS, "llmk_destroy(cuda): %s", llmk_last_error());
}
#endif

#endif
