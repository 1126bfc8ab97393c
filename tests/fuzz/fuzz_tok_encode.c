/* fuzz_tok_encode.c - tok_encode on arbitrary bytes with the real Qwen3
 * tokenizer (build/tokenizer-qwen3/tokenizer.json, relative to the current
 * directory; without it every input is skipped). Invalid UTF-8 must be
 * AX_EUTF8; valid text must decode back to exactly its NFC form, and the
 * stream decoder must agree with tok_decode. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok.h"
#include "tok/tok_int.h"
#include "util/mem.h"

static struct tok *qwen;
static int tried;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
    if (whole.len != nn || (nn && memcmp(whole.data, norm, nn)))
        abort(); /* decode(encode(x)) != NFC(x) */
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
