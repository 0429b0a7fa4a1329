/* The fifth part of `llmk demo`: one mixture-of-experts block in FP8
 * against the same block in BF16, both built from llmk's ops on random
 * weights of two real shapes:
 *  Llama-4-Scout-like: 16 experts, top 1 (sigmoid), H 5120, I 8192, one
 *   shared expert of I 8192; FP8 with row scales.
 *  DeepSeek-V3-like, one GPU's share: experts 0-31 of 256 on this GPU, top
 *   8 routed over all 256 (DeepSeek's group-limited router: 8 groups, 4
 *   kept, scaling 2.5), picks for the other experts dropped; H 7168, I
 *   2048, one shared expert of I 2048; FP8 with 1 x 128 activation and
 *   128 x 128 weight blocks.
 * Per path: router GEMM (bf16, the same in both) -> llmk_moe_route_permute
 * -> llmk_moe_gather_quant (FP8; a plain bf16 gather for
 * BF16) -> grouped gate/up -> llmk_silu_mul_quant (bf16 output for BF16)
 * -> grouped down -> the shared expert (dense gate/up, SiLU * up, down) ->
 * llmk_moe_combine adding the shared expert's output. Batches of 16 and
 * 128 tokens (decode) and 4096 (prefill). Time: each path's block captured
 * as one CUDA graph, median of replays. Without a GPU: a tiny block on the
 * CPU backend, the error only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

int cli_demo_moe(llmk_handle h, int gpu);

typedef struct moe_shape {
  const char *name;
  int64_t E, G, k, H, I, Is; /* routed over, local, picks, hidden, expert and shared inner dims */
  int block;                 /* FP8 with 1 x 128 / 128 x 128 blocks, else row scales */
  int deepseek;              /* DeepSeek's router (8 groups, 4 kept, scaling 2.5), else sigmoid top k */
} moe_shape;

static const moe_shape SHAPES[] = {{"scout", 16, 16, 1, 5120, 8192, 8192, 0, 0},
                                   {"deepseek", 256, 32, 8, 7168, 2048, 2048, 1, 1}};
static const moe_shape TINY[] = {{"tiny", 8, 8, 2, 256, 128, 128, 0, 0}, {"tiny-block", 16, 8, 4, 256, 128, 128, 1, 1}};
static const int64_t BATCHES[] = {16, 128, 4096};

/* A weight [rows, K] (rows = G N for experts): bf16, and e4m3 with its scales. */
typedef struct moe_weight {
  void *w, *q, *s;
  int64_t rows, K;
} moe_weight;

typedef struct moe_block {
  llmk_handle h;
  const moe_shape *sh;
  int fp8;
  int64_t B, R;
  void *x, *wr, *bias, *logits, *ids, *wts, *sizes, *row_of, *src_of, *xq, *xs, *y13, *aq, *as, *yd, *xsq, *xss, *s13,
      *saq, *sas, *sd, *out;
  moe_weight w13, w2, ws13, ws2;
} moe_block;

static int fail(const char *what, llmk_status st) {
  fprintf(stderr, "demo: moe: %s: %s: %s\n", what, llmk_status_string(st), llmk_last_error());
  return 0;
}

/* bf16 N(0, 1/K) weights and their FP8 form (row scales, or 128 x 128 blocks). */
static int weight_init(llmk_handle h, cli_mem *m, moe_weight *w, int64_t rows, int64_t K, int block, uint64_t seed) {
  const int64_t sn = block ? ((rows + 127) / 128) * ((K + 127) / 128) : rows;
  w->rows = rows, w->K = K;
  w->w = cli_mem_alloc(m, (size_t)(rows * K) * 2), w->q = cli_mem_alloc(m, (size_t)(rows * K));
  w->s = cli_mem_alloc(m, (size_t)sn * 4);
  if (m->failed || !cli_mem_fill(m, w->w, rows * K, 0.0f, 1.0f / sqrtf((float)K), seed)) return 0;
  llmk_quantize_desc d = LLMK_QUANTIZE_DESC_INIT;
  d.scaling = block ? LLMK_SCALING_BLOCK : LLMK_SCALING_ROW, d.block_m = 128, d.block_k = 128;
  llmk_tensor tw = llmk_tensor_2d(w->w, LLMK_BF16, rows, K, K), tq = llmk_tensor_2d(w->q, LLMK_E4M3, rows, K, K);
  llmk_tensor ts = block ? llmk_tensor_2d(w->s, LLMK_F32, (rows + 127) / 128, (K + 127) / 128, (K + 127) / 128)
                         : llmk_tensor_1d(w->s, LLMK_F32, rows);
  const llmk_status st = llmk_quantize_fp8(h, &d, &tw, &tq, &ts, NULL);
  return st ? fail("weight quantization", st) : 1;
}

