/* Argument checks shared by the KV-cache, RoPE and decode-attention entry
 * points (src/core/kvcache_api.c, src/core/attention_api.c). Each helper
 * validates one argument of include/llmk.h's "KV cache, RoPE and decode
 * attention" section, records "<fn>: <what was wrong>" on failure and fills
 * the matching part of a plan of src/core/attn.h. */
#ifndef LLMK_ATTN_CHECK_H
#define LLMK_ATTN_CHECK_H

#include "core/attn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The byte range [lo, hi) of one argument, for the overlap checks. */
typedef struct llmk_range {
  const char *name;
  uintptr_t lo, hi;
  int written; /* the call writes it */
} llmk_range;

/* Refuses the call if any written range shares a byte with any other range. */
llmk_status llmk_attn_check_overlaps(const char *fn, const llmk_range *r, int n);

/* The range a row view touches, and that of `bytes` bytes at p (empty for
 * NULL p or no bytes). */
llmk_range llmk_range_of_mat(const llmk_mat *m, const char *name, int written);
llmk_range llmk_range_of_bytes(const void *p, size_t bytes, const char *name, int written);

/* t: [T, H, D] with strides {>= H D, D, 1} (llmk.h's head layout). dtype
 * `dt` (or any valid dtype when dt < 0: the caller checks it); T, H, D the
 * sizes it must have, or -1 for any. Fills *x and, if r, its range. */
llmk_status llmk_attn_check_heads(const llmk_tensor *t, const char *fn, const char *name, int dt,
                                  int64_t T, int64_t H, int64_t D, llmk_heads *x, llmk_range *r);

/* t: a contiguous 1-D tensor of n elements of dtype dt. Fills *r. */
llmk_status llmk_attn_check_vec(const llmk_tensor *t, const char *fn, const char *name,
                                llmk_dtype dt, int64_t n, llmk_range *r);

/* Ranges of a cache, in this order: k, v, k_param, v_param, block_table
 * (empty where unused). */
enum { LLMK_CR_K, LLMK_CR_V, LLMK_CR_KP, LLMK_CR_VP, LLMK_CR_BT, LLMK_CR_N };

/* The cache: format, storage, parameters, group, block table (any number
 * of rows; see llmk_attn_check_batch). Fills *p and r[LLMK_CR_N]. */
llmk_status llmk_attn_check_cache(const llmk_kv_cache *c, const char *fn, llmk_kv_plan *p,
                                  llmk_range *r);

/* A call over B sequences: a contiguous cache must hold B of them, a paged
 * cache's block table must have B rows. */
llmk_status llmk_attn_check_batch(const llmk_kv_plan *p, const char *fn, int64_t B);

/* desc of a rotation of heads of D elements; fills the plan, inv_freq
 * included (llmk.h's llmk_rope_desc rule, fp64). */
llmk_status llmk_attn_make_rope(const llmk_rope_desc *d, const char *fn, int64_t D,
                                llmk_rope_plan *r);

/* loc for T new rows. Fills *p and r[0] (offsets), r[1] (start_pos). */
llmk_status llmk_attn_check_loc(const llmk_kv_loc *loc, const char *fn, int64_t T,
                                llmk_loc_plan *p, llmk_range *r);

/* 1 for D = 64, 128 or 256. */
static inline int llmk_attn_head_dim_ok(int64_t D) { return D == 64 || D == 128 || D == 256; }

#ifdef __cplusplus
}
#endif
#endif
