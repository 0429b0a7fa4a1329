/* `llmk bench allreduce`: llmk_allreduce across the GPUs of this node, one
 * process per GPU (forked before any CUDA call, tools/ranks.h), against
 * ncclAllReduce measured in the same run on the same data, as nccl-tests
 * prints it: size, count, llmk time, algbw = bytes / time, busbw = algbw x
 * 2(n-1)/n, the algorithm llmk_allreduce_choice picked, NCCL's time and
 * busbw, and the ratio nccl_us / llmk_us (above 1: llmk is faster).
 *
 * NCCL is bootstrapped in the ranks through dlopen("libnccl.so.2") (rank 0's
 * unique id handed over in shared memory) and the llmk communicator is made
 * from it with llmk_comm_create_nccl (buffer_bytes = max(-e, the default),
 * so the own kernels may take every size; --buffer overrides it).
 *
 * Timing: eager (default): a host barrier across the ranks, then CUDA events
 * around one call, median of --iters calls per rank (after --warmup);
 * -G: a CUDA graph of R = --graph-calls calls, replayed (a host barrier
 * before each replay), per-call time = replay time / R, median of --reps
 * replays. The time reported is the largest of the ranks' medians. No L2
 * flush (as nccl-tests: the messages are small and an engine's all-reduce
 * reads data just written). Each size is first checked once: llmk's output
 * against NCCL's (bitwise) and against the exact sum of the integer-valued
 * inputs.
 *
 * --share-gpu (with --ranks 2, on a machine with one GPU): every rank on GPU
 * 0 and the communicator made with llmk_comm_export/import (NCCL refuses
 * two ranks on one GPU): a functional smoke run, the GPU time-slices
 * between the processes, and the output says its timings are meaningless. */
#include <stdlib.h>
#include <string.h>

#include "ranks.h"
#include "cli_allreduce.h"
#include "cli_util.h"
#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

static void allreduce_usage(FILE *f) {
  fprintf(f,
          "usage: llmk bench allreduce [-b 1K] [-e 64M] [-f 2] [-G] [--ranks N] [--share-gpu]\n"
          "                            [--dtype bf16|f16|f32] [--algo auto|oneshot|twoshot|nccl] [--residual]\n"
          "                            [--buffer SIZE] [--iters 50] [--warmup 10] [--graph-calls 50] [--reps 15]\n"
          "                            [--json FILE] [--timeout 900]\n"
          "  Sum all-reduce of -b..-e bytes (x -f each step) across N ranks, one process per GPU\n"
          "  (N defaults to the GPU count), llmk_allreduce vs ncclAllReduce in the same run.\n"
          "  -G: time a CUDA graph of --graph-calls calls (per-call time = replay / calls, median of\n"
          "      --reps replays); else CUDA events around single eager calls (median of --iters).\n"
          "  algo: what llmk_allreduce_choice picks (or --algo); busbw = algbw * 2(n-1)/n;\n"
          "  nccl/llmk above 1 means llmk is faster. --buffer: the communicator's buffer_bytes\n"
          "  (default max(-e, 16M)). --json FILE: one JSON line per size (docs/DESIGN.md's format;\n"
          "  commit from LLMK_COMMIT or git). --share-gpu: all ranks on GPU 0 without NCCL, for a\n"
          "  functional smoke run on a one-GPU machine (timings meaningless).\n");
}

/* "64M", "1K", "4096", "1G" */
static int parse_size(const char *s, size_t *out) {
  char *end = NULL;
  const double v = strtod(s, &end);
  if (end == s || v < 0) return 0;
  double m = 1;
  if (*end == 'K' || *end == 'k') m = 1024, end++;
  else if (*end == 'M' || *end == 'm') m = 1048576, end++;
  else if (*end == 'G' || *end == 'g') m = 1073741824.0, end++;
  if (*end == 'B' || *end == 'b') end++;
  if (*end) return 0;
  *out = (size_t)(v * m);
  return 1;
}

