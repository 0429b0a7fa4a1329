/* Decode-attention kernels over INT4 caches, groups of 32 or 128 along the
 * head dimension (attention_decode.cuh). */
#include "cuda/attention_decode.cuh"

using namespace llmk_attn;

template <int D, int G> static launch_fn pick(bool paged) {
  return paged ? launch<D, F_INT4, G, true> : launch<D, F_INT4, G, false>;
}

llmk_attn::launch_fn llmk_attn_launcher_int4(int d, bool paged, int g) {
  if (g == 32) {
    switch (d) {
      case 64: return pick<64, 32>(paged);
      case 128: return pick<128, 32>(paged);
      case 256: return pick<256, 32>(paged);
    }
  } else if (g == 128) {
    switch (d) {
      case 128: return pick<128, 128>(paged);
      case 256: return pick<256, 128>(paged);
    }
  }
  return nullptr;
}
