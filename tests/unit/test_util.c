/* test_util.c - util/: buffers with ceilings, allocation failure injection,
 * overflow checks, error strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"

static void buf_grows_until_ceiling(void **state)
{
    (void)state;
    struct ax_buf b;
    ax_buf_init(&b, 10);
    assert_int_equal(ax_buf_puts(&b, "hello"), AX_OK);
    assert_int_equal(ax_buf_printf(&b, "%d", 1234), AX_OK);
    assert_string_equal(b.data, "hello1234");
    assert_int_equal(ax_buf_puts(&b, "xy"), AX_ETOOBIG);
    assert_string_equal(b.data, "hello1234"); /* unchanged on failure */
    assert_int_equal(ax_buf_putc(&b, '!'), AX_OK);
    assert_int_equal(b.len, 10);
    ax_buf_free(&b);
}

static void buf_reports_enomem(void **state)
{
    (void)state;
    struct ax_buf b;
    ax_buf_init(&b, 1000);
    ax_mem_fail_after(0);
    assert_int_equal(ax_buf_puts(&b, "x"), AX_ENOMEM);
    ax_mem_fail_after(-1);
    assert_int_equal(ax_buf_puts(&b, "x"), AX_OK);
    ax_buf_free(&b);
}

static void overflow_checks(void **state)
{
    (void)state;
    size_t r;
    assert_true(ax_mul_overflow(SIZE_MAX / 2 + 1, 2, &r));
    assert_false(ax_mul_overflow(1000, 1000, &r));
    assert_int_equal(r, 1000000);
    assert_null(ax_mallocarray(SIZE_MAX / 4, 8));
}

static void every_code_has_a_message(void **state)
{
    (void)state;
    for (int e = AX_OK; e <= AX_ESHUTDOWN; e++)
        assert_string_not_equal(ax_strerror((enum ax_err)e), "unknown error");
    char msg[AX_ERRLEN];
    assert_int_equal(ax_fail(msg, AX_EIO, "file %s", "x"), AX_EIO);
    assert_string_equal(msg, "file x");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf_grows_until_ceiling),
        cmocka_unit_test(buf_reports_enomem),
        cmocka_unit_test(overflow_checks),
        cmocka_unit_test(every_code_has_a_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
