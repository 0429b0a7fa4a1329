/*
 * llmk_gemm_bf16 on the CPU reference and, where a Hopper GPU is visible,
 * on CUDA (cuBLASLt):
 *
 *  1. CPU, bit for bit: integer-valued bf16 inputs (|x|, |w| <= 8, so every
 *     partial sum is exact in fp32 and fp64) must give exactly
 *     bf16((float)sum + bias); bias none / f32 / bf16; K = 0 (y = bias or
 *     0); y row padding untouched; x as [B, S, K].
 *  2. CPU against an independent fp64 computation on normal data: each
 *     element within half a bf16 ulp (plus fp64 noise) of the exact value.
 *  3. GPU against the CPU reference on fresh random data (activations
 *     N(0, 1), weights N(0, 0.02^2)): relative Frobenius error <= 5e-3 and
 *     |y - ref| <= 1e-2 |ref| + 1e-2 rms(ref) per element; y poisoned first,
 *     every element written, padding untouched; large M checked on sampled
 *     rows; AUTO, cuBLASLt and llmk's own kernels (every configuration
 *     forced, at several K splits); an f32 bias forced onto cuBLASLt
 *     (which takes bf16 only) answers NOT_SUPPORTED and writes nothing.
 *  4. Bad arguments: INVALID_ARGUMENT with nothing written.
 */
#include <math.h>

#include "harness.h"
#include "llmk.h"

#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

#define POISON 0xFFFFu

static llmk_handle cpu;

static void fill_int(uint16_t *a, int64_t n) {
  for (int64_t i = 0; i < n; i++) a[i] = llmk_float_to_bf16((float)((int)(t_rand_u64() % 17) - 8));
}
static void fill_normal(uint16_t *a, int64_t n, float sigma) {
  for (int64_t i = 0; i < n; i++) a[i] = llmk_float_to_bf16(sigma * t_rand_normal());
}

/* A GEMM's host data: x [M, K], w [N, K], bias (f32 and bf16 copies), y [M, ldy]. */
typedef struct prob {
  int64_t M, N, K, ldy;
  uint16_t *x, *w, *bias16, *y;
  float *bias32;
} prob;

static void prob_init(prob *p, int64_t M, int64_t N, int64_t K, int64_t pady, int integer) {
  p->M = M, p->N = N, p->K = K, p->ldy = N + pady;
  p->x = t_xmalloc((size_t)(M * K) * 2), p->w = t_xmalloc((size_t)(N * K) * 2);
  p->bias16 = t_xmalloc((size_t)N * 2), p->bias32 = t_xmalloc((size_t)N * 4);
  p->y = t_xmalloc((size_t)(M * p->ldy) * 2);
  if (integer) {
    fill_int(p->x, M * K), fill_int(p->w, N * K), fill_int(p->bias16, N);
  } else {
    fill_normal(p->x, M * K, 1.0f), fill_normal(p->w, N * K, 0.02f), fill_normal(p->bias16, N, 0.1f);
  }
  for (int64_t n = 0; n < N; n++) p->bias32[n] = llmk_bf16_to_float(p->bias16[n]) + (integer ? 0.5f : 0.01f);
}

static void prob_free(prob *p) { free(p->x), free(p->w), free(p->bias16), free(p->bias32), free(p->y); }

static double bias_at(const prob *p, int b, int64_t n) {
  return b == 0 ? 0.0 : b == 1 ? (double)p->bias32[n] : (double)llmk_bf16_to_float(p->bias16[n]);
}

static double dot64(const prob *p, int64_t m, int64_t n) {
  double s = 0.0;
  for (int64_t k = 0; k < p->K; k++)
    s += (double)llmk_bf16_to_float(p->x[m * p->K + k]) * (double)llmk_bf16_to_float(p->w[n * p->K + k]);
  return s;
}

/* sum of |x_k w_k|: scales the fp32 accumulation's rounding error */
static double absdot64(const prob *p, int64_t m, int64_t n) {
  double s = 0.0;
  for (int64_t k = 0; k < p->K; k++)
    s += fabs((double)llmk_bf16_to_float(p->x[m * p->K + k]) * (double)llmk_bf16_to_float(p->w[n * p->K + k]));
  return s;
}

