/* value.c - values of a render: the arena they live in, conversion from
 * JSON, and Python's semantics for them (truthiness, ==, ordering, str(),
 * repr(), float repr, json.dumps). Values are immutable except namespace
 * objects; nothing is freed before the render ends. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "jinja/jinja_int.h"
#include "util/mem.h"

/* ---- arena ---- */
struct ja_chunk {
    struct ja_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void ja_init(struct jarena *a, size_t max)
{
    a->head = NULL;
    a->total = 0;
    a->max = max;
    a->over = 0;
}

void *ja_alloc(struct jarena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!n)
        n = 16;
    struct ja_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 32768 ? n : 32768;
        if (cap > a->max || a->total > a->max - cap) {
            a->over = 1;
            return NULL;
        }
        c = ax_malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        a->total += cap;
        c->cap = cap;
        c->used = 0;
        /* a big block goes behind the current chunk, which keeps filling */
        if (a->head && n > 32768) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *ja_strdup(struct jarena *a, const char *s, size_t n)
{
    char *p = ja_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void ja_release(struct jarena *a)
{
    struct ja_chunk *c = a->head;
    while (c) {
        struct ja_chunk *next = c->next;
        ax_free(c);
        c = next;
    }
    a->head = NULL;
    a->total = 0;
}

/* ---- errors ---- */
static int vfail(struct jstate *s, enum ax_err code, const char *fmt, va_list ap)
{
    if (s->rc == AX_OK) {
        char msg[AX_ERRLEN];
        vsnprintf(msg, sizeof msg, fmt, ap);
        s->rc = code;
        ax_fail(s->err, code, "template line %d: %s", s->line, msg);
    }
    return -1;
}

int jfail(struct jstate *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(s, AX_ETEMPLATE, fmt, ap);
    va_end(ap);
    return -1;
}

int jfail_code(struct jstate *s, enum ax_err code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(s, code, fmt, ap);
    va_end(ap);
    return -1;
}

int joom(struct jstate *s)
{
    if (s->ar.over)
        return jfail_code(s, AX_ETOOBIG, "template used more than %zu bytes of memory", s->ar.max);
    return jfail_code(s, AX_ENOMEM, "out of memory");
}

/* ---- constructors ---- */
int jv_newlist(struct jstate *s, enum jv_kind k, size_t n, struct jv *out)
{
    struct jlist *l = ja_alloc(&s->ar, sizeof *l);
    if (!l || n > SIZE_MAX / sizeof(struct jv) ||
        (n && !(l->v = ja_alloc(&s->ar, n * sizeof(struct jv)))))
        return joom(s);
    l->n = n;
    *out = (struct jv){.k = k};
    out->u.l = l;
    return 0;
}

int jv_newdict(struct jstate *s, enum jv_kind k, size_t cap, struct jv *out)
{
    struct jdict *d = ja_alloc(&s->ar, sizeof *d);
    if (!d)
        return joom(s);
    if (cap && (cap > SIZE_MAX / sizeof(struct jv) ||
                !(d->key = ja_alloc(&s->ar, cap * sizeof(struct jv))) ||
                !(d->val = ja_alloc(&s->ar, cap * sizeof(struct jv)))))
        return joom(s);
    d->cap = cap;
    *out = (struct jv){.k = k};
    out->u.d = d;
    return 0;
}

struct jv *jv_dict_get(const struct jdict *d, struct jv key)
{
    for (size_t i = 0; i < d->n; i++)
        if (jv_eq(d->key[i], key))
            return &d->val[i];
    return NULL;
}

struct jv *jv_dict_gets(const struct jdict *d, const char *key, size_t n)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->key[i].k == JV_STR && d->key[i].u.s.n == n && !memcmp(d->key[i].u.s.p, key, n))
            return &d->val[i];
    return NULL;
}

