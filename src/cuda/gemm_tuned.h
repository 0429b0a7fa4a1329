/* Online tuning's winners (gemm_tuned.c; the timing is gemm.cu's): per
 * process and device ordinal, keyed by the cost model's kind (0..4,
 * gemm_model.h) and M, N, K. Thread-safe. */
#ifndef LLMK_GEMM_TUNED_H
#define LLMK_GEMM_TUNED_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 and the winner (own or cuBLASLt; configuration and split) if the shape
 * was tuned on this device; else 0. */
int llmk_gemm_tuned_find(int device, int kind, int64_t M, int64_t N, int64_t K, int *use_own, int *cfg,
                         int *splits);
/* Keeps a winner (and appends it to LLMK_GEMM_TUNE_FILE, if set). */
void llmk_gemm_tuned_put(int device, int kind, int64_t M, int64_t N, int64_t K, int use_own, int cfg, int splits,
                         double us);
/* Reads LLMK_GEMM_TUNE_FILE's winners for this device once per process,
 * if the file's identity line matches `identity` (GPU name, driver and
 * llmk versions); otherwise starts the file afresh. */
void llmk_gemm_tuned_load(int device, const char *identity);
/* Forgets every winner (tests). */
void llmk_gemm_tuned_forget(void);

#ifdef __cplusplus
}
#endif
#endif
