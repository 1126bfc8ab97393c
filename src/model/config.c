/* config.c - parses the small JSON/text files of a model directory:
 * config.json (HF Qwen3), generation_config.json, the AXERA vendor
 * config.json and the flags of an AXERA run script. Every value is range-
 * checked and a bad one is reported with its file and field name.
 * Does not open files (model.c does) or look at tensors.
 *
 * Fields read from an HF config.json (transformers Qwen3Config):
 *   hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
 *   vocab_size                                       required
 *   num_key_value_heads (= heads), head_dim (the length of q_norm in the
 *   weights, which model.c reads; hidden/heads until then),
 *   max_position_embeddings (32768), rope_theta (10000, the HF default),
 *   rms_norm_eps (1e-6), tie_word_embeddings (false)  optional (default)
 *   rope_parameters (transformers 5.x: {"rope_type", "rope_theta"}) and
 *   rope_scaling (4.x) may only name the "default" RoPE type.
 *   model_type must be "qwen3"; attention_bias, use_sliding_window and a
 *   scaled RoPE are rejected as unsupported (our kernels would silently
 *   compute something else). */
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_int.h"
#include "util/buf.h"
#include "util/mem.h"

/* ---- JSON helpers ------------------------------------------------------ */

static json_t *load_object(const char *text, size_t len, const char *path, char *err,
                           enum ax_err *rc)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        *rc = ax_fail(err, AX_EJSON, "%s: invalid JSON: %s (line %d, column %d)", path, je.text,
                      je.line, je.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        *rc = ax_fail(err, AX_EJSON, "%s: not a JSON object", path);
        return NULL;
    }
    *rc = AX_OK;
    return root;
}

/* Integer field in [lo, hi]. Absent: *out untouched, returns AX_OK with
 * *present = 0 (present may be NULL when the field is optional and the
 * caller does not care). Required fields pass required = 1. */
static enum ax_err get_int(const json_t *o, const char *key, long long lo, long long hi,
                           int required, const char *path, long long *out, char *err)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required)
            return ax_fail(err, AX_EFORMAT, "%s: required field \"%s\" is missing", path, key);
        return AX_OK;
    }
    if (!json_is_integer(v))
        return ax_fail(err, AX_EFORMAT, "%s: field \"%s\" must be an integer", path, key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return ax_fail(err, AX_ERANGE, "%s: field \"%s\" = %lld is out of range [%lld, %lld]", path,
                       key, (long long)x, lo, hi);
    *out = x;
    return AX_OK;
}

static enum ax_err get_num(const json_t *o, const char *key, double lo, double hi, const char *path,
                           double *out, int *present, char *err)
{
    const json_t *v = json_object_get(o, key);
    if (present)
        *present = 0;
    if (!v || json_is_null(v))
        return AX_OK;
    if (!json_is_number(v))
        return ax_fail(err, AX_EFORMAT, "%s: field \"%s\" must be a number", path, key);
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi)
        return ax_fail(err, AX_ERANGE, "%s: field \"%s\" = %g is out of range [%g, %g]", path, key,
                       x, lo, hi);
    *out = x;
    if (present)
        *present = 1;
    return AX_OK;
}

static enum ax_err get_bool(const json_t *o, const char *key, const char *path, int *out, char *err)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return AX_OK;
    if (!json_is_boolean(v))
        return ax_fail(err, AX_EFORMAT, "%s: field \"%s\" must be true or false", path, key);
    *out = json_is_true(v);
    return AX_OK;
}

/* ---- HF config.json ---------------------------------------------------- */

