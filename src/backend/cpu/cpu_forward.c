/* cpu_forward.c - the Qwen3 forward pass on the CPU (HF transformers
 * semantics, see the Qwen3 facts): embedding, per layer RMSNorm ->
 * q/k/v -> per-head q_norm/k_norm -> RoPE (rotate_half) -> causal GQA
 * attention over the KV cache -> o_proj -> residual -> RMSNorm -> SwiGLU
 * MLP -> residual; final norm and lm_head for the rows that want logits.
 *
 * All tokens of a call (several sequences, each into its own KV slot) go
 * through every matrix together, so each weight row is read once per pass
 * (batched prefill and continuous batching alike). Calls with more than
 * CPU_MAX_TOKENS tokens are split into passes. Nothing here allocates. */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_int.h"

/* ---- parallel matrix products ------------------------------------------ */

#define MM_TILE 16 /* tokens per kernel call: their activations stay in L2 */
/* BF16 products take activation panels (kt.mm_bf16_panel) from this many
 * tokens: a 64-token group fills the panel kernel's tile. */
#define PANEL_MIN KP_TOKENS

#define MM_MAX_CUTS 96 /* tapered chunks of one product, at most */

struct mm_part {
    kern_mm_fn fn;
    struct kern_mm a;
    int rows;
    int chunk; /* rows per claimed chunk */
    int chunks;
    int cut[MM_MAX_CUTS + 1]; /* tapered chunks: chunk i is rows cut[i] .. cut[i+1]-1 */
    int tapered;
    uint8_t *wq; /* split products: thread i's scratch at wq + i * wq_stride */
    size_t wq_stride;
};

struct mm_job {
    struct mm_part p[3];
    int np;
    int total; /* chunks over all parts: the pool's items */
};

/* One chunk of rows of one part. Chunks are claimed one by one, so a
 * thread that loses its core to another process does not hold up the
 * others. */
static void mm_item(void *arg, int ci, int ith)
{
    const struct mm_job *j = arg;
    int pi = 0;
    while (ci >= j->p[pi].chunks)
        ci -= j->p[pi++].chunks;
    const struct mm_part *p = &j->p[pi];
    int r0 = ci * p->chunk, r1 = r0 + p->chunk < p->rows ? r0 + p->chunk : p->rows;
    if (p->tapered) {
        r0 = p->cut[ci];
        r1 = p->cut[ci + 1];
    }
    if (p->a.xp) { /* the panel kernels walk their token groups themselves */
        p->fn(&p->a, r0, r1);
        return;
    }
    if (p->a.sp) {
        struct kern_mm s = p->a;
        s.wq = p->wq + (size_t)ith * p->wq_stride;
        p->fn(&s, r0, r1);
        return;
    }
    for (int t0 = 0; t0 < p->a.n; t0 += MM_TILE) {
        struct kern_mm s = p->a;
        s.n = p->a.n - t0 < MM_TILE ? p->a.n - t0 : MM_TILE;
        s.x = (const uint8_t *)p->a.x + (size_t)t0 * p->a.x_stride;
        s.y = p->a.y + (size_t)t0 * p->a.y_stride;
        p->fn(&s, r0, r1);
    }
}

static void run_rows(struct cpu_ctx *c, int n, int per,
                     void (*fn)(struct cpu_ctx *, const void *, int, int), const void *arg);

struct panel_arg {
    const float *x;
    size_t stride; /* bytes */
    int n, k;
};

static void panel_item(struct cpu_ctx *c, const void *va, int i, int ith)
{
    (void)ith;
    const struct panel_arg *a = va;
    c->kt.panel(a->x, a->stride, a->n, a->k, 16 * i, c->xp);
}

/* The panels of n rows of k floats at xf, built once for every product
 * of a job that reads them (q, k and v share theirs; gate and up too). */
static const float *panels(struct cpu_ctx *c, const float *xf, size_t xf_stride, int k, int n)
{
    if (c->xp_of != xf) {
        struct panel_arg a = {xf, xf_stride * sizeof(float), n, k};
        run_rows(c, (n + 15) / 16, 1, panel_item, &a);
        c->xp_of = xf;
    }
    return c->xp;
}

