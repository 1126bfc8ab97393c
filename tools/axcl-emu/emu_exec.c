/* emu_exec.c - the emulator's "NPU": executes one of its own axmodel files
 * (axemu_format.h) on the CPU, as a compiled Qwen3 decoder layer or post
 * model would, following the vendor IO contract.
 *
 * Layer, per row r of the shape group (R rows, history H, mask R x (H+R)):
 *   h = rmsnorm(x) ; q,k,v = projections ; q_norm/k_norm per head ;
 *   RoPE(neox) at indices[r] ; K_cache_out[r] = k, V_cache_out[r] = v ;
 *   attention over columns c < H (K_cache/V_cache row c) and c >= H (this
 *   group's new row c-H), scores scaled by 1/sqrt(head_dim) plus mask[r][c]
 *   (bf16: 0 attend, -65536 blocked) ; o_proj ; residual ; rmsnorm ;
 *   SwiGLU MLP ; residual -> output[r].
 * Post: rmsnorm(x) with model.norm, lm_head -> bf16 logits.
 * Activations are rounded to bf16 wherever the device holds a bf16 tensor;
 * accumulation is f32. Written independently of axserve's CPU backend
 * (scalar C, on purpose: it is an oracle-like reference, not fast). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "emu_int.h"

/* ---- bf16 ------------------------------------------------------------ */

static float bf2f(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t f2bf(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);          /* round to nearest even */
    return (uint16_t)(u >> 16);
}

static float rb(float f)
{
    return bf2f(f2bf(f));
}

static uint16_t ld16(const uint8_t *p, size_t i)
{
    uint16_t v;
    memcpy(&v, p + 2 * i, 2);
    return v;
}

static void st16(uint8_t *p, size_t i, uint16_t v)
{
    memcpy(p + 2 * i, &v, 2);
}

/* ---- IO contract ------------------------------------------------------ */

enum { IN_K, IN_V, IN_IDX, IN_X, IN_MASK };
enum { OUT_K, OUT_V, OUT_X };
static const char *const layer_in[] = {"K_cache", "V_cache", "indices", "input", "mask"};
static const char *const layer_out[] = {"K_cache_out", "V_cache_out", "output"};

int emu_check_header(const struct axemu_header *h)
{
    if (memcmp(h->magic, AXEMU_MAGIC, 8) != 0 || h->hidden == 0 || h->hidden > 65536)
        return -1;
    if (h->kind == AXEMU_KIND_POST)
        return (h->vocab == 0 || h->vocab > (1u << 22) || h->n_groups != 1) ? -1 : 0;
    if (h->kind != AXEMU_KIND_LAYER || h->n_heads == 0 || h->n_kv_heads == 0 ||
        h->n_heads % h->n_kv_heads || h->head_dim == 0 || h->head_dim % 2 || h->head_dim > 1024 ||
        h->n_heads > 1024 || h->intermediate == 0 || h->intermediate > (1u << 20) ||
        h->kv_cache_num == 0 || h->kv_cache_num > (1u << 20) || h->prefill == 0 ||
        h->prefill > 4096 || h->n_groups == 0 || h->n_groups > AXEMU_MAX_GROUPS)
        return -1;
    for (uint32_t g = 1; g < h->n_groups; g++)
        if (h->history[g] == 0 || h->history[g] > h->kv_cache_num)
            return -1;
    return 0;
}

int emu_n_inputs(const struct axemu_header *h)
{
    return h->kind == AXEMU_KIND_POST ? 1 : 5;
}
int emu_n_outputs(const struct axemu_header *h)
{
    return h->kind == AXEMU_KIND_POST ? 1 : 3;
}

const char *emu_io_name(const struct axemu_header *h, int out, uint32_t i)
{
    if (i >= (uint32_t)(out ? emu_n_outputs(h) : emu_n_inputs(h)))
        return NULL;
    if (h->kind == AXEMU_KIND_POST)
        return out ? "output" : "input";
    return out ? layer_out[i] : layer_in[i];
}

uint64_t emu_io_size(const struct axemu_header *h, int out, uint32_t g, uint32_t i)
{
    if (g >= h->n_groups || i >= (uint32_t)(out ? emu_n_outputs(h) : emu_n_inputs(h)))
        return 0;
    if (h->kind == AXEMU_KIND_POST)
        return out ? 2ull * h->vocab : 2ull * h->hidden;
    uint64_t rows = g == 0 ? 1 : h->prefill;
    uint64_t hist = g == 0 ? h->kv_cache_num : h->history[g];
    uint64_t kv = (uint64_t)h->n_kv_heads * h->head_dim;
    if (out)
        return i == OUT_X ? rows * h->hidden * 2 : rows * kv * 2;
    switch (i) {
    case IN_K:
    case IN_V:
        return hist * kv * 2;
    case IN_IDX:
        return rows * 4;
    case IN_X:
        return rows * h->hidden * 2;
    default:
        return rows * (hist + rows) * 2;
    }
}

