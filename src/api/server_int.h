/* server_int.h - private to api/server.c, api/gen.c and api/metrics.c. */
#ifndef AX_API_SERVER_INT_H
#define AX_API_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "api/api.h"
#include "api/server.h"
#include "engine/engine.h"
#include "http/http.h"

#define API_TTFT_BUCKETS 12
#define API_TPS_BUCKETS 12

struct api_hist {
    const double *le; /* upper bounds, ascending */
    int n;
    long count[16]; /* per bucket, not cumulative; [n] = +Inf */
    double sum;
    long total;
};

struct api_metrics {
    pthread_mutex_t mu;
    long http_by_status[6]; /* 1xx..5xx (index status/100), [0] other */
    long gen_started;       /* submitted to the engine */
    long gen_finished[5];   /* by enum eng_finish */
    long rejected_busy, rejected_context, rejected_invalid;
    long client_gone;       /* clients that left before the end */
    long completion_tokens; /* as reported at each request's end */
    struct api_hist ttft;   /* seconds */
    struct api_hist tps;    /* decode tokens per second, per request */
};

struct api_server {
    struct api_server_config cfg;
    char *model_id, *api_key;
    long created;
    atomic_int ready, stopping, active;
    struct eng *eng;
    const struct tok *tok;
    const struct chat_template *tmpl;
    const struct gen_defaults *gd;
    struct api_metrics m;
};

/* gen.c: /v1/chat/completions, /v1/completions, /apply-template */
struct http_response *api_gen_handle(struct api_server *s, struct http_request *hr,
                                     enum api_kind kind);
struct http_response *api_apply_template(struct api_server *s, struct http_request *hr);

/* server.c helpers shared with gen.c */
struct http_response *api_json_response(int status, json_t *j); /* steals j */
struct http_response *api_error_response(const struct api_error *e);

/* metrics.c */
void api_metrics_init(struct api_metrics *m);
void api_metrics_free(struct api_metrics *m);
void api_metrics_status(struct api_metrics *m, int status);
void api_metrics_gen_end(struct api_metrics *m, enum eng_finish f, int completion, double ttft_s,
                         double tps, int client_gone);
void api_metrics_reject(struct api_metrics *m, enum ax_err code);
struct http_response *api_metrics_response(struct api_server *s, struct http_request *r);

double api_now(void); /* monotonic seconds */

#endif
