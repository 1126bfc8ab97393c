/* test_hub.c - hub/: the name checks that keep a hostile listing or a bad
 * repository argument from writing outside the destination directory.
 * Downloads themselves are tested against a fake hub in suites/hub.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hub/hub.h"

static void repo_names(void **state)
{
    (void)state;
    assert_true(hub_valid_repo("Qwen/Qwen3-0.6B"));
    assert_true(hub_valid_repo("AXERA-TECH/Qwen3-4B"));
    assert_true(hub_valid_repo("a_b/c.d"));
    const char *bad[] = {"Qwen3", "/x",    "x/",    "a/b/c", "../etc", "a/..",
                         "a/.",   "a b/c", "a/b?c", "a/b#c", "",       "a/%2e%2e"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (hub_valid_repo(bad[i]))
            fail_msg("accepted repo '%s'", bad[i]);
}

static void file_names(void **state)
{
    (void)state;
    const char *good[] = {"config.json",   "qwen3_tokenizer/tokenizer.json",
                          "read me.txt",   "a/b/c.bin",
                          "..a",           "a..b/c",
                          ".gitattributes"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!hub_safe_path(good[i]))
            fail_msg("rejected '%s'", good[i]);
    const char *bad[] = {"",     "/etc/passwd", "../x", "a/../../x", "a/..", "./a",
                         "a//b", "a/",          "a\\b", "a\nb",      "a/./b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (hub_safe_path(bad[i]))
            fail_msg("accepted '%s'", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(repo_names),
        cmocka_unit_test(file_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
