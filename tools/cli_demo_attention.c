/* The third part of `llmk demo`: one decode step of a Llama-3-70B attention
 * block (64 query heads, 8 KV heads of 128) for 16 sequences with 4096
 * tokens already cached, over a BF16, an FP8 (e4m3, one scale per
 * token-head) and an INT4 (group 32) KV cache.
 *
 * For each format the cache is filled from the same random bf16 K/V
 * history (llmk_kv_cache_write, offsets of 4096 rows per sequence), then
 * the step runs: llmk_rope_qkv_write of the new token's packed QKV
 * [16, (64 + 2 * 8) * 128] (neox rope as Hugging Face's Llama, theta
 * 500000, Llama 3.1 scaling 8 / 1 / 4 / 8192; decode form: offsets NULL,
 * start_pos 4096) and llmk_attention_decode (max_seq_len 4097).
 * Printed per format: the K/V bytes the step reads, its time (CUDA events
 * around rope + write + attention, L2 flushed, median), the speedup over
 * the BF16 cache, and the relative L2 error of the attention output
 * against the exact attention over the unquantized history: the CPU
 * backend's fp64 reference on a BF16 cache of the same inputs.
 * Without a GPU (or with --cpu) it runs on the CPU reference backend at 2
 * sequences x 256 tokens and shows the errors only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

int cli_demo_attention(llmk_handle h, int gpu);

#define AT_HQ 64
#define AT_HKV 8
#define AT_D 128
#define AT_QKV_W ((AT_HQ + 2 * AT_HKV) * AT_D)
#define AT_GROUP 32 /* INT4 group */
#define AT_B 16
#define AT_CTX 4096
#define AT_REPS 30

/* ------------------------------------------------------------------------ */
/* Memory of either backend (host for the CPU handle)                        */
/* ------------------------------------------------------------------------ */

static void *mem(int gpu, size_t n) { return gpu ? cli_dev_alloc(n) : malloc(n ? n : 1); }
static void mem_free(int gpu, void *p) {
  if (gpu)
    cli_dev_free(p);
  else
    free(p);
}
static int mem_put(int gpu, void *dst, const void *src, size_t n) {
  if (gpu) return cli_h2d(dst, src, n);
  memcpy(dst, src, n);
  return 1;
}
static int mem_get(int gpu, void *dst, const void *src, size_t n) {
  if (gpu) return cli_d2h(dst, src, n);
  memcpy(dst, src, n);
  return 1;
}

/* ------------------------------------------------------------------------ */
/* One backend's inputs, a cache, and the step                               */
/* ------------------------------------------------------------------------ */

/* The inputs of a run in one backend's memory (B sequences, ctx cached tokens each). */
typedef struct at_inputs {
  int64_t B, ctx;
  int gpu;              /* device memory; else host memory, k and v borrowed from the caller */
  void *k, *v;          /* history, bf16 [B ctx, Hkv, D]: sequence b's tokens are rows b ctx .. */
  void *qkv;            /* the new token, bf16 [B, (Hq + 2 Hkv) D] */
  void *q, *out;        /* rotated q and the attention output, bf16 [B, Hq, D] */
  int32_t *offsets;     /* [B + 1]: b ctx */
  int32_t *zeros;       /* [B]: the history starts at position 0 */
  int32_t *pos;         /* [B]: ctx, the new token's position */
  int32_t *lens;        /* [B]: ctx + 1 */
} at_inputs;

static void inputs_free(at_inputs *in) {
  const int gpu = in->gpu;
  if (gpu) mem_free(gpu, in->k), mem_free(gpu, in->v);
  void *const p[] = {in->qkv, in->q, in->out, in->offsets, in->zeros, in->pos, in->lens};
  for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) mem_free(gpu, p[i]);
  memset(in, 0, sizeof *in);
}

/* Allocates the inputs and fills them from the host's history hk, hv
 * (host memory: used in place, so they must outlive *in) and new token
 * hqkv; the index vectors are built here. 0 on failure. */
