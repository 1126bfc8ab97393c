#!/bin/sh
# run.sh - `make bench-server`: HTTP overhead of axserve serve on one model.
#
#   1. streaming decode tokens/s through HTTP vs `axserve generate` (same
#      model, prompt, token count, threads; end tokens ignored)
#   2. time to first token of each turn of a 10-turn conversation, with the
#      prefix cache and without it (a fresh nonce at the start of every
#      prompt, so no slot can share a prefix)
#   3. GET /health requests/s under wrk (loopback)
# Prints a table. MODEL, THREADS, TOKENS, WRK_SECONDS override the defaults.
set -eu
MODEL=${MODEL:-build/models/default}
THREADS=${THREADS:-1}
TOKENS=${TOKENS:-128}
WRK_SECONDS=${WRK_SECONDS:-5}
BIN=${BIN:-build/axserve}
tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; sleep 0.2; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE

"$BIN" serve -m "$MODEL" --port 0 --threads "$THREADS" --slots 2 >"$tmp/out" 2>"$tmp/err" &
pid=$!
url=""
i=0
while [ $i -lt 600 ]; do
    port=$(sed -n 's/^axserve listening on http:\/\/[^:]*:\([0-9]*\)$/\1/p' "$tmp/out")
    if [ -n "$port" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")" = 200 ]; then
        url="http://127.0.0.1:$port"
        break
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/err"; exit 1; }
    sleep 0.1
    i=$((i + 1))
done
[ -n "$url" ] || { echo "server did not start"; cat "$tmp/err"; exit 1; }

BENCH_URL=$url BENCH_MODEL=$MODEL BENCH_THREADS=$THREADS BENCH_TOKENS=$TOKENS BENCH_BIN=$BIN \
    node bench/server/bench.mjs

if command -v wrk >/dev/null 2>&1; then
    rps=$(wrk -t2 -c16 -d"${WRK_SECONDS}s" "$url/health" | sed -n 's/^Requests\/sec: *//p')
    printf '%-44s %12s\n' "GET /health under wrk (2 threads, 16 conns)" "$rps req/s"
else
    echo "wrk not installed: skipping the /health load"
fi
