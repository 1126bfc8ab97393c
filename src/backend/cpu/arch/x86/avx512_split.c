/* avx512_split.c - BF16 prefill from split panels (kern_table.split and
 * mm_bf16_split; the numerics are in kernels.h): bf16 dot products of the
 * weights with the activations rounded to bf16, plus int8 dot products of
 * the weights' codes with the codes of what the rounding left, which puts
 * back most of what bf16 activations lose (rms error 1/19 of theirs on
 * the kernel checks' rows, whose 1 % of 20x outliers coarsen the codes).
 *
 * Why: an f32 FMA does 16 products, vdpbf16ps 32 and vpdpbusd 64, and on
 * Zen 5 each issues twice a cycle, on the same two pipes. The exact panel
 * kernel takes 4 FMAs per 64 products, this one 2 + 1. Measured on one
 * core, 6 rows x 64 tokens, k 1024, weights from memory: the tile alone
 * 1.28-1.35x the exact panel tile; kbench prefill (0.6B layer, panels
 * and coding included) 122 against 103 GMAC/s.
 *
 * Tiles as the panel kernel's, 6 rows x 64 tokens with 24 sums in
 * registers: first over the bf16 pairs (f32 sums), then over the code
 * quads (int32 sums, exact). The weight codes of up to KS_ROWS rows are
 * made once per call into a->wq and serve every token group; the numbers
 * they need of each row (a->rs) were made at load.
 * Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512bf16 -mavx512vnni
 * -mavx2 -mfma. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/arch/x86/avx512_common.h"
#include "backend/cpu/arch/x86/x86.h"

#define AI static inline __attribute__((always_inline))
#define ROWS 6

/* kern_f32_to_bf16 of 16 floats (NaNs quieted), in the lanes' high halves */
AI __m512i bf16_high(__m512 v)
{
    __m512i x = _mm512_castps_si512(v);
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(x, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd));
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_or_epi32(r, nan, x, _mm512_set1_epi32(0x400000));
    return _mm512_and_si512(r, _mm512_set1_epi32((int)0xffff0000u));
}

/* v - bf16(v): exact */
AI __m512 rest(__m512 v)
{
    return _mm512_sub_ps(v, _mm512_castsi512_ps(bf16_high(v)));
}

/* max |x_i - bf16(x_i)| over a row of k floats */
static float max_rest(const float *x, int k)
{
    __m512 m = _mm512_setzero_ps();
    for (int i = 0; i < k; i += 16)
        m = _mm512_max_ps(m, _mm512_abs_ps(rest(_mm512_maskz_loadu_ps(lanes16(k - i), x + i))));
    return _mm512_reduce_max_ps(m);
}

/* 16 inputs of 16 tokens (t[e]: input e, lane j: token j) -> np bf16
 * pairs at hi and nq code quads at lo (vectors KP_TOKENS u32 apart) */
static void split16(const float (*t)[16], __m512 inv, uint32_t *hi, uint32_t *lo, int np, int nq)
{
    for (int p = 0; p < np; p++) {
        __m512i a = bf16_high(_mm512_load_ps(t[2 * p]));
        __m512i b = bf16_high(_mm512_load_ps(t[2 * p + 1]));
        _mm512_store_si512((void *)(hi + (size_t)p * KP_TOKENS),
                           _mm512_or_si512(_mm512_srli_epi32(a, 16), b));
    }
    for (int q = 0; q < nq; q++) {
        __m512i word = _mm512_setzero_si512();
        for (int j = 0; j < 4; j++) {
            __m512i c = _mm512_cvtps_epi32(_mm512_mul_ps(rest(_mm512_load_ps(t[4 * q + j])), inv));
            c = _mm512_add_epi32(c, _mm512_set1_epi32(128));
            word = _mm512_or_si512(word, _mm512_slli_epi32(c, 8 * j));
        }
        _mm512_store_si512((void *)(lo + (size_t)q * KP_TOKENS), word);
    }
}

