/* engine.h - scheduling, KV slots, sampling and stopping; the one place
 * that drives a backend.
 *
 * HTTP threads call eng_submit (which tokenizes and checks the context
 * before anything is queued) and then read events with eng_next; one
 * engine thread per backend runs prefill and decode. The engine never sees
 * JSON; it sees prompt text or token ids and returns text pieces.
 *
 * Slot reuse: the prompt's tokens are matched against each free slot's
 * tokens (longest common prefix, LCP). A slot the prompt extends, or whose
 * content it shares at least half of, is continued (longest LCP wins);
 * otherwise an empty slot, otherwise the least recently used one (still
 * continued at its LCP). Everything after the LCP is recomputed; at least
 * the last prompt token always is, for its logits. No session ids.
 *
 * Scheduling: with BACKEND_CAP_BATCH, each step is one forward call with a
 * decode token of every running sequence plus one prefill chunk
 * (limits.prefill_chunk) of a newcomer; without it, running requests take
 * turns (one token or one chunk each). Cancellation is checked per step.
 *
 * Events: each request has its own queue; the engine never blocks on a
 * slow reader - the queue grows (at most max_tokens + 1 events). */
#ifndef AX_ENGINE_ENGINE_H
#define AX_ENGINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define ENG_MAX_STOP 8      /* stop strings per request */
#define ENG_MAX_STOP_LEN 512 /* bytes per stop string (1..this) */
#define ENG_MAX_TOP 20      /* top_logprobs ceiling */

struct backend;
struct tok;
struct eng;
struct eng_req;

struct sampler_params {
    float temperature;        /* 0 = argmax */
    float top_p;              /* 1 = off, 0 = the most likely token only */
    float min_p;              /* 0 = off */
    int top_k;                /* 0 = off */
    float presence_penalty;   /* 0 = off */
    float frequency_penalty;  /* 0 = off */
    float repetition_penalty; /* 1 = off */
    uint64_t seed;            /* used when has_seed */
    int has_seed;
};

struct gen_request {
    /* Exactly one of prompt_text / prompt_ids is set. */
    const char *prompt_text; /* UTF-8, borrowed until eng_submit returns */
    size_t prompt_len;
    const int32_t *prompt_ids;
    size_t n_prompt_ids;

    int max_tokens;          /* < 0 = up to the context limit */
    struct sampler_params sp;
    const char *stop[ENG_MAX_STOP]; /* stop strings, never emitted */
    int n_stop;
    int ignore_eos;          /* keep going past end tokens (benchmarks) */
    int top_logprobs;        /* 0..ENG_MAX_TOP alternatives per token */
    int want_logprobs;       /* fill eng_event.logprob */
};

enum eng_finish { ENG_FINISH_NONE = 0, ENG_FINISH_STOP, ENG_FINISH_LENGTH, ENG_FINISH_CANCEL,
                  ENG_FINISH_ERROR };

enum eng_event_kind { ENG_EV_TOKEN = 1, ENG_EV_DONE = 2 };

struct eng_top {
    int32_t id;
    float logprob;
};

/* One event. ENG_EV_TOKEN: one sampled token and the text it releases
 * (may be empty while UTF-8 or a possible stop string is held back; the
 * token that completes a stop string carries the text before it, and the
 * stop string itself is never emitted). End tokens (eos) get no TOKEN event
 * but count in completion_tokens.
 * ENG_EV_DONE: the last event; finish, usage and timings are set, and on
 * ENG_FINISH_ERROR / ENG_FINISH_CANCEL so are code and message (cancel:
 * AX_ECANCELED, or AX_ESHUTDOWN from eng_free). DONE may also carry text:
 * held-back text released at the end (e.g. "\n" held for a "\n\n" stop,
 * then eos) - append it like a TOKEN's text. Pointers are borrowed until the
 * next eng_next on the same request.
 * logprob/top are log-softmax of the raw logits (before penalties,
 * temperature and filters), set when want_logprobs / top_logprobs ask. */
