/* fit_gemm_model: fits the GEMM dispatcher's cost model (src/cuda/gemm_model.h)
 * to measured sweeps and says how well it chooses on shapes it was not
 * fitted on. A developer tool: it reaches the library's internals (the
 * configuration list, the model) and runs on the CPU.
 *
 *   fit_gemm_model --occupancy cluster_occupancy.jsonl [--out src/cuda/gemm_model.inc]
 *                  [--folds 3] [--check holdout.jsonl] sweep.jsonl...
 *   fit_gemm_model --occupancy F --synthesize sweep.jsonl --shapes MxNxK,... [--kind row]
 *                  [--scale S]
 *
 * --synthesize writes a sweep as `llmk tune gemm --dump` would, with every
 * candidate's time predicted by the constants in force with each family's
 * and cuBLASLt's constants multiplied by S (default 1.5) and 1 / S in turn:
 * a fit of it should find constants that choose as well as the truth (the
 * self-check in tests/check_fit_model.sh).
 *
 * The sweeps are `llmk tune gemm --dump` files (bench/gpu_run.sh gemm_sweep:
 * every own configuration and K split, and cuBLASLt, on the fit half of
 * bench/gemm_shapes.py); the occupancy file is bench/lab/cluster_occupancy's.
 * The fit minimizes the squared log error of every measured candidate by
 * coordinate descent on the logarithms of the constants, starting from the
 * constants in force. What it reports (stderr), per call kind:
 *   regret   the measured time of the candidate the model picks over the
 *            fastest measured one (geometric mean, worst, share within 5%)
 *   cv       the same with the constants fitted without the shape's (N, K)
 *            pair: --folds groups of pairs, each left out once
 *   check    the regret on other sweeps (--check), e.g. held-out shapes
 * and, for comparison, the regret of always running cuBLASLt. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "cuda/gemm_model.h"
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

/* The constants as a vector of pointers, and which rows each one moves. */
typedef struct param {
  double *v;
  int fam;  /* own family, or -1 */
  int kind; /* cuBLASLt kind (with cls), or -1 */
  int cls;
} param;

static int params_of(llmk_gemm_model_params *mp, param *p) {
  int n = 0;
  p[n++] = (param){&mp->hbm_eff, -2, -1, 0}; /* every own row */
  for (int f = 0; f < LLMK_FAM_COUNT; f++) {
    p[n++] = (param){&mp->fam[f].fixed_us, f, -1, 0};
    p[n++] = (param){&mp->fam[f].sm_gbps, f, -1, 0};
    p[n++] = (param){&mp->fam[f].mma_tflops, f, -1, 0};
    p[n++] = (param){&mp->fam[f].reduce_us, f, -1, 0};
  }
  for (int k = 0; k < 4; k++)
    for (int c = 0; c < 2; c++) {
      p[n++] = (param){&mp->lt[k][c].fixed_us, -1, k, c};
      p[n++] = (param){&mp->lt[k][c].mem_eff, -1, k, c};
      p[n++] = (param){&mp->lt[k][c].tflops, -1, k, c};
    }
  return n;
}

static int moves(const param *p, const row *r) {
  if (r->cfg < 0) return p->kind == r->kind && p->cls == (r->m > 128);
  if (p->fam == -2) return 1;
  return p->fam == (int)llmk_gemm_family_of(&llmk_gemm_cfgs[r->cfg]);
}

/* Sum of squared log errors over the rows a parameter moves (use[i] set). */
static double loss(const llmk_gemm_model_params *mp, const rows *rs, const char *use, const param *p,
                   const llmk_gemm_device *d) {
  double s = 0;
  for (int i = 0; i < rs->n; i++) {
    if (!use[i] || (p && !moves(p, &rs->r[i]))) continue;
    const double e = log(predict(mp, &rs->r[i], d) / rs->r[i].us);
    s += e * e;
  }
  return s;
}

/* Coordinate descent on log(value): a golden-section search per constant
 * within [value / 8, value * 8] (mem_eff and hbm_eff capped at 1), sweeps
 * until the loss stops falling. */