int jv_dict_set(struct jstate *s, struct jdict *d, struct jv key, struct jv val)
{
    struct jv *v = jv_dict_get(d, key);
    if (v) {
        *v = val;
        return 0;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        struct jv *k = ja_alloc(&s->ar, cap * sizeof *k), *vv = ja_alloc(&s->ar, cap * sizeof *vv);
        if (!k || !vv)
            return joom(s);
        if (d->n) {
            memcpy(k, d->key, d->n * sizeof *k);
            memcpy(vv, d->val, d->n * sizeof *vv);
        }
        d->key = k;
        d->val = vv;
        d->cap = cap;
    }
    d->key[d->n] = key;
    d->val[d->n] = val;
    d->n++;
    return 0;
}

/* ---- JSON -> values ---- */
int jv_from_json(struct jstate *s, const json_t *j, struct jv *out, int depth)
{
    if (depth > s->lim.max_depth)
        return jfail(s, "input JSON nested deeper than %d", s->lim.max_depth);
    switch (json_typeof(j)) {
    case JSON_NULL:
        *out = jv_none();
        return 0;
    case JSON_TRUE:
        *out = jv_bool(1);
        return 0;
    case JSON_FALSE:
        *out = jv_bool(0);
        return 0;
    case JSON_INTEGER:
        *out = jv_int((int64_t)json_integer_value(j));
        return 0;
    case JSON_REAL:
        *out = jv_float(json_real_value(j));
        return 0;
    case JSON_STRING: {
        size_t n = json_string_length(j);
        const char *p = json_string_value(j);
        char *c = ja_strdup(&s->ar, p, n);
        if (!c)
            return joom(s);
        *out = jv_str(c, n);
        return 0;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        if (jv_newlist(s, JV_LIST, n, out))
            return -1;
        for (size_t i = 0; i < n; i++)
            if (jv_from_json(s, json_array_get(j, i), &out->u.l->v[i], depth + 1))
                return -1;
        return 0;
    }
    case JSON_OBJECT: {
        if (jv_newdict(s, JV_DICT, json_object_size(j), out))
            return -1;
        struct jdict *d = out->u.d;
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)j, key, val)
        {
            size_t kn = strlen(key);
            char *k = ja_strdup(&s->ar, key, kn);
            if (!k)
                return joom(s);
            d->key[d->n] = jv_str(k, kn);
            if (jv_from_json(s, val, &d->val[d->n], depth + 1))
                return -1;
            d->n++;
        }
        return 0;
    }
    }
    return jfail(s, "unsupported JSON value");
}

/* ---- Python semantics ---- */
int jv_is_num(struct jv v)
{
    return v.k == JV_INT || v.k == JV_FLOAT || v.k == JV_BOOL;
}
double jv_num(struct jv v)
{
    return v.k == JV_FLOAT ? v.u.f : (double)v.u.i;
}

int jv_truthy(struct jv v)
{
    switch (v.k) {
    case JV_UNDEF:
    case JV_NONE:
        return 0;
    case JV_BOOL:
    case JV_INT:
        return v.u.i != 0;
    case JV_FLOAT:
        return v.u.f != 0.0;
    case JV_STR:
        return v.u.s.n != 0;
    case JV_LIST:
        return v.sub == SUB_GEN || v.u.l->n != 0;
    case JV_TUPLE:
        return v.u.l->n != 0;
    case JV_DICT:
        return v.u.d->n != 0;
    case JV_NS:
    case JV_CALL:
    case JV_LOOP:
        return 1;
    }
    return 1;
}

static int seq_kind(struct jv v)
{
    return v.k == JV_LIST || v.k == JV_TUPLE;
}

/* Values built by a template can nest without bound ({% set x = [x] %} in
 * a loop); comparisons stop at this depth instead of exhausting the stack
 * (Python raises RecursionError near 1000). */
#define CMP_DEPTH_MAX 2000

static int eq_rec(struct jv a, struct jv b, int depth);

int jv_eq(struct jv a, struct jv b) { return eq_rec(a, b, 0); }

