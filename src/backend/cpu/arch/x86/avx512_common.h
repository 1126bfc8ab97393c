/* avx512_common.h - small helpers shared by the AVX-512 kernel files.
 * Private to arch/x86/; include only from files compiled with -mavx512f.
 *
 * exp512: e^x on 16 floats as arch/expf_poly.h describes, times 2^n by
 * vscalefps. */
#ifndef AX_BACKEND_CPU_ARCH_X86_AVX512_COMMON_H
#define AX_BACKEND_CPU_ARCH_X86_AVX512_COMMON_H

#include <immintrin.h>

#include "backend/cpu/arch/expf_poly.h"

/* The first rem lanes of 16 (all of them when rem >= 16). */
static inline __attribute__((always_inline)) __mmask16 lanes16(int rem)
{
    return rem >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1);
}

static inline __attribute__((always_inline)) __m512 exp512(__m512 x)
{
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-EXPF_XMAX)), _mm512_set1_ps(EXPF_XMAX));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(EXPF_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXPF_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXPF_LN2_LO), r);
    __m512 p = _mm512_set1_ps(EXPF_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXPF_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXPF_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXPF_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXPF_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXPF_P5));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* The lane sums of v[4 * i + j] (i, j < 4) as lane 4 * j + i of one
 * vector: a transposing tree of 15 adds, cheaper than 16 reductions. */
static inline __attribute__((always_inline)) __m512 sum16(const __m512 *v)
{
    __m512 h[8], q[4], d[2];
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++) /* 8 lanes of v[2p], then of v[2p+1] */
        h[p] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0x44),
                             _mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0xee));
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++) /* 4 lanes of each of v[4p .. 4p+3] */
        q[p] = _mm512_add_ps(_mm512_shuffle_f32x4(h[2 * p], h[2 * p + 1], 0x88),
                             _mm512_shuffle_f32x4(h[2 * p], h[2 * p + 1], 0xdd));
#pragma GCC unroll 2
    for (int p = 0; p < 2; p++) { /* quarter j: 2 lanes of v[8p+j], 2 of v[8p+4+j] */
        __m512d x0 = _mm512_castps_pd(q[2 * p]), x1 = _mm512_castps_pd(q[2 * p + 1]);
        d[p] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x0, x1)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(x0, x1)));
    }
    return _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_ps(d[0], d[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

/* 16 x 16 floats: row i of src (ss floats apart) becomes column i of dst
 * (ds floats apart). Rows at or past nrow read as zero. */
static inline __attribute__((always_inline)) void transpose16(const float *src, size_t ss, int nrow,
                                                              float *dst, size_t ds)
{
    __m512 r[16], t[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        r[i] = i < nrow ? _mm512_loadu_ps(src + i * ss) : _mm512_setzero_ps();

        /* pairs of rows interleaved, then pairs of pairs: each 128-bit quarter
         * of r[4q + m] then holds a 4 x 4 block of rows 4q..4q+3 */
#pragma GCC unroll 8
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 16; i += 4) {
        __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
        __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    /* gather the quarters: output j takes quarter j / 4 of r[4q + j % 4] */
#pragma GCC unroll 4
    for (int m = 0; m < 4; m++) {
        __m512 a0 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0x44);
        __m512 a1 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0xee);
        __m512 b0 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0x44);
        __m512 b1 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0xee);
        _mm512_storeu_ps(dst + (size_t)m * ds, _mm512_shuffle_f32x4(a0, b0, 0x88));
        _mm512_storeu_ps(dst + (size_t)(m + 4) * ds, _mm512_shuffle_f32x4(a0, b0, 0xdd));
        _mm512_storeu_ps(dst + (size_t)(m + 8) * ds, _mm512_shuffle_f32x4(a1, b1, 0x88));
        _mm512_storeu_ps(dst + (size_t)(m + 12) * ds, _mm512_shuffle_f32x4(a1, b1, 0xdd));
    }
}

/* Out-of-line instances tile<R><J> of a file's always-inline
 * tile(ARGS..., R, J) for R = 1..6 weight rows and J = 1..4 vectors of 16
 * tokens, and their table tiles[R][J - 1] of the file's type tile_fn.
 * With R and J constant the sums live in registers; inlined into one
 * function, GCC ran out of registers and spilled the panel vectors (half
 * speed). PARAMS: the instances' parameter list, in parentheses. */
#define KT_TILE(R, J, PARAMS, ...)                                                                 \
    __attribute__((noinline)) static void tile##R##J PARAMS                                        \
    {                                                                                              \
        tile(__VA_ARGS__, R, J);                                                                   \
    }
#define KT_TILES_OF(R, PARAMS, ...)                                                                \
    KT_TILE(R, 1, PARAMS, __VA_ARGS__)                                                             \
    KT_TILE(R, 2, PARAMS, __VA_ARGS__)                                                             \
    KT_TILE(R, 3, PARAMS, __VA_ARGS__) KT_TILE(R, 4, PARAMS, __VA_ARGS__)
#define KT_ROW_OF(R)                                                                               \
    {                                                                                              \
        tile##R##1, tile##R##2, tile##R##3, tile##R##4                                             \
    }
#define KT_TILES(PARAMS, ...)                                                                      \
    KT_TILES_OF(1, PARAMS, __VA_ARGS__)                                                            \
    KT_TILES_OF(2, PARAMS, __VA_ARGS__)                                                            \
    KT_TILES_OF(3, PARAMS, __VA_ARGS__)                                                            \
    KT_TILES_OF(4, PARAMS, __VA_ARGS__)                                                            \
    KT_TILES_OF(5, PARAMS, __VA_ARGS__)                                                            \
    KT_TILES_OF(6, PARAMS, __VA_ARGS__)                                                            \
    static const tile_fn tiles[7][4] = {                                                           \
        {0}, KT_ROW_OF(1), KT_ROW_OF(2), KT_ROW_OF(3), KT_ROW_OF(4), KT_ROW_OF(5), KT_ROW_OF(6),   \
    };

#endif
