/* kernels.c - scalar reference kernels: the specification of every
 * dispatched kernel and the oracle the SIMD variants are tested against,
 * plus the small portable ops (RMSNorm, RoPE, SiLU, softmax) and the
 * load-time conversions and quantisers. Formats: see kernels.h.
 *
 * Written for clarity, not speed: one accumulator, in order. */
#include "backend/cpu/kernels.h"
#include "util/mem.h"

#include <math.h>
#include <string.h>

/* ---- formats ----------------------------------------------------------- */

int kq_groups(int k)
{
    return (k / KQ_BLOCK + KQ_GROUP - 1) / KQ_GROUP;
}

const char *kq_name(enum kq_type t)
{
    switch (t) {
    case KQ_F32:
        return "f32";
    case KQ_BF16:
        return "bf16";
    case KQ_F16:
        return "f16";
    case KQ_Q8:
        return "q8";
    case KQ_Q4:
        return "q4";
    case KQ_Q8I:
        return "q8i";
    case KQ_Q4I:
        return "q4i";
    case KQ_COUNT:
        break;
    }
    return "?";
}

size_t kq_row_bytes(enum kq_type t, int k)
{
    size_t n = (size_t)k;
    switch (t) {
    case KQ_F32:
        return 4 * n;
    case KQ_BF16:
    case KQ_F16:
        return 2 * n;
    case KQ_Q8:
        return 2 * (n / KQ_BLOCK) + n;
    case KQ_Q4:
        return 2 * (n / KQ_BLOCK) + n / 2;
    case KQ_Q8I:
        return (size_t)kq_groups(k) * (2 * KQ_GROUP + KQ_GROUP * KQ_BLOCK);
    case KQ_Q4I:
        return (size_t)kq_groups(k) * (2 * KQ_GROUP + KQ_GROUP * KQ_BLOCK / 2);
    case KQ_COUNT:
        break;
    }
    return 0;
}

int kq_is_quant(enum kq_type t)
{
    return t == KQ_Q8 || t == KQ_Q4 || t == KQ_Q8I || t == KQ_Q4I;
}

static int is_interleaved(enum kq_type t)
{
    return t == KQ_Q8I || t == KQ_Q4I;
}

size_t ka_q8_row_bytes(int k)
{
    return 4 * ((size_t)k / KQ_BLOCK) + (size_t)k;
}

size_t ka_row_bytes(enum kq_type t, int k)
{
    if (is_interleaved(t))
        return (size_t)kq_groups(k) * (8 * KQ_GROUP + KQ_GROUP * KQ_BLOCK);
    return kq_is_quant(t) ? ka_q8_row_bytes(k) : 4 * (size_t)k;
}

/* Byte of element e (0..31) of block l (0..15) within a group's codes, and
 * for Q4I which nibble holds it (0 low, 1 high). See kernels.h. */
static size_t q8i_at(int l, int e)
{
    return 64 * (size_t)(e / 4) + 4 * (size_t)l + (size_t)(e % 4);
}
static size_t q4i_at(int l, int e)
{
    return 64 * (size_t)(e / 8) + 4 * (size_t)l + (size_t)(e % 4);
}
static int q4i_high(int e)
{
    return e / 4 % 2;
}

/* ---- scalar conversions ------------------------------------------------ */

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

float kern_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 is exact in f32 */
        float f = (float)man * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    if (exp == 31)
        return bits_f32(sign | 0x7f800000 | (man << 13));
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t kern_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffff;
    if (ax >= 0x7f800000) /* inf or nan (nan stays quiet nan) */
        return sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0);
    if (ax >= 0x477ff000) /* >= 65520 rounds to infinity */
        return sign | 0x7c00;
    if (ax < 0x38800000) { /* below the smallest normal half: 2^-14 */
        /* the value in units of 2^-24, rounded to nearest even */
        return sign | (uint16_t)lrintf(bits_f32(ax) * 16777216.0f);
    }
    uint32_t r = ax - (112u << 23); /* rebias exponent 127 -> 15 */
    uint32_t h = r >> 13, rem = r & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++;
    return sign | (uint16_t)h;
}

