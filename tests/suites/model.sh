#!/bin/sh
# model.sh - checks `axserve make-test-model` output with an independent
# reader: Debian python3 parses each safetensors header with struct + json,
# numpy checks dtypes, shapes and value ranges, and the tensor names are
# compared with the Hugging Face Qwen3 list written out below (not taken
# from our code). Also: sharded output and its index, determinism by seed,
# and that a non-synthetic directory is never overwritten.
set -eu
AX=${AXSERVE:-build/axserve}
PY=/usr/bin/python3
TOK=build/tokenizer-qwen3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check() { # dir
    $PY - "$1" <<'EOF'
import json, os, struct, sys
import numpy as np

d = sys.argv[1]
cfg = json.load(open(os.path.join(d, "config.json")))
gen = json.load(open(os.path.join(d, "generation_config.json")))
assert cfg["architectures"] == ["Qwen3ForCausalLM"] and cfg["model_type"] == "qwen3"
assert cfg["axserve_synthetic"] is True
assert gen["eos_token_id"] == [151645, 151643] and gen["top_k"] == 20
assert abs(gen["temperature"] - 0.6) < 1e-9 and abs(gen["top_p"] - 0.95) < 1e-9
H, I, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
NH, KV, D, V = (cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"],
                cfg["vocab_size"])
# The HF Qwen3ForCausalLM state dict (modeling_qwen3), with shapes.
want = {"model.embed_tokens.weight": (V, H), "model.norm.weight": (H,)}
for l in range(L):
    p = f"model.layers.{l}."
    want.update({
        p + "input_layernorm.weight": (H,), p + "post_attention_layernorm.weight": (H,),
        p + "self_attn.q_proj.weight": (NH * D, H), p + "self_attn.k_proj.weight": (KV * D, H),
        p + "self_attn.v_proj.weight": (KV * D, H), p + "self_attn.o_proj.weight": (H, NH * D),
        p + "self_attn.q_norm.weight": (D,), p + "self_attn.k_norm.weight": (D,),
        p + "mlp.gate_proj.weight": (I, H), p + "mlp.up_proj.weight": (I, H),
        p + "mlp.down_proj.weight": (H, I)})
if not cfg["tie_word_embeddings"]:
    want["lm_head.weight"] = (V, H)

idx = os.path.join(d, "model.safetensors.index.json")
if os.path.exists(idx):
    wm = json.load(open(idx))["weight_map"]
    files = sorted(set(wm.values()))
else:
    wm, files = None, ["model.safetensors"]

seen = {}
tdt = {"bfloat16": "BF16", "float32": "F32"}[cfg["torch_dtype"]]
for f in files:
    raw = open(os.path.join(d, f), "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    hdr = json.loads(raw[8:8 + n])
    hdr.pop("__metadata__", None)
    data = raw[8 + n:]
    end = 0
    for name, t in sorted(hdr.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = t["data_offsets"]
        assert b == end, (name, "gap or overlap")
        end = e
        assert t["dtype"] == tdt, (name, t["dtype"])
        es = 2 if tdt == "BF16" else 4
        assert e - b == int(np.prod(t["shape"])) * es, name
        if tdt == "BF16":
            a = (np.frombuffer(data[b:e], dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(data[b:e], dtype="<f4")
        a = a.reshape(t["shape"])
        assert np.all(np.isfinite(a)), name
        if name.endswith("norm.weight"):
            assert abs(a.mean() - 1.0) < 0.05 and a.std() < 0.2, (name, a.mean(), a.std())
        else:
            assert abs(a.std() - 0.02) < 0.004 and abs(a.mean()) < 0.01, (name, a.std())
        assert name not in seen, name
        seen[name] = tuple(t["shape"])
        if wm is not None:
            assert wm[name] == f, (name, wm[name], f)
    assert end == len(data), (f, "trailing bytes")
assert seen == want, (set(seen) ^ set(want))
if wm is not None:
    assert set(wm) == set(want)
print(f"{d}: {len(seen)} tensors in {len(files)} file(s) match the HF Qwen3 list, "
      f"dtype {tdt}, shapes from config, values finite with the intended scales")
EOF
}

echo "== default-shaped model (bf16, tied, vocab from the tokenizer)"
$AX make-test-model "$tmp/a" --tokenizer-from $TOK
check "$tmp/a"
$PY -c "import json,sys; c=json.load(open('$tmp/a/config.json')); \
assert (c['hidden_size'],c['num_hidden_layers'],c['num_attention_heads'],c['num_key_value_heads'],\
c['head_dim'],c['intermediate_size'],c['vocab_size'],c['tie_word_embeddings'])==(256,4,4,2,64,768,151936,True), c"
cmp "$tmp/a/tokenizer.json" $TOK/tokenizer.json
cmp "$tmp/a/tokenizer_config.json" $TOK/tokenizer_config.json
echo "defaults: hidden 256, 4 layers, 4/2 heads, head_dim 64, inter 768, vocab 151936; tokenizer copied"

echo "== f32, untied, 3 shards"
$AX make-test-model "$tmp/b" --tokenizer-from $TOK --hidden 64 --layers 3 --heads 4 --kv-heads 1 \
    --head-dim 32 --intermediate 96 --dtype f32 --tied 0 --shards 3 --seed 7
check "$tmp/b"
[ "$(ls "$tmp/b" | grep -c '^model-0000[123]-of-00003.safetensors$')" = 3 ]

echo "== same seed, same bytes; other seed, other bytes"
$AX make-test-model "$tmp/c" --vocab 1000 --hidden 32 --layers 1 --heads 2 --kv-heads 2 --head-dim 16 --intermediate 48 --seed 5 >/dev/null
$AX make-test-model "$tmp/d" --vocab 1000 --hidden 32 --layers 1 --heads 2 --kv-heads 2 --head-dim 16 --intermediate 48 --seed 5 >/dev/null
$AX make-test-model "$tmp/e" --vocab 1000 --hidden 32 --layers 1 --heads 2 --kv-heads 2 --head-dim 16 --intermediate 48 --seed 6 >/dev/null
cmp "$tmp/c/model.safetensors" "$tmp/d/model.safetensors"
if cmp -s "$tmp/c/model.safetensors" "$tmp/e/model.safetensors"; then
    echo "different seeds gave identical weights"; exit 1
fi
echo "seed 5 twice: identical; seed 6: different"

echo "== rewriting a synthetic dir works; a real model dir is refused"
$AX make-test-model "$tmp/c" --vocab 1000 --hidden 32 --layers 1 --heads 2 --kv-heads 2 --head-dim 16 --intermediate 48 --seed 6 >/dev/null
cmp "$tmp/c/model.safetensors" "$tmp/e/model.safetensors"
mkdir "$tmp/real"
echo '{"model_type": "qwen3"}' >"$tmp/real/config.json"
if $AX make-test-model "$tmp/real" --vocab 1000 >"$tmp/out" 2>&1; then
    echo "overwrote a non-synthetic directory"; exit 1
fi
grep -q "not a synthetic model" "$tmp/out"
[ "$(cat "$tmp/real/config.json")" = '{"model_type": "qwen3"}' ]
[ -z "$(ls "$tmp" | grep tmp-)" ] || { echo "temp dirs left behind"; exit 1; }
echo "replaced synthetic dir; refused $tmp/real and left it intact; no temp dirs left"

echo "== bad arguments are rejected"
for args in "--heads 3 --kv-heads 2" "--head-dim 63" "--dtype f16" "--layers 0" "--shards 0"; do
    # shellcheck disable=SC2086
    if $AX make-test-model "$tmp/bad" --vocab 1000 $args >/dev/null 2>&1; then
        echo "accepted: $args"; exit 1
    fi
done
[ ! -e "$tmp/bad" ]
echo "rejected: heads not a multiple of kv-heads, odd head_dim, f16, 0 layers, 0 shards"
echo "== commands on weights without a tokenizer: an error naming the dir and the fix"
for cmd in "serve --port 0" chat tokenize detokenize template; do
    # shellcheck disable=SC2086
    if $AX $cmd -m "$tmp/c" </dev/null >"$tmp/out" 2>&1; then
        echo "$cmd started without a tokenizer"; exit 1
    fi
    grep -q "$tmp/c has no tokenizer.json.*axserve pull" "$tmp/out" || { cat "$tmp/out"; exit 1; }
done
echo "serve, chat, tokenize, detokenize, template refuse $tmp/c (no tokenizer.json) with the fix"
echo "model suite: all checks passed"