static void split_item(struct cpu_ctx *c, const void *va, int i, int ith)
{
    (void)ith;
    const struct panel_arg *a = va;
    c->kt.split(a->x, a->stride, a->n, a->k, 16 * i, c->sp);
}

/* The split panels of n rows of k floats at xf, as panels() */
static const uint8_t *split_panels(struct cpu_ctx *c, const float *xf, size_t xf_stride, int k,
                                   int n)
{
    if (c->xp_of != xf) {
        struct panel_arg a = {xf, xf_stride * sizeof(float), n, k};
        run_rows(c, (n + 15) / 16, 1, split_item, &a);
        c->xp_of = xf;
    }
    return c->sp;
}

/* Chunks that shrink as the rows run out (each a share of what is left,
 * in multiples of mult): the big ones go first, and the threads end
 * within a small chunk of each other. With even chunks the threads of a
 * BF16 prefill idled ~4 % of the products' time waiting for the last
 * chunk (0.6B shape, 128 tokens, 2 threads: 15 of 335 ms; tapered, 2-5).
 * A share of 1/(2 x threads) leaves big chunks early for a thread whose
 * core is taken away to be caught up by the others. Returns the count,
 * or 0 if that would take more than MM_MAX_CUTS chunks. */
static int taper(struct mm_part *p, int rows, int threads, int mult)
{
    int rem = rows, n = 0;
    p->cut[0] = 0;
    for (; rem > 0; n++) {
        if (n == MM_MAX_CUTS)
            return 0;
        int sz = (rem / (2 * threads) + mult - 1) / mult * mult;
        sz = sz < mult ? mult : sz > rem ? rem : sz;
        p->cut[n + 1] = p->cut[n] + sz;
        rem -= sz;
    }
    return n;
}

static void mm_add(struct cpu_ctx *c, struct mm_job *j, const struct cpu_w *w, const float *xf,
                   size_t xf_stride, float *y, size_t y_stride, int n)
{
    struct mm_part *p = &j->p[j->np++];
    p->fn = c->kt.mm[w->type];
    p->a.xp = NULL;
    p->a.sp = NULL;
    int panel = w->type == KQ_BF16 && n >= PANEL_MIN && (!c->xp_of || c->xp_of == xf);
    if (w->type == KQ_BF16 && c->bf16_act && n >= 4) /* decode stays exact */
        p->fn = c->kt.mm_bf16_act;
    else if (panel && c->split && w->rs) { /* one input's panels per job */
        p->fn = c->kt.mm_bf16_split;
        p->a.sp = split_panels(c, xf, xf_stride, w->k, n);
        p->a.rs = w->rs;
        p->wq = c->wq;
        p->wq_stride = c->wq_stride;
    } else if (panel && c->xp) {
        p->fn = c->kt.mm_bf16_panel;
        p->a.xp = panels(c, xf, xf_stride, w->k, n);
    }
    p->a.w = w->data;
    p->a.w_stride = w->stride;
    if (kq_is_quant(w->type)) {
        p->a.x = c->xq;
        p->a.x_stride = c->xq_stride;
    } else {
        p->a.x = xf;
        p->a.x_stride = xf_stride * sizeof(float);
    }
    p->a.y = y;
    p->a.y_stride = y_stride;
    p->a.n = n;
    p->a.k = w->k;
    p->rows = w->rows;
    /* Chunks in multiples of 8 rows: about 8 per thread in prefill, to even
     * out the threads; 1 in decode, where each chunk is a fresh stream whose
     * first kilobytes arrive before the kernel's prefetch runs ahead (a job
     * of several matrices still has a few items per thread to balance).
     * Measured, 0.6B shape, 2 threads: 8 -> 2 chunks per thread, q4 decode
     * +13 %, q8 +5 %; 2 -> 1, with the gap-free decode prefetch, q4 +3 %,
     * bf16 +2 %, q8 +1 %; 1 thread: no change. BF16 prefill takes 4 per
     * thread: 8 -> 4 measured x1.06 with 2 threads (paired fresh runs; the
     * same pass rerun in one process, alternating: 4-5 %), x1.02 with 1;
     * q8 and q4 were unchanged or slower, so they keep 8. Why is open: the
     * activation reorder that each chunk repeats accounts for about 2 %. */
    int per = n == 1 ? 1 : w->type == KQ_BF16 ? 4 : 8;
    /* the panel kernel's tiles are 6 rows: chunks in multiples of 24 leave
     * no short tile behind (kbench prefill: x1.00-1.01, chunks of 1 to 8
     * per thread within 1 %) */
    int tiles6 = p->a.xp || p->a.sp;
    int mult = tiles6 ? 24 : 8, ch = w->rows / (c->n_threads * per);
    ch = ch < mult ? mult : (ch + mult - 1) / mult * mult;
    p->chunk = ch;
    p->chunks = (w->rows + ch - 1) / ch;
    int tc = tiles6 && c->n_threads > 1 ? taper(p, w->rows, c->n_threads, mult) : 0;
    p->tapered = tc > 0;
    p->chunks = tc > 0 ? tc : p->chunks;
    j->total += p->chunks;
}