float kern_bf16_to_f32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

uint16_t kern_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* ---- matrix products --------------------------------------------------- */

static const uint8_t *w_row(const struct kern_mm *a, int r)
{
    return a->w + (size_t)r * a->w_stride;
}

static const uint8_t *x_row(const struct kern_mm *a, int t)
{
    return (const uint8_t *)a->x + (size_t)t * a->x_stride;
}

void kern_mm_ref_f32(const struct kern_mm *a, int r0, int r1)
{
    for (int r = r0; r < r1; r++) {
        const float *w = (const float *)(const void *)w_row(a, r);
        for (int t = 0; t < a->n; t++) {
            const float *x = (const float *)(const void *)x_row(a, t);
            float s = 0;
            for (int i = 0; i < a->k; i++)
                s += w[i] * x[i];
            a->y[(size_t)t * a->y_stride + r] = s;
        }
    }
}

/* bf16 weights; round_x: activations rounded to bf16 first (--bf16-act) */
static void mm_ref_bf16(const struct kern_mm *a, int r0, int r1, int round_x)
{
    for (int r = r0; r < r1; r++) {
        const uint16_t *w = (const uint16_t *)w_row(a, r);
        for (int t = 0; t < a->n; t++) {
            const float *x = (const float *)(const void *)x_row(a, t);
            float s = 0;
            for (int i = 0; i < a->k; i++)
                s += kern_bf16_to_f32(w[i]) *
                     (round_x ? kern_bf16_to_f32(kern_f32_to_bf16(x[i])) : x[i]);
            a->y[(size_t)t * a->y_stride + r] = s;
        }
    }
}

void kern_mm_ref_bf16(const struct kern_mm *a, int r0, int r1)
{
    mm_ref_bf16(a, r0, r1, 0);
}

void kern_mm_ref_bf16_act(const struct kern_mm *a, int r0, int r1)
{
    mm_ref_bf16(a, r0, r1, 1);
}

void kern_mm_ref_f16(const struct kern_mm *a, int r0, int r1)
{
    for (int r = r0; r < r1; r++) {
        const uint16_t *w = (const uint16_t *)w_row(a, r);
        for (int t = 0; t < a->n; t++) {
            const float *x = (const float *)(const void *)x_row(a, t);
            float s = 0;
            for (int i = 0; i < a->k; i++)
                s += kern_f16_to_f32(w[i]) * x[i];
            a->y[(size_t)t * a->y_stride + r] = s;
        }
    }
}

/* Integer dot products per block, scaled once per block, as Q8_0 does. */
void kern_mm_ref_q8(const struct kern_mm *a, int r0, int r1)
{
    int nb = a->k / KQ_BLOCK;
    for (int r = r0; r < r1; r++) {
        const uint16_t *wd = (const uint16_t *)w_row(a, r);
        const int8_t *wq = (const int8_t *)(wd + nb);
        for (int t = 0; t < a->n; t++) {
            const float *xd = (const float *)(const void *)x_row(a, t);
            const int8_t *xq = (const int8_t *)(xd + nb);
            float s = 0;
            for (int b = 0; b < nb; b++) {
                int32_t is = 0;
                for (int j = 0; j < KQ_BLOCK; j++)
                    is += wq[b * KQ_BLOCK + j] * xq[b * KQ_BLOCK + j];
                s += kern_f16_to_f32(wd[b]) * xd[b] * (float)is;
            }
            a->y[(size_t)t * a->y_stride + r] = s;
        }
    }
}

void kern_mm_ref_q4(const struct kern_mm *a, int r0, int r1)
{
    int nb = a->k / KQ_BLOCK;
    for (int r = r0; r < r1; r++) {
        const uint16_t *wd = (const uint16_t *)w_row(a, r);
        const uint8_t *wp = (const uint8_t *)(wd + nb);
        for (int t = 0; t < a->n; t++) {
            const float *xd = (const float *)(const void *)x_row(a, t);
            const int8_t *xq = (const int8_t *)(xd + nb);
            float s = 0;
            for (int b = 0; b < nb; b++) {
                const uint8_t *p = wp + (size_t)b * 16;
                const int8_t *q = xq + (size_t)b * KQ_BLOCK;
                int32_t is = 0;
                for (int j = 0; j < 16; j++) {
                    is += ((p[j] & 0xf) - 8) * q[j];
                    is += ((p[j] >> 4) - 8) * q[j + 16];
                }
                s += kern_f16_to_f32(wd[b]) * xd[b] * (float)is;
            }
            a->y[(size_t)t * a->y_stride + r] = s;
        }
    }
}

