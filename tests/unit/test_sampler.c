/* test_sampler.c - engine/sampler: candidate sets and probabilities against
 * the numpy reference (tests/ref/sampler_ref.py, run at test time), exact
 * argmax at temperature 0, seeded determinism, draw frequencies, logprobs,
 * and no allocation per token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "engine/sampler.h"
#include "util/mem.h"

#define REF_CMD "/usr/bin/python3 tests/ref/sampler_ref.py"

/* ---- reference cases ------------------------------------------------------ */

struct ref_case {
    int n_vocab, gen_start, n_hist, n_keep, n_top;
    struct sampler_params sp;
    float *logits;
    int32_t hist[64];
    int32_t keep_id[5000];
    double keep_p[5000];
    int32_t chosen;
    double chosen_lp;
    int32_t top_id[ENG_MAX_TOP];
    double top_lp[ENG_MAX_TOP];
};

/* Reads the "case" block at *pp; returns 0 at "end". */
static int read_case(char **pp, struct ref_case *c)
{
    char *p = *pp, *q;
    if (!strncmp(p, "end", 3))
        return 0;
    assert_int_equal(strncmp(p, "case ", 5), 0);
    p += 5;
    strtol(p, &p, 10);
    c->n_vocab = (int)strtol(p, &p, 10);
    memset(&c->sp, 0, sizeof c->sp);
    c->sp.temperature = strtof(p, &p);
    c->sp.top_k = (int)strtol(p, &p, 10);
    c->sp.top_p = strtof(p, &p);
    c->sp.min_p = strtof(p, &p);
    c->sp.repetition_penalty = strtof(p, &p);
    c->sp.presence_penalty = strtof(p, &p);
    c->sp.frequency_penalty = strtof(p, &p);
    c->gen_start = (int)strtol(p, &p, 10);
    p = strchr(p, '\n') + 1;
    assert_int_equal(strncmp(p, "logits ", 7), 0);
    p += 7;
    c->logits = malloc(sizeof(float) * (size_t)c->n_vocab);
    for (int i = 0; i < c->n_vocab; i++)
        c->logits[i] = strtof(p, &p);
    p = strchr(p, '\n') + 1;
    assert_int_equal(strncmp(p, "hist", 4), 0);
    p += 4;
    c->n_hist = 0;
    for (;;) {
        long v = strtol(p, &q, 10);
        if (q == p)
            break;
        assert_true(c->n_hist < 64);
        c->hist[c->n_hist++] = (int32_t)v;
        p = q;
    }
    p = strchr(p, '\n') + 1;
    assert_int_equal(strncmp(p, "keep ", 5), 0);
    p += 5;
    c->n_keep = (int)strtol(p, &p, 10);
    for (int i = 0; i < c->n_keep; i++) {
        c->keep_id[i] = (int32_t)strtol(p, &p, 10);
        c->keep_p[i] = strtod(p, &p);
    }
    p = strchr(p, '\n') + 1;
    assert_int_equal(strncmp(p, "logprobs ", 9), 0);
    p += 9;
    c->chosen = (int32_t)strtol(p, &p, 10);
    c->chosen_lp = strtod(p, &p);
    c->n_top = (int)strtol(p, &p, 10);
    for (int i = 0; i < c->n_top; i++) {
        c->top_id[i] = (int32_t)strtol(p, &p, 10);
        c->top_lp[i] = strtod(p, &p);
    }
    *pp = strchr(p, '\n') + 1;
    return 1;
}

static char *run_reference(void)
{
    FILE *f = popen(REF_CMD, "r");
    assert_non_null(f);
    size_t cap = 1 << 22, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - 1 - len, f)) > 0)
        len += n;
    buf[len] = 0;
    assert_int_equal(pclose(f), 0);
    assert_true(len > 0 && len < cap - 1);
    return buf;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static void check_case(struct ref_case *c)
{
    struct sampler *s;
    char err[AX_ERRLEN];
    assert_int_equal(sampler_create(c->n_vocab, &s, err), AX_OK);
    float *x = malloc(sizeof(float) * (size_t)c->n_vocab);
    memcpy(x, c->logits, sizeof(float) * (size_t)c->n_vocab);
    sampler_penalize(s, x, &c->sp, c->hist, c->n_hist, c->gen_start);
    const int32_t *ids;
    const float *probs;
    int n = sampler_filter(s, x, &c->sp, &ids, &probs);
    assert_int_equal(n, c->n_keep);
    /* Same ids (as a set), same probability for each. */
    int32_t *got = malloc(sizeof(int32_t) * (size_t)n);
    memcpy(got, ids, sizeof(int32_t) * (size_t)n);
    qsort(got, (size_t)n, sizeof *got, cmp_i32);
    for (int i = 0; i < n; i++)
        assert_int_equal(got[i], c->keep_id[i]); /* reference lists ids ascending */
    for (int i = 0; i < n; i++) {
        int j = 0;
        while (c->keep_id[j] != ids[i])
            j++;
        assert_true(fabs(probs[i] - c->keep_p[j]) <= 1e-6 + 1e-4 * c->keep_p[j]);
    }
    /* Logprobs come from the raw logits, not the penalised ones. */
    struct eng_top top[ENG_MAX_TOP];
    float lp = sampler_logprobs(s, c->logits, c->chosen, c->n_top, top);
    assert_true(fabs(lp - c->chosen_lp) < 1e-4);
    for (int i = 0; i < c->n_top; i++) {
        assert_int_equal(top[i].id, c->top_id[i]);
        assert_true(fabs(top[i].logprob - c->top_lp[i]) < 1e-4);
    }
    free(got);
    free(x);
    sampler_free(s);
}

