/*
 * Scalar float <-> FP8 / BF16 / F16 conversions, the library's exact numerics
 * (docs/DESIGN.md, "Numerics"). Header-only so that C, the CPU reference and CUDA
 * kernels share one definition. The CUDA kernels use the hardware `cvt`
 * instruction on their hot path; tests check that it agrees bit for bit with
 * these functions over all 2^32 float inputs.
 */
#ifndef LLMK_FP8_H
#define LLMK_FP8_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define LLMK_HD static __host__ __device__ __forceinline__
#else
#define LLMK_HD static inline
#endif

#define LLMK_E4M3_MAX 448.0f
#define LLMK_E5M2_MAX 57344.0f
#define LLMK_E4M3_MAX_CODE 0x7Eu
#define LLMK_E5M2_MAX_CODE 0x7Bu
#define LLMK_FP8_NAN_CODE 0x7Fu /* what NaN inputs encode to, in both formats */

LLMK_HD uint32_t llmk_f32_bits(float x) {
  uint32_t b;
  memcpy(&b, &x, 4);
  return b;
}
LLMK_HD float llmk_f32_from_bits(uint32_t b) {
  float x;
  memcpy(&x, &b, 4);
  return x;
}

/* Round-to-nearest-even encoding of |x| (bits `a`, sign cleared, not NaN)
 * into a small binary format with `mbits` mantissa bits and exponent `bias`.
 * Returns the magnitude code without saturation; codes past the format's
 * largest finite value are the caller's to clamp. */
LLMK_HD uint32_t llmk_encode_magnitude(uint32_t a, int mbits, int bias) {
  int exp32 = (int)(a >> 23);
  if (exp32 == 0) return 0; /* float subnormals are far below half the least FP8/F16 subnormal */
  uint32_t full = (a & 0x7FFFFFu) | 0x800000u;
  int e = exp32 - 127 + bias; /* target biased exponent if normal */
  int shift = 23 - mbits;
  uint32_t base;
  if (e >= 1) {
    base = ((uint32_t)e << mbits) + ((full >> shift) & ((1u << mbits) - 1u));
  } else {
    shift += 1 - e; /* subnormal: value / least-subnormal = full >> shift */
    if (shift > 24) return 0; /* below half of the least subnormal */
    base = full >> shift;
  }
  uint32_t rem = full & ((1u << shift) - 1u);
  uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (base & 1u))) base += 1; /* carries into the exponent */
  return base;
}

/* float -> e4m3 code, satfinite RNE; NaN -> 0x7F. */
LLMK_HD uint8_t llmk_e4m3_from_f32(float x) {
  uint32_t b = llmk_f32_bits(x);
  uint32_t a = b & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return LLMK_FP8_NAN_CODE;
  uint32_t m = a >= 0x43E00000u /* 448 */ ? LLMK_E4M3_MAX_CODE : llmk_encode_magnitude(a, 3, 7);
  if (m > LLMK_E4M3_MAX_CODE) m = LLMK_E4M3_MAX_CODE;
  return (uint8_t)(((b >> 24) & 0x80u) | m);
}

/* float -> e5m2 code, satfinite RNE (Inf saturates too); NaN -> 0x7F. */
LLMK_HD uint8_t llmk_e5m2_from_f32(float x) {
  uint32_t b = llmk_f32_bits(x);
  uint32_t a = b & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return LLMK_FP8_NAN_CODE;
  uint32_t m = a >= 0x47600000u /* 57344 */ ? LLMK_E5M2_MAX_CODE : llmk_encode_magnitude(a, 2, 15);
  if (m > LLMK_E5M2_MAX_CODE) m = LLMK_E5M2_MAX_CODE;
  return (uint8_t)(((b >> 24) & 0x80u) | m);
}

LLMK_HD float llmk_e4m3_to_f32(uint8_t c) {
  uint32_t sign = (uint32_t)(c & 0x80u) << 24;
  uint32_t e = (c >> 3) & 0xFu, m = c & 7u;
  if ((c & 0x7Fu) == 0x7Fu) return llmk_f32_from_bits(sign | 0x7FC00000u);
  if (e == 0) {
    float v = (float)m * 0.001953125f; /* m * 2^-9, exact */
    return sign ? -v : v;
  }
  return llmk_f32_from_bits(sign | ((e + 120u) << 23) | (m << 20));
}

LLMK_HD float llmk_e5m2_to_f32(uint8_t c) {
  uint32_t sign = (uint32_t)(c & 0x80u) << 24;
  uint32_t e = (c >> 2) & 0x1Fu, m = c & 3u;
  if (e == 31) return llmk_f32_from_bits(sign | (m ? 0x7FC00000u : 0x7F800000u));
  if (e == 0) {
    float v = (float)m * 1.52587890625e-05f; /* m * 2^-16, exact */
    return sign ? -v : v;
  }
  return llmk_f32_from_bits(sign | ((e + 112u) << 23) | (m << 21));
}

/* float -> bf16 bits, RNE; NaN stays NaN (quietened, sign kept). */
LLMK_HD uint16_t llmk_bf16_from_f32(float x) {
  uint32_t b = llmk_f32_bits(x);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((b >> 16) | 0x40u);
  b += 0x7FFFu + ((b >> 16) & 1u);
  return (uint16_t)(b >> 16);
}
LLMK_HD float llmk_bf16_to_f32(uint16_t h) { return llmk_f32_from_bits((uint32_t)h << 16); }

/* float -> f16 bits, RNE; overflow gives +-Inf (IEEE, no saturation); NaN stays NaN. */
LLMK_HD uint16_t llmk_f16_from_f32(float x) {
  uint32_t b = llmk_f32_bits(x);
  uint32_t sign = (b >> 16) & 0x8000u;
  uint32_t a = b & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return (uint16_t)(sign | 0x7E00u);
  if (a >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u); /* rounds past 65504 */
  return (uint16_t)(sign | llmk_encode_magnitude(a, 10, 15));
}
LLMK_HD float llmk_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
  if (e == 31) return llmk_f32_from_bits(sign | 0x7F800000u | (m << 13));
  if (e == 0) {
    float v = (float)m * 5.9604644775390625e-08f; /* m * 2^-24, exact */
    return sign ? -v : v;
  }
  return llmk_f32_from_bits(sign | ((e + 112u) << 23) | (m << 13));
}

/* The quantization constants of docs/DESIGN.md for an FP8 format. */
LLMK_HD float llmk_fp8_max(int is_e5m2) { return is_e5m2 ? LLMK_E5M2_MAX : LLMK_E4M3_MAX; }
LLMK_HD float llmk_fp8_min_scale(int is_e5m2) {
  /* 1 / (FP8_MAX * 512), exactly representable: 2^-9 / 448 is not, so use
   * the fp32 division the spec names; both sides compute the same value. */
  return 1.0f / (llmk_fp8_max(is_e5m2) * 512.0f);
}

/* The amax step of a group's scale: max(m, |v|) over finite v (NaN and
 * +-Inf leave m as it is). */
LLMK_HD float llmk_amax_step(float m, float v) {
  const float a = fabsf(v);
  return a <= 3.40282347e38f && a > m ? a : m;
}

/* An e4m3 group's scale from its amax, clamped to *ub when given:
 * max(amax / 448, MIN_SCALE) (docs/DESIGN.md, "Quantization"). */
LLMK_HD float llmk_e4m3_group_scale(float amax, const float *ub) {
  if (ub) amax = fminf(amax, *ub);
  return fmaxf(amax / LLMK_E4M3_MAX, llmk_fp8_min_scale(0));
}

#endif /* LLMK_FP8_H */