/* The interleaved layouts: the same sums as kern_mm_ref_q8/q4, block by
 * block in the same order, reading each element where the layout puts it. */
static int32_t block_dot_i(int q4, const uint8_t *wg, const int8_t *xg, int l)
{
    int32_t is = 0;
    for (int e = 0; e < KQ_BLOCK; e++) {
        int w = q4 ? (wg[q4i_at(l, e)] >> (4 * q4i_high(e)) & 0xf) - 8 : wg[q8i_at(l, e)] - 128;
        is += w * xg[q8i_at(l, e)];
    }
    return is;
}

static void mm_ref_i(const struct kern_mm *a, int q4, int r0, int r1)
{
    int nb = a->k / KQ_BLOCK, ng = kq_groups(a->k);
    size_t gw = q4 ? KQ_GROUP * KQ_BLOCK / 2 : KQ_GROUP * KQ_BLOCK;
    for (int r = r0; r < r1; r++) {
        const uint16_t *wd = (const uint16_t *)w_row(a, r);
        const uint8_t *wc = (const uint8_t *)(wd + (size_t)KQ_GROUP * ng);
        for (int t = 0; t < a->n; t++) {
            const float *xd = (const float *)(const void *)x_row(a, t);
            const int8_t *xc = (const int8_t *)(xd + 2 * (size_t)KQ_GROUP * ng);
            float s = 0;
            for (int b = 0; b < nb; b++) {
                int g = b / KQ_GROUP, l = b % KQ_GROUP;
                int32_t is = block_dot_i(q4, wc + g * gw, xc + (size_t)g * KQ_GROUP * KQ_BLOCK, l);
                s += kern_f16_to_f32(wd[b]) * xd[b] * (float)is;
            }
            a->y[(size_t)t * a->y_stride + r] = s;
        }
    }
}

void kern_mm_ref_q8i(const struct kern_mm *a, int r0, int r1)
{
    mm_ref_i(a, 0, r0, r1);
}
void kern_mm_ref_q4i(const struct kern_mm *a, int r0, int r1)
{
    mm_ref_i(a, 1, r0, r1);
}

/* ---- quantisers -------------------------------------------------------- */

static float block_amax(const float *x)
{
    float m = 0;
    for (int j = 0; j < KQ_BLOCK; j++) /* as fmaxf (NaN ignored), but vectorisable */
        m = fabsf(x[j]) > m ? fabsf(x[j]) : m;
    return m;
}

/* round(v) clamped to [lo, hi], rounding to nearest even as lrintf does in
 * the default mode, but inline: adding and removing 1.5 * 2^23 leaves the
 * rounded value of any |v| < 2^22. NaN clamps to lo. */
static int round_clamp(float v, int lo, int hi)
{
    v = v >= (float)lo ? v : (float)lo;
    v = v <= (float)hi ? v : (float)hi;
    return (int)((v + 12582912.0f) - 12582912.0f);
}

/* One activation block: scale amax/127, codes rounded to nearest. */
static float quant_act_block(const float *xb, int8_t *q)
{
    float amax = block_amax(xb);
    float id = amax > 0 ? 127.0f / amax : 0.0f;
    for (int j = 0; j < KQ_BLOCK; j++)
        q[j] = (int8_t)round_clamp(xb[j] * id, -127, 127);
    return amax / 127.0f;
}

void kern_quant_act_ref(const float *x, int k, uint8_t *out)
{
    int nb = k / KQ_BLOCK;
    float *d = (float *)(void *)out;
    int8_t *q = (int8_t *)(d + nb);
    for (int b = 0; b < nb; b++)
        d[b] = quant_act_block(x + (size_t)b * KQ_BLOCK, q + (size_t)b * KQ_BLOCK);
}

