#!/bin/sh
# copyscope analyze end to end and its bad input: a folder with copies of
# indexed emoji, a held-out emoji, a text file and a truncated PNG; the
# --fail-on gate; an unknown run; a descriptor the index lacks; an empty
# folder; usage errors. Each checks the exit status and the message.
B=${CS_BIN:-build/copyscope}
T=${CS_TMP:-/tmp}/analyze-sh.$$
DATA=../shared/data/twemoji-64/img
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; }
mkdir -p "$T/refs" "$T/gens" "$T/empty" || exit 1
DB="$T/a.db"
# index 40 emoji (every 2nd of the first 80)
i=0
for x in $(ls "$DATA" | sort | head -n 80); do
  [ $((i % 2)) -eq 0 ] && cp "$DATA/$x" "$T/refs/"
  i=$((i + 1))
done
$B index add "$T/refs" --db "$DB" -j 2 >/dev/null 2>&1 && ok index_add || bad index_add
first=$(ls "$T/refs" | sort | head -n 1)
held=$(ls "$DATA" | sort | sed -n 2p)
cp "$T/refs/$first" "$T/gens/copy.png"
cp "$DATA/$held" "$T/gens/held.png"
echo "not an image" > "$T/gens/notes.txt"
head -c 200 "$T/refs/$first" > "$T/gens/truncated.png"

out=$($B analyze --images "$T/gens" --db "$DB" -j 2 2>"$T/err"); rc=$?
[ $rc -eq 0 ] && ok images_rc0 || bad "images_rc0 (rc=$rc)"
echo "$out" | grep -q "2 generations (2 files skipped)" && ok images_skipped || bad "images_skipped: $out"
grep -q "truncated.png" "$T/err" && grep -q "notes.txt" "$T/err" && ok skipped_named || bad skipped_named
echo "$out" | grep -q "copy 1 " && ok one_copy || bad "one_copy: $out"

$B analyze --images "$T/gens" --db "$DB" --fail-on copy >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 3 ] && grep -q "fail-on copy tripped" "$T/err" && ok gate_trips || bad "gate_trips (rc=$rc)"
rm "$T/gens/copy.png"
$B analyze --images "$T/gens" --db "$DB" --fail-on copy >/dev/null 2>&1; rc=$?
[ $rc -eq 0 ] && ok gate_passes || bad "gate_passes (rc=$rc)"

$B analyze --run 999 --db "$DB" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "run 999: no such run" "$T/err" && ok unknown_run || bad "unknown_run (rc=$rc)"
$B analyze --run 1 --db "$DB" --descriptors tl2,sscd >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "no 'sscd' descriptor" "$T/err" && ok missing_descriptor || bad "missing_descriptor (rc=$rc)"
$B analyze --run 1 --db "$DB" --descriptors tl2,pdq >/dev/null 2>&1; rc=$?
[ $rc -eq 0 ] && ok rerun_by_id || bad "rerun_by_id (rc=$rc)"
$B analyze --images "$T/empty" --db "$DB" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "no files to analyse" "$T/err" && ok empty_folder || bad "empty_folder (rc=$rc)"
$B analyze --images "$T/nope" --db "$DB" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "no such file" "$T/err" && ok missing_folder || bad "missing_folder (rc=$rc)"

# SSCD score normalisation needs an embedding column; then it runs and is recorded
mkdir -p "$T/bg"
i=0
for x in $(ls "$DATA" | sort | head -n 80); do
  [ $((i % 2)) -eq 1 ] && cp "$DATA/$x" "$T/bg/"
  i=$((i + 1))
done
$B analyze --images "$T/gens" --db "$DB" --background "$T/bg" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "needs an embedding column" "$T/err" && ok background_needs_embedding || bad "background_needs_embedding (rc=$rc)"
$B index add --embedder tiny "$T/refs" --db "$DB" >/dev/null 2>&1 && ok index_tiny || bad index_tiny
out=$($B analyze --images "$T/gens" --db "$DB" --background "$T/bg" 2>&1); rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -q "descriptors: .*tiny" && ok background_tiny || bad "background_tiny (rc=$rc): $out"

$B analyze --db "$DB" >/dev/null 2>&1; [ $? -eq 2 ] && ok usage_none || bad usage_none
$B analyze --run 1 --images "$T/gens" --db "$DB" >/dev/null 2>&1; [ $? -eq 2 ] && ok usage_both || bad usage_both
$B analyze --run 1 --fail-on maybe --db "$DB" >/dev/null 2>&1; [ $? -eq 2 ] && ok usage_failon || bad usage_failon
$B analyze --run 1 --set bogus=1 --db "$DB" >/dev/null 2>&1; [ $? -eq 2 ] && ok usage_set || bad usage_set
$B analyze --settings | grep -q "near_tl2 *0.12" && ok settings_table || bad settings_table

rm -rf "$T"
echo "test_analyze.sh: $p passed, $f failed"
