/* template.c - `axserve template`: renders chat requests with a model's
 * chat template.
 *
 *   axserve template -m DIR            one request JSON on stdin -> prompt
 *   axserve template -m DIR --batch    JSON array of requests -> JSON array
 *                                      of prompts ({"error": ...} on failure)
 *   axserve template --jinja FILE      renders a bare template file with the
 *                                      variables of a JSON object on stdin
 *                                      (with --batch: an array of objects)
 *   axserve template --cases           stdin: [{"template": T, "vars": {...}}];
 *                                      prints a JSON array as --batch does
 *
 * DIR is a model directory as model_open() reads it (tokenizer_config.json
 * directly or in a tokenizer/ subfolder); -m may also name the JSON file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/template.h"
#include "cli/cli.h"
#include "jinja/jinja.h"
#include "model/model.h"
#include "util/buf.h"
#include "util/file.h"
#include "util/mem.h"

#define STDIN_MAX ((size_t)256 << 20)
#define PROMPT_MAX ((size_t)64 << 20)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: axserve template -m MODEL_DIR [--batch] < request.json\n"
            "       axserve template --jinja FILE [--batch] < variables.json\n"
            "       axserve template --cases < [{\"template\": ..., \"vars\": {...}}, ...]\n"
            "Renders a chat request ({messages, tools?, chat_template_kwargs?, "
            "add_generation_prompt?})\n"
            "with the model's chat template and prints the prompt exactly. --batch reads a JSON\n"
            "array and prints a JSON array of prompts, {\"error\": \"...\"} for failed items.\n");
}

/* -m names tokenizer_config.json itself, or a model directory that
 * model_open() understands (its tokenizer_config.json, possibly in a
 * tokenizer/ subfolder). */
static int find_config(const char *m, char *path, size_t n, char *err)
{
    if (ax_file_exists(m)) {
        snprintf(path, n, "%s", m);
        return 0;
    }
    struct model *mod;
    if (model_open(m, &mod, err))
        return -1;
    int rc = model_need_tokenizer(mod, err) == AX_OK ? 0 : -1;
    if (rc == 0)
        snprintf(path, n, "%s", model_tokenizer_config(mod));
    model_free(mod);
    return rc;
}

static int read_stdin(struct ax_buf *b)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        if (ax_buf_append(b, chunk, n))
            return -1;
    return ferror(stdin) ? -1 : 0;
}

static enum ax_err render_one(const struct chat_template *t, int raw, const json_t *req,
                              struct ax_buf *out, char *err)
{
    return raw ? chat_template_render_vars(t, req, out, err)
               : chat_template_render(t, req, out, err);
}

/* One {"template", "vars"} case; the result or {"error": ...}. */
static json_t *render_case(const json_t *c)
{
    const json_t *src = json_object_get(c, "template"), *vars = json_object_get(c, "vars");
    char err[AX_ERRLEN];
    struct jinja_tmpl *t = NULL;
    struct ax_buf out;
    ax_buf_init(&out, PROMPT_MAX);
    enum ax_err e = AX_EINVAL;
    if (!json_is_string(src) || !json_is_object(vars))
        snprintf(err, sizeof err, "a case needs a string template and an object vars");
    else if (!(e = jinja_parse(json_string_value(src), json_string_length(src), &t, err)))
        e = jinja_render(t, vars, NULL, &out, err);
    json_t *r =
        e ? json_pack("{s:s}", "error", err) : json_stringn(out.data ? out.data : "", out.len);
    jinja_free(t);
    ax_buf_free(&out);
    return r;
}