static void mm_run(struct cpu_ctx *c, struct mm_job *j)
{
    pool_for(c->pool, j->total, mm_item, j);
    c->xp_of = NULL; /* the next step may rewrite those rows */
}

/* ---- parallel loops over rows ------------------------------------------ */

struct row_job {
    struct cpu_ctx *c;
    void (*fn)(struct cpu_ctx *c, const void *arg, int i, int ith);
    const void *arg;
    int n, per; /* rows; rows per pool item */
};

static void row_item(void *vj, int i, int ith)
{
    const struct row_job *j = vj;
    int end = (i + 1) * j->per < j->n ? (i + 1) * j->per : j->n;
    for (int r = i * j->per; r < end; r++)
        j->fn(j->c, j->arg, r, ith);
}

static void run_rows(struct cpu_ctx *c, int n, int per,
                     void (*fn)(struct cpu_ctx *, const void *, int, int), const void *arg)
{
    struct row_job j = {c, fn, arg, n, per};
    pool_for(c->pool, (n + per - 1) / per, row_item, &j);
}

/* Rows of equal cost, about 4 pool items per thread: each item is claimed
 * with an atomic on a line every thread writes, which costs about as much
 * as a norm of 1024 values, and a thread's K/V rows are then neighbours.
 * Measured, 0.6B shape, 128-token prefill, 2 threads (one row an item ->
 * blocks): the two norms 11 -> 7 ms, the q/k step 24-30 -> 6-20 ms; the
 * same pass rerun in one process, alternating: x1.016. */
static void for_rows(struct cpu_ctx *c, int n, void (*fn)(struct cpu_ctx *, const void *, int, int),
                     const void *arg)
{
    int per = n / (c->n_threads * 4);
    run_rows(c, n, per < 1 ? 1 : per, fn, arg);
}

/* ---- per-row steps ----------------------------------------------------- */

/* x += add (if any); xb = rmsnorm(x) * w; quantised copy of xb if wanted. */
struct norm_arg {
    const float *add; /* [cap][H] or NULL */
    const float *w;   /* norm weights [H] */
    int quant;        /* also write KA_Q8 rows to c->xq */
};

static void norm_row(struct cpu_ctx *c, const void *va, int t, int ith)
{
    (void)ith;
    const struct norm_arg *a = va;
    int H = c->c.hidden;
    float *x = c->x + (size_t)t * H, *xb = c->xb + (size_t)t * H;
    if (a->add)
        for (int i = 0; i < H; i++)
            x[i] += a->add[(size_t)t * H + i];
    c->kt.rmsnorm(x, a->w, H, (float)c->c.rms_eps, xb);
    if (a->quant)
        c->quant_act(xb, H, c->xq + (size_t)t * c->xq_stride);
}

