#!/bin/sh
# bench_cpu.sh - CPU backend throughput on a synthetic checkpoint with the
# exact Qwen3-0.6B shape (hidden 1024, 28 layers, 16/8 heads, head_dim 128,
# intermediate 3072, vocab 151936, tied, bf16). For bf16 (as stored; prefill
# by the split products where the CPU has AVX512_BF16 and VNNI), bf16 with
# --exact-prefill (f32 FMAs) and with --bf16-act (the numerics llama.cpp
# uses for BF16 weights; where the CPU has AVX512_BF16), q8 and q4, with
# 1 and 2 threads: prefill tok/s
# (128-token prompt), decode tok/s (64 tokens, --ignore-eos), peak RSS, and decode as a fraction of
# the memory-bandwidth bound: read bandwidth (measured here, same thread
# count) / bytes of weights read per token (logged by the backend; includes
# the 151936 x 1024 lm_head). Noisy when other work shares the cores:
# each row is the median of RUNS (default 3) runs.
set -eu
AX=${AX:-build/axserve}
BW=${BW:-build/bench/membw}
RUNS=${RUNS:-3}
M=build/bench-models/qwen3-0.6b-shape
if [ ! -f "$M/config.json" ]; then
    echo "writing $M (about 1.2 GB) ..."
    $AX make-test-model "$M" --hidden 1024 --layers 28 --heads 16 --kv-heads 8 --head-dim 128 \
        --intermediate 3072 --vocab 151936 --tied 1 --dtype bf16 --seed 1 >/dev/null
fi
# Start from the file's pages out of the page cache, as after a reboot:
# the first load then reads it in as the loader asks (huge pages where the
# kernel can), whatever wrote it before. Later runs share that state.
for f in "$M"/*.safetensors; do
    dd if="$f" iflag=nocache count=0 status=none 2>/dev/null || true
done
ids=$(seq 1000 1127 | paste -sd, -)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
echo "prefill and decode: medians of $RUNS runs (RUNS=n to change); read GB/s: best of 5 passes"
echo "over 1 GiB just before each row's runs; last column: the decode range"
printf '%-5s %3s %11s %10s %9s %7s %10s %9s %8s   %s\n' quant thr "prefill t/s" "decode t/s" \
    "MiB/tok" "read GB/s" "bound t/s" "of bound" "RSS MiB" "decode min-max"
for q in none exact bf16act q8 q4; do
    qa="--quant $q"
    if [ $q = exact ]; then
        grep -qw avx512_vnni /proc/cpuinfo 2>/dev/null || continue
        grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null || continue
        qa="--quant none --exact-prefill"
    fi
    if [ $q = bf16act ]; then
        grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null || continue
        qa="--quant none --bf16-act"
    fi
    for t in 1 2; do
        # the bandwidth right before this configuration's runs: other work on
        # a shared machine moves it from minute to minute
        $BW $t 1024 >"$T/bw"
        i=0
        while [ $i -lt "$RUNS" ]; do
            /usr/bin/time -f "%M" -o "$T/rss.$i" $AX generate -m "$M" --ids "$ids" -n 65 --top 1 \
                --ignore-eos $qa --threads $t --slots 1 --ctx 256 >"$T/out.$i" 2>"$T/err.$i"
            i=$((i + 1))
        done
        /usr/bin/python3 - "$T" "$q" "$t" "$RUNS" <<'PYEOF'
import json, re, statistics, sys
d, q, t, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
pre, dec, rss = [], [], []
for i in range(runs):
    g = json.load(open("%s/out.%d" % (d, i)))["timings"]
    pre.append(g["prompt_tokens"] / g["prompt_ms"] * 1e3)
    dec.append(g["decode_tokens"] / g["decode_ms"] * 1e3)
    rss.append(int(open("%s/rss.%d" % (d, i)).read().split()[-1]) / 1024)
mib = float(re.search(r"\(([0-9.]+) MiB read per token\)", open(d + "/err.0").read()).group(1))
bw = dict(l.split() for l in open(d + "/bw"))[str(t)]
bound = float(bw) * 1e9 / (mib * 1048576)
p, m = statistics.median(pre), statistics.median(dec)
print("%-5s %3d %11.1f %10.2f %9.1f %9.1f %10.2f %8.0f%% %8.0f   %.1f-%.1f" % (
    {"none": "bf16", "exact": "bf16x", "bf16act": "bf16a"}.get(q, q), t, p, m, mib, float(bw), bound, 100 * m / bound, max(rss),
    min(dec), max(dec)))
PYEOF
    done
done
echo "(KV cache for --ctx 256, 1 slot, f16: 28 MiB, written at load)"
echo "bf16: prefill by split products where the CPU has AVX512_BF16 and VNNI (bf16 + int8"
echo "dot products of each activation's bf16 part and rest); bf16x: the same weights with"
echo "--exact-prefill (f32 FMAs), shown only where the two differ"
echo "bf16a: BF16 weights with prefill activations rounded to bf16 (--bf16-act, llama.cpp's"
echo "numerics for BF16; only on CPUs with AVX512_BF16); decode is bf16's"
