/* llmk_attention_decode on the GPU against the CPU reference, on the same
 * cache bytes: every format, contiguous and paged (shuffled block tables),
 * head dims 64/128/256, group sizes 1-16, lengths from 0 to 200000 mixed in
 * a batch, forced and automatic splits, lse, and a captured graph replayed
 * with new lengths. Tolerance: relative L2 error per (sequence, head) of
 * 2e-3 for BF16 caches, 1e-2 for FP8 and INT4 (include/llmk.h). */
#include <math.h>

#include "harness.h"
#include "llmk.h"

static llmk_handle cpu;

#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>

typedef struct cache_case {
  llmk_kv_format fmt;
  int d, hq, hkv, b, page; /* page 0: contiguous */
  int group4;              /* INT4 group */
  const int *lens;
  int splits; /* desc.num_splits */
} cache_case;

/* Host and device copies of one cache. */
typedef struct bufs {
  size_t kbytes, pbytes;
  void *hk, *hv, *hkp, *hvp, *dk, *dv, *dkp, *dvp;
  int32_t *hbt, *dbt;
  int64_t s0, s1, maxp;
} bufs;

static uint16_t rbf16(float sd) { return llmk_float_to_bf16(t_rand_normal() * sd); }

static void set_tensor4(llmk_tensor *t, void *p, llmk_dtype dt, int64_t a, int64_t b, int64_t c, int64_t d, int nd) {
  memset(t, 0, sizeof *t);
  t->data = p;
  t->dtype = dt;
  t->ndim = nd;
  int64_t sh[4] = {a, b, c, d};
  int64_t st = 1;
  for (int i = nd - 1; i >= 0; i--) {
    t->shape[i] = sh[i];
    t->strides[i] = st;
    st *= sh[i];
  }
}

/* The cache descriptor over either the host or the device copies. */
static llmk_kv_cache describe(const cache_case *cc, const bufs *B, int dev) {
  llmk_kv_cache c = LLMK_KV_CACHE_INIT;
  c.format = cc->fmt;
  c.int4_group = cc->group4;
  const int64_t E = cc->fmt == LLMK_KV_INT4 ? cc->d / 2 : cc->d;
  const llmk_dtype dt = cc->fmt == LLMK_KV_BF16 ? LLMK_BF16 : cc->fmt == LLMK_KV_INT4 ? LLMK_U8 : LLMK_E4M3;
  set_tensor4(&c.k, dev ? B->dk : B->hk, dt, B->s0, B->s1, cc->hkv, E, 4);
  set_tensor4(&c.v, dev ? B->dv : B->hv, dt, B->s0, B->s1, cc->hkv, E, 4);
  if (cc->fmt == LLMK_KV_FP8) {
    set_tensor4(&c.k_param, dev ? B->dkp : B->hkp, LLMK_F32, B->s0, B->s1, cc->hkv, 0, 3);
    set_tensor4(&c.v_param, dev ? B->dvp : B->hvp, LLMK_F32, B->s0, B->s1, cc->hkv, 0, 3);
  } else if (cc->fmt == LLMK_KV_FP8_TENSOR) {
    set_tensor4(&c.k_param, dev ? B->dkp : B->hkp, LLMK_F32, 1, 0, 0, 0, 1);
    set_tensor4(&c.v_param, dev ? B->dvp : B->hvp, LLMK_F32, 1, 0, 0, 0, 1);
  } else if (cc->fmt == LLMK_KV_INT4) {
    set_tensor4(&c.k_param, dev ? B->dkp : B->hkp, LLMK_F16, B->s0, B->s1, cc->hkv, 2 * cc->d / cc->group4, 4);
    set_tensor4(&c.v_param, dev ? B->dvp : B->hvp, LLMK_F16, B->s0, B->s1, cc->hkv, 2 * cc->d / cc->group4, 4);
  }
  if (cc->page) set_tensor4(&c.block_table, dev ? B->dbt : B->hbt, LLMK_I32, cc->b, B->maxp, 0, 0, 2);
  return c;
}

