/* test_engine.c - engine/: slot reuse, isolation, batching, stops, limits,
 * queueing, cancellation, backend failure and shutdown, against a mock
 * backend and the real Qwen3 tokenizer (build/tokenizer-qwen3, fetched by
 * make).
 *
 * The mock keeps its own copy of each slot's KV tokens, honours rollback
 * (a forward at pos drops everything from pos on) and rejects holes. In
 * "hash" mode its logits are a function of the whole token prefix the
 * slot holds, so any KV bookkeeping mistake of the engine changes the
 * output; every concurrent or reused run is compared with a solo run on a
 * fresh engine. In "script" mode it emits fixed tokens by position, for
 * stop strings and end tokens. A gate lets a test stop the engine inside
 * a forward call to make cancellation and queueing deterministic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "backend/backend.h"
#include "engine/engine.h"
#include "model/model.h"
#include "tok/tok.h"
#include "util/mem.h"

#define TOKENIZER "build/tokenizer-qwen3/tokenizer.json"
#define MODEL_DIR "build/models/default" /* the synthetic Qwen3 `make` builds */
#define MAX_SLOTS 8
#define WAIT_MS 20000

static struct tok *T;
static int32_t EOS;

/* ---- mock backend ------------------------------------------------------------ */

struct mock {
    struct backend b;
    struct backend_ops ops;
    int32_t *kv[MAX_SLOTS];
    int len[MAX_SLOTS];
    int32_t cands[64];
    int n_cands;
    const int32_t *script; /* script mode: token at position p is script[p - script_base] */
    int n_script, script_base;
    long calls;
    int max_seqs, max_chunk;
    int fail_call;         /* 1-based call number that fails; 0 = never */
    int healthy;
    int slot_log[4096];    /* first seq's slot of each call */
    char bad[256];         /* first protocol violation seen */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int permits;           /* forward calls allowed; -1 = unlimited */
    int blocked;
};

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 33);
}

static void gate_pass(struct mock *m)
{
    pthread_mutex_lock(&m->mu);
    while (m->permits == 0) {
        m->blocked = 1;
        pthread_cond_broadcast(&m->cv);
        pthread_cond_wait(&m->cv, &m->mu);
    }
    m->blocked = 0;
    if (m->permits > 0)
        m->permits--;
    pthread_mutex_unlock(&m->mu);
}

static void fill_logits(struct mock *m, int slot, float *out)
{
    int V = m->b.lim.n_vocab, n = m->len[slot];
    for (int i = 0; i < V; i++)
        out[i] = -30.0f;
    if (m->script) {
        int k = n - m->script_base;
        out[k >= 0 && k < m->n_script ? m->script[k] : EOS] = 10.0f;
        return;
    }
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < n; i++)
        h = mix(h, (uint64_t)m->kv[slot][i]);
    for (int j = 0; j < m->n_cands; j++)
        out[m->cands[j]] = (float)(mix(h, (uint64_t)j) % 1000) / 250.0f;
}

static void violation(struct mock *m, const char *what, int a, int b)
{
    if (!m->bad[0])
        snprintf(m->bad, sizeof m->bad, "%s (%d, %d)", what, a, b);
}

static enum ax_err mock_forward(void *ctx, const struct backend_seq *seqs, int n, char *err)
{
    struct mock *m = ctx;
    gate_pass(m);
    m->calls++;
    if (m->calls <= 4096)
        m->slot_log[m->calls - 1] = seqs[0].slot;
    if (m->calls == m->fail_call) {
        m->healthy = 0;
        return ax_fail(err, AX_EBACKEND, "mock device lost");
    }
    if (n < 1 || n > m->b.lim.max_batch)
        violation(m, "batch size", n, m->b.lim.max_batch);
    if (n > m->max_seqs)
        m->max_seqs = n;
    for (int i = 0; i < n; i++) {
        const struct backend_seq *s = &seqs[i];
        for (int j = 0; j < i; j++)
            if (seqs[j].slot == s->slot)
                violation(m, "slot twice in one call", s->slot, j);
        if (s->slot < 0 || s->slot >= m->b.lim.n_slots || s->n_tokens < 1)
            violation(m, "bad slot or count", s->slot, s->n_tokens);
        if (s->pos > m->len[s->slot])
            violation(m, "hole in the KV", s->pos, m->len[s->slot]);
        if (s->pos + s->n_tokens > m->b.lim.n_ctx)
            violation(m, "past the context", s->pos, s->n_tokens);
        if (m->bad[0])
            return ax_fail(err, AX_EINVAL, "mock: %s", m->bad);
        if (s->n_tokens > m->max_chunk)
            m->max_chunk = s->n_tokens;
        memcpy(m->kv[s->slot] + s->pos, s->tokens, sizeof(int32_t) * (size_t)s->n_tokens);
        m->len[s->slot] = s->pos + s->n_tokens; /* rollback: the rest is gone */
        if (s->logits)
            fill_logits(m, s->slot, s->logits);
    }
    return AX_OK;
}

static int mock_healthy(void *ctx) { return ((struct mock *)ctx)->healthy; }

static void set_cands(struct mock *m)
{
    const char *words = " the cat sat on a mat with seven happy dogs, quietly eating bread";
    int32_t ids[256];
    size_t n;
    char err[AX_ERRLEN];
    assert_int_equal(tok_encode(T, words, strlen(words), ids, &n, err), AX_OK);
    for (size_t i = 0; i < n && m->n_cands < 64; i++) {
        int dup = 0;
        for (int j = 0; j < m->n_cands; j++)
            dup |= m->cands[j] == ids[i];
        if (!dup)
            m->cands[m->n_cands++] = ids[i];
    }
    assert_true(m->n_cands >= 8);
}

