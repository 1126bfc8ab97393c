#!/usr/bin/python3
"""qwen3_ref.py - an independent numpy reference of the Qwen3 forward pass
(HF transformers semantics), used to check `axserve generate`.

Reads an HF checkpoint itself (config.json, safetensors single or sharded
via model.safetensors.index.json; F32/BF16/F16), runs the whole token
sequence at once in float64 (no KV cache: a causal mask over all
positions), and compares with the JSON printed by `axserve generate`:

  qwen3_ref.py MODEL_DIR GEN_JSON --prompt-ids 1,2,3 [--tol T]
      [--min-agree F] [--quiet]

The generated tokens are teacher-forced: at each step the reference's
log-softmax over the vocabulary is computed for the same prefix. Checks:
  * each of the top-K (id, logprob) pairs printed is within --tol of the
    reference's logprob for that id;
  * the printed top-K ids are the reference's top-K up to near-ties: no id
    left out has a reference logprob above the smallest printed one + tol;
  * the chosen token is the reference's argmax, or within tol of it
    (counted as agreement rate; --min-agree sets the floor, default 1.0;
    with --exact the floor applies to exact argmax agreement instead).
Prints the maximum error and the agreement rate; exits 1 on failure.
"""
import json
import os
import struct
import sys

import numpy as np


# ---- safetensors ------------------------------------------------------------
# File: u64 little-endian header length N, N bytes of JSON
# {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__"?},
# then the data; offsets are relative to the end of the header.

def read_safetensors(path, want):
    out = {}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
        for name, info in header.items():
            if name == "__metadata__" or name not in want:
                continue
            b, e = info["data_offsets"]
            f.seek(base + b)
            raw = f.read(e - b)
            dt = info["dtype"]
            if dt == "F32":
                a = np.frombuffer(raw, dtype="<f4")
            elif dt == "F16":
                a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
            elif dt == "BF16":
                u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
                a = u.view(np.float32)
            else:
                raise SystemExit("%s: tensor %s has dtype %s" % (path, name, dt))
            out[name] = a.reshape(info["shape"]).astype(np.float64)
    return out


def load_tensors(d, names):
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            wmap = json.load(f)["weight_map"]
        files = sorted(set(wmap[n] for n in names if n in wmap))
    else:
        files = ["model.safetensors"]
    t = {}
    for fn in files:
        t.update(read_safetensors(os.path.join(d, fn), set(names)))
    missing = [n for n in names if n not in t]
    if missing:
        raise SystemExit("missing tensors: %s" % missing[:3])
    return t


# ---- the model --------------------------------------------------------------

