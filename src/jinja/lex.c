/* lex.c - Jinja2 lexer with transformers' settings (trim_blocks,
 * lstrip_blocks), following jinja2/lexer.py rule by rule:
 *
 * - The source's line breaks (\r\n, \r, \n) become \n and one trailing
 *   line break is dropped (keep_trailing_newline=False).
 * - Text runs to the first "{{", "{%" or "{#". A tag written "{%-" strips
 *   all whitespace before it; otherwise lstrip_blocks removes spaces and
 *   tabs between the line start and a "{%" or "{#" ("{%+" keeps them).
 * - "-%}" strips all whitespace after; "%}" and "#}" eat one following
 *   newline (trim_blocks) unless written "+%}"; "}}" never trims.
 * - {% raw %}...{% endraw %} is text.
 * - Inside tags: whitespace, floats, integers, names, strings and
 *   operators, in that order of preference, with end tags recognised only
 *   when brackets are balanced.
 *
 * Strings are decoded like Python's "unicode-escape" codec, which is what
 * Jinja2 applies. Identifiers are ASCII only (Jinja2 accepts Unicode
 * identifiers; we report an error for them). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja/jinja_int.h"
#include "util/mem.h"

/* ---- byte classes ---- */
enum { C_OTHER = 0, C_WS, C_DIGIT, C_IDENT, C_QUOTE, C_OP, C_HIGH };

static const unsigned char cls[256] = {
    [' '] = C_WS,    ['\t'] = C_WS,   ['\n'] = C_WS,   ['\r'] = C_WS,    ['\v'] = C_WS,
    ['\f'] = C_WS,   [0x1c] = C_WS,   [0x1d] = C_WS,   [0x1e] = C_WS,    [0x1f] = C_WS,
    ['0'] = C_DIGIT, ['1'] = C_DIGIT, ['2'] = C_DIGIT, ['3'] = C_DIGIT,  ['4'] = C_DIGIT,
    ['5'] = C_DIGIT, ['6'] = C_DIGIT, ['7'] = C_DIGIT, ['8'] = C_DIGIT,  ['9'] = C_DIGIT,
    ['_'] = C_IDENT, ['a'] = C_IDENT, ['b'] = C_IDENT, ['c'] = C_IDENT,  ['d'] = C_IDENT,
    ['e'] = C_IDENT, ['f'] = C_IDENT, ['g'] = C_IDENT, ['h'] = C_IDENT,  ['i'] = C_IDENT,
    ['j'] = C_IDENT, ['k'] = C_IDENT, ['l'] = C_IDENT, ['m'] = C_IDENT,  ['n'] = C_IDENT,
    ['o'] = C_IDENT, ['p'] = C_IDENT, ['q'] = C_IDENT, ['r'] = C_IDENT,  ['s'] = C_IDENT,
    ['t'] = C_IDENT, ['u'] = C_IDENT, ['v'] = C_IDENT, ['w'] = C_IDENT,  ['x'] = C_IDENT,
    ['y'] = C_IDENT, ['z'] = C_IDENT, ['A'] = C_IDENT, ['B'] = C_IDENT,  ['C'] = C_IDENT,
    ['D'] = C_IDENT, ['E'] = C_IDENT, ['F'] = C_IDENT, ['G'] = C_IDENT,  ['H'] = C_IDENT,
    ['I'] = C_IDENT, ['J'] = C_IDENT, ['K'] = C_IDENT, ['L'] = C_IDENT,  ['M'] = C_IDENT,
    ['N'] = C_IDENT, ['O'] = C_IDENT, ['P'] = C_IDENT, ['Q'] = C_IDENT,  ['R'] = C_IDENT,
    ['S'] = C_IDENT, ['T'] = C_IDENT, ['U'] = C_IDENT, ['V'] = C_IDENT,  ['W'] = C_IDENT,
    ['X'] = C_IDENT, ['Y'] = C_IDENT, ['Z'] = C_IDENT, ['\''] = C_QUOTE, ['"'] = C_QUOTE,
    ['+'] = C_OP,    ['-'] = C_OP,    ['/'] = C_OP,    ['*'] = C_OP,     ['%'] = C_OP,
    ['~'] = C_OP,    ['['] = C_OP,    [']'] = C_OP,    ['('] = C_OP,     [')'] = C_OP,
    ['{'] = C_OP,    ['}'] = C_OP,    ['='] = C_OP,    ['!'] = C_OP,     ['>'] = C_OP,
    ['<'] = C_OP,    ['.'] = C_OP,    [':'] = C_OP,    ['|'] = C_OP,     [','] = C_OP,
    [';'] = C_OP,
#define H16(x)                                                                                     \
    [(x)] = C_HIGH, [(x) + 1] = C_HIGH, [(x) + 2] = C_HIGH, [(x) + 3] = C_HIGH,                    \
    [(x) + 4] = C_HIGH, [(x) + 5] = C_HIGH, [(x) + 6] = C_HIGH, [(x) + 7] = C_HIGH,                \
    [(x) + 8] = C_HIGH, [(x) + 9] = C_HIGH, [(x) + 10] = C_HIGH, [(x) + 11] = C_HIGH,              \
    [(x) + 12] = C_HIGH, [(x) + 13] = C_HIGH, [(x) + 14] = C_HIGH, [(x) + 15] = C_HIGH
    H16(0x80),       H16(0x90),       H16(0xa0),       H16(0xb0),        H16(0xc0),
    H16(0xd0),       H16(0xe0),       H16(0xf0),
#undef H16
};

