/* fit_gemm_model: fits the GEMM dispatcher's cost model (src/cuda/gemm_model.h)
 * to measured sweeps and says how well it chooses on shapes it was not
 * fitted on. A developer tool: it reaches the library's internals (the
 * configuration list, the model) and runs on the CPU.
 *
 *   fit_gemm_model --occupancy cluster_occupancy.jsonl [--out src/cuda/gemm_model.inc]
 *                  [--folds 3] [--check holdout.jsonl] [--temp 0.02] [--time-weight 0.02]
 *                  [--prior 0.005] [--picks] [--verbose]
 *                  [--neighbours-out src/cuda/gemm_neighbours.inc] sweep.jsonl...
 *   fit_gemm_model --occupancy F --synthesize sweep.jsonl --shapes MxNxK,... [--kind row]
 *                  [--scale S]
 *
 * --picks lists every shape whose pick is 5% or more off the fastest;
 * --verbose prints the loss after each pass of the final fits.
 * --synthesize writes a sweep as `llmk tune gemm --dump` would, with every
 * candidate's time predicted by the constants in force with each family's
 * and cuBLASLt's constants multiplied by S (default 1.5) and 1 / S in turn:
 * a fit of it should find constants that choose as well as the truth (the
 * self-check in tests/check_fit_model.sh).
 *
 * The sweeps are `llmk tune gemm --dump` files (bench/gpu_run.sh gemm_sweep:
 * every own configuration and K split, and cuBLASLt, on the fit half of
 * bench/gemm_shapes.py); the occupancy file is bench/lab/cluster_occupancy's.
 * The fit minimizes the smooth regret of the dispatcher's pick plus a little
 * of the squared log error of every time and a pull toward the starting
 * constants (loss() below says how; --temp, --time-weight and --prior set
 * them), by coordinate descent on the logarithms of the constants within
 * bounded boxes, starting from the constants in force. What it
 * reports (stderr), per call kind, for the dispatcher's pick (the model's
 * least prediction where fitted, the measured backend rule elsewhere):
 *   start    the measured time of the pick over the fastest measured one
 *            (geometric mean, worst, share within 5%) with the constants
 *            in force
 *   cv       the same with the constants fitted without the shape's (N, K)
 *            pair: --folds groups of pairs, each left out once
 *   fit      the same, fitted on all of the kind's rows; kept only where
 *            cv beats start (geometric means)
 *   check    the regret on other sweeps (--check), e.g. held-out shapes
 *   nbrs     choosing by the nearest measured shapes instead
 *            (gemm_neighbours.h), each shape's (N, K) pair left out of the
 *            table; --neighbours-out writes the table for the kinds where
 *            this beats cv, start and cuBLASLt alone
 * and, for comparison, the regret of always running cuBLASLt. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "cuda/gemm_model.h"
#include "cuda/gemm_neighbours.h"
#include "cuda/gemm_own.h"
#include "cuda/heuristics.h"

static const char *const KINDS[4] = {"tensor", "row", "block", "bf16"};

typedef struct row {
  int kind, cfg, splits; /* cfg -1: cuBLASLt */
  int64_t m, n, k;
  double us;
  int shape;             /* index of (kind, m, n, k) in the shape list */
} row;

typedef struct rows {
  row *r;
  int n, cap;
} rows;

static const char *field(const char *line, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\": ", key);
  const char *p = strstr(line, pat);
  return p ? p + strlen(pat) : NULL;
}

static int read_sweep(const char *path, rows *out) {
  FILE *f = fopen(path, "r");
  if (!f) return fprintf(stderr, "fit_gemm_model: cannot read %s\n", path), 1;
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    const char *kind = field(line, "kind"), *backend = field(line, "backend"), *us = field(line, "us");
    if (!kind || !backend || !us) continue;
    row r = {-1, -1, 1, 0, 0, 0, atof(us), 0};
    for (int i = 0; i < 4; i++)
      if (!strncmp(kind + 1, KINDS[i], strlen(KINDS[i])) && kind[1 + strlen(KINDS[i])] == '"') r.kind = i;
    r.m = atoll(field(line, "m")), r.n = atoll(field(line, "n")), r.k = atoll(field(line, "k"));
    if (!strncmp(backend, "\"own\"", 5)) {
      const char *c = field(line, "config"), *s = field(line, "splits");
      if (!c || !s) continue;
      char name[96];
      if (sscanf(c, "\"%95[^\"]\"", name) != 1) continue;
      for (int i = 0; i < LLMK_GEMM_NUM_CFGS; i++)
        if (!strcmp(llmk_gemm_cfgs[i].name, name)) r.cfg = i;
      if (r.cfg < 0) {
        fprintf(stderr, "fit_gemm_model: %s: unknown configuration %s (skipped)\n", path, name);
        continue;
      }
      r.splits = atoi(s);
    }
    if (r.kind < 0 || r.us <= 0 || r.m < 1 || r.n < 1 || r.k < 1) continue;
    if (out->n == out->cap) {
      out->cap = out->cap ? 2 * out->cap : 4096;
      out->r = realloc(out->r, sizeof(row) * (size_t)out->cap);
      if (!out->r) return fprintf(stderr, "fit_gemm_model: out of memory\n"), 1;
    }
    out->r[out->n++] = r;
  }
  fclose(f);
  return 0;
}

