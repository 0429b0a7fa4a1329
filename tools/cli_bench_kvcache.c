/* `llmk bench rope | kvcache`: rotary embeddings (llmk_rope) and the fused
 * prefill write (llmk_rope_qkv_write).
 *
 * rope, kvcache: llmk_rope over [T, H, D], and llmk_rope_qkv_write of T new
 * tokens (one sequence or several) into a cache; bytes moved over the
 * events median (L2 flushed), against a device copy timed the same way in
 * the same process. kvcache checks the first rows bit for bit against the
 * CPU backend. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli_kv.h"
#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

int cli_bench_rope(int argc, char **argv);
int cli_bench_kvcache(int argc, char **argv);

/* ------------------------------------------------------------------------ */
/* RoPE descriptors shared by rope and kvcache                               */
/* ------------------------------------------------------------------------ */

/* Llama 3.1's rope (theta 500000, factor 8, 1, 4, 8192), interleaved or neox. */
static int parse_rope(const char *cmd, int argc, char **argv, llmk_rope_desc *r, int *ok) {
  *r = (llmk_rope_desc)LLMK_ROPE_DESC_INIT;
  const char *style = cli_arg(argc, argv, "--style", "interleaved");
  if (!strcmp(style, "neox")) r->style = LLMK_ROPE_NEOX;
  else if (!strcmp(style, "interleaved")) r->style = LLMK_ROPE_INTERLEAVED;
  else return fprintf(stderr, "bench %s: --style must be interleaved or neox\n", cmd), 0;
  r->rotary_dim = kvb_opt_int(argc, argv, "--rotary-dim", 0, ok);
  r->theta = 500000.0;
  r->llama3_factor = cli_flag(argc, argv, "--no-llama3-scaling") ? 0.0 : 8.0;
  r->low_freq_factor = 1.0, r->high_freq_factor = 4.0, r->original_max_position = 8192.0;
  return 1;
}

/* ------------------------------------------------------------------------ */
/* bench rope                                                                */
/* ------------------------------------------------------------------------ */

typedef struct rope_op {
  llmk_handle h;
  llmk_rope_desc desc;
  llmk_tensor x, pos, y;
} rope_op;

static llmk_status run_rope(void *ctx, void *stream) {
  rope_op *o = ctx;
  return llmk_rope(o->h, &o->desc, &o->x, &o->pos, &o->y, stream);
}

static void rope_usage(FILE *f) {
  fprintf(f,
          "usage: llmk bench rope --t T [--h 64] [--d 128] [--dtype bf16|f32] [--rotary-dim R]\n"
          "                       [--style interleaved|neox] [--no-llama3-scaling] [--inplace]\n"
          "                       [--reps N] [--cpu] [--json]\n"
          "  Times llmk_rope on x [T, H, D] at positions 0 .. T-1 (Llama 3.1's frequencies): CUDA events\n"
          "  with L2 flushed (us, median) and graph replay; GB/s of x read + y written + positions, and the\n"
          "  fraction of a 1 GiB device copy timed in the same run.\n");
}

