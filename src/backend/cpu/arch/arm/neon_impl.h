/* neon_impl.h - the NEON kernels, included by neon.c (ARM_DOTPROD 0) and
 * dotprod.c (ARM_DOTPROD 1, built with +dotprod), which differ only in the
 * int8 block dot: widening multiplies (vmull_s8, exact in int16 since
 * |codes| <= 127 and two products are summed) or SDOT. Same results as the
 * scalar references in kernels.c up to float summation order. */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/arch/arm/arm.h"
#include "backend/cpu/arch/expf_poly.h"

#define AI static inline __attribute__((always_inline))

AI const uint8_t *wrow(const struct kern_mm *a, int r) { return a->w + (size_t)r * a->w_stride; }
AI const uint8_t *xrow(const struct kern_mm *a, int t)
{
    return (const uint8_t *)a->x + (size_t)t * a->x_stride;
}

AI float h2f(uint16_t h)
{
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}

/* ---- float weights ----------------------------------------------------- */

enum wt { W_F32, W_BF16, W_F16 };

AI float32x4_t load4(enum wt wt, const uint8_t *row, int i)
{
    switch (wt) {
    case W_F32: return vld1q_f32((const float *)(const void *)row + i);
    case W_BF16:
        return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)row + i), 16));
    case W_F16:
        return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)row + i)));
    }
    return vdupq_n_f32(0);
}

AI float load1(enum wt wt, const uint8_t *row, int i)
{
    switch (wt) {
    case W_F32: return ((const float *)(const void *)row)[i];
    case W_BF16: {
        uint32_t u = (uint32_t)((const uint16_t *)row)[i] << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    case W_F16: return h2f(((const uint16_t *)row)[i]);
    }
    return 0;
}

AI void ftile(const struct kern_mm *a, enum wt wt, int r, int t, int R, int T)
{
    float32x4_t acc[4][4];
    const uint8_t *w[4];
    const float *x[4];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
        w[i] = wrow(a, r + i);
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            acc[i][j] = vdupq_n_f32(0);
    }
#pragma GCC unroll 4
    for (int j = 0; j < T; j++)
        x[j] = (const float *)(const void *)xrow(a, t + j);
    int k4 = a->k & ~3;
    for (int e = 0; e < k4; e += 4) {
        float32x4_t xv[4];
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            xv[j] = vld1q_f32(x[j] + e);
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            float32x4_t wv = load4(wt, w[i], e);
#pragma GCC unroll 4
            for (int j = 0; j < T; j++)
                acc[i][j] = vfmaq_f32(acc[i][j], wv, xv[j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int j = 0; j < T; j++) {
            float s = vaddvq_f32(acc[i][j]);
            for (int e = k4; e < a->k; e++)
                s += load1(wt, w[i], e) * x[j][e];
            a->y[(size_t)(t + j) * a->y_stride + (size_t)(r + i)] = s;
        }
}

AI void fmm(const struct kern_mm *a, enum wt wt, int r0, int r1)
{
    int r = r0;
    if (a->n == 1)
        for (; r + 4 <= r1; r += 4)
            ftile(a, wt, r, 0, 4, 1);
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

static void mm_f32(const struct kern_mm *a, int r0, int r1) { fmm(a, W_F32, r0, r1); }
static void mm_bf16(const struct kern_mm *a, int r0, int r1) { fmm(a, W_BF16, r0, r1); }
static void mm_f16(const struct kern_mm *a, int r0, int r1) { fmm(a, W_F16, r0, r1); }

/* ---- quantised weights ------------------------------------------------- */

/* 32 codes of one block as two int8x16 halves (elements 0..15, 16..31). */
AI void wblock(int q4, const uint8_t *codes, int b, int8x16_t *w0, int8x16_t *w1)
{
    if (!q4) {
        *w0 = vld1q_s8((const int8_t *)codes + 32 * b);
        *w1 = vld1q_s8((const int8_t *)codes + 32 * b + 16);
        return;
    }
    uint8x16_t p = vld1q_u8(codes + 16 * b);
    int8x16_t eight = vdupq_n_s8(8);
    *w0 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(p, vdupq_n_u8(0x0f))), eight);
    *w1 = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(p, 4)), eight);
}

AI int32x4_t dot32(int8x16_t w0, int8x16_t w1, int8x16_t x0, int8x16_t x1)
{
#if ARM_DOTPROD
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, x0), w1, x1);
#else
    int16x8_t p0 = vmull_s8(vget_low_s8(w0), vget_low_s8(x0));
    p0 = vmlal_s8(p0, vget_high_s8(w0), vget_high_s8(x0));
    int16x8_t p1 = vmull_s8(vget_low_s8(w1), vget_low_s8(x1));
    p1 = vmlal_s8(p1, vget_high_s8(w1), vget_high_s8(x1));
    return vaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1));
