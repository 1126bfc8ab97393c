/* test_api.c - api/: request parsing and validation into gen_request, and
 * the JSON shapes of responses, chunks and errors (as openai-node types
 * declare them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/api.h"
#include "model/model.h"
#include "util/mem.h"

static struct api_error err;

static enum ax_err parse(enum api_kind k, const char *body, struct api_request *r)
{
    memset(&err, 0, sizeof err);
    return api_parse_request(k, body, strlen(body), NULL, r, &err);
}

/* Expects a 400 whose param is `param` (NULL = null). */
static void expect_bad(enum api_kind k, const char *body, const char *param)
{
    struct api_request r;
    enum ax_err rc = parse(k, body, &r);
    if (rc == AX_OK)
        fail_msg("accepted: %s", body);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.type, "invalid_request_error");
    assert_string_equal(err.param, param ? param : "");
    assert_true(strlen(err.message) > 0);
    api_request_free(&r);
}

#define CHAT_MSG "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

static void chat_minimal(void **state)
{
    (void)state;
    struct api_request r;
    assert_int_equal(parse(API_CHAT, "{" CHAT_MSG "}", &r), AX_OK);
    assert_int_equal(r.kind, API_CHAT);
    assert_int_equal(r.stream, 0);
    assert_int_equal(r.thinking, 1);
    assert_int_equal(r.gen.max_tokens, -1);
    assert_int_equal(r.gen.n_stop, 0);
    assert_int_equal(r.cache_prompt, 1);
    /* Qwen3 thinking defaults when generation_config is silent. */
    assert_float_equal(r.gen.sp.temperature, 0.6, 1e-6);
    assert_float_equal(r.gen.sp.top_p, 0.95, 1e-6);
    assert_int_equal(r.gen.sp.top_k, 20);
    assert_float_equal(r.gen.sp.repetition_penalty, 1.0, 1e-6);
    json_t *m = json_object_get(r.chat, "messages");
    assert_int_equal(json_array_size(m), 1);
    assert_true(json_is_true(json_object_get(r.chat, "add_generation_prompt")));
    assert_true(json_is_true(
        json_object_get(json_object_get(r.chat, "chat_template_kwargs"), "enable_thinking")));
    assert_null(json_object_get(r.chat, "tools"));
    api_request_free(&r);
}

static void chat_all_fields(void **state)
{
    (void)state;
    const char *b =
        "{\"model\":\"x\"," CHAT_MSG ",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"max_tokens\":5,\"max_completion_tokens\":7,\"temperature\":0,\"top_p\":0.5,"
        "\"top_k\":3,\"min_p\":0.1,\"presence_penalty\":1.5,\"frequency_penalty\":-1,"
        "\"repetition_penalty\":1.1,\"seed\":42,\"stop\":[\"a\",\"bc\"],\"n\":1,"
        "\"logprobs\":true,\"top_logprobs\":3,\"ignore_eos\":true,\"cache_prompt\":false,"
        "\"user\":\"u\",\"unknown_field\":{\"x\":1}}";
    struct api_request r;
    assert_int_equal(parse(API_CHAT, b, &r), AX_OK);
    assert_string_equal(r.model, "x");
    assert_int_equal(r.stream, 1);
    assert_int_equal(r.include_usage, 1);
    assert_int_equal(r.gen.max_tokens, 7);            /* max_completion_tokens wins */
    assert_float_equal(r.gen.sp.temperature, 0.0, 0); /* 0 stays 0: greedy */
    assert_float_equal(r.gen.sp.top_p, 0.5, 1e-6);
    assert_int_equal(r.gen.sp.top_k, 3);
    assert_float_equal(r.gen.sp.min_p, 0.1, 1e-6);
    assert_float_equal(r.gen.sp.presence_penalty, 1.5, 1e-6);
    assert_float_equal(r.gen.sp.frequency_penalty, -1, 1e-6);
    assert_float_equal(r.gen.sp.repetition_penalty, 1.1, 1e-6);
    assert_int_equal(r.gen.sp.has_seed, 1);
    assert_int_equal(r.gen.sp.seed, 42);
    assert_int_equal(r.gen.n_stop, 2);
    assert_string_equal(r.gen.stop[1], "bc");
    assert_int_equal(r.gen.want_logprobs, 1);
    assert_int_equal(r.gen.top_logprobs, 3);
    assert_int_equal(r.gen.ignore_eos, 1);
    assert_int_equal(r.cache_prompt, 0);
    api_request_free(&r);
}

