/* tok_common.h - what `axserve tokenize` and `detokenize` share: finding
 * and loading the tokenizer of a model directory, reading stdin. */
#ifndef AX_CLI_TOK_COMMON_H
#define AX_CLI_TOK_COMMON_H

#include <stddef.h>

#include "tok/tok.h"

/* Loads the tokenizer of model directory DIR (as model_open finds it), or
 * DIR itself when it is a tokenizer.json file. Prints the error and returns
 * NULL on failure. */
struct tok *cli_tok_open(const char *cmd, const char *dir);
/* Reads all of stdin (caller frees with ax_free); NULL after printing an error. */
char *cli_read_stdin(const char *cmd, size_t *len);
/* Writes all n bytes to stdout; 0 on success, after printing an error otherwise. */
int cli_write_all(const char *cmd, const void *p, size_t n);

#endif
