/* builtins.c - Jinja2's filters and tests, the globals transformers
 * provides (range, namespace, dict, raise_exception, strftime_now), and the
 * str/dict/list methods the sandbox allows, each following the Python
 * implementation (jinja2/filters.py, jinja2/tests.py, CPython's str).
 *
 * Case mapping uses utf8proc's simple mappings (Python uses full ones, so
 * "ß".upper() differs). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#include "jinja/jinja_int.h"
#include "util/mem.h"

/* ---- names ---- */
enum {
    F_ABS,
    F_ATTR,
    F_BATCH,
    F_CAPITALIZE,
    F_COUNT,
    F_DEFAULT,
    F_DICTSORT,
    F_ESCAPE,
    F_FIRST,
    F_FLOAT,
    F_INDENT,
    F_INT,
    F_ITEMS,
    F_JOIN,
    F_LAST,
    F_LENGTH,
    F_LIST,
    F_LOWER,
    F_MAP,
    F_MAX,
    F_MIN,
    F_REJECT,
    F_REJECTATTR,
    F_REPLACE,
    F_REVERSE,
    F_ROUND,
    F_SAFE,
    F_SELECT,
    F_SELECTATTR,
    F_SORT,
    F_STRING,
    F_SUM,
    F_TITLE,
    F_TOJSON,
    F_TRIM,
    F_UNIQUE,
    F_UPPER,
    F_WORDCOUNT,
    F_CENTER,
};
static const struct {
    const char *name;
    int id;
} filters[] = {
    {"abs", F_ABS},
    {"attr", F_ATTR},
    {"batch", F_BATCH},
    {"capitalize", F_CAPITALIZE},
    {"count", F_COUNT},
    {"d", F_DEFAULT},
    {"default", F_DEFAULT},
    {"dictsort", F_DICTSORT},
    {"e", F_ESCAPE},
    {"escape", F_ESCAPE},
    {"first", F_FIRST},
    {"float", F_FLOAT},
    {"indent", F_INDENT},
    {"int", F_INT},
    {"items", F_ITEMS},
    {"join", F_JOIN},
    {"last", F_LAST},
    {"length", F_LENGTH},
    {"list", F_LIST},
    {"lower", F_LOWER},
    {"map", F_MAP},
    {"max", F_MAX},
    {"min", F_MIN},
    {"reject", F_REJECT},
    {"rejectattr", F_REJECTATTR},
    {"replace", F_REPLACE},
    {"reverse", F_REVERSE},
    {"round", F_ROUND},
    {"safe", F_SAFE},
    {"select", F_SELECT},
    {"selectattr", F_SELECTATTR},
    {"sort", F_SORT},
    {"string", F_STRING},
    {"sum", F_SUM},
    {"title", F_TITLE},
    {"tojson", F_TOJSON},
    {"trim", F_TRIM},
    {"unique", F_UNIQUE},
    {"upper", F_UPPER},
    {"wordcount", F_WORDCOUNT},
    {"center", F_CENTER},
};

enum {
    X_BOOLEAN,
    X_CALLABLE,
    X_DEFINED,
    X_DIVISIBLEBY,
    X_EQ,
    X_ESCAPED,
    X_EVEN,
    X_FALSE,
    X_FILTER,
    X_FLOAT,
    X_GE,
    X_GT,
    X_IN,
    X_INTEGER,
    X_ITERABLE,
    X_LE,
    X_LOWER,
    X_LT,
    X_MAPPING,
    X_NE,
    X_NONE,
    X_NUMBER,
    X_ODD,
    X_SAMEAS,
    X_SEQUENCE,
    X_STRING,
    X_TEST,
    X_TRUE,
    X_UNDEFINED,
    X_UPPER,
};
static const struct {
    const char *name;
    int id;
} tests[] = {
    {"boolean", X_BOOLEAN},
    {"callable", X_CALLABLE},
    {"defined", X_DEFINED},
    {"divisibleby", X_DIVISIBLEBY},
    {"eq", X_EQ},
    {"equalto", X_EQ},
    {"==", X_EQ},
    {"escaped", X_ESCAPED},
    {"even", X_EVEN},
    {"false", X_FALSE},
    {"filter", X_FILTER},
    {"float", X_FLOAT},
    {"ge", X_GE},
    {">=", X_GE},
    {"gt", X_GT},
    {">", X_GT},
    {"greaterthan", X_GT},
    {"in", X_IN},
    {"integer", X_INTEGER},
    {"iterable", X_ITERABLE},
    {"le", X_LE},
    {"<=", X_LE},
    {"lower", X_LOWER},
    {"lt", X_LT},
    {"<", X_LT},
    {"lessthan", X_LT},
    {"mapping", X_MAPPING},
    {"ne", X_NE},
    {"!=", X_NE},
    {"none", X_NONE},
    {"number", X_NUMBER},
    {"odd", X_ODD},
    {"sameas", X_SAMEAS},
    {"sequence", X_SEQUENCE},
    {"string", X_STRING},
    {"test", X_TEST},
    {"true", X_TRUE},
    {"undefined", X_UNDEFINED},
    {"upper", X_UPPER},
};

int jfilter_id(const char *name)
{
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        if (!strcmp(filters[i].name, name))
            return filters[i].id;
    return -1;
}

int jtest_id(const char *name)
{
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (!strcmp(tests[i].name, name))
            return tests[i].id;
    return -1;
}

/* ---- argument binding (Python call semantics for fixed signatures) ---- */
#define MAXP 8
struct bound {
    struct jv v[MAXP];
    int have[MAXP];
};

/* params: names of the parameters after the first (the filtered value). */
static int bind(struct jstate *s, const char *fname, const char *const *params, struct jv *args,
                size_t nargs, const char **kn, struct jv *kv, size_t nkw, struct bound *b)
{
    size_t np = 0;
    while (params[np])
        np++;
    memset(b, 0, sizeof *b);
    if (nargs > np)
        return jfail(s, "%s() takes at most %zu argument(s) (%zu given)", fname, np, nargs);
    for (size_t i = 0; i < nargs; i++) {
        b->v[i] = args[i];
        b->have[i] = 1;
    }
    for (size_t k = 0; k < nkw; k++) {
        size_t i;
        for (i = 0; i < np && strcmp(params[i], kn[k]) != 0; i++)
            ;
        if (i == np)
            return jfail(s, "%s() got an unexpected keyword argument '%s'", fname, kn[k]);
        if (b->have[i])
            return jfail(s, "%s() got multiple values for argument '%s'", fname, kn[k]);
        b->v[i] = kv[k];
        b->have[i] = 1;
    }
    return 0;
}

static int arg_int(struct jstate *s, struct bound *b, int i, int64_t def, int64_t *out)
{
    *out = def;
    if (!b->have[i] || b->v[i].k == JV_NONE) {
        *out = def;
        return 0;
    }
    if (b->v[i].k != JV_INT && b->v[i].k != JV_BOOL)
        return jfail(s, "'%s' object cannot be interpreted as an integer", jv_typename(b->v[i]));
    *out = b->v[i].u.i;
    return 0;
}

static int arg_bool(struct bound *b, int i, int def)
{
    return b->have[i] ? jv_truthy(b->v[i]) : def;
}

