/* tok.c - loads tokenizer.json: the vocabulary, merges and added tokens,
 * and checks that the pipeline it describes is the one we implement.
 *
 * tokenizer.json (HF tokenizers, "version": "1.0"), the parts we read:
 *   normalizer      null | {"type":"NFC"} | {"type":"Sequence","normalizers":[NFC?]}
 *   pre_tokenizer   {"type":"Sequence","pretokenizers":[
 *                      {"type":"Split","pattern":{"Regex": QWEN2_RE},"behavior":"Isolated",
 *                       "invert":false},
 *                      {"type":"ByteLevel","add_prefix_space":false,"use_regex":false}]}
 *   model           {"type":"BPE","vocab":{token: id},"merges":["a b" | ["a","b"]],
 *                    "dropout":null,"unk_token":null,"byte_fallback":false,
 *                    "continuing_subword_prefix":""|null,"end_of_word_suffix":""|null,
 *                    "ignore_merges":bool (optional)}
 *   decoder         {"type":"ByteLevel",...}
 *   added_tokens    [{"id","content","special","normalized","lstrip","rstrip","single_word"}]
 * Tokens are written in the byte-level alphabet (byte b -> one character,
 * GPT-2's bytes_to_unicode); we store them as raw bytes. Anything else
 * (other models, pre-tokenizers, lstrip/rstrip/single_word) is rejected
 * with AX_EUNSUPPORTED naming the field.
 *
 * The file is ~11 MB, nearly all vocab and merges. A general JSON parser
 * takes ~400 ms on it, so a focused scanner walks the file once and hands
 * only the small sections to jansson. It does not handle other formats
 * (tokenizer.model, vocab.json + merges.txt). */
#include <jansson.h>
#include <string.h>

#include "tok/tok_int.h"
#include "util/file.h"
#include "util/mem.h"

#define TOK_FILE_MAX ((size_t)512 << 20)
#define JSON_MAX_DEPTH 64

static const char qwen2_re[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                               "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* ---- byte-level alphabet -------------------------------------------- */

/* Byte b is written as itself when printable (! to ~, ¡ to ¬, ® to ÿ) and
 * otherwise as U+0100 + n, n counting the other bytes in order. */
static void byte_alphabet(int16_t inv[324])
{
    for (int c = 0; c < 324; c++)
        inv[c] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        inv[keep ? b : 256 + n++] = (int16_t)b;
    }
}

/* Token text (UTF-8) -> bytes, in place: each character of the byte-level
 * alphabet becomes its byte; a token with any other character keeps its
 * UTF-8 (what HF's ByteLevel decoder does). Returns the new length. */
static size_t unbyte(const int16_t inv[324], char *s, size_t n)
{
    /* first pass: is every character in the alphabet (all are 1 or 2 bytes)? */
    for (size_t i = 0; i < n;) {
        uint8_t b = (uint8_t)s[i];
        uint32_t cp = b;
        if (b >= 0x80) {
            if ((b & 0xE0) != 0xC0 || i + 1 >= n)
                return n;
            cp = ((uint32_t)(b & 0x1F) << 6) | ((uint8_t)s[i + 1] & 0x3F);
        }
        if (cp >= 324 || inv[cp] < 0)
            return n;
        i += b < 0x80 ? 1 : 2;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; o++) {
        uint8_t b = (uint8_t)s[i];
        uint32_t cp = b < 0x80 ? b : ((uint32_t)(b & 0x1F) << 6) | ((uint8_t)s[i + 1] & 0x3F);
        s[o] = (char)inv[cp];
        i += b < 0x80 ? 1 : 2;
    }
    return o;
}

/* ---- a focused JSON scanner ------------------------------------------ */

struct jp {
    const char *p, *start, *end;
    const char *file;
    char *err;
};

static enum ax_err jbad(struct jp *j, const char *what)
{
    return ax_fail(j->err, AX_EFORMAT, "%s: invalid JSON at byte %zu: %s", j->file,
                   (size_t)(j->p - j->start), what);
}

static void jws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int hex4(const char *p, const char *end, uint32_t *v)
{
    if (end - p < 4)
        return 0;
    *v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(p[k]);
        if (h < 0)
            return 0;
        *v = *v << 4 | (uint32_t)h;
    }
    return 1;
}

static void put_utf8(struct ax_buf *b, uint32_t cp, enum ax_err *e)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18);
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    if (*e == AX_OK)
        *e = ax_buf_append(b, u, n);
}

static enum ax_err jescape(struct jp *j, struct ax_buf *b)
{
    enum ax_err e = AX_OK;
    char c = *j->p++;
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *k = c ? strchr(from, c) : NULL;
    if (k) {
        if (b)
            e = ax_buf_putc(b, to[k - from]);
        return e;
    }
    if (c != 'u')
        return jbad(j, "bad escape in a string");
    uint32_t cp, lo;
    if (!hex4(j->p, j->end, &cp))
        return jbad(j, "bad \\u escape");
    j->p += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return jbad(j, "lone low surrogate");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' ||
            !hex4(j->p + 2, j->end, &lo) || lo < 0xDC00 || lo > 0xDFFF)
            return jbad(j, "lone high surrogate");
        j->p += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (b)
        put_utf8(b, cp, &e);
    return e;
}

