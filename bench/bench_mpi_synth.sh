#!/bin/sh
# docs/SCALE.md's sharding check at scale: N synthetic references
# (bench/mpi_synth.py, default 20,000; every 50th an exact copy from a third
# of the set earlier, so duplicates cross shards) indexed (hashes and
# thumbnails, -j 1 per rank) and 499 generations analysed (299 copies, 200
# novel) under mpirun -np 1, 2, 3; index ls --json, index query --k 3 (40
# files, fan-out) and the report's JSON (minus dates and store name) compared
# byte for byte with 1 rank; CPU-seconds per rank printed beside the wall
# times (the machine may be loaded: compare CPU).
# Usage: sh bench/bench_mpi_synth.sh [BUILD] [N]
BUILD=${1:-build}; N=${2:-20000}
B=$BUILD/copyscope; M=$BUILD/copyscope-mpi
T=${CS_BENCH_TMP:-/tmp/cs-bench-mpi-synth}
MPIRUN="mpirun --oversubscribe --allow-run-as-root"
mkdir -p "$T/gens" || exit 1
[ -f "$T/img/done$N" ] || { /usr/bin/python3 bench/mpi_synth.py "$T/img" "$N" && touch "$T/img/done$N"; } || exit 1
rm -f "$T"/gens/*
ls "$T/img" | grep png | awk 'NR % 67 == 3' | while read -r x; do cp "$T/img/$x" "$T/gens/"; done
/usr/bin/python3 - "$T/gens" <<'PY'
import random, sys
from PIL import Image, ImageDraw
for i in range(200):  # novel: seeds the reference set does not use
    r = random.Random(10**6 + i)
    im = Image.new("RGB", (64, 64), tuple(r.randrange(256) for _ in range(3)))
    d = ImageDraw.Draw(im)
    for _ in range(r.randrange(2, 7)):
        x0, y0 = r.randrange(56), r.randrange(56)
        d.rectangle((x0, y0, x0 + r.randrange(6, 40), y0 + r.randrange(6, 40)),
                    fill=tuple(r.randrange(256) for _ in range(3)))
    im.save("%s/novel%03d.png" % (sys.argv[1], i))
PY
norm() { sed -E '/"(generated|store|started|finished)":/d' "$1"; }
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for n in 1 2 3; do
  rm -rf "$T/m$n.db"*
  /usr/bin/time -f "%e %U %S" -o "$T/time" $MPIRUN -np $n "$M" index add "$T/img" --db "$T/m$n.db" -j 1 \
    --no-local-features --timings > "$T/add$n.out" 2>&1
  echo "np $n index add: wall user sys $(cat "$T/time") (s), load $(cut -d' ' -f1-3 /proc/loadavg)"
  grep -E "cpu per rank|catalogue" "$T/add$n.out" | sed 's/^/  /'
  /usr/bin/time -f "%e %U %S" -o "$T/time" $MPIRUN -np $n "$M" analyze --images "$T/gens" --db "$T/m$n.db" -j 1 \
    > "$T/an$n.out" 2>&1
  echo "np $n analyze: wall user sys $(cat "$T/time") (s)"; grep -E "per rank|copy " "$T/an$n.out" | sed 's/^/  /'
  $B index ls --json --db "$T/m$n.db" > "$T/m$n.ls"
  $MPIRUN -np $n "$M" index query --k 3 --db "$T/m$n.db" $(ls "$T"/gens/*.png | head -n 40) > "$T/m$n.q" 2>/dev/null
  $B report --db "$T/m$n.db" --format json --out "$T/m$n.raw.json" -q && norm "$T/m$n.raw.json" > "$T/m$n.json"
done
for n in 2 3; do
  for x in ls q json; do cmp -s "$T/m1.$x" "$T/m$n.$x" && echo "np $n $x: identical to 1 rank" || echo "np $n $x: DIFFERENT"; done
done