/* Runs on handle h with the tensors at (x, w, bias, y), which are host or device copies of p's. */
static llmk_status run(llmk_handle h, llmk_gemm_backend be, const prob *p, void *x, void *w, void *b16, void *b32,
                       int b, void *y) {
  llmk_tensor tx = llmk_tensor_2d(x, LLMK_BF16, p->M, p->K, p->K), tw = llmk_tensor_2d(w, LLMK_BF16, p->N, p->K, p->K);
  llmk_tensor tb = b == 2 ? llmk_tensor_1d(b16, LLMK_BF16, p->N) : llmk_tensor_1d(b32, LLMK_F32, p->N);
  llmk_tensor ty = llmk_tensor_2d(y, LLMK_BF16, p->M, p->N, p->ldy);
  return llmk_gemm_bf16(h, be, &tx, &tw, b ? &tb : NULL, &ty, NULL);
}

static int64_t padding_written(const prob *p) {
  int64_t n = 0;
  for (int64_t m = 0; m < p->M; m++)
    for (int64_t c = p->N; c < p->ldy; c++) n += p->y[m * p->ldy + c] != POISON;
  return n;
}

/* 1 and 2: the CPU reference. */
static void cpu_cases(void) {
  static const int64_t shapes[][3] = {{1, 3, 5}, {3, 8, 16}, {17, 24, 1000}, {2, 5, 0}, {64, 40, 129}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    for (int integer = 1; integer >= 0; integer--)
      for (int b = 0; b < 3; b++) {
        prob p;
        prob_init(&p, shapes[i][0], shapes[i][1], shapes[i][2], 3, integer);
        memset(p.y, 0xFF, (size_t)(p.M * p.ldy) * 2);
        llmk_status s = run(cpu, LLMK_GEMM_AUTO, &p, p.x, p.w, p.bias16, p.bias32, b, p.y);
        CHECK(s == LLMK_SUCCESS, "cpu %lldx%lldx%lld: %s", (long long)p.M, (long long)p.N, (long long)p.K,
              llmk_last_error());
        int64_t bad = 0;
        for (int64_t m = 0; m < p.M; m++)
          for (int64_t n = 0; n < p.N; n++) {
            const double exact = dot64(&p, m, n);
            const uint16_t got = p.y[m * p.ldy + n];
            if (integer) {
              /* exact in float too: the documented epilogue, recomputed */
              float v = (float)exact;
              if (b) v = v + (float)bias_at(&p, b, n);
              bad += got != llmk_float_to_bf16(v);
            } else {
              /* bf16's half ulp, plus the fp32 sum's own error where the terms cancel */
              const double ref = exact + bias_at(&p, b, n), g = llmk_bf16_to_float(got);
              const double acc = (double)(p.K + 1) * 0x1p-24 * (absdot64(&p, m, n) + fabs(bias_at(&p, b, n)));
              bad += !(fabs(g - ref) <= 0x1p-8 * fabs(ref) + acc + 1e-30);
            }
          }
        CHECK(bad == 0, "cpu %s %lldx%lldx%lld bias %d: %lld elements off", integer ? "integer" : "normal",
              (long long)p.M, (long long)p.N, (long long)p.K, b, (long long)bad);
        CHECK(padding_written(&p) == 0, "cpu: row padding written");
        prob_free(&p);
      }
  /* x as [B, S, K] */
  prob p;
  prob_init(&p, 6, 8, 32, 0, 1);
  llmk_tensor tx = {p.x, LLMK_BF16, 3, {2, 3, 32, 0}, {96, 32, 1, 0}};
  llmk_tensor ty = {p.y, LLMK_BF16, 3, {2, 3, 8, 0}, {24, 8, 1, 0}};
  llmk_tensor tw = llmk_tensor_2d(p.w, LLMK_BF16, 8, 32, 32);
  CHECK(llmk_gemm_bf16(cpu, LLMK_GEMM_AUTO, &tx, &tw, NULL, &ty, NULL) == LLMK_SUCCESS, "3-D x: %s",
        llmk_last_error());
  int64_t bad = 0;
  for (int64_t m = 0; m < 6; m++)
    for (int64_t n = 0; n < 8; n++) bad += p.y[m * 8 + n] != llmk_float_to_bf16((float)dot64(&p, m, n));
  CHECK(bad == 0, "3-D x: %lld elements off", (long long)bad);
  prob_free(&p);
}

/* 4: bad arguments, CPU handle (the GPU ones in gpu_cases). */
static void bad_cases(llmk_handle h, void *x, void *w, void *y, const char *where) {
  llmk_tensor tx = llmk_tensor_2d(x, LLMK_BF16, 4, 32, 32), tw = llmk_tensor_2d(w, LLMK_BF16, 8, 32, 32);
  llmk_tensor ty = llmk_tensor_2d(y, LLMK_BF16, 4, 8, 8);
  llmk_tensor t8 = llmk_tensor_2d(x, LLMK_E4M3, 4, 32, 32), tw16 = llmk_tensor_2d(w, LLMK_BF16, 8, 16, 16);
  llmk_tensor tyf = llmk_tensor_2d(y, LLMK_F32, 4, 8, 8), tb = llmk_tensor_1d(w, LLMK_F32, 7);
  llmk_tensor tyx = llmk_tensor_2d(x, LLMK_BF16, 4, 8, 8);
  const struct {
    const char *what;
    llmk_status st;
  } r[] = {
      {"NULL handle", llmk_gemm_bf16(NULL, LLMK_GEMM_AUTO, &tx, &tw, NULL, &ty, NULL)},
      {"bad backend", llmk_gemm_bf16(h, (llmk_gemm_backend)7, &tx, &tw, NULL, &ty, NULL)},
      {"NULL x", llmk_gemm_bf16(h, LLMK_GEMM_AUTO, NULL, &tw, NULL, &ty, NULL)},
      {"x e4m3", llmk_gemm_bf16(h, LLMK_GEMM_AUTO, &t8, &tw, NULL, &ty, NULL)},
      {"K mismatch", llmk_gemm_bf16(h, LLMK_GEMM_AUTO, &tx, &tw16, NULL, &ty, NULL)},
      {"y f32", llmk_gemm_bf16(h, LLMK_GEMM_AUTO, &tx, &tw, NULL, &tyf, NULL)},
      {"bias of 7", llmk_gemm_bf16(h, LLMK_GEMM_AUTO, &tx, &tw, &tb, &ty, NULL)},
      {"y overlaps x", llmk_gemm_bf16(h, LLMK_GEMM_AUTO, &tx, &tw, NULL, &tyx, NULL)},
  };
  for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
    CHECK(r[i].st == LLMK_ERR_INVALID_ARGUMENT, "%s: %s: got %s", where, r[i].what, llmk_status_string(r[i].st));
}

#ifdef LLMK_WITH_CUDA
/* The own configuration and K split forced on the GPU handle (force), for labels. */
static char g_forced[96] = "cfg - k-";

/* Forces configuration cfg (-1: none) at K split `splits` (0: none) on h
 * through its override. */
static void force(llmk_handle h, int cfg, int splits) {
  llmk_gemm_override o = LLMK_GEMM_OVERRIDE_INIT;
  o.config = cfg, o.splits = splits;
  CHECK(llmk_set_gemm_override(h, &o) == LLMK_SUCCESS, "override: %s", llmk_last_error());
  llmk_gemm_config g = LLMK_GEMM_CONFIG_INIT;
  const int named = cfg >= 0 && llmk_gemm_config_get(cfg, &g) == LLMK_SUCCESS;
  snprintf(g_forced, sizeof g_forced, "cfg %s k%d", named ? g.name : "-", splits);
}

/* 3: one problem on the GPU against the CPU reference on sampled rows. */
static void gpu_case(llmk_handle gpu, int64_t M, int64_t N, int64_t K, int b, int64_t pady, int own_only) {
  prob p;
  prob_init(&p, M, N, K, pady, 0);
  char label[192];
  snprintf(label, sizeof label, "gpu %lldx%lldx%lld bias %d ldy %lld own %s", (long long)M, (long long)N,
           (long long)K, b, (long long)p.ldy, g_forced);
  const size_t ny = (size_t)(M * p.ldy) * 2;
  void *dx = t_to_dev(p.x, (size_t)(M * K) * 2), *dw = t_to_dev(p.w, (size_t)(N * K) * 2);
  void *db16 = t_to_dev(p.bias16, (size_t)N * 2), *db32 = t_to_dev(p.bias32, (size_t)N * 4), *dy;
  T_CU(cudaMalloc(&dy, ny));
  static const llmk_gemm_backend bes[] = {LLMK_GEMM_AUTO, LLMK_GEMM_CUBLASLT, LLMK_GEMM_OWN};
  static const char *const be_name[] = {"auto", "cublaslt", "own"};
  for (int bi = own_only ? 2 : 0; bi < 3; bi++) {
    const llmk_gemm_backend be = bes[bi];
    T_CU(cudaMemset(dy, 0xFF, ny));
    llmk_status s = run(gpu, be, &p, dx, dw, db16, db32, b, dy);
    const cudaError_t e = cudaDeviceSynchronize();
    CHECK(e == cudaSuccess, "%s %s: %s", label, be_name[bi], cudaGetErrorString(e));
    if (e) break;
    T_CU(cudaMemcpy(p.y, dy, ny, cudaMemcpyDeviceToHost));
    if (b == 1 && K > 0 && be == LLMK_GEMM_CUBLASLT) { /* documented: cuBLASLt takes a bf16 bias only */
      int64_t touched = 0;
      for (size_t i = 0; i < ny / 2; i++) touched += p.y[i] != POISON;
      CHECK(s == LLMK_ERR_NOT_SUPPORTED && touched == 0, "%s: f32 bias gave %s, %lld written", label,
            llmk_status_string(s), (long long)touched);
      continue;
    }
    CHECK(s == LLMK_SUCCESS, "%s %s: %s", label, be_name[bi], llmk_last_error());
    if (s) continue;
    int64_t unwritten = 0;
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) unwritten += p.y[m * p.ldy + n] == POISON;
    CHECK(unwritten == 0 && padding_written(&p) == 0, "%s: %lld unwritten, %lld padding written", label,
          (long long)unwritten, (long long)padding_written(&p));
    /* the CPU reference on rows [0, 32) and the last row */
    const int64_t rows[2][2] = {{0, M < 32 ? M : 32}, {M - 1, M}};
    double e2 = 0, r2 = 0, worst = 0;
    uint16_t *ref = t_xmalloc((size_t)(32 * N) * 2);
    for (int ri = 0; ri < 2; ri++) {
      const int64_t m0 = rows[ri][0], mr = rows[ri][1] - m0;
      if (mr <= 0 || (ri == 1 && M <= 32)) continue;
      llmk_tensor tx = llmk_tensor_2d(p.x + m0 * K, LLMK_BF16, mr, K, K), tw = llmk_tensor_2d(p.w, LLMK_BF16, N, K, K);
      llmk_tensor tb = b == 2 ? llmk_tensor_1d(p.bias16, LLMK_BF16, N) : llmk_tensor_1d(p.bias32, LLMK_F32, N);
      llmk_tensor ty = llmk_tensor_2d(ref, LLMK_BF16, mr, N, N);
      CHECK(llmk_gemm_bf16(cpu, LLMK_GEMM_AUTO, &tx, &tw, b ? &tb : NULL, &ty, NULL) == LLMK_SUCCESS, "cpu ref");
      double rr = 0;
      for (int64_t i = 0; i < mr * N; i++) rr += pow(llmk_bf16_to_float(ref[i]), 2);
      const double rms = sqrt(rr / (double)(mr * N));
      for (int64_t m = 0; m < mr; m++)
        for (int64_t n = 0; n < N; n++) {
          const double g = llmk_bf16_to_float(p.y[(m0 + m) * p.ldy + n]), c = llmk_bf16_to_float(ref[m * N + n]);
          e2 += (g - c) * (g - c), r2 += c * c;
          const double ex = fabs(g - c) - (1e-2 * fabs(c) + 1e-2 * rms);
          if (ex > worst) worst = ex;
        }
    }
    free(ref);
    const double frob = r2 > 0 ? sqrt(e2 / r2) : sqrt(e2);
    CHECK(frob <= 5e-3 && worst <= 0, "%s %s: relative Frobenius error %.3g (limit 5e-3), worst element excess %.3g",
          label, be_name[bi], frob, worst);
  }
  T_CU(cudaFree(dx));
  T_CU(cudaFree(dw));
  T_CU(cudaFree(db16));
  T_CU(cudaFree(db32));
  T_CU(cudaFree(dy));
  prob_free(&p);
}

