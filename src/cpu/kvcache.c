/* CPU reference of the KV-cache writes (llmk_kv_cache_write,
 * llmk_rope_qkv_write) and of llmk_kv_cache_dequantize: the quantization
 * formulas of include/llmk.h and docs/ATTENTION.md, bit for bit, in fp32
 * with one statement per rounding (the build uses -ffp-contract=off). The
 * CUDA kernels' quantized writes are compared bitwise with this code. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cpu/attn_cpu.h"
#include "fp8/fp8.h"

#define INV LLMK_ERR_INVALID_ARGUMENT
#define F16_MAX_BITS 0x7BFFu /* 65504 */

/* float -> f16 bits, nearest even, finite overflow and +-Inf saturated to
 * +-65504 (NaN cannot occur: the inputs are finite or +-Inf). */
static uint16_t f16_sat(float x) {
  uint16_t b = llmk_f16_from_f32(x);
  if ((b & 0x7FFFu) == 0x7C00u) b = (uint16_t)((b & 0x8000u) | F16_MAX_BITS);
  return b;
}

/* One token-head's D values x (fp32) into storage row `dst` and its
 * parameters `param` (FP8: 1 f32; INT4: 2 D / G f16; FP8_TENSOR: the
 * tensor's scale, read). */
static void quantize_head(const llmk_kv_plan *c, const float *x, void *dst, void *param) {
  const int64_t D = c->d;
  switch (c->format) {
    case LLMK_KV_BF16:
      for (int64_t d = 0; d < D; d++) ((uint16_t *)dst)[d] = llmk_bf16_from_f32(x[d]);
      break;
    case LLMK_KV_FP8: {
      float amax = 0.0f;
      for (int64_t d = 0; d < D; d++) {
        const float a = fabsf(x[d]);
        if (isfinite(a) && a > amax) amax = a;
      }
      const float scale = fmaxf(amax / LLMK_E4M3_MAX, llmk_fp8_min_scale(0));
      const float inv = 1.0f / scale;
      *(float *)param = scale;
      for (int64_t d = 0; d < D; d++) {
        const float v = x[d] * inv;
        ((uint8_t *)dst)[d] = llmk_e4m3_from_f32(v);
      }
      break;
    }
    case LLMK_KV_FP8_TENSOR: {
      const float inv = 1.0f / *(const float *)param;
      for (int64_t d = 0; d < D; d++) {
        const float v = x[d] * inv;
        ((uint8_t *)dst)[d] = llmk_e4m3_from_f32(v);
      }
      break;
    }
    case LLMK_KV_INT4: {
      const int64_t G = c->group;
      uint8_t codes[256];
      for (int64_t g = 0; g < D / G; g++) {
        const float *xg = x + g * G;
        float lo = 0.0f, hi = 0.0f;
        int any = 0;
        for (int64_t i = 0; i < G; i++) {
          const float v = xg[i];
          if (!isfinite(v)) continue;
          if (!any || v < lo) lo = v;
          if (!any || v > hi) hi = v;
          any = 1;
        }
        const float range = hi - lo;
        const uint16_t sb = f16_sat(range / 15.0f), hb = f16_sat(lo);
        ((uint16_t *)param)[2 * g] = sb;
        ((uint16_t *)param)[2 * g + 1] = hb;
        const float scale = llmk_f16_to_f32(sb), shift = llmk_f16_to_f32(hb);
        const float inv = 1.0f / scale;
        for (int64_t i = 0; i < G; i++) {
          uint8_t q = 0;
          if (scale != 0.0f) {
            const float t = xg[i] - shift;
            const float u = t * inv;
            /* fmaxf/fminf: NaN -> 0, -Inf -> 0, +Inf -> 15 */
            q = (uint8_t)fminf(fmaxf(rintf(u), 0.0f), 15.0f);
          }
          codes[g * G + i] = q;
        }
      }
      for (int64_t j = 0; j < D / 2; j++)
        ((uint8_t *)dst)[j] = (uint8_t)(codes[2 * j] | (codes[2 * j + 1] << 4));
      break;
    }
  }
}

