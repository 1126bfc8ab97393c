/* cpu_int.h - private to src/backend/cpu/: the loaded weights, KV cache and
 * scratch of one CPU backend instance, shared by cpu_backend.c (load,
 * limits, free) and cpu_forward.c (the forward pass). */
#ifndef AX_BACKEND_CPU_CPU_INT_H
#define AX_BACKEND_CPU_CPU_INT_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/pool.h"
#include "model/model.h"

#define CPU_MAGIC 0x43505531u /* "CPU1" */
#define CPU_MAX_TOKENS 256    /* tokens per pass over the weights (prefill chunk) */
#define CPU_MAX_BATCH 16      /* sequences per forward call */
#define ATTN_TOKENS 4         /* tokens per attention call (kern_attn's nq) */

/* A weight matrix [rows][k] in one of the kernel formats. */
struct cpu_w {
    enum kq_type type;
    const uint8_t *data; /* mmapped, or owned when converted/quantised */
    size_t stride;       /* bytes per row */
    int rows, k;
    int mapped; /* data is the model file's mapping */
    struct ks_row *rs; /* per row, for the split products (if split) */
};

struct cpu_layer {
    struct cpu_w q, k, v, o;     /* [NH*D][H], [KV*D][H] x2, [H][NH*D] */
    struct cpu_w gate, up, down; /* [I][H] x2, [H][I] */
    float *attn_norm, *ffn_norm; /* [H], f32 copies */
    float *q_norm, *k_norm;      /* [D], f32 copies */
};

struct cpu_ctx {
    uint32_t magic;
    struct qwen3_config c;
    struct kern_table kt;
    kern_quant_fn quant_act; /* activations for the quantised weights (NULL if none) */
    int bf16_act;            /* prefill BF16 weights with kt.mm_bf16_act (--bf16-act) */
    int exact_prefill;       /* not the split products (--exact-prefill) */
    int split;               /* prefill BF16 weights with kt.mm_bf16_split */
    struct pool *pool;
    int n_threads;

    /* weights */
    struct cpu_layer *layers; /* [n_layers] */
    struct cpu_w embed;       /* [vocab][H], as stored */
    struct cpu_w lm_head;     /* [vocab][H] (embed itself when tied and unconverted) */
    float *final_norm;        /* [H] */
    void **owned;             /* buffers allocated at load, freed with the ctx */
    int n_owned, cap_owned;
    uint8_t *arena; /* one huge-page buffer for the quantised layer weights */
    size_t arena_left;
    size_t weight_bytes; /* bytes of matrices read per token (incl. lm_head) */

    /* KV cache: [slot][layer][kv head][pos][head_dim] of f16 or f32 */
    int kv_f16;
    size_t kv_elem; /* 2 or 4 bytes */
    int n_ctx, n_slots;
    size_t kv_dim; /* n_kv_heads * head_dim */
    uint8_t *kcache, *vcache;
    float *rope_cos, *rope_sin; /* [n_ctx][head_dim/2] */

    /* scratch, sized at load for CPU_MAX_TOKENS rows */
    int cap;
    float *x, *xb, *xb2; /* [cap][H] */
    float *q, *att;      /* [cap][NH*D] */
    float *k, *v;        /* [cap][KV*D] */
    float *hb, *hb2;     /* [cap][I] */
    uint8_t *xq;         /* [cap] KA_Q8 rows of the widest input */
    size_t xq_stride;
    float *xp;          /* kp_floats(cap, widest input): panels, if kt.panel */
    uint8_t *sp;        /* ks_bytes(cap, widest input): split panels, if split */
    const float *xp_of; /* the rows xp or sp hold now (NULL: none) */
    uint8_t *wq;        /* [n_threads][wq_stride], if split */
    size_t wq_stride;   /* ks_wq_bytes(widest input) */
    float *scores;      /* [n_threads][G * ATTN_TOKENS][n_ctx] */
    float *attn_work;   /* [n_threads][kern_attn_block_floats(head_dim)], if kt.attn_block */
    float *logits;      /* [CPU_MAX_BATCH][vocab] */
    int32_t *t_tok;     /* per token of a pass: id, position, slot */
    int *t_pos, *t_slot;
    int *l_row;    /* rows of the pass that need logits */
    float **l_out; /* where each of those rows' logits go */
};

enum ax_err cpu_forward(void *ctx, const struct backend_seq *seqs, int n_seqs, char *err);

#endif
