/* model.c - opens a model directory, decides what it is, and checks every
 * file it names before anyone uses it. Weights are mapped read-only and
 * handed out as borrowed slices; nothing here computes.
 *
 * What a directory is, in the order we test:
 *   1. config.json with "template_filename_axmodel": AXERA axmodel dir,
 *      vendor form (keys listed in model_int.h / config.c).
 *   2. a run*.sh script passing --template_filename_axmodel ...: AXERA
 *      axmodel dir, old flag form. A config.json next to it, if it is an HF
 *      Qwen3 config, supplies the hyper-parameters.
 *   3. config.json (HF): Qwen3 checkpoint with model.safetensors, or shards
 *      listed in model.safetensors.index.json ({"weight_map": {tensor:
 *      file}}).
 *   4. tokenizer.json + tokenizer_config.json only: tokenizer-only.
 * AXERA layout (paths relative to the dir): layer files from a printf
 * template with one %d (0..axmodel_num-1), a post model, and a raw bf16
 * embedding table of exactly tokens_embed_num * tokens_embed_size * 2
 * bytes. The tokenizer lives in the dir or a subfolder (qwen3_tokenizer/).
 * Sampling defaults: post_config.json (vendor), then generation_config.json
 * in the dir or the tokenizer folder. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <jansson.h>

#include "model/model_int.h"
#include "model/safetensors.h"
#include "util/file.h"
#include "util/mem.h"

#define MODEL_MAGIC 0x4d4f444cu /* "MODL" */
#define LFS_SIG "version https://git-lfs.github.com/spec/v1"
#define MAX_SHARDS 1024

struct shard {
    char *path; /* owned */
    struct ax_map map;
    struct st_header hdr;
};

struct tensor_ref {
    const struct st_tensor *t; /* borrowed from shards[shard].hdr */
    int shard;
};

struct model {
    uint32_t magic;
    enum model_kind kind;
    int synthetic;
    char dir[MODEL_PATH_MAX];
    char tok_json[MODEL_PATH_MAX]; /* "" if none */
    char tok_cfg[MODEL_PATH_MAX];
    struct qwen3_config cfg;
    struct gen_defaults gen;
    struct axmodel_layout ax;
    struct shard *shards;
    int n_shards;
    struct tensor_ref *refs; /* sorted by name */
    size_t n_refs;
};

/* ---- file checks -------------------------------------------------------- */

static enum ax_err lfs_error(const char *path, const uint8_t *p, size_t n, char *err)
{
    /* The pointer says how big the real file is: "size N" on its own line. */
    char size[32] = "?";
    for (size_t i = 0; i + 5 < n; i++)
        if ((i == 0 || p[i - 1] == '\n') && !memcmp(p + i, "size ", 5)) {
            size_t k = 0;
            for (i += 5; i < n && k + 1 < sizeof size && p[i] >= '0' && p[i] <= '9'; i++)
                size[k++] = (char)p[i];
            size[k ? k : 1] = '\0';
            break;
        }
    return ax_fail(err, AX_ELFS,
                   "%s is a Git LFS pointer (real file: %s bytes), not the file itself: run "
                   "`axserve pull <repo>` or download the real file (git lfs pull)",
                   path, size);
}

static enum ax_err check_lfs_bytes(const char *path, const uint8_t *p, size_t n, char *err)
{
    size_t sl = sizeof LFS_SIG - 1;
    if (n >= sl && !memcmp(p, LFS_SIG, sl))
        return lfs_error(path, p, n, err);
    return AX_OK;
}

enum ax_err model_check_not_lfs(const char *path, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ax_fail(err, AX_ENOTFOUND, "%s: cannot open", path);
    uint8_t buf[512];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return check_lfs_bytes(path, buf, n, err);
}

/* Reads a small JSON/text file after the LFS check. */
static enum ax_err read_small(const char *path, char **text, size_t *len, char *err)
{
    enum ax_err rc = model_check_not_lfs(path, err);
    if (rc)
        return rc;
    return ax_file_read(path, MODEL_MAX_JSON, text, len, err);
}

