/* eval.c - evaluates the AST against a scope chain, writing output to an
 * ax_buf, with Jinja2's semantics for scoping (loop bodies, macros and
 * `with` open a scope; `if` does not), undefined values (printing is empty,
 * most other uses raise), attribute/item lookup as the sandbox does it,
 * and Python arithmetic on 64-bit integers and doubles.
 *
 * Bounds: expression/statement/macro nesting (lim.max_depth), loop
 * iterations plus macro calls (lim.max_iterations), memory (arena
 * ceiling) and output (the ax_buf ceiling). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "jinja/jinja_int.h"
#include "util/mem.h"

/* ---- scopes ---- */
static struct jscope *scope_new(struct jstate *s, struct jscope *parent)
{
    struct jscope *sc = ja_alloc(&s->ar, sizeof *sc);
    if (!sc) {
        joom(s);
        return NULL;
    }
    sc->parent = parent;
    return sc;
}

static int scope_set(struct jstate *s, struct jscope *sc, const char *name, struct jv v)
{
    for (size_t i = 0; i < sc->n; i++)
        if (!strcmp(sc->names[i], name)) {
            sc->vals[i] = v;
            return 0;
        }
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 8;
        const char **nn = ja_alloc(&s->ar, cap * sizeof *nn);
        struct jv *nv = ja_alloc(&s->ar, cap * sizeof *nv);
        if (!nn || !nv)
            return joom(s);
        if (sc->n) {
            memcpy(nn, sc->names, sc->n * sizeof *nn);
            memcpy(nv, sc->vals, sc->n * sizeof *nv);
        }
        sc->names = nn;
        sc->vals = nv;
        sc->cap = cap;
    }
    sc->names[sc->n] = name;
    sc->vals[sc->n] = v;
    sc->n++;
    return 0;
}

static struct jv *scope_get(struct jscope *sc, const char *name)
{
    for (; sc; sc = sc->parent)
        for (size_t i = sc->n; i-- > 0;)
            if (!strcmp(sc->names[i], name))
                return &sc->vals[i];
    return NULL;
}

int jcount_iter(struct jstate *s, uint64_t n)
{
    s->iters += n;
    if (s->iters > s->lim.max_iterations)
        return jfail_code(s, AX_ETOOBIG, "template exceeded %llu loop iterations",
                          (unsigned long long)s->lim.max_iterations);
    return 0;
}

static int undef_fail(struct jstate *s, struct jv u)
{
    if (u.u.s.n)
        return jfail(s, "'%.*s' is undefined", (int)u.u.s.n, u.u.s.p);
    return jfail(s, "a value is undefined");
}

/* ---- iteration ---- */
int jiter(struct jstate *s, struct jv v, struct jlist *out)
{
    struct jv tmp;
    out->n = 0;
    out->v = NULL;
    switch (v.k) {
    case JV_LIST:
    case JV_TUPLE:
        *out = *v.u.l;
        return 0;
    case JV_UNDEF:
        out->n = 0;
        out->v = NULL;
        return 0;
    case JV_DICT:
        out->n = v.u.d->n;
        out->v = v.u.d->key;
        return 0;
    case JV_STR: {
        size_t n = ju8_len(v.u.s.p, v.u.s.n);
        if (jv_newlist(s, JV_LIST, n, &tmp))
            return -1;
        for (size_t i = 0, k = 0; i < v.u.s.n; k++) {
            int32_t cp;
            size_t l = ju8_dec(v.u.s.p + i, v.u.s.n - i, &cp);
            tmp.u.l->v[k] = jv_str(v.u.s.p + i, l);
            i += l;
        }
        *out = *tmp.u.l;
        return 0;
    }
    default:
        return jfail(s, "'%s' object is not iterable", jv_typename(v));
    }
}

/* ---- attribute and item lookup (the sandbox's getattr/getitem) ---- */
static int loop_attr(struct jstate *s, struct jv obj, const char *name, struct jv *out)
{
    struct jloop *lp = obj.u.lp;
    int64_t i = lp->i, n = lp->n;
    if (!strcmp(name, "index"))
        *out = jv_int(i + 1);
    else if (!strcmp(name, "index0"))
        *out = jv_int(i);
    else if (!strcmp(name, "revindex"))
        *out = jv_int(n - i);
    else if (!strcmp(name, "revindex0"))
        *out = jv_int(n - i - 1);
    else if (!strcmp(name, "first"))
        *out = jv_bool(i == 0);
    else if (!strcmp(name, "last"))
        *out = jv_bool(i == n - 1);
    else if (!strcmp(name, "length"))
        *out = jv_int(n);
    else if (!strcmp(name, "depth"))
        *out = jv_int(1);
    else if (!strcmp(name, "depth0"))
        *out = jv_int(0);
    else if (!strcmp(name, "previtem"))
        *out = i > 0 ? lp->items[i - 1] : jv_undef("previtem");
    else if (!strcmp(name, "nextitem"))
        *out = i + 1 < n ? lp->items[i + 1] : jv_undef("nextitem");
    else if (!strcmp(name, "cycle")) {
        struct jcall *c = ja_alloc(&s->ar, sizeof *c);
        if (!c)
            return joom(s);
        c->kind = JC_CYCLE;
        c->name = "cycle";
        c->self = obj;
        out->k = JV_CALL;
        out->u.c = c;
    } else if (!strcmp(name, "changed"))
        return jfail(s, "loop.changed is not supported");
    else
        *out = jv_undef(name);
    return 0;
}

int jgetattr(struct jstate *s, struct jv obj, const char *name, size_t n, struct jv *out)
{
    int found = 0;
    switch (obj.k) {
    case JV_UNDEF:
        return undef_fail(s, obj);
    case JV_LOOP:
        return loop_attr(s, obj, name, out);
    case JV_NS: {
        struct jv *v = jv_dict_gets(obj.u.d, name, n);
        *out = v ? *v : jv_undef(name);
        return 0;
    }
    case JV_DICT:
    case JV_STR:
    case JV_LIST:
    case JV_TUPLE:
        if (jmethod_lookup(s, obj, name, n, out, &found))
            return -1;
        if (found)
            return 0;
        if (obj.k == JV_DICT) {
            struct jv *v = jv_dict_gets(obj.u.d, name, n);
            *out = v ? *v : jv_undef(name);
            return 0;
        }
        break;
    default:
        break;
    }
    *out = jv_undef(name);
    return 0;
}

