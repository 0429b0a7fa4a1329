/* The ABI promises of include/llmk.h ("Sized structs", versioning), on the
 * CPU backend (and the GEMM on a Hopper GPU where there is one):
 *  - a caller built against an older, smaller descriptor (here: llmk_gemm_desc
 *    before x_planes, llmk_rmsnorm_desc before fp8_planes, with the padding
 *    after their last field poisoned) gets the defaults of the fields it
 *    lacks: bit for bit the result of today's descriptor with those fields 0;
 *  - size 0 and sizes below the first version are refused, naming the
 *    initializer; a larger size is taken when the unknown bytes are zero and
 *    refused (NOT_SUPPORTED) otherwise; nothing is written on refusal;
 *  - structs the library fills are written only as far as their size says;
 *  - llmk_version and llmk_struct_size agree with the header. */
#include <string.h>

#include "harness.h"
#include "llmk.h"

/* llmk_gemm_desc as it was before x_planes. */
typedef struct old_gemm_desc {
  size_t size;
  llmk_scaling scaling;
  llmk_accum accum;
  llmk_gemm_backend backend;
} old_gemm_desc;

/* llmk_rmsnorm_desc as it was before fp8_planes. */
typedef struct old_rmsnorm_desc {
  size_t size;
  float eps;
} old_rmsnorm_desc;

/* A descriptor from a newer llmk: today's fields, then one more. */
typedef struct newer_gemm_desc {
  llmk_gemm_desc now;
  int64_t later;
} newer_gemm_desc;

enum { M = 3, N = 16, K = 32 };

static uint8_t g_x[M * K], g_w[N * K];
static float g_xs[M], g_ws[N];

static void fill_inputs(void) {
  for (int i = 0; i < M * K; i++) g_x[i] = llmk_float_to_fp8(t_rand_normal(), LLMK_E4M3);
  for (int i = 0; i < N * K; i++) g_w[i] = llmk_float_to_fp8(t_rand_normal(), LLMK_E4M3);
  for (int i = 0; i < M; i++) g_xs[i] = 0.5f + (float)t_rand_uniform();
  for (int i = 0; i < N; i++) g_ws[i] = 0.5f + (float)t_rand_uniform();
}

/* The GEMM of the fixed inputs with desc (any struct whose first member is
 * its size) into y, on h (device copies for a CUDA handle). */
static llmk_status gemm(llmk_handle h, int on_gpu, const void *desc, uint16_t *y) {
  const void *x = g_x, *w = g_w, *xs = g_xs, *ws = g_ws;
  void *out = y;
#ifdef LLMK_WITH_CUDA
  if (on_gpu) {
    x = t_to_dev(g_x, sizeof g_x), w = t_to_dev(g_w, sizeof g_w);
    xs = t_to_dev(g_xs, sizeof g_xs), ws = t_to_dev(g_ws, sizeof g_ws);
    memset(y, 0xEE, (size_t)M * N * 2);
    out = t_to_dev(y, (size_t)M * N * 2);
  }
#else
  (void)on_gpu;
#endif
  const llmk_tensor tx = llmk_tensor_2d((void *)x, LLMK_E4M3, M, K, K);
  const llmk_tensor tw = llmk_tensor_2d((void *)w, LLMK_E4M3, N, K, K);
  const llmk_tensor txs = llmk_tensor_1d((void *)xs, LLMK_F32, M), tws = llmk_tensor_1d((void *)ws, LLMK_F32, N);
  const llmk_tensor ty = llmk_tensor_2d(out, LLMK_BF16, M, N, N);
  const llmk_status s = llmk_gemm_fp8(h, (const llmk_gemm_desc *)desc, &tx, &tw, &txs, &tws, NULL, &ty, NULL);
#ifdef LLMK_WITH_CUDA
  if (on_gpu) {
    T_CU(cudaDeviceSynchronize());
    T_CU(cudaMemcpy(y, out, (size_t)M * N * 2, cudaMemcpyDeviceToHost));
    cudaFree((void *)x), cudaFree((void *)w), cudaFree((void *)xs), cudaFree((void *)ws), cudaFree(out);
  }
#endif
  return s;
}

static int contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

