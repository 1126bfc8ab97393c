/* avx512bf16.c - the opt-in bf16-activation product for BF16 weights
 * (kern_table.mm_bf16_act, --bf16-act): activations are rounded to bf16
 * and multiplied with vdpbf16ps, which does 32 products per instruction
 * instead of the 16 of an f32 FMA. This is llama.cpp's numerics: results
 * equal kern_mm_ref_bf16_act up to float summation order (bf16 x bf16
 * products are exact in f32), except that the instructions treat
 * subnormal inputs and results as zero.
 * Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512bf16 -mavx2 -mfma
 * -mf16c; installed only when the CPU reports AVX512_BF16 (x86.c). */
#include <immintrin.h>
#include <string.h>

#include "backend/cpu/arch/x86/avx512_common.h"
#include "backend/cpu/arch/x86/x86.h"

#define AI static inline __attribute__((always_inline))
#define KB 1024 /* k elements converted per block (a multiple of 32) */
#define TB 16   /* tokens converted per block */

/* bf16 activations of up to TB tokens for one k block, zero-padded to a
 * multiple of 32 */
struct xbuf {
    _Alignas(64) uint16_t v[TB][KB];
};

AI __m512bh as_bh(__m512i v)
{
    return (__m512bh)v;
}

/* Rows t0..t0+nt-1, elements e0..e0+kl-1 of the activations -> bf16 */
static void convert(const struct kern_mm *a, int t0, int nt, int e0, int kl, struct xbuf *b)
{
    for (int j = 0; j < nt; j++) {
        const float *x =
            (const float *)(const void *)((const uint8_t *)a->x + (size_t)(t0 + j) * a->x_stride) +
            e0;
        for (int e = 0; e < kl; e += 32) {
            int rem = kl - e;
            __m512 lo, hi;
            if (rem >= 32) {
                lo = _mm512_loadu_ps(x + e);
                hi = _mm512_loadu_ps(x + e + 16);
            } else {
                __mmask16 ml = lanes16(rem);
                __mmask16 mh = (__mmask16)(rem > 16 ? (1u << (rem - 16)) - 1 : 0);
                lo = _mm512_maskz_loadu_ps(ml, x + e);
                hi = _mm512_maskz_loadu_ps(mh, x + e + 16);
            }
            _mm512_store_si512((void *)&b->v[j][e], (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
    }
}

/* The 16 sums of acc[i][j] (row i, token j) at once (sum16: quarter j
 * holds token j's sums of rows 0..3): y[j * ys + i] (first) or += it. */
AI void store_sums16(__m512 acc[4][4], float *y, size_t ys, int first)
{
    __m512 s = sum16(&acc[0][0]);
    __m128 l[4] = {_mm512_castps512_ps128(s), _mm512_extractf32x4_ps(s, 1),
                   _mm512_extractf32x4_ps(s, 2), _mm512_extractf32x4_ps(s, 3)};
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++)
        _mm_storeu_ps(y + j * ys, first ? l[j] : _mm_add_ps(_mm_loadu_ps(y + j * ys), l[j]));
}

/* acc[i][j] += weights of rows i (m: the bf16 lanes to read, the rest
 * zero) . activations of token t + j, over 32 inputs from e */
AI void dp_step(const struct xbuf *b, const uint16_t *const *w, int t, int e, __mmask32 m, int R,
                int T, __m512 acc[4][4])
{
    __m512i xv[4];
#pragma GCC unroll 4
    for (int j = 0; j < T; j++)
        xv[j] = _mm512_load_si512((const void *)&b->v[t + j][e]);
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
        __m512i wv = _mm512_maskz_loadu_epi16(m, (const void *)(w[i] + e));
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            acc[i][j] = _mm512_dpbf16_ps(acc[i][j], as_bh(wv), as_bh(xv[j]));
    }
}

/* R rows x T tokens over one k block of kl elements (R, T <= 4);
 * first: store the sums, else add them to y */
AI void tile(const struct kern_mm *a, const struct xbuf *b, int r, int t0, int t, int e0, int kl,
             int first, int R, int T)
{
    __m512 acc[4][4];
    const uint16_t *w[4];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
        w[i] = (const uint16_t *)(const void *)(a->w + (size_t)(r + i) * a->w_stride) + e0;
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            acc[i][j] = _mm512_setzero_ps();
    }
    int k32 = kl & ~31;
    for (int e = 0; e < k32; e += 32)
        dp_step(b, w, t, e, (__mmask32)~0u, R, T, acc);
    if (k32 < kl) /* masked tail: weights past kl read as zero */
        dp_step(b, w, t, k32, (__mmask32)((1u << (kl - k32)) - 1), R, T, acc);
    if (R == 4 && T == 4) {
        store_sums16(acc, a->y + (size_t)(t0 + t) * a->y_stride + (size_t)r, a->y_stride, first);
        return;
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int j = 0; j < T; j++) {
            float s = _mm512_reduce_add_ps(acc[i][j]);
            float *y = &a->y[(size_t)(t0 + t + j) * a->y_stride + (size_t)(r + i)];
            *y = first ? s : *y + s;
        }
}

#define TILE_T(R)                                                                                  \
    switch (T) {                                                                                   \
    case 4:                                                                                        \
        tile(a, b, r, t0, t, e0, kl, first, R, 4);                                                 \
        break;                                                                                     \
    case 3:                                                                                        \
        tile(a, b, r, t0, t, e0, kl, first, R, 3);                                                 \
        break;                                                                                     \
    case 2:                                                                                        \
        tile(a, b, r, t0, t, e0, kl, first, R, 2);                                                 \
        break;                                                                                     \
    default:                                                                                       \
        tile(a, b, r, t0, t, e0, kl, first, R, 1);                                                 \
        break;                                                                                     \
    }

static void tile_any(const struct kern_mm *a, const struct xbuf *b, int r, int t0, int t, int e0,
                     int kl, int first, int R, int T)
{
    switch (R) {
    case 4:
        TILE_T(4)
        break;
    case 3:
        TILE_T(3)
        break;
    case 2:
        TILE_T(2)
        break;
    default:
        TILE_T(1)
        break;
    }
}

static void mm_bf16_act(const struct kern_mm *a, int r0, int r1)
{
    struct xbuf buf;
    struct xbuf *b = &buf;
    for (int t0 = 0; t0 < a->n; t0 += TB) {
        int nt = a->n - t0 < TB ? a->n - t0 : TB;
        for (int e0 = 0; e0 < a->k; e0 += KB) {
            int kl = a->k - e0 < KB ? a->k - e0 : KB, first = e0 == 0;
            convert(a, t0, nt, e0, kl, b);
            for (int r = r0; r < r1; r += 4) {
                int R = r1 - r < 4 ? r1 - r : 4;
                int t = 0;
                if (R == 4)
                    for (; t + 4 <= nt; t += 4)
                        tile(a, b, r, t0, t, e0, kl, first, 4, 4);
                for (; t < nt; t += 4) {
                    int T = nt - t < 4 ? nt - t : 4;
                    tile_any(a, b, r, t0, t, e0, kl, first, R, T);
                }
            }
        }
    }
}

void kern_x86_avx512bf16_fill(struct kern_table *t)
{
    t->mm_bf16_act = mm_bf16_act;
}
