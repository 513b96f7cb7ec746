#!/bin/sh
# Answers a user can trust (issue 19): each check is a path that used to give
# a confident wrong answer. Empty or missing stores refuse to answer; suite
# references are checked before work; captions cannot drive the terminal; ...
# Each checks the exit status and the message.
B=${CS_BIN:-build/copyscope}
B=$(cd "$(dirname "$B")" && pwd)/$(basename "$B")
R=$(pwd)
T=${CS_TMP:-/tmp}/trust-sh.$$
DATA=$R/../shared/data/twemoji-64/img
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; [ -f "$T/err" ] && head -c 600 "$T/err"; }
mkdir -p "$T/refs" "$T/cwd" "$T/junk" || exit 1
unset COPYSCOPE_DB

# --- 1: a missing or empty store is an error naming it and saying `index add`
cd "$T/cwd" || exit 1
$B run "$R/suites/twemoji-empirical.json" --fail-on copy >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "copyscope.db: no such store.*index add" "$T/err" && [ ! -e copyscope.db ] &&
  [ ! -d copyscope-out/generations ] && ok run_without_db_refused || bad "run_without_db_refused (rc=$rc)"
for c in "analyze --images $DATA" "index stats" "index query $DATA/1f600.png"; do
  $B $c >/dev/null 2>"$T/err"; rc=$?
  name=$(echo "$c" | cut -d' ' -f1-2 | tr ' ' _)
  [ $rc -eq 1 ] && grep -q "copyscope.db: no such store.*index add" "$T/err" && [ ! -e copyscope.db ] &&
    ok "missing_store_$name" || bad "missing_store_$name (rc=$rc)"
done
# a store whose every input was an error holds no references
echo "not an image" > "$T/junk/a.png"
$B index add --db "$T/junk.db" "$T/junk" >/dev/null 2>&1
for c in "analyze --images $DATA" "index stats" "index query $DATA/1f600.png"; do
  $B $c --db "$T/junk.db" >/dev/null 2>"$T/err"; rc=$?
  name=$(echo "$c" | cut -d' ' -f1-2 | tr ' ' _)
  [ $rc -eq 1 ] && grep -q "junk.db: the store holds no references.*index add" "$T/err" &&
    ok "empty_store_$name" || bad "empty_store_$name (rc=$rc)"
done
$B run "$R/suites/twemoji-empirical.json" --db "$T/junk.db" --fail-on copy >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "holds no references" "$T/err" && ok run_empty_store_refused || bad "run_empty_store_refused (rc=$rc)"
cd "$R" || exit 1

# --- 5: suite references (expect_ref, ref, mask) checked before anything runs
for x in 1f355 1f600 1f680; do cp "$DATA/$x.png" "$T/refs/"; done
$B index add --db "$T/i.db" "$T/refs" >/dev/null 2>&1 || bad index_add
cat > "$T/typo.json" <<J
{"name": "typo", "model": "empirical", "defaults": {"size": 64, "steps": 4, "samples": 1},
 "prompts": [{"id": "pizza", "text": "pizza", "expect_ref": "refs/1f355.png"},
             {"id": "rocket", "text": "rocket", "expect_ref": "refs/1f35.png"}]}
J
$B run "$T/typo.json" --db "$T/i.db" --out "$T/o1" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q 'typo.json: prompts\[1\].expect_ref: "refs/1f35.png" is not in the index' "$T/err" &&
  [ ! -d "$T/o1/generations" ] && ok expect_ref_typo_refused || bad "expect_ref_typo_refused (rc=$rc)"
cat > "$T/mask.json" <<J
{"name": "mask", "model": "empirical", "defaults": {"size": 64, "steps": 4, "samples": 1},
 "prompts": [{"id": "pizza", "text": "pizza"}],
 "completions": [{"id": "grin", "ref": "refs/1f600.png", "strength": 0.5},
                 {"id": "grin-m", "ref": "refs/1f600.png", "mask": "masks/nope.png"}]}
J
$B generate "$T/mask.json" --db "$T/i.db" --out "$T/o2" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q 'mask.json: completions\[1\].mask: .*masks/nope.png: No such file' "$T/err" &&
  [ ! -d "$T/o2" ] && ok mask_typo_refused || bad "mask_typo_refused (rc=$rc)"
