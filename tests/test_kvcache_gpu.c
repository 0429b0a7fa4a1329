/*
 * The CUDA KV-cache writes, RoPE and cache dequantization against the CPU
 * reference, bit for bit, on fresh random inputs (LLMK_TEST_SEED replays):
 *
 *  - llmk_rope: interleaved and neox, full and partial rotary dims (R/2 a
 *    multiple of 8 or not), Llama 3.1 frequency scaling, f32 and bf16, in
 *    place and out of place, padded and misaligned rows, positions up to
 *    2^20 (a few negative and a few near +-2^31);
 *  - llmk_rope_qkv_write and llmk_kv_cache_write for the four cache formats,
 *    contiguous and paged caches (page sizes 16, 32, 64, shuffled block
 *    tables, and sparse tables of 2^20 / page_size pages per sequence for
 *    positions up to 2^20), decode (offsets NULL) and variable-length
 *    prefill (offsets with empty sequences), D = 64, 128, 256, INT4 groups
 *    32 and 128: the whole cache (storage and parameters, written or not)
 *    and the whole q_out buffer (rows and padding) equal the CPU's;
 *  - rows the GPU must skip (positions negative or past the capacity, page
 *    numbers outside the pool, rows no sequence covers): the reference is
 *    the CPU applied row by row to the valid rows only, so every skipped
 *    row's q_out and every cache byte it would have touched stay as they
 *    were;
 *  - llmk_kv_cache_dequantize (f32 and bf16) of random cache bytes and of
 *    the written caches.
 * Inputs have varied magnitudes (2^-12 .. 2^12 per head), outliers, zero
 * heads (with -0), constant heads (INT4 scale 0) and exact zeros; some cases
 * add NaN and +-Inf. bf16 and f32 values compare NaN-equal (a NaN's payload
 * is not specified); e4m3, INT4 and parameter bytes compare exactly.
 * Skips itself (passing) where no Hopper GPU is visible.
 */
#include <math.h>

#include "attn_util.h"
#include "harness.h"
#include "llmk.h"

#ifdef LLMK_WITH_CUDA
#include <cuda_runtime_api.h>

static llmk_handle cpu, gpu;
static int n_cases;

/* ---- small helpers ------------------------------------------------------ */

static int64_t rand_range(int64_t lo, int64_t hi) { /* [lo, hi] */
  return lo + (int64_t)(t_rand_u64() % (uint64_t)(hi - lo + 1));
}

static void rand_bytes(void *p, size_t n) {
  uint8_t *b = p;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t r = t_rand_u64();
    memcpy(b + i, &r, 8);
  }
  for (; i < n; i++) b[i] = (uint8_t)t_rand_u64();
}

static void *dev_copy(const void *h, size_t n) { return t_to_dev(h, n); }
static void from_dev(void *h, const void *d, size_t n) {
  if (n) T_CU(cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost));
}

static llmk_tensor tensor_nd(void *data, llmk_dtype dt, int nd, const int64_t *shape) {
  llmk_tensor t;
  memset(&t, 0, sizeof t);
  t.data = data;
  t.dtype = dt;
  t.ndim = nd;
  int64_t st = 1;
  for (int i = nd - 1; i >= 0; i--) {
    t.shape[i] = shape[i];
    t.strides[i] = st;
    st *= shape[i];
  }
  return t;
}

static llmk_tensor heads3(void *data, llmk_dtype dt, int64_t T, int64_t H, int64_t D, int64_t ld) {
  llmk_tensor t = {data, dt, 3, {T, H, D, 0}, {ld, D, 1, 0}};
  return t;
}

static int bf16_eq(uint16_t a, uint16_t b) {
  return a == b || ((a & 0x7FFF) > 0x7F80 && (b & 0x7FFF) > 0x7F80);
}
static int f32_eq(uint32_t a, uint32_t b) {
  return a == b || ((a & 0x7FFFFFFFu) > 0x7F800000u && (b & 0x7FFFFFFFu) > 0x7F800000u);
}

/* Mismatches of n elements (size 1, 2 (bf16) or 4 (f32)); prints the first 3. */
static int64_t compare(const char *label, const char *what, const void *cpu_buf, const void *gpu_buf,
                       int64_t n, int es) {
  int64_t bad = 0;
  for (int64_t i = 0; i < n; i++) {
    int ok;
    uint32_t a = 0, b = 0;
    if (es == 1) {
      a = ((const uint8_t *)cpu_buf)[i], b = ((const uint8_t *)gpu_buf)[i];
      ok = a == b;
    } else if (es == 2) {
      a = ((const uint16_t *)cpu_buf)[i], b = ((const uint16_t *)gpu_buf)[i];
      ok = bf16_eq((uint16_t)a, (uint16_t)b);
    } else {
      a = ((const uint32_t *)cpu_buf)[i], b = ((const uint32_t *)gpu_buf)[i];
      ok = f32_eq(a, b);
    }
    if (!ok && bad++ < 3)
      fprintf(stderr, "  %s: %s[%lld]: cpu 0x%0*x gpu 0x%0*x\n", label, what, (long long)i, 2 * es,
              a, 2 * es, b);
  }
  CHECK(bad == 0, "%s: %s: %lld of %lld elements differ", label, what, (long long)bad, (long long)n);
  return bad;
}

/* ---- inputs --------------------------------------------------------------- */

