/* kern_checks.h - checks of the CPU kernels, shared by the cmocka unit test
 * (test_cpu.c) and the plain-C aarch64 harness run under qemu
 * (tests/aarch64/kern_main.c). Each check prints what failed and returns
 * the number of failures.
 *
 * Oracles: the scalar references are checked against double-precision
 * sums and IEEE conversion facts; every ISA variant the CPU supports is
 * checked against the scalar references on random data with odd sizes,
 * with an error normalised by sum |w_i * x_i| (float summation order is the
 * only allowed difference). */
#ifndef AX_TESTS_KERN_CHECKS_H
#define AX_TESTS_KERN_CHECKS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "util/mem.h"

/* Normalised error allowed between a variant and the reference for a sum
 * of k terms: the worst-case bound of float summation, k * 2^-24 of
 * sum |terms| for each of the two orders. A wrong kernel is off by O(1). */
#define KC_TOL(k) (1.2e-7 * ((k) + 4))

static uint64_t kc_rng = 0x9e3779b97f4a7c15ull;

static uint32_t kc_u32(void)
{
    kc_rng ^= kc_rng << 13;
    kc_rng ^= kc_rng >> 7;
    kc_rng ^= kc_rng << 17;
    return (uint32_t)(kc_rng >> 16);
}

/* Uniform in [-1, 1) with an occasional larger outlier, as real
 * activations have. */
static float kc_rand(void)
{
    float f = (float)(kc_u32() & 0xffffff) / 8388608.0f - 1.0f;
    return (kc_u32() % 97 == 0) ? f * 20.0f : f;
}

static int kc_fail(const char *what, double got, double want)
{
    fprintf(stderr, "FAIL %s: got %.9g want %.9g\n", what, got, want);
    return 1;
}

/* ---- reference semantics ------------------------------------------------ */

