/* llmk in one program: quantize activations x [M, K] and weights w [N, K]
 * to FP8 with one scale per row, multiply them with llmk_gemm_fp8 into a
 * bf16 y [M, N], and check y against the exact product of the quantized
 * values (and, on a GPU, against the CPU backend's y).
 *
 * Build against an installed llmk (make install PREFIX=...):
 *   cc quantize_gemm.c $(pkg-config --cflags --libs llmk) -o quantize_gemm
 * That runs the CPU reference backend. To run the same calls on a Hopper GPU
 * (with an llmk built with CUDA), give the program the CUDA runtime for its
 * device buffers:
 *   cc -DWITH_CUDA quantize_gemm.c $(pkg-config --cflags --libs llmk) \
 *      -I/usr/local/cuda/include -L/usr/local/cuda/lib64 -lcudart -o quantize_gemm
 * Without a visible GPU it falls back to the CPU backend. */
#include <llmk.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef WITH_CUDA
#include <cuda_runtime_api.h>
#endif

enum { M = 16, N = 256, K = 512 };

/* Buffers live where the handle's backend reads them: host memory for the
 * CPU backend, device memory for CUDA. */
static void *buffer(int gpu, size_t bytes, const void *init) {
#ifdef WITH_CUDA
  if (gpu) {
    void *d = NULL;
    if (cudaMalloc(&d, bytes) != cudaSuccess) return NULL;
    if (init && cudaMemcpy(d, init, bytes, cudaMemcpyHostToDevice) != cudaSuccess) return NULL;
    return d;
  }
#endif
  (void)gpu;
  void *h = malloc(bytes);
  if (h && init) memcpy(h, init, bytes);
  return h;
}
static void release(int gpu, void *p) {
#ifdef WITH_CUDA
  if (gpu) {
    cudaFree(p);
    return;
  }
#endif
  (void)gpu;
  free(p);
}
static int fetch(int gpu, void *dst, const void *src, size_t bytes) {
#ifdef WITH_CUDA
  if (gpu) return cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost) == cudaSuccess;
#endif
  (void)gpu;
  memcpy(dst, src, bytes);
  return 1;
}

/* Quantize x and w per row, then y = x w^T, all on handle h; y, the codes
 * and the scales are copied back to the host. */
static int run(llmk_handle h, int gpu, const uint16_t *x, const uint16_t *w, uint16_t *y, uint8_t *xq, uint8_t *wq,
               float *xs, float *ws) {
  void *dx = buffer(gpu, sizeof(uint16_t) * M * K, x), *dw = buffer(gpu, sizeof(uint16_t) * N * K, w);
  void *dxq = buffer(gpu, M * K, NULL), *dwq = buffer(gpu, N * K, NULL);
  void *dxs = buffer(gpu, sizeof(float) * M, NULL), *dws = buffer(gpu, sizeof(float) * N, NULL);
  void *dy = buffer(gpu, sizeof(uint16_t) * M * N, NULL);
  int ok = dx && dw && dxq && dwq && dxs && dws && dy;

  const llmk_tensor tx = llmk_tensor_2d(dx, LLMK_BF16, M, K, K), tw = llmk_tensor_2d(dw, LLMK_BF16, N, K, K);
  const llmk_tensor txq = llmk_tensor_2d(dxq, LLMK_E4M3, M, K, K), twq = llmk_tensor_2d(dwq, LLMK_E4M3, N, K, K);
  const llmk_tensor txs = llmk_tensor_1d(dxs, LLMK_F32, M), tws = llmk_tensor_1d(dws, LLMK_F32, N);
  const llmk_tensor ty = llmk_tensor_2d(dy, LLMK_BF16, M, N, N);

  llmk_quantize_desc q = LLMK_QUANTIZE_DESC_INIT; /* every llmk struct starts from its initializer */
  q.scaling = LLMK_SCALING_ROW;
  llmk_gemm_desc g = LLMK_GEMM_DESC_INIT;
  g.scaling = LLMK_SCALING_ROW;
  void *stream = NULL; /* the default stream; pass your cudaStream_t */
  if (ok && (llmk_quantize_fp8(h, &q, &tx, &txq, &txs, stream) != LLMK_SUCCESS ||
             llmk_quantize_fp8(h, &q, &tw, &twq, &tws, stream) != LLMK_SUCCESS ||
             llmk_gemm_fp8(h, &g, &txq, &twq, &txs, &tws, NULL, &ty, stream) != LLMK_SUCCESS)) {
    fprintf(stderr, "llmk: %s\n", llmk_last_error());
    ok = 0;
  }
#ifdef WITH_CUDA
  if (ok && gpu && cudaDeviceSynchronize() != cudaSuccess) ok = 0;
#endif
  ok = ok && fetch(gpu, y, dy, sizeof(uint16_t) * M * N) && fetch(gpu, xq, dxq, M * K) && fetch(gpu, wq, dwq, N * K) &&
       fetch(gpu, xs, dxs, sizeof(float) * M) && fetch(gpu, ws, dws, sizeof(float) * N);
  release(gpu, dx), release(gpu, dw), release(gpu, dxq), release(gpu, dwq), release(gpu, dxs), release(gpu, dws);
  release(gpu, dy);
  return ok;
}

