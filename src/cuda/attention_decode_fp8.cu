/* Decode-attention kernels over FP8 caches, per-token-head or per-tensor
 * scales (attention_decode.cuh). */
#include "cuda/attention_decode.cuh"

using namespace llmk_attn;

template <int D> static launch_fn pick(bool paged, bool tensor) {
  if (tensor) return paged ? launch<D, F_FP8T, 0, true> : launch<D, F_FP8T, 0, false>;
  return paged ? launch<D, F_FP8, 0, true> : launch<D, F_FP8, 0, false>;
}

llmk_attn::launch_fn llmk_attn_launcher_fp8(int d, bool paged, bool tensor) {
  switch (d) {
    case 64: return pick<64>(paged, tensor);
    case 128: return pick<128>(paged, tensor);
    case 256: return pick<256>(paged, tensor);
  }
  return nullptr;
}