static int read_occupancy(const char *path, llmk_gemm_device *d) {
  FILE *f = fopen(path, "r");
  if (!f) return fprintf(stderr, "fit_gemm_model: cannot read %s\n", path), 1;
  memset(d, 0, sizeof *d);
  d->cache_id = -1;
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    const char *sms = field(line, "sms"), *hbm = field(line, "hbm_gbps"), *c = field(line, "cluster"),
               *n = field(line, "max_active_clusters");
    if (!sms || !hbm || !c || !n) continue;
    d->sm_count = atoi(sms), d->hbm_gbps = atof(hbm);
    const int s = atoi(c);
    if (s >= 1 && s <= LLMK_GEMM_MAX_SPLITS) d->clusters[s] = atoi(n);
  }
  fclose(f);
  if (d->sm_count <= 0 || d->hbm_gbps <= 0 || d->clusters[1] <= 0)
    return fprintf(stderr, "fit_gemm_model: %s holds no occupancy rows\n", path), 1;
  return 0;
}

static double predict(const llmk_gemm_model_params *mp, const row *r, const llmk_gemm_device *d) {
  return r->cfg < 0 ? llmk_gemm_model_lt_us(mp, r->kind, r->m, r->n, r->k, d)
                    : llmk_gemm_model_own_us(mp, &llmk_gemm_cfgs[r->cfg], r->splits, r->m, r->n, r->k, d);
}

/* The constants as a vector of pointers, which rows each one moves, and
 * the box it is searched in. */
typedef struct param {
  double *v;
  double v0, lo, hi; /* the starting value and the bounds */
  int fam;           /* own family, or -2 for every own row, or -1 */
  int kind;          /* cuBLASLt kind (with cls), or -1 */
  int cls;
} param;

/* Hopper's dense tensor-core peak per SM and clock (FP8 4096 flops, BF16
 * 2048) at a 1.83 GHz boost, in TFLOPS: one CTA per SM cannot beat it. */
#define PEAK_FP8_SM 7.5
#define PEAK_BF16_SM 3.75