/* A string at j->p into b (reset first; NULL skips). Raw bytes are copied:
 * jansson checks UTF-8 of the sections it parses, tok_load the rest. */
static enum ax_err jstring(struct jp *j, struct ax_buf *b)
{
    if (j->p >= j->end || *j->p != '"')
        return jbad(j, "expected a string");
    j->p++;
    if (b)
        ax_buf_reset(b);
    for (;;) {
        const char *q = j->p;
        while (q < j->end && *q != '"' && *q != '\\' && (uint8_t)*q >= 0x20)
            q++;
        if (b && q > j->p && ax_buf_append(b, j->p, (size_t)(q - j->p)) != AX_OK)
            return ax_fail(j->err, AX_ENOMEM, "%s: out of memory", j->file);
        j->p = q;
        if (q >= j->end)
            return jbad(j, "unterminated string");
        if (*q == '"') {
            j->p++;
            if (b && !b->data && ax_buf_append(b, "", 0) != AX_OK)
                return ax_fail(j->err, AX_ENOMEM, "%s: out of memory", j->file);
            return AX_OK;
        }
        if ((uint8_t)*q < 0x20)
            return jbad(j, "control character in a string");
        j->p++;
        if (j->p >= j->end)
            return jbad(j, "unterminated string");
        enum ax_err e = jescape(j, b);
        if (e != AX_OK)
            return e;
    }
}

/* Skips one value without recursion (a stack of bracket kinds). */
static enum ax_err jskip(struct jp *j)
{
    char stack[JSON_MAX_DEPTH];
    int depth = 0;
    do {
        jws(j);
        if (j->p >= j->end)
            return jbad(j, "unexpected end");
        char c = *j->p;
        if (c == '{' || c == '[') {
            if (depth == JSON_MAX_DEPTH)
                return jbad(j, "nested too deep");
            stack[depth++] = c == '{' ? '}' : ']';
            j->p++;
            continue;
        }
        if (c == '}' || c == ']') {
            if (depth == 0 || stack[depth - 1] != c)
                return jbad(j, "unbalanced brackets");
            depth--;
            j->p++;
        } else if (c == '"') {
            enum ax_err e = jstring(j, NULL);
            if (e != AX_OK)
                return e;
        } else if (c == ',' || c == ':') {
            if (depth == 0)
                return jbad(j, "unexpected separator");
            j->p++;
        } else {
            const char *q = j->p;
            while (q < j->end &&
                   (strchr("+-.eE", *q) || (*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'z')))
                q++;
            if (q == j->p)
                return jbad(j, "unexpected character");
            j->p = q;
        }
    } while (depth > 0);
    return AX_OK;
}

/* Object members: returns 1 with the key read and ':' consumed, 0 at '}'. */
static int jmember(struct jp *j, int *first, struct ax_buf *key, enum ax_err *e)
{
    jws(j);
    if (*first) {
        if (j->p >= j->end || *j->p != '{') {
            *e = jbad(j, "expected an object");
            return 0;
        }
        j->p++;
        jws(j);
        *first = 0;
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            return 0;
        }
    } else {
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            return 0;
        }
        if (j->p >= j->end || *j->p != ',') {
            *e = jbad(j, "expected ',' or '}'");
            return 0;
        }
        j->p++;
        jws(j);
    }
    if ((*e = jstring(j, key)) != AX_OK)
        return 0;
    jws(j);
    if (j->p >= j->end || *j->p != ':') {
        *e = jbad(j, "expected ':'");
        return 0;
    }
    j->p++;
    jws(j);
    return 1;
}

/* Array elements: returns 1 before each element, 0 at ']'. */
static int jelem(struct jp *j, int *first, enum ax_err *e)
{
    jws(j);
    if (*first) {
        if (j->p >= j->end || *j->p != '[') {
            *e = jbad(j, "expected an array");
            return 0;
        }
        j->p++;
        jws(j);
        *first = 0;
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            return 0;
        }
        return 1;
    }
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        return 0;
    }
    if (j->p >= j->end || *j->p != ',') {
        *e = jbad(j, "expected ',' or ']'");
        return 0;
    }
    j->p++;
    jws(j);
    return 1;
}

static enum ax_err jid(struct jp *j, uint32_t *out)
{
    const char *q = j->p;
    uint64_t v = 0;
    while (q < j->end && *q >= '0' && *q <= '9' && v < TOK_MAX_IDS)
        v = v * 10 + (uint64_t)(*q++ - '0');
    if (q == j->p || (q < j->end && strchr("0123456789.eE", *q)) || v >= TOK_MAX_IDS)
        return jbad(j, "token id must be an integer from 0 to 16777215");
    j->p = q;
    *out = (uint32_t)v;
    return AX_OK;
}

