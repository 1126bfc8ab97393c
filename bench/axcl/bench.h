/* bench.h - shared by bench_axcl.c and vendor_replay.c: per-phase deltas of
 * the emulator's counters (calls, bytes, modelled link time). */
#ifndef AX_BENCH_AXCL_BENCH_H
#define AX_BENCH_AXCL_BENCH_H

#include "axemu.h"
#include "model/model.h"
#include "util/err.h"

struct bench_phase {
    struct axemu_stats start;
    double bus, execs, binds, h2d, d2h, d2d, us; /* per token */
};

void bench_mark(struct bench_phase *p);
void bench_done(struct bench_phase *p, int n_tokens);
int vendor_replay(const struct axmodel_layout *lay, int n_prompt, int n_decode,
                  struct bench_phase *prefill, struct bench_phase *decode, char *err);

#endif
