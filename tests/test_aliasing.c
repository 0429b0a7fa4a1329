/* Device-side bounds and counts that lie inside an output (include/llmk.h:
 * every op refuses them, with INVALID_ARGUMENT, a message naming the
 * argument, and nothing written). Each call is first made valid, then one
 * bound is moved into one output; every byte of the arena must be unchanged
 * after the refused call. Run on the CPU backend: the checks are the API
 * layer's, shared by both backends. */
#include <string.h>

#include "harness.h"
#include "llmk.h"

#define ARENA 65536
static _Alignas(256) unsigned char g_arena[ARENA], g_before[ARENA];
static llmk_handle H;

static void *at(size_t off) { return g_arena + off; }

/* Expects a refusal naming `word`, and an untouched arena. */
static void expect_refused(int line, const char *what, llmk_status s, const char *word) {
  const char *m = llmk_last_error();
  CHECK(s == LLMK_ERR_INVALID_ARGUMENT && strstr(m, word), "line %d: %s: %s, \"%s\" (wanted \"%s\")", line, what,
        llmk_status_string(s), m, word);
  CHECK(!memcmp(g_arena, g_before, ARENA), "line %d: %s: the refused call wrote to memory", line, what);
}
#define REFUSED(what, call, word)             \
  do {                                        \
    memcpy(g_before, g_arena, ARENA);         \
    expect_refused(__LINE__, what, (call), word); \
  } while (0)

static void fill(void) {
  uint64_t s = 7;
  for (size_t i = 0; i < ARENA; i++) s = s * 6364136223846793005ull + 1442695040888963407ull, g_arena[i] = (unsigned char)(s >> 56);
}

/* quantize: x f32 [4, 64] @0, xq [4, 64] @4096, scale @8192, bounds elsewhere (@12288). */
static void quantize_bounds(void) {
  fill();
  float *x = at(0);
  for (int i = 0; i < 256; i++) x[i] = (float)(i % 17) - 8.0f;
  float *ub = at(12288);
  int64_t *nr = at(12352);
  *ub = 4.0f, *nr = 3;
  const llmk_tensor tx = llmk_tensor_2d(x, LLMK_F32, 4, 64, 64), tq = llmk_tensor_2d(at(4096), LLMK_E4M3, 4, 64, 64);
  const llmk_tensor ts = llmk_tensor_1d(at(8192), LLMK_F32, 4), ts1 = llmk_tensor_1d(at(8192), LLMK_F32, 1);
  llmk_quantize_desc d = LLMK_QUANTIZE_DESC_INIT;
  d.scaling = LLMK_SCALING_ROW, d.scale_ub = ub;
  CHECK(llmk_quantize_fp8(H, &d, &tx, &tq, &ts, NULL) == LLMK_SUCCESS, "valid row call: %s", llmk_last_error());
  d.scale_ub = (const float *)at(8192 + 8); /* scale[2] */
  REFUSED("quantize: scale_ub inside scale", llmk_quantize_fp8(H, &d, &tx, &tq, &ts, NULL), "scale_ub");
  d.scale_ub = (const float *)at(4096 + 64);
  REFUSED("quantize: scale_ub inside xq", llmk_quantize_fp8(H, &d, &tx, &tq, &ts, NULL), "scale_ub");
  d = (llmk_quantize_desc)LLMK_QUANTIZE_DESC_INIT;
  d.scaling = LLMK_SCALING_TENSOR, d.num_rows = nr;
  CHECK(llmk_quantize_fp8(H, &d, &tx, &tq, &ts1, NULL) == LLMK_SUCCESS, "valid tensor call: %s", llmk_last_error());
  d.num_rows = (const int64_t *)at(8192); /* overlaps the scale */
  REFUSED("quantize: num_rows over scale", llmk_quantize_fp8(H, &d, &tx, &tq, &ts1, NULL), "num_rows");
  d.num_rows = (const int64_t *)at(4096 + 128);
  REFUSED("quantize: num_rows inside xq", llmk_quantize_fp8(H, &d, &tx, &tq, &ts1, NULL), "num_rows");
}