/* ---- string helpers ---- */
/* str.splitlines() boundaries */
static int is_linebreak(int32_t cp)
{
    return cp == '\n' || cp == '\r' || cp == 0x0b || cp == 0x0c || (cp >= 0x1c && cp <= 0x1e) ||
           cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

static int str_of(struct jstate *s, struct jv v, struct jv *out)
{
    return jv_tostr(s, v, out);
}

static int need_str(struct jstate *s, struct jv v, const char *what)
{
    if (v.k != JV_STR)
        return jfail(s, "%s must be str, not %s", what, jv_typename(v));
    return 0;
}

/* Maps each code point through f (simple case mapping). */
static int map_case(struct jstate *s, struct jv in, int mode, struct jv *out)
{
    /* mode: 0 lower, 1 upper, 2 python title, 3 capitalize, 4 jinja title */
    const char *p = in.u.s.p;
    size_t n = in.u.s.n;
    char *o = ja_alloc(&s->ar, n * 2 + 8);
    if (!o)
        return joom(s);
    size_t on = 0, cap = n * 2 + 8;
    int prev_cased = 0, first = 1, word_start = 1;
    for (size_t i = 0; i < n;) {
        int32_t cp, r;
        size_t l = ju8_dec(p + i, n - i, &cp);
        utf8proc_category_t cat = utf8proc_category(cp);
        int cased = cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL ||
                    cat == UTF8PROC_CATEGORY_LT;
        switch (mode) {
        case 0:
            r = utf8proc_tolower(cp);
            break;
        case 1:
            r = utf8proc_toupper(cp);
            break;
        case 2:
            r = prev_cased ? utf8proc_tolower(cp) : utf8proc_totitle(cp);
            break;
        case 3:
            r = first ? utf8proc_totitle(cp) : utf8proc_tolower(cp);
            break;
        default: {
            /* jinja's title: words split at runs of [-\s({\[<] */
            int sep =
                cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || jpy_isspace(cp);
            r = sep ? cp : word_start ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
            word_start = sep;
            break;
        }
        }
        if (mode == 2) {
            /* python's title: cased follows cased, anything else restarts */
            prev_cased = cased;
        }
        first = 0;
        if (on + 4 > cap)
            return jfail(s, "internal error: case mapping grew");
        if (cp == 0xdf && r != 0xdf) {
            /* Python's full mapping: upper "SS", title "Ss" (utf8proc gives U+1E9E) */
            o[on++] = 'S';
            o[on++] = mode == 1 || mode == 4 ? 'S' : 's';
            i += l;
            continue;
        }
        on += ju8_enc(r, o + on);
        i += l;
    }
    *out = jv_str(o, on);
    return 0;
}

static int is_in_chars(int32_t cp, struct jv chars)
{
    if (chars.k != JV_STR)
        return jpy_isspace(cp);
    for (size_t i = 0; i < chars.u.s.n;) {
        int32_t c;
        i += ju8_dec(chars.u.s.p + i, chars.u.s.n - i, &c);
        if (c == cp)
            return 1;
    }
    return 0;
}

/* str.strip family: which 1 = left, 2 = right, 3 = both. chars NONE = ws. */
static struct jv strip(struct jv in, struct jv chars, int which)
{
    const char *p = in.u.s.p;
    size_t a = 0, b = in.u.s.n;
    if (which & 1)
        while (a < b) {
            int32_t cp;
            size_t l = ju8_dec(p + a, b - a, &cp);
            if (!is_in_chars(cp, chars))
                break;
            a += l;
        }
    if (which & 2)
        while (b > a) {
            size_t k = b - 1;
            while (k > a && ((unsigned char)p[k] & 0xc0) == 0x80)
                k--;
            int32_t cp;
            ju8_dec(p + k, b - k, &cp);
            if (!is_in_chars(cp, chars))
                break;
            b = k;
        }
    return jv_str(p + a, b - a);
}

static int str_replace(struct jstate *s, struct jv in, struct jv old, struct jv new, int64_t count,
                       struct jv *out)
{
    struct ax_buf b;
    ax_buf_init(&b, s->out_max);
    const char *p = in.u.s.p;
    size_t n = in.u.s.n, i = 0;
    int64_t done = 0;
    if (!old.u.s.n) {
        /* empty pattern: insert before every code point and at the end */
        while (1) {
            if (count < 0 || done < count) {
                if (jbuf_put(s, &b, new.u.s.p, new.u.s.n))
                    goto fail;
                done++;
            }
            if (i >= n)
                break;
            int32_t cp;
            size_t l = ju8_dec(p + i, n - i, &cp);
            if (jbuf_put(s, &b, p + i, l))
                goto fail;
            i += l;
        }
        return jbuf_done(s, &b, out);
    }
    while (i <= n) {
        const char *hit =
            (count < 0 || done < count) ? memmem(p + i, n - i, old.u.s.p, old.u.s.n) : NULL;
        if (!hit) {
            if (jbuf_put(s, &b, p + i, n - i))
                goto fail;
            break;
        }
        if (jbuf_put(s, &b, p + i, (size_t)(hit - (p + i))) ||
            jbuf_put(s, &b, new.u.s.p, new.u.s.n))
            goto fail;
        i = (size_t)(hit - p) + old.u.s.n;
        done++;
    }
    return jbuf_done(s, &b, out);
fail:
    ax_buf_free(&b);
    return -1;
}

static int list_push(struct jstate *s, struct jv *list, size_t *cap, struct jv v)
{
    struct jlist *l = list->u.l;
    if (l->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        struct jv *nv = ja_alloc(&s->ar, nc * sizeof *nv);
        if (!nv)
            return joom(s);
        if (l->n)
            memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv;
        *cap = nc;
    }
    l->v[l->n++] = v;
    return 0;
}

/* str.split / rsplit with Python's rules. */
static int str_split(struct jstate *s, struct jv in, struct jv sep, int64_t maxsplit, int right,
                     struct jv *out)
{
    size_t cap = 0;
    if (jv_newlist(s, JV_LIST, 0, out))
        return -1;
    const char *p = in.u.s.p;
    size_t n = in.u.s.n;
    if (sep.k == JV_NONE) {
        /* runs of whitespace; leading/trailing ignored */
        struct jv parts;
        size_t pcap = 0;
        if (jv_newlist(s, JV_LIST, 0, &parts))
            return -1;
        if (!right) {
            size_t i = 0;
            int64_t done = 0;
            while (i < n) {
                int32_t cp;
                size_t l;
                while (i < n && (l = ju8_dec(p + i, n - i, &cp), jpy_isspace(cp)))
                    i += l;
                if (i >= n)
                    break;
                if (maxsplit >= 0 && done >= maxsplit)
                    return list_push(s, out, &cap, jv_str(p + i, n - i));
                size_t st = i;
                while (i < n && (l = ju8_dec(p + i, n - i, &cp), !jpy_isspace(cp)))
                    i += l;
                if (list_push(s, out, &cap, jv_str(p + st, i - st)))
                    return -1;
                done++;
            }
            return 0;
        }
        /* rsplit(None): split from the right */
        size_t e = n;
        int64_t done = 0;
        while (e > 0) {
            struct jv t = strip(jv_str(p, e), jv_none(), 2);
            e = t.u.s.n;
            if (!e)
                break;
            if (maxsplit >= 0 && done >= maxsplit) {
                if (list_push(s, &parts, &pcap, jv_str(p, e)))
                    return -1;
                break;
            }
            size_t st = e;
            while (st > 0) {
                size_t k = st - 1;
                while (k > 0 && ((unsigned char)p[k] & 0xc0) == 0x80)
                    k--;
                int32_t cp;
                ju8_dec(p + k, st - k, &cp);
                if (jpy_isspace(cp))
                    break;
                st = k;
            }
            if (list_push(s, &parts, &pcap, jv_str(p + st, e - st)))
                return -1;
            e = st;
            done++;
        }
        for (size_t i = parts.u.l->n; i-- > 0;)
            if (list_push(s, out, &cap, parts.u.l->v[i]))
                return -1;
        return 0;
    }
    if (need_str(s, sep, "separator"))
        return -1;
    if (!sep.u.s.n)
        return jfail(s, "empty separator");
    const char *sp = sep.u.s.p;
    size_t sn = sep.u.s.n;
    if (!right) {
        size_t i = 0;
        int64_t done = 0;
        for (;;) {
            const char *hit =
                (maxsplit < 0 || done < maxsplit) ? memmem(p + i, n - i, sp, sn) : NULL;
            if (!hit)
                return list_push(s, out, &cap, jv_str(p + i, n - i));
            if (list_push(s, out, &cap, jv_str(p + i, (size_t)(hit - p) - i)))
                return -1;
            i = (size_t)(hit - p) + sn;
            done++;
        }
    }
    struct jv parts;
    size_t pcap = 0;
    if (jv_newlist(s, JV_LIST, 0, &parts))
        return -1;
    size_t e = n;
    int64_t done = 0;
    for (;;) {
        const char *hit = NULL;
        if ((maxsplit < 0 || done < maxsplit) && e >= sn)
            for (size_t k = e - sn + 1; k-- > 0;)
                if (!memcmp(p + k, sp, sn)) {
                    hit = p + k;
                    break;
                }
        if (!hit) {
            if (list_push(s, &parts, &pcap, jv_str(p, e)))
                return -1;
            break;
        }
        size_t k = (size_t)(hit - p);
        if (list_push(s, &parts, &pcap, jv_str(p + k + sn, e - k - sn)))
            return -1;
        e = k;
        done++;
    }
    for (size_t i = parts.u.l->n; i-- > 0;)
        if (list_push(s, out, &cap, parts.u.l->v[i]))
            return -1;
    return 0;
}

static size_t cp_index(const char *p, size_t byte_off)
{
    return ju8_len(p, byte_off);
}

/* Byte offset of code point i (clamped to the end). */
static size_t u8_offset_pub(const char *p, size_t n, size_t i)
{
    size_t off = 0;
    while (i && off < n) {
        off++;
        while (off < n && ((unsigned char)p[off] & 0xc0) == 0x80)
            off++;
        i--;
    }
    return off;
}

/* ---- attribute paths for filters ("a.b.0") via getitem, like make_attrgetter ---- */
static int attr_path(struct jstate *s, struct jv item, struct jv attr, struct jv *out)
{
    if (attr.k == JV_INT)
        return jgetitem(s, item, attr, out);
    if (attr.k != JV_STR)
        return jgetitem(s, item, attr, out);
    const char *p = attr.u.s.p, *end = p + attr.u.s.n;
    struct jv cur = item;
    while (p <= end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        size_t n = dot ? (size_t)(dot - p) : (size_t)(end - p);
        struct jv key = jv_str(p, n);
        int digits = n > 0;
        for (size_t i = 0; i < n; i++)
            digits &= p[i] >= '0' && p[i] <= '9';
        if (digits && n < 18)
            key = jv_int(strtoll(p, NULL, 10));
        if (jgetitem(s, cur, key, &cur))
            return -1;
        if (!dot)
            break;
        p = dot + 1;
    }
    *out = cur;
    return 0;
}

/* ---- sorting (stable merge sort with a Python-style comparator) ---- */
struct sortctx {
    struct jstate *s;
    int reverse, case_sensitive, failed;
};

static struct jv fold(struct jstate *s, struct jv v, int case_sensitive)
{
    struct jv r = v;
    if (!case_sensitive && v.k == JV_STR && map_case(s, v, 0, &r))
        return v;
    return r;
}

static int key_cmp(struct sortctx *c, struct jv a, struct jv b)
{
    int r = 0;
    if (c->failed)
        return 0;
    if (jv_cmp(c->s, a, b, &r)) {
        c->failed = 1;
        return 0;
    }
    return c->reverse ? -r : r;
}

static void msort(struct sortctx *c, struct jv *keys, struct jv *vals, struct jv *tk, struct jv *tv,
                  size_t n)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    msort(c, keys, vals, tk, tv, h);
    msort(c, keys + h, vals + h, tk, tv, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        if (key_cmp(c, keys[j], keys[i]) < 0) {
            tk[k] = keys[j];
            tv[k++] = vals[j++];
        } else {
            tk[k] = keys[i];
            tv[k++] = vals[i++];
        }
    }
    while (i < h) {
        tk[k] = keys[i];
        tv[k++] = vals[i++];
    }
    while (j < n) {
        tk[k] = keys[j];
        tv[k++] = vals[j++];
    }
    memcpy(keys, tk, n * sizeof *keys);
    memcpy(vals, tv, n * sizeof *vals);
}

/* Sorts items by key (attribute path or the item), returns a new list. */
static int sort_items(struct jstate *s, struct jlist items, struct jv attr, int reverse, int cs,
                      struct jv *out)
{
    size_t n = items.n;
    struct jv *keys = ja_alloc(&s->ar, (n + 1) * sizeof *keys),
              *tk = ja_alloc(&s->ar, (n + 1) * sizeof *tk),
              *tv = ja_alloc(&s->ar, (n + 1) * sizeof *tv);
    if (!keys || !tk || !tv || jv_newlist(s, JV_LIST, n, out))
        return joom(s);
    for (size_t i = 0; i < n; i++) {
        struct jv k = items.v[i];
        if (attr.k != JV_NONE && attr_path(s, k, attr, &k))
            return -1;
        keys[i] = fold(s, k, cs);
        out->u.l->v[i] = items.v[i];
    }
    if (jcount_iter(s, n))
        return -1;
    struct sortctx c = {s, reverse, cs, 0};
    msort(&c, keys, out->u.l->v, tk, tv, n);
    return c.failed ? -1 : 0;
}

