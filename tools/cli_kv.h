/* Shared by `llmk bench attention` (cli_bench_attention.c) and `llmk bench
 * rope | kvcache` (cli_bench_kvcache.c): option parsing, host/device memory
 * for either backend, timing against a device copy, and KV caches of every
 * format and layout built and filled for a benchmark. */
#ifndef LLMK_TOOLS_CLI_KV_H
#define LLMK_TOOLS_CLI_KV_H

#include <stdint.h>
#include <stdio.h>

#include "cli_util.h"

#define MIB ((size_t)1 << 20)

/* Geometry of a cache of nseq sequences of capacity cap positions. */
typedef struct kv_geom {
  llmk_kv_format fmt;
  int64_t group;                 /* INT4: G */
  int64_t hkv, d, e;             /* e: storage elements per token-head */
  int64_t page;                  /* 0: contiguous */
  int64_t nseq, cap;
  int64_t s0, s1;                /* storage [s0, s1, hkv, e] */
  int64_t max_pages, bt_ld;      /* paged: block table [nseq, max_pages], row pitch bt_ld */
  int64_t row_bytes, param_bytes; /* per token-head (FP8_TENSOR: 0, its [1] aside) */
} kv_geom;

typedef struct kv_store {
  void *k, *v, *kp, *vp;
} kv_store;


int64_t kvb_opt_int(int argc, char **argv, const char *name, int64_t def, int *ok);
int kvb_parse_format(const char *s, llmk_kv_format *f);
const char *kvb_format_name(llmk_kv_format f);
int kvb_check_cache_opts(const char *cmd, llmk_kv_format fmt, int64_t hq, int64_t hkv, int64_t d,
                     int64_t group, int64_t page);
void *kvb_mem_alloc(int gpu, size_t n);
void kvb_mem_free(int gpu, void *p);
int kvb_mem_h2d(int gpu, void *d, const void *s, size_t n);
int kvb_mem_d2h(int gpu, void *d, const void *s, size_t n);
int kvb_mem_rows_d2h(int gpu, void *dst, const void *src, size_t width, size_t spitch, size_t rows);
size_t kvb_dev_free_bytes(int gpu);
llmk_status kvb_time_it(int gpu, cli_op_fn fn, void *ctx, int reps, int graph_calls, cli_timing *t);
double kvb_measure_copy(int gpu, size_t bytes, size_t *used);
int kvb_open_handle(const char *cmd, int use_cpu, llmk_handle *h);
void kvb_print_commit(void);
void kvb_geom_init(kv_geom *g, llmk_kv_format fmt, int64_t group, int64_t hkv, int64_t d, int64_t page,
               int64_t nseq, int64_t cap);
size_t kvb_geom_data_bytes(const kv_geom *g);
size_t kvb_geom_param_bytes(const kv_geom *g);
double kvb_kv_bytes_of(const kv_geom *g, double tokens);
void kvb_store_free(int gpu, kv_store *s);
int kvb_store_alloc(int gpu, const kv_geom *g, kv_store *s);
int kvb_store_copy(int gpu, const kv_geom *g, kv_store *dst, const kv_store *src);
int kvb_store_set_tensor_scale(int gpu, const kv_geom *g, kv_store *s);
llmk_kv_cache kvb_make_cache(const kv_geom *g, const kv_store *s, void *bt);
int32_t *kvb_make_block_table(const kv_geom *g, uint64_t seed);
int kvb_fill_by_write(llmk_handle h, int gpu, const kv_geom *g, const llmk_kv_cache *c, int64_t len,
                  uint64_t seed);
int kvb_fill_random(int gpu, const kv_geom *g, kv_store *s, uint64_t seed);
int kvb_gather_rows(int gpu, const kv_geom *g, const void *base, int64_t per, const int32_t *bt, int64_t b,
                int64_t t0, int64_t n, int64_t h0, int64_t nh, void *dst);

#endif
