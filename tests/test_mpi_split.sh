#!/bin/sh
# `analyze` under mpirun when the ranks do not match the shards
# (cli/cmd_mpi_an_lf.c lf_share_open): the local-feature vote search. A
# store of at least as many shards as ranks: each rank loads the parts of
# the shards it owns (k = rank, rank + N, ...) that `index add` wrote, and
# searches them all, its lists merged by (distance, number); fewer shards
# than ranks, or none: every rank indexes a contiguous run of the records
# (cut by descriptors) and searches it, so no rank is idle and none does it
# all. On an unsharded, a 2-shard and a 3-shard store (60 emoji, local
# features on), analysed at 1, 2 and 3 ranks: the report's JSON (minus its
# dates and store name) is one process's on the one-file store; where the
# parts fit (3 shards on 2 and 3 ranks, 2 shards on 2) every rank loads its
# parts and encodes nothing; elsewhere every rank searches a non-empty run
# and the runs sum to the index's descriptors (CS_MPI_DEBUG=1 lines). And
# the references' pixels: every rank of an unsharded store, rank 0
# included, loads only its run of rows (by id range), not the whole index,
# and rank 0 writes no <db>.thumbs (as on a sharded store); also from a
# --no-thumbs store (re-read from the files).
# Without build/copyscope-mpi or mpirun it prints 'skip'.
B=${CS_BIN:-build/copyscope}
M=$(dirname "$B")/copyscope-mpi
T=${CS_TMP:-/tmp}/mpi-split-sh.$$
DATA=$(cd ../shared/data/twemoji-64/img 2>/dev/null && pwd)
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; }
skip() { echo "skip: $1"; echo "test_mpi_split.sh: 0 passed, 0 failed"; exit 0; }
[ -n "$DATA" ] || skip "../shared/data/twemoji-64 missing"
if [ ! -x "$M" ] || ! command -v mpirun > /dev/null 2>&1; then
  skip "$M or mpirun missing (make mpi; apt-get install libopenmpi-dev openmpi-bin)"
fi
MPIRUN="mpirun --oversubscribe --allow-run-as-root"
mkdir -p "$T/gens" || exit 1
names=$(ls "$DATA" | sort | awk 'NR % 3 == 1' | head -n 60)
for x in $names; do echo "$DATA/$x"; done > "$T/refs.txt"
# copies from the start, middle and end of the list; two held-out emoji
for x in $(echo "$names" | sed -n '2p;31p;59p'); do cp "$DATA/$x" "$T/gens/"; done
for x in $(ls "$DATA" | sort | awk 'NR % 3 == 2' | sed -n '10p;100p'); do cp "$DATA/$x" "$T/gens/held-$x"; done
norm() { sed -E '/"(generated|store|started|finished)":/d' "$1"; }
# DB NAME: the report's JSON as NAME.json
report() { $B report --db "$1" --format json --out "$T/$2.raw.json" -q > /dev/null 2>&1 && norm "$T/$2.raw.json" > "$T/$2.json"; }
# FILE N: N lines "local-feature descriptors H held and searched, of T": every
# rank searches some (H > 0), fewer than all (H < T), the H summing to T
lfdesc() {
  sed -n 's/.*rank [0-9]* of [0-9]*: local-feature descriptors \([0-9]*\) held and searched, of \([0-9]*\)$/\1 \2/p' "$1" |
    awk -v n=$2 '{ c++; h += $1; if (t && $2 != t) bad = 1; t = $2; if ($1 <= 0 || $1 >= $2) bad = 1 }
      END { exit !(c == n && h == t && t > 0 && !bad) }'
}

# FILE N: N lines "rank K of N: R references resident, S scanned, of T"
# with R = S < T, the S summing to T, every S > 0 but where a rank owns no
# shard (2 shards on 3 ranks: rank 2)
resident() {
  sed -n 's/.*rank \([0-9]*\) of [0-9]*: \([0-9]*\) references resident, \([0-9]*\) scanned, of \([0-9]*\);.*/\1 \2 \3 \4/p' "$1" |
    awk -v n=$2 -v nsh=$3 '{ c++; s += $3; t = $4; if (($3 <= 0 && (nsh == 0 || $1 < nsh)) || $2 != $3 || $2 >= $4) bad = 1 }
      END { exit !(c == n && s == t && !bad) }'
}