static struct mock *mock_new(int n_slots, int n_ctx, int max_batch, int chunk)
{
    struct mock *m = calloc(1, sizeof *m);
    m->ops = (struct backend_ops){.version = BACKEND_IFACE_VERSION,
                                  .name = "mock",
                                  .caps = max_batch > 1 ? BACKEND_CAP_BATCH : 0,
                                  .forward = mock_forward,
                                  .healthy = mock_healthy};
    m->b.ops = &m->ops;
    m->b.ctx = m;
    m->b.lim = (struct backend_limits){.n_ctx = n_ctx,
                                       .n_slots = n_slots,
                                       .prefill_chunk = chunk,
                                       .n_vocab = tok_vocab_size(T),
                                       .max_batch = max_batch};
    for (int i = 0; i < n_slots; i++)
        m->kv[i] = calloc((size_t)n_ctx, sizeof(int32_t));
    m->permits = -1;
    m->healthy = 1;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    set_cands(m);
    return m;
}

static void mock_free(struct mock *m)
{
    for (int i = 0; i < MAX_SLOTS; i++)
        free(m->kv[i]);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m);
}

static void mock_gate(struct mock *m, int permits)
{
    pthread_mutex_lock(&m->mu);
    m->permits = permits;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

/* Waits until the engine sits inside a forward call the gate holds. */
static void mock_wait_blocked(struct mock *m)
{
    pthread_mutex_lock(&m->mu);
    while (!m->blocked)
        pthread_cond_wait(&m->cv, &m->mu);
    pthread_mutex_unlock(&m->mu);
}

/* ---- helpers ------------------------------------------------------------------ */

static struct eng *eng_new(struct mock *m, int queue_max, int max_prompt)
{
    struct eng_config cfg = {.queue_max = queue_max, .max_prompt = max_prompt, .eos = &EOS,
                             .n_eos = 1};
    struct eng *e;
    char err[AX_ERRLEN];
    assert_int_equal(eng_create(&cfg, &m->b, T, &e, err), AX_OK);
    return e;
}

static struct gen_request req_text(const char *prompt, int max_tokens)
{
    struct gen_request r = {.prompt_text = prompt, .prompt_len = prompt ? strlen(prompt) : 0,
                            .max_tokens = max_tokens};
    r.sp = (struct sampler_params){.temperature = 0.9f, .top_p = 1.0f, .repetition_penalty = 1.0f,
                                   .seed = 1234, .has_seed = 1};
    return r;
}

static struct eng_req *submit(struct eng *e, const struct gen_request *r)
{
    struct eng_req *q;
    char err[AX_ERRLEN];
    enum ax_err rc = eng_submit(e, r, &q, err);
    if (rc != AX_OK)
        fail_msg("eng_submit: %s", err);
    return q;
}

struct run {
    int32_t tok[1024];
    int n;
    char text[8192];
    size_t len;
    int n_events;
    size_t done_text_len;
    struct eng_event done; /* done.text is not kept */
};

static void take(struct run *r, const struct eng_event *ev)
{
    if (ev->kind == ENG_EV_TOKEN)
        r->tok[r->n++] = ev->token;
    assert_true(r->len + ev->text_len < sizeof r->text);
    memcpy(r->text + r->len, ev->text, ev->text_len);
    r->len += ev->text_len;
    r->text[r->len] = 0;
    r->n_events++;
    if (ev->kind == ENG_EV_DONE) {
        r->done = *ev;
        r->done.text = NULL;
        r->done_text_len = ev->text_len;
    }
}

static void collect(struct eng_req *q, struct run *r)
{
    struct eng_event ev;
    memset(r, 0, sizeof *r);
    for (;;) {
        assert_int_equal(eng_next(q, &ev, WAIT_MS), AX_OK);
        take(r, &ev);
        if (ev.kind == ENG_EV_DONE)
            break;
    }
    assert_int_equal(eng_next(q, &ev, 0), AX_ENOTFOUND);
}

static void run_one(struct eng *e, const struct gen_request *r, struct run *out)
{
    struct eng_req *q = submit(e, r);
    collect(q, out);
    eng_req_free(q);
}

/* A fresh engine on a fresh mock: the reference every other run must match. */
static void run_solo(const struct gen_request *r, int n_ctx, struct run *out)
{
    struct mock *m = mock_new(1, n_ctx, 1, 16);
    struct eng *e = eng_new(m, 4, 0);
    run_one(e, r, out);
    eng_free(e);
    assert_string_equal(m->bad, "");
    mock_free(m);
}

static void same_run(const struct run *a, const struct run *b)
{
    assert_int_equal(a->n, b->n);
    assert_memory_equal(a->tok, b->tok, sizeof(int32_t) * (size_t)a->n);
    assert_string_equal(a->text, b->text);
    assert_int_equal(a->done.finish, b->done.finish);
}

static int n_tokens(const char *s)
{
    int32_t ids[4096];
    size_t n;
    char err[AX_ERRLEN];
    assert_int_equal(tok_encode(T, s, strlen(s), ids, &n, err), AX_OK);
    return (int)n;
}

static int append_ids(int32_t *ids, int n, const char *s)
{
    size_t k;
    char err[AX_ERRLEN];
    assert_int_equal(tok_encode(T, s, strlen(s), ids + n, &k, err), AX_OK);
    return n + (int)k;
}

/* The token of one raw byte (byte-level BPE names bytes 0xA1..0xFF by the
 * code point of the same value). */
static int32_t byte_token(unsigned b)
{
    char s[3] = {(char)(0xC0 | (b >> 6)), (char)(0x80 | (b & 0x3F)), 0};
    int32_t id = tok_id(T, s);
    if (id < 0) {
        char c[2] = {(char)b, 0};
        id = tok_id(T, c);
    }
    assert_true(id >= 0);
    return id;
}

/* ---- tests: reuse and isolation --------------------------------------------- */

static const char *PROMPTS[] = {
    "Alice wrote a long letter about the garden and the weather in spring.",
    "Bob asks: what is the capital of France? Answer briefly.",
    "Carol: list three colours.",
    ("Dave says hello to everyone in the room, one by one, slowly and with great care, "
     "making sure that nobody is missed and that every single person hears the greeting."),
    "Eve",
};

static void concurrent_batched_equals_solo(void **state)
{
    (void)state;
    enum { N = 5 };
    struct run solo[N], got[N];
    for (int i = 0; i < N; i++) {
        struct gen_request r = req_text(PROMPTS[i], 12 + i);
        r.sp.seed = 100 + (uint64_t)i;
        run_solo(&r, 256, &solo[i]);
        assert_int_equal(solo[i].n, 12 + i);
        assert_int_equal(solo[i].done.finish, ENG_FINISH_LENGTH);
    }
    struct mock *m = mock_new(4, 256, 4, 8);
    struct eng *e = eng_new(m, 8, 0);
    struct eng_req *q[N];
    for (int i = 0; i < N; i++) {
        struct gen_request r = req_text(PROMPTS[i], 12 + i);
        r.sp.seed = 100 + (uint64_t)i;
        q[i] = submit(e, &r);
    }
    /* Read all streams interleaved, as HTTP threads would. */
    int open = N;
    for (int i = 0; i < N; i++)
        memset(&got[i], 0, sizeof got[i]);
    while (open) {
        for (int i = 0; i < N; i++) {
            struct eng_event ev;
            if (got[i].done.kind == ENG_EV_DONE)
                continue;
            enum ax_err rc = eng_next(q[i], &ev, 1);
            if (rc == AX_EBUSY)
                continue;
            assert_int_equal(rc, AX_OK);
            take(&got[i], &ev);
            open -= ev.kind == ENG_EV_DONE;
        }
    }
    for (int i = 0; i < N; i++) {
        same_run(&solo[i], &got[i]);
        assert_int_equal(got[i].done.prompt_tokens, n_tokens(PROMPTS[i]));
        assert_int_equal(got[i].done.completion_tokens, 12 + i);
        eng_req_free(q[i]);
    }
    assert_string_equal(m->bad, "");
    assert_true(m->max_seqs >= 2);   /* decode steps shared a forward call */
    assert_int_equal(m->max_chunk, 8); /* prefill went in prefill_chunk pieces */
    struct eng_stats st;
    eng_get_stats(e, &st);
    assert_int_equal(st.requests_total, N);
    assert_int_equal(st.requests_running + st.requests_queued, 0);
    assert_int_equal(st.completion_tokens_total, 12 + 13 + 14 + 15 + 16);
    assert_int_equal(st.ttft_count, N);
    assert_int_equal(st.ttft_bucket[ENG_TTFT_BUCKETS - 1], N);
    for (int i = 1; i < ENG_TTFT_BUCKETS; i++)
        assert_true(st.ttft_bucket[i] >= st.ttft_bucket[i - 1]);
    assert_int_equal(st.tps_bucket[ENG_TPS_BUCKETS - 1], N);
    assert_int_equal(st.slots_total, 4);
    assert_int_equal(st.slots_used, 0);
    assert_int_equal(st.healthy, 1);
    eng_free(e);
    mock_free(m);
}

static void single_stream_round_robin(void **state)
{
    (void)state;
    enum { N = 3, K = 8 };
    struct run solo[N], got[N];
    for (int i = 0; i < N; i++) {
        struct gen_request r = req_text(PROMPTS[i], K);
        run_solo(&r, 256, &solo[i]);
    }
    struct mock *m = mock_new(3, 256, 1, 128); /* each prompt is one chunk */
    struct eng *e = eng_new(m, 8, 0);
    mock_gate(m, 0);
    struct eng_req *q[N];
    for (int i = 0; i < N; i++) {
        struct gen_request r = req_text(PROMPTS[i], K);
        q[i] = submit(e, &r);
    }
    mock_wait_blocked(m);
    mock_gate(m, -1);
    for (int i = 0; i < N; i++) {
        collect(q[i], &got[i]);
        same_run(&solo[i], &got[i]);
        eng_req_free(q[i]);
    }
    assert_string_equal(m->bad, "");
    assert_int_equal(m->max_seqs, 1);
    /* Every call runs one request; turns rotate 0,1,2,0,1,2,... */
    assert_int_equal(m->calls, N * K);
    for (int i = 0; i < N * K; i++)
        assert_int_equal(m->slot_log[i], i % N);
    eng_free(e);
    mock_free(m);
}

static void prefix_reuse_and_cached_counts(void **state)
{
    (void)state;
    struct mock *m = mock_new(2, 512, 2, 16);
    struct eng *e = eng_new(m, 4, 0);
    const char *p1 = "System: be brief.\nUser: tell me about cats.\nAssistant:";
    struct run a, b, c, ref;
    struct gen_request r = req_text(p1, 6);
    run_one(e, &r, &a);
    int n1 = n_tokens(p1);
    assert_int_equal(a.done.cached_tokens, 0);
    assert_int_equal(a.done.prompt_tokens, n1);
    /* The conversation continues: previous prompt + answer + new turn. */
    int32_t ids[600];
    int n = append_ids(ids, 0, p1);
    memcpy(ids + n, a.tok, sizeof(int32_t) * (size_t)a.n);
    n += a.n;
    n = append_ids(ids, n, "\nUser: and dogs?\nAssistant:");
    struct gen_request r2 = req_text(NULL, 6);
    r2.prompt_text = NULL;
    r2.prompt_ids = ids;
    r2.n_prompt_ids = (size_t)n;
    run_one(e, &r2, &b);
    /* The last sampled token of a was never run through the model. */
    assert_int_equal(b.done.cached_tokens, n1 + a.n - 1);
    run_solo(&r2, 512, &ref);
    same_run(&ref, &b);
    /* The same prompt again: all cached but the last token. */
    run_one(e, &r2, &c);
    assert_int_equal(c.done.cached_tokens, n - 1);
    same_run(&ref, &c);
    struct eng_stats st;
    eng_get_stats(e, &st);
    assert_int_equal(st.cached_tokens_total, (n1 + a.n - 1) + (n - 1));
    assert_int_equal(st.slots_cached, 1);
    assert_string_equal(m->bad, "");
    eng_free(e);
    mock_free(m);
}

static void new_conversation_never_sees_old_state(void **state)
{
    (void)state;
    struct mock *m = mock_new(1, 512, 1, 16);
    struct eng *e = eng_new(m, 4, 0);
    const char *x = "Shared system prompt for everyone. User one asks about the moon and stars.";
    const char *y = "Shared system prompt for everyone. User two wants a recipe.";
    struct run rx, ry, ref;
    struct gen_request r = req_text(x, 10);
    run_one(e, &r, &rx);
    struct gen_request r2 = req_text(y, 10);
    run_one(e, &r2, &ry);
    /* Only the common prefix was reused; the rest was recomputed. */
    int32_t a[256], b[256];
    int na = append_ids(a, 0, x), nb = append_ids(b, 0, y), l = 0;
    while (l < na && l < nb && a[l] == b[l])
        l++;
    assert_true(l > 3 && l < nb);
    assert_int_equal(ry.done.cached_tokens, l);
    run_solo(&r2, 512, &ref);
    same_run(&ref, &ry);
    /* Back to x: its tail is gone, so only the prefix is reused again. */
    run_one(e, &r, &ref);
    assert_int_equal(ref.done.cached_tokens, l);
    same_run(&rx, &ref);
    assert_string_equal(m->bad, "");
    eng_free(e);
    mock_free(m);
}

static void lru_eviction_order(void **state)
{
    (void)state;
    struct mock *m = mock_new(2, 256, 2, 32);
    struct eng *e = eng_new(m, 4, 0);
    const char *pa = "Apples are red and sweet.";
    const char *pb = "Bananas are yellow and long.";
    const char *pc = "Cherries are small.";
    struct run r;
    struct gen_request ra = req_text(pa, 2), rb = req_text(pb, 2), rc = req_text(pc, 2);
    run_one(e, &ra, &r); /* slot 0 */
    assert_int_equal(r.done.cached_tokens, 0);
    run_one(e, &rb, &r); /* slot 1 (empty beats no match) */
    assert_int_equal(r.done.cached_tokens, 0);
    run_one(e, &ra, &r); /* a is reused: now b is least recent */
    assert_int_equal(r.done.cached_tokens, n_tokens(pa) - 1);
    run_one(e, &rc, &r); /* evicts b */
    assert_int_equal(r.done.cached_tokens, 0);
    run_one(e, &ra, &r); /* a survived */
    assert_int_equal(r.done.cached_tokens, n_tokens(pa) - 1);
    run_one(e, &rb, &r); /* b is gone: evicts c, the least recent */
    assert_int_equal(r.done.cached_tokens, 0);
    run_one(e, &rc, &r); /* c is gone too: evicts a */
    assert_int_equal(r.done.cached_tokens, 0);
    run_one(e, &rb, &r);
    assert_int_equal(r.done.cached_tokens, n_tokens(pb) - 1);
    assert_string_equal(m->bad, "");
    eng_free(e);
    mock_free(m);
}

/* ---- tests: stops and limits ------------------------------------------------ */

struct script {
    int32_t ids[128];
    int n;
};

static void script_text(struct script *s, const char *text) { s->n = append_ids(s->ids, s->n, text); }

static void run_script(const struct script *s, const char **stops, int n_stop, int max_tokens,
                       struct run *out)
{
    struct mock *m = mock_new(1, 256, 1, 16);
    const char *prompt = "Say something.";
    m->script = s->ids;
    m->n_script = s->n;
    m->script_base = n_tokens(prompt);
    struct eng *e = eng_new(m, 4, 0);
    struct gen_request r = req_text(prompt, max_tokens);
    r.sp.temperature = 0.0f;
    for (int i = 0; i < n_stop; i++)
        r.stop[i] = stops[i];
    r.n_stop = n_stop;
    run_one(e, &r, out);
    eng_free(e);
    assert_string_equal(m->bad, "");
    mock_free(m);
}

static void stop_string_across_tokens(void **state)
{
    (void)state;
    struct script s = {.n = 0};
    script_text(&s, "Hello wor");
    script_text(&s, "ld! ST");
    int held = s.n;
    script_text(&s, "O");
    int at = s.n; /* the next token completes the stop string */
    script_text(&s, "P here and more");
    struct run r;
    const char *stop[] = {"STOP"};
    run_script(&s, stop, 1, 100, &r);
    assert_string_equal(r.text, "Hello world! ");
    assert_int_equal(r.done.finish, ENG_FINISH_STOP);
    assert_int_equal(r.done.completion_tokens, at + 1);
    assert_int_equal(r.n, at + 1);
    /* The earliest of several stop strings wins, wherever it is listed. */
    const char *two[] = {"here", "d! S"};
    run_script(&s, two, 2, 100, &r);
    assert_string_equal(r.text, "Hello worl");
    /* A held-back "ST" that turns out not to be "STAR" is released. */
    const char *star[] = {"STAR"};
    run_script(&s, star, 1, 100, &r);
    assert_string_equal(r.text, "Hello world! STOP here and more");
    assert_int_equal(r.done.finish, ENG_FINISH_STOP); /* the script ends with eos */
    assert_int_equal(r.done.completion_tokens, s.n + 1);
    /* With max_tokens reached while "ST" is held, it is flushed. */
    run_script(&s, star, 1, held, &r);
    assert_string_equal(r.text, "Hello world! ST");
    assert_int_equal(r.done.finish, ENG_FINISH_LENGTH);
}

static void held_text_released_at_eos_and_utf8(void **state)
{
    (void)state;
    struct script s = {.n = 0};
    script_text(&s, "line one\n");
    struct run r;
    const char *nn[] = {"\n\n"};
    run_script(&s, nn, 1, 100, &r);
    assert_string_equal(r.text, "line one\n");
    assert_int_equal(r.done.finish, ENG_FINISH_STOP);
    assert_int_equal(r.done_text_len, 1); /* the held "\n" is released by DONE */
    /* "é" split over two byte tokens: nothing broken is ever emitted. */
    struct script u = {.n = 0};
    script_text(&u, "caf");
    u.ids[u.n++] = byte_token(0xC3);
    u.ids[u.n++] = byte_token(0xA9);
    script_text(&u, "!");
    const char *none[] = {"zzz"};
    struct mock *m = mock_new(1, 256, 1, 16);
    m->script = u.ids;
    m->n_script = u.n;
    m->script_base = n_tokens("Say something.");
    struct eng *e = eng_new(m, 4, 0);
    struct gen_request g = req_text("Say something.", 100);
    struct eng_req *q = submit(e, &g);
    struct eng_event ev;
    char all[64] = "";
    do {
        assert_int_equal(eng_next(q, &ev, WAIT_MS), AX_OK);
        if (ev.kind == ENG_EV_TOKEN && ev.token == u.ids[u.n - 3])
            assert_int_equal(ev.text_len, 0); /* the lone 0xC3 is held */
        strncat(all, ev.text, ev.text_len);
    } while (ev.kind != ENG_EV_DONE);
    assert_string_equal(all, "caf\xc3\xa9!");
    eng_req_free(q);
    eng_free(e);
    mock_free(m);
    const char *acute[] = {"\xc3\xa9!"};
    run_script(&u, acute, 1, 100, &r);
    assert_string_equal(r.text, "caf");
    run_script(&u, none, 1, 100, &r);
    assert_string_equal(r.text, "caf\xc3\xa9!");
}

static void eos_and_ignore_eos(void **state)
{
    (void)state;
    struct script s = {.n = 0};
    script_text(&s, "Short answer.");
    struct run r;
    run_script(&s, NULL, 0, 100, &r);
    assert_string_equal(r.text, "Short answer.");
    assert_int_equal(r.done.finish, ENG_FINISH_STOP);
    assert_int_equal(r.n, s.n);                      /* no TOKEN event for eos */
    assert_int_equal(r.done.completion_tokens, s.n + 1); /* but it counts */
    /* max_tokens exactly at the answer: length, before eos is sampled. */
    run_script(&s, NULL, 0, s.n, &r);
    assert_int_equal(r.done.finish, ENG_FINISH_LENGTH);
    assert_int_equal(r.done.completion_tokens, s.n);
    /* ignore_eos: end tokens are generated (as no text) up to max_tokens. */
    struct mock *m = mock_new(1, 256, 1, 16);
    m->script = s.ids;
    m->n_script = s.n;
    m->script_base = n_tokens("Say something.");
    struct eng *e = eng_new(m, 4, 0);
    struct gen_request g = req_text("Say something.", s.n + 3);
    g.ignore_eos = 1;
    run_one(e, &g, &r);
    assert_string_equal(r.text, "Short answer.");
    assert_int_equal(r.done.finish, ENG_FINISH_LENGTH);
    assert_int_equal(r.n, s.n + 3);
    assert_int_equal(r.tok[s.n], EOS);
    eng_free(e);
    mock_free(m);
}

static void context_limits(void **state)
{
    (void)state;
    struct mock *m = mock_new(1, 32, 1, 8);
    struct eng *e = eng_new(m, 4, 0);
    int32_t ids[40];
    for (int i = 0; i < 40; i++)
        ids[i] = m->cands[i % 5];
    struct gen_request r = req_text(NULL, 10);
    r.prompt_text = NULL;
    r.prompt_ids = ids;
    r.n_prompt_ids = 32;
    struct eng_req *q;
    struct eng_submit_info info;
    char err[AX_ERRLEN];
    assert_int_equal(eng_submit_ex(e, &r, &q, &info, err), AX_ECONTEXT);
    assert_null(q);
    assert_int_equal(info.n_prompt_tokens, 32);
    assert_int_equal(info.n_ctx, 32);
    assert_int_equal(info.max_prompt, 31);
    assert_non_null(strstr(err, "32 tokens"));
    assert_non_null(strstr(err, "31"));
    /* One token shorter fits; max_tokens is clamped to the one place left. */
    r.n_prompt_ids = 31;
    assert_int_equal(eng_submit_ex(e, &r, &q, &info, err), AX_OK);
    assert_int_equal(info.max_tokens, 1);
    struct run out;
    collect(q, &out);
    eng_req_free(q);
    assert_int_equal(out.done.finish, ENG_FINISH_LENGTH);
    assert_int_equal(out.done.completion_tokens, 1);
    /* max_tokens < 0: up to the context. */
    r = req_text("x x x x", -1);
    run_one(e, &r, &out);
    assert_int_equal(out.done.completion_tokens, 32 - n_tokens("x x x x"));
    assert_int_equal(out.done.finish, ENG_FINISH_LENGTH);
    eng_free(e);
    /* max_prompt below the context. */
    e = eng_new(m, 4, 5);
    r = req_text("x x x x x x", 4);
    assert_int_equal(eng_submit_ex(e, &r, &q, &info, err), AX_ECONTEXT);
    assert_int_equal(info.max_prompt, 5);
    /* Invalid input is refused before anything is queued. */
    r = req_text("", 4);
    assert_int_equal(eng_submit(e, &r, &q, err), AX_EINVAL);
    int32_t bad = 1 << 30;
    r = req_text(NULL, 4);
    r.prompt_text = NULL;
    r.prompt_ids = &bad;
    r.n_prompt_ids = 1;
    assert_int_equal(eng_submit(e, &r, &q, err), AX_ERANGE);
    r = req_text("hi", 4);
    r.stop[0] = "";
    r.n_stop = 1;
    assert_int_equal(eng_submit(e, &r, &q, err), AX_EINVAL);
    r = req_text("hi", 4);
    r.top_logprobs = ENG_MAX_TOP + 1;
    assert_int_equal(eng_submit(e, &r, &q, err), AX_EINVAL);
    r = req_text("\xff", 4);
    assert_int_not_equal(eng_submit(e, &r, &q, err), AX_OK);
    eng_free(e);
    assert_string_equal(m->bad, "");
    mock_free(m);
}

static void logprobs_are_reported(void **state)
{
    (void)state;
    struct mock *m = mock_new(1, 256, 1, 16);
    struct eng *e = eng_new(m, 4, 0);
    struct gen_request r = req_text("Tell me something.", 4);
    r.want_logprobs = 1;
    r.top_logprobs = 3;
    r.sp.repetition_penalty = 1.3f; /* must not change the reported values */
    struct eng_req *q = submit(e, &r);
    struct eng_event ev;
    int n = 0;
    while (eng_next(q, &ev, WAIT_MS) == AX_OK && ev.kind == ENG_EV_TOKEN) {
        assert_int_equal(ev.n_top, 3);
        assert_true(ev.logprob <= 0.0f && ev.top[0].logprob >= ev.top[1].logprob &&
                    ev.top[1].logprob >= ev.top[2].logprob);
        int found = 0;
        for (int i = 0; i < 3; i++)
            if (ev.top[i].id == ev.token) {
                assert_float_equal(ev.top[i].logprob, ev.logprob, 1e-6);
                found = 1;
            }
        assert_true(ev.logprob < ev.top[2].logprob || found);
        n++;
    }
    assert_int_equal(n, 4);
    eng_req_free(q);
    eng_free(e);
    mock_free(m);
}

/* ---- tests: queue, cancellation, failure, shutdown --------------------------- */

/* A reader that lags: the engine never waits for it; the event queue
 * compacts what was read and grows, and nothing is lost or reordered. */
static void slow_reader_loses_nothing(void **state)
{
    (void)state;
    struct gen_request r = req_text("Write a long story about a lighthouse.", 120);
    struct run ref, got;
    run_solo(&r, 512, &ref);
    struct mock *m = mock_new(1, 512, 1, 64);
    struct eng *e = eng_new(m, 4, 0);
    mock_gate(m, 10);
    struct eng_req *q = submit(e, &r);
    mock_wait_blocked(m);
    memset(&got, 0, sizeof got);
    struct eng_event ev;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(eng_next(q, &ev, WAIT_MS), AX_OK);
        take(&got, &ev);
    }
    mock_gate(m, 40); /* fills the first 32-event block: compaction */
    mock_wait_blocked(m);
    mock_gate(m, -1); /* the rest while nobody reads: growth */
    struct eng_stats st;
    for (eng_get_stats(e, &st); st.requests_running > 0; eng_get_stats(e, &st))
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    do {
        assert_int_equal(eng_next(q, &ev, WAIT_MS), AX_OK);
        take(&got, &ev);
    } while (ev.kind != ENG_EV_DONE);
    same_run(&ref, &got);
    assert_int_equal(got.n, 120);
    eng_req_free(q);
    eng_free(e);
    mock_free(m);
}