static int eq_rec(struct jv a, struct jv b, int depth)
{
    if (depth > CMP_DEPTH_MAX)
        return 0;
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.k != JV_FLOAT && b.k != JV_FLOAT)
            return a.u.i == b.u.i;
        return jv_num(a) == jv_num(b);
    }
    if (a.k != b.k)
        return 0;
    /* identity first, as Python's element comparison does */
    if ((a.k == JV_LIST || a.k == JV_TUPLE) && a.u.l == b.u.l && a.sub == b.sub)
        return 1;
    if (a.k == JV_DICT && a.u.d == b.u.d)
        return 1;
    if (a.sub != b.sub || (a.sub && a.u.l != b.u.l))
        return a.sub && a.u.l == b.u.l;
    switch (a.k) {
    case JV_UNDEF:
    case JV_NONE:
        return 1;
    case JV_STR:
        return a.u.s.n == b.u.s.n && !memcmp(a.u.s.p, b.u.s.p, a.u.s.n);
    case JV_LIST:
    case JV_TUPLE:
        if (a.u.l->n != b.u.l->n)
            return 0;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!eq_rec(a.u.l->v[i], b.u.l->v[i], depth + 1))
                return 0;
        return 1;
    case JV_DICT:
        if (a.u.d->n != b.u.d->n)
            return 0;
        for (size_t i = 0; i < a.u.d->n; i++) {
            struct jv *o = jv_dict_get(b.u.d, a.u.d->key[i]);
            if (!o || !eq_rec(a.u.d->val[i], *o, depth + 1))
                return 0;
        }
        return 1;
    case JV_NS:
        return a.u.d == b.u.d;
    case JV_CALL:
        return a.u.c == b.u.c;
    case JV_LOOP:
        return a.u.lp == b.u.lp;
    default:
        return 0;
    }
}

const char *jv_typename(struct jv v)
{
    switch (v.k) {
    case JV_UNDEF:
        return "Undefined";
    case JV_NONE:
        return "NoneType";
    case JV_BOOL:
        return "bool";
    case JV_INT:
        return "int";
    case JV_FLOAT:
        return "float";
    case JV_STR:
        return "str";
    case JV_LIST:
        return "list";
    case JV_TUPLE:
        return "tuple";
    case JV_DICT:
        return "dict";
    case JV_NS:
        return "Namespace";
    case JV_CALL:
        return "function";
    case JV_LOOP:
        return "LoopContext";
    }
    return "object";
}

static int cmp_rec(struct jstate *s, struct jv a, struct jv b, int *cmp, int depth);

int jv_cmp(struct jstate *s, struct jv a, struct jv b, int *cmp) { return cmp_rec(s, a, b, cmp, 0); }

static int cmp_rec(struct jstate *s, struct jv a, struct jv b, int *cmp, int depth)
{
    if (depth > CMP_DEPTH_MAX)
        return jfail(s, "maximum recursion depth exceeded in comparison");
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.k != JV_FLOAT && b.k != JV_FLOAT)
            *cmp = (a.u.i > b.u.i) - (a.u.i < b.u.i);
        else
            *cmp = (jv_num(a) > jv_num(b)) - (jv_num(a) < jv_num(b));
        return 0;
    }
    if (a.k == JV_STR && b.k == JV_STR) {
        size_t n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        int c = memcmp(a.u.s.p, b.u.s.p, n); /* UTF-8 byte order = code point order */
        *cmp = c ? (c > 0) - (c < 0) : (a.u.s.n > b.u.s.n) - (a.u.s.n < b.u.s.n);
        return 0;
    }
    if (seq_kind(a) && a.k == b.k) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (jv_eq(a.u.l->v[i], b.u.l->v[i]))
                continue;
            return cmp_rec(s, a.u.l->v[i], b.u.l->v[i], cmp, depth + 1);
        }
        *cmp = (a.u.l->n > b.u.l->n) - (a.u.l->n < b.u.l->n);
        return 0;
    }
    if (a.k == JV_UNDEF || b.k == JV_UNDEF)
        return jfail(s, "'%.*s' is undefined", (int)(a.k == JV_UNDEF ? a : b).u.s.n,
                     (a.k == JV_UNDEF ? a : b).u.s.p ? (a.k == JV_UNDEF ? a : b).u.s.p : "");
    return jfail(s, "'<' not supported between instances of '%s' and '%s'", jv_typename(a),
                 jv_typename(b));
}

