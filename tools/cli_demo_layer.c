/* The fourth part of `llmk demo` (the C twin of python -m llmk.demo): one
 * decode step of a Llama-3 decoder layer in FP8 against the same layer in
 * BF16, both built from llmk's ops, on random weights of the real Llama-3
 * 8B and 70B shapes, batch 16, context 4096.
 *
 * Per path: RMSNorm(x, n1) -> QKV projection -> RoPE (interleaved pairs,
 * theta 500000, Llama 3.1 scaling 8 / 1 / 4 / 8192) and the KV-cache write
 * at position `context` -> GQA decode attention over context + 1 tokens ->
 * output projection -> residual add fused into the second RMSNorm
 * (residual_out = x2) -> gate/up projection (one GEMM, gate rows then up
 * rows) -> SiLU(gate) * up -> down projection.
 *  FP8: weights quantized once per row to e4m3 (outside the step); the
 *   RMSNorms write e4m3 with row scales, the attention output is quantized
 *   per row, SiLU * up is quantized per row (llmk_silu_mul_quant), every
 *   projection is llmk_gemm_fp8 (row scaling); the KV cache is FP8 with one
 *   scale per token-head. By default the second RMSNorm writes two e4m3
 *   planes (hi and its residual lo) that the gate/up GEMM takes
 *   (fp8_planes / x_planes = 2); a one-plane row is shown beside it.
 *   LLMK_DEMO_PLANES=0 (or 1) runs the one-plane variant only.
 *  BF16: bf16 weights (the FP8 weights' source), bf16 activations,
 *   llmk_gemm_bf16, a BF16 cache, llmk_silu_mul_quant with a bf16 output.
 * Both caches hold the same random history (K, V ~ N(0, 1)), written by
 * llmk_kv_cache_write from one bf16 tensor.
 *
 * The layer's output is x2 + down. llmk has no elementwise add: that last
 * residual add is what the next layer's fused RMSNorm does, so neither
 * timed step includes it; it is computed here on the host, in double, from
 * the two bf16 tensors copied back.
 * Time: each path's whole step captured as one CUDA graph, median of 50
 * replays; the BF16 step is timed before and after the FP8 ones and the
 * better time kept. Without a GPU: a tiny layer on the CPU backend, the
 * error only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

int cli_demo_layer(llmk_handle h, int gpu);

#define LY_EPS 1e-5f
#define LY_REPS 50

typedef struct ly_model {
  const char *name;
  int64_t hidden, hq, hkv, d, inter, batch, ctx;
} ly_model;

static const ly_model MODELS[] = {{"8b", 4096, 32, 8, 128, 14336, 16, 4096},
                                  {"70b", 8192, 64, 8, 128, 28672, 16, 4096}};
static const ly_model TINY = {"tiny", 256, 8, 2, 64, 512, 2, 64};

static int op_failed(const char *what, llmk_status st) {
  fprintf(stderr, "demo: layer: %s: %s: %s\n", what, llmk_status_string(st), llmk_last_error());
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The layer                                                                 */
/* ------------------------------------------------------------------------ */

/* A weight [N, K]: bf16 (the BF16 path's), and its e4m3 codes with row scales. */
typedef struct ly_weight {
  llmk_tensor w, q, s;
} ly_weight;

/* What both paths read. */
typedef struct ly_inputs {
  llmk_tensor x, n1, n2;        /* x bf16 [B, H], norm weights bf16 [H] */
  ly_weight wqkv, wo, w13, w2;  /* [(Hq + 2 Hkv) D, H], [H, Hq D], [2F, H], [H, F] */
  llmk_tensor lens, pos;        /* i32 [B]: ctx + 1, ctx */
  llmk_tensor hk, hv;           /* the history, bf16 [B ctx, Hkv, D] */
  llmk_kv_loc hist;             /* offsets b ctx, start positions 0 */
} ly_inputs;