/* ---- filters ---- */
static int f_default(struct jv in, struct bound *b, struct jv *out)
{
    int boolean = arg_bool(b, 1, 0);
    if (in.k == JV_UNDEF || (boolean && !jv_truthy(in)))
        *out = b->have[0] ? b->v[0] : jv_str("", 0);
    else
        *out = in;
    return 0;
}

static int f_length(struct jstate *s, struct jv in, struct jv *out)
{
    switch (in.k) {
    case JV_STR:
        *out = jv_int((int64_t)ju8_len(in.u.s.p, in.u.s.n));
        return 0;
    case JV_LIST:
    case JV_TUPLE:
        if (in.sub == SUB_GEN)
            return jfail(s, "object of type 'generator' has no len()");
        *out = jv_int((int64_t)in.u.l->n);
        return 0;
    case JV_DICT:
        *out = jv_int((int64_t)in.u.d->n);
        return 0;
    case JV_UNDEF:
        *out = jv_int(0);
        return 0;
    case JV_LOOP:
        *out = jv_int(in.u.lp->n);
        return 0;
    default:
        return jfail(s, "object of type '%s' has no len()", jv_typename(in));
    }
}

static int f_join(struct jstate *s, struct jv in, struct bound *b, struct jv *out)
{
    struct jlist items;
    struct jv d = b->have[0] ? b->v[0] : jv_str("", 0);
    if (jiter(s, in, &items) || str_of(s, d, &d))
        return -1;
    struct ax_buf buf;
    ax_buf_init(&buf, s->out_max);
    for (size_t i = 0; i < items.n; i++) {
        struct jv v = items.v[i];
        if ((b->have[1] && b->v[1].k != JV_NONE && attr_path(s, v, b->v[1], &v)) ||
            (i && jbuf_put(s, &buf, d.u.s.p, d.u.s.n)) || jv_str_to(s, &buf, v)) {
            ax_buf_free(&buf);
            return -1;
        }
    }
    return jbuf_done(s, &buf, out);
}

static int f_indent(struct jstate *s, struct jv in, struct bound *b, struct jv *out)
{
    struct jv ind;
    if (in.k != JV_STR)
        return in.k == JV_UNDEF ? jfail(s, "indent of an undefined value")
                                : jfail(s, "unsupported operand type(s) for +=: '%s' and 'str'",
                                        jv_typename(in));
    if (b->have[0] && b->v[0].k == JV_STR) {
        ind = b->v[0];
    } else {
        int64_t w;
        if (arg_int(s, b, 0, 4, &w))
            return -1;
        if (w < 0)
            w = 0;
        if (w > 4096)
            return jfail(s, "indent width too large");
        char *p = ja_alloc(&s->ar, (size_t)w + 1);
        if (!p)
            return joom(s);
        memset(p, ' ', (size_t)w);
        ind = jv_str(p, (size_t)w);
    }
    int first = arg_bool(b, 1, 0), blank = arg_bool(b, 2, 0);
    /* jinja: lines = (s + "\n").splitlines(), i.e. the pieces of s between
     * line breaks, keeping a last empty piece after a final break */
    struct ax_buf o;
    ax_buf_init(&o, s->out_max);
    const char *p = in.u.s.p;
    size_t n = in.u.s.n, i = 0, line = 0;
    if (first && jbuf_put(s, &o, ind.u.s.p, ind.u.s.n))
        goto fail;
    for (;;) {
        size_t e = i, next = n + 1;
        while (e < n) {
            int32_t cp;
            size_t l = ju8_dec(p + e, n - e, &cp);
            if (is_linebreak(cp)) {
                next = e + l + (cp == '\r' && e + 1 < n && p[e + 1] == '\n');
                break;
            }
            e += l;
        }
        if (line > 0) {
            if (jbuf_put(s, &o, "\n", 1))
                goto fail;
            if ((blank || e > i) && jbuf_put(s, &o, ind.u.s.p, ind.u.s.n))
                goto fail;
        }
        if (jbuf_put(s, &o, p + i, e - i))
            goto fail;
        line++;
        if (next > n)
            break;
        i = next;
    }
    return jbuf_done(s, &o, out);
fail:
    ax_buf_free(&o);
    return -1;
}

static int f_tojson(struct jstate *s, struct jv in, struct bound *b, struct jv *out)
{
    struct json_opts o = {0};
    char *ind = NULL;
    o.ensure_ascii = arg_bool(b, 0, 0);
    o.sort_keys = arg_bool(b, 3, 0);
    if (b->have[1] && b->v[1].k != JV_NONE) {
        if (b->v[1].k == JV_STR) {
            o.indent = b->v[1].u.s.p;
            o.indent_n = b->v[1].u.s.n;
        } else {
            int64_t w;
            if (arg_int(s, b, 1, 0, &w))
                return -1;
            if (w < 0)
                w = 0;
            if (w > 4096)
                return jfail(s, "indent width too large");
            if (!(ind = ja_alloc(&s->ar, (size_t)w + 1)))
                return joom(s);
            memset(ind, ' ', (size_t)w);
            o.indent = ind;
            o.indent_n = (size_t)w;
        }
    }
    o.item_sep = o.indent ? "," : ", ";
    o.item_sep_n = strlen(o.item_sep);
    o.key_sep = ": ";
    o.key_sep_n = 2;
    if (b->have[2] && b->v[2].k != JV_NONE) {
        struct jv sep = b->v[2];
        if ((sep.k != JV_LIST && sep.k != JV_TUPLE) || sep.u.l->n != 2 ||
            sep.u.l->v[0].k != JV_STR || sep.u.l->v[1].k != JV_STR)
            return jfail(s, "tojson separators must be a pair of strings");
        o.item_sep = sep.u.l->v[0].u.s.p;
        o.item_sep_n = sep.u.l->v[0].u.s.n;
        o.key_sep = sep.u.l->v[1].u.s.p;
        o.key_sep_n = sep.u.l->v[1].u.s.n;
    }
    struct ax_buf buf;
    ax_buf_init(&buf, s->out_max);
    if (jv_json_to(s, &buf, in, &o, 0)) {
        ax_buf_free(&buf);
        return -1;
    }
    return jbuf_done(s, &buf, out);
}

static int f_round(struct jstate *s, struct jv in, struct bound *b, struct jv *out)
{
    int64_t prec;
    if (arg_int(s, b, 0, 0, &prec))
        return -1;
    const char *method = "common";
    size_t mn = 6;
    if (b->have[1]) {
        if (need_str(s, b->v[1], "round method"))
            return -1;
        method = b->v[1].u.s.p;
        mn = b->v[1].u.s.n;
    }
    int common = mn == 6 && !memcmp(method, "common", 6),
        ceil_ = mn == 4 && !memcmp(method, "ceil", 4),
        floor_ = mn == 5 && !memcmp(method, "floor", 5);
    if (!common && !ceil_ && !floor_)
        return jfail(s, "method must be common, ceil or floor");
    if (!jv_is_num(in))
        return in.k == JV_UNDEF
                   ? jfail(s, "'%.*s' is undefined", (int)in.u.s.n, in.u.s.p ? in.u.s.p : "")
                   : jfail(s, "type %s doesn't define __round__ method", jv_typename(in));
    if (prec > 300 || prec < -300)
        prec = prec > 0 ? 300 : -300;
    double x = jv_num(in);
    if (common) {
        if (in.k != JV_FLOAT) {
            *out = jv_int(in.u.i); /* round(int, n) stays an int (n >= 0) */
            if (prec < 0) {
                double p10 = pow(10.0, (double)-prec), r = nearbyint((double)in.u.i / p10) * p10;
                *out = jv_int((int64_t)r);
            }
            return 0;
        }
        if (isnan(x) || isinf(x)) {
            *out = in;
            return 0;
        }
        if (prec >= 0) {
            char buf[400];
            snprintf(buf, sizeof buf, "%.*f", (int)(prec > 320 ? 320 : prec), x);
            *out = jv_float(strtod(buf, NULL));
        } else {
            double p10 = pow(10.0, (double)-prec);
            *out = jv_float(nearbyint(x / p10) * p10);
        }
        return 0;
    }
    double p10 = pow(10.0, (double)prec);
    if (in.k != JV_FLOAT && prec >= 0 && prec < 19) {
        /* integer * 10**p stays integral: result is float of the int */
        *out = jv_float(x);
        return 0;
    }
    *out = jv_float((ceil_ ? ceil(x * p10) : floor(x * p10)) / p10);
    return 0;
}

static int parse_py_int(struct jv in, int64_t base, int64_t *out)
{
    /* int(str, base): optional whitespace, sign, digits with single underscores */
    char buf[80];
    size_t k = 0;
    struct jv t = strip(in, jv_none(), 3);
    if (!t.u.s.n || t.u.s.n >= sizeof buf)
        return 0;
    for (size_t i = 0; i < t.u.s.n; i++) {
        char c = t.u.s.p[i];
        if (c == '_') {
            if (!i || i + 1 >= t.u.s.n || t.u.s.p[i + 1] == '_' ||
                !isalnum((unsigned char)t.u.s.p[i - 1]))
                return 0;
            continue;
        }
        buf[k++] = c;
    }
    buf[k] = '\0';
    /* a 0x/0o/0b prefix is allowed when it matches the base (or base 0) */
    char *d = buf + (buf[0] == '-' || buf[0] == '+');
    int pb = 0;
    if (d[0] == '0' && d[1]) {
        char c = (char)(d[1] | 0x20);
        pb = c == 'x' ? 16 : c == 'o' ? 8 : c == 'b' ? 2 : 0;
    }
    if (pb && (base == pb || base == 0)) {
        memmove(d, d + 2, strlen(d + 2) + 1);
        base = pb;
    } else if (base == 0) {
        base = 10;
        if (d[0] == '0' && d[1])
            for (const char *z = d; *z; z++)
                if (*z != '0')
                    return 0;
    }
    if (base < 2 || base > 36 || !*d || *d == '-' || *d == '+' || *d == ' ')
        return 0;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, (int)base);
    if (*end || errno || end == buf)
        return 0;
    *out = v;
    return 1;
}