/* ---- UTF-8 ---- */
size_t ju8_dec(const char *p, size_t n, int32_t *cp)
{
    const unsigned char *u = (const unsigned char *)p;
    if (u[0] < 0x80 || n < 2) {
        *cp = u[0];
        return 1;
    }
    if (u[0] < 0xe0) {
        *cp = ((u[0] & 0x1f) << 6) | (u[1] & 0x3f);
        return 2;
    }
    if (u[0] < 0xf0 || n < 4) {
        if (n < 3) {
            *cp = u[0];
            return 1;
        }
        *cp = ((u[0] & 0x0f) << 12) | ((u[1] & 0x3f) << 6) | (u[2] & 0x3f);
        return 3;
    }
    *cp = ((u[0] & 0x07) << 18) | ((u[1] & 0x3f) << 12) | ((u[2] & 0x3f) << 6) | (u[3] & 0x3f);
    return 4;
}

size_t ju8_enc(int32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

size_t ju8_len(const char *p, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)p[i] & 0xc0) != 0x80;
    return c;
}

/* str.isspace(): Python's whitespace (bidirectional WS/B/S or Zs). */
int jpy_isspace(int32_t cp)
{
    switch (cp) {
    case 0x09:
    case 0x0a:
    case 0x0b:
    case 0x0c:
    case 0x0d:
    case 0x1c:
    case 0x1d:
    case 0x1e:
    case 0x1f:
    case 0x20:
    case 0x85:
    case 0xa0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202f:
    case 0x205f:
    case 0x3000:
        return 1;
    default:
        return cp >= 0x2000 && cp <= 0x200a;
    }
}

/* ---- buffers that end up in the arena ---- */
int jbuf_put(struct jstate *s, struct ax_buf *b, const void *p, size_t n)
{
    enum ax_err e = ax_buf_append(b, p, n);
    if (e == AX_ETOOBIG)
        return jfail_code(s, AX_ETOOBIG, "template output larger than %zu bytes", b->max);
    if (e)
        return jfail_code(s, e, "out of memory");
    return 0;
}

int jbuf_done(struct jstate *s, struct ax_buf *b, struct jv *out)
{
    char *p = ja_strdup(&s->ar, b->data ? b->data : "", b->len);
    size_t n = b->len;
    ax_buf_free(b);
    if (!p)
        return joom(s);
    *out = jv_str(p, n);
    return 0;
}

/* ---- float repr (shortest round trip, Python's layout) ---- */
int jv_float_repr(char *buf, size_t n, double f)
{
    if (isnan(f))
        return snprintf(buf, n, "nan");
    if (isinf(f))
        return snprintf(buf, n, f < 0 ? "-inf" : "inf");
    char tmp[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f)
            break;
    }
    /* tmp: [-]d[.ddd]e[+-]xx */
    char digits[24];
    int nd = 0, neg = tmp[0] == '-';
    const char *p = tmp + neg;
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    int exp10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    int decpt = exp10 + 1;
    char *o = buf;
    size_t left = n;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        int w_ = snprintf(o, left, __VA_ARGS__);                                                   \
        if (w_ < 0 || (size_t)w_ >= left)                                                          \
            return -1;                                                                             \
        o += w_;                                                                                   \
        left -= (size_t)w_;                                                                        \
    } while (0)
    if (neg)
        PUT("-");
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            PUT("0.%.*s%s", -decpt, "0000", digits);
        } else if (decpt >= nd) {
            PUT("%s%.*s.0", digits, decpt - nd, "0000000000000000");
        } else {
            PUT("%.*s.%s", decpt, digits, digits + decpt);
        }
    } else {
        int e = decpt - 1;
        if (nd > 1)
            PUT("%c.%se%c%02d", digits[0], digits + 1, e < 0 ? '-' : '+', e < 0 ? -e : e);
        else
            PUT("%ce%c%02d", digits[0], e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
#undef PUT
    return (int)(o - buf);
}

/* ---- str() and repr() ---- */
static int put(struct jstate *s, struct ax_buf *b, const char *p, size_t n)
{
    return jbuf_put(s, b, p, n);
}
static int puts_(struct jstate *s, struct ax_buf *b, const char *p)
{
    return jbuf_put(s, b, p, strlen(p));
}

static int py_printable(int32_t cp)
{
    if (cp < 0x80)
        return cp >= 0x20 && cp < 0x7f;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS:
        return 0;
    default:
        return 1;
    }
}

