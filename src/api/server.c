/* server.c - routing, authentication and the small endpoints (/health,
 * /v1/models, /tokenize, /detokenize, /props). Generation lives in gen.c,
 * Prometheus text in metrics.c.
 *
 * Every error leaves as an OpenAI error object; unknown paths are 404,
 * known paths with the wrong method 405 (with Allow). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/server_int.h"
#include "tok/tok.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#define MAX_TOKENIZE_BYTES (4u << 20)

/* ---- responses ---------------------------------------------------------- */

struct http_response *api_json_response(int status, json_t *j)
{
    char *s = j ? api_dump(j) : NULL;
    json_decref(j);
    if (!s)
        return NULL;
    struct http_response *r = http_resp_new(status, "application/json", s, strlen(s));
    ax_free(s);
    return r;
}

struct http_response *api_error_response(const struct api_error *e)
{
    struct http_response *r = api_json_response(e->status, api_error_json(e));
    if (e->status == 503)
        http_resp_header(r, "Retry-After", "1");
    if (e->status == 401)
        http_resp_header(r, "WWW-Authenticate", "Bearer");
    return r;
}

static struct http_response *error_resp(int status, const char *type, const char *param,
                                        const char *msg)
{
    struct api_error e;
    api_fail(&e, AX_EINVAL, status, type, param, "%s", msg);
    return api_error_response(&e);
}

/* ---- lifecycle ---------------------------------------------------------- */

enum ax_err api_server_new(const struct api_server_config *cfg, struct api_server **out, char *err)
{
    struct api_server *s = ax_calloc(1, sizeof *s);
    if (!s)
        return ax_fail(err, AX_ENOMEM, "out of memory");
    s->model_id = ax_strdup(cfg->model_id ? cfg->model_id : "axserve");
    s->api_key = cfg->api_key && *cfg->api_key ? ax_strdup(cfg->api_key) : NULL;
    if (!s->model_id || (cfg->api_key && *cfg->api_key && !s->api_key)) {
        api_server_free(s);
        return ax_fail(err, AX_ENOMEM, "out of memory");
    }
    s->cfg = *cfg;
    s->cfg.model_id = s->model_id;
    s->cfg.api_key = s->api_key;
    s->created = (long)time(NULL);
    api_metrics_init(&s->m);
    *out = s;
    return AX_OK;
}

void api_server_attach(struct api_server *s, struct eng *e, const struct tok *t,
                       const struct chat_template *ct, const struct gen_defaults *gd)
{
    s->eng = e;
    s->tok = t;
    s->tmpl = ct;
    s->gd = gd;
    atomic_store(&s->ready, 1);
}

void api_server_stopping(struct api_server *s)
{
    atomic_store(&s->stopping, 1);
}
int api_server_active(struct api_server *s)
{
    return atomic_load(&s->active);
}

void api_server_free(struct api_server *s)
{
    if (!s)
        return;
    api_metrics_free(&s->m);
    ax_free(s->model_id);
    ax_free(s->api_key);
    ax_free(s);
}

/* ---- authentication ----------------------------------------------------- */

/* Compares without an early exit so the time taken does not reveal how
 * much of the key matched. */
static int key_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return d == 0;
}

static int authorized(const struct api_server *s, struct http_request *r)
{
    if (!s->api_key)
        return 1;
    const char *h = http_header(r, "Authorization");
    if (h && !strncasecmp(h, "Bearer ", 7)) {
        h += 7;
        while (*h == ' ')
            h++;
        if (key_equal(h, s->api_key))
            return 1;
    }
    h = http_header(r, "X-Api-Key");
    return h && key_equal(h, s->api_key);
}

/* ---- small endpoints ---------------------------------------------------- */

static struct http_response *health(struct api_server *s, struct http_request *r)
{
    (void)r;
    if (atomic_load(&s->stopping))
        return api_json_response(503, json_pack("{s:s}", "status", "stopping"));
    if (!atomic_load(&s->ready))
        return http_resp_header(api_json_response(503, json_pack("{s:s}", "status", "loading")),
                                "Retry-After", "1");
    return api_json_response(200, json_pack("{s:s}", "status", "ok"));
}

static json_t *model_obj(const struct api_server *s)
{
    return json_pack("{s:s, s:s, s:I, s:s}", "id", s->model_id, "object", "model", "created",
                     (json_int_t)s->created, "owned_by", "axserve");
}