static int parse_py_float(struct jv in, double *out)
{
    char buf[128];
    struct jv t = strip(in, jv_none(), 3);
    if (!t.u.s.n || t.u.s.n >= sizeof buf)
        return 0;
    memcpy(buf, t.u.s.p, t.u.s.n);
    buf[t.u.s.n] = '\0';
    for (size_t i = 0; i < t.u.s.n; i++)
        if (buf[i] == '_' || (buf[i] == '0' && (buf[i + 1] == 'x' || buf[i + 1] == 'X')))
            return 0;
    char *end;
    double v = strtod(buf, &end);
    if (*end || end == buf)
        return 0;
    *out = v;
    return 1;
}

static int f_int(struct jstate *s, struct jv in, struct bound *b, struct jv *out)
{
    int64_t base;
    if (arg_int(s, b, 1, 10, &base))
        return -1;
    struct jv def = b->have[0] ? b->v[0] : jv_int(0);
    int64_t v;
    double f;
    switch (in.k) {
    case JV_UNDEF:
        return jfail(s, "'%.*s' is undefined", (int)in.u.s.n, in.u.s.p ? in.u.s.p : "");
    case JV_INT:
    case JV_BOOL:
        *out = jv_int(in.u.i);
        return 0;
    case JV_FLOAT:
        if (isnan(in.u.f) || isinf(in.u.f) || fabs(in.u.f) >= 9.2e18) {
            *out = def;
            return 0;
        }
        *out = jv_int((int64_t)in.u.f);
        return 0;
    case JV_STR:
        if ((base == 0 || (base >= 2 && base <= 36)) && parse_py_int(in, base, &v)) {
            *out = jv_int(v);
        } else if (parse_py_float(in, &f) && !isnan(f) && !isinf(f) && fabs(f) < 9.2e18) {
            *out = jv_int((int64_t)f);
        } else {
            *out = def;
        }
        return 0;
    default:
        *out = def;
        return 0;
    }
}

static int f_float(struct jstate *s, struct jv in, struct bound *b, struct jv *out)
{
    double f;
    struct jv def = b->have[0] ? b->v[0] : jv_float(0.0);
    if (in.k == JV_UNDEF)
        return jfail(s, "'%.*s' is undefined", (int)in.u.s.n, in.u.s.p ? in.u.s.p : "");
    if (jv_is_num(in))
        *out = jv_float(jv_num(in));
    else if (in.k == JV_STR && parse_py_float(in, &f))
        *out = jv_float(f);
    else
        *out = def;
    return 0;
}

static int f_escape(struct jstate *s, struct jv in, struct jv *out)
{
    if (str_of(s, in, &in))
        return -1;
    struct ax_buf b;
    ax_buf_init(&b, s->out_max);
    for (size_t i = 0; i < in.u.s.n; i++) {
        const char *r = NULL;
        switch (in.u.s.p[i]) {
        case '&':
            r = "&amp;";
            break;
        case '<':
            r = "&lt;";
            break;
        case '>':
            r = "&gt;";
            break;
        case '"':
            r = "&#34;";
            break;
        case '\'':
            r = "&#39;";
            break;
        }
        if (r ? jbuf_put(s, &b, r, strlen(r)) : jbuf_put(s, &b, in.u.s.p + i, 1)) {
            ax_buf_free(&b);
            return -1;
        }
    }
    return jbuf_done(s, &b, out);
}

static int f_wordcount(struct jstate *s, struct jv in, struct jv *out)
{
    if (str_of(s, in, &in))
        return -1;
    int64_t words = 0;
    int inword = 0;
    for (size_t i = 0; i < in.u.s.n;) {
        int32_t cp;
        i += ju8_dec(in.u.s.p + i, in.u.s.n - i, &cp);
        utf8proc_category_t c = utf8proc_category(cp);
        int w = cp == '_' || (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
                (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO) ||
                c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_MC;
        if (w && !inword)
            words++;
        inword = w;
    }
    *out = jv_int(words);
    return 0;
}

/* select/reject/selectattr/rejectattr and map(filter) share this */
static int apply_test_args(struct jstate *s, struct jv item, struct jv *args, size_t nargs,
                           int *res)
{
    if (!nargs) {
        *res = jv_truthy(item);
        return 0;
    }
    if (args[0].k != JV_STR)
        return jfail(s, "test name must be a string");
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)args[0].u.s.n, args[0].u.s.p);
    int id = jtest_id(name);
    if (id < 0)
        return jfail(s, "No test named '%s'.", name);
    return jtest_apply(s, id, item, args + 1, nargs - 1, res);
}

static int f_select(struct jstate *s, int id, struct jv in, struct jv *args, size_t nargs,
                    struct jv *out)
{
    int attr = id == F_SELECTATTR || id == F_REJECTATTR,
        want = id == F_SELECT || id == F_SELECTATTR;
    struct jlist items;
    size_t cap = 0;
    if (attr && !nargs)
        return jfail(s, "Missing parameter for attribute name");
    if (!jv_truthy(in)) /* select_or_reject: `if value:` guards the loop */
        return jv_newlist(s, JV_LIST, 0, out);
    if (jiter(s, in, &items) || jv_newlist(s, JV_LIST, 0, out) || jcount_iter(s, items.n))
        return -1;
    for (size_t i = 0; i < items.n; i++) {
        struct jv v = items.v[i];
        int r = 0;
        if (attr && attr_path(s, v, args[0], &v))
            return -1;
        /* args may be NULL when there are none: no arithmetic on it then */
        if (apply_test_args(s, v, attr ? args + 1 : args, nargs - (size_t)attr, &r))
            return -1;
        if (r == want && list_push(s, out, &cap, items.v[i]))
            return -1;
    }
    return 0;
}

static int f_map(struct jstate *s, struct jv in, struct jv *args, size_t nargs, const char **kn,
                 struct jv *kv, size_t nkw, struct jscope *sc, struct jv *out)
{
    struct jlist items;
    if (!jv_truthy(in)) /* do_map: `if value:` guards the loop */
        return jv_newlist(s, JV_LIST, 0, out);
    if (jiter(s, in, &items) || jv_newlist(s, JV_LIST, items.n, out) || jcount_iter(s, items.n))
        return -1;
    struct jv attr = jv_none(), def = {.k = JV_UNDEF};
    int by_attr = 0;
    for (size_t k = 0; k < nkw; k++) {
        if (!strcmp(kn[k], "attribute")) {
            attr = kv[k];
            by_attr = 1;
        } else if (!strcmp(kn[k], "default")) {
            def = kv[k];
        }
    }
    if (by_attr) {
        for (size_t i = 0; i < items.n; i++) {
            struct jv v;
            if (attr_path(s, items.v[i], attr, &v))
                return -1;
            out->u.l->v[i] = v.k == JV_UNDEF && def.k != JV_UNDEF ? def : v;
        }
        return 0;
    }
    if (!nargs || args[0].k != JV_STR)
        return jfail(s, "map requires a filter name or attribute=");
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)args[0].u.s.n, args[0].u.s.p);
    int id = jfilter_id(name);
    if (id < 0)
        return jfail(s, "No filter named '%s'.", name);
    for (size_t i = 0; i < items.n; i++)
        if (jfilter_apply(s, id, items.v[i], args + 1, nargs - 1, kn, kv, nkw, sc, &out->u.l->v[i]))
            return -1;
    return 0;
}

static int f_minmax(struct jstate *s, struct jv in, struct bound *b, int want_max, struct jv *out)
{
    struct jlist items;
    if (jiter(s, in, &items))
        return -1;
    int cs = arg_bool(b, 0, 0);
    struct jv attr = b->have[1] ? b->v[1] : jv_none();
    if (!items.n) {
        *out = jv_undef(NULL);
        return 0;
    }
    struct jv best = items.v[0], bk = best;
    if (attr.k != JV_NONE && attr_path(s, bk, attr, &bk))
        return -1;
    bk = fold(s, bk, cs);
    for (size_t i = 1; i < items.n; i++) {
        struct jv k = items.v[i];
        int c;
        if (attr.k != JV_NONE && attr_path(s, k, attr, &k))
            return -1;
        k = fold(s, k, cs);
        if (jv_cmp(s, k, bk, &c))
            return -1;
        if (want_max ? c > 0 : c < 0) {
            best = items.v[i];
            bk = k;
        }
    }
    *out = best;
    return 0;
}

static int f_sum(struct jstate *s, struct jv in, struct bound *b, struct jv *out)
{
    struct jlist items;
    if (jiter(s, in, &items))
        return -1;
    struct jv acc = b->have[1] ? b->v[1] : jv_int(0);
    if (acc.k == JV_STR)
        return jfail(s, "sum() can't sum strings [use ''.join(seq) instead]");
    for (size_t i = 0; i < items.n; i++) {
        struct jv v = items.v[i];
        if (b->have[0] && b->v[0].k != JV_NONE && attr_path(s, v, b->v[0], &v))
            return -1;
        if (!jv_is_num(acc) || !jv_is_num(v)) {
            if ((acc.k == JV_LIST && v.k == JV_LIST) || (acc.k == JV_TUPLE && v.k == JV_TUPLE)) {
                struct jv r;
                if (jv_newlist(s, acc.k, acc.u.l->n + v.u.l->n, &r))
                    return -1;
                if (acc.u.l->n)
                    memcpy(r.u.l->v, acc.u.l->v, acc.u.l->n * sizeof(struct jv));
                if (v.u.l->n)
                    memcpy(r.u.l->v + acc.u.l->n, v.u.l->v, v.u.l->n * sizeof(struct jv));
                acc = r;
                continue;
            }
            return jfail(s, "unsupported operand type(s) for +: '%s' and '%s'", jv_typename(acc),
                         jv_typename(v));
        }
        if (acc.k != JV_FLOAT && v.k != JV_FLOAT) {
            int64_t r;
            if (__builtin_add_overflow(acc.u.i, v.u.i, &r))
                return jfail(s, "integer overflow (results beyond 64 bits are not supported)");
            acc = jv_int(r);
        } else {
            acc = jv_float(jv_num(acc) + jv_num(v));
        }
    }
    *out = acc;
    return 0;
}

