/* The forked-rank machinery of the all-reduce GPU tests
 * (tests/test_allreduce_{ranks,graphs,nccl}.c): one process per rank
 * (tools/ranks.h forks them before any CUDA call; the parent never
 * initializes CUDA until every child has exited). Rank r runs on GPU
 * r % ngpu: with one GPU all ranks share it (CUDA IPC works between
 * processes on one GPU; the GPU time-slices between them, so calls that
 * wait for a peer are slow and the graph replay counts are cut).
 *
 * Inputs are small integers, x_r[i] = ((7 i + 3 r + k) % 17) - 8 with k a
 * per-call counter, residual[i] = (i % 5) - 2, so every sum is exact in
 * bf16, f16 and f32 and each element is compared exactly with the sum made
 * on the host; outputs are poisoned before each call and a guard region
 * after them must stay poisoned; a hash of every output is compared across
 * the ranks (the results must be bitwise identical on all ranks).
 * Here: the values, a rank's context, the communicator helpers, a phase
 * (a body run by `world` forked ranks) and the GPU probe; the calls are in
 * tests/allreduce_calls.h. */
#ifndef LLMK_TESTS_ALLREDUCE_RANKS_H
#define LLMK_TESTS_ALLREDUCE_RANKS_H

#include "check_err.h"
#include "core/env.h"
#include "harness.h"
#include "llmk.h"
#include "ranks.h"

static int quick; /* LLMK_TEST_QUICK=1: fewer cases */
static inline void ar_read_quick(void) {
  const char *q = getenv("LLMK_TEST_QUICK");
  quick = q && *q && strcmp(q, "0");
}

#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>

/* ------------------------------------------------------------------------ */
/* Values                                                                    */
/* ------------------------------------------------------------------------ */

#define GUARD 256
#define POISON 0xA5
#define VMAX 128 /* |values| encoded by the tables */

static uint32_t enc_tab[3][2 * VMAX + 1]; /* [f32, f16, bf16][v + VMAX] bits */
static inline void enc_init(void) {
  for (int v = -VMAX; v <= VMAX; v++) {
    const float f = (float)v;
    memcpy(&enc_tab[0][v + VMAX], &f, 4);
    enc_tab[1][v + VMAX] = llmk_float_to_f16(f);
    enc_tab[2][v + VMAX] = llmk_float_to_bf16(f);
  }
}
static inline int dt_index(llmk_dtype dt) { return dt == LLMK_F32 ? 0 : dt == LLMK_F16 ? 1 : 2; }
static inline void put(void *p, llmk_dtype dt, int64_t i, int v) {
  const uint32_t b = enc_tab[dt_index(dt)][v + VMAX];
  if (dt == LLMK_F32) ((uint32_t *)p)[i] = b;
  else ((uint16_t *)p)[i] = (uint16_t)b;
}
static inline uint32_t bits_at(const void *p, llmk_dtype dt, int64_t i) {
  return dt == LLMK_F32 ? ((const uint32_t *)p)[i] : ((const uint16_t *)p)[i];
}
static inline float bits_value(llmk_dtype dt, uint32_t b) {
  if (dt == LLMK_F32) {
    float f;
    memcpy(&f, &b, 4);
    return f;
  }
  return dt == LLMK_F16 ? llmk_f16_to_float((uint16_t)b) : llmk_bf16_to_float((uint16_t)b);
}
/* x_r[i] for call counter k; residual[i] */
static inline int xval(int64_t i, int r, int k) { return (int)((i * 7 + r * 3 + k) % 17) - 8; }
static inline int rval(int64_t i) { return (int)(i % 5) - 2; }

static inline void fill_x(void *h, llmk_dtype dt, int64_t n, int r, int k) {
  int v = (r * 3 + k) % 17;
  for (int64_t i = 0; i < n; i++) {
    put(h, dt, i, v - 8);
    v += 7;
    if (v >= 17) v -= 17;
  }
}
static inline void fill_res(void *h, llmk_dtype dt, int64_t n) {
  for (int64_t i = 0; i < n; i++) put(h, dt, i, rval(i));
}

