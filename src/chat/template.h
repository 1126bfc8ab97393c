/* template.h - the model's chat template: loading it from
 * tokenizer_config.json and rendering an OpenAI-style chat request into
 * the prompt text, byte-for-byte as transformers' apply_chat_template.
 *
 * Request normalisation (the same rules are restated independently in
 * tests/oracle/jinja_oracle.py):
 * - content given as an array of parts {type:"text", text} becomes the
 *   texts joined with "\n" (what vLLM does); other part types are
 *   rejected; null or missing content becomes "".
 * - tool_calls and their arguments stay as given (string or object).
 * - roles must be strings; everything else in a message passes through.
 * Variables: messages, tools (None when absent), documents (None),
 * add_generation_prompt (default true), the tokenizer's special tokens
 * (bos_token, eos_token, ... as strings), then chat_template_kwargs,
 * which override the tokens. */
#ifndef AX_CHAT_TEMPLATE_H
#define AX_CHAT_TEMPLATE_H

#include <jansson.h>

#include "util/buf.h"
#include "util/err.h"

struct chat_template;

/* Loads chat_template (string, or the list form [{name, template}] taking "default",
   and "tool_use" when tools are given) and bos/eos/unk/pad tokens (strings or AddedToken
   objects {"content": ...}) from tokenizer_config.json. Also accepts a separate
   chat_template.jinja file next to it if the config lacks the key.
   OUT *out valid on AX_OK; free with chat_template_free. */
enum ax_err chat_template_load(const char *tokenizer_config_path, struct chat_template **out,
                               char *err);
void chat_template_free(struct chat_template *t);

/* request: a JSON object {messages, tools?, chat_template_kwargs?, add_generation_prompt?
   (default true)} plus any other keys (ignored). Validates and normalises a copy (see
   above). Appends the rendered prompt to out (on error out is left as it was).
   AX_EINVAL for a bad request (message says which field), AX_ETEMPLATE for a template
   error, AX_ETOOBIG when out's ceiling or a render limit is crossed.
   Thread-safe: t is read-only after load. */
enum ax_err chat_template_render(const struct chat_template *t, const json_t *request,
                                 struct ax_buf *out, char *err);

/* Renders a bare Jinja template file with the variables of a JSON object
   (testing aid for `axserve template --jinja`): same environment, no
   normalisation. */
enum ax_err chat_template_load_file(const char *jinja_path, struct chat_template **out, char *err);
enum ax_err chat_template_render_vars(const struct chat_template *t, const json_t *vars,
                                      struct ax_buf *out, char *err);

#endif
