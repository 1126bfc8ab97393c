/* response.c - the JSON clients receive: chat.completion, text_completion,
 * their stream chunks, usage, and error objects.
 *
 * Shapes follow the openai-node types (see api.h). Keys are emitted in
 * the order OpenAI uses, which some hand-written clients depend on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "api/api.h"
#include "util/buf.h"
#include "util/mem.h"

char *api_dump(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
}

json_t *api_lossy_string(const char *s, size_t n)
{
    if (api_utf8_valid(s, n))
        return json_stringn(s, n);
    /* Each byte that does not start a valid sequence becomes U+FFFD. */
    struct ax_buf b;
    ax_buf_init(&b, (n + 1) * 3);
    enum ax_err rc = AX_OK;
    for (size_t i = 0; i < n && !rc;) {
        size_t k = 1;
        while (k <= 4 && i + k <= n && !api_utf8_valid(s + i, k))
            k++;
        if (k <= 4 && i + k <= n) {
            rc = ax_buf_append(&b, s + i, k);
            i += k;
        } else {
            rc = ax_buf_append(&b, "\xEF\xBF\xBD", 3);
            i++;
        }
    }
    json_t *j = rc ? NULL : json_stringn(b.data ? b.data : "", b.len);
    ax_buf_free(&b);
    return j;
}

enum ax_err api_buf_json_string(struct ax_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    enum ax_err rc = ax_buf_putc(b, '"');
    size_t run = 0; /* start of bytes copied verbatim */
    for (size_t i = 0; i < n && !rc;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : api_utf8_seq(s + i, n - i);
        if (k && c >= 0x20 && c != '"' && c != '\\') {
            i += k;
            continue;
        }
        rc = ax_buf_append(b, s + run, i - run);
        if (rc)
            break;
        if (!k) {
            rc = ax_buf_append(b, "\xEF\xBF\xBD", 3);
        } else if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rc = ax_buf_append(b, esc, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            rc = ax_buf_append(b, esc, 6);
        }
        i += k ? k : 1;
        run = i;
    }
    if (!rc)
        rc = ax_buf_append(b, s + run, n - run);
    return rc ? rc : ax_buf_putc(b, '"');
}

enum ax_err api_sse_text(struct ax_buf *b, const char *id, long created, const char *model,
                         const char *field, const char *text, size_t len)
{
    size_t start = b->len;
    enum ax_err rc =
        ax_buf_printf(b,
                      "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,"
                      "\"model\":",
                      id, field ? "chat.completion.chunk" : "text_completion", created);
    if (!rc)
        rc = api_buf_json_string(b, model, strlen(model));
    if (!rc && field)
        rc = ax_buf_printf(b,
                           ",\"system_fingerprint\":\"axserve\",\"choices\":[{\"index\":0,"
                           "\"delta\":{\"%s\":",
                           field);
    else if (!rc)
        rc = ax_buf_puts(b, ",\"system_fingerprint\":\"axserve\",\"choices\":[{\"text\":");
    if (!rc)
        rc = api_buf_json_string(b, text, len);
    if (!rc)
        rc = ax_buf_puts(b, field ? "},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
                                  : ",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    if (rc && b->data) { /* never leave half an event behind */
        b->len = start;
        b->data[start] = '\0';
    }
    return rc;
}

/* ---- errors ----------------------------------------------------------- */

static const char *type_for(int status)
{
    switch (status) {
    case 400:
    case 405:
    case 413:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 404:
        return "not_found_error";
    case 503:
        return "unavailable_error";
    default:
        return "server_error";
    }
}

void api_error_from(struct api_error *e, enum ax_err code, const char *message)
{
    int status;
    switch (code) {
    case AX_EINVAL:
    case AX_EJSON:
    case AX_EUTF8:
    case AX_ERANGE:
    case AX_ETEMPLATE:
    case AX_ECONTEXT:
    case AX_EUNSUPPORTED:
        status = 400;
        break;
    case AX_ETOOBIG:
        status = 413;
        break;
    case AX_EBUSY:
    case AX_ESHUTDOWN:
        status = 503;
        break;
    case AX_ENOTFOUND:
        status = 404;
        break;
    default:
        status = 500;
        break;
    }
    api_fail(e, code, status, type_for(status), NULL, "%s",
             message && *message ? message : ax_strerror(code));
}

json_t *api_error_json(const struct api_error *e)
{
    json_t *o = json_pack("{s:s, s:s, s:o, s:o}", "message", e->message, "type",
                          e->type ? e->type : type_for(e->status), "param",
                          e->param[0] ? json_string(e->param) : json_null(), "code",
                          e->code ? json_string(e->code) : json_null());
    if (o && e->n_prompt_tokens >= 0) {
        json_object_set_new(o, "n_prompt_tokens", json_integer(e->n_prompt_tokens));
        json_object_set_new(o, "n_ctx", json_integer(e->n_ctx));
    }
    return o ? json_pack("{s:o}", "error", o) : NULL;
}

/* ---- ids -------------------------------------------------------------- */

