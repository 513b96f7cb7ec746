#!/bin/sh
# One process building several shards (`index add --shards 2`, no mpirun):
# its trained vote index (the first 800 twemoji, ~17,700 descriptors, past
# CS_LF_MIN_IMI) is put together from the shards' parts with a quantizer
# this process trained, so its DB.lfvote is the unsharded add's, byte for
# byte; and its progress line names no ranks ("on the 1 ranks" before): the
# quantizer's sub-quantizers were trained "in this process". (The wording at
# 2 and 3 ranks, and their bytes, are test_mpi.sh's imi_np checks.)
B=${CS_BIN:-build/copyscope}
T=${CS_TMP:-/tmp}/add-shards-one-sh.$$
DATA=$(cd ../shared/data/twemoji-64/img 2>/dev/null && pwd)
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; }
if [ -z "$DATA" ]; then
  echo "skip: ../shared/data/twemoji-64 missing"; echo "test_add_shards_one.sh: 0 passed, 0 failed"; exit 0
fi
rm -rf "$T"; mkdir -p "$T"
ls "$DATA" | sort | head -n 800 | sed "s|^|$DATA/|" > "$T/imi.txt"
$B index add "$T/imi.txt" --db "$T/one.db" --no-embedder -j 2 > "$T/one.out" 2>&1 || { bad one_add; cat "$T/one.out"; }
$B index add "$T/imi.txt" --db "$T/sh.db" --shards 2 --no-embedder -j 2 > "$T/sh.out" 2>&1 || { bad shards2_add; cat "$T/sh.out"; }
cmp -s "$T/one.db.lfvote" "$T/sh.db.lfvote" && ok shards2_one_process_vote_index_same_bytes ||
  { bad shards2_one_process_vote_index_same_bytes; ls -l "$T/one.db.lfvote" "$T/sh.db.lfvote"; }
# (the line names the trained factory: the bytes compared are a trained index's)
q=$(grep "^index add: quantizer" "$T/sh.out")
echo "$q" | grep -q "^index add: quantizer (IMI2x[0-9]*,PQ16np): coarse part trained in [0-9.]* s ([0-9.]* CPU-s), its 16 sub-quantizers in this process in [0-9.]* s ([0-9.]* CPU-s); .*sh.db.lfvote put together from the 2 parts in" &&
  ! echo "$q" | grep -q "rank" && ok shards2_one_process_line_names_no_ranks || { bad shards2_one_process_line_names_no_ranks; echo "$q"; }
rm -rf "$T"
echo "test_add_shards_one.sh: $p passed, $f failed"
[ "$f" -eq 0 ]
