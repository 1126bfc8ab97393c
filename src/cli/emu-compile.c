/* emu-compile.c - `axserve emu-compile SRC_HF_DIR DST_DIR [--prefill P]
 * [--history 1,256,512] [--kv N] [--name qwen3]`: turns an HF Qwen3
 * checkpoint into a directory laid out like AXERA's AX650 releases, for
 * the AXCL EMULATOR (build/libaxcl_emu.so). The layer and post files are
 * the emulator's own format (tools/axcl-emu/axemu_format.h), not vendor
 * axmodels: a real card cannot run them.
 *
 * Output:
 *   DST/config.json                          vendor-style (template, counts)
 *   DST/<name>-emu-ax650/<name>_p<P>_l<i>_together.axmodel   per layer
 *   DST/<name>-emu-ax650/<name>_post.axmodel
 *   DST/<name>-emu-ax650/model.embed_tokens.weight.bfloat16.bin
 *   DST/<name>_tokenizer/ tokenizer.json, tokenizer_config.json, ...
 * Shape groups: 0 = decode (history N = --kv, mask N+1 so max tokens N),
 * 1.. = prefill chunks of P rows with the --history capacities.
 * Reads the checkpoint through model.h (F32, F16 and BF16 tensors,
 * converted to bf16). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../tools/axcl-emu/axemu_format.h"
#include "cli/cli.h"
#include "util/err.h"
#include "util/file.h"
#include "model/model.h"
#include "util/mem.h"

#define PATHN 4096

/* ---- reading the checkpoint (model.h) ------------------------------- */

struct cfg {
    int hidden, inter, layers, heads, kv_heads, head_dim, vocab, tied;
    double theta, eps;
};

static uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static float f16_to_f32(uint16_t h)
{
    int s = h >> 15, ex = (h >> 10) & 31, m = h & 1023;
    float v = ex == 0    ? ldexpf((float)m, -24)
              : ex == 31 ? (m ? NAN : INFINITY)
                         : ldexpf((float)(m | 1024), ex - 25);
    return s ? -v : v;
}

/* Appends tensor `name` (n elements expected) as bf16 to f. model_open has
 * already checked every Qwen3 tensor's shape and dtype (F32/F16/BF16). */
static enum ax_err put_tensor(const struct model *m, const char *name, uint64_t n, FILE *f,
                              char *err)
{
    struct model_tensor t;
    enum ax_err e = model_tensor(m, name, &t, err);
    if (e != AX_OK)
        return e;
    size_t es = t.dtype == DT_F32 ? 4 : 2;
    if ((t.dtype != DT_F32 && t.dtype != DT_F16 && t.dtype != DT_BF16) || t.nbytes != n * es)
        return ax_fail(err, AX_EFORMAT,
                       "tensor %s: %zu bytes, expected %llu elements of F32, "
                       "F16 or BF16",
                       name, t.nbytes, (unsigned long long)n);
    const uint8_t *p = t.data;
    uint16_t buf[4096];
    for (uint64_t k = 0; k < n;) {
        size_t cnt = n - k < 4096 ? (size_t)(n - k) : 4096;
        for (size_t q = 0; q < cnt; q++, k++) {
            uint16_t h;
            float v;
            if (t.dtype == DT_F32) {
                memcpy(&v, p + 4 * k, 4);
                buf[q] = f32_to_bf16(v);
            } else {
                memcpy(&h, p + 2 * k, 2);
                buf[q] = t.dtype == DT_BF16 ? h : f32_to_bf16(f16_to_f32(h));
            }
        }
        if (fwrite(buf, 2, cnt, f) != cnt)
            return ax_fail(err, AX_EIO, "write failed: %s", strerror(errno));
    }
    return AX_OK;
}

static enum ax_err read_cfg(const struct model *m, struct cfg *c, char *err)
{
    const struct qwen3_config *q = model_config(m);
    if (model_kind(m) != MODEL_HF || !q)
        return ax_fail(err, AX_EINVAL, "%s is not an HF Qwen3 checkpoint", model_dir(m));
    c->hidden = q->hidden;
    c->inter = q->intermediate;
    c->layers = q->n_layers;
    c->heads = q->n_heads;
    c->kv_heads = q->n_kv_heads;
    c->head_dim = q->head_dim;
    c->vocab = q->vocab;
    c->tied = q->tied;
    c->theta = q->rope_theta;
    c->eps = q->rms_eps;
    if (c->layers > 1024 || c->head_dim % 2)
        return ax_fail(err, AX_EUNSUPPORTED,
                       "%s: %d layers / head_dim %d not supported by the "
                       "emulator format",
                       model_dir(m), c->layers, c->head_dim);
    return AX_OK;
}

