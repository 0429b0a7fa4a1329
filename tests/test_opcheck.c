/* Every op-check case (tools/opcheck: quantize / dequantize, the GEMMs,
 * rmsnorm, silu_mul_quant, rope, the KV-cache writes and dequantization,
 * decode attention, the MoE ops, the INT4 weight ops) on the CPU backend with two poisons and, where a
 * Hopper GPU is visible, on CUDA against the CPU. Shapes are fuzzed from
 * the seed (LLMK_TEST_SEED replays); LLMK_TEST_QUICK=1 runs the quick
 * subset; LLMK_OPCHECK_OP=NAME runs one op's cases. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "opcheck/opcheck.h"

/* ---- the harness's own checks: a copy op that misbehaves on purpose ---- */

enum { SELF_GOOD, SELF_UNWRITTEN, SELF_PADDING, SELF_GUARD, SELF_INPUT, SELF_COUNT };
static const char *const self_names[] = {"a correct copy", "an element left unwritten", "a write into row padding",
                                         "a write past the end", "a write into the input"};

static llmk_status self_run(const oc_case *c, const oc_env *e, void *stream) {
  (void)stream;
  const int mode = *OC_PARAMS(c, const int);
  const llmk_tensor *x = &e->t[0], *y = &e->t[1];
  const int64_t M = x->shape[0], K = x->shape[1];
  for (int64_t m = 0; m < M; m++)
    for (int64_t k = 0; k < K; k++) {
      if (mode == SELF_UNWRITTEN && m == M - 1 && k == K / 2) continue;
      ((uint16_t *)y->data)[m * y->strides[0] + k] = ((const uint16_t *)x->data)[m * x->strides[0] + k];
    }
  if (mode == SELF_PADDING) ((uint16_t *)y->data)[K] = 0x1234;                       /* row 0's padding */
  if (mode == SELF_GUARD) ((uint8_t *)e->base[1])[c->buf[1].bytes + 3] = 0x42;       /* after the buffer */
  if (mode == SELF_INPUT) ((uint16_t *)x->data)[1] ^= 1;
  return LLMK_SUCCESS;
}

static void self_fill(const oc_case *c, void *const *host, oc_rng *r, llmk_handle cpu) {
  (void)cpu;
  for (int64_t i = 0; i < 5 * 12; i++) ((uint16_t *)oc_at(c, host, 0, 0))[i] = llmk_float_to_bf16(oc_normal(r));
}

/* Each misbehaviour must fail the case (and only the correct copy pass). */
static void harness_self_test(oc_ctx *x) {
  FILE *quiet = fopen("/dev/null", "w");
  FILE *log = x->log;
  if (quiet) x->log = quiet;
  for (int mode = 0; mode < SELF_COUNT; mode++) {
    oc_case c;
    oc_case_init(&c, "selftest", 7 + (uint64_t)mode);
    *OC_PARAMS(&c, int) = mode;
    snprintf(c.name, sizeof c.name, "%s", self_names[mode]);
    oc_buf_2d(&c, "x", OC_IN, OC_CMP_BITS, LLMK_BF16, 5, 10, 12, 0);
    oc_buf_2d(&c, "y", OC_OUT, OC_CMP_BITS, LLMK_BF16, 5, 10, 11, 1);
    c.fill = self_fill;
    c.run = self_run;
    c.flags = OC_CPU_ONLY;
    oc_result r;
    const int ok = oc_run(x, &c, NULL, &r);
    CHECK(ok == (mode == SELF_GOOD), "harness self-test, %s: the harness reported %s (%s)", self_names[mode],
          ok ? "no failure" : "a failure", r.failure);
  }
  x->log = log;
  if (quiet) fclose(quiet);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  t_seed();
  const char *q = getenv("LLMK_TEST_QUICK"), *only = getenv("LLMK_OPCHECK_OP");
  const int quick = q && *q == '1';
  oc_ctx x;
  if (!oc_init(&x, 1)) {
    CHECK(0, "the CPU handle: %s", llmk_last_error());
    TEST_END();
  }
  harness_self_test(&x);
  oc_list l = {0};
  oc_all_cases(&l, quick, t_rand_u64());
  int ran = 0, on_gpu = 0;
  struct { char op[32]; int cases, checks, failed; } per[24];
  int nper = 0;
  for (int i = 0; i < l.n; i++) {
    const oc_case *c = &l.v[i];
    if (only && strcmp(only, c->op)) continue;
    if (quick && !(c->flags & OC_QUICK)) continue;
    oc_result r;
    oc_run(&x, c, NULL, &r);
    t_passed += r.checks - r.failed;
    t_failed += r.failed;
    ran++, on_gpu += r.gpu_ran;
    if (r.skipped && x.gpu && !x.gpu_broken) SKIP("%s", r.skip_why); /* CUDA refused a forced backend's shape */
    int k = 0;
    while (k < nper && strcmp(per[k].op, c->op)) k++;
    if (k == nper && nper < 24) {
      snprintf(per[k].op, sizeof per[k].op, "%s", c->op);
      per[k].cases = per[k].checks = per[k].failed = 0;
      nper++;
    }
    if (k < nper) per[k].cases++, per[k].checks += r.checks, per[k].failed += r.failed;
  }
  for (int k = 0; k < nper; k++)
    printf("%-20s %4d cases, %6d checks, %d failed\n", per[k].op, per[k].cases, per[k].checks, per[k].failed);
  printf("%d cases (%s), %d compared with CUDA\n", ran, quick ? "quick subset" : "all", on_gpu);
  if (!x.gpu) SKIP("%s: the CUDA half of %d op-check cases", x.why_no_gpu, ran);
  if (x.gpu_broken) CHECK(0, "a CUDA error stopped the GPU runs");
  oc_list_free(&l);
  oc_fini(&x);
  TEST_END();
}
