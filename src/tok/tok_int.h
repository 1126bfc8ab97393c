/* tok_int.h - private to src/tok/: the loaded tokenizer and the helpers the
 * pipeline stages share (codepoint classes, NFC, split, BPE, byte decoding).
 * Nothing outside src/tok/ (and its unit test) includes this. */
#ifndef AX_TOK_TOK_INT_H
#define AX_TOK_TOK_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tok/tok.h"

#define TOK_MAGIC 0x746f6b31u       /* "tok1" */
#define TOK_MAX_IDS (1u << 24)      /* ids above this are rejected at load */
#define TOK_PCACHE_SLOTS (1u << 16) /* 512 KB: the BPE of frequent short pieces */

/* ---- codepoint classes (unicode_tab.c, built into struct tok_cp) ---- */
struct tok_uni_range {
    uint32_t lo, hi; /* inclusive */
    uint32_t v;      /* class (tok_uni_class) or 1 (tok_uni_age9) */
};
extern const struct tok_uni_range tok_uni_class[];
extern const size_t tok_uni_class_n;
extern const struct tok_uni_range tok_uni_age9[];
extern const size_t tok_uni_age9_n;

/* Class byte of a codepoint: split class in the low bits, plus flags. */
enum {
    TC_OTHER = 0, /* [^\s\p{L}\p{N}] */
    TC_L = 1,     /* \p{L} */
    TC_N = 2,     /* \p{N} */
    TC_WS = 3,    /* \s (Unicode White_Space) */
    TC_MASK = 3,
    TC_NFC_UNSAFE = 4, /* may change under NFC (ccc != 0, or NFC_QC != Yes) */
    TC_NEW = 8,        /* assigned after Unicode 9.0: inert for HF's NFC */
};

/* Two-level table: blocks of 256 codepoints, identical blocks shared. */
struct tok_cp {
    uint16_t idx[0x110000 >> 8]; /* block number per 256-codepoint block */
    uint8_t *blocks;             /* n_blocks * 256 class bytes */
};

static inline uint8_t tok_cp_class(const struct tok_cp *c, uint32_t cp)
{
    return c->blocks[((size_t)c->idx[cp >> 8] << 8) | (cp & 255)];
}

enum ax_err tok_cp_build(struct tok_cp *c, char *err);
void tok_cp_free(struct tok_cp *c);

/* ---- the tokenizer ---- */
struct tok_merge {
    uint32_t a, b; /* left and right ids; a == UINT32_MAX marks an empty slot */
    uint32_t rank; /* position in the merges list: lower merges first */
    uint32_t id;   /* id of the merged token */
};

struct tok_added {
    int32_t id;
    uint32_t off, len; /* content bytes in tok.blob */
    uint8_t special, normalized;
};

enum { TF_PRESENT = 1, TF_SPECIAL = 2, TF_ADDED = 4 };

struct tok {
    uint32_t magic;
    uint32_t n_ids;         /* highest id + 1 */
    char *blob;             /* token bytes, all ids */
    uint32_t *voc_off;      /* [n_ids] base-vocab bytes of id (BPE side) */
    uint32_t *voc_len;      /* [n_ids] 0 = not in the base vocab */
    uint32_t *dec_off;      /* [n_ids] what decoding id yields */
    uint32_t *dec_len;      /* [n_ids] */
    uint8_t *flags;         /* [n_ids] TF_* */
    uint64_t *vhash;        /* base vocab bytes -> tag << 32 | id, UINT64_MAX empty */
    uint32_t vmask;         /* slots - 1 */
    int32_t byte_id[256];   /* id of each single byte, -1 if absent (then dropped, as HF) */
    struct tok_merge *mtab; /* (a, b) -> merge, open addressing */
    uint32_t mmask;         /* slots - 1 */
    uint32_t n_merges;
    _Atomic uint8_t *reach;   /* [n_ids] 0 unknown, 1 BPE of the bytes gives this id, 2 not */
    _Atomic uint64_t *pcache; /* [TOK_PCACHE_SLOTS] piece cache, see bpe.c */
    int ignore_merges;        /* BPE: a piece that is a vocab token is taken whole */
    int nfc;                  /* normalizer is NFC */
    struct tok_added *added;  /* sorted by content length, longest first */
    size_t n_added;
    uint8_t added_first[256]; /* 1 if some added token starts with this byte */
    struct tok_cp cp;
};

/* Hash of a byte string (vocab lookups). */
uint64_t tok_hash_bytes(const uint8_t *p, size_t n);
/* Base-vocab id of the bytes, -1 if absent. */
int32_t tok_vocab_find(const struct tok *t, const uint8_t *p, size_t n);
int32_t tok_vocab_find_h(const struct tok *t, const uint8_t *p, size_t n, uint64_t h);
const struct tok_merge *tok_merge_find(const struct tok *t, uint32_t a, uint32_t b);

/* ---- pretok.c ---- */
/* Length of the piece the split regex matches at s[i] (s is valid UTF-8,
 * already normalized); always >= 1 for i < n. */
size_t tok_split_next(const struct tok *t, const uint8_t *s, size_t i, size_t n);
/* 1 if the UTF-8 text may change under HF's NFC. */
int tok_nfc_needed(const struct tok *t, const uint8_t *s, size_t n);
/* HF's NFC of s into a caller-owned buffer (*out, *out_len); free with ax_free. */
enum ax_err tok_nfc(const struct tok *t, const uint8_t *s, size_t n, uint8_t **out, size_t *out_len,
                    char *err);

/* ---- bpe.c ---- */
/* Scratch for BPE of one piece; grows to the longest piece seen. */
struct tok_bpe_scratch {
    struct tok_sym *sym;
    struct tok_heap_ent *heap;
    size_t cap;
};
void tok_bpe_scratch_free(struct tok_bpe_scratch *s);
/* BPE of one piece (raw bytes) appended at out[*n]; out has room for len ids. */
enum ax_err tok_bpe_piece(const struct tok *t, const uint8_t *p, size_t len,
                          struct tok_bpe_scratch *s, int32_t *out, size_t *n, char *err);

/* ---- decode.c ---- */
/* Appends b as Rust's String::from_utf8_lossy does; complete only, the
 * trailing incomplete sequence (if final == 0) is left: returns bytes used. */
enum ax_err tok_utf8_lossy(const uint8_t *b, size_t n, int final, struct ax_buf *out, size_t *used);

#endif