static int f_unique(struct jstate *s, struct jv in, struct bound *b, struct jv *out)
{
    struct jlist items;
    size_t cap = 0;
    int cs = arg_bool(b, 0, 0);
    struct jv attr = b->have[1] ? b->v[1] : jv_none();
    if (jiter(s, in, &items) || jv_newlist(s, JV_LIST, 0, out) || jcount_iter(s, items.n))
        return -1;
    struct jv *seen = ja_alloc(&s->ar, (items.n + 1) * sizeof *seen);
    if (!seen)
        return joom(s);
    size_t ns = 0;
    for (size_t i = 0; i < items.n; i++) {
        struct jv k = items.v[i];
        if (attr.k != JV_NONE && attr_path(s, k, attr, &k))
            return -1;
        k = fold(s, k, cs);
        size_t j;
        for (j = 0; j < ns && !jv_eq(seen[j], k); j++)
            ;
        if (j < ns)
            continue;
        seen[ns++] = k;
        if (list_push(s, out, &cap, items.v[i]))
            return -1;
    }
    return 0;
}

static int f_dictsort(struct jstate *s, struct jv in, struct bound *b, struct jv *out)
{
    if (in.k != JV_DICT)
        return jfail(s, "dictsort needs a mapping, not %s", jv_typename(in));
    int cs = arg_bool(b, 0, 0), rev = arg_bool(b, 2, 0), pos = 0;
    if (b->have[1]) {
        struct jv by = b->v[1];
        if (by.k == JV_STR && by.u.s.n == 5 && !memcmp(by.u.s.p, "value", 5))
            pos = 1;
        else if (!(by.k == JV_STR && by.u.s.n == 3 && !memcmp(by.u.s.p, "key", 3)))
            return jfail(s, "You can only sort by either \"key\" or \"value\"");
    }
    struct jv pairs;
    if (jv_newlist(s, JV_LIST, in.u.d->n, &pairs))
        return -1;
    for (size_t i = 0; i < in.u.d->n; i++) {
        if (jv_newlist(s, JV_TUPLE, 2, &pairs.u.l->v[i]))
            return -1;
        pairs.u.l->v[i].u.l->v[0] = in.u.d->key[i];
        pairs.u.l->v[i].u.l->v[1] = in.u.d->val[i];
    }
    return sort_items(s, *pairs.u.l, jv_int(pos), rev, cs, out);
}

static int f_batch(struct jstate *s, struct jv in, struct bound *b, struct jv *out)
{
    struct jlist items;
    int64_t size;
    size_t cap = 0;
    if (!b->have[0])
        return jfail(s, "batch() missing required argument 'linecount'");
    if (arg_int(s, b, 0, 1, &size) || jiter(s, in, &items) || jv_newlist(s, JV_LIST, 0, out))
        return -1;
    if (size <= 0)
        return jfail(s, "batch linecount must be positive");
    for (size_t i = 0; i < items.n; i += (size_t)size) {
        size_t m = items.n - i < (size_t)size ? items.n - i : (size_t)size;
        size_t full = b->have[1] && b->v[1].k != JV_NONE ? (size_t)size : m;
        struct jv row;
        if (jv_newlist(s, JV_LIST, full, &row))
            return -1;
        for (size_t k = 0; k < full; k++)
            row.u.l->v[k] = k < m ? items.v[i + k] : b->v[1];
        if (list_push(s, out, &cap, row))
            return -1;
    }
    return 0;
}

static int f_reverse(struct jstate *s, struct jv in, struct jv *out)
{
    if (in.k == JV_STR) {
        char *p = ja_alloc(&s->ar, in.u.s.n + 1);
        if (!p)
            return joom(s);
        size_t o = in.u.s.n;
        for (size_t i = 0; i < in.u.s.n;) {
            int32_t cp;
            size_t l = ju8_dec(in.u.s.p + i, in.u.s.n - i, &cp);
            o -= l;
            memcpy(p + o, in.u.s.p + i, l);
            i += l;
        }
        *out = jv_str(p, in.u.s.n);
        return 0;
    }
    struct jlist items;
    if (jiter(s, in, &items) || jv_newlist(s, JV_LIST, items.n, out))
        return -1;
    for (size_t i = 0; i < items.n; i++)
        out->u.l->v[i] = items.v[items.n - 1 - i];
    return 0;
}

static int f_items(struct jstate *s, struct jv in, struct jv *out)
{
    if (in.k == JV_UNDEF)
        return jv_newlist(s, JV_LIST, 0, out);
    if (in.k != JV_DICT)
        return jfail(s, "Can only get item pairs from a mapping.");
    if (jv_newlist(s, JV_LIST, in.u.d->n, out))
        return -1;
    for (size_t i = 0; i < in.u.d->n; i++) {
        struct jv t;
        if (jv_newlist(s, JV_TUPLE, 2, &t))
            return -1;
        t.u.l->v[0] = in.u.d->key[i];
        t.u.l->v[1] = in.u.d->val[i];
        out->u.l->v[i] = t;
    }
    return 0;
}

static int f_center(struct jstate *s, struct jv in, struct bound *b, struct jv *out)
{
    int64_t w;
    if (str_of(s, in, &in) || arg_int(s, b, 0, 80, &w))
        return -1;
    int64_t len = (int64_t)ju8_len(in.u.s.p, in.u.s.n);
    if (w <= len || w > 1 << 20) {
        *out = in;
        return 0;
    }
    int64_t marg = w - len, left = marg / 2 + (marg & w & 1);
    char *p = ja_alloc(&s->ar, in.u.s.n + (size_t)marg + 1);
    if (!p)
        return joom(s);
    memset(p, ' ', (size_t)left);
    memcpy(p + left, in.u.s.p, in.u.s.n);
    memset(p + left + in.u.s.n, ' ', (size_t)(marg - left));
    *out = jv_str(p, in.u.s.n + (size_t)marg);
    return 0;
}

int jfilter_apply(struct jstate *s, int id, struct jv in, struct jv *args, size_t nargs,
                  const char **kn, struct jv *kv, size_t nkw, struct jscope *sc, struct jv *out)
{
    *out = jv_undef(NULL);
    static const char *const none[] = {NULL};
    static const char *const p_default[] = {"default_value", "boolean", NULL};
    static const char *const p_join[] = {"d", "attribute", NULL};
    static const char *const p_indent[] = {"width", "first", "blank", NULL};
    static const char *const p_tojson[] = {"ensure_ascii", "indent", "separators", "sort_keys",
                                           NULL};
    static const char *const p_round[] = {"precision", "method", NULL};
    static const char *const p_int[] = {"default", "base", NULL};
    static const char *const p_float[] = {"default", NULL};
    static const char *const p_replace[] = {"old", "new", "count", NULL};
    static const char *const p_sort[] = {"reverse", "case_sensitive", "attribute", NULL};
    static const char *const p_minmax[] = {"case_sensitive", "attribute", NULL};
    static const char *const p_sum[] = {"attribute", "start", NULL};
    static const char *const p_dictsort[] = {"case_sensitive", "by", "reverse", NULL};
    static const char *const p_batch[] = {"linecount", "fill_with", NULL};
    static const char *const p_trim[] = {"chars", NULL};
    static const char *const p_attr[] = {"name", NULL};
    static const char *const p_center[] = {"width", NULL};
    struct bound b;
    const char *const *params = none;
    const char *fname = "filter";
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        if (filters[i].id == id) {
            fname = filters[i].name;
            break;
        }
    switch (id) {
    case F_DEFAULT:
        params = p_default;
        break;
    case F_JOIN:
        params = p_join;
        break;
    case F_INDENT:
        params = p_indent;
        break;
    case F_TOJSON:
        params = p_tojson;
        break;
    case F_ROUND:
        params = p_round;
        break;
    case F_INT:
        params = p_int;
        break;
    case F_FLOAT:
        params = p_float;
        break;
    case F_REPLACE:
        params = p_replace;
        break;
    case F_SORT:
        params = p_sort;
        break;
    case F_MAX:
    case F_MIN:
    case F_UNIQUE:
        params = p_minmax;
        break;
    case F_SUM:
        params = p_sum;
        break;
    case F_DICTSORT:
        params = p_dictsort;
        break;
    case F_BATCH:
        params = p_batch;
        break;
    case F_TRIM:
        params = p_trim;
        break;
    case F_ATTR:
        params = p_attr;
        break;
    case F_CENTER:
        params = p_center;
        break;
    case F_MAP:
        if (f_map(s, in, args, nargs, kn, kv, nkw, sc, out))
            return -1;
        out->sub = SUB_GEN;
        return 0;
    case F_SELECT:
    case F_REJECT:
    case F_SELECTATTR:
    case F_REJECTATTR:
        if (nkw)
            return jfail(s, "%s() takes no keyword arguments", fname);
        if (f_select(s, id, in, args, nargs, out))
            return -1;
        out->sub = SUB_GEN;
        return 0;
    default:
        break;
    }
    if (bind(s, fname, params, args, nargs, kn, kv, nkw, &b))
        return -1;
    struct jv t;
    struct jlist items;
    switch (id) {
    case F_ABS:
        if (in.k == JV_FLOAT)
            *out = jv_float(fabs(in.u.f));
        else if (in.k == JV_INT || in.k == JV_BOOL) {
            if (in.u.i == INT64_MIN)
                return jfail(s, "integer overflow (results beyond 64 bits are not supported)");
            *out = jv_int(in.u.i < 0 ? -in.u.i : in.u.i);
        } else
            return jfail(s, "bad operand type for abs(): '%s'", jv_typename(in));
        return 0;
    case F_ATTR:
        if (!b.have[0] || need_str(s, b.v[0], "attribute name"))
            return b.have[0] ? -1 : jfail(s, "attr() missing argument 'name'");
        if (memchr(b.v[0].u.s.p, '\0', b.v[0].u.s.n))
            return jfail(s, "attribute name contains NUL");
        return jgetattr(s, in, ja_strdup(&s->ar, b.v[0].u.s.p, b.v[0].u.s.n), b.v[0].u.s.n, out);
    case F_BATCH:
        if (f_batch(s, in, &b, out))
            return -1;
        out->sub = SUB_GEN;
        return 0;
    case F_CAPITALIZE:
        return str_of(s, in, &t) || map_case(s, t, 3, out);
    case F_COUNT:
    case F_LENGTH:
        return f_length(s, in, out);
    case F_DEFAULT:
        return f_default(in, &b, out);
    case F_DICTSORT:
        return f_dictsort(s, in, &b, out);
    case F_ESCAPE:
        return f_escape(s, in, out);
    case F_FIRST:
        if (jiter(s, in, &items))
            return -1;
        *out = items.n ? items.v[0] : jv_undef(NULL);
        return 0;
    case F_LAST:
        if (in.k == JV_UNDEF) {
            *out = jv_undef(NULL);
            return 0;
        }
        if (in.k == JV_STR)
            return f_reverse(s, in, &t) ||
                   jfilter_apply(s, F_FIRST, t, NULL, 0, NULL, NULL, 0, sc, out);
        if (jiter(s, in, &items))
            return -1;
        *out = items.n ? items.v[items.n - 1] : jv_undef(NULL);
        return 0;
    case F_FLOAT:
        return f_float(s, in, &b, out);
    case F_INDENT:
        return f_indent(s, in, &b, out);
    case F_INT:
        return f_int(s, in, &b, out);
    case F_ITEMS:
        if (f_items(s, in, out))
            return -1;
        out->sub = SUB_GEN;
        return 0;
    case F_JOIN:
        return f_join(s, in, &b, out);
    case F_LIST:
        if (jiter(s, in, &items) || jv_newlist(s, JV_LIST, items.n, out))
            return -1;
        if (items.n)
            memcpy(out->u.l->v, items.v, items.n * sizeof *items.v);
        return 0;
    case F_LOWER:
        return str_of(s, in, &t) || map_case(s, t, 0, out);
    case F_UPPER:
        return str_of(s, in, &t) || map_case(s, t, 1, out);
    case F_TITLE:
        return str_of(s, in, &t) || map_case(s, t, 4, out);
    case F_MAX:
    case F_MIN:
        return f_minmax(s, in, &b, id == F_MAX, out);
    case F_REPLACE: {
        int64_t count;
        if (!b.have[0] || !b.have[1])
            return jfail(s, "replace() needs old and new");
        if (str_of(s, in, &t) || need_str(s, b.v[0], "replace old") ||
            arg_int(s, &b, 2, -1, &count))
            return -1;
        struct jv nw;
        if (str_of(s, b.v[1], &nw))
            return -1;
        return str_replace(s, t, b.v[0], nw, count, out);
    }
    case F_REVERSE:
        if (f_reverse(s, in, out))
            return -1;
        if (out->k == JV_LIST)
            out->sub = SUB_GEN; /* reversed(): an iterator */
        return 0;
    case F_ROUND:
        return f_round(s, in, &b, out);
    case F_SAFE:
    case F_STRING:
        return str_of(s, in, out);
    case F_SORT:
        if (jiter(s, in, &items))
            return -1;
        return sort_items(s, items, b.have[2] ? b.v[2] : jv_none(), arg_bool(&b, 0, 0),
                          arg_bool(&b, 1, 0), out);
    case F_SUM:
        return f_sum(s, in, &b, out);
    case F_TOJSON:
        return f_tojson(s, in, &b, out);
    case F_TRIM:
        if (str_of(s, in, &t))
            return -1;
        *out = strip(t, b.have[0] ? b.v[0] : jv_none(), 3);
        return 0;
    case F_UNIQUE:
        if (f_unique(s, in, &b, out))
            return -1;
        out->sub = SUB_GEN;
        return 0;
    case F_WORDCOUNT:
        return f_wordcount(s, in, out);
    case F_CENTER:
        return f_center(s, in, &b, out);
    default:
        return jfail(s, "unsupported filter");
    }
}

