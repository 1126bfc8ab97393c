/* fuzz_model_config.c - the model directory's small-file parsers on
 * arbitrary bytes: the first byte picks config.json, generation_config.json,
 * the vendor axmodel config.json, a run script or the vendor
 * post_config.json; the rest is the file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    size_t len = size - 1;
    char err[AX_ERRLEN];
    struct qwen3_config c;
    struct gen_defaults g;
    struct axmodel_layout ax;
    int syn;
    switch (data[0] % 5) {
    case 0:
        if (model_parse_config(text, len, "config.json", &c, &syn, err) == AX_OK &&
            (c.n_kv_heads < 1 || c.n_heads % c.n_kv_heads || c.head_dim % 2))
            abort();
        break;
    case 1:
        model_gen_defaults_init(&g);
        if (model_parse_gen_config(text, len, "generation_config.json", &g, err) == AX_OK &&
            (g.n_eos < 0 || g.n_eos > MODEL_MAX_EOS))
            abort();
        break;
    case 2:
        if (model_is_vendor_config(text, len) &&
            model_parse_vendor_config(text, len, "config.json", "/m", &ax, err) == AX_OK) {
            char path[MODEL_PATH_MAX + 16];
            /* The template was checked to hold exactly one %d. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
            snprintf(path, sizeof path, ax.layer_template, 7);
#pragma GCC diagnostic pop
        }
        break;
    case 4:
        model_gen_defaults_init(&g);
        model_parse_post_config(text, len, "post_config.json", &g, err);
        break;
    default:
        model_parse_run_script(text, len, "run.sh", "/m", &ax, err);
        break;
    }
    free(text);
    return 0;
}
