#!/bin/sh
# run.sh BUILD - `make bench-axcl`: makes two synthetic models with the
# layer counts of Qwen3-0.6B (28) and Qwen3-4B (36) (tiny widths: the
# modelled figures come from call counts, not emulator wall time),
# compiles them for the AXCL emulator with the vendor's shape groups
# (prefill 128, histories 1,256,512, kv 1023) and runs bench_axcl on each
# with the Pi 5 link model from the facts (0.15 ms per call; 1.8 / 6.6 ms
# per layer; post 1.5 ms). Extra arguments go to bench_axcl (e.g.
# BENCH_ARGS="--lat-us 200 --mbps 400").
set -eu
B=${1:-build}
D=$B/bench-axcl
mkdir -p "$D"
export AXSERVE_AXCL_LIB=$B/libaxcl_emu.so
for L in 28 36; do
    if [ ! -f "$D/emu$L/config.json" ]; then
        /usr/bin/python3 tests/axcl/mk_hf.py "$D/hf$L" $L
        $B/axserve emu-compile "$D/hf$L" "$D/emu$L" --prefill 128 --history 1,256,512 \
            --kv 1023 2>/dev/null
    fi
done
# shellcheck disable=SC2086
$B/bench/bench_axcl "$D/emu28" "Qwen3-0.6B depth" 1800 ${BENCH_ARGS:-} 2>/dev/null
# shellcheck disable=SC2086
$B/bench/bench_axcl "$D/emu36" "Qwen3-4B depth" 6600 ${BENCH_ARGS:-} 2>/dev/null