static int kc_conversions(void)
{
    int f = 0;
    struct {
        float x;
        uint16_t h;
    } cases[] = {
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {65504.0f, 0x7bff},
        {65520.0f, 0x7c00},
        {65519.0f, 0x7bff},
        {5.9604645e-8f, 0x0001},
        {2.9802322e-8f, 0x0000},
        {8.940697e-8f, 0x0002},
        {1.0f + 1.0f / 2048, 0x3c00},
        {1.0f + 3.0f / 2048, 0x3c02},
        {6.1035156e-5f, 0x0400},
        {-0.0f, 0x8000},
        {INFINITY, 0x7c00},
        {1e10f, 0x7c00},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (kern_f32_to_f16(cases[i].x) != cases[i].h)
            f += kc_fail("f32->f16", kern_f32_to_f16(cases[i].x), cases[i].h);
    for (uint32_t h = 0; h < 0x10000; h++) {
        float x = kern_f16_to_f32((uint16_t)h);
        if (isnan(x) ? (h & 0x7c00) != 0x7c00 : kern_f32_to_f16(x) != h) {
            f += kc_fail("f16 round trip", h, kern_f32_to_f16(x));
            break;
        }
    }
    if (kern_f16_to_f32(0x0001) != 5.9604645e-8f || kern_f16_to_f32(0x3555) != 0.333251953125f)
        f += kc_fail("f16->f32", kern_f16_to_f32(0x3555), 0.333251953125);
    if (kern_f32_to_bf16(1.0f + 1.0f / 256) != 0x3f80 ||
        kern_f32_to_bf16(1.0f + 3.0f / 256) != 0x3f82 || kern_bf16_to_f32(0x3fc0) != 1.5f)
        f += kc_fail("bf16", kern_f32_to_bf16(1.0f + 3.0f / 256), 0x3f82);
    return f;
}

/* Quantised rows reproduce their input to within half a step of the
 * stored (f16) scale ds, plus what clamping costs: q8 clamps at 127 codes
 * when ds rounded below amax/127; q4 has codes -8..7 with -8 at the
 * largest magnitude, so values of the other sign may be off by up to ds.
 * The scale itself is amax/127 (q8) or amax/8 (q4) rounded to f16. */
static int kc_quant_error(void)
{
    int f = 0, k = 256;
    float x[256], y[256];
    uint8_t q[1024];
    static const enum kq_type qts[] = {KQ_Q8, KQ_Q4, KQ_Q8I, KQ_Q4I};
    for (int rep = 0; rep < 50; rep++) {
        float mag = rep % 5 == 0 ? 1e-3f : rep % 5 == 1 ? 1e-6f : 1.0f;
        for (int i = 0; i < k; i++)
            x[i] = kc_rand() * mag;
        for (int qi = 0; qi < 4 && !f; qi++) {
            int qt = qts[qi] == KQ_Q4 || qts[qi] == KQ_Q4I; /* 1: a 4-bit type */
            kern_quant_row(qts[qi], x, k, q);
            kern_row_to_f32(qts[qi], q, k, y);
            for (int b = 0; b < k / 32; b++) {
                float amax = 0;
                for (int j = 0; j < 32; j++)
                    amax = fmaxf(amax, fabsf(x[b * 32 + j]));
                double ds = fabs(kern_f16_to_f32(((const uint16_t *)q)[b]));
                double want = amax / (qt ? 8.0 : 127.0);
                /* f16: 11 significant bits, or a step of 2^-24 below 2^-14 */
                if (fabs(ds - want) > want / 2048 + 3e-8) {
                    f += kc_fail(qt ? "q4 scale" : "q8 scale", ds, want);
                    break;
                }
                double bound = qt ? fmax(ds, amax - 7 * ds) : 0.5 * ds + fmax(0, amax - 127 * ds);
                for (int j = 0; j < 32; j++) {
                    double e = fabs((double)y[b * 32 + j] - x[b * 32 + j]);
                    if (e > bound * 1.0001 + 1e-12 * amax) {
                        f += kc_fail(qt ? "q4 quantisation error" : "q8 quantisation error", e,
                                     bound);
                        b = k;
                        break;
                    }
                }
            }
        }
    }
    /* activation quantisation: codes within 1/254 of the block maximum;
     * KA_Q8I holds the same values and the sums of each block's codes */
    uint8_t a[640], ai[640];
    for (int i = 0; i < k; i++)
        x[i] = kc_rand();
    kern_quant_act_ref(x, k, a);
    kern_quant_act_i_ref(x, k, ai);
    const float *d = (const float *)a;
    const int8_t *c = (const int8_t *)(d + k / 32);
    kern_act_to_f32(KQ_Q8I, ai, k, y);
    for (int i = 0; i < k; i++) {
        if (fabs(d[i / 32] * c[i] - x[i]) > d[i / 32] * 0.5001)
            f += kc_fail("activation quantisation", d[i / 32] * c[i], x[i]);
        if (y[i] != d[i / 32] * c[i])
            f += kc_fail("interleaved activation value", y[i], d[i / 32] * c[i]);
    }
    for (int b = 0; b < k / 32; b++) {
        int32_t sum = 0;
        for (int j = 0; j < 32; j++)
            sum += c[b * 32 + j];
        if (((const int32_t *)(const void *)ai)[16 + b] != sum)
            f += kc_fail("interleaved activation block sum",
                         ((const int32_t *)(const void *)ai)[16 + b], sum);
    }
    return f;
}

/* The reference products equal double sums over the dequantised values. */
static int kc_ref_products(void)
{
    int f = 0, k = 96, rows = 5, n = 3;
    float w[5 * 96], x[3 * 96], wf[96], xf[96], y[3 * 5], yplain[2][3 * 5];
    uint8_t wq[5 * 640], xq[3 * 640];
    for (int i = 0; i < rows * k; i++)
        w[i] = kc_rand();
    for (int i = 0; i < n * k; i++)
        x[i] = kc_rand();
    for (int qt = KQ_F32; qt < KQ_COUNT; qt++) {
        size_t rb = kq_row_bytes(qt, k);
        for (int r = 0; r < rows; r++) {
            uint8_t *dst = wq + r * rb;
            if (qt == KQ_F32)
                memcpy(dst, w + r * k, 4 * k);
            for (int i = 0; i < k && (qt == KQ_BF16 || qt == KQ_F16); i++)
                ((uint16_t *)dst)[i] =
                    qt == KQ_BF16 ? kern_f32_to_bf16(w[r * k + i]) : kern_f32_to_f16(w[r * k + i]);
            if (kq_is_quant(qt))
                kern_quant_row(qt, w + r * k, k, dst);
        }
        size_t xs = ka_row_bytes(qt, k);
        struct kern_table ref;
        kern_table_init_ref(&ref);
        for (int t = 0; t < n; t++) {
            if (kq_is_quant(qt))
                kern_act_quantiser(&ref, qt)(x + t * k, k, xq + t * xs);
            else
                memcpy(xq + t * xs, x + t * k, 4 * k);
        }
        struct kern_mm a = {wq, rb, xq, xs, y, rows, n, k, NULL, NULL, NULL, NULL};
        ref.mm[qt](&a, 0, rows);
        /* the interleaved layouts hold the same values and are summed in
         * the same order: identical results to the plain layouts */
        if (qt == KQ_Q8 || qt == KQ_Q4)
            memcpy(yplain[qt == KQ_Q4], y, sizeof y);
        if ((qt == KQ_Q8I || qt == KQ_Q4I) && memcmp(y, yplain[qt == KQ_Q4I], sizeof y))
            f += kc_fail("interleaved reference differs from the plain layout", y[0],
                         yplain[qt == KQ_Q4I][0]);
        for (int t = 0; t < n; t++)
            for (int r = 0; r < rows; r++) {
                kern_row_to_f32(qt, wq + r * rb, k, wf);
                if (kq_is_quant(qt)) {
                    kern_act_to_f32(qt, xq + t * xs, k, xf);
                } else {
                    memcpy(xf, x + t * k, 4 * k);
                }
                double s = 0, sa = 0;
                for (int i = 0; i < k; i++) {
                    s += (double)wf[i] * xf[i];
                    sa += fabs((double)wf[i] * xf[i]);
                }
                if (fabs(y[t * rows + r] - s) > 1e-5 * sa + 1e-30) {
                    char what[64];
                    snprintf(what, sizeof what, "reference %s product", kq_name(qt));
                    f += kc_fail(what, y[t * rows + r], s);
                }
            }
    }
    return f;
}

static int kc_reference(void)
{
    return kc_conversions() + kc_quant_error() + kc_ref_products();
}

/* ---- variants vs reference ---------------------------------------------- */

/* One matrix-product case: rows x k weights of type qt, n tokens, rows
 * r0..r1 computed; rows outside must stay untouched. */
static int kc_mm_case(const struct kern_table *v, int qt, int rows, int k, int n, int r0, int r1)
{
    size_t rb = kq_row_bytes(qt, k), xs = ka_row_bytes(qt, k);
    uint8_t *w = ax_malloc(rows * rb), *xb = ax_malloc(n * xs);
    float *xf = ax_malloc(4 * (size_t)k);
    struct kern_table ref;
    kern_table_init_ref(&ref);
    float *row = ax_malloc(4 * (size_t)k), *y0 = ax_malloc(4 * (size_t)n * rows),
          *y1 = ax_malloc(4 * (size_t)n * rows), *sa = ax_malloc(4 * (size_t)n * rows);
    int f = 0;
    for (int r = 0; r < rows; r++) {
        for (int i = 0; i < k; i++)
            row[i] = kc_rand();
        uint8_t *dst = w + r * rb;
        switch (qt) {
        case KQ_F32:
            memcpy(dst, row, 4 * (size_t)k);
            break;
        case KQ_BF16:
            for (int i = 0; i < k; i++)
                ((uint16_t *)dst)[i] = kern_f32_to_bf16(row[i]);
            break;
        case KQ_F16:
            for (int i = 0; i < k; i++)
                ((uint16_t *)dst)[i] = kern_f32_to_f16(row[i]);
            break;
        default:
            kern_quant_row(qt, row, k, dst);
            break;
        }
    }
    for (int t = 0; t < n; t++) {
        for (int i = 0; i < k; i++)
            row[i] = kc_rand();
        if (kq_is_quant(qt))
            kern_act_quantiser(&ref, qt)(row, k, xb + t * xs);
        else
            memcpy(xb + t * xs, row, 4 * (size_t)k);
    }
    for (int i = 0; i < n * rows; i++)
        y0[i] = y1[i] = -12345.0f;
    struct kern_mm a = {w, rb, xb, xs, y0, rows, n, k, NULL, NULL, NULL, NULL};
    ref.mm[qt](&a, r0, r1);
    a.y = y1;
    v->mm[qt](&a, r0, r1);
    /* normaliser: sum |w x| through the reference on |w|, |x| */
    for (int t = 0; t < n; t++)
        for (int r = 0; r < rows; r++) {
            float *wf = row;
            kern_row_to_f32(qt, w + r * rb, k, wf);
            if (kq_is_quant(qt))
                kern_act_to_f32(qt, xb + t * xs, k, xf);
            else
                memcpy(xf, xb + t * xs, 4 * (size_t)k);
            double s = 0;
            for (int i = 0; i < k; i++)
                s += fabs((double)wf[i] * xf[i]);
            sa[t * rows + r] = (float)s;
        }
    for (int t = 0; t < n && !f; t++)
        for (int r = 0; r < rows; r++) {
            float a0 = y0[t * rows + r], a1 = y1[t * rows + r];
            int inside = r >= r0 && r < r1;
            if (!inside ? a1 != -12345.0f : fabs(a0 - a1) > KC_TOL(k) * sa[t * rows + r] + 1e-30) {
                char what[128];
                snprintf(what, sizeof what, "%s mm %s rows %d k %d n %d (row %d token %d)", v->name,
                         kq_name(qt), rows, k, n, r, t);
                f += kc_fail(what, a1, a0);
                break;
            }
        }
    ax_free(w);
    ax_free(xb);
    ax_free(xf);
    ax_free(row);
    ax_free(y0);
    ax_free(y1);
    ax_free(sa);
    return f;
}

static int kc_mm(const struct kern_table *v)
{
    /* sizes reach every path: k blocks of the bf16 prefill (k > 1024),
     * token groups past 16, the interleaved layouts' padding groups */
    static const int ks_f[] = {1, 7, 8, 33, 100, 129, 1029, 64, 1024, 1056, 2048, 3072};
    static const int ks_q[] = {32, 64, 96, 160, 1056, 512, 1536};
    static const int ns[] = {1, 2, 3, 4, 5, 9, 16, 17, 33};
    static const int rows[] = {1, 3, 4, 5, 13};
    int f = 0;
    for (int qt = KQ_F32; qt < KQ_COUNT; qt++) {
        const int *ks = kq_is_quant(qt) ? ks_q : ks_f;
        int nk = kq_is_quant(qt) ? 7 : 12;
        for (int ki = 0; ki < nk; ki++)
            for (int ni = 0; ni < 9; ni++)
                for (int ri = 0; ri < 5; ri++) {
                    int R = rows[ri];
                    if (ks[ki] > 1100 && ns[ni] < 16 && ns[ni] != 5 && ns[ni] != 1)
                        continue; /* keep the run short: big k at a few n */
                    f += kc_mm_case(v, qt, R, ks[ki], ns[ni], 0, R);
                    if (R > 2)
                        f += kc_mm_case(v, qt, R, ks[ki], ns[ni], 1, R - 1);
                }
    }
    return f;
}

/* The error normaliser of a BF16 product: sum |w x| over a row of k
 * bf16 weights at any even byte offset; round_x: x rounded to bf16 first
 * (the bf16-activation product). */
static double kc_bf16_abs_dot(const uint8_t *w, const float *x, int k, int round_x)
{
    double s = 0;
    for (int i = 0; i < k; i++) {
        uint16_t h;
        memcpy(&h, w + 2 * (size_t)i, 2);
        float xi = round_x ? kern_bf16_to_f32(kern_f32_to_bf16(x[i])) : x[i];
        s += fabs((double)kern_bf16_to_f32(h) * xi);
    }
    return s;
}

/* A BF16 product's outputs a->y against the reference's y0 (both rows of
 * a->y_stride = rows floats): rows r0..r1 within KC_TOL of sum |w x|,
 * the others untouched (-12345). x rows are a->x_stride bytes apart. */
static int kc_bf16_compare(const char *var, const char *what, const struct kern_mm *a,
                           const float *y0, int r0, int r1, int round_x)
{
    int rows = (int)a->y_stride;
    for (int t = 0; t < a->n; t++)
        for (int r = 0; r < rows; r++) {
            float want = y0[t * rows + r], got = a->y[t * rows + r];
            const float *x =
                (const float *)(const void *)((const uint8_t *)a->x + (size_t)t * a->x_stride);
            double sa = kc_bf16_abs_dot(a->w + r * a->w_stride, x, a->k, round_x);
            int inside = r >= r0 && r < r1;
            if (!inside ? got != -12345.0f : fabs(want - got) > KC_TOL(a->k) * sa + 1e-30) {
                char msg[128];
                snprintf(msg, sizeof msg, "%s mm %s rows %d k %d n %d (row %d token %d)", var, what,
                         rows, a->k, a->n, r, t);
                return kc_fail(msg, got, want);
            }
        }
    return 0;
}

/* rows of k random bf16 weights, rb bytes apart from w0 (any even offset) */
static void kc_bf16_rows(uint8_t *w0, int rows, int k, size_t rb)
{
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < k; i++) {
            uint16_t h = kern_f32_to_bf16(kc_rand());
            memcpy(w0 + r * rb + 2 * (size_t)i, &h, 2);
        }
}