static void queue_full_is_busy(void **state)
{
    (void)state;
    struct mock *m = mock_new(1, 256, 1, 16);
    struct eng *e = eng_new(m, 2, 0);
    mock_gate(m, 0);
    struct gen_request r = req_text("Hello there", 3);
    struct eng_req *a = submit(e, &r), *b = submit(e, &r), *c;
    char err[AX_ERRLEN];
    assert_int_equal(eng_submit(e, &r, &c, err), AX_EBUSY);
    assert_null(c);
    struct eng_event ev;
    assert_int_equal(eng_next(a, &ev, 0), AX_EBUSY); /* nothing yet: timeout */
    struct eng_stats st;
    eng_get_stats(e, &st);
    assert_int_equal(st.requests_rejected, 1);
    assert_int_equal(st.requests_running + st.requests_queued, 2);
    mock_gate(m, -1);
    struct run ra, rb;
    collect(a, &ra);
    collect(b, &rb);
    same_run(&ra, &rb);
    eng_req_free(a);
    eng_req_free(b);
    c = submit(e, &r); /* room again */
    eng_req_free(c);
    eng_free(e);
    mock_free(m);
}

static void cancel_mid_prefill(void **state)
{
    (void)state;
    struct mock *m = mock_new(1, 256, 1, 8);
    struct eng *e = eng_new(m, 4, 0);
    const char *p = PROMPTS[3];
    assert_true(n_tokens(p) > 24);
    mock_gate(m, 1);
    struct gen_request r = req_text(p, 5);
    struct eng_req *q = submit(e, &r);
    mock_wait_blocked(m); /* inside the second chunk */
    eng_cancel(q);
    mock_gate(m, -1);
    struct run out;
    collect(q, &out);
    eng_req_free(q);
    assert_int_equal(out.done.finish, ENG_FINISH_CANCEL);
    assert_int_equal(out.done.code, AX_ECANCELED);
    assert_int_equal(out.n, 0);
    assert_int_equal(m->calls, 2); /* stopped after the chunk in flight */
    /* The two chunks computed stay cached for the next request. */
    run_one(e, &r, &out);
    assert_int_equal(out.done.cached_tokens, 16);
    struct run ref;
    run_solo(&r, 256, &ref);
    same_run(&ref, &out);
    struct eng_stats st;
    eng_get_stats(e, &st);
    assert_int_equal(st.requests_cancelled, 1);
    eng_free(e);
    assert_string_equal(m->bad, "");
    mock_free(m);
}

