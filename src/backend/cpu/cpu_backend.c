/* cpu_backend.c - opens the CPU backend: picks the kernels, starts the
 * thread pool, slices the model's mmapped tensors into weight matrices
 * (quantising them at load for --quant q8/q4), and sizes the KV cache and
 * the scratch buffers. The forward pass itself is in cpu_forward.c.
 *
 * Weights are used in place from the mapping unless they are converted:
 * quantised, a norm vector (copied to f32, a few KB), or a tensor whose
 * data is not aligned for its element type (copied, with a warning). */
#include "backend/cpu/cpu.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend/cpu/cpu_int.h"
#include "util/clock.h"
#include "util/file.h"
#include "util/log.h"
#include "util/mem.h"

/* ---- owned buffers ----------------------------------------------------- */

static void *own_alloc(struct cpu_ctx *c, size_t n)
{
    if (c->n_owned == c->cap_owned) {
        int cap = c->cap_owned ? c->cap_owned * 2 : 64;
        void **o = ax_reallocarray(c->owned, (size_t)cap, sizeof *o);
        if (!o)
            return NULL;
        c->owned = o;
        c->cap_owned = cap;
    }
    void *p = ax_calloc(1, n ? n : 1);
    if (p)
        c->owned[c->n_owned++] = p;
    return p;
}

/* A large weight buffer on 2 MiB boundaries, asked to be backed by
 * transparent huge pages before anything touches it: decode streams the
 * whole buffer per token, and huge pages save a TLB miss every 4 KiB.
 * (The advice is only a hint; without THP this is a plain buffer.) */
#define HUGE_BYTES ((size_t)2 << 20)

static void *own_alloc_big(struct cpu_ctx *c, size_t n)
{
    if (n < 2 * HUGE_BYTES)
        return own_alloc(c, n);
    uint8_t *p = own_alloc(c, n + HUGE_BYTES);
    if (!p)
        return NULL;
    uint8_t *a = p + (HUGE_BYTES - (uintptr_t)p % HUGE_BYTES) % HUGE_BYTES;
    madvise(a, n / HUGE_BYTES * HUGE_BYTES, MADV_HUGEPAGE);
    return a;
}

/* Quantised weights come from the arena while it lasts (64-byte aligned
 * pieces), else from their own buffer. */
static void *own_alloc_weights(struct cpu_ctx *c, size_t n)
{
    size_t need = (n + 63) / 64 * 64;
    if (c->arena && need <= c->arena_left) {
        void *p = c->arena;
        c->arena += need;
        c->arena_left -= need;
        return p;
    }
    return own_alloc_big(c, n);
}

static void ctx_free(void *vctx)
{
    struct cpu_ctx *c = vctx;
    if (!c)
        return;
    pool_free(c->pool);
    for (int i = 0; i < c->n_owned; i++)
        ax_free(c->owned[i]);
    ax_free(c->owned);
    ax_free(c->layers);
    ax_free(c);
}

/* ---- weights ----------------------------------------------------------- */

struct quant_job {
    const struct model_tensor *src;
    enum kq_type src_type, dst_type;
    int k;
    int row0; /* first row of this slice; items are rows from here */
    uint8_t *dst;
    float *tmp; /* [n_threads][k] */
};

/* Rows quantised per pool job; the source pages of each slice are dropped
 * right after it, so at most one slice of the original is resident. */
#define QUANT_SLICE_BYTES (16u << 20)

static void quant_item(void *vj, int i, int ith)
{
    const struct quant_job *j = vj;
    float *tmp = j->tmp + (size_t)ith * j->k;
    size_t sb = kq_row_bytes(j->src_type, j->k), db = kq_row_bytes(j->dst_type, j->k);
    size_t r = (size_t)j->row0 + (size_t)i;
    kern_row_to_f32(j->src_type, (const uint8_t *)j->src->data + r * sb, j->k, tmp);
    kern_quant_row(j->dst_type, tmp, j->k, j->dst + r * db);
}

/* After a tensor has been converted its mapped pages are never read again
 * (except embedding rows, which fault back in one at a time): drop them
 * from our resident set so peak RSS is the converted copy, not both. The
 * mapping is read-only and file-backed, so this loses nothing. */
static void drop_pages(const void *data, size_t n)
{
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0)
        return;
    /* whole pages inside [data, data + n) */
    size_t p = (size_t)pg, mis = (uintptr_t)data % p, head = mis ? p - mis : 0;
    if (n <= head)
        return;
    size_t len = (n - head) / p * p;
    if (len)
        madvise((void *)((const uint8_t *)data + head), len, MADV_DONTNEED);
}

