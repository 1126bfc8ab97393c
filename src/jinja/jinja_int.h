/* jinja_int.h - private to src/jinja: arena, values, tokens, AST, and the
 * render state shared by lex.c, parse.c, value.c, eval.c and builtins.c. */
#ifndef AX_JINJA_INT_H
#define AX_JINJA_INT_H

#include <stddef.h>
#include <stdint.h>

#include "jinja/jinja.h"
#include "util/buf.h"
#include "util/err.h"

/* ---- arena: everything of one parse or one render, freed at once ---- */
struct ja_chunk;
struct jarena {
    struct ja_chunk *head;
    size_t total; /* bytes taken from the allocator */
    size_t max;   /* ceiling on total */
    int over;     /* an allocation failed because of the ceiling */
};
void ja_init(struct jarena *a, size_t max);
void *ja_alloc(struct jarena *a, size_t n); /* zeroed; NULL on ceiling/OOM */
char *ja_strdup(struct jarena *a, const char *s, size_t n);
void ja_release(struct jarena *a);

/* ---- values ---- */
enum jv_kind {
    JV_UNDEF = 0, /* s: the missing name (may be empty), for messages */
    JV_NONE,
    JV_BOOL,  /* i: 0 or 1 */
    JV_INT,   /* i */
    JV_FLOAT, /* f */
    JV_STR,   /* s */
    JV_LIST,  /* l */
    JV_TUPLE, /* l */
    JV_DICT,  /* d */
    JV_NS,    /* d, mutable through {% set ns.x = ... %} */
    JV_CALL,  /* c: builtin function, bound method, macro */
    JV_LOOP,  /* lp: the `loop` variable */
};

struct jlist;
struct jdict;
struct jcall;
struct jloop;

/* What a JV_LIST really is in Python, where that shows: generators (from
 * filters such as select or map) are always true and have no len; dict
 * views print as dict_items([...]). Neither can be subscripted. */
enum jv_sub { SUB_NONE = 0, SUB_GEN, SUB_KEYS, SUB_VALUES, SUB_ITEMS };

struct jv {
    enum jv_kind k;
    unsigned char sub; /* enum jv_sub, JV_LIST only */
    union {
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        struct jlist *l;
        struct jdict *d;
        struct jcall *c;
        struct jloop *lp;
    } u;
};

struct jlist {
    size_t n;
    struct jv *v;
};

struct jdict {
    size_t n, cap;
    struct jv *key, *val;
};

struct jnode;
struct jscope;

enum jcall_kind { JC_BUILTIN, JC_METHOD, JC_MACRO, JC_CYCLE, JC_UNSAFE };
struct jcall {
    enum jcall_kind kind;
    int id;                    /* builtin or method id */
    const char *name;          /* for messages */
    struct jv self;            /* bound object (methods, loop.cycle) */
    const struct jnode *macro; /* N_MACRO or N_CALLBLOCK */
    struct jscope *closure;    /* scope the macro was defined in */
    struct jv caller;          /* the {% call %} body passed as caller */
};

struct jloop {
    int64_t i, n; /* index0, length */
    struct jv *items;
};

/* ---- tokens ---- */
enum jt_kind {
    T_EOF = 0,
    T_TEXT,
    T_VAR_BEGIN,
    T_VAR_END,
    T_BLOCK_BEGIN,
    T_BLOCK_END,
    T_NAME,
    T_STRING,
    T_INT,
    T_FLOAT,
    /* operators */
    T_ADD,
    T_SUB,
    T_DIV,
    T_FLOORDIV,
    T_MUL,
    T_MOD,
    T_POW,
    T_TILDE,
    T_LBRACKET,
    T_RBRACKET,
    T_LPAREN,
    T_RPAREN,
    T_LBRACE,
    T_RBRACE,
    T_EQ,
    T_NE,
    T_GT,
    T_GTEQ,
    T_LT,
    T_LTEQ,
    T_ASSIGN,
    T_DOT,
    T_COLON,
    T_PIPE,
    T_COMMA,
    T_SEMICOLON,
};