enum { RES_NONE, RES_SEP, RES_X, RES_Y };
static const char *const res_names[] = {"none", "separate", "=x", "=y"};
static const char *algo_name(llmk_allreduce_algo a) {
  switch (a) {
    case LLMK_ALLREDUCE_AUTO: return "auto";
    case LLMK_ALLREDUCE_ONESHOT: return "oneshot";
    case LLMK_ALLREDUCE_TWOSHOT: return "twoshot";
    case LLMK_ALLREDUCE_NCCL: return "nccl";
  }
  return "?";
}

/* ------------------------------------------------------------------------ */
/* Per-rank context                                                          */
/* ------------------------------------------------------------------------ */

typedef struct phase phase;
typedef struct ctx {
  ranks_shared *s;
  const phase *p;
  int rank, world, dev, ngpu, shared_gpu, p2p;
  llmk_handle h;
  cudaStream_t st;
  int call;      /* per-call counter (same sequence on every rank) */
  uint64_t hash; /* of every successful output, compared across ranks */
  size_t cap;    /* bytes of each test buffer (without guards) */
  uint8_t *dx, *dy, *dr, *dn;
  uint8_t *hx, *hy, *hr, *hn;
  uint8_t *reg; /* the current communicator's registered buffer */
  size_t reg_bytes;
  ranks_nccl *nccl;
  void *ncomm;
  int auto_refused; /* AUTO calls refused with NOT_SUPPORTED where the table prefers NCCL (no NCCL) */
} ctx;

struct phase {
  const char *name;
  int world;
  void (*body)(ctx *c);
  size_t buffer_bytes; /* the main communicator's */
  size_t cap;          /* test buffers */
  const char *env[2][2];
  double timeout_s;
};

static inline int replays(const ctx *c, int full) {
  int r = c->shared_gpu ? 200 : full;
  if (quick) r = c->shared_gpu ? 50 : full / 10;
  return r;
}

/* 1 if every rank says ok (a barrier; 0 on abort). */
static inline int vote(ctx *c, int ok) {
  c->s->u64[c->rank][15] = (uint64_t)(ok != 0);
  if (!ranks_barrier(c->s)) return 0;
  int all = 1;
  for (int r = 0; r < c->world; r++) all &= c->s->u64[r][15] != 0;
  if (!ranks_barrier(c->s)) return 0;
  return all;
}

/* Every rank's output hash (of the outputs since the last comparison,
 * those without residual = x, which differ by rank) equals rank 0's. */
static inline void compare_hashes(ctx *c, const char *what) {
  c->s->u64[c->rank][0] = c->hash;
  if (!ranks_barrier(c->s)) return;
  for (int r = 0; r < c->world; r++)
    if (r != c->rank && c->rank == 0)
      CHECK(c->s->u64[r][0] == c->hash, "%s: rank %d's outputs differ from rank 0's (hash %016llx vs %016llx)",
            what, r, (unsigned long long)c->s->u64[r][0], (unsigned long long)c->hash);
  ranks_barrier(c->s);
  c->hash = 1469598103934665603ull; /* each section on its own */
}

static inline void sync_all(ctx *c) {
  T_CU(cudaStreamSynchronize(c->st));
  T_CU(cudaDeviceSynchronize());
  ranks_barrier(c->s);
}