static void quant_row(struct cpu_ctx *c, const void *va, int t, int ith)
{
    (void)ith;
    const struct {
        const float *x;
        int k;
    } *a = va;
    c->quant_act(a->x + (size_t)t * a->k, a->k, c->xq + (size_t)t * c->xq_stride);
}

static void quant_rows(struct cpu_ctx *c, const float *x, int k, int n)
{
    struct {
        const float *x;
        int k;
    } a = {x, k};
    for_rows(c, n, quant_row, &a);
}

/* Position 0 of one KV head's rows in a slot and layer. Each head's rows
 * are contiguous over positions, so attention over one head streams
 * memory in order instead of taking a slice of every position's row. */
static uint8_t *kv_head(struct cpu_ctx *c, uint8_t *cache, int slot, int layer, int h)
{
    size_t i = ((size_t)slot * c->c.n_layers + (size_t)layer) * (size_t)c->c.n_kv_heads + (size_t)h;
    return cache + i * (size_t)c->n_ctx * (size_t)c->c.head_dim * c->kv_elem;
}

/* The K or V values of one token (all heads) into its position. */
static void store_kv(struct cpu_ctx *c, uint8_t *cache, int t, int layer, const float *src)
{
    size_t D = (size_t)c->c.head_dim, at = (size_t)c->t_pos[t] * D * c->kv_elem;
    for (int h = 0; h < c->c.n_kv_heads; h++) {
        uint8_t *dst = kv_head(c, cache, c->t_slot[t], layer, h) + at;
        if (c->kv_f16)
            c->kt.f32_to_f16(src + h * D, (uint16_t *)dst, (int)D);
        else
            memcpy(dst, src + h * D, D * sizeof(float));
    }
}

/* Per-head RMSNorm with w, then RoPE at position pos, of n heads at x. */
static void norm_rope(struct cpu_ctx *c, float *x, int n, const float *w, int pos)
{
    int D = c->c.head_dim;
    const float *cs = c->rope_cos + (size_t)pos * (D / 2),
                *sn = c->rope_sin + (size_t)pos * (D / 2);
    for (int h = 0; h < n; h++) {
        float *xh = x + (size_t)h * D;
        c->kt.rmsnorm(xh, w, D, (float)c->c.rms_eps, xh);
        c->kt.rope(xh, cs, sn, D);
    }
}

/* k_norm and RoPE of the token's K; K and V into its slot of the cache. */
static void k_row(struct cpu_ctx *c, const void *va, int t, int ith)
{
    (void)ith;
    const struct cpu_layer *L = va;
    int layer = (int)(L - c->layers);
    float *k = c->k + (size_t)t * c->kv_dim;
    norm_rope(c, k, c->c.n_kv_heads, L->k_norm, c->t_pos[t]);
    store_kv(c, c->kcache, t, layer, k);
    store_kv(c, c->vcache, t, layer, c->v + (size_t)t * c->kv_dim);
}

static void q_row(struct cpu_ctx *c, const void *va, int t, int ith)
{
    (void)ith;
    const struct cpu_layer *L = va;
    float *q = c->q + (size_t)t * c->c.n_heads * c->c.head_dim;
    norm_rope(c, q, c->c.n_heads, L->q_norm, c->t_pos[t]);
}

static void qk_row(struct cpu_ctx *c, const void *va, int t, int ith)
{
    q_row(c, va, t, ith);
    k_row(c, va, t, ith);
}

/* Causal attention of tokens t .. t+nq-1 (one sequence, consecutive
 * positions) for the query heads that share KV head kvh. */