struct eng_event {
    enum eng_event_kind kind;
    int32_t token;
    const char *text;
    size_t text_len;
    float logprob;
    int n_top;
    struct eng_top top[ENG_MAX_TOP];
    enum eng_finish finish;
    int prompt_tokens, cached_tokens, completion_tokens;
    double ttft_ms;   /* DONE: submit -> first token sampled (-1 if none) */
    double decode_ms; /* DONE: first token -> last token */
    enum ax_err code;
    char message[AX_ERRLEN];
};

struct eng_config {
    int queue_max;    /* requests waiting + running before AX_EBUSY (0 = 4 * slots) */
    int max_prompt;   /* 0 = n_ctx - 1 (the backend context less one answer token) */
    const int32_t *eos; /* end tokens */
    int n_eos;
};

/* Histogram bucket upper bounds (Prometheus "le"); the last bucket is
 * +Inf. Buckets in eng_stats are cumulative counts. */
#define ENG_TTFT_BUCKETS 12
#define ENG_TPS_BUCKETS 10
#define ENG_TTFT_BOUNDS_MS {10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, -1}
#define ENG_TPS_BOUNDS {1, 2, 5, 10, 20, 50, 100, 200, 500, -1}

struct eng_stats {
    long requests_total;     /* accepted by eng_submit */
    long requests_running;   /* holding a slot now */
    long requests_queued;    /* accepted, waiting for a slot */
    long requests_rejected;  /* AX_EBUSY from eng_submit */
    long requests_cancelled; /* finished with ENG_FINISH_CANCEL */
    long requests_failed;    /* finished with ENG_FINISH_ERROR */
    long prompt_tokens_total, cached_tokens_total, completion_tokens_total;
    long forward_calls;      /* backend forward calls */
    int slots_total, slots_used; /* used = held by a running request */
    int slots_cached;        /* slots with reusable tokens (free or not) */
    int queue_max;
    int healthy;             /* 0 once the backend's healthy() says so */
    /* Time to first token (ms), per request that produced a token. */
    long ttft_bucket[ENG_TTFT_BUCKETS];
    double ttft_sum_ms;
    long ttft_count;
    /* Decode speed (tokens/s after the first), per request with >= 2 tokens. */
    long tps_bucket[ENG_TPS_BUCKETS];
    double tps_sum;
    long tps_count;
};

/* Details of an eng_submit, valid on AX_OK and on AX_ECONTEXT. */
struct eng_submit_info {
    int n_prompt_tokens; /* tokens in the prompt (0 if tokenizing failed) */
    int n_ctx;           /* backend context per slot */
    int max_prompt;      /* largest prompt accepted: min(n_ctx - 1, max_prompt) */
    int max_tokens;      /* effective max_tokens (clamped to the context) */
};

enum ax_err eng_create(const struct eng_config *cfg, struct backend *b, const struct tok *t,
                       struct eng **out, char *err);
/* Cancels everything in flight, joins the engine thread, frees. */
void eng_free(struct eng *e);

/* Tokenizes and validates r, then queues it. AX_ECONTEXT (message with
 * the counts) if the prompt does not fit, AX_EBUSY if the queue is full.
 * OUT *out valid on AX_OK; free with eng_req_free. */
enum ax_err eng_submit(struct eng *e, const struct gen_request *r, struct eng_req **out,
                       char *err);
/* eng_submit that also fills *info (may be NULL), on AX_ECONTEXT too. */
enum ax_err eng_submit_ex(struct eng *e, const struct gen_request *r, struct eng_req **out,
                          struct eng_submit_info *info, char *err);
/* Blocks up to timeout_ms (< 0 = forever) for the next event. AX_EBUSY on
 * timeout; after ENG_EV_DONE returns AX_ENOTFOUND. */
enum ax_err eng_next(struct eng_req *q, struct eng_event *ev, int timeout_ms);
/* Asks the engine to stop this request (within one token or chunk). */
void eng_cancel(struct eng_req *q);
/* Cancels if still running and frees. Accepts NULL. */
void eng_req_free(struct eng_req *q);
/* Number of prompt tokens of a submitted request. */
int eng_req_prompt_tokens(const struct eng_req *q);

void eng_get_stats(struct eng *e, struct eng_stats *s);
int eng_n_ctx(const struct eng *e);

#endif
