#!/bin/sh
# The local-feature records memory-mapped from <db>.lfrec (index/localfeat.h,
# cs_lf_records_open): written by index add and listed by index stats; the
# analysis maps it silently; a missing, cut or stale one (a record replaced
# in ref_localfeat) is written again with one line saying so, holding the
# table's bytes; where it cannot be written (a folder in its place) the
# records are read into memory. The findings are the same every way, at
# -j 1 and -j 2.
B=${CS_BIN:-build/copyscope}
T=${CS_TMP:-/tmp}/lfrec-sh.$$
DATA=../shared/data/twemoji-64/img
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; [ -f "$T/err" ] && head -c 800 "$T/err"; }
mkdir -p "$T/refs" "$T/q" || exit 1
unset COPYSCOPE_DB
for x in 1f355 1f600 1f680 1f30d 1f684; do cp "$DATA/$x.png" "$T/refs/"; done
cp "$DATA/1f30d.png" "$T/q/globe.png"
cp "$DATA/1f680.png" "$T/q/rocket.png"
R="$T/i.db.lfrec"
findings() { sqlite3 "$T/i.db" "SELECT g.path, f.ref_id, f.verdict, f.severity, json_extract(f.evidence_json, '$.local') FROM findings f JOIN generations g ON g.id = f.generation_id WHERE g.run_id = (SELECT max(run_id) FROM generations) ORDER BY g.path, f.id" 2>/dev/null; }
run() { $B analyze --db "$T/i.db" --images "$T/q" -j "$1" >/dev/null 2>"$T/err"; }
# the bytes of row $1's record in the file (rows after the 4096-byte header)
filerec() { od -An -v -tx1 -j $((4096 * ($1 + 1))) -N 4096 "$R" | tr -d ' \n'; }
tablerec() { sqlite3 "$T/i.db" "SELECT lower(hex(rec)) FROM ref_localfeat ORDER BY ref_id LIMIT 1 OFFSET $1"; }

$B index add --db "$T/i.db" "$T/refs" >/dev/null 2>"$T/err"
# (stderr: nothing but index add's note that 5 references are too few for the default tiny embedding)
[ $? -eq 0 ] && [ "$(wc -c < "$R")" -eq $((4096 * 6)) ] && ! grep -v "no tiny embedding yet" "$T/err" && ok add_writes_records || bad add_writes_records
[ "$(filerec 0)" = "$(tablerec 0)" ] && [ "$(filerec 4)" = "$(tablerec 4)" ] && ok file_holds_table_bytes || bad file_holds_table_bytes
$B index stats --db "$T/i.db" > "$T/stats" 2>"$T/err"
grep -q "SIFT records, mapped .*i.db.lfrec\$" "$T/stats" && ok stats_lists_it || { bad stats_lists_it; cat "$T/stats"; }

run 1
[ $? -eq 0 ] && ! grep -q "records" "$T/err" && ok analyze_maps_silently || bad analyze_maps_silently
F0=$(findings); [ -n "$CS_VERBOSE" ] && echo "$F0"
echo "$F0" | grep -q "globe.png" && echo "$F0" | grep -q "rocket.png" && ok findings_present || { bad findings_present; echo "$F0"; }
run 2
[ "$(findings)" = "$F0" ] && ok same_at_j2 || bad same_at_j2

rm -f "$R"
run 2
[ $? -eq 0 ] && grep -q "local-feature records written to .*i.db.lfrec" "$T/err" && [ "$(findings)" = "$F0" ] \
  && [ "$(filerec 2)" = "$(tablerec 2)" ] && ok missing_written || bad missing_written

head -c 5000 "$R" > "$T/cut" && cp "$T/cut" "$R"
run 1
[ $? -eq 0 ] && grep -q "records written" "$T/err" && [ "$(wc -c < "$R")" -eq $((4096 * 6)) ] \
  && [ "$(findings)" = "$F0" ] && ok cut_written || bad cut_written

# no file possible: the records in memory, the same findings
rm -f "$R" && mkdir "$R"
run 1
[ $? -eq 0 ] && grep -q "local-feature records in memory" "$T/err" && [ "$(findings)" = "$F0" ] \
  && ok in_memory_same_j1 || bad in_memory_same_j1
run 2
[ $? -eq 0 ] && [ "$(findings)" = "$F0" ] && ok in_memory_same_j2 || bad in_memory_same_j2
rmdir "$R"

# a record replaced under the same id (the grinning face's record given the rocket's
# keypoints): the file is written again with the new bytes, and the vote
# index rebuilt
run 1
G=$(sqlite3 "$T/i.db" "SELECT ref_id FROM ref_localfeat ORDER BY ref_id LIMIT 1 OFFSET 3")
K=$(sqlite3 "$T/i.db" "SELECT ref_id FROM ref_localfeat ORDER BY ref_id LIMIT 1 OFFSET 2")
sqlite3 "$T/i.db" "UPDATE ref_localfeat SET rec = (SELECT rec FROM ref_localfeat WHERE ref_id = $G) WHERE ref_id = $K"
run 1
[ $? -eq 0 ] && grep -q "records written" "$T/err" && grep -q "vote index" "$T/err" \
  && [ "$(filerec 2)" = "$(tablerec 2)" ] && [ "$(filerec 2)" = "$(filerec 3)" ] && ok stale_written || bad stale_written

rm -rf "$T"
echo "tests/test_lf_rec.sh: $p passed, $f failed"
[ $f -eq 0 ]