static int join(char *out, const char *dir, const char *name)
{
    return ax_path_join(out, MODEL_PATH_MAX, dir, name) == AX_OK;
}

/* ---- tokenizer ---------------------------------------------------------- */

static int has_tokenizer(const char *dir)
{
    char a[MODEL_PATH_MAX], b[MODEL_PATH_MAX];
    return join(a, dir, "tokenizer.json") && join(b, dir, "tokenizer_config.json") &&
           ax_file_exists(a) && ax_file_exists(b);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ax_free(v[i]);
    ax_free(v);
}

/* Lists dir's entries whose names satisfy want(); sorted, caller frees. */
static enum ax_err list_dir(const char *dir, int (*want)(const char *), char ***out, size_t *n,
                            char *err)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return ax_fail(err, AX_EIO, "%s: cannot list directory", dir);
    struct dirent *e;
    size_t cap = 0;
    enum ax_err rc = AX_OK;
    while ((e = readdir(d)) && rc == AX_OK) {
        if (e->d_name[0] == '.' || !want(e->d_name))
            continue;
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            char **v = cap >= 4096 ? NULL : ax_reallocarray(*out, nc, sizeof *v);
            if (!v) {
                rc = ax_fail(err, AX_ENOMEM, "%s: too many entries", dir);
                break;
            }
            *out = v;
            cap = nc;
        }
        if (!((*out)[*n] = ax_strdup(e->d_name)))
            rc = ax_fail(err, AX_ENOMEM, "%s: out of memory", dir);
        else
            (*n)++;
    }
    closedir(d);
    if (rc) {
        free_list(*out, *n);
        *out = NULL;
        *n = 0;
    } else if (*n)
        qsort(*out, *n, sizeof **out, cmp_str);
    return rc;
}

static int any_name(const char *s)
{
    (void)s;
    return 1;
}

/* The dir itself, else the first subfolder (by name, ones containing
 * "tokenizer" first) that holds both files. */
static enum ax_err find_tokenizer(struct model *m, int search_subdirs, char *err)
{
    m->tok_json[0] = m->tok_cfg[0] = '\0';
    char found[MODEL_PATH_MAX] = "";
    if (has_tokenizer(m->dir))
        snprintf(found, sizeof found, "%s", m->dir);
    else if (search_subdirs) {
        char **v;
        size_t n;
        enum ax_err rc = list_dir(m->dir, any_name, &v, &n, err);
        if (rc)
            return rc;
        for (int pass = 0; pass < 2 && !found[0]; pass++)
            for (size_t i = 0; i < n && !found[0]; i++) {
                char sub[MODEL_PATH_MAX];
                int named = strstr(v[i], "tokenizer") != NULL;
                if ((pass == 0) != named || !join(sub, m->dir, v[i]))
                    continue;
                if (has_tokenizer(sub))
                    snprintf(found, sizeof found, "%s", sub);
            }
        free_list(v, n);
    }
    if (!found[0])
        return AX_OK;
    if (!join(m->tok_json, found, "tokenizer.json") ||
        !join(m->tok_cfg, found, "tokenizer_config.json"))
        return ax_fail(err, AX_ETOOBIG, "%s: path too long", found);
    enum ax_err rc = model_check_not_lfs(m->tok_json, err);
    if (rc == AX_OK)
        rc = model_check_not_lfs(m->tok_cfg, err);
    return rc;
}

/* ---- generation_config.json ---------------------------------------------- */

static enum ax_err load_gen_config(struct model *m, const char *dir, char *err)
{
    char path[MODEL_PATH_MAX];
    if (!join(path, dir, "generation_config.json") || !ax_file_exists(path))
        return AX_OK;
    char *text;
    size_t len;
    enum ax_err rc = read_small(path, &text, &len, err);
    if (rc)
        return rc;
    rc = model_parse_gen_config(text, len, path, &m->gen, err);
    ax_free(text);
    return rc;
}

/* AXERA dirs: post_config.json, read before generation_config.json so an
 * HF generation config, when present, has the last word. */
