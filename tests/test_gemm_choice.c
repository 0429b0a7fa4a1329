/*
 * The GEMM dispatcher's choices (src/cuda/heuristics.c), host logic only,
 * so it runs on machines without a GPU (CUDA builds):
 *  - every choice names a configuration that exists and suits the call:
 *    FP8 fast accumulation -> a non-promoting one, fp32 promotion and
 *    block scaling -> a promoting, unswapped one, BF16 -> one of the BF16
 *    list; a swapped one only for M <= 128 with a token width that covers
 *    M; K splits within 1..LLMK_GEMM_MAX_SPLITS and 1 for unsplit ones;
 *  - the table's entries are honoured: for each tabulated shape, the
 *    choice is that entry's backend (and own configuration and split);
 *  - LLMK_GEMM_OWN_CFG, LLMK_GEMM_SPLITS and LLMK_GEMM_LT_ALGO force, and
 *    LLMK_GEMM_BACKEND / a requested backend route, as documented.
 */
#include <stdlib.h>
#include <string.h>

#include "core/env.h"
#include "harness.h"
#include "llmk.h"

#ifdef LLMK_WITH_CUDA
#include "cuda/gemm_own.h"
#include "cuda/heuristics.h"

static const int64_t Ms[] = {1, 2, 3, 16, 17, 32, 64, 96, 100, 128, 129, 1000, 1024, 4096, 16384};
static const int64_t NKs[][2] = {{1280, 8192},   {8192, 1024},   {7168, 8192},   {8192, 3584}, {13312, 6656},
                                 {13312, 16384}, {16384, 6656}, {16384, 16384}, {296, 1072},  {8, 16}};

/* kind: 0 tensor / 1 row (fast accumulation), 2 block or fp32 promotion, 3 BF16 */
static void check_choice(const char *what, int kind, int64_t M, int64_t N, int64_t K, const llmk_gemm_choice *c) {
  const int bf16 = kind == 3;
  const int n = bf16 ? llmk_gemm_own_bf16_num_cfgs() : llmk_gemm_own_num_cfgs();
  CHECK(c->own_cfg >= 0 && c->own_cfg < n, "%s %lldx%lldx%lld: configuration %d of %d", what, (long long)M,
        (long long)N, (long long)K, c->own_cfg, n);
  if (c->own_cfg < 0 || c->own_cfg >= n) return;
  const llmk_gemm_own_cfg g = bf16 ? llmk_gemm_own_bf16_cfg_at(c->own_cfg) : llmk_gemm_own_cfg_at(c->own_cfg);
  CHECK(g.promote == (kind == 2), "%s %lldx%lldx%lld: configuration %d promotes = %d", what, (long long)M,
        (long long)N, (long long)K, c->own_cfg, g.promote);
  if (kind == 2) CHECK(!g.swap, "%s: block/fp32 configuration %d is swapped", what, c->own_cfg);
  if (g.swap)
    CHECK(M <= 128 && g.bn >= M, "%s %lldx%lldx%lld: swapped tile of %d tokens for M = %lld", what, (long long)M,
          (long long)N, (long long)K, g.bn, (long long)M);
  CHECK(c->splits >= 1 && c->splits <= LLMK_GEMM_MAX_SPLITS && (g.split || c->splits == 1),
        "%s %lldx%lldx%lld: %d splits for configuration %d (split %d)", what, (long long)M, (long long)N,
        (long long)K, c->splits, c->own_cfg, g.split);
  CHECK(c->lt_algo >= 0 && c->lt_algo < 8, "%s: cuBLASLt algorithm %d", what, c->lt_algo);
}

static llmk_gemm_choice choose(int kind, int64_t M, int64_t N, int64_t K) {
  switch (kind) {
    case 0: case 1: return llmk_gemm_choose(kind, M, N, K, 1, 132);
    case 2: return llmk_gemm_block_choose(M, N, K, 132);
    default: return llmk_gemm_bf16_choose(M, N, K, 132);
  }
}

static void all_shapes(void) {
  static const char *const names[] = {"tensor", "row", "block", "bf16"};
  for (int kind = 0; kind < 4; kind++)
    for (size_t i = 0; i < sizeof Ms / sizeof Ms[0]; i++)
      for (size_t j = 0; j < sizeof NKs / sizeof NKs[0]; j++) {
        const llmk_gemm_choice c = choose(kind, Ms[i], NKs[j][0], NKs[j][1]);
        check_choice(names[kind], kind, Ms[i], NKs[j][0], NKs[j][1], &c);
      }
  /* fp32 promotion of row- and tensor-wise scales: the promoting configurations too */
  for (size_t i = 0; i < sizeof Ms / sizeof Ms[0]; i++) {
    const llmk_gemm_choice c = llmk_gemm_choose(1, Ms[i], 7168, 8192, 0, 132);
    check_choice("row fp32", 2, Ms[i], 7168, 8192, &c);
  }
}

/* The committed table, read back through the dispatcher: {kind, M, N, K,
 * use_own, own_cfg, splits, own_us, lt_us, lt_algo}. */
typedef struct entry {
  int kind;
  int64_t M, N, K;
  int use_own, own_cfg, splits;
  double own_us, lt_us;
  int lt_algo;
} entry;
static const entry k_table[] = {
#include "cuda/gemm_table.inc"
};

