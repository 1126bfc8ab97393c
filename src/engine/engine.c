/* engine.c - the request queue, KV slot reuse, the step loop that drives
 * one backend, and per-request event queues.
 *
 * Threads: HTTP threads run eng_submit (tokenize, validate, enqueue) and
 * eng_next (read events); the one engine thread does everything that
 * touches the backend, the sampler and a request's generation state.
 * Locks: e->mu guards the incoming list, counters and stats; q->mu guards a
 * request's event queue. The engine may take q->mu while holding e->mu,
 * never the reverse. It does not parse JSON or render templates. */
#include "engine/engine.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "engine/sampler.h"
#include "tok/tok.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#define ENG_MAGIC 0x454e4731u
#define REQ_MAGIC 0x52455131u
#define HELD_MAX (1u << 20)      /* held-back text; a stop prefix plus one token */
#define TEXT_MAX (64u << 20)     /* queued event text per request */
#define DEFAULT_CHUNK 512

/* ---- data ------------------------------------------------------------------ */

/* A queued event: text lives in req->text at [text_off, text_off+text_len). */
struct qev {
    enum eng_event_kind kind;
    int32_t token;
    float logprob;
    int n_top;
    struct eng_top top[ENG_MAX_TOP];
    size_t text_off, text_len;
};

enum req_state { RS_WAITING = 0, RS_PREFILL, RS_DECODE, RS_DONE };

struct eng_req {
    uint32_t magic;
    atomic_int refs;   /* client + engine; the last to drop frees */
    atomic_int cancel;

    /* Fixed at submit. */
    int32_t *prompt;   /* [n_prompt] */
    int n_prompt;
    int max_tokens;    /* effective, >= 0 */
    struct sampler_params sp;
    char *stop[ENG_MAX_STOP];
    size_t stop_len[ENG_MAX_STOP];
    int n_stop;
    int ignore_eos, top_logprobs, want_logprobs;
    struct timespec t_submit;

    /* Engine thread only. */
    struct eng_req *next; /* waiting list */
    enum req_state state;
    int slot;
    int n_gen;
    int cached;
    struct sampler_rng rng;
    struct tok_stream ts;
    struct ax_buf held;   /* decoded text not yet released */
    double ttft_ms;
    struct timespec t_first, t_last;

    /* Event queue, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct qev *ev;       /* [ev_cap] */
    int ev_head, ev_n, ev_cap, ev_max;
    struct ax_buf text;
    int client_gone, done_read;
    enum eng_finish finish;
    enum ax_err code;
    char message[AX_ERRLEN];
    int completion_tokens;
    double decode_ms;

    /* Consumer side: the text of the event last returned by eng_next. */
    struct ax_buf out;
};

struct slot {
    int32_t *tok;     /* [n_ctx] prompt + generated ids of the sequence */
    int n_kv;         /* tok[0..n_kv) are in the backend's KV rows */
    int n_seq;        /* tok[n_kv..n_seq) still to run */
    long last_used;
    struct eng_req *owner;
};

struct eng {
    uint32_t magic;
    struct backend *b;
    const struct tok *t;
    struct backend_limits lim;
    int n_vocab;      /* ids the sampler may pick: min(backend, tokenizer) */
    int max_prompt;
    int chunk;
    int32_t eos[16];
    int n_eos;

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;                          /* mu */
    struct eng_req *in_head, *in_tail; /* mu: submitted, not yet taken */
    long inflight;                     /* mu: accepted and not finished */
    struct eng_stats st;               /* mu */

    /* Engine thread only. */
    struct eng_req *wait_head, *wait_tail;
    struct slot *slots;
    float *logits;              /* [max_batch][lim.n_vocab] */
    float *raw;                 /* [lim.n_vocab] logits before penalties */
    const float *cur_raw;       /* raw logits of the token being handled */
    struct backend_seq *seqs;   /* [max_batch] */
    struct eng_req **seq_req;   /* [max_batch] */
    struct sampler *smp;
    long tick;
    int rr;
};

static const double ttft_bounds[ENG_TTFT_BUCKETS] = ENG_TTFT_BOUNDS_MS;
static const double tps_bounds[ENG_TPS_BUCKETS] = ENG_TPS_BOUNDS;