static enum ax_err load_post_config(struct model *m, char *err)
{
    char path[MODEL_PATH_MAX];
    if (!join(path, m->dir, "post_config.json") || !ax_file_exists(path))
        return AX_OK;
    char *text;
    size_t len;
    enum ax_err rc = read_small(path, &text, &len, err);
    if (rc)
        return rc;
    rc = model_parse_post_config(text, len, path, &m->gen, err);
    ax_free(text);
    return rc;
}

static enum ax_err check_gen_ids(const struct model *m, char *err)
{
    for (int i = 0; i < m->gen.n_eos; i++)
        if (m->gen.eos[i] >= m->cfg.vocab)
            return ax_fail(err, AX_ERANGE, "%s: eos_token_id %d is outside the vocabulary (%d)",
                           m->dir, (int)m->gen.eos[i], m->cfg.vocab);
    if (m->gen.bos >= m->cfg.vocab)
        return ax_fail(err, AX_ERANGE, "%s: bos_token_id %d is outside the vocabulary (%d)", m->dir,
                       (int)m->gen.bos, m->cfg.vocab);
    return AX_OK;
}

/* ---- HF checkpoints: safetensors --------------------------------------- */

static enum ax_err open_shard(struct model *m, const char *file, char *err)
{
    struct shard *s = &m->shards[m->n_shards];
    char path[MODEL_PATH_MAX];
    if (!join(path, m->dir, file))
        return ax_fail(err, AX_ETOOBIG, "%s/%s: path too long", m->dir, file);
    if (!(s->path = ax_strdup(path)))
        return ax_fail(err, AX_ENOMEM, "out of memory");
    m->n_shards++;
    enum ax_err rc = ax_map_open(path, &s->map, err);
    if (rc == AX_ENOTFOUND)
        return ax_fail(err, rc, "%s is missing: run `axserve pull <repo>` or copy it", path);
    if (rc)
        return rc;
    /* before the first read (the header): weights are read in full, over
     * and over; the backend takes out what it only gathers rows from */
    ax_map_advise_whole(s->map.data, s->map.size);
    if ((rc = check_lfs_bytes(path, s->map.data, s->map.size, err)))
        return rc;
    return st_parse(s->map.data, s->map.size, path, &s->hdr, err);
}

static int ref_cmp(const void *a, const void *b)
{
    return strcmp(((const struct tensor_ref *)a)->t->name, ((const struct tensor_ref *)b)->t->name);
}

static enum ax_err refs_alloc(struct model *m, size_t n, char *err)
{
    m->refs = ax_calloc(n ? n : 1, sizeof *m->refs);
    return m->refs ? AX_OK : ax_fail(err, AX_ENOMEM, "out of memory for %zu tensors", n);
}

static enum ax_err open_single(struct model *m, char *err)
{
    enum ax_err rc;
    if (!(m->shards = ax_calloc(1, sizeof *m->shards)))
        return ax_fail(err, AX_ENOMEM, "out of memory");
    if ((rc = open_shard(m, "model.safetensors", err)))
        return rc;
    const struct st_header *h = &m->shards[0].hdr;
    if ((rc = refs_alloc(m, h->n, err)))
        return rc;
    for (size_t i = 0; i < h->n; i++)
        m->refs[m->n_refs++] = (struct tensor_ref){&h->t[i], 0};
    return AX_OK;
}