/* ---- lexer state ---- */
struct lexer {
    struct jarena *a;
    const char *s; /* normalized source */
    size_t n, pos;
    int line;        /* line of pos */
    size_t line_pos; /* position up to which `line` is counted */
    struct jtoks *toks;
    char *err;
    int line_starting;
};

static int line_at(struct lexer *L, size_t pos)
{
    /* positions only move forward, except for short look-backs */
    if (pos < L->line_pos) {
        L->line = 1;
        L->line_pos = 0;
    }
    for (; L->line_pos < pos; L->line_pos++)
        if (L->s[L->line_pos] == '\n')
            L->line++;
    return L->line;
}

static int lfail(struct lexer *L, size_t pos, const char *msg)
{
    ax_fail(L->err, AX_ETEMPLATE, "template line %d: %s", line_at(L, pos), msg);
    return -1;
}

static struct jtok *push(struct lexer *L, enum jt_kind k, size_t pos)
{
    struct jtoks *t = L->toks;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        struct jtok *v = ja_alloc(L->a, cap * sizeof *v);
        if (!v)
            return NULL;
        if (t->n)
            memcpy(v, t->v, t->n * sizeof *v);
        t->v = v;
        t->cap = cap;
    }
    struct jtok *tk = &t->v[t->n++];
    memset(tk, 0, sizeof *tk);
    tk->k = k;
    tk->line = line_at(L, pos);
    tk->p = L->s + pos;
    return tk;
}

/* Length of the Python whitespace character at p, 0 if none. */
static size_t ws_at(const char *p, size_t n)
{
    unsigned char c = (unsigned char)p[0];
    if (cls[c] == C_WS)
        return 1;
    if (c < 0x80)
        return 0;
    int32_t cp;
    size_t l = ju8_dec(p, n, &cp);
    return jpy_isspace(cp) ? l : 0;
}

static size_t skip_ws(const char *s, size_t pos, size_t n)
{
    size_t l;
    while (pos < n && (l = ws_at(s + pos, n - pos)))
        pos += l;
    return pos;
}

