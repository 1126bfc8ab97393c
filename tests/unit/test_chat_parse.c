/* test_chat_parse.c - chat/parse: Qwen3 output -> reasoning, content, tool
 * calls. Every expected result below is written out by hand from the rules
 * in parse.h (llama.cpp's whitespace handling for Qwen3), never produced by
 * running the parser. Each case is also fed in every 2-way split, every
 * 3-way split (short cases) and byte by byte, and must give the same
 * result: the streaming property. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chat/parse.h"
#include "util/mem.h"

/* ---- collecting events ------------------------------------------------- */

#define MAXC 8

struct call {
    int index;
    char id[64];
    char name[64];
    char args[512];
};

struct result {
    char content[2048];
    char reasoning[2048];
    size_t nc, nr;
    int n_calls;
    struct call calls[MAXC];
    int n_content_events, n_reasoning_events;
    int bad_event; /* an empty text event */
};

static void append(char *dst, size_t *n, const char *s, size_t len)
{
    assert_true(*n + len < 2048);
    memcpy(dst + *n, s, len);
    *n += len;
    dst[*n] = '\0';
}

static void on_event(void *user, const struct chat_event *ev)
{
    struct result *r = user;
    switch (ev->kind) {
    case CHAT_CONTENT:
        r->n_content_events++;
        r->bad_event |= ev->len == 0;
        append(r->content, &r->nc, ev->text, ev->len);
        break;
    case CHAT_REASONING:
        r->n_reasoning_events++;
        r->bad_event |= ev->len == 0;
        append(r->reasoning, &r->nr, ev->text, ev->len);
        break;
    case CHAT_TOOL_CALL: {
        assert_true(r->n_calls < MAXC);
        struct call *c = &r->calls[r->n_calls++];
        c->index = ev->index;
        snprintf(c->id, sizeof c->id, "%s", ev->id);
        snprintf(c->name, sizeof c->name, "%s", ev->name);
        snprintf(c->args, sizeof c->args, "%s", ev->arguments);
        break;
    }
    }
}

/* Feeds text cut at the given offsets (sorted, within [0, len]). */
static void parse_split(const char *text, int think, int tools, const size_t *cuts, int ncuts,
                        struct result *r)
{
    memset(r, 0, sizeof *r);
    struct chat_parser *p;
    char err[AX_ERRLEN];
    assert_int_equal(chat_parser_new(think, tools, &p), AX_OK);
    size_t len = strlen(text), at = 0;
    for (int i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        assert_int_equal(chat_parser_push(p, text + at, end - at, on_event, r, err), AX_OK);
        at = end;
    }
    assert_int_equal(chat_parser_finish(p, on_event, r, err), AX_OK);
    assert_int_equal(chat_parser_tool_calls(p), r->n_calls);
    chat_parser_free(p);
}

/* ---- expected results ---------------------------------------------------- */

struct expect {
    const char *name;
    const char *text;
    int think, tools;
    const char *reasoning, *content;
    int n_calls;
    const char *call_names[4];
    const char *call_args[4];
};

static void same_result(const struct expect *e, const struct result *r, const char *how)
{
    if (strcmp(r->reasoning, e->reasoning) != 0 || strcmp(r->content, e->content) != 0 ||
        r->n_calls != e->n_calls || r->bad_event)
        fail_msg("%s (%s): reasoning [%s] content [%s] calls %d; want [%s] [%s] %d", e->name, how,
                 r->reasoning, r->content, r->n_calls, e->reasoning, e->content, e->n_calls);
    for (int i = 0; i < e->n_calls; i++) {
        const struct call *c = &r->calls[i];
        if (c->index != i || strcmp(c->name, e->call_names[i]) != 0 ||
            strcmp(c->args, e->call_args[i]) != 0)
            fail_msg("%s (%s): call %d = %d %s %s; want %d %s %s", e->name, how, i, c->index,
                     c->name, c->args, i, e->call_names[i], e->call_args[i]);
        if (strncmp(c->id, "call_", 5) != 0 || strlen(c->id) != 29)
            fail_msg("%s: bad id %s", e->name, c->id);
        for (int k = 0; k < i; k++)
            if (!strcmp(r->calls[k].id, c->id))
                fail_msg("%s: duplicate id %s", e->name, c->id);
    }
    /* No reasoning at all means no reasoning event (empty think). */
    if (!e->reasoning[0] && r->n_reasoning_events)
        fail_msg("%s (%s): reasoning events without reasoning", e->name, how);
}

