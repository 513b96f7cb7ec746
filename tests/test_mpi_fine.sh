#!/bin/sh
# `analyze` under mpirun: the pixel rules' replaced-part veto at the working
# resolution (part_al at 256 px, analyze/an_part.h) on every rank, as in one
# process (issue 17: the same findings at any rank count). The veto re-reads
# the generation's file (its path travels with the queries, never rank 0's
# pointer) and the reference's source by id from the store the rank has
# open (the manifest's refs on a sharded store), on the rank that verifies
# the pair. Data (python3 with PIL, as test_demo_model.sh): a 256 px folder
# template whose emblem is a blue/white checker of 12 px squares (the
# fixture of test_part_al_fine.c) among 30 twemoji; generations: two
# template twins whose emblem's blue is another colour of about the same
# grey (so the 64 px tiled L2 and hashes are close, and the 64 px part
# measurement sees no replaced part) and a copy. One process: the twins are
# novel (the 256 px veto: a replaced part) and the copy is a copy. On an
# unsharded, a 2-shard and a 3-shard store at 1, 2 and 3 ranks the report's
# JSON (dates and store name aside) is one process's; before the fix the
# ranks measured at 64 px and flagged the twins (near-copy, partial).
# Then the reference's file moved away: one process and 2 ranks both fall
# back to 64 px with the reason, the same report.
# Without build/copyscope-mpi, mpirun or python3 with PIL it prints 'skip'.
B=${CS_BIN:-build/copyscope}
M=$(dirname "$B")/copyscope-mpi
T=${CS_TMP:-/tmp}/mpi-fine-sh.$$
DATA=$(cd ../shared/data/twemoji-64/img 2>/dev/null && pwd)
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; }
skip() { echo "skip: $1"; echo "test_mpi_fine.sh: 0 passed, 0 failed"; exit 0; }
[ -n "$DATA" ] || skip "../shared/data/twemoji-64 missing"
if [ ! -x "$M" ] || ! command -v mpirun > /dev/null 2>&1; then
  skip "$M or mpirun missing (make mpi; apt-get install libopenmpi-dev openmpi-bin)"
