/* llmk_comm_create_nccl (NCCL reached through dlopen), forked ranks
 * (tests/allreduce_ranks.h): with 2+ GPUs, world 2 and all GPUs, llmk's
 * result compared with ncclAllReduce's on the same data, NCCL-only sizes
 * and pointers, the registered buffer, graphs with NCCL calls, and
 * LLMK_ALLREDUCE=nccl; with one GPU, world 1 only (NCCL refuses two ranks
 * on one GPU). Argument errors of llmk_comm_create_nccl.
 * LLMK_TEST_QUICK=1 runs fewer cases. */
#include "allreduce_calls.h"

#ifdef LLMK_WITH_CUDA
/* llmk_comm_create_nccl; every result compared with ncclAllReduce's. */
static void body_nccl(ctx *c) {
  ranks_nccl nc;
  char err[300] = "";
  const int loaded = ranks_nccl_load(&nc, err, sizeof err);
  if (!vote(c, loaded)) {
    if (c->rank == 0) SKIP("NCCL path (%s): %s", c->p->name, err);
    return;
  }
  void *ncomm = NULL;
  const int rc = ranks_nccl_init(c->s, &nc, c->rank, &ncomm);
  CHECK(rc == 0, "ncclCommInitRank: %s", rc > 0 ? nc.GetErrorString(rc) : "aborted");
  if (!vote(c, rc == 0)) return;
  if (c->rank == 0) {
    char v[32];
    ranks_nccl_version_string(nc.version, v, sizeof v);
    printf("  NCCL %s, world %d\n", v, c->world);
  }
  /* argument errors (each rank's own check: no collective starts) */
  const llmk_status IA = LLMK_ERR_INVALID_ARGUMENT;
  llmk_comm out = (llmk_comm)(uintptr_t)0x10;
  CHECK_ERR(llmk_comm_create_nccl(c->h, NULL, 0, &out), IA, "create_nccl NULL nccl_comm");
  CHECK(out == NULL, "create_nccl error: *out = %p, want NULL", (void *)out);
  CHECK_ERR(llmk_comm_create_nccl(NULL, ncomm, 0, &out), IA, "create_nccl NULL handle");
  CHECK_ERR(llmk_comm_create_nccl(c->h, ncomm, 17, &out), IA, "create_nccl buffer_bytes 17");
  CHECK_ERR(llmk_comm_create_nccl(c->h, ncomm, 0, NULL), IA, "create_nccl out NULL");
  if (c->ngpu >= 2) {
    llmk_handle ho = NULL;
    CHECK(llmk_create_cuda((c->dev + 1) % c->ngpu, &ho) == LLMK_SUCCESS, "handle on another GPU: %s",
          llmk_last_error());
    out = (llmk_comm)(uintptr_t)0x10;
    CHECK_ERR(llmk_comm_create_nccl(ho, ncomm, 0, &out), IA, "create_nccl: NCCL comm on another device");
    CHECK(out == NULL, "create_nccl error: *out = %p, want NULL", (void *)out);
    llmk_destroy(ho);
  }
  ranks_barrier(c->s);
  llmk_comm comm = NULL;
  const llmk_status s = llmk_comm_create_nccl(c->h, ncomm, 0, &comm);
  CHECK(s == LLMK_SUCCESS && comm, "llmk_comm_create_nccl: %s (%s)", llmk_status_string(s), llmk_last_error());
  if (vote(c, s == LLMK_SUCCESS)) {
    c->nccl = &nc;
    c->ncomm = ncomm;
    const size_t bb = LLMK_COMM_DEFAULT_BUFFER_BYTES;
    use_comm(c, comm, bb);
    CHECK(llmk_allreduce_choice(comm, 12) == LLMK_ALLREDUCE_NCCL, "choice(12 bytes) with NCCL");
    CHECK(llmk_allreduce_choice(comm, bb + 16) == LLMK_ALLREDUCE_NCCL, "choice(buffer + 16) with NCCL");
    if (c->rank == 0)
      printf("  NCCL comm, world %d: AUTO picks %s at 4 KiB, %s at 256 KiB, %s at 4 MiB\n", c->world,
             algo_name(llmk_allreduce_choice(comm, 4096)), algo_name(llmk_allreduce_choice(comm, 262144)),
             algo_name(llmk_allreduce_choice(comm, (size_t)4 << 20)));
    static const llmk_allreduce_algo algos[4] = {LLMK_ALLREDUCE_AUTO, LLMK_ALLREDUCE_ONESHOT,
                                                 LLMK_ALLREDUCE_TWOSHOT, LLMK_ALLREDUCE_NCCL};
    const int env_forced = c->p->env[0][0] != NULL;
    size_t sizes[40];
    int ns = sweep_sizes(bb, sizes, 38);
    sizes[ns++] = bb + 16;
    sizes[ns++] = 2 * bb;
    int calls = 0;
    for (int si = 0; si < ns; si++) {
      const size_t b = sizes[si];
      int stride = b <= 65536 ? 3 : b <= ((size_t)1 << 20) ? 7 : 13;
      if (quick || env_forced) stride *= 3;
      for (int ci = 0; ci < 48; ci++) { /* dtype x algorithm x residual */
        if ((ci + si) % stride) continue;
        const llmk_dtype dt = dts[ci / 16];
        const int res = ci % 4;
        arc a = mk(comm, dt, (int64_t)(b / llmk_dtype_size(dt)), algos[(ci / 4) % 4], res,
                   res != RES_Y && (ci + si) % 5 == 0);
        run_case(c, &a);
        calls++;
      }
    }
    if (c->rank == 0) printf("  NCCL comm, world %d: %d calls compared with ncclAllReduce\n", c->world, calls);
    needs_nccl(c, comm, bb, LLMK_SUCCESS);
    registered(c, comm);
    /* graphs with NCCL-only messages among the own ones */
    gcall g[4] = {G(comm, LLMK_F32, 1024, LLMK_ALLREDUCE_AUTO, 1, 0, 0, NULL),
                  G(comm, LLMK_F32, 3, LLMK_ALLREDUCE_AUTO, 1, 0, 0, NULL),
                  G(comm, LLMK_F32, 4096, LLMK_ALLREDUCE_AUTO, 1, 1, 0, c->reg),
                  G(comm, LLMK_BF16, 512, LLMK_ALLREDUCE_NCCL, 0, 0, 0, NULL)};
    run_graph(c, "graph with NCCL calls", g, 4, replays(c, 2000));
    compare_hashes(c, c->p->name);
    CHECK(llmk_comm_check(comm) == LLMK_SUCCESS, "check: %s", llmk_last_error());
    c->nccl = NULL;
    destroy_comm(c, comm);
  }
  ranks_barrier(c->s);
  nc.CommDestroy(ncomm);
}

