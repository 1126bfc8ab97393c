/* make-test-model.c - `axserve make-test-model DIR [options]`: writes a
 * synthetic Qwen3 checkpoint (random weights, real shapes, real tokenizer)
 * via model/testmodel.c, then reopens it with model_open as a check. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "model/model.h"
#include "model/testmodel.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: axserve make-test-model DIR [options]\n"
            "  --tokenizer-from TOKDIR  copy tokenizer.json + tokenizer_config.json from TOKDIR\n"
            "  --hidden H (256)  --layers L (4)  --heads NH (4)  --kv-heads KV (2)\n"
            "  --head-dim D (64)  --intermediate I (768)  --max-pos P (4096)\n"
            "  --vocab N             rows of the embedding (default: from the tokenizer)\n"
            "  --vocab-from-tokenizer  (the default) the tokenizer's id range, Qwen-padded\n"
            "  --dtype f32|bf16 (bf16)  --tied 0|1 (1)  --seed S (42)  --shards N (1)\n"
            "Writes DIR atomically; replaces DIR only if it is empty or synthetic.\n");
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

/* mkdir -p for the parent of dir, so `make` can write build/models/x. */
static void make_parents(const char *dir)
{
    char p[MODEL_PATH_MAX];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
}

static int set_int_opt(struct test_model_opts *o, const char *name, const char *val)
{
    static const struct {
        const char *name;
        size_t off;
    } ints[] = {
        {"--hidden", offsetof(struct test_model_opts, hidden)},
        {"--layers", offsetof(struct test_model_opts, layers)},
        {"--heads", offsetof(struct test_model_opts, heads)},
        {"--kv-heads", offsetof(struct test_model_opts, kv_heads)},
        {"--head-dim", offsetof(struct test_model_opts, head_dim)},
        {"--intermediate", offsetof(struct test_model_opts, intermediate)},
        {"--vocab", offsetof(struct test_model_opts, vocab)},
        {"--max-pos", offsetof(struct test_model_opts, max_pos)},
        {"--tied", offsetof(struct test_model_opts, tied)},
        {"--shards", offsetof(struct test_model_opts, shards)},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (strcmp(name, ints[i].name) != 0)
            continue;
        long v;
        long hi = !strcmp(name, "--tied") ? 1 : 1L << 30;
        if (!parse_int(val, !strcmp(name, "--tied") ? 0 : 1, hi, &v))
            return -1;
        *(int *)((char *)o + ints[i].off) = (int)v;
        return 1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, struct test_model_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--vocab-from-tokenizer")) {
            o->vocab = 0;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (o->dir)
                return 0;
            o->dir = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "make-test-model: %s needs a value\n", a);
            return 0;
        }
        const char *v = argv[++i];
        int r = set_int_opt(o, a, v);
        if (r < 0) {
            fprintf(stderr, "make-test-model: bad value for %s: '%s'\n", a, v);
            return 0;
        }
        if (r > 0)
            continue;
        if (!strcmp(a, "--tokenizer-from"))
            o->tokenizer_from = v;
        else if (!strcmp(a, "--dtype") && (!strcmp(v, "f32") || !strcmp(v, "bf16")))
            o->dtype = !strcmp(v, "f32") ? DT_F32 : DT_BF16;
        else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            o->seed = strtoull(v, &end, 10);
            if (errno || end == v || *end)
                return 0;
        } else {
            fprintf(stderr, "make-test-model: unknown option or value: %s %s\n", a, v);
            return 0;
        }
    }
    return o->dir != NULL;
}

int cli_make_test_model(int argc, char **argv)
{
    struct test_model_opts o;
    testmodel_defaults(&o);
    if (!parse_args(argc, argv, &o)) {
        usage(stderr);
        return 2;
    }
    char err[AX_ERRLEN] = "";
    make_parents(o.dir);
    enum ax_err rc = testmodel_write(&o, stdout, err);
    if (rc) {
        fprintf(stderr, "make-test-model: %s (%s)\n", err, ax_strerror(rc));
        return 1;
    }
    struct model *m;
    if (model_open(o.dir, &m, err) != AX_OK) {
        fprintf(stderr, "make-test-model: the written model does not open: %s\n", err);
        return 1;
    }
    printf("checked: %zu tensors open and have the expected shapes\n", model_n_tensors(m));
    model_free(m);
    return 0;
}