static void attn_tokens(struct cpu_ctx *c, int layer, int t, int nq, int kvh, int ith, int block)
{
    int NH = c->c.n_heads, KV = c->c.n_kv_heads, D = c->c.head_dim, G = NH / KV;
    int slot = c->t_slot[t];
    size_t h0 = (size_t)t * NH + (size_t)kvh * G;
    struct kern_attn a = {
        .q = c->q + h0 * D,
        .q_stride = (size_t)D,
        .out = c->att + h0 * D,
        .out_stride = (size_t)D,
        .k = kv_head(c, c->kcache, slot, layer, kvh),
        .v = kv_head(c, c->vcache, slot, layer, kvh),
        .stride = (size_t)D * c->kv_elem,
        .kv_f16 = c->kv_f16,
        .n = c->t_pos[t] + 1,
        .d = D,
        .g = G,
        .scale = 1.0f / sqrtf((float)D),
        .s = c->scores + (size_t)ith * G * ATTN_TOKENS * c->n_ctx,
        .nq = nq,
        .q_tstride = (size_t)NH * D,
        .out_tstride = (size_t)NH * D,
    };
    if (block && nq >= ATTN_TOKENS) {
        a.work = c->attn_work + (size_t)ith * kern_attn_block_floats(D);
        c->kt.attn_block(&a);
    } else if (c->kt.attn)
        c->kt.attn(&a);
    else
        kern_attn_composed(&c->kt, &a);
}

struct attn_arg {
    int layer, nt, per; /* per: tokens an item */
    int block;          /* items of kt.attn_block's width */
};

/* One (group of per tokens, KV head): the group's tokens in runs of one
 * sequence at consecutive positions, one attention call per run (a
 * prefill chunk is one run; a batch of decode steps, runs of one). The
 * last groups come first: in a prefill their tokens see the most
 * positions, and the cheap items then even out the threads at the end
 * (128-token prefill, 2 threads, the pass rerun alternating: x1.015). */
static void attn_row(struct cpu_ctx *c, const void *va, int i, int ith)
{
    const struct attn_arg *aa = va;
    int KV = c->c.n_kv_heads, groups = (aa->nt + aa->per - 1) / aa->per;
    int t = (groups - 1 - i / KV) * aa->per, kvh = i % KV;
    int end = t + aa->per < aa->nt ? t + aa->per : aa->nt;
    while (t < end) {
        int nq = 1;
        while (t + nq < end && c->t_slot[t + nq] == c->t_slot[t] &&
               c->t_pos[t + nq] == c->t_pos[t] + nq)
            nq++;
        attn_tokens(c, aa->layer, t, nq, kvh, ith, aa->block);
        t += nq;
    }
}

static void swiglu_row(struct cpu_ctx *c, const void *va, int t, int ith)
{
    (void)ith;
    int quant = *(const int *)va, I = c->c.intermediate;
    float *a = c->hb + (size_t)t * I;
    c->kt.silu_mul(a, c->hb2 + (size_t)t * I, I);
    if (quant)
        c->quant_act(a, I, c->xq + (size_t)t * c->xq_stride);
}

/* Final residual and norm for the rows that want logits, packed into xb. */
static void final_row(struct cpu_ctx *c, const void *va, int i, int ith)
{
    (void)ith;
    (void)va;
    int H = c->c.hidden, t = c->l_row[i];
    float *x = c->x + (size_t)t * H;
    const float *add = c->xb2 + (size_t)t * H;
    for (int j = 0; j < H; j++)
        x[j] += add[j];
    c->kt.rmsnorm(x, c->final_norm, H, (float)c->c.rms_eps, c->xb + (size_t)i * H);
    if (kq_is_quant(c->lm_head.type))
        c->quant_act(c->xb + (size_t)i * H, H, c->xq + (size_t)i * c->xq_stride);
}

static void embed_row(struct cpu_ctx *c, const void *va, int t, int ith)
{
    (void)ith;
    (void)va;
    int H = c->c.hidden;
    kern_row_to_f32(c->embed.type, c->embed.data + (size_t)c->t_tok[t] * c->embed.stride, H,
                    c->x + (size_t)t * H);
}

/* ---- one layer --------------------------------------------------------- */

/* Keeps only the n_out rows that want logits, as rows 0 .. n_out-1 of
 * the residual and the normed input (and its quantised copy), with their
 * positions and slots. l_row is ascending, so no row is overwritten
 * before it is read. */