/* Fills a cache for the case through the CPU backend's llmk_kv_cache_write
 * (random bf16 K and V at every position of every sequence up to tcap),
 * then copies its bytes to the device. */
static int build(const cache_case *cc, int64_t tcap, bufs *B) {
  memset(B, 0, sizeof *B);
  const int64_t E = cc->fmt == LLMK_KV_INT4 ? cc->d / 2 : cc->d;
  const size_t esz = cc->fmt == LLMK_KV_BF16 ? 2 : 1;
  if (cc->page) {
    B->maxp = (tcap + cc->page - 1) / cc->page;
    B->s0 = cc->b * B->maxp + 3; /* spare pages */
    B->s1 = cc->page;
  } else {
    B->s0 = cc->b;
    B->s1 = tcap;
  }
  const int64_t rows = B->s0 * B->s1 * cc->hkv;
  B->kbytes = (size_t)rows * E * esz;
  size_t pe = cc->fmt == LLMK_KV_FP8 ? 4 : cc->fmt == LLMK_KV_INT4 ? (size_t)(4 * cc->d / cc->group4) : cc->fmt == LLMK_KV_FP8_TENSOR ? 0 : 0;
  B->pbytes = cc->fmt == LLMK_KV_FP8_TENSOR ? 4 : (size_t)rows * pe;
  B->hk = t_xmalloc(B->kbytes);
  B->hv = t_xmalloc(B->kbytes);
  memset(B->hk, 0, B->kbytes);
  memset(B->hv, 0, B->kbytes);
  B->hkp = t_xmalloc(B->pbytes + 16);
  B->hvp = t_xmalloc(B->pbytes + 16);
  memset(B->hkp, 0, B->pbytes + 16);
  memset(B->hvp, 0, B->pbytes + 16);
  if (cc->fmt == LLMK_KV_FP8_TENSOR) {
    ((float *)B->hkp)[0] = 3.0f / 448.0f;
    ((float *)B->hvp)[0] = 3.5f / 448.0f;
  }
  if (cc->page) {
    const int64_t n = cc->b * B->maxp;
    B->hbt = t_xmalloc((size_t)n * 4);
    int64_t *perm = t_xmalloc((size_t)B->s0 * 8);
    for (int64_t i = 0; i < B->s0; i++) perm[i] = i;
    for (int64_t i = B->s0 - 1; i > 0; i--) {
      int64_t j = (int64_t)(t_rand_u64() % (uint64_t)(i + 1)), t = perm[i];
      perm[i] = perm[j], perm[j] = t;
    }
    for (int64_t i = 0; i < n; i++) B->hbt[i] = (int32_t)perm[i];
    free(perm);
  }
  /* K and V rows of every position, written with offsets (one "prefill" per sequence). */
  const int64_t T = cc->b * tcap, rowe = (int64_t)cc->hkv * cc->d;
  uint16_t *k = t_xmalloc((size_t)T * rowe * 2), *v = t_xmalloc((size_t)T * rowe * 2);
  for (int64_t i = 0; i < T * rowe; i++) k[i] = rbf16(1.0f), v[i] = rbf16(1.0f);
  for (int64_t i = 0; i < T; i += 97) /* an outlier token now and then */
    for (int64_t e = 0; e < rowe; e += 7) k[i * rowe + e] = rbf16(6.0f);
  int32_t *off = t_xmalloc((size_t)(cc->b + 1) * 4), *sp = t_xmalloc((size_t)cc->b * 4);
  for (int i = 0; i <= cc->b; i++) off[i] = (int32_t)(i * tcap);
  for (int i = 0; i < cc->b; i++) sp[i] = 0;
  llmk_tensor tk, tv;
  set_tensor4(&tk, k, LLMK_BF16, T, cc->hkv, cc->d, 0, 3);
  set_tensor4(&tv, v, LLMK_BF16, T, cc->hkv, cc->d, 0, 3);
  llmk_kv_loc loc = LLMK_KV_LOC_INIT;
  set_tensor4(&loc.offsets, off, LLMK_I32, cc->b + 1, 0, 0, 0, 1);
  set_tensor4(&loc.start_pos, sp, LLMK_I32, cc->b, 0, 0, 0, 1);
  llmk_kv_cache hc = describe(cc, B, 0);
  llmk_status s = llmk_kv_cache_write(cpu, &hc, &tk, &tv, &loc, NULL);
  CHECK(s == LLMK_SUCCESS, "cpu kv_cache_write: %s", llmk_last_error());
  free(k), free(v), free(off), free(sp);
  if (s) return 0;
  B->dk = t_to_dev(B->hk, B->kbytes);
  B->dv = t_to_dev(B->hv, B->kbytes);
  B->dkp = t_to_dev(B->hkp, B->pbytes + 16);
  B->dvp = t_to_dev(B->hvp, B->pbytes + 16);
  if (cc->page) B->dbt = t_to_dev(B->hbt, (size_t)cc->b * B->maxp * 4);
  return 1;
}