static void gemm_sizes(llmk_handle h, int on_gpu, const char *where) {
  uint16_t ref[M * N], got[M * N];
  llmk_gemm_desc now = LLMK_GEMM_DESC_INIT;
  now.scaling = LLMK_SCALING_ROW;
  CHECK(gemm(h, on_gpu, &now, ref) == LLMK_SUCCESS, "%s: today's descriptor: %s", where, llmk_last_error());

  /* older: x_planes lies in what is the old struct's tail padding, poisoned */
  old_gemm_desc old;
  memset(&old, 0xFF, sizeof old);
  old.size = LLMK_SIZE_THROUGH(old_gemm_desc, backend);
  old.scaling = LLMK_SCALING_ROW, old.accum = LLMK_ACCUM_DEFAULT, old.backend = LLMK_GEMM_AUTO;
  CHECK(old.size < LLMK_GEMM_DESC_SIZE && sizeof old == sizeof now, "the old struct's padding covers x_planes");
  memset(got, 0xAB, sizeof got);
  CHECK(gemm(h, on_gpu, &old, got) == LLMK_SUCCESS, "%s: older descriptor refused: %s", where, llmk_last_error());
  CHECK(!memcmp(got, ref, sizeof ref), "%s: older descriptor: result differs from x_planes = 0", where);

  /* newer, its unknown field zero: taken; nonzero: refused, nothing written */
  newer_gemm_desc nw;
  memset(&nw, 0, sizeof nw);
  nw.now = now;
  nw.now.size = LLMK_SIZE_THROUGH(newer_gemm_desc, later);
  memset(got, 0xAB, sizeof got);
  CHECK(gemm(h, on_gpu, &nw, got) == LLMK_SUCCESS && !memcmp(got, ref, sizeof ref),
        "%s: newer descriptor with zero unknown fields: %s", where, llmk_last_error());
  nw.later = 1;
  memset(got, 0xAB, sizeof got);
  uint16_t untouched[M * N];
  memset(untouched, 0xAB, sizeof untouched);
  llmk_status s = gemm(h, on_gpu, &nw, got);
  CHECK(s == LLMK_ERR_NOT_SUPPORTED && contains(llmk_last_error(), "newer"), "%s: newer field set: %s, \"%s\"",
        where, llmk_status_string(s), llmk_last_error());
  CHECK(on_gpu || !memcmp(got, untouched, sizeof got), "%s: a refused call wrote y", where);

  /* size 0, and a size before the first version */
  llmk_gemm_desc bad = now;
  bad.size = 0;
  s = gemm(h, on_gpu, &bad, got);
  CHECK(s == LLMK_ERR_INVALID_ARGUMENT && contains(llmk_last_error(), "LLMK_GEMM_DESC_INIT"),
        "%s: size 0: %s, \"%s\"", where, llmk_status_string(s), llmk_last_error());
  bad.size = LLMK_SIZE_THROUGH(llmk_gemm_desc, accum);
  s = gemm(h, on_gpu, &bad, got);
  CHECK(s == LLMK_ERR_INVALID_ARGUMENT && contains(llmk_last_error(), "smaller than any version"),
        "%s: size before backend: %s, \"%s\"", where, llmk_status_string(s), llmk_last_error());
  CHECK(gemm(h, on_gpu, NULL, got) == LLMK_ERR_INVALID_ARGUMENT, "%s: NULL desc", where);
}

static void rmsnorm_sizes(llmk_handle h) {
  enum { R = 2, C = 64 };
  uint16_t x[R * C], w[C];
  for (int i = 0; i < R * C; i++) x[i] = llmk_float_to_bf16(t_rand_normal());
  for (int i = 0; i < C; i++) w[i] = llmk_float_to_bf16(1.0f + 0.1f * t_rand_normal());
  uint8_t q_ref[R * C], q[R * C];
  float s_ref[R], s[R];
  const llmk_tensor tx = llmk_tensor_2d(x, LLMK_BF16, R, C, C), tw = llmk_tensor_1d(w, LLMK_BF16, C);
  llmk_tensor ty = llmk_tensor_2d(q_ref, LLMK_E4M3, R, C, C), ts = llmk_tensor_1d(s_ref, LLMK_F32, R);
  llmk_rmsnorm_desc now = LLMK_RMSNORM_DESC_INIT;
  now.eps = 1e-5f;
  CHECK(llmk_rmsnorm(h, &now, &tx, NULL, &tw, &ty, &ts, NULL, NULL) == LLMK_SUCCESS, "%s", llmk_last_error());
  old_rmsnorm_desc old;
  memset(&old, 0xFF, sizeof old);
  old.size = LLMK_SIZE_THROUGH(old_rmsnorm_desc, eps);
  old.eps = 1e-5f;
  ty.data = q, ts.data = s;
  memset(q, 0, sizeof q);
  CHECK(llmk_rmsnorm(h, (const llmk_rmsnorm_desc *)&old, &tx, NULL, &tw, &ty, &ts, NULL, NULL) == LLMK_SUCCESS,
        "older rmsnorm descriptor: %s", llmk_last_error());
  CHECK(!memcmp(q, q_ref, sizeof q) && !memcmp(s, s_ref, sizeof s), "older rmsnorm descriptor: not one plane");
}

/* Filled structs: a newer caller's struct gets the fields this library
 * knows, and its unknown tail stays as it was. */
