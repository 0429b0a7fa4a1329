/* Kernel lab for per-row FP8 quantization of large bf16 matrices (16384 x
 * 8192 is the measured shape), in the manner of llm.c's dev/cuda: numbered
 * versions, each checked bitwise against llmk's CPU reference on fresh random
 * data with the output poisoned, then timed the way `llmk bench` times (CUDA
 * events, L2 flushed by a 256 MiB memset before each call, median) and as a
 * graph of back-to-back calls. Beside them, the ceilings of this access
 * pattern:
 *
 *   copy      cudaMemcpyAsync moving the same bytes (read + write)
 *   read      a read-only stream of x (16-byte loads)
 *   r2w1      read x, write one byte per element (16-byte stores), no
 *             reduction: the traffic of a one-pass quantizer, 2:1 read:write
 *   empty     an empty kernel between the events: the fixed cost per call
 *
 * Versions:
 *   1  the library as it is (llmk_quantize_fp8, one 256-thread CTA per row)
 *   2  persistent CTAs, one row per CTA-iteration, the next row's loads
 *      issued before this row's reduction (register double buffer)
 *   3  version 2 with 16-byte stores (each thread owns adjacent vector pairs)
 *   4  version 1's one-row-per-CTA grid with version 3's 16-byte stores
 *   5  version 4 held to <= 48 registers (5 CTAs per SM instead of 4)
 *   6  version 4 with 128-thread teams of 8 vectors per thread
 *   7  version 4 with the L2 256-byte prefetch hint on loads
 *   8  version 4 with an L2 evict-first policy on loads
 *
 * Build: `make lab` (see bench/gpu_run.sh, step "lab"); results in
 * docs/PERFORMANCE_LOG.md, Quantization.
 * Usage: quant_rows_lab [M] [K] [ctas_per_sm for v2/v3 (0 = sweep 2..8)]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vector>
#include <algorithm>

#include "cuda/common.cuh"
#include "llmk.h"

#define CK(call)                                                                   \
  do {                                                                             \
    cudaError_t e_ = (call);                                                       \
    if (e_ != cudaSuccess) {                                                       \
      fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      exit(1);                                                                     \
    }                                                                              \
  } while (0)

typedef __nv_bfloat16 bf16;
static const int THREADS = 256; /* one team of 256 threads per row, as the library */
static const int VPT = 4;       /* 16-byte vectors per thread: K = 8192 */

/* ---- the ceilings -------------------------------------------------------- */

__global__ void k_empty() {}

__global__ void k_read(const uint4 *x, int64_t n, unsigned *sink) {
  unsigned acc = 0;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    uint4 u = __ldg(x + i);
    acc ^= u.x ^ u.y ^ u.z ^ u.w;
  }
  if (acc == 0x12345678u) sink[0] = acc; /* keeps the loads alive */
}

/* 32 bytes of bf16 in, their 16 high bytes out: the traffic of quantization. */
__global__ void k_r2w1(const uint4 *x, uint4 *q, int64_t n2) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n2; i += (int64_t)gridDim.x * blockDim.x) {
    uint4 u = __ldg(x + 2 * i), w = __ldg(x + 2 * i + 1);
    q[i] = make_uint4(__byte_perm(u.x, u.y, 0x7531), __byte_perm(u.z, u.w, 0x7531), __byte_perm(w.x, w.y, 0x7531),
                      __byte_perm(w.z, w.w, 0x7531));
  }
}

/* ---- shared pieces of the versions ---------------------------------------- */

/* Max over a CTA of TPR threads (one team). */
template <int TPR>
__device__ __forceinline__ float cta_max(float v, float *red) {
  v = llmk_group_max(v, 32);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
  __syncthreads();
  float m = red[0];
#pragma unroll
  for (int i = 1; i < TPR / 32; i++) m = fmaxf(m, red[i]);
  return m;
}

__device__ __forceinline__ uint2 quant8(const uint4 &u, float inv) {
  float f[8];
  llmk_unpack<bf16>(u, f);
  uint16_t p[4];
#pragma unroll
  for (int i = 0; i < 4; i++) p[i] = llmk_cvt_fp8x2<false>(__fmul_rn(f[2 * i], inv), __fmul_rn(f[2 * i + 1], inv));
  return make_uint2(p[0] | ((uint32_t)p[1] << 16), p[2] | ((uint32_t)p[3] << 16));
}

