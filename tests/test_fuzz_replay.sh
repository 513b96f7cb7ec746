#!/bin/sh
# Every parser's fuzz target (tests/fuzz/run.sh) still builds, and replays
# its kept corpus and seeds without a finding (FUZZ_RUNS=0: each kept input
# once, under ASan + UBSan). CI does not fuzz, and twice a library change
# broke these targets' link unseen (OpenCV's shim, then oneDNN); the replay
# also re-checks every input a fuzzing run once kept. Needs clang with
# libFuzzer (make deps installs clang and libclang-rt-dev). The targets link
# the plain library; under `make asan` (a gcc-ASan library) it is skipped.
lib="$(dirname "${CS_BIN:-build/copyscope}")/libcopyscope.a"
name=test_fuzz_replay.sh
case "$lib" in
*build-asan*) echo "$name: 0 passed, 0 failed (skipped under make asan: the targets link the plain library)"; exit 0 ;;
esac
pass=0; fail=0
work=$(mktemp -d /tmp/cs-fuzz-XXXXXX)
for t in safetensors tokenizer suite jsonl tar; do
    if LIB="$lib" FUZZ_TMP="$work" FUZZ_RUNS=0 sh tests/fuzz/run.sh 60 "$work" "$t" >"$work/$t.log" 2>&1; then
        echo "ok   fuzz_$t builds and replays its corpus ($(grep -E 'INITED|Done' "$work/$t.log" | head -n 1 | cut -c1-60))"
        pass=$((pass + 1))
    else
        echo "FAIL fuzz_$t:"; tail -n 15 "$work/$t.log"
        fail=$((fail + 1))
    fi
done
rm -rf "$work"
echo "$name: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
