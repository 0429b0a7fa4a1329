/*
 * llmk_gemm_w4a16 (bf16 x INT4 -> bf16):
 *
 *  1. CPU, bit for bit: the reference equals llmk_gemm_bf16 (CPU) on the
 *     weight llmk_int4_dequantize writes: symmetric and asymmetric, groups
 *     of 64 and 128, bias none / f32 / bf16, x as [B, S, K] with padded
 *     rows, y rows padded (padding untouched).
 *  2. GPU against the CPU reference on fresh random data (activations
 *     N(0, 1), weights N(0, 0.02^2) quantized by llmk_int4_quantize):
 *     relative Frobenius error <= 5e-3 (the product's own fp32 sums in
 *     another order; the done-when bound is 1e-2) and |y - ref| <= 1e-2
 *     |ref| + 1e-2 rms(ref) per element; y poisoned first, every element
 *     written, padding untouched; each path the dispatcher can take: the
 *     decode kernel at every K split (1, 2, 4, 8 forced), one or two mma N
 *     tiles, several launches of 16 tokens, odd N, K not a multiple of the
 *     128-deep chunk, the dequantized stripes (forced at small M, and the
 *     rule at M > 16); the same call twice gives the same bits.
 *  3. Bad arguments: INVALID_ARGUMENT with nothing written.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/env.h"
#include "harness.h"
#include "llmk.h"

#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

#define POISON 0xFFFFu

static llmk_handle cpu;

/* A problem's host data: x [M, ldx], the INT4 weight of w [N, K], bias in
 * both dtypes, y [M, ldy]. */
typedef struct prob {
  int64_t M, N, K, ldx, ldy, ng;
  int group, asym;
  uint16_t *x, *scales, *bias16, *y;
  uint8_t *codes, *zeros;
  float *bias32;
} prob;

static void prob_init(prob *p, int64_t M, int64_t N, int64_t K, int group, int asym, int padx, int pady) {
  p->M = M, p->N = N, p->K = K, p->ldx = K + padx, p->ldy = N + pady, p->group = group, p->asym = asym;
  p->ng = K / group;
  p->x = t_xmalloc((size_t)(M * p->ldx) * 2);
  for (int64_t i = 0; i < M * p->ldx; i++) p->x[i] = llmk_float_to_bf16(t_rand_normal());
  uint16_t *w = t_xmalloc((size_t)(N * K) * 2);
  for (int64_t i = 0; i < N * K; i++) w[i] = llmk_float_to_bf16(0.02f * t_rand_normal());
  p->codes = t_xmalloc((size_t)(N * K / 2)), p->scales = t_xmalloc((size_t)(N * p->ng) * 2);
  p->zeros = asym ? t_xmalloc((size_t)(N * p->ng)) : NULL;
  llmk_int4_desc d = LLMK_INT4_DESC_INIT;
  d.group = group, d.asymmetric = asym;
  llmk_tensor tw = llmk_tensor_2d(w, LLMK_BF16, N, K, K), tc = llmk_tensor_2d(p->codes, LLMK_U8, N, K / 2, K / 2);
  llmk_tensor ts = llmk_tensor_2d(p->scales, LLMK_BF16, N, p->ng, p->ng);
  llmk_tensor tz = llmk_tensor_2d(p->zeros, LLMK_U8, N, p->ng, p->ng);
  const llmk_status st = llmk_int4_quantize(cpu, &d, &tw, &tc, &ts, asym ? &tz : NULL, NULL);
  CHECK(st == LLMK_SUCCESS, "quantize: %s", llmk_last_error());
  free(w);
  p->bias16 = t_xmalloc((size_t)N * 2), p->bias32 = t_xmalloc((size_t)N * 4);
  for (int64_t n = 0; n < N; n++) {
    p->bias16[n] = llmk_float_to_bf16(0.1f * t_rand_normal());
    p->bias32[n] = llmk_bf16_to_float(p->bias16[n]) + 0.01f;
  }
  p->y = t_xmalloc((size_t)(M * p->ldy) * 2);
}

static void prob_free(prob *p) {
  free(p->x), free(p->codes), free(p->scales), free(p->zeros), free(p->bias16), free(p->bias32), free(p->y);
}

