/* The CUDA hooks of a build without nvcc: the CPU backend works, CUDA
 * handles cannot be created, and no device is visible. */
#include "core/attn.h"
#include "core/comm.h"
#include "core/gemm.h"
#include "core/int4.h"
#include "core/moe.h"
#include "core/norm.h"
#include "core/quant.h"

static llmk_status no_cuda(const char *fn) {
  return llmk_set_error(LLMK_ERR_NOT_SUPPORTED, fn,
                        "this llmk was built without CUDA (no nvcc at build time)");
}

llmk_status llmk_cuda_create(llmk_handle h, int device) {
  (void)h;
  (void)device;
  return no_cuda("llmk_create_cuda");
}

void llmk_cuda_release(llmk_handle h) { (void)h; }

llmk_status llmk_cuda_set_workspace(llmk_handle h, void *ptr, size_t bytes) {
  (void)h, (void)ptr, (void)bytes;
  return no_cuda("llmk_set_workspace");
}

llmk_status llmk_cuda_check_ptr(llmk_handle h, const void *p, const char *fn, const char *name) {
  (void)h;
  (void)p;
  (void)name;
  return no_cuda(fn);
}

llmk_status llmk_cuda_quantize(llmk_handle h, const llmk_qplan *p, const llmk_mat *x,
                               const llmk_mat *q, float *scale, void *stream) {
  (void)h, (void)p, (void)x, (void)q, (void)scale, (void)stream;
  return no_cuda("llmk_quantize_fp8");
}

llmk_status llmk_cuda_dequantize(llmk_handle h, const llmk_qplan *p, const llmk_mat *q,
                                 const float *scale, const llmk_mat *y, void *stream) {
  (void)h, (void)p, (void)q, (void)scale, (void)y, (void)stream;
  return no_cuda("llmk_dequantize_fp8");
}

llmk_status llmk_cuda_gemm_fp8(llmk_handle h, const llmk_gemm_plan *p, void *stream) {
  (void)h, (void)p, (void)stream;
  return no_cuda("llmk_gemm_fp8");
}

llmk_status llmk_cuda_gemm_bf16(llmk_handle h, const llmk_gemm_plan *p, void *stream) {
  (void)h, (void)p, (void)stream;
  return no_cuda("llmk_gemm_bf16");
}

llmk_status llmk_cuda_gemm_grouped(llmk_handle h, const llmk_grouped_plan *p, void *stream) {
  (void)h, (void)p, (void)stream;
  return no_cuda("llmk_gemm_grouped");
}

int llmk_cuda_gemm_config_count(void) { return 0; }

llmk_gemm_config llmk_cuda_gemm_config_get(int i) {
  (void)i;
  const llmk_gemm_config none = LLMK_GEMM_CONFIG_INIT;
  return none;
}

void llmk_cuda_gemm_route(llmk_handle h, const llmk_gemm_plan *p, llmk_gemm_route *out) {
  (void)h, (void)p;
  const llmk_gemm_route none = LLMK_GEMM_ROUTE_INIT;
  *out = none;
}

llmk_status llmk_cuda_rope(llmk_handle h, const llmk_rope_plan *r, const llmk_heads *x,
                           const int32_t *pos, const llmk_heads *y, void *stream) {
  (void)h, (void)r, (void)x, (void)pos, (void)y, (void)stream;
  return no_cuda("llmk_rope");
}

llmk_status llmk_cuda_qkv_write(llmk_handle h, const llmk_rope_plan *r, const llmk_qkv_plan *q,
                                const llmk_kv_plan *c, const llmk_loc_plan *loc, void *stream) {
  (void)h, (void)r, (void)c, (void)loc, (void)stream;
  return no_cuda(q && q->q_out.data ? "llmk_rope_qkv_write" : "llmk_kv_cache_write");
}

llmk_status llmk_cuda_kv_dequantize(llmk_handle h, const llmk_kv_plan *c, void *k_out,
                                    void *v_out, llmk_dtype out_dtype, void *stream) {
  (void)h, (void)c, (void)k_out, (void)v_out, (void)out_dtype, (void)stream;
  return no_cuda("llmk_kv_cache_dequantize");
}