typedef struct bopts {
  size_t b, e, f, buffer;
  int graph, ranks, share, residual, iters, warmup, graph_calls, reps;
  llmk_dtype dt;
  llmk_allreduce_algo algo;
  const char *json;
  int tune;           /* llmk tune allreduce: every algorithm timed per size, thresholds fitted */
  const char *write;  /* tune: the table file to update (--write) */
  double timeout;
  char commit[64];
  int ngpu;
} bopts;

#ifdef LLMK_WITH_CUDA
static const char *algo_str(llmk_allreduce_algo a) {
  return a == LLMK_ALLREDUCE_ONESHOT ? "oneshot" : a == LLMK_ALLREDUCE_TWOSHOT ? "twoshot"
                                                 : a == LLMK_ALLREDUCE_NCCL    ? "nccl"
                                                                               : "auto";
}

static int cmp_dbl(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_dbl);
  return n ? v[n / 2] : 0;
}

static void put_int(void *p, llmk_dtype dt, size_t i, int v) {
  if (dt == LLMK_F32) ((float *)p)[i] = (float)v;
  else if (dt == LLMK_F16) ((uint16_t *)p)[i] = llmk_float_to_f16((float)v);
  else ((uint16_t *)p)[i] = llmk_float_to_bf16((float)v);
}
static float get_val(const void *p, llmk_dtype dt, size_t i) {
  if (dt == LLMK_F32) return ((const float *)p)[i];
  if (dt == LLMK_F16) return llmk_f16_to_float(((const uint16_t *)p)[i]);
  return llmk_bf16_to_float(((const uint16_t *)p)[i]);
}

/* One rank's state. */
typedef struct brank {
  const bopts *o;
  ranks_shared *s;
  int rank, world;
  cudaStream_t st;
  llmk_comm comm;
  ranks_nccl nc;
  void *ncomm; /* NULL with --share-gpu */
  llmk_allreduce_algo algo; /* what op_llmk asks for */
  void *x, *y, *yn, *res;
  size_t bytes, count;
} brank;

typedef int (*bop_fn)(brank *r);
static int op_llmk(brank *r) {
  llmk_tensor x = llmk_tensor_1d(r->x, r->o->dt, (int64_t)r->count), y = llmk_tensor_1d(r->y, r->o->dt, (int64_t)r->count);
  llmk_tensor z = llmk_tensor_1d(r->res, r->o->dt, (int64_t)r->count);
  const llmk_status s = llmk_allreduce(r->comm, r->algo, &x, r->o->residual ? &z : NULL, &y, r->st);
  if (s) fprintf(stderr, "rank %d: llmk_allreduce(%zu bytes): %s\n", r->rank, r->bytes, llmk_last_error());
  return s == LLMK_SUCCESS;
}
static int op_nccl(brank *r) {
  const int rc = r->nc.AllReduce(r->x, r->yn, r->count, ranks_nccl_dtype(r->o->dt), RANKS_NCCL_SUM, r->ncomm, r->st);
  if (rc) fprintf(stderr, "rank %d: ncclAllReduce(%zu bytes): %s\n", r->rank, r->bytes, r->nc.GetErrorString(rc));
  return rc == 0;
}