/* The optional bf16-activation product against kern_mm_ref_bf16_act: one
 * case of rows x k BF16 weights, n tokens, rows r0..r1 computed; rows
 * outside must stay untouched. */
static int kc_mm_bf16_act_case(const struct kern_table *v, int rows, int k, int n, int r0, int r1)
{
    size_t rb = 2 * (size_t)k + 2 * (size_t)(rows & 1), xs = 4 * (size_t)k;
    /* odd row strides: weight rows start at any even byte offset */
    uint8_t *w = ax_malloc(rows * rb + 2);
    float *x = ax_malloc(xs * n), *y0 = ax_malloc(4 * (size_t)n * rows),
          *y1 = ax_malloc(4 * (size_t)n * rows);
    uint8_t *w0 = w + 2;
    int f = 0;
    kc_bf16_rows(w0, rows, k, rb);
    for (size_t i = 0; i < (size_t)n * k; i++)
        x[i] = kc_rand();
    for (int i = 0; i < n * rows; i++)
        y0[i] = y1[i] = -12345.0f;
    struct kern_mm a = {w0, rb, x, xs, y0, rows, n, k, NULL, NULL, NULL, NULL};
    kern_mm_ref_bf16_act(&a, r0, r1);
    a.y = y1;
    v->mm_bf16_act(&a, r0, r1);
    f += kc_bf16_compare(v->name, "bf16_act", &a, y0, r0, r1, 1);
    ax_free(w);
    ax_free(x);
    ax_free(y0);
    ax_free(y1);
    return f;
}

