/* GEMM dispatch for CUDA handles: llmk's own kernels or cuBLASLt, as
 * llmk_gemm_route_for (heuristics.c) decides for the call: a requested
 * backend, the handle's override, the environment, the measured table,
 * the rule (llmk_gemm_choice reports the same route). Under AUTO, a call
 * cuBLASLt refuses runs the route's own configuration. */
#include <stdio.h>

#include "core/gemm.h"
#include "cuda/common.cuh"
#include "cuda/gemm_cublaslt.h"
#include "cuda/gemm_model.h"
#include "cuda/gemm_neighbours.h"
#include "cuda/gemm_own.h"
#include "cuda/gemm_sm90_epilogue.cuh"
#include "cuda/gemm_tuned.h"
#include "cuda/heuristics.h"

#include "core/env.h"

static const char FN[] = "llmk_gemm_fp8";

/* K == 0: acc = 0 and the epilogue as always, (0 * xs) * ws (+ bias), or 0
 * (+ bias) without scales (BF16), so the result matches the CPU reference
 * bit for bit (signs of zero, NaN scales). */
__global__ void gemm_fill_kernel(__nv_bfloat16 *y, int64_t ldy, int64_t M, int64_t N, const float *xs, const float *ws,
                                 int row_scales, const void *bias, int bias_f32, int planes) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < M * N; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / N, c = i - r * N;
    float v = xs ? __fmul_rn(__fmul_rn(0.0f, xs[row_scales ? r : 0]), ws[row_scales ? c : 0]) : 0.0f;
    if (planes == 2) /* row scales: each plane's product rounded to bf16, then summed */
      v = __fadd_rn(llmk_gemm_plane(0.0f, xs[2 * r], ws[c]), llmk_gemm_plane(0.0f, xs[2 * r + 1], ws[c]));
    if (bias) v = __fadd_rn(v, bias_f32 ? ((const float *)bias)[c] : __bfloat162float(((const __nv_bfloat16 *)bias)[c]));
    y[r * ldy + c] = __float2bfloat16_rn(v);
  }
}

static llmk_status fill_k0(llmk_handle h, const llmk_gemm_plan *p, void *stream, const char *fn) {
  const int64_t n = p->M * p->N;
  const unsigned grid = (unsigned)(n / 256 + 1 < 4 * (int64_t)h->sm_count ? n / 256 + 1 : 4 * h->sm_count);
  gemm_fill_kernel<<<grid, 256, 0, (cudaStream_t)stream>>>(reinterpret_cast<__nv_bfloat16 *>(p->y), p->ldy, p->M,
                                                           p->N, p->scaling == LLMK_SCALING_BLOCK ? nullptr : p->xs,
                                                           p->ws, p->scaling == LLMK_SCALING_ROW,
                                                           p->bias, p->bias && p->bias_dtype == LLMK_F32,
                                                           p->x_planes);
  return llmk_launch_check(fn, "gemm_fill_kernel");
}

/* Block scales in the layout cuBLASLt reads (gemm_cublaslt.c): x_scale
 * [KB][M] at xd, w_scale [NB][roundup(KB, 4)] at wd (the padding zero),
 * from any layout of 1x128 groups the API takes. */
__global__ void gemm_block_scales_repack(const float *xs, int64_t xs_rs, int64_t xs_ks, const float *ws, int64_t ws_rs,
                                         int64_t ws_ks, int64_t M, int64_t KB, int64_t NB, float *xd, float *wd) {
  const int64_t l4 = (KB + 3) / 4 * 4, nx = M * KB, n = nx + NB * l4;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    if (i < nx) {
      const int64_t kb = i / M, m = i - kb * M;
      xd[i] = xs[m * xs_rs + kb * xs_ks];
    } else {
      const int64_t j = i - nx, nb = j / l4, kb = j - nb * l4;
      wd[j] = kb < KB ? ws[nb * ws_rs + kb * ws_ks] : 0.0f;
    }
  }
}

/* Block scaling on cuBLASLt. Scales in another layout than cuBLASLt's are
 * repacked into the start of the handle's workspace first (a few us at
 * most: M x KB + NB x roundup(KB, 4) floats), which cuBLASLt then leaves
 * alone; NOT_SUPPORTED (with a message unless quiet) for 128x128
 * activation blocks, or when the repack would leave cuBLASLt less than
 * LLMK_MIN_WORKSPACE_BYTES. */
