/* pool.h - a persistent pool of worker threads for the CPU backend.
 *
 * Threads are created once (pool_create) and reused for every job: a job
 * is one function run by all n threads at once (the caller's thread is
 * thread 0), and pool_run returns when all have finished. Waiting spins
 * briefly and then sleeps on a condition variable, so an idle pool costs
 * no CPU. No allocation happens per job. Jobs must not call pool_run. */
#ifndef AX_BACKEND_CPU_POOL_H
#define AX_BACKEND_CPU_POOL_H

#include "util/err.h"

struct pool;

typedef void (*pool_fn)(void *ctx, int ith, int nth);

/* n_threads >= 1 (1 = no workers; jobs run on the caller). */
enum ax_err pool_create(int n_threads, struct pool **out, char *err);
void pool_free(struct pool *p);
int pool_threads(const struct pool *p);
/* Runs fn(ctx, ith, nth) for ith in 0..nth-1, concurrently; returns when
 * all are done. */
void pool_run(struct pool *p, pool_fn fn, void *ctx);

/* Number of online CPUs (at least 1). */
int pool_cpu_count(void);

#endif
