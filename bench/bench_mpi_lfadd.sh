#!/bin/sh
# issue 17's "2 ranks run index add >= 1.7x one rank" where the local-feature
# vote index is trained (>= CS_LF_MIN_IMI descriptors: the first N twemoji,
# 64 px PNGs, ~23 descriptors each; N 1911 gives ~42,900, IMI2x5 + PQ16):
# `mpirun -np 1` against `-np 2` `index add --timings` (local features on,
# no embedder), wall and CPU (user + sys of the whole job) and the ranks'
# CPU split, for this build and, when CS_BENCH_BASE names another
# copyscope-mpi, that one in the same minutes; the 2-rank DB.lfvote must be
# the 1-rank one's bytes. Prints the load average: on a shared machine
# every wall time moves with it (compare CPU-seconds and same-run ratios).
# Usage: sh bench/bench_mpi_lfadd.sh [BUILD] [N]
BUILD=${1:-build}; N=${2:-1911}
T=${CS_BENCH_TMP:-/tmp/cs-bench-lfadd}
MPIRUN="mpirun --oversubscribe --allow-run-as-root"
DATA=$(cd ../shared/data/twemoji-64/img && pwd) || exit 1
rm -rf "$T"; mkdir -p "$T" || exit 1
ls "$DATA" | grep png | sort | head -n "$N" | sed "s|^|$DATA/|" > "$T/refs.txt"
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "machine: $(nproc) cores; $N references"
for bin in "$BUILD/copyscope-mpi" ${CS_BENCH_BASE:+"$CS_BENCH_BASE"}; do
  for n in 1 2; do
    db="$T/$(basename "$bin")-np$n.db"
    l0=$(load)
    /usr/bin/time -f "%e %U %S" -o "$T/time" $MPIRUN -np $n "$bin" index add "$T/refs.txt" --db "$db" -j 1 --timings \
      > "$T/out" 2>&1 || { echo "FAIL: $bin -np $n"; cat "$T/out"; exit 1; }
    read -r wall user sys < "$T/time"
    echo "$bin -np $n: wall $wall s, cpu $(echo "$user $sys" | awk '{ printf "%.2f", $1 + $2 }') s (load $l0 -> $(load))"
    grep 'cpu per rank\|vote index\|quantizer' "$T/out" | sed 's/^/    /'
  done
  cmp -s "$T/$(basename "$bin")-np1.db.lfvote" "$T/$(basename "$bin")-np2.db.lfvote" &&
    echo "  DB.lfvote: 2 ranks = 1 rank, byte for byte" || echo "  DB.lfvote: 2 ranks DIFFER from 1 rank"
done
