/* drive.c - test driver for the axcl backend without the engine: opens a
 * vendor-layout model directory with model_open, the backend through
 * backend_open (name "axcl") and decodes greedily. Prints
 *   {"tokens":[...],"lp":[...]}    (lp = log-softmax of the chosen token)
 * Usage: axcl-drive DIR --ids 1,2,3 -n N [--devices 1,2] [--slots K]
 *        [--slot S] [--chunk C] [--force 5,6,7] [--ids2 8,9] [--force2 ...]
 *   --chunk C   tokens per forward call while prefilling (default: all)
 *   --force     teacher forcing: step i continues with force[i] instead of
 *               the argmax; lp is then that token's log-probability
 *   --ids2      a second conversation in slot S+1, advanced in lock step
 *               with the first (slot switching on every forward); printed
 *               as "tokens2"/"lp2" */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/axcl/axcl.h"
#include "model/model.h"
#include "util/mem.h"

static double log_softmax_at(const float *l, int n, int t)
{
    double mx = l[0], s = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > mx)
            mx = l[i];
    for (int i = 0; i < n; i++)
        s += exp((double)l[i] - mx);
    return (double)l[t] - mx - log(s);
}

static int argmax(const float *l, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[best])
            best = i;
    return best;
}

static int parse_ids(const char *s, int32_t *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        out[n++] = (int32_t)strtol(s, &end, 10);
        if (end == s)
            return -1;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

struct conv {
    int slot, pos, n, n_force, chunk;
    int32_t toks[8192];
    int32_t force[4096];
    int out[4096];
    double lp[4096];
    int n_out;
};

/* Feeds what the conversation has not run yet, then picks the next token. */
static enum ax_err conv_step(struct backend *b, struct conv *c, float *logits, char *err)
{
    while (c->pos < c->n) {
        int k = c->n - c->pos;
        if (c->chunk > 0 && k > c->chunk)
            k = c->chunk;
        struct backend_seq s = {.slot = c->slot,
                                .tokens = c->toks + c->pos,
                                .n_tokens = k,
                                .pos = c->pos,
                                .logits = c->pos + k == c->n ? logits : NULL};
        enum ax_err e = b->ops->forward(b->ctx, &s, 1, err);
        if (e != AX_OK)
            return e;
        c->pos += k;
    }
    int t = argmax(logits, b->lim.n_vocab);
    int next = c->n_out < c->n_force ? c->force[c->n_out] : t;
    c->out[c->n_out] = t;
    c->lp[c->n_out++] = log_softmax_at(logits, b->lim.n_vocab, next);
    c->toks[c->n++] = next;
    return AX_OK;
}

static void print_conv(const struct conv *c, const char *suffix)
{
    printf("\"tokens%s\":[", suffix);
    for (int i = 0; i < c->n_out; i++)
        printf("%s%d", i ? "," : "", c->out[i]);
    printf("],\"lp%s\":[", suffix);
    for (int i = 0; i < c->n_out; i++)
        printf("%s%.5f", i ? "," : "", c->lp[i]);
    printf("]");
}

static struct conv c1, c2;

/* SIGTERM only sets a flag; the loop stops between steps and the normal
 * teardown (free, unload, axclrtResetDevice, axclFinalize) runs outside
 * the handler. */
static volatile sig_atomic_t stop;
static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: axcl-drive DIR --ids 1,2 -n N [--devices 1,2] [--slots K] "
                        "[--slot S] [--chunk C] [--force ...] [--ids2 ...]\n");
        return 2;
    }
    int n_gen = 1, two = 0;
    struct backend_opts o = {.name = "axcl"};
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--ids"))
            c1.n = parse_ids(v, c1.toks, 4096);
        else if (!strcmp(a, "--ids2")) {
            c2.n = parse_ids(v, c2.toks, 4096);
            two = 1;
        } else if (!strcmp(a, "--force"))
            c1.n_force = parse_ids(v, c1.force, 4096);
        else if (!strcmp(a, "-n"))
            n_gen = atoi(v);
        else if (!strcmp(a, "--devices"))
            o.devices = v;
        else if (!strcmp(a, "--slots"))
            o.n_slots = atoi(v);
        else if (!strcmp(a, "--slot"))
            c1.slot = atoi(v);
        else if (!strcmp(a, "--chunk"))
            c1.chunk = c2.chunk = atoi(v);
    }
    c2.slot = c1.slot + 1;
    if (c1.n < 1 || c1.n_force < 0 || c2.n < 0 || n_gen < 1 || n_gen > 4000) {
        fprintf(stderr, "axcl-drive: bad arguments\n");
        return 2;
    }
    char err[AX_ERRLEN] = "";
    struct model *m = NULL;
    struct backend *bk = NULL;
    enum ax_err e = model_open(argv[1], &m, err);
    if (e == AX_OK)
        e = backend_open(&o, m, &bk, err);
    if (e != AX_OK) {
        fprintf(stderr, "axcl-drive: %s: %s\n", ax_strerror(e), err);
        model_free(m);
        return 1;
    }
    struct backend b = *bk;
    float *logits = ax_calloc((size_t)b.lim.n_vocab, sizeof(float));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    for (int g = 0; g < n_gen && e == AX_OK && !stop; g++) {
        e = conv_step(&b, &c1, logits, err);
        if (e == AX_OK && two)
            e = conv_step(&b, &c2, logits, err);
    }
    int healthy = b.ops->healthy(b.ctx);
    printf("{");
    print_conv(&c1, "");
    if (two) {
        printf(",");
        print_conv(&c2, "2");
    }
    printf(",\"healthy\":%d,\"interrupted\":%d}\n", healthy, (int)stop);
    if (e != AX_OK)
        fprintf(stderr, "axcl-drive: forward: %s: %s (healthy=%d)\n", ax_strerror(e), err, healthy);
    ax_free(logits);
    backend_free(bk);
    model_free(m);
    return e == AX_OK ? 0 : 1;
}
