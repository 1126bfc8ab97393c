/* axcl_backend.c - runs an AXERA axmodel directory on AX650N cards through
 * the AXCL runtime (resolved at run time by axcl_rt.c).
 *
 * Per card: one worker thread owning the card's runtime context (every
 * AXCL call for a card runs on it), the card's contiguous block of decoder
 * layers (ceil(L/cards) on the first), and on the last card the post model.
 * The hidden state crosses cards through the host.
 *
 * Fewer bus round trips than the vendor runtime, which per layer per token
 * uploads the position, uploads the mask, executes, copies K out, copies V
 * out and passes the hidden state (5-6 synchronous calls):
 *   - the position, mask and (first card) embedding row go up in ONE
 *     host-to-device copy per step per card, into one device buffer whose
 *     interior pointers are bound as every layer's `indices`, `mask` and
 *     first `input` (bindings are set once at load);
 *   - layer outputs ping-pong between two device buffers bound as the next
 *     layer's input (no copies);
 *   - `K_cache_out`/`V_cache_out` are bound at the cache row's device
 *     address, so the layer writes its K/V straight into the cache (probed
 *     at start-up; falls back to device-to-device copies);
 *   - executes are queued on a stream with one synchronisation per step
 *     (probed; falls back to synchronous executes);
 *   - KV slots are switched by rebinding `K_cache`/`V_cache`, never copied.
 * Switches: AXSERVE_AXCL_KV_DIRECT, AXSERVE_AXCL_ASYNC (0 = off, 1 = on
 * without probing, unset = probe), AXSERVE_AXCL_PACKED (0 = separate input
 * buffers, 3 uploads per step; unset = packed, falling back by itself when
 * the runtime refuses interior pointers), AXSERVE_AXCL_PINNED (0 = pageable
 * host buffers).
 *
 * Assumptions where the facts are silent (each visible in `axserve doctor`):
 *   - buffer binding (SetInput/OutputBufferByIndex) is host-side
 *     bookkeeping of the runtime, not a bus round trip;
 *   - a layer may write K_cache_out into the rows of the K_cache it reads:
 *     those rows are masked for the step, so only their finiteness matters
 *     (caches are cleared at load), and a prefill chunk's padding rows land
 *     in future rows, rewritten before they are ever attended (the caches
 *     have N + P rows so a chunk never runs off the end);
 *   - Execute is not assumed safe concurrently: one thread per card;
 *   - CMM kept free for the runtime: 1/64 of the pool, at most 32 MiB.
 *
 * Not here: sampling (engine), tokenizer, model-file parsing (model/). */
#include "backend/axcl/axcl.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend/axcl/axcl_rt.h"
#include "model/model.h"
#include "util/file.h"
#include "util/log.h"
#include "util/mem.h"

#define AXB_MAGIC 0xA8C1BAC0u
#define MAX_CARDS 16
#define MAX_GROUPS 16
#define MAX_SLOTS 8
#define MAX_IO 16
#define ALIGN 64
#define MASK_BLOCKED 0xC780u /* bf16 -65536 */
#define MIB (1024.0 * 1024.0)
/* CMM kept free for the runtime's own allocations: 1/64 of the pool, at
 * most 32 MiB (an assumption; the facts give no figure). */
static uint64_t cmm_reserve(uint64_t total)
{
    uint64_t r = total / 64;
    return r < ((uint64_t)32 << 20) ? r : ((uint64_t)32 << 20);
}

enum { R_INPUT, R_INDICES, R_MASK, R_KC, R_VC, N_IN_ROLES };
enum { R_OUTPUT, R_KOUT, R_VOUT, N_OUT_ROLES };
static const char *const in_names[] = {"input", "indices", "mask", "K_cache", "V_cache"};
static const char *const out_names[] = {"output", "K_cache_out", "V_cache_out"};

/* ---- state ------------------------------------------------------------ */

struct layer {
    uint64_t model, ectx;
    void *info;
    void *io[MAX_GROUPS];       /* one IO set per shape group */
    uint32_t in_ix[N_IN_ROLES]; /* runtime index of each role */
    uint32_t out_ix[N_OUT_ROLES];
    uint8_t *k[MAX_SLOTS], *v[MAX_SLOTS]; /* device caches, (N + P) x kv bf16 */
    uint64_t file_bytes;
};

struct axb;

struct card {
    struct axb *b;
    int id, idx; /* bus id, position in layer order */
    int l0, l1;  /* layers [l0, l1) */
    int has_post;
    /* worker thread */
    pthread_t th;
    int th_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum ax_err (*job)(struct card *c, void *arg);
    void *arg;
    int busy, quit;
    enum ax_err res;
    char err[AX_ERRLEN];
    /* runtime objects */
    void *ctx, *stream;
    int dev_set, engine;
    struct layer *lay; /* l1 - l0 entries */
    uint64_t post_model, post_ectx;
    void *post_info, *post_io;
    uint32_t post_in, post_out;
    /* buffers: pack = [decode region | prefill region], mirrored on host */
    uint8_t *dpack, *hpack;
    size_t pack_len;
    /* Unpacked mode (AXSERVE_AXCL_PACKED=0, or a runtime that refuses
     * interior pointers): each region piece is its own allocation. */
    uint8_t *seg_dev[6];
    size_t seg_off[6], seg_len[6];
    uint8_t *dpost; /* last hidden row for the post model */
    size_t dec_x, dec_idx, dec_mask, dec_len;
    size_t pf_x, pf_idx, pf_mask; /* offsets inside the pack */
    uint8_t *ping[2];             /* P x hidden each */
    uint8_t *kstage, *vstage;     /* P x kv (copy mode and probes) */
    uint8_t *dlogits, *hlogits;   /* vocab bf16 */
    uint8_t *hhidden;             /* P x hidden, for the next card */
    int bound_slot;
    int mask_open;                /* decode mask: columns [0, mask_open) attend */
    uint64_t cmm_free, cmm_total; /* bytes, 0 = unknown */
    int lost;
};

struct axb {
    uint32_t magic;
    const struct axcl_rt *rt;
    struct axmodel_layout lay;
    struct ax_map embed;
    int n_layers, hidden, vocab;
    /* IO contract (from the first layer; all layers must agree) */
    int n_groups, P, N, kv;
    int hist[MAX_GROUPS];
    int n_slots, n_ctx;
    int kv_direct, async, pinned, packed;
    const char *kv_why, *async_why, *packed_why;
    struct card cards[MAX_CARDS];
    int n_cards;
    int lost;
    uint64_t slot_bytes; /* per card, largest */
};

/* Arguments of one step (a prefill chunk or a decode token) on a card. */
struct step {
    int pos, rows, group, slot;
    int want_logits; /* last card only: run the post model */
};

/* ---- error helpers ---------------------------------------------------- */

/* Records a failed runtime call; a lost card turns into AX_EDEVICE. */
static enum ax_err rt_fail(struct card *c, axcl_error r, const char *call, char *err)
{
    if ((uint32_t)r == (uint32_t)AXCL_ERR_DEVICE_NOT_CONNECTED) {
        c->lost = 1;
        c->b->lost = 1;
        return ax_fail(err, AX_EDEVICE,
                       "AX650N card %d is no longer connected (%s returned 0x%08x); check the "
                       "card and `axcl-smi`, then restart axserve",
                       c->id, call, (unsigned)r);
    }
    return ax_fail(err, AX_EBACKEND, "%s failed on card %d: 0x%08x (%s)", call, c->id, (unsigned)r,
                   axcl_rt_strerror(r));
}

#define CALL(c, expr, name, err)                                                                   \
    do {                                                                                           \
        axcl_error r_ = (expr);                                                                    \
        if (r_ != 0)                                                                               \
            return rt_fail((c), r_, (name), (err));                                                \
    } while (0)

static int env_switch(const char *name) /* -1 unset, 0 off, 1 on */
{
    const char *v = getenv(name);
    if (!v || !*v)
        return -1;
    return strcmp(v, "0") != 0;
}

static size_t align_up(size_t n)
{
    return (n + ALIGN - 1) / ALIGN * ALIGN;
}

/* Device address of host-pack offset off: an interior pointer of the one
 * pack buffer, or (unpacked) the same place in the piece's own buffer. */
static uint8_t *dptr(const struct card *c, size_t off)
{
    if (c->b->packed)
        return c->dpack + off;
    for (int i = 0; i < 6; i++)
        if (off >= c->seg_off[i] && off < c->seg_off[i] + c->seg_len[i])
            return c->seg_dev[i] + (off - c->seg_off[i]);
    return NULL; /* NEVER: offsets come from alloc_buffers */
}

