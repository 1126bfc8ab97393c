#!/bin/sh
# cpu-reference.sh - the CPU backend against the independent numpy Qwen3
# reference (tests/ref/qwen3_ref.py) on synthetic checkpoints of several
# shapes: GQA, MHA and MQA; head_dim != hidden/heads; tied and untied;
# f32, bf16 and f16 tensors; one sharded. For each: greedy `axserve generate` with the
# top-5 log-probabilities, teacher-forced through the reference.
#   unquantised (f16 and f32 KV cache): top-5 logprobs within 2e-3, every
#     greedy token the reference's argmax (up to ties within 2e-3)
#   --quant q8: logprobs within 0.03, exact top-1 agreement >= 0.85
#   --quant q4: logprobs within 0.3,  exact top-1 agreement >= 0.5
#   --bf16-act (bf16 models; prefill with bf16-rounded activations):
#     logprobs within 5e-3, greedy tokens as unquantised; skipped when the
#     CPU lacks avx512_bf16
#   (measured: unquantised <= 3e-4, q8 <= 1e-2, q4 <= 0.14, bf16-act <= 1e-3)
# Plus: prefilling n tokens at once equals feeding them one by one
# (--prefill-chunk 1), one and two threads agree, and two cases run the
# ASan+UBSan binary. Prompts of 64 tokens and more prefill BF16 weights
# with the split products where the CPU has avx512_bf16 and avx512_vnni
# (kernels.h), else exactly from panels; the 150-token cases run both
# (--exact-prefill) and want them within 1e-4 of each other.
set -eu
AX=build/axserve
ASAN=build/asan/axserve
PY=/usr/bin/python3
REF=tests/ref/qwen3_ref.py
D=build/test-models/cpu-ref
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$D"

model() { # name args...
    name=$1
    shift
    [ -f "$D/$name/config.json" ] || $AX make-test-model "$D/$name" "$@" >/dev/null
}
model gqa-bf16-tied --hidden 128 --layers 2 --heads 4 --kv-heads 2 --head-dim 32 \
    --intermediate 256 --dtype bf16 --tied 1 --vocab 2048 --seed 1
model mha-f32-untied --hidden 96 --layers 3 --heads 3 --kv-heads 3 --head-dim 48 \
    --intermediate 160 --dtype f32 --tied 0 --vocab 1000 --seed 2
model gqa4-bf16-sharded --hidden 64 --layers 2 --heads 8 --kv-heads 2 --head-dim 16 \
    --intermediate 224 --dtype bf16 --tied 0 --vocab 1536 --seed 3 --shards 3
model mqa-f32-rect --hidden 160 --layers 2 --heads 4 --kv-heads 1 --head-dim 64 \
    --intermediate 352 --dtype f32 --tied 1 --vocab 3000 --seed 4
# F16 tensors: the untied f32 model with every tensor rewritten as F16
[ -f "$D/mha-f16-untied/config.json" ] ||
    $PY tests/ref/to_f16.py "$D/mha-f32-untied" "$D/mha-f16-untied"

P=5,17,300,42,7,99,1,3,900,8,9,10,11,12,13,14,15,16,17,18,19,20
N=24
fail=0

refcheck() { # label model-dir json prompt-ids refargs...
    label=$1 dir=$2 j=$3 ids=$4
    shift 4
    if out=$($PY $REF "$dir" "$j" --prompt-ids "$ids" "$@"); then
        echo "ok   $label: $(echo "$out" | tail -n 1)"
    else
        echo "FAIL $label:"
        echo "$out" | sed 's/^/     /'
        fail=1
    fi
}

check() { # label model json refargs...
    label=$1 m=$2 j=$3
    shift 3
    refcheck "$label" "$D/$m" "$j" $P "$@"
}

same() { # label a.json b.json: same tokens, logprobs within 1e-4
    if $PY - "$2" "$3" <<'PYEOF'; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["tokens"] == b["tokens"], (a["tokens"], b["tokens"])
for ta, tb in zip(a["top"], b["top"]):
    for (ia, la), (ib, lb) in zip(ta, tb):
        assert abs(la - lb) <= 1e-4, (ia, la, ib, lb)
PYEOF
}

