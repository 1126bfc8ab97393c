#!/bin/sh
# axcl.sh - the AX650N backend against the AXCL EMULATOR (no card here).
#
# A random Qwen3 checkpoint (tests/axcl/mk_hf.py) is compiled for the
# emulator with small shape groups (prefill 16, histories 1,32,64, kv 127)
# and run through the backend (build/tests/axcl-drive, teacher-forced);
# every step is compared with an independent numpy reference
# (tests/axcl/qwen3_ref.py) within a bf16 tolerance (tests/axcl/compare.py:
# |dlogprob| <= 0.1, argmax equal where the reference margin > 0.2; the
# emulator rounds every activation to bf16, the reference is float64).
# Covers several prefill chunks and groups, decode past the largest group,
# two emulated cards, copy-mode fallbacks, slot switching, the no-driver
# path, CMM exhaustion, a card lost mid-request, and bus calls per token.
set -eu
B=${BUILD:-build}
EMU=$B/libaxcl_emu.so
DRIVE=$B/tests/axcl-drive
PY=/usr/bin/python3
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export AXSERVE_AXCL_LIB=$EMU
unset AXCL_EMU_DEVICES AXCL_EMU_CMM_MB AXCL_EMU_CMM_KB AXCL_EMU_NO_DEVICE AXCL_EMU_LOSE_AFTER \
    AXSERVE_AXCL_KV_DIRECT AXSERVE_AXCL_ASYNC 2>/dev/null || true

$PY tests/axcl/mk_hf.py "$W/hf" 4
cp build/tokenizer-qwen3/tokenizer.json build/tokenizer-qwen3/tokenizer_config.json "$W/hf/"
$B/axserve emu-compile "$W/hf" "$W/emu" --prefill 16 --history 1,32,64 --kv 127
M=$W/emu
fail=0

ids() { seq -s, "$1" "$2"; }
field() { $PY -c "import json,sys; print(','.join(map(str, json.load(open(sys.argv[1]))[sys.argv[2]])))" "$1" "$2"; }

# check NAME PROMPT N [drive args...]: teacher-forced run vs the reference.
check() {
    name=$1 prompt=$2 n=$3
    shift 3
    $PY tests/axcl/qwen3_ref.py "$W/hf" "$prompt" "$n" >"$W/$name.ref"
    if ! "$DRIVE" "$M" --ids "$prompt" -n "$n" --force "$(field "$W/$name.ref" tokens)" "$@" \
        >"$W/$name.out" 2>"$W/$name.err"; then
        echo "FAIL $name: driver failed"; cat "$W/$name.err"; fail=1; return
    fi
    if $PY tests/axcl/compare.py "$W/$name.ref" "$W/$name.out" 0.1 >"$W/$name.cmp"; then
        echo "ok   $name: $(cat "$W/$name.cmp")"
    else
        echo "FAIL $name:"; cat "$W/$name.cmp"; fail=1
    fi
}

P40=$(ids 1 40)
P70=$(ids 100 169)
# 40 tokens: chunks 0-15, 16-31 (history 32), 32-39 (history 64); decode to 85.
check chunks-groups "$P40" 45
# 70 tokens: prefill up to 64, the rest beyond every prefill group by decode.
check past-groups "$P70" 12
# Engine-style small calls (5 tokens per forward, padded prefill chunks).
check small-chunks "$P40" 6 --chunk 5
# Copy-mode fallbacks, as on a runtime that refuses interior pointers.
AXSERVE_AXCL_KV_DIRECT=0 check kv-copy "$P40" 8
AXSERVE_AXCL_ASYNC=0 check sync-exec "$P40" 8
AXSERVE_AXCL_PINNED=0 check pageable "$P40" 4
AXSERVE_AXCL_PACKED=0 check unpacked "$P40" 8
# A stricter runtime that refuses interior pointers: the backend must fall
# back by itself (copy mode, separate input buffers) and stay correct.
AXCL_EMU_NO_INTERIOR=1 check no-interior "$P40" 8
if grep -q "kv-direct off, async off" "$W/no-interior.err" &&
    grep -q "packed inputs refused" "$W/no-interior.err"; then
    echo "ok   no-interior: fell back to copies and separate buffers"