int cli_bench_rope(int argc, char **argv) {
  static const char *const valued[] = {"--t", "--h", "--d", "--dtype", "--rotary-dim", "--style", "--reps", NULL};
  static const char *const flags[] = {"--inplace", "--no-llama3-scaling", "--cpu", "--json", "--help", "-h", NULL};
  if (cli_flag(argc, argv, "--help") || cli_flag(argc, argv, "-h")) return rope_usage(stdout), 0;
  if (!cli_check_options("bench rope", argc, argv, valued, flags)) return 2;
  int ok = 1;
  const int64_t T = kvb_opt_int(argc, argv, "--t", 16384, &ok), H = kvb_opt_int(argc, argv, "--h", 64, &ok),
                D = kvb_opt_int(argc, argv, "--d", 128, &ok);
  const int reps = (int)kvb_opt_int(argc, argv, "--reps", 50, &ok), json = cli_flag(argc, argv, "--json");
  const int use_cpu = cli_flag(argc, argv, "--cpu"), inplace = cli_flag(argc, argv, "--inplace");
  const char *dts = cli_arg(argc, argv, "--dtype", "bf16");
  llmk_rope_desc rd;
  if (!parse_rope("rope", argc, argv, &rd, &ok) || !ok) return 2;
  if (strcmp(dts, "bf16") && strcmp(dts, "f32")) return fprintf(stderr, "bench rope: --dtype must be bf16 or f32\n"), 2;
  if (T < 1 || T > INT32_MAX || H < 1 || D < 2 || D % 2 || reps < 1)
    return fprintf(stderr, "bench rope: --t, --h, --reps must be positive, --d even\n"), 2;
  const llmk_dtype dt = strcmp(dts, "bf16") ? LLMK_F32 : LLMK_BF16;
  const size_t es = llmk_dtype_size(dt), n = (size_t)(T * H * D);

  llmk_handle h;
  if (!kvb_open_handle("rope", use_cpu, &h)) return 1;
  const int gpu = !use_cpu;
  size_t copy_bytes = 0;
  const double copy = kvb_measure_copy(gpu, 1024 * MIB, &copy_bytes);
  void *hx = malloc(n * es);
  int32_t *hp = malloc(sizeof(int32_t) * (size_t)T);
  void *dx = kvb_mem_alloc(gpu, n * es), *dy = inplace ? dx : kvb_mem_alloc(gpu, n * es), *dp = kvb_mem_alloc(gpu, 4 * (size_t)T);
  int rc = 1;
  if (!hx || !hp || !dx || !dy || !dp) {
    fprintf(stderr, "bench rope: allocation failed\n");
  } else {
    cli_fill_random(hx, dt, (int64_t)n, 1.0f, 0.0, 5);
    for (int64_t t = 0; t < T; t++) hp[t] = (int32_t)t;
    rope_op o;
    o.h = h, o.desc = rd;
    o.x = llmk_tensor_3d(dx, dt, T, H, D), o.y = llmk_tensor_3d(dy, dt, T, H, D), o.pos = llmk_tensor_1d(dp, LLMK_I32, T);
    cli_timing t = {0, 0};
    llmk_status s = LLMK_ERR_CUDA;
    if (kvb_mem_h2d(gpu, dx, hx, n * es) && kvb_mem_h2d(gpu, dp, hp, 4 * (size_t)T)) s = kvb_time_it(gpu, run_rope, &o, reps, gpu ? 20 : 0, &t);
    if (s) {
      fprintf(stderr, "bench rope: %s (%s)\n", llmk_status_string(s), llmk_last_error());
    } else {
      rc = 0;
      const double bytes = 2.0 * (double)(n * es) + 4.0 * (double)T, gbps = bytes / (t.median_us * 1e-6) / 1e9;
      const double frac = copy > 0 ? gbps / copy : 0;
      if (json) {
        printf("{\"op\": \"rope\", \"device\": \"%s\", \"shape\": {\"t\": %lld, \"h\": %lld, \"d\": %lld}, \"dtype\": \"%s\", "
               "\"style\": \"%s\", \"rotary_dim\": %lld, \"inplace\": %s, \"llmk_us\": %.3f, ",
               use_cpu ? "cpu" : cli_device_name(), (long long)T, (long long)H, (long long)D, dts,
               rd.style == LLMK_ROPE_NEOX ? "neox" : "interleaved", (long long)(rd.rotary_dim ? rd.rotary_dim : D),
               inplace ? "true" : "false", t.median_us);
        if (t.graph_us > 0) printf("\"llmk_us_graph\": %.3f, ", t.graph_us);
        printf("\"backend\": \"%s\", \"bytes\": %.0f, \"gbps\": %.1f, \"copy_gbps\": %.1f, \"copy_bytes\": %zu, "
               "\"frac_copy\": %.4f",
               use_cpu ? "cpu" : "own", bytes, gbps, copy, copy_bytes, frac);
        kvb_print_commit();
        printf("}\n");
      } else {
        printf("rope %lld x %lld x %lld %s%s: %.2f us", (long long)T, (long long)H, (long long)D, dts,
               inplace ? " in place" : "", t.median_us);
        if (t.graph_us > 0) printf(" (graph %.2f us)", t.graph_us);
        printf("  %.1f GB/s", gbps);
        if (copy > 0) printf("  %.1f%% of copy (%.0f GB/s)", 100 * frac, copy);
        printf("\n");
      }
    }
  }
  free(hx), free(hp);
  kvb_mem_free(gpu, dx), kvb_mem_free(gpu, dp);
  if (!inplace) kvb_mem_free(gpu, dy);
  llmk_destroy(h);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* bench kvcache: llmk_rope_qkv_write                                        */
/* ------------------------------------------------------------------------ */

typedef struct qkv_op {
  llmk_handle h;
  const llmk_rope_desc *rope; /* NULL: no rotation */
  llmk_tensor qkv, q_out;
  int64_t hq;
  llmk_kv_cache cache;
  llmk_kv_loc loc;
} qkv_op;

static llmk_status run_qkv(void *ctx, void *stream) {
  qkv_op *o = ctx;
  return llmk_rope_qkv_write(o->h, o->rope, &o->qkv, o->hq, &o->cache, &o->loc, &o->q_out, stream);
}

static void kvcache_usage(FILE *f) {
  fprintf(f,
          "usage: llmk bench kvcache --t T [--seqs S] [--hq 64] [--hkv 8] [--d 128]\n"
          "                          [--format bf16|fp8|fp8_tensor|int4] [--group 32|128] [--page-size P]\n"
          "                          [--style interleaved|neox] [--no-rope] [--check-rows R] [--reps N]\n"
          "                          [--cpu] [--json]\n"
          "  Times llmk_rope_qkv_write of T new tokens (packed bf16 QKV) of S sequences (T/S tokens each,\n"
          "  from position 0; S = T is the decode form, offsets NULL) into a cache of that format: CUDA\n"
          "  events with L2 flushed (us, median) and graph replay. GB/s of qkv read + q_out written + cache\n"
          "  data and parameters written, and the fraction of a device copy (max(1 GiB, those bytes)) timed\n"
          "  in the same run. The first R rows (64) of sequence 0 are checked bit for bit against the CPU.\n");
}

/* Rows 0 .. R-1 of sequence 0 through the CPU backend, compared bit for bit
 * (q_out, and K, V and their parameters in the cache). */
static int check_qkv(int gpu, const qkv_op *o, const kv_geom *g, const kv_store *st, const int32_t *hbt,
                     const uint16_t *hqkv, int64_t W, int64_t R, long long *bad) {
  const int64_t hq = o->hq, D = g->d;
  *bad = 0;
  kv_geom g1;
  kvb_geom_init(&g1, g->fmt, g->group, g->hkv, D, 0, 1, R);
  kv_store cs;
  if (!kvb_store_alloc(0, &g1, &cs)) return 0;
  const size_t qb = (size_t)(R * hq * D) * 2, db = kvb_geom_data_bytes(&g1), pb = kvb_geom_param_bytes(&g1);
  uint8_t *cq = malloc(qb), *gq = malloc(qb), *gk = malloc(db), *gv = malloc(db);
  uint8_t *gkp = pb ? malloc(pb) : NULL, *gvp = pb ? malloc(pb) : NULL;
  llmk_handle cpu = NULL;
  int ok = cq && gq && gk && gv && (!pb || (gkp && gvp)) && !llmk_create_cpu(&cpu);
  ok = ok && kvb_store_set_tensor_scale(0, &g1, &cs);
  ok = ok && kvb_mem_rows_d2h(gpu, gq, o->q_out.data, (size_t)(hq * D) * 2, (size_t)o->q_out.strides[0] * 2, (size_t)R) &&
       kvb_gather_rows(gpu, g, st->k, g->row_bytes, hbt, 0, 0, R, 0, g->hkv, gk) &&
       kvb_gather_rows(gpu, g, st->v, g->row_bytes, hbt, 0, 0, R, 0, g->hkv, gv);
  if (ok && g->param_bytes)
    ok = kvb_gather_rows(gpu, g, st->kp, g->param_bytes, hbt, 0, 0, R, 0, g->hkv, gkp) &&
         kvb_gather_rows(gpu, g, st->vp, g->param_bytes, hbt, 0, 0, R, 0, g->hkv, gvp);
  if (ok) {
    int32_t off[2] = {0, (int32_t)R}, start = 0;
    llmk_kv_loc loc = LLMK_KV_LOC_INIT;
    loc.offsets = llmk_tensor_1d(off, LLMK_I32, 2);
    loc.start_pos = llmk_tensor_1d(&start, LLMK_I32, 1);
    const llmk_kv_cache c = kvb_make_cache(&g1, &cs, NULL);
    const llmk_tensor qkv = llmk_tensor_2d((void *)hqkv, LLMK_BF16, R, W, W), q = llmk_tensor_3d(cq, LLMK_BF16, R, hq, D);
    const llmk_status s = llmk_rope_qkv_write(cpu, o->rope, &qkv, hq, &c, &loc, &q, NULL);
    if (s) {
      fprintf(stderr, "bench kvcache: CPU reference: %s (%s)\n", llmk_status_string(s), llmk_last_error());
      ok = 0;
    }
  }
  if (ok) {
    for (size_t i = 0; i < qb; i++) *bad += cq[i] != gq[i];
    for (size_t i = 0; i < db; i++) *bad += ((uint8_t *)cs.k)[i] != gk[i];
    for (size_t i = 0; i < db; i++) *bad += ((uint8_t *)cs.v)[i] != gv[i];
    if (g->param_bytes)
      for (size_t i = 0; i < pb; i++) *bad += (((uint8_t *)cs.kp)[i] != gkp[i]) + (((uint8_t *)cs.vp)[i] != gvp[i]);
    ok = *bad == 0;
  }
  llmk_destroy(cpu);
  free(cq), free(gq), free(gk), free(gv), free(gkp), free(gvp);
  kvb_store_free(0, &cs);
  return ok;
}

int cli_bench_kvcache(int argc, char **argv) {
  static const char *const valued[] = {"--t",   "--seqs",  "--hq",    "--hkv",       "--d",     "--format",
                                       "--group", "--page-size", "--style", "--rotary-dim", "--check-rows",
                                       "--reps", NULL};
  static const char *const flags[] = {"--no-rope", "--no-llama3-scaling", "--cpu", "--json", "--help", "-h", NULL};
  if (cli_flag(argc, argv, "--help") || cli_flag(argc, argv, "-h")) return kvcache_usage(stdout), 0;
  if (!cli_check_options("bench kvcache", argc, argv, valued, flags)) return 2;
  int ok = 1;
  const int64_t T = kvb_opt_int(argc, argv, "--t", 16384, &ok), S = kvb_opt_int(argc, argv, "--seqs", 1, &ok);
  const int64_t hq = kvb_opt_int(argc, argv, "--hq", 64, &ok), hkv = kvb_opt_int(argc, argv, "--hkv", 8, &ok);
  const int64_t D = kvb_opt_int(argc, argv, "--d", 128, &ok), group = kvb_opt_int(argc, argv, "--group", 128, &ok);
  const int64_t page = kvb_opt_int(argc, argv, "--page-size", 0, &ok), check_rows = kvb_opt_int(argc, argv, "--check-rows", 64, &ok);
  const int reps = (int)kvb_opt_int(argc, argv, "--reps", 30, &ok), json = cli_flag(argc, argv, "--json");
  const int use_cpu = cli_flag(argc, argv, "--cpu"), no_rope = cli_flag(argc, argv, "--no-rope");
  llmk_kv_format fmt;
  llmk_rope_desc rd;
  if (!parse_rope("kvcache", argc, argv, &rd, &ok) || !ok) return 2;
  if (!kvb_parse_format(cli_arg(argc, argv, "--format", "bf16"), &fmt))
    return fprintf(stderr, "bench kvcache: --format must be bf16, fp8, fp8_tensor or int4\n"), 2;
  if (!kvb_check_cache_opts("kvcache", fmt, hq, hkv, D, group, page)) return 2;
  if (T < 1 || T > INT32_MAX || S < 1 || S > T || reps < 1 || check_rows < 0)
    return fprintf(stderr, "bench kvcache: --t >= --seqs >= 1, --reps >= 1, --check-rows >= 0\n"), 2;

  /* sequence b gets T / S rows, the first T % S one more; capacity: the longest */
  const int64_t cap = (T + S - 1) / S, W = (hq + 2 * hkv) * D;
  kv_geom g;
  kvb_geom_init(&g, fmt, group, hkv, D, page, S, cap);
  const double cache_w = kvb_kv_bytes_of(&g, (double)T) - (fmt == LLMK_KV_FP8_TENSOR ? 8.0 : 0.0);
  const double bytes = 2.0 * (double)(T * W) + 2.0 * (double)(T * hq * D) + cache_w +
                       (fmt == LLMK_KV_FP8_TENSOR ? 8.0 : 0.0) + 4.0 * (double)(2 * S + 1) +
                       (page ? 4.0 * (double)(S * g.max_pages) : 0.0);

  llmk_handle h;
  if (!kvb_open_handle("kvcache", use_cpu, &h)) return 1;
  const int gpu = !use_cpu;
  size_t copy_bytes = 0;
  const double copy = kvb_measure_copy(gpu, bytes > (double)(1024 * MIB) ? (size_t)bytes : 1024 * MIB, &copy_bytes);
  kv_store st;
  memset(&st, 0, sizeof st);
  uint16_t *hqkv = malloc((size_t)(T * W) * 2);
  int32_t *ho = malloc(sizeof(int32_t) * (size_t)(S + 1)), *hs = calloc((size_t)S, sizeof(int32_t)), *hbt = NULL;
  void *dqkv = kvb_mem_alloc(gpu, (size_t)(T * W) * 2), *dq = kvb_mem_alloc(gpu, (size_t)(T * hq * D) * 2);
  void *doff = kvb_mem_alloc(gpu, sizeof(int32_t) * (size_t)(S + 1)), *dst = kvb_mem_alloc(gpu, sizeof(int32_t) * (size_t)S), *dbt = NULL;
  ok = hqkv && ho && hs && dqkv && dq && doff && dst && kvb_store_alloc(gpu, &g, &st);
  if (ok && page)
    ok = (hbt = kvb_make_block_table(&g, 4321)) != NULL && (dbt = kvb_mem_alloc(gpu, sizeof(int32_t) * (size_t)(S * g.bt_ld))) &&
         kvb_mem_h2d(gpu, dbt, hbt, sizeof(int32_t) * (size_t)(S * g.bt_ld));
  int rc = 1;
  qkv_op o;
  memset(&o, 0, sizeof o);
  if (!ok) fprintf(stderr, "bench kvcache: allocation failed\n");
  if (ok) {
    cli_fill_random(hqkv, LLMK_BF16, T * W, 1.0f, 0.0, 11);
    for (int64_t b = 0, r = 0; b <= S; b++) ho[b] = (int32_t)r, r += b < T % S ? T / S + 1 : T / S;
    ok = kvb_mem_h2d(gpu, dqkv, hqkv, (size_t)(T * W) * 2) && kvb_mem_h2d(gpu, doff, ho, sizeof(int32_t) * (size_t)(S + 1)) &&
         kvb_mem_h2d(gpu, dst, hs, sizeof(int32_t) * (size_t)S) && kvb_store_set_tensor_scale(gpu, &g, &st);
    o.h = h, o.rope = no_rope ? NULL : &rd, o.hq = hq;
    o.qkv = llmk_tensor_2d(dqkv, LLMK_BF16, T, W, W);
    o.q_out = llmk_tensor_3d(dq, LLMK_BF16, T, hq, D);
    o.cache = kvb_make_cache(&g, &st, dbt);
    o.loc = (llmk_kv_loc)LLMK_KV_LOC_INIT;
    if (S < T) o.loc.offsets = llmk_tensor_1d(doff, LLMK_I32, S + 1); /* S == T: decode form, offsets NULL */
    o.loc.start_pos = llmk_tensor_1d(dst, LLMK_I32, S);
  }
  /* one call, the check of its first rows, then the timing */
  llmk_status s = ok ? run_qkv(&o, NULL) : LLMK_ERR_INTERNAL;
  int checked = -1;
  long long bad = 0;
  const int64_t R = check_rows < T / S ? check_rows : T / S;
  if (ok && !s && R > 0) {
    checked = check_qkv(gpu, &o, &g, &st, hbt, hqkv, W, R, &bad);
    if (!checked)
      fprintf(stderr, "bench kvcache: CHECK FAILED: %lld bytes differ from the CPU backend in the first %lld rows\n",
              bad, (long long)R);
  }
  cli_timing t = {0, 0};
  if (ok && !s) s = kvb_time_it(gpu, run_qkv, &o, reps, gpu ? 20 : 0, &t);
  if (ok && s) {
    fprintf(stderr, "bench kvcache: %s (%s)\n", llmk_status_string(s), llmk_last_error());
  } else if (ok) {
    rc = checked == 0;
    const double gbps = bytes / (t.median_us * 1e-6) / 1e9, frac = copy > 0 ? gbps / copy : 0;
    if (json) {
      printf("{\"op\": \"rope_qkv_write\", \"device\": \"%s\", \"shape\": {\"t\": %lld, \"seqs\": %lld, \"hq\": %lld, "
             "\"hkv\": %lld, \"d\": %lld}, \"dtype\": \"bf16\", \"format\": \"%s\", ",
             use_cpu ? "cpu" : cli_device_name(), (long long)T, (long long)S, (long long)hq, (long long)hkv, (long long)D,
             kvb_format_name(fmt));
      if (fmt == LLMK_KV_INT4) printf("\"int4_group\": %lld, ", (long long)group);
      printf("\"page_size\": %lld, \"rope\": \"%s\", \"llmk_us\": %.3f, ", (long long)page,
             no_rope ? "none" : rd.style == LLMK_ROPE_NEOX ? "llama3.1 neox" : "llama3.1 interleaved", t.median_us);
      if (t.graph_us > 0) printf("\"llmk_us_graph\": %.3f, ", t.graph_us);
      printf("\"backend\": \"%s:%s", use_cpu ? "cpu" : "own", kvb_format_name(fmt));
      if (fmt == LLMK_KV_INT4) printf("g%lld", (long long)group);
      if (page) printf("/paged%lld", (long long)page);
      printf("\", \"bytes\": %.0f, \"gbps\": %.1f, \"copy_gbps\": %.1f, \"copy_bytes\": %zu, \"frac_copy\": %.4f, "
             "\"checked\": %s",
             bytes, gbps, copy, copy_bytes, frac, checked < 0 ? "null" : checked ? "true" : "false");
      if (checked >= 0) printf(", \"check_rows\": %lld, \"mismatched_bytes\": %lld", (long long)R, bad);
      kvb_print_commit();
      printf("}\n");
    } else {
      if (copy > 0) printf("device copy bandwidth: %.0f GB/s (%.2f GiB, graph replay)\n", copy, copy_bytes / 1073741824.0);
      printf("rope_qkv_write T=%lld seqs=%lld hq=%lld hkv=%lld d=%lld %s%s", (long long)T, (long long)S, (long long)hq,
             (long long)hkv, (long long)D, kvb_format_name(fmt), fmt == LLMK_KV_INT4 ? (group == 32 ? " g32" : " g128") : "");
      if (page) printf(" paged %lld", (long long)page);
      printf(": %.2f us", t.median_us);
      if (t.graph_us > 0) printf(" (graph %.2f us)", t.graph_us);
      printf("  %.1f GB/s", gbps);
      if (copy > 0) printf("  %.1f%% of copy", 100 * frac);
      if (checked >= 0) printf("  check %s", checked ? "ok" : "FAILED");
      printf("\n");
    }
  }
  kvb_store_free(gpu, &st);
  free(hqkv), free(ho), free(hs), free(hbt);
  kvb_mem_free(gpu, dqkv), kvb_mem_free(gpu, dq), kvb_mem_free(gpu, doff), kvb_mem_free(gpu, dst), kvb_mem_free(gpu, dbt);
  llmk_destroy(h);
  return rc;
}
