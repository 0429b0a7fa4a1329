/* llmk_allreduce and the communicator API without a GPU: argument errors
 * on a CPU handle and with NULLs, the choice table
 * (src/core/allreduce_table.inc) and the threshold fit of `llmk tune
 * allreduce` (llmk_allreduce_fit, tools/allreduce_fit.c) on synthetic
 * timings. The GPU tests, one process per rank:
 *  - test_allreduce_ranks.c: worlds 1, 2, 3, 4 (export/import, no NCCL):
 *    argument errors on the GPU, the size x dtype x algorithm x residual
 *    sweep, messages that need NCCL, the registered buffer, blobs that are
 *    not a communicator's, LLMK_ALLREDUCE=nccl without NCCL;
 *  - test_allreduce_graphs.c: CUDA graphs replayed many times, two
 *    communicators in turn, and the timeout (LLMK_COMM_TIMEOUT_MS);
 *  - test_allreduce_nccl.c: llmk_comm_create_nccl, results compared with
 *    ncclAllReduce's.
 * tests/allreduce_ranks.h describes the values and the checks. */
#include "allreduce_fit.h"
#include "check_err.h"
#include "core/comm.h"
#include "harness.h"
#include "llmk.h"

/* ------------------------------------------------------------------------ */
/* Host-side argument errors (no GPU)                                        */
/* ------------------------------------------------------------------------ */

/* The committed table: an entry for every world size 2..8, one-shot then
 * two-shot then NCCL as messages grow; and the fit on synthetic times. */
static void table_and_fit_tests(void) {
  CHECK(llmk_allreduce_table(1, 1 << 20) == LLMK_ALLREDUCE_ONESHOT, "world 1");
  CHECK(llmk_allreduce_table(LLMK_COMM_MAX_RANKS + 1, 1024) == LLMK_ALLREDUCE_NCCL, "world past the table");
  for (int w = 2; w <= LLMK_COMM_MAX_RANKS; w++) {
    int prev = 0, seen[3] = {0, 0, 0};
    for (size_t b = 16; b <= ((size_t)1 << 30); b *= 2) {
      const llmk_allreduce_algo a = llmk_allreduce_table(w, b);
      const int k = a == LLMK_ALLREDUCE_ONESHOT ? 0 : a == LLMK_ALLREDUCE_TWOSHOT ? 1 : 2;
      CHECK(k >= prev, "table, world %d: %zu bytes goes back to a smaller message's algorithm", w, b);
      prev = k > prev ? k : prev, seen[k] = 1;
    }
    CHECK(seen[0] && seen[2], "table, world %d: no one-shot or no NCCL range (no entry?)", w);
  }
  enum { N = 17 }; /* 1 KiB .. 64 MiB */
  size_t sz[N];
  double t1[N], t2[N], tn[N];
  for (int i = 0; i < N; i++) {
    sz[i] = (size_t)1024 << i;
    const double mb = (double)sz[i] / (1 << 20);
    t1[i] = 4.0 + 40.0 * mb;  /* latency-bound, reads every peer's whole message */
    t2[i] = 7.0 + 12.0 * mb;  /* two barriers, reads one share */
    tn[i] = 11.0 + 3.0 * mb;  /* NCCL: slow start, best bandwidth */
  }
  /* crossings: one-shot/two-shot at 3/28 MiB (~107 KiB), two-shot/NCCL at 4/9 MiB (~455 KiB) */
  size_t one = 1, two = 1;
  llmk_allreduce_fit(N, sz, t1, t2, tn, &one, &two);
  CHECK(one == 65536 && two == 262144, "fit: one %zu, two %zu (want 65536, 262144)", one, two);
  /* a noisy size: two-shot 1% faster at 8 KiB does not move the one-shot range */
  double t2n[N];
  memcpy(t2n, t2, sizeof t2n);
  t2n[3] = t1[3] * 0.99;
  llmk_allreduce_fit(N, sz, t1, t2n, tn, &one, &two);
  CHECK(one == 65536 && two == 262144, "fit with noise: one %zu, two %zu", one, two);
  /* NCCL missing: the own kernels take every size */
  double none[N];
  for (int i = 0; i < N; i++) none[i] = -1;
  llmk_allreduce_fit(N, sz, t1, t2, none, &one, &two);
  CHECK(one == 65536 && two == sz[N - 1], "fit without NCCL: one %zu, two %zu", one, two);
  /* two-shot never best: an empty two-shot range; one-shot never best: one = 0 */
  double slow[N];
  for (int i = 0; i < N; i++) slow[i] = 1e9;
  llmk_allreduce_fit(N, sz, t1, slow, tn, &one, &two);
  CHECK(one == two && one == 131072, "fit without two-shot: one %zu, two %zu (want 131072 twice)", one, two);
  llmk_allreduce_fit(N, sz, slow, t2, tn, &one, &two);
  CHECK(one == 0 && two == 262144, "fit without one-shot: one %zu, two %zu", one, two);
  /* a failed algorithm at one size (time -1) is never chosen there */
  double t1f[N];
  memcpy(t1f, t1, sizeof t1f);
  t1f[0] = -1;
  llmk_allreduce_fit(N, sz, t1f, t2, tn, &one, &two);
  CHECK(one == 0, "fit with one-shot failed at 1 KiB: one %zu (want 0)", one);
}

