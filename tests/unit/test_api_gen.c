/* test_api_gen.c - api/gen.c's event processing with the real chat output
 * parser: canned engine events (Qwen3 text with <think> and <tool_call>
 * blocks) in, SSE chunks and chat.completion bodies out.
 *
 * The synthetic test model cannot be made to write these blocks, so this
 * is where the reasoning / tool-call paths of the server are checked end
 * to end (minus the socket). The stream is reassembled the way the openai
 * clients do it and compared with the non-stream body of the same events. */
#define TESTING 1
#include "../../src/api/gen.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

/* A job as job_new leaves it after a successful submit, minus the engine. */
static struct job *fake_job(struct api_server *s, int stream, int parse_tools, int think,
                            int include_usage)
{
    struct job *j = ax_calloc(1, sizeof *j);
    assert_non_null(j);
    j->s = s;
    ax_buf_init(&j->prompt, MAX_PROMPT);
    ax_buf_init(&j->content, MAX_OUTPUT);
    ax_buf_init(&j->reasoning, MAX_OUTPUT);
    ax_buf_init(&j->sse, MAX_SSE);
    j->req.kind = API_CHAT;
    j->req.stream = stream;
    j->req.include_usage = include_usage;
    j->req.parse_tools = parse_tools;
    j->chat = 1;
    j->stream = stream;
    j->calls = json_array();
    j->lp = json_pack("{s:[]}", "content");
    j->lp_pending = json_array();
    snprintf(j->id, sizeof j->id, "chatcmpl-test");
    j->created = 1;
    assert_int_equal(chat_parser_new(think, parse_tools, &j->parser), AX_OK);
    return j;
}

static void feed(struct job *j, const char *const *pieces, int n, enum eng_finish fin)
{
    for (int i = 0; i < n; i++) {
        memset(&j->ev, 0, sizeof j->ev);
        j->ev.kind = ENG_EV_TOKEN;
        j->ev.token = i;
        j->ev.text = pieces[i];
        j->ev.text_len = strlen(pieces[i]);
        on_token(j);
    }
    memset(&j->ev, 0, sizeof j->ev);
    j->ev.kind = ENG_EV_DONE;
    j->ev.finish = fin;
    j->ev.prompt_tokens = 10;
    j->ev.completion_tokens = n;
    on_done(j);
    assert_int_equal(j->fail, AX_OK);
}

/* What a client accumulates from the stream. */
struct acc {
    char content[4096], reasoning[4096];
    json_t *calls; /* [{id, name, arguments}] by index */
    char finish[32];
    int n_chunks, role_first, done_last, usage_chunks;
};

static void acc_chunk(struct acc *a, json_t *c)
{
    json_t *choices = json_object_get(c, "choices");
    if (json_array_size(choices) == 0) {
        a->usage_chunks++;
        return;
    }
    json_t *ch = json_array_get(choices, 0);
    json_t *d = json_object_get(ch, "delta");
    if (a->n_chunks == 0)
        a->role_first = json_is_string(json_object_get(d, "role"));
    a->n_chunks++;
    const char *s;
    if ((s = json_string_value(json_object_get(d, "content"))))
        strcat(a->content, s);
    if ((s = json_string_value(json_object_get(d, "reasoning_content"))))
        strcat(a->reasoning, s);
    if ((s = json_string_value(json_object_get(ch, "finish_reason"))))
        snprintf(a->finish, sizeof a->finish, "%s", s);
    size_t i;
    json_t *tc;
    json_array_foreach(json_object_get(d, "tool_calls"), i, tc)
    {
        int idx = (int)json_integer_value(json_object_get(tc, "index"));
        json_t *f = json_object_get(tc, "function");
        json_t *have = json_array_get(a->calls, (size_t)idx);
        if (!have) {
            /* First fragment: index, id, type, name and arguments "". */
            assert_int_equal((size_t)idx, json_array_size(a->calls));
            assert_true(json_is_string(json_object_get(tc, "id")));
            assert_string_equal(json_string_value(json_object_get(tc, "type")), "function");
            assert_true(json_is_string(json_object_get(f, "name")));
            assert_string_equal(json_string_value(json_object_get(f, "arguments")), "");
            json_array_append_new(a->calls,
                                  json_pack("{s:O, s:O, s:s}", "id", json_object_get(tc, "id"),
                                            "name", json_object_get(f, "name"), "arguments", ""));
            continue;
        }
        assert_null(json_object_get(tc, "id"));
        char buf[4096];
        snprintf(buf, sizeof buf, "%s%s", json_string_value(json_object_get(have, "arguments")),
                 json_string_value(json_object_get(f, "arguments")));
        json_object_set_new(have, "arguments", json_string(buf));
    }
}