/* ---- tests ---- */
static int test_cmp(struct jstate *s, int id, struct jv a, struct jv b, int *res)
{
    int c;
    if (id == X_EQ) {
        *res = jv_eq(a, b);
        return 0;
    }
    if (id == X_NE) {
        *res = !jv_eq(a, b);
        return 0;
    }
    if (jv_cmp(s, a, b, &c))
        return -1;
    *res = id == X_GT ? c > 0 : id == X_GE ? c >= 0 : id == X_LT ? c < 0 : c <= 0;
    return 0;
}

static int int_mod(struct jstate *s, struct jv v, int64_t m, int64_t *r)
{
    if (v.k == JV_INT || v.k == JV_BOOL) {
        int64_t x = v.u.i % m;
        *r = x && ((x < 0) != (m < 0)) ? x + m : x;
        return 0;
    }
    if (v.k == JV_FLOAT) {
        *r = fmod(v.u.f, (double)m) != 0;
        return 0;
    }
    if (v.k == JV_UNDEF)
        return jfail(s, "'%.*s' is undefined", (int)v.u.s.n, v.u.s.p ? v.u.s.p : "");
    return jfail(s, "unsupported operand type(s) for %%: '%s' and 'int'", jv_typename(v));
}

static int case_test(struct jstate *s, struct jv in, int upper, int *res)
{
    struct jv t;
    if (jv_tostr(s, in, &t))
        return -1;
    int cased = 0, bad = 0;
    for (size_t i = 0; i < t.u.s.n;) {
        int32_t cp;
        i += ju8_dec(t.u.s.p + i, t.u.s.n - i, &cp);
        utf8proc_category_t c = utf8proc_category(cp);
        if (c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LT)
            upper ? (void)(cased = 1) : (void)(bad = 1);
        else if (c == UTF8PROC_CATEGORY_LL)
            upper ? (void)(bad = 1) : (void)(cased = 1);
    }
    *res = cased && !bad;
    return 0;
}

int jtest_apply(struct jstate *s, int id, struct jv in, struct jv *args, size_t nargs, int *res)
{
    int64_t r = 0;
    *res = 0;
    int needs = id == X_DIVISIBLEBY || id == X_EQ || id == X_NE || id == X_GT || id == X_GE ||
                id == X_LT || id == X_LE || id == X_IN || id == X_SAMEAS;
    if (needs && nargs != 1)
        return jfail(s, "test takes exactly one argument (%zu given)", nargs);
    if (!needs && nargs)
        return jfail(s, "test takes no arguments (%zu given)", nargs);
    switch (id) {
    case X_BOOLEAN:
        *res = in.k == JV_BOOL;
        return 0;
    case X_CALLABLE:
        *res = in.k == JV_CALL || in.k == JV_LOOP || in.k == JV_UNDEF;
        return 0;
    case X_DEFINED:
        *res = in.k != JV_UNDEF;
        return 0;
    case X_UNDEFINED:
        *res = in.k == JV_UNDEF;
        return 0;
    case X_DIVISIBLEBY:
        if (args[0].k != JV_INT && args[0].k != JV_BOOL)
            return jfail(s, "divisibleby needs an integer");
        if (!args[0].u.i)
            return jfail(s, "integer division or modulo by zero");
        if (int_mod(s, in, args[0].u.i, &r))
            return -1;
        *res = r == 0;
        return 0;
    case X_EQ:
    case X_NE:
    case X_GT:
    case X_GE:
    case X_LT:
    case X_LE:
        return test_cmp(s, id, in, args[0], res);
    case X_ESCAPED:
        *res = 0;
        return 0;
    case X_EVEN:
    case X_ODD:
        if (in.k != JV_INT && in.k != JV_BOOL && in.k != JV_FLOAT)
            return int_mod(s, in, 2, &r);
        if (in.k == JV_FLOAT) {
            double m = fmod(in.u.f, 2.0);
            if (m < 0)
                m += 2.0;
            *res = id == X_EVEN ? m == 0 : m == 1;
            return 0;
        }
        if (int_mod(s, in, 2, &r))
            return -1;
        *res = id == X_EVEN ? r == 0 : r == 1;
        return 0;
    case X_FALSE:
        *res = in.k == JV_BOOL && !in.u.i;
        return 0;
    case X_TRUE:
        *res = in.k == JV_BOOL && in.u.i;
        return 0;
    case X_FILTER:
    case X_TEST: {
        char name[64];
        if (in.k != JV_STR || in.u.s.n >= sizeof name) {
            *res = 0;
            return 0;
        }
        memcpy(name, in.u.s.p, in.u.s.n);
        name[in.u.s.n] = '\0';
        *res = (id == X_FILTER ? jfilter_id(name) : jtest_id(name)) >= 0;
        return 0;
    }
    case X_FLOAT:
        *res = in.k == JV_FLOAT;
        return 0;
    case X_INTEGER:
        *res = in.k == JV_INT;
        return 0;
    case X_NUMBER:
        *res = jv_is_num(in);
        return 0;
    case X_IN: {
        struct jv seq = args[0];
        if (seq.k == JV_STR) {
            if (in.k != JV_STR)
                return jfail(s, "'in <string>' requires string as left operand, not %s",
                             jv_typename(in));
            *res = !in.u.s.n || memmem(seq.u.s.p, seq.u.s.n, in.u.s.p, in.u.s.n);
            return 0;
        }
        if (seq.k == JV_DICT) {
            *res = jv_dict_get(seq.u.d, in) != NULL;
            return 0;
        }
        struct jlist items;
        if (jiter(s, seq, &items))
            return -1;
        *res = 0;
        for (size_t i = 0; i < items.n && !*res; i++)
            *res = jv_eq(items.v[i], in);
        return 0;
    }
    case X_ITERABLE:
        *res = in.k == JV_STR || in.k == JV_LIST || in.k == JV_TUPLE || in.k == JV_DICT ||
               in.k == JV_UNDEF || in.k == JV_LOOP;
        return 0;
    case X_SEQUENCE:
        *res = in.k == JV_STR || (in.k == JV_LIST && !in.sub) || in.k == JV_TUPLE ||
               in.k == JV_DICT || in.k == JV_UNDEF;
        return 0;
    case X_MAPPING:
        *res = in.k == JV_DICT;
        return 0;
    case X_NONE:
        *res = in.k == JV_NONE;
        return 0;
    case X_STRING:
        *res = in.k == JV_STR;
        return 0;
    case X_LOWER:
        return case_test(s, in, 0, res);
    case X_UPPER:
        return case_test(s, in, 1, res);
    case X_SAMEAS: {
        struct jv o = args[0];
        if (in.k != o.k)
            *res = 0;
        else if (in.k == JV_NONE || in.k == JV_UNDEF)
            *res = in.k == JV_NONE;
        else if (in.k == JV_BOOL || in.k == JV_INT)
            *res = in.u.i == o.u.i && (in.k == JV_BOOL || (in.u.i >= -5 && in.u.i <= 256));
        else if (in.k == JV_STR)
            *res = in.u.s.p == o.u.s.p && in.u.s.n == o.u.s.n;
        else
            *res = in.u.l == o.u.l;
        return 0;
    }
    default:
        return jfail(s, "unsupported test");
    }
}