static void thinking_switches(void **state)
{
    (void)state;
    struct api_request r;
    assert_int_equal(
        parse(API_CHAT, "{" CHAT_MSG ",\"chat_template_kwargs\":{\"enable_thinking\":false}}", &r),
        AX_OK);
    assert_int_equal(r.thinking, 0);
    /* Non-thinking defaults (Qwen3 model card). */
    assert_float_equal(r.gen.sp.temperature, 0.7, 1e-6);
    assert_float_equal(r.gen.sp.top_p, 0.8, 1e-6);
    assert_int_equal(r.gen.sp.top_k, 20);
    api_request_free(&r);
    assert_int_equal(parse(API_CHAT, "{" CHAT_MSG ",\"reasoning_effort\":\"none\"}", &r), AX_OK);
    assert_int_equal(r.thinking, 0);
    assert_true(json_is_false(
        json_object_get(json_object_get(r.chat, "chat_template_kwargs"), "enable_thinking")));
    api_request_free(&r);
    assert_int_equal(parse(API_CHAT, "{" CHAT_MSG ",\"reasoning_effort\":\"high\"}", &r), AX_OK);
    assert_int_equal(r.thinking, 1);
    api_request_free(&r);
}

static void generation_config_defaults(void **state)
{
    (void)state;
    struct gen_defaults gd;
    memset(&gd, 0, sizeof gd);
    gd.temperature = 0.3f;
    gd.have_temperature = 1;
    gd.top_k = 7;
    gd.have_top_k = 1;
    struct api_request r;
    const char *b = "{" CHAT_MSG "}";
    assert_int_equal(api_parse_request(API_CHAT, b, strlen(b), &gd, &r, &err), AX_OK);
    assert_float_equal(r.gen.sp.temperature, 0.3, 1e-6);
    assert_int_equal(r.gen.sp.top_k, 7);
    assert_float_equal(r.gen.sp.top_p, 0.95, 1e-6); /* not in the file: Qwen3 default */
    api_request_free(&r);
    b = "{" CHAT_MSG ",\"temperature\":1.5}";
    assert_int_equal(api_parse_request(API_CHAT, b, strlen(b), &gd, &r, &err), AX_OK);
    assert_float_equal(r.gen.sp.temperature, 1.5, 1e-6);
    api_request_free(&r);
}

static void content_parts_and_roles(void **state)
{
    (void)state;
    struct api_request r;
    const char *b = "{\"messages\":[{\"role\":\"developer\",\"content\":\"be brief\"},"
                    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"}]},"
                    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c\","
                    "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
                    "{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"1\"}]}";
    assert_int_equal(parse(API_CHAT, b, &r), AX_OK);
    json_t *m0 = json_array_get(json_object_get(r.chat, "messages"), 0);
    assert_string_equal(json_string_value(json_object_get(m0, "role")), "system");
    api_request_free(&r);
}

static void tools_and_choice(void **state)
{
    (void)state;
    struct api_request r;
#define TOOLS                                                                                      \
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a\",\"parameters\":{}}},"          \
    "{\"type\":\"function\",\"function\":{\"name\":\"b\"}}]"
    assert_int_equal(parse(API_CHAT, "{" CHAT_MSG "," TOOLS "}", &r), AX_OK);
    assert_int_equal(r.parse_tools, 1);
    assert_int_equal(json_array_size(json_object_get(r.chat, "tools")), 2);
    api_request_free(&r);
    assert_int_equal(parse(API_CHAT, "{" CHAT_MSG "," TOOLS ",\"tool_choice\":\"none\"}", &r),
                     AX_OK);
    assert_int_equal(r.parse_tools, 0);
    assert_null(json_object_get(r.chat, "tools")); /* none: the template never sees them */
    api_request_free(&r);
    assert_int_equal(parse(API_CHAT,
                           "{" CHAT_MSG "," TOOLS ",\"tool_choice\":{\"type\":\"function\","
                           "\"function\":{\"name\":\"b\"}}}",
                           &r),
                     AX_OK);
    assert_int_equal(r.tools, API_TOOLS_NAMED);
    json_t *t = json_object_get(r.chat, "tools");
    assert_int_equal(json_array_size(t), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(t, 0), "function"), "name")),
                        "b");
    api_request_free(&r);
    expect_bad(API_CHAT,
               "{" CHAT_MSG "," TOOLS ",\"tool_choice\":{\"type\":\"function\","
               "\"function\":{\"name\":\"zz\"}}}",
               "tool_choice");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"tool_choice\":\"required\"}", "tool_choice");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"tool_choice\":\"sometimes\"," TOOLS "}", "tool_choice");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"tools\":[{\"type\":\"function\"}]}", "tools[0]");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"tools\":{}}", "tools");
}

