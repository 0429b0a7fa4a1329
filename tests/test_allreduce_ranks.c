/* llmk_allreduce on the GPU, forked ranks (tests/allreduce_ranks.h), worlds
 * 1, 2, 3, 4 (export/import, no NCCL): argument errors on the GPU; every
 * power-of-two size from 16 bytes to the buffer plus odd multiples of 16,
 * for bf16/f16/f32 x ONESHOT/TWOSHOT/AUTO x residual none/separate/== x/== y
 * x in place or not (all combinations up to 64 KiB, a rotating subset
 * above); sizes and pointers that need NCCL (NOT_SUPPORTED without it,
 * nothing written, the communicator still usable); the registered buffer
 * (x->data == llmk_comm_info's buffer, overwritten right after each call:
 * the call must have waited for its peers' reads); blobs that are not a
 * communicator's. Then LLMK_ALLREDUCE=nccl on a communicator without NCCL:
 * AUTO gives NOT_SUPPORTED, forced own algorithms run.
 * LLMK_TEST_QUICK=1 runs fewer cases. */
#include "allreduce_calls.h"

#ifdef LLMK_WITH_CUDA
/* every size x dtype x algorithm x residual/in-place (a subset above 64 KiB) */
static void sweep(ctx *c, llmk_comm comm, size_t limit) {
  size_t sizes[40];
  const int ns = sweep_sizes(limit, sizes, 40);
  int calls = 0;
  for (int si = 0; si < ns; si++) {
    const size_t b = sizes[si];
    int stride = b <= 65536 ? 1 : b <= ((size_t)1 << 20) ? 7 : 21;
    if (quick) stride *= b <= 65536 ? 3 : 2;
    for (int ci = 0; ci < 63; ci++) {
      if ((ci + si) % stride) continue;
      const llmk_dtype dt = dts[ci / 21];
      const int ai = (ci / 7) % 3, vi = ci % 7;
      arc a = mk(comm, dt, (int64_t)(b / llmk_dtype_size(dt)), own_algos[ai], variants[vi][1], variants[vi][0]);
      a.twod = (ci + si) & 1;
      run_case(c, &a);
      calls++;
    }
  }
  if (c->rank == 0)
    printf("  w%d: %d calls of %d sizes up to %zu bytes (%d AUTO calls above the size table's NCCL threshold "
           "refused: no NCCL)\n",
           c->world, calls, ns, limit, c->auto_refused);
}