/* One path's step: everything its graph replays. */
typedef struct ly_step {
  llmk_handle h;
  const ly_inputs *in;
  int fp8, planes; /* planes: the fp8_planes of norm 2 / x_planes of gate/up (0 for BF16) */
  int64_t B, H, hq;
  llmk_kv_cache cache;
  llmk_kv_loc loc;
  llmk_rope_desc rope;
  llmk_attention_desc attn;
  /* GEMM inputs (hn, oq or o2, h2, a) are e4m3 with f32 row scales (hs, os, h2s, as) in FP8, bf16 in BF16 */
  llmk_tensor hn, hs, qkv, q, o, o2, oq, os, attn_out, x2, h2, h2s, gu, gate, up, a, as, down;
  void *h2_buf, *h2s_buf;
} ly_step;

static llmk_status lin(const ly_step *s, int planes, const llmk_tensor *x, const llmk_tensor *xs,
                       const ly_weight *w, const llmk_tensor *y, void *stream) {
  if (!s->fp8) return llmk_gemm_bf16(s->h, LLMK_GEMM_AUTO, x, &w->w, NULL, y, stream);
  const llmk_gemm_desc gd = {LLMK_GEMM_DESC_SIZE, LLMK_SCALING_ROW, LLMK_ACCUM_DEFAULT, LLMK_GEMM_AUTO, planes};
  return llmk_gemm_fp8(s->h, &gd, x, &w->q, xs, &w->s, NULL, y, stream);
}

static llmk_status run_step(void *ctx, void *stream) {
  const ly_step *s = ctx;
  const ly_inputs *in = s->in;
  const llmk_quantize_desc qd = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_ROW, 0, 0, NULL, NULL};
  const llmk_rmsnorm_desc nd1 = {LLMK_RMSNORM_DESC_SIZE, LY_EPS, 0}, nd2 = {LLMK_RMSNORM_DESC_SIZE, LY_EPS, s->planes};
  llmk_status st = llmk_rmsnorm(s->h, &nd1, &in->x, NULL, &in->n1, &s->hn, s->fp8 ? &s->hs : NULL, NULL, stream);
  if (!st) st = lin(s, 0, &s->hn, &s->hs, &in->wqkv, &s->qkv, stream);
  if (!st) st = llmk_rope_qkv_write(s->h, &s->rope, &s->qkv, s->hq, &s->cache, &s->loc, &s->q, stream);
  if (!st) st = llmk_attention_decode(s->h, &s->attn, &s->q, &s->cache, &in->lens, &s->o, NULL, stream);
  if (!st && s->fp8) st = llmk_quantize_fp8(s->h, &qd, &s->o2, &s->oq, &s->os, stream);
  if (!st) st = lin(s, 0, s->fp8 ? &s->oq : &s->o2, &s->os, &in->wo, &s->attn_out, stream);
  if (!st) /* x2 = attn_out + x (residual_out), h2 = RMSNorm(x2) * n2 */
    st = llmk_rmsnorm(s->h, &nd2, &s->attn_out, &in->x, &in->n2, &s->h2, s->fp8 ? &s->h2s : NULL, &s->x2, stream);
  if (!st) st = lin(s, s->planes, &s->h2, &s->h2s, &in->w13, &s->gu, stream);
  if (!st) st = llmk_silu_mul_quant(s->h, s->fp8 ? &qd : NULL, &s->gate, &s->up, &s->a, s->fp8 ? &s->as : NULL, stream);
  if (!st) st = lin(s, 0, &s->a, &s->as, &in->w2, &s->down, stream);
  return st; /* the layer's output x2 + down is the next layer's (fused) add */
}

/* norm 2 -> gate/up with one e4m3 plane (1), two (2), or bf16 (0). */
static void set_planes(ly_step *s, int planes) {
  s->planes = planes;
  s->h2 = planes == 2 ? llmk_tensor_3d(s->h2_buf, LLMK_E4M3, s->B, 2, s->H)
                      : llmk_tensor_2d(s->h2_buf, s->fp8 ? LLMK_E4M3 : LLMK_BF16, s->B, s->H, s->H);
  s->h2s = llmk_tensor_1d(s->h2s_buf, LLMK_F32, (planes == 2 ? 2 : 1) * s->B);
}