#endif
}

AI void qtile(const struct kern_mm *a, int q4, int r, int t, int R, int T)
{
    int nb = a->k / 32;
    float32x4_t acc[4][4];
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
            acc[i][j] = vdupq_n_f32(0);
    }
#pragma GCC unroll 4
    for (int j = 0; j < T; j++) {
        xd[j] = (const float *)(const void *)xrow(a, t + j);
        xq[j] = (const int8_t *)(xd[j] + nb);
    }
    for (int b = 0; b < nb; b++) {
        int8x16_t x0[4], x1[4];
#pragma GCC unroll 4
        for (int j = 0; j < T; j++) {
            x0[j] = vld1q_s8(xq[j] + 32 * b);
            x1[j] = vld1q_s8(xq[j] + 32 * b + 16);
        }
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            int8x16_t w0, w1;
            wblock(q4, wq[i], b, &w0, &w1);
            float d = h2f(wd[i][b]);
#pragma GCC unroll 4
            for (int j = 0; j < T; j++)
                acc[i][j] = vfmaq_n_f32(acc[i][j], vcvtq_f32_s32(dot32(w0, w1, x0[j], x1[j])),
                                        d * xd[j][b]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            a->y[(size_t)(t + j) * a->y_stride + (size_t)(r + i)] = vaddvq_f32(acc[i][j]);
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

/* vcvtnq rounds to nearest even, as lrintf does: identical codes. */
static void quant_act(const float *x, int k, uint8_t *out)
{
    int nb = k / 32;
    float *d = (float *)(void *)out;
    int8_t *q = (int8_t *)(d + nb);
    for (int b = 0; b < nb; b++) {
        float32x4_t v[8], m = vdupq_n_f32(0);
        for (int i = 0; i < 8; i++) {
            v[i] = vld1q_f32(x + 32 * b + 4 * i);
            m = vmaxq_f32(m, vabsq_f32(v[i]));
        }
        float amax = vmaxvq_f32(m);
        d[b] = amax / 127.0f;
        float id = amax > 0 ? 127.0f / amax : 0.0f;
        for (int i = 0; i < 8; i += 2) {
            int32x4_t a0 = vcvtnq_s32_f32(vmulq_n_f32(v[i], id));
            int32x4_t a1 = vcvtnq_s32_f32(vmulq_n_f32(v[i + 1], id));
            int16x8_t h = vcombine_s16(vqmovn_s32(a0), vqmovn_s32(a1));
            vst1_s8(q + 32 * b + 4 * i, vqmovn_s16(h));
        }
    }
}

/* ---- KV cache helpers -------------------------------------------------- */

static float dot_f16(const float *q, const uint16_t *k, int d)
{
    float32x4_t a0 = vdupq_n_f32(0), a1 = vdupq_n_f32(0);
    int i = 0;
    for (; i + 8 <= d; i += 8) {
        a0 = vfmaq_f32(a0, vld1q_f32(q + i), vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(k + i))));
        a1 = vfmaq_f32(a1, vld1q_f32(q + i + 4),
                       vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(k + i + 4))));
    }
    float s = vaddvq_f32(vaddq_f32(a0, a1));
    for (; i < d; i++)
        s += q[i] * h2f(k[i]);
    return s;
}

static float dot_f32(const float *q, const float *k, int d)
{
    float32x4_t a0 = vdupq_n_f32(0), a1 = vdupq_n_f32(0);
    int i = 0;
    for (; i + 8 <= d; i += 8) {
        a0 = vfmaq_f32(a0, vld1q_f32(q + i), vld1q_f32(k + i));
        a1 = vfmaq_f32(a1, vld1q_f32(q + i + 4), vld1q_f32(k + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(a0, a1));
    for (; i < d; i++)
        s += q[i] * k[i];
    return s;
}

static void axpy_f16(float a, const uint16_t *v, float *out, int d)
{
    int i = 0;
    for (; i + 4 <= d; i += 4) {
        float32x4_t x = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(v + i)));
        vst1q_f32(out + i, vfmaq_n_f32(vld1q_f32(out + i), x, a));
    }
    for (; i < d; i++)
        out[i] += a * h2f(v[i]);
}

static void axpy_f32(float a, const float *v, float *out, int d)
{
    int i = 0;
    for (; i + 4 <= d; i += 4)
        vst1q_f32(out + i, vfmaq_n_f32(vld1q_f32(out + i), vld1q_f32(v + i), a));
    for (; i < d; i++)
        out[i] += a * v[i];
}

