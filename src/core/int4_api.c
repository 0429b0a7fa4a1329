/* llmk_int4_quantize / _dequantize / _import: argument checks, then the
 * CPU reference or the CUDA kernels (the first two), or the host
 * conversion of a checkpoint's packing (the last). */
#include <math.h>
#include <string.h>

#include "core/attn_check.h"
#include "core/gemm.h"
#include "core/int4.h"

#define INV LLMK_ERR_INVALID_ARGUMENT

static llmk_status read_desc(const char *fn, const llmk_int4_desc *desc, llmk_int4_desc *d) {
  llmk_status s = LLMK_READ_SIZED(desc, d, LLMK_INT4_DESC_SIZE, LLMK_INT4_DESC_SIZE, fn, "desc", LLMK_INT4_DESC_INIT);
  if (s) return s;
  if (d->group != 64 && d->group != 128)
    return llmk_set_error(INV, fn, "desc->group = %d: llmk takes groups of 64 or 128", d->group);
  if (d->asymmetric != 0 && d->asymmetric != 1)
    return llmk_set_error(INV, fn, "desc->asymmetric must be 0 or 1, got %d", d->asymmetric);
  return LLMK_SUCCESS;
}

/* The weight's tensors for K inputs (any K that is a multiple of the
 * group): codes [N, K/2] u8, which give N, scales [N, K/group] bf16 and,
 * asymmetric, zeros of the same shape (u8). */
static llmk_status weight_plan(const char *fn, const llmk_int4_desc *desc, int64_t K, const llmk_tensor *codes,
                               const llmk_tensor *scales, const llmk_tensor *zeros, llmk_int4_plan *p) {
  llmk_int4_desc d;
  llmk_status s = read_desc(fn, desc, &d);
  if (s) return s;
  memset(p, 0, sizeof *p);
  if (!codes || !scales) return llmk_set_error(INV, fn, "%s is NULL", !codes ? "codes" : "scales");
  if (codes->ndim != 2) return llmk_set_error(INV, fn, "codes must have 2 dims [N, K/2], got %d", (int)codes->ndim);
  if ((s = llmk_tensor_as_rows(codes, fn, "codes", &p->codes))) return s;
  if (p->codes.dtype != LLMK_U8)
    return llmk_set_error(INV, fn, "codes: expected dtype u8, got %s", llmk_dtype_name(p->codes.dtype));
  p->N = p->codes.rows, p->K = K, p->group = d.group, p->asymmetric = d.asymmetric;
  if (K % d.group)
    return llmk_set_error(INV, fn, "K = %lld is not a multiple of the group size %d", (long long)K, d.group);
  if (p->codes.cols != K / 2)
    return llmk_set_error(INV, fn, "codes: expected [N, K/2] = [N, %lld], got [%lld, %lld]", (long long)(K / 2),
                          (long long)p->codes.rows, (long long)p->codes.cols);
  p->ngroups = K / d.group;
  const int64_t dims[2] = {p->N, p->ngroups};
  if ((s = llmk_tensor_expect(scales, fn, "scales", LLMK_BF16, 2, dims))) return s;
  p->scales = (uint16_t *)scales->data;
  if (d.asymmetric) {
    if (!zeros) return llmk_set_error(INV, fn, "zeros is NULL (desc->asymmetric = 1 needs a zero point per group)");
    if ((s = llmk_tensor_expect(zeros, fn, "zeros", LLMK_U8, 2, dims))) return s;
    p->zeros = (uint8_t *)zeros->data;
  } else if (zeros) {
    return llmk_set_error(INV, fn, "zeros must be NULL for a symmetric weight (desc->asymmetric = 0)");
  }
  return LLMK_SUCCESS;
}

/* The weight-side tensors of the quantizer and the dequantizer: w rows
 * (quantize reads bf16 w) or y rows (dequantize writes bf16 or f32 y),
 * then the weight's tensors for w's K and N. */
