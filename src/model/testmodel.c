/* testmodel.c - the synthetic Qwen3 checkpoint writer behind
 * `axserve make-test-model` (what and why in testmodel.h). It writes the
 * safetensors format described in safetensors.h; it does not check that a
 * backend can run the result (model_open does that when it is loaded).
 *
 * Weights: matrices N(0, 0.02^2) (the HF initializer_range), norm weights
 * 1 + N(0, 0.05^2). With these scales the residual stream stays O(1) over
 * many layers, so activations are finite for any prompt. Each tensor has its
 * own PRNG stream derived from (seed, name), so the values do not depend on
 * sharding or on the order tensors are written. */
#include "model/testmodel.h"

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model_int.h"
#include "util/file.h"
#include "util/mem.h"

#define MAX_TENSORS (3 + 11 * MODEL_MAX_LAYERS)
#define MAX_TOKENIZER_JSON ((size_t)64 * 1024 * 1024)

void testmodel_defaults(struct test_model_opts *o)
{
    memset(o, 0, sizeof *o);
    o->hidden = 256;
    o->layers = 4;
    o->heads = 4;
    o->kv_heads = 2;
    o->head_dim = 64;
    o->intermediate = 768;
    o->vocab = 0;
    o->max_pos = 4096;
    o->dtype = DT_BF16;
    o->tied = 1;
    o->shards = 1;
    o->seed = 42;
}

/* ---- vocabulary from tokenizer.json ------------------------------------ */

static json_int_t max_id(const json_t *vocab, const json_t *added)
{
    json_int_t mx = -1;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)vocab, k, v) if (json_is_integer(v) && json_integer_value(v) > mx)
        mx = json_integer_value(v);
    for (size_t i = 0; i < json_array_size(added); i++) {
        const json_t *id = json_object_get(json_array_get(added, i), "id");
        if (json_is_integer(id) && json_integer_value(id) > mx)
            mx = json_integer_value(id);
    }
    return mx;
}

enum ax_err testmodel_vocab_from_tokenizer(const char *path, int *vocab, int *id_range, char *err)
{
    char *text;
    size_t len;
    enum ax_err rc = model_check_not_lfs(path, err);
    if (rc || (rc = ax_file_read(path, MAX_TOKENIZER_JSON, &text, &len, err)))
        return rc;
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    ax_free(text);
    const json_t *v = json_object_get(json_object_get(root, "model"), "vocab");
    if (!json_is_object(v)) {
        json_decref(root);
        return ax_fail(err, AX_EFORMAT, "%s: no model.vocab object", path);
    }
    json_int_t mx = max_id(v, json_object_get(root, "added_tokens"));
    json_decref(root);
    if (mx < 0 || mx >= MODEL_MAX_VOCAB)
        return ax_fail(err, AX_ERANGE, "%s: token ids out of range", path);
    int n = (int)mx + 1;
    *id_range = n;
    /* Qwen2, 2.5 and 3 checkpoints (0.5B-32B) all use 151936 rows for
     * their 151643 + up to 293 added ids. */
    *vocab = (n >= 151643 && n <= 151936) ? 151936 : (n + 127) / 128 * 128;
    return AX_OK;
}

/* ---- random numbers ------------------------------------------------------ */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t name_seed(uint64_t seed, const char *name)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = name; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    uint64_t s = seed ^ h;
    return splitmix(&s);
}

