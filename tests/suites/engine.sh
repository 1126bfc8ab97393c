#!/bin/sh
# engine.sh - the engine on the real CPU backend, end to end.
#
# `axserve chat --raw` (engine: template, tokenizer, slots with prefix
# reuse, sampler at temperature 0, stop on eos, incremental detokenizer) is
# compared byte for byte with a path that shares none of the engine:
# `axserve template` -> `axserve tokenize` -> `axserve generate` (its own
# greedy loop over the backend, recomputing every prompt from scratch) ->
# `axserve detokenize --skip-special`. Three turns: turns 2 and 3 reuse the
# KV cache of the previous turns (cached tokens > 0 is checked), so a KV
# position mistake shows up as a different answer. Then /think and /reset
# and the first message again: the slot still holds the longer
# conversation, the engine rolls it back to the common prefix and must
# answer exactly as in turn 1.
set -eu
AX=${AX:-build/axserve}
M=${MODEL:-build/models/default}
PY=/usr/bin/python3
N=12
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

printf 'Hello there\nTell me more about it.\n/no_think\nAnd a third question?\n/think\n/reset\nHello there\n' >"$tmp/in"
$AX chat -m "$M" --raw --temperature 0 -n $N <"$tmp/in" >"$tmp/chat.out" 2>"$tmp/chat.err"
cat "$tmp/chat.err"

# The reference, turn by turn.
: >"$tmp/want"
: >"$tmp/history.json"
echo '[]' >"$tmp/history.json"
turn=0
for msg in "Hello there" "Tell me more about it." "And a third question?"; do
    turn=$((turn + 1))
    think=true
    [ $turn -eq 3 ] && think=false
    $PY - "$tmp/history.json" "$msg" "$think" >"$tmp/req.json" <<'PYEOF'
import json, sys
hist = json.load(open(sys.argv[1]))
hist.append({"role": "user", "content": sys.argv[2]})
json.dump({"messages": hist, "add_generation_prompt": True,
           "chat_template_kwargs": {"enable_thinking": sys.argv[3] == "true"}}, sys.stdout)
PYEOF
    $AX template -m "$M" <"$tmp/req.json" >"$tmp/prompt.txt"
    ids=$($AX tokenize -m "$M" <"$tmp/prompt.txt" | tr -d '[] \n')
    $AX generate -m "$M" --ids "$ids" -n $N --top 1 >"$tmp/gen.json"
    $PY -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["tokens"]))' \
        "$tmp/gen.json" >"$tmp/toks.json"
    $AX detokenize -m "$M" --skip-special <"$tmp/toks.json" >"$tmp/reply.txt"
    cat "$tmp/reply.txt" >>"$tmp/want"
    printf '\n' >>"$tmp/want"
    [ $turn -eq 1 ] && cp "$tmp/reply.txt" "$tmp/reply1.txt"
    $PY - "$tmp/history.json" "$msg" "$tmp/reply.txt" <<'PYEOF'
import json, sys
hist = json.load(open(sys.argv[1]))
reply = open(sys.argv[3], encoding="utf-8", errors="surrogateescape").read()
hist += [{"role": "user", "content": sys.argv[2]}, {"role": "assistant", "content": reply}]
json.dump(hist, open(sys.argv[1], "w"))
PYEOF
done

cat "$tmp/reply1.txt" >>"$tmp/want" # after /reset
printf '\n' >>"$tmp/want"
if ! cmp "$tmp/chat.out" "$tmp/want"; then
    echo "engine: chat output differs from the generate reference"
    echo "--- chat"; od -c "$tmp/chat.out" | head -20
    echo "--- reference"; od -c "$tmp/want" | head -20
    exit 1
fi
# Turns 2 and 3 continued the first turn's slot.
cached=$(sed -n 's/.*(\([0-9]*\) cached).*/\1/p' "$tmp/chat.err" | tr '\n' ' ')
set -- $cached
[ $# -eq 4 ] && [ "$1" -eq 0 ] && [ "$2" -gt 0 ] && [ "$3" -gt "$2" ] && [ "$4" -gt 0 ] &&
    [ "$4" -lt "$2" ] || {
    echo "engine: unexpected cached token counts: $cached"
    exit 1
}
echo "engine: 4 chat turns (one after /reset) equal generate+detokenize ($(wc -c <"$tmp/want") bytes), cached: $cached"

# The sanitized build: same conversation, no leaks or errors.
if [ -x build/asan/axserve ]; then
    build/asan/axserve chat -m "$M" --raw --quiet --temperature 0 -n 4 <"$tmp/in" >/dev/null
    echo "engine: chat under ASan+UBSan ok"
fi
