#!/bin/sh
# run.sh - runs every test binary and suite; prints "N passed, N failed".
#
# Unit tests: build/tests/test_* (plain) and build/asan/tests/test_*
# (AddressSanitizer + UBSan, leaks checked at exit). Suites:
# tests/suites/*.sh, each a script that exits non-zero on any failure.
# TESTS=pattern runs only the names matching the shell pattern.
set -u
cd "$(dirname "$0")/.."
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
pat=${TESTS:-*}
pass=0
fail=0
failed=""
log=build/test-logs
mkdir -p "$log"

run() { # name command...
    name=$1
    shift
    case "$name" in $pat) ;; *) return ;; esac
    start=$(date +%s)
    out="$log/$(echo "$name" | tr / _).log"
    if "$@" >"$out" 2>&1; then
        pass=$((pass + 1))
        echo "ok   $name ($(($(date +%s) - start))s)"
    else
        fail=$((fail + 1))
        failed="$failed $name"
        echo "FAIL $name ($(($(date +%s) - start))s)"
        tail -n 40 "$out" | sed 's/^/     | /'
    fi
}

for t in build/tests/test_*; do
    [ -x "$t" ] && run "unit/$(basename "$t")" "$t"
done
for t in build/asan/tests/test_*; do
    [ -x "$t" ] && run "asan/$(basename "$t")" "$t"
done
for s in tests/suites/*.sh; do
    [ -f "$s" ] && run "suite/$(basename "$s" .sh)" sh "$s"
done

echo
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
