/* Status names and the thread-local last-error message. */
#include <stdarg.h>
#include <stdio.h>

#include "core/internal.h"

static _Thread_local char last_error[1024];

const char *llmk_status_string(llmk_status s) {
  switch (s) {
    case LLMK_SUCCESS: return "LLMK_SUCCESS";
    case LLMK_ERR_INVALID_ARGUMENT: return "LLMK_ERR_INVALID_ARGUMENT";
    case LLMK_ERR_NOT_SUPPORTED: return "LLMK_ERR_NOT_SUPPORTED";
    case LLMK_ERR_OUT_OF_MEMORY: return "LLMK_ERR_OUT_OF_MEMORY";
    case LLMK_ERR_CUDA: return "LLMK_ERR_CUDA";
    case LLMK_ERR_CUBLAS: return "LLMK_ERR_CUBLAS";
    case LLMK_ERR_NCCL: return "LLMK_ERR_NCCL";
    case LLMK_ERR_COMM_TIMEOUT: return "LLMK_ERR_COMM_TIMEOUT";
    case LLMK_ERR_INTERNAL: return "LLMK_ERR_INTERNAL";
  }
  return "LLMK_ERR_UNKNOWN_STATUS";
}

const char *llmk_last_error(void) { return last_error; }

llmk_status llmk_set_error(llmk_status s, const char *fn, const char *fmt, ...) {
  int n = snprintf(last_error, sizeof last_error, "%s: ", fn);
  if (n < 0 || (size_t)n >= sizeof last_error) n = 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error + n, sizeof last_error - (size_t)n, fmt, ap);
  va_end(ap);
  return s;
}
