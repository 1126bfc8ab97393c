/* generate.c - `axserve generate`: runs a model on a prompt (text or token
 * ids) through a backend and prints one JSON object with the generated
 * tokens, the top-K log-probabilities at every step and timings:
 *
 *   {"tokens": [id, ...],
 *    "top": [[[id, logprob], ...K...], ...one per generated token...],
 *    "timings": {"prompt_tokens": n, "prompt_ms": x,
 *                "decode_tokens": m, "decode_ms": y}}
 *
 * logprob is the natural-log softmax of the raw logits of that step, before
 * any sampling adjustment. Temperature 0 (the default) takes the argmax
 * (lowest id on ties); above 0 it draws from softmax(logits / T) with a
 * seeded generator - the engine has the full sampler. decode_tokens counts
 * the single-token forward calls after the prompt (the first generated
 * token comes from the prompt's logits). It is a test and bench tool: no
 * chat template, no detokenisation. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "cli/cli.h"
#include "model/model.h"
#include "tok/tok.h"
#include "util/clock.h"
#include "util/file.h"
#include "util/log.h"
#include "util/mem.h"

#define MAX_PROMPT_BYTES (1u << 22)
#define MAX_TOP 100

struct gen_args {
    const char *model, *prompt, *ids;
    int n, top, seed, ignore_eos, prefill_chunk;
    double temperature;
    struct backend_opts bo;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: axserve generate -m DIR (--prompt TEXT | --ids 1,2,3) [-n N] [--top K]\n"
            "         [--backend auto|cpu|axcl] [--temperature T] [--seed S] [--quant none|q8|q4]\n"
            "         [--threads N] [--ignore-eos] [--kv f16|f32] [--slots N] [--ctx N]\n"
            "         [--prefill-chunk N] [--devices 1,2] [--bf16-act] [--exact-prefill]\n"
            "Prints {\"tokens\", \"top\", \"timings\"} as JSON. Defaults: -n 16, --top 5,\n"
            "--temperature 0 (greedy), the checkpoint's own precision.\n"
            "--bf16-act: BF16 weights: prefill rounds activations to bf16 and uses AVX512-BF16\n"
            "dot products, as llama.cpp does (faster, less exact; x86 with avx512_bf16 only;\n"
            "default off).\n"
            "--exact-prefill: BF16 weights: prefill multiplies f32 activations with f32 FMAs,\n"
            "exact to float rounding, instead of the default split products (bf16 + int8 dot\n"
            "products of the activations' bf16 part and rest; faster, within ~3e-4 in\n"
            "logprobs; x86 with avx512_bf16 and avx512_vnni only).\n");
}

/* ---- arguments ----------------------------------------------------------- */

static int parse_int(const char *flag, const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "axserve generate: %s needs an integer in %ld..%ld, got '%s'\n", flag,
                lo, hi, s);
        return 0;
    }
    *out = (int)v;
    return 1;
}

static int parse_args(int argc, char **argv, struct gen_args *a)
{
    memset(a, 0, sizeof *a);
    a->n = 16;
    a->top = 5;
    a->bo.name = "auto"; /* by model kind, see backend_open */
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--ignore-eos")) {
            a->ignore_eos = 1;
            continue;
        }
        if (!strcmp(f, "--bf16-act")) {
            a->bo.bf16_act = 1;
            continue;
        }
        if (!strcmp(f, "--exact-prefill")) {
            a->bo.exact_prefill = 1;
            continue;
        }
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "axserve generate: %s needs a value\n", f);
            return 0;
        }
        const char *v = argv[++i];
        int ok = 1;
        if (!strcmp(f, "-m") || !strcmp(f, "--model")) a->model = v;
        else if (!strcmp(f, "--prompt")) a->prompt = v;
        else if (!strcmp(f, "--ids")) a->ids = v;
        else if (!strcmp(f, "-n")) ok = parse_int(f, v, 0, 1 << 20, &a->n);
        else if (!strcmp(f, "--top")) ok = parse_int(f, v, 0, MAX_TOP, &a->top);
        else if (!strcmp(f, "--seed")) ok = parse_int(f, v, 0, INT_MAX, &a->seed);
        else if (!strcmp(f, "--threads")) ok = parse_int(f, v, 1, 256, &a->bo.n_threads);
        else if (!strcmp(f, "--slots")) ok = parse_int(f, v, 1, 1024, &a->bo.n_slots);
        else if (!strcmp(f, "--ctx")) ok = parse_int(f, v, 1, 1 << 24, &a->bo.n_ctx);
        else if (!strcmp(f, "--prefill-chunk")) ok = parse_int(f, v, 1, 1 << 20, &a->prefill_chunk);
        else if (!strcmp(f, "--backend")) a->bo.name = v;
        else if (!strcmp(f, "--quant")) a->bo.quant = v;
        else if (!strcmp(f, "--kv")) a->bo.kv_type = v;
        else if (!strcmp(f, "--devices")) a->bo.devices = v;
        else if (!strcmp(f, "--temperature")) {
            char *end;
            a->temperature = strtod(v, &end);
            ok = end != v && !*end && a->temperature >= 0 && a->temperature <= 100;
            if (!ok)
                fprintf(stderr, "axserve generate: --temperature needs a number in 0..100\n");
        } else {
            fprintf(stderr, "axserve generate: unknown option '%s'\n", f);
            return 0;
        }
        if (!ok)
            return 0;
    }
    if (!a->model || (!a->prompt == !a->ids)) {
        fprintf(stderr, "axserve generate: need -m DIR and exactly one of --prompt, --ids\n");
        return 0;
    }
    return 1;
}