static enum ax_err dtype_kq(const struct model_tensor *t, enum kq_type *out, char *err)
{
    switch (t->dtype) {
    case DT_F32:
        *out = KQ_F32;
        return AX_OK;
    case DT_BF16:
        *out = KQ_BF16;
        return AX_OK;
    case DT_F16:
        *out = KQ_F16;
        return AX_OK;
    default:
        break;
    }
    return ax_fail(err, AX_EUNSUPPORTED,
                   "tensor %s has dtype %d; the cpu backend reads F32, BF16 and F16", t->name,
                   (int)t->dtype);
}

static size_t elem_size(enum kq_type t)
{
    return t == KQ_F32 ? 4 : 2;
}

/* A 2-D weight [rows][k], used in place, or quantised to `quant` when that
 * is Q8/Q4 and k is a whole number of blocks. */
static enum ax_err load_matrix(struct cpu_ctx *c, const struct model *m, const char *name, int rows,
                               int k, enum kq_type quant, struct cpu_w *w, char *err)
{
    struct model_tensor t;
    int64_t shape[2] = {rows, k};
    enum ax_err e = model_tensor_expect(m, name, 2, shape, &t, err);
    if (e != AX_OK)
        return e;
    enum kq_type st = KQ_F32;
    if ((e = dtype_kq(&t, &st, err)) != AX_OK)
        return e;
    size_t need = (size_t)rows * kq_row_bytes(st, k);
    if (t.nbytes < need || !t.data)
        return ax_fail(err, AX_EFORMAT, "tensor %s holds %zu bytes, expected %zu", name, t.nbytes,
                       need);
    w->rows = rows;
    w->k = k;
    if (kq_is_quant(quant) && k % KQ_BLOCK == 0) {
        size_t rb = kq_row_bytes(quant, k);
        uint8_t *dst = own_alloc_weights(c, (size_t)rows * rb);
        float *tmp = ax_mallocarray((size_t)c->n_threads * (size_t)k, sizeof(float));
        if (!dst || !tmp) {
            ax_free(tmp);
            return ax_fail(err, AX_ENOMEM, "out of memory quantising %s (%zu bytes)", name,
                           (size_t)rows * rb);
        }
        size_t sb = kq_row_bytes(st, k);
        int slice = (int)(QUANT_SLICE_BYTES / sb) + 1;
        for (int r0 = 0; r0 < rows; r0 += slice) {
            int n = rows - r0 < slice ? rows - r0 : slice;
            struct quant_job j = {&t, st, quant, k, r0, dst, tmp};
            pool_for(c->pool, n, quant_item, &j);
            drop_pages((const uint8_t *)t.data + (size_t)r0 * sb, (size_t)n * sb);
        }
        ax_free(tmp);
        w->type = quant;
        w->data = dst;
        w->stride = rb;
    } else {
        if (kq_is_quant(quant))
            ax_warn("cpu: %s has %d inputs, not a multiple of %d: kept as %s", name, k, KQ_BLOCK,
                    kq_name(st));
        w->type = st;
        w->stride = kq_row_bytes(st, k);
        w->data = t.data;
        w->mapped = 1;
        if ((uintptr_t)t.data % elem_size(st) != 0) {
            ax_warn("cpu: %s is not aligned in its file: copied", name);
            uint8_t *copy = own_alloc(c, need);
            if (!copy)
                return ax_fail(err, AX_ENOMEM, "out of memory copying %s", name);
            memcpy(copy, t.data, need);
            w->data = copy;
            w->mapped = 0;
        }
    }
    c->weight_bytes += (size_t)rows * w->stride;
    return AX_OK;
}