static void release(bufs *B) {
  free(B->hk), free(B->hv), free(B->hkp), free(B->hvp), free(B->hbt);
  cudaFree(B->dk), cudaFree(B->dv), cudaFree(B->dkp), cudaFree(B->dvp);
  if (B->dbt) cudaFree(B->dbt);
}

static const char *fmt_name(llmk_kv_format f) {
  return f == LLMK_KV_BF16 ? "bf16" : f == LLMK_KV_FP8 ? "fp8" : f == LLMK_KV_FP8_TENSOR ? "fp8_tensor" : "int4";
}

/* Worst relative L2 error over (sequence, head) vectors; rows of empty
 * sequences must be exact zeros with lse -inf. */
static double compare(const cache_case *cc, const uint16_t *ref, const uint16_t *got, const float *lref,
                      const float *lgot, const int32_t *lens, int64_t max_len, double *lse_err) {
  double worst = 0.0;
  *lse_err = 0.0;
  for (int b = 0; b < cc->b; b++)
    for (int j = 0; j < cc->hq; j++) {
      const uint16_t *r = ref + ((int64_t)b * cc->hq + j) * cc->d, *g = got + ((int64_t)b * cc->hq + j) * cc->d;
      int64_t L = lens[b] < 0 ? 0 : lens[b];
      if (L > max_len) L = max_len;
      const float lr = lref[b * cc->hq + j], lg = lgot[b * cc->hq + j];
      if (L == 0) {
        for (int d = 0; d < cc->d; d++)
          if (g[d] != 0) worst = 1e30;
        if (!(isinf(lg) && lg < 0)) *lse_err = 1e30;
        continue;
      }
      double num = 0, den = 0;
      for (int d = 0; d < cc->d; d++) {
        const double x = llmk_bf16_to_float(g[d]), y = llmk_bf16_to_float(r[d]);
        num += (x - y) * (x - y);
        den += y * y;
      }
      const double e = den > 0 ? sqrt(num / den) : sqrt(num);
      if (!(e <= worst)) worst = e; /* NaN counts as worst */
      const double le = fabs((double)lr - (double)lg);
      if (!(le <= *lse_err)) *lse_err = le;
    }
  return worst;
}

