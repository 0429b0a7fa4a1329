/* `llmk bench attention`: decode attention over a KV cache
 * (llmk_attention_decode).
 *
 * attention: for each shape (B sequences, all of length T, max_seq_len = T)
 * a cache of the chosen format and layout is built on the GPU and filled
 * through llmk_kv_cache_write from random bf16 K and V (or with random
 * codes and fixed parameters: --fill random; the timing does not depend on
 * the values). One call is checked against the CPU reference (one KV head
 * of the last sequence). The call is then timed with cli_time_op: CUDA
 * events around single calls with L2 flushed (llmk_us, median) and replay of
 * a CUDA graph of back-to-back calls (llmk_us_graph, median of 7 replays)
 * that rotate among copies of the cache totalling >= 256 MiB, so no
 * captured call finds its cache in L2 (as in a model, whose every layer has
 * its own cache). bench/peer_attention.py times torch SDPA the same way.
 * Bytes read = K and V data and parameters of B T positions (+ q, out, the
 * block table); GB/s uses the graph time, and frac_copy compares it with a
 * device-to-device copy of max(1 GiB, the largest cache of the run) timed
 * the same way (graph replay, bytes read + written) in the same process. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli_kv.h"
#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

int cli_bench_attention(int argc, char **argv);

#define ROTATE_BYTES (256 * MIB) /* graph replay: cache copies totalling at least this */
#define MAX_COPIES 256
#define MAX_SHAPES 64

/* ------------------------------------------------------------------------ */
/* bench attention                                                           */
/* ------------------------------------------------------------------------ */

static void attention_usage(FILE *f) {
  fprintf(f,
          "usage: llmk bench attention [--b B --t T | --shapes B:T,B:T,... | --sweep]\n"
          "                            [--hq 64] [--hkv 8] [--d 128] [--format bf16|fp8|fp8_tensor|int4]\n"
          "                            [--group 32|128] [--page-size 0|16|32|64|...] [--splits N]\n"
          "                            [--fill write|random] [--check 0|1] [--reps N] [--graph-calls N]\n"
          "                            [--list] [--cpu] [--json]\n"
          "  Times llmk_attention_decode over a cache of B sequences of T positions (max_seq_len T):\n"
          "  CUDA events with L2 flushed (us) and CUDA-graph replay rotating among cache copies\n"
          "  totalling >= 256 MiB (graph us); GB/s of K/V data + parameters read, and the fraction of a\n"
          "  device copy of max(1 GiB, the largest cache) timed the same way in the same run.\n"
          "  --sweep: B in {1, 8, 32} x T in {1024, 8192, 32768}, and B:T 1:131072, 1:262144, 8:131072\n"
          "           (Llama-3-70B heads: Hq 64, Hkv 8, D 128).\n"
          "  --splits 0 lets llmk choose the KV split; --check 1 (default) compares one KV head of the\n"
          "  last sequence with the CPU reference; --list prints the shapes and bytes without a GPU.\n");
}

typedef struct attn_op {
  llmk_handle h;
  llmk_attention_desc desc;
  llmk_tensor q, seq_lens, out;
  llmk_kv_cache *caches; /* n copies; calls rotate among them */
  int n, next;
} attn_op;

static llmk_status run_attn(void *ctx, void *stream) {
  attn_op *o = ctx;
  const llmk_kv_cache *c = &o->caches[o->next++ % o->n];
  return llmk_attention_decode(o->h, &o->desc, &o->q, c, &o->seq_lens, &o->out, NULL, stream);
}

typedef struct attn_cfg {
  int64_t hq, hkv, d, group, page;
  llmk_kv_format fmt;
  int splits, reps, graph_calls, check, json, gpu, random_fill;
} attn_cfg;

/* One KV head (the last) of the last sequence against the CPU backend: a
 * one-head contiguous copy of its cache and the query heads of its group. */
