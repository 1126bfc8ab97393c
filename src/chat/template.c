/* template.c - loads a model's chat template and special tokens from
 * tokenizer_config.json (or chat_template.jinja beside it) and renders
 * chat requests with src/jinja. Request validation and normalisation are
 * described in template.h. Does not tokenize. */
#include "chat/template.h"

#include <stdio.h>
#include <string.h>

#include "jinja/jinja.h"
#include "util/file.h"
#include "util/mem.h"

#define CONFIG_MAX ((size_t)64 << 20) /* gemma's config is 1.2 MB */

struct chat_template {
    struct jinja_tmpl *def;      /* "default" (or the only) template */
    struct jinja_tmpl *tool_use; /* optional "tool_use" template, NULL if none */
    json_t *tokens;              /* {bos_token: "...", ...} special tokens as strings */
};

static const char *const token_keys[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                         "pad_token", "cls_token", "mask_token"};

void chat_template_free(struct chat_template *t)
{
    if (!t)
        return;
    jinja_free(t->def);
    jinja_free(t->tool_use);
    json_decref(t->tokens);
    ax_free(t);
}

/* ---- loading ---- */
static const char *token_string(const json_t *v)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_object(v) && json_is_string(json_object_get(v, "content")))
        return json_string_value(json_object_get(v, "content"));
    return NULL;
}

static enum ax_err load_tokens(struct chat_template *t, const json_t *cfg, const char *path,
                               char *err)
{
    t->tokens = json_object();
    if (!t->tokens)
        return ax_fail(err, AX_ENOMEM, "out of memory");
    for (size_t i = 0; i < sizeof token_keys / sizeof token_keys[0]; i++) {
        const json_t *v = json_object_get(cfg, token_keys[i]);
        if (!v || json_is_null(v))
            continue;
        const char *s = token_string(v);
        if (!s)
            return ax_fail(err, AX_EFORMAT, "%s: %s must be a string or {\"content\": string}",
                           path, token_keys[i]);
        if (*s && json_object_set_new(t->tokens, token_keys[i], json_string(s)))
            return ax_fail(err, AX_ENOMEM, "out of memory");
    }
    const json_t *extra = json_object_get(cfg, "additional_special_tokens");
    if (json_is_array(extra) && json_array_size(extra)) {
        json_t *list = json_array();
        if (!list || json_object_set_new(t->tokens, "additional_special_tokens", list))
            return ax_fail(err, AX_ENOMEM, "out of memory");
        size_t i;
        const json_t *v;
        json_array_foreach(extra, i, v)
        {
            const char *s = token_string(v);
            if (!s)
                return ax_fail(err, AX_EFORMAT, "%s: additional_special_tokens[%zu] is not a token",
                               path, i);
            if (json_array_append_new(list, json_string(s)))
                return ax_fail(err, AX_ENOMEM, "out of memory");
        }
    }
    return AX_OK;
}

static enum ax_err parse_one(const char *src, size_t len, const char *what, struct jinja_tmpl **out,
                             char *err)
{
    char jerr[AX_ERRLEN];
    enum ax_err e = jinja_parse(src, len, out, jerr);
    if (e)
        return ax_fail(err, e, "%s: %s", what, jerr);
    return AX_OK;
}

static enum ax_err load_templates(struct chat_template *t, const json_t *ct, const char *path,
                                  char *err)
{
    if (json_is_string(ct))
        return parse_one(json_string_value(ct), json_string_length(ct), path, &t->def, err);
    if (!json_is_array(ct))
        return ax_fail(err, AX_EFORMAT,
                       "%s: chat_template must be a string or a list of {name, template}", path);
    size_t i;
    const json_t *item;
    json_array_foreach(ct, i, item)
    {
        const json_t *name = json_object_get(item, "name"),
                     *tmpl = json_object_get(item, "template");
        if (!json_is_string(name) || !json_is_string(tmpl))
            return ax_fail(err, AX_EFORMAT, "%s: chat_template[%zu] needs string name and template",
                           path, i);
        struct jinja_tmpl **slot = NULL;
        if (!strcmp(json_string_value(name), "default"))
            slot = &t->def;
        else if (!strcmp(json_string_value(name), "tool_use"))
            slot = &t->tool_use;
        if (!slot || *slot)
            continue;
        char what[300];
        snprintf(what, sizeof what, "%.200s (template '%s')", path, json_string_value(name));
        enum ax_err e =
            parse_one(json_string_value(tmpl), json_string_length(tmpl), what, slot, err);
        if (e)
            return e;
    }
    if (!t->def && !t->tool_use)
        return ax_fail(err, AX_EFORMAT,
                       "%s: chat_template list has no 'default' or 'tool_use' template", path);
    return AX_OK;
}

