/* http.h - a small HTTP/1.1 server over libmicrohttpd.
 *
 * One thread per connection (libmicrohttpd's THREAD_PER_CONNECTION mode),
 * so a handler may block: it parses, submits work and waits for results.
 * This layer owns: the listening socket (host, port 0 = any free port),
 * the connection limit and idle timeout, request bodies under a ceiling
 * (a larger body is flagged, never truncated), CORS headers and OPTIONS
 * preflight, and detecting a client that went away. It knows nothing
 * about JSON, routes or authentication: the handler decides everything
 * else and returns a response.
 *
 * Streaming responses (Server-Sent Events) come from a read callback that
 * runs on the connection's thread and may block until it has bytes. */
#ifndef AX_HTTP_HTTP_H
#define AX_HTTP_HTTP_H

#include <stddef.h>
#include <sys/types.h>

#include "util/err.h"

struct http_server;
struct http_request;
struct http_response;

/* Called once per request, after the whole body arrived (or was found too
 * large). Returns the response to send; NULL sends a bare 500. Runs on the
 * connection's thread. */
typedef struct http_response *http_handler_fn(void *user, struct http_request *req);

struct http_config {
    const char *host;        /* address to bind, e.g. "127.0.0.1" or "::" */
    int port;                /* 0 = any free port (see http_port) */
    size_t max_body;         /* bytes; larger bodies set http_body_too_large */
    int max_connections;     /* simultaneous connections */
    int timeout_s;           /* idle connection timeout, seconds (0 = none) */
    const char *cors_origin; /* Access-Control-Allow-Origin value; NULL = no CORS */
    http_handler_fn *handler;
    void *user;
};

enum ax_err http_start(const struct http_config *cfg, struct http_server **out, char *err);
/* The port actually bound (useful with port 0). */
int http_port(const struct http_server *s);
/* Stops accepting new connections; open ones continue. */
void http_quiesce(struct http_server *s);
/* Closes every connection, joins all threads and frees. Accepts NULL. */
void http_stop(struct http_server *s);

/* ---- the request (borrowed: valid during the handler and inside a
 * stream's read callback, but no longer in its done callback) */
const char *http_method(const struct http_request *r);
const char *http_path(const struct http_request *r);
/* Header value or NULL (case-insensitive name). */
const char *http_header(const struct http_request *r, const char *name);
/* The body, NUL-terminated (the NUL is not counted). */
const char *http_body(const struct http_request *r, size_t *len);
int http_body_too_large(const struct http_request *r);
/* 1 if the peer has closed its side of the connection. Cheap (one poll). */
int http_client_gone(const struct http_request *r);

/* ---- responses */
/* Copies body. */
struct http_response *http_resp_new(int status, const char *content_type, const char *body,
                                    size_t len);
int http_resp_status(const struct http_response *r);
/* Adds a header (copied). Returns r for chaining; NULL-safe. */
struct http_response *http_resp_header(struct http_response *r, const char *name,
                                       const char *value);

/* Streaming body. read fills buf with up to max bytes and returns how
 * many (> 0), 0 at the regular end, or -1 to abort the connection; it may
 * block. done is called exactly once when the response is finished or the
 * connection dies (client_ok = 0 if the client did not get everything). */
typedef ssize_t http_read_fn(void *user, char *buf, size_t max);
typedef void http_done_fn(void *user, int client_ok);
struct http_response *http_resp_stream(int status, const char *content_type, http_read_fn *read,
                                       http_done_fn *done, void *user);

#endif