typedef struct newer_build_info {
  llmk_build_info now;
  int64_t later;
} newer_build_info;

static void filled_sizes(void) {
  newer_build_info b;
  memset(&b, 0x5C, sizeof b);
  b.now.size = LLMK_SIZE_THROUGH(newer_build_info, later);
  CHECK(llmk_get_build_info(&b.now) == LLMK_SUCCESS, "%s", llmk_last_error());
  CHECK(b.now.version_major == LLMK_VERSION_MAJOR && b.now.version_minor == LLMK_VERSION_MINOR &&
            b.now.version_patch == LLMK_VERSION_PATCH && b.now.cuda_archs != NULL,
        "build info version %d.%d.%d", b.now.version_major, b.now.version_minor, b.now.version_patch);
  int64_t poison;
  memset(&poison, 0x5C, sizeof poison);
  CHECK(b.later == poison, "build info written past what this llmk knows");
  CHECK(b.now.size == LLMK_SIZE_THROUGH(newer_build_info, later), "the caller's size changed to %zu", b.now.size);
  llmk_build_info z = LLMK_BUILD_INFO_INIT;
  z.size = 0;
  CHECK(llmk_get_build_info(&z) == LLMK_ERR_INVALID_ARGUMENT && contains(llmk_last_error(), "LLMK_BUILD_INFO_INIT"),
        "build info size 0: \"%s\"", llmk_last_error());
  llmk_device_info d;
  memset(&d, 0x3A, sizeof d);
  d.size = 4;
  CHECK(llmk_cuda_device_info(0, &d) == LLMK_ERR_INVALID_ARGUMENT, "device info of 4 bytes taken");
  CHECK(d.name[0] == 0x3A, "device info written on refusal");
}

static void versions(void) {
  CHECK(llmk_version() == LLMK_VERSION_CODE, "llmk_version() = %d, header %d", llmk_version(), LLMK_VERSION_CODE);
  const size_t expect[] = {sizeof(llmk_tensor),      LLMK_BUILD_INFO_SIZE,  LLMK_DEVICE_INFO_SIZE,
                           LLMK_QUANTIZE_DESC_SIZE,  LLMK_GEMM_DESC_SIZE,   LLMK_KV_CACHE_SIZE,
                           LLMK_KV_LOC_SIZE,         LLMK_ROPE_DESC_SIZE,   LLMK_ATTENTION_DESC_SIZE,
                           LLMK_RMSNORM_DESC_SIZE,   LLMK_GEMM_CONFIG_SIZE, LLMK_GEMM_ROUTE_SIZE,
                           LLMK_GEMM_OVERRIDE_SIZE,  LLMK_GROUPED_GEMM_DESC_SIZE, LLMK_MOE_ROUTE_DESC_SIZE,
                           LLMK_MOE_PERMUTE_DESC_SIZE, LLMK_INT4_DESC_SIZE, LLMK_INT4_IMPORT_DESC_SIZE};
  for (int i = 0; i < (int)(sizeof expect / sizeof expect[0]); i++)
    CHECK(llmk_struct_size((llmk_struct_id)i) == expect[i], "llmk_struct_size(%d) = %zu, header %zu", i,
          llmk_struct_size((llmk_struct_id)i), expect[i]);
  CHECK(llmk_struct_size((llmk_struct_id)1000) == 0, "unknown struct id");
  /* every initializer sets its own size */
  const llmk_quantize_desc q = LLMK_QUANTIZE_DESC_INIT;
  const llmk_rope_desc r = LLMK_ROPE_DESC_INIT;
  const llmk_attention_desc a = LLMK_ATTENTION_DESC_INIT;
  const llmk_kv_cache c = LLMK_KV_CACHE_INIT;
  const llmk_kv_loc l = LLMK_KV_LOC_INIT;
  CHECK(q.size == LLMK_QUANTIZE_DESC_SIZE && r.size == LLMK_ROPE_DESC_SIZE && a.size == LLMK_ATTENTION_DESC_SIZE &&
            c.size == LLMK_KV_CACHE_SIZE && l.size == LLMK_KV_LOC_SIZE,
        "an initializer's size");
}

int main(void) {
  t_seed();
  fill_inputs();
  llmk_handle cpu;
  if (llmk_create_cpu(&cpu) != LLMK_SUCCESS) {
    CHECK(0, "llmk_create_cpu: %s", llmk_last_error());
    TEST_END();
  }
  versions();
  filled_sizes();
  gemm_sizes(cpu, 0, "CPU");
  rmsnorm_sizes(cpu);
  llmk_destroy(cpu);
  llmk_handle gpu;
  if (t_hopper_handle("the sized GEMM descriptor on the GPU", &gpu)) {
    gemm_sizes(gpu, 1, "CUDA");
    llmk_destroy(gpu);
  }
  TEST_END();
}
