/*
 * The GEMM dispatcher (src/cuda/heuristics.c) and its public face
 * (llmk_gemm_config_*, llmk_gemm_choice, llmk_set_gemm_override). Host
 * logic only, so it runs on machines without a GPU (CUDA builds; a build
 * without CUDA checks the public calls' answers there):
 *  - the new structs: sizes, initializers, llmk_struct_size, older and
 *    badly sized callers;
 *  - the configurations: names unique and spelling their fields, found by
 *    name, read by index; m_min .. m_max is the dispatcher's swap rule;
 *  - every route names a configuration that exists and suits the call:
 *    FP8 fast accumulation -> a non-promoting one, fp32 promotion and
 *    block scaling -> a promoting one (swapped for M <= 64 only), BF16 -> a BF16 one; a
 *    swapped one only for M <= 128 with a token width that covers M; K
 *    splits within 1..LLMK_GEMM_MAX_SPLITS and 1 for unsplit ones;
 *  - the table's entries name existing configurations of their kind's
 *    dtype and accumulation, and are honoured: for each tabulated shape,
 *    the route is that entry's backend (and own configuration and split);
 *  - LLMK_GEMM_OWN_CFG (a name or an index), LLMK_GEMM_SPLITS and
 *    LLMK_GEMM_LT_ALGO force, and LLMK_GEMM_BACKEND routes, as documented;
 *  - precedence: a requested backend, then the handle's override, then
 *    the environment, then the table, then the rule; route.source says
 *    which; two planes and an f32 bias on BF16 run own under AUTO;
 *  - with a Hopper GPU, llmk_gemm_choice answers what llmk_gemm_route_for
 *    computes for the handle's override and SM count.
 */
#include <stdlib.h>
#include <string.h>

#include "core/env.h"
#include "core/internal.h" /* the handle's override and SM count */
#include "harness.h"
#include "llmk.h"

static int contains(const char *s, const char *part) { return s && strstr(s, part) != NULL; }

/* The structs' sizes and initializers (both builds). */
static void structs(void) {
  CHECK(llmk_struct_size(LLMK_STRUCT_GEMM_CONFIG) == LLMK_GEMM_CONFIG_SIZE, "config size %zu",
        llmk_struct_size(LLMK_STRUCT_GEMM_CONFIG));
  CHECK(llmk_struct_size(LLMK_STRUCT_GEMM_ROUTE) == LLMK_GEMM_ROUTE_SIZE, "route size %zu",
        llmk_struct_size(LLMK_STRUCT_GEMM_ROUTE));
  CHECK(llmk_struct_size(LLMK_STRUCT_GEMM_OVERRIDE) == LLMK_GEMM_OVERRIDE_SIZE, "override size %zu",
        llmk_struct_size(LLMK_STRUCT_GEMM_OVERRIDE));
  CHECK(LLMK_GEMM_CONFIG_SIZE == LLMK_SIZE_THROUGH(llmk_gemm_config, m_max) &&
            LLMK_GEMM_ROUTE_SIZE == LLMK_SIZE_THROUGH(llmk_gemm_route, lt_fallback) &&
            LLMK_GEMM_OVERRIDE_SIZE == LLMK_SIZE_THROUGH(llmk_gemm_override, lt_algo),
        "a size is not the end of its struct's last field");
  const llmk_gemm_config c = LLMK_GEMM_CONFIG_INIT;
  const llmk_gemm_route r = LLMK_GEMM_ROUTE_INIT;
  const llmk_gemm_override o = LLMK_GEMM_OVERRIDE_INIT;
  CHECK(c.size == LLMK_GEMM_CONFIG_SIZE && c.name == NULL, "LLMK_GEMM_CONFIG_INIT");
  CHECK(r.size == LLMK_GEMM_ROUTE_SIZE && r.config == -1 && r.config_name == NULL, "LLMK_GEMM_ROUTE_INIT");
  CHECK(o.size == LLMK_GEMM_OVERRIDE_SIZE && o.backend == LLMK_GEMM_AUTO && o.config == -1 && o.splits == 0 &&
            o.lt_algo == -1,
        "LLMK_GEMM_OVERRIDE_INIT = {size, AUTO, -1, 0, -1}");
}

/* The override's checks, on a CPU handle (which accepts and ignores it),
 * and llmk_gemm_choice's refusals that need no GPU. */