static llmk_status lt_block(llmk_handle h, const llmk_gemm_plan *p, int algo, int quiet, void *stream) {
  if (llmk_lt_block_layout_ok(p)) return llmk_lt_gemm(h, p, algo, quiet, stream);
  const int64_t KB = (p->K + 127) / 128, NB = (p->N + 127) / 128, l4 = (KB + 3) / 4 * 4;
  const size_t xbytes = ((size_t)(p->M * KB) * 4 + 255) / 256 * 256, bytes = xbytes + (size_t)(NB * l4) * 4;
  const size_t reserved = (bytes + 255) / 256 * 256;
  if (p->x_bm != 1 || reserved + LLMK_MIN_WORKSPACE_BYTES > h->workspace_bytes) {
    if (quiet) return LLMK_ERR_NOT_SUPPORTED;
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, FN,
                          p->x_bm != 1 ? "cuBLASLt has no 128x128 x 128x128 block scaling (BLK x BLK)"
                                       : "the workspace is too small to repack the block scales for cuBLASLt");
  }
  float *xd = (float *)h->workspace, *wd = (float *)((char *)h->workspace + xbytes);
  const int64_t n = p->M * KB + NB * l4;
  const unsigned grid = (unsigned)(n / 256 + 1 < 4 * (int64_t)h->sm_count ? n / 256 + 1 : 4 * h->sm_count);
  gemm_block_scales_repack<<<grid, 256, 0, (cudaStream_t)stream>>>(p->xs, p->xs_rs, p->xs_ks, p->ws, p->ws_rs,
                                                                   p->ws_ks, p->M, KB, NB, xd, wd);
  llmk_status s = llmk_launch_check(FN, "gemm_block_scales_repack");
  if (s) return s;
  llmk_gemm_plan q = *p;
  q.xs = xd, q.xs_rs = 1, q.xs_ks = p->M;
  q.ws = wd, q.ws_rs = l4, q.ws_ks = 1;
  q.lt_ws_reserved = reserved;
  return llmk_lt_gemm(h, &q, algo, quiet, stream);
}

/* ---- online tuning (llmk_set_gemm_tuning) ---- */

static bool tuning_on(llmk_handle h) {
  return h->gemm_tuning == LLMK_GEMM_TUNE_ON || (h->gemm_tuning == LLMK_GEMM_TUNE_ENV && llmk_env_get()->gemm_tune);
}

/* The GPU model, driver and llmk versions: a tuning file of another
 * identity is started afresh. */
static void tune_identity(int device, char *buf, size_t n) {
  cudaDeviceProp prop;
  int driver = 0;
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) prop.name[0] = 0;
  (void)cudaDriverGetVersion(&driver);
  (void)cudaGetLastError();
  snprintf(buf, n, "%s|driver %d|llmk %d", prop.name, driver, llmk_version());
}

/* Whether this call may be tuned: tuning on, the route from the cost
 * model (no table entry, no winner yet, nothing forced), and a stream
 * that is not capturing. */
static bool tunable(llmk_handle h, const llmk_gemm_plan *p, const llmk_gemm_route *r, void *stream) {
  if (!tuning_on(h) || r->source != LLMK_GEMM_SOURCE_RULE || p->K == 0 || p->x_planes == 2) return false;
  if (p->in_dtype == LLMK_BF16 && p->bias && p->bias_dtype == LLMK_F32) return false; /* own only */
  const llmk_gemm_override &o = h->gemm_override;
  if (o.config >= 0 || o.splits > 0 || o.lt_algo >= 0) return false;
  cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing((cudaStream_t)stream, &cs) != cudaSuccess || cs != cudaStreamCaptureStatusNone) {
    (void)cudaGetLastError();
    return false;
  }
  return true;
}

static llmk_status lt_block(llmk_handle h, const llmk_gemm_plan *p, int algo, int quiet, void *stream);

/* One candidate: own configuration cfg at `splits`, or cuBLASLt (cfg < 0). */
static llmk_status run_candidate(llmk_handle h, const llmk_gemm_plan *p, int cfg, int splits, void *stream) {
  if (cfg >= 0)
    return p->in_dtype == LLMK_BF16 ? llmk_own_gemm_bf16(h, p, cfg, splits, stream)
                                    : llmk_own_gemm_fp8(h, p, cfg, splits, stream);
  return p->scaling == LLMK_SCALING_BLOCK && p->in_dtype != LLMK_BF16 ? lt_block(h, p, 0, 1, stream)
                                                                      : llmk_lt_gemm(h, p, 0, 1, stream);
}

#define TUNE_OWN 3  /* the cost model's best own candidates timed */
#define TUNE_REPS 3 /* timed runs of each, the median kept */