static void cancel_mid_decode(void **state)
{
    (void)state;
    struct mock *m = mock_new(2, 256, 2, 64); /* the prompt is one chunk */
    struct eng *e = eng_new(m, 4, 0);
    mock_gate(m, 5);
    struct gen_request r = req_text("Count to a hundred", 100);
    struct eng_req *q = submit(e, &r);
    mock_wait_blocked(m);
    eng_cancel(q);
    mock_gate(m, -1);
    struct run out;
    collect(q, &out);
    eng_req_free(q);
    assert_int_equal(out.done.finish, ENG_FINISH_CANCEL);
    assert_int_equal(out.done.completion_tokens, 6); /* 5 calls + the one in flight */
    assert_int_equal(out.n, 6);
    /* A client that frees without reading: the slot is freed for reuse. */
    mock_gate(m, 3);
    struct eng_req *g = submit(e, &r);
    mock_wait_blocked(m);
    eng_req_free(g);
    mock_gate(m, -1);
    struct gen_request r2 = req_text("Something else entirely", 5);
    struct eng_req *a = submit(e, &r2), *b = submit(e, &r2);
    struct run ra, rb;
    collect(a, &ra);
    collect(b, &rb);
    assert_int_equal(ra.done.finish, ENG_FINISH_LENGTH);
    assert_int_equal(rb.done.finish, ENG_FINISH_LENGTH);
    eng_req_free(a);
    eng_req_free(b);
    eng_free(e);
    assert_string_equal(m->bad, "");
    mock_free(m);
}

