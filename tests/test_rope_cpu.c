/*
 * llmk_rope on the CPU backend (the reference the CUDA kernels are tested
 * against): against an independent fp64 formula (both styles, partial
 * rotary, Llama 3.1 scaling, f32 and bf16, positions up to 2^20: relative
 * error per vector < 1e-5 for f32), bitwise against llmk.h's text taken
 * literally, pass-through dims bit for bit, in place, row pitches, extreme
 * positions. The KV-cache writes: test_kvcache_cpu.c; decode attention:
 * test_attention_cpu.c; bad inputs: test_attention_errors.c.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_util.h"
#include "harness.h"
#include "llmk.h"

static llmk_handle H;

/* ------------------------------------------------------------------------ */
/* RoPE                                                                      */
/* ------------------------------------------------------------------------ */

/* Independent frequency: exp/log instead of pow, and the Llama 3.1 rule as
 * Hugging Face writes it (wavelengths, then the medium band smoothed). */
static double indep_freq(const llmk_rope_desc *d, int64_t R, int64_t i) {
  double f = exp(-((double)(2 * i) / (double)R) * log(d->theta));
  if (d->llama3_factor > 0) {
    const double lw = d->original_max_position / d->low_freq_factor;
    const double hw = d->original_max_position / d->high_freq_factor;
    const double wavelen = 2.0 * 3.14159265358979323846 / f;
    const double base = f;
    if (wavelen > lw) f = base / d->llama3_factor;
    if (!(wavelen < hw) && !(wavelen > lw)) {
      const double sm = (d->original_max_position / wavelen - d->low_freq_factor) /
                        (d->high_freq_factor - d->low_freq_factor);
      f = (1.0 - sm) * base / d->llama3_factor + sm * base;
    }
  }
  return f;
}

/* llmk.h's llmk_rope_desc text, literally: f_i in fp64 with pow, the angle
 * and its cos/sin in fp64 rounded to fp32, products rounded in fp32. */
static double spec_freq(const llmk_rope_desc *d, int64_t R, int64_t i) {
  double f = pow(d->theta, -(double)(2 * i) / (double)R);
  if (d->llama3_factor > 0) {
    const double L = d->original_max_position, wl = 2 * 3.14159265358979323846 / f;
    const double lo = L / d->low_freq_factor, hi = L / d->high_freq_factor;
    if (wl < hi) {
    } else if (wl > lo) {
      f = f / d->llama3_factor;
    } else {
      const double s = (L / wl - d->low_freq_factor) / (d->high_freq_factor - d->low_freq_factor);
      f = (1 - s) * f / d->llama3_factor + s * f;
    }
  }
  return f;
}
static void spec_rotate(const llmk_rope_desc *d, int64_t D, int64_t pos, float *v) {
  const int64_t R = d->rotary_dim ? d->rotary_dim : D, n = R / 2;
  for (int64_t i = 0; i < n; i++) {
    const double ang = (double)pos * spec_freq(d, R, i);
    const float c = (float)cos(ang), s = (float)sin(ang);
    const int64_t a = d->style == LLMK_ROPE_NEOX ? i : 2 * i, b = d->style == LLMK_ROPE_NEOX ? i + n : 2 * i + 1;
    const float xa = v[a], xb = v[b];
    const float p1 = xa * c, p2 = xb * s, p3 = xa * s, p4 = xb * c;
    v[a] = p1 - p2;
    v[b] = p3 + p4;
  }
}