else
    echo "FAIL no-interior: no fallback"; cat "$W/no-interior.err"; fail=1
fi
# Two emulated cards, layers split 2+2, hidden state through the host.
AXCL_EMU_DEVICES=1,2 check two-cards "$P40" 20 --devices 1,2
AXCL_EMU_DEVICES=3,5,7 check three-cards "$P40" 6

# Slot switching: two conversations advanced in lock step in slots 0 and 1.
PB=$(ids 200 230)
$PY tests/axcl/qwen3_ref.py "$W/hf" "$PB" 10 >"$W/slotB.ref"
$PY tests/axcl/qwen3_ref.py "$W/hf" "$P40" 10 >"$W/slotA.ref"
if "$DRIVE" "$M" --ids "$P40" --ids2 "$PB" -n 10 --slots 2 \
    --force "$(field "$W/slotA.ref" tokens)" --force2 "$(field "$W/slotB.ref" tokens)" \
    >"$W/slots.out" 2>"$W/slots.err" &&
    $PY tests/axcl/compare.py "$W/slotA.ref" "$W/slots.out" 0.1 >"$W/slots.cmp" &&
    $PY tests/axcl/compare.py "$W/slotB.ref" "$W/slots.out" 0.1 2 >>"$W/slots.cmp"; then
    echo "ok   slots: $(tr '\n' ' ' <"$W/slots.cmp")"
else
    echo "FAIL slots"; cat "$W/slots.cmp" "$W/slots.err" 2>/dev/null; fail=1
fi

# expect_fail NAME PATTERN cmd...: must exit non-zero (not crash) with PATTERN.
expect_fail() {
    name=$1 pat=$2
    shift 2
    set +e
    "$@" >"$W/$name.out" 2>"$W/$name.err"
    rc=$?
    set -e
    if [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] && cat "$W/$name.err" "$W/$name.out" | grep -q -- "$pat"; then
        echo "ok   $name: exit $rc: $(cat "$W/$name.err" "$W/$name.out" | grep -- "$pat" | head -1)"
    else
        echo "FAIL $name: exit $rc, wanted /$pat/"; cat "$W/$name.err"; fail=1
    fi
}
AXCL_EMU_NO_DEVICE=1 expect_fail no-driver "0x8030010b" "$DRIVE" "$M" --ids 1,2 -n 1
AXCL_EMU_CMM_KB=256 expect_fail cmm-too-small "MiB of CMM" "$DRIVE" "$M" --ids 1,2 -n 1
AXCL_EMU_CMM_MB=1 expect_fail slots-too-many "per slot" "$DRIVE" "$M" --ids 1,2 -n 1 --slots 8
AXCL_EMU_DEVICES=1 expect_fail bad-device "device 4 not found" "$DRIVE" "$M" --ids 1,2 -n 1 --devices 4
AXSERVE_AXCL_LIB=$W/none.so expect_fail no-runtime "cannot be loaded" "$DRIVE" "$M" --ids 1,2 -n 1
# The card falls off the bus after 30 executions: that request fails with
# AX_EDEVICE, healthy() turns 0, teardown still completes.
AXCL_EMU_LOSE_AFTER=30 expect_fail card-lost "no longer connected" "$DRIVE" "$M" --ids "$P40" -n 5
if grep -q '"healthy":0' "$W/card-lost.out"; then echo "ok   card-lost: healthy() = 0"; else
    echo "FAIL card-lost: healthy() not 0"; fail=1; fi
printf 'version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 98944\n' \
    >"$W/lfs.axmodel"
