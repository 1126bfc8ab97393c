/* testmodel.h - writes a synthetic Qwen3 checkpoint in the Hugging Face
 * layout (config.json, generation_config.json, model.safetensors or
 * shards + model.safetensors.index.json, tokenizer files copied from a
 * tokenizer dir). Random weights from a seeded PRNG: the model is real in
 * shape only, and config.json says so ("axserve_synthetic": true). */
#ifndef AX_MODEL_TESTMODEL_H
#define AX_MODEL_TESTMODEL_H

#include <stdint.h>
#include <stdio.h>

#include "model/model.h"

struct test_model_opts {
    const char *dir;            /* output; replaced only if it is empty or synthetic */
    const char *tokenizer_from; /* dir with tokenizer.json + tokenizer_config.json, or NULL */
    int hidden, layers, heads, kv_heads, head_dim, intermediate;
    int vocab; /* 0 = from the tokenizer (needs tokenizer_from) */
    int max_pos;
    enum model_dtype dtype; /* DT_F32 or DT_BF16 */
    int tied;
    int shards; /* 1 = model.safetensors; >1 = sharded with an index */
    uint64_t seed;
};

/* The defaults of the model `make` builds: small but real-shaped. */
void testmodel_defaults(struct test_model_opts *o);

/* Vocabulary size for a tokenizer.json: the id range (max id + 1) padded
 * the way Qwen pads: 151936 for the Qwen2/2.5/3 range (151643 base tokens
 * plus added ones, all below 151936), else rounded up to a multiple of 128. */
enum ax_err testmodel_vocab_from_tokenizer(const char *tokenizer_json, int *vocab, int *id_range,
                                           char *err);

/* Writes the checkpoint (atomically: temp dir + rename) and prints one
 * line per file written to log (may be NULL). */
enum ax_err testmodel_write(const struct test_model_opts *o, FILE *log, char *err);

#endif
