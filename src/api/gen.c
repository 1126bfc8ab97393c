/* gen.c - one generation request from body to last byte: parse, render
 * the chat template, submit to the engine, turn engine events into a
 * chat.completion / text_completion body or a stream of SSE chunks.
 *
 * Threads: everything here runs on the HTTP connection's thread. The
 * engine thread only fills the request's event queue; we poll it with a
 * short timeout so a client that went away (http_client_gone) or a server
 * shutdown is noticed within ~100 ms even while the prompt is prefilling,
 * and cancel the engine request (which stops within one token or chunk).
 *
 * SSE format (text/event-stream): each event is "data: <json>\n\n"; the
 * stream ends with "data: [DONE]\n\n"; lines starting with ':' are
 * comments (used as keep-alive pings). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/server_int.h"
#include "chat/parse.h"
#include "chat/template.h"
#include "tok/tok.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

#define POLL_MS 100            /* disconnect / shutdown check period */
#define PING_S 10.0            /* SSE keep-alive comment after this much silence */
#define MAX_OUTPUT (64u << 20) /* generated text ceiling per request */
#define MAX_SSE (8u << 20)     /* bytes queued for the client at once */
#define MAX_PROMPT (32u << 20) /* rendered template ceiling */

struct job {
    struct api_server *s;
    struct http_request *hr;
    struct api_request req;
    struct ax_buf prompt;
    struct eng_req *q;
    struct chat_parser *parser;
    char id[48];
    long created;
    int chat; /* chat-shaped response */
    int stream;
    /* progress */
    int done, cancel_sent, shutdown, gone, tail_written, recorded;
    enum eng_finish finish;
    enum ax_err eng_code;
    char eng_msg[AX_ERRLEN];
    struct api_usage usage;
    struct eng_event ev;
    /* output */
    struct ax_buf content, reasoning, sse;
    size_t sse_pos;
    json_t *calls;      /* [{id, type, function{name, arguments}}] */
    json_t *lp;         /* non-stream logprobs so far */
    json_t *lp_pending; /* stream, chat: entries not yet sent */
    json_t *lp_legacy;  /* stream, completions: this token's logprobs object */
    int tok_reasoning;  /* this token produced reasoning text */
    size_t text_offset;
    double t0, t_first, t_last, t_ping;
    enum ax_err fail; /* first internal error (out of memory, parser) */
    char err[AX_ERRLEN];
};

double api_now(void)
{
    return ax_now_ms() * 1e-3;
}

static void set_fail(struct job *j, enum ax_err rc, const char *msg)
{
    if (!j->fail) {
        j->fail = rc;
        snprintf(j->err, sizeof j->err, "%s", msg && *msg ? msg : ax_strerror(rc));
    }
}

/* ---- SSE ---------------------------------------------------------------- */

static void sse_json(struct job *j, json_t *chunk)
{
    char *s = chunk ? api_dump(chunk) : NULL;
    json_decref(chunk);
    if (!s || ax_buf_printf(&j->sse, "data: %s\n\n", s) != AX_OK)
        set_fail(j, AX_ENOMEM, "out of memory while streaming");
    ax_free(s);
}

static json_t *take_pending_lp(struct job *j)
{
    if (!j->req.logprobs)
        return NULL;
    if (!j->chat) {
        json_t *l = j->lp_legacy;
        j->lp_legacy = NULL;
        return l;
    }
    if (!j->lp_pending || json_array_size(j->lp_pending) == 0)
        return NULL;
    /* The chunk takes the array; a fresh one collects the next tokens. */
    json_t *fresh = json_array();
    if (!fresh)
        return NULL;
    json_t *l = json_pack("{s:o}", "content", j->lp_pending);
    j->lp_pending = fresh;
    return l;
}

static void stream_delta(struct job *j, json_t *delta)
{
    if (!delta) {
        set_fail(j, AX_ENOMEM, "out of memory while streaming");
        return;
    }
    sse_json(j, api_chat_chunk(j->id, j->created, j->s->model_id, delta, NULL, take_pending_lp(j)));
}

/* ---- outputs ------------------------------------------------------------ */