static int check_attention(const attn_cfg *a, const kv_geom *g, const kv_store *st, const int32_t *hbt,
                           const uint16_t *hq, const attn_op *o, int64_t B, int64_t T, double *err) {
  const int64_t b = B - 1, h = a->hkv - 1, gq = a->hq / a->hkv, D = a->d;
  *err = 0;
  kv_geom g1;
  kvb_geom_init(&g1, g->fmt, g->group, 1, D, 0, 1, T);
  kv_store hs;
  if (!kvb_store_alloc(0, &g1, &hs)) return 0;
  uint16_t *gout = malloc((size_t)(B * a->hq * D) * 2), *cout = malloc((size_t)(gq * D) * 2);
  llmk_handle cpu = NULL;
  int ok = gout && cout && !llmk_create_cpu(&cpu);
  ok = ok && kvb_gather_rows(a->gpu, g, st->k, g->row_bytes, hbt, b, 0, T, h, 1, hs.k) &&
       kvb_gather_rows(a->gpu, g, st->v, g->row_bytes, hbt, b, 0, T, h, 1, hs.v);
  if (ok && g->fmt == LLMK_KV_FP8_TENSOR)
    ok = kvb_mem_d2h(a->gpu, hs.kp, st->kp, 4) && kvb_mem_d2h(a->gpu, hs.vp, st->vp, 4);
  else if (ok && g->param_bytes)
    ok = kvb_gather_rows(a->gpu, g, st->kp, g->param_bytes, hbt, b, 0, T, h, 1, hs.kp) &&
         kvb_gather_rows(a->gpu, g, st->vp, g->param_bytes, hbt, b, 0, T, h, 1, hs.vp);
  ok = ok && kvb_mem_d2h(a->gpu, gout, o->out.data, (size_t)(B * a->hq * D) * 2);
  if (ok) {
    const llmk_kv_cache c = kvb_make_cache(&g1, &hs, NULL);
    int32_t len = (int32_t)T;
    const llmk_tensor q = llmk_tensor_3d((void *)(hq + (b * a->hq + h * gq) * D), LLMK_BF16, 1, gq, D);
    const llmk_tensor out = llmk_tensor_3d(cout, LLMK_BF16, 1, gq, D), sl = llmk_tensor_1d(&len, LLMK_I32, 1);
    const llmk_status s = llmk_attention_decode(cpu, &o->desc, &q, &c, &sl, &out, NULL, NULL);
    if (s) {
      fprintf(stderr, "bench attention: CPU reference: %s (%s)\n", llmk_status_string(s), llmk_last_error());
      ok = 0;
    }
  }
  if (ok) {
    /* per element within 2e-2 |ref| + 2e-2 rms(ref), NaN only where the
     * reference has one; relative Frobenius error below 1e-2 */
    const uint16_t *got = gout + (b * a->hq + h * gq) * D;
    double num = 0, den = 0;
    for (int64_t i = 0; i < gq * D; i++) den += (double)llmk_bf16_to_float(cout[i]) * llmk_bf16_to_float(cout[i]);
    const double rms = sqrt(den / (double)(gq * D));
    for (int64_t i = 0; i < gq * D; i++) {
      const double x = llmk_bf16_to_float(got[i]), r = llmk_bf16_to_float(cout[i]);
      if ((x != x) != (r != r) || fabs(x - r) > 2e-2 * fabs(r) + 2e-2 * rms) ok = 0;
      if (x == x && r == r) num += (x - r) * (x - r);
    }
    *err = den > 0 ? sqrt(num / den) : sqrt(num);
    if (!(*err < 1e-2)) ok = 0;
  }
  llmk_destroy(cpu);
  free(gout), free(cout);
  kvb_store_free(0, &hs);
  return ok;
}

typedef struct attn_result {
  double us, graph_us, kv_bytes, bytes, gbps, err;
  int copies, graph_calls, checked; /* checked: 1 passed, 0 failed, -1 not checked */
} attn_result;