static llmk_int4_desc desc_of(const prob *p) {
  llmk_int4_desc d = LLMK_INT4_DESC_INIT;
  d.group = p->group, d.asymmetric = p->asym;
  return d;
}

/* llmk_gemm_w4a16 on handle h with the given pointers (x viewed as [M, K]
 * or, with three_d, [2, M/2, K]); bias 0 none, 1 f32, 2 bf16. */
static llmk_status run(llmk_handle h, const prob *p, const void *x, const void *codes, const void *scales,
                       const void *zeros, const void *bias, int bias_kind, void *y, int three_d) {
  const llmk_int4_desc d = desc_of(p);
  llmk_tensor tx = llmk_tensor_2d((void *)x, LLMK_BF16, p->M, p->K, p->ldx);
  llmk_tensor ty = llmk_tensor_2d(y, LLMK_BF16, p->M, p->N, p->ldy);
  if (three_d) {
    /* [2, M/2, K] with padded rows: strides set by hand */
    tx = llmk_tensor_3d((void *)x, LLMK_BF16, 2, p->M / 2, p->K);
    tx.strides[0] = p->M / 2 * p->ldx, tx.strides[1] = p->ldx;
    ty = llmk_tensor_3d(y, LLMK_BF16, 2, p->M / 2, p->N);
    ty.strides[0] = p->M / 2 * p->ldy, ty.strides[1] = p->ldy;
  }
  llmk_tensor tc = llmk_tensor_2d((void *)codes, LLMK_U8, p->N, p->K / 2, p->K / 2);
  llmk_tensor ts = llmk_tensor_2d((void *)scales, LLMK_BF16, p->N, p->ng, p->ng);
  llmk_tensor tz = llmk_tensor_2d((void *)zeros, LLMK_U8, p->N, p->ng, p->ng);
  llmk_tensor tb = llmk_tensor_1d((void *)bias, bias_kind == 2 ? LLMK_BF16 : LLMK_F32, p->N);
  return llmk_gemm_w4a16(h, &d, &tx, &tc, &ts, zeros ? &tz : NULL, bias_kind ? &tb : NULL, &ty, NULL);
}

static const void *bias_of(const prob *p, int kind) { return kind == 1 ? (void *)p->bias32 : (void *)p->bias16; }

/* ---- 1. CPU reference = llmk_gemm_bf16 on the dequantized weight -------- */

static void cpu_case(int64_t M, int64_t N, int64_t K, int group, int asym, int bias_kind, int three_d) {
  prob p;
  prob_init(&p, M, N, K, group, asym, 8, 3);
  uint16_t *wd = t_xmalloc((size_t)(N * K) * 2), *y2 = t_xmalloc((size_t)(M * p.ldy) * 2);
  const llmk_int4_desc d = desc_of(&p);
  llmk_tensor tc = llmk_tensor_2d(p.codes, LLMK_U8, N, K / 2, K / 2), tw = llmk_tensor_2d(wd, LLMK_BF16, N, K, K);
  llmk_tensor ts = llmk_tensor_2d(p.scales, LLMK_BF16, N, p.ng, p.ng), tz = llmk_tensor_2d(p.zeros, LLMK_U8, N, p.ng, p.ng);
  CHECK(llmk_int4_dequantize(cpu, &d, &tc, &ts, asym ? &tz : NULL, &tw, NULL) == LLMK_SUCCESS, "dequantize: %s",
        llmk_last_error());
  for (int64_t i = 0; i < M * p.ldy; i++) p.y[i] = POISON, y2[i] = POISON;
  const llmk_status s = run(cpu, &p, p.x, p.codes, p.scales, p.zeros, bias_of(&p, bias_kind), bias_kind, p.y, three_d);
  CHECK(s == LLMK_SUCCESS, "CPU w4a16: %s", llmk_last_error());
  llmk_tensor tx = llmk_tensor_2d(p.x, LLMK_BF16, M, K, p.ldx), ty = llmk_tensor_2d(y2, LLMK_BF16, M, N, p.ldy);
  llmk_tensor tb = llmk_tensor_1d((void *)bias_of(&p, bias_kind), bias_kind == 2 ? LLMK_BF16 : LLMK_F32, N);
  CHECK(llmk_gemm_bf16(cpu, LLMK_GEMM_AUTO, &tx, &tw, bias_kind ? &tb : NULL, &ty, NULL) == LLMK_SUCCESS,
        "CPU bf16: %s", llmk_last_error());
  int64_t bad = -1;
  for (int64_t i = 0; i < M * p.ldy && bad < 0; i++)
    if (p.y[i] != y2[i]) bad = i;
  CHECK(bad < 0, "CPU w4a16 %lldx%lldx%lld g%d %s bias %d: element %lld differs from llmk_gemm_bf16 on the "
        "dequantized weight", (long long)M, (long long)N, (long long)K, group, asym ? "asym" : "sym", bias_kind,
        (long long)bad);
  free(wd), free(y2);
  prob_free(&p);
}