enum ax_err model_check_config(const struct qwen3_config *c, const char *path, char *err)
{
    if (c->n_kv_heads < 1 || c->n_kv_heads > c->n_heads)
        return ax_fail(err, AX_ERANGE,
                       "%s: num_key_value_heads = %d must be between 1 and "
                       "num_attention_heads = %d",
                       path, c->n_kv_heads, c->n_heads);
    if (c->n_heads % c->n_kv_heads)
        return ax_fail(err, AX_ERANGE,
                       "%s: num_attention_heads = %d is not a multiple of "
                       "num_key_value_heads = %d",
                       path, c->n_heads, c->n_kv_heads);
    if (c->head_dim < 2 || c->head_dim > MODEL_MAX_HEAD_DIM || c->head_dim % 2)
        return ax_fail(err, AX_ERANGE,
                       "%s: head_dim = %d must be even and in [2, %d] (RoPE pairs dimensions)",
                       path, c->head_dim, MODEL_MAX_HEAD_DIM);
    /* q_proj has heads*head_dim rows; keep it within the same ceiling as
     * hidden so backends can size buffers from either. */
    if ((long long)c->n_heads * c->head_dim > 4LL * MODEL_MAX_HIDDEN)
        return ax_fail(err, AX_ERANGE, "%s: num_attention_heads * head_dim = %lld is too large",
                       path, (long long)c->n_heads * c->head_dim);
    if (!(c->rope_theta > 1.0) || !isfinite(c->rope_theta))
        return ax_fail(err, AX_ERANGE, "%s: rope_theta = %g must be > 1", path, c->rope_theta);
    if (!(c->rms_eps > 0.0) || !(c->rms_eps < 1.0))
        return ax_fail(err, AX_ERANGE, "%s: rms_norm_eps = %g must be in (0, 1)", path, c->rms_eps);
    return AX_OK;
}

static enum ax_err check_supported(const json_t *o, const char *path, char *err)
{
    const json_t *mt = json_object_get(o, "model_type");
    if (!json_is_string(mt))
        return ax_fail(err, AX_EFORMAT, "%s: field \"model_type\" is missing or not a string",
                       path);
    if (strcmp(json_string_value(mt), "qwen3") != 0)
        return ax_fail(err, AX_EUNSUPPORTED,
                       "%s: model_type \"%.64s\" is not supported (axserve runs qwen3)", path,
                       json_string_value(mt));
    if (json_is_true(json_object_get(o, "attention_bias")))
        return ax_fail(err, AX_EUNSUPPORTED, "%s: attention_bias = true is not supported", path);
    if (json_is_true(json_object_get(o, "use_sliding_window")))
        return ax_fail(err, AX_EUNSUPPORTED, "%s: use_sliding_window = true is not supported",
                       path);
    return AX_OK;
}

/* One RoPE object, rope_parameters or rope_scaling (null or absent: none).
 * Its type must be the default: yarn, linear, dynamic and the others
 * rescale the frequencies, and plain RoPE in their place would be silently
 * wrong. Its rope_theta, if any, goes to *theta with *has = 1. */
static enum ax_err read_rope_object(const json_t *o, const char *key, const char *path,
                                    double *theta, int *has, char *err)
{
    const json_t *r = json_object_get(o, key);
    *has = 0;
    if (!r || json_is_null(r))
        return AX_OK;
    if (!json_is_object(r))
        return ax_fail(err, AX_EFORMAT, "%s: field \"%s\" must be an object or null", path, key);
    const json_t *t = json_object_get(r, "rope_type");
    if (!t || json_is_null(t))
        t = json_object_get(r, "type"); /* the older spelling */
    if (t && !json_is_null(t) &&
        (!json_is_string(t) || strcmp(json_string_value(t), "default") != 0))
        return ax_fail(err, AX_EUNSUPPORTED,
                       "%s: %s asks for a scaled RoPE (rope_type \"%.32s\"); only plain RoPE "
                       "(\"default\", or %s = null) is supported",
                       path, key, json_is_string(t) ? json_string_value(t) : "?", key);
    double prf = 1.0;
    enum ax_err rc = get_num(r, "partial_rotary_factor", 0, 1, path, &prf, NULL, err);
    if (rc)
        return rc;
    if (prf != 1.0)
        return ax_fail(err, AX_EUNSUPPORTED,
                       "%s: %s.partial_rotary_factor = %g: only full-width RoPE is supported", path,
                       key, prf);
    return get_num(r, "rope_theta", -1e300, 1e300, path, theta, has, err);
}