int32_t emu_io_dtype(const struct axemu_header *h, int out, uint32_t i)
{
    if (h->kind == AXEMU_KIND_LAYER && !out && i == IN_IDX)
        return 8; /* UINT32 */
    return 14;    /* BF16 */
}

/* ---- kernels ---------------------------------------------------------- */

/* y = round(W x): W is [n][k] bf16, x has k floats. */
static void matvec(float *y, const uint16_t *w, const float *x, size_t n, size_t k)
{
    for (size_t i = 0; i < n; i++) {
        const uint16_t *row = w + i * k;
        float s = 0;
        for (size_t j = 0; j < k; j++)
            s += bf2f(row[j]) * x[j];
        y[i] = rb(s);
    }
}

/* HF Qwen3RMSNorm on a bf16 tensor: normalise in f32, cast to bf16, then
 * multiply by the bf16 weight (another bf16 rounding). */
static void rmsnorm(float *y, const float *x, const uint16_t *w, size_t n, double eps)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float inv = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (size_t i = 0; i < n; i++)
        y[i] = rb(bf2f(w[i]) * rb(x[i] * inv));
}

/* rotate_half RoPE: element i pairs with i + d/2. */
static void rope(float *v, size_t d, uint32_t pos, double theta)
{
    size_t half = d / 2;
    for (size_t i = 0; i < half; i++) {
        float inv_freq = (float)pow(theta, -(double)(2 * i) / (double)d);
        float ang = (float)pos * inv_freq;
        float c = rb(cosf(ang)), s = rb(sinf(ang));
        float a = v[i], b = v[i + half];
        v[i] = rb(a * c - b * s);
        v[i + half] = rb(b * c + a * s);
    }
}

/* ---- the layer --------------------------------------------------------- */

struct lw { /* weight slices, in file order */
    const uint16_t *ln1, *ln2, *qn, *kn, *q, *k, *v, *o, *gate, *up, *down;
};

static void slice(const struct axemu_header *h, const uint16_t *w, struct lw *s)
{
    size_t hd = h->hidden, q = (size_t)h->n_heads * h->head_dim,
           kv = (size_t)h->n_kv_heads * h->head_dim, in = h->intermediate;
    s->ln1 = w;
    w += hd;
    s->ln2 = w;
    w += hd;
    s->qn = w;
    w += h->head_dim;
    s->kn = w;
    w += h->head_dim;
    s->q = w;
    w += q * hd;
    s->k = w;
    w += kv * hd;
    s->v = w;
    w += kv * hd;
    s->o = w;
    w += hd * q;
    s->gate = w;
    w += in * hd;
    s->up = w;
    w += in * hd;
    s->down = w;
}

struct scratch {
    float *x, *h, *q, *k, *v, *att, *o, *g, *u, *sc;
};

