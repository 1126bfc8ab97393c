/* pool.c - persistent worker threads that claim the items of a job.
 *
 * The current job is published in one 64-bit atomic word `claim`:
 *   bits 40..63 job generation, 20..39 item count n, 0..19 next item.
 * A thread claims item i by a compare-and-swap of the word from next=i to
 * next=i+1 (only while i < n); because the word also carries the
 * generation, a thread that read it long ago cannot claim an item of a
 * newer job by mistake. The job's fn/ctx are written before the word is
 * published (release) and read only after a successful claim (acquire),
 * and they are not rewritten until every item of the job is done, so a
 * successful claim always sees its own job.
 *
 * Sleeping: a worker that finds nothing to claim spins for a while and
 * then sleeps on `wake`, registering in `sleepers` under the mutex; the
 * caller publishes a job, then wakes sleepers (sequentially consistent
 * order: either the worker sees the new job or the caller sees it
 * sleeping). The caller waits for `done` == n the same way. */
#include "backend/cpu/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "util/mem.h"

/* Polls before sleeping: tens of microseconds, enough to cover the gap
 * between two jobs of one forward pass without a futex round trip. */
#define SPIN_ITERS 20000

#define NEXT_BITS 20
#define N_SHIFT 20
#define GEN_SHIFT 40
#define FIELD_MASK ((1ull << NEXT_BITS) - 1)

struct worker {
    struct pool *p;
    int ith;
    pthread_t th;
};

struct pool {
    int n;
    struct worker *w; /* n - 1 workers; thread 0 is the caller */
    int n_started;
    pthread_mutex_t mu;
    pthread_cond_t wake, done_cv;
    _Atomic uint64_t claim;
    atomic_int done;
    atomic_int sleepers;
    atomic_int caller_sleeping;
    atomic_int stop;
    uint64_t gen;
    pool_fn fn;
    void *ctx;
};

static int has_items(uint64_t c)
{
    return (c & FIELD_MASK) < ((c >> N_SHIFT) & FIELD_MASK);
}

/* Runs items of the published job until none are left to claim. */
static void run_items(struct pool *p, int ith)
{
    uint64_t c = atomic_load(&p->claim);
    while (has_items(c)) {
        if (!atomic_compare_exchange_weak(&p->claim, &c, c + 1))
            continue; /* c was reloaded */
        int n = (int)((c >> N_SHIFT) & FIELD_MASK);
        p->fn(p->ctx, (int)(c & FIELD_MASK), ith);
        if (atomic_fetch_add(&p->done, 1) + 1 == n && atomic_load(&p->caller_sleeping)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_broadcast(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
        c = atomic_load(&p->claim);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct pool *p = w->p;
    for (;;) {
        int spins = 0;
        while (!has_items(atomic_load(&p->claim)) && !atomic_load(&p->stop)) {
            if (++spins < SPIN_ITERS) {
                if ((spins & 63) == 0)
                    sched_yield();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (!has_items(atomic_load(&p->claim)) && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop))
            return NULL;
        run_items(p, w->ith);
    }
}

int pool_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

enum ax_err pool_create(int n_threads, struct pool **out, char *err)
{
    *out = NULL;
    if (n_threads < 1 || n_threads > 256)
        return ax_fail(err, AX_EINVAL, "thread count %d out of range 1..256", n_threads);
    struct pool *p = ax_calloc(1, sizeof *p);
    if (!p)
        return ax_fail(err, AX_ENOMEM, "out of memory creating the thread pool");
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    if (n_threads > 1) {
        p->w = ax_calloc((size_t)n_threads - 1, sizeof *p->w);
        if (!p->w) {
            pool_free(p);
            return ax_fail(err, AX_ENOMEM, "out of memory creating the thread pool");
        }
    }
    for (int i = 1; i < n_threads; i++) {
        struct worker *w = &p->w[i - 1];
        w->p = p;
        w->ith = i;
        if (pthread_create(&w->th, NULL, worker_main, w) != 0) {
            pool_free(p);
            return ax_fail(err, AX_EBACKEND, "cannot start worker thread %d of %d", i, n_threads);
        }
        p->n_started++;
    }
    *out = p;
    return AX_OK;
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_started; i++)
        pthread_join(p->w[i].th, NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done_cv);
    pthread_mutex_destroy(&p->mu);
    ax_free(p->w);
    ax_free(p);
}

int pool_threads(const struct pool *p)
{
    return p->n;
}

void pool_for(struct pool *p, int n, pool_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    /* one item: nothing to share, and no hand-off to pay (a decode step
     * has ~4 single-row steps per layer); past the limit: callers keep n
     * far below it */
    if (p->n == 1 || n == 1 || n > POOL_MAX_ITEMS) {
        for (int i = 0; i < n; i++)
            fn(ctx, i, 0);
        return;
    }
    /* the previous job is complete: nobody reads fn/ctx until the new
     * word is published */
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->done, 0);
    p->gen = (p->gen + 1) & ((1ull << (64 - GEN_SHIFT)) - 1);
    atomic_store(&p->claim, p->gen << GEN_SHIFT | (uint64_t)n << N_SHIFT);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    run_items(p, 0);
    for (int i = 0; i < SPIN_ITERS; i++) {
        if (atomic_load(&p->done) == n)
            return;
        if ((i & 63) == 63)
            sched_yield();
    }
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->caller_sleeping, 1);
    while (atomic_load(&p->done) != n)
        pthread_cond_wait(&p->done_cv, &p->mu);
    atomic_store(&p->caller_sleeping, 0);
    pthread_mutex_unlock(&p->mu);
}
