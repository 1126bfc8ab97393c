/* avx2.c - AVX2 + FMA + F16C variants of the dispatched kernels (same
 * signatures and results as the scalar references in kernels.c, up to
 * float summation order). Compiled with -mavx2 -mfma -mf16c; installed
 * only when the CPU reports all three (x86.c).
 *
 * Matrix products run small register tiles: R weight rows x T tokens
 * share each load (R=4,T=1 for decode; for prefill R=3,T=4 with float
 * weights, R=1,T=4 with quantised ones), so a weight row is converted
 * once per 4 tokens. Integer dots use the maddubs sign
 * trick: |w| (unsigned) times sign(w)*x (signed), exact in int16 because
 * both codes stay within -127..127. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/arch/expf_poly.h"
#include "backend/cpu/arch/x86/x86.h"

#define AI static inline __attribute__((always_inline))
#define PF_AHEAD 1024 /* bytes ahead of the current weight load */

AI float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AI const uint8_t *wrow(const struct kern_mm *a, int r) { return a->w + (size_t)r * a->w_stride; }
AI const uint8_t *xrow(const struct kern_mm *a, int t)
{
    return (const uint8_t *)a->x + (size_t)t * a->x_stride;
}

/* ---- float weights ----------------------------------------------------- */

enum wt { W_F32, W_BF16, W_F16 };

AI __m256 load8(enum wt wt, const uint8_t *row, int i)
{
    switch (wt) {
    case W_F32: return _mm256_loadu_ps((const float *)(const void *)row + i);
    case W_BF16: {
        __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + i));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    case W_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + i)));
    }
    return _mm256_setzero_ps();
}

