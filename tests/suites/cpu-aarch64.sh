#!/bin/sh
# cpu-aarch64.sh - the CPU kernels built for AArch64 with the Debian cross
# compiler and checked under qemu-user: every NEON variant against the
# scalar reference (tests/unit/kern_checks.h). Runs twice: -cpu max (has
# the dot-product extension, so the SDOT variant runs and is chosen) and
# -cpu cortex-a53 (ARMv8.0: the probe must fall back to plain NEON).
set -eu
make --no-print-directory cpu-aarch64 >/dev/null
bin=build/aarch64/kern_test
echo "== qemu-aarch64 -cpu max"
out=$(qemu-aarch64 -cpu max "$bin")
echo "$out"
echo "$out" | grep -q "^variant neon+dotprod vs reference: 0 failures"
echo "$out" | grep -q "^chosen at start-up: neon+dotprod"
echo "== qemu-aarch64 -cpu cortex-a53"
out=$(qemu-aarch64 -cpu cortex-a53 "$bin")
echo "$out"
echo "$out" | grep -q "^chosen at start-up: neon$"
if echo "$out" | grep -q dotprod; then
    echo "dotprod variant ran on a CPU without it" >&2
    exit 1
fi
echo "aarch64 kernels: ok"
