/* Hopper (sm_90a) primitives as inline PTX: mbarrier, TMA tensor loads,
 * wgmma ordering, shared-memory matrix descriptors, register reallocation.
 * Facts and their sources: ../shared/HOPPER_NOTES.md (sections 1-5). */
#ifndef LLMK_SM90_CUH
#define LLMK_SM90_CUH

#include <cuda.h> /* CUtensorMap (types only: libcuda is never linked) */
#include <stdint.h>

__device__ __forceinline__ uint32_t llmk_smem_addr(const void *p) {
  return (uint32_t)__cvta_generic_to_shared(p);
}

/* ---- mbarrier ------------------------------------------------------------ */

__device__ __forceinline__ void llmk_mbar_init(uint64_t *bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(llmk_smem_addr(bar)), "r"(count));
}
/* Makes barrier initialisation visible to the async proxy (TMA) and the cluster. */
__device__ __forceinline__ void llmk_fence_mbar_init() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}
__device__ __forceinline__ void llmk_mbar_arrive_expect_tx(uint64_t *bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(llmk_smem_addr(bar)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void llmk_mbar_arrive(uint64_t *bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(llmk_smem_addr(bar)) : "memory");
}
/* Spins until the phase with parity `parity` has completed. */
__device__ __forceinline__ void llmk_mbar_wait(uint64_t *bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred done;\n"
      "WAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT_%=;\n}\n" ::"r"(llmk_smem_addr(bar)),
      "r"(parity)
      : "memory");
}

/* ---- TMA ----------------------------------------------------------------- */

/* 2-D tile {c0 (inner), c1} of `map` into shared memory at dst; completion
 * is counted in bytes on `bar`. Out-of-bounds elements arrive as zeros. */
__device__ __forceinline__ void llmk_tma_load_2d(void *dst, const CUtensorMap *map, uint64_t *bar, int c0, int c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];" ::"r"(
          llmk_smem_addr(dst)),
      "l"(map), "r"(llmk_smem_addr(bar)), "r"(c0), "r"(c1)
      : "memory");
}
/* 3-D tile {c0 (inner), c1, c2} of `map`, as llmk_tma_load_2d. */
__device__ __forceinline__ void llmk_tma_load_3d(void *dst, const CUtensorMap *map, uint64_t *bar, int c0, int c1,
                                                 int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5}], [%2];" ::
          "r"(llmk_smem_addr(dst)),
      "l"(map), "r"(llmk_smem_addr(bar)), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
}
/* As llmk_tma_load_2d, into the same shared-memory offset of every cluster
 * CTA in `mask` (bit r: rank r); each destination's mbarrier at bar's offset
 * is credited with the bytes it received. */
__device__ __forceinline__ void llmk_tma_load_2d_multicast(void *dst, const CUtensorMap *map, uint64_t *bar, int c0,
                                                           int c1, uint16_t mask) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster"
      " [%0], [%1, {%3, %4}], [%2], %5;" ::"r"(llmk_smem_addr(dst)),
      "l"(map), "r"(llmk_smem_addr(bar)), "r"(c0), "r"(c1), "h"(mask)
      : "memory");
}
/* 2-D tile of `map` at {c0 (inner), c1} from shared memory at src, in the
 * thread's bulk group; elements outside the tensor are not written. */
__device__ __forceinline__ void llmk_tma_store_2d(const CUtensorMap *map, const void *src, int c0, int c1) {
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%2, %3}], [%1];" ::"l"(map),
               "r"(llmk_smem_addr(src)), "r"(c0), "r"(c1)
               : "memory");
}
__device__ __forceinline__ void llmk_bulk_commit() { asm volatile("cp.async.bulk.commit_group;" ::: "memory"); }
/* Waits until this thread's bulk stores have finished reading shared memory. */
__device__ __forceinline__ void llmk_bulk_wait_read0() {
  asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
}
/* Orders this thread's generic shared-memory writes before later async-proxy (TMA) reads. */
__device__ __forceinline__ void llmk_fence_proxy_async_smem() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}
/* Starts fetching a 2-D tile of `map` into L2 (no shared memory, no
 * completion): a hint that is safe at any time, since L2 is where every
 * write to device memory lands. */