static enum ax_err load_vector(struct cpu_ctx *c, const struct model *m, const char *name, int n,
                               float **out, char *err)
{
    struct model_tensor t;
    int64_t shape[1] = {n};
    enum ax_err e = model_tensor_expect(m, name, 1, shape, &t, err);
    if (e != AX_OK)
        return e;
    enum kq_type st = KQ_F32;
    if ((e = dtype_kq(&t, &st, err)) != AX_OK)
        return e;
    if (t.nbytes < (size_t)n * elem_size(st) || !t.data)
        return ax_fail(err, AX_EFORMAT, "tensor %s is shorter than %d values", name, n);
    float *v = own_alloc(c, (size_t)n * sizeof(float));
    uint8_t *raw = own_alloc(c, (size_t)n * elem_size(st)); /* aligned staging copy */
    if (!v || !raw)
        return ax_fail(err, AX_ENOMEM, "out of memory loading %s", name);
    memcpy(raw, t.data, (size_t)n * elem_size(st));
    /* with huge pages, reading it mapped 2 MiB around it: the 4 norms of
     * each layer kept 112 MiB of quantised-away weights resident (q8, 0.6B
     * shape); a neighbour used in place just faults its pages back in */
    ax_map_release(t.data, (size_t)n * elem_size(st));
    kern_row_to_f32(st, raw, n, v);
    *out = v;
    return AX_OK;
}

static enum ax_err load_layer(struct cpu_ctx *c, const struct model *m, int l, enum kq_type q,
                              char *err)
{
    const struct qwen3_config *k = &c->c;
    struct cpu_layer *L = &c->layers[l];
    int QD = k->n_heads * k->head_dim, KD = k->n_kv_heads * k->head_dim;
    char n[160];
    enum ax_err e;
#define NAME(s) (snprintf(n, sizeof n, "model.layers.%d.%s", l, s), n)
    if ((e = load_matrix(c, m, NAME("self_attn.q_proj.weight"), QD, k->hidden, q, &L->q, err)) ||
        (e = load_matrix(c, m, NAME("self_attn.k_proj.weight"), KD, k->hidden, q, &L->k, err)) ||
        (e = load_matrix(c, m, NAME("self_attn.v_proj.weight"), KD, k->hidden, q, &L->v, err)) ||
        (e = load_matrix(c, m, NAME("self_attn.o_proj.weight"), k->hidden, QD, q, &L->o, err)) ||
        (e = load_matrix(c, m, NAME("mlp.gate_proj.weight"), k->intermediate, k->hidden, q,
                         &L->gate, err)) ||
        (e = load_matrix(c, m, NAME("mlp.up_proj.weight"), k->intermediate, k->hidden, q, &L->up,
                         err)) ||
        (e = load_matrix(c, m, NAME("mlp.down_proj.weight"), k->hidden, k->intermediate, q,
                         &L->down, err)) ||
        (e = load_vector(c, m, NAME("input_layernorm.weight"), k->hidden, &L->attn_norm, err)) ||
        (e = load_vector(c, m, NAME("post_attention_layernorm.weight"), k->hidden, &L->ffn_norm,
                         err)) ||
        (e = load_vector(c, m, NAME("self_attn.q_norm.weight"), k->head_dim, &L->q_norm, err)) ||
        (e = load_vector(c, m, NAME("self_attn.k_norm.weight"), k->head_dim, &L->k_norm, err)))
        return e;
#undef NAME
    return AX_OK;
}

/* Matrices used in place are file pages: fault them in now, at load,
 * rather than page by page inside the first forward pass (which would
 * then run at page-fault speed and look like a slow prompt). They are
 * read on every token anyway, so this adds nothing to the resident set
 * that the first token would not. Owned copies are already resident.
 *
 * One read per page, and no MADV_POPULATE_READ first: measured on a VM,
 * pages populated by that call and then touched were slow again on their
 * next read (the first prompt's matrix products ran at 70 % of their
 * speed, and a second touch cost 0.2 s), while pages faulted in by the
 * read alone stayed fast; the read costs the same either way. */
static void prefault(const struct cpu_w *w)
{
    long pg = sysconf(_SC_PAGESIZE);
    size_t n = (size_t)w->rows * w->stride;
    if (pg <= 0 || n == 0)
        return;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < n; i += (size_t)pg)
        sink ^= w->data[i];
    sink ^= w->data[n - 1];
    (void)sink;
}

/* The model asked for huge pages over its files (model.c): measured on a
 * 2-vCPU VM, ext4, Linux 6.18, 0.6B-shaped bf16 file read cold, 85 % of it
 * then maps as huge pages, 34 % without (the loader's reads jump between
 * tensors, so readahead stays small); decode x1.12, prefill x1.04 (2
 * threads); a file 97 % huge-mapped against one 23 % so: decode x1.33,
 * prefill x1.07. An embedding that is only gathered from (untied, or its
 * lm_head quantised) is taken out again: a huge page there makes 2 MiB
 * resident per token seen, and a file cached cold is in huge pieces even
 * without the hint. With this and the norms' ax_map_release(), bench-shaped q8
 * peak RSS on such a file went from 790 to 686 MiB (q4: 490 -> 386). */