/* silu_mul_quant: gate, up bf16 [2, 128] @0 / @1024, xq @4096, scale @8192. */
static void silu_bounds(void) {
  fill();
  uint16_t *g = at(0);
  for (int i = 0; i < 512; i++) g[i] = llmk_float_to_bf16((float)(i % 9) - 4.0f);
  const llmk_tensor tg = llmk_tensor_2d(at(0), LLMK_BF16, 2, 128, 128), tu = llmk_tensor_2d(at(1024), LLMK_BF16, 2, 128, 128);
  const llmk_tensor tq = llmk_tensor_2d(at(4096), LLMK_E4M3, 2, 128, 128), ts = llmk_tensor_1d(at(8192), LLMK_F32, 2);
  float *ub = at(12288);
  *ub = 2.0f;
  llmk_quantize_desc d = LLMK_QUANTIZE_DESC_INIT;
  d.scaling = LLMK_SCALING_ROW, d.scale_ub = ub;
  CHECK(llmk_silu_mul_quant(H, &d, &tg, &tu, &tq, &ts, NULL) == LLMK_SUCCESS, "valid silu call: %s", llmk_last_error());
  d.scale_ub = (const float *)at(8192 + 4);
  REFUSED("silu_mul_quant: scale_ub inside scale", llmk_silu_mul_quant(H, &d, &tg, &tu, &tq, &ts, NULL), "scale_ub");
  d.scale_ub = (const float *)at(4096 + 16);
  REFUSED("silu_mul_quant: scale_ub inside xq", llmk_silu_mul_quant(H, &d, &tg, &tu, &tq, &ts, NULL), "scale_ub");
}

/* An FP8 cache of 2 sequences x 8 positions x 1 head of 64 (k @16384, v
 * @17408, params @18432 / @18496), paged when bt is given (2 pages of 8). */
static llmk_kv_cache fp8_cache(const int32_t *bt) {
  llmk_kv_cache c = LLMK_KV_CACHE_INIT;
  c.format = LLMK_KV_FP8;
  c.k = llmk_tensor_4d(at(16384), LLMK_E4M3, 2, 8, 1, 64);
  c.v = llmk_tensor_4d(at(17408), LLMK_E4M3, 2, 8, 1, 64);
  c.k_param = llmk_tensor_3d(at(18432), LLMK_F32, 2, 8, 1);
  c.v_param = llmk_tensor_3d(at(18496), LLMK_F32, 2, 8, 1);
  if (bt) c.block_table = llmk_tensor_2d((void *)bt, LLMK_I32, 2, 1, 1);
  return c;
}

/* kv_cache_write of 2 decode rows (k, v bf16 [2, 1, 64] @0, @256), then
 * rope_qkv_write (qkv [2, 3 * 64] @512, q_out [2, 1, 64] @2048). */
static void cache_bounds(int paged) {
  fill();
  uint16_t *kv = at(0);
  for (int i = 0; i < 2048 / 2; i++) kv[i] = llmk_float_to_bf16((float)(i % 5) * 0.25f);
  int32_t *pos = at(12288), *bt = at(12352);
  pos[0] = 1, pos[1] = 2, bt[0] = 1, bt[1] = 0;
  llmk_kv_cache c = fp8_cache(paged ? bt : NULL);
  const llmk_tensor tk = llmk_tensor_3d(at(0), LLMK_BF16, 2, 1, 64), tv = llmk_tensor_3d(at(256), LLMK_BF16, 2, 1, 64);
  llmk_kv_loc loc = LLMK_KV_LOC_INIT;
  loc.start_pos = llmk_tensor_1d(pos, LLMK_I32, 2);
  const char *w = paged ? "paged kv_cache_write" : "kv_cache_write";
  CHECK(llmk_kv_cache_write(H, &c, &tk, &tv, &loc, NULL) == LLMK_SUCCESS, "valid %s: %s", w, llmk_last_error());
  llmk_kv_loc bad = loc;
  bad.start_pos.data = at(16384 + 64); /* inside k storage */
  REFUSED(w, llmk_kv_cache_write(H, &c, &tk, &tv, &bad, NULL), "start_pos");
  bad.start_pos.data = at(18496); /* inside v's scales */
  REFUSED(w, llmk_kv_cache_write(H, &c, &tk, &tv, &bad, NULL), "start_pos");
  int32_t *offs = at(12416);
  offs[0] = 0, offs[1] = 1, offs[2] = 2;
  bad = loc;
  bad.offsets = llmk_tensor_1d(at(17408 + 128), LLMK_I32, 3); /* inside v storage */
  REFUSED(w, llmk_kv_cache_write(H, &c, &tk, &tv, &bad, NULL), "offsets");
  if (paged) {
    llmk_kv_cache cb = c;
    cb.block_table.data = at(16384); /* the block table inside the storage it indexes */
    REFUSED(w, llmk_kv_cache_write(H, &cb, &tk, &tv, &loc, NULL), "block_table");
  }
  const llmk_tensor qkv = llmk_tensor_2d(at(512), LLMK_BF16, 2, 192, 192);
  const llmk_tensor qo = llmk_tensor_3d(at(2048), LLMK_BF16, 2, 1, 64);
  CHECK(llmk_rope_qkv_write(H, NULL, &qkv, 1, &c, &loc, &qo, NULL) == LLMK_SUCCESS, "valid rope_qkv_write: %s",
        llmk_last_error());
  bad = loc;
  bad.start_pos.data = at(2048 + 32); /* inside q_out */
  REFUSED("rope_qkv_write: start_pos inside q_out", llmk_rope_qkv_write(H, NULL, &qkv, 1, &c, &bad, &qo, NULL),
          "start_pos");
}