static void backend_failure_fails_requests_only(void **state)
{
    (void)state;
    struct mock *m = mock_new(2, 256, 2, 16);
    struct eng *e = eng_new(m, 4, 0);
    m->fail_call = 4;
    mock_gate(m, 0);
    struct gen_request r1 = req_text("First question", 20), r2 = req_text("Second one", 20);
    struct eng_req *a = submit(e, &r1), *b = submit(e, &r2);
    mock_gate(m, -1);
    struct run ra, rb;
    collect(a, &ra);
    collect(b, &rb);
    eng_req_free(a);
    eng_req_free(b);
    assert_int_equal(ra.done.finish, ENG_FINISH_ERROR);
    assert_int_equal(rb.done.finish, ENG_FINISH_ERROR);
    assert_int_equal(ra.done.code, AX_EBACKEND);
    assert_non_null(strstr(ra.done.message, "mock device lost"));
    struct eng_stats st;
    eng_get_stats(e, &st);
    assert_int_equal(st.healthy, 0);
    assert_int_equal(st.requests_failed, 2);
    /* The engine keeps going; the failed slots are treated as empty. */
    struct run out, ref;
    run_one(e, &r1, &out);
    assert_int_equal(out.done.finish, ENG_FINISH_LENGTH);
    assert_int_equal(out.done.cached_tokens, 0);
    run_solo(&r1, 256, &ref);
    same_run(&ref, &out);
    eng_free(e);
    assert_string_equal(m->bad, "");
    mock_free(m);
}