static void advise_rows(const struct cpu_ctx *c)
{
    const struct cpu_w *e = &c->embed;
    if (e->mapped && e->data != c->lm_head.data)
        ax_map_advise_rows(e->data, (size_t)e->rows * e->stride);
}

static void prefault_all(const struct cpu_ctx *c)
{
    for (int l = 0; l < c->c.n_layers; l++) {
        const struct cpu_layer *L = &c->layers[l];
        const struct cpu_w *ws[] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            prefault(ws[i]);
    }
    prefault(&c->lm_head);
}

static enum ax_err load_weights(struct cpu_ctx *c, const struct model *m, enum kq_type q, char *err)
{
    const struct qwen3_config *k = &c->c;
    c->layers = ax_calloc((size_t)k->n_layers, sizeof *c->layers);
    if (!c->layers)
        return ax_fail(err, AX_ENOMEM, "out of memory for %d layers", k->n_layers);
    enum ax_err e;
    /* The embedding is only gathered from (one row per token): as stored. */
    if ((e = load_matrix(c, m, "model.embed_tokens.weight", k->vocab, k->hidden, KQ_F32, &c->embed,
                         err)))
        return e;
    c->weight_bytes = 0;
    if (kq_is_quant(q)) {
        /* every layer's matrices in one buffer, so they get huge pages */
        size_t per = 0, H = (size_t)k->hidden, QD = (size_t)k->n_heads * k->head_dim,
               KD = (size_t)k->n_kv_heads * k->head_dim, I = (size_t)k->intermediate;
        size_t shapes[7][2] = {{QD, H}, {KD, H}, {KD, H}, {H, QD}, {I, H}, {I, H}, {H, I}};
        for (int i = 0; i < 7; i++)
            if (shapes[i][1] % KQ_BLOCK == 0)
                per += (shapes[i][0] * kq_row_bytes(q, (int)shapes[i][1]) + 63) / 64 * 64;
        size_t total = per * (size_t)k->n_layers;
        c->arena = total ? own_alloc_big(c, total) : NULL;
        c->arena_left = c->arena ? total : 0;
    }
    for (int l = 0; l < k->n_layers; l++)
        if ((e = load_layer(c, m, l, q, err)))
            return e;
    if ((e = load_vector(c, m, "model.norm.weight", k->hidden, &c->final_norm, err)))
        return e;
    const char *head = k->tied ? "model.embed_tokens.weight" : "lm_head.weight";
    if (k->tied && !kq_is_quant(q)) {
        c->lm_head = c->embed;
        c->weight_bytes += (size_t)k->vocab * c->embed.stride;
    } else if ((e = load_matrix(c, m, head, k->vocab, k->hidden, q, &c->lm_head, err))) {
        return e;
    }
    advise_rows(c);
    prefault_all(c);
    return AX_OK;
}

/* ---- configuration ----------------------------------------------------- */

static enum ax_err check_config(const struct qwen3_config *k, char *err)
{
    if (k->hidden < 1 || k->intermediate < 1 || k->n_layers < 1 || k->n_heads < 1 ||
        k->n_kv_heads < 1 || k->head_dim < 2 || k->vocab < 1 || k->max_pos < 1)
        return ax_fail(err, AX_EFORMAT,
                       "config.json: sizes must be positive (hidden %d, "
                       "intermediate %d, layers %d, heads %d, kv heads %d, head_dim %d, vocab %d)",
                       k->hidden, k->intermediate, k->n_layers, k->n_heads, k->n_kv_heads,
                       k->head_dim, k->vocab);
    if (k->head_dim % 2 || k->n_heads % k->n_kv_heads)
        return ax_fail(err, AX_EFORMAT,
                       "config.json: head_dim %d must be even and heads %d a "
                       "multiple of kv heads %d",
                       k->head_dim, k->n_heads, k->n_kv_heads);
    if (k->hidden > (1 << 16) || k->intermediate > (1 << 18) || k->head_dim > 1024 ||
        k->n_heads > 1024 || k->n_layers > 1024 || k->vocab > (1 << 24))
        return ax_fail(err, AX_EFORMAT,
                       "config.json: sizes beyond what the cpu backend "
                       "supports");
    if (!(k->rope_theta > 0) || !(k->rms_eps > 0))
        return ax_fail(err, AX_EFORMAT, "config.json: rope_theta and rms_norm_eps must be > 0");
    return AX_OK;
}

