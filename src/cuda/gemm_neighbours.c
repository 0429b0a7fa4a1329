/* The GEMM dispatcher's measured neighbours (gemm_neighbours.h). */
#include "cuda/gemm_neighbours.h"

#include <math.h>

#include "cuda/gemm_model.h"
#include "cuda/gemm_own.h"

#ifdef LLMK_WITH_CUDA /* the configurations exist only in a CUDA build */
/* k_nb_shapes[], k_nb_cands[], K_NB_SHAPES */
#include "cuda/gemm_neighbours.inc"

const llmk_gemm_nb_table *llmk_gemm_neighbours(void) {
  static const llmk_gemm_nb_table t = {k_nb_shapes, K_NB_SHAPES, k_nb_cands};
  return &t;
}

static double sq_log_ratio(int64_t a, int64_t b) {
  const double l = log((double)a / (double)b);
  return l * l;
}

int llmk_gemm_neighbours_pick(const llmk_gemm_nb_table *t, int kind, int64_t M, int64_t N, int64_t K,
                              const llmk_gemm_device *dev, int64_t skip_n, int64_t skip_k, int *cfg, int *splits) {
  int nb[LLMK_GEMM_NEIGHBOURS], have = 0;
  double nd[LLMK_GEMM_NEIGHBOURS];
  for (int i = 0; i < t->nshapes; i++) {
    const llmk_gemm_nb_shape *s = &t->shapes[i];
    if (s->kind != kind || (s->m > 128) != (M > 128) || (s->n == skip_n && s->k == skip_k)) continue;
    const double d = sq_log_ratio(M, s->m) + sq_log_ratio(N, s->n) + sq_log_ratio(K, s->k);
    /* insertion into the sorted list of the nearest (ties: the earlier) */
    int j = have < LLMK_GEMM_NEIGHBOURS ? have++ : LLMK_GEMM_NEIGHBOURS;
    if (j == LLMK_GEMM_NEIGHBOURS && !(d < nd[j - 1])) continue;
    if (j == LLMK_GEMM_NEIGHBOURS) j--;
    while (j > 0 && d < nd[j - 1]) nb[j] = nb[j - 1], nd[j] = nd[j - 1], j--;
    nb[j] = i, nd[j] = d;
  }
  if (have < LLMK_GEMM_NEIGHBOURS) return 0;
  /* every candidate of the nearest shape that the others measured too and
   * that serves this call: the least summed log relative time */
  const llmk_gemm_nb_shape *s0 = &t->shapes[nb[0]];
  double best = 1e300;
  int found = 0;
  for (int c = s0->first; c < s0->first + s0->count; c++) {
    const llmk_gemm_nb_cand *q = &t->cands[c];
    if (q->cfg >= 0 && (q->cfg >= LLMK_GEMM_NUM_CFGS ||
                        !llmk_gemm_model_candidate(&llmk_gemm_cfgs[q->cfg], q->splits, kind, M, N, K, dev)))
      continue;
    double score = log((double)q->rel);
    int everywhere = 1;
    for (int j = 1; j < LLMK_GEMM_NEIGHBOURS && everywhere; j++) {
      const llmk_gemm_nb_shape *sj = &t->shapes[nb[j]];
      everywhere = 0;
      for (int e = sj->first; e < sj->first + sj->count; e++)
        if (t->cands[e].cfg == q->cfg && t->cands[e].splits == q->splits) {
          score += log((double)t->cands[e].rel), everywhere = 1;
          break;
        }
    }
    if (everywhere && score < best) best = score, *cfg = q->cfg, *splits = q->cfg < 0 ? 1 : q->splits, found = 1;
  }
  return found;
}
#endif