AI float load1(enum wt wt, const uint8_t *row, int i)
{
    uint16_t h;
    switch (wt) {
    case W_F32: return ((const float *)(const void *)row)[i];
    case W_BF16: {
        uint32_t u = (uint32_t)((const uint16_t *)row)[i] << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    case W_F16: h = ((const uint16_t *)row)[i]; return _cvtsh_ss(h);
    }
    return 0;
}

/* R rows x T tokens over inputs [e0, e1) (e1 - e0 a multiple of 8 unless
 * e1 == k); add: add the sums to y (a later block of inputs) */
AI void ftile(const struct kern_mm *a, enum wt wt, int r, int t, int R, int T, int e0, int e1,
              int add)
{
    __m256 acc[4][4];
    const uint8_t *w[4];
    const float *x[4];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
        w[i] = wrow(a, r + i);
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            acc[i][j] = _mm256_setzero_ps();
    }
#pragma GCC unroll 4
    for (int j = 0; j < T; j++)
        x[j] = (const float *)(const void *)xrow(a, t + j);
    int k8 = e0 + ((e1 - e0) & ~7);
    for (int e = e0; e < k8; e += 8) {
        __m256 xv[4];
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            xv[j] = _mm256_loadu_ps(x[j] + e);
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            if (T == 1) /* decode streams rows: fetch across 4 KiB pages early */
                _mm_prefetch((const char *)w[i] + (wt == W_F32 ? 4 : 2) * (size_t)e + PF_AHEAD,
                             _MM_HINT_T0);
            __m256 wv = load8(wt, w[i], e);
#pragma GCC unroll 4
            for (int j = 0; j < T; j++)
                acc[i][j] = _mm256_fmadd_ps(wv, xv[j], acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int j = 0; j < T; j++) {
            float s = hsum(acc[i][j]);
            for (int e = k8; e < e1; e++)
                s += load1(wt, w[i], e) * x[j][e];
            float *y = &a->y[(size_t)(t + j) * a->y_stride + (size_t)(r + i)];
            *y = add ? *y + s : s;
        }
}

/* Inputs per block in prefill: the 4 tokens of a tile (16 KiB of floats)
 * stay in L1 while the rows stream past them from L2, whatever k is. */
#define FKB 1024
#define TR 3 /* rows per prefill tile */
#define TT 4 /* tokens per prefill tile */

AI void fmm(const struct kern_mm *a, enum wt wt, int r0, int r1)
{
    int k = a->k;
    if (a->n < 4) {
        int r = r0;
        for (; r + 4 <= r1; r += 4)
            for (int t = 0; t < a->n; t++)
                ftile(a, wt, r, t, 4, 1, 0, k, 0);
        for (; r < r1; r++)
            for (int t = 0; t < a->n; t++)
                ftile(a, wt, r, t, 1, 1, 0, k, 0);
        return;
    }
    /* prefill: 3 rows x 4 tokens per tile, so each activation load serves
     * 3 weight rows and each converted weight 4 tokens; 12 independent
     * sums keep both FMA pipes busy (BF16, cache-resident: 2 x 4 29 GMAC/s,
     * 3 x 3 44, 4 x 2 43, 4 x 3 46, 3 x 4 48) */
    int r2 = r0 + (r1 - r0) / TR * TR, n4 = a->n / TT * TT;
    for (int e0 = 0; e0 < k; e0 += FKB) {
        int e1 = k - e0 < FKB ? k : e0 + FKB, add = e0 > 0;
        for (int t = 0; t < n4; t += TT) {
            for (int r = r0; r < r2; r += TR)
                ftile(a, wt, r, t, TR, TT, e0, e1, add);
            for (int r = r2; r < r1; r++)
                ftile(a, wt, r, t, 1, TT, e0, e1, add);
        }
        for (int t = n4; t < a->n; t++) {
            for (int r = r0; r < r2; r += TR)
                ftile(a, wt, r, t, TR, 1, e0, e1, add);
            for (int r = r2; r < r1; r++)
                ftile(a, wt, r, t, 1, 1, e0, e1, add);
        }
    }
}

static void mm_f32(const struct kern_mm *a, int r0, int r1) { fmm(a, W_F32, r0, r1); }
static void mm_bf16(const struct kern_mm *a, int r0, int r1) { fmm(a, W_BF16, r0, r1); }
static void mm_f16(const struct kern_mm *a, int r0, int r1) { fmm(a, W_F16, r0, r1); }

/* ---- quantised weights ------------------------------------------------- */

AI __m256i dot_i8(__m256i w, __m256i x)
{
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* Block b of a Q8 (q4 = 0) or Q4 (q4 = 1) row, as 32 signed codes. */
AI __m256i wblock(int q4, const uint8_t *codes, int b)
{
    if (!q4)
        return _mm256_loadu_si256((const __m256i *)(codes + 32 * b));
    __m128i p = _mm_loadu_si128((const __m128i *)(codes + 16 * b));
    __m128i m = _mm_set1_epi8(0x0f);
    __m128i lo = _mm_and_si128(p, m), hi = _mm_and_si128(_mm_srli_epi16(p, 4), m);
    return _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(8));
}

AI void qtile(const struct kern_mm *a, int q4, int r, int t, int R, int T)
{
    int nb = a->k / 32;
    __m256 acc[4][4];
    const uint16_t *wd[4];
    const uint8_t *wq[4];
    const float *xd[4];
    const int8_t *xq[4];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
        wd[i] = (const uint16_t *)wrow(a, r + i);
        wq[i] = (const uint8_t *)(wd[i] + nb);
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            acc[i][j] = _mm256_setzero_ps();
    }
#pragma GCC unroll 4
    for (int j = 0; j < T; j++) {
        xd[j] = (const float *)(const void *)xrow(a, t + j);
        xq[j] = (const int8_t *)(xd[j] + nb);
    }
    for (int b = 0; b < nb; b++) {
        __m256i xv[4];
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            xv[j] = _mm256_loadu_si256((const __m256i *)(xq[j] + 32 * b));
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            __m256i wv = wblock(q4, wq[i], b);
            float d = _cvtsh_ss(wd[i][b]);
#pragma GCC unroll 4
            for (int j = 0; j < T; j++) {
                __m256 s = _mm256_cvtepi32_ps(dot_i8(wv, xv[j]));
                acc[i][j] = _mm256_fmadd_ps(s, _mm256_set1_ps(d * xd[j][b]), acc[i][j]);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            a->y[(size_t)(t + j) * a->y_stride + (size_t)(r + i)] = hsum(acc[i][j]);
}

AI void qmm(const struct kern_mm *a, int q4, int r0, int r1)
{
    int r = r0;
    if (a->n == 1)
        for (; r + 4 <= r1; r += 4)
            qtile(a, q4, r, 0, 4, 1);
    for (; r < r1; r++) {
        int t = 0;
        for (; t + 4 <= a->n; t += 4)
            qtile(a, q4, r, t, 1, 4);
        for (; t < a->n; t++)
            qtile(a, q4, r, t, 1, 1);
    }
}

static void mm_q8(const struct kern_mm *a, int r0, int r1) { qmm(a, 0, r0, r1); }
static void mm_q4(const struct kern_mm *a, int r0, int r1) { qmm(a, 1, r0, r1); }

/* Same rounding as the reference (cvtps rounds to nearest even, as lrintf
 * does by default), so the codes are identical. */
static void quant_act(const float *x, int k, uint8_t *out)
{
    int nb = k / 32;
    float *d = (float *)(void *)out;
    int8_t *q = (int8_t *)(d + nb);
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int b = 0; b < nb; b++) {
        __m256 v[4], m = _mm256_setzero_ps();
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(x + 32 * b + 8 * i);
            m = _mm256_max_ps(m, _mm256_and_ps(v[i], absm));
        }
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        float amax = _mm_cvtss_f32(h);
        d[b] = amax / 127.0f;
        __m256 id = _mm256_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v[0], id));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v[1], id));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v[2], id));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v[3], id));
        __m256i s01 = _mm256_packs_epi32(i0, i1), s23 = _mm256_packs_epi32(i2, i3);
        __m256i p = _mm256_packs_epi16(s01, s23);
        /* packs work per 128-bit lane: restore element order */
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(q + 32 * b), p);
    }
}

