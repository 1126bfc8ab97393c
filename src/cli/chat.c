/* chat.c - `axserve chat`: a terminal chat with a local model.
 *
 * Reads stdin line by line (so a pipe can drive it; EOF exits 0), keeps the
 * conversation, renders the whole of it with the model's own chat template
 * each turn and streams the answer through the engine; the engine's prefix
 * cache makes re-rendering cheap (only the new turn is computed). Commands:
 * /reset (forget the conversation), /think and /no_think (enable_thinking
 * through chat_template_kwargs), /help, /quit.
 *
 * Output: the answer on stdout; reasoning dimmed on a terminal, otherwise
 * between "[reasoning]" and "[/reasoning]" lines. --raw prints the model's
 * text exactly (no reasoning split, no markers), one newline after each
 * answer - for tests. Usage notes and errors go to stderr. */
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "chat/parse.h"
#include "chat/template.h"
#include "cli/cli.h"
#include "engine/engine.h"
#include "model/model.h"
#include "tok/tok.h"
#include "util/buf.h"
#include "util/mem.h"

#define LINE_MAX_BYTES ((size_t)1 << 20)
#define PROMPT_MAX ((size_t)64 << 20)
#define ANSWER_MAX ((size_t)16 << 20)

struct chat_args {
    const char *model, *system;
    int max_tokens, think, raw, quiet;
    int have_temp, have_top_p, have_top_k, have_min_p;
    struct sampler_params sp;
    struct backend_opts bo;
};

struct chat {
    struct chat_args a;
    struct model *m;
    struct tok *t;
    struct chat_template *tpl;
    struct backend *b;
    struct eng *e;
    json_t *messages;
    int tty;            /* stdout is a terminal: dim reasoning */
    int in_reasoning;   /* output state for the markers */
    struct ax_buf answer; /* content of the current answer, for the history */
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: axserve chat -m DIR [--backend cpu|axcl] [--system TEXT] [--no-think]\n"
            "         [--temperature T] [--top-p P] [--top-k K] [--min-p P]\n"
            "         [--presence-penalty X] [--repetition-penalty X] [--seed S] [-n MAX]\n"
            "         [--ctx N] [--threads N] [--quant none|q8|q4] [--bf16-act] [--exact-prefill]\n"
            "         [--raw] [--quiet]\n"
            "Chat on the terminal; one line per message. Commands: /reset, /think,\n"
            "/no_think, /help, /quit (or end of input). Sampling defaults come from the\n"
            "model's generation_config.json, else the Qwen3 recommendations for the mode.\n"
            "--bf16-act: BF16 weights: prefill rounds activations to bf16 and uses AVX512-BF16\n"
            "dot products, as llama.cpp does (faster, less exact; x86 with avx512_bf16 only;\n"
            "default off).\n"
            "--exact-prefill: BF16 weights: prefill multiplies f32 activations with f32 FMAs,\n"
            "exact to float rounding, instead of the default split products (bf16 + int8 dot\n"
            "products of the activations' bf16 part and rest; faster, within ~3e-4 in\n"
            "logprobs; x86 with avx512_bf16 and avx512_vnni only).\n");
}

/* Ctrl-C stops the answer being written, not the program. */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* ---- arguments ----------------------------------------------------------- */

static int num(const char *flag, const char *v, double lo, double hi, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !(d >= lo && d <= hi)) {
        fprintf(stderr, "axserve chat: %s needs a number in %g..%g, got '%s'\n", flag, lo, hi, v);
        return 0;
    }
    *out = d;
    return 1;
}