static void run_case(llmk_handle gpu, const cache_case *cc, const char *what) {
  int64_t tcap = 0;
  for (int b = 0; b < cc->b; b++)
    if (cc->lens[b] > tcap) tcap = cc->lens[b];
  if (tcap == 0) tcap = 16;
  bufs B;
  if (!build(cc, tcap, &B)) return;
  const int64_t qn = (int64_t)cc->b * cc->hq * cc->d;
  uint16_t *q = t_xmalloc((size_t)qn * 2), *ref = t_xmalloc((size_t)qn * 2), *got = t_xmalloc((size_t)qn * 2);
  for (int64_t i = 0; i < qn; i++) q[i] = rbf16(1.0f);
  float *lref = t_xmalloc((size_t)cc->b * cc->hq * 4), *lgot = t_xmalloc((size_t)cc->b * cc->hq * 4);
  int32_t *lens = t_xmalloc((size_t)cc->b * 4);
  for (int b = 0; b < cc->b; b++) lens[b] = cc->lens[b];
  llmk_attention_desc desc = {LLMK_ATTENTION_DESC_SIZE, 1.0f / sqrtf((float)cc->d), tcap, cc->splits};

  llmk_tensor tq, tout, tl, tlen;
  set_tensor4(&tq, q, LLMK_BF16, cc->b, cc->hq, cc->d, 0, 3);
  set_tensor4(&tout, ref, LLMK_BF16, cc->b, cc->hq, cc->d, 0, 3);
  set_tensor4(&tl, lref, LLMK_F32, cc->b, cc->hq, 0, 0, 2);
  set_tensor4(&tlen, lens, LLMK_I32, cc->b, 0, 0, 0, 1);
  llmk_kv_cache hc = describe(cc, &B, 0);
  llmk_status s = llmk_attention_decode(cpu, &desc, &tq, &hc, &tlen, &tout, &tl, NULL);
  CHECK(s == LLMK_SUCCESS, "%s: cpu attention: %s", what, llmk_last_error());

  void *dq = t_to_dev(q, (size_t)qn * 2), *dout, *dl, *dlen = t_to_dev(lens, (size_t)cc->b * 4);
  T_CU(cudaMalloc(&dout, (size_t)qn * 2));
  T_CU(cudaMalloc(&dl, (size_t)cc->b * cc->hq * 4));
  T_CU(cudaMemset(dout, 0xFF, (size_t)qn * 2)); /* NaN: every element must be written */
  tq.data = dq, tout.data = dout, tl.data = dl, tlen.data = dlen;
  llmk_kv_cache dc = describe(cc, &B, 1);
  s = llmk_attention_decode(gpu, &desc, &tq, &dc, &tlen, &tout, &tl, NULL);
  CHECK(s == LLMK_SUCCESS, "%s: gpu attention: %s", what, llmk_last_error());
  T_CU(cudaDeviceSynchronize());
  T_CU(cudaMemcpy(got, dout, (size_t)qn * 2, cudaMemcpyDeviceToHost));
  T_CU(cudaMemcpy(lgot, dl, (size_t)cc->b * cc->hq * 4, cudaMemcpyDeviceToHost));
  double le;
  const double tol = cc->fmt == LLMK_KV_BF16 ? 2e-3 : 1e-2;
  const double e = compare(cc, ref, got, lref, lgot, lens, tcap, &le);
  CHECK(e <= tol && le <= 1e-2, "%s: %s D=%d Hq=%d Hkv=%d B=%d page=%d G=%d splits=%d: rel err %.3g (tol %.0e), lse err %.3g",
        what, fmt_name(cc->fmt), cc->d, cc->hq, cc->hkv, cc->b, cc->page, cc->group4, cc->splits, e, tol, le);
  printf("%-10s %-10s D=%3d Hq=%2d Hkv=%d B=%d page=%2d G=%3d splits=%d: rel err %.2e, lse err %.2e\n", what,
         fmt_name(cc->fmt), cc->d, cc->hq, cc->hkv, cc->b, cc->page, cc->group4, cc->splits, e, le);

  free(q), free(ref), free(got), free(lref), free(lgot), free(lens);
  cudaFree(dq), cudaFree(dout), cudaFree(dl), cudaFree(dlen);
  release(&B);
}

/* A graph captured once and replayed with other lengths (graph safety:
 * nothing about the lengths is read on the host). */