/* rope_theta: top level (transformers 4.x), rope_parameters (5.x) or
 * rope_scaling; two that disagree are an error, not a guess. */
static enum ax_err read_rope(const json_t *o, const char *path, double *theta, char *err)
{
    double v[3] = {10000.0, 0, 0};
    int has[3];
    static const char *const key[3] = {"rope_theta", "rope_parameters.rope_theta",
                                       "rope_scaling.rope_theta"};
    enum ax_err rc;
    if ((rc = get_num(o, "rope_theta", -1e300, 1e300, path, &v[0], &has[0], err)) ||
        (rc = read_rope_object(o, "rope_parameters", path, &v[1], &has[1], err)) ||
        (rc = read_rope_object(o, "rope_scaling", path, &v[2], &has[2], err)))
        return rc;
    *theta = v[0];
    int from = has[0] ? 0 : -1;
    for (int i = 1; i < 3; i++) {
        if (!has[i])
            continue;
        if (from >= 0 && v[i] != v[from])
            return ax_fail(err, AX_EFORMAT, "%s: %s = %g and %s = %g disagree", path, key[from],
                           v[from], key[i], v[i]);
        from = i;
        *theta = v[i];
    }
    return AX_OK;
}

static enum ax_err read_config_fields(const json_t *o, const char *path, struct qwen3_config *c,
                                      char *err)
{
    long long hidden = 0, inter = 0, layers = 0, heads = 0, kv = -1, hd = -1, vocab = 0;
    long long maxpos = 32768;
    enum ax_err rc;
    if ((rc = get_int(o, "hidden_size", 1, MODEL_MAX_HIDDEN, 1, path, &hidden, err)) ||
        (rc = get_int(o, "intermediate_size", 1, MODEL_MAX_INTER, 1, path, &inter, err)) ||
        (rc = get_int(o, "num_hidden_layers", 1, MODEL_MAX_LAYERS, 1, path, &layers, err)) ||
        (rc = get_int(o, "num_attention_heads", 1, MODEL_MAX_HEADS, 1, path, &heads, err)) ||
        (rc = get_int(o, "num_key_value_heads", 1, MODEL_MAX_HEADS, 0, path, &kv, err)) ||
        (rc = get_int(o, "head_dim", 1, MODEL_MAX_HEAD_DIM, 0, path, &hd, err)) ||
        (rc = get_int(o, "vocab_size", 1, MODEL_MAX_VOCAB, 1, path, &vocab, err)) ||
        (rc = get_int(o, "max_position_embeddings", 1, MODEL_MAX_POS, 0, path, &maxpos, err)))
        return rc;
    /* Without head_dim, transformers' Qwen3Config assumes 128 and older
     * code hidden/heads; the weights say which (model.c reads q_norm's
     * length). Until then: hidden/heads when that is whole, else 128. */
    c->head_dim_implicit = hd < 0;
    if (hd < 0)
        hd = hidden % heads == 0 && (hidden / heads) % 2 == 0 ? hidden / heads : 128;
    c->hidden = (int)hidden;
    c->intermediate = (int)inter;
    c->n_layers = (int)layers;
    c->n_heads = (int)heads;
    c->n_kv_heads = (int)(kv < 0 ? heads : kv);
    c->head_dim = (int)hd;
    c->vocab = (int)vocab;
    c->max_pos = (int)maxpos;
    c->rms_eps = 1e-6;
    c->tied = 0;
    if ((rc = read_rope(o, path, &c->rope_theta, err)) ||
        (rc = get_num(o, "rms_norm_eps", -1e300, 1e300, path, &c->rms_eps, NULL, err)) ||
        (rc = get_bool(o, "tie_word_embeddings", path, &c->tied, err)))
        return rc;
    return model_check_config(c, path, err);
}

