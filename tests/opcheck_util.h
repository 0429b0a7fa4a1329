/* Running op-check cases (tools/opcheck) inside a test: every property the
 * harness checks counts as one check of tests/harness.h. */
#ifndef LLMK_TESTS_OPCHECK_UTIL_H
#define LLMK_TESTS_OPCHECK_UTIL_H

#include <string.h>

#include "harness.h"
#include "opcheck/opcheck.h"

/* Runs one case with the default options; returns 1 if nothing failed. A
 * CUDA refusal of a case that may refuse counts as skipped. */
static inline int t_oc_run(oc_ctx *x, const oc_case *c, oc_result *out) {
  oc_result r;
  oc_run(x, c, NULL, &r);
  t_passed += r.checks - r.failed;
  t_failed += r.failed;
  if (r.skipped && x->gpu && !x->gpu_broken) SKIP("%s", r.skip_why);
  if (out) *out = r;
  return r.failed == 0;
}

/* Runs the cases of l (quick: those flagged OC_QUICK); returns how many
 * were compared with CUDA. */
static inline int t_oc_run_list(oc_ctx *x, const oc_list *l, int quick) {
  int on_gpu = 0;
  for (int i = 0; i < l->n; i++) {
    if (quick && !(l->v[i].flags & OC_QUICK)) continue;
    oc_result r;
    t_oc_run(x, &l->v[i], &r);
    on_gpu += r.gpu_ran;
  }
  CHECK(!x->gpu_broken, "a CUDA error stopped the GPU runs");
  return on_gpu;
}

static inline int t_quick(void) {
  const char *q = getenv("LLMK_TEST_QUICK");
  return q && *q == '1';
}

#endif
