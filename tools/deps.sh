#!/bin/sh
# deps.sh - installs the Debian packages axserve needs, when missing.
#   tools/deps.sh build   what `make` needs to build and run
#   tools/deps.sh test    what `make test` needs on top (oracles, cross tools)
# Uses apt-get as root, or through sudo. Does nothing when all are present.
set -eu

build_pkgs="gcc make pkg-config libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev
libpcre2-dev libutf8proc-dev nodejs npm ca-certificates"
test_pkgs="clang libclang-rt-14-dev libcmocka-dev python3 python3-jinja2 python3-numpy
gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user wrk valgrind cppcheck clang-tidy
clang-format curl time"

case "${1:-build}" in
build) want="$build_pkgs" ;;
test) want="$build_pkgs $test_pkgs" ;;
*) echo "usage: $0 build|test" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    # Node.js from another source (e.g. NodeSource) bundles npm: accept it.
    case "$p" in
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm) command -v npm >/dev/null 2>&1 && continue ;;
    esac
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "axserve: installing Debian packages:$missing" >&2
if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2 || true
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >&2
