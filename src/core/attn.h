/* The validated forms of the KV-cache, RoPE and decode-attention calls,
 * shared by the CPU reference (src/cpu/) and the CUDA backend (src/cuda/).
 * src/core/attention_api.c fills them; the backends trust them. */
#ifndef LLMK_ATTN_H
#define LLMK_ATTN_H

#include "core/internal.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LLMK_ROPE_MAX_PAIRS 128 /* D <= 256 */

/* A cache's storage. Token-head (s0, s1, h) (s0 = sequence or page, s1 =
 * position or row in the page) has its data at byte
 * ((s0 * S1 + s1) * Hkv + h) * row_bytes of k / v, and its parameters at
 * element ((s0 * S1 + s1) * Hkv + h) * param_elems of k_param / v_param
 * (FP8: f32; INT4: f16 bits; FP8_TENSOR: element 0 for every token-head). */
typedef struct llmk_kv_plan {
  llmk_kv_format format;
  int paged;
  int64_t S0, S1; /* B_cache and T_max, or num_pages and page_size */
  int64_t hkv, d;
  int64_t group;       /* INT4: 32 or 128; else 0 */
  int64_t row_bytes;   /* D * 2 (BF16), D (FP8), D / 2 (INT4) */
  int64_t param_elems; /* per token-head: 1 (FP8), 2 D / G (INT4), 0 (BF16, FP8_TENSOR) */
  void *k, *v;
  void *k_param, *v_param; /* NULL for BF16 */
  int page_shift;          /* paged: log2(page_size) */
  const int32_t *block_table; /* paged: row b at block_table + b * bt_ld; else NULL */
  int64_t bt_rows, bt_cols, bt_ld;
} llmk_kv_plan;

/* Per-position capacity of one sequence: T_max, or max_pages * page_size. */
static inline int64_t llmk_kv_capacity(const llmk_kv_plan *c) {
  return c->paged ? c->bt_cols << c->page_shift : c->S1;
}

/* Rotary frequencies, computed once on the host (fp64) so that both
 * backends turn by the same angles. n_pairs = 0: no rotation. */
typedef struct llmk_rope_plan {
  int neox;
  int64_t n_pairs; /* R / 2 */
  double inv_freq[LLMK_ROPE_MAX_PAIRS];
} llmk_rope_plan;

/* T new tokens of B sequences (llmk_kv_loc). offsets NULL: row t is sequence t. */
typedef struct llmk_loc_plan {
  int64_t T, B;
  const int32_t *offsets;   /* [B + 1] or NULL */
  const int32_t *start_pos; /* [B] */
} llmk_loc_plan;

/* A strided [T, H, D] view: element (t, h, d) at t * ld + h * D + d. */
typedef struct llmk_heads {
  void *data;
  llmk_dtype dtype;
  int64_t T, H, D, ld;
} llmk_heads;

/* llmk_rope */
llmk_status llmk_cpu_rope(const llmk_rope_plan *r, const llmk_heads *x, const int32_t *pos,
                          const llmk_heads *y);
llmk_status llmk_cuda_rope(llmk_handle h, const llmk_rope_plan *r, const llmk_heads *x,
                           const int32_t *pos, const llmk_heads *y, void *stream);

/* llmk_kv_cache_write and llmk_rope_qkv_write: rows of K and V (bf16, Hkv
 * heads each, k and v may be column ranges of one qkv buffer) go into the
 * cache; r may rotate K first, and Q (q_in -> q_out) when q_out is given. */
typedef struct llmk_qkv_plan {
  llmk_heads q_in, q_out; /* q_out.data NULL: no Q (llmk_kv_cache_write) */
  llmk_heads k, v;        /* bf16 [T, Hkv, D] */
} llmk_qkv_plan;
llmk_status llmk_cpu_qkv_write(const llmk_rope_plan *r, const llmk_qkv_plan *q,
                               const llmk_kv_plan *c, const llmk_loc_plan *loc);
llmk_status llmk_cuda_qkv_write(llmk_handle h, const llmk_rope_plan *r, const llmk_qkv_plan *q,
                                const llmk_kv_plan *c, const llmk_loc_plan *loc, void *stream);

/* llmk_kv_cache_dequantize: k_out / v_out contiguous [S0, S1, Hkv, D] of out_dtype. */
llmk_status llmk_cpu_kv_dequantize(const llmk_kv_plan *c, void *k_out, void *v_out,
                                   llmk_dtype out_dtype);
llmk_status llmk_cuda_kv_dequantize(llmk_handle h, const llmk_kv_plan *c, void *k_out,
                                    void *v_out, llmk_dtype out_dtype, void *stream);

/* llmk_attention_decode */
typedef struct llmk_attn_plan {
  int64_t B, hq, group; /* group = Hq / Hkv */
  float softmax_scale;
  int64_t max_len;    /* desc->max_seq_len, <= llmk_kv_capacity */
  int32_t num_splits; /* desc->num_splits (0: choose) */
  const uint16_t *q;  /* bf16, (b, j, d) at b * ldq + j * D + d */
  int64_t ldq;
  const int32_t *seq_lens;
  uint16_t *out; /* bf16, (b, j, d) at b * ldo + j * D + d */
  int64_t ldo;
  float *lse; /* NULL or [B, Hq] */
} llmk_attn_plan;
llmk_status llmk_cpu_attention_decode(const llmk_attn_plan *a, const llmk_kv_plan *c);
llmk_status llmk_cuda_attention_decode(llmk_handle h, const llmk_attn_plan *a,
                                       const llmk_kv_plan *c, void *stream);

#ifdef __cplusplus
}
#endif
#endif
