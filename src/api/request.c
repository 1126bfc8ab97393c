/* request.c - OpenAI request bodies -> struct api_request (gen_request +
 * what the response needs), with validation that names the bad field.
 *
 * Order: bytes are checked as UTF-8, parsed by jansson (which also rejects
 * \u0000 and lone surrogates), then each known field is type- and
 * range-checked. Unknown fields are ignored, as OpenAI's clients expect.
 * Nothing here touches tokens or the engine. */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "model/model.h"
#include "util/mem.h"

#define BAD(e, param, ...)                                                                         \
    api_fail((e), AX_EINVAL, 400, "invalid_request_error", (param), __VA_ARGS__)

/* ---- UTF-8 ------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    unsigned cp = c & (0x3F >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

size_t api_utf8_seq(const char *s, size_t n)
{
    return n ? utf8_seq((const unsigned char *)s, n) : 0;
}

int api_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(p + i, n - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

static size_t utf8_bad_offset(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t k = utf8_seq(p + i, n - i);
        if (!k)
            break;
        i += k;
    }
    return i;
}

/* ---- errors ----------------------------------------------------------- */

enum ax_err api_fail(struct api_error *e, enum ax_err code, int status, const char *type,
                     const char *param, const char *fmt, ...)
{
    e->status = status;
    e->type = type;
    e->code = NULL;
    e->n_prompt_tokens = e->n_ctx = -1;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return code;
}

/* ---- field helpers ---------------------------------------------------- */

/* Each returns AX_OK and leaves *out alone when the field is absent or
 * null, so defaults set beforehand survive. */

static enum ax_err get_bool(json_t *o, const char *k, int *out, struct api_error *e)
{
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v))
        return AX_OK;
    if (!json_is_boolean(v))
        return BAD(e, k, "'%s' must be a boolean", k);
    *out = json_is_true(v);
    return AX_OK;
}

static enum ax_err get_num(json_t *o, const char *k, double lo, double hi, float *out,
                           struct api_error *e)
{
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v))
        return AX_OK;
    if (!json_is_number(v))
        return BAD(e, k, "'%s' must be a number", k);
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi)
        return BAD(e, k, "'%s' must be between %g and %g, got %g", k, lo, hi, d);
    *out = (float)d;
    return AX_OK;
}

/* Integers; a real with an integral value (100.0) is accepted. */
static int as_int(json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 1;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d == floor(d) && fabs(d) < 9.0e15) {
            *out = (long long)d;
            return 1;
        }
    }
    return 0;
}

static enum ax_err get_int(json_t *o, const char *k, long long lo, long long hi, long long *out,
                           int *present, struct api_error *e)
{
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v))
        return AX_OK;
    long long x;
    if (!as_int(v, &x))
        return BAD(e, k, "'%s' must be an integer", k);
    if (x < lo || x > hi)
        return BAD(e, k, "'%s' must be between %lld and %lld, got %lld", k, lo, hi, x);
    *out = x;
    if (present)
        *present = 1;
    return AX_OK;
}

/* ---- messages, tools -------------------------------------------------- */

static enum ax_err check_content(json_t *m, size_t i, int required, struct api_error *e)
{
    char p[96];
    snprintf(p, sizeof p, "messages[%zu].content", i);
    json_t *c = json_object_get(m, "content");
    if (!c || json_is_null(c)) {
        if (required)
            return BAD(e, p, "%s is required for this role", p);
        return AX_OK;
    }
    if (json_is_string(c))
        return AX_OK;
    if (!json_is_array(c))
        return BAD(e, p, "%s must be a string, an array of text parts, or null", p);
    size_t j;
    json_t *part;
    json_array_foreach(c, j, part)
    {
        snprintf(p, sizeof p, "messages[%zu].content[%zu]", i, j);
        json_t *type = json_object_get(part, "type");
        if (!json_is_object(part) || !json_is_string(type))
            return BAD(e, p, "%s must be an object with a 'type'", p);
        if (strcmp(json_string_value(type), "text") != 0)
            return BAD(e, p, "%s: content part type '%s' is not supported (only 'text')", p,
                       json_string_value(type));
        if (!json_is_string(json_object_get(part, "text")))
            return BAD(e, p, "%s.text must be a string", p);
    }
    return AX_OK;
}