/* Standard normal by Box-Muller; uniforms in (0, 1]. */
static double normal(uint64_t *s)
{
    double u1 = ((splitmix(s) >> 11) + 1) * (1.0 / 9007199254740992.0);
    double u2 = (splitmix(s) >> 11) * (1.0 / 9007199254740992.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* f32 -> bf16, round to nearest even (values here are finite). */
static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* ---- the tensor list ---------------------------------------------------- */

struct tm_tensor {
    char name[96];
    int ndim;
    int64_t shape[2];
    int is_norm;
    uint64_t nbytes;
    int shard;
};

static void add(struct tm_tensor *t, size_t *n, const char *name, int64_t d0, int64_t d1,
                int is_norm)
{
    struct tm_tensor *x = &t[(*n)++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->ndim = d1 ? 2 : 1;
    x->shape[0] = d0;
    x->shape[1] = d1;
    x->is_norm = is_norm;
}

static size_t list_tensors(const struct test_model_opts *o, struct tm_tensor *t)
{
    size_t n = 0;
    int64_t h = o->hidden, q = (int64_t)o->heads * o->head_dim;
    int64_t kv = (int64_t)o->kv_heads * o->head_dim, in = o->intermediate;
    add(t, &n, "model.embed_tokens.weight", o->vocab, h, 0);
    for (int l = 0; l < o->layers; l++) {
        char b[96];
#define L(suffix, d0, d1, norm)                                                                    \
    snprintf(b, sizeof b, "model.layers.%d." suffix, l);                                           \
    add(t, &n, b, d0, d1, norm)
        L("input_layernorm.weight", h, 0, 1);
        L("self_attn.q_proj.weight", q, h, 0);
        L("self_attn.k_proj.weight", kv, h, 0);
        L("self_attn.v_proj.weight", kv, h, 0);
        L("self_attn.o_proj.weight", h, q, 0);
        L("self_attn.q_norm.weight", o->head_dim, 0, 1);
        L("self_attn.k_norm.weight", o->head_dim, 0, 1);
        L("post_attention_layernorm.weight", h, 0, 1);
        L("mlp.gate_proj.weight", in, h, 0);
        L("mlp.up_proj.weight", in, h, 0);
        L("mlp.down_proj.weight", h, in, 0);
#undef L
    }
    add(t, &n, "model.norm.weight", h, 0, 1);
    if (!o->tied)
        add(t, &n, "lm_head.weight", o->vocab, h, 0);
    size_t es = o->dtype == DT_F32 ? 4 : 2;
    for (size_t i = 0; i < n; i++)
        t[i].nbytes = (uint64_t)t[i].shape[0] * (uint64_t)(t[i].ndim == 2 ? t[i].shape[1] : 1) * es;
    return n;
}

/* Contiguous groups of roughly equal bytes, in list order. */
static void assign_shards(struct tm_tensor *t, size_t n, int shards)
{
    uint64_t total = 0, acc = 0;
    for (size_t i = 0; i < n; i++)
        total += t[i].nbytes;
    int s = 0;
    for (size_t i = 0; i < n; i++) {
        /* Move on once this shard holds its share, keeping >= 1 tensor
         * for every remaining shard. */
        if (s < shards - 1 && acc >= total * (uint64_t)(s + 1) / (uint64_t)shards &&
            n - i >= (size_t)(shards - s - 1))
            s++;
        if (s < shards - 1 && n - i == (size_t)(shards - s - 1))
            s++;
        t[i].shard = s;
        acc += t[i].nbytes;
    }
}

/* ---- safetensors writing ------------------------------------------------ */

static enum ax_err write_data(FILE *f, const struct tm_tensor *t, const struct test_model_opts *o)
{
    uint64_t s = name_seed(o->seed, t->name);
    uint64_t count = (uint64_t)t->shape[0] * (uint64_t)(t->ndim == 2 ? t->shape[1] : 1);
    enum { CHUNK = 8192 };
    union {
        float f[CHUNK];
        uint16_t b[CHUNK];
    } buf;
    while (count) {
        size_t k = count < CHUNK ? (size_t)count : CHUNK;
        for (size_t i = 0; i < k; i++) {
            float x = (float)(t->is_norm ? 1.0 + 0.05 * normal(&s) : 0.02 * normal(&s));
            if (o->dtype == DT_F32)
                buf.f[i] = x;
            else
                buf.b[i] = to_bf16(x);
        }
        if (fwrite(&buf, o->dtype == DT_F32 ? 4 : 2, k, f) != k)
            return AX_EIO;
        count -= k;
    }
    return AX_OK;
}

static char *header_json(const struct tm_tensor *t, size_t n, int shard, const char *dt)
{
    json_t *h = json_object();
    uint64_t off = 0;
    json_object_set_new(h, "__metadata__", json_pack("{s:s}", "format", "pt"));
    for (size_t i = 0; i < n; i++) {
        if (t[i].shard != shard)
            continue;
        json_t *shape = t[i].ndim == 2 ? json_pack("[I,I]", (json_int_t)t[i].shape[0],
                                                   (json_int_t)t[i].shape[1])
                                       : json_pack("[I]", (json_int_t)t[i].shape[0]);
        json_object_set_new(h, t[i].name,
                            json_pack("{s:s,s:o,s:[I,I]}", "dtype", dt, "shape", shape,
                                      "data_offsets", (json_int_t)off,
                                      (json_int_t)off + (json_int_t)t[i].nbytes));
        off += t[i].nbytes;
    }
    char *s = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    return s;
}

static enum ax_err write_shard(const char *path, const struct tm_tensor *t, size_t n, int shard,
                               const struct test_model_opts *o, uint64_t *size, char *err)
{
    char *hj = header_json(t, n, shard, o->dtype == DT_F32 ? "F32" : "BF16");
    if (!hj)
        return ax_fail(err, AX_ENOMEM, "out of memory for the safetensors header");
    /* Pad the header with spaces to a multiple of 8 so the data section is
     * aligned, as the reference writer does. */
    size_t hl = strlen(hj), padded = (hl + 7) / 8 * 8;
    FILE *f = fopen(path, "wb");
    void *wbuf = f ? ax_write_buffer(f) : NULL;
    enum ax_err rc = f ? AX_OK : AX_EIO;
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    if (rc == AX_OK && (fwrite(len8, 1, 8, f) != 8 || fwrite(hj, 1, hl, f) != hl))
        rc = AX_EIO;
    for (size_t i = hl; rc == AX_OK && i < padded; i++)
        if (fputc(' ', f) == EOF)
            rc = AX_EIO;
    json_free_t jfree;
    json_get_alloc_funcs(NULL, &jfree);
    jfree(hj);
    for (size_t i = 0; rc == AX_OK && i < n; i++)
        if (t[i].shard == shard)
            rc = write_data(f, &t[i], o);
    if (f) {
        if (ferror(f))
            rc = AX_EIO;
        if (rc == AX_OK)
            *size = (uint64_t)ftell(f);
        if (fclose(f) != 0)
            rc = AX_EIO;
    }
    ax_free(wbuf);
    return rc ? ax_fail(err, rc, "%s: write failed: %s", path, strerror(errno)) : AX_OK;
}

/* ---- JSON files --------------------------------------------------------- */

static enum ax_err dump(json_t *j, const char *path, char *err)
{
    int r = j ? json_dump_file(j, path, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) : -1;
    json_decref(j);
    return r ? ax_fail(err, AX_EIO, "%s: cannot write", path) : AX_OK;
}

/* Qwen3's end ids; a vocabulary too small to hold them (tiny backend test
 * models) uses its last two ids instead, so the files stay consistent. */
static int eos_id(const struct test_model_opts *o)
{
    return o->vocab > 151645 ? 151645 : o->vocab - 1;
}
static int bos_id(const struct test_model_opts *o)
{
    return o->vocab > 151645 ? 151643 : (o->vocab > 1 ? o->vocab - 2 : 0);
}

static json_t *config_json(const struct test_model_opts *o)
{
    return json_pack(
        "{s:[s],s:b,s:f,s:i,s:i,s:i,s:s,s:i,s:f,s:i,s:i,s:i,s:s,s:i,s:i,s:i,s:f,s:n,s:f,"
        "s:n,s:b,s:s,s:s,s:b,s:b,s:i,s:b,s:I}",
        "architectures", "Qwen3ForCausalLM", "attention_bias", 0, "attention_dropout", 0.0,
        "bos_token_id", bos_id(o), "eos_token_id", eos_id(o), "head_dim", o->head_dim, "hidden_act",
        "silu", "hidden_size", o->hidden, "initializer_range", 0.02, "intermediate_size",
        o->intermediate, "max_position_embeddings", o->max_pos, "max_window_layers", o->layers,
        "model_type", "qwen3", "num_attention_heads", o->heads, "num_hidden_layers", o->layers,
        "num_key_value_heads", o->kv_heads, "rms_norm_eps", 1e-6, "rope_scaling", "rope_theta",
        1000000.0, "sliding_window", "tie_word_embeddings", o->tied, "torch_dtype",
        o->dtype == DT_F32 ? "float32" : "bfloat16", "transformers_version", "4.51.0", "use_cache",
        1, "use_sliding_window", 0, "vocab_size", o->vocab, "axserve_synthetic", 1, "axserve_seed",
        (json_int_t)o->seed);
}

static json_t *gen_config_json(const struct test_model_opts *o)
{
    return json_pack("{s:i,s:b,s:[i,i],s:i,s:f,s:i,s:f,s:s}", "bos_token_id", bos_id(o),
                     "do_sample", 1, "eos_token_id", eos_id(o), bos_id(o), "pad_token_id",
                     bos_id(o), "temperature", 0.6, "top_k", 20, "top_p", 0.95,
                     "transformers_version", "4.51.0");
}

static enum ax_err write_index(const char *path, const struct tm_tensor *t, size_t n, int shards,
                               char *err)
{
    json_t *wm = json_object();
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        char f[64];
        snprintf(f, sizeof f, "model-%05d-of-%05d.safetensors", t[i].shard + 1, shards);
        json_object_set_new(wm, t[i].name, json_string(f));
        total += t[i].nbytes;
    }
    return dump(
        json_pack("{s:{s:I},s:o}", "metadata", "total_size", (json_int_t)total, "weight_map", wm),
        path, err);
}

/* ---- files and directories ---------------------------------------------- */

static enum ax_err copy_file(const char *from, const char *to, char *err)
{
    char *text;
    size_t len;
    enum ax_err rc = model_check_not_lfs(from, err);
    if (rc || (rc = ax_file_read(from, MAX_TOKENIZER_JSON, &text, &len, err)))
        return rc;
    FILE *f = fopen(to, "wb");
    int ok = f && fwrite(text, 1, len, f) == len;
    if (f && fclose(f) != 0)
        ok = 0;
    ax_free(text);
    return ok ? AX_OK : ax_fail(err, AX_EIO, "%s: cannot write", to);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void rm_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* An existing output dir is replaced only if it is empty or a model we
 * made (config.json says axserve_synthetic), never someone's real model. */
static enum ax_err may_replace(const char *dir, char *err)
{
    char cfg[MODEL_PATH_MAX];
    struct stat st;
    if (stat(dir, &st) != 0)
        return AX_OK;
    if (!S_ISDIR(st.st_mode))
        return ax_fail(err, AX_EINVAL, "%s exists and is not a directory", dir);
    if (rmdir(dir) == 0)
        return AX_OK; /* was empty */
    char *text;
    size_t len;
    int ok = 0;
    if (ax_path_join(cfg, sizeof cfg, dir, "config.json") == AX_OK &&
        ax_file_read(cfg, MODEL_MAX_JSON, &text, &len, NULL) == AX_OK) {
        json_t *j = json_loadb(text, len, 0, NULL);
        ok = json_is_true(json_object_get(j, "axserve_synthetic"));
        json_decref(j);
        ax_free(text);
    }
    return ok ? AX_OK
              : ax_fail(err, AX_EINVAL,
                        "%s exists and is not a synthetic model: choose another directory or "
                        "remove it",
                        dir);
}

static enum ax_err check_opts(struct test_model_opts *o, char *err)
{
    if (!o->vocab) {
        if (!o->tokenizer_from)
            return ax_fail(err, AX_EINVAL, "give --vocab N or --tokenizer-from DIR");
        char p[MODEL_PATH_MAX];
        int range;
        enum ax_err rc = ax_path_join(p, sizeof p, o->tokenizer_from, "tokenizer.json");
        if (rc || (rc = testmodel_vocab_from_tokenizer(p, &o->vocab, &range, err)))
            return rc;
    }
    if (o->dtype != DT_F32 && o->dtype != DT_BF16)
        return ax_fail(err, AX_EINVAL, "dtype must be f32 or bf16");
    if (o->shards < 1 || o->shards > 99 || o->shards > 3 + 11 * o->layers)
        return ax_fail(err, AX_EINVAL, "--shards must be 1..99 and at most the tensor count");
    struct qwen3_config c = {.hidden = o->hidden,
                             .intermediate = o->intermediate,
                             .n_layers = o->layers,
                             .n_heads = o->heads,
                             .n_kv_heads = o->kv_heads,
                             .head_dim = o->head_dim,
                             .vocab = o->vocab,
                             .max_pos = o->max_pos,
                             .tied = o->tied,
                             .rope_theta = 1e6,
                             .rms_eps = 1e-6};
    if (o->hidden < 1 || o->hidden > MODEL_MAX_HIDDEN || o->intermediate < 1 ||
        o->intermediate > MODEL_MAX_INTER || o->layers < 1 || o->layers > MODEL_MAX_LAYERS ||
        o->heads < 1 || o->heads > MODEL_MAX_HEADS || o->vocab < 1 || o->vocab > MODEL_MAX_VOCAB ||
        o->max_pos < 1 || o->max_pos > MODEL_MAX_POS)
        return ax_fail(err, AX_ERANGE,
                       "a size is out of range (hidden <= %d, layers <= %d, "
                       "heads <= %d, vocab <= %d)",
                       MODEL_MAX_HIDDEN, MODEL_MAX_LAYERS, MODEL_MAX_HEADS, MODEL_MAX_VOCAB);
    return model_check_config(&c, "make-test-model", err);
}

/* ---- the whole checkpoint ----------------------------------------------- */

static enum ax_err write_all(const struct test_model_opts *o, const char *tmp, struct tm_tensor *t,
                             size_t n, FILE *log, char *err)
{
    char p[MODEL_PATH_MAX];
    enum ax_err rc;
    if ((rc = ax_path_join(p, sizeof p, tmp, "config.json")) ||
        (rc = dump(config_json(o), p, err)) ||
        (rc = ax_path_join(p, sizeof p, tmp, "generation_config.json")) ||
        (rc = dump(gen_config_json(o), p, err)))
        return rc ? rc : AX_EIO;
    for (int s = 0; s < o->shards; s++) {
        char f[64];
        uint64_t size = 0;
        if (o->shards == 1)
            snprintf(f, sizeof f, "model.safetensors");
        else
            snprintf(f, sizeof f, "model-%05d-of-%05d.safetensors", s + 1, o->shards);
        if ((rc = ax_path_join(p, sizeof p, tmp, f)) ||
            (rc = write_shard(p, t, n, s, o, &size, err)))
            return rc;
        if (log)
            fprintf(log, "  %s (%llu bytes)\n", f, (unsigned long long)size);
    }
    if (o->shards > 1 && ((rc = ax_path_join(p, sizeof p, tmp, "model.safetensors.index.json")) ||
                          (rc = write_index(p, t, n, o->shards, err))))
        return rc;
    static const char *const tokfiles[] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; o->tokenizer_from && i < 2; i++) {
        char from[MODEL_PATH_MAX];
        if ((rc = ax_path_join(from, sizeof from, o->tokenizer_from, tokfiles[i])) ||
            (rc = ax_path_join(p, sizeof p, tmp, tokfiles[i])) || (rc = copy_file(from, p, err)))
            return rc;
    }
    return AX_OK;
}

static enum ax_err install(const char *tmp, const char *dir, char *err)
{
    char old[MODEL_PATH_MAX + 8];
    struct stat st;
    snprintf(old, sizeof old, "%s.old", tmp);
    int had = stat(dir, &st) == 0;
    if (had && rename(dir, old) != 0)
        return ax_fail(err, AX_EIO, "%s: cannot move aside: %s", dir, strerror(errno));
    if (rename(tmp, dir) != 0) {
        int e = errno;
        if (had)
            rename(old, dir);
        return ax_fail(err, AX_EIO, "%s: cannot rename into place: %s", dir, strerror(e));
    }
    if (had)
        rm_tree(old);
    return AX_OK;
}

enum ax_err testmodel_write(const struct test_model_opts *opts, FILE *log, char *err)
{
    struct test_model_opts o = *opts;
    enum ax_err rc = check_opts(&o, err);
    if (rc || (rc = may_replace(o.dir, err)))
        return rc;
    char tmp[MODEL_PATH_MAX];
    int r = snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", o.dir);
    if (r < 0 || r >= MODEL_PATH_MAX - 16)
        return ax_fail(err, AX_ETOOBIG, "%s: path too long", o.dir);
    if (!mkdtemp(tmp))
        return ax_fail(err, AX_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    chmod(tmp, 0755); /* mkdtemp makes it 0700; a model dir is shared data */
    struct tm_tensor *t = ax_mallocarray(MAX_TENSORS, sizeof *t);
    if (!t) {
        rm_tree(tmp);
        return ax_fail(err, AX_ENOMEM, "out of memory");
    }
    size_t n = list_tensors(&o, t);
    assign_shards(t, n, o.shards);
    if (log)
        fprintf(log,
                "make-test-model: synthetic Qwen3 (random weights, seed %llu): hidden %d, "
                "layers %d, heads %d/%d, head_dim %d, intermediate %d, vocab %d, %s, tied %d\n",
                (unsigned long long)o.seed, o.hidden, o.layers, o.heads, o.kv_heads, o.head_dim,
                o.intermediate, o.vocab, o.dtype == DT_F32 ? "f32" : "bf16", o.tied);
    rc = write_all(&o, tmp, t, n, log, err);
    ax_free(t);
    if (rc == AX_OK)
        rc = install(tmp, o.dir, err);
    if (rc) {
        rm_tree(tmp);
        return rc;
    }
    if (log)
        fprintf(log, "  config.json, generation_config.json%s%s\nwrote %s\n",
                o.shards > 1 ? ", model.safetensors.index.json" : "",
                o.tokenizer_from ? ", tokenizer.json, tokenizer_config.json" : "", o.dir);
    return AX_OK;
}