static int repr_str(struct jstate *s, struct ax_buf *b, const char *p, size_t n)
{
    char q = '\'';
    if (memchr(p, '\'', n) && !memchr(p, '"', n))
        q = '"';
    if (put(s, b, &q, 1))
        return -1;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        size_t l = ju8_dec(p + i, n - i, &cp);
        char esc[16];
        const char *out = p + i;
        size_t on = l;
        if (cp == q || cp == '\\') {
            esc[0] = '\\';
            esc[1] = (char)cp;
            out = esc;
            on = 2;
        } else if (cp == '\n' || cp == '\r' || cp == '\t') {
            esc[0] = '\\';
            esc[1] = cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't';
            out = esc;
            on = 2;
        } else if (!py_printable(cp)) {
            on = (size_t)snprintf(esc, sizeof esc,
                                  cp <= 0xff     ? "\\x%02x"
                                  : cp <= 0xffff ? "\\u%04x"
                                                 : "\\U%08x",
                                  (unsigned)cp);
            out = esc;
        }
        if (put(s, b, out, on))
            return -1;
        i += l;
    }
    return put(s, b, &q, 1);
}

static int repr_dict(struct jstate *s, struct ax_buf *b, const struct jdict *d)
{
    if (puts_(s, b, "{"))
        return -1;
    for (size_t i = 0; i < d->n; i++) {
        if ((i && puts_(s, b, ", ")) || jv_repr_to(s, b, d->key[i]) || puts_(s, b, ": ") ||
            jv_repr_to(s, b, d->val[i]))
            return -1;
    }
    return puts_(s, b, "}");
}

int jv_repr_to(struct jstate *s, struct ax_buf *b, struct jv v)
{
    if (++s->depth > s->lim.max_depth) {
        s->depth--;
        return jfail(s, "value nested too deeply to print");
    }
    int rc = 0;
    switch (v.k) {
    case JV_STR:
        rc = repr_str(s, b, v.u.s.p, v.u.s.n);
        break;
    case JV_UNDEF:
        rc = puts_(s, b, "Undefined");
        break;
    case JV_LIST:
    case JV_TUPLE: {
        static const char *const views[] = {"", "", "dict_keys(", "dict_values(", "dict_items("};
        if (v.sub == SUB_GEN) {
            rc = puts_(s, b, "<generator object>");
            break;
        }
        if (v.sub && puts_(s, b, views[v.sub])) {
            rc = -1;
            break;
        }
        rc = puts_(s, b, v.k == JV_LIST ? "[" : "(");
        for (size_t i = 0; !rc && i < v.u.l->n; i++)
            rc = (i && puts_(s, b, ", ")) || jv_repr_to(s, b, v.u.l->v[i]);
        if (!rc && v.k == JV_TUPLE && v.u.l->n == 1)
            rc = puts_(s, b, ",");
        if (!rc)
            rc = puts_(s, b, v.k == JV_LIST ? "]" : ")");
        if (!rc && v.sub)
            rc = puts_(s, b, ")");
        break;
    }
    case JV_DICT:
        rc = repr_dict(s, b, v.u.d);
        break;
    case JV_NS:
        rc = puts_(s, b, "<Namespace ") || repr_dict(s, b, v.u.d) || puts_(s, b, ">");
        break;
    default:
        rc = jv_str_to(s, b, v);
        break;
    }
    s->depth--;
    return rc ? -1 : 0;
}

