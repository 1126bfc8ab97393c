/* kbench.c - compute throughput of each kernel variant's matrix products
 * on a cache-resident weight block (CPU time per call, so other load on
 * the machine matters less than for wall-clock benches). Prints GMAC/s
 * per variant, weight type and token count. Not a test.
 *
 * `kbench prefill [threads] [tokens]` instead runs the bf16 products of
 * a Qwen3-0.6B-shaped layer the way the forward pass calls them (rows
 * in the pool's chunks; tokens in tiles of 16, or all at once from
 * activation panels or split panels where the variant has them), over several layers of
 * weights so they come from memory as in a real prefill. One thread
 * runs; threads only sets the chunk size. Only the variant the server
 * would pick is measured, in the pass's settings and some others. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/kernels.h"
#include "util/mem.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* one weight matrix of the layer: rows x k */
struct shape {
    const char *name;
    int rows, k;
};

static const struct shape layer[] = {{"q", 2048, 1024},   {"k", 1024, 1024},    {"v", 1024, 1024},
                                     {"o", 1024, 2048},   {"gate", 3072, 1024}, {"up", 3072, 1024},
                                     {"down", 1024, 3072}};
#define NSHAPE (int)(sizeof layer / sizeof layer[0])
#define NLAYER 4 /* 126 MB of weights: more than the last-level cache */
#define TILE 16  /* the forward pass's tokens per kernel call */
/* a safetensors file aligns tensors to 8 bytes only: rows 56 bytes past
 * a cache line, as in the test models */
#define WSKEW 56
#define REPS 7 /* passes; the best one counts */

/* The forward pass's split: chunks of about rows / (threads * per), in
 * multiples of mult rows. Without panels every token tile of a chunk is
 * one call; with them (a.xp) a chunk is one call over all tokens. */
static void mm_chunked(kern_mm_fn fn, struct kern_mm a, int rows, int threads, int per, int mult)
{
    int ch = rows / (threads * per);
    ch = ch < mult ? mult : (ch + mult - 1) / mult * mult;
    int n = a.n, tile = a.xp || a.sp ? n : TILE;
    for (int r0 = 0; r0 < rows; r0 += ch) {
        int r1 = r0 + ch < rows ? r0 + ch : rows;
        for (int t0 = 0; t0 < n; t0 += tile) {
            struct kern_mm s = a;
            s.n = n - t0 < tile ? n - t0 : tile;
            s.x = (const uint8_t *)a.x + (size_t)t0 * a.x_stride;
            s.y = a.y + (size_t)t0 * a.y_stride;
            fn(&s, r0, r1);
        }
    }
}

enum { MM_ROWS, MM_PANELS, MM_SPLIT };
struct prefill_mode {
    const char *name;
    int kind, per, mult;
};

/* where the activations go for mode kind: nothing, panels or split panels */
struct prefill_bufs {
    float *xp;
    uint8_t *sp, *wq;
    struct ks_row *rs[NLAYER][NSHAPE]; /* made once, as the pass makes them at load */
};

/* One pass per shape over all layers' weights in mode md; the best of
 * REPS passes counts. Panels are built once per matrix, as the pass
 * builds them once per input. */
static void prefill_mode(const struct kern_table *v, uint16_t *w[NLAYER][NSHAPE], const float *x,
                         float *y, const struct prefill_bufs *b, int n, int threads,
                         const struct prefill_mode *md)
{
    double best[NSHAPE], t_all = 0, m_all = 0;
    for (int s = 0; s < NSHAPE; s++)
        best[s] = 1e30;
    for (int rep = 0; rep < REPS; rep++)
        for (int s = 0; s < NSHAPE; s++) {
            const struct shape *sh = &layer[s];
            double t0 = cpu_s();
            for (int l = 0; l < NLAYER; l++) {
                struct kern_mm a = {(const uint8_t *)w[l][s] + WSKEW,
                                    2 * (size_t)sh->k,
                                    x,
                                    4 * (size_t)sh->k,
                                    y,
                                    (size_t)sh->rows,
                                    n,
                                    sh->k,
                                    NULL,
                                    NULL,
                                    NULL,
                                    NULL};
                kern_mm_fn fn = v->mm[KQ_BF16];
                if (md->kind == MM_PANELS) {
                    for (int t = 0; t < n; t += 16)
                        v->panel(x, a.x_stride, n, sh->k, t, b->xp);
                    a.xp = b->xp;
                    fn = v->mm_bf16_panel;
                } else if (md->kind == MM_SPLIT) {
                    for (int t = 0; t < n; t += 16)
                        v->split(x, a.x_stride, n, sh->k, t, b->sp);
                    a.sp = b->sp;
                    a.rs = b->rs[l][s];
                    a.wq = b->wq;
                    fn = v->mm_bf16_split;
                }
                mm_chunked(fn, a, sh->rows, threads, md->per, md->mult);
            }
            double dt = cpu_s() - t0;
            best[s] = dt < best[s] ? dt : best[s];
        }
    printf("%-36s bf16 prefill n=%d, %d threads' chunks, %s:", v->name, n, threads, md->name);
    for (int s = 0; s < NSHAPE; s++) {
        double macs = (double)layer[s].rows * layer[s].k * n * NLAYER;
        printf(" %s %.1f", layer[s].name, macs / best[s] * 1e-9);
        t_all += best[s];
        m_all += macs;
    }
    printf(" | all %.1f GMAC/s\n", m_all / t_all * 1e-9);
}

