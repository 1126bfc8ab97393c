/* mem.c - allocation wrappers with an injectable failure point. */
#include "util/mem.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_after = -1;
static atomic_long alloc_count = 0;

static int should_fail(void)
{
    atomic_fetch_add(&alloc_count, 1);
    long n = atomic_load(&fail_after);
    if (n < 0)
        return 0;
    if (n == 0)
        return 1;
    atomic_fetch_sub(&fail_after, 1);
    return 0;
}

void ax_mem_fail_after(long n) { atomic_store(&fail_after, n); }
long ax_mem_count(void) { return atomic_load(&alloc_count); }

void *ax_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *ax_calloc(size_t count, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *ax_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void *ax_mallocarray(size_t count, size_t size)
{
    size_t n;
    if (ax_mul_overflow(count, size, &n))
        return NULL;
    return ax_malloc(n);
}

void *ax_reallocarray(void *p, size_t count, size_t size)
{
    size_t n;
    if (ax_mul_overflow(count, size, &n))
        return NULL;
    return ax_realloc(p, n);
}

char *ax_strndup(const char *s, size_t n)
{
    char *d = ax_malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *ax_strdup(const char *s) { return ax_strndup(s, strlen(s)); }

void ax_free(void *p) { free(p); }

int ax_mul_overflow(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

int ax_add_overflow(size_t a, size_t b, size_t *out)
{
    return __builtin_add_overflow(a, b, out);
}