struct jtok {
    enum jt_kind k;
    int line;
    const char *p; /* TEXT/NAME/STRING: decoded bytes (arena), else source */
    size_t n;
    int64_t i; /* T_INT */
    double f;  /* T_FLOAT */
};

struct jtoks {
    struct jtok *v;
    size_t n, cap;
};

/* Tokenizes src into toks (arena memory). Returns 0, or -1 with err set. */
int jlex(struct jarena *a, const char *src, size_t len, struct jtoks *toks, char *err);

/* ---- AST ---- */
enum jn_kind {
    /* statements */
    N_BODY,
    N_TEXT,
    N_OUTPUT,
    N_IF,
    N_FOR,
    N_SET,
    N_SETBLOCK,
    N_MACRO,
    N_CALLBLOCK,
    N_FILTERBLOCK,
    N_WITH,
    N_BREAK,
    N_CONTINUE,
    /* expressions */
    E_CONST,
    E_NAME,
    E_ATTR,
    E_ITEM,
    E_SLICE,
    E_CALL,
    E_FILTER,
    E_TEST,
    E_BIN,
    E_NEG,
    E_POS,
    E_NOT,
    E_AND,
    E_OR,
    E_CMP,
    E_COND,
    E_LIST,
    E_TUPLE,
    E_DICT,
    E_PIPEIN,
    E_CONCAT,
};

struct jnode {
    enum jn_kind kind;
    int line;
    int op; /* E_BIN: token kind; builtin id for E_FILTER/E_TEST */
    struct jnode *a, *b, *c, *d, *e;
    struct jnode **args; /* body statements, list items, call args, macro params */
    size_t nargs;
    struct jnode **kvals; /* keyword values, dict values, macro defaults */
    const char **knames;  /* keyword names (NUL-terminated) */
    size_t nkw;
    int *ops;                                   /* E_CMP operators */
    const char *name;                           /* NUL-terminated: names, attributes, filters */
    struct jv val;                              /* E_CONST, N_TEXT */
    int uses_varargs, uses_kwargs, uses_caller; /* N_MACRO */
};

struct jinja_tmpl {
    struct jarena arena;
    struct jnode *root; /* N_BODY */
};

/* Parses tokens into t->root. Returns 0, or -1 with err set. */
int jparse(struct jinja_tmpl *t, struct jtoks *toks, char *err);

/* Builtin lookups used by the parser to reject unknown names at compile
 * time, as Jinja2 does. -1 when unknown. */
int jfilter_id(const char *name);
int jtest_id(const char *name);

/* ---- render state ---- */
struct jscope {
    struct jscope *parent;
    size_t n, cap;
    const char **names;
    struct jv *vals;
};

struct jstate {
    struct jarena ar;
    struct jinja_limits lim;
    struct ax_buf *out; /* where output goes now (captures swap it) */
    size_t out_max;     /* ceiling for capture buffers */
    char *err;
    enum ax_err rc; /* first error */
    int line;       /* line of the node being evaluated */
    uint64_t iters;
    int depth;
    int ctl;          /* 1 = break, 2 = continue pending */
    struct jv pipein; /* value of E_PIPEIN */
    struct jscope *root;
};