static inline llmk_comm make_comm(ctx *c, size_t buffer_bytes, const char *what) {
  llmk_comm comm = NULL;
  unsigned char blob[LLMK_COMM_HANDLE_BYTES];
  unsigned char *all = t_xmalloc((size_t)c->world * LLMK_COMM_HANDLE_BYTES);
  llmk_status s = llmk_comm_export(c->h, c->rank, c->world, buffer_bytes, &comm, blob);
  CHECK(s == LLMK_SUCCESS && comm, "%s: export: %s (%s)", what, llmk_status_string(s), llmk_last_error());
  if (!vote(c, s == LLMK_SUCCESS) || !ranks_allgather_blob(c->s, c->rank, blob, all)) {
    llmk_comm_destroy(comm);
    free(all);
    return NULL;
  }
  s = llmk_comm_import(comm, all, NULL);
  free(all);
  if (!c->p2p) {
    CHECK(s == LLMK_ERR_NOT_SUPPORTED, "%s: import without P2P between the GPUs: got %s, want NOT_SUPPORTED", what,
          llmk_status_string(s));
    if (c->rank == 0) SKIP("%s: the GPUs cannot reach each other (no P2P)", what);
  } else {
    CHECK(s == LLMK_SUCCESS, "%s: import: %s (%s)", what, llmk_status_string(s), llmk_last_error());
  }
  if (!vote(c, s == LLMK_SUCCESS)) {
    sync_all(c);
    llmk_comm_destroy(comm);
    ranks_barrier(c->s);
    return NULL;
  }
  return comm;
}

static inline void destroy_comm(ctx *c, llmk_comm comm) {
  if (!comm) return;
  sync_all(c);
  const llmk_status s = llmk_comm_destroy(comm);
  CHECK(s == LLMK_SUCCESS, "destroy: %s (%s)", llmk_status_string(s), llmk_last_error());
  ranks_barrier(c->s);
}

/* The registered buffer of comm (checks llmk_comm_info). */
static inline void use_comm(ctx *c, llmk_comm comm, size_t want_bytes) {
  int rank = -1, world = -1;
  void *buf = NULL;
  size_t bytes = 0;
  const llmk_status s = llmk_comm_info(comm, &rank, &world, &buf, &bytes);
  CHECK(s == LLMK_SUCCESS, "info: %s", llmk_last_error());
  CHECK(rank == c->rank && world == c->world, "info: rank %d world %d, want %d %d", rank, world, c->rank, c->world);
  CHECK(buf != NULL && bytes == want_bytes, "info: buffer %p, %zu bytes, want %zu", buf, bytes, want_bytes);
  CHECK(llmk_comm_info(comm, NULL, NULL, NULL, NULL) == LLMK_SUCCESS, "info with NULL outputs: %s",
        llmk_last_error());
  c->reg = buf;
  c->reg_bytes = bytes;
}

/* ------------------------------------------------------------------------ */
/* Rank processes                                                            */
/* ------------------------------------------------------------------------ */

static inline int rank_main(ranks_shared *s, int rank, void *arg) {
  const phase *p = arg;
  t_passed = t_failed = t_skipped = 0;
  for (int i = 0; i < 2; i++)
    if (p->env[i][0]) setenv(p->env[i][0], p->env[i][1], 1);
  llmk_env_refresh(); /* the library reads its environment once (a fork inherits what it read) */
  ctx c;
  memset(&c, 0, sizeof c);
  c.s = s;
  c.p = p;
  c.rank = rank;
  c.world = p->world;
  c.ngpu = s->ngpu;
  c.dev = rank % s->ngpu;
  c.shared_gpu = p->world > s->ngpu;
  c.hash = 1469598103934665603ull;
  c.call = 1000 + (int)(t_rand_u64() % 1000); /* the parent's generator: the same on every rank */
  enc_init();
  T_CU(cudaSetDevice(c.dev));
  c.p2p = 1;
  for (int a = 0; a < p->world && a < s->ngpu; a++)
    for (int b = 0; b < p->world && b < s->ngpu; b++) {
      int can = 1;
      if (a != b && cudaDeviceCanAccessPeer(&can, a, b) != cudaSuccess) can = 0;
      c.p2p &= can != 0;
    }
  if (llmk_create_cuda(c.dev, &c.h) != LLMK_SUCCESS) {
    CHECK(0, "rank %d: llmk_create_cuda(%d): %s", rank, c.dev, llmk_last_error());
  } else {
    T_CU(cudaStreamCreateWithFlags(&c.st, cudaStreamNonBlocking));
    c.cap = p->cap;
    const size_t alloc = c.cap + 2 * GUARD;
    T_CU(cudaMalloc((void **)&c.dx, alloc));
    T_CU(cudaMalloc((void **)&c.dy, alloc));
    T_CU(cudaMalloc((void **)&c.dr, alloc));
    T_CU(cudaMalloc((void **)&c.dn, alloc));
    c.hx = t_xmalloc(alloc);
    c.hy = t_xmalloc(alloc);
    c.hr = t_xmalloc(alloc);
    c.hn = t_xmalloc(alloc);
    p->body(&c);
    T_CU(cudaDeviceSynchronize());
    cudaFree(c.dx);
    cudaFree(c.dy);
    cudaFree(c.dr);
    cudaFree(c.dn);
    free(c.hx);
    free(c.hy);
    free(c.hr);
    free(c.hn);
    cudaStreamDestroy(c.st);
    llmk_destroy(c.h);
  }
  s->stat[rank][0] = t_passed;
  s->stat[rank][1] = t_failed;
  s->stat[rank][2] = t_skipped;
  return 0;
}

