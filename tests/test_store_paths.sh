#!/bin/sh
# Paths that do not depend on the folder a command runs from (issue 19, item
# 3): a run made in one folder is rerun, reported and analysed from another;
# a missing image is an error naming it; --out for a run that exists is
# refused while the old folder holds its images, honoured once it was moved;
# a store written by an older version (relative paths) is migrated.
B=${CS_BIN:-build/copyscope}
B=$(cd "$(dirname "$B")" && pwd)/$(basename "$B")
R=$(pwd)
T=${CS_TMP:-/tmp}/paths-sh.$$
DATA=$R/../shared/data/twemoji-64/img
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; [ -f "$T/err" ] && head -c 800 "$T/err"; }
mkdir -p "$T/s/refs" "$T/a" "$T/b" "$T/suite/masks" || exit 1
unset COPYSCOPE_DB
for x in 1f355 1f600 1f680; do cp "$DATA/$x.png" "$T/s/refs/"; done
echo "slice of pizza" > "$T/s/refs/1f355.txt"; echo "rocket" > "$T/s/refs/1f680.txt"
echo "grinning face" > "$T/s/refs/1f600.txt"
$B index add --db "$T/s/i.db" "$T/s/refs" >/dev/null 2>&1 || bad index_add
# the suite's ref and mask are relative to the suite file
cp "$DATA/1f600.png" "$T/suite/grin.png"
cat > "$T/suite/p.json" <<J
{"name": "paths", "model": "empirical", "defaults": {"size": 64, "steps": 4, "samples": 2, "seed": 3},
 "prompts": [{"id": "pizza", "text": "slice of pizza"}, {"id": "rocket", "text": "rocket"}],
 "completions": [{"id": "grin", "ref": "grin.png", "rect": [32, 0, 32, 64], "samples": 1}]}
J
shas() { find "$1" -name '*.png' | sort | xargs ls -li | awk '{print $1, $NF}'; }
gen_dir() { sqlite3 "$T/s/i.db" "SELECT json_extract(settings_json, '\$.out') FROM runs WHERE id = $1"; }

# --- generate in one folder (relative --db), run from another: nothing made again, no FK error
cd "$T/a" || exit 1
$B generate ../suite/p.json --db ../s/i.db >/dev/null 2>"$T/err" || bad "generate_in_a (rc=$?)"
shas "$T/a/generations" > "$T/before"
[ "$(wc -l < "$T/before")" -eq 5 ] || bad "five images ($(wc -l < "$T/before"))"
n_rel=$(sqlite3 "$T/s/i.db" "SELECT COUNT(*) FROM generations WHERE path NOT LIKE '/%'")
[ "$n_rel" -eq 0 ] && ok paths_stored_absolute || bad "paths_stored_absolute ($n_rel relative)"
cd "$T/b" || exit 1
$B run ../suite/p.json --db ../s/i.db > "$T/run1" 2>"$T/err"; rc=$?
[ $rc -eq 0 ] && grep -q "0 images made, 5 already there; $T/a/generations/paths-" "$T/run1" &&
  shas "$T/a/generations" | cmp -s - "$T/before" && [ -z "$(find "$T/b" -name "*.png")" ] &&
  ok unanalysed_run_from_other_folder || { bad "unanalysed_run_from_other_folder (rc=$rc)"; cat "$T/run1"; }
# analysed now: a rerun from a third folder used to fail on FOREIGN KEY
cd "$T" || exit 1
$B run suite/p.json --db s/i.db > "$T/run2" 2>"$T/err"; rc=$?
[ $rc -eq 0 ] && grep -q "0 images made, 5 already there" "$T/run2" && grep -q "already has a finding" "$T/run2" &&
  ! grep -q "FOREIGN KEY" "$T/err" && ok analysed_run_from_other_folder ||
  { bad "analysed_run_from_other_folder (rc=$rc)"; cat "$T/run2"; }
