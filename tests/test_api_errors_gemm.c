/* Bad-input tests of llmk_gemm_fp8 and llmk_set_workspace (docs/DESIGN.md,
 * "Testing"; the machinery is tests/api_errors.h): the same treatment as
 * the quantize calls of test_api_errors.c (documented status, a fresh
 * message naming the argument, nothing written, the library usable after
 * it), plus, on a CUDA handle, the kernels' layout rules (K % 16, N % 8,
 * 16-byte bases and row pitches) with valid calls at each rule's edge,
 * host and wrong-device pointers, and llmk_set_workspace's handle and
 * buffer checks (a lent buffer and the return to the handle's own). */
#include "api_errors.h"

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
  reset_error(fn);
  poison();
  judge_bad(line, what, do_gemm(c), want, fn, arg, detail);
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

int main(void) {
  llmk_handle h = NULL, bogus = NULL;
  int ndev = 0;
  if (!ae_setup(&h, &bogus, &ndev)) TEST_END();
  gemm_cases(h, bogus);
  gemm_valid_edges(h);
  workspace_cases(h, bogus);
#ifdef LLMK_WITH_CUDA
  if (ndev >= 1) {
    llmk_handle hg = ae_gpu_begin();
    if (hg) {
      gemm_gpu_cases(hg, ndev);
      workspace_gpu_cases(hg);
      ae_gpu_end(hg, h);
    }
  } else {
    SKIP("no CUDA device");
  }
#else
  SKIP("no CUDA device");
#endif
  ae_teardown(h, bogus);
  TEST_END();
}
