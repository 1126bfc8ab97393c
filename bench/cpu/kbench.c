/* kbench.c - compute throughput of each kernel variant's matrix products
 * on a cache-resident weight block (CPU time per call, so other load on
 * the machine matters less than for wall-clock benches). Prints GMAC/s
 * per variant, weight type and token count. Not a test. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "backend/cpu/kernels.h"
#include "util/mem.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int rows = 256, k = argc > 1 ? atoi(argv[1]) : 1024;
    struct kern_table v[5];
    kern_table_init_ref(&v[0]);
    v[0].name = "scalar";
    int nv = 1 + kern_arch_variants(v + 1, 4);
    float *row = ax_malloc(sizeof(float) * (size_t)k);
    static const int ns[] = {1, 16, 64};
    for (int qt = KQ_BF16; qt < KQ_COUNT; qt++) {
        if (qt == KQ_F16)
            continue;
        size_t rb = kq_row_bytes(qt, k), xs = ka_row_bytes(qt, k);
        uint8_t *w = ax_malloc(rb * rows), *x = ax_malloc(xs * 64);
        float *y = ax_malloc(sizeof(float) * rows * 64);
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < k; i++)
                row[i] = (float)rand() / RAND_MAX - 0.5f;
            if (qt == KQ_BF16)
                for (int i = 0; i < k; i++)
                    ((uint16_t *)(w + r * rb))[i] = kern_f32_to_bf16(row[i]);
            else
                kern_quant_row(qt, row, k, w + r * rb);
        }
        for (int t = 0; t < 64; t++) {
            for (int i = 0; i < k; i++)
                row[i] = (float)rand() / RAND_MAX - 0.5f;
            if (kq_is_quant(qt))
                kern_act_quantiser(&v[0], qt)(row, k, x + t * xs);
            else
                for (int i = 0; i < k; i++)
                    ((float *)(void *)(x + t * xs))[i] = row[i];
        }
        for (int vi = 1; vi < nv; vi++)
            for (int ni = 0; ni < 3; ni++) {
                struct kern_mm a = {w, rb, x, xs, y, rows, ns[ni], k};
                double t0 = cpu_s(), macs = 0;
                /* calls per clock read: reading the thread CPU clock is a
                 * system call, as long as a small product */
                int reps = 1 + (int)(4e6 / ((double)rows * k * ns[ni]));
                while (cpu_s() - t0 < 0.3) {
                    for (int i = 0; i < reps; i++)
                        v[vi].mm[qt](&a, 0, rows);
                    macs += (double)reps * rows * k * ns[ni];
                }
                printf("%-36s %-5s n=%-3d %7.1f GMAC/s\n", v[vi].name, kq_name(qt), ns[ni],
                       macs / (cpu_s() - t0) * 1e-9);
            }
        ax_free(w);
        ax_free(x);
        ax_free(y);
    }
    ax_free(row);
    return 0;
}