static enum ax_err parse_opts(const struct backend_opts *o, const struct qwen3_config *k,
                              struct cpu_ctx *c, enum kq_type *quant, char *err)
{
    *quant = KQ_F32; /* = as stored */
    if (o->quant && !strcmp(o->quant, "q8"))
        *quant = KQ_Q8;
    else if (o->quant && !strcmp(o->quant, "q4"))
        *quant = KQ_Q4;
    else if (o->quant && strcmp(o->quant, "none") != 0 && *o->quant)
        return ax_fail(err, AX_EINVAL, "unknown quantisation '%s' (use none, q8 or q4)", o->quant);
    if (!o->kv_type || !strcmp(o->kv_type, "f16"))
        c->kv_f16 = 1;
    else if (!strcmp(o->kv_type, "f32"))
        c->kv_f16 = 0;
    else
        return ax_fail(err, AX_EINVAL, "unknown KV cache type '%s' (use f16 or f32)", o->kv_type);
    c->kv_elem = c->kv_f16 ? 2 : 4;
    c->n_threads = o->n_threads > 0 ? o->n_threads : pool_cpu_count();
    c->n_slots = o->n_slots > 0 ? o->n_slots : 4;
    c->n_ctx = o->n_ctx > 0 ? o->n_ctx : (k->max_pos < 4096 ? k->max_pos : 4096);
    if (c->n_threads > 256 || o->n_threads < 0)
        return ax_fail(err, AX_EINVAL, "thread count %d out of range 1..256", o->n_threads);
    if (c->n_slots > 1024 || o->n_slots < 0)
        return ax_fail(err, AX_EINVAL, "slot count %d out of range 1..1024", o->n_slots);
    if (o->n_ctx < 0 || c->n_ctx > k->max_pos)
        return ax_fail(err, AX_EINVAL,
                       "context %d out of range 1..%d "
                       "(max_position_embeddings)",
                       o->n_ctx, k->max_pos);
    return AX_OK;
}

/* ---- KV cache, RoPE tables, scratch ------------------------------------ */

/* First writes into fresh pages cost a page fault each, and on a VM one
 * fault costs ~20 us: a fresh 128-token prompt spent 40 ms (of 550) faulting
 * in its KV rows. So the leading positions of every slot are written at
 * load, up to KV_TOUCH_BYTES in all, where they would be touched by the
 * first prompt anyway; the rest of a long context stays untouched until
 * positions fill it, so --ctx can be large without being resident. */
#define KV_TOUCH_BYTES ((size_t)64 << 20)

/* Writes n bytes at p: zeros, and in every 4 KiB page a stamp that makes
 * it unlike any other page. A page left all zeros can be taken back (the
 * kernel splits a huge page whose small pages are zero; a VM's host can
 * share equal pages) and the hot path pays a fault on it again. Measured
 * on a 2-vCPU VM, writing the K/V rows of a 128-token prefill with --ctx
 * 4096 (KV on 4 KiB pages), 8 runs each: without stamps 3-5 ms, but
 * 22-38 ms in 3 runs; with them 3-16 ms. Every byte of these buffers is
 * written before it is read, so no stamp is ever read. */
static void touch(void *p, size_t n)
{
    uint8_t *b = p;
    uintptr_t a = (uintptr_t)b;
    memset(b, 0, n);
    for (size_t o = 0; o + 4 <= n; o += 4096 - (a + o) % 4096) {
        /* a finite value as f16 halves and as f32 */
        uintptr_t pg = (a + o) / 4096;
        uint32_t v = (uint32_t)((pg & 0x3fff) + 1) | (uint32_t)((pg >> 14 & 0x3fff) << 16);
        memcpy(b + o, &v, 4);
    }
}

static void kv_touch(struct cpu_ctx *c)
{
    size_t row = (size_t)c->c.head_dim * c->kv_elem; /* one position of one head */
    size_t per_pos = 2 * row * (size_t)c->c.n_layers * (size_t)c->c.n_kv_heads * (size_t)c->n_slots;
    size_t n = KV_TOUCH_BYTES / per_pos;
    n = n < (size_t)c->n_ctx ? n : (size_t)c->n_ctx;
    size_t regions = (size_t)c->n_slots * (size_t)c->c.n_layers * (size_t)c->c.n_kv_heads;
    for (size_t i = 0; i < regions; i++) {
        touch(c->kcache + i * (size_t)c->n_ctx * row, n * row);
        touch(c->vcache + i * (size_t)c->n_ctx * row, n * row);
    }
}