static void completions_prompts(void **state)
{
    (void)state;
    struct api_request r;
    assert_int_equal(parse(API_COMPLETION, "{\"prompt\":\"abc\",\"logprobs\":2}", &r), AX_OK);
    assert_int_equal(r.kind, API_COMPLETION);
    assert_string_equal(r.gen.prompt_text, "abc");
    assert_int_equal(r.gen.prompt_len, 3);
    assert_int_equal(r.gen.want_logprobs, 1);
    assert_int_equal(r.gen.top_logprobs, 2);
    api_request_free(&r);
    assert_int_equal(parse(API_COMPLETION, "{\"prompt\":[\"one\"]}", &r), AX_OK);
    assert_string_equal(r.gen.prompt_text, "one");
    api_request_free(&r);
    assert_int_equal(parse(API_COMPLETION, "{\"prompt\":[1,2,3]}", &r), AX_OK);
    assert_null(r.gen.prompt_text);
    assert_int_equal(r.gen.n_prompt_ids, 3);
    assert_int_equal(r.gen.prompt_ids[2], 3);
    api_request_free(&r);
    assert_int_equal(parse(API_COMPLETION, "{\"prompt\":[[5,6]]}", &r), AX_OK);
    assert_int_equal(r.gen.n_prompt_ids, 2);
    assert_int_equal(r.gen.prompt_ids[0], 5);
    api_request_free(&r);
    /* The seed's clients: a chat body on /v1/completions. */
    assert_int_equal(parse(API_COMPLETION, "{" CHAT_MSG "}", &r), AX_OK);
    assert_int_equal(r.kind, API_CHAT);
    api_request_free(&r);
    expect_bad(API_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", "prompt");
    expect_bad(API_COMPLETION, "{\"prompt\":[[1],[2]]}", "prompt");
    expect_bad(API_COMPLETION, "{\"prompt\":[1,-2]}", "prompt");
    expect_bad(API_COMPLETION, "{\"prompt\":[1,\"x\"]}", "prompt");
    expect_bad(API_COMPLETION, "{\"prompt\":[]}", "prompt");
    expect_bad(API_COMPLETION, "{\"prompt\":\"\"}", "prompt");
    expect_bad(API_COMPLETION, "{\"prompt\":5}", "prompt");
    expect_bad(API_COMPLETION, "{}", "prompt");
    expect_bad(API_COMPLETION, "{\"prompt\":\"a\",\"logprobs\":21}", "logprobs");
    expect_bad(API_COMPLETION, "{\"prompt\":\"a\",\"echo\":true}", "echo");
    expect_bad(API_COMPLETION, "{\"prompt\":\"a\",\"best_of\":2}", "best_of");
}

static void body_errors(void **state)
{
    (void)state;
    expect_bad(API_CHAT, "{\"messages\":[", NULL);
    expect_bad(API_CHAT, "[1,2]", NULL);
    expect_bad(API_CHAT, "", NULL);
    expect_bad(API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}", NULL);
    expect_bad(API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"\xc0\x80\"}]}", NULL);
    expect_bad(API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"\xed\xa0\x80\"}]}", NULL);
    /* Escaped lone surrogate and NUL are rejected by the JSON parser. */
    expect_bad(API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"\\ud800\"}]}", NULL);
    expect_bad(API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}", NULL);
    /* A body with an embedded NUL byte. */
    struct api_request r;
    static const char nul[] = "{\"messages\":[]}\0{}";
    assert_int_not_equal(api_parse_request(API_CHAT, nul, sizeof nul - 1, NULL, &r, &err), AX_OK);
    assert_int_equal(err.status, 400);
    api_request_free(&r);
}

static void message_errors(void **state)
{
    (void)state;
    expect_bad(API_CHAT, "{}", "messages");
    expect_bad(API_CHAT, "{\"messages\":[]}", "messages");
    expect_bad(API_CHAT, "{\"messages\":{}}", "messages");
    expect_bad(API_CHAT, "{\"messages\":[1]}", "messages[0]");
    expect_bad(API_CHAT, "{\"messages\":[{\"content\":\"x\"}]}", "messages[0].role");
    expect_bad(API_CHAT, "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}",
               "messages[0].role");
    expect_bad(API_CHAT, "{\"messages\":[{\"role\":\"user\"}]}", "messages[0].content");
    expect_bad(API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":null}]}",
               "messages[0].content");
    expect_bad(API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}",
               "messages[0].content");
    expect_bad(API_CHAT, "{\"messages\":[{\"role\":\"assistant\"}]}", "messages[0].content");
    expect_bad(API_CHAT,
               "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\","
               "\"content\":[{\"type\":\"image_url\",\"image_url\":{}}]}]}",
               "messages[1].content[0]");
    expect_bad(API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}",
               "messages[0].content[0]");
    expect_bad(API_CHAT,
               "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{}}]}]}",
               "messages[0].tool_calls[0].function");
}

