/* parse.c - the incremental Qwen3 output parser (grammar, whitespace rules
 * and tool call format in parse.h). A small state machine over a buffer of
 * undecided bytes: each step either emits a decided prefix and moves on,
 * or waits for more text. Does not know about HTTP, JSON responses or
 * tokens; the caller turns events into chunks. */
#include "chat/parse.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "util/buf.h"
#include "util/mem.h"

#define PARSER_MAGIC 0x43505253u /* "CPRS" */

static const char T_THINK[] = "<think>";
static const char T_THINK_END[] = "</think>";
static const char T_TOOL[] = "<tool_call>";
static const char T_TOOL_END[] = "</tool_call>";
#define TLEN(t) (sizeof(t) - 1)

enum state {
    S_START,          /* nothing but whitespace yet: a <think> may come */
    S_REASONING_LEAD, /* inside <think>, skipping leading whitespace */
    S_REASONING,
    S_CONTENT_LEAD, /* after </think> or </tool_call>: skipping whitespace */
    S_CONTENT,
    S_TOOL, /* inside <tool_call>, collecting the body */
};

struct chat_parser {
    uint32_t magic;
    enum state st;
    int parse_tools;
    int n_calls;
    int failed;
    struct ax_buf pend; /* undecided bytes */
    size_t scanned;     /* S_TOOL: no "</tool_call>" starts before this offset */
    uint64_t rng;       /* for call ids */
};

/* ---- helpers -------------------------------------------------------------- */

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Offset of the first occurrence of tag in s[0..n), or n. */
static size_t find(const char *s, size_t n, const char *tag, size_t tl)
{
    if (n < tl)
        return n;
    for (size_t i = 0; i + tl <= n; i++)
        if (s[i] == tag[0] && !memcmp(s + i, tag, tl))
            return i;
    return n;
}

/* Start of the longest suffix of s[0..n) that is a proper prefix of tag
 * (text that might still become the tag); n if none. */
static size_t partial_start(const char *s, size_t n, const char *tag, size_t tl)
{
    size_t k = n < tl - 1 ? n : tl - 1;
    for (; k > 0; k--)
        if (!memcmp(s + n - k, tag, k))
            return n - k;
    return n;
}

static void emit_text(chat_emit_fn *emit, void *user, enum chat_part kind, const char *s, size_t n)
{
    if (!n)
        return;
    struct chat_event ev = {.kind = kind, .text = s, .len = n};
    emit(user, &ev);
}

/* Drops the first n pending bytes. */
static void consume(struct chat_parser *p, size_t n)
{
    memmove(p->pend.data, p->pend.data + n, p->pend.len - n);
    p->pend.len -= n;
    p->pend.data[p->pend.len] = '\0';
}

/* ---- tool calls --------------------------------------------------------- */

static uint64_t next_rand(struct chat_parser *p)
{
    uint64_t z = (p->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void make_id(struct chat_parser *p, char id[32])
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    memcpy(id, "call_", 5);
    for (int i = 0; i < 24; i++)
        id[5 + i] = al[next_rand(p) % (sizeof al - 1)];
    id[29] = '\0';
}

/* Copies JSON text without the whitespace between tokens (strings are
 * copied as written, escapes included). out has room for n + 1 bytes. */
static size_t minify(const char *s, size_t n, char *out)
{
    size_t k = 0;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            out[k++] = c;
            if (c == '\\' && i + 1 < n)
                out[k++] = s[++i];
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
            out[k++] = c;
        } else if (!is_ws(c))
            out[k++] = c;
    }
    out[k] = '\0';
    return k;
}

/* In minified JSON text of an object, the value of the top-level key
 * "arguments": sets [*b, *e). 0 if not found. */
static int find_arguments(const char *s, size_t n, size_t *b, size_t *e)
{
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '"') {
            size_t start = i;
            for (i++; i < n && s[i] != '"'; i++)
                if (s[i] == '\\')
                    i++;
            if (depth == 1 && i + 1 < n && s[i + 1] == ':' && i - start == 10 &&
                !memcmp(s + start, "\"arguments\"", 11)) {
                *b = i + 2;
                int d = 0;
                size_t j = *b;
                for (; j < n; j++) {
                    char x = s[j];
                    if (x == '"') {
                        for (j++; j < n && s[j] != '"'; j++)
                            if (s[j] == '\\')
                                j++;
                    } else if (x == '{' || x == '[')
                        d++;
                    else if (x == '}' || x == ']') {
                        if (d == 0)
                            break;
                        d--;
                    } else if (x == ',' && d == 0)
                        break;
                }
                *e = j;
                return 1;
            }
        } else if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']')
            depth--;
    }
    return 0;
}

