#!/bin/sh
# Runs every test binary in BUILD/tests and every tests/test_*.sh, from the
# repository root, and ends with the line "N passed, N failed".
# A binary that dies without its summary line counts as one failure.
# CS_WRAP, if set, prefixes each test binary (make valgrind uses it).
BUILD=${1:-build}
export CS_BIN="$BUILD/copyscope"
export CS_TMP=$(mktemp -d /tmp/cs-tests-XXXXXX)
passed=0; failed=0
for t in "$BUILD"/tests/test_* tests/test_*.sh; do
    [ -e "$t" ] || continue
    case "$t" in *.d|*.o) continue;; esac
    out="$CS_TMP/$(basename "$t").log"
    case "$t" in
        *.sh) sh "$t" >"$out" 2>&1 ;;
        *) $CS_WRAP "$t" >"$out" 2>&1 ;;
    esac
    rc=$?
    line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
    if [ -z "$line" ]; then
        echo "FAIL $t: exited $rc without a summary"; tail -n 20 "$out"
        failed=$((failed + 1)); continue
    fi
    # the summary may open the line ("N passed, M failed") or follow a name
    p=$(echo "$line" | sed -E 's/^(.*[^0-9])?([0-9]+) passed, ([0-9]+) failed.*/\2/')
    f=$(echo "$line" | sed -E 's/^(.*[^0-9])?([0-9]+) passed, ([0-9]+) failed.*/\3/')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$f" -ne 0 ]; then echo "FAIL $t ($line)"; grep -v '^ok ' "$out" | tail -n 40
    else echo "ok   $t ($p)"; fi
done
rm -rf "$CS_TMP"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