/* ---- writers ---------------------------------------------------------- */

static void header(struct axemu_header *h, const struct cfg *c, int kind)
{
    memset(h, 0, sizeof *h);
    memcpy(h->magic, AXEMU_MAGIC, 8);
    h->kind = (uint32_t)kind;
    h->hidden = (uint32_t)c->hidden;
    h->n_heads = (uint32_t)c->heads;
    h->n_kv_heads = (uint32_t)c->kv_heads;
    h->head_dim = (uint32_t)c->head_dim;
    h->rope_theta = c->theta;
    h->rms_eps = c->eps;
    h->weights_offset = AXEMU_HEADER_SIZE;
}

static enum ax_err write_layer(const struct model *ck, const struct cfg *c, int l,
                               struct axemu_header *h, const char *path, char *err)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return ax_fail(err, AX_EIO, "%s: %s", path, strerror(errno));
    h->weights_size = axemu_weight_count(h) * 2;
    enum ax_err e = fwrite(h, sizeof *h, 1, f) == 1 ? AX_OK : AX_EIO;
    uint64_t hd = (uint64_t)c->hidden, q = (uint64_t)c->heads * c->head_dim,
             kv = (uint64_t)c->kv_heads * c->head_dim, in = (uint64_t)c->inter;
    struct {
        const char *n;
        uint64_t count;
    } t[] = {{"input_layernorm.weight", hd},
             {"post_attention_layernorm.weight", hd},
             {"self_attn.q_norm.weight", (uint64_t)c->head_dim},
             {"self_attn.k_norm.weight", (uint64_t)c->head_dim},
             {"self_attn.q_proj.weight", q * hd},
             {"self_attn.k_proj.weight", kv * hd},
             {"self_attn.v_proj.weight", kv * hd},
             {"self_attn.o_proj.weight", hd * q},
             {"mlp.gate_proj.weight", in * hd},
             {"mlp.up_proj.weight", in * hd},
             {"mlp.down_proj.weight", hd * in}};
    for (size_t i = 0; e == AX_OK && i < sizeof t / sizeof t[0]; i++) {
        char name[256];
        snprintf(name, sizeof name, "model.layers.%d.%s", l, t[i].n);
        e = put_tensor(ck, name, t[i].count, f, err);
    }
    if (fclose(f) != 0 && e == AX_OK)
        e = AX_EIO;
    return e == AX_EIO ? ax_fail(err, e, "%s: write failed", path) : e;
}

static enum ax_err write_post(const struct model *ck, const struct cfg *c, const char *path,
                              char *err)
{
    struct axemu_header h;
    header(&h, c, AXEMU_KIND_POST);
    h.vocab = (uint32_t)c->vocab;
    h.n_groups = 1;
    h.weights_size = axemu_weight_count(&h) * 2;
    FILE *f = fopen(path, "wb");
    if (!f)
        return ax_fail(err, AX_EIO, "%s: %s", path, strerror(errno));
    enum ax_err e = fwrite(&h, sizeof h, 1, f) == 1 ? AX_OK : ax_fail(err, AX_EIO, "write");
    if (e == AX_OK)
        e = put_tensor(ck, "model.norm.weight", (uint64_t)c->hidden, f, err);
    if (e == AX_OK)
        e = put_tensor(ck, c->tied ? "model.embed_tokens.weight" : "lm_head.weight",
                       (uint64_t)c->vocab * c->hidden, f, err);
    if (fclose(f) != 0 && e == AX_OK)
        e = ax_fail(err, AX_EIO, "%s: write failed", path);
    return e;
}

static enum ax_err write_embed(const struct model *ck, const struct cfg *c, const char *path,
                               char *err)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return ax_fail(err, AX_EIO, "%s: %s", path, strerror(errno));
    enum ax_err e =
        put_tensor(ck, "model.embed_tokens.weight", (uint64_t)c->vocab * c->hidden, f, err);
    if (fclose(f) != 0 && e == AX_OK)
        e = ax_fail(err, AX_EIO, "%s: write failed", path);
    return e;
}

