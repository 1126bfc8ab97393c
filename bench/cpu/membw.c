/* membw.c - measures read bandwidth the way a decode step reads weights:
 * N threads each stream through their share of a buffer much larger than
 * the caches. Prints "threads GB/s" lines (best of several passes) for
 * 1..N threads. Used by bench_cpu.sh to compute the bandwidth bound. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/mem.h"

struct part {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
};

static void *reader(void *arg)
{
    struct part *w = arg;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i + 4 <= w->n; i += 4) {
        a += w->p[i];
        b += w->p[i + 1];
        c += w->p[i + 2];
        d += w->p[i + 3];
    }
    w->sum = a + b + c + d;
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int max_threads = argc > 1 ? atoi(argv[1]) : 2;
    size_t mb = argc > 2 ? (size_t)atol(argv[2]) : 1024;
    if (max_threads < 1 || max_threads > 64 || mb < 64) {
        fprintf(stderr, "usage: membw [THREADS] [MiB >= 64]\n");
        return 2;
    }
    size_t n = mb * 1048576 / 8;
    uint64_t *buf = ax_mallocarray(n, 8);
    if (!buf) {
        fprintf(stderr, "membw: cannot allocate %zu MiB\n", mb);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        buf[i] = i;
    uint64_t check = 0;
    for (int t = 1; t <= max_threads; t++) {
        double best = 0;
        for (int rep = 0; rep < 5; rep++) {
            pthread_t th[64];
            struct part w[64];
            double t0 = now();
            for (int i = 0; i < t; i++) {
                w[i] = (struct part){buf + n / t * i, n / t, 0};
                pthread_create(&th[i], NULL, reader, &w[i]);
            }
            for (int i = 0; i < t; i++) {
                pthread_join(th[i], NULL);
                check += w[i].sum;
            }
            double gbs = (double)(n / t * t) * 8 / (now() - t0) / 1e9;
            best = gbs > best ? gbs : best;
        }
        printf("%d %.2f\n", t, best);
    }
    ax_free(buf);
    return check == 42; /* keeps the sums alive */
}