/* An activation's FP8 scale tensor: [rows] or [rows, ceil(K/128)]. */
static llmk_tensor act_scale(void *p, int64_t rows, int64_t K, int block) {
  return block ? llmk_tensor_2d(p, LLMK_F32, rows, (K + 127) / 128, (K + 127) / 128) : llmk_tensor_1d(p, LLMK_F32, rows);
}

/* A grouped (G > 0: w [G, N, K]) or dense GEMM of x [M, K] into y [M, N]. */
static llmk_status gemm(const moe_block *b, int64_t G, const moe_weight *w, void *x, void *xs, int64_t M, int64_t K,
                        void *y, int64_t N, void *stream) {
  const int blk = b->sh->block;
  llmk_tensor ty = llmk_tensor_2d(y, LLMK_BF16, M, N, N);
  if (G > 0) {
    llmk_grouped_gemm_desc d = LLMK_GROUPED_GEMM_DESC_INIT;
    d.scaling = blk ? LLMK_SCALING_BLOCK : LLMK_SCALING_ROW;
    llmk_tensor tx = llmk_tensor_2d(x, b->fp8 ? LLMK_E4M3 : LLMK_BF16, M, K, K);
    llmk_tensor tw = llmk_tensor_3d(b->fp8 ? w->q : w->w, b->fp8 ? LLMK_E4M3 : LLMK_BF16, G, N, K);
    llmk_tensor txs = act_scale(xs, M, K, blk);
    llmk_tensor tws = blk ? llmk_tensor_3d(w->s, LLMK_F32, G, (N + 127) / 128, (K + 127) / 128)
                          : llmk_tensor_2d(w->s, LLMK_F32, G, N, N);
    llmk_tensor ts = llmk_tensor_1d(b->sizes, LLMK_I32, G);
    return llmk_gemm_grouped(b->h, &d, &tx, &tw, b->fp8 ? &txs : NULL, b->fp8 ? &tws : NULL, NULL, &ts, &ty, stream);
  }
  if (!b->fp8) {
    llmk_tensor tx = llmk_tensor_2d(x, LLMK_BF16, M, K, K), tw = llmk_tensor_2d(w->w, LLMK_BF16, N, K, K);
    return llmk_gemm_bf16(b->h, LLMK_GEMM_AUTO, &tx, &tw, NULL, &ty, stream);
  }
  llmk_gemm_desc d = LLMK_GEMM_DESC_INIT;
  d.scaling = blk ? LLMK_SCALING_BLOCK : LLMK_SCALING_ROW;
  llmk_tensor tx = llmk_tensor_2d(x, LLMK_E4M3, M, K, K), tw = llmk_tensor_2d(w->q, LLMK_E4M3, N, K, K);
  llmk_tensor txs = act_scale(xs, M, K, blk);
  llmk_tensor tws = blk ? llmk_tensor_2d(w->s, LLMK_F32, (N + 127) / 128, (K + 127) / 128, (K + 127) / 128)
                        : llmk_tensor_1d(w->s, LLMK_F32, N);
  return llmk_gemm_fp8(b->h, &d, &tx, &tw, &txs, &tws, NULL, &ty, stream);
}

/* SiLU(gate) * up of y [M, 2F] into a (e4m3 with scales, or bf16). */
static llmk_status silu(const moe_block *b, void *y, int64_t M, int64_t F, void *a, void *as, void *stream) {
  llmk_quantize_desc d = LLMK_QUANTIZE_DESC_INIT;
  d.scaling = b->sh->block ? LLMK_SCALING_BLOCK : LLMK_SCALING_ROW, d.block_m = 1, d.block_k = 128;
  llmk_tensor g = llmk_tensor_2d(y, LLMK_BF16, M, F, 2 * F), u = llmk_tensor_2d((uint16_t *)y + F, LLMK_BF16, M, F, 2 * F);
  llmk_tensor ta = llmk_tensor_2d(a, b->fp8 ? LLMK_E4M3 : LLMK_BF16, M, F, F), ts = act_scale(as, M, F, b->sh->block);
  return llmk_silu_mul_quant(b->h, b->fp8 ? &d : NULL, &g, &u, &ta, b->fp8 ? &ts : NULL, stream);
}