/* ---- worker threads ---------------------------------------------------- */

static void *worker(void *p)
{
    struct card *c = p;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->busy && !c->quit)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->quit && !c->busy)
            break;
        pthread_mutex_unlock(&c->mu);
        c->err[0] = '\0';
        enum ax_err e = c->job(c, c->arg);
        pthread_mutex_lock(&c->mu);
        c->res = e;
        c->busy = 0;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static void post_job(struct card *c, enum ax_err (*fn)(struct card *, void *), void *arg)
{
    pthread_mutex_lock(&c->mu);
    c->job = fn;
    c->arg = arg;
    c->busy = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static enum ax_err wait_job(struct card *c)
{
    pthread_mutex_lock(&c->mu);
    while (c->busy)
        pthread_cond_wait(&c->cv, &c->mu);
    enum ax_err e = c->res;
    pthread_mutex_unlock(&c->mu);
    return e;
}

static enum ax_err run_on(struct card *c, enum ax_err (*fn)(struct card *, void *), void *arg)
{
    post_job(c, fn, arg);
    return wait_job(c);
}

/* Runs fn on every card in parallel; the first failure is copied to err. */
static enum ax_err run_all(struct axb *b, enum ax_err (*fn)(struct card *, void *), void *arg,
                           char *err)
{
    for (int i = 0; i < b->n_cards; i++)
        post_job(&b->cards[i], fn, arg);
    enum ax_err first = AX_OK;
    for (int i = 0; i < b->n_cards; i++) {
        enum ax_err e = wait_job(&b->cards[i]);
        if (e != AX_OK && first == AX_OK) {
            first = e;
            snprintf(err, AX_ERRLEN, "%s", b->cards[i].err);
        }
    }
    return first;
}

/* ---- memory ------------------------------------------------------------ */

static enum ax_err dmalloc(struct card *c, uint8_t **p, size_t n, const char *what, char *err)
{
    void *q = NULL;
    axcl_error r = c->b->rt->Malloc(&q, n, AXCL_MALLOC_HUGE_FIRST);
    if (r != 0) {
        if ((uint32_t)r == (uint32_t)AXCL_ERR_DEVICE_NOT_CONNECTED)
            return rt_fail(c, r, "axclrtMalloc", err);
        return ax_fail(err, AX_EDEVICE,
                       "card %d: cannot allocate %.1f MiB of CMM for %s (0x%08x); the model "
                       "and its KV cache do not fit: use fewer slots (--slots) or more cards",
                       c->id, (double)n / MIB, what, (unsigned)r);
    }
    *p = q;
    return AX_OK;
}

static enum ax_err hmalloc(struct card *c, uint8_t **p, size_t n, char *err)
{
    if (c->b->pinned) {
        void *q = NULL;
        CALL(c, c->b->rt->MallocHost(&q, n), "axclrtMallocHost", err);
        memset(q, 0, n);
        *p = q;
        return AX_OK;
    }
    *p = ax_calloc(1, n);
    return *p ? AX_OK : ax_fail(err, AX_ENOMEM, "out of host memory (%zu bytes)", n);
}

static void hfree(struct card *c, uint8_t **p)
{
    if (!*p)
        return;
    if (c->b->pinned)
        c->b->rt->FreeHost(*p);
    else
        ax_free(*p);
    *p = NULL;
}

static void dfree(struct card *c, uint8_t **p)
{
    if (*p && !c->lost)
        c->b->rt->Free(*p);
    *p = NULL;
}

/* Free CMM on the current card, bytes (0 = cannot tell). */
static void query_cmm(struct card *c)
{
    const struct axcl_rt *rt = c->b->rt;
    struct axcl_devprops p;
    if (rt->GetDeviceProperties && rt->GetDeviceProperties(c->id, &p) == 0 && p.total_cmm_kb) {
        c->cmm_free = (uint64_t)p.free_cmm_kb << 10;
        c->cmm_total = (uint64_t)p.total_cmm_kb << 10;
        return;
    }
    struct axcl_sys_memstatus s;
    if (rt->SysMemQueryStatus && rt->SysMemQueryStatus(&s) == 0 && s.total_size) {
        c->cmm_free = (uint64_t)s.remain_size << 10;
        c->cmm_total = (uint64_t)s.total_size << 10;
        return;
    }
    c->cmm_free = c->cmm_total = 0;
}

/* ---- IO contract -------------------------------------------------------- */

static int find_name(const struct axcl_rt *rt, void *info, int out, const char *name, uint32_t *ix)
{
    uint32_t n = out ? rt->EngineGetNumOutputs(info) : rt->EngineGetNumInputs(info);
    for (uint32_t i = 0; i < n && i < MAX_IO; i++) {
        const char *s =
            out ? rt->EngineGetOutputNameByIndex(info, i) : rt->EngineGetInputNameByIndex(info, i);
        if (s && !strcmp(s, name)) {
            *ix = i;
            return 1;
        }
    }
    return 0;
}

static uint64_t in_size(const struct axb *b, const struct layer *L, int g, int role)
{
    return b->rt->EngineGetInputSizeByIndex(L->info, (uint32_t)g, L->in_ix[role]);
}

static uint64_t out_size(const struct axb *b, const struct layer *L, int g, int role)
{
    return b->rt->EngineGetOutputSizeByIndex(L->info, (uint32_t)g, L->out_ix[role]);
}

/* Derives kv, N, P and H_g from the first layer, as the facts say:
 * kv = size(K_cache_out)/2, N = size(K_cache)/kv/2, max tokens =
 * size(mask)/2 - 1, P = size(indices of a prefill group)/4. */
static enum ax_err derive_contract(struct axb *b, const struct layer *L, const char *file,
                                   char *err)
{
    int32_t G = 0;
    if (b->rt->EngineGetShapeGroupsCount(L->info, &G) != 0 || G < 1 || G > MAX_GROUPS)
        return ax_fail(err, AX_EFORMAT, "%s: %d shape groups (expected 1..%d)", file, G,
                       MAX_GROUPS);
    b->n_groups = G;
    uint64_t kout = out_size(b, L, 0, R_KOUT), kc = in_size(b, L, 0, R_KC);
    uint64_t mask = in_size(b, L, 0, R_MASK), x = in_size(b, L, 0, R_INPUT);
    if (kout < 2 || kout % 2 || kc % kout || kc / kout < 1 || kc / kout > (1 << 20))
        return ax_fail(err, AX_EFORMAT,
                       "%s: decode group sizes K_cache_out=%llu K_cache=%llu do not describe a "
                       "KV cache",
                       file, (unsigned long long)kout, (unsigned long long)kc);
    b->kv = (int)(kout / 2);
    b->N = (int)(kc / kout);
    if (mask / 2 < 2 || (int64_t)(mask / 2 - 1) != b->N)
        return ax_fail(err, AX_EFORMAT, "%s: decode mask is %llu bytes, expected (%d+1)*2", file,
                       (unsigned long long)mask, b->N);
    if (x != (uint64_t)b->hidden * 2)
        return ax_fail(err, AX_EFORMAT,
                       "%s: decode input is %llu bytes but the embedding table has %d columns "
                       "(expected %d bytes): layer files and embedding do not match",
                       file, (unsigned long long)x, b->hidden, b->hidden * 2);
    b->P = 1;
    b->hist[0] = b->N;
    for (int g = 1; g < G; g++) {
        uint64_t idx = in_size(b, L, g, R_INDICES), k = in_size(b, L, g, R_KC);
        if (idx < 4 || idx % 4 || idx / 4 > 4096 || k % ((uint64_t)b->kv * 2))
            return ax_fail(err, AX_EFORMAT, "%s: prefill group %d has indices=%llu K_cache=%llu",
                           file, g, (unsigned long long)idx, (unsigned long long)k);
        int P = (int)(idx / 4), H = (int)(k / ((uint64_t)b->kv * 2));
        if (g > 1 && P != b->P)
            return ax_fail(err, AX_EFORMAT, "%s: prefill groups disagree on the chunk (%d vs %d)",
                           file, P, b->P);
        if (H < 1 || H > b->N)
            return ax_fail(err, AX_EFORMAT, "%s: prefill group %d history %d outside 1..%d", file,
                           g, H, b->N);
        b->P = P;
        b->hist[g] = H;
    }
    return AX_OK;
}

/* Checks one layer's sizes against the contract (every layer must agree). */
static enum ax_err check_layer(const struct axb *b, const struct layer *L, const char *file,
                               char *err)
{
    int32_t G = 0;
    b->rt->EngineGetShapeGroupsCount(L->info, &G);
    if (G != b->n_groups)
        return ax_fail(err, AX_EFORMAT, "%s: %d shape groups, the first layer has %d", file, G,
                       b->n_groups);
    for (int g = 0; g < G; g++) {
        uint64_t R = g ? (uint64_t)b->P : 1, H = (uint64_t)b->hist[g], kv = (uint64_t)b->kv;
        uint64_t want_in[N_IN_ROLES] = {R * b->hidden * 2, R * 4, R * (H + R) * 2, H * kv * 2,
                                        H * kv * 2};
        uint64_t want_out[N_OUT_ROLES] = {R * b->hidden * 2, R * kv * 2, R * kv * 2};
        for (int r = 0; r < N_IN_ROLES; r++)
            if (in_size(b, L, g, r) != want_in[r])
                return ax_fail(err, AX_EFORMAT,
                               "%s: group %d input %s is %llu bytes, expected %llu", file, g,
                               in_names[r], (unsigned long long)in_size(b, L, g, r),
                               (unsigned long long)want_in[r]);
        for (int r = 0; r < N_OUT_ROLES; r++)
            if (out_size(b, L, g, r) != want_out[r])
                return ax_fail(err, AX_EFORMAT,
                               "%s: group %d output %s is %llu bytes, expected %llu", file, g,
                               out_names[r], (unsigned long long)out_size(b, L, g, r),
                               (unsigned long long)want_out[r]);
    }
    if (b->rt->EngineGetInputDataType) {
        for (int r = 0; r < N_IN_ROLES; r++) {
            int32_t t = -1;
            int want = r == R_INDICES ? AXCL_DT_UINT32 : AXCL_DT_BF16;
            if (b->rt->EngineGetInputDataType(L->info, L->in_ix[r], &t) == 0 && t != want)
                return ax_fail(err, AX_EFORMAT, "%s: input %s has data type %d, expected %d", file,
                               in_names[r], t, want);
        }
    }
    return AX_OK;
}

/* ---- loading (card thread) --------------------------------------------- */

static enum ax_err load_layer(struct card *c, int l, char *err)
{
    struct axb *b = c->b;
    const struct axcl_rt *rt = b->rt;
    struct layer *L = &c->lay[l - c->l0];
    char path[MODEL_PATH_MAX + 32];
    snprintf(path, sizeof path, b->lay.layer_template, l);
    axcl_error r = rt->EngineLoadFromFile(path, &L->model);
    if (r != 0) {
        if ((uint32_t)r == (uint32_t)AXCL_ERR_DEVICE_NOT_CONNECTED)
            return rt_fail(c, r, "axclrtEngineLoadFromFile", err);
        return ax_fail(err, AX_EFORMAT,
                       "card %d: the runtime rejected %s (0x%08x %s): not a model for this "
                       "runtime/card, or out of CMM",
                       c->id, path, (unsigned)r, axcl_rt_strerror(r));
    }
    CALL(c, rt->EngineCreateContext(L->model, &L->ectx), "axclrtEngineCreateContext", err);
    CALL(c, rt->EngineGetIOInfo(L->model, &L->info), "axclrtEngineGetIOInfo", err);
    for (int i = 0; i < N_IN_ROLES; i++)
        if (!find_name(rt, L->info, 0, in_names[i], &L->in_ix[i]))
            return ax_fail(err, AX_EFORMAT, "%s: no input named '%s' (not a Qwen3 layer model)",
                           path, in_names[i]);
    for (int i = 0; i < N_OUT_ROLES; i++)
        if (!find_name(rt, L->info, 1, out_names[i], &L->out_ix[i]))
            return ax_fail(err, AX_EFORMAT, "%s: no output named '%s' (not a Qwen3 layer model)",
                           path, out_names[i]);
    if (l == 0) {
        enum ax_err e = derive_contract(b, L, path, err);
        if (e != AX_OK)
            return e;
    }
    return AX_OK;
}

static enum ax_err load_post(struct card *c, char *err)
{
    struct axb *b = c->b;
    const struct axcl_rt *rt = b->rt;
    const char *path = b->lay.post_path;
    axcl_error r = rt->EngineLoadFromFile(path, &c->post_model);
    if (r != 0)
        return r == AXCL_ERR_DEVICE_NOT_CONNECTED
                   ? rt_fail(c, r, "axclrtEngineLoadFromFile", err)
                   : ax_fail(err, AX_EFORMAT, "card %d: the runtime rejected %s (0x%08x %s)", c->id,
                             path, (unsigned)r, axcl_rt_strerror(r));
    CALL(c, rt->EngineCreateContext(c->post_model, &c->post_ectx), "axclrtEngineCreateContext",
         err);
    CALL(c, rt->EngineGetIOInfo(c->post_model, &c->post_info), "axclrtEngineGetIOInfo", err);
    if (rt->EngineGetNumInputs(c->post_info) != 1 || rt->EngineGetNumOutputs(c->post_info) != 1)
        return ax_fail(err, AX_EFORMAT, "%s: expected one input and one output", path);
    c->post_in = c->post_out = 0;
    uint64_t in = rt->EngineGetInputSizeByIndex(c->post_info, 0, 0);
    uint64_t out = rt->EngineGetOutputSizeByIndex(c->post_info, 0, 0);
    if (in != (uint64_t)b->hidden * 2 || out < 2 || out % 2 || out / 2 > (1u << 22))
        return ax_fail(err, AX_EFORMAT, "%s: input %llu bytes (expected %d), output %llu bytes",
                       path, (unsigned long long)in, b->hidden * 2, (unsigned long long)out);
    b->vocab = (int)(out / 2);
    CALL(c, rt->EngineCreateIO(c->post_info, &c->post_io), "axclrtEngineCreateIO", err);
    return AX_OK;
}

/* CMM a model will take: the runtime's own figure when it has
 * axclrtEngineGetUsage, else the file size (weights dominate it). */
static uint64_t model_cmm(const struct axcl_rt *rt, const char *path)
{
    int64_t sys = 0, cmm = 0;
    if (rt->EngineGetUsage && rt->EngineGetUsage(path, &sys, &cmm) == 0 && cmm > 0)
        return (uint64_t)cmm;
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Phase 1 on each card: context, engine, free-CMM check, models. */
static enum ax_err card_load(struct card *c, void *arg)
{
    (void)arg;
    struct axb *b = c->b;
    const struct axcl_rt *rt = b->rt;
    char *err = c->err;
    CALL(c, rt->SetDevice(c->id), "axclrtSetDevice", err);
    c->dev_set = 1;
    CALL(c, rt->CreateContext(&c->ctx, c->id), "axclrtCreateContext", err);
    CALL(c, rt->EngineInit(AXCL_VNPU_DISABLE), "axclrtEngineInit", err);
    c->engine = 1;

    /* Check before loading, so a model that cannot fit fails with numbers
     * instead of a runtime error halfway through. */
    uint64_t need = 0;
    char path[MODEL_PATH_MAX + 32];
    for (int l = c->l0; l < c->l1; l++) {
        snprintf(path, sizeof path, b->lay.layer_template, l);
        need += model_cmm(rt, path);
    }
    if (c->has_post)
        need += model_cmm(rt, b->lay.post_path);
    query_cmm(c);
    if (c->cmm_total && need + cmm_reserve(c->cmm_total) > c->cmm_free)
        return ax_fail(err, AX_EDEVICE,
                       "the model's %d layers%s need %.2f MiB of CMM on card %d (+%.2f MiB "
                       "kept for the runtime), but only %.2f MiB of %.2f MiB are free: use more "
                       "cards (--devices), a smaller model, or free the card (another process "
                       "may hold it: `axcl-smi`)",
                       c->l1 - c->l0, c->has_post ? " + post model" : "", (double)need / MIB, c->id,
                       (double)cmm_reserve(c->cmm_total) / MIB, (double)c->cmm_free / MIB,
                       (double)c->cmm_total / MIB);
    for (int l = c->l0; l < c->l1; l++) {
        enum ax_err e = load_layer(c, l, err);
        if (e != AX_OK)
            return e;
    }
    if (c->has_post)
        return load_post(c, err);
    return AX_OK;
}

/* Phase 2 on each card (contract known): per-layer checks, IO sets. */
static enum ax_err card_check(struct card *c, void *arg)
{
    (void)arg;
    struct axb *b = c->b;
    char path[MODEL_PATH_MAX + 32];
    for (int l = c->l0; l < c->l1; l++) {
        struct layer *L = &c->lay[l - c->l0];
        snprintf(path, sizeof path, b->lay.layer_template, l);
        enum ax_err e = check_layer(b, L, path, c->err);
        if (e != AX_OK)
            return e;
        for (int g = 0; g < b->n_groups; g++)
            CALL(c, b->rt->EngineCreateIO(L->info, &L->io[g]), "axclrtEngineCreateIO", c->err);
    }
    query_cmm(c);
    return AX_OK;
}

/* ---- buffers and bindings (card thread) ------------------------------- */

static size_t kv_rows(const struct axb *b)
{
    return (size_t)b->N + (size_t)b->P;
}

static enum ax_err bind_in(struct card *c, void *io, uint32_t ix, const void *p, uint64_t n)
{
    CALL(c, c->b->rt->EngineSetInputBufferByIndex(io, ix, p, n),
         "axclrtEngineSetInputBufferByIndex", c->err);
    return AX_OK;
}

static enum ax_err bind_out(struct card *c, void *io, uint32_t ix, const void *p, uint64_t n)
{
    CALL(c, c->b->rt->EngineSetOutputBufferByIndex(io, ix, p, n),
         "axclrtEngineSetOutputBufferByIndex", c->err);
    return AX_OK;
}

/* Binds slot s's caches as K_cache/V_cache of every layer and group. */
static enum ax_err bind_slot(struct card *c, int s)
{
    struct axb *b = c->b;
    for (int l = 0; l < c->l1 - c->l0; l++) {
        struct layer *L = &c->lay[l];
        for (int g = 0; g < b->n_groups; g++) {
            uint64_t n = (uint64_t)b->hist[g] * b->kv * 2;
            enum ax_err e = bind_in(c, L->io[g], L->in_ix[R_KC], L->k[s], n);
            if (e == AX_OK)
                e = bind_in(c, L->io[g], L->in_ix[R_VC], L->v[s], n);
            if (e != AX_OK)
                return e;
        }
    }
    c->bound_slot = s;
    return AX_OK;
}

/* Binds K_cache_out/V_cache_out of layer l, group g, for rows starting at
 * pos: into the cache (direct) or the staging buffers (copy mode). */
static enum ax_err bind_kv_out(struct card *c, struct layer *L, int g, int slot, int pos,
                               int direct)
{
    struct axb *b = c->b;
    uint64_t rows = g ? (uint64_t)b->P : 1, row = (uint64_t)b->kv * 2;
    const uint8_t *k = direct ? L->k[slot] + (uint64_t)pos * row : c->kstage;
    const uint8_t *v = direct ? L->v[slot] + (uint64_t)pos * row : c->vstage;
    enum ax_err e = bind_out(c, L->io[g], L->out_ix[R_KOUT], k, rows * row);
    return e == AX_OK ? bind_out(c, L->io[g], L->out_ix[R_VOUT], v, rows * row) : e;
}

static enum ax_err alloc_buffers(struct card *c)
{
    struct axb *b = c->b;
    char *err = c->err;
    size_t hid = (size_t)b->hidden * 2, P = (size_t)b->P;
    /* decode region: input row | position | mask (N+1) */
    c->dec_x = 0;
    c->dec_idx = align_up(hid);
    c->dec_mask = c->dec_idx + ALIGN;
    c->dec_len = c->dec_mask + ((size_t)b->N + 1) * 2;
    /* prefill region: P input rows | P positions | mask P x (Hmax+P) */
    size_t hmax = 0;
    for (int g = 1; g < b->n_groups; g++)
        if ((size_t)b->hist[g] > hmax)
            hmax = (size_t)b->hist[g];
    c->pf_x = align_up(c->dec_len);
    c->pf_idx = c->pf_x + align_up(P * hid);
    c->pf_mask = c->pf_idx + align_up(P * 4);
    c->pack_len = c->pf_mask + (b->n_groups > 1 ? P * (hmax + P) * 2 : 0);
    size_t offs[6] = {c->dec_x, c->dec_idx, c->dec_mask, c->pf_x, c->pf_idx, c->pf_mask};
    size_t lens[6] = {hid, 4, ((size_t)b->N + 1) * 2, P * hid, P * 4, c->pack_len - c->pf_mask};
    memcpy(c->seg_off, offs, sizeof offs);
    memcpy(c->seg_len, lens, sizeof lens);
    enum ax_err e = dmalloc(c, &c->dpack, c->pack_len, "inputs", err);
    if (e == AX_OK)
        e = hmalloc(c, &c->hpack, c->pack_len, err);
    for (int i = 0; i < 2 && e == AX_OK; i++)
        e = dmalloc(c, &c->ping[i], P * hid, "hidden states", err);
    if (e == AX_OK)
        e = dmalloc(c, &c->kstage, P * (size_t)b->kv * 2, "K staging", err);
    if (e == AX_OK)
        e = dmalloc(c, &c->vstage, P * (size_t)b->kv * 2, "V staging", err);
    if (e == AX_OK)
        e = hmalloc(c, &c->hhidden, P * hid, err);
    if (e == AX_OK && c->has_post) {
        e = dmalloc(c, &c->dlogits, (size_t)b->vocab * 2, "logits", err);
        if (e == AX_OK)
            e = hmalloc(c, &c->hlogits, (size_t)b->vocab * 2, err);
    }
    return e;
}

/* Unpacked mode: every piece of the pack, and the post model's input row,
 * in buffers of their own (no interior pointers bound anywhere). */
static enum ax_err alloc_unpacked(struct card *c, void *arg)
{
    (void)arg;
    for (int i = 0; i < 6; i++)
        if (c->seg_len[i] && !c->seg_dev[i]) {
            enum ax_err e = dmalloc(c, &c->seg_dev[i], c->seg_len[i], "inputs", c->err);
            if (e != AX_OK)
                return e;
        }
    if (!c->dpost)
        return dmalloc(c, &c->dpost, (size_t)c->b->hidden * 2, "hidden row", c->err);
    return AX_OK;
}

static enum ax_err alloc_slots(struct card *c)
{
    struct axb *b = c->b;
    size_t n = kv_rows(b) * (size_t)b->kv * 2;
    for (int s = 0; s < b->n_slots; s++)
        for (int l = 0; l < c->l1 - c->l0; l++) {
            struct layer *L = &c->lay[l];
            enum ax_err e = dmalloc(c, &L->k[s], n, "the KV cache", c->err);
            if (e == AX_OK)
                e = dmalloc(c, &L->v[s], n, "the KV cache", c->err);
            if (e != AX_OK)
                return e;
        }
    return AX_OK;
}

static enum ax_err clear_slots(struct card *c)
{
    struct axb *b = c->b;
    size_t n = kv_rows(b) * (size_t)b->kv * 2;
    for (int s = 0; s < b->n_slots; s++)
        for (int l = 0; l < c->l1 - c->l0; l++) {
            /* Cards hand out memory with old contents; masked columns must
             * still be finite numbers (NaN * 0 poisons softmax). */
            CALL(c, b->rt->Memset(c->lay[l].k[s], 0, n), "axclrtMemset", c->err);
            CALL(c, b->rt->Memset(c->lay[l].v[s], 0, n), "axclrtMemset", c->err);
        }
    return AX_OK;
}

/* Static bindings: inputs from the pack or the previous layer's output,
 * outputs to the ping-pong buffers, K/V out for the current mode. */
static enum ax_err bind_static(struct card *c)
{
    struct axb *b = c->b;
    size_t hid = (size_t)b->hidden * 2;
    int nl = c->l1 - c->l0;
    for (int l = 0; l < nl; l++) {
        struct layer *L = &c->lay[l];
        for (int g = 0; g < b->n_groups; g++) {
            uint64_t R = g ? (uint64_t)b->P : 1, H = (uint64_t)b->hist[g];
            uint8_t *x = l == 0 ? dptr(c, g ? c->pf_x : c->dec_x) : c->ping[(l - 1) % 2];
            uint8_t *idx = dptr(c, g ? c->pf_idx : c->dec_idx);
            uint8_t *mask = dptr(c, g ? c->pf_mask : c->dec_mask);
            enum ax_err e = bind_in(c, L->io[g], L->in_ix[R_INPUT], x, R * hid);
            if (e == AX_OK)
                e = bind_in(c, L->io[g], L->in_ix[R_INDICES], idx, R * 4);
            if (e == AX_OK)
                e = bind_in(c, L->io[g], L->in_ix[R_MASK], mask, R * (H + R) * 2);
            if (e == AX_OK)
                e = bind_out(c, L->io[g], L->out_ix[R_OUTPUT], c->ping[l % 2], R * hid);
            if (e == AX_OK)
                e = bind_kv_out(c, L, g, 0, 0, b->kv_direct);
            if (e != AX_OK)
                return e;
        }
    }
    if (c->has_post) {
        enum ax_err e = bind_out(c, c->post_io, c->post_out, c->dlogits, (uint64_t)b->vocab * 2);
        if (e != AX_OK)
            return e;
    }
    return bind_slot(c, 0);
}

/* ---- host-side inputs ------------------------------------------------- */

static void put16(uint8_t *p, size_t i, uint16_t v)
{
    memcpy(p + 2 * i, &v, 2);
}

/* Decode mask: columns [0, pos) and column N attend. Updated in place:
 * only the columns between the old and new position change. */
static void decode_mask(struct card *c, int pos)
{
    uint8_t *m = c->hpack + c->dec_mask;
    for (int i = c->mask_open; i < pos; i++)
        put16(m, (size_t)i, 0);
    for (int i = pos; i < c->mask_open; i++)
        put16(m, (size_t)i, MASK_BLOCKED);
    c->mask_open = pos;
}

static void decode_mask_init(struct card *c)
{
    uint8_t *m = c->hpack + c->dec_mask;
    for (int i = 0; i < c->b->N; i++)
        put16(m, (size_t)i, MASK_BLOCKED);
    put16(m, (size_t)c->b->N, 0);
    c->mask_open = 0;
}

/* Prefill mask P x (H+P): row i attends history [0, pos) and chunk
 * columns [H, H+i]. Padding rows follow the same rule (finite, unused). */
static void prefill_mask(struct card *c, int pos, int H)
{
    int P = c->b->P, W = H + P;
    uint8_t *m = c->hpack + c->pf_mask;
    for (int i = 0; i < P; i++) {
        uint8_t *row = m + (size_t)i * W * 2;
        for (int j = 0; j < W; j++) {
            int open = j < pos || (j >= H && j <= H + i);
            put16(row, (size_t)j, open ? 0 : MASK_BLOCKED);
        }
    }
}

static void put_indices(struct card *c, size_t off, int pos, int rows)
{
    for (int i = 0; i < rows; i++) {
        uint32_t v = (uint32_t)(pos + i);
        memcpy(c->hpack + off + 4 * (size_t)i, &v, 4);
    }
}

/* ---- one step on one card (card thread) ------------------------------- */

/* Host pack [off, off+len) to the card: one copy when packed, one per
 * piece otherwise. */
static enum ax_err upload(struct card *c, size_t off, size_t len)
{
    const struct axcl_rt *rt = c->b->rt;
    if (c->b->packed) {
        CALL(c, rt->Memcpy(c->dpack + off, c->hpack + off, len, AXCL_H2D), "axclrtMemcpy(H2D)",
             c->err);
        return AX_OK;
    }
    for (int i = 0; i < 6; i++) {
        size_t a = c->seg_off[i], z = a + c->seg_len[i];
        if (a < off)
            a = off;
        if (z > off + len)
            z = off + len;
        if (a < z)
            CALL(c, rt->Memcpy(c->seg_dev[i] + (a - c->seg_off[i]), c->hpack + a, z - a, AXCL_H2D),
                 "axclrtMemcpy(H2D)", c->err);
    }
    return AX_OK;
}

static enum ax_err exec_layer(struct card *c, struct layer *L, int g)
{
    const struct axcl_rt *rt = c->b->rt;
    if (c->b->async)
        CALL(c, rt->EngineExecuteAsync(L->model, L->ectx, (uint32_t)g, L->io[g], c->stream),
             "axclrtEngineExecuteAsync", c->err);
    else
        CALL(c, rt->EngineExecute(L->model, L->ectx, (uint32_t)g, L->io[g]), "axclrtEngineExecute",
             c->err);
    return AX_OK;
}

/* Copy mode: the staged K/V rows go into the cache at row pos. */
static enum ax_err copy_kv(struct card *c, struct layer *L, int slot, int pos, int rows)
{
    const struct axcl_rt *rt = c->b->rt;
    size_t row = (size_t)c->b->kv * 2, off = (size_t)pos * row, n = (size_t)rows * row;
    CALL(c, rt->Memcpy(L->k[slot] + off, c->kstage, n, AXCL_D2D), "axclrtMemcpy(D2D)", c->err);
    CALL(c, rt->Memcpy(L->v[slot] + off, c->vstage, n, AXCL_D2D), "axclrtMemcpy(D2D)", c->err);
    return AX_OK;
}

/* The hot path: one H2D, the card's layers, and (last card) the post
 * model and one D2H of logits, or (other cards) one D2H of the hidden rows.
 * Allocates nothing. */
static enum ax_err card_step(struct card *c, void *arg)
{
    const struct step *s = arg;
    struct axb *b = c->b;
    const struct axcl_rt *rt = b->rt;
    if (c->lost)
        return ax_fail(c->err, AX_EDEVICE, "AX650N card %d was lost earlier", c->id);
    if (s->slot != c->bound_slot) {
        enum ax_err e = bind_slot(c, s->slot);
        if (e != AX_OK)
            return e;
    }
    size_t hid = (size_t)b->hidden * 2;
    int g = s->group;
    size_t up_off, up_len;
    if (g == 0) {
        put_indices(c, c->dec_idx, s->pos, 1);
        decode_mask(c, s->pos);
        up_off = 0;
        up_len = c->dec_len;
    } else {
        put_indices(c, c->pf_idx, s->pos, b->P);
        prefill_mask(c, s->pos, b->hist[g]);
        up_off = c->pf_x;
        up_len = c->pf_mask + (size_t)b->P * (size_t)(b->hist[g] + b->P) * 2 - c->pf_x;
    }
    enum ax_err ue = upload(c, up_off, up_len);
    if (ue != AX_OK)
        return ue;
    int nl = c->l1 - c->l0;
    for (int l = 0; l < nl; l++) {
        struct layer *L = &c->lay[l];
        enum ax_err e = AX_OK;
        if (b->kv_direct)
            e = bind_kv_out(c, L, g, s->slot, s->pos, 1);
        if (e == AX_OK)
            e = exec_layer(c, L, g);
        if (e == AX_OK && !b->kv_direct)
            e = copy_kv(c, L, s->slot, s->pos, s->rows);
        if (e != AX_OK)
            return e;
    }
    const uint8_t *last = c->ping[(nl - 1) % 2];
    if (c->has_post && s->want_logits) {
        const uint8_t *row = last + (size_t)(s->rows - 1) * hid;
        if (!b->packed && s->rows > 1) {
            /* No interior pointers: copy the last row to its own buffer. */
            CALL(c, rt->Memcpy(c->dpost, row, hid, AXCL_D2D), "axclrtMemcpy(D2D)", c->err);
            row = c->dpost;
        }
        enum ax_err e = bind_in(c, c->post_io, c->post_in, row, hid);
        if (e != AX_OK)
            return e;
        if (b->async)
            CALL(c, rt->EngineExecuteAsync(c->post_model, c->post_ectx, 0, c->post_io, c->stream),
                 "axclrtEngineExecuteAsync(post)", c->err);
        else
            CALL(c, rt->EngineExecute(c->post_model, c->post_ectx, 0, c->post_io),
                 "axclrtEngineExecute(post)", c->err);
    }
    if (b->async)
        CALL(c, rt->SynchronizeStream(c->stream), "axclrtSynchronizeStream", c->err);
    if (c->has_post && s->want_logits)
        CALL(c, rt->Memcpy(c->hlogits, c->dlogits, (size_t)b->vocab * 2, AXCL_D2H),
             "axclrtMemcpy(D2H logits)", c->err);
    else if (!c->has_post)
        CALL(c, rt->Memcpy(c->hhidden, last, (size_t)s->rows * hid, AXCL_D2H),
             "axclrtMemcpy(D2H hidden)", c->err);
    return AX_OK;
}

/* ---- probes (card thread, at load) ------------------------------------ */

/* Runs layer 0's decode group once on the token-0 embedding at position
 * 1 with K_cache_out bound to `kout`, and reads back `read` (kv bytes). */
static enum ax_err probe_run(struct card *c, const uint8_t *kout, const uint8_t *read,
                             uint8_t *host, int async)
{
    struct axb *b = c->b;
    const struct axcl_rt *rt = b->rt;
    struct layer *L = &c->lay[0];
    size_t row = (size_t)b->kv * 2;
    enum ax_err e = bind_out(c, L->io[0], L->out_ix[R_KOUT], kout, row);
    if (e != AX_OK)
        return e;
    if (async) {
        CALL(c, rt->EngineExecuteAsync(L->model, L->ectx, 0, L->io[0], c->stream),
             "axclrtEngineExecuteAsync", c->err);
        CALL(c, rt->SynchronizeStream(c->stream), "axclrtSynchronizeStream", c->err);
    } else {
        CALL(c, rt->EngineExecute(L->model, L->ectx, 0, L->io[0]), "axclrtEngineExecute", c->err);
    }
    CALL(c, rt->Memcpy(host, read, row, AXCL_D2H), "axclrtMemcpy(D2H)", c->err);
    return AX_OK;
}

struct probe {
    int want_direct, want_async;                /* env switches: -1 probe, 0 off, 1 on */
    int kv_direct[MAX_CARDS], async[MAX_CARDS]; /* per card result */
};

static enum ax_err card_probe(struct card *c, void *arg)
{
    struct axb *b = c->b;
    struct probe *pr = arg;
    const struct axcl_rt *rt = b->rt;
    size_t row = (size_t)b->kv * 2, hid = (size_t)b->hidden * 2;
    pr->kv_direct[c->idx] = pr->want_direct;
    pr->async[c->idx] = pr->want_async;
    if (pr->want_direct != -1 && pr->want_async != -1)
        return AX_OK;
    uint8_t *ref = ax_malloc(2 * row);
    if (!ref)
        return ax_fail(c->err, AX_ENOMEM, "out of memory");
    uint8_t *got = ref + row;
    /* Input: a real hidden state (the first embedding row) at position 1. */
    memcpy(c->hpack + c->dec_x, b->embed.data, hid);
    put_indices(c, c->dec_idx, 1, 1);
    decode_mask_init(c);
    decode_mask(c, 1);
    enum ax_err e = upload(c, 0, c->dec_len);
    if (e == AX_OK)
        e = probe_run(c, c->kstage, c->kstage, ref, 0);
    if (e == AX_OK && pr->want_direct == -1) {
        /* An interior pointer: row 1 of slot 0's K cache. */
        const uint8_t *dst = c->lay[0].k[0] + row;
        pr->kv_direct[c->idx] = 0;
        if (rt->EngineSetOutputBufferByIndex(c->lay[0].io[0], c->lay[0].out_ix[R_KOUT], dst, row) ==
            0) {
            e = probe_run(c, dst, dst, got, 0);
            pr->kv_direct[c->idx] = e == AX_OK && !memcmp(ref, got, row);
        }
    }
    if ((e == AX_OK || !c->lost) && pr->want_async == -1) {
        pr->async[c->idx] = 0;
        if (rt->EngineExecuteAsync && rt->SynchronizeStream && c->stream) {
            e = probe_run(c, c->kstage, c->kstage, got, 1);
            pr->async[c->idx] = e == AX_OK && !memcmp(ref, got, row);
        }
    }
    ax_free(ref);
    /* A refused probe is a decision, a lost card is an error. */
    return c->lost ? e : AX_OK;
}

/* Phase 3 on each card: buffers, slots, stream. */
static enum ax_err card_alloc(struct card *c, void *arg)
{
    const int *want_async = arg;
    struct axb *b = c->b;
    enum ax_err e = alloc_buffers(c);
    if (e == AX_OK)
        e = alloc_slots(c);
    if (e == AX_OK && !b->packed)
        e = alloc_unpacked(c, NULL);
    if (e != AX_OK)
        return e;
    if (*want_async != 0 && b->rt->CreateStream && b->rt->CreateStream(&c->stream) != 0)
        c->stream = NULL;
    return AX_OK;
}

static enum ax_err card_bind(struct card *c, void *arg)
{
    (void)arg;
    enum ax_err e = clear_slots(c);
    if (e == AX_OK)
        e = bind_static(c);
    decode_mask_init(c);
    return e;
}

/* ---- teardown (card thread) ------------------------------------------- */

static enum ax_err card_free(struct card *c, void *arg)
{
    (void)arg;
    struct axb *b = c->b;
    const struct axcl_rt *rt = b->rt;
    if (c->lay) {
        for (int l = 0; l < c->l1 - c->l0; l++) {
            struct layer *L = &c->lay[l];
            for (int s = 0; s < MAX_SLOTS; s++) {
                dfree(c, &L->k[s]);
                dfree(c, &L->v[s]);
            }
            for (int g = 0; g < MAX_GROUPS; g++)
                if (L->io[g])
                    rt->EngineDestroyIO(L->io[g]);
            if (L->info)
                rt->EngineDestroyIOInfo(L->info);
            if (L->model && !c->lost)
                rt->EngineUnload(L->model);
        }
        ax_free(c->lay);
        c->lay = NULL;
    }
    if (c->post_io)
        rt->EngineDestroyIO(c->post_io);
    if (c->post_info)
        rt->EngineDestroyIOInfo(c->post_info);
    if (c->post_model && !c->lost)
        rt->EngineUnload(c->post_model);
    dfree(c, &c->dpack);
    for (int i = 0; i < 6; i++)
        dfree(c, &c->seg_dev[i]);
    dfree(c, &c->dpost);
    dfree(c, &c->ping[0]);
    dfree(c, &c->ping[1]);
    dfree(c, &c->kstage);
    dfree(c, &c->vstage);
    dfree(c, &c->dlogits);
    hfree(c, &c->hpack);
    hfree(c, &c->hhidden);
    hfree(c, &c->hlogits);
    if (c->stream && rt->DestroyStream)
        rt->DestroyStream(c->stream);
    if (c->engine)
        rt->EngineFinalize();
    if (c->ctx)
        rt->DestroyContext(c->ctx);
    /* Must run even after errors: a process that exits without it leaves
     * the card's CMM pool unreleased. */
    if (c->dev_set)
        rt->ResetDevice(c->id);
    return AX_OK;
}

static void axb_free(void *ctx)
{
    struct axb *b = ctx;
    if (!b)
        return;
    for (int i = 0; i < b->n_cards; i++) {
        struct card *c = &b->cards[i];
        if (!c->th_started)
            continue;
        run_on(c, card_free, NULL);
        pthread_mutex_lock(&c->mu);
        c->quit = 1;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->th, NULL);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
    }
    ax_map_close(&b->embed);
    if (b->rt)
        axcl_rt_release();
    b->magic = 0;
    ax_free(b);
}

/* ---- forward (engine thread) ------------------------------------------ */

static void bf16_to_f32(float *dst, const uint8_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        uint32_t u = (uint32_t)h << 16;
        memcpy(&dst[i], &u, 4);
    }
}