static void emit_text(struct job *j, int reasoning, const char *text, size_t len)
{
    if (!len)
        return;
    struct ax_buf *b = reasoning ? &j->reasoning : &j->content;
    if (ax_buf_append(b, text, len) != AX_OK)
        set_fail(j, AX_ETOOBIG, "generated text exceeds the output ceiling");
    if (!j->stream)
        return;
    const char *field = !j->chat ? NULL : reasoning ? "reasoning_content" : "content";
    if (!j->req.logprobs) { /* the per-token path: no allocation */
        if (api_sse_text(&j->sse, j->id, j->created, j->s->model_id, field, text, len) != AX_OK)
            set_fail(j, AX_ENOMEM, "out of memory while streaming");
        return;
    }
    if (!j->chat) {
        sse_json(j, api_text_chunk(j->id, j->created, j->s->model_id, text, len, NULL,
                                   take_pending_lp(j)));
        return;
    }
    json_t *v = api_lossy_string(text, len);
    stream_delta(j, v ? json_pack("{s:o}", field, v) : NULL);
}

/* A tool call from the chat parser: an event with a name starts call
 * number json_array_size(calls) (our own numbering, so indices are always
 * distinct); an event without a name appends argument text to the last. */
static void emit_call(struct job *j, const struct chat_event *ev)
{
    const char *args = ev->arguments ? ev->arguments : "";
    size_t alen = ev->arguments ? strlen(ev->arguments) : 0;
    if (!ev->arguments && ev->text) {
        args = ev->text;
        alen = ev->len;
    }
    size_t idx;
    if (ev->name || json_array_size(j->calls) == 0) {
        char id[48];
        if (ev->id && *ev->id)
            snprintf(id, sizeof id, "%s", ev->id);
        else
            api_make_id(id, sizeof id, "call_");
        idx = json_array_size(j->calls);
        json_t *c = json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id, "type", "function", "function",
                              "name", ev->name ? ev->name : "", "arguments", "");
        if (!c || json_array_append_new(j->calls, c)) {
            set_fail(j, AX_ENOMEM, "out of memory");
            return;
        }
        if (j->stream)
            stream_delta(j, json_pack("{s:[{s:i, s:s, s:s, s:{s:s, s:s}}]}", "tool_calls", "index",
                                      (int)idx, "id", id, "type", "function", "function", "name",
                                      ev->name ? ev->name : "", "arguments", ""));
    } else {
        idx = json_array_size(j->calls) - 1;
    }
    if (!alen)
        return;
    json_t *f = json_object_get(json_array_get(j->calls, idx), "function");
    const char *old = json_string_value(json_object_get(f, "arguments"));
    struct ax_buf b;
    ax_buf_init(&b, MAX_OUTPUT);
    if (ax_buf_puts(&b, old ? old : "") || ax_buf_append(&b, args, alen) ||
        json_object_set_new(f, "arguments", json_stringn(b.data, b.len))) {
        set_fail(j, AX_ENOMEM, "out of memory");
    }
    ax_buf_free(&b);
    if (j->stream) {
        json_t *v = api_lossy_string(args, alen);
        stream_delta(j, v ? json_pack("{s:[{s:i, s:{s:o}}]}", "tool_calls", "index", (int)idx,
                                      "function", "arguments", v)
                          : NULL);
    }
}

static void on_part(void *user, const struct chat_event *ev)
{
    struct job *j = user;
    switch (ev->kind) {
    case CHAT_CONTENT:
        emit_text(j, 0, ev->text, ev->len);
        break;
    case CHAT_REASONING:
        j->tok_reasoning = 1;
        emit_text(j, 1, ev->text, ev->len);
        break;
    case CHAT_TOOL_CALL:
        emit_call(j, ev);
        break;
    }
}

/* ---- logprobs ----------------------------------------------------------- */

static json_t *bytes_array(const char *b, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_integer((unsigned char)b[i]));
    return a;
}

static json_t *token_str(const struct tok *t, int32_t id)
{
    size_t n = 0;
    const char *b = tok_bytes(t, id, &n);
    return api_lossy_string(b ? b : "", b ? n : 0);
}