/* Pieces of one buffer, each 64-byte aligned (the panel kernel's loads
 * want it). Laid out twice: with no base to learn the size, then over
 * the buffer. */
struct slicer {
    uint8_t *base;
    size_t used;
    int overflow;
};

static void *slice(struct slicer *s, size_t a, size_t b, size_t d)
{
    size_t n;
    if (ax_mul_overflow(a, b, &n) || ax_mul_overflow(n, d, &n) || n > SIZE_MAX - 64 - s->used) {
        s->overflow = 1;
        return NULL;
    }
    void *p = s->base ? s->base + s->used : NULL;
    s->used += (n + 63) / 64 * 64;
    return p;
}

/* The split products' numbers of each row of the layers' BF16 matrices
 * (the lm_head never has enough rows of tokens for them), made in items
 * of 64 rows on the pool. At load: each is a pass over the row. */
struct rows_job {
    const struct cpu_ctx *c;
    const struct cpu_w *w;
};

static void split_rows_item(void *arg, int i, int ith)
{
    (void)ith;
    const struct rows_job *j = arg;
    int r1 = (i + 1) * 64 < j->w->rows ? (i + 1) * 64 : j->w->rows;
    j->c->kt.split_rows(j->w->data, j->w->stride, j->w->k, i * 64, r1, j->w->rs);
}

static enum ax_err split_rows_all(struct cpu_ctx *c, char *err)
{
    for (int l = 0; l < c->c.n_layers; l++) {
        struct cpu_layer *L = &c->layers[l];
        struct cpu_w *ws[] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
            if (ws[i]->type != KQ_BF16)
                continue;
            ws[i]->rs = own_alloc(c, sizeof(struct ks_row) * (size_t)ws[i]->rows);
            if (!ws[i]->rs)
                return ax_fail(err, AX_ENOMEM, "out of memory for the split products' row data");
            struct rows_job j = {c, ws[i]};
            pool_for(c->pool, (ws[i]->rows + 63) / 64, split_rows_item, &j);
        }
    }
    return AX_OK;
}

/* An input width the split products take (kernels.h) */
static int split_fits(size_t k)
{
    return k % 4 == 0 && k <= KS_MAX_K;
}

/* The per-pass scratch (sized for cap tokens) as slices of s. */
static void scratch_slices(struct cpu_ctx *c, struct slicer *s, size_t xw, int want_xp, int want_sp)
{
    const struct qwen3_config *k = &c->c;
    size_t H = (size_t)k->hidden, D = (size_t)k->head_dim, QD = (size_t)k->n_heads * D;
    size_t I = (size_t)k->intermediate, cap = (size_t)c->cap;
    c->x = slice(s, cap, H, 4);
    c->xb = slice(s, cap, H, 4);
    c->xb2 = slice(s, cap, H, 4);
    c->q = slice(s, cap, QD, 4);
    c->att = slice(s, cap, QD, 4);
    c->k = slice(s, cap, c->kv_dim, 4);
    c->v = slice(s, cap, c->kv_dim, 4);
    c->hb = slice(s, cap, I, 4);
    c->hb2 = slice(s, cap, I, 4);
    c->xq = slice(s, cap, c->xq_stride, 1);
    /* activation panels, for BF16 weights kept as stored */
    c->xp = want_xp ? slice(s, kp_floats((int)cap, (int)xw), 4, 1) : NULL;
    c->sp = want_sp ? slice(s, ks_bytes((int)cap, (int)xw), 1, 1) : NULL;
    c->wq_stride = ks_wq_bytes((int)xw);
    c->wq = want_sp ? slice(s, (size_t)c->n_threads, c->wq_stride, 1) : NULL;
    /* attention scores: per thread, the query heads of one KV head for
     * ATTN_TOKENS tokens (rows of at most n_ctx positions) */
    c->scores = slice(s, (size_t)c->n_threads * (size_t)(k->n_heads / k->n_kv_heads),
                      (size_t)ATTN_TOKENS * (size_t)c->n_ctx, 4);
    c->attn_work =
        c->kt.attn_block ? slice(s, (size_t)c->n_threads, kern_attn_block_floats((int)D), 4) : NULL;
    c->rope_cos = slice(s, (size_t)c->n_ctx, D / 2, 4);
    c->rope_sin = slice(s, (size_t)c->n_ctx, D / 2, 4);
    c->t_tok = slice(s, cap, sizeof(int32_t), 1);
    c->t_pos = slice(s, cap, sizeof(int), 1);
    c->t_slot = slice(s, cap, sizeof(int), 1);
    c->l_row = slice(s, cap, sizeof(int), 1);
    c->l_out = slice(s, cap, sizeof(float *), 1);
    /* last: the rows past the first are touched only by batches */
    c->logits = slice(s, CPU_MAX_BATCH, (size_t)k->vocab, 4);
}