static void cpu_argument_tests(void) {
  llmk_handle cpu = NULL;
  CHECK(llmk_create_cpu(&cpu) == LLMK_SUCCESS, "%s", llmk_last_error());
  unsigned char blob[LLMK_COMM_HANDLE_BYTES], blobs[2 * LLMK_COMM_HANDLE_BYTES];
  memset(blobs, 0, sizeof blobs);
  llmk_comm out = (llmk_comm)(uintptr_t)0x10;
  CHECK_ERR(llmk_comm_export(cpu, 0, 2, 0, &out, blob), LLMK_ERR_INVALID_ARGUMENT, "export on a CPU handle");
  CHECK(out == NULL || out == (llmk_comm)(uintptr_t)0x10, "export on a CPU handle: *out = %p", (void *)out);
  CHECK_ERR(llmk_comm_export(NULL, 0, 2, 0, &out, blob), LLMK_ERR_INVALID_ARGUMENT, "export with a NULL handle");
  CHECK_ERR(llmk_comm_export(cpu, 0, 2, 0, NULL, blob), LLMK_ERR_INVALID_ARGUMENT, "export with out NULL");
  CHECK_ERR(llmk_comm_export(cpu, 0, 2, 0, &out, NULL), LLMK_ERR_INVALID_ARGUMENT, "export with blob NULL");
  CHECK_ERR(llmk_comm_export(cpu, 2, 2, 0, &out, blob), LLMK_ERR_INVALID_ARGUMENT, "export rank == world (CPU)");
  out = (llmk_comm)(uintptr_t)0x10;
  int dummy_nccl = 0;
  CHECK_ERR(llmk_comm_create_nccl(cpu, &dummy_nccl, 0, &out), LLMK_ERR_INVALID_ARGUMENT, "create_nccl on a CPU handle");
  CHECK(out == NULL, "create_nccl on a CPU handle: *out = %p, want NULL", (void *)out);
  out = (llmk_comm)(uintptr_t)0x10;
  CHECK_ERR(llmk_comm_create_nccl(NULL, &dummy_nccl, 0, &out), LLMK_ERR_INVALID_ARGUMENT, "create_nccl NULL handle");
  CHECK(out == NULL, "create_nccl NULL handle: *out = %p, want NULL", (void *)out);
  CHECK_ERR(llmk_comm_create_nccl(cpu, NULL, 0, &out), LLMK_ERR_INVALID_ARGUMENT, "create_nccl NULL nccl_comm");
  CHECK_ERR(llmk_comm_create_nccl(cpu, &dummy_nccl, 0, NULL), LLMK_ERR_INVALID_ARGUMENT, "create_nccl out NULL");
  CHECK_ERR(llmk_comm_import(NULL, blobs, NULL), LLMK_ERR_INVALID_ARGUMENT, "import NULL comm");
  CHECK(llmk_comm_destroy(NULL) == LLMK_SUCCESS, "destroy(NULL): %s", llmk_last_error());
  int rank = -5, world = -5;
  void *buf = NULL;
  size_t bytes = 0;
  CHECK_ERR(llmk_comm_info(NULL, &rank, &world, &buf, &bytes), LLMK_ERR_INVALID_ARGUMENT, "info NULL comm");
  CHECK_ERR(llmk_comm_check(NULL), LLMK_ERR_INVALID_ARGUMENT, "check NULL comm");
  uint16_t hx[64], hy[64];
  memset(hx, 0, sizeof hx);
  memset(hy, 0x5A, sizeof hy);
  llmk_tensor x = llmk_tensor_1d(hx, LLMK_BF16, 64), y = llmk_tensor_1d(hy, LLMK_BF16, 64);
  CHECK_ERR(llmk_allreduce(NULL, LLMK_ALLREDUCE_AUTO, &x, NULL, &y, NULL), LLMK_ERR_INVALID_ARGUMENT,
            "allreduce NULL comm");
  CHECK_ERR(llmk_allreduce(NULL, LLMK_ALLREDUCE_ONESHOT, NULL, NULL, NULL, NULL), LLMK_ERR_INVALID_ARGUMENT,
            "allreduce all NULL");
  int untouched = 1;
  for (int i = 0; i < 64; i++) untouched &= hy[i] == 0x5A5A;
  CHECK(untouched, "allreduce NULL comm wrote y");
  /* no status to check: it must not crash */
  const llmk_allreduce_algo a = llmk_allreduce_choice(NULL, 4096);
  printf("llmk_allreduce_choice(NULL, 4096) = %d\n", (int)a);
  /* the library stays usable */
  llmk_build_info bi = LLMK_BUILD_INFO_INIT;
  CHECK(llmk_get_build_info(&bi) == LLMK_SUCCESS, "build info after errors");
  llmk_destroy(cpu);
}

int main(void) {
  t_seed();
  cpu_argument_tests();
  table_and_fit_tests();
  TEST_END();
}