/* 0: done; 1: failed; 2: skipped (does not fit). */
static int bench_attention_shape(llmk_handle h, const attn_cfg *a, int64_t B, int64_t T, attn_result *r) {
  const int gpu = a->gpu;
  memset(r, 0, sizeof *r);
  r->checked = -1;
  kv_geom g;
  kvb_geom_init(&g, a->fmt, a->group, a->hkv, a->d, a->page, B, T);
  const size_t one = kvb_geom_data_bytes(&g) * 2 + kvb_geom_param_bytes(&g) * 2;
  r->kv_bytes = kvb_kv_bytes_of(&g, (double)(B * T));
  const double qo = 2.0 * (double)(B * a->hq * a->d) * 2.0, btb = g.page ? 4.0 * (double)(B * g.max_pages) : 0.0;
  r->bytes = r->kv_bytes + qo + btb + 4.0 * (double)B;
  int copies = 1;
  if (gpu && a->graph_calls > 0) {
    copies = (int)((ROTATE_BYTES + one - 1) / one);
    if (copies > MAX_COPIES) copies = MAX_COPIES;
    if (copies < 1) copies = 1;
  }
  const size_t free_b = kvb_dev_free_bytes(gpu), need = one * (size_t)copies + 2 * 256 * MIB + 256 * MIB;
  if (gpu && free_b && need > free_b) {
    fprintf(stderr, "bench attention: B=%lld T=%lld %s needs about %.1f GiB, %.1f GiB free: skipped\n", (long long)B,
            (long long)T, kvb_format_name(a->fmt), need / 1073741824.0, free_b / 1073741824.0);
    return 2;
  }
  kv_store st[MAX_COPIES];
  llmk_kv_cache caches[MAX_COPIES];
  memset(st, 0, sizeof st);
  int32_t *hbt = NULL, *hlen = malloc(sizeof(int32_t) * (size_t)B);
  uint16_t *hq = malloc((size_t)(B * a->hq * a->d) * 2);
  void *dbt = NULL, *dq = kvb_mem_alloc(gpu, (size_t)(B * a->hq * a->d) * 2);
  void *dout = kvb_mem_alloc(gpu, (size_t)(B * a->hq * a->d) * 2), *dlen = kvb_mem_alloc(gpu, sizeof(int32_t) * (size_t)B);
  int rc = 1, ok = hlen && hq && dq && dout && dlen && kvb_store_alloc(gpu, &g, &st[0]);
  if (ok && g.page) {
    ok = (hbt = kvb_make_block_table(&g, 1234 + (uint64_t)B)) != NULL &&
         (dbt = kvb_mem_alloc(gpu, sizeof(int32_t) * (size_t)(B * g.bt_ld))) != NULL &&
         kvb_mem_h2d(gpu, dbt, hbt, sizeof(int32_t) * (size_t)(B * g.bt_ld));
  }
  if (!ok) fprintf(stderr, "bench attention: allocation failed for B=%lld T=%lld\n", (long long)B, (long long)T);
  attn_op o;
  memset(&o, 0, sizeof o);
  o.h = h;
  o.desc = (llmk_attention_desc)LLMK_ATTENTION_DESC_INIT;
  o.desc.softmax_scale = (float)(1.0 / sqrt((double)a->d));
  o.desc.max_seq_len = T;
  o.desc.num_splits = a->splits;
  o.caches = caches;
  o.n = 1;
  if (ok) {
    for (int64_t i = 0; i < B; i++) hlen[i] = (int32_t)T;
    cli_fill_random(hq, LLMK_BF16, B * a->hq * a->d, 1.0f, 0.0, 77 + (uint64_t)B);
    ok = kvb_mem_h2d(gpu, dq, hq, (size_t)(B * a->hq * a->d) * 2) && kvb_mem_h2d(gpu, dlen, hlen, sizeof(int32_t) * (size_t)B) &&
         kvb_store_set_tensor_scale(gpu, &g, &st[0]);
    caches[0] = kvb_make_cache(&g, &st[0], dbt);
    o.q = llmk_tensor_3d(dq, LLMK_BF16, B, a->hq, a->d);
    o.out = llmk_tensor_3d(dout, LLMK_BF16, B, a->hq, a->d);
    o.seq_lens = llmk_tensor_1d(dlen, LLMK_I32, B);
  }
  if (ok) ok = a->random_fill ? kvb_fill_random(gpu, &g, &st[0], 99 + (uint64_t)(B * 7 + T))
                              : kvb_fill_by_write(h, gpu, &g, &caches[0], T, 99 + (uint64_t)(B * 7 + T));
  if (ok) {
    const llmk_status s = run_attn(&o, NULL);
    if (s) {
      fprintf(stderr, "bench attention: %s (%s)\n", llmk_status_string(s), llmk_last_error());
      ok = 0;
    }
  }
  if (ok && a->check) {
    r->checked = check_attention(a, &g, &st[0], hbt, hq, &o, B, T, &r->err);
    if (!r->checked)
      fprintf(stderr, "bench attention: CHECK FAILED for B=%lld T=%lld %s (rel err %.3g)\n", (long long)B,
              (long long)T, kvb_format_name(a->fmt), r->err);
  }
  /* graph replay rotates among copies of the cache (the block table is shared) */
  for (int i = 1; ok && i < copies; i++) {
    if (!kvb_store_alloc(gpu, &g, &st[i]) || !kvb_store_copy(gpu, &g, &st[i], &st[0])) break;
    caches[i] = kvb_make_cache(&g, &st[i], dbt);
    o.n = i + 1;
  }
  if (ok) {
    r->copies = o.n;
    r->graph_calls = gpu && a->graph_calls > 0 ? (a->graph_calls > o.n ? a->graph_calls : o.n) : 0;
    cli_timing t = {0, 0};
    o.next = 0;
    const llmk_status s = kvb_time_it(gpu, run_attn, &o, a->reps, r->graph_calls, &t);
    if (s) {
      fprintf(stderr, "bench attention: %s (%s)\n", llmk_status_string(s), llmk_last_error());
    } else {
      r->us = t.median_us, r->graph_us = t.graph_us;
      if (r->graph_us <= 0) r->graph_calls = 0;
      const double best = r->graph_us > 0 ? r->graph_us : r->us;
      r->gbps = r->bytes / (best * 1e-6) / 1e9;
      rc = 0;
    }
  }
  for (int i = 0; i < MAX_COPIES; i++) kvb_store_free(gpu, &st[i]);
  kvb_mem_free(gpu, dbt), kvb_mem_free(gpu, dq), kvb_mem_free(gpu, dout), kvb_mem_free(gpu, dlen);
  free(hbt), free(hlen), free(hq);
  return rc;
}

