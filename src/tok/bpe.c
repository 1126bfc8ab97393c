/* bpe.c - encoding: added tokens found in the raw text, then for the text
 * between them NFC, the split regex and byte-level BPE per piece.
 *
 * BPE works on token ids, never on strings: a piece starts as one id per
 * byte; the adjacent pair with the lowest merge rank (leftmost on ties) is
 * merged, again and again, exactly as HF's Word::merge_all does with its
 * binary heap of (rank, position). Merges are found in an open-addressing
 * table keyed by the id pair. Most pieces of natural text are themselves
 * tokens; for those the answer is memoised per token in t->reach (one
 * atomic byte per id: bounded, lock-free, the same for every thread).
 * Other short pieces go through a small self-checking cache (below). */
#include <assert.h>
#include <string.h>

#include "tok/tok_int.h"
#include "util/mem.h"

/* ---- merge heap ----------------------------------------------------- */

struct tok_sym {
    int32_t id;
    int32_t prev, next; /* neighbours, -1 at the ends */
    uint32_t len;       /* bytes covered; 0 once merged into the left neighbour */
};

struct tok_heap_ent {
    uint32_t rank, pos, id; /* merge rank, left symbol, merged id */
    int32_t a, b;           /* the pair it was made for */
};

static inline int heap_less(const struct tok_heap_ent *a, const struct tok_heap_ent *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(struct tok_heap_ent *h, size_t *n, struct tok_heap_ent e)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static struct tok_heap_ent heap_pop(struct tok_heap_ent *h, size_t *n)
{
    struct tok_heap_ent top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && heap_less(&h[c + 1], &h[c]))
            c++;
        if (!heap_less(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0)
        h[i] = last;
    return top;
}

static void push_pair(const struct tok *t, struct tok_sym *sym, struct tok_heap_ent *h, size_t *nh,
                      int32_t pos)
{
    if (pos < 0 || sym[pos].next < 0)
        return;
    int32_t nx = sym[pos].next;
    const struct tok_merge *m = tok_merge_find(t, (uint32_t)sym[pos].id, (uint32_t)sym[nx].id);
    if (m)
        heap_push(h, nh,
                  (struct tok_heap_ent){m->rank, (uint32_t)pos, m->id, sym[pos].id, sym[nx].id});
}

void tok_bpe_scratch_free(struct tok_bpe_scratch *s)
{
    ax_free(s->sym);
    ax_free(s->heap);
    s->sym = NULL;
    s->heap = NULL;
    s->cap = 0;
}

static enum ax_err scratch_fit(struct tok_bpe_scratch *s, size_t n, char *err)
{
    if (n <= s->cap)
        return AX_OK;
    struct tok_sym *sym = ax_mallocarray(n, sizeof *sym);
    /* each merge pops one entry and pushes at most two: the heap holds < 2n */
    struct tok_heap_ent *h = ax_mallocarray(n, 2 * sizeof *h);
    if (!sym || !h) {
        ax_free(sym);
        ax_free(h);
        return ax_fail(err, AX_ENOMEM, "tokenizer: out of memory (piece of %zu bytes)", n);
    }
    tok_bpe_scratch_free(s);
    s->sym = sym;
    s->heap = h;
    s->cap = n;
    return AX_OK;
}

/* The merge loop. A popped merge is stale when its left symbol was merged
 * away or its pair changed. HF checks that the current pair merges to the
 * same id; the same thing, since symbols only grow: a symbol at a given
 * position with a given id always covers the same bytes. */
static size_t bpe_merge(const struct tok *t, const uint8_t *p, size_t len, struct tok_sym *sym,
                        struct tok_heap_ent *h, int32_t *out)
{
    size_t ns = 0, nh = 0;
    for (size_t i = 0; i < len; i++) {
        int32_t id = t->byte_id[p[i]];
        if (id < 0)
            continue; /* no token for this byte and no unk: HF drops it */
        sym[ns] = (struct tok_sym){id, (int32_t)ns - 1, (int32_t)ns + 1, 1};
        ns++;
    }
    if (ns == 0)
        return 0;
    sym[ns - 1].next = -1;
    for (size_t i = 0; i + 1 < ns; i++)
        push_pair(t, sym, h, &nh, (int32_t)i);
    while (nh > 0) {
        struct tok_heap_ent m = heap_pop(h, &nh);
        struct tok_sym *a = &sym[m.pos];
        if (a->len == 0 || a->next < 0)
            continue;
        struct tok_sym *b = &sym[a->next];
        if (a->id != m.a || b->id != m.b)
            continue;
        a->id = (int32_t)m.id;
        a->len += b->len;
        b->len = 0;
        a->next = b->next;
        if (a->next >= 0)
            sym[a->next].prev = (int32_t)m.pos;
        push_pair(t, sym, h, &nh, a->prev);
        push_pair(t, sym, h, &nh, (int32_t)m.pos);
    }
    size_t n = 0;
    for (int32_t i = 0; i >= 0; i = sym[i].next)
        out[n++] = sym[i].id;
    return n;
}

/* ---- piece cache ------------------------------------------------------
 * Direct-mapped, TOK_PCACHE_SLOTS words. A slot holds the BPE result of
 * some piece of up to three tokens: count << 60 | id2 << 40 | id1 << 20 | id0.
 * The value checks itself: it is used only if the bytes of its tokens spell
 * the piece exactly, and then it is the BPE of those bytes, whichever
 * thread wrote it and whatever piece hashed there. So one relaxed atomic
 * word per slot is enough: no locks, no torn entries, a bounded size. */

static int cache_get(const struct tok *t, uint64_t h, const uint8_t *p, size_t len, int32_t *out,
                     size_t *n)
{
    uint64_t v = atomic_load_explicit(&t->pcache[h & (TOK_PCACHE_SLOTS - 1)], memory_order_relaxed);
    size_t k = (size_t)(v >> 60), off = 0;
    if (k == 0 || k > 3)
        return 0;
    int32_t ids[3];
    for (size_t i = 0; i < k; i++) {
        uint32_t id = (uint32_t)(v >> (20 * i)) & 0xFFFFF;
        if (id >= t->n_ids || t->voc_len[id] > len - off ||
            memcmp(t->blob + t->voc_off[id], p + off, t->voc_len[id]) != 0)
            return 0;
        off += t->voc_len[id];
        ids[i] = (int32_t)id;
    }
    if (off != len)
        return 0;
    memcpy(out + *n, ids, k * sizeof *ids);
    *n += k;
    return 1;
}

static void cache_put(const struct tok *t, uint64_t h, const int32_t *ids, size_t k)
{
    if (k == 0 || k > 3 || t->n_ids > (1u << 20))
        return;
    uint64_t v = (uint64_t)k << 60;
    for (size_t i = 0; i < k; i++)
        v |= (uint64_t)ids[i] << (20 * i);
    atomic_store_explicit(&t->pcache[h & (TOK_PCACHE_SLOTS - 1)], v, memory_order_relaxed);
}

/* Hottest function: called once per piece. */
enum ax_err tok_bpe_piece(const struct tok *t, const uint8_t *p, size_t len,
                          struct tok_bpe_scratch *s, int32_t *out, size_t *n, char *err)
{
    if (len == 1) {
        if (t->byte_id[p[0]] >= 0)
            out[(*n)++] = t->byte_id[p[0]];
        return AX_OK;
    }
    uint64_t h = tok_hash_bytes(p, len);
    int32_t whole = tok_vocab_find_h(t, p, len, h);
    if (whole >= 0) {
        uint8_t r =
            t->ignore_merges ? 1 : atomic_load_explicit(&t->reach[whole], memory_order_relaxed);
        if (r == 1) {
            out[(*n)++] = whole;
            return AX_OK;
        }
    }
    uint64_t ch = h >> 24 ^ h; /* other bits than the vocab hash's slot */
    if (whole < 0 && cache_get(t, ch, p, len, out, n))
        return AX_OK;
    struct tok_sym sym_small[64];
    struct tok_heap_ent heap_small[128];
    struct tok_sym *sym = sym_small;
    struct tok_heap_ent *heap = heap_small;
    if (len > 64) {
        enum ax_err e = scratch_fit(s, len, err);
        if (e != AX_OK)
            return e;
        sym = s->sym;
        heap = s->heap;
        if (!sym || !heap) /* cannot happen: scratch_fit allocated both */
            return ax_fail(err, AX_ENOMEM, "tokenizer: no BPE scratch");
    }
    size_t k = bpe_merge(t, p, len, sym, heap, out + *n);
    if (whole >= 0)
        atomic_store_explicit(&t->reach[whole], (uint8_t)(k == 1 && out[*n] == whole ? 1 : 2),
                              memory_order_relaxed);
    else
        cache_put(t, ch, out + *n, k);
    *n += k;
    return AX_OK;
}

/* ---- encode ----------------------------------------------------------- */

struct enc {
    const struct tok *t;
    int32_t *out;
    size_t n, cap;
    struct tok_bpe_scratch bpe;
    char *err;
};

/* Splits normalized text into pieces and appends their BPE ids. */
static enum ax_err encode_pieces(struct enc *e, const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t l = tok_split_next(e->t, s, i, n);
        if (e->n + l > e->cap)
            return ax_fail(e->err, AX_ETOOBIG,
                           "tokenizer: more than %zu tokens (output buffer too small)", e->cap);
        enum ax_err r = tok_bpe_piece(e->t, s + i, l, &e->bpe, e->out, &e->n, e->err);
        if (r != AX_OK)
            return r;
        i += l;
    }
    return AX_OK;
}

