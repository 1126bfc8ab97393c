/* avx512_attn_block.c - prefill attention with the query rows in the
 * vector lanes (kern_table.attn_block).
 *
 * kern_attn's pass holds 4 query rows, so each K and V row of the cache
 * is loaded and converted for 2 tokens, and every 16 scores end in a
 * transposing sum. Here the 64 query rows of a call (g heads x 64 / g
 * tokens) are the lanes of 4 vectors, as in the BF16 panel kernel: each
 * K or V value is read once per call and broadcast to all lanes, and a
 * tile of 6 positions (or 6 output
 * columns) x 64 rows keeps 24 sums in registers. The softmax runs over
 * blocks of positions with a running maximum and sum per lane (online
 * softmax), so the scratch does not grow with the context.
 * Compiled with -mavx512f -mavx512bw -mavx512vl -mavx2 -mfma -mf16c. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/arch/x86/avx512_common.h"
#include "backend/cpu/arch/x86/x86.h"
#include "backend/cpu/kernels.h"

#define AI static inline __attribute__((always_inline))
#define L KAB_LANES
#define ROWS 6

/* Rows out[0 .. R) of L sums: out[i][lanes] (+)= sum over e < n of
 * w[i * ws + e * es] * x[e][lanes], w f16 or f32 values of the cache
 * (each broadcast to all lanes as it is read: no converted copy). R and
 * f16 are constants in each instance. */
AI void btile(const void *w, size_t ws, size_t es, const float *x, int n, float *out, int add,
              const int R, const int f16)
{
    __m512 acc[ROWS][4];
#pragma GCC unroll 6
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            acc[i][j] = add ? _mm512_load_ps(out + i * L + 16 * j) : _mm512_setzero_ps();
    for (int e = 0; e < n; e++, x += L) {
        __m512 xv[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            xv[j] = _mm512_load_ps(x + 16 * j);
#pragma GCC unroll 6
        for (int i = 0; i < R; i++) {
            size_t at = (size_t)i * ws + (size_t)e * es;
            __m512 b = f16 ? _mm512_cvtph_ps(_mm256_set1_epi16((short)((const uint16_t *)w)[at]))
                           : _mm512_set1_ps(((const float *)w)[at]);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++)
                acc[i][j] = _mm512_fmadd_ps(b, xv[j], acc[i][j]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            _mm512_store_ps(out + i * L + 16 * j, acc[i][j]);
}

/* one out-of-line instance per (R, f16), so that the sums stay in registers */
typedef void (*btile_fn)(const void *w, size_t ws, size_t es, const float *x, int n, float *out,
                         int add);
#define BTILE(R, F)                                                                                \
    __attribute__((noinline)) static void btile##R##F(const void *w, size_t ws, size_t es,         \
                                                      const float *x, int n, float *out, int add)  \
    {                                                                                              \
        btile(w, ws, es, x, n, out, add, R, F);                                                    \
    }
#define BTILES(R) BTILE(R, 0) BTILE(R, 1)
BTILES(1)
BTILES(2)
BTILES(3)
BTILES(4)
BTILES(5)
BTILES(6)
static const btile_fn btiles[2][ROWS + 1] = {
    {0, btile10, btile20, btile30, btile40, btile50, btile60},
    {0, btile11, btile21, btile31, btile41, btile51, btile61},
};

/* out rows [0, rows) in tiles of up to 6; w, ws, es in cache elements */
static void btiles_over(int f16, const uint8_t *w, size_t ws, size_t es, const float *x, int n,
                        float *out, int rows, int add)
{
    size_t el = f16 ? 2 : 4;
    for (int r = 0; r < rows; r += ROWS) {
        int R = rows - r < ROWS ? rows - r : ROWS;
        btiles[f16][R](w + (size_t)r * ws * el, ws, es, x, n, out + (size_t)r * L, add);
    }
}

/* The work buffer's parts (kern_attn_block_floats) */
struct work {
    float *qp; /* [d][L]: query rows (scaled) in the lanes; lane = head * T + token */
    float *o;  /* [d][L]: output sums */
    float *s;  /* [KAB_POS][L]: scores of a block of positions, then weights */
};

static struct work work_of(const struct kern_attn *a)
{
    size_t d = (size_t)a->d;
    struct work w = {a->work, a->work + d * L, a->work + 2 * d * L};
    return w;
}

/* The lanes' query rows: lane l is head l / T of token l % T (tokens
 * past nq: zeros). A row at a time: the rows are a multiple of 4 KiB
 * apart, so a column at a time (64 rows at once) thrashed one L1 set
 * (whole prefill x0.93). */
static void load_queries(const struct kern_attn *a, int T, float *qp)
{
    for (int l = 0; l < L; l++) {
        int h = l / T, b = l % T;
        const float *q = a->q + (size_t)b * a->q_tstride + (size_t)h * a->q_stride;
        for (int e = 0; e < a->d; e++)
            qp[(size_t)e * L + l] = b < a->nq ? q[e] * a->scale : 0.0f;
    }
}

/* Scores of positions j0 .. j0+np-1 into weights e^(s - m), with the
 * running maximum m and sum l of each lane carried over, and the output
 * sums rescaled to the new maximum. Lane token b sees positions < n + b. */
static void block_weights(const struct kern_attn *a, const struct work *w, int j0, int np,
                          const __m512i *tok, __m512 *m, __m512 *l)
{
    __m512 mx[4];
    for (int j = 0; j < 4; j++)
        mx[j] = m[j];
    for (int p = 0; p < np; p++) {
        __m512i last = _mm512_set1_epi32(j0 + p - a->n); /* seen if token > this */
        for (int j = 0; j < 4; j++) {
            float *s = w->s + (size_t)p * L + 16 * j;
            __mmask16 seen = _mm512_cmpgt_epi32_mask(tok[j], last);
            __m512 v = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), seen, _mm512_load_ps(s));
            _mm512_store_ps(s, v);
            mx[j] = _mm512_max_ps(mx[j], v);
        }
    }
    __m512 sum[4], scale[4];
    for (int j = 0; j < 4; j++) {
        scale[j] = exp512(_mm512_sub_ps(m[j], mx[j])); /* ~0 at first, on zero sums */
        sum[j] = _mm512_setzero_ps();
        m[j] = mx[j];
    }
    for (int p = 0; p < np; p++)
        for (int j = 0; j < 4; j++) {
            float *s = w->s + (size_t)p * L + 16 * j;
            __m512 v = _mm512_load_ps(s);
            __mmask16 seen = _mm512_cmp_ps_mask(v, _mm512_set1_ps(-INFINITY), _CMP_NEQ_OQ);
            __m512 e = _mm512_maskz_mov_ps(seen, exp512(_mm512_sub_ps(v, m[j])));
            _mm512_store_ps(s, e);
            sum[j] = _mm512_add_ps(sum[j], e);
        }
    for (int j = 0; j < 4; j++)
        l[j] = _mm512_fmadd_ps(l[j], scale[j], sum[j]);
    for (int e = 0; e < a->d; e++)
        for (int j = 0; j < 4; j++) {
            float *o = w->o + (size_t)e * L + 16 * j;
            _mm512_store_ps(o, _mm512_mul_ps(_mm512_load_ps(o), scale[j]));
        }
}