void api_make_id(char *out, size_t n, const char *prefix)
{
    static const char al[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char rnd[24];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, rnd, sizeof rnd) : -1;
    if (fd >= 0)
        close(fd);
    if (got != (ssize_t)sizeof rnd) {
        /* Uniqueness only matters to clients that key on it. */
        static unsigned long ctr;
        unsigned long x = (unsigned long)time(NULL) ^
                          (__atomic_add_fetch(&ctr, 1, __ATOMIC_RELAXED) * 2654435761u);
        for (size_t i = 0; i < sizeof rnd;
             i++, x = x * 6364136223846793005ul + 1442695040888963407ul)
            rnd[i] = (unsigned char)(x >> 33);
    }
    char tail[sizeof rnd + 1];
    for (size_t i = 0; i < sizeof rnd; i++)
        tail[i] = al[rnd[i] % (sizeof al - 1)];
    tail[sizeof rnd] = '\0';
    snprintf(out, n, "%s%s", prefix, tail);
}

const char *api_finish_name(enum eng_finish f, int had_tool_calls)
{
    if (had_tool_calls && f == ENG_FINISH_STOP)
        return "tool_calls";
    return f == ENG_FINISH_LENGTH ? "length" : "stop";
}

/* ---- bodies ----------------------------------------------------------- */

json_t *api_usage_json(const struct api_usage *u)
{
    return json_pack("{s:I, s:I, s:I, s:{s:I}, s:{s:I}}", "prompt_tokens", (json_int_t)u->prompt,
                     "completion_tokens", (json_int_t)u->completion, "total_tokens",
                     (json_int_t)u->prompt + (json_int_t)u->completion, "prompt_tokens_details",
                     "cached_tokens", (json_int_t)u->cached, "completion_tokens_details",
                     "reasoning_tokens", (json_int_t)u->reasoning);
}

static json_t *opt_text(const char *s, size_t n)
{
    return s ? api_lossy_string(s, n) : json_null();
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        if (s[i] != ' ' && s[i] != '\n' && s[i] != '\r' && s[i] != '\t')
            return 0;
    return 1;
}

json_t *api_chat_completion(const struct api_result *r)
{
    int calls = r->tool_calls && json_array_size(r->tool_calls) > 0;
    /* Only tool calls (and the whitespace around their blocks): content is
     * null, as OpenAI sends it. */
    json_t *msg = json_pack("{s:s, s:o}", "role", "assistant", "content",
                            calls && blank(r->content, r->content_len)
                                ? json_null()
                                : opt_text(r->content ? r->content : "", r->content_len));
    if (!msg)
        return NULL;
    if (r->reasoning && r->reasoning_len)
        json_object_set_new(msg, "reasoning_content",
                            api_lossy_string(r->reasoning, r->reasoning_len));
    if (calls)
        json_object_set(msg, "tool_calls", r->tool_calls);
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:[{s:i, s:o, s:O, s:s}], s:o}", "id", r->id,
                     "object", "chat.completion", "created", (json_int_t)r->created, "model",
                     r->model, "system_fingerprint", "axserve", "choices", "index", 0, "message",
                     msg, "logprobs", r->logprobs ? r->logprobs : json_null(), "finish_reason",
                     r->finish, "usage", api_usage_json(&r->usage));
}

json_t *api_text_completion(const struct api_result *r)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:[{s:o, s:i, s:O, s:s}], s:o}", "id", r->id,
                     "object", "text_completion", "created", (json_int_t)r->created, "model",
                     r->model, "system_fingerprint", "axserve", "choices", "text",
                     opt_text(r->content ? r->content : "", r->content_len), "index", 0, "logprobs",
                     r->logprobs ? r->logprobs : json_null(), "finish_reason", r->finish, "usage",
                     api_usage_json(&r->usage));
}

json_t *api_chat_chunk(const char *id, long created, const char *model, json_t *delta,
                       const char *finish, json_t *logprobs)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:[{s:i, s:o, s:o, s:o}]}", "id", id, "object",
                     "chat.completion.chunk", "created", (json_int_t)created, "model", model,
                     "system_fingerprint", "axserve", "choices", "index", 0, "delta",
                     delta ? delta : json_object(), "logprobs", logprobs ? logprobs : json_null(),
                     "finish_reason", finish ? json_string(finish) : json_null());
}

json_t *api_usage_chunk(const char *id, long created, const char *model, int chat,
                        const struct api_usage *u)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:[], s:o}", "id", id, "object",
                     chat ? "chat.completion.chunk" : "text_completion", "created",
                     (json_int_t)created, "model", model, "system_fingerprint", "axserve",
                     "choices", "usage", api_usage_json(u));
}

json_t *api_text_chunk(const char *id, long created, const char *model, const char *text,
                       size_t len, const char *finish, json_t *logprobs)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:[{s:o, s:i, s:o, s:o}]}", "id", id, "object",
                     "text_completion", "created", (json_int_t)created, "model", model,
                     "system_fingerprint", "axserve", "choices", "text",
                     api_lossy_string(text ? text : "", len), "index", 0, "logprobs",
                     logprobs ? logprobs : json_null(), "finish_reason",
                     finish ? json_string(finish) : json_null());
}