static void override_and_choice_errors(void) {
  llmk_handle cpu;
  if (llmk_create_cpu(&cpu)) {
    CHECK(0, "llmk_create_cpu: %s", llmk_last_error());
    return;
  }
  llmk_gemm_override o = LLMK_GEMM_OVERRIDE_INIT;
  CHECK(llmk_set_gemm_override(cpu, &o) == LLMK_SUCCESS, "default override: %s", llmk_last_error());
  CHECK(llmk_set_gemm_override(cpu, NULL) == LLMK_SUCCESS, "NULL clears");
  CHECK(llmk_set_gemm_override(NULL, &o) == LLMK_ERR_INVALID_ARGUMENT, "NULL handle");
  o.backend = LLMK_GEMM_CUBLASLT, o.lt_algo = LLMK_GEMM_LT_ALGOS - 1, o.splits = LLMK_GEMM_MAX_SPLITS;
  CHECK(llmk_set_gemm_override(cpu, &o) == LLMK_SUCCESS, "a valid override: %s", llmk_last_error());
  const struct {
    const char *what;
    llmk_gemm_override o;
  } bad[] = {
      {"backend 7", {LLMK_GEMM_OVERRIDE_SIZE, (llmk_gemm_backend)7, -1, 0, -1}},
      {"config -2", {LLMK_GEMM_OVERRIDE_SIZE, LLMK_GEMM_AUTO, -2, 0, -1}},
      {"config = count", {LLMK_GEMM_OVERRIDE_SIZE, LLMK_GEMM_AUTO, llmk_gemm_config_count(), 0, -1}},
      {"splits -1", {LLMK_GEMM_OVERRIDE_SIZE, LLMK_GEMM_AUTO, -1, -1, -1}},
      {"splits 17", {LLMK_GEMM_OVERRIDE_SIZE, LLMK_GEMM_AUTO, -1, LLMK_GEMM_MAX_SPLITS + 1, -1}},
      {"lt_algo -2", {LLMK_GEMM_OVERRIDE_SIZE, LLMK_GEMM_AUTO, -1, 0, -2}},
      {"lt_algo 8", {LLMK_GEMM_OVERRIDE_SIZE, LLMK_GEMM_AUTO, -1, 0, LLMK_GEMM_LT_ALGOS}},
      {"size 0", {0, LLMK_GEMM_AUTO, -1, 0, -1}},
      {"size 8", {8, LLMK_GEMM_AUTO, -1, 0, -1}},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const llmk_status s = llmk_set_gemm_override(cpu, &bad[i].o);
    /* no configurations at all (no CUDA): a config index is NOT_SUPPORTED */
    const int no_cfg = llmk_gemm_config_count() == 0 && !strcmp(bad[i].what, "config = count");
    CHECK(s == (no_cfg ? LLMK_ERR_NOT_SUPPORTED : LLMK_ERR_INVALID_ARGUMENT), "override %s: %s", bad[i].what,
          llmk_status_string(s));
    CHECK(contains(llmk_last_error(), "llmk_set_gemm_override"), "override %s: message \"%s\"", bad[i].what,
          llmk_last_error());
  }
  CHECK(cpu->gemm_override.backend == LLMK_GEMM_CUBLASLT && cpu->gemm_override.splits == LLMK_GEMM_MAX_SPLITS,
        "a refused override changed the handle's");

  llmk_gemm_desc d = LLMK_GEMM_DESC_INIT;
  llmk_gemm_route r = LLMK_GEMM_ROUTE_INIT;
  llmk_status s = llmk_gemm_choice(cpu, &d, LLMK_E4M3, 16, 1024, 1024, &r);
  CHECK(s == LLMK_ERR_NOT_SUPPORTED && contains(llmk_last_error(), "llmk_gemm_choice"), "choice on a CPU handle: %s",
        llmk_status_string(s));
  CHECK(llmk_gemm_choice(NULL, &d, LLMK_E4M3, 16, 1024, 1024, &r) == LLMK_ERR_INVALID_ARGUMENT, "NULL handle");
  CHECK(llmk_gemm_choice(cpu, NULL, LLMK_E4M3, 16, 1024, 1024, &r) == LLMK_ERR_INVALID_ARGUMENT, "NULL desc");
  CHECK(llmk_gemm_choice(cpu, &d, LLMK_E4M3, 16, 1024, 1024, NULL) == LLMK_ERR_INVALID_ARGUMENT, "NULL out");
  CHECK(llmk_gemm_choice(cpu, &d, LLMK_F32, 16, 1024, 1024, &r) == LLMK_ERR_INVALID_ARGUMENT, "f32 in_dtype");
  CHECK(llmk_gemm_choice(cpu, &d, LLMK_E4M3, -1, 1024, 1024, &r) == LLMK_ERR_INVALID_ARGUMENT, "M < 0");
  llmk_gemm_route small = r;
  small.size = 4;
  CHECK(llmk_gemm_choice(cpu, &d, LLMK_E4M3, 16, 1024, 1024, &small) == LLMK_ERR_INVALID_ARGUMENT, "out of 4 bytes");
  d.scaling = LLMK_SCALING_BLOCK, d.accum = LLMK_ACCUM_FAST;
  CHECK(llmk_gemm_choice(cpu, &d, LLMK_E4M3, 16, 1024, 1024, &r) == LLMK_ERR_INVALID_ARGUMENT &&
            contains(llmk_last_error(), "llmk_gemm_choice: desc->accum"),
        "block scaling with FAST accumulation: \"%s\"", llmk_last_error());
  /* BF16 reads only the backend */
  CHECK(llmk_gemm_choice(cpu, &d, LLMK_BF16, 16, 1024, 1024, &r) == LLMK_ERR_NOT_SUPPORTED, "bf16 desc");
  d.backend = (llmk_gemm_backend)9;
  CHECK(llmk_gemm_choice(cpu, &d, LLMK_BF16, 16, 1024, 1024, &r) == LLMK_ERR_INVALID_ARGUMENT, "bf16 bad backend");
  llmk_destroy(cpu);
}