static int parse_value(struct chat_args *a, const char *f, const char *v)
{
    double d = 0;
    int ok = 1;
    if (!strcmp(f, "-m") || !strcmp(f, "--model")) a->model = v;
    else if (!strcmp(f, "--system")) a->system = v;
    else if (!strcmp(f, "--backend")) a->bo.name = v;
    else if (!strcmp(f, "--quant")) a->bo.quant = v;
    else if (!strcmp(f, "--kv")) a->bo.kv_type = v;
    else if (!strcmp(f, "--devices")) a->bo.devices = v;
    else if (!strcmp(f, "--temperature") && (ok = num(f, v, 0, 100, &d))) a->sp.temperature = (float)d, a->have_temp = 1;
    else if (!strcmp(f, "--top-p") && (ok = num(f, v, 1e-6, 1, &d))) a->sp.top_p = (float)d, a->have_top_p = 1;
    else if (!strcmp(f, "--top-k") && (ok = num(f, v, 0, INT_MAX, &d))) a->sp.top_k = (int)d, a->have_top_k = 1;
    else if (!strcmp(f, "--min-p") && (ok = num(f, v, 0, 1, &d))) a->sp.min_p = (float)d, a->have_min_p = 1;
    else if (!strcmp(f, "--presence-penalty") && (ok = num(f, v, -2, 2, &d))) a->sp.presence_penalty = (float)d;
    else if (!strcmp(f, "--frequency-penalty") && (ok = num(f, v, -2, 2, &d))) a->sp.frequency_penalty = (float)d;
    else if (!strcmp(f, "--repetition-penalty") && (ok = num(f, v, 0.01, 10, &d))) a->sp.repetition_penalty = (float)d;
    else if (!strcmp(f, "--seed") && (ok = num(f, v, 0, 9007199254740992.0, &d))) a->sp.seed = (uint64_t)d, a->sp.has_seed = 1;
    else if (!strcmp(f, "-n") && (ok = num(f, v, -1, INT_MAX, &d))) a->max_tokens = (int)d;
    else if (!strcmp(f, "--ctx") && (ok = num(f, v, 2, 1 << 24, &d))) a->bo.n_ctx = (int)d;
    else if (!strcmp(f, "--threads") && (ok = num(f, v, 1, 1024, &d))) a->bo.n_threads = (int)d;
    else if (!strcmp(f, "--slots") && (ok = num(f, v, 1, 1024, &d))) a->bo.n_slots = (int)d;
    else {
        fprintf(stderr, "axserve chat: unknown option '%s'\n", f);
        return 0;
    }
    return ok;
}

static int parse_args(int argc, char **argv, struct chat_args *a)
{
    memset(a, 0, sizeof *a);
    a->max_tokens = -1;
    a->think = 1;
    a->sp.repetition_penalty = 1.0f;
    a->sp.top_p = 1.0f;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--bf16-act")) {
            a->bo.bf16_act = 1;
            continue;
        }
        if (!strcmp(f, "--exact-prefill")) {
            a->bo.exact_prefill = 1;
            continue;
        }
        if (!strcmp(f, "--raw") || !strcmp(f, "--quiet") || !strcmp(f, "--no-think")) {
            if (f[2] == 'r')
                a->raw = 1;
            else if (f[2] == 'q')
                a->quiet = 1;
            else
                a->think = 0;
            continue;
        }
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "axserve chat: %s needs a value\n", f);
            return 0;
        }
        if (!parse_value(a, f, argv[++i]))
            return 0;
    }
    if (!a->model) {
        fprintf(stderr, "axserve chat: need -m DIR\n");
        return 0;
    }
    return 1;
}

/* Sampling for the current mode: flags win, then generation_config.json
 * (written for thinking mode), then Qwen3's recommendations. */
static struct sampler_params sampling(const struct chat *c)
{
    const struct gen_defaults *g = model_gen_defaults(c->m);
    struct sampler_params p = c->a.sp;
    int think = c->a.think;
    if (!c->a.have_temp)
        p.temperature = think && g && g->have_temperature ? g->temperature : think ? 0.6f : 0.7f;
    if (!c->a.have_top_p)
        p.top_p = think && g && g->have_top_p ? g->top_p : think ? 0.95f : 0.8f;
    if (!c->a.have_top_k)
        p.top_k = g && g->have_top_k ? g->top_k : 20;
    if (!c->a.have_min_p)
        p.min_p = g && g->have_min_p ? g->min_p : 0.0f;
    return p;
}

/* ---- setup ----------------------------------------------------------------- */

static enum ax_err open_all(struct chat *c, char *err)
{
    enum ax_err rc = model_open(c->a.model, &c->m, err);
    if (rc == AX_OK)
        rc = model_need_tokenizer(c->m, err);
    if (rc == AX_OK)
        rc = tok_load(model_tokenizer_json(c->m), &c->t, err);
    if (rc == AX_OK)
        rc = chat_template_load(model_tokenizer_config(c->m), &c->tpl, err);
    if (rc == AX_OK) {
        if (!c->a.bo.n_slots)
            c->a.bo.n_slots = 1; /* one conversation */
        rc = backend_open(&c->a.bo, c->m, &c->b, err);
    }
    if (rc == AX_OK) {
        const struct gen_defaults *g = model_gen_defaults(c->m);
        struct eng_config cfg = {.queue_max = 1, .eos = g ? g->eos : NULL, .n_eos = g ? g->n_eos : 0};
        rc = eng_create(&cfg, c->b, c->t, &c->e, err);
    }
    if (rc == AX_OK && !(c->messages = json_array()))
        rc = ax_fail(err, AX_ENOMEM, "out of memory");
    return rc;
}

