/* bench_tok.c - single-threaded throughput of src/tok/ on one text file:
 * load time, encode MB/s, decode MB/s, and the same encode with a naive BPE
 * for comparison. Prints one JSON object. Used by bench/tokenizer/run.sh.
 *
 * The naive baseline is what a straightforward port does: the same NFC and
 * split, then per piece a list of byte strings; each round builds the string
 * key of every adjacent pair, looks its rank up in a hash table keyed by the
 * two strings, merges the lowest, and repeats; finally each string is looked
 * up in the vocabulary. Its output must equal ours (checked).
 *
 * The text is fed in chunks of whole lines of at most 4000 bytes (see
 * next_chunk); times are process CPU time, best of REPS.
 *
 * usage: bench_tok TOKENIZER_JSON TEXT_FILE */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tok/tok.h"
#include "tok/tok_int.h"
#include "util/file.h"
#include "util/mem.h"

#define REPS 5

/* CPU time of the process, not wall time: the machine is shared, and a
 * preempted run should not count the time it waited. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- naive BPE: string-keyed merge table ---------------------------- */

struct skey {
    char *k; /* len(a) byte, a, b */
    size_t n;
    uint32_t rank;
};

struct naive {
    struct skey *tab;
    size_t mask;
};

static size_t slot(const struct naive *nv, const char *k, size_t n)
{
    size_t i = (size_t)tok_hash_bytes((const uint8_t *)k, n) & nv->mask;
    while (nv->tab[i].k && !(nv->tab[i].n == n && !memcmp(nv->tab[i].k, k, n)))
        i = (i + 1) & nv->mask;
    return i;
}

static size_t make_key(char *buf, const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
    buf[0] = (char)na;
    memcpy(buf + 1, a, na);
    memcpy(buf + 1 + na, b, nb);
    return 1 + na + nb;
}

static int naive_build(struct naive *nv, const struct tok *t)
{
    nv->mask = (size_t)t->mmask;
    nv->tab = ax_calloc(nv->mask + 1, sizeof *nv->tab);
    if (!nv->tab)
        return -1;
    char key[600];
    for (size_t i = 0; i <= t->mmask; i++) {
        const struct tok_merge *m = &t->mtab[i];
        if (m->a == UINT32_MAX)
            continue;
        size_t n = make_key(key, (const uint8_t *)t->blob + t->voc_off[m->a], t->voc_len[m->a],
                            (const uint8_t *)t->blob + t->voc_off[m->b], t->voc_len[m->b]);
        size_t s = slot(nv, key, n);
        nv->tab[s].k = ax_strndup(key, n);
        nv->tab[s].n = n;
        nv->tab[s].rank = m->rank;
    }
    return 0;
}

static void naive_free(struct naive *nv)
{
    for (size_t i = 0; i <= nv->mask; i++)
        ax_free(nv->tab[i].k);
    ax_free(nv->tab);
}

/* parts are (offset, length) into the piece */
static size_t naive_piece(const struct naive *nv, const struct tok *t, const uint8_t *p, size_t len,
                          uint32_t (*part)[2], int32_t *out)
{
    size_t np = len;
    char key[600];
    for (size_t i = 0; i < len; i++) {
        part[i][0] = (uint32_t)i;
        part[i][1] = 1;
    }
    for (;;) {
        uint32_t best = UINT32_MAX;
        size_t at = 0;
        for (size_t i = 0; i + 1 < np; i++) {
            if (part[i][1] + part[i + 1][1] > 255)
                continue;
            size_t n =
                make_key(key, p + part[i][0], part[i][1], p + part[i + 1][0], part[i + 1][1]);
            const struct skey *s = &nv->tab[slot(nv, key, n)];
            if (s->k && s->rank < best) {
                best = s->rank;
                at = i;
            }
        }
        if (best == UINT32_MAX)
            break;
        part[at][1] += part[at + 1][1];
        memmove(part + at + 1, part + at + 2, (np - at - 2) * sizeof *part);
        np--;
    }
    size_t k = 0;
    for (size_t i = 0; i < np; i++) {
        int32_t id = tok_vocab_find(t, p + part[i][0], part[i][1]);
        if (id >= 0)
            out[k++] = id;
    }
    return k;
}

/* Encodes like tok_encode (no added tokens in the bench text matter: they
 * are split out the same way by checking for '<' runs is not needed since
 * the comparison is on texts where ours == naive is checked). */
static size_t naive_encode(const struct naive *nv, const struct tok *t, const uint8_t *s, size_t n,
                           uint32_t (*part)[2], int32_t *out)
{
    uint8_t *norm = NULL;
    size_t nn = n, k = 0, i = 0;
    char err[AX_ERRLEN];
    if (tok_nfc_needed(t, s, n) && tok_nfc(t, s, n, &norm, &nn, err) == AX_OK)
        s = norm;
    while (i < nn) {
        size_t l = tok_split_next(t, s, i, nn);
        k += naive_piece(nv, t, s + i, l, part, out + k);
        i += l;
    }
    ax_free(norm);
    return k;
}

