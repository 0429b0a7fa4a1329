/* The calls of the all-reduce GPU tests (see tests/allreduce_ranks.h):
 * one eager call checked element by element (run_case), the size sweep's
 * sizes, the messages that need NCCL, the registered-buffer mode, and
 * calls captured in a CUDA graph and replayed (run_graph). */
#ifndef LLMK_TESTS_ALLREDUCE_CALLS_H
#define LLMK_TESTS_ALLREDUCE_CALLS_H

#include "allreduce_ranks.h"

#ifdef LLMK_WITH_CUDA
/* ------------------------------------------------------------------------ */
/* One eager call                                                            */
/* ------------------------------------------------------------------------ */

typedef struct arc {
  llmk_comm comm;
  llmk_dtype dt;
  int64_t n;
  llmk_allreduce_algo algo;
  int res, inplace, twod, reg;
  size_t xoff, yoff, roff; /* byte offsets from the buffers (misaligned pointers) */
  llmk_status want;
} arc;

static inline llmk_tensor view(void *p, llmk_dtype dt, int64_t n, int twod) {
  if (twod && n % 4 == 0 && n > 0) return llmk_tensor_2d(p, dt, 4, n / 4, n / 4);
  return llmk_tensor_1d(p, dt, n);
}

static inline void run_case(ctx *c, const arc *a) {
  const size_t es = llmk_dtype_size(a->dt), bytes = (size_t)a->n * es;
  const int k = c->call++;
  const int res = a->inplace && a->res == RES_Y ? RES_X : a->res;
  char lab[200];
  snprintf(lab, sizeof lab, "w%d rank %d %s %lld x %s (%zu B) res %s%s%s%s off %zu/%zu/%zu", c->world, c->rank,
           algo_name(a->algo), (long long)a->n, llmk_dtype_name(a->dt), bytes, res_names[res],
           a->inplace ? " in place" : "", a->reg ? " registered" : "", a->twod ? " 2-D" : "", a->xoff, a->yoff,
           a->roff);
  uint8_t *xbase = a->reg ? c->reg : c->dx;
  uint8_t *xp = xbase + a->xoff;
  uint8_t *yp = a->inplace ? xp : c->dy + a->yoff;
  uint8_t *rp = c->dr + a->roff;
  if (a->reg ? a->xoff + bytes > c->reg_bytes : a->xoff + bytes > c->cap) {
    CHECK(0, "%s: test buffer too small", lab);
    return;
  }
  /* inputs */
  fill_x(c->hx, a->dt, a->n, c->rank, k);
  if (!a->reg) T_CU(cudaMemsetAsync(xbase, POISON, a->xoff + bytes + GUARD, c->st));
  T_CU(cudaMemcpyAsync(xp, c->hx, bytes, cudaMemcpyHostToDevice, c->st));
  if (!a->inplace) {
    T_CU(cudaMemsetAsync(c->dy, POISON, a->yoff + bytes + GUARD, c->st));
    if (res == RES_Y) {
      fill_res(c->hr, a->dt, a->n);
      T_CU(cudaMemcpyAsync(yp, c->hr, bytes, cudaMemcpyHostToDevice, c->st));
    }
  }
  if (res == RES_SEP) {
    fill_res(c->hr, a->dt, a->n);
    T_CU(cudaMemcpyAsync(rp, c->hr, bytes, cudaMemcpyHostToDevice, c->st));
  }
  const int cmp_nccl = c->nccl && res == RES_NONE && a->want == LLMK_SUCCESS;
  if (cmp_nccl) {
    T_CU(cudaMemsetAsync(c->dn, POISON, bytes + GUARD, c->st));
    const int rc = c->nccl->AllReduce(xp, c->dn, (size_t)a->n, ranks_nccl_dtype(a->dt), RANKS_NCCL_SUM, c->ncomm,
                                      c->st);
    CHECK(rc == 0, "%s: ncclAllReduce: %s", lab, c->nccl->GetErrorString(rc));
  }
  llmk_tensor tx = view(xp, a->dt, a->n, a->twod), ty = view(yp, a->dt, a->n, a->twod);
  llmk_tensor tr = res == RES_SEP ? view(rp, a->dt, a->n, a->twod) : res == RES_X ? tx : ty;
  /* AUTO on a communicator without NCCL, where the size table prefers NCCL
   * for a message the own kernels could take: the header does not say
   * whether that "needs NCCL" (NOT_SUPPORTED) or falls back to an own
   * algorithm; either is accepted (and only SUCCESS is checked further). */
  const int ambiguous = a->want == LLMK_SUCCESS && a->algo == LLMK_ALLREDUCE_AUTO && !c->nccl && c->world > 1 &&
                        !a->reg && llmk_allreduce_choice(a->comm, bytes) == LLMK_ALLREDUCE_NCCL;
  prime();
  const llmk_status s = llmk_allreduce(a->comm, a->algo, &tx, res == RES_NONE ? NULL : &tr, &ty, c->st);
  if (ambiguous && s == LLMK_ERR_NOT_SUPPORTED) {
    c->auto_refused++;
  } else {
    CHECK(s == a->want, "%s: got %s, want %s (%s)", lab, llmk_status_string(s), llmk_status_string(a->want),
          s ? llmk_last_error() : "");
  }
  if (s != LLMK_SUCCESS)
    CHECK(llmk_last_error()[0] && strcmp(llmk_last_error(), primed), "%s: %s without a message of its own", lab,
          llmk_status_string(s));
  if (a->reg && s == LLMK_SUCCESS) /* the next input may be written as soon as the call is done */
    T_CU(cudaMemsetAsync(xbase, 0xFF, a->xoff + bytes, c->st));
  const size_t span = bytes + (a->reg && a->inplace ? 0 : GUARD);
  T_CU(cudaMemcpyAsync(c->hy, yp, span, cudaMemcpyDeviceToHost, c->st));
  if (cmp_nccl) T_CU(cudaMemcpyAsync(c->hn, c->dn, bytes, cudaMemcpyDeviceToHost, c->st));
  T_CU(cudaStreamSynchronize(c->st));
  T_CU(cudaGetLastError());

  if (s != LLMK_SUCCESS) {
    if (!a->inplace && res != RES_Y) {
      size_t bad = 0;
      for (size_t i = 0; i < span; i++) bad += c->hy[i] != POISON;
      CHECK(bad == 0, "%s: failed with %s but wrote %zu bytes of y", lab, llmk_status_string(s), bad);
    }
    return;
  }
  if (a->want != LLMK_SUCCESS) return;
  /* expected: the sum over ranks, by i mod 17, plus the residual */
  int sum17[17];
  for (int j = 0; j < 17; j++) {
    sum17[j] = 0;
    for (int r = 0; r < c->world; r++) sum17[j] += xval(j, r, k);
  }
  int64_t bad = 0;
  int j17 = 0, j5 = 0;
  const int di = dt_index(a->dt);
  for (int64_t i = 0; i < a->n; i++) {
    int v = sum17[j17];
    if (res == RES_SEP || res == RES_Y) v += j5 - 2;
    else if (res == RES_X) v += xval(j17, c->rank, k);
    const uint32_t want = enc_tab[di][v + VMAX], got = bits_at(c->hy, a->dt, i);
    if (got != want && bad++ < 4)
      fprintf(stderr, "  %s: y[%lld] = %g (0x%x), want %d\n", lab, (long long)i, bits_value(a->dt, got), got, v);
    if (++j17 == 17) j17 = 0;
    if (++j5 == 5) j5 = 0;
  }
  CHECK(bad == 0, "%s: %lld of %lld elements wrong", lab, (long long)bad, (long long)a->n);
  if (span > bytes) {
    size_t gbad = 0;
    for (size_t i = bytes; i < span; i++) gbad += c->hy[i] != POISON;
    CHECK(gbad == 0, "%s: %zu bytes written past the output", lab, gbad);
  }
  if (cmp_nccl)
    CHECK(memcmp(c->hn, c->hy, bytes) == 0, "%s: llmk's output differs from ncclAllReduce's", lab);
  if (res != RES_X) c->hash = ranks_hash(c->hash, c->hy, bytes); /* residual = own x differs by rank */
}