void kern_quant_act_i_ref(const float *x, int k, uint8_t *out)
{
    int nb = k / KQ_BLOCK, ng = kq_groups(k);
    memset(out, 0, ka_row_bytes(KQ_Q8I, k));
    float *d = (float *)(void *)out;
    int32_t *sum = (int32_t *)(void *)(d + (size_t)KQ_GROUP * ng);
    int8_t *codes = (int8_t *)(sum + (size_t)KQ_GROUP * ng);
    for (int b = 0; b < nb; b++) {
        int8_t q[KQ_BLOCK];
        int8_t *g = codes + (size_t)(b / KQ_GROUP) * KQ_GROUP * KQ_BLOCK;
        d[b] = quant_act_block(x + (size_t)b * KQ_BLOCK, q);
        for (int e = 0; e < KQ_BLOCK; e++) {
            g[q8i_at(b % KQ_GROUP, e)] = q[e];
            sum[b] += q[e];
        }
    }
}

/* One Q8 weight block. The scale is stored as f16, so quantise with the
 * rounded scale: the codes then reproduce x as closely as that scale
 * allows. */
static uint16_t quant_q8_block(const float *xb, int8_t *q)
{
    uint16_t d = kern_f32_to_f16(block_amax(xb) / 127.0f);
    float ds = kern_f16_to_f32(d);
    float id = ds > 0 ? 1.0f / ds : 0.0f;
    for (int j = 0; j < KQ_BLOCK; j++)
        q[j] = (int8_t)round_clamp(xb[j] * id, -127, 127);
    return d;
}

/* One Q4 weight block as nibbles 0..15. The element of largest magnitude
 * maps to code 0 (value -8 * d), which uses the asymmetric range -8..7
 * fully, as Q4_0 does. */
static uint16_t quant_q4_block(const float *xb, uint8_t *n)
{
    /* the first element of the largest magnitude, with its sign */
    float amax = block_amax(xb), mx = 0;
    for (int j = 0; j < KQ_BLOCK; j++)
        if (fabsf(xb[j]) == amax) {
            mx = xb[j];
            break;
        }
    uint16_t d = kern_f32_to_f16(mx / -8.0f);
    float ds = kern_f16_to_f32(d);
    float id = ds != 0 ? 1.0f / ds : 0.0f;
    for (int j = 0; j < KQ_BLOCK; j++)
        n[j] = (uint8_t)(round_clamp(xb[j] * id, -8, 7) + 8);
    return d;
}

void kern_quant_row_q8(const float *x, int k, uint8_t *out)
{
    int nb = k / KQ_BLOCK;
    uint16_t *d = (uint16_t *)out;
    int8_t *q = (int8_t *)(d + nb);
    for (int b = 0; b < nb; b++)
        d[b] = quant_q8_block(x + (size_t)b * KQ_BLOCK, q + (size_t)b * KQ_BLOCK);
}

void kern_quant_row_q4(const float *x, int k, uint8_t *out)
{
    int nb = k / KQ_BLOCK;
    uint16_t *d = (uint16_t *)out;
    uint8_t *p = (uint8_t *)(d + nb);
    for (int b = 0; b < nb; b++) {
        uint8_t n[KQ_BLOCK];
        d[b] = quant_q4_block(x + (size_t)b * KQ_BLOCK, n);
        for (int j = 0; j < 16; j++)
            p[b * 16 + j] = (uint8_t)(n[j] | n[j + 16] << 4);
    }
}