/* The text is encoded in chunks of whole lines of at most CHUNK bytes (a
 * longer line is a chunk of its own), as prompts come, and as hf_bench.js
 * does with the same rule. */
#define CHUNK 4000

static size_t next_chunk(const char *s, size_t i, size_t n)
{
    size_t end = i;
    while (end < n) {
        const char *nl = memchr(s + end, '\n', n - end);
        size_t line_end = nl ? (size_t)(nl - s) + 1 : n;
        if (end > i && line_end - i > CHUNK)
            break;
        end = line_end;
    }
    return end;
}

static enum ax_err encode_chunks(const struct tok *t, const char *s, size_t n, int32_t *ids,
                                 size_t *n_ids, char *err)
{
    *n_ids = 0;
    for (size_t i = 0; i < n;) {
        size_t end = next_chunk(s, i, n), k = 0;
        enum ax_err e = tok_encode_cap(t, s + i, end - i, ids + *n_ids, tok_max_ids(end - i),
                                       &k, err);
        if (e != AX_OK)
            return e;
        *n_ids += k;
        i = end;
    }
    return AX_OK;
}

static size_t naive_encode(const struct naive *nv, const struct tok *t, const uint8_t *s,
                           size_t n, uint32_t (*part)[2], int32_t *out);

static size_t naive_chunks(const struct naive *nv, const struct tok *t, const char *s, size_t n,
                           uint32_t (*part)[2], int32_t *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t end = next_chunk(s, i, n);
        k += naive_encode(nv, t, (const uint8_t *)s + i, end - i, part, out + k);
        i = end;
    }
    return k;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench_tok TOKENIZER_JSON TEXT_FILE\n");
        return 2;
    }
    char err[AX_ERRLEN];
    struct tok *t = NULL;
    double load = 1e9;
    for (int r = 0; r < 3; r++) {
        struct tok *x = NULL;
        double t0 = now();
        if (tok_load(argv[1], &x, err) != AX_OK) {
            fprintf(stderr, "bench_tok: %s\n", err);
            return 1;
        }
        double dt = now() - t0;
        load = dt < load ? dt : load;
        if (t)
            tok_free(x);
        else
            t = x;
    }
    char *text;
    size_t len;
    if (ax_file_read(argv[2], (size_t)1 << 30, &text, &len, err) != AX_OK) {
        fprintf(stderr, "bench_tok: %s\n", err);
        return 1;
    }
    /* added tokens are not in the bench text's way: drop '<' so the naive
     * path (which has no added-token matching) sees the same pieces */
    for (size_t i = 0; i < len; i++)
        if (text[i] == '<')
            text[i] = '(';
    size_t cap = tok_max_ids(len) + tok_max_ids(CHUNK) * (len / CHUNK + 1), n = 0;
    int32_t *ids = ax_mallocarray(cap, sizeof *ids), *ids2 = ax_mallocarray(cap, sizeof *ids2);
    uint32_t(*part)[2] = ax_mallocarray(len + 1, sizeof *part);
    double enc = 1e9, dec = 1e9, nai = 1e9;
    struct ax_buf out;
    ax_buf_init(&out, (size_t)1 << 32);
    for (int r = 0; r < REPS; r++) {
        double t0 = now();
        if (encode_chunks(t, text, len, ids, &n, err) != AX_OK) {
            fprintf(stderr, "bench_tok: %s\n", err);
            return 1;
        }
        double t1 = now();
        ax_buf_reset(&out);
        if (tok_decode(t, ids, n, 0, &out, err) != AX_OK) {
            fprintf(stderr, "bench_tok: %s\n", err);
            return 1;
        }
        double t2 = now();
        enc = t1 - t0 < enc ? t1 - t0 : enc;
        dec = t2 - t1 < dec ? t2 - t1 : dec;
    }
    struct naive nv;
    if (naive_build(&nv, t) != 0)
        return 1;
    size_t n2 = 0;
    for (int r = 0; r < 2; r++) {
        double t0 = now();
        n2 = naive_chunks(&nv, t, text, len, part, ids2);
        double dt = now() - t0;
        nai = dt < nai ? dt : nai;
    }
    int same = n2 == n && !memcmp(ids, ids2, n * sizeof *ids);
    double mb = (double)len / 1e6;
    printf("{\"bytes\":%zu,\"tokens\":%zu,\"load_ms\":%.1f,\"encode_mbs\":%.2f,"
           "\"decode_mbs\":%.2f,\"naive_encode_mbs\":%.2f,\"naive_same\":%s}\n",
           len, n, load * 1e3, mb / enc, (double)out.len / 1e6 / dec, mb / nai,
           same ? "true" : "false");
    naive_free(&nv);
    ax_buf_free(&out);
    ax_free(part);
    ax_free(ids);
    ax_free(ids2);
    ax_free(text);
    tok_free(t);
    return same ? 0 : 1;
}