static int kc_mm_bf16_act(const struct kern_table *v)
{
    static const int ks[] = {1, 7, 32, 33, 100, 1024, 1056, 3072};
    static const int ns[] = {4, 5, 16, 17};
    static const int rows[] = {1, 4, 5, 9};
    int f = 0;
    if (!v->mm_bf16_act)
        return 0;
    for (int ki = 0; ki < 8; ki++)
        for (int ni = 0; ni < 4; ni++)
            for (int ri = 0; ri < 4; ri++) {
                int R = rows[ri];
                f += kc_mm_bf16_act_case(v, R, ks[ki], ns[ni], 0, R);
                if (R > 2)
                    f += kc_mm_bf16_act_case(v, R, ks[ki], ns[ni], 1, R - 1);
            }
    return f;
}

/* The optional panel pair: v->panel must write exactly kern_panel_ref's
 * floats (zeros past n included), and mm_bf16_panel on those panels must
 * match kern_mm_ref_bf16 on the rows, touching no row outside r0..r1.
 * x rows are xs floats apart (xs >= k: a wider buffer, as in the pass). */
static int kc_mm_panel_case(const struct kern_table *v, int rows, int k, int n, int r0, int r1)
{
    size_t rb = 2 * (size_t)k + 2 * (size_t)(rows & 1), xs = (size_t)k + 3;
    uint8_t *w = ax_malloc(rows * rb + 2);
    uint8_t *w0 = w + 2; /* rows start at any even byte offset */
    size_t np = kp_floats(n, k);
    float *x = ax_malloc(4 * xs * n), *p0 = ax_malloc(4 * np + 64), *p1 = ax_malloc(4 * np + 64),
          *y0 = ax_malloc(4 * (size_t)n * rows), *y1 = ax_malloc(4 * (size_t)n * rows);
    float *pa = (float *)(void *)((uint8_t *)p1 + (64 - (uintptr_t)p1 % 64) % 64);
    int f = 0;
    kc_bf16_rows(w0, rows, k, rb);
    for (size_t i = 0; i < xs * n; i++)
        x[i] = kc_rand();
    for (size_t i = 0; i < np; i++)
        p0[i] = pa[i] = -7.0f; /* slots nobody writes stay equal */
    for (int t0 = 0; t0 < n; t0 += 16) {
        kern_panel_ref(x, 4 * xs, n, k, t0, p0);
        v->panel(x, 4 * xs, n, k, t0, pa);
    }
    if (memcmp(p0, pa, 4 * np) != 0) {
        char what[96];
        snprintf(what, sizeof what, "%s panel k %d n %d", v->name, k, n);
        f += kc_fail(what, 1, 0);
    }
    for (int i = 0; i < n * rows; i++)
        y0[i] = y1[i] = -12345.0f;
    struct kern_mm a = {w0, rb, x, 4 * xs, y0, rows, n, k, NULL, NULL, NULL, NULL};
    kern_mm_ref_bf16(&a, r0, r1);
    a.y = y1;
    a.xp = pa;
    v->mm_bf16_panel(&a, r0, r1);
    if (!f)
        f += kc_bf16_compare(v->name, "bf16 panel", &a, y0, r0, r1, 0);
    ax_free(w);
    ax_free(x);
    ax_free(p0);
    ax_free(p1);
    ax_free(y0);
    ax_free(y1);
    return f;
}