static void field_errors(void **state)
{
    (void)state;
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"n\":2}", "n");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"n\":\"1\"}", "n");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"max_tokens\":-1}", "max_tokens");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"max_tokens\":0}", "max_tokens");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"max_tokens\":1e12}", "max_tokens");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"max_tokens\":1.5}", "max_tokens");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"max_completion_tokens\":-5}", "max_completion_tokens");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"temperature\":\"hot\"}", "temperature");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"temperature\":3}", "temperature");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"top_p\":1.5}", "top_p");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"top_k\":-2}", "top_k");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"min_p\":-0.1}", "min_p");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"presence_penalty\":9}", "presence_penalty");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"seed\":\"x\"}", "seed");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"stream\":1}", "stream");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"stream_options\":[]}", "stream_options");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"stream_options\":{\"include_usage\":\"y\"}}",
               "include_usage");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"stop\":5}", "stop");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"stop\":\"\"}", "stop");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"stop\":[\"a\",1]}", "stop");
    {
        char body[2048];
        char longstop[ENG_MAX_STOP_LEN + 2];
        memset(longstop, 'x', sizeof longstop - 1);
        longstop[sizeof longstop - 1] = '\0';
        snprintf(body, sizeof body, "{" CHAT_MSG ",\"stop\":[\"%s\"]}", longstop);
        expect_bad(API_CHAT, body, "stop");
        snprintf(body, sizeof body, "{" CHAT_MSG ",\"stop\":\"%s\"}", longstop);
        expect_bad(API_CHAT, body, "stop");
    }
    expect_bad(API_CHAT,
               "{" CHAT_MSG ",\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]}",
               "stop");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"logprobs\":1}", "logprobs");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"logprobs\":true,\"top_logprobs\":21}", "top_logprobs");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"logprobs\":true,\"top_logprobs\":-1}", "top_logprobs");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"top_logprobs\":2}", "top_logprobs");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"model\":5}", "model");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"response_format\":{\"type\":\"xml\"}}",
               "response_format.type");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"response_format\":{\"type\":\"json_schema\"}}",
               "response_format.json_schema");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"chat_template_kwargs\":[]}", "chat_template_kwargs");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"chat_template_kwargs\":{\"enable_thinking\":\"no\"}}",
               "chat_template_kwargs.enable_thinking");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"reasoning_effort\":0}", "reasoning_effort");
    expect_bad(API_CHAT, "{" CHAT_MSG ",\"parallel_tool_calls\":\"yes\"}", "parallel_tool_calls");
    /* null means "absent" everywhere. */
    struct api_request r;
    assert_int_equal(parse(API_CHAT,
                           "{" CHAT_MSG ",\"n\":null,\"max_tokens\":null,\"temperature\":null,"
                           "\"stop\":null,\"stream_options\":null,\"tools\":null}",
                           &r),
                     AX_OK);
    api_request_free(&r);
    assert_int_equal(
        parse(API_CHAT, "{" CHAT_MSG ",\"response_format\":{\"type\":\"json_object\"}}", &r),
        AX_OK);
    assert_int_equal(r.json_output, 1);
    api_request_free(&r);
}