static int inputs_init(int gpu, int64_t B, int64_t ctx, uint16_t *hk, uint16_t *hv, const uint16_t *hqkv,
                       at_inputs *in) {
  const size_t kv = (size_t)(B * ctx * AT_HKV * AT_D) * 2, qb = (size_t)(B * AT_HQ * AT_D) * 2;
  const size_t ib = sizeof(int32_t) * (size_t)(B + 1);
  memset(in, 0, sizeof *in);
  in->B = B, in->ctx = ctx, in->gpu = gpu;
  in->k = gpu ? mem(gpu, kv) : hk, in->v = gpu ? mem(gpu, kv) : hv;
  in->qkv = mem(gpu, (size_t)(B * AT_QKV_W) * 2);
  in->q = mem(gpu, qb), in->out = mem(gpu, qb);
  in->offsets = mem(gpu, ib), in->zeros = mem(gpu, ib), in->pos = mem(gpu, ib), in->lens = mem(gpu, ib);
  int32_t *idx = malloc(ib * 4);
  int ok = in->k && in->v && in->qkv && in->q && in->out && in->offsets && in->zeros && in->pos && in->lens && idx;
  if (ok) {
    for (int64_t b = 0; b <= B; b++) {
      idx[b] = (int32_t)(b * ctx);
      idx[(B + 1) + b] = 0;
      idx[2 * (B + 1) + b] = (int32_t)ctx;
      idx[3 * (B + 1) + b] = (int32_t)(ctx + 1);
    }
    ok = (!gpu || (mem_put(gpu, in->k, hk, kv) && mem_put(gpu, in->v, hv, kv))) &&
         mem_put(gpu, in->qkv, hqkv, (size_t)(B * AT_QKV_W) * 2) && mem_put(gpu, in->offsets, idx, ib) &&
         mem_put(gpu, in->zeros, idx + (B + 1), ib) && mem_put(gpu, in->pos, idx + 2 * (B + 1), ib) &&
         mem_put(gpu, in->lens, idx + 3 * (B + 1), ib);
  }
  free(idx);
  if (!ok) fprintf(stderr, "demo: allocation or copy failed\n");
  return ok;
}

/* A contiguous cache [B, ctx + 1, Hkv, E] of one format. */
typedef struct at_cache {
  llmk_kv_format fmt;
  void *k, *v, *kp, *vp;
  llmk_kv_cache c;
} at_cache;

static size_t row_bytes(llmk_kv_format f) { return f == LLMK_KV_BF16 ? 2 * AT_D : f == LLMK_KV_INT4 ? AT_D / 2 : AT_D; }
static size_t param_bytes(llmk_kv_format f) {
  return f == LLMK_KV_FP8 ? 4 : f == LLMK_KV_INT4 ? 2 * (2 * AT_D / AT_GROUP) : 0;
}

static void cache_free(int gpu, at_cache *c) {
  mem_free(gpu, c->k), mem_free(gpu, c->v), mem_free(gpu, c->kp), mem_free(gpu, c->vp);
  c->k = c->v = c->kp = c->vp = NULL;
}

static int cache_alloc(int gpu, llmk_kv_format fmt, int64_t B, int64_t tmax, at_cache *c) {
  const size_t heads = (size_t)(B * tmax * AT_HKV), pb = param_bytes(fmt);
  memset(c, 0, sizeof *c);
  c->fmt = fmt;
  c->k = mem(gpu, heads * row_bytes(fmt)), c->v = mem(gpu, heads * row_bytes(fmt));
  if (pb) c->kp = mem(gpu, heads * pb), c->vp = mem(gpu, heads * pb);
  if (!c->k || !c->v || (pb && (!c->kp || !c->vp))) {
    fprintf(stderr, "demo: cache allocation failed\n");
    cache_free(gpu, c);
    return 0;
  }
  llmk_kv_cache *kc = &c->c;
  *kc = (llmk_kv_cache)LLMK_KV_CACHE_INIT;
  kc->format = fmt;
  kc->int4_group = fmt == LLMK_KV_INT4 ? AT_GROUP : 0;
  const llmk_dtype dt = fmt == LLMK_KV_BF16 ? LLMK_BF16 : fmt == LLMK_KV_INT4 ? LLMK_U8 : LLMK_E4M3;
  const int64_t e = fmt == LLMK_KV_INT4 ? AT_D / 2 : AT_D;
  kc->k = llmk_tensor_4d(c->k, dt, B, tmax, AT_HKV, e);
  kc->v = llmk_tensor_4d(c->v, dt, B, tmax, AT_HKV, e);
  if (fmt == LLMK_KV_FP8) {
    kc->k_param = llmk_tensor_3d(c->kp, LLMK_F32, B, tmax, AT_HKV);
    kc->v_param = llmk_tensor_3d(c->vp, LLMK_F32, B, tmax, AT_HKV);
  } else if (fmt == LLMK_KV_INT4) {
    kc->k_param = llmk_tensor_4d(c->kp, LLMK_F16, B, tmax, AT_HKV, 2 * AT_D / AT_GROUP);
    kc->v_param = llmk_tensor_4d(c->vp, LLMK_F16, B, tmax, AT_HKV, 2 * AT_D / AT_GROUP);
  }
  return 1;
}