static void shutdown_with_requests_in_flight(void **state)
{
    (void)state;
    enum { N = 6 };
    struct mock *m = mock_new(2, 1024, 2, 16);
    struct eng *e = eng_new(m, 8, 0);
    mock_gate(m, 3);
    struct eng_req *q[N];
    for (int i = 0; i < N; i++) {
        struct gen_request r = req_text(PROMPTS[i % 5], 500);
        q[i] = submit(e, &r);
    }
    mock_wait_blocked(m);
    mock_gate(m, -1);
    eng_free(e);
    for (int i = 0; i < N; i++) {
        struct run out;
        collect(q[i], &out);
        assert_int_equal(out.done.finish, ENG_FINISH_CANCEL);
        assert_int_equal(out.done.code, AX_ESHUTDOWN);
        eng_req_free(q[i]);
    }
    eng_req_free(NULL);
    eng_free(NULL);
    mock_free(m);
}

/* Every allocation of eng_create and eng_submit may fail: each run gives a
 * working engine or request, or a clean AX_ENOMEM (leaks: LSan). */
static void allocation_failures_are_clean(void **state)
{
    (void)state;
    struct mock *m = mock_new(2, 256, 2, 16);
    struct eng_config cfg = {.queue_max = 4, .eos = &EOS, .n_eos = 1};
    char err[AX_ERRLEN];
    int ok_create = 0, ok_submit = 0;
    for (long n = 0; n < 40; n++) {
        struct eng *e;
        ax_mem_fail_after(n);
        enum ax_err rc = eng_create(&cfg, &m->b, T, &e, err);
        ax_mem_fail_after(-1);
        if (rc != AX_OK) {
            assert_int_equal(rc, AX_ENOMEM);
            continue;
        }
        ok_create++;
        eng_free(e);
    }
    struct eng *e = eng_new(m, 4, 0);
    struct gen_request r = req_text("An allocation may fail anywhere here.", 3);
    r.stop[0] = "zz";
    r.n_stop = 1;
    for (long n = 0; n < 40; n++) {
        struct eng_req *q;
        ax_mem_fail_after(n);
        enum ax_err rc = eng_submit(e, &r, &q, err);
        ax_mem_fail_after(-1);
        if (rc != AX_OK) {
            assert_int_equal(rc, AX_ENOMEM);
            continue;
        }
        ok_submit++;
        struct run out;
        collect(q, &out);
        assert_int_equal(out.done.finish, ENG_FINISH_LENGTH);
        eng_req_free(q);
    }
    assert_true(ok_create > 0 && ok_create < 40);
    assert_true(ok_submit > 0 && ok_submit < 40);
    eng_free(e);
    mock_free(m);
}