/* Records the first error (code AX_ETEMPLATE unless given) and returns -1. */
int jfail(struct jstate *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int jfail_code(struct jstate *s, enum ax_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int joom(struct jstate *s);

/* value.c: constructors (arena), conversions, Python semantics */
static inline struct jv jv_undef(const char *name)
{
    struct jv v = {.k = JV_UNDEF};
    v.u.s.p = name;
    v.u.s.n = name ? __builtin_strlen(name) : 0;
    return v;
}
static inline struct jv jv_none(void)
{
    return (struct jv){.k = JV_NONE};
}
static inline struct jv jv_bool(int b)
{
    struct jv v = {.k = JV_BOOL};
    v.u.i = !!b;
    return v;
}
static inline struct jv jv_int(int64_t i)
{
    struct jv v = {.k = JV_INT};
    v.u.i = i;
    return v;
}
static inline struct jv jv_float(double f)
{
    struct jv v = {.k = JV_FLOAT};
    v.u.f = f;
    return v;
}
static inline struct jv jv_str(const char *p, size_t n)
{
    struct jv v = {.k = JV_STR};
    v.u.s.p = p;
    v.u.s.n = n;
    return v;
}
int jv_newlist(struct jstate *s, enum jv_kind k, size_t n, struct jv *out);
int jv_newdict(struct jstate *s, enum jv_kind k, size_t cap, struct jv *out);
/* Sets key in a dict/namespace (replacing an existing key, keeping order). */
int jv_dict_set(struct jstate *s, struct jdict *d, struct jv key, struct jv val);
/* Finds key in d: pointer to the value, or NULL. */
struct jv *jv_dict_get(const struct jdict *d, struct jv key);
struct jv *jv_dict_gets(const struct jdict *d, const char *key, size_t n);
int jv_from_json(struct jstate *s, const json_t *j, struct jv *out, int depth);

int jv_truthy(struct jv v);
int jv_is_num(struct jv v); /* int, float or bool */
double jv_num(struct jv v);
int jv_eq(struct jv a, struct jv b);
/* Python ordering: sets *cmp to <0, 0, >0; -1 with an error if unorderable. */
int jv_cmp(struct jstate *s, struct jv a, struct jv b, int *cmp);
const char *jv_typename(struct jv v);

/* Python str(v) / repr(v) appended to b. 0 or -1 (ceiling, memory). */
int jv_str_to(struct jstate *s, struct ax_buf *b, struct jv v);
int jv_repr_to(struct jstate *s, struct ax_buf *b, struct jv v);
/* str(v) as an arena string. */
int jv_tostr(struct jstate *s, struct jv v, struct jv *out);
int jv_float_repr(char *buf, size_t n, double f); /* Python repr(float) */

struct json_opts {
    const char *indent; /* NULL = no indent */
    size_t indent_n;
    const char *item_sep, *key_sep;
    size_t item_sep_n, key_sep_n;
    int sort_keys, ensure_ascii;
};
int jv_json_to(struct jstate *s, struct ax_buf *b, struct jv v, const struct json_opts *o,
               int level);

/* Appends to an arena string being built with a temporary ax_buf. */
int jbuf_put(struct jstate *s, struct ax_buf *b, const void *p, size_t n);
int jbuf_done(struct jstate *s, struct ax_buf *b, struct jv *out); /* moves into arena, frees b */

/* UTF-8: decodes one code point at p (n bytes left); returns its length
 * (input is validated UTF-8, so always >= 1). */
size_t ju8_dec(const char *p, size_t n, int32_t *cp);
size_t ju8_enc(int32_t cp, char *out);
size_t ju8_len(const char *p, size_t n); /* code points */
int jpy_isspace(int32_t cp);

/* eval.c */
int jeval(struct jstate *s, const struct jnode *n, struct jscope *sc, struct jv *out);
int jcall_value(struct jstate *s, struct jv fn, struct jv *args, size_t nargs, const char **kn,
                struct jv *kv, size_t nkw, struct jv *out);
int jgetattr(struct jstate *s, struct jv obj, const char *name, size_t n, struct jv *out);
int jgetitem(struct jstate *s, struct jv obj, struct jv key, struct jv *out);
/* Materializes an iterable (list, tuple, str, dict keys, undefined=empty). */
int jiter(struct jstate *s, struct jv v, struct jlist *out);
int jcount_iter(struct jstate *s, uint64_t n);

/* builtins.c */
int jfilter_apply(struct jstate *s, int id, struct jv in, struct jv *args, size_t nargs,
                  const char **kn, struct jv *kv, size_t nkw, struct jscope *sc, struct jv *out);
int jtest_apply(struct jstate *s, int id, struct jv in, struct jv *args, size_t nargs, int *res);
int jbuiltin_lookup(const char *name, struct jv *out, struct jstate *s);
int jbuiltin_call(struct jstate *s, struct jcall *c, struct jv *args, size_t nargs, const char **kn,
                  struct jv *kv, size_t nkw, struct jv *out);
/* Methods of str/dict/list: a bound JV_CALL in *out, or 0 with *found=0. */
int jmethod_lookup(struct jstate *s, struct jv obj, const char *name, size_t n, struct jv *out,
                   int *found);

#endif