/* This rank's median per-call time in us, or -1 on failure. */
static double time_op(brank *r, bop_fn fn) {
  const bopts *o = r->o;
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  double result = -1;
  const int n = o->graph ? o->reps : o->iters;
  double *t = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
  int ok = 1;
  if (!o->graph) {
    for (int i = 0; i < o->warmup && ok; i++) ok = fn(r);
    ok = ok && cudaStreamSynchronize(r->st) == cudaSuccess;
    for (int i = 0; i < n && ok; i++) {
      if (!ranks_barrier(r->s)) {
        ok = 0;
        break;
      }
      cudaEventRecord(e0, r->st);
      ok = fn(r);
      cudaEventRecord(e1, r->st);
      ok = ok && cudaEventSynchronize(e1) == cudaSuccess;
      float ms = 0;
      cudaEventElapsedTime(&ms, e0, e1);
      t[i] = ms * 1e3;
    }
  } else {
    cudaGraph_t g = NULL;
    cudaGraphExec_t ge = NULL;
    ok = fn(r) && cudaStreamSynchronize(r->st) == cudaSuccess; /* warm-up, eager */
    if (ok && cudaStreamBeginCapture(r->st, cudaStreamCaptureModeThreadLocal) == cudaSuccess) {
      for (int i = 0; i < o->graph_calls && ok; i++) ok = fn(r);
      const cudaError_t e = cudaStreamEndCapture(r->st, &g);
      ok = ok && e == cudaSuccess && cudaGraphInstantiate(&ge, g, 0) == cudaSuccess;
    } else {
      ok = 0;
    }
    if (!ok) fprintf(stderr, "rank %d: graph capture failed (%s)\n", r->rank, cudaGetErrorString(cudaGetLastError()));
    /* every rank replays, or none (a rank whose capture failed would leave its peers waiting) */
    r->s->u64[r->rank][15] = (uint64_t)ok;
    if (!ranks_barrier(r->s)) ok = 0;
    for (int q = 0; q < r->world && ok; q++) ok = r->s->u64[q][15] != 0;
    if (!ranks_barrier(r->s)) ok = 0;
    if (ok) ok = cudaGraphLaunch(ge, r->st) == cudaSuccess && cudaStreamSynchronize(r->st) == cudaSuccess;
    for (int i = 0; i < n && ok; i++) {
      if (!ranks_barrier(r->s)) {
        ok = 0;
        break;
      }
      cudaEventRecord(e0, r->st);
      ok = cudaGraphLaunch(ge, r->st) == cudaSuccess;
      cudaEventRecord(e1, r->st);
      ok = ok && cudaEventSynchronize(e1) == cudaSuccess;
      float ms = 0;
      cudaEventElapsedTime(&ms, e0, e1);
      t[i] = ms * 1e3 / o->graph_calls;
    }
    if (ge) cudaGraphExecDestroy(ge);
    if (g) cudaGraphDestroy(g);
  }
  if (ok) result = median(t, n);
  cudaGetLastError();
  free(t);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return result;
}

/* One llmk call and one NCCL call on the same data; llmk's output against
 * NCCL's (bitwise, where there is no residual) and the exact sum. Returns 1
 * if correct, 0 if not, -1 if a call failed. */
static int spot_check(brank *r, void *hy, void *hn) {
  const bopts *o = r->o;
  const size_t es = llmk_dtype_size(o->dt);
  cudaMemsetAsync(r->y, 0xA5, r->bytes, r->st);
  if (r->ncomm) cudaMemsetAsync(r->yn, 0x5A, r->bytes, r->st);
  if (!op_llmk(r)) return -1;
  if (r->ncomm && !op_nccl(r)) return -1;
  if (cudaStreamSynchronize(r->st) != cudaSuccess) return -1;
  cudaMemcpy(hy, r->y, r->bytes, cudaMemcpyDeviceToHost);
  if (r->ncomm) cudaMemcpy(hn, r->yn, r->bytes, cudaMemcpyDeviceToHost);
  size_t bad = 0;
  for (size_t i = 0; i < r->count; i++) {
    int v = 0;
    for (int q = 0; q < r->world; q++) v += (int)((i * 7 + (size_t)q * 3) % 17) - 8;
    const int vn = v;
    if (o->residual) v += (int)(i % 5) - 2;
    if (get_val(hy, o->dt, i) != (float)v) bad++;
    if (r->ncomm && get_val(hn, o->dt, i) != (float)vn) bad++;
  }
  if (r->ncomm && !o->residual && memcmp(hy, hn, r->count * es)) bad++;
  if (bad) fprintf(stderr, "rank %d: %zu bytes: %zu mismatches\n", r->rank, r->bytes, bad);
  return bad == 0;
}

