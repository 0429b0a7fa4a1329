/* Sized structs (include/llmk.h, "Sized structs"): what a caller's `size`
 * says about the struct it was compiled with. */
#include <string.h>

#include "core/internal.h"

static llmk_status check_size(size_t size, size_t known, size_t first, const char *fn, const char *name,
                              const char *init) {
  if (size == 0)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "%s->size is 0: initialize it with %s", name, init);
  if (size < first)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "%s->size is %zu, smaller than any version of the struct (%zu..%zu bytes): initialize "
                          "it with %s",
                          name, size, first, known, init);
  return LLMK_SUCCESS;
}

llmk_status llmk_sized_read(const void *src, void *dst, size_t dst_bytes, size_t known, size_t first,
                            const char *fn, const char *name, const char *init) {
  memset(dst, 0, dst_bytes);
  if (!src) return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "%s is NULL", name);
  size_t size;
  memcpy(&size, src, sizeof size);
  llmk_status s = check_size(size, known, first, fn, name, init);
  if (s) return s;
  if (size > known) {
    const unsigned char *extra = (const unsigned char *)src + known;
    for (size_t i = 0; i < size - known; i++)
      if (extra[i])
        return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn,
                              "%s->size is %zu but this llmk (%d.%d.%d) knows %zu bytes of it, and byte %zu is "
                              "set: the caller was built against a newer llmk.h",
                              name, size, LLMK_VERSION_MAJOR, LLMK_VERSION_MINOR, LLMK_VERSION_PATCH, known,
                              known + i);
  }
  memcpy(dst, src, size < known ? size : known);
  memcpy(dst, &known, sizeof known); /* the copy is whole now: later readers need not ask */
  return LLMK_SUCCESS;
}

llmk_status llmk_sized_write(void *dst, const void *src, size_t known, size_t first, const char *fn,
                             const char *name, const char *init) {
  if (!dst) return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "%s is NULL", name);
  size_t size;
  memcpy(&size, dst, sizeof size);
  llmk_status s = check_size(size, known, first, fn, name, init);
  if (s || !src) return s;
  /* the caller's size field stays; bytes past what this llmk knows keep the caller's defaults */
  const size_t n = size < known ? size : known;
  memcpy((char *)dst + sizeof size, (const char *)src + sizeof size, n - sizeof size);
  return LLMK_SUCCESS;
}
