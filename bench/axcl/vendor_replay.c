/* vendor_replay.c - a second, deliberately vendor-like host driver for the
 * same emulated card: the call pattern of AXERA's runtime as described in
 * the facts, so bench_axcl can count its bus calls and bytes against ours.
 *
 * Per layer per decoded token: upload the position, upload the mask,
 * execute (synchronous), copy K_cache_out and V_cache_out into the cache
 * row, pass `output` to the next layer's input (device to device). Per
 * token also: upload the embedding row, run the post model, download the
 * logits. Prefill per chunk per layer: upload indices, upload mask,
 * execute, copy the chunk's K/V rows, pass the output. One K/V cache per
 * layer aliased across the groups. Outputs are not checked here (the
 * suite checks ours); this only reproduces the traffic. */
#include <stdio.h>
#include <string.h>

#include "backend/axcl/axcl_rt.h"
#include "bench.h"
#include "util/mem.h"

struct vlayer {
    uint64_t model, ectx;
    void *info, *io[16];
    uint32_t ix_in[5], ix_out[3];
    void *k, *v, *in, *out, *idx, *mask, *kout, *vout;
};

static const char *const in_names[] = {"input", "indices", "mask", "K_cache", "V_cache"};
static const char *const out_names[] = {"output", "K_cache_out", "V_cache_out"};