enum ax_err model_parse_config(const char *text, size_t len, const char *path,
                               struct qwen3_config *cfg, int *synthetic, char *err)
{
    enum ax_err rc;
    memset(cfg, 0, sizeof *cfg);
    *synthetic = 0;
    json_t *o = load_object(text, len, path, err, &rc);
    if (!o)
        return rc;
    rc = check_supported(o, path, err);
    if (rc == AX_OK)
        rc = read_config_fields(o, path, cfg, err);
    if (rc == AX_OK)
        *synthetic = json_is_true(json_object_get(o, "axserve_synthetic"));
    json_decref(o);
    return rc;
}

/* ---- generation_config.json -------------------------------------------- */

void model_gen_defaults_init(struct gen_defaults *g)
{
    memset(g, 0, sizeof *g);
    g->temperature = 0.7f;
    g->top_p = 0.8f;
    g->top_k = 20;
    g->min_p = 0.0f;
    g->bos = -1;
}

static enum ax_err read_eos(const json_t *o, const char *path, struct gen_defaults *g, char *err)
{
    const json_t *v = json_object_get(o, "eos_token_id");
    if (!v || json_is_null(v))
        return AX_OK;
    if (json_is_integer(v)) {
        long long id = 0;
        enum ax_err rc = get_int(o, "eos_token_id", 0, MODEL_MAX_TOKEN_ID, 1, path, &id, err);
        if (rc)
            return rc;
        g->n_eos = 1;
        g->eos[0] = (int32_t)id;
        return AX_OK;
    }
    if (!json_is_array(v))
        return ax_fail(err, AX_EFORMAT,
                       "%s: field \"eos_token_id\" must be an integer or a list of integers", path);
    if (json_array_size(v) > MODEL_MAX_EOS)
        return ax_fail(err, AX_ERANGE, "%s: eos_token_id lists %zu ids, at most %d supported", path,
                       json_array_size(v), MODEL_MAX_EOS);
    g->n_eos = 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0 ||
            json_integer_value(e) > MODEL_MAX_TOKEN_ID)
            return ax_fail(err, AX_ERANGE, "%s: eos_token_id[%zu] is not a valid token id", path,
                           i);
        g->eos[g->n_eos++] = (int32_t)json_integer_value(e);
    }
    return AX_OK;
}

enum ax_err model_parse_gen_config(const char *text, size_t len, const char *path,
                                   struct gen_defaults *g, char *err)
{
    enum ax_err rc;
    json_t *o = load_object(text, len, path, err, &rc);
    if (!o)
        return rc;
    double t = g->temperature, p = g->top_p, mp = g->min_p;
    long long k = g->top_k, bos = g->bos;
    const json_t *jk = json_object_get(o, "top_k");
    if ((rc = get_num(o, "temperature", 0.0, 100.0, path, &t, &g->have_temperature, err)) ||
        (rc = get_num(o, "top_p", 0.0, 1.0, path, &p, &g->have_top_p, err)) ||
        (rc = get_num(o, "min_p", 0.0, 1.0, path, &mp, &g->have_min_p, err)) ||
        (rc = get_int(o, "top_k", 0, MODEL_MAX_VOCAB, 0, path, &k, err)) ||
        (rc = get_int(o, "bos_token_id", 0, MODEL_MAX_TOKEN_ID, 0, path, &bos, err)) ||
        (rc = read_eos(o, path, g, err))) {
        json_decref(o);
        return rc;
    }
    g->have_top_k = jk && !json_is_null(jk);
    g->temperature = (float)t;
    g->top_p = (float)p;
    g->min_p = (float)mp;
    g->top_k = (int)k;
    g->bos = (int32_t)bos;
    json_decref(o);
    return AX_OK;
}

/* ---- AXERA post_config.json ------------------------------------------------ */

/* Vendor sampling file: enable_temperature/temperature,
 * enable_top_k_sampling/top_k, enable_top_p_sampling/top_p (and a
 * repetition penalty we do not map). A value counts only when its enable_
 * flag is true. With none enabled the vendor runtime decodes greedily, so
 * that becomes top_k = 1. */