static int kc_mm_panel(const struct kern_table *v)
{
    /* every tile shape: rows 1..6 and past, token groups of 1..4 vectors
     * and more than one group; k not a multiple of 16 */
    static const int ks[] = {1, 7, 16, 33, 100, 1024, 3072};
    static const int ns[] = {1, 15, 16, 17, 40, 64, 65, 100, 128, 200};
    static const int rows[] = {1, 5, 6, 7, 13};
    int f = 0;
    if (!v->panel || !v->mm_bf16_panel)
        return 0;
    for (int ki = 0; ki < 7; ki++)
        for (int ni = 0; ni < 10; ni++)
            for (int ri = 0; ri < 5; ri++) {
                int R = rows[ri];
                if (ks[ki] > 1000 && ns[ni] > 65 && R > 6)
                    continue; /* keep the run short */
                f += kc_mm_panel_case(v, R, ks[ki], ns[ni], 0, R);
                if (R > 2)
                    f += kc_mm_panel_case(v, R, ks[ki], ns[ni], 1, R - 1);
            }
    return f;
}

/* The optional split trio: v->split must write exactly kern_split_ref's
 * bytes (zeros past n included), v->split_rows exactly
 * kern_split_rows_ref's numbers, and mm_bf16_split on them must match
 * kern_mm_ref_bf16_split. Besides, the split numerics themselves against
 * the exact product: within the bound their codes allow, and on the whole
 * far closer than bf16 activations: their rms error below 1/10 of it
 * (measured 1/19 on these rows, whose 1 % of 20x outliers coarsen the
 * codes of their tokens; without the codes' term it would be 1). */
struct kc_split_err {
    double split, bf16; /* sums of squared errors against the exact product */
};

static int kc_split_exactness(const struct kern_mm *a, const float *ys, struct kc_split_err *e)
{
    int rows = (int)a->y_stride, k = a->k;
    size_t ny = (size_t)a->n * rows;
    float *ye = ax_malloc(4 * ny), *yb = ax_malloc(4 * ny);
    struct kern_mm b = *a;
    b.y = ye;
    kern_mm_ref_bf16(&b, 0, rows);
    b.y = yb;
    kern_mm_ref_bf16_act(&b, 0, rows);
    int f = 0;
    for (int t = 0; t < a->n && !f; t++) {
        const float *x =
            (const float *)(const void *)((const uint8_t *)a->x + (size_t)t * a->x_stride);
        float mx = 0;
        for (int i = 0; i < k; i++) {
            float l = x[i] - kern_bf16_to_f32(kern_f32_to_bf16(x[i]));
            mx = fabsf(l) > mx ? fabsf(l) : mx;
        }
        for (int r = 0; r < rows; r++) {
            const uint8_t *w = a->w + r * a->w_stride;
            double sw = 0, mw = 0;
            for (int i = 0; i < k; i++) {
                uint16_t h;
                memcpy(&h, w + 2 * (size_t)i, 2);
                sw += fabs(kern_bf16_to_f32(h));
                mw = fmax(mw, fabs(kern_bf16_to_f32(h)));
            }
            /* codes of l: off by half a step each; weight codes likewise,
             * times |l| <= mx; plus float summation */
            double bound =
                sw * mx / 254 + k * mx * mw / 254 + KC_TOL(k) * kc_bf16_abs_dot(w, x, k, 0) + 1e-30;
            double d = (double)ys[t * rows + r] - ye[t * rows + r];
            e->split += d * d;
            e->bf16 += ((double)yb[t * rows + r] - ye[t * rows + r]) *
                       ((double)yb[t * rows + r] - ye[t * rows + r]);
            if (fabs(d) > bound) {
                f += kc_fail("split product against the exact one: past its bound",
                             ys[t * rows + r], ye[t * rows + r]);
                break;
            }
        }
    }
    ax_free(ye);
    ax_free(yb);
    return f;
}

