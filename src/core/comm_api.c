/* The all-reduce API (include/llmk.h): argument checks, the choice of
 * algorithm, then the CUDA side (src/cuda/comm.cu). Nothing is allocated
 * or launched when a check fails. */
#include <stdlib.h>
#include <string.h>

#include "core/comm.h"
#include "core/env.h"

#define INV LLMK_ERR_INVALID_ARGUMENT

uint64_t llmk_comm_env_timeout_ns(void) {
  const int64_t ms = llmk_env_get()->comm_timeout_ms;
  return (uint64_t)(ms > 0 ? ms : 10000) * 1000000ull;
}

int llmk_comm_env_algo(void) { return llmk_env_get()->allreduce; }

/* Thresholds per world size (measured lines say so in the file). */
static const struct {
  int world;
  size_t one, two;
} AR_TABLE[] = {
#include "core/allreduce_table.inc"
};

llmk_allreduce_algo llmk_allreduce_table(int world, size_t bytes) {
  if (world <= 1) return LLMK_ALLREDUCE_ONESHOT;
  for (size_t i = 0; i < sizeof AR_TABLE / sizeof AR_TABLE[0]; i++)
    if (AR_TABLE[i].world == world)
      return bytes <= AR_TABLE[i].one ? LLMK_ALLREDUCE_ONESHOT
             : bytes <= AR_TABLE[i].two ? LLMK_ALLREDUCE_TWOSHOT
                                         : LLMK_ALLREDUCE_NCCL;
  return LLMK_ALLREDUCE_NCCL;
}

static llmk_status check_cuda_handle(llmk_handle h, const char *fn) {
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  if (h->backend != LLMK_BACKEND_CUDA)
    return llmk_set_error(INV, fn, "the handle runs the CPU backend: a communicator needs a CUDA handle");
  if (!h->supported)
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn, "the handle's GPU is not Hopper (sm_90)");
  return LLMK_SUCCESS;
}

static llmk_status check_buffer_bytes(size_t *b, const char *fn) {
  if (*b == 0) *b = LLMK_COMM_DEFAULT_BUFFER_BYTES;
  if (*b % 16 || *b > ((size_t)1 << 34))
    return llmk_set_error(INV, fn, "buffer_bytes = %zu: must be a multiple of 16 and at most 16 GiB", *b);
  return LLMK_SUCCESS;
}

static llmk_comm new_comm(llmk_handle h, size_t B) {
  llmk_comm c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->h = h;
  c->buffer_bytes = B;
  c->timeout_ns = llmk_comm_env_timeout_ns();
  c->forced = llmk_comm_env_algo();
  return c;
}

llmk_status llmk_comm_create_nccl(llmk_handle h, void *nccl_comm, size_t buffer_bytes, llmk_comm *out) {
  static const char fn[] = "llmk_comm_create_nccl";
  if (!out) return llmk_set_error(INV, fn, "out is NULL");
  *out = NULL;
  llmk_status s = check_cuda_handle(h, fn);
  if (s) return s;
  if (!nccl_comm) return llmk_set_error(INV, fn, "nccl_comm is NULL");
  if ((s = check_buffer_bytes(&buffer_bytes, fn))) return s;
  llmk_comm c = new_comm(h, buffer_bytes);
  if (!c) return llmk_set_error(LLMK_ERR_OUT_OF_MEMORY, fn, "cannot allocate the communicator");
  if ((s = llmk_cuda_comm_create_nccl(c, nccl_comm, fn))) {
    llmk_cuda_comm_free(c);
    free(c);
    return s;
  }
  *out = c;
  return LLMK_SUCCESS;
}

llmk_status llmk_comm_export(llmk_handle h, int rank, int world, size_t buffer_bytes, llmk_comm *out, void *blob) {
  static const char fn[] = "llmk_comm_export";
  if (!out) return llmk_set_error(INV, fn, "out is NULL");
  *out = NULL;
  llmk_status s = check_cuda_handle(h, fn);
  if (s) return s;
  if (!blob) return llmk_set_error(INV, fn, "blob is NULL");
  if (world < 1 || world > LLMK_COMM_MAX_RANKS)
    return llmk_set_error(INV, fn, "world = %d: must be 1 .. %d", world, LLMK_COMM_MAX_RANKS);
  if (rank < 0 || rank >= world) return llmk_set_error(INV, fn, "rank = %d: must be in [0, %d)", rank, world);
  if ((s = check_buffer_bytes(&buffer_bytes, fn))) return s;
  llmk_comm c = new_comm(h, buffer_bytes);
  if (!c) return llmk_set_error(LLMK_ERR_OUT_OF_MEMORY, fn, "cannot allocate the communicator");
  c->rank = rank;
  c->world = world;
  if ((s = llmk_cuda_comm_alloc(c, fn)) || (s = llmk_cuda_comm_blob(c, blob, fn))) {
    llmk_cuda_comm_free(c);
    free(c);
    return s;
  }
  *out = c;
  return LLMK_SUCCESS;
}

