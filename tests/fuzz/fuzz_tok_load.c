/* fuzz_tok_load.c - tok_load_buf on arbitrary bytes (seeds: small synthetic
 * tokenizer.json files): it must fail cleanly or load a tokenizer that then
 * encodes and decodes a fixed text without crashing or leaking. */
#include <stdint.h>
#include <stdlib.h>

#include "tok/tok.h"
#include "util/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tok *t = NULL;
    char err[AX_ERRLEN];
    if (tok_load_buf((const char *)data, size, "fuzz.json", &t, err) != AX_OK)
        return 0;
    static const char text[] = "ab abc<x> 'S ſ 12 \r\n\n  \xC3\xA9\xF0\x9F\x98\x80 e\xCC\x81";
    int32_t ids[256];
    size_t n = 0;
    if (tok_encode_cap(t, text, sizeof text - 1, ids, 256, &n, err) != AX_OK)
        abort();
    struct ax_buf b;
    ax_buf_init(&b, 1 << 20);
    if (tok_decode(t, ids, n, 0, &b, err) != AX_OK)
        abort();
    ax_buf_free(&b);
    tok_free(t);
    return 0;
}