/* Vector index of this thread's j-th vector: strided (t + j * TPR) or in
 * adjacent pairs (2t, 2t+1, then + 2 * TPR), which allows 16-byte stores. */
template <int TPR, bool PAIRS>
__device__ __forceinline__ int vec_index(int j) {
  return PAIRS ? (j / 2) * 2 * TPR + 2 * threadIdx.x + (j % 2) : threadIdx.x + j * TPR;
}

/* Load flavours: 0 plain __ldg; 1 with the L2 256-byte prefetch hint; 2 with
 * an L2 evict-first policy (x is read once). */
template <int LD>
__device__ __forceinline__ uint4 ld16(const uint4 *p) {
  uint4 u;
  if (LD == 1) {
    asm volatile("ld.global.nc.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(u.x), "=r"(u.y), "=r"(u.z), "=r"(u.w) : "l"(p));
  } else if (LD == 2) {
    uint64_t pol;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
    asm volatile("ld.global.nc.L2::cache_hint.v4.u32 {%0,%1,%2,%3}, [%4], %5;"
                 : "=r"(u.x), "=r"(u.y), "=r"(u.z), "=r"(u.w) : "l"(p), "l"(pol));
  } else {
    u = __ldg(p);
  }
  return u;
}

template <int TPR, int VPT, bool PAIRS, int LD>
__device__ __forceinline__ void load_row(const bf16 *x, int64_t r, int K, uint4 (&v)[VPT]) {
  const uint4 *xr = reinterpret_cast<const uint4 *>(x + r * K);
#pragma unroll
  for (int j = 0; j < VPT; j++) v[j] = ld16<LD>(xr + vec_index<TPR, PAIRS>(j));
}

template <int TPR, int VPT, bool PAIRS>
__device__ __forceinline__ void quant_row(uint8_t *q, float *scale, int64_t r, int K, const uint4 (&v)[VPT],
                                          float *red) {
  float amax = 0.0f;
#pragma unroll
  for (int j = 0; j < VPT; j++) amax = llmk_raw_amax<bf16>(v[j], amax);
  amax = cta_max<TPR>(amax, red);
  const float s = llmk_scale_from_amax<false>(amax, nullptr);
  const float inv = __fdiv_rn(1.0f, s);
  if (threadIdx.x == 0) scale[r] = s;
  uint8_t *qr = q + r * K;
  if (PAIRS) {
#pragma unroll
    for (int j = 0; j < VPT; j += 2) {
      uint2 a = quant8(v[j], inv), b = quant8(v[j + 1], inv);
      *reinterpret_cast<uint4 *>(qr + 8 * vec_index<TPR, true>(j)) = make_uint4(a.x, a.y, b.x, b.y);
    }
  } else {
#pragma unroll
    for (int j = 0; j < VPT; j++) *reinterpret_cast<uint2 *>(qr + 8 * vec_index<TPR, false>(j)) = quant8(v[j], inv);
  }
}

/* v2 / v3: persistent CTAs walk rows blockIdx.x, + gridDim.x, ...; the next
 * row's loads are in flight while this row reduces and stores. */
template <bool PAIRS>
__global__ void __launch_bounds__(THREADS, 4) k_persist(const bf16 *x, uint8_t *q, float *scale, int M, int K) {
  __shared__ float red[2][THREADS / 32];
  uint4 cur[VPT], nxt[VPT];
  int r = blockIdx.x;
  if (r < M) load_row<THREADS, VPT, PAIRS, 0>(x, r, K, cur);
  for (int it = 0; r < M; r += gridDim.x, it++) {
    const int rn = r + gridDim.x;
    if (rn < M) load_row<THREADS, VPT, PAIRS, 0>(x, rn, K, nxt);
    quant_row<THREADS, VPT, PAIRS>(q, scale, r, K, cur, red[it & 1]);
#pragma unroll
    for (int j = 0; j < VPT; j++) cur[j] = nxt[j];
  }
}

/* v4..v8: one row per CTA of TPR threads, VPT vectors each, 16-byte stores;
 * MINB is the launch-bounds occupancy floor (0: none). */
template <int TPR, int VPT, int MINB, int LD>
__global__ void __launch_bounds__(TPR, MINB) k_onerow(const bf16 *x, uint8_t *q, float *scale, int K) {
  static_assert(TPR * VPT * 8 == 8192, "lab kernels are for K = 8192");
  __shared__ float red[TPR / 32];
  uint4 v[VPT];
  load_row<TPR, VPT, true, LD>(x, blockIdx.x, K, v);
  quant_row<TPR, VPT, true>(q, scale, blockIdx.x, K, v, red);
}

/* ---- harness --------------------------------------------------------------- */

struct ctx {
  int M, K, sms, ctas_per_sm;
  bf16 *x;
  uint8_t *q, *q2;
  float *s;
  void *flush;
  llmk_handle h;
  cudaStream_t st;
};

typedef void (*run_fn)(ctx &);

static void run_v1(ctx &c) {
  llmk_quantize_desc d = LLMK_QUANTIZE_DESC_INIT;
  d.scaling = LLMK_SCALING_ROW;
  llmk_tensor x = llmk_tensor_2d(c.x, LLMK_BF16, c.M, c.K, c.K), q = llmk_tensor_2d(c.q, LLMK_E4M3, c.M, c.K, c.K),
              s = llmk_tensor_1d(c.s, LLMK_F32, c.M);
  if (llmk_quantize_fp8(c.h, &d, &x, &q, &s, c.st)) {
    fprintf(stderr, "v1: %s\n", llmk_last_error());
    exit(1);
  }
}
static void run_v2(ctx &c) {
  k_persist<false><<<std::min(c.M, c.sms * c.ctas_per_sm), THREADS, 0, c.st>>>(c.x, c.q, c.s, c.M, c.K);
}
static void run_v3(ctx &c) {
  k_persist<true><<<std::min(c.M, c.sms * c.ctas_per_sm), THREADS, 0, c.st>>>(c.x, c.q, c.s, c.M, c.K);
}
template <int TPR, int VPT, int MINB, int LD>
static void run_onerow(ctx &c) {
  k_onerow<TPR, VPT, MINB, LD><<<c.M, TPR, 0, c.st>>>(c.x, c.q, c.s, c.K);
}
#define run_v4 run_onerow<256, 4, 1, 0> /* 49 registers: 4 CTAs per SM */
#define run_v5 run_onerow<256, 4, 5, 0> /* <= 48 registers: 5 CTAs per SM, not 4 */
#define run_v6 run_onerow<128, 8, 6, 0> /* 128-thread teams, 8 vectors each */
#define run_v7 run_onerow<256, 4, 1, 1> /* L2 256-byte prefetch hint */
#define run_v8 run_onerow<256, 4, 1, 2> /* L2 evict-first loads */
static void run_empty(ctx &c) { k_empty<<<1, 32, 0, c.st>>>(); }
static void run_read(ctx &c) {
  k_read<<<c.sms * 8, 256, 0, c.st>>>(reinterpret_cast<const uint4 *>(c.x), (int64_t)c.M * c.K / 8,
                                      reinterpret_cast<unsigned *>(c.s));
}
static void run_r2w1(ctx &c) {
  k_r2w1<<<c.sms * 8, 256, 0, c.st>>>(reinterpret_cast<const uint4 *>(c.x), reinterpret_cast<uint4 *>(c.q),
                                      (int64_t)c.M * c.K / 16);
}
/* The same bytes as quantization (3MK) through the copy engine path. */
static void run_copy(ctx &c) {
  CK(cudaMemcpyAsync(c.q2, c.x, (size_t)c.M * c.K * 3 / 2, cudaMemcpyDeviceToDevice, c.st));
}

/* `flushes` memsets before each call: with two, the GPU has ~180 us of
 * queued work when the host issues the call, so host-side cost of the
 * call cannot show in the events. */
static double time_events(ctx &c, run_fn f, int reps, int flushes = 1) {
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  for (int i = 0; i < 3; i++) f(c);
  std::vector<double> t;
  for (int i = 0; i < reps; i++) {
    for (int k = 0; k < flushes; k++) CK(cudaMemsetAsync(c.flush, (i + k) & 0xFF, 256u << 20, c.st));
    CK(cudaEventRecord(e0, c.st));
    f(c);
    CK(cudaEventRecord(e1, c.st));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    t.push_back(ms * 1e3);
  }
  CK(cudaGetLastError());
  std::sort(t.begin(), t.end());
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return t[t.size() / 2];
}

static double time_graph(ctx &c, run_fn f, int calls) {
  cudaGraph_t g;
  cudaGraphExec_t ge;
  CK(cudaStreamBeginCapture(c.st, cudaStreamCaptureModeGlobal));
  for (int i = 0; i < calls; i++) f(c);
  CK(cudaStreamEndCapture(c.st, &g));
  CK(cudaGraphInstantiate(&ge, g, 0));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  std::vector<double> t;
  for (int r = 0; r < 5; r++) {
    CK(cudaGraphLaunch(ge, c.st));
    CK(cudaEventRecord(e0, c.st));
    CK(cudaGraphLaunch(ge, c.st));
    CK(cudaEventRecord(e1, c.st));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    t.push_back(ms * 1e3 / calls);
  }
  std::sort(t.begin(), t.end());
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return t[t.size() / 2];
}

/* Bitwise check of q and scales against the CPU reference. */
static int check(ctx &c, run_fn f, const char *name, const std::vector<uint8_t> &qref,
                 const std::vector<float> &sref) {
  const size_t n = (size_t)c.M * c.K;
  CK(cudaMemset(c.q, 0xCD, n));
  CK(cudaMemset(c.s, 0xCD, (size_t)c.M * 4));
  f(c);
  CK(cudaStreamSynchronize(c.st));
  CK(cudaGetLastError());
  std::vector<uint8_t> q(n);
  std::vector<float> s(c.M);
  CK(cudaMemcpy(q.data(), c.q, n, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(s.data(), c.s, (size_t)c.M * 4, cudaMemcpyDeviceToHost));
  size_t bad = 0, first = n;
  for (size_t i = 0; i < n; i++)
    if (q[i] != qref[i]) bad++, first = std::min(first, i);
  size_t sbad = 0;
  for (int i = 0; i < c.M; i++) sbad += memcmp(&s[i], &sref[i], 4) != 0;
  printf("check %-6s %s (%zu code mismatches, first at %zu; %zu scale mismatches)\n", name,
         bad || sbad ? "FAIL" : "ok", bad, first, sbad);
  return bad || sbad;
}

int main(int argc, char **argv) {
  ctx c;
  c.M = argc > 1 ? atoi(argv[1]) : 16384;
  c.K = argc > 2 ? atoi(argv[2]) : 8192;
  const int sweep = argc > 3 ? atoi(argv[3]) : 0;
  if (c.K != THREADS * VPT * 8) {
    fprintf(stderr, "the lab kernels are specialised for K = %d\n", THREADS * VPT * 8);
    return 2;
  }
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  c.sms = prop.multiProcessorCount;
  printf("device: %s, %d SMs; M = %d, K = %d\n", prop.name, c.sms, c.M, c.K);
  const size_t n = (size_t)c.M * c.K;
  CK(cudaMalloc(&c.x, n * 2));
  CK(cudaMalloc(&c.q, n));
  CK(cudaMalloc(&c.q2, n * 3 / 2));
  CK(cudaMalloc(&c.s, (size_t)c.M * 4));
  CK(cudaMalloc(&c.flush, 256u << 20));
  CK(cudaStreamCreate(&c.st));
  if (llmk_create_cuda(0, &c.h)) {
    fprintf(stderr, "%s\n", llmk_last_error());
    return 1;
  }

  /* fresh random data: normal with a sprinkle of outliers, a zero row, a NaN/Inf row */
  std::vector<uint16_t> hx(n);
  uint64_t seed = 0x9E3779B97F4A7C15ull ^ (uint64_t)time(NULL);
  for (size_t i = 0; i < n; i++) {
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    float u = (float)((seed >> 40) & 0xFFFFFF) / 16777216.0f - 0.5f;
    float v = u * ((seed & 0xFF) == 0 ? 300.0f : 3.0f);
    hx[i] = llmk_float_to_bf16(v);
  }
  for (int k = 0; k < c.K; k++) hx[(size_t)1 * c.K + k] = 0;
  hx[(size_t)2 * c.K + 5] = 0x7FC0; /* NaN */
  hx[(size_t)2 * c.K + 9] = 0xFF80; /* -Inf */
  CK(cudaMemcpy(c.x, hx.data(), n * 2, cudaMemcpyHostToDevice));

  std::vector<uint8_t> qref(n);
  std::vector<float> sref(c.M);
  {
    llmk_handle cpu;
    llmk_create_cpu(&cpu);
    llmk_quantize_desc d = LLMK_QUANTIZE_DESC_INIT;
    d.scaling = LLMK_SCALING_ROW;
    llmk_tensor x = llmk_tensor_2d(hx.data(), LLMK_BF16, c.M, c.K, c.K),
                q = llmk_tensor_2d(qref.data(), LLMK_E4M3, c.M, c.K, c.K), s = llmk_tensor_1d(sref.data(), LLMK_F32, c.M);
    if (llmk_quantize_fp8(cpu, &d, &x, &q, &s, NULL)) {
      fprintf(stderr, "cpu: %s\n", llmk_last_error());
      return 1;
    }
    llmk_destroy(cpu);
  }

  c.ctas_per_sm = 8;
  int fails = check(c, run_v1, "v1", qref, sref) + check(c, run_v2, "v2", qref, sref) +
              check(c, run_v3, "v3", qref, sref) + check(c, run_v4, "v4", qref, sref) +
              check(c, run_v5, "v5", qref, sref) + check(c, run_v6, "v6", qref, sref) +
              check(c, run_v7, "v7", qref, sref) + check(c, run_v8, "v8", qref, sref);
  if (fails) return 1;

  const double bytes = 3.0 * n + 4.0 * c.M;
  printf("\n%-26s %10s %10s %9s %9s\n", "version", "events us", "graph us", "GB/s(ev)", "GB/s(gr)");
  auto row = [&](const char *name, run_fn f, double b) {
    double te = time_events(c, f, 40), tg = time_graph(c, f, 20);
    printf("%-26s %10.2f %10.2f %9.0f %9.0f\n", name, te, tg, b / te / 1e3, b / tg / 1e3);
  };
  row("empty kernel", run_empty, 0);
  row("ceiling: copy 3MK bytes", run_copy, 3.0 * n);
  row("ceiling: read x only", run_read, 2.0 * n);
  row("ceiling: r2w1 stream", run_r2w1, 3.0 * n);
  /* host cost of one call, launches queued without waiting */
  for (int v = 0; v < 2; v++) {
    run_fn f = v ? run_v4 : run_v1;
    CK(cudaStreamSynchronize(c.st));
    timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 200; i++) f(c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CK(cudaStreamSynchronize(c.st));
    printf("host us per call, %s: %.2f\n", v ? "v4 launch" : "v1 llmk_quantize_fp8",
           ((t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) * 1e-3) / 200);
  }
  printf("events with two flushes: v1 %.2f us, v4 %.2f us\n", time_events(c, run_v1, 40, 2),
         time_events(c, run_v4, 40, 2));
  for (int pass = 0; pass < 2; pass++) { /* twice: the spread between passes is the noise */
    printf("-- pass %d\n", pass + 1);
    row("v1 library", run_v1, bytes);
    for (int k = sweep ? sweep : 2; k <= (sweep ? sweep : 4); k += 2) {
      c.ctas_per_sm = k;
      char name[64];
      snprintf(name, sizeof name, "v2 persistent %d/SM", k);
      row(name, run_v2, bytes);
      snprintf(name, sizeof name, "v3 persist+st16 %d/SM", k);
      row(name, run_v3, bytes);
    }
    row("v4 one-row+st16", run_v4, bytes);
    row("v5 v4, 6 CTAs/SM", run_v5, bytes);
    row("v6 v4, 128 thr x 8 vec", run_v6, bytes);
    row("v7 v4, L2::256B loads", run_v7, bytes);
    row("v8 v4, evict-first loads", run_v8, bytes);
  }
  llmk_destroy(c.h);
  return 0;
}
