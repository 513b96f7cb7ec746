#!/bin/sh
# index add --embedder sscd under mpirun: every rank embeds its own shard's
# references with the ResNet-50 (batches of up to 8 formed per rank), rank 0
# merges the parts; the column (vectors and ids) must be byte-identical to
# one process's at 1, 2 and 3 ranks, float32 and q8. The weights are the
# random-weight SSCD-shaped checkpoint of ../shared/refs/resnet50 (seed 50,
# the TV_RESNET50 tensors and a 2048->512 projection; the layout
# scripts/convert_sscd.py writes): no trained weights are needed to check
# that ranks do not change a row's bits. 13 references (9 files, then a tar
# shard of 4 members), so one process's batches of 8 would be cut otherwise
# than each rank's (which failed at 2 ranks: the last bits of a row depended
# on its batch; index/embed.c now runs one image per forward pass). A second
# check adds the references in two runs. The runs are at -j 1, then one
# process and 2 ranks at -j 2 must give the same column bytes too (the
# ResNet's sgemm calls follow the shape only, index/resnet_forward.c; before,
# a row at -j 2 differed from -j 1 in its last bits). Without
# build/copyscope-mpi or mpirun it prints 'skip'.
B=${CS_BIN:-build/copyscope}
M=$(dirname "$B")/copyscope-mpi
T=$(mktemp -d "${CS_TMP:-/tmp}/cs-mpisscd-XXXXXX"); [ -n "$KEEP" ] && echo "kept: $T"
export CS_PROGRESS=0
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; }
DATA=$(cd ../shared/data/twemoji-64/img 2>/dev/null && pwd)
W=../shared/refs/resnet50/model.safetensors
MPIRUN="mpirun --oversubscribe --allow-run-as-root"
if [ -z "$DATA" ] || [ ! -f "$W" ]; then
  echo "skip: ../shared/data/twemoji-64 or ../shared/refs/resnet50 missing"
  echo "test_mpi_sscd.sh: 0 passed, 0 failed"; rm -rf "$T"; exit 0
fi
if [ ! -x "$M" ] || ! command -v mpirun > /dev/null 2>&1; then
  echo "skip: no $M or mpirun (make mpi)"
  echo "test_mpi_sscd.sh: 0 passed, 0 failed"; rm -rf "$T"; exit 0
fi
mkdir -p "$T/img" "$T/tar"
for x in $(ls "$DATA" | sort | awk 'NR % 7 == 2' | head -n 9); do cp "$DATA/$x" "$T/img/"; echo "$T/img/$x"; done > "$T/refs.txt"
for x in $(ls "$DATA" | sort | awk 'NR % 7 == 5' | head -n 4); do cp "$DATA/$x" "$T/tar/"; done
(cd "$T/tar" && tar cf "$T/s.tar" *) || bad tar
echo "$T/s.tar" >> "$T/refs.txt"

$B index add "$T/refs.txt" --db "$T/one.db" --embedder "sscd:$W" -j 1 > "$T/one.out" 2>&1 &&
  grep -q "embedder sscd:.*: 13 computed" "$T/one.out" && ok one_process_13_computed || { bad one_process_13_computed; cat "$T/one.out"; }
$B index add "$T/refs.txt" --db "$T/one8.db" --embed-q8 --embedder "sscd:$W" -j 1 > "$T/one8.out" 2>&1 || { bad one8_add; cat "$T/one8.out"; }
for n in 1 2 3; do
  $MPIRUN -np $n "$M" index add "$T/refs.txt" --db "$T/m$n.db" --embedder "sscd:$W" -j 1 > "$T/m$n.out" 2>&1 ||
    { bad "np${n}_add"; cat "$T/m$n.out"; }
  if cmp -s "$T/one.db.vec-sscd" "$T/m$n.db.vec-sscd" && cmp -s "$T/one.db.vec-sscd.ids" "$T/m$n.db.vec-sscd.ids"; then
    ok "np${n}_sscd_column_same_bytes"
  else
    bad "np${n}_sscd_column_same_bytes"; cmp "$T/one.db.vec-sscd" "$T/m$n.db.vec-sscd"; tail -n 3 "$T/m$n.out"
  fi
