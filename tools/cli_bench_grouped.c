/* `llmk bench gemm --grouped`: the grouped (mixture-of-experts) GEMM on the
 * expert shapes of DeepSeek-V3, Llama 4 and Mixtral. For each model,
 * projection (gate+up or down) and batch size, the router is simulated
 * (each token picks top-k distinct experts, uniformly or with half the
 * picks on a tenth of the experts; DeepSeek-V3 keeps the picks that land on
 * this GPU's 32 of 256), sampled rows are checked against the CPU
 * reference, and the call is timed under a CUDA graph. Reported: us, the
 * bandwidth on the bytes that must move (the weights of the experts that
 * got rows, X and Y) and TFLOP/s. FBGEMM and torch run beside it in
 * bench/peer_gemm_grouped.py. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

#ifdef LLMK_WITH_CUDA
typedef struct moe_model {
  const char *name;
  int experts, local, topk; /* experts routed over, those on this GPU (the first `local`), picks per token */
  int64_t gate_up[2], down[2]; /* (N, K) */
} moe_model;

static const moe_model k_models[] = {
    {"deepseek-v3", 256, 32, 8, {4096, 7168}, {7168, 2048}},
    {"llama4-maverick", 128, 128, 1, {16384, 5120}, {5120, 8192}},
    {"llama4-scout", 16, 16, 1, {16384, 5120}, {5120, 8192}},
    {"mixtral-8x7b", 8, 8, 2, {28672, 4096}, {4096, 14336}},
};
static const int64_t k_batches[] = {1, 8, 32, 128, 512, 4096, 16384};

/* Rows per local expert for B tokens: each token's top-k distinct experts,
 * uniform or skewed (half the picks on the first tenth of the experts). */
static int64_t route(const moe_model *m, int64_t B, int skewed, uint64_t seed, int32_t *sizes) {
  uint64_t s = seed | 1;
  memset(sizes, 0, sizeof(int32_t) * (size_t)m->local);
  const int hot = m->experts / 10 > 0 ? m->experts / 10 : 1;
  int64_t T = 0;
  for (int64_t b = 0; b < B; b++) {
    int picked[16], np = 0;
    while (np < m->topk) {
      const uint64_t r = cli_rng_next(&s);
      const int e = skewed && (r & 1) ? (int)((r >> 8) % (uint64_t)hot) : (int)((r >> 8) % (uint64_t)m->experts);
      int dup = 0;
      for (int i = 0; i < np; i++) dup |= picked[i] == e;
      if (dup) continue;
      picked[np++] = e;
      if (e < m->local) sizes[e]++, T++;
    }
  }
  return T;
}

/* One problem on the device: W[g] is a base matrix rotated by g * 4099
 * elements (flat), so every expert differs while one host copy of the base
 * rebuilds any of them for the check. */
typedef struct gg_case {
  const moe_model *m;
  int64_t G, N, K, T, m_max, rows; /* rows of x: T (stacked) or G * m_max */
  llmk_dtype in;
  llmk_scaling sc;
  int masked;
  int32_t sizes[256];
  void *hx, *hbase;
  float *hxs, *hws;
  void *dx, *dw, *dxs, *dws, *dsizes, *dy;
} gg_case;

static int64_t rot_of(const gg_case *c, int64_t g) { return (g * 4099) % (c->N * c->K); }

static void gg_free(gg_case *c) {
  free(c->hx), free(c->hbase), free(c->hxs), free(c->hws);
  cli_dev_free(c->dx), cli_dev_free(c->dw), cli_dev_free(c->dxs), cli_dev_free(c->dws), cli_dev_free(c->dsizes);
  cli_dev_free(c->dy);
}

static void fill_operand(void *p, llmk_dtype in, int64_t n, uint64_t seed) {
  if (in == LLMK_BF16) {
    cli_fill_random(p, LLMK_BF16, n, 0.5f, 0.0, seed);
    return;
  }
  uint8_t *q = p;
  uint64_t s = seed | 1;
  for (int64_t i = 0; i < n; i++) {
    uint8_t v = (uint8_t)(cli_rng_next(&s) >> 56);
    if ((v & 0x78) >= 0x48) v &= 0xC7; /* keep |x| small: exponent field below 9 */
    q[i] = v;
  }
}