static void parse_survives_oom(void **state)
{
    (void)state;
    const char *b = "{" CHAT_MSG "," TOOLS ",\"tool_choice\":{\"type\":\"function\","
                    "\"function\":{\"name\":\"a\"}},\"stop\":[\"x\"]}";
    int ok_seen = 0;
    for (long n = 0; n < 200 && !ok_seen; n++) {
        struct api_request r;
        ax_mem_fail_after(n);
        enum ax_err rc = api_parse_request(API_CHAT, b, strlen(b), NULL, &r, &err);
        ax_mem_fail_after(-1);
        ok_seen = rc == AX_OK;
        api_request_free(&r);
    }
    assert_true(ok_seen);
}

/* ---- responses ------------------------------------------------------- */

static json_t *roundtrip(json_t *j)
{
    assert_non_null(j);
    char *s = api_dump(j);
    json_decref(j);
    json_t *back = json_loads(s, 0, NULL);
    free(s);
    assert_non_null(back);
    return back;
}

static void chat_completion_shape(void **state)
{
    (void)state;
    json_t *calls = json_pack("[{s:s, s:s, s:{s:s, s:s}}]", "id", "call_1", "type", "function",
                              "function", "name", "f", "arguments", "{\"a\":1}");
    struct api_result r = {.id = "chatcmpl-x",
                           .created = 7,
                           .model = "m",
                           .content = "",
                           .content_len = 0,
                           .reasoning = "why",
                           .reasoning_len = 3,
                           .tool_calls = calls,
                           .finish = "tool_calls",
                           .usage = {.prompt = 5, .completion = 3, .cached = 2, .reasoning = 1}};
    json_t *j = roundtrip(api_chat_completion(&r));
    assert_string_equal(json_string_value(json_object_get(j, "object")), "chat.completion");
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 7);
    assert_non_null(json_object_get(j, "system_fingerprint"));
    json_t *c = json_array_get(json_object_get(j, "choices"), 0);
    json_t *m = json_object_get(c, "message");
    assert_true(json_is_null(json_object_get(m, "content"))); /* only tool calls */
    assert_string_equal(json_string_value(json_object_get(m, "reasoning_content")), "why");
    assert_int_equal(json_array_size(json_object_get(m, "tool_calls")), 1);
    assert_true(json_is_null(json_object_get(c, "logprobs")));
    assert_string_equal(json_string_value(json_object_get(c, "finish_reason")), "tool_calls");
    json_t *u = json_object_get(j, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), 8);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(u, "prompt_tokens_details"),
                                                        "cached_tokens")),
                     2);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(u, "completion_tokens_details"), "reasoning_tokens")),
                     1);
    json_decref(j);
    /* No reasoning: the field is absent, content is a string. */
    struct api_result r2 = {
        .id = "chatcmpl-y", .model = "m", .content = "hi", .content_len = 2, .finish = "stop"};
    j = roundtrip(api_chat_completion(&r2));
    m = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message");
    assert_string_equal(json_string_value(json_object_get(m, "content")), "hi");
    assert_null(json_object_get(m, "reasoning_content"));
    assert_null(json_object_get(m, "tool_calls"));
    json_decref(j);
    json_decref(calls);
}

static void chunk_shapes(void **state)
{
    (void)state;
    json_t *j = roundtrip(
        api_chat_chunk("id1", 3, "m", json_pack("{s:s}", "role", "assistant"), NULL, NULL));
    assert_string_equal(json_string_value(json_object_get(j, "object")), "chat.completion.chunk");
    json_t *c = json_array_get(json_object_get(j, "choices"), 0);
    assert_true(json_is_null(json_object_get(c, "finish_reason")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(c, "delta"), "role")),
                        "assistant");
    json_decref(j);
    struct api_usage u = {.prompt = 1, .completion = 2};
    j = roundtrip(api_usage_chunk("id1", 3, "m", 1, &u));
    assert_int_equal(json_array_size(json_object_get(j, "choices")), 0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "usage"), "total_tokens")), 3);
    json_decref(j);
    j = roundtrip(api_text_chunk("c", 1, "m", "ab", 2, "length", NULL));
    c = json_array_get(json_object_get(j, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "text")), "ab");
    assert_string_equal(json_string_value(json_object_get(c, "finish_reason")), "length");
    json_decref(j);
}

/* The allocation-free stream writer gives the same JSON as the jansson
 * builders, for awkward text: quotes, controls, broken UTF-8, emoji. */
