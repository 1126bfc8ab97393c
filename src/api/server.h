/* server.h - the OpenAI-compatible routes: glue between http/ (requests),
 * api/ (JSON), chat/ (template, output parser) and engine/ (generation).
 *
 * The server answers /health with 503 until api_server_attach hands it a
 * ready engine, so the HTTP socket can open before the model loads.
 * Routes: POST /v1/chat/completions, /v1/completions, /tokenize,
 * /detokenize, /apply-template; GET /v1/models[/{id}], /health, /metrics,
 * /props. /health and /v1/models are public; the rest need the API key
 * when one is set. */
#ifndef AX_API_SERVER_H
#define AX_API_SERVER_H

#include "http/http.h"
#include "util/err.h"

struct eng;
struct tok;
struct chat_template;
struct gen_defaults;
struct api_server;

struct api_server_config {
    const char *model_id; /* id listed by /v1/models and put in responses */
    const char *api_key;  /* NULL or "" = no authentication */
};

enum ax_err api_server_new(const struct api_server_config *cfg, struct api_server **out, char *err);
/* Hands over the loaded pieces (borrowed; they must outlive the server's
 * last request) and switches /health to ok. */
void api_server_attach(struct api_server *s, struct eng *e, const struct tok *t,
                       const struct chat_template *ct, const struct gen_defaults *gd);
/* From now on new generations get 503 and open streams end with an error
 * event and [DONE] (their engine requests are cancelled). */
void api_server_stopping(struct api_server *s);
/* Number of generations still in flight. */
int api_server_active(struct api_server *s);
void api_server_free(struct api_server *s);

/* The http_handler_fn to register with http_start (user = the server). */
struct http_response *api_server_handle(void *user, struct http_request *req);

#endif