/* One head of D values (f32): varied magnitudes, zero heads (+-0), constant
 * heads, exact zeros, outliers; `special` sprinkles NaN and +-Inf. */
static void draw_head(float *v, int64_t D, int special) {
  const double u = t_rand_uniform();
  if (u < 0.04) {
    for (int64_t d = 0; d < D; d++) v[d] = t_rand_u64() & 1 ? 0.0f : -0.0f;
  } else if (u < 0.07) {
    const float c = t_rand_normal();
    for (int64_t d = 0; d < D; d++) v[d] = c;
    if (t_rand_u64() & 1) v[t_rand_u64() % D] = c * 2.0f; /* one group differs */
  } else {
    const float scale = ldexpf(1.0f, (int)rand_range(-12, 12));
    const int zeros = t_rand_uniform() < 0.15;
    for (int64_t d = 0; d < D; d++) {
      float x = t_rand_normal() * scale;
      if (t_rand_uniform() < 0.01) x *= 300.0f;
      if (zeros && t_rand_uniform() < 0.3) x = t_rand_u64() & 1 ? 0.0f : -0.0f;
      v[d] = x;
    }
  }
  if (special)
    for (int64_t d = 0; d < D; d++) {
      const double s = t_rand_uniform();
      if (s < 0.01) v[d] = NAN;
      else if (s < 0.02) v[d] = INFINITY;
      else if (s < 0.03) v[d] = -INFINITY;
    }
}

/* T rows of H heads of D bf16 values, row pitch ld; the padding is random bytes. */
static void fill_bf16_rows(uint16_t *p, int64_t T, int64_t H, int64_t D, int64_t ld, int special) {
  float v[256];
  for (int64_t t = 0; t < T; t++) {
    for (int64_t h = 0; h < H; h++) {
      draw_head(v, D, special);
      for (int64_t d = 0; d < D; d++) p[t * ld + h * D + d] = llmk_float_to_bf16(v[d]);
    }
    rand_bytes(p + t * ld + H * D, (size_t)(ld - H * D) * 2);
  }
}

/* partial: 0: R = D; 1: R = D / 2 (R/2 a multiple of 8); 2: R/2 not a multiple of 8; 3: R = 2 */
static llmk_rope_desc make_rope(int64_t D, int style, int partial, int llama3, double theta) {
  return rope_desc(style ? LLMK_ROPE_NEOX : LLMK_ROPE_INTERLEAVED,
                   partial == 0 ? 0 : partial == 1 ? D / 2 : partial == 2 ? D - 28 : 2, theta, llama3);
}

static const char *fmt_name(llmk_kv_format f) {
  static const char *n[] = {"BF16", "FP8", "FP8_TENSOR", "INT4"};
  return n[f];
}

/* ---- rope ------------------------------------------------------------------ */

static void rope_case(llmk_dtype dt, int64_t T, int64_t H, int64_t D, const llmk_rope_desc *rd,
                      int in_place, int64_t pad, int64_t off, int special) {
  char label[200];
  snprintf(label, sizeof label, "rope %s T=%lld H=%lld D=%lld %s R=%lld llama3=%d %s pad=%lld off=%lld%s",
           llmk_dtype_name(dt), (long long)T, (long long)H, (long long)D,
           rd->style == LLMK_ROPE_NEOX ? "neox" : "interleaved", (long long)rd->rotary_dim,
           rd->llama3_factor > 0, in_place ? "in-place" : "out-of-place", (long long)pad,
           (long long)off, special ? " nan-inf" : "");
  const size_t es = llmk_dtype_size(dt);
  const int64_t ld = H * D + pad, n = off + T * ld;
  void *hx = t_xmalloc((size_t)n * es), *hy = t_xmalloc((size_t)n * es), *gy = t_xmalloc((size_t)n * es);
  rand_bytes(hx, (size_t)n * es);
  float v[256];
  for (int64_t t = 0; t < T; t++)
    for (int64_t h = 0; h < H; h++) {
      draw_head(v, D, special);
      for (int64_t d = 0; d < D; d++) {
        const int64_t i = off + t * ld + h * D + d;
        if (dt == LLMK_F32) ((float *)hx)[i] = v[d];
        else ((uint16_t *)hx)[i] = llmk_float_to_bf16(v[d]);
      }
    }
  int32_t *pos = t_xmalloc((size_t)T * 4);
  for (int64_t t = 0; t < T; t++) {
    const double u = t_rand_uniform();
    pos[t] = u < 0.05 ? (int32_t)rand_range(-5000, -1)
           : u < 0.07 ? (int32_t)(INT32_MAX - rand_range(0, 1000))
           : u < 0.08 ? (int32_t)(INT32_MIN + rand_range(0, 1000))
           : (int32_t)rand_range(0, 1 << 20);
  }
  if (T > 0) pos[0] = 0;
  if (in_place) memcpy(hy, hx, (size_t)n * es);
  else rand_bytes(hy, (size_t)n * es);
  void *dx = dev_copy(hx, (size_t)n * es), *dy = in_place ? dx : dev_copy(hy, (size_t)n * es);
  int32_t *dpos = dev_copy(pos, (size_t)T * 4);

  /* CPU */
  void *cx = in_place ? hy : hx;
  llmk_tensor x = heads3((char *)cx + off * es, dt, T, H, D, ld);
  llmk_tensor y = heads3((char *)hy + off * es, dt, T, H, D, ld);
  llmk_tensor p = llmk_tensor_1d(pos, LLMK_I32, T);
  llmk_status s = llmk_rope(cpu, rd, &x, &p, &y, NULL);
  CHECK(s == LLMK_SUCCESS, "%s: cpu: %s", label, llmk_last_error());
  /* GPU */
  llmk_tensor gx = heads3((char *)dx + off * es, dt, T, H, D, ld);
  llmk_tensor gyt = heads3((char *)dy + off * es, dt, T, H, D, ld);
  llmk_tensor gp = llmk_tensor_1d(dpos, LLMK_I32, T);
  s = llmk_rope(gpu, rd, &gx, &gp, &gyt, NULL);
  CHECK(s == LLMK_SUCCESS, "%s: gpu: %s", label, llmk_last_error());
  T_CU(cudaDeviceSynchronize());
  from_dev(gy, dy, (size_t)n * es);
  compare(label, "y", hy, gy, n, (int)es);
  n_cases++;
  T_CU(cudaFree(dx));
  if (!in_place) T_CU(cudaFree(dy));
  T_CU(cudaFree(dpos));
  free(hx), free(hy), free(gy), free(pos);
}