done
# the thread count changes no bit: one process and 2 ranks at -j 2
$B index add "$T/refs.txt" --db "$T/j2.db" --embedder "sscd:$W" -j 2 > "$T/j2.out" 2>&1 || { bad j2_add; cat "$T/j2.out"; }
$MPIRUN -np 2 "$M" index add "$T/refs.txt" --db "$T/m2j2.db" --embedder "sscd:$W" -j 2 > "$T/m2j2.out" 2>&1 ||
  { bad np2_j2_add; cat "$T/m2j2.out"; }
for d in j2 m2j2; do
  cmp -s "$T/one.db.vec-sscd" "$T/$d.db.vec-sscd" && cmp -s "$T/one.db.vec-sscd.ids" "$T/$d.db.vec-sscd.ids" &&
    ok "${d}_sscd_column_same_bytes_as_j1" || { bad "${d}_sscd_column_same_bytes_as_j1"; cmp "$T/one.db.vec-sscd" "$T/$d.db.vec-sscd"; }
done
grep -q "embedder sscd:.*: 13 computed, 0 already present, 0 skipped (3 ranks" "$T/m3.out" && ok np3_every_rank_embedded ||
  { bad np3_every_rank_embedded; grep embedder "$T/m3.out"; }
[ $(ls "$T/m3.db.shards" | grep -c '\.part$') -eq 0 ] && ok np3_parts_removed || bad np3_parts_removed
$MPIRUN -np 3 "$M" index add "$T/refs.txt" --db "$T/m8.db" --embed-q8 --embedder "sscd:$W" -j 1 > "$T/m8.out" 2>&1 ||
  { bad np3_q8_add; cat "$T/m8.out"; }
cmp -s "$T/one8.db.vec-sscd" "$T/m8.db.vec-sscd" && cmp -s "$T/one8.db.vec-sscd.ids" "$T/m8.db.vec-sscd.ids" &&
  ok np3_q8_sscd_column_same_bytes || bad np3_q8_sscd_column_same_bytes
# a row does not depend on what it is computed beside: the references added
# in two runs (5, then the other 8: other batches) give the same column
head -n 5 "$T/refs.txt" > "$T/first5.txt"
$B index add "$T/first5.txt" --db "$T/two.db" --embedder "sscd:$W" -j 1 > /dev/null 2>&1 || bad two_first_add
$B index add "$T/refs.txt" --db "$T/two.db" --embedder "sscd:$W" -j 1 > "$T/two.out" 2>&1 || bad two_rest_add
grep -q "embedder sscd:.*: 8 computed, 5 already present" "$T/two.out" && cmp -s "$T/one.db.vec-sscd" "$T/two.db.vec-sscd" &&
  cmp -s "$T/one.db.vec-sscd.ids" "$T/two.db.vec-sscd.ids" && ok two_runs_same_column || { bad two_runs_same_column; cat "$T/two.out"; }
# the column is 13 rows of 512 (q8: 516 bytes a row)
[ $(($(wc -c < "$T/one.db.vec-sscd") - 64)) -eq $((13 * 512 * 4)) ] && [ $(($(wc -c < "$T/one8.db.vec-sscd") - 64)) -eq $((13 * 516)) ] &&
  ok column_sizes || bad "column_sizes: $(wc -c < "$T/one.db.vec-sscd") $(wc -c < "$T/one8.db.vec-sscd")"
# the query side under the ranks' stores: a reference finds itself first at cosine 1
q=$(sed -n 4p "$T/refs.txt")
$B index query --k 2 --db "$T/m3.db" --embedder "sscd:$W" "$q" 2>&1 | grep -A1 "sscd embedding" | tail -n 1 | grep -q "1.0000  ref 4 " &&
  ok np3_store_self_first || bad np3_store_self_first

[ -n "$KEEP" ] || rm -rf "$T"
echo "test_mpi_sscd.sh: $p passed, $f failed"
[ $f -eq 0 ]
