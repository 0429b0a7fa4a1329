/* llmk_cuda_quantize / llmk_cuda_dequantize: choose the kernel family and
 * launch configuration for a validated call (src/core/quantize_api.c). */
#include "cuda/common.cuh"
#include "cuda/launch.h"

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* The team configuration, capped at 512 threads for the grid-stride kernels. */
static llmk_team_cfg capped_cfg(int64_t nvec, int64_t units, int sms) {
  llmk_team_cfg c = llmk_team_config(nvec, units, sms);
  if (c.tpr > 512) c.tpr = 512;
  if (c.block > 512) c.block = 512;
  return c;
}

static int persistent_grid(int64_t units, llmk_team_cfg c, int sms) {
  const int64_t need = cdiv(units, c.block / c.tpr);
  const int64_t full = (int64_t)sms * (2048 / c.block);
  return (int)(need < full ? (need > 0 ? need : 1) : full);
}

extern "C" llmk_status llmk_cuda_quantize(llmk_handle h, const llmk_qplan *p, const llmk_mat *x,
                                          const llmk_mat *q, float *scale, void *stream) {
  static const char fn[] = "llmk_quantize_fp8";
  const cudaStream_t st = (cudaStream_t)stream;
  const int64_t es = (int64_t)llmk_dtype_size(x->dtype), V = 16 / es;
  /* Segments of a row start at multiples of gk: vector access needs those
   * offsets aligned too, unless a row holds a single segment. */
  const bool one_seg = p->gk >= p->K;
  const bool rows_ld = p->M <= 1 || (x->ld * es) % 16 == 0;
  const bool rows_st = p->M <= 1 || q->ld % V == 0;
  llmk_qargs a = {};
  a.x = x->data;
  a.ldx = x->ld;
  a.q = (uint8_t *)q->data;
  a.ldq = q->ld;
  a.scale = scale;
  a.M = p->M;
  a.K = p->K;
  a.gm = p->gm;
  a.gk = p->gk;
  a.ngc = p->ngc;
  a.ub = p->scale_ub;
  a.num_rows = p->num_rows;
  a.vec_ld = llmk_aligned(x->data, 16) && rows_ld && (one_seg || (p->gk * es) % 16 == 0);
  a.vec_st = llmk_aligned(q->data, (size_t)V) && rows_st && (one_seg || p->gk % V == 0);
  a.vec_st2 = llmk_aligned(q->data, (size_t)(2 * V)) && (p->M <= 1 || q->ld % (2 * V) == 0) &&
              (one_seg || p->gk % (2 * V) == 0);

  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, fn);
  if (s) return s;
  if (p->K == 0 || p->M == 0) {
    s = llmk_launch_empty_scales(scale, p->ngr * p->ngc, p->is_e5m2, p->scale_ub, st);
    return llmk_scope_leave(h, &sc, s, fn);
  }
  const int64_t nvec_row = cdiv(p->K, V);
  switch (p->scaling) {
    case LLMK_SCALING_ROW:
      s = llmk_launch_quant_rows(x->dtype, p->is_e5m2, a, llmk_team_config(nvec_row, p->M, h->sm_count), st);
      break;
    case LLMK_SCALING_BLOCK:
      if (p->gm == 1) {
        const int64_t nvec = cdiv(p->gk < p->K ? p->gk : p->K, V);
        s = llmk_launch_quant_rows(x->dtype, false, a, llmk_team_config(nvec, p->M * p->ngc, h->sm_count), st);
      } else if (llmk_use_band_kernel(p->gm, p->gk, llmk_band_width(x->dtype))) {
        /* strips start at multiples of 32 vectors: only the base pointers and row pitches matter */
        llmk_qargs b = a;
        b.vec_ld = llmk_aligned(x->data, 16) && rows_ld;
        b.vec_st = llmk_aligned(q->data, (size_t)V) && rows_st;
        s = llmk_launch_quant_bands(x->dtype, b, st);
      } else {
        const int64_t rows = p->gm < p->M ? p->gm : p->M;
        const int64_t items = rows * cdiv(p->gk < p->K ? p->gk : p->K, V);
        s = llmk_launch_quant_tiles(x->dtype, a, llmk_tile_vpt(items), st);
      }
      break;
    case LLMK_SCALING_TENSOR: {
      /* Small contiguous tensors (decode): one CTA treats the tensor as a
       * single row, in one launch instead of memset + three kernels. */
      const int64_t n = p->M * p->K;
      const bool contiguous = p->M == 1 || (x->ld == p->K && q->ld == p->K);
      if (!p->num_rows && contiguous && n <= llmk_tensor_one_cta_max()) {
        llmk_qargs r = a;
        r.M = 1;
        r.K = r.gk = n;
        r.ldx = r.ldq = n;
        llmk_team_cfg c = llmk_team_config(cdiv(n, V), 1, h->sm_count);
        s = llmk_launch_quant_rows(x->dtype, p->is_e5m2, r, c, st);
        break;
      }
      int threads, vpt;
      if (contiguous && llmk_tensor_cluster_config(cdiv(n, V), llmk_tensor_cluster_ctas(), &threads, &vpt)) {
        llmk_qargs r = a; /* one flat run of n elements */
        r.vec_ld = llmk_aligned(x->data, 16);
        r.vec_st = llmk_aligned(q->data, (size_t)V);
        s = llmk_launch_quant_tensor_cluster(x->dtype, p->is_e5m2, r, n, threads, vpt, st);
        break;
      }
      const llmk_team_cfg c = capped_cfg(nvec_row, p->M, h->sm_count);
      s = llmk_launch_quant_tensor(x->dtype, p->is_e5m2, a, c, persistent_grid(p->M, c, h->sm_count), st);
      break;
    }
    case LLMK_SCALING_COL: {
      const int64_t strips = cdiv(p->K, 32 * V);
      int64_t chunks = cdiv(4 * (int64_t)h->sm_count, strips);
      const int64_t max_chunks = cdiv(p->M, 8);
      if (chunks > max_chunks) chunks = max_chunks;
      if (chunks > 65535) chunks = 65535;
      if (chunks < 1) chunks = 1;
      s = llmk_launch_quant_cols(x->dtype, a, (int)chunks, st);
      break;
    }
  }
  return llmk_scope_leave(h, &sc, s, fn);
}

extern "C" llmk_status llmk_cuda_dequantize(llmk_handle h, const llmk_qplan *p, const llmk_mat *q,
                                            const float *scale, const llmk_mat *y, void *stream) {
  static const char fn[] = "llmk_dequantize_fp8";
  const int64_t ys = (int64_t)llmk_dtype_size(y->dtype);
  llmk_dqargs a = {};
  a.q = (const uint8_t *)q->data;
  a.ldq = q->ld;
  a.scale = scale;
  a.y = y->data;
  a.ldy = y->ld;
  a.M = p->M;
  a.K = p->K;
  a.gm = p->gm;
  a.gk = p->gk;
  a.ngc = p->ngc;
  a.vec = llmk_aligned(q->data, 8) && llmk_aligned(y->data, 16) &&
          (p->M <= 1 || (q->ld % 8 == 0 && (y->ld * ys) % 16 == 0));
  llmk_device_scope sc;
  llmk_status s = llmk_scope_enter(h, &sc, fn);
  if (s) return s;
  const llmk_team_cfg c = capped_cfg(cdiv(p->K, 8), p->M, h->sm_count);
  s = llmk_launch_dequant(p->is_e5m2, y->dtype, a, c, persistent_grid(p->M, c, h->sm_count),
                          (cudaStream_t)stream);
  return llmk_scope_leave(h, &sc, s, fn);
}