static inline arc mk(llmk_comm comm, llmk_dtype dt, int64_t n, llmk_allreduce_algo algo, int res, int inplace) {
  arc a;
  memset(&a, 0, sizeof a);
  a.comm = comm;
  a.dt = dt;
  a.n = n;
  a.algo = algo;
  a.res = res;
  a.inplace = inplace;
  a.want = LLMK_SUCCESS;
  return a;
}

static const llmk_dtype dts[3] = {LLMK_BF16, LLMK_F16, LLMK_F32};
static const llmk_allreduce_algo own_algos[3] = {LLMK_ALLREDUCE_ONESHOT, LLMK_ALLREDUCE_TWOSHOT,
                                                 LLMK_ALLREDUCE_AUTO};
/* (in place, residual) */
static const int variants[7][2] = {{0, RES_NONE}, {0, RES_SEP}, {0, RES_X}, {0, RES_Y},
                                   {1, RES_NONE}, {1, RES_SEP}, {1, RES_X}};

/* Sizes (bytes, multiples of 16) of the sweep up to `limit`. */
static inline int sweep_sizes(size_t limit, size_t *out, int max) {
  int n = 0;
  for (size_t b = 16; b <= limit && b <= ((size_t)64 << 20) && n < max; b *= 2) out[n++] = b;
  static const size_t odd[] = {48, 1000 * 16 + 16, 16 * 12345};
  for (size_t i = 0; i < sizeof odd / sizeof odd[0] && n < max; i++)
    if (odd[i] <= limit) out[n++] = odd[i];
  if (n < max && limit >= 32 && (limit & (limit - 1))) out[n++] = limit;
  if (n < max && limit >= 32) out[n++] = limit - 16;
  return n;
}