static void gpu_cases(void) {
  llmk_handle gpu;
  if (!t_hopper_handle("the CUDA part of the BF16 GEMM test", &gpu)) return;
  static const int64_t shapes[][3] = {{1, 8, 16},      {17, 296, 1072},  {128, 1280, 8192},
                                      {1000, 296, 1072}, {4096, 1280, 8192}, {5, 24, 0}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    for (int b = 0; b < 3; b++) gpu_case(gpu, shapes[i][0], shapes[i][1], shapes[i][2], b, 8 * (int64_t)(b == 1), 0);
  /* every own BF16 configuration, forced, at several K splits, ragged shapes */
  for (int c = 0; c < llmk_gemm_config_count(); c++) {
    llmk_gemm_config g = LLMK_GEMM_CONFIG_INIT;
    if (llmk_gemm_config_get(c, &g) || g.in_dtype != LLMK_BF16) continue;
    for (int q = 0; q < 3; q++) {
      force(gpu, c, q + 1);
      gpu_case(gpu, q == 0 ? 3 : q == 1 ? 100 : 300, 296, 1072, q, 8 * (int64_t)(q == 1), 1);
      if (!g.k_split) break;
    }
  }
  /* the gemv configuration at decode sizes: partial row tiles (N % 16), a
   * partial last chunk (K % 32), 1..8 tokens and a second token tile, K
   * split over clusters of up to 8 */
  for (int c = 0; c < llmk_gemm_config_count(); c++) {
    llmk_gemm_config g = LLMK_GEMM_CONFIG_INIT;
    if (llmk_gemm_config_get(c, &g) || !g.gemv) continue;
    static const int64_t ms[] = {1, 2, 8, 9};
    static const int ks[] = {1, 4, 8};
    for (int q = 0; q < 3; q++) {
      force(gpu, c, ks[q]);
      for (int i = 0; i < 4; i++) gpu_case(gpu, ms[i], 1288, 4104, (q + i) % 3, 8 * (int64_t)(i == 1), 1);
    }
  }
  force(gpu, -1, 0);
  /* CUDA-only layout rules */
  uint16_t *d;
  T_CU(cudaMalloc((void **)&d, 1 << 16));
  llmk_tensor tx = llmk_tensor_2d(d, LLMK_BF16, 4, 36, 36), tw = llmk_tensor_2d(d + 4096, LLMK_BF16, 8, 36, 36);
  llmk_tensor ty = llmk_tensor_2d(d + 8192, LLMK_BF16, 4, 8, 8);
  llmk_status s = llmk_gemm_bf16(gpu, LLMK_GEMM_AUTO, &tx, &tw, NULL, &ty, NULL);
  CHECK(s == LLMK_ERR_INVALID_ARGUMENT, "K = 36 on CUDA: got %s", llmk_status_string(s));
  llmk_tensor txm = llmk_tensor_2d(d + 1, LLMK_BF16, 4, 32, 32), tw32 = llmk_tensor_2d(d + 4096, LLMK_BF16, 8, 32, 32);
  s = llmk_gemm_bf16(gpu, LLMK_GEMM_AUTO, &txm, &tw32, NULL, &ty, NULL);
  CHECK(s == LLMK_ERR_INVALID_ARGUMENT, "misaligned x on CUDA: got %s", llmk_status_string(s));
  bad_cases(gpu, d, d + 4096, d + 8192, "cuda");
  T_CU(cudaFree(d));
  llmk_destroy(gpu);
}
#else
static void gpu_cases(void) { SKIP("built without CUDA: the CUDA part of the BF16 GEMM test"); }
#endif

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  t_seed();
  CHECK(llmk_create_cpu(&cpu) == LLMK_SUCCESS, "%s", llmk_last_error());
  cpu_cases();
  static uint16_t hx[4 * 32], hw[8 * 32], hy[4 * 8];
  bad_cases(cpu, hx, hw, hy, "cpu");
  gpu_cases();
  llmk_destroy(cpu);
  TEST_END();
}
