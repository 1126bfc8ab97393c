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
#define PF_AHEAD 1024  /* bytes ahead of the current weight load */
#define PF_DECODE 4096 /* the same for each cache line of a decode row group (measured) */

AI const uint8_t *wrow(const struct kern_mm *a, int r)
{
    return a->w + (size_t)r * a->w_stride;
}
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
            a->y[(size_t)(t + j) * a->y_stride + (size_t)(r + i)] = _mm512_reduce_add_ps(acc[i][j]);
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

static void mm_q8(const struct kern_mm *a, int r0, int r1)
{
    qmm(a, 0, r0, r1);
}
static void mm_q4(const struct kern_mm *a, int r0, int r1)
{
    qmm(a, 1, r0, r1);
}

/* ---- interleaved layouts (KQ_Q8I, KQ_Q4I; see kernels.h) -----------------
 * One vpdpbusd advances all 16 blocks of a group by 4 elements, so a group
 * takes 8 of them per row and token, then a single convert and scale step
 * for its 16 blocks; the plain layout needs that step per 2 blocks. The
 * offset correction is the same as above, from the block sums stored with
 * the activations. */
#define GROUP_ELEMS (KQ_GROUP * KQ_BLOCK)
/* Register tiles, measured on Zen 5 (bench/cpu kernel bench): prefill 4
 * rows x 3 tokens (12 integer accumulators + 6 activation vectors fit the
 * 32 registers), decode 4 rows at a time (4 independent vpdpbusd chains). */
#define TILE_ROWS 4
#define TILE_TOKENS 3
#define DECODE_ROWS 4

AI int groups(int k)
{
    return (k / KQ_BLOCK + KQ_GROUP - 1) / KQ_GROUP;
}

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
    int ng = groups(a->k);
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
        for (int i = 0; i < R; i++) {
            wg[i] = wc[i] + (size_t)g * gw;
            if (T == 1) /* decode streams rows: fetch ahead across pages */
                for (size_t o = 0; o < gw; o += 64)
                    _mm_prefetch((const char *)wg[i] + o + PF_DECODE, _MM_HINT_T0);
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
    int nb = k / KQ_BLOCK, ng = groups(k);
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
    t->mm[KQ_Q8] = mm_q8;
    t->mm[KQ_Q4] = mm_q4;
    t->mm[KQ_Q8I] = mm_q8i;
    t->mm[KQ_Q4I] = mm_q4i;
    t->q8_type = KQ_Q8I;
    t->q4_type = KQ_Q4I;
    t->quant_act_i = quant_act_i;
}