static void close_all(struct chat *c)
{
    eng_free(c->e);
    backend_free(c->b);
    chat_template_free(c->tpl);
    tok_free(c->t);
    model_free(c->m);
    json_decref(c->messages);
    ax_buf_free(&c->answer);
}

static enum ax_err add_message(struct chat *c, const char *role, const char *text, size_t len)
{
    json_t *m = json_pack("{s:s, s:s#}", "role", role, "content", text, len);
    if (!m || json_array_append_new(c->messages, m) != 0)
        return AX_ENOMEM;
    return AX_OK;
}

static void reset(struct chat *c)
{
    json_array_clear(c->messages);
    if (c->a.system)
        add_message(c, "system", c->a.system, strlen(c->a.system));
}

/* ---- output -------------------------------------------------------------- */

static void set_reasoning(struct chat *c, int on)
{
    if (on == c->in_reasoning)
        return;
    c->in_reasoning = on;
    if (c->tty)
        fputs(on ? "\033[2m" : "\033[0m\n", stdout);
    else
        fputs(on ? "[reasoning]\n" : "\n[/reasoning]\n", stdout);
}

static void on_part(void *user, const struct chat_event *ev)
{
    struct chat *c = user;
    if (ev->kind == CHAT_REASONING) {
        set_reasoning(c, 1);
        fwrite(ev->text, 1, ev->len, stdout);
    } else if (ev->kind == CHAT_CONTENT) {
        set_reasoning(c, 0);
        fwrite(ev->text, 1, ev->len, stdout);
        ax_buf_append(&c->answer, ev->text, ev->len);
    }
    fflush(stdout);
}

/* Shows one piece of the answer, raw or through the reasoning parser. */
static enum ax_err show(struct chat *c, struct chat_parser *p, const char *s, size_t n, char *err)
{
    if (!n)
        return AX_OK;
    if (c->a.raw) {
        fwrite(s, 1, n, stdout);
        fflush(stdout);
        return ax_buf_append(&c->answer, s, n);
    }
    return chat_parser_push(p, s, n, on_part, c, err);
}

/* ---- one turn ---------------------------------------------------------------- */

static enum ax_err render(struct chat *c, struct ax_buf *prompt, char *err)
{
    json_t *req = json_pack("{s:O, s:b, s:{s:b}}", "messages", c->messages,
                            "add_generation_prompt", 1, "chat_template_kwargs",
                            "enable_thinking", c->a.think);
    if (!req)
        return ax_fail(err, AX_ENOMEM, "out of memory");
    enum ax_err rc = chat_template_render(c->tpl, req, prompt, err);
    json_decref(req);
    return rc;
}

/* Streams the answer; fills *done with the last event. */
static enum ax_err stream(struct chat *c, struct eng_req *q, struct chat_parser *p,
                          struct eng_event *done, char *err)
{
    struct eng_event ev;
    enum ax_err rc;
    interrupted = 0;
    while ((rc = eng_next(q, &ev, 100)) == AX_OK || rc == AX_EBUSY) {
        if (interrupted) {
            eng_cancel(q); /* DONE (cancel) follows within a token */
            interrupted = 0;
        }
        if (rc == AX_EBUSY)
            continue;
        if ((rc = show(c, p, ev.text, ev.text_len, err)) != AX_OK)
            return rc;
        if (ev.kind == ENG_EV_DONE) {
            *done = ev;
            return c->a.raw ? AX_OK : chat_parser_finish(p, on_part, c, err);
        }
    }
    return ax_fail(err, rc, "engine stream ended early");
}

static void report(const struct chat *c, const struct eng_event *d)
{
    if (c->a.quiet)
        return;
    double tps = d->completion_tokens > 1 && d->decode_ms > 0
                     ? (d->completion_tokens - 1) * 1e3 / d->decode_ms : 0;
    fprintf(stderr, "[%d prompt tokens (%d cached), %d generated, first token %.0f ms, %.1f tok/s%s]\n",
            d->prompt_tokens, d->cached_tokens, d->completion_tokens, d->ttft_ms, tps,
            d->finish == ENG_FINISH_LENGTH ? ", stopped at the length limit" : "");
}

/* One user message -> one streamed answer. On failure the user message is
 * taken back out of the history. */
