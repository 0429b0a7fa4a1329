/* Every float32 bit pattern through llmk's e4m3/e5m2 encoders, checked
 * against the CUDA toolkit's host conversion (cuda_fp8.h, __NV_SATFINITE),
 * and every FP8 code through the decoders, checked against the same header. */
#include <cstring>

#include "fp8/fp8.h"
#include "harness.h"

#ifdef LLMK_HAVE_CUDA_FP8
#include <cuda_fp8.h>

static float ref_decode(uint8_t c, __nv_fp8_interpretation_t k) {
  __half_raw h = __nv_cvt_fp8_to_halfraw(c, k);
  uint16_t b = h.x;
  return llmk_f16_to_f32(b); /* f16 -> f32 is exact; checked below against the toolkit too */
}
#endif

int main(void) {
#ifndef LLMK_HAVE_CUDA_FP8
  SKIP("built without the CUDA toolkit's cuda_fp8.h");
#else
  /* decoders: 256 codes each, NaN codes compared by class */
  for (int c = 0; c < 256; c++) {
    float a = llmk_e4m3_to_f32((uint8_t)c), b = ref_decode((uint8_t)c, __NV_E4M3);
    CHECK((a != a && b != b) || llmk_f32_bits(a) == llmk_f32_bits(b), "e4m3 code 0x%02x: %g vs %g", c, a, b);
    a = llmk_e5m2_to_f32((uint8_t)c), b = ref_decode((uint8_t)c, __NV_E5M2);
    CHECK((a != a && b != b) || llmk_f32_bits(a) == llmk_f32_bits(b), "e5m2 code 0x%02x: %g vs %g", c, a, b);
  }
  /* f16 decode against the toolkit for all 2^16 codes (used by ref_decode above) */
  long bad16 = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    __half_raw r;
    r.x = (unsigned short)h;
    float want = __half2float(__half(r)), got = llmk_f16_to_f32((uint16_t)h);
    if (!((want != want && got != got) || llmk_f32_bits(want) == llmk_f32_bits(got))) bad16++;
  }
  CHECK(bad16 == 0, "%ld f16 codes decode differently from cuda_fp16.h", bad16);

  /* encoders: all 2^32 inputs */
  long bad4 = 0, bad5 = 0;
  uint32_t first4 = 0, first5 = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad4, bad5)
  for (int64_t i = 0; i < (INT64_C(1) << 32); i++) {
    float x = llmk_f32_from_bits((uint32_t)i);
    uint8_t w4 = __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
    uint8_t w5 = __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E5M2);
    if (llmk_e4m3_from_f32(x) != w4) {
      if (!bad4) first4 = (uint32_t)i;
      bad4++;
    }
    if (llmk_e5m2_from_f32(x) != w5) {
      if (!bad5) first5 = (uint32_t)i;
      bad5++;
    }
  }
  CHECK(bad4 == 0, "%ld float inputs encode to a different e4m3 code (e.g. bits 0x%08x)", bad4, first4);
  CHECK(bad5 == 0, "%ld float inputs encode to a different e5m2 code (e.g. bits 0x%08x)", bad5, first5);

  /* bf16 and f16 encoders against the toolkit on every 2^32 input as well */
  long badb = 0, badh = 0;
#pragma omp parallel for schedule(static) reduction(+ : badb, badh)
  for (int64_t i = 0; i < (INT64_C(1) << 32); i++) {
    float x = llmk_f32_from_bits((uint32_t)i);
    __nv_bfloat16_raw rb = __nv_bfloat16_raw(__float2bfloat16_rn(x));
    __half_raw rh = __half_raw(__float2half_rn(x));
    uint16_t gb = llmk_bf16_from_f32(x), gh = llmk_f16_from_f32(x);
    bool nan = x != x;
    /* NaN: any NaN code is accepted (payloads differ between implementations) */
    if (nan ? ((gb & 0x7F80) != 0x7F80 || !(gb & 0x7F)) : gb != rb.x) badb++;
    if (nan ? ((gh & 0x7C00) != 0x7C00 || !(gh & 0x3FF)) : gh != rh.x) badh++;
  }
  CHECK(badb == 0, "%ld float inputs round to a different bf16", badb);
  CHECK(badh == 0, "%ld float inputs round to a different f16", badh);
#endif
  TEST_END();
}