static int seq_index(struct jv key, size_t len, size_t *idx)
{
    if (key.k != JV_INT && key.k != JV_BOOL)
        return 0;
    int64_t i = key.u.i;
    if (i < 0)
        i += (int64_t)len;
    if (i < 0 || (uint64_t)i >= len)
        return 0;
    *idx = (size_t)i;
    return 1;
}

/* Byte offset of code point i in s (i <= code points). */
static size_t u8_offset(const char *p, size_t n, size_t i)
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

int jgetitem(struct jstate *s, struct jv obj, struct jv key, struct jv *out)
{
    size_t idx;
    switch (obj.k) {
    case JV_UNDEF:
        return undef_fail(s, obj);
    case JV_DICT: {
        struct jv *v = jv_dict_get(obj.u.d, key);
        if (v) {
            *out = *v;
            return 0;
        }
        break;
    }
    case JV_LIST:
    case JV_TUPLE:
        if (obj.sub)
            return jfail(s, "'%s' object is not subscriptable",
                         obj.sub == SUB_GEN ? "generator" : "dict_view");
        if (seq_index(key, obj.u.l->n, &idx)) {
            *out = obj.u.l->v[idx];
            return 0;
        }
        break;
    case JV_STR:
        if (seq_index(key, ju8_len(obj.u.s.p, obj.u.s.n), &idx)) {
            size_t off = u8_offset(obj.u.s.p, obj.u.s.n, idx);
            int32_t cp;
            *out = jv_str(obj.u.s.p + off, ju8_dec(obj.u.s.p + off, obj.u.s.n - off, &cp));
            return 0;
        }
        break;
    default:
        break;
    }
    if (key.k == JV_STR) {
        char *name = ja_strdup(&s->ar, key.u.s.p, key.u.s.n);
        if (!name)
            return joom(s);
        if (strlen(name) == key.u.s.n && obj.k != JV_DICT)
            return jgetattr(s, obj, name, key.u.s.n, out);
        if (obj.k == JV_DICT) {
            int found = 0;
            if (jmethod_lookup(s, obj, name, key.u.s.n, out, &found))
                return -1;
            if (found)
                return 0;
        }
        *out = jv_undef(name);
        return 0;
    }
    *out = jv_undef(NULL);
    return 0;
}

/* Python slice.indices */
static int slice_get(struct jstate *s, struct jv obj, struct jv lo, struct jv hi, struct jv st,
                     struct jv *out)
{
    if (obj.k == JV_UNDEF)
        return undef_fail(s, obj);
    int64_t step = 1;
    for (int k = 0; k < 3; k++) {
        struct jv x = k == 0 ? lo : k == 1 ? hi : st;
        if (x.k != JV_NONE && x.k != JV_INT && x.k != JV_BOOL)
            return jfail(s, "slice indices must be integers or None");
    }
    if (st.k != JV_NONE)
        step = st.u.i;
    if (step == 0)
        return jfail(s, "slice step cannot be zero");
    /* slices bypass the sandbox's getitem in jinja2: Python's own errors */
    size_t len;
    if ((obj.k == JV_LIST || obj.k == JV_TUPLE) && !obj.sub)
        len = obj.u.l->n;
    else if (obj.k == JV_STR)
        len = ju8_len(obj.u.s.p, obj.u.s.n);
    else if (obj.k == JV_DICT)
        return jfail(s, "unhashable type: 'slice'");
    else
        return jfail(s, "'%s' object is not subscriptable", jv_typename(obj));
    int64_t L = (int64_t)len, lower = step < 0 ? -1 : 0, upper = step < 0 ? L - 1 : L;
    int64_t start, stop;
    if (lo.k == JV_NONE)
        start = step < 0 ? upper : lower;
    else {
        start = lo.u.i < 0 ? lo.u.i + L : lo.u.i;
        start = start < lower ? lower : start > upper ? upper : start;
    }
    if (hi.k == JV_NONE)
        stop = step < 0 ? lower : upper;
    else {
        stop = hi.u.i < 0 ? hi.u.i + L : hi.u.i;
        stop = stop < lower ? lower : stop > upper ? upper : stop;
    }
    size_t cnt = 0;
    if (step > 0 && start < stop)
        cnt = (size_t)((stop - start + step - 1) / step);
    else if (step < 0 && start > stop)
        cnt = (size_t)((start - stop + (-step) - 1) / (-step));
    if (obj.k != JV_STR) {
        if (jv_newlist(s, obj.k, cnt, out))
            return -1;
        for (size_t i = 0; i < cnt; i++)
            out->u.l->v[i] = obj.u.l->v[start + (int64_t)i * step];
        return 0;
    }
    size_t *offs = ja_alloc(&s->ar, (len + 1) * sizeof *offs);
    char *buf = ja_alloc(&s->ar, obj.u.s.n + 1);
    if (!offs || !buf)
        return joom(s);
    for (size_t i = 0, k = 0; k <= len; k++) {
        offs[k] = i;
        if (i < obj.u.s.n) {
            i++;
            while (i < obj.u.s.n && ((unsigned char)obj.u.s.p[i] & 0xc0) == 0x80)
                i++;
        }
    }
    size_t bn = 0;
    for (size_t i = 0; i < cnt; i++) {
        int64_t c = start + (int64_t)i * step;
        size_t l = offs[c + 1] - offs[c];
        memcpy(buf + bn, obj.u.s.p + offs[c], l);
        bn += l;
    }
    *out = jv_str(buf, bn);
    return 0;
}

/* ---- arithmetic ---- */
static int arith_type_fail(struct jstate *s, const char *op, struct jv a, struct jv b)
{
    if (a.k == JV_UNDEF)
        return undef_fail(s, a);
    if (b.k == JV_UNDEF)
        return undef_fail(s, b);
    return jfail(s, "unsupported operand type(s) for %s: '%s' and '%s'", op, jv_typename(a),
                 jv_typename(b));
}

