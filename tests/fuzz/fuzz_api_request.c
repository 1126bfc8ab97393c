/* fuzz_api_request.c - request bytes -> UTF-8 check -> JSON -> validation
 * -> gen_request, for both endpoints. Any input must give AX_OK or a 400
 * with a message, never a crash or leak. The first byte picks the endpoint.
 * The same bytes also go through the stream writer's JSON string escaper,
 * which must produce what jansson reads back as the lossy string. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "api/api.h"
#include "util/buf.h"
#include "util/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    json_set_alloc_funcs(ax_malloc, ax_free);
    enum api_kind kind = (data[0] & 1) ? API_COMPLETION : API_CHAT;
    struct api_request r;
    struct api_error e;
    enum ax_err rc = api_parse_request(kind, (const char *)data + 1, size - 1, NULL, &r, &e);
    if (rc == AX_OK) {
        /* The parsed request must be internally consistent. */
        if (r.kind == API_CHAT && !r.chat)
            __builtin_trap();
        if (r.gen.n_stop > ENG_MAX_STOP || r.gen.top_logprobs > ENG_MAX_TOP)
            __builtin_trap();
        if (r.kind == API_COMPLETION && !r.gen.prompt_text && !r.gen.n_prompt_ids)
            __builtin_trap();
        for (int i = 0; i < r.gen.n_stop; i++)
            if (!r.gen.stop[i] || !r.gen.stop[i][0])
                __builtin_trap();
    } else {
        if (e.status < 400 || !e.message[0])
            __builtin_trap();
        json_t *j = api_error_json(&e);
        char *s = j ? api_dump(j) : NULL;
        ax_free(s);
        json_decref(j);
    }
    api_request_free(&r);

    struct ax_buf b;
    ax_buf_init(&b, size * 6 + 16); /* \u00XX: 6 bytes per control byte */
    if (api_buf_json_string(&b, (const char *)data, size) != AX_OK)
        __builtin_trap();
    json_t *back = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    json_t *want = api_lossy_string((const char *)data, size);
    if (!back || !want || !json_equal(back, want))
        __builtin_trap();
    json_decref(back);
    json_decref(want);
    ax_buf_free(&b);
    return 0;
}
