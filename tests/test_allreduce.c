/* llmk_allreduce and the communicator API (llmk_comm_*), one process per
 * rank (tools/ranks.h forks them before any CUDA call; the parent never
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
 *
 * Phases (each its own set of processes):
 *  - main, world 1, 2, 3, 4 (export/import, no NCCL): argument errors on
 *    the GPU; every power-of-two size from 16 bytes to the buffer plus odd
 *    multiples of 16, for bf16/f16/f32 x ONESHOT/TWOSHOT/AUTO x residual
 *    none/separate/== x/== y x in place or not (all combinations up to
 *    64 KiB, a rotating subset above); sizes and pointers that need NCCL
 *    (NOT_SUPPORTED without it, nothing written, the communicator still
 *    usable); the registered buffer (x->data == llmk_comm_info's buffer,
 *    overwritten right after each call: the call must have waited for its
 *    peers' reads); CUDA graphs replayed many times (one call with its input
 *    restored before and overwritten after it; a mix of sizes, algorithms
 *    and dtypes with the registered buffer; f32 outputs accumulate through
 *    the residual, so one wrong replay shows in the end); two communicators
 *    used in turn, eagerly and in one graph; blobs that are not a
 *    communicator's.
 *  - LLMK_ALLREDUCE=nccl on a communicator without NCCL: AUTO gives
 *    NOT_SUPPORTED, forced own algorithms run.
 *  - timeout: LLMK_COMM_TIMEOUT_MS=300, rank 1 skips a call; rank 0's
 *    kernel stops, llmk_comm_check and the next call give COMM_TIMEOUT
 *    naming rank 1; a new communicator works afterwards.
 *  - NCCL (llmk_comm_create_nccl, NCCL reached through dlopen): with 2+
 *    GPUs, world 2 and all GPUs, llmk's result compared with ncclAllReduce's
 *    on the same data, NCCL-only sizes and pointers, graphs, and
 *    LLMK_ALLREDUCE=nccl; with one GPU, world 1 only (NCCL refuses two
 *    ranks on one GPU).
 *  - argument errors on a CPU handle and with NULLs (no GPU needed).
 *  - the choice table (src/core/allreduce_table.inc) and the threshold fit
 *    of `llmk tune allreduce` (llmk_allreduce_fit) on synthetic timings
 *    (no GPU needed).
 * LLMK_TEST_QUICK=1 runs fewer cases. */
#include "allreduce_fit.h"
#include "core/comm.h"
#include "core/env.h"
#include "harness.h"
#include "llmk.h"
#include "ranks.h"

static int quick;

/* ------------------------------------------------------------------------ */
/* Host-side argument errors (no GPU)                                        */
/* ------------------------------------------------------------------------ */

/* Sets llmk_last_error() to a known message, so a later check can see that
 * the call under test wrote its own. */
static const char *prime_error(void) {
  llmk_get_build_info(NULL);
  return llmk_last_error();
}
static char primed[512];
static void prime(void) { snprintf(primed, sizeof primed, "%s", prime_error()); }
#define CHECK_ERR(call, want, what)                                                                     \
  do {                                                                                                  \
    prime();                                                                                            \
    const llmk_status s_ = (call);                                                                      \
    CHECK(s_ == (want), "%s: got %s, want %s (%s)", what, llmk_status_string(s_),                      \
          llmk_status_string(want), llmk_last_error());                                                 \
    if (s_ != LLMK_SUCCESS)                                                                             \
      CHECK(llmk_last_error()[0] && strcmp(llmk_last_error(), primed), "%s: no message of its own", what); \
  } while (0)

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

#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>

/* ------------------------------------------------------------------------ */
/* Values                                                                    */
/* ------------------------------------------------------------------------ */

#define GUARD 256
#define POISON 0xA5
#define VMAX 128 /* |values| encoded by the tables */