/* Interleaved rows: padding blocks get scale 0 and the code of value 0. */
static void quant_row_i(int q4, const float *x, int k, uint8_t *out)
{
    int nb = k / KQ_BLOCK, ng = kq_groups(k);
    size_t gw = q4 ? KQ_GROUP * KQ_BLOCK / 2 : KQ_GROUP * KQ_BLOCK;
    uint16_t *d = (uint16_t *)out;
    uint8_t *codes = (uint8_t *)(d + (size_t)KQ_GROUP * ng);
    memset(d, 0, 2 * (size_t)KQ_GROUP * ng);
    memset(codes, q4 ? 0x88 : 0x80, gw * ng);
    for (int b = 0; b < nb; b++) {
        uint8_t *g = codes + (size_t)(b / KQ_GROUP) * gw;
        int l = b % KQ_GROUP;
        const float *xb = x + (size_t)b * KQ_BLOCK;
        if (q4) {
            uint8_t n[KQ_BLOCK];
            d[b] = quant_q4_block(xb, n);
            for (int e = 0; e < KQ_BLOCK; e++) {
                uint8_t *p = g + q4i_at(l, e);
                int sh = 4 * q4i_high(e);
                *p = (uint8_t)((*p & ~(0xf << sh)) | n[e] << sh);
            }
        } else {
            int8_t q[KQ_BLOCK];
            d[b] = quant_q8_block(xb, q);
            for (int e = 0; e < KQ_BLOCK; e++)
                g[q8i_at(l, e)] = (uint8_t)(q[e] + 128);
        }
    }
}

void kern_quant_row(enum kq_type t, const float *x, int k, uint8_t *out)
{
    switch (t) {
    case KQ_Q8:
        kern_quant_row_q8(x, k, out);
        return;
    case KQ_Q4:
        kern_quant_row_q4(x, k, out);
        return;
    case KQ_Q8I:
        quant_row_i(0, x, k, out);
        return;
    case KQ_Q4I:
        quant_row_i(1, x, k, out);
        return;
    default:
        return;
    }
}

kern_quant_fn kern_act_quantiser(const struct kern_table *kt, enum kq_type t)
{
    if (!kq_is_quant(t))
        return NULL;
    return is_interleaved(t) ? kt->quant_act_i : kt->quant_act;
}

void kern_row_to_f32(enum kq_type t, const uint8_t *row, int k, float *out)
{
    const uint16_t *h = (const uint16_t *)row;
    int nb = k / KQ_BLOCK;
    switch (t) {
    case KQ_F32:
        memcpy(out, row, (size_t)k * 4);
        return;
    case KQ_BF16:
        for (int i = 0; i < k; i++)
            out[i] = kern_bf16_to_f32(h[i]);
        return;
    case KQ_F16:
        for (int i = 0; i < k; i++)
            out[i] = kern_f16_to_f32(h[i]);
        return;
    case KQ_Q8:
        for (int i = 0; i < k; i++)
            out[i] = kern_f16_to_f32(h[i / KQ_BLOCK]) * (float)((const int8_t *)(h + nb))[i];
        return;
    case KQ_Q4:
        for (int b = 0; b < nb; b++) {
            const uint8_t *p = (const uint8_t *)(h + nb) + (size_t)b * 16;
            float d = kern_f16_to_f32(h[b]);
            for (int j = 0; j < 16; j++) {
                out[b * KQ_BLOCK + j] = d * (float)((p[j] & 0xf) - 8);
                out[b * KQ_BLOCK + j + 16] = d * (float)((p[j] >> 4) - 8);
            }
        }
        return;
    case KQ_Q8I:
    case KQ_Q4I: {
        int q4 = t == KQ_Q4I, ng = kq_groups(k);
        size_t gw = q4 ? KQ_GROUP * KQ_BLOCK / 2 : KQ_GROUP * KQ_BLOCK;
        const uint8_t *codes = (const uint8_t *)(h + (size_t)KQ_GROUP * ng);
        for (int i = 0; i < k; i++) {
            int b = i / KQ_BLOCK, e = i % KQ_BLOCK, l = b % KQ_GROUP;
            const uint8_t *g = codes + (size_t)(b / KQ_GROUP) * gw;
            int v = q4 ? (g[q4i_at(l, e)] >> (4 * q4i_high(e)) & 0xf) - 8 : g[q8i_at(l, e)] - 128;
            out[i] = kern_f16_to_f32(h[b]) * (float)v;
        }
        return;
    }
    case KQ_COUNT:
        break;
    }
}

