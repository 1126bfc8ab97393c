/* avx512_attn.c - fused attention (struct kern_attn) with AVX-512.
 *
 * Composed from dot and axpy kernels, attention pays per cached position a
 * call, a horizontal sum, and a load and store of the whole output row. Here
 * each K row is converted once and dotted with every query head of its KV
 * group (16 dot products at a time, summed by one transposing tree), and
 * the outputs stay in registers while the V rows stream past (up to 16
 * accumulators: a 128-wide head of a 2-head group in one sweep). The KV
 * element type is a constant in each instance (no per-load test).
 * kbench-style timing, d 128, 2 heads, 150 cached positions (rows in L1):
 * 40 -> 17 ns per position. A pass takes up to 4 query rows: with several
 * tokens in one call (prefill), rows of 2 tokens share each converted K
 * and V row: 17-19 -> 8-12 ns per position and token (1000-token prompt,
 * q4: +13-30 % prefill tok/s). 8 rows per pass spilled registers (30 ns).
 * Compiled with -mavx512f -mavx512bw -mavx512vl -mf16c; installed with the
 * AVX-512 table. Any d works: the last chunk of a row is masked. */
#include <immintrin.h>
#include <math.h>

#include "backend/cpu/arch/x86/avx512_common.h"
#include "backend/cpu/arch/x86/x86.h"
#include "backend/cpu/kernels.h"

#define AI static inline __attribute__((always_inline))
#define HEADS 4 /* query rows (heads of one or more tokens) per pass */

/* The cache rows of a later position come from memory (each position is
 * read once per step): ask for them early; the loops are too long for the
 * core to have many misses in flight on its own. */
#define PF_ROWS 4 /* positions ahead (4, 8, 16 tried: 4 ~ 8 > 16) */
/* A decode call (one token) reads its rows from memory, not from the
 * caches a prefill chunk just wrote them to; L1-bound prefetches alone
 * keep too few lines in flight for that, so rows this far ahead are also
 * asked into L2. Measured, K/V evicted between tokens, 28 layers x 8 KV
 * heads: 1500 positions 10.3 -> 7.3 ms a token, 160 positions 1.68 ->
 * 1.4 ms; q4 decode after a 1500-token prompt x1.19 (1 thread), x1.15
 * (2 threads). 16 rows ahead into L1 instead gained about half of it. */
#define PF_L2_ROWS 32

/* Row j into L1, or into L2 if l2 (the intrinsic takes only a constant
 * hint, so a flag picks one of two calls) */
AI void prefetch_row(const struct kern_attn *a, int f16, const uint8_t *base, int j, int l2)
{
    /* (past the last row this asks for bytes nobody needs; a prefetch
     * never faults) */
    const char *p = (const char *)(base + (size_t)j * a->stride);
    size_t bytes = (size_t)a->d * (f16 ? 2 : 4);
    for (size_t o = 0; o < bytes; o += 64) {
        if (l2)
            _mm_prefetch(p + o, _MM_HINT_T1);
        else
            _mm_prefetch(p + o, _MM_HINT_T0);
    }
}

/* Rows j + PF_ROWS into L1 and, in a decode call, j + PF_L2_ROWS into L2 */
AI void prefetch_ahead(const struct kern_attn *a, int f16, const uint8_t *base, int j)
{
    prefetch_row(a, f16, base, j + PF_ROWS, 0);
    if (a->nq == 1)
        prefetch_row(a, f16, base, j + PF_L2_ROWS, 1);
}

/* 16 (or fewer, masked) values of a K or V row from column i. */
AI __m512 kv_load(int f16, const uint8_t *row, int i, __mmask16 m)
{
    if (f16)
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)row + i));
    return _mm512_maskz_loadu_ps(m, (const float *)(const void *)row + i);
}

/* The query rows of one pass (up to HEADS; row h: one head of one token)
 * and their score rows. Row h sees n[h] positions; the pass covers nmax,
 * the most any of its rows sees (the tokens of a call differ by one
 * position each), with probabilities past a row's own n set to zero. */
struct rows {
    const float *q[HEADS];
    float *out[HEADS];
    float *s[HEADS];
    int n[HEADS];
    int nmax;
};

/* s[h][j + p] = scale * q_h . K_{j+p} for rows h < G and positions
 * p < np <= P = 16 / G, all at once: up to 16 independent accumulators
 * (one dot product each, so the FMA chains overlap instead of waiting on
 * each other) and one transposing sum for all of them instead of a
 * horizontal sum each. Accumulator h * P + p is row h, position j + p. */
AI void score_block(const struct kern_attn *a, int f16, const struct rows *r, int G, int j, int np)
{
    enum { N = 16 };
    int P = N / G;
    __m512 acc[N];
#pragma GCC unroll 16
    for (int i = 0; i < N; i++)
        acc[i] = _mm512_setzero_ps();
    for (int i = 0; i < a->d; i += 16) {
        __mmask16 m = lanes16(a->d - i);
        __m512 q[HEADS];
#pragma GCC unroll 4
        for (int h = 0; h < G; h++)
            q[h] = _mm512_maskz_loadu_ps(m, r->q[h] + i);
#pragma GCC unroll 16
        for (int p = 0; p < P; p++) {
            if (p >= np)
                break;
            __m512 kv = kv_load(f16, a->k + (size_t)(j + p) * a->stride, i, m);
#pragma GCC unroll 4
            for (int h = 0; h < G; h++)
                acc[h * P + p] = _mm512_fmadd_ps(q[h], kv, acc[h * P + p]);
        }
    }
    /* lane 4 * (v % 4) + v / 4 holds the sum of acc[v] */
    _Alignas(64) float sums[N];
    _mm512_store_ps(sums, _mm512_mul_ps(sum16(acc), _mm512_set1_ps(a->scale)));
#pragma GCC unroll 16
    for (int v = 0; v < G * P; v++)
        if (v % P < np)
            r->s[v / P][j + v % P] = sums[4 * (v % 4) + v / 4];
}