gen() { # out model args...
    o=$1 m=$2
    shift 2
    $AX generate -m "$D/$m" --ids $P -n $N --top 5 --ignore-eos "$@" >"$o" 2>"$o.log" ||
        { echo "FAIL generate $m $*"; cat "$o.log"; fail=1; }
}

for m in gqa-bf16-tied mha-f32-untied gqa4-bf16-sharded mqa-f32-rect mha-f16-untied; do
    gen "$T/$m.json" $m --threads 2
    check "$m kv f16" $m "$T/$m.json"
    gen "$T/$m.f32.json" $m --kv f32 --threads 1
    check "$m kv f32, 1 thread" $m "$T/$m.f32.json"
    gen "$T/$m.c1.json" $m --prefill-chunk 1
    same "$m prefill of ${P%%,*}.. at once == one token at a time" "$T/$m.json" "$T/$m.c1.json"
    gen "$T/$m.t1.json" $m --threads 1
    same "$m 1 thread == 2 threads" "$T/$m.json" "$T/$m.t1.json"
    gen "$T/$m.q8.json" $m --quant q8
    check "$m q8" $m "$T/$m.q8.json" --tol 0.03 --min-agree 0.85 --exact
    gen "$T/$m.q4.json" $m --quant q4
    check "$m q4" $m "$T/$m.q4.json" --tol 0.3 --min-agree 0.5 --exact
done

# a prompt of 150 tokens: BF16 prefill from activation panels (from 64
# tokens on, where the CPU has them): two full token groups and a tail
P150=$($PY -c 'print(",".join(str((i * 37 + 11) % 1000) for i in range(150)))')
for m in gqa-bf16-tied gqa4-bf16-sharded; do
    $AX generate -m "$D/$m" --ids $P150 -n 6 --top 5 --ignore-eos --threads 2 >"$T/$m.long.json" \
        2>/dev/null || { echo "FAIL generate $m 150-token prompt"; fail=1; }
    refcheck "$m 150-token prompt" "$D/$m" "$T/$m.long.json" $P150
    $AX generate -m "$D/$m" --ids $P150 -n 6 --top 5 --ignore-eos --prefill-chunk 1 \
        >"$T/$m.long1.json" 2>/dev/null || { echo "FAIL generate $m one by one"; fail=1; }
    same "$m 150-token prefill at once == one token at a time" "$T/$m.long.json" "$T/$m.long1.json"
    # three threads split each product into other (tapered) chunks
    $AX generate -m "$D/$m" --ids $P150 -n 6 --top 5 --ignore-eos --threads 3 >"$T/$m.long3.json" \
        2>/dev/null || { echo "FAIL generate $m 3 threads"; fail=1; }
    same "$m 150-token prefill, 3 threads == 2 threads" "$T/$m.long.json" "$T/$m.long3.json"
    $AX generate -m "$D/$m" --ids $P150 -n 6 --top 5 --ignore-eos --threads 2 --exact-prefill \
        >"$T/$m.longx.json" 2>/dev/null || { echo "FAIL generate $m --exact-prefill"; fail=1; }
    refcheck "$m 150-token prompt, --exact-prefill" "$D/$m" "$T/$m.longx.json" $P150
    same "$m 150-token prefill: split products == exact ones" "$T/$m.long.json" "$T/$m.longx.json"
done
# where the CPU has them, the split products are the default
if grep -qw avx512_bf16 /proc/cpuinfo && grep -qw avx512_vnni /proc/cpuinfo; then
    m=gqa-bf16-tied
    $AX generate -m "$D/$m" --ids $P -n 1 2>&1 >/dev/null | grep -q "split prefill products" &&
        echo "ok   split prefill products on by default" ||
        { echo "FAIL split prefill products not on by default"; fail=1; }
fi