static void rope_tests(void) {
  static const int64_t Ds[] = {64, 128, 256};
  int k = 0;
  for (int dti = 0; dti < 2; dti++)
    for (int style = 0; style < 2; style++)
      for (int partial = 0; partial < 4; partial++)
        for (int di = 0; di < 3; di++, k++) {
          const llmk_dtype dt = dti ? LLMK_BF16 : LLMK_F32;
          const int64_t D = Ds[di];
          const llmk_rope_desc rd = make_rope(D, style, partial, k % 2, k % 3 ? 500000.0 : 10000.0);
          static const int64_t Ts[] = {1, 7, 300, 33};
          static const int64_t Hs[] = {1, 3, 8, 64};
          const int64_t T = Ts[k % 4], H = Hs[(k / 4) % 4];
          const int64_t pad = k % 3 == 0 ? 0 : k % 3 == 1 ? 8 : 3;
          const int64_t off = k % 5 == 4 ? 1 : 0;
          rope_case(dt, T, H, D, &rd, k % 2, pad, off, k % 7 == 3);
        }
  /* many tokens (several CTAs per token row group, and tokens per CTA) */
  const llmk_rope_desc a = make_rope(128, 1, 0, 1, 500000.0), b = make_rope(128, 0, 0, 0, 500000.0);
  rope_case(LLMK_BF16, 4096, 8, 128, &a, 1, 0, 0, 0);
  rope_case(LLMK_BF16, 1000, 1, 128, &b, 0, 0, 0, 0);
  rope_case(LLMK_F32, 2000, 2, 64, &a, 0, 0, 0, 0);
}

/* ---- caches ---------------------------------------------------------------- */

typedef struct tcache {
  llmk_kv_format fmt;
  int64_t D, G, hkv;
  int paged;
  int64_t S0, S1;              /* B_cache x T_max, or num_pages x page_size */
  int64_t bt_rows, max_pages, bt_ld;
  int64_t E, row_bytes, pe;    /* storage elements per row, bytes per row, params per token-head */
  size_t sbytes, pbytes;       /* bytes of k (v), of k_param (v_param) */
  llmk_dtype sdt, pdt;
  void *h[4], *d[4];           /* k, v, k_param, v_param: host (CPU side) and device */
  int32_t *hbt, *dbt;
} tcache;

static void tc_init(tcache *c, llmk_kv_format fmt, int64_t D, int64_t G, int64_t hkv, int paged,
                    int64_t S0, int64_t S1, int64_t bt_rows, int64_t max_pages) {
  memset(c, 0, sizeof *c);
  c->fmt = fmt, c->D = D, c->G = fmt == LLMK_KV_INT4 ? G : 0, c->hkv = hkv, c->paged = paged;
  c->S0 = S0, c->S1 = S1, c->bt_rows = bt_rows, c->max_pages = max_pages;
  c->bt_ld = (max_pages + 4) / 4 * 4 + (paged && (t_rand_u64() & 1) ? 4 : 0);
  c->E = fmt == LLMK_KV_INT4 ? D / 2 : D;
  c->sdt = fmt == LLMK_KV_BF16 ? LLMK_BF16 : fmt == LLMK_KV_INT4 ? LLMK_U8 : LLMK_E4M3;
  c->row_bytes = c->E * (int64_t)llmk_dtype_size(c->sdt);
  c->pe = fmt == LLMK_KV_FP8 ? 1 : fmt == LLMK_KV_INT4 ? 2 * D / G : 0;
  c->pdt = fmt == LLMK_KV_INT4 ? LLMK_F16 : LLMK_F32;
  const int64_t slots = S0 * S1 * hkv;
  c->sbytes = (size_t)(slots * c->row_bytes);
  c->pbytes = fmt == LLMK_KV_BF16 ? 0 : fmt == LLMK_KV_FP8_TENSOR ? 4 : (size_t)(slots * c->pe) * llmk_dtype_size(c->pdt);
  for (int i = 0; i < 4; i++) {
    const size_t n = i < 2 ? c->sbytes : c->pbytes;
    if (!n) continue;
    c->h[i] = t_xmalloc(n);
    rand_bytes(c->h[i], n); /* the guard: bytes no write may change */
  }
  if (fmt == LLMK_KV_FP8_TENSOR) {
    ((float *)c->h[2])[0] = ldexpf(1.0f + (float)t_rand_uniform(), -5);
    ((float *)c->h[3])[0] = ldexpf(1.0f + (float)t_rand_uniform(), -7);
  }
  if (paged) {
    c->hbt = t_xmalloc((size_t)(bt_rows * c->bt_ld + 1) * 4);
    for (int64_t i = 0; i < bt_rows * c->bt_ld + 1; i++) c->hbt[i] = -1;
  }
}