static llmk_status run_block(void *ctx, void *stream) {
  const moe_block *b = ctx;
  const moe_shape *sh = b->sh;
  const int64_t B = b->B, R = b->R, k = sh->k, H = sh->H, blk = sh->block;
  llmk_status st;
  /* router: logits = x W_r^T, then the top k */
  llmk_tensor tx = llmk_tensor_2d(b->x, LLMK_BF16, B, H, H), twr = llmk_tensor_2d(b->wr, LLMK_BF16, sh->E, H, H);
  llmk_tensor tl = llmk_tensor_2d(b->logits, LLMK_BF16, B, sh->E, sh->E);
  if ((st = llmk_gemm_bf16(b->h, LLMK_GEMM_AUTO, &tx, &twr, NULL, &tl, stream))) return st;
  llmk_moe_route_desc rd = LLMK_MOE_ROUTE_DESC_INIT;
  rd.k = (int32_t)k;
  if (sh->deepseek) rd.router = LLMK_MOE_DEEPSEEK, rd.renormalize = 1, rd.n_group = 8, rd.topk_group = 4, rd.scaling = 2.5f;
  else rd.router = LLMK_MOE_SIGMOID_TOPK;
  llmk_tensor tb = llmk_tensor_1d(b->bias, LLMK_F32, sh->E);
  llmk_tensor ti = llmk_tensor_2d(b->ids, LLMK_I32, B, k, k), tw = llmk_tensor_2d(b->wts, LLMK_F32, B, k, k);
  llmk_moe_permute_desc pd = LLMK_MOE_PERMUTE_DESC_INIT;
  llmk_tensor ts = llmk_tensor_1d(b->sizes, LLMK_I32, sh->G), tr = llmk_tensor_2d(b->row_of, LLMK_I32, B, k, k);
  llmk_tensor tsrc = llmk_tensor_1d(b->src_of, LLMK_I32, R);
  if ((st = llmk_moe_route_permute(b->h, &rd, &pd, &tl, rd.router == LLMK_MOE_DEEPSEEK ? &tb : NULL, &ti, &tw, &ts,
                                   NULL, &tr, &tsrc, stream)))
    return st;
  /* the routed experts */
  llmk_quantize_desc qd = LLMK_QUANTIZE_DESC_INIT;
  qd.scaling = blk ? LLMK_SCALING_BLOCK : LLMK_SCALING_ROW, qd.block_m = 1, qd.block_k = 128;
  llmk_tensor txq = llmk_tensor_2d(b->xq, b->fp8 ? LLMK_E4M3 : LLMK_BF16, R, H, H), txs = act_scale(b->xs, R, H, blk);
  if ((st = llmk_moe_gather_quant(b->h, b->fp8 ? &qd : NULL, &tx, &tsrc, (int32_t)k, &txq, b->fp8 ? &txs : NULL,
                                  stream)))
    return st;
  if ((st = gemm(b, sh->G, &b->w13, b->xq, b->xs, R, H, b->y13, 2 * sh->I, stream))) return st;
  if ((st = silu(b, b->y13, R, sh->I, b->aq, b->as, stream))) return st;
  if ((st = gemm(b, sh->G, &b->w2, b->aq, b->as, R, sh->I, b->yd, H, stream))) return st;
  /* the shared expert, on every token */
  void *xin = b->x, *xins = NULL;
  if (b->fp8) {
    llmk_tensor tq = llmk_tensor_2d(b->xsq, LLMK_E4M3, B, H, H), tqs = act_scale(b->xss, B, H, blk);
    if ((st = llmk_quantize_fp8(b->h, &qd, &tx, &tq, &tqs, stream))) return st;
    xin = b->xsq, xins = b->xss;
  }
  if ((st = gemm(b, 0, &b->ws13, xin, xins, B, H, b->s13, 2 * sh->Is, stream))) return st;
  if ((st = silu(b, b->s13, B, sh->Is, b->saq, b->sas, stream))) return st;
  if ((st = gemm(b, 0, &b->ws2, b->saq, b->sas, B, sh->Is, b->sd, H, stream))) return st;
  /* back in token order, weighted, plus the shared expert */
  llmk_tensor ty = llmk_tensor_2d(b->yd, LLMK_BF16, R, H, H), ta = llmk_tensor_2d(b->sd, LLMK_BF16, B, H, H);
  llmk_tensor to = llmk_tensor_2d(b->out, LLMK_BF16, B, H, H);
  return llmk_moe_combine(b->h, &ty, &tr, &tw, &ta, &to, stream);
}

