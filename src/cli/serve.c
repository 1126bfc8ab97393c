/* serve.c - `axserve serve`: the OpenAI-compatible HTTP server.
 *
 * Opens the socket first (so /health answers 503 while the model loads),
 * then loads model, tokenizer, chat template, backend and engine, and
 * waits for SIGINT/SIGTERM. Shutdown: stop accepting, cancel what is in
 * flight (open streams get an error event and [DONE]), wait for the
 * connection threads, free everything, exit 0. */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/server.h"
#include "backend/backend.h"
#include "chat/template.h"
#include "cli/cli.h"
#include "engine/engine.h"
#include "http/http.h"
#include "model/model.h"
#include "tok/tok.h"
#include "util/file.h"
#include "util/log.h"
#include "util/mem.h"

struct serve_opts {
    const char *model_dir, *host, *alias, *api_key, *api_key_file, *cors;
    const char *backend, *devices, *quant, *kv_type;
    int port, slots, ctx, threads, queue, max_conn, timeout_s, bf16_act, exact_prefill;
    long max_body;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: axserve serve -m DIR [options]\n"
            "  -m, --model DIR        model directory (HF checkpoint or axmodel directory)\n"
            "  --host ADDR            address to bind (default 127.0.0.1)\n"
            "  --port N               port (default 8080; 0 = any free port, printed)\n"
            "  --alias NAME           model id listed by /v1/models (default: directory name)\n"
            "  --api-key KEY          require this key (Bearer or X-Api-Key); also\n"
            "  --api-key-file FILE    ...read from a file, or env AXSERVE_API_KEY\n"
            "  --cors-origin ORIGIN   Access-Control-Allow-Origin (default *; 'none' = off)\n"
            "  --backend NAME         cpu, axcl, or auto (default: axcl for AXERA model\n"
            "                         directories, cpu for HF checkpoints)\n"
            "  --devices LIST         AXCL device ids, e.g. 0,1\n"
            "  --slots N              KV cache slots (default: backend decides)\n"
            "  --ctx N                context length per slot (default: model maximum)\n"
            "  --threads N            CPU threads (default: one per core)\n"
            "  --quant none|q8|q4     CPU weight quantization (default: as stored)\n"
            "  --bf16-act             BF16 weights: prefill rounds activations to bf16 and uses\n"
            "                         AVX512-BF16 dot products, as llama.cpp does (faster, less\n"
            "                         exact; x86 with avx512_bf16 only; default off)\n"
            "  --exact-prefill        BF16 weights: prefill with f32 FMAs, exact to float\n"
            "                         rounding, instead of the default split products (bf16 +\n"
            "                         int8 dot products; faster, within ~3e-4 in logprobs;\n"
            "                         x86 with avx512_bf16 and avx512_vnni only)\n"
            "  --queue N              requests waiting + running before 503 (default 4 x slots)\n"
            "  --max-body BYTES       request body limit (default 8 MiB; larger = 413)\n"
            "  --max-connections N    simultaneous connections (default 256)\n"
            "  --timeout S            idle connection timeout in seconds (default 600)\n");
}

static int parse_int(const char *s, const char *flag, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "axserve serve: %s wants an integer in %ld..%ld, got '%s'\n", flag, lo, hi,
                s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, struct serve_opts *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->cors = "*";
    o->backend = "auto";
    o->queue = 0;
    o->max_conn = 256;
    o->timeout_s = 600;
    o->max_body = 8L << 20;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--bf16-act")) {
            o->bf16_act = 1;
            continue;
        }
        if (!strcmp(a, "--exact-prefill")) {
            o->exact_prefill = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "axserve serve: unknown option or missing value: %s\n", a);
            return -1;
        }
        const char *v = argv[++i];
        long n = 0;
