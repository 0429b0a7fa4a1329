/* Bad-input tests for every public function of llmk.h (docs/DESIGN.md, "Testing").
 *
 * Null pointers, invalid enum values, wrong dtypes, mismatched shapes,
 * negative and overflowing sizes, bad strides, misaligned pointers, bad block
 * sizes, overlapping tensors and, where a CUDA device is visible, host or
 * wrong-device pointers given to a CUDA handle. Every bad call must
 *  - return its documented status (LLMK_ERR_INVALID_ARGUMENT for all of these),
 *  - leave a fresh llmk_last_error() ("<function>: ...") naming the argument,
 *  - write nothing: the output arena is poisoned before each call and every
 *    byte is compared after it (the input arena must be unchanged too),
 *  - leave the library usable: a valid quantize + dequantize on the live
 *    handle right after it gives the exact expected bits and does not touch
 *    the last error.
 * Each bad call is one CHECK whose failure message lists what went wrong.
 * llmk_gemm_fp8 gets the same treatment (plus, on a CUDA handle, its layout
 * rules: K % 16, N % 8, 16-byte bases and row pitches), with valid calls at
 * each rule's edge; llmk_set_workspace its handle and buffer checks. */
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

static unsigned char poison_byte(size_t i) { return (unsigned char)(0xA5u ^ (i * 7u)); }

static void poison(void) {
  for (size_t i = 0; i < ARENA; i++) g_out[i] = poison_byte(i);
#ifdef LLMK_WITH_CUDA
  if (g_dout) {
    (void)cudaMemcpy(g_dout, g_out, ARENA, cudaMemcpyHostToDevice);
    (void)cudaMemcpy(g_din, g_in_ref, ARENA, cudaMemcpyHostToDevice);
  }
#endif
}

