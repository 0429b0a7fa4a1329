/* INT4 weights on the GPU against the CPU backend, bit for bit: the
 * quantizer (symmetric and asymmetric, groups of 64 and 128, padded rows,
 * NaN / Inf / all-zero groups) and the dequantizer to bf16 and f32. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "llmk.h"

#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>

static llmk_handle cpu, gpu;

static void check_same(const void *a, const void *d_b, size_t n, const char *what) {
  void *b = t_xmalloc(n ? n : 1);
  T_CU(cudaMemcpy(b, d_b, n, cudaMemcpyDeviceToHost));
  size_t first = n;
  for (size_t i = 0; i < n && first == n; i++)
    if (((const uint8_t *)a)[i] != ((const uint8_t *)b)[i]) first = i;
  CHECK(first == n, "%s: GPU differs from CPU at byte %zu", what, first);
  free(b);
}

static void one_case(int64_t N, int64_t K, int group, int asym, int pad) {
  const int64_t ld = K + pad, lc = K / 2 + pad, ng = K / group;
  uint16_t *w = t_xmalloc((size_t)(N * ld) * 2);
  for (int64_t i = 0; i < N * ld; i++) {
    float v = 0.02f * t_rand_normal();
    if ((i / ld + (i % ld) / group) % 7 == 2) v = 0.0f;
    if (t_rand_u64() % 997 == 0) v = (t_rand_u64() & 1) ? NAN : INFINITY;
    w[i] = llmk_float_to_bf16(v);
  }
  const size_t nc = (size_t)(N * lc), ns = (size_t)(N * ng);
  uint8_t *hc = t_xmalloc(nc), *hz = t_xmalloc(ns);
  uint16_t *hs = t_xmalloc(ns * 2);
  memset(hc, 0x3C, nc), memset(hz, 0x3C, ns), memset(hs, 0x3C, ns * 2);
  void *dw = t_to_dev(w, (size_t)(N * ld) * 2), *dc, *dz, *ds;
  T_CU(cudaMalloc(&dc, nc));
  T_CU(cudaMalloc(&dz, ns));
  T_CU(cudaMalloc(&ds, ns * 2));
  T_CU(cudaMemset(dc, 0x3C, nc));
  T_CU(cudaMemset(dz, 0x3C, ns));
  T_CU(cudaMemset(ds, 0x3C, ns * 2));
  llmk_int4_desc d = LLMK_INT4_DESC_INIT;
  d.group = group, d.asymmetric = asym;
  for (int side = 0; side < 2; side++) {
    llmk_tensor tw = llmk_tensor_2d(side ? dw : (void *)w, LLMK_BF16, N, K, ld);
    llmk_tensor tc = llmk_tensor_2d(side ? dc : (void *)hc, LLMK_U8, N, K / 2, lc);
    llmk_tensor ts = llmk_tensor_2d(side ? ds : (void *)hs, LLMK_BF16, N, ng, ng);
    llmk_tensor tz = llmk_tensor_2d(side ? dz : (void *)hz, LLMK_U8, N, ng, ng);
    const llmk_status st = llmk_int4_quantize(side ? gpu : cpu, &d, &tw, &tc, &ts, asym ? &tz : NULL, NULL);
    CHECK(st == LLMK_SUCCESS, "quantize on %s: %s", side ? "GPU" : "CPU", llmk_last_error());
  }
  T_CU(cudaDeviceSynchronize());
  char what[96];
  snprintf(what, sizeof what, "quantize N %lld K %lld group %d %s", (long long)N, (long long)K, group,
           asym ? "asymmetric" : "symmetric");
  check_same(hc, dc, nc, what), check_same(hs, ds, ns * 2, what), check_same(hz, dz, ns, what);
  for (int f32 = 0; f32 < 2; f32++) {
    const size_t ny = (size_t)(N * K) * (f32 ? 4 : 2);
    void *hy = t_xmalloc(ny), *dy;
    T_CU(cudaMalloc(&dy, ny));
    for (int side = 0; side < 2; side++) {
      llmk_tensor tc = llmk_tensor_2d(side ? dc : (void *)hc, LLMK_U8, N, K / 2, lc);
      llmk_tensor ts = llmk_tensor_2d(side ? ds : (void *)hs, LLMK_BF16, N, ng, ng);
      llmk_tensor tz = llmk_tensor_2d(side ? dz : (void *)hz, LLMK_U8, N, ng, ng);
      llmk_tensor ty = llmk_tensor_2d(side ? dy : hy, f32 ? LLMK_F32 : LLMK_BF16, N, K, K);
      const llmk_status st = llmk_int4_dequantize(side ? gpu : cpu, &d, &tc, &ts, asym ? &tz : NULL, &ty, NULL);
      CHECK(st == LLMK_SUCCESS, "dequantize on %s: %s", side ? "GPU" : "CPU", llmk_last_error());
    }
    T_CU(cudaDeviceSynchronize());
    snprintf(what, sizeof what, "dequantize N %lld K %lld to %s", (long long)N, (long long)K, f32 ? "f32" : "bf16");
    check_same(hy, dy, ny, what);
    free(hy);
    T_CU(cudaFree(dy));
  }
  free(w), free(hc), free(hz), free(hs);
  T_CU(cudaFree(dw));
  T_CU(cudaFree(dc));
  T_CU(cudaFree(dz));
  T_CU(cudaFree(ds));
}

static void cases(void) {
  one_case(256, 1024, 128, 0, 0);
  one_case(256, 1024, 128, 1, 0);
  one_case(77, 448, 64, 1, 8);
  one_case(77, 448, 64, 0, 8);
  one_case(8192, 1024, 128, 1, 0);
}
#endif

int main(void) {
  t_seed();
#ifdef LLMK_WITH_CUDA
  if (llmk_create_cpu(&cpu) != LLMK_SUCCESS) return 2;
  if (t_hopper_handle("INT4 weights on the GPU", &gpu)) {
    static const t_part parts[] = {{"quantize + dequantize", cases}};
    t_run_parts(parts, sizeof parts / sizeof parts[0]);
    llmk_destroy(gpu);
  }
  llmk_destroy(cpu);
#else
  SKIP("built without CUDA: INT4 weights on the GPU");
#endif
  TEST_END();
}
