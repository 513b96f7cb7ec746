#!/bin/sh
# --json, one behaviour on every command people script (issue 19, item 10):
# stdout is exactly one JSON document (checked with Python's json module)
# holding the summary; the human lines go to stderr; a usage error prints
# nothing on stdout.
B=${CS_BIN:-build/copyscope}
B=$(cd "$(dirname "$B")" && pwd)/$(basename "$B")
R=$(pwd)
T=${CS_TMP:-/tmp}/json-sh.$$
DATA=$R/../shared/data/twemoji-64/img
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; [ -f "$T/err" ] && head -c 600 "$T/err"; }
mkdir -p "$T/refs" || exit 1
unset COPYSCOPE_DB
export CS_PROGRESS=0
for x in 1f355 1f600 1f680; do cp "$DATA/$x.png" "$T/refs/"; done
echo "slice of pizza" > "$T/refs/1f355.txt"; echo "rocket" > "$T/refs/1f680.txt"
cat > "$T/s.json" <<J
{"name": "js", "model": "empirical", "defaults": {"size": 64, "steps": 4, "samples": 1},
 "prompts": [{"id": "pizza", "text": "slice of pizza"}]}
J
printf 'the quick brown fox jumps over the lazy dog and then runs far away into the deep green forest\n' > "$T/doc.txt"
D="--db $T/i.db"
# check NAME KEY CMD...: exit 0, stdout one JSON object with KEY
check() {
  name=$1; key=$2; shift 2
  "$@" > "$T/out" 2>"$T/err"; rc=$?
  if [ $rc -eq 0 ] && python3 -c "import json,sys; d=json.load(open('$T/out')); sys.exit(0 if isinstance(d, dict) and '$key' in d else 1)" 2>/dev/null
  then ok "json_$name"; else bad "json_$name (rc=$rc)"; head -c 300 "$T/out"; fi
}
check index_add added $B index add $D --json "$T/refs"
check index_add_embedder embedder $B index add $D --json --embedder tiny
check index_stats files $B index stats $D --json
check generate run_id $B generate "$T/s.json" $D --out "$T/o/generations" --json
check analyze verdicts $B analyze $D --run 1 --json
check run verdicts $B run "$T/s.json" $D --out "$T/o" --json
check report report $B report $D --out "$T/r.html" --json
check text_index documents $B text index $D --json "$T/doc.txt"
check text_prompts prompts $B text prompts $D --prefix-words 4 --continuation-words 4 --out "$T/p.jsonl" --json
check text_generate completions $B text generate "$T/p.jsonl" $D --model ngram --out "$T/c.jsonl" --json
check text_audit audit_id $B text audit "$T/c.jsonl" $D --out "$T/a.jsonl" --json
# the human summary went to stderr, not stdout
$B run "$T/s.json" $D --out "$T/o" --json > "$T/out" 2>"$T/err"
grep -q "== summary of run 1" "$T/err" && ! grep -q "==" "$T/out" && ok json_human_lines_on_stderr ||
  bad json_human_lines_on_stderr
# JSON output that is a stream (stdout) cannot also carry the summary: refused
$B text prompts $D --prefix-words 4 --continuation-words 4 --json > "$T/out" 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && [ ! -s "$T/out" ] && grep -q "json needs --out FILE" "$T/err" && ok json_needs_out || bad "json_needs_out (rc=$rc)"
$B report $D --out - --json > "$T/out" 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && [ ! -s "$T/out" ] && ok report_json_needs_file || bad "report_json_needs_file (rc=$rc)"
# an error: nothing on stdout, the message on stderr
$B analyze $D --run 99 --json > "$T/out" 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && [ ! -s "$T/out" ] && grep -q "run 99" "$T/err" && ok json_error_empty_stdout || bad "json_error_empty_stdout (rc=$rc)"

rm -rf "$T"
echo "test_json.sh: $p passed, $f failed"
[ $f -eq 0 ]