static int weight_init(llmk_handle h, cli_mem *m, ly_weight *w, int64_t N, int64_t K, uint64_t seed) {
  w->w = llmk_tensor_2d(cli_mem_alloc(m, (size_t)(N * K) * 2), LLMK_BF16, N, K, K);
  w->q = llmk_tensor_2d(cli_mem_alloc(m, (size_t)(N * K)), LLMK_E4M3, N, K, K);
  w->s = llmk_tensor_1d(cli_mem_alloc(m, (size_t)N * 4), LLMK_F32, N);
  if (m->failed || !cli_mem_fill(m, w->w.data, N * K, 0.0f, (float)(1.0 / sqrt((double)K)), seed)) return 0;
  const llmk_quantize_desc qd = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_ROW, 0, 0, NULL, NULL};
  const llmk_status st = llmk_quantize_fp8(h, &qd, &w->w, &w->q, &w->s, NULL);
  return st ? op_failed("weight quantization", st) : 1;
}

/* Random weights ~ N(0, 1/K) (unit-variance outputs), norm weights 1 + 0.1 N(0, 1), x and the history N(0, 1). */
static int inputs_init(llmk_handle h, cli_mem *m, const ly_model *md, ly_inputs *in) {
  const int64_t B = md->batch, H = md->hidden, T = md->ctx, hkv = md->hkv, D = md->d, F = md->inter;
  const size_t ib = sizeof(int32_t) * (size_t)(B + 1);
  memset(in, 0, sizeof *in);
  in->x = llmk_tensor_2d(cli_mem_alloc(m, (size_t)(B * H) * 2), LLMK_BF16, B, H, H);
  in->n1 = llmk_tensor_1d(cli_mem_alloc(m, (size_t)H * 2), LLMK_BF16, H);
  in->n2 = llmk_tensor_1d(cli_mem_alloc(m, (size_t)H * 2), LLMK_BF16, H);
  in->lens = llmk_tensor_1d(cli_mem_alloc(m, ib), LLMK_I32, B);
  in->pos = llmk_tensor_1d(cli_mem_alloc(m, ib), LLMK_I32, B);
  in->hist = (llmk_kv_loc)LLMK_KV_LOC_INIT;
  in->hist.offsets = llmk_tensor_1d(cli_mem_alloc(m, ib), LLMK_I32, B + 1);
  in->hist.start_pos = llmk_tensor_1d(cli_mem_alloc(m, ib), LLMK_I32, B);
  in->hk = llmk_tensor_3d(cli_mem_alloc(m, (size_t)(B * T * hkv * D) * 2), LLMK_BF16, B * T, hkv, D);
  in->hv = llmk_tensor_3d(cli_mem_alloc(m, (size_t)(B * T * hkv * D) * 2), LLMK_BF16, B * T, hkv, D);
  int32_t *idx = malloc(ib * 4);
  int ok = !m->failed && idx;
  for (int64_t b = 0; ok && b <= B; b++) {
    idx[b] = (int32_t)(T + 1), idx[(B + 1) + b] = (int32_t)T;
    idx[2 * (B + 1) + b] = (int32_t)(b * T), idx[3 * (B + 1) + b] = 0;
  }
  ok = ok && cli_mem_put(m, in->lens.data, idx, ib) && cli_mem_put(m, in->pos.data, idx + (B + 1), ib) &&
       cli_mem_put(m, in->hist.offsets.data, idx + 2 * (B + 1), ib) && cli_mem_put(m, in->hist.start_pos.data, idx + 3 * (B + 1), ib);
  free(idx);
  ok = ok && cli_mem_fill(m, in->x.data, B * H, 0.0f, 1.0f, 11) && cli_mem_fill(m, in->n1.data, H, 1.0f, 0.1f, 12) &&
       cli_mem_fill(m, in->n2.data, H, 1.0f, 0.1f, 13) && cli_mem_fill(m, in->hk.data, B * T * hkv * D, 0.0f, 1.0f, 14) &&
       cli_mem_fill(m, in->hv.data, B * T * hkv * D, 0.0f, 1.0f, 15);
  if (!ok) fprintf(stderr, "demo: layer: allocation or copy failed\n");
  return ok && weight_init(h, m, &in->wqkv, (md->hq + 2 * hkv) * D, H, 21) &&
         weight_init(h, m, &in->wo, H, md->hq * D, 22) && weight_init(h, m, &in->w13, 2 * F, H, 23) &&
         weight_init(h, m, &in->w2, H, F, 24);
}