static float *rand_scales(int64_t n, uint64_t seed) {
  float *s = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
  uint64_t r = seed | 1;
  for (int64_t i = 0; s && i < n; i++) s[i] = 0.001f + 0.001f * (float)((cli_rng_next(&r) >> 40) % 1000) / 1000.0f;
  return s;
}

static int gg_init(gg_case *c) {
  const size_t es = c->in == LLMK_BF16 ? 2 : 1;
  const int64_t kb = (c->K + 127) / 128, nb = (c->N + 127) / 128, NK = c->N * c->K;
  c->m_max = 0;
  for (int64_t g = 0; g < c->G; g++) c->m_max = c->sizes[g] > c->m_max ? c->sizes[g] : c->m_max;
  c->m_max = (c->m_max + 7) / 8 * 8;
  c->rows = c->masked ? c->G * c->m_max : c->T;
  const int64_t nxs = c->sc == LLMK_SCALING_BLOCK ? c->rows * kb : c->rows;
  const int64_t nws = c->sc == LLMK_SCALING_BLOCK ? c->G * nb * kb : c->G * c->N;
  c->hx = malloc((size_t)(c->rows * c->K) * es + 1), c->hbase = malloc((size_t)NK * es);
  c->hxs = rand_scales(nxs, 5), c->hws = rand_scales(nws, 7);
  c->dx = cli_dev_alloc((size_t)(c->rows * c->K) * es + 1), c->dw = cli_dev_alloc((size_t)(c->G * NK) * es);
  c->dxs = cli_dev_alloc((size_t)nxs * 4 + 4), c->dws = cli_dev_alloc((size_t)nws * 4 + 4);
  c->dsizes = cli_dev_alloc((size_t)c->G * 4), c->dy = cli_dev_alloc((size_t)(c->rows * c->N) * 2 + 2);
  if (!c->hx || !c->hbase || !c->hxs || !c->hws || !c->dx || !c->dw || !c->dxs || !c->dws || !c->dsizes || !c->dy)
    return fprintf(stderr, "bench gemm --grouped: allocation failed (%s, N %lld, K %lld, %lld rows)\n", c->m->name,
                   (long long)c->N, (long long)c->K, (long long)c->rows),
           1;
  fill_operand(c->hx, c->in, c->rows * c->K, 11);
  fill_operand(c->hbase, c->in, NK, 13);
  int ok = cli_h2d(c->dx, c->hx, (size_t)(c->rows * c->K) * es) && cli_h2d(c->dxs, c->hxs, (size_t)nxs * 4) &&
           cli_h2d(c->dws, c->hws, (size_t)nws * 4) && cli_h2d(c->dsizes, c->sizes, (size_t)c->G * 4) &&
           cli_h2d(c->dw, c->hbase, (size_t)NK * es);
  for (int64_t g = 1; ok && g < c->G; g++) { /* W[g] = W[0] rotated */
    const int64_t o = rot_of(c, g);
    char *dst = (char *)c->dw + (size_t)(g * NK) * es;
    ok = cli_d2d(dst, (const char *)c->dw + (size_t)o * es, (size_t)(NK - o) * es) &&
         (o == 0 || cli_d2d(dst + (size_t)(NK - o) * es, c->dw, (size_t)o * es));
  }
  return ok ? 0 : 1;
}

typedef struct gg_op {
  llmk_handle h;
  llmk_grouped_gemm_desc d;
  llmk_tensor x, w, xs, ws, sizes, y;
  int fp8;
} gg_op;

static llmk_status run_grouped(void *ctx, void *stream) {
  gg_op *o = ctx;
  return llmk_gemm_grouped(o->h, &o->d, &o->x, &o->w, o->fp8 ? &o->xs : NULL, o->fp8 ? &o->ws : NULL, NULL,
                           &o->sizes, &o->y, stream);
}

