/*
 * opcheck: every op of llmk.h run on every backend against the CPU backend,
 * one case definition per op and shape (after ggml's test-backend-ops).
 *
 * A case (oc_case) names its op, its parameters and its buffers: each
 * buffer has a role (input, output, or in-place), a dtype, the view the op
 * reads or writes, and how CUDA's result is compared with the CPU's
 * (bitwise, NaN-equal, or the op's documented tolerance through the case's
 * compare function). The case's fill function writes the inputs (seeded
 * from the case), its run function calls the op on one backend.
 *
 * oc_run allocates every buffer on each backend with guard zones before
 * and after it, fills the inputs (their padding and guards with random
 * bytes, identical on both backends, so reading them shows in the
 * result), poisons every output with its guards and row padding, runs the
 * op, and checks, per backend:
 *   - the status (SUCCESS; a case may let CUDA answer NOT_SUPPORTED, then
 *     counted as skipped, and nothing may have been written);
 *   - that no guard or padding byte of an output changed, and that no byte
 *     of an input changed;
 *   - that every output element was written: the op runs twice, with two
 *     different poisons, and both runs must give the same bytes;
 * then compares CUDA's outputs with the CPU's. Without a Hopper GPU the CPU
 * part still runs (both poisons). The perf mode times the case on CUDA
 * (CUDA events with L2 flushed, and CUDA-graph replay) and turns the bytes
 * the op moves into GB/s.
 *
 * Public API only: llmk.h, libc and (with LLMK_WITH_CUDA) the CUDA runtime.
 */
#ifndef LLMK_OPCHECK_H
#define LLMK_OPCHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "llmk.h"

#define OC_MAX_BUFS 12
#define OC_MAX_KEYS 8
/* Bytes of poison before and after every buffer (keeps 256-byte alignment). */
#define OC_GUARD 256

/* ---- random numbers ------------------------------------------------------- */

typedef struct oc_rng {
  uint64_t s;
  int has_spare; /* oc_normal's second value */
  float spare;
} oc_rng;
void oc_rng_seed(oc_rng *r, uint64_t seed);
uint64_t oc_rand(oc_rng *r);
double oc_uniform(oc_rng *r);                /* [0, 1) */
float oc_normal(oc_rng *r);                  /* N(0, 1) */
int64_t oc_range(oc_rng *r, int64_t lo, int64_t hi); /* [lo, hi] */
/* An independent stream: the i-th of those split from a base value (rows
 * filled in parallel get the same values whatever the thread count). */
void oc_rng_split(oc_rng *r, uint64_t base, uint64_t i);
void oc_rand_bytes(oc_rng *r, void *p, size_t n);

/* ---- buffers and cases ------------------------------------------------------ */

typedef enum oc_role {
  OC_IN = 0,   /* read only: every byte (guards too) must be unchanged */
  OC_OUT = 1,  /* poisoned: every element of the view written, nothing else */
  OC_INOUT = 2 /* filled, then updated in place: the whole buffer compared */
} oc_role;

typedef enum oc_cmp {
  OC_CMP_BITS = 0,   /* CUDA = CPU, bit for bit */
  OC_CMP_NANEQ = 1,  /* bit for bit, except that any two NaNs are equal (f32, f16, bf16) */
  OC_CMP_CUSTOM = 2, /* the case's compare function (a documented tolerance) */
  OC_CMP_NONE = 3    /* not compared across backends */
} oc_cmp;

typedef struct oc_buf {
  const char *name;
  oc_role role;
  oc_cmp cmp;
  llmk_dtype dtype;
  int32_t ndim; /* the view: shape and strides in elements, from `offset` */
  int64_t shape[LLMK_MAX_DIMS], strides[LLMK_MAX_DIMS];
  int64_t offset; /* elements from the buffer's 256-byte aligned start to the view */
  size_t bytes;   /* the buffer's size; oc_buf_* set it to the view's extent */
} oc_buf;

typedef struct oc_case oc_case;

/* The backend a run function calls: the handle, every buffer's start and
 * its view on that backend, and the host images of the inputs (identical to
 * the backend's inputs; a CPU reference may read its positions there). */
typedef struct oc_env {
  llmk_handle h;
  llmk_backend backend;
  void *base[OC_MAX_BUFS];
  llmk_tensor t[OC_MAX_BUFS];
  void *const *host;
} oc_env;

/* Writes the inputs and in-place buffers (host images of `bytes` each; the
 * harness filled them with random bytes first). cpu is a CPU handle the
 * fill may use (e.g. to quantize GEMM operands). */
typedef void (*oc_fill_fn)(const oc_case *c, void *const *host, oc_rng *r, llmk_handle cpu);
typedef llmk_status (*oc_run_fn)(const oc_case *c, const oc_env *e, void *stream);
/* OC_CMP_CUSTOM: compares buffer `buf` (CUDA's image `got`, the CPU's
 * `ref`; `in` are the inputs' host images). Returns the number of
 * failures, after printing the first few (prefixed with `label`) to `log`. */
