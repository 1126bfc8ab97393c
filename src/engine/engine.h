/* engine.h - scheduling, KV slots, sampling and stopping; the one place
 * that drives a backend.
 *
 * HTTP threads call eng_submit (which tokenizes and checks the context
 * before anything is queued) and then read events with eng_next; one
 * engine thread per backend runs prefill and decode. The engine never sees
 * JSON; it sees prompt text or token ids and returns text pieces.
 *
 * Slot reuse: the prompt's tokens are matched against each slot's tokens
 * (longest common prefix); the best match is continued, otherwise the
 * least recently used slot is taken. No session ids. */
#ifndef AX_ENGINE_ENGINE_H
#define AX_ENGINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define ENG_MAX_STOP 8      /* stop strings per request */
#define ENG_MAX_TOP 20      /* top_logprobs ceiling */

struct backend;
struct tok;
struct eng;
struct eng_req;

struct sampler_params {
    float temperature;        /* 0 = argmax */
    float top_p;              /* 1 = off */
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

/* One event. ENG_EV_TOKEN: one sampled token and the text it completes
 * (may be empty while UTF-8 or a possible stop string is held back).
 * ENG_EV_DONE: the last event; finish and usage are set, and on
 * ENG_FINISH_ERROR so are code and message. Pointers are borrowed until the
 * next eng_next on the same request. */
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
    enum ax_err code;
    char message[AX_ERRLEN];
};

struct eng_config {
    int queue_max;    /* requests waiting + running before AX_EBUSY */
    int max_prompt;   /* 0 = backend n_ctx */
    const int32_t *eos; /* end tokens */
    int n_eos;
};

struct eng_stats {
    long requests_total, requests_running, requests_queued;
    long prompt_tokens_total, cached_tokens_total, completion_tokens_total;
    int slots_total, slots_used;
    int healthy;
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
