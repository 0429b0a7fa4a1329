/*
 * Bad inputs for the KV cache, RoPE and decode attention of include/llmk.h
 * (CPU backend): for every function, INVALID_ARGUMENT with a message
 * "<fn>: ..." naming the problem, and every byte of the arena (inputs and
 * outputs) unchanged; page-table entries and positions out of range; empty
 * calls. The values themselves: tests/test_attention_cpu.c.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_util.h"
#include "harness.h"
#include "llmk.h"

static llmk_handle H;
#define INV LLMK_ERR_INVALID_ARGUMENT

/* Every tensor of the bad calls lives in one arena, inputs and outputs; a
 * refused call must leave every byte of it as it was. */
enum { ARENA = 1 << 16 };
enum {
  O_K = 0, O_V = 2048, O_KP = 4096, O_VP = 4224, O_BT = 4352, /* cache */
  O_WK = 4608, O_WV = 5376, O_OFF = 6144, O_SP = 6160,          /* write */
  O_X = 6400, O_POS = 7936, O_Y = 8192,                         /* rope */
  O_QKV = 9728, O_QO = 12800,                                   /* qkv */
  O_KO = 14336, O_VO = 22528,                                   /* dequantize */
  O_Q = 30720, O_SL = 31744, O_OUT = 32768, O_LSE = 33792,      /* attention */
  O_INT4 = 34816                                                /* int4 params */
};
static uint8_t *g_arena, *g_arena_ref;

enum { OP_ROPE, OP_WRITE, OP_QKV, OP_DEQ, OP_ATTN };
static const char *const op_fn[] = {"llmk_rope", "llmk_kv_cache_write", "llmk_rope_qkv_write",
                                    "llmk_kv_cache_dequantize", "llmk_attention_decode"};
enum { N_DESC = 1, N_CACHE = 2, N_LOC = 4, N_T0 = 8, N_T1 = 16, N_T2 = 32, N_T3 = 64 };

typedef struct acall {
  int op;
  llmk_handle h;
  llmk_rope_desc rope; /* llmk_rope's desc; llmk_rope_qkv_write's (N_DESC: NULL) */
  llmk_kv_cache cache;
  llmk_kv_loc loc;
  llmk_attention_desc ad;
  int64_t hq;
  /* rope: x, positions, y; write: k, v; qkv: qkv, q_out; dequantize: k_out,
   * v_out; attention: q, seq_lens, out, lse */
  llmk_tensor t[4];
  unsigned nulls;
} acall;

static llmk_status do_acall(const acall *c) {
  const llmk_tensor *t0 = c->nulls & N_T0 ? NULL : &c->t[0], *t1 = c->nulls & N_T1 ? NULL : &c->t[1];
  const llmk_tensor *t2 = c->nulls & N_T2 ? NULL : &c->t[2], *t3 = c->nulls & N_T3 ? NULL : &c->t[3];
  const llmk_kv_cache *kc = c->nulls & N_CACHE ? NULL : &c->cache;
  const llmk_kv_loc *loc = c->nulls & N_LOC ? NULL : &c->loc;
  switch (c->op) {
    case OP_ROPE: return llmk_rope(c->h, c->nulls & N_DESC ? NULL : &c->rope, t0, t1, t2, NULL);
    case OP_WRITE: return llmk_kv_cache_write(c->h, kc, t0, t1, loc, NULL);
    case OP_QKV:
      return llmk_rope_qkv_write(c->h, c->nulls & N_DESC ? NULL : &c->rope, t0, c->hq, kc, loc, t1, NULL);
    case OP_DEQ: return llmk_kv_cache_dequantize(c->h, kc, t0, t1, NULL);
    default: return llmk_attention_decode(c->h, c->nulls & N_DESC ? NULL : &c->ad, t0, kc, t1, t2, t3, NULL);
  }
}

static void reset_arena(void) { memcpy(g_arena, g_arena_ref, ARENA); }

/* c must fail with INVALID_ARGUMENT, a fresh "<fn>: ..." message containing
 * `word`, and no byte of the arena changed. */
static void expect_bad(int line, const char *what, const acall *c, const char *word) {
  const char *fn = op_fn[c->op];
  (void)llmk_create_cpu(NULL); /* a message of another function */
  reset_arena();
  const llmk_status s = do_acall(c);
  const char *msg = llmk_last_error();
  const size_t fl = strlen(fn);
  const int fresh = strncmp(msg, fn, fl) == 0 && strncmp(msg + fl, ": ", 2) == 0;
  const int named = strstr(msg, word) != NULL;
  const int intact = memcmp(g_arena, g_arena_ref, ARENA) == 0;
  if (getenv("LLMK_TEST_VERBOSE")) printf("line %d: %s: %s\n", line, what, msg);
  CHECK(s == INV && fresh && named && intact, "line %d: %s: got %s, message \"%s\" (want \"%s: ...%s...\")%s",
        line, what, llmk_status_string(s), msg, fn, word, intact ? "" : "; it wrote to the arena");
}
#define BAD(what, c, word) expect_bad(__LINE__, what, &(c), word)

/* A valid call: succeeds (the arena is restored afterwards). */
static void expect_ok(int line, const char *what, const acall *c) {
  reset_arena();
  const llmk_status s = do_acall(c);
  CHECK(s == LLMK_SUCCESS, "line %d: %s: %s", line, what, llmk_last_error());
  reset_arena();
}
#define OK(what, c) expect_ok(__LINE__, what, &(c))