/* Shard names come from an untrusted index: plain names in the dir only. */
static int safe_name(const char *s)
{
    return *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int shard_index(const struct model *m, const char *file)
{
    char path[MODEL_PATH_MAX];
    if (!join(path, m->dir, file))
        return -1;
    for (int i = 0; i < m->n_shards; i++)
        if (!strcmp(m->shards[i].path, path))
            return i;
    return -1;
}

static enum ax_err index_entry(struct model *m, const char *ipath, const char *name,
                               const json_t *v, char *err)
{
    if (!json_is_string(v) || !safe_name(json_string_value(v)))
        return ax_fail(err, AX_EFORMAT, "%s: weight_map[\"%s\"] is not a file name in the dir",
                       ipath, name);
    const char *file = json_string_value(v);
    int si = shard_index(m, file);
    enum ax_err rc;
    if (si < 0) {
        if (m->n_shards >= MAX_SHARDS)
            return ax_fail(err, AX_ERANGE, "%s: more than %d shards", ipath, MAX_SHARDS);
        if ((rc = open_shard(m, file, err)))
            return rc;
        si = m->n_shards - 1;
    }
    const struct st_tensor *t = st_find(&m->shards[si].hdr, name);
    if (!t)
        return ax_fail(err, AX_EFORMAT, "%s: says tensor '%s' is in %s, but that file lacks it",
                       ipath, name, file);
    m->refs[m->n_refs++] = (struct tensor_ref){t, si};
    return AX_OK;
}

static enum ax_err open_sharded(struct model *m, const char *ipath, char *err)
{
    char *text;
    size_t len;
    enum ax_err rc = read_small(ipath, &text, &len, err);
    if (rc)
        return rc;
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    ax_free(text);
    const json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm)) {
        json_decref(root);
        return ax_fail(err, AX_EJSON, "%s: not a JSON object with a \"weight_map\" object%s%s",
                       ipath, root ? "" : ": ", root ? "" : je.text);
    }
    size_t n = json_object_size(wm);
    m->shards = ax_calloc(n < MAX_SHARDS ? n + 1 : MAX_SHARDS, sizeof *m->shards);
    rc = m->shards ? refs_alloc(m, n, err) : ax_fail(err, AX_ENOMEM, "out of memory");
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)wm, name, v)
    {
        if (rc)
            break;
        rc = index_entry(m, ipath, name, v, err);
    }
    json_decref(root);
    return rc;
}

/* ---- HF checkpoints: the Qwen3 tensor set ------------------------------- */

static const char *shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
    return buf;
}

static enum ax_err expect_float(const struct model *m, const char *name, int ndim, int64_t d0,
                                int64_t d1, char *err)
{
    int64_t shape[2] = {d0, d1};
    struct model_tensor t;
    enum ax_err rc = model_tensor_expect(m, name, ndim, shape, &t, err);
    if (rc)
        return rc;
    if (t.dtype != DT_F32 && t.dtype != DT_F16 && t.dtype != DT_BF16)
        return ax_fail(err, AX_EUNSUPPORTED,
                       "%s: tensor '%s' has dtype %s; only F32, F16 and BF16 are supported", m->dir,
                       name, st_dtype_name(t.dtype));
    return AX_OK;
}

static enum ax_err check_layer(const struct model *m, int l, char *err)
{
    const struct qwen3_config *c = &m->cfg;
    int64_t h = c->hidden, q = (int64_t)c->n_heads * c->head_dim;
    int64_t kv = (int64_t)c->n_kv_heads * c->head_dim, in = c->intermediate, d = c->head_dim;
    static const struct {
        const char *suffix;
        int ndim;
        int r, cidx; /* 0 hidden, 1 q, 2 kv, 3 inter, 4 head_dim */
    } want[] = {
        {"input_layernorm.weight", 1, 0, 0},  {"post_attention_layernorm.weight", 1, 0, 0},
        {"self_attn.q_proj.weight", 2, 1, 0}, {"self_attn.k_proj.weight", 2, 2, 0},
        {"self_attn.v_proj.weight", 2, 2, 0}, {"self_attn.o_proj.weight", 2, 0, 1},
        {"self_attn.q_norm.weight", 1, 4, 0}, {"self_attn.k_norm.weight", 1, 4, 0},
        {"mlp.gate_proj.weight", 2, 3, 0},    {"mlp.up_proj.weight", 2, 3, 0},
        {"mlp.down_proj.weight", 2, 0, 3},
    };
    int64_t dim[5] = {h, q, kv, in, d};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char name[128];
        snprintf(name, sizeof name, "model.layers.%d.%s", l, want[i].suffix);
        enum ax_err rc =
            expect_float(m, name, want[i].ndim, dim[want[i].r], dim[want[i].cidx], err);
        if (rc)
            return rc;
    }
    return AX_OK;
}