cp -r "$M" "$W/lfsmodel"
cp "$W/lfs.axmodel" "$W/lfsmodel/qwen3-emu-ax650/qwen3_p16_l2_together.axmodel"
M="$W/lfsmodel" expect_fail lfs-pointer "LFS" "$DRIVE" "$W/lfsmodel" --ids 1,2 -n 1

# SIGTERM mid-generation: the driver stops between steps and tears down
# (the emulator's counters, written at axclFinalize, show ResetDevice).
AXCL_EMU_LATENCY_US=3000 AXCL_EMU_STATS=$W/term.json "$DRIVE" "$M" --ids "$P40" -n 80 \
    >"$W/term.out" 2>&1 &
pid=$!
sleep 1
kill -TERM $pid
set +e
wait $pid
rc=$?
set -e
if [ $rc -eq 0 ] && grep -q '"interrupted":1' "$W/term.out" &&
    $PY -c "import json,sys; c=json.load(open(sys.argv[1]))['calls']; sys.exit(0 if c['axclrtResetDevice']>=1 and c['axclFinalize']==1 and c['axclrtEngineUnload']==5 else 1)" "$W/term.json"; then
    echo "ok   sigterm: stopped mid-run, models unloaded, device reset, runtime finalized"
else
    echo "FAIL sigterm (rc $rc)"; cat "$W/term.out"; fail=1
fi

# `axserve generate --backend axcl` vs `--backend cpu` on the same
# checkpoint (greedy, top-2 logprobs): prompts needing several prefill
# chunks and groups, decode past the largest group, one and two cards.
gen() { # OUT BACKEND MODEL IDS N [env...]
    out=$1 be=$2 model=$3 ids=$4 n=$5
    $B/axserve generate -m "$model" --ids "$ids" -n "$n" --top 2 --backend "$be" \
        --temperature 0 --ignore-eos >"$W/$out" 2>"$W/$out.err"
}
if $B/axserve generate --help 2>&1 | grep -q -- "--backend"; then
    # Cards chosen with AXSERVE_AXCL_DEVICES (generate has no --devices).
    for case in "gen40 $P40 45 1" "gen70 $P70 12 1" "gen40x2 $P40 20 1,3"; do
        set -- $case
        if gen "$1.cpu" cpu "$W/hf" "$2" "$3" &&
            AXCL_EMU_DEVICES=1,2,3 AXSERVE_AXCL_DEVICES=$4 gen "$1.axcl" axcl "$M" "$2" "$3" &&
            grep -q "$(echo "$4" | tr -cd , | wc -c | awk '{print $1+1}') card(s)" "$W/$1.axcl.err" &&
            $PY tests/axcl/compare_gen.py "$W/$1.cpu" "$W/$1.axcl" 0.1 >"$W/$1.cmp"; then
            echo "ok   generate-$1 (cards $4): $(cat "$W/$1.cmp")"
        else
            echo "FAIL generate-$1 (cards $4)"; cat "$W/$1.cmp" "$W/$1.cpu.err" "$W/$1.axcl.err" 2>/dev/null; fail=1
        fi
    done
    # A make-test-model checkpoint: f32 weights (converted to bf16 by
    # emu-compile), the real 151936-row vocabulary; a prompt whose top-2
    # margins stay above 0.2 so bf16 rounding cannot flip the argmax.
    $B/axserve make-test-model "$W/mtm" --tokenizer-from build/tokenizer-qwen3 --dtype f32 \
        --layers 3 --seed 42 >/dev/null 2>&1
    $B/axserve emu-compile "$W/mtm" "$W/mtm-emu" --prefill 16 --history 1,32,64 --kv 127 2>/dev/null
    PM=$(seq -s, 120000 120039)
    if gen mtm.cpu cpu "$W/mtm" "$PM" 10 && gen mtm.axcl axcl "$W/mtm-emu" "$PM" 10 &&
        $PY tests/axcl/compare_gen.py "$W/mtm.cpu" "$W/mtm.axcl" 0.1 >"$W/mtm.cmp"; then
        echo "ok   generate-make-test-model: $(cat "$W/mtm.cmp")"
    else
        echo "FAIL generate-make-test-model"; cat "$W/mtm.cmp" "$W/mtm.axcl.err" 2>/dev/null; fail=1
    fi