/* An empty valid call: succeeds and writes nothing. */
static void expect_empty(int line, const char *what, const acall *c) {
  reset_arena();
  const llmk_status s = do_acall(c);
  CHECK(s == LLMK_SUCCESS && memcmp(g_arena, g_arena_ref, ARENA) == 0, "line %d: %s: %s%s", line, what,
        llmk_status_string(s), s ? llmk_last_error() : " but it wrote to the arena");
}
#define EMPTY(what, c) expect_empty(__LINE__, what, &(c))

static void *AP(size_t off) { return g_arena + off; }

/* FP8 cache, contiguous [2, 8, 2, 64] or paged [4, 4, 2, 64] with a [2, 3]
 * block table of row pitch 4: {2, 0, -9 | 1, 3, -9}. */
static llmk_kv_cache base_cache(int paged) {
  llmk_kv_cache c = LLMK_KV_CACHE_INIT;
  c.format = LLMK_KV_FP8;
  const int64_t S0 = paged ? 4 : 2, S1 = paged ? 4 : 8;
  llmk_tensor st = {AP(O_K), LLMK_E4M3, 4, {S0, S1, 2, 64}, {S1 * 128, 128, 64, 1}};
  c.k = st;
  st.data = AP(O_V);
  c.v = st;
  llmk_tensor pt = {AP(O_KP), LLMK_F32, 3, {S0, S1, 2, 0}, {S1 * 2, 2, 1, 0}};
  c.k_param = pt;
  pt.data = AP(O_VP);
  c.v_param = pt;
  if (paged) c.block_table = llmk_tensor_2d(AP(O_BT), LLMK_I32, 2, 3, 4);
  return c;
}

static acall base_rope(void) {
  acall c;
  memset(&c, 0, sizeof c);
  c.op = OP_ROPE, c.h = H;
  c.rope = rope_desc(LLMK_ROPE_NEOX, 0, 10000.0, 1);
  c.t[0] = heads_t(AP(O_X), LLMK_F32, 3, 2, 64, 128);
  c.t[1] = llmk_tensor_1d(AP(O_POS), LLMK_I32, 3);
  c.t[2] = heads_t(AP(O_Y), LLMK_F32, 3, 2, 64, 128);
  return c;
}
static acall base_write(int paged) {
  acall c;
  memset(&c, 0, sizeof c);
  c.op = OP_WRITE, c.h = H;
  c.cache = base_cache(paged);
  c.loc = (llmk_kv_loc)LLMK_KV_LOC_INIT;
  c.t[0] = heads_t(AP(O_WK), LLMK_BF16, 3, 2, 64, 128);
  c.t[1] = heads_t(AP(O_WV), LLMK_BF16, 3, 2, 64, 128);
  c.loc.offsets = llmk_tensor_1d(AP(O_OFF), LLMK_I32, 3);
  c.loc.start_pos = llmk_tensor_1d(AP(O_SP), LLMK_I32, 2);
  return c;
}
static acall base_qkv(int paged) {
  acall c = base_write(paged);
  c.op = OP_QKV;
  c.hq = 4;
  c.rope = rope_desc(LLMK_ROPE_INTERLEAVED, 32, 500000.0, 0);
  c.t[0] = llmk_tensor_2d(AP(O_QKV), LLMK_BF16, 3, 512, 512);
  c.t[1] = heads_t(AP(O_QO), LLMK_BF16, 3, 4, 64, 256);
  return c;
}
static acall base_deq(void) {
  acall c;
  memset(&c, 0, sizeof c);
  c.op = OP_DEQ, c.h = H;
  c.cache = base_cache(0);
  llmk_tensor o = {AP(O_KO), LLMK_F32, 4, {2, 8, 2, 64}, {1024, 128, 64, 1}};
  c.t[0] = o;
  o.data = AP(O_VO);
  c.t[1] = o;
  return c;
}
static acall base_attn(int paged) {
  acall c;
  memset(&c, 0, sizeof c);
  c.op = OP_ATTN, c.h = H;
  c.cache = base_cache(paged);
  c.ad = (llmk_attention_desc)LLMK_ATTENTION_DESC_INIT;
  c.ad.softmax_scale = 0.125f;
  c.ad.max_seq_len = 8;
  c.t[0] = heads_t(AP(O_Q), LLMK_BF16, 2, 4, 64, 256);
  c.t[1] = llmk_tensor_1d(AP(O_SL), LLMK_I32, 2);
  c.t[2] = heads_t(AP(O_OUT), LLMK_BF16, 2, 4, 64, 256);
  c.t[3] = llmk_tensor_2d(AP(O_LSE), LLMK_F32, 2, 4, 4);
  return c;
}

static void set_i32(size_t off, int i, int32_t v) { memcpy(g_arena_ref + off + 4 * (size_t)i, &v, 4); }

