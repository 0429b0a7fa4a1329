/* The GEMM dispatcher's memory of shapes it routed without a table entry
 * (gemm_tuned.c): online tuning's winners, and the cost model's choices
 * (so a call pays the model's search once), per process and device ordinal,
 * keyed by the cost model's kind (0..4, gemm_model.h) and M, N, K. One
 * lookup per call; thread-safe. Winners are never displaced by model
 * choices. */
#ifndef LLMK_GEMM_TUNED_H
#define LLMK_GEMM_TUNED_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A route: own kernels or cuBLASLt, and the own configuration and split
 * (cfg -1: none known, e.g. a cuBLASLt winner read from a tuning file). */
typedef struct llmk_gemm_pick {
  int use_own, cfg, splits;
} llmk_gemm_pick;

/* 1 and the shape's pick (*tuned: 1 for a tuning winner, 0 for a model
 * choice) if the shape is remembered on this device; else 0. */
int llmk_gemm_memo_find(int device, int kind, int64_t M, int64_t N, int64_t K, llmk_gemm_pick *pick, int *tuned);
/* Remembers the cost model's choice for a shape. */
void llmk_gemm_memo_model(int device, int kind, int64_t M, int64_t N, int64_t K, const llmk_gemm_pick *pick);
/* Keeps a tuning winner (and appends it to LLMK_GEMM_TUNE_FILE, if set);
 * for a cuBLASLt winner, pick->cfg is the own configuration its fallback
 * runs. */
void llmk_gemm_tuned_put(int device, int kind, int64_t M, int64_t N, int64_t K, const llmk_gemm_pick *pick,
                         double us);
/* Reads LLMK_GEMM_TUNE_FILE's winners for this device once per process,
 * if the file's identity line matches `identity` (GPU name, driver and
 * llmk versions); otherwise starts the file afresh. */
void llmk_gemm_tuned_load(int device, const char *identity);
/* Forgets every shape (tests). */
void llmk_gemm_tuned_forget(void);

#ifdef __cplusplus
}
#endif
#endif