static enum ax_err copy_file(const char *src, const char *dst, char *err)
{
    char *data;
    size_t len;
    enum ax_err e = ax_file_read(src, (size_t)1 << 30, &data, &len, err);
    if (e != AX_OK)
        return e;
    FILE *f = fopen(dst, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        if (f)
            fclose(f);
        ax_free(data);
        return ax_fail(err, AX_EIO, "%s: cannot write", dst);
    }
    ax_free(data);
    return fclose(f) == 0 ? AX_OK : ax_fail(err, AX_EIO, "%s: cannot write", dst);
}

static enum ax_err write_config(const char *dst, const char *name, const char *sub, int P,
                                const struct cfg *c, char *err)
{
    char p[PATHN], tmpl[512], post[512], emb[512];
    snprintf(tmpl, sizeof tmpl, "%s/%s_p%d_l%%d_together.axmodel", sub, name, P);
    snprintf(post, sizeof post, "%s/%s_post.axmodel", sub, name);
    snprintf(emb, sizeof emb, "%s/model.embed_tokens.weight.bfloat16.bin", sub);
    json_t *o = json_object();
    json_object_set_new(o, "model_name", json_string(name));
    json_object_set_new(o, "tokenizer_type", json_string("Qwen3"));
    json_object_set_new(o, "template_filename_axmodel", json_string(tmpl));
    json_object_set_new(o, "axmodel_num", json_integer(c->layers));
    json_object_set_new(o, "filename_post_axmodel", json_string(post));
    json_object_set_new(o, "filename_tokens_embed", json_string(emb));
    json_object_set_new(o, "tokens_embed_num", json_integer(c->vocab));
    json_object_set_new(o, "tokens_embed_size", json_integer(c->hidden));
    json_object_set_new(o, "use_mmap_load_embed", json_integer(1));
    json_object_set_new(o, "devices", json_pack("[i]", 0));
    json_object_set_new(o, "emulator_only",
                        json_string("layer files are axcl-emu format (axserve emu-compile)"));
    snprintf(p, sizeof p, "%s/config.json", dst);
    int r = json_dump_file(o, p, JSON_INDENT(2));
    json_decref(o);
    return r == 0 ? AX_OK : ax_fail(err, AX_EIO, "%s: cannot write", p);
}

/* ---- command ---------------------------------------------------------- */

struct opts {
    const char *src, *dst, *name;
    int prefill, kv, n_hist;
    int hist[AXEMU_MAX_GROUPS];
};

static int parse(int argc, char **argv, struct opts *o)
{
    o->name = "qwen3";
    o->prefill = 128;
    o->kv = 1023;
    int def[] = {1, 256, 512};
    o->n_hist = 3;
    memcpy(o->hist, def, sizeof def);
    int pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!a)
            break;
        if (!strcmp(a, "--prefill") && v) {
            o->prefill = atoi(v);
            i++;
        } else if (!strcmp(a, "--kv") && v) {
            o->kv = atoi(v);
            i++;
        } else if (!strcmp(a, "--name") && v) {
            o->name = v;
            i++;
        } else if (!strcmp(a, "--history") && v) {
            o->n_hist = 0;
            for (const char *s = v; *s && o->n_hist < AXEMU_MAX_GROUPS - 1;) {
                char *end;
                o->hist[o->n_hist++] = (int)strtol(s, &end, 10);
                if (end == s)
                    return -1;
                s = *end == ',' ? end + 1 : end;
            }
            i++;
        } else if (a[0] != '-' && pos < 2) {
            if (pos++ == 0)
                o->src = a;
            else
                o->dst = a;
        } else {
            return -1; /* unknown option or a third path */
        }
    }
    if (!o->src || !o->dst || o->prefill < 1 || o->prefill > 4096 || o->kv < 1 ||
        o->kv > (1 << 20) || strlen(o->name) > 64 || strchr(o->name, '/'))
        return -1;
    for (int i = 0; i < o->n_hist; i++)
        if (o->hist[i] < 1 || o->hist[i] > o->kv)
            return -1;
    return 0;
}