static enum ax_err post_flag(const json_t *o, const char *key, const char *path, int *on, char *err)
{
    *on = 0;
    return get_bool(o, key, path, on, err);
}

enum ax_err model_parse_post_config(const char *text, size_t len, const char *path,
                                    struct gen_defaults *g, char *err)
{
    enum ax_err rc;
    json_t *o = load_object(text, len, path, err, &rc);
    if (!o)
        return rc;
    int et, ek, ep;
    double t = g->temperature, tp = g->top_p;
    long long k = g->top_k;
    if ((rc = post_flag(o, "enable_temperature", path, &et, err)) ||
        (rc = post_flag(o, "enable_top_k_sampling", path, &ek, err)) ||
        (rc = post_flag(o, "enable_top_p_sampling", path, &ep, err)) ||
        (et && (rc = get_num(o, "temperature", 0.0, 100.0, path, &t, NULL, err))) ||
        (ek && (rc = get_int(o, "top_k", 0, MODEL_MAX_VOCAB, 0, path, &k, err))) ||
        (ep && (rc = get_num(o, "top_p", 0.0, 1.0, path, &tp, NULL, err)))) {
        json_decref(o);
        return rc;
    }
    json_decref(o);
    if (!et && !ek && !ep) {
        k = 1;
        ek = 1;
    }
    if (et) {
        g->temperature = (float)t;
        g->have_temperature = 1;
    }
    if (ek) {
        g->top_k = (int)k;
        g->have_top_k = 1;
    }
    if (ep) {
        g->top_p = (float)tp;
        g->have_top_p = 1;
    }
    return AX_OK;
}

/* ---- AXERA axmodel layout ---------------------------------------------- */

/* Vendor values arrive as JSON numbers (config.json) or as strings (run
 * script flags); accept both, as a whole decimal integer. */
static enum ax_err vendor_int(const json_t *o, const char *key, long long lo, long long hi,
                              const char *path, long long *out, char *err)
{
    const json_t *v = json_object_get(o, key);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        long long x = strtoll(s, &end, 10);
        if (end == s || *end)
            return ax_fail(err, AX_EFORMAT, "%s: \"%s\" = \"%.32s\" is not an integer", path, key,
                           s);
        if (x < lo || x > hi)
            return ax_fail(err, AX_ERANGE, "%s: \"%s\" = %lld is out of range [%lld, %lld]", path,
                           key, x, lo, hi);
        *out = x;
        return AX_OK;
    }
    return get_int(o, key, lo, hi, 1, path, out, err);
}

/* The template is later passed to snprintf with the layer index: it must
 * hold exactly one conversion, and it must be %d. */
static enum ax_err check_template(const char *t, const char *path, char *err)
{
    int n = 0;
    for (const char *p = t; *p; p++) {
        if (*p != '%')
            continue;
        if (p[1] != 'd')
            return ax_fail(err, AX_EFORMAT,
                           "%s: template_filename_axmodel \"%.200s\" may contain only one %%d",
                           path, t);
        n++;
        p++;
    }
    if (n != 1)
        return ax_fail(err, AX_EFORMAT,
                       "%s: template_filename_axmodel \"%.200s\" needs exactly one %%d", path, t);
    return AX_OK;
}

/* Joins a vendor file name to dir. For the layer template (fmt = 1) the
 * name is checked to hold one %d and dir's own '%' are doubled, so the
 * result stays a printf format with exactly one conversion. */
static enum ax_err vendor_path(const json_t *o, const char *key, const char *dir, const char *path,
                               int fmt, char *out, char *err)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v) || !*json_string_value(v))
        return ax_fail(err, AX_EFORMAT, "%s: \"%s\" is missing or not a file name", path, key);
    const char *s = json_string_value(v);
    enum ax_err rc = fmt ? check_template(s, path, err) : AX_OK;
    if (rc)
        return rc;
    size_t k = 0;
    for (const char *d = dir; s[0] != '/' && *d && k + 2 < MODEL_PATH_MAX; d++) {
        if (*d == '%' && fmt)
            out[k++] = '%';
        out[k++] = *d;
    }
    if (s[0] != '/' && k + 1 < MODEL_PATH_MAX)
        out[k++] = '/';
    int r = snprintf(out + k, MODEL_PATH_MAX - k, "%s", s);
    if (r < 0 || (size_t)r >= MODEL_PATH_MAX - k || k + 2 >= MODEL_PATH_MAX)
        return ax_fail(err, AX_ETOOBIG, "%s: \"%s\" path is too long", path, key);
    return AX_OK;
}