/* kern_split_ref */
static void split(const float *x, size_t x_stride, int n, int k, int t0, uint8_t *sp)
{
    size_t ss = x_stride / sizeof(float);
    int nrow = n - t0 < 16 ? n - t0 : 16, lane = t0 % KP_TOKENS;
    const float *src = (const float *)(const void *)((const char *)x + (size_t)t0 * x_stride);
    uint8_t *g = sp + (size_t)(t0 / KP_TOKENS) * ks_group_bytes(k);
    uint32_t *hi = (uint32_t *)(void *)g + lane;
    uint32_t *lo = hi + (size_t)k / 2 * KP_TOKENS;
    float *scale = (float *)(void *)(lo + (size_t)k / 4 * KP_TOKENS);
    _Alignas(64) float m[16] = {0};
    for (int j = 0; j < nrow; j++)
        m[j] = max_rest(src + (size_t)j * ss, k);
    __m512 mv = _mm512_load_ps(m), c127 = _mm512_set1_ps(127.0f);
    __m512 inv =
        _mm512_maskz_div_ps(_mm512_cmp_ps_mask(mv, _mm512_setzero_ps(), _CMP_GT_OQ), c127, mv);
    _mm512_storeu_ps(scale, _mm512_div_ps(mv, c127));
    _Alignas(64) float t[16][16];
    int k16 = k / 16 * 16;
    for (int i = 0; i < k16; i += 16) {
        transpose16(src + i, ss, nrow, &t[0][0], 16);
        split16((const float(*)[16])t, inv, hi + (size_t)i / 2 * KP_TOKENS,
                lo + (size_t)i / 4 * KP_TOKENS, 8, 4);
    }
    if (k16 < k) { /* 4, 8 or 12 inputs left */
        for (int e = 0; e < 16; e++)
            for (int j = 0; j < 16; j++)
                t[e][j] = j < nrow && k16 + e < k ? src[(size_t)j * ss + (size_t)(k16 + e)] : 0.0f;
        split16((const float(*)[16])t, inv, hi + (size_t)k16 / 2 * KP_TOKENS,
                lo + (size_t)k16 / 4 * KP_TOKENS, (k - k16) / 2, (k - k16) / 4);
    }
}

/* One step of 32 bf16 weights: lane L holds inputs 2L (low half) and
 * 2L + 1; the floats of the even and the odd ones */
AI __m512 even_f32(__m512i v)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}
AI __m512 odd_f32(__m512i v)
{
    return _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)0xffff0000u)));
}
AI __mmask32 lanes32(int rem)
{
    return rem >= 32 ? ~(__mmask32)0 : (__mmask32)((1u << rem) - 1);
}

/* kern_split_rows_ref */
static void split_rows(const uint8_t *wb, size_t w_stride, int k, int r0, int r1,
                       struct ks_row *out)
{
    for (int r = r0; r < r1; r++) {
        const uint16_t *w = (const uint16_t *)(const void *)(wb + (size_t)r * w_stride);
        __m512 m = _mm512_setzero_ps();
        for (int i = 0; i < k; i += 32) {
            __m512i v = _mm512_maskz_loadu_epi16(lanes32(k - i), w + i);
            m = _mm512_max_ps(m,
                              _mm512_max_ps(_mm512_abs_ps(even_f32(v)), _mm512_abs_ps(odd_f32(v))));
        }
        float mw = _mm512_reduce_max_ps(m), inv = mw > 0 ? 127.0f / mw : 0.0f;
        __m512 iv = _mm512_set1_ps(inv);
        __m512i sum = _mm512_setzero_si512();
        for (int i = 0; i < k; i += 32) {
            __m512i v = _mm512_maskz_loadu_epi16(lanes32(k - i), w + i);
            sum = _mm512_add_epi32(sum, _mm512_cvtps_epi32(_mm512_mul_ps(even_f32(v), iv)));
            sum = _mm512_add_epi32(sum, _mm512_cvtps_epi32(_mm512_mul_ps(odd_f32(v), iv)));
        }
        out[r] = (struct ks_row){inv, mw / 127.0f, 128 * _mm512_reduce_add_epi32(sum)};
    }
}

