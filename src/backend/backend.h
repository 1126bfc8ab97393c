/* backend.h - what the engine needs from a compute backend.
 *
 * A backend knows nothing about HTTP, JSON, text or sampling. It runs
 * tokens through the model into a KV slot and returns logits. Rolling a
 * slot back is free: the engine simply continues at a smaller pos, and the
 * backend must overwrite KV rows from pos on.
 *
 * Threading: all calls on one backend come from one thread (the engine
 * thread of that device). */
#ifndef AX_BACKEND_BACKEND_H
#define AX_BACKEND_BACKEND_H

#include <stdint.h>

#include "util/err.h"

#define BACKEND_IFACE_VERSION 1

struct model;

enum backend_caps {
    BACKEND_CAP_BATCH = 1 << 0, /* forward accepts n_seqs > 1 (continuous batching) */
};

struct backend_limits {
    int n_ctx;         /* max tokens per slot (positions 0..n_ctx-1) */
    int n_slots;       /* KV slots available */
    int prefill_chunk; /* preferred tokens per forward call when prefilling */
    int n_vocab;       /* logits per row */
    int max_batch;     /* max sequences per forward (1 unless CAP_BATCH) */
};

/* One sequence in a forward call: tokens[0..n_tokens) go to positions
 * pos..pos+n_tokens-1 of KV slot `slot`. If logits is not NULL the
 * backend writes n_vocab floats for the last token into it. */
struct backend_seq {
    int slot;
    const int32_t *tokens;
    int n_tokens;
    int pos;
    float *logits; /* OUT, optional */
};

struct backend_opts {
    const char *name;     /* "cpu", "axcl", or NULL/"auto": by model kind */
    int n_threads;        /* 0 = one per core (cpu) */
    int n_slots;          /* 0 = sized from memory */
    int n_ctx;            /* 0 = model maximum (capped by memory) */
    const char *quant;    /* "none", "q8", "q4" (cpu); NULL = as stored */
    const char *kv_type;  /* "f16" or "f32" (cpu); NULL = f16 */
    int bf16_act;         /* BF16 weights: prefill with bf16-rounded activations (cpu) */
    int exact_prefill;    /* BF16 weights: prefill with f32 FMAs, not split products (cpu) */
    const char *devices;  /* "1,2" device bus ids (axcl); NULL = all */
};

struct backend_ops {
    int version; /* BACKEND_IFACE_VERSION */
    const char *name;
    unsigned caps;
    /* Runs the sequences (n_seqs <= limits.max_batch). On failure the
     * slots touched are undefined: the engine must treat them as empty. */
    enum ax_err (*forward)(void *ctx, const struct backend_seq *seqs, int n_seqs, char *err);
    /* Optional (NULL = not supported): human-readable status for doctor/health. */
    int (*healthy)(void *ctx);
    void (*free)(void *ctx);
};

struct backend {
    const struct backend_ops *ops;
    void *ctx;
    struct backend_limits lim;
};

/* Opens the backend named in opts for model m. Backends register in
 * backend.c; the model must outlive the backend. */
enum ax_err backend_open(const struct backend_opts *opts, const struct model *m,
                         struct backend **out, char *err);
void backend_free(struct backend *b);

#endif
