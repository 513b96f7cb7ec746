#!/bin/sh
# `copyscope run` under mpirun (cli/cmd_run.c): each rank samples its part
# of the suite (the empirical model over a store of 120 emoji, no local
# features: the test's time), the analysis's match batches go to the ranks
# (260 generations: 2 batches), rank 0 writes the rows and the reports. With 1, 2 and 3 ranks the image
# files, the generation, prompt and run rows and the report's JSON (minus
# its dates and store name) must be one process's, byte for byte; a rerun
# makes nothing, skips the analysis and writes the same report.
# Without build/copyscope-mpi or mpirun it prints 'skip'.
B=${CS_BIN:-build/copyscope}
M=$(dirname "$B")/copyscope-mpi
T=${CS_TMP:-/tmp}/mpi-run-sh.$$
DATA=$(cd ../shared/data/twemoji-64/img 2>/dev/null && pwd)
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; }
skip() { echo "skip: $1"; echo "test_mpi_run.sh: 0 passed, 0 failed"; exit 0; }
[ -n "$DATA" ] || skip "../shared/data/twemoji-64 missing"
if [ ! -x "$M" ] || ! command -v mpirun > /dev/null 2>&1 || ! command -v sqlite3 > /dev/null 2>&1; then
  skip "$M, mpirun or sqlite3 missing (make mpi; apt-get install libopenmpi-dev openmpi-bin sqlite3)"
fi
MPIRUN="mpirun --oversubscribe --allow-run-as-root"
mkdir -p "$T" || exit 1
ls "$DATA" | sort | awk 'NR % 3 == 1' | head -n 120 | sed "s|^|$DATA/|" > "$T/refs.txt"
$B index add "$T/refs.txt" --db "$T/base.db" --no-local-features -j 2 > /dev/null 2>&1 && ok index_add || bad index_add
cat > "$T/suite.json" <<J
{"name": "mr", "model": "empirical", "defaults": {"size": 64, "steps": 4, "samples": 86, "seed": 7},
 "prompts": [{"id": "a", "text": "keycap"}, {"id": "b", "text": "copyright sign"}, {"id": "c", "text": "squared", "samples": 88}]}
J
rows="SELECT g.id, g.run_id, g.prompt_id, g.seed, g.sample, g.sha256, g.path, g.whitebox, g.whitebox_json,
      g.settings_json FROM generations g ORDER BY g.id; SELECT * FROM prompts ORDER BY id;
      SELECT id, suite, suite_sha256, model, model_sha256, settings_json, command FROM runs ORDER BY id;
      SELECT count(*) FROM analyses"
norm() { sed -E '/"(generated|store|started|finished)":/d' "$1"; }
# N: run with N ranks (0: the plain binary) in the same folder each time (the
# empirical model's name, in the PNGs, is its store's path); NAME.{rows,sha,json}
go() {
  rm -rf "$T/w"; mkdir -p "$T/w"; cp "$T/base.db" "$T/w/r.db"
  if [ $1 -eq 0 ]; then $B run "$T/suite.json" --db "$T/w/r.db" --out "$T/w/o" -j 1 > "$T/$2.out" 2>&1
  else $MPIRUN -np $1 "$M" run "$T/suite.json" --db "$T/w/r.db" --out "$T/w/o" -j 1 > "$T/$2.out" 2>&1; fi
  rc=$?
  [ $rc -eq 0 ] && ok "$2_run" || { bad "$2_run (rc=$rc)"; tail -n 20 "$T/$2.out"; }
  sqlite3 "$T/w/r.db" "$rows" > "$T/$2.rows"
  (cd "$T/w/o" && find . -name '*.png' | sort | xargs sha256sum) > "$T/$2.sha"
  norm "$T/w/o/mr-report.json" > "$T/$2.json"
}
go 0 one
[ "$(wc -l < "$T/one.sha")" -eq 260 ] && grep -q "images: 260 generations" "$T/one.out" && ok one_260_images ||
  bad "one_260_images: $(tail -n 12 "$T/one.out")"
grep -q '"verdict":	"copy"' "$T/one.json" && ok one_has_copies || bad one_has_copies
for n in 1 2 3; do
  go $n "m$n"
  for x in rows sha json; do
    cmp -s "$T/one.$x" "$T/m$n.$x" && ok "run_np${n}_same_$x" ||
      { bad "run_np${n}_same_$x"; diff "$T/one.$x" "$T/m$n.$x" | cut -c1-150 | head -n 6; }
  done
done
grep -q "images made per rank: 87 86 87$" "$T/m3.out" && ok run_np3_generation_parts || bad "run_np3_generation_parts: $(cat "$T/m3.out")"
sed -n 's/.*candidates verified per rank:\(.*\)/\1/p' "$T/m2.out" | awk '{ for (i = 1; i <= NF; i++) if ($i <= 0) exit 1 } END { exit !(NF == 2) }' &&
  ok run_np2_verify_on_owner || bad "run_np2_verify_on_owner: $(cat "$T/m2.out")"
# a rerun under mpirun: nothing made, the analysis skipped, the same report
$MPIRUN -np 3 "$M" run "$T/suite.json" --db "$T/w/r.db" --out "$T/w/o" -j 1 > "$T/re.out" 2>&1 &&
  grep -q "0 images made, 260 already there" "$T/re.out" && grep -q "already has a finding with these settings: skipped" "$T/re.out" &&
  ok run_np3_rerun_makes_nothing || bad "run_np3_rerun_makes_nothing: $(cat "$T/re.out")"
norm "$T/w/o/mr-report.json" > "$T/re.json"
cmp -s "$T/one.json" "$T/re.json" && ok run_np3_rerun_same_report || bad run_np3_rerun_same_report
# a bad suite: one error, every rank stops (no hang)
echo '{"name": "x"' > "$T/bad.json"
timeout 120 $MPIRUN -np 2 "$M" run "$T/bad.json" --db "$T/w/r.db" --out "$T/w/o" > /dev/null 2> "$T/err"; rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && ok run_bad_suite_fails || bad "run_bad_suite_fails (rc=$rc)"
[ -n "$CS_KEEP" ] || rm -rf "$T"
echo "test_mpi_run.sh: $p passed, $f failed"
[ $f -eq 0 ]
