/* model_int.h - parsers shared by the model/ files, its tests and fuzz
 * targets. Not for other modules: they use model.h. */
#ifndef AX_MODEL_MODEL_INT_H
#define AX_MODEL_MODEL_INT_H

#include <stddef.h>

#include "model/model.h"

/* Ceilings on hyper-parameters. Far above any Qwen3 (largest: hidden 5120,
 * 64 layers, 151936 vocab) and low enough that products of two of them
 * fit comfortably in 64 bits and a backend's buffers stay allocatable. */
#define MODEL_MAX_HIDDEN 65536
#define MODEL_MAX_INTER (1 << 20)
#define MODEL_MAX_LAYERS 1024
#define MODEL_MAX_HEADS 1024
#define MODEL_MAX_HEAD_DIM 1024
#define MODEL_MAX_VOCAB (1 << 22)
#define MODEL_MAX_POS (1 << 24)
#define MODEL_MAX_TOKEN_ID (1 << 24)
/* Config-like JSON files are small; 16 MB is generous. */
#define MODEL_MAX_JSON ((size_t)16 * 1024 * 1024)

/* Qwen3 non-thinking defaults (facts: qwen3.md), nothing present. */
void model_gen_defaults_init(struct gen_defaults *g);

/* config.json of an HF Qwen3 checkpoint -> cfg. *synthetic = 1 if the file
 * carries "axserve_synthetic": true. path only names the file in messages. */
enum ax_err model_parse_config(const char *text, size_t len, const char *path,
                               struct qwen3_config *cfg, int *synthetic, char *err);
/* Checks a filled qwen3_config (ranges and consistency), naming the field. */
enum ax_err model_check_config(const struct qwen3_config *c, const char *path, char *err);
/* generation_config.json -> g (fields present override g's values). */
enum ax_err model_parse_gen_config(const char *text, size_t len, const char *path,
                                   struct gen_defaults *g, char *err);
/* The AXERA post_config.json (sampling switches) -> g; see config.c. */
enum ax_err model_parse_post_config(const char *text, size_t len, const char *path,
                                    struct gen_defaults *g, char *err);
/* 1 if text is a JSON object with a "template_filename_axmodel" key. */
int model_is_vendor_config(const char *text, size_t len);
/* Vendor config.json of an axmodel dir -> layout; relative paths are
 * joined to dir. */
enum ax_err model_parse_vendor_config(const char *text, size_t len, const char *path,
                                      const char *dir, struct axmodel_layout *ax, char *err);
/* A vendor run script with --template_filename_axmodel ... flags -> layout.
 * AX_ENOTFOUND if the script has no --template_filename_axmodel flag. */
enum ax_err model_parse_run_script(const char *text, size_t len, const char *path, const char *dir,
                                   struct axmodel_layout *ax, char *err);

#endif