sed 's#refs/1f600.png", "strength#refs/1f60.png", "strength#' "$T/mask.json" > "$T/ref.json"
$B run "$T/ref.json" --db "$T/i.db" --out "$T/o3" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q 'ref.json: completions\[0\].ref: .*refs/1f60.png: No such file' "$T/err" &&
  ok ref_typo_refused || bad "ref_typo_refused (rc=$rc)"

# --- 4: the same images at any -j (sd-tiny: OpenBLAS's own threading changed
# pixels by one grey level between -j 1 and -j 2). CS_THREAD_GRAIN_NS=0: every
# loop on all threads (by default this small model runs on one)
S=$R/../shared/refs
cat > "$T/tiny.json" <<J
{"name": "tiny-j", "model": "$S/sd-tiny/model.safetensors", "config": "$S/sd-tiny/config.json",
 "vocab": "$S/clip-bpe/bpe_simple_vocab_16e6.txt.gz",
 "defaults": {"sampler": "euler_a", "schedule": "karras", "steps": 6, "size": 32, "samples": 2, "seed": 1000},
 "prompts": [{"id": "cabin", "text": "a cozy wooden cabin in a snowy forest at dusk, oil painting", "sampler": "euler"},
             {"id": "astronaut", "text": "a photograph of an astronaut riding a horse", "sampler": "heun", "seeds": [7, 8]}]}
J
for j in 1 3; do
  iv=30; [ $j -eq 1 ] && iv=0.02
  CS_THREAD_GRAIN_NS=0 CS_PROGRESS_INTERVAL=$iv $B generate "$T/tiny.json" --db "$T/g$j.db" --out "$T/gj$j" -j $j >/dev/null 2>"$T/gerr$j" ||
    bad "generate_j$j"
  (cd "$T/gj$j" && find . -name '*.png' | sort | xargs sha256sum) > "$T/sum$j"
done
[ "$(wc -l < "$T/sum1")" -eq 4 ] && cmp -s "$T/sum1" "$T/sum3" && ok same_images_any_j ||
  { bad same_images_any_j; diff "$T/sum1" "$T/sum3"; }
# --- 6: off a terminal, progress is periodic log lines (here every 0.02 s);
# a short command at the default 30 s interval stays quiet
n=$(grep -cE '^copyscope: generate [0-9]+/[0-9]+  [0-9.]+ step/s  (ETA|in) ' "$T/gerr1")
[ "$n" -ge 2 ] && ok progress_log_lines || { bad "progress_log_lines ($n lines)"; cat "$T/gerr1"; }
[ ! -s "$T/gerr3" ] && ok progress_quiet_when_short || { bad progress_quiet_when_short; cat "$T/gerr3"; }

# --- 11: two members named 000.png in one shard are two images, each with its caption
mkdir -p "$T/t1" "$T/t2"
cp "$DATA/1f355.png" "$T/t1/000.png"; echo "slice of pizza" > "$T/t1/000.txt"
cp "$DATA/1f680.png" "$T/t2/000.png"; echo "rocket" > "$T/t2/000.txt"
tar cf "$T/dup.tar" -C "$T/t1" 000.png 000.txt && tar rf "$T/dup.tar" -C "$T/t2" 000.png 000.txt
out=$($B index add --db "$T/tar.db" "$T/dup.tar" 2>"$T/err")
pz=$(sha256sum < "$DATA/1f355.png" | cut -c1-12); rk=$(sha256sum < "$DATA/1f680.png" | cut -c1-12)
$B index ls --db "$T/tar.db" > "$T/ls" 2>&1
echo "$out" | grep -q "^index add: 2 added" && grep "$pz" "$T/ls" | grep -q "dup.tar//000.png[[:space:]].*slice of pizza" &&
  grep "$rk" "$T/ls" | grep -q "dup.tar//000.png#2[[:space:]].*rocket" && ok tar_duplicate_names_kept ||
  { bad tar_duplicate_names_kept; echo "$out"; cat "$T/ls"; }