#ifndef LLMK_WITH_CUDA
static void no_cuda(void) {
  CHECK(llmk_gemm_config_count() == 0, "configurations without CUDA: %d", llmk_gemm_config_count());
  llmk_gemm_config c = LLMK_GEMM_CONFIG_INIT;
  CHECK(llmk_gemm_config_get(0, &c) == LLMK_ERR_NOT_SUPPORTED, "config_get without CUDA");
  int i = 7;
  CHECK(llmk_gemm_config_find("swap_128x16_s11", &i) == LLMK_ERR_NOT_SUPPORTED && i == 7, "config_find without CUDA");
}
#else
#include "core/gemm.h"
#include "cuda/gemm_own.h"
#include "cuda/heuristics.h"

static const int64_t Ms[] = {1, 2, 3, 16, 17, 32, 64, 96, 100, 128, 129, 1000, 1024, 4096, 16384};
static const int64_t NKs[][2] = {{1280, 8192},   {8192, 1024},   {7168, 8192},   {8192, 3584}, {13312, 6656},
                                 {13312, 16384}, {16384, 6656}, {16384, 16384}, {296, 1072},  {8, 16}};

/* The kinds as calls: kind 0 tensor / 1 row (fast accumulation), 2 block,
 * 3 BF16, 4 row with FP32 accumulation (not tabulated). */
enum { CALL_TENSOR, CALL_ROW, CALL_BLOCK, CALL_BF16, CALL_ROW_FP32, CALLS };
static const char *const CALL_NAMES[] = {"tensor", "row", "block", "bf16", "row fp32"};

static llmk_gemm_plan plan_of(int call, int64_t M, int64_t N, int64_t K) {
  llmk_gemm_plan p;
  memset(&p, 0, sizeof p);
  p.in_dtype = call == CALL_BF16 ? LLMK_BF16 : LLMK_E4M3;
  p.scaling = call == CALL_TENSOR || call == CALL_BF16 ? LLMK_SCALING_TENSOR
              : call == CALL_BLOCK                    ? LLMK_SCALING_BLOCK
                                                      : LLMK_SCALING_ROW;
  p.fast_accum = call == CALL_TENSOR || call == CALL_ROW;
  p.backend = LLMK_GEMM_AUTO;
  p.M = M, p.N = N, p.K = K;
  p.x_bm = 1, p.x_planes = 1, p.bias_dtype = LLMK_F32;
  return p;
}

static llmk_gemm_route route(int call, int64_t M, int64_t N, int64_t K, const llmk_gemm_override *o) {
  const llmk_gemm_plan p = plan_of(call, M, N, K);
  llmk_gemm_route r = LLMK_GEMM_ROUTE_INIT;
  llmk_gemm_route_for(&p, o, NULL, &r);
  return r;
}

/* The name a configuration's fields spell (gemm_configs.def's scheme). */
static void expected_name(const llmk_gemm_config *c, char *buf, size_t n) {
  const char *form = c->gemv ? "gemv" : c->swap ? "swap" : c->k_split ? "split" : c->multicast ? "mcast"
                     : c->ping_pong ? "ping" : "persist";
  snprintf(buf, n, "%s%s%s%s_%dx%d", c->in_dtype == LLMK_BF16 ? "bf16_" : "", form, c->fp32_promote ? "_promote" : "",
           c->tma_store ? "_tmastore" : "", c->tile_m, c->tile_n);
  if (!c->gemv) snprintf(buf + strlen(buf), n - strlen(buf), "_s%d", c->stages);
}