/* Buffers and cache of one path; the cache gets the history. */
static int step_init(llmk_handle h, cli_mem *m, const ly_model *md, const ly_inputs *in, int fp8, ly_step *s) {
  const int64_t B = md->batch, H = md->hidden, HQ = md->hq, hkv = md->hkv, D = md->d, F = md->inter;
  const int64_t W = (HQ + 2 * hkv) * D, T = md->ctx + 1;
  const llmk_dtype act = fp8 ? LLMK_E4M3 : LLMK_BF16; /* GEMM inputs */
  const size_t ab = fp8 ? 1 : 2, cb = (size_t)(B * T * hkv * D) * ab;
  memset(s, 0, sizeof *s);
  s->h = h, s->in = in, s->fp8 = fp8, s->B = B, s->H = H, s->hq = HQ;
  s->hn = llmk_tensor_2d(cli_mem_alloc(m, (size_t)(B * H) * ab), act, B, H, H);
  s->qkv = llmk_tensor_2d(cli_mem_alloc(m, (size_t)(B * W) * 2), LLMK_BF16, B, W, W);
  s->q = llmk_tensor_3d(cli_mem_alloc(m, (size_t)(B * HQ * D) * 2), LLMK_BF16, B, HQ, D);
  s->o = llmk_tensor_3d(cli_mem_alloc(m, (size_t)(B * HQ * D) * 2), LLMK_BF16, B, HQ, D);
  s->o2 = llmk_tensor_2d(s->o.data, LLMK_BF16, B, HQ * D, HQ * D);
  s->attn_out = llmk_tensor_2d(cli_mem_alloc(m, (size_t)(B * H) * 2), LLMK_BF16, B, H, H);
  s->x2 = llmk_tensor_2d(cli_mem_alloc(m, (size_t)(B * H) * 2), LLMK_BF16, B, H, H);
  s->h2_buf = cli_mem_alloc(m, (size_t)(B * H) * ab * (fp8 ? 2 : 1));
  s->gu = llmk_tensor_2d(cli_mem_alloc(m, (size_t)(B * 2 * F) * 2), LLMK_BF16, B, 2 * F, 2 * F);
  s->gate = llmk_tensor_2d(s->gu.data, LLMK_BF16, B, F, 2 * F);
  s->up = llmk_tensor_2d(s->gu.data ? (char *)s->gu.data + F * 2 : NULL, LLMK_BF16, B, F, 2 * F);
  s->a = llmk_tensor_2d(cli_mem_alloc(m, (size_t)(B * F) * ab), act, B, F, F);
  s->down = llmk_tensor_2d(cli_mem_alloc(m, (size_t)(B * H) * 2), LLMK_BF16, B, H, H);
  s->cache = (llmk_kv_cache)LLMK_KV_CACHE_INIT;
  s->cache.format = fp8 ? LLMK_KV_FP8 : LLMK_KV_BF16;
  s->cache.k = llmk_tensor_4d(cli_mem_alloc(m, cb), act, B, T, hkv, D);
  s->cache.v = llmk_tensor_4d(cli_mem_alloc(m, cb), act, B, T, hkv, D);
  if (fp8) {
    s->hs = llmk_tensor_1d(cli_mem_alloc(m, (size_t)B * 4), LLMK_F32, B);
    s->oq = llmk_tensor_2d(cli_mem_alloc(m, (size_t)(B * HQ * D)), LLMK_E4M3, B, HQ * D, HQ * D);
    s->os = llmk_tensor_1d(cli_mem_alloc(m, (size_t)B * 4), LLMK_F32, B);
    s->h2s_buf = cli_mem_alloc(m, (size_t)(2 * B) * 4);
    s->as = llmk_tensor_1d(cli_mem_alloc(m, (size_t)B * 4), LLMK_F32, B);
    s->cache.k_param = llmk_tensor_3d(cli_mem_alloc(m, (size_t)(B * T * hkv) * 4), LLMK_F32, B, T, hkv);
    s->cache.v_param = llmk_tensor_3d(cli_mem_alloc(m, (size_t)(B * T * hkv) * 4), LLMK_F32, B, T, hkv);
  }
  if (m->failed) return fprintf(stderr, "demo: layer: allocation failed\n"), 0;
  set_planes(s, fp8 ? 1 : 0);
  s->loc = (llmk_kv_loc)LLMK_KV_LOC_INIT; /* offsets.data NULL: decode, row b is sequence b */
  s->loc.start_pos = in->pos;
  const llmk_rope_desc rope = {LLMK_ROPE_DESC_SIZE, LLMK_ROPE_INTERLEAVED, 0, 500000.0, 8.0, 1.0, 4.0, 8192.0};
  s->rope = rope;
  s->attn = (llmk_attention_desc)LLMK_ATTENTION_DESC_INIT;
  s->attn.softmax_scale = (float)(1.0 / sqrt((double)D));
  s->attn.max_seq_len = T;
  s->attn.num_splits = 0;
  const llmk_status st = llmk_kv_cache_write(h, &s->cache, &in->hk, &in->hv, &in->hist, NULL);
  return st ? op_failed("history write", st) : 1;
}