static void cpu_cases(void) {
  cpu_case(1, 64, 256, 128, 0, 0, 0);
  cpu_case(5, 77, 448, 64, 1, 1, 0);
  cpu_case(4, 40, 512, 128, 1, 2, 1);
  cpu_case(16, 136, 1024, 64, 0, 1, 1);
}

/* ---- 3. bad arguments ---------------------------------------------------- */

static void bad_args(void) {
  prob p;
  prob_init(&p, 3, 32, 256, 128, 1, 0, 0);
  memset(p.y, 0, (size_t)(3 * 32) * 2);
  const llmk_int4_desc d = desc_of(&p);
  llmk_tensor tx = llmk_tensor_2d(p.x, LLMK_BF16, 3, 256, 256), ty = llmk_tensor_2d(p.y, LLMK_BF16, 3, 32, 32);
  llmk_tensor tc = llmk_tensor_2d(p.codes, LLMK_U8, 32, 128, 128);
  llmk_tensor ts = llmk_tensor_2d(p.scales, LLMK_BF16, 32, 2, 2), tz = llmk_tensor_2d(p.zeros, LLMK_U8, 32, 2, 2);
  llmk_tensor tx_k = llmk_tensor_2d(p.x, LLMK_BF16, 3, 192, 256);        /* K = 192: not a multiple of 128 */
  llmk_tensor tx_f = llmk_tensor_2d(p.x, LLMK_F32, 3, 128, 256);         /* wrong dtype */
  llmk_tensor tc_bad = llmk_tensor_2d(p.codes, LLMK_U8, 32, 64, 128);    /* not [N, K/2] */
  llmk_tensor ts_bad = llmk_tensor_2d(p.scales, LLMK_BF16, 32, 1, 1);    /* not [N, K/group] */
  llmk_tensor ty_n = llmk_tensor_2d(p.y, LLMK_BF16, 3, 31, 32);          /* N differs */
  llmk_tensor ty_f = llmk_tensor_2d(p.y, LLMK_F32, 3, 16, 32);           /* wrong dtype */
  llmk_tensor ty_x = llmk_tensor_2d(p.x, LLMK_BF16, 3, 32, 256);         /* overlaps x */
  llmk_tensor tb_n = llmk_tensor_1d(p.bias32, LLMK_F32, 31);             /* wrong length */
  llmk_int4_desc d_g = d, d_sym = d;
  d_g.group = 32, d_sym.asymmetric = 0;
  struct {
    const char *what;
    llmk_status s;
  } c[] = {
      {"NULL handle", llmk_gemm_w4a16(NULL, &d, &tx, &tc, &ts, &tz, NULL, &ty, NULL)},
      {"NULL desc", llmk_gemm_w4a16(cpu, NULL, &tx, &tc, &ts, &tz, NULL, &ty, NULL)},
      {"group 32", llmk_gemm_w4a16(cpu, &d_g, &tx, &tc, &ts, &tz, NULL, &ty, NULL)},
      {"NULL x", llmk_gemm_w4a16(cpu, &d, NULL, &tc, &ts, &tz, NULL, &ty, NULL)},
      {"K % group", llmk_gemm_w4a16(cpu, &d, &tx_k, &tc, &ts, &tz, NULL, &ty, NULL)},
      {"x f32", llmk_gemm_w4a16(cpu, &d, &tx_f, &tc, &ts, &tz, NULL, &ty, NULL)},
      {"codes shape", llmk_gemm_w4a16(cpu, &d, &tx, &tc_bad, &ts, &tz, NULL, &ty, NULL)},
      {"scales shape", llmk_gemm_w4a16(cpu, &d, &tx, &tc, &ts_bad, &tz, NULL, &ty, NULL)},
      {"zeros missing", llmk_gemm_w4a16(cpu, &d, &tx, &tc, &ts, NULL, NULL, &ty, NULL)},
      {"zeros given, symmetric", llmk_gemm_w4a16(cpu, &d_sym, &tx, &tc, &ts, &tz, NULL, &ty, NULL)},
      {"y N", llmk_gemm_w4a16(cpu, &d, &tx, &tc, &ts, &tz, NULL, &ty_n, NULL)},
      {"y f32", llmk_gemm_w4a16(cpu, &d, &tx, &tc, &ts, &tz, NULL, &ty_f, NULL)},
      {"y overlaps x", llmk_gemm_w4a16(cpu, &d, &tx, &tc, &ts, &tz, NULL, &ty_x, NULL)},
      {"bias length", llmk_gemm_w4a16(cpu, &d, &tx, &tc, &ts, &tz, &tb_n, &ty, NULL)},
  };
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
    CHECK(c[i].s == LLMK_ERR_INVALID_ARGUMENT, "%s: expected INVALID_ARGUMENT, got %s", c[i].what,
          llmk_status_string(c[i].s));
  int written = 0;
  for (int64_t i = 0; i < 3 * 32; i++) written |= p.y[i] != 0;
  CHECK(!written, "a refused call wrote y");
  prob_free(&p);
}