/* ---- globals ---- */
enum {
    G_RANGE = 1,
    G_NAMESPACE,
    G_DICT,
    G_RAISE,
    G_STRFTIME,
    /* str methods */
    M_STARTSWITH = 100,
    M_ENDSWITH,
    M_SPLIT,
    M_RSPLIT,
    M_STRIP,
    M_LSTRIP,
    M_RSTRIP,
    M_UPPER,
    M_LOWER,
    M_TITLE,
    M_CAPITALIZE,
    M_REPLACE,
    M_FIND,
    M_RFIND,
    M_COUNT,
    M_JOIN,
    M_ISDIGIT,
    M_ISALPHA,
    M_ISALNUM,
    M_ISSPACE,
    M_ISLOWER,
    M_ISUPPER,
    M_SPLITLINES,
    M_FORMAT,
    M_INDEX,
    M_RINDEX,
    /* dict methods */
    M_GET = 200,
    M_ITEMS,
    M_KEYS,
    M_VALUES,
    M_COPY,
    /* list methods */
    M_LCOUNT = 300,
    M_LINDEX,
    M_LCOPY,
};

static int new_call(struct jstate *s, enum jcall_kind kind, int id, const char *name,
                    struct jv self, struct jv *out)
{
    struct jcall *c = ja_alloc(&s->ar, sizeof *c);
    if (!c)
        return joom(s);
    c->kind = kind;
    c->id = id;
    c->name = name;
    c->self = self;
    out->k = JV_CALL;
    out->u.c = c;
    return 0;
}

int jbuiltin_lookup(const char *name, struct jv *out, struct jstate *s)
{
    static const struct {
        const char *name;
        int id;
    } g[] = {{"range", G_RANGE},
             {"namespace", G_NAMESPACE},
             {"dict", G_DICT},
             {"raise_exception", G_RAISE},
             {"strftime_now", G_STRFTIME}};
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
        if (!strcmp(g[i].name, name))
            return new_call(s, JC_BUILTIN, g[i].id, g[i].name, jv_none(), out);
    *out = jv_undef(name);
    return 0;
}

int jmethod_lookup(struct jstate *s, struct jv obj, const char *name, size_t n, struct jv *out,
                   int *found)
{
    static const struct {
        const char *name;
        int id;
    } sm[] = {{"startswith", M_STARTSWITH},
              {"endswith", M_ENDSWITH},
              {"split", M_SPLIT},
              {"rsplit", M_RSPLIT},
              {"strip", M_STRIP},
              {"lstrip", M_LSTRIP},
              {"rstrip", M_RSTRIP},
              {"upper", M_UPPER},
              {"lower", M_LOWER},
              {"title", M_TITLE},
              {"capitalize", M_CAPITALIZE},
              {"replace", M_REPLACE},
              {"find", M_FIND},
              {"rfind", M_RFIND},
              {"count", M_COUNT},
              {"join", M_JOIN},
              {"isdigit", M_ISDIGIT},
              {"isalpha", M_ISALPHA},
              {"isalnum", M_ISALNUM},
              {"isspace", M_ISSPACE},
              {"islower", M_ISLOWER},
              {"isupper", M_ISUPPER},
              {"splitlines", M_SPLITLINES},
              {"format", M_FORMAT},
              {"index", M_INDEX},
              {"rindex", M_RINDEX}},
      dm[] = {{"get", M_GET},   {"items", M_ITEMS}, {"keys", M_KEYS}, {"values", M_VALUES},
              {"copy", M_COPY}, {"pop", -1},        {"popitem", -1},  {"setdefault", -1},
              {"update", -1},   {"clear", -1}},
      lm[] = {{"count", M_LCOUNT}, {"index", M_LINDEX}, {"copy", M_LCOPY}, {"append", -1},
              {"reverse", -1},     {"insert", -1},      {"sort", -1},      {"extend", -1},
              {"remove", -1},      {"pop", -1},         {"clear", -1}};
    *found = 0;
    const void *tab;
    size_t cnt;
    if (obj.k == JV_STR) {
        tab = sm;
        cnt = sizeof sm / sizeof sm[0];
    } else if (obj.k == JV_DICT) {
        tab = dm;
        cnt = sizeof dm / sizeof dm[0];
    } else if (obj.k == JV_LIST || obj.k == JV_TUPLE) {
        tab = lm;
        cnt = obj.k == JV_TUPLE ? 2 : sizeof lm / sizeof lm[0];
    } else {
        return 0;
    }
    const struct {
        const char *name;
        int id;
    } *t = tab;
    for (size_t i = 0; i < cnt; i++)
        if (strlen(t[i].name) == n && !memcmp(t[i].name, name, n)) {
            *found = 1;
            return new_call(s, t[i].id < 0 ? JC_UNSAFE : JC_METHOD, t[i].id, t[i].name, obj, out);
        }
    return 0;
}

static int g_range(struct jstate *s, struct jv *args, size_t nargs, struct jv *out)
{
    int64_t a[3] = {0, 0, 1};
    if (nargs < 1 || nargs > 3)
        return jfail(s, "range expected 1 to 3 arguments, got %zu", nargs);
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].k != JV_INT && args[i].k != JV_BOOL)
            return jfail(s, "'%s' object cannot be interpreted as an integer",
                         jv_typename(args[i]));
        a[nargs == 1 ? 1 : i] = args[i].u.i;
    }
    if (!a[2])
        return jfail(s, "range() arg 3 must not be zero");
    /* length in 128 bits so huge bounds cannot overflow */
    __int128 len = 0, st = a[0], en = a[1], step = a[2];
    if (step > 0 && st < en)
        len = (en - st + step - 1) / step;
    else if (step < 0 && st > en)
        len = (st - en - step - 1) / -step;
    if (len > 100000) /* jinja2.sandbox.MAX_RANGE */
        return jfail(s, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    if (jcount_iter(s, (uint64_t)len) || jv_newlist(s, JV_LIST, (size_t)len, out))
        return -1;
    for (size_t i = 0; i < (size_t)len; i++)
        out->u.l->v[i] = jv_int(a[0] + (int64_t)i * a[2]);
    return 0;
}

static int g_dict(struct jstate *s, enum jv_kind k, struct jv *args, size_t nargs, const char **kn,
                  struct jv *kv, size_t nkw, struct jv *out)
{
    if (nargs > 1)
        return jfail(s, "expected at most 1 positional argument, got %zu", nargs);
    if (jv_newdict(s, k, 0, out))
        return -1;
    if (nargs) {
        if (args[0].k != JV_DICT && args[0].k != JV_NS)
            return jfail(s, "cannot convert '%s' to a dictionary", jv_typename(args[0]));
        for (size_t i = 0; i < args[0].u.d->n; i++)
            if (jv_dict_set(s, out->u.d, args[0].u.d->key[i], args[0].u.d->val[i]))
                return -1;
    }
    for (size_t i = 0; i < nkw; i++)
        if (jv_dict_set(s, out->u.d, jv_str(kn[i], strlen(kn[i])), kv[i]))
            return -1;
    return 0;
}

static int g_strftime(struct jstate *s, struct jv *args, size_t nargs, struct jv *out)
{
    if (nargs != 1 || args[0].k != JV_STR)
        return jfail(s, "strftime_now() takes one string argument");
    char fmt[256], buf[1024];
    if (args[0].u.s.n >= sizeof fmt)
        return jfail(s, "strftime_now format too long");
    memcpy(fmt, args[0].u.s.p, args[0].u.s.n);
    fmt[args[0].u.s.n] = '\0';
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    size_t n = strftime(buf, sizeof buf, fmt, &tm);
    char *p = ja_strdup(&s->ar, buf, n);
    if (!p)
        return joom(s);
    *out = jv_str(p, n);
    return 0;
}

static int find_sub(struct jv hay, struct jv needle, int right, int64_t *pos)
{
    const char *p = hay.u.s.p;
    size_t n = hay.u.s.n, m = needle.u.s.n;
    if (m > n) {
        *pos = -1;
        return 0;
    }
    if (!right) {
        const char *h = m ? memmem(p, n, needle.u.s.p, m) : p;
        *pos = h ? (int64_t)cp_index(p, (size_t)(h - p)) : -1;
        return 0;
    }
    for (size_t k = n - m + 1; k-- > 0;)
        if (!memcmp(p + k, needle.u.s.p, m)) {
            *pos = (int64_t)cp_index(p, k);
            return 0;
        }
    *pos = -1;
    return 0;
}

static int affix(struct jstate *s, struct jv self, struct jv arg, int end, int *res)
{
    if (arg.k == JV_TUPLE) {
        *res = 0;
        for (size_t i = 0; i < arg.u.l->n && !*res; i++)
            if (affix(s, self, arg.u.l->v[i], end, res))
                return -1;
        return 0;
    }
    if (arg.k != JV_STR)
        return jfail(s, "%s first arg must be str or a tuple of str, not %s",
                     end ? "endswith" : "startswith", jv_typename(arg));
    size_t m = arg.u.s.n, n = self.u.s.n;
    *res = m <= n && !memcmp(self.u.s.p + (end ? n - m : 0), arg.u.s.p, m);
    return 0;
}

static int str_pred(struct jv self, int id)
{
    if (!self.u.s.n)
        return 0;
    for (size_t i = 0; i < self.u.s.n;) {
        int32_t cp;
        i += ju8_dec(self.u.s.p + i, self.u.s.n - i, &cp);
        utf8proc_category_t c = utf8proc_category(cp);
        int alpha = c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
        int digit = c == UTF8PROC_CATEGORY_ND;
        int ok = id == M_ISDIGIT   ? digit
                 : id == M_ISALPHA ? alpha
                 : id == M_ISALNUM
                     ? alpha || digit || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO
                     : jpy_isspace(cp);
        if (!ok)
            return 0;
    }
    return 1;
}

