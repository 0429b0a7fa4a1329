/* llmk_allreduce in CUDA graphs and across communicators, forked ranks
 * (tests/allreduce_ranks.h), worlds 1, 2, 3, 4: graphs replayed many times
 * (one call with its input restored before and overwritten after it; the
 * registered buffer, overwritten after each call; a mix of sizes,
 * algorithms and dtypes; f32 outputs accumulate through the residual, so
 * one wrong replay shows in the end); two communicators used in turn,
 * eagerly and in one graph. Then the timeout: LLMK_COMM_TIMEOUT_MS=300,
 * rank 1 skips a call; rank 0's kernel stops, llmk_comm_check and the next
 * call give COMM_TIMEOUT naming rank 1; a new communicator works
 * afterwards. LLMK_TEST_QUICK=1 runs fewer replays. */
#include "allreduce_calls.h"

#ifdef LLMK_WITH_CUDA
static void graphs(ctx *c, llmk_comm comm) {
  const int full = replays(c, 10000);
  /* one call: input restored before it and overwritten right after it */
  gcall g1[1] = {G(comm, LLMK_BF16, 4096, LLMK_ALLREDUCE_AUTO, 0, 0, 1, NULL)};
  run_graph(c, "graph: one call, input overwritten after it", g1, 1, full);
  /* the same through the registered buffer, accumulated: a replay that
   * read an overwritten (NaN) buffer shows at the end */
  gcall g2[1] = {G(comm, LLMK_F32, 2048, LLMK_ALLREDUCE_AUTO, 1, 1, 0, c->reg)};
  run_graph(c, "graph: registered buffer, overwritten after the call", g2, 1, full);
  /* mixed sizes, algorithms and dtypes (an odd count: parities swap each replay) */
  size_t big = (size_t)1 << 20; /* f32 elements: 4 MiB */
  if (big * 4 > c->reg_bytes) big = c->reg_bytes / 4;
  gcall g3[5] = {G(comm, LLMK_F32, 1024, LLMK_ALLREDUCE_ONESHOT, 1, 0, 0, NULL),
                 G(comm, LLMK_F32, 65540, LLMK_ALLREDUCE_TWOSHOT, 1, 0, 0, NULL),
                 G(comm, LLMK_BF16, 8008, LLMK_ALLREDUCE_AUTO, 0, 0, 0, NULL),
                 G(comm, LLMK_F32, 16384, LLMK_ALLREDUCE_AUTO, 1, 1, 0, c->reg),
                 G(comm, LLMK_F32, (int64_t)big, LLMK_ALLREDUCE_AUTO, 1, 0, 0, NULL)};
  run_graph(c, "graph: mixed sizes and algorithms", g3, 5, full / 4 > 0 ? full / 4 : 1);
  /* an eager call still agrees with the peers after the replays */
  arc a = mk(comm, LLMK_BF16, 8192, LLMK_ALLREDUCE_AUTO, RES_SEP, 0);
  run_case(c, &a);
}

/* Two communicators used in turn. */
static void two_comms(ctx *c, llmk_comm A) {
  const size_t bb = 65536;
  llmk_comm B = make_comm(c, bb, "second communicator");
  if (!B) return;
  uint8_t *reg_a = c->reg;
  const size_t reg_a_bytes = c->reg_bytes;
  use_comm(c, B, bb);
  uint8_t *reg_b = c->reg;
  c->reg = reg_a;
  c->reg_bytes = reg_a_bytes;
  for (int i = 0; i < 12; i++) {
    const llmk_dtype dt = dts[i % 3];
    const size_t bytes = (size_t)16 << (2 * (i % 6));
    arc a = mk(A, dt, (int64_t)(bytes / llmk_dtype_size(dt)), own_algos[i % 3], i % 4, i % 5 == 0);
    run_case(c, &a);
    const size_t bbytes = bytes > bb ? bb : bytes;
    arc b = mk(B, dts[(i + 1) % 3], (int64_t)(bbytes / llmk_dtype_size(dts[(i + 1) % 3])), own_algos[(i + 1) % 3],
               (i + 1) % 4, 0);
    run_case(c, &b);
  }
  /* above B's buffer: needs NCCL */
  arc b = mk(B, LLMK_F32, (int64_t)(bb / 4 + 4), LLMK_ALLREDUCE_AUTO, RES_NONE, 0);
  b.want = LLMK_ERR_NOT_SUPPORTED;
  run_case(c, &b);
  CHECK(llmk_allreduce_choice(B, bb + 16) == LLMK_ALLREDUCE_NCCL, "choice above the buffer (B): %d",
        (int)llmk_allreduce_choice(B, bb + 16));
  gcall g[4] = {G(A, LLMK_F32, 4096, LLMK_ALLREDUCE_AUTO, 1, 0, 0, NULL),
                G(B, LLMK_F32, 4096, LLMK_ALLREDUCE_AUTO, 1, 1, 0, reg_b),
                G(A, LLMK_F32, 12288, LLMK_ALLREDUCE_TWOSHOT, 1, 1, 0, reg_a),
                G(B, LLMK_BF16, 1024, LLMK_ALLREDUCE_ONESHOT, 0, 0, 0, NULL)};
  run_graph(c, "graph: two communicators in turn", g, 4, replays(c, 10000) / 4 + 1);
  destroy_comm(c, B);
}

/* ------------------------------------------------------------------------ */
/* Phase bodies                                                              */
/* ------------------------------------------------------------------------ */