static int repeat(struct jstate *s, struct jv seq, int64_t times, struct jv *out)
{
    if (times < 0)
        times = 0;
    if (seq.k == JV_STR) {
        if (seq.u.s.n && (uint64_t)times > (s->ar.max / seq.u.s.n))
            return jfail_code(s, AX_ETOOBIG, "repetition larger than the %zu-byte memory limit",
                              s->ar.max);
        size_t n = seq.u.s.n * (size_t)times;
        char *p = ja_alloc(&s->ar, n + 1);
        if (!p)
            return joom(s);
        for (int64_t i = 0; i < times; i++)
            memcpy(p + (size_t)i * seq.u.s.n, seq.u.s.p, seq.u.s.n);
        *out = jv_str(p, n);
        return 0;
    }
    size_t m = seq.u.l->n;
    if (m && (uint64_t)times > s->ar.max / (m * sizeof(struct jv)))
        return jfail_code(s, AX_ETOOBIG, "repetition larger than the %zu-byte memory limit",
                          s->ar.max);
    if (jv_newlist(s, seq.k, m * (size_t)times, out))
        return -1;
    for (int64_t i = 0; i < times; i++)
        if (m)
            memcpy(out->u.l->v + (size_t)i * m, seq.u.l->v, m * sizeof(struct jv));
    return 0;
}

/* Python's `str % args` for %s, %r, %d, %i, %% and %(key)s; other
 * conversions and flags are reported as unsupported. */
static int str_format(struct jstate *s, struct jv fmt, struct jv args, struct jv *out)
{
    struct jv one[1] = {args};
    struct jv *av = one;
    size_t an = 1, used = 0;
    int mapping = args.k == JV_DICT;
    /* Python skips the "not all arguments converted" check for any
     * argument with __getitem__ that is not a tuple or str */
    int getitem_like = mapping || (args.k == JV_LIST && !args.sub) || args.k == JV_UNDEF;
    if (args.k == JV_TUPLE) {
        av = args.u.l->v;
        an = args.u.l->n;
    }
    struct ax_buf b;
    ax_buf_init(&b, s->out_max);
    const char *p = fmt.u.s.p, *e = p + fmt.u.s.n;
    while (p < e) {
        const char *pct = memchr(p, '%', (size_t)(e - p));
        if (!pct) {
            if (jbuf_put(s, &b, p, (size_t)(e - p)))
                goto fail;
            break;
        }
        if (jbuf_put(s, &b, p, (size_t)(pct - p)))
            goto fail;
        p = pct + 1;
        if (p >= e) {
            jfail(s, "incomplete format");
            goto fail;
        }
        struct jv v;
        if (*p == '%') {
            if (jbuf_put(s, &b, "%", 1))
                goto fail;
            p++;
            continue;
        }
        if (*p == '(') {
            const char *close = memchr(p, ')', (size_t)(e - p));
            if (!close || !mapping) {
                jfail(s, !close ? "incomplete format key" : "format requires a mapping");
                goto fail;
            }
            struct jv *hit = jv_dict_gets(args.u.d, p + 1, (size_t)(close - p - 1));
            if (!hit) {
                jfail(s, "KeyError: '%.*s'", (int)(close - p - 1), p + 1);
                goto fail;
            }
            v = *hit;
            p = close + 1;
            used = an; /* a mapping is never "not all converted" */
        } else {
            if (used >= an) {
                jfail(s, "not enough arguments for format string");
                goto fail;
            }
            v = av[used++];
        }
        if (p >= e) {
            jfail(s, "incomplete format");
            goto fail;
        }
        char conv = *p++;
        int rc;
        if (conv == 's') {
            rc = jv_str_to(s, &b, v);
        } else if (conv == 'r') {
            rc = jv_repr_to(s, &b, v);
        } else if ((conv == 'd' || conv == 'i') && jv_is_num(v)) {
            char tmp[32];
            double f = jv_num(v);
            if (v.k == JV_FLOAT && (isnan(f) || isinf(f) || fabs(f) >= 9.2e18)) {
                jfail(s, "%%d of this float is not supported");
                goto fail;
            }
            snprintf(tmp, sizeof tmp, "%lld", v.k == JV_FLOAT ? (long long)f : (long long)v.u.i);
            rc = jbuf_put(s, &b, tmp, strlen(tmp));
        } else {
            jfail(s, "'%%%c' string formatting is not supported for %s", conv, jv_typename(v));
            goto fail;
        }
        if (rc)
            goto fail;
    }
    if (used < an && !getitem_like) {
        jfail(s, "not all arguments converted during string formatting");
        goto fail;
    }
    return jbuf_done(s, &b, out);
fail:
    ax_buf_free(&b);
    return -1;
}

static void py_fdivmod(double a, double b, double *fdiv, double *fmod_)
{
    double mod = fmod(a, b), div = (a - mod) / b;
    if (mod) {
        if ((b < 0) != (mod < 0)) {
            mod += b;
            div -= 1.0;
        }
    } else {
        mod = copysign(0.0, b);
    }
    double fd;
    if (div) {
        fd = floor(div);
        if (div - fd > 0.5)
            fd += 1.0;
    } else {
        fd = copysign(0.0, a / b);
    }
    *fdiv = fd;
    *fmod_ = mod;
}

static int int_pow(struct jstate *s, int64_t b, int64_t e, struct jv *out)
{
    int64_t r = 1;
    while (e > 0) {
        if (e & 1) {
            if (__builtin_mul_overflow(r, b, &r))
                return jfail(s, "integer overflow (results beyond 64 bits are not supported)");
        }
        e >>= 1;
        if (e && __builtin_mul_overflow(b, b, &b))
            return jfail(s, "integer overflow (results beyond 64 bits are not supported)");
    }
    *out = jv_int(r);
    return 0;
}