/* Times the model's best own candidates and cuBLASLt on the call's own
 * operands and stream (L2 flushed before each run) and keeps the fastest
 * (gemm_tuned.h). The route is then the winner's. */
static llmk_status tune_call(llmk_handle h, const llmk_gemm_plan *p, int kind, void *stream, const char *fn) {
  char identity[320];
  tune_identity(h->device, identity, sizeof identity);
  llmk_gemm_tuned_load(h->device, identity);
  const int64_t M = p->M, N = p->N, K = p->K;
  llmk_gemm_pick known;
  int tuned = 0;
  if (llmk_gemm_memo_find(h->device, kind, M, N, K, &known, &tuned) && tuned) return LLMK_SUCCESS; /* from the file */
  int cfg[TUNE_OWN + 2], splits[TUNE_OWN + 2];
  double pred[TUNE_OWN];
  int n = llmk_gemm_model_top(llmk_gemm_model_fitted(), kind, M, N, K, &h->gemm_dev, TUNE_OWN, cfg, splits, pred);
  /* and the measured neighbours' own pick (gemm_neighbours.h), if the model's list lacks it */
  int nc, ns, listed = 0;
  if (kind < 4 && llmk_gemm_neighbours_pick(llmk_gemm_neighbours(), kind, M, N, K, &h->gemm_dev, 0, 0, &nc, &ns) &&
      nc >= 0) {
    for (int i = 0; i < n; i++) listed |= cfg[i] == nc && splits[i] == ns;
    if (!listed) cfg[n] = nc, splits[n] = ns, n++;
  }
  cfg[n] = -1, splits[n] = 1, n++; /* cuBLASLt, its heuristic's first choice */
  cudaStream_t st = (cudaStream_t)stream;
  void *flush = NULL;
  const size_t flush_bytes = 2 * (h->l2_bytes ? h->l2_bytes : ((size_t)50 << 20));
  if (cudaMalloc(&flush, flush_bytes) != cudaSuccess) flush = NULL, (void)cudaGetLastError();
  cudaEvent_t ev[2 * TUNE_REPS];
  for (int i = 0; i < 2 * TUNE_REPS; i++) ev[i] = NULL;
  llmk_status s = LLMK_SUCCESS;
  for (int i = 0; i < 2 * TUNE_REPS && !s; i++)
    if (cudaEventCreate(&ev[i]) != cudaSuccess) s = llmk_cuda_error(cudaGetLastError(), fn, "cudaEventCreate");
  double best = 1e30;
  int win = -1;
  for (int c = 0; c < n && !s; c++) {
    llmk_status r = run_candidate(h, p, cfg[c], splits[c], stream); /* warm-up: also says whether it runs */
    if (r == LLMK_ERR_NOT_SUPPORTED) continue;
    if ((s = r)) break;
    for (int i = 0; i < TUNE_REPS && !s; i++) {
      if (flush) (void)cudaMemsetAsync(flush, i, flush_bytes, st);
      cudaEventRecord(ev[2 * i], st);
      s = run_candidate(h, p, cfg[c], splits[c], stream);
      cudaEventRecord(ev[2 * i + 1], st);
    }
    if (s) break;
    if (cudaStreamSynchronize(st) != cudaSuccess) {
      s = llmk_cuda_error(cudaGetLastError(), fn, "cudaStreamSynchronize (tuning)");
      break;
    }
    float t[TUNE_REPS];
    for (int i = 0; i < TUNE_REPS; i++) cudaEventElapsedTime(&t[i], ev[2 * i], ev[2 * i + 1]);
    for (int i = 1; i < TUNE_REPS; i++) /* insertion sort for the median */
      for (int j = i; j > 0 && t[j] < t[j - 1]; j--) { const float x = t[j]; t[j] = t[j - 1], t[j - 1] = x; }
    const double us = 1e3 * t[TUNE_REPS / 2];
    if (us < best) best = us, win = c;
  }
  for (int i = 0; i < 2 * TUNE_REPS; i++)
    if (ev[i]) cudaEventDestroy(ev[i]);
  if (flush) cudaFree(flush);
  if (!s && win >= 0) {
    /* a cuBLASLt winner keeps the model's best own configuration for its fallback */
    const int own = cfg[win] >= 0, o = own ? win : 0;
    const llmk_gemm_pick p = {own, cfg[o], splits[o]};
    llmk_gemm_tuned_put(h->device, kind, M, N, K, &p, best);
  }
  return s;
}

