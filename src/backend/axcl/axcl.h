/* axcl.h - the AX650N backend over the AXCL runtime, loaded with dlopen.
 *
 * Runs an AXERA axmodel directory (one compiled model per decoder layer,
 * a post model, a bf16 embedding table) on one or more AX650N cards. The
 * IO contract (names, shape groups, kv width, history capacities, prefill
 * chunk) is read from the runtime's IO info, never assumed. */
#ifndef AX_BACKEND_AXCL_AXCL_H
#define AX_BACKEND_AXCL_AXCL_H

#include <stddef.h>

#include "backend/backend.h"

struct axmodel_layout;

/* Fills b->ops, b->ctx and b->lim. The model must be MODEL_AXMODEL.
 * Cards: opts->devices ("1,2", bus ids), else $AXSERVE_AXCL_DEVICES, else
 * every card the runtime lists. */
enum ax_err axcl_backend_open(const struct backend_opts *opts, const struct model *m,
                              struct backend *b, char *err);

/* Same, from a layout directly (used by the above, tests and bench). The
 * layout is copied; the files it names must stay in place. */
enum ax_err axcl_backend_open_layout(const struct backend_opts *opts,
                                     const struct axmodel_layout *lay, struct backend *b,
                                     char *err);

/* What the backend found and chose, for doctor and logs. */
struct axcl_info {
    int n_cards;
    int devices[16];   /* bus ids in layer order */
    int layers_on[16]; /* layers per card */
    int n_ctx, n_slots, prefill, n_groups;
    int history[16]; /* H_g per prefill group (index 0: decode, = n_ctx) */
    int kv_width, hidden, vocab;
    int kv_direct; /* layers write K/V straight into the cache rows */
    int async;     /* executes queued on a stream, one sync per step */
    int pinned;    /* host buffers from axclrtMallocHost */
    int packed;    /* one upload per step (interior pointers) */
    const char *packed_why;
    const char *kv_direct_why, *async_why; /* how each was decided */
    double cmm_mib_per_slot;
};
/* b must come from axcl_backend_open*. */
void axcl_backend_info(const struct backend *b, struct axcl_info *out);

#endif
