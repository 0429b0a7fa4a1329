/* The thresholds `llmk tune allreduce` writes into
 * src/core/allreduce_table.inc for one world size: from the times (us; <= 0:
 * not measured, or the algorithm cannot run there) of one-shot, two-shot and
 * NCCL at n ascending sizes, the one <= two, each 0 or a measured size,
 * whose choice (one-shot up to one, two-shot up to two, NCCL above)
 * minimizes the sum over sizes of its time / the best time. Ties keep the
 * smaller thresholds. */
#ifndef LLMK_TOOLS_ALLREDUCE_FIT_H
#define LLMK_TOOLS_ALLREDUCE_FIT_H

#include <stddef.h>

void llmk_allreduce_fit(int n, const size_t *sizes, const double *t_one, const double *t_two, const double *t_nccl,
                        size_t *one, size_t *two);

#endif
