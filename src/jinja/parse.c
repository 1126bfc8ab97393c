/* parse.c - Jinja2 parser: tokens -> AST, following jinja2/parser.py so
 * that precedence and the odd corners (left-associative **, filters
 * binding tighter than unary minus's operand, `a if b` without else)
 * match.
 *
 * Statements: if/elif/else, for (target tuples, `if` filter, else),
 * break/continue, set (expression, tuple targets, namespace attributes,
 * block set with filters), macro, call (with caller arguments), filter
 * blocks, with, and transformers' generation block. Everything else
 * (extends, block, include, import, from, autoescape, do, recursive loops,
 * star-args in calls) is a syntax error naming the construct.
 *
 * Filters and tests are resolved to builtin ids here; an unknown one is
 * reported when evaluated, as Jinja2 3.1 does. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "jinja/jinja_int.h"

struct parser {
    struct jinja_tmpl *t;
    struct jarena *a;
    struct jtok *tk;
    size_t i, n;
    char *err;
    int depth;
    int loops;           /* enclosing for-loops (for break/continue) */
    struct jnode *macro; /* innermost macro being parsed */
};

#define MAX_PARSE_DEPTH 200

static int pfail(struct parser *P, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int pfail(struct parser *P, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ax_fail(P->err, AX_ETEMPLATE, "template line %d: %s", P->tk[P->i].line, msg);
    return -1;
}

static struct jtok *cur(struct parser *P)
{
    return &P->tk[P->i];
}
static struct jtok *look(struct parser *P)
{
    return &P->tk[P->i + 1 < P->n ? P->i + 1 : P->i];
}
static void next(struct parser *P)
{
    if (P->tk[P->i].k != T_EOF)
        P->i++;
}
static int is_name(struct parser *P, const char *w)
{
    struct jtok *t = cur(P);
    return t->k == T_NAME && !strcmp(t->p, w);
}
static int skip_name(struct parser *P, const char *w)
{
    if (!is_name(P, w))
        return 0;
    next(P);
    return 1;
}

static const char *describe(enum jt_kind k)
{
    switch (k) {
    case T_EOF:
        return "end of template";
    case T_TEXT:
        return "template data";
    case T_VAR_BEGIN:
        return "begin of print statement";
    case T_VAR_END:
        return "end of print statement";
    case T_BLOCK_BEGIN:
        return "begin of statement block";
    case T_BLOCK_END:
        return "end of statement block";
    case T_NAME:
        return "name";
    case T_STRING:
        return "string";
    case T_INT:
        return "integer";
    case T_FLOAT:
        return "float";
    default:
        return "operator";
    }
}

static int expect(struct parser *P, enum jt_kind k)
{
    if (cur(P)->k != k)
        return pfail(P, "expected %s, got %s", describe(k), describe(cur(P)->k));
    next(P);
    return 0;
}

static struct jnode *node(struct parser *P, enum jn_kind k)
{
    struct jnode *n = ja_alloc(P->a, sizeof *n);
    if (!n) {
        pfail(P, "out of memory");
        return NULL;
    }
    n->kind = k;
    n->line = cur(P)->line;
    return n;
}

/* Growable node vector in the arena. */
struct nvec {
    struct jnode **v;
    size_t n, cap;
};
static int nvec_push(struct parser *P, struct nvec *v, struct jnode *x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        struct jnode **nv = ja_alloc(P->a, cap * sizeof(struct jnode *));
        if (!nv)
            return pfail(P, "out of memory");
        if (v->n)
            memcpy(nv, v->v, v->n * sizeof(struct jnode *));
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return 0;
}

/* ---- expressions ---- */
static struct jnode *parse_expression(struct parser *P, int with_condexpr);
static struct jnode *parse_tuple(struct parser *P, int simplified, int with_condexpr,
                                 const char *end_name, int explicit_parens);
static struct jnode *parse_unary(struct parser *P, int with_filter);
static struct jnode *parse_primary(struct parser *P);
static struct jnode *parse_postfix(struct parser *P, struct jnode *n);

static int enter(struct parser *P)
{
    if (++P->depth > MAX_PARSE_DEPTH)
        return pfail(P, "template nested too deeply (limit %d)", MAX_PARSE_DEPTH);
    return 0;
}

/* (args, kw=...) into n->args / n->knames / n->kvals */
static int parse_call_args(struct parser *P, struct jnode *n)
{
    struct nvec args = {0}, kvals = {0};
    const char *names[64];
    if (expect(P, T_LPAREN))
        return -1;
    int need_comma = 0;
    while (cur(P)->k != T_RPAREN) {
        if (need_comma) {
            if (expect(P, T_COMMA))
                return -1;
            if (cur(P)->k == T_RPAREN)
                break;
        }
        if (cur(P)->k == T_MUL || cur(P)->k == T_POW)
            return pfail(P, "*args and **kwargs in calls are not supported");
        if (cur(P)->k == T_NAME && look(P)->k == T_ASSIGN) {
            if (kvals.n == 64)
                return pfail(P, "too many keyword arguments");
            names[kvals.n] = cur(P)->p;
            next(P);
            next(P);
            struct jnode *v = parse_expression(P, 1);
            if (!v || nvec_push(P, &kvals, v))
                return -1;
        } else {
            if (kvals.n)
                return pfail(
                    P, "invalid syntax for function call expression (positional after keyword)");
            struct jnode *v = parse_expression(P, 1);
            if (!v || nvec_push(P, &args, v))
                return -1;
        }
        need_comma = 1;
    }
    if (expect(P, T_RPAREN))
        return -1;
    n->args = args.v;
    n->nargs = args.n;
    n->kvals = kvals.v;
    n->nkw = kvals.n;
    if (kvals.n) {
        n->knames = ja_alloc(P->a, kvals.n * sizeof *n->knames);
        if (!n->knames)
            return pfail(P, "out of memory");
        memcpy(n->knames, names, kvals.n * sizeof *names);
    }
    return 0;
}

static struct jnode *parse_call(struct parser *P, struct jnode *fn)
{
    struct jnode *n = node(P, E_CALL);
    if (!n)
        return NULL;
    n->a = fn;
    if (parse_call_args(P, n))
        return NULL;
    return n;
}

/* name(.name)* for filters and tests */
static const char *dotted_name(struct parser *P)
{
    if (cur(P)->k != T_NAME) {
        pfail(P, "expected a filter or test name, got %s", describe(cur(P)->k));
        return NULL;
    }
    const char *name = cur(P)->p;
    next(P);
    if (cur(P)->k == T_DOT)
        return pfail(P, "dotted filter and test names are not supported"), NULL;
    return name;
}

static struct jnode *parse_filter(struct parser *P, struct jnode *in, int start_inline)
{
    while (cur(P)->k == T_PIPE || start_inline) {
        if (!start_inline)
            next(P);
        start_inline = 0;
        struct jnode *n = node(P, E_FILTER);
        if (!n)
            return NULL;
        n->name = dotted_name(P);
        if (!n->name)
            return NULL;
        n->op = jfilter_id(n->name);
        n->a = in;
        if (cur(P)->k == T_LPAREN && parse_call_args(P, n))
            return NULL;
        in = n;
    }
    return in;
}

static struct jnode *parse_test(struct parser *P, struct jnode *in)
{
    next(P); /* is */
    int negated = skip_name(P, "not");
    struct jnode *n = node(P, E_TEST);
    if (!n)
        return NULL;
    n->name = dotted_name(P);
    if (!n->name)
        return NULL;
    n->op = jtest_id(n->name);
    n->a = in;
    enum jt_kind k = cur(P)->k;
    if (k == T_LPAREN) {
        if (parse_call_args(P, n))
            return NULL;
    } else if ((k == T_NAME || k == T_STRING || k == T_INT || k == T_FLOAT || k == T_LBRACKET ||
                k == T_LBRACE) &&
               !is_name(P, "else") && !is_name(P, "or") && !is_name(P, "and")) {
        if (is_name(P, "is")) {
            pfail(P, "You cannot chain multiple tests with is");
            return NULL;
        }
        struct jnode *arg = parse_primary(P);
        if (!arg || !(arg = parse_postfix(P, arg)))
            return NULL;
        n->args = ja_alloc(P->a, sizeof(struct jnode *));
        if (!n->args)
            return pfail(P, "out of memory"), NULL;
        n->args[0] = arg;
        n->nargs = 1;
    }
    if (negated) {
        struct jnode *x = node(P, E_NOT);
        if (!x)
            return NULL;
        x->a = n;
        n = x;
    }
    return n;
}

static struct jnode *parse_subscribed(struct parser *P)
{
    struct jnode *args[3] = {0};
    if (cur(P)->k == T_COLON) {
        next(P);
    } else {
        struct jnode *e = parse_expression(P, 1);
        if (!e)
            return NULL;
        if (cur(P)->k != T_COLON)
            return e;
        next(P);
        args[0] = e;
    }
    struct jnode *sl = node(P, E_SLICE);
    if (!sl)
        return NULL;
    if (cur(P)->k != T_COLON && cur(P)->k != T_RBRACKET && cur(P)->k != T_COMMA)
        if (!(args[1] = parse_expression(P, 1)))
            return NULL;
    if (cur(P)->k == T_COLON) {
        next(P);
        if (cur(P)->k != T_RBRACKET && cur(P)->k != T_COMMA)
            if (!(args[2] = parse_expression(P, 1)))
                return NULL;
    }
    sl->a = args[0];
    sl->b = args[1];
    sl->c = args[2];
    return sl;
}

static struct jnode *parse_subscript(struct parser *P, struct jnode *obj)
{
    if (cur(P)->k == T_DOT) {
        next(P);
        struct jtok *t = cur(P);
        if (t->k == T_NAME) {
            struct jnode *n = node(P, E_ATTR);
            if (!n)
                return NULL;
            n->a = obj;
            n->name = t->p;
            next(P);
            return n;
        }
        if (t->k != T_INT)
            return pfail(P, "expected name or number"), NULL;
        struct jnode *n = node(P, E_ITEM), *k = node(P, E_CONST);
        if (!n || !k)
            return NULL;
        k->val = jv_int(t->i);
        n->a = obj;
        n->b = k;
        next(P);
        return n;
    }
    next(P); /* [ */
    struct nvec args = {0};
    while (cur(P)->k != T_RBRACKET) {
        if (args.n && expect(P, T_COMMA))
            return NULL;
        if (cur(P)->k == T_RBRACKET)
            break;
        struct jnode *e = parse_subscribed(P);
        if (!e || nvec_push(P, &args, e))
            return NULL;
    }
    if (expect(P, T_RBRACKET))
        return NULL;
    if (!args.n)
        return pfail(P, "expected an expression inside []"), NULL;
    struct jnode *n = node(P, E_ITEM);
    if (!n)
        return NULL;
    n->a = obj;
    if (args.n == 1) {
        n->b = args.v[0];
    } else {
        struct jnode *t = node(P, E_TUPLE);
        if (!t)
            return NULL;
        t->args = args.v;
        t->nargs = args.n;
        n->b = t;
    }
    return n;
}

static struct jnode *parse_postfix(struct parser *P, struct jnode *n)
{
    for (;;) {
        enum jt_kind k = cur(P)->k;
        if (k == T_DOT || k == T_LBRACKET)
            n = parse_subscript(P, n);
        else if (k == T_LPAREN)
            n = parse_call(P, n);
        else
            return n;
        if (!n)
            return NULL;
    }
}

static struct jnode *parse_filter_expr(struct parser *P, struct jnode *n)
{
    for (;;) {
        if (cur(P)->k == T_PIPE)
            n = parse_filter(P, n, 0);
        else if (is_name(P, "is"))
            n = parse_test(P, n);
        else if (cur(P)->k == T_LPAREN)
            n = parse_call(P, n);
        else
            return n;
        if (!n)
            return NULL;
    }
}

static struct jnode *parse_list_or_dict(struct parser *P, int dict)
{
    struct jnode *n = node(P, dict ? E_DICT : E_LIST);
    if (!n)
        return NULL;
    next(P);
    struct nvec keys = {0}, vals = {0};
    enum jt_kind close = dict ? T_RBRACE : T_RBRACKET;
    while (cur(P)->k != close) {
        if (keys.n && expect(P, T_COMMA))
            return NULL;
        if (cur(P)->k == close)
            break;
        struct jnode *k = parse_expression(P, 1);
        if (!k || nvec_push(P, &keys, k))
            return NULL;
        if (dict) {
            if (expect(P, T_COLON))
                return NULL;
            struct jnode *v = parse_expression(P, 1);
            if (!v || nvec_push(P, &vals, v))
                return NULL;
        }
    }
    if (expect(P, close))
        return NULL;
    n->args = keys.v;
    n->nargs = keys.n;
    n->kvals = vals.v;
    n->nkw = vals.n;
    return n;
}

static struct jnode *parse_primary(struct parser *P)
{
    if (enter(P))
        return NULL;
    struct jtok *t = cur(P);
    struct jnode *n = NULL;
    switch (t->k) {
    case T_NAME:
        if (!(n = node(P, E_CONST)))
            return NULL;
        if (!strcmp(t->p, "true") || !strcmp(t->p, "True")) {
            n->val = jv_bool(1);
        } else if (!strcmp(t->p, "false") || !strcmp(t->p, "False")) {
            n->val = jv_bool(0);
        } else if (!strcmp(t->p, "none") || !strcmp(t->p, "None")) {
            n->val = jv_none();
        } else {
            n->kind = E_NAME;
            n->name = t->p;
            if (P->macro) {
                if (!strcmp(t->p, "varargs"))
                    P->macro->uses_varargs = 1;
                else if (!strcmp(t->p, "kwargs"))
                    P->macro->uses_kwargs = 1;
                else if (!strcmp(t->p, "caller"))
                    P->macro->uses_caller = 1;
            }
        }
        next(P);
        break;
    case T_STRING: {
        if (!(n = node(P, E_CONST)))
            return NULL;
        /* adjacent literals concatenate */
        size_t total = 0, j = P->i;
        for (; P->tk[j].k == T_STRING; j++)
            total += P->tk[j].n;
        char *s = ja_alloc(P->a, total + 1);
        if (!s)
            return pfail(P, "out of memory"), NULL;
        size_t off = 0;
        for (; cur(P)->k == T_STRING; next(P)) {
            memcpy(s + off, cur(P)->p, cur(P)->n);
            off += cur(P)->n;
        }
        n->val = jv_str(s, total);
        break;
    }
    case T_INT:
    case T_FLOAT:
        if (!(n = node(P, E_CONST)))
            return NULL;
        n->val = t->k == T_INT ? jv_int(t->i) : jv_float(t->f);
        next(P);
        break;
    case T_LPAREN:
        next(P);
        n = parse_tuple(P, 0, 1, NULL, 1);
        if (!n || expect(P, T_RPAREN))
            return NULL;
        break;
    case T_LBRACKET:
    case T_LBRACE:
        n = parse_list_or_dict(P, t->k == T_LBRACE);
        break;
    default:
        pfail(P, "unexpected %s", describe(t->k));
        return NULL;
    }
    P->depth--;
    return n;
}

static struct jnode *parse_unary(struct parser *P, int with_filter)
{
    if (enter(P))
        return NULL;
    struct jnode *n;
    if (cur(P)->k == T_SUB || cur(P)->k == T_ADD) {
        n = node(P, cur(P)->k == T_SUB ? E_NEG : E_POS);
        next(P);
        if (!n || !(n->a = parse_unary(P, 0)))
            return NULL;
    } else {
        n = parse_primary(P);
    }
    if (n)
        n = parse_postfix(P, n);
    if (n && with_filter)
        n = parse_filter_expr(P, n);
    P->depth--;
    return n;
}

static struct jnode *binop(struct parser *P, int op, struct jnode *l, struct jnode *r)
{
    if (!r)
        return NULL;
    struct jnode *n = node(P, E_BIN);
    if (!n)
        return NULL;
    n->op = op;
    n->a = l;
    n->b = r;
    return n;
}

static struct jnode *parse_pow(struct parser *P)
{
    struct jnode *l = parse_unary(P, 1);
    while (l && cur(P)->k == T_POW) {
        next(P);
        l = binop(P, T_POW, l, parse_unary(P, 1));
    }
    return l;
}

static struct jnode *parse_math2(struct parser *P)
{
    struct jnode *l = parse_pow(P);
    for (enum jt_kind k;
         l && ((k = cur(P)->k) == T_MUL || k == T_DIV || k == T_FLOORDIV || k == T_MOD);) {
        next(P);
        l = binop(P, k, l, parse_pow(P));
    }
    return l;
}

static struct jnode *parse_concat(struct parser *P)
{
    struct jnode *l = parse_math2(P);
    if (!l || cur(P)->k != T_TILDE)
        return l;
    struct nvec v = {0};
    if (nvec_push(P, &v, l))
        return NULL;
    while (cur(P)->k == T_TILDE) {
        next(P);
        struct jnode *r = parse_math2(P);
        if (!r || nvec_push(P, &v, r))
            return NULL;
    }
    struct jnode *n = node(P, E_CONCAT);
    if (!n)
        return NULL;
    n->args = v.v;
    n->nargs = v.n;
    return n;
}

static struct jnode *parse_math1(struct parser *P)
{
    struct jnode *l = parse_concat(P);
    for (enum jt_kind k; l && ((k = cur(P)->k) == T_ADD || k == T_SUB);) {
        next(P);
        l = binop(P, k, l, parse_concat(P));
    }
    return l;
}

/* E_CMP ops: token kinds, plus these two */
enum { CMP_IN = 1000, CMP_NOTIN = 1001 };

static struct jnode *parse_compare(struct parser *P)
{
    struct jnode *first = parse_math1(P);
    if (!first)
        return NULL;
    struct nvec rhs = {0};
    int ops[64];
    for (;;) {
        enum jt_kind k = cur(P)->k;
        int op;
        if (k == T_EQ || k == T_NE || k == T_LT || k == T_LTEQ || k == T_GT || k == T_GTEQ) {
            op = k;
            next(P);
        } else if (is_name(P, "in")) {
            op = CMP_IN;
            next(P);
        } else if (is_name(P, "not") && look(P)->k == T_NAME && !strcmp(look(P)->p, "in")) {
            op = CMP_NOTIN;
            next(P);
            next(P);
        } else {
            break;
        }
        if (rhs.n == 64)
            return pfail(P, "comparison chain too long"), NULL;
        ops[rhs.n] = op;
        struct jnode *r = parse_math1(P);
        if (!r || nvec_push(P, &rhs, r))
            return NULL;
    }
    if (!rhs.n)
        return first;
    struct jnode *n = node(P, E_CMP);
    if (!n)
        return NULL;
    n->a = first;
    n->args = rhs.v;
    n->nargs = rhs.n;
    n->ops = ja_alloc(P->a, rhs.n * sizeof *n->ops);
    if (!n->ops)
        return pfail(P, "out of memory"), NULL;
    memcpy(n->ops, ops, rhs.n * sizeof *ops);
    return n;
}

static struct jnode *parse_not(struct parser *P)
{
    if (is_name(P, "not")) {
        if (enter(P))
            return NULL;
        struct jnode *n = node(P, E_NOT);
        next(P);
        if (!n || !(n->a = parse_not(P)))
            return NULL;
        P->depth--;
        return n;
    }
    return parse_compare(P);
}

static struct jnode *parse_logic(struct parser *P, int is_or)
{
    struct jnode *l = is_or ? parse_logic(P, 0) : parse_not(P);
    while (l && is_name(P, is_or ? "or" : "and")) {
        struct jnode *n = node(P, is_or ? E_OR : E_AND);
        next(P);
        if (!n)
            return NULL;
        n->a = l;
        if (!(n->b = is_or ? parse_logic(P, 0) : parse_not(P)))
            return NULL;
        l = n;
    }
    return l;
}

static struct jnode *parse_condexpr(struct parser *P)
{
    if (enter(P))
        return NULL;
    struct jnode *e1 = parse_logic(P, 1);
    while (e1 && is_name(P, "if")) {
        struct jnode *n = node(P, E_COND);
        next(P);
        if (!n)
            return NULL;
        n->a = e1;
        if (!(n->b = parse_logic(P, 1)))
            return NULL;
        if (skip_name(P, "else") && !(n->c = parse_condexpr(P)))
            return NULL;
        e1 = n;
    }
    P->depth--;
    return e1;
}

static struct jnode *parse_expression(struct parser *P, int with_condexpr)
{
    return with_condexpr ? parse_condexpr(P) : parse_logic(P, 1);
}

static int tuple_end(struct parser *P, const char *end_name)
{
    enum jt_kind k = cur(P)->k;
    if (k == T_VAR_END || k == T_BLOCK_END || k == T_RPAREN)
        return 1;
    return end_name && is_name(P, end_name);
}

static struct jnode *parse_tuple(struct parser *P, int simplified, int with_condexpr,
                                 const char *end_name, int explicit_parens)
{
    int line = cur(P)->line;
    struct nvec v = {0};
    int is_tuple = 0;
    for (;;) {
        if (v.n && expect(P, T_COMMA))
            return NULL;
        if (tuple_end(P, end_name))
            break;
        struct jnode *e = simplified ? parse_primary(P) : parse_expression(P, with_condexpr);
        if (!e || nvec_push(P, &v, e))
            return NULL;
        if (cur(P)->k != T_COMMA)
            break;
        is_tuple = 1;
    }
    if (!is_tuple) {
        if (v.n)
            return v.v[0];
        if (!explicit_parens)
            return pfail(P, "expected an expression, got %s", describe(cur(P)->k)), NULL;
    }
    struct jnode *n = node(P, E_TUPLE);
    if (!n)
        return NULL;
    n->line = line;
    n->args = v.v;
    n->nargs = v.n;
    return n;
}

/* ---- statements ---- */
static struct jnode *subparse(struct parser *P, const char *const *ends);

static int can_assign(struct jnode *n)
{
    if (n->kind == E_NAME)
        return 1;
    if (n->kind != E_TUPLE)
        return 0;
    for (size_t i = 0; i < n->nargs; i++)
        if (!can_assign(n->args[i]))
            return 0;
    return 1;
}

static struct jnode *parse_assign_target(struct parser *P, const char *end_name, int with_namespace)
{
    if (with_namespace && cur(P)->k == T_NAME && look(P)->k == T_DOT) {
        struct jnode *n = node(P, E_ATTR), *ns = node(P, E_NAME);
        if (!n || !ns)
            return NULL;
        ns->name = cur(P)->p;
        next(P);
        next(P);
        if (cur(P)->k != T_NAME)
            return pfail(P, "expected an attribute name after '.'"), NULL;
        n->a = ns;
        n->name = cur(P)->p;
        next(P);
        return n;
    }
    struct jnode *t = parse_tuple(P, 1, 1, end_name, 0);
    if (t && !can_assign(t))
        return pfail(P, "can't assign to this expression"), NULL;
    return t;
}

/* {% ... %} block end after a statement head, then the body up to one of
 * ends (the end tag's name is left current). */
static struct jnode *statements(struct parser *P, const char *const *ends)
{
    if (expect(P, T_BLOCK_END))
        return NULL;
    return subparse(P, ends);
}

static int end_tag(struct parser *P, const char *name)
{
    if (!skip_name(P, name))
        return pfail(P, "expected '%s'", name);
    return 0;
}

static struct jnode *parse_for(struct parser *P)
{
    static const char *const ends1[] = {"endfor", "else", NULL}, *const ends2[] = {"endfor", NULL};
    struct jnode *n = node(P, N_FOR);
    if (!n)
        return NULL;
    if (!(n->a = parse_assign_target(P, "in", 0)) || end_tag(P, "in"))
        return NULL;
    if (!(n->b = parse_tuple(P, 0, 0, "recursive", 0)))
        return NULL;
    if (skip_name(P, "if") && !(n->c = parse_expression(P, 1)))
        return NULL;
    if (is_name(P, "recursive"))
        return pfail(P, "recursive for-loops are not supported"), NULL;
    P->loops++;
    n->d = statements(P, ends1);
    P->loops--;
    if (!n->d)
        return NULL;
    if (skip_name(P, "else")) {
        if (!(n->e = statements(P, ends2)))
            return NULL;
    }
    return end_tag(P, "endfor") ? NULL : n;
}

static struct jnode *parse_if(struct parser *P)
{
    static const char *const ends[] = {"elif", "else", "endif", NULL}, *const ends2[] = {"endif",
                                                                                         NULL};
    struct jnode *n = node(P, N_IF), *top = n;
    if (!n)
        return NULL;
    for (;;) {
        if (!(n->a = parse_tuple(P, 0, 0, NULL, 0)) || !(n->b = statements(P, ends)))
            return NULL;
        if (skip_name(P, "elif")) {
            struct jnode *e = node(P, N_IF);
            if (!e)
                return NULL;
            n->c = e;
            n = e;
            continue;
        }
        if (skip_name(P, "else") && !(n->c = statements(P, ends2)))
            return NULL;
        return end_tag(P, "endif") ? NULL : top;
    }
}

static struct jnode *parse_set(struct parser *P)
{
    static const char *const ends[] = {"endset", NULL};
    struct jnode *n = node(P, N_SET);
    if (!n || !(n->a = parse_assign_target(P, NULL, 1)))
        return NULL;
    if (cur(P)->k == T_ASSIGN) {
        next(P);
        n->b = parse_tuple(P, 0, 1, NULL, 0);
        return n->b ? n : NULL;
    }
    n->kind = N_SETBLOCK;
    if (n->a->kind == E_TUPLE)
        return pfail(P, "a block set takes one name"), NULL;
    struct jnode *pin = node(P, E_PIPEIN);
    if (!pin || !(n->c = parse_filter(P, pin, 0)))
        return NULL;
    if (!(n->b = statements(P, ends)))
        return NULL;
    return end_tag(P, "endset") ? NULL : n;
}

/* (a, b=default, ...) into n->args (E_NAME) and n->kvals (defaults or NULL) */
static int parse_signature(struct parser *P, struct jnode *n)
{
    struct nvec args = {0}, defs = {0};
    int have_default = 0;
    if (expect(P, T_LPAREN))
        return -1;
    while (cur(P)->k != T_RPAREN) {
        if (args.n && expect(P, T_COMMA))
            return -1;
        if (cur(P)->k != T_NAME)
            return pfail(P, "expected a parameter name");
        struct jnode *a = node(P, E_NAME);
        if (!a)
            return -1;
        a->name = cur(P)->p;
        next(P);
        struct jnode *d = NULL;
        if (cur(P)->k == T_ASSIGN) {
            next(P);
            if (!(d = parse_expression(P, 1)))
                return -1;
            have_default = 1;
        } else if (have_default) {
            return pfail(P, "non-default argument follows default argument");
        }
        if (nvec_push(P, &args, a) || nvec_push(P, &defs, d))
            return -1;
    }
    n->args = args.v;
    n->nargs = args.n;
    n->kvals = defs.v;
    return expect(P, T_RPAREN);
}

static struct jnode *parse_macro_body(struct parser *P, struct jnode *n, const char *end)
{
    const char *ends[] = {end, NULL};
    struct jnode *saved = P->macro;
    int loops = P->loops;
    P->macro = n;
    P->loops = 0;
    n->b = statements(P, ends);
    P->macro = saved;
    P->loops = loops;
    if (!n->b || end_tag(P, end))
        return NULL;
    return n;
}

static struct jnode *parse_macro(struct parser *P)
{
    struct jnode *n = node(P, N_MACRO);
    if (!n)
        return NULL;
    if (cur(P)->k != T_NAME)
        return pfail(P, "expected a macro name"), NULL;
    n->name = cur(P)->p;
    next(P);
    if (parse_signature(P, n))
        return NULL;
    return parse_macro_body(P, n, "endmacro");
}

static struct jnode *parse_call_block(struct parser *P)
{
    struct jnode *n = node(P, N_CALLBLOCK);
    if (!n)
        return NULL;
    n->name = "caller";
    if (cur(P)->k == T_LPAREN && parse_signature(P, n))
        return NULL;
    if (!(n->a = parse_expression(P, 1)))
        return NULL;
    if (n->a->kind != E_CALL)
        return pfail(P, "expected call"), NULL;
    return parse_macro_body(P, n, "endcall");
}

static struct jnode *parse_filter_block(struct parser *P)
{
    static const char *const ends[] = {"endfilter", NULL};
    struct jnode *n = node(P, N_FILTERBLOCK), *pin = node(P, E_PIPEIN);
    if (!n || !pin || !(n->a = parse_filter(P, pin, 1)) || !(n->b = statements(P, ends)))
        return NULL;
    return end_tag(P, "endfilter") ? NULL : n;
}

static struct jnode *parse_with(struct parser *P)
{
    static const char *const ends[] = {"endwith", NULL};
    struct jnode *n = node(P, N_WITH);
    struct nvec targets = {0}, vals = {0};
    if (!n)
        return NULL;
    while (cur(P)->k != T_BLOCK_END) {
        if (targets.n && expect(P, T_COMMA))
            return NULL;
        struct jnode *t = parse_assign_target(P, NULL, 0), *v;
        if (!t || expect(P, T_ASSIGN) || !(v = parse_expression(P, 1)))
            return NULL;
        if (nvec_push(P, &targets, t) || nvec_push(P, &vals, v))
            return NULL;
    }
    n->args = targets.v;
    n->nargs = targets.n;
    n->kvals = vals.v;
    n->nkw = vals.n;
    if (!(n->b = statements(P, ends)))
        return NULL;
    return end_tag(P, "endwith") ? NULL : n;
}

/* {% generation %}...{% endgeneration %}: transformers' AssistantTracker
 * tag, which renders its body unchanged unless assistant masks are asked
 * for (they never are here). */
static struct jnode *parse_generation(struct parser *P)
{
    static const char *const ends[] = {"endgeneration", NULL};
    struct jnode *n = statements(P, ends);
    return !n || end_tag(P, "endgeneration") ? NULL : n;
}

static struct jnode *parse_statement(struct parser *P)
{
    if (cur(P)->k != T_NAME) {
        pfail(P, "tag name expected");
        return NULL;
    }
    const char *w = cur(P)->p;
    if (enter(P))
        return NULL;
    next(P);
    struct jnode *n = NULL;
    if (!strcmp(w, "for")) {
        n = parse_for(P);
    } else if (!strcmp(w, "if")) {
        n = parse_if(P);
    } else if (!strcmp(w, "set")) {
        n = parse_set(P);
    } else if (!strcmp(w, "macro")) {
        n = parse_macro(P);
    } else if (!strcmp(w, "call")) {
        n = parse_call_block(P);
    } else if (!strcmp(w, "filter")) {
        n = parse_filter_block(P);
    } else if (!strcmp(w, "generation")) {
        n = parse_generation(P);
    } else if (!strcmp(w, "with")) {
        n = parse_with(P);
    } else if (!strcmp(w, "break") || !strcmp(w, "continue")) {
        if (!P->loops) {
            P->i--;
            pfail(P, "'%s' outside loop", w);
            return NULL;
        }
        n = node(P, w[0] == 'b' ? N_BREAK : N_CONTINUE);
    } else {
        P->i--;
        pfail(P, "unknown or unsupported tag '%s'", w);
        return NULL;
    }
    P->depth--;
    return n;
}

static int is_end(struct parser *P, const char *const *ends)
{
    for (; ends && *ends; ends++)
        if (is_name(P, *ends))
            return 1;
    return 0;
}

static struct jnode *subparse(struct parser *P, const char *const *ends)
{
    struct jnode *body = node(P, N_BODY);
    struct nvec v = {0};
    if (!body)
        return NULL;
    for (;;) {
        struct jtok *t = cur(P);
        struct jnode *n = NULL;
        if (t->k == T_EOF) {
            if (ends)
                return pfail(P, "unexpected end of template, expected '%s'", ends[0]), NULL;
            break;
        }
        if (t->k == T_TEXT) {
            if (!(n = node(P, N_TEXT)))
                return NULL;
            n->val = jv_str(t->p, t->n);
            next(P);
        } else if (t->k == T_VAR_BEGIN) {
            next(P);
            if (!(n = node(P, N_OUTPUT)) || !(n->a = parse_tuple(P, 0, 1, NULL, 0)) ||
                expect(P, T_VAR_END))
                return NULL;
        } else if (t->k == T_BLOCK_BEGIN) {
            next(P);
            if (is_end(P, ends))
                break;
            if (!(n = parse_statement(P)) || expect(P, T_BLOCK_END))
                return NULL;
        } else {
            return pfail(P, "unexpected %s", describe(t->k)), NULL;
        }
        if (nvec_push(P, &v, n))
            return NULL;
    }
    body->args = v.v;
    body->nargs = v.n;
    return body;
}

int jparse(struct jinja_tmpl *t, struct jtoks *toks, char *err)
{
    struct parser P = {.t = t, .a = &t->arena, .tk = toks->v, .n = toks->n, .err = err};
    t->root = subparse(&P, NULL);
    return t->root ? 0 : -1;
}