static int binop(struct jstate *s, int op, struct jv a, struct jv b, struct jv *out)
{
    static const char *names[] = {[T_ADD] = "+",       [T_SUB] = "-", [T_MUL] = "*", [T_DIV] = "/",
                                  [T_FLOORDIV] = "//", [T_MOD] = "%", [T_POW] = "**"};
    if ((a.k == JV_LIST && a.sub) || (b.k == JV_LIST && b.sub))
        return jfail(s, "unsupported operand type(s) for %s: a generator or dict view", names[op]);
    int ints = (a.k == JV_INT || a.k == JV_BOOL) && (b.k == JV_INT || b.k == JV_BOOL);
    int nums = jv_is_num(a) && jv_is_num(b);
    int64_t r;
    if (!nums) {
        if (op == T_ADD && a.k == JV_STR && b.k == JV_STR) {
            char *p = ja_alloc(&s->ar, a.u.s.n + b.u.s.n + 1);
            if (!p)
                return joom(s);
            memcpy(p, a.u.s.p, a.u.s.n);
            memcpy(p + a.u.s.n, b.u.s.p, b.u.s.n);
            *out = jv_str(p, a.u.s.n + b.u.s.n);
            return 0;
        }
        if (op == T_ADD && (a.k == JV_LIST || a.k == JV_TUPLE) && a.k == b.k) {
            if (jv_newlist(s, a.k, a.u.l->n + b.u.l->n, out))
                return -1;
            if (a.u.l->n)
                memcpy(out->u.l->v, a.u.l->v, a.u.l->n * sizeof(struct jv));
            if (b.u.l->n)
                memcpy(out->u.l->v + a.u.l->n, b.u.l->v, b.u.l->n * sizeof(struct jv));
            return 0;
        }
        if (op == T_MUL) {
            int sa = a.k == JV_STR || a.k == JV_LIST || a.k == JV_TUPLE;
            int sb = b.k == JV_STR || b.k == JV_LIST || b.k == JV_TUPLE;
            if (sa && (b.k == JV_INT || b.k == JV_BOOL))
                return repeat(s, a, b.u.i, out);
            if (sb && (a.k == JV_INT || a.k == JV_BOOL))
                return repeat(s, b, a.u.i, out);
        }
        if (op == T_MOD && a.k == JV_STR)
            return str_format(s, a, b, out);
        return arith_type_fail(s, names[op], a, b);
    }
    double x = jv_num(a), y = jv_num(b);
    switch (op) {
    case T_ADD:
    case T_SUB:
    case T_MUL: {
        if (!ints)
            break;
        int ovf = op == T_ADD   ? __builtin_add_overflow(a.u.i, b.u.i, &r)
                  : op == T_SUB ? __builtin_sub_overflow(a.u.i, b.u.i, &r)
                                : __builtin_mul_overflow(a.u.i, b.u.i, &r);
        if (ovf)
            return jfail(s, "integer overflow (results beyond 64 bits are not supported)");
        *out = jv_int(r);
        return 0;
    }
    case T_DIV:
        if (y == 0)
            return jfail(s, "division by zero");
        *out = jv_float(x / y);
        return 0;
    case T_FLOORDIV:
    case T_MOD:
        if (y == 0)
            return jfail(s, op == T_MOD ? "integer modulo by zero"
                                        : "integer division or modulo by zero");
        if (ints) {
            if (a.u.i == INT64_MIN && b.u.i == -1)
                return jfail(s, "integer overflow (results beyond 64 bits are not supported)");
            int64_t q = a.u.i / b.u.i, m = a.u.i % b.u.i;
            if (m && ((m < 0) != (b.u.i < 0))) {
                q--;
                m += b.u.i;
            }
            *out = jv_int(op == T_MOD ? m : q);
            return 0;
        }
        double fd, fm;
        py_fdivmod(x, y, &fd, &fm);
        *out = jv_float(op == T_MOD ? fm : fd);
        return 0;
    case T_POW:
        if (ints && b.u.i >= 0)
            return int_pow(s, a.u.i, b.u.i, out);
        if (x == 0 && y < 0)
            return jfail(s, "0.0 cannot be raised to a negative power");
        if (x < 0 && y != floor(y))
            return jfail(s, "complex results are not supported");
        *out = jv_float(pow(x, y));
        return 0;
    default:
        return jfail(s, "unknown operator");
    }
    double f = op == T_ADD ? x + y : op == T_SUB ? x - y : x * y;
    *out = jv_float(f);
    return 0;
}

/* `in`: substring, list/tuple membership, dict keys. */
static int contains(struct jstate *s, struct jv item, struct jv seq, int *res)
{
    switch (seq.k) {
    case JV_STR:
        if (item.k != JV_STR)
            return jfail(s, "'in <string>' requires string as left operand, not %s",
                         jv_typename(item));
        *res = item.u.s.n == 0 || memmem(seq.u.s.p, seq.u.s.n, item.u.s.p, item.u.s.n) != NULL;
        return 0;
    case JV_LIST:
    case JV_TUPLE:
        *res = 0;
        for (size_t i = 0; i < seq.u.l->n && !*res; i++)
            *res = jv_eq(seq.u.l->v[i], item);
        return 0;
    case JV_DICT:
        if (item.k == JV_LIST || item.k == JV_DICT || item.k == JV_NS)
            return jfail(s, "unhashable type: '%s'", jv_typename(item));
        *res = jv_dict_get(seq.u.d, item) != NULL;
        return 0;
    case JV_UNDEF:
        *res = 0;
        return 0;
    default:
        return jfail(s, "argument of type '%s' is not iterable", jv_typename(seq));
    }
}

static int compare(struct jstate *s, int op, struct jv a, struct jv b, int *res)
{
    int c;
    switch (op) {
    case T_EQ:
        *res = jv_eq(a, b);
        return 0;
    case T_NE:
        *res = !jv_eq(a, b);
        return 0;
    case 1000:
        return contains(s, a, b, res);
    case 1001:
        if (contains(s, a, b, res))
            return -1;
        *res = !*res;
        return 0;
    default:
        if (jv_cmp(s, a, b, &c))
            return -1;
        *res = op == T_LT ? c < 0 : op == T_LTEQ ? c <= 0 : op == T_GT ? c > 0 : c >= 0;
        return 0;
    }
}