/* The route of a call, tuned first where llmk_set_gemm_tuning asks. */
static llmk_status route_of(llmk_handle h, const llmk_gemm_plan *p, void *stream, const char *fn,
                            llmk_gemm_route *r) {
  llmk_gemm_route_for(p, &h->gemm_override, &h->gemm_dev, r);
  if (!tunable(h, p, r, stream)) return LLMK_SUCCESS;
  const int bf16 = p->in_dtype == LLMK_BF16;
  const int kind = bf16 ? 3 : p->scaling == LLMK_SCALING_BLOCK ? 2 : !p->fast_accum ? 4
                                                                 : p->scaling == LLMK_SCALING_ROW ? 1 : 0;
  llmk_status s = tune_call(h, p, kind, stream, fn);
  if (s) return s;
  llmk_gemm_route_for(p, &h->gemm_override, &h->gemm_dev, r);
  return LLMK_SUCCESS;
}

/* One FP8 GEMM of one plane (inside the caller's device scope). */
static llmk_status gemm_fp8_one(llmk_handle h, const llmk_gemm_plan *p, void *stream) {
  llmk_status s;
  if (p->K == 0) return fill_k0(h, p, stream, FN);
  llmk_gemm_route r;
  if ((s = route_of(h, p, stream, FN, &r))) return s;
  if (r.backend == LLMK_GEMM_OWN) return llmk_own_gemm_fp8(h, p, r.config, r.splits, stream);
  /* Block scaling: cuBLASLt's VEC128 x BLK128x128 modes (scales repacked
   * into its layout where needed). Forced, NOT_SUPPORTED stays the
   * answer; chosen under AUTO (lt_fallback), the own kernel takes the
   * calls cuBLASLt has no FP8 algorithm for (an f32 bias, some bf16-bias
   * and block-scaled shapes). */
  s = p->scaling == LLMK_SCALING_BLOCK ? lt_block(h, p, r.lt_algo, r.lt_fallback, stream)
                                       : llmk_lt_gemm(h, p, r.lt_algo, r.lt_fallback, stream);
  if (s == LLMK_ERR_NOT_SUPPORTED && r.lt_fallback) s = llmk_own_gemm_fp8(h, p, r.config, r.splits, stream);
  return s;
}

/* Two planes: y[m, n] = bf16((P[2m, n] + P[2m + 1, n]) [+ bias[n]]) in fp32,
 * P the bf16 plane products (rows of `rows` pairs); 8 columns a thread
 * (N % 8 == 0 on CUDA). */
__global__ void gemm_planes_add(const uint4 *P, int64_t pairs, int64_t N, __nv_bfloat16 *y, int64_t ldy,
                                const void *bias, int bias_f32) {
  const int64_t nv = N / 8;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < pairs * nv; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t m = i / nv, c = (i - m * nv) * 8;
    const uint4 a = P[(2 * m) * nv + c / 8], b = P[(2 * m + 1) * nv + c / 8];
    float fa[8], fb[8];
    llmk_unpack_bf16x8(a, fa);
    llmk_unpack_bf16x8(b, fb);
    uint32_t o[4];
#pragma unroll
    for (int k = 0; k < 8; k += 2) {
      float v0 = __fadd_rn(fa[k], fb[k]), v1 = __fadd_rn(fa[k + 1], fb[k + 1]);
      if (bias) {
        v0 = __fadd_rn(v0, bias_f32 ? ((const float *)bias)[c + k] : __bfloat162float(((const __nv_bfloat16 *)bias)[c + k]));
        v1 = __fadd_rn(v1, bias_f32 ? ((const float *)bias)[c + k + 1]
                                    : __bfloat162float(((const __nv_bfloat16 *)bias)[c + k + 1]));
      }
      const __nv_bfloat162 h2 = __floats2bfloat162_rn(v0, v1);
      o[k / 2] = *reinterpret_cast<const uint32_t *>(&h2);
    }
    *reinterpret_cast<uint4 *>(y + m * ldy + c) = make_uint4(o[0], o[1], o[2], o[3]);
  }
}

/* x_planes = 2: llmk's own kernel for the 2M plane rows' shape, whose
 * epilogue sums each output's two planes (one thread holds both), one
 * kernel and no workspace. Forced cuBLASLt (desc, override or
 * LLMK_GEMM_BACKEND): the 2M plane rows' GEMM (no bias) into the start of
 * the handle's workspace, then the pair sums, in chunks of output rows
 * that fit; cuBLASLt keeps LLMK_MIN_WORKSPACE_BYTES for itself (it refused
 * less, H100). */