typedef int64_t (*oc_compare_fn)(const oc_case *c, int buf, void *const *in, const void *ref, const void *got,
                                 const char *label, FILE *log);

enum {
  OC_MAY_REFUSE = 1, /* CUDA may answer NOT_SUPPORTED (skipped; nothing written) */
  OC_QUICK = 2,      /* in the quick subset (LLMK_TEST_QUICK=1) */
  OC_CPU_ONLY = 4    /* no CUDA run (e.g. the CPU refuses positions CUDA skips) */
};

struct oc_case {
  char op[32];     /* the function's name less llmk_: "quantize_fp8", "gemm_fp8", ... */
  char name[224];  /* the parameters, for messages */
  char dtype[16];  /* the input dtype, for the bench rows */
  int nkeys;       /* the shape, for the bench rows: {"m": 16, "k": 8192} */
  char key[OC_MAX_KEYS][8];
  int64_t val[OC_MAX_KEYS];
  int nbuf;
  oc_buf buf[OC_MAX_BUFS];
  oc_fill_fn fill;
  oc_run_fn run;
  oc_compare_fn compare;
  double bytes;    /* bytes the op must move (perf mode: GB/s) */
  uint64_t seed;   /* of the fill */
  int flags;
  _Alignas(16) unsigned char p[512]; /* the family's parameters */
};
#define OC_PARAMS(c, type) ((type *)(void *)(c)->p)

/* Case construction. Each returns the buffer's index. */
void oc_case_init(oc_case *c, const char *op, uint64_t seed);
void oc_key(oc_case *c, const char *key, int64_t v);
/* A view of any strides at `offset` elements; bytes = its extent. */
int oc_buf_view(oc_case *c, const char *name, oc_role role, oc_cmp cmp, llmk_dtype dt, int ndim,
                const int64_t *shape, const int64_t *strides, int64_t offset);
/* [rows, cols] with row pitch ld (and the padding of the last row). */
int oc_buf_2d(oc_case *c, const char *name, oc_role role, oc_cmp cmp, llmk_dtype dt, int64_t rows, int64_t cols,
              int64_t ld, int64_t offset);
/* Contiguous row-major [shape]. */
int oc_buf_nd(oc_case *c, const char *name, oc_role role, oc_cmp cmp, llmk_dtype dt, int ndim, const int64_t *shape);
int oc_buf_1d(oc_case *c, const char *name, oc_role role, oc_cmp cmp, llmk_dtype dt, int64_t n);
/* Host pointer of element `elem` (view offset included) of buffer i's image. */
void *oc_at(const oc_case *c, void *const *host, int i, int64_t elem);
/* The view of buffer i at data pointer `base` (a buffer's start). */
llmk_tensor oc_view(const oc_case *c, int i, void *base);

/* ---- running ------------------------------------------------------------------ */

typedef struct oc_ctx {
  llmk_handle cpu, gpu; /* gpu: NULL without a Hopper GPU (why_no_gpu says why) */
  char why_no_gpu[200];
  FILE *log;            /* failures and their first mismatches (stderr) */
  int gpu_broken;       /* a CUDA error left the context unusable */
} oc_ctx;

/* Creates the CPU handle and, if want_gpu and a Hopper GPU is visible, a
 * CUDA handle on device 0. Returns 0 if the CPU handle failed. */
int oc_init(oc_ctx *x, int want_gpu);
void oc_fini(oc_ctx *x);

typedef struct oc_opts {
  int check;       /* 1: run and check (default); 0: perf only (CUDA, no CPU run) */
  int cpu_only;    /* do not run CUDA */
  int perf;        /* time CUDA (or, with cpu_only, the CPU: wall clock) */
  int reps;        /* timed calls (events, L2 flushed); default 20 */
  int graph_calls; /* calls per graph for the replay time; 0: none */
} oc_opts;
#define OC_OPTS_INIT {1, 0, 0, 20, 20}

typedef struct oc_result {
  int checks, failed, skipped; /* properties checked, failed; CUDA parts skipped */
  int gpu_ran;                 /* CUDA ran and was compared */
  char failure[320];           /* the first failure, one line */
  char skip_why[200];
  double median_us, graph_us;  /* perf: events (L2 flushed) and graph replay per call; 0: not measured */
  double gbps;                 /* bytes / (graph_us, else median_us) */
} oc_result;

/* Runs one case; returns 1 when nothing failed. */
int oc_run(oc_ctx *x, const oc_case *c, const oc_opts *o, oc_result *r);

