/* One process per rank for the all-reduce test and benchmark
 * (tests/test_allreduce.c, tools/cli_bench_allreduce.c).
 *
 * CUDA does not survive fork(): the parent process must not call CUDA (nor
 * any llmk function that does) before it forks the ranks. ranks_run forks
 * `world` children from a parent that has not touched CUDA; they share one
 * page of MAP_SHARED | MAP_ANONYMOUS memory (made before the fork) that
 * carries a process barrier (C11 atomics), each rank's exported llmk_comm
 * handle, NCCL's unique id, per-rank counters and scratch words. The parent
 * watches the children: a child that dies or fails raises the abort flag
 * (every barrier then returns 0 instead of waiting), and past the deadline
 * the parent kills the children it forked (SIGKILL, by pid) and reports it.
 * ranks_probe learns the GPU count the same way, in a child.
 *
 * NCCL is reached through dlopen("libnccl.so.2") with the few prototypes
 * declared here (no -lnccl, no nccl.h).
 *
 * Every function is static inline, so a file that includes this header and
 * uses part of it builds with -Wall -Werror. */
#ifndef LLMK_TOOLS_RANKS_H
#define LLMK_TOOLS_RANKS_H

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "llmk.h"

#define RANKS_MAX LLMK_COMM_MAX_RANKS
#define RANKS_NCCL_ID_BYTES 128 /* NCCL_UNIQUE_ID_BYTES */

typedef struct ranks_shared {
  atomic_int bar_count, bar_gen, abort_flag;
  int world;
  double barrier_timeout_s; /* a barrier waiting longer than this raises the abort flag */
  /* per rank: passed, failed, skipped (the test's harness counters) */
  long stat[RANKS_MAX][3];
  /* per rank: scratch the caller defines (hashes, timings, flags) */
  uint64_t u64[RANKS_MAX][16];
  double dbl[RANKS_MAX][16];
  /* the probe's answer */
  int ngpu, gpu_supported[RANKS_MAX];
  char gpu_name[256];
  char text[256]; /* one string rank 0 hands to the others (device name, message) */
  unsigned char nccl_id[RANKS_NCCL_ID_BYTES];
  unsigned char blobs[RANKS_MAX * LLMK_COMM_HANDLE_BYTES];
} ranks_shared;

