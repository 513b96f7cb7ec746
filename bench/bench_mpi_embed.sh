#!/bin/sh
# docs/SCALE.md's embedding and local-feature search under mpirun: NR twemoji
# references with the tiny embedder and local features, in a store of 3
# shards (built by mpirun -np 3), NG generations (every 4th reference as
# is, the rest other emoji) analysed by 1 process (the plain binary) and by
# mpirun -np 3 (one thread a rank). Per run: wall and CPU-seconds (all
# processes), peak memory (one process: /usr/bin/time; per rank: the
# CS_MPI_DEBUG=1 lines, with the embedding rows each rank holds and
# searches), the share of the batch time the gather + merge of the scans'
# lists take and of the embedding searches' time their gather + merge take
# (CS_MPI_TIMING=1), and whether the report's JSON (minus dates and store
# name) equals one process's; rank 0's thumbnails (the candidates' written
# in, resident KiB) and whether a whole-store DB.thumbs was written;
# CS_BENCH_Q8=1 builds the column with --embed-q8. With NR >= ~550 (16,384
# descriptors) the local-feature vote index is a multi-index with PQ codes:
# each rank's descriptors held and searched and the gather + merge of the
# nearest lists (h17v) are printed too. CS_BENCH_BASE=DIR (another build
# folder, e.g. of main) adds a run "3b" of DIR's copyscope-mpi on the same
# store, in the same minutes: rank 0's memory before/after a change.
# Usage: sh bench/bench_mpi_embed.sh [BUILD] [NR] [NG]
BUILD=${1:-build}; NR=${2:-1911}; NG=${3:-512}
T=${CS_BENCH_TMP:-/tmp/cs-bench-mpi-embed}
. "$(dirname "$0")/mpi_bench_set.sh"
$MPIRUN -np 3 "$M" index add "$T/refs.txt" --db "$T/s.db" --embedder tiny ${CS_BENCH_Q8:+--embed-q8} -j 1 > "$T/add.out" 2>&1 || { cat "$T/add.out"; exit 1; }
for n in 1 3 ${CS_BENCH_BASE:+3b}; do
  rm -rf "$T/a$n.db"*
  for f in "$T"/s.db*; do cp -r "$f" "$T/a$n.db${f#$T/s.db}"; done
  if [ $n = 3b ]; then
    CS_MPI_DEBUG=1 CS_MPI_TIMING=1 /usr/bin/time -f "%e %U %S %M" -o "$T/time" $MPIRUN -np 3 "$CS_BENCH_BASE/copyscope-mpi" \
      analyze --images "$T/gens" --db "$T/a$n.db" -j 1 > "$T/a$n.out" 2>&1
  elif [ $n -eq 1 ]; then
    /usr/bin/time -f "%e %U %S %M" -o "$T/time" $B analyze --images "$T/gens" --db "$T/a1.db" -j 1 > "$T/a1.out" 2>&1
  else
    CS_MPI_DEBUG=1 CS_MPI_TIMING=1 /usr/bin/time -f "%e %U %S %M" -o "$T/time" $MPIRUN -np $n "$M" analyze \
      --images "$T/gens" --db "$T/a$n.db" -j 1 > "$T/a$n.out" 2>&1
  fi
  $B report --db "$T/a$n.db" --format json --out "$T/a$n.raw.json" -q && norm "$T/a$n.raw.json" > "$T/a$n.json"
  same=$(cmp -s "$T/a1.json" "$T/a$n.json" && echo same || echo DIFFERENT)
  echo "np $n: wall user sys (s) peak-of-one-process (KiB) $(cat "$T/time"), report $same as 1 process, load $(cut -d' ' -f1 /proc/loadavg)"
  grep -E "descriptors:|verified per rank|bytes broadcast|batch time|embedding search|references resident|thumbnails written|kept at|local-feature" "$T/a$n.out" | sed 's/^/  /'
  ls "$T/a$n.db.thumbs" > /dev/null 2>&1 && echo "  $(du -k "$T/a$n.db.thumbs" | cut -f1) KiB whole-store thumbnail cache a$n.db.thumbs written"
done
rm -rf "$T"