static void configs(void) {
  const int n = llmk_gemm_config_count();
  CHECK(n == LLMK_GEMM_NUM_CFGS && n > 0, "llmk_gemm_config_count() = %d, the list has %d", n, LLMK_GEMM_NUM_CFGS);
  int fp8 = 0, bf16 = 0;
  for (int i = 0; i < n; i++) {
    llmk_gemm_config c = LLMK_GEMM_CONFIG_INIT;
    CHECK(llmk_gemm_config_get(i, &c) == LLMK_SUCCESS && c.name, "config_get(%d): %s", i, llmk_last_error());
    if (!c.name) continue;
    const llmk_gemm_own_cfg *g = &llmk_gemm_cfgs[i];
    CHECK(!strcmp(c.name, g->name) && c.in_dtype == g->in_dtype && c.tile_m == g->tile_m && c.tile_n == g->tile_n &&
              c.stages == g->stages && c.fp32_promote == g->promote && c.tma_store == g->tma_store &&
              c.k_split == g->k_split && c.swap == g->swap && c.multicast == g->multicast &&
              c.ping_pong == g->ping_pong && c.gemv == g->gemv,
          "config %d (%s): public fields differ from the list's", i, c.name);
    char want[96];
    expected_name(&c, want, sizeof want);
    CHECK(!strcmp(c.name, want), "config %d is named %s, its fields spell %s", i, c.name, want);
    int j = -1;
    CHECK(llmk_gemm_config_find(c.name, &j) == LLMK_SUCCESS && j == i, "find(%s) = %d, expected %d", c.name, j, i);
    /* the list: FP8 first, then BF16 */
    if (c.in_dtype == LLMK_E4M3) CHECK(bf16 == 0, "FP8 configuration %s after a BF16 one", c.name);
    fp8 += c.in_dtype == LLMK_E4M3, bf16 += c.in_dtype == LLMK_BF16;
    CHECK(c.max_splits == (!c.k_split ? 1 : c.gemv ? 8 : LLMK_GEMM_MAX_SPLITS), "%s: max_splits %d", c.name,
          c.max_splits);
    /* m_min .. m_max is the dispatcher's swap rule */
    for (int64_t M = 1; M <= 300; M++) {
      const int in = M >= c.m_min && M <= c.m_max;
      if (c.swap || c.gemv)
        CHECK(in == llmk_gemm_swap_fits(g, M), "%s: M = %lld in [%d, %d] = %d, swap rule %d", c.name, (long long)M,
              c.m_min, c.m_max, in, llmk_gemm_swap_fits(g, M));
      else
        CHECK(in, "%s: unswapped, M = %lld outside [%d, %d]", c.name, (long long)M, c.m_min, c.m_max);
    }
  }
  /* the FP8 configurations keep the indices they had before the names */
  CHECK(fp8 == 40 && bf16 == 10, "%d FP8 and %d BF16 configurations", fp8, bf16);
  int idx = -1;
  CHECK(llmk_gemm_config_find("swap_128x16_s11", &idx) == LLMK_SUCCESS && idx == 17, "swap_128x16_s11 at %d", idx);
  CHECK(llmk_gemm_config_find("persist_promote_tmastore_192x128_s4", &idx) == LLMK_SUCCESS && idx == 33,
        "persist_promote_tmastore_192x128_s4 at %d", idx);
  idx = -5;
  CHECK(llmk_gemm_config_find("swap_128x16", &idx) == LLMK_ERR_INVALID_ARGUMENT && idx == -5 &&
            contains(llmk_last_error(), "swap_128x16"),
        "unknown name: %s", llmk_last_error());
  CHECK(llmk_gemm_config_find(NULL, &idx) == LLMK_ERR_INVALID_ARGUMENT, "NULL name");
  CHECK(llmk_gemm_config_find("swap_128x16_s11", NULL) == LLMK_ERR_INVALID_ARGUMENT, "NULL index");
  llmk_gemm_config c = LLMK_GEMM_CONFIG_INIT;
  CHECK(llmk_gemm_config_get(-1, &c) == LLMK_ERR_INVALID_ARGUMENT && c.name == NULL, "index -1");
  CHECK(llmk_gemm_config_get(n, &c) == LLMK_ERR_INVALID_ARGUMENT && c.name == NULL, "index = count");
  CHECK(llmk_gemm_config_get(0, NULL) == LLMK_ERR_INVALID_ARGUMENT, "NULL out");
  c.size = 0;
  CHECK(llmk_gemm_config_get(0, &c) == LLMK_ERR_INVALID_ARGUMENT && contains(llmk_last_error(), "LLMK_GEMM_CONFIG_INIT"),
        "size 0: %s", llmk_last_error());
  /* a newer caller's struct, with a field this llmk does not know: left alone */
  typedef struct newer_config {
    llmk_gemm_config c;
    int32_t later;
  } newer_config;
  newer_config newer;
  memset(&newer, 0, sizeof newer);
  newer.c.size = LLMK_SIZE_THROUGH(newer_config, later);
  newer.later = 0x5A5A;
  CHECK(llmk_gemm_config_get(17, &newer.c) == LLMK_SUCCESS && !strcmp(newer.c.name, "swap_128x16_s11") &&
            newer.c.tile_m == 128 && newer.c.tile_n == 16 && newer.c.stages == 11 && newer.c.m_max == 16 &&
            newer.later == 0x5A5A,
        "a newer caller's config struct");
  c.size = LLMK_GEMM_CONFIG_SIZE - 4;
  CHECK(llmk_gemm_config_get(0, &c) == LLMK_ERR_INVALID_ARGUMENT, "a size below the first version");
}

/* Route r suits the call: an existing configuration of the call's dtype
 * and accumulation, swapped only where its tokens cover M, splits within
 * range. */
