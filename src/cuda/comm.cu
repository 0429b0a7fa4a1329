/* The all-reduce communicator on CUDA: device buffers and flags, the
 * exported handle (CUDA IPC), opening the peers' buffers, the NCCL
 * bootstrap and fallback (NCCL reached through dlopen), and the launch of
 * the kernels of allreduce.cu. */
#include <dlfcn.h>
#include <nccl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/comm.h"
#include "cuda/allreduce.h"
#include "cuda/common.cuh"

/* ---- NCCL through dlopen ---------------------------------------------------- */

namespace {

struct nccl_api {
  int ok;
  char why[160];
  int version;
  ncclResult_t (*count)(ncclComm_t, int *);
  ncclResult_t (*user_rank)(ncclComm_t, int *);
  ncclResult_t (*cu_device)(ncclComm_t, int *);
  ncclResult_t (*all_gather)(const void *, void *, size_t, ncclDataType_t, ncclComm_t, cudaStream_t);
  ncclResult_t (*all_reduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t);
  const char *(*error_string)(ncclResult_t);
  ncclResult_t (*get_version)(int *);
};
nccl_api g_nccl;
pthread_once_t g_nccl_once = PTHREAD_ONCE_INIT;

void load_nccl() {
  /* the copy the process already loaded (torch's, an engine's) if any */
  void *lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_NOLOAD);
  if (!lib) lib = dlopen("libnccl.so.2", RTLD_NOW);
  if (!lib) lib = dlopen("libnccl.so", RTLD_NOW);
  if (!lib) {
    const char *e = dlerror();
    snprintf(g_nccl.why, sizeof g_nccl.why, "cannot load libnccl.so.2 (%s)", e ? e : "not found");
    return;
  }
#define LLMK_SYM(field, name)                                                              \
  *reinterpret_cast<void **>(&g_nccl.field) = dlsym(lib, name);                            \
  if (!g_nccl.field) {                                                                     \
    snprintf(g_nccl.why, sizeof g_nccl.why, "libnccl.so.2 has no symbol %s", name);        \
    return;                                                                                \
  }
  LLMK_SYM(count, "ncclCommCount");
  LLMK_SYM(user_rank, "ncclCommUserRank");
  LLMK_SYM(cu_device, "ncclCommCuDevice");
  LLMK_SYM(all_gather, "ncclAllGather");
  LLMK_SYM(all_reduce, "ncclAllReduce");
  LLMK_SYM(error_string, "ncclGetErrorString");
  LLMK_SYM(get_version, "ncclGetVersion");
#undef LLMK_SYM
  g_nccl.get_version(&g_nccl.version);
  g_nccl.ok = 1;
}

llmk_status nccl_ready(const char *fn) {
  pthread_once(&g_nccl_once, load_nccl);
  if (!g_nccl.ok) return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn, "NCCL: %s", g_nccl.why);
  return LLMK_SUCCESS;
}

llmk_status nccl_check(ncclResult_t r, const char *fn, const char *what) {
  if (r == ncclSuccess) return LLMK_SUCCESS;
  return llmk_set_error(LLMK_ERR_NCCL, fn, "%s: %s", what, g_nccl.error_string(r));
}

ncclDataType_t nccl_type(llmk_dtype dt) {
  return dt == LLMK_BF16 ? ncclBfloat16 : dt == LLMK_F16 ? ncclFloat16 : ncclFloat32;
}

/* ---- the exported handle ---------------------------------------------------- */

constexpr uint32_t BLOB_MAGIC = 0x434D4C4Cu; /* "LLMC" */
struct blob {
  uint32_t magic, version;
  int32_t rank, world;
  uint64_t buffer_bytes;
  uint64_t base; /* the allocation's address in its own process (same-process peers use it) */
  int64_t pid;
  char host[64];
  char bus_id[32];
  cudaIpcMemHandle_t ipc;
};
static_assert(sizeof(blob) <= LLMK_COMM_HANDLE_BYTES, "LLMK_COMM_HANDLE_BYTES holds one blob");

}  // namespace

