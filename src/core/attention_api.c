/* llmk_attention_decode: argument checks (src/core/attn_check.c), then the
 * plan of src/core/attn.h goes to the CPU reference or to CUDA. Nothing is
 * written when a check fails; B = 0 launches nothing. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/attn_check.h"

#define INV LLMK_ERR_INVALID_ARGUMENT
#define MAX_GROUP 16 /* Hq / Hkv */

llmk_status llmk_attention_decode(llmk_handle h, const llmk_attention_desc *desc, const llmk_tensor *q,
                                  const llmk_kv_cache *cache, const llmk_tensor *seq_lens,
                                  const llmk_tensor *out, const llmk_tensor *lse, void *stream) {
  static const char fn[] = "llmk_attention_decode";
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  llmk_attention_desc dc;
  if ((s = LLMK_READ_SIZED(desc, &dc, LLMK_ATTENTION_DESC_SIZE, LLMK_ATTENTION_DESC_SIZE, fn, "desc",
                           LLMK_ATTENTION_DESC_INIT)))
    return s;
  desc = &dc;
  if (!isfinite(desc->softmax_scale))
    return llmk_set_error(INV, fn, "desc->softmax_scale = %g: expected a finite value",
                          (double)desc->softmax_scale);
  if (desc->num_splits < 0)
    return llmk_set_error(INV, fn, "desc->num_splits = %d: expected 0 (llmk chooses) or a positive count",
                          (int)desc->num_splits);
  llmk_kv_plan c;
  llmk_range r[LLMK_CR_N + 4]; /* the cache's, then q, seq_lens, out, lse */
  if ((s = llmk_attn_check_cache(cache, fn, &c, r))) return s;
  llmk_heads hq, ho;
  if ((s = llmk_attn_check_heads(q, fn, "q", LLMK_BF16, -1, -1, c.d, &hq, &r[LLMK_CR_N]))) return s;
  const int64_t B = hq.T, Hq = hq.H;
  if (Hq % c.hkv || Hq / c.hkv < 1 || Hq / c.hkv > MAX_GROUP)
    return llmk_set_error(INV, fn,
                          "q: Hq = shape[1] = %lld must be a multiple of the cache's Hkv = %lld with "
                          "a group size Hq / Hkv of 1 .. %d",
                          (long long)Hq, (long long)c.hkv, MAX_GROUP);
  if ((s = llmk_attn_check_batch(&c, fn, B))) return s;
  const int64_t cap = llmk_kv_capacity(&c);
  if (desc->max_seq_len < 0 || desc->max_seq_len > cap)
    return llmk_set_error(INV, fn,
                          "desc->max_seq_len = %lld: expected 0 .. %lld (the cache's capacity per sequence)",
                          (long long)desc->max_seq_len, (long long)cap);
  if ((s = llmk_attn_check_vec(seq_lens, fn, "seq_lens", LLMK_I32, B, &r[LLMK_CR_N + 1]))) return s;
  if ((s = llmk_attn_check_heads(out, fn, "out", LLMK_BF16, B, Hq, c.d, &ho, &r[LLMK_CR_N + 2]))) return s;
  r[LLMK_CR_N + 2].written = 1;
  if (lse) {
    const int64_t dims[2] = {B, Hq};
    if ((s = llmk_tensor_expect(lse, fn, "lse", LLMK_F32, 2, dims))) return s;
    r[LLMK_CR_N + 3].name = "lse";
    r[LLMK_CR_N + 3].lo = r[LLMK_CR_N + 3].hi = (uintptr_t)lse->data;
    if (lse->data) r[LLMK_CR_N + 3].hi += (size_t)(B * Hq) * sizeof(float);
    r[LLMK_CR_N + 3].written = 1;
  } else {
    memset(&r[LLMK_CR_N + 3], 0, sizeof r[0]);
    r[LLMK_CR_N + 3].name = "lse";
  }
  if ((s = llmk_attn_check_overlaps(fn, r, LLMK_CR_N + 4))) return s;
  const void *ptrs[] = {c.k, c.v, c.k_param, c.v_param, c.block_table, hq.data, seq_lens->data,
                        ho.data, lse ? lse->data : NULL};
  const char *names[] = {"cache->k.data", "cache->v.data", "cache->k_param.data",
                         "cache->v_param.data", "cache->block_table.data", "q.data",
                         "seq_lens.data", "out.data", "lse.data"};
  if ((s = llmk_check_backend_ptrs(h, fn, ptrs, names, 9))) return s;
  if (B == 0) return LLMK_SUCCESS;

  llmk_attn_plan a;
  memset(&a, 0, sizeof a);
  a.B = B, a.hq = Hq, a.group = Hq / c.hkv;
  a.softmax_scale = desc->softmax_scale;
  a.max_len = desc->max_seq_len;
  a.num_splits = desc->num_splits;
  a.q = (const uint16_t *)hq.data, a.ldq = hq.ld;
  a.seq_lens = (const int32_t *)seq_lens->data;
  a.out = (uint16_t *)ho.data, a.ldo = ho.ld;
  a.lse = lse ? (float *)lse->data : NULL;
  if (h->backend == LLMK_BACKEND_CPU) return llmk_cpu_attention_decode(&a, &c);
  return llmk_cuda_attention_decode(h, &a, &c, stream);
}