static void graph_case(llmk_handle gpu) {
  static const int lens0[3] = {300, 5, 1000};
  const cache_case cc = {LLMK_KV_FP8, 128, 16, 2, 3, 16, 0, lens0, 0};
  const int64_t tcap = 1000;
  bufs B;
  if (!build(&cc, tcap, &B)) return;
  const int64_t qn = 3 * 16 * 128;
  uint16_t *q = t_xmalloc(qn * 2), *ref = t_xmalloc(qn * 2), *got = t_xmalloc(qn * 2);
  for (int64_t i = 0; i < qn; i++) q[i] = rbf16(1.0f);
  float lref[48], lgot[48];
  int32_t lens[3] = {300, 5, 1000};
  llmk_attention_desc desc = {LLMK_ATTENTION_DESC_SIZE, 0.088f, tcap, 0};
  llmk_tensor tq, tout, tl, tlen;
  set_tensor4(&tq, t_to_dev(q, qn * 2), LLMK_BF16, 3, 16, 128, 0, 3);
  void *dout;
  T_CU(cudaMalloc(&dout, qn * 2));
  set_tensor4(&tout, dout, LLMK_BF16, 3, 16, 128, 0, 3);
  float *dl;
  T_CU(cudaMalloc((void **)&dl, 48 * 4));
  set_tensor4(&tl, dl, LLMK_F32, 3, 16, 0, 0, 2);
  int32_t *dlen = t_to_dev(lens, 12);
  set_tensor4(&tlen, dlen, LLMK_I32, 3, 0, 0, 0, 1);
  llmk_kv_cache dc = describe(&cc, &B, 1);
  cudaStream_t st;
  T_CU(cudaStreamCreate(&st));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  /* the first call outside capture sets the kernel attributes */
  CHECK(llmk_attention_decode(gpu, &desc, &tq, &dc, &tlen, &tout, &tl, st) == LLMK_SUCCESS, "%s", llmk_last_error());
  T_CU(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
  llmk_status s = llmk_attention_decode(gpu, &desc, &tq, &dc, &tlen, &tout, &tl, st);
  T_CU(cudaStreamEndCapture(st, &graph));
  CHECK(s == LLMK_SUCCESS, "capture: %s", llmk_last_error());
  T_CU(cudaGraphInstantiate(&exec, graph, 0));
  static const int32_t sets[3][3] = {{1000, 0, 17}, {64, 65, 999}, {-5, 1000, 1}};
  for (int r = 0; r < 3; r++) {
    memcpy(lens, sets[r], sizeof lens);
    T_CU(cudaMemcpyAsync(dlen, lens, 12, cudaMemcpyHostToDevice, st));
    T_CU(cudaGraphLaunch(exec, st));
    T_CU(cudaStreamSynchronize(st));
    T_CU(cudaMemcpy(got, dout, qn * 2, cudaMemcpyDeviceToHost));
    T_CU(cudaMemcpy(lgot, dl, 48 * 4, cudaMemcpyDeviceToHost));
    llmk_kv_cache hc = describe(&cc, &B, 0);
    llmk_tensor hq = tq, ho = tout, hl = tl, hlen = tlen;
    hq.data = q, ho.data = ref, hl.data = lref, hlen.data = lens;
    CHECK(llmk_attention_decode(cpu, &desc, &hq, &hc, &hlen, &ho, &hl, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
    double le;
    const double e = compare(&cc, ref, got, lref, lgot, lens, tcap, &le);
    CHECK(e <= 1e-2 && le <= 1e-2, "graph replay %d: rel err %.3g, lse err %.3g", r, e, le);
  }
  cudaGraphExecDestroy(exec), cudaGraphDestroy(graph), cudaStreamDestroy(st);
  cudaFree(tq.data), cudaFree(dout), cudaFree(dl), cudaFree(dlen);
  free(q), free(ref), free(got);
  release(&B);
}
#endif

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  t_seed();
  CHECK(llmk_create_cpu(&cpu) == LLMK_SUCCESS, "%s", llmk_last_error());
#ifdef LLMK_WITH_CUDA
  llmk_handle gpu;
  if (t_hopper_handle("decode attention on the GPU", &gpu)) {
    static const int mixed[5] = {0, 1, 2, 1000, 65};
    static const int l63[3] = {63, 64, 65};
    static const int l1[1] = {1};
    static const int l16k[2] = {16384, 777};
    static const int l200k[1] = {200000};
    static const int lone[1] = {8192};
    const llmk_kv_format fmts[4] = {LLMK_KV_BF16, LLMK_KV_FP8, LLMK_KV_FP8_TENSOR, LLMK_KV_INT4};
    /* LLMK_TEST_QUICK=1 (compute-sanitizer runs): no sequence longer than 16384 */
    const int quick = getenv("LLMK_TEST_QUICK") != NULL;
    for (int f = 0; f < 4; f++) {
      const int g4 = fmts[f] == LLMK_KV_INT4 ? 32 : 0;
      for (int d = 64; d <= 256; d *= 2) {
        const cache_case a = {fmts[f], d, 8, 1, 5, 0, g4, mixed, 0};
        run_case(gpu, &a, "mixed");
        const cache_case p = {fmts[f], d, 8, 2, 3, 16, g4, l63, 0};
        run_case(gpu, &p, "paged16");
      }
      const cache_case g1 = {fmts[f], 128, 3, 3, 1, 32, g4, l1, 0}; /* group size 1 */
      run_case(gpu, &g1, "group1");
      const cache_case g3 = {fmts[f], 128, 6, 2, 3, 0, g4, l63, 3}; /* group 3, 3 splits */
      run_case(gpu, &g3, "group3");
      const cache_case g16 = {fmts[f], 128, 64, 4, 2, 64, g4, quick ? l63 : l16k, 0}; /* group 16 */
      run_case(gpu, &g16, "group16");
      const cache_case llama = {fmts[f], 128, 64, 8, 1, 0, g4, lone, 0};
      run_case(gpu, &llama, "llama70b");
      const cache_case s1 = {fmts[f], 128, 8, 1, 1, 0, g4, lone, 1}; /* one split: direct output */
      run_case(gpu, &s1, "split1");
    }
    const cache_case i128 = {LLMK_KV_INT4, 128, 8, 2, 5, 32, 128, mixed, 0};
    run_case(gpu, &i128, "int4g128");
    const cache_case i256 = {LLMK_KV_INT4, 256, 4, 1, 3, 0, 128, l63, 0};
    run_case(gpu, &i256, "int4g128");
    if (!quick) {
      const cache_case longc = {LLMK_KV_BF16, 64, 4, 1, 1, 64, 0, l200k, 0};
      run_case(gpu, &longc, "200k");
      const cache_case longf = {LLMK_KV_FP8, 128, 8, 1, 1, 0, 0, l200k, 0};
      run_case(gpu, &longf, "200k");
    }
    graph_case(gpu);
    { /* pages smaller than a warp's 16-token tile: refused, nothing written */
      static const int l20[1] = {20};
      const cache_case p8 = {LLMK_KV_BF16, 64, 2, 1, 1, 8, 0, l20, 0};
      bufs B;
      if (build(&p8, 20, &B)) {
        uint16_t q[128] = {0};
        int32_t len = 20;
        void *dq = t_to_dev(q, sizeof q), *dout = t_to_dev(q, sizeof q), *dlen = t_to_dev(&len, 4);
        llmk_tensor tq, to, tl;
        set_tensor4(&tq, dq, LLMK_BF16, 1, 2, 64, 0, 3);
        set_tensor4(&to, dout, LLMK_BF16, 1, 2, 64, 0, 3);
        set_tensor4(&tl, dlen, LLMK_I32, 1, 0, 0, 0, 1);
        llmk_kv_cache dc = describe(&p8, &B, 1);
        llmk_attention_desc desc = {LLMK_ATTENTION_DESC_SIZE, 0.125f, 20, 0};
        const llmk_status s = llmk_attention_decode(gpu, &desc, &tq, &dc, &tl, &to, NULL, NULL);
        CHECK(s == LLMK_ERR_NOT_SUPPORTED && strstr(llmk_last_error(), "page_size"), "page 8: status %d: %s", (int)s,
              llmk_last_error());
        cudaFree(dq), cudaFree(dout), cudaFree(dlen);
        release(&B);
      }
    }
    llmk_destroy(gpu);
  }
#else
  SKIP("built without CUDA: decode attention on the GPU");
#endif
  llmk_destroy(cpu);
  TEST_END();
}