/* chat_template.jinja in the directory of path */
static enum ax_err load_side_file(struct chat_template *t, const char *path, char *err)
{
    char dir[4096], file[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    if (ax_path_join(file, sizeof file, dir, "chat_template.jinja"))
        return ax_fail(err, AX_ETOOBIG, "%s: path too long", path);
    if (!ax_file_exists(file))
        return ax_fail(err, AX_ENOTFOUND,
                       "%s has no chat_template and there is no chat_template.jinja beside it; "
                       "use a model directory with a chat template (axserve pull)",
                       path);
    char *src;
    size_t len;
    enum ax_err e = ax_file_read(file, CONFIG_MAX, &src, &len, err);
    if (e)
        return e;
    e = parse_one(src, len, file, &t->def, err);
    ax_free(src);
    return e;
}

enum ax_err chat_template_load(const char *path, struct chat_template **out, char *err)
{
    *out = NULL;
    char *text;
    size_t len;
    enum ax_err e = ax_file_read(path, CONFIG_MAX, &text, &len, err);
    if (e)
        return e;
    json_error_t jerr;
    /* DECODE_INT_AS_REAL: Llama 3 configs hold model_max_length = 1e30 */
    json_t *cfg = json_loadb(text, len, JSON_DECODE_INT_AS_REAL, &jerr);
    ax_free(text);
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return ax_fail(err, AX_EJSON, "%s: not a JSON object (line %d: %s)", path, jerr.line,
                       jerr.text);
    }
    struct chat_template *t = ax_calloc(1, sizeof *t);
    if (!t) {
        json_decref(cfg);
        return ax_fail(err, AX_ENOMEM, "out of memory");
    }
    const json_t *ct = json_object_get(cfg, "chat_template");
    e = load_tokens(t, cfg, path, err);
    if (!e)
        e = ct && !json_is_null(ct) ? load_templates(t, ct, path, err)
                                    : load_side_file(t, path, err);
    json_decref(cfg);
    if (e) {
        chat_template_free(t);
        return e;
    }
    *out = t;
    return AX_OK;
}

enum ax_err chat_template_load_file(const char *jinja_path, struct chat_template **out, char *err)
{
    *out = NULL;
    struct chat_template *t = ax_calloc(1, sizeof *t);
    if (!t)
        return ax_fail(err, AX_ENOMEM, "out of memory");
    char *src;
    size_t len;
    enum ax_err e = ax_file_read(jinja_path, CONFIG_MAX, &src, &len, err);
    if (!e) {
        e = parse_one(src, len, jinja_path, &t->def, err);
        ax_free(src);
    }
    if (e) {
        chat_template_free(t);
        return e;
    }
    *out = t;
    return AX_OK;
}

/* ---- request normalisation ---- */
static enum ax_err norm_content(json_t *msg, size_t i, char *err)
{
    json_t *c = json_object_get(msg, "content");
    if (!c || json_is_null(c))
        return json_object_set_new(msg, "content", json_string(""))
                   ? ax_fail(err, AX_ENOMEM, "out of memory")
                   : AX_OK;
    if (json_is_string(c))
        return AX_OK;
    if (!json_is_array(c))
        return ax_fail(err, AX_EINVAL,
                       "messages[%zu].content must be a string, an array of text parts or null", i);
    struct ax_buf b;
    ax_buf_init(&b, (size_t)1 << 30);
    size_t k;
    json_t *part;
    json_array_foreach(c, k, part)
    {
        const json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(type) ||
            strcmp(json_string_value(type), "text") != 0 || !json_is_string(text)) {
            ax_buf_free(&b);
            return ax_fail(
                err, AX_EINVAL,
                "messages[%zu].content[%zu] must be {\"type\": \"text\", \"text\": string} "
                "(other part types are not supported)",
                i, k);
        }
        if ((k && ax_buf_putc(&b, '\n')) ||
            ax_buf_append(&b, json_string_value(text), json_string_length(text))) {
            ax_buf_free(&b);
            return ax_fail(err, AX_ENOMEM, "out of memory");
        }
    }
    json_t *s = json_stringn(b.data ? b.data : "", b.len);
    ax_buf_free(&b);
    if (!s || json_object_set_new(msg, "content", s))
        return ax_fail(err, AX_ENOMEM, "out of memory");
    return AX_OK;
}

static enum ax_err check_tool_calls(const json_t *msg, size_t i, char *err)
{
    const json_t *tc = json_object_get(msg, "tool_calls");
    if (!tc || json_is_null(tc))
        return AX_OK;
    if (!json_is_array(tc))
        return ax_fail(err, AX_EINVAL, "messages[%zu].tool_calls must be an array", i);
    size_t k;
    const json_t *call;
    json_array_foreach(tc, k, call)
    {
        if (!json_is_object(call))
            return ax_fail(err, AX_EINVAL, "messages[%zu].tool_calls[%zu] must be an object", i, k);
        const json_t *fn = json_object_get(call, "function");
        if (fn && !json_is_object(fn))
            return ax_fail(err, AX_EINVAL,
                           "messages[%zu].tool_calls[%zu].function must be an object", i, k);
        const json_t *args = fn ? json_object_get(fn, "arguments") : NULL;
        if (args && !json_is_string(args) && !json_is_object(args))
            return ax_fail(
                err, AX_EINVAL,
                "messages[%zu].tool_calls[%zu].function.arguments must be a string or an object", i,
                k);
    }
    return AX_OK;
}