/* ------------------------------------------------------------------------ */
/* Runs, errors, table                                                       */
/* ------------------------------------------------------------------------ */

/* Runs (CPU) or times (GPU) the step and copies x2 and down back. 0 on failure. */
static int run_copy(ly_step *s, const cli_mem *m, const char *what, double *us, uint16_t *x2, uint16_t *down) {
  const size_t nb = (size_t)(s->B * s->H) * 2;
  char full[96];
  snprintf(full, sizeof full, "demo: layer: %s", what);
  if (m->gpu) {
    if (!cli_time_graph(full, run_step, s, LY_REPS, us)) return 0;
  } else {
    const llmk_status st = run_step(s, NULL);
    if (st) return op_failed(what, st);
  }
  if (!cli_mem_get(m, x2, s->x2.data, nb) || !cli_mem_get(m, down, s->down.data, nb))
    return fprintf(stderr, "demo: layer: copy failed\n"), 0;
  return 1;
}

/* Errors of out = x2 + down (in double) against the BF16 path's, and of the update out - x. */
static void rel_errs(const uint16_t *x, const uint16_t *x2r, const uint16_t *dr, const uint16_t *x2, const uint16_t *d,
                     int64_t n, double *e_out, double *e_upd) {
  double num = 0, den = 0, den_u = 0;
#pragma omp parallel for reduction(+ : num, den, den_u)
  for (int64_t i = 0; i < n; i++) {
    const double ref = (double)llmk_bf16_to_float(x2r[i]) + llmk_bf16_to_float(dr[i]);
    const double y = (double)llmk_bf16_to_float(x2[i]) + llmk_bf16_to_float(d[i]);
    const double u = ref - llmk_bf16_to_float(x[i]);
    num += (y - ref) * (y - ref), den += ref * ref, den_u += u * u;
  }
  *e_out = sqrt(num / den), *e_upd = sqrt(num / den_u); /* (y - x) - (ref - x) = y - ref */
}

