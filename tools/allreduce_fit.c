/* The threshold fit of `llmk tune allreduce` (allreduce_fit.h). */
#include "allreduce_fit.h"

/* Cost of thresholds (one, two) over the measured sizes: the sum of each
 * size's time under them relative to the size's best time; -1 where they
 * pick an algorithm without a time there. */
static double fit_cost(int n, const size_t *sizes, const double *const t[3], size_t one, size_t two) {
  double cost = 0;
  for (int i = 0; i < n; i++) {
    const int a = sizes[i] <= one ? 0 : sizes[i] <= two ? 1 : 2;
    double best = -1;
    for (int b = 0; b < 3; b++)
      if (t[b][i] > 0 && (best < 0 || t[b][i] < best)) best = t[b][i];
    if (best < 0) continue; /* nothing measured at this size */
    if (!(t[a][i] > 0)) return -1;
    cost += t[a][i] / best;
  }
  return cost;
}

void llmk_allreduce_fit(int n, const size_t *sizes, const double *t_one, const double *t_two, const double *t_nccl,
                        size_t *one, size_t *two) {
  const double *const t[3] = {t_one, t_two, t_nccl};
  double best = -1;
  *one = 0, *two = n > 0 ? sizes[n - 1] : 0;
  /* candidates: 0 or a measured size for each; ties keep the earlier (smaller) one */
  for (int i = -1; i < n; i++)
    for (int j = i; j < n; j++) {
      const size_t o = i < 0 ? 0 : sizes[i], w = j < 0 ? 0 : sizes[j];
      const double c = fit_cost(n, sizes, t, o, w);
      if (c >= 0 && (best < 0 || c < best - 1e-9)) best = c, *one = o, *two = w;
    }
}

