#!/bin/sh
# Runs every benchmark in BUILD/bench (and bench/bench_*.sh); each prints its
# figures beside their anchors, measured in the same run, as ratios.
BUILD=${1:-build}
export CS_BIN="$BUILD/copyscope"
for b in "$BUILD"/bench/bench_* bench/bench_*.sh; do
    [ -e "$b" ] || continue
    case "$b" in *.d|*.o) continue;; esac
    echo "== $(basename "$b")"
    case "$b" in *.sh) sh "$b" ;; *) "$b" ;; esac || echo "(bench $b failed: exit $?)"
done