/* The device copies (after the host side, block table included, is final). */
static void tc_upload(tcache *c) {
  for (int i = 0; i < 4; i++)
    if (c->h[i]) c->d[i] = dev_copy(c->h[i], i < 2 ? c->sbytes : c->pbytes);
  if (c->paged) c->dbt = dev_copy(c->hbt, (size_t)(c->bt_rows * c->bt_ld + 1) * 4);
}

static void tc_free(tcache *c) {
  for (int i = 0; i < 4; i++) {
    free(c->h[i]);
    if (c->d[i]) T_CU(cudaFree(c->d[i]));
  }
  free(c->hbt);
  if (c->dbt) T_CU(cudaFree(c->dbt));
}

/* The cache descriptor of the host (dev = 0) or device buffers; seq >= 0:
 * a one-sequence view (contiguous: sequence seq's slice; paged: row seq of
 * the block table). */
static llmk_kv_cache tc_view(const tcache *c, int dev, int64_t seq) {
  void *const *b = dev ? c->d : c->h;
  const int32_t *bt = dev ? c->dbt : c->hbt;
  llmk_kv_cache k = LLMK_KV_CACHE_INIT;
  k.format = c->fmt;
  k.int4_group = (int32_t)c->G;
  int64_t S0 = c->S0, sl = 0;
  if (seq >= 0 && !c->paged) S0 = 1, sl = seq * c->S1 * c->hkv; /* token-heads before the slice */
  const int64_t sshape[4] = {S0, c->S1, c->hkv, c->E};
  k.k = tensor_nd((char *)b[0] + sl * c->row_bytes, c->sdt, 4, sshape);
  k.v = tensor_nd((char *)b[1] + sl * c->row_bytes, c->sdt, 4, sshape);
  if (c->fmt == LLMK_KV_FP8) {
    k.k_param = tensor_nd((float *)b[2] + sl, LLMK_F32, 3, sshape);
    k.v_param = tensor_nd((float *)b[3] + sl, LLMK_F32, 3, sshape);
  } else if (c->fmt == LLMK_KV_FP8_TENSOR) {
    k.k_param = llmk_tensor_1d(b[2], LLMK_F32, 1);
    k.v_param = llmk_tensor_1d(b[3], LLMK_F32, 1);
  } else if (c->fmt == LLMK_KV_INT4) {
    const int64_t pshape[4] = {S0, c->S1, c->hkv, c->pe};
    k.k_param = tensor_nd((uint16_t *)b[2] + sl * c->pe, LLMK_F16, 4, pshape);
    k.v_param = tensor_nd((uint16_t *)b[3] + sl * c->pe, LLMK_F16, 4, pshape);
  }
  if (c->paged) {
    const int64_t rows = seq >= 0 ? 1 : c->bt_rows;
    k.block_table = llmk_tensor_2d((int32_t *)bt + (seq >= 0 ? seq * c->bt_ld : 0), LLMK_I32, rows,
                                   c->max_pages, c->bt_ld);
  }
  return k;
}

/* The GPU's cache equals the CPU's (host) cache, every byte. */
static void tc_compare(const tcache *c, const char *label) {
  static const char *names[4] = {"k", "v", "k_param", "v_param"};
  for (int i = 0; i < 4; i++) {
    const size_t n = i < 2 ? c->sbytes : c->pbytes;
    if (!n) continue;
    void *g = t_xmalloc(n);
    from_dev(g, c->d[i], n);
    const int es = i < 2 ? (c->fmt == LLMK_KV_BF16 ? 2 : 1) : 1; /* parameters: exact bytes */
    compare(label, names[i], c->h[i], g, (int64_t)(n / (size_t)es), es);
    free(g);
  }
}

/* Dequantize on both sides (same bytes expected in c->h and c->d) and compare. */
/* off: the outputs start this many elements into their buffers (1: not
 * 16-byte aligned). */
