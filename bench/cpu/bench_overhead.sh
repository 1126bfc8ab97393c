#!/bin/sh
# bench_overhead.sh - the CPU backend's per-token cost outside the matrix
# kernels: a synthetic checkpoint with Qwen3-0.6B's depth (28 layers, so the
# same number of thread-pool jobs per token) but tiny matrices (hidden 128,
# intermediate 256, vocab 1000), whose arithmetic and weight reads take a
# few hundred microseconds per token. Decode time per token with 2 threads
# minus that with 1 thread is roughly what the pool's job hand-offs cost
# per token; compare it with the real model's time per token (bench_cpu.sh)
# to see what better scheduling could win. Best of 3 runs each; noisy when
# other work shares the cores.
set -eu
AX=${AX:-build/axserve}
M=build/bench-models/qwen3-depth-tiny
if [ ! -f "$M/config.json" ]; then
    $AX make-test-model "$M" --hidden 128 --layers 28 --heads 2 --kv-heads 1 --head-dim 64 \
        --intermediate 256 --vocab 1000 --tied 1 --dtype bf16 --seed 1 >/dev/null
fi
ids=$(seq 100 131 | paste -sd, -)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
printf '%-5s %3s %16s %15s\n' quant thr "prefill us/tok" "decode us/tok"
for q in none q4; do
    for t in 1 2; do
        for r in 1 2 3; do
            $AX generate -m "$M" --ids "$ids" -n 200 --top 1 --ignore-eos --quant $q \
                --threads $t --slots 1 --ctx 256 >"$T/out.$r" 2>/dev/null
        done
        /usr/bin/python3 - "$T" "$q" "$t" <<'PYEOF'
import json, sys
d, q, t = sys.argv[1], sys.argv[2], int(sys.argv[3])
g = [json.load(open("%s/out.%d" % (d, r)))["timings"] for r in (1, 2, 3)]
pre = min(x["prompt_ms"] / x["prompt_tokens"] for x in g) * 1e3
dec = min(x["decode_ms"] / x["decode_tokens"] for x in g) * 1e3
print("%-5s %3d %16.1f %15.1f" % ("bf16" if q == "none" else q, t, pre, dec))
PYEOF
    done
done
