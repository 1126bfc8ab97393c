/* test_cpu.c - the CPU backend's kernels and thread pool: the scalar
 * references against double sums and IEEE facts, every SIMD variant this
 * CPU supports against the references (kern_checks.h), and the pool
 * running every item of every job exactly once. The forward pass is
 * tested end to end against the numpy reference (suite cpu-reference). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
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
    atomic_int item[1000];
    atomic_int per_thread[8];
    int nth;
};

static void probe_item(void *ctx, int i, int ith)
{
    struct pool_probe *p = ctx;
    assert_true(i >= 0 && i < 1000);
    assert_true(ith >= 0 && ith < p->nth);
    atomic_fetch_add(&p->item[i], 1);
    atomic_fetch_add(&p->per_thread[ith], 1);
}

/* Every item of every job runs exactly once, on a valid thread index,
 * over many back-to-back jobs of varying size (the forward pass's
 * pattern), with 1 to 4 threads. */
static void pool_runs_every_item_once(void **state)
{
    (void)state;
    char err[AX_ERRLEN];
    static struct pool_probe pr;
    for (int nt = 1; nt <= 4; nt++) {
        struct pool *p;
        assert_int_equal(pool_create(nt, &p, err), AX_OK);
        assert_int_equal(pool_threads(p), nt);
        for (int rep = 0; rep < 300; rep++) {
            int n = (rep * 7) % 1000 + (rep % 3 == 0);
            memset(&pr, 0, sizeof pr);
            pr.nth = nt;
            pool_for(p, n, probe_item, &pr);
            int sum = 0;
            for (int i = 0; i < 1000; i++)
                assert_int_equal(atomic_load(&pr.item[i]), i < n ? 1 : 0);
            for (int i = 0; i < nt; i++)
                sum += atomic_load(&pr.per_thread[i]);
            assert_int_equal(sum, n);
        }
        pool_for(p, 0, probe_item, &pr); /* no items: returns at once */
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
        cmocka_unit_test(pool_runs_every_item_once),
        cmocka_unit_test(pool_create_enomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