static void init_arena(void) {
  g_arena = amalloc(ARENA);
  g_arena_ref = amalloc(ARENA);
  for (size_t i = 0; i < ARENA; i++) g_arena_ref[i] = (uint8_t)(t_rand_u64() >> 56);
  /* FP8 codes without NaN, positive scales, bf16 and f32 inputs of normal values */
  for (size_t i = O_K; i < O_KP; i++) g_arena_ref[i] &= 0x77;
  for (int i = 0; i < 64; i++) {
    float s = 0.01f + 0.001f * (float)i;
    memcpy(g_arena_ref + O_KP + 4 * i, &s, 4);
  }
  for (size_t i = O_WK; i < O_OFF; i += 2) {
    uint16_t b = bf(t_rand_normal());
    memcpy(g_arena_ref + i, &b, 2);
  }
  for (size_t i = O_QKV; i < O_KO; i += 2) {
    uint16_t b = bf(t_rand_normal());
    memcpy(g_arena_ref + i, &b, 2);
  }
  for (size_t i = O_Q; i < O_SL; i += 2) {
    uint16_t b = bf(t_rand_normal());
    memcpy(g_arena_ref + i, &b, 2);
  }
  for (size_t i = O_X; i < O_POS; i += 4) {
    float f = t_rand_normal();
    memcpy(g_arena_ref + i, &f, 4);
  }
  const int32_t bt[8] = {2, 0, -9, -9, 1, 3, -9, -9};
  for (int i = 0; i < 8; i++) set_i32(O_BT, i, bt[i]);
  set_i32(O_OFF, 0, 0), set_i32(O_OFF, 1, 2), set_i32(O_OFF, 2, 3);
  set_i32(O_SP, 0, 1), set_i32(O_SP, 1, 5);
  set_i32(O_POS, 0, 0), set_i32(O_POS, 1, 77), set_i32(O_POS, 2, 1 << 20);
  set_i32(O_SL, 0, 5), set_i32(O_SL, 1, 8);
  reset_arena();
}

static void bad_rope(llmk_handle bogus) {
  const acall c0 = base_rope();
  OK("rope: the base call", c0);
  { acall c = c0; c.h = NULL; BAD("rope: NULL handle", c, "handle"); }
  { acall c = c0; c.h = bogus; BAD("rope: garbage handle", c, "handle"); }
  { acall c = c0; c.nulls = N_DESC; BAD("rope: NULL desc", c, "desc"); }
  { acall c = c0; c.nulls = N_T0; BAD("rope: NULL x", c, "x is NULL"); }
  { acall c = c0; c.nulls = N_T1; BAD("rope: NULL positions", c, "positions is NULL"); }
  { acall c = c0; c.nulls = N_T2; BAD("rope: NULL y", c, "y is NULL"); }
  { acall c = c0; c.t[0].data = NULL; BAD("rope: x.data NULL", c, "x.data is NULL"); }
  { acall c = c0; c.t[1].data = NULL; BAD("rope: positions.data NULL", c, "positions.data is NULL"); }
  { acall c = c0; c.t[0].dtype = LLMK_E4M3; BAD("rope: x e4m3", c, "e4m3"); }
  { acall c = c0; c.t[0].dtype = (llmk_dtype)42; BAD("rope: x dtype 42", c, "dtype"); }
  { acall c = c0; c.t[2].dtype = LLMK_BF16; BAD("rope: y bf16 for f32 x", c, "y: expected dtype f32"); }
  { acall c = c0; c.t[1].dtype = LLMK_I64; BAD("rope: positions i64", c, "positions"); }
  { acall c = c0; c.t[0].ndim = 2; BAD("rope: x 2-D", c, "x: expected 3 dims"); }
  { acall c = c0; c.t[0].shape[2] = c.t[2].shape[2] = 32; c.t[0].strides[1] = c.t[2].strides[1] = 32;
    BAD("rope: D = 32", c, "64, 128 or 256"); }
  { acall c = c0; c.t[2].shape[1] = 1; BAD("rope: y H = 1", c, "y: expected shape[1]"); }
  { acall c = c0; c.t[2].shape[0] = 2; BAD("rope: y T = 2", c, "y: expected shape[0]"); }
  { acall c = c0; c.t[1].shape[0] = 4; BAD("rope: positions [4]", c, "positions"); }
  { acall c = c0; c.t[1].strides[0] = 2; BAD("rope: positions stride 2", c, "contiguous"); }
  { acall c = c0; c.t[0].strides[2] = 2; BAD("rope: x last stride 2", c, "stride"); }
  { acall c = c0; c.t[0].strides[1] = 65; BAD("rope: x head stride 65", c, "strides[1]"); }
  { acall c = c0; c.t[2].strides[0] = 127; BAD("rope: y row stride 127 < 128", c, "row stride"); }
  { acall c = c0; c.t[0].shape[0] = -3; BAD("rope: x T = -3", c, "shape[0]"); }
  { acall c = c0; c.t[0].strides[0] = -128; BAD("rope: x negative stride", c, "negative"); }
  { acall c = c0; c.t[0].shape[0] = c.t[2].shape[0] = c.t[1].shape[0] = INT64_C(1) << 47;
    BAD("rope: T = 2^47 (overflow)", c, "x"); }
  { acall c = c0; c.t[0].data = AP(O_X + 2); BAD("rope: x misaligned", c, "aligned"); }
  { acall c = c0; c.rope.rotary_dim = 63; BAD("rope: rotary_dim 63", c, "rotary_dim"); }
  { acall c = c0; c.rope.rotary_dim = 66; BAD("rope: rotary_dim 66 > D", c, "rotary_dim"); }
  { acall c = c0; c.rope.rotary_dim = -2; BAD("rope: rotary_dim -2", c, "rotary_dim"); }
  { acall c = c0; c.rope.style = (llmk_rope_style)2; BAD("rope: style 2", c, "style"); }
  { acall c = c0; c.rope.theta = 0; BAD("rope: theta 0", c, "theta"); }
  { acall c = c0; c.rope.theta = -10000; BAD("rope: theta < 0", c, "theta"); }
  { acall c = c0; c.rope.theta = INFINITY; BAD("rope: theta inf", c, "theta"); }
  { acall c = c0; c.rope.theta = NAN; BAD("rope: theta NaN", c, "theta"); }
  { acall c = c0; c.rope.llama3_factor = NAN; BAD("rope: llama3_factor NaN", c, "llama3_factor"); }
  { acall c = c0; c.rope.low_freq_factor = 0; BAD("rope: low_freq_factor 0", c, "low_freq_factor"); }
  { acall c = c0; c.rope.high_freq_factor = 1; BAD("rope: high == low", c, "high_freq_factor"); }
  { acall c = c0; c.rope.high_freq_factor = 0.5; BAD("rope: high < low", c, "high_freq_factor"); }
  { acall c = c0; c.rope.original_max_position = 0; BAD("rope: original_max_position 0", c, "original_max_position"); }
  { acall c = c0; c.rope.original_max_position = INFINITY; BAD("rope: original_max_position inf", c, "original_max_position"); }
  { acall c = c0; c.rope.llama3_factor = 0; c.rope.low_freq_factor = 0; c.rope.high_freq_factor = -1;
    OK("rope: factor 0 ignores the other llama3 fields", c); }
  { acall c = c0; c.t[2].data = AP(O_X + 256); BAD("rope: y overlaps x", c, "overlaps"); }
  { acall c = c0; c.t[2].data = AP(O_POS - 1536 + 16); BAD("rope: y overlaps positions", c, "overlaps"); }
  { acall c = c0; c.t[2] = c.t[0]; c.t[2].strides[0] = 256; c.t[2].shape[0] = 3;
    BAD("rope: y = x with another row stride", c, "overlaps"); }
  { acall c = c0; c.t[2] = c.t[0]; OK("rope: in place", c); }
  { acall c = c0; c.t[0].shape[0] = c.t[1].shape[0] = c.t[2].shape[0] = 0; EMPTY("rope: T = 0", c); }
  { acall c = c0; c.t[0].shape[1] = c.t[2].shape[1] = 0; EMPTY("rope: H = 0", c); }
}