$B index add --db "$T/tar.db" "$T/dup.tar" 2>&1 | grep -q "0 added, 0 duplicates, 0 errors, 2 already indexed" &&
  ok tar_duplicate_names_rerun || bad tar_duplicate_names_rerun

# --- 12: two processes creating the same new store both succeed (20 trials)
fails=0
for i in $(seq 1 20); do
  $B index add --db "$T/race$i.db" --attribution a >/dev/null 2>>"$T/race.err" & p1=$!
  $B index add --db "$T/race$i.db" --attribution b >/dev/null 2>>"$T/race.err" & p2=$!
  wait $p1 || fails=$((fails + 1)); wait $p2 || fails=$((fails + 1))
done
[ $fails -eq 0 ] && ok schema_race || { bad "schema_race ($fails of 40 failed)"; head -3 "$T/race.err"; }

# --- 14: captions cannot drive the terminal (index ls, the run summary)
mkdir -p "$T/esc"
cp "$DATA/1f680.png" "$T/esc/000.png"; printf 'rocket\033[2J\033]0;pwned\007 tab\there' > "$T/esc/000.txt"
tar cf "$T/esc.tar" -C "$T/esc" 000.png 000.txt
$B index add --db "$T/esc.db" "$T/esc.tar" >/dev/null 2>&1
$B index ls --db "$T/esc.db" > "$T/ls.out" 2>&1
cat > "$T/esc.json" <<J
{"name": "esc", "model": "empirical", "defaults": {"size": 64, "steps": 4, "samples": 1, "guidance": 1.0},
 "prompts": [{"id": "any", "text": ""}]}
J
$B run "$T/esc.json" --db "$T/esc.db" --out "$T/o4" > "$T/run.out" 2>&1
ctl() { LC_ALL=C grep -c "$(printf '[\001-\010\013-\037\177]')" "$1"; }
[ "$(ctl "$T/ls.out")" -eq 0 ] && grep -qF 'rocket\x1b[2J\x1b]0;pwned\x07 tab\x09here' "$T/ls.out" &&
  [ "$(awk -F'\t' '{print NF}' "$T/ls.out")" -eq 6 ] && ok ls_caption_escaped || { bad ls_caption_escaped; cat -v "$T/ls.out"; }
[ "$(ctl "$T/run.out")" -eq 0 ] && grep -qF 'rocket\x1b[2J' "$T/run.out" && ok run_summary_escaped ||
  { bad run_summary_escaped; cat -v "$T/run.out" | tail -8; }
# --- 9: the run summary says how many references it searched (as the report
# does), also when the analysis was done before and skipped
$B run "$T/esc.json" --db "$T/esc.db" --out "$T/o4" > "$T/run2.out" 2>&1
grep -q '^images: 1 generations against 1 reference (analysis 1): copy ' "$T/run.out" &&
  grep -q '^images: 1 generations against 1 reference (analysis 1): ' "$T/run2.out" &&
  grep -q 'already has a finding' "$T/run2.out" && ok run_summary_reference_count ||
  { bad run_summary_reference_count; grep -E 'images:|analy' "$T/run.out" "$T/run2.out"; }

# --- 17: index ls --json is valid JSON (UTF-8) for a file name that is not UTF-8
mkdir -p "$T/u8"; cp "$DATA/1f600.png" "$T/u8/$(printf 'a\377b.png')"
$B index add --db "$T/u8.db" "$T/u8" >/dev/null 2>&1
$B index ls --db "$T/u8.db" --json > "$T/u8.json" 2>&1
hex=$(printf '%s/u8/a\377b.png' "$T" | od -An -tx1 | tr -d ' \n')
iconv -f UTF-8 -t UTF-8 "$T/u8.json" >/dev/null 2>&1 && grep -q "\"source_hex\":[[:space:]]*\"$hex\"" "$T/u8.json" &&
  grep -q "a$(printf '\357\277\275')b.png" "$T/u8.json" && ok ls_json_utf8 || { bad ls_json_utf8; cat -v "$T/u8.json"; }