/* Every rank checks r->algo on this size (spot_check), then times it and,
 * with nccl_us, NCCL: *all_ok clears if any rank's check failed, *llmk_us
 * (and *nccl_us) become the slowest rank's medians. Returns 0 if a call or
 * a barrier failed on any rank (the run stops). */
static int check_and_time(brank *r, void *hy, void *hn, int *all_ok, double *llmk_us, double *nccl_us) {
  ranks_shared *s = r->s;
  const int chk = spot_check(r, hy, hn);
  s->u64[r->rank][14] = (uint64_t)(chk + 1);
  if (!ranks_barrier(s)) return 0;
  int calls_ok = 1;
  for (int q = 0; q < r->world; q++) {
    calls_ok &= s->u64[q][14] != 0;
    *all_ok &= s->u64[q][14] == 2;
  }
  if (!ranks_barrier(s) || !calls_ok) return 0;
  s->dbl[r->rank][0] = time_op(r, op_llmk);
  s->dbl[r->rank][1] = nccl_us ? time_op(r, op_nccl) : 0;
  if (!ranks_barrier(s)) return 0;
  double ml = 0, mn = 0;
  int timed = 1;
  for (int q = 0; q < r->world; q++) {
    if (s->dbl[q][0] < 0 || s->dbl[q][1] < 0) timed = 0;
    if (s->dbl[q][0] > ml) ml = s->dbl[q][0];
    if (s->dbl[q][1] > mn) mn = s->dbl[q][1];
  }
  *llmk_us = ml;
  if (nccl_us) *nccl_us = mn;
  return ranks_barrier(s) && timed;
}