/* CUDA timing of fn(ctx, stream): `reps` calls timed one by one with CUDA
 * events, 256 MiB written between calls to flush L2 (median), after 5
 * warm-up calls; then graph_calls calls captured in one graph, replayed 7
 * times (median per call). Without CUDA: NOT_SUPPORTED. */
typedef llmk_status (*oc_op_fn)(void *ctx, void *stream);
llmk_status oc_time_fn(oc_op_fn fn, void *ctx, int reps, int graph_calls, double *median_us, double *graph_us);

/* ---- case lists ----------------------------------------------------------------- */

typedef struct oc_list {
  oc_case *v;
  int n, cap;
} oc_list;
oc_case *oc_list_add(oc_list *l);
void oc_list_free(oc_list *l);

/* Every family's cases (quick: the quick subset), shapes fuzzed from seed. */
void oc_all_cases(oc_list *l, int quick, uint64_t seed);
void oc_quantize_cases(oc_list *l, int quick, uint64_t seed);
void oc_gemm_cases(oc_list *l, int quick, uint64_t seed);
void oc_gemm_grouped_cases(oc_list *l, int quick, uint64_t seed);
void oc_norm_cases(oc_list *l, int quick, uint64_t seed);
void oc_kvcache_cases(oc_list *l, int quick, uint64_t seed);
void oc_attention_cases(oc_list *l, int quick, uint64_t seed);
void oc_moe_cases(oc_list *l, int quick, uint64_t seed);
void oc_int4_cases(oc_list *l, int quick, uint64_t seed);

/* ---- the families' parameters (one case each) ------------------------------------- */

/* Input distributions (not every family uses all). */
enum {
  OC_D_NORMAL = 0, /* N(0, 1) times a magnitude */
  OC_D_OUTLIER,    /* 1% of values 1000x larger */
  OC_D_EQUAL_ROWS, /* every element of a row the same */
  OC_D_ZERO_ROWS,  /* every third row zero */
  OC_D_NAN_INF,    /* 1% NaN, 1% +Inf, 1% -Inf */
  OC_D_WIDE,       /* magnitudes 2^-36 .. 2^12 */
  OC_D_TINY,       /* around 2^-128 (bf16 subnormals) */
  OC_D_HUGE,       /* around 2^125 */
  OC_D_ROWS,       /* rows constant, zero, negative-constant or normal */
  OC_D_BENCH,      /* N(0, 1) with 1e-3 of values 100x larger (the benchmarks; filled in parallel) */
  OC_D_CONST,      /* every element 1.0 (perf-only cases) */
  OC_D_COUNT
};
const char *oc_dist_name(int dist);

/* llmk_quantize_fp8, and (dequant) llmk_dequantize_fp8 of the CPU's codes. */
typedef struct oc_quant_params {
  llmk_scaling scaling;
  int64_t bm, bk;      /* BLOCK */
  llmk_dtype xt, qt;   /* x: f32, f16, bf16; q: e4m3 or e5m2 (dequant: y is xt, f32 or bf16) */
  int64_t M, K;
  int64_t padx, padq;  /* row pitches K + pad */
  int64_t offx;        /* x's view starts this many elements into its buffer */
  int dist;
  int ub;              /* 0 none; 1 scale_ub below amax; 2 above */
  int64_t num_rows;    /* TENSOR: *num_rows; < -1000: NULL */
  int dequant;         /* 0 quantize; 1 dequantize */
} oc_quant_params;
void oc_quantize_case(oc_case *c, const oc_quant_params *p, uint64_t seed);

/* llmk_rmsnorm */
typedef struct oc_norm_params {
  int64_t M, K;
  int res;    /* 0 none, 1 separate residual_out, 2 in place */
  int fp8;    /* 0 bf16 y, 1 e4m3 y, 2 e4m3 y in two planes */
  int lay;    /* 0 dense, 1 row pitches (a 3-D view where M is even, one plane), 2 misaligned views, odd pitches */
  int dist;
} oc_norm_params;
void oc_norm_case(oc_case *c, const oc_norm_params *p, uint64_t seed);

/* llmk_silu_mul_quant */
typedef struct oc_silu_params {
  int64_t M, F;
  int out;    /* 0 e4m3 with row scales, 1 e4m3 with 1 x 128 scales, 2 bf16 */
  int ub;     /* 0 none; 1 below amax; 2 above */
  int lay;    /* 0 separate gate and up, 1 the halves of one [M, 2F] buffer, 2 misaligned, odd pitches */
  int dist;
} oc_silu_params;
void oc_silu_case(oc_case *c, const oc_silu_params *p, uint64_t seed);