static double clampd(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

/* Each constant moves within [v0 / 4, v0 x 4] (efficiencies at most 1, tensor
 * rates at most the peak, unless the start is already beyond it): a
 * constant the sweep barely constrains cannot run off to a value no GPU
 * has, as it could when every pass re-centred the box. */
static param mk(double *v, int fam, int kind, int cls, double cap) {
  param p = {v, *v, *v / 4, *v * 4, fam, kind, cls};
  if (cap > 0 && p.hi > cap) p.hi = p.v0 > cap ? p.v0 : cap;
  return p;
}

static int params_of(llmk_gemm_model_params *mp, int sms, param *p) {
  int n = 0;
  p[n++] = mk(&mp->hbm_eff, -2, -1, 0, 1.0); /* every own row */
  for (int f = 0; f < LLMK_FAM_COUNT; f++) {
    const int bf16 = f == LLMK_FAM_BF16_SWAP || f == LLMK_FAM_BF16_SPLIT || f == LLMK_FAM_BF16_PERSIST ||
                     f == LLMK_FAM_GEMV;
    p[n++] = mk(&mp->fam[f].fixed_us, f, -1, 0, 0);
    p[n++] = mk(&mp->fam[f].sm_gbps, f, -1, 0, 0);
    p[n++] = mk(&mp->fam[f].mma_tflops, f, -1, 0, bf16 ? PEAK_BF16_SM : PEAK_FP8_SM);
    p[n++] = mk(&mp->fam[f].reduce_us, f, -1, 0, 0);
  }
  for (int k = 0; k < 4; k++)
    for (int c = 0; c < 2; c++) {
      p[n++] = mk(&mp->lt[k][c].fixed_us, -1, k, c, 0);
      p[n++] = mk(&mp->lt[k][c].mem_eff, -1, k, c, 1.0);
      p[n++] = mk(&mp->lt[k][c].tflops, -1, k, c, sms * (k == 3 ? PEAK_BF16_SM : PEAK_FP8_SM));
    }
  return n;
}

static int moves(const param *p, const row *r) {
  if (r->cfg < 0) return p->kind == r->kind && p->cls == (r->m > 128);
  if (p->fam == -2) return 1;
  return p->fam == (int)llmk_gemm_family_of(&llmk_gemm_cfgs[r->cfg]);
}

/* What the fit minimizes: the dispatcher's regret made smooth, plus a
 * little of the squared log error of every time, plus a pull toward the
 * starting constants.
 *   regret  per shape, the measured log(time / fastest) of each candidate
 *           the dispatcher considers, weighted by a softmax of its
 *           predicted log time at temperature TEMP: as TEMP falls this is
 *           the regret of the pick itself, and it is what choosing needs
 *           (the ranking near the top), not the exact time of a candidate
 *           three times too slow
 *   time    TIME_W x the squared log error of each prediction, which
 *           anchors constants the ranking alone leaves loose
 *   prior   PRIOR x rows x log(value / start)^2 per constant searched */
static double g_prior = 0.005, g_temp = 0.02, g_time_w = 0.02;
static int g_verbose = 0; /* 2: every pick 5% or more off the fastest */
static double *g_logp; /* per row: log predicted time (scratch) */
static double *g_lo, *g_z, *g_zr; /* per shape: softmax scratch */
static int considered(const row *r, const llmk_gemm_device *d);

static double loss(const llmk_gemm_model_params *mp, const rows *rs, const double *best, int nsh, const char *use,
                   const param *p, int np, const llmk_gemm_device *d) {
  double s = 0;
  int n = 0;
  for (int j = 0; j < nsh; j++) g_lo[j] = 1e300, g_z[j] = 0, g_zr[j] = 0;
  for (int i = 0; i < rs->n; i++) {
    const row *r = &rs->r[i];
    if (!use[i] || !considered(r, d)) continue;
    const double lp = log(predict(mp, r, d)), e = lp - log(r->us);
    g_logp[i] = lp;
    s += g_time_w * e * e, n++;
    if (lp < g_lo[r->shape]) g_lo[r->shape] = lp;
  }
  for (int i = 0; i < rs->n; i++) {
    const row *r = &rs->r[i];
    if (!use[i] || !considered(r, d)) continue;
    const double w = exp(-(g_logp[i] - g_lo[r->shape]) / g_temp);
    g_z[r->shape] += w, g_zr[r->shape] += w * log(r->us / best[r->shape]);
  }
  for (int j = 0; j < nsh; j++)
    if (g_z[j] > 0) s += g_zr[j] / g_z[j];
  for (int j = 0; j < np; j++) {
    const double l = log(*p[j].v / p[j].v0);
    s += g_prior * n * g_time_w * l * l;
  }
  return s;
}

/* Coordinate descent on log(value): a golden-section search per constant
 * within its box, passes until the loss stops falling. Constants that
 * start at 0 (a reduction the family never runs) stay there. */
static void fit(llmk_gemm_model_params *mp, const rows *rs, const double *best, int nsh, const char *use,
                const llmk_gemm_device *d, int verbose) {
  param p[1 + 4 * LLMK_FAM_COUNT + 24];
  const int np = params_of(mp, d->sm_count, p);
  double prev = loss(mp, rs, best, nsh, use, p, np, d);
  for (int pass = 0; pass < 12; pass++) {
    for (int i = 0; i < np; i++) {
      int any = 0;
      /* the DRAM efficiency is the device's, shared by every own row: fitted
       * on row-wise FP8 (the most measured kind) and held by the others */
      for (int j = 0; j < rs->n && !any; j++)
        any = use[j] && moves(&p[i], &rs->r[j]) && (p[i].fam != -2 || rs->r[j].kind == 1);
      if (!any || p[i].v0 <= 0) continue;
      double *v = p[i].v;
      double lo = log(p[i].lo), hi = log(p[i].hi);
      const double g = 0.6180339887, keep = *v;
      const double f0 = loss(mp, rs, best, nsh, use, &p[i], 1, d);
      double a = hi - g * (hi - lo), b = lo + g * (hi - lo);
      *v = exp(a);
      double fa = loss(mp, rs, best, nsh, use, &p[i], 1, d);
      *v = exp(b);
      double fb = loss(mp, rs, best, nsh, use, &p[i], 1, d);
      for (int it = 0; it < 40; it++) {
        if (fa < fb) {
          hi = b, b = a, fb = fa, a = hi - g * (hi - lo);
          *v = exp(a), fa = loss(mp, rs, best, nsh, use, &p[i], 1, d);
        } else {
          lo = a, a = b, fa = fb, b = lo + g * (hi - lo);
          *v = exp(b), fb = loss(mp, rs, best, nsh, use, &p[i], 1, d);
        }
      }
      /* the better end of the bracket, or the value it had if neither is better */
      const double fx = fa < fb ? fa : fb;
      *v = fx < f0 ? clampd(exp(fa < fb ? a : b), p[i].lo, p[i].hi) : keep;
    }
    const double now = loss(mp, rs, best, nsh, use, p, np, d);
    if (verbose) fprintf(stderr, "  pass %d: loss %.4f\n", pass, now);
    if (now > prev * 0.999) break;
    prev = now;
  }
}

/* Shapes: rows grouped by (kind, m, n, k), with the fastest time. */
typedef struct shape {
  int kind;
  int64_t m, n, k;
  double best_us, lt_us;
  int pair; /* index of (n, k) among the pairs */
} shape;

static int index_shapes(rows *rs, shape **out, int *npairs) {
  shape *s = NULL;
  int n = 0, cap = 0;
  int64_t(*pairs)[2] = NULL;
  int np = 0;
  for (int i = 0; i < rs->n; i++) {
    row *r = &rs->r[i];
    int j = 0;
    for (; j < n; j++)
      if (s[j].kind == r->kind && s[j].m == r->m && s[j].n == r->n && s[j].k == r->k) break;
    if (j == n) {
      if (n == cap) cap = cap ? 2 * cap : 256, s = realloc(s, sizeof(shape) * (size_t)cap);
      int q = 0;
      for (; q < np; q++)
        if (pairs[q][0] == r->n && pairs[q][1] == r->k) break;
      if (q == np) pairs = realloc(pairs, sizeof *pairs * (size_t)(np + 1)), pairs[np][0] = r->n, pairs[np][1] = r->k, np++;
      s[n++] = (shape){r->kind, r->m, r->n, r->k, 1e30, 1e30, q};
    }
    r->shape = j;
    if (r->us < s[j].best_us) s[j].best_us = r->us;
    if (r->cfg < 0 && r->us < s[j].lt_us) s[j].lt_us = r->us;
  }
  free(pairs);
  *out = s;
  *npairs = np;
  return n;
}

/* Whether the dispatcher would consider this measured candidate (the
 * same filter as its own search: llmk_gemm_model_candidate). */
static int considered(const row *r, const llmk_gemm_device *d) {
  if (r->cfg < 0) return 1;
  return llmk_gemm_model_candidate(&llmk_gemm_cfgs[r->cfg], r->splits, r->kind, r->m, r->n, r->k, d);
}

typedef struct regret {
  double log_sum, worst;
  int n, within5, lt_n;
  double lt_log_sum;
} regret;

static void add_pick(regret *out, double g) {
  out->log_sum += log(g), out->n++;
  out->within5 += g <= 1.05;
  if (g > out->worst) out->worst = g;
}

/* The dispatcher's pick per shape among the measured candidates, its
 * measured time over the best: the model's least prediction where mp is
 * fitted for the shape's kind and token class, else the least predicted
 * own candidate or cuBLASLt, as the measured rule (llmk_gemm_rule_own)
 * says. */
static void score(const llmk_gemm_model_params *mp, const rows *rs, const shape *sh, int nsh, const char *shape_use,
                  const llmk_gemm_device *d, regret *out) {
  memset(out, 0, sizeof *out);
  for (int j = 0; j < nsh; j++) {
    if (!shape_use[j]) continue;
    const int fitted = llmk_gemm_model_is_fitted(mp, sh[j].kind, sh[j].m);
    const int rule_own = llmk_gemm_rule_own(sh[j].kind, sh[j].m, sh[j].n, sh[j].k);
    double best_pred = 1e300, picked = 0;
    int pick_cfg = -1, pick_splits = 1;
    /* the rule's backend; where it has no measured candidate (cuBLASLt has
     * no algorithm for the shape), the other, as the dispatcher falls back */
    for (int any = 0; any < 2 && picked <= 0; any++)
      for (int i = 0; i < rs->n; i++) {
        const row *r = &rs->r[i];
        if (r->shape != j || !considered(r, d) || (!fitted && !any && (r->cfg >= 0) != rule_own)) continue;
        const double p = predict(mp, r, d);
        if (p < best_pred) best_pred = p, picked = r->us, pick_cfg = r->cfg, pick_splits = r->splits;
      }
    if (picked <= 0) continue;
    const double g = picked / sh[j].best_us;
    if (g_verbose > 1 && g > 1.05)
      fprintf(stderr, "    %s %lld x %lld x %lld: picked %s k%d %.2f us, fastest %.2f (%.2fx)\n", KINDS[sh[j].kind],
              (long long)sh[j].m, (long long)sh[j].n, (long long)sh[j].k,
              pick_cfg < 0 ? "cublaslt" : llmk_gemm_cfgs[pick_cfg].name, pick_splits, picked, sh[j].best_us, g);
    add_pick(out, g);
    if (sh[j].lt_us < 1e29) out->lt_log_sum += log(sh[j].lt_us / sh[j].best_us), out->lt_n++;
  }
}

static void report(const char *what, const regret *g) {
  if (!g->n) return;
  fprintf(stderr, "  %-8s %4d shapes: pick / fastest: geomean %.3f, worst %.2f, within 5%%: %d%%", what, g->n,
          exp(g->log_sum / g->n), g->worst, 100 * g->within5 / g->n);
  if (g->lt_n) fprintf(stderr, "; cuBLASLt alone: %.3f", exp(g->lt_log_sum / g->lt_n));
  fprintf(stderr, "\n");
}

/* The measured-neighbours table of the sweeps: per shape, every candidate's
 * best time (cuBLASLt: its best algorithm) over the shape's fastest. */
static llmk_gemm_nb_table build_neighbours(const rows *rs, const shape *sh, int nsh, llmk_gemm_nb_shape **ps,
                                           llmk_gemm_nb_cand **pc) {
  llmk_gemm_nb_shape *shapes = calloc((size_t)nsh + 1, sizeof *shapes);
  llmk_gemm_nb_cand *cands = calloc((size_t)rs->n + 1, sizeof *cands);
  int nc = 0;
  for (int j = 0; j < nsh; j++) {
    shapes[j] = (llmk_gemm_nb_shape){sh[j].kind, sh[j].m, sh[j].n, sh[j].k, nc, 0};
    for (int i = 0; i < rs->n; i++) {
      const row *r = &rs->r[i];
      if (r->shape != j) continue;
      const int splits = r->cfg < 0 ? 1 : r->splits;
      int e = shapes[j].first;
      while (e < nc && !(cands[e].cfg == r->cfg && cands[e].splits == splits)) e++;
      const float rel = (float)(r->us / sh[j].best_us);
      if (e == nc) cands[nc++] = (llmk_gemm_nb_cand){(int16_t)r->cfg, (int16_t)splits, rel};
      else if (rel < cands[e].rel) cands[e].rel = rel;
    }
    shapes[j].count = nc - shapes[j].first;
  }
  *ps = shapes, *pc = cands;
  return (llmk_gemm_nb_table){shapes, nsh, cands};
}

/* Choosing by neighbours, each shape with its own (N, K) pair left out of
 * the table: the measured time of the pick over the fastest. Shapes where
 * the table cannot choose, or picks a candidate the shape's sweep did not
 * time, are counted apart. */
static void score_neighbours(const llmk_gemm_nb_table *t, int kind, int unseen_m, const llmk_gemm_device *d,
                             regret *out, int *unscored) {
  memset(out, 0, sizeof *out);
  *unscored = 0;
  llmk_gemm_nb_shape *other = malloc(sizeof *other * (size_t)(t->nshapes + 1));
  for (int j = 0; j < t->nshapes; j++) {
    const llmk_gemm_nb_shape *s = &t->shapes[j];
    if (s->kind != kind) continue;
    /* unseen_m: the table without the shape's token count either, as for an M no sweep measured */
    llmk_gemm_nb_table u = *t;
    if (unseen_m) {
      u.shapes = other, u.nshapes = 0;
      for (int i = 0; i < t->nshapes; i++)
        if (t->shapes[i].m != s->m) other[u.nshapes++] = t->shapes[i];
    }
    int cfg, splits;
    double g = 0;
    if (llmk_gemm_neighbours_pick(&u, kind, s->m, s->n, s->k, d, s->n, s->k, &cfg, &splits))
      for (int e = s->first; e < s->first + s->count; e++)
        if (t->cands[e].cfg == cfg && t->cands[e].splits == splits) g = t->cands[e].rel;
    if (g <= 0) {
      ++*unscored;
      continue;
    }
    add_pick(out, g);
  }
  free(other);
}

static void write_neighbours(FILE *f, const llmk_gemm_nb_table *t, const int *keep, const char *device) {
  fprintf(f, "/* The dispatcher's measured neighbours (src/cuda/gemm_neighbours.h), written\n"
             " * by tools/fit_gemm_model.c from the sweeps (%s) for the kinds\n"
             " * where choosing by neighbours beat the cost model; do not edit. */\n",
          device);
  int ns = 0, nc = 0;
  fprintf(f, "static const llmk_gemm_nb_cand k_nb_cands[] = {\n");
  for (int j = 0; j < t->nshapes; j++) {
    const llmk_gemm_nb_shape *s = &t->shapes[j];
    if (!keep[s->kind]) continue;
    for (int e = s->first; e < s->first + s->count; e++) {
      const llmk_gemm_nb_cand *q = &t->cands[e];
      if (q->cfg < 0)
        fprintf(f, "    {-1, 1, %.4ff},\n", q->rel);
      else
        fprintf(f, "    {LLMK_CFG_%s, %d, %.4ff},\n", llmk_gemm_cfgs[q->cfg].name, q->splits, q->rel);
      nc++;
    }
  }
  if (!nc) fprintf(f, "    {-1, 1, 1.0f},\n");
  fprintf(f, "};\nstatic const llmk_gemm_nb_shape k_nb_shapes[] = {\n");
  nc = 0;
  for (int j = 0; j < t->nshapes; j++) {
    const llmk_gemm_nb_shape *s = &t->shapes[j];
    if (!keep[s->kind]) continue;
    fprintf(f, "    {%d, %lld, %lld, %lld, %d, %d},\n", s->kind, (long long)s->m, (long long)s->n, (long long)s->k, nc,
            s->count);
    nc += s->count, ns++;
  }
  if (!ns) fprintf(f, "    {-1, 0, 0, 0, 0, 0},\n");
  fprintf(f, "};\n#define K_NB_SHAPES %d\n", ns);
}

static void write_inc(FILE *f, const llmk_gemm_model_params *mp, const char *device, int nrows, int nshapes) {
  fprintf(f, "/* The cost model's constants (src/cuda/gemm_model.h), written by\n"
             " * tools/fit_gemm_model.c from %d measured candidates on %d shapes\n"
             " * (%s); do not edit. */\n",
          nrows, nshapes, device);
  fprintf(f, "static const llmk_gemm_model_params k_fitted = {\n    {%d, %d, %d, %d}, /* fitted token classes per kind: 1 M <= 128, 2 M > 128 */\n    %.4f,\n"
             "    {\n        /* fixed_us, sm_gbps, mma_tflops, reduce_us */\n",
          mp->fitted[0], mp->fitted[1], mp->fitted[2], mp->fitted[3], mp->hbm_eff);
  for (int i = 0; i < LLMK_FAM_COUNT; i++)
    fprintf(f, "        {%.3f, %.2f, %.4f, %.4f}, /* %s */\n", mp->fam[i].fixed_us, mp->fam[i].sm_gbps,
            mp->fam[i].mma_tflops, mp->fam[i].reduce_us, llmk_gemm_family_name((llmk_gemm_family)i));
  fprintf(f, "    },\n    {\n        /* fixed_us, mem_eff, tflops: M <= 128, M > 128 */\n");
  for (int k = 0; k < 4; k++)
    fprintf(f, "        {{%.3f, %.4f, %.2f}, {%.3f, %.4f, %.2f}}, /* %s */\n", mp->lt[k][0].fixed_us,
            mp->lt[k][0].mem_eff, mp->lt[k][0].tflops, mp->lt[k][1].fixed_us, mp->lt[k][1].mem_eff,
            mp->lt[k][1].tflops, KINDS[k]);
  fprintf(f, "    },\n};\n");
}

/* A sweep of predicted times under perturbed constants (see the top). */
static int synthesize(const char *path, const char *shapes, const char *kind_name, double scale,
                      const llmk_gemm_device *dev) {
  int kind = -1;
  for (int i = 0; i < 4; i++)
    if (!strcmp(kind_name, KINDS[i])) kind = i;
  if (kind < 0) return fprintf(stderr, "fit_gemm_model: --kind must be tensor, row, block or bf16\n"), 2;
  llmk_gemm_model_params mp = *llmk_gemm_model_fitted();
  for (int f = 0; f < LLMK_FAM_COUNT; f++) {
    const double a = f % 2 ? scale : 1 / scale;
    mp.fam[f].fixed_us *= a, mp.fam[f].sm_gbps /= a, mp.fam[f].mma_tflops *= a, mp.fam[f].reduce_us /= a;
  }
  for (int c = 0; c < 2; c++) mp.lt[kind][c].fixed_us *= scale, mp.lt[kind][c].tflops /= scale;
  FILE *f = fopen(path, "w");
  if (!f) return fprintf(stderr, "fit_gemm_model: cannot write %s\n", path), 1;
  for (const char *q = shapes; q && *q;) {
    long long M, N, K;
    int used = 0;
    if (sscanf(q, "%lldx%lldx%lld%n", &M, &N, &K, &used) != 3) break;
    q += used + (q[used] == ',');
    fprintf(f, "{\"kind\": \"%s\", \"m\": %lld, \"n\": %lld, \"k\": %lld, \"backend\": \"cublaslt\", "
               "\"lt_algo\": 0, \"us\": %.3f}\n",
            KINDS[kind], M, N, K, llmk_gemm_model_lt_us(&mp, kind, M, N, K, dev));
    for (int i = 0; i < LLMK_GEMM_NUM_CFGS; i++)
      for (int j = 0; j < LLMK_GEMM_MODEL_NSPLITS; j++) {
        const int sp = llmk_gemm_model_splits[j];
        if (!llmk_gemm_model_candidate(&llmk_gemm_cfgs[i], sp, kind, M, N, K, dev)) continue;
        fprintf(f, "{\"kind\": \"%s\", \"m\": %lld, \"n\": %lld, \"k\": %lld, \"backend\": \"own\", "
                   "\"config\": \"%s\", \"splits\": %d, \"us\": %.3f}\n",
                KINDS[kind], M, N, K, llmk_gemm_cfgs[i].name, sp,
                llmk_gemm_model_own_us(&mp, &llmk_gemm_cfgs[i], sp, M, N, K, dev));
      }
  }
  fclose(f);
  return 0;
}

int main(int argc, char **argv) {
  const char *nb_out = NULL;
  const char *occ = NULL, *out = NULL, *check = NULL, *synth = NULL, *shapes = NULL, *kind = "row";
  int folds = 3, verbose = 0;
  double scale = 1.5;
  rows rs = {0}, cs = {0};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--occupancy") && i + 1 < argc) occ = argv[++i];
    else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
    else if (!strcmp(argv[i], "--neighbours-out") && i + 1 < argc) nb_out = argv[++i];
    else if (!strcmp(argv[i], "--check") && i + 1 < argc) check = argv[++i];
    else if (!strcmp(argv[i], "--folds") && i + 1 < argc) folds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--verbose")) verbose = 1;
    else if (!strcmp(argv[i], "--picks")) g_verbose = 2;
    else if (!strcmp(argv[i], "--temp") && i + 1 < argc) g_temp = atof(argv[++i]);
    else if (!strcmp(argv[i], "--time-weight") && i + 1 < argc) g_time_w = atof(argv[++i]);
    else if (!strcmp(argv[i], "--prior") && i + 1 < argc) g_prior = atof(argv[++i]);
    else if (!strcmp(argv[i], "--synthesize") && i + 1 < argc) synth = argv[++i];
    else if (!strcmp(argv[i], "--shapes") && i + 1 < argc) shapes = argv[++i];
    else if (!strcmp(argv[i], "--kind") && i + 1 < argc) kind = argv[++i];
    else if (!strcmp(argv[i], "--scale") && i + 1 < argc) scale = atof(argv[++i]);
    else if (argv[i][0] == '-') return fprintf(stderr, "fit_gemm_model: unknown option %s\n", argv[i]), 2;
    else if (read_sweep(argv[i], &rs)) return 1;
  }
  llmk_gemm_device dev;
  if (synth) {
    if (!occ || !shapes || scale <= 0) return fprintf(stderr, "fit_gemm_model: --synthesize needs --occupancy and --shapes\n"), 2;
    return read_occupancy(occ, &dev) ? 1 : synthesize(synth, shapes, kind, scale, &dev);
  }
  if (!occ || !rs.n) {
    fprintf(stderr, "usage: fit_gemm_model --occupancy FILE [--out FILE.inc] [--folds N] [--check FILE] SWEEP...\n");
    return 2;
  }
  if (read_occupancy(occ, &dev)) return 1;
  if (check && read_sweep(check, &cs)) return 1;
  shape *sh;
  int npairs;
  const int nsh = index_shapes(&rs, &sh, &npairs);
  fprintf(stderr, "fit_gemm_model: %d candidates on %d shapes, %d (N, K) pairs; %d SMs, %.0f GB/s\n", rs.n, nsh,
          npairs, dev.sm_count, dev.hbm_gbps);
  char *use = malloc((size_t)rs.n), *shape_use = malloc((size_t)nsh);
  double *best = malloc(sizeof(double) * (size_t)nsh);
  for (int j = 0; j < nsh; j++) best[j] = sh[j].best_us;
  g_logp = malloc(sizeof(double) * (size_t)rs.n);
  g_lo = malloc(sizeof(double) * (size_t)nsh), g_z = malloc(sizeof(double) * (size_t)nsh);
  g_zr = malloc(sizeof(double) * (size_t)nsh);
  llmk_gemm_model_params start = *llmk_gemm_model_fitted(), mp = start;
  /* the token classes each kind has cuBLASLt and own measurements in */
  int classes[4] = {0, 0, 0, 0};
  for (int k = 0; k < 4; k++)
    for (int c = 0; c < 2; c++) {
      int own = 0, lt = 0;
      for (int i = 0; i < rs.n; i++)
        if (rs.r[i].kind == k && (rs.r[i].m > 128) == c) own += rs.r[i].cfg >= 0, lt += rs.r[i].cfg < 0;
      if (own && lt) classes[k] |= 1 << c;
    }

  /* Per kind: the dispatcher's regret with the constants in force, then
   * cross-validated (pairs in `folds` groups, each left out of a fit and
   * scored on it), then the fit on all of the kind's rows. The fit is
   * kept only if it chooses better on the left-out pairs than the
   * constants in force; otherwise the kind keeps them. */
  double start_geo[4] = {0, 0, 0, 0}, cv_geo[4] = {0, 0, 0, 0}, lt_geo[4] = {0, 0, 0, 0};
  for (int k = 0; k < 4; k++) {
    regret before, total = {0}, part;
    for (int j = 0; j < nsh; j++) shape_use[j] = sh[j].kind == k;
    score(&start, &rs, sh, nsh, shape_use, &dev, &before);
    if (!before.n) continue;
    fprintf(stderr, "%s:\n", KINDS[k]);
    report("start", &before);
    for (int f = 0; f < folds && folds > 1; f++) {
      llmk_gemm_model_params q = start;
      q.fitted[k] |= classes[k];
      for (int i = 0; i < rs.n; i++) use[i] = rs.r[i].kind == k && sh[rs.r[i].shape].pair % folds != f;
      fit(&q, &rs, best, nsh, use, &dev, 0);
      for (int j = 0; j < nsh; j++) shape_use[j] = sh[j].kind == k && sh[j].pair % folds == f;
      score(&q, &rs, sh, nsh, shape_use, &dev, &part);
      total.log_sum += part.log_sum, total.n += part.n, total.within5 += part.within5;
      total.lt_log_sum += part.lt_log_sum, total.lt_n += part.lt_n;
      if (part.worst > total.worst) total.worst = part.worst;
    }
    report("cv", &total);
    start_geo[k] = exp(before.log_sum / before.n);
    cv_geo[k] = total.n ? exp(total.log_sum / total.n) : 1e30;
    lt_geo[k] = before.lt_n ? exp(before.lt_log_sum / before.lt_n) : 1e30;
    llmk_gemm_model_params q = mp;
    q.fitted[k] |= classes[k];
    for (int i = 0; i < rs.n; i++) use[i] = rs.r[i].kind == k;
    fit(&q, &rs, best, nsh, use, &dev, verbose);
    for (int j = 0; j < nsh; j++) shape_use[j] = sh[j].kind == k;
    regret g;
    score(&q, &rs, sh, nsh, shape_use, &dev, &g);
    report("fit", &g);
    const int keep = folds > 1 && total.n && total.log_sum / total.n < before.log_sum / before.n;
    fprintf(stderr, "  %s\n", keep ? "kept: cross-validation chooses better than the constants in force"
                                    : "not kept: cross-validation chooses no better than the constants in force");
    if (keep) mp = q;
  }
  /* choosing by measured neighbours, validated leaving each shape's pair out;
   * kept for a kind where it beats the cost model's cross-validation, the
   * constants in force and cuBLASLt alone */
  llmk_gemm_nb_shape *nb_shapes;
  llmk_gemm_nb_cand *nb_cands;
  const llmk_gemm_nb_table nbt = build_neighbours(&rs, sh, nsh, &nb_shapes, &nb_cands);
  int nb_keep[4] = {0, 0, 0, 0};
  for (int k = 0; k < 4; k++) {
    regret g, gm;
    int unscored, unscored_m;
    score_neighbours(&nbt, k, 0, &dev, &g, &unscored);
    if (!g.n) continue;
    score_neighbours(&nbt, k, 1, &dev, &gm, &unscored_m);
    const double geo = exp(g.log_sum / g.n);
    nb_keep[k] = geo < cv_geo[k] && geo < start_geo[k] && geo < lt_geo[k];
    fprintf(stderr, "%s, by the %d nearest measured shapes (each shape's pair left out):\n", KINDS[k],
            LLMK_GEMM_NEIGHBOURS);
    report("nbrs", &g);
    report("nbrs, M", &gm);
    fprintf(stderr, "  (nbrs, M: the shape's token count left out too, as for an M no sweep measured; %d unscored)\n",
            unscored_m);
    fprintf(stderr, "  %d shapes it could not choose or score; %s\n", unscored,
            nb_keep[k] ? "kept: it chooses better than the cost model"
                       : "not kept: the cost model (or cuBLASLt alone) chooses as well");
  }
  if (nb_out) {
    FILE *f = fopen(nb_out, "w");
    if (!f) return fprintf(stderr, "fit_gemm_model: cannot write %s\n", nb_out), 1;
    char device[160];
    snprintf(device, sizeof device, "%d SMs, %.0f GB/s", dev.sm_count, dev.hbm_gbps);
    write_neighbours(f, &nbt, nb_keep, device);
    fclose(f);
  }
  free(nb_shapes), free(nb_cands);
  if (cs.n) {
    shape *csh;
    int cnp;
    const int ncs = index_shapes(&cs, &csh, &cnp);
    char *cu = malloc((size_t)ncs);
    for (int k = 0; k < 4; k++) {
      regret g;
      for (int j = 0; j < ncs; j++) cu[j] = csh[j].kind == k;
      score(&mp, &cs, csh, ncs, cu, &dev, &g);
      if (g.n) fprintf(stderr, "%s, other shapes (%s):\n", KINDS[k], check), report("check", &g);
    }
    free(cu);
    free(csh);
  }
  if (out) {
    FILE *f = fopen(out, "w");
    if (!f) return fprintf(stderr, "fit_gemm_model: cannot write %s\n", out), 1;
    char device[160];
    snprintf(device, sizeof device, "%d SMs, %.0f GB/s", dev.sm_count, dev.hbm_gbps);
    write_inc(f, &mp, device, rs.n, nsh);
    fclose(f);
  }
  free(use), free(shape_use), free(best), free(sh), free(rs.r), free(cs.r);
  free(g_logp), free(g_lo), free(g_z), free(g_zr);
  return 0;
}
