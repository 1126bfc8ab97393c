/* parse.h - splits what a Qwen3 model writes into reasoning, content and
 * tool calls, incrementally (for streaming) with the same result as
 * parsing the whole text at once.
 *
 * Grammar of the output (Qwen3 chat template, Hermes-style tools):
 *   [ws] <think> reasoning </think> [ws] content-and-tool-calls
 *   tool call: <tool_call> {"name": "f", "arguments": {...}} </tool_call>
 * `<think>` opens reasoning only as the first non-whitespace text of the
 * output (or already in the prompt: starts_in_reasoning); elsewhere it is
 * ordinary text. `<tool_call>` is recognised only in content, not inside
 * reasoning (a model may mention the tag while thinking).
 *
 * Whitespace, as llama.cpp does for Qwen3 (common/chat-parser.cpp
 * try_parse_reasoning and the Hermes tool parser): reasoning is trimmed
 * at both ends (so the "\n" after <think> and before </think> go); all
 * whitespace right after </think> and right after each </tool_call> is
 * dropped (the "\n\n" Qwen writes before its answer, and the newlines
 * between tool call blocks). An empty or all-whitespace <think></think>
 * (no-think mode) emits no reasoning. Other text is passed through
 * verbatim. Whitespace before a leading <think> is content.
 *
 * Tool calls: the body must be a JSON object with a non-empty string
 * "name" and "arguments" that is an object (re-serialised compactly: the
 * model's own text with insignificant whitespace removed, numbers and
 * escapes kept as written), a string (passed as given) or absent ("{}").
 * Anything else - bad JSON, missing name, an unterminated block at finish
 * - stays in the content verbatim, tags included. Each valid call is
 * emitted as soon as its </tool_call> arrives, with index 0, 1, 2... and
 * an id "call_" + 24 random alphanumerics.
 *
 * Holding back: text that may be the start of a tag (`<`, `</thi`,
 * `<tool_c`...) and reasoning's trailing whitespace are kept until the
 * next push decides them, so no partial tag ever reaches the caller. */
#ifndef AX_CHAT_PARSE_H
#define AX_CHAT_PARSE_H

#include <stddef.h>

#include "util/err.h"

/* Ceiling on text held back at once (an open tool call body mostly). */
#define CHAT_PARSE_MAX_PENDING ((size_t)4 << 20)

enum chat_part { CHAT_CONTENT = 1, CHAT_REASONING = 2, CHAT_TOOL_CALL = 3 };

/* Everything is borrowed for the duration of the callback only. */
struct chat_event {
    enum chat_part kind;
    const char *text; /* CONTENT, REASONING: the new text (len bytes, not NUL-terminated) */
    size_t len;
    int index;             /* TOOL_CALL: 0, 1, 2... in order of appearance */
    const char *id;        /* TOOL_CALL: "call_..." (NUL-terminated) */
    const char *name;      /* TOOL_CALL: function name */
    const char *arguments; /* TOOL_CALL: a JSON text (NUL-terminated) */
};

typedef void chat_emit_fn(void *user, const struct chat_event *ev);

struct chat_parser;

/* starts_in_reasoning: the prompt already opened <think> (see
 * chat_prompt_opens_think); parse_tools: recognise <tool_call> blocks
 * (when the request had tools). OUT *out on AX_OK; free with
 * chat_parser_free. */
enum ax_err chat_parser_new(int starts_in_reasoning, int parse_tools, struct chat_parser **out);
/* Feeds the next piece of output; emits what is decided. AX_ETOOBIG if more
 * than CHAT_PARSE_MAX_PENDING bytes would be held; AX_ENOMEM. After an
 * error the parser only accepts chat_parser_free. */
enum ax_err chat_parser_push(struct chat_parser *p, const char *text, size_t len,
                             chat_emit_fn *emit, void *user, char *err);
/* End of output: emits everything still held (an unterminated reasoning
 * block as reasoning, an unterminated tool call as content). */
enum ax_err chat_parser_finish(struct chat_parser *p, chat_emit_fn *emit, void *user, char *err);
void chat_parser_free(struct chat_parser *p);
/* Number of tool calls emitted so far. */
int chat_parser_tool_calls(const struct chat_parser *p);

/* 1 if a rendered prompt ends inside an open <think>: after the last
 * "<|im_start|>assistant" there is a "<think>" with no "</think>" after it. */
int chat_prompt_opens_think(const char *prompt, size_t len);

#endif