/* Embedding rows of toks go to the first card's pack (padding rows zero). */
static void put_embeddings(struct axb *b, int group, const int32_t *toks, int rows)
{
    struct card *c = &b->cards[0];
    size_t hid = (size_t)b->hidden * 2;
    uint8_t *x = c->hpack + (group ? c->pf_x : c->dec_x);
    for (int i = 0; i < rows; i++)
        memcpy(x + (size_t)i * hid, b->embed.data + (size_t)toks[i] * hid, hid);
    if (group)
        memset(x + (size_t)rows * hid, 0, (size_t)(b->P - rows) * hid);
}

static enum ax_err run_step(struct axb *b, struct step *s, const int32_t *toks, float *logits,
                            char *err)
{
    put_embeddings(b, s->group, toks, s->rows);
    size_t hid = (size_t)b->hidden * 2;
    for (int i = 0; i < b->n_cards; i++) {
        struct card *c = &b->cards[i];
        if (i > 0) {
            /* The previous card's hidden rows become this card's input. */
            uint8_t *x = c->hpack + (s->group ? c->pf_x : c->dec_x);
            memcpy(x, b->cards[i - 1].hhidden, (size_t)s->rows * hid);
            if (s->group)
                memset(x + (size_t)s->rows * hid, 0, (size_t)(b->P - s->rows) * hid);
        }
        enum ax_err e = run_on(c, card_step, s);
        if (e != AX_OK) {
            snprintf(err, AX_ERRLEN, "%s", c->err);
            return e;
        }
    }
    if (s->want_logits)
        bf16_to_f32(logits, b->cards[b->n_cards - 1].hlogits, (size_t)b->vocab);
    return AX_OK;
}

