/*
 * Online tuning of the GEMM dispatcher (llmk_set_gemm_tuning,
 * LLMK_GEMM_TUNE, LLMK_GEMM_TUNE_FILE):
 *  - the switch's refusals (any build);
 *  - with a Hopper GPU and LLMK_GEMM_TUNE=1: a graph captured before any
 *    tuning runs the cost model's choice and stays correct; the first
 *    eager call tunes (llmk_gemm_choice then says TUNED) and its output is
 *    right; the winner is in the tuning file, under its identity line; a
 *    handle switched off leaves a new shape to the model; FP8 row-wise,
 *    block-scaled and BF16 calls all tune.
 * Outputs are checked against the CPU backend on the same inputs (relative
 * error below 1e-2: candidates differ in summation order only).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/env.h"
#include "cuda/gemm_tuned.h"
#include "harness.h"
#include "llmk.h"

static void switch_errors(void) {
  CHECK(llmk_set_gemm_tuning(NULL, LLMK_GEMM_TUNE_ON) == LLMK_ERR_INVALID_ARGUMENT, "NULL handle");
  llmk_handle cpu;
  if (llmk_create_cpu(&cpu) != LLMK_SUCCESS) {
    CHECK(0, "llmk_create_cpu: %s", llmk_last_error());
    return;
  }
  CHECK(llmk_set_gemm_tuning(cpu, (llmk_gemm_tuning)7) == LLMK_ERR_INVALID_ARGUMENT, "mode 7");
  CHECK(llmk_set_gemm_tuning(cpu, LLMK_GEMM_TUNE_ON) == LLMK_ERR_NOT_SUPPORTED, "a CPU handle: %s",
        llmk_last_error());
  llmk_destroy(cpu);
}

#ifdef LLMK_WITH_CUDA
typedef struct call {
  llmk_dtype in;
  llmk_scaling scaling;
  int64_t M, N, K;
} call;

static float relative_error(const uint16_t *a, const uint16_t *b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    uint32_t ua = (uint32_t)a[i] << 16, ub = (uint32_t)b[i] << 16;
    float fa, fb;
    memcpy(&fa, &ua, 4), memcpy(&fb, &ub, 4);
    num += (double)(fa - fb) * (fa - fb), den += (double)fb * fb;
  }
  return (float)sqrt(num / (den > 0 ? den : 1));
}

/* Inputs of one call on the host and the device, the CPU's answer, and
 * the GPU call (on `stream`). */
typedef struct job {
  call c;
  llmk_gemm_desc d;
  uint8_t *hx, *hw;
  float *hxs, *hws;
  void *dx, *dw, *dxs, *dws, *dy;
  uint16_t *ref;
  llmk_tensor x, w, xs, ws, y, cx, cw, cxs, cws;
} job;