static enum ax_err turn(struct chat *c, const char *line, size_t len, char *err)
{
    if (add_message(c, "user", line, len) != AX_OK)
        return ax_fail(err, AX_ENOMEM, "out of memory");
    struct ax_buf prompt;
    ax_buf_init(&prompt, PROMPT_MAX);
    struct chat_parser *p = NULL;
    struct eng_req *q = NULL;
    struct eng_event done = {0};
    enum ax_err rc = render(c, &prompt, err);
    if (rc == AX_OK && !c->a.raw &&
        chat_parser_new(chat_prompt_opens_think(prompt.data, prompt.len), 0, &p) != AX_OK)
        rc = ax_fail(err, AX_ENOMEM, "out of memory");
    struct gen_request r = {.prompt_text = prompt.data, .prompt_len = prompt.len,
                            .max_tokens = c->a.max_tokens, .sp = sampling(c)};
    if (rc == AX_OK)
        rc = eng_submit(c->e, &r, &q, err);
    ax_buf_reset(&c->answer);
    c->in_reasoning = 0;
    if (rc == AX_OK)
        rc = stream(c, q, p, &done, err);
    set_reasoning(c, 0);
    if (rc == AX_OK && done.finish == ENG_FINISH_CANCEL)
        fprintf(stderr, "[stopped]\n");
    if (rc == AX_OK && done.finish == ENG_FINISH_ERROR)
        rc = ax_fail(err, done.code, "%s", done.message);
    fputc('\n', stdout);
    fflush(stdout);
    if (rc == AX_OK) {
        report(c, &done);
        if (add_message(c, "assistant", c->answer.data ? c->answer.data : "", c->answer.len))
            rc = ax_fail(err, AX_ENOMEM, "out of memory");
    } else {
        json_array_remove(c->messages, json_array_size(c->messages) - 1);
    }
    eng_req_free(q);
    chat_parser_free(p);
    ax_buf_free(&prompt);
    return rc;
}

/* ---- the loop ------------------------------------------------------------------ */

/* Returns 1 to quit. */
static int command(struct chat *c, const char *line)
{
    if (!strcmp(line, "/quit") || !strcmp(line, "/exit") || !strcmp(line, "/bye"))
        return 1;
    if (!strcmp(line, "/reset")) {
        reset(c);
        fprintf(stderr, "[conversation cleared]\n");
    } else if (!strcmp(line, "/think") || !strcmp(line, "/no_think")) {
        c->a.think = line[1] == 't';
        fprintf(stderr, "[thinking %s]\n", c->a.think ? "on" : "off");
    } else {
        fprintf(stderr, "commands: /reset /think /no_think /quit\n");
    }
    return 0;
}

static int loop(struct chat *c)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int interactive = isatty(0), status = 0;
    for (;;) {
        if (interactive) {
            fputs(">>> ", stdout);
            fflush(stdout);
        }
        if ((n = getline(&line, &cap, stdin)) < 0)
            break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (n == 0)
            continue;
        if ((size_t)n > LINE_MAX_BYTES) {
            fprintf(stderr, "axserve chat: line longer than %zu bytes ignored\n", LINE_MAX_BYTES);
            continue;
        }
        if (line[0] == '/' && (n == 1 || line[1] != '/')) {
            if (command(c, line))
                break;
            continue;
        }
        char err[AX_ERRLEN];
        enum ax_err rc = turn(c, line, (size_t)n, err);
        if (rc != AX_OK) {
            fprintf(stderr, "axserve chat: %s%s\n", err,
                    rc == AX_ECONTEXT ? " (use /reset to start over)" : "");
            if (rc == AX_ENOMEM) {
                status = 1;
                break;
            }
        }
    }
    free(line); /* getline's buffer comes from malloc */
    return status;
}

int cli_chat(int argc, char **argv)
{
    struct chat c;
    memset(&c, 0, sizeof c);
    if (!parse_args(argc, argv, &c.a)) {
        usage(stderr);
        return 2;
    }
    ax_buf_init(&c.answer, ANSWER_MAX);
    c.tty = isatty(1);
    char err[AX_ERRLEN];
    if (open_all(&c, err) != AX_OK) {
        fprintf(stderr, "axserve chat: %s\n", err);
        close_all(&c);
        return 1;
    }
    reset(&c);
    if (isatty(0)) {
        struct sigaction sa = {.sa_handler = on_sigint};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
    }
    int status = loop(&c);
    close_all(&c);
    return status;
}