/* The codes of 32 weights v (as loaded): lane L holds those of inputs
 * 2L (low byte) and 2L + 1 */
AI __m512i code32(__m512i v, __m512 inv)
{
    __m512i qe = _mm512_cvtps_epi32(_mm512_mul_ps(even_f32(v), inv));
    __m512i qo = _mm512_cvtps_epi32(_mm512_mul_ps(odd_f32(v), inv));
    /* (qe & 0xff) | qo << 8 */
    return _mm512_ternarylogic_epi32(qe, _mm512_slli_epi32(qo, 8), _mm512_set1_epi32(0xff), 0xec);
}

/* The codes of weight rows r0..r1-1 into a->wq, from its row ri on */
static void code_rows(const struct kern_mm *a, int r0, int r1, int ri)
{
    int k = a->k, k32 = k / 32 * 32;
    for (int r = r0; r < r1; r++) {
        const uint16_t *w = (const uint16_t *)(const void *)(a->w + (size_t)r * a->w_stride);
        __m512 inv = _mm512_set1_ps(a->rs[r].inv);
        int8_t *out = (int8_t *)a->wq + (size_t)(ri + r - r0) * (size_t)k;
        for (int i = 0; i < k32; i += 32)
            _mm256_storeu_si256((__m256i *)(void *)(out + i),
                                _mm512_cvtepi32_epi16(code32(_mm512_loadu_si512(w + i), inv)));
        if (k32 < k) { /* an even count: k % 4 == 0 */
            __m512i v = _mm512_maskz_loadu_epi16(lanes32(k - k32), w + k32);
            _mm512_mask_cvtepi32_storeu_epi16(out + k32, lanes16((k - k32) / 2), code32(v, inv));
        }
    }
}

/* Rows r .. r+R-1 (code rows ri ..) times tokens t0 .. t0+tn-1 of the
 * split panel group g, J = ceil(tn / 16) vectors of them. R and J are
 * constants in each instance below, so the sums live in registers.
 * pf: the next tile's weight rows, fetched into L1 meanwhile, or NULL. */
