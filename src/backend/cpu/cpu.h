/* cpu.h - the CPU backend: Qwen3 forward pass over mmapped safetensors
 * (HF semantics), batched over sequences (BACKEND_CAP_BATCH), with weights
 * as stored (F32/BF16/F16) or quantised at load (opts->quant "q8"/"q4"),
 * and an f16 (default) or f32 KV cache. Defaults: one thread per core,
 * 4 slots, n_ctx = min(max_position_embeddings, 4096); the KV cache is
 * allocated for all of it; the leading positions of every slot (64 MiB in
 * all) are written at load, the rest only as positions fill. Limits:
 * prefill_chunk 256 tokens per pass over the weights (longer calls are
 * split), max_batch 16 sequences per call. */
#ifndef AX_BACKEND_CPU_CPU_H
#define AX_BACKEND_CPU_CPU_H

#include <stddef.h>

#include "backend/backend.h"

/* Fills b->ops, b->ctx and b->lim. */
enum ax_err cpu_backend_open(const struct backend_opts *opts, const struct model *m,
                             struct backend *b, char *err);

/* Bytes of weight matrices one decode token reads (lm_head included);
 * 0 if b is not a cpu backend. For benchmarks. */
size_t cpu_backend_weight_bytes(const struct backend *b);

#endif
