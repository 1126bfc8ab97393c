/* avx512.c - AVX-512 (F/BW/VL) variants: the float-weight matrix products
 * 16 lanes wide. The quantised products and KV helpers stay on the AVX2
 * versions (installed first), whose integer dot maps well to 256 bits.
 * Compiled with -mavx512f -mavx512bw -mavx512vl -mavx2 -mfma -mf16c;
 * installed only when the CPU reports them (x86.c). */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/arch/x86/avx512_common.h"
#include "backend/cpu/arch/x86/x86.h"

#define AI static inline __attribute__((always_inline))
#define PF_AHEAD 1024 /* bytes ahead of the current weight load */
/* The decode stream: every line this far ahead, non-temporal (read once
 * per token). Against every other line 2 KiB ahead into L1, measured
 * bench-shaped, 0.6B bf16: decode x1.035-1.044 with 1 thread, x1.046
 * with 2; 8 KiB x1.02-1.035, every line into L1 x0.96. */
#define PF_DEC 4096

enum wt { W_F32, W_BF16, W_F16 };

AI __m512 load16(enum wt wt, const uint8_t *row, int i)
{
    switch (wt) {
    case W_F32:
        return _mm512_loadu_ps((const float *)(const void *)row + i);
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
    case W_F32:
        return ((const float *)(const void *)row)[i];
    case W_BF16: {
        uint32_t u = (uint32_t)((const uint16_t *)row)[i] << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    case W_F16:
        return _cvtsh_ss(((const uint16_t *)row)[i]);
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

/* Decode: one row at a time, start to end, so the weights are read as
 * one sequential stream (rows follow each other in memory; walking
 * several rows in step makes a new short stream every row, which the
 * hardware prefetchers handle badly). Four accumulators hide the FMA
 * latency; the activation row stays in L1. */
AI void frow_dec(const struct kern_mm *a, enum wt wt, int r)
{
    const uint8_t *w = a->w + (size_t)r * a->w_stride;
    const float *x = (const float *)a->x;
    __m512 acc[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        acc[i] = _mm512_setzero_ps();
    int k64 = a->k & ~63;
    for (int e = 0; e < k64; e += 64) {
        size_t at = (wt == W_F32 ? 4 : 2) * (size_t)e, len = wt == W_F32 ? 256 : 128;
        for (size_t o = 0; o < len; o += 64)
            _mm_prefetch((const char *)w + at + PF_DEC + o, _MM_HINT_NTA);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            acc[i] =
                _mm512_fmadd_ps(load16(wt, w, e + 16 * i), _mm512_loadu_ps(x + e + 16 * i), acc[i]);
    }
    int k16 = a->k & ~15;
    for (int e = k64; e < k16; e += 16)
        acc[0] = _mm512_fmadd_ps(load16(wt, w, e), _mm512_loadu_ps(x + e), acc[0]);
    float s = _mm512_reduce_add_ps(
        _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
    for (int e = k16; e < a->k; e++)
        s += load1(wt, w, e) * x[e];
    a->y[r] = s;
}

AI void fmm(const struct kern_mm *a, enum wt wt, int r0, int r1)
{
    int r = r0;
    if (a->n == 1)
        for (; r < r1; r++)
            frow_dec(a, wt, r);
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

static void mm_f32(const struct kern_mm *a, int r0, int r1)
{
    fmm(a, W_F32, r0, r1);
}
/* ---- bf16 prefill on split activations ----------------------------------
 * A 64-byte load of bf16 weights holds, in each 32-bit lane, element 2i
 * (low half) and 2i+1 (high half). lane << 16 is element 2i as a float and
 * lane & 0xffff0000 is element 2i+1, so no widening shuffle is needed if
 * the activations are split the same way: per 32 inputs, the 16 even ones
 * then the 16 odd ones. (Zero-masked 16-bit loads, one of them 2 bytes
 * back, would avoid the shift and the and, but measured slower: tensors
 * in a safetensors file are only 8-byte aligned, and both loads then
 * split cache lines.)
 *
 * Blocking: the split copy (SPLIT_FLOATS, 64 KiB on the stack) holds a
 * group of tokens over a block of at most KBLK inputs, so the 4 split
 * tokens of a tile (16 KiB) stay in L1 while the call's weight rows (a
 * pool chunk, sized for L2) stream past them; without blocks, 4 tokens of
 * k = 3072 filled L1 and the down projection ran 25% slower. Blocks after
 * the first add to the outputs: the sum over k is only regrouped, as the
 * accuracy rule allows. */
#define SPLIT_FLOATS 16384
#define KBLK 1024

AI void split_x(const float *x, int k, float *out)
{
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    for (int e = 0; e < k; e += 32) {
        __m512 lo = _mm512_loadu_ps(x + e), hi = _mm512_loadu_ps(x + e + 16);
        _mm512_store_ps(out + e, _mm512_permutex2var_ps(lo, ev, hi));
        _mm512_store_ps(out + e + 16, _mm512_permutex2var_ps(lo, od, hi));
    }
}

/* y[t][r .. r+3] = s (add: += s) */
AI void store4(const struct kern_mm *a, int r, int t, __m128 s, int add)
{
    float *y = a->y + (size_t)t * a->y_stride + (size_t)r;
    if (add)
        s = _mm_add_ps(s, _mm_loadu_ps(y));
    _mm_storeu_ps(y, s);
}

/* 4 rows x 4 tokens over inputs [e0, e0 + kb); xs: the 4 split tokens of
 * the block, kb apart. add: add to y (a later block) rather than set.
 * pf (bytes, 0: none): the same inputs of the rows that far on are
 * prefetched into L1 - the next tile's, which come from L2, or from
 * memory on the first call of a chunk (+5% and +20% measured). */
AI void bf16_tile44(const struct kern_mm *a, int r, int t, const float *xs, int e0, int kb, int add,
                    size_t pf)
{
    const __m512i himask = _mm512_set1_epi32((int)0xffff0000u);
    __m512 acc[16]; /* acc[4 * row + token] */
    const uint8_t *w[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        w[i] = a->w + (size_t)(r + i) * a->w_stride + 2 * (size_t)e0;
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        acc[i] = _mm512_setzero_ps();
    for (int e = 0; e < kb; e += 32) {
        __m512 xe[4], xo[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            xe[j] = _mm512_load_ps(xs + (size_t)j * kb + e);
            xo[j] = _mm512_load_ps(xs + (size_t)j * kb + e + 16);
        }
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            if (pf)
                _mm_prefetch((const char *)w[i] + 2 * (size_t)e + pf, _MM_HINT_T0);
            __m512i v = _mm512_loadu_si512((const void *)(w[i] + 2 * (size_t)e));
            /* keep v in a register: folded into both the shift and the
             * and, the (usually line-splitting) load ran twice (-4%) */
            __asm__("" : "+v"(v));
            __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
            __m512 wo = _mm512_castsi512_ps(_mm512_and_si512(v, himask));
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                acc[4 * i + j] = _mm512_fmadd_ps(we, xe[j], acc[4 * i + j]);
                acc[4 * i + j] = _mm512_fmadd_ps(wo, xo[j], acc[4 * i + j]);
            }
        }
    }
    __m512 s = sum16(acc); /* quarter j: token t + j, rows r .. r+3 */
    store4(a, r, t, _mm512_castps512_ps128(s), add);
    store4(a, r, t + 1, _mm512_extractf32x4_ps(s, 1), add);
    store4(a, r, t + 2, _mm512_extractf32x4_ps(s, 2), add);
    store4(a, r, t + 3, _mm512_extractf32x4_ps(s, 3), add);
}

AI const float *x_row(const struct kern_mm *a, int t)
{
    return (const float *)(const void *)((const uint8_t *)a->x + (size_t)t * a->x_stride);
}

static void mm_bf16(const struct kern_mm *a, int r0, int r1)
{
    int k = a->k;
    if (a->n < 4 || k % 32 != 0 || r1 - r0 < 4) {
        fmm(a, W_BF16, r0, r1);
        return;
    }
    /* equal blocks of whole 32s, at most KBLK; a group of g >= 16 tokens */
    int nb = (k + KBLK - 1) / KBLK, kb = (k / 32 + nb - 1) / nb * 32, g = SPLIT_FLOATS / kb / 4 * 4;
    _Alignas(64) float xs[SPLIT_FLOATS];
    int r4 = r0 + (r1 - r0) / 4 * 4, n4 = a->n / 4 * 4;
    for (int t0 = 0; t0 < n4; t0 += g) {
        int nt = n4 - t0 < g ? n4 - t0 : g;
        for (int e0 = 0; e0 < k; e0 += kb) {
            int kl = k - e0 < kb ? k - e0 : kb;
            for (int j = 0; j < nt; j++)
                split_x(x_row(a, t0 + j) + e0, kl, xs + (size_t)j * kl);
            /* tokens outer: 4 split tokens stay in L1 while the weight
             * rows stream past them (rows outer, with the 4 rows in L1
             * and the tokens streaming, measured slower) */
            for (int t = 0; t < nt; t += 4)
                for (int r = r0; r < r4; r += 4)
                    bf16_tile44(a, r, t0 + t, xs + (size_t)t * kl, e0, kl, e0 > 0,
                                r + 4 < r4 ? 4 * a->w_stride : 0);
        }
        for (int r = r4; r < r1; r++)
            for (int t = 0; t < nt; t += 4)
                ftile(a, W_BF16, r, t0 + t, 1, 4);
    }
    /* tokens past the last group of 4 */
    for (int t = n4; t < a->n; t++) {
        int r = r0;
        for (; r < r4; r += 4)
            ftile(a, W_BF16, r, t, 4, 1);
        for (; r < r1; r++)
            ftile(a, W_BF16, r, t, 1, 1);
    }
}
static void mm_f16(const struct kern_mm *a, int r0, int r1)
{
    fmm(a, W_F16, r0, r1);
}

/* a = silu(a) * b = a / (1 + e^-a) * b, as kern_silu_mul but without a
 * libm call per element (the SwiGLU of every token and layer). */
static void silu_mul(float *a, const float *b, int n)
{
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = lanes16(n - i);
        __m512 x = _mm512_maskz_loadu_ps(m, a + i);
        __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
        __m512 s = _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
        _mm512_mask_storeu_ps(a + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, b + i)));
    }
}

/* kern_rmsnorm: squares summed in double (8 lanes, two chains), scaled
 * in float in the reference's order. */
static void rmsnorm(const float *x, const float *w, int n, float eps, float *out)
{
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512d a = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));
        __m512d b = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8));
        s0 = _mm512_fmadd_pd(a, a, s0);
        s1 = _mm512_fmadd_pd(b, b, s1);
    }
    double ss = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    for (; i < n; i++)
        ss += (double)x[i] * x[i];
    __m512 r = _mm512_set1_ps((float)(1.0 / sqrt(ss / n + eps)));
    for (i = 0; i < n; i += 16) {
        __mmask16 m = lanes16(n - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), r);
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + i), v));
    }
}

