/* Output buffers for CPU tests: `size` data bytes between two poisoned
 * guard zones, and a count of the poisoned bytes an op overwrote outside
 * the elements it may write. */
#ifndef LLMK_TEST_GUARD_BUF_H
#define LLMK_TEST_GUARD_BUF_H

#include <stdint.h>
#include <string.h>

#include "harness.h"

#define GUARD 64
typedef struct gbuf {
  uint8_t *base;
  size_t size;
  uint8_t poison;
} gbuf;

static inline void *gbuf_alloc(gbuf *b, size_t size, uint8_t poison) {
  b->size = size;
  b->poison = poison;
  b->base = t_xmalloc(size + 2 * GUARD);
  memset(b->base, poison, size + 2 * GUARD);
  return b->base + GUARD;
}

/* Bytes of b outside rows x cols elements of es bytes at pitch ld (the guards
 * and the row padding) that no longer hold the poison. */
static inline int64_t stray_writes(const gbuf *b, int64_t rows, int64_t cols, int64_t ld, size_t es) {
  int64_t bad = 0;
  for (size_t i = 0; i < b->size + 2 * GUARD; i++) {
    int inside = 0;
    if (cols > 0 && i >= GUARD && i < GUARD + b->size) {
      size_t j = i - GUARD, pitch = (size_t)ld * es;
      inside = (int64_t)(j / pitch) < rows && j % pitch < (size_t)cols * es;
    }
    if (!inside && b->base[i] != b->poison) bad++;
  }
  return bad;
}

#endif