static enum ax_err encode_text(struct enc *e, const uint8_t *s, size_t n)
{
    if (!e->t->nfc || !tok_nfc_needed(e->t, s, n))
        return encode_pieces(e, s, n);
    uint8_t *norm = NULL;
    size_t nn = 0;
    enum ax_err r = tok_nfc(e->t, s, n, &norm, &nn, e->err);
    if (r == AX_OK)
        r = encode_pieces(e, norm, nn);
    ax_free(norm);
    return r;
}

/* Leftmost-longest match of an added token at or after s[i]: HF matches
 * them with an Aho-Corasick automaton in that mode. t->added is sorted
 * longest first, so the first hit at a position is the longest. */
static const struct tok_added *find_added(const struct tok *t, const uint8_t *s, size_t n,
                                          size_t *pos, int normalized)
{
    for (size_t i = *pos; i < n; i++) {
        if (!t->added_first[s[i]])
            continue;
        for (size_t k = 0; k < t->n_added; k++) {
            const struct tok_added *a = &t->added[k];
            if (a->normalized != normalized || a->len > n - i)
                continue;
            if (!memcmp(s + i, t->blob + a->off, a->len)) {
                *pos = i;
                return a;
            }
        }
    }
    return NULL;
}

/* Text between non-normalized added tokens: NFC, then the normalized ones. */
static enum ax_err encode_segment(struct enc *e, const uint8_t *s, size_t n)
{
    int any_norm = 0;
    for (size_t k = 0; k < e->t->n_added; k++)
        any_norm |= e->t->added[k].normalized;
    if (!any_norm)
        return encode_text(e, s, n);
    uint8_t *norm = NULL;
    size_t nn = n;
    enum ax_err r = AX_OK;
    if (e->t->nfc && tok_nfc_needed(e->t, s, n)) {
        if ((r = tok_nfc(e->t, s, n, &norm, &nn, e->err)) != AX_OK)
            return r;
        s = norm;
    }
    size_t i = 0;
    while (r == AX_OK && i < nn) {
        size_t at = i;
        const struct tok_added *a = find_added(e->t, s, nn, &at, 1);
        size_t stop = a ? at : nn;
        if (stop > i)
            r = encode_pieces(e, s + i, stop - i);
        if (r == AX_OK && a) {
            if (e->n >= e->cap)
                r = ax_fail(e->err, AX_ETOOBIG, "tokenizer: output buffer too small");
            else
                e->out[e->n++] = a->id;
        }
        i = a ? at + a->len : nn;
    }
    ax_free(norm);
    return r;
}