static void fit(llmk_gemm_model_params *mp, const rows *rs, const char *use, const llmk_gemm_device *d, int verbose) {
  param p[1 + 4 * LLMK_FAM_COUNT + 24];
  const int np = params_of(mp, p);
  double prev = loss(mp, rs, use, NULL, d);
  for (int sweep = 0; sweep < 30; sweep++) {
    for (int i = 0; i < np; i++) {
      int any = 0;
      for (int j = 0; j < rs->n && !any; j++) any = use[j] && moves(&p[i], &rs->r[j]);
      if (!any) continue;
      double *v = p[i].v;
      const int eff = v == &mp->hbm_eff || (p[i].kind >= 0 && v == &mp->lt[p[i].kind][p[i].cls].mem_eff);
      const double base = *v > 1e-6 ? *v : 1e-3;
      double lo = log(base / 8), hi = log(eff ? (base * 8 < 1.0 ? base * 8 : 1.0) : base * 8);
      if (v == &mp->fam[p[i].fam >= 0 ? p[i].fam : 0].reduce_us && p[i].fam >= 0) lo = log(1e-3);
      const double g = 0.6180339887;
      double a = hi - g * (hi - lo), b = lo + g * (hi - lo);
      *v = exp(a);
      double fa = loss(mp, rs, use, &p[i], d);
      *v = exp(b);
      double fb = loss(mp, rs, use, &p[i], d);
      for (int it = 0; it < 40; it++) {
        if (fa < fb) {
          hi = b, b = a, fb = fa, a = hi - g * (hi - lo);
          *v = exp(a), fa = loss(mp, rs, use, &p[i], d);
        } else {
          lo = a, a = b, fa = fb, b = lo + g * (hi - lo);
          *v = exp(b), fb = loss(mp, rs, use, &p[i], d);
        }
      }
      *v = fa < fb ? exp(a) : exp(b);
      *v = *v; /* keep the better end */
    }
    const double now = loss(mp, rs, use, NULL, d);
    if (verbose) fprintf(stderr, "  sweep %d: loss %.4f\n", sweep, now);
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

/* The model's pick per shape among the measured candidates, its measured
 * time over the best. */
static void score(const llmk_gemm_model_params *mp, const rows *rs, const shape *sh, int nsh, const char *shape_use,
                  const llmk_gemm_device *d, regret *out) {
  memset(out, 0, sizeof *out);
  for (int j = 0; j < nsh; j++) {
    if (!shape_use[j]) continue;
    double best_pred = 1e300, picked = 0;
    for (int i = 0; i < rs->n; i++) {
      const row *r = &rs->r[i];
      if (r->shape != j || !considered(r, d)) continue;
      const double p = predict(mp, r, d);
      if (p < best_pred) best_pred = p, picked = r->us;
    }
    if (picked <= 0) continue;
    const double g = picked / sh[j].best_us;
    out->log_sum += log(g), out->n++;
    out->within5 += g <= 1.05;
    if (g > out->worst) out->worst = g;
    if (sh[j].lt_us < 1e29) out->lt_log_sum += log(sh[j].lt_us / sh[j].best_us), out->lt_n++;
  }
}

static void report(const char *what, const regret *g) {
  if (!g->n) return;
  fprintf(stderr, "  %-8s %4d shapes: model's pick / fastest: geomean %.3f, worst %.2f, within 5%%: %d%%", what, g->n,
          exp(g->log_sum / g->n), g->worst, 100 * g->within5 / g->n);
  if (g->lt_n) fprintf(stderr, "; cuBLASLt alone: %.3f", exp(g->lt_log_sum / g->lt_n));
  fprintf(stderr, "\n");
}

static void write_inc(FILE *f, const llmk_gemm_model_params *mp, const char *device, int nrows, int nshapes) {
  fprintf(f, "/* The cost model's constants (src/cuda/gemm_model.h), written by\n"
             " * tools/fit_gemm_model.c from %d measured candidates on %d shapes\n"
             " * (%s); do not edit. */\n",
          nrows, nshapes, device);
  fprintf(f, "static const llmk_gemm_model_params k_fitted = {\n    {%d, %d, %d, %d}, /* fitted kinds */\n    %.4f,\n"
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
  const char *occ = NULL, *out = NULL, *check = NULL, *synth = NULL, *shapes = NULL, *kind = "row";
  int folds = 3, verbose = 0;
  double scale = 1.5;
  rows rs = {0}, cs = {0};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--occupancy") && i + 1 < argc) occ = argv[++i];
    else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
    else if (!strcmp(argv[i], "--check") && i + 1 < argc) check = argv[++i];
    else if (!strcmp(argv[i], "--folds") && i + 1 < argc) folds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--verbose")) verbose = 1;
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
  llmk_gemm_model_params start = *llmk_gemm_model_fitted(), mp = start;

  /* cross-validation: pairs in `folds` groups, each left out once */
  for (int k = 0; k < 4; k++) {
    regret before, total = {0}, part;
    memset(shape_use, 0, (size_t)nsh);
    for (int j = 0; j < nsh; j++) shape_use[j] = sh[j].kind == k;
    score(&start, &rs, sh, nsh, shape_use, &dev, &before);
    if (!before.n) continue;
    fprintf(stderr, "%s:\n", KINDS[k]);
    report("start", &before);
    for (int f = 0; f < folds && folds > 1; f++) {
      llmk_gemm_model_params q = start;
      for (int i = 0; i < rs.n; i++) use[i] = rs.r[i].kind == k && sh[rs.r[i].shape].pair % folds != f;
      fit(&q, &rs, use, &dev, 0);
      for (int j = 0; j < nsh; j++) shape_use[j] = sh[j].kind == k && sh[j].pair % folds == f;
      score(&q, &rs, sh, nsh, shape_use, &dev, &part);
      total.log_sum += part.log_sum, total.n += part.n, total.within5 += part.within5;
      total.lt_log_sum += part.lt_log_sum, total.lt_n += part.lt_n;
      if (part.worst > total.worst) total.worst = part.worst;
    }
    report("cv", &total);
  }
  /* the final fit on everything; a kind with measured cuBLASLt and own rows counts as fitted */
  for (int i = 0; i < rs.n; i++) use[i] = 1;
  for (int k = 0; k < 4; k++) {
    int own = 0, lt = 0;
    for (int i = 0; i < rs.n; i++)
      if (rs.r[i].kind == k) own += rs.r[i].cfg >= 0, lt += rs.r[i].cfg < 0;
    if (own && lt) mp.fitted[k] = 1;
  }
  fit(&mp, &rs, use, &dev, verbose);
  for (int k = 0; k < 4; k++) {
    regret g;
    for (int j = 0; j < nsh; j++) shape_use[j] = sh[j].kind == k;
    score(&mp, &rs, sh, nsh, shape_use, &dev, &g);
    if (g.n) fprintf(stderr, "%s, fitted on all:\n", KINDS[k]), report("fit", &g);
  }
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
  free(use), free(shape_use), free(sh), free(rs.r), free(cs.r);
  return 0;
}
