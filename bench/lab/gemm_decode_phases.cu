// Where a decode GEMM's time goes: llmk's own K-split and swapped tiles
// (gemm_sm90.cuh) timed in a CUDA-graph chain of calls on rotating weights,
// the way the benchmarks time them, with timestamps taken inside every CTA of
// every call at the kernel's phase probes (LLMK_GEMM_PROBE_AT): entry, past
// griddepcontrol.wait, first K slice landed, main loop done, partials visible
// (K split), epilogue stored, exit. Beside it, the same chain of an empty
// kernel with the same launch (shared memory, cluster, programmatic
// dependent launch): the floor of launching. One JSON line per case:
//   us           graph time per call
//   null_us      the empty kernel's per-call time (the launch floor)
//   span_us      a call's first CTA entry to its last CTA exit (median call)
//   gap_us       one call's last exit to the next call's first entry
//                (negative: they overlap)
//   wait_us      entry to past griddepcontrol.wait (the previous call's tail)
//   fill_us      past the wait to the first K slice in shared memory
//   main_us      the rest of the main loop
//   reduce_us    (K split) the partial tile parked and the cluster synced
//   epi_us       the distributed-shared-memory sum and the epilogue's stores
//   exit_us      the last cluster barrier
// (medians over the CTAs of the middle calls; skew_us: the spread of the
// CTAs' entries in one call) and hbm_floor_us = weight bytes / the DRAM peak.
//
//   gemm_decode_phases [--calls 40] [--shapes M:N:K,...] [--cases cfg:splits,...]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <cuda_runtime.h>

// The probed kernel gets its own name, so that it is never confused with the
// library's instantiation of the same template (which has no probes).
#define llmk_gemm_fp8_kernel llmk_gemm_fp8_kernel_probed

constexpr int MAX_CTAS = 1024, MAX_CALLS = 64, POINTS = 7;
__device__ unsigned long long g_probe[MAX_CALLS * MAX_CTAS * POINTS];
__device__ unsigned long long g_y_base;
__device__ long long g_y_stride;

// Point 0 and 1 are the producer thread's (thread 0), the others the first
// consumer's (thread 128). A call is told apart by its output buffer: every
// call of the chain writes its own.
__device__ __forceinline__ void lab_probe(int point, const void *y) {
  if (threadIdx.x != (point <= 1 ? 0u : 128u)) return;
  const long long call = ((long long)(unsigned long long)y - (long long)g_y_base) / g_y_stride;
  if (call < 0 || call >= MAX_CALLS || blockIdx.x >= MAX_CTAS) return;
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  g_probe[(call * MAX_CTAS + blockIdx.x) * POINTS + point] = t;
}
#define LLMK_GEMM_PROBE_AT(point) lab_probe(point, a.y)

#include "cuda/gemm_kernels.cuh"
#include "cuda/gemm_model.h"

#define CK(x)                                                                                  \
  do {                                                                                         \
    cudaError_t e_ = (x);                                                                      \
    if (e_ != cudaSuccess) {                                                                   \
      fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));       \
      exit(1);                                                                                 \
    }                                                                                          \
  } while (0)

__global__ void null_kernel() {
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
}

typedef void (*kernel_fn)(CUtensorMap, CUtensorMap, CUtensorMap, llmk_gemm_args);

struct variant {
  const char *name;
  int bm, bn, bytes, threads;
  kernel_fn k;
};

template <int BM, int BN, int STAGES, int MINB = 1, bool W_EARLY = false>
static variant make(const char *name) {
  using L = llmk_gemm_smem<BM, BN, STAGES, false, true, false>;
  return {name, BM, BN, L::BYTES, 128 * (1 + L::CONSUMERS),
          llmk_gemm_fp8_kernel<BM, BN, STAGES, false, false, true, true, false, false, false, MINB, W_EARLY>};
}