static void f32_to_f16(const float *x, uint16_t *out, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4)
        vst1_u16(out + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    for (; i < n; i++)
        out[i] = vget_lane_u16(vreinterpret_u16_f16(vcvt_f16_f32(vdupq_n_f32(x[i]))), 0);
}

/* ---- per-element steps ------------------------------------------------- */

/* e^x on 4 floats as arch/expf_poly.h describes, times 2^n built in two
 * halves so that n down to -127 still gives a normal factor each. */
AI float32x4_t exp4(float32x4_t x)
{
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-EXPF_XMAX)), vdupq_n_f32(EXPF_XMAX));
    float32x4_t n = vrndnq_f32(vmulq_n_f32(x, EXPF_LOG2E));
    float32x4_t r = vfmsq_n_f32(x, n, EXPF_LN2_HI);
    r = vfmsq_n_f32(r, n, EXPF_LN2_LO);
    float32x4_t p = vdupq_n_f32(EXPF_P0);
    p = vfmaq_f32(vdupq_n_f32(EXPF_P1), p, r);
    p = vfmaq_f32(vdupq_n_f32(EXPF_P2), p, r);
    p = vfmaq_f32(vdupq_n_f32(EXPF_P3), p, r);
    p = vfmaq_f32(vdupq_n_f32(EXPF_P4), p, r);
    p = vfmaq_f32(vdupq_n_f32(EXPF_P5), p, r);
    p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
    int32x4_t ni = vcvtq_s32_f32(n), n1 = vshrq_n_s32(ni, 1), n2 = vsubq_s32(ni, n1);
    int32x4_t bias = vdupq_n_s32(127);
    float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
    float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23));
    return vmulq_f32(vmulq_f32(p, s1), s2);
}

/* kern_silu_mul without a libm call per element (every token and layer
 * goes through it: intermediate_size values each). */
static void silu_mul(float *a, const float *b, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t x = vld1q_f32(a + i);
        float32x4_t s = vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), exp4(vnegq_f32(x))));
        vst1q_f32(a + i, vmulq_f32(s, vld1q_f32(b + i)));
    }
    if (i < n)
        kern_silu_mul(a + i, b + i, n - i);
}

/* kern_rmsnorm: squares summed in double (8 lanes), scaled in float in the
 * reference's order. */
static void rmsnorm(const float *x, const float *w, int n, float eps, float *out)
{
    float64x2_t s[4] = {vdupq_n_f64(0), vdupq_n_f64(0), vdupq_n_f64(0), vdupq_n_f64(0)};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t a = vld1q_f32(x + i), b = vld1q_f32(x + i + 4);
        float64x2_t d[4] = {vcvt_f64_f32(vget_low_f32(a)), vcvt_high_f64_f32(a),
                            vcvt_f64_f32(vget_low_f32(b)), vcvt_high_f64_f32(b)};
        for (int j = 0; j < 4; j++)
            s[j] = vfmaq_f64(s[j], d[j], d[j]);
    }
    double ss = vaddvq_f64(vaddq_f64(vaddq_f64(s[0], s[1]), vaddq_f64(s[2], s[3])));
    for (; i < n; i++)
        ss += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(ss / n + eps));
    for (i = 0; i + 4 <= n; i += 4)
        vst1q_f32(out + i, vmulq_f32(vld1q_f32(w + i), vmulq_n_f32(vld1q_f32(x + i), r)));
    for (; i < n; i++)
        out[i] = w[i] * (x[i] * r);
}

/* kern_rope (rotate_half: element i pairs with i + d/2), 4 pairs at once */
static void rope(float *x, const float *cos_t, const float *sin_t, int d)
{
    int h = d / 2, i = 0;
    for (; i + 4 <= h; i += 4) {
        float32x4_t a = vld1q_f32(x + i), b = vld1q_f32(x + i + h);
        float32x4_t c = vld1q_f32(cos_t + i), s = vld1q_f32(sin_t + i);
        vst1q_f32(x + i, vsubq_f32(vmulq_f32(a, c), vmulq_f32(b, s)));
        vst1q_f32(x + i + h, vaddq_f32(vmulq_f32(b, c), vmulq_f32(a, s)));
    }
    for (; i < h; i++) {
        float a = x[i], b = x[i + h];
        x[i] = a * cos_t[i] - b * sin_t[i];
        x[i + h] = b * cos_t[i] + a * sin_t[i];
    }
}

static void fill(struct kern_table *t, const char *name)
{
    t->name = name;
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