static void matches_reference(void **state)
{
    (void)state;
    char *out = run_reference(), *p = out;
    struct ref_case *c = malloc(sizeof *c);
    int n = 0;
    while (read_case(&p, c)) {
        check_case(c);
        free(c->logits);
        n++;
    }
    assert_true(n >= 50);
    printf("sampler: %d reference cases matched\n", n);
    free(c);
    free(out);
}

/* ---- properties ------------------------------------------------------------ */

static void fill_logits(float *x, int n, uint64_t seed)
{
    struct sampler_rng r;
    sampler_rng_seed(&r, seed);
    for (int i = 0; i < n; i++)
        x[i] = (float)(sampler_rng_uniform(&r) * 8.0 - 4.0);
}

static void temperature_zero_is_argmax(void **state)
{
    (void)state;
    enum { V = 1000 };
    struct sampler *s;
    char err[AX_ERRLEN];
    assert_int_equal(sampler_create(V, &s, err), AX_OK);
    float x[V];
    fill_logits(x, V, 7);
    x[613] = 9.0f;
    x[777] = 9.0f; /* tie: the lower id wins */
    struct sampler_params p = {.temperature = 0.0f, .top_p = 0.1f, .top_k = 3, .min_p = 0.5f};
    struct sampler_rng r;
    sampler_rng_seed(&r, 1);
    for (int i = 0; i < 20; i++)
        assert_int_equal(sampler_sample(s, x, &p, &r), 613);
    sampler_free(s);
}

static void seeded_runs_repeat(void **state)
{
    (void)state;
    enum { V = 300, N = 64 };
    struct sampler *s;
    char err[AX_ERRLEN];
    assert_int_equal(sampler_create(V, &s, err), AX_OK);
    float x[V];
    fill_logits(x, V, 11);
    struct sampler_params p = {.temperature = 1.0f, .top_p = 1.0f, .repetition_penalty = 1.0f};
    int32_t a[N], b[N], c[N];
    struct sampler_rng r;
    sampler_rng_seed(&r, 42);
    for (int i = 0; i < N; i++)
        a[i] = sampler_sample(s, x, &p, &r);
    sampler_rng_seed(&r, 42);
    for (int i = 0; i < N; i++)
        b[i] = sampler_sample(s, x, &p, &r);
    sampler_rng_seed(&r, 43);
    for (int i = 0; i < N; i++)
        c[i] = sampler_sample(s, x, &p, &r);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
    sampler_free(s);
}

/* Draw frequencies follow the filtered probabilities (fixed seed, so the
 * outcome is deterministic; the bound is ~6 sigma). */
static void draws_follow_probabilities(void **state)
{
    (void)state;
    enum { V = 40, N = 40000 };
    struct sampler *s;
    char err[AX_ERRLEN];
    assert_int_equal(sampler_create(V, &s, err), AX_OK);
    float x[V];
    fill_logits(x, V, 5);
    struct sampler_params p = {.temperature = 0.8f, .top_k = 10, .top_p = 0.9f};
    const int32_t *ids;
    const float *pr;
    int n = sampler_filter(s, x, &p, &ids, &pr);
    double want[V] = {0};
    for (int i = 0; i < n; i++)
        want[ids[i]] = pr[i];
    int hits[V] = {0};
    struct sampler_rng r;
    sampler_rng_seed(&r, 99);
    for (int i = 0; i < N; i++)
        hits[sampler_sample(s, x, &p, &r)]++;
    for (int i = 0; i < V; i++) {
        double sd = sqrt(N * want[i] * (1 - want[i])) + 1;
        if (want[i] == 0)
            assert_int_equal(hits[i], 0);
        else
            assert_true(fabs(hits[i] - N * want[i]) < 6 * sd);
    }
    sampler_free(s);
}

static void no_allocation_per_token(void **state)
{
    (void)state;
    enum { V = 20000 };
    struct sampler *s;
    char err[AX_ERRLEN];
    assert_int_equal(sampler_create(V, &s, err), AX_OK);
    float *x = malloc(sizeof(float) * V);
    fill_logits(x, V, 3);
    struct sampler_params p = {.temperature = 1.0f, .top_p = 0.95f, .min_p = 0.01f,
                               .presence_penalty = 0.5f, .frequency_penalty = 0.5f,
                               .repetition_penalty = 1.1f};
    int32_t hist[] = {1, 5, 5, 9, 100, 5};
    struct sampler_rng r;
    sampler_rng_seed(&r, 1);
    struct eng_top top[ENG_MAX_TOP];
    long before = ax_mem_count();
    for (int i = 0; i < 5; i++) {
        sampler_penalize(s, x, &p, hist, 6, 2);
        int32_t t = sampler_sample(s, x, &p, &r);
        sampler_logprobs(s, x, t, ENG_MAX_TOP, top);
    }
    assert_int_equal(ax_mem_count(), before);
    free(x);
    sampler_free(s);
}

static void rejects_bad_vocab(void **state)
{
    (void)state;
    struct sampler *s;
    char err[AX_ERRLEN];
    assert_int_equal(sampler_create(0, &s, err), AX_EINVAL);
    assert_null(s);
    sampler_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matches_reference),
        cmocka_unit_test(temperature_zero_is_argmax),
        cmocka_unit_test(seeded_runs_repeat),
        cmocka_unit_test(draws_follow_probabilities),
        cmocka_unit_test(no_allocation_per_token),
        cmocka_unit_test(rejects_bad_vocab),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
