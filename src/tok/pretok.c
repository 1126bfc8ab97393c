/* pretok.c - the text side of encoding: codepoint classes, HF's NFC and the
 * Qwen2 split regex as a hand-written linear-time splitter.
 *
 * The regex (pre_tokenizer Split, behavior Isolated) is
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}
 *   | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * run by Oniguruma: at each position the first alternative that matches
 * wins, greedy with backtracking. Every character is matched by some
 * alternative, so the pieces tile the text. tok_split_next below spells out
 * what each alternative does after backtracking; it only ever scans forward,
 * so the whole split is linear and uses no recursion.
 *
 * Classes come from unicode_tab.c (measured on HF, Unicode 16), not from
 * utf8proc, whose Unicode 15 data lacks the Unicode 16 letters. The
 * case-insensitive contractions accept ASCII letters and U+017F LATIN SMALL
 * LETTER LONG S (which folds to 's'); nothing else folds to s/t/r/e/v/m/l/d.
 *
 * NFC: HF's normalizer uses Unicode 9.0 tables. For characters assigned by
 * 9.0, utf8proc's NFC gives the same result (normalization stability); later
 * characters are starters that neither decompose nor compose for HF, so the
 * text is normalized in runs cut at those characters. */
#include <string.h>
#include <utf8proc.h>

#include "tok/tok_int.h"
#include "util/mem.h"

/* ---- codepoint class table ------------------------------------------ */

static void mark_ranges(uint8_t *cls, const struct tok_uni_range *r, size_t n, int age)
{
    for (size_t i = 0; i < n; i++)
        for (uint32_t cp = r[i].lo; cp <= r[i].hi && cp < 0x110000; cp++) {
            if (age)
                cls[cp] &= (uint8_t)~TC_NEW;
            else
                cls[cp] = (uint8_t)((cls[cp] & ~TC_MASK) | (r[i].v & TC_MASK));
        }
}

/* Flags characters of Unicode <= 9.0 that NFC may touch: non-zero combining
 * class, a canonical decomposition that does not compose back (exclusions,
 * singletons), or a non-first part of a canonical decomposition (a possible
 * second in a composition), plus the Hangul V and T jamo. */