static void attn_block(const struct kern_attn *a)
{
    int T = L / a->g, npos = a->n + a->nq - 1;
    struct work w = work_of(a);
    load_queries(a, T, w.qp);
    memset(w.o, 0, sizeof(float) * (size_t)a->d * L);
    __m512i tok[4];
    __m512 m[4], l[4];
    for (int j = 0; j < 4; j++) {
        __m512i lane = _mm512_add_epi32(
            _mm512_set1_epi32(16 * j),
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
        /* lane % T, T a power of two */
        tok[j] = _mm512_and_si512(lane, _mm512_set1_epi32(T - 1));
        m[j] = _mm512_set1_ps(-INFINITY);
        l[j] = _mm512_setzero_ps();
    }
    size_t rs = a->stride / (a->kv_f16 ? 2 : 4); /* elements between positions */
    for (int j0 = 0; j0 < npos; j0 += KAB_POS) {
        int np = npos - j0 < KAB_POS ? npos - j0 : KAB_POS;
        const uint8_t *k = a->k + (size_t)j0 * a->stride, *v = a->v + (size_t)j0 * a->stride;
        /* s[p][lanes] = K_p . q_lane */
        btiles_over(a->kv_f16, k, rs, 1, w.qp, a->d, w.s, np, 0);
        block_weights(a, &w, j0, np, tok, m, l);
        /* o[e][lanes] += sum_p V_p[e] * weight[p][lanes] */
        btiles_over(a->kv_f16, v, 1, rs, w.s, np, w.o, a->d, 1);
    }
    _Alignas(64) float inv[L];
    for (int j = 0; j < 4; j++)
        _mm512_store_ps(inv + 16 * j, _mm512_div_ps(_mm512_set1_ps(1.0f), l[j]));
    for (int ln = 0; ln < L; ln++) { /* a row at a time, as load_queries */
        int h = ln / T, b = ln % T;
        if (b >= a->nq)
            continue;
        float *out = a->out + (size_t)b * a->out_tstride + (size_t)h * a->out_stride;
        for (int e = 0; e < a->d; e++)
            out[e] = w.o[(size_t)e * L + ln] * inv[ln];
    }
}

void kern_x86_avx512_attn_block_fill(struct kern_table *t)
{
    t->attn_block = attn_block;
}