static int find(const struct axcl_rt *rt, void *info, int out, const char *name, uint32_t *ix)
{
    uint32_t n = out ? rt->EngineGetNumOutputs(info) : rt->EngineGetNumInputs(info);
    for (uint32_t i = 0; i < n; i++) {
        const char *s =
            out ? rt->EngineGetOutputNameByIndex(info, i) : rt->EngineGetInputNameByIndex(info, i);
        if (s && !strcmp(s, name)) {
            *ix = i;
            return 1;
        }
    }
    return 0;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((x) != 0) {                                                                            \
            snprintf(err, AX_ERRLEN, "vendor replay: %s failed", #x);                              \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

struct replay {
    const struct axcl_rt *rt;
    struct vlayer *L;
    int n, G, P, N, kv, hidden, vocab, hist[16];
    uint64_t post, post_ctx;
    void *post_info, *post_io, *logits_d, *host;
    size_t host_len;
};

static int load(struct replay *r, const struct axmodel_layout *lay, char *err)
{
    const struct axcl_rt *rt = r->rt;
    char path[MODEL_PATH_MAX + 32];
    r->hidden = (int)lay->embed_cols;
    for (int l = 0; l < r->n; l++) {
        struct vlayer *v = &r->L[l];
        snprintf(path, sizeof path, lay->layer_template, l);
        TRY(rt->EngineLoadFromFile(path, &v->model));
        TRY(rt->EngineCreateContext(v->model, &v->ectx));
        TRY(rt->EngineGetIOInfo(v->model, &v->info));
        for (int i = 0; i < 5; i++)
            TRY(!find(rt, v->info, 0, in_names[i], &v->ix_in[i]));
        for (int i = 0; i < 3; i++)
            TRY(!find(rt, v->info, 1, out_names[i], &v->ix_out[i]));
        int32_t G = 0;
        TRY(rt->EngineGetShapeGroupsCount(v->info, &G));
        r->G = G;
        r->kv = (int)(rt->EngineGetOutputSizeByIndex(v->info, 0, v->ix_out[1]) / 2);
        r->N = (int)(rt->EngineGetInputSizeByIndex(v->info, 0, v->ix_in[3]) / 2 / (uint64_t)r->kv);
        r->P = G > 1 ? (int)(rt->EngineGetInputSizeByIndex(v->info, 1, v->ix_in[1]) / 4) : 1;
        for (int g = 0; g < G; g++) {
            r->hist[g] = (int)(rt->EngineGetInputSizeByIndex(v->info, (uint32_t)g, v->ix_in[3]) /
                               2 / (uint64_t)r->kv);
            TRY(rt->EngineCreateIO(v->info, &v->io[g]));
        }
        size_t P = (size_t)r->P, row = (size_t)r->kv * 2, hid = (size_t)r->hidden * 2;
        size_t maxmask = P * ((size_t)r->hist[G - 1] + P) * 2;
        if (maxmask < ((size_t)r->N + 1) * 2)
            maxmask = ((size_t)r->N + 1) * 2;
        TRY(rt->Malloc(&v->k, (size_t)r->N * row, 0));
        TRY(rt->Malloc(&v->v, (size_t)r->N * row, 0));
        TRY(rt->Memset(v->k, 0, (size_t)r->N * row));
        TRY(rt->Memset(v->v, 0, (size_t)r->N * row));
        TRY(rt->Malloc(&v->in, P * hid, 0));
        TRY(rt->Malloc(&v->out, P * hid, 0));
        TRY(rt->Malloc(&v->idx, P * 4, 0));
        TRY(rt->Malloc(&v->mask, maxmask, 0));
        TRY(rt->Malloc(&v->kout, P * row, 0));
        TRY(rt->Malloc(&v->vout, P * row, 0));
        for (int g = 0; g < G; g++) {
            uint64_t R = g ? P : 1, H = (uint64_t)r->hist[g];
            void *io = v->io[g];
            TRY(rt->EngineSetInputBufferByIndex(io, v->ix_in[0], v->in, R * hid));
            TRY(rt->EngineSetInputBufferByIndex(io, v->ix_in[1], v->idx, R * 4));
            TRY(rt->EngineSetInputBufferByIndex(io, v->ix_in[2], v->mask, R * (H + R) * 2));
            TRY(rt->EngineSetInputBufferByIndex(io, v->ix_in[3], v->k, H * row));
            TRY(rt->EngineSetInputBufferByIndex(io, v->ix_in[4], v->v, H * row));
            TRY(rt->EngineSetOutputBufferByIndex(io, v->ix_out[0], v->out, R * hid));
            TRY(rt->EngineSetOutputBufferByIndex(io, v->ix_out[1], v->kout, R * row));
            TRY(rt->EngineSetOutputBufferByIndex(io, v->ix_out[2], v->vout, R * row));
        }
    }
    TRY(rt->EngineLoadFromFile(lay->post_path, &r->post));
    TRY(rt->EngineCreateContext(r->post, &r->post_ctx));
    TRY(rt->EngineGetIOInfo(r->post, &r->post_info));
    TRY(rt->EngineCreateIO(r->post_info, &r->post_io));
    r->vocab = (int)(rt->EngineGetOutputSizeByIndex(r->post_info, 0, 0) / 2);
    TRY(rt->Malloc(&r->logits_d, (size_t)r->vocab * 2, 0));
    TRY(rt->EngineSetInputBufferByIndex(r->post_io, 0, r->L[r->n - 1].out,
                                        (uint64_t)r->hidden * 2));
    TRY(rt->EngineSetOutputBufferByIndex(r->post_io, 0, r->logits_d, (uint64_t)r->vocab * 2));
    r->host_len = (size_t)r->vocab * 2 + (size_t)r->P * ((size_t)r->hist[r->G - 1] + r->P) * 2 +
                  (size_t)r->P * (size_t)r->hidden * 2 + ((size_t)r->N + 1) * 2;
    TRY(rt->MallocHost(&r->host, r->host_len));
    memset(r->host, 0, r->host_len);
    return 0;
}

/* One step of `rows` tokens at pos through group g, vendor style. */
static int step(struct replay *r, int pos, int rows, int g, int logits, char *err)
{
    const struct axcl_rt *rt = r->rt;
    size_t hid = (size_t)r->hidden * 2, row = (size_t)r->kv * 2;
    size_t R = g ? (size_t)r->P : 1, H = (size_t)r->hist[g];
    uint8_t *h = r->host;
    TRY(rt->Memcpy(r->L[0].in, h, R * hid, AXCL_H2D)); /* embeddings */
    for (int l = 0; l < r->n; l++) {
        struct vlayer *v = &r->L[l];
        TRY(rt->Memcpy(v->idx, h, R * 4, AXCL_H2D));
        TRY(rt->Memcpy(v->mask, h, R * (H + R) * 2, AXCL_H2D));
        TRY(rt->EngineExecute(v->model, v->ectx, (uint32_t)g, v->io[g]));
        TRY(rt->Memcpy((uint8_t *)v->k + (size_t)pos * row, v->kout, (size_t)rows * row, AXCL_D2D));
        TRY(rt->Memcpy((uint8_t *)v->v + (size_t)pos * row, v->vout, (size_t)rows * row, AXCL_D2D));
        if (l + 1 < r->n)
            TRY(rt->Memcpy(r->L[l + 1].in, v->out, R * hid, AXCL_D2D));
    }
    if (logits) {
        TRY(rt->EngineExecute(r->post, r->post_ctx, 0, r->post_io));
        TRY(rt->Memcpy(h, r->logits_d, (size_t)r->vocab * 2, AXCL_D2H));
    }
    return 0;
}

static void teardown(struct replay *r)
{
    const struct axcl_rt *rt = r->rt;
    for (int l = 0; l < r->n; l++) {
        struct vlayer *v = &r->L[l];
        void *bufs[] = {v->k, v->v, v->in, v->out, v->idx, v->mask, v->kout, v->vout};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            if (bufs[i])
                rt->Free(bufs[i]);
        for (int g = 0; g < 16; g++)
            if (v->io[g])
                rt->EngineDestroyIO(v->io[g]);
        if (v->info)
            rt->EngineDestroyIOInfo(v->info);
        if (v->model)
            rt->EngineUnload(v->model);
    }
    if (r->post_io)
        rt->EngineDestroyIO(r->post_io);
    if (r->post_info)
        rt->EngineDestroyIOInfo(r->post_info);
    if (r->post)
        rt->EngineUnload(r->post);
    if (r->logits_d)
        rt->Free(r->logits_d);
    if (r->host)
        rt->FreeHost(r->host);
}

int vendor_replay(const struct axmodel_layout *lay, int n_prompt, int n_decode,
                  struct bench_phase *prefill, struct bench_phase *decode, char *err)
{
    const struct axcl_rt *rt;
    if (axcl_rt_acquire(&rt, err) != AX_OK)
        return -1;
    struct axcl_devlist list;
    memset(&list, 0, sizeof list);
    struct replay r = {.rt = rt, .n = lay->n_layers};
    r.L = ax_calloc((size_t)r.n, sizeof *r.L);
    int rc = -1;
    void *ctx = NULL;
    if (!r.L || rt->GetDeviceList(&list) != 0 || !list.num || rt->SetDevice(list.devices[0]) != 0 ||
        rt->CreateContext(&ctx, list.devices[0]) != 0 || rt->EngineInit(AXCL_VNPU_DISABLE) != 0) {
        snprintf(err, AX_ERRLEN, "vendor replay: no device");
        goto out;
    }
    if (load(&r, lay, err) != 0)
        goto out;
    bench_mark(prefill);
    /* The vendor picks the first group with start + n <= H_g. */
    for (int pos = 0; pos < n_prompt;) {
        int n = n_prompt - pos < r.P ? n_prompt - pos : r.P, g = 0;
        for (int k = 1; k < r.G && !g; k++)
            if (pos + n <= r.hist[k])
                g = k;
        if (!g)
            n = 1;
        if (step(&r, pos, n, g, pos + n == n_prompt, err) != 0)
            goto out;
        pos += n;
    }
    bench_done(prefill, n_prompt);
    bench_mark(decode);
    for (int i = 0; i < n_decode; i++)
        if (step(&r, n_prompt + i, 1, 0, 1, err) != 0)
            goto out;
    bench_done(decode, n_decode);
    rc = 0;
out:
    teardown(&r);
    ax_free(r.L);
    rt->EngineFinalize();
    if (ctx)
        rt->DestroyContext(ctx);
    if (list.num)
        rt->ResetDevice(list.devices[0]);
    axcl_rt_release();
    return rc;
}
