/* test_cpu.c - the CPU backend's kernels and thread pool: the scalar
 * references against double sums and IEEE facts, every SIMD variant this
 * CPU supports against the references (kern_checks.h), and the pool
 * running every job on every thread exactly once. The forward pass is
 * tested end to end against the numpy reference (suite cpu-reference). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <cmocka.h>

#include "backend/cpu/pool.h"
#include "kern_checks.h"

static void reference_kernels(void **state)
{
    (void)state;
    assert_int_equal(kc_reference(), 0);
}

static void simd_variants(void **state)
{
    (void)state;
    struct kern_table v[4];
    int n = kern_arch_variants(v, 4);
    for (int i = 0; i < n; i++) {
        fprintf(stderr, "checking variant %s\n", v[i].name);
        assert_int_equal(kc_variant(&v[i]), 0);
    }
    /* the scalar table checks itself trivially; the chosen table must be
     * one of the variants (or the reference) */
    struct kern_table t;
    kern_table_init_ref(&t);
    kern_arch_init(&t);
    assert_non_null(t.name);
    assert_int_equal(kc_variant(&t), 0);
}

struct pool_probe {
    atomic_int hits[8];
    atomic_int total;
};

static void probe_job(void *ctx, int ith, int nth)
{
    struct pool_probe *p = ctx;
    assert_true(ith >= 0 && ith < nth && nth <= 8);
    atomic_fetch_add(&p->hits[ith], 1);
    atomic_fetch_add(&p->total, 1);
}

static void pool_runs_every_thread(void **state)
{
    (void)state;
    char err[AX_ERRLEN];
    for (int nt = 1; nt <= 4; nt++) {
        struct pool *p;
        assert_int_equal(pool_create(nt, &p, err), AX_OK);
        assert_int_equal(pool_threads(p), nt);
        struct pool_probe pr = {0};
        for (int i = 0; i < 500; i++)
            pool_run(p, probe_job, &pr);
        for (int i = 0; i < nt; i++)
            assert_int_equal(atomic_load(&pr.hits[i]), 500);
        assert_int_equal(atomic_load(&pr.total), 500 * nt);
        pool_free(p);
    }
    struct pool *p;
    assert_int_equal(pool_create(0, &p, err), AX_EINVAL);
    pool_free(NULL);
}

static void pool_create_enomem(void **state)
{
    (void)state;
    char err[AX_ERRLEN];
    for (long n = 0; n < 3; n++) {
        struct pool *p = NULL;
        ax_mem_fail_after(n);
        enum ax_err e = pool_create(3, &p, err);
        ax_mem_fail_after(-1);
        if (e == AX_OK)
            pool_free(p);
        else
            assert_int_equal(e, AX_ENOMEM);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reference_kernels),
        cmocka_unit_test(simd_variants),
        cmocka_unit_test(pool_runs_every_thread),
        cmocka_unit_test(pool_create_enomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