static int bench_rank(ranks_shared *s, int rank, void *arg) {
  const bopts *o = arg;
  brank r;
  memset(&r, 0, sizeof r);
  r.o = o;
  r.s = s;
  r.rank = rank;
  r.world = s->world;
  const int dev = o->share ? 0 : rank;
  llmk_handle h = NULL;
  if (cudaSetDevice(dev) != cudaSuccess || llmk_create_cuda(dev, &h) != LLMK_SUCCESS) {
    fprintf(stderr, "rank %d: llmk_create_cuda(%d): %s\n", rank, dev, llmk_last_error());
    return 1;
  }
  llmk_device_info info = LLMK_DEVICE_INFO_INIT;
  if (rank == 0 && llmk_cuda_device_info(dev, &info) == LLMK_SUCCESS)
    snprintf(s->text, sizeof s->text, "%s", info.name);
  if (cudaStreamCreateWithFlags(&r.st, cudaStreamNonBlocking) != cudaSuccess) return 1;
  char err[300] = "";
  llmk_status st = LLMK_SUCCESS;
  if (!o->share) {
    int ok = ranks_nccl_load(&r.nc, err, sizeof err);
    if (!ok) {
      fprintf(stderr, "rank %d: %s\n", rank, err);
      return 1;
    }
    const int rc = ranks_nccl_init(s, &r.nc, rank, &r.ncomm);
    if (rc) {
      fprintf(stderr, "rank %d: ncclCommInitRank: %s\n", rank, rc > 0 ? r.nc.GetErrorString(rc) : "aborted");
      return 1;
    }
    st = llmk_comm_create_nccl(h, r.ncomm, o->buffer, &r.comm);
  } else {
    unsigned char blob[LLMK_COMM_HANDLE_BYTES], all[LLMK_COMM_MAX_RANKS * LLMK_COMM_HANDLE_BYTES];
    st = llmk_comm_export(h, rank, r.world, o->buffer, &r.comm, blob);
    if (!st && !ranks_allgather_blob(s, rank, blob, all)) return 1;
    if (!st) st = llmk_comm_import(r.comm, all, NULL);
  }
  if (st) {
    fprintf(stderr, "rank %d: making the llmk communicator: %s\n", rank, llmk_last_error());
    return 1;
  }
  const size_t es = llmk_dtype_size(o->dt), maxb = o->e;
  void *hx = malloc(maxb), *hy = malloc(maxb), *hn = malloc(maxb);
  if (cudaMalloc(&r.x, maxb) != cudaSuccess || cudaMalloc(&r.y, maxb) != cudaSuccess ||
      cudaMalloc(&r.yn, maxb) != cudaSuccess || cudaMalloc(&r.res, maxb) != cudaSuccess || !hx || !hy || !hn) {
    fprintf(stderr, "rank %d: out of memory for %zu-byte buffers\n", rank, maxb);
    return 1;
  }
  for (size_t i = 0; i < maxb / es; i++) put_int(hx, o->dt, i, (int)((i * 7 + (size_t)rank * 3) % 17) - 8);
  cudaMemcpy(r.x, hx, maxb, cudaMemcpyHostToDevice);
  for (size_t i = 0; i < maxb / es; i++) put_int(hx, o->dt, i, (int)(i % 5) - 2);
  cudaMemcpy(r.res, hx, maxb, cudaMemcpyHostToDevice);

  FILE *jf = NULL;
  char peer[64] = "none";
  if (r.ncomm) {
    char v[32];
    ranks_nccl_version_string(r.nc.version, v, sizeof v);
    snprintf(peer, sizeof peer, "nccl %s", v);
  }
  if (!ranks_barrier(s)) return 1;
  size_t tsz[CLI_AR_TUNE_MAX_SIZES];
  double t1s[CLI_AR_TUNE_MAX_SIZES], t2s[CLI_AR_TUNE_MAX_SIZES], tns[CLI_AR_TUNE_MAX_SIZES];
  int nt = 0;
  if (rank == 0 && o->tune) cli_allreduce_tune_header(r.world, s->text, peer, llmk_dtype_name(o->dt));
  if (rank == 0 && !o->tune) {
    const char *env = getenv("LLMK_ALLREDUCE");
    printf("# llmk bench allreduce: %d ranks on %s, %s, residual %s, buffer %zu bytes, peer %s\n", r.world,
           o->share ? "GPU 0 (shared GPU: timings meaningless)" : "one GPU each", llmk_dtype_name(o->dt),
           o->residual ? "yes" : "no", o->buffer, peer);
    printf("# device %s; %s; time = slowest rank's median%s%s\n", s->text,
           o->graph ? "CUDA graph replays (per-call time = replay / calls)" : "eager calls, CUDA events",
           env && *env ? "; LLMK_ALLREDUCE=" : "", env && *env ? env : "");
    printf("#%11s %12s %5s %8s %10s %11s %11s %10s %11s %9s %6s\n", "size(B)", "count", "type", "algo", "llmk(us)",
           "algbw(GB/s)", "busbw(GB/s)", "nccl(us)", "busbw(GB/s)", "nccl/llmk", "check");
    fflush(stdout);
    if (o->json) {
      jf = strcmp(o->json, "-") ? fopen(o->json, "w") : stdout;
      if (!jf) fprintf(stderr, "bench: cannot write %s\n", o->json);
    }
  }
  int fails = 0;
  for (size_t bytes = o->b; bytes <= o->e; bytes *= o->f) {
    r.count = bytes / es;
    if (!r.count) continue;
    r.bytes = r.count * es;
    int all_ok = 1;
    double ml = 0, mn = 0;
    if (o->tune) {
      /* every algorithm at every size: one-shot, two-shot (each checked), then NCCL */
      double t2 = 0;
      r.algo = LLMK_ALLREDUCE_ONESHOT;
      if (!check_and_time(&r, hy, hn, &all_ok, &ml, NULL)) return 1;
      r.algo = LLMK_ALLREDUCE_TWOSHOT;
      if (!check_and_time(&r, hy, hn, &all_ok, &t2, r.ncomm ? &mn : NULL)) return 1;
      fails += !all_ok;
      if (rank == 0 && nt < CLI_AR_TUNE_MAX_SIZES) {
        tsz[nt] = r.bytes, t1s[nt] = all_ok ? ml : -1, t2s[nt] = all_ok ? t2 : -1, tns[nt] = r.ncomm ? mn : -1;
        cli_allreduce_tune_row(tsz[nt], t1s[nt], t2s[nt], tns[nt]);
        nt++;
      }
      if (bytes > o->e / o->f) break;
      continue;
    }
    r.algo = o->algo;
    if (!check_and_time(&r, hy, hn, &all_ok, &ml, r.ncomm ? &mn : NULL)) return 1;
    fails += !all_ok;
    if (rank == 0) {
      llmk_allreduce_algo a = o->algo == LLMK_ALLREDUCE_AUTO ? llmk_allreduce_choice(r.comm, r.bytes) : o->algo;
      if (a != LLMK_ALLREDUCE_NCCL && (r.bytes % 16 || r.bytes > (o->buffer ? o->buffer : LLMK_COMM_DEFAULT_BUFFER_BYTES)))
        a = LLMK_ALLREDUCE_NCCL; /* a forced own algorithm on a message that NCCL must take */
      const double algbw = r.bytes / (ml * 1e-6) / 1e9, fac = 2.0 * (r.world - 1) / r.world;
      const double nalg = mn > 0 ? r.bytes / (mn * 1e-6) / 1e9 : 0;
      char ncol[3][32];
      if (r.ncomm) {
        snprintf(ncol[0], 32, "%.2f", mn);
        snprintf(ncol[1], 32, "%.2f", nalg * fac);
        snprintf(ncol[2], 32, "%.3f", mn / ml);
      } else {
        snprintf(ncol[0], 32, "-");
        snprintf(ncol[1], 32, "-");
        snprintf(ncol[2], 32, "-");
      }
      printf("%12zu %12zu %5s %8s %10.2f %11.2f %11.2f %10s %11s %9s %6s\n", r.bytes, r.count,
             llmk_dtype_name(o->dt), algo_str(a), ml, algbw, algbw * fac, ncol[0], ncol[1], ncol[2],
             all_ok ? "ok" : "FAILED");
      fflush(stdout);
      if (jf) {
        fprintf(jf,
                "{\"op\": \"allreduce\", \"device\": \"%s\", \"commit\": \"%s\", \"shape\": {\"bytes\": %zu, "
                "\"ranks\": %d, \"dtype\": \"%s\"}, \"llmk_us\": %.3f, \"backend\": \"%s\", \"peer\": \"%s\", ",
                s->text, o->commit, r.bytes, r.world, llmk_dtype_name(o->dt), ml, algo_str(a), peer);
        if (r.ncomm) fprintf(jf, "\"peer_us\": %.3f, \"ratio\": %.3f, ", mn, mn / ml);
        else fprintf(jf, "\"peer_us\": null, \"ratio\": null, ");
        fprintf(jf,
                "\"gbps\": %.2f, \"algbw\": %.2f, \"peer_gbps\": %.2f, \"graph\": %s, \"count\": %zu, "
                "\"residual\": %s, \"buffer_bytes\": %zu, \"calls\": %d, \"checked\": %s, \"shared_gpu\": %s}\n",
                algbw * fac, algbw, nalg * fac, o->graph ? "true" : "false", r.count,
                o->residual ? "true" : "false", o->buffer, o->graph ? o->graph_calls * o->reps : o->iters,
                all_ok ? "true" : "false", o->share ? "true" : "false");
        fflush(jf);
      }
    }
    if (bytes > o->e / o->f) break; /* the next step would pass -e (or overflow) */
  }
  if (rank == 0 && o->tune && !fails &&
      !cli_allreduce_tune_finish(r.world, s->text, peer, o->commit, nt, tsz, t1s, t2s, tns, o->write))
    fails++;
  if (jf && jf != stdout) fclose(jf);
  cudaStreamSynchronize(r.st);
  cudaDeviceSynchronize();
  ranks_barrier(s);
  llmk_comm_destroy(r.comm);
  ranks_barrier(s);
  if (r.ncomm) r.nc.CommDestroy(r.ncomm);
  cudaFree(r.x);
  cudaFree(r.y);
  cudaFree(r.yn);
  cudaFree(r.res);
  free(hx);
  free(hy);
  free(hn);
  llmk_destroy(h);
  return fails ? 3 : 0;
}
#endif

