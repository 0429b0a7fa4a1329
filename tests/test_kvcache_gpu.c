/*
 * The CUDA KV-cache writes, RoPE and cache dequantization against the CPU
 * reference, bit for bit, on fresh random inputs (LLMK_TEST_SEED replays).
 * The cases are op-check cases (tools/opcheck/ops_kvcache.c), run here on
 * CUDA through the harness (inputs' padding and guards random, outputs and
 * guards poisoned, two poisons per side; the cache, updated in place,
 * starts as random bytes and must equal the CPU's in every byte):
 *
 *  - llmk_rope: interleaved and neox, full and partial rotary dims (R/2 a
 *    multiple of 8 or not), Llama 3.1 frequency scaling, f32 and bf16, in
 *    place and out of place, padded and misaligned rows, positions up to
 *    2^20 (a few negative and a few near +-2^31);
 *  - llmk_rope_qkv_write and llmk_kv_cache_write for the four cache formats,
 *    contiguous and paged caches (page sizes 16, 32, 64, shuffled block
 *    tables, and sparse tables of 2^20 / page_size pages per sequence for
 *    positions up to 2^20), decode (offsets NULL) and variable-length
 *    prefill (offsets with empty sequences), D = 64, 128, 256, INT4 groups
 *    32 and 128: the whole cache (storage and parameters, written or not)
 *    and the whole q_out buffer equal the CPU's;
 *  - rows the GPU must skip (positions negative or past the capacity, page
 *    numbers outside the pool, rows no sequence covers): the reference is
 *    the CPU applied row by row to the valid rows only, so every skipped
 *    row's q_out and every cache byte it would have touched stay as they
 *    were;
 *  - llmk_kv_cache_dequantize (f32 and bf16, aligned and misaligned
 *    outputs) of random cache bytes (every code) and of written caches.
 * Inputs have varied magnitudes (2^-12 .. 2^12 per head), outliers, zero
 * heads (with -0), constant heads (INT4 scale 0) and exact zeros; some cases
 * add NaN and +-Inf. bf16 and f32 values compare NaN-equal (a NaN's payload
 * is not specified); e4m3, INT4 and parameter bytes compare exactly.
 * LLMK_TEST_QUICK=1 runs the quick subset. Skips itself where no Hopper
 * GPU is visible (test_opcheck runs the CPU half of these cases there).
 */
#include "harness.h"
#include "llmk.h"
#include "opcheck_util.h"

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  t_seed();
  oc_ctx x;
  if (!oc_init(&x, 1)) {
    CHECK(0, "llmk_create_cpu: %s", llmk_last_error());
    TEST_END();
  }
  if (!x.gpu) {
    SKIP("%s: KV cache, RoPE and dequantize on the GPU", x.why_no_gpu);
    oc_fini(&x);
    TEST_END();
  }
  oc_list l = {0};
  oc_kvcache_cases(&l, t_quick(), t_rand_u64());
  printf("%d GPU-vs-CPU cases\n", t_oc_run_list(&x, &l, t_quick()));
  oc_list_free(&l);
  oc_fini(&x);
  TEST_END();
}