/* End of text after stripping trailing Python whitespace (str.rstrip()). */
static size_t rstrip_end(const char *s, size_t start, size_t end)
{
    while (end > start) {
        size_t k = end - 1;
        while (k > start && ((unsigned char)s[k] & 0xc0) == 0x80)
            k--;
        if (!ws_at(s + k, end - k))
            break;
        end = k;
    }
    return end;
}

/* Applies "-" / lstrip_blocks to the text [start, end) before a tag. */
static size_t strip_text(struct lexer *L, size_t start, size_t end, char sign, int lstrip)
{
    if (sign == '-')
        return rstrip_end(L->s, start, end);
    if (sign == '+' || !lstrip)
        return end;
    size_t l = end;
    while (l > start && L->s[l - 1] != '\n')
        l--;
    if (l > start || L->line_starting) {
        if (l == end)
            return end; /* \s+ needs at least one character */
        for (size_t k = l; k < end;) {
            size_t w = ws_at(L->s + k, end - k);
            if (!w)
                return end;
            k += w;
        }
        return l;
    }
    return end;
}

static int emit_text(struct lexer *L, size_t start, size_t end)
{
    if (end <= start)
        return 0;
    struct jtok *t = push(L, T_TEXT, start);
    if (!t)
        return lfail(L, start, "out of memory");
    t->n = end - start;
    return 0;
}

/* Matches "%}" block ends at pos: returns the position after it (with
 * trim_blocks / "-" handling) or 0 if there is none. */
static size_t block_end(struct lexer *L, size_t pos, char close)
{
    const char *s = L->s;
    size_t n = L->n;
    if (pos + 2 < n + 0 && (s[pos] == '+' || s[pos] == '-') && s[pos + 1] == close &&
        s[pos + 2] == '}') {
        if (s[pos] == '+')
            return pos + 3;
        return skip_ws(s, pos + 3, n);
    }
    if (pos + 1 < n && s[pos] == close && s[pos + 1] == '}') {
        pos += 2;
        if (pos < n && s[pos] == '\n')
            pos++;
        return pos;
    }
    return 0;
}

/* ---- string literals (Python unicode-escape) ---- */
static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int decode_string(struct lexer *L, size_t start, size_t end, struct jtok *t)
{
    const char *s = L->s;
    char *o = ja_alloc(L->a, (end - start) * 3 + 1);
    if (!o)
        return lfail(L, start, "out of memory");
    size_t n = 0;
    for (size_t i = start; i < end;) {
        unsigned char c = (unsigned char)s[i];
        if (c != '\\') {
            o[n++] = (char)c;
            i++;
            continue;
        }
        i++; /* the literal regex guarantees a character after '\' */
        c = (unsigned char)s[i];
        int32_t cp = -1;
        int digits = 0;
        switch (c) {
        case '\n':
            i++;
            continue;
        case '\\':
            o[n++] = '\\';
            i++;
            continue;
        case '\'':
            o[n++] = '\'';
            i++;
            continue;
        case '"':
            o[n++] = '"';
            i++;
            continue;
        case 'a':
            o[n++] = '\a';
            i++;
            continue;
        case 'b':
            o[n++] = '\b';
            i++;
            continue;
        case 'f':
            o[n++] = '\f';
            i++;
            continue;
        case 'n':
            o[n++] = '\n';
            i++;
            continue;
        case 'r':
            o[n++] = '\r';
            i++;
            continue;
        case 't':
            o[n++] = '\t';
            i++;
            continue;
        case 'v':
            o[n++] = '\v';
            i++;
            continue;
        case 'x':
            digits = 2;
            break;
        case 'u':
            digits = 4;
            break;
        case 'U':
            digits = 8;
            break;
        case 'N':
            return lfail(L, i, "\\N{...} escapes are not supported");
        default:
            if (c >= '0' && c <= '7') {
                cp = 0;
                for (int k = 0; k < 3 && i < end && s[i] >= '0' && s[i] <= '7'; k++)
                    cp = cp * 8 + (s[i++] - '0');
                n += ju8_enc(cp, o + n);
                continue;
            }
            /* unknown escape: kept as is; a non-ASCII character after the
             * backslash was spelled as its escape by "backslashreplace" */
            o[n++] = '\\';
            if (c >= 0x80) {
                int32_t u;
                i += ju8_dec(s + i, end - i, &u);
                n += (size_t)sprintf(o + n,
                                     u <= 0xff     ? "x%02x"
                                     : u <= 0xffff ? "u%04x"
                                                   : "U%08x",
                                     (unsigned)u);
            }
            continue;
        }
        i++;
        cp = 0;
        for (int k = 0; k < digits; k++, i++) {
            int h = i < end ? hexval(s[i]) : -1;
            if (h < 0)
                return lfail(L, i, "truncated \\x, \\u or \\U escape in a string");
            cp = cp * 16 + h;
        }
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return lfail(L, i, "escape in a string is not a valid code point");
        n += ju8_enc(cp, o + n);
    }
    o[n] = '\0';
    t->p = o;
    t->n = n;
    return 0;
}

