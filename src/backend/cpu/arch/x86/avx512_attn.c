/* avx512_attn.c - fused attention (struct kern_attn) with AVX-512.
 *
 * Composed from dot and axpy kernels, attention pays per cached position a
 * call, a horizontal sum, and a load and store of the whole output row. Here
 * each K row is converted once and dotted with every query head of its KV
 * group, and the outputs stay in registers while the V rows stream past:
 * for each 64-wide column chunk and up to 4 heads, 16 accumulators.
 * Compiled with -mavx512f -mavx512bw -mavx512vl -mf16c; installed with the
 * AVX-512 table. Any d works: the last chunk of a row is masked. */
#include <immintrin.h>
#include <math.h>

#include "backend/cpu/arch/x86/avx512_common.h"
#include "backend/cpu/arch/x86/x86.h"
#include "backend/cpu/kernels.h"

#define AI static inline __attribute__((always_inline))
#define HEADS 4 /* query heads per pass */

/* The cache rows of a later position come from memory (each position is
 * read once per step): ask for them early; the loops are too long for the
 * core to have many misses in flight on its own. */
#define PF_ROWS 4 /* positions ahead (4, 8, 16 tried: 4 ~ 8 > 16) */
AI void prefetch_row(const struct kern_attn *a, const uint8_t *base, int j)
{
    if (j >= a->n)
        return;
    const char *p = (const char *)(base + (size_t)j * a->stride);
    size_t bytes = (size_t)a->d * (a->kv_f16 ? 2 : 4);
    for (size_t o = 0; o < bytes; o += 64)
        _mm_prefetch(p + o, _MM_HINT_T0);
}

/* 16 (or fewer, masked) values of a K or V row from column i. */
AI __m512 kv_load(const struct kern_attn *a, const uint8_t *row, int i, __mmask16 m)
{
    if (a->kv_f16)
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)row + i));
    return _mm512_maskz_loadu_ps(m, (const float *)(const void *)row + i);
}

/* s[h][j] = scale * q_h . K_j for heads h0..h0+G-1. */
AI void scores(const struct kern_attn *a, int h0, int G)
{
    for (int j = 0; j < a->n; j++) {
        const uint8_t *k = a->k + (size_t)j * a->stride;
        prefetch_row(a, a->k, j + PF_ROWS);
        __m512 acc[HEADS];
#pragma GCC unroll 4
        for (int h = 0; h < G; h++)
            acc[h] = _mm512_setzero_ps();
        for (int i = 0; i < a->d; i += 16) {
            __mmask16 m = lanes16(a->d - i);
            __m512 kv = kv_load(a, k, i, m);
#pragma GCC unroll 4
            for (int h = 0; h < G; h++)
                acc[h] = _mm512_fmadd_ps(
                    _mm512_maskz_loadu_ps(m, a->q + (size_t)(h0 + h) * a->q_stride + i), kv,
                    acc[h]);
        }
#pragma GCC unroll 4
        for (int h = 0; h < G; h++)
            a->s[(size_t)(h0 + h) * a->n + j] = a->scale * _mm512_reduce_add_ps(acc[h]);
    }
}

/* out_h[i0 .. i0+63] = sum_j p_h[j] V_j[i0 ..] for heads h0..h0+G-1. */
AI void weighted_sum(const struct kern_attn *a, int h0, int G, int i0)
{
    __m512 acc[HEADS][4];
    __mmask16 m[4];
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        m[c] = i0 + 16 * c < a->d ? lanes16(a->d - i0 - 16 * c) : 0;
#pragma GCC unroll 4
        for (int h = 0; h < G; h++)
            acc[h][c] = _mm512_setzero_ps();
    }
    for (int j = 0; j < a->n; j++) {
        const uint8_t *v = a->v + (size_t)j * a->stride;
        if (i0 == 0)
            prefetch_row(a, a->v, j + PF_ROWS);
        __m512 vv[4];
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
            vv[c] = kv_load(a, v, i0 + 16 * c, m[c]);
#pragma GCC unroll 4
        for (int h = 0; h < G; h++) {
            __m512 p = _mm512_set1_ps(a->s[(size_t)(h0 + h) * a->n + j]);
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++)
                acc[h][c] = _mm512_fmadd_ps(p, vv[c], acc[h][c]);
        }
    }
#pragma GCC unroll 4
    for (int h = 0; h < G; h++)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
            _mm512_mask_storeu_ps(a->out + (size_t)(h0 + h) * a->out_stride + i0 + 16 * c, m[c],
                                  acc[h][c]);
}

/* In-place softmax of n scores, as kern_softmax (exponents <= 0). */
AI void softmax(float *s, int n)
{
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < n; j += 16)
        mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(mx, lanes16(n - j), s + j));
    __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx)), sum = _mm512_setzero_ps();
    for (int j = 0; j < n; j += 16) {
        __mmask16 k = lanes16(n - j);
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), m));
        _mm512_mask_storeu_ps(s + j, k, e);
        sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(k, e));
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (int j = 0; j < n; j += 16) {
        __mmask16 k = lanes16(n - j);
        _mm512_mask_storeu_ps(s + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, s + j), inv));
    }
}

AI void heads(const struct kern_attn *a, int h0, int G)
{
    scores(a, h0, G);
    for (int h = h0; h < h0 + G; h++)
        softmax(a->s + (size_t)h * a->n, a->n);
    for (int i0 = 0; i0 < a->d; i0 += 64)
        weighted_sum(a, h0, G, i0);
}

static void attn(const struct kern_attn *a)
{
    int h = 0;
    for (; h + HEADS <= a->g; h += HEADS)
        heads(a, h, HEADS);
    switch (a->g - h) { /* constant head counts keep the accumulators in registers */
    case 3:
        heads(a, h, 3);
        break;
    case 2:
        heads(a, h, 2);
        break;
    case 1:
        heads(a, h, 1);
        break;
    default:
        break;
    }
}

void kern_x86_avx512_attn_fill(struct kern_table *t)
{
    t->attn = attn;
}
