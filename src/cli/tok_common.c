/* tok_common.c - tokenizer lookup in a model directory and stdin/stdout
 * plumbing for `axserve tokenize` / `detokenize`. */
#include "cli/tok_common.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/file.h"
#include "util/mem.h"

#define STDIN_MAX ((size_t)1 << 30)

struct tok *cli_tok_open(const char *cmd, const char *dir)
{
    static const char *const where[] = {"tokenizer.json", "tokenizer/tokenizer.json",
                                        "qwen3_tokenizer/tokenizer.json"};
    char path[4096], err[AX_ERRLEN];
    struct stat st;
    if (stat(dir, &st) != 0) {
        fprintf(stderr, "axserve %s: model directory %s: %s\n", cmd, dir, strerror(errno));
        return NULL;
    }
    const char *found = NULL;
    if (S_ISREG(st.st_mode))
        found = dir;
    for (size_t i = 0; !found && i < sizeof where / sizeof where[0]; i++)
        if (ax_path_join(path, sizeof path, dir, where[i]) == AX_OK && ax_file_exists(path))
            found = path;
    if (!found) {
        fprintf(stderr,
                "axserve %s: no tokenizer.json in %s (nor in its tokenizer/ or "
                "qwen3_tokenizer/ folder); download the model with `axserve pull`\n",
                cmd, dir);
        return NULL;
    }
    struct tok *t = NULL;
    if (tok_load(found, &t, err) != AX_OK) {
        fprintf(stderr, "axserve %s: %s\n", cmd, err);
        return NULL;
    }
    return t;
}

char *cli_read_stdin(const char *cmd, size_t *len)
{
    struct ax_buf b;
    ax_buf_init(&b, STDIN_MAX);
    char chunk[65536];
    for (;;) {
        ssize_t r = read(0, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fprintf(stderr, "axserve %s: reading stdin: %s\n", cmd, strerror(errno));
            ax_buf_free(&b);
            return NULL;
        }
        if (r == 0)
            break;
        enum ax_err e = ax_buf_append(&b, chunk, (size_t)r);
        if (e != AX_OK) {
            fprintf(stderr, "axserve %s: stdin: %s (limit %zu bytes)\n", cmd, ax_strerror(e),
                    STDIN_MAX);
            ax_buf_free(&b);
            return NULL;
        }
    }
    if (!b.data && ax_buf_append(&b, "", 0) != AX_OK) {
        fprintf(stderr, "axserve %s: out of memory\n", cmd);
        return NULL;
    }
    *len = b.len;
    return ax_buf_steal(&b);
}

int cli_write_all(const char *cmd, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, stdout) != n) {
        fprintf(stderr, "axserve %s: writing stdout: %s\n", cmd, strerror(errno));
        return 1;
    }
    return 0;
}