llmk_status llmk_comm_import(llmk_comm c, const void *blobs, void *nccl_comm) {
  static const char fn[] = "llmk_comm_import";
  if (!c) return llmk_set_error(INV, fn, "comm is NULL");
  if (!blobs) return llmk_set_error(INV, fn, "blobs is NULL");
  if (c->imported) return llmk_set_error(INV, fn, "the communicator was already imported");
  llmk_status s = llmk_cuda_comm_open(c, blobs, fn);
  if (s) return s;
  c->nccl = nccl_comm;
  c->imported = 1;
  return LLMK_SUCCESS;
}

llmk_status llmk_comm_destroy(llmk_comm c) {
  if (!c) return LLMK_SUCCESS;
  llmk_cuda_comm_free(c);
  free(c);
  return LLMK_SUCCESS;
}

llmk_status llmk_comm_info(llmk_comm c, int *rank, int *world, void **buffer, size_t *bytes) {
  if (!c) return llmk_set_error(INV, "llmk_comm_info", "comm is NULL");
  if (rank) *rank = c->rank;
  if (world) *world = c->world;
  if (buffer) *buffer = c->base ? c->base + 2 * c->buffer_bytes : NULL;
  if (bytes) *bytes = c->buffer_bytes;
  return LLMK_SUCCESS;
}

static llmk_status fault_status(llmk_comm c, const char *fn) {
  const volatile llmk_comm_fault *f = c->fault;
  if (!f || !f->code) return LLMK_SUCCESS;
  return llmk_set_error(LLMK_ERR_COMM_TIMEOUT, fn,
                        "rank %u did not arrive within %llu ms (rank %d, call %u, barrier %c); the communicator is "
                        "unusable: destroy it on every rank",
                        (unsigned)f->missing, (unsigned long long)(c->timeout_ns / 1000000), c->rank,
                        (unsigned)f->epoch, "ABC"[f->barrier % 3]);
}

llmk_status llmk_comm_check(llmk_comm c) {
  if (!c) return llmk_set_error(INV, "llmk_comm_check", "comm is NULL");
  return fault_status(c, "llmk_comm_check");
}

/* Whether the own kernels can take a message of `bytes` at these pointers. */
static int own_ok(llmk_comm c, size_t bytes, const void *x, const void *r, const void *y) {
  const uintptr_t a = (uintptr_t)x | (uintptr_t)r | (uintptr_t)y;
  return c->p2p && bytes % 16 == 0 && bytes <= c->buffer_bytes && a % 16 == 0;
}

/* `env`: LLMK_ALLREDUCE (read at creation) may replace AUTO. */
static llmk_allreduce_algo pick(llmk_comm c, llmk_allreduce_algo algo, size_t bytes, int own, int env) {
  if (algo == LLMK_ALLREDUCE_AUTO && env && c->forced) algo = (llmk_allreduce_algo)c->forced;
  if (algo == LLMK_ALLREDUCE_AUTO) {
    algo = llmk_allreduce_table(c->world, bytes);
    if (algo == LLMK_ALLREDUCE_NCCL && !c->nccl) algo = LLMK_ALLREDUCE_TWOSHOT; /* the own kernels still can */
  }
  if (!own) algo = LLMK_ALLREDUCE_NCCL;
  return algo;
}

llmk_allreduce_algo llmk_allreduce_choice(llmk_comm c, size_t bytes) {
  if (!c) return LLMK_ALLREDUCE_NCCL;
  return pick(c, LLMK_ALLREDUCE_AUTO, bytes, own_ok(c, bytes, NULL, NULL, NULL), 0);
}

/* A contiguous tensor of a reducible dtype: its element count. */
static llmk_status flat(const llmk_tensor *t, const char *fn, const char *name, int64_t *n) {
  if (!t) return llmk_set_error(INV, fn, "%s is NULL", name);
  if (t->dtype != LLMK_BF16 && t->dtype != LLMK_F16 && t->dtype != LLMK_F32)
    return llmk_set_error(INV, fn, "%s: dtype must be bf16, f16 or f32, got %s", name, llmk_dtype_name(t->dtype));
  if (t->ndim < 1 || t->ndim > LLMK_MAX_DIMS)
    return llmk_set_error(INV, fn, "%s: ndim = %d: must be 1 .. %d", name, (int)t->ndim, LLMK_MAX_DIMS);
  int64_t count = 1, stride = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] < 0) return llmk_set_error(INV, fn, "%s: shape[%d] = %lld is negative", name, i, (long long)t->shape[i]);
    if (t->shape[i] > 1 && t->strides[i] != stride)
      return llmk_set_error(INV, fn, "%s: not contiguous (strides[%d] = %lld, expected %lld)", name, i,
                            (long long)t->strides[i], (long long)stride);
    stride *= t->shape[i];
    count *= t->shape[i];
  }
  if (count > 0 && !t->data) return llmk_set_error(INV, fn, "%s.data is NULL", name);
  if ((uintptr_t)t->data % llmk_dtype_size(t->dtype))
    return llmk_set_error(INV, fn, "%s.data = %p is not aligned to its element size", name, t->data);
  *n = count;
  return LLMK_SUCCESS;
}

