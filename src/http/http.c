/* http.c - the libmicrohttpd glue behind http.h: socket, body collection
 * under a ceiling, CORS, streaming responses, disconnect detection.
 *
 * libmicrohttpd calls the access handler several times per request: first
 * with no body (we allocate the per-request state), then once per body
 * fragment, then once with nothing left (we call the user's handler). The
 * completion notifier frees the per-request state. */
#include "http/http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

struct http_server {
    struct MHD_Daemon *d;
    int listen_fd;
    int port;
    int quiesced;
    struct http_config cfg;
    char *cors_origin;
};

struct http_request {
    struct MHD_Connection *conn;
    const char *method, *path; /* borrowed from libmicrohttpd */
    struct ax_buf body;
    int too_large;
    size_t dropped; /* body bytes discarded after the limit */
};

struct http_response {
    struct MHD_Response *r;
    int status;
};

/* ---- listening socket ------------------------------------------------ */

static enum ax_err open_listener(const char *host, int port, int *fd_out, int *port_out, char *err)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc)
        return ax_fail(err, AX_EINVAL, "--host %s: %s", host, gai_strerror(rc));
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return ax_fail(err, AX_EIO, "cannot listen on %s:%d: %s (pick another --port)", host, port,
                       strerror(saved ? saved : EADDRNOTAVAIL));
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            *port_out = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            *port_out = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    *fd_out = fd;
    return AX_OK;
}

/* ---- responses ------------------------------------------------------- */

struct http_response *http_resp_new(int status, const char *content_type, const char *body,
                                    size_t len)
{
    struct http_response *h = ax_calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!h->r) {
        ax_free(h);
        return NULL;
    }
    h->status = status;
    if (content_type)
        MHD_add_response_header(h->r, "Content-Type", content_type);
    return h;
}

int http_resp_status(const struct http_response *r)
{
    return r->status;
}

struct http_response *http_resp_header(struct http_response *r, const char *name, const char *value)
{
    if (r)
        MHD_add_response_header(r->r, name, value);
    return r;
}

struct stream {
    http_read_fn *read;
    http_done_fn *done;
    void *user;
    int ended; /* read returned the regular end */
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct stream *s = cls;
    ssize_t n = s->read(s->user, buf, max);
    if (n > 0)
        return n;
    if (n == 0) {
        s->ended = 1;
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    s->done(s->user, s->ended);
    ax_free(s);
}

struct http_response *http_resp_stream(int status, const char *content_type, http_read_fn *read,
                                       http_done_fn *done, void *user)
{
    struct http_response *h = ax_calloc(1, sizeof *h);
    struct stream *s = ax_calloc(1, sizeof *s);
    if (!h || !s) {
        ax_free(h);
        ax_free(s);
        done(user, 0);
        return NULL;
    }
    s->read = read;
    s->done = done;
    s->user = user;
    /* 4 KiB blocks: an SSE chunk is far smaller, so every event is flushed
     * as soon as read returns it. */
    h->r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
    if (!h->r) {
        ax_free(h);
        stream_free(s);
        return NULL;
    }
    h->status = status;
    MHD_add_response_header(h->r, "Content-Type", content_type);
    MHD_add_response_header(h->r, "Cache-Control", "no-cache");
    MHD_add_response_header(h->r, "X-Accel-Buffering", "no");
    return h;
}

/* ---- the request ----------------------------------------------------- */

const char *http_method(const struct http_request *r)
{
    return r->method;
}
const char *http_path(const struct http_request *r)
{
    return r->path;
}

const char *http_header(const struct http_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_body(const struct http_request *r, size_t *len)
{
    *len = r->body.len;
    return r->body.data ? r->body.data : "";
}

int http_body_too_large(const struct http_request *r)
{
    return r->too_large;
}

int http_client_gone(const struct http_request *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return 1;
    /* POLLRDHUP: the peer shut down its side, which HTTP clients do only
     * when they abandon the request. */
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
        return 1;
    return 0;
}

/* ---- dispatch -------------------------------------------------------- */

static enum MHD_Result queue(struct http_server *s, struct MHD_Connection *c,
                             struct http_response *h)
{
    if (!h) {
        static const char msg[] = "{\"error\":{\"message\":\"out of memory\",\"type\":"
                                  "\"server_error\",\"param\":null,\"code\":null}}";
        h = http_resp_new(500, "application/json", msg, sizeof msg - 1);
        if (!h)
            return MHD_NO;
    }
    if (s->cors_origin)
        MHD_add_response_header(h->r, "Access-Control-Allow-Origin", s->cors_origin);
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)h->status, h->r);
    MHD_destroy_response(h->r);
    ax_free(h);
    return rc;
}

