/* tok.h - the Qwen2/Qwen3 byte-level BPE tokenizer, read from
 * tokenizer.json, exactly as Hugging Face tokenizers encodes and decodes.
 *
 * Pipeline: added tokens matched in the raw text -> NFC -> the Qwen2 split
 * regex (Isolated) -> byte-level mapping -> BPE by merge rank. Decoding maps
 * token bytes back; the stream decoder never emits a broken UTF-8 sequence. */
#ifndef AX_TOK_TOK_H
#define AX_TOK_TOK_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

struct tok;

/* Loads tokenizer.json. OUT *out valid on AX_OK; free with tok_free. */
enum ax_err tok_load(const char *tokenizer_json, struct tok **out, char *err);
/* The same from len bytes of tokenizer.json in memory; name is used in
 * error messages only. text need not be NUL-terminated. */
enum ax_err tok_load_buf(const char *text, size_t len, const char *name, struct tok **out,
                         char *err);
void tok_free(struct tok *t);

/* Encodes len bytes of UTF-8 text (no BOS is added, as HF does for Qwen)
 * into out, which holds cap ids. A token covers at least one byte of the
 * NFC-normalized text, and NFC grows text at most 3x, so cap =
 * tok_max_ids(len) always suffices; a smaller cap that turns out too small
 * is AX_ETOOBIG. Invalid UTF-8 is AX_EUTF8. *n_out is the number of ids.
 * Thread-safe: t is only read after load (plus a lock-free memo). */
enum ax_err tok_encode_cap(const struct tok *t, const char *text, size_t len, int32_t *out,
                           size_t cap, size_t *n_out, char *err);
size_t tok_max_ids(size_t len);
/* tok_encode_cap with cap = len + 1: enough for any text that NFC does not
 * lengthen (all but a few rare characters); otherwise AX_ETOOBIG. */
enum ax_err tok_encode(const struct tok *t, const char *text, size_t len, int32_t *out,
                       size_t *n_out, char *err);

/* Appends the text of ids to out. skip_special drops tokens marked
 * "special" in added_tokens. Ids outside the vocabulary are AX_ERANGE. */
enum ax_err tok_decode(const struct tok *t, const int32_t *ids, size_t n, int skip_special,
                       struct ax_buf *out, char *err);

int tok_vocab_size(const struct tok *t);                     /* highest id + 1 */
int32_t tok_id(const struct tok *t, const char *token_text); /* -1 if absent */
int tok_is_special(const struct tok *t, int32_t id);
/* Raw bytes of one token (after byte-level decoding; may be a partial
 * UTF-8 sequence). Borrowed; NULL for an out-of-range id. */
const char *tok_bytes(const struct tok *t, int32_t id, size_t *len);

/* Incremental detokenizer for streaming. Output concatenated over all
 * pushes plus the final flush is byte-identical to tok_decode of all ids. */
struct tok_stream {
    const struct tok *t;
    int skip_special;
    char pending[8]; /* bytes of an incomplete UTF-8 sequence */
    size_t n_pending;
};

void tok_stream_init(struct tok_stream *s, const struct tok *t, int skip_special);
/* Appends the complete UTF-8 produced by id to out (possibly nothing). */
enum ax_err tok_stream_push(struct tok_stream *s, int32_t id, struct ax_buf *out, char *err);
/* Appends what is left (incomplete bytes, replaced as tok_decode would). */
enum ax_err tok_stream_flush(struct tok_stream *s, struct ax_buf *out, char *err);

#endif
