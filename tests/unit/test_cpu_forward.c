/* test_cpu_forward.c - the CPU backend through the backend interface, on a
 * small synthetic checkpoint written at start-up (model/testmodel.h):
 * what the engine relies on. Several sequences in one forward call
 * (continuous batching) give the same logits as separate calls; a prompt
 * longer than one pass (split internally) equals chunked prefill; rolling
 * a slot back and continuing equals a fresh run; bad calls are clean
 * errors; opening under allocation failure returns AX_ENOMEM and leaks
 * nothing. Numerical correctness against the numpy reference is the
 * cpu-reference suite. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backend/backend.h"
#include "backend/cpu/cpu.h"
#include "model/model.h"
#include "model/testmodel.h"
#include "util/mem.h"

#define VOCAB 512

static char dir[256];
static struct model *mdl;

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/axserve-cpu-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    struct test_model_opts o;
    testmodel_defaults(&o);
    char sub[300];
    snprintf(sub, sizeof sub, "%s/m", dir);
    o.dir = sub;
    o.hidden = 64;
    o.layers = 2;
    o.heads = 4;
    o.kv_heads = 2;
    o.head_dim = 32;
    o.intermediate = 96;
    o.vocab = VOCAB;
    o.max_pos = 512;
    o.dtype = DT_BF16;
    o.tied = 0;
    o.seed = 7;
    char err[AX_ERRLEN];
    if (testmodel_write(&o, NULL, err) != AX_OK || model_open(sub, &mdl, err) != AX_OK) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    model_free(mdl);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct backend *open_cpu(const char *quant, int threads)
{
    struct backend_opts o = {.name = "cpu", .n_threads = threads, .n_slots = 4, .n_ctx = 400,
                             .quant = quant};
    struct backend *b = NULL;
    char err[AX_ERRLEN];
    enum ax_err e = backend_open(&o, mdl, &b, err);
    if (e != AX_OK)
        fprintf(stderr, "backend_open: %s\n", err);
    assert_int_equal(e, AX_OK);
    assert_true(b->ops->caps & BACKEND_CAP_BATCH);
    assert_true(b->lim.max_batch > 1);
    assert_int_equal(b->lim.n_vocab, VOCAB);
    assert_int_equal(b->lim.n_slots, 4);
    assert_int_equal(b->lim.n_ctx, 400);
    if (!quant) /* bf16 as stored: 2 layers x 43008 weights + lm_head 512 x 64, 2 bytes each */
        assert_int_equal(cpu_backend_weight_bytes(b), 2 * (2 * 43008 + 512 * 64));
    return b;
}

static void fwd(struct backend *b, int slot, const int32_t *t, int n, int pos, float *logits)
{
    struct backend_seq s = {slot, t, n, pos, logits};
    char err[AX_ERRLEN];
    assert_int_equal(b->ops->forward(b->ctx, &s, 1, err), AX_OK);
}

static void assert_close(const float *a, const float *b, int n, double tol)
{
    double mx = 0;
    for (int i = 0; i < n; i++)
        mx = fmax(mx, fabs((double)a[i] - b[i]));
    if (mx > tol)
        fprintf(stderr, "max difference %g > %g\n", mx, tol);
    assert_true(mx <= tol);
}

static int32_t tok(int i) { return (int32_t)((i * 37 + 11) % VOCAB); }

/* Three sequences of different lengths prefilled in one call, then one
 * decode token each in one call, against each run alone in slot 0. The
 * middle one asks for no logits in the prefill: the last layer then runs
 * only the others' rows past K and V, and its decode step checks that
 * its K/V rows were stored all the same. */
static void batch_equals_separate(const char *quant)
{
    struct backend *b = open_cpu(quant, 2);
    int32_t p[3][20];
    int len[3] = {7, 1, 20};
    static float alone[3][2][VOCAB], batch[3][2][VOCAB];
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < len[s]; i++)
            p[s][i] = tok(i * (s + 1) + s);
    int32_t next[3] = {3, 4, 5};
    for (int s = 0; s < 3; s++) {
        fwd(b, 0, p[s], len[s], 0, alone[s][0]);
        fwd(b, 0, &next[s], 1, len[s], alone[s][1]);
    }
    struct backend_seq seqs[3];
    for (int s = 0; s < 3; s++)
        seqs[s] = (struct backend_seq){s + 1, p[s], len[s], 0, s == 1 ? NULL : batch[s][0]};
    char err[AX_ERRLEN];
    assert_int_equal(b->ops->forward(b->ctx, seqs, 3, err), AX_OK);
    for (int s = 0; s < 3; s++)
        seqs[s] = (struct backend_seq){s + 1, &next[s], 1, len[s], batch[s][1]};
    assert_int_equal(b->ops->forward(b->ctx, seqs, 3, err), AX_OK);
    for (int s = 0; s < 3; s++)
        for (int k = s == 1; k < 2; k++)
            assert_close(alone[s][k], batch[s][k], VOCAB, 1e-5);
    backend_free(b);
}

