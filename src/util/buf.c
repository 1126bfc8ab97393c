/* buf.c - growable byte buffer with a ceiling. */
#include "util/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util/mem.h"

void ax_buf_init(struct ax_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void ax_buf_free(struct ax_buf *b)
{
    if (!b)
        return;
    ax_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void ax_buf_reset(struct ax_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

enum ax_err ax_buf_reserve(struct ax_buf *b, size_t extra)
{
    size_t need;
    if (ax_add_overflow(b->len, extra, &need) || need > b->max)
        return AX_ETOOBIG;
    if (need + 1 <= b->cap)
        return AX_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need + 1)
        cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
    char *p = ax_realloc(b->data, cap);
    if (!p)
        return AX_ENOMEM;
    b->data = p;
    b->cap = cap;
    return AX_OK;
}

enum ax_err ax_buf_append(struct ax_buf *b, const void *p, size_t n)
{
    enum ax_err e = ax_buf_reserve(b, n);
    if (e)
        return e;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return AX_OK;
}

enum ax_err ax_buf_puts(struct ax_buf *b, const char *s)
{
    return ax_buf_append(b, s, strlen(s));
}

enum ax_err ax_buf_putc(struct ax_buf *b, char c) { return ax_buf_append(b, &c, 1); }

enum ax_err ax_buf_vprintf(struct ax_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return AX_EINVAL;
    enum ax_err e = ax_buf_reserve(b, (size_t)n);
    if (e)
        return e;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return AX_OK;
}

enum ax_err ax_buf_printf(struct ax_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum ax_err e = ax_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return e;
}

char *ax_buf_steal(struct ax_buf *b)
{
    char *p = b->data;
    if (!p)
        p = ax_strdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
