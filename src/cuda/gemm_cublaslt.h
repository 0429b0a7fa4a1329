/* The cuBLASLt backend of llmk_gemm_fp8 and llmk_gemm_bf16 (src/cuda/gemm_cublaslt.c). */
#ifndef LLMK_GEMM_CUBLASLT_H
#define LLMK_GEMM_CUBLASLT_H

#include "core/gemm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* cuBLASLt handle and algorithm cache, stored in h->lt. */
llmk_status llmk_lt_create(llmk_handle h);
void llmk_lt_destroy(llmk_handle h);

/* Longest heuristic list the table may index into (llmk.h's LLMK_GEMM_LT_ALGOS). */
#define LLMK_LT_MAX_ALGOS LLMK_GEMM_LT_ALGOS

/* Runs p (FP8 or BF16, by p->in_dtype) through cuBLASLt on `stream`, with
 * the handle's workspace and entry `algo` of cuBLASLt's heuristic list (0:
 * its first choice; the last entry if the list is shorter). Returns
 * NOT_SUPPORTED when cuBLASLt offers no algorithm for the problem, without
 * recording an error message if `quiet` (the caller then tries another
 * path). The caller has made h's device current. */
llmk_status llmk_lt_gemm(llmk_handle h, const llmk_gemm_plan *p, int algo, int quiet, void *stream);

/* Whether a block-scaled plan's scales are laid out as cuBLASLt reads
 * them (gemm_cublaslt.c says how); llmk_lt_gemm answers NOT_SUPPORTED
 * otherwise. */
int llmk_lt_block_layout_ok(const llmk_gemm_plan *p);

#ifdef __cplusplus
}
#endif
#endif