/* "1,2,3" -> ids (caller frees). Ids outside the vocabulary are the
 * backend's to reject. */
static enum ax_err parse_ids(const char *s, int32_t **out, size_t *n, char *err)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    int32_t *ids = ax_mallocarray(cap, sizeof *ids);
    if (!ids)
        return ax_fail(err, AX_ENOMEM, "out of memory for %zu ids", cap);
    size_t k = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            ax_free(ids);
            return ax_fail(err, AX_EINVAL, "--ids: expected comma-separated token ids, got '%s'",
                           s);
        }
        ids[k++] = (int32_t)v;
        if (!*end)
            break;
        p = end + 1;
    }
    *out = ids;
    *n = k;
    return AX_OK;
}

static enum ax_err prompt_ids(const struct gen_args *a, const struct model *m, int32_t **out,
                              size_t *n, char *err)
{
    if (a->ids)
        return parse_ids(a->ids, out, n, err);
    size_t len = strlen(a->prompt);
    if (len > MAX_PROMPT_BYTES)
        return ax_fail(err, AX_ETOOBIG, "--prompt longer than %u bytes", MAX_PROMPT_BYTES);
    if (!model_tokenizer_json(m))
        return ax_fail(err, AX_ENOTFOUND, "%s has no tokenizer.json: use --ids", model_dir(m));
    struct tok *t;
    enum ax_err e = tok_load(model_tokenizer_json(m), &t, err);
    if (e != AX_OK)
        return e;
    int32_t *ids = ax_mallocarray(len + 1, sizeof *ids);
    if (!ids) {
        tok_free(t);
        return ax_fail(err, AX_ENOMEM, "out of memory tokenizing the prompt");
    }
    e = tok_encode(t, a->prompt, len, ids, n, err);
    tok_free(t);
    if (e != AX_OK) {
        ax_free(ids);
        return e;
    }
    *out = ids;
    return AX_OK;
}

/* ---- one step's log-probabilities and choice ------------------------------ */

static double log_sum_exp(const float *l, int n)
{
    float mx = l[0];
    for (int i = 1; i < n; i++)
        mx = l[i] > mx ? l[i] : mx;
    double s = 0; /* float exp (1 ulp) summed in double: a libm exp per id cost 2 % */
    for (int i = 0; i < n; i++)
        s += expf(l[i] - mx);
    return mx + log(s > 0 ? s : 1); /* s >= 1: the maximum contributes exp(0) */
}

