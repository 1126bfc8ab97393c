/* jinja.h - a Jinja2-subset interpreter for Hugging Face chat templates.
 *
 * Renders templates byte-for-byte as Python Jinja2 (3.x) does with the
 * settings transformers uses: ImmutableSandboxedEnvironment, trim_blocks,
 * lstrip_blocks, the loopcontrols extension, autoescape off, and
 * transformers' globals/filters (tojson = json.dumps(ensure_ascii=False,
 * ...), raise_exception, strftime_now). The supported language is listed
 * in src/jinja/parse.c; anything else is a clear AX_ETEMPLATE error with
 * the template line, never a crash.
 *
 * Not supported: template inheritance and inclusion (extends, block,
 * include, import), autoescaping/Markup semantics, integers beyond 64 bits
 * (an error instead of Python's big integers), Python's '%' string
 * formatting and str.format.
 *
 * Every render is bounded: output bytes, memory, loop iterations in total,
 * and nesting/recursion depth (struct jinja_limits). A parsed template is
 * read-only, so several threads may render it at once. */
#ifndef AX_JINJA_JINJA_H
#define AX_JINJA_JINJA_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

struct jinja_tmpl;

struct jinja_limits {
    size_t max_memory;       /* bytes of values allocated during one render */
    uint64_t max_iterations; /* for-loop iterations and macro calls, in total */
    int max_depth;           /* nesting of expressions, blocks and macro calls */
};

/* Defaults: 256 MiB of values, 1,000,000 iterations, depth 200. */
void jinja_limits_default(struct jinja_limits *lim);

/* Parses src (len bytes, UTF-8). OUT *out valid on AX_OK, caller frees
 * with jinja_free. Syntax errors are AX_ETEMPLATE with "line N: ...";
 * AX_EUTF8 for invalid UTF-8. */
enum ax_err jinja_parse(const char *src, size_t len, struct jinja_tmpl **out, char *err);
void jinja_free(struct jinja_tmpl *t);

/* Renders t with the variables of the JSON object vars (keys in their
 * order; NULL = none) and appends the output to out (its ceiling bounds
 * the output: AX_ETOOBIG). lim NULL = defaults. On error out holds a
 * partial render the caller should discard. AX_ETEMPLATE for template
 * errors (raise_exception, undefined values, type errors), with the line
 * in err. */
enum ax_err jinja_render(const struct jinja_tmpl *t, const json_t *vars,
                         const struct jinja_limits *lim, struct ax_buf *out, char *err);

#endif
