#!/usr/bin/python3
"""qwen3_ref.py HF_DIR IDS N - independent numpy reference (float64 math
over the checkpoint's bf16 weights, HF transformers semantics: RMSNorm,
q/k norm before rotate_half RoPE, GQA, causal softmax, SwiGLU, tied
lm_head). Greedy-decodes N tokens after the comma-separated prompt IDS and
prints {"tokens": [...], "lp": [...], "margin": [...]}: the chosen token,
its log-probability, and the gap to the runner-up (to tell real
disagreements from bf16 near-ties)."""
import json, struct, sys
import numpy as np

d, ids, n = sys.argv[1], [int(x) for x in sys.argv[2].split(",")], int(sys.argv[3])
cfg = json.load(open(d + "/config.json"))
raw = open(d + "/model.safetensors", "rb").read()
hl = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + hl])


def T(k):
    m = hdr[k]
    b = raw[8 + hl + m["data_offsets"][0]:8 + hl + m["data_offsets"][1]]
    assert m["dtype"] == "BF16"
    u = np.frombuffer(b, np.uint16).astype(np.uint32) << 16
    return u.view(np.float32).astype(np.float64).reshape(m["shape"])


H, NH, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
D, L = cfg["head_dim"], cfg["num_hidden_layers"]
eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
E = T("model.embed_tokens.weight")
names = ["input_layernorm", "post_attention_layernorm", "self_attn.q_norm", "self_attn.k_norm",
         "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
         "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
W = [{k: T(f"model.layers.{l}.{k}.weight") for k in names} for l in range(L)]
norm = T("model.norm.weight")
lm = E if cfg.get("tie_word_embeddings", True) else T("lm_head.weight")


def rms(x, w):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rope(x, pos):
    half = D // 2
    ang = pos[:, None] * theta ** (-np.arange(half) * 2 / D)[None]
    c, s = np.cos(ang)[:, None], np.sin(ang)[:, None]
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], -1)


def forward(toks):
    x = E[toks]
    n_t = len(toks)
    pos = np.arange(n_t, dtype=np.float64)
    causal = np.triu(np.full((n_t, n_t), -np.inf), 1)
    for w in W:
        h = rms(x, w["input_layernorm"])
        q = (h @ w["self_attn.q_proj"].T).reshape(n_t, NH, D)
        k = (h @ w["self_attn.k_proj"].T).reshape(n_t, KV, D)
        v = (h @ w["self_attn.v_proj"].T).reshape(n_t, KV, D)
        q = rope(rms(q, w["self_attn.q_norm"]), pos)
        k = rope(rms(k, w["self_attn.k_norm"]), pos)
        o = np.zeros((n_t, NH, D))
        for hh in range(NH):
            kh = hh // (NH // KV)
            s = q[:, hh] @ k[:, kh].T / np.sqrt(D) + causal
            p = np.exp(s - s.max(-1, keepdims=True))
            o[:, hh] = (p / p.sum(-1, keepdims=True)) @ v[:, kh]
        x = x + o.reshape(n_t, NH * D) @ w["self_attn.o_proj"].T
        h = rms(x, w["post_attention_layernorm"])
        g, u = h @ w["mlp.gate_proj"].T, h @ w["mlp.up_proj"].T
        x = x + ((g / (1 + np.exp(-g))) * u) @ w["mlp.down_proj"].T
    logits = rms(x[-1], norm) @ lm.T
    m = logits.max()
    return logits - m - np.log(np.exp(logits - m).sum())


toks, out, lps, margins = list(ids), [], [], []
for _ in range(n):
    lp = forward(toks)
    order = np.argsort(lp)[::-1]
    out.append(int(order[0]))
    lps.append(round(float(lp[order[0]]), 5))
    margins.append(round(float(lp[order[0]] - lp[order[1]]), 5))
    toks.append(int(order[0]))
print(json.dumps({"tokens": out, "lp": lps, "margin": margins}))