/* Messages that need NCCL: NOT_SUPPORTED on a communicator without it (with
 * NCCL: `want` SUCCESS), nothing written; the communicator stays usable. */
static inline void needs_nccl(ctx *c, llmk_comm comm, size_t buffer, llmk_status want) {
  static const llmk_allreduce_algo algos[4] = {LLMK_ALLREDUCE_AUTO, LLMK_ALLREDUCE_ONESHOT, LLMK_ALLREDUCE_TWOSHOT,
                                               LLMK_ALLREDUCE_NCCL};
  for (int ai = 0; ai < 4; ai++) {
    /* sizes not multiples of 16 bytes */
    arc a = mk(comm, LLMK_BF16, 6, algos[ai], RES_NONE, 0);
    a.want = want;
    run_case(c, &a);
    a = mk(comm, LLMK_F32, 1, algos[ai], ai & 1 ? RES_SEP : RES_NONE, 0);
    a.want = want;
    run_case(c, &a);
    a = mk(comm, LLMK_F16, 7, algos[ai], RES_NONE, ai & 1);
    a.want = want;
    run_case(c, &a);
    /* every residual form: on the NCCL path residual == y must survive NCCL writing y */
    for (int res = RES_NONE; res <= RES_Y; res++) {
      a = mk(comm, LLMK_BF16, 1003, algos[ai], res, 0);
      a.want = want;
      run_case(c, &a);
    }
    a = mk(comm, LLMK_F32, 5, algos[ai], ai & 1 ? RES_X : RES_SEP, 1);
    a.want = want;
    run_case(c, &a);
    /* above the buffer */
    a = mk(comm, LLMK_F32, (int64_t)(buffer / 4 + 4), algos[ai], ai == 3 ? RES_Y : ai == 2 ? RES_SEP : RES_NONE,
           0);
    a.want = want;
    run_case(c, &a);
    /* misaligned x, y, residual (sizes multiples of 16) */
    a = mk(comm, LLMK_BF16, 64, algos[ai], RES_NONE, 0);
    a.xoff = 2;
    a.want = want;
    run_case(c, &a);
    a = mk(comm, LLMK_BF16, 64, algos[ai], RES_NONE, 0);
    a.yoff = 4;
    a.want = want;
    run_case(c, &a);
    a = mk(comm, LLMK_F32, 256, algos[ai], RES_SEP, 0);
    a.roff = 8;
    a.want = want;
    run_case(c, &a);
    /* the communicator still works */
    a = mk(comm, LLMK_BF16, 4096, algos[ai] == LLMK_ALLREDUCE_NCCL ? LLMK_ALLREDUCE_AUTO : algos[ai], RES_SEP, 0);
    run_case(c, &a);
  }
}