/* The timed step: rope + cache write of the new token, then attention. */
typedef struct at_step {
  llmk_handle h;
  llmk_rope_desc rope;
  llmk_attention_desc attn;
  llmk_tensor qkv, q, out, lens;
  llmk_kv_loc loc;
  const llmk_kv_cache *cache;
} at_step;

static llmk_status run_step(void *ctx, void *stream) {
  at_step *s = ctx;
  llmk_status st = llmk_rope_qkv_write(s->h, &s->rope, &s->qkv, AT_HQ, s->cache, &s->loc, &s->q, stream);
  return st ? st : llmk_attention_decode(s->h, &s->attn, &s->q, s->cache, &s->lens, &s->out, NULL, stream);
}

/* Allocates a cache of format fmt, writes the history into it and runs
 * the step once (the output in in->out, poisoned with NaN before). *s is
 * left ready to replay. 0 on failure (message printed). */
static int fill_and_step(llmk_handle h, int gpu, llmk_kv_format fmt, const at_inputs *in, at_cache *c, at_step *s) {
  const int64_t B = in->B, ctx = in->ctx;
  if (!cache_alloc(gpu, fmt, B, ctx + 1, c)) return 0;
  const llmk_tensor k = llmk_tensor_3d(in->k, LLMK_BF16, B * ctx, AT_HKV, AT_D);
  const llmk_tensor v = llmk_tensor_3d(in->v, LLMK_BF16, B * ctx, AT_HKV, AT_D);
  llmk_kv_loc hist = LLMK_KV_LOC_INIT;
  hist.offsets = llmk_tensor_1d(in->offsets, LLMK_I32, B + 1);
  hist.start_pos = llmk_tensor_1d(in->zeros, LLMK_I32, B);
  memset(s, 0, sizeof *s);
  s->h = h;
  s->rope = (llmk_rope_desc)LLMK_ROPE_DESC_INIT;
  s->rope.style = LLMK_ROPE_NEOX;
  s->rope.rotary_dim = 0;
  s->rope.theta = 500000.0;
  s->rope.llama3_factor = 8.0, s->rope.low_freq_factor = 1.0, s->rope.high_freq_factor = 4.0;
  s->rope.original_max_position = 8192.0;
  s->attn = (llmk_attention_desc)LLMK_ATTENTION_DESC_INIT;
  s->attn.softmax_scale = (float)(1.0 / sqrt((double)AT_D));
  s->attn.max_seq_len = ctx + 1;
  s->attn.num_splits = 0;
  s->qkv = llmk_tensor_2d(in->qkv, LLMK_BF16, B, AT_QKV_W, AT_QKV_W);
  s->q = llmk_tensor_3d(in->q, LLMK_BF16, B, AT_HQ, AT_D);
  s->out = llmk_tensor_3d(in->out, LLMK_BF16, B, AT_HQ, AT_D);
  s->lens = llmk_tensor_1d(in->lens, LLMK_I32, B);
  s->loc = (llmk_kv_loc)LLMK_KV_LOC_INIT; /* offsets.data NULL: decode, row b is sequence b */
  s->loc.start_pos = llmk_tensor_1d(in->pos, LLMK_I32, B);
  s->cache = &c->c;
  const size_t ob = (size_t)(B * AT_HQ * AT_D) * 2;
  uint16_t *poison = malloc(ob);
  int ok = poison != NULL;
  if (ok) memset(poison, 0xFF, ob); /* bf16 NaN: an unwritten output shows in the error */
  ok = ok && mem_put(gpu, in->out, poison, ob);
  free(poison);
  if (!ok) {
    fprintf(stderr, "demo: allocation or copy failed\n");
    return 0;
  }
  llmk_status st = llmk_kv_cache_write(h, &c->c, &k, &v, &hist, NULL);
  if (!st) st = run_step(s, NULL);
  if (st) {
    fprintf(stderr, "demo: %s: %s\n", llmk_status_string(st), llmk_last_error());
    return 0;
  }
  return 1;
}

