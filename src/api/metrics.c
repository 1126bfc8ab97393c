/* metrics.c - GET /metrics in the Prometheus text exposition format
 * (version 0.0.4): counters, gauges and two histograms (time to first
 * token, per-request decode rate). Counters are updated under one mutex
 * at request boundaries only, never per token. */
#include <stdio.h>
#include <string.h>

#include "api/server_int.h"
#include "util/buf.h"
#include "util/mem.h"

static const double ttft_le[API_TTFT_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                 0.5,   1,    2.5,   5,    10,  30};
static const double tps_le[API_TPS_BUCKETS] = {1,   2,   5,   10,   20,   50,
                                               100, 200, 500, 1000, 2000, 5000};

void api_metrics_init(struct api_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    m->ttft.le = ttft_le;
    m->ttft.n = API_TTFT_BUCKETS;
    m->tps.le = tps_le;
    m->tps.n = API_TPS_BUCKETS;
}

void api_metrics_free(struct api_metrics *m)
{
    pthread_mutex_destroy(&m->mu);
}

static void hist_add(struct api_hist *h, double v)
{
    int i = 0;
    while (i < h->n && v > h->le[i])
        i++;
    h->count[i]++;
    h->sum += v;
    h->total++;
}

void api_metrics_status(struct api_metrics *m, int status)
{
    int k = status / 100;
    pthread_mutex_lock(&m->mu);
    m->http_by_status[k >= 1 && k <= 5 ? k : 0]++;
    pthread_mutex_unlock(&m->mu);
}

void api_metrics_gen_end(struct api_metrics *m, enum eng_finish f, int completion, double ttft_s,
                         double tps, int client_gone)
{
    pthread_mutex_lock(&m->mu);
    m->gen_started++;
    if ((unsigned)f < 5)
        m->gen_finished[f]++;
    m->completion_tokens += completion > 0 ? completion : 0;
    m->client_gone += client_gone != 0;
    if (ttft_s >= 0)
        hist_add(&m->ttft, ttft_s);
    if (tps > 0)
        hist_add(&m->tps, tps);
    pthread_mutex_unlock(&m->mu);
}

void api_metrics_reject(struct api_metrics *m, enum ax_err code)
{
    pthread_mutex_lock(&m->mu);
    if (code == AX_EBUSY)
        m->rejected_busy++;
    else if (code == AX_ECONTEXT)
        m->rejected_context++;
    else
        m->rejected_invalid++;
    pthread_mutex_unlock(&m->mu);
}

static void hist_print(struct ax_buf *b, const char *name, const char *help,
                       const struct api_hist *h)
{
    ax_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    long cum = 0;
    for (int i = 0; i < h->n; i++) {
        cum += h->count[i];
        ax_buf_printf(b, "%s_bucket{le=\"%g\"} %ld\n", name, h->le[i], cum);
    }
    ax_buf_printf(b, "%s_bucket{le=\"+Inf\"} %ld\n%s_sum %.6f\n%s_count %ld\n", name, h->total,
                  name, h->sum, name, h->total);
}

static void metric(struct ax_buf *b, const char *name, const char *type, const char *help, long v)
{
    ax_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %ld\n", name, help, name, type, name, v);
}

struct http_response *api_metrics_response(struct api_server *s, struct http_request *r)
{
    (void)r;
    struct eng_stats st;
    memset(&st, 0, sizeof st);
    if (atomic_load(&s->ready))
        eng_get_stats(s->eng, &st);
    struct ax_buf b;
    ax_buf_init(&b, 1 << 20);
    struct api_metrics *m = &s->m;
    pthread_mutex_lock(&m->mu);
    ax_buf_printf(&b, "# HELP axserve_http_responses_total HTTP responses by status class\n"
                      "# TYPE axserve_http_responses_total counter\n");
    for (int k = 1; k <= 5; k++)
        ax_buf_printf(&b, "axserve_http_responses_total{code=\"%dxx\"} %ld\n", k,
                      m->http_by_status[k]);
    static const char *fin[5] = {"none", "stop", "length", "cancel", "error"};
    ax_buf_printf(&b, "# HELP axserve_requests_finished_total generations by finish reason\n"
                      "# TYPE axserve_requests_finished_total counter\n");
    for (int i = 1; i < 5; i++)
        ax_buf_printf(&b, "axserve_requests_finished_total{reason=\"%s\"} %ld\n", fin[i],
                      m->gen_finished[i]);
    ax_buf_printf(&b,
                  "# HELP axserve_requests_rejected_total requests refused before generation\n"
                  "# TYPE axserve_requests_rejected_total counter\n"
                  "axserve_requests_rejected_total{reason=\"busy\"} %ld\n"
                  "axserve_requests_rejected_total{reason=\"context\"} %ld\n"
                  "axserve_requests_rejected_total{reason=\"invalid\"} %ld\n",
                  m->rejected_busy, m->rejected_context, m->rejected_invalid);
    metric(&b, "axserve_requests_total", "counter", "generations completed or cancelled",
           m->gen_started);
    metric(&b, "axserve_client_disconnects_total", "counter",
           "generations whose client left before the end", m->client_gone);
    metric(&b, "axserve_completion_tokens_total", "counter",
           "tokens generated (counted at each request's end)", m->completion_tokens);
    hist_print(&b, "axserve_time_to_first_token_seconds", "time from submit to the first token",
               &m->ttft);
    hist_print(&b, "axserve_decode_tokens_per_second", "decode rate of each request", &m->tps);
    pthread_mutex_unlock(&m->mu);
    metric(&b, "axserve_engine_requests_total", "counter", "requests accepted by the engine",
           st.requests_total);
    metric(&b, "axserve_requests_running", "gauge", "requests being generated",
           st.requests_running);
    metric(&b, "axserve_requests_queued", "gauge", "requests waiting for a slot",
           st.requests_queued);
    metric(&b, "axserve_prompt_tokens_total", "counter", "prompt tokens processed or reused",
           st.prompt_tokens_total);
    metric(&b, "axserve_cached_tokens_total", "counter", "prompt tokens reused from a KV slot",
           st.cached_tokens_total);
    metric(&b, "axserve_engine_completion_tokens_total", "counter",
           "tokens generated by the engine", st.completion_tokens_total);
    metric(&b, "axserve_engine_cancelled_total", "counter", "engine requests ended by a cancel",
           st.requests_cancelled);
    metric(&b, "axserve_engine_failed_total", "counter", "engine requests ended by an error",
           st.requests_failed);
    metric(&b, "axserve_forward_calls_total", "counter", "backend forward calls", st.forward_calls);
    metric(&b, "axserve_queue_max", "gauge", "requests waiting + running before 503", st.queue_max);
    metric(&b, "axserve_kv_slots_cached", "gauge", "KV slots holding reusable tokens",
           st.slots_cached);
    metric(&b, "axserve_kv_slots_total", "gauge", "KV cache slots", st.slots_total);
    metric(&b, "axserve_kv_slots_used", "gauge", "KV cache slots holding a running request",
           st.slots_used);
    metric(&b, "axserve_ready", "gauge", "1 once the model is loaded", atomic_load(&s->ready));
    struct http_response *resp =
        http_resp_new(200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len);
    ax_buf_free(&b);
    return resp;
}
