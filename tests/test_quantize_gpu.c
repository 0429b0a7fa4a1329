/* GPU quantize/dequantize against the CPU reference, bit for bit, on fresh
 * random inputs of several distributions, odd shapes, strided and
 * misaligned rows; outputs poisoned differently on each side so unwritten
 * elements show; padding between rows must stay untouched. Also: the
 * hardware FP8 conversion over all 2^32 floats (through per-tensor
 * quantization with scale pinned to 1), scale_ub / num_rows as device
 * pointers, and CUDA-graph replay with new bound values.
 * LLMK_TEST_QUICK=1 skips the exhaustive part (for compute-sanitizer). */
#include <math.h>

#include "harness.h"
#include "llmk.h"

#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>

static llmk_handle cpu, gpu;

enum { D_NORMAL, D_OUTLIER, D_EQUAL_ROWS, D_ZERO_ROWS, D_NAN_INF, D_WIDE, D_COUNT };
static const char *dist_name[] = {"normal", "outliers", "equal-rows", "zero-rows", "nan-inf", "wide"};

static float draw(int dist, int64_t r, float row_val) {
  float v = t_rand_normal();
  switch (dist) {
    case D_OUTLIER: return t_rand_uniform() < 0.01 ? v * 1000.0f : v;
    case D_EQUAL_ROWS: return row_val;
    case D_ZERO_ROWS: return r % 3 == 1 ? 0.0f : v;
    case D_NAN_INF: {
      double u = t_rand_uniform();
      return u < 0.01 ? NAN : u < 0.02 ? INFINITY : u < 0.03 ? -INFINITY : v;
    }
    case D_WIDE: return (t_rand_u64() & 1 ? -1.0f : 1.0f) * ldexpf(1.0f + (float)t_rand_uniform(), (int)(t_rand_u64() % 48) - 36);
    default: return v * 3.0f;
  }
}

static void put(void *base, llmk_dtype dt, int64_t i, float v) {
  if (dt == LLMK_F32) ((float *)base)[i] = v;
  else if (dt == LLMK_BF16) ((uint16_t *)base)[i] = llmk_float_to_bf16(v);
  else ((uint16_t *)base)[i] = llmk_float_to_f16(v);
}

typedef struct qcase {
  llmk_scaling scaling;
  int64_t bm, bk;
  llmk_dtype xt, qt;
  int64_t M, K;
  int64_t padx, padq; /* row pitch = K + pad */
  int64_t offx;       /* x starts this many elements into its buffer */
  int dist;
  int use_ub;         /* 1: ub below amax, 2: above */
  int64_t num_rows;   /* < -1000: none */
} qcase;

static int64_t scale_count(const qcase *c) {
  switch (c->scaling) {
    case LLMK_SCALING_TENSOR: return 1;
    case LLMK_SCALING_ROW: return c->M;
    case LLMK_SCALING_COL: return c->K;
    default: return ((c->M + c->bm - 1) / c->bm) * ((c->K + c->bk - 1) / c->bk);
  }
}

static void fill_scale_tensor(const qcase *c, llmk_tensor *t, float *p) {
  if (c->scaling == LLMK_SCALING_BLOCK)
    *t = llmk_tensor_2d(p, LLMK_F32, (c->M + c->bm - 1) / c->bm, (c->K + c->bk - 1) / c->bk,
                        (c->K + c->bk - 1) / c->bk);
  else
    *t = llmk_tensor_1d(p, LLMK_F32, scale_count(c));
}

static int nan_eq(float a, float b) {
  uint32_t x, y;
  memcpy(&x, &a, 4);
  memcpy(&y, &b, 4);
  return x == y || (a != a && b != b);
}

