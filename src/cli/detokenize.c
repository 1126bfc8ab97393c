/* detokenize.c - `axserve detokenize -m DIR [--skip-special] [--batch]`: a
 * JSON array of token ids on stdin -> the text on stdout (exact bytes, no
 * newline added; invalid UTF-8 becomes U+FFFD as in HF). With --batch, a
 * JSON array of id arrays -> a JSON array of strings. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/tok_common.h"
#include "util/buf.h"
#include "util/mem.h"

static const char usage[] =
    "usage: axserve detokenize -m DIR [--skip-special] [--batch]\n"
    "  Reads a JSON array of token ids on stdin and prints the text (no newline added).\n"
    "  --skip-special  drop tokens marked special (e.g. <|im_end|>; not <think>)\n"
    "  --batch         stdin is a JSON array of id arrays; prints a JSON array of strings\n";

/* Decodes one JSON array of ids and appends the text to out. */
static int decode_one(const struct tok *t, json_t *a, int skip, struct ax_buf *out, size_t idx)
{
    char err[AX_ERRLEN];
    char where[64] = "";
    if (idx != (size_t)-1)
        snprintf(where, sizeof where, "array %zu: ", idx);
    if (!json_is_array(a)) {
        fprintf(stderr, "axserve detokenize: %sexpected a JSON array of token ids\n", where);
        return 1;
    }
    struct tok_stream s;
    tok_stream_init(&s, t, skip);
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *v = json_array_get(a, i);
        json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
        if (!json_is_integer(v) || id < 0 || id >= tok_vocab_size(t)) {
            fprintf(stderr, "axserve detokenize: %selement %zu is not a token id (integer 0..%d)\n",
                    where, i, tok_vocab_size(t) - 1);
            return 1;
        }
        if (tok_stream_push(&s, (int32_t)id, out, err) != AX_OK) {
            fprintf(stderr, "axserve detokenize: %selement %zu: %s\n", where, i, err);
            return 1;
        }
    }
    if (tok_stream_flush(&s, out, err) != AX_OK) {
        fprintf(stderr, "axserve detokenize: %s%s\n", where, err);
        return 1;
    }
    return 0;
}

static int batch(const struct tok *t, json_t *a, int skip, struct ax_buf *out)
{
    if (!json_is_array(a)) {
        fprintf(stderr, "axserve detokenize --batch: stdin must be a JSON array of id arrays\n");
        return 1;
    }
    json_t *res = json_array();
    struct ax_buf one;
    ax_buf_init(&one, (size_t)1 << 32);
    int rc = !res;
    for (size_t i = 0; i < json_array_size(a) && !rc; i++) {
        ax_buf_reset(&one);
        rc = decode_one(t, json_array_get(a, i), skip, &one, i);
        if (!rc && json_array_append_new(res, json_stringn(one.data ? one.data : "", one.len)))
            rc = 1;
    }
    ax_buf_free(&one);
    char *s = rc ? NULL : json_dumps(res, JSON_COMPACT);
    if (!rc && (!s || ax_buf_puts(out, s) != AX_OK || ax_buf_putc(out, '\n') != AX_OK))
        rc = 1;
    free(s); /* jansson's allocation */
    json_decref(res);
    return rc;
}

int cli_detokenize(int argc, char **argv)
{
    const char *dir = NULL;
    int skip = 0, is_batch = 0;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--skip-special"))
            skip = 1;
        else if (!strcmp(argv[i], "--batch"))
            is_batch = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "axserve detokenize: unknown argument '%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    if (!dir) {
        fputs(usage, stderr);
        return 2;
    }
    struct tok *t = cli_tok_open("detokenize", dir);
    if (!t)
        return 1;
    size_t len = 0;
    char *in = cli_read_stdin("detokenize", &len);
    int rc = !in;
    json_error_t je;
    json_t *a = in ? json_loadb(in, len, 0, &je) : NULL;
    if (in && !a) {
        fprintf(stderr, "axserve detokenize: stdin is not valid JSON: %s (line %d)\n", je.text,
                je.line);
        rc = 1;
    }
    struct ax_buf out;
    ax_buf_init(&out, (size_t)1 << 34);
    if (!rc)
        rc = is_batch ? batch(t, a, skip, &out) : decode_one(t, a, skip, &out, (size_t)-1);
    if (!rc)
        rc = cli_write_all("detokenize", out.data, out.len);
    ax_buf_free(&out);
    json_decref(a);
    ax_free(in);
    tok_free(t);
    return rc;
}
