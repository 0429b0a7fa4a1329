/* Handles, build info and the public scalar conversions. */
#include <stdlib.h>

#include "core/internal.h"
#include "fp8/fp8.h"

llmk_status llmk_check_handle(llmk_handle h, const char *fn) {
  if (!h) return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "handle is NULL");
  if (h->backend != LLMK_BACKEND_CPU && h->backend != LLMK_BACKEND_CUDA)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, fn, "handle is not a live llmk handle");
  return LLMK_SUCCESS;
}

llmk_status llmk_create_cpu(llmk_handle *out) {
  if (!out) return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, __func__, "out is NULL");
  *out = NULL;
  llmk_handle h = calloc(1, sizeof *h);
  if (!h) return llmk_set_error(LLMK_ERR_OUT_OF_MEMORY, __func__, "cannot allocate the handle");
  h->backend = LLMK_BACKEND_CPU;
  h->device = -1;
  *out = h;
  return LLMK_SUCCESS;
}

llmk_status llmk_create_cuda(llmk_handle *out, int device) {
  if (!out) return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, __func__, "out is NULL");
  *out = NULL;
  llmk_handle h = calloc(1, sizeof *h);
  if (!h) return llmk_set_error(LLMK_ERR_OUT_OF_MEMORY, __func__, "cannot allocate the handle");
  h->backend = LLMK_BACKEND_CUDA;
  h->device = device;
  llmk_status s = llmk_cuda_create(h, device);
  if (s) {
    free(h);
    return s;
  }
  *out = h;
  return LLMK_SUCCESS;
}

llmk_status llmk_destroy(llmk_handle h) {
  if (!h) return LLMK_SUCCESS;
  llmk_status s = llmk_check_handle(h, __func__);
  if (s) return s;
  if (h->backend == LLMK_BACKEND_CUDA) llmk_cuda_release(h);
  h->backend = (llmk_backend)-1; /* a stale copy of the pointer now fails the check above */
  free(h);
  return LLMK_SUCCESS;
}

llmk_status llmk_handle_backend(llmk_handle h, llmk_backend *backend, int *device) {
  llmk_status s = llmk_check_handle(h, __func__);
  if (s) return s;
  if (!backend || !device)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, __func__, "backend or device is NULL");
  *backend = h->backend;
  *device = h->device;
  return LLMK_SUCCESS;
}

llmk_status llmk_set_workspace(llmk_handle h, void *ptr, size_t bytes) {
  llmk_status s = llmk_check_handle(h, __func__);
  if (s) return s;
  if (h->backend != LLMK_BACKEND_CUDA)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, __func__,
                          "the handle runs the CPU backend, which uses no workspace");
  if (!ptr != !bytes)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, __func__,
                          "ptr and bytes must be both set or both 0 (got %p, %zu)", ptr, bytes);
  if (ptr && (uintptr_t)ptr % 256)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, __func__, "ptr = %p is not 256-byte aligned", ptr);
  if (ptr && bytes < LLMK_MIN_WORKSPACE_BYTES)
    return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, __func__,
                          "bytes = %zu is below LLMK_MIN_WORKSPACE_BYTES (%zu)", bytes,
                          (size_t)LLMK_MIN_WORKSPACE_BYTES);
  if (ptr && (s = llmk_cuda_check_ptr(h, ptr, __func__, "ptr"))) return s;
  return llmk_cuda_set_workspace(h, ptr, bytes);
}

uint8_t llmk_float_to_fp8(float x, llmk_dtype dt) {
  if (dt == LLMK_E4M3) return llmk_e4m3_from_f32(x);
  if (dt == LLMK_E5M2) return llmk_e5m2_from_f32(x);
  return 0;
}

float llmk_fp8_to_float(uint8_t code, llmk_dtype dt) {
  if (dt == LLMK_E4M3) return llmk_e4m3_to_f32(code);
  if (dt == LLMK_E5M2) return llmk_e5m2_to_f32(code);
  return llmk_f32_from_bits(0x7FC00000u);
}

uint16_t llmk_float_to_bf16(float x) { return llmk_bf16_from_f32(x); }
float llmk_bf16_to_float(uint16_t bits) { return llmk_bf16_to_f32(bits); }
uint16_t llmk_float_to_f16(float x) { return llmk_f16_from_f32(x); }
float llmk_f16_to_float(uint16_t bits) { return llmk_f16_to_f32(bits); }

#ifdef LLMK_WITH_CUDA
#include <cublas_api.h>
#include <cuda_runtime_api.h>
#include <nccl.h>
#endif

llmk_status llmk_get_build_info(llmk_build_info *info) {
  if (!info) return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, __func__, "info is NULL");
  info->version_major = LLMK_VERSION_MAJOR;
  info->version_minor = LLMK_VERSION_MINOR;
  info->version_patch = LLMK_VERSION_PATCH;
#ifdef LLMK_WITH_CUDA
  info->has_cuda = 1;
  info->cuda_version = CUDART_VERSION;
  info->cublas_version = CUBLAS_VERSION;
  info->nccl_version = NCCL_VERSION_CODE;
  info->cuda_archs = "sm_90a";
#else
  info->has_cuda = 0;
  info->cuda_version = info->cublas_version = info->nccl_version = 0;
  info->cuda_archs = "";
#endif
  return LLMK_SUCCESS;
}
