/* test_model.c - model/: safetensors header validation, config parsing, and
 * model_open on HF, sharded, axmodel (both config forms) and tokenizer-only
 * directories, plus every error path. Fixture directories are built here in
 * a temp dir; headers and configs are written out by hand so each expected
 * result follows from the format, not from our writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ftw.h>
#include <cmocka.h>

#include "model/model.h"
#include "model/model_int.h"
#include "model/safetensors.h"
#include "model/testmodel.h"
#include "util/mem.h"

static char root[256];
static int counter;

/* ---- fixture helpers ---------------------------------------------------- */

static void new_dir(char *out, size_t n)
{
    snprintf(out, n, "%s/d%d", root, counter++);
    assert_int_equal(mkdir(out, 0755), 0);
}

static void put(const char *dir, const char *name, const void *data, size_t len)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    char *slash = strrchr(p, '/');
    if (slash > p + strlen(dir)) { /* create one subfolder level */
        *slash = '\0';
        mkdir(p, 0755);
        *slash = '/';
    }
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void puts_file(const char *dir, const char *name, const char *text)
{
    put(dir, name, text, strlen(text));
}

/* A safetensors image: 8-byte LE length, header, then data_len bytes. */
static uint8_t *st_image(const char *hdr, size_t data_len, size_t *size)
{
    size_t hl = strlen(hdr);
    *size = 8 + hl + data_len;
    uint8_t *b = calloc(1, *size);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, hdr, hl);
    for (size_t i = 0; i < data_len; i++)
        b[8 + hl + i] = (uint8_t)i;
    return b;
}

static const char lfs_pointer[] =
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a2146b1d6c8a4c3d4b0d1e3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4\n"
    "size 8044675072\n";

static void tiny_opts(struct test_model_opts *o, const char *dir)
{
    testmodel_defaults(o);
    o->dir = dir;
    o->hidden = 8;
    o->layers = 2;
    o->heads = 2;
    o->kv_heads = 1;
    o->head_dim = 4;
    o->intermediate = 16;
    o->vocab = 64;
    o->max_pos = 128;
}

static void make_tiny(char *dir, size_t n, int shards, int tied)
{
    new_dir(dir, n);
    struct test_model_opts o;
    tiny_opts(&o, dir);
    o.shards = shards;
    o.tied = tied;
    char err[AX_ERRLEN] = "";
    assert_int_equal(testmodel_write(&o, NULL, err), AX_OK);
}

static void expect_open_fails(const char *dir, enum ax_err code, const char *needle)
{
    struct model *m = (struct model *)1;
    char err[AX_ERRLEN] = "";
    enum ax_err rc = model_open(dir, &m, err);
    if (rc != code || !strstr(err, needle))
        fail_msg("model_open(%s): got %d '%s', want %d containing '%s'", dir, rc, err, code,
                 needle);
    assert_null(m);
}

/* ---- safetensors header ------------------------------------------------- */

static void st_valid(void **state)
{
    (void)state;
    size_t size;
    uint8_t *b = st_image("{\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
                          "\"__metadata__\":{\"format\":\"pt\"},"
                          "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                          "\"e\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[32,32]}}",
                          32, &size);
    struct st_header h;
    char err[AX_ERRLEN];
    assert_int_equal(st_parse(b, size, "x", &h, err), AX_OK);
    assert_int_equal(h.n, 3);
    assert_string_equal(h.t[0].name, "a"); /* sorted */
    assert_int_equal(h.t[0].dtype, DT_F32);
    assert_int_equal(h.t[0].ndim, 2);
    assert_int_equal(h.t[0].shape[1], 3);
    const struct st_tensor *t = st_find(&h, "b");
    assert_non_null(t);
    assert_int_equal(t->begin, 24);
    assert_int_equal(t->dtype, DT_BF16);
    assert_null(st_find(&h, "c"));
    assert_int_equal(h.data_start, size - 32);
    st_header_free(&h);
    free(b);
}

struct st_case {
    const char *hdr;
    size_t data;
    const char *needle;
};

