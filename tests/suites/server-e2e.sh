#!/bin/sh
# server-e2e.sh - end-to-end tests of `axserve serve` with the official
# openai npm client and raw HTTP (node's built-in test runner).
#
# 1. build/axserve on the default synthetic model: every tests/e2e/*.test.mjs.
# 2. build/asan/axserve (AddressSanitizer + UBSan): a shorter run
#    (AXSERVE_SHORT=1), then SIGTERM in the middle of a stream: the stream
#    must end with an error event and [DONE], the server must exit 0, and
#    no sanitizer report (leaks included) may appear.
# 3. If the AXCL emulator is built: the same server on the emulated AX650N
#    backend (emu-compile of the default model), one chat completion and
#    one stream through HTTP.
# The server is always killed at the end, even on failure (trap).
set -u
MODEL=${MODEL:-build/models/default}
BIN=${AXSERVE_BIN:-build/axserve}
ASAN_BIN=${AXSERVE_ASAN_BIN:-build/asan/axserve}
CTX=${E2E_CTX:-1024}
QUEUE=${E2E_QUEUE:-8}
KEY="e2e-key-$$"
NODE_TESTS=$(ls tests/e2e/*.test.mjs)
tmp=$(mktemp -d)
pid=""
status=0

cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE

fail() { echo "FAIL: $*"; status=1; }

# The server's own log, when something failed.
show_log() {
    echo "---- last lines of the $1 server's log"
    tail -n 40 "$tmp/$1.err"
}

# start_server BIN NAME KEYMODE: starts BIN, sets pid and url, waits for
# /health. KEYMODE says how the key is given: flag, file or env.
start_server() {
    bin=$1
    name=$2
    : >"$tmp/$name.out"
    envkey=""
    case $3 in
    flag) set -- --api-key "$KEY" ;;
    file) printf '%s\n' "$KEY" >"$tmp/key" && set -- --api-key-file "$tmp/key" ;;
    *) set -- && envkey=$KEY ;;
    esac
    AXSERVE_API_KEY=$envkey "$bin" serve -m "$MODEL" --port 0 "$@" --alias e2e-model --ctx "$CTX" \
        --slots 2 --queue "$QUEUE" --threads 1 >"$tmp/$name.out" 2>"$tmp/$name.err" &
    pid=$!
    url=""
    i=0
    while [ $i -lt 600 ]; do
        port=$(sed -n 's/^axserve listening on http:\/\/[^:]*:\([0-9]*\)$/\1/p' "$tmp/$name.out")
        if [ -n "$port" ]; then
            url="http://127.0.0.1:$port"
            code=$(curl -s -o /dev/null -w '%{http_code}' "$url/health")
            [ "$code" = 200 ] && break
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    if [ -z "$url" ] || [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/health")" != 200 ]; then
        echo "server $name did not become ready:"
        tail -n 30 "$tmp/$name.err"
        return 1
    fi
    echo "== $name ready at $url"
}

run_node() { # short
    AXSERVE_URL=$url AXSERVE_API_KEY=$KEY AXSERVE_MODEL_ID=e2e-model AXSERVE_N_CTX=$CTX \
        AXSERVE_QUEUE=$QUEUE AXSERVE_SHORT=$1 \
        node --test --test-concurrency=1 --test-reporter=spec $NODE_TESTS
}

# stop_server NAME: SIGTERM in the middle of a stream; checks the stream's
# end, the exit status, and the sanitizer output.
shutdown_mid_stream() {
    name=$1
    curl -s -N -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
        -d '{"messages":[{"role":"user","content":"keep going"}],"max_tokens":100000,"ignore_eos":true,"stream":true}' \
        "$url/v1/chat/completions" >"$tmp/stream.txt" 2>/dev/null &
    cpid=$!
    i=0
    while [ $i -lt 300 ] && [ "$(grep -c '^data: ' "$tmp/stream.txt")" -lt 3 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -TERM "$pid"
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        fail "$name: still running 30 s after SIGTERM"
        return
    fi
    wait "$pid"
    rc=$?
    pid=""
    wait "$cpid" 2>/dev/null
    [ "$rc" = 0 ] || fail "$name: exit status $rc after SIGTERM"
    grep -v '^$' "$tmp/stream.txt" | tail -n 1 | grep -q '^data: \[DONE\]$' ||
        fail "$name: the open stream did not end with [DONE]"
    grep -q '"error"' "$tmp/stream.txt" || fail "$name: the open stream got no error event"
    if [ $status != 0 ]; then
        echo "-- the stream's last lines ($(grep -c '^data: ' "$tmp/stream.txt") events):"
        grep -v '^$' "$tmp/stream.txt" | tail -n 3 | cut -c1-300
        show_log "$name"
    fi
    if grep -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$tmp/$name.err"; then
        fail "$name: sanitizer report"
        show_log "$name"
    fi
    echo "== $name: SIGTERM mid-stream -> exit $rc, stream ended with [DONE]"
}

# 1. release build, full run
if start_server "$BIN" release env; then
    run_node 0 || { fail "node tests (release build)"; show_log release; }
    shutdown_mid_stream release
else
    fail "release server did not start"
fi
[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null && pid=""

# 2. sanitized build, short run
if [ -x "$ASAN_BIN" ]; then
    if start_server "$ASAN_BIN" asan file; then
        run_node 1 || { fail "node tests (ASan build)"; show_log asan; }
        shutdown_mid_stream asan
    else
        fail "ASan server did not start"
    fi
else
    echo "build/asan/axserve missing: skipping the sanitized run"
fi
# 3. the AXCL emulator backend (a smoke run through the same HTTP path)
EMU_LIB=${AXSERVE_AXCL_EMU:-build/libaxcl_emu.so}
if [ -f "$EMU_LIB" ] && "$BIN" emu-compile "$MODEL" "$tmp/emu" --prefill 16 --history 1,32,64 \
    --kv 127 >"$tmp/emu.log" 2>&1; then
    save_model=$MODEL
    MODEL=$tmp/emu
    CTX=127
    export AXSERVE_AXCL_LIB=$EMU_LIB
    if start_server "$BIN" axcl-emu flag; then
        body='{"messages":[{"role":"user","content":"hi"}],"max_tokens":4,"temperature":0'
        r=$(curl -s -H "Authorization: Bearer $KEY" -d "$body}" "$url/v1/chat/completions")
        echo "$r" | grep -q '"object":"chat.completion"' || fail "axcl-emu: chat completion: $r"
        echo "$r" | grep -q '"completion_tokens":4' || fail "axcl-emu: 4 tokens expected: $r"
        curl -s -N -H "Authorization: Bearer $KEY" -d "$body,\"stream\":true}" \
            "$url/v1/chat/completions" >"$tmp/emu-stream.txt"
        grep -v '^$' "$tmp/emu-stream.txt" | tail -n 1 | grep -q '^data: \[DONE\]$' ||
            fail "axcl-emu: stream did not end with [DONE]"
        grep -q '"finish_reason":"length"' "$tmp/emu-stream.txt" ||
            fail "axcl-emu: stream has no finish_reason"
        grep -q 'backend axcl' "$tmp/axcl-emu.err" || fail "axcl-emu: not on the axcl backend"
        echo "== axcl-emu: chat completion and stream through the emulated AX650N backend"
        kill -TERM "$pid"
        wait "$pid" || fail "axcl-emu: exit status $? after SIGTERM"
        pid=""
    else
        fail "server on the AXCL emulator did not start"
    fi
    unset AXSERVE_AXCL_LIB
    MODEL=$save_model
else
    echo "AXCL emulator not built: skipping the axcl-emu run"
fi

[ $status = 0 ] && echo "server-e2e: all passed"
exit $status