static void job_init(job *j, call c) {
  memset(j, 0, sizeof *j);
  j->c = c;
  const int bf16 = c.in == LLMK_BF16, es = bf16 ? 2 : 1;
  const int64_t kb = (c.K + 127) / 128, nb = (c.N + 127) / 128;
  const size_t nx = (size_t)(c.M * c.K) * es, nw = (size_t)(c.N * c.K) * es;
  const int64_t nxs = c.scaling == LLMK_SCALING_BLOCK ? c.M * kb : c.M, nws = c.scaling == LLMK_SCALING_BLOCK ? nb * kb : c.N;
  j->hx = t_xmalloc(nx), j->hw = t_xmalloc(nw), j->hxs = t_xmalloc(nxs * 4), j->hws = t_xmalloc(nws * 4);
  for (size_t i = 0; i < nx; i++) j->hx[i] = bf16 ? (uint8_t)(i & 1 ? 0x3C + (t_rand_u64() & 1) : t_rand_u64()) : (uint8_t)(t_rand_u64() & 0x77);
  for (size_t i = 0; i < nw; i++) j->hw[i] = bf16 ? (uint8_t)(i & 1 ? 0x3C - (t_rand_u64() & 1) : t_rand_u64()) : (uint8_t)(t_rand_u64() & 0xF7);
  for (int64_t i = 0; i < nxs; i++) j->hxs[i] = 0.01f + 0.001f * (float)(t_rand_u64() % 10);
  for (int64_t i = 0; i < nws; i++) j->hws[i] = 0.01f + 0.001f * (float)(t_rand_u64() % 10);
  j->dx = t_to_dev(j->hx, nx), j->dw = t_to_dev(j->hw, nw);
  j->dxs = t_to_dev(j->hxs, (size_t)nxs * 4), j->dws = t_to_dev(j->hws, (size_t)nws * 4);
  T_CU(cudaMalloc(&j->dy, (size_t)(c.M * c.N) * 2));
  j->x = llmk_tensor_2d(j->dx, c.in, c.M, c.K, c.K), j->w = llmk_tensor_2d(j->dw, c.in, c.N, c.K, c.K);
  j->cx = llmk_tensor_2d(j->hx, c.in, c.M, c.K, c.K), j->cw = llmk_tensor_2d(j->hw, c.in, c.N, c.K, c.K);
  if (c.scaling == LLMK_SCALING_BLOCK) {
    j->xs = llmk_tensor_2d(j->dxs, LLMK_F32, c.M, kb, kb), j->ws = llmk_tensor_2d(j->dws, LLMK_F32, nb, kb, kb);
    j->cxs = llmk_tensor_2d(j->hxs, LLMK_F32, c.M, kb, kb), j->cws = llmk_tensor_2d(j->hws, LLMK_F32, nb, kb, kb);
  } else {
    j->xs = llmk_tensor_1d(j->dxs, LLMK_F32, c.M), j->ws = llmk_tensor_1d(j->dws, LLMK_F32, c.N);
    j->cxs = llmk_tensor_1d(j->hxs, LLMK_F32, c.M), j->cws = llmk_tensor_1d(j->hws, LLMK_F32, c.N);
  }
  j->y = llmk_tensor_2d(j->dy, LLMK_BF16, c.M, c.N, c.N);
  const llmk_gemm_desc d = LLMK_GEMM_DESC_INIT;
  j->d = d;
  j->d.scaling = c.scaling;
  j->d.accum = c.scaling == LLMK_SCALING_BLOCK ? LLMK_ACCUM_FP32 : LLMK_ACCUM_FAST;
  j->ref = t_xmalloc((size_t)(c.M * c.N) * 2);
  llmk_handle cpu;
  if (llmk_create_cpu(&cpu) != LLMK_SUCCESS) return;
  llmk_tensor cy = llmk_tensor_2d(j->ref, LLMK_BF16, c.M, c.N, c.N);
  const llmk_status s = bf16 ? llmk_gemm_bf16(cpu, LLMK_GEMM_AUTO, &j->cx, &j->cw, NULL, &cy, NULL)
                             : llmk_gemm_fp8(cpu, &j->d, &j->cx, &j->cw, &j->cxs, &j->cws, NULL, &cy, NULL);
  CHECK(s == LLMK_SUCCESS, "CPU reference: %s", llmk_last_error());
  llmk_destroy(cpu);
}

static llmk_status job_run(llmk_handle h, job *j, void *stream) {
  return j->c.in == LLMK_BF16 ? llmk_gemm_bf16(h, LLMK_GEMM_AUTO, &j->x, &j->w, NULL, &j->y, stream)
                              : llmk_gemm_fp8(h, &j->d, &j->x, &j->w, &j->xs, &j->ws, NULL, &j->y, stream);
}

static void job_check(job *j, const char *what) {
  const int64_t n = j->c.M * j->c.N;
  uint16_t *got = t_xmalloc((size_t)n * 2);
  T_CU(cudaMemcpy(got, j->dy, (size_t)n * 2, cudaMemcpyDeviceToHost));
  const float e = relative_error(got, j->ref, n);
  CHECK(e < 1e-2f, "%s: %lld x %lld x %lld relative error %g", what, (long long)j->c.M, (long long)j->c.N,
        (long long)j->c.K, e);
  free(got);
}

static void job_free(job *j) {
  cudaFree(j->dx), cudaFree(j->dw), cudaFree(j->dxs), cudaFree(j->dws), cudaFree(j->dy);
  free(j->hx), free(j->hw), free(j->hxs), free(j->hws), free(j->ref);
}

static llmk_gemm_source source_of(llmk_handle h, job *j) {
  llmk_gemm_route r = LLMK_GEMM_ROUTE_INIT;
  if (llmk_gemm_choice(h, &j->d, j->c.in, j->c.M, j->c.N, j->c.K, &r) != LLMK_SUCCESS) return (llmk_gemm_source)-1;
  return r.source;
}

static int file_has(const char *path, const char *needle) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[512];
  int found = 0;
  while (fgets(line, sizeof line, f)) found |= strstr(line, needle) != NULL;
  fclose(f);
  return found;
}