static const int64_t SWEEP[][2] = {{1, 1024},  {1, 8192},  {1, 32768},  {8, 1024},   {8, 8192},   {8, 32768},
                                   {32, 1024}, {32, 8192}, {32, 32768}, {1, 131072}, {1, 262144}, {8, 131072}};

/* --shapes B:T,...: into shapes[][2]; returns the count, -1 on a bad list. */
static int parse_bt_list(const char *s, int64_t (*shapes)[2], int max) {
  int n = 0;
  while (*s) {
    long long b, t;
    int used = 0;
    if (n >= max || sscanf(s, "%lld:%lld%n", &b, &t, &used) != 2 || b < 1 || t < 1 || (s[used] && s[used] != ','))
      return -1;
    shapes[n][0] = b, shapes[n][1] = t, n++;
    s += used;
    if (*s == ',') s++;
  }
  return n;
}

int cli_bench_attention(int argc, char **argv) {
  static const char *const valued[] = {"--b",     "--t",      "--shapes", "--hq",  "--hkv",         "--d",
                                       "--format", "--group", "--page-size", "--splits", "--fill", "--check",
                                       "--reps",  "--graph-calls", NULL};
  static const char *const flags[] = {"--sweep", "--list", "--cpu", "--json", "--help", "-h", NULL};
  if (cli_flag(argc, argv, "--help") || cli_flag(argc, argv, "-h")) return attention_usage(stdout), 0;
  if (!cli_check_options("bench attention", argc, argv, valued, flags)) return 2;
  int ok = 1;
  attn_cfg a;
  memset(&a, 0, sizeof a);
  a.hq = kvb_opt_int(argc, argv, "--hq", 64, &ok), a.hkv = kvb_opt_int(argc, argv, "--hkv", 8, &ok);
  a.d = kvb_opt_int(argc, argv, "--d", 128, &ok), a.group = kvb_opt_int(argc, argv, "--group", 128, &ok);
  a.page = kvb_opt_int(argc, argv, "--page-size", 0, &ok);
  a.splits = (int)kvb_opt_int(argc, argv, "--splits", 0, &ok), a.reps = (int)kvb_opt_int(argc, argv, "--reps", 30, &ok);
  a.graph_calls = (int)kvb_opt_int(argc, argv, "--graph-calls", 20, &ok);
  a.check = (int)kvb_opt_int(argc, argv, "--check", 1, &ok);
  a.json = cli_flag(argc, argv, "--json");
  const int use_cpu = cli_flag(argc, argv, "--cpu"), list = cli_flag(argc, argv, "--list");
  const char *fill = cli_arg(argc, argv, "--fill", "write");
  if (!ok) return 2;
  if (!kvb_parse_format(cli_arg(argc, argv, "--format", "bf16"), &a.fmt))
    return fprintf(stderr, "bench attention: --format must be bf16, fp8, fp8_tensor or int4\n"), 2;
  if (!kvb_check_cache_opts("attention", a.fmt, a.hq, a.hkv, a.d, a.group, a.page)) return 2;
  if (a.hq / a.hkv > 16) return fprintf(stderr, "bench attention: --hq / --hkv must be at most 16\n"), 2;
  if (a.splits < 0 || a.reps < 1 || a.graph_calls < 0 || (a.check != 0 && a.check != 1))
    return fprintf(stderr, "bench attention: --splits, --graph-calls >= 0, --reps >= 1, --check 0 or 1\n"), 2;
  if (strcmp(fill, "write") && strcmp(fill, "random"))
    return fprintf(stderr, "bench attention: --fill must be write or random\n"), 2;
  a.random_fill = !strcmp(fill, "random");

  int64_t shapes[MAX_SHAPES][2];
  int ns = 0;
  const char *list_arg = cli_arg(argc, argv, "--shapes", NULL);
  const int nsrc = !!list_arg + cli_flag(argc, argv, "--sweep") + (cli_arg(argc, argv, "--b", NULL) || cli_arg(argc, argv, "--t", NULL));
  if (nsrc > 1) return fprintf(stderr, "bench attention: give one of --b/--t, --shapes or --sweep\n"), 2;
  if (list_arg) {
    if ((ns = parse_bt_list(list_arg, shapes, MAX_SHAPES)) <= 0)
      return fprintf(stderr, "bench attention: --shapes wants B:T[,B:T...] (at most %d), got '%s'\n", MAX_SHAPES, list_arg), 2;
  } else if (cli_flag(argc, argv, "--sweep")) {
    for (size_t i = 0; i < sizeof SWEEP / sizeof SWEEP[0]; i++) shapes[ns][0] = SWEEP[i][0], shapes[ns][1] = SWEEP[i][1], ns++;
  } else {
    shapes[0][0] = kvb_opt_int(argc, argv, "--b", 1, &ok), shapes[0][1] = kvb_opt_int(argc, argv, "--t", 8192, &ok);
    if (!ok) return 2;
    if (shapes[0][0] < 1 || shapes[0][1] < 1) return fprintf(stderr, "bench attention: --b and --t must be positive\n"), 2;
    ns = 1;
  }
  for (int i = 0; i < ns; i++)
    if (shapes[i][1] > INT32_MAX || shapes[i][0] > (INT64_C(1) << 24))
      return fprintf(stderr, "bench attention: T must fit in int32 and B be at most 2^24\n"), 2;

  double largest = 0;
  for (int i = 0; i < ns; i++) {
    kv_geom g;
    kvb_geom_init(&g, a.fmt, a.group, a.hkv, a.d, a.page, shapes[i][0], shapes[i][1]);
    const double kb = kvb_kv_bytes_of(&g, (double)(shapes[i][0] * shapes[i][1]));
    if (kb > largest) largest = kb;
    if (list)
      printf("attention_decode B=%-4lld T=%-7lld hq=%lld hkv=%lld d=%lld %s%s page=%lld: KV bytes %.0f (%.1f MiB)\n",
             (long long)shapes[i][0], (long long)shapes[i][1], (long long)a.hq, (long long)a.hkv, (long long)a.d,
             kvb_format_name(a.fmt), a.fmt == LLMK_KV_INT4 ? (a.group == 32 ? " g32" : " g128") : "", (long long)a.page, kb,
             kb / MIB);
  }
  if (list) return 0;

  llmk_handle h;
  if (!kvb_open_handle("attention", use_cpu, &h)) return 1;
  a.gpu = !use_cpu;
  size_t copy_bytes = 0;
  const size_t want = largest > (double)(1024 * MIB) ? (size_t)largest : 1024 * MIB;
  const double copy = kvb_measure_copy(a.gpu, want, &copy_bytes);
  char backend[48];
  snprintf(backend, sizeof backend, "%s:%s", use_cpu ? "cpu" : "own", kvb_format_name(a.fmt));
  if (a.fmt == LLMK_KV_INT4) snprintf(backend + strlen(backend), sizeof backend - strlen(backend), "g%lld", (long long)a.group);
  if (a.page) snprintf(backend + strlen(backend), sizeof backend - strlen(backend), "/paged%lld", (long long)a.page);
  if (!a.json) {
    if (copy > 0) printf("device copy bandwidth: %.0f GB/s (%.2f GiB, graph replay)\n", copy, copy_bytes / 1073741824.0);
    printf("%-20s %5s %7s %10s %10s %10s %9s %7s %s\n", "format", "B", "T", "KV MiB", "us", "graph us", "GB/s", "copy%",
           "check");
  }
  int fails = 0;
  for (int i = 0; i < ns; i++) {
    const int64_t B = shapes[i][0], T = shapes[i][1];
    attn_result r;
    const int rc = bench_attention_shape(h, &a, B, T, &r);
    if (rc == 2) continue;
    if (rc) {
      fails++;
      continue;
    }
    fails += r.checked == 0;
    const double frac = copy > 0 ? r.gbps / copy : 0;
    if (a.json) {
      printf("{\"op\": \"attention_decode\", \"device\": \"%s\", \"shape\": {\"b\": %lld, \"t\": %lld, \"hq\": %lld, "
             "\"hkv\": %lld, \"d\": %lld}, \"dtype\": \"bf16\", \"format\": \"%s\", ",
             use_cpu ? "cpu" : cli_device_name(), (long long)B, (long long)T, (long long)a.hq, (long long)a.hkv,
             (long long)a.d, kvb_format_name(a.fmt));
      if (a.fmt == LLMK_KV_INT4) printf("\"int4_group\": %lld, ", (long long)a.group);
      printf("\"page_size\": %lld, \"splits\": %d, \"llmk_us\": %.3f, ", (long long)a.page, a.splits, r.us);
      if (r.graph_us > 0) printf("\"llmk_us_graph\": %.3f, ", r.graph_us);
      printf("\"backend\": \"%s\", \"kv_bytes\": %.0f, \"bytes\": %.0f, \"gbps\": %.1f, \"copy_gbps\": %.1f, "
             "\"copy_bytes\": %zu, \"frac_copy\": %.4f, \"graph_calls\": %d, \"cache_copies\": %d, \"fill\": \"%s\", "
             "\"checked\": %s",
             backend, r.kv_bytes, r.bytes, r.gbps, copy, copy_bytes, frac, r.graph_calls, r.copies,
             a.random_fill ? "random" : "write", r.checked < 0 ? "null" : r.checked ? "true" : "false");
      if (r.checked >= 0) printf(", \"max_rel_err\": %.3g", r.err);
      kvb_print_commit();
      printf("}\n");
    } else {
      char chk[32];
      if (r.checked < 0) snprintf(chk, sizeof chk, "-");
      else snprintf(chk, sizeof chk, "%s %.1e", r.checked ? "ok" : "FAILED", r.err);
      char gus[32];
      if (r.graph_us > 0) snprintf(gus, sizeof gus, "%.2f", r.graph_us);
      else snprintf(gus, sizeof gus, "-");
      printf("%-20s %5lld %7lld %10.1f %10.2f %10s %9.1f %6.1f%% %s\n", backend + 4 /* past "own:" or "cpu:" */,
             (long long)B, (long long)T, r.kv_bytes / MIB, r.us, gus, r.gbps, 100 * frac, chk);
    }
    fflush(stdout);
  }
  llmk_destroy(h);
  return fails ? 1 : 0;
}