void kern_act_to_f32(enum kq_type t, const uint8_t *row, int k, float *out)
{
    const float *d = (const float *)(const void *)row;
    int nb = k / KQ_BLOCK, ng = kq_groups(k);
    if (!is_interleaved(t)) {
        const int8_t *q = (const int8_t *)(d + nb);
        for (int i = 0; i < k; i++)
            out[i] = d[i / KQ_BLOCK] * (float)q[i];
        return;
    }
    const int8_t *codes = (const int8_t *)(d + 2 * (size_t)KQ_GROUP * ng);
    for (int i = 0; i < k; i++) {
        int b = i / KQ_BLOCK;
        const int8_t *g = codes + (size_t)(b / KQ_GROUP) * KQ_GROUP * KQ_BLOCK;
        out[i] = d[b] * (float)g[q8i_at(b % KQ_GROUP, i % KQ_BLOCK)];
    }
}

/* ---- KV cache helpers -------------------------------------------------- */

float kern_dot_f16_ref(const float *q, const uint16_t *k, int d)
{
    float s = 0;
    for (int i = 0; i < d; i++)
        s += q[i] * kern_f16_to_f32(k[i]);
    return s;
}

float kern_dot_f32_ref(const float *q, const float *k, int d)
{
    float s = 0;
    for (int i = 0; i < d; i++)
        s += q[i] * k[i];
    return s;
}

void kern_axpy_f16_ref(float a, const uint16_t *v, float *out, int d)
{
    for (int i = 0; i < d; i++)
        out[i] += a * kern_f16_to_f32(v[i]);
}

void kern_axpy_f32_ref(float a, const float *v, float *out, int d)
{
    for (int i = 0; i < d; i++)
        out[i] += a * v[i];
}

void kern_f32_to_f16_ref(const float *x, uint16_t *out, int n)
{
    for (int i = 0; i < n; i++)
        out[i] = kern_f32_to_f16(x[i]);
}

/* ---- portable ops ------------------------------------------------------ */

/* HF Qwen3RMSNorm: in f32, x * rsqrt(mean(x^2) + eps), then * weight. The
 * sum of squares is kept in double so long rows lose nothing. */
void kern_rmsnorm(const float *x, const float *w, int n, float eps, float *out)
{
    /* eight running sums: one chain of dependent double adds took 4 cycles
     * an element (a prefill runs ~60 rows per token through here) */
    double p[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            p[j] += (double)x[i + j] * x[i + j];
    double ss = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
    for (; i < n; i++)
        ss += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++)
        out[i] = w[i] * (x[i] * r);
}

void kern_silu_mul(float *a, const float *b, int n)
{
    for (int i = 0; i < n; i++)
        a[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
}

/* rotate_half: element i pairs with i + d/2. */
void kern_rope(float *x, const float *cos_t, const float *sin_t, int d)
{
    int h = d / 2;
    for (int i = 0; i < h; i++) {
        float a = x[i], b = x[i + h];
        x[i] = a * cos_t[i] - b * sin_t[i];
        x[i + h] = b * cos_t[i] + a * sin_t[i];
    }
}

void kern_softmax(float *x, int n)
{
    float m = x[0];
    for (int i = 1; i < n; i++)
        m = fmaxf(m, x[i]);
    float s = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - m);
        s += x[i];
    }
    float is = 1.0f / s;
    for (int i = 0; i < n; i++)
        x[i] *= is;
}

/* ---- attention --------------------------------------------------------- */

void kern_attn_composed(const struct kern_table *kt, const struct kern_attn *a)
{
    for (int b = 0; b < a->nq; b++)
        for (int h = 0; h < a->g; h++) {
            const float *q = a->q + (size_t)b * a->q_tstride + (size_t)h * a->q_stride;
            float *out = a->out + (size_t)b * a->out_tstride + (size_t)h * a->out_stride;
            float *s = a->s;
            int n = a->n + b;
            for (int j = 0; j < n; j++) {
                const uint8_t *k = a->k + (size_t)j * a->stride;
                s[j] =
                    a->scale * (a->kv_f16 ? kt->dot_f16(q, (const uint16_t *)k, a->d)
                                          : kt->dot_f32(q, (const float *)(const void *)k, a->d));
            }
            kern_softmax(s, n);
            memset(out, 0, (size_t)a->d * sizeof(float));
            for (int j = 0; j < n; j++) {
                const uint8_t *v = a->v + (size_t)j * a->stride;
                if (a->kv_f16)
                    kt->axpy_f16(s[j], (const uint16_t *)v, out, a->d);
                else
                    kt->axpy_f32(s[j], (const float *)(const void *)v, out, a->d);
            }
        }
}

