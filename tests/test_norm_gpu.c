/* GPU llmk_rmsnorm and llmk_silu_mul_quant against the CPU reference, bit
 * for bit. The sweeps are op-check cases (tools/opcheck/ops_norm.c), run
 * here on CUDA through the harness (outputs, guards and row padding
 * poisoned, two poisons per side; the first mismatches printed with their
 * coordinates): fresh random inputs of several distributions (normal at a
 * random magnitude, outliers, zero and constant rows, NaN/Inf rows, bf16
 * subnormals, huge values, a wide exponent spread), M in {1, 3, 17, 128,
 * 1000} x K in {8, 100, 4096, 8192, 28672} plus the streamed long rows;
 * dense rows, row pitches and 3-D views, and misaligned pointers with odd
 * pitches (the element-wise path); residual none, separate and in place;
 * bf16, e4m3 and two-plane e4m3 outputs; silu with row and 1 x 128 scales,
 * bf16 output, scale_ub, and gate/up as the halves of one [M, 2F] buffer.
 * This file adds the same comparison with the tuning knobs forced (team
 * sizes, silu's all-fp64 path), GPU-only argument checks, and
 * informational timings at M = 16384 against a device-to-device copy of
 * the same bytes (the harness's perf mode; not checked). */
#include <math.h>
#include <stdlib.h>

#include "core/env.h"
#include "harness.h"
#include "llmk.h"
#include "opcheck_util.h"

static llmk_handle gpu;
static oc_ctx X;

#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>

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

/* Sets (value non-NULL) or clears an LLMK_ knob of src/cuda/norm.cu. */
static void knob(const char *name, const char *value) {
  if (value) setenv(name, value, 1);
  else unsetenv(name);
  llmk_env_refresh(); /* the library reads its environment once */
}

/* The harness's comparison with a knob forced: the <= 32 and > 32
 * reductions at other widths, silu's team sizes and its all-fp64 path. */
static int forced_cases(void) {
  int n = 0;
  static const char *const force[] = {"1", "4", "32", "64", "128", "512"};
  static const int dists[7] = {OC_D_NORMAL, OC_D_OUTLIER, OC_D_ROWS, OC_D_NAN_INF, OC_D_TINY, OC_D_HUGE, OC_D_WIDE};
  for (int fi = 0; fi < 6; fi++) {
    knob("LLMK_NORM_TPR", force[fi]);
    static const int64_t Kf[] = {100, 4096, 8192};
    for (int ki = 0; ki < 3; ki++, n++) {
      const oc_norm_params p = {17, Kf[ki], (fi + ki) % 3, (fi + ki) % 3, fi % 3, dists[(fi + ki) % 7]};
      oc_case c;
      oc_norm_case(&c, &p, t_rand_u64());
      snprintf(c.name + strlen(c.name), sizeof c.name - strlen(c.name), " LLMK_NORM_TPR=%s", force[fi]);
      t_oc_run(&X, &c, NULL);
    }
  }
  knob("LLMK_NORM_TPR", NULL);
  static const char *const sforce[] = {"1", "16", "64", "512"};
  for (int fi = 0; fi < 5; fi++) {
    knob("LLMK_SILU_TPR", fi < 4 ? sforce[fi] : NULL);
    knob("LLMK_SILU_FP64", fi == 4 ? "1" : NULL);
    for (int v = 0; v < 4; v++, n++) {
      const oc_silu_params p = {17, v < 2 ? 1000 : 4096, v % 2, v % 3, (fi + v) % 3, dists[(fi * 4 + v) % 7]};
      oc_case c;
      oc_silu_case(&c, &p, t_rand_u64());
      snprintf(c.name + strlen(c.name), sizeof c.name - strlen(c.name), " %s%s", fi < 4 ? "LLMK_SILU_TPR=" : "LLMK_SILU_FP64=1",
               fi < 4 ? sforce[fi] : "");
      t_oc_run(&X, &c, NULL);
    }
  }
  knob("LLMK_SILU_TPR", NULL);
  knob("LLMK_SILU_FP64", NULL);
  return n;
}

/* ---- informational timings: the harness's perf mode ------------------------ */

typedef struct copy_args {
  void *dst, *src;
  size_t bytes;
} copy_args;
static llmk_status run_copy(void *p, void *stream) {
  const copy_args *c = p;
  return cudaMemcpyAsync(c->dst, c->src, c->bytes, cudaMemcpyDeviceToDevice, (cudaStream_t)stream) == cudaSuccess
             ? LLMK_SUCCESS
             : LLMK_ERR_CUDA;
}