extern "C" llmk_status llmk_cuda_comm_alloc(llmk_comm c, const char *fn) {
  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(c->h, &sc, fn);
  if (s) return s;
  const size_t bytes = llmk_comm_alloc_bytes(c->buffer_bytes, c->world);
  cudaError_t e = cudaMalloc((void **)&c->base, bytes);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    c->base = nullptr;
    s = llmk_set_error(LLMK_ERR_OUT_OF_MEMORY, fn, "cudaMalloc of the %zu-byte buffers: %s", bytes,
                       cudaGetErrorString(e));
    return llmk_scope_leave(c->h, &sc, s, fn);
  }
  /* flags and counters zeroed, and the zeros in memory, before any peer
   * can learn where they are */
  const size_t off = llmk_comm_flags_off(c->buffer_bytes, c->world);
  if (!s) s = llmk_cuda_error(cudaMemset(c->base + off, 0, bytes - off), fn, "cudaMemset (flags)");
  if (!s) s = llmk_cuda_error(cudaDeviceSynchronize(), fn, "cudaDeviceSynchronize");
  if (!s) {
    e = cudaHostAlloc((void **)&c->fault, sizeof(llmk_comm_fault), cudaHostAllocMapped);
    if (e != cudaSuccess) {
      c->fault = nullptr;
      s = llmk_cuda_error(e, fn, "cudaHostAlloc (fault record)");
    }
  }
  if (!s) {
    memset(c->fault, 0, sizeof *c->fault);
    s = llmk_cuda_error(cudaHostGetDevicePointer((void **)&c->fault_dev, c->fault, 0), fn, "cudaHostGetDevicePointer");
  }
  for (int i = 0; i < LLMK_COMM_MAX_RANKS; i++) c->peer[i] = nullptr;
  c->peer[c->rank] = c->base;
  return llmk_scope_leave(c->h, &sc, s, fn);
}

extern "C" llmk_status llmk_cuda_comm_blob(llmk_comm c, void *out, const char *fn) {
  blob b;
  memset(&b, 0, sizeof b);
  b.magic = BLOB_MAGIC;
  b.version = 1;
  b.rank = c->rank;
  b.world = c->world;
  b.buffer_bytes = c->buffer_bytes;
  b.base = (uint64_t)(uintptr_t)c->base;
  b.pid = (int64_t)getpid();
  gethostname(b.host, sizeof b.host - 1);
  LLMK_CUDA_TRY(cudaDeviceGetPCIBusId(b.bus_id, sizeof b.bus_id, c->h->device), fn);
  LLMK_CUDA_TRY(cudaIpcGetMemHandle(&b.ipc, c->base), fn);
  memset(out, 0, LLMK_COMM_HANDLE_BYTES);
  memcpy(out, &b, sizeof b);
  return LLMK_SUCCESS;
}

/* Opens every peer's buffers from the gathered blobs. `soft`: a peer that
 * cannot be reached is not an error (*reachable = 0; the NCCL path then
 * routes every call to NCCL). */
static llmk_status open_peers(llmk_comm c, const unsigned char *blobs, int soft, int *reachable, const char *fn) {
  *reachable = 1;
  blob me;
  memcpy(&me, blobs + (size_t)c->rank * LLMK_COMM_HANDLE_BYTES, sizeof me);
  for (int i = 0; i < c->world; i++) {
    blob b;
    memcpy(&b, blobs + (size_t)i * LLMK_COMM_HANDLE_BYTES, sizeof b);
    if (b.magic != BLOB_MAGIC || b.version != 1 || b.rank != i || b.world != c->world ||
        b.buffer_bytes != c->buffer_bytes)
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                            "blob %d is not rank %d's handle of a %d-rank communicator with %zu-byte buffers", i, i,
                            c->world, c->buffer_bytes);
  }
  if (memcmp(&me.ipc, blobs + (size_t)c->rank * LLMK_COMM_HANDLE_BYTES + offsetof(blob, ipc), sizeof me.ipc) ||
      me.base != (uint64_t)(uintptr_t)c->base)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "blob %d is not this communicator's own handle", c->rank);
  for (int i = 0; i < c->world; i++) {
    if (i == c->rank) continue;
    blob b;
    memcpy(&b, blobs + (size_t)i * LLMK_COMM_HANDLE_BYTES, sizeof b);
    const int same_host = !strncmp(b.host, me.host, sizeof b.host);
    const int same_dev = same_host && !strncmp(b.bus_id, me.bus_id, sizeof b.bus_id);
    int ok = same_host;
    if (ok && !same_dev) {
      int dev = -1, can = 0;
      if (cudaDeviceGetByPCIBusId(&dev, b.bus_id) == cudaSuccess && cudaDeviceCanAccessPeer(&can, c->h->device, dev) == cudaSuccess)
        ok = can;
      (void)cudaGetLastError(); /* a GPU this process cannot see: try IPC anyway */
    }
    if (ok && same_host && b.pid == (int64_t)getpid()) {
      if (!same_dev) {
        int dev = -1;
        LLMK_CUDA_TRY(cudaDeviceGetByPCIBusId(&dev, b.bus_id), fn);
        const cudaError_t e = cudaDeviceEnablePeerAccess(dev, 0);
        if (e != cudaSuccess && e != cudaErrorPeerAccessAlreadyEnabled) ok = 0;
        (void)cudaGetLastError();
      }
      if (ok) c->peer[i] = (char *)(uintptr_t)b.base;
    } else if (ok) {
      void *p = nullptr;
      const cudaError_t e = cudaIpcOpenMemHandle(&p, b.ipc, cudaIpcMemLazyEnablePeerAccess);
      if (e == cudaSuccess) {
        c->peer[i] = (char *)p;
        c->opened[i] = 1;
      } else {
        (void)cudaGetLastError();
        ok = 0;
      }
    }
    if (!ok) {
      *reachable = 0;
      if (!soft)
        return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn,
                              "rank %d (%s, GPU %s) cannot be reached over P2P from rank %d (%s, GPU %s)", i, b.host,
                              b.bus_id, c->rank, me.host, me.bus_id);
    }
  }
  return LLMK_SUCCESS;
}