/* ---- the sections -------------------------------------------------- */

struct span {
    const char *p;
    size_t n; /* 0 = absent */
};

struct load {
    struct tok *t;
    const char *file;
    char *err;
    int16_t inv[324];
    struct span model, vocab, merges, added, normalizer, pretok, decoder;
    struct span m_type, m_dropout, m_unk, m_prefix, m_suffix, m_fallback, m_ignore;
    struct ax_buf key;
    /* vocab entries as read: id and bytes in t->blob */
    uint32_t *e_id, *e_off, *e_len;
    size_t n_e, cap_e;
    struct ax_buf blob;
};

static enum ax_err capture(struct jp *j, struct span *s)
{
    const char *p = j->p;
    enum ax_err e = jskip(j);
    s->p = p;
    s->n = (size_t)(j->p - p);
    return e;
}

static enum ax_err read_vocab(struct load *L, struct jp *j);

/* The model object, in the stream: the vocab (an object) is read on the
 * spot, everything else is captured for later. */
static enum ax_err walk_model(struct load *L, struct jp *jt)
{
    struct jp j = *jt;
    int first = 1;
    enum ax_err e = AX_OK;
    while (jmember(&j, &first, &L->key, &e)) {
        const char *k = L->key.data;
        if (!strcmp(k, "vocab") && j.p < j.end && *j.p == '{' && !L->n_e) {
            if ((e = read_vocab(L, &j)) != AX_OK)
                return e;
            L->vocab.n = 1;
            continue;
        }
        struct span *s = !strcmp(k, "vocab")                       ? &L->vocab
                         : !strcmp(k, "merges")                    ? &L->merges
                         : !strcmp(k, "type")                      ? &L->m_type
                         : !strcmp(k, "dropout")                   ? &L->m_dropout
                         : !strcmp(k, "unk_token")                 ? &L->m_unk
                         : !strcmp(k, "continuing_subword_prefix") ? &L->m_prefix
                         : !strcmp(k, "end_of_word_suffix")        ? &L->m_suffix
                         : !strcmp(k, "byte_fallback")             ? &L->m_fallback
                         : !strcmp(k, "ignore_merges")             ? &L->m_ignore
                                                                   : NULL;
        struct span skip;
        if ((e = capture(&j, s ? s : &skip)) != AX_OK)
            return e;
    }
    jt->p = j.p;
    return e;
}

static enum ax_err walk_top(struct load *L, struct jp *j)
{
    int first = 1;
    enum ax_err e = AX_OK;
    while (jmember(j, &first, &L->key, &e)) {
        const char *k = L->key.data;
        if (!strcmp(k, "model")) {
            if ((e = walk_model(L, j)) != AX_OK)
                return e;
            L->model.n = 1;
            continue;
        }
        struct span *s = !strcmp(k, "added_tokens")    ? &L->added
                         : !strcmp(k, "normalizer")    ? &L->normalizer
                         : !strcmp(k, "pre_tokenizer") ? &L->pretok
                         : !strcmp(k, "decoder")       ? &L->decoder
                                                       : NULL;
        struct span skip;
        if ((e = capture(j, s ? s : &skip)) != AX_OK)
            return e;
    }
    if (e == AX_OK && !L->model.n)
        e = ax_fail(L->err, AX_EFORMAT, "%s: no \"model\" section", L->file);
    return e;
}

/* Parses a small section with jansson; *out NULL when absent. */
static enum ax_err section(struct load *L, const struct span *s, const char *name, json_t **out)
{
    *out = NULL;
    if (!s->n)
        return AX_OK;
    json_error_t je;
    *out = json_loadb(s->p, s->n, JSON_DECODE_ANY, &je);
    if (!*out)
        return ax_fail(L->err, AX_EFORMAT, "%s: %s: %s", L->file, name, je.text);
    return AX_OK;
}

static int jstr_is(json_t *o, const char *key, const char *want)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) && !strcmp(json_string_value(v), want);
}

static int jfalse_or_absent(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return !v || json_is_false(v) || json_is_null(v);
}

static enum ax_err unsupported(struct load *L, const char *what)
{
    return ax_fail(L->err, AX_EUNSUPPORTED,
                   "%s: unsupported tokenizer: %s (only the byte-level BPE of Qwen2/Qwen2.5/"
                   "Qwen3 is implemented)",
                   L->file, what);
}

static enum ax_err check_normalizer(struct load *L)
{
    json_t *n;
    enum ax_err e = section(L, &L->normalizer, "normalizer", &n);
    if (e != AX_OK)
        return e;
    L->t->nfc = 0;
    if (!n || json_is_null(n))
        ;
    else if (jstr_is(n, "type", "NFC"))
        L->t->nfc = 1;
    else if (jstr_is(n, "type", "Sequence") && json_is_array(json_object_get(n, "normalizers")) &&
             json_array_size(json_object_get(n, "normalizers")) <= 1) {
        json_t *one = json_array_get(json_object_get(n, "normalizers"), 0);
        if (one && !jstr_is(one, "type", "NFC"))
            e = unsupported(L, "normalizer other than NFC");
        L->t->nfc = one != NULL;
    } else
        e = unsupported(L, "normalizer other than NFC");
    json_decref(n);
    return e;
}

