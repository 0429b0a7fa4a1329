/* Helpers shared by the attention/KV-cache/RoPE test files. */
#ifndef LLMK_TESTS_ATTN_UTIL_H
#define LLMK_TESTS_ATTN_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "llmk.h"

static inline uint16_t bf(float x) { return llmk_float_to_bf16(x); }
static inline float fb(uint16_t b) { return llmk_bf16_to_float(b); }

/* 64-byte aligned memory (a multiple of 64 bytes is allocated). */
static inline void *amalloc(size_t n) {
  size_t m = (n + 63) / 64 * 64;
  void *p = aligned_alloc(64, m ? m : 64);
  if (!p) {
    fprintf(stderr, "out of memory (%zu bytes)\n", n);
    exit(2);
  }
  return p;
}

static inline uint32_t fbits(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  return b;
}
static inline int64_t irand(int64_t n) { return (int64_t)(t_rand_u64() % (uint64_t)n); }

/* One bf16 test value of distribution `kind` (0: normal, 1: wide range,
 * 2: outlier-ish, 3: specials sprinkled). */
static inline float draw(int kind, float scale) {
  float v = t_rand_normal() * scale;
  if (kind == 1) v *= powf(10.0f, (float)(irand(9) - 4));
  if (kind == 2 && irand(16) == 0) v *= 300.0f;
  if (kind == 3) {
    int r = (int)irand(24);
    if (r == 0) v = NAN;
    else if (r == 1) v = INFINITY;
    else if (r == 2) v = -INFINITY;
  }
  return fb(bf(v));
}

static inline llmk_rope_desc rope_desc(llmk_rope_style st, int64_t R, double theta, int llama3) {
  llmk_rope_desc d = LLMK_ROPE_DESC_INIT;
  d.style = st;
  d.rotary_dim = R;
  d.theta = theta;
  if (llama3) {
    d.llama3_factor = 8;
    d.low_freq_factor = 1;
    d.high_freq_factor = 4;
    d.original_max_position = 8192;
  }
  return d;
}

/* [T, Hh, D] with row pitch ld */
static inline llmk_tensor heads_t(void *p, llmk_dtype dt, int64_t T, int64_t Hh, int64_t D, int64_t ld) {
  llmk_tensor t = {p, dt, 3, {T, Hh, D, 0}, {ld, D, 1, 0}};
  return t;
}

#endif
