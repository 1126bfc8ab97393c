/* tok_common.c - tokenizer lookup in a model directory (through
 * model_open, which also rejects Git LFS pointers) and stdin/stdout plumbing
 * for `axserve tokenize` / `detokenize`. */
#include "cli/tok_common.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model.h"
#include "util/buf.h"
#include "util/file.h"
#include "util/mem.h"

#define STDIN_MAX ((size_t)1 << 30)

struct tok *cli_tok_open(const char *cmd, const char *dir)
{
    char err[AX_ERRLEN];
    struct stat st;
    struct model *m = NULL;
    const char *path = dir;
    if (stat(dir, &st) == 0 && S_ISREG(st.st_mode)) {
        if (model_check_not_lfs(dir, err) != AX_OK) {
            fprintf(stderr, "axserve %s: %s\n", cmd, err);
            return NULL;
        }
    } else {
        if (model_open(dir, &m, err) != AX_OK) {
            fprintf(stderr, "axserve %s: %s\n", cmd, err);
            return NULL;
        }
        if (model_need_tokenizer(m, err) != AX_OK) {
            fprintf(stderr, "axserve %s: %s\n", cmd, err);
            model_free(m);
            return NULL;
        }
        path = model_tokenizer_json(m);
    }
    struct tok *t = NULL;
    if (tok_load(path, &t, err) != AX_OK) {
        fprintf(stderr, "axserve %s: %s\n", cmd, err);
        t = NULL;
    }
    model_free(m);
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