static void st_errors(void **state)
{
    (void)state;
    static const struct st_case cases[] = {
        {"[1,2]", 0, "not a JSON object"},
        {"{\"a\":", 0, "not valid JSON"},
        {"{\"a\":1}", 0, "not an object"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype"},
        {"{\"a\":{\"dtype\":\"F9\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4, "shape must"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         "shape must"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 3, "out of range"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "out of range"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 24, "need 24"},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}", 16, "need 16"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904],"
         "\"data_offsets\":[0,4]}}",
         4, "overflow"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
         4, "not valid JSON"},
        {"{\"__metadata__\":[1]}", 0, "__metadata__"},
        {"{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "empty name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t size;
        uint8_t *b = st_image(cases[i].hdr, cases[i].data, &size);
        struct st_header h;
        char err[AX_ERRLEN] = "";
        enum ax_err rc = st_parse(b, size, "f.safetensors", &h, err);
        if (rc != AX_EFORMAT || !strstr(err, cases[i].needle) || !strstr(err, "f.safetensors"))
            fail_msg("case %zu: got %d '%s', want EFORMAT with '%s'", i, rc, err, cases[i].needle);
        assert_int_equal(h.n, 0);
        free(b);
    }
}

static void st_bad_lengths(void **state)
{
    (void)state;
    char err[AX_ERRLEN];
    struct st_header h;
    uint8_t small[5] = {0};
    assert_int_equal(st_parse(small, 5, "f", &h, err), AX_EFORMAT);
    assert_non_null(strstr(err, "too short"));
    /* Header length larger than the file: a truncated download. */
    size_t size;
    uint8_t *b = st_image("{}", 0, &size);
    b[0] = 200;
    assert_int_equal(st_parse(b, size, "f", &h, err), AX_EFORMAT);
    assert_non_null(strstr(err, "truncated"));
    /* 2^40: over the 100 MB ceiling, reported as such. */
    memset(b, 0, 8);
    b[5] = 1;
    assert_int_equal(st_parse(b, size, "f", &h, err), AX_EFORMAT);
    assert_non_null(strstr(err, "limit"));
    free(b);
}

/* ---- config.json / generation_config.json ------------------------------- */

#define QCFG(extra)                                                                                \
    "{\"model_type\":\"qwen3\",\"hidden_size\":1024,\"intermediate_size\":3072,"                   \
    "\"num_hidden_layers\":28,\"num_attention_heads\":16,\"num_key_value_heads\":8,"               \
    "\"head_dim\":128,\"vocab_size\":151936" extra "}"

static void config_qwen3_06b(void **state)
{
    (void)state;
    /* Field values of Qwen/Qwen3-0.6B's config.json (facts: qwen3.md). */
    const char *t = QCFG(",\"max_position_embeddings\":40960,\"rope_theta\":1000000,"
                         "\"rms_norm_eps\":1e-06,\"tie_word_embeddings\":true,"
                         "\"rope_scaling\":null,\"attention_bias\":false");
    struct qwen3_config c;
    int syn = 1;
    char err[AX_ERRLEN];
    assert_int_equal(model_parse_config(t, strlen(t), "c", &c, &syn, err), AX_OK);
    assert_int_equal(c.hidden, 1024);
    assert_int_equal(c.n_heads * c.head_dim, 2048); /* != hidden: rectangular q/o */
    assert_int_equal(c.n_kv_heads, 8);
    assert_int_equal(c.max_pos, 40960);
    assert_true(c.rope_theta == 1e6);
    assert_true(c.rms_eps == 1e-6);
    assert_int_equal(c.tied, 1);
    assert_int_equal(c.head_dim_implicit, 0);
    assert_int_equal(syn, 0);
    /* Defaults: kv = heads, HF rope_theta 10000; head_dim hidden/heads
     * until the weights say (head_dim_implicit). */
    const char *u = "{\"model_type\":\"qwen3\",\"hidden_size\":64,\"intermediate_size\":8,"
                    "\"num_hidden_layers\":1,\"num_attention_heads\":4,\"vocab_size\":10,"
                    "\"axserve_synthetic\":true}";
    assert_int_equal(model_parse_config(u, strlen(u), "c", &c, &syn, err), AX_OK);
    assert_int_equal(c.n_kv_heads, 4);
    assert_int_equal(c.head_dim, 16);
    assert_int_equal(c.head_dim_implicit, 1);
    assert_true(c.rope_theta == 10000.0);
    assert_int_equal(c.tied, 0);
    assert_int_equal(syn, 1);
    /* hidden/heads not whole: transformers' default, 128, until then */
    const char *v = "{\"model_type\":\"qwen3\",\"hidden_size\":1000,\"intermediate_size\":8,"
                    "\"num_hidden_layers\":1,\"num_attention_heads\":16,\"vocab_size\":10}";
    assert_int_equal(model_parse_config(v, strlen(v), "c", &c, &syn, err), AX_OK);
    assert_int_equal(c.head_dim, 128);
    assert_int_equal(c.head_dim_implicit, 1);
}

static void config_rope(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        double theta;
    } cases[] = {
        /* transformers 5.x writes rope_parameters instead of rope_theta */
        {QCFG(",\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":500000}"), 5e5},
        {QCFG(",\"rope_theta\":250000,\"rope_parameters\":{\"rope_theta\":250000}"), 2.5e5},
        {QCFG(",\"rope_theta\":3000,\"rope_scaling\":{\"rope_type\":\"default\"}"), 3000},
        {QCFG(",\"rope_scaling\":{\"type\":\"default\",\"rope_theta\":7000}"), 7000},
        {QCFG(",\"rope_parameters\":{\"rope_type\":\"default\",\"partial_rotary_factor\":1.0}"),
         10000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct qwen3_config c;
        int syn;
        char err[AX_ERRLEN] = "";
        if (model_parse_config(cases[i].text, strlen(cases[i].text), "c", &c, &syn, err) != AX_OK ||
            c.rope_theta != cases[i].theta)
            fail_msg("case %zu: '%s', theta %g, want %g", i, err, c.rope_theta, cases[i].theta);
    }
}

static void config_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        enum ax_err code;
        const char *needle;
    } cases[] = {
        {"{", AX_EJSON, "invalid JSON"},
        {"[]", AX_EJSON, "not a JSON object"},
        {"{\"hidden_size\":1}", AX_EFORMAT, "model_type"},
        {"{\"model_type\":\"llama\"}", AX_EUNSUPPORTED, "llama"},
        {QCFG(",\"attention_bias\":true"), AX_EUNSUPPORTED, "attention_bias"},
        {QCFG(",\"rope_scaling\":{\"type\":\"yarn\"}"), AX_EUNSUPPORTED, "rope_scaling"},
        {QCFG(",\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":2}"), AX_EUNSUPPORTED,
         "linear"},
        {QCFG(",\"rope_parameters\":{\"rope_type\":\"yarn\",\"rope_theta\":1e6}"), AX_EUNSUPPORTED,
         "rope_parameters"},
        {QCFG(",\"rope_parameters\":{\"rope_type\":7}"), AX_EUNSUPPORTED, "rope_parameters"},
        {QCFG(",\"rope_parameters\":[]"), AX_EFORMAT, "rope_parameters"},
        {QCFG(",\"rope_parameters\":{\"partial_rotary_factor\":0.5}"), AX_EUNSUPPORTED,
         "partial_rotary_factor"},
        {QCFG(",\"rope_theta\":1e6,\"rope_parameters\":{\"rope_theta\":5e5}"), AX_EFORMAT,
         "disagree"},
        {QCFG(",\"rope_parameters\":{\"rope_theta\":-1}"), AX_ERANGE, "rope_theta"},
        {QCFG(",\"use_sliding_window\":true"), AX_EUNSUPPORTED, "use_sliding_window"},
        {"{\"model_type\":\"qwen3\",\"hidden_size\":8}", AX_EFORMAT, "intermediate_size"},
        {QCFG(",\"hidden_size\":0"), AX_EJSON, "invalid JSON"}, /* duplicate key */
        {"{\"model_type\":\"qwen3\",\"hidden_size\":0,\"intermediate_size\":3072,"
         "\"num_hidden_layers\":28,\"num_attention_heads\":16,\"vocab_size\":5}",
         AX_ERANGE, "hidden_size"},
        {"{\"model_type\":\"qwen3\",\"hidden_size\":\"1024\",\"intermediate_size\":3072,"
         "\"num_hidden_layers\":28,\"num_attention_heads\":16,\"vocab_size\":5}",
         AX_EFORMAT, "hidden_size"},
        {"{\"model_type\":\"qwen3\",\"hidden_size\":1024,\"intermediate_size\":3072,"
         "\"num_hidden_layers\":100000,\"num_attention_heads\":16,\"vocab_size\":5}",
         AX_ERANGE, "num_hidden_layers"},
        {"{\"model_type\":\"qwen3\",\"hidden_size\":1024,\"intermediate_size\":3072,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":16,\"num_key_value_heads\":6,"
         "\"head_dim\":64,\"vocab_size\":5}",
         AX_ERANGE, "not a multiple of num_key_value_heads"},
        {"{\"model_type\":\"qwen3\",\"hidden_size\":1024,\"intermediate_size\":3072,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":8,"
         "\"head_dim\":64,\"vocab_size\":5}",
         AX_ERANGE, "num_key_value_heads = 8"},
        {"{\"model_type\":\"qwen3\",\"hidden_size\":1024,\"intermediate_size\":3072,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"head_dim\":63,\"vocab_size\":5}",
         AX_ERANGE, "head_dim = 63"},
        {QCFG(",\"rms_norm_eps\":0"), AX_ERANGE, "rms_norm_eps"},
        {QCFG(",\"rope_theta\":-5"), AX_ERANGE, "rope_theta"},
        {QCFG(",\"rope_theta\":\"big\""), AX_EFORMAT, "rope_theta"},
        {QCFG(",\"tie_word_embeddings\":1"), AX_EFORMAT, "tie_word_embeddings"},
        {QCFG(",\"max_position_embeddings\":0"), AX_ERANGE, "max_position_embeddings"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct qwen3_config c;
        int syn;
        char err[AX_ERRLEN] = "";
        enum ax_err rc =
            model_parse_config(cases[i].text, strlen(cases[i].text), "cfg.json", &c, &syn, err);
        if (rc != cases[i].code || !strstr(err, cases[i].needle) || !strstr(err, "cfg.json"))
            fail_msg("case %zu: got %d '%s', want %d with '%s'", i, rc, err, cases[i].code,
                     cases[i].needle);
    }
}

static void gen_config(void **state)
{
    (void)state;
    struct gen_defaults g;
    char err[AX_ERRLEN];
    model_gen_defaults_init(&g);
    /* Qwen3-0.6B's generation_config.json */
    const char *t = "{\"bos_token_id\":151643,\"do_sample\":true,\"eos_token_id\":[151645,151643],"
                    "\"pad_token_id\":151643,\"temperature\":0.6,\"top_k\":20,\"top_p\":0.95,"
                    "\"transformers_version\":\"4.51.0\"}";
    assert_int_equal(model_parse_gen_config(t, strlen(t), "g", &g, err), AX_OK);
    assert_int_equal(g.n_eos, 2);
    assert_int_equal(g.eos[0], 151645);
    assert_int_equal(g.eos[1], 151643);
    assert_int_equal(g.bos, 151643);
    assert_true(g.temperature == 0.6f && g.have_temperature);
    assert_true(g.top_p == 0.95f && g.have_top_p);
    assert_true(g.top_k == 20 && g.have_top_k);
    assert_false(g.have_min_p);
    assert_true(g.min_p == 0.0f);
    /* Absent fields keep the non-thinking defaults; a single eos id. */
    model_gen_defaults_init(&g);
    const char *u = "{\"eos_token_id\":7}";
    assert_int_equal(model_parse_gen_config(u, strlen(u), "g", &g, err), AX_OK);
    assert_int_equal(g.n_eos, 1);
    assert_int_equal(g.eos[0], 7);
    assert_int_equal(g.bos, -1);
    assert_true(g.temperature == 0.7f && !g.have_temperature);
    assert_true(g.top_p == 0.8f && g.top_k == 20);
    static const struct {
        const char *text;
        const char *needle;
    } bad[] = {
        {"{\"temperature\":-1}", "temperature"},
        {"{\"temperature\":\"hot\"}", "temperature"},
        {"{\"top_p\":1.5}", "top_p"},
        {"{\"top_k\":-2}", "top_k"},
        {"{\"min_p\":2}", "min_p"},
        {"{\"eos_token_id\":\"x\"}", "eos_token_id"},
        {"{\"eos_token_id\":[1,-2]}", "eos_token_id[1]"},
        {"{\"eos_token_id\":[1,2,3,4,5,6,7,8,9]}", "at most"},
        {"{\"bos_token_id\":1.5}", "bos_token_id"},
        {"{\"a\":}", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        model_gen_defaults_init(&g);
        err[0] = '\0';
        enum ax_err rc =
            model_parse_gen_config(bad[i].text, strlen(bad[i].text), "g.json", &g, err);
        if (rc == AX_OK || !strstr(err, bad[i].needle))
            fail_msg("case %zu: got %d '%s', want an error with '%s'", i, rc, err, bad[i].needle);
    }
}

/* ---- HF directories ------------------------------------------------------ */

static void hf_valid(void **state)
{
    (void)state;
    char dir[512];
    make_tiny(dir, sizeof dir, 1, 1);
    struct model *m;
    char err[AX_ERRLEN];
    assert_int_equal(model_open(dir, &m, err), AX_OK);
    assert_int_equal(model_kind(m), MODEL_HF);
    assert_true(model_is_synthetic(m));
    const struct qwen3_config *c = model_config(m);
    assert_int_equal(c->hidden, 8);
    assert_int_equal(c->vocab, 64);
    assert_int_equal(c->n_layers, 2);
    assert_int_equal(c->head_dim, 4);
    assert_null(model_tokenizer_json(m)); /* none was copied */
    assert_null(model_axmodel(m));
    const struct gen_defaults *g = model_gen_defaults(m);
    assert_int_equal(g->n_eos, 2); /* vocab 64 too small for Qwen ids: 63, 62 */
    assert_int_equal(g->eos[0], 63);
    /* 1 embed + 2 * 11 + norm, tied: no lm_head */
    assert_int_equal(model_n_tensors(m), 24);
    struct model_tensor t;
    assert_int_equal(model_tensor(m, "model.layers.1.self_attn.k_proj.weight", &t, err), AX_OK);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.shape[0], 4); /* kv_heads * head_dim */
    assert_int_equal(t.shape[1], 8);
    assert_int_equal(t.nbytes, 4 * 8 * 2);
    assert_int_equal(t.dtype, DT_BF16);
    assert_int_equal(model_tensor(m, "lm_head.weight", &t, err), AX_ENOTFOUND);
    assert_non_null(strstr(err, "lm_head.weight"));
    int64_t wrong[2] = {8, 4};
    assert_int_equal(
        model_tensor_expect(m, "model.layers.1.self_attn.k_proj.weight", 2, wrong, &t, err),
        AX_EFORMAT);
    assert_non_null(strstr(err, "k_proj.weight' has shape [4, 8], expected [8, 4]"));
    model_free(m);
    model_free(NULL);
}

static void hf_sharded_same_as_single(void **state)
{
    (void)state;
    char one[512], three[512];
    make_tiny(one, sizeof one, 1, 0);
    make_tiny(three, sizeof three, 3, 0);
    struct model *a, *b;
    char err[AX_ERRLEN];
    assert_int_equal(model_open(one, &a, err), AX_OK);
    assert_int_equal(model_open(three, &b, err), AX_OK);
    assert_int_equal(model_n_tensors(a), 25);
    assert_int_equal(model_n_tensors(b), 25);
    for (size_t i = 0; i < model_n_tensors(a); i++) {
        struct model_tensor x, y;
        assert_int_equal(model_tensor_at(a, i, &x), AX_OK);
        assert_int_equal(model_tensor(b, x.name, &y, err), AX_OK);
        assert_int_equal(x.nbytes, y.nbytes);
        assert_memory_equal(x.data, y.data, x.nbytes);
    }
    struct model_tensor t;
    assert_int_equal(model_tensor_at(a, 25, &t), AX_ERANGE);
    model_free(a);
    model_free(b);
}

static void hf_file_errors(void **state)
{
    (void)state;
    char dir[512], p[600];
    /* LFS pointer instead of the weights */
    make_tiny(dir, sizeof dir, 1, 1);
    puts_file(dir, "model.safetensors", lfs_pointer);
    expect_open_fails(dir, AX_ELFS,
                      "model.safetensors is a Git LFS pointer (real file: "
                      "8044675072 bytes)");
    expect_open_fails(dir, AX_ELFS, "axserve pull");
    /* LFS pointer instead of config.json */
    make_tiny(dir, sizeof dir, 1, 1);
    puts_file(dir, "config.json", lfs_pointer);
    expect_open_fails(dir, AX_ELFS, "config.json is a Git LFS pointer");
    /* LFS tokenizer */
    make_tiny(dir, sizeof dir, 1, 1);
    puts_file(dir, "tokenizer.json", lfs_pointer);
    puts_file(dir, "tokenizer_config.json", "{}");
    expect_open_fails(dir, AX_ELFS, "tokenizer.json is a Git LFS pointer");
    /* truncated weights: data shorter than the header says */
    make_tiny(dir, sizeof dir, 1, 1);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(truncate(p, st.st_size - 10), 0);
    expect_open_fails(dir, AX_EFORMAT, "out of range");
    /* cut inside the header */
    assert_int_equal(truncate(p, 100), 0);
    expect_open_fails(dir, AX_EFORMAT, "truncated");
    /* no weights */
    assert_int_equal(unlink(p), 0);
    expect_open_fails(dir, AX_ENOTFOUND, "no model.safetensors");
    /* a shard named by the index is missing */
    make_tiny(dir, sizeof dir, 3, 1);
    snprintf(p, sizeof p, "%s/model-00002-of-00003.safetensors", dir);
    assert_int_equal(unlink(p), 0);
    expect_open_fails(dir, AX_ENOTFOUND, "model-00002-of-00003.safetensors is missing");
    /* the index points outside the dir / at a file lacking the tensor */
    make_tiny(dir, sizeof dir, 3, 1);
    puts_file(dir, "model.safetensors.index.json",
              "{\"weight_map\":{\"model.norm.weight\":\"../x.safetensors\"}}");
    expect_open_fails(dir, AX_EFORMAT, "not a file name in the dir");
    puts_file(dir, "model.safetensors.index.json",
              "{\"weight_map\":{\"model.norm.weight\":\"model-00001-of-00003.safetensors\"}}");
    expect_open_fails(dir, AX_EFORMAT, "lacks it");
    puts_file(dir, "model.safetensors.index.json", "{\"weight_map\":[]}");
    expect_open_fails(dir, AX_EJSON, "weight_map");
}

/* Rewrites one config.json field by text substitution. */
static void edit_config(const char *dir, const char *from, const char *to)
{
    char p[600];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *at = strstr(buf, from);
    assert_non_null(at);
    char out[8192];
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - buf), buf, to, at + strlen(from));
    puts_file(dir, "config.json", out);
}

