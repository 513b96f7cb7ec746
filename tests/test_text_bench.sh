#!/bin/sh
# bench_text's lines say what they measured: with the libdivsufsort anchor
# skipped (CS_BENCH_TEXT_NO_SORT_ANCHOR=1) they say it was not measured,
# never "0 MB: 0.0 MB/s ... ratio infx"; with it, a real rate and ratio.
# A 1 MB corpus (about 3 s). Builds the bench into the same build folder
# when it is not there (a make run inherits BUILD/OPT/SANITIZE from make test).
B=${CS_BIN:-build/copyscope}
BUILD=$(dirname "$B")
BB=$BUILD/bench/bench_text
T=$(mktemp -d "${CS_TMP:-/tmp}/cs-text-bench-XXXXXX")
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; }

[ -x "$BB" ] || make -s "$BB" BUILD="$BUILD" > "$T/make.log" 2>&1 || { cat "$T/make.log"; }
if [ ! -x "$BB" ]; then
  bad bench_text_built
else
  CS_TMP=$T CS_BENCH_TEXT_NO_SORT_ANCHOR=1 "$BB" 1 > "$T/skip.out" 2>&1
  [ $? -eq 0 ] && ok bench_runs_without_anchor || { bad bench_runs_without_anchor; tail -5 "$T/skip.out"; }
  grep '^index build' "$T/skip.out" > "$T/skip.build"
  [ "$(grep -c 'anchor libdivsufsort alone: not measured' "$T/skip.build")" -eq 2 ] && ok anchor_says_not_measured \
    || { bad anchor_says_not_measured; cat "$T/skip.build"; }
  grep -Eq 'inf|nan|on the same 0 MB' "$T/skip.build" && { bad no_inf_nan_zero_anchor; cat "$T/skip.build"; } \
    || ok no_inf_nan_zero_anchor
  CS_TMP=$T "$BB" 1 > "$T/with.out" 2>&1
  grep '^index build (' "$T/with.out" | grep -Eq 'on the same [1-9][0-9]* MB: [0-9.]+ MB/s wall, [0-9.]+ MB/s cpu   ratio [0-9.]+x wall' \
    && ! grep '^index build' "$T/with.out" | grep -Eq 'inf|nan|not measured' && ok anchor_measured || { bad anchor_measured; grep '^index build' "$T/with.out"; }
fi
rm -rf "$T"
echo "test_text_bench.sh: $p passed, $f failed"
[ "$f" -eq 0 ]
