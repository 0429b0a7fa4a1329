/* Bad-input tests of the rest of the API (docs/DESIGN.md, "Testing"; the
 * machinery is tests/api_errors.h): llmk_status_string, llmk_get_build_info,
 * the dtype tables and scalar conversions with invalid dtypes, handle
 * creation and destruction (bad devices; without a device the documented
 * NOT_SUPPORTED and message), llmk_handle_backend (outputs untouched on
 * error), llmk_cuda_device_count and llmk_cuda_device_info. Each failing
 * call must return its documented status with a fresh message naming the
 * argument, and leave the CPU handle usable. */
#include "api_errors.h"

/* ---- the rest of the API -------------------------------------------------- */

static void misc_cases(llmk_handle h, llmk_handle bogus, int ndev) {
  /* llmk_status_string */
  {
    int ok = 1;
    for (int s = 0; s <= (int)LLMK_ERR_INTERNAL; s++) {
      const char *n = llmk_status_string((llmk_status)s);
      if (!n || strncmp(n, "LLMK_", 5) != 0 || strstr(n, "UNKNOWN")) ok = 0;
    }
    CHECK(ok && !strcmp(llmk_status_string(LLMK_ERR_INVALID_ARGUMENT), "LLMK_ERR_INVALID_ARGUMENT"),
          "status names");
    const char *a = llmk_status_string((llmk_status)99), *b = llmk_status_string((llmk_status)-1);
    CHECK(a && b && a[0] && b[0] && strcmp(a, "LLMK_SUCCESS") && strcmp(b, "LLMK_SUCCESS"),
          "invalid statuses name themselves: %s / %s", a ? a : "(null)", b ? b : "(null)");
  }

  /* llmk_get_build_info */
  reset_error("llmk_get_build_info");
  expect_status("llmk_get_build_info(NULL)", llmk_get_build_info(NULL), INV, "llmk_get_build_info",
                "info", "NULL");

  /* dtype tables and scalar conversions with invalid dtypes */
  CHECK(llmk_dtype_size((llmk_dtype)8) == 0 && llmk_dtype_size((llmk_dtype)-1) == 0 &&
            llmk_dtype_size((llmk_dtype)1000) == 0 && llmk_dtype_size(LLMK_BF16) == 2,
        "llmk_dtype_size of invalid dtypes");
  CHECK(!strcmp(llmk_dtype_name((llmk_dtype)8), "invalid") &&
            !strcmp(llmk_dtype_name((llmk_dtype)-1), "invalid") && !strcmp(llmk_dtype_name(LLMK_E5M2), "e5m2"),
        "llmk_dtype_name of invalid dtypes");
  CHECK(llmk_float_to_fp8(1.0f, LLMK_BF16) == 0 && llmk_float_to_fp8(448.0f, LLMK_F32) == 0 &&
            llmk_float_to_fp8(1.0f, (llmk_dtype)99) == 0 && llmk_float_to_fp8(1.0f, (llmk_dtype)-1) == 0 &&
            llmk_float_to_fp8(1.0f, LLMK_E4M3) == 0x38,
        "llmk_float_to_fp8 with a non-FP8 dtype must return 0");
  CHECK(isnan(llmk_fp8_to_float(0x38, LLMK_F32)) && isnan(llmk_fp8_to_float(0x38, LLMK_U8)) &&
            isnan(llmk_fp8_to_float(0x38, (llmk_dtype)99)) && isnan(llmk_fp8_to_float(0, (llmk_dtype)-1)) &&
            llmk_fp8_to_float(0x38, LLMK_E4M3) == 1.0f,
        "llmk_fp8_to_float with a non-FP8 dtype must return NaN");

  /* handles */
  reset_error("llmk_create_cpu");
  expect_status("llmk_create_cpu(NULL)", llmk_create_cpu(NULL), INV, "llmk_create_cpu", "out", "NULL");
  reset_error("llmk_create_cuda");
  expect_status("llmk_create_cuda(0, NULL)", llmk_create_cuda(0, NULL), INV, "llmk_create_cuda", "out",
                "NULL");
  static const int bad_devs[] = {-1, 1 << 20, -2147483647 - 1};
  for (int i = 0; i < 3; i++) {
    llmk_handle hc = bogus; /* must come back NULL */
    char what[64];
    snprintf(what, sizeof what, "llmk_create_cuda(%d, &h)", bad_devs[i]);
    reset_error("llmk_create_cuda");
    llmk_status s = llmk_create_cuda(bad_devs[i], &hc);
    if (ndev == 0) {
      const char *m = llmk_last_error();
      CHECK(s == LLMK_ERR_NOT_SUPPORTED && hc == NULL && (strstr(m, "no CUDA") || strstr(m, "without CUDA")),
            "%s without a device: %s, out %s, \"%s\"", what, llmk_status_string(s),
            hc ? "not NULL" : "NULL", m);
    } else {
      expect_status(what, s, INV, "llmk_create_cuda", "device", NULL);
      CHECK(hc == NULL, "%s: *out not set to NULL", what);
    }
  }
  if (ndev == 0) {
    llmk_handle hc = bogus;
    llmk_status s = llmk_create_cuda(0, &hc);
    const char *m = llmk_last_error();
    CHECK(s == LLMK_ERR_NOT_SUPPORTED && hc == NULL && (strstr(m, "no CUDA") || strstr(m, "without CUDA")),
          "llmk_create_cuda(0, &h) without a device: %s, \"%s\"", llmk_status_string(s), m);
  }
  CHECK(llmk_destroy(NULL) == LLMK_SUCCESS, "llmk_destroy(NULL): %s", llmk_last_error());
  reset_error("llmk_destroy");
  expect_status("llmk_destroy(garbage)", llmk_destroy(bogus), INV, "llmk_destroy", "handle", NULL);

  /* llmk_handle_backend: out params untouched on error */
  {
    llmk_backend b = (llmk_backend)77;
    int dev = 77;
    reset_error("llmk_handle_backend");
    expect_status("llmk_handle_backend(NULL, ...)", llmk_handle_backend(NULL, &b, &dev), INV,
                  "llmk_handle_backend", "handle", "NULL");
    reset_error("llmk_handle_backend");
    expect_status("llmk_handle_backend(garbage, ...)", llmk_handle_backend(bogus, &b, &dev), INV,
                  "llmk_handle_backend", "handle", NULL);
    reset_error("llmk_handle_backend");
    expect_status("llmk_handle_backend(h, NULL, &dev)", llmk_handle_backend(h, NULL, &dev), INV,
                  "llmk_handle_backend", "backend", NULL);
    reset_error("llmk_handle_backend");
    expect_status("llmk_handle_backend(h, &b, NULL)", llmk_handle_backend(h, &b, NULL), INV,
                  "llmk_handle_backend", "device", NULL);
    CHECK(b == (llmk_backend)77 && dev == 77, "llmk_handle_backend wrote an output on error");
    llmk_status s = llmk_handle_backend(h, &b, &dev);
    CHECK(s == LLMK_SUCCESS && b == LLMK_BACKEND_CPU && dev == -1, "llmk_handle_backend(cpu): %s",
          llmk_last_error());
  }

  /* devices */
  reset_error("llmk_cuda_device_count");
  expect_status("llmk_cuda_device_count(NULL)", llmk_cuda_device_count(NULL), INV,
                "llmk_cuda_device_count", "count", "NULL");
  {
    reset_error("llmk_cuda_device_count"); /* a success must leave this message */
    char before[1024];
    snprintf(before, sizeof before, "%s", llmk_last_error());
    int n = -5;
    llmk_status s = llmk_cuda_device_count(&n);
    CHECK(s == LLMK_SUCCESS && n == ndev && !strcmp(before, llmk_last_error()),
          "llmk_cuda_device_count(&n) must succeed and leave the last error alone: %s, n %d, \"%s\"",
          llmk_status_string(s), n, llmk_last_error());
  }
  reset_error("llmk_cuda_device_info");
  expect_status("llmk_cuda_device_info(0, NULL)", llmk_cuda_device_info(0, NULL), INV,
                "llmk_cuda_device_info", "info", "NULL");
  {
    const int devs[] = {-1, 1 << 20, ndev};
    for (int i = 0; i < 3; i++) {
      llmk_device_info info = LLMK_DEVICE_INFO_INIT, ref = LLMK_DEVICE_INFO_INIT;
      memset(&info, 0xA5, sizeof info);
      memcpy(&ref, &info, sizeof ref);
      char what[64];
      snprintf(what, sizeof what, "llmk_cuda_device_info(%d, &info)", devs[i]);
      reset_error("llmk_cuda_device_info");
      llmk_status s = llmk_cuda_device_info(devs[i], &info);
      if (ndev == 0) {
        const char *m = llmk_last_error();
        CHECK(s == LLMK_ERR_NOT_SUPPORTED && (strstr(m, "no CUDA") || strstr(m, "without CUDA")),
              "%s without a device: %s \"%s\"", what, llmk_status_string(s), m);
      } else {
        expect_status(what, s, INV, "llmk_cuda_device_info", "device", NULL);
      }
      CHECK(!memcmp(&info, &ref, sizeof info), "%s wrote *info on error", what);
    }
  }
  CHECK(usable(h), "the CPU handle is not usable after the API error cases");
}

int main(void) {
  llmk_handle h = NULL, bogus = NULL;
  int ndev = 0;
  if (!ae_setup(&h, &bogus, &ndev)) TEST_END();
  misc_cases(h, bogus, ndev);
  ae_teardown(h, bogus);
  TEST_END();
}