/* Chat: {token, logprob, bytes, top_logprobs:[{token, logprob, bytes}]}. */
static json_t *chat_lp_entry(const struct tok *t, const struct eng_event *ev)
{
    size_t n = 0;
    const char *b = tok_bytes(t, ev->token, &n);
    json_t *tops = json_array();
    for (int i = 0; tops && i < ev->n_top; i++) {
        size_t tn = 0;
        const char *tb = tok_bytes(t, ev->top[i].id, &tn);
        json_array_append_new(
            tops, json_pack("{s:o, s:f, s:o}", "token", token_str(t, ev->top[i].id), "logprob",
                            (double)ev->top[i].logprob, "bytes", bytes_array(tb, tb ? tn : 0)));
    }
    return json_pack("{s:o, s:f, s:o, s:o}", "token", token_str(t, ev->token), "logprob",
                     (double)ev->logprob, "bytes", bytes_array(b, b ? n : 0), "top_logprobs", tops);
}

static json_t *legacy_new(void)
{
    return json_pack("{s:[], s:[], s:[], s:[]}", "tokens", "token_logprobs", "top_logprobs",
                     "text_offset");
}

/* Legacy: parallel arrays tokens / token_logprobs / top_logprobs ({token:
 * logprob}) / text_offset. */
static void legacy_add(json_t *o, const struct tok *t, const struct eng_event *ev, size_t off)
{
    json_t *top = json_object();
    for (int i = 0; top && i < ev->n_top; i++) {
        json_t *k = token_str(t, ev->top[i].id);
        if (k)
            json_object_set_new(top, json_string_value(k), json_real(ev->top[i].logprob));
        json_decref(k);
    }
    json_array_append_new(json_object_get(o, "tokens"), token_str(t, ev->token));
    json_array_append_new(json_object_get(o, "token_logprobs"), json_real(ev->logprob));
    json_array_append_new(json_object_get(o, "top_logprobs"), top);
    json_array_append_new(json_object_get(o, "text_offset"), json_integer((json_int_t)off));
}

static void add_logprobs(struct job *j, const struct eng_event *ev)
{
    const struct tok *t = j->s->tok;
    if (j->chat) {
        json_t *dst = j->stream ? j->lp_pending : json_object_get(j->lp, "content");
        if (json_array_append_new(dst, chat_lp_entry(t, ev)))
            set_fail(j, AX_ENOMEM, "out of memory");
        return;
    }
    if (j->stream) {
        if (!j->lp_legacy)
            j->lp_legacy = legacy_new();
        if (j->lp_legacy)
            legacy_add(j->lp_legacy, t, ev, j->text_offset);
    } else {
        legacy_add(j->lp, t, ev, j->text_offset);
    }
}

/* ---- engine events ------------------------------------------------------ */

/* Text released by the engine, through the chat parser when there is one.
 * Returns 1 if any of it was reasoning. */
static int feed_text(struct job *j, const char *text, size_t len)
{
    j->tok_reasoning = 0;
    if (j->parser) {
        char err[AX_ERRLEN] = "";
        enum ax_err rc = len ? chat_parser_push(j->parser, text, len, on_part, j, err) : AX_OK;
        if (rc)
            set_fail(j, rc, err);
    } else {
        emit_text(j, 0, text, len);
    }
    j->text_offset += len;
    return j->tok_reasoning;
}

static void on_token(struct job *j)
{
    const struct eng_event *ev = &j->ev;
    double now = api_now();
    if (!j->t_first)
        j->t_first = now;
    j->t_last = now;
    if (j->req.logprobs)
        add_logprobs(j, ev);
    if (feed_text(j, ev->text, ev->text_len))
        j->usage.reasoning++;
}

static void on_done(struct job *j)
{
    const struct eng_event *ev = &j->ev;
    j->done = 1;
    j->finish = ev->finish;
    j->eng_code = ev->code;
    snprintf(j->eng_msg, sizeof j->eng_msg, "%s", ev->message);
    j->usage.prompt = ev->prompt_tokens;
    j->usage.cached = ev->cached_tokens;
    j->usage.completion = ev->completion_tokens;
    /* DONE may release held-back text (e.g. a "\n" kept for a "\n\n"
     * stop string that never came). */
    if (ev->text_len)
        feed_text(j, ev->text, ev->text_len);
    if (j->parser) {
        char err[AX_ERRLEN] = "";
        enum ax_err rc = chat_parser_finish(j->parser, on_part, j, err);
        if (rc)
            set_fail(j, rc, err);
    }
}