#ifdef LLMK_WITH_CUDA
/* ---- 2. GPU against the CPU reference ------------------------------------ */

static llmk_handle gpu;

static void setenv_refresh(const char *name, const char *value) {
  if (value)
    setenv(name, value, 1);
  else
    unsetenv(name);
  llmk_env_refresh(); /* the library reads its environment once */
}

/* splits: "" the rule, else LLMK_W4A16_SPLITS; stripes: NULL the rule, "0" or "1" forced. */
static void gpu_case(int64_t M, int64_t N, int64_t K, int group, int asym, int bias_kind, const char *splits,
                     const char *stripes) {
  prob p;
  prob_init(&p, M, N, K, group, asym, 8, 4);
  for (int64_t i = 0; i < M * p.ldy; i++) p.y[i] = POISON;
  CHECK(run(cpu, &p, p.x, p.codes, p.scales, p.zeros, bias_of(&p, bias_kind), bias_kind, p.y, 0) == LLMK_SUCCESS,
        "CPU: %s", llmk_last_error());
  const size_t ny = (size_t)(M * p.ldy) * 2;
  void *dx = t_to_dev(p.x, (size_t)(M * p.ldx) * 2), *dc = t_to_dev(p.codes, (size_t)(N * K / 2));
  void *ds = t_to_dev(p.scales, (size_t)(N * p.ng) * 2), *dz = asym ? t_to_dev(p.zeros, (size_t)(N * p.ng)) : NULL;
  void *db = t_to_dev(bias_of(&p, bias_kind), (size_t)N * 4), *dy;
  T_CU(cudaMalloc(&dy, ny));
  T_CU(cudaMemset(dy, 0xFF, ny));
  setenv_refresh("LLMK_W4A16_SPLITS", splits && *splits ? splits : NULL);
  setenv_refresh("LLMK_W4A16_STRIPES", stripes);
  const llmk_status s = run(gpu, &p, dx, dc, ds, dz, db, bias_kind, dy, 0);
  T_CU(cudaDeviceSynchronize());
  char what[160];
  snprintf(what, sizeof what, "GPU w4a16 %lldx%lldx%lld g%d %s bias %d splits %s stripes %s", (long long)M,
           (long long)N, (long long)K, group, asym ? "asym" : "sym", bias_kind, splits && *splits ? splits : "rule",
           stripes ? stripes : "rule");
  CHECK(s == LLMK_SUCCESS, "%s: %s", what, llmk_last_error());
  uint16_t *y = t_xmalloc(ny), *y2 = t_xmalloc(ny);
  T_CU(cudaMemcpy(y, dy, ny, cudaMemcpyDeviceToHost));
  double num = 0, den = 0;
  for (int64_t i = 0; i < M * N; i++) {
    const double r = llmk_bf16_to_float(p.y[i / N * p.ldy + i % N]);
    den += r * r;
  }
  const double rms = sqrt(den / (double)(M * N));
  int64_t bad = -1, pad_bad = -1;
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < p.ldy; n++) {
      const int64_t i = m * p.ldy + n;
      if (n >= N) {
        if (y[i] != POISON && pad_bad < 0) pad_bad = i;
        continue;
      }
      const double r = llmk_bf16_to_float(p.y[i]), v = llmk_bf16_to_float(y[i]);
      num += (v - r) * (v - r);
      if (!(fabs(v - r) <= 1e-2 * fabs(r) + 1e-2 * rms) && bad < 0) bad = i;
    }
  const double rel = sqrt(num / (den > 0 ? den : 1));
  CHECK(rel <= 5e-3, "%s: relative Frobenius error %.3e > 5e-3", what, rel);
  CHECK(bad < 0, "%s: element (%lld, %lld) = %g, reference %g", what, (long long)(bad / p.ldy),
        (long long)(bad % p.ldy), bad < 0 ? 0.0 : llmk_bf16_to_float(y[bad]),
        bad < 0 ? 0.0 : llmk_bf16_to_float(p.y[bad]));
  CHECK(pad_bad < 0, "%s: y's row padding written at %lld", what, (long long)pad_bad);
  /* the same call again: the same bits */
  CHECK(run(gpu, &p, dx, dc, ds, dz, db, bias_kind, dy, 0) == LLMK_SUCCESS, "%s (again): %s", what,
        llmk_last_error());
  T_CU(cudaMemcpy(y2, dy, ny, cudaMemcpyDeviceToHost));
  CHECK(!memcmp(y, y2, ny), "%s: a second call gave other bits", what);
  setenv_refresh("LLMK_W4A16_SPLITS", NULL);
  setenv_refresh("LLMK_W4A16_STRIPES", NULL);
  free(y), free(y2);
  T_CU(cudaFree(dx));
  T_CU(cudaFree(dc));
  T_CU(cudaFree(ds));
  if (dz) T_CU(cudaFree(dz));
  T_CU(cudaFree(db));
  T_CU(cudaFree(dy));
  prob_free(&p);
}

