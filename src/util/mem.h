/* mem.h - every allocation in axserve goes through here, so tests can
 * fail the Nth allocation (ax_mem_fail_after) and check that each path
 * returns AX_ENOMEM cleanly and leaks nothing. */
#ifndef AX_UTIL_MEM_H
#define AX_UTIL_MEM_H

#include <stddef.h>

void *ax_malloc(size_t n);
void *ax_calloc(size_t count, size_t size);
void *ax_realloc(void *p, size_t n);
/* count*size with an overflow check: NULL if it overflows or fails. */
void *ax_mallocarray(size_t count, size_t size);
void *ax_reallocarray(void *p, size_t count, size_t size);
char *ax_strdup(const char *s);
char *ax_strndup(const char *s, size_t n);
void ax_free(void *p);

/* Test hook: after n more successful allocations, every allocation fails
 * until ax_mem_fail_after(-1). Counts are per process (atomic). */
void ax_mem_fail_after(long n);
/* Number of allocations since start (for allocation-budget tests). */
long ax_mem_count(void);

/* a*b and a+b that report overflow instead of wrapping. */
int ax_mul_overflow(size_t a, size_t b, size_t *out);
int ax_add_overflow(size_t a, size_t b, size_t *out);

#endif