llmk_status llmk_cuda_attention_decode(llmk_handle h, const llmk_attn_plan *a,
                                       const llmk_kv_plan *c, void *stream) {
  (void)h, (void)a, (void)c, (void)stream;
  return no_cuda("llmk_attention_decode");
}

llmk_status llmk_cuda_rmsnorm(llmk_handle h, const llmk_rmsnorm_plan *p, void *stream) {
  (void)h, (void)p, (void)stream;
  return no_cuda("llmk_rmsnorm");
}

llmk_status llmk_cuda_silu_mul_quant(llmk_handle h, const llmk_silu_plan *p, void *stream) {
  (void)h, (void)p, (void)stream;
  return no_cuda("llmk_silu_mul_quant");
}

llmk_status llmk_cuda_device_count(int *count) {
  if (!count) return llmk_set_error(LLMK_ERR_INVALID_ARGUMENT, __func__, "count is NULL");
  *count = 0;
  return LLMK_SUCCESS;
}

llmk_status llmk_cuda_device_info(int device, llmk_device_info *info) {
  (void)device;
  llmk_status s = llmk_sized_write(info, NULL, LLMK_DEVICE_INFO_SIZE, LLMK_DEVICE_INFO_SIZE, __func__, "info",
                                   "LLMK_DEVICE_INFO_INIT");
  return s ? s : no_cuda(__func__);
}

llmk_status llmk_cuda_comm_alloc(llmk_comm c, const char *fn) {
  (void)c;
  return no_cuda(fn);
}
llmk_status llmk_cuda_comm_blob(llmk_comm c, void *blob, const char *fn) {
  (void)c, (void)blob;
  return no_cuda(fn);
}
llmk_status llmk_cuda_comm_open(llmk_comm c, const void *blobs, const char *fn) {
  (void)c, (void)blobs;
  return no_cuda(fn);
}
llmk_status llmk_cuda_comm_create_nccl(llmk_comm c, void *nccl_comm, const char *fn) {
  (void)c, (void)nccl_comm;
  return no_cuda(fn);
}
void llmk_cuda_comm_free(llmk_comm c) { (void)c; }
llmk_status llmk_cuda_allreduce(llmk_comm c, const llmk_ar_call *call, void *stream) {
  (void)c, (void)call, (void)stream;
  return no_cuda("llmk_allreduce");
}

llmk_status llmk_cuda_moe_route(llmk_handle h, const llmk_moe_route_plan *p, void *stream) {
  (void)h, (void)p, (void)stream;
  return no_cuda("llmk_moe_route");
}

llmk_status llmk_cuda_moe_permute(llmk_handle h, const llmk_moe_permute_plan *p, void *stream) {
  (void)h, (void)p, (void)stream;
  return no_cuda("llmk_moe_permute");
}

llmk_status llmk_cuda_moe_route_permute(llmk_handle h, const llmk_moe_route_plan *rp, const llmk_moe_permute_plan *pp,
                                        void *stream) {
  (void)h, (void)rp, (void)pp, (void)stream;
  return no_cuda("llmk_moe_route_permute");
}

llmk_status llmk_cuda_moe_gather_quant(llmk_handle h, const llmk_moe_gather_plan *p, void *stream) {
  (void)h, (void)p, (void)stream;
  return no_cuda("llmk_moe_gather_quant");
}

llmk_status llmk_cuda_moe_combine(llmk_handle h, const llmk_moe_combine_plan *p, void *stream) {
  (void)h, (void)p, (void)stream;
  return no_cuda("llmk_moe_combine");
}

llmk_status llmk_cuda_int4_quantize(llmk_handle h, const llmk_int4_plan *p, void *stream) {
  (void)h, (void)p, (void)stream;
  return no_cuda("llmk_int4_quantize");
}

llmk_status llmk_cuda_int4_dequantize(llmk_handle h, const llmk_int4_plan *p, void *stream) {
  (void)h, (void)p, (void)stream;
  return no_cuda("llmk_int4_dequantize");
}

llmk_status llmk_cuda_gemm_w4a16(llmk_handle h, const llmk_w4a16_plan *p, void *stream) {
  (void)h, (void)p, (void)stream;
  return no_cuda("llmk_gemm_w4a16");
}