static void tc_dequant_check(const tcache *c, const char *label, int64_t off) {
  const int64_t n = c->S0 * c->S1 * c->hkv * c->D;
  const int64_t shape[4] = {c->S0, c->S1, c->hkv, c->D};
  for (int o = 0; o < 2; o++) {
    const llmk_dtype odt = o ? LLMK_BF16 : LLMK_F32;
    const size_t es = llmk_dtype_size(odt);
    const size_t nb = (size_t)(n + off + 1) * es; /* one guard element after */
    void *hk = t_xmalloc(nb), *hv = t_xmalloc(nb), *gk = t_xmalloc(nb), *gv = t_xmalloc(nb);
    void *dk, *dv;
    memset(hk, 0xA5, nb);
    memset(hv, 0xA5, nb);
    T_CU(cudaMalloc(&dk, nb));
    T_CU(cudaMalloc(&dv, nb));
    T_CU(cudaMemset(dk, 0xA5, nb));
    T_CU(cudaMemset(dv, 0xA5, nb));
    llmk_kv_cache ch = tc_view(c, 0, -1), cd = tc_view(c, 1, -1);
    llmk_tensor tk = tensor_nd((char *)hk + off * es, odt, 4, shape);
    llmk_tensor tv = tensor_nd((char *)hv + off * es, odt, 4, shape);
    llmk_tensor uk = tensor_nd((char *)dk + off * es, odt, 4, shape);
    llmk_tensor uv = tensor_nd((char *)dv + off * es, odt, 4, shape);
    char l2[240];
    snprintf(l2, sizeof l2, "%s: dequantize to %s (offset %lld)", label, llmk_dtype_name(odt),
             (long long)off);
    llmk_status s = llmk_kv_cache_dequantize(cpu, &ch, &tk, &tv, NULL);
    CHECK(s == LLMK_SUCCESS, "%s: cpu: %s", l2, llmk_last_error());
    s = llmk_kv_cache_dequantize(gpu, &cd, &uk, &uv, NULL);
    CHECK(s == LLMK_SUCCESS, "%s: gpu: %s", l2, llmk_last_error());
    T_CU(cudaDeviceSynchronize());
    from_dev(gk, dk, nb);
    from_dev(gv, dv, nb);
    compare(l2, "k_out (and guards)", hk, gk, n + off + 1, (int)es);
    compare(l2, "v_out (and guards)", hv, gv, n + off + 1, (int)es);
    T_CU(cudaFree(dk));
    T_CU(cudaFree(dv));
    free(hk), free(hv), free(gk), free(gv);
  }
}

/* ---- write cases ------------------------------------------------------------ */

typedef struct tloc {
  int64_t B, T;
  int32_t *off; /* NULL: decode */
  int32_t *start;
  int64_t *len; /* rows of sequence b */
} tloc;

/* Page numbers for every page sequence b's new rows touch: distinct pages of
 * a shuffled pool; entries no new row touches keep -1 or get garbage
 * (never read). Returns the pool size used. */
static int64_t assign_pages(tcache *c, const tloc *L, int garbage) {
  int64_t used = 0;
  for (int64_t b = 0; b < L->B; b++) {
    if (!L->len[b]) continue;
    const int64_t p0 = L->start[b], p1 = L->start[b] + L->len[b] - 1;
    for (int64_t j = p0 / c->S1; j <= p1 / c->S1; j++) c->hbt[b * c->bt_ld + j] = (int32_t)used++;
  }
  /* shuffle the page ids over the pool [0, S0) */
  int32_t *perm = t_xmalloc((size_t)c->S0 * 4);
  for (int64_t i = 0; i < c->S0; i++) perm[i] = (int32_t)i;
  for (int64_t i = c->S0 - 1; i > 0; i--) {
    const int64_t j = rand_range(0, i);
    const int32_t x = perm[i];
    perm[i] = perm[j], perm[j] = x;
  }
  for (int64_t i = 0; i < c->bt_rows * c->bt_ld; i++) {
    if (c->hbt[i] >= 0) c->hbt[i] = perm[c->hbt[i]];
    else if (garbage && (i % c->bt_ld) < c->max_pages && c->max_pages <= 4096)
      c->hbt[i] = (int32_t)rand_range(-3, c->S0 + 3);
  }
  free(perm);
  return used;
}

static void make_loc(tloc *L, int decode, int64_t B, int64_t cap, int64_t maxlen) {
  memset(L, 0, sizeof *L);
  L->B = B;
  L->start = t_xmalloc((size_t)B * 4);
  L->len = t_xmalloc((size_t)B * 8);
  if (!decode) L->off = t_xmalloc((size_t)(B + 1) * 4);
  int64_t T = 0;
  for (int64_t b = 0; b < B; b++) {
    int64_t len = decode ? 1 : rand_range(0, maxlen);
    if (!decode && B > 1 && b == B / 2) len = 0; /* an empty sequence */
    if (len > cap) len = cap;
    L->len[b] = len;
    L->start[b] = (int32_t)rand_range(0, cap - (len ? len : 1));
    if (L->off) L->off[b] = (int32_t)T;
    T += len;
  }
  if (L->off) L->off[B] = (int32_t)T;
  L->T = T;
}

static void free_loc(tloc *L) {
  free(L->off), free(L->start), free(L->len);
}

typedef struct wcase {
  llmk_kv_format fmt;
  int64_t D, G, hkv, hq;
  int layout;      /* 0: contiguous; 16, 32, 64: paged with that page size; negative: sparse paged */
  int decode;
  int64_t B, maxlen;
  int op;          /* 0: rope_qkv_write with rope; 1: rope_qkv_write, rope NULL; 2: kv_cache_write */
  int style, partial, llama3, special;
  int64_t pad;     /* row padding of qkv and q_out */
  int bad;         /* rows the GPU must skip */
} wcase;