# report from yet another folder embeds the images (5 generated panels)
mkdir -p "$T/c" && cd "$T/c" || exit 1
$B report --db ../s/i.db --format html --top 10 --out r.html > /dev/null 2>"$T/err"; rc=$?
[ $rc -eq 0 ] && ! grep -q "No such file" r.html && [ "$(grep -c 'alt="[^"]*generations/paths-' r.html)" -ge 5 ] &&
  ok report_from_other_folder || bad "report_from_other_folder (rc=$rc, $(grep -c 'No such file' r.html) gaps)"

# --- a missing image: the report marks the gap and exits 1 naming the file
gone=$(ls "$T/a/generations"/paths-*/pizza-0-*.png)
mv "$gone" "$T/moved.png"
$B report --db ../s/i.db --out r2.html > /dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "1 of 5 generated images of run 1 are missing (e.g. $gone)" "$T/err" && [ -s r2.html ] &&
  ok report_missing_image_fails || bad "report_missing_image_fails (rc=$rc)"
# generate says it makes it again, and does so with the same bytes
$B generate ../suite/p.json --db ../s/i.db > "$T/gen2" 2>"$T/err"; rc=$?
[ $rc -eq 0 ] && grep -q "1 image recorded for run 1 no longer there (e.g. $gone): made again" "$T/gen2" &&
  cmp -s "$gone" "$T/moved.png" && ok missing_image_said_and_remade || { bad "missing_image_said_and_remade (rc=$rc)"; cat "$T/gen2"; }

# --- --out for a run that exists: refused while the old folder holds its images ...
old=$(gen_dir 1)
$B generate ../suite/p.json --db ../s/i.db --out "$T/new" > /dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "run 1 (this suite with this model) keeps its images in $old" "$T/err" && [ ! -d "$T/new" ] &&
  ok out_refused_with_reason || bad "out_refused_with_reason (rc=$rc)"
# ... honoured once the folder was moved there: the images are found, not made again
mkdir -p "$T/new" && mv "$old" "$T/new/"
$B generate ../suite/p.json --db ../s/i.db --out "$T/new" > "$T/gen3" 2>"$T/err"; rc=$?
[ $rc -eq 0 ] && grep -q "5 images of run 1 found moved to $T/new/paths-" "$T/gen3" &&
  grep -q "0 images made, 5 already there" "$T/gen3" && [ "$(gen_dir 1)" = "$T/new/$(basename "$old")" ] &&
  ok out_honoured_after_move || { bad "out_honoured_after_move (rc=$rc)"; cat "$T/gen3"; }
$B report --db ../s/i.db --out r3.html > /dev/null 2>"$T/err" && ok report_after_move || bad "report_after_move (rc=$?)"

# run --out for a run that exists: the reports go there, the images stay (said), none made again
$B run ../suite/p.json --db ../s/i.db --out "$T/rep" > "$T/run3" 2>"$T/err"; rc=$?
[ $rc -eq 0 ] && grep -q "run 1 keeps its images in $T/new/paths-.*the reports go to $T/rep" "$T/run3" &&
  grep -q "0 images made, 5 already there" "$T/run3" && [ -s "$T/rep/paths-report.html" ] &&
  [ -z "$(find "$T/rep" -name '*.png')" ] && ok run_out_places_reports || { bad "run_out_places_reports (rc=$rc)"; cat "$T/run3"; }

# --- a store from before the migration (paths relative to the folder it ran in)
cp "$T/s/i.db" "$T/a/old.db"
dir=$(gen_dir 1)
mkdir -p "$T/a/out" && cp -r "$dir" "$T/a/out/"
rel="out/$(basename "$dir")"
sqlite3 "$T/a/old.db" "UPDATE generations SET path = replace(path, '$dir', '$rel');
  UPDATE runs SET settings_json = json_set(settings_json, '\$.out', '$rel');
  DELETE FROM schema_migrations WHERE name = '0019-store-paths'; DROP TABLE store_files"
cd "$T/a" || exit 1
$B index add --db old.db --attribution x >/dev/null 2>"$T/err" || bad "old_store_open (rc=$?)"
n=$(sqlite3 old.db "SELECT COUNT(*) FROM generations WHERE path LIKE '$T/a/out/%'")
[ "$n" -eq 5 ] && [ "$(sqlite3 old.db "SELECT json_extract(settings_json, '\$.out') FROM runs")" = "$T/a/$rel" ] &&
  ok old_store_migrated || bad "old_store_migrated ($n of 5)"

# --- analyze --images of a relative folder: paths stored absolute
cd "$T/a" || exit 1
$B analyze --db ../s/i.db --images out >/dev/null 2>"$T/err" || bad "analyze_images (rc=$?)"
n_rel=$(sqlite3 "$T/s/i.db" "SELECT COUNT(*) FROM generations WHERE path NOT LIKE '/%'")
[ "$n_rel" -eq 0 ] && ok images_paths_absolute || bad "images_paths_absolute ($n_rel relative)"
cd "$R" || exit 1

# --- the store is a file set: index stats lists every file; a copy of the .db
# alone (embeddings left behind) is refused naming the missing side file
cd "$R" || exit 1
$B index add --db "$T/s/i.db" --embedder tiny >/dev/null 2>"$T/err" || bad "embedder_tiny (rc=$?)"
$B index stats --db "$T/s/i.db" > "$T/stats" 2>"$T/err"; rc=$?
[ $rc -eq 0 ] && grep -q "^embeddings  tiny: 3 x [0-9]" "$T/stats" &&
  grep -q "ok .*embedding column .*$T/s/i.db.vec-tiny\$" "$T/stats" &&
  grep -q "ok .*embedding ids .*$T/s/i.db.vec-tiny.ids\$" "$T/stats" && grep -q "ok .*database .*$T/s/i.db\$" "$T/stats" &&
  ok stats_lists_files || { bad "stats_lists_files (rc=$rc)"; cat "$T/stats"; }
mkdir -p "$T/copy" && sqlite3 "$T/s/i.db" "VACUUM INTO '$T/copy/i.db'"
$B index query --db "$T/copy/i.db" "$DATA/1f600.png" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "copy/i.db: side file $T/copy/i.db.tinydesc.safetensors (tiny embedder weights) is missing, and 2 more: a store is" "$T/err" &&
  ok db_alone_refused || bad "db_alone_refused (rc=$rc)"
$B analyze --db "$T/copy/i.db" --run 1 >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "side file .*tinydesc.* is missing" "$T/err" && ok db_alone_analyze_refused ||
  bad "db_alone_analyze_refused (rc=$rc)"
$B index stats --db "$T/copy/i.db" --json > "$T/sj" 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q '"missing_files":[[:space:]]*3' "$T/sj" && ok stats_names_missing || bad "stats_names_missing (rc=$rc)"
$B index stats --db "$T/copy/i.db" --forget-missing > /dev/null 2>"$T/err"; rc=$?
[ $rc -eq 0 ] && grep -q "3 missing side files forgotten" "$T/err" &&
  $B index query --db "$T/copy/i.db" "$DATA/1f600.png" >/dev/null 2>&1 && ok forget_missing ||
  bad "forget_missing (rc=$rc)"

rm -rf "$T"
echo "test_store_paths.sh: $p passed, $f failed"
[ $f -eq 0 ]