static enum ax_err check_qwen3_tensors(const struct model *m, char *err)
{
    const struct qwen3_config *c = &m->cfg;
    enum ax_err rc;
    if ((rc = expect_float(m, "model.embed_tokens.weight", 2, c->vocab, c->hidden, err)) ||
        (rc = expect_float(m, "model.norm.weight", 1, c->hidden, 0, err)))
        return rc;
    for (int l = 0; l < c->n_layers; l++)
        if ((rc = check_layer(m, l, err)))
            return rc;
    struct model_tensor t;
    int has_head = model_tensor(m, "lm_head.weight", &t, NULL) == AX_OK;
    if (!c->tied || has_head)
        return expect_float(m, "lm_head.weight", 2, c->vocab, c->hidden, err);
    return AX_OK;
}

/* ---- HF checkpoints: open ----------------------------------------------- */

static enum ax_err load_config(struct model *m, const char *path, char *err)
{
    char *text;
    size_t len;
    enum ax_err rc = read_small(path, &text, &len, err);
    if (rc)
        return rc;
    rc = model_parse_config(text, len, path, &m->cfg, &m->synthetic, err);
    /* config.json's own eos/bos, overridden by generation_config.json. */
    if (rc == AX_OK)
        rc = model_parse_gen_config(text, len, path, &m->gen, err);
    /* Sampling fields are not config.json's business; forget them. */
    m->gen.have_temperature = m->gen.have_top_p = m->gen.have_top_k = m->gen.have_min_p = 0;
    ax_free(text);
    return rc;
}

/* config.json without head_dim (model_parse_config guessed): q_norm has
 * one weight per head dimension, so its length is the checkpoint's own
 * head_dim. A missing or misshapen q_norm is left to check_qwen3_tensors,
 * which names it. */
static enum ax_err head_dim_from_weights(struct model *m, const char *cfg_path, char *err)
{
    struct model_tensor t = {0};
    if (!m->cfg.head_dim_implicit ||
        model_tensor(m, "model.layers.0.self_attn.q_norm.weight", &t, NULL) != AX_OK || t.ndim != 1)
        return AX_OK;
    m->cfg.head_dim = t.shape[0] > MODEL_MAX_HEAD_DIM ? MODEL_MAX_HEAD_DIM + 1 : (int)t.shape[0];
    return model_check_config(&m->cfg, cfg_path, err);
}

static enum ax_err open_hf(struct model *m, const char *cfg_path, char *err)
{
    enum ax_err rc;
    char path[MODEL_PATH_MAX];
    m->kind = MODEL_HF;
    if ((rc = load_config(m, cfg_path, err)) || (rc = load_gen_config(m, m->dir, err)) ||
        (rc = check_gen_ids(m, err)) || (rc = find_tokenizer(m, 0, err)))
        return rc;
    if (!join(path, m->dir, "model.safetensors.index.json"))
        return ax_fail(err, AX_ETOOBIG, "%s: path too long", m->dir);
    if (ax_file_exists(path))
        rc = open_sharded(m, path, err);
    else if (join(path, m->dir, "model.safetensors") && ax_file_exists(path))
        rc = open_single(m, err);
    else
        return ax_fail(err, AX_ENOTFOUND,
                       "%s: no model.safetensors or model.safetensors.index.json: run `axserve "
                       "pull <repo>` or copy the weights",
                       m->dir);
    if (rc)
        return rc;
    qsort(m->refs, m->n_refs, sizeof *m->refs, ref_cmp);
    if ((rc = head_dim_from_weights(m, cfg_path, err)))
        return rc;
    return check_qwen3_tensors(m, err);
}

/* ---- AXERA axmodel dirs ------------------------------------------------- */

static int is_run_script(const char *s)
{
    size_t n = strlen(s);
    return !strncmp(s, "run", 3) && n > 3 && !strcmp(s + n - 3, ".sh");
}