/* The CPU reference applied to one row (decode form, one sequence). */
static void cpu_one_row(const wcase *w, tcache *c, const llmk_rope_desc *rd, uint16_t *qkv, int64_t ldq,
                        uint16_t *qo, int64_t ldo, int64_t r, int64_t b, int32_t pos, const char *label) {
  const int64_t D = w->D, width = (w->hq + 2 * w->hkv) * D;
  llmk_kv_cache cv = tc_view(c, 0, b);
  llmk_kv_loc loc = LLMK_KV_LOC_INIT;
  loc.start_pos = llmk_tensor_1d(&pos, LLMK_I32, 1);
  llmk_status s;
  if (w->op < 2) {
    llmk_tensor x = llmk_tensor_2d(qkv + r * ldq, LLMK_BF16, 1, width, width);
    llmk_tensor q = heads3(qo + r * ldo, LLMK_BF16, 1, w->hq, D, w->hq * D);
    s = llmk_rope_qkv_write(cpu, w->op == 0 ? rd : NULL, &x, w->hq, &cv, &loc, &q, NULL);
  } else {
    llmk_tensor k = heads3(qkv + r * ldq + w->hq * D, LLMK_BF16, 1, w->hkv, D, w->hkv * D);
    llmk_tensor v = heads3(qkv + r * ldq + (w->hq + w->hkv) * D, LLMK_BF16, 1, w->hkv, D, w->hkv * D);
    s = llmk_kv_cache_write(cpu, &cv, &k, &v, &loc, NULL);
  }
  CHECK(s == LLMK_SUCCESS, "%s: cpu row %lld: %s", label, (long long)r, llmk_last_error());
}