/* Cache and loc mistakes, for any call that takes a cache (and loc). */
static void bad_cache(const acall *c0, int with_loc) {
  const char *fn = op_fn[c0->op];
  char w[160];
#define W(text) (snprintf(w, sizeof w, "%s: %s", fn, text), w)
  { acall c = *c0; c.nulls = N_CACHE; BAD(W("NULL cache"), c, "cache is NULL"); }
  { acall c = *c0; c.cache.format = (llmk_kv_format)4; BAD(W("format 4"), c, "format"); }
  { acall c = *c0; c.cache.k.dtype = LLMK_BF16; BAD(W("k storage bf16 for FP8"), c, "cache->k"); }
  { acall c = *c0; c.cache.v.dtype = LLMK_U8; BAD(W("v storage u8 for FP8"), c, "cache->v"); }
  { acall c = *c0; c.cache.k.data = NULL; BAD(W("k storage NULL"), c, "cache->k.data is NULL"); }
  { acall c = *c0; c.cache.v.shape[1] /= 2; BAD(W("v shape differs"), c, "cache->v"); }
  { acall c = *c0; c.cache.k.ndim = 3; BAD(W("k storage 3-D"), c, "cache->k: expected 4 dims"); }
  { acall c = *c0; c.cache.k.strides[0] += 64; BAD(W("k storage not contiguous"), c, "contiguous"); }
  { acall c = *c0; c.cache.k.shape[3] = c.cache.v.shape[3] = 32; c.cache.k.shape[2] = c.cache.v.shape[2] = 4;
    c.cache.k.strides[2] = c.cache.v.strides[2] = 32; c.cache.k.strides[1] = c.cache.v.strides[1] = 128;
    c.cache.k_param.shape[2] = c.cache.v_param.shape[2] = 4;
    BAD(W("D = 32"), c, "64, 128 or 256"); }
  { acall c = *c0; c.cache.k.data = AP(O_K + 8); BAD(W("k storage 8-byte aligned"), c, "16-byte"); }
  { acall c = *c0; c.cache.v_param.data = AP(O_VP + 4); BAD(W("v_param 4-byte aligned"), c, "16-byte"); }
  { acall c = *c0; c.cache.k_param.dtype = LLMK_F16; BAD(W("k_param f16 for FP8"), c, "cache->k_param"); }
  { acall c = *c0; c.cache.k_param.shape[2] = 1; BAD(W("k_param [.., 1]"), c, "cache->k_param"); }
  { acall c = *c0; c.cache.v_param.ndim = 4; BAD(W("v_param 4-D"), c, "cache->v_param"); }
  { acall c = *c0; c.cache.k_param.data = NULL; BAD(W("k_param NULL"), c, "cache->k_param.data is NULL"); }
  { acall c = *c0; c.cache.format = LLMK_KV_FP8_TENSOR; c.cache.k_param = llmk_tensor_1d(AP(O_KP), LLMK_F32, 2);
    c.cache.v_param = llmk_tensor_1d(AP(O_VP), LLMK_F32, 1); BAD(W("FP8_TENSOR k_param [2]"), c, "cache->k_param"); }
  /* INT4: u8 storage [.., 32], f16 params [.., 2 D / G] */
  acall i4 = *c0;
  i4.cache.format = LLMK_KV_INT4;
  i4.cache.int4_group = 32;
  i4.cache.k.dtype = i4.cache.v.dtype = LLMK_U8;
  i4.cache.k.shape[3] = i4.cache.v.shape[3] = 32;
  i4.cache.k.strides[2] = i4.cache.v.strides[2] = 32;
  i4.cache.k.strides[1] = i4.cache.v.strides[1] = 64;
  i4.cache.k.strides[0] = i4.cache.v.strides[0] = 64 * i4.cache.k.shape[1];
  {
    const int64_t S0 = i4.cache.k.shape[0], S1 = i4.cache.k.shape[1];
    llmk_tensor pt = {AP(O_INT4), LLMK_F16, 4, {S0, S1, 2, 4}, {S1 * 8, 8, 4, 1}};
    i4.cache.k_param = pt;
    pt.data = AP(O_INT4 + 1024);
    i4.cache.v_param = pt;
  }
  if (c0->op == OP_WRITE || c0->op == OP_DEQ || c0->op == OP_ATTN) OK(W("INT4 G = 32"), i4);
  { acall c = i4; c.cache.int4_group = 64; BAD(W("INT4 group 64"), c, "int4_group"); }
  { acall c = i4; c.cache.int4_group = 0; BAD(W("INT4 group 0"), c, "int4_group"); }
  { acall c = i4; c.cache.int4_group = 128; c.cache.k_param.shape[3] = c.cache.v_param.shape[3] = 1;
    BAD(W("INT4 group 128 > D = 64"), c, "int4_group"); }
  { acall c = i4; c.cache.k_param.shape[3] = 2; BAD(W("INT4 k_param [.., 2] for G = 32"), c, "cache->k_param"); }
  { acall c = i4; c.cache.v_param.dtype = LLMK_F32; BAD(W("INT4 v_param f32"), c, "cache->v_param"); }
  { acall c = i4; c.cache.k.dtype = c.cache.v.dtype = LLMK_E4M3; BAD(W("INT4 storage e4m3"), c, "cache->k"); }
  /* overlaps inside the cache */
  if (c0->op == OP_WRITE || c0->op == OP_QKV) { /* read-only calls may alias the storage */
    { acall c = *c0; c.cache.v.data = c.cache.k.data; BAD(W("v storage = k storage"), c, "overlaps"); }
    { acall c = *c0; c.cache.k_param.data = AP(O_V + 1024); BAD(W("k_param inside v storage"), c, "overlaps"); }
  }
  /* block table */
  const int paged = c0->cache.block_table.data != NULL;
  if (paged) {
    { acall c = *c0; c.cache.block_table.dtype = LLMK_I64; BAD(W("block_table i64"), c, "block_table"); }
    { acall c = *c0; c.cache.block_table.ndim = 1; BAD(W("block_table 1-D"), c, "block_table"); }
    { acall c = *c0; c.cache.block_table.strides[0] = 2; BAD(W("block_table row stride 2 < 3"), c, "block_table"); }
    { acall c = *c0; c.cache.block_table.strides[1] = 2; BAD(W("block_table column stride 2"), c, "block_table"); }
    { acall c = *c0; c.cache.block_table.data = AP(O_BT + 4); BAD(W("block_table 4-byte aligned"), c, "16-byte"); }
    if (c0->op != OP_DEQ) {
      acall c = *c0; c.cache.block_table.shape[0] = 3; BAD(W("block_table 3 rows for B = 2"), c, "rows");
    }
    { acall c = *c0; c.cache.k.shape[1] = c.cache.v.shape[1] = 3; c.cache.k.shape[0] = c.cache.v.shape[0] = 5;
      c.cache.k.strides[0] = c.cache.v.strides[0] = 3 * 128;
      c.cache.k_param.shape[0] = c.cache.v_param.shape[0] = 5; c.cache.k_param.shape[1] = c.cache.v_param.shape[1] = 3;
      c.cache.k_param.strides[0] = c.cache.v_param.strides[0] = 6;
      BAD(W("page_size 3"), c, "power of two"); }
  } else if (c0->op != OP_DEQ) {
    acall c = *c0; c.cache.k.shape[0] = c.cache.v.shape[0] = 1; c.cache.k_param.shape[0] = c.cache.v_param.shape[0] = 1;
    BAD(W("contiguous cache of 1 sequence for B = 2"), c, "sequences");
  }
  if (!with_loc) return;
  { acall c = *c0; c.nulls = N_LOC; BAD(W("NULL loc"), c, "loc is NULL"); }
  { acall c = *c0; c.loc.start_pos.dtype = LLMK_I64; BAD(W("start_pos i64"), c, "loc->start_pos"); }
  { acall c = *c0; c.loc.start_pos.ndim = 2; BAD(W("start_pos 2-D"), c, "loc->start_pos"); }
  { acall c = *c0; c.loc.offsets.shape[0] = 2; BAD(W("offsets [2] for B = 2"), c, "loc->offsets"); }
  { acall c = *c0; c.loc.offsets.dtype = LLMK_F32; BAD(W("offsets f32"), c, "loc->offsets"); }
  { acall c = *c0; c.loc.offsets.data = NULL; BAD(W("offsets NULL with B = 2 != T = 3"), c, "loc->start_pos"); }
  { acall c = *c0; c.loc.start_pos.data = AP(O_K + 64); BAD(W("start_pos inside the k storage"), c, "overlaps"); }
  /* values read at run time (CPU): offsets, positions, pages */
  const int32_t good_sp1 = 5;
  (void)good_sp1;
  { acall c = *c0; set_i32(O_OFF, 0, 1); BAD(W("offsets[0] = 1"), c, "offsets[0]"); set_i32(O_OFF, 0, 0); }
  { acall c = *c0; set_i32(O_OFF, 1, 4); BAD(W("offsets decrease"), c, "decrease"); set_i32(O_OFF, 1, 2); }
  { acall c = *c0; set_i32(O_OFF, 2, 2); BAD(W("offsets[B] = 2 != T"), c, "offsets[B]"); set_i32(O_OFF, 2, 3); }
  { acall c = *c0; set_i32(O_SP, 1, -1); BAD(W("negative position"), c, "position -1"); set_i32(O_SP, 1, 5); }
  { acall c = *c0; set_i32(O_SP, 0, paged ? 12 : 7); BAD(W("position past the capacity"), c, "outside the cache");
    set_i32(O_SP, 0, 1); }
  if (paged) {
    { acall c = *c0; set_i32(O_SP, 1, 8); BAD(W("page -9 (table column 2)"), c, "block_table[1][2] = -9");
      set_i32(O_SP, 1, 5); }
    { acall c = *c0; set_i32(O_BT, 5, 4); BAD(W("page 4 of 4"), c, "block_table[1][1] = 4"); set_i32(O_BT, 5, 3); }
    { acall c = *c0; set_i32(O_BT, 0, INT32_MIN); BAD(W("page INT32_MIN"), c, "block_table[0][0]");
      set_i32(O_BT, 0, 2); }
  }
  reset_arena();
  OK(W("the base call after the runtime cases"), *c0);
#undef W
}