static int prefill(const struct kern_table *v, int nv, int threads, int n)
{
    /* the forward pass's settings first (cpu_forward.c mm_add), then
     * neighbours of them */
    static const struct prefill_mode modes[] = {
        {"split, 4 chunks/thread", MM_SPLIT, 4, 24},
        {"split, 2 chunks/thread", MM_SPLIT, 2, 24},
        {"mm, 4 chunks/thread", MM_ROWS, 4, 8},
        {"panels, 2 chunks/thread", MM_PANELS, 2, 24},
        {"panels, 4 chunks/thread", MM_PANELS, 4, 24},
        {"panels, 4 chunks/thread x8", MM_PANELS, 4, 8},
        {"panels, 1 chunk/thread", MM_PANELS, 1, 24},
        {"panels, 8 chunks/thread", MM_PANELS, 8, 24},
    };
    uint16_t *w[NLAYER][NSHAPE];
    float *x = ax_malloc(sizeof(float) * 3072 * (size_t)n),
          *y = ax_malloc(sizeof(float) * 3072 * (size_t)n);
    struct prefill_bufs b = {aligned_alloc(64, sizeof(float) * kp_floats(n, 3072)),
                             aligned_alloc(64, (ks_bytes(n, 3072) + 63) / 64 * 64),
                             aligned_alloc(64, ks_wq_bytes(3072)),
                             {{NULL}}};
    for (size_t i = 0; i < 3072 * (size_t)n; i++)
        x[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int l = 0; l < NLAYER; l++)
        for (int s = 0; s < NSHAPE; s++) {
            size_t cnt = (size_t)layer[s].rows * layer[s].k;
            w[l][s] = ax_malloc(2 * cnt + WSKEW);
            for (size_t i = 0; i < cnt; i++)
                w[l][s][i] = kern_f32_to_bf16((float)rand() / RAND_MAX - 0.5f);
            b.rs[l][s] = ax_malloc(sizeof(struct ks_row) * (size_t)layer[s].rows);
            if (v->split_rows)
                v->split_rows((const uint8_t *)w[l][s] + WSKEW, 2 * (size_t)layer[s].k, layer[s].k,
                              0, layer[s].rows, b.rs[l][s]);
        }
    for (int vi = 0; vi < nv; vi++)
        for (size_t mi = 0; mi < sizeof modes / sizeof modes[0]; mi++)
            if ((modes[mi].kind != MM_PANELS || v[vi].panel) &&
                (modes[mi].kind != MM_SPLIT || v[vi].split))
                prefill_mode(&v[vi], w, x, y, &b, n, threads, &modes[mi]);
    for (int l = 0; l < NLAYER; l++)
        for (int s = 0; s < NSHAPE; s++)
            ax_free(w[l][s]);
    ax_free(x);
    ax_free(y);
    free(b.xp);
    free(b.sp);
    free(b.wq);
    for (int l = 0; l < NLAYER; l++)
        for (int s = 0; s < NSHAPE; s++)
            ax_free(b.rs[l][s]);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "prefill") == 0) {
        struct kern_table v[4];
        int nv = kern_arch_variants(v, 4); /* the last one is what the server uses */
        return prefill(v + nv - 1, nv > 0, argc > 2 ? atoi(argv[2]) : 1,
                       argc > 3 ? atoi(argv[3]) : 128);
    }
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
                struct kern_mm a = {w, rb, x, xs, y, rows, ns[ni], k, NULL, NULL, NULL, NULL};
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
