/* fuzz_jinja.c - libFuzzer target: the input is a template, rendered with
 * a fixed chat-like context under small limits. Any crash, leak, hang or
 * sanitizer report is a bug; template errors are expected. Seeds: real
 * chat templates and the feature templates of tests/data/jinja. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "jinja/jinja.h"

static const char *context = "{\"messages\": [{\"role\": \"system\", \"content\": \"sys\"},"
                             " {\"role\": \"user\", \"content\": \"hi {{ x }} <think>\"},"
                             " {\"role\": \"assistant\", \"content\": "
                             "\"<think>\\nr\\n</think>\\n\\nok\", \"reasoning_content\": null,"
                             "  \"tool_calls\": [{\"type\": \"function\", \"function\": {\"name\": "
                             "\"f\", \"arguments\": {\"a\": [1, 2.5]}}},"
                             "                   {\"type\": \"function\", \"function\": {\"name\": "
                             "\"g\", \"arguments\": \"{}\"}}]},"
                             " {\"role\": \"tool\", \"content\": \"result\"}],"
                             " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": "
                             "\"f\", \"parameters\": {\"type\": \"object\"}}}],"
                             " \"add_generation_prompt\": true, \"enable_thinking\": false, "
                             "\"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *vars;
    if (!vars)
        vars = json_loads(context, 0, NULL);
    if (size > 1 << 16)
        return 0;
    char err[AX_ERRLEN];
    struct jinja_tmpl *t;
    if (jinja_parse((const char *)data, size, &t, err))
        return 0;
    struct jinja_limits lim = {.max_memory = 16 << 20, .max_iterations = 20000, .max_depth = 100};
    struct ax_buf out;
    ax_buf_init(&out, 1 << 20);
    jinja_render(t, vars, &lim, &out, err);
    ax_buf_free(&out);
    jinja_free(t);
    return 0;
}