/* 1 if no output byte changed and the inputs are intact. */
static int arenas_intact(void) {
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
static llmk_status roundtrip(llmk_handle h, const float *x, uint8_t *q, float *s, float *y) {
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
static int usable(llmk_handle h) {
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

static int is_ident(char ch) { return isalnum((unsigned char)ch) || ch == '_'; }

/* 1 if w occurs in msg as a whole identifier ("x" matches "x.data", not "xq"). */
static int has_word(const char *msg, const char *w) {
  size_t n = strlen(w);
  for (const char *p = strstr(msg, w); p; p = strstr(p + 1, w))
    if ((p == msg || !is_ident(p[-1])) && !is_ident(p[n])) return 1;
  return 0;
}

/* Overwrites the last error with a message from another function, so that a
 * later "<fn>: " prefix proves the call under test set it. */
static void reset_error(const char *fn) {
  if (strcmp(fn, "llmk_get_build_info") != 0)
    (void)llmk_get_build_info(NULL);
  else
    (void)llmk_create_cpu(NULL);
}

/* Appends to why[] each way (status, message) differs from what is expected;
 * returns 1 if nothing did. arg must occur as a word, detail as a substring. */
static int status_ok(char *why, size_t n, llmk_status got, llmk_status want, const char *fn,
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
static void expect_status(const char *what, llmk_status got, llmk_status want, const char *fn,
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

static llmk_status do_call(const call *c) {
  const llmk_tensor *a = c->nulls & NULL_T0 ? NULL : &c->t[0];
  const llmk_tensor *b = c->nulls & NULL_T1 ? NULL : &c->t[1];
  const llmk_tensor *s = c->nulls & NULL_T2 ? NULL : &c->t[2];
  const llmk_quantize_desc *d = c->nulls & NULL_DESC ? NULL : &c->d;
  return c->op == OP_QUANT ? llmk_quantize_fp8(c->h, d, a, b, s, NULL)
                           : llmk_dequantize_fp8(c->h, d, a, b, s, NULL);
}

/* A valid row-scaled M x K call whose inputs lie in `in`, outputs in `out`. */
static call quant_call(llmk_handle h, unsigned char *in, unsigned char *out) {
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

static call dequant_call(llmk_handle h, unsigned char *in, unsigned char *out) {
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

static llmk_tensor *scale_of(call *c) { return &c->t[c->op == OP_QUANT ? 2 : 1]; }

/* Switches c to block scaling with the correct [ceil(M/bm), ceil(K/bk)] scale. */
static void use_block(call *c, int64_t bm, int64_t bk) {
  c->d.scaling = LLMK_SCALING_BLOCK;
  c->d.block_m = bm;
  c->d.block_k = bk;
  llmk_tensor *s = scale_of(c);
  int64_t gr = (M + bm - 1) / bm, gc = (K + bk - 1) / bk;
  *s = llmk_tensor_2d(s->data, LLMK_F32, gr, gc, gc);
}

static void use_scaling(call *c, llmk_scaling sc) {
  c->d.scaling = sc;
  llmk_tensor *s = scale_of(c);
  *s = llmk_tensor_1d(s->data, LLMK_F32, sc == LLMK_SCALING_TENSOR ? 1 : sc == LLMK_SCALING_COL ? K : M);
}

static llmk_tensor t3(void *p, llmk_dtype dt, int64_t a, int64_t b, int64_t k, int64_t sa,
                      int64_t sb) {
  llmk_tensor t = {p, dt, 3, {a, b, k, 0}, {sa, sb, 1, 0}};
  return t;
}

static void append(char *why, size_t n, const char *text) {
  size_t len = strlen(why);
  snprintf(why + len, n - len, "%s", text);
}

/* The bad call c must fail with `want`, name arg/detail, write nothing and
 * leave g_live usable. */
static void expect_bad_st(int line, const char *what, const call *c, llmk_status want,
                          const char *arg, const char *detail) {
  const char *fn = c->op == OP_QUANT ? "llmk_quantize_fp8" : "llmk_dequantize_fp8";
  char why[1024] = "";
  reset_error(fn);
  poison();
  llmk_status s = do_call(c);
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
#define BAD(what, c, arg, detail) expect_bad_st(__LINE__, what, &(c), INV, arg, detail)

/* ---- the quantize and dequantize cases ----------------------------------- */

static void quantize_cases(llmk_handle h, llmk_handle bogus) {
  unsigned char *in = g_in, *out = g_out;
  const call q0 = quant_call(h, in, out);

  /* null pointers */
  { call c = q0; c.h = NULL; BAD("quantize: NULL handle", c, "handle", "NULL"); }
  { call c = q0; c.h = bogus; BAD("quantize: garbage handle", c, "handle", NULL); }
  { call c = q0; c.nulls = NULL_DESC; BAD("quantize: NULL desc", c, "desc", "NULL"); }
  { call c = q0; c.nulls = NULL_T0; BAD("quantize: NULL x", c, "x", "NULL"); }
  { call c = q0; c.nulls = NULL_T1; BAD("quantize: NULL xq", c, "xq", "NULL"); }
  { call c = q0; c.nulls = NULL_T2; BAD("quantize: NULL scale", c, "scale", "NULL"); }
  { call c = q0; c.t[0].data = NULL; BAD("quantize: x.data NULL", c, "x", "NULL"); }
  { call c = q0; c.t[1].data = NULL; BAD("quantize: xq.data NULL", c, "xq", "NULL"); }
  { call c = q0; c.t[2].data = NULL; BAD("quantize: scale.data NULL", c, "scale", "NULL"); }

  /* invalid enum values */
  { call c = q0; c.t[0].dtype = (llmk_dtype)99; BAD("quantize: x.dtype 99", c, "x", "dtype"); }
  { call c = q0; c.t[1].dtype = (llmk_dtype)-1; BAD("quantize: xq.dtype -1", c, "xq", "dtype"); }
  { call c = q0; c.d.scaling = (llmk_scaling)4; BAD("quantize: scaling 4", c, "scaling", NULL); }
  { call c = q0; c.d.scaling = (llmk_scaling)-1; BAD("quantize: scaling -1", c, "scaling", NULL); }

  /* wrong dtypes */
  { call c = q0; c.t[0].dtype = LLMK_E4M3; BAD("quantize: x e4m3", c, "x", "e4m3"); }
  { call c = q0; c.t[1].dtype = LLMK_BF16; BAD("quantize: xq bf16", c, "xq", "bf16"); }
  { call c = q0; c.t[1].dtype = LLMK_U8; BAD("quantize: xq u8", c, "xq", "u8"); }
  { call c = q0; c.t[2].dtype = LLMK_BF16; BAD("quantize: scale bf16", c, "scale", "bf16"); }
  { call c = q0; c.t[1].dtype = LLMK_E5M2; use_scaling(&c, LLMK_SCALING_COL);
    BAD("quantize: e5m2 with col scaling", c, "e5m2", "col"); }
  { call c = q0; c.t[1].dtype = LLMK_E5M2; use_block(&c, 1, 4);
    BAD("quantize: e5m2 with block scaling", c, "e5m2", "block"); }

  /* mismatched shapes */
  { call c = q0; c.t[1].shape[1] = K - 1; BAD("quantize: xq [4,7] vs x [4,8]", c, "xq", "shape"); }
  { call c = q0; c.t[1] = llmk_tensor_1d(out + OUT_Q, LLMK_E4M3, M * K);
    BAD("quantize: xq 1-D", c, "xq", "dims"); }
  { call c = q0; c.t[2].shape[0] = M - 1; BAD("quantize: row scale [3]", c, "scale", "shape"); }
  { call c = q0; use_scaling(&c, LLMK_SCALING_COL); c.t[2].shape[0] = M;
    BAD("quantize: col scale [M] instead of [K]", c, "scale", "shape"); }
  { call c = q0; use_scaling(&c, LLMK_SCALING_TENSOR); c.t[2].shape[0] = 2;
    BAD("quantize: tensor scale [2]", c, "scale", "shape"); }
  { call c = q0; use_block(&c, 2, 4); c.t[2] = llmk_tensor_1d(out + OUT_S, LLMK_F32, 4);
    BAD("quantize: block scale 1-D", c, "scale", "dims"); }
  { call c = q0; use_block(&c, 2, 4); c.t[2] = llmk_tensor_2d(out + OUT_S, LLMK_F32, 2, 3, 3);
    BAD("quantize: block scale [2,3] instead of [2,2]", c, "scale", "shape"); }
  { call c = q0; use_block(&c, 3, 8); c.t[2] = llmk_tensor_2d(out + OUT_S, LLMK_F32, 1, 1, 1);
    BAD("quantize: block scale floor(M/bm) rows", c, "scale", "shape"); }
  { call c = q0; c.t[2].strides[0] = 2; BAD("quantize: scale stride 2", c, "scale", "contiguous"); }
  { call c = q0; c.t[0].ndim = 0; BAD("quantize: x ndim 0", c, "x", "ndim"); }
  { call c = q0; c.t[1].ndim = 5; BAD("quantize: xq ndim 5", c, "xq", "ndim"); }

  /* negative and overflowing sizes */
  { call c = q0; c.t[0].shape[0] = -1; BAD("quantize: x.shape[0] -1", c, "x", "shape"); }
  { call c = q0; c.t[1].shape[0] = -M; BAD("quantize: xq.shape[0] -4", c, "xq", "shape"); }
  { call c = q0; c.t[0].strides[0] = -K; BAD("quantize: x row stride -8", c, "x", "stride"); }
  { call c = q0; c.t[0].shape[0] = c.t[1].shape[0] = INT64_C(1) << 62;
    BAD("quantize: x.shape[0] 1<<62", c, "x", "shape"); }
  { call c = q0; int64_t g = INT64_C(1) << 30;
    c.t[0] = t3(in + IN_X, LLMK_F32, g, g, K, g * K, K);
    c.t[1] = t3(out + OUT_Q, LLMK_E4M3, g, g, K, g * K, K);
    BAD("quantize: x [2^30, 2^30, 8] rows overflow", c, "x", "overflow"); }
  { call c = q0; int64_t g = INT64_C(1) << 25;
    c.t[0] = llmk_tensor_2d(in + IN_X, LLMK_F32, g, g, g);
    c.t[1] = llmk_tensor_2d(out + OUT_Q, LLMK_E4M3, g, g, g);
    c.t[2].shape[0] = g;
    BAD("quantize: x [2^25, 2^25] extent overflow", c, "x", "overflow"); }
  { call c = q0; c.t[0].strides[0] = INT64_C(1) << 48;
    BAD("quantize: x row stride 2^48", c, "x", "overflow"); }

  /* strides */
  { call c = q0; c.t[0].strides[1] = 2; BAD("quantize: x last-dim stride 2", c, "x", "stride"); }
  { call c = q0; c.t[1].strides[1] = 0; BAD("quantize: xq last-dim stride 0", c, "xq", "stride"); }
  { call c = q0; c.t[0].strides[0] = K - 1; BAD("quantize: x row stride 7 < 8", c, "x", "stride"); }
  { call c = q0; c.t[1].strides[0] = 0; BAD("quantize: xq row stride 0", c, "xq", "stride"); }
  { call c = q0; c.t[0] = t3(in + IN_X, LLMK_F32, 2, 2, K, 3 * K, K);
    c.t[1] = t3(out + OUT_Q, LLMK_E4M3, 2, 2, K, 2 * K, K);
    BAD("quantize: x 3-D with a gap between batches", c, "x", "stride"); }
  { call c = q0; c.t[0] = t3(in + IN_X, LLMK_F32, 2, 2, K, 2 * K, K);
    c.t[1] = t3(out + OUT_Q, LLMK_E4M3, 2, 2, K, 2 * K + 4, K);
    BAD("quantize: xq 3-D with a gap between batches", c, "xq", "stride"); }
  /* [4,1,8] with strides [4,4,1]: rows 4 elements apart, i.e. overlapping
   * output rows, hidden behind a size-1 dim. */
  { call c = q0; c.t[0] = t3(in + IN_X, LLMK_F32, M, 1, K, K, K);
    c.t[1] = t3(out + OUT_Q, LLMK_E4M3, M, 1, K, K / 2, K / 2);
    BAD("quantize: xq [4,1,8] strides [4,4,1] (row pitch 4 < 8)", c, "xq", "stride"); }

  /* misaligned element pointers */
  { call c = q0; c.t[0].data = in + IN_X + 1; c.t[0].dtype = LLMK_BF16;
    BAD("quantize: bf16 x at an odd address", c, "x", "align"); }
  { call c = q0; c.t[0].data = in + IN_X + 2; BAD("quantize: f32 x at +2", c, "x", "align"); }
  { call c = q0; c.t[2].data = out + OUT_S + 1; BAD("quantize: f32 scale at +1", c, "scale", "align"); }
  { call c = q0; use_scaling(&c, LLMK_SCALING_TENSOR); c.d.scale_ub = (const float *)(in + IN_UB + 1);
    BAD("quantize: scale_ub at +1", c, "scale_ub", "align"); }
  { call c = q0; use_scaling(&c, LLMK_SCALING_TENSOR); c.d.num_rows = (const int64_t *)(in + IN_NR + 4);
    BAD("quantize: num_rows at +4", c, "num_rows", "align"); }

  /* block sizes and desc combinations */
  { call c = q0; use_block(&c, 1, 4); c.d.block_m = 0; BAD("quantize: block_m 0", c, "block", NULL); }
  { call c = q0; use_block(&c, 1, 4); c.d.block_k = -128; BAD("quantize: block_k -128", c, "block", NULL); }
  { call c = q0; use_block(&c, 1, 4); c.d.block_m = INT64_C(1) << 40;
    BAD("quantize: block_m 2^40", c, "block", NULL); }
  { call c = q0; c.d.num_rows = (const int64_t *)(in + IN_NR);
    BAD("quantize: num_rows with row scaling", c, "num_rows", "row"); }
  { call c = q0; use_block(&c, 2, 4); c.d.num_rows = (const int64_t *)(in + IN_NR);
    BAD("quantize: num_rows with block scaling", c, "num_rows", NULL); }

  /* overlapping tensors */
  { call c = q0; c.t[0].data = out + OUT_Q; c.t[1].data = out + OUT_Q + 16;
    BAD("quantize: x overlaps xq", c, NULL, "overlap"); }
  { call c = q0; c.t[0] = llmk_tensor_2d(out + OUT_Q, LLMK_BF16, M, K, K);
    BAD("quantize: in place (x == xq)", c, NULL, "overlap"); }
  { call c = q0; c.t[2].data = out + OUT_Q + 8; BAD("quantize: scale overlaps xq", c, NULL, "overlap"); }
}

static void dequantize_cases(llmk_handle h) {
  unsigned char *in = g_in, *out = g_out;
  const call d0 = dequant_call(h, in, out);

  { call c = d0; c.h = NULL; BAD("dequantize: NULL handle", c, "handle", "NULL"); }
  { call c = d0; c.nulls = NULL_DESC; BAD("dequantize: NULL desc", c, "desc", "NULL"); }
  { call c = d0; c.nulls = NULL_T0; BAD("dequantize: NULL xq", c, "xq", "NULL"); }
  { call c = d0; c.nulls = NULL_T1; BAD("dequantize: NULL scale", c, "scale", "NULL"); }
  { call c = d0; c.nulls = NULL_T2; BAD("dequantize: NULL y", c, "y", "NULL"); }
  { call c = d0; c.t[2].data = NULL; BAD("dequantize: y.data NULL", c, "y", "NULL"); }

  { call c = d0; c.t[0].dtype = LLMK_BF16; BAD("dequantize: xq bf16", c, "xq", "bf16"); }
  { call c = d0; c.t[1].dtype = LLMK_BF16; BAD("dequantize: scale bf16", c, "scale", "bf16"); }
  { call c = d0; c.t[2].dtype = LLMK_E4M3; BAD("dequantize: y e4m3", c, "y", "e4m3"); }
  { call c = d0; c.t[2].dtype = LLMK_F16; BAD("dequantize: y f16", c, "y", "f16"); }
  { call c = d0; c.t[2].dtype = (llmk_dtype)42; BAD("dequantize: y.dtype 42", c, "y", "dtype"); }
  { call c = d0; c.d.scaling = (llmk_scaling)9; BAD("dequantize: scaling 9", c, "scaling", NULL); }
  { call c = d0; c.t[0].dtype = LLMK_E5M2; use_scaling(&c, LLMK_SCALING_COL);
    BAD("dequantize: e5m2 with col scaling", c, "e5m2", NULL); }

  { call c = d0; c.t[2].shape[1] = K - 1; BAD("dequantize: y [4,7] vs xq [4,8]", c, "y", "shape"); }
  { call c = d0; c.t[2] = t3(out + OUT_Y, LLMK_F32, 1, M, K, M * K, K);
    BAD("dequantize: y 3-D vs xq 2-D", c, "y", "dims"); }
  { call c = d0; c.t[1].shape[0] = M + 1; BAD("dequantize: row scale [5]", c, "scale", "shape"); }
  { call c = d0; use_block(&c, 2, 4); c.t[1].shape[0] = 1;
    BAD("dequantize: block scale [1,2] instead of [2,2]", c, "scale", "shape"); }
  { call c = d0; use_block(&c, 2, 4); c.d.block_k = 0; BAD("dequantize: block_k 0", c, "block", NULL); }

  { call c = d0; c.t[2].shape[0] = c.t[0].shape[0] = -M; BAD("dequantize: shape[0] -4", c, "xq", "shape"); }
  { call c = d0; c.t[2].strides[1] = 2; BAD("dequantize: y last-dim stride 2", c, "y", "stride"); }
  { call c = d0; c.t[2].strides[0] = K / 2; BAD("dequantize: y row stride 4 < 8", c, "y", "stride"); }
  { call c = d0; c.t[0] = t3(in + IN_Q, LLMK_E4M3, 2, 2, K, 2 * K, K);
    c.t[2] = t3(out + OUT_Y, LLMK_F32, 2, 2, K, 3 * K, K);
    BAD("dequantize: y 3-D with a gap between batches", c, "y", "stride"); }
  { call c = d0; c.t[2].data = out + OUT_Y + 1; c.t[2].dtype = LLMK_BF16;
    BAD("dequantize: bf16 y at an odd address", c, "y", "align"); }
  { call c = d0; c.t[1].data = in + IN_S + 1; BAD("dequantize: f32 scale at +1", c, "scale", "align"); }

  { call c = d0; c.t[0].data = out + OUT_Y + 8; BAD("dequantize: y overlaps xq", c, NULL, "overlap"); }
  { call c = d0; c.t[1].data = out + OUT_Y + 4; BAD("dequantize: y overlaps scale", c, NULL, "overlap"); }
}

/* Valid edge cases next to the bad ones: these must be accepted. */
static void valid_edges(llmk_handle h) {
  unsigned char *in = g_in, *out = g_out;
  const call q0 = quant_call(h, in, out);
  llmk_status s;
  { call c = q0; c.t[0].data = c.t[1].data = NULL; c.t[2].data = NULL;
    c.t[0].shape[0] = c.t[1].shape[0] = c.t[2].shape[0] = 0;
    poison();
    s = do_call(&c);
    CHECK(s == LLMK_SUCCESS && arenas_intact(), "M = 0 with NULL data: %s %s", llmk_status_string(s),
          llmk_last_error()); }
  { call c = q0; c.t[0] = t3(in + IN_X, LLMK_F32, 2, 2, K, 4 * K, 2 * K);
    c.t[1] = t3(out + OUT_Q, LLMK_E4M3, 2, 2, K, 2 * K + 2 * K, 2 * K);
    s = do_call(&c);
    CHECK(s == LLMK_SUCCESS, "3-D x/xq with row pitch 16 > K: %s %s", llmk_status_string(s),
          llmk_last_error()); }
  /* [4,1,8] with strides [8,3,1]: the size-1 dim's stride is meaningless
   * (PyTorch's view rules); the rows are contiguous, so this is valid. */
  { call c = q0; c.t[0] = t3(in + IN_X, LLMK_F32, M, 1, K, K, 3);
    c.t[1] = t3(out + OUT_Q, LLMK_E4M3, M, 1, K, K, K);
    s = do_call(&c);
    CHECK(s == LLMK_SUCCESS, "x [4,1,8] strides [8,3,1] (contiguous rows): %s %s",
          llmk_status_string(s), llmk_last_error()); }
}

/* ---- llmk_gemm_fp8 calls --------------------------------------------------- */

/* A valid row-scaled GM x GN x GK call: x, w, scales and bias lie in `in`
 * (x codes at IN_Q, w codes at IN_Q + 256, x_scale at IN_S, w_scale at
 * IN_S + 64, bias at IN_S + 128), y in `out` at OUT_G. */
enum { GM = 4, GN = 8, GK = 16, OUT_G = 3072, IN_W = IN_Q + 256, IN_XS = IN_S, IN_WS = IN_S + 64,
       IN_B = IN_S + 128 };
enum { G_NULL_DESC = 1, G_NULL_X = 2, G_NULL_W = 4, G_NULL_XS = 8, G_NULL_WS = 16, G_NULL_Y = 32 };

typedef struct gcall {
  llmk_handle h;
  llmk_gemm_desc d;
  llmk_tensor x, w, xs, ws, bias, y;
  int has_bias;
  unsigned nulls; /* G_NULL_* bits: pass NULL instead of that argument */
} gcall;

static gcall gemm_call(llmk_handle h, unsigned char *in, unsigned char *out) {
  gcall c;
  memset(&c, 0, sizeof c);
  c.h = h;
  c.d = (llmk_gemm_desc)LLMK_GEMM_DESC_INIT;
  c.d.scaling = LLMK_SCALING_ROW;
  c.d.accum = LLMK_ACCUM_DEFAULT;
  c.d.backend = LLMK_GEMM_AUTO;
  c.x = llmk_tensor_2d(in + IN_Q, LLMK_E4M3, GM, GK, GK);
  c.w = llmk_tensor_2d(in + IN_W, LLMK_E4M3, GN, GK, GK);
  c.xs = llmk_tensor_1d(in + IN_XS, LLMK_F32, GM);
  c.ws = llmk_tensor_1d(in + IN_WS, LLMK_F32, GN);
  c.bias = llmk_tensor_1d(in + IN_B, LLMK_F32, GN);
  c.has_bias = 1;
  c.y = llmk_tensor_2d(out + OUT_G, LLMK_BF16, GM, GN, GN);
  return c;
}

static llmk_status do_gemm(const gcall *c) {
  return llmk_gemm_fp8(c->h, c->nulls & G_NULL_DESC ? NULL : &c->d, c->nulls & G_NULL_X ? NULL : &c->x,
                       c->nulls & G_NULL_W ? NULL : &c->w, c->nulls & G_NULL_XS ? NULL : &c->xs,
                       c->nulls & G_NULL_WS ? NULL : &c->ws, c->has_bias ? &c->bias : NULL,
                       c->nulls & G_NULL_Y ? NULL : &c->y, NULL);
}

/* Switches c to tensor scaling ([1] scales). */
static void gemm_tensor(gcall *c) {
  c->d.scaling = LLMK_SCALING_TENSOR;
  c->xs.shape[0] = 1;
  c->ws.shape[0] = 1;
}

/* Switches c to x [2, 2, GK] and y [2, 2, GN] (rows of c as two batches). */
static void gemm_3d(gcall *c) {
  c->x = t3(c->x.data, LLMK_E4M3, 2, 2, GK, 2 * GK, GK);
  c->y = t3(c->y.data, LLMK_BF16, 2, 2, GN, 2 * GN, GN);
}

/* The same checks as expect_bad_st, for llmk_gemm_fp8. */
static void expect_bad_gemm(int line, const char *what, const gcall *c, llmk_status want,
                            const char *arg, const char *detail) {
  static const char fn[] = "llmk_gemm_fp8";
  char why[1024] = "";
  reset_error(fn);
  poison();
  llmk_status s = do_gemm(c);
  int ok = status_ok(why, sizeof why, s, want, fn, arg, detail);
#ifdef LLMK_WITH_CUDA
  if (g_dout && cudaPeekAtLastError() != cudaSuccess) {
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
#define BADG(what, c, arg, detail) expect_bad_gemm(__LINE__, what, &(c), INV, arg, detail)

/* A call that must pass validation: SUCCESS on the CPU; on a CUDA handle
 * SUCCESS or NOT_SUPPORTED (a backend that cannot take the shape). */
static void expect_valid_gemm(int line, const char *what, const gcall *c, int cuda) {
  llmk_status s = do_gemm(c);
  int ok = s == LLMK_SUCCESS || (cuda && s == LLMK_ERR_NOT_SUPPORTED);
  CHECK(ok, "line %d: %s: %s: %s", line, what, llmk_status_string(s), llmk_last_error());
}
#define VALIDG(what, c, cuda) expect_valid_gemm(__LINE__, what, &(c), cuda)

/* The valid CPU call writes exactly bf16(((float)acc * xs[m]) * ws[n] + bias[n]). */
static int gemm_cpu_result_ok(void) {
  const gcall c0 = gemm_call(g_live, g_in, g_out);
  poison();
  if (do_gemm(&c0) != LLMK_SUCCESS) return 0;
  const uint8_t *x = g_in + IN_Q, *w = g_in + IN_W;
  const float *xs = (const float *)(g_in + IN_XS), *ws = (const float *)(g_in + IN_WS),
              *b = (const float *)(g_in + IN_B);
  const uint16_t *y = (const uint16_t *)(g_out + OUT_G);
  for (int m = 0; m < GM; m++)
    for (int n = 0; n < GN; n++) {
      double acc = 0.0;
      for (int k = 0; k < GK; k++)
        acc += (double)llmk_fp8_to_float(x[m * GK + k], LLMK_E4M3) * llmk_fp8_to_float(w[n * GK + k], LLMK_E4M3);
      float v = (float)acc * xs[m];
      v = v * ws[n];
      v = v + b[n];
      if (y[m * GN + n] != llmk_float_to_bf16(v)) return 0;
    }
  return 1;
}

static void gemm_cases(llmk_handle h, llmk_handle bogus) {
  unsigned char *in = g_in, *out = g_out;
  const gcall g0 = gemm_call(h, in, out);
  CHECK(gemm_cpu_result_ok(), "the valid baseline gemm call fails or gives wrong bits: %s", llmk_last_error());

  /* null pointers */
  { gcall c = g0; c.h = NULL; BADG("gemm: NULL handle", c, "handle", "NULL"); }
  { gcall c = g0; c.h = bogus; BADG("gemm: garbage handle", c, "handle", NULL); }
  { gcall c = g0; c.nulls = G_NULL_DESC; BADG("gemm: NULL desc", c, "desc", "NULL"); }
  { gcall c = g0; c.nulls = G_NULL_X; BADG("gemm: NULL x", c, "x", "NULL"); }
  { gcall c = g0; c.nulls = G_NULL_W; BADG("gemm: NULL w", c, "w", "NULL"); }
  { gcall c = g0; c.nulls = G_NULL_XS; BADG("gemm: NULL x_scale", c, "x_scale", "NULL"); }
  { gcall c = g0; c.nulls = G_NULL_WS; BADG("gemm: NULL w_scale", c, "w_scale", "NULL"); }
  { gcall c = g0; c.nulls = G_NULL_Y; BADG("gemm: NULL y", c, "y", "NULL"); }
  { gcall c = g0; c.x.data = NULL; BADG("gemm: x.data NULL", c, "x", "NULL"); }
  { gcall c = g0; c.w.data = NULL; BADG("gemm: w.data NULL", c, "w", "NULL"); }
  { gcall c = g0; c.xs.data = NULL; BADG("gemm: x_scale.data NULL", c, "x_scale", "NULL"); }
  { gcall c = g0; c.ws.data = NULL; BADG("gemm: w_scale.data NULL", c, "w_scale", "NULL"); }
  { gcall c = g0; c.bias.data = NULL; BADG("gemm: bias.data NULL", c, "bias", "NULL"); }
  { gcall c = g0; c.y.data = NULL; BADG("gemm: y.data NULL", c, "y", "NULL"); }
  { gcall c = g0; gemm_tensor(&c); c.xs.data = NULL; c.x.shape[0] = c.y.shape[0] = 0;
    BADG("gemm: tensor x_scale.data NULL with M = 0", c, "x_scale", "NULL"); }

  /* invalid enum values */
  { gcall c = g0; c.d.scaling = (llmk_scaling)4; BADG("gemm: scaling 4", c, "scaling", "4"); }
  { gcall c = g0; c.d.scaling = (llmk_scaling)-1; BADG("gemm: scaling -1", c, "scaling", "-1"); }
  { gcall c = g0; c.d.scaling = LLMK_SCALING_COL; BADG("gemm: col scaling", c, "scaling", "col"); }
  { gcall c = g0; c.d.scaling = LLMK_SCALING_BLOCK; BADG("gemm: block scaling", c, "scaling", "block"); }
  { gcall c = g0; c.d.accum = (llmk_accum)3; BADG("gemm: accum 3", c, "accum", "3"); }
  { gcall c = g0; c.d.accum = (llmk_accum)-1; BADG("gemm: accum -1", c, "accum", "-1"); }
  { gcall c = g0; c.d.backend = (llmk_gemm_backend)3; BADG("gemm: backend 3", c, "backend", "3"); }
  { gcall c = g0; c.d.backend = (llmk_gemm_backend)-7; BADG("gemm: backend -7", c, "backend", "-7"); }
  { gcall c = g0; c.x.dtype = (llmk_dtype)99; BADG("gemm: x.dtype 99", c, "x", "dtype"); }
  { gcall c = g0; c.bias.dtype = (llmk_dtype)99; BADG("gemm: bias.dtype 99", c, "bias", "dtype"); }

  /* wrong dtypes */
  { gcall c = g0; c.x.dtype = LLMK_BF16; BADG("gemm: x bf16", c, "x", "bf16"); }
  { gcall c = g0; c.x.dtype = LLMK_E5M2; BADG("gemm: x e5m2", c, "x", "e5m2"); }
  { gcall c = g0; c.x.dtype = LLMK_U8; BADG("gemm: x u8", c, "x", "u8"); }
  { gcall c = g0; c.w.dtype = LLMK_F32; BADG("gemm: w f32", c, "w", "f32"); }
  { gcall c = g0; c.w.dtype = LLMK_E5M2; BADG("gemm: w e5m2", c, "w", "e5m2"); }
  { gcall c = g0; c.xs.dtype = LLMK_BF16; BADG("gemm: x_scale bf16", c, "x_scale", "bf16"); }
  { gcall c = g0; c.ws.dtype = LLMK_F16; BADG("gemm: w_scale f16", c, "w_scale", "f16"); }
  { gcall c = g0; c.ws.dtype = LLMK_I32; BADG("gemm: w_scale i32", c, "w_scale", "i32"); }
  { gcall c = g0; c.bias.dtype = LLMK_F16; BADG("gemm: bias f16", c, "bias", "f16"); }
  { gcall c = g0; c.bias.dtype = LLMK_E4M3; BADG("gemm: bias e4m3", c, "bias", "e4m3"); }
  { gcall c = g0; c.y.dtype = LLMK_F32; BADG("gemm: y f32", c, "y", "f32"); }
  { gcall c = g0; c.y.dtype = LLMK_F16; BADG("gemm: y f16", c, "y", "f16"); }
  { gcall c = g0; c.y.dtype = (llmk_dtype)42; BADG("gemm: y.dtype 42", c, "y", "dtype"); }

  /* mismatched shapes */
  { gcall c = g0; c.w.shape[1] = GK / 2; BADG("gemm: w [8,8] vs x [4,16]", c, "w", "K"); }
  { gcall c = g0; c.x.shape[1] = GK - 1; c.x.strides[0] = GK;
    BADG("gemm: x [4,15] vs w [8,16]", c, "w", "K"); }
  { gcall c = g0; c.w = t3(in + IN_W, LLMK_E4M3, 1, GN, GK, GN * GK, GK);
    BADG("gemm: w 3-D [1,8,16]", c, "w", "dims"); }
  { gcall c = g0; c.w = llmk_tensor_1d(in + IN_W, LLMK_E4M3, GK);
    BADG("gemm: w 1-D", c, "w", "dims"); }
  { gcall c = g0; c.y.shape[1] = GN - 1; BADG("gemm: y [4,7] vs N = 8", c, "y", "shape"); }
  { gcall c = g0; c.y.shape[0] = GM + 1; BADG("gemm: y [5,8] vs M = 4", c, "y", "shape"); }
  { gcall c = g0; c.y = t3(out + OUT_G, LLMK_BF16, 1, GM, GN, GM * GN, GN);
    BADG("gemm: y 3-D vs x 2-D", c, "y", "dims"); }
  { gcall c = g0; gemm_3d(&c); c.y = llmk_tensor_2d(out + OUT_G, LLMK_BF16, GM, GN, GN);
    BADG("gemm: y 2-D vs x 3-D", c, "y", "dims"); }
  { gcall c = g0; gemm_3d(&c); c.y.shape[0] = 1; c.y.shape[1] = 4;
    BADG("gemm: y [1,4,8] vs x [2,2,16]", c, "y", "shape"); }
  { gcall c = g0; c.x.ndim = 0; BADG("gemm: x ndim 0", c, "x", "ndim"); }
  { gcall c = g0; c.y.ndim = 5; BADG("gemm: y ndim 5", c, "y", "ndim"); }

  /* scale and bias shapes */
  { gcall c = g0; gemm_tensor(&c); c.xs.shape[0] = 2; BADG("gemm: tensor x_scale [2]", c, "x_scale", "shape"); }
  { gcall c = g0; gemm_tensor(&c); c.ws.shape[0] = GN; BADG("gemm: tensor w_scale [N]", c, "w_scale", "shape"); }
  { gcall c = g0; gemm_tensor(&c); c.xs.shape[0] = GM; BADG("gemm: tensor x_scale [M]", c, "x_scale", "shape"); }
  { gcall c = g0; gemm_tensor(&c); c.xs = llmk_tensor_2d(in + IN_XS, LLMK_F32, 1, 1, 1);
    BADG("gemm: tensor x_scale [1,1]", c, "x_scale", "dims"); }
  { gcall c = g0; c.xs.shape[0] = GM - 1; BADG("gemm: row x_scale [3]", c, "x_scale", "shape"); }
  { gcall c = g0; c.xs.shape[0] = 1; BADG("gemm: row x_scale [1]", c, "x_scale", "shape"); }
  { gcall c = g0; c.ws.shape[0] = 1; BADG("gemm: row w_scale [1]", c, "w_scale", "shape"); }
  { gcall c = g0; c.ws.shape[0] = GN + 1; BADG("gemm: row w_scale [9]", c, "w_scale", "shape"); }
  { gcall c = g0; c.xs = llmk_tensor_2d(in + IN_XS, LLMK_F32, GM, 1, 1);
    BADG("gemm: row x_scale [M,1] with 2-D x", c, "x_scale", "dims"); }
  { gcall c = g0; gemm_3d(&c); c.xs = llmk_tensor_2d(in + IN_XS, LLMK_F32, 2, 3, 3);
    BADG("gemm: row x_scale [2,3] with x [2,2,16]", c, "x_scale", "shape"); }
  { gcall c = g0; gemm_3d(&c); c.xs = t3(in + IN_XS, LLMK_F32, 2, 2, 1, 2, 1);
    BADG("gemm: row x_scale 3-D with x [2,2,16]", c, "x_scale", "dims"); }
  { gcall c = g0; gemm_3d(&c); c.xs = llmk_tensor_2d(in + IN_XS, LLMK_F32, 2, 2, 4);
    BADG("gemm: row x_scale [2,2] with row stride 4", c, "x_scale", "contiguous"); }
  { gcall c = g0; c.bias.shape[0] = GN - 1; BADG("gemm: bias [7]", c, "bias", "shape"); }
  { gcall c = g0; c.bias = llmk_tensor_2d(in + IN_B, LLMK_F32, 1, GN, GN); BADG("gemm: bias [1,8]", c, "bias", "dims"); }

  /* non-contiguous scales and bias */
  { gcall c = g0; c.xs.strides[0] = 2; BADG("gemm: x_scale stride 2", c, "x_scale", "contiguous"); }
  { gcall c = g0; c.ws.strides[0] = 2; BADG("gemm: w_scale stride 2", c, "w_scale", "contiguous"); }
  { gcall c = g0; c.ws.strides[0] = 0; BADG("gemm: w_scale stride 0", c, "w_scale", "contiguous"); }
  { gcall c = g0; c.bias.strides[0] = 2; BADG("gemm: bias stride 2", c, "bias", "contiguous"); }

  /* negative and overflowing sizes */
  { gcall c = g0; c.x.shape[0] = -1; BADG("gemm: x.shape[0] -1", c, "x", "shape"); }
  { gcall c = g0; c.w.shape[0] = -GN; BADG("gemm: w.shape[0] -8", c, "w", "shape"); }
  { gcall c = g0; c.y.shape[1] = -1; BADG("gemm: y.shape[1] -1", c, "y", "shape"); }
  { gcall c = g0; c.xs.shape[0] = -GM; BADG("gemm: x_scale.shape[0] -4", c, "x_scale", "shape"); }
  { gcall c = g0; c.x.strides[0] = -GK; BADG("gemm: x row stride -16", c, "x", "stride"); }
  { gcall c = g0; c.x.shape[0] = c.y.shape[0] = INT64_C(1) << 62; BADG("gemm: x.shape[0] 2^62", c, "x", "shape"); }
  { gcall c = g0; int64_t g = INT64_C(1) << 30;
    c.x = t3(in + IN_Q, LLMK_E4M3, g, g, GK, g * GK, GK);
    c.y = t3(out + OUT_G, LLMK_BF16, g, g, GN, g * GN, GN);
    BADG("gemm: x [2^30, 2^30, 16] rows overflow", c, "x", "overflow"); }
  { gcall c = g0; int64_t g = INT64_C(1) << 25;
    c.w = llmk_tensor_2d(in + IN_W, LLMK_E4M3, g, g, g);
    BADG("gemm: w [2^25, 2^25] extent overflow", c, "w", "overflow"); }
  { gcall c = g0; c.w.strides[0] = INT64_C(1) << 48; BADG("gemm: w row stride 2^48", c, "w", "overflow"); }
  { gcall c = g0; c.ws.shape[0] = c.bias.shape[0] = INT64_C(1) << 50;
    BADG("gemm: w_scale [2^50]", c, "w_scale", "shape"); }

  /* strides */
  { gcall c = g0; c.x.strides[1] = 2; BADG("gemm: x last-dim stride 2", c, "x", "stride"); }
  { gcall c = g0; c.w.strides[1] = 2; BADG("gemm: w last-dim stride 2", c, "w", "stride"); }
  { gcall c = g0; c.y.strides[1] = 0; BADG("gemm: y last-dim stride 0", c, "y", "stride"); }
  { gcall c = g0; c.x.strides[0] = GK - 1; BADG("gemm: x row stride 15 < 16", c, "x", "stride"); }
  { gcall c = g0; c.w.strides[0] = GK / 2; BADG("gemm: w row stride 8 < 16", c, "w", "stride"); }
  { gcall c = g0; c.y.strides[0] = GN / 2; BADG("gemm: y row stride 4 < 8", c, "y", "stride"); }
  { gcall c = g0; gemm_3d(&c); c.x.strides[0] = 3 * GK; BADG("gemm: x 3-D with a gap between batches", c, "x", "stride"); }
  { gcall c = g0; gemm_3d(&c); c.y.strides[0] = 2 * GN + 8; BADG("gemm: y 3-D with a gap between batches", c, "y", "stride"); }

  /* misaligned element pointers */
  { gcall c = g0; c.xs.data = in + IN_XS + 1; BADG("gemm: f32 x_scale at +1", c, "x_scale", "align"); }
  { gcall c = g0; c.ws.data = in + IN_WS + 2; BADG("gemm: f32 w_scale at +2", c, "w_scale", "align"); }
  { gcall c = g0; c.bias.data = in + IN_B + 2; BADG("gemm: f32 bias at +2", c, "bias", "align"); }
  { gcall c = g0; c.bias.dtype = LLMK_BF16; c.bias.data = in + IN_B + 1; BADG("gemm: bf16 bias at +1", c, "bias", "align"); }
  { gcall c = g0; c.y.data = out + OUT_G + 1; BADG("gemm: bf16 y at an odd address", c, "y", "align"); }

  /* overlapping output */
  { gcall c = g0; c.x.data = out + OUT_G + 16; BADG("gemm: y overlaps x", c, "x", "overlap"); }
  { gcall c = g0; c.x.data = out + OUT_G; BADG("gemm: y == x", c, "x", "overlap"); }
  { gcall c = g0; c.w.data = out + OUT_G - GN * GK + 1; BADG("gemm: y overlaps w's last byte", c, "w", "overlap"); }
  { gcall c = g0; c.xs.data = out + OUT_G + 60; BADG("gemm: y overlaps x_scale", c, "x_scale", "overlap"); }
  { gcall c = g0; c.ws.data = out + OUT_G + 32; BADG("gemm: y overlaps w_scale", c, "w_scale", "overlap"); }
  { gcall c = g0; c.bias.data = out + OUT_G - 4; BADG("gemm: y overlaps bias", c, "bias", "overlap"); }
}

/* Valid edges next to the bad ones: accepted (and for empty outputs, nothing written). */
static void gemm_valid_edges(llmk_handle h) {
  unsigned char *in = g_in, *out = g_out;
  const gcall g0 = gemm_call(h, in, out);
  /* inputs right next to y (no overlap) */
  { gcall c = g0; c.x.data = out + OUT_G + GM * GN * 2; c.bias.data = out + OUT_G - GN * 4;
    c.w.data = out + OUT_G - 1024; VALIDG("gemm: x just after y, bias and w just before", c, 0); }
  /* the CUDA-only rules do not apply to CPU handles */
  { gcall c = g0; c.x.shape[1] = c.w.shape[1] = 5; VALIDG("gemm cpu: K = 5", c, 0); }
  { gcall c = g0; c.w.shape[0] = c.ws.shape[0] = c.bias.shape[0] = c.y.shape[1] = 3;
    VALIDG("gemm cpu: N = 3", c, 0); }
  { gcall c = g0; c.y.data = out + OUT_G + 2; VALIDG("gemm cpu: y at +2 bytes", c, 0); }
  { gcall c = g0; c.x.data = in + IN_Q + 1; VALIDG("gemm cpu: x at +1 byte", c, 0); }
  { gcall c = g0; c.x = llmk_tensor_2d(in + IN_Q, LLMK_E4M3, GM, GK - 1, GK + 3); c.w.shape[1] = GK - 1;
    c.y = llmk_tensor_2d(out + OUT_G, LLMK_BF16, GM, GN, GN + 1);
    VALIDG("gemm cpu: odd row strides", c, 0); }
  /* batch layouts, with x_scale as [M] and as the leading dims */
  { gcall c = g0; gemm_3d(&c); VALIDG("gemm: x [2,2,16], x_scale [4]", c, 0); }
  { gcall c = g0; gemm_3d(&c); c.xs = llmk_tensor_2d(in + IN_XS, LLMK_F32, 2, 2, 2);
    VALIDG("gemm: x [2,2,16], x_scale [2,2]", c, 0); }
  { gcall c = g0; gemm_tensor(&c); c.has_bias = 0; VALIDG("gemm: tensor scaling, no bias", c, 0); }
  { gcall c = g0; c.bias.dtype = LLMK_BF16; VALIDG("gemm: bf16 bias", c, 0); }
  /* empty: M = 0 or N = 0 with NULL data writes nothing */
  { gcall c = g0; c.x.shape[0] = c.y.shape[0] = c.xs.shape[0] = 0; c.x.data = c.y.data = c.xs.data = NULL;
    poison();
    llmk_status s = do_gemm(&c);
    CHECK(s == LLMK_SUCCESS && arenas_intact(), "gemm: M = 0 with NULL data: %s %s",
          llmk_status_string(s), llmk_last_error()); }
  { gcall c = g0; c.w.shape[0] = c.y.shape[1] = c.ws.shape[0] = c.bias.shape[0] = 0;
    c.w.data = c.ws.data = c.bias.data = NULL;
    poison();
    llmk_status s = do_gemm(&c);
    CHECK(s == LLMK_SUCCESS && arenas_intact(), "gemm: N = 0 with NULL data: %s %s",
          llmk_status_string(s), llmk_last_error()); }
  CHECK(gemm_cpu_result_ok(), "the valid gemm call after the bad ones fails or gives wrong bits: %s", llmk_last_error());
}

#ifdef LLMK_WITH_CUDA
/* CUDA handles: device pointers and the layout rules of the kernels. */
static void gemm_gpu_cases(llmk_handle hg, int ndev) {
  const gcall g0 = gemm_call(hg, g_din, g_dout);
  poison();
  VALIDG("cuda gemm: the valid baseline call", g0, 1);
  { gcall c = g0; c.x.data = g_in + IN_Q; BADG("cuda gemm: host x", c, "x", "host"); }
  { gcall c = g0; c.w.data = g_in + IN_W; BADG("cuda gemm: host w", c, "w", "host"); }
  { gcall c = g0; c.xs.data = g_in + IN_XS; BADG("cuda gemm: host x_scale", c, "x_scale", "host"); }
  { gcall c = g0; c.ws.data = g_in + IN_WS; BADG("cuda gemm: host w_scale", c, "w_scale", "host"); }
  { gcall c = g0; c.bias.data = g_in + IN_B; BADG("cuda gemm: host bias", c, "bias", "host"); }
  { gcall c = g0; c.y.data = g_out + OUT_G; BADG("cuda gemm: host y", c, "y", "host"); }
  /* each layout rule, failing and (where it has one) its passing neighbour */
  { gcall c = g0; c.x.shape[1] = c.w.shape[1] = GK / 2; BADG("cuda gemm: K = 8", c, "K", "16"); }
  { gcall c = g0; c.x.shape[1] = c.w.shape[1] = GK - 1; BADG("cuda gemm: K = 15", c, "K", "16"); }
  { gcall c = g0; c.x = llmk_tensor_2d(g_din + IN_Q, LLMK_E4M3, GM, 2 * GK, 2 * GK);
    c.w = llmk_tensor_2d(g_din + IN_W, LLMK_E4M3, GN, 2 * GK, 2 * GK);
    VALIDG("cuda gemm: K = 32", c, 1); }
  { gcall c = g0; c.w.shape[0] = c.ws.shape[0] = c.bias.shape[0] = c.y.shape[1] = GN / 2;
    BADG("cuda gemm: N = 4", c, "N", "8"); }
  { gcall c = g0; c.w.shape[0] = c.ws.shape[0] = c.bias.shape[0] = c.y.shape[1] = GN + 4;
    c.y.strides[0] = 2 * GN; BADG("cuda gemm: N = 12", c, "N", "8"); }
  { gcall c = g0; c.w.shape[0] = c.ws.shape[0] = c.bias.shape[0] = c.y.shape[1] = 2 * GN;
    c.y.strides[0] = 2 * GN; VALIDG("cuda gemm: N = 16", c, 1); }
  { gcall c = g0; c.y.data = g_dout + OUT_G + 2; BADG("cuda gemm: y at +2 bytes", c, "y", "16-byte"); }
  { gcall c = g0; c.y.data = g_dout + OUT_G + 8; BADG("cuda gemm: y at +8 bytes", c, "y", "16-byte"); }
  { gcall c = g0; c.y.data = g_dout + OUT_G + 16; VALIDG("cuda gemm: y at +16 bytes", c, 1); }
  { gcall c = g0; c.x.data = g_din + IN_Q + 1; BADG("cuda gemm: x at +1 byte", c, "x", "16-byte"); }
  { gcall c = g0; c.w.data = g_din + IN_W + 8; BADG("cuda gemm: w at +8 bytes", c, "w", "16-byte"); }
  { gcall c = g0; c.x.strides[0] = GK + 8; BADG("cuda gemm: x row stride 24 bytes", c, "x", "stride"); }
  { gcall c = g0; c.x.strides[0] = 2 * GK; VALIDG("cuda gemm: x row stride 32 bytes", c, 1); }
  { gcall c = g0; c.w.strides[0] = GK + 1; BADG("cuda gemm: w row stride 17 bytes", c, "w", "stride"); }
  { gcall c = g0; c.y.strides[0] = GN + 4; BADG("cuda gemm: y row stride 12 elements", c, "y", "stride"); }
  { gcall c = g0; c.y.strides[0] = 2 * GN; VALIDG("cuda gemm: y row stride 16 elements", c, 1); }
  /* K % 16 is checked even where nothing else would fail */
  { gcall c = g0; gemm_tensor(&c); c.has_bias = 0; c.x.shape[1] = c.w.shape[1] = 24;
    c.x.strides[0] = c.w.strides[0] = 32; BADG("cuda gemm: K = 24, tensor, no bias", c, "K", "16"); }
  /* shape errors come before any device work */
  { gcall c = g0; c.ws.shape[0] = 1; BADG("cuda gemm: row w_scale [1]", c, "w_scale", "shape"); }
  { gcall c = g0; c.x.data = g_dout + OUT_G; BADG("cuda gemm: y overlaps x", c, "x", "overlap"); }

  if (ndev >= 2) {
    int prev = 0;
    unsigned char *other = NULL;
    (void)cudaGetDevice(&prev);
    if (cudaSetDevice(1) == cudaSuccess && cudaMalloc((void **)&other, ARENA) == cudaSuccess) {
      (void)cudaSetDevice(prev);
      { gcall c = g0; c.w.data = other; BADG("cuda gemm: w on device 1", c, "w", "device"); }
      { gcall c = g0; c.y.data = other + OUT_G; BADG("cuda gemm: y on device 1", c, "y", "device"); }
      (void)cudaFree(other);
    } else {
      (void)cudaSetDevice(prev);
      (void)cudaGetLastError();
      SKIP("cannot allocate on device 1 (gemm)");
    }
  }
}

/* llmk_set_workspace on a CUDA handle: bad buffers leave the handle as it
 * was; a lent buffer and the return to the handle's own both work. */
static void workspace_gpu_cases(llmk_handle hg) {
  static const char fn[] = "llmk_set_workspace";
  const size_t min = LLMK_MIN_WORKSPACE_BYTES;
  unsigned char *dws = NULL;
  void *host = NULL;
  if (cudaMalloc((void **)&dws, min + 256) != cudaSuccess || posix_memalign(&host, 256, min) != 0) {
    (void)cudaGetLastError();
    CHECK(0, "cannot allocate the workspace test buffers");
    (void)cudaFree(dws);
    return;
  }
  struct { const char *what; void *ptr; size_t bytes; const char *arg, *detail; } bad[] = {
      {"ptr without bytes", dws, 0, "ptr", "bytes"},
      {"bytes without ptr", NULL, min, "ptr", "bytes"},
      {"ptr at +16 (not 256-byte aligned)", dws + 16, min, "ptr", "256"},
      {"ptr at +128", dws + 128, min, "ptr", "256"},
      {"bytes = LLMK_MIN_WORKSPACE_BYTES - 1", dws, min - 1, "bytes", "LLMK_MIN_WORKSPACE_BYTES"},
      {"bytes = 4096", dws, 4096, "bytes", NULL},
      {"host ptr", host, min, "ptr", "host"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char what[160];
    snprintf(what, sizeof what, "cuda llmk_set_workspace: %s", bad[i].what);
    reset_error(fn);
    expect_status(what, llmk_set_workspace(hg, bad[i].ptr, bad[i].bytes), INV, fn, bad[i].arg,
                  bad[i].detail);
    CHECK(cudaPeekAtLastError() == cudaSuccess, "%s: a CUDA error was left pending", what);
    (void)cudaGetLastError();
    CHECK(usable(hg), "%s: the handle is not usable after it", what);
  }
  llmk_status s = llmk_set_workspace(hg, dws + 256, min);
  CHECK(s == LLMK_SUCCESS, "cuda llmk_set_workspace: lending a valid buffer: %s", llmk_last_error());
  {
    const gcall g0 = gemm_call(hg, g_din, g_dout);
    poison();
    VALIDG("cuda gemm with a lent workspace", g0, 1);
  }
  s = llmk_set_workspace(hg, NULL, 0);
  CHECK(s == LLMK_SUCCESS, "cuda llmk_set_workspace(NULL, 0): back to the handle's own: %s", llmk_last_error());
  CHECK(usable(hg), "the handle is not usable after the workspace cases");
  (void)cudaFree(dws);
  free(host);
}
#endif

/* llmk_set_workspace errors that need no device. */
static void workspace_cases(llmk_handle h, llmk_handle bogus) {
  static const char fn[] = "llmk_set_workspace";
  static unsigned char buf[512];
  reset_error(fn);
  expect_status("llmk_set_workspace(NULL, ...)", llmk_set_workspace(NULL, buf, sizeof buf), INV, fn,
                "handle", "NULL");
  reset_error(fn);
  expect_status("llmk_set_workspace(garbage, ...)", llmk_set_workspace(bogus, NULL, 0), INV, fn,
                "handle", NULL);
  reset_error(fn);
  expect_status("llmk_set_workspace(cpu, NULL, 0)", llmk_set_workspace(h, NULL, 0), INV, fn,
                "handle", "CPU");
  reset_error(fn);
  expect_status("llmk_set_workspace(cpu, buf, LLMK_MIN_WORKSPACE_BYTES)",
                llmk_set_workspace(h, buf, LLMK_MIN_WORKSPACE_BYTES), INV, fn, "handle", "CPU");
  CHECK(usable(h), "the CPU handle is not usable after the workspace cases");
}

/* ---- the rest of the API -------------------------------------------------- */

static void misc_cases(llmk_handle h, llmk_handle bogus, int ndev) {
  /* llmk_status_string */
  {
    int ok = 1;
    for (int s = 0; s <= (int)LLMK_ERR_INTERNAL; s++) {
      const char *n = llmk_status_string((llmk_status)s);
      if (!n || strncmp(n, "LLMK_", 5) != 0 || strstr(n, "UNKNOWN")) ok = 0;
    }
    CHECK(ok && !strcmp(llmk_status_string(LLMK_ERR_INVALID_ARGUMENT), "LLMK_ERR_INVALID_ARGUMENT"),
          "status names");
    const char *a = llmk_status_string((llmk_status)99), *b = llmk_status_string((llmk_status)-1);
    CHECK(a && b && a[0] && b[0] && strcmp(a, "LLMK_SUCCESS") && strcmp(b, "LLMK_SUCCESS"),
          "invalid statuses name themselves: %s / %s", a ? a : "(null)", b ? b : "(null)");
  }

  /* llmk_get_build_info */
  reset_error("llmk_get_build_info");
  expect_status("llmk_get_build_info(NULL)", llmk_get_build_info(NULL), INV, "llmk_get_build_info",
                "info", "NULL");

  /* dtype tables and scalar conversions with invalid dtypes */
  CHECK(llmk_dtype_size((llmk_dtype)8) == 0 && llmk_dtype_size((llmk_dtype)-1) == 0 &&
            llmk_dtype_size((llmk_dtype)1000) == 0 && llmk_dtype_size(LLMK_BF16) == 2,
        "llmk_dtype_size of invalid dtypes");
  CHECK(!strcmp(llmk_dtype_name((llmk_dtype)8), "invalid") &&
            !strcmp(llmk_dtype_name((llmk_dtype)-1), "invalid") && !strcmp(llmk_dtype_name(LLMK_E5M2), "e5m2"),
        "llmk_dtype_name of invalid dtypes");
  CHECK(llmk_float_to_fp8(1.0f, LLMK_BF16) == 0 && llmk_float_to_fp8(448.0f, LLMK_F32) == 0 &&
            llmk_float_to_fp8(1.0f, (llmk_dtype)99) == 0 && llmk_float_to_fp8(1.0f, (llmk_dtype)-1) == 0 &&
            llmk_float_to_fp8(1.0f, LLMK_E4M3) == 0x38,
        "llmk_float_to_fp8 with a non-FP8 dtype must return 0");
  CHECK(isnan(llmk_fp8_to_float(0x38, LLMK_F32)) && isnan(llmk_fp8_to_float(0x38, LLMK_U8)) &&
            isnan(llmk_fp8_to_float(0x38, (llmk_dtype)99)) && isnan(llmk_fp8_to_float(0, (llmk_dtype)-1)) &&
            llmk_fp8_to_float(0x38, LLMK_E4M3) == 1.0f,
        "llmk_fp8_to_float with a non-FP8 dtype must return NaN");

  /* handles */
  reset_error("llmk_create_cpu");
  expect_status("llmk_create_cpu(NULL)", llmk_create_cpu(NULL), INV, "llmk_create_cpu", "out", "NULL");
  reset_error("llmk_create_cuda");
  expect_status("llmk_create_cuda(0, NULL)", llmk_create_cuda(0, NULL), INV, "llmk_create_cuda", "out",
                "NULL");
  static const int bad_devs[] = {-1, 1 << 20, -2147483647 - 1};
  for (int i = 0; i < 3; i++) {
    llmk_handle hc = bogus; /* must come back NULL */
    char what[64];
    snprintf(what, sizeof what, "llmk_create_cuda(%d, &h)", bad_devs[i]);
    reset_error("llmk_create_cuda");
    llmk_status s = llmk_create_cuda(bad_devs[i], &hc);
    if (ndev == 0) {
      const char *m = llmk_last_error();
      CHECK(s == LLMK_ERR_NOT_SUPPORTED && hc == NULL && (strstr(m, "no CUDA") || strstr(m, "without CUDA")),
            "%s without a device: %s, out %s, \"%s\"", what, llmk_status_string(s),
            hc ? "not NULL" : "NULL", m);
    } else {
      expect_status(what, s, INV, "llmk_create_cuda", "device", NULL);
      CHECK(hc == NULL, "%s: *out not set to NULL", what);
    }
  }
  if (ndev == 0) {
    llmk_handle hc = bogus;
    llmk_status s = llmk_create_cuda(0, &hc);
    const char *m = llmk_last_error();
    CHECK(s == LLMK_ERR_NOT_SUPPORTED && hc == NULL && (strstr(m, "no CUDA") || strstr(m, "without CUDA")),
          "llmk_create_cuda(0, &h) without a device: %s, \"%s\"", llmk_status_string(s), m);
  }
  CHECK(llmk_destroy(NULL) == LLMK_SUCCESS, "llmk_destroy(NULL): %s", llmk_last_error());
  reset_error("llmk_destroy");
  expect_status("llmk_destroy(garbage)", llmk_destroy(bogus), INV, "llmk_destroy", "handle", NULL);

  /* llmk_handle_backend: out params untouched on error */
  {
    llmk_backend b = (llmk_backend)77;
    int dev = 77;
    reset_error("llmk_handle_backend");
    expect_status("llmk_handle_backend(NULL, ...)", llmk_handle_backend(NULL, &b, &dev), INV,
                  "llmk_handle_backend", "handle", "NULL");
    reset_error("llmk_handle_backend");
    expect_status("llmk_handle_backend(garbage, ...)", llmk_handle_backend(bogus, &b, &dev), INV,
                  "llmk_handle_backend", "handle", NULL);
    reset_error("llmk_handle_backend");
    expect_status("llmk_handle_backend(h, NULL, &dev)", llmk_handle_backend(h, NULL, &dev), INV,
                  "llmk_handle_backend", "backend", NULL);
    reset_error("llmk_handle_backend");
    expect_status("llmk_handle_backend(h, &b, NULL)", llmk_handle_backend(h, &b, NULL), INV,
                  "llmk_handle_backend", "device", NULL);
    CHECK(b == (llmk_backend)77 && dev == 77, "llmk_handle_backend wrote an output on error");
    llmk_status s = llmk_handle_backend(h, &b, &dev);
    CHECK(s == LLMK_SUCCESS && b == LLMK_BACKEND_CPU && dev == -1, "llmk_handle_backend(cpu): %s",
          llmk_last_error());
  }

  /* devices */
  reset_error("llmk_cuda_device_count");
  expect_status("llmk_cuda_device_count(NULL)", llmk_cuda_device_count(NULL), INV,
                "llmk_cuda_device_count", "count", "NULL");
  {
    reset_error("llmk_cuda_device_count"); /* a success must leave this message */
    char before[1024];
    snprintf(before, sizeof before, "%s", llmk_last_error());
    int n = -5;
    llmk_status s = llmk_cuda_device_count(&n);
    CHECK(s == LLMK_SUCCESS && n == ndev && !strcmp(before, llmk_last_error()),
          "llmk_cuda_device_count(&n) must succeed and leave the last error alone: %s, n %d, \"%s\"",
          llmk_status_string(s), n, llmk_last_error());
  }
  reset_error("llmk_cuda_device_info");
  expect_status("llmk_cuda_device_info(0, NULL)", llmk_cuda_device_info(0, NULL), INV,
                "llmk_cuda_device_info", "info", "NULL");
  {
    const int devs[] = {-1, 1 << 20, ndev};
    for (int i = 0; i < 3; i++) {
      llmk_device_info info = LLMK_DEVICE_INFO_INIT, ref = LLMK_DEVICE_INFO_INIT;
      memset(&info, 0xA5, sizeof info);
      memcpy(&ref, &info, sizeof ref);
      char what[64];
      snprintf(what, sizeof what, "llmk_cuda_device_info(%d, &info)", devs[i]);
      reset_error("llmk_cuda_device_info");
      llmk_status s = llmk_cuda_device_info(devs[i], &info);
      if (ndev == 0) {
        const char *m = llmk_last_error();
        CHECK(s == LLMK_ERR_NOT_SUPPORTED && (strstr(m, "no CUDA") || strstr(m, "without CUDA")),
              "%s without a device: %s \"%s\"", what, llmk_status_string(s), m);
      } else {
        expect_status(what, s, INV, "llmk_cuda_device_info", "device", NULL);
      }
      CHECK(!memcmp(&info, &ref, sizeof info), "%s wrote *info on error", what);
    }
  }
  CHECK(usable(h), "the CPU handle is not usable after the API error cases");
}

/* ---- CUDA handles: host and wrong-device pointers -------------------------- */

#ifdef LLMK_WITH_CUDA
static void gpu_cases(llmk_handle hcpu, int ndev) {
  llmk_handle hg = NULL;
  llmk_status s = llmk_create_cuda(0, &hg);
  CHECK(s == LLMK_SUCCESS && hg, "llmk_create_cuda(0, &h): %s", llmk_last_error());
  if (s) return;
  llmk_device_info info = LLMK_DEVICE_INFO_INIT;
  s = llmk_cuda_device_info(0, &info);
  CHECK(s == LLMK_SUCCESS, "llmk_cuda_device_info(0): %s", llmk_last_error());
  if (s || !info.supported) {
    SKIP("device 0 (%s) is not a Hopper GPU: CUDA-handle pointer checks", s ? "?" : info.name);
    llmk_destroy(hg);
    return;
  }
  if (cudaMalloc((void **)&g_din, ARENA) || cudaMalloc((void **)&g_dout, ARENA) ||
      cudaMalloc((void **)&g_dok, 256)) {
    CHECK(0, "cudaMalloc failed");
    llmk_destroy(hg);
    return;
  }
  g_live = hg;
  CHECK(usable(hg), "a valid quantize/dequantize on the CUDA handle: %s", llmk_last_error());

  const call q0 = quant_call(hg, g_din, g_dout), d0 = dequant_call(hg, g_din, g_dout);
  { call c = q0; c.t[0].data = g_in + IN_X; BAD("cuda quantize: host x", c, "x", "host"); }
  { call c = q0; c.t[1].data = g_out + OUT_Q; BAD("cuda quantize: host xq", c, "xq", "host"); }
  { call c = q0; c.t[2].data = g_out + OUT_S; BAD("cuda quantize: host scale", c, "scale", "host"); }
  { call c = q0; use_scaling(&c, LLMK_SCALING_TENSOR); c.d.scale_ub = (const float *)(g_in + IN_UB);
    BAD("cuda quantize: host scale_ub", c, "scale_ub", "host"); }
  { call c = q0; use_scaling(&c, LLMK_SCALING_TENSOR); c.d.num_rows = (const int64_t *)(g_in + IN_NR);
    BAD("cuda quantize: host num_rows", c, "num_rows", "host"); }
  { call c = d0; c.t[0].data = g_in + IN_Q; BAD("cuda dequantize: host xq", c, "xq", "host"); }
  { call c = d0; c.t[1].data = g_in + IN_S; BAD("cuda dequantize: host scale", c, "scale", "host"); }
  { call c = d0; c.t[2].data = g_out + OUT_Y; BAD("cuda dequantize: host y", c, "y", "host"); }
  /* shape errors are caught before any device work */
  { call c = q0; c.t[2].shape[0] = M - 1; BAD("cuda quantize: row scale [3]", c, "scale", "shape"); }
  { call c = d0; c.t[2].strides[0] = K / 2; BAD("cuda dequantize: y row stride 4", c, "y", "stride"); }

  if (ndev >= 2) {
    int prev = 0;
    unsigned char *other = NULL;
    (void)cudaGetDevice(&prev);
    if (cudaSetDevice(1) == cudaSuccess && cudaMalloc((void **)&other, ARENA) == cudaSuccess) {
      (void)cudaSetDevice(prev);
      { call c = q0; c.t[0].data = other; BAD("cuda quantize: x on device 1", c, "x", "device"); }
      { call c = d0; c.t[2].data = other; BAD("cuda dequantize: y on device 1", c, "y", "device"); }
      (void)cudaFree(other);
    } else {
      (void)cudaSetDevice(prev);
      (void)cudaGetLastError();
      SKIP("cannot allocate on device 1");
    }
  } else {
    SKIP("one CUDA device: wrong-device pointer cases");
  }
  gemm_gpu_cases(hg, ndev);
  workspace_gpu_cases(hg);

  (void)cudaFree(g_din);
  (void)cudaFree(g_dout);
  (void)cudaFree(g_dok);
  g_din = g_dout = g_dok = NULL;
  g_live = hcpu;
  CHECK(llmk_destroy(hg) == LLMK_SUCCESS, "llmk_destroy(cuda): %s", llmk_last_error());
}
#endif

int main(void) {
  /* Before any failed call the last error is "". */
  const char *first = llmk_last_error();
  CHECK(first && first[0] == '\0', "initial llmk_last_error() is \"%s\"", first ? first : "(null)");

  t_seed();
  g_in = malloc(ARENA);
  g_in_ref = malloc(ARENA);
  g_out = malloc(ARENA);
  llmk_handle bogus = malloc(256); /* not a handle: garbage bytes */
  if (!g_in || !g_in_ref || !g_out || !bogus) {
    CHECK(0, "malloc failed");
    TEST_END();
  }
  memset((void *)bogus, 0xA5, 256);
  for (int i = 0; i < IN_Q / 4; i++) ((float *)g_in)[i] = t_rand_normal();
  for (int i = IN_Q; i < IN_S; i++) g_in[i] = llmk_float_to_fp8(t_rand_normal() * 100.0f, LLMK_E4M3);
  for (int i = IN_S / 4; i < IN_UB / 4; i++) ((float *)g_in)[i] = 0.01f + (float)t_rand_uniform();
  for (int i = IN_UB; i < IN_NR; i++) g_in[i] = 0x41; /* f32 ~12 at IN_UB */
  for (int i = IN_NR; i < ARENA; i++) g_in[i] = 0;
  ((int64_t *)(g_in + IN_NR))[0] = 2;
  memcpy(g_in_ref, g_in, ARENA);

  llmk_handle h = NULL;
  llmk_status s = llmk_create_cpu(&h);
  CHECK(s == LLMK_SUCCESS && h, "llmk_create_cpu: %s", llmk_last_error());
  if (s) TEST_END();
  g_live = h;

  int ndev = 0;
  CHECK(llmk_cuda_device_count(&ndev) == LLMK_SUCCESS && ndev >= 0, "llmk_cuda_device_count: %s",
        llmk_last_error());

  quantize_cases(h, bogus);
  dequantize_cases(h);
  valid_edges(h);
  gemm_cases(h, bogus);
  gemm_valid_edges(h);
  workspace_cases(h, bogus);
  misc_cases(h, bogus, ndev);

#ifdef LLMK_WITH_CUDA
  if (ndev >= 1)
    gpu_cases(h, ndev);
  else
    SKIP("no CUDA device");
#else
  SKIP("no CUDA device");
#endif

  CHECK(llmk_destroy(h) == LLMK_SUCCESS, "llmk_destroy: %s", llmk_last_error());
  free((void *)bogus);
  free(g_in);
  free(g_in_ref);
  free(g_out);
  TEST_END();
}