static void bad_write(llmk_handle bogus) {
  for (int paged = 0; paged < 2; paged++) {
    const acall c0 = base_write(paged);
    OK("write: the base call", c0);
    { acall c = c0; c.h = NULL; BAD("write: NULL handle", c, "handle"); }
    { acall c = c0; c.h = bogus; BAD("write: garbage handle", c, "handle"); }
    { acall c = c0; c.nulls = N_T0; BAD("write: NULL k", c, "k is NULL"); }
    { acall c = c0; c.nulls = N_T1; BAD("write: NULL v", c, "v is NULL"); }
    { acall c = c0; c.t[0].dtype = LLMK_F32; BAD("write: k f32", c, "k: expected dtype bf16"); }
    { acall c = c0; c.t[1].shape[0] = 2; BAD("write: v T = 2", c, "v: expected shape[0]"); }
    { acall c = c0; c.t[0].shape[1] = 1; BAD("write: k Hkv = 1", c, "k: expected shape[1]"); }
    { acall c = c0; c.t[0].shape[2] = 128; c.t[0].strides[1] = 128; c.t[0].strides[0] = 256;
      BAD("write: k D = 128", c, "k: expected shape[2]"); }
    { acall c = c0; c.t[1].strides[0] = 100; BAD("write: v row stride 100", c, "row stride"); }
    { acall c = c0; c.t[0].data = AP(O_WK + 1); BAD("write: k odd address", c, "aligned"); }
    { acall c = c0; c.t[0].data = AP(O_K); BAD("write: k overlaps the k storage", c, "overlaps"); }
    { acall c = c0; c.t[1].data = AP(O_KP); BAD("write: v overlaps k_param", c, "overlaps"); }
    bad_cache(&c0, 1);
    /* empty: T = 0 (decode, B = 0; prefill, B = 2 of empty ranges) */
    { acall c = c0; c.t[0].shape[0] = c.t[1].shape[0] = 0; c.loc.offsets.data = NULL; c.loc.start_pos.shape[0] = 0;
      if (paged) c.cache.block_table.shape[0] = 0;
      EMPTY("write: T = 0, B = 0", c); }
    { acall c = c0; c.t[0].shape[0] = c.t[1].shape[0] = 0; set_i32(O_OFF, 1, 0), set_i32(O_OFF, 2, 0);
      EMPTY("write: T = 0, B = 2", c); set_i32(O_OFF, 1, 2), set_i32(O_OFF, 2, 3); reset_arena(); }
  }
}

