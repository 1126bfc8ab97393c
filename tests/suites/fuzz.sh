#!/bin/sh
# fuzz.sh - runs every libFuzzer target (build/fuzz/fuzzers/fuzz_*) for
# FUZZ_SECONDS (default 10) starting from its seeds in tests/fuzz/seeds/NAME/.
# A crash, leak, hang or sanitizer report fails the suite.
set -eu
secs=${FUZZ_SECONDS:-10}
status=0
for f in build/fuzz/fuzzers/fuzz_*; do
    [ -x "$f" ] || continue
    name=$(basename "$f")
    seeds=tests/fuzz/seeds/${name#fuzz_}
    work=$(mktemp -d)
    [ -d "$seeds" ] && cp -r "$seeds"/. "$work"/ 2>/dev/null || true
    echo "== $name (${secs}s)"
    # Crash inputs go to build/fuzz/crashes/, never into the source tree.
    mkdir -p build/fuzz/crashes
    if ! "$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix=build/fuzz/crashes/"$name"- "$work" >"$work.log" 2>&1; then
        grep -v -E '^#[0-9]+' "$work.log" | tail -n 60
        echo "reproduce: $f build/fuzz/crashes/$name-*"
        status=1
    else
        grep -E 'stat::number_of_executed_units' "$work.log" || true
    fi
    rm -rf "$work" "$work.log"
done
exit $status