static void tuning(llmk_handle h, const char *file) {
  cudaStream_t st;
  T_CU(cudaStreamCreate(&st));
  /* off the table: 2304 x 4096 is no table entry's (N, K) */
  job j;
  job_init(&j, (call){LLMK_E4M3, LLMK_SCALING_ROW, 16, 2304, 4096});
  CHECK(source_of(h, &j) == LLMK_GEMM_SOURCE_RULE, "before any call: the model");
  /* a graph first: captured calls never tune */
  cudaGraph_t g;
  cudaGraphExec_t ge;
  T_CU(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
  const llmk_status s = job_run(h, &j, st);
  T_CU(cudaStreamEndCapture(st, &g));
  CHECK(s == LLMK_SUCCESS, "a captured call with tuning on: %s", llmk_last_error());
  CHECK(source_of(h, &j) == LLMK_GEMM_SOURCE_RULE, "capture did not tune");
  T_CU(cudaGraphInstantiate(&ge, g, 0));
  T_CU(cudaMemset(j.dy, 0xFF, (size_t)(j.c.M * j.c.N) * 2));
  T_CU(cudaGraphLaunch(ge, st));
  T_CU(cudaStreamSynchronize(st));
  job_check(&j, "graph captured before tuning");
  /* the first eager call tunes, and its output is the winner's */
  T_CU(cudaMemset(j.dy, 0xFF, (size_t)(j.c.M * j.c.N) * 2));
  CHECK(job_run(h, &j, st) == LLMK_SUCCESS, "eager call: %s", llmk_last_error());
  T_CU(cudaStreamSynchronize(st));
  job_check(&j, "the tuning call");
  CHECK(source_of(h, &j) == LLMK_GEMM_SOURCE_TUNED, "after the eager call: TUNED");
  CHECK(file_has(file, "llmk-gemm-tune 1 ") && file_has(file, "1 16 2304 4096 "), "the winner in %s", file);
  /* the graph still replays (its route was fixed at capture) */
  T_CU(cudaMemset(j.dy, 0xFF, (size_t)(j.c.M * j.c.N) * 2));
  T_CU(cudaGraphLaunch(ge, st));
  T_CU(cudaStreamSynchronize(st));
  job_check(&j, "graph replay after tuning");
  cudaGraphExecDestroy(ge), cudaGraphDestroy(g);
  job_free(&j);

  /* block scaling and BF16 tune too */
  static const call more[] = {{LLMK_E4M3, LLMK_SCALING_BLOCK, 64, 1536, 4096}, {LLMK_BF16, LLMK_SCALING_ROW, 8, 2304, 3072}};
  for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
    job_init(&j, more[i]);
    CHECK(job_run(h, &j, st) == LLMK_SUCCESS, "eager call %zu: %s", i, llmk_last_error());
    T_CU(cudaStreamSynchronize(st));
    job_check(&j, more[i].in == LLMK_BF16 ? "BF16 tuning call" : "block-scaled tuning call");
    CHECK(source_of(h, &j) == LLMK_GEMM_SOURCE_TUNED, "call %zu tuned", i);
    job_free(&j);
  }

  /* switched off: a new shape stays with the model */
  CHECK(llmk_set_gemm_tuning(h, LLMK_GEMM_TUNE_OFF) == LLMK_SUCCESS, "off");
  job_init(&j, (call){LLMK_E4M3, LLMK_SCALING_ROW, 32, 2304, 4096});
  CHECK(job_run(h, &j, st) == LLMK_SUCCESS, "eager call, tuning off: %s", llmk_last_error());
  T_CU(cudaStreamSynchronize(st));
  job_check(&j, "tuning off");
  CHECK(source_of(h, &j) == LLMK_GEMM_SOURCE_RULE, "tuning off: the model");
  job_free(&j);
  /* a new process reads the file: here, forget and read it again */
  llmk_gemm_tuned_forget();
  CHECK(llmk_set_gemm_tuning(h, LLMK_GEMM_TUNE_ON) == LLMK_SUCCESS, "on");
  job_init(&j, (call){LLMK_E4M3, LLMK_SCALING_ROW, 16, 2304, 4096});
  CHECK(job_run(h, &j, st) == LLMK_SUCCESS, "eager call after forgetting: %s", llmk_last_error());
  CHECK(source_of(h, &j) == LLMK_GEMM_SOURCE_TUNED, "the winner read back from the file");
  job_free(&j);
  cudaStreamDestroy(st);
}
#endif

int main(void) {
  t_seed();
  switch_errors();
#ifdef LLMK_WITH_CUDA
  char file[64];
  snprintf(file, sizeof file, "/tmp/llmk_gemm_tune_%d.txt", (int)getpid());
  remove(file);
  setenv("LLMK_GEMM_TUNE", "1", 1);
  setenv("LLMK_GEMM_TUNE_FILE", file, 1);
  llmk_env_refresh();
  llmk_handle h;
  if (t_hopper_handle("online GEMM tuning", &h)) {
    tuning(h, file);
    llmk_destroy(h);
  }
  remove(file);
#endif
  TEST_END();
}