/* Validates a tool call body; on success fills name/args (caller frees
 * both with ax_free). Returns AX_EFORMAT for a body that is not a tool
 * call (it goes to content), AX_ENOMEM. */
static enum ax_err tool_call_parts(const char *body, size_t n, char **name, char **args)
{
    *name = *args = NULL;
    json_t *j = json_loadb(body, n, JSON_REJECT_DUPLICATES, NULL);
    const json_t *jn = json_object_get(j, "name");
    const json_t *ja = json_object_get(j, "arguments");
    enum ax_err rc = AX_EFORMAT;
    if (!json_is_object(j) || !json_is_string(jn) || !json_string_length(jn) ||
        (ja && !json_is_object(ja) && !json_is_string(ja)))
        goto out;
    rc = AX_ENOMEM;
    if (!(*name = ax_strdup(json_string_value(jn))))
        goto out;
    if (!ja)
        *args = ax_strdup("{}");
    else if (json_is_string(ja))
        *args = ax_strdup(json_string_value(ja));
    else {
        char *m = ax_malloc(n + 1);
        size_t b, e;
        if (m && find_arguments(m, minify(body, n, m), &b, &e))
            *args = ax_strndup(m + b, e - b);
        ax_free(m);
    }
    if (*args)
        rc = AX_OK;
out:
    if (rc) {
        ax_free(*name);
        *name = NULL;
    }
    json_decref(j);
    return rc;
}

/* ---- the state machine ---------------------------------------------------- */

/* One step on the pending text. Returns 1 if it made progress (call again),
 * 0 if it needs more text, -1 on error (set in *rc). */
static int step(struct chat_parser *p, int final, chat_emit_fn *emit, void *user, enum ax_err *rc)
{
    const char *s = p->pend.data;
    size_t n = p->pend.len, i, j;
    switch (p->st) {
    case S_START:
        for (i = 0; i < n && is_ws(s[i]); i++)
            ;
        if (i == n && !final)
            return 0;
        if (n - i >= TLEN(T_THINK) && !memcmp(s + i, T_THINK, TLEN(T_THINK))) {
            emit_text(emit, user, CHAT_CONTENT, s, i);
            consume(p, i + TLEN(T_THINK));
            p->st = S_REASONING_LEAD;
            return 1;
        }
        if (!final && n - i < TLEN(T_THINK) && !memcmp(s + i, T_THINK, n - i))
            return 0; /* may still become <think> */
        p->st = S_CONTENT;
        return 1;
    case S_REASONING_LEAD:
    case S_CONTENT_LEAD:
        for (i = 0; i < n && is_ws(s[i]); i++)
            ;
        consume(p, i);
        if (i == n)
            return 0;
        p->st = p->st == S_REASONING_LEAD ? S_REASONING : S_CONTENT;
        return 1;
    case S_REASONING:
        j = find(s, n, T_THINK_END, TLEN(T_THINK_END));
        if (j < n) {
            for (i = j; i > 0 && is_ws(s[i - 1]); i--)
                ;
            emit_text(emit, user, CHAT_REASONING, s, i);
            consume(p, j + TLEN(T_THINK_END));
            p->st = S_CONTENT_LEAD;
            return 1;
        }
        j = final ? n : partial_start(s, n, T_THINK_END, TLEN(T_THINK_END));
        /* Trailing whitespace may precede </think>: hold it. */
        for (i = j; i > 0 && is_ws(s[i - 1]); i--)
            ;
        emit_text(emit, user, CHAT_REASONING, s, i);
        consume(p, final ? n : i);
        return 0;
    case S_CONTENT:
        if (!p->parse_tools) {
            emit_text(emit, user, CHAT_CONTENT, s, n);
            consume(p, n);
            return 0;
        }
        j = find(s, n, T_TOOL, TLEN(T_TOOL));
        if (j < n) {
            emit_text(emit, user, CHAT_CONTENT, s, j);
            consume(p, j + TLEN(T_TOOL));
            p->st = S_TOOL;
            return 1;
        }
        j = final ? n : partial_start(s, n, T_TOOL, TLEN(T_TOOL));
        emit_text(emit, user, CHAT_CONTENT, s, j);
        consume(p, j);
        return 0;
    case S_TOOL:
        /* A long body arrives over many pushes: search only the new part. */
        j = p->scanned + find(s + p->scanned, n - p->scanned, T_TOOL_END, TLEN(T_TOOL_END));
        if (j == n && !final) {
            p->scanned = n >= TLEN(T_TOOL_END) ? n - TLEN(T_TOOL_END) + 1 : 0;
            return 0;
        }
        p->scanned = 0;
        if (j < n) {
            char *name, *args;
            enum ax_err r = tool_call_parts(s, j, &name, &args);
            if (r == AX_OK) {
                char id[32];
                make_id(p, id);
                struct chat_event ev = {.kind = CHAT_TOOL_CALL,
                                        .index = p->n_calls++,
                                        .id = id,
                                        .name = name,
                                        .arguments = args};
                emit(user, &ev);
                ax_free(name);
                ax_free(args);
                consume(p, j + TLEN(T_TOOL_END));
                p->st = S_CONTENT_LEAD;
                return 1;
            }
            if (r != AX_EFORMAT) {
                *rc = r;
                return -1;
            }
            j += TLEN(T_TOOL_END);
        }
        /* Not a tool call (or unterminated at the end): verbatim content. */
        emit_text(emit, user, CHAT_CONTENT, T_TOOL, TLEN(T_TOOL));
        emit_text(emit, user, CHAT_CONTENT, s, j);
        consume(p, j);
        p->st = S_CONTENT;
        return 1;
    }
    return 0;
}