/* kern_rope, 16 pairs at a time, with the reference's operations (no
 * fused multiply-add: the results are bit-identical). */
static void rope(float *x, const float *cos_t, const float *sin_t, int d)
{
    int h = d / 2;
    for (int i = 0; i < h; i += 16) {
        __mmask16 m = lanes16(h - i);
        __m512 a = _mm512_maskz_loadu_ps(m, x + i), b = _mm512_maskz_loadu_ps(m, x + i + h);
        __m512 c = _mm512_maskz_loadu_ps(m, cos_t + i), s = _mm512_maskz_loadu_ps(m, sin_t + i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_sub_ps(_mm512_mul_ps(a, c), _mm512_mul_ps(b, s)));
        _mm512_mask_storeu_ps(x + i + h, m,
                              _mm512_add_ps(_mm512_mul_ps(b, c), _mm512_mul_ps(a, s)));
    }
}

void kern_x86_avx512_fill(struct kern_table *t)
{
    kern_x86_avx2_fill(t);
    t->name = "avx512+avx2+fma+f16c";
    t->mm[KQ_F32] = mm_f32;
    t->mm[KQ_BF16] = mm_bf16;
    t->mm[KQ_F16] = mm_f16;
    t->silu_mul = silu_mul;
    t->rmsnorm = rmsnorm;
    t->rope = rope;
    kern_x86_avx512_attn_fill(t);
    kern_x86_avx512_attn_block_fill(t);
    kern_x86_avx512_panel_fill(t);
}