/* Waits up to timeout_ms for one event. Returns 1 if one was handled. */
static int pump(struct job *j, int timeout_ms)
{
    if (!j->cancel_sent && atomic_load(&j->s->stopping)) {
        eng_cancel(j->q);
        j->cancel_sent = j->shutdown = 1;
    }
    enum ax_err rc = eng_next(j->q, &j->ev, timeout_ms);
    if (rc == AX_EBUSY) {
        if (!j->cancel_sent && j->hr && http_client_gone(j->hr)) {
            eng_cancel(j->q);
            j->cancel_sent = j->gone = 1;
        }
        return 0;
    }
    if (rc != AX_OK) { /* cannot happen: events end with ENG_EV_DONE */
        j->done = 1;
        j->finish = ENG_FINISH_ERROR;
        j->eng_code = rc;
        snprintf(j->eng_msg, sizeof j->eng_msg, "engine event queue failed: %s", ax_strerror(rc));
        return 1;
    }
    if (j->ev.kind == ENG_EV_TOKEN) {
        on_token(j);
        /* One poll per token: a client that left stops the generation
         * within a token even while tokens flow without pause. */
        if (!j->cancel_sent && j->hr && http_client_gone(j->hr)) {
            eng_cancel(j->q);
            j->cancel_sent = j->gone = 1;
        }
    } else {
        on_done(j);
    }
    return 1;
}

/* ---- the end of a generation -------------------------------------------- */

/* response_format json_object / json_schema: decoding is not constrained,
 * so the output is checked instead; a client asking for JSON gets JSON or
 * an error, never silently something else. */
static int content_is_json(const struct job *j)
{
    json_error_t je;
    json_t *v =
        json_loadb(j->content.data ? j->content.data : "", j->content.len, JSON_DECODE_ANY, &je);
    int ok = v != NULL;
    json_decref(v);
    return ok;
}

/* Fills e when the generation failed as a whole. Returns 1 if it did. */
static int outcome_error(const struct job *j, struct api_error *e)
{
    if (j->fail) {
        api_error_from(e, j->fail, j->err);
        return 1;
    }
    if (j->finish == ENG_FINISH_ERROR) {
        api_error_from(e, j->eng_code ? j->eng_code : AX_EBACKEND, j->eng_msg);
        if (e->status < 500)
            e->status = 500, e->type = "server_error";
        return 1;
    }
    if (j->finish == ENG_FINISH_CANCEL) {
        api_fail(e, AX_ESHUTDOWN, 503, "unavailable_error", NULL,
                 j->shutdown ? "the server is shutting down" : "the request was cancelled");
        return 1;
    }
    if (j->req.json_output && !content_is_json(j)) {
        api_fail(e, AX_EFORMAT, 500, "server_error", "response_format",
                 "the model's output is not valid JSON; axserve checks response_format but "
                 "does not constrain decoding (retry, or lower the temperature)");
        e->code = "invalid_json_output";
        return 1;
    }
    return 0;
}

static const char *finish_name(const struct job *j)
{
    return api_finish_name(j->finish, json_array_size(j->calls) > 0);
}

static void write_tail(struct job *j)
{
    struct api_error e;
    if (outcome_error(j, &e)) {
        sse_json(j, api_error_json(&e));
    } else {
        json_t *lp = take_pending_lp(j);
        if (j->chat)
            sse_json(j,
                     api_chat_chunk(j->id, j->created, j->s->model_id, NULL, finish_name(j), lp));
        else
            sse_json(j,
                     api_text_chunk(j->id, j->created, j->s->model_id, "", 0, finish_name(j), lp));
        if (j->req.include_usage)
            sse_json(j, api_usage_chunk(j->id, j->created, j->s->model_id, j->chat, &j->usage));
    }
    if (ax_buf_puts(&j->sse, "data: [DONE]\n\n") != AX_OK)
        set_fail(j, AX_ENOMEM, "out of memory");
}

static struct http_response *final_response(struct job *j)
{
    struct api_error e;
    if (outcome_error(j, &e))
        return api_error_response(&e);
    struct api_result r = {.id = j->id,
                           .created = j->created,
                           .model = j->s->model_id,
                           .content = j->content.data ? j->content.data : "",
                           .content_len = j->content.len,
                           .reasoning = j->reasoning.data,
                           .reasoning_len = j->reasoning.len,
                           .tool_calls = j->calls,
                           .logprobs = j->req.logprobs ? j->lp : NULL,
                           .finish = finish_name(j),
                           .usage = j->usage};
    return api_json_response(200, j->chat ? api_chat_completion(&r) : api_text_completion(&r));
}

/* ---- job lifecycle ------------------------------------------------------ */