/* llmk_gemm_fp8 and llmk_gemm_bf16 */
typedef struct oc_gemm_params {
  int bf16;            /* 1: llmk_gemm_bf16 */
  llmk_scaling scaling;
  int xblock;          /* BLOCK: x_scale 1: [M, KB] (1 x 128), 128: [ceil(M/128), KB] */
  int scale_colmajor;  /* BLOCK: both scales column-major */
  llmk_accum accum;
  llmk_gemm_backend backend;
  int64_t M, N, K;
  int bias;            /* 0 none, 1 f32, 2 bf16 */
  int64_t pady;        /* y row pitch N + pady */
  int64_t padx;        /* x row pitch K + padx (a multiple of 16 bytes for CUDA) */
  int dist;            /* OC_D_NORMAL, OC_D_OUTLIER, OC_D_WIDE (magnitudes per row) */
  int planes;          /* 2: x in two planes (ROW) */
} oc_gemm_params;
void oc_gemm_case(oc_case *c, const oc_gemm_params *p, uint64_t seed);

/* llmk_rope */
typedef struct oc_rope_params {
  llmk_dtype dt;
  int64_t T, H, D;
  llmk_rope_style style;
  int64_t rotary_dim;
  double theta;
  int llama3;
  int in_place;
  int64_t pad, off;
  int special;         /* NaN and +-Inf sprinkled */
} oc_rope_params;
void oc_rope_case(oc_case *c, const oc_rope_params *p, uint64_t seed);

/* llmk_kv_cache_write / llmk_rope_qkv_write / llmk_kv_cache_dequantize */
typedef struct oc_kv_params {
  int op;              /* 0 rope_qkv_write with rope, 1 rope_qkv_write without, 2 kv_cache_write, 3 kv_cache_dequantize */
  llmk_kv_format fmt;
  int64_t D, G, hkv, hq;
  int layout;          /* 0 contiguous; 16, 32, 64 paged; negative: paged, sparse (positions up to 2^20) */
  int decode;
  int64_t B, maxlen;
  llmk_rope_style style;
  int partial;         /* rotary dim: 0 D, 1 D / 2, 2 D - 28, 3 2 */
  int llama3, special;
  int64_t pad;         /* row padding of qkv and q_out */
  int bad;             /* rows CUDA must skip (the CPU reference runs the valid rows one by one) */
  llmk_dtype odt;      /* kv_cache_dequantize: f32 or bf16 */
  int64_t ooff;        /* kv_cache_dequantize: outputs this many elements into their buffers */
  int random_cache;    /* kv_cache_dequantize: random bytes (all codes) rather than written tokens */
} oc_kv_params;
void oc_kv_case(oc_case *c, const oc_kv_params *p, uint64_t seed);

/* llmk_attention_decode */
typedef struct oc_attn_params {
  llmk_kv_format fmt;
  int64_t D, hq, hkv, B, page, G;
  int32_t lens[8];
  int splits;
  int lse;
} oc_attn_params;
void oc_attention_case(oc_case *c, const oc_attn_params *p, uint64_t seed);

/* ---- shared by the family files ------------------------------------------------------ */

/* One value of a distribution (row value rv for OC_D_EQUAL_ROWS / OC_D_ROWS, kind: a row's kind). */
float oc_draw(oc_rng *r, int dist, int64_t row, float rv, int kind, float mag);
/* Element i of a f32, f16 or bf16 buffer. */
void oc_put(void *p, llmk_dtype dt, int64_t i, float v);
float oc_get(const void *p, llmk_dtype dt, int64_t i);
/* n values N(0, sigma) with a fraction `outliers` 100x larger, in parallel (chunked seeds). */
void oc_fill_bench(void *p, llmk_dtype dt, int64_t n, float sigma, double outliers, uint64_t seed);

/* A contiguous tensor of `nd` dims over data. */
llmk_tensor oc_tensor_nd(void *data, llmk_dtype dt, int nd, const int64_t *shape);

/* A KV cache's storage in a case (ops_kv.c): k and v [S0, S1, hkv, E] of
 * the format's storage dtype, and their parameters (FP8: f32 [S0, S1,
 * hkv]; FP8_TENSOR: f32 [1], always an input; INT4: f16 [S0, S1, hkv, pe]). */
typedef struct oc_kv_store {
  llmk_kv_format fmt;
  int64_t group; /* INT4 */
  int64_t S0, S1, hkv, E, pe;
  int ik, iv, ikp, ivp; /* buffer indices; -1 absent */
} oc_kv_store;
llmk_dtype oc_kv_storage_dtype(llmk_kv_format f);
/* Adds the store's buffers to c: storage and per-token parameters with
 * `role`, the storage compared with `storage_cmp`. */
void oc_kv_add(oc_case *c, oc_kv_store *s, oc_role role, oc_cmp storage_cmp);
/* The cache over the buffers at base (no block table): S0 of the store's
 * sequences or pages, starting at token-head `first`. */
llmk_kv_cache oc_kv_cache(const oc_kv_store *s, void *const *base, int64_t S0, int64_t first);

#endif