/* First run*.sh (by name) with the flags; AX_ENOTFOUND if none. */
static enum ax_err find_run_script(struct model *m, char *err)
{
    char **v;
    size_t n;
    enum ax_err rc = list_dir(m->dir, is_run_script, &v, &n, err);
    if (rc)
        return rc;
    rc = AX_ENOTFOUND;
    for (size_t i = 0; i < n && rc == AX_ENOTFOUND; i++) {
        char path[MODEL_PATH_MAX], *text;
        size_t len;
        if (!join(path, m->dir, v[i]))
            continue;
        enum ax_err rr = read_small(path, &text, &len, err);
        if (rr == AX_ENOMEM) {
            rc = rr;
            break;
        }
        if (rr)
            continue; /* an unreadable script is not ours to judge */
        rc = model_parse_run_script(text, len, path, m->dir, &m->ax, err);
        ax_free(text);
    }
    free_list(v, n);
    return rc;
}

/* Appends the run [a, b] as "a" or "a-b" to a "3, 7, 12-20" list. */
static void add_run(char *out, size_t n, int a, int b)
{
    size_t k = strlen(out);
    if (k + 32 >= n) {
        if (k + 4 < n && strcmp(out + k - 3, "...") != 0)
            snprintf(out + k, n - k, "...");
        return;
    }
    if (a == b)
        snprintf(out + k, n - k, "%s%d", k ? ", " : "", a);
    else
        snprintf(out + k, n - k, "%s%d-%d", k ? ", " : "", a, b);
}

static int layer_present(const struct model *m, int i, char *err, enum ax_err *rc)
{
    char path[MODEL_PATH_MAX + 16];
    /* The template holds exactly one %d (checked when parsed). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(path, sizeof path, m->ax.layer_template, i);
#pragma GCC diagnostic pop
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
        return 0;
    *rc = model_check_not_lfs(path, err);
    return 1;
}

static enum ax_err check_layers(const struct model *m, char *err)
{
    char missing[256] = "";
    int n_missing = 0, run = -1;
    for (int i = 0; i <= m->ax.n_layers; i++) {
        enum ax_err rc = AX_OK;
        int present = i == m->ax.n_layers || layer_present(m, i, err, &rc);
        if (rc)
            return rc;
        if (!present) {
            n_missing++;
            if (run < 0)
                run = i;
        } else if (run >= 0) {
            add_run(missing, sizeof missing, run, i - 1);
            run = -1;
        }
    }
    if (n_missing)
        return ax_fail(err, AX_ENOTFOUND,
                       "%s: %d of %d layer files missing or empty (%s), layer index: %s: run "
                       "`axserve pull <repo>`",
                       m->dir, n_missing, m->ax.n_layers, m->ax.layer_template, missing);
    return AX_OK;
}

static enum ax_err check_embed(const struct model *m, char *err)
{
    const struct axmodel_layout *ax = &m->ax;
    struct stat st;
    if (stat(ax->embed_path, &st) != 0 || !S_ISREG(st.st_mode))
        return ax_fail(err, AX_ENOTFOUND,
                       "%s: embedding table is missing: run `axserve pull "
                       "<repo>`",
                       ax->embed_path);
    enum ax_err rc = model_check_not_lfs(ax->embed_path, err);
    if (rc)
        return rc;
    /* rows <= 2^22 and cols <= 2^16: the product cannot overflow. */
    uint64_t want = (uint64_t)ax->embed_rows * (uint64_t)ax->embed_cols * 2;
    if ((uint64_t)st.st_size != want)
        return ax_fail(err, AX_EFORMAT,
                       "%s: %lld bytes, but tokens_embed_num %lld x tokens_embed_size %lld x 2 "
                       "(bf16) = %llu: truncated or wrong file",
                       ax->embed_path, (long long)st.st_size, (long long)ax->embed_rows,
                       (long long)ax->embed_cols, (unsigned long long)want);
    return AX_OK;
}

