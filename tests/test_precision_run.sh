#!/bin/sh
# generate SUITE --precision: a bf16 run of a suite is another run than the
# fp32 one (its own run id and folder, "precision" in its settings), and
# re-running either precision reuses its own run. Needs AVX512_BF16 for the
# bf16 half (skipped, and said so, without it).
BIN=${CS_BIN:-build/copyscope}
R=$(cd ../shared/refs && pwd)
T=$(mktemp -d "${CS_TMP:-/tmp}/cs-precrun-XXXXXX")
pass=0; fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
ko() { echo "FAIL $1"; fail=$((fail + 1)); }
cat >"$T/s.json" <<J
{"name": "prec", "model": "$R/sd-tiny/model.safetensors", "config": "$R/sd-tiny/config.json",
 "vocab": "$R/clip-bpe/bpe_simple_vocab_16e6.txt.gz",
 "defaults": {"size": 64, "steps": 2},
 "prompts": [{"id": "p1", "text": "a red apple", "seeds": [7]}]}
J
gen() { "$BIN" generate "$T/s.json" --db "$T/g.db" --out "$T/out" "$@" >"$T/log" 2>&1; }
runs() { sqlite3 "$T/g.db" "SELECT count(*) FROM runs"; }
gen && ok fp32 || { ko fp32; cat "$T/log"; }
if ! grep -q avx512_bf16 /proc/cpuinfo; then
    echo "skip bf16: no AVX512_BF16 on this CPU"
else
    gen --precision bf16 && ok bf16 || { ko bf16; cat "$T/log"; }
    [ "$(runs)" = 2 ] && ok two_runs || ko "two_runs ($(runs))"
    [ "$(sqlite3 "$T/g.db" "SELECT count(DISTINCT suite_sha256) FROM runs")" = 2 ] && ok two_keys || ko two_keys
    sqlite3 "$T/g.db" "SELECT settings_json FROM runs" | grep -q '"precision":"bf16"' && ok settings_bf16 ||
        ko settings_bf16
    [ "$(ls "$T/out" | wc -l)" = 2 ] && ok two_folders || ko "two_folders ($(ls "$T/out"))"
    gen --precision bf16 && gen --precision fp32 && [ "$(runs)" = 2 ] && ok reused || ko reused
    f=$(ls "$T"/out/*/p1-0-7.png | head -2)
    set -- $f
    [ $# = 2 ] && ! cmp -s "$1" "$2" && ok images_differ || ko images_differ
fi
rm -rf "$T"
echo "test_precision_run.sh: $pass passed, $fail failed"
[ $fail -eq 0 ]
