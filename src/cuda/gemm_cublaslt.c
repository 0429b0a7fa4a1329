/* The cuBLASLt backend of llmk_gemm_fp8 and llmk_gemm_bf16.
 *
 * Row-major Y[M, N] = X[M, K] . W[N, K]^T is cuBLASLt's column-major
 * D[N, M] = op(A)[N, K] . B[K, M] with A = W (K x N, transposed: "TN", the
 * only FP8 layout on Hopper), B = X (K x M), D = Y (N x M, ld = ldy). Scales:
 * SCALAR_32F for tensor-wise; OUTER_VEC_32F for row-wise, whose A vector
 * runs over D's rows (w_scale[N]) and B vector over its columns
 * (x_scale[M]); block scaling: BLK128x128_32F for A (w_scale, stored
 * [ceil(N/128)][roundup(KB, 4)], K slices fastest) and VEC128_32F for B
 * (x_scale, stored [KB][M], tokens fastest): other layouts, and 128x128
 * activation blocks (BLK x BLK), are NOT_SUPPORTED. BF16 has no scales. The algorithm is entry `algo` (0: the
 * first) of cuBLASLt's heuristic list for the problem, as the measured table
 * chose it (heuristics.c), or the last entry when the list is shorter. It comes from cuBLASLt's heuristic, once per
 * problem key, cached in the handle (a mutex guards the cache). */
#ifdef LLMK_WITH_CUDA /* compiled only where nvcc (and the CUDA toolkit) is found */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cublasLt.h>

#include "core/gemm.h"
#include "cuda/gemm_cublaslt.h"

#define LT_CACHE 64

typedef struct lt_key {
  int64_t M, N, K, ldx, ldw, ldy;
  int in_dtype, scaling, fast_accum, bias; /* bias: 0 none, 1 f32, 2 bf16 */
  int algo;                               /* index into the heuristic's list */
  int align[5];                  /* alignment of x, w, y, bias, scales (bytes, <= 256) */
  int64_t ws_reserved;           /* workspace bytes kept from cuBLASLt: its share decides the algorithm */
} lt_key;

typedef struct lt_entry {
  lt_key key;
  int used;
  cublasLtMatmulAlgo_t algo;
} lt_entry;

typedef struct llmk_lt {
  cublasLtHandle_t lt;
  pthread_mutex_t mu;
  lt_entry cache[LT_CACHE];
  int next; /* round-robin victim */
} llmk_lt;

static const char *fn_of(const llmk_gemm_plan *p) {
  return p->in_dtype == LLMK_BF16 ? "llmk_gemm_bf16" : "llmk_gemm_fp8";
}

static llmk_status lt_error(const llmk_gemm_plan *p, cublasStatus_t st, const char *what) {
  return llmk_set_error(LLMK_ERR_CUBLAS, fn_of(p), "cuBLASLt %s failed: %s (%d)", what,
                        cublasLtGetStatusString(st), (int)st);
}
#define LT_TRY(call, what)                           \
  do {                                               \
    cublasStatus_t st_ = (call);                     \
    if (st_ != CUBLAS_STATUS_SUCCESS) {              \
      s = lt_error(p, st_, what);                    \
      goto done;                                     \
    }                                                \
  } while (0)

llmk_status llmk_lt_create(llmk_handle h) {
  llmk_lt *c = calloc(1, sizeof *c);
  if (!c) return llmk_set_error(LLMK_ERR_OUT_OF_MEMORY, "llmk_create_cuda", "cannot allocate cuBLASLt state");
  cublasStatus_t st = cublasLtCreate(&c->lt);
  if (st != CUBLAS_STATUS_SUCCESS) {
    free(c);
    return llmk_set_error(LLMK_ERR_CUBLAS, "llmk_create_cuda", "cublasLtCreate failed: %s",
                          cublasLtGetStatusString(st));
  }
  pthread_mutex_init(&c->mu, NULL);
  h->lt = c;
  return LLMK_SUCCESS;
}

void llmk_lt_destroy(llmk_handle h) {
  llmk_lt *c = h->lt;
  if (!c) return;
  cublasLtDestroy(c->lt);
  pthread_mutex_destroy(&c->mu);
  free(c);
  h->lt = NULL;
}

static int align_of(const void *p) {
  uintptr_t a = (uintptr_t)p;
  int al = 256;
  while (al > 1 && a % (uintptr_t)al) al /= 2;
  return al;
}