/* ---- numbers ---- */
static size_t digits_us(const char *s, size_t pos, size_t n)
{
    /* (\d+_)*\d+ */
    size_t p = pos;
    if (p >= n || cls[(unsigned char)s[p]] != C_DIGIT)
        return 0;
    for (;;) {
        while (p < n && cls[(unsigned char)s[p]] == C_DIGIT)
            p++;
        if (p + 1 < n && s[p] == '_' && cls[(unsigned char)s[p + 1]] == C_DIGIT)
            p++;
        else
            return p - pos;
    }
}

static size_t match_float(const char *s, size_t pos, size_t n)
{
    if (pos > 0 && s[pos - 1] == '.')
        return 0;
    size_t p = pos, k = digits_us(s, p, n);
    if (!k)
        return 0;
    p += k;
    size_t frac = 0;
    if (p < n && s[p] == '.' && (frac = digits_us(s, p + 1, n)))
        p += 1 + frac;
    if (p < n && (s[p] == 'e' || s[p] == 'E')) {
        size_t q = p + 1;
        if (q < n && (s[q] == '+' || s[q] == '-'))
            q++;
        size_t e = digits_us(s, q, n);
        if (e)
            return q + e - pos;
    }
    return frac ? p - pos : 0;
}

static size_t match_int(const char *s, size_t pos, size_t n, int *base)
{
    size_t p = pos;
    *base = 10;
    if (s[p] == '0' && p + 1 < n && strchr("bBoOxX", s[p + 1]) && s[p + 1]) {
        char b = (char)(s[p + 1] | 0x20);
        *base = b == 'b' ? 2 : b == 'o' ? 8 : 16;
        size_t q = p + 2, cnt = 0;
        for (;;) {
            size_t r = q;
            if (r < n && s[r] == '_')
                r++;
            int h = r < n ? hexval(s[r]) : -1;
            if (h < 0 || h >= *base)
                break;
            q = r + 1;
            cnt++;
        }
        if (cnt)
            return q - pos;
        *base = 10;
        return 1; /* "0" */
    }
    if (s[p] == '0') {
        p++;
        while (p < n && (s[p] == '0' || (s[p] == '_' && p + 1 < n && s[p + 1] == '0')))
            p += s[p] == '_' ? 2 : 1;
        return p - pos;
    }
    return digits_us(s, p, n);
}