static void hf_shape_errors(void **state)
{
    (void)state;
    char dir[512];
    make_tiny(dir, sizeof dir, 1, 1);
    edit_config(dir, "\"intermediate_size\": 16", "\"intermediate_size\": 12");
    expect_open_fails(dir, AX_EFORMAT,
                      "'model.layers.0.mlp.gate_proj.weight' has shape [16, 8], expected [12, 8]");
    make_tiny(dir, sizeof dir, 1, 1);
    edit_config(dir, "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
    expect_open_fails(dir, AX_ENOTFOUND, "'model.layers.2.");
    make_tiny(dir, sizeof dir, 1, 1);
    edit_config(dir, "\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false");
    expect_open_fails(dir, AX_ENOTFOUND, "'lm_head.weight' is missing");
    make_tiny(dir, sizeof dir, 1, 1);
    edit_config(dir, "\"num_key_value_heads\": 1", "\"num_key_value_heads\": 3");
    expect_open_fails(dir, AX_ERANGE, "num_key_value_heads = 3");
    make_tiny(dir, sizeof dir, 1, 1);
    puts_file(dir, "generation_config.json", "{\"eos_token_id\": 64}");
    expect_open_fails(dir, AX_ERANGE, "eos_token_id 64 is outside the vocabulary (64)");
    /* An integer dtype where weights belong. */
    char d2[512];
    new_dir(d2, sizeof d2);
    puts_file(d2, "config.json",
              "{\"model_type\":\"qwen3\",\"hidden_size\":2,\"intermediate_size\":2,"
              "\"num_hidden_layers\":1,\"num_attention_heads\":1,\"head_dim\":2,"
              "\"vocab_size\":2,\"tie_word_embeddings\":true}");
    size_t size;
    uint8_t *b = st_image("{\"model.embed_tokens.weight\":{\"dtype\":\"I32\",\"shape\":[2,2],"
                          "\"data_offsets\":[0,16]}}",
                          16, &size);
    put(d2, "model.safetensors", b, size);
    free(b);
    expect_open_fails(d2, AX_EUNSUPPORTED, "'model.embed_tokens.weight' has dtype I32");
}

/* ---- axmodel directories ------------------------------------------------- */

static void make_ax_files(const char *dir, int layers, size_t embed_bytes)
{
    for (int i = 0; i < layers; i++) {
        char n[64];
        snprintf(n, sizeof n, "m/qwen3_p128_l%d_together.axmodel", i);
        puts_file(dir, n, "AXMODEL");
    }
    puts_file(dir, "m/qwen3_post.axmodel", "AXMODEL");
    char *e = calloc(1, embed_bytes + 1);
    put(dir, "m/embed.bfloat16.bin", e, embed_bytes);
    free(e);
    puts_file(dir, "qwen3_tokenizer/tokenizer.json", "{\"model\":{}}");
    puts_file(dir, "qwen3_tokenizer/tokenizer_config.json", "{}");
}

static const char vendor_cfg[] =
    "{\"model_name\":\"qwen3\",\"tokenizer_type\":\"qwen3\","
    "\"template_filename_axmodel\":\"m/qwen3_p128_l%d_together.axmodel\",\"axmodel_num\":4,"
    "\"filename_post_axmodel\":\"m/qwen3_post.axmodel\","
    "\"filename_tokens_embed\":\"m/embed.bfloat16.bin\",\"tokens_embed_num\":10,"
    "\"tokens_embed_size\":6,\"devices\":[0,1],\"kv_cache_slots\":2}";

static void ax_vendor_form(void **state)
{
    (void)state;
    char dir[512];
    new_dir(dir, sizeof dir);
    make_ax_files(dir, 4, 10 * 6 * 2);
    puts_file(dir, "config.json", vendor_cfg);
    struct model *m;
    char err[AX_ERRLEN];
    assert_int_equal(model_open(dir, &m, err), AX_OK);
    assert_int_equal(model_kind(m), MODEL_AXMODEL);
    const struct axmodel_layout *ax = model_axmodel(m);
    assert_non_null(ax);
    assert_int_equal(ax->n_layers, 4);
    assert_int_equal(ax->embed_rows, 10);
    assert_int_equal(ax->embed_cols, 6);
    assert_int_equal(ax->n_devices, 2);
    assert_int_equal(ax->devices[1], 1);
    assert_true(ax->layer_template[0] == '/'); /* made absolute */
    assert_non_null(strstr(ax->layer_template, "/m/qwen3_p128_l%d_together.axmodel"));
    assert_non_null(strstr(ax->post_path, "/m/qwen3_post.axmodel"));
    assert_non_null(strstr(model_tokenizer_json(m), "/qwen3_tokenizer/tokenizer.json"));
    assert_non_null(strstr(model_tokenizer_config(m), "/qwen3_tokenizer/tokenizer_config.json"));
    const struct qwen3_config *c = model_config(m);
    assert_int_equal(c->hidden, 6);
    assert_int_equal(c->vocab, 10);
    assert_int_equal(c->n_layers, 4);
    assert_int_equal(c->n_heads, 0); /* unknown: the AXCL backend reads IO info */
    assert_false(model_gen_defaults(m)->have_top_k);
    model_free(m);
    /* The vendor's sampling file (as shipped with AXERA-TECH models). */
    puts_file(dir, "post_config.json",
              "{\"enable_repetition_penalty\": false, \"enable_temperature\": true,"
              " \"enable_top_k_sampling\": true, \"enable_top_p_sampling\": false,"
              " \"penalty_window\": 20, \"repetition_penalty\": 1.2, \"temperature\": 0.9,"
              " \"top_k\": 10, \"top_p\": 0.8}");
    assert_int_equal(model_open(dir, &m, err), AX_OK);
    const struct gen_defaults *g = model_gen_defaults(m);
    assert_true(g->have_temperature && g->temperature == 0.9f);
    assert_true(g->have_top_k && g->top_k == 10);
    assert_false(g->have_top_p); /* disabled: the value is not used */
    model_free(m);
    /* All switches off: the vendor runtime decodes greedily -> top_k 1. */
    puts_file(dir, "post_config.json",
              "{\"enable_temperature\": false, \"enable_top_k_sampling\": false,"
              " \"enable_top_p_sampling\": false, \"temperature\": 0.9, \"top_k\": 10}");
    assert_int_equal(model_open(dir, &m, err), AX_OK);
    g = model_gen_defaults(m);
    assert_true(g->have_top_k && g->top_k == 1);
    assert_false(g->have_temperature);
    model_free(m);
    /* A generation_config.json in the tokenizer folder has the last word. */
    puts_file(dir, "qwen3_tokenizer/generation_config.json",
              "{\"top_k\": 20, \"eos_token_id\": [9, 8]}");
    assert_int_equal(model_open(dir, &m, err), AX_OK);
    g = model_gen_defaults(m);
    assert_int_equal(g->top_k, 20);
    assert_int_equal(g->n_eos, 2);
    assert_int_equal(g->eos[0], 9);
    model_free(m);
    puts_file(dir, "qwen3_tokenizer/generation_config.json", "{\"eos_token_id\": 10}");
    expect_open_fails(dir, AX_ERANGE, "eos_token_id 10 is outside the vocabulary (10)");
    puts_file(dir, "qwen3_tokenizer/generation_config.json", "{}");
    puts_file(dir, "post_config.json", "{\"enable_temperature\": true, \"temperature\": \"hot\"}");
    expect_open_fails(dir, AX_EFORMAT, "post_config.json: field \"temperature\" must be a number");
    puts_file(dir, "post_config.json", "{\"enable_top_k_sampling\": 1}");
    expect_open_fails(dir, AX_EFORMAT, "enable_top_k_sampling");
}

static void ax_errors(void **state)
{
    (void)state;
    char dir[512], p[600];
    /* layers 1 and 2 missing (of 0..3), and 3 empty */
    new_dir(dir, sizeof dir);
    make_ax_files(dir, 4, 120);
    puts_file(dir, "config.json", vendor_cfg);
    snprintf(p, sizeof p, "%s/m/qwen3_p128_l1_together.axmodel", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/m/qwen3_p128_l2_together.axmodel", dir);
    unlink(p);
    puts_file(dir, "m/qwen3_p128_l3_together.axmodel", "");
    expect_open_fails(dir, AX_ENOTFOUND, "3 of 4 layer files missing or empty");
    expect_open_fails(dir, AX_ENOTFOUND, "layer index: 1-3");
    /* a layer is an LFS pointer */
    new_dir(dir, sizeof dir);
    make_ax_files(dir, 4, 120);
    puts_file(dir, "config.json", vendor_cfg);
    puts_file(dir, "m/qwen3_p128_l2_together.axmodel", lfs_pointer);
    expect_open_fails(dir, AX_ELFS, "l2_together.axmodel is a Git LFS pointer");
    /* wrong embedding size */
    new_dir(dir, sizeof dir);
    make_ax_files(dir, 4, 118);
    puts_file(dir, "config.json", vendor_cfg);
    expect_open_fails(dir, AX_EFORMAT,
                      "118 bytes, but tokens_embed_num 10 x tokens_embed_size 6 "
                      "x 2 (bf16) = 120");
    /* embedding is an LFS pointer; missing post model */
    new_dir(dir, sizeof dir);
    make_ax_files(dir, 4, 120);
    puts_file(dir, "config.json", vendor_cfg);
    puts_file(dir, "m/embed.bfloat16.bin", lfs_pointer);
    expect_open_fails(dir, AX_ELFS, "embed.bfloat16.bin is a Git LFS pointer");
    new_dir(dir, sizeof dir);
    make_ax_files(dir, 4, 120);
    puts_file(dir, "config.json", vendor_cfg);
    snprintf(p, sizeof p, "%s/m/qwen3_post.axmodel", dir);
    unlink(p);
    expect_open_fails(dir, AX_ENOTFOUND, "post model is missing");
    /* a template that is not a single %d */
    new_dir(dir, sizeof dir);
    puts_file(dir, "config.json",
              "{\"template_filename_axmodel\":\"m/l%s%d.axmodel\",\"axmodel_num\":1,"
              "\"filename_post_axmodel\":\"p\",\"filename_tokens_embed\":\"e\","
              "\"tokens_embed_num\":1,\"tokens_embed_size\":1}");
    expect_open_fails(dir, AX_EFORMAT, "only one %d");
    puts_file(dir, "config.json",
              "{\"template_filename_axmodel\":\"m/l.axmodel\",\"axmodel_num\":1,"
              "\"filename_post_axmodel\":\"p\",\"filename_tokens_embed\":\"e\","
              "\"tokens_embed_num\":1,\"tokens_embed_size\":1}");
    expect_open_fails(dir, AX_EFORMAT, "exactly one %d");
    /* absurd numbers */
    puts_file(dir, "config.json",
              "{\"template_filename_axmodel\":\"m/l%d.axmodel\",\"axmodel_num\":0,"
              "\"filename_post_axmodel\":\"p\",\"filename_tokens_embed\":\"e\","
              "\"tokens_embed_num\":1,\"tokens_embed_size\":1}");
    expect_open_fails(dir, AX_ERANGE, "axmodel_num");
    puts_file(dir, "config.json",
              "{\"template_filename_axmodel\":\"m/l%d.axmodel\",\"axmodel_num\":2,"
              "\"filename_post_axmodel\":\"p\",\"filename_tokens_embed\":\"e\","
              "\"tokens_embed_num\":1,\"tokens_embed_size\":-4}");
    expect_open_fails(dir, AX_ERANGE, "tokens_embed_size");
    puts_file(dir, "config.json",
              "{\"template_filename_axmodel\":\"m/l%d.axmodel\",\"axmodel_num\":2,"
              "\"filename_tokens_embed\":\"e\",\"tokens_embed_num\":1,\"tokens_embed_size\":4}");
    expect_open_fails(dir, AX_EFORMAT, "filename_post_axmodel");
}

static const char run_script[] =
    "#!/bin/bash\n"
    "# start the runtime\n"
    "./main_api_axcl_aarch64 \\\n"
    "  --system_prompt \"You are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.\" \\\n"
    "  --template_filename_axmodel \"m/qwen3_p128_l%d_together.axmodel\" \\\n"
    "  --axmodel_num 4 \\\n"
    "  --url_tokenizer_model \"http://127.0.0.1:12345\" \\\n"
    "  --filename_post_axmodel m/qwen3_post.axmodel \\\n"
    "  --filename_tokens_embed 'm/embed.bfloat16.bin' \\\n"
    "  --tokens_embed_num 10 \\\n"
    "  --tokens_embed_size=6 \\\n"
    "  --use_mmap_load_embed 1 \\\n"
    "  --live_print 1 \\\n"
    "  --devices 0,2 > log.txt 2>&1 &\n";

static void ax_flag_form(void **state)
{
    (void)state;
    char dir[512];
    new_dir(dir, sizeof dir);
    make_ax_files(dir, 4, 120);
    puts_file(dir, "run_qwen3_4b_int8_ctx_axcl_aarch64.sh", run_script);
    puts_file(dir, "run_other.sh", "echo hello\n"); /* sorted after, no flags */
    struct model *m;
    char err[AX_ERRLEN];
    assert_int_equal(model_open(dir, &m, err), AX_OK);
    assert_int_equal(model_kind(m), MODEL_AXMODEL);
    const struct axmodel_layout *ax = model_axmodel(m);
    assert_int_equal(ax->n_layers, 4);
    assert_int_equal(ax->embed_rows, 10);
    assert_int_equal(ax->embed_cols, 6);
    assert_int_equal(ax->n_devices, 2);
    assert_int_equal(ax->devices[0], 0);
    assert_int_equal(ax->devices[1], 2);
    assert_non_null(strstr(ax->embed_path, "/m/embed.bfloat16.bin"));
    model_free(m);
    /* With an HF config.json beside it, hyper-parameters come from there and
     * must agree with the flags. */
    puts_file(dir, "config.json",
              "{\"model_type\":\"qwen3\",\"hidden_size\":6,\"intermediate_size\":12,"
              "\"num_hidden_layers\":4,\"num_attention_heads\":3,\"num_key_value_heads\":1,"
              "\"head_dim\":2,\"vocab_size\":10,\"eos_token_id\":9}");
    assert_int_equal(model_open(dir, &m, err), AX_OK);
    assert_int_equal(model_config(m)->n_heads, 3);
    assert_int_equal(model_gen_defaults(m)->eos[0], 9);
    model_free(m);
    puts_file(dir, "config.json",
              "{\"model_type\":\"qwen3\",\"hidden_size\":8,\"intermediate_size\":12,"
              "\"num_hidden_layers\":4,\"num_attention_heads\":4,\"vocab_size\":10}");
    expect_open_fails(dir, AX_EFORMAT, "disagree with the run script");
    /* numbers as flag strings are still checked */
    char bad[sizeof run_script + 16];
    snprintf(bad, sizeof bad, "%s", run_script);
    char *at = strstr(bad, "--axmodel_num 4");
    memcpy(at, "--axmodel_num x", 15);
    char d2[512];
    new_dir(d2, sizeof d2);
    make_ax_files(d2, 4, 120);
    puts_file(d2, "run.sh", bad);
    expect_open_fails(d2, AX_EFORMAT, "\"axmodel_num\" = \"x\" is not an integer");
}

static void run_script_parse(void **state)
{
    (void)state;
    struct axmodel_layout ax;
    char err[AX_ERRLEN];
    assert_int_equal(model_parse_run_script("echo hi\n", 8, "r.sh", "/d", &ax, err), AX_ENOTFOUND);
    const char *t = "x --template_filename_axmodel=/abs/l%d.ax --axmodel_num 2 "
                    "--filename_post_axmodel p.ax --filename_tokens_embed e.bin "
                    "--tokens_embed_num 3 --tokens_embed_size 4";
    assert_int_equal(model_parse_run_script(t, strlen(t), "r.sh", "/d", &ax, err), AX_OK);
    assert_string_equal(ax.layer_template, "/abs/l%d.ax");
    assert_string_equal(ax.post_path, "/d/p.ax");
    assert_int_equal(ax.n_devices, 0);
    /* A '%' in the directory stays literal in the template. */
    const char *w = "--template_filename_axmodel l%d.ax --axmodel_num 2 "
                    "--filename_post_axmodel p.ax --filename_tokens_embed e.bin "
                    "--tokens_embed_num 3 --tokens_embed_size 4";
    assert_int_equal(model_parse_run_script(w, strlen(w), "r.sh", "/d%s", &ax, err), AX_OK);
    assert_string_equal(ax.layer_template, "/d%%s/l%d.ax");
    assert_string_equal(ax.post_path, "/d%s/p.ax");
    char path[64];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(path, sizeof path, ax.layer_template, 3);
#pragma GCC diagnostic pop
    assert_string_equal(path, "/d%s/l3.ax");
    /* A flag without a value before the next flag. */
    const char *u = "x --template_filename_axmodel --axmodel_num 2";
    assert_int_equal(model_parse_run_script(u, strlen(u), "r.sh", "/d", &ax, err), AX_ENOTFOUND);
}

/* ---- tokenizer-only and non-model dirs ----------------------------------- */

static void tokenizer_only(void **state)
{
    (void)state;
    char dir[512];
    new_dir(dir, sizeof dir);
    puts_file(dir, "tokenizer.json", "{}");
    puts_file(dir, "tokenizer_config.json", "{}");
    puts_file(dir, "generation_config.json", "{\"eos_token_id\":[5,6],\"temperature\":0.3}");
    struct model *m;
    char err[AX_ERRLEN];
    assert_int_equal(model_open(dir, &m, err), AX_OK);
    assert_int_equal(model_kind(m), MODEL_TOKENIZER_ONLY);
    assert_null(model_config(m));
    assert_null(model_axmodel(m));
    assert_non_null(strstr(model_tokenizer_json(m), "/tokenizer.json"));
    assert_int_equal(model_gen_defaults(m)->n_eos, 2);
    assert_true(model_gen_defaults(m)->temperature == 0.3f);
    model_free(m);
    new_dir(dir, sizeof dir);
    puts_file(dir, "tokenizer.json", "{}");
    expect_open_fails(dir, AX_ENOTFOUND, "not a model directory");
    char p[600];
    snprintf(p, sizeof p, "%s/nonexistent", root);
    expect_open_fails(p, AX_ENOTFOUND, "no such model directory");
    new_dir(dir, sizeof dir);
    puts_file(dir, "tokenizer.json", lfs_pointer);
    puts_file(dir, "tokenizer_config.json", "{}");
    expect_open_fails(dir, AX_ELFS, "tokenizer.json is a Git LFS pointer");
    assert_int_equal(model_check_not_lfs(p, err), AX_ENOTFOUND);
}

/* Every allocation failure gives AX_OK or a clean AX_ENOMEM (leaks are
 * caught by the sanitizer build). */
static void open_alloc_failures(void **state)
{
    (void)state;
    char hf[512], ax[512];
    make_tiny(hf, sizeof hf, 3, 0);
    new_dir(ax, sizeof ax);
    make_ax_files(ax, 4, 120);
    puts_file(ax, "run.sh", run_script);
    const char *dirs[2] = {hf, ax};
    for (int d = 0; d < 2; d++) {
        int ok = 0;
        for (long n = 0; n < 1000 && !ok; n++) {
            struct model *m = NULL;
            char err[AX_ERRLEN] = "";
            ax_mem_fail_after(n);
            enum ax_err rc = model_open(dirs[d], &m, err);
            ax_mem_fail_after(-1);
            if (rc != AX_OK && rc != AX_ENOMEM)
                fail_msg("dir %d, fail after %ld: %d '%s'", d, n, rc, err);
            ok = rc == AX_OK;
            model_free(m);
        }
        assert_true(ok);
    }
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/axmodel-test-XXXXXX", t ? t : "/tmp");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(st_valid),
        cmocka_unit_test(st_errors),
        cmocka_unit_test(st_bad_lengths),
        cmocka_unit_test(config_qwen3_06b),
        cmocka_unit_test(config_rope),
        cmocka_unit_test(config_errors),
        cmocka_unit_test(gen_config),
        cmocka_unit_test(hf_valid),
        cmocka_unit_test(hf_sharded_same_as_single),
        cmocka_unit_test(hf_file_errors),
        cmocka_unit_test(hf_shape_errors),
        cmocka_unit_test(ax_vendor_form),
        cmocka_unit_test(ax_errors),
        cmocka_unit_test(ax_flag_form),
        cmocka_unit_test(run_script_parse),
        cmocka_unit_test(tokenizer_only),
        cmocka_unit_test(open_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