static lt_key make_key(const llmk_gemm_plan *p, int algo) {
  lt_key k;
  memset(&k, 0, sizeof k); /* padding too: keys are compared with memcmp */
  k.M = p->M, k.N = p->N, k.K = p->K, k.ldx = p->ldx, k.ldw = p->ldw, k.ldy = p->ldy;
  k.in_dtype = (int)p->in_dtype;
  k.algo = algo;
  k.scaling = (int)p->scaling;
  k.fast_accum = p->fast_accum;
  k.bias = !p->bias ? 0 : p->bias_dtype == LLMK_F32 ? 1 : 2;
  k.align[0] = align_of(p->x), k.align[1] = align_of(p->w), k.align[2] = align_of(p->y);
  k.align[3] = p->bias ? align_of(p->bias) : 256;
  k.align[4] = !p->xs ? 256 : align_of(p->xs) < align_of(p->ws) ? align_of(p->xs) : align_of(p->ws);
  k.ws_reserved = (int64_t)p->lt_ws_reserved;
  return k;
}

int llmk_lt_block_layout_ok(const llmk_gemm_plan *p) {
  const int64_t kb = (p->K + 127) / 128, l4 = (kb + 3) / 4 * 4, nb = (p->N + 127) / 128;
  return p->x_bm == 1 && (p->M <= 1 || p->xs_rs == 1) && (kb <= 1 || p->xs_ks == p->M) &&
         (nb <= 1 || p->ws_rs == l4) && (kb <= 1 || p->ws_ks == 1);
}