static enum ax_err check_tool_calls(json_t *m, size_t i, struct api_error *e)
{
    json_t *tc = json_object_get(m, "tool_calls");
    char p[96];
    snprintf(p, sizeof p, "messages[%zu].tool_calls", i);
    if (!tc || json_is_null(tc))
        return AX_OK;
    if (!json_is_array(tc))
        return BAD(e, p, "%s must be an array", p);
    size_t j;
    json_t *c;
    json_array_foreach(tc, j, c)
    {
        json_t *f = json_object_get(c, "function");
        snprintf(p, sizeof p, "messages[%zu].tool_calls[%zu].function", i, j);
        if (!json_is_object(f) || !json_is_string(json_object_get(f, "name")))
            return BAD(e, p, "%s must be an object with a string 'name'", p);
        json_t *a = json_object_get(f, "arguments");
        if (a && !json_is_string(a) && !json_is_object(a))
            return BAD(e, p, "%s.arguments must be a JSON string or an object", p);
    }
    return AX_OK;
}

static enum ax_err check_messages(json_t *root, struct api_error *e)
{
    json_t *msgs = json_object_get(root, "messages");
    if (!msgs)
        return BAD(e, "messages", "'messages' is required");
    if (!json_is_array(msgs))
        return BAD(e, "messages", "'messages' must be an array");
    if (json_array_size(msgs) == 0)
        return BAD(e, "messages", "'messages' must not be empty");
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        char p[64];
        snprintf(p, sizeof p, "messages[%zu]", i);
        if (!json_is_object(m))
            return BAD(e, p, "%s must be an object", p);
        json_t *role = json_object_get(m, "role");
        snprintf(p, sizeof p, "messages[%zu].role", i);
        if (!json_is_string(role))
            return BAD(e, p, "%s must be a string", p);
        const char *r = json_string_value(role);
        enum ax_err rc;
        if (!strcmp(r, "developer")) {
            /* OpenAI's newer name for system; templates only know system. */
            if (json_object_set_new(m, "role", json_string("system")))
                return api_fail(e, AX_ENOMEM, 500, "server_error", NULL, "out of memory");
            r = "system";
        }
        if (!strcmp(r, "system") || !strcmp(r, "user") || !strcmp(r, "tool")) {
            rc = check_content(m, i, 1, e);
        } else if (!strcmp(r, "assistant")) {
            json_t *tc = json_object_get(m, "tool_calls");
            int has_calls = json_is_array(tc) && json_array_size(tc) > 0;
            rc = check_content(m, i, !has_calls, e);
            if (!rc)
                rc = check_tool_calls(m, i, e);
        } else {
            return BAD(e, p, "%s '%s' is not one of system, developer, user, assistant, tool", p,
                       r);
        }
        if (rc)
            return rc;
    }
    return AX_OK;
}

static enum ax_err check_tools(json_t *tools, struct api_error *e)
{
    if (!json_is_array(tools))
        return BAD(e, "tools", "'tools' must be an array");
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        char p[64];
        snprintf(p, sizeof p, "tools[%zu]", i);
        json_t *type = json_object_get(t, "type");
        json_t *f = json_object_get(t, "function");
        if (!json_is_object(t) || !json_is_string(type) ||
            strcmp(json_string_value(type), "function") != 0)
            return BAD(e, p, "%s must be {\"type\":\"function\",\"function\":{...}}", p);
        if (!json_is_object(f) || !json_is_string(json_object_get(f, "name")))
            return BAD(e, p, "%s.function must be an object with a string 'name'", p);
        json_t *params = json_object_get(f, "parameters");
        if (params && !json_is_null(params) && !json_is_object(params))
            return BAD(e, p, "%s.function.parameters must be an object", p);
    }
    return AX_OK;
}

/* tool_choice: "auto" | "none" | "required" | {type:function, function:{name}}.
 * A named choice keeps only that tool in what the template sees. */