static int kc_mm_split_case(const struct kern_table *v, int rows, int k, int n, int r0, int r1,
                            struct kc_split_err *e)
{
    size_t rb = 2 * (size_t)k + 2 * (size_t)(rows & 1), xs = (size_t)k + 3;
    uint8_t *w = ax_malloc(rows * rb + 2);
    uint8_t *w0 = w + 2; /* rows start at any even byte offset */
    size_t np = ks_bytes(n, k);
    float *x = ax_malloc(4 * xs * n), *y0 = ax_malloc(4 * (size_t)n * rows),
          *y1 = ax_malloc(4 * (size_t)n * rows);
    uint8_t *p0 = ax_malloc(np + 64), *p1 = ax_malloc(np + 64),
            *wq = ax_malloc(ks_wq_bytes(k) + 64);
    uint8_t *pa = p1 + (64 - (uintptr_t)p1 % 64) % 64, *wqa = wq + (64 - (uintptr_t)wq % 64) % 64;
    int f = 0;
    kc_bf16_rows(w0, rows, k, rb);
    for (size_t i = 0; i < xs * n; i++)
        x[i] = kc_rand();
    memset(p0, 0xa5, np); /* slots nobody writes stay equal */
    memset(pa, 0xa5, np);
    for (int t0 = 0; t0 < n; t0 += 16) {
        kern_split_ref(x, 4 * xs, n, k, t0, p0);
        v->split(x, 4 * xs, n, k, t0, pa);
    }
    if (memcmp(p0, pa, np) != 0) {
        char what[96];
        snprintf(what, sizeof what, "%s split panels k %d n %d", v->name, k, n);
        f += kc_fail(what, 1, 0);
    }
    for (int i = 0; i < n * rows; i++)
        y0[i] = y1[i] = -12345.0f;
    struct ks_row *rs0 = ax_malloc(sizeof *rs0 * rows), *rs1 = ax_malloc(sizeof *rs1 * rows);
    memset(rs0, 0, sizeof *rs0 * rows);
    memset(rs1, 0, sizeof *rs1 * rows);
    kern_split_rows_ref(w0, rb, k, r0, r1, rs0);
    v->split_rows(w0, rb, k, r0, r1, rs1);
    if (memcmp(rs0, rs1, sizeof *rs0 * rows) != 0) {
        char what[96];
        snprintf(what, sizeof what, "%s split rows k %d rows %d", v->name, k, rows);
        f += kc_fail(what, 1, 0);
    }
    struct kern_mm a = {w0, rb, x, 4 * xs, y0, rows, n, k, NULL, NULL, NULL, NULL};
    kern_mm_ref_bf16_split(&a, r0, r1);
    a.y = y1;
    a.sp = pa;
    a.rs = rs1;
    a.wq = wqa;
    v->mm_bf16_split(&a, r0, r1);
    if (!f)
        f += kc_bf16_compare(v->name, "bf16 split", &a, y0, r0, r1, 0);
    if (!f && r0 == 0 && r1 == rows)
        f += kc_split_exactness(&a, y0, e);
    ax_free(w);
    ax_free(x);
    ax_free(p0);
    ax_free(p1);
    ax_free(wq);
    ax_free(rs0);
    ax_free(rs1);
    ax_free(y0);
    ax_free(y1);
    return f;
}

static int kc_mm_split(const struct kern_table *v)
{
    /* every tile shape; k with a 4-, 8- and 12-input tail; more rows than
     * one call codes at a time (KS_ROWS) */
    static const int ks[] = {4, 12, 16, 36, 100, 1024, 3072};
    static const int ns[] = {1, 15, 16, 17, 40, 64, 65, 128, 200};
    static const int rows[] = {1, 5, 6, 7, 13, KS_ROWS + 7};
    struct kc_split_err e = {0, 0};
    int f = 0;
    if (!v->split || !v->split_rows || !v->mm_bf16_split)
        return 0;
    for (int ki = 0; ki < 7; ki++)
        for (int ni = 0; ni < 9; ni++)
            for (int ri = 0; ri < 6; ri++) {
                int R = rows[ri];
                if ((ks[ki] > 1000 && ns[ni] > 65 && R > 6) || (R > KS_ROWS && ks[ki] > 100))
                    continue; /* keep the run short */
                f += kc_mm_split_case(v, R, ks[ki], ns[ni], 0, R, &e);
                if (R > 2)
                    f += kc_mm_split_case(v, R, ks[ki], ns[ni], 1, R - 1, &e);
            }
    if (!f && !(e.split * 100 < e.bf16))
        f += kc_fail("split product: rms error against the exact one, over bf16 activations'",
                     sqrt(e.split / e.bf16), 0.1);
    return f;
}

