/* The all-reduce communicator (include/llmk.h, "All-reduce across the GPUs
 * of one node"): its state, shared by the API layer (src/core/comm_api.c)
 * and the CUDA side (src/cuda/comm.cu, kernels in src/cuda/allreduce.cu). */
#ifndef LLMK_COMM_H
#define LLMK_COMM_H

#include <stdint.h>

#include "core/internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CTAs per call at most (all resident at once: a CTA waits only for the
 * same-index CTA of each peer, which must be able to run). */
#define LLMK_COMM_MAX_BLOCKS 128

/* One rank's device allocation, at these byte offsets from its base:
 *   [0, B)          parity buffer 0 (the input is copied here on even calls)
 *   [B, 2B)         parity buffer 1
 *   [2B, 3B)        the registered buffer (llmk_comm_info)
 *   [3B, +2R)       two-shot results: this rank's segment's fp32 sums, one
 *                   half of R bytes per call parity (R = 2 x the largest
 *                   segment of a buffer-sized message: fp32 of bf16 data)
 *   then FLAGS      barrier flags written by the peers: LLMK_COMM_BARRIERS
 *                   arrays of [LLMK_COMM_MAX_BLOCKS][LLMK_COMM_MAX_RANKS]
 *                   uint32 (slot [b][p]: the call counter + 1 of peer p's
 *                   CTA b at that barrier)
 *   then LOCAL      this rank's own counters: the call counter (epoch) and
 *                   the count of CTAs done with the current call. */
#define LLMK_COMM_BARRIERS 3 /* A: data in; B: two-shot results in; C: registered buffer read */
#define LLMK_COMM_FLAG_WORDS (LLMK_COMM_MAX_BLOCKS * LLMK_COMM_MAX_RANKS)
#define LLMK_COMM_FLAGS_BYTES ((size_t)LLMK_COMM_BARRIERS * LLMK_COMM_FLAG_WORDS * 4)
#define LLMK_COMM_LOCAL_BYTES ((size_t)256)
static inline size_t llmk_comm_res_half(size_t B, int world) { return 2 * ((B / 16 + (size_t)world - 1) / (size_t)world) * 16; }
static inline size_t llmk_comm_flags_off(size_t B, int world) { return 3 * B + 2 * llmk_comm_res_half(B, world); }
static inline size_t llmk_comm_alloc_bytes(size_t B, int world) {
  return llmk_comm_flags_off(B, world) + LLMK_COMM_FLAGS_BYTES + LLMK_COMM_LOCAL_BYTES;
}

/* Written by a kernel that gave up waiting (pinned, mapped host memory). */
typedef struct llmk_comm_fault {
  uint32_t code;    /* 0: none; 1: timeout */
  uint32_t missing; /* the rank that did not arrive */
  uint32_t epoch;   /* the call counter of the failed call */
  uint32_t barrier; /* 0 A, 1 B, 2 C */
} llmk_comm_fault;

struct llmk_comm_s {
  llmk_handle h;
  int rank, world;
  size_t buffer_bytes;  /* B */
  int imported;         /* peers' buffers opened (or world == 1) */
  int p2p;              /* the own kernels may run (every pair reachable) */
  char *base;           /* own allocation */
  char *peer[LLMK_COMM_MAX_RANKS];  /* every rank's allocation as mapped here (peer[rank] = base) */
  int opened[LLMK_COMM_MAX_RANKS];  /* peer[i] came from cudaIpcOpenMemHandle */
  llmk_comm_fault *fault;           /* host view */
  llmk_comm_fault *fault_dev;       /* device view of the same memory */
  void *nccl;                       /* ncclComm_t, or NULL */
  uint64_t timeout_ns;
  int forced;                       /* LLMK_ALLREDUCE at creation: 0 none, else an llmk_allreduce_algo */
};

/* A validated llmk_allreduce call: n elements of es bytes. */
typedef struct llmk_ar_call {
  llmk_allreduce_algo algo; /* ONESHOT, TWOSHOT or NCCL: decided by the API layer */
  llmk_dtype dtype;
  int64_t n;
  size_t bytes;
  const void *x;
  const void *residual;
  void *y;
  int registered; /* x is the registered buffer */
} llmk_ar_call;

/* Environment: LLMK_COMM_TIMEOUT_MS (default 10000), LLMK_ALLREDUCE. */
uint64_t llmk_comm_env_timeout_ns(void);
int llmk_comm_env_algo(void);

/* The AUTO choice for `bytes` on `world` ranks when the own kernels may
 * run: thresholds of src/core/allreduce_table.inc. */
llmk_allreduce_algo llmk_allreduce_table(int world, size_t bytes);

/* CUDA side (src/cuda/comm.cu, or the no-CUDA stub). */
llmk_status llmk_cuda_comm_alloc(llmk_comm c, const char *fn);
llmk_status llmk_cuda_comm_blob(llmk_comm c, void *blob, const char *fn);
llmk_status llmk_cuda_comm_open(llmk_comm c, const void *blobs, const char *fn);
llmk_status llmk_cuda_comm_create_nccl(llmk_comm c, void *nccl_comm, const char *fn);
void llmk_cuda_comm_free(llmk_comm c);
llmk_status llmk_cuda_allreduce(llmk_comm c, const llmk_ar_call *call, void *stream);

#ifdef __cplusplus
}
#endif
#endif