/* Invalid calls (symmetric on all ranks: no call is issued). */
static void gpu_argument_errors(ctx *c, llmk_comm comm) {
  const int64_t n = 64;
  T_CU(cudaMemset(c->dy, POISON, 4096));
  llmk_tensor x = llmk_tensor_1d(c->dx, LLMK_BF16, n), y = llmk_tensor_1d(c->dy, LLMK_BF16, n);
  llmk_tensor yf16 = llmk_tensor_1d(c->dy, LLMK_F16, n), xe = llmk_tensor_1d(c->dx, LLMK_E4M3, n),
              ye = llmk_tensor_1d(c->dy, LLMK_E4M3, n), yshort = llmk_tensor_1d(c->dy, LLMK_BF16, n - 8),
              xs = llmk_tensor_2d(c->dx, LLMK_BF16, 4, 8, 16), ys = llmk_tensor_2d(c->dy, LLMK_BF16, 4, 8, 16),
              rshort = llmk_tensor_1d(c->dr, LLMK_BF16, n / 2), rf32 = llmk_tensor_1d(c->dr, LLMK_F32, n),
              xnull = llmk_tensor_1d(NULL, LLMK_BF16, n);
  const llmk_status IA = LLMK_ERR_INVALID_ARGUMENT;
  CHECK_ERR(llmk_allreduce(NULL, LLMK_ALLREDUCE_AUTO, &x, NULL, &y, c->st), IA, "NULL comm");
  CHECK_ERR(llmk_allreduce(comm, LLMK_ALLREDUCE_AUTO, NULL, NULL, &y, c->st), IA, "NULL x");
  CHECK_ERR(llmk_allreduce(comm, LLMK_ALLREDUCE_AUTO, &x, NULL, NULL, c->st), IA, "NULL y");
  CHECK_ERR(llmk_allreduce(comm, LLMK_ALLREDUCE_AUTO, &xnull, NULL, &y, c->st), IA, "x->data NULL");
  CHECK_ERR(llmk_allreduce(comm, LLMK_ALLREDUCE_AUTO, &x, NULL, &yf16, c->st), IA, "x bf16, y f16");
  CHECK_ERR(llmk_allreduce(comm, LLMK_ALLREDUCE_AUTO, &xe, NULL, &ye, c->st), IA, "e4m3 dtype");
  CHECK_ERR(llmk_allreduce(comm, LLMK_ALLREDUCE_AUTO, &x, NULL, &yshort, c->st), IA, "y shorter than x");
  CHECK_ERR(llmk_allreduce(comm, LLMK_ALLREDUCE_ONESHOT, &xs, NULL, &ys, c->st), IA, "non-contiguous x and y");
  CHECK_ERR(llmk_allreduce(comm, LLMK_ALLREDUCE_AUTO, &x, &rshort, &y, c->st), IA, "residual shape");
  CHECK_ERR(llmk_allreduce(comm, LLMK_ALLREDUCE_AUTO, &x, &rf32, &y, c->st), IA, "residual dtype");
  CHECK_ERR(llmk_allreduce(comm, (llmk_allreduce_algo)99, &x, NULL, &y, c->st), IA, "algo 99");
  uint16_t *host = t_xmalloc((size_t)n * 2);
  memset(host, 0, (size_t)n * 2);
  llmk_tensor xh = llmk_tensor_1d(host, LLMK_BF16, n), yh = llmk_tensor_1d(host, LLMK_BF16, n);
  CHECK_ERR(llmk_allreduce(comm, LLMK_ALLREDUCE_AUTO, &xh, NULL, &y, c->st), IA, "x in host memory");
  CHECK_ERR(llmk_allreduce(comm, LLMK_ALLREDUCE_AUTO, &x, NULL, &yh, c->st), IA, "y in host memory");
  free(host);
  if (c->ngpu >= 2) { /* memory of another GPU */
    const int other = (c->dev + 1) % c->ngpu;
    void *od = NULL;
    T_CU(cudaSetDevice(other));
    T_CU(cudaMalloc(&od, 4096));
    T_CU(cudaSetDevice(c->dev));
    llmk_tensor xo = llmk_tensor_1d(od, LLMK_BF16, n);
    CHECK_ERR(llmk_allreduce(comm, LLMK_ALLREDUCE_AUTO, &xo, NULL, &y, c->st), IA, "x on another GPU");
    T_CU(cudaFree(od));
  }
  uint8_t h[4096];
  T_CU(cudaMemcpy(h, c->dy, sizeof h, cudaMemcpyDeviceToHost));
  size_t bad = 0;
  for (size_t i = 0; i < sizeof h; i++) bad += h[i] != POISON;
  CHECK(bad == 0, "invalid calls wrote %zu bytes of y", bad);
  CHECK(cudaGetLastError() == cudaSuccess, "a CUDA error was left pending");
}

/* export's argument checks on a CUDA handle */
static void export_errors(ctx *c) {
  unsigned char blob[LLMK_COMM_HANDLE_BYTES];
  llmk_comm out = NULL;
  const llmk_status IA = LLMK_ERR_INVALID_ARGUMENT;
  CHECK_ERR(llmk_comm_export(c->h, -1, 2, 0, &out, blob), IA, "export rank -1");
  CHECK_ERR(llmk_comm_export(c->h, 2, 2, 0, &out, blob), IA, "export rank == world");
  CHECK_ERR(llmk_comm_export(c->h, 0, 0, 0, &out, blob), IA, "export world 0");
  CHECK_ERR(llmk_comm_export(c->h, 0, LLMK_COMM_MAX_RANKS + 1, 0, &out, blob), IA, "export world MAX+1");
  CHECK_ERR(llmk_comm_export(c->h, 0, 2, 17, &out, blob), IA, "export buffer_bytes 17");
  CHECK_ERR(llmk_comm_export(c->h, 0, 2, 8, &out, blob), IA, "export buffer_bytes 8");
  CHECK_ERR(llmk_comm_export(c->h, 0, 2, 0, NULL, blob), IA, "export out NULL");
  CHECK_ERR(llmk_comm_export(c->h, 0, 2, 0, &out, NULL), IA, "export blob NULL");
  CHECK_ERR(llmk_comm_import(NULL, blob, NULL), IA, "import NULL comm");
}

