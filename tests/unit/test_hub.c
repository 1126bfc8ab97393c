/* test_hub.c - hub/: the name checks that keep a hostile listing or a bad
 * repository argument from writing outside the destination directory.
 * Downloads themselves are tested against a fake hub in suites/hub.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "hub/hub.h"
#include "hub/sha256.h"

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

static void hex_of(const char *data, size_t n, size_t piece, char out[65])
{
    struct sha256 s;
    sha256_init(&s);
    for (size_t at = 0; at < n; at += piece)
        sha256_update(&s, data + at, n - at < piece ? n - at : piece);
    sha256_final_hex(&s, out);
}

/* Test vectors from FIPS 180-2 appendix B and the NIST examples. */
static void sha256_vectors(void **state)
{
    (void)state;
    char h[65];
    hex_of("", 0, 1, h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abc", 3, 1, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    for (size_t piece = 1; piece <= 64; piece++) {
        hex_of(m, strlen(m), piece, h);
        assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    }
    static char a[1000000];
    memset(a, 'a', sizeof a);
    hex_of(a, sizeof a, 777, h);
    assert_string_equal(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(repo_names),
        cmocka_unit_test(file_names),
        cmocka_unit_test(sha256_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