$B index add "$T/refs.txt" --db "$T/one.db" -j 2 > /dev/null 2>&1 && ok one_add || bad one_add
for s in 2 3; do
  $B index add "$T/refs.txt" --db "$T/s$s.db" --shards $s -j 2 > /dev/null 2>&1 &&
    [ "$(ls "$T/s$s.db.shards" | grep -c "of-$s.db.lfpart$")" -eq $s ] && ok "s${s}_add_writes_parts" || bad "s${s}_add_writes_parts"
done
# the reference answer: one process on the one-file store (a copy, so that
# each analysis below starts from the same store)
mkdir -p "$T/w"; cp "$T/one.db" "$T/w/x.db"
$B analyze --images "$T/gens" --db "$T/w/x.db" -j 1 -q > "$T/one.aout" 2>&1 || bad one_analyze
report "$T/w/x.db" one
grep -q '"verdict":	"copy"' "$T/one.raw.json" && ok one_has_copies || bad one_has_copies

for s in 0 2 3; do
  src=one.db; [ $s -gt 0 ] && src=s$s.db
  for n in 1 2 3; do
    rm -rf "$T/w"; mkdir -p "$T/w"
    cp "$T/$src" "$T/w/x.db"
    for side in lfvote lfrec; do [ -e "$T/$src.$side" ] && cp "$T/$src.$side" "$T/w/x.db.$side"; done
    [ $s -gt 0 ] && cp -r "$T/$src.shards" "$T/w/x.db.shards"
    CS_MPI_DEBUG=1 $MPIRUN -np $n "$M" analyze --images "$T/gens" --db "$T/w/x.db" -j 1 -q > /dev/null 2> "$T/a$s-$n.err" ||
      { bad "shards${s}_np${n}_analyze"; tail -n 5 "$T/a$s-$n.err"; }
    report "$T/w/x.db" "a$s-$n"
    cmp -s "$T/one.json" "$T/a$s-$n.json" && ok "shards${s}_np${n}_same_report_as_one_process" ||
      { bad "shards${s}_np${n}_same_report_as_one_process"; diff "$T/one.json" "$T/a$s-$n.json" | head -n 8; }
    [ $n -eq 1 ] && continue
    # every rank, rank 0 included, holds only the references it scans (its
    # shards', or its run of an unsharded store's rows, read by id range),
    # fewer than the index; the runs cover the index once; rank 0 holds the
    # others' thumbnails only as each batch's candidates and writes no
    # whole-store thumbnail cache
    resident "$T/a$s-$n.err" $n $s && [ ! -e "$T/w/x.db.thumbs" ] && ok "shards${s}_np${n}_rank_holds_only_its_rows" ||
      bad "shards${s}_np${n}_rank_holds_only_its_rows: $(grep resident "$T/a$s-$n.err"; ls "$T/w")"
    if [ $s -ge $n ]; then
      # each rank loads its shards' parts (3 shards on 2 ranks: rank 0 loads
      # shards 1 and 3), nothing encoded
      want=$s
      [ "$(grep -c 'local-feature part loaded: [1-9][0-9]* descriptors (.*; shard [0-9]* of '$s')' "$T/a$s-$n.err")" -eq $want ] &&
        ! grep -q 'local-feature part encoded' "$T/a$s-$n.err" && lfdesc "$T/a$s-$n.err" $n &&
        ok "shards${s}_np${n}_ranks_load_their_shards_parts" ||
        bad "shards${s}_np${n}_ranks_load_their_shards_parts: $(grep 'local-feature' "$T/a$s-$n.err")"
      if [ $s -eq 3 ] && [ $n -eq 2 ]; then
        grep -q 'rank 0 local-feature part loaded: .*shard 1 of 3)' "$T/a$s-$n.err" &&
          grep -q 'rank 0 local-feature part loaded: .*shard 3 of 3)' "$T/a$s-$n.err" &&
          grep -q 'rank 1 local-feature part loaded: .*shard 2 of 3)' "$T/a$s-$n.err" && ok shards3_np2_rank0_searches_two_parts ||
          bad shards3_np2_rank0_searches_two_parts
      fi
    else
      # fewer shards than ranks, or none: a run of records each, every rank searching
      [ "$(grep -c 'local-feature part encoded: [1-9][0-9]* descriptors (.*; a run of the records)' "$T/a$s-$n.err")" -eq $n ] &&
        lfdesc "$T/a$s-$n.err" $n && ok "shards${s}_np${n}_every_rank_searches_a_run" ||
        bad "shards${s}_np${n}_every_rank_searches_a_run: $(grep 'local-feature' "$T/a$s-$n.err")"
    fi
  done