static void record(struct job *j)
{
    if (j->recorded || !j->q)
        return;
    j->recorded = 1;
    double ttft = j->t_first ? j->t_first - j->t0 : -1;
    double tps = -1;
    if (j->usage.completion >= 2 && j->t_last > j->t_first)
        tps = (double)(j->usage.completion - 1) / (j->t_last - j->t_first);
    api_metrics_gen_end(&j->s->m, j->done ? j->finish : ENG_FINISH_CANCEL, (int)j->usage.completion,
                        ttft, tps, j->gone);
    ax_info("%s%s: prompt=%ld cached=%ld completion=%ld finish=%s ttft=%.1fms %.1f tok/s%s",
            j->chat ? "chat" : "completion", j->stream ? " stream" : "", j->usage.prompt,
            j->usage.cached, j->usage.completion,
            j->finish == ENG_FINISH_CANCEL  ? "cancel"
            : j->finish == ENG_FINISH_ERROR ? "error"
                                            : finish_name(j),
            ttft * 1e3, tps > 0 ? tps : 0.0, j->gone ? " (client left)" : "");
}

static void job_free(struct job *j)
{
    if (!j)
        return;
    if (j->q) {
        /* Wait (bounded) for the engine to confirm the end, so the request's
         * tokens and finish are counted and its slot is free again. */
        if (!j->done) {
            eng_cancel(j->q);
            j->cancel_sent = 1;
            for (int i = 0; i < 300 && !j->done; i++)
                pump(j, POLL_MS);
        }
        record(j);
        eng_req_free(j->q);
        atomic_fetch_sub(&j->s->active, 1);
    }
    chat_parser_free(j->parser);
    api_request_free(&j->req);
    ax_buf_free(&j->prompt);
    ax_buf_free(&j->content);
    ax_buf_free(&j->reasoning);
    ax_buf_free(&j->sse);
    json_decref(j->calls);
    json_decref(j->lp);
    json_decref(j->lp_pending);
    json_decref(j->lp_legacy);
    ax_free(j);
}

static enum ax_err render(struct job *j, struct api_error *e)
{
    char err[AX_ERRLEN] = "";
    enum ax_err rc = chat_template_render(j->s->tmpl, j->req.chat, &j->prompt, err);
    if (rc == AX_EINVAL || rc == AX_ETEMPLATE)
        return api_fail(e, rc, 400, "invalid_request_error", "messages", "%s", err);
    if (rc) {
        api_error_from(e, rc, err);
        return rc;
    }
    j->req.gen.prompt_text = j->prompt.data ? j->prompt.data : "";
    j->req.gen.prompt_len = j->prompt.len;
    return AX_OK;
}

static enum ax_err submit(struct job *j, struct api_error *e)
{
    char err[AX_ERRLEN] = "";
    struct eng_submit_info info = {0};
    enum ax_err rc = eng_submit_ex(j->s->eng, &j->req.gen, &j->q, &info, err);
    if (rc == AX_OK) {
        atomic_fetch_add(&j->s->active, 1);
        j->t0 = api_now();
        return AX_OK;
    }
    j->q = NULL;
    api_metrics_reject(&j->s->m, rc);
    if (rc == AX_ECONTEXT) {
        api_fail(e, rc, 400, "invalid_request_error", j->chat ? "messages" : "prompt", "%s",
                 err[0] ? err : "the prompt does not fit in the context");
        e->code = "exceed_context_size_error";
        e->n_prompt_tokens = info.n_prompt_tokens;
        e->n_ctx = info.n_ctx;
        return rc;
    }
    if (rc == AX_EBUSY) {
        api_fail(e, rc, 503, "unavailable_error", NULL,
                 "the server is busy (request queue full); retry shortly");
        return rc;
    }
    api_error_from(e, rc, err);
    return rc;
}