/* ---- calls ---- */
struct args {
    struct jv *pos;
    size_t npos;
    const char **kn;
    struct jv *kv;
    size_t nkw;
};

static int eval_args(struct jstate *s, const struct jnode *n, struct jscope *sc, struct args *a)
{
    a->npos = n->nargs;
    a->nkw = n->nkw;
    a->kn = n->knames;
    a->pos = a->kv = NULL;
    if ((n->nargs && !(a->pos = ja_alloc(&s->ar, n->nargs * sizeof *a->pos))) ||
        (n->nkw && !(a->kv = ja_alloc(&s->ar, n->nkw * sizeof *a->kv))))
        return joom(s);
    for (size_t i = 0; i < n->nargs; i++)
        if (jeval(s, n->args[i], sc, &a->pos[i]))
            return -1;
    for (size_t i = 0; i < n->nkw; i++)
        if (jeval(s, n->kvals[i], sc, &a->kv[i]))
            return -1;
    return 0;
}

static int exec_body(struct jstate *s, const struct jnode *body, struct jscope *sc);

static int call_macro(struct jstate *s, struct jcall *c, struct jv *args, size_t nargs,
                      const char **kn, struct jv *kv, size_t nkw, struct jv *out)
{
    const struct jnode *m = c->macro;
    const char *mname = m->name ? m->name : "caller";
    if (jcount_iter(s, 1))
        return -1;
    struct jscope *sc = scope_new(s, c->closure);
    if (!sc)
        return -1;
    size_t np = m->nargs;
    char *bound = ja_alloc(&s->ar, np + 1);
    if (!bound)
        return joom(s);
    if (nargs > np && !m->uses_varargs)
        return jfail(s, "macro '%s' takes not more than %zu argument(s)", mname, np);
    for (size_t i = 0; i < nargs && i < np; i++) {
        if (scope_set(s, sc, m->args[i]->name, args[i]))
            return -1;
        bound[i] = 1;
    }
    struct jv kwargs, varargs, caller = c->caller;
    if (jv_newdict(s, JV_DICT, 0, &kwargs))
        return -1;
    for (size_t k = 0; k < nkw; k++) {
        size_t i;
        for (i = 0; i < np; i++)
            if (!strcmp(m->args[i]->name, kn[k]))
                break;
        if (i < np) {
            if (bound[i])
                return jfail(s, "macro '%s' got multiple values for argument '%s'", mname, kn[k]);
            if (scope_set(s, sc, kn[k], kv[k]))
                return -1;
            bound[i] = 1;
        } else if (!strcmp(kn[k], "caller") && m->uses_caller) {
            caller = kv[k];
        } else if (m->uses_kwargs) {
            if (jv_dict_set(s, kwargs.u.d, jv_str(kn[k], strlen(kn[k])), kv[k]))
                return -1;
        } else {
            return jfail(s, "macro '%s' takes no keyword argument '%s'", mname, kn[k]);
        }
    }
    for (size_t i = 0; i < np; i++) {
        if (bound[i])
            continue;
        struct jv v = jv_undef(m->args[i]->name);
        if (m->kvals && m->kvals[i] && jeval(s, m->kvals[i], sc, &v))
            return -1;
        if (scope_set(s, sc, m->args[i]->name, v))
            return -1;
    }
    if (m->uses_varargs) {
        size_t extra = nargs > np ? nargs - np : 0;
        if (jv_newlist(s, JV_TUPLE, extra, &varargs))
            return -1;
        for (size_t i = 0; i < extra; i++)
            varargs.u.l->v[i] = args[np + i];
        if (scope_set(s, sc, "varargs", varargs))
            return -1;
    }
    if (m->uses_kwargs && scope_set(s, sc, "kwargs", kwargs))
        return -1;
    if (m->uses_caller && m->kind == N_MACRO &&
        scope_set(s, sc, "caller", caller.k ? caller : jv_undef("caller")))
        return -1;
    /* render the body into its own buffer */
    struct ax_buf buf, *saved = s->out;
    ax_buf_init(&buf, s->out_max);
    s->out = &buf;
    int line = s->line;
    int rc = exec_body(s, m->b, sc);
    s->out = saved;
    s->line = line;
    s->ctl = 0;
    if (rc) {
        ax_buf_free(&buf);
        return -1;
    }
    return jbuf_done(s, &buf, out);
}

int jcall_value(struct jstate *s, struct jv fn, struct jv *args, size_t nargs, const char **kn,
                struct jv *kv, size_t nkw, struct jv *out)
{
    *out = jv_undef(NULL);
    if (fn.k == JV_UNDEF)
        return undef_fail(s, fn);
    if (fn.k != JV_CALL)
        return jfail(s, "'%s' object is not callable", jv_typename(fn));
    struct jcall *c = fn.u.c;
    switch (c->kind) {
    case JC_MACRO:
        if (++s->depth > s->lim.max_depth)
            return jfail(s, "macro calls nested deeper than %d", s->lim.max_depth);
        int rc = call_macro(s, c, args, nargs, kn, kv, nkw, out);
        s->depth--;
        return rc;
    case JC_CYCLE: {
        if (!nargs)
            return jfail(s, "no items for cycling given");
        struct jloop *lp = c->self.u.lp;
        *out = args[lp->i % (int64_t)nargs];
        return 0;
    }
    case JC_UNSAFE:
        return jfail(s, "access to attribute '%s' of '%s' object is unsafe.", c->name,
                     jv_typename(c->self));
    default:
        return jbuiltin_call(s, c, args, nargs, kn, kv, nkw, out);
    }
}