void llmk_cpu_kv_load(const llmk_kv_plan *c, int is_v, int64_t slot, float *out) {
  const int64_t D = c->d;
  const uint8_t *row = (const uint8_t *)(is_v ? c->v : c->k) + slot * c->row_bytes;
  const void *param = is_v ? c->v_param : c->k_param;
  switch (c->format) {
    case LLMK_KV_BF16:
      for (int64_t d = 0; d < D; d++) out[d] = llmk_bf16_to_f32(((const uint16_t *)row)[d]);
      break;
    case LLMK_KV_FP8: {
      const float scale = ((const float *)param)[slot];
      for (int64_t d = 0; d < D; d++) out[d] = llmk_e4m3_to_f32(row[d]) * scale;
      break;
    }
    case LLMK_KV_FP8_TENSOR: {
      const float scale = ((const float *)param)[0];
      for (int64_t d = 0; d < D; d++) out[d] = llmk_e4m3_to_f32(row[d]) * scale;
      break;
    }
    case LLMK_KV_INT4: {
      const uint16_t *pp = (const uint16_t *)param + slot * c->param_elems;
      for (int64_t d = 0; d < D; d++) {
        const int64_t g = d / c->group;
        const float scale = llmk_f16_to_f32(pp[2 * g]), shift = llmk_f16_to_f32(pp[2 * g + 1]);
        const unsigned code = (row[d / 2] >> (4 * (d & 1))) & 0xFu;
        out[d] = fmaf((float)code, scale, shift);
      }
      break;
    }
  }
}