static enum ax_err check_pretok(struct load *L)
{
    json_t *p;
    enum ax_err e = section(L, &L->pretok, "pre_tokenizer", &p);
    if (e != AX_OK)
        return e;
    json_t *list = json_object_get(p, "pretokenizers");
    json_t *split = json_array_get(list, 0), *bl = json_array_get(list, 1);
    json_t *pat = json_object_get(split, "pattern");
    if (!jstr_is(p, "type", "Sequence") || json_array_size(list) != 2)
        e = unsupported(L, "pre_tokenizer is not Sequence[Split, ByteLevel]");
    else if (!jstr_is(split, "type", "Split") || !jstr_is(pat, "Regex", qwen2_re))
        e = unsupported(L, "pre_tokenizer Split regex is not the Qwen2 one");
    else if (!jstr_is(split, "behavior", "Isolated") || !jfalse_or_absent(split, "invert"))
        e = unsupported(L, "pre_tokenizer Split is not Isolated");
    else if (!jstr_is(bl, "type", "ByteLevel") || !jfalse_or_absent(bl, "add_prefix_space") ||
             !jfalse_or_absent(bl, "use_regex"))
        e = unsupported(L, "pre_tokenizer ByteLevel with add_prefix_space or use_regex");
    json_decref(p);
    return e;
}

static enum ax_err check_decoder(struct load *L)
{
    json_t *d;
    enum ax_err e = section(L, &L->decoder, "decoder", &d);
    if (e == AX_OK && !jstr_is(d, "type", "ByteLevel"))
        e = unsupported(L, "decoder is not ByteLevel");
    json_decref(d);
    return e;
}

static int span_is(const struct span *s, const char *a, const char *b)
{
    if (!s->n)
        return 1; /* absent: the default */
    return (strlen(a) == s->n && !memcmp(s->p, a, s->n)) ||
           (b && strlen(b) == s->n && !memcmp(s->p, b, s->n));
}

static enum ax_err check_model(struct load *L)
{
    if (!span_is(&L->m_type, "\"BPE\"", NULL) || !L->m_type.n)
        return unsupported(L, "model.type is not BPE");
    if (!span_is(&L->m_dropout, "null", NULL))
        return unsupported(L, "model.dropout");
    if (!span_is(&L->m_unk, "null", NULL))
        return unsupported(L, "model.unk_token");
    if (!span_is(&L->m_prefix, "null", "\"\"") || !span_is(&L->m_suffix, "null", "\"\""))
        return unsupported(L, "model.continuing_subword_prefix/end_of_word_suffix");
    if (!span_is(&L->m_fallback, "false", NULL))
        return unsupported(L, "model.byte_fallback");
    if (!span_is(&L->m_ignore, "false", "true"))
        return unsupported(L, "model.ignore_merges is not a boolean");
    L->t->ignore_merges = L->m_ignore.n == 4;
    if (!L->n_e || !L->merges.n)
        return ax_fail(L->err, AX_EFORMAT, "%s: model.vocab (an object) or model.merges is missing",
                       L->file);
    return AX_OK;
}

/* ---- vocab ------------------------------------------------------------ */

uint64_t tok_hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    return h ^ (h >> 29);
}

/* Slots hold (hash tag << 32 | id), so a probe rarely touches the bytes of a
 * token that does not match. */
int32_t tok_vocab_find(const struct tok *t, const uint8_t *p, size_t n)
{
    return tok_vocab_find_h(t, p, n, tok_hash_bytes(p, n));
}

int32_t tok_vocab_find_h(const struct tok *t, const uint8_t *p, size_t n, uint64_t h)
{
    uint32_t i = (uint32_t)h & t->vmask, tag = (uint32_t)(h >> 32);
    for (;; i = (i + 1) & t->vmask) {
        uint64_t v = t->vhash[i];
        if (v == UINT64_MAX)
            return -1;
        uint32_t id = (uint32_t)v;
        if ((uint32_t)(v >> 32) == tag && t->voc_len[id] == n &&
            !memcmp(t->blob + t->voc_off[id], p, n))
            return (int32_t)id;
    }
}

