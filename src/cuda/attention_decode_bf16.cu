/* Decode-attention kernels over BF16 caches (attention_decode.cuh). */
#include "cuda/attention_decode.cuh"

using namespace llmk_attn;

llmk_attn::launch_fn llmk_attn_launcher_bf16(int d, bool paged) {
  switch (d) {
    case 64: return paged ? launch<64, F_BF16, 0, true> : launch<64, F_BF16, 0, false>;
    case 128: return paged ? launch<128, F_BF16, 0, true> : launch<128, F_BF16, 0, false>;
    case 256: return paged ? launch<256, F_BF16, 0, true> : launch<256, F_BF16, 0, false>;
  }
  return nullptr;
}