/* ---- expressions ---- */
static int eval_filter(struct jstate *s, const struct jnode *n, struct jscope *sc, struct jv *out)
{
    struct jv in = {0};
    if (n->a->kind == E_PIPEIN)
        in = s->pipein;
    else if (jeval(s, n->a, sc, &in))
        return -1;
    struct args a = {0};
    if (eval_args(s, n, sc, &a))
        return -1;
    s->line = n->line;
    if (n->op < 0)
        return jfail(s, "No filter named '%s'.", n->name);
    return jfilter_apply(s, n->op, in, a.pos, a.npos, a.kn, a.kv, a.nkw, sc, out);
}

static int eval_test(struct jstate *s, const struct jnode *n, struct jscope *sc, struct jv *out)
{
    struct jv in = {0};
    if (jeval(s, n->a, sc, &in))
        return -1;
    struct args a = {0};
    if (eval_args(s, n, sc, &a))
        return -1;
    s->line = n->line;
    if (n->op < 0)
        return jfail(s, "No test named '%s'.", n->name);
    if (a.nkw)
        return jfail(s, "keyword arguments to tests are not supported");
    int r = 0;
    if (jtest_apply(s, n->op, in, a.pos, a.npos, &r))
        return -1;
    *out = jv_bool(r);
    return 0;
}

static int eval_collection(struct jstate *s, const struct jnode *n, struct jscope *sc,
                           struct jv *out)
{
    if (n->kind == E_DICT) {
        if (jv_newdict(s, JV_DICT, n->nargs, out))
            return -1;
        for (size_t i = 0; i < n->nargs; i++) {
            struct jv k = {0}, v = {0};
            if (jeval(s, n->args[i], sc, &k) || jeval(s, n->kvals[i], sc, &v))
                return -1;
            if (k.k == JV_LIST || k.k == JV_DICT || k.k == JV_NS || k.k == JV_UNDEF)
                return jfail(s, "unhashable type: '%s'", jv_typename(k));
            if (jv_dict_set(s, out->u.d, k, v))
                return -1;
        }
        return 0;
    }
    if (jv_newlist(s, n->kind == E_LIST ? JV_LIST : JV_TUPLE, n->nargs, out))
        return -1;
    for (size_t i = 0; i < n->nargs; i++)
        if (jeval(s, n->args[i], sc, &out->u.l->v[i]))
            return -1;
    return 0;
}

static int eval_concat(struct jstate *s, const struct jnode *n, struct jscope *sc, struct jv *out)
{
    struct ax_buf b;
    ax_buf_init(&b, s->out_max);
    for (size_t i = 0; i < n->nargs; i++) {
        struct jv v = {0};
        if (jeval(s, n->args[i], sc, &v) || jv_str_to(s, &b, v)) {
            ax_buf_free(&b);
            return -1;
        }
    }
    return jbuf_done(s, &b, out);
}

static int eval_inner(struct jstate *s, const struct jnode *n, struct jscope *sc, struct jv *out)
{
    struct jv a, b, c;
    int r;
    switch (n->kind) {
    case E_CONST:
        *out = n->val;
        return 0;
    case E_PIPEIN:
        *out = s->pipein;
        return 0;
    case E_NAME: {
        struct jv *v = scope_get(sc, n->name);
        if (v) {
            *out = *v;
            return 0;
        }
        return jbuiltin_lookup(n->name, out, s);
    }
    case E_ATTR:
        if (jeval(s, n->a, sc, &a))
            return -1;
        s->line = n->line;
        return jgetattr(s, a, n->name, strlen(n->name), out);
    case E_ITEM:
        if (jeval(s, n->a, sc, &a))
            return -1;
        if (n->b->kind == E_SLICE) {
            struct jv lo = jv_none(), hi = jv_none(), st = jv_none();
            const struct jnode *sl = n->b;
            if ((sl->a && jeval(s, sl->a, sc, &lo)) || (sl->b && jeval(s, sl->b, sc, &hi)) ||
                (sl->c && jeval(s, sl->c, sc, &st)))
                return -1;
            s->line = n->line;
            return slice_get(s, a, lo, hi, st, out);
        }
        if (jeval(s, n->b, sc, &b))
            return -1;
        s->line = n->line;
        return jgetitem(s, a, b, out);
    case E_CALL: {
        struct args ar;
        if (jeval(s, n->a, sc, &a) || eval_args(s, n, sc, &ar))
            return -1;
        s->line = n->line;
        return jcall_value(s, a, ar.pos, ar.npos, ar.kn, ar.kv, ar.nkw, out);
    }
    case E_FILTER:
        return eval_filter(s, n, sc, out);
    case E_TEST:
        return eval_test(s, n, sc, out);
    case E_BIN:
        if (jeval(s, n->a, sc, &a) || jeval(s, n->b, sc, &b))
            return -1;
        s->line = n->line;
        return binop(s, n->op, a, b, out);
    case E_NEG:
    case E_POS:
        if (jeval(s, n->a, sc, &a))
            return -1;
        if (!jv_is_num(a))
            return a.k == JV_UNDEF ? undef_fail(s, a)
                                   : jfail(s, "bad operand type for unary %c: '%s'",
                                           n->kind == E_NEG ? '-' : '+', jv_typename(a));
        if (n->kind == E_POS)
            *out = a.k == JV_BOOL ? jv_int(a.u.i) : a;
        else if (a.k == JV_FLOAT)
            *out = jv_float(-a.u.f);
        else if (a.u.i == INT64_MIN)
            return jfail(s, "integer overflow (results beyond 64 bits are not supported)");
        else
            *out = jv_int(-a.u.i);
        return 0;
    case E_NOT:
        if (jeval(s, n->a, sc, &a))
            return -1;
        *out = jv_bool(!jv_truthy(a));
        return 0;
    case E_AND:
    case E_OR:
        if (jeval(s, n->a, sc, &a))
            return -1;
        if (jv_truthy(a) == (n->kind == E_OR)) {
            *out = a;
            return 0;
        }
        return jeval(s, n->b, sc, out);
    case E_CMP:
        if (jeval(s, n->a, sc, &a))
            return -1;
        for (size_t i = 0; i < n->nargs; i++) {
            if (jeval(s, n->args[i], sc, &b))
                return -1;
            s->line = n->line;
            if (compare(s, n->ops[i], a, b, &r))
                return -1;
            if (!r) {
                *out = jv_bool(0);
                return 0;
            }
            a = b;
        }
        *out = jv_bool(1);
        return 0;
    case E_COND:
        if (jeval(s, n->b, sc, &c))
            return -1;
        if (jv_truthy(c))
            return jeval(s, n->a, sc, out);
        if (n->c)
            return jeval(s, n->c, sc, out);
        *out = jv_undef(NULL);
        return 0;
    case E_LIST:
    case E_TUPLE:
    case E_DICT:
        return eval_collection(s, n, sc, out);
    case E_CONCAT:
        return eval_concat(s, n, sc, out);
    case E_SLICE:
        return jfail(s, "a slice is only allowed inside []");
    default:
        return jfail(s, "internal error: statement used as an expression");
    }
}