static double deadline;

static inline void run_phase(ranks_shared *s, phase *p) {
  if (ranks_now() > deadline) {
    CHECK(0, "%s: not run: the test's time limit passed", p->name);
    return;
  }
  memset(s->stat, 0, sizeof s->stat);
  s->barrier_timeout_s = 120;
  const double t0 = ranks_now();
  const int bad = ranks_run(s, p->world, rank_main, p, p->timeout_s, p->name);
  for (int r = 0; r < p->world; r++) {
    t_passed += (int)s->stat[r][0];
    t_failed += (int)s->stat[r][1];
    t_skipped += (int)s->stat[r][2];
  }
  CHECK(bad == 0, "%s (world %d): %d rank(s) failed, died or were killed", p->name, p->world, bad);
  printf("%s, world %d%s: %.1f s\n", p->name, p->world, p->world > s->ngpu ? " (ranks share GPUs)" : "",
         ranks_now() - t0);
  fflush(stdout);
}

/* The number of (leading, Hopper) GPUs the ranks use, set in s->ngpu; 0
 * after a SKIP or a failed CHECK. Sets the phases' time limit (900 s). */
static inline int ar_gpus(ranks_shared *s, const char *what) {
  int ngpu = ranks_probe(s);
  if (ngpu < 0) {
    CHECK(0, "the GPU probe process failed");
    return 0;
  }
  if (ngpu == 0) {
    SKIP("no CUDA device: %s", what);
    return 0;
  }
  if (!s->gpu_supported[0]) {
    SKIP("no Hopper GPU: %s", what);
    return 0;
  }
  /* ranks use the leading Hopper GPUs */
  int nuse = 1;
  while (nuse < ngpu && nuse < RANKS_MAX && s->gpu_supported[nuse]) nuse++;
  if (nuse < ngpu) printf("using GPUs 0..%d of %d (the others are not Hopper or past %d)\n", nuse - 1, ngpu, RANKS_MAX);
  s->ngpu = nuse;
  printf("%d GPU(s), %s%s\n", nuse, s->gpu_name, nuse == 1 ? ": all ranks share GPU 0" : "");
  deadline = ranks_now() + 900;
  return nuse;
}
#endif

/* main() of a forked-rank test: gpu_tests(s) forks every process that
 * touches CUDA. */
#ifdef LLMK_WITH_CUDA
#define AR_MAIN(gpu_tests, what)               \
  int main(void) {                             \
    t_seed();                                  \
    ar_read_quick();                           \
    ranks_shared *s = ranks_shared_new();      \
    if (!s) {                                  \
      CHECK(0, "mmap of the shared page failed"); \
      TEST_END();                              \
    }                                          \
    gpu_tests(s);                              \
    TEST_END();                                \
  }
#else
#define AR_MAIN(gpu_tests, what)                     \
  int main(void) {                                   \
    t_seed();                                        \
    SKIP("no CUDA device (built without CUDA): %s", what); \
    TEST_END();                                      \
  }
#endif

#endif
