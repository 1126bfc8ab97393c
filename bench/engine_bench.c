/* engine_bench.c - `make bench-engine`: what the engine adds on the CPU
 * backend, on the model given (default: the synthetic model `make` builds).
 *
 * Prints: decode tokens/s of one stream; aggregate tokens/s of 4 concurrent
 * streams (continuous batching: one pass over the weights per step) and
 * the ratio; time to first token of a long prompt cold vs. with its prefix
 * cached; and the sampler's cost per token over the full vocabulary
 * (top_k 20 / top_p 0.95, Qwen3's defaults). Not part of `make test`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "engine/engine.h"
#include "engine/sampler.h"
#include "model/model.h"
#include "tok/tok.h"
#include "util/mem.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static struct gen_request request(const char *prompt, int max_tokens)
{
    struct gen_request r = {.prompt_text = prompt, .prompt_len = strlen(prompt),
                            .max_tokens = max_tokens, .ignore_eos = 1};
    r.sp = (struct sampler_params){.temperature = 0.0f, .top_p = 1.0f, .repetition_penalty = 1.0f};
    return r;
}

/* Runs n streams together; returns wall ms; *ttft gets the first's TTFT. */
static double run(struct eng *e, const char **prompts, int n, int max_tokens, double *ttft)
{
    struct eng_req *q[16];
    char err[AX_ERRLEN];
    double t0 = now_ms();
    for (int i = 0; i < n; i++) {
        struct gen_request r = request(prompts[i], max_tokens);
        if (eng_submit(e, &r, &q[i], err) != AX_OK) {
            fprintf(stderr, "bench-engine: %s\n", err);
            exit(1);
        }
    }
    for (int i = 0; i < n; i++) {
        struct eng_event ev;
        while (eng_next(q[i], &ev, -1) == AX_OK && ev.kind != ENG_EV_DONE)
            ;
        if (ev.finish != ENG_FINISH_LENGTH) {
            fprintf(stderr, "bench-engine: request ended with %d: %s\n", ev.finish, ev.message);
            exit(1);
        }
        if (i == 0 && ttft)
            *ttft = ev.ttft_ms;
        eng_req_free(q[i]);
    }
    return now_ms() - t0;
}

static void bench_sampler(int n_vocab)
{
    struct sampler *s;
    char err[AX_ERRLEN];
    if (sampler_create(n_vocab, &s, err) != AX_OK)
        exit(1);
    float *x = ax_mallocarray((size_t)n_vocab, sizeof *x);
    struct sampler_rng r;
    sampler_rng_seed(&r, 1);
    /* Roughly an LM's row: a broad bulk and a handful of likely tokens. */
    for (int i = 0; i < n_vocab; i++) {
        double u1 = sampler_rng_uniform(&r) + 1e-12, u2 = sampler_rng_uniform(&r);
        x[i] = (float)(2.0 * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
    for (int i = 0; i < 10; i++)
        x[sampler_rng_next(&r) % (uint64_t)n_vocab] = 14.0f + (float)i * 0.3f;
    struct sampler_params p = {.temperature = 0.6f, .top_k = 20, .top_p = 0.95f,
                               .repetition_penalty = 1.0f};
    int reps = 200;
    double t0 = now_ms();
    for (int i = 0; i < reps; i++)
        sampler_sample(s, x, &p, &r);
    double k = (now_ms() - t0) * 1e3 / reps;
    p.top_k = 0;
    t0 = now_ms();
    for (int i = 0; i < reps; i++)
        sampler_sample(s, x, &p, &r);
    double full = (now_ms() - t0) * 1e3 / reps;
    printf("sampler, %d-entry vocab: %.0f us/token (top_k 20, top_p 0.95), %.0f us/token "
           "(top_p 0.95 alone)\n", n_vocab, k, full);
    ax_free(x);
    sampler_free(s);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "build/models/default";
    char err[AX_ERRLEN];
    struct model *m;
    struct tok *t;
    struct backend *b;
    struct eng *e;
    struct backend_opts bo = {.name = "cpu", .n_slots = 4, .n_ctx = 2048};
    if (model_open(dir, &m, err) != AX_OK || tok_load(model_tokenizer_json(m), &t, err) != AX_OK ||
        backend_open(&bo, m, &b, err) != AX_OK) {
        fprintf(stderr, "bench-engine: %s\n", err);
        return 1;
    }
    const struct gen_defaults *g = model_gen_defaults(m);
    struct eng_config cfg = {.queue_max = 16, .eos = g->eos, .n_eos = g->n_eos};
    if (eng_create(&cfg, b, t, &e, err) != AX_OK) {
        fprintf(stderr, "bench-engine: %s\n", err);
        return 1;
    }
    const char *p[4] = {"One stream of text about rivers.", "Another about mountains.",
                        "A third about the sea.", "A fourth about forests."};
    enum { T = 48 };
    run(e, p, 1, 4, NULL); /* warm up */
    double one = run(e, p, 1, T, NULL);
    double four = run(e, p, 4, T, NULL);
    double tps1 = T * 1e3 / one, tps4 = 4 * T * 1e3 / four;
    printf("decode, 1 stream:  %.1f tokens/s\n", tps1);
    printf("decode, 4 streams: %.1f tokens/s aggregate (%.2fx one stream)\n", tps4, tps4 / tps1);

    static char longp[16384];
    for (int i = 0; i < 120; i++)
        strcat(longp, "The quick brown fox jumps over the lazy dog. ");
    const char *lp[1] = {longp};
    double cold, warm;
    run(e, lp, 1, 1, &cold);
    run(e, lp, 1, 1, &warm);
    printf("time to first token, %zu-byte prompt: %.1f ms cold, %.1f ms with its prefix cached "
           "(%.1fx)\n", strlen(longp), cold, warm, cold / warm);
    bench_sampler(b->lim.n_vocab);
    eng_free(e);
    backend_free(b);
    tok_free(t);
    model_free(m);
    return 0;
}
