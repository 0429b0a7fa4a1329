#include "harness.h"
#include "llmk.h"
int main(void) {
  llmk_handle h;
  CHECK(llmk_create_cpu(&h) == LLMK_SUCCESS, "%s", llmk_last_error());
  float x[6] = {1, -2, 3, 0, 0.5f, 448};
  uint8_t q[6];
  float s[2];
  llmk_tensor tx = llmk_tensor_2d(x, LLMK_F32, 2, 3, 3), tq = llmk_tensor_2d(q, LLMK_E4M3, 2, 3, 3),
              ts = llmk_tensor_1d(s, LLMK_F32, 2);
  llmk_quantize_desc d = {LLMK_QUANTIZE_DESC_SIZE, LLMK_SCALING_ROW, 0, 0, NULL, NULL};
  CHECK(llmk_quantize_fp8(h, &d, &tx, &tq, &ts, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
  CHECK(s[0] == 3.0f / 448.0f, "scale %g", s[0]);
  CHECK(q[2] == 0x7E, "q %x", q[2]);
  llmk_destroy(h);
  TEST_END();
}