static enum ax_err parse_tool_choice(json_t *root, json_t *tools, struct api_request *r,
                                     json_t **kept, struct api_error *e)
{
    json_t *tc = json_object_get(root, "tool_choice");
    *kept = tools;
    r->tools = API_TOOLS_AUTO;
    if (!tc || json_is_null(tc))
        return AX_OK;
    if (json_is_string(tc)) {
        const char *s = json_string_value(tc);
        if (!strcmp(s, "auto"))
            r->tools = API_TOOLS_AUTO;
        else if (!strcmp(s, "none"))
            r->tools = API_TOOLS_NONE;
        else if (!strcmp(s, "required"))
            r->tools = API_TOOLS_REQUIRED;
        else
            return BAD(e, "tool_choice",
                       "'tool_choice' must be auto, none, required or a named "
                       "function, got '%s'",
                       s);
        if (r->tools == API_TOOLS_REQUIRED && !tools)
            return BAD(e, "tool_choice", "tool_choice 'required' needs 'tools'");
        return AX_OK;
    }
    json_t *f = json_object_get(tc, "function");
    json_t *name = json_object_get(f, "name");
    if (!json_is_object(tc) || !json_is_string(name))
        return BAD(
            e, "tool_choice",
            "'tool_choice' object must be {\"type\":\"function\",\"function\":{\"name\":...}}");
    if (!tools)
        return BAD(e, "tool_choice", "a named tool_choice needs 'tools'");
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        json_t *n = json_object_get(json_object_get(t, "function"), "name");
        if (json_equal(n, name)) {
            json_t *one = json_array();
            if (!one || json_array_append(one, t)) {
                json_decref(one);
                return api_fail(e, AX_ENOMEM, 500, "server_error", NULL, "out of memory");
            }
            *kept = one;
            r->tools = API_TOOLS_NAMED;
            return AX_OK;
        }
    }
    return BAD(e, "tool_choice", "tool_choice names '%s', which is not in 'tools'",
               json_string_value(name));
}

/* Thinking switches: chat_template_kwargs.enable_thinking (Qwen3, as in
 * llama.cpp and vLLM) and reasoning_effort "none" (OpenAI-style). */
static enum ax_err parse_thinking(json_t *root, struct api_request *r, json_t **kwargs_out,
                                  struct api_error *e)
{
    json_t *kw = json_object_get(root, "chat_template_kwargs");
    if (kw && !json_is_null(kw) && !json_is_object(kw))
        return BAD(e, "chat_template_kwargs", "'chat_template_kwargs' must be an object");
    json_t *et = json_is_object(kw) ? json_object_get(kw, "enable_thinking") : NULL;
    if (et && !json_is_boolean(et))
        return BAD(e, "chat_template_kwargs.enable_thinking",
                   "'enable_thinking' must be a boolean");
    r->thinking = !et || json_is_true(et);
    json_t *re = json_object_get(root, "reasoning_effort");
    if (re && !json_is_null(re)) {
        if (!json_is_string(re))
            return BAD(e, "reasoning_effort", "'reasoning_effort' must be a string");
        if (!strcmp(json_string_value(re), "none"))
            r->thinking = 0;
    }
    json_t *out = json_is_object(kw) ? json_deep_copy(kw) : json_object();
    if (!out || json_object_set_new(out, "enable_thinking", json_boolean(r->thinking))) {
        json_decref(out);
        return api_fail(e, AX_ENOMEM, 500, "server_error", NULL, "out of memory");
    }
    *kwargs_out = out;
    return AX_OK;
}

static enum ax_err parse_response_format(json_t *root, struct api_request *r, struct api_error *e)
{
    json_t *rf = json_object_get(root, "response_format");
    if (!rf || json_is_null(rf))
        return AX_OK;
    json_t *t = json_object_get(rf, "type");
    if (!json_is_object(rf) || !json_is_string(t))
        return BAD(e, "response_format", "'response_format' must be an object with a 'type'");
    const char *s = json_string_value(t);
    if (!strcmp(s, "text"))
        return AX_OK;
    if (!strcmp(s, "json_object")) {
        r->json_output = 1;
        return AX_OK;
    }
    if (!strcmp(s, "json_schema")) {
        if (!json_is_object(json_object_get(rf, "json_schema")))
            return BAD(e, "response_format.json_schema",
                       "response_format type json_schema needs a 'json_schema' object");
        r->json_output = 1;
        return AX_OK;
    }
    return BAD(e, "response_format.type",
               "response_format type must be text, json_object or json_schema, got '%s'", s);
}

static enum ax_err build_chat(json_t *root, struct api_request *r, struct api_error *e)
{
    enum ax_err rc = check_messages(root, e);
    if (rc)
        return rc;
    json_t *tools = json_object_get(root, "tools");
    if (tools && json_is_null(tools))
        tools = NULL;
    if (tools && (rc = check_tools(tools, e)))
        return rc;
    if (tools && json_array_size(tools) == 0)
        tools = NULL;
    json_t *kept = NULL, *kwargs = NULL;
    if ((rc = parse_tool_choice(root, tools, r, &kept, e)))
        return rc;
    if ((rc = parse_thinking(root, r, &kwargs, e))) {
        if (kept != tools)
            json_decref(kept);
        return rc;
    }
    r->parse_tools = kept && r->tools != API_TOOLS_NONE;
    r->chat = json_pack("{s:O, s:o, s:b}", "messages", json_object_get(root, "messages"),
                        "chat_template_kwargs", kwargs, "add_generation_prompt", 1);
    if (r->chat && r->parse_tools)
        json_object_set(r->chat, "tools", kept);
    if (kept != tools)
        json_decref(kept);
    if (!r->chat)
        return api_fail(e, AX_ENOMEM, 500, "server_error", NULL, "out of memory");
    return AX_OK;
}