static uint32_t enc_tab[3][2 * VMAX + 1]; /* [f32, f16, bf16][v + VMAX] bits */
static void enc_init(void) {
  for (int v = -VMAX; v <= VMAX; v++) {
    const float f = (float)v;
    memcpy(&enc_tab[0][v + VMAX], &f, 4);
    enc_tab[1][v + VMAX] = llmk_float_to_f16(f);
    enc_tab[2][v + VMAX] = llmk_float_to_bf16(f);
  }
}
static int dt_index(llmk_dtype dt) { return dt == LLMK_F32 ? 0 : dt == LLMK_F16 ? 1 : 2; }
static inline void put(void *p, llmk_dtype dt, int64_t i, int v) {
  const uint32_t b = enc_tab[dt_index(dt)][v + VMAX];
  if (dt == LLMK_F32) ((uint32_t *)p)[i] = b;
  else ((uint16_t *)p)[i] = (uint16_t)b;
}
static inline uint32_t bits_at(const void *p, llmk_dtype dt, int64_t i) {
  return dt == LLMK_F32 ? ((const uint32_t *)p)[i] : ((const uint16_t *)p)[i];
}
static float bits_value(llmk_dtype dt, uint32_t b) {
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

static void fill_x(void *h, llmk_dtype dt, int64_t n, int r, int k) {
  int v = (r * 3 + k) % 17;
  for (int64_t i = 0; i < n; i++) {
    put(h, dt, i, v - 8);
    v += 7;
    if (v >= 17) v -= 17;
  }
}
static void fill_res(void *h, llmk_dtype dt, int64_t n) {
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

static int replays(const ctx *c, int full) {
  int r = c->shared_gpu ? 200 : full;
  if (quick) r = c->shared_gpu ? 50 : full / 10;
  return r;
}

/* 1 if every rank says ok (a barrier; 0 on abort). */
static int vote(ctx *c, int ok) {
  c->s->u64[c->rank][15] = (uint64_t)(ok != 0);
  if (!ranks_barrier(c->s)) return 0;
  int all = 1;
  for (int r = 0; r < c->world; r++) all &= c->s->u64[r][15] != 0;
  if (!ranks_barrier(c->s)) return 0;
  return all;
}

/* Every rank's output hash (of the outputs since the last comparison,
 * those without residual = x, which differ by rank) equals rank 0's. */
static void compare_hashes(ctx *c, const char *what) {
  c->s->u64[c->rank][0] = c->hash;
  if (!ranks_barrier(c->s)) return;
  for (int r = 0; r < c->world; r++)
    if (r != c->rank && c->rank == 0)
      CHECK(c->s->u64[r][0] == c->hash, "%s: rank %d's outputs differ from rank 0's (hash %016llx vs %016llx)",
            what, r, (unsigned long long)c->s->u64[r][0], (unsigned long long)c->hash);
  ranks_barrier(c->s);
  c->hash = 1469598103934665603ull; /* each section on its own */
}

static void sync_all(ctx *c) {
  T_CU(cudaStreamSynchronize(c->st));
  T_CU(cudaDeviceSynchronize());
  ranks_barrier(c->s);
}

static llmk_comm make_comm(ctx *c, size_t buffer_bytes, const char *what) {
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

static void destroy_comm(ctx *c, llmk_comm comm) {
  if (!comm) return;
  sync_all(c);
  const llmk_status s = llmk_comm_destroy(comm);
  CHECK(s == LLMK_SUCCESS, "destroy: %s (%s)", llmk_status_string(s), llmk_last_error());
  ranks_barrier(c->s);
}

/* The registered buffer of comm (checks llmk_comm_info). */
static void use_comm(ctx *c, llmk_comm comm, size_t want_bytes) {
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
/* One eager call                                                            */
/* ------------------------------------------------------------------------ */

typedef struct arc {
  llmk_comm comm;
  llmk_dtype dt;
  int64_t n;
  llmk_allreduce_algo algo;
  int res, inplace, twod, reg;
  size_t xoff, yoff, roff; /* byte offsets from the buffers (misaligned pointers) */
  llmk_status want;
} arc;

static llmk_tensor view(void *p, llmk_dtype dt, int64_t n, int twod) {
  if (twod && n % 4 == 0 && n > 0) return llmk_tensor_2d(p, dt, 4, n / 4, n / 4);
  return llmk_tensor_1d(p, dt, n);
}

static void run_case(ctx *c, const arc *a) {
  const size_t es = llmk_dtype_size(a->dt), bytes = (size_t)a->n * es;
  const int k = c->call++;
  const int res = a->inplace && a->res == RES_Y ? RES_X : a->res;
  char lab[200];
  snprintf(lab, sizeof lab, "w%d rank %d %s %lld x %s (%zu B) res %s%s%s%s off %zu/%zu/%zu", c->world, c->rank,
           algo_name(a->algo), (long long)a->n, llmk_dtype_name(a->dt), bytes, res_names[res],
           a->inplace ? " in place" : "", a->reg ? " registered" : "", a->twod ? " 2-D" : "", a->xoff, a->yoff,
           a->roff);
  uint8_t *xbase = a->reg ? c->reg : c->dx;
  uint8_t *xp = xbase + a->xoff;
  uint8_t *yp = a->inplace ? xp : c->dy + a->yoff;
  uint8_t *rp = c->dr + a->roff;
  if (a->reg ? a->xoff + bytes > c->reg_bytes : a->xoff + bytes > c->cap) {
    CHECK(0, "%s: test buffer too small", lab);
    return;
  }
  /* inputs */
  fill_x(c->hx, a->dt, a->n, c->rank, k);
  if (!a->reg) T_CU(cudaMemsetAsync(xbase, POISON, a->xoff + bytes + GUARD, c->st));
  T_CU(cudaMemcpyAsync(xp, c->hx, bytes, cudaMemcpyHostToDevice, c->st));
  if (!a->inplace) {
    T_CU(cudaMemsetAsync(c->dy, POISON, a->yoff + bytes + GUARD, c->st));
    if (res == RES_Y) {
      fill_res(c->hr, a->dt, a->n);
      T_CU(cudaMemcpyAsync(yp, c->hr, bytes, cudaMemcpyHostToDevice, c->st));
    }
  }
  if (res == RES_SEP) {
    fill_res(c->hr, a->dt, a->n);
    T_CU(cudaMemcpyAsync(rp, c->hr, bytes, cudaMemcpyHostToDevice, c->st));
  }
  const int cmp_nccl = c->nccl && res == RES_NONE && a->want == LLMK_SUCCESS;
  if (cmp_nccl) {
    T_CU(cudaMemsetAsync(c->dn, POISON, bytes + GUARD, c->st));
    const int rc = c->nccl->AllReduce(xp, c->dn, (size_t)a->n, ranks_nccl_dtype(a->dt), RANKS_NCCL_SUM, c->ncomm,
                                      c->st);
    CHECK(rc == 0, "%s: ncclAllReduce: %s", lab, c->nccl->GetErrorString(rc));
  }
  llmk_tensor tx = view(xp, a->dt, a->n, a->twod), ty = view(yp, a->dt, a->n, a->twod);
  llmk_tensor tr = res == RES_SEP ? view(rp, a->dt, a->n, a->twod) : res == RES_X ? tx : ty;
  /* AUTO on a communicator without NCCL, where the size table prefers NCCL
   * for a message the own kernels could take: the header does not say
   * whether that "needs NCCL" (NOT_SUPPORTED) or falls back to an own
   * algorithm; either is accepted (and only SUCCESS is checked further). */
  const int ambiguous = a->want == LLMK_SUCCESS && a->algo == LLMK_ALLREDUCE_AUTO && !c->nccl && c->world > 1 &&
                        !a->reg && llmk_allreduce_choice(a->comm, bytes) == LLMK_ALLREDUCE_NCCL;
  prime();
  const llmk_status s = llmk_allreduce(a->comm, a->algo, &tx, res == RES_NONE ? NULL : &tr, &ty, c->st);
  if (ambiguous && s == LLMK_ERR_NOT_SUPPORTED) {
    c->auto_refused++;
  } else {
    CHECK(s == a->want, "%s: got %s, want %s (%s)", lab, llmk_status_string(s), llmk_status_string(a->want),
          s ? llmk_last_error() : "");
  }
  if (s != LLMK_SUCCESS)
    CHECK(llmk_last_error()[0] && strcmp(llmk_last_error(), primed), "%s: %s without a message of its own", lab,
          llmk_status_string(s));
  if (a->reg && s == LLMK_SUCCESS) /* the next input may be written as soon as the call is done */
    T_CU(cudaMemsetAsync(xbase, 0xFF, a->xoff + bytes, c->st));
  const size_t span = bytes + (a->reg && a->inplace ? 0 : GUARD);
  T_CU(cudaMemcpyAsync(c->hy, yp, span, cudaMemcpyDeviceToHost, c->st));
  if (cmp_nccl) T_CU(cudaMemcpyAsync(c->hn, c->dn, bytes, cudaMemcpyDeviceToHost, c->st));
  T_CU(cudaStreamSynchronize(c->st));
  T_CU(cudaGetLastError());

  if (s != LLMK_SUCCESS) {
    if (!a->inplace && res != RES_Y) {
      size_t bad = 0;
      for (size_t i = 0; i < span; i++) bad += c->hy[i] != POISON;
      CHECK(bad == 0, "%s: failed with %s but wrote %zu bytes of y", lab, llmk_status_string(s), bad);
    }
    return;
  }
  if (a->want != LLMK_SUCCESS) return;
  /* expected: the sum over ranks, by i mod 17, plus the residual */
  int sum17[17];
  for (int j = 0; j < 17; j++) {
    sum17[j] = 0;
    for (int r = 0; r < c->world; r++) sum17[j] += xval(j, r, k);
  }
  int64_t bad = 0;
  int j17 = 0, j5 = 0;
  const int di = dt_index(a->dt);
  for (int64_t i = 0; i < a->n; i++) {
    int v = sum17[j17];
    if (res == RES_SEP || res == RES_Y) v += j5 - 2;
    else if (res == RES_X) v += xval(j17, c->rank, k);
    const uint32_t want = enc_tab[di][v + VMAX], got = bits_at(c->hy, a->dt, i);
    if (got != want && bad++ < 4)
      fprintf(stderr, "  %s: y[%lld] = %g (0x%x), want %d\n", lab, (long long)i, bits_value(a->dt, got), got, v);
    if (++j17 == 17) j17 = 0;
    if (++j5 == 5) j5 = 0;
  }
  CHECK(bad == 0, "%s: %lld of %lld elements wrong", lab, (long long)bad, (long long)a->n);
  if (span > bytes) {
    size_t gbad = 0;
    for (size_t i = bytes; i < span; i++) gbad += c->hy[i] != POISON;
    CHECK(gbad == 0, "%s: %zu bytes written past the output", lab, gbad);
  }
  if (cmp_nccl)
    CHECK(memcmp(c->hn, c->hy, bytes) == 0, "%s: llmk's output differs from ncclAllReduce's", lab);
  if (res != RES_X) c->hash = ranks_hash(c->hash, c->hy, bytes); /* residual = own x differs by rank */
}

static arc mk(llmk_comm comm, llmk_dtype dt, int64_t n, llmk_allreduce_algo algo, int res, int inplace) {
  arc a;
  memset(&a, 0, sizeof a);
  a.comm = comm;
  a.dt = dt;
  a.n = n;
  a.algo = algo;
  a.res = res;
  a.inplace = inplace;
  a.want = LLMK_SUCCESS;
  return a;
}

static const llmk_dtype dts[3] = {LLMK_BF16, LLMK_F16, LLMK_F32};
static const llmk_allreduce_algo own_algos[3] = {LLMK_ALLREDUCE_ONESHOT, LLMK_ALLREDUCE_TWOSHOT,
                                                 LLMK_ALLREDUCE_AUTO};
/* (in place, residual) */
static const int variants[7][2] = {{0, RES_NONE}, {0, RES_SEP}, {0, RES_X}, {0, RES_Y},
                                   {1, RES_NONE}, {1, RES_SEP}, {1, RES_X}};

/* Sizes (bytes, multiples of 16) of the sweep up to `limit`. */
static int sweep_sizes(size_t limit, size_t *out, int max) {
  int n = 0;
  for (size_t b = 16; b <= limit && b <= ((size_t)64 << 20) && n < max; b *= 2) out[n++] = b;
  static const size_t odd[] = {48, 1000 * 16 + 16, 16 * 12345};
  for (size_t i = 0; i < sizeof odd / sizeof odd[0] && n < max; i++)
    if (odd[i] <= limit) out[n++] = odd[i];
  if (n < max && limit >= 32 && (limit & (limit - 1))) out[n++] = limit;
  if (n < max && limit >= 32) out[n++] = limit - 16;
  return n;
}

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

/* Messages that need NCCL: NOT_SUPPORTED on a communicator without it (with
 * NCCL: `want` SUCCESS), nothing written; the communicator stays usable. */
static void needs_nccl(ctx *c, llmk_comm comm, size_t buffer, llmk_status want) {
  static const llmk_allreduce_algo algos[4] = {LLMK_ALLREDUCE_AUTO, LLMK_ALLREDUCE_ONESHOT, LLMK_ALLREDUCE_TWOSHOT,
                                               LLMK_ALLREDUCE_NCCL};
  for (int ai = 0; ai < 4; ai++) {
    /* sizes not multiples of 16 bytes */
    arc a = mk(comm, LLMK_BF16, 6, algos[ai], RES_NONE, 0);
    a.want = want;
    run_case(c, &a);
    a = mk(comm, LLMK_F32, 1, algos[ai], ai & 1 ? RES_SEP : RES_NONE, 0);
    a.want = want;
    run_case(c, &a);
    a = mk(comm, LLMK_F16, 7, algos[ai], RES_NONE, ai & 1);
    a.want = want;
    run_case(c, &a);
    /* every residual form: on the NCCL path residual == y must survive NCCL writing y */
    for (int res = RES_NONE; res <= RES_Y; res++) {
      a = mk(comm, LLMK_BF16, 1003, algos[ai], res, 0);
      a.want = want;
      run_case(c, &a);
    }
    a = mk(comm, LLMK_F32, 5, algos[ai], ai & 1 ? RES_X : RES_SEP, 1);
    a.want = want;
    run_case(c, &a);
    /* above the buffer */
    a = mk(comm, LLMK_F32, (int64_t)(buffer / 4 + 4), algos[ai], ai == 3 ? RES_Y : ai == 2 ? RES_SEP : RES_NONE,
           0);
    a.want = want;
    run_case(c, &a);
    /* misaligned x, y, residual (sizes multiples of 16) */
    a = mk(comm, LLMK_BF16, 64, algos[ai], RES_NONE, 0);
    a.xoff = 2;
    a.want = want;
    run_case(c, &a);
    a = mk(comm, LLMK_BF16, 64, algos[ai], RES_NONE, 0);
    a.yoff = 4;
    a.want = want;
    run_case(c, &a);
    a = mk(comm, LLMK_F32, 256, algos[ai], RES_SEP, 0);
    a.roff = 8;
    a.want = want;
    run_case(c, &a);
    /* the communicator still works */
    a = mk(comm, LLMK_BF16, 4096, algos[ai] == LLMK_ALLREDUCE_NCCL ? LLMK_ALLREDUCE_AUTO : algos[ai], RES_SEP, 0);
    run_case(c, &a);
  }
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

/* ------------------------------------------------------------------------ */
/* Graphs                                                                    */
/* ------------------------------------------------------------------------ */

/* One captured call. chain: f32, residual = y = an accumulator (zeroed
 * first), so after T calls y = T * sum; else y = sum. reg: x is the
 * registered buffer, copied from src before the call and overwritten with
 * NaN right after it; overwrite: the same with a buffer of its own. */
typedef struct gcall {
  llmk_comm comm;
  uint8_t *reg;
  llmk_dtype dt;
  int64_t n;
  llmk_allreduce_algo algo;
  int chain, reg_mode, overwrite;
  int k;
  uint8_t *src, *x, *y;
} gcall;

static void gcall_setup(ctx *c, gcall *g) {
  const size_t bytes = (size_t)g->n * llmk_dtype_size(g->dt);
  g->k = c->call++;
  fill_x(c->hx, g->dt, g->n, c->rank, g->k);
  g->src = t_to_dev(c->hx, bytes);
  g->x = g->reg_mode ? g->reg : g->overwrite ? t_to_dev(c->hx, bytes) : g->src;
  T_CU(cudaMalloc((void **)&g->y, bytes + GUARD));
  T_CU(cudaMemset(g->y, g->chain ? 0 : POISON, bytes));
  T_CU(cudaMemset(g->y + bytes, POISON, GUARD));
}
static llmk_status gcall_issue(ctx *c, gcall *g) {
  const size_t bytes = (size_t)g->n * llmk_dtype_size(g->dt);
  if (g->reg_mode || g->overwrite) T_CU(cudaMemcpyAsync(g->x, g->src, bytes, cudaMemcpyDeviceToDevice, c->st));
  llmk_tensor x = llmk_tensor_1d(g->x, g->dt, g->n), y = llmk_tensor_1d(g->y, g->dt, g->n);
  const llmk_status s = llmk_allreduce(g->comm, g->algo, &x, g->chain ? &y : NULL, &y, c->st);
  if (g->reg_mode || g->overwrite) T_CU(cudaMemsetAsync(g->x, 0xFF, bytes, c->st));
  return s;
}
static void gcall_check(ctx *c, gcall *g, int64_t times, const char *what) {
  const size_t bytes = (size_t)g->n * llmk_dtype_size(g->dt);
  uint8_t *h = t_xmalloc(bytes + GUARD);
  T_CU(cudaMemcpy(h, g->y, bytes + GUARD, cudaMemcpyDeviceToHost));
  int64_t bad = 0;
  for (int64_t i = 0; i < g->n; i++) {
    int64_t v = 0;
    for (int r = 0; r < c->world; r++) v += xval(i, r, g->k);
    float got = bits_value(g->dt, bits_at(h, g->dt, i));
    const double want = g->chain ? (double)v * (double)times : (double)v;
    if ((double)got != want && bad++ < 4)
      fprintf(stderr, "  %s (%s %lld x %s): y[%lld] = %g, want %g\n", what, algo_name(g->algo), (long long)g->n,
              llmk_dtype_name(g->dt), (long long)i, got, want);
  }
  size_t gbad = 0;
  for (size_t i = bytes; i < bytes + GUARD; i++) gbad += h[i] != POISON;
  CHECK(bad == 0 && gbad == 0, "%s: %s %lld x %s%s%s: %lld of %lld elements wrong after %lld calls, %zu guard bytes",
        what, algo_name(g->algo), (long long)g->n, llmk_dtype_name(g->dt), g->reg_mode ? " registered" : "",
        g->chain ? " accumulated" : "", (long long)bad, (long long)g->n, (long long)times, gbad);
  c->hash = ranks_hash(c->hash, h, bytes);
  free(h);
}
static void gcall_free(gcall *g) {
  if (g->x != g->src && g->x != g->reg) T_CU(cudaFree(g->x));
  T_CU(cudaFree(g->src));
  T_CU(cudaFree(g->y));
}

/* Each call once eagerly, then the sequence captured into one graph and
 * replayed `reps` times; every call is checked at the end. */
static void run_graph(ctx *c, const char *what, gcall *g, int ng, int reps) {
  for (int i = 0; i < ng; i++) gcall_setup(c, &g[i]);
  int ok = 1;
  for (int i = 0; i < ng; i++) {
    const llmk_status s = gcall_issue(c, &g[i]);
    CHECK(s == LLMK_SUCCESS, "%s: eager call %d: %s", what, i, llmk_last_error());
    ok &= s == LLMK_SUCCESS;
  }
  T_CU(cudaStreamSynchronize(c->st));
  cudaGraph_t graph = NULL;
  cudaGraphExec_t ge = NULL;
  cudaError_t e = cudaStreamBeginCapture(c->st, cudaStreamCaptureModeGlobal);
  CHECK(e == cudaSuccess, "%s: begin capture: %s", what, cudaGetErrorString(e));
  if (e == cudaSuccess) {
    for (int i = 0; i < ng; i++) {
      const llmk_status s = gcall_issue(c, &g[i]);
      CHECK(s == LLMK_SUCCESS, "%s: captured call %d: %s", what, i, llmk_last_error());
      ok &= s == LLMK_SUCCESS;
    }
    e = cudaStreamEndCapture(c->st, &graph);
    CHECK(e == cudaSuccess, "%s: end capture: %s", what, cudaGetErrorString(e));
    ok &= e == cudaSuccess;
    if (ok) {
      e = cudaGraphInstantiate(&ge, graph, 0);
      CHECK(e == cudaSuccess, "%s: instantiate: %s", what, cudaGetErrorString(e));
      ok &= e == cudaSuccess;
    }
  } else {
    ok = 0;
  }
  cudaGetLastError();
  /* all ranks replay, or none */
  int done = 0;
  if (vote(c, ok)) {
    const double t0 = ranks_now();
    for (; done < reps; done++) {
      e = cudaGraphLaunch(ge, c->st);
      if (e != cudaSuccess) break;
    }
    CHECK(e == cudaSuccess, "%s: replay %d: %s", what, done, cudaGetErrorString(e));
    e = cudaStreamSynchronize(c->st);
    CHECK(e == cudaSuccess, "%s: after the replays: %s", what, cudaGetErrorString(e));
    if (c->rank == 0)
      printf("  w%d: %s: %d calls x %d replays, %.1f us a replay\n", c->world, what, ng, done,
             (ranks_now() - t0) * 1e6 / (done ? done : 1));
    for (int i = 0; i < ng; i++) gcall_check(c, &g[i], 1 + done, what);
  }
  if (ge) cudaGraphExecDestroy(ge);
  if (graph) cudaGraphDestroy(graph);
  T_CU(cudaStreamSynchronize(c->st));
  for (int i = 0; i < ng; i++) gcall_free(&g[i]);
}

static gcall G(llmk_comm comm, llmk_dtype dt, int64_t n, llmk_allreduce_algo algo, int chain, int reg_mode,
               int overwrite, uint8_t *reg) {
  gcall g;
  memset(&g, 0, sizeof g);
  g.comm = comm;
  g.dt = dt;
  g.n = n;
  g.algo = algo;
  g.chain = chain;
  g.reg_mode = reg_mode;
  g.overwrite = overwrite;
  g.reg = reg;
  return g;
}

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

/* Registered-buffer mode, eager: the buffer is overwritten (NaN) right
 * after each call, and the next call's input is written right after that. */
static void registered(ctx *c, llmk_comm comm) {
  const size_t sizes[] = {16, 4096, 65536, (size_t)1 << 20, c->reg_bytes};
  int i = 0;
  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
    if (sizes[si] > c->reg_bytes) continue;
    for (int di = 0; di < 3; di++)
      for (int ai = 0; ai < 3; ai++, i++) {
        if (sizes[si] > 65536 && i % 3) continue;
        const llmk_dtype dt = dts[di];
        arc a = mk(comm, dt, (int64_t)(sizes[si] / llmk_dtype_size(dt)), own_algos[ai], i % 3, 0);
        a.reg = 1;
        run_case(c, &a);
      }
  }
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
  graphs(c, comm);
  compare_hashes(c, "graphs");
  two_comms(c, comm);
  compare_hashes(c, "two communicators");
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

/* ------------------------------------------------------------------------ */
/* Rank processes                                                            */
/* ------------------------------------------------------------------------ */

static int rank_main(ranks_shared *s, int rank, void *arg) {
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

static void run_phase(ranks_shared *s, phase *p) {
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

static void gpu_tests(ranks_shared *s) {
  int ngpu = ranks_probe(s);
  if (ngpu < 0) {
    CHECK(0, "the GPU probe process failed");
    return;
  }
  if (ngpu == 0) {
    SKIP("no CUDA device: all-reduce GPU tests");
    return;
  }
  if (!s->gpu_supported[0]) {
    SKIP("no Hopper GPU: all-reduce GPU tests");
    return;
  }
  /* ranks use the leading Hopper GPUs */
  int nuse = 1;
  while (nuse < ngpu && nuse < RANKS_MAX && s->gpu_supported[nuse]) nuse++;
  if (nuse < ngpu) printf("using GPUs 0..%d of %d (the others are not Hopper or past %d)\n", nuse - 1, ngpu, RANKS_MAX);
  s->ngpu = nuse;
  ngpu = nuse;
  printf("%d GPU(s), %s%s\n", ngpu, s->gpu_name, ngpu == 1 ? ": all ranks share GPU 0" : "");
  deadline = ranks_now() + 900;
  const size_t MiB = (size_t)1 << 20;
  const size_t big = quick ? 0 : 64 * MiB; /* world 2's main buffer: sizes up to 64 MiB */
  phase main1 = {"main", 1, body_main, 0, 16 * MiB + 4096, {{0, 0}, {0, 0}}, 300};
  phase main2 = {"main", 2, body_main, big, (big ? big : 16 * MiB) + 4096, {{0, 0}, {0, 0}}, 400};
  phase main3 = {"main", 3, body_main, 0, 16 * MiB + 4096, {{0, 0}, {0, 0}}, 400};
  phase main4 = {"main", 4, body_main, 0, 16 * MiB + 4096, {{0, 0}, {0, 0}}, 400};
  phase env = {"LLMK_ALLREDUCE=nccl without NCCL", 2, body_env, 0, MiB, {{"LLMK_ALLREDUCE", "nccl"}, {0, 0}}, 120};
  phase tmo = {"timeout", 2, body_timeout, 0, MiB, {{"LLMK_COMM_TIMEOUT_MS", "300"}, {0, 0}}, 120};
  run_phase(s, &main1);
  run_phase(s, &main2);
  run_phase(s, &main3);
  if (!quick || ngpu >= 4) run_phase(s, &main4);
  run_phase(s, &env);
  run_phase(s, &tmo);
  const size_t ncap = 32 * MiB + 4096;
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

int main(void) {
  t_seed();
  const char *q = getenv("LLMK_TEST_QUICK");
  quick = q && *q && strcmp(q, "0");
  ranks_shared *s = ranks_shared_new();
  if (!s) {
    CHECK(0, "mmap of the shared page failed");
    TEST_END();
  }
#ifdef LLMK_WITH_CUDA
  gpu_tests(s); /* forks every process that touches CUDA */
#else
  SKIP("no CUDA device (built without CUDA): all-reduce GPU tests");
#endif
  cpu_argument_tests();
  table_and_fit_tests();
  TEST_END();
}