static int lex_number(struct lexer *L, size_t *pos)
{
    const char *s = L->s;
    size_t p = *pos, k = match_float(s, p, L->n);
    char tmp[128];
    size_t m = 0;
    if (k) {
        for (size_t i = p; i < p + k && m + 1 < sizeof tmp; i++)
            if (s[i] != '_')
                tmp[m++] = s[i];
        tmp[m] = '\0';
        struct jtok *t = push(L, T_FLOAT, p);
        if (!t)
            return lfail(L, p, "out of memory");
        t->f = strtod(tmp, NULL);
        t->n = k;
        *pos = p + k;
        return 0;
    }
    int base;
    k = match_int(s, p, L->n, &base);
    uint64_t v = 0;
    for (size_t i = p + (base == 10 ? 0 : 2); i < p + k; i++) {
        if (s[i] == '_')
            continue;
        uint64_t d = (uint64_t)hexval(s[i]);
        if (v > (UINT64_C(0x7fffffffffffffff) - d) / (uint64_t)base)
            return lfail(L, p,
                         "integer literal too large (this implementation is limited to 64 bits)");
        v = v * (uint64_t)base + d;
    }
    struct jtok *t = push(L, T_INT, p);
    if (!t)
        return lfail(L, p, "out of memory");
    t->i = (int64_t)v;
    t->n = k;
    *pos = p + k;
    return 0;
}

/* ---- operators ---- */
static int lex_op(struct lexer *L, size_t *pos, int *depth, char *stack)
{
    const char *s = L->s + *pos;
    size_t left = L->n - *pos;
    enum jt_kind k;
    size_t len = 1;
    char c1 = left > 1 ? s[1] : 0;
    switch (s[0]) {
    case '+':
        k = T_ADD;
        break;
    case '-':
        k = T_SUB;
        break;
    case '/':
        k = c1 == '/' ? (len = 2, T_FLOORDIV) : T_DIV;
        break;
    case '*':
        k = c1 == '*' ? (len = 2, T_POW) : T_MUL;
        break;
    case '%':
        k = T_MOD;
        break;
    case '~':
        k = T_TILDE;
        break;
    case '[':
        k = T_LBRACKET;
        break;
    case ']':
        k = T_RBRACKET;
        break;
    case '(':
        k = T_LPAREN;
        break;
    case ')':
        k = T_RPAREN;
        break;
    case '{':
        k = T_LBRACE;
        break;
    case '}':
        k = T_RBRACE;
        break;
    case '=':
        k = c1 == '=' ? (len = 2, T_EQ) : T_ASSIGN;
        break;
    case '!':
        if (c1 != '=')
            return lfail(L, *pos, "unexpected char '!'");
        k = T_NE;
        len = 2;
        break;
    case '>':
        k = c1 == '=' ? (len = 2, T_GTEQ) : T_GT;
        break;
    case '<':
        k = c1 == '=' ? (len = 2, T_LTEQ) : T_LT;
        break;
    case '.':
        k = T_DOT;
        break;
    case ':':
        k = T_COLON;
        break;
    case '|':
        k = T_PIPE;
        break;
    case ',':
        k = T_COMMA;
        break;
    default:
        k = T_SEMICOLON;
        break;
    }
    /* bracket balance: end tags count only when balanced */
    if (k == T_LBRACKET || k == T_LPAREN || k == T_LBRACE) {
        if (*depth >= 255)
            return lfail(L, *pos, "brackets nested too deeply");
        stack[(*depth)++] = k == T_LBRACKET ? ']' : k == T_LPAREN ? ')' : '}';
    } else if (k == T_RBRACKET || k == T_RPAREN || k == T_RBRACE) {
        if (!*depth || stack[*depth - 1] != s[0])
            return lfail(L, *pos,
                         !*depth ? "unexpected closing bracket" : "mismatched closing bracket");
        (*depth)--;
    }
    if (!push(L, k, *pos))
        return lfail(L, *pos, "out of memory");
    *pos += len;
    return 0;
}

