/* gm x gk BLOCK quantization with gm > 1 and narrow power-of-two groups
 * (gk <= 32 vectors' worth of columns: 128x1 column blocks above all). The
 * tile kernel gives such a group one CTA and reads it with scalar loads (3%
 * of copy bandwidth for 128x1); here one CTA of 32 x 8 threads owns a band of
 * gm rows by a strip of 32 * VEC columns: each of the 32 lanes reads one
 * 16-byte vector per row, 8 row lanes step down the band. Column maxima are
 * merged over the row lanes in shared memory, group maxima over the gk
 * threads of a group (thread i <-> strip column i), and the band, held in
 * registers (RPT rows per thread), is quantized in the same pass. Bands of
 * more than 8 * 16 rows (RPT == 0) are read twice, the second time mostly
 * from L2. Output is e4m3 (docs/DESIGN.md: e5m2 for tensor and row scaling only). */
#include "cuda/common.cuh"
#include "cuda/launch.h"

#define BAND_LANES 32
#define BAND_ROWS 8
#define BAND_THREADS (BAND_LANES * BAND_ROWS)

template <typename T, int RPT>
__global__ void __launch_bounds__(BAND_THREADS) quant_bands_kernel(llmk_qargs a, int64_t strips) {
  constexpr int V = llmk_elem<T>::VEC, W = BAND_LANES * V; /* strip width in columns */
  static_assert(W <= BAND_THREADS, "one thread per strip column in the group reduction");
  __shared__ float part[BAND_ROWS][W];
  __shared__ float colinv[W];
  __shared__ float red[32];
  const int lane = threadIdx.x % BAND_LANES, ty = threadIdx.x / BAND_LANES;
  const int64_t band = blockIdx.x / strips, strip = blockIdx.x - band * strips;
  const int64_t r0 = band * a.gm, cs = strip * W, c = cs + (int64_t)lane * V;
  const int64_t rows = min(a.gm, a.M - r0);
  const T *xb = static_cast<const T *>(a.x) + r0 * a.ldx;

  float m[V];
#pragma unroll
  for (int e = 0; e < V; e++) m[e] = 0.0f;
  uint4 raw[RPT > 0 ? RPT : 1];
  if (RPT > 0) {
#pragma unroll
    for (int i = 0; i < RPT; i++) {
      const int64_t r = ty + (int64_t)i * BAND_ROWS;
      raw[i] = r < rows && c < a.K ? llmk_load_raw<T>(xb + r * a.ldx, c, a.K, a.vec_ld) : make_uint4(0, 0, 0, 0);
      float f[V];
      llmk_unpack<T>(raw[i], f);
#pragma unroll
      for (int e = 0; e < V; e++) m[e] = llmk_amax1(m[e], f[e]);
    }
  } else if (c < a.K) {
    for (int64_t r = ty; r < rows; r += BAND_ROWS) {
      float f[V];
      llmk_unpack<T>(llmk_load_raw<T>(xb + r * a.ldx, c, a.K, a.vec_ld), f);
#pragma unroll
      for (int e = 0; e < V; e++) m[e] = llmk_amax1(m[e], f[e]);
    }
  }
#pragma unroll
  for (int e = 0; e < V; e++) part[ty][lane * V + e] = m[e];
  __syncthreads();

  /* Thread i holds strip column i's max; groups are gk consecutive threads. */
  float cm = 0.0f;
  if (threadIdx.x < W) {
    cm = part[0][threadIdx.x];
#pragma unroll
    for (int k = 1; k < BAND_ROWS; k++) cm = fmaxf(cm, part[k][threadIdx.x]);
  }
  const float gmax = llmk_team_max(cm, (int)a.gk, red);
  const float s = llmk_scale_from_amax<false>(gmax, a.ub);
  const int64_t col = cs + threadIdx.x;
  if (threadIdx.x < W) {
    colinv[threadIdx.x] = __fdiv_rn(1.0f, s);
    if (col < a.K && col % a.gk == 0) a.scale[band * a.ngc + col / a.gk] = s;
  }
  __syncthreads();
  if (c >= a.K) return;

  float inv[V];
#pragma unroll
  for (int e = 0; e < V; e++) inv[e] = colinv[lane * V + e];
  uint8_t *qb = a.q + r0 * a.ldq;
  if (RPT > 0) {
#pragma unroll
    for (int i = 0; i < RPT; i++) {
      const int64_t r = ty + (int64_t)i * BAND_ROWS;
      if (r >= rows) break;
      float f[V];
      llmk_unpack<T>(raw[i], f);
#pragma unroll
      for (int e = 0; e < V; e++) f[e] = __fmul_rn(f[e], inv[e]);
      llmk_store_fp8<false, V>(qb + r * a.ldq, c, a.K, a.vec_st, f, 1.0f); /* x * 1 is exact */
    }
  } else {
    for (int64_t r = ty; r < rows; r += BAND_ROWS) {
      float f[V];
      llmk_unpack<T>(llmk_load_raw<T>(xb + r * a.ldx, c, a.K, a.vec_ld), f);
#pragma unroll
      for (int e = 0; e < V; e++) f[e] = __fmul_rn(f[e], inv[e]);
      llmk_store_fp8<false, V>(qb + r * a.ldq, c, a.K, a.vec_st, f, 1.0f);
    }
  }
}

template <typename T>
static void launch_rpt(llmk_qargs a, int rpt, int64_t strips, unsigned grid, cudaStream_t st) {
  switch (rpt) {
    case 1: quant_bands_kernel<T, 1><<<grid, BAND_THREADS, 0, st>>>(a, strips); break;
    case 2: quant_bands_kernel<T, 2><<<grid, BAND_THREADS, 0, st>>>(a, strips); break;
    case 4: quant_bands_kernel<T, 4><<<grid, BAND_THREADS, 0, st>>>(a, strips); break;
    case 8: quant_bands_kernel<T, 8><<<grid, BAND_THREADS, 0, st>>>(a, strips); break;
    case 16: quant_bands_kernel<T, 16><<<grid, BAND_THREADS, 0, st>>>(a, strips); break;
    default: quant_bands_kernel<T, 0><<<grid, BAND_THREADS, 0, st>>>(a, strips); break;
  }
}

int llmk_band_width(llmk_dtype xt) { return BAND_LANES * (int)(16 / llmk_dtype_size(xt)); }

llmk_status llmk_launch_quant_bands(llmk_dtype xt, llmk_qargs a, cudaStream_t st) {
  const int64_t w = llmk_band_width(xt), strips = (a.K + w - 1) / w, bands = (a.M + a.gm - 1) / a.gm;
  if (bands > INT32_MAX / strips)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, "llmk_quantize_fp8",
                          "too many row bands (%lld x %lld strips) for one launch", (long long)bands,
                          (long long)strips);
  const int64_t per_thread = (a.gm + BAND_ROWS - 1) / BAND_ROWS;
  const int rpt = per_thread <= 1 ? 1 : per_thread <= 2 ? 2 : per_thread <= 4 ? 4 : per_thread <= 8 ? 8
                : per_thread <= 16 ? 16 : 0;
  const unsigned grid = (unsigned)(bands * strips);
  if (xt == LLMK_F32) launch_rpt<float>(a, rpt, strips, grid, st);
  else if (xt == LLMK_F16) launch_rpt<__half>(a, rpt, strips, grid, st);
  else launch_rpt<__nv_bfloat16>(a, rpt, strips, grid, st);
  return llmk_launch_check("llmk_quantize_fp8", "quant_bands_kernel");
}
