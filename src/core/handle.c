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

/* Every handle starts with no GEMM override (llmk_set_gemm_override). */
static void reset_gemm_override(llmk_handle h) {
  const llmk_gemm_override none = LLMK_GEMM_OVERRIDE_INIT;
  h->gemm_override = none;
  h->gemm_tuning = LLMK_GEMM_TUNE_ENV;
}

llmk_status llmk_create_cpu(llmk_handle *out) {
  if (!out) return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, __func__, "out is NULL");
  *out = NULL;
  llmk_handle h = calloc(1, sizeof *h);
  if (!h) return llmk_set_error(LLMK_ERR_OUT_OF_MEMORY, __func__, "cannot allocate the handle");
  h->backend = LLMK_BACKEND_CPU;
  h->device = -1;
  reset_gemm_override(h);
  *out = h;
  return LLMK_SUCCESS;
}

llmk_status llmk_create_cuda(int device, llmk_handle *out) {
  if (!out) return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, __func__, "out is NULL");
  *out = NULL;
  llmk_handle h = calloc(1, sizeof *h);
  if (!h) return llmk_set_error(LLMK_ERR_OUT_OF_MEMORY, __func__, "cannot allocate the handle");
  h->backend = LLMK_BACKEND_CUDA;
  h->device = device;
  reset_gemm_override(h);
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
  llmk_build_info b = LLMK_BUILD_INFO_INIT;
  b.version_major = LLMK_VERSION_MAJOR;
  b.version_minor = LLMK_VERSION_MINOR;
  b.version_patch = LLMK_VERSION_PATCH;
#ifdef LLMK_WITH_CUDA
  b.has_cuda = 1;
  b.cuda_version = CUDART_VERSION;
  b.cublas_version = CUBLAS_VERSION;
  b.nccl_version = NCCL_VERSION_CODE;
  b.cuda_archs = "sm_90a";
#else
  b.cuda_archs = "";
#endif
  return llmk_sized_write(info, &b, LLMK_BUILD_INFO_SIZE, LLMK_BUILD_INFO_SIZE, __func__, "info",
                          "LLMK_BUILD_INFO_INIT");
}

int llmk_version(void) { return LLMK_VERSION_CODE; }

size_t llmk_struct_size(llmk_struct_id id) {
  switch (id) {
    case LLMK_STRUCT_TENSOR: return sizeof(llmk_tensor);
    case LLMK_STRUCT_BUILD_INFO: return LLMK_BUILD_INFO_SIZE;
    case LLMK_STRUCT_DEVICE_INFO: return LLMK_DEVICE_INFO_SIZE;
    case LLMK_STRUCT_QUANTIZE_DESC: return LLMK_QUANTIZE_DESC_SIZE;
    case LLMK_STRUCT_GEMM_DESC: return LLMK_GEMM_DESC_SIZE;
    case LLMK_STRUCT_KV_CACHE: return LLMK_KV_CACHE_SIZE;
    case LLMK_STRUCT_KV_LOC: return LLMK_KV_LOC_SIZE;
    case LLMK_STRUCT_ROPE_DESC: return LLMK_ROPE_DESC_SIZE;
    case LLMK_STRUCT_ATTENTION_DESC: return LLMK_ATTENTION_DESC_SIZE;
    case LLMK_STRUCT_RMSNORM_DESC: return LLMK_RMSNORM_DESC_SIZE;
    case LLMK_STRUCT_GEMM_CONFIG: return LLMK_GEMM_CONFIG_SIZE;
    case LLMK_STRUCT_GEMM_ROUTE: return LLMK_GEMM_ROUTE_SIZE;
    case LLMK_STRUCT_GEMM_OVERRIDE: return LLMK_GEMM_OVERRIDE_SIZE;
    case LLMK_STRUCT_GROUPED_GEMM_DESC: return LLMK_GROUPED_GEMM_DESC_SIZE;
    case LLMK_STRUCT_MOE_ROUTE_DESC: return LLMK_MOE_ROUTE_DESC_SIZE;
    case LLMK_STRUCT_MOE_PERMUTE_DESC: return LLMK_MOE_PERMUTE_DESC_SIZE;
    case LLMK_STRUCT_INT4_DESC: return LLMK_INT4_DESC_SIZE;
    case LLMK_STRUCT_INT4_IMPORT_DESC: return LLMK_INT4_IMPORT_DESC_SIZE;
  }
  return 0;
}