static llmk_status int4_plan(llmk_handle h, const char *fn, const llmk_int4_desc *desc, const llmk_tensor *w,
                             int w_written, const llmk_tensor *codes, const llmk_tensor *scales,
                             const llmk_tensor *zeros, llmk_int4_plan *p) {
  const char *wname = w_written ? "y" : "w";
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  if (!w) return llmk_set_error(INV, fn, "%s is NULL", wname);
  if (w->ndim != 2) return llmk_set_error(INV, fn, "%s must have 2 dims [N, K], got %d", wname, (int)w->ndim);
  llmk_mat mw;
  if ((s = llmk_tensor_as_rows(w, fn, wname, &mw))) return s;
  if (mw.dtype != LLMK_BF16 && !(w_written && mw.dtype == LLMK_F32))
    return llmk_set_error(INV, fn, "%s: expected dtype bf16%s, got %s", wname, w_written ? " or f32" : "",
                          llmk_dtype_name(mw.dtype));
  if ((s = weight_plan(fn, desc, mw.cols, codes, scales, zeros, p))) return s;
  if (p->N != mw.rows)
    return llmk_set_error(INV, fn, "codes: %lld rows, %s has %lld", (long long)p->N, wname, (long long)mw.rows);
  p->w = mw;
  llmk_range r[4];
  r[0] = llmk_range_of_mat(&p->w, wname, w_written);
  r[1] = llmk_range_of_mat(&p->codes, "codes", !w_written);
  r[2] = llmk_range_of_bytes(p->scales, (size_t)(p->N * p->ngroups) * 2, "scales", !w_written);
  r[3] = llmk_range_of_bytes(p->zeros, (size_t)(p->N * p->ngroups), "zeros", !w_written);
  if ((s = llmk_attn_check_overlaps(fn, r, 4))) return s;
  const void *ptrs[] = {p->w.data, p->codes.data, p->scales, p->zeros};
  const char *names[] = {w_written ? "y.data" : "w.data", "codes.data", "scales.data", "zeros.data"};
  return llmk_check_backend_ptrs(h, fn, ptrs, names, 4);
}

llmk_status llmk_int4_quantize(llmk_handle h, const llmk_int4_desc *desc, const llmk_tensor *w,
                               const llmk_tensor *codes, const llmk_tensor *scales, const llmk_tensor *zeros,
                               void *stream) {
  static const char fn[] = "llmk_int4_quantize";
  llmk_int4_plan p;
  llmk_status s = int4_plan(h, fn, desc, w, 0, codes, scales, zeros, &p);
  if (s || p.N == 0 || p.K == 0) return s;
  if (h->backend == LLMK_BACKEND_CPU) return llmk_cpu_int4_quantize(&p);
  return llmk_cuda_int4_quantize(h, &p, stream);
}

llmk_status llmk_int4_dequantize(llmk_handle h, const llmk_int4_desc *desc, const llmk_tensor *codes,
                                 const llmk_tensor *scales, const llmk_tensor *zeros, const llmk_tensor *y,
                                 void *stream) {
  static const char fn[] = "llmk_int4_dequantize";
  llmk_int4_plan p;
  llmk_status s = int4_plan(h, fn, desc, y, 1, codes, scales, zeros, &p);
  if (s || p.N == 0 || p.K == 0) return s;
  if (h->backend == LLMK_BACKEND_CPU) return llmk_cpu_int4_dequantize(&p);
  return llmk_cuda_int4_dequantize(h, &p, stream);
}

/* ---- llmk_gemm_w4a16 ------------------------------------------------------ */

/* CUDA handles: llmk.h's alignment rules of llmk_gemm_w4a16. */
static llmk_status w4a16_cuda_layout(const char *fn, const llmk_w4a16_plan *p) {
  const char *why = NULL;
  if (p->M > 0 && (uintptr_t)p->x.data % 16) why = "x.data is not 16-byte aligned";
  else if (p->M > 1 && p->x.ld % 8) why = "x: the row stride is not a multiple of 8 elements";
  else if (p->w.N > 0 && (uintptr_t)p->w.codes.data % 16) why = "codes.data is not 16-byte aligned";
  else if (p->w.N > 1 && p->w.codes.ld % 16) why = "codes: the row stride is not a multiple of 16 bytes";
  else if (p->M > 0 && p->w.N > 0 && (uintptr_t)p->y.data % 16) why = "y.data is not 16-byte aligned";
  return why ? llmk_set_error(INV, fn, "%s (required for CUDA handles)", why) : LLMK_SUCCESS;
}