AI void tile(const struct kern_mm *a, int r, int ri, const uint8_t *g, int t0, int tn,
             const uint8_t *pf, const int R, const int J)
{
    int k = a->k;
    const uint8_t *w = a->w + (size_t)r * a->w_stride;
    const int8_t *wq = (const int8_t *)a->wq + (size_t)ri * (size_t)k;
    const uint32_t *hp = (const uint32_t *)(const void *)g;
    const uint32_t *lp = hp + (size_t)k / 2 * KP_TOKENS;
    const float *scale = (const float *)(const void *)(lp + (size_t)k / 4 * KP_TOKENS);
    __m512 acc[ROWS][4];
#pragma GCC unroll 6
    for (int i = 0; i < ROWS; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            acc[i][j] = _mm512_setzero_ps();
    for (int p = 0; p < k / 2; p++, hp += KP_TOKENS) {
        if (pf && !(p & 1)) /* 6 rows of 2k bytes: one line in 2 steps covers them */
            _mm_prefetch((const char *)pf + 32 * (size_t)p, _MM_HINT_T1);
        __m512i x[4];
#pragma GCC unroll 4
        for (int j = 0; j < J; j++)
            x[j] = _mm512_load_si512((const void *)(hp + 16 * j));
#pragma GCC unroll 6
        for (int i = 0; i < R; i++) {
            uint32_t wv;
            memcpy(&wv, w + (size_t)i * a->w_stride + 4 * (size_t)p, 4);
            __m512bh b = (__m512bh)_mm512_set1_epi32((int)wv);
#pragma GCC unroll 4
            for (int j = 0; j < J; j++)
                acc[i][j] = _mm512_dpbf16_ps(acc[i][j], b, (__m512bh)x[j]);
        }
    }
    _Alignas(64) float out[ROWS][KP_TOKENS];
#pragma GCC unroll 6
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int j = 0; j < J; j++)
            _mm512_store_ps(&out[i][16 * j], acc[i][j]);
    __m512i isum[ROWS][4];
#pragma GCC unroll 6
    for (int i = 0; i < ROWS; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            isum[i][j] = _mm512_setzero_si512();
    for (int p = 0; p < k / 4; p++, lp += KP_TOKENS) {
        __m512i x[4];
#pragma GCC unroll 4
        for (int j = 0; j < J; j++)
            x[j] = _mm512_load_si512((const void *)(lp + 16 * j));
#pragma GCC unroll 6
        for (int i = 0; i < R; i++) {
            int32_t wv;
            memcpy(&wv, wq + (size_t)i * (size_t)k + 4 * (size_t)p, 4);
            __m512i b = _mm512_set1_epi32(wv);
            /* as asm: from the intrinsic, GCC 12 keeps the sums in memory */
#pragma GCC unroll 4
            for (int j = 0; j < J; j++)
                __asm__("vpdpbusd %2, %1, %0" : "+v"(isum[i][j]) : "v"(x[j]), "v"(b));
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < R; i++) {
        __m512i corr = _mm512_set1_epi32(a->rs[r + i].corr);
        __m512 sw = _mm512_set1_ps(a->rs[r + i].sw);
#pragma GCC unroll 4
        for (int j = 0; j < J; j++) {
            __m512 f = _mm512_cvtepi32_ps(_mm512_sub_epi32(isum[i][j], corr));
            __m512 s = _mm512_mul_ps(sw, _mm512_load_ps(scale + 16 * j));
            _mm512_store_ps(&out[i][16 * j],
                            _mm512_fmadd_ps(f, s, _mm512_load_ps(&out[i][16 * j])));
        }
    }
    for (int t = 0; t < tn; t++) {
        float *y = a->y + (size_t)(t0 + t) * a->y_stride + (size_t)r;
        for (int i = 0; i < R; i++)
            y[i] = out[i][t];
    }
}

typedef void (*tile_fn)(const struct kern_mm *a, int r, int ri, const uint8_t *g, int t0, int tn,
                        const uint8_t *pf);
KT_TILES((const struct kern_mm *a, int r, int ri, const uint8_t *g, int t0, int tn,
          const uint8_t *pf),
         a, r, ri, g, t0, tn, pf)

/* Token groups inside, as the panel kernel: a group's panels stay in L2
 * while the rows stream past them. The first group codes each tile's rows
 * just before its tile, which then reads them from L1: coding all rows
 * of a call first took a quarter of the products' time (measured, 0.6B
 * shape, 1 thread). */
static void mm_bf16_split(const struct kern_mm *a, int r0, int r1)
{
    for (int rs = r0; rs < r1; rs += KS_ROWS) {
        int re = r1 - rs < KS_ROWS ? r1 : rs + KS_ROWS;
        for (int t0 = 0; t0 < a->n; t0 += KP_TOKENS) {
            const uint8_t *g = a->sp + (size_t)(t0 / KP_TOKENS) * ks_group_bytes(a->k);
            int tn = a->n - t0 < KP_TOKENS ? a->n - t0 : KP_TOKENS, j = (tn + 15) / 16 - 1;
            for (int r = rs; r < re; r += ROWS) {
                int R = re - r < ROWS ? re - r : ROWS;
                const uint8_t *pf = NULL;
                if (t0 == 0) {
                    code_rows(a, r, r + R, r - rs);
                    if (r + ROWS < re && a->w_stride == 2 * (size_t)a->k)
                        pf = a->w + (size_t)(r + ROWS) * a->w_stride;
                }
                tiles[R][j](a, r, r - rs, g, t0, tn, pf);
            }
        }
    }
}

void kern_x86_avx512_split_fill(struct kern_table *t)
{
    t->split = split;
    t->split_rows = split_rows;
    t->mm_bf16_split = mm_bf16_split;
}