static void close_peers(llmk_comm c) {
  for (int i = 0; i < LLMK_COMM_MAX_RANKS; i++) {
    if (c->opened[i]) (void)cudaIpcCloseMemHandle(c->peer[i]);
    c->opened[i] = 0;
    if (i != c->rank) c->peer[i] = nullptr;
  }
  (void)cudaGetLastError();
}

extern "C" llmk_status llmk_cuda_comm_open(llmk_comm c, const void *blobs, const char *fn) {
  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(c->h, &sc, fn);
  if (s) return s;
  int reachable;
  s = open_peers(c, (const unsigned char *)blobs, 0, &reachable, fn);
  if (s) close_peers(c);
  else c->p2p = 1;
  return llmk_scope_leave(c->h, &sc, s, fn);
}

/* NCCL bootstrap: blobs through ncclAllGather, reachability agreed with an
 * ncclAllReduce (min), which is also the closing barrier. */
static llmk_status create_nccl(llmk_comm c, ncclComm_t nc, const char *fn) {
  llmk_status s;
  int world, rank, dev;
  if ((s = nccl_check(g_nccl.count(nc, &world), fn, "ncclCommCount")) ||
      (s = nccl_check(g_nccl.user_rank(nc, &rank), fn, "ncclCommUserRank")) ||
      (s = nccl_check(g_nccl.cu_device(nc, &dev), fn, "ncclCommCuDevice")))
    return s;
  if (world < 1 || world > LLMK_COMM_MAX_RANKS)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "the NCCL communicator has %d ranks: at most %d", world,
                          LLMK_COMM_MAX_RANKS);
  if (dev != c->h->device)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "the NCCL rank runs on device %d, the handle on device %d", dev,
                          c->h->device);
  c->rank = rank;
  c->world = world;
  c->nccl = nc;
  if ((s = llmk_cuda_comm_alloc(c, fn))) return s;
  const size_t HB = LLMK_COMM_HANDLE_BYTES;
  unsigned char *host = (unsigned char *)calloc((size_t)world, HB);
  if (!host) return llmk_set_error(LLMK_ERR_OUT_OF_MEMORY, fn, "cannot allocate %d handles", world);
  unsigned char *dbuf = nullptr;
  int *dok = nullptr;
  cudaStream_t st = nullptr;
  int ok = 1, all_ok = 0;
  s = llmk_cuda_comm_blob(c, host + (size_t)rank * HB, fn);
  if (!s) s = llmk_cuda_error(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), fn, "cudaStreamCreate");
  if (!s) s = llmk_cuda_error(cudaMalloc((void **)&dbuf, (size_t)world * HB + 16), fn, "cudaMalloc (handles)");
  if (!s) s = llmk_cuda_error(cudaMemcpy(dbuf + (size_t)rank * HB, host + (size_t)rank * HB, HB, cudaMemcpyHostToDevice),
                              fn, "cudaMemcpy");
  if (!s) s = nccl_check(g_nccl.all_gather(dbuf + (size_t)rank * HB, dbuf, HB, ncclUint8, nc, st), fn, "ncclAllGather");
  if (!s) s = llmk_cuda_error(cudaStreamSynchronize(st), fn, "cudaStreamSynchronize");
  if (!s) s = llmk_cuda_error(cudaMemcpy(host, dbuf, (size_t)world * HB, cudaMemcpyDeviceToHost), fn, "cudaMemcpy");
  if (!s) s = open_peers(c, host, 1, &ok, fn);
  if (!s) {
    dok = (int *)(dbuf + (size_t)world * HB);
    s = llmk_cuda_error(cudaMemcpy(dok, &ok, sizeof ok, cudaMemcpyHostToDevice), fn, "cudaMemcpy");
  }
  if (!s) s = nccl_check(g_nccl.all_reduce(dok, dok, 1, ncclInt32, ncclMin, nc, st), fn, "ncclAllReduce (agreement)");
  if (!s) s = llmk_cuda_error(cudaStreamSynchronize(st), fn, "cudaStreamSynchronize");
  if (!s) s = llmk_cuda_error(cudaMemcpy(&all_ok, dok, sizeof all_ok, cudaMemcpyDeviceToHost), fn, "cudaMemcpy");
  if (!s) {
    c->p2p = all_ok;
    if (!all_ok) close_peers(c); /* every call goes to NCCL */
  }
  if (dbuf) (void)cudaFree(dbuf);
  if (st) (void)cudaStreamDestroy(st);
  free(host);
  return s;
}