__device__ __forceinline__ void llmk_tma_prefetch_l2_2d(const CUtensorMap *map, int c0, int c1) {
  asm volatile("cp.async.bulk.prefetch.tensor.2d.L2.global.tile [%0, {%1, %2}];" ::"l"(map), "r"(c0), "r"(c1)
               : "memory");
}
__device__ __forceinline__ void llmk_tma_prefetch_desc(const CUtensorMap *map) {
  asm volatile("prefetch.tensormap [%0];" ::"l"(map) : "memory");
}

/* ---- wgmma ordering ------------------------------------------------------- */

__device__ __forceinline__ void llmk_wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void llmk_wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void llmk_wgmma_wait() {
  static_assert(N >= 0 && N <= 7, "wgmma.wait_group N in 0..7");
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
/* Keeps the compiler from moving accumulator reads or writes across the
 * asynchronous wgmma boundary (the registers are "used" here). */
template <int R>
__device__ __forceinline__ void llmk_fence_regs(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; i++) asm volatile("" : "+f"(d[i])::"memory");
}

/* Descriptor of a K-major FP8 tile whose rows are 128 bytes, written by TMA
 * with 128-byte swizzle into 1024-byte-aligned shared memory: SBO = 8 rows
 * x 128 B, LBO unused (1), swizzle mode 1 (128 B), base offset 0. Adding
 * 2 to the result moves 32 bytes (one k32 step) along K. */
__device__ __forceinline__ uint64_t llmk_desc_k128_sw128(const void *tile) {
  const uint64_t addr = llmk_smem_addr(tile);
  return ((addr & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}

/* ---- warp specialisation -------------------------------------------------- */

template <int N>
__device__ __forceinline__ void llmk_setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void llmk_setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(N));
}
/* bar.sync on a named barrier (ids 1..15; 0 is __syncthreads) for `threads` threads. */
__device__ __forceinline__ void llmk_named_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

/* ---- programmatic dependent launch (PTX ISA 9.7.13.13) ---------------------- */

/* Waits until the grids this one depends on have completed and their memory
 * is visible; returns at once when the launch did not allow overlap. */
__device__ __forceinline__ void llmk_griddep_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
/* Lets the next kernel of the stream be scheduled (it still waits for this
 * grid's completion in its own llmk_griddep_wait). */
__device__ __forceinline__ void llmk_griddep_launch_dependents() {
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}

/* ---- clusters ------------------------------------------------------------- */

__device__ __forceinline__ uint32_t llmk_cluster_rank() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return r;
}
__device__ __forceinline__ uint32_t llmk_cluster_size() {
  uint32_t n;
  asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(n));
  return n;
}
/* Every live thread of the cluster: writes before are visible to reads after
 * (exited threads count as arrived, PTX ISA "exit"). */
__device__ __forceinline__ void llmk_cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}
__device__ __forceinline__ void llmk_cluster_arrive_relaxed() {
  asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
}
__device__ __forceinline__ void llmk_cluster_wait() { asm volatile("barrier.cluster.wait.aligned;" ::: "memory"); }
/* The address of `p`'s shared-memory offset in cluster CTA `rank`. */
__device__ __forceinline__ uint32_t llmk_cluster_map(const void *p, uint32_t rank) {
  uint32_t r;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(r) : "r"(llmk_smem_addr(p)), "r"(rank));
  return r;
}
/* Arrives (release, cluster scope) on the mbarrier at `bar`'s offset in cluster CTA `rank`. */
__device__ __forceinline__ void llmk_mbar_arrive_remote(uint64_t *bar, uint32_t rank) {
  asm volatile("mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%0];" ::"r"(llmk_cluster_map(bar, rank))
               : "memory");
}
__device__ __forceinline__ float llmk_ld_cluster_f32(uint32_t addr) {
  float v;
  asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(addr) : "memory");
  return v;
}
__device__ __forceinline__ float4 llmk_ld_cluster_f32x4(uint32_t addr) {
  float4 v;
  asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "r"(addr)
               : "memory");
  return v;
}

#endif
