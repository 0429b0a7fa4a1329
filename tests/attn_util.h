/* Helpers shared by the attention/KV-cache/RoPE test files. */
#ifndef LLMK_TESTS_ATTN_UTIL_H
#define LLMK_TESTS_ATTN_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