/* ---- completions prompt ---------------------------------------------- */

static enum ax_err ids_from(json_t *a, const char *param, struct api_request *r,
                            struct api_error *e)
{
    size_t n = json_array_size(a);
    if (n == 0)
        return BAD(e, param, "'%s' must not be empty", param);
    if (n > API_MAX_PROMPT_IDS)
        return BAD(e, param, "'%s' has %zu tokens, more than %d", param, n, API_MAX_PROMPT_IDS);
    r->prompt_ids = ax_mallocarray(n, sizeof *r->prompt_ids);
    if (!r->prompt_ids)
        return api_fail(e, AX_ENOMEM, 500, "server_error", NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        long long x;
        if (!as_int(json_array_get(a, i), &x) || x < 0 || x > INT32_MAX)
            return BAD(e, param, "%s[%zu] must be a token id (a non-negative integer)", param, i);
        r->prompt_ids[i] = (int32_t)x;
    }
    r->n_prompt_ids = n;
    return AX_OK;
}

static enum ax_err parse_prompt(json_t *root, struct api_request *r, struct api_error *e)
{
    json_t *p = json_object_get(root, "prompt");
    if (!p || json_is_null(p))
        return BAD(e, "prompt", "'prompt' is required (or send 'messages' for a chat completion)");
    if (json_is_array(p) && json_array_size(p) == 1 &&
        (json_is_string(json_array_get(p, 0)) || json_is_array(json_array_get(p, 0))))
        p = json_array_get(p, 0); /* a batch of one */
    if (json_is_string(p)) {
        r->prompt_text = json_string_value(p);
        r->prompt_len = json_string_length(p);
        if (r->prompt_len == 0)
            return BAD(e, "prompt", "'prompt' must not be empty");
        return AX_OK;
    }
    if (!json_is_array(p))
        return BAD(e, "prompt",
                   "'prompt' must be a string, an array of token ids, or an array "
                   "of one of those");
    json_t *first = json_array_get(p, 0);
    if (json_is_string(first) || json_is_array(first))
        return BAD(e, "prompt", "only one prompt per request is supported; got %zu",
                   json_array_size(p));
    return ids_from(p, "prompt", r, e);
}

/* ---- sampling and limits ---------------------------------------------- */

/* Qwen3's recommended settings (model card): thinking T=0.6 top_p=0.95
 * top_k=20; non-thinking T=0.7 top_p=0.8 top_k=20; min_p 0 in both. The
 * model's generation_config wins when it names a value, except that a
 * request turning thinking off gets the non-thinking set, because
 * generation_config describes the thinking mode. */
static void sampling_defaults(const struct gen_defaults *gd, int thinking,
                              struct sampler_params *sp)
{
    memset(sp, 0, sizeof *sp);
    sp->repetition_penalty = 1.0f;
    if (!thinking) {
        sp->temperature = 0.7f;
        sp->top_p = 0.8f;
        sp->top_k = 20;
        sp->min_p = 0.0f;
        return;
    }
    sp->temperature = gd && gd->have_temperature ? gd->temperature : 0.6f;
    sp->top_p = gd && gd->have_top_p ? gd->top_p : 0.95f;
    sp->top_k = gd && gd->have_top_k ? gd->top_k : 20;
    sp->min_p = gd && gd->have_min_p ? gd->min_p : 0.0f;
}