static int kc_small(const struct kern_table *v)
{
    static const int ds[] = {1, 7, 16, 64, 128, 130};
    int f = 0;
    float q[130], kf[130], o0[130], o1[130];
    uint16_t kh[130], h0[130], h1[130];
    uint8_t a0[640], a1[640];
    for (int di = 0; di < 6; di++) {
        int d = ds[di];
        double sa = 0, sh = 0;
        for (int i = 0; i < d; i++) {
            q[i] = kc_rand();
            kf[i] = kc_rand();
            kh[i] = kern_f32_to_f16(kf[i]);
            sa += fabs((double)q[i] * kf[i]);
            sh += fabs((double)q[i] * kern_f16_to_f32(kh[i]));
        }
        if (fabs(v->dot_f32(q, kf, d) - kern_dot_f32_ref(q, kf, d)) > KC_TOL(d) * sa)
            f += kc_fail("dot_f32", v->dot_f32(q, kf, d), kern_dot_f32_ref(q, kf, d));
        if (fabs(v->dot_f16(q, kh, d) - kern_dot_f16_ref(q, kh, d)) > KC_TOL(d) * sh)
            f += kc_fail("dot_f16", v->dot_f16(q, kh, d), kern_dot_f16_ref(q, kh, d));
        for (int kind = 0; kind < 2; kind++) {
            for (int i = 0; i < d; i++)
                o0[i] = o1[i] = q[i];
            if (kind) {
                kern_axpy_f16_ref(0.37f, kh, o0, d);
                v->axpy_f16(0.37f, kh, o1, d);
            } else {
                kern_axpy_f32_ref(0.37f, kf, o0, d);
                v->axpy_f32(0.37f, kf, o1, d);
            }
            for (int i = 0; i < d; i++)
                if (fabs(o0[i] - o1[i]) > 1e-6 * (fabs(q[i]) + fabs(kf[i])))
                    f += kc_fail(kind ? "axpy_f16" : "axpy_f32", o1[i], o0[i]);
        }
        /* conversion and activation quantisation round the same way */
        for (int i = 0; i < d; i++)
            q[i] = i % 5 == 0 ? kc_rand() * 1e-6f : i % 7 == 0 ? kc_rand() * 7e4f : kc_rand();
        kern_f32_to_f16_ref(q, h0, d);
        v->f32_to_f16(q, h1, d);
        if (memcmp(h0, h1, 2 * (size_t)d))
            f += kc_fail("f32_to_f16 differs from the reference", 0, 0);
    }
    /* silu_mul: the exp may differ by a few ulp; huge |a| saturates */
    for (int n = 1; n <= 67; n += 11) {
        float a0[67], a1[67], b[67];
        for (int i = 0; i < n; i++) {
            a0[i] = a1[i] = kc_rand() * (i % 3 == 0 ? 8.0f : i % 7 == 0 ? 60.0f : 1.0f);
            b[i] = kc_rand();
        }
        a0[0] = a1[0] = n > 30 ? -120.0f : 95.0f;
        kern_silu_mul(a0, b, n);
        v->silu_mul(a1, b, n);
        for (int i = 0; i < n; i++)
            if (fabs(a0[i] - a1[i]) > 1e-6 * fabs(a0[i]) + 1e-30)
                f += kc_fail("silu_mul", a1[i], a0[i]);
    }
    /* rmsnorm (double sums in another order) and rope (the same products;
     * a compiler may fuse them in the reference) */
    static const int ns[] = {1, 7, 16, 100, 128, 1030};
    for (int ni = 0; ni < 6; ni++) {
        int n = ns[ni];
        float x[1030], w[1030], o0[1030], o1[1030], cs[515], sn[515];
        for (int i = 0; i < n; i++) {
            x[i] = kc_rand() * (i % 9 == 0 ? 30.0f : 1.0f);
            w[i] = kc_rand();
        }
        kern_rmsnorm(x, w, n, 1e-6f, o0);
        v->rmsnorm(x, w, n, 1e-6f, o1);
        for (int i = 0; i < n; i++)
            if (fabs(o0[i] - o1[i]) > 1e-6 * fabs(o0[i]) + 1e-30)
                f += kc_fail("rmsnorm", o1[i], o0[i]);
        int d = n % 2 ? n + 1 : n;
        for (int i = 0; i < d / 2; i++) {
            cs[i] = cosf(0.37f * (float)i);
            sn[i] = sinf(0.37f * (float)i);
        }
        for (int i = 0; i < d; i++)
            o0[i] = o1[i] = kc_rand();
        kern_rope(o0, cs, sn, d);
        v->rope(o1, cs, sn, d);
        for (int i = 0; i < d; i++)
            if (fabs(o0[i] - o1[i]) > 1e-6)
                f += kc_fail("rope", o1[i], o0[i]);
    }
    for (int k = 32; k <= 256; k += 32) {
        float x[256];
        for (int i = 0; i < k; i++)
            x[i] = kc_rand();
        if (k == 64)
            memset(x, 0, sizeof x); /* an all-zero block */
        kern_quant_act_ref(x, k, a0);
        v->quant_act(x, k, a1);
        if (memcmp(a0, a1, ka_q8_row_bytes(k)))
            f += kc_fail("quant_act differs from the reference", k, 0);
        memset(a1, 0xa5, sizeof a1); /* every byte must be written */
        kern_quant_act_i_ref(x, k, a0);
        v->quant_act_i(x, k, a1);
        if (memcmp(a0, a1, ka_row_bytes(KQ_Q8I, k)))
            f += kc_fail("quant_act_i differs from the reference", k, 0);
    }
    return f;
}

/* Fused attention against kern_attn_ref. Scores may differ by float
 * summation order, e_j <= scale * KC_TOL(d) * sum_i |q_i K_ji|; a softmax
 * moves by at most 2 max_j e_j relative, and the weighted sum adds its own
 * order error, so outputs agree within (2 max e + KC_TOL(n)) of
 * sum_j p_j |V_j|. Scores off by 1e-3 fail. */
static double kc_score_err(const float *q, const uint8_t *k, size_t stride, int kv_f16, int d,
                           int n, float scale)
{
    double worst = 0;
    for (int j = 0; j < n; j++) {
        const uint8_t *r = k + j * stride;
        double sa = 0;
        for (int i = 0; i < d; i++)
            sa += fabs(q[i] * (kv_f16 ? kern_f16_to_f32(((const uint16_t *)r)[i])
                                      : ((const float *)(const void *)r)[i]));
        worst = fmax(worst, scale * KC_TOL(d) * sa);
    }
    return worst;
}

static void kc_fill_kv(uint8_t *row, int kv_f16, int n, int take_abs)
{
    for (int i = 0; i < n; i++) {
        float x = kc_rand();
        if (take_abs && kv_f16)
            ((uint16_t *)row)[i] &= 0x7fff;
        else if (take_abs)
            ((float *)(void *)row)[i] = fabsf(((float *)(void *)row)[i]);
        else if (kv_f16)
            ((uint16_t *)row)[i] = kern_f32_to_f16(x);
        else
            ((float *)(void *)row)[i] = x;
    }
}

/* g heads x nq tokens; token b sees n + b positions. Query heads and
 * tokens are strided apart like the forward pass's rows, with gaps. */
