#!/bin/sh
# index add of ../shared/data/twemoji-64 (1,911 PNGs, 64x64) with 2 threads:
# images/s and the share of time in read / decode / hashing / SQLite, beside
# an anchor measured in the same run: the same work in Python+PIL with 2
# processes, without perceptual hashes (bench/ingest_anchor.py).
B=${CS_BIN:-build/copyscope}
DATA=../shared/data/twemoji-64
T=$(mktemp -d /tmp/cs-bench-ingest-XXXXXX)
trap 'rm -rf "$T"' EXIT
out=$($B index add --db "$T/i.db" -j 2 --timings "$DATA" 2>/dev/null) || { echo "index add failed"; exit 1; }
echo "$out" | sed 's/^/  /'
n=$(echo "$out" | sed -nE 's/^index add: ([0-9]+) added, ([0-9]+) duplicates, ([0-9]+) errors.*/\1 \2 \3/p' | awk '{print $1+$2+$3}')
wall=$(echo "$out" | sed -nE 's/^ *wall +([0-9.]+) s.*/\1/p')
ours=$(awk -v n="$n" -v w="$wall" 'BEGIN{printf "%.1f", n/w}')
anchor=$(/usr/bin/python3 bench/ingest_anchor.py "$DATA" "$T/anchor.db" 2>/dev/null)
if [ -n "$anchor" ]; then
  an=$(echo "$anchor" | awk '{printf "%.1f", $1/$2}')
  ratio=$(awk -v a="$ours" -v b="$an" 'BEGIN{printf "%.2f", a/b}')
  echo "index add twemoji-64 -j 2: $ours img/s  anchor Python+PIL (2 procs, no perceptual hashes) $an img/s  ratio ${ratio}x"
else
  echo "index add twemoji-64 -j 2: $ours img/s  (anchor unavailable: /usr/bin/python3 with PIL needed)"
fi