static void check_route(const char *what, int call, int64_t M, int64_t N, int64_t K, const llmk_gemm_route *r) {
  CHECK(r->config >= 0 && r->config < LLMK_GEMM_NUM_CFGS, "%s %lldx%lldx%lld: configuration %d", what, (long long)M,
        (long long)N, (long long)K, r->config);
  if (r->config < 0 || r->config >= LLMK_GEMM_NUM_CFGS) return;
  const llmk_gemm_own_cfg g = llmk_gemm_cfgs[r->config];
  CHECK(r->config_name == g.name, "%s: config_name %s for configuration %d", what, r->config_name, r->config);
  CHECK(g.in_dtype == (call == CALL_BF16 ? LLMK_BF16 : LLMK_E4M3), "%s: configuration %s of the wrong dtype", what,
        g.name);
  const int promotes = call == CALL_BLOCK || call == CALL_ROW_FP32;
  CHECK(g.promote == promotes, "%s %lldx%lldx%lld: configuration %s promotes = %d", what, (long long)M, (long long)N,
        (long long)K, g.name, g.promote);
  if (promotes && g.swap)
    CHECK(M <= 64 && g.tile_n <= 64, "%s: block/fp32 configuration %s swapped for M = %lld", what, g.name, (long long)M);
  if (g.swap && !g.gemv)
    CHECK(M <= 128 && g.tile_n >= M, "%s %lldx%lldx%lld: swapped tile of %d tokens for M = %lld", what, (long long)M,
          (long long)N, (long long)K, g.tile_n, (long long)M);
  CHECK(r->splits >= 1 && r->splits <= LLMK_GEMM_MAX_SPLITS && (g.k_split || r->splits == 1),
        "%s %lldx%lldx%lld: %d splits for configuration %s (split %d)", what, (long long)M, (long long)N,
        (long long)K, r->splits, g.name, g.k_split);
  CHECK(r->lt_algo >= 0 && r->lt_algo < LLMK_GEMM_LT_ALGOS, "%s: cuBLASLt algorithm %d", what, r->lt_algo);
  CHECK(r->backend == LLMK_GEMM_OWN || r->backend == LLMK_GEMM_CUBLASLT, "%s: backend %d", what, (int)r->backend);
  CHECK(r->source == (r->tuned ? LLMK_GEMM_SOURCE_TABLE : LLMK_GEMM_SOURCE_RULE), "%s: source %d, tuned %d", what,
        (int)r->source, r->tuned);
  CHECK(r->lt_fallback == (r->backend == LLMK_GEMM_CUBLASLT), "%s: lt_fallback %d under AUTO", what, r->lt_fallback);
}

static void all_shapes(void) {
  for (int call = 0; call < CALLS; call++)
    for (size_t i = 0; i < sizeof Ms / sizeof Ms[0]; i++)
      for (size_t j = 0; j < sizeof NKs / sizeof NKs[0]; j++) {
        const llmk_gemm_route r = route(call, Ms[i], NKs[j][0], NKs[j][1], NULL);
        check_route(CALL_NAMES[call], call, Ms[i], NKs[j][0], NKs[j][1], &r);
        if (call == CALL_ROW_FP32) CHECK(!r.tuned && r.backend == LLMK_GEMM_CUBLASLT, "row fp32 is not tabulated");
      }
}

/* The committed table: every entry names an existing configuration of its
 * kind (dtype, accumulation) and is what the dispatcher runs. */
static void table_honoured(void) {
  int n = 0, checked = 0;
  const llmk_gemm_table_entry *t = llmk_gemm_table(&n);
  CHECK(n > 300, "the table has %d entries", n);
  for (int i = 0; i < n; i++) {
    const llmk_gemm_table_entry *e = &t[i];
    const int call = e->kind == LLMK_TABLE_TENSOR ? CALL_TENSOR
                     : e->kind == LLMK_TABLE_ROW  ? CALL_ROW
                     : e->kind == LLMK_TABLE_BLOCK ? CALL_BLOCK
                                                   : CALL_BF16;
    CHECK(e->kind >= LLMK_TABLE_TENSOR && e->kind <= LLMK_TABLE_BF16, "entry %d: kind %d", i, (int)e->kind);
    CHECK(e->own_cfg >= 0 || (e->own_cfg == LLMK_CFG_NONE && !e->use_own), "entry %d: configuration %d", i,
          e->own_cfg);
    if (e->own_cfg >= 0) {
      llmk_gemm_config c = LLMK_GEMM_CONFIG_INIT;
      int back = -1;
      CHECK(llmk_gemm_config_get(e->own_cfg, &c) == LLMK_SUCCESS && llmk_gemm_config_find(c.name, &back) == 0 &&
                back == e->own_cfg,
            "entry %d: configuration %d does not resolve by name", i, e->own_cfg);
      CHECK(c.in_dtype == (call == CALL_BF16 ? LLMK_BF16 : LLMK_E4M3) && c.fp32_promote == (call == CALL_BLOCK),
            "entry %d (%s %lldx%lldx%lld): configuration %s does not serve its kind", i, CALL_NAMES[call],
            (long long)e->M, (long long)e->N, (long long)e->K, c.name);
      CHECK(e->splits >= 1 && e->splits <= c.max_splits && (c.k_split || e->splits == 1),
            "entry %d: %d splits for %s", i, e->splits, c.name);
      if (c.swap || c.gemv)
        CHECK(e->M >= c.m_min && e->M <= c.m_max, "entry %d: %s for M = %lld", i, c.name, (long long)e->M);
    }
    const llmk_gemm_route r = route(call, e->M, e->N, e->K, NULL);
    CHECK(r.tuned && r.source == LLMK_GEMM_SOURCE_TABLE, "entry %d: tuned %d source %d", i, r.tuned, (int)r.source);
    CHECK((r.backend == LLMK_GEMM_OWN) == e->use_own && r.lt_algo == e->lt_algo &&
              (!e->use_own || (r.config == e->own_cfg && r.splits == e->splits)),
          "table entry %d (%s, %lldx%lldx%lld): route own %d cfg %s k%d algo %d, table says own %d cfg %d k%d algo %d",
          i, CALL_NAMES[call], (long long)e->M, (long long)e->N, (long long)e->K, r.backend == LLMK_GEMM_OWN,
          r.config_name, r.splits, r.lt_algo, e->use_own, e->own_cfg, e->splits, e->lt_algo);
    checked++;
  }
  printf("%d table entries honoured\n", checked);
}