/* Preflight: browsers ask before a POST with JSON or an Authorization
 * header. Answered here so no route needs to know about it. */
static struct http_response *preflight(struct http_server *s, struct MHD_Connection *c)
{
    struct http_response *h = http_resp_new(204, NULL, "", 0);
    if (!h)
        return NULL;
    MHD_add_response_header(h->r, "Allow", "GET, POST, OPTIONS");
    if (s->cors_origin) {
        const char *want =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Access-Control-Request-Headers");
        MHD_add_response_header(h->r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        MHD_add_response_header(h->r, "Access-Control-Allow-Headers",
                                want ? want : "Authorization, Content-Type, X-Api-Key");
        MHD_add_response_header(h->r, "Access-Control-Max-Age", "86400");
    }
    return h;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    struct http_server *s = cls;
    struct http_request *r = *con_cls;
    if (!r) {
        r = ax_calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->conn = c;
        r->method = method;
        r->path = url;
        ax_buf_init(&r->body, s->cfg.max_body);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body)
            r->too_large = 1;
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->too_large && ax_buf_append(&r->body, upload_data, *upload_size) != AX_OK)
            r->too_large = 1; /* the rest is read and dropped, then 413 */
        if (r->too_large) {
            /* Draining lets the client read the 413; a client that keeps
             * sending far past the limit is cut off instead. */
            r->dropped += *upload_size;
            if (r->dropped > 4 * s->cfg.max_body + (1u << 20))
                return MHD_NO;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (!strcmp(method, "OPTIONS"))
        return queue(s, c, preflight(s, c));
    return queue(s, c, s->cfg.handler(s->cfg.user, r));
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    struct http_request *r = *con_cls;
    if (!r)
        return;
    ax_buf_free(&r->body);
    ax_free(r);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    ax_debug("http: %s", line);
}

/* ---- lifecycle ------------------------------------------------------- */

enum ax_err http_start(const struct http_config *cfg, struct http_server **out, char *err)
{
    struct http_server *s = ax_calloc(1, sizeof *s);
    if (!s)
        return ax_fail(err, AX_ENOMEM, "out of memory");
    s->cfg = *cfg;
    s->listen_fd = -1;
    if (cfg->cors_origin && !(s->cors_origin = ax_strdup(cfg->cors_origin))) {
        ax_free(s);
        return ax_fail(err, AX_ENOMEM, "out of memory");
    }
    enum ax_err rc = open_listener(cfg->host, cfg->port, &s->listen_fd, &s->port, err);
    if (rc) {
        http_stop(s);
        return rc;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_LISTEN_SOCKET,
                            s->listen_fd, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)cfg->timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024, MHD_OPTION_END);
    if (!s->d) {
        http_stop(s);
        return ax_fail(err, AX_EIO, "libmicrohttpd could not start on %s:%d", cfg->host, cfg->port);
    }
    *out = s;
    return AX_OK;
}

int http_port(const struct http_server *s)
{
    return s->port;
}

void http_quiesce(struct http_server *s)
{
    if (!s || !s->d || s->quiesced)
        return;
    s->quiesced = 1;
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET) {
        close(fd);
        s->listen_fd = -1;
    }
}

void http_stop(struct http_server *s)
{
    if (!s)
        return;
    if (s->d)
        MHD_stop_daemon(s->d);
    else if (s->listen_fd >= 0)
        close(s->listen_fd);
    ax_free(s->cors_origin);
    ax_free(s);
}