/* Per call: the graph replay time where measured, else the events median. */
static double perf_us(const oc_case *c, const char *what) {
  oc_opts o = OC_OPTS_INIT;
  o.check = 0, o.perf = 1, o.reps = 15, o.graph_calls = 10;
  oc_result r;
  oc_run(&X, c, &o, &r);
  CHECK(r.failed == 0, "timing %s: %s", what, r.failure);
  return r.graph_us > 0 ? r.graph_us : r.median_us;
}

static void timings(void) {
  const int64_t M = 16384, K = 8192, F = 14336;
  copy_args ca = {NULL, NULL, (size_t)(M * K) * 2};
  T_CU(cudaMalloc(&ca.dst, ca.bytes));
  T_CU(cudaMalloc(&ca.src, ca.bytes));
  double med = 0, gr = 0;
  CHECK(oc_time_fn(run_copy, &ca, 15, 10, &med, &gr) == LLMK_SUCCESS, "timing the copy");
  const double copy_us = gr > 0 ? gr : med, copy_gbs = 2.0 * (double)ca.bytes / copy_us * 1e-3;
  printf("timing (info) M=%lld K=%lld: copy of %zu bytes %.1f us = %.0f GB/s\n", (long long)M, (long long)K, ca.bytes,
         copy_us, copy_gbs);
  T_CU(cudaFree(ca.dst));
  T_CU(cudaFree(ca.src));
  static const char *const tprs[] = {NULL, "128", "512"};
  for (int v = 0; v < 4; v++)
    for (int ti = 0; ti < 3; ti++) {
      const oc_norm_params p = {M, K, v >= 2 ? 2 : 0, v % 2, 0, OC_D_CONST};
      oc_case c;
      oc_norm_case(&c, &p, 1);
      knob("LLMK_NORM_TPR", tprs[ti]);
      const double us = perf_us(&c, c.name), gbs = c.bytes / us * 1e-3;
      printf("timing (info) rmsnorm res=%s y=%s tpr=%s: %.1f us = %.0f GB/s = %.0f%% of copy\n",
             v >= 2 ? "in-place" : "none", v % 2 ? "e4m3" : "bf16", tprs[ti] ? tprs[ti] : "default", us, gbs,
             100.0 * gbs / copy_gbs);
    }
  knob("LLMK_NORM_TPR", NULL);
  static const char *const stprs[2][3] = {{NULL, "256", "128"}, {NULL, "4", "16"}};
  for (int v = 0; v < 2; v++)
    for (int ti = 0; ti < 4; ti++) {
      const oc_silu_params p = {M, F, v, 0, 1, OC_D_CONST}; /* gate and up: the halves of one [M, 2F] buffer */
      oc_case c;
      oc_silu_case(&c, &p, 1);
      knob("LLMK_SILU_TPR", ti < 3 ? stprs[v][ti] : NULL);
      knob("LLMK_SILU_FP64", ti == 3 ? "1" : NULL);
      const double us = perf_us(&c, c.name), gbs = c.bytes / us * 1e-3;
      printf("timing (info) silu_mul_quant M=%lld F=%lld %s %s: %.1f us = %.0f GB/s = %.0f%% of copy\n",
             (long long)M, (long long)F, v ? "block1x128" : "row",
             ti == 3 ? "all-fp64" : ti == 0 ? "tpr=default" : v ? (ti == 1 ? "tpr=4" : "tpr=16") : (ti == 1 ? "tpr=256" : "tpr=128"),
             us, gbs, 100.0 * gbs / copy_gbs);
    }
  knob("LLMK_SILU_TPR", NULL);
  knob("LLMK_SILU_FP64", NULL);
}
#endif

int main(void) {
  t_seed();
  if (!oc_init(&X, 1)) {
    CHECK(0, "llmk_create_cpu: %s", llmk_last_error());
    TEST_END();
  }
  if (!X.gpu) {
    SKIP("%s: rmsnorm / silu_mul_quant GPU tests", X.why_no_gpu);
    oc_fini(&X);
    TEST_END();
  }
  gpu = X.gpu;
  oc_list l = {0};
  oc_norm_cases(&l, t_quick(), t_rand_u64());
  int n = t_oc_run_list(&X, &l, t_quick());
  oc_list_free(&l);
#ifdef LLMK_WITH_CUDA
  n += forced_cases();
#endif
  printf("%d rmsnorm / silu_mul_quant GPU-vs-CPU cases\n", n);
#ifdef LLMK_WITH_CUDA
  gpu_bad_inputs();
  timings();
#endif
  oc_fini(&X);
  TEST_END();
}