static inline double ranks_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The shared page (NULL if mmap failed). Made once, before any fork. */
static inline ranks_shared *ranks_shared_new(void) {
  void *p = mmap(NULL, sizeof(ranks_shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  memset(p, 0, sizeof(ranks_shared));
  return (ranks_shared *)p;
}

static inline int ranks_aborted(ranks_shared *s) { return atomic_load(&s->abort_flag) != 0; }
static inline void ranks_abort(ranks_shared *s) { atomic_store(&s->abort_flag, 1); }

/* Waits until all s->world ranks have arrived. Returns 1, or 0 if the
 * abort flag is (or gets) raised or the wait passes s->barrier_timeout_s
 * (which raises it: the other ranks then return 0 too). */
static inline int ranks_barrier(ranks_shared *s) {
  if (ranks_aborted(s)) return 0;
  const int gen = atomic_load(&s->bar_gen);
  if (atomic_fetch_add(&s->bar_count, 1) == s->world - 1) {
    atomic_store(&s->bar_count, 0);
    atomic_fetch_add(&s->bar_gen, 1);
    return 1;
  }
  const double t0 = ranks_now();
  for (long spin = 0; atomic_load(&s->bar_gen) == gen; spin++) {
    if (ranks_aborted(s)) return 0;
    if (spin > 4096) {
      if ((spin & 255) == 0 && ranks_now() - t0 > s->barrier_timeout_s) {
        fprintf(stderr, "ranks: barrier waited over %.0f s: aborting\n", s->barrier_timeout_s);
        ranks_abort(s);
        return 0;
      }
      struct timespec ts = {0, 2000}; /* 2 us */
      nanosleep(&ts, NULL);
    }
  }
  return 1;
}

/* The all-gather of the exported handles: this rank's `blob`
 * (LLMK_COMM_HANDLE_BYTES) into slot `rank`, then all `world` slots in rank
 * order into `all`. Returns 1, or 0 on abort. */
static inline int ranks_allgather_blob(ranks_shared *s, int rank, const void *blob, void *all) {
  memcpy(s->blobs + (size_t)rank * LLMK_COMM_HANDLE_BYTES, blob, LLMK_COMM_HANDLE_BYTES);
  if (!ranks_barrier(s)) return 0;
  memcpy(all, s->blobs, (size_t)s->world * LLMK_COMM_HANDLE_BYTES);
  return ranks_barrier(s); /* nobody overwrites the slots before all have read them */
}

/* A rank's body: returns 0 on success (the child's exit code otherwise). */
typedef int (*ranks_fn)(ranks_shared *s, int rank, void *arg);

/* Forks `world` children running fn(s, rank, arg) and waits for them.
 * timeout_s: the watchdog, after which the children still running are
 * killed. Returns the number of ranks that failed (nonzero exit, signal,
 * killed by the watchdog), or -1 if none could be started. `what` names the
 * run in messages. */
static inline int ranks_run(ranks_shared *s, int world, ranks_fn fn, void *arg, double timeout_s,
                            const char *what) {
  if (world < 1 || world > RANKS_MAX) return -1;
  atomic_store(&s->bar_count, 0);
  atomic_store(&s->abort_flag, 0);
  s->world = world;
  if (s->barrier_timeout_s <= 0) s->barrier_timeout_s = timeout_s;
  pid_t pid[RANKS_MAX];
  int done[RANKS_MAX], bad = 0, started = 0;
  fflush(stdout);
  fflush(stderr);
  for (int r = 0; r < world; r++) {
    pid[r] = fork();
    if (pid[r] == 0) {
      const int rc = fn(s, r, arg);
      if (rc) ranks_abort(s);
      fflush(stdout);
      fflush(stderr);
      _exit(rc & 0xFF);
    }
    if (pid[r] < 0) {
      fprintf(stderr, "ranks: %s: fork: %s\n", what, strerror(errno));
      ranks_abort(s);
      break;
    }
    done[r] = 0;
    started++;
  }
  if (!started) return -1;
  bad = world - started;
  const double t0 = ranks_now();
  int left = started, killed = 0;
  while (left > 0) {
    for (int r = 0; r < started; r++) {
      if (done[r]) continue;
      int st = 0;
      const pid_t w = waitpid(pid[r], &st, WNOHANG);
      if (w == 0) continue;
      done[r] = 1;
      left--;
      if (w < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        bad++;
        ranks_abort(s); /* the others stop waiting for it */
        if (killed) continue;
        if (w > 0 && WIFSIGNALED(st))
          fprintf(stderr, "ranks: %s: rank %d died of signal %d\n", what, r, WTERMSIG(st));
        else if (w > 0)
          fprintf(stderr, "ranks: %s: rank %d exited with status %d\n", what, r, WEXITSTATUS(st));
      }
    }
    if (left > 0 && !killed && ranks_now() - t0 > timeout_s) {
      fprintf(stderr, "ranks: %s: watchdog: still running after %.0f s: killing %d rank(s)\n", what, timeout_s,
              left);
      ranks_abort(s);
      for (int r = 0; r < started; r++)
        if (!done[r]) kill(pid[r], SIGKILL);
      killed = 1;
    }
    if (left > 0) {
      struct timespec ts = {0, 5000000}; /* 5 ms */
      nanosleep(&ts, NULL);
    }
  }
  return bad;
}

/* The GPU count and which GPUs llmk supports (Hopper), read in a child so
 * that the caller's process never initializes CUDA. Fills s->ngpu,
 * s->gpu_supported[], s->gpu_name (device 0). Returns the count, or -1 if
 * the probe failed. */
static inline int ranks_probe_fn_(ranks_shared *s, int rank, void *arg) {
  (void)rank, (void)arg;
  int n = 0;
  llmk_cuda_device_count(&n);
  s->ngpu = n;
  for (int d = 0; d < n && d < RANKS_MAX; d++) {
    llmk_device_info info = LLMK_DEVICE_INFO_INIT;
    s->gpu_supported[d] = llmk_cuda_device_info(d, &info) == LLMK_SUCCESS && info.supported;
    if (d == 0 && s->gpu_supported[d]) snprintf(s->gpu_name, sizeof s->gpu_name, "%s", info.name);
  }
  return 0;
}
static inline int ranks_probe(ranks_shared *s) {
  s->ngpu = -1;
  s->gpu_name[0] = 0;
  memset(s->gpu_supported, 0, sizeof s->gpu_supported);
  if (ranks_run(s, 1, ranks_probe_fn_, NULL, 120, "GPU probe") != 0) return -1;
  return s->ngpu;
}

/* ------------------------------------------------------------------------ */
/* NCCL through dlopen                                                       */
/* ------------------------------------------------------------------------ */

/* ncclDataType_t and ncclRedOp_t values (stable ABI) */
enum { RANKS_NCCL_F16 = 6, RANKS_NCCL_F32 = 7, RANKS_NCCL_BF16 = 9, RANKS_NCCL_SUM = 0 };

typedef struct ranks_nccl_id {
  char internal[RANKS_NCCL_ID_BYTES];
} ranks_nccl_id;

typedef struct ranks_nccl {
  void *lib;
  int version; /* ncclGetVersion: e.g. 22809 for 2.28.9 */
  int (*GetVersion)(int *version);
  int (*GetUniqueId)(ranks_nccl_id *id);
  int (*CommInitRank)(void **comm, int nranks, ranks_nccl_id id, int rank);
  int (*CommDestroy)(void *comm);
  int (*AllReduce)(const void *send, void *recv, size_t count, int dtype, int op, void *comm, void *stream);
  const char *(*GetErrorString)(int result);
} ranks_nccl;

/* Loads libnccl.so.2 (the process's copy if one is loaded). Returns 1, or
 * 0 with the reason in err. */
static inline int ranks_nccl_load(ranks_nccl *n, char *err, size_t errlen) {
  memset(n, 0, sizeof *n);
  n->lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_GLOBAL);
  if (!n->lib) {
    snprintf(err, errlen, "dlopen(libnccl.so.2): %s", dlerror());
    return 0;
  }
#define RANKS_NCCL_SYM_(field, name)                          \
  do {                                                        \
    *(void **)&n->field = dlsym(n->lib, name);                \
    if (!n->field) {                                          \
      snprintf(err, errlen, "libnccl.so.2 has no %s", name);  \
      return 0;                                               \
    }                                                         \
  } while (0)
  RANKS_NCCL_SYM_(GetVersion, "ncclGetVersion");
  RANKS_NCCL_SYM_(GetUniqueId, "ncclGetUniqueId");
  RANKS_NCCL_SYM_(CommInitRank, "ncclCommInitRank");
  RANKS_NCCL_SYM_(CommDestroy, "ncclCommDestroy");
  RANKS_NCCL_SYM_(AllReduce, "ncclAllReduce");
  RANKS_NCCL_SYM_(GetErrorString, "ncclGetErrorString");
#undef RANKS_NCCL_SYM_
  if (n->GetVersion(&n->version) != 0) n->version = 0;
  return 1;
}

/* "2.28.9" from ncclGetVersion's code (new scheme from 2.9: M*10000+m*100+p). */
static inline void ranks_nccl_version_string(int v, char *out, size_t len) {
  if (v >= 10000) snprintf(out, len, "%d.%d.%d", v / 10000, (v / 100) % 100, v % 100);
  else snprintf(out, len, "%d.%d.%d", v / 1000, (v / 100) % 10, v % 100);
}

static inline int ranks_nccl_dtype(llmk_dtype dt) {
  return dt == LLMK_F32 ? RANKS_NCCL_F32 : dt == LLMK_F16 ? RANKS_NCCL_F16 : RANKS_NCCL_BF16;
}

/* The NCCL communicator of `rank` among s->world ranks, on the calling
 * thread's current CUDA device: rank 0 makes the unique id and hands it
 * over through the shared page. Returns 0 (ncclSuccess), an ncclResult_t,
 * or -1 on abort. Every rank must call it. */
static inline int ranks_nccl_init(ranks_shared *s, ranks_nccl *n, int rank, void **comm) {
  *comm = NULL;
  /* NVLink multicast (NVLS) stays off where the machine's policy says so;
   * llmk never uses it. */
  setenv("NCCL_NVLS_ENABLE", "0", 0);
  ranks_nccl_id id;
  int rc = 0;
  if (rank == 0) {
    rc = n->GetUniqueId(&id);
    if (rc) ranks_abort(s);
    else memcpy(s->nccl_id, &id, sizeof id);
  }
  if (!ranks_barrier(s)) return rc ? rc : -1;
  memcpy(&id, s->nccl_id, sizeof id);
  rc = n->CommInitRank(comm, s->world, id, rank);
  if (rc) *comm = NULL;
  return rc;
}

/* FNV-1a of n bytes, continuing from h (start with 1469598103934665603). */
static inline uint64_t ranks_hash(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = (const unsigned char *)p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

#endif