/* The KV cache on huge pages when kv_touch() writes all of it anyway.
 * Measured on a 2-vCPU VM, 128-token prefill: writing the K/V rows took
 * 2 ms in most runs but 33 ms in about one run of four on 4 KiB pages
 * (apparently the host still settling pages zeroed at load), 2 ms in every run
 * on huge pages. A longer cache stays on 4 KiB pages: a huge page would
 * make the leading positions of every head's region cost 2 MiB each. */
static uint8_t *alloc_kv(struct cpu_ctx *c, size_t cells, size_t *bytes)
{
    size_t n;
    if (ax_mul_overflow(cells, c->kv_dim, &n) || ax_mul_overflow(n, c->kv_elem, &n))
        return NULL;
    if (bytes)
        *bytes = n;
    return 2 * n <= KV_TOUCH_BYTES ? own_alloc_big(c, n) : own_alloc(c, n);
}

static enum ax_err alloc_state(struct cpu_ctx *c, char *err)
{
    const struct qwen3_config *k = &c->c;
    size_t H = (size_t)k->hidden, D = (size_t)k->head_dim, QD = (size_t)k->n_heads * D;
    size_t I = (size_t)k->intermediate, kvb = 0;
    c->kv_dim = (size_t)k->n_kv_heads * D;
    c->cap = CPU_MAX_TOKENS;
    size_t cells = (size_t)c->n_slots * (size_t)k->n_layers * (size_t)c->n_ctx;
    /* Pages past kv_touch()'s share are touched only as positions fill up. */
    c->kcache = alloc_kv(c, cells, &kvb);
    c->vcache = alloc_kv(c, cells, NULL);
    if (!c->kcache || !c->vcache)
        return ax_fail(err, AX_ENOMEM,
                       "out of memory for the KV cache (2 x %zu bytes for %d "
                       "slots x %d tokens): lower --slots or --ctx",
                       kvb, c->n_slots, c->n_ctx);
    size_t xw = H > QD ? H : QD;
    xw = xw > I ? xw : I;
    /* room for either quantised activation layout (KA_Q8I is the wider) */
    c->xq_stride = ka_row_bytes(KQ_Q8I, (int)xw);
    /* BF16 prefill: split products where the CPU has them and every
     * input width suits them, else exact ones from panels */
    int bf16 = c->layers[0].q.type == KQ_BF16 && !c->bf16_act;
    c->split = bf16 && c->kt.split && !c->exact_prefill && split_fits(H) && split_fits(QD) &&
               split_fits(I);
    int want_xp = bf16 && c->kt.panel && !c->split;
    if (c->split) {
        enum ax_err e = split_rows_all(c, err);
        if (e)
            return e;
    }
    /* one buffer, so that it gets huge pages as the KV cache does */
    struct slicer s = {0};
    scratch_slices(c, &s, xw, want_xp, c->split);
    uint8_t *base = s.overflow ? NULL : own_alloc_big(c, s.used + 64);
    if (!base)
        return ax_fail(err, AX_ENOMEM, "out of memory for the cpu backend's scratch buffers");
    s = (struct slicer){base + (64 - (uintptr_t)base % 64) % 64, 0, 0};
    scratch_slices(c, &s, xw, want_xp, c->split);
    kv_touch(c);
    /* The per-pass scratch is written by every pass: fault it in now too,
     * up to the first sequence's logits (the others are for batches). */
    touch(s.base, (size_t)((uint8_t *)(c->logits + k->vocab) - s.base));
    /* inv_freq[i] = theta^(-2i/D); angles in double, stored as f32 */
    for (int p = 0; p < c->n_ctx; p++)
        for (size_t i = 0; i < D / 2; i++) {
            double a = p * pow(k->rope_theta, -2.0 * (double)i / (double)D);
            c->rope_cos[(size_t)p * (D / 2) + i] = (float)cos(a);
            c->rope_sin[(size_t)p * (D / 2) + i] = (float)sin(a);
        }
    return AX_OK;
}

