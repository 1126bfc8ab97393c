/* pool.c - persistent worker threads with a generation counter.
 *
 * pool_run bumps `gen`; workers waiting for a new generation spin on it
 * for a short while (a forward pass issues jobs back to back, so a
 * sleeping worker would cost a futex wake per job) and then sleep on
 * `wake`. Each worker decrements `pending` when done; the caller waits
 * for it to reach zero the same way (spin, then `done`). */
#include "backend/cpu/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include "util/mem.h"

/* Iterations of polling before sleeping: tens of microseconds, enough to
 * cover the gap between two jobs of one forward pass. */
#define SPIN_ITERS 20000

struct pool;

struct worker {
    struct pool *p;
    int ith;
    pthread_t th;
};

struct pool {
    int n;
    struct worker *w; /* n - 1 workers; thread 0 is the caller */
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    atomic_uint gen;
    atomic_int pending;
    atomic_int stop;
    pool_fn fn;
    void *ctx;
    int n_started;
};

static void cpu_relax(void) { sched_yield(); }

static int spin_until_gen(struct pool *p, unsigned seen)
{
    for (int i = 0; i < SPIN_ITERS; i++) {
        if (atomic_load_explicit(&p->gen, memory_order_acquire) != seen ||
            atomic_load(&p->stop))
            return 1;
        if ((i & 63) == 63)
            cpu_relax();
    }
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct pool *p = w->p;
    unsigned seen = 0;
    for (;;) {
        if (!spin_until_gen(p, seen)) {
            pthread_mutex_lock(&p->mu);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        p->fn(p->ctx, w->ith, p->n);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_broadcast(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
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
    pthread_cond_init(&p->done, NULL);
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
            return ax_fail(err, AX_EBACKEND, "cannot start worker thread %d of %d", i,
                           n_threads);
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
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    ax_free(p->w);
    ax_free(p);
}

int pool_threads(const struct pool *p) { return p->n; }

void pool_run(struct pool *p, pool_fn fn, void *ctx)
{
    if (p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->pending, p->n - 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->n);
    for (int i = 0; i < SPIN_ITERS; i++) {
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0)
            return;
        if ((i & 63) == 63)
            cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->pending) != 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