static int run_model(llmk_handle h, int gpu, const ly_model *md, int two_planes) {
  const int64_t n = md->batch * md->hidden;
  cli_mem m;
  memset(&m, 0, sizeof m);
  m.gpu = gpu;
  ly_inputs in;
  ly_step s16, s8;
  /* host: x, then x2 and down of bf16, fp8 two planes, fp8 one plane */
  uint16_t *hb = malloc((size_t)n * 2 * 7);
  double us16 = 0, us16b = 0, us8[3] = {0, 0, 0};
  int ok = hb && inputs_init(h, &m, md, &in) && step_init(h, &m, md, &in, 0, &s16) &&
           step_init(h, &m, md, &in, 1, &s8) && cli_mem_get(&m, hb, in.x.data, (size_t)n * 2);
  char what[64];
  snprintf(what, sizeof what, "%s, bf16", md->name);
  ok = ok && run_copy(&s16, &m, what, &us16, hb + n, hb + 2 * n);
  for (int v = 1; v <= 2 && ok; v++) {
    if (v == 1 && !two_planes) continue;
    set_planes(&s8, v == 1 ? 2 : 1);
    snprintf(what, sizeof what, "%s, fp8 %s", md->name, v == 1 ? "2 planes" : "1 plane");
    ok = run_copy(&s8, &m, what, &us8[v], hb + (2 * v + 1) * n, hb + (2 * v + 2) * n);
    if (!ok && v == 1) fprintf(stderr, "demo: layer: LLMK_DEMO_PLANES=0 runs one plane only\n");
  }
  if (ok && gpu) { /* again, after the FP8 steps: the peer's best of two */
    snprintf(what, sizeof what, "demo: layer: %s, bf16 (again)", md->name);
    ok = cli_time_graph(what, run_step, &s16, LY_REPS, &us16b);
    if (ok && us16b < us16) us16 = us16b;
  }
  for (int v = 1; v <= 2 && ok; v++) {
    if (v == 1 && !two_planes) continue;
    double e, eu;
    rel_errs(hb, hb + n, hb + 2 * n, hb + (2 * v + 1) * n, hb + (2 * v + 2) * n, n, &e, &eu);
    char t16[16] = "-", t8[16] = "-", sp[16] = "-"; /* CPU times say nothing about speed */
    if (gpu) {
      snprintf(t16, sizeof t16, "%.1f", us16), snprintf(t8, sizeof t8, "%.1f", us8[v]);
      snprintf(sp, sizeof sp, "%.2fx", us16 / us8[v]);
    }
    printf("%-6s %-9s %10s %10s %8s %10.2e %14.2e\n", md->name, v == 1 ? "2 planes" : "1 plane", t16, t8, sp, e, eu);
  }
  cli_mem_release(&m);
  free(hb);
  return ok ? 0 : 1;
}

int cli_demo_layer(llmk_handle h, int gpu) {
  const char *env = getenv("LLMK_DEMO_PLANES");
  const int two_planes = !(env && atoi(env) <= 1);
  const ly_model *models = gpu ? MODELS : &TINY;
  const size_t nm = gpu ? sizeof MODELS / sizeof MODELS[0] : 1;
  printf("\nLlama-3 decoder layer, one decode step in FP8 (llmk) vs BF16 (llmk), batch %lld, context %lld\n"
         "Shows how far a whole FP8 decoder layer's output drifts from the BF16 layer's%s.\n",
         (long long)models[0].batch, (long long)models[0].ctx, gpu ? ", and the speedup" : "");
  if (!gpu)
    printf("CPU backend: a tiny layer (hidden %lld, %lld/%lld heads of %lld, MLP %lld), the error only\n",
           (long long)TINY.hidden, (long long)TINY.hq, (long long)TINY.hkv, (long long)TINY.d, (long long)TINY.inter);
  printf("%-6s %-9s %10s %10s %8s %10s %14s\n", "model", "fp8 x", "bf16 us", "fp8 us", "speedup", "rel err",
         "err of update");
  int rc = 0;
  for (size_t i = 0; i < nm && !rc; i++) rc = run_model(h, gpu, &models[i], two_planes);
  printf("Layer: RMSNorm, QKV, RoPE (Llama 3.1) + KV write, GQA decode attention over context + 1,\n"
         "O projection, residual add fused into RMSNorm, gate/up, SiLU * up, down.\n"
         "fp8: e4m3 weights and activations with row scales, FP8 KV cache (a scale per token-head);\n"
         "fp8 x = the gate/up GEMM's input: the second RMSNorm's e4m3 output in 2 planes (hi + lo\n"
         "residual, fp8_planes / x_planes = 2) or 1 (LLMK_DEMO_PLANES=0 runs 1 only). bf16: the same\n"
         "layer with llmk's bf16 ops, a BF16 cache. out = x2 + down: llmk has no elementwise add (the\n"
         "next layer's fused RMSNorm does it), so neither timed step includes this last residual add;\n"
         "it is computed on the host in double. rel err = ||out_fp8 - out_bf16|| / ||out_bf16||, err\n"
         "of update the same for out - x (Frobenius, double). Random weights ~ N(0, 1/K), x ~ N(0, 1).\n");
  if (gpu)
    printf("8b: hidden 4096, 32/8 heads of 128, MLP 14336; 70b: hidden 8192, 64/8 heads of 128, MLP 28672.\n"
           "time: each step as one CUDA graph, median of %d replays; bf16: the better of a run before\n"
           "and one after the fp8 runs.\n", LY_REPS);
  return rc;
}