int jv_str_to(struct jstate *s, struct ax_buf *b, struct jv v)
{
    char tmp[64];
    switch (v.k) {
    case JV_UNDEF:
        return 0;
    case JV_NONE:
        return puts_(s, b, "None");
    case JV_BOOL:
        return puts_(s, b, v.u.i ? "True" : "False");
    case JV_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i);
        return puts_(s, b, tmp);
    case JV_FLOAT:
        jv_float_repr(tmp, sizeof tmp, v.u.f);
        return puts_(s, b, tmp);
    case JV_STR:
        return put(s, b, v.u.s.p, v.u.s.n);
    case JV_CALL:
        snprintf(tmp, sizeof tmp, "<function %.40s>", v.u.c->name ? v.u.c->name : "");
        return puts_(s, b, tmp);
    case JV_LOOP:
        return puts_(s, b, "<LoopContext>");
    default:
        return jv_repr_to(s, b, v);
    }
}

int jv_tostr(struct jstate *s, struct jv v, struct jv *out)
{
    if (v.k == JV_STR) {
        *out = v;
        return 0;
    }
    struct ax_buf b;
    ax_buf_init(&b, s->out_max);
    if (jv_str_to(s, &b, v)) {
        ax_buf_free(&b);
        return -1;
    }
    return jbuf_done(s, &b, out);
}

/* ---- json.dumps ---- */
static int json_str(struct jstate *s, struct ax_buf *b, const char *p, size_t n, int ascii)
{
    if (put(s, b, "\"", 1))
        return -1;
    size_t run = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)p[i];
        char esc[16];
        const char *rep = NULL;
        size_t en = 0, l = 1;
        switch (c) {
        case '"':
            rep = "\\\"";
            break;
        case '\\':
            rep = "\\\\";
            break;
        case '\n':
            rep = "\\n";
            break;
        case '\r':
            rep = "\\r";
            break;
        case '\t':
            rep = "\\t";
            break;
        case '\b':
            rep = "\\b";
            break;
        case '\f':
            rep = "\\f";
            break;
        default:
            if (c < 0x20) {
                en = (size_t)snprintf(esc, sizeof esc, "\\u%04x", c);
            } else if (c >= 0x7f && ascii) {
                int32_t cp;
                l = ju8_dec(p + i, n - i, &cp);
                if (cp >= 0x10000) {
                    cp -= 0x10000;
                    en = (size_t)snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xd800 + (cp >> 10),
                                          0xdc00 + (cp & 0x3ff));
                } else {
                    en = (size_t)snprintf(esc, sizeof esc, "\\u%04x", cp);
                }
            }
        }
        if (rep) {
            memcpy(esc, rep, 3); /* two characters and the NUL */
            en = 2;
        }
        if (en) {
            if ((run && put(s, b, p + i - run, run)) || put(s, b, esc, en))
                return -1;
            run = 0;
            i += l;
        } else {
            run++;
            i++;
        }
    }
    if (run && put(s, b, p + n - run, run))
        return -1;
    return put(s, b, "\"", 1);
}

static int json_newline(struct jstate *s, struct ax_buf *b, const struct json_opts *o, int level)
{
    if (put(s, b, "\n", 1))
        return -1;
    for (int i = 0; i < level; i++)
        if (put(s, b, o->indent, o->indent_n))
            return -1;
    return 0;
}