static int kc_attn_case(const struct kern_table *v, void (*fn)(const struct kern_attn *),
                        int kv_f16, int d, int g, int n, int nq)
{
    int nk = n + nq - 1;
    size_t es = kv_f16 ? 2 : 4, stride = (size_t)(d + 3) * es; /* rows not packed */
    size_t qs = (size_t)d + 1, os = (size_t)d + 2;             /* nor are heads */
    size_t qt = (size_t)g * qs + 5, ot = (size_t)g * os + 3, rt = (size_t)g * d;
    uint8_t *k = ax_malloc(stride * nk), *vv = ax_malloc(stride * nk);
    float *q = ax_malloc(4 * (size_t)nq * qt), *o0 = ax_malloc(4 * (size_t)nq * rt),
          *o1 = ax_malloc(4 * (size_t)nq * ot), *pv = ax_malloc(4 * (size_t)nq * rt),
          *s = ax_malloc(4 * (size_t)g * nq * nk);
    int f = 0;
    for (size_t i = 0; i < (size_t)nq * qt; i++)
        q[i] = kc_rand();
    for (int j = 0; j < nk; j++) {
        kc_fill_kv(k + j * stride, kv_f16, d + 3, 0);
        kc_fill_kv(vv + j * stride, kv_f16, d + 3, 0);
    }
    for (size_t i = 0; i < (size_t)nq * ot; i++)
        o1[i] = -777.0f;
    struct kern_attn a = {q, qs, o0,     (size_t)d, k,  vv, stride, kv_f16, n,
                          d, g,  0.125f, s,         nq, qt, rt,     NULL};
    kern_attn_ref(&a);
    a.out = o1;
    a.out_stride = os;
    a.out_tstride = ot;
    float *work = aligned_alloc(64, (kern_attn_block_floats(d) * 4 + 63) / 64 * 64);
    for (size_t i = 0; i < kern_attn_block_floats(d); i++)
        work[i] = NAN; /* nothing may read what it did not write */
    a.work = work;
    fn(&a);
    free(work);
    a.work = NULL;
    /* sum_j p_j |V_j| per output: the reference on |V| */
    for (int j = 0; j < nk; j++)
        kc_fill_kv(vv + j * stride, kv_f16, d + 3, 1);
    a.out = pv;
    a.out_stride = (size_t)d;
    a.out_tstride = rt;
    kern_attn_ref(&a);
    for (int b = 0; b < nq && !f; b++)
        for (int h = 0; h < g && !f; h++) {
            double rel =
                2 * kc_score_err(q + b * qt + h * qs, k, stride, kv_f16, d, n + b, 0.125f) +
                KC_TOL(n + b);
            const float *want = o0 + b * rt + h * d, *tv = pv + b * rt + h * d;
            for (int i = 0; i < (int)os; i++) { /* gaps past d stay untouched */
                float got = o1[b * ot + h * os + i], w = i < d ? want[i] : -777.0f;
                double tol = i < d ? rel * tv[i] + 1e-30 : 0;
                if (fabs(got - w) > tol) {
                    char what[112];
                    snprintf(what, sizeof what,
                             "%s attn f16 %d d %d g %d n %d nq %d (token %d head %d col %d)",
                             v->name, kv_f16, d, g, n, nq, b, h, i);
                    f += kc_fail(what, got, w);
                    break;
                }
            }
        }
    ax_free(k);
    ax_free(vv);
    ax_free(q);
    ax_free(o0);
    ax_free(o1);
    ax_free(pv);
    ax_free(s);
    return f;
}

static int kc_attn(const struct kern_table *v)
{
    static const int ds[] = {1, 7, 16, 64, 100, 128, 130, 256};
    static const int gs[] = {1, 2, 3, 4, 5, 8};
    static const int ns[] = {1, 2, 17, 33, 100};
    static const int nqs[] = {1, 2, 3, 4, 7};
    int f = 0;
    if (!v->attn) /* optional entry */
        return 0;
    for (int kv_f16 = 0; kv_f16 < 2; kv_f16++)
        for (int di = 0; di < 8; di++)
            for (int gi = 0; gi < 6; gi++)
                for (int ni = 0; ni < 5; ni++)
                    for (int qi = 0; qi < 5; qi++)
                        f += kc_attn_case(v, v->attn, kv_f16, ds[di], gs[gi], ns[ni], nqs[qi]);
    return f;
}

/* attn_block: up to KAB_LANES / g tokens of g heads (g = 1, 2, 4), over
 * one and several blocks of positions */
static int kc_attn_block(const struct kern_table *v)
{
    static const int ds[] = {1, 7, 16, 64, 128, 130};
    static const int gs[] = {1, 2, 4};
    static const int ns[] = {1, 2, 63, 64, 65, 200};
    int f = 0;
    if (!v->attn_block)
        return 0;
    for (int kv_f16 = 0; kv_f16 < 2; kv_f16++)
        for (int di = 0; di < 6; di++)
            for (int gi = 0; gi < 3; gi++)
                for (int ni = 0; ni < 6; ni++) {
                    int T = KAB_LANES / gs[gi];
                    int nqs[] = {1, 5, T - 1, T};
                    for (int qi = 0; qi < 4; qi++)
                        f +=
                            kc_attn_case(v, v->attn_block, kv_f16, ds[di], gs[gi], ns[ni], nqs[qi]);
                }
    return f;
}

static int kc_variant(const struct kern_table *v)
{
    return kc_small(v) + kc_mm(v) + kc_mm_bf16_act(v) + kc_mm_panel(v) + kc_mm_split(v) +
           kc_attn(v) + kc_attn_block(v);
}

#endif