static enum ax_err add_entry(struct load *L, uint32_t id, const char *s, size_t n)
{
    if (L->n_e == L->cap_e) {
        size_t c = L->cap_e ? L->cap_e * 2 : 4096;
        uint32_t *a = ax_reallocarray(L->e_id, c, 4), *b = NULL, *d = NULL;
        if (a) {
            L->e_id = a;
            b = ax_reallocarray(L->e_off, c, 4);
        }
        if (b) {
            L->e_off = b;
            d = ax_reallocarray(L->e_len, c, 4);
        }
        if (!d)
            return ax_fail(L->err, AX_ENOMEM, "%s: out of memory (vocab)", L->file);
        L->e_len = d;
        L->cap_e = c;
    }
    if (L->blob.len + n >= UINT32_MAX)
        return ax_fail(L->err, AX_ETOOBIG, "%s: vocabulary too large", L->file);
    L->e_id[L->n_e] = id;
    L->e_off[L->n_e] = (uint32_t)L->blob.len;
    L->e_len[L->n_e] = (uint32_t)n;
    L->n_e++;
    if (ax_buf_append(&L->blob, s, n) != AX_OK)
        return ax_fail(L->err, AX_ENOMEM, "%s: out of memory (vocab)", L->file);
    return AX_OK;
}

static enum ax_err read_vocab(struct load *L, struct jp *j)
{
    int first = 1;
    enum ax_err e = AX_OK;
    while (jmember(j, &first, &L->key, &e)) {
        uint32_t id = 0;
        if ((e = jid(j, &id)) != AX_OK)
            return e;
        size_t n = unbyte(L->inv, L->key.data, L->key.len);
        if ((e = add_entry(L, id, L->key.data, n)) != AX_OK)
            return e;
    }
    if (e == AX_OK && L->n_e == 0)
        e = ax_fail(L->err, AX_EFORMAT, "%s: model.vocab is empty", L->file);
    return e;
}

static uint32_t pow2_at_least(size_t n)
{
    uint32_t c = 16;
    while (c < n)
        c <<= 1;
    return c;
}

static enum ax_err build_ids(struct load *L, uint32_t n_ids)
{
    struct tok *t = L->t;
    t->n_ids = n_ids;
    t->voc_off = ax_calloc(n_ids, 4);
    t->voc_len = ax_calloc(n_ids, 4);
    t->dec_off = ax_calloc(n_ids, 4);
    t->dec_len = ax_calloc(n_ids, 4);
    t->flags = ax_calloc(n_ids, 1);
    t->reach = ax_calloc(n_ids, sizeof *t->reach);
    t->pcache = ax_calloc(TOK_PCACHE_SLOTS, sizeof *t->pcache);
    t->vmask = pow2_at_least(L->n_e + L->n_e / 2) - 1; /* load <= 2/3 */
    t->vhash = ax_mallocarray((size_t)t->vmask + 1, sizeof *t->vhash);
    if (!t->voc_off || !t->voc_len || !t->dec_off || !t->dec_len || !t->flags || !t->reach ||
        !t->vhash || !t->pcache)
        return ax_fail(L->err, AX_ENOMEM, "%s: out of memory (%u ids)", L->file, n_ids);
    memset(t->vhash, 0xFF, ((size_t)t->vmask + 1) * sizeof *t->vhash);
    for (size_t k = 0; k < L->n_e; k++) {
        uint32_t id = L->e_id[k];
        t->voc_off[id] = t->dec_off[id] = L->e_off[k];
        t->voc_len[id] = t->dec_len[id] = L->e_len[k];
        t->flags[id] |= TF_PRESENT;
    }
    /* hash after all entries are placed: a repeated id keeps its last text */
    for (uint32_t id = 0; id < n_ids; id++) {
        if (!(t->flags[id] & TF_PRESENT) || t->voc_len[id] == 0)
            continue;
        const uint8_t *p = (const uint8_t *)t->blob + t->voc_off[id];
        size_t n = t->voc_len[id];
        uint64_t h = tok_hash_bytes(p, n);
        uint32_t i = (uint32_t)h & t->vmask, tag = (uint32_t)(h >> 32), dup = 0;
        for (; t->vhash[i] != UINT64_MAX; i = (i + 1) & t->vmask) {
            uint32_t o = (uint32_t)t->vhash[i];
            if ((uint32_t)(t->vhash[i] >> 32) == tag && t->voc_len[o] == n &&
                !memcmp(t->blob + t->voc_off[o], p, n))
                dup = 1; /* two tokens with the same bytes: the first id wins */
        }
        if (!dup)
            t->vhash[i] = (uint64_t)tag << 32 | id;
    }
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        t->byte_id[b] = tok_vocab_find(t, &c, 1);
    }
    return AX_OK;
}

/* ---- merges ----------------------------------------------------------- */

const struct tok_merge *tok_merge_find(const struct tok *t, uint32_t a, uint32_t b)
{
    uint64_t k = ((uint64_t)a << 32 | b) * 0x9E3779B97F4A7C15ull;
    uint32_t i = (uint32_t)(k >> 40) & t->mmask;
    for (;; i = (i + 1) & t->mmask) {
        const struct tok_merge *m = &t->mtab[i];
        if (m->a == UINT32_MAX)
            return NULL;
        if (m->a == a && m->b == b)
            return m;
    }
}