fi
$PY -c 'import PIL' 2> /dev/null || skip "python3 with PIL missing"
MPIRUN="mpirun --oversubscribe --allow-run-as-root"
mkdir -p "$T/refs" "$T/gens" || exit 1
for x in $(ls "$DATA" | sort | awk 'NR % 40 == 1' | head -n 30); do cp "$DATA/$x" "$T/refs/"; done
$PY - "$T" <<'PYEOF' || { echo "FAIL images"; exit 1; }
import sys
from PIL import Image
W = (250, 250, 250)
def folder(c0, c1):
    # test_part_al_fine.c's fine_template: a page, a folder body, two bands
    # and an emblem of 12 px squares at (98, 110)
    im = Image.new('RGB', (256, 256)); px = im.load()
    for y in range(256):
        for x in range(256):
            body = 32 <= x < 224 and 64 <= y < 224
            tab = 32 <= x < 112 and 44 <= y < 64
            if 98 <= x < 170 and 110 <= y < 182: c = c1 if ((x - 98) // 12 + (y - 110) // 12) % 2 else c0
            elif body and 200 <= y < 216: c = (40, 40, 160)
            elif body and 72 <= y < 88: c = W
            elif body or tab: c = (200, 150, 60)
            else: c = (235, 235, 235)
            px[x, y] = c
    return im
d = sys.argv[1]
folder((40, 40, 160), W).save(d + '/refs/folder.png')
folder((40, 40, 160), W).save(d + '/gens/copy.png')
folder((110, 30, 20), W).save(d + '/gens/twin-red.png')   # grey about the blue's
folder((20, 70, 40), W).save(d + '/gens/twin-green.png')
PYEOF
norm() { sed -E '/"(generated|store|started|finished)":/d' "$1"; }
report() { $B report --db "$1" --format json --out "$T/$2.raw.json" -q > /dev/null 2>&1 && norm "$T/$2.raw.json" > "$T/$2.json"; }
# FILE GEN: the verdict of GEN's finding with the folder, and the working
# resolution of the pixel rules' replaced part (evidence tl2.replaced_part,
# part_al; "-" where not measured), "verdict resolution"
verdict() {
  $PY - "$1" "$2" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
for g in d["findings"]:
    if g["generation"]["path"].endswith("/" + sys.argv[2]) and g["ref"]["source"].endswith("/folder.png"):
        rp = (g["evidence"].get("tl2") or {}).get("replaced_part") or {}
        print(g["verdict"], rp.get("working_resolution", "-"))
PYEOF
}
$B index add "$T/refs" --db "$T/one.db" -j 2 > /dev/null 2>&1 && ok one_add || bad one_add
for s in 2 3; do $B index add "$T/refs" --db "$T/s$s.db" --shards $s -j 2 > /dev/null 2>&1 && ok "s${s}_add" || bad "s${s}_add"; done
# DIR SRC: a fresh copy of store SRC (and its side files) as DIR/x.db
fresh() {
  rm -rf "$1"; mkdir -p "$1"; cp "$T/$2" "$1/x.db"
  for side in lfvote lfrec lfquant; do [ -e "$T/$2.$side" ] && cp "$T/$2.$side" "$1/x.db.$side"; done
  [ -d "$T/$2.shards" ] && cp -r "$T/$2.shards" "$1/x.db.shards"
  return 0
}
fresh "$T/w" one.db
$B analyze --images "$T/gens" --db "$T/w/x.db" -j 1 -q > /dev/null 2>&1 || bad one_analyze
report "$T/w/x.db" one
# the case itself: one process vetoes both twins at 256 px, keeps the copy
[ "$(verdict "$T/one.raw.json" twin-red.png)" = "novel 256" ] && [ "$(verdict "$T/one.raw.json" twin-green.png)" = "novel 256" ] &&
  [ "$(verdict "$T/one.raw.json" copy.png | cut -d' ' -f1)" = copy ] && ok one_process_vetoes_twins_at_256 ||
  bad "one_process_vetoes_twins_at_256: red $(verdict "$T/one.raw.json" twin-red.png), green $(verdict "$T/one.raw.json" twin-green.png), copy $(verdict "$T/one.raw.json" copy.png)"
for s in 0 2 3; do
  src=one.db; [ $s -gt 0 ] && src=s$s.db
  for n in 1 2 3; do
    fresh "$T/w" $src
    $MPIRUN -np $n "$M" analyze --images "$T/gens" --db "$T/w/x.db" -j 1 -q > /dev/null 2> "$T/a$s-$n.err" ||
      { bad "shards${s}_np${n}_analyze"; tail -n 5 "$T/a$s-$n.err"; }
    report "$T/w/x.db" "a$s-$n"
    cmp -s "$T/one.json" "$T/a$s-$n.json" && ok "shards${s}_np${n}_same_findings_as_one_process" ||
      { bad "shards${s}_np${n}_same_findings_as_one_process: twins $(verdict "$T/a$s-$n.raw.json" twin-red.png), $(verdict "$T/a$s-$n.raw.json" twin-green.png)"
        diff "$T/one.json" "$T/a$s-$n.json" | head -n 8; }
  done
done
# the reference's file gone: 64 px with the reason on every rank, as in one process
mv "$T/refs/folder.png" "$T/folder-moved.png"
fresh "$T/w" one.db
$B analyze --images "$T/gens" --db "$T/w/x.db" -j 1 -q > /dev/null 2>&1 || bad moved_one_analyze
report "$T/w/x.db" moved1
for s in 0 2; do
  src=one.db; [ $s -gt 0 ] && src=s$s.db
  fresh "$T/w" $src
  $MPIRUN -np 2 "$M" analyze --images "$T/gens" --db "$T/w/x.db" -j 1 -q > /dev/null 2> "$T/m$s.err" || bad "moved_shards${s}_np2_analyze"
  report "$T/w/x.db" "moved2-$s"
  [ "$(verdict "$T/moved1.raw.json" twin-red.png | cut -d' ' -f2-)" = "64: reference source missing" ] &&
    cmp -s "$T/moved1.json" "$T/moved2-$s.json" && ok "moved_shards${s}_np2_64px_with_reason_as_one_process" ||
    { bad "moved_shards${s}_np2_64px_with_reason_as_one_process: $(verdict "$T/moved1.raw.json" twin-red.png)"
      diff "$T/moved1.json" "$T/moved2-$s.json" | head -n 8; }
done
[ -n "$CS_KEEP" ] || rm -rf "$T"
echo "test_mpi_fine.sh: $p passed, $f failed"
[ $f -eq 0 ]
