/* CHECK_ERR: a call that must return `want` and, when it fails, leave a
 * message of its own (the last error is first set to a known one). */
#ifndef LLMK_TESTS_CHECK_ERR_H
#define LLMK_TESTS_CHECK_ERR_H

#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "llmk.h"

static char primed[512];
/* Sets llmk_last_error() to a known message, so a later check can see that
 * the call under test wrote its own. */
static inline void prime(void) {
  llmk_get_build_info(NULL);
  snprintf(primed, sizeof primed, "%s", llmk_last_error());
}
#define CHECK_ERR(call, want, what)                                                                     \
  do {                                                                                                  \
    prime();                                                                                            \
    const llmk_status s_ = (call);                                                                      \
    CHECK(s_ == (want), "%s: got %s, want %s (%s)", what, llmk_status_string(s_),                      \
          llmk_status_string(want), llmk_last_error());                                                 \
    if (s_ != LLMK_SUCCESS)                                                                             \
      CHECK(llmk_last_error()[0] && strcmp(llmk_last_error(), primed), "%s: no message of its own", what); \
  } while (0)

#endif