/* ---- inside {{ }} and {% %} ---- */
static int lex_tag(struct lexer *L, size_t pos, int is_block, size_t *end)
{
    const char *s = L->s;
    size_t n = L->n;
    int depth = 0;
    char stack[256];
    for (;;) {
        if (pos >= n)
            return lfail(L, pos,
                         is_block ? "unexpected end of template, expected '%}'"
                                  : "unexpected end of template, expected '}}'");
        if (!depth) {
            size_t e = 0;
            if (is_block) {
                e = block_end(L, pos, '%');
            } else if (s[pos] == '-' && pos + 2 < n && s[pos + 1] == '}' && s[pos + 2] == '}') {
                e = skip_ws(s, pos + 3, n);
            } else if (s[pos] == '}' && pos + 1 < n && s[pos + 1] == '}') {
                e = pos + 2;
            }
            if (e) {
                if (!push(L, is_block ? T_BLOCK_END : T_VAR_END, pos))
                    return lfail(L, pos, "out of memory");
                L->line_starting = s[e - 1] == '\n';
                *end = e;
                return 0;
            }
        }
        unsigned char c = (unsigned char)s[pos];
        switch (cls[c]) {
        case C_WS:
            pos++;
            break;
        case C_HIGH: {
            size_t w = ws_at(s + pos, n - pos);
            if (!w)
                return lfail(L, pos,
                             "unexpected non-ASCII character in a tag (identifiers must be ASCII)");
            pos += w;
            break;
        }
        case C_DIGIT:
            if (lex_number(L, &pos))
                return -1;
            break;
        case C_IDENT: {
            size_t st = pos;
            while (pos < n &&
                   (cls[(unsigned char)s[pos]] == C_IDENT || cls[(unsigned char)s[pos]] == C_DIGIT))
                pos++;
            struct jtok *t = push(L, T_NAME, st);
            if (!t)
                return lfail(L, st, "out of memory");
            t->p = ja_strdup(L->a, s + st, pos - st);
            if (!t->p)
                return lfail(L, st, "out of memory");
            t->n = pos - st;
            break;
        }
        case C_QUOTE: {
            size_t st = pos++;
            while (pos < n && s[pos] != (char)c)
                pos += s[pos] == '\\' && pos + 1 < n ? 2 : 1;
            if (pos >= n)
                return lfail(L, st, "unterminated string literal");
            struct jtok *t = push(L, T_STRING, st);
            if (!t)
                return lfail(L, st, "out of memory");
            if (decode_string(L, st + 1, pos, t))
                return -1;
            pos++;
            break;
        }
        case C_OP:
            if (lex_op(L, &pos, &depth, stack))
                return -1;
            break;
        default: {
            char msg[64];
            snprintf(msg, sizeof msg, "unexpected char '\\x%02x'", c);
            return lfail(L, pos, msg);
        }
        }
    }
}

/* ---- {# #} and {% raw %} ---- */
static int lex_comment(struct lexer *L, size_t pos, size_t *end)
{
    const char *s = L->s;
    size_t n = L->n;
    for (size_t p = pos; p < n; p++) {
        size_t e = 0;
        if ((s[p] == '+' || s[p] == '-') && p + 2 < n && s[p + 1] == '#' && s[p + 2] == '}')
            e = s[p] == '+' ? p + 3 : skip_ws(s, p + 3, n);
        else if (s[p] == '#' && p + 1 < n && s[p + 1] == '}')
            e = p + 2 + (p + 2 < n && s[p + 2] == '\n');
        if (e) {
            L->line_starting = s[e - 1] == '\n';
            *end = e;
            return 0;
        }
    }
    return lfail(L, pos, "missing end of comment tag");
}

static int is_word(const char *s, size_t pos, size_t n, const char *w)
{
    size_t l = strlen(w);
    return pos + l <= n && !memcmp(s + pos, w, l);
}

/* "{%[-+]?\s*raw\s*(-%}\s*|%})" at pos: the end position, or 0. */
static size_t raw_begin(struct lexer *L, size_t pos)
{
    const char *s = L->s;
    size_t n = L->n, p = pos + 2;
    if (p < n && (s[p] == '-' || s[p] == '+'))
        p++;
    p = skip_ws(s, p, n);
    if (!is_word(s, p, n, "raw"))
        return 0;
    p = skip_ws(s, p + 3, n);
    if (is_word(s, p, n, "-%}"))
        return skip_ws(s, p + 3, n);
    if (is_word(s, p, n, "%}"))
        return p + 2;
    return 0;
}