/* One path's buffers; the weights and x are shared (from `w`). */
static int block_init(cli_mem *m, const moe_block *w, int fp8, moe_block *b) {
  *b = *w;
  b->fp8 = fp8;
  const moe_shape *sh = b->sh;
  const int64_t B = b->B, R = b->R, H = sh->H, es = fp8 ? 1 : 2, nb = (H + 127) / 128 + 1;
  const int64_t nbi = (sh->I + 127) / 128 + 1, nbs = (sh->Is + 127) / 128 + 1;
  b->logits = cli_mem_alloc(m, (size_t)(B * sh->E) * 2);
  b->ids = cli_mem_alloc(m, (size_t)(B * sh->k) * 4), b->wts = cli_mem_alloc(m, (size_t)(B * sh->k) * 4);
  b->sizes = cli_mem_alloc(m, (size_t)sh->G * 4), b->row_of = cli_mem_alloc(m, (size_t)(B * sh->k) * 4);
  b->src_of = cli_mem_alloc(m, (size_t)R * 4);
  b->xq = cli_mem_alloc(m, (size_t)(R * H * es)), b->xs = cli_mem_alloc(m, (size_t)(R * nb) * 4);
  b->y13 = cli_mem_alloc(m, (size_t)(R * 2 * sh->I) * 2);
  b->aq = cli_mem_alloc(m, (size_t)(R * sh->I * es)), b->as = cli_mem_alloc(m, (size_t)(R * nbi) * 4);
  b->yd = cli_mem_alloc(m, (size_t)(R * H) * 2);
  b->xsq = cli_mem_alloc(m, (size_t)(B * H)), b->xss = cli_mem_alloc(m, (size_t)(B * nb) * 4);
  b->s13 = cli_mem_alloc(m, (size_t)(B * 2 * sh->Is) * 2);
  b->saq = cli_mem_alloc(m, (size_t)(B * sh->Is * es)), b->sas = cli_mem_alloc(m, (size_t)(B * nbs) * 4);
  b->sd = cli_mem_alloc(m, (size_t)(B * H) * 2), b->out = cli_mem_alloc(m, (size_t)(B * H) * 2);
  return !m->failed;
}