static void gpu_tests(ranks_shared *s) {
  const int ngpu = ar_gpus(s, "all-reduce GPU tests (NCCL)");
  if (!ngpu) return;
  const size_t MiB = (size_t)1 << 20, ncap = 32 * MiB + 4096;
  if (ngpu >= 2) {
    const int wmax = ngpu < LLMK_COMM_MAX_RANKS ? ngpu : LLMK_COMM_MAX_RANKS;
    phase n2 = {"NCCL", 2, body_nccl, 0, ncap, {{0, 0}, {0, 0}}, 400};
    phase nall = {"NCCL", wmax, body_nccl, 0, ncap, {{0, 0}, {0, 0}}, 400};
    phase nenv = {"NCCL, LLMK_ALLREDUCE=nccl", 2, body_nccl, 0, ncap, {{"LLMK_ALLREDUCE", "nccl"}, {0, 0}}, 300};
    run_phase(s, &n2);
    if (wmax > 2) run_phase(s, &nall);
    run_phase(s, &nenv);
  } else {
    phase n1 = {"NCCL", 1, body_nccl, 0, ncap, {{0, 0}, {0, 0}}, 300};
    phase n1env = {"NCCL, LLMK_ALLREDUCE=nccl", 1, body_nccl, 0, ncap, {{"LLMK_ALLREDUCE", "nccl"}, {0, 0}}, 300};
    run_phase(s, &n1);
    run_phase(s, &n1env);
    SKIP("NCCL path with several ranks: 2 GPUs needed (NCCL refuses two ranks on one GPU)");
  }
}
#endif

AR_MAIN(gpu_tests, "all-reduce GPU tests (NCCL)")