static double ms_between(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

/* ---- request lifetime ------------------------------------------------------ */

static void req_destroy(struct eng_req *q)
{
    ax_free(q->prompt);
    for (int i = 0; i < q->n_stop; i++)
        ax_free(q->stop[i]);
    ax_buf_free(&q->held);
    ax_buf_free(&q->text);
    ax_buf_free(&q->out);
    ax_free(q->ev);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    q->magic = 0;
    ax_free(q);
}

static void req_unref(struct eng_req *q)
{
    if (atomic_fetch_sub(&q->refs, 1) == 1)
        req_destroy(q);
}

/* Appends one event; the engine never waits for the reader. Returns
 * AX_ETOOBIG / AX_ENOMEM if the queue cannot take it. */
static enum ax_err push_event(struct eng_req *q, const struct qev *ev, const char *text,
                              size_t len)
{
    enum ax_err rc = AX_OK;
    pthread_mutex_lock(&q->mu);
    if (q->client_gone)
        goto out;
    if (q->ev_head == q->ev_n) { /* reader caught up: start over */
        q->ev_head = q->ev_n = 0;
        ax_buf_reset(&q->text);
    }
    if (q->ev_n == q->ev_cap) {
        if (q->ev_head > 0) { /* compact: drop what the reader consumed */
            size_t off = q->ev[q->ev_head].text_off;
            memmove(q->text.data, q->text.data + off, q->text.len - off);
            q->text.len -= off;
            q->ev_n -= q->ev_head;
            memmove(q->ev, q->ev + q->ev_head, sizeof *q->ev * (size_t)q->ev_n);
            for (int i = 0; i < q->ev_n; i++)
                q->ev[i].text_off -= off;
            q->ev_head = 0;
        }
        if (q->ev_n == q->ev_cap) {
            int cap = q->ev_cap * 2;
            if (cap > q->ev_max)
                cap = q->ev_max;
            struct qev *n = cap > q->ev_cap ? ax_reallocarray(q->ev, (size_t)cap, sizeof *n)
                                            : NULL;
            if (!n) {
                rc = cap > q->ev_cap ? AX_ENOMEM : AX_ETOOBIG;
                goto out;
            }
            q->ev = n;
            q->ev_cap = cap;
        }
    }
    struct qev *slot = &q->ev[q->ev_n];
    *slot = *ev;
    slot->text_off = q->text.len;
    slot->text_len = len;
    if (len && (rc = ax_buf_append(&q->text, text, len)) != AX_OK)
        goto out;
    q->ev_n++;
    pthread_cond_signal(&q->cv);
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* ---- submit ---------------------------------------------------------------- */

static enum ax_err check_params(const struct gen_request *r, char *err)
{
    const struct sampler_params *p = &r->sp;
    if (!(p->temperature >= 0.0f && p->temperature <= 100.0f))
        return ax_fail(err, AX_EINVAL, "temperature must be in [0, 100]");
    if (!(p->top_p >= 0.0f && p->top_p <= 1.0f))
        return ax_fail(err, AX_EINVAL, "top_p must be in [0, 1] (0 keeps only the most likely token)");
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return ax_fail(err, AX_EINVAL, "min_p must be in [0, 1]");
    if (p->top_k < 0)
        return ax_fail(err, AX_EINVAL, "top_k must be >= 0");
    if (!(p->repetition_penalty > 0.0f && p->repetition_penalty <= 10.0f))
        return ax_fail(err, AX_EINVAL, "repetition_penalty must be in (0, 10]");
    if (!(fabsf(p->presence_penalty) <= 2.0f) || !(fabsf(p->frequency_penalty) <= 2.0f))
        return ax_fail(err, AX_EINVAL, "presence_penalty and frequency_penalty must be in [-2, 2]");
    if (r->n_stop < 0 || r->n_stop > ENG_MAX_STOP)
        return ax_fail(err, AX_EINVAL, "at most %d stop strings", ENG_MAX_STOP);
    for (int i = 0; i < r->n_stop; i++) {
        size_t n = r->stop[i] ? strlen(r->stop[i]) : 0;
        if (n == 0 || n > ENG_MAX_STOP_LEN)
            return ax_fail(err, AX_EINVAL, "stop[%d] must be 1..%d bytes", i, ENG_MAX_STOP_LEN);
    }
    if (r->top_logprobs < 0 || r->top_logprobs > ENG_MAX_TOP)
        return ax_fail(err, AX_EINVAL, "top_logprobs must be in [0, %d]", ENG_MAX_TOP);
    if (!r->prompt_text == !r->prompt_ids)
        return ax_fail(err, AX_EINVAL, "exactly one of prompt text or prompt ids must be given");
    return AX_OK;
}

/* Fills q->prompt / q->n_prompt from the text or the ids of r. */
static enum ax_err load_prompt(struct eng *e, struct eng_req *q, const struct gen_request *r,
                               char *err)
{
    if (r->prompt_text) {
        size_t cap;
        if (ax_add_overflow(r->prompt_len, 1, &cap) || !(q->prompt = ax_mallocarray(cap, 4)))
            return ax_fail(err, AX_ENOMEM, "out of memory tokenizing a %zu-byte prompt",
                           r->prompt_len);
        size_t n = 0;
        enum ax_err rc = tok_encode(e->t, r->prompt_text, r->prompt_len, q->prompt, &n, err);
        if (rc != AX_OK)
            return rc;
        if (n > (size_t)INT32_MAX / 2)
            return ax_fail(err, AX_ETOOBIG, "prompt of %zu tokens is too long", n);
        for (size_t i = 0; i < n; i++)
            if (q->prompt[i] < 0 || q->prompt[i] >= e->n_vocab)
                return ax_fail(err, AX_ERANGE, "prompt token %zu is id %d, outside the model's "
                               "0..%d", i, (int)q->prompt[i], e->n_vocab - 1);
        q->n_prompt = (int)n;
        /* The buffer was sized for one token per byte; keep what is used. */
        int32_t *fit = ax_reallocarray(q->prompt, n ? n : 1, sizeof *fit);
        if (fit)
            q->prompt = fit;
        return AX_OK;
    }
    if (r->n_prompt_ids > (size_t)INT32_MAX / 2)
        return ax_fail(err, AX_ETOOBIG, "prompt of %zu tokens is too long", r->n_prompt_ids);
    for (size_t i = 0; i < r->n_prompt_ids; i++)
        if (r->prompt_ids[i] < 0 || r->prompt_ids[i] >= e->n_vocab)
            return ax_fail(err, AX_ERANGE, "prompt token %zu is id %d, outside 0..%d", i,
                           (int)r->prompt_ids[i], e->n_vocab - 1);
    q->prompt = ax_mallocarray(r->n_prompt_ids ? r->n_prompt_ids : 1, sizeof *q->prompt);
    if (!q->prompt)
        return ax_fail(err, AX_ENOMEM, "out of memory for %zu prompt ids", r->n_prompt_ids);
    memcpy(q->prompt, r->prompt_ids, r->n_prompt_ids * sizeof *q->prompt);
    q->n_prompt = (int)r->n_prompt_ids;
    return AX_OK;
}

/* Context check: the prompt plus at least one generated token must fit. */
static enum ax_err fit_context(struct eng *e, struct eng_req *q, const struct gen_request *r,
                               struct eng_submit_info *info, char *err)
{
    info->n_prompt_tokens = q->n_prompt;
    if (q->n_prompt == 0)
        return ax_fail(err, AX_EINVAL, "the prompt is empty (0 tokens)");
    if (q->n_prompt > e->max_prompt)
        return ax_fail(err, AX_ECONTEXT,
                       "the prompt has %d tokens but at most %d fit (context %d tokens, at least "
                       "one is needed for the answer); shorten the conversation",
                       q->n_prompt, e->max_prompt, e->lim.n_ctx);
    int left = e->lim.n_ctx - q->n_prompt;
    q->max_tokens = (r->max_tokens < 0 || r->max_tokens > left) ? left : r->max_tokens;
    info->max_tokens = q->max_tokens;
    return AX_OK;
}

static enum ax_err req_init(struct eng *e, struct eng_req *q, const struct gen_request *r,
                            char *err)
{
    q->magic = REQ_MAGIC;
    atomic_init(&q->refs, 2);
    atomic_init(&q->cancel, 0);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    ax_buf_init(&q->held, HELD_MAX);
    ax_buf_init(&q->text, TEXT_MAX);
    ax_buf_init(&q->out, TEXT_MAX);
    q->sp = r->sp;
    q->ignore_eos = r->ignore_eos;
    q->top_logprobs = r->top_logprobs;
    q->want_logprobs = r->want_logprobs || r->top_logprobs > 0;
    q->slot = -1;
    q->ttft_ms = -1;
    sampler_rng_seed(&q->rng, r->sp.has_seed ? r->sp.seed : sampler_random_seed());
    tok_stream_init(&q->ts, e->t, 1);
    for (int i = 0; i < r->n_stop; i++) {
        if (!(q->stop[i] = ax_strdup(r->stop[i])))
            return ax_fail(err, AX_ENOMEM, "out of memory copying stop strings");
        q->stop_len[i] = strlen(q->stop[i]);
        q->n_stop = i + 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &q->t_submit);
    return AX_OK;
}

/* Sizes the event queue: one event per token plus DONE, never more. */
static enum ax_err req_queue_init(struct eng_req *q, char *err)
{
    q->ev_max = q->max_tokens + 1;
    q->ev_cap = q->ev_max < 32 ? q->ev_max : 32;
    q->ev = ax_mallocarray((size_t)q->ev_cap, sizeof *q->ev);
    if (!q->ev || ax_buf_reserve(&q->text, 256) != AX_OK)
        return ax_fail(err, AX_ENOMEM, "out of memory for a request's event queue");
    return AX_OK;
}

static enum ax_err enqueue(struct eng *e, struct eng_req *q, char *err)
{
    enum ax_err rc = AX_OK;
    pthread_mutex_lock(&e->mu);
    if (e->stop) {
        rc = ax_fail(err, AX_ESHUTDOWN, "the server is stopping");
    } else if (e->inflight >= e->st.queue_max) {
        e->st.requests_rejected++;
        rc = ax_fail(err, AX_EBUSY, "busy: %ld requests in flight (limit %d); retry later",
                     e->inflight, e->st.queue_max);
    } else {
        e->inflight++;
        e->st.requests_total++;
        e->st.requests_queued++;
        if (e->in_tail)
            e->in_tail->next = q;
        else
            e->in_head = q;
        e->in_tail = q;
        pthread_cond_signal(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

enum ax_err eng_submit_ex(struct eng *e, const struct gen_request *r, struct eng_req **out,
                          struct eng_submit_info *info, char *err)
{
    assert(e && e->magic == ENG_MAGIC && r && out);
    struct eng_submit_info dummy;
    if (!info)
        info = &dummy;
    memset(info, 0, sizeof *info);
    info->n_ctx = e->lim.n_ctx;
    info->max_prompt = e->max_prompt;
    *out = NULL;
    enum ax_err rc = check_params(r, err);
    if (rc != AX_OK)
        return rc;
    struct eng_req *q = ax_calloc(1, sizeof *q);
    if (!q)
        return ax_fail(err, AX_ENOMEM, "out of memory for a request");
    if ((rc = req_init(e, q, r, err)) != AX_OK || (rc = load_prompt(e, q, r, err)) != AX_OK ||
        (rc = fit_context(e, q, r, info, err)) != AX_OK || (rc = req_queue_init(q, err)) != AX_OK ||
        (rc = enqueue(e, q, err)) != AX_OK) {
        req_destroy(q);
        return rc;
    }
    *out = q;
    return AX_OK;
}

enum ax_err eng_submit(struct eng *e, const struct gen_request *r, struct eng_req **out,
                       char *err)
{
    return eng_submit_ex(e, r, out, NULL, err);
}

/* ---- reading events (HTTP threads) ----------------------------------------- */

static int wait_event(struct eng_req *q, int timeout_ms)
{
    if (timeout_ms < 0) {
        pthread_cond_wait(&q->cv, &q->mu);
        return 0;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return pthread_cond_timedwait(&q->cv, &q->mu, &ts);
}

static void fill_event(struct eng_req *q, const struct qev *x, struct eng_event *ev)
{
    memset(ev, 0, offsetof(struct eng_event, message));
    ev->message[0] = 0;
    ev->kind = x->kind;
    ev->token = x->token;
    ev->logprob = x->logprob;
    ev->n_top = x->n_top;
    memcpy(ev->top, x->top, sizeof ev->top[0] * (size_t)x->n_top);
    ax_buf_reset(&q->out);
    /* Cannot fail for lack of room: out has the same ceiling as text. On
     * ENOMEM the event goes out with empty text rather than not at all. */
    if (x->text_len)
        (void)ax_buf_append(&q->out, q->text.data + x->text_off, x->text_len);
    ev->text = q->out.data ? q->out.data : "";
    ev->text_len = q->out.len;
    if (x->kind != ENG_EV_DONE)
        return;
    ev->finish = q->finish;
    ev->prompt_tokens = q->n_prompt;
    ev->cached_tokens = q->cached;
    ev->completion_tokens = q->completion_tokens;
    ev->ttft_ms = q->ttft_ms;
    ev->decode_ms = q->decode_ms;
    ev->code = q->code;
    memcpy(ev->message, q->message, sizeof ev->message);
}

enum ax_err eng_next(struct eng_req *q, struct eng_event *ev, int timeout_ms)
{
    assert(q && q->magic == REQ_MAGIC && ev);
    enum ax_err rc = AX_OK;
    pthread_mutex_lock(&q->mu);
    while (q->ev_head == q->ev_n) {
        if (q->done_read) {
            rc = AX_ENOTFOUND;
            goto out;
        }
        if (timeout_ms == 0 || wait_event(q, timeout_ms) != 0) {
            if (q->ev_head == q->ev_n) {
                rc = AX_EBUSY;
                goto out;
            }
        }
    }
    const struct qev *x = &q->ev[q->ev_head++];
    fill_event(q, x, ev);
    if (x->kind == ENG_EV_DONE)
        q->done_read = 1;
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void eng_cancel(struct eng_req *q)
{
    assert(!q || q->magic == REQ_MAGIC);
    if (q)
        atomic_store(&q->cancel, 1);
}

void eng_req_free(struct eng_req *q)
{
    if (!q)
        return;
    assert(q->magic == REQ_MAGIC);
    atomic_store(&q->cancel, 1);
    pthread_mutex_lock(&q->mu);
    q->client_gone = 1;
    pthread_mutex_unlock(&q->mu);
    req_unref(q);
}

int eng_req_prompt_tokens(const struct eng_req *q) { return q->n_prompt; }

/* ---- finishing ------------------------------------------------------------- */

static void observe(struct eng *e, struct eng_req *q)
{
    struct eng_stats *st = &e->st;
    st->prompt_tokens_total += q->n_prompt;
    st->cached_tokens_total += q->cached;
    st->completion_tokens_total += q->completion_tokens;
    if (q->ttft_ms >= 0) {
        for (int i = 0; i < ENG_TTFT_BUCKETS; i++)
            if (ttft_bounds[i] < 0 || q->ttft_ms <= ttft_bounds[i])
                st->ttft_bucket[i]++;
        st->ttft_sum_ms += q->ttft_ms;
        st->ttft_count++;
    }
    if (q->n_gen >= 2 && q->decode_ms > 0) {
        double tps = (q->n_gen - 1) * 1e3 / q->decode_ms;
        for (int i = 0; i < ENG_TPS_BUCKETS; i++)
            if (tps_bounds[i] < 0 || tps <= tps_bounds[i])
                st->tps_bucket[i]++;
        st->tps_sum += tps;
        st->tps_count++;
    }
}

/* Ends q: releases its slot (keeping the computed tokens for reuse),
 * queues DONE with text (released held-back text) and drops the engine's
 * reference. */
static void finish(struct eng *e, struct eng_req *q, enum eng_finish why, enum ax_err code,
                   const char *msg, const char *text, size_t len)
{
    if (q->slot >= 0) {
        struct slot *s = &e->slots[q->slot];
        s->owner = NULL;
        s->n_seq = s->n_kv;
    }
    int was_waiting = q->state == RS_WAITING;
    q->state = RS_DONE;
    if (q->ttft_ms >= 0)
        q->decode_ms = ms_between(&q->t_first, &q->t_last);
    struct qev ev = {.kind = ENG_EV_DONE, .token = -1};
    pthread_mutex_lock(&q->mu);
    q->finish = why;
    q->code = code;
    q->completion_tokens = q->n_gen;
    snprintf(q->message, sizeof q->message, "%s", msg ? msg : "");
    pthread_mutex_unlock(&q->mu);
    /* Stats first: a client that has seen DONE also sees it counted. */
    pthread_mutex_lock(&e->mu);
    e->inflight--;
    if (was_waiting)
        e->st.requests_queued--;
    else
        e->st.requests_running--;
    if (why == ENG_FINISH_CANCEL)
        e->st.requests_cancelled++;
    if (why == ENG_FINISH_ERROR)
        e->st.requests_failed++;
    observe(e, q);
    pthread_mutex_unlock(&e->mu);
    if (push_event(q, &ev, text, len) != AX_OK && push_event(q, &ev, NULL, 0) != AX_OK) {
        /* No room even for DONE: force it in, the reader must see the end. */
        pthread_mutex_lock(&q->mu);
        q->ev_head = 0;
        q->ev_n = 1;
        q->ev[0] = ev;
        q->ev[0].text_off = q->ev[0].text_len = 0;
        pthread_cond_signal(&q->cv);
        pthread_mutex_unlock(&q->mu);
    }
    req_unref(q);
}

static void finish_plain(struct eng *e, struct eng_req *q, enum eng_finish why, enum ax_err code,
                         const char *msg)
{
    finish(e, q, why, code, msg, NULL, 0);
}

/* Releases everything still held back (end of generation without a stop
 * string match) and finishes with `why`. */
static void finish_flush(struct eng *e, struct eng_req *q, enum eng_finish why)
{
    char err[AX_ERRLEN];
    if (tok_stream_flush(&q->ts, &q->held, err) != AX_OK) {
        finish_plain(e, q, ENG_FINISH_ERROR, AX_EINVAL, err);
        return;
    }
    finish(e, q, why, AX_OK, NULL, q->held.data, q->held.len);
}

/* ---- slots ----------------------------------------------------------------- */

static int lcp(const int32_t *a, int na, const int32_t *b, int nb)
{
    int n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* Picks a free slot for q (policy in engine.h), or -1 if none is free. */
static int pick_slot(struct eng *e, const struct eng_req *q)
{
    int match = -1, match_len = -1, empty = -1, lru = -1;
    for (int i = 0; i < e->lim.n_slots; i++) {
        struct slot *s = &e->slots[i];
        if (s->owner)
            continue;
        if (s->n_kv == 0) {
            if (empty < 0)
                empty = i;
            continue;
        }
        int l = lcp(s->tok, s->n_kv, q->prompt, q->n_prompt);
        if ((l == s->n_kv || 2 * l >= s->n_kv) && l > match_len) {
            match = i;
            match_len = l;
        }
        if (lru < 0 || s->last_used < e->slots[lru].last_used)
            lru = i;
    }
    return match >= 0 ? match : empty >= 0 ? empty : lru;
}

/* Gives slot si to q: continues at the common prefix, and always leaves
 * the last prompt token to compute so there are logits. */
static void start(struct eng *e, struct eng_req *q, int si)
{
    struct slot *s = &e->slots[si];
    int pos = lcp(s->tok, s->n_kv, q->prompt, q->n_prompt);
    if (pos >= q->n_prompt)
        pos = q->n_prompt - 1;
    memcpy(s->tok + pos, q->prompt + pos, sizeof *s->tok * (size_t)(q->n_prompt - pos));
    s->n_kv = pos;
    s->n_seq = q->n_prompt;
    s->owner = q;
    s->last_used = ++e->tick;
    q->slot = si;
    q->cached = pos;
    q->state = RS_PREFILL;
    pthread_mutex_lock(&e->mu);
    e->st.requests_queued--;
    e->st.requests_running++;
    pthread_mutex_unlock(&e->mu);
    if (q->max_tokens == 0)
        finish_plain(e, q, ENG_FINISH_LENGTH, AX_OK, NULL);
}

static void admit(struct eng *e)
{
    while (e->wait_head) {
        int si = pick_slot(e, e->wait_head);
        if (si < 0)
            return;
        struct eng_req *q = e->wait_head;
        e->wait_head = q->next;
        if (!e->wait_head)
            e->wait_tail = NULL;
        q->next = NULL;
        start(e, q, si);
    }
}

/* Finishes cancelled requests, waiting or running. */
static void reap(struct eng *e)
{
    struct eng_req **pp = &e->wait_head, *last = NULL;
    while (*pp) {
        struct eng_req *q = *pp;
        if (atomic_load(&q->cancel)) {
            *pp = q->next;
            finish_plain(e, q, ENG_FINISH_CANCEL, AX_ECANCELED, "cancelled");
        } else {
            last = q;
            pp = &q->next;
        }
    }
    e->wait_tail = last;
    for (int i = 0; i < e->lim.n_slots; i++) {
        struct eng_req *q = e->slots[i].owner;
        if (q && atomic_load(&q->cancel))
            finish_plain(e, q, ENG_FINISH_CANCEL, AX_ECANCELED, "cancelled");
    }
}

/* ---- one sampled token ----------------------------------------------------- */

static int is_eos(const struct eng *e, int32_t id)
{
    for (int i = 0; i < e->n_eos; i++)
        if (e->eos[i] == id)
            return 1;
    return 0;
}

/* Earliest match of any stop string in h[0..n), or -1. */
static long find_stop(const struct eng_req *q, const char *h, size_t n)
{
    long best = -1;
    for (int i = 0; i < q->n_stop; i++) {
        const char *m = memmem(h, n, q->stop[i], q->stop_len[i]);
        if (m && (best < 0 || m - h < best))
            best = m - h;
    }
    return best;
}

/* Length of the longest suffix of h[0..n) that starts some stop string:
 * that much must be held back. */
static size_t stop_prefix_tail(const struct eng_req *q, const char *h, size_t n)
{
    size_t best = 0;
    if (!h || !n)
        return 0;
    for (int i = 0; i < q->n_stop; i++) {
        size_t sl = q->stop_len[i];
        size_t k = sl - 1 < n ? sl - 1 : n;
        for (; k > best; k--)
            if (!memcmp(h + n - k, q->stop[i], k)) {
                best = k;
                break;
            }
    }
    return best;
}

static void emit_token(struct eng *e, struct eng_req *q, int32_t id, float lp, size_t n_text)
{
    struct qev ev = {.kind = ENG_EV_TOKEN, .token = id, .logprob = lp};
    if (q->want_logprobs && q->top_logprobs > 0) {
        ev.n_top = q->top_logprobs;
        sampler_logprobs(e->smp, e->cur_raw, id, ev.n_top, ev.top);
    }
    enum ax_err rc = push_event(q, &ev, q->held.data, n_text);
    if (rc != AX_OK) {
        finish_plain(e, q, ENG_FINISH_ERROR, rc, "event queue full");
        return;
    }
    /* Drop the released text, keep the held-back tail. */
    if (!q->held.data) /* nothing held yet: the token was a partial UTF-8 sequence */
        return;
    memmove(q->held.data, q->held.data + n_text, q->held.len - n_text);
    q->held.len -= n_text;
    q->held.data[q->held.len] = 0;
}

/* Text, stop strings and limits for the token just sampled. */
static void on_token(struct eng *e, struct eng_req *q, int32_t id, float lp)
{
    char err[AX_ERRLEN];
    if (!q->ignore_eos && is_eos(e, id)) {
        finish_flush(e, q, ENG_FINISH_STOP);
        return;
    }
    enum ax_err rc = tok_stream_push(&q->ts, id, &q->held, err);
    if (rc != AX_OK) {
        finish_plain(e, q, ENG_FINISH_ERROR, rc, err);
        return;
    }
    long at = find_stop(q, q->held.data ? q->held.data : "", q->held.len);
    if (at >= 0) {
        emit_token(e, q, id, lp, (size_t)at);
        if (q->state != RS_DONE)
            finish_plain(e, q, ENG_FINISH_STOP, AX_OK, NULL);
        return;
    }
    if (q->n_gen >= q->max_tokens) {
        if ((rc = tok_stream_flush(&q->ts, &q->held, err)) != AX_OK) {
            finish_plain(e, q, ENG_FINISH_ERROR, rc, err);
            return;
        }
        emit_token(e, q, id, lp, q->held.len);
        if (q->state != RS_DONE)
            finish_plain(e, q, ENG_FINISH_LENGTH, AX_OK, NULL);
        return;
    }
    emit_token(e, q, id, lp, q->held.len - stop_prefix_tail(q, q->held.data, q->held.len));
}

static int has_penalty(const struct sampler_params *p)
{
    return (p->repetition_penalty != 1.0f && p->repetition_penalty > 0.0f) ||
           p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f;
}

/* Samples from logits (which may be modified in place) and handles it. */
static void on_logits(struct eng *e, struct eng_req *q, float *logits)
{
    struct slot *s = &e->slots[q->slot];
    if (q->state == RS_PREFILL) {
        q->state = RS_DECODE;
        clock_gettime(CLOCK_MONOTONIC, &q->t_first);
        q->ttft_ms = ms_between(&q->t_submit, &q->t_first);
    }
    /* Logprobs are reported from the raw row: keep a copy only when the
     * penalties are about to change it (filters never do). */
    e->cur_raw = logits;
    if (q->want_logprobs && has_penalty(&q->sp)) {
        memcpy(e->raw, logits, sizeof *logits * (size_t)e->n_vocab);
        e->cur_raw = e->raw;
    }
    sampler_penalize(e->smp, logits, &q->sp, s->tok, s->n_seq, q->n_prompt);
    int32_t id = sampler_sample(e->smp, logits, &q->sp, &q->rng);
    float lp = q->want_logprobs ? sampler_logprobs(e->smp, e->cur_raw, id, 0, NULL) : 0.0f;
    s->tok[s->n_seq++] = id;
    q->n_gen++;
    clock_gettime(CLOCK_MONOTONIC, &q->t_last);
    on_token(e, q, id, lp);
}

/* ---- the step ---------------------------------------------------------------- */

/* Adds q's next piece of work (a prefill chunk or its decode token). */
static void add_seq(struct eng *e, struct eng_req *q, int *n)
{
    struct slot *s = &e->slots[q->slot];
    int k = s->n_seq - s->n_kv;
    if (k > e->chunk)
        k = e->chunk;
    int last = s->n_kv + k == s->n_seq;
    e->seqs[*n] = (struct backend_seq){
        .slot = q->slot,
        .tokens = s->tok + s->n_kv,
        .n_tokens = k,
        .pos = s->n_kv,
        .logits = last ? e->logits + (size_t)*n * (size_t)e->lim.n_vocab : NULL,
    };
    e->seq_req[*n] = q;
    (*n)++;
}

/* Chooses the sequences of this step: every decode (up to max_batch, one
 * place kept for a prefill if any waits) plus one prefill chunk; with
 * max_batch 1 the running requests take turns. */
static int plan(struct eng *e)
{
    int ns = e->lim.n_slots, mb = e->lim.max_batch, n = 0, any_prefill = 0;
    struct eng_req *pf = NULL;
    for (int i = 0; i < ns; i++)
        if (e->slots[i].owner && e->slots[i].owner->state == RS_PREFILL)
            any_prefill = 1;
    int decode_room = mb > 1 && any_prefill ? mb - 1 : mb;
    for (int k = 0; k < ns; k++) {
        struct eng_req *q = e->slots[(e->rr + k) % ns].owner;
        if (!q)
            continue;
        if (mb == 1) {
            add_seq(e, q, &n);
            e->rr = (e->rr + k + 1) % ns; /* next turn starts after this one */
            return n;
        }
        if (q->state == RS_DECODE && n < decode_room)
            add_seq(e, q, &n);
        else if (q->state == RS_PREFILL && !pf)
            pf = q;
    }
    if (pf && n < mb)
        add_seq(e, pf, &n);
    e->rr = (e->rr + 1) % ns;
    return n;
}

/* Health is updated before the requests hear of the failure, so a client
 * that sees the error and asks /health gets the new state. */
static void backend_failed(struct eng *e, int n, enum ax_err rc, const char *msg)
{
    int ok = e->b->ops->healthy ? e->b->ops->healthy(e->b->ctx) : 1;
    ax_error("engine: backend %s failed: %s%s", e->b->ops->name, msg, ok ? "" : " (unhealthy)");
    pthread_mutex_lock(&e->mu);
    e->st.healthy = ok;
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < n; i++) {
        struct slot *s = &e->slots[e->seqs[i].slot];
        s->n_kv = s->n_seq = 0; /* the backend says touched slots are undefined */
        finish_plain(e, e->seq_req[i], ENG_FINISH_ERROR, rc, msg);
    }
}

static void step(struct eng *e)
{
    int n = plan(e);
    if (n == 0)
        return;
    char err[AX_ERRLEN] = "";
    enum ax_err rc = e->b->ops->forward(e->b->ctx, e->seqs, n, err);
    if (rc != AX_OK) {
        backend_failed(e, n, rc, err[0] ? err : ax_strerror(rc));
    } else {
        for (int i = 0; i < n; i++) {
            struct eng_req *q = e->seq_req[i];
            struct slot *s = &e->slots[e->seqs[i].slot];
            s->n_kv += e->seqs[i].n_tokens;
            s->last_used = ++e->tick;
            if (e->seqs[i].logits)
                on_logits(e, q, e->seqs[i].logits);
        }
    }
    int cached = 0;
    for (int i = 0; i < e->lim.n_slots; i++)
        cached += e->slots[i].n_kv > 0;
    pthread_mutex_lock(&e->mu);
    e->st.forward_calls++;
    e->st.slots_cached = cached;
    pthread_mutex_unlock(&e->mu);
}

/* ---- the engine thread ---------------------------------------------------- */

static int busy(const struct eng *e)
{
    if (e->wait_head)
        return 1;
    for (int i = 0; i < e->lim.n_slots; i++)
        if (e->slots[i].owner)
            return 1;
    return 0;
}

/* Moves newly submitted requests to the waiting list. Returns e->stop. */
static int take_incoming(struct eng *e)
{
    pthread_mutex_lock(&e->mu);
    while (!e->stop && !e->in_head && !busy(e))
        pthread_cond_wait(&e->cv, &e->mu);
    if (e->in_head) {
        if (e->wait_tail)
            e->wait_tail->next = e->in_head;
        else
            e->wait_head = e->in_head;
        e->wait_tail = e->in_tail;
        e->in_head = e->in_tail = NULL;
    }
    int stop = e->stop;
    pthread_mutex_unlock(&e->mu);
    return stop;
}

static void shutdown_all(struct eng *e)
{
    while (e->wait_head) {
        struct eng_req *q = e->wait_head;
        e->wait_head = q->next;
        finish_plain(e, q, ENG_FINISH_CANCEL, AX_ESHUTDOWN, "the server is stopping");
    }
    e->wait_tail = NULL;
    for (int i = 0; i < e->lim.n_slots; i++)
        if (e->slots[i].owner)
            finish_plain(e, e->slots[i].owner, ENG_FINISH_CANCEL, AX_ESHUTDOWN,
                         "the server is stopping");
}

static void *engine_main(void *arg)
{
    struct eng *e = arg;
    while (!take_incoming(e)) {
        reap(e);
        admit(e);
        step(e);
    }
    shutdown_all(e);
    return NULL;
}

/* ---- create/free ----------------------------------------------------------- */

static enum ax_err check_limits(const struct backend *b, const struct tok *t, char *err)
{
    const struct backend_limits *l = &b->lim;
    if (!b->ops || !b->ops->forward)
        return ax_fail(err, AX_EINVAL, "engine: backend has no forward function");
    if (l->n_ctx < 2 || l->n_slots < 1 || l->n_vocab < 1 || l->max_batch < 1)
        return ax_fail(err, AX_EINVAL,
                       "engine: backend limits n_ctx=%d n_slots=%d n_vocab=%d max_batch=%d are "
                       "not usable",
                       l->n_ctx, l->n_slots, l->n_vocab, l->max_batch);
    if (l->max_batch > 1 && !(b->ops->caps & BACKEND_CAP_BATCH))
        return ax_fail(err, AX_EINVAL, "engine: backend max_batch %d without the batch capability",
                       l->max_batch);
    if (!t)
        return ax_fail(err, AX_EINVAL, "engine: a tokenizer is required");
    return AX_OK;
}

static enum ax_err alloc_state(struct eng *e, char *err)
{
    const struct backend_limits *l = &e->lim;
    size_t rows;
    if (ax_mul_overflow((size_t)l->max_batch, (size_t)l->n_vocab, &rows))
        return ax_fail(err, AX_ENOMEM, "engine: logits buffer size overflows");
    e->slots = ax_calloc((size_t)l->n_slots, sizeof *e->slots);
    e->logits = ax_mallocarray(rows, sizeof *e->logits);
    e->raw = ax_mallocarray((size_t)l->n_vocab, sizeof *e->raw);
    e->seqs = ax_calloc((size_t)l->max_batch, sizeof *e->seqs);
    e->seq_req = ax_calloc((size_t)l->max_batch, sizeof(struct eng_req *));
    if (!e->slots || !e->logits || !e->raw || !e->seqs || !e->seq_req)
        return ax_fail(err, AX_ENOMEM, "engine: out of memory for %d slots x %d vocab",
                       l->n_slots, l->n_vocab);
    for (int i = 0; i < l->n_slots; i++)
        if (!(e->slots[i].tok = ax_mallocarray((size_t)l->n_ctx, sizeof(int32_t))))
            return ax_fail(err, AX_ENOMEM, "engine: out of memory for slot tokens (%d x %d)",
                           l->n_slots, l->n_ctx);
    return sampler_create(e->n_vocab, &e->smp, err);
}

static void free_state(struct eng *e)
{
    if (e->slots)
        for (int i = 0; i < e->lim.n_slots; i++)
            ax_free(e->slots[i].tok);
    ax_free(e->slots);
    ax_free(e->logits);
    ax_free(e->raw);
    ax_free(e->seqs);
    ax_free(e->seq_req);
    sampler_free(e->smp);
}

static void configure(struct eng *e, const struct eng_config *cfg)
{
    int tv = tok_vocab_size(e->t);
    e->n_vocab = tv > 0 && tv < e->lim.n_vocab ? tv : e->lim.n_vocab;
    e->max_prompt = e->lim.n_ctx - 1;
    if (cfg->max_prompt > 0 && cfg->max_prompt < e->max_prompt)
        e->max_prompt = cfg->max_prompt;
    e->chunk = e->lim.prefill_chunk > 0 ? e->lim.prefill_chunk : DEFAULT_CHUNK;
    for (int i = 0; i < cfg->n_eos && e->n_eos < (int)(sizeof e->eos / sizeof e->eos[0]); i++)
        e->eos[e->n_eos++] = cfg->eos[i];
    e->st.slots_total = e->lim.n_slots;
    e->st.queue_max = cfg->queue_max > 0 ? cfg->queue_max : 4 * e->lim.n_slots;
    e->st.healthy = e->b->ops->healthy ? e->b->ops->healthy(e->b->ctx) : 1;
}

enum ax_err eng_create(const struct eng_config *cfg, struct backend *b, const struct tok *t,
                       struct eng **out, char *err)
{
    *out = NULL;
    enum ax_err rc = check_limits(b, t, err);
    if (rc != AX_OK)
        return rc;
    struct eng *e = ax_calloc(1, sizeof *e);
    if (!e)
        return ax_fail(err, AX_ENOMEM, "engine: out of memory");
    e->magic = ENG_MAGIC;
    e->b = b;
    e->t = t;
    e->lim = b->lim;
    configure(e, cfg);
    if ((rc = alloc_state(e, err)) != AX_OK) {
        free_state(e);
        ax_free(e);
        return rc;
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
        free_state(e);
        ax_free(e);
        return ax_fail(err, AX_ENOMEM, "engine: cannot start the engine thread");
    }
    *out = e;
    return AX_OK;
}

void eng_free(struct eng *e)
{
    if (!e)
        return;
    assert(e->magic == ENG_MAGIC);
    pthread_mutex_lock(&e->mu);
    e->stop = 1;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    /* Requests submitted after the thread took its last look. */
    struct eng_req *q = e->in_head;
    e->in_head = NULL;
    while (q) {
        struct eng_req *next = q->next;
        q->next = NULL;
        q->state = RS_WAITING;
        finish_plain(e, q, ENG_FINISH_CANCEL, AX_ESHUTDOWN, "the server is stopping");
        q = next;
    }
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free_state(e);
    e->magic = 0;
    ax_free(e);
}

/* ---- stats ------------------------------------------------------------------ */

void eng_get_stats(struct eng *e, struct eng_stats *s)
{
    assert(e && e->magic == ENG_MAGIC);
    pthread_mutex_lock(&e->mu);
    *s = e->st;
    s->slots_used = (int)e->st.requests_running;
    pthread_mutex_unlock(&e->mu);
}

int eng_n_ctx(const struct eng *e) { return e->lim.n_ctx; }