static const struct expect cases[] = {
    {"think then answer",
     "<think>\nLet me think.\n</think>\n\nThe answer is 4.",
     0,
     0,
     "Let me think.",
     "The answer is 4.",
     0,
     {0},
     {0}},
    {"no-think prompt, plain answer",
     "Hello! How can I help?",
     0,
     1,
     "",
     "Hello! How can I help?",
     0,
     {0},
     {0}},
    {"empty think block", "<think>\n\n</think>\n\nHello", 0, 0, "", "Hello", 0, {0}, {0}},
    {"prompt opened think",
     "I should greet.\n</think>\n\nHi there",
     1,
     0,
     "I should greet.",
     "Hi there",
     0,
     {0},
     {0}},
    {"prompt opened think, unterminated",
     "\nstill going  \n",
     1,
     0,
     "still going",
     "",
     0,
     {0},
     {0}},
    {"unterminated reasoning",
     "<think>\nstill thinking  ",
     0,
     0,
     "still thinking",
     "",
     0,
     {0},
     {0}},
    {"reasoning whitespace inside kept",
     "<think>\n a \n\n b \n</think>x",
     0,
     0,
     "a \n\n b",
     "x",
     0,
     {0},
     {0}},
    {"think + two tool calls",
     "<think>\nneed weather\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", "
     "\"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>\n<tool_call>\n"
     "{\"name\": \"get_time\", \"arguments\": {\"tz\": \"CET\"}}\n</tool_call>",
     0,
     1,
     "need weather",
     "",
     2,
     {"get_weather", "get_time"},
     {"{\"city\":\"Paris\",\"unit\":\"c\"}", "{\"tz\":\"CET\"}"}},
    {"content then three calls",
     "Let me check.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n"
     "<tool_call>{\"name\":\"b\",\"arguments\":{\"x\":[1, 2]}}</tool_call>\n\n"
     "<tool_call> {\"arguments\": {\"q\": null}, \"name\": \"c\"} </tool_call>",
     0,
     1,
     "",
     "Let me check.\n",
     3,
     {"a", "b", "c"},
     {"{}", "{\"x\":[1,2]}", "{\"q\":null}"}},
    {"text after a call",
     "<tool_call>{\"name\":\"f\"}</tool_call>\n\nDone.",
     0,
     1,
     "",
     "Done.",
     1,
     {"f"},
     {"{}"}},
    {"arguments as a string",
     "<tool_call>{\"name\":\"f\",\"arguments\":\"{\\\"a\\\": 1}\"}</tool_call>",
     0,
     1,
     "",
     "",
     1,
     {"f"},
     {"{\"a\": 1}"}},
    {"arguments kept as written, whitespace removed",
     "<tool_call>\n{\"name\": \"run\", \"arguments\": {\"cmd\": \"echo \\\"{ }\\\" , ok\", "
     "\"list\": [1, 2, {\"k\": \"v w\"}], \"n\": 1.50, \"u\": \"\\u00e9\"}}\n</tool_call>",
     0,
     1,
     "",
     "",
     1,
     {"run"},
     {"{\"cmd\":\"echo \\\"{ }\\\" , ok\",\"list\":[1,2,{\"k\":\"v w\"}],\"n\":1.50,"
      "\"u\":\"\\u00e9\"}"}},
    {"malformed JSON stays in content",
     "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": }\n</tool_call>",
     0,
     1,
     "",
     "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": }\n</tool_call>",
     0,
     {0},
     {0}},
    {"missing name",
     "a<tool_call>{\"arguments\": {}}</tool_call>b",
     0,
     1,
     "",
     "a<tool_call>{\"arguments\": {}}</tool_call>b",
     0,
     {0},
     {0}},
    {"empty name",
     "<tool_call>{\"name\": \"\"}</tool_call>",
     0,
     1,
     "",
     "<tool_call>{\"name\": \"\"}</tool_call>",
     0,
     {0},
     {0}},
    {"arguments an array",
     "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>",
     0,
     1,
     "",
     "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>",
     0,
     {0},
     {0}},
    {"duplicate keys",
     "<tool_call>{\"name\": \"f\", \"name\": \"g\"}</tool_call>",
     0,
     1,
     "",
     "<tool_call>{\"name\": \"f\", \"name\": \"g\"}</tool_call>",
     0,
     {0},
     {0}},
    {"malformed then valid",
     "<tool_call>oops</tool_call>\n<tool_call>{\"name\": \"g\"}</tool_call>",
     0,
     1,
     "",
     "<tool_call>oops</tool_call>\n",
     1,
     {"g"},
     {"{}"}},
    {"unterminated call at finish",
     "Sure.<tool_call>\n{\"name\": \"f\"",
     0,
     1,
     "",
     "Sure.<tool_call>\n{\"name\": \"f\"",
     0,
     {0},
     {0}},
    {"tag-like prefixes are text",
     "a <thin b <tool c </thinking> <tool_cal",
     0,
     1,
     "",
     "a <thin b <tool c </thinking> <tool_cal",
     0,
     {0},
     {0}},
    {"angle brackets and html",
     "if a<b and b>c then <b>bold</b> x< <<tool_call",
     0,
     1,
     "",
     "if a<b and b>c then <b>bold</b> x< <<tool_call",
     0,
     {0},
     {0}},
    {"tools off: blocks are text",
     "<tool_call>{\"name\": \"f\"}</tool_call>",
     0,
     0,
     "",
     "<tool_call>{\"name\": \"f\"}</tool_call>",
     0,
     {0},
     {0}},
    {"tool tag inside reasoning is reasoning",
     "<think>I could use <tool_call> here</think>ok",
     0,
     1,
     "I could use <tool_call> here",
     "ok",
     0,
     {0},
     {0}},
    {"think not at the start is text",
     "Hello <think>x</think> bye",
     0,
     0,
     "",
     "Hello <think>x</think> bye",
     0,
     {0},
     {0}},
    {"whitespace before think is content", "\n <think>r</think>c", 0, 0, "r", "\n c", 0, {0}, {0}},
    {"only whitespace", " \n ", 0, 1, "", " \n ", 0, {0}, {0}},
    {"utf-8",
     "<think>\n\xe6\x80\x9d\xe8\x80\x83\n</think>\n\n\xe7\xad\x94\xe6\xa1\x88",
     0,
     0,
     "\xe6\x80\x9d\xe8\x80\x83",
     "\xe7\xad\x94\xe6\xa1\x88",
     0,
     {0},
     {0}},
    {"nested think tags in reasoning",
     "<think>a <think> b</think>c",
     0,
     0,
     "a <think> b",
     "c",
     0,
     {0},
     {0}},
    {"second </think> is content",
     "<think>a</think>b</think>",
     0,
     0,
     "a",
     "b</think>",
     0,
     {0},
     {0}},
};

