#!/bin/sh
# bench_cpu.sh - CPU backend throughput on a synthetic checkpoint with the
# exact Qwen3-0.6B shape (hidden 1024, 28 layers, 16/8 heads, head_dim 128,
# intermediate 3072, vocab 151936, tied, bf16). For bf16 (as stored), q8
# and q4, with 1 and 2 threads: prefill tok/s (128-token prompt), decode
# tok/s (64 tokens, --ignore-eos), peak RSS, and decode as a fraction of
# the memory-bandwidth bound: read bandwidth (measured here, same thread
# count) / bytes of weights read per token (logged by the backend; includes
# the 151936 x 1024 lm_head). Noisy when other work shares the cores.
set -eu
AX=${AX:-build/axserve}
BW=${BW:-build/bench/membw}
M=build/bench-models/qwen3-0.6b-shape
if [ ! -f "$M/config.json" ]; then
    echo "writing $M (about 1.2 GB) ..."
    $AX make-test-model "$M" --hidden 1024 --layers 28 --heads 16 --kv-heads 8 --head-dim 128 \
        --intermediate 3072 --vocab 151936 --tied 1 --dtype bf16 --seed 1 >/dev/null
fi
ids=$(seq 1000 1127 | paste -sd, -)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
$BW 2 1024 >"$T/bw"
echo "read bandwidth (GB/s, best of 5 over 1 GiB): $(tr '\n' ' ' <"$T/bw")"
printf '%-5s %3s %11s %10s %9s %10s %9s %8s\n' quant thr "prefill t/s" "decode t/s" \
    "MiB/tok" "bound t/s" "of bound" "RSS MiB"
for q in none q8 q4; do
    for t in 1 2; do
        /usr/bin/time -f "%M" -o "$T/rss" $AX generate -m "$M" --ids "$ids" -n 65 --top 1 \
            --ignore-eos --quant $q --threads $t --slots 1 --ctx 256 >"$T/out" 2>"$T/err"
        /usr/bin/python3 - "$T" "$q" "$t" <<'PYEOF'
import json, re, sys
d, q, t = sys.argv[1], sys.argv[2], int(sys.argv[3])
g = json.load(open(d + "/out"))["timings"]
mib = float(re.search(r"\(([0-9.]+) MiB read per token\)", open(d + "/err").read()).group(1))
bw = dict(l.split() for l in open(d + "/bw"))[str(t)]
rss = int(open(d + "/rss").read().split()[-1]) / 1024
pre = g["prompt_tokens"] / g["prompt_ms"] * 1e3
dec = g["decode_tokens"] / g["decode_ms"] * 1e3
bound = float(bw) * 1e9 / (mib * 1048576)
print("%-5s %3d %11.1f %10.2f %9.1f %10.2f %8.0f%% %8.0f" % (
    "bf16" if q == "none" else q, t, pre, dec, mib, bound, 100 * dec / bound, rss))
PYEOF
    done
done
echo "(KV cache for --ctx 256, 1 slot, f16: 28 MiB, written at load)"