static int lex_raw(struct lexer *L, size_t pos, size_t *end)
{
    const char *s = L->s;
    size_t n = L->n;
    for (size_t p = pos; p + 1 < n; p++) {
        if (s[p] != '{' || s[p + 1] != '%')
            continue;
        size_t q = p + 2;
        char sign = 0;
        if (q < n && (s[q] == '-' || s[q] == '+'))
            sign = s[q++];
        q = skip_ws(s, q, n);
        if (!is_word(s, q, n, "endraw"))
            continue;
        q = skip_ws(s, q + 6, n);
        size_t e = block_end(L, q, '%');
        if (!e)
            continue;
        if (emit_text(L, pos, strip_text(L, pos, p, sign, 1)))
            return -1;
        L->line_starting = s[e - 1] == '\n';
        *end = e;
        return 0;
    }
    return lfail(L, pos, "missing end of raw directive");
}

/* ---- root ---- */
static int lex_root(struct lexer *L)
{
    const char *s = L->s;
    size_t n = L->n, pos = 0;
    while (pos < n) {
        const char *hit = NULL;
        for (const char *q = memchr(s + pos, '{', n - pos); q;
             q = memchr(q + 1, '{', (size_t)(s + n - q - 1))) {
            if (q + 1 < s + n && (q[1] == '{' || q[1] == '%' || q[1] == '#')) {
                hit = q;
                break;
            }
            if (q + 1 >= s + n)
                break;
        }
        if (!hit) {
            if (emit_text(L, pos, n))
                return -1;
            break;
        }
        size_t tag = (size_t)(hit - s);
        char kind = s[tag + 1];
        char sign = tag + 2 < n && (s[tag + 2] == '-' || s[tag + 2] == '+') ? s[tag + 2] : 0;
        size_t after = tag + 2 + (sign != 0), e;
        if (kind == '%' && (e = raw_begin(L, tag))) {
            if (emit_text(L, pos, strip_text(L, pos, tag, sign, 1)))
                return -1;
            if (lex_raw(L, e, &pos))
                return -1;
            continue;
        }
        if (emit_text(L, pos, strip_text(L, pos, tag, sign, kind != '{')))
            return -1;
        if (kind == '#') {
            if (lex_comment(L, after, &pos))
                return -1;
            continue;
        }
        if (!push(L, kind == '%' ? T_BLOCK_BEGIN : T_VAR_BEGIN, tag))
            return lfail(L, tag, "out of memory");
        if (lex_tag(L, after, kind == '%', &pos))
            return -1;
    }
    if (!push(L, T_EOF, n))
        return lfail(L, n, "out of memory");
    return 0;
}

/* Line breaks -> \n, one trailing line break dropped (jinja2 tokeniter). */
static char *normalize(struct jarena *a, const char *src, size_t len, size_t *out_n)
{
    char *o = ja_alloc(a, len + 1);
    if (!o)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            if (i + 1 < len && src[i + 1] == '\n')
                i++;
            o[n++] = '\n';
        } else {
            o[n++] = src[i];
        }
    }
    if (n && o[n - 1] == '\n')
        n--;
    o[n] = '\0';
    *out_n = n;
    return o;
}

int jlex(struct jarena *a, const char *src, size_t len, struct jtoks *toks, char *err)
{
    struct lexer L = {.a = a, .toks = toks, .err = err, .line = 1, .line_starting = 1};
    L.s = normalize(a, src, len, &L.n);
    if (!L.s) {
        ax_fail(err, AX_ENOMEM, "template: out of memory");
        return -1;
    }
    return lex_root(&L);
}