static void keep_out_rows(struct cpu_ctx *c, int n_out)
{
    size_t H = (size_t)c->c.hidden;
    for (int i = 0; i < n_out; i++) {
        int t = c->l_row[i];
        if (t == i)
            continue;
        memcpy(c->x + i * H, c->x + t * H, H * sizeof(float));
        memcpy(c->xb + i * H, c->xb + t * H, H * sizeof(float));
        memcpy(c->xq + i * c->xq_stride, c->xq + t * c->xq_stride, c->xq_stride);
        c->t_pos[i] = c->t_pos[t];
        c->t_slot[i] = c->t_slot[t];
        c->l_row[i] = i;
    }
}

/* The attention block's projections and the K/V store for nt tokens.
 * With keep >= 0 (the last layer of a pass) only K and V are needed for
 * every token: the rest of the layer runs for the keep rows that want
 * logits, as llama.cpp also does. Returns the tokens that go on. */
static int qkv(struct cpu_ctx *c, const struct cpu_layer *L, int nt, int keep)
{
    int H = c->c.hidden, QD = c->c.n_heads * c->c.head_dim, KD = (int)c->kv_dim;
    struct mm_job j = {0};
    if (keep < 0 || keep == nt)
        mm_add(c, &j, &L->q, c->xb, H, c->q, QD, nt);
    mm_add(c, &j, &L->k, c->xb, H, c->k, KD, nt);
    mm_add(c, &j, &L->v, c->xb, H, c->v, KD, nt);
    mm_run(c, &j);
    if (keep < 0 || keep == nt) {
        for_rows(c, nt, qk_row, L);
        return nt;
    }
    for_rows(c, nt, k_row, L);
    if (keep == 0)
        return 0;
    keep_out_rows(c, keep);
    memset(&j, 0, sizeof j);
    mm_add(c, &j, &L->q, c->xb, H, c->q, QD, keep);
    mm_run(c, &j);
    for_rows(c, keep, q_row, L);
    return keep;
}

/* keep: -1, or the rows that want logits if this is the pass's last layer */
static void layer_forward(struct cpu_ctx *c, int l, int nt, int keep)
{
    const struct cpu_layer *L = &c->layers[l];
    int H = c->c.hidden, D = c->c.head_dim;
    int QD = c->c.n_heads * D, I = c->c.intermediate;

    /* attention block: the previous layer's MLP output joins the residual here */
    struct norm_arg na = {l > 0 ? c->xb2 : NULL, L->attn_norm, kq_is_quant(L->q.type)};
    for_rows(c, nt, norm_row, &na);
    nt = qkv(c, L, nt, keep);
    if (nt == 0)
        return;
    /* prefill: the tokens of kt.attn_block's lanes, where it takes this
     * many heads per KV head, or groups of ATTN_TOKENS when there are
     * enough of them to keep every thread busy; else one token an item
     * (a batch of decodes) */
    int G = c->c.n_heads / c->c.n_kv_heads, bt = KAB_LANES / G;
    int block = c->attn_work && (G == 1 || G == 2 || G == 4) && nt >= bt;
    int per = block ? bt : nt >= ATTN_TOKENS * c->n_threads ? ATTN_TOKENS : 1;
    struct attn_arg aa = {l, nt, per, block};
    run_rows(c, (nt + per - 1) / per * c->c.n_kv_heads, 1, attn_row, &aa); /* unequal items */
    if (kq_is_quant(L->o.type))
        quant_rows(c, c->att, QD, nt);
    struct mm_job j = {0};
    mm_add(c, &j, &L->o, c->att, QD, c->xb2, H, nt);
    mm_run(c, &j);

    /* MLP block */
    struct norm_arg nm = {c->xb2, L->ffn_norm, kq_is_quant(L->gate.type)};
    for_rows(c, nt, norm_row, &nm);
    memset(&j, 0, sizeof j);
    mm_add(c, &j, &L->gate, c->xb, H, c->hb, I, nt);
    mm_add(c, &j, &L->up, c->xb, H, c->hb2, I, nt);
    mm_run(c, &j);
    int qd = kq_is_quant(L->down.type);
    for_rows(c, nt, swiglu_row, &qd);
    memset(&j, 0, sizeof j);
    mm_add(c, &j, &L->down, c->hb, I, c->xb2, H, nt);
    mm_run(c, &j);
}