static enum ax_err parse_stop(json_t *root, struct gen_request *g, struct api_error *e)
{
    json_t *s = json_object_get(root, "stop");
    if (!s || json_is_null(s))
        return AX_OK;
    if (json_is_string(s)) {
        if (json_string_length(s) == 0 || json_string_length(s) > ENG_MAX_STOP_LEN)
            return BAD(e, "stop", "'stop' must be 1 to %d bytes long", ENG_MAX_STOP_LEN);
        g->stop[g->n_stop++] = json_string_value(s);
        return AX_OK;
    }
    if (!json_is_array(s))
        return BAD(e, "stop", "'stop' must be a string or an array of strings");
    if (json_array_size(s) > ENG_MAX_STOP)
        return BAD(e, "stop", "'stop' has %zu strings; at most %d are supported",
                   json_array_size(s), ENG_MAX_STOP);
    size_t i;
    json_t *v;
    json_array_foreach(s, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) > ENG_MAX_STOP_LEN)
            return BAD(e, "stop", "stop[%zu] must be a string of 1 to %d bytes", i,
                       ENG_MAX_STOP_LEN);
        g->stop[g->n_stop++] = json_string_value(v);
    }
    return AX_OK;
}

static enum ax_err parse_sampling(json_t *root, struct api_request *r,
                                  const struct gen_defaults *gd, struct api_error *e)
{
    struct sampler_params *sp = &r->gen.sp;
    sampling_defaults(gd, r->kind == API_CHAT ? r->thinking : 1, sp);
    enum ax_err rc;
    long long topk = sp->top_k, seed = 0;
    int have_seed = 0;
    if ((rc = get_num(root, "temperature", 0, 2, &sp->temperature, e)) ||
        (rc = get_num(root, "top_p", 0, 1, &sp->top_p, e)) ||
        (rc = get_num(root, "min_p", 0, 1, &sp->min_p, e)) ||
        (rc = get_num(root, "presence_penalty", -2, 2, &sp->presence_penalty, e)) ||
        (rc = get_num(root, "frequency_penalty", -2, 2, &sp->frequency_penalty, e)) ||
        (rc = get_num(root, "repetition_penalty", 0.01, 10, &sp->repetition_penalty, e)) ||
        (rc = get_int(root, "top_k", -1, 1 << 30, &topk, NULL, e)) ||
        (rc = get_int(root, "seed", INT64_MIN, INT64_MAX, &seed, &have_seed, e)))
        return rc;
    sp->top_k = topk < 0 ? 0 : (int)topk; /* llama.cpp's -1 = off */
    sp->seed = (uint64_t)seed;
    sp->has_seed = have_seed;
    return AX_OK;
}

static enum ax_err parse_limits(json_t *root, struct api_request *r, struct api_error *e)
{
    long long mt = -1, n = 1;
    int have_mt = 0;
    enum ax_err rc;
    if ((rc = get_int(root, "max_tokens", LLONG_MIN, LLONG_MAX, &mt, &have_mt, e)) ||
        (rc = get_int(root, "max_completion_tokens", LLONG_MIN, LLONG_MAX, &mt, &have_mt, e)))
        return rc;
    const char *which = json_object_get(root, "max_completion_tokens") &&
                                !json_is_null(json_object_get(root, "max_completion_tokens"))
                            ? "max_completion_tokens"
                            : "max_tokens";
    if (have_mt && (mt < 1 || mt > API_MAX_TOKENS_CAP))
        return BAD(e, which, "'%s' must be between 1 and %d, got %lld", which, API_MAX_TOKENS_CAP,
                   mt);
    r->gen.max_tokens = (int)mt;
    if ((rc = get_int(root, "n", LLONG_MIN, LLONG_MAX, &n, NULL, e)))
        return rc;
    if (n != 1)
        return BAD(e, "n", "only n=1 is supported, got n=%lld", n);
    json_t *bo = json_object_get(root, "best_of");
    long long best = 1;
    if ((rc = get_int(root, "best_of", LLONG_MIN, LLONG_MAX, &best, NULL, e)))
        return rc;
    if (bo && best != 1)
        return BAD(e, "best_of", "only best_of=1 is supported");
    return AX_OK;
}

