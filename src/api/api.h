/* api.h - the OpenAI wire format: request bodies parsed and validated into
 * struct gen_request (plus what the response needs), and the JSON of
 * responses, stream chunks and error objects.
 *
 * Pure functions over jansson; no HTTP, no engine calls, no tokens. The
 * shapes follow the openai-node/openai-python types and llama.cpp's
 * extensions (reasoning_content, exceed_context_size_error, ignore_eos,
 * cache_prompt). Unknown request fields are ignored.
 *
 * Choices where servers differ:
 * - n must be 1; a prompt array must hold one prompt; echo, suffix and
 *   best_of > 1 are refused (400) rather than ignored.
 * - response_format json_object / json_schema: decoding is not constrained;
 *   the finished content must parse as JSON or the request fails (500,
 *   code invalid_json_output; in a stream, an error event before [DONE]).
 *   The schema itself is not checked.
 * - tool_choice: "none" hides the tools from the template and turns tool
 *   call parsing off; a named function leaves only that tool in the
 *   template; "required" and named choices are otherwise not enforced.
 *   parallel_tool_calls is accepted; every parsed call is returned.
 * - Thinking is off with chat_template_kwargs.enable_thinking:false or
 *   reasoning_effort:"none"; reasoning goes to reasoning_content.
 * - Sampling fields left out: see sampling_defaults in request.c.
 * - cache_prompt is accepted for llama.cpp clients; the engine always
 *   reuses a matching prefix (it changes no output, only speed). */
#ifndef AX_API_API_H
#define AX_API_API_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "util/buf.h"
#include "util/err.h"

struct gen_defaults;

#define API_MAX_TOKENS_CAP (1 << 20) /* larger max_tokens is a client bug */
#define API_MAX_PROMPT_IDS (1 << 20)

/* An error as the client sees it: {"error":{message,type,param,code}}. */
struct api_error {
    int status;       /* HTTP status */
    const char *type; /* "invalid_request_error", ... (static) */
    const char *code; /* static string or NULL */
    char param[96];   /* field path; "" = null */
    char message[AX_ERRLEN];
    long n_prompt_tokens; /* exceed_context_size_error only, else < 0 */
    long n_ctx;
};

enum api_kind { API_CHAT = 1, API_COMPLETION = 2 };
enum api_tools { API_TOOLS_AUTO = 0, API_TOOLS_NONE, API_TOOLS_REQUIRED, API_TOOLS_NAMED };

struct api_request {
    enum api_kind kind; /* API_CHAT also for a `messages` body on /v1/completions */
    json_t *root;       /* the parsed body (owned) */
    json_t *chat;       /* API_CHAT: {messages, tools?, chat_template_kwargs,
                         * add_generation_prompt} for the template (owned) */
    const char *model;  /* borrowed from root; NULL if absent */
    int stream;
    int include_usage; /* stream_options.include_usage */
    int thinking;      /* 0 if disabled by enable_thinking:false or reasoning_effort:"none" */
    enum api_tools tools;
    int parse_tools;  /* tools present and tool_choice != none */
    int json_output;  /* response_format json_object / json_schema */
    int logprobs;     /* chat: logprobs:true; completions: logprobs given */
    int cache_prompt; /* llama.cpp's switch, default 1 (informational) */
    /* API_COMPLETION: exactly one of text / ids. */
    const char *prompt_text; /* borrowed from root */
    size_t prompt_len;
    int32_t *prompt_ids; /* owned */
    size_t n_prompt_ids;
    struct gen_request gen; /* stop strings borrowed from root; prompt unset for chat */
};

/* Parses and validates body for the endpoint kind. On failure fills e
 * (status 400, param naming the field) and returns AX_EINVAL / AX_EJSON /
 * AX_EUTF8 / AX_ENOMEM. Sampling fields left out take gd's values (the
 * model's generation_config), or Qwen3's non-thinking defaults when the
 * request turns thinking off. OUT *out valid on AX_OK; free with
 * api_request_free (also safe after a failure). */
enum ax_err api_parse_request(enum api_kind kind, const char *body, size_t len,
                              const struct gen_defaults *gd, struct api_request *out,
                              struct api_error *e);
void api_request_free(struct api_request *r);

/* Fills e; returns code so callers can `return api_fail(...)`. param may be
 * NULL. */
enum ax_err api_fail(struct api_error *e, enum ax_err code, int status, const char *type,
                     const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Maps an engine/template error code to a status and type. */
void api_error_from(struct api_error *e, enum ax_err code, const char *message);
/* Serializes e; caller frees with ax_free... via free() of jansson: use
 * api_dump. */
json_t *api_error_json(const struct api_error *e);

/* 1 if s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int api_utf8_valid(const char *s, size_t n);
/* Length of the valid UTF-8 sequence starting at s (n bytes left), 0 if
 * the bytes there are not one. */
size_t api_utf8_seq(const char *s, size_t n);
/* A JSON string for bytes that may hold broken UTF-8 (each bad byte becomes
 * U+FFFD). New reference. */
json_t *api_lossy_string(const char *s, size_t n);
/* json_dumps with the flags used everywhere; caller frees with free(). */
char *api_dump(const json_t *j);

/* ---- responses ------------------------------------------------------- */

struct api_usage {
    long prompt, completion, cached, reasoning;
};

/* What one generation produced, for a final (non-stream) response. */
struct api_result {
    const char *id; /* "chatcmpl-..." / "cmpl-..." */
    long created;
    const char *model;
    const char *content; /* NULL or text */
    size_t content_len;
    const char *reasoning; /* NULL = no reasoning_content field */
    size_t reasoning_len;
    json_t *tool_calls; /* borrowed array or NULL */
    json_t *logprobs;   /* borrowed; NULL = null */
    const char *finish; /* "stop" / "length" / "tool_calls" */
    struct api_usage usage;
};

json_t *api_chat_completion(const struct api_result *r);
json_t *api_text_completion(const struct api_result *r);
json_t *api_usage_json(const struct api_usage *u);

/* One chat.completion.chunk with a single choice; delta is stolen (may be
 * NULL = {}); finish NULL = null; logprobs stolen, NULL = null. */
json_t *api_chat_chunk(const char *id, long created, const char *model, json_t *delta,
                       const char *finish, json_t *logprobs);
/* The usage chunk: choices [] and usage. */
json_t *api_usage_chunk(const char *id, long created, const char *model, int chat,
                        const struct api_usage *u);
/* One text_completion chunk; logprobs stolen. */
json_t *api_text_chunk(const char *id, long created, const char *model, const char *text,
                       size_t len, const char *finish, json_t *logprobs);

/* Stream fast path (one per token, so it allocates nothing once b has
 * grown): appends one "data: {...}\n\n" event, a chat.completion.chunk
 * whose delta is {field: text} (field "content" or "reasoning_content"),
 * or, with field NULL, a text_completion chunk with that text. Same JSON
 * as api_chat_chunk / api_text_chunk with null logprobs and finish. */
enum ax_err api_sse_text(struct ax_buf *b, const char *id, long created, const char *model,
                         const char *field, const char *text, size_t len);
/* Appends s[0..n) as a JSON string literal; invalid UTF-8 bytes become
 * U+FFFD. */
enum ax_err api_buf_json_string(struct ax_buf *b, const char *s, size_t n);

const char *api_finish_name(enum eng_finish f, int had_tool_calls);
/* "chatcmpl-" / "cmpl-" + 24 random hex-ish chars into out (size >= 40). */
void api_make_id(char *out, size_t n, const char *prefix);

#endif