#define INT_OPT(flag, lo, hi, field)                                                               \
    if (!strcmp(a, flag)) {                                                                        \
        if (parse_int(v, flag, lo, hi, &n))                                                        \
            return -1;                                                                             \
        o->field = (int)n;                                                                         \
        continue;                                                                                  \
    }
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            o->model_dir = v;
        else if (!strcmp(a, "--host"))
            o->host = v;
        else if (!strcmp(a, "--alias"))
            o->alias = v;
        else if (!strcmp(a, "--api-key"))
            o->api_key = v;
        else if (!strcmp(a, "--api-key-file"))
            o->api_key_file = v;
        else if (!strcmp(a, "--cors-origin"))
            o->cors = v;
        else if (!strcmp(a, "--backend"))
            o->backend = v;
        else if (!strcmp(a, "--devices"))
            o->devices = v;
        else if (!strcmp(a, "--quant"))
            o->quant = v;
        else if (!strcmp(a, "--kv-type"))
            o->kv_type = v;
        else if (!strcmp(a, "--max-body")) {
            if (parse_int(v, a, 1024, 1L << 30, &n))
                return -1;
            o->max_body = n;
        } else {
            INT_OPT("--port", 0, 65535, port)
            INT_OPT("--slots", 0, 1024, slots)
            INT_OPT("--ctx", 0, 1 << 24, ctx)
            INT_OPT("--threads", 0, 1024, threads)
            INT_OPT("--queue", 0, 1 << 20, queue)
            INT_OPT("--max-connections", 1, 1 << 16, max_conn)
            INT_OPT("--timeout", 0, 1 << 20, timeout_s)
            fprintf(stderr, "axserve serve: unknown option %s\n", a);
            return -1;
        }
#undef INT_OPT
    }
    if (!o->model_dir) {
        fprintf(stderr, "axserve serve: -m DIR is required (e.g. build/models/default)\n");
        return -1;
    }
    if (strcmp(o->backend, "cpu") != 0 && strcmp(o->backend, "axcl") != 0 &&
        strcmp(o->backend, "auto") != 0) {
        fprintf(stderr, "axserve serve: --backend must be cpu, axcl or auto, got '%s'\n",
                o->backend);
        return -1;
    }
    return 0;
}

/* --api-key, then --api-key-file, then AXSERVE_API_KEY. Caller frees. */
static int resolve_key(const struct serve_opts *o, char **out)
{
    *out = NULL;
    if (o->api_key) {
        *out = ax_strdup(o->api_key);
    } else if (o->api_key_file) {
        char err[AX_ERRLEN];
        size_t len;
        if (ax_file_read(o->api_key_file, 4096, out, &len, err) != AX_OK) {
            fprintf(stderr, "axserve serve: --api-key-file: %s\n", err);
            return -1;
        }
        while (len && *out &&
               ((*out)[len - 1] == '\n' || (*out)[len - 1] == '\r' || (*out)[len - 1] == ' '))
            (*out)[--len] = '\0';
        if (!len) {
            fprintf(stderr, "axserve serve: --api-key-file %s is empty\n", o->api_key_file);
            ax_free(*out);
            *out = NULL;
            return -1;
        }
    } else {
        const char *env = getenv("AXSERVE_API_KEY");
        if (env && *env)
            *out = ax_strdup(env);
    }
    return 0;
}

static const char *base_name(const char *dir, char *buf, size_t n)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && dir[start - 1] != '/')
        start--;
    snprintf(buf, n, "%.*s", (int)(len - start), dir + start);
    return buf;
}

/* make-test-model writes "axserve_synthetic": true into config.json. */
static int is_synthetic(const char *dir)
{
    char path[MODEL_PATH_MAX];
    if (ax_path_join(path, sizeof path, dir, "config.json") != AX_OK)
        return 0;
    json_t *j = json_load_file(path, 0, NULL);
    int syn = json_is_true(json_object_get(j, "axserve_synthetic"));
    json_decref(j);
    return syn;
}

struct loaded {
    struct model *model;
    struct tok *tok;
    struct chat_template *tmpl;
    struct backend *backend;
    struct eng *eng;
};

static void unload(struct loaded *l)
{
    eng_free(l->eng);
    backend_free(l->backend);
    chat_template_free(l->tmpl);
    tok_free(l->tok);
    model_free(l->model);
    memset(l, 0, sizeof *l);
}

