#!/bin/sh
# The local-feature vote index kept beside the store (<db>.lfvote,
# index/localfeat.h): written by index add and listed by index stats; the
# analysis loads it silently; a missing, corrupt or stale one (a reference
# added since) is rebuilt, or appended to, with one line saying why, and the
# findings are the same as with the index loaded; add A then add B gives the
# same side file and findings as add A+B.
B=${CS_BIN:-build/copyscope}
T=${CS_TMP:-/tmp}/lfvote-sh.$$
DATA=../shared/data/twemoji-64/img
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; [ -f "$T/err" ] && head -c 800 "$T/err"; }
mkdir -p "$T/refs" "$T/more" "$T/q" || exit 1
unset COPYSCOPE_DB
for x in 1f355 1f600 1f680 1f30d; do cp "$DATA/$x.png" "$T/refs/"; done
cp "$DATA/1f684.png" "$T/more/" # sorts last: A+B at once gives the same rows
cp "$DATA/1f30d.png" "$T/q/globe.png"
V="$T/i.db.lfvote"
findings() { sqlite3 "$T/i.db" "SELECT ref_id, verdict, severity, json_extract(evidence_json, '$.local') FROM findings WHERE generation_id = (SELECT max(id) FROM generations)" 2>/dev/null; }
by_sha() { sqlite3 "$1" "SELECT r.sha256, f.verdict, f.severity, json_extract(f.evidence_json, '$.local') FROM findings f JOIN refs r ON r.id = f.ref_id WHERE f.generation_id = (SELECT max(id) FROM generations) ORDER BY r.sha256, f.id" 2>/dev/null; }

$B index add --db "$T/i.db" "$T/refs" >/dev/null 2>"$T/err"
# (stderr: nothing but index add's note that 4 references are too few for the default tiny embedding)
[ $? -eq 0 ] && [ -s "$V" ] && ! grep -v "no tiny embedding yet" "$T/err" && ok add_writes_side_file || bad add_writes_side_file
$B index stats --db "$T/i.db" > "$T/stats" 2>"$T/err"
grep -q "ok .*SIFT vote index .*i.db.lfvote\$" "$T/stats" && ok stats_lists_it || { bad stats_lists_it; cat "$T/stats"; }

$B analyze --db "$T/i.db" --images "$T/q" >/dev/null 2>"$T/err"
[ $? -eq 0 ] && ! grep -q "vote index" "$T/err" && ok analyze_loads_silently || bad analyze_loads_silently
F0=$(findings)
[ -n "$F0" ] && ok findings_present || bad findings_present

rm -f "$V"
$B analyze --db "$T/i.db" --images "$T/q" >/dev/null 2>"$T/err"
[ $? -eq 0 ] && grep -q "vote index: .*i.db.lfvote: missing; rebuilt and saved for 4 references" "$T/err" && [ -s "$V" ] \
  && [ "$(findings)" = "$F0" ] && ok missing_rebuilt || bad missing_rebuilt

head -c 1000 "$V" > "$T/cut" && cp "$T/cut" "$V"
$B analyze --db "$T/i.db" --images "$T/q" >/dev/null 2>"$T/err"
[ $? -eq 0 ] && grep -q "vote index: .*i.db.lfvote: .*rebuilt and saved" "$T/err" && [ "$(findings)" = "$F0" ] \
  && ok truncated_rebuilt || bad truncated_rebuilt
$B analyze --db "$T/i.db" --images "$T/q" >/dev/null 2>"$T/err"
! grep -q "vote index" "$T/err" && ok rebuilt_file_loads || bad rebuilt_file_loads

# a reference added behind the side file's back (a copy of the store from
# before): the analysis sees other records and rebuilds
cp "$V" "$T/old.lfvote"
$B index add --db "$T/i.db" "$T/more" >/dev/null 2>"$T/err"
! cmp -s "$V" "$T/old.lfvote" && ok add_refreshes || bad add_refreshes
cp "$V" "$T/new.lfvote"
cp "$T/old.lfvote" "$V"
$B analyze --db "$T/i.db" --images "$T/q" >/dev/null 2>"$T/err"
[ $? -eq 0 ] && grep -q "built for another reference set (4 references, now 5); 1 appended to it and saved" "$T/err" \
  && cmp -s "$V" "$T/new.lfvote" && ok stale_appended || bad stale_appended

# incremental: add A then add B gives the same side file (exact search at
# this size: the same bytes) and the same findings as A+B at once
mkdir -p "$T/ab"; cp "$T/refs/"*.png "$T/more/"*.png "$T/ab/"
$B index add --db "$T/ab.db" "$T/ab" >/dev/null 2>"$T/err"
cmp -s "$T/ab.db.lfvote" "$T/new.lfvote" && ok incremental_same_bytes || bad incremental_same_bytes
$B analyze --db "$T/i.db" --images "$T/q" >/dev/null 2>"$T/err"
F1=$(by_sha "$T/i.db")
$B analyze --db "$T/ab.db" --images "$T/q" >/dev/null 2>"$T/err"
[ -n "$F1" ] && [ "$(by_sha "$T/ab.db")" = "$F1" ] \
  && ok incremental_same_findings || bad incremental_same_findings

rm -rf "$T"
echo "tests/test_lf_vote.sh: $p passed, $f failed"
[ $f -eq 0 ]