/* The first prefill group whose history capacity covers start + n (facts:
 * "pick the first group with start+n <= H_g"); 0 if none does. */
static int pick_group(const struct axb *b, int start, int n)
{
    for (int g = 1; g < b->n_groups; g++)
        if (start + n <= b->hist[g])
            return g;
    return 0;
}

static enum ax_err axb_forward(void *ctx, const struct backend_seq *seqs, int n_seqs, char *err)
{
    struct axb *b = ctx;
    assert(b && b->magic == AXB_MAGIC);
    if (n_seqs != 1)
        return ax_fail(err, AX_EINVAL, "the axcl backend runs one sequence per call, got %d",
                       n_seqs);
    const struct backend_seq *q = &seqs[0];
    if (b->lost)
        return ax_fail(err, AX_EDEVICE, "an AX650N card was lost; restart axserve");
    if (q->slot < 0 || q->slot >= b->n_slots || q->n_tokens < 1 || q->pos < 0 ||
        q->pos > b->n_ctx - q->n_tokens)
        return ax_fail(err,
                       q->pos >= 0 && q->n_tokens > 0 && q->slot >= 0 && q->slot < b->n_slots
                           ? AX_ECONTEXT
                           : AX_EINVAL,
                       "axcl: slot %d, %d tokens at position %d do not fit (slots %d, context %d)",
                       q->slot, q->n_tokens, q->pos, b->n_slots, b->n_ctx);
    for (int i = 0; i < q->n_tokens; i++)
        if (q->tokens[i] < 0 || q->tokens[i] >= (int32_t)b->lay.embed_rows)
            return ax_fail(err, AX_ERANGE, "token id %d outside the embedding table (0..%lld)",
                           q->tokens[i], (long long)b->lay.embed_rows - 1);
    int done = 0;
    while (done < q->n_tokens) {
        int left = q->n_tokens - done, pos = q->pos + done;
        struct step s = {.pos = pos, .rows = 1, .group = 0, .slot = q->slot};
        if (left > 1 && b->n_groups > 1) {
            int n = left < b->P ? left : b->P;
            int g = pick_group(b, pos, n);
            if (g) {
                s.rows = n;
                s.group = g;
            }
        }
        s.want_logits = done + s.rows == q->n_tokens && q->logits;
        enum ax_err e = run_step(b, &s, q->tokens + done, q->logits, err);
        if (e != AX_OK)
            return e;
        done += s.rows;
    }
    return AX_OK;
}