static enum ax_err load(const struct serve_opts *o, struct loaded *l, char *err)
{
    enum ax_err rc;
    if ((rc = model_open(o->model_dir, &l->model, err)))
        return rc;
    if (model_kind(l->model) == MODEL_TOKENIZER_ONLY)
        return ax_fail(err, AX_EFORMAT, "%s has no weights (tokenizer only); serve needs a model",
                       o->model_dir);
    if ((rc = model_need_tokenizer(l->model, err)) ||
        (rc = tok_load(model_tokenizer_json(l->model), &l->tok, err)) ||
        (rc = chat_template_load(model_tokenizer_config(l->model), &l->tmpl, err)))
        return rc;
    struct backend_opts bo = {.name = o->backend,
                              .n_threads = o->threads,
                              .n_slots = o->slots,
                              .n_ctx = o->ctx,
                              .quant = o->quant,
                              .kv_type = o->kv_type,
                              .bf16_act = o->bf16_act,
                              .exact_prefill = o->exact_prefill,
                              .devices = o->devices};
    if ((rc = backend_open(&bo, l->model, &l->backend, err)))
        return rc;
    const struct gen_defaults *gd = model_gen_defaults(l->model);
    struct eng_config ec = {.queue_max = o->queue, .eos = gd->eos, .n_eos = gd->n_eos};
    return eng_create(&ec, l->backend, l->tok, &l->eng, err);
}

static int stop_requested(void)
{
    sigset_t pend;
    sigpending(&pend);
    return sigismember(&pend, SIGINT) || sigismember(&pend, SIGTERM);
}

int cli_serve(int argc, char **argv)
{
    struct serve_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc > 0 ? 0 : 2;
    char *key = NULL;
    if (resolve_key(&o, &key))
        return 2;
    json_set_alloc_funcs(ax_malloc, ax_free);

    /* Block the stop signals in every thread (threads inherit the mask);
     * the main thread takes them with sigwait. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[AX_ERRLEN] = "", idbuf[256];
    struct api_server_config sc = {
        .model_id = o.alias ? o.alias : base_name(o.model_dir, idbuf, sizeof idbuf),
        .api_key = key};
    struct api_server *srv = NULL;
    struct http_server *http = NULL;
    struct loaded l = {0};
    int status = 1;
    if (api_server_new(&sc, &srv, err)) {
        fprintf(stderr, "axserve serve: %s\n", err);
        goto out;
    }
    struct http_config hc = {.host = o.host,
                             .port = o.port,
                             .max_body = (size_t)o.max_body,
                             .max_connections = o.max_conn,
                             .timeout_s = o.timeout_s,
                             .cors_origin = strcmp(o.cors, "none") != 0 && *o.cors ? o.cors : NULL,
                             .handler = api_server_handle,
                             .user = srv};
    if (http_start(&hc, &http, err)) {
        fprintf(stderr, "axserve serve: %s\n", err);
        goto out;
    }
    printf("axserve listening on http://%s:%d\n", o.host, http_port(http));
    fflush(stdout);
    ax_info("listening on %s:%d (api key %s, CORS %s)", o.host, http_port(http),
            key ? "required" : "off", hc.cors_origin ? hc.cors_origin : "off");

    int synthetic = is_synthetic(o.model_dir);
    if (synthetic)
        ax_warn("*** %s is a SYNTHETIC test model (random weights): answers will be gibberish. "
                "Use `axserve pull` for a real model. ***",
                o.model_dir);
    double t0 = (double)clock() / CLOCKS_PER_SEC;
    if (load(&o, &l, err)) {
        fprintf(stderr, "axserve serve: %s\n", err);
        goto out;
    }
    const struct qwen3_config *qc = model_config(l.model);
    ax_info("model %s (%s, %d layers, hidden %d, vocab %d) on backend %s: %d slots x %d ctx, "
            "loaded in %.1fs cpu",
            sc.model_id, model_kind(l.model) == MODEL_AXMODEL ? "axmodel" : "HF",
            qc ? qc->n_layers : 0, qc ? qc->hidden : 0, qc ? qc->vocab : 0,
            l.backend->ops && l.backend->ops->name ? l.backend->ops->name : o.backend,
            l.backend->lim.n_slots, l.backend->lim.n_ctx, (double)clock() / CLOCKS_PER_SEC - t0);
    api_server_attach(srv, l.eng, l.tok, l.tmpl, model_gen_defaults(l.model));
    ax_info("ready");

    if (!stop_requested()) {
        int sig = 0;
        sigwait(&set, &sig);
        ax_info("signal %d: stopping", sig);
    }
    status = 0;
out:
    if (srv)
        api_server_stopping(srv);
    http_quiesce(http);
    /* Open streams notice the stop within ~100 ms, send their last event
     * and end; give them a bounded time before connections are closed. */
    for (int i = 0; srv && i < 100 && api_server_active(srv) > 0; i++)
        usleep(50 * 1000);
    http_stop(http);
    unload(&l);
    api_server_free(srv);
    ax_free(key);
    if (status == 0)
        ax_info("stopped");
    return status;
}