/* ---- the real CPU backend ---------------------------------------------------- */

/* Continuous batching on the CPU backend: four streams sharing forward
 * calls (with a prefill chunk of a newcomer in the same calls) produce
 * what each produces alone on a fresh backend. */
static void cpu_backend_batched_equals_solo(void **state)
{
    (void)state;
    enum { N = 4, K = 8 };
    struct model *md;
    char err[AX_ERRLEN];
    if (model_open(MODEL_DIR, &md, err) != AX_OK)
        fail_msg("%s (run make first)", err);
    const struct gen_defaults *g = model_gen_defaults(md);
    struct eng_config cfg = {.queue_max = 8, .eos = g->eos, .n_eos = g->n_eos};
    struct backend_opts bo = {.name = "cpu", .n_threads = 1, .n_slots = N, .n_ctx = 256};
    struct run solo[N], got[N];
    for (int i = 0; i < N; i++) {
        struct backend *b;
        struct eng *e;
        assert_int_equal(backend_open(&bo, md, &b, err), AX_OK);
        assert_int_equal(eng_create(&cfg, b, T, &e, err), AX_OK);
        struct gen_request r = req_text(PROMPTS[i + 1], K);
        r.sp.temperature = i == 0 ? 0.8f : 0.0f;
        r.ignore_eos = 1;
        run_one(e, &r, &solo[i]);
        assert_int_equal(solo[i].n, K);
        eng_free(e);
        backend_free(b);
    }
    struct backend *b;
    struct eng *e;
    assert_int_equal(backend_open(&bo, md, &b, err), AX_OK);
    assert_true(b->lim.max_batch >= N && (b->ops->caps & BACKEND_CAP_BATCH));
    assert_int_equal(eng_create(&cfg, b, T, &e, err), AX_OK);
    struct eng_req *q[N];
    for (int i = 0; i < N; i++) {
        struct gen_request r = req_text(PROMPTS[i + 1], K);
        r.sp.temperature = i == 0 ? 0.8f : 0.0f;
        r.ignore_eos = 1;
        q[i] = submit(e, &r);
    }
    for (int i = 0; i < N; i++) {
        collect(q[i], &got[i]);
        same_run(&solo[i], &got[i]);
        eng_req_free(q[i]);
    }
    struct eng_stats st;
    eng_get_stats(e, &st);
    /* Fewer calls than tokens: the streams shared passes over the weights. */
    assert_true(st.forward_calls < N * K);
    eng_free(e);
    backend_free(b);
    model_free(md);
}

