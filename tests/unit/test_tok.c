/* test_tok.c - src/tok/: the splitter, encode and decode on hand-picked cases
 * whose expected results come from HF tokenizers (tests/data/tok-unit-expect.json,
 * written by tools/gen-tok-unit-expect.js); the stream decoder against
 * tok_decode on every short sequence of tricky tokens; loader errors and
 * allocation failures on small synthetic tokenizer.json files; two threads
 * encoding at once. Needs build/tokenizer-qwen3/tokenizer.json (`make`); run
 * from the repo root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>

#include "tok/tok.h"
#include "tok/tok_int.h"
#include "util/mem.h"

#define QWEN3 "build/tokenizer-qwen3/tokenizer.json"
#define EXPECT "tests/data/tok-unit-expect.json"

static struct tok *qwen;
static json_t *expect;

static int setup(void **state)
{
    (void)state;
    char err[AX_ERRLEN];
    json_error_t je;
    if (tok_load(QWEN3, &qwen, err) != AX_OK)
        qwen = NULL; /* tests that need it skip */
    expect = json_load_file(EXPECT, JSON_ALLOW_NUL, &je);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tok_free(qwen);
    json_decref(expect);
    return 0;
}

static void need_real(void)
{
    if (!qwen || !expect)
        skip();
}

/* ---- splitter ------------------------------------------------------ */

static void split_matches_hf(void **state)
{
    (void)state;
    need_real();
    json_t *cases = json_object_get(expect, "split"), *c;
    size_t i;
    assert_true(json_array_size(cases) > 40);
    json_array_foreach(cases, i, c)
    {
        const char *s = json_string_value(json_array_get(c, 0));
        size_t n = json_string_length(json_array_get(c, 0)), pos = 0, k = 0;
        json_t *pieces = json_array_get(c, 1);
        while (pos < n) {
            size_t l = tok_split_next(qwen, (const uint8_t *)s, pos, n);
            json_t *want = json_array_get(pieces, k++);
            if (!want || json_string_length(want) != l ||
                memcmp(json_string_value(want), s + pos, l))
                fail_msg("case %zu '%s': piece %zu is '%.*s', HF says '%s'", i, s, k - 1, (int)l,
                         s + pos, want ? json_string_value(want) : "(none)");
            pos += l;
        }
        assert_int_equal(k, json_array_size(pieces));
    }
}

/* ---- encode / decode ------------------------------------------------ */

static void encode_matches_hf(void **state)
{
    (void)state;
    need_real();
    json_t *cases = json_object_get(expect, "encode"), *c;
    size_t i;
    char err[AX_ERRLEN];
    json_array_foreach(cases, i, c)
    {
        json_t *text = json_array_get(c, 0), *ids = json_array_get(c, 1);
        size_t n = json_string_length(text), cap = tok_max_ids(n), got = 0;
        int32_t *out = ax_mallocarray(cap, sizeof *out);
        assert_non_null(out);
        assert_int_equal(tok_encode_cap(qwen, json_string_value(text), n, out, cap, &got, err),
                         AX_OK);
        assert_int_equal(got, json_array_size(ids));
        for (size_t k = 0; k < got; k++)
            assert_int_equal(out[k], json_integer_value(json_array_get(ids, k)));
        ax_free(out);
    }
}

static void decode_matches_hf(void **state)
{
    (void)state;
    need_real();
    json_t *cases = json_object_get(expect, "decode"), *c;
    size_t i;
    char err[AX_ERRLEN];
    json_array_foreach(cases, i, c)
    {
        json_t *ids = json_array_get(c, 0);
        int32_t buf[64];
        size_t n = json_array_size(ids);
        assert_true(n <= 64);
        for (size_t k = 0; k < n; k++)
            buf[k] = (int32_t)json_integer_value(json_array_get(ids, k));
        struct ax_buf out;
        ax_buf_init(&out, 1 << 20);
        assert_int_equal(tok_decode(qwen, buf, n, json_is_true(json_array_get(c, 1)), &out, err),
                         AX_OK);
        json_t *want = json_array_get(c, 2);
        assert_int_equal(out.len, json_string_length(want));
        assert_memory_equal(out.data ? out.data : "", json_string_value(want), out.len);
        ax_buf_free(&out);
    }
}