static void write_case(const wcase *w) {
  const int64_t D = w->D, hkv = w->hkv, hq = w->hq, width = (hq + 2 * hkv) * D;
  const int paged = w->layout != 0, sparse = w->layout < 0;
  const int64_t page = paged ? (sparse ? -w->layout : w->layout) : 0;
  /* capacity per sequence */
  const int64_t cap = sparse ? (INT64_C(1) << 20) : paged ? page * rand_range(2, 6) : 4 * rand_range(4, 40);
  tloc L;
  make_loc(&L, w->decode, w->B, cap, w->maxlen);
  /* rows the GPU must skip: positions past the capacity or negative, pages outside the pool */
  int32_t lead = 0, trail = 0;
  int64_t *bad_page = NULL; /* paged: the block-table entry to spoil, per sequence (-1: none) */
  if (w->bad) {
    bad_page = t_xmalloc((size_t)L.B * 8);
    for (int64_t b = 0; b < L.B; b++) {
      bad_page[b] = -1;
      if (!L.len[b]) continue;
      const int kind = (int)(t_rand_u64() % 5);
      if (kind == 0) L.start[b] = (int32_t)rand_range(-40, -1);                       /* some rows negative */
      else if (kind == 1) L.start[b] = (int32_t)(cap - rand_range(0, L.len[b] > 1 ? L.len[b] - 1 : 0)); /* straddles the end */
      else if (kind == 2) L.start[b] = (int32_t)(cap + rand_range(0, 1000));           /* all past the end */
      else if (kind == 3 && paged) bad_page[b] = 1;                                    /* a spoiled page */
    }
    if (L.off) { /* rows no sequence covers: two before, three after */
      lead = 2, trail = 3;
      for (int64_t b = 0; b <= L.B; b++) L.off[b] += lead;
    }
  }
  const int64_t T = L.T + lead + trail;
  if (T == 0) {
    free_loc(&L);
    free(bad_page);
    return;
  }

  tcache c;
  if (paged) {
    int64_t need = 0; /* pages for the rows inside the capacity */
    for (int64_t b = 0; b < L.B; b++) {
      int64_t s0 = L.start[b] < 0 ? 0 : L.start[b], s1 = L.start[b] + L.len[b];
      if (s1 > cap) s1 = cap;
      if (s1 > s0) need += (s1 - 1) / page - s0 / page + 1;
    }
    tc_init(&c, w->fmt, D, w->G, hkv, 1, need + rand_range(1, 8), page, L.B, cap / page);
    /* assign pages over the in-capacity part of each sequence */
    tloc Lc = L;
    int32_t *st = t_xmalloc((size_t)L.B * 4);
    int64_t *ln = t_xmalloc((size_t)L.B * 8);
    for (int64_t b = 0; b < L.B; b++) {
      int64_t s0 = L.start[b] < 0 ? 0 : L.start[b], s1 = L.start[b] + L.len[b];
      if (s1 > cap) s1 = cap;
      st[b] = (int32_t)s0, ln[b] = s1 > s0 ? s1 - s0 : 0;
    }
    Lc.start = st, Lc.len = ln;
    assign_pages(&c, &Lc, !w->bad);
    if (bad_page)
      for (int64_t b = 0; b < L.B; b++)
        if (bad_page[b] >= 0 && ln[b] > 0) {
          const int64_t j = st[b] / page; /* spoil the first page of the sequence's rows */
          c.hbt[b * c.bt_ld + j] = t_rand_u64() & 1 ? -1 - (int32_t)rand_range(0, 5) : (int32_t)(c.S0 + rand_range(0, 5));
          bad_page[b] = j;
        }
    free(st), free(ln);
  } else {
    tc_init(&c, w->fmt, D, w->G, hkv, 0, L.B + rand_range(0, 2), cap, 0, 0);
  }
  tc_upload(&c);

  char label[300];
  snprintf(label, sizeof label,
           "%s %s D=%lld G=%lld Hq=%lld Hkv=%lld %s B=%lld T=%lld op=%s %s R=%d llama3=%d pad=%lld%s%s",
           fmt_name(w->fmt), w->layout == 0 ? "contiguous" : sparse ? "paged-sparse" : "paged",
           (long long)D, (long long)c.G, (long long)hq, (long long)hkv,
           w->decode ? "decode" : "prefill", (long long)L.B, (long long)T,
           w->op == 0 ? "rope_qkv_write" : w->op == 1 ? "qkv_write(no rope)" : "kv_cache_write",
           w->style ? "neox" : "interleaved", w->partial, w->llama3, (long long)w->pad,
           w->special ? " nan-inf" : "", w->bad ? " skipped-rows" : "");
  if (paged) {
    char tail[40];
    snprintf(tail, sizeof tail, " page=%lld", (long long)page);
    strncat(label, tail, sizeof label - strlen(label) - 1);
  }

  /* inputs: qkv rows (kv_cache_write reads k and v as views of the same rows) */
  const int64_t ldq = width + w->pad, ldo = hq * D + w->pad;
  uint16_t *qkv = t_xmalloc((size_t)(T * ldq) * 2);
  fill_bf16_rows(qkv, T, hq + 2 * hkv, D, ldq, w->special);
  uint16_t *qo = t_xmalloc((size_t)(T * ldo) * 2), *gqo = t_xmalloc((size_t)(T * ldo) * 2);
  rand_bytes(qo, (size_t)(T * ldo) * 2);
  uint16_t *dqkv = dev_copy(qkv, (size_t)(T * ldq) * 2), *dqo = dev_copy(qo, (size_t)(T * ldo) * 2);
  const int32_t *hoff = L.off;
  int32_t *doff = L.off ? dev_copy(L.off, (size_t)(L.B + 1) * 4) : NULL;
  int32_t *dstart = dev_copy(L.start, (size_t)L.B * 4);
  const llmk_rope_desc rd = make_rope(D, w->style, w->partial, w->llama3, 500000.0);

  llmk_kv_loc hl = LLMK_KV_LOC_INIT, dl = LLMK_KV_LOC_INIT;
  hl.start_pos = llmk_tensor_1d(L.start, LLMK_I32, L.B);
  dl.start_pos = llmk_tensor_1d(dstart, LLMK_I32, L.B);
  if (hoff) {
    hl.offsets = llmk_tensor_1d((void *)hoff, LLMK_I32, L.B + 1);
    dl.offsets = llmk_tensor_1d(doff, LLMK_I32, L.B + 1);
  }

  /* the CPU: one call, or row by row over the rows the GPU must write */
  if (!w->bad) {
    llmk_kv_cache ch = tc_view(&c, 0, -1);
    llmk_status s;
    if (w->op < 2) {
      llmk_tensor x = llmk_tensor_2d(qkv, LLMK_BF16, T, width, ldq);
      llmk_tensor q = heads3(qo, LLMK_BF16, T, hq, D, ldo);
      s = llmk_rope_qkv_write(cpu, w->op == 0 ? &rd : NULL, &x, hq, &ch, &hl, &q, NULL);
    } else {
      llmk_tensor k = heads3(qkv + hq * D, LLMK_BF16, T, hkv, D, ldq);
      llmk_tensor v = heads3(qkv + (hq + hkv) * D, LLMK_BF16, T, hkv, D, ldq);
      s = llmk_kv_cache_write(cpu, &ch, &k, &v, &hl, NULL);
    }
    CHECK(s == LLMK_SUCCESS, "%s: cpu: %s", label, llmk_last_error());
  } else {
    int64_t skipped = 0;
    for (int64_t b = 0; b < L.B; b++) {
      const int64_t r0 = L.off ? L.off[b] : b;
      for (int64_t i = 0; i < L.len[b]; i++) {
        const int64_t r = r0 + i, pos = (int64_t)L.start[b] + i;
        int ok = pos >= 0 && pos < cap;
        if (ok && paged) {
          const int32_t pg = c.hbt[b * c.bt_ld + pos / page];
          ok = pg >= 0 && pg < c.S0;
        }
        if (ok) cpu_one_row(w, &c, &rd, qkv, ldq, qo, ldo, r, b, (int32_t)pos, label);
        else skipped++;
      }
    }
    CHECK(skipped > 0 || lead + trail > 0 || L.T == 0, "%s: the case skips no row", label);
  }

  /* the GPU: one call */
  {
    llmk_kv_cache cd = tc_view(&c, 1, -1);
    llmk_status s;
    if (w->op < 2) {
      llmk_tensor x = llmk_tensor_2d(dqkv, LLMK_BF16, T, width, ldq);
      llmk_tensor q = heads3(dqo, LLMK_BF16, T, hq, D, ldo);
      s = llmk_rope_qkv_write(gpu, w->op == 0 ? &rd : NULL, &x, hq, &cd, &dl, &q, NULL);
    } else {
      llmk_tensor k = heads3(dqkv + hq * D, LLMK_BF16, T, hkv, D, ldq);
      llmk_tensor v = heads3(dqkv + (hq + hkv) * D, LLMK_BF16, T, hkv, D, ldq);
      s = llmk_kv_cache_write(gpu, &cd, &k, &v, &dl, NULL);
    }
    CHECK(s == LLMK_SUCCESS, "%s: gpu: %s", label, llmk_last_error());
    T_CU(cudaDeviceSynchronize());
  }
  tc_compare(&c, label);
  from_dev(gqo, dqo, (size_t)(T * ldo) * 2);
  compare(label, "q_out", qo, gqo, T * ldo, 2);
  if (!w->bad && !w->special && n_cases % 3 == 0) tc_dequant_check(&c, label, 0);
  n_cases++;

  T_CU(cudaFree(dqkv));
  T_CU(cudaFree(dqo));
  if (doff) T_CU(cudaFree(doff));
  T_CU(cudaFree(dstart));
  free(qkv), free(qo), free(gqo), free(bad_page);
  tc_free(&c);
  free_loc(&L);
}

