/* buf.h - a growable byte buffer with a ceiling set at creation.
 *
 * Crossing the ceiling is AX_ETOOBIG, never a silent truncation. The data
 * is always NUL-terminated (the NUL is not counted in len). */
#ifndef AX_UTIL_BUF_H
#define AX_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "util/err.h"

struct ax_buf {
    char *data;  /* NULL until the first append */
    size_t len;  /* bytes used, excluding the terminating NUL */
    size_t cap;  /* bytes allocated */
    size_t max;  /* ceiling on len */
};

void ax_buf_init(struct ax_buf *b, size_t max);
void ax_buf_free(struct ax_buf *b);
void ax_buf_reset(struct ax_buf *b); /* len = 0, keeps the memory */
enum ax_err ax_buf_reserve(struct ax_buf *b, size_t extra);
enum ax_err ax_buf_append(struct ax_buf *b, const void *p, size_t n);
enum ax_err ax_buf_puts(struct ax_buf *b, const char *s);
enum ax_err ax_buf_putc(struct ax_buf *b, char c);
enum ax_err ax_buf_printf(struct ax_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
enum ax_err ax_buf_vprintf(struct ax_buf *b, const char *fmt, va_list ap);
/* Hands the data to the caller (caller frees with ax_free) and resets b. */
char *ax_buf_steal(struct ax_buf *b);

#endif