void kern_attn_ref(const struct kern_attn *a)
{
    const struct kern_table ref = {.dot_f16 = kern_dot_f16_ref,
                                   .dot_f32 = kern_dot_f32_ref,
                                   .axpy_f16 = kern_axpy_f16_ref,
                                   .axpy_f32 = kern_axpy_f32_ref};
    kern_attn_composed(&ref, a);
}

/* ---- table ------------------------------------------------------------- */

size_t kern_attn_block_floats(int d)
{
    /* queries and output sums (d x lanes), a block's scores (positions x
     * lanes) */
    return 2 * (size_t)d * KAB_LANES + (size_t)KAB_POS * KAB_LANES;
}

size_t kp_floats(int n, int k)
{
    return (size_t)((n + KP_TOKENS - 1) / KP_TOKENS) * KP_TOKENS * (size_t)k;
}

void kern_panel_ref(const float *x, size_t x_stride, int n, int k, int t0, float *xp)
{
    for (int t = t0; t < t0 + 16; t++) {
        float *out = xp + (size_t)(t / KP_TOKENS) * KP_TOKENS * (size_t)k + t % KP_TOKENS;
        const float *row =
            t < n ? (const float *)(const void *)((const char *)x + (size_t)t * x_stride)
                  : NULL; /* rows past n do not exist */
        for (int i = 0; i < k; i++)
            out[(size_t)i * KP_TOKENS] = row ? row[i] : 0.0f;
    }
}

/* ---- split panels (kernels.h) ----------------------------------------- */

size_t ks_group_bytes(int k)
{
    return ((size_t)k / 2 + (size_t)k / 4 + 1) * KP_TOKENS * 4;
}

size_t ks_bytes(int n, int k)
{
    return (size_t)((n + KP_TOKENS - 1) / KP_TOKENS) * ks_group_bytes(k);
}

size_t ks_wq_bytes(int k)
{
    return (size_t)KS_ROWS * (size_t)k;
}

void kern_split_rows_ref(const uint8_t *w, size_t w_stride, int k, int r0, int r1,
                         struct ks_row *out)
{
    for (int r = r0; r < r1; r++) {
        const uint16_t *row = (const uint16_t *)(const void *)(w + (size_t)r * w_stride);
        float mw = 0;
        for (int i = 0; i < k; i++)
            mw = fmaxf(mw, fabsf(kern_bf16_to_f32(row[i])));
        float inv = mw > 0 ? 127.0f / mw : 0.0f;
        int32_t sum = 0;
        for (int i = 0; i < k; i++)
            sum += (int32_t)rintf(kern_bf16_to_f32(row[i]) * inv);
        out[r] = (struct ks_row){inv, mw / 127.0f, 128 * sum};
    }
}

/* h = bf16(x) as a float, l = x - h; returns max |l| */
static float split_row(const float *x, int k, float *l)
{
    float m = 0;
    for (int i = 0; i < k; i++) {
        l[i] = x[i] - kern_bf16_to_f32(kern_f32_to_bf16(x[i]));
        m = fabsf(l[i]) > m ? fabsf(l[i]) : m;
    }
    return m;
}

static uint8_t split_code(float l, float inv)
{
    return (uint8_t)((int)rintf(l * inv) + 128);
}