static enum ax_err run(struct chat_parser *p, int final, chat_emit_fn *emit, void *user, char *err)
{
    enum ax_err rc = AX_OK;
    int r;
    while ((r = step(p, final, emit, user, &rc)) > 0)
        ;
    if (r < 0) {
        p->failed = 1;
        return ax_fail(err, rc, "chat output parser: %s", ax_strerror(rc));
    }
    return AX_OK;
}

/* ---- interface ------------------------------------------------------------ */

enum ax_err chat_parser_new(int starts_in_reasoning, int parse_tools, struct chat_parser **out)
{
    struct chat_parser *p = ax_calloc(1, sizeof *p);
    *out = NULL;
    if (!p)
        return AX_ENOMEM;
    p->magic = PARSER_MAGIC;
    p->st = starts_in_reasoning ? S_REASONING_LEAD : S_START;
    p->parse_tools = parse_tools;
    ax_buf_init(&p->pend, CHAT_PARSE_MAX_PENDING);
    /* Call ids need to be unique, not secret: seed from the OS, falling
     * back to time and address. */
    if (getrandom(&p->rng, sizeof p->rng, GRND_NONBLOCK) != (ssize_t)sizeof p->rng)
        p->rng = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)p;
    *out = p;
    return AX_OK;
}

enum ax_err chat_parser_push(struct chat_parser *p, const char *text, size_t len,
                             chat_emit_fn *emit, void *user, char *err)
{
    if (p->failed)
        return ax_fail(err, AX_EINVAL, "chat output parser: used after an error");
    enum ax_err rc = ax_buf_append(&p->pend, text, len);
    if (rc == AX_ETOOBIG) {
        p->failed = 1;
        return ax_fail(err, rc, "chat output parser: more than %zu bytes in one open block",
                       (size_t)CHAT_PARSE_MAX_PENDING);
    }
    if (rc) {
        p->failed = 1;
        return ax_fail(err, rc, "chat output parser: out of memory");
    }
    if (!p->pend.data)
        return AX_OK; /* nothing yet */
    return run(p, 0, emit, user, err);
}

enum ax_err chat_parser_finish(struct chat_parser *p, chat_emit_fn *emit, void *user, char *err)
{
    if (p->failed)
        return ax_fail(err, AX_EINVAL, "chat output parser: used after an error");
    if (!p->pend.data)
        return AX_OK;
    return run(p, 1, emit, user, err);
}

void chat_parser_free(struct chat_parser *p)
{
    if (!p)
        return;
    ax_buf_free(&p->pend);
    p->magic = 0;
    ax_free(p);
}

int chat_parser_tool_calls(const struct chat_parser *p)
{
    return p->n_calls;
}

/* ---- prompts ---------------------------------------------------------------- */

static const char *rfind(const char *s, size_t n, const char *t)
{
    size_t tl = strlen(t);
    for (size_t i = n >= tl ? n - tl + 1 : 0; i-- > 0;)
        if (!memcmp(s + i, t, tl))
            return s + i;
    return NULL;
}

int chat_prompt_opens_think(const char *prompt, size_t len)
{
    const char *a = rfind(prompt, len, "<|im_start|>assistant");
    if (!a)
        return 0;
    size_t rest = len - (size_t)(a - prompt);
    const char *t = rfind(a, rest, T_THINK);
    if (!t)
        return 0;
    size_t after = rest - (size_t)(t - a);
    return find(t, after, T_THINK_END, TLEN(T_THINK_END)) == after;
}
