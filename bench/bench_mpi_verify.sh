#!/bin/sh
# docs/SCALE.md's verification on the owning rank: NR twemoji references in a
# store of 3 shards, NG generations (every 4th reference as is, the rest
# other emoji) analysed by 1 process and by mpirun -np 2 and 3 (local features
# off); per run the wall and CPU-seconds (all processes), the candidates each
# rank verified, the bytes rank 0 broadcast and gathered (per batch of 256
# generations: divide by the batches printed), and whether the report's JSON
# (minus dates and store name) equals one process's.
# Usage: sh bench/bench_mpi_verify.sh [BUILD] [NR] [NG]
BUILD=${1:-build}; NR=${2:-600}; NG=${3:-512}
T=${CS_BENCH_TMP:-/tmp/cs-bench-mpi-verify}
. "$(dirname "$0")/mpi_bench_set.sh"
$B index add "$T/refs.txt" --db "$T/s.db" --shards 3 -j 2 --no-local-features > /dev/null 2>&1 || exit 1
for n in 1 2 3; do
  rm -f "$T/a$n.db"; cp "$T/s.db" "$T/a$n.db"; rm -rf "$T/a$n.db.shards"; cp -r "$T/s.db.shards" "$T/a$n.db.shards"
  if [ $n -eq 1 ]; then
    /usr/bin/time -f "%e %U %S" -o "$T/time" $B analyze --images "$T/gens" --db "$T/a1.db" -j 1 --no-local-features -q > "$T/a1.out" 2>&1
  else
    /usr/bin/time -f "%e %U %S" -o "$T/time" $MPIRUN -np $n "$M" analyze --images "$T/gens" --db "$T/a$n.db" -j 1 \
      --no-local-features > "$T/a$n.out" 2>&1
  fi
  $B report --db "$T/a$n.db" --format json --out "$T/a$n.raw.json" -q && norm "$T/a$n.raw.json" > "$T/a$n.json"
  same=$(cmp -s "$T/a1.json" "$T/a$n.json" && echo same || echo DIFFERENT)
  echo "np $n: wall user sys $(cat "$T/time") (s), report $same as 1 process, load $(cut -d' ' -f1 /proc/loadavg)"
  grep -E "verified per rank|bytes broadcast" "$T/a$n.out" | sed 's/^/  /'
done
grep -c '"verdict":	"copy"' "$T/a1.raw.json" | sed 's/^/copy findings in the report: /'
rm -rf "$T"
