/* Dtype tables and the shape/stride checks shared by every op. */
#include <stdint.h>

#include "core/internal.h"

/* Every dim, stride and a tensor's whole extent are at most LLMK_MAX_EXTENT
 * (llmk.h) elements, so byte counts and addresses never overflow. */

size_t llmk_dtype_size(llmk_dtype dt) {
  switch (dt) {
    case LLMK_F32: case LLMK_I32: return 4;
    case LLMK_F16: case LLMK_BF16: return 2;
    case LLMK_E4M3: case LLMK_E5M2: case LLMK_U8: return 1;
    case LLMK_I64: return 8;
  }
  return 0;
}

const char *llmk_dtype_name(llmk_dtype dt) {
  switch (dt) {
    case LLMK_F32: return "f32";
    case LLMK_F16: return "f16";
    case LLMK_BF16: return "bf16";
    case LLMK_E4M3: return "e4m3";
    case LLMK_E5M2: return "e5m2";
    case LLMK_I32: return "i32";
    case LLMK_I64: return "i64";
    case LLMK_U8: return "u8";
  }
  return "invalid";
}

static llmk_status check_header(const llmk_tensor *t, const char *fn, const char *name) {
  if (!t) return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "%s is NULL", name);
  if (llmk_dtype_size(t->dtype) == 0)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "%s: invalid dtype value %d", name,
                          (int)t->dtype);
  if (t->ndim < 1 || t->ndim > LLMK_MAX_DIMS)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "%s: ndim must be 1..%d, got %d", name,
                          LLMK_MAX_DIMS, (int)t->ndim);
  for (int i = 0; i < t->ndim; i++) {
    if (t->shape[i] < 0)
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "%s: shape[%d] = %lld is negative", name, i,
                            (long long)t->shape[i]);
    if (t->shape[i] > LLMK_MAX_EXTENT)
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                            "%s: shape[%d] = %lld exceeds llmk's cap of 2^48 elements (LLMK_MAX_EXTENT)", name, i,
                            (long long)t->shape[i]);
    if (t->strides[i] < 0)
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "%s: strides[%d] = %lld: negative strides are not supported",
                            name, i, (long long)t->strides[i]);
    if (t->strides[i] > LLMK_MAX_EXTENT)
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                            "%s: strides[%d] = %lld exceeds llmk's cap of 2^48 elements (LLMK_MAX_EXTENT)", name, i,
                            (long long)t->strides[i]);
  }
  size_t es = llmk_dtype_size(t->dtype);
  if ((uintptr_t)t->data % es != 0)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "%s.data = %p is not aligned to its %zu-byte %s element", name, t->data,
                          es, llmk_dtype_name(t->dtype));
  return LLMK_SUCCESS;
}

llmk_status llmk_tensor_as_rows(const llmk_tensor *t, const char *fn, const char *name,
                                llmk_mat *m) {
  llmk_status s = check_header(t, fn, name);
  if (s) return s;
  int nd = t->ndim;
  int64_t cols = t->shape[nd - 1];
  int64_t rows = 1;
  for (int i = 0; i < nd - 1; i++) {
    if (t->shape[i] != 0 && rows > LLMK_MAX_EXTENT / t->shape[i])
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                            "%s: its rows (the product of the leading dims) overflow llmk's cap of 2^48 elements "
                            "(LLMK_MAX_EXTENT)",
                            name);
    rows *= t->shape[i];
  }
  if (cols > 1 && t->strides[nd - 1] != 1)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "%s: the last dim must have stride 1, got %lld", name,
                          (long long)t->strides[nd - 1]);
  /* Rows are the leading index tuples; row i must start at i * ld. Size-1
   * dims do not move the start, so only dims of size > 1 are checked: the
   * innermost sets ld, each outer one must step over all rows inside it. */
  int64_t ld = cols, inner_rows = 1;
  int have_ld = 0;
  for (int i = nd - 2; i >= 0; i--) {
    if (t->shape[i] <= 1) continue;
    if (!have_ld) {
      ld = t->strides[i];
      have_ld = 1;
    } else if (t->strides[i] != ld * inner_rows) {
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                            "%s: leading dims must be collapsible into rows: strides[%d] = %lld, "
                            "expected %lld",
                            name, i, (long long)t->strides[i], (long long)(ld * inner_rows));
    }
    inner_rows *= t->shape[i];
  }
  if (rows > 1 && ld < cols)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "%s: row stride %lld is smaller than the row length %lld", name,
                          (long long)ld, (long long)cols);
  if (rows > 0 && cols > 0 &&
      ((rows - 1) > (LLMK_MAX_EXTENT - cols) / (ld > 0 ? ld : 1)))
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                          "%s: its extent ((rows - 1) x row stride %lld + %lld) overflows llmk's cap of 2^48 elements "
                          "(LLMK_MAX_EXTENT)",
                          name, (long long)ld, (long long)cols);
  /* bytes past the end of the address space would defeat the overlap checks */
  const uintptr_t bytes = rows > 0 && cols > 0 ? (uintptr_t)((rows - 1) * ld + cols) * llmk_dtype_size(t->dtype) : 0;
  if ((uintptr_t)t->data + bytes < (uintptr_t)t->data)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "%s: its %zu bytes at %p wrap past the end of the address space",
                          name, (size_t)bytes, t->data);
  if (!t->data && rows > 0 && cols > 0)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "%s.data is NULL", name);
  m->data = t->data;
  m->dtype = t->dtype;
  m->rows = rows;
  m->cols = cols;
  m->ld = ld > 0 ? ld : 1;
  return LLMK_SUCCESS;
}

