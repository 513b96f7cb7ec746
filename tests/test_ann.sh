#!/bin/sh
# `index ann` + `index query --approx`, end to end on twemoji: 800 images
# (771 distinct) embedded with the built-in tiny descriptor, the approximate
# index built (IVF4,Flat), a query image found first at cosine 1, and with
# every list probed the same list as the exact search; 200 more references
# added and embedded, the index updated incrementally; errors: no index yet,
# --nprobe without --approx, a garbage index file.
B=${CS_BIN:-build/copyscope}
T=$(mktemp -d "${CS_TMP:-/tmp}/cs-ann-XXXXXX")
export COPYSCOPE_DB="$T/t.db" CS_PROGRESS=0
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; }
IMG=../shared/data/twemoji-64/img
mkdir -p "$T/a" "$T/b"
ls $IMG | head -800 | while read -r x; do cp "$IMG/$x" "$T/a/"; done
ls $IMG | sed -n 801,1000p | while read -r x; do cp "$IMG/$x" "$T/b/"; done
QA=$(ls "$T/a" | sed -n 123p)
QB=$(ls "$T/b" | sed -n 45p)
# the first embedding hit of a query: "score  ref ID  source ..."
first_tiny() { awk '/tiny embedding/{getline; print; exit}'; }

$B index add -j 2 "$T/a" >/dev/null 2>&1 && $B index add -j 2 --embedder tiny >/dev/null 2>&1 \
  && ok setup || bad setup
$B index ann --help | grep -q "usage: copyscope index ann" && ok help || bad help
$B index query --approx "$T/a/$QA" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "no approximate index for column tiny.*copyscope index ann" "$T/err" \
  && [ "$(wc -l <"$T/err")" -eq 1 ] && ok query_before_build_says_how || { bad query_before_build_says_how; cat "$T/err"; }
out=$($B index ann -j 2 2>&1)
echo "$out" | grep -q "index ann: tiny: built IVF4,Flat over [0-9]* vectors" && [ -f "$T/t.db.ann-tiny.faiss" ] \
  && ok build || { bad build; echo "$out"; }
$B index query --approx --k 5 "$T/a/$QA" >"$T/approx" 2>&1
first_tiny <"$T/approx" | grep -q "^ *1.0000  ref [0-9]*  .*/$QA" && ok approx_self_first || { bad approx_self_first; cat "$T/approx"; }
# every list probed: the exact list, scores and all
$B index query --approx --nprobe 64 --k 5 "$T/a/$QA" >"$T/approx8" 2>&1
$B index query --k 5 "$T/a/$QA" >"$T/exact" 2>&1
grep -A5 "tiny embedding" "$T/approx8" | tail -n +2 >"$T/a1"; grep -A5 "tiny embedding" "$T/exact" | tail -n +2 >"$T/e1"
cmp -s "$T/a1" "$T/e1" && [ -s "$T/a1" ] && ok approx_all_lists_equals_exact || { bad approx_all_lists_equals_exact; diff "$T/a1" "$T/e1"; }
# the listing says which search found them
grep -q "tiny embedding (cosine, higher is closer; approximate index)" "$T/approx8" &&
  grep -q "tiny embedding (cosine, higher is closer):" "$T/exact" && ok approx_labelled || bad approx_labelled
# the image itself, at cosine 1 up to float rounding (a unit vector's dot
# with itself: 0.99999988 is 1 - 1 ulp of the sum)
sc=$($B index query --approx --nprobe 8 --json --k 1 "$T/a/$QA" 2>/dev/null | grep -A8 '"tiny"' |
  sed -n 's/.*"score":[[:space:]]*\([0-9.e+-]*\).*/\1/p' | head -1)
awk -v s="${sc:-0}" 'BEGIN { exit !(s >= 0.9999 && s <= 1.0000001) }' && ok "approx_json_nprobe ($sc)" ||
  bad "approx_json_nprobe ($sc)"
# grow the column: only the new vectors are added
$B index add -j 2 "$T/b" >/dev/null 2>&1 && $B index add -j 2 --embedder tiny >/dev/null 2>&1
out=$($B index ann -j 2 2>&1)
echo "$out" | grep -q "index ann: tiny: IVF4,Flat: added [0-9]* vectors (now [0-9]*" && ok update_adds_new \
  || { bad update_adds_new; echo "$out"; }
$B index query --approx --k 3 "$T/b/$QB" 2>&1 | first_tiny | grep -q "^ *1.0000  ref [0-9]*  .*/$QB" \
  && ok new_ref_found || bad new_ref_found
$B index ann -j 2 2>&1 | grep -q "up to date" && ok rerun_up_to_date || bad rerun_up_to_date
$B index query --nprobe 4 "$T/a/$QA" >/dev/null 2>&1; [ $? -eq 2 ] && ok nprobe_needs_approx || bad nprobe_needs_approx
head -c 3000 /dev/urandom >"$T/t.db.ann-tiny.faiss"
$B index query --approx "$T/a/$QA" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "ann-tiny.faiss: not a copyscope ANN index" "$T/err" && [ "$(wc -l <"$T/err")" -eq 1 ] \
  && ok garbage_index_one_line || { bad garbage_index_one_line; cat "$T/err"; }
$B index ann --db "$T/none.db" >/dev/null 2>&1; [ $? -eq 1 ] && [ ! -e "$T/none.db" ] \
  && ok missing_db_not_created || bad missing_db_not_created
$B index ann --rebuild -j 2 2>&1 | grep -q "built IVF8,Flat over [0-9]* vectors" && ok rebuild || bad rebuild
# a column this index does not have: say which command makes it
$B index ann --embedder sscd >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "vec-sscd: no sscd vectors in this index yet: run 'copyscope index add --embedder sscd:WEIGHTS' first" "$T/err" \
  && ok missing_column_hint || { bad missing_column_hint; cat "$T/err"; }
rm -rf "$T"
echo "test_ann.sh: $p passed, $f failed"
[ "$f" -eq 0 ]
