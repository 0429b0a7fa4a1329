/* Helpers shared by the CPU references of src/cpu/rope.c, kvcache.c and
 * attention.c (the numerics of include/llmk.h, written once). */
#ifndef LLMK_ATTN_CPU_H
#define LLMK_ATTN_CPU_H

#include "core/attn.h"

/* cos and sin, rounded to fp32, of the angle (double)pos * inv_freq[i] of
 * each pair i < r->n_pairs (computed in fp64). */
void llmk_cpu_rope_angles(const llmk_rope_plan *r, int64_t pos, float *c, float *s);

/* Rotates the first 2 r->n_pairs elements of one head v in place with the
 * table of llmk_cpu_rope_angles: pair (a, b) = (2i, 2i + 1) or (i, i + R/2),
 * y_a = x_a c - x_b s, y_b = x_a s + x_b c, each product rounded to fp32. */
void llmk_cpu_rope_rotate(const llmk_rope_plan *r, const float *c, const float *s, float *v);

/* The D values (llmk_kv_cache's value table, fp32) of token-head `slot`
 * ((s0 * S1 + s1) * Hkv + h) of K (is_v = 0) or V. */
void llmk_cpu_kv_load(const llmk_kv_plan *c, int is_v, int64_t slot, float *out);

#endif