int jeval(struct jstate *s, const struct jnode *n, struct jscope *sc, struct jv *out)
{
    *out = jv_undef(NULL);
    if (++s->depth > s->lim.max_depth) {
        s->depth--;
        return jfail(s, "expression nested deeper than %d", s->lim.max_depth);
    }
    int line = s->line;
    s->line = n->line;
    int rc = eval_inner(s, n, sc, out);
    if (!rc)
        s->line = line;
    s->depth--;
    return rc;
}

/* ---- statements ---- */
static int assign(struct jstate *s, const struct jnode *target, struct jv v, struct jscope *sc)
{
    if (target->kind == E_NAME)
        return scope_set(s, sc, target->name, v);
    if (target->kind == E_ATTR) {
        struct jv *ns = scope_get(sc, target->a->name);
        if (!ns || ns->k != JV_NS)
            return jfail(s, "cannot assign attribute on non-namespace object");
        const char *name = target->name;
        return jv_dict_set(s, ns->u.d, jv_str(name, strlen(name)), v);
    }
    /* tuple unpacking */
    struct jlist items;
    if (v.k == JV_UNDEF)
        return undef_fail(s, v);
    if (jiter(s, v, &items))
        return -1;
    if (items.n != target->nargs)
        return jfail(s,
                     items.n > target->nargs ? "too many values to unpack (expected %zu)"
                                             : "not enough values to unpack (expected %zu)",
                     target->nargs);
    for (size_t i = 0; i < items.n; i++)
        if (assign(s, target->args[i], items.v[i], sc))
            return -1;
    return 0;
}

static int capture(struct jstate *s, const struct jnode *body, struct jscope *sc, struct jv *out)
{
    struct ax_buf buf, *saved = s->out;
    ax_buf_init(&buf, s->out_max);
    s->out = &buf;
    int rc = exec_body(s, body, sc);
    s->out = saved;
    if (rc) {
        ax_buf_free(&buf);
        return -1;
    }
    return jbuf_done(s, &buf, out);
}

static int exec_for(struct jstate *s, const struct jnode *n, struct jscope *sc)
{
    struct jv seq;
    struct jlist items = {0};
    if (jeval(s, n->b, sc, &seq) || jiter(s, seq, &items))
        return -1;
    if (n->c) { /* the `if` filter sees the loop target, not `loop` */
        struct jv *keep = ja_alloc(&s->ar, (items.n + 1) * sizeof *keep);
        if (!keep)
            return joom(s);
        size_t k = 0;
        for (size_t i = 0; i < items.n; i++) {
            struct jscope *fs = scope_new(s, sc);
            struct jv cond = {0};
            if (!fs || jcount_iter(s, 1) || assign(s, n->a, items.v[i], fs) ||
                jeval(s, n->c, fs, &cond))
                return -1;
            if (jv_truthy(cond))
                keep[k++] = items.v[i];
        }
        items.v = keep;
        items.n = k;
    }
    struct jloop *lp = ja_alloc(&s->ar, sizeof *lp);
    if (!lp)
        return joom(s);
    lp->n = (int64_t)items.n;
    lp->items = items.v;
    for (size_t i = 0; i < items.n; i++) {
        if (jcount_iter(s, 1))
            return -1;
        struct jscope *it = scope_new(s, sc);
        struct jv lv = {.k = JV_LOOP};
        lp->i = (int64_t)i;
        lv.u.lp = lp;
        if (!it || scope_set(s, it, "loop", lv) || assign(s, n->a, items.v[i], it))
            return -1;
        if (exec_body(s, n->d, it))
            return -1;
        if (s->ctl == 1) {
            s->ctl = 0;
            break;
        }
        s->ctl = 0;
    }
    if (!items.n && n->e) {
        struct jscope *es = scope_new(s, sc);
        return es ? exec_body(s, n->e, es) : -1;
    }
    return 0;
}

static int new_macro(struct jstate *s, const struct jnode *n, struct jscope *sc, struct jv *out)
{
    struct jcall *c = ja_alloc(&s->ar, sizeof *c);
    if (!c)
        return joom(s);
    c->kind = JC_MACRO;
    c->name = n->name;
    c->macro = n;
    c->closure = sc;
    out->k = JV_CALL;
    out->u.c = c;
    return 0;
}

static int exec_callblock(struct jstate *s, const struct jnode *n, struct jscope *sc)
{
    struct jv caller = {0}, fn = {0}, res = {0};
    struct args a = {0};
    const struct jnode *call = n->a;
    if (new_macro(s, n, sc, &caller) || jeval(s, call->a, sc, &fn) || eval_args(s, call, sc, &a))
        return -1;
    if (fn.k == JV_CALL && fn.u.c->kind == JC_MACRO) {
        struct jcall c = *fn.u.c;
        c.caller = caller;
        if (!c.macro->uses_caller)
            return jfail(s, "macro '%s' was invoked with a caller but does not use it", c.name);
        struct jv f = {.k = JV_CALL};
        f.u.c = &c;
        if (jcall_value(s, f, a.pos, a.npos, a.kn, a.kv, a.nkw, &res))
            return -1;
    } else if (jcall_value(s, fn, a.pos, a.npos, a.kn, a.kv, a.nkw, &res)) {
        return -1;
    }
    return jv_str_to(s, s->out, res);
}