/* A later duplicate of a pair overwrites the earlier, as HF's HashMap does. */
static void merge_put(struct tok *t, uint32_t a, uint32_t b, uint32_t rank, uint32_t id)
{
    uint64_t k = ((uint64_t)a << 32 | b) * 0x9E3779B97F4A7C15ull;
    uint32_t i = (uint32_t)(k >> 40) & t->mmask;
    while (t->mtab[i].a != UINT32_MAX && !(t->mtab[i].a == a && t->mtab[i].b == b))
        i = (i + 1) & t->mmask;
    t->mtab[i] = (struct tok_merge){a, b, rank, id};
}

static enum ax_err merge_id(struct load *L, const char *s, size_t n, int32_t *id)
{
    char tmp[256];
    if (n > sizeof tmp)
        return ax_fail(L->err, AX_EFORMAT, "%s: merge token longer than 256 bytes", L->file);
    memcpy(tmp, s, n);
    size_t m = unbyte(L->inv, tmp, n);
    *id = tok_vocab_find(L->t, (const uint8_t *)tmp, m);
    if (*id < 0)
        return ax_fail(L->err, AX_EFORMAT, "%s: merge token '%.*s' is not in model.vocab", L->file,
                       (int)n, s);
    return AX_OK;
}

/* GPT-2 style vocabularies number merged tokens in merge order (id = 256 +
 * rank for all of Qwen's): try that id first, a sequential access, before
 * the hash lookup. */
static int is_token(const struct tok *t, uint32_t id, const char *s, size_t n)
{
    return id < t->n_ids && t->voc_len[id] == n && !memcmp(t->blob + t->voc_off[id], s, n);
}

static enum ax_err add_merge(struct load *L, const char *a, size_t na, const char *b, size_t nb,
                             uint32_t rank)
{
    int32_t ia = -1, ib = -1, im = -1;
    char cat[512];
    enum ax_err e;
    if ((e = merge_id(L, a, na, &ia)) != AX_OK || (e = merge_id(L, b, nb, &ib)) != AX_OK)
        return e;
    if (na + nb > sizeof cat)
        return ax_fail(L->err, AX_EFORMAT, "%s: merge result too long", L->file);
    memcpy(cat, a, na);
    memcpy(cat + na, b, nb);
    size_t n = unbyte(L->inv, cat, na + nb);
    if (is_token(L->t, 256 + rank, cat, n))
        im = (int32_t)(256 + rank);
    else if ((im = tok_vocab_find(L->t, (const uint8_t *)cat, n)) < 0)
        return ax_fail(L->err, AX_EFORMAT, "%s: merge result '%.*s%.*s' is not in model.vocab",
                       L->file, (int)na, a, (int)nb, b);
    merge_put(L->t, (uint32_t)ia, (uint32_t)ib, rank, (uint32_t)im);
    return AX_OK;
}

/* One merge: "a b" (one space) or ["a", "b"]. */
static enum ax_err read_merge(struct load *L, struct jp *j, struct ax_buf *tmp, uint32_t rank)
{
    enum ax_err e;
    if (j->p < j->end && *j->p == '"') {
        if ((e = jstring(j, &L->key)) != AX_OK)
            return e;
        const char *sp = memchr(L->key.data, ' ', L->key.len);
        if (!sp || memchr(sp + 1, ' ', L->key.len - (size_t)(sp + 1 - L->key.data)))
            return ax_fail(L->err, AX_EFORMAT, "%s: merge %u is not \"a b\"", L->file, rank);
        return add_merge(L, L->key.data, (size_t)(sp - L->key.data), sp + 1,
                         L->key.len - (size_t)(sp + 1 - L->key.data), rank);
    }
    int first = 1, n = 0;
    while (jelem(j, &first, &e)) {
        if (n >= 2)
            return ax_fail(L->err, AX_EFORMAT, "%s: merge %u has more than 2 parts", L->file, rank);
        if ((e = jstring(j, n == 0 ? tmp : &L->key)) != AX_OK)
            return e;
        n++;
    }
    if (e != AX_OK)
        return e;
    if (n != 2)
        return ax_fail(L->err, AX_EFORMAT, "%s: merge %u does not have 2 parts", L->file, rank);
    return add_merge(L, tmp->data, tmp->len, L->key.data, L->key.len, rank);
}

