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

#endif
