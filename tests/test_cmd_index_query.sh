#!/bin/sh
# `copyscope index query`: builds a small index (the 12 bridge-mods JPEGs and
# 20 flattened emoji) with `index add`, then checks the nearest references:
# an exact copy at distance 0 under every hash, --k, --max-distance, the
# low-quality flag, --json, a bad query image, a missing database.
B=${CS_BIN:-build/copyscope}
case "$B" in /*) ;; *) B="$PWD/$B" ;; esac
R=../shared/refs/pdq
T=${CS_TMP:-/tmp}/cmd_query.$$
mkdir -p "$T/emoji"
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; }
ls $R/inputs/twemoji-flat | head -20 | while read -r e; do cp "$R/inputs/twemoji-flat/$e" "$T/emoji/"; done
cp $R/upstream/misc-images/small.jpg "$T/emoji/"
DB="$T/q.db"
"$B" index add --db "$DB" -j 2 $R/upstream/bridge-mods "$T/emoji" >"$T/add.out" 2>&1 \
  && ok index_add || { bad index_add; cat "$T/add.out"; }
Q=$R/upstream/reg-test-input/dih/bridge-1-original.jpg
"$B" index query --db "$DB" "$Q" >"$T/out" 2>"$T/err"
[ $? -eq 0 ] && ok query_exit_0 || bad query_exit_0
# bridge-1-original is the same picture as aaa-orig: distance 0 first, under pdq
awk '/^  pdq \(/{getline; print; exit}' "$T/out" | grep -q '^ *0  ref [0-9]*  .*bridge-mods/' \
  && ok pdq_exact_first || bad pdq_exact_first
for h in phash dhash ahash; do
  awk -v h="$h" '$1 == h {getline; print; exit}' "$T/out" | grep -q '^ *0  ref ' \
    && ok "${h}_exact_first" || bad "${h}_exact_first"
done
# default k = 5, one line per hit
n=$(awk '/^  pdq \(/{f=1; next} /^  [a-z]/{f=0} f' "$T/out" | wc -l)
[ "$n" -eq 5 ] && ok default_k_5 || bad "default_k_5 ($n)"
"$B" index query --db "$DB" --k 2 "$Q" >"$T/out2"
n=$(awk '/^  pdq \(/{f=1; next} /^  [a-z]/{f=0} f' "$T/out2" | wc -l)
[ "$n" -eq 2 ] && ok k_2 || bad "k_2 ($n)"
# --max-distance 0 keeps only the exact matches; and bounds the 64-bit hashes at 0
"$B" index query --db "$DB" --k 50 --max-distance 0 "$Q" >"$T/out3"
grep -q 'pdq (distance <= 0 of 256)' "$T/out3" && ok max_distance_shown || bad max_distance_shown
awk '/^  fused/{f = 1} /^    /{ if (!f && $1 != 0) bad = 1 } END { exit bad }' "$T/out3" && ok max_distance_0 || bad max_distance_0
# the analysis's own ranking follows the hashes: the exact copy first, as a copy
awk '/^  fused/{getline; getline; print; exit}' "$T/out3" | grep -q ' copy  *ref ' && ok fused_copy_first || bad fused_copy_first
# an emoji copy: found at distance 0, the other emoji far away
E=$(ls "$T/emoji" | grep png | head -1)
"$B" index query --db "$DB" "$T/emoji/$E" >"$T/out4"
awk '/^  pdq \(/{getline; print; exit}' "$T/out4" | grep -q "^ *0  ref [0-9]*  .*$E" \
  && ok emoji_exact || bad emoji_exact
# low quality: small.jpg has PDQ quality 0 (query flagged, and as a reference)
"$B" index query --db "$DB" $R/upstream/misc-images/small.jpg >"$T/out5"
grep -q 'quality 0  (low quality' "$T/out5" && ok low_quality_query || bad low_quality_query
grep -q '(low quality 0)' "$T/out5" && ok low_quality_ref || bad low_quality_ref
# --json
"$B" index query --db "$DB" --json --k 1 "$Q" >"$T/out.json"
grep -q '"neighbours"' "$T/out.json" && grep -q '"distance":[[:space:]]*0,' "$T/out.json" \
  && grep -q '"pdq_quality":[[:space:]]*100,' "$T/out.json" && ok json || bad json
[ "$(grep -c '"distance"' "$T/out.json")" -eq 4 ] && ok json_one_hit_per_hash || bad json_one_hit_per_hash
# --dihedral: a left-right mirrored copy is not within 31 bits as is, but is found
# through the query's flipy variant (and the hit says so)
M=$R/upstream/reg-test-input/dih/bridge-6-flipy.jpg
"$B" index query --db "$DB" "$M" >"$T/out8"
grep -q '^  pdq (distance <= 31 of 256): no reference within the threshold' "$T/out8" \
  && ok mirror_plain_misses || bad mirror_plain_misses
"$B" index query --db "$DB" --dihedral "$M" >"$T/out9"
awk '/^  pdq \(/{getline; print; exit}' "$T/out9" | grep -q 'bridge-mods/.*\[query flipy\]' \
  && ok dihedral_finds_mirror || bad dihedral_finds_mirror
"$B" index query --db "$DB" --dihedral --json "$M" | grep -q '"query_transform":[[:space:]]*"flipy"' \
  && ok dihedral_json || bad dihedral_json
# a bad query among good ones: error line, the rest answered, exit 1
echo "text" >"$T/fake.png"
"$B" index query --db "$DB" "$T/fake.png" "$Q" >"$T/out6" 2>"$T/err6"
[ $? -eq 1 ] && ok bad_query_exit_1 || bad bad_query_exit_1
grep -q "^copyscope: $T/fake.png: " "$T/err6" && ok bad_query_message || bad bad_query_message
grep -q "^$Q" "$T/out6" && ok rest_answered || bad rest_answered
"$B" index query --db "$DB" --json "$T/fake.png" "$Q" 2>/dev/null >"$T/out6j"
grep -q '"error":[[:space:]]*".*fake.png: ' "$T/out6j" && grep -q '"neighbours"' "$T/out6j" \
  && ok json_bad_query_listed || bad json_bad_query_listed
# missing database: one error line, exit 1, nothing created
"$B" index query --db "$T/none.db" "$Q" >/dev/null 2>"$T/err7"
[ $? -eq 1 ] && [ ! -e "$T/none.db" ] && [ "$(wc -l <"$T/err7")" -eq 1 ] && ok missing_db || bad missing_db
"$B" index query --db "$DB" --k 0 "$Q" >/dev/null 2>&1; [ $? -eq 2 ] && ok bad_k_usage || bad bad_k_usage
rm -rf "$T"
echo "test_cmd_index_query.sh: $p passed, $f failed"