static enum ax_err read_merges(struct load *L)
{
    struct tok *t = L->t;
    /* an upper bound on the count: each merge is one string "a b" or two in
     * [a, b]; the first merge tells which */
    size_t est = 1, quotes = 0, k = 1;
    for (size_t i = 0; i < L->merges.n; i++)
        quotes += L->merges.p[i] == '"';
    while (k < L->merges.n && strchr(" \t\r\n", L->merges.p[k]))
        k++;
    est += k < L->merges.n && L->merges.p[k] == '[' ? quotes / 4 : quotes / 2;
    t->mmask = pow2_at_least(est + est / 2) - 1; /* load <= 2/3 */
    t->mtab = ax_mallocarray((size_t)t->mmask + 1, sizeof *t->mtab);
    if (!t->mtab)
        return ax_fail(L->err, AX_ENOMEM, "%s: out of memory (merges)", L->file);
    memset(t->mtab, 0xFF, ((size_t)t->mmask + 1) * sizeof *t->mtab);
    struct jp j = {L->merges.p, L->merges.p, L->merges.p + L->merges.n, L->file, L->err};
    struct ax_buf tmp;
    ax_buf_init(&tmp, 1 << 20);
    int first = 1;
    enum ax_err e = AX_OK;
    uint32_t rank = 0;
    while (jelem(&j, &first, &e)) {
        if (rank >= est) { /* only when string and array forms are mixed */
            e = ax_fail(L->err, AX_EFORMAT, "%s: model.merges mixes \"a b\" and [a, b]", L->file);
            break;
        }
        if ((e = read_merge(L, &j, &tmp, rank)) != AX_OK)
            break;
        rank++;
    }
    ax_buf_free(&tmp);
    t->n_merges = rank;
    return e;
}

/* ---- added tokens -------------------------------------------------- */

static int added_cmp(const void *a, const void *b)
{
    const struct tok_added *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static enum ax_err read_added(struct load *L, uint32_t *max_id)
{
    json_t *a;
    enum ax_err e = section(L, &L->added, "added_tokens", &a);
    if (e != AX_OK || !a)
        return e;
    if (!json_is_array(a)) {
        json_decref(a);
        return ax_fail(L->err, AX_EFORMAT, "%s: added_tokens is not an array", L->file);
    }
    size_t n = json_array_size(a);
    L->t->added = ax_calloc(n ? n : 1, sizeof *L->t->added);
    if (!L->t->added) {
        json_decref(a);
        return ax_fail(L->err, AX_ENOMEM, "%s: out of memory (added_tokens)", L->file);
    }
    for (size_t i = 0; i < n && e == AX_OK; i++) {
        json_t *o = json_array_get(a, i), *id = json_object_get(o, "id");
        json_t *c = json_object_get(o, "content");
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= TOK_MAX_IDS || !json_is_string(c) ||
            json_string_length(c) == 0 || json_string_length(c) > 4096) {
            e = ax_fail(L->err, AX_EFORMAT,
                        "%s: added_tokens[%zu] needs an integer id and a non-empty content",
                        L->file, i);
            break;
        }
        if (!jfalse_or_absent(o, "lstrip") || !jfalse_or_absent(o, "rstrip") ||
            !jfalse_or_absent(o, "single_word")) {
            e = unsupported(L, "added token with lstrip, rstrip or single_word");
            break;
        }
        struct tok_added *t = &L->t->added[L->t->n_added++];
        t->id = (int32_t)json_integer_value(id);
        t->special = json_is_true(json_object_get(o, "special"));
        t->normalized = json_is_true(json_object_get(o, "normalized"));
        t->off = (uint32_t)L->blob.len;
        t->len = (uint32_t)json_string_length(c);
        if (ax_buf_append(&L->blob, json_string_value(c), t->len) != AX_OK)
            e = ax_fail(L->err, AX_ENOMEM, "%s: out of memory", L->file);
        if ((uint32_t)t->id > *max_id)
            *max_id = (uint32_t)t->id;
    }
    json_decref(a);
    return e;
}

/* Decoding an added token gives its content through the byte-level
 * decoder (HF decodes it like any token), so the bytes are stored twice. */
static enum ax_err place_added(struct load *L)
{
    struct tok *t = L->t;
    for (size_t k = 0; k < t->n_added; k++) {
        struct tok_added *a = &t->added[k];
        uint32_t off = (uint32_t)L->blob.len;
        /* reserve first: appending from the buffer itself must not move it */
        if (ax_buf_reserve(&L->blob, a->len) != AX_OK ||
            ax_buf_append(&L->blob, L->blob.data + a->off, a->len) != AX_OK)
            return ax_fail(L->err, AX_ENOMEM, "%s: out of memory", L->file);
        size_t n = unbyte(L->inv, L->blob.data + off, a->len);
        L->blob.len = off + n;
        t->dec_off[a->id] = off;
        t->dec_len[a->id] = (uint32_t)n;
        t->flags[a->id] |= TF_PRESENT | TF_ADDED | (a->special ? TF_SPECIAL : 0);
        t->added_first[(uint8_t)L->blob.data[a->off]] = 1;
    }
    if (t->n_added > 1) /* qsort(NULL, 0) is undefined */
        qsort(t->added, t->n_added, sizeof *t->added, added_cmp);
    return AX_OK;
}

/* ---- load ---------------------------------------------------------- */

