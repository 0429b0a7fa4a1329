/* A tiny test harness: CHECK counts, TEST_END prints "N passed, N failed,
 * N skipped" (the line tests/run_all.sh sums) and returns the exit code. */
#ifndef LLMK_TEST_HARNESS_H
#define LLMK_TEST_HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int t_passed, t_failed, t_skipped;

#define CHECK(cond, ...)                                               \
  do {                                                                 \
    if (cond) {                                                        \
      t_passed++;                                                      \
    } else {                                                           \
      t_failed++;                                                      \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
      fprintf(stderr, __VA_ARGS__);                                    \
      fprintf(stderr, "\n");                                           \
    }                                                                  \
  } while (0)

#define SKIP(...)                      \
  do {                                 \
    t_skipped++;                       \
    printf("skipped: " __VA_ARGS__);   \
    printf("\n");                      \
  } while (0)

#define TEST_END()                                                              \
  do {                                                                          \
    printf("%d passed, %d failed, %d skipped\n", t_passed, t_failed, t_skipped); \
    return t_failed ? 1 : 0;                                                    \
  } while (0)

/* Random numbers: xorshift64*, seeded from LLMK_TEST_SEED or the clock (the
 * seed is printed so a failure can be replayed). */
static uint64_t t_rng_state;
static inline uint64_t t_seed(void) {
  const char *e = getenv("LLMK_TEST_SEED");
  uint64_t s = e ? strtoull(e, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
  if (!s) s = 0x9E3779B97F4A7C15ull;
  t_rng_state = s;
  printf("seed: LLMK_TEST_SEED=%llu\n", (unsigned long long)s);
  return s;
}
static inline uint64_t t_rand_u64(void) {
  t_rng_state ^= t_rng_state >> 12;
  t_rng_state ^= t_rng_state << 25;
  t_rng_state ^= t_rng_state >> 27;
  return t_rng_state * 0x2545F4914F6CDD1Dull;
}
static inline double t_rand_uniform(void) { return (double)(t_rand_u64() >> 11) * 0x1.0p-53; }
static inline float t_rand_normal(void) {
  double u1 = t_rand_uniform(), u2 = t_rand_uniform();
  if (u1 < 1e-300) u1 = 1e-300;
  return (float)(__builtin_sqrt(-2.0 * __builtin_log(u1)) * __builtin_cos(6.283185307179586 * u2));
}

/* A monotonic clock in seconds. */
static inline double t_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A test's named parts, run in order, each followed by "<name>: <s> s". */
typedef struct t_part {
  const char *name;
  void (*fn)(void);
} t_part;
static inline void t_run_parts(const t_part *parts, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const double t0 = t_now_s();
    parts[i].fn();
    printf("%s: %.2f s\n", parts[i].name, t_now_s() - t0);
  }
}

/* malloc that never returns NULL (a test cannot go on without memory). */
static inline void *t_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "out of memory (%zu bytes)\n", n);
    exit(2);
  }
  return p;
}

#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>
/* A CUDA runtime call that must succeed (test set-up, not the code under test). */
#define T_CU(call)                                                                            \
  do {                                                                                        \
    cudaError_t e_ = (call);                                                                  \
    if (e_ != cudaSuccess) {                                                                  \
      fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      exit(2);                                                                                \
    }                                                                                         \
  } while (0)

/* A device copy of n host bytes (at least 16 allocated). */
static inline void *t_to_dev(const void *h, size_t n) {
  void *d;
  T_CU(cudaMalloc(&d, n ? n : 16));
  if (n) T_CU(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice));
  return d;
}
#endif

#include "llmk.h"
/* A CUDA handle on device 0 if it is a supported (Hopper) GPU; else the
 * test's `what` part is skipped (or, if the handle cannot be made, fails)
 * and 0 is returned. */
static inline int t_hopper_handle(const char *what, llmk_handle *h) {
  int n = 0;
  llmk_cuda_device_count(&n);
  llmk_device_info info = LLMK_DEVICE_INFO_INIT;
  if (!n || llmk_cuda_device_info(0, &info) != LLMK_SUCCESS || !info.supported) {
    SKIP("no Hopper GPU: %s", what);
    return 0;
  }
  if (llmk_create_cuda(0, h) != LLMK_SUCCESS) {
    CHECK(0, "llmk_create_cuda: %s", llmk_last_error());
    return 0;
  }
  return 1;
}

#endif