llmk_status llmk_gemm_w4a16(llmk_handle h, const llmk_int4_desc *desc, const llmk_tensor *x, const llmk_tensor *codes,
                            const llmk_tensor *scales, const llmk_tensor *zeros, const llmk_tensor *bias,
                            const llmk_tensor *y, void *stream) {
  static const char fn[] = "llmk_gemm_w4a16";
  llmk_status s = llmk_check_handle(h, fn);
  if (s) return s;
  llmk_w4a16_plan p;
  memset(&p, 0, sizeof p);
  if ((s = llmk_tensor_as_rows(x, fn, "x", &p.x))) return s;
  if (p.x.dtype != LLMK_BF16)
    return llmk_set_error(INV, fn, "x: expected dtype bf16, got %s", llmk_dtype_name(p.x.dtype));
  if ((s = weight_plan(fn, desc, p.x.cols, codes, scales, zeros, &p.w))) return s;
  if (p.w.K == 0) return llmk_set_error(INV, fn, "K = 0 (x's last dim): the weight has no groups");
  if ((s = llmk_gemm_check_bias_y(fn, x, p.w.N, bias, y, &p.y))) return s;
  p.M = p.x.rows;
  p.bias = bias ? bias->data : NULL;
  p.bias_dtype = bias ? bias->dtype : LLMK_F32;
  const int64_t N = p.w.N, ng = p.w.ngroups;
  llmk_range r[6];
  r[0] = llmk_range_of_mat(&p.y, "y", 1);
  r[1] = llmk_range_of_mat(&p.x, "x", 0);
  r[2] = llmk_range_of_mat(&p.w.codes, "codes", 0);
  r[3] = llmk_range_of_bytes(p.w.scales, (size_t)(N * ng) * 2, "scales", 0);
  r[4] = llmk_range_of_bytes(p.w.zeros, (size_t)(N * ng), "zeros", 0);
  r[5] = llmk_range_of_bytes(p.bias, (size_t)N * (p.bias_dtype == LLMK_BF16 ? 2 : 4), "bias", 0);
  if ((s = llmk_attn_check_overlaps(fn, r, 6))) return s;
  const void *ptrs[] = {p.x.data, p.w.codes.data, p.w.scales, p.w.zeros, p.bias, p.y.data};
  const char *names[] = {"x.data", "codes.data", "scales.data", "zeros.data", "bias.data", "y.data"};
  if ((s = llmk_check_backend_ptrs(h, fn, ptrs, names, 6))) return s;
  if (h->backend == LLMK_BACKEND_CUDA && (s = w4a16_cuda_layout(fn, &p))) return s;
  if (p.M == 0 || N == 0) return LLMK_SUCCESS;
  if (h->backend == LLMK_BACKEND_CPU) return llmk_cpu_gemm_w4a16(&p);
  return llmk_cuda_gemm_w4a16(h, &p, stream);
}

/* ---- checkpoint import (host memory) ------------------------------------ */

static int nibble(int32_t word, int j) { return (int)(((uint32_t)word >> (4 * j)) & 15u); }

/* AWQ's word holds column o_j in nibble j, o = {0, 2, 4, 6, 1, 3, 5, 7}:
 * column c % 8 sits in nibble AWQ_NIBBLE[c % 8] */
static const int AWQ_NIBBLE[8] = {0, 4, 1, 5, 2, 6, 3, 7};

/* The code of element (n, k) and the zero point of (n, g) in a packing. */
static int packed_code(const llmk_int4_import_desc *im, const int32_t *qw, int64_t N, int64_t K, int64_t n,
                       int64_t k) {
  switch (im->packing) {
  case LLMK_INT4_GPTQ: return nibble(qw[(k / 8) * N + n], (int)(k % 8));
  case LLMK_INT4_AWQ: return nibble(qw[k * (N / 8) + n / 8], AWQ_NIBBLE[n % 8]);
  default: return nibble(qw[n * (K / 8) + k / 8], (int)(k % 8));
  }
}

static int packed_zero(const llmk_int4_import_desc *im, const int32_t *qz, int64_t N, int64_t n, int64_t g) {
  if (!qz) return 8;
  const int j = im->packing == LLMK_INT4_AWQ ? AWQ_NIBBLE[n % 8] : (int)(n % 8);
  const int z = nibble(qz[g * (N / 8) + n / 8], j);
  return im->zero_plus_one ? (z + 1) & 15 : z;
}