/* ------------------------------------------------------------------------ */
/* The section                                                               */
/* ------------------------------------------------------------------------ */

static double rel_err(const uint16_t *y, const uint16_t *ref, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    const double r = llmk_bf16_to_float(ref[i]), d = llmk_bf16_to_float(y[i]) - r;
    num += d * d, den += r * r;
  }
  return sqrt(num / den);
}

/* The reference: the CPU backend's step on a BF16 cache of the same
 * history and token (fp64 attention, rounded once to bf16) into ref. */
static int reference(int64_t B, int64_t ctx, uint16_t *hk, uint16_t *hv, const uint16_t *hqkv, uint16_t *ref) {
  llmk_handle cpu = NULL;
  if (llmk_create_cpu(&cpu)) {
    fprintf(stderr, "demo: %s\n", llmk_last_error());
    return 0;
  }
  at_inputs in;
  at_cache c;
  at_step s;
  memset(&c, 0, sizeof c);
  int ok = inputs_init(0, B, ctx, hk, hv, hqkv, &in) && fill_and_step(cpu, 0, LLMK_KV_BF16, &in, &c, &s);
  if (ok) memcpy(ref, in.out, (size_t)(B * AT_HQ * AT_D) * 2);
  cache_free(0, &c);
  inputs_free(&in);
  llmk_destroy(cpu);
  return ok;
}

/* The table's rows: reference, then each format's fill, step, error and time. */
static int run_section(llmk_handle h, int gpu, int64_t B, int64_t ctx) {
  const int64_t nkv = B * ctx * AT_HKV * AT_D, nout = B * AT_HQ * AT_D;
  uint16_t *hk = malloc((size_t)nkv * 2), *hv = malloc((size_t)nkv * 2);
  uint16_t *hqkv = malloc((size_t)(B * AT_QKV_W) * 2);
  uint16_t *ref = malloc((size_t)nout * 2), *y = malloc((size_t)nout * 2);
  at_inputs in;
  memset(&in, 0, sizeof in);
  int ok = hk && hv && hqkv && ref && y;
  if (!ok) fprintf(stderr, "demo: allocation failed\n");
  if (ok) {
    cli_fill_normal_bf16(hk, nkv, 0.0f, 1.0f, 7001);
    cli_fill_normal_bf16(hv, nkv, 0.0f, 1.0f, 7002);
    cli_fill_normal_bf16(hqkv, B * AT_QKV_W, 0.0f, 1.0f, 7003);
    ok = reference(B, ctx, hk, hv, hqkv, ref) && inputs_init(gpu, B, ctx, hk, hv, hqkv, &in);
  }
  static const struct {
    const char *name;
    llmk_kv_format fmt;
  } formats[] = {{"bf16", LLMK_KV_BF16}, {"fp8 (per token-head)", LLMK_KV_FP8}, {"int4 (group 32)", LLMK_KV_INT4}};
  double us_bf16 = 0;
  for (size_t f = 0; f < sizeof formats / sizeof formats[0] && ok; f++) {
    at_cache c;
    at_step s;
    memset(&c, 0, sizeof c);
    ok = fill_and_step(h, gpu, formats[f].fmt, &in, &c, &s) && mem_get(gpu, y, in.out, (size_t)nout * 2);
    cli_timing tm = {0, 0};
    if (ok && gpu) {
      const llmk_status st = cli_time_op(run_step, &s, AT_REPS, 0, &tm);
      if (st) fprintf(stderr, "demo: timing: %s: %s\n", llmk_status_string(st), llmk_last_error());
      ok = !st;
    } else if (ok) {
      const double t0 = cli_now_s();
      ok = !run_step(&s, NULL);
      tm.median_us = (cli_now_s() - t0) * 1e6;
    }
    if (ok) {
      if (f == 0) us_bf16 = tm.median_us;
      const double mb = (double)(B * (ctx + 1) * AT_HKV) * 2.0 *
                        (double)(row_bytes(formats[f].fmt) + param_bytes(formats[f].fmt)) / 1e6;
      /* the CPU reference's times say nothing about a GPU's: not shown */
      char speedup[16] = "-", us[16] = "-";
      if (gpu) snprintf(speedup, sizeof speedup, "%.2fx", us_bf16 / tm.median_us), snprintf(us, sizeof us, "%.1f", tm.median_us);
      printf("%-22s %12.1f %12s %9s %12.3e\n", formats[f].name, mb, us, speedup, rel_err(y, ref, nout));
    }
    cache_free(gpu, &c);
  }
  inputs_free(&in);
  free(hk), free(hv), free(hqkv), free(ref), free(y);
  return ok ? 0 : 1;
}