static void gpu_decode(void) {
  static const char *splits[] = {"1", "2", "4", "8", ""};
  for (int i = 0; i < 5; i++) {
    gpu_case(1, 256, 2048, 128, 1, 0, splits[i], NULL);   /* one mma N tile */
    gpu_case(13, 384, 2048, 128, 0, 1, splits[i], NULL);  /* two */
    gpu_case(16, 77, 1216, 64, 1, 2, splits[i], NULL);    /* odd N, K with a half chunk */
  }
  gpu_case(8, 8192, 4096, 128, 0, 0, "", NULL);         /* many row tiles */
  gpu_case(2, 1024, 14336, 128, 1, 1, "", NULL);        /* deep K */
  gpu_case(40, 200, 512, 64, 1, 1, "", "0");            /* three launches of 16 tokens, forced */
  gpu_case(40, 203, 512, 64, 0, 2, "", NULL);           /* N % 8 != 0: no stripes, three launches */
}

static void gpu_stripes(void) {
  gpu_case(3, 512, 1024, 128, 1, 1, "", "1");   /* forced at decode size */
  gpu_case(64, 264, 1024, 64, 0, 2, "", NULL);  /* the rule at M > 16 */
  gpu_case(300, 1024, 2048, 128, 1, 0, "", NULL);
}
#endif

int main(void) {
  t_seed();
  if (llmk_create_cpu(&cpu) != LLMK_SUCCESS) return 2;
  static const t_part cpu_parts[] = {{"CPU reference = BF16 GEMM on the dequantized weight", cpu_cases},
                                     {"bad arguments", bad_args}};
  t_run_parts(cpu_parts, sizeof cpu_parts / sizeof cpu_parts[0]);
#ifdef LLMK_WITH_CUDA
  if (t_hopper_handle("llmk_gemm_w4a16 on the GPU", &gpu)) {
    static const t_part parts[] = {{"decode kernel", gpu_decode}, {"dequantized stripes", gpu_stripes}};
    t_run_parts(parts, sizeof parts / sizeof parts[0]);
    llmk_destroy(gpu);
  }
#else
  SKIP("built without CUDA: llmk_gemm_w4a16 on the GPU");
#endif
  llmk_destroy(cpu);
  TEST_END();
}
