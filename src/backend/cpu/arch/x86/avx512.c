/* avx512.c - AVX-512 (F/BW/VL) variants: the float-weight matrix products
 * 16 lanes wide. The quantised products and KV helpers stay on the AVX2
 * versions (installed first), whose integer dot maps well to 256 bits.
 * Compiled with -mavx512f -mavx512bw -mavx512vl -mavx2 -mfma -mf16c;
 * installed only when the CPU reports them (x86.c). */
#include <immintrin.h>
#include <string.h>

#include "backend/cpu/arch/x86/x86.h"

#define AI static inline __attribute__((always_inline))
#define PF_AHEAD 1024 /* bytes ahead of the current weight load */

enum wt { W_F32, W_BF16, W_F16 };

AI __m512 load16(enum wt wt, const uint8_t *row, int i)
{
    switch (wt) {
    case W_F32: return _mm512_loadu_ps((const float *)(const void *)row + i);
    case W_BF16: {
        __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)row + i));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    case W_F16:
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)row + i)));
    }
    return _mm512_setzero_ps();
}

AI float load1(enum wt wt, const uint8_t *row, int i)
{
    switch (wt) {
    case W_F32: return ((const float *)(const void *)row)[i];
    case W_BF16: {
        uint32_t u = (uint32_t)((const uint16_t *)row)[i] << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    case W_F16: return _cvtsh_ss(((const uint16_t *)row)[i]);
    }
    return 0;
}

AI void ftile(const struct kern_mm *a, enum wt wt, int r, int t, int R, int T)
{
    __m512 acc[4][4];
    const uint8_t *w[4];
    const float *x[4];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
        w[i] = a->w + (size_t)(r + i) * a->w_stride;
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            acc[i][j] = _mm512_setzero_ps();
    }
#pragma GCC unroll 4
    for (int j = 0; j < T; j++)
        x[j] = (const float *)(const void *)((const uint8_t *)a->x + (size_t)(t + j) * a->x_stride);
    int k16 = a->k & ~15;
    for (int e = 0; e < k16; e += 16) {
        __m512 xv[4];
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            xv[j] = _mm512_loadu_ps(x[j] + e);
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            if (T == 1) /* decode streams rows: fetch across 4 KiB pages early */
                _mm_prefetch((const char *)w[i] + (wt == W_F32 ? 4 : 2) * (size_t)e + PF_AHEAD,
                             _MM_HINT_T0);
            __m512 wv = load16(wt, w[i], e);
#pragma GCC unroll 4
            for (int j = 0; j < T; j++)
                acc[i][j] = _mm512_fmadd_ps(wv, xv[j], acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int j = 0; j < T; j++) {
            float s = _mm512_reduce_add_ps(acc[i][j]);
            for (int e = k16; e < a->k; e++)
                s += load1(wt, w[i], e) * x[j][e];
            a->y[(size_t)(t + j) * a->y_stride + (size_t)(r + i)] = s;
        }
}

AI void fmm(const struct kern_mm *a, enum wt wt, int r0, int r1)
{
    int r = r0;
    if (a->n == 1)
        for (; r + 4 <= r1; r += 4)
            ftile(a, wt, r, 0, 4, 1);
    /* prefill: 4 rows x 4 tokens per tile, so each activation load
     * serves 4 weight rows (fewer loads per FMA) */
    if (a->n >= 4)
        for (; r + 4 <= r1; r += 4) {
            int t = 0;
            for (; t + 4 <= a->n; t += 4)
                ftile(a, wt, r, t, 4, 4);
            for (; t < a->n; t++)
                ftile(a, wt, r, t, 4, 1);
        }
    for (; r < r1; r++) {
        int t = 0;
        for (; t + 4 <= a->n; t += 4)
            ftile(a, wt, r, t, 1, 4);
        for (; t < a->n; t++)
            ftile(a, wt, r, t, 1, 1);
    }
}

static void mm_f32(const struct kern_mm *a, int r0, int r1) { fmm(a, W_F32, r0, r1); }
static void mm_bf16(const struct kern_mm *a, int r0, int r1) { fmm(a, W_BF16, r0, r1); }
static void mm_f16(const struct kern_mm *a, int r0, int r1) { fmm(a, W_F16, r0, r1); }

void kern_x86_avx512_fill(struct kern_table *t)
{
    kern_x86_avx2_fill(t);
    t->name = "avx512+avx2+fma+f16c";
    t->mm[KQ_F32] = mm_f32;
    t->mm[KQ_BF16] = mm_bf16;
    t->mm[KQ_F16] = mm_f16;
}