static int str_method(struct jstate *s, int id, struct jv self, struct bound *b, struct jv *out)
{
    int r = 0;
    int64_t pos;
    struct jv t;
    switch (id) {
    case M_STARTSWITH:
    case M_ENDSWITH:
        if (!b->have[0])
            return jfail(s, "%s() takes at least 1 argument",
                         id == M_STARTSWITH ? "startswith" : "endswith");
        if (b->have[1] || b->have[2]) {
            int64_t st, en, L = (int64_t)ju8_len(self.u.s.p, self.u.s.n);
            if (arg_int(s, b, 1, 0, &st) || arg_int(s, b, 2, L, &en))
                return -1;
            struct jv lo = jv_int(st), hi = jv_int(en);
            (void)lo;
            (void)hi;
            st = st < 0 ? (st + L < 0 ? 0 : st + L) : st > L ? L : st;
            en = en < 0 ? (en + L < 0 ? 0 : en + L) : en > L ? L : en;
            if (st > en) {
                *out = jv_bool(0);
                return 0;
            }
            size_t a = u8_offset_pub(self.u.s.p, self.u.s.n, (size_t)st),
                   z = u8_offset_pub(self.u.s.p, self.u.s.n, (size_t)en);
            self = jv_str(self.u.s.p + a, z - a);
        }
        if (affix(s, self, b->v[0], id == M_ENDSWITH, &r))
            return -1;
        *out = jv_bool(r);
        return 0;
    case M_SPLIT:
    case M_RSPLIT: {
        int64_t maxsplit;
        if (arg_int(s, b, 1, -1, &maxsplit))
            return -1;
        return str_split(s, self, b->have[0] ? b->v[0] : jv_none(), maxsplit, id == M_RSPLIT, out);
    }
    case M_STRIP:
    case M_LSTRIP:
    case M_RSTRIP: {
        struct jv chars = b->have[0] ? b->v[0] : jv_none();
        if (chars.k != JV_NONE && need_str(s, chars, "strip arg"))
            return -1;
        *out = strip(self, chars, id == M_STRIP ? 3 : id == M_LSTRIP ? 1 : 2);
        return 0;
    }
    case M_UPPER:
        return map_case(s, self, 1, out);
    case M_LOWER:
        return map_case(s, self, 0, out);
    case M_TITLE:
        return map_case(s, self, 2, out);
    case M_CAPITALIZE:
        return map_case(s, self, 3, out);
    case M_REPLACE: {
        int64_t count;
        if (!b->have[0] || !b->have[1])
            return jfail(s, "replace() takes at least 2 arguments");
        if (need_str(s, b->v[0], "replace() argument 1") ||
            need_str(s, b->v[1], "replace() argument 2") || arg_int(s, b, 2, -1, &count))
            return -1;
        return str_replace(s, self, b->v[0], b->v[1], count, out);
    }
    case M_FIND:
    case M_RFIND:
    case M_INDEX:
    case M_RINDEX:
        if (!b->have[0] || need_str(s, b->v[0], "find() argument"))
            return b->have[0] ? -1 : jfail(s, "find() takes at least 1 argument");
        if (b->have[1] || b->have[2])
            return jfail(s, "find() with start/end is not supported");
        find_sub(self, b->v[0], id == M_RFIND || id == M_RINDEX, &pos);
        if (pos < 0 && (id == M_INDEX || id == M_RINDEX))
            return jfail(s, "substring not found");
        *out = jv_int(pos);
        return 0;
    case M_COUNT: {
        if (!b->have[0] || need_str(s, b->v[0], "count() argument"))
            return b->have[0] ? -1 : jfail(s, "count() takes at least 1 argument");
        struct jv nd = b->v[0];
        if (!nd.u.s.n) {
            *out = jv_int((int64_t)ju8_len(self.u.s.p, self.u.s.n) + 1);
            return 0;
        }
        int64_t c = 0;
        for (const char *p = self.u.s.p, *e = p + self.u.s.n;
             (p = memmem(p, (size_t)(e - p), nd.u.s.p, nd.u.s.n)); p += nd.u.s.n)
            c++;
        *out = jv_int(c);
        return 0;
    }
    case M_JOIN: {
        struct jlist items;
        if (!b->have[0] || jiter(s, b->v[0], &items))
            return b->have[0] ? -1 : jfail(s, "join() takes exactly one argument");
        struct ax_buf buf;
        ax_buf_init(&buf, s->out_max);
        for (size_t i = 0; i < items.n; i++) {
            if (items.v[i].k != JV_STR) {
                ax_buf_free(&buf);
                return jfail(s, "sequence item %zu: expected str instance, %s found", i,
                             jv_typename(items.v[i]));
            }
            if ((i && jbuf_put(s, &buf, self.u.s.p, self.u.s.n)) ||
                jbuf_put(s, &buf, items.v[i].u.s.p, items.v[i].u.s.n)) {
                ax_buf_free(&buf);
                return -1;
            }
        }
        return jbuf_done(s, &buf, out);
    }
    case M_ISDIGIT:
    case M_ISALPHA:
    case M_ISALNUM:
    case M_ISSPACE:
        *out = jv_bool(str_pred(self, id));
        return 0;
    case M_ISLOWER:
    case M_ISUPPER:
        if (case_test(s, self, id == M_ISUPPER, &r))
            return -1;
        *out = jv_bool(r);
        return 0;
    case M_SPLITLINES: {
        size_t cap = 0;
        if (jv_newlist(s, JV_LIST, 0, out))
            return -1;
        const char *p = self.u.s.p;
        size_t n = self.u.s.n, i = 0, st = 0;
        while (i < n) {
            int32_t cp;
            size_t l = ju8_dec(p + i, n - i, &cp);
            if (is_linebreak(cp)) {
                if (list_push(s, out, &cap, jv_str(p + st, i - st)))
                    return -1;
                i += l + (cp == '\r' && i + 1 < n && p[i + 1] == '\n');
                st = i;
            } else {
                i += l;
            }
        }
        if (st < n && list_push(s, out, &cap, jv_str(p + st, n - st)))
            return -1;
        return 0;
    }
    case M_FORMAT:
        return jfail(s, "str.format is not supported");
    default:
        (void)t;
        return jfail(s, "unsupported string method");
    }
}

int jbuiltin_call(struct jstate *s, struct jcall *c, struct jv *args, size_t nargs, const char **kn,
                  struct jv *kv, size_t nkw, struct jv *out)
{
    *out = jv_undef(NULL);
    static const char *const p0[] = {NULL}, *const p1[] = {"a", NULL},
                             *const p2[] = {"a", "b", NULL}, *const p3[] = {"a", "b", "c", NULL},
                             *const psplit[] = {"sep", "maxsplit", NULL};
    struct bound b;
    struct jv self = c->self;
    switch (c->id) {
    case G_RANGE:
        if (nkw)
            return jfail(s, "range() takes no keyword arguments");
        return g_range(s, args, nargs, out);
    case G_NAMESPACE:
        return g_dict(s, JV_NS, args, nargs, kn, kv, nkw, out);
    case G_DICT:
        return g_dict(s, JV_DICT, args, nargs, kn, kv, nkw, out);
    case G_RAISE: {
        struct jv msg = nargs ? args[0] : jv_str("", 0);
        if (jv_tostr(s, msg, &msg))
            return -1;
        return jfail(s, "%.*s", (int)(msg.u.s.n > 400 ? 400 : msg.u.s.n), msg.u.s.p);
    }
    case G_STRFTIME:
        return g_strftime(s, args, nargs, out);
    case M_GET:
        if (bind(s, "get", p2, args, nargs, kn, kv, nkw, &b))
            return -1;
        if (!b.have[0])
            return jfail(s, "get expected at least 1 argument, got 0");
        {
            struct jv *v = jv_dict_get(self.u.d, b.v[0]);
            *out = v ? *v : b.have[1] ? b.v[1] : jv_none();
        }
        return 0;
    case M_ITEMS:
    case M_KEYS:
    case M_VALUES:
    case M_COPY:
    case M_LCOPY:
        if (nargs || nkw)
            return jfail(s, "%s() takes no arguments", c->name);
        if (c->id == M_COPY || c->id == M_LCOPY) {
            *out = self;
            return 0;
        }
        if (c->id == M_ITEMS) {
            if (f_items(s, self, out))
                return -1;
            out->sub = SUB_ITEMS;
            return 0;
        }
        if (jv_newlist(s, JV_LIST, self.u.d->n, out))
            return -1;
        for (size_t i = 0; i < self.u.d->n; i++)
            out->u.l->v[i] = c->id == M_KEYS ? self.u.d->key[i] : self.u.d->val[i];
        out->sub = c->id == M_KEYS ? SUB_KEYS : SUB_VALUES;
        return 0;
    case M_LCOUNT:
    case M_LINDEX: {
        if (nargs != 1 || nkw)
            return jfail(s, "%s() takes exactly one argument", c->name);
        int64_t cnt = 0, idx = -1;
        for (size_t i = 0; i < self.u.l->n; i++)
            if (jv_eq(self.u.l->v[i], args[0])) {
                cnt++;
                if (idx < 0)
                    idx = (int64_t)i;
            }
        if (c->id == M_LINDEX && idx < 0)
            return jfail(s, "value is not in list");
        *out = jv_int(c->id == M_LCOUNT ? cnt : idx);
        return 0;
    }
    default:
        break;
    }
    const char *const *params = p3;
    if (c->id == M_SPLIT || c->id == M_RSPLIT)
        params = psplit;
    else if (c->id == M_UPPER || c->id == M_LOWER || c->id == M_TITLE || c->id == M_CAPITALIZE ||
             (c->id >= M_ISDIGIT && c->id <= M_ISUPPER) || c->id == M_SPLITLINES)
        params = p0;
    else if (c->id == M_STRIP || c->id == M_LSTRIP || c->id == M_RSTRIP || c->id == M_JOIN)
        params = p1;
    if (nkw && params != psplit)
        return jfail(s, "%s() takes no keyword arguments", c->name);
    if (bind(s, c->name, params, args, nargs, kn, kv, nkw, &b))
        return -1;
    return str_method(s, c->id, self, &b, out);
}