static void sse_fast_path_matches(void **state)
{
    (void)state;
    static const char text[] = "a\"b\\c\n\t\x01\x7f\xc3\xa9\xf0\x9f\x98\x80\xe2\x82 end";
    size_t n = sizeof text - 1;
    for (int chat = 0; chat < 2; chat++) {
        struct ax_buf b;
        ax_buf_init(&b, 1 << 16);
        assert_int_equal(api_sse_text(&b, "id1", 5, "m\"x", chat ? "content" : NULL, text, n),
                         AX_OK);
        assert_int_equal(strncmp(b.data, "data: ", 6), 0);
        assert_int_equal(strcmp(b.data + b.len - 2, "\n\n"), 0);
        json_error_t je;
        json_t *got = json_loadb(b.data + 6, b.len - 8, 0, &je);
        if (!got)
            fail_msg("not JSON: %s: %s", je.text, b.data);
        json_t *want =
            chat ? api_chat_chunk("id1", 5, "m\"x",
                                  json_pack("{s:o}", "content", api_lossy_string(text, n)), NULL,
                                  NULL)
                 : api_text_chunk("id1", 5, "m\"x", text, n, NULL, NULL);
        assert_true(json_equal(got, want));
        json_decref(got);
        json_decref(want);
        ax_buf_free(&b);
    }
    /* A full buffer leaves nothing half-written. */
    struct ax_buf small;
    ax_buf_init(&small, 40);
    assert_int_equal(api_sse_text(&small, "id1", 5, "m", "content", text, n), AX_ETOOBIG);
    assert_int_equal(small.len, 0);
    ax_buf_free(&small);
}

static void error_shape(void **state)
{
    (void)state;
    struct api_error e;
    api_fail(&e, AX_EINVAL, 400, "invalid_request_error", "n", "only n=1");
    json_t *j = roundtrip(api_error_json(&e));
    json_t *o = json_object_get(j, "error");
    assert_string_equal(json_string_value(json_object_get(o, "message")), "only n=1");
    assert_string_equal(json_string_value(json_object_get(o, "type")), "invalid_request_error");
    assert_string_equal(json_string_value(json_object_get(o, "param")), "n");
    assert_true(json_is_null(json_object_get(o, "code")));
    assert_null(json_object_get(o, "n_ctx"));
    json_decref(j);
    api_error_from(&e, AX_EBUSY, "queue full");
    assert_int_equal(e.status, 503);
    api_error_from(&e, AX_EBACKEND, "boom");
    assert_int_equal(e.status, 500);
    j = roundtrip(api_error_json(&e));
    assert_true(json_is_null(json_object_get(json_object_get(j, "error"), "param")));
    json_decref(j);
}

static void utf8_and_lossy(void **state)
{
    (void)state;
    assert_true(api_utf8_valid("h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10));
    assert_false(api_utf8_valid("\xc3", 1));
    assert_false(api_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(api_utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
    json_t *s = api_lossy_string("a\xe2\x82", 3);
    assert_string_equal(json_string_value(s), "a\xef\xbf\xbd\xef\xbf\xbd");
    json_decref(s);
    char id[64];
    api_make_id(id, sizeof id, "chatcmpl-");
    assert_int_equal(strncmp(id, "chatcmpl-", 9), 0);
    assert_int_equal(strlen(id), 9 + 24);
    assert_string_equal(api_finish_name(ENG_FINISH_STOP, 1), "tool_calls");
    assert_string_equal(api_finish_name(ENG_FINISH_LENGTH, 0), "length");
}

int main(void)
{
    /* jansson allocates through util/mem.h too, so OOM injection reaches it. */
    json_set_alloc_funcs(ax_malloc, ax_free);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chat_minimal),
        cmocka_unit_test(chat_all_fields),
        cmocka_unit_test(thinking_switches),
        cmocka_unit_test(generation_config_defaults),
        cmocka_unit_test(content_parts_and_roles),
        cmocka_unit_test(tools_and_choice),
        cmocka_unit_test(completions_prompts),
        cmocka_unit_test(body_errors),
        cmocka_unit_test(message_errors),
        cmocka_unit_test(field_errors),
        cmocka_unit_test(parse_survives_oom),
        cmocka_unit_test(chat_completion_shape),
        cmocka_unit_test(chunk_shapes),
        cmocka_unit_test(sse_fast_path_matches),
        cmocka_unit_test(error_shape),
        cmocka_unit_test(utf8_and_lossy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