static int valid_utf8(const char *s, size_t n)
{
    struct ax_buf b;
    ax_buf_init(&b, n * 3 + 16);
    size_t used = 0;
    tok_utf8_lossy((const uint8_t *)s, n, 1, &b, &used);
    int same = b.len == n && (n == 0 || !memcmp(b.data, s, n));
    ax_buf_free(&b);
    return same;
}

/* Every sequence of up to 4 tokens from a tricky set: the stream emits only
 * complete UTF-8 and its concatenation is byte-identical to tok_decode. */
static void stream_equals_decode(void **state)
{
    (void)state;
    need_real();
    /* single bytes F0 9F 98 80 E2 8D C3 A9 FF C0 ED A0 'A', an emoji token,
     * a ZWJ-sequence piece, <|im_end|> (special), <think> (not special) */
    int32_t set[32];
    size_t ns = 0;
    static const uint8_t bytes[] = {0xF0, 0x9F, 0x98, 0x80, 0xE2, 0x8D, 0xC3,
                                    0xA9, 0xFF, 0xC0, 0xED, 0xA0, 'A'};
    for (size_t k = 0; k < sizeof bytes; k++)
        set[ns++] = qwen->byte_id[bytes[k]];
    char err[AX_ERRLEN];
    int32_t emo[8];
    size_t ne = 0;
    assert_int_equal(tok_encode(qwen, "\xF0\x9F\x98\x80\xE2\x80\x8D", 7, emo, &ne, err), AX_OK);
    for (size_t k = 0; k < ne; k++)
        set[ns++] = emo[k];
    set[ns++] = 151645;
    set[ns++] = 151667;
    size_t total = 0;
    for (int skip = 0; skip <= 1; skip++)
        for (size_t len = 1; len <= 4; len++) {
            size_t count = 1;
            for (size_t k = 0; k < len; k++)
                count *= ns;
            for (size_t code = 0; code < count; code++) {
                int32_t ids[4];
                size_t c = code;
                for (size_t k = 0; k < len; k++, c /= ns)
                    ids[k] = set[c % ns];
                struct ax_buf whole, streamed, piece;
                ax_buf_init(&whole, 4096);
                ax_buf_init(&streamed, 4096);
                ax_buf_init(&piece, 4096);
                assert_int_equal(tok_decode(qwen, ids, len, skip, &whole, err), AX_OK);
                struct tok_stream s;
                tok_stream_init(&s, qwen, skip);
                for (size_t k = 0; k <= len; k++) {
                    ax_buf_reset(&piece);
                    if (k < len)
                        assert_int_equal(tok_stream_push(&s, ids[k], &piece, err), AX_OK);
                    else
                        assert_int_equal(tok_stream_flush(&s, &piece, err), AX_OK);
                    assert_true(valid_utf8(piece.data, piece.len));
                    assert_int_equal(
                        ax_buf_append(&streamed, piece.data ? piece.data : "", piece.len), AX_OK);
                }
                assert_int_equal(streamed.len, whole.len);
                assert_memory_equal(streamed.data ? streamed.data : "",
                                    whole.data ? whole.data : "", whole.len);
                ax_buf_free(&whole);
                ax_buf_free(&streamed);
                ax_buf_free(&piece);
                total++;
            }
        }
    assert_true(total > 10000);
}

static void encode_errors(void **state)
{
    (void)state;
    need_real();
    char err[AX_ERRLEN];
    int32_t out[64];
    size_t n;
    assert_int_equal(tok_encode(qwen, "ab\xC3", 3, out, &n, err), AX_EUTF8);
    assert_int_equal(tok_encode(qwen, "\xED\xA0\x80", 3, out, &n, err), AX_EUTF8); /* surrogate */
    assert_int_equal(tok_encode(qwen, "\xC0\xAF", 2, out, &n, err), AX_EUTF8);     /* overlong */
    assert_int_equal(tok_encode(qwen, "\xF4\x90\x80\x80", 4, out, &n, err), AX_EUTF8);
    /* a capacity below the number of ids is an error, never an overrun */
    assert_int_equal(tok_encode_cap(qwen, "a b c d", 7, out, 3, &n, err), AX_ETOOBIG);
    assert_int_equal(tok_encode(qwen, "", 0, out, &n, err), AX_OK);
    assert_int_equal(n, 0);
    assert_int_equal(tok_vocab_size(qwen), 151669);
    assert_int_equal(tok_id(qwen, "<|im_end|>"), 151645);
    assert_int_equal(tok_id(qwen, "Hello"), 9707);
    assert_int_equal(tok_id(qwen, "no-such-token-xyz"), -1);
    assert_true(tok_is_special(qwen, 151645));
    assert_false(tok_is_special(qwen, 151667)); /* <think> survives skip_special */
    struct ax_buf b;
    ax_buf_init(&b, 100);
    int32_t bad = 151669;
    assert_int_equal(tok_decode(qwen, &bad, 1, 0, &b, err), AX_ERANGE);
    bad = -1;
    assert_int_equal(tok_decode(qwen, &bad, 1, 0, &b, err), AX_ERANGE);
    ax_buf_free(&b);
}