static void setenv_refresh(const char *name, const char *value) {
  if (value)
    setenv(name, value, 1);
  else
    unsetenv(name);
  llmk_env_refresh(); /* the library reads its environment once */
}

static int cfg_index(const char *name) {
  int i = -1;
  CHECK(llmk_gemm_config_find(name, &i) == LLMK_SUCCESS, "find %s: %s", name, llmk_last_error());
  return i;
}

static void env_forcing(void) {
  const int tma64 = cfg_index("persist_tmastore_64x128_s8"), promote = cfg_index("persist_promote_128x128_s6");
  const int bswap = cfg_index("bf16_swap_128x128_s6"), gemv = cfg_index("bf16_gemv_16x8");
  setenv_refresh("LLMK_GEMM_OWN_CFG", "persist_tmastore_64x128_s8"); /* by name */
  llmk_gemm_route r = route(CALL_ROW, 4096, 7168, 8192, NULL);
  CHECK(r.config == tma64 && r.splits == 1, "LLMK_GEMM_OWN_CFG=persist_tmastore_64x128_s8: got %s k%d",
        r.config_name, r.splits);
  CHECK(r.source == (r.backend == LLMK_GEMM_OWN ? LLMK_GEMM_SOURCE_ENV : LLMK_GEMM_SOURCE_TABLE),
        "source %d with backend %d", (int)r.source, (int)r.backend);
  setenv_refresh("LLMK_GEMM_OWN_CFG", "9"); /* by index: the same configuration */
  r = route(CALL_ROW, 4096, 7168, 8192, NULL);
  CHECK(r.config == tma64 && tma64 == 9, "LLMK_GEMM_OWN_CFG=9: got %s", r.config_name);
  r = route(CALL_BF16, 16, 8192, 8192, NULL); /* an FP8 configuration: ignored by BF16 calls */
  CHECK(llmk_gemm_cfgs[r.config].in_dtype == LLMK_BF16, "an FP8 LLMK_GEMM_OWN_CFG applied to BF16: %s",
        r.config_name);
  setenv_refresh("LLMK_GEMM_OWN_CFG", "persist_promote_128x128_s6"); /* promoting: ignored for fast accumulation */
  r = route(CALL_ROW, 4096, 7168, 8192, NULL);
  CHECK(!llmk_gemm_cfgs[r.config].promote, "a promoting LLMK_GEMM_OWN_CFG applied to fast accumulation");
  r = route(CALL_BLOCK, 4096, 7168, 8192, NULL);
  CHECK(r.config == promote, "LLMK_GEMM_OWN_CFG=persist_promote_128x128_s6 for block scaling: got %s", r.config_name);
  setenv_refresh("LLMK_GEMM_OWN_CFG", "no_such_configuration");
  r = route(CALL_BLOCK, 4096, 7168, 8192, NULL);
  CHECK(r.source == LLMK_GEMM_SOURCE_TABLE, "an unknown name is ignored: source %d", (int)r.source);
  setenv_refresh("LLMK_GEMM_OWN_CFG", "bf16_swap_128x128_s6");
  setenv_refresh("LLMK_GEMM_SPLITS", "3");
  r = route(CALL_BF16, 16, 8192, 8192, NULL);
  CHECK(r.config == bswap && r.splits == 3, "BF16 LLMK_GEMM_OWN_CFG=bf16_swap_128x128_s6 SPLITS=3: got %s k%d",
        r.config_name, r.splits);
  setenv_refresh("LLMK_GEMM_OWN_CFG", "bf16_gemv_16x8");
  r = route(CALL_BF16, 3, 8192, 8192, NULL);
  CHECK(r.config == gemv && r.splits == 3, "BF16 gemv: got %s k%d", r.config_name, r.splits);
  setenv_refresh("LLMK_GEMM_OWN_CFG", NULL), setenv_refresh("LLMK_GEMM_SPLITS", NULL);
  setenv_refresh("LLMK_GEMM_LT_ALGO", "5");
  r = route(CALL_TENSOR, 64, 1280, 8192, NULL);
  CHECK(r.lt_algo == 5, "LLMK_GEMM_LT_ALGO=5: got %d", r.lt_algo);
  setenv_refresh("LLMK_GEMM_LT_ALGO", NULL);

  /* LLMK_GEMM_BACKEND: FP8 calls whose request is AUTO; a request wins; BF16 ignores it */
  llmk_gemm_plan p = plan_of(CALL_ROW, 4096, 7168, 8192); /* tabulated: cuBLASLt */
  r = route(CALL_ROW, 4096, 7168, 8192, NULL);
  CHECK(r.backend == LLMK_GEMM_CUBLASLT && r.lt_fallback && r.source == LLMK_GEMM_SOURCE_TABLE, "table: cuBLASLt");
  setenv_refresh("LLMK_GEMM_BACKEND", "own");
  llmk_gemm_route_for(&p, NULL, NULL, &r);
  CHECK(r.backend == LLMK_GEMM_OWN && !r.lt_fallback && r.source == LLMK_GEMM_SOURCE_ENV, "LLMK_GEMM_BACKEND=own");
  p.backend = LLMK_GEMM_CUBLASLT;
  llmk_gemm_route_for(&p, NULL, NULL, &r);
  CHECK(r.backend == LLMK_GEMM_CUBLASLT && !r.lt_fallback && r.source == LLMK_GEMM_SOURCE_DESC,
        "a request beats the environment");
  r = route(CALL_BF16, 4096, 1280, 8192, NULL);
  CHECK(r.backend == LLMK_GEMM_CUBLASLT && r.source == LLMK_GEMM_SOURCE_TABLE, "BF16 ignores LLMK_GEMM_BACKEND");
  setenv_refresh("LLMK_GEMM_BACKEND", NULL);
}