static int run_cases(const json_t *in)
{
    if (!json_is_array(in)) {
        fprintf(stderr, "axserve template: --cases needs a JSON array on stdin\n");
        return 1;
    }
    json_t *results = json_array();
    size_t i;
    const json_t *c;
    json_array_foreach(in, i, c)
    {
        json_t *r = render_case(c);
        if (!r || json_array_append_new(results, r)) {
            json_decref(results);
            fprintf(stderr, "axserve template: out of memory\n");
            return 1;
        }
    }
    char *s = json_dumps(results, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(results);
    if (!s)
        return 1;
    fputs(s, stdout);
    fputc('\n', stdout);
    free(s);
    return 0;
}

static int run_batch(const struct chat_template *t, int raw, const json_t *in)
{
    if (!json_is_array(in)) {
        fprintf(stderr, "axserve template: --batch needs a JSON array on stdin\n");
        return 1;
    }
    json_t *results = json_array();
    size_t i;
    const json_t *req;
    json_array_foreach(in, i, req)
    {
        struct ax_buf out;
        char err[AX_ERRLEN];
        ax_buf_init(&out, PROMPT_MAX);
        enum ax_err e = render_one(t, raw, req, &out, err);
        json_t *r =
            e ? json_pack("{s:s}", "error", err) : json_stringn(out.data ? out.data : "", out.len);
        ax_buf_free(&out);
        if (!r || json_array_append_new(results, r)) {
            json_decref(results);
            fprintf(stderr, "axserve template: out of memory\n");
            return 1;
        }
    }
    char *s = json_dumps(results, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(results);
    if (!s) {
        fprintf(stderr, "axserve template: out of memory\n");
        return 1;
    }
    fputs(s, stdout);
    fputc('\n', stdout);
    free(s);
    return 0;
}

int cli_template(int argc, char **argv)
{
    const char *model = NULL, *jinja = NULL;
    int batch = 0, cases = 0;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) {
            model = argv[++i];
        } else if (!strcmp(argv[i], "--jinja") && i + 1 < argc) {
            jinja = argv[++i];
        } else if (!strcmp(argv[i], "--batch")) {
            batch = 1;
        } else if (!strcmp(argv[i], "--cases")) {
            cases = 1;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (cases && !model && !jinja) {
        struct ax_buf in;
        json_error_t jerr;
        ax_buf_init(&in, STDIN_MAX);
        json_t *req = read_stdin(&in) ? NULL : json_loadb(in.data ? in.data : "", in.len, 0, &jerr);
        ax_buf_free(&in);
        if (!req) {
            fprintf(stderr, "axserve template: stdin is not a JSON array of cases\n");
            return 1;
        }
        int rc = run_cases(req);
        json_decref(req);
        return rc;
    }
    if (!model == !jinja || cases) {
        usage(stderr);
        return 2;
    }
    char err[AX_ERRLEN], path[4096];
    struct chat_template *t = NULL;
    enum ax_err e;
    if (model) {
        if (find_config(model, path, sizeof path, err)) {
            fprintf(stderr, "axserve template: %s\n", err);
            return 1;
        }
        e = chat_template_load(path, &t, err);
    } else {
        e = chat_template_load_file(jinja, &t, err);
    }
    if (e) {
        fprintf(stderr, "axserve template: %s\n", err);
        return 1;
    }
    struct ax_buf in;
    ax_buf_init(&in, STDIN_MAX);
    int rc = 1;
    json_error_t jerr;
    json_t *req = NULL;
    if (read_stdin(&in)) {
        fprintf(stderr, "axserve template: cannot read stdin (or larger than %zu bytes)\n",
                STDIN_MAX);
    } else if (!(req = json_loadb(in.data ? in.data : "", in.len, 0, &jerr))) {
        fprintf(stderr, "axserve template: stdin is not JSON (line %d: %s)\n", jerr.line,
                jerr.text);
    } else if (batch) {
        rc = run_batch(t, jinja != NULL, req);
    } else {
        struct ax_buf out;
        ax_buf_init(&out, PROMPT_MAX);
        e = render_one(t, jinja != NULL, req, &out, err);
        if (e) {
            fprintf(stderr, "axserve template: %s\n", err);
        } else {
            fwrite(out.data ? out.data : "", 1, out.len, stdout);
            rc = 0;
        }
        ax_buf_free(&out);
    }
    json_decref(req);
    ax_buf_free(&in);
    chat_template_free(t);
    return rc;
}