static void bad_qkv(llmk_handle bogus) {
  for (int paged = 0; paged < 2; paged++) {
    const acall c0 = base_qkv(paged);
    OK("qkv: the base call", c0);
    { acall c = c0; c.nulls = N_DESC; OK("qkv: NULL rope (no rotation)", c); }
    { acall c = c0; c.h = NULL; BAD("qkv: NULL handle", c, "handle"); }
    { acall c = c0; c.h = bogus; BAD("qkv: garbage handle", c, "handle"); }
    { acall c = c0; c.nulls = N_T0; BAD("qkv: NULL qkv", c, "qkv is NULL"); }
    { acall c = c0; c.nulls = N_T1; BAD("qkv: NULL q_out", c, "q_out is NULL"); }
    { acall c = c0; c.hq = 0; BAD("qkv: num_q_heads 0", c, "num_q_heads"); }
    { acall c = c0; c.hq = -2; BAD("qkv: num_q_heads -2", c, "num_q_heads"); }
    { acall c = c0; c.hq = 3; BAD("qkv: num_q_heads 3 (Hkv 2)", c, "num_q_heads"); }
    { acall c = c0; c.hq = INT64_C(1) << 40; BAD("qkv: num_q_heads 2^40", c, "num_q_heads"); }
    { acall c = c0; c.t[0].shape[1] = 448; BAD("qkv: width 448", c, "qkv: shape[1]"); }
    { acall c = c0; c.t[0].dtype = LLMK_F16; BAD("qkv: qkv f16", c, "qkv: expected dtype bf16"); }
    { acall c = c0; llmk_tensor t = {AP(O_QKV), LLMK_BF16, 3, {3, 8, 64, 0}, {512, 64, 1, 0}}; c.t[0] = t;
      BAD("qkv: qkv 3-D", c, "qkv: expected 2 dims"); }
    { acall c = c0; c.t[0].strides[0] = 500; BAD("qkv: qkv row stride 500", c, "qkv"); }
    { acall c = c0; c.t[1].shape[1] = 2; BAD("qkv: q_out Hq = 2", c, "q_out: expected shape[1]"); }
    { acall c = c0; c.t[1].dtype = LLMK_F32; BAD("qkv: q_out f32", c, "q_out: expected dtype bf16"); }
    { acall c = c0; c.t[1].data = AP(O_QKV + 1024); BAD("qkv: q_out overlaps qkv", c, "overlaps"); }
    { acall c = c0; c.t[1].data = AP(O_K); BAD("qkv: q_out overlaps the k storage", c, "overlaps"); }
    { acall c = c0; c.t[0].data = AP(O_V - 512); BAD("qkv: qkv overlaps the v storage", c, "overlaps"); }
    { acall c = c0; c.rope.rotary_dim = 65; BAD("qkv: rotary_dim 65", c, "rotary_dim"); }
    { acall c = c0; c.rope.theta = 0; BAD("qkv: theta 0", c, "theta"); }
    bad_cache(&c0, 1);
    { acall c = c0; c.t[0].shape[0] = c.t[1].shape[0] = 0; c.loc.offsets.data = NULL; c.loc.start_pos.shape[0] = 0;
      if (paged) c.cache.block_table.shape[0] = 0;
      EMPTY("qkv: T = 0", c); }
  }
}

