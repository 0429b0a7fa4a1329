/* The GEMM dispatcher's measured neighbours: for a shape no table entry
 * holds, the candidate (own configuration and K split, or cuBLASLt) that
 * was fastest, relative to each shape's fastest, summed in logarithms over
 * the LLMK_GEMM_NEIGHBOURS nearest measured shapes of the same call kind
 * and token class (distance: squared logarithmic ratios of M, N and K).
 * Only candidates measured at every neighbour and valid for the shape
 * compete.
 *
 * The measurements are the cost model's sweeps (bench/fits/<gpu>/,
 * `llmk tune gemm --dump`), compiled in as src/cuda/gemm_neighbours.inc,
 * which tools/fit_gemm_model.c writes for the kinds where choosing by
 * neighbours beat the cost model in leave-one-(N, K)-pair-out validation.
 * Host code only. */
#ifndef LLMK_GEMM_NEIGHBOURS_H
#define LLMK_GEMM_NEIGHBOURS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct llmk_gemm_device;

#define LLMK_GEMM_NEIGHBOURS 3

typedef struct llmk_gemm_nb_cand {
  int16_t cfg;   /* llmk_gemm_cfg_id, or -1: cuBLASLt */
  int16_t splits;
  float rel;     /* measured time over the shape's fastest (>= 1) */
} llmk_gemm_nb_cand;

typedef struct llmk_gemm_nb_shape {
  int kind; /* llmk_gemm_model_lt_us's kinds 0..3 */
  int64_t m, n, k;
  int first, count; /* its candidates in the table's cands[] */
} llmk_gemm_nb_shape;

typedef struct llmk_gemm_nb_table {
  const llmk_gemm_nb_shape *shapes;
  int nshapes;
  const llmk_gemm_nb_cand *cands;
} llmk_gemm_nb_table;

/* The compiled-in table (src/cuda/gemm_neighbours.inc). */
const llmk_gemm_nb_table *llmk_gemm_neighbours(void);

/* The choice for an M x N x K call of `kind` (0 tensor, 1 row, 2 block,
 * 3 bf16): returns 1 and sets *cfg (-1: cuBLASLt) and *splits, or 0 where
 * the table cannot choose (no measured shape of the kind and token class,
 * fewer than LLMK_GEMM_NEIGHBOURS of them, or no candidate common to the
 * neighbours that serves the call on dev). Shapes of the pair (skip_n,
 * skip_k) are left out (validation; 0, 0: none). */
int llmk_gemm_neighbours_pick(const llmk_gemm_nb_table *t, int kind, int64_t M, int64_t N, int64_t K,
                              const struct llmk_gemm_device *dev, int64_t skip_n, int64_t skip_k, int *cfg,
                              int *splits);

#ifdef __cplusplus
}
#endif
#endif
