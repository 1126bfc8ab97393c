/* avx512vnni.c - AVX-512 VNNI matrix products for the quantised weights,
 * in the interleaved layouts (KQ_Q8I, KQ_Q4I), which this table chooses
 * for --quant q8/q4; everything else comes from the AVX-512 table.
 * Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni; installed
 * only when the CPU reports them (x86.c). Results equal the reference up
 * to float summation order: the integer dots are exact.
 *
 * vpdpbusd multiplies unsigned by signed bytes, so the weight codes are
 * stored unsigned with an offset: Q4 nibbles 0..15 (offset 8), Q8 codes
 * q+128. Then sum w*x = sum (w + off)*x - off * sum x, and the correction
 * -off * sum x, from the block sums stored with the activations, is the
 * integer accumulator's starting value.
 *
 * One vpdpbusd advances all 16 blocks of a group by 4 elements, so a group
 * takes 8 of them per row and token, then a single convert-and-scale step
 * for its 16 blocks. */
#include <immintrin.h>
#include <string.h>

#include "backend/cpu/arch/x86/x86.h"

#define AI static inline __attribute__((always_inline))
/* Decode prefetch: the R rows of a decode tile are one contiguous span
 * (scales and codes of each row in turn), fetched as one stream, a share
 * of it per group: non-temporal into L1 a little ahead (the weights are
 * read once per token, so keeping them out of the outer caches costs
 * nothing), and into L2 PF_L2_MORE further on, which keeps more lines in
 * flight than L1's miss buffers allow. Measured, 0.6B shape, bench-shaped
 * runs: against 8 KiB ahead of each row's codes only (which skipped one
 * line in nine, the scale lines), q4 decode x1.24 (1 thread) and
 * x1.07-1.18 (2 threads), q8 x1.05-1.09 and x1.02; the L2 stream on top
 * q4 x1.09 / x1.07, q8 x1.05 / x1.16 (16 KiB further: q4 x1.03). q4 2 and
 * 8 KiB ahead and q8 1 and 4 KiB were slower. */
AI size_t pf_decode(int q4)
{
    return q4 ? 4096 : 2048;
}
#define PF_L2_MORE 8192

AI const uint8_t *wrow(const struct kern_mm *a, int r)
{
    return a->w + (size_t)r * a->w_stride;
}
AI const uint8_t *xrow(const struct kern_mm *a, int t)
{
    return (const uint8_t *)a->x + (size_t)t * a->x_stride;
}

#define GROUP_ELEMS (KQ_GROUP * KQ_BLOCK)
/* Register tiles, measured on Zen 5 (bench/cpu kernel bench): prefill 4
 * rows x 3 tokens (12 integer accumulators + 6 activation vectors fit the
 * 32 registers), decode 4 rows at a time (4 independent vpdpbusd chains). */
#define TILE_ROWS 4
#define TILE_TOKENS 3
#define DECODE_ROWS 4

/* The integer dots of one group for R rows x T tokens, started from the
 * offset corrections in ai. */
AI void igroup_dots(int q4, const uint8_t *const *wg, const int8_t *const *xg, int R, int T,
                    __m512i ai[4][4])
{
    const __m512i nib = _mm512_set1_epi8(0x0f);
    if (q4) {
        for (int c = 0; c < 4; c++) {
            __m512i xl[4], xh[4];
#pragma GCC unroll 4
            for (int j = 0; j < T; j++) {
                xl[j] = _mm512_loadu_si512((const void *)(xg[j] + 128 * c));
                xh[j] = _mm512_loadu_si512((const void *)(xg[j] + 128 * c + 64));
            }
#pragma GCC unroll 4
            for (int i = 0; i < R; i++) {
                __m512i v = _mm512_loadu_si512((const void *)(wg[i] + 64 * c));
                __m512i lo = _mm512_and_si512(v, nib);
                __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
#pragma GCC unroll 4
                for (int j = 0; j < T; j++) {
                    ai[i][j] = _mm512_dpbusd_epi32(ai[i][j], lo, xl[j]);
                    ai[i][j] = _mm512_dpbusd_epi32(ai[i][j], hi, xh[j]);
                }
            }
        }
        return;
    }
    for (int u = 0; u < 8; u++) {
        __m512i xv[4];
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            xv[j] = _mm512_loadu_si512((const void *)(xg[j] + 64 * u));
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            __m512i v = _mm512_loadu_si512((const void *)(wg[i] + 64 * u));
#pragma GCC unroll 4
            for (int j = 0; j < T; j++)
                ai[i][j] = _mm512_dpbusd_epi32(ai[i][j], v, xv[j]);
        }
    }
}

/* R weight rows x T tokens over the whole row. */
AI void itile(const struct kern_mm *a, int q4, int r, int t, int R, int T)
{
    int ng = kq_groups(a->k);
    size_t gw = q4 ? GROUP_ELEMS / 2 : GROUP_ELEMS;
    const uint16_t *wd[4];
    const uint8_t *wc[4], *wg[4];
    const float *xd[4];
    const int32_t *xs[4];
    const int8_t *xc[4], *xg[4];
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
        wd[i] = (const uint16_t *)wrow(a, r + i);
        wc[i] = (const uint8_t *)(wd[i] + KQ_GROUP * ng);
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            acc[i][j] = _mm512_setzero_ps();
    }