static enum ax_err load_all(struct load *L, const char *text, size_t len)
{
    struct jp j = {text, text, text + len, L->file, L->err};
    enum ax_err e;
    uint32_t max_id = 0;
    if ((e = walk_top(L, &j)) != AX_OK || (e = check_model(L)) != AX_OK ||
        (e = check_normalizer(L)) != AX_OK || (e = check_pretok(L)) != AX_OK ||
        (e = check_decoder(L)) != AX_OK || (e = read_added(L, &max_id)) != AX_OK)
        return e;
    for (size_t k = 0; k < L->n_e; k++)
        if (L->e_id[k] > max_id)
            max_id = L->e_id[k];
    L->t->blob = L->blob.data; /* may move until loading ends: refreshed below */
    if ((e = build_ids(L, max_id + 1)) != AX_OK || (e = read_merges(L)) != AX_OK ||
        (e = place_added(L)) != AX_OK)
        return e;
    L->t->blob = L->blob.data;
    return tok_cp_build(&L->t->cp, L->err);
}

static enum ax_err check_lfs(const char *path, const char *text, size_t len, char *err)
{
    static const char sig[] = "version https://git-lfs.github.com/spec/v1";
    if (len >= sizeof sig - 1 && !memcmp(text, sig, sizeof sig - 1))
        return ax_fail(err, AX_ELFS,
                       "%s is a Git LFS pointer, not the real file: fetch it with `git lfs "
                       "pull` or `axserve pull`",
                       path);
    return AX_OK;
}

enum ax_err tok_load_buf(const char *text, size_t len, const char *name, struct tok **out,
                         char *err)
{
    *out = NULL;
    enum ax_err e = check_lfs(name, text, len, err);
    if (e != AX_OK)
        return e;
    struct tok *t = ax_calloc(1, sizeof *t);
    struct load L = {.t = t, .file = name, .err = err};
    if (!t)
        return ax_fail(err, AX_ENOMEM, "%s: out of memory", name);
    t->magic = TOK_MAGIC;
    byte_alphabet(L.inv);
    ax_buf_init(&L.key, 1 << 20);
    ax_buf_init(&L.blob, (size_t)UINT32_MAX - 1);
    e = load_all(&L, text, len);
    t->blob = L.blob.data;
    if (e == AX_OK && !t->blob)
        e = ax_fail(err, AX_EFORMAT, "%s: empty vocabulary", name);
    ax_buf_free(&L.key);
    ax_free(L.e_id);
    ax_free(L.e_off);
    ax_free(L.e_len);
    if (e != AX_OK) {
        if (!t->blob)
            ax_buf_free(&L.blob);
        tok_free(t);
        return e;
    }
    *out = t;
    return AX_OK;
}

/* Maps the file rather than reading it: no 11 MB copy, and the pages come
 * straight from the page cache. */
enum ax_err tok_load(const char *tokenizer_json, struct tok **out, char *err)
{
    *out = NULL;
    struct ax_map m;
    enum ax_err e = ax_map_open(tokenizer_json, &m, err);
    if (e != AX_OK)
        return e;
    if (m.size > TOK_FILE_MAX)
        e = ax_fail(err, AX_ETOOBIG, "%s: %zu bytes, more than the %zu allowed", tokenizer_json,
                    m.size, TOK_FILE_MAX);
    else
        e = tok_load_buf(m.data ? (const char *)m.data : "", m.size, tokenizer_json, out, err);
    ax_map_close(&m);
    return e;
}

void tok_free(struct tok *t)
{
    if (!t)
        return;
    ax_free(t->blob);
    ax_free(t->voc_off);
    ax_free(t->voc_len);
    ax_free(t->dec_off);
    ax_free(t->dec_len);
    ax_free(t->flags);
    ax_free((void *)t->reach);
    ax_free((void *)t->pcache);
    ax_free(t->vhash);
    ax_free(t->mtab);
    ax_free(t->added);
    tok_cp_free(&t->cp);
    t->magic = 0;
    ax_free(t);
}

/* ---- lookups ------------------------------------------------------- */

int tok_vocab_size(const struct tok *t)
{
    return (int)t->n_ids;
}

int32_t tok_id(const struct tok *t, const char *token_text)
{
    size_t n = strlen(token_text);
    for (size_t k = 0; k < t->n_added; k++)
        if (t->added[k].len == n && !memcmp(t->blob + t->added[k].off, token_text, n))
            return t->added[k].id;
    if (n >= 1024)
        return -1;
    char tmp[1024];
    int16_t inv[324];
    byte_alphabet(inv);
    memcpy(tmp, token_text, n + 1); /* n < 1024: with its NUL */
    return tok_vocab_find(t, (const uint8_t *)tmp, unbyte(inv, tmp, n));
}

int tok_is_special(const struct tok *t, int32_t id)
{
    return id >= 0 && (uint32_t)id < t->n_ids && (t->flags[id] & TF_SPECIAL);
}

const char *tok_bytes(const struct tok *t, int32_t id, size_t *len)
{
    if (id < 0 || (uint32_t)id >= t->n_ids || !(t->flags[id] & TF_PRESENT)) {
        *len = 0;
        return NULL;
    }
    *len = t->dec_len[id];
    return t->blob + t->dec_off[id];
}