/* Blobs that are not one communicator's, in this world's rank order. */
static void bad_blobs(ctx *c) {
  llmk_comm comm = NULL;
  unsigned char blob[LLMK_COMM_HANDLE_BYTES];
  unsigned char *all = t_xmalloc((size_t)c->world * LLMK_COMM_HANDLE_BYTES);
  llmk_status s = llmk_comm_export(c->h, c->rank, c->world, 0, &comm, blob);
  CHECK(s == LLMK_SUCCESS, "export: %s", llmk_last_error());
  if (vote(c, s == LLMK_SUCCESS) && ranks_allgather_blob(c->s, c->rank, blob, all)) {
    /* before import: calls are refused */
    T_CU(cudaMemset(c->dy, POISON, 64));
    llmk_tensor x = llmk_tensor_1d(c->dx, LLMK_BF16, 32), y = llmk_tensor_1d(c->dy, LLMK_BF16, 32);
    CHECK_ERR(llmk_allreduce(comm, LLMK_ALLREDUCE_AUTO, &x, NULL, &y, c->st), LLMK_ERR_INVALID_ARGUMENT,
              "allreduce before import");
    CHECK_ERR(llmk_comm_import(comm, NULL, NULL), LLMK_ERR_INVALID_ARGUMENT, "import NULL blobs");
    unsigned char *zero = calloc((size_t)c->world, LLMK_COMM_HANDLE_BYTES);
    CHECK_ERR(llmk_comm_import(comm, zero, NULL), LLMK_ERR_INVALID_ARGUMENT, "import zeroed blobs");
    free(zero);
    if (c->world >= 2) { /* not in rank order */
      unsigned char *sw = t_xmalloc((size_t)c->world * LLMK_COMM_HANDLE_BYTES);
      memcpy(sw, all, (size_t)c->world * LLMK_COMM_HANDLE_BYTES);
      memcpy(sw, all + LLMK_COMM_HANDLE_BYTES, LLMK_COMM_HANDLE_BYTES);
      memcpy(sw + LLMK_COMM_HANDLE_BYTES, all, LLMK_COMM_HANDLE_BYTES);
      CHECK_ERR(llmk_comm_import(comm, sw, NULL), LLMK_ERR_INVALID_ARGUMENT, "import blobs of ranks 0 and 1 swapped");
      free(sw);
    }
  }
  free(all);
  sync_all(c);
  CHECK(llmk_comm_destroy(comm) == LLMK_SUCCESS, "destroy after failed imports: %s", llmk_last_error());
  ranks_barrier(c->s);
}

/* ------------------------------------------------------------------------ */
/* Phase bodies                                                              */
/* ------------------------------------------------------------------------ */

static void body_main(ctx *c) {
  export_errors(c);
  const size_t bb = c->p->buffer_bytes ? c->p->buffer_bytes : LLMK_COMM_DEFAULT_BUFFER_BYTES;
  llmk_comm comm = make_comm(c, c->p->buffer_bytes, "main communicator");
  if (!comm) return;
  unsigned char blobs[LLMK_COMM_MAX_RANKS * LLMK_COMM_HANDLE_BYTES];
  memcpy(blobs, c->s->blobs, sizeof blobs);
  CHECK_ERR(llmk_comm_import(comm, blobs, NULL), LLMK_ERR_INVALID_ARGUMENT, "import twice");
  use_comm(c, comm, bb);
  CHECK(llmk_comm_check(comm) == LLMK_SUCCESS, "check: %s", llmk_last_error());
  /* AUTO's choice after the size rules */
  const llmk_allreduce_algo c12 = llmk_allreduce_choice(comm, 12), cbig = llmk_allreduce_choice(comm, bb + 16),
                            c4k = llmk_allreduce_choice(comm, 4096), c1m = llmk_allreduce_choice(comm, 1 << 20);
  CHECK(c12 == LLMK_ALLREDUCE_NCCL, "choice(12 bytes) = %s, want nccl", algo_name(c12));
  CHECK(cbig == LLMK_ALLREDUCE_NCCL, "choice(buffer + 16) = %s, want nccl", algo_name(cbig));
  CHECK(c4k == LLMK_ALLREDUCE_ONESHOT || c4k == LLMK_ALLREDUCE_TWOSHOT, "choice(4096) = %s", algo_name(c4k));
  if (c->rank == 0)
    printf("  w%d: AUTO picks %s at 4 KiB, %s at 1 MiB, %s at %zu bytes\n", c->world, algo_name(c4k),
           algo_name(c1m), algo_name(llmk_allreduce_choice(comm, bb)), bb);
  gpu_argument_errors(c, comm);
  sweep(c, comm, bb);
  compare_hashes(c, "sweep");
  needs_nccl(c, comm, bb, LLMK_ERR_NOT_SUPPORTED);
  {
    /* empty tensors: no status is documented; either way the ranks stay in step */
    llmk_tensor x = llmk_tensor_1d(c->dx, LLMK_BF16, 0), y = llmk_tensor_1d(c->dy, LLMK_BF16, 0);
    const llmk_status s = llmk_allreduce(comm, LLMK_ALLREDUCE_AUTO, &x, NULL, &y, c->st);
    CHECK(s == LLMK_SUCCESS || s == LLMK_ERR_INVALID_ARGUMENT, "0 elements: %s (%s)", llmk_status_string(s),
          llmk_last_error());
    if (c->rank == 0) printf("  w%d: 0 elements: %s\n", c->world, llmk_status_string(s));
    arc a = mk(comm, LLMK_BF16, 2048, LLMK_ALLREDUCE_AUTO, RES_SEP, 0);
    run_case(c, &a);
  }
  registered(c, comm);
  compare_hashes(c, "registered buffer");
  CHECK(llmk_comm_check(comm) == LLMK_SUCCESS, "check at the end: %s", llmk_last_error());
  destroy_comm(c, comm);
  bad_blobs(c);
}