static void parse_sse(const char *sse, struct acc *a)
{
    memset(a, 0, sizeof *a);
    a->calls = json_array();
    const char *p = sse;
    while (*p) {
        assert_int_equal(strncmp(p, "data: ", 6), 0);
        const char *end = strstr(p, "\n\n");
        assert_non_null(end);
        if (!strncmp(p + 6, "[DONE]", 6)) {
            a->done_last = end[2] == '\0';
            break;
        }
        json_error_t je;
        json_t *c = json_loadb(p + 6, (size_t)(end - p - 6), 0, &je);
        assert_non_null(c);
        assert_string_equal(json_string_value(json_object_get(c, "id")), "chatcmpl-test");
        acc_chunk(a, c);
        json_decref(c);
        p = end + 2;
    }
}

static const char *const think_tools[] = {
    "<think>",
    "\nThe user",
    " wants weather",
    ".\n",
    "</think>",
    "\n\n",
    "<tool_call>",
    "\n{\"name\": \"get_weather\", ",
    "\"arguments\": {\"city\": \"Paris\"}}",
    "\n</tool_call>",
    "\n",
    "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>",
};

static void stream_reasoning_and_tools(void **state)
{
    (void)state;
    struct api_server s = {.model_id = "m"};
    struct job *j = fake_job(&s, 1, 1, 0, 1);
    stream_delta(j, json_pack("{s:s, s:s}", "role", "assistant", "content", ""));
    feed(j, think_tools, (int)(sizeof think_tools / sizeof *think_tools), ENG_FINISH_STOP);
    write_tail(j);
    struct acc a;
    parse_sse(j->sse.data, &a);
    assert_true(a.role_first);
    assert_true(a.done_last);
    assert_int_equal(a.usage_chunks, 1);
    assert_string_equal(a.finish, "tool_calls");
    assert_non_null(strstr(a.reasoning, "The user wants weather."));
    assert_null(strstr(a.reasoning, "<think>"));
    assert_null(strstr(a.content, "<think>"));
    assert_null(strstr(a.content, "<tool_call>"));
    assert_int_equal(json_array_size(a.calls), 2);
    json_t *c0 = json_array_get(a.calls, 0), *c1 = json_array_get(a.calls, 1);
    assert_string_equal(json_string_value(json_object_get(c0, "name")), "get_weather");
    assert_string_equal(json_string_value(json_object_get(c1, "name")), "get_time");
    json_t *args = json_loads(json_string_value(json_object_get(c0, "arguments")), 0, NULL);
    assert_non_null(args);
    assert_string_equal(json_string_value(json_object_get(args, "city")), "Paris");
    json_decref(args);
    assert_string_not_equal(json_string_value(json_object_get(c0, "id")),
                            json_string_value(json_object_get(c1, "id")));
    assert_int_equal(j->usage.reasoning > 0, 1);
    json_decref(a.calls);
    job_free(j);
}

static void nonstream_matches_stream(void **state)
{
    (void)state;
    struct api_server s = {.model_id = "m"};
    struct job *j = fake_job(&s, 0, 1, 0, 0);
    feed(j, think_tools, (int)(sizeof think_tools / sizeof *think_tools), ENG_FINISH_STOP);
    struct api_result r = {.id = j->id,
                           .created = 1,
                           .model = "m",
                           .content = j->content.data,
                           .content_len = j->content.len,
                           .reasoning = j->reasoning.data,
                           .reasoning_len = j->reasoning.len,
                           .tool_calls = j->calls,
                           .finish = finish_name(j),
                           .usage = j->usage};
    json_t *body = api_chat_completion(&r);
    json_t *m = json_object_get(json_array_get(json_object_get(body, "choices"), 0), "message");
    /* Only whitespace around the calls: content is null. */
    const char *content = json_string_value(json_object_get(m, "content"));
    if (content)
        for (const char *p = content; *p; p++)
            assert_true(*p == ' ' || *p == '\n');
    else
        assert_true(json_is_null(json_object_get(m, "content")));
    assert_non_null(strstr(json_string_value(json_object_get(m, "reasoning_content")),
                           "The user wants weather."));
    json_t *calls = json_object_get(m, "tool_calls");
    assert_int_equal(json_array_size(calls), 2);
    json_t *f = json_object_get(json_array_get(calls, 0), "function");
    assert_string_equal(json_string_value(json_object_get(f, "name")), "get_weather");
    json_t *args = json_loads(json_string_value(json_object_get(f, "arguments")), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(args, "city")), "Paris");
    json_decref(args);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(body, "choices"), 0), "finish_reason")),
                        "tool_calls");
    json_decref(body);
    job_free(j);
}

