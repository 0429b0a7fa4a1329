/* llmk_cuda_attention_decode: the split of the KV length, the kernel for
 * the cache format, and the merge of the splits (attention_decode.cuh). */
#include "core/env.h"
#include "cuda/attention_decode.cuh"

using namespace llmk_attn;

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Launched as a programmatic dependent of the split kernel: its launch
 * overlaps the splits' work, and griddepcontrol.wait holds it until they end. */
template <int D, int P> static llmk_status launch_merge(const args &a, int rows, cudaStream_t st) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3((unsigned)rows);
  cfg.blockDim = dim3(D * P);
  cfg.stream = st;
  cudaLaunchAttribute at[1];
  at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  at[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = at;
  cfg.numAttrs = 1;
  return llmk_cuda_error(cudaLaunchKernelEx(&cfg, merge_kernel<D, P>, a), "llmk_attention_decode", "merge launch");
}

/* Four threads per output column unless LLMK_ATTN_MERGE_PARTS says 1 or 2
 * (for comparisons on the GPU). */
template <int D> static llmk_status launch_merge(const args &a, int rows, cudaStream_t st) {
  switch (llmk_env_get()->attn_merge_parts) {
    case 1: return launch_merge<D, 1>(a, rows, st);
    case 2: return launch_merge<D, 2>(a, rows, st);
    default: return launch_merge<D, 4>(a, rows, st);
  }
}

llmk_status llmk_attn_launch_merge(const args &a, int d, int rows, cudaStream_t st) {
  switch (d) {
    case 64: return launch_merge<64>(a, rows, st);
    case 128: return launch_merge<128>(a, rows, st);
    default: return launch_merge<256>(a, rows, st);
  }
}

extern "C" llmk_status llmk_cuda_attention_decode(llmk_handle h, const llmk_attn_plan *p,
                                                  const llmk_kv_plan *c, void *stream) {
  static const char fn[] = "llmk_attention_decode";
  const cudaStream_t st = (cudaStream_t)stream;
  launch_fn f = nullptr;
  switch (c->format) {
    case LLMK_KV_BF16: f = llmk_attn_launcher_bf16((int)c->d, c->paged); break;
    case LLMK_KV_FP8: f = llmk_attn_launcher_fp8((int)c->d, c->paged, false); break;
    case LLMK_KV_FP8_TENSOR: f = llmk_attn_launcher_fp8((int)c->d, c->paged, true); break;
    case LLMK_KV_INT4: f = llmk_attn_launcher_int4((int)c->d, c->paged, (int)c->group); break;
  }
  if (!f)
    return llmk_set_error(LLMK_ERR_INTERNAL, fn, "no kernel for format %d, D = %lld, group %lld",
                          (int)c->format, (long long)c->d, (long long)c->group);
  if (c->paged && c->page_shift < 4) /* a warp's 16-token tile must lie in one page */
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn,
                          "the CUDA kernel needs page_size >= 16 for a paged cache, got %lld",
                          (long long)1 << c->page_shift);
  if (p->B == 0 || p->hq == 0) return LLMK_SUCCESS;
  if (p->B > 65535 || c->hkv > 65535)
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn, "B = %lld and Hkv = %lld must be at most 65535 (grid limits)",
                          (long long)p->B, (long long)c->hkv);

  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, fn);
  if (s) return s;
  args a = {};
  a.q = p->q;
  a.ldq = p->ldq;
  a.k = (const uint8_t *)c->k;
  a.v = (const uint8_t *)c->v;
  a.kp = (const uint8_t *)c->k_param;
  a.vp = (const uint8_t *)c->v_param;
  a.S1 = c->S1;
  a.hkv = c->hkv;
  a.page_shift = c->paged ? c->page_shift : 0;
  a.bt = c->block_table;
  a.bt_ld = c->bt_ld;
  a.npages = c->paged ? c->S0 : 0;
  a.seq_lens = p->seq_lens;
  a.max_len = p->max_len;
  a.group = (int)p->group;
  a.hq = (int)p->hq;
  a.sl = p->softmax_scale * 1.4426950408889634f;
  a.out = p->out;
  a.ldo = p->ldo;
  a.lse = p->lse;

  /* Splits: enough CTAs for one full wave when B x Hkv alone is short of
   * it, each split a whole number of the 4 warps' 16-token tiles; chosen
   * from max_len alone (host-known), so a graph replays with any lengths
   * up to it. Partials live in the handle's workspace, which caps them. */
  int occ = 1;
  s = f(a, dim3(1, 1, 1), st, &occ);
  if (s) return llmk_scope_leave(h, &sc, s, fn);
  /* One CTA per SM for BF16 and FP8 caches, as many as fit for INT4: on the
   * H100 the memory-bound paths read faster from fewer, longer streams
   * (FP8 B=8 T=32768: 210 -> 195 us with 2 splits instead of 4; BF16 equal
   * or up to 2% faster), while INT4, bound by its instruction latency, needs
   * the second CTA's warps (B=8 T=32768: 133 us vs 173). docs/PERFORMANCE_LOG.md. */
  const int64_t waves = c->format == LLMK_KV_INT4 ? occ : 1;
  const int64_t units = p->B * c->hkv, slots = (int64_t)h->sm_count * waves;
  const int64_t quantum = WARPS * TOK;
  int64_t splits = p->num_splits > 0 ? p->num_splits : (slots / units > 1 ? slots / units : 1);
  const int64_t max_splits = cdiv(p->max_len > 0 ? p->max_len : 1, quantum);
  if (splits > max_splits) splits = max_splits;
  const int64_t per_split = p->B * p->hq * (c->d + 2) * (int64_t)sizeof(float);
  const int64_t ws_splits = h->workspace ? (int64_t)(h->workspace_bytes / (size_t)per_split) : 0;
  if (splits > ws_splits) splits = ws_splits > 1 ? ws_splits : 1;
  if (splits > 65535) splits = 65535;
  int64_t chunk = cdiv(cdiv(p->max_len > 0 ? p->max_len : 1, splits), quantum) * quantum;
  splits = cdiv(p->max_len > 0 ? p->max_len : 1, chunk);
  a.chunk = chunk;
  a.splits = (int)splits;
  a.part_o = (float *)h->workspace;
  a.part_ml = a.part_o + p->B * p->hq * splits * c->d;

  s = f(a, dim3((unsigned)splits, (unsigned)c->hkv, (unsigned)p->B), st, nullptr);
  if (!s) s = llmk_launch_check(fn, "llmk_attn::decode_kernel");
  if (!s && splits > 1) {
    s = llmk_attn_launch_merge(a, (int)c->d, (int)(p->B * p->hq), st);
    if (!s) s = llmk_launch_check(fn, "llmk_attn::merge_kernel");
  }
  return llmk_scope_leave(h, &sc, s, fn);
}