llmk_status llmk_lt_gemm(llmk_handle h, const llmk_gemm_plan *p, int algo, int quiet, void *stream) {
  const char *FN = fn_of(p);
  const int fp8 = p->in_dtype != LLMK_BF16;
  llmk_lt *c = h->lt;
  if (!c) return llmk_set_error(LLMK_ERR_INTERNAL, FN, "cuBLASLt state missing from the handle");
  if (!h->workspace)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, FN,
                          "the handle has no workspace (llmk_set_workspace failed earlier)");
  if (p->lt_ws_reserved > h->workspace_bytes)
    return llmk_set_error(LLMK_ERR_INTERNAL, FN, "workspace reservation larger than the workspace");
  llmk_status s = LLMK_SUCCESS;
  cublasLtMatmulDesc_t op = NULL;
  cublasLtMatrixLayout_t la = NULL, lb = NULL, ld = NULL;
  cublasLtMatmulPreference_t pref = NULL;
  if (algo < 0 || algo >= LLMK_LT_MAX_ALGOS) algo = 0;
  if (p->scaling == LLMK_SCALING_BLOCK && !llmk_lt_block_layout_ok(p)) {
    if (quiet) return LLMK_ERR_NOT_SUPPORTED;
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, FN,
                          "cuBLASLt takes block scales only as 1x128 activation groups stored [KB][M] (column-major "
                          "x_scale, column pitch M) and 128x128 weight blocks stored [ceil(N/128)][roundup(KB, 4)]");
  }
  const lt_key key = make_key(p, algo);

  LT_TRY(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "MatmulDescCreate");
  const cublasOperation_t tr = CUBLAS_OP_T, nt = CUBLAS_OP_N;
  LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &tr, sizeof tr), "set TRANSA");
  LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &nt, sizeof nt), "set TRANSB");
  if (fp8) {
    const void *sa = p->ws, *sb = p->xs;
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sa, sizeof sa), "set A scale");
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sb, sizeof sb), "set B scale");
    if (p->scaling == LLMK_SCALING_ROW || p->scaling == LLMK_SCALING_BLOCK) {
      const int blk = p->scaling == LLMK_SCALING_BLOCK;
      const int32_t ma = blk ? CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F : CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
      const int32_t mb = blk ? CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F : CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
      LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &ma, sizeof ma),
             "set A scale mode");
      LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mb, sizeof mb),
             "set B scale mode");
    }
    const int8_t fast = (int8_t)p->fast_accum;
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast), "set FAST_ACCUM");
  }
  if (p->bias) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    const cudaDataType_t bt = p->bias_dtype == LLMK_F32 ? CUDA_R_32F : CUDA_R_16BF;
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi), "set EPILOGUE");
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p->bias, sizeof p->bias), "set BIAS_POINTER");
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt), "set BIAS_DATA_TYPE");
  }
  const cudaDataType_t it = fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
  LT_TRY(cublasLtMatrixLayoutCreate(&la, it, (uint64_t)p->K, (uint64_t)p->N, p->ldw), "layout A");
  LT_TRY(cublasLtMatrixLayoutCreate(&lb, it, (uint64_t)p->K, (uint64_t)p->M, p->ldx), "layout B");
  LT_TRY(cublasLtMatrixLayoutCreate(&ld, CUDA_R_16BF, (uint64_t)p->N, (uint64_t)p->M, p->ldy), "layout D");

  pthread_mutex_lock(&c->mu);
  lt_entry *e = NULL;
  for (int i = 0; i < LT_CACHE; i++)
    if (c->cache[i].used && !memcmp(&c->cache[i].key, &key, sizeof key)) e = &c->cache[i];
  if (!e) {
    cublasLtMatmulHeuristicResult_t res[LLMK_LT_MAX_ALGOS];
    int n = 0;
    cublasStatus_t st = cublasLtMatmulPreferenceCreate(&pref);
    const uint64_t wsb = h->workspace_bytes - p->lt_ws_reserved;
    const uint32_t al[4] = {(uint32_t)key.align[1], (uint32_t)key.align[0], (uint32_t)key.align[2],
                            (uint32_t)key.align[2]};
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb);
    for (int i = 0; i < 4 && st == CUBLAS_STATUS_SUCCESS; i++)
      st = cublasLtMatmulPreferenceSetAttribute(
          pref, (cublasLtMatmulPreferenceAttributes_t)(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES + i), &al[i],
          sizeof al[i]);
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulAlgoGetHeuristic(c->lt, op, la, lb, ld, ld, pref, algo + 1, res, &n);
    const int pick = n > algo ? algo : n - 1;
    if (st != CUBLAS_STATUS_SUCCESS || n < 1 || res[pick].state != CUBLAS_STATUS_SUCCESS) {
      pthread_mutex_unlock(&c->mu);
      if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED) {
        s = lt_error(p, st, "heuristic query");
      } else if (quiet) {
        s = LLMK_ERR_NOT_SUPPORTED;
      } else {
        s = llmk_set_error(LLMK_ERR_NOT_SUPPORTED, FN,
                           "cuBLASLt has no %s algorithm for M=%lld N=%lld K=%lld (%s%s)", fp8 ? "FP8" : "BF16",
                           (long long)p->M, (long long)p->N, (long long)p->K,
                           !fp8                                ? "no scales"
                           : p->scaling == LLMK_SCALING_ROW    ? "row scaling"
                           : p->scaling == LLMK_SCALING_BLOCK  ? "block scaling"
                                                               : "tensor scaling",
                           !p->bias ? "" : p->bias_dtype == LLMK_F32 ? ", f32 bias" : ", bf16 bias");
      }
      goto done;
    }
    e = &c->cache[c->next];
    c->next = (c->next + 1) % LT_CACHE;
    e->key = key;
    e->algo = res[pick].algo;
    e->used = 1;
  }
  const cublasLtMatmulAlgo_t chosen = e->algo;
  pthread_mutex_unlock(&c->mu);

  const float alpha = 1.0f, beta = 0.0f;
  {
    /* cuBLASLt can refuse its own heuristic's algorithm at launch (H100,
     * CUDA 13: M = 1, N = 64, K = 256, row scales, status 15); under AUTO
     * (quiet) that is NOT_SUPPORTED, and the caller runs the own kernels */
    const cublasStatus_t st = cublasLtMatmul(c->lt, op, &alpha, p->w, la, p->x, lb, &beta, p->y, ld, p->y, ld, &chosen,
                                             (char *)h->workspace + p->lt_ws_reserved,
                                             h->workspace_bytes - p->lt_ws_reserved, (cudaStream_t)stream);
    if (st == CUBLAS_STATUS_NOT_SUPPORTED && quiet)
      s = LLMK_ERR_NOT_SUPPORTED;
    else if (st != CUBLAS_STATUS_SUCCESS)
      s = lt_error(p, st, "Matmul");
  }
done:
  if (pref) cublasLtMatmulPreferenceDestroy(pref);
  if (ld) cublasLtMatrixLayoutDestroy(ld);
  if (lb) cublasLtMatrixLayoutDestroy(lb);
  if (la) cublasLtMatrixLayoutDestroy(la);
  if (op) cublasLtMatmulDescDestroy(op);
  return s;
}
#endif /* LLMK_WITH_CUDA */
