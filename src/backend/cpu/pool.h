/* pool.h - a persistent pool of worker threads for the CPU backend.
 *
 * Threads are created once (pool_create) and reused for every job. A job
 * is n independent items; every thread (the caller is thread 0) claims
 * items one at a time until none are left, and pool_for returns when all
 * items are done. A worker that is not scheduled claims nothing, so the
 * caller never waits for an idle thread - only for items in progress;
 * this matters when other processes share the cores. Waiting spins
 * briefly, then sleeps on a condition variable: an idle pool costs no
 * CPU. Nothing is allocated per job. Items must not call pool_for. */
#ifndef AX_BACKEND_CPU_POOL_H
#define AX_BACKEND_CPU_POOL_H

#include "util/err.h"

#define POOL_MAX_ITEMS ((1 << 20) - 1)

struct pool;

/* One item; ith is the running thread (0..threads-1), for per-thread
 * scratch. */
typedef void (*pool_fn)(void *ctx, int item, int ith);

/* n_threads in 1..256 (1 = no workers; items run on the caller). */
enum ax_err pool_create(int n_threads, struct pool **out, char *err);
void pool_free(struct pool *p);
int pool_threads(const struct pool *p);
/* Runs fn(ctx, i, ith) once for every i in [0, n), n <= POOL_MAX_ITEMS,
 * concurrently; returns when all are done. */
void pool_for(struct pool *p, int n, pool_fn fn, void *ctx);

/* Number of online CPUs (at least 1). */
int pool_cpu_count(void);

#endif