static void table_honoured(void) {
  int checked = 0;
  for (size_t i = 0; i < sizeof k_table / sizeof k_table[0]; i++) {
    const entry *e = &k_table[i];
    const llmk_gemm_choice c = choose(e->kind, e->M, e->N, e->K);
    CHECK(c.use_own == e->use_own && c.lt_algo == e->lt_algo && (!e->use_own || (c.own_cfg == e->own_cfg &&
                                                                                 c.splits == e->splits)),
          "table entry %zu (kind %d, %lldx%lldx%lld): chose own %d cfg %d k%d algo %d, table says own %d cfg %d k%d "
          "algo %d",
          i, e->kind, (long long)e->M, (long long)e->N, (long long)e->K, c.use_own, c.own_cfg, c.splits, c.lt_algo,
          e->use_own, e->own_cfg, e->splits, e->lt_algo);
    checked++;
  }
  printf("%d table entries honoured\n", checked);
}

static void env_forcing(void) {
  setenv("LLMK_GEMM_OWN_CFG", "9", 1); /* a persistent fast-accumulation configuration */
  llmk_env_refresh(); /* the library reads its environment once */
  llmk_gemm_choice c = llmk_gemm_choose(1, 4096, 7168, 8192, 1, 132);
  CHECK(c.own_cfg == 9 && c.splits == 1, "LLMK_GEMM_OWN_CFG=9: got cfg %d k%d", c.own_cfg, c.splits);
  setenv("LLMK_GEMM_OWN_CFG", "4", 1); /* promoting: ignored for fast accumulation */
  llmk_env_refresh();
  c = llmk_gemm_choose(1, 4096, 7168, 8192, 1, 132);
  CHECK(!llmk_gemm_own_cfg_at(c.own_cfg).promote, "a promoting LLMK_GEMM_OWN_CFG applied to fast accumulation");
  c = llmk_gemm_block_choose(4096, 7168, 8192, 132);
  CHECK(c.own_cfg == 4, "LLMK_GEMM_OWN_CFG=4 for block scaling: got %d", c.own_cfg);
  setenv("LLMK_GEMM_OWN_CFG", "7", 1);
  llmk_env_refresh(); /* the library reads its environment once */
  setenv("LLMK_GEMM_SPLITS", "3", 1);
  llmk_env_refresh(); /* the library reads its environment once */
  c = llmk_gemm_bf16_choose(16, 8192, 8192, 132);
  CHECK(c.own_cfg == 7 && c.splits == 3, "BF16 LLMK_GEMM_OWN_CFG=7 SPLITS=3: got cfg %d k%d", c.own_cfg, c.splits);
  unsetenv("LLMK_GEMM_OWN_CFG"), unsetenv("LLMK_GEMM_SPLITS");
  llmk_env_refresh(); /* the library reads its environment once */
  setenv("LLMK_GEMM_LT_ALGO", "5", 1);
  llmk_env_refresh(); /* the library reads its environment once */
  c = llmk_gemm_choose(0, 64, 1280, 8192, 1, 132);
  CHECK(c.lt_algo == 5, "LLMK_GEMM_LT_ALGO=5: got %d", c.lt_algo);
  unsetenv("LLMK_GEMM_LT_ALGO");
  llmk_env_refresh(); /* the library reads its environment once */

  int forced;
  llmk_gemm_choice own = {1, 0, 1, 0}, lt = {0, 0, 1, 0};
  CHECK(llmk_gemm_route(LLMK_GEMM_AUTO, &own, &forced) == LLMK_GEMM_OWN && !forced, "AUTO, table own");
  CHECK(llmk_gemm_route(LLMK_GEMM_AUTO, &lt, &forced) == LLMK_GEMM_CUBLASLT && !forced, "AUTO, table cuBLASLt");
  CHECK(llmk_gemm_route(LLMK_GEMM_CUBLASLT, &own, &forced) == LLMK_GEMM_CUBLASLT && forced, "requested cuBLASLt");
  setenv("LLMK_GEMM_BACKEND", "own", 1);
  llmk_env_refresh(); /* the library reads its environment once */
  CHECK(llmk_gemm_route(LLMK_GEMM_AUTO, &lt, &forced) == LLMK_GEMM_OWN && forced, "LLMK_GEMM_BACKEND=own");
  CHECK(llmk_gemm_route(LLMK_GEMM_CUBLASLT, &lt, &forced) == LLMK_GEMM_CUBLASLT, "a request beats the environment");
  unsetenv("LLMK_GEMM_BACKEND");
  llmk_env_refresh(); /* the library reads its environment once */
}
#endif

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
#ifdef LLMK_WITH_CUDA
  unsetenv("LLMK_GEMM_OWN_CFG"), unsetenv("LLMK_GEMM_SPLITS"), unsetenv("LLMK_GEMM_LT_ALGO");
  llmk_env_refresh(); /* the library reads its environment once */
  unsetenv("LLMK_GEMM_BACKEND");
  llmk_env_refresh(); /* the library reads its environment once */
  all_shapes();
  table_honoured();
  env_forcing();
#else
  SKIP("built without CUDA: the GEMM dispatcher is part of the CUDA backend");
#endif
  TEST_END();
}