# --- 16: when the disk fills (here: a file size limit), the summary counts only what was stored
mkdir -p "$T/many"
for x in $(ls "$DATA" | sort | head -n 200); do cp "$DATA/$x" "$T/many/"; done
out=$(sh -c "trap '' XFSZ; ulimit -f 2000; exec $B index add --db $T/full.db --batch 20 -j 2 $T/many" 2>"$T/err"); rc=$?
said=$(echo "$out" | sed -n 's/^index add: \([0-9]*\) added.*/\1/p')
stored=$($B index ls --db "$T/full.db" 2>/dev/null | wc -l)
[ $rc -eq 1 ] && [ -n "$said" ] && [ "$said" -gt 0 ] && [ "$said" -lt 200 ] && [ "$said" -eq "$stored" ] &&
  ok full_disk_counts_stored || bad "full_disk_counts_stored (rc=$rc, said '$said', stored $stored)"

# --- 19: make asan appends the sanitizer flags (keeps -std=c17 and -g: reports with line numbers)
make -n -B asan 2>/dev/null | grep ' -c core/err.c -o build-asan/core/err.o' | grep -- '-std=c17' | grep -- ' -g ' |
  grep -q -- '-fsanitize=address' && ok asan_keeps_cflags || bad asan_keeps_cflags

# --- 19: report --text-audit of an audit that does not exist is an error; a
# killed report's old temporary file is cleaned, a fresh one (a live writer's) kept
$B report --db "$T/esc.db" --text-audit 99 --out "$T/r99.html" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "esc.db: --text-audit 99: no such text audit" "$T/err" && [ ! -e "$T/r99.html" ] &&
  ok report_missing_text_audit || bad "report_missing_text_audit (rc=$rc)"
echo junk > "$T/r.html.tmp-AbC123"; touch -d '1 hour ago' "$T/r.html.tmp-AbC123"; echo live > "$T/r.html.tmp-XyZ789"
$B report --db "$T/esc.db" --out "$T/r.html" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 0 ] && [ ! -e "$T/r.html.tmp-AbC123" ] && [ -e "$T/r.html.tmp-XyZ789" ] && [ -s "$T/r.html" ] &&
  ok report_stale_tmp_cleaned || bad "report_stale_tmp_cleaned (rc=$rc)"

# --- 19: a symbolic link loop is not called "dangling"
mkdir -p "$T/links"; cp "$DATA/1f600.png" "$T/links/ok.png"
ln -s loop2.png "$T/links/loop1.png"; ln -s loop1.png "$T/links/loop2.png"; ln -s gone.png "$T/links/dangling.png"
$B index add --db "$T/links.db" "$T/links" >/dev/null 2>&1
$B index ls --db "$T/links.db" --errors > "$T/lserr" 2>&1
grep "loop1.png" "$T/lserr" | grep -q "symbolic link loop" && ! grep "loop1.png" "$T/lserr" | grep -q dangling &&
  grep "dangling.png" "$T/lserr" | grep -q "dangling symbolic link" && ok symlink_loop_named ||
  { bad symlink_loop_named; cat "$T/lserr"; }

# --- text audit against a missing store is an error and creates nothing;
# against a store with no text indexed, an error (never "novel" from nothing)
echo '{"id": "a", "prompt": "x", "completion": "some words"}' > "$T/ta.jsonl"
$B text audit "$T/ta.jsonl" --db "$T/ta-none.db" --out "$T/ta.r" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "ta-none.db: no such store" "$T/err" && [ ! -e "$T/ta-none.db" ] && [ ! -e "$T/ta.r" ] &&
  ok text_audit_missing_store || { bad "text_audit_missing_store (rc=$rc)"; cat "$T/err"; }
: > "$T/ta-empty.txt"
$B text index "$T/ta-empty.txt" --db "$T/ta-empty.db" >/dev/null 2>&1
$B text audit "$T/ta.jsonl" --db "$T/ta-empty.db" --out "$T/ta.r" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "ta-empty.db: no text indexed" "$T/err" && [ ! -e "$T/ta.r" ] &&
  ok text_audit_empty_store || { bad "text_audit_empty_store (rc=$rc)"; cat "$T/err"; }

rm -rf "$T"
echo "test_trust.sh: $p passed, $f failed"
[ $f -eq 0 ]