static void make_op(gg_op *o, llmk_handle h, const gg_case *c) {
  memset(o, 0, sizeof *o);
  const llmk_grouped_gemm_desc d = LLMK_GROUPED_GEMM_DESC_INIT;
  const int64_t kb = (c->K + 127) / 128, nb = (c->N + 127) / 128;
  o->h = h, o->d = d, o->fp8 = c->in == LLMK_E4M3;
  o->d.layout = c->masked ? LLMK_GROUP_MASKED : LLMK_GROUP_STACKED, o->d.scaling = c->sc;
  o->x = c->masked ? llmk_tensor_3d(c->dx, c->in, c->G, c->m_max, c->K) : llmk_tensor_2d(c->dx, c->in, c->T, c->K, c->K);
  o->w = llmk_tensor_3d(c->dw, c->in, c->G, c->N, c->K);
  o->y = c->masked ? llmk_tensor_3d(c->dy, LLMK_BF16, c->G, c->m_max, c->N)
                   : llmk_tensor_2d(c->dy, LLMK_BF16, c->T, c->N, c->N);
  if (c->sc == LLMK_SCALING_BLOCK) {
    o->xs = c->masked ? llmk_tensor_3d(c->dxs, LLMK_F32, c->G, c->m_max, kb) : llmk_tensor_2d(c->dxs, LLMK_F32, c->T, kb, kb);
    o->ws = llmk_tensor_3d(c->dws, LLMK_F32, c->G, nb, kb);
  } else {
    o->xs = c->masked ? llmk_tensor_2d(c->dxs, LLMK_F32, c->G, c->m_max, c->m_max) : llmk_tensor_1d(c->dxs, LLMK_F32, c->T);
    o->ws = llmk_tensor_2d(c->dws, LLMK_F32, c->G, c->N, c->N);
  }
  o->sizes = llmk_tensor_1d(c->dsizes, LLMK_I32, c->G);
}

/* The first and last row of up to four groups that got rows, against the
 * CPU reference of that row and group; the worst relative error. */
static int check(const gg_case *c, double *worst) {
  const size_t es = c->in == LLMK_BF16 ? 2 : 1;
  const int64_t NK = c->N * c->K, kb = (c->K + 127) / 128, nb = (c->N + 127) / 128;
  llmk_handle cpu;
  if (llmk_create_cpu(&cpu)) return 0;
  uint8_t *wg = malloc((size_t)NK * es);
  uint16_t *gy = malloc((size_t)c->N * 2), *cy = malloc((size_t)c->N * 2);
  int ok = wg && gy && cy, checked = 0;
  *worst = 0;
  int64_t start = 0;
  for (int64_t g = 0; ok && g < c->G && checked < 4; g++) {
    const int64_t r0 = c->masked ? g * c->m_max : start, n = c->sizes[g];
    start += n;
    if (n == 0) continue;
    checked++;
    const int64_t o = rot_of(c, g);
    memcpy(wg, (const uint8_t *)c->hbase + (size_t)o * es, (size_t)(NK - o) * es);
    memcpy(wg + (size_t)(NK - o) * es, c->hbase, (size_t)o * es);
    for (int e = 0; ok && e < (n > 1 ? 2 : 1); e++) {
      const int64_t r = r0 + (e ? n - 1 : 0);
      llmk_tensor x = llmk_tensor_2d((uint8_t *)c->hx + (size_t)(r * c->K) * es, c->in, 1, c->K, c->K);
      llmk_tensor w = llmk_tensor_2d(wg, c->in, c->N, c->K, c->K);
      llmk_tensor y = llmk_tensor_2d(cy, LLMK_BF16, 1, c->N, c->N);
      llmk_status s;
      if (c->in == LLMK_BF16) {
        s = llmk_gemm_bf16(cpu, LLMK_GEMM_AUTO, &x, &w, NULL, &y, NULL);
      } else {
        llmk_gemm_desc d = LLMK_GEMM_DESC_INIT;
        d.scaling = c->sc;
        llmk_tensor xs = c->sc == LLMK_SCALING_BLOCK ? llmk_tensor_2d(c->hxs + r * kb, LLMK_F32, 1, kb, kb)
                                                     : llmk_tensor_1d(c->hxs + r, LLMK_F32, 1);
        llmk_tensor ws = c->sc == LLMK_SCALING_BLOCK ? llmk_tensor_2d(c->hws + g * nb * kb, LLMK_F32, nb, kb, kb)
                                                     : llmk_tensor_1d(c->hws + g * c->N, LLMK_F32, c->N);
        s = llmk_gemm_fp8(cpu, &d, &x, &w, &xs, &ws, NULL, &y, NULL);
      }
      ok = !s && cli_d2h(gy, (const uint16_t *)c->dy + r * c->N, (size_t)c->N * 2);
      double num = 0, den = 0;
      for (int64_t j = 0; ok && j < c->N; j++) {
        const double a = llmk_bf16_to_float(gy[j]), b = llmk_bf16_to_float(cy[j]);
        num += (a - b) * (a - b), den += b * b;
      }
      const double rel = den > 0 ? sqrt(num / den) : sqrt(num);
      if (rel > *worst) *worst = rel;
      if (!(rel <= 1e-2)) ok = 0;
    }
  }
  free(wg), free(gy), free(cy);
  llmk_destroy(cpu);
  return ok;
}