else
    echo "skip generate: axserve generate --backend not built yet"
fi

# doctor: good path, no driver, an LFS pointer in the model.
if $B/axserve doctor -m "$M" >"$W/doc.out" 2>&1 && grep -q "ready to serve" "$W/doc.out" &&
    grep -q "^ok    kv-direct" "$W/doc.out"; then
    echo "ok   doctor-good: $(grep -c '^ok' "$W/doc.out") checks ok, exit 0"
else
    echo "FAIL doctor-good"; cat "$W/doc.out"; fail=1
fi
AXCL_EMU_NO_DEVICE=1 expect_fail doctor-no-device "NOT ready" $B/axserve doctor -m "$M"
if grep -q "FAIL  axclInit .*0x8030010b" "$W/doctor-no-device.out" &&
    grep -q "fix:" "$W/doctor-no-device.out"; then echo "ok   doctor-no-device: FAIL line + fix"
else echo "FAIL doctor-no-device output"; cat "$W/doctor-no-device.out"; fail=1; fi
expect_fail doctor-lfs "NOT ready" $B/axserve doctor -m "$W/lfsmodel"
if grep -q "FAIL  model .*LFS" "$W/doctor-lfs.out"; then echo "ok   doctor-lfs: names the LFS file"
else echo "FAIL doctor-lfs output"; cat "$W/doctor-lfs.out"; fail=1; fi

# Bus calls per decoded token per layer (emulator counters) on a 28-layer
# model (Qwen3-0.6B's depth): decode 11 tokens vs 1 after the same prompt.
$PY tests/axcl/mk_hf.py "$W/hf28" 28
$B/axserve emu-compile "$W/hf28" "$W/emu28" --prefill 16 --history 1,32,64 --kv 127 2>/dev/null
for n in 1 11; do
    AXCL_EMU_STATS=$W/stats$n.json "$DRIVE" "$W/emu28" --ids "$P40" -n $n >/dev/null 2>&1
done
$PY - "$W/stats1.json" "$W/stats11.json" <<'PYEOF' || fail=1
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
per = (b["bus_calls"] - a["bus_calls"]) / 10 / 28
print(f"ok   bus-calls: {per:.3f} bus calls per layer per decoded token (goal <= 1.5)"
      if per <= 1.5 else f"FAIL bus-calls: {per:.3f} per layer per token > 1.5")
sys.exit(0 if per <= 1.5 else 1)
PYEOF

# The same backend and emulator under AddressSanitizer + UBSan (leaks
# checked): two cards with two slots, and copy mode with odd chunks.
AD=build/asan/tests/axcl-drive
if [ -x "$AD" ] && [ -f build/asan/libaxcl_emu.so ]; then
    if AXSERVE_AXCL_LIB=build/asan/libaxcl_emu.so AXCL_EMU_DEVICES=1,2 \
        "$AD" "$M" --ids "$P40" -n 12 --ids2 "$PB" --slots 2 >"$W/asan1.out" 2>&1 &&
        AXSERVE_AXCL_LIB=build/asan/libaxcl_emu.so AXSERVE_AXCL_KV_DIRECT=0 \
            "$AD" "$M" --ids "$P70" -n 3 --chunk 7 >"$W/asan2.out" 2>&1; then
        echo "ok   asan: two cards + slots, copy mode + odd chunks"
    else
        echo "FAIL asan"; tail -30 "$W/asan1.out" "$W/asan2.out"; fail=1
    fi
fi

exit $fail