static enum ax_err check_post(const struct model *m, char *err)
{
    struct stat st;
    if (stat(m->ax.post_path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
        return ax_fail(err, AX_ENOTFOUND,
                       "%s: post model is missing or empty: run `axserve "
                       "pull <repo>`",
                       m->ax.post_path);
    return model_check_not_lfs(m->ax.post_path, err);
}

/* Hyper-parameters: an HF config.json if the dir has one (flag form),
 * else what the layout implies; the rest stays 0 = unknown (the AXCL
 * backend reads it from the models' IO info). */
static enum ax_err axmodel_config(struct model *m, const char *cfg_path, int vendor, char *err)
{
    struct qwen3_config *c = &m->cfg;
    if (!vendor && ax_file_exists(cfg_path)) {
        enum ax_err rc = load_config(m, cfg_path, err);
        if (rc)
            return rc;
        if (c->hidden != m->ax.embed_cols || c->vocab != m->ax.embed_rows ||
            c->n_layers != m->ax.n_layers)
            return ax_fail(err, AX_EFORMAT,
                           "%s: hidden_size/vocab_size/num_hidden_layers (%d/%d/%d) disagree "
                           "with the run script (%lld/%lld/%d)",
                           cfg_path, c->hidden, c->vocab, c->n_layers, (long long)m->ax.embed_cols,
                           (long long)m->ax.embed_rows, m->ax.n_layers);
        return AX_OK;
    }
    memset(c, 0, sizeof *c);
    c->hidden = (int)m->ax.embed_cols;
    c->vocab = (int)m->ax.embed_rows;
    c->n_layers = m->ax.n_layers;
    return AX_OK;
}

static enum ax_err open_axmodel(struct model *m, const char *cfg_path, const char *text, size_t len,
                                char *err)
{
    enum ax_err rc;
    m->kind = MODEL_AXMODEL;
    int vendor = text != NULL;
    if (vendor)
        rc = model_parse_vendor_config(text, len, cfg_path, m->dir, &m->ax, err);
    else
        rc = AX_OK; /* layout already read by find_run_script */
    if (rc || (rc = axmodel_config(m, cfg_path, vendor, err)) || (rc = check_layers(m, err)) ||
        (rc = check_post(m, err)) || (rc = check_embed(m, err)) || (rc = find_tokenizer(m, 1, err)))
        return rc;
    if ((rc = load_post_config(m, err)) || (rc = load_gen_config(m, m->dir, err)))
        return rc;
    if (m->tok_json[0]) {
        char tdir[MODEL_PATH_MAX];
        snprintf(tdir, sizeof tdir, "%.*s", (int)(strlen(m->tok_json) - strlen("/tokenizer.json")),
                 m->tok_json);
        if (strcmp(tdir, m->dir) != 0 && (rc = load_gen_config(m, tdir, err)))
            return rc;
    }
    return check_gen_ids(m, err);
}

/* ---- open / free -------------------------------------------------------- */

static enum ax_err detect_and_open(struct model *m, char *err)
{
    char cfg[MODEL_PATH_MAX];
    if (!join(cfg, m->dir, "config.json"))
        return ax_fail(err, AX_ETOOBIG, "%s: path too long", m->dir);
    if (ax_file_exists(cfg)) {
        char *text;
        size_t len;
        enum ax_err rc = read_small(cfg, &text, &len, err);
        if (rc)
            return rc;
        if (model_is_vendor_config(text, len)) {
            rc = open_axmodel(m, cfg, text, len, err);
            ax_free(text);
            return rc;
        }
        ax_free(text);
    }
    enum ax_err rc = find_run_script(m, err);
    if (rc == AX_OK)
        return open_axmodel(m, cfg, NULL, 0, err);
    if (rc != AX_ENOTFOUND)
        return rc;
    if (ax_file_exists(cfg))
        return open_hf(m, cfg, err);
    if ((rc = find_tokenizer(m, 0, err)))
        return rc;
    if (!m->tok_json[0])
        return ax_fail(err, AX_ENOTFOUND,
                       "%s: not a model directory (no config.json, no run*.sh with "
                       "--template_filename_axmodel, no tokenizer.json + tokenizer_config.json)",
                       m->dir);
    m->kind = MODEL_TOKENIZER_ONLY;
    return load_gen_config(m, m->dir, err);
}

enum ax_err model_open(const char *dir, struct model **out, char *err)
{
    *out = NULL;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ax_fail(err, AX_ENOTFOUND, "%s: no such model directory", dir);
    struct model *m = ax_calloc(1, sizeof *m);
    if (!m)
        return ax_fail(err, AX_ENOMEM, "out of memory");
    m->magic = MODEL_MAGIC;
    model_gen_defaults_init(&m->gen);
    char *real = realpath(dir, NULL); /* libc allocation, freed with free() */
    int r = snprintf(m->dir, sizeof m->dir, "%s", real ? real : dir);
    free(real);
    enum ax_err rc = (r < 0 || r >= MODEL_PATH_MAX - 64)
                         ? ax_fail(err, AX_ETOOBIG, "%s: path too long", dir)
                         : detect_and_open(m, err);
    if (rc) {
        model_free(m);
        return rc;
    }
    *out = m;
    return AX_OK;
}

void model_free(struct model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_shards; i++) {
        st_header_free(&m->shards[i].hdr);
        ax_map_close(&m->shards[i].map);
        ax_free(m->shards[i].path);
    }
    ax_free(m->shards);
    ax_free(m->refs);
    m->magic = 0;
    ax_free(m);
}

/* ---- accessors ---------------------------------------------------------- */

enum model_kind model_kind(const struct model *m)
{
    return m->kind;
}
const char *model_dir(const struct model *m)
{
    return m->dir;
}
int model_is_synthetic(const struct model *m)
{
    return m->synthetic;
}

const char *model_tokenizer_json(const struct model *m)
{
    return m->tok_json[0] ? m->tok_json : NULL;
}

const char *model_tokenizer_config(const struct model *m)
{
    return m->tok_cfg[0] ? m->tok_cfg : NULL;
}

enum ax_err model_need_tokenizer(const struct model *m, char *err)
{
    if (m->tok_json[0])
        return AX_OK;
    return ax_fail(err, AX_ENOTFOUND,
                   "%s has no tokenizer.json and tokenizer_config.json (nor a tokenizer "
                   "subfolder): run `axserve pull <repo>` or copy them next to the weights",
                   m->dir);
}

const struct qwen3_config *model_config(const struct model *m)
{
    return m->kind == MODEL_TOKENIZER_ONLY ? NULL : &m->cfg;
}

const struct gen_defaults *model_gen_defaults(const struct model *m)
{
    return &m->gen;
}

const struct axmodel_layout *model_axmodel(const struct model *m)
{
    return m->kind == MODEL_AXMODEL ? &m->ax : NULL;
}

size_t model_n_tensors(const struct model *m)
{
    return m->n_refs;
}

enum ax_err model_tensor_at(const struct model *m, size_t i, struct model_tensor *out)
{
    if (i >= m->n_refs)
        return AX_ERANGE;
    const struct tensor_ref *r = &m->refs[i];
    const struct shard *s = &m->shards[r->shard];
    out->name = r->t->name;
    out->dtype = r->t->dtype;
    out->ndim = r->t->ndim;
    memset(out->shape, 0, sizeof out->shape);
    for (int k = 0; k < r->t->ndim; k++)
        out->shape[k] = r->t->shape[k];
    out->data = s->map.data + s->hdr.data_start + r->t->begin;
    out->nbytes = (size_t)(r->t->end - r->t->begin);
    return AX_OK;
}

enum ax_err model_tensor(const struct model *m, const char *name, struct model_tensor *out,
                         char *err)
{
    size_t lo = 0, hi = m->n_refs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, m->refs[mid].t->name);
        if (!c)
            return model_tensor_at(m, mid, out);
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return ax_fail(err, AX_ENOTFOUND, "%s: tensor '%s' is missing from the checkpoint", m->dir,
                   name);
}

enum ax_err model_tensor_expect(const struct model *m, const char *name, int ndim,
                                const int64_t *shape, struct model_tensor *out, char *err)
{
    enum ax_err rc = model_tensor(m, name, out, err);
    if (rc)
        return rc;
    int same = out->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = out->shape[i] == shape[i];
    if (!same) {
        char want[96], got[96];
        return ax_fail(err, AX_EFORMAT,
                       "%s: tensor '%s' has shape %s, expected %s (config.json and weights "
                       "disagree)",
                       m->dir, name, shape_str(got, sizeof got, out->ndim, out->shape),
                       shape_str(want, sizeof want, ndim, shape));
    }
    return AX_OK;
}
