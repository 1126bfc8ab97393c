#!/usr/bin/python3
"""Reference renderer for axserve's chat templates: Python Jinja2 set up the
way transformers sets it up (ImmutableSandboxedEnvironment, trim_blocks,
lstrip_blocks, loopcontrols, its own tojson filter, raise_exception,
strftime_now), plus the request normalisation axserve documents in
src/chat/template.h, written here independently.

  jinja_oracle.py bundle FILE...                 concatenates JSON arrays/objects into one array
  jinja_oracle.py model CONFIG REQS OURS         compares OURS (axserve template --batch output)
  jinja_oracle.py jinja TEMPLATE VARS OURS       same for a bare template and variable sets
  jinja_oracle.py cases CASES OURS               same for [{"template": T, "vars": {...}}, ...]
  jinja_oracle.py templates T.jinja...           cases from template files and their T.json variable sets

Exit status 1 on any difference. Errors compare by presence only."""
import copy
import json
import sys
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.exceptions import TemplateError
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationTag(Extension):
    """transformers' {% generation %} block, outside assistant-mask mode: the body as is."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


TOKEN_KEYS = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]


def token_text(v):
    return v["content"] if isinstance(v, dict) else v


def load_config(path, env):
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    special = {}
    for k in TOKEN_KEYS:
        v = cfg.get(k)
        if v is not None and token_text(v):
            special[k] = token_text(v)
    extra = cfg.get("additional_special_tokens")
    if extra:
        special["additional_special_tokens"] = [token_text(v) for v in extra]
    ct = cfg["chat_template"]
    if isinstance(ct, str):
        templates = {"default": ct}
    else:
        templates = {t["name"]: t["template"] for t in ct}
    compiled = {}

    def get(name):
        if name not in compiled:
            compiled[name] = env.from_string(templates[name])
        return compiled[name]

    return special, templates, get


def normalise(req):
    """Validates and normalises a request the way axserve documents it."""
    if not isinstance(req, dict):
        raise ValueError("request must be an object")
    msgs = req.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise ValueError("messages must be a non-empty array")
    out = []
    for m in copy.deepcopy(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ValueError("bad message")
        c = m.get("content")
        if c is None:
            m["content"] = ""
        elif isinstance(c, list):
            texts = []
            for p in c:
                if not isinstance(p, dict) or p.get("type") != "text" or not isinstance(p.get("text"), str):
                    raise ValueError("only text parts")
                texts.append(p["text"])
            m["content"] = "\n".join(texts)
        elif not isinstance(c, str):
            raise ValueError("bad content")
        tcs = m.get("tool_calls")
        if tcs is not None:
            if not isinstance(tcs, list):
                raise ValueError("bad tool_calls")
            for tc in tcs:
                if not isinstance(tc, dict):
                    raise ValueError("bad tool call")
                fn = tc.get("function")
                if fn is not None and not isinstance(fn, dict):
                    raise ValueError("bad function")
                if fn is not None and "arguments" in fn and not isinstance(fn["arguments"], (str, dict)):
                    raise ValueError("bad arguments")
        out.append(m)
    tools = req.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise ValueError("tools must be an array")
    agp = req.get("add_generation_prompt", True)
    if not isinstance(agp, bool):
        raise ValueError("add_generation_prompt must be a bool")
    kw = req.get("chat_template_kwargs")
    if kw is None:
        kw = {}
    if not isinstance(kw, dict):
        raise ValueError("chat_template_kwargs must be an object")
    for r in ("messages", "tools", "documents", "add_generation_prompt"):
        if r in kw:
            raise ValueError("reserved kwarg")
    return out, tools, agp, kw


def render_request(special, templates, get, req):
    msgs, tools, agp, kw = normalise(req)
    if tools is not None and "tool_use" in templates:
        tmpl = get("tool_use")
    elif "default" in templates:
        tmpl = get("default")
    else:
        tmpl = get("tool_use")
    kwargs = {**special, **kw}
    return tmpl.render(messages=msgs, tools=tools, documents=None, add_generation_prompt=agp, **kwargs)


def case_label(label, inp, i):
    if isinstance(inp, dict) and "name" in inp:
        return "%s (%s)" % (label, inp["name"])
    return "%s[%d]" % (label, i)


def compare(label, inputs, ours, render):
    if len(inputs) != len(ours):
        print(f"{label}: {len(inputs)} inputs but {len(ours)} results")
        return 1
    bad = 0
    for i, (inp, got) in enumerate(zip(inputs, ours)):
        try:
            want = render(inp)
            want_err = None
        except Exception as e:  # template errors, validation errors, sandbox errors
            want, want_err = None, f"{type(e).__name__}: {e}"
        got_err = got.get("error") if isinstance(got, dict) else None
        if want_err is not None or got_err is not None:
            if (want_err is None) != (got_err is None):
                bad += 1
                print(f"FAIL {case_label(label, inp, i)}: jinja2 {'error ' + want_err if want_err else 'rendered'}; "
                      f"axserve {'error ' + got_err if got_err else 'rendered'}")
                if want is not None:
                    print("  jinja2:  " + repr(want)[:600])
                if not got_err:
                    print("  axserve: " + repr(got)[:600])
            continue
        if want != got:
            bad += 1
            k = next((j for j in range(min(len(want), len(got))) if want[j] != got[j]), min(len(want), len(got)))
            print(f"FAIL {case_label(label, inp, i)}: first difference at char {k}")
            print("  jinja2:  " + repr(want[max(0, k - 80):k + 120]))
            print("  axserve: " + repr(got[max(0, k - 80):k + 120]))
    print(f"{label}: {len(inputs) - bad}/{len(inputs)} identical to Jinja2 {jinja2.__version__}")
    return 1 if bad else 0


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def main(argv):
    if len(argv) >= 2 and argv[1] == "bundle":
        items = []
        for p in argv[2:]:
            v = load(p)
            items.extend(v if isinstance(v, list) else [v])
        json.dump(items, sys.stdout, ensure_ascii=True)
        return 0
    if len(argv) >= 2 and argv[1] == "templates":
        cases = []
        for p in argv[2:]:
            with open(p, encoding="utf-8", newline="") as f:
                src = f.read()
            sets = load(p[:-len(".jinja")] + ".json")
            for k, v in enumerate(sets):
                cases.append({"name": "%s[%d]" % (p, k), "template": src, "vars": v})
        json.dump(cases, sys.stdout, ensure_ascii=True)
        return 0
    if len(argv) == 5 and argv[1] == "model":
        env = make_env()
        special, templates, get = load_config(argv[2], env)
        return compare(argv[2], load(argv[3]), load(argv[4]), lambda r: render_request(special, templates, get, r))
    if len(argv) == 5 and argv[1] == "jinja":
        env = make_env()
        with open(argv[2], encoding="utf-8", newline="") as f:
            src = f.read()
        holder = {}

        def render(vars_):
            if "t" not in holder:
                holder["t"] = env.from_string(src)
            if not isinstance(vars_, dict):
                raise ValueError("variables must be an object")
            return holder["t"].render(**vars_)

        return compare(argv[2], load(argv[3]), load(argv[4]), render)
    if len(argv) == 4 and argv[1] == "cases":
        env = make_env()
        return compare(argv[2], load(argv[2]), load(argv[3]),
                       lambda c: env.from_string(c["template"]).render(**c["vars"]))
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