/* attention_decode over the cache above: q [2, 1, 64] @0, out @2048, lse @3072. */
static void attention_bounds(int paged) {
  fill();
  int32_t *bt = at(12352), *lens = at(12288);
  bt[0] = 1, bt[1] = 0, lens[0] = 3, lens[1] = 5;
  float *kp = at(18432);
  for (int i = 0; i < 32; i++) kp[i] = 0.01f; /* k and v scales */
  unsigned char *codes = at(16384);
  for (int i = 0; i < 2048; i++) codes[i] = (unsigned char)(i % 7) * 8;
  uint16_t *q = at(0);
  for (int i = 0; i < 128; i++) q[i] = llmk_float_to_bf16(0.1f * (float)(i % 3));
  llmk_kv_cache c = fp8_cache(paged ? bt : NULL);
  const llmk_tensor tq = llmk_tensor_3d(at(0), LLMK_BF16, 2, 1, 64), to = llmk_tensor_3d(at(2048), LLMK_BF16, 2, 1, 64);
  const llmk_tensor tl = llmk_tensor_2d(at(3072), LLMK_F32, 2, 1, 1);
  llmk_tensor sl = llmk_tensor_1d(lens, LLMK_I32, 2);
  llmk_attention_desc d = LLMK_ATTENTION_DESC_INIT;
  d.softmax_scale = 0.125f, d.max_seq_len = 8;
  const char *w = paged ? "paged attention" : "attention";
  CHECK(llmk_attention_decode(H, &d, &tq, &c, &sl, &to, &tl, NULL) == LLMK_SUCCESS, "valid %s: %s", w,
        llmk_last_error());
  sl.data = at(2048 + 64);
  REFUSED(w, llmk_attention_decode(H, &d, &tq, &c, &sl, &to, &tl, NULL), "seq_lens");
  sl.data = at(3072);
  REFUSED(w, llmk_attention_decode(H, &d, &tq, &c, &sl, &to, &tl, NULL), "seq_lens");
  if (paged) {
    sl.data = lens;
    c.block_table.data = at(2048);
    REFUSED(w, llmk_attention_decode(H, &d, &tq, &c, &sl, &to, &tl, NULL), "block_table");
  }
}

/* rope: x f32 [2, 1, 64] @0, y @1024, positions @4096. */
static void rope_bounds(void) {
  fill();
  float *x = at(0);
  for (int i = 0; i < 128; i++) x[i] = (float)(i % 4);
  int32_t *pos = at(4096);
  pos[0] = 3, pos[1] = 9;
  llmk_rope_desc d = LLMK_ROPE_DESC_INIT;
  d.theta = 10000.0;
  const llmk_tensor tx = llmk_tensor_3d(x, LLMK_F32, 2, 1, 64), ty = llmk_tensor_3d(at(1024), LLMK_F32, 2, 1, 64);
  llmk_tensor tp = llmk_tensor_1d(pos, LLMK_I32, 2);
  CHECK(llmk_rope(H, &d, &tx, &tp, &ty, NULL) == LLMK_SUCCESS, "valid rope: %s", llmk_last_error());
  tp.data = at(1024 + 8);
  REFUSED("rope: positions inside y", llmk_rope(H, &d, &tx, &tp, &ty, NULL), "positions");
  tp.data = at(16); /* in place: positions inside x = y */
  REFUSED("rope in place: positions inside x", llmk_rope(H, &d, &tx, &tp, &tx, NULL), "positions");
}

int main(void) {
  if (llmk_create_cpu(&H) != LLMK_SUCCESS) {
    CHECK(0, "llmk_create_cpu: %s", llmk_last_error());
    TEST_END();
  }
  quantize_bounds();
  silu_bounds();
  cache_bounds(0);
  cache_bounds(1);
  attention_bounds(0);
  attention_bounds(1);
  rope_bounds();
  llmk_destroy(H);
  TEST_END();
}