static int axb_healthy(void *ctx)
{
    const struct axb *b = ctx;
    assert(b && b->magic == AXB_MAGIC);
    return !b->lost;
}

static const struct backend_ops axb_ops = {
    .version = BACKEND_IFACE_VERSION,
    .name = "axcl",
    .caps = 0,
    .forward = axb_forward,
    .healthy = axb_healthy,
    .free = axb_free,
};

/* ---- open ------------------------------------------------------------- */

static enum ax_err pick_devices(struct axb *b, const char *want, char *err)
{
    struct axcl_devlist list;
    memset(&list, 0, sizeof list);
    axcl_error r = b->rt->GetDeviceList(&list);
    if (r != 0 || list.num == 0 || list.num > AXCL_MAX_DEVICES)
        return ax_fail(err, AX_EDEVICE,
                       "no AX650N card found (axclrtGetDeviceList: 0x%08x, %u devices); check "
                       "`axcl-smi` and the PCIe connection",
                       (unsigned)r, list.num);
    b->n_cards = 0;
    if (!want || !*want) {
        for (uint32_t i = 0; i < list.num && b->n_cards < MAX_CARDS; i++)
            b->cards[b->n_cards++].id = list.devices[i];
        return AX_OK;
    }
    for (const char *s = want; *s;) {
        char *end;
        long id = strtol(s, &end, 10);
        if (end == s || (*end && *end != ','))
            return ax_fail(err, AX_EINVAL, "--devices '%s': expected bus ids like 1,2", want);
        int found = 0;
        for (uint32_t i = 0; i < list.num; i++)
            found |= list.devices[i] == id;
        if (!found) {
            char have[256] = "";
            for (uint32_t i = 0; i < list.num && strlen(have) < 200; i++)
                snprintf(have + strlen(have), sizeof have - strlen(have), "%s%d", i ? "," : "",
                         list.devices[i]);
            return ax_fail(err, AX_EINVAL, "device %ld not found (cards on this host: %s)", id,
                           have);
        }
        if (b->n_cards == MAX_CARDS)
            return ax_fail(err, AX_ETOOBIG, "--devices: at most %d cards", MAX_CARDS);
        b->cards[b->n_cards++].id = (int)id;
        s = *end ? end + 1 : end;
    }
    return AX_OK;
}