static void mark_nfc_unsafe(uint8_t *cls)
{
    for (uint32_t cp = 0x80; cp < 0x110000; cp++) {
        if (cls[cp] & TC_NEW)
            continue;
        const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
        if (p->combining_class != 0)
            cls[cp] |= TC_NFC_UNSAFE;
        if (p->decomp_seqindex == UINT16_MAX || p->decomp_type != 0)
            continue;
        utf8proc_int32_t d[16];
        int bc = 0;
        utf8proc_ssize_t nd =
            utf8proc_decompose_char((utf8proc_int32_t)cp, d, 16, UTF8PROC_DECOMPOSE, &bc);
        if (nd <= 0 || nd > 16)
            continue; /* cannot happen: canonical decompositions are short */
        for (utf8proc_ssize_t k = 1; k < nd; k++)
            if ((uint32_t)d[k] < 0x110000)
                cls[d[k]] |= TC_NFC_UNSAFE;
        utf8proc_ssize_t nc = utf8proc_normalize_utf32(d, nd, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (nc != 1 || (uint32_t)d[0] != cp)
            cls[cp] |= TC_NFC_UNSAFE;
    }
    for (uint32_t cp = 0x1161; cp <= 0x1175; cp++)
        cls[cp] |= TC_NFC_UNSAFE;
    for (uint32_t cp = 0x11A8; cp <= 0x11C2; cp++)
        cls[cp] |= TC_NFC_UNSAFE;
}

/* Shares identical 256-codepoint blocks: ~1.1 MB flat becomes ~100 KB. */
static enum ax_err compact(struct tok_cp *c, const uint8_t *cls, char *err)
{
    size_t nb = 0, cap = 64;
    c->blocks = ax_malloc(cap * 256);
    if (!c->blocks)
        return ax_fail(err, AX_ENOMEM, "tokenizer: out of memory (codepoint table)");
    for (size_t b = 0; b < (0x110000 >> 8); b++) {
        const uint8_t *blk = cls + (b << 8);
        size_t k = 0;
        /* most blocks repeat one of the last few (unassigned, CJK, PUA) */
        for (k = nb; k-- > 0;)
            if (!memcmp(c->blocks + (k << 8), blk, 256))
                break;
        if (k == (size_t)-1) {
            if (nb == cap) {
                uint8_t *nbk = ax_reallocarray(c->blocks, cap * 2, 256);
                if (!nbk)
                    return ax_fail(err, AX_ENOMEM, "tokenizer: out of memory (codepoint table)");
                c->blocks = nbk;
                cap *= 2;
            }
            memcpy(c->blocks + (nb << 8), blk, 256);
            k = nb++;
        }
        c->idx[b] = (uint16_t)k;
    }
    return AX_OK;
}

enum ax_err tok_cp_build(struct tok_cp *c, char *err)
{
    c->blocks = NULL;
    uint8_t *cls = ax_malloc(0x110000);
    if (!cls)
        return ax_fail(err, AX_ENOMEM, "tokenizer: out of memory (codepoint table)");
    memset(cls, TC_OTHER | TC_NEW, 0x110000);
    mark_ranges(cls, tok_uni_class, tok_uni_class_n, 0);
    mark_ranges(cls, tok_uni_age9, tok_uni_age9_n, 1);
    mark_nfc_unsafe(cls);
    enum ax_err e = compact(c, cls, err);
    ax_free(cls);
    if (e != AX_OK) {
        ax_free(c->blocks);
        c->blocks = NULL;
    }
    return e;
}

void tok_cp_free(struct tok_cp *c)
{
    ax_free(c->blocks);
    c->blocks = NULL;
}

/* ---- UTF-8 on validated text ---------------------------------------- */

static const uint8_t ascii_cls[128] = {
    ['\t'] = TC_WS, ['\n'] = TC_WS, ['\v'] = TC_WS, ['\f'] = TC_WS, ['\r'] = TC_WS, [' '] = TC_WS,
    ['0'] = TC_N,   ['1'] = TC_N,   ['2'] = TC_N,   ['3'] = TC_N,   ['4'] = TC_N,   ['5'] = TC_N,
    ['6'] = TC_N,   ['7'] = TC_N,   ['8'] = TC_N,   ['9'] = TC_N,
#define L_(c) [c] = TC_L
    L_('A'),        L_('B'),        L_('C'),        L_('D'),        L_('E'),        L_('F'),
    L_('G'),        L_('H'),        L_('I'),        L_('J'),        L_('K'),        L_('L'),
    L_('M'),        L_('N'),        L_('O'),        L_('P'),        L_('Q'),        L_('R'),
    L_('S'),        L_('T'),        L_('U'),        L_('V'),        L_('W'),        L_('X'),
    L_('Y'),        L_('Z'),        L_('a'),        L_('b'),        L_('c'),        L_('d'),
    L_('e'),        L_('f'),        L_('g'),        L_('h'),        L_('i'),        L_('j'),
    L_('k'),        L_('l'),        L_('m'),        L_('n'),        L_('o'),        L_('p'),
    L_('q'),        L_('r'),        L_('s'),        L_('t'),        L_('u'),        L_('v'),
    L_('w'),        L_('x'),        L_('y'),        L_('z'),
#undef L_
};

/* Decodes the (valid) UTF-8 character at s[i]; *len gets its size. */
static inline uint32_t cp_at(const uint8_t *s, size_t i, size_t *len)
{
    uint8_t b = s[i];
    if (b < 0x80) {
        *len = 1;
        return b;
    }
    if (b < 0xE0) {
        *len = 2;
        return ((uint32_t)(b & 0x1F) << 6) | (s[i + 1] & 0x3F);
    }
    if (b < 0xF0) {
        *len = 3;
        return ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(s[i + 1] & 0x3F) << 6) |
               (s[i + 2] & 0x3F);
    }
    *len = 4;
    return ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[i + 1] & 0x3F) << 12) |
           ((uint32_t)(s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
}

static inline int cls_at(const struct tok *t, const uint8_t *s, size_t i, size_t *len)
{
    if (s[i] < 0x80) {
        *len = 1;
        return ascii_cls[s[i]];
    }
    return tok_cp_class(&t->cp, cp_at(s, i, len)) & TC_MASK;
}

/* ---- the split regex ---------------------------------------------- */

static inline int is_crlf(uint8_t b)
{
    return b == '\r' || b == '\n';
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d) at s[i] == '\'': match length or 0. */
static size_t contraction(const uint8_t *s, size_t i, size_t n)
{
    if (i + 1 >= n)
        return 0;
    uint8_t c = s[i + 1] | 0x20; /* ASCII lower case; only letters are compared */
    if (s[i + 1] < 0x80 && (c == 's' || c == 't' || c == 'm' || c == 'd'))
        return 2;
    if (s[i + 1] == 0xC5 && i + 2 < n && s[i + 2] == 0xBF) /* U+017F folds to s */
        return 3;
    if (i + 2 >= n || s[i + 1] >= 0x80 || s[i + 2] >= 0x80)
        return 0;
    uint8_t d = s[i + 2] | 0x20;
    if ((c == 'r' || c == 'v') && d == 'e')
        return 3;
    if (c == 'l' && d == 'l')
        return 3;
    return 0;
}

static size_t run_of(const struct tok *t, const uint8_t *s, size_t j, size_t n, int want)
{
    size_t l;
    while (j < n && cls_at(t, s, j, &l) == want)
        j += l;
    return j;
}

/* The whitespace alternatives, at a \s character s[i]:
 *  \s*[\r\n]+  : if the run of \s has a CR or LF, up to and including the last;
 *  \s+(?!\S)   : else the whole run at the end of text, or all but its last
 *                character when at least two (backtracking one);
 *  \s+         : else the single character. */
static size_t split_space(const struct tok *t, const uint8_t *s, size_t i, size_t n)
{
    size_t j = i, last = i, nl = (size_t)-1, nchars = 0, l;
    while (j < n && cls_at(t, s, j, &l) == TC_WS) {
        if (is_crlf(s[j]))
            nl = j;
        last = j;
        j += l;
        nchars++;
    }
    if (nl != (size_t)-1)
        return nl + 1 - i;
    if (j == n || nchars < 2)
        return j - i;
    return last - i;
}

size_t tok_split_next(const struct tok *t, const uint8_t *s, size_t i, size_t n)
{
    size_t l0, l1;
    if (s[i] == '\'') {
        size_t k = contraction(s, i, n);
        if (k)
            return k;
    }
    int c0 = cls_at(t, s, i, &l0);
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (c0 == TC_L)
        return run_of(t, s, i + l0, n, TC_L) - i;
    if (c0 != TC_N && !is_crlf(s[i]) && i + l0 < n && cls_at(t, s, i + l0, &l1) == TC_L)
        return run_of(t, s, i + l0 + l1, n, TC_L) - i;
    /* \p{N} */
    if (c0 == TC_N)
        return l0;
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    size_t j = (size_t)-1;
    if (c0 == TC_OTHER)
        j = i;
    else if (s[i] == ' ' && i + 1 < n && cls_at(t, s, i + 1, &l1) == TC_OTHER)
        j = i + 1;
    if (j != (size_t)-1) {
        j = run_of(t, s, j, n, TC_OTHER);
        while (j < n && is_crlf(s[j]))
            j++;
        return j - i;
    }
    return split_space(t, s, i, n);
}

/* ---- NFC ----------------------------------------------------------- */

int tok_nfc_needed(const struct tok *t, const uint8_t *s, size_t n)
{
    size_t i = 0, l;
    while (i < n) {
        if (s[i] < 0x80) { /* ASCII never changes under NFC */
            i++;
            continue;
        }
        if (tok_cp_class(&t->cp, cp_at(s, i, &l)) & TC_NFC_UNSAFE)
            return 1;
        i += l;
    }
    return 0;
}

/* NFC of one run of Unicode <= 9.0 text (utf8proc), appended at out. */
static enum ax_err nfc_run(const uint8_t *s, size_t n, utf8proc_int32_t **u32, size_t *cap,
                           uint8_t *out, size_t *o, char *err)
{
    for (;;) {
        utf8proc_ssize_t r =
            utf8proc_decompose(s, (utf8proc_ssize_t)n, *u32, (utf8proc_ssize_t)*cap,
                               UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (r < 0)
            return ax_fail(err, AX_EUTF8, "tokenizer: NFC failed: %s", utf8proc_errmsg(r));
        if ((size_t)r <= *cap) {
            r = utf8proc_normalize_utf32(*u32, r, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            for (utf8proc_ssize_t k = 0; k < r; k++)
                *o += (size_t)utf8proc_encode_char((*u32)[k], out + *o);
            return AX_OK;
        }
        utf8proc_int32_t *nu = ax_reallocarray(*u32, (size_t)r, sizeof **u32);
        if (!nu)
            return ax_fail(err, AX_ENOMEM, "tokenizer: out of memory (NFC)");
        *u32 = nu;
        *cap = (size_t)r;
    }
}

enum ax_err tok_nfc(const struct tok *t, const uint8_t *s, size_t n, uint8_t **out, size_t *out_len,
                    char *err)
{
    /* NFC grows UTF-8 at most 3x (U+1D160 -> three 4-byte codepoints). */
    size_t cap32 = n + 16, o = 0;
    uint8_t *buf = ax_mallocarray(n + 1, 3);
    utf8proc_int32_t *u32 = ax_mallocarray(cap32, sizeof *u32);
    enum ax_err e = AX_OK;
    if (!buf || !u32) {
        e = ax_fail(err, AX_ENOMEM, "tokenizer: out of memory (NFC of %zu bytes)", n);
        goto done;
    }
    size_t i = 0, run = 0, l;
    while (i < n) {
        if (s[i] < 0x80 || !(tok_cp_class(&t->cp, cp_at(s, i, &l)) & TC_NEW)) {
            i += s[i] < 0x80 ? 1 : l;
            continue;
        }
        if ((e = nfc_run(s + run, i - run, &u32, &cap32, buf, &o, err)) != AX_OK)
            goto done;
        memcpy(buf + o, s + i, l); /* a post-9.0 character: inert for HF */
        o += l;
        i += l;
        run = i;
    }
    e = nfc_run(s + run, n - run, &u32, &cap32, buf, &o, err);
done:
    ax_free(u32);
    if (e != AX_OK) {
        ax_free(buf);
        return e;
    }
    *out = buf;
    *out_len = o;
    return AX_OK;
}