static enum ax_err compile(const struct opts *o, char *err)
{
    struct cfg c;
    memset(&c, 0, sizeof c);
    struct model *ck = NULL;
    enum ax_err e = model_open(o->src, &ck, err);
    if (e == AX_OK)
        e = read_cfg(ck, &c, err);
    char sub[128], dir[PATHN], p[PATHN + 256];
    snprintf(sub, sizeof sub, "%s-emu-ax650", o->name);
    snprintf(dir, sizeof dir, "%s/%s", o->dst, sub);
    mkdir(o->dst, 0755);
    if (e == AX_OK && mkdir(dir, 0755) != 0 && errno != EEXIST)
        e = ax_fail(err, AX_EIO, "%s: %s", dir, strerror(errno));
    struct axemu_header h;
    header(&h, &c, AXEMU_KIND_LAYER);
    h.intermediate = (uint32_t)c.inter;
    h.kv_cache_num = (uint32_t)o->kv;
    h.prefill = (uint32_t)o->prefill;
    h.n_groups = (uint32_t)o->n_hist + 1;
    for (int g = 0; g < o->n_hist; g++)
        h.history[g + 1] = (uint32_t)o->hist[g];
    for (int l = 0; e == AX_OK && l < c.layers; l++) {
        snprintf(p, sizeof p, "%s/%s_p%d_l%d_together.axmodel", dir, o->name, o->prefill, l);
        e = write_layer(ck, &c, l, &h, p, err);
    }
    if (e == AX_OK) {
        snprintf(p, sizeof p, "%s/%s_post.axmodel", dir, o->name);
        e = write_post(ck, &c, p, err);
    }
    if (e == AX_OK) {
        snprintf(p, sizeof p, "%s/model.embed_tokens.weight.bfloat16.bin", dir);
        e = write_embed(ck, &c, p, err);
    }
    if (e == AX_OK)
        e = write_config(o->dst, o->name, sub, o->prefill, &c, err);
    /* Tokenizer folder, as the vendor ships it; files that exist only. */
    snprintf(dir, sizeof dir, "%s/%s_tokenizer", o->dst, o->name);
    if (e == AX_OK && mkdir(dir, 0755) != 0 && errno != EEXIST)
        e = ax_fail(err, AX_EIO, "%s: %s", dir, strerror(errno));
    const char *tj = ck ? model_tokenizer_json(ck) : NULL;
    const char *tc = ck ? model_tokenizer_config(ck) : NULL;
    if (e == AX_OK && tj) {
        snprintf(p, sizeof p, "%s/tokenizer.json", dir);
        e = copy_file(tj, p, err);
    }
    if (e == AX_OK && tc) {
        snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
        e = copy_file(tc, p, err);
    }
    static const char *const extra[] = {"generation_config.json", "config.json"};
    for (size_t i = 0; e == AX_OK && i < sizeof extra / sizeof extra[0]; i++) {
        char s[PATHN + 64];
        snprintf(s, sizeof s, "%s/%s", o->src, extra[i]);
        snprintf(p, sizeof p, "%s/%s", dir, extra[i]);
        if (ax_file_exists(s))
            e = copy_file(s, p, err);
    }
    model_free(ck);
    return e;
}

int cli_emu_compile(int argc, char **argv)
{
    struct opts o;
    memset(&o, 0, sizeof o);
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: axserve emu-compile SRC_HF_DIR DST_DIR [--prefill 128] "
               "[--history 1,256,512] [--kv 1023] [--name qwen3]\n"
               "Writes a vendor-layout model directory for the AXCL emulator only.\n");
        return 0;
    }
    if (parse(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: axserve emu-compile SRC_HF_DIR DST_DIR [--prefill P] "
                        "[--history H1,H2,...] [--kv N] [--name NAME]\n"
                        "  (1 <= H <= N; P <= 4096)\n");
        return 2;
    }
    char err[AX_ERRLEN] = "";
    enum ax_err e = compile(&o, err);
    if (e != AX_OK) {
        fprintf(stderr, "axserve emu-compile: %s\n", err);
        return 1;
    }
    fprintf(stderr, "axserve emu-compile: wrote %s (emulator format; decode N=%d, prefill %d)\n",
            o.dst, o.kv, o.prefill);
    return 0;
}