/* Contiguous blocks of layers, ceil(L/cards) on the first ones. */
static enum ax_err split_layers(struct axb *b, char *err)
{
    if (b->n_cards < 1 || b->n_layers < 1)
        return ax_fail(err, AX_EINVAL, "no cards or no layers to place");
    int L = b->n_layers, n = b->n_cards, per = (L + n - 1) / n;
    n = (L + per - 1) / per; /* cards that get at least one layer */
    b->n_cards = n;
    for (int i = 0; i < n; i++) {
        struct card *c = &b->cards[i];
        c->b = b;
        c->idx = i;
        c->l0 = i * per;
        c->l1 = c->l0 + per < L ? c->l0 + per : L;
        c->has_post = i == n - 1;
        c->bound_slot = -1;
        c->lay = ax_calloc((size_t)(c->l1 - c->l0), sizeof *c->lay);
        if (!c->lay)
            return ax_fail(err, AX_ENOMEM, "out of memory");
        pthread_mutex_init(&c->mu, NULL);
        pthread_cond_init(&c->cv, NULL);
        if (pthread_create(&c->th, NULL, worker, c) != 0)
            return ax_fail(err, AX_ENOMEM, "cannot start the worker thread for card %d", c->id);
        c->th_started = 1;
    }
    return AX_OK;
}