/* Title line of the section. */
static void print_title(int gpu, int64_t B, int64_t ctx) {
  printf("\nLlama-3-70B attention, one decode step (Hq %d, Hkv %d, D %d): %lld sequences x %lld cached tokens,\n"
         "KV cache in BF16, FP8 and INT4\n"
         "Shows what a quantized KV cache costs in attention accuracy%s.\n",
         AT_HQ, AT_HKV, AT_D, (long long)B, (long long)ctx, gpu ? ", and what it saves in bytes and time" : " and saves in bytes");
}

/* The section on handle h: B sequences, ctx cached tokens. gpu = 0 runs it
 * on a CPU handle with host memory and single untimed calls (a check of the
 * code path on a machine without a GPU; the demo itself skips it there). */
static int section(llmk_handle h, int gpu, int64_t B, int64_t ctx) {
  print_title(gpu, B, ctx);
  printf("%-22s %12s %12s %9s %12s\n", "KV cache", "KV MB read", "time (us)", "vs bf16", "rel. error");
  if (run_section(h, gpu, B, ctx)) return 1;
  printf("step = llmk_rope_qkv_write of the new token (packed QKV; neox rope as Hugging Face's Llama,\n"
         "theta 500000, Llama 3.1 scaling 8/1/4/8192) + llmk_attention_decode over %lld positions.\n"
         "rel. error = ||out - ref|| / ||ref|| over all %lldx%dx%d outputs; ref = exact attention over the\n"
         "unquantized history: the CPU backend (fp64, rounded once to bf16) on a BF16 cache, same inputs\n"
         "(K, V, QKV ~ N(0, 1) in bf16).\n%s\nKV MB read = K and V codes and scales of %lld x %lld positions.\n",
         (long long)(ctx + 1), (long long)B, AT_HQ, AT_D,
         gpu ? "The bf16 row is the GPU kernel's own error (fp32 sums, output rounding)."
             : "The bf16 row is 0: on the CPU backend it is the reference.",
         (long long)B, (long long)(ctx + 1));
  if (gpu)
    printf("time: CUDA events around each step, L2 flushed before it, median of %d.\n", AT_REPS);
  else
    printf("CPU reference backend, %lld sequences x %lld tokens: errors only (its times would say nothing\n"
           "about a GPU's).\n", (long long)B, (long long)ctx);
  return 0;
}

/* Without a GPU: the CPU reference backend at 2 sequences x 256 tokens. */
int cli_demo_attention(llmk_handle h, int gpu) { return gpu ? section(h, gpu, AT_B, AT_CTX) : section(h, 0, 2, 256); }
