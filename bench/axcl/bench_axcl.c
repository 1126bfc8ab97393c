/* bench_axcl.c - `make bench-axcl`: bus calls, bytes and MODELLED tokens/s
 * per decoded and per prefilled token, for axserve's axcl backend and for
 * a replay of the vendor runtime's call pattern (vendor_replay.c), both on
 * the AXCL emulator. Modelled time comes from call counts and the link
 * model (per-call latency, device compute per layer and post model,
 * optional bandwidth), not from emulator wall time: the emulator runs
 * the NPU's work on this CPU.
 *
 * usage: bench_axcl MODEL_DIR LABEL LAYER_US [--lat-us 150] [--post-us 1500]
 *        [--mbps 0] [--prompt 200] [--decode 16]
 * AXSERVE_AXCL_LIB must name the emulator. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/axcl/axcl.h"
#include "backend/axcl/axcl_rt.h"
#include "bench.h"
#include "util/mem.h"

static axemu_get_stats_fn get_stats;

void bench_mark(struct bench_phase *p)
{
    get_stats(&p->start);
}

void bench_done(struct bench_phase *p, int n)
{
    struct axemu_stats e;
    get_stats(&e);
    const struct axemu_stats *s = &p->start;
    p->bus = (double)(e.bus_calls - s->bus_calls) / n;
    p->execs =
        (double)(e.calls[AXEMU_C_axclrtEngineExecute] + e.calls[AXEMU_C_axclrtEngineExecuteAsync] -
                 s->calls[AXEMU_C_axclrtEngineExecute] -
                 s->calls[AXEMU_C_axclrtEngineExecuteAsync]) /
        n;
    p->binds = (double)(e.calls[AXEMU_C_axclrtEngineSetInputBufferByIndex] +
                        e.calls[AXEMU_C_axclrtEngineSetOutputBufferByIndex] -
                        s->calls[AXEMU_C_axclrtEngineSetInputBufferByIndex] -
                        s->calls[AXEMU_C_axclrtEngineSetOutputBufferByIndex]) /
               n;
    p->h2d = (double)(e.h2d - s->h2d) / n;
    p->d2h = (double)(e.d2h - s->d2h) / n;
    p->d2d = (double)(e.d2d - s->d2d) / n;
    p->us = (e.modelled_us - s->modelled_us) / n;
}

static int ours(const struct model *m, int n_prompt, int n_decode, struct bench_phase *pre,
                struct bench_phase *dec, char *err)
{
    struct backend_opts o = {.name = "axcl", .n_slots = 1};
    struct backend *b = NULL;
    if (backend_open(&o, m, &b, err) != AX_OK)
        return -1;
    float *logits = ax_calloc((size_t)b->lim.n_vocab, sizeof(float));
    int32_t *toks = ax_calloc((size_t)(n_prompt + n_decode + 1), sizeof(int32_t));
    int rc = -1;
    if (!logits || !toks)
        goto out;
    for (int i = 0; i < n_prompt; i++)
        toks[i] = (i * 7 + 3) % b->lim.n_vocab;
    bench_mark(pre);
    for (int pos = 0; pos < n_prompt;) {
        int n = n_prompt - pos < b->lim.prefill_chunk ? n_prompt - pos : b->lim.prefill_chunk;
        struct backend_seq s = {0, toks + pos, n, pos, pos + n == n_prompt ? logits : NULL};
        if (b->ops->forward(b->ctx, &s, 1, err) != AX_OK)
            goto out;
        pos += n;
    }
    bench_done(pre, n_prompt);
    bench_mark(dec);
    for (int i = 0; i < n_decode; i++) {
        int best = 0;
        for (int v = 1; v < b->lim.n_vocab; v++)
            if (logits[v] > logits[best])
                best = v;
        toks[n_prompt + i] = best;
        struct backend_seq s = {0, toks + n_prompt + i, 1, n_prompt + i, logits};
        if (b->ops->forward(b->ctx, &s, 1, err) != AX_OK)
            goto out;
    }
    bench_done(dec, n_decode);
    rc = 0;
out:
    ax_free(logits);
    ax_free(toks);
    backend_free(b);
    return rc;
}

static void row(const char *phase, const char *who, const struct bench_phase *p, int layers)
{
    printf("%-8s %-8s %9.2f %9.3f %7.2f %7.2f %10.0f %9.0f %10.0f %11.2f\n", phase, who, p->bus,
           p->bus / layers, p->execs, p->binds, p->h2d, p->d2h, p->d2d, 1e6 / p->us);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_axcl MODEL_DIR LABEL LAYER_US [--lat-us 150] "
                        "[--post-us 1500] [--mbps 0] [--prompt 200] [--decode 16]\n");
        return 2;
    }
    struct axemu_link link = {150, atof(argv[3]), 1500, 0};
    int n_prompt = 200, n_decode = 16;
    for (int i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--lat-us"))
            link.lat_us = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--post-us"))
            link.post_us = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--mbps"))
            link.mbps = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--prompt"))
            n_prompt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--decode"))
            n_decode = atoi(argv[i + 1]);
    }
    char err[AX_ERRLEN] = "";
    const struct axcl_rt *rt;
    struct model *m = NULL;
    if (axcl_rt_acquire(&rt, err) != AX_OK || !rt->is_emulator ||
        model_open(argv[1], &m, err) != AX_OK) {
        fprintf(stderr, "bench_axcl: %s (AXSERVE_AXCL_LIB must be the emulator)\n", err);
        return 1;
    }
    /* The runtime stays loaded (our reference) so counters survive. */
    void *h = dlopen(rt->path, RTLD_NOW | RTLD_NOLOAD);
    void *gs = h ? dlsym(h, "axclEmuGetStats") : NULL;
    void *sl = h ? dlsym(h, "axclEmuSetLink") : NULL;
    if (!gs || !sl) {
        fprintf(stderr, "bench_axcl: %s lacks the emulator's stats calls\n", rt->path);
        return 1;
    }
    memcpy(&get_stats, &gs, sizeof gs);
    axemu_set_link_fn set_link;
    memcpy(&set_link, &sl, sizeof sl);
    set_link(&link);
    int layers = model_axmodel(m)->n_layers;
    struct bench_phase op, od, vp, vd;
    if (ours(m, n_prompt, n_decode, &op, &od, err) != 0 ||
        vendor_replay(model_axmodel(m), n_prompt, n_decode, &vp, &vd, err) != 0) {
        fprintf(stderr, "bench_axcl: %s\n", err);
        return 1;
    }
    printf("\n== %s: %d layers; link model: %.0f us per bus call, %.0f us per layer, "
           "post %.0f us, %s; prompt %d, decode %d (AXCL emulator, modelled)\n",
           argv[2], layers, link.lat_us, link.layer_us, link.post_us,
           link.mbps > 0 ? "bandwidth modelled" : "bandwidth not modelled", n_prompt, n_decode);
    printf("%-8s %-8s %9s %9s %7s %7s %10s %9s %10s %11s\n", "phase", "runtime", "bus/tok",
           "bus/layer", "exec", "binds", "h2d B", "d2h B", "d2d B", "model tok/s");
    row("decode", "axserve", &od, layers);
    row("decode", "vendor", &vd, layers);
    row("prefill", "axserve", &op, layers);
    row("prefill", "vendor", &vp, layers);
    printf("decode speed-up (modelled): %.2fx (goal >= 1.4x); prefill: %.2fx; "
           "bus calls per layer per decoded token: %.3f (goal <= 1.5)\n",
           vd.us / od.us, vp.us / op.us, od.bus / layers);
    printf("(prefill model tok/s charges a whole chunk one layer time: the facts give no\n"
           " prefill compute figure, so only its call and byte counts are meaningful)\n");
    printf("decode ceiling (device compute only): %.2f tok/s\n",
           1e6 / (layers * link.layer_us + link.post_us));
    model_free(m);
    dlclose(h);
    axcl_rt_release();
    return 0;
}