static enum ax_err check_files(const struct axb *b, char *err)
{
    char path[MODEL_PATH_MAX + 32];
    for (int l = 0; l < b->n_layers; l++) {
        snprintf(path, sizeof path, b->lay.layer_template, l);
        if (!ax_file_exists(path))
            return ax_fail(err, AX_ENOTFOUND,
                           "%s is missing (axmodel_num is %d); re-download the "
                           "model (`axserve pull`)",
                           path, b->n_layers);
        enum ax_err e = model_check_not_lfs(path, err);
        if (e != AX_OK)
            return e;
    }
    if (!ax_file_exists(b->lay.post_path))
        return ax_fail(err, AX_ENOTFOUND, "%s is missing; re-download the model (`axserve pull`)",
                       b->lay.post_path);
    return model_check_not_lfs(b->lay.post_path, err);
}

static enum ax_err open_embed(struct axb *b, char *err)
{
    enum ax_err e = model_check_not_lfs(b->lay.embed_path, err);
    if (e == AX_OK)
        e = ax_map_open(b->lay.embed_path, &b->embed, err);
    if (e != AX_OK)
        return e;
    ax_map_advise_rows(b->embed.data, b->embed.size); /* one row per token */
    if (b->lay.embed_rows < 1 || b->lay.embed_cols < 1 || b->lay.embed_cols > 65536 ||
        b->lay.embed_rows > (1 << 24) ||
        b->embed.size != (size_t)b->lay.embed_rows * (size_t)b->lay.embed_cols * 2)
        return ax_fail(err, AX_EFORMAT,
                       "%s: %zu bytes, expected %lld x %lld bf16 = %lld; the file is truncated or "
                       "tokens_embed_num/size are wrong",
                       b->lay.embed_path, b->embed.size, (long long)b->lay.embed_rows,
                       (long long)b->lay.embed_cols,
                       (long long)b->lay.embed_rows * (long long)b->lay.embed_cols * 2);
    b->hidden = (int)b->lay.embed_cols;
    return AX_OK;
}

