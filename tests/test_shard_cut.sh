#!/bin/sh
# `index add --shards 2` (one process; mpirun cuts the same way) gives each
# shard about the same work: an image costs a fixed part whatever its size
# (thumbnail, hashes, SIFT at 256 px) plus its decode (index/ingest.c,
# ING_FIXED_BYTES). 40 of the smallest emoji PNGs (~0.2 KB) listed before
# 40 of the largest (~5 KB): cut by bytes (+ 4 KiB, as before) the first
# shard took 51 images and the second 29; by work each takes 40 (+-1).
B=${CS_BIN:-build/copyscope}
DATA=../shared/data/twemoji-64/img
name=test_shard_cut.sh
[ -d "$DATA" ] || { echo "skip: $DATA missing"; echo "$name: 0 passed, 0 failed"; exit 0; }
T=$(mktemp -d /tmp/cs-shardcut-XXXXXX)
pass=0; fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
no() { echo "FAIL $1"; fail=$((fail + 1)); }
D=$(cd "$DATA" && pwd)
{ ls -S "$D" | grep png | tail -n 40 | sort; ls -S "$D" | grep png | head -n 40 | sort; } | sed "s|^|$D/|" > "$T/list.txt"
if "$B" index add "$T/list.txt" --shards 2 --db "$T/s.db" -j 1 --no-local-features > "$T/out" 2>&1; then
    ok "index add --shards 2"
else
    no "index add --shards 2: $(tail -n 3 "$T/out")"
fi
c1=$(sqlite3 "$T/s.db.shards/1-of-2.db" "SELECT COUNT(*) FROM refs" 2>/dev/null)
c2=$(sqlite3 "$T/s.db.shards/2-of-2.db" "SELECT COUNT(*) FROM refs" 2>/dev/null)
if [ -n "$c1" ] && [ -n "$c2" ] && [ $((c1 + c2)) -eq 80 ] && [ $((c1 - c2)) -le 2 ] && [ $((c2 - c1)) -le 2 ]; then
    ok "the cut follows the images' work: $c1 and $c2 images"
else
    no "the cut: shards of '$c1' and '$c2' images (80 in all, within 2 of each other expected)"
fi
rm -rf "$T"
echo "$name: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