/* ---- main ------------------------------------------------------------------ */

static int setup(void **state)
{
    (void)state;
    char err[AX_ERRLEN];
    if (tok_load(TOKENIZER, &T, err) != AX_OK) {
        fprintf(stderr, "test_engine: %s (run make first)\n", err);
        return -1;
    }
    EOS = tok_id(T, "<|im_end|>");
    return EOS < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    tok_free(T);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(concurrent_batched_equals_solo),
        cmocka_unit_test(single_stream_round_robin),
        cmocka_unit_test(prefix_reuse_and_cached_counts),
        cmocka_unit_test(new_conversation_never_sees_old_state),
        cmocka_unit_test(lru_eviction_order),
        cmocka_unit_test(stop_string_across_tokens),
        cmocka_unit_test(held_text_released_at_eos_and_utf8),
        cmocka_unit_test(eos_and_ignore_eos),
        cmocka_unit_test(context_limits),
        cmocka_unit_test(logprobs_are_reported),
        cmocka_unit_test(slow_reader_loses_nothing),
        cmocka_unit_test(queue_full_is_busy),
        cmocka_unit_test(cancel_mid_prefill),
        cmocka_unit_test(cancel_mid_decode),
        cmocka_unit_test(backend_failure_fails_requests_only),
        cmocka_unit_test(shutdown_with_requests_in_flight),
        cmocka_unit_test(allocation_failures_are_clean),
        cmocka_unit_test(cpu_backend_batched_equals_solo),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