#pragma GCC unroll 4
    for (int j = 0; j < T; j++) {
        xd[j] = (const float *)(const void *)xrow(a, t + j);
        xs[j] = (const int32_t *)(const void *)(xd[j] + KQ_GROUP * ng);
        xc[j] = (const int8_t *)(xs[j] + KQ_GROUP * ng);
    }
    for (int g = 0; g < ng; g++) {
        __m512i ai[4][4];
#pragma GCC unroll 4
        for (int j = 0; j < T; j++) {
            __m512i s = _mm512_loadu_si512((const void *)(xs[j] + KQ_GROUP * g));
            __m512i corr =
                _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(s, q4 ? 3 : 7));
            xg[j] = xc[j] + (size_t)g * GROUP_ELEMS;
#pragma GCC unroll 4
            for (int i = 0; i < R; i++)
                ai[i][j] = corr;
        }
#pragma GCC unroll 4
        for (int i = 0; i < R; i++)
            wg[i] = wc[i] + (size_t)g * gw;
        /* (the two divisions per group are hidden behind memory here: a
         * running cursor instead measured q4 decode x0.93-0.95) */
        if (T == 1) { /* rows are adjacent: [wd[0], wd[0] + R * w_stride) */
            const char *ahead = (const char *)wd[0] + pf_decode(q4);
            size_t span = (size_t)R * a->w_stride;
            for (size_t o = (span * g / ng) & ~(size_t)63; o < span * (g + 1) / ng; o += 64) {
                _mm_prefetch(ahead + o, _MM_HINT_NTA);
                _mm_prefetch(ahead + o + PF_L2_MORE, _MM_HINT_T1);
            }
        }
        igroup_dots(q4, wg, xg, R, T, ai);
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            __m512 ws =
                _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(wd[i] + KQ_GROUP * g)));
#pragma GCC unroll 4
            for (int j = 0; j < T; j++) {
                __m512 sc = _mm512_mul_ps(ws, _mm512_loadu_ps(xd[j] + KQ_GROUP * g));
                acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ai[i][j]), sc, acc[i][j]);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            a->y[(size_t)(t + j) * a->y_stride + (size_t)(r + i)] = _mm512_reduce_add_ps(acc[i][j]);
}

AI void irows(const struct kern_mm *a, int q4, int r, int R)
{
    int t = 0;
    for (; t + TILE_TOKENS <= a->n; t += TILE_TOKENS)
        itile(a, q4, r, t, R, TILE_TOKENS);
    for (; t < a->n; t++)
        itile(a, q4, r, t, R, 1);
}

AI void imm(const struct kern_mm *a, int q4, int r0, int r1)
{
    int r = r0;
    if (a->n == 1)
        for (; r + DECODE_ROWS <= r1; r += DECODE_ROWS)
            itile(a, q4, r, 0, DECODE_ROWS, 1);
    for (; r + TILE_ROWS <= r1; r += TILE_ROWS)
        irows(a, q4, r, TILE_ROWS);
    for (; r < r1; r++)
        irows(a, q4, r, 1);
}

static void mm_q8i(const struct kern_mm *a, int r0, int r1)
{
    imm(a, 0, r0, r1);
}
static void mm_q4i(const struct kern_mm *a, int r0, int r1)
{
    imm(a, 1, r0, r1);
}

/* x -> KA_Q8I, bit-identical to kern_quant_act_i_ref: the same float
 * products rounded to nearest even, then the 4-byte steps of the group's
 * 16 blocks transposed into place. */
static void quant_act_i(const float *x, int k, uint8_t *out)
{
    int nb = k / KQ_BLOCK, ng = kq_groups(k);
    float *d = (float *)(void *)out;
    int32_t *sum = (int32_t *)(void *)(d + KQ_GROUP * ng);
    uint8_t *codes = (uint8_t *)(sum + KQ_GROUP * ng);
    const __m512i lim = _mm512_set1_epi32(127);
    for (int g = 0; g < ng; g++) {
        _Alignas(64) uint32_t blk[KQ_GROUP][KQ_BLOCK / 4];
        memset(blk, 0, sizeof blk);
        for (int l = 0; l < KQ_GROUP; l++) {
            int b = g * KQ_GROUP + l;
            d[b] = 0;
            sum[b] = 0;
            if (b >= nb)
                continue;
            __m512 v0 = _mm512_loadu_ps(x + (size_t)b * KQ_BLOCK);
            __m512 v1 = _mm512_loadu_ps(x + (size_t)b * KQ_BLOCK + 16);
            float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
            __m512 id = _mm512_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
            __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, id));
            __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, id));
            q0 = _mm512_max_epi32(_mm512_min_epi32(q0, lim),
                                  _mm512_sub_epi32(_mm512_setzero_si512(), lim));
            q1 = _mm512_max_epi32(_mm512_min_epi32(q1, lim),
                                  _mm512_sub_epi32(_mm512_setzero_si512(), lim));
            d[b] = amax / 127.0f;
            sum[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
            _mm_store_si128((__m128i *)(void *)&blk[l][0], _mm512_cvtepi32_epi8(q0));
            _mm_store_si128((__m128i *)(void *)&blk[l][4], _mm512_cvtepi32_epi8(q1));
        }
        /* step u, lane l = 4-byte word u of block l */
        const __m512i idx =
            _mm512_setr_epi32(0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120);
        for (int u = 0; u < 8; u++)
            _mm512_storeu_si512((void *)(codes + (size_t)g * GROUP_ELEMS + 64 * u),
                                _mm512_i32gather_epi32(_mm512_add_epi32(idx, _mm512_set1_epi32(u)),
                                                       (const void *)blk, 4));
    }
}

void kern_x86_avx512vnni_fill(struct kern_table *t)
{
    kern_x86_avx512_fill(t);
    t->name = "avx512vnni+avx512+avx2+fma+f16c";
    t->mm[KQ_Q8I] = mm_q8i;
    t->mm[KQ_Q4I] = mm_q4i;
    t->q8_type = KQ_Q8I;
    t->q4_type = KQ_Q4I;
    t->quant_act_i = quant_act_i;
}