static void batch_bf16(void **state)
{
    (void)state;
    batch_equals_separate(NULL);
}

static void batch_q8(void **state)
{
    (void)state;
    batch_equals_separate("q8");
}

static void batch_q4(void **state)
{
    (void)state;
    batch_equals_separate("q4");
}

/* 300 tokens in one call (more than one internal pass) == 3 chunks of
 * 100 == a prompt of 299 then one decode token. */
static void long_prefill_equals_chunks(void **state)
{
    (void)state;
    struct backend *b = open_cpu(NULL, 2);
    int32_t p[300];
    for (int i = 0; i < 300; i++)
        p[i] = tok(i);
    static float a[VOCAB], c[VOCAB], d[VOCAB];
    fwd(b, 0, p, 300, 0, a);
    for (int i = 0; i < 300; i += 100)
        fwd(b, 1, p + i, 100, i, i == 200 ? c : NULL);
    fwd(b, 2, p, 299, 0, NULL);
    fwd(b, 2, p + 299, 1, 299, d);
    assert_close(a, c, VOCAB, 1e-5);
    assert_close(a, d, VOCAB, 1e-5);
    backend_free(b);
}

/* Continuing at a smaller position overwrites the rolled-back rows. */
static void rollback(void **state)
{
    (void)state;
    struct backend *b = open_cpu(NULL, 1);
    int32_t p[6] = {10, 20, 30, 40, 50, 60}, q[4] = {10, 20, 77, 88};
    static float a[VOCAB], c[VOCAB];
    fwd(b, 0, p, 6, 0, NULL);
    fwd(b, 0, q + 2, 2, 2, a);
    fwd(b, 3, q, 4, 0, c);
    assert_close(a, c, VOCAB, 1e-5);
    backend_free(b);
}

static void bad_calls(void **state)
{
    (void)state;
    struct backend *b = open_cpu(NULL, 1);
    char err[AX_ERRLEN];
    int32_t t[2] = {1, 2}, bad = VOCAB;
    float lg[VOCAB];
    struct backend_seq s[20];
    for (int i = 0; i < 20; i++)
        s[i] = (struct backend_seq){i % 4, t, 1, 0, NULL};
    s[0].slot = 4;
    assert_int_equal(b->ops->forward(b->ctx, s, 1, err), AX_ERANGE);
    s[0].slot = -1;
    assert_int_equal(b->ops->forward(b->ctx, s, 1, err), AX_ERANGE);
    s[0].slot = 0;
    s[1].slot = 0;
    assert_int_equal(b->ops->forward(b->ctx, s, 2, err), AX_EINVAL);
    assert_non_null(strstr(err, "slot 0"));
    s[1].slot = 1;
    s[0].n_tokens = 0;
    assert_int_equal(b->ops->forward(b->ctx, s, 1, err), AX_EINVAL);
    s[0].n_tokens = 2;
    s[0].pos = 399;
    assert_int_equal(b->ops->forward(b->ctx, s, 1, err), AX_ECONTEXT);
    s[0].pos = -1;
    assert_int_equal(b->ops->forward(b->ctx, s, 1, err), AX_ECONTEXT);
    s[0] = (struct backend_seq){0, &bad, 1, 0, lg};
    assert_int_equal(b->ops->forward(b->ctx, s, 1, err), AX_ERANGE);
    assert_int_equal(b->ops->forward(b->ctx, s, 0, err), AX_EINVAL);
    assert_int_equal(b->ops->forward(b->ctx, s, b->lim.max_batch + 1, err), AX_EINVAL);
    backend_free(b);
    struct backend_opts o = {.name = "cpu", .n_ctx = 100000};
    struct backend *x = NULL;
    assert_int_equal(backend_open(&o, mdl, &x, err), AX_EINVAL);
    assert_null(x);
}

static void open_enomem(void **state)
{
    (void)state;
    struct backend_opts o = {.name = "cpu", .n_threads = 2, .n_slots = 1, .n_ctx = 32,
                             .quant = "q8"};
    char err[AX_ERRLEN];
    for (long n = 0;; n++) {
        struct backend *b = NULL;
        ax_mem_fail_after(n);
        enum ax_err e = backend_open(&o, mdl, &b, err);
        ax_mem_fail_after(-1);
        if (e == AX_OK) {
            backend_free(b);
            assert_true(n > 10);
            break;
        }
        assert_int_equal(e, AX_ENOMEM);
        assert_null(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(batch_bf16),
        cmocka_unit_test(batch_q8),
        cmocka_unit_test(batch_q4),
        cmocka_unit_test(long_prefill_equals_chunks),
        cmocka_unit_test(rollback),
        cmocka_unit_test(bad_calls),
        cmocka_unit_test(open_enomem),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