static int utf8_valid(const uint8_t *s, size_t n, size_t *bad)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint8_t lo = 0x80, hi = 0xBF;
        if (b >= 0xC2 && b <= 0xDF)
            k = 1;
        else if (b >= 0xE0 && b <= 0xEF) {
            k = 2;
            if (b == 0xE0)
                lo = 0xA0;
            if (b == 0xED)
                hi = 0x9F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            k = 3;
            if (b == 0xF0)
                lo = 0x90;
            if (b == 0xF4)
                hi = 0x8F;
        } else {
            *bad = i;
            return 0;
        }
        if (i + k >= n) { /* truncated sequence at the end */
            *bad = i;
            return 0;
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            *bad = i;
            return 0;
        }
        for (size_t j = 2; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80) {
                *bad = i;
                return 0;
            }
        i += k + 1;
    }
    return 1;
}

enum ax_err tok_encode_cap(const struct tok *t, const char *text, size_t len, int32_t *out,
                           size_t cap, size_t *n_out, char *err)
{
    assert(t && t->magic == TOK_MAGIC);
    *n_out = 0;
    const uint8_t *s = (const uint8_t *)text;
    size_t bad = 0;
    if (!utf8_valid(s, len, &bad))
        return ax_fail(err, AX_EUTF8, "tokenizer: invalid UTF-8 at byte %zu of the input", bad);
    struct enc e = {.t = t, .out = out, .cap = cap, .err = err};
    enum ax_err r = AX_OK;
    size_t i = 0;
    while (r == AX_OK && i < len) {
        size_t at = i;
        const struct tok_added *a = t->n_added ? find_added(t, s, len, &at, 0) : NULL;
        size_t stop = a ? at : len;
        if (stop > i)
            r = encode_segment(&e, s + i, stop - i);
        if (r == AX_OK && a) {
            if (e.n >= e.cap)
                r = ax_fail(err, AX_ETOOBIG, "tokenizer: output buffer too small");
            else
                out[e.n++] = a->id;
        }
        i = a ? at + a->len : len;
    }
    tok_bpe_scratch_free(&e.bpe);
    if (r == AX_OK)
        *n_out = e.n;
    return r;
}

enum ax_err tok_encode(const struct tok *t, const char *text, size_t len, int32_t *out,
                       size_t *n_out, char *err)
{
    return tok_encode_cap(t, text, len, out, len + 1, n_out, err);
}

size_t tok_max_ids(size_t len)
{
    return len > (SIZE_MAX - 16) / 3 ? SIZE_MAX / sizeof(int32_t) : 3 * len + 16;
}