/* The handle's override, against the environment and the request. */
static void override_precedence(void) {
  const int env_cfg = cfg_index("persist_tmastore_64x128_s8"), ovr_cfg = cfg_index("persist_tmastore_128x256_s3");
  const int split = cfg_index("split_64x128_s8");
  llmk_gemm_override o = LLMK_GEMM_OVERRIDE_INIT;
  /* all defaults: nothing changes */
  llmk_gemm_route a = route(CALL_ROW, 1024, 7168, 8192, NULL), b = route(CALL_ROW, 1024, 7168, 8192, &o);
  CHECK(a.backend == b.backend && a.config == b.config && a.splits == b.splits && a.lt_algo == b.lt_algo &&
            a.source == b.source,
        "the default override changed the route");
  setenv_refresh("LLMK_GEMM_OWN_CFG", "persist_tmastore_64x128_s8");
  setenv_refresh("LLMK_GEMM_BACKEND", "cublaslt");
  setenv_refresh("LLMK_GEMM_LT_ALGO", "2");
  o.config = ovr_cfg;
  llmk_gemm_route r = route(CALL_ROW, 1024, 7168, 8192, &o);
  CHECK(r.config == ovr_cfg, "override config beats LLMK_GEMM_OWN_CFG: %s", r.config_name);
  CHECK(r.backend == LLMK_GEMM_CUBLASLT && r.source == LLMK_GEMM_SOURCE_ENV && r.lt_algo == 2,
        "the environment still routes to cuBLASLt: backend %d source %d algo %d", (int)r.backend, (int)r.source,
        r.lt_algo);
  o.backend = LLMK_GEMM_OWN;
  r = route(CALL_ROW, 1024, 7168, 8192, &o);
  CHECK(r.backend == LLMK_GEMM_OWN && r.config == ovr_cfg && r.source == LLMK_GEMM_SOURCE_OVERRIDE && !r.lt_fallback,
        "override backend own: backend %d source %d", (int)r.backend, (int)r.source);
  o.backend = LLMK_GEMM_CUBLASLT, o.lt_algo = 6;
  r = route(CALL_ROW, 1024, 7168, 8192, &o);
  CHECK(r.backend == LLMK_GEMM_CUBLASLT && r.lt_algo == 6 && r.source == LLMK_GEMM_SOURCE_OVERRIDE,
        "override cuBLASLt algo 6: %d", r.lt_algo);
  /* a request beats the override */
  llmk_gemm_plan p = plan_of(CALL_ROW, 1024, 7168, 8192);
  p.backend = LLMK_GEMM_OWN;
  llmk_gemm_route_for(&p, &o, NULL, &r);
  CHECK(r.backend == LLMK_GEMM_OWN && r.config == ovr_cfg && r.source == LLMK_GEMM_SOURCE_DESC,
        "desc own beats override cuBLASLt: backend %d source %d", (int)r.backend, (int)r.source);
  /* a configuration the call cannot use is ignored: the environment's applies */
  o.backend = LLMK_GEMM_OWN, o.config = cfg_index("persist_promote_128x128_s6"), o.lt_algo = -1;
  r = route(CALL_ROW, 1024, 7168, 8192, &o);
  CHECK(r.config == env_cfg && r.source == LLMK_GEMM_SOURCE_OVERRIDE, "promoting override for fast accumulation: %s",
        r.config_name);
  o.config = cfg_index("bf16_persist_tmastore_128x256_s3");
  r = route(CALL_ROW, 1024, 7168, 8192, &o);
  CHECK(r.config == env_cfg, "a BF16 override for an FP8 call: %s", r.config_name);
  r = route(CALL_BF16, 1024, 7168, 8192, &o);
  CHECK(r.config == o.config && r.backend == LLMK_GEMM_OWN && r.source == LLMK_GEMM_SOURCE_OVERRIDE,
        "the BF16 override for a BF16 call: %s, backend %d", r.config_name, (int)r.backend);
  setenv_refresh("LLMK_GEMM_OWN_CFG", NULL), setenv_refresh("LLMK_GEMM_BACKEND", NULL);
  setenv_refresh("LLMK_GEMM_LT_ALGO", NULL);
  /* splits: the override's, else LLMK_GEMM_SPLITS, else the rule's; 1 for unsplit configurations */
  o = (llmk_gemm_override)LLMK_GEMM_OVERRIDE_INIT;
  o.config = split, o.splits = 5;
  setenv_refresh("LLMK_GEMM_SPLITS", "3");
  r = route(CALL_ROW, 100, 1024, 8192, &o);
  CHECK(r.config == split && r.splits == 5, "override splits 5 over LLMK_GEMM_SPLITS=3: %d", r.splits);
  o.splits = 0;
  r = route(CALL_ROW, 100, 1024, 8192, &o);
  CHECK(r.config == split && r.splits == 3, "LLMK_GEMM_SPLITS=3 under an override without splits: %d", r.splits);
  setenv_refresh("LLMK_GEMM_SPLITS", NULL);
  o.config = ovr_cfg, o.splits = 4;
  r = route(CALL_ROW, 100, 1024, 8192, &o);
  CHECK(r.splits == 1, "splits on an unsplit configuration: %d", r.splits);
  /* two planes: own under AUTO (the 2M plane rows' route), cuBLASLt only when forced */
  p = plan_of(CALL_ROW, 2048, 7168, 8192);
  p.x_planes = 2;
  llmk_gemm_route_for(&p, NULL, NULL, &r);
  a = route(CALL_ROW, 4096, 7168, 8192, NULL);
  CHECK(r.backend == LLMK_GEMM_OWN && a.backend == LLMK_GEMM_CUBLASLT && r.config == a.config && r.tuned &&
            !r.lt_fallback,
        "two planes under AUTO: backend %d config %s (one plane of 4096 rows: %s)", (int)r.backend, r.config_name,
        a.config_name);
  o = (llmk_gemm_override)LLMK_GEMM_OVERRIDE_INIT;
  o.backend = LLMK_GEMM_CUBLASLT;
  llmk_gemm_route_for(&p, &o, NULL, &r);
  CHECK(r.backend == LLMK_GEMM_CUBLASLT && !r.lt_fallback, "two planes, cuBLASLt forced by the override");
  /* BF16 with an f32 bias: own under AUTO, cuBLASLt (refused at launch) when forced */
  p = plan_of(CALL_BF16, 4096, 1280, 8192);
  p.bias = &p, p.bias_dtype = LLMK_F32;
  llmk_gemm_route_for(&p, NULL, NULL, &r);
  CHECK(r.backend == LLMK_GEMM_OWN, "BF16 f32 bias under AUTO: backend %d", (int)r.backend);
  llmk_gemm_route_for(&p, &o, NULL, &r);
  CHECK(r.backend == LLMK_GEMM_CUBLASLT && !r.lt_fallback, "BF16 f32 bias, cuBLASLt forced");
}