int cli_bench_gemm_grouped(int argc, char **argv) {
  const char *model = cli_arg(argc, argv, "--model", "all"), *which = cli_arg(argc, argv, "--which", "both");
  const char *routing = cli_arg(argc, argv, "--routing", "uniform"), *layout = cli_arg(argc, argv, "--layout", "stacked");
  const char *scaling = cli_arg(argc, argv, "--scaling", "row"), *dtype = cli_arg(argc, argv, "--dtype", "e4m3");
  const int64_t batch = cli_int(argc, argv, "--batch", 0);
  const int reps = (int)cli_int(argc, argv, "--reps", 20), json = cli_flag(argc, argv, "--json");
  const int skewed = !strcmp(routing, "skewed"), masked = !strcmp(layout, "masked");
  if (!skewed && strcmp(routing, "uniform")) return fprintf(stderr, "bench gemm: --routing must be uniform or skewed\n"), 2;
  if (!masked && strcmp(layout, "stacked")) return fprintf(stderr, "bench gemm: --layout must be stacked or masked\n"), 2;
  if (strcmp(which, "both") && strcmp(which, "gate_up") && strcmp(which, "down"))
    return fprintf(stderr, "bench gemm: --which must be gate_up, down or both\n"), 2;
  const llmk_dtype in = strcmp(dtype, "bf16") ? LLMK_E4M3 : LLMK_BF16;
  const llmk_scaling sc = !strcmp(scaling, "block") ? LLMK_SCALING_BLOCK : LLMK_SCALING_ROW;
  if (in == LLMK_E4M3 && strcmp(scaling, "row") && strcmp(scaling, "block"))
    return fprintf(stderr, "bench gemm: --grouped takes --scaling row or block (or --dtype bf16)\n"), 2;
  llmk_handle h;
  if (!cli_open_cuda("bench gemm", &h)) return 1;
  const double bw = cli_copy_gbps((size_t)1 << 30);
  if (!json)
    printf("grouped GEMM, %s%s, %s layout, %s routing; copy bandwidth %.0f GB/s\n%-16s %-7s %6s %7s %6s %10s %8s %8s %s\n",
           in == LLMK_BF16 ? "bf16" : "fp8 ", in == LLMK_BF16 ? "" : sc == LLMK_SCALING_BLOCK ? " block" : " row", layout,
           routing, bw, "model", "proj", "batch", "rows", "active", "us", "GB/s", "TFLOP/s", "check");
  int rc = 0;
  for (size_t mi = 0; mi < sizeof k_models / sizeof k_models[0]; mi++) {
    const moe_model *m = &k_models[mi];
    if (strcmp(model, "all") && strcmp(model, m->name)) continue;
    for (int p = 0; p < 2; p++) {
      if ((p == 0 && !strcmp(which, "down")) || (p == 1 && !strcmp(which, "gate_up"))) continue;
      for (size_t bi = 0; bi < sizeof k_batches / sizeof k_batches[0]; bi++) {
        const int64_t B = k_batches[bi];
        if (batch && B != batch) continue;
        if (masked && B > 128) continue; /* the masked layout is the decode one */
        gg_case c;
        memset(&c, 0, sizeof c);
        c.m = m, c.G = m->local, c.N = p ? m->down[0] : m->gate_up[0], c.K = p ? m->down[1] : m->gate_up[1];
        c.in = in, c.sc = sc, c.masked = masked;
        c.T = route(m, B, skewed, (uint64_t)(B * 1000003 + mi), c.sizes);
        int active = 0;
        for (int64_t g = 0; g < c.G; g++) active += c.sizes[g] > 0;
        if (gg_init(&c)) {
          gg_free(&c);
          rc = 1;
          continue;
        }
        gg_op o;
        make_op(&o, h, &c);
        double worst = 0;
        const llmk_status s = run_grouped(&o, NULL);
        const int ok = !s && check(&c, &worst);
        if (s) fprintf(stderr, "bench gemm --grouped: %s\n", llmk_last_error());
        if (!ok) rc = 1;
        double us = 0;
        if (!s && !cli_time_graph("bench gemm --grouped", run_grouped, &o, reps, &us)) rc = 1;
        const double es = in == LLMK_BF16 ? 2 : 1;
        const double bytes = es * ((double)active * c.N * c.K + (double)c.T * c.K) + 2.0 * c.T * c.N;
        const double gbps = us > 0 ? bytes / (us * 1e3) : 0, tflops = us > 0 ? 2.0 * c.T * c.N * c.K / (us * 1e6) : 0;
        if (json)
          printf("{\"op\": \"gemm_grouped\", \"device\": \"%s\", \"model\": \"%s\", \"which\": \"%s\", \"dtype\": \"%s\", "
                 "\"scaling\": \"%s\", \"layout\": \"%s\", \"routing\": \"%s\", \"groups\": %lld, \"topk\": %d, "
                 "\"batch_tokens\": %lld, \"tokens\": %lld, \"active_groups\": %d, \"shape\": {\"m\": %lld, \"n\": %lld, "
                 "\"k\": %lld}, \"llmk_us\": %.3f, \"gbps\": %.1f, \"copy_gbps\": %.1f, \"frac_copy\": %.4f, "
                 "\"tflops\": %.1f, \"checked\": %s, \"max_rel_err\": %.3g}\n",
                 cli_device_name(), m->name, p ? "down" : "gate_up", in == LLMK_BF16 ? "bf16" : "e4m3",
                 in == LLMK_BF16 ? "none" : sc == LLMK_SCALING_BLOCK ? "block" : "row", layout, routing,
                 (long long)c.G, m->topk, (long long)B, (long long)c.T, active, (long long)c.T, (long long)c.N,
                 (long long)c.K, us, gbps, bw, bw > 0 ? gbps / bw : 0, tflops, ok ? "true" : "false", worst);
        else
          printf("%-16s %-7s %6lld %7lld %6d %10.2f %8.0f %8.1f %s\n", m->name, p ? "down" : "gate_up", (long long)B,
                 (long long)c.T, active, us, gbps, tflops, ok ? "ok" : "FAILED");
        fflush(stdout);
        gg_free(&c);
      }
    }
  }
  llmk_destroy(h);
  return rc;
}
#else
int cli_bench_gemm_grouped(int argc, char **argv) {
  (void)argc, (void)argv;
  fprintf(stderr, "bench gemm: this llmk was built without CUDA\n");
  return 1;
}
#endif