static void test_rope_case(llmk_rope_style st, int64_t D, int64_t R, int llama3, llmk_dtype dt,
                           int in_place, double theta) {
  const int64_t T = 7, Hh = 3, ld = Hh * D + (in_place ? 0 : 5), es = (int64_t)llmk_dtype_size(dt);
  const int64_t n = T * ld;
  char name[160];
  snprintf(name, sizeof name, "[rope %s D=%lld R=%lld%s %s%s theta=%g]",
           st == LLMK_ROPE_NEOX ? "neox" : "interleaved", (long long)D, (long long)R,
           llama3 ? " llama3" : "", llmk_dtype_name(dt), in_place ? " in-place" : "", theta);
  llmk_rope_desc d = rope_desc(st, R, theta, llama3);
  float *xv = amalloc((size_t)n * 4); /* the values as stored */
  void *x = amalloc((size_t)n * (size_t)es), *y = in_place ? x : amalloc((size_t)n * (size_t)es);
  int32_t pos[7];
  const int32_t fixed[4] = {0, 1, 1 << 20, 12345};
  for (int64_t t = 0; t < T; t++) pos[t] = t < 4 ? fixed[t] : (int32_t)irand((1 << 20) + 1);
  for (int64_t i = 0; i < n; i++) {
    float v = t_rand_normal();
    if (dt == LLMK_BF16) {
      ((uint16_t *)x)[i] = bf(v);
      xv[i] = fb(bf(v));
    } else {
      ((float *)x)[i] = v;
      xv[i] = v;
    }
  }
  if (!in_place) memset(y, 0xA5, (size_t)n * (size_t)es);
  llmk_tensor tx = heads_t(x, dt, T, Hh, D, ld), ty = heads_t(y, dt, T, Hh, D, ld);
  llmk_tensor tp = llmk_tensor_1d(pos, LLMK_I32, T);
  llmk_status s = llmk_rope(H, &d, &tx, &tp, &ty, NULL);
  CHECK(s == LLMK_SUCCESS, "%s: %s", name, llmk_last_error());
  const int64_t Rr = R ? R : D;
  double worst = 0;
  int64_t bad_bits = 0, bad_pass = 0, bad_pad = 0;
  for (int64_t t = 0; t < T; t++)
    for (int64_t h = 0; h < Hh; h++) {
      const int64_t off = t * ld + h * D;
      float lit[256];
      memcpy(lit, xv + off, (size_t)D * 4);
      spec_rotate(&d, D, pos[t], lit);
      double num = 0, den = 0;
      for (int64_t i = 0; i < D; i++) {
        const float got = dt == LLMK_BF16 ? fb(((uint16_t *)y)[off + i]) : ((float *)y)[off + i];
        const float want = dt == LLMK_BF16 ? fb(bf(lit[i])) : lit[i];
        if (fbits(got) != fbits(want)) bad_bits++;
        if (i >= Rr && fbits(got) != fbits(xv[off + i])) bad_pass++;
        /* independent: fp64 rotation of the pairs */
        double ref = xv[off + i];
        const int64_t np = Rr / 2;
        if (i < Rr) {
          const int neox = st == LLMK_ROPE_NEOX;
          const int64_t pi = neox ? i % np : i / 2;
          const int first = neox ? i < np : i % 2 == 0;
          const int64_t ia = neox ? pi : 2 * pi, ib = neox ? pi + np : 2 * pi + 1;
          const double ang = (double)pos[t] * indep_freq(&d, Rr, pi);
          const double xa = xv[off + ia], xb = xv[off + ib];
          ref = first ? xa * cos(ang) - xb * sin(ang) : xa * sin(ang) + xb * cos(ang);
        }
        num += (got - ref) * (got - ref);
        den += ref * ref;
      }
      const double rel = sqrt(num / (den > 0 ? den : 1));
      if (rel > worst) worst = rel;
    }
  if (!in_place) /* the row padding stays as it was */
    for (int64_t t = 0; t < T; t++)
      for (int64_t b = (Hh * D) * es; b < ld * es; b++)
        if (((uint8_t *)y)[t * ld * es + b] != 0xA5) bad_pad++;
  const double tol = dt == LLMK_F32 ? 1e-5 : 4e-3;
  CHECK(worst < tol, "%s: relative error %.3g vs the fp64 formula (tolerance %.1g)", name, worst, tol);
  CHECK(bad_bits == 0, "%s: %lld elements differ from llmk.h's formula taken literally", name,
        (long long)bad_bits);
  CHECK(bad_pass == 0, "%s: %lld pass-through elements changed", name, (long long)bad_pass);
  CHECK(bad_pad == 0, "%s: %lld padding bytes written", name, (long long)bad_pad);
  free(xv);
  free(x);
  if (!in_place) free(y);
}