/* bench (tune = 0) or tune (1): the same ranks, options and checks. */
static int allreduce_main(int argc, char **argv, int tune) {
  const char *cmd = tune ? "tune allreduce" : "bench allreduce";
  if (cli_wants_help(argc, argv)) {
    if (tune) cli_allreduce_tune_usage(stdout);
    else allreduce_usage(stdout);
    return 0;
  }
  static const char *const valued[] = {"-b", "-e", "-f", "--ranks", "--dtype", "--algo", "--buffer", "--iters",
                                       "--warmup", "--graph-calls", "--reps", "--json", "--timeout", "--write", NULL};
  static const char *const flags[] = {"-G", "--share-gpu", "--residual", NULL};
  if (!cli_check_options(cmd, argc, argv, valued, flags)) return 2;
  bopts o;
  memset(&o, 0, sizeof o);
  o.tune = tune;
  o.write = tune ? cli_arg(argc, argv, "--write", NULL) : NULL;
  if (!parse_size(cli_arg(argc, argv, "-b", "1K"), &o.b) || !parse_size(cli_arg(argc, argv, "-e", "64M"), &o.e) ||
      !parse_size(cli_arg(argc, argv, "--buffer", "0"), &o.buffer)) {
    fprintf(stderr, "%s: bad -b, -e or --buffer (bytes, with K, M or G)\n", cmd);
    return 2;
  }
  o.f = (size_t)cli_int(argc, argv, "-f", 2);
  o.graph = tune || cli_flag(argc, argv, "-G"); /* the table is for graphs, as engines decode */
  o.ranks = (int)cli_int(argc, argv, "--ranks", 0);
  o.share = cli_flag(argc, argv, "--share-gpu");
  o.residual = cli_flag(argc, argv, "--residual");
  o.iters = (int)cli_int(argc, argv, "--iters", 50);
  o.warmup = (int)cli_int(argc, argv, "--warmup", 10);
  o.graph_calls = (int)cli_int(argc, argv, "--graph-calls", 50);
  o.reps = (int)cli_int(argc, argv, "--reps", 15);
  o.json = cli_arg(argc, argv, "--json", NULL);
  o.timeout = (double)cli_int(argc, argv, "--timeout", 900);
  const char *dts = cli_arg(argc, argv, "--dtype", "bf16");
  if (!strcmp(dts, "bf16")) o.dt = LLMK_BF16;
  else if (!strcmp(dts, "f16")) o.dt = LLMK_F16;
  else if (!strcmp(dts, "f32")) o.dt = LLMK_F32;
  else {
    fprintf(stderr, "%s: --dtype must be bf16, f16 or f32\n", cmd);
    return 2;
  }
  const char *al = cli_arg(argc, argv, "--algo", "auto");
  if (!strcmp(al, "auto")) o.algo = LLMK_ALLREDUCE_AUTO;
  else if (!strcmp(al, "oneshot")) o.algo = LLMK_ALLREDUCE_ONESHOT;
  else if (!strcmp(al, "twoshot")) o.algo = LLMK_ALLREDUCE_TWOSHOT;
  else if (!strcmp(al, "nccl")) o.algo = LLMK_ALLREDUCE_NCCL;
  else {
    fprintf(stderr, "%s: --algo must be auto, oneshot, twoshot or nccl\n", cmd);
    return 2;
  }
  if (o.b < 1 || o.e < o.b || o.f < 2 || o.iters < 1 || o.warmup < 0 || o.graph_calls < 1 || o.reps < 1 ||
      o.timeout < 1) {
    fprintf(stderr, "%s: need 1 <= -b <= -e, -f >= 2, and positive counts\n", cmd);
    return 2;
  }
  if (o.buffer % 16) {
    fprintf(stderr, "%s: --buffer must be a multiple of 16\n", cmd);
    return 2;
  }
  if (tune && o.share && o.write) {
    fprintf(stderr, "%s: --write with --share-gpu: shared-GPU timings are meaningless, no table is written\n", cmd);
    return 2;
  }
  if (!o.buffer) {
    o.buffer = (o.e + 15) / 16 * 16;
    if (o.buffer < LLMK_COMM_DEFAULT_BUFFER_BYTES) o.buffer = LLMK_COMM_DEFAULT_BUFFER_BYTES;
  }
  const char *commit = getenv("LLMK_COMMIT");
  if (commit && *commit) {
    snprintf(o.commit, sizeof o.commit, "%s", commit);
  } else {
    snprintf(o.commit, sizeof o.commit, "unknown");
    FILE *p = popen("git rev-parse --short HEAD 2>/dev/null", "r");
    if (p) {
      char line[64];
      if (fgets(line, sizeof line, p) && line[0] && line[0] != '\n') {
        line[strcspn(line, "\r\n")] = 0;
        snprintf(o.commit, sizeof o.commit, "%s", line);
      }
      pclose(p);
    }
  }
#ifndef LLMK_WITH_CUDA
  fprintf(stderr, "%s: built without CUDA\n", cmd);
  return 1;
#else
  /* The GPU count, learned in a child process: this one must not touch CUDA
   * before it forks the ranks. */
  ranks_shared *s = ranks_shared_new();
  if (!s) {
    fprintf(stderr, "%s: mmap failed\n", cmd);
    return 1;
  }
  const int ngpu = ranks_probe(s);
  if (ngpu <= 0) {
    fprintf(stderr, "%s: %s\n", cmd, ngpu < 0 ? "the GPU probe failed" : "no CUDA device");
    return 1;
  }
  o.ngpu = ngpu;
  if (o.share) {
    if (o.ranks == 0) o.ranks = 2;
    if (o.ranks < 2 || o.ranks > LLMK_COMM_MAX_RANKS) {
      fprintf(stderr, "%s: --ranks must be 2..%d\n", cmd, LLMK_COMM_MAX_RANKS);
      return 2;
    }
  } else {
    if (o.ranks == 0) o.ranks = ngpu < LLMK_COMM_MAX_RANKS ? ngpu : LLMK_COMM_MAX_RANKS;
    if (o.ranks < 2) {
      fprintf(stderr,
              "%s: an all-reduce needs at least 2 GPUs (%d visible). For a functional smoke run with\n"
              "every rank on GPU 0 (timings meaningless): llmk %s --ranks 2 --share-gpu\n",
              cmd, ngpu, cmd);
      return 2;
    }
    if (o.ranks > ngpu || o.ranks > LLMK_COMM_MAX_RANKS) {
      fprintf(stderr, "%s: --ranks %d: %d GPU(s) visible (at most %d ranks)\n", cmd, o.ranks, ngpu,
              LLMK_COMM_MAX_RANKS);
      return 2;
    }
  }
  for (int d = 0; d < (o.share ? 1 : o.ranks); d++)
    if (!s->gpu_supported[d]) {
      fprintf(stderr, "%s: GPU %d is not a Hopper GPU\n", cmd, d);
      return 1;
    }
  s->barrier_timeout_s = o.timeout;
  const int bad = ranks_run(s, o.ranks, bench_rank, &o, o.timeout, cmd);
  if (bad) fprintf(stderr, "%s: %d rank(s) failed\n", cmd, bad);
  return bad ? 1 : 0;
#endif
}

int cli_bench_allreduce(int argc, char **argv) { return allreduce_main(argc, argv, 0); }
int cli_tune_allreduce(int argc, char **argv) { return allreduce_main(argc, argv, 1); }
