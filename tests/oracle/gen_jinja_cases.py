#!/usr/bin/python3
"""Writes random Jinja test cases for tests/suites/template.sh (run once by
hand; the output is committed):

  gen_jinja_cases.py exprs SEED N OUT    random expressions over a fixed context
  gen_jinja_cases.py blocks SEED N OUT   random statements with whitespace control

Each case is {"template": ..., "vars": {...}}. Filters that return
generators are followed by |list, since a generator prints its address."""
import json
import random
import sys

CTX = {"x": 3, "y": -1.5, "s": "a b", "l": [3, 1, 2], "d": {"k": 1, "b": "x"}, "n": None, "f": False,
       "u8": "héllo wörld 😀"}
ATOMS = ["1", "0", "-3", "2.5", "0.1", "1e3", "'ab'", "''", "'A b'", "none", "true", "false", "[1, 2]", "[]",
         "(1, 'x')", "{'k': 1}", "{}", "x", "y", "s", "l", "d", "u", "n", "f", "u8"]
BINOPS = ["+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", ">=", "in", "not in", "and", "or"]
FILTERS = ["length", "first", "last", "join", "join(', ')", "upper", "lower", "title", "capitalize", "trim", "list",
           "string", "tojson", "int", "float", "abs", "sort", "sum", "max", "min", "default('D')", "d(1, true)",
           "count", "e", "wordcount", "dictsort", "round", "round(1)", "indent(2)", "replace('a', 'b')",
           "tojson(indent=1)", "tojson(sort_keys=true)", "reverse|list", "unique|list", "items|list",
           "select|list", "reject('odd')|list", "map('string')|list", "batch(2)|list", "selectattr('k')|list",
           "sort(reverse=true)", "center(9)", "int(7)", "float(1.5)"]
TESTS = ["defined", "undefined", "none", "string", "number", "integer", "float", "mapping", "iterable", "sequence",
         "boolean", "true", "false", "odd", "even", "divisibleby(2)", "eq 1", "in [1, 'ab']", "callable", "lower",
         "upper"]
METHODS = [".upper()", ".lower()", ".split()", ".split('b')", ".strip()", ".startswith('a')", ".endswith('b')",
           ".title()", ".replace('a', 'z')", ".find('b')", ".count('a')", ".items()|list", ".keys()|list",
           ".values()|list", ".get('k')", ".get('z', 5)", "[0]", "[1:]", "[::-1]", "[-1]", ".k", "['k']", "[:2]",
           ".capitalize()", ".lstrip('a')", ".rsplit(' ', 1)", ".split(maxsplit=1)", "[1:-1:2]"]


def expr(d=0):
    r = random.random()
    if d > 3 or r < 0.3:
        return random.choice(ATOMS)
    if r < 0.55:
        return "(%s %s %s)" % (expr(d + 1), random.choice(BINOPS), expr(d + 1))
    if r < 0.7:
        return "(%s|%s)" % (expr(d + 1), random.choice(FILTERS))
    if r < 0.8:
        return "(%s is %s%s)" % (expr(d + 1), random.choice(["", "not "]), random.choice(TESTS))
    if r < 0.9:
        return "(%s%s)" % (random.choice(["s", "d", "l", "'a b'", "x", "u8"]), random.choice(METHODS))
    if r < 0.95:
        return "(%s if %s else %s)" % (expr(d + 1), expr(d + 1), expr(d + 1))
    return "(not %s)" % expr(d + 1)


def ws():
    return random.choice(["", " ", "\n", "  ", "\n  ", " \n", "\t", "\n\n", "x", " y\n", "\n \t", "\u3000\n"])


def tag(word):
    return "{%" + random.choice(["", "", "-", "+"]) + " " + word + " " + random.choice(["", "", "-", "+"]) + "%}"


def var(e):
    return "{{" + random.choice(["", "", "-"]) + " " + e + " " + random.choice(["", "", "-"]) + "}}"


def stmt(d=0):
    r = random.random()
    if d > 3 or r < 0.25:
        return ws() + random.choice(["t", "text", "a b", ""]) + ws()
    if r < 0.4:
        return ws() + var(random.choice(["i", "x", "loop.index if loop is defined else 0", "'s'", "ns.v"])) + ws()
    if r < 0.55:
        body = "".join(stmt(d + 1) for _ in range(random.randint(0, 3)))
        els = (ws() + tag("else") + stmt(d + 1)) if random.random() < 0.4 else ""
        cond = random.choice(["true", "false", "x", "i is odd"])
        return ws() + tag("if " + cond) + body + els + tag("endif") + ws()
    if r < 0.7:
        body = "".join(stmt(d + 1) for _ in range(random.randint(0, 3)))
        seq = random.choice(["[1, 2]", "range(3)", "[]"])
        return ws() + tag("for i in " + seq) + body + tag("endfor") + ws()
    if r < 0.8:
        return ws() + tag("set ns.v = ns.v ~ " + random.choice(["'q'", "x", "1"])) + ws()
    if r < 0.88:
        return (ws() + "{#" + random.choice(["", "-", "+"]) + random.choice(["c", " comment\n", ""]) +
                random.choice(["", "-", "+"]) + "#}" + ws())
    if r < 0.94:
        return ws() + tag("raw") + random.choice(["{{ x }}", " r\n", "{% if %}"]) + tag("endraw") + ws()
    body = "".join(stmt(d + 1) for _ in range(random.randint(0, 2)))
    name = "m%d" % d
    return ws() + tag("macro %s(a=1)" % name) + body + tag("endmacro") + var(name + "()") + ws()


def main(argv):
    kind, seed, n, out = argv[1], int(argv[2]), int(argv[3]), argv[4]
    random.seed(seed)
    cases = []
    for _ in range(n):
        if kind == "exprs":
            cases.append({"template": "{{ %s }}" % expr(), "vars": CTX})
        else:
            t = "{% set ns = namespace(v='') %}" + "".join(stmt() for _ in range(random.randint(1, 4))) + "{{ ns.v }}"
            cases.append({"template": t, "vars": {"x": 3}})
    with open(out, "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv)