static void check_case(const struct expect *e)
{
    struct result r;
    size_t len = strlen(e->text);
    parse_split(e->text, e->think, e->tools, NULL, 0, &r);
    same_result(e, &r, "one shot");
    for (size_t i = 0; i <= len; i++) {
        parse_split(e->text, e->think, e->tools, &i, 1, &r);
        same_result(e, &r, "2-way split");
    }
    if (len <= 160)
        for (size_t i = 0; i <= len; i++)
            for (size_t j = i; j <= len; j++) {
                size_t cuts[2] = {i, j};
                parse_split(e->text, e->think, e->tools, cuts, 2, &r);
                same_result(e, &r, "3-way split");
            }
    size_t *cuts = malloc((len + 1) * sizeof *cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i;
    parse_split(e->text, e->think, e->tools, cuts, (int)len, &r);
    same_result(e, &r, "byte by byte");
    free(cuts);
}

static void all_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
}

/* A tag split across pushes is never emitted early: after pushing "Hi <too"
 * only "Hi " may be out. */
static void holds_partial_tags(void **state)
{
    (void)state;
    struct result r;
    memset(&r, 0, sizeof r);
    struct chat_parser *p;
    char err[AX_ERRLEN];
    assert_int_equal(chat_parser_new(0, 1, &p), AX_OK);
    assert_int_equal(chat_parser_push(p, "Hi <too", 7, on_event, &r, err), AX_OK);
    assert_string_equal(r.content, "Hi ");
    assert_int_equal(chat_parser_push(p, "l_call>{\"name\":\"f\"}</tool_c", 27, on_event, &r, err),
                     AX_OK);
    assert_string_equal(r.content, "Hi ");
    assert_int_equal(r.n_calls, 0);
    assert_int_equal(chat_parser_push(p, "all>", 4, on_event, &r, err), AX_OK);
    assert_int_equal(r.n_calls, 1); /* as soon as the block closes */
    chat_parser_free(p);
    /* In reasoning, trailing whitespace waits for what follows. */
    memset(&r, 0, sizeof r);
    assert_int_equal(chat_parser_new(1, 0, &p), AX_OK);
    assert_int_equal(chat_parser_push(p, "a \n</thi", 8, on_event, &r, err), AX_OK);
    assert_string_equal(r.reasoning, "a");
    assert_int_equal(chat_parser_push(p, "nk>", 3, on_event, &r, err), AX_OK);
    assert_string_equal(r.reasoning, "a");
    chat_parser_free(p);
}