/* Registered-buffer mode, eager: the buffer is overwritten (NaN) right
 * after each call, and the next call's input is written right after that. */
static inline void registered(ctx *c, llmk_comm comm) {
  const size_t sizes[] = {16, 4096, 65536, (size_t)1 << 20, c->reg_bytes};
  int i = 0;
  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
    if (sizes[si] > c->reg_bytes) continue;
    for (int di = 0; di < 3; di++)
      for (int ai = 0; ai < 3; ai++, i++) {
        if (sizes[si] > 65536 && i % 3) continue;
        const llmk_dtype dt = dts[di];
        arc a = mk(comm, dt, (int64_t)(sizes[si] / llmk_dtype_size(dt)), own_algos[ai], i % 3, 0);
        a.reg = 1;
        run_case(c, &a);
      }
  }
}

/* ------------------------------------------------------------------------ */
/* Graphs                                                                    */
/* ------------------------------------------------------------------------ */

/* One captured call. chain: f32, residual = y = an accumulator (zeroed
 * first), so after T calls y = T * sum; else y = sum. reg: x is the
 * registered buffer, copied from src before the call and overwritten with
 * NaN right after it; overwrite: the same with a buffer of its own. */
typedef struct gcall {
  llmk_comm comm;
  uint8_t *reg;
  llmk_dtype dt;
  int64_t n;
  llmk_allreduce_algo algo;
  int chain, reg_mode, overwrite;
  int k;
  uint8_t *src, *x, *y;
} gcall;

static inline void gcall_setup(ctx *c, gcall *g) {
  const size_t bytes = (size_t)g->n * llmk_dtype_size(g->dt);
  g->k = c->call++;
  fill_x(c->hx, g->dt, g->n, c->rank, g->k);
  g->src = t_to_dev(c->hx, bytes);
  g->x = g->reg_mode ? g->reg : g->overwrite ? t_to_dev(c->hx, bytes) : g->src;
  T_CU(cudaMalloc((void **)&g->y, bytes + GUARD));
  T_CU(cudaMemset(g->y, g->chain ? 0 : POISON, bytes));
  T_CU(cudaMemset(g->y + bytes, POISON, GUARD));
}
static inline llmk_status gcall_issue(ctx *c, gcall *g) {
  const size_t bytes = (size_t)g->n * llmk_dtype_size(g->dt);
  if (g->reg_mode || g->overwrite) T_CU(cudaMemcpyAsync(g->x, g->src, bytes, cudaMemcpyDeviceToDevice, c->st));
  llmk_tensor x = llmk_tensor_1d(g->x, g->dt, g->n), y = llmk_tensor_1d(g->y, g->dt, g->n);
  const llmk_status s = llmk_allreduce(g->comm, g->algo, &x, g->chain ? &y : NULL, &y, c->st);
  if (g->reg_mode || g->overwrite) T_CU(cudaMemsetAsync(g->x, 0xFF, bytes, c->st));
  return s;
}
static inline void gcall_check(ctx *c, gcall *g, int64_t times, const char *what) {
  const size_t bytes = (size_t)g->n * llmk_dtype_size(g->dt);
  uint8_t *h = t_xmalloc(bytes + GUARD);
  T_CU(cudaMemcpy(h, g->y, bytes + GUARD, cudaMemcpyDeviceToHost));
  int64_t bad = 0;
  for (int64_t i = 0; i < g->n; i++) {
    int64_t v = 0;
    for (int r = 0; r < c->world; r++) v += xval(i, r, g->k);
    float got = bits_value(g->dt, bits_at(h, g->dt, i));
    const double want = g->chain ? (double)v * (double)times : (double)v;
    if ((double)got != want && bad++ < 4)
      fprintf(stderr, "  %s (%s %lld x %s): y[%lld] = %g, want %g\n", what, algo_name(g->algo), (long long)g->n,
              llmk_dtype_name(g->dt), (long long)i, got, want);
  }
  size_t gbad = 0;
  for (size_t i = bytes; i < bytes + GUARD; i++) gbad += h[i] != POISON;
  CHECK(bad == 0 && gbad == 0, "%s: %s %lld x %s%s%s: %lld of %lld elements wrong after %lld calls, %zu guard bytes",
        what, algo_name(g->algo), (long long)g->n, llmk_dtype_name(g->dt), g->reg_mode ? " registered" : "",
        g->chain ? " accumulated" : "", (long long)bad, (long long)g->n, (long long)times, gbad);
  c->hash = ranks_hash(c->hash, h, bytes);
  free(h);
}
static inline void gcall_free(gcall *g) {
  if (g->x != g->src && g->x != g->reg) T_CU(cudaFree(g->x));
  T_CU(cudaFree(g->src));
  T_CU(cudaFree(g->y));
}

