#!/bin/sh
# docs/SCALE.md's figures: per-reference cost of each ingest stage and
# descriptor (thread-seconds at -j 1, bytes per table, a store without
# thumbnails with the embedding at 8 bits), index add on 1 vs 2
# MPI ranks (one thread each), and analyze over a one-file store vs the same
# references in 3 shards. References: N emoji upscaled to 512x512 JPEGs
# (ImageMagick's convert; closer to LAION's ~500 px JPEGs than the 64 px PNGs).
# Usage: sh bench/bench_mpi.sh [BUILD] [N]. Prints the load average: on a
# shared machine every wall time moves with it (compare the ratios).
BUILD=${1:-build}; N=${2:-300}
B=$BUILD/copyscope; M=$BUILD/copyscope-mpi
DATA=../shared/data/twemoji-64/img
T=${CS_BENCH_TMP:-/tmp/cs-bench-mpi}
MPIRUN="mpirun --oversubscribe --allow-run-as-root"
mkdir -p "$T/img$N" "$T/gens" || exit 1
if [ ! -f "$T/img$N/done" ]; then
  ls "$DATA" | sort | head -n "$N" | while read -r x; do
    convert "$DATA/$x" -background white -flatten -resize 512x512 -quality 90 "$T/img$N/${x%.png}.jpg" || exit 1
  done
  touch "$T/img$N/done"
fi
ls "$T/img$N" | grep jpg | awk 'NR % 12 == 5' | while read -r x; do cp "$T/img$N/$x" "$T/gens/"; done
ng=$(ls "$T/gens" | wc -l)
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "machine: $(nproc) cores, load average $(load)"
rm -rf "$T"/*.db* "$T"/*.thumbs
t() { /usr/bin/time -f "%e %U %S" -o "$T/time" "$@" > "$T/out" 2>&1; cat "$T/time"; }

echo "== index add -j 1, $N references (512 px JPEG) =="
$B index add "$T/img$N" --db "$T/lf.db" -j 1 --timings > "$T/lf.out" 2>&1; sed 's/^/  /' "$T/lf.out"
$B index add "$T/img$N" --db "$T/nolf.db" -j 1 --timings --no-local-features > "$T/nolf.out" 2>&1
sed 's/^/  /' "$T/nolf.out"
echo "  tiny embedder: $(t $B index add --embedder tiny --db "$T/nolf.db" -j 1) (wall user sys, s)"
echo "== bytes per table (sqlite dbstat) =="
if command -v sqlite3 > /dev/null; then
  sqlite3 "$T/lf.db" "SELECT name, sum(pgsize), (SELECT count(*) FROM refs) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 8" |
    awk -F'|' '{printf "  %-24s %10d bytes  %8.0f per reference\n", $1, $2, $2 / $3}'
fi
ls -l "$T"/nolf.db.* 2>/dev/null | awk '{printf "  %-40s %10d bytes\n", $9, $5}'
echo "== a store of hashes + the tiny embedding at 8 bits, no thumbnails, no local features =="
$B index add "$T/img$N" --db "$T/small.db" -j 1 --no-thumbs --no-local-features --embedder tiny --embed-q8 > /dev/null 2>&1
sqlite3 "$T/small.db" "PRAGMA wal_checkpoint(TRUNCATE); VACUUM" > /dev/null 2>&1
nok=$(sqlite3 "$T/small.db" "SELECT count(*) FROM refs WHERE status = 'ok'" 2>/dev/null)
for f in "$T/small.db" "$T/small.db.vec-tiny" "$T/small.db.vec-tiny.ids"; do
  printf "  %-40s %10d bytes  %6.0f per reference\n" "$f" "$(wc -c < "$f")" "$(echo "$(wc -c < "$f") / ${nok:-1}" | bc -l)"
done

if [ -x "$M" ] && command -v mpirun > /dev/null; then
  echo "== index add, 1 vs 2 ranks (-j 1 each), local features on; order 1, 2, 1, 2 =="
  for rep in a b; do
    for n in 1 2; do
      rm -rf "$T/r$n$rep.db"*
      w=$(t $MPIRUN -np $n "$M" index add "$T/img$N" --db "$T/r$n$rep.db" -j 1)
      echo "  np $n: $w (wall user sys, s; user+sys are mpirun's children)  load $(load)"
    done
  done
fi
echo "== analyze $ng generations: one store vs 3 shards (same references) =="
$B index add "$T/img$N" --db "$T/s3.db" --shards 3 -j 2 > /dev/null 2>&1
for rep in a b; do
  for d in lf s3; do
    rm -f "$T/$d.db.thumbs"
    echo "  $d: $(t $B analyze --images "$T/gens" --db "$T/$d.db" -j 1 -q) (wall user sys, s; first run of the store)"
  done
done
echo "load average at the end $(load)"