/* ---- KV cache helpers -------------------------------------------------- */

static float dot_f16(const float *q, const uint16_t *k, int d)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= d; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i),
                             _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i))), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8),
                             _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i + 8))), a1);
    }
    float s = hsum(_mm256_add_ps(a0, a1));
    for (; i < d; i++)
        s += q[i] * _cvtsh_ss(k[i]);
    return s;
}

static float dot_f32(const float *q, const float *k, int d)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= d; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(k + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), _mm256_loadu_ps(k + i + 8), a1);
    }
    float s = hsum(_mm256_add_ps(a0, a1));
    for (; i < d; i++)
        s += q[i] * k[i];
    return s;
}

static void axpy_f16(float a, const uint16_t *v, float *out, int d)
{
    __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= d; i += 8) {
        __m256 x = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + i)));
        _mm256_storeu_ps(out + i, _mm256_fmadd_ps(av, x, _mm256_loadu_ps(out + i)));
    }
    for (; i < d; i++)
        out[i] += a * _cvtsh_ss(v[i]);
}

static void axpy_f32(float a, const float *v, float *out, int d)
{
    __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= d; i += 8)
        _mm256_storeu_ps(out + i,
                         _mm256_fmadd_ps(av, _mm256_loadu_ps(v + i), _mm256_loadu_ps(out + i)));
    for (; i < d; i++)
        out[i] += a * v[i];
}

static void f32_to_f16(const float *x, uint16_t *out, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(out + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        out[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

/* ---- per-element steps ------------------------------------------------- */

/* e^x on 8 floats as arch/expf_poly.h describes; AVX2 has no vscalefps,
 * so 2^n is built in two halves, each a normal float for n down to -127. */
AI __m256 exp8(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-EXPF_XMAX)), _mm256_set1_ps(EXPF_XMAX));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(EXPF_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXPF_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXPF_LN2_LO), r);
    __m256 p = _mm256_set1_ps(EXPF_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXPF_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXPF_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXPF_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXPF_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXPF_P5));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1);
    __m256i n2 = _mm256_sub_epi32(ni, n1), bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

/* kern_silu_mul without a libm call per element (every token and layer
 * goes through it: intermediate_size values each) */
static void silu_mul(float *a, const float *b, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(a + i);
        __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
        __m256 s = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_storeu_ps(a + i, _mm256_mul_ps(s, _mm256_loadu_ps(b + i)));
    }
    if (i < n)
        kern_silu_mul(a + i, b + i, n - i);
}

/* kern_rmsnorm: squares summed in double (8 lanes), scaled in float in
 * the reference's order */
static void rmsnorm(const float *x, const float *w, int n, float eps, float *out)
{
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256d a = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
        __m256d b = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
        s0 = _mm256_fmadd_pd(a, a, s0);
        s1 = _mm256_fmadd_pd(b, b, s1);
    }
    __m256d s = _mm256_add_pd(s0, s1);
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    double ss = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
    for (; i < n; i++)
        ss += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(ss / n + eps));
    __m256 rv = _mm256_set1_ps(r);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(w + i),
                                                _mm256_mul_ps(_mm256_loadu_ps(x + i), rv)));
    for (; i < n; i++)
        out[i] = w[i] * (x[i] * r);
}

/* kern_rope, 8 pairs at a time, with the reference's operations (no fused
 * multiply-add: the results are bit-identical) */
static void rope(float *x, const float *cos_t, const float *sin_t, int d)
{
    int h = d / 2, i = 0;
    for (; i + 8 <= h; i += 8) {
        __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + h);
        __m256 c = _mm256_loadu_ps(cos_t + i), s = _mm256_loadu_ps(sin_t + i);
        _mm256_storeu_ps(x + i, _mm256_sub_ps(_mm256_mul_ps(a, c), _mm256_mul_ps(b, s)));
        _mm256_storeu_ps(x + i + h, _mm256_add_ps(_mm256_mul_ps(b, c), _mm256_mul_ps(a, s)));
    }
    for (; i < h; i++) {
        float a = x[i], b = x[i + h];
        x[i] = a * cos_t[i] - b * sin_t[i];
        x[i + h] = b * cos_t[i] + a * sin_t[i];
    }
}

void kern_x86_avx2_fill(struct kern_table *t)
{
    t->name = "avx2+fma+f16c";
    t->mm[KQ_F32] = mm_f32;
    t->mm[KQ_BF16] = mm_bf16;
    t->mm[KQ_F16] = mm_f16;
    t->mm[KQ_Q8] = mm_q8;
    t->mm[KQ_Q4] = mm_q4;
    t->quant_act = quant_act;
    t->dot_f16 = dot_f16;
    t->dot_f32 = dot_f32;
    t->axpy_f16 = axpy_f16;
    t->axpy_f32 = axpy_f32;
    t->f32_to_f16 = f32_to_f16;
    t->silu_mul = silu_mul;
    t->rmsnorm = rmsnorm;
    t->rope = rope;
}