AI void scores(const struct kern_attn *a, int f16, const struct rows *r, int G)
{
    int P = 16 / G, j = 0;
    for (; j + P <= r->nmax; j += P) {
        for (int p = 0; p < P; p++)
            prefetch_ahead(a, f16, a->k, j + p);
        score_block(a, f16, r, G, j, P);
    }
    if (j < r->nmax)
        score_block(a, f16, r, G, j, r->nmax - j);
}

/* out_h[i0 .. i0 + 16 C) = sum_j p_h[j] V_j[same] for rows h < G:
 * G * C <= 16 accumulators stay in registers while the V rows stream. */
AI void weighted_sum(const struct kern_attn *a, int f16, const struct rows *r, int G, int C, int i0)
{
    __m512 acc[HEADS][8];
    __mmask16 m[8];
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) {
        m[c] = i0 + 16 * c < a->d ? lanes16(a->d - i0 - 16 * c) : 0;
#pragma GCC unroll 4
        for (int h = 0; h < G; h++)
            acc[h][c] = _mm512_setzero_ps();
    }
    for (int j = 0; j < r->nmax; j++) {
        const uint8_t *v = a->v + (size_t)j * a->stride;
        if (i0 == 0)
            prefetch_ahead(a, f16, a->v, j);
        __m512 vv[8];
#pragma GCC unroll 8
        for (int c = 0; c < C; c++)
            vv[c] = kv_load(f16, v, i0 + 16 * c, m[c]);
#pragma GCC unroll 4
        for (int h = 0; h < G; h++) {
            __m512 w = _mm512_set1_ps(r->s[h][j]);
#pragma GCC unroll 8
            for (int c = 0; c < C; c++)
                acc[h][c] = _mm512_fmadd_ps(w, vv[c], acc[h][c]);
        }
    }
#pragma GCC unroll 4
    for (int h = 0; h < G; h++)
#pragma GCC unroll 8
        for (int c = 0; c < C; c++)
            _mm512_mask_storeu_ps(r->out[h] + i0 + 16 * c, m[c], acc[h][c]);
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

/* C: 16-wide column vectors per sweep over V (8 for up to 2 rows, so a
 * 128-wide head is one sweep) */
AI void pass_rows(const struct kern_attn *a, int f16, const struct rows *r, int G)
{
    scores(a, f16, r, G);
    for (int h = 0; h < G; h++) {
        softmax(r->s[h], r->n[h]);
        for (int j = r->n[h]; j < r->nmax; j++) /* causal: later tokens' positions */
            r->s[h][j] = 0.0f;
    }
    int C = G <= 2 ? 8 : 4;
    for (int i0 = 0; i0 < a->d; i0 += 16 * C)
        weighted_sum(a, f16, r, G, C, i0);
}

/* Rows v0 .. v0 + G - 1 of the call's g * nq (token-major). */
AI void gather_rows(const struct kern_attn *a, int v0, int G, struct rows *r)
{
    size_t span = (size_t)a->n + (size_t)a->nq - 1;
    r->nmax = 0;
    for (int h = 0; h < G; h++) {
        int v = v0 + h, b = v / a->g, hh = v % a->g;
        r->q[h] = a->q + (size_t)b * a->q_tstride + (size_t)hh * a->q_stride;
        r->out[h] = a->out + (size_t)b * a->out_tstride + (size_t)hh * a->out_stride;
        r->s[h] = a->s + (size_t)v * span;
        r->n[h] = a->n + b;
        r->nmax = r->n[h] > r->nmax ? r->n[h] : r->nmax;
    }
}

AI void rows_pass(const struct kern_attn *a, int f16, int v0, int G)
{
    struct rows r;
    gather_rows(a, v0, G, &r);
    pass_rows(a, f16, &r, G);
}

/* f16 is a constant in each instance, so no load tests it. Passes of
 * HEADS rows: with several tokens a pass holds more rows than one token's
 * group, and each K and V row is converted once for all of them. */
AI void attn_kv(const struct kern_attn *a, int f16)
{
    int rows = a->g * a->nq, v = 0;
    for (; v + HEADS <= rows; v += HEADS)
        rows_pass(a, f16, v, HEADS);
    switch (rows - v) { /* constant row counts keep the accumulators in registers */
    case 3:
        rows_pass(a, f16, v, 3);
        break;
    case 2:
        rows_pass(a, f16, v, 2);
        break;
    case 1:
        rows_pass(a, f16, v, 1);
        break;
    default:
        break;
    }
}

static void attn(const struct kern_attn *a)
{
    if (a->kv_f16)
        attn_kv(a, 1);
    else
        attn_kv(a, 0);
}

void kern_x86_avx512_attn_fill(struct kern_table *t)
{
    t->attn = attn;
}