/* Extreme positions, taken bit for bit from the literal formula. */
static void test_rope_extreme_positions(void) {
  const int64_t D = 128;
  int32_t pos[6] = {INT32_MAX, INT32_MIN, -1, -77777, 1 << 30, 3};
  float x[6 * 128], y[6 * 128];
  for (int i = 0; i < 6 * 128; i++) x[i] = t_rand_normal();
  llmk_rope_desc d = rope_desc(LLMK_ROPE_NEOX, 0, 500000.0, 1);
  llmk_tensor tx = heads_t(x, LLMK_F32, 6, 1, D, D), ty = heads_t(y, LLMK_F32, 6, 1, D, D);
  llmk_tensor tp = llmk_tensor_1d(pos, LLMK_I32, 6);
  CHECK(llmk_rope(H, &d, &tx, &tp, &ty, NULL) == LLMK_SUCCESS, "rope extreme positions: %s",
        llmk_last_error());
  int64_t bad = 0;
  for (int t = 0; t < 6; t++) {
    float v[128];
    memcpy(v, x + t * D, sizeof v);
    spec_rotate(&d, D, pos[t], v);
    for (int i = 0; i < D; i++) bad += fbits(v[i]) != fbits(y[t * D + i]);
  }
  CHECK(bad == 0, "rope extreme positions (+-2^31): %lld elements differ from the literal formula",
        (long long)bad);
}

static void test_rope(void) {
  const int64_t Ds[3] = {64, 128, 256};
  for (int st = 0; st < 2; st++)
    for (int di = 0; di < 3; di++) {
      const int64_t D = Ds[di];
      test_rope_case((llmk_rope_style)st, D, 0, 0, LLMK_F32, 0, 10000.0);
      test_rope_case((llmk_rope_style)st, D, 0, 1, LLMK_F32, 0, 500000.0);
      test_rope_case((llmk_rope_style)st, D, D / 2, 0, LLMK_F32, 0, 10000.0);
      test_rope_case((llmk_rope_style)st, D, 2, 1, LLMK_F32, 1, 500000.0);
      test_rope_case((llmk_rope_style)st, D, D - 2, 1, LLMK_BF16, 0, 1000000.0);
      test_rope_case((llmk_rope_style)st, D, 0, 0, LLMK_BF16, 1, 10000.0);
      test_rope_case((llmk_rope_style)st, D, 32, 1, LLMK_F32, 1, 500000.0);
    }
  test_rope_extreme_positions();
  /* in place equals out of place, bit for bit */
  {
    const int64_t T = 5, Hh = 2, D = 64, n = T * Hh * D;
    uint16_t a[5 * 2 * 64], b[5 * 2 * 64];
    int32_t pos[5] = {0, 9, 100000, 7, 1 << 19};
    for (int64_t i = 0; i < n; i++) a[i] = bf(t_rand_normal() * 3);
    llmk_rope_desc d = rope_desc(LLMK_ROPE_INTERLEAVED, 48, 500000.0, 1);
    llmk_tensor ta = heads_t(a, LLMK_BF16, T, Hh, D, Hh * D), tb = heads_t(b, LLMK_BF16, T, Hh, D, Hh * D);
    llmk_tensor tp = llmk_tensor_1d(pos, LLMK_I32, T);
    llmk_status s1 = llmk_rope(H, &d, &ta, &tp, &tb, NULL);
    llmk_status s2 = llmk_rope(H, &d, &ta, &tp, &ta, NULL);
    CHECK(s1 == LLMK_SUCCESS && s2 == LLMK_SUCCESS && memcmp(a, b, sizeof a) == 0,
          "rope in place differs from out of place (%s)", llmk_last_error());
  }
}


int main(void) {
  t_seed();
  if (llmk_create_cpu(&H) != LLMK_SUCCESS) {
    fprintf(stderr, "llmk_create_cpu: %s\n", llmk_last_error());
    return 2;
  }
  const t_part parts[] = {{"rope", test_rope}};
  t_run_parts(parts, sizeof parts / sizeof parts[0]);
  llmk_destroy(H);
  TEST_END();
}