/* ---- threads ------------------------------------------------------- */

struct job {
    const char *text;
    int32_t ids[4096];
    size_t n;
    enum ax_err e;
};

static void *encode_job(void *p)
{
    struct job *j = p;
    char err[AX_ERRLEN];
    for (int rep = 0; rep < 20 && j->e == AX_OK; rep++)
        j->e = tok_encode(qwen, j->text, strlen(j->text), j->ids, &j->n, err);
    return NULL;
}

static void two_threads_agree(void **state)
{
    (void)state;
    need_real();
    static struct job a, b;
    const char *text = "The quick brown fox's jumps; 数据 und Übermäßig 😀 supercalifragilistic "
                       "<|im_start|>tokens tokens tokenization internationalization";
    a.text = b.text = text;
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, encode_job, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, encode_job, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.e, AX_OK);
    assert_int_equal(b.e, AX_OK);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.ids, b.ids, a.n * sizeof a.ids[0]);
}

/* ---- loader on synthetic files --------------------------------------- */

#define RE                                                                                         \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| "              \
    "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"
#define PRE                                                                                        \
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","             \
    "\"pattern\":{\"Regex\":\"" RE "\"},\"behavior\":\"Isolated\",\"invert\":false},"              \
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":false,"                   \
    "\"use_regex\":false}]},"
#define TAIL                                                                                       \
    "\"normalizer\":{\"type\":\"NFC\"},\"decoder\":{\"type\":\"ByteLevel\"},"                      \
    "\"added_tokens\":[{\"id\":7,\"content\":\"<x>\",\"special\":true,\"normalized\":false}]}"

static const char small[] =
    "{\"version\":\"1.0\"," PRE
    "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"byte_fallback\":false,"
    "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"\\u0120\":3,\"\\u0120ab\":4,\"c\":5,\"abc\":6},"
    "\"merges\":[\"a b\",[\"\\u0120\",\"ab\"],\"ab c\"]}," TAIL;

static void small_tokenizer(void **state)
{
    (void)state;
    struct tok *t = NULL;
    char err[AX_ERRLEN];
    assert_int_equal(tok_load_buf(small, sizeof small - 1, "small.json", &t, err), AX_OK);
    int32_t out[32];
    size_t n;
    assert_int_equal(tok_encode(t, "ab abc<x>ba", 11, out, &n, err), AX_OK);
    /* "ab" " ab"+"c"? no: pieces "ab", " abc", "<x>", "ba"; " abc" = Ġab c (Ġab first) */
    int32_t want[] = {2, 4, 5, 7, 1, 0};
    assert_int_equal(n, 6);
    assert_memory_equal(out, want, sizeof want);
    /* bytes without a token are dropped, as HF does without an unk token */
    assert_int_equal(tok_encode(t, "zz", 2, out, &n, err), AX_OK);
    assert_int_equal(n, 0);
    tok_free(t);
}

/* "a b" merges whose tokens hold brackets or quotes, and ids out of order */
static void odd_merges(void **state)
{
    (void)state;
    static const char j[] =
        "{" PRE "\"model\":{\"type\":\"BPE\",\"vocab\":{\"[[\":3,\"[\":0,\"\\\"\":1,"
        "\"\\\"[\":2,\"x\":4},\"merges\":[\"[ [\",\"\\\" [\"]}," TAIL;
    struct tok *t = NULL;
    char err[AX_ERRLEN];
    assert_int_equal(tok_load_buf(j, sizeof j - 1, "odd.json", &t, err), AX_OK);
    int32_t out[8];
    size_t n;
    assert_int_equal(tok_encode(t, "[[\"[", 4, out, &n, err), AX_OK);
    int32_t want[] = {3, 2}; /* "[[" and "\"[" */
    assert_int_equal(n, 2);
    assert_memory_equal(out, want, sizeof want);
    tok_free(t);
}

