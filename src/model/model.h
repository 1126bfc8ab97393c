/* model.h - reads a model directory and says what it is.
 *
 * Three kinds: an HF checkpoint (config.json + safetensors [+ index]), an
 * AXERA axmodel directory (layer/post axmodels + bf16 embedding table), or
 * a tokenizer-only directory (enough for tokenize/template). Every file is
 * checked before use: Git LFS pointers, truncated files and shape
 * mismatches are errors naming the file and the fix (`axserve pull`).
 *
 * This module does not compute anything; backends slice the mmapped
 * tensors it hands out. */
#ifndef AX_MODEL_MODEL_H
#define AX_MODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define MODEL_PATH_MAX 4096
#define MODEL_MAX_EOS 8

enum model_kind { MODEL_TOKENIZER_ONLY = 0, MODEL_HF = 1, MODEL_AXMODEL = 2 };

enum model_dtype {
    DT_F32 = 0,
    DT_F16 = 1,
    DT_BF16 = 2,
    DT_I32 = 3,
    DT_I64 = 4,
    DT_U8 = 5,
    DT_I8 = 6,
    DT_OTHER = 7
};

/* Qwen3 hyper-parameters, from config.json (HF) or the vendor config. */
struct qwen3_config {
    int hidden;            /* hidden_size */
    int intermediate;      /* intermediate_size */
    int n_layers;          /* num_hidden_layers */
    int n_heads;           /* num_attention_heads */
    int n_kv_heads;        /* num_key_value_heads */
    int head_dim;          /* head_dim (need not be hidden / n_heads) */
    int head_dim_implicit; /* config.json has no head_dim: the model's q_norm length decides */
    int vocab;             /* vocab_size (rows of embed_tokens / lm_head) */
    int max_pos;           /* max_position_embeddings */
    int tied;              /* tie_word_embeddings */
    double rope_theta;     /* rope_theta */
    double rms_eps;        /* rms_norm_eps */
};

/* Sampling defaults and end tokens from generation_config.json. Fields
 * absent from the file keep the Qwen3 non-thinking defaults and have_x=0. */
struct gen_defaults {
    float temperature, top_p, min_p;
    int top_k;
    int have_temperature, have_top_p, have_top_k, have_min_p;
    int n_eos;
    int32_t eos[MODEL_MAX_EOS]; /* eos_token_id (int or list) */
    int32_t bos;                /* -1 if none */
};

/* An axmodel directory's layout (vendor config.json or run-script flags). */
struct axmodel_layout {
    char layer_template[MODEL_PATH_MAX]; /* absolute printf format, one %d = layer index
                                            (a '%' of the directory is doubled) */
    int n_layers;                        /* axmodel_num */
    char post_path[MODEL_PATH_MAX];      /* final norm + lm_head model */
    char embed_path[MODEL_PATH_MAX];     /* raw bf16 table */
    int64_t embed_rows;                  /* tokens_embed_num */
    int64_t embed_cols;                  /* tokens_embed_size */
    int n_devices;                       /* devices listed in config, 0 = unset */
    int devices[16];
};

struct model_tensor {
    const char *name; /* borrowed from the model */
    enum model_dtype dtype;
    int ndim;
    int64_t shape[4]; /* row-major; shape[0] is the slowest axis */
    const void *data; /* into the read-only mapping */
    size_t nbytes;
};

struct model;

/* Opens dir and checks every file it will need; for HF checkpoints also
 * every Qwen3 tensor's presence, shape and dtype (F32/F16/BF16), so a
 * backend can slice them without re-checking. OUT *out valid on AX_OK;
 * caller frees with model_free. */
enum ax_err model_open(const char *dir, struct model **out, char *err);
void model_free(struct model *m);

enum model_kind model_kind(const struct model *m);
const char *model_dir(const struct model *m);
/* 1 if config.json says "axserve_synthetic": true (made by
 * `axserve make-test-model`: random weights, the output is noise). */
int model_is_synthetic(const struct model *m);
/* Paths of tokenizer.json and tokenizer_config.json (may be in a
 * tokenizer subfolder for axmodel dirs). Borrowed. NULL if the directory
 * has none (possible for HF and axmodel dirs; callers that need a
 * tokenizer must say so). Both are present or both NULL. */
const char *model_tokenizer_json(const struct model *m);
const char *model_tokenizer_config(const struct model *m);
/* AX_ENOTFOUND, naming the directory and the fix, if it has no tokenizer. */
enum ax_err model_need_tokenizer(const struct model *m, char *err);
/* Valid for MODEL_HF and MODEL_AXMODEL, NULL for MODEL_TOKENIZER_ONLY.
 * For an axmodel dir without an HF config.json only hidden, vocab and
 * n_layers are known; the other fields are 0 (the AXCL backend reads
 * them from the models' IO info). */
const struct qwen3_config *model_config(const struct model *m);
const struct gen_defaults *model_gen_defaults(const struct model *m);
/* Valid for MODEL_AXMODEL only, NULL otherwise. */
const struct axmodel_layout *model_axmodel(const struct model *m);

/* HF only: finds a tensor by its HF name. AX_ENOTFOUND if absent. */
enum ax_err model_tensor(const struct model *m, const char *name, struct model_tensor *out,
                         char *err);
/* HF only: number of tensors and the i-th in name order (AX_ERANGE past
 * the end), for listing. */
size_t model_n_tensors(const struct model *m);
enum ax_err model_tensor_at(const struct model *m, size_t i, struct model_tensor *out);
/* HF only: checks a tensor exists with this exact shape (ndim dims). */
enum ax_err model_tensor_expect(const struct model *m, const char *name, int ndim,
                                const int64_t *shape, struct model_tensor *out, char *err);

/* Checks a file for the Git LFS pointer signature; AX_ELFS with a message
 * naming the file and `axserve pull` if it is one. */
enum ax_err model_check_not_lfs(const char *path, char *err);

#endif