extern "C" llmk_status llmk_cuda_comm_create_nccl(llmk_comm c, void *nccl_comm, const char *fn) {
  llmk_status s = nccl_ready(fn);
  if (s) return s;
  llmk_device_scope sc;
  if ((s = llmk_scope_enter(c->h, &sc, fn))) return s;
  s = create_nccl(c, (ncclComm_t)nccl_comm, fn);
  if (!s) c->imported = 1;
  return llmk_scope_leave(c->h, &sc, s, fn);
}

extern "C" void llmk_cuda_comm_free(llmk_comm c) {
  llmk_device_scope sc;
  if (llmk_scope_enter(c->h, &sc, "llmk_comm_destroy")) return;
  close_peers(c);
  if (c->base) (void)cudaFree(c->base);
  if (c->fault) (void)cudaFreeHost(c->fault);
  c->base = nullptr;
  c->fault = nullptr;
  (void)cudaGetLastError();
  (void)llmk_scope_leave(c->h, &sc, LLMK_SUCCESS, "llmk_comm_destroy");
}

/* ---- one call --------------------------------------------------------------- */

/* CTAs for a share of `nvec` vectors: about 4 vectors a thread of 512,
 * at most LLMK_COMM_MAX_BLOCKS and the SM count (all resident). */
static int grid_for(int64_t nvec, int sm_count) {
  int64_t g = (nvec + 2047) / 2048;
  const int cap = sm_count < LLMK_COMM_MAX_BLOCKS ? sm_count : LLMK_COMM_MAX_BLOCKS;
  if (g < 1) g = 1;
  return (int)(g < cap ? g : cap);
}

extern "C" llmk_status llmk_cuda_allreduce(llmk_comm c, const llmk_ar_call *call, void *stream) {
  static const char fn[] = "llmk_allreduce";
  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(c->h, &sc, fn);
  if (s) return s;
  const cudaStream_t st = (cudaStream_t)stream;
  if (call->algo == LLMK_ALLREDUCE_NCCL) {
    /* a residual in y's memory must be read before NCCL writes y: the sum
     * then goes to a stream-ordered temporary (graph-capturable) */
    const uintptr_t r0 = (uintptr_t)call->residual, y0 = (uintptr_t)call->y;
    const int alias = call->residual && r0 < y0 + call->bytes && y0 < r0 + call->bytes;
    void *sum = call->y;
    if (!(s = nccl_ready(fn)) && alias) s = llmk_cuda_error(cudaMallocAsync(&sum, call->bytes, st), fn, "cudaMallocAsync");
    if (!s)
      s = nccl_check(g_nccl.all_reduce(call->x, sum, (size_t)call->n, nccl_type(call->dtype), ncclSum,
                                       (ncclComm_t)c->nccl, st),
                     fn, "ncclAllReduce");
    if (!s && call->residual)
      s = llmk_ar_add_residual(call->dtype, sum, call->residual, call->y, call->n, c->h->sm_count, st, fn);
    if (alias && sum != call->y) (void)cudaFreeAsync(sum, st);
    return llmk_scope_leave(c->h, &sc, s, fn);
  }
  llmk_ar_args a;
  memset(&a, 0, sizeof a);
  a.x = call->x;
  a.residual = call->residual;
  a.y = call->y;
  for (int i = 0; i < LLMK_COMM_MAX_RANKS; i++) a.peer[i] = c->peer[i];
  a.B = c->buffer_bytes;
  a.flags_off = llmk_comm_flags_off(c->buffer_bytes, c->world);
  a.res_off = 3 * c->buffer_bytes;
  a.res_half = llmk_comm_res_half(c->buffer_bytes, c->world);
  a.epoch = (uint32_t *)(c->base + a.flags_off + LLMK_COMM_FLAGS_BYTES);
  a.done = a.epoch + 1;
  a.fault = c->fault_dev;
  a.timeout_ns = c->timeout_ns;
  a.nvec = (int64_t)(call->bytes / 16);
  a.rank = c->rank;
  a.world = c->world;
  a.registered = call->registered;
  const int64_t share = call->algo == LLMK_ALLREDUCE_TWOSHOT ? (a.nvec + c->world - 1) / c->world : a.nvec;
  s = llmk_ar_launch(a, call->algo, call->dtype, grid_for(share, c->h->sm_count), 512, st, fn);
  return llmk_scope_leave(c->h, &sc, s, fn);
}