static int run_shape(llmk_handle h, int gpu, const moe_shape *sh, int64_t B) {
  cli_mem m;
  memset(&m, 0, sizeof m);
  m.gpu = gpu;
  moe_block w, b16, b8;
  memset(&w, 0, sizeof w);
  w.h = h, w.sh = sh, w.B = B, w.R = B * sh->k;
  w.x = cli_mem_alloc(&m, (size_t)(B * sh->H) * 2), w.wr = cli_mem_alloc(&m, (size_t)(sh->E * sh->H) * 2);
  w.bias = cli_mem_alloc(&m, (size_t)sh->E * 4);
  int ok = !m.failed && cli_mem_fill(&m, w.x, B * sh->H, 0.0f, 1.0f, 11) &&
           cli_mem_fill(&m, w.wr, sh->E * sh->H, 0.0f, 1.0f / sqrtf((float)sh->H), 12) &&
           weight_init(h, &m, &w.w13, sh->G * 2 * sh->I, sh->H, sh->block, 13) &&
           weight_init(h, &m, &w.w2, sh->G * sh->H, sh->I, sh->block, 14) &&
           weight_init(h, &m, &w.ws13, 2 * sh->Is, sh->H, sh->block, 15) &&
           weight_init(h, &m, &w.ws2, sh->H, sh->Is, sh->block, 16) && block_init(&m, &w, 0, &b16) &&
           block_init(&m, &w, 1, &b8);
  /* DeepSeek's score correction bias, small and random, the same for both paths */
  float *bias = malloc((size_t)sh->E * 4);
  for (int64_t e = 0; bias && e < sh->E; e++) bias[e] = 0.01f * (float)((e * 7919) % 13 - 6);
  ok = ok && bias && cli_mem_put(&m, w.bias, bias, (size_t)sh->E * 4);
  free(bias);
  double us16 = 0, us8 = 0;
  llmk_status st = ok ? run_block(&b16, NULL) : LLMK_SUCCESS;
  if (st) ok = fail("bf16 block", st);
  st = ok ? run_block(&b8, NULL) : LLMK_SUCCESS;
  if (st) ok = fail("fp8 block", st);
  if (ok && gpu) {
    char what[64];
    snprintf(what, sizeof what, "demo: moe: %s B %lld bf16", sh->name, (long long)B);
    ok = cli_time_graph(what, run_block, &b16, 20, &us16);
    snprintf(what, sizeof what, "demo: moe: %s B %lld fp8", sh->name, (long long)B);
    ok = ok && cli_time_graph(what, run_block, &b8, 20, &us8);
  }
  const int64_t n = B * sh->H;
  uint16_t *o16 = malloc((size_t)n * 2), *o8 = malloc((size_t)n * 2);
  ok = ok && o16 && o8 && cli_mem_get(&m, o16, b16.out, (size_t)n * 2) && cli_mem_get(&m, o8, b8.out, (size_t)n * 2);
  if (ok) {
    /* the block's output, and the residual stream after it (x + output) */
    uint16_t *hx = malloc((size_t)n * 2);
    ok = hx && cli_mem_get(&m, hx, w.x, (size_t)n * 2);
    double num = 0, den = 0, rden = 0;
    for (int64_t i = 0; ok && i < n; i++) {
      const double r = llmk_bf16_to_float(o16[i]), d = llmk_bf16_to_float(o8[i]) - r;
      const double xr = llmk_bf16_to_float(hx[i]) + r;
      num += d * d, den += r * r, rden += xr * xr;
    }
    free(hx);
    char t16[16] = "-", t8[16] = "-", sp[16] = "-";
    if (gpu) snprintf(t16, sizeof t16, "%.1f", us16), snprintf(t8, sizeof t8, "%.1f", us8),
             snprintf(sp, sizeof sp, "%.2fx", us16 / us8);
    printf("%-10s %6lld %10s %10s %8s %10.2e %12.2e\n", sh->name, (long long)B, t16, t8, sp,
           sqrt(num / (den > 0 ? den : 1)), sqrt(num / (rden > 0 ? rden : 1)));
  }
  free(o16), free(o8);
  cli_mem_release(&m);
  return ok ? 0 : 1;
}

int cli_demo_moe(llmk_handle h, int gpu) {
  printf("\nOne MoE block, FP8 against BF16, both from llmk's ops: router GEMM, route, permute, gather\n"
         "(+ FP8 quantization), grouped gate/up, SiLU * up, grouped down, the shared expert, the\n"
         "weighted combine. scout: 16 experts, top 1, H 5120, I 8192, row-scaled FP8. deepseek:\n"
         "experts 0-31 of 256 here, top 8 (group-limited), H 7168, I 2048, 1x128 / 128x128 block FP8.\n"
         "rel err = ||out_fp8 - out_bf16|| / ||out_bf16|| (Frobenius, double); x + out err: the same\n"
         "difference over ||x + out_bf16||, the residual stream the next layer reads.%s\n\n",
         gpu ? " Times: each block as one CUDA graph." : " CPU backend: tiny blocks, no times.");
  printf("%-10s %6s %10s %10s %8s %10s %12s\n", "block", "tokens", "bf16 us", "fp8 us", "speedup", "rel err",
         "x + out err");
  int rc = 0;
  if (!gpu) {
    for (int i = 0; i < 2; i++) rc |= run_shape(h, 0, &TINY[i], 8);
    return rc;
  }
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 3; j++) rc |= run_shape(h, 1, &SHAPES[i], BATCHES[j]);
  return rc;
}