static enum ax_err parse_logprobs(json_t *root, struct api_request *r, struct api_error *e)
{
    json_t *lp = json_object_get(root, "logprobs");
    enum ax_err rc;
    long long top = 0;
    int have_top = 0;
    if (r->kind == API_COMPLETION) {
        /* Legacy: logprobs is the number of alternatives (0..20). */
        if ((rc = get_int(root, "logprobs", 0, ENG_MAX_TOP, &top, &have_top, e)))
            return rc;
        r->logprobs = have_top;
        r->gen.want_logprobs = have_top;
        r->gen.top_logprobs = (int)top;
        return AX_OK;
    }
    if ((rc = get_bool(root, "logprobs", &r->logprobs, e)))
        return rc;
    if ((rc = get_int(root, "top_logprobs", 0, ENG_MAX_TOP, &top, &have_top, e)))
        return rc;
    if (have_top && !r->logprobs)
        return BAD(e, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
    (void)lp;
    r->gen.want_logprobs = r->logprobs;
    r->gen.top_logprobs = (int)top;
    return AX_OK;
}

static enum ax_err parse_common(json_t *root, struct api_request *r, struct api_error *e)
{
    enum ax_err rc;
    json_t *m = json_object_get(root, "model");
    if (m && !json_is_null(m) && !json_is_string(m))
        return BAD(e, "model", "'model' must be a string");
    r->model = json_is_string(m) ? json_string_value(m) : NULL;
    json_t *so = json_object_get(root, "stream_options");
    if (so && !json_is_null(so) && !json_is_object(so))
        return BAD(e, "stream_options", "'stream_options' must be an object");
    json_t *user = json_object_get(root, "user");
    if (user && !json_is_null(user) && !json_is_string(user))
        return BAD(e, "user", "'user' must be a string");
    r->cache_prompt = 1;
    if ((rc = get_bool(root, "stream", &r->stream, e)) ||
        (json_is_object(so) && (rc = get_bool(so, "include_usage", &r->include_usage, e))) ||
        (rc = get_bool(root, "ignore_eos", &r->gen.ignore_eos, e)) ||
        (rc = get_bool(root, "cache_prompt", &r->cache_prompt, e)))
        return rc;
    if (!r->stream)
        r->include_usage = 0; /* usage is always in a non-stream body */
    int echo = 0;
    if ((rc = get_bool(root, "echo", &echo, e)))
        return rc;
    if (echo)
        return BAD(e, "echo", "'echo' is not supported");
    json_t *suffix = json_object_get(root, "suffix");
    if (json_is_string(suffix) && json_string_length(suffix))
        return BAD(e, "suffix", "'suffix' is not supported");
    if ((rc = parse_limits(root, r, e)) || (rc = parse_stop(root, &r->gen, e)) ||
        (rc = parse_logprobs(root, r, e)) || (rc = parse_response_format(root, r, e)))
        return rc;
    json_t *ptc = json_object_get(root, "parallel_tool_calls");
    if (ptc && !json_is_null(ptc) && !json_is_boolean(ptc))
        return BAD(e, "parallel_tool_calls", "'parallel_tool_calls' must be a boolean");
    return AX_OK;
}

/* ---- entry ------------------------------------------------------------ */

enum ax_err api_parse_request(enum api_kind kind, const char *body, size_t len,
                              const struct gen_defaults *gd, struct api_request *r,
                              struct api_error *e)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->gen.max_tokens = -1;
    if (!api_utf8_valid(body, len))
        return api_fail(e, AX_EUTF8, 400, "invalid_request_error", NULL,
                        "request body is not valid UTF-8 (first bad byte at offset %zu)",
                        utf8_bad_offset(body, len));
    json_error_t je;
    r->root = json_loadb(body, len, 0, &je);
    if (!r->root)
        return api_fail(e, AX_EJSON, 400, "invalid_request_error", NULL,
                        "malformed JSON body: %s (line %d, column %d)", je.text, je.line,
                        je.column);
    if (!json_is_object(r->root))
        return api_fail(e, AX_EJSON, 400, "invalid_request_error", NULL,
                        "request body must be a JSON object");
    json_t *msgs = json_object_get(r->root, "messages");
    json_t *prompt = json_object_get(r->root, "prompt");
    /* The seed's clients post chat bodies to /v1/completions. */
    if (kind == API_COMPLETION && msgs && (!prompt || json_is_null(prompt)))
        r->kind = API_CHAT;
    enum ax_err rc;
    if (r->kind == API_CHAT)
        rc = build_chat(r->root, r, e);
    else
        rc = parse_prompt(r->root, r, e);
    if (!rc)
        rc = parse_common(r->root, r, e);
    if (!rc)
        rc = parse_sampling(r->root, r, gd, e);
    if (!rc && r->kind == API_COMPLETION) {
        r->gen.prompt_text = r->prompt_text;
        r->gen.prompt_len = r->prompt_len;
        r->gen.prompt_ids = r->prompt_ids;
        r->gen.n_prompt_ids = r->n_prompt_ids;
    }
    return rc;
}

void api_request_free(struct api_request *r)
{
    if (!r)
        return;
    json_decref(r->chat);
    json_decref(r->root);
    ax_free(r->prompt_ids);
    memset(r, 0, sizeof *r);
}