# --bf16-act: the 22-token prompt is prefilled by the AVX512-BF16 kernel
# (decode stays exact); the log must say the mode is on
if grep -qw avx512_bf16 /proc/cpuinfo; then
    for m in gqa-bf16-tied gqa4-bf16-sharded; do
        gen "$T/$m.bf.json" $m --bf16-act --threads 2
        if grep -q "bf16 activations on" "$T/$m.bf.json.log"; then
            check "$m --bf16-act" $m "$T/$m.bf.json" --tol 5e-3
        else
            echo "FAIL $m --bf16-act: mode not on"
            cat "$T/$m.bf.json.log"
            fail=1
        fi
    done
else
    echo "skip --bf16-act cases: CPU lacks avx512_bf16"
fi

if [ -x $ASAN ]; then
    m=gqa4-bf16-sharded
    $ASAN generate -m "$D/$m" --ids $P -n 6 --top 5 --ignore-eos --prefill-chunk 5 \
        >"$T/asan.json" 2>"$T/asan.log" || { echo "FAIL asan generate"; cat "$T/asan.log"; fail=1; }
    check "$m under ASan+UBSan" $m "$T/asan.json"
    $ASAN generate -m "$D/$m" --ids $P -n 4 --quant q4 --kv f32 >"$T/asan4.json" \
        2>"$T/asan4.log" || { echo "FAIL asan generate q4"; cat "$T/asan4.log"; fail=1; }
    # 150 tokens: panels (split or exact, whichever this CPU runs), 3 threads
    $ASAN generate -m "$D/$m" --ids $P150 -n 2 --top 5 --ignore-eos --threads 3 >"$T/asan150.json" \
        2>"$T/asan150.log" || { echo "FAIL asan generate 150 tokens"; cat "$T/asan150.log"; fail=1; }
    refcheck "$m 150-token prompt under ASan+UBSan" "$D/$m" "$T/asan150.json" $P150
else
    echo "skip ASan case: $ASAN not built"
fi

