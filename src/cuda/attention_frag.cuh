/* Building blocks of the decode-attention kernel (attention_decode.cu):
 * cp.async with zero fill, mma.sync m16n8k16 in bf16 and f16, ldmatrix,
 * and the conversions of FP8 and INT4 cache bytes into tensor-core
 * fragments.
 *
 * Fragment layout of mma.m16n8k16 (lane = 4 g + c): A (16 x 16) rows g and
 * g + 8, k columns {2c, 2c + 1} and {2c + 8, 2c + 9}; B (16 x 8) k rows
 * {2c, 2c + 1} (b0) and {2c + 8, 2c + 9} (b1) of column g; C rows g and
 * g + 8, columns 2c and 2c + 1. A dot product does not care in which order
 * its terms are summed, so the quantized paths give each lane the k (head
 * dimension) values its own cache bytes hold and permute Q to match: the
 * maps are in attention_decode.cu (q_dim). */
#ifndef LLMK_ATTENTION_FRAG_CUH
#define LLMK_ATTENTION_FRAG_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

__device__ __forceinline__ uint32_t smem_u32(const void *p) {
  return (uint32_t)__cvta_generic_to_shared(p);
}

/* 16 (4, 8) bytes global -> shared; src_bytes = 0 writes zeros and reads nothing. */
template <int BYTES>
__device__ __forceinline__ void cp_async_zfill(void *dst, const void *src, int src_bytes) {
  static_assert(BYTES == 4 || BYTES == 8 || BYTES == 16, "cp.async copies 4, 8 or 16 bytes");
  if constexpr (BYTES == 16)
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_u32(dst)), "l"(src), "r"(src_bytes)
                 : "memory");
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;" ::"r"(smem_u32(dst)), "l"(src), "n"(BYTES),
                 "r"(src_bytes)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

template <bool F16>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (F16)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}

/* Two e4m3 codes (low byte first) -> f16x2, exactly (every e4m3 value is an f16). */
__device__ __forceinline__ uint32_t e4m3x2_to_f16x2(uint32_t two) {
  uint32_t r;
  asm("{\n .reg .b16 t;\n cvt.u16.u32 t, %1;\n cvt.rn.f16x2.e4m3x2 %0, t;\n}" : "=r"(r) : "r"(two));
  return r;
}

/* 2^x by the MUFU unit (ex2.approx.ftz: about 2 ulp; results below 2^-126,
 * which a softmax weight relative to the running maximum never needs, flush
 * to zero). exp2f adds a range check and a rescale around the same MUFU. */
__device__ __forceinline__ float ex2_fast(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/* (x & MASK) | magic in one LOP3 (written as two operations, ptxas emits an
 * AND and an OR when both constants are immediates) */
template <uint32_t MASK> __device__ __forceinline__ uint32_t and_or(uint32_t x, uint32_t magic) {
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(r) : "r"(x), "n"(MASK), "r"(magic));
  return r;
}

/* a * b + c on f16 pairs, rounded once */
__device__ __forceinline__ uint32_t hfma2(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t r;
  asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  return r;
}

__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
  uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(sel));
  return r;
}

/* INT4 codes to exact f16 pairs, two instructions a pair and no shift for
 * the high nibbles. With exponent 2^10 an f16's mantissa counts in steps of
 * 1: 0x6400 | c is 1024 + c, 0x6400 | (c << 4) is 1024 + 16 c, and
 * (1024 + c) - 1024 = c, (1024 + 16 c) / 16 - 64 = c exactly. (Leaving the
 * 1024 in and correcting afterwards would make the tensor cores sum numbers
 * ~100x larger than the result, at a cost in accuracy over long sequences.)
 * nib_lo: the nibbles at bits 0-3 and 16-19 of x as the pair (lo, hi);
 * nib_hi: those at bits 4-7 and 20-23. */
__device__ __forceinline__ uint32_t nib_lo(uint32_t x) {
  uint32_t r;
  asm("sub.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(and_or<0x000F000Fu>(x, 0x64006400u)), "r"(0x64006400u));
  return r;
}
__device__ __forceinline__ uint32_t nib_hi(uint32_t x) {
  return hfma2(and_or<0x00F000F0u>(x, 0x64006400u), 0x2C002C00u /* 1/16 */, 0xD400D400u /* -64 */);
}

/* (lo, lo) and (hi, hi) of an f16 pair: ptxas folds these into the
 * operand selectors of the HFMA2 that uses them */
__device__ __forceinline__ uint32_t dup_lo(uint32_t x) {
  uint32_t r;
  asm("{\n .reg .b16 l, h;\n mov.b32 {l, h}, %1;\n mov.b32 %0, {l, l};\n}" : "=r"(r) : "r"(x));
  return r;
}
__device__ __forceinline__ uint32_t dup_hi(uint32_t x) {
  uint32_t r;
  asm("{\n .reg .b16 l, h;\n mov.b32 {l, h}, %1;\n mov.b32 %0, {h, h};\n}" : "=r"(r) : "r"(x));
  return r;
}

__device__ __forceinline__ uint32_t pack_f16x2(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t *>(&h);
}
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t *>(&h);
}
__device__ __forceinline__ float f16_lo(uint32_t x) { return __half2float(__ushort_as_half((unsigned short)(x & 0xFFFFu))); }
__device__ __forceinline__ float f16_hi(uint32_t x) { return __half2float(__ushort_as_half((unsigned short)(x >> 16))); }

#endif