static int overlaps(const void *p, size_t n, const char *lo, size_t len) {
  const uintptr_t a = (uintptr_t)p, b = (uintptr_t)lo;
  return n > 0 && len > 0 && a < b + len && b < a + n;
}

llmk_status llmk_allreduce(llmk_comm c, llmk_allreduce_algo algo, const llmk_tensor *x, const llmk_tensor *residual,
                           const llmk_tensor *y, void *stream) {
  static const char fn[] = "llmk_allreduce";
  if (!c) return llmk_set_error(INV, fn, "comm is NULL");
  if (!c->imported) return llmk_set_error(INV, fn, "the communicator was exported but not imported yet");
  if (algo < LLMK_ALLREDUCE_AUTO || algo > LLMK_ALLREDUCE_NCCL)
    return llmk_set_error(INV, fn, "algo has invalid value %d", (int)algo);
  int64_t n, nr = 0, ny;
  llmk_status s;
  if ((s = flat(x, fn, "x", &n)) || (s = flat(y, fn, "y", &ny))) return s;
  if (residual && (s = flat(residual, fn, "residual", &nr))) return s;
  if (y->dtype != x->dtype || (residual && residual->dtype != x->dtype))
    return llmk_set_error(INV, fn, "x, y and residual must share one dtype (x is %s)", llmk_dtype_name(x->dtype));
  if (ny != n || (residual && nr != n))
    return llmk_set_error(INV, fn, "x has %lld elements, y %lld%s%lld: they must match", (long long)n, (long long)ny,
                          residual ? ", residual " : "", (long long)(residual ? nr : 0));
  const size_t es = llmk_dtype_size(x->dtype), bytes = (size_t)n * es;
  const size_t span = llmk_comm_alloc_bytes(c->buffer_bytes, c->world), B = c->buffer_bytes;
  const int registered = x->data == c->base + 2 * B;
  if (registered && bytes > B)
    return llmk_set_error(INV, fn, "x is the registered buffer, but the message (%zu bytes) exceeds it (%zu)", bytes, B);
  if (!registered && overlaps(x->data, bytes, c->base, span))
    return llmk_set_error(INV, fn, "x overlaps the communicator's buffers (only the registered buffer itself may be x)");
  if (overlaps(y->data, bytes, c->base, span))
    return llmk_set_error(INV, fn, "y overlaps the communicator's buffers");
  if (residual && !(registered && residual->data == x->data) && overlaps(residual->data, bytes, c->base, span))
    return llmk_set_error(INV, fn, "residual overlaps the communicator's buffers");
  const void *ptrs[] = {x->data, y->data, residual ? residual->data : NULL};
  const char *names[] = {"x.data", "y.data", "residual.data"};
  if ((s = llmk_check_backend_ptrs(c->h, fn, ptrs, names, 3))) return s;
  if ((s = fault_status(c, fn))) return s;
  if (n == 0) return LLMK_SUCCESS;
  llmk_ar_call call;
  memset(&call, 0, sizeof call);
  call.dtype = x->dtype;
  call.n = n;
  call.bytes = bytes;
  call.x = x->data;
  call.residual = residual ? residual->data : NULL;
  call.y = y->data;
  call.registered = registered;
  call.algo = pick(c, algo, bytes, own_ok(c, bytes, x->data, call.residual, y->data), 1);
  if (call.algo == LLMK_ALLREDUCE_NCCL && !c->nccl) {
    if (registered || c->world == 1) call.algo = LLMK_ALLREDUCE_ONESHOT; /* nothing to exchange: handled below */
    else
      return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn,
                            "this message (%zu bytes%s) needs NCCL, and the communicator has none (import it with an "
                            "nccl_comm)",
                            bytes, bytes % 16 ? ", not a multiple of 16" : bytes > B ? ", above the buffer" : "");
  }
  if (call.algo != LLMK_ALLREDUCE_NCCL && !own_ok(c, bytes, x->data, call.residual, y->data))
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn,
                          "world size 1 without NCCL: the message must be a multiple of 16 bytes, 16-byte aligned "
                          "and at most the buffer");
  return llmk_cuda_allreduce(c, &call, stream);
}