/* Top k ids by logit (ties: lower id first) into top[0..k). */
static void top_k(const float *l, int n, int k, int32_t *top)
{
    int have = 0;
    if (k <= 0)
        return;
    for (int i = 0; i < n; i++) {
        if (have == k && !(l[i] > l[top[k - 1]]))
            continue;
        int j = have < k ? have++ : k - 1;
        while (j > 0 && l[i] > l[top[j - 1]]) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = i;
    }
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int32_t choose(const float *l, int n, double temp, uint64_t *rng)
{
    int32_t best = 0;
    top_k(l, n, 1, &best);
    if (temp <= 0)
        return best;
    double s = 0;
    for (int i = 0; i < n; i++)
        s += exp(((double)l[i] - l[best]) / temp);
    double u = (double)(rng_next(rng) >> 11) / 9007199254740992.0 * s;
    for (int i = 0; i < n; i++) {
        u -= exp(((double)l[i] - l[best]) / temp);
        if (u <= 0)
            return i;
    }
    return best;
}

/* ---- the run ---------------------------------------------------------------- */

struct run {
    struct gen_args a;
    struct model *m;
    struct backend *b;
    int32_t *prompt, *out;
    size_t n_prompt;
    int n_out;
    float *logits;
    int32_t *tops;     /* [n][top] ids */
    double *top_lp;    /* [n][top] logprobs */
    double prompt_ms, decode_ms;
    int decode_tokens;
};

static int is_eos(const struct gen_defaults *g, int32_t id)
{
    for (int i = 0; i < g->n_eos; i++)
        if (g->eos[i] == id)
            return 1;
    return 0;
}

static enum ax_err run_prefill(struct run *r, char *err)
{
    int chunk = r->a.prefill_chunk > 0 ? r->a.prefill_chunk : r->b->lim.prefill_chunk;
    chunk = chunk > 0 ? chunk : 1;
    double t0 = ax_now_ms();
    for (size_t p = 0; p < r->n_prompt; p += (size_t)chunk) {
        size_t n = r->n_prompt - p < (size_t)chunk ? r->n_prompt - p : (size_t)chunk;
        struct backend_seq s = {0, r->prompt + p, (int)n, (int)p,
                                p + n == r->n_prompt ? r->logits : NULL};
        enum ax_err e = r->b->ops->forward(r->b->ctx, &s, 1, err);
        if (e != AX_OK)
            return e;
    }
    r->prompt_ms = ax_now_ms() - t0;
    return AX_OK;
}

static enum ax_err run_decode(struct run *r, char *err)
{
    const struct gen_defaults *g = model_gen_defaults(r->m);
    int V = r->b->lim.n_vocab, K = r->a.top;
    uint64_t rng = 0x2545f4914f6cdd1dull ^ (uint64_t)r->a.seed * 0x9e3779b97f4a7c15ull;
    if (!rng)
        rng = 1;
    for (int i = 0; i < r->a.n; i++) {
        double lse = log_sum_exp(r->logits, V);
        top_k(r->logits, V, K, r->tops + (size_t)i * K);
        for (int j = 0; j < K; j++)
            r->top_lp[(size_t)i * K + j] = r->logits[r->tops[(size_t)i * K + j]] - lse;
        int32_t id = choose(r->logits, V, r->a.temperature, &rng);
        r->out[r->n_out++] = id;
        if ((!r->a.ignore_eos && g && is_eos(g, id)) || i + 1 == r->a.n)
            break;
        double t0 = ax_now_ms();
        struct backend_seq s = {0, &r->out[i], 1, (int)r->n_prompt + i, r->logits};
        enum ax_err e = r->b->ops->forward(r->b->ctx, &s, 1, err);
        if (e != AX_OK)
            return e;
        r->decode_ms += ax_now_ms() - t0;
        r->decode_tokens++;
    }
    return AX_OK;
}

static void print_json(const struct run *r)
{
    int K = r->a.top;
    printf("{\"tokens\": [");
    for (int i = 0; i < r->n_out; i++)
        printf("%s%d", i ? ", " : "", (int)r->out[i]);
    printf("], \"top\": [");
    for (int i = 0; i < r->n_out; i++) {
        printf("%s[", i ? ", " : "");
        for (int j = 0; j < K; j++)
            printf("%s[%d, %.9g]", j ? ", " : "", (int)r->tops[(size_t)i * K + j],
                   r->top_lp[(size_t)i * K + j]);
        printf("]");
    }
    printf("], \"timings\": {\"prompt_tokens\": %zu, \"prompt_ms\": %.3f, \"decode_tokens\": %d, "
           "\"decode_ms\": %.3f}}\n",
           r->n_prompt, r->prompt_ms, r->decode_tokens, r->decode_ms);
}

static enum ax_err run_all(struct run *r, char *err)
{
    enum ax_err e = model_open(r->a.model, &r->m, err);
    if (e == AX_OK)
        e = prompt_ids(&r->a, r->m, &r->prompt, &r->n_prompt, err);
    if (e == AX_OK && r->n_prompt == 0)
        e = ax_fail(err, AX_EINVAL, "the prompt has no tokens");
    if (e == AX_OK)
        e = backend_open(&r->a.bo, r->m, &r->b, err);
    if (e != AX_OK)
        return e;
    const struct backend_limits *lim = &r->b->lim;
    if (r->n_prompt + (size_t)r->a.n > (size_t)lim->n_ctx)
        return ax_fail(err, AX_ECONTEXT, "%zu prompt tokens + %d to generate exceed the context "
                       "of %d tokens (--ctx)", r->n_prompt, r->a.n, lim->n_ctx);
    if (r->a.top > lim->n_vocab)
        r->a.top = lim->n_vocab;
    size_t n = r->a.n > 0 ? (size_t)r->a.n : 1, K = r->a.top > 0 ? (size_t)r->a.top : 1;
    r->logits = ax_mallocarray((size_t)lim->n_vocab, sizeof(float));
    r->out = ax_mallocarray(n, sizeof(int32_t));
    r->tops = ax_mallocarray(n * K, sizeof(int32_t));
    r->top_lp = ax_mallocarray(n * K, sizeof(double));
    if (!r->logits || !r->out || !r->tops || !r->top_lp)
        return ax_fail(err, AX_ENOMEM, "out of memory for %zu steps", n);
    if ((e = run_prefill(r, err)) != AX_OK || (r->a.n > 0 && (e = run_decode(r, err)) != AX_OK))
        return e;
    print_json(r);
    return AX_OK;
}

int cli_generate(int argc, char **argv)
{
    struct run r;
    memset(&r, 0, sizeof r);
    if (!parse_args(argc, argv, &r.a)) {
        usage(stderr);
        return 2;
    }
    char err[AX_ERRLEN] = "";
    enum ax_err e = run_all(&r, err);
    if (e != AX_OK)
        fprintf(stderr, "axserve generate: %s: %s\n", ax_strerror(e), err);
    ax_free(r.logits);
    ax_free(r.out);
    ax_free(r.tops);
    ax_free(r.top_lp);
    ax_free(r.prompt);
    backend_free(r.b);
    model_free(r.m);
    return e == AX_OK ? 0 : 1;
}
