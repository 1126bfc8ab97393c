/* fuzz_chat_parse.c - the Qwen3 output parser on arbitrary text, fed once
 * whole and once cut into pieces at offsets taken from the input: both runs
 * must give the same reasoning, content and tool calls (the streaming
 * property), and nothing may crash or leak. Input: byte 0 = flags (bit 0
 * starts in reasoning, bit 1 parses tools), byte 1 = piece length seed,
 * the rest = the model output. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat/parse.h"
#include "util/buf.h"

struct acc {
    struct ax_buf content, reasoning, calls;
};

static void on_event(void *user, const struct chat_event *ev)
{
    struct acc *a = user;
    if (ev->kind == CHAT_CONTENT)
        ax_buf_append(&a->content, ev->text, ev->len);
    else if (ev->kind == CHAT_REASONING)
        ax_buf_append(&a->reasoning, ev->text, ev->len);
    else
        ax_buf_printf(&a->calls, "%d|%s|%s\n", ev->index, ev->name, ev->arguments);
}

static void run(const char *t, size_t n, int flags, size_t piece, struct acc *a)
{
    ax_buf_init(&a->content, 1 << 24);
    ax_buf_init(&a->reasoning, 1 << 24);
    ax_buf_init(&a->calls, 1 << 24);
    struct chat_parser *p;
    char err[AX_ERRLEN];
    if (chat_parser_new(flags & 1, flags & 2, &p))
        abort();
    for (size_t at = 0; at < n; at += piece) {
        size_t k = n - at < piece ? n - at : piece;
        if (chat_parser_push(p, t + at, k, on_event, a, err))
            abort();
    }
    if (chat_parser_finish(p, on_event, a, err))
        abort();
    chat_parser_free(p);
}

static int same(const struct ax_buf *x, const struct ax_buf *y)
{
    return x->len == y->len && (!x->len || !memcmp(x->data, y->data, x->len));
}

static void done(struct acc *a)
{
    ax_buf_free(&a->content);
    ax_buf_free(&a->reasoning);
    ax_buf_free(&a->calls);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const char *t = (const char *)data + 2;
    size_t n = size - 2;
    struct acc whole, parts;
    run(t, n, data[0], n ? n : 1, &whole);
    run(t, n, data[0], (size_t)data[1] % 13 + 1, &parts);
    if (!same(&whole.content, &parts.content) || !same(&whole.reasoning, &parts.reasoning) ||
        !same(&whole.calls, &parts.calls))
        abort();
    done(&whole);
    done(&parts);
    return 0;
}