static llmk_status gemm_fp8_planes(llmk_handle h, const llmk_gemm_plan *p, void *stream) {
  if (p->K == 0) return fill_k0(h, p, stream, FN);
  llmk_gemm_route r;
  llmk_gemm_route_for(p, &h->gemm_override, &h->gemm_dev, &r);
  if (r.backend == LLMK_GEMM_OWN) return llmk_own_gemm_fp8(h, p, r.config, r.splits, stream);
  /* cuBLASLt, forced (the route takes the own kernel otherwise) */
  const size_t pair_bytes = (size_t)p->N * 4; /* two bf16 rows */
  const size_t keep = LLMK_MIN_WORKSPACE_BYTES;
  const size_t room = (h->workspace_bytes > keep ? h->workspace_bytes - keep : 0) / 256 * 256; /* reserve: 256-byte rounded */
  if (room < pair_bytes)
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, FN,
                          "two planes: the handle's workspace (%zu bytes, less cuBLASLt's minimum) cannot hold one "
                          "row pair of N = %lld",
                          h->workspace_bytes, (long long)p->N);
  const int64_t chunk = (int64_t)(room / pair_bytes) < p->M ? (int64_t)(room / pair_bytes) : p->M;
  for (int64_t m0 = 0; m0 < p->M; m0 += chunk) {
    const int64_t pairs = p->M - m0 < chunk ? p->M - m0 : chunk;
    llmk_gemm_plan q = *p;
    q.x_planes = 1;
    q.M = 2 * pairs;
    q.x = (const uint8_t *)p->x + 2 * m0 * p->ldx;
    q.xs = p->xs + 2 * m0;
    q.bias = NULL;
    q.y = (uint16_t *)h->workspace;
    q.ldy = p->N;
    q.lt_ws_reserved = ((size_t)q.M * p->N * 2 + 255) / 256 * 256;
    llmk_status s = gemm_fp8_one(h, &q, stream);
    if (s) return s;
    const int64_t n = pairs * (p->N / 8);
    const unsigned grid = (unsigned)(n / 256 + 1 < 4 * (int64_t)h->sm_count ? n / 256 + 1 : 4 * h->sm_count);
    gemm_planes_add<<<grid, 256, 0, (cudaStream_t)stream>>>(
        (const uint4 *)h->workspace, pairs, p->N, reinterpret_cast<__nv_bfloat16 *>(p->y + m0 * p->ldy), p->ldy,
        p->bias, p->bias && p->bias_dtype == LLMK_F32);
    if ((s = llmk_launch_check(FN, "gemm_planes_add"))) return s;
  }
  return LLMK_SUCCESS;
}

extern "C" llmk_status llmk_cuda_gemm_fp8(llmk_handle h, const llmk_gemm_plan *p, void *stream) {
  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, FN);
  if (s) return s;
  s = p->x_planes == 2 ? gemm_fp8_planes(h, p, stream) : gemm_fp8_one(h, p, stream);
  return llmk_scope_leave(h, &sc, s, FN);
}

extern "C" llmk_status llmk_cuda_gemm_bf16(llmk_handle h, const llmk_gemm_plan *p, void *stream) {
  static const char fn[] = "llmk_gemm_bf16";
  llmk_gemm_route r;
  llmk_gemm_route_for(p, &h->gemm_override, &h->gemm_dev, &r);
  /* cuBLASLt rejects an f32 bias with bf16 output (H100, CUDA 13: "unsupported value"), and adding it
   * in a second pass would round twice: the own kernels take it (the route under AUTO). */
  if (r.backend == LLMK_GEMM_CUBLASLT && !r.lt_fallback && p->bias && p->bias_dtype == LLMK_F32 && p->K > 0)
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn,
                          "cuBLASLt's BF16 GEMM takes a bf16 bias only (use LLMK_GEMM_AUTO or LLMK_GEMM_OWN for an "
                          "f32 bias)");
  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, fn);
  if (s) return s;
  if (p->K == 0) return llmk_scope_leave(h, &sc, fill_k0(h, p, stream, fn), fn);
  if ((s = route_of(h, p, stream, fn, &r))) return llmk_scope_leave(h, &sc, s, fn);
  if (r.backend == LLMK_GEMM_OWN) {
    s = llmk_own_gemm_bf16(h, p, r.config, r.splits, stream);
  } else {
    /* AUTO: the table's choice (cuBLASLt off the table), the own kernels
     * where cuBLASLt has no algorithm */
    s = llmk_lt_gemm(h, p, r.lt_algo, r.lt_fallback, stream);
    if (s == LLMK_ERR_NOT_SUPPORTED && r.lt_fallback) s = llmk_own_gemm_bf16(h, p, r.config, r.splits, stream);
  }
  return llmk_scope_leave(h, &sc, s, fn);
}