static struct http_response *models(struct api_server *s, struct http_request *r)
{
    const char *p = http_path(r);
    const char *id = !strncmp(p, "/v1/models/", 11) ? p + 11
                     : !strncmp(p, "/models/", 8)   ? p + 8
                                                    : NULL;
    if (id && *id) {
        if (strcmp(id, s->model_id) != 0)
            return error_resp(404, "not_found_error", "model", "no such model; see /v1/models");
        return api_json_response(200, model_obj(s));
    }
    return api_json_response(200,
                             json_pack("{s:s, s:[o]}", "object", "list", "data", model_obj(s)));
}

static struct http_response *not_ready(struct api_server *s)
{
    struct api_error e;
    if (atomic_load(&s->stopping))
        api_fail(&e, AX_ESHUTDOWN, 503, "unavailable_error", NULL, "the server is shutting down");
    else
        api_fail(&e, AX_EBUSY, 503, "unavailable_error", NULL, "the model is still loading");
    return api_error_response(&e);
}

/* Parses the body as a JSON object; on failure returns the 400 response. */
static json_t *body_object(struct http_request *r, struct http_response **fail)
{
    size_t n;
    const char *b = http_body(r, &n);
    if (!api_utf8_valid(b, n)) {
        *fail = error_resp(400, "invalid_request_error", NULL, "request body is not valid UTF-8");
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(b, n, 0, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        *fail =
            error_resp(400, "invalid_request_error", NULL, "request body must be a JSON object");
        return NULL;
    }
    return j;
}

/* llama.cpp's shapes: {content, add_special?, with_pieces?} -> {tokens}. */
static struct http_response *tokenize(struct api_server *s, struct http_request *r)
{
    struct http_response *fail = NULL;
    json_t *j = body_object(r, &fail);
    if (!j)
        return fail;
    json_t *c = json_object_get(j, "content");
    json_t *wp = json_object_get(j, "with_pieces");
    if (!json_is_string(c) || (wp && !json_is_boolean(wp)) ||
        json_string_length(c) > MAX_TOKENIZE_BYTES) {
        json_decref(j);
        return error_resp(400, "invalid_request_error", "content",
                          "'content' must be a string (at most 4 MiB); 'with_pieces' a boolean");
    }
    /* add_special: Qwen's tokenizer adds no BOS, so it changes nothing. */
    size_t len = json_string_length(c);
    size_t cap = tok_max_ids(len);
    int32_t *ids = ax_mallocarray(cap, sizeof *ids);
    size_t n = 0;
    char err[AX_ERRLEN] = "";
    enum ax_err rc =
        ids ? tok_encode_cap(s->tok, json_string_value(c), len, ids, cap, &n, err) : AX_ENOMEM;
    json_t *arr = rc ? NULL : json_array();
    for (size_t i = 0; arr && i < n; i++) {
        if (!json_is_true(wp)) {
            json_array_append_new(arr, json_integer(ids[i]));
            continue;
        }
        size_t bl;
        const char *bytes = tok_bytes(s->tok, ids[i], &bl);
        json_t *piece;
        if (api_utf8_valid(bytes, bl)) {
            piece = json_stringn(bytes, bl);
        } else { /* a partial UTF-8 sequence: its bytes, as llama.cpp does */
            piece = json_array();
            for (size_t k = 0; k < bl; k++)
                json_array_append_new(piece, json_integer((unsigned char)bytes[k]));
        }
        json_array_append_new(arr, json_pack("{s:i, s:o}", "id", ids[i], "piece", piece));
    }
    ax_free(ids);
    json_decref(j);
    if (rc) {
        struct api_error e;
        api_error_from(&e, rc, err);
        return api_error_response(&e);
    }
    return api_json_response(200, json_pack("{s:o}", "tokens", arr));
}

static struct http_response *detokenize(struct api_server *s, struct http_request *r)
{
    struct http_response *fail = NULL;
    json_t *j = body_object(r, &fail);
    if (!j)
        return fail;
    json_t *t = json_object_get(j, "tokens");
    size_t n = json_array_size(t);
    int32_t *ids = ax_mallocarray(n + 1, sizeof *ids);
    int bad = !json_is_array(t) || !ids;
    for (size_t i = 0; !bad && i < n; i++) {
        json_t *v = json_array_get(t, i);
        json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
        bad = x < 0 || x >= tok_vocab_size(s->tok);
        ids[i] = (int32_t)x;
    }
    json_decref(j);
    if (bad) {
        ax_free(ids);
        return error_resp(400, "invalid_request_error", "tokens",
                          "'tokens' must be an array of token ids within the vocabulary");
    }
    struct ax_buf out;
    ax_buf_init(&out, (size_t)64 << 20);
    char err[AX_ERRLEN] = "";
    enum ax_err rc = tok_decode(s->tok, ids, n, 0, &out, err);
    ax_free(ids);
    struct http_response *resp;
    if (rc) {
        struct api_error e;
        api_error_from(&e, rc, err);
        resp = api_error_response(&e);
    } else {
        resp =
            api_json_response(200, json_pack("{s:o}", "content",
                                             api_lossy_string(out.data ? out.data : "", out.len)));
    }
    ax_buf_free(&out);
    return resp;
}

static struct http_response *props(struct api_server *s, struct http_request *r)
{
    (void)r;
    struct eng_stats st;
    eng_get_stats(s->eng, &st);
    return api_json_response(200,
                             json_pack("{s:s, s:i, s:i, s:{s:i}}", "model", s->model_id,
                                       "total_slots", st.slots_total, "n_ctx", eng_n_ctx(s->eng),
                                       "default_generation_settings", "n_ctx", eng_n_ctx(s->eng)));
}

/* ---- routing ------------------------------------------------------------ */

enum route_flags { R_PUBLIC = 1, R_NEEDS_MODEL = 2, R_PREFIX = 4 };

struct route {
    const char *path;
    const char *method;
    unsigned flags;
    struct http_response *(*fn)(struct api_server *s, struct http_request *r);
};

static struct http_response *chat(struct api_server *s, struct http_request *r)
{
    return api_gen_handle(s, r, API_CHAT);
}

static struct http_response *completion(struct api_server *s, struct http_request *r)
{
    return api_gen_handle(s, r, API_COMPLETION);
}

static const struct route routes[] = {
    {"/health", "GET", R_PUBLIC, health},
    {"/v1/health", "GET", R_PUBLIC, health},
    {"/v1/models", "GET", R_PUBLIC, models},
    {"/models", "GET", R_PUBLIC, models},
    {"/v1/models/", "GET", R_PUBLIC | R_PREFIX, models},
    {"/models/", "GET", R_PUBLIC | R_PREFIX, models},
    {"/v1/chat/completions", "POST", R_NEEDS_MODEL, chat},
    {"/chat/completions", "POST", R_NEEDS_MODEL, chat},
    {"/v1/completions", "POST", R_NEEDS_MODEL, completion},
    {"/completions", "POST", R_NEEDS_MODEL, completion},
    {"/tokenize", "POST", R_NEEDS_MODEL, tokenize},
    {"/detokenize", "POST", R_NEEDS_MODEL, detokenize},
    {"/apply-template", "POST", R_NEEDS_MODEL, api_apply_template},
    {"/props", "GET", R_NEEDS_MODEL, props},
    {"/metrics", "GET", 0, api_metrics_response},
};

static int path_match(const struct route *rt, const char *path)
{
    if (rt->flags & R_PREFIX)
        return !strncmp(path, rt->path, strlen(rt->path));
    return !strcmp(path, rt->path);
}

static struct http_response *dispatch(struct api_server *s, struct http_request *r)
{
    const char *path = http_path(r), *method = http_method(r);
    const struct route *hit = NULL;
    int path_known = 0;
    char allow[64] = "";
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!path_match(&routes[i], path))
            continue;
        path_known = 1;
        if (!strcmp(method, routes[i].method) ||
            (!strcmp(method, "HEAD") && !strcmp(routes[i].method, "GET"))) {
            hit = &routes[i];
            break;
        }
        snprintf(allow, sizeof allow, "%s, OPTIONS", routes[i].method);
    }
    if (!hit && path_known)
        return http_resp_header(
            error_resp(405, "invalid_request_error", NULL, "method not allowed on this path"),
            "Allow", allow);
    if (!hit)
        return error_resp(404, "not_found_error", NULL, "no such route");
    if (!(hit->flags & R_PUBLIC) && !authorized(s, r))
        return error_resp(401, "authentication_error", NULL,
                          "invalid or missing API key (send 'Authorization: Bearer KEY' or "
                          "'X-Api-Key: KEY')");
    if (http_body_too_large(r))
        return error_resp(413, "invalid_request_error", NULL, "request body is too large");
    if ((hit->flags & R_NEEDS_MODEL) && (!atomic_load(&s->ready) || atomic_load(&s->stopping)))
        return not_ready(s);
    return hit->fn(s, r);
}

struct http_response *api_server_handle(void *user, struct http_request *r)
{
    struct api_server *s = user;
    struct http_response *resp = dispatch(s, r);
    /* Status of streams is counted as 200 when they start. */
    api_metrics_status(&s->m, resp ? http_resp_status(resp) : 500);
    return resp;
}
