/* tokenize.c - `axserve tokenize -m DIR [--batch]`: text on stdin (all the
 * bytes, exactly) -> JSON array of token ids on stdout. With --batch, stdin
 * is a JSON array of strings and the output a JSON array of id arrays.
 * No BOS or other special token is added (as HF with add_special_tokens
 * false). Output is compact JSON, one line. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/tok_common.h"
#include "util/buf.h"
#include "util/mem.h"

static const char usage[] =
    "usage: axserve tokenize -m DIR [--batch]\n"
    "  Reads UTF-8 text on stdin and prints its token ids as a JSON array.\n"
    "  DIR holds tokenizer.json (or a tokenizer/ subfolder); DIR may also be the file.\n"
    "  --batch  stdin is a JSON array of strings; prints a JSON array of id arrays\n";

/* Encodes one text and appends "[id,id,...]" to out; 0 or 1 (error printed). */
static int encode_one(const struct tok *t, const char *s, size_t n, struct ax_buf *out,
                      size_t index)
{
    char err[AX_ERRLEN];
    size_t cap = tok_max_ids(n), k = 0;
    int32_t *ids = ax_mallocarray(cap, sizeof *ids);
    if (!ids) {
        fprintf(stderr, "axserve tokenize: out of memory (%zu bytes of text)\n", n);
        return 1;
    }
    enum ax_err e = tok_encode_cap(t, s, n, ids, cap, &k, err);
    if (e != AX_OK) {
        if (index != (size_t)-1)
            fprintf(stderr, "axserve tokenize: text %zu: %s\n", index, err);
        else
            fprintf(stderr, "axserve tokenize: %s\n", err);
        ax_free(ids);
        return 1;
    }
    e = ax_buf_putc(out, '[');
    for (size_t i = 0; i < k && e == AX_OK; i++)
        e = ax_buf_printf(out, i ? ",%d" : "%d", (int)ids[i]);
    if (e == AX_OK)
        e = ax_buf_putc(out, ']');
    ax_free(ids);
    if (e != AX_OK) {
        fprintf(stderr, "axserve tokenize: output: %s\n", ax_strerror(e));
        return 1;
    }
    return 0;
}

static int batch(const struct tok *t, const char *in, size_t len, struct ax_buf *out)
{
    json_error_t je;
    json_t *a = json_loadb(in, len, JSON_ALLOW_NUL, &je);
    if (!json_is_array(a)) {
        if (a)
            fprintf(stderr, "axserve tokenize --batch: stdin must be a JSON array of strings\n");
        else
            fprintf(stderr, "axserve tokenize --batch: stdin is not valid JSON: %s (line %d)\n",
                    je.text, je.line);
        json_decref(a);
        return 1;
    }
    int rc = ax_buf_putc(out, '[') != AX_OK;
    for (size_t i = 0; i < json_array_size(a) && !rc; i++) {
        json_t *s = json_array_get(a, i);
        if (!json_is_string(s)) {
            fprintf(stderr, "axserve tokenize --batch: element %zu is not a string\n", i);
            rc = 1;
            break;
        }
        if (i && ax_buf_putc(out, ',') != AX_OK)
            rc = 1;
        rc = rc || encode_one(t, json_string_value(s), json_string_length(s), out, i);
    }
    rc = rc || ax_buf_putc(out, ']') != AX_OK;
    json_decref(a);
    return rc;
}

int cli_tokenize(int argc, char **argv)
{
    const char *dir = NULL;
    int is_batch = 0;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--batch"))
            is_batch = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "axserve tokenize: unknown argument '%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    if (!dir) {
        fputs(usage, stderr);
        return 2;
    }
    struct tok *t = cli_tok_open("tokenize", dir);
    if (!t)
        return 1;
    size_t len = 0;
    char *in = cli_read_stdin("tokenize", &len);
    struct ax_buf out;
    ax_buf_init(&out, (size_t)1 << 34);
    int rc = !in        ? 1
             : is_batch ? batch(t, in, len, &out)
                        : encode_one(t, in, len, &out, (size_t)-1);
    if (!rc && ax_buf_putc(&out, '\n') != AX_OK)
        rc = 1;
    if (!rc)
        rc = cli_write_all("tokenize", out.data, out.len);
    ax_buf_free(&out);
    ax_free(in);
    tok_free(t);
    return rc;
}