static void bad_deq(llmk_handle bogus) {
  const acall c0 = base_deq();
  OK("dequantize: the base call", c0);
  { acall c = c0; c.t[0].dtype = c.t[1].dtype = LLMK_BF16; OK("dequantize: bf16 outputs", c); }
  { acall c = c0; c.cache.block_table = llmk_tensor_2d(AP(O_BT), LLMK_I32, 7, 3, 4);
    c.cache.k.shape[0] = c.cache.v.shape[0] = 4; c.cache.k.shape[1] = c.cache.v.shape[1] = 4;
    c.cache.k.strides[0] = c.cache.v.strides[0] = 512;
    c.cache.k_param.shape[0] = c.cache.v_param.shape[0] = 4; c.cache.k_param.shape[1] = c.cache.v_param.shape[1] = 4;
    c.cache.k_param.strides[0] = c.cache.v_param.strides[0] = 8;
    c.t[0].shape[0] = c.t[1].shape[0] = 4; c.t[0].shape[1] = c.t[1].shape[1] = 4;
    c.t[0].strides[0] = c.t[1].strides[0] = 512;
    OK("dequantize: paged (any table rows, not read)", c); }
  { acall c = c0; c.h = NULL; BAD("dequantize: NULL handle", c, "handle"); }
  { acall c = c0; c.h = bogus; BAD("dequantize: garbage handle", c, "handle"); }
  { acall c = c0; c.nulls = N_T0; BAD("dequantize: NULL k_out", c, "k_out is NULL"); }
  { acall c = c0; c.nulls = N_T1; BAD("dequantize: NULL v_out", c, "v_out is NULL"); }
  { acall c = c0; c.t[0].dtype = LLMK_E4M3; BAD("dequantize: k_out e4m3", c, "k_out: expected dtype"); }
  { acall c = c0; c.t[1].dtype = LLMK_BF16; BAD("dequantize: v_out bf16, k_out f32", c, "v_out: dtype"); }
  { acall c = c0; c.t[0].shape[3] = 32; BAD("dequantize: k_out D = 32", c, "k_out: expected shape[3]"); }
  { acall c = c0; c.t[1].ndim = 3; BAD("dequantize: v_out 3-D", c, "v_out: expected 4 dims"); }
  { acall c = c0; c.t[0].strides[0] = 2048; BAD("dequantize: k_out not contiguous", c, "contiguous"); }
  { acall c = c0; c.t[1].data = c.t[0].data; BAD("dequantize: v_out = k_out", c, "overlaps"); }
  { acall c = c0; c.t[0].data = AP(O_K); BAD("dequantize: k_out over the cache", c, "overlaps"); }
  { acall c = c0; c.t[1].data = AP(O_VP - 4096); BAD("dequantize: v_out over v_param", c, "overlaps"); }
  bad_cache(&c0, 0);
  { acall c = c0; c.cache.k.shape[0] = c.cache.v.shape[0] = 0; c.cache.k_param.shape[0] = c.cache.v_param.shape[0] = 0;
    c.t[0].shape[0] = c.t[1].shape[0] = 0; EMPTY("dequantize: empty cache", c); }
}