// The swapped decode configurations of gemm_configs.def (fast accumulation),
// and shallower rings built for two CTAs per SM (*_2cta: not in the list),
// whose next call can start beside the previous one's tail, and (*_early)
// the list's tiles loading their first ring of W slices before the
// dependency wait, so the fill overlaps the previous call's tail.
static std::vector<variant> variants() {
  return {make<64, 16, 16>("swap_64x16_s16"),          make<128, 16, 11>("swap_128x16_s11"),
          make<64, 32, 12>("swap_64x32_s12"),          make<128, 32, 10>("swap_128x32_s10"),
          make<64, 64, 12>("swap_64x64_s12"),          make<128, 64, 8>("swap_128x64_s8"),
          make<64, 16, 8, 2>("swap_64x16_s8_2cta"),    make<64, 16, 10, 2>("swap_64x16_s10_2cta"),
          make<64, 32, 8, 2>("swap_64x32_s8_2cta"),
          make<64, 16, 16, 1, true>("swap_64x16_s16_early"), make<128, 16, 11, 1, true>("swap_128x16_s11_early"),
          make<64, 64, 12, 1, true>("swap_64x64_s12_early")};
}

static double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct launch_cfg {
  cudaLaunchConfig_t cfg;
  cudaLaunchAttribute at[2];
};