/* Graphs and two communicators on the phase's main communicator. */
static void body_graphs(ctx *c) {
  const size_t bb = c->p->buffer_bytes ? c->p->buffer_bytes : LLMK_COMM_DEFAULT_BUFFER_BYTES;
  llmk_comm comm = make_comm(c, c->p->buffer_bytes, "main communicator");
  if (!comm) return;
  use_comm(c, comm, bb);
  graphs(c, comm);
  compare_hashes(c, "graphs");
  two_comms(c, comm);
  compare_hashes(c, "two communicators");
  CHECK(llmk_comm_check(comm) == LLMK_SUCCESS, "check at the end: %s", llmk_last_error());
  destroy_comm(c, comm);
}

/* LLMK_COMM_TIMEOUT_MS=300: rank 1 skips one call. */
static void body_timeout(ctx *c) {
  llmk_comm comm = make_comm(c, 0, "timeout communicator");
  if (!comm) return;
  use_comm(c, comm, LLMK_COMM_DEFAULT_BUFFER_BYTES);
  for (int i = 0; i < 3; i++) {
    arc a = mk(comm, LLMK_BF16, 2048, own_algos[i], RES_SEP, 0);
    run_case(c, &a);
  }
  if (!ranks_barrier(c->s)) return;
  if (c->rank == 0) {
    T_CU(cudaMemset(c->dy, POISON, 8192));
    llmk_tensor x = llmk_tensor_1d(c->dx, LLMK_BF16, 2048), y = llmk_tensor_1d(c->dy, LLMK_BF16, 2048);
    const double t0 = ranks_now();
    llmk_status s = llmk_allreduce(comm, LLMK_ALLREDUCE_AUTO, &x, NULL, &y, c->st);
    CHECK(s == LLMK_SUCCESS, "the call whose peer never comes: %s", llmk_last_error());
    const cudaError_t e = cudaStreamSynchronize(c->st);
    const double dt = ranks_now() - t0;
    CHECK(e == cudaSuccess, "after the timed-out call: %s", cudaGetErrorString(e));
    CHECK(dt >= 0.25 && dt < 30, "the timed-out call took %.3f s (timeout 0.3 s)", dt);
    printf("  timed-out call returned after %.3f s\n", dt);
    T_CU(cudaDeviceSynchronize());
    s = llmk_comm_check(comm);
    CHECK(s == LLMK_ERR_COMM_TIMEOUT, "llmk_comm_check: %s, want COMM_TIMEOUT", llmk_status_string(s));
    CHECK(strstr(llmk_last_error(), "rank 1") != NULL, "llmk_comm_check's message does not name rank 1: \"%s\"",
          llmk_last_error());
    printf("  llmk_comm_check: %s\n", llmk_last_error());
    T_CU(cudaMemset(c->dy, POISON, 8192));
    prime();
    s = llmk_allreduce(comm, LLMK_ALLREDUCE_AUTO, &x, NULL, &y, c->st);
    CHECK(s == LLMK_ERR_COMM_TIMEOUT, "the call after the timeout: %s, want COMM_TIMEOUT", llmk_status_string(s));
    CHECK(strstr(llmk_last_error(), "rank 1") != NULL, "the next call's message does not name rank 1: \"%s\"",
          llmk_last_error());
    T_CU(cudaDeviceSynchronize());
    uint8_t h[4096];
    T_CU(cudaMemcpy(h, c->dy, sizeof h, cudaMemcpyDeviceToHost));
    size_t bad = 0;
    for (size_t i = 0; i < sizeof h; i++) bad += h[i] != POISON;
    CHECK(bad == 0, "the refused call wrote %zu bytes", bad);
    CHECK(llmk_comm_check(comm) == LLMK_ERR_COMM_TIMEOUT, "the communicator stays failed");
  }
  ranks_barrier(c->s);
  if (c->rank != 0)
    CHECK(llmk_comm_check(comm) == LLMK_SUCCESS, "rank %d (no call of its own timed out): %s", c->rank,
          llmk_last_error());
  destroy_comm(c, comm);
  /* the library stays usable: a fresh communicator works */
  comm = make_comm(c, 0, "communicator after a timeout");
  if (!comm) return;
  use_comm(c, comm, LLMK_COMM_DEFAULT_BUFFER_BYTES);
  for (int i = 0; i < 3; i++) {
    arc a = mk(comm, dts[i], 4096, own_algos[i], RES_SEP, i == 1);
    run_case(c, &a);
  }
  CHECK(llmk_comm_check(comm) == LLMK_SUCCESS, "check on the new communicator: %s", llmk_last_error());
  destroy_comm(c, comm);
}

static void gpu_tests(ranks_shared *s) {
  const int ngpu = ar_gpus(s, "all-reduce GPU tests (graphs, timeout)");
  if (!ngpu) return;
  const size_t MiB = (size_t)1 << 20;
  phase g1 = {"graphs", 1, body_graphs, 0, 16 * MiB + 4096, {{0, 0}, {0, 0}}, 300};
  phase g2 = {"graphs", 2, body_graphs, 0, 16 * MiB + 4096, {{0, 0}, {0, 0}}, 400};
  phase g3 = {"graphs", 3, body_graphs, 0, 16 * MiB + 4096, {{0, 0}, {0, 0}}, 400};
  phase g4 = {"graphs", 4, body_graphs, 0, 16 * MiB + 4096, {{0, 0}, {0, 0}}, 400};
  phase tmo = {"timeout", 2, body_timeout, 0, MiB, {{"LLMK_COMM_TIMEOUT_MS", "300"}, {0, 0}}, 120};
  run_phase(s, &g1);
  run_phase(s, &g2);
  run_phase(s, &g3);
  if (!quick || ngpu >= 4) run_phase(s, &g4);
  run_phase(s, &tmo);
}
#endif

AR_MAIN(gpu_tests, "all-reduce GPU tests (graphs, timeout)")
