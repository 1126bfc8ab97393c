/* fuzz_tok_encode.c - tok_encode on arbitrary bytes with the real Qwen3
 * tokenizer (build/tokenizer-qwen3/tokenizer.json, relative to the current
 * directory; without it every input is skipped). Invalid UTF-8 must be
 * AX_EUTF8; valid text must decode back to exactly its NFC form, and the
 * stream decoder must agree with tok_decode.
 * Added tokens are matched before NFC (as HF does), so each piece between
 * them is normalised on its own: "<|x|>" then U+0338 stays ">" + U+0338,
 * where NFC of the whole text would compose the two into U+226F. When an
 * added token split the text, the decoded text need only have the input's
 * NFC form (NFC of NFC'd pieces, joined, is NFC of the join). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok.h"
#include "tok/tok_int.h"
#include "util/mem.h"

static struct tok *qwen;
static int tried;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_bytes(const struct ax_buf *b, const uint8_t *p, size_t n)
{
    return b->len == n && (n == 0 || memcmp(b->data, p, n) == 0);
}

static int has_added(const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (qwen->flags[ids[i]] & TF_ADDED)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[AX_ERRLEN];
    if (!tried) {
        tried = 1;
        if (tok_load("build/tokenizer-qwen3/tokenizer.json", &qwen, err) != AX_OK)
            qwen = NULL;
    }
    if (!qwen || size > 1 << 16)
        return 0;
    size_t cap = tok_max_ids(size), n = 0;
    int32_t *ids = ax_mallocarray(cap, sizeof *ids);
    if (!ids)
        return 0;
    enum ax_err e = tok_encode_cap(qwen, (const char *)data, size, ids, cap, &n, err);
    if (e == AX_EUTF8) {
        ax_free(ids);
        return 0;
    }
    if (e != AX_OK)
        abort();
    uint8_t *norm = NULL;
    size_t nn = 0;
    if (tok_nfc(qwen, data, size, &norm, &nn, err) != AX_OK)
        abort();
    struct ax_buf whole, streamed;
    ax_buf_init(&whole, (size_t)1 << 24);
    ax_buf_init(&streamed, (size_t)1 << 24);
    if (tok_decode(qwen, ids, n, 0, &whole, err) != AX_OK)
        abort();
    if (!same_bytes(&whole, norm, nn)) {
        uint8_t *renorm = NULL;
        size_t rn = 0;
        if (!has_added(ids, n) ||
            tok_nfc(qwen, (const uint8_t *)whole.data, whole.len, &renorm, &rn, err) != AX_OK)
            abort(); /* decode(encode(x)) != NFC(x) */
        struct ax_buf r = {.data = (char *)renorm, .len = rn};
        if (!same_bytes(&r, norm, nn))
            abort(); /* NFC(decode(encode(x))) != NFC(x) */
        ax_free(renorm);
    }
    struct tok_stream s;
    tok_stream_init(&s, qwen, 1);
    ax_buf_reset(&whole);
    if (tok_decode(qwen, ids, n, 1, &whole, err) != AX_OK)
        abort();
    for (size_t i = 0; i < n; i++)
        if (tok_stream_push(&s, ids[i], &streamed, err) != AX_OK)
            abort();
    if (tok_stream_flush(&s, &streamed, err) != AX_OK)
        abort();
    if (streamed.len != whole.len || (whole.len && memcmp(streamed.data, whole.data, whole.len)))
        abort();
    ax_buf_free(&whole);
    ax_buf_free(&streamed);
    ax_free(norm);
    ax_free(ids);
    return 0;
}
