/* The KV-cache storage shared by the cache-writing and attention cases. */
#include <string.h>

#include "opcheck.h"

llmk_tensor oc_tensor_nd(void *data, llmk_dtype dt, int nd, const int64_t *shape) {
  llmk_tensor t;
  memset(&t, 0, sizeof t);
  t.data = data, t.dtype = dt, t.ndim = nd;
  int64_t st = 1;
  for (int i = nd - 1; i >= 0; i--) t.shape[i] = shape[i], t.strides[i] = st, st *= shape[i];
  return t;
}

llmk_dtype oc_kv_storage_dtype(llmk_kv_format f) {
  return f == LLMK_KV_BF16 ? LLMK_BF16 : f == LLMK_KV_INT4 ? LLMK_U8 : LLMK_E4M3;
}

void oc_kv_add(oc_case *c, oc_kv_store *s, oc_role role, oc_cmp storage_cmp) {
  const int64_t sshape[4] = {s->S0, s->S1, s->hkv, s->E}, pshape[4] = {s->S0, s->S1, s->hkv, s->pe};
  const llmk_dtype sdt = oc_kv_storage_dtype(s->fmt);
  s->ik = oc_buf_nd(c, "k cache", role, storage_cmp, sdt, 4, sshape);
  s->iv = oc_buf_nd(c, "v cache", role, storage_cmp, sdt, 4, sshape);
  s->ikp = s->ivp = -1;
  if (s->fmt == LLMK_KV_FP8) {
    s->ikp = oc_buf_nd(c, "k_param", role, OC_CMP_BITS, LLMK_F32, 3, sshape);
    s->ivp = oc_buf_nd(c, "v_param", role, OC_CMP_BITS, LLMK_F32, 3, sshape);
  } else if (s->fmt == LLMK_KV_FP8_TENSOR) {
    s->ikp = oc_buf_1d(c, "k_param", OC_IN, OC_CMP_BITS, LLMK_F32, 1);
    s->ivp = oc_buf_1d(c, "v_param", OC_IN, OC_CMP_BITS, LLMK_F32, 1);
  } else if (s->fmt == LLMK_KV_INT4) {
    s->ikp = oc_buf_nd(c, "k_param", role, OC_CMP_BITS, LLMK_F16, 4, pshape);
    s->ivp = oc_buf_nd(c, "v_param", role, OC_CMP_BITS, LLMK_F16, 4, pshape);
  }
}

llmk_kv_cache oc_kv_cache(const oc_kv_store *s, void *const *base, int64_t S0, int64_t first) {
  llmk_kv_cache k = LLMK_KV_CACHE_INIT;
  k.format = s->fmt;
  k.int4_group = (int32_t)(s->fmt == LLMK_KV_INT4 ? s->group : 0);
  const int64_t sshape[4] = {S0, s->S1, s->hkv, s->E}, pshape[4] = {S0, s->S1, s->hkv, s->pe};
  const llmk_dtype sdt = oc_kv_storage_dtype(s->fmt);
  const int64_t row_bytes = s->E * (int64_t)llmk_dtype_size(sdt);
  k.k = oc_tensor_nd((char *)base[s->ik] + first * row_bytes, sdt, 4, sshape);
  k.v = oc_tensor_nd((char *)base[s->iv] + first * row_bytes, sdt, 4, sshape);
  if (s->fmt == LLMK_KV_FP8) {
    k.k_param = oc_tensor_nd((float *)base[s->ikp] + first, LLMK_F32, 3, sshape);
    k.v_param = oc_tensor_nd((float *)base[s->ivp] + first, LLMK_F32, 3, sshape);
  } else if (s->fmt == LLMK_KV_FP8_TENSOR) {
    k.k_param = llmk_tensor_1d(base[s->ikp], LLMK_F32, 1);
    k.v_param = llmk_tensor_1d(base[s->ivp], LLMK_F32, 1);
  } else if (s->fmt == LLMK_KV_INT4) {
    k.k_param = oc_tensor_nd((uint16_t *)base[s->ikp] + first * s->pe, LLMK_F16, 4, pshape);
    k.v_param = oc_tensor_nd((uint16_t *)base[s->ivp] + first * s->pe, LLMK_F16, 4, pshape);
  }
  return k;
}