static int run_layer(const struct axemu_header *h, const uint16_t *w, int g,
                     const uint8_t *const *in, uint8_t *const *out)
{
    struct lw L;
    slice(h, w, &L);
    size_t R = g == 0 ? 1 : h->prefill, H = g == 0 ? h->kv_cache_num : h->history[g];
    size_t W = H + R, hd = h->hidden, D = h->head_dim, nq = h->n_heads, nkv = h->n_kv_heads;
    size_t qd = nq * D, kvd = nkv * D, I = h->intermediate;
    float *buf = emu_calloc(R * (hd + qd + 2 * kvd) + qd + 2 * hd + 2 * I + W + hd, sizeof(float));
    if (!buf)
        return -1;
    struct scratch s;
    s.x = buf;             /* R x hidden: residual stream */
    s.q = s.x + R * hd;    /* R x qd */
    s.k = s.q + R * qd;    /* R x kvd */
    s.v = s.k + R * kvd;   /* R x kvd */
    s.att = s.v + R * kvd; /* qd */
    s.h = s.att + qd;      /* hidden */
    s.o = s.h + hd;        /* hidden */
    s.g = s.o + hd;        /* I */
    s.u = s.g + I;         /* I */
    s.sc = s.u + I;        /* W scores */
    uint32_t idx[4096];
    memcpy(idx, in[IN_IDX], R * 4);

    /* Phase 1: projections, norms and RoPE for every row. */
    for (size_t r = 0; r < R; r++) {
        float *x = s.x + r * hd;
        for (size_t i = 0; i < hd; i++)
            x[i] = bf2f(ld16(in[IN_X], r * hd + i));
        rmsnorm(s.h, x, L.ln1, hd, h->rms_eps);
        float *q = s.q + r * qd, *k = s.k + r * kvd, *v = s.v + r * kvd;
        matvec(q, L.q, s.h, qd, hd);
        matvec(k, L.k, s.h, kvd, hd);
        matvec(v, L.v, s.h, kvd, hd);
        for (size_t hh = 0; hh < nq; hh++) {
            rmsnorm(q + hh * D, q + hh * D, L.qn, D, h->rms_eps);
            rope(q + hh * D, D, idx[r], h->rope_theta);
        }
        for (size_t hh = 0; hh < nkv; hh++) {
            rmsnorm(k + hh * D, k + hh * D, L.kn, D, h->rms_eps);
            rope(k + hh * D, D, idx[r], h->rope_theta);
        }
    }

    /* Phase 2: attention + MLP per row; results stay in scratch. */
    float scale = 1.0f / sqrtf((float)D);
    for (size_t r = 0; r < R; r++) {
        const float *q = s.q + r * qd;
        for (size_t hh = 0; hh < nq; hh++) {
            size_t kh = hh / (nq / nkv);
            float mx = -INFINITY;
            for (size_t c = 0; c < W; c++) {
                float dot = 0;
                for (size_t i = 0; i < D; i++) {
                    float kc = c < H ? bf2f(ld16(in[IN_K], c * kvd + kh * D + i))
                                     : s.k[(c - H) * kvd + kh * D + i];
                    dot += q[hh * D + i] * kc;
                }
                s.sc[c] = dot * scale + bf2f(ld16(in[IN_MASK], r * W + c));
                if (s.sc[c] > mx)
                    mx = s.sc[c];
            }
            float sum = 0;
            for (size_t c = 0; c < W; c++)
                sum += s.sc[c] = expf(s.sc[c] - mx);
            for (size_t i = 0; i < D; i++) {
                float a = 0;
                for (size_t c = 0; c < W; c++) {
                    float vc = c < H ? bf2f(ld16(in[IN_V], c * kvd + kh * D + i))
                                     : s.v[(c - H) * kvd + kh * D + i];
                    a += rb(s.sc[c] / sum) * vc;
                }
                s.att[hh * D + i] = rb(a);
            }
        }
        float *x = s.x + r * hd;
        matvec(s.o, L.o, s.att, hd, qd);
        for (size_t i = 0; i < hd; i++)
            x[i] = rb(x[i] + s.o[i]);
        rmsnorm(s.h, x, L.ln2, hd, h->rms_eps);
        matvec(s.g, L.gate, s.h, I, hd);
        matvec(s.u, L.up, s.h, I, hd);
        for (size_t i = 0; i < I; i++)
            s.g[i] = rb(rb(s.g[i] / (1.0f + expf(-s.g[i]))) * s.u[i]);
        matvec(s.o, L.down, s.g, hd, I);
        for (size_t i = 0; i < hd; i++)
            x[i] = rb(x[i] + s.o[i]);
    }

    /* Phase 3: write every output (inputs may alias them). */
    for (size_t r = 0; r < R; r++) {
        for (size_t i = 0; i < kvd; i++) {
            st16(out[OUT_K], r * kvd + i, f2bf(s.k[r * kvd + i]));
            st16(out[OUT_V], r * kvd + i, f2bf(s.v[r * kvd + i]));
        }
        for (size_t i = 0; i < hd; i++)
            st16(out[OUT_X], r * hd + i, f2bf(s.x[r * hd + i]));
    }
    emu_free(buf);
    return 0;
}

static int run_post(const struct axemu_header *h, const uint16_t *w, const uint8_t *const *in,
                    uint8_t *const *out)
{
    size_t hd = h->hidden;
    float *x = emu_calloc(2 * hd, sizeof(float));
    if (!x)
        return -1;
    for (size_t i = 0; i < hd; i++)
        x[i] = bf2f(ld16(in[0], i));
    rmsnorm(x + hd, x, w, hd, h->rms_eps);
    const uint16_t *lm = w + hd;
    for (size_t v = 0; v < h->vocab; v++) {
        float s = 0;
        for (size_t j = 0; j < hd; j++)
            s += bf2f(lm[v * hd + j]) * x[hd + j];
        st16(out[0], v, f2bf(s));
    }
    emu_free(x);
    return 0;
}

int emu_run(const struct axemu_header *h, const uint16_t *weights, int g, const uint8_t *const *in,
            uint8_t *const *out)
{
    if (h->kind == AXEMU_KIND_POST)
        return run_post(h, weights, in, out);
    return run_layer(h, weights, g, in, out);
}
