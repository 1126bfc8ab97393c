#!/bin/sh
# hub.sh - `axserve pull` against a loopback fake hub (tests/hub/fake_hub.py,
# Debian python3 http.server; never the real network): a normal download
# through a redirect with the bearer token, skipping complete files,
# --include, resume after a cut (Range request seen by the server), resume
# of a .part left by an earlier run, sha256 checked against the listing, a
# Git LFS pointer served instead of the file, 404, hostile names.
set -eu
AX=${AXSERVE:-build/axserve}
PY=/usr/bin/python3
tmp=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
hub=$tmp/hub
mkdir -p "$hub/acme/tiny/sub" "$hub/acme/cut" "$hub/acme/lfs" "$hub/acme/evil" "$hub/acme/sha"
$PY - "$hub" <<'PYEOF'
import json, os, random, sys
h = sys.argv[1]
r = random.Random(1)
def blob(p, n):
    open(p, "wb").write(bytes(r.getrandbits(8) for _ in range(n)))
open(f"{h}/acme/tiny/config.json", "w").write('{"model_type": "qwen3"}\n')
blob(f"{h}/acme/tiny/model.safetensors", 300000)
open(f"{h}/acme/tiny/sub/tokenizer.json", "w").write("{}\n")
open(f"{h}/acme/tiny/read me.txt", "w").write("spaces in names\n")
blob(f"{h}/acme/cut/big.bin", 200000)
open(f"{h}/acme/cut/_control.json", "w").write(json.dumps({"cut": ["big.bin"]}))
blob(f"{h}/acme/lfs/big.bin", 10)
open(f"{h}/acme/lfs/_control.json", "w").write(json.dumps({"pointer": {"big.bin": 1000000}}))
open(f"{h}/acme/evil/ok.txt", "w").write("ok\n")
blob(f"{h}/acme/sha/w.bin", 5000)
open(f"{h}/acme/sha/_control.json", "w").write(json.dumps({"bad_sha": ["w.bin"]}))
open(f"{h}/acme/evil/_control.json", "w").write(json.dumps({"list_extra": ["../escape.txt"]}))
PYEOF
$PY tests/hub/fake_hub.py "$hub" "$tmp/port" &
pid=$!
i=0
while [ ! -f "$tmp/port" ]; do
    i=$((i + 1))
    [ $i -gt 100 ] && { echo "fake hub did not start"; exit 1; }
    sleep 0.1
done
export AXSERVE_HUB_URL="http://127.0.0.1:$(cat "$tmp/port")"
log=$hub/requests.log

echo "== normal download (redirect, token, nested and spaced names)"
HF_TOKEN=secret123 $AX pull acme/tiny --dir "$tmp/o1"
for f in config.json model.safetensors sub/tokenizer.json "read me.txt"; do
    cmp "$hub/acme/tiny/$f" "$tmp/o1/$f"
done
[ -z "$(find "$tmp/o1" -name '*.part')" ]
grep -q "GET /api/models/acme/tiny?blobs=true range=- auth=Bearer secret123" "$log"
grep -q "GET /_cdn/acme/tiny/model.safetensors range=- auth=Bearer secret123" "$log"
echo "4 files identical to the hub's; token sent; redirect followed; no .part left"

echo "== second pull skips complete files"
n1=$(grep -c "GET /_cdn/acme/tiny" "$log")
$AX pull acme/tiny --dir "$tmp/o1" | grep -q "model.safetensors: present"
[ "$(grep -c "GET /_cdn/acme/tiny" "$log")" = "$n1" ]
echo "no file downloaded again"

echo "== --include"
$AX pull acme/tiny --dir "$tmp/o2" --include '*.json' --include 'sub/*' >/dev/null
[ -f "$tmp/o2/config.json" ] && [ -f "$tmp/o2/sub/tokenizer.json" ]
[ ! -e "$tmp/o2/model.safetensors" ] && [ ! -e "$tmp/o2/read me.txt" ]
echo "only config.json and sub/tokenizer.json"

echo "== resume after a cut"
$AX pull acme/cut --dir "$tmp/o3"
cmp "$hub/acme/cut/big.bin" "$tmp/o3/big.bin"
grep -q "GET /_cdn/acme/cut/big.bin range=bytes=100000- " "$log"
echo "first transfer cut at 100000 bytes; retried with Range: bytes=100000-; file identical"

echo "== resume a .part left by an earlier run"
mkdir -p "$tmp/o4"
head -c 12345 "$hub/acme/tiny/model.safetensors" >"$tmp/o4/model.safetensors.part"
$AX pull acme/tiny --dir "$tmp/o4" --include model.safetensors | grep -q "(resumed)"
cmp "$hub/acme/tiny/model.safetensors" "$tmp/o4/model.safetensors"
grep -q "GET /_cdn/acme/tiny/model.safetensors range=bytes=12345- " "$log"
echo "Range: bytes=12345- sent; file identical"

echo "== LFS pointer body rejected"
if $AX pull acme/lfs --dir "$tmp/o5" >"$tmp/out" 2>&1; then
    cat "$tmp/out"; echo "accepted an LFS pointer"; exit 1
fi
grep -q "Git LFS pointer" "$tmp/out"
[ ! -e "$tmp/o5/big.bin" ]
echo "rejected: $(grep 'Git LFS' "$tmp/out")"

echo "== sha256 mismatch rejected"
if $AX pull acme/sha --dir "$tmp/o9" >"$tmp/out" 2>&1; then echo "bad sha256 accepted"; exit 1; fi
grep -q "w.bin: sha256 .* does not match the listed 0000" "$tmp/out"
[ ! -e "$tmp/o9/w.bin" ] && [ ! -e "$tmp/o9/w.bin.part" ]
echo "rejected, nothing kept (the good downloads above were all checked against hashlib's sha256)"

echo "== 404 and bad names"
if $AX pull acme/missing --dir "$tmp/o6" >"$tmp/out" 2>&1; then echo "404 accepted"; exit 1; fi
grep -q "not found (404)" "$tmp/out"
if $AX pull "../etc" --dir "$tmp/o7" >"$tmp/out" 2>&1; then echo "bad repo accepted"; exit 1; fi
grep -q "not a repository name" "$tmp/out"
if $AX pull acme/evil --dir "$tmp/o8" >"$tmp/out" 2>&1; then echo "unsafe name accepted"; exit 1; fi
grep -q "unsafe" "$tmp/out"
[ ! -e "$tmp/escape.txt" ]
echo "404, '../etc' and a '../escape.txt' listing entry all rejected"
echo "hub suite: all checks passed"
