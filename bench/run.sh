#!/bin/sh
# Runs every benchmark in BUILD/bench (and bench/bench_*.sh); each prints its
# figures beside their anchors, measured in the same run, as ratios.
BUILD=${1:-build}
export CS_BIN="$BUILD/copyscope"
# the copy-detection set of bench_copydet (issue 13): built once, deterministic
if [ ! -e "$BUILD/copydet/truth.tsv" ] && [ -x /usr/bin/python3 ] && command -v rsvg-convert >/dev/null; then
    /usr/bin/python3 bench/copydet_set.py "$BUILD/copydet" ||
        echo "(copydet set not built: needs python3-numpy python3-pil librsvg2-bin)"
fi
export CS_COPYDET="$BUILD/copydet"
for b in "$BUILD"/bench/bench_* bench/bench_*.sh; do
    [ -e "$b" ] || continue
    case "$b" in *.d|*.o) continue;; esac
    echo "== $(basename "$b")"
    case "$b" in *.sh) sh "$b" ;; *) "$b" ;; esac || echo "(bench $b failed: exit $?)"
done
