#!/usr/bin/python3
"""mk_hf.py OUT_DIR LAYERS - writes a small random Qwen3 HF checkpoint
(config.json + bf16 model.safetensors, tied embeddings) with numpy only.
Shapes are Qwen3-like in miniature: q/o rectangular (heads*head_dim !=
hidden), GQA 2:1. Deterministic (seed 1)."""
import json, os, struct, sys
import numpy as np

out, L = sys.argv[1], int(sys.argv[2])
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(1)
H, I, NH, KV, D, V = 64, 128, 4, 2, 32, 300
cfg = dict(hidden_size=H, intermediate_size=I, num_hidden_layers=L, num_attention_heads=NH,
           num_key_value_heads=KV, head_dim=D, vocab_size=V, rope_theta=1e6, rms_norm_eps=1e-6,
           tie_word_embeddings=True, max_position_embeddings=4096,
           architectures=["Qwen3ForCausalLM"], model_type="qwen3", torch_dtype="bfloat16")
json.dump(cfg, open(out + "/config.json", "w"))


def bf16(a):
    u = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


t = {"model.embed_tokens.weight": rng.normal(0, 0.3, (V, H))}
for l in range(L):
    p = f"model.layers.{l}."
    t[p + "input_layernorm.weight"] = 1 + 0.1 * rng.normal(size=H)
    t[p + "post_attention_layernorm.weight"] = 1 + 0.1 * rng.normal(size=H)
    t[p + "self_attn.q_norm.weight"] = 1 + 0.1 * rng.normal(size=D)
    t[p + "self_attn.k_norm.weight"] = 1 + 0.1 * rng.normal(size=D)
    t[p + "self_attn.q_proj.weight"] = rng.normal(0, 0.2, (NH * D, H))
    t[p + "self_attn.k_proj.weight"] = rng.normal(0, 0.2, (KV * D, H))
    t[p + "self_attn.v_proj.weight"] = rng.normal(0, 0.2, (KV * D, H))
    t[p + "self_attn.o_proj.weight"] = rng.normal(0, 0.1, (H, NH * D))
    t[p + "mlp.gate_proj.weight"] = rng.normal(0, 0.15, (I, H))
    t[p + "mlp.up_proj.weight"] = rng.normal(0, 0.15, (I, H))
    t[p + "mlp.down_proj.weight"] = rng.normal(0, 0.1, (H, I))
t["model.norm.weight"] = 1 + 0.1 * rng.normal(size=H)
hdr, blobs, off = {}, [], 0
for k, v in t.items():
    b = bf16(v).tobytes()
    hdr[k] = dict(dtype="BF16", shape=list(v.shape), data_offsets=[off, off + len(b)])
    off += len(b)
    blobs.append(b)
h = json.dumps(hdr).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(out + "/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h)))
    f.write(h)
    for b in blobs:
        f.write(b)