/* With a Hopper GPU: llmk_gemm_choice is llmk_gemm_route_for on the
 * handle's override and SM count. */
static void choice_on_gpu(void) {
  llmk_handle h;
  if (!t_hopper_handle("llmk_gemm_choice on a CUDA handle", &h)) return;
  llmk_gemm_override o = LLMK_GEMM_OVERRIDE_INIT;
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) {
      o.config = cfg_index("swap_128x32_s10"), o.splits = 2, o.lt_algo = 3;
      CHECK(llmk_set_gemm_override(h, &o) == LLMK_SUCCESS, "%s", llmk_last_error());
    }
    for (int call = 0; call < CALLS; call++)
      for (size_t i = 0; i < sizeof Ms / sizeof Ms[0]; i++) {
        llmk_gemm_desc d = LLMK_GEMM_DESC_INIT;
        d.scaling = call == CALL_ROW || call == CALL_ROW_FP32 ? LLMK_SCALING_ROW
                    : call == CALL_BLOCK                     ? LLMK_SCALING_BLOCK
                                                             : LLMK_SCALING_TENSOR;
        d.accum = call == CALL_ROW_FP32 ? LLMK_ACCUM_FP32 : LLMK_ACCUM_DEFAULT;
        llmk_gemm_route got = LLMK_GEMM_ROUTE_INIT, want = LLMK_GEMM_ROUTE_INIT;
        CHECK(llmk_gemm_choice(h, &d, call == CALL_BF16 ? LLMK_BF16 : LLMK_E4M3, Ms[i], 7168, 8192, &got) == 0,
              "choice: %s", llmk_last_error());
        const llmk_gemm_plan p = plan_of(call, Ms[i], 7168, 8192);
        llmk_gemm_route_for(&p, pass ? &o : NULL, &h->gemm_dev, &want);
        CHECK(got.backend == want.backend && got.config == want.config && got.splits == want.splits &&
                  got.lt_algo == want.lt_algo && got.source == want.source && got.tuned == want.tuned &&
                  got.lt_fallback == want.lt_fallback && !strcmp(got.config_name, want.config_name),
              "choice %s M=%lld pass %d differs from the dispatcher's route", CALL_NAMES[call], (long long)Ms[i], pass);
      }
  }
  llmk_destroy(h);
}
#endif

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  static const char *const vars[] = {"LLMK_GEMM_OWN_CFG", "LLMK_GEMM_SPLITS", "LLMK_GEMM_LT_ALGO", "LLMK_GEMM_BACKEND"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
  llmk_env_refresh(); /* the library reads its environment once */
  structs();
  override_and_choice_errors();
#ifdef LLMK_WITH_CUDA
  configs();
  all_shapes();
  table_honoured();
  env_forcing();
  override_precedence();
  choice_on_gpu();
#else
  no_cuda();
  SKIP("built without CUDA: the GEMM dispatcher is part of the CUDA backend");
#endif
  TEST_END();
}