/* One pass over the weights for nt tokens (t_tok/t_pos/t_slot filled),
 * writing logits for the n_out rows listed in l_row/l_out. */
static void pass(struct cpu_ctx *c, int nt, int n_out)
{
    for_rows(c, nt, embed_row, NULL);
    for (int l = 0; l < c->c.n_layers; l++)
        layer_forward(c, l, nt, l == c->c.n_layers - 1 ? n_out : -1);
    if (n_out == 0)
        return;
    for_rows(c, n_out, final_row, NULL);
    struct mm_job j = {0};
    size_t V = (size_t)c->c.vocab;
    mm_add(c, &j, &c->lm_head, c->xb, c->c.hidden, c->logits, V, n_out);
    mm_run(c, &j);
    for (int i = 0; i < n_out; i++)
        memcpy(c->l_out[i], c->logits + (size_t)i * V, V * sizeof(float));
}

/* ---- entry point ------------------------------------------------------- */

static enum ax_err check_seqs(const struct cpu_ctx *c, const struct backend_seq *seqs, int n_seqs,
                              char *err)
{
    if (n_seqs < 1 || n_seqs > CPU_MAX_BATCH)
        return ax_fail(err, AX_EINVAL, "cpu forward: %d sequences (limit 1..%d)", n_seqs,
                       CPU_MAX_BATCH);
    for (int i = 0; i < n_seqs; i++) {
        const struct backend_seq *s = &seqs[i];
        if (s->slot < 0 || s->slot >= c->n_slots)
            return ax_fail(err, AX_ERANGE, "cpu forward: slot %d out of range 0..%d", s->slot,
                           c->n_slots - 1);
        for (int j = 0; j < i; j++)
            if (seqs[j].slot == s->slot)
                return ax_fail(err, AX_EINVAL, "cpu forward: slot %d used twice in one call",
                               s->slot);
        if (s->n_tokens < 1 || !s->tokens)
            return ax_fail(err, AX_EINVAL, "cpu forward: sequence %d has no tokens", i);
        if (s->pos < 0 || s->pos > c->n_ctx - s->n_tokens)
            return ax_fail(err, AX_ECONTEXT,
                           "cpu forward: positions %d..%d exceed the context of %d tokens", s->pos,
                           s->pos + s->n_tokens - 1, c->n_ctx);
        for (int t = 0; t < s->n_tokens; t++)
            if (s->tokens[t] < 0 || s->tokens[t] >= c->c.vocab)
                return ax_fail(err, AX_ERANGE,
                               "cpu forward: token id %d outside the vocabulary "
                               "of %d",
                               (int)s->tokens[t], c->c.vocab);
    }
    return AX_OK;
}

enum ax_err cpu_forward(void *ctx, const struct backend_seq *seqs, int n_seqs, char *err)
{
    struct cpu_ctx *c = ctx;
    enum ax_err e = check_seqs(c, seqs, n_seqs, err);
    if (e != AX_OK)
        return e;
    /* Flatten the sequences into passes of at most cap tokens. All K/V
     * rows of a pass are stored before any attention reads them, and
     * attention is causal by position, so a sequence may span passes. */
    int nt = 0, n_out = 0;
    for (int i = 0; i < n_seqs; i++) {
        const struct backend_seq *s = &seqs[i];
        for (int t = 0; t < s->n_tokens; t++) {
            c->t_tok[nt] = s->tokens[t];
            c->t_pos[nt] = s->pos + t;
            c->t_slot[nt] = s->slot;
            if (t == s->n_tokens - 1 && s->logits) {
                c->l_row[n_out] = nt;
                c->l_out[n_out++] = s->logits;
            }
            if (++nt == c->cap) {
                pass(c, nt, n_out);
                nt = n_out = 0;
            }
        }
    }
    if (nt > 0)
        pass(c, nt, n_out);
    return AX_OK;
}