static int json_key(struct jstate *s, struct ax_buf *b, struct jv k, const struct json_opts *o)
{
    char tmp[64];
    switch (k.k) {
    case JV_STR:
        return json_str(s, b, k.u.s.p, k.u.s.n, o->ensure_ascii);
    case JV_BOOL:
        return puts_(s, b, k.u.i ? "\"true\"" : "\"false\"");
    case JV_NONE:
        return puts_(s, b, "\"null\"");
    case JV_INT:
        snprintf(tmp, sizeof tmp, "\"%lld\"", (long long)k.u.i);
        return puts_(s, b, tmp);
    case JV_FLOAT:
        if (isnan(k.u.f) || isinf(k.u.f))
            snprintf(tmp, sizeof tmp, "\"%s\"",
                     isnan(k.u.f) ? "NaN"
                     : k.u.f > 0  ? "Infinity"
                                  : "-Infinity");
        else {
            tmp[0] = '"';
            int w = jv_float_repr(tmp + 1, sizeof tmp - 2, k.u.f);
            tmp[1 + w] = '"';
            tmp[2 + w] = '\0';
        }
        return puts_(s, b, tmp);
    default:
        return jfail(s, "keys must be str, int, float, bool or None, not %s", jv_typename(k));
    }
}

/* Stable insertion sort of key indexes (dicts in templates are small). */
static int sorted_keys(struct jstate *s, const struct jdict *d, size_t *idx)
{
    for (size_t i = 0; i < d->n; i++) {
        idx[i] = i;
        for (size_t j = i; j > 0; j--) {
            int c = 0;
            if (jv_cmp(s, d->key[idx[j - 1]], d->key[idx[j]], &c))
                return -1;
            if (c <= 0)
                break;
            size_t t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    }
    return 0;
}

int jv_json_to(struct jstate *s, struct ax_buf *b, struct jv v, const struct json_opts *o,
               int level)
{
    char tmp[64];
    if (level > s->lim.max_depth)
        return jfail(s, "value nested too deeply for tojson");
    switch (v.k) {
    case JV_NONE:
        return puts_(s, b, "null");
    case JV_BOOL:
        return puts_(s, b, v.u.i ? "true" : "false");
    case JV_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i);
        return puts_(s, b, tmp);
    case JV_FLOAT:
        if (isnan(v.u.f))
            return puts_(s, b, "NaN");
        if (isinf(v.u.f))
            return puts_(s, b, v.u.f > 0 ? "Infinity" : "-Infinity");
        jv_float_repr(tmp, sizeof tmp, v.u.f);
        return puts_(s, b, tmp);
    case JV_STR:
        return json_str(s, b, v.u.s.p, v.u.s.n, o->ensure_ascii);
    case JV_LIST:
    case JV_TUPLE:
        if (v.sub)
            return jfail(s, "Object of type %s is not JSON serializable",
                         v.sub == SUB_GEN ? "generator" : "dict_view");
        if (!v.u.l->n)
            return puts_(s, b, "[]");
        if (puts_(s, b, "["))
            return -1;
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i && put(s, b, o->item_sep, o->item_sep_n))
                return -1;
            if ((o->indent && json_newline(s, b, o, level + 1)) ||
                jv_json_to(s, b, v.u.l->v[i], o, level + 1))
                return -1;
        }
        if (o->indent && json_newline(s, b, o, level))
            return -1;
        return puts_(s, b, "]");
    case JV_DICT: {
        const struct jdict *d = v.u.d;
        if (!d->n)
            return puts_(s, b, "{}");
        size_t *idx = ja_alloc(&s->ar, d->n * sizeof *idx);
        if (!idx)
            return joom(s);
        if (o->sort_keys) {
            if (sorted_keys(s, d, idx))
                return -1;
        } else {
            for (size_t i = 0; i < d->n; i++)
                idx[i] = i;
        }
        if (puts_(s, b, "{"))
            return -1;
        for (size_t i = 0; i < d->n; i++) {
            if (i && put(s, b, o->item_sep, o->item_sep_n))
                return -1;
            if ((o->indent && json_newline(s, b, o, level + 1)) ||
                json_key(s, b, d->key[idx[i]], o) || put(s, b, o->key_sep, o->key_sep_n) ||
                jv_json_to(s, b, d->val[idx[i]], o, level + 1))
                return -1;
        }
        if (o->indent && json_newline(s, b, o, level))
            return -1;
        return puts_(s, b, "}");
    }
    default:
        return jfail(s, "Object of type %s is not JSON serializable", jv_typename(v));
    }
}
