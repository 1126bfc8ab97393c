/* avx512vnni.c - AVX-512 VNNI variants of the quantised (Q8/Q4) matrix
 * products; everything else comes from the AVX-512 table. Compiled with
 * -mavx512f -mavx512bw -mavx512vl -mavx512vnni; installed only when the
 * CPU reports them (x86.c). Results equal the reference up to float
 * summation order: the integer dots are exact.
 *
 * vpdpbusd multiplies unsigned by signed bytes, so the weight codes are
 * made unsigned by an offset: Q4 nibbles are already 0..15 (offset 8),
 * Q8 codes get +128 by flipping the top bit. Then
 *   sum w*x = sum (w + off)*x - off * sum x,
 * and the correction -off * sum x (per 32-bit lane, from a vpdpbusd of
 * ones with x) is the accumulator's starting value, computed once per
 * token and shared by every weight row of the tile. One 512-bit step
 * covers two blocks (lanes 0-7 block b, lanes 8-15 block b+1), so the
 * per-block scales are applied as a vector of two halves. */
#include <immintrin.h>
#include <string.h>

#include "backend/cpu/arch/x86/x86.h"

#define AI static inline __attribute__((always_inline))
#define PF_AHEAD 1024 /* bytes ahead of the current weight load */

AI const uint8_t *wrow(const struct kern_mm *a, int r) { return a->w + (size_t)r * a->w_stride; }
AI const uint8_t *xrow(const struct kern_mm *a, int t)
{
    return (const uint8_t *)a->x + (size_t)t * a->x_stride;
}

/* Unsigned codes of blocks b, b+1 (one: b only, upper half zero). */
AI __m512i wcodes(int q4, const uint8_t *codes, int b, int one)
{
    if (!q4) {
        __m512i v = one ? _mm512_maskz_loadu_epi8(0xffffffffull, codes + 32 * b)
                        : _mm512_loadu_si512((const void *)(codes + 32 * b));
        return _mm512_mask_xor_epi32(v, one ? 0x00ff : 0xffff, v, _mm512_set1_epi8((char)0x80));
    }
    /* 16 packed bytes per block: low nibbles are elements 0-15, high 16-31 */
    __m256i p = one ? _mm256_maskz_loadu_epi8(0xffffu, codes + 16 * b)
                    : _mm256_loadu_si256((const __m256i *)(codes + 16 * b));
    __m512i v = _mm512_castsi256_si512(p);
    v = _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(1, 1, 0, 0));
    /* lanes 0 and 2 keep the low nibbles, lanes 1 and 3 shift down the high */
    const __m512i cnt = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4);
    return _mm512_and_si512(_mm512_srlv_epi64(v, cnt), _mm512_set1_epi8(0x0f));
}

/* R weight rows x T tokens. Scales are combined 16 blocks at a time
 * (weight scale x activation scale per row and token); each 512-bit step
 * then picks its two blocks' scales out with one permute. */
AI void qtile(const struct kern_mm *a, int q4, int r, int t, int R, int T)
{
    int nb = a->k / 32;
    __m512 acc[4][4];
    const uint16_t *wd[4];
    const uint8_t *wq[4];
    const float *xd[4];
    const int8_t *xq[4];
    const int sh = q4 ? 3 : 7; /* offset 8 or 128 */
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
        wd[i] = (const uint16_t *)wrow(a, r + i);
        wq[i] = (const uint8_t *)(wd[i] + nb);
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            acc[i][j] = _mm512_setzero_ps();
    }
#pragma GCC unroll 4
    for (int j = 0; j < T; j++) {
        xd[j] = (const float *)(const void *)xrow(a, t + j);
        xq[j] = (const int8_t *)(xd[j] + nb);
    }
    const __m512i ones = _mm512_set1_epi8(1);
    const __m512i pair0 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    for (int b0 = 0; b0 < nb; b0 += 16) {
        int nblk = nb - b0 < 16 ? nb - b0 : 16;
        __mmask16 m = (__mmask16)((1u << nblk) - 1);
        __m512 sc[4][4];
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            __m256i h = nblk == 16 ? _mm256_loadu_si256((const __m256i *)(wd[i] + b0))
                                   : _mm256_maskz_loadu_epi16(m, wd[i] + b0);
            __m512 ws = _mm512_cvtph_ps(h);
#pragma GCC unroll 4
            for (int j = 0; j < T; j++)
                sc[i][j] = _mm512_mul_ps(ws, nblk == 16 ? _mm512_loadu_ps(xd[j] + b0)
                                                        : _mm512_maskz_loadu_ps(m, xd[j] + b0));
        }
        for (int b = b0; b < b0 + nblk; b += 2) {
            int one = b + 1 == nb;
            __m512i idx = _mm512_add_epi32(pair0, _mm512_set1_epi32(b - b0));
            __m512i xv[4], corr[4];
#pragma GCC unroll 4
            for (int j = 0; j < T; j++) {
                xv[j] = one ? _mm512_maskz_loadu_epi8(0xffffffffull, xq[j] + 32 * b)
                            : _mm512_loadu_si512((const void *)(xq[j] + 32 * b));
                __m512i sx = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, xv[j]);
                corr[j] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sx, sh));
            }
#pragma GCC unroll 4
            for (int i = 0; i < R; i++) {
                if (T == 1) /* decode streams rows: fetch ahead across pages */
                    _mm_prefetch((const char *)wq[i] + (q4 ? 16 : 32) * (size_t)b + PF_AHEAD,
                                 _MM_HINT_T0);
                __m512i wv = wcodes(q4, wq[i], b, one);
#pragma GCC unroll 4
                for (int j = 0; j < T; j++) {
                    __m512i p = _mm512_dpbusd_epi32(corr[j], wv, xv[j]);
                    acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p),
                                                _mm512_permutexvar_ps(idx, sc[i][j]), acc[i][j]);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            a->y[(size_t)(t + j) * a->y_stride + (size_t)(r + i)] =
                _mm512_reduce_add_ps(acc[i][j]);
}

/* Rows in tiles of R, tokens in tiles of T, leftovers one at a time. */
AI void qrows(const struct kern_mm *a, int q4, int r, int R)
{
    int t = 0;
    for (; t + 4 <= a->n; t += 4)
        qtile(a, q4, r, t, R, 4);
    for (; t < a->n; t++)
        qtile(a, q4, r, t, R, 1);
}

AI void qmm(const struct kern_mm *a, int q4, int r0, int r1)
{
    int r = r0;
    if (a->n < 4) /* decode: one row at a time = one sequential stream */
        for (; r < r1; r++)
            qrows(a, q4, r, 1);
    for (; r + 2 <= r1; r += 2)
        qrows(a, q4, r, 2);
    for (; r < r1; r++)
        qrows(a, q4, r, 1);
}

static void mm_q8(const struct kern_mm *a, int r0, int r1) { qmm(a, 0, r0, r1); }
static void mm_q4(const struct kern_mm *a, int r0, int r1) { qmm(a, 1, r0, r1); }

void kern_x86_avx512vnni_fill(struct kern_table *t)
{
    kern_x86_avx512_fill(t);
    t->name = "avx512vnni+avx512+avx2+fma+f16c";
    t->mm[KQ_Q8] = mm_q8;
    t->mm[KQ_Q4] = mm_q4;
}