def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, pos, theta):
    # x: [T, heads, D]; rotate_half pairing i with i + D/2
    d = x.shape[-1]
    inv = theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    ang = np.outer(pos, inv)  # [T, D/2]
    cos = np.concatenate([np.cos(ang)] * 2, axis=-1)[:, None, :]
    sin = np.concatenate([np.sin(ang)] * 2, axis=-1)[:, None, :]
    rot = np.concatenate([-x[..., d // 2:], x[..., : d // 2]], axis=-1)
    return x * cos + rot * sin


def forward(cfg, W, ids):
    H = cfg["hidden_size"]
    NH, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    # transformers' Qwen3Config: head_dim defaults to 128 (not H // NH);
    # 5.x keeps rope_theta in rope_parameters
    D = cfg.get("head_dim") or 128
    theta = (cfg.get("rope_parameters") or {}).get("rope_theta", cfg.get("rope_theta", 10000.0))
    eps = cfg["rms_norm_eps"]
    T = len(ids)
    pos = np.arange(T, dtype=np.float64)
    x = W["model.embed_tokens.weight"][ids]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        h = rmsnorm(x, W[p + "input_layernorm.weight"], eps)
        q = (h @ W[p + "self_attn.q_proj.weight"].T).reshape(T, NH, D)
        k = (h @ W[p + "self_attn.k_proj.weight"].T).reshape(T, KV, D)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).reshape(T, KV, D)
        q = rope(rmsnorm(q, W[p + "self_attn.q_norm.weight"], eps), pos, theta)
        k = rope(rmsnorm(k, W[p + "self_attn.k_norm.weight"], eps), pos, theta)
        att = np.empty((T, NH, D))
        for hh in range(NH):
            kv = hh // (NH // KV)
            s = q[:, hh, :] @ k[:, kv, :].T / np.sqrt(D) + mask
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            att[:, hh, :] = s @ v[:, kv, :]
        x = x + att.reshape(T, NH * D) @ W[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, W[p + "post_attention_layernorm.weight"], eps)
        g = h @ W[p + "mlp.gate_proj.weight"].T
        u = h @ W[p + "mlp.up_proj.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ W[p + "mlp.down_proj.weight"].T
    x = rmsnorm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight" if cfg.get("tie_word_embeddings") else "lm_head.weight"]
    return x @ head.T


def tensor_names(cfg):
    n = ["model.embed_tokens.weight", "model.norm.weight"]
    if not cfg.get("tie_word_embeddings"):
        n.append("lm_head.weight")
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        n += [p + s for s in ("input_layernorm.weight", "post_attention_layernorm.weight",
                              "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                              "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                              "self_attn.q_norm.weight", "self_attn.k_norm.weight",
                              "mlp.gate_proj.weight", "mlp.up_proj.weight",
                              "mlp.down_proj.weight")]
    return n


# ---- comparison -------------------------------------------------------------

def main(argv):
    args = {"--tol": "2e-3", "--min-agree": "1.0", "--prompt-ids": None}
    pos = []
    quiet = False
    exact_rate = False
    i = 1
    while i < len(argv):
        if argv[i] == "--quiet":
            quiet = True
        elif argv[i] == "--exact":
            exact_rate = True
        elif argv[i] in args:
            args[argv[i]] = argv[i + 1]
            i += 1
        else:
            pos.append(argv[i])
        i += 1
    if len(pos) != 2 or not args["--prompt-ids"]:
        raise SystemExit(__doc__)
    mdir, gen_path = pos
    tol, min_agree = float(args["--tol"]), float(args["--min-agree"])
    quiet = quiet  # per-step lines are capped at 10 either way
    prompt = [int(t) for t in args["--prompt-ids"].split(",")]
    with open(gen_path) as f:
        gen = json.load(f)
    with open(os.path.join(mdir, "config.json")) as f:
        cfg = json.load(f)
    W = load_tensors(mdir, tensor_names(cfg))
    toks = gen["tokens"]
    if len(toks) != len(gen["top"]) or not toks:
        raise SystemExit("generate output: %d tokens, %d top lists" % (len(toks), len(gen["top"])))
    logits = forward(cfg, W, np.array(prompt + toks[:-1]))
    fails, max_err, agree, exact = 0, 0.0, 0, 0
    for step, (tok, top) in enumerate(zip(toks, gen["top"])):
        row = logits[len(prompt) - 1 + step]
        m = row.max()
        lp = row - (m + np.log(np.exp(row - m).sum()))
        for tid, tlp in top:
            err = abs(tlp - lp[tid])
            max_err = max(max_err, err)
            if err > tol:
                fails += 1
                if fails <= 10:
                    print("step %d: id %d logprob %.6f, reference %.6f" % (step, tid, tlp, lp[tid]))
        if top:
            printed = set(t for t, _ in top)
            floor = min(v for _, v in top)
            for rid in np.argsort(-lp)[: len(top)]:
                if rid not in printed and lp[rid] > floor + tol:
                    fails += 1
                    if fails <= 10:
                        print("step %d: reference top id %d (%.6f) missing" % (step, rid, lp[rid]))
        best = int(np.argmax(lp))
        exact += tok == best
        if tok == best or lp[tok] >= lp[best] - tol:
            agree += 1
    rate = agree / len(toks)
    print("%s: %d steps, max |logprob error| %.2e (tol %.1e), top-1 agreement %.3f exact, "
          "%.3f within tol (min %.3f)%s"
          % (os.path.basename(mdir.rstrip("/")), len(toks), max_err, tol, exact / len(toks), rate,
             min_agree, "" if fails == 0 else ", %d mismatches" % fails))
    if (exact / len(toks) if exact_rate else rate) < min_agree:
        fails += 1
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