done

# an unsharded --no-thumbs store: each rank reads its run's thumbnails by id
# range through the view that re-reads them from the files; the report is
# one process's on the one-file store with thumbnails
$B index add "$T/refs.txt" --db "$T/nt.db" --no-thumbs -j 2 > /dev/null 2>&1 || bad nt_add
for n in 2 3; do
  rm -rf "$T/w"; mkdir -p "$T/w"; cp "$T/nt.db" "$T/w/x.db"
  CS_MPI_DEBUG=1 $MPIRUN -np $n "$M" analyze --images "$T/gens" --db "$T/w/x.db" -j 1 -q > /dev/null 2> "$T/nt$n.err" || bad "nt_np${n}_analyze"
  report "$T/w/x.db" "nt$n"
  cmp -s "$T/one.json" "$T/nt$n.json" && resident "$T/nt$n.err" $n 0 && ok "no_thumbs_unsharded_np${n}_runs_same_report" ||
    { bad "no_thumbs_unsharded_np${n}_runs_same_report"; diff "$T/one.json" "$T/nt$n.json" | head -n 8; }
done

# completion audits under mpirun (cli/cmd_mpi_an_compl.c): the audit
# compares the withheld region with every reference; rank 0 reads only the
# original's thumbnail and every rank scans the references it holds for the
# nearest other one. A suite with a completion task (2 samples) run by one
# process and by mpirun at 2 and 3 ranks, on the unsharded and the 3-shard
# store: the report (store and folder names aside) is one process's, the
# audits ran over the ranks (2, each reading one thumbnail on rank 0), and
# rank 0 wrote no <db>.thumbs (it read no whole-index thumbnails)
orig=$(echo "$names" | sed -n 31p)
cat > "$T/comp.json" <<J
{"name": "comp", "model": "empirical", "defaults": {"size": 64, "steps": 4, "samples": 2, "seed": 3},
 "prompts": [{"id": "u", "text": "", "guidance": 1.0}],
 "completions": [{"id": "g", "ref": "$DATA/$orig", "rect": [32, 0, 32, 64], "samples": 2}]}
J
for s in 0 3; do
  src=one.db; [ $s -gt 0 ] && src=s$s.db
  for n in 1 2 3; do
    d="$T/c$s-$n"
    mkdir -p "$d"; cp "$T/$src" "$d/c.db"
    [ $s -gt 0 ] && cp -r "$T/$src.shards" "$d/c.db.shards"
    if [ $n -eq 1 ]; then $B run "$T/comp.json" --db "$d/c.db" --out "$d/o" -j 1 > "$d.out" 2>&1 || bad "comp${s}_np1_run"
    else CS_MPI_DEBUG=1 $MPIRUN -np $n "$M" run "$T/comp.json" --db "$d/c.db" --out "$d/o" -j 1 > "$d.out" 2> "$d.err" ||
      { bad "comp${s}_np${n}_run"; tail -n 5 "$d.err"; }; fi
    $B report --db "$d/c.db" --format json --out "$d.raw.json" -q > /dev/null 2>&1 && norm "$d.raw.json" | sed "s|/c$s-$n/|/cN/|g" > "$d.json"
    [ $n -eq 1 ] && continue
    cmp -s "$T/c$s-1.json" "$d.json" && grep -q '"restored":	true' "$d.json" && ok "completion_shards${s}_np${n}_same_report" ||
      { bad "completion_shards${s}_np${n}_same_report"; diff "$T/c$s-1.json" "$d.json" | head -n 8; }
    grep -q "rank 0 of $n: completion audits 2 over the ranks, the originals' thumbnails read 2$" "$d.err" &&
      [ ! -e "$d/c.db.thumbs" ] && ok "completion_shards${s}_np${n}_audited_over_the_ranks" ||
      bad "completion_shards${s}_np${n}_audited_over_the_ranks: $(grep 'completion' "$d.err"; ls "$d")"
  done
done
[ -n "$CS_KEEP" ] || rm -rf "$T"
echo "test_mpi_split.sh: $p passed, $f failed"
[ $f -eq 0 ]