llmk_status llmk_int4_import(const llmk_int4_desc *desc, const llmk_int4_import_desc *import, int64_t N, int64_t K,
                             const int32_t *qweight, const int32_t *qzeros, const void *scales, uint8_t *codes_out,
                             uint16_t *scales_out, uint8_t *zeros_out) {
  static const char fn[] = "llmk_int4_import";
  llmk_int4_desc d;
  llmk_int4_import_desc im;
  llmk_status s = read_desc(fn, desc, &d);
  if (s || (s = LLMK_READ_SIZED(import, &im, LLMK_INT4_IMPORT_DESC_SIZE, LLMK_INT4_IMPORT_DESC_SIZE, fn, "import",
                                LLMK_INT4_IMPORT_DESC_INIT)))
    return s;
  if (im.packing < LLMK_INT4_GPTQ || im.packing > LLMK_INT4_ROWS)
    return llmk_set_error(INV, fn, "import->packing has invalid value %d", (int)im.packing);
  if (im.zero_plus_one != 0 && im.zero_plus_one != 1)
    return llmk_set_error(INV, fn, "import->zero_plus_one must be 0 or 1, got %d", im.zero_plus_one);
  if (im.scale_dtype != LLMK_F16 && im.scale_dtype != LLMK_BF16)
    return llmk_set_error(INV, fn, "import->scale_dtype must be f16 or bf16, got %s", llmk_dtype_name(im.scale_dtype));
  if (N < 8 || N % 8 || K < d.group || K % d.group || N > ((int64_t)1 << 31) || K > ((int64_t)1 << 31))
    return llmk_set_error(INV, fn, "N = %lld, K = %lld: N must be a positive multiple of 8 and K of the group size %d",
                          (long long)N, (long long)K, d.group);
  if (!qweight || !scales || !codes_out || !scales_out)
    return llmk_set_error(INV, fn, "%s is NULL", !qweight ? "qweight" : !scales ? "scales" : !codes_out ? "codes_out"
                                                                                                   : "scales_out");
  if (d.asymmetric && !zeros_out) return llmk_set_error(INV, fn, "zeros_out is NULL (an asymmetric import writes them)");
  if (!d.asymmetric && zeros_out) return llmk_set_error(INV, fn, "zeros_out must be NULL for a symmetric import");
  if (d.asymmetric && !qzeros) return llmk_set_error(INV, fn, "qzeros is NULL (an asymmetric import reads them)");
  const int64_t ng = K / d.group;
  /* every check on the data first: nothing is written on an error */
  for (int64_t g = 0; g < ng; g++)
    for (int64_t n = 0; n < N; n++) {
      const uint16_t sb = ((const uint16_t *)scales)[g * N + n];
      const float sf = im.scale_dtype == LLMK_F16 ? llmk_f16_to_f32(sb) : llmk_bf16_to_f32(sb);
      if (!isfinite(sf)) return llmk_set_error(INV, fn, "scale (%lld, group %lld) is not finite", (long long)n, (long long)g);
      const int z = packed_zero(&im, qzeros, N, n, g);
      if (!d.asymmetric && z != 8)
        return llmk_set_error(INV, fn, "zero point %d at (%lld, group %lld) in a symmetric import (every one must be 8)",
                              z, (long long)n, (long long)g);
    }
  for (int64_t n = 0; n < N; n++) {
    for (int64_t k = 0; k < K; k += 2)
      codes_out[n * (K / 2) + k / 2] = (uint8_t)(packed_code(&im, qweight, N, K, n, k) |
                                                 packed_code(&im, qweight, N, K, n, k + 1) << 4);
    for (int64_t g = 0; g < ng; g++) {
      const uint16_t sb = ((const uint16_t *)scales)[g * N + n];
      scales_out[n * ng + g] = im.scale_dtype == LLMK_F16 ? llmk_bf16_from_f32(llmk_f16_to_f32(sb)) : sb;
      if (zeros_out) zeros_out[n * ng + g] = (uint8_t)packed_zero(&im, qzeros, N, n, g);
    }
  }
  return LLMK_SUCCESS;
}