/* Each call once eagerly, then the sequence captured into one graph and
 * replayed `reps` times; every call is checked at the end. */
static inline void run_graph(ctx *c, const char *what, gcall *g, int ng, int reps) {
  for (int i = 0; i < ng; i++) gcall_setup(c, &g[i]);
  int ok = 1;
  for (int i = 0; i < ng; i++) {
    const llmk_status s = gcall_issue(c, &g[i]);
    CHECK(s == LLMK_SUCCESS, "%s: eager call %d: %s", what, i, llmk_last_error());
    ok &= s == LLMK_SUCCESS;
  }
  T_CU(cudaStreamSynchronize(c->st));
  cudaGraph_t graph = NULL;
  cudaGraphExec_t ge = NULL;
  cudaError_t e = cudaStreamBeginCapture(c->st, cudaStreamCaptureModeGlobal);
  CHECK(e == cudaSuccess, "%s: begin capture: %s", what, cudaGetErrorString(e));
  if (e == cudaSuccess) {
    for (int i = 0; i < ng; i++) {
      const llmk_status s = gcall_issue(c, &g[i]);
      CHECK(s == LLMK_SUCCESS, "%s: captured call %d: %s", what, i, llmk_last_error());
      ok &= s == LLMK_SUCCESS;
    }
    e = cudaStreamEndCapture(c->st, &graph);
    CHECK(e == cudaSuccess, "%s: end capture: %s", what, cudaGetErrorString(e));
    ok &= e == cudaSuccess;
    if (ok) {
      e = cudaGraphInstantiate(&ge, graph, 0);
      CHECK(e == cudaSuccess, "%s: instantiate: %s", what, cudaGetErrorString(e));
      ok &= e == cudaSuccess;
    }
  } else {
    ok = 0;
  }
  cudaGetLastError();
  /* all ranks replay, or none */
  int done = 0;
  if (vote(c, ok)) {
    const double t0 = ranks_now();
    for (; done < reps; done++) {
      e = cudaGraphLaunch(ge, c->st);
      if (e != cudaSuccess) break;
    }
    CHECK(e == cudaSuccess, "%s: replay %d: %s", what, done, cudaGetErrorString(e));
    e = cudaStreamSynchronize(c->st);
    CHECK(e == cudaSuccess, "%s: after the replays: %s", what, cudaGetErrorString(e));
    if (c->rank == 0)
      printf("  w%d: %s: %d calls x %d replays, %.1f us a replay\n", c->world, what, ng, done,
             (ranks_now() - t0) * 1e6 / (done ? done : 1));
    for (int i = 0; i < ng; i++) gcall_check(c, &g[i], 1 + done, what);
  }
  if (ge) cudaGraphExecDestroy(ge);
  if (graph) cudaGraphDestroy(graph);
  T_CU(cudaStreamSynchronize(c->st));
  for (int i = 0; i < ng; i++) gcall_free(&g[i]);
}

static inline gcall G(llmk_comm comm, llmk_dtype dt, int64_t n, llmk_allreduce_algo algo, int chain, int reg_mode,
               int overwrite, uint8_t *reg) {
  gcall g;
  memset(&g, 0, sizeof g);
  g.comm = comm;
  g.dt = dt;
  g.n = n;
  g.algo = algo;
  g.chain = chain;
  g.reg_mode = reg_mode;
  g.overwrite = overwrite;
  g.reg = reg;
  return g;
}
#endif

#endif
