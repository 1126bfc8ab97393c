/* decode.c - ids back to text, whole (tok_decode) or streamed (tok_stream_*).
 *
 * HF's ByteLevel decoder joins the bytes of all tokens and converts them
 * once with Rust's String::from_utf8_lossy: each maximal prefix of a valid
 * sequence that is cut short (or a byte that starts nothing) becomes one
 * U+FFFD, and decoding resumes at the byte that broke it. The stream keeps
 * only an incomplete trailing sequence (at most 3 bytes), so its output is
 * the same bytes as tok_decode of all the ids pushed. */
#include <assert.h>
#include <string.h>

#include "tok/tok_int.h"

static const char fffd[] = "\xEF\xBF\xBD";

/* Length of the valid sequence at b (1..4), 0 if it is cut short by the end
 * of input (only when !final), or -(k) for an invalid prefix of k bytes. */
static int utf8_step(const uint8_t *b, size_t n)
{
    uint8_t c = b[0];
    if (c < 0x80)
        return 1;
    int k;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        k = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else
        return -1;
    for (int i = 1; i < k; i++) {
        if ((size_t)i >= n)
            return 0; /* valid so far, incomplete */
        uint8_t d = b[i];
        int ok = i == 1 ? (d >= lo && d <= hi) : (d & 0xC0) == 0x80;
        if (!ok)
            return -i;
    }
    return k;
}

enum ax_err tok_utf8_lossy(const uint8_t *b, size_t n, int final, struct ax_buf *out, size_t *used)
{
    size_t i = 0, run = 0;
    enum ax_err e = AX_OK;
    while (i < n) {
        int s = b[i] < 0x80 ? 1 : utf8_step(b + i, n - i);
        if (s > 0) {
            i += (size_t)s;
            continue;
        }
        if (i > run && (e = ax_buf_append(out, b + run, i - run)) != AX_OK)
            return e;
        run = i;
        if (s == 0 && !final)
            break; /* keep the incomplete tail */
        if ((e = ax_buf_append(out, fffd, 3)) != AX_OK)
            return e;
        i += s == 0 ? n - i : (size_t)-s;
        run = i;
    }
    if (i > run && (e = ax_buf_append(out, b + run, i - run)) != AX_OK)
        return e;
    *used = i;
    return AX_OK;
}

static enum ax_err bad_id(int32_t id, const struct tok *t, char *err)
{
    return ax_fail(err, AX_ERANGE, "token id %d is not in the vocabulary (0..%u)", (int)id,
                   t->n_ids ? t->n_ids - 1 : 0);
}

enum ax_err tok_decode(const struct tok *t, const int32_t *ids, size_t n, int skip_special,
                       struct ax_buf *out, char *err)
{
    struct tok_stream s;
    tok_stream_init(&s, t, skip_special);
    for (size_t i = 0; i < n; i++) {
        enum ax_err e = tok_stream_push(&s, ids[i], out, err);
        if (e != AX_OK)
            return e;
    }
    return tok_stream_flush(&s, out, err);
}

void tok_stream_init(struct tok_stream *s, const struct tok *t, int skip_special)
{
    assert(t && t->magic == TOK_MAGIC);
    s->t = t;
    s->skip_special = skip_special;
    s->n_pending = 0;
}

enum ax_err tok_stream_push(struct tok_stream *s, int32_t id, struct ax_buf *out, char *err)
{
    size_t len;
    const uint8_t *b = (const uint8_t *)tok_bytes(s->t, id, &len);
    if (!b)
        return bad_id(id, s->t, err);
    if (s->skip_special && tok_is_special(s->t, id))
        return AX_OK;
    enum ax_err e;
    size_t used;
    /* finish the pending sequence with the first bytes of this token */
    while (s->n_pending > 0 && len > 0) {
        s->pending[s->n_pending++] = (char)*b++;
        len--;
        if ((e = tok_utf8_lossy((const uint8_t *)s->pending, s->n_pending, 0, out, &used)) != AX_OK)
            return ax_fail(err, e, "detokenizer: output too large");
        memmove(s->pending, s->pending + used, s->n_pending - used);
        s->n_pending -= used;
    }
    if ((e = tok_utf8_lossy(b, len, 0, out, &used)) != AX_OK)
        return ax_fail(err, e, "detokenizer: output too large");
    memcpy(s->pending + s->n_pending, b + used, len - used); /* < 4 bytes */
    s->n_pending += len - used;
    return AX_OK;
}

enum ax_err tok_stream_flush(struct tok_stream *s, struct ax_buf *out, char *err)
{
    size_t used;
    enum ax_err e = tok_utf8_lossy((const uint8_t *)s->pending, s->n_pending, 1, out, &used);
    s->n_pending = 0;
    return e == AX_OK ? AX_OK : ax_fail(err, e, "detokenizer: output too large");
}