static enum ax_err vendor_devices(const json_t *o, const char *path, struct axmodel_layout *ax,
                                  char *err)
{
    const json_t *v = json_object_get(o, "devices");
    ax->n_devices = 0;
    if (!v || json_is_null(v))
        return AX_OK;
    if (json_is_integer(v) || json_is_string(v)) {
        /* flag form: "--devices 0" or "--devices 0,1" */
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        long long x = json_is_integer(v) ? json_integer_value(v) : 0;
        char *end = NULL;
        do {
            if (s) {
                x = strtoll(s, &end, 10);
                if (end == s)
                    return ax_fail(err, AX_EFORMAT, "%s: bad devices value", path);
                s = *end == ',' ? end + 1 : NULL;
                if (!s && *end)
                    return ax_fail(err, AX_EFORMAT, "%s: bad devices value", path);
            }
            if (x < 0 || x > 255 || ax->n_devices >= 16)
                return ax_fail(err, AX_ERANGE, "%s: devices: bad id or more than 16", path);
            ax->devices[ax->n_devices++] = (int)x;
        } while (s);
        return AX_OK;
    }
    if (!json_is_array(v) || json_array_size(v) > 16)
        return ax_fail(err, AX_EFORMAT, "%s: \"devices\" must be a list of at most 16 ids", path);
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > 255)
            return ax_fail(err, AX_ERANGE, "%s: devices[%zu] is not a device id", path, i);
        ax->devices[ax->n_devices++] = (int)json_integer_value(e);
    }
    return AX_OK;
}

static enum ax_err layout_from_object(const json_t *o, const char *path, const char *dir,
                                      struct axmodel_layout *ax, char *err)
{
    enum ax_err rc;
    long long n = 0, rows = 0, cols = 0;
    memset(ax, 0, sizeof *ax);
    if ((rc = vendor_path(o, "template_filename_axmodel", dir, path, 1, ax->layer_template, err)) ||
        (rc = vendor_int(o, "axmodel_num", 1, MODEL_MAX_LAYERS, path, &n, err)) ||
        (rc = vendor_path(o, "filename_post_axmodel", dir, path, 0, ax->post_path, err)) ||
        (rc = vendor_path(o, "filename_tokens_embed", dir, path, 0, ax->embed_path, err)) ||
        (rc = vendor_int(o, "tokens_embed_num", 1, MODEL_MAX_VOCAB, path, &rows, err)) ||
        (rc = vendor_int(o, "tokens_embed_size", 1, MODEL_MAX_HIDDEN, path, &cols, err)) ||
        (rc = vendor_devices(o, path, ax, err)))
        return rc;
    ax->n_layers = (int)n;
    ax->embed_rows = rows;
    ax->embed_cols = cols;
    return AX_OK;
}

int model_is_vendor_config(const char *text, size_t len)
{
    json_t *o = json_loadb(text, len, 0, NULL);
    int r = json_is_object(o) && json_object_get(o, "template_filename_axmodel");
    json_decref(o);
    return r;
}

enum ax_err model_parse_vendor_config(const char *text, size_t len, const char *path,
                                      const char *dir, struct axmodel_layout *ax, char *err)
{
    enum ax_err rc;
    json_t *o = load_object(text, len, path, err, &rc);
    if (!o)
        return rc;
    rc = layout_from_object(o, path, dir, ax, err);
    json_decref(o);
    return rc;
}

/* ---- run scripts -------------------------------------------------------- */