static void bad_attn(llmk_handle bogus) {
  for (int paged = 0; paged < 2; paged++) {
    const acall c0 = base_attn(paged);
    OK("attention: the base call", c0);
    { acall c = c0; c.nulls = N_T3; OK("attention: NULL lse", c); }
    { acall c = c0; c.h = NULL; BAD("attention: NULL handle", c, "handle"); }
    { acall c = c0; c.h = bogus; BAD("attention: garbage handle", c, "handle"); }
    { acall c = c0; c.nulls = N_DESC; BAD("attention: NULL desc", c, "desc is NULL"); }
    { acall c = c0; c.nulls = N_T0; BAD("attention: NULL q", c, "q is NULL"); }
    { acall c = c0; c.nulls = N_T1; BAD("attention: NULL seq_lens", c, "seq_lens is NULL"); }
    { acall c = c0; c.nulls = N_T2; BAD("attention: NULL out", c, "out is NULL"); }
    { acall c = c0; c.ad.softmax_scale = NAN; BAD("attention: scale NaN", c, "softmax_scale"); }
    { acall c = c0; c.ad.softmax_scale = -INFINITY; BAD("attention: scale -inf", c, "softmax_scale"); }
    { acall c = c0; c.ad.num_splits = -1; BAD("attention: num_splits -1", c, "num_splits"); }
    { acall c = c0; c.ad.max_seq_len = -1; BAD("attention: max_seq_len -1", c, "max_seq_len"); }
    { acall c = c0; c.ad.max_seq_len = paged ? 13 : 9; BAD("attention: max_seq_len past the capacity", c, "max_seq_len"); }
    { acall c = c0; c.t[0].dtype = LLMK_F32; BAD("attention: q f32", c, "q: expected dtype bf16"); }
    { acall c = c0; c.t[0].shape[2] = 128; c.t[0].strides[1] = 128; c.t[0].strides[0] = 512;
      BAD("attention: q D = 128 for a D = 64 cache", c, "q: expected shape[2]"); }
    { acall c = c0; c.t[0].shape[1] = c.t[2].shape[1] = 3; c.t[3].shape[1] = 3; c.t[3].strides[0] = 3;
      BAD("attention: Hq = 3, Hkv = 2", c, "Hq"); }
    { acall c = c0; c.t[0].shape[1] = c.t[2].shape[1] = 34; c.t[0].strides[0] = c.t[2].strides[0] = 34 * 64;
      c.t[3].shape[1] = 34; c.t[3].strides[0] = 34; BAD("attention: group 17", c, "group"); }
    { acall c = c0; c.t[0].shape[1] = 0; BAD("attention: Hq = 0", c, "Hq"); }
    { acall c = c0; c.t[1].shape[0] = 3; BAD("attention: seq_lens [3]", c, "seq_lens"); }
    { acall c = c0; c.t[1].dtype = LLMK_I64; BAD("attention: seq_lens i64", c, "seq_lens"); }
    { acall c = c0; c.t[2].shape[1] = 2; BAD("attention: out Hq = 2", c, "out: expected shape[1]"); }
    { acall c = c0; c.t[2].dtype = LLMK_F32; BAD("attention: out f32", c, "out: expected dtype bf16"); }
    { acall c = c0; c.t[2].strides[0] = 200; BAD("attention: out row stride 200", c, "row stride"); }
    { acall c = c0; c.t[3].shape[1] = 2; BAD("attention: lse [2, 2]", c, "lse"); }
    { acall c = c0; c.t[3].dtype = LLMK_BF16; BAD("attention: lse bf16", c, "lse"); }
    { acall c = c0; c.t[3].strides[0] = 8; BAD("attention: lse row stride 8", c, "lse"); }
    { acall c = c0; c.t[2].data = AP(O_Q + 512); BAD("attention: out overlaps q", c, "overlaps"); }
    { acall c = c0; c.t[3].data = AP(O_OUT + 16); BAD("attention: lse overlaps out", c, "overlaps"); }
    { acall c = c0; c.t[2].data = AP(O_V); BAD("attention: out overlaps the v storage", c, "overlaps"); }
    { acall c = c0; c.t[3].data = AP(O_SL); BAD("attention: lse overlaps seq_lens", c, "overlaps"); }
    if (paged) {
      { acall c = c0; c.t[3].data = AP(O_BT); BAD("attention: lse overlaps the block table", c, "overlaps"); }
      /* a length reaching the table's -9 entry (column 2) */
      { acall c = c0; c.ad.max_seq_len = 12; set_i32(O_SL, 1, 9); BAD("attention: page -9 in use", c, "block_table[1][2] = -9");
        set_i32(O_SL, 1, 8); }
      { acall c = c0; set_i32(O_BT, 1, 4); BAD("attention: page 4 of 4", c, "block_table[0][1] = 4"); set_i32(O_BT, 1, 0); }
      /* out-of-range pages past every sequence's length are not read */
      { acall c = c0; c.ad.max_seq_len = 12; OK("attention: -9 entries past the lengths", c); }
      { acall c = c0; set_i32(O_BT, 1, 4); set_i32(O_SL, 0, 4); OK("attention: bad page past the length", c);
        set_i32(O_BT, 1, 0); set_i32(O_SL, 0, 5); reset_arena(); }
    }
    bad_cache(&c0, 0);
    { acall c = c0; c.t[0].shape[0] = c.t[1].shape[0] = c.t[2].shape[0] = c.t[3].shape[0] = 0;
      if (paged) c.cache.block_table.shape[0] = 0;
      EMPTY("attention: B = 0", c); }
  }
}

static void test_bad_inputs(void) {
  init_arena();
  /* a handle-sized block of garbage (as tests/test_api_errors.c) */
  static unsigned char junk[256];
  memset(junk, 0x5A, sizeof junk);
  llmk_handle bogus = (llmk_handle)(void *)junk;
  bad_rope(bogus);
  bad_write(bogus);
  bad_qkv(bogus);
  bad_deq(bogus);
  bad_attn(bogus);
  free(g_arena), free(g_arena_ref);
}

int main(void) {
  t_seed();
  if (llmk_create_cpu(&H) != LLMK_SUCCESS) {
    fprintf(stderr, "llmk_create_cpu: %s\n", llmk_last_error());
    return 2;
  }
  test_bad_inputs();
  llmk_destroy(H);
  TEST_END();
}