/* One decode step (token 0 into slot 0, position 0, which any sequence
 * in that slot overwrites) before the first request, as llama.cpp's
 * server and bench also warm up at load. Measured on a 2-vCPU VM, 0.6B
 * shape: the first 128-token prompt after load ran at 0.65-0.75x the
 * speed of later ones (bf16, 1 and 2 threads); after this step it runs
 * at their speed. Not page faults (156 in that prompt) nor first reads
 * of the weights (reading every line of them at load changed nothing).
 * Returns the milliseconds spent. */
static double warm_up(struct cpu_ctx *c)
{
    float *logits = ax_mallocarray((size_t)c->c.vocab, sizeof *logits);
    if (!logits)
        return 0; /* only a speed-up: skipped if memory is that short */
    double t0 = ax_now_ms();
    int32_t tok = 0;
    struct backend_seq s = {0, &tok, 1, 0, logits};
    char err[AX_ERRLEN];
    if (cpu_forward(c, &s, 1, err) != AX_OK)
        ax_warn("cpu: warm-up step failed: %s", err);
    ax_free(logits);
    return ax_now_ms() - t0;
}

/* ---- backend interface ------------------------------------------------- */

static const struct backend_ops cpu_ops = {
    .version = BACKEND_IFACE_VERSION,
    .name = "cpu",
    .caps = BACKEND_CAP_BATCH,
    .forward = cpu_forward,
    .healthy = NULL,
    .free = ctx_free,
};

enum ax_err cpu_backend_open(const struct backend_opts *opts, const struct model *m,
                             struct backend *b, char *err)
{
    if (model_kind(m) != MODEL_HF)
        return ax_fail(err, AX_EUNSUPPORTED,
                       "the cpu backend needs an HF checkpoint "
                       "(config.json + safetensors) in %s",
                       model_dir(m));
    struct cpu_ctx *c = ax_calloc(1, sizeof *c);
    if (!c)
        return ax_fail(err, AX_ENOMEM, "out of memory opening the cpu backend");
    c->magic = CPU_MAGIC;
    c->c = *model_config(m);
    enum kq_type quant;
    enum ax_err e = check_config(&c->c, err);
    if (!e)
        e = parse_opts(opts, &c->c, c, &quant, err);
    if (!e) {
        kern_table_init_ref(&c->kt);
        kern_arch_init(&c->kt);
        /* the kernels pick the layout of the quantised weights */
        quant = quant == KQ_Q8 ? c->kt.q8_type : quant == KQ_Q4 ? c->kt.q4_type : quant;
        c->quant_act = kern_act_quantiser(&c->kt, quant);
        c->bf16_act = opts->bf16_act && c->kt.mm_bf16_act;
        c->exact_prefill = opts->exact_prefill;
        if (opts->bf16_act && !c->kt.mm_bf16_act)
            ax_warn("cpu: --bf16-act needs AVX512-BF16, which this CPU lacks; "
                    "keeping exact f32 activations");
        e = pool_create(c->n_threads, &c->pool, err);
    }
    if (!e)
        e = load_weights(c, m, quant, err);
    if (!e)
        e = alloc_state(c, err);
    if (e) {
        ctx_free(c);
        return e;
    }
    double warm_ms = warm_up(c);
    const char *act = c->bf16_act ? "on" : c->split ? "off (split prefill products)" : "off";
    ax_info("cpu: kernels %s, %d threads, weights %s (%.1f MiB read per token), KV %s, "
            "%d slots x %d tokens, bf16 activations %s, warm-up step %.0f ms",
            c->kt.name, c->n_threads, kq_is_quant(quant) ? kq_name(quant) : "as stored",
            (double)c->weight_bytes / 1048576.0, c->kv_f16 ? "f16" : "f32", c->n_slots, c->n_ctx,
            act, warm_ms);
    b->ops = &cpu_ops;
    b->ctx = c;
    b->lim.n_ctx = c->n_ctx;
    b->lim.n_slots = c->n_slots;
    b->lim.prefill_chunk = CPU_MAX_TOKENS;
    b->lim.n_vocab = c->c.vocab;
    b->lim.max_batch = CPU_MAX_BATCH;
    return AX_OK;
}

size_t cpu_backend_weight_bytes(const struct backend *b)
{
    if (!b || b->ops != &cpu_ops)
        return 0;
    const struct cpu_ctx *c = b->ctx;
    return c->magic == CPU_MAGIC ? c->weight_bytes : 0;
}