/* LLMK_ALLREDUCE=nccl (set before any llmk call) on a communicator without
 * NCCL: AUTO needs NCCL, forced own algorithms run. */
static void body_env(ctx *c) {
  llmk_comm comm = make_comm(c, 0, "LLMK_ALLREDUCE=nccl communicator");
  if (!comm) return;
  use_comm(c, comm, LLMK_COMM_DEFAULT_BUFFER_BYTES);
  arc a = mk(comm, LLMK_BF16, 2048, LLMK_ALLREDUCE_AUTO, RES_NONE, 0);
  a.want = LLMK_ERR_NOT_SUPPORTED;
  run_case(c, &a);
  a = mk(comm, LLMK_F32, 256, LLMK_ALLREDUCE_AUTO, RES_SEP, 0);
  a.want = LLMK_ERR_NOT_SUPPORTED;
  run_case(c, &a);
  a = mk(comm, LLMK_BF16, 2048, LLMK_ALLREDUCE_ONESHOT, RES_SEP, 0);
  run_case(c, &a);
  a = mk(comm, LLMK_F16, 4096, LLMK_ALLREDUCE_TWOSHOT, RES_NONE, 1);
  run_case(c, &a);
  a = mk(comm, LLMK_F32, 1024, LLMK_ALLREDUCE_ONESHOT, RES_NONE, 0);
  a.reg = 1;
  run_case(c, &a);
  const llmk_allreduce_algo ch = llmk_allreduce_choice(comm, 4096);
  CHECK(ch != LLMK_ALLREDUCE_NCCL, "llmk_allreduce_choice must ignore LLMK_ALLREDUCE: got nccl at 4 KiB");
  compare_hashes(c, "LLMK_ALLREDUCE=nccl");
  destroy_comm(c, comm);
}

static void gpu_tests(ranks_shared *s) {
  const int ngpu = ar_gpus(s, "all-reduce GPU tests (ranks)");
  if (!ngpu) return;
  const size_t MiB = (size_t)1 << 20;
  const size_t big = quick ? 0 : 64 * MiB; /* world 2's main buffer: sizes up to 64 MiB */
  phase main1 = {"main", 1, body_main, 0, 16 * MiB + 4096, {{0, 0}, {0, 0}}, 300};
  phase main2 = {"main", 2, body_main, big, (big ? big : 16 * MiB) + 4096, {{0, 0}, {0, 0}}, 400};
  phase main3 = {"main", 3, body_main, 0, 16 * MiB + 4096, {{0, 0}, {0, 0}}, 400};
  phase main4 = {"main", 4, body_main, 0, 16 * MiB + 4096, {{0, 0}, {0, 0}}, 400};
  phase env = {"LLMK_ALLREDUCE=nccl without NCCL", 2, body_env, 0, MiB, {{"LLMK_ALLREDUCE", "nccl"}, {0, 0}}, 120};
  run_phase(s, &main1);
  run_phase(s, &main2);
  run_phase(s, &main3);
  if (!quick || ngpu >= 4) run_phase(s, &main4);
  run_phase(s, &env);
}
#endif

AR_MAIN(gpu_tests, "all-reduce GPU tests (ranks)")