/* Shell words, just enough for the vendor scripts: blanks separate words,
 * '...' and "..." quote, backslash escapes one char (backslash-newline
 * joins lines), '#' at a word start comments to end of line, and ';', '&',
 * '|', '>' and '<' end a command (they become their own word). */
static const char *next_word(const char *p, const char *end, struct ax_buf *w, enum ax_err *ok)
{
    ax_buf_reset(w);
    *ok = AX_OK;
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
            p++;
        if (p + 1 < end && *p == '\\' && p[1] == '\n') {
            p += 2;
            continue;
        }
        if (p < end && *p == '#')
            while (p < end && *p != '\n')
                p++;
        break;
    }
    if (p >= end)
        return NULL;
    if (strchr("\n;&|<>", *p)) {
        *ok = ax_buf_putc(w, *p);
        return p + 1;
    }
    while (p < end && !strchr(" \t\r\n;&|<>", *p)) {
        char q = *p;
        if (q == '\'' || q == '"') {
            for (p++; p < end && *p != q; p++) {
                if (q == '"' && *p == '\\' && p + 1 < end)
                    p++;
                if (*ok == AX_OK)
                    *ok = ax_buf_putc(w, *p);
            }
            if (p < end)
                p++;
            continue;
        }
        if (q == '\\' && p + 1 < end)
            p++;
        if (*ok == AX_OK)
            *ok = ax_buf_putc(w, *p);
        p++;
    }
    if (!w->data && *ok == AX_OK)
        *ok = ax_buf_puts(w, "");
    return p;
}

static enum ax_err collect_flags(const char *text, size_t len, const char *path, json_t *o,
                                 char *err)
{
    struct ax_buf w, key;
    ax_buf_init(&w, 1 << 16);
    ax_buf_init(&key, 1 << 16);
    const char *p = text, *end = text + len;
    enum ax_err ok = AX_OK;
    int have_key = 0;
    enum ax_err rc = AX_OK;
    while (rc == AX_OK && (p = next_word(p, end, &w, &ok)) != NULL) {
        if (ok) {
            rc = ax_fail(err, ok, "%s: %s", path,
                         ok == AX_ENOMEM ? "out of memory" : "a word is too long");
            break;
        }
        if (have_key && strncmp(w.data, "--", 2) != 0 && !strchr("\n;&|<>", w.data[0])) {
            if (json_object_set_new(o, key.data, json_string(w.data)))
                rc = ax_fail(err, AX_EFORMAT, "%s: flag --%s has a bad value", path, key.data);
            have_key = 0;
            continue;
        }
        have_key = 0;
        if (!strncmp(w.data, "--", 2) && w.data[2]) {
            char *eq = strchr(w.data + 2, '=');
            ax_buf_reset(&key);
            if (eq) {
                *eq = '\0';
                if (json_object_set_new(o, w.data + 2, json_string(eq + 1)))
                    rc = ax_fail(err, AX_EFORMAT, "%s: flag %s has a bad value", path, w.data);
            } else if ((rc = ax_buf_puts(&key, w.data + 2)) == AX_OK)
                have_key = 1;
            else
                rc = ax_fail(err, rc, "%s: flag %.64s: %s", path, w.data, ax_strerror(rc));
        }
    }
    ax_buf_free(&w);
    ax_buf_free(&key);
    return rc;
}

enum ax_err model_parse_run_script(const char *text, size_t len, const char *path, const char *dir,
                                   struct axmodel_layout *ax, char *err)
{
    json_t *o = json_object();
    if (!o)
        return ax_fail(err, AX_ENOMEM, "%s: out of memory", path);
    enum ax_err rc = collect_flags(text, len, path, o, err);
    if (rc == AX_OK && !json_object_get(o, "template_filename_axmodel"))
        rc = ax_fail(err, AX_ENOTFOUND, "%s: no --template_filename_axmodel flag", path);
    if (rc == AX_OK)
        rc = layout_from_object(o, path, dir, ax, err);
    json_decref(o);
    return rc;
}