/* ||a - b|| / ||b|| over M x N bf16 values. */
static double rel_err(const uint16_t *a, const double *b) {
  double num = 0, den = 0;
  for (int i = 0; i < M * N; i++) {
    const double d = llmk_bf16_to_float(a[i]) - b[i];
    num += d * d, den += b[i] * b[i];
  }
  return sqrt(num / den);
}

int main(void) {
  uint16_t *x = malloc(sizeof(uint16_t) * M * K), *w = malloc(sizeof(uint16_t) * N * K);
  uint16_t *y = malloc(sizeof(uint16_t) * M * N), *y_cpu = malloc(sizeof(uint16_t) * M * N);
  uint8_t *xq = malloc(M * K), *wq = malloc(N * K);
  float *xs = malloc(sizeof(float) * M), *ws = malloc(sizeof(float) * N);
  double *exact = malloc(sizeof(double) * M * N);
  if (!x || !w || !y || !y_cpu || !xq || !wq || !xs || !ws || !exact) return 1;
  unsigned s = 12345;
  for (int i = 0; i < M * K; i++) s = s * 1103515245u + 12345u, x[i] = llmk_float_to_bf16((float)(s >> 8) / 16777216.0f - 0.5f);
  for (int i = 0; i < N * K; i++) s = s * 1103515245u + 12345u, w[i] = llmk_float_to_bf16(((float)(s >> 8) / 16777216.0f - 0.5f) / 16);

  int gpu = 0;
#ifdef WITH_CUDA
  int devices = 0;
  llmk_cuda_device_count(&devices);
  llmk_device_info info = LLMK_DEVICE_INFO_INIT;
  gpu = devices > 0 && llmk_cuda_device_info(0, &info) == LLMK_SUCCESS && info.supported;
#endif
  llmk_handle cpu, h;
  if (llmk_create_cpu(&cpu) != LLMK_SUCCESS || (gpu && llmk_create_cuda(0, &h) != LLMK_SUCCESS)) {
    fprintf(stderr, "llmk: %s\n", llmk_last_error());
    return 1;
  }
  if (!gpu) h = cpu;
  printf("llmk %d.%d.%d, %s backend\n", llmk_version() / 10000, llmk_version() / 100 % 100, llmk_version() % 100,
         gpu ? "CUDA" : "CPU");
  if (!run(h, gpu, x, w, y, xq, wq, xs, ws)) return 1;

  /* The exact product of what was quantized: the codes times their scales. */
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++) {
      double acc = 0;
      for (int k = 0; k < K; k++)
        acc += (double)llmk_fp8_to_float(xq[m * K + k], LLMK_E4M3) * llmk_fp8_to_float(wq[n * K + k], LLMK_E4M3);
      exact[m * N + n] = acc * xs[m] * ws[n];
    }
  const double err = rel_err(y, exact);
  printf("y = fp8(x) fp8(w)^T, %dx%dx%d: relative error %.2e against the exact product of the codes\n", M, N, K, err);
  int ok = err < 1e-2; /* bf16 output rounding, and the GPU's fast FP8 accumulation */
  if (gpu) {
    uint8_t *cq = malloc(M * K), *cwq = malloc(N * K);
    float *cxs = malloc(sizeof(float) * M), *cws = malloc(sizeof(float) * N);
    ok = ok && cq && cwq && cxs && cws && run(cpu, 0, x, w, y_cpu, cq, cwq, cxs, cws);
    /* quantization is bitwise the same on both backends */
    ok = ok && !memcmp(cq, xq, M * K) && !memcmp(cwq, wq, N * K) && !memcmp(cxs, xs, sizeof(float) * M) &&
         !memcmp(cws, ws, sizeof(float) * N);
    for (int i = 0; ok && i < M * N; i++) exact[i] = llmk_bf16_to_float(y_cpu[i]);
    if (ok) printf("against the CPU backend's y: relative error %.2e\n", rel_err(y, exact));
    ok = ok && rel_err(y, exact) < 1e-2;
    free(cq), free(cwq), free(cxs), free(cws);
    llmk_destroy(h);
  }
  llmk_destroy(cpu);
  free(x), free(w), free(y), free(y_cpu), free(xq), free(wq), free(xs), free(ws), free(exact);
  printf("%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