/* The sequence of row t: the b with offsets[b] <= t < offsets[b + 1]. */
static int64_t seq_of_row(const llmk_loc_plan *loc, int64_t t) {
  if (!loc->offsets) return t;
  int64_t lo = 0, hi = loc->B - 1; /* offsets[lo] <= t < offsets[hi + 1] */
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (loc->offsets[mid] <= t) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/* Token-head slot of KV head 0 at position pos of sequence b (checked). */
static int64_t slot_of(const llmk_kv_plan *c, int64_t b, int64_t pos) {
  int64_t s0 = b, s1 = pos;
  if (c->paged) {
    s0 = c->block_table[b * c->bt_ld + (pos >> c->page_shift)];
    s1 = pos & ((INT64_C(1) << c->page_shift) - 1);
  }
  return (s0 * c->S1 + s1) * c->hkv;
}

/* Every row's position and page lie in the cache, and the offsets are a
 * valid partition of the T rows; nothing has been written yet. */
static llmk_status check_rows(const char *fn, const llmk_kv_plan *c, const llmk_loc_plan *loc) {
  const int32_t *off = loc->offsets;
  if (off) {
    if (off[0] != 0)
      return llmk_set_error(INV, fn, "loc->offsets[0] = %d, expected 0", (int)off[0]);
    for (int64_t b = 0; b < loc->B; b++)
      if (off[b + 1] < off[b])
        return llmk_set_error(INV, fn, "loc->offsets decrease: offsets[%lld] = %d > offsets[%lld] = %d",
                              (long long)b, (int)off[b], (long long)(b + 1), (int)off[b + 1]);
    if (off[loc->B] != loc->T)
      return llmk_set_error(INV, fn, "loc->offsets[B] = offsets[%lld] = %d, expected T = %lld",
                            (long long)loc->B, (int)off[loc->B], (long long)loc->T);
  }
  const int64_t cap = llmk_kv_capacity(c);
  for (int64_t b = 0; b < loc->B; b++) {
    const int64_t r0 = off ? off[b] : b, r1 = off ? off[b + 1] : b + 1;
    for (int64_t t = r0; t < r1; t++) {
      const int64_t pos = (int64_t)loc->start_pos[b] + (t - r0);
      if (pos < 0 || pos >= cap)
        return llmk_set_error(INV, fn,
                              "row %lld (sequence %lld): position %lld is outside the cache "
                              "(0 .. %lld)",
                              (long long)t, (long long)b, (long long)pos, (long long)(cap - 1));
      if (c->paged) {
        const int64_t pi = pos >> c->page_shift;
        const int32_t page = c->block_table[b * c->bt_ld + pi];
        if (page < 0 || page >= c->S0)
          return llmk_set_error(INV, fn,
                                "row %lld (sequence %lld, position %lld): block_table[%lld][%lld] = %d "
                                "is not a page in [0, %lld)",
                                (long long)t, (long long)b, (long long)pos, (long long)b,
                                (long long)pi, (int)page, (long long)c->S0);
      }
    }
  }
  return LLMK_SUCCESS;
}

llmk_status llmk_cpu_qkv_write(const llmk_rope_plan *r, const llmk_qkv_plan *q,
                               const llmk_kv_plan *c, const llmk_loc_plan *loc) {
  const char *fn = q->q_out.data ? "llmk_rope_qkv_write" : "llmk_kv_cache_write";
  llmk_status s = check_rows(fn, c, loc);
  if (s) return s;
  const int rotate = r && r->n_pairs > 0;
  const int64_t D = c->d;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < loc->T; t++) {
    const int64_t b = seq_of_row(loc, t);
    const int64_t pos = (int64_t)loc->start_pos[b] + (t - (loc->offsets ? loc->offsets[b] : b));
    float cs[LLMK_ROPE_MAX_PAIRS], sn[LLMK_ROPE_MAX_PAIRS], x[256];
    if (rotate) llmk_cpu_rope_angles(r, pos, cs, sn);
    /* Q: the rotated elements rounded once to bf16, the others copied (as llmk_rope) */
    if (q->q_out.data) {
      const int64_t R = rotate ? 2 * r->n_pairs : 0;
      for (int64_t h = 0; h < q->q_in.H; h++) {
        const uint16_t *src = (const uint16_t *)q->q_in.data + t * q->q_in.ld + h * D;
        uint16_t *dst = (uint16_t *)q->q_out.data + t * q->q_out.ld + h * D;
        for (int64_t d = 0; d < R; d++) x[d] = llmk_bf16_to_f32(src[d]);
        if (rotate) llmk_cpu_rope_rotate(r, cs, sn, x);
        for (int64_t d = 0; d < R; d++) dst[d] = llmk_bf16_from_f32(x[d]);
        for (int64_t d = R; d < D; d++) dst[d] = src[d];
      }
    }
    const int64_t slot0 = slot_of(c, b, pos);
    for (int is_v = 0; is_v < 2; is_v++) {
      const llmk_heads *in = is_v ? &q->v : &q->k;
      for (int64_t h = 0; h < c->hkv; h++) {
        const uint16_t *src = (const uint16_t *)in->data + t * in->ld + h * D;
        for (int64_t d = 0; d < D; d++) x[d] = llmk_bf16_to_f32(src[d]);
        /* K is quantized from its fp32 rotated values (not rounded to bf16 first) */
        if (rotate && !is_v) llmk_cpu_rope_rotate(r, cs, sn, x);
        const int64_t slot = slot0 + h;
        uint8_t *dst = (uint8_t *)(is_v ? c->v : c->k) + slot * c->row_bytes;
        void *param = is_v ? c->v_param : c->k_param;
        if (c->format == LLMK_KV_FP8) param = (float *)param + slot;
        else if (c->format == LLMK_KV_INT4) param = (uint16_t *)param + slot * c->param_elems;
        quantize_head(c, x, dst, param);
      }
    }
  }
  return LLMK_SUCCESS;
}

llmk_status llmk_cpu_kv_dequantize(const llmk_kv_plan *c, void *k_out, void *v_out,
                                   llmk_dtype out_dtype) {
  const int64_t slots = c->S0 * c->S1 * c->hkv, D = c->d;
#pragma omp parallel for schedule(static)
  for (int64_t slot = 0; slot < slots; slot++) {
    float x[256];
    for (int is_v = 0; is_v < 2; is_v++) {
      llmk_cpu_kv_load(c, is_v, slot, x);
      void *out = is_v ? v_out : k_out;
      if (out_dtype == LLMK_F32) {
        memcpy((float *)out + slot * D, x, (size_t)D * sizeof(float));
      } else {
        uint16_t *o = (uint16_t *)out + slot * D;
        for (int64_t d = 0; d < D; d++) o[d] = llmk_bf16_from_f32(x[d]);
      }
    }
  }
  return LLMK_SUCCESS;
}
