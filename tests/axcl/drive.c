/* drive.c - test driver for the axcl backend without the engine: reads a
 * vendor-layout model directory's config.json, opens the backend through
 * axcl_backend_open_layout and decodes greedily. Prints
 *   {"tokens":[...],"lp":[...]}    (lp = log-softmax of the chosen token)
 * Usage: axcl-drive DIR --ids 1,2,3 -n N [--devices 1,2] [--slots K]
 *        [--slot S] [--chunk C]   (C: tokens per forward call while
 *        prefilling, default = all at once) */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/axcl/axcl.h"
#include "model/model.h"
#include "util/mem.h"

int axcl_drive_layout(const char *dir, struct axmodel_layout *lay, char *err);

int axcl_drive_layout(const char *dir, struct axmodel_layout *lay, char *err)
{
    char p[MODEL_PATH_MAX];
    snprintf(p, sizeof p, "%s/config.json", dir);
    json_error_t je;
    json_t *o = json_load_file(p, 0, &je);
    if (!o) {
        snprintf(err, AX_ERRLEN, "%.300s: %.150s", p, je.text);
        return -1;
    }
    memset(lay, 0, sizeof *lay);
    const char *t = json_string_value(json_object_get(o, "template_filename_axmodel"));
    const char *po = json_string_value(json_object_get(o, "filename_post_axmodel"));
    const char *em = json_string_value(json_object_get(o, "filename_tokens_embed"));
    if (!t || !po || !em) {
        json_decref(o);
        snprintf(err, AX_ERRLEN, "%.400s: missing fields", p);
        return -1;
    }
    snprintf(lay->layer_template, sizeof lay->layer_template, "%s/%s", dir, t);
    snprintf(lay->post_path, sizeof lay->post_path, "%s/%s", dir, po);
    snprintf(lay->embed_path, sizeof lay->embed_path, "%s/%s", dir, em);
    lay->n_layers = (int)json_integer_value(json_object_get(o, "axmodel_num"));
    lay->embed_rows = json_integer_value(json_object_get(o, "tokens_embed_num"));
    lay->embed_cols = json_integer_value(json_object_get(o, "tokens_embed_size"));
    json_decref(o);
    return 0;
}

static int argmax_lp(const float *l, int n, float *lp)
{
    int best = 0;
    double mx = l[0], s = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[best])
            best = i;
    mx = l[best];
    for (int i = 0; i < n; i++)
        s += exp((double)l[i] - mx);
    *lp = (float)(-log(s));
    return best;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: axcl-drive DIR --ids 1,2 -n N [--devices 1,2] [--slots K] "
                        "[--slot S] [--chunk C]\n");
        return 2;
    }
    int32_t ids[4096];
    int n_ids = 0, n_gen = 1, chunk = 0, slot = 0;
    struct backend_opts o = {.name = "axcl"};
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ids"))
            for (char *s = argv[i + 1]; *s && n_ids < 4096;) {
                ids[n_ids++] = (int32_t)strtol(s, &s, 10);
                if (*s == ',')
                    s++;
            }
        else if (!strcmp(argv[i], "-n"))
            n_gen = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--devices"))
            o.devices = argv[i + 1];
        else if (!strcmp(argv[i], "--slots"))
            o.n_slots = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--slot"))
            slot = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--chunk"))
            chunk = atoi(argv[i + 1]);
    }
    char err[AX_ERRLEN] = "";
    struct axmodel_layout lay;
    if (axcl_drive_layout(argv[1], &lay, err) != 0) {
        fprintf(stderr, "axcl-drive: %s\n", err);
        return 1;
    }
    struct backend b;
    memset(&b, 0, sizeof b);
    enum ax_err e = axcl_backend_open_layout(&o, &lay, &b, err);
    if (e != AX_OK) {
        fprintf(stderr, "axcl-drive: %s: %s\n", ax_strerror(e), err);
        return 1;
    }
    float *logits = ax_calloc((size_t)b.lim.n_vocab, sizeof(float));
    printf("{\"tokens\":[");
    int pos = 0, rc = 0;
    int32_t toks[8192];
    memcpy(toks, ids, (size_t)n_ids * sizeof *ids);
    int n = n_ids;
    for (int g = 0; g < n_gen && rc == 0; g++) {
        while (pos < n) {
            int c = n - pos;
            if (chunk > 0 && c > chunk)
                c = chunk;
            struct backend_seq s = {.slot = slot, .tokens = toks + pos, .n_tokens = c, .pos = pos,
                                    .logits = pos + c == n ? logits : NULL};
            e = b.ops->forward(b.ctx, &s, 1, err);
            if (e != AX_OK) {
                fprintf(stderr, "axcl-drive: forward at %d: %s: %s (healthy=%d)\n", pos,
                        ax_strerror(e), err, b.ops->healthy(b.ctx));
                rc = 1;
                break;
            }
            pos += c;
        }
        if (rc)
            break;
        float lp;
        int t = argmax_lp(logits, b.lim.n_vocab, &lp);
        printf("%s%d", g ? "," : "", t);
        toks[n++] = t;
        fprintf(stderr, "lp %d %.5f\n", t, lp);
    }
    printf("]}\n");
    ax_free(logits);
    b.ops->free(b.ctx);
    return rc;
}