static void write_tests(void) {
  static const int layouts[] = {0, 16, 32, 64, -16, -64};
  static const int64_t Ds[] = {64, 128, 256};
  static const int64_t hkvs[] = {1, 2, 8};
  static const int64_t groups[] = {1, 4, 8};
  int k = 0;
  for (int f = 0; f < 4; f++)
    for (int li = 0; li < 6; li++)
      for (int dec = 0; dec < 2; dec++, k++) {
        wcase w;
        memset(&w, 0, sizeof w);
        w.fmt = (llmk_kv_format)f;
        w.D = Ds[(k + li) % 3];
        w.G = w.D >= 128 && (k / 3) % 2 ? 128 : 32;
        w.hkv = hkvs[k % 3];
        w.hq = w.hkv * groups[(k / 2) % 3];
        w.layout = layouts[li];
        w.decode = dec;
        w.B = dec ? (int64_t[]){1, 7, 40}[k % 3] : (int64_t[]){1, 3, 9}[k % 3];
        w.maxlen = 48;
        w.op = k % 3;
        w.style = (k / 3) % 2;
        w.partial = k % 4;
        w.llama3 = (k / 5) % 2;
        w.special = k % 5 == 2;
        w.pad = k % 4 == 1 ? 8 : k % 4 == 3 ? 3 : 0;
        write_case(&w);
      }
  /* rows the GPU skips, every format, contiguous and paged, decode and prefill */
  for (int f = 0; f < 4; f++)
    for (int li = 0; li < 3; li++)
      for (int dec = 0; dec < 2; dec++, k++) {
        wcase w;
        memset(&w, 0, sizeof w);
        w.fmt = (llmk_kv_format)f;
        w.D = Ds[k % 3];
        w.G = 32;
        w.hkv = 2;
        w.hq = 8;
        w.layout = (int[]){0, 16, 64}[li];
        w.decode = dec;
        w.B = dec ? 24 : 7;
        w.maxlen = 30;
        w.op = k % 3;
        w.style = k % 2;
        w.partial = k % 3 == 2 ? 2 : 0;
        w.bad = 1;
        write_case(&w);
      }
  /* Llama-3-70B heads, prefill of several hundred tokens per sequence */
  for (int f = 0; f < 4; f++) {
    wcase w;
    memset(&w, 0, sizeof w);
    w.fmt = (llmk_kv_format)f;
    w.D = 128, w.G = f == 3 ? 128 : 32, w.hkv = 8, w.hq = 64;
    w.layout = f % 2 ? 64 : -16;
    w.decode = 0;
    w.B = 4, w.maxlen = 700;
    w.op = f == 2 ? 2 : 0;
    w.style = f % 2, w.llama3 = 1;
    write_case(&w);
  }
  /* decode, Llama-3-70B heads, 64 sequences */
  wcase w;
  memset(&w, 0, sizeof w);
  w.fmt = LLMK_KV_FP8, w.D = 128, w.G = 32, w.hkv = 8, w.hq = 64, w.layout = 16, w.decode = 1;
  w.B = 64, w.maxlen = 1, w.op = 0, w.llama3 = 1;
  write_case(&w);
}

/* Dequantization of caches of random bytes (every code, NaN codes, random
 * parameters), both layouts' storage shapes. */
static void dequant_tests(void) {
  static const int64_t Ds[] = {64, 128, 256};
  for (int f = 0; f < 4; f++)
    for (int di = 0; di < 3; di++) {
      tcache c;
      const int64_t D = Ds[di], G = D >= 128 && f % 2 ? 128 : 32;
      tc_init(&c, (llmk_kv_format)f, D, G, (int64_t[]){1, 3, 8}[di], 0, 3, 20, 0, 0);
      tc_upload(&c);
      char label[120];
      snprintf(label, sizeof label, "random %s cache D=%lld G=%lld", fmt_name(c.fmt), (long long)D,
               (long long)c.G);
      tc_dequant_check(&c, label, di == 1 ? 1 : 0);
      tc_free(&c);
      n_cases++;
    }
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  t_seed();
  if (!t_hopper_handle("KV cache, RoPE and dequantize on the GPU", &gpu)) TEST_END();
  CHECK(llmk_create_cpu(&cpu) == LLMK_SUCCESS, "%s", llmk_last_error());
  rope_tests();
  write_tests();
  dequant_tests();
  printf("%d GPU-vs-CPU cases\n", n_cases);
  llmk_destroy(gpu);
  llmk_destroy(cpu);
  TEST_END();
}

#else
int main(void) {
  SKIP("built without CUDA");
  TEST_END();
}
#endif