static struct job *job_new(struct api_server *s, struct http_request *hr, enum api_kind kind,
                           struct api_error *e)
{
    struct job *j = ax_calloc(1, sizeof *j);
    if (!j) {
        api_fail(e, AX_ENOMEM, 500, "server_error", NULL, "out of memory");
        return NULL;
    }
    j->s = s;
    j->hr = hr;
    ax_buf_init(&j->prompt, MAX_PROMPT);
    ax_buf_init(&j->content, MAX_OUTPUT);
    ax_buf_init(&j->reasoning, MAX_OUTPUT);
    ax_buf_init(&j->sse, MAX_SSE);
    size_t n;
    const char *body = http_body(hr, &n);
    enum ax_err rc = api_parse_request(kind, body, n, s->gd, &j->req, e);
    if (rc) {
        api_metrics_reject(&s->m, AX_EINVAL);
        job_free(j);
        return NULL;
    }
    j->chat = j->req.kind == API_CHAT;
    j->stream = j->req.stream;
    j->calls = json_array();
    j->lp = j->chat ? json_pack("{s:[]}", "content") : legacy_new();
    j->lp_pending = json_array();
    if (!j->calls || !j->lp || !j->lp_pending) {
        api_fail(e, AX_ENOMEM, 500, "server_error", NULL, "out of memory");
        job_free(j);
        return NULL;
    }
    api_make_id(j->id, sizeof j->id, j->chat ? "chatcmpl-" : "cmpl-");
    j->created = (long)time(NULL);
    if (j->chat) {
        if (render(j, e) != AX_OK) {
            api_metrics_reject(&s->m, AX_EINVAL);
            job_free(j);
            return NULL;
        }
        int think = chat_prompt_opens_think(j->prompt.data ? j->prompt.data : "", j->prompt.len);
        if (chat_parser_new(think, j->req.parse_tools, &j->parser) != AX_OK) {
            api_fail(e, AX_ENOMEM, 500, "server_error", NULL, "out of memory");
            job_free(j);
            return NULL;
        }
    }
    if (submit(j, e)) {
        job_free(j);
        return NULL;
    }
    return j;
}

/* ---- streaming ---------------------------------------------------------- */

static ssize_t stream_read(void *user, char *buf, size_t max)
{
    struct job *j = user;
    for (;;) {
        if (j->sse_pos < j->sse.len) {
            size_t n = j->sse.len - j->sse_pos;
            if (n > max)
                n = max;
            memcpy(buf, j->sse.data + j->sse_pos, n);
            j->sse_pos += n;
            j->t_ping = api_now();
            return (ssize_t)n;
        }
        ax_buf_reset(&j->sse);
        j->sse_pos = 0;
        if (j->tail_written)
            return 0;
        if (j->done) {
            if (j->gone)
                return -1;
            write_tail(j);
            j->tail_written = 1;
            continue;
        }
        if (!pump(j, POLL_MS) && api_now() - j->t_ping > PING_S && !j->gone)
            ax_buf_puts(&j->sse, ": ping\n\n");
    }
}

static void stream_done(void *user, int client_ok)
{
    struct job *j = user;
    /* libmicrohttpd has already released the request: never touch it. */
    j->hr = NULL;
    if (!client_ok && !j->tail_written)
        j->gone = 1;
    job_free(j);
}

struct http_response *api_gen_handle(struct api_server *s, struct http_request *hr,
                                     enum api_kind kind)
{
    struct api_error e;
    struct job *j = job_new(s, hr, kind, &e);
    if (!j)
        return api_error_response(&e);
    if (j->stream) {
        j->t_ping = api_now();
        if (j->chat)
            stream_delta(j, json_pack("{s:s, s:s}", "role", "assistant", "content", ""));
        return http_resp_stream(200, "text/event-stream", stream_read, stream_done, j);
    }
    while (!j->done)
        pump(j, POLL_MS);
    struct http_response *r = final_response(j);
    job_free(j);
    return r;
}

/* ---- /apply-template ---------------------------------------------------- */

struct http_response *api_apply_template(struct api_server *s, struct http_request *hr)
{
    struct api_error e;
    struct job *j = ax_calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->s = s;
    ax_buf_init(&j->prompt, MAX_PROMPT);
    size_t n;
    const char *body = http_body(hr, &n);
    enum ax_err rc = api_parse_request(API_CHAT, body, n, s->gd, &j->req, &e);
    if (!rc && j->req.kind != API_CHAT)
        rc = api_fail(&e, AX_EINVAL, 400, "invalid_request_error", "messages",
                      "'messages' is required");
    if (!rc)
        rc = render(j, &e);
    struct http_response *r =
        rc ? api_error_response(&e)
           : api_json_response(200, json_pack("{s:o}", "prompt",
                                              api_lossy_string(j->prompt.data ? j->prompt.data : "",
                                                               j->prompt.len)));
    job_free(j);
    return r;
}