/* no added_tokens at all (the fuzzer found qsort(NULL, 0) here) */
static void no_added_tokens(void **state)
{
    (void)state;
    static const char j[] = "{" PRE "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,"
                            "\"b\":1,\"ab\":2},\"merges\":[\"a b\"]},"
                            "\"decoder\":{\"type\":\"ByteLevel\"}}";
    struct tok *t = NULL;
    char err[AX_ERRLEN];
    assert_int_equal(tok_load_buf(j, sizeof j - 1, "plain.json", &t, err), AX_OK);
    int32_t out[8];
    size_t n;
    assert_int_equal(tok_encode(t, "<ab>", 4, out, &n, err), AX_OK);
    assert_int_equal(n, 1); /* only "ab" has tokens; '<' and '>' are dropped */
    assert_int_equal(out[0], 2);
    tok_free(t);
}

static void load_errors(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        enum ax_err want;
    } cases[] = {
        {"", AX_EFORMAT},
        {"[]", AX_EFORMAT},
        {"{}", AX_EFORMAT},
        {"{\"model\":{\"type\":\"BPE\"}", AX_EFORMAT},
        {"version https://git-lfs.github.com/spec/v1\noid x", AX_ELFS},
        {"{" PRE "\"model\":{\"type\":\"Unigram\",\"vocab\":[]}," TAIL, AX_EUNSUPPORTED},
        {"{" PRE "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a q\"]}," TAIL,
         AX_EFORMAT},
        {"{" PRE "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}," TAIL,
         AX_EFORMAT},
        {"{" PRE "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a\"]}," TAIL,
         AX_EFORMAT},
        {"{" PRE "\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{\"a\":0},"
         "\"merges\":[]}," TAIL,
         AX_EUNSUPPORTED},
        {"{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":"
         "{\"a\":0},\"merges\":[]}," TAIL,
         AX_EUNSUPPORTED},
        {"{" PRE "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
         "\"normalizer\":{\"type\":\"NFKC\"},\"decoder\":{\"type\":\"ByteLevel\"}}",
         AX_EUNSUPPORTED},
        {"{" PRE "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
         "\"decoder\":{\"type\":\"ByteLevel\"},\"added_tokens\":[{\"id\":1,\"content\":\"x\","
         "\"lstrip\":true}]}",
         AX_EUNSUPPORTED},
        {"{" PRE "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,},\"merges\":[]}," TAIL,
         AX_EFORMAT},
        {"{" PRE "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\\ud800\":0},\"merges\":[]}," TAIL,
         AX_EFORMAT},
        {"{\"model\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
         "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
         AX_EFORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tok *t = NULL;
        char err[AX_ERRLEN] = "";
        enum ax_err e = tok_load_buf(cases[i].json, strlen(cases[i].json), "x.json", &t, err);
        if (e != cases[i].want)
            fail_msg("case %zu: got %d (%s), want %d", i, e, err, cases[i].want);
        assert_null(t);
        assert_true(strstr(err, "x.json") != NULL);
    }
}

/* Failing each allocation of a load in turn: a clean AX_ENOMEM, no leaks. */
static void load_enomem(void **state)
{
    (void)state;
    int ok = 0;
    for (long n = 0; n < 200 && !ok; n++) {
        struct tok *t = NULL;
        char err[AX_ERRLEN];
        ax_mem_fail_after(n);
        enum ax_err e = tok_load_buf(small, sizeof small - 1, "small.json", &t, err);
        ax_mem_fail_after(-1);
        if (e == AX_OK) {
            ok = 1;
            tok_free(t);
        } else {
            assert_int_equal(e, AX_ENOMEM);
            assert_null(t);
        }
    }
    assert_true(ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_matches_hf),  cmocka_unit_test(encode_matches_hf),
        cmocka_unit_test(decode_matches_hf), cmocka_unit_test(stream_equals_decode),
        cmocka_unit_test(encode_errors),     cmocka_unit_test(two_threads_agree),
        cmocka_unit_test(small_tokenizer),   cmocka_unit_test(odd_merges),
        cmocka_unit_test(no_added_tokens),   cmocka_unit_test(load_errors),
        cmocka_unit_test(load_enomem),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