/* tool_choice none: the parser leaves <tool_call> text alone as content. */
static void tools_off_is_content(void **state)
{
    (void)state;
    struct api_server s = {.model_id = "m"};
    struct job *j = fake_job(&s, 1, 0, 0, 0);
    static const char *const p[] = {"Hi ", "<tool_call>", "{\"name\":\"x\"}", "</tool_call>"};
    feed(j, p, 4, ENG_FINISH_STOP);
    write_tail(j);
    struct acc a;
    parse_sse(j->sse.data, &a);
    assert_string_equal(a.finish, "stop");
    assert_int_equal(json_array_size(a.calls), 0);
    assert_non_null(strstr(a.content, "<tool_call>"));
    assert_int_equal(a.usage_chunks, 0);
    json_decref(a.calls);
    job_free(j);
}

/* A prompt that opened <think> (thinking-only models): text before
 * </think> is reasoning. No reasoning at all: no reasoning field. */
static void prompt_opened_think(void **state)
{
    (void)state;
    struct api_server s = {.model_id = "m"};
    struct job *j = fake_job(&s, 1, 0, 1, 0);
    static const char *const p[] = {"deep", " thought", "</think>", "\n\nAnswer."};
    feed(j, p, 4, ENG_FINISH_LENGTH);
    write_tail(j);
    struct acc a;
    parse_sse(j->sse.data, &a);
    assert_non_null(strstr(a.reasoning, "deep thought"));
    assert_non_null(strstr(a.content, "Answer."));
    assert_null(strstr(a.content, "think>"));
    assert_string_equal(a.finish, "length");
    json_decref(a.calls);
    job_free(j);
    j = fake_job(&s, 0, 0, 0, 0);
    static const char *const q[] = {"plain", " answer"};
    feed(j, q, 2, ENG_FINISH_STOP);
    assert_int_equal(j->reasoning.len, 0);
    assert_string_equal(j->content.data, "plain answer");
    job_free(j);
}

/* The engine reports an error mid-stream: one error event, then [DONE]. */
static void engine_error_in_stream(void **state)
{
    (void)state;
    struct api_server s = {.model_id = "m"};
    struct job *j = fake_job(&s, 1, 0, 0, 1);
    static const char *const p[] = {"a"};
    feed(j, p, 1, ENG_FINISH_ERROR);
    j->eng_code = AX_EBACKEND;
    write_tail(j);
    assert_non_null(strstr(j->sse.data, "data: {\"error\":"));
    assert_non_null(strstr(j->sse.data, "\"server_error\""));
    const char *done = strstr(j->sse.data, "data: [DONE]\n\n");
    assert_non_null(done);
    assert_int_equal(done[14], '\0');
    job_free(j);
}

/* A template that raises (as real templates do for unsupported message
 * orders) is the client's problem: 400 naming messages, not a 500. */
static void template_error_is_400(void **state)
{
    (void)state;
    char path[] = "/tmp/axserve-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char tpl[] = "{\"chat_template\": \"{{ raise_exception('only one conversation "
                              "shape is supported') }}\"}";
    assert_int_equal(write(fd, tpl, sizeof tpl - 1), (ssize_t)(sizeof tpl - 1));
    close(fd);
    struct chat_template *ct = NULL;
    char err[AX_ERRLEN];
    assert_int_equal(chat_template_load(path, &ct, err), AX_OK);
    unlink(path);
    struct api_server s = {.model_id = "m", .tmpl = ct};
    struct job *j = fake_job(&s, 0, 0, 0, 0);
    static const char body[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    struct api_error e;
    assert_int_equal(api_parse_request(API_CHAT, body, sizeof body - 1, NULL, &j->req, &e), AX_OK);
    enum ax_err rc = render(j, &e);
    if (e.status != 400)
        fail_msg("render: %s (%s)", ax_strerror(rc), e.message);
    assert_int_not_equal(rc, AX_OK);
    assert_string_equal(e.param, "messages");
    assert_non_null(strstr(e.message, "only one conversation shape"));
    job_free(j);
    chat_template_free(ct);
}

int main(void)
{
    json_set_alloc_funcs(ax_malloc, ax_free);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stream_reasoning_and_tools), cmocka_unit_test(nonstream_matches_stream),
        cmocka_unit_test(tools_off_is_content),       cmocka_unit_test(prompt_opened_think),
        cmocka_unit_test(engine_error_in_stream),     cmocka_unit_test(template_error_is_400),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