void kern_split_ref(const float *x, size_t x_stride, int n, int k, int t0, uint8_t *sp)
{
    float *l = ax_mallocarray((size_t)k, sizeof *l);
    if (!l)
        return; /* callers size k from the model; tests check the output */
    for (int t = t0; t < t0 + 16; t++) {
        uint8_t *g = sp + (size_t)(t / KP_TOKENS) * ks_group_bytes(k);
        uint32_t *hi = (uint32_t *)(void *)g + t % KP_TOKENS;
        uint32_t *lo = hi + (size_t)k / 2 * KP_TOKENS;
        float *scale = (float *)(void *)(g + ((size_t)k / 2 + (size_t)k / 4) * KP_TOKENS * 4);
        const float *row =
            t < n ? (const float *)(const void *)((const char *)x + (size_t)t * x_stride) : NULL;
        float m = 0;
        if (row)
            m = split_row(row, k, l);
        else
            memset(l, 0, (size_t)k * sizeof *l);
        float inv = m > 0 ? 127.0f / m : 0.0f;
        for (size_t p = 0; p < (size_t)k / 2; p++)
            hi[p * KP_TOKENS] = row ? (uint32_t)kern_f32_to_bf16(row[2 * p]) |
                                          (uint32_t)kern_f32_to_bf16(row[2 * p + 1]) << 16
                                    : 0;
        for (int p = 0; p < k / 4; p++) {
            uint32_t v = 0;
            for (int j = 0; j < 4; j++)
                v |= (uint32_t)split_code(l[4 * p + j], inv) << (8 * j);
            lo[(size_t)p * KP_TOKENS] = v;
        }
        scale[t % KP_TOKENS] = m / 127.0f;
    }
    ax_free(l);
}

void kern_mm_ref_bf16_split(const struct kern_mm *a, int r0, int r1)
{
    int k = a->k;
    float *l = ax_mallocarray((size_t)k, sizeof *l);
    if (!l)
        return;
    for (int r = r0; r < r1; r++) {
        const uint16_t *w = (const uint16_t *)w_row(a, r);
        struct ks_row rs;
        kern_split_rows_ref(a->w + (size_t)r * a->w_stride, 0, k, 0, 1, &rs);
        float winv = rs.inv, sw = rs.sw;
        for (int t = 0; t < a->n; t++) {
            const float *x = (const float *)(const void *)x_row(a, t);
            float m = split_row(x, k, l), inv = m > 0 ? 127.0f / m : 0.0f, s = m / 127.0f;
            float hi = 0;
            int64_t isum = 0;
            for (int i = 0; i < k; i++) {
                float wi = kern_bf16_to_f32(w[i]);
                hi += wi * kern_bf16_to_f32(kern_f32_to_bf16(x[i]));
                isum += (int64_t)rintf(wi * winv) * (split_code(l[i], inv) - 128);
            }
            a->y[(size_t)t * a->y_stride + r] = hi + (float)isum * (sw * s);
        }
    }
    ax_free(l);
}

void kern_table_init_ref(struct kern_table *t)
{
    memset(t, 0, sizeof *t);
    t->name = "scalar";
    t->mm[KQ_F32] = kern_mm_ref_f32;
    t->mm[KQ_BF16] = kern_mm_ref_bf16;
    t->mm[KQ_F16] = kern_mm_ref_f16;
    t->mm[KQ_Q8] = kern_mm_ref_q8;
    t->mm[KQ_Q4] = kern_mm_ref_q4;
    t->mm[KQ_Q8I] = kern_mm_ref_q8i;
    t->mm[KQ_Q4I] = kern_mm_ref_q4i;
    t->q8_type = KQ_Q8;
    t->q4_type = KQ_Q4;
    t->quant_act = kern_quant_act_ref;
    t->quant_act_i = kern_quant_act_i_ref;
    t->dot_f16 = kern_dot_f16_ref;
    t->dot_f32 = kern_dot_f32_ref;
    t->axpy_f16 = kern_axpy_f16_ref;
    t->axpy_f32 = kern_axpy_f32_ref;
    t->f32_to_f16 = kern_f32_to_f16_ref;
    t->silu_mul = kern_silu_mul;
    t->rmsnorm = kern_rmsnorm;
    t->rope = kern_rope;
    t->attn = NULL; /* optional: the forward pass composes it from the above */
}
