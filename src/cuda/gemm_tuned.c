/* The dispatcher's memory of untabulated shapes (gemm_tuned.h): online
 * tuning's winners (llmk_set_gemm_tuning), also kept in the file
 * LLMK_GEMM_TUNE_FILE names, and the cost model's choices.
 *
 * The file is text: a first line "llmk-gemm-tune 1 <identity>" (the GPU's
 * name, the driver version and llmk's version: a file of another identity
 * is ignored and started afresh), then one winner per line:
 *   <kind> <M> <N> <K> <own|cublaslt> <configuration name|-> <splits> <us>
 * (kind as the cost model numbers them: gemm_model.h). */
#include "cuda/gemm_tuned.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/env.h"
#include "cuda/gemm_own.h"

#ifdef LLMK_WITH_CUDA
typedef struct entry {
  int valid, tuned, device, kind;
  int64_t M, N, K;
  llmk_gemm_pick pick;
} entry;

#define CAP 4096 /* winners kept; beyond that a new one replaces whichever shares its slot */
static entry k_store[CAP];
static int k_loaded[64]; /* per device ordinal: the file was read */
static pthread_mutex_t k_lock = PTHREAD_MUTEX_INITIALIZER;

static int same(const entry *e, int device, int kind, int64_t M, int64_t N, int64_t K) {
  return e->valid && e->device == device && e->kind == kind && e->M == M && e->N == N && e->K == K;
}

/* The shape's slot within a short probe from its hash: its own, else the
 * first free one, else the first model choice (a winner is displaced only
 * when all eight hold winners). */
static entry *slot(int device, int kind, int64_t M, int64_t N, int64_t K) {
  const uint64_t h = ((uint64_t)M * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)N * 0xC2B2AE3D27D4EB4Full) ^
                     ((uint64_t)K * 0x165667B19E3779F9ull) ^ (uint64_t)(kind * 131 + device * 7);
  const size_t first = (size_t)(h >> 17) % CAP;
  entry *spare = NULL;
  for (size_t i = 0; i < 8; i++) {
    entry *e = &k_store[(first + i) % CAP];
    if (same(e, device, kind, M, N, K)) return e;
    if (!e->valid) return e;
    if (!spare || (spare->tuned && !e->tuned)) spare = e;
  }
  return spare;
}

static void put_locked(int device, int kind, int64_t M, int64_t N, int64_t K, const llmk_gemm_pick *p, int tuned) {
  entry *e = slot(device, kind, M, N, K);
  if (!tuned && e->tuned) return; /* a model choice never replaces or displaces a winner */
  *e = (entry){1, tuned, device, kind, M, N, K, *p};
}

int llmk_gemm_memo_find(int device, int kind, int64_t M, int64_t N, int64_t K, llmk_gemm_pick *pick, int *tuned) {
  if (device < 0) return 0;
  pthread_mutex_lock(&k_lock);
  const entry *e = slot(device, kind, M, N, K);
  const int hit = same(e, device, kind, M, N, K);
  if (hit) *pick = e->pick, *tuned = e->tuned;
  pthread_mutex_unlock(&k_lock);
  return hit;
}

void llmk_gemm_memo_model(int device, int kind, int64_t M, int64_t N, int64_t K, const llmk_gemm_pick *pick) {
  if (device < 0) return;
  pthread_mutex_lock(&k_lock);
  put_locked(device, kind, M, N, K, pick, 0);
  pthread_mutex_unlock(&k_lock);
}

static int cfg_named(const char *name) {
  for (int i = 0; i < LLMK_GEMM_NUM_CFGS; i++)
    if (!strcmp(llmk_gemm_cfgs[i].name, name)) return i;
  return -1;
}

void llmk_gemm_tuned_load(int device, const char *identity) {
  const char *path = llmk_env_get()->gemm_tune_file;
  if (device < 0 || device >= 64) return;
  pthread_mutex_lock(&k_lock);
  if (k_loaded[device] || !*path) {
    pthread_mutex_unlock(&k_lock);
    return;
  }
  k_loaded[device] = 1;
  FILE *f = fopen(path, "r");
  char line[512], want[400];
  snprintf(want, sizeof want, "llmk-gemm-tune 1 %s\n", identity);
  if (f && fgets(line, sizeof line, f) && !strcmp(line, want)) {
    while (fgets(line, sizeof line, f)) {
      int kind, splits;
      long long M, N, K;
      char backend[16], name[96];
      double us;
      if (sscanf(line, "%d %lld %lld %lld %15s %95s %d %lf", &kind, &M, &N, &K, backend, name, &splits, &us) != 8)
        continue;
      const int own = !strcmp(backend, "own"), cfg = own ? cfg_named(name) : -1;
      if (kind < 0 || kind > 4 || M < 1 || N < 1 || K < 1 || (own && cfg < 0) || splits < 1 ||
          splits > LLMK_GEMM_MAX_SPLITS)
        continue; /* a line of another configuration list: tuned again when met */
      const llmk_gemm_pick p = {own, cfg, splits};
      put_locked(device, kind, M, N, K, &p, 1);
    }
    fclose(f);
  } else {
    if (f) fclose(f);
    if ((f = fopen(path, "w"))) fputs(want, f), fclose(f); /* absent, or another identity: start afresh */
  }
  pthread_mutex_unlock(&k_lock);
}

void llmk_gemm_tuned_put(int device, int kind, int64_t M, int64_t N, int64_t K, const llmk_gemm_pick *pick,
                         double us) {
  if (device < 0) return;
  const char *path = llmk_env_get()->gemm_tune_file;
  pthread_mutex_lock(&k_lock);
  put_locked(device, kind, M, N, K, pick, 1);
  FILE *f = *path ? fopen(path, "a") : NULL;
  if (f) {
    fprintf(f, "%d %lld %lld %lld %s %s %d %.3f\n", kind, (long long)M, (long long)N, (long long)K,
            pick->use_own ? "own" : "cublaslt", pick->use_own ? llmk_gemm_cfgs[pick->cfg].name : "-", pick->splits, us);
    fclose(f);
  }
  pthread_mutex_unlock(&k_lock);
}

void llmk_gemm_tuned_forget(void) {
  pthread_mutex_lock(&k_lock);
  memset(k_store, 0, sizeof k_store);
  memset(k_loaded, 0, sizeof k_loaded);
  pthread_mutex_unlock(&k_lock);
}
#endif