# generation stops at an end-of-sequence token from generation_config.json
# (kept in the output) unless --ignore-eos: make the first greedy token
# that is new after step 0 an EOS; the run must end right there
m=mha-f32-untied
cp -r "$D/$m" "$T/eos"
set -- $($PY -c '
import json, sys
t = json.load(open(sys.argv[1]))["tokens"]
i = next(i for i in range(1, len(t)) if t[i] not in t[:i])
print(t[i], i + 1)' "$T/$m.json")
eos=$1 want=$2
$PY - "$T/eos/generation_config.json" "$eos" <<'PYEOF'
import json, sys
p = sys.argv[1]
g = json.load(open(p))
g["eos_token_id"] = [int(sys.argv[2]), 7]
json.dump(g, open(p, "w"))
PYEOF
n=$($AX generate -m "$T/eos" --ids $P -n $N 2>/dev/null |
    $PY -c 'import json,sys; print(len(json.load(sys.stdin)["tokens"]))')
n2=$($AX generate -m "$T/eos" --ids $P -n $N --ignore-eos 2>/dev/null |
    $PY -c 'import json,sys; print(len(json.load(sys.stdin)["tokens"]))')
if [ "$n" = "$want" ] && [ "$n2" = $N ]; then
    echo "ok   stops after EOS $eos ($want tokens; $N with --ignore-eos)"
else
    echo "FAIL EOS $eos: $n tokens (want $want), $n2 with --ignore-eos"
    fail=1
fi

# --prompt TEXT goes through the model's tokenizer: same as --ids of
# `axserve tokenize` (HF-checked by the tok suites)
DM=build/models/default
if [ -f "$DM/tokenizer.json" ]; then
    ids=$(printf 'The capital of France is' | $AX tokenize -m "$DM" | tr -d '[] \n')
    $AX generate -m "$DM" --prompt 'The capital of France is' -n 3 >"$T/p1.json" 2>/dev/null &&
        $AX generate -m "$DM" --ids "$ids" -n 3 >"$T/p2.json" 2>/dev/null ||
        { echo "FAIL generate --prompt"; fail=1; }
    same "--prompt == --ids $ids" "$T/p1.json" "$T/p2.json"
else
    echo "skip --prompt case: $DM not built"
fi

# config.json as other writers leave it: without head_dim (the weights'
# q_norm length decides; the reference takes transformers' default, 128)
# and with transformers 5.x's rope_parameters instead of rope_theta
model hd128-bf16 --hidden 64 --layers 2 --heads 2 --kv-heads 1 --head-dim 128 \
    --intermediate 96 --dtype bf16 --tied 1 --vocab 1024 --seed 5
edit_config() { # src dst python-statements-on-c
    rm -rf "$2"
    cp -r "$D/$1" "$2"
    $PY - "$2/config.json" "$3" <<'PYEOF'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
exec(sys.argv[2])
json.dump(c, open(p, "w"))
PYEOF
}
edit_config hd128-bf16 "$T/nohd" 'del c["head_dim"]'
gen "$T/nohd.json" hd128-bf16
$AX generate -m "$T/nohd" --ids $P -n $N --top 5 --ignore-eos >"$T/nohd2.json" 2>"$T/nohd2.log" ||
    { echo "FAIL generate without head_dim"; cat "$T/nohd2.log"; fail=1; }
same "no head_dim (128 != hidden/heads) == head_dim 128" "$T/nohd.json" "$T/nohd2.json"
refcheck "no head_dim against the reference" "$T/nohd" "$T/nohd2.json" $P
edit_config gqa-bf16-tied "$T/nohd32" 'del c["head_dim"]'
$AX generate -m "$T/nohd32" --ids $P -n $N --top 5 --ignore-eos >"$T/nohd32.json" 2>/dev/null ||
    { echo "FAIL generate without head_dim (32)"; fail=1; }
same "no head_dim (32 = hidden/heads) == head_dim 32" "$T/gqa-bf16-tied.json" "$T/nohd32.json"
edit_config mha-f32-untied "$T/rp" \
    'c["rope_parameters"] = {"rope_type": "default", "rope_theta": 5000.0}; del c["rope_theta"]; c.pop("rope_scaling", None)'
$AX generate -m "$T/rp" --ids $P -n $N --top 5 --ignore-eos --threads 2 >"$T/rp.json" 2>"$T/rp.log" ||
    { echo "FAIL generate with rope_parameters"; cat "$T/rp.log"; fail=1; }
refcheck "rope_parameters.rope_theta 5000 against the reference" "$T/rp" "$T/rp.json" $P
for bad in 'c["rope_parameters"] = {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e6}' \
    'c["rope_scaling"] = {"type": "linear", "factor": 2.0}' \
    'c["rope_parameters"] = {"rope_theta": 123.0}'; do
    edit_config mha-f32-untied "$T/badrope" "$bad"
    if $AX generate -m "$T/badrope" --ids 1,2 -n 1 >/dev/null 2>"$T/badrope.err"; then
        echo "FAIL generate accepted config.json with: $bad"
        fail=1
    elif grep -q "config.json" "$T/badrope.err" && grep -q "rope" "$T/badrope.err"; then
        echo "ok   rejects $bad: $(grep -o 'config.json.*' "$T/badrope.err" | head -c 150)"
    else
        echo "FAIL $bad: unclear message"
        cat "$T/badrope.err"
        fail=1
    fi
done

# bad inputs are clean errors, not crashes
for bad in "--ids 5,99999" "--ids 1,x" "--ids 1 --quant q5" "--ids 1 --kv f8" "--ids 1 --ctx 10 -n 20"; do
    # shellcheck disable=SC2086
    if $AX generate -m "$D/gqa-bf16-tied" $bad >"$T/bad.out" 2>"$T/bad.err"; then
        echo "FAIL generate $bad succeeded"
        fail=1
    elif ! grep -q "axserve generate" "$T/bad.err"; then
        echo "FAIL generate $bad: no message"
        fail=1
    else
        echo "ok   rejects $bad: $(grep "axserve generate" "$T/bad.err" | head -c 150)"
    fi
done
exit $fail