static int exec_stmt(struct jstate *s, const struct jnode *n, struct jscope *sc)
{
    struct jv v = {0}, r = {0};
    s->line = n->line;
    switch (n->kind) {
    case N_TEXT:
        return jbuf_put(s, s->out, n->val.u.s.p, n->val.u.s.n);
    case N_OUTPUT:
        return jeval(s, n->a, sc, &v) || jv_str_to(s, s->out, v) ? -1 : 0;
    case N_IF:
        for (; n && n->kind == N_IF; n = n->c) {
            if (jeval(s, n->a, sc, &v))
                return -1;
            if (jv_truthy(v))
                return exec_body(s, n->b, sc);
        }
        return n ? exec_body(s, n, sc) : 0;
    case N_FOR:
        return exec_for(s, n, sc);
    case N_SET:
        return jeval(s, n->b, sc, &v) || assign(s, n->a, v, sc) ? -1 : 0;
    case N_SETBLOCK:
        if (capture(s, n->b, sc, &v))
            return -1;
        s->pipein = v;
        return jeval(s, n->c, sc, &r) || assign(s, n->a, r, sc) ? -1 : 0;
    case N_FILTERBLOCK:
        if (capture(s, n->b, sc, &v))
            return -1;
        s->pipein = v;
        return jeval(s, n->a, sc, &r) || jv_str_to(s, s->out, r) ? -1 : 0;
    case N_MACRO:
        return new_macro(s, n, sc, &v) || scope_set(s, sc, n->name, v) ? -1 : 0;
    case N_CALLBLOCK:
        return exec_callblock(s, n, sc);
    case N_WITH: {
        struct jscope *ws = scope_new(s, sc);
        if (!ws)
            return -1;
        for (size_t i = 0; i < n->nargs; i++)
            if (jeval(s, n->kvals[i], sc, &v) || assign(s, n->args[i], v, ws))
                return -1;
        return exec_body(s, n->b, ws);
    }
    case N_BREAK:
        s->ctl = 1;
        return 0;
    case N_CONTINUE:
        s->ctl = 2;
        return 0;
    case N_BODY:
        return exec_body(s, n, sc);
    default:
        return jfail(s, "internal error: expression used as a statement");
    }
}

static int exec_body(struct jstate *s, const struct jnode *body, struct jscope *sc)
{
    if (++s->depth > s->lim.max_depth) {
        s->depth--;
        return jfail(s, "blocks nested deeper than %d", s->lim.max_depth);
    }
    int rc = 0;
    for (size_t i = 0; i < body->nargs && !rc && !s->ctl; i++)
        rc = exec_stmt(s, body->args[i], sc);
    s->depth--;
    return rc;
}

/* ---- entry points ---- */
void jinja_limits_default(struct jinja_limits *lim)
{
    lim->max_memory = (size_t)256 << 20;
    lim->max_iterations = 1000000;
    lim->max_depth = 200;
}

enum ax_err jinja_parse(const char *src, size_t len, struct jinja_tmpl **out, char *err)
{
    *out = NULL;
    for (size_t i = 0; i < len;) { /* the lexer relies on valid UTF-8 */
        unsigned char c = (unsigned char)src[i];
        size_t l = c < 0x80             ? 1
                   : (c & 0xe0) == 0xc0 ? 2
                   : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4
                                        : 0;
        if (!l || i + l > len || (l == 2 && c < 0xc2))
            return ax_fail(err, AX_EUTF8, "template: invalid UTF-8 at byte %zu", i);
        int32_t cp = c & (0xff >> (l + 1));
        for (size_t k = 1; k < l; k++) {
            if (((unsigned char)src[i + k] & 0xc0) != 0x80)
                return ax_fail(err, AX_EUTF8, "template: invalid UTF-8 at byte %zu", i);
            cp = (cp << 6) | (src[i + k] & 0x3f);
        }
        if ((l == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (l == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return ax_fail(err, AX_EUTF8, "template: invalid UTF-8 at byte %zu", i);
        i += l;
    }
    struct jinja_tmpl *t = ax_calloc(1, sizeof *t);
    if (!t)
        return ax_fail(err, AX_ENOMEM, "template: out of memory");
    ja_init(&t->arena, (size_t)64 << 20);
    struct jtoks toks = {0};
    if (jlex(&t->arena, src, len, &toks, err) || jparse(t, &toks, err)) {
        enum ax_err e = strstr(err ? err : "", "out of memory") ? AX_ENOMEM : AX_ETEMPLATE;
        jinja_free(t);
        return e;
    }
    *out = t;
    return AX_OK;
}

void jinja_free(struct jinja_tmpl *t)
{
    if (!t)
        return;
    ja_release(&t->arena);
    ax_free(t);
}

enum ax_err jinja_render(const struct jinja_tmpl *t, const json_t *vars,
                         const struct jinja_limits *lim, struct ax_buf *out, char *err)
{
    struct jstate s = {0};
    if (lim)
        s.lim = *lim;
    else
        jinja_limits_default(&s.lim);
    ja_init(&s.ar, s.lim.max_memory);
    s.out = out;
    s.out_max = out->max;
    s.err = err;
    s.line = 1;
    s.root = scope_new(&s, NULL);
    if (s.root && vars) {
        if (!json_is_object(vars)) {
            ja_release(&s.ar);
            return ax_fail(err, AX_EINVAL, "template variables must be a JSON object");
        }
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)vars, key, val)
        {
            struct jv v;
            char *k = ja_strdup(&s.ar, key, strlen(key));
            if (!k) {
                joom(&s);
                break;
            }
            if (jv_from_json(&s, val, &v, 0) || scope_set(&s, s.root, k, v))
                break;
        }
    }
    if (s.rc == AX_OK && s.root && exec_body(&s, t->root, s.root) && s.rc == AX_OK)
        ax_fail(err, s.rc = AX_ETEMPLATE, "template: internal error without a message");
    ja_release(&s.ar);
    if (s.rc == AX_OK && !s.root)
        return ax_fail(err, AX_ENOMEM, "template: out of memory");
    return s.rc;
}
