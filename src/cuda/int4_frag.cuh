/* INT4 codes into bf16 tensor-core operands (llmk.h, "INT4 weights": w =
 * bf16((q - z) s)), shared by llmk_gemm_w4a16's kernel and its lab. The
 * bf16 with exponent bits 0x43 and mantissa q is 128 + q exactly; less
 * 128 + z it is q - z exactly; times s it rounds once. */
#ifndef LLMK_INT4_FRAG_CUH
#define LLMK_INT4_FRAG_CUH

#include <stdint.h>

__device__ __forceinline__ uint32_t llmk_bsub2(uint32_t a, uint32_t b) {
  uint32_t d;
  asm("sub.rn.bf16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
}
__device__ __forceinline__ uint32_t llmk_bmul2(uint32_t a, uint32_t b) {
  uint32_t d;
  asm("mul.rn.bf16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
}

/* The four bf16 pairs (e_j, e_j+4) of a word's codes e0 .. e7 (e_i in bits
 * 4i .. 4i + 3), dequantized: zz is bf16 128 + z twice, ss the scale twice. */
__device__ __forceinline__ void llmk_int4_dequant_word(uint32_t w, uint32_t zz, uint32_t ss, uint32_t (&p)[4]) {
#pragma unroll
  for (int j = 0; j < 4; j++)
    p[j] = llmk_bmul2(llmk_bsub2(((w >> (4 * j)) & 0x000F000Fu) | 0x43004300u, zz), ss);
}

#endif