/* Slots that fit in every card's free CMM after loading. */
static enum ax_err size_slots(struct axb *b, const struct backend_opts *opts, char *err)
{
    int fit = MAX_SLOTS;
    uint64_t per = 0;
    for (int i = 0; i < b->n_cards; i++) {
        struct card *c = &b->cards[i];
        uint64_t slot = (uint64_t)(c->l1 - c->l0) * 2 * kv_rows(b) * (uint64_t)b->kv * 2;
        uint64_t P = (uint64_t)b->P, hid = (uint64_t)b->hidden * 2, hmax = (uint64_t)b->N;
        /* pack (decode + prefill regions), ping-pong, K/V staging, logits,
         * plus allocation rounding: what alloc_buffers will take. */
        uint64_t bufs = hid + (uint64_t)(b->N + 1) * 2 + P * hid + P * 4 + P * (hmax + P) * 2 +
                        2 * P * hid + 2 * P * (uint64_t)b->kv * 2 + (uint64_t)b->vocab * 2 +
                        (uint64_t)16 * 4096;
        if (slot > per)
            per = slot;
        if (!c->cmm_total)
            continue; /* runtime cannot tell: allocation failures will */
        uint64_t keep = cmm_reserve(c->cmm_total) + bufs;
        uint64_t avail = c->cmm_free > keep ? c->cmm_free - keep : 0;
        int n = slot ? (int)(avail / slot) : 0;
        if (n < fit)
            fit = n;
        if (n < 1 || (opts->n_slots > 0 && n < opts->n_slots))
            return ax_fail(err, AX_EDEVICE,
                           "card %d: the KV cache needs %.2f MiB per slot (%d layers x %zu rows x "
                           "%d x 2 x bf16) and %d slot(s) were asked for, but only %.2f MiB of "
                           "CMM are free after loading the model: use fewer slots or more cards",
                           c->id, (double)slot / MIB, c->l1 - c->l0, kv_rows(b), b->kv,
                           opts->n_slots > 0 ? opts->n_slots : 1, (double)avail / MIB);
    }
    b->slot_bytes = per;
    b->n_slots = opts->n_slots > 0 ? (opts->n_slots < MAX_SLOTS ? opts->n_slots : MAX_SLOTS) : fit;
    return AX_OK;
}

static enum ax_err open_cards(struct axb *b, const struct backend_opts *opts, char *err)
{
    enum ax_err e = run_all(b, card_load, NULL, err);
    if (e == AX_OK)
        e = run_all(b, card_check, NULL, err);
    if (e == AX_OK)
        e = size_slots(b, opts, err);
    if (e != AX_OK)
        return e;
    struct probe pr;
    pr.want_direct = env_switch("AXSERVE_AXCL_KV_DIRECT");
    pr.want_async = env_switch("AXSERVE_AXCL_ASYNC");
    int want_direct = pr.want_direct, want_async = pr.want_async;
    int want_packed = env_switch("AXSERVE_AXCL_PACKED");
    b->packed = want_packed != 0;
    b->packed_why = want_packed == 0 ? "off (AXSERVE_AXCL_PACKED=0): 3 uploads per step"
                                     : "on (inputs bound at interior pointers of one buffer)";
    e = run_all(b, card_alloc, &want_async, err);
    /* Probe with copy-mode bindings, then decide once for all cards. */
    b->kv_direct = b->async = 0;
    if (e == AX_OK)
        e = run_all(b, card_bind, NULL, err);
    if (e != AX_OK && b->packed && want_packed == -1 && !b->lost) {
        /* A runtime that refuses interior pointers as inputs: give each
         * piece its own buffer and try again. */
        ax_warn("axcl: packed inputs refused (%s); using separate buffers", err);
        b->packed = 0;
        b->packed_why = "off (runtime refused interior-pointer inputs): 3 uploads per step";
        e = run_all(b, alloc_unpacked, NULL, err);
        if (e == AX_OK)
            e = run_all(b, card_bind, NULL, err);
    }
    if (e == AX_OK)
        e = run_all(b, card_probe, &pr, err);
    if (e != AX_OK)
        return e;
    int direct = 1, async = 1;
    for (int i = 0; i < b->n_cards; i++) {
        direct &= pr.kv_direct[i] == 1;
        async &= pr.async[i] == 1 && b->cards[i].stream != NULL;
    }
    b->kv_direct = direct;
    b->kv_why = want_direct == 0   ? "off (AXSERVE_AXCL_KV_DIRECT=0)"
                : want_direct == 1 ? "on (AXSERVE_AXCL_KV_DIRECT=1, not probed)"
                : direct           ? "on (probe: interior-pointer K_cache_out accepted, rows match)"
                                   : "off (probe: runtime refused or rows differ; D2D copies)";
    /* Queued executes need direct K/V writes: copies would race the queue. */
    b->async = async && direct;
    b->async_why = want_async == 0 ? "off (AXSERVE_AXCL_ASYNC=0)"
                   : !direct       ? "off (needs direct K/V writes)"
                   : b->async      ? (want_async == 1 ? "on (AXSERVE_AXCL_ASYNC=1)"
                                                      : "on (probe: async execute matches)")
                                   : "off (runtime lacks streams or probe differed)";
    /* Probes wrote into slot 0; rebind in the chosen mode on clean caches. */
    return run_all(b, card_bind, NULL, err);
}

enum ax_err axcl_backend_open_layout(const struct backend_opts *opts,
                                     const struct axmodel_layout *lay, struct backend *out,
                                     char *err)
{
    if (lay->n_layers < 1 || lay->n_layers > 1024)
        return ax_fail(err, AX_EFORMAT, "axmodel_num %d outside 1..1024", lay->n_layers);
    struct axb *b = ax_calloc(1, sizeof *b);
    if (!b)
        return ax_fail(err, AX_ENOMEM, "out of memory");
    b->magic = AXB_MAGIC;
    b->lay = *lay;
    b->n_layers = lay->n_layers;
    b->pinned = env_switch("AXSERVE_AXCL_PINNED") != 0;
    enum ax_err e = check_files(b, err);
    if (e == AX_OK)
        e = open_embed(b, err);
    if (e == AX_OK)
        e = axcl_rt_acquire(&b->rt, err);
    if (e == AX_OK)
        e = pick_devices(b, opts->devices ? opts->devices : getenv("AXSERVE_AXCL_DEVICES"), err);
    if (e == AX_OK)
        e = split_layers(b, err);
    if (e == AX_OK)
        e = open_cards(b, opts, err);
    if (e != AX_OK) {
        axb_free(b);
        return e;
    }
    b->n_ctx = opts->n_ctx > 0 && opts->n_ctx < b->N ? opts->n_ctx : b->N;
    out->ops = &axb_ops;
    out->ctx = b;
    out->lim.n_ctx = b->n_ctx;
    out->lim.n_slots = b->n_slots;
    out->lim.prefill_chunk = b->n_groups > 1 ? b->P : 1;
    out->lim.n_vocab = b->vocab;
    out->lim.max_batch = 1;
    ax_info("axcl: %d card(s), %d layers, context %d, %d slot(s), prefill %d, kv-direct %s, "
            "async %s, packed %s, %s host buffers",
            b->n_cards, b->n_layers, b->n_ctx, b->n_slots, b->P, b->kv_direct ? "on" : "off",
            b->async ? "on" : "off", b->packed ? "on" : "off", b->pinned ? "pinned" : "pageable");
    return AX_OK;
}

enum ax_err axcl_backend_open(const struct backend_opts *opts, const struct model *m,
                              struct backend *b, char *err)
{
    const struct axmodel_layout *lay = model_kind(m) == MODEL_AXMODEL ? model_axmodel(m) : NULL;
    if (!lay)
        return ax_fail(err, AX_EUNSUPPORTED,
                       "%s is not an AXERA axmodel directory: the axcl backend runs compiled "
                       "layer models (`axserve pull` an AX650 build, or `axserve emu-compile` "
                       "for the emulator); use --backend cpu for HF checkpoints",
                       model_dir(m));
    return axcl_backend_open_layout(opts, lay, b, err);
}

void axcl_backend_info(const struct backend *bk, struct axcl_info *o)
{
    const struct axb *b = bk->ctx;
    memset(o, 0, sizeof *o);
    o->n_cards = b->n_cards;
    for (int i = 0; i < b->n_cards; i++) {
        o->devices[i] = b->cards[i].id;
        o->layers_on[i] = b->cards[i].l1 - b->cards[i].l0;
    }
    o->n_ctx = b->n_ctx;
    o->n_slots = b->n_slots;
    o->prefill = b->P;
    o->n_groups = b->n_groups;
    for (int g = 0; g < b->n_groups; g++)
        o->history[g] = b->hist[g];
    o->kv_width = b->kv;
    o->hidden = b->hidden;
    o->vocab = b->vocab;
    o->kv_direct = b->kv_direct;
    o->async = b->async;
    o->pinned = b->pinned;
    o->packed = b->packed;
    o->packed_why = b->packed_why;
    o->kv_direct_why = b->kv_why;
    o->async_why = b->async_why;
    o->cmm_mib_per_slot = (double)b->slot_bytes / MIB;
}