static void ids_unique_across_parsers(void **state)
{
    (void)state;
    const char *t = "<tool_call>{\"name\":\"f\"}</tool_call>";
    struct result a, b;
    parse_split(t, 0, 1, NULL, 0, &a);
    parse_split(t, 0, 1, NULL, 0, &b);
    assert_int_equal(a.n_calls, 1);
    assert_int_equal(b.n_calls, 1);
    assert_string_not_equal(a.calls[0].id, b.calls[0].id);
    for (const char *c = a.calls[0].id + 5; *c; c++)
        assert_true((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                    (*c >= '0' && *c <= '9'));
}

static void limits_and_errors(void **state)
{
    (void)state;
    struct result r;
    memset(&r, 0, sizeof r);
    struct chat_parser *p;
    char err[AX_ERRLEN] = "";
    assert_int_equal(chat_parser_new(0, 1, &p), AX_OK);
    assert_int_equal(chat_parser_push(p, "<tool_call>", 11, on_event, &r, err), AX_OK);
    size_t big = CHAT_PARSE_MAX_PENDING + 1;
    char *junk = malloc(big);
    memset(junk, 'x', big);
    assert_int_equal(chat_parser_push(p, junk, big, on_event, &r, err), AX_ETOOBIG);
    assert_non_null(strstr(err, "open block"));
    assert_int_equal(chat_parser_push(p, "a", 1, on_event, &r, err), AX_EINVAL);
    assert_int_equal(chat_parser_finish(p, on_event, &r, err), AX_EINVAL);
    chat_parser_free(p);
    free(junk);
    chat_parser_free(NULL);
    ax_mem_fail_after(0);
    assert_int_equal(chat_parser_new(0, 1, &p), AX_ENOMEM);
    ax_mem_fail_after(-1);
    assert_null(p);
}

/* Every allocation failure gives the right answer or a clean AX_ENOMEM. */
static void alloc_failures(void **state)
{
    (void)state;
    const struct expect *e = &cases[7]; /* think + two tool calls */
    int ok = 0;
    for (long n = 0; n < 200 && !ok; n++) {
        struct result r;
        memset(&r, 0, sizeof r);
        struct chat_parser *p = NULL;
        char err[AX_ERRLEN];
        ax_mem_fail_after(n);
        enum ax_err rc = chat_parser_new(0, 1, &p);
        if (rc == AX_OK)
            rc = chat_parser_push(p, e->text, strlen(e->text), on_event, &r, err);
        if (rc == AX_OK)
            rc = chat_parser_finish(p, on_event, &r, err);
        ax_mem_fail_after(-1);
        chat_parser_free(p);
        if (rc != AX_OK && rc != AX_ENOMEM)
            fail_msg("fail after %ld: %d", n, rc);
        if (rc == AX_OK) {
            same_result(e, &r, "allocation failure run");
            ok = 1;
        }
    }
    assert_true(ok);
}

static void prompt_opens_think(void **state)
{
    (void)state;
    static const struct {
        const char *prompt;
        int want;
    } cases_[] = {
        {"<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n", 1},
        {"<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n", 0},
        {"<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", 0},
        {"<|im_start|>assistant\n<think>\nx</think>\n\nhello<|im_end|>\n<|im_start|>user\nq"
         "<|im_end|>\n<|im_start|>assistant\n",
         0},
        {"<|im_start|>assistant\n<think>\nx<|im_end|>\n<|im_start|>user\nq<|im_end|>\n"
         "<|im_start|>assistant\n",
         0},
        {"<think>\n", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof cases_ / sizeof cases_[0]; i++)
        if (chat_prompt_opens_think(cases_[i].prompt, strlen(cases_[i].prompt)) != cases_[i].want)
            fail_msg("prompt case %zu: want %d", i, cases_[i].want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(all_cases),
        cmocka_unit_test(holds_partial_tags),
        cmocka_unit_test(ids_unique_across_parsers),
        cmocka_unit_test(limits_and_errors),
        cmocka_unit_test(alloc_failures),
        cmocka_unit_test(prompt_opens_think),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