static void run_case(const qcase *c) {
  const size_t xs = llmk_dtype_size(c->xt);
  const int64_t ldx = c->K + c->padx, ldq = c->K + c->padq, ns = scale_count(c);
  const int64_t nx = c->offx + (c->M > 0 ? (c->M - 1) * ldx + c->K : 0) + 1, nq = c->M * ldq + 1;
  char label[256];
  snprintf(label, sizeof label, "scaling=%d %lldx%lld x=%s q=%s M=%lld K=%lld padx=%lld padq=%lld off=%lld %s ub=%d nr=%lld",
           (int)c->scaling, (long long)c->bm, (long long)c->bk, llmk_dtype_name(c->xt),
           llmk_dtype_name(c->qt), (long long)c->M, (long long)c->K, (long long)c->padx,
           (long long)c->padq, (long long)c->offx, dist_name[c->dist], c->use_ub,
           (long long)c->num_rows);

  void *hx = calloc((size_t)nx, xs);
  uint8_t *hq_cpu = malloc((size_t)nq), *hq_gpu = malloc((size_t)nq);
  float *hs_cpu = malloc((size_t)(ns + 1) * 4), *hs_gpu = malloc((size_t)(ns + 1) * 4);
  float amax = 0;
  for (int64_t r = 0; r < c->M; r++) {
    float rv = t_rand_normal();
    for (int64_t k = 0; k < c->K; k++) {
      float v = draw(c->dist, r, rv);
      put(hx, c->xt, c->offx + r * ldx + k, v);
      if (isfinite(v) && fabsf(v) > amax) amax = fabsf(v);
    }
  }
  float ub = c->use_ub == 1 ? amax * 0.25f : amax * 4.0f + 1.0f;
  int64_t nr = c->num_rows;
  memset(hq_cpu, 0x5A, (size_t)nq);
  memset(hs_cpu, 0x7F, (size_t)(ns + 1) * 4);

  void *dx;
  uint8_t *dq;
  float *ds, *dub;
  int64_t *dnr;
  T_CU(cudaMalloc(&dx, (size_t)nx * xs));
  T_CU(cudaMalloc((void **)&dq, (size_t)nq));
  T_CU(cudaMalloc((void **)&ds, (size_t)(ns + 1) * 4));
  T_CU(cudaMalloc((void **)&dub, 4));
  T_CU(cudaMalloc((void **)&dnr, 8));
  T_CU(cudaMemcpy(dx, hx, (size_t)nx * xs, cudaMemcpyHostToDevice));
  T_CU(cudaMemset(dq, 0xA5, (size_t)nq));
  T_CU(cudaMemset(ds, 0xFF, (size_t)(ns + 1) * 4));
  T_CU(cudaMemcpy(dub, &ub, 4, cudaMemcpyHostToDevice));
  T_CU(cudaMemcpy(dnr, &nr, 8, cudaMemcpyHostToDevice));

  int64_t shape[2] = {c->M, c->K};
  llmk_tensor tx = llmk_tensor_2d((char *)hx + c->offx * xs, c->xt, shape[0], shape[1], ldx);
  llmk_tensor tq = llmk_tensor_2d(hq_cpu, c->qt, c->M, c->K, ldq), ts;
  fill_scale_tensor(c, &ts, hs_cpu);
  llmk_quantize_desc d = {LLMK_QUANTIZE_DESC_SIZE, c->scaling, c->bm, c->bk, c->use_ub ? &ub : NULL,
                       c->num_rows >= -1000 ? &nr : NULL};
  llmk_status s1 = llmk_quantize_fp8(cpu, &d, &tx, &tq, &ts, NULL);
  CHECK(s1 == LLMK_SUCCESS, "%s: cpu: %s", label, llmk_last_error());

  llmk_tensor gx = llmk_tensor_2d((char *)dx + c->offx * xs, c->xt, c->M, c->K, ldx);
  llmk_tensor gq = llmk_tensor_2d(dq, c->qt, c->M, c->K, ldq), gs;
  fill_scale_tensor(c, &gs, ds);
  llmk_quantize_desc gd = {LLMK_QUANTIZE_DESC_SIZE, c->scaling, c->bm, c->bk, c->use_ub ? dub : NULL,
                        c->num_rows >= -1000 ? dnr : NULL};
  llmk_status s2 = llmk_quantize_fp8(gpu, &gd, &gx, &gq, &gs, NULL);
  CHECK(s2 == LLMK_SUCCESS, "%s: gpu: %s", label, llmk_last_error());
  T_CU(cudaDeviceSynchronize());
  T_CU(cudaMemcpy(hq_gpu, dq, (size_t)nq, cudaMemcpyDeviceToHost));
  T_CU(cudaMemcpy(hs_gpu, ds, (size_t)(ns + 1) * 4, cudaMemcpyDeviceToHost));

  int64_t bad_s = 0, bad_q = 0, bad_pad = 0;
  for (int64_t i = 0; i < ns; i++)
    if (memcmp(&hs_cpu[i], &hs_gpu[i], 4)) {
      if (bad_s++ < 3) fprintf(stderr, "  %s: scale[%lld] cpu %a gpu %a\n", label, (long long)i, hs_cpu[i], hs_gpu[i]);
    }
  for (int64_t r = 0; r < c->M; r++)
    for (int64_t k = 0; k < ldq; k++) {
      uint8_t a = hq_cpu[r * ldq + k], b = hq_gpu[r * ldq + k];
      if (k >= c->K) {
        bad_pad += b != 0xA5;
      } else if (a != b && bad_q++ < 3) {
        fprintf(stderr, "  %s: q[%lld,%lld] cpu 0x%02x gpu 0x%02x\n", label, (long long)r, (long long)k, a, b);
      }
    }
  bad_pad += hq_gpu[nq - 1] != 0xA5;
  bad_pad += memcmp(&hs_gpu[ns], "\xff\xff\xff\xff", 4) != 0;
  CHECK(bad_s == 0 && bad_q == 0, "%s: %lld scales and %lld codes differ", label, (long long)bad_s, (long long)bad_q);
  CHECK(bad_pad == 0, "%s: %lld bytes outside the output were written", label, (long long)bad_pad);

  /* dequantize both sides' (now equal) outputs, to f32 and bf16 */
  if (s1 == LLMK_SUCCESS && s2 == LLMK_SUCCESS && c->M * c->K > 0) {
    for (int yi = 0; yi < 2; yi++) {
      llmk_dtype yt = yi ? LLMK_BF16 : LLMK_F32;
      size_t ys = llmk_dtype_size(yt);
      int64_t ldy = c->K + (yi ? 3 : 0), ny = c->M * ldy;
      void *hy = malloc((size_t)ny * ys), *hyg = malloc((size_t)ny * ys), *dy;
      memset(hy, 0x5A, (size_t)ny * ys);
      T_CU(cudaMalloc(&dy, (size_t)ny * ys));
      T_CU(cudaMemset(dy, 0xA5, (size_t)ny * ys));
      llmk_tensor ty = llmk_tensor_2d(hy, yt, c->M, c->K, ldy), gy = llmk_tensor_2d(dy, yt, c->M, c->K, ldy);
      CHECK(llmk_dequantize_fp8(cpu, &d, &tq, &ts, &ty, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
      CHECK(llmk_dequantize_fp8(gpu, &gd, &gq, &gs, &gy, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
      T_CU(cudaMemcpy(hyg, dy, (size_t)ny * ys, cudaMemcpyDeviceToHost));
      int64_t bad = 0;
      for (int64_t r = 0; r < c->M; r++)
        for (int64_t k = 0; k < c->K; k++) {
          int64_t i = r * ldy + k;
          float a = yi ? llmk_bf16_to_float(((uint16_t *)hy)[i]) : ((float *)hy)[i];
          float b = yi ? llmk_bf16_to_float(((uint16_t *)hyg)[i]) : ((float *)hyg)[i];
          if (!nan_eq(a, b) && bad++ < 3)
            fprintf(stderr, "  %s: dequant %s y[%lld,%lld] cpu %a gpu %a\n", label, llmk_dtype_name(yt), (long long)r, (long long)k, a, b);
        }
      CHECK(bad == 0, "%s: dequantize to %s: %lld elements differ", label, llmk_dtype_name(yt), (long long)bad);
      free(hy);
      free(hyg);
      T_CU(cudaFree(dy));
    }
  }
  T_CU(cudaFree(dx));
  T_CU(cudaFree(dq));
  T_CU(cudaFree(ds));
  T_CU(cudaFree(dub));
  T_CU(cudaFree(dnr));
  free(hx);
  free(hq_cpu);
  free(hq_gpu);
  free(hs_cpu);
  free(hs_gpu);
}

/* All 2^32 float bit patterns through the GPU's per-tensor path with the
 * scale pinned to exactly 1 (an extra row of FP8_MAX values and scale_ub =
 * FP8_MAX), so q = cvt(x): checked against the host encoder. */
static void exhaustive_cvt(void) {
  const int64_t K = 1 << 14, M = (1 << 14) + 1, n = M * K;
  float *hx = malloc((size_t)n * 4);
  uint8_t *hq = malloc((size_t)n);
  void *dx, *dq, *ds, *dub;
  T_CU(cudaMalloc(&dx, (size_t)n * 4));
  T_CU(cudaMalloc(&dq, (size_t)n));
  T_CU(cudaMalloc(&ds, 4));
  T_CU(cudaMalloc(&dub, 4));
  llmk_tensor tx = llmk_tensor_2d(dx, LLMK_F32, M, K, K), ts = llmk_tensor_1d(ds, LLMK_F32, 1);
  int64_t bad[2] = {0, 0};
  for (int64_t chunk = 0; chunk < 16; chunk++) {
    const int64_t base = chunk << 28;
    for (int64_t i = 0; i < (INT64_C(1) << 28); i++) {
      uint32_t b = (uint32_t)(base + i);
      memcpy(&hx[i], &b, 4);
    }
    for (int fmt = 0; fmt < 2; fmt++) {
      float fmax = fmt ? 57344.0f : 448.0f;
      for (int64_t i = INT64_C(1) << 28; i < n; i++) hx[i] = fmax;
      T_CU(cudaMemcpy(dx, hx, (size_t)n * 4, cudaMemcpyHostToDevice));
      T_CU(cudaMemcpy(dub, &fmax, 4, cudaMemcpyHostToDevice));
      llmk_dtype qt = fmt ? LLMK_E5M2 : LLMK_E4M3;
      llmk_tensor tq = llmk_tensor_2d(dq, qt, M, K, K);
      llmk_quantize_desc d = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_TENSOR, 0, 0, dub, NULL};
      llmk_status s = llmk_quantize_fp8(gpu, &d, &tx, &tq, &ts, NULL);
      CHECK(s == LLMK_SUCCESS, "exhaustive: %s", llmk_last_error());
      float scale = 0;
      T_CU(cudaMemcpy(hq, dq, (size_t)n, cudaMemcpyDeviceToHost));
      T_CU(cudaMemcpy(&scale, ds, 4, cudaMemcpyDeviceToHost));
      CHECK(scale == 1.0f, "exhaustive: scale pinned to 1, got %a", scale);
      int64_t nbad = 0, first = 0;
#pragma omp parallel for reduction(+ : nbad)
      for (int64_t i = 0; i < (INT64_C(1) << 28); i++) nbad += hq[i] != llmk_float_to_fp8(hx[i], qt);
      while (nbad && hq[first] == llmk_float_to_fp8(hx[first], qt)) first++;
      if (nbad && !bad[fmt]) {
        uint32_t b;
        memcpy(&b, &hx[first], 4);
        fprintf(stderr, "  exhaustive %s: bits 0x%08x: gpu 0x%02x host 0x%02x\n", llmk_dtype_name(qt),
                b, hq[first], llmk_float_to_fp8(hx[first], qt));
      }
      bad[fmt] += nbad;
    }
  }
  CHECK(bad[0] == 0, "exhaustive: %lld floats convert to a different e4m3 code on the GPU", (long long)bad[0]);
  CHECK(bad[1] == 0, "exhaustive: %lld floats convert to a different e5m2 code on the GPU", (long long)bad[1]);
  T_CU(cudaFree(dx));
  T_CU(cudaFree(dq));
  T_CU(cudaFree(ds));
  T_CU(cudaFree(dub));
  free(hx);
  free(hq);
}

/* A captured graph replays with new scale_ub / num_rows values read on device. */
/* Per-tensor in a captured graph, replayed with new scale_ub / num_rows
 * values: M x K picks the path (64 x 1024: one cluster; 512 x 1024: the
 * amax / quantize / finalize kernels). */
static void graph_replay(int64_t M, int64_t K) {
  uint16_t *hx = malloc(M * K * 2);
  for (int64_t i = 0; i < M * K; i++) hx[i] = llmk_float_to_bf16(t_rand_normal() + (i / K == 40 ? 50.0f : 0.0f));
  void *dx, *dq, *ds, *dub, *dnr;
  T_CU(cudaMalloc(&dx, M * K * 2));
  T_CU(cudaMalloc(&dq, M * K));
  T_CU(cudaMalloc(&ds, 8));
  T_CU(cudaMalloc(&dub, 4));
  T_CU(cudaMalloc(&dnr, 8));
  T_CU(cudaMemcpy(dx, hx, M * K * 2, cudaMemcpyHostToDevice));
  cudaStream_t st;
  T_CU(cudaStreamCreate(&st));
  llmk_tensor tx = llmk_tensor_2d(dx, LLMK_BF16, M, K, K), tq = llmk_tensor_2d(dq, LLMK_E4M3, M, K, K);
  llmk_tensor ts = llmk_tensor_1d(ds, LLMK_F32, 1);
  llmk_quantize_desc d = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_TENSOR, 0, 0, (const float *)dub, (const int64_t *)dnr};
  float ub = 1e30f;
  int64_t nr = M;
  T_CU(cudaMemcpy(dub, &ub, 4, cudaMemcpyHostToDevice));
  T_CU(cudaMemcpy(dnr, &nr, 8, cudaMemcpyHostToDevice));
  cudaGraph_t g;
  cudaGraphExec_t ge;
  T_CU(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
  llmk_status s = llmk_quantize_fp8(gpu, &d, &tx, &tq, &ts, st);
  T_CU(cudaStreamEndCapture(st, &g));
  CHECK(s == LLMK_SUCCESS, "capture: %s", llmk_last_error());
  T_CU(cudaGraphInstantiate(&ge, g, 0));
  /* replay with three (ub, num_rows) settings; compare with the CPU each time */
  float ubs[3] = {1e30f, 1.0f, 1e30f};
  int64_t nrs[3] = {M, M, 40};
  llmk_tensor cx = llmk_tensor_2d(hx, LLMK_BF16, M, K, K);
  for (int i = 0; i < 3; i++) {
    T_CU(cudaMemcpy(dub, &ubs[i], 4, cudaMemcpyHostToDevice));
    T_CU(cudaMemcpy(dnr, &nrs[i], 8, cudaMemcpyHostToDevice));
    T_CU(cudaGraphLaunch(ge, st));
    T_CU(cudaStreamSynchronize(st));
    float gsc, csc;
    uint8_t *gq = malloc(M * K), *cq = malloc(M * K);
    T_CU(cudaMemcpy(&gsc, ds, 4, cudaMemcpyDeviceToHost));
    T_CU(cudaMemcpy(gq, dq, M * K, cudaMemcpyDeviceToHost));
    llmk_tensor cqt = llmk_tensor_2d(cq, LLMK_E4M3, M, K, K), cst = llmk_tensor_1d(&csc, LLMK_F32, 1);
    llmk_quantize_desc cd = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_TENSOR, 0, 0, &ubs[i], &nrs[i]};
    CHECK(llmk_quantize_fp8(cpu, &cd, &cx, &cqt, &cst, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
    CHECK(gsc == csc && !memcmp(gq, cq, M * K), "graph replay %d: scale gpu %g cpu %g", i, gsc, csc);
    free(gq);
    free(cq);
  }
  T_CU(cudaGraphExecDestroy(ge));
  T_CU(cudaGraphDestroy(g));
  T_CU(cudaStreamDestroy(st));
  T_CU(cudaFree(dx));
  T_CU(cudaFree(dq));
  T_CU(cudaFree(ds));
  T_CU(cudaFree(dub));
  T_CU(cudaFree(dnr));
  free(hx);
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
  llmk_status cs = llmk_create_cuda(0, &gpu);
  CHECK(cs == LLMK_SUCCESS, "%s", llmk_last_error());
  if (cs) TEST_END();

  static const int64_t Ms[] = {1, 3, 17, 128, 257};
  static const int64_t Ks[] = {1, 3, 17, 128, 129, 1000, 4096};
  static const llmk_dtype xts[] = {LLMK_BF16, LLMK_F16, LLMK_F32};
  struct { llmk_scaling s; int64_t bm, bk; } sc[] = {
      {LLMK_SCALING_ROW, 0, 0},     {LLMK_SCALING_TENSOR, 0, 0}, {LLMK_SCALING_COL, 0, 0},
      {LLMK_SCALING_BLOCK, 1, 128}, {LLMK_SCALING_BLOCK, 128, 128}, {LLMK_SCALING_BLOCK, 128, 1},
      {LLMK_SCALING_BLOCK, 3, 5},   {LLMK_SCALING_BLOCK, 1, 24},  {LLMK_SCALING_BLOCK, 64, 256},
      /* band kernel: power-of-two gk up to the strip width, bands of 1..16 rows per thread and streamed */
      {LLMK_SCALING_BLOCK, 16, 8},  {LLMK_SCALING_BLOCK, 200, 2}, {LLMK_SCALING_BLOCK, 2, 32}};
  int ncase = 0;
  for (size_t si = 0; si < sizeof sc / sizeof sc[0]; si++)
    for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++)
      for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++) {
        qcase c = {sc[si].s, sc[si].bm, sc[si].bk, xts[(mi + ki) % 3], LLMK_E4M3, Ms[mi], Ks[ki],
                   0, 0, 0, (int)((mi * 7 + ki + si) % D_COUNT), 0, -2000};
        int e5ok = c.scaling == LLMK_SCALING_TENSOR || c.scaling == LLMK_SCALING_ROW;
        if (e5ok && (mi + ki) % 2) c.qt = LLMK_E5M2;
        /* alignment edges: aligned pitch, odd pitch, misaligned start */
        int variant = (int)((mi + 2 * ki + si) % 4);
        if (variant == 1) c.padx = 8, c.padq = 16;
        if (variant == 2) c.padx = 1, c.padq = 3;
        if (variant == 3) c.offx = 1, c.padx = 5, c.padq = 1;
        c.use_ub = (int)((mi + ki) % 3);
        if (c.scaling == LLMK_SCALING_TENSOR && ki % 2) c.num_rows = (int64_t)(mi * 5) - 3;
        run_case(&c);
        ncase++;
      }
  /* large and decode-sized shapes on the fast paths, every distribution */
  struct { llmk_scaling s; int64_t bm, bk, M, K; } big[] = {
      {LLMK_SCALING_ROW, 0, 0, 16, 8192},        {LLMK_SCALING_ROW, 0, 0, 1024, 8192},
      {LLMK_SCALING_ROW, 0, 0, 3, 70000},        {LLMK_SCALING_ROW, 0, 0, 4097, 3},
      {LLMK_SCALING_TENSOR, 0, 0, 1024, 8192},   {LLMK_SCALING_COL, 0, 0, 4097, 1000},
      {LLMK_SCALING_BLOCK, 1, 128, 1024, 8192},  {LLMK_SCALING_BLOCK, 128, 128, 1000, 7168},
      {LLMK_SCALING_BLOCK, 128, 1, 300, 520},    {LLMK_SCALING_BLOCK, 512, 512, 600, 700},
      {LLMK_SCALING_BLOCK, 1, 100000, 5, 70000}, {LLMK_SCALING_TENSOR, 0, 0, 0, 128},
      {LLMK_SCALING_ROW, 0, 0, 5, 0},            {LLMK_SCALING_COL, 0, 0, 0, 33},
      {LLMK_SCALING_BLOCK, 128, 1, 1000, 8192},  {LLMK_SCALING_BLOCK, 256, 4, 700, 3000},
      {LLMK_SCALING_BLOCK, 128, 128, 300, 8200}, {LLMK_SCALING_ROW, 0, 0, 33, 8200},
      /* per-tensor around the cluster path's limits (32K one CTA, 256K bf16 / 128K f32 cluster) */
      {LLMK_SCALING_TENSOR, 0, 0, 16, 8192},     {LLMK_SCALING_TENSOR, 0, 0, 32, 8192},
      {LLMK_SCALING_TENSOR, 0, 0, 33, 8192},     {LLMK_SCALING_TENSOR, 0, 0, 5, 6553}};
  for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
    for (int dist = 0; dist < D_COUNT; dist++) {
      qcase c = {big[i].s, big[i].bm, big[i].bk, xts[(i + dist) % 3], LLMK_E4M3, big[i].M,
                 big[i].K, 0, 0, 0, dist, dist % 3, -2000};
      if ((c.scaling == LLMK_SCALING_ROW || c.scaling == LLMK_SCALING_TENSOR) && dist % 2) c.qt = LLMK_E5M2;
      run_case(&c);
      ncase++;
    }
  printf("%d GPU-vs-CPU cases\n", ncase);
  graph_replay(64, 1024);
  graph_replay(512, 1024);
  const char *quick = getenv("LLMK_TEST_QUICK");
  if (quick && *quick == '1')
    SKIP("exhaustive GPU conversion check (LLMK_TEST_QUICK=1)");
  else
    exhaustive_cvt();
  llmk_destroy(gpu);
  llmk_destroy(cpu);
  TEST_END();
}

#else
int main(void) {
  SKIP("built without CUDA");
  TEST_END();
}
#endif