static void make_launch(launch_cfg &l, int grid, int threads, int bytes, int cluster, cudaStream_t st) {
  l = launch_cfg{};
  l.at[0].id = cudaLaunchAttributeClusterDimension;
  l.at[0].val.clusterDim.x = (unsigned)cluster, l.at[0].val.clusterDim.y = 1, l.at[0].val.clusterDim.z = 1;
  l.at[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  l.at[1].val.programmaticStreamSerializationAllowed = 1;
  l.cfg.gridDim = dim3((unsigned)grid), l.cfg.blockDim = dim3((unsigned)threads), l.cfg.dynamicSmemBytes = bytes;
  l.cfg.stream = st, l.cfg.attrs = l.at, l.cfg.numAttrs = 2;
}

// Per-call time of `body` (a chain of `calls` launches) captured in a graph.
template <typename F>
static double graph_us(cudaStream_t st, int calls, F body) {
  cudaGraph_t g;
  cudaGraphExec_t ge;
  CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  body();
  CK(cudaStreamEndCapture(st, &g));
  CK(cudaGraphInstantiate(&ge, g, 0));
  CK(cudaGraphLaunch(ge, st));
  CK(cudaStreamSynchronize(st));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  const int reps = 5;
  CK(cudaEventRecord(e0, st));
  for (int r = 0; r < reps; r++) CK(cudaGraphLaunch(ge, st));
  CK(cudaEventRecord(e1, st));
  CK(cudaEventSynchronize(e1));
  float ms = 0;
  CK(cudaEventElapsedTime(&ms, e0, e1));
  CK(cudaGraphExecDestroy(ge));
  CK(cudaGraphDestroy(g));
  CK(cudaEventDestroy(e0));
  CK(cudaEventDestroy(e1));
  return 1e3 * ms / (reps * calls);
}

int main(int argc, char **argv) {
  int calls = 40;
  std::string shapes = "1:4096:4096,16:2304:16384,1:3584:4736,16:3072:5120,64:576:7168,1:8192:8192";
  std::string cases = "swap_64x16_s16:1,swap_64x16_s16:2,swap_64x16_s16:3,swap_128x16_s11:1,swap_128x16_s11:2,"
                      "swap_64x64_s12:2,swap_64x64_s12:4,swap_64x16_s16_early:1,swap_64x16_s16_early:2,"
                      "swap_64x16_s16_early:3,swap_128x16_s11_early:1,swap_128x16_s11_early:2,"
                      "swap_64x64_s12_early:2,swap_64x64_s12_early:4";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--calls")) calls = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--shapes")) shapes = argv[i + 1];
    else if (!strcmp(argv[i], "--cases")) cases = argv[i + 1];
    else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
  }
  if (calls < 4 || calls > MAX_CALLS) { fprintf(stderr, "--calls: 4..%d\n", MAX_CALLS); return 2; }
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) { fprintf(stderr, "no CUDA device\n"); return 1; }
  llmk_gemm_device dev;
  llmk_gemm_device_query(0, prop.multiProcessorCount, &dev);
  cudaStream_t st;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  const std::vector<variant> vs = variants();
  CK(cudaFuncSetAttribute(null_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024));
  CK(cudaFuncSetAttribute(null_kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  for (const variant &v : vs) {
    CK(cudaFuncSetAttribute(v.k, cudaFuncAttributeMaxDynamicSharedMemorySize, v.bytes));
    CK(cudaFuncSetAttribute(v.k, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  }
  std::vector<unsigned long long> probe((size_t)MAX_CALLS * MAX_CTAS * POINTS);

  for (size_t p0 = 0; p0 < shapes.size();) {
    size_t p1 = shapes.find(',', p0);
    if (p1 == std::string::npos) p1 = shapes.size();
    int M, N, K;
    if (sscanf(shapes.substr(p0, p1 - p0).c_str(), "%d:%d:%d", &M, &N, &K) != 3) { fprintf(stderr, "bad shape\n"); return 2; }
    p0 = p1 + 1;
    // weights rotated past L2: at least 256 MB in all, at most `calls` copies
    const size_t wbytes = (size_t)N * K;
    int copies = (int)std::min<size_t>(calls, std::max<size_t>(2, (256u << 20) / wbytes + 1));
    uint8_t *x, *w;
    float *xs, *ws;
    __nv_bfloat16 *y;
    CK(cudaMalloc(&x, (size_t)M * K));
    CK(cudaMalloc(&w, wbytes * copies));
    CK(cudaMalloc(&xs, M * 4));
    CK(cudaMalloc(&ws, N * 4));
    const long long ystride = ((long long)M * N * 2 + 255) / 256 * 256;
    CK(cudaMalloc(&y, ystride * calls));
    CK(cudaMemset(x, 0x38, (size_t)M * K)); /* 1.0 in e4m3 */
    CK(cudaMemset(w, 0x30, wbytes * copies)); /* 0.5 */
    std::vector<float> ones(std::max(M, N), 1.0f);
    CK(cudaMemcpy(xs, ones.data(), M * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(ws, ones.data(), N * 4, cudaMemcpyHostToDevice));
    const unsigned long long ybase = (unsigned long long)y;
    CK(cudaMemcpyToSymbol(g_y_base, &ybase, sizeof ybase));
    CK(cudaMemcpyToSymbol(g_y_stride, &ystride, sizeof ystride));

    for (size_t c0 = 0; c0 < cases.size();) {
      size_t c1 = cases.find(',', c0);
      if (c1 == std::string::npos) c1 = cases.size();
      const std::string cs = cases.substr(c0, c1 - c0);
      c0 = c1 + 1;
      const size_t colon = cs.find(':');
      const std::string name = cs.substr(0, colon);
      const int splits = colon == std::string::npos ? 1 : atoi(cs.c_str() + colon + 1);
      const variant *v = nullptr;
      for (const variant &u : vs)
        if (name == u.name) v = &u;
      if (!v || splits < 1 || splits > LLMK_GEMM_MAX_SPLITS) { fprintf(stderr, "unknown case %s\n", cs.c_str()); continue; }
      if (M > v->bn) continue; /* the tile holds at most BN tokens */
      const int nk = (K + 127) / 128;
      if (splits > nk) continue;
      llmk_gemm_args a;
      memset(&a, 0, sizeof a);
      a.M = M, a.N = N, a.K = K, a.xs = xs, a.ws = ws, a.row_scales = 1, a.x_bm = 1, a.planes = 1, a.ldy = N;
      a.tiles_m = (N + v->bm - 1) / v->bm, a.tiles_n = (M + v->bn - 1) / v->bn, a.group_m = 8;
      const int grid = a.tiles_m * a.tiles_n * splits;
      if (grid > MAX_CTAS) continue;
      if (llmk_active_clusters((const void *)v->k, v->threads, v->bytes, splits) <= 0) continue;
      std::vector<CUtensorMap> mw(copies);
      CUtensorMap mx, my;
      memset(&my, 0, sizeof my);
      if (llmk_gemm_make_map(&mx, CU_TENSOR_MAP_DATA_TYPE_UINT8, x, M, K, K, v->bn, 128, "x", "lab") ||
          [&] {
            for (int i = 0; i < copies; i++)
              if (llmk_gemm_make_map(&mw[i], CU_TENSOR_MAP_DATA_TYPE_UINT8, w + wbytes * i, N, K, K, v->bm, 128, "w",
                                     "lab"))
                return true;
            return false;
          }()) {
        fprintf(stderr, "tensor maps failed\n");
        return 1;
      }
      launch_cfg l, ln;
      make_launch(l, grid, v->threads, v->bytes, splits, st);
      make_launch(ln, grid, v->threads, v->bytes, splits, st);
      const double us = graph_us(st, calls, [&] {
        for (int i = 0; i < calls; i++) {
          llmk_gemm_args ai = a;
          ai.y = (__nv_bfloat16 *)((char *)y + ystride * i);
          CK(cudaLaunchKernelEx(&l.cfg, v->k, mx, mw[i % copies], my, ai));
        }
      });
      const double null_us = graph_us(st, calls, [&] {
        for (int i = 0; i < calls; i++) CK(cudaLaunchKernelEx(&ln.cfg, null_kernel));
      });
      CK(cudaMemcpyFromSymbol(probe.data(), g_probe, probe.size() * sizeof probe[0]));
      // the output: every element sum_k 1 * 0.5 = K / 2 (exact in bf16 for these K)
      __nv_bfloat16 y0;
      CK(cudaMemcpy(&y0, y, 2, cudaMemcpyDeviceToHost));
      const bool ok = __bfloat162float(y0) == 0.5f * K;
      // the middle calls (the first and last see no neighbour on one side)
      std::vector<double> span, gap, wait, fill, mainl, red, epi, ex, skew;
      for (int c = 2; c < calls - 2; c++) {
        const unsigned long long *pc = &probe[(size_t)c * MAX_CTAS * POINTS];
        const unsigned long long *pn = &probe[(size_t)(c + 1) * MAX_CTAS * POINTS];
        unsigned long long first = ~0ull, last = 0, first_e = ~0ull, next_first = ~0ull;
        for (int b = 0; b < grid; b++) {
          const unsigned long long *t = pc + (size_t)b * POINTS;
          first = std::min(first, t[0]), last = std::max(last, t[6]), first_e = std::min(first_e, t[0]);
          next_first = std::min(next_first, pn[(size_t)b * POINTS]);
          wait.push_back((double)(t[1] - t[0]) / 1e3), fill.push_back(((double)t[2] - (double)t[1]) / 1e3);
          mainl.push_back((double)(t[3] - t[2]) / 1e3), red.push_back((double)(t[4] - t[3]) / 1e3);
          epi.push_back((double)(t[5] - t[4]) / 1e3), ex.push_back((double)(t[6] - t[5]) / 1e3);
        }
        unsigned long long last_e = 0;
        for (int b = 0; b < grid; b++) last_e = std::max(last_e, pc[(size_t)b * POINTS]);
        span.push_back((double)(last - first) / 1e3), gap.push_back(((double)next_first - (double)last) / 1e3);
        skew.push_back((double)(last_e - first_e) / 1e3);
      }
      printf("{\"device\": \"%s\", \"config\": \"%s\", \"splits\": %d, \"m\": %d, \"n\": %d, \"k\": %d, \"ctas\": %d, "
             "\"ok\": %s, \"us\": %.2f, \"null_us\": %.2f, \"hbm_floor_us\": %.2f, \"span_us\": %.2f, \"gap_us\": %.2f, "
             "\"skew_us\": %.2f, \"wait_us\": %.2f, \"fill_us\": %.2f, \"main_us\": %.2f, \"reduce_us\": %.2f, "
             "\"epi_us\": %.2f, \"exit_us\": %.2f}\n",
             prop.name, v->name, splits, M, N, K, grid, ok ? "true" : "false", us, null_us,
             (double)wbytes / (dev.hbm_gbps * 1e3), median(span), median(gap), median(skew), median(wait), median(fill),
             median(mainl), median(red), median(epi), median(ex));
      fflush(stdout);
    }
    CK(cudaFree(x));
    CK(cudaFree(w));
    CK(cudaFree(xs));
    CK(cudaFree(ws));
    CK(cudaFree(y));
  }
  return 0;
}