llmk_status llmk_tensor_expect(const llmk_tensor *t, const char *fn, const char *name,
                               llmk_dtype dtype, int ndim, const int64_t *dims) {
  llmk_status s = check_header(t, fn, name);
  if (s) return s;
  if (t->dtype != dtype)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "%s: expected dtype %s, got %s", name,
                          llmk_dtype_name(dtype), llmk_dtype_name(t->dtype));
  if (t->ndim != ndim)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "%s: expected %d dims, got %d", name,
                          ndim, (int)t->ndim);
  int64_t expect_stride = 1, n = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    if (t->shape[i] != dims[i])
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                            "%s: expected shape[%d] = %lld, got %lld", name, i,
                            (long long)dims[i], (long long)t->shape[i]);
    if (dims[i] > 1 && t->strides[i] != expect_stride)
      return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn,
                            "%s must be contiguous: strides[%d] = %lld, expected %lld", name, i,
                            (long long)t->strides[i], (long long)expect_stride);
    expect_stride *= dims[i];
    n *= dims[i];
  }
  if (!t->data && n > 0)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "%s.data is NULL", name);
  return LLMK_SUCCESS;
}

llmk_status llmk_check_backend_ptrs(llmk_handle h, const char *fn, const void *const *ptrs,
                                    const char *const *names, int n) {
  if (h->backend != LLMK_BACKEND_CUDA) return LLMK_SUCCESS;
  if (!h->supported)
    return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn,
                          "device %d is not a Hopper GPU (compute capability 9.x); llmk's kernels "
                          "are built for sm_90a",
                          h->device);
  for (int i = 0; i < n; i++) {
    if (!ptrs[i]) continue;
    llmk_status s = llmk_cuda_check_ptr(h, ptrs[i], fn, names[i]);
    if (s) return s;
  }
  return LLMK_SUCCESS;
}

const char *llmk_scaling_name(llmk_scaling s) {
  switch (s) {
    case LLMK_SCALING_TENSOR: return "tensor";
    case LLMK_SCALING_ROW: return "row";
    case LLMK_SCALING_COL: return "col";
    case LLMK_SCALING_BLOCK: return "block";
  }
  return "invalid";
}

void llmk_mat_extent(const llmk_mat *m, uintptr_t *lo, uintptr_t *hi) {
  *lo = *hi = (uintptr_t)m->data;
  if (m->rows > 0 && m->cols > 0) *hi += (size_t)((m->rows - 1) * m->ld + m->cols) * llmk_dtype_size(m->dtype);
}

int llmk_ranges_overlap(uintptr_t alo, uintptr_t ahi, uintptr_t blo, uintptr_t bhi) {
  return alo < ahi && blo < bhi && alo < bhi && blo < ahi;
}