static enum ax_err build_vars(const struct chat_template *t, const json_t *req, json_t *vars,
                              int *has_tools, char *err)
{
    if (!json_is_object(req))
        return ax_fail(err, AX_EINVAL, "request must be a JSON object");
    const json_t *msgs = json_object_get(req, "messages");
    if (!json_is_array(msgs) || !json_array_size(msgs))
        return ax_fail(err, AX_EINVAL, "messages must be a non-empty array");
    json_t *copy = json_deep_copy(msgs);
    if (!copy || json_object_set_new(vars, "messages", copy))
        return ax_fail(err, AX_ENOMEM, "out of memory");
    size_t i;
    json_t *m;
    json_array_foreach(copy, i, m)
    {
        if (!json_is_object(m))
            return ax_fail(err, AX_EINVAL, "messages[%zu] must be an object", i);
        if (!json_is_string(json_object_get(m, "role")))
            return ax_fail(err, AX_EINVAL, "messages[%zu].role must be a string", i);
        enum ax_err e = norm_content(m, i, err);
        if (!e)
            e = check_tool_calls(m, i, err);
        if (e)
            return e;
    }
    const json_t *tools = json_object_get(req, "tools");
    *has_tools = tools && !json_is_null(tools);
    if (*has_tools && !json_is_array(tools))
        return ax_fail(err, AX_EINVAL, "tools must be an array");
    if (json_object_set_new(vars, "tools", *has_tools ? json_deep_copy(tools) : json_null()) ||
        json_object_set_new(vars, "documents", json_null()))
        return ax_fail(err, AX_ENOMEM, "out of memory");
    const json_t *agp = json_object_get(req, "add_generation_prompt");
    if (agp && !json_is_boolean(agp))
        return ax_fail(err, AX_EINVAL, "add_generation_prompt must be true or false");
    if (json_object_set_new(vars, "add_generation_prompt", json_boolean(!agp || json_is_true(agp))))
        return ax_fail(err, AX_ENOMEM, "out of memory");
    /* deep copies: t is shared between threads, so its JSON values must not
     * gain references (refcount updates) from here */
    const char *key;
    json_t *val;
    json_object_foreach(t->tokens, key, val)
    {
        if (json_object_set_new(vars, key, json_deep_copy(val)))
            return ax_fail(err, AX_ENOMEM, "out of memory");
    }
    const json_t *kw = json_object_get(req, "chat_template_kwargs");
    if (kw && !json_is_null(kw)) {
        if (!json_is_object(kw))
            return ax_fail(err, AX_EINVAL, "chat_template_kwargs must be an object");
        static const char *const reserved[] = {"messages", "tools", "documents",
                                               "add_generation_prompt"};
        for (size_t r = 0; r < sizeof reserved / sizeof reserved[0]; r++)
            if (json_object_get(kw, reserved[r]))
                return ax_fail(err, AX_EINVAL,
                               "chat_template_kwargs.%s is not allowed; use the request field",
                               reserved[r]);
        if (json_object_update(vars, (json_t *)kw))
            return ax_fail(err, AX_ENOMEM, "out of memory");
    }
    return AX_OK;
}

static enum ax_err render(const struct jinja_tmpl *tm, const json_t *vars, struct ax_buf *out,
                          char *err)
{
    size_t len0 = out->len;
    char jerr[AX_ERRLEN];
    enum ax_err e = jinja_render(tm, vars, NULL, out, jerr);
    if (e) {
        out->len = len0;
        if (out->data)
            out->data[len0] = '\0';
        return ax_fail(err, e, "chat template: %s", jerr);
    }
    return AX_OK;
}

enum ax_err chat_template_render(const struct chat_template *t, const json_t *request,
                                 struct ax_buf *out, char *err)
{
    json_t *vars = json_object();
    if (!vars)
        return ax_fail(err, AX_ENOMEM, "out of memory");
    int has_tools = 0;
    enum ax_err e = build_vars(t, request, vars, &has_tools, err);
    if (!e) {
        const struct jinja_tmpl *tm = has_tools && t->tool_use ? t->tool_use
                                      : t->def                 ? t->def
                                                               : t->tool_use;
        e = render(tm, vars, out, err);
    }
    json_decref(vars);
    return e;
}

enum ax_err chat_template_render_vars(const struct chat_template *t, const json_t *vars,
                                      struct ax_buf *out, char *err)
{
    if (!json_is_object(vars))
        return ax_fail(err, AX_EINVAL, "template variables must be a JSON object");
    return render(t->def ? t->def : t->tool_use, vars, out, err);
}
