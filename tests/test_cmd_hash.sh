#!/bin/sh
# `copyscope hash`: --json output on a JPEG and an emoji PNG equals the
# reference vectors (PDQ + quality from ../shared/refs/pdq, imagehash's hex
# from ../shared/refs/imagehash); a bad file gives one error line, the others
# are still hashed, exit status 1.
B=${CS_BIN:-build/copyscope}
case "$B" in /*) ;; *) B="$PWD/$B" ;; esac
R=../shared/refs
T=${CS_TMP:-/tmp}/cmd_hash.$$
mkdir -p "$T"
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; }
col() { # col TSV FILE N: field N of the row for FILE
  awk -F'\t' -v k="$2" -v n="$3" '$1 == k { print $n }' "$1"
}
J=upstream/bridge-mods/aaa-orig.jpg
E=$(grep -m1 "^inputs/twemoji-flat/" $R/pdq/vectors.tsv | cut -f1)
(cd $R/pdq && "$B" hash --json "$J" "$E") >"$T/out.json" 2>"$T/err"
[ $? -eq 0 ] && ok exit_0 || bad exit_0
for F in "$J" "$E"; do
  for h in pdq:2 pdq_quality:3; do
    name=${h%%:*}; n=${h##*:}
    want=$(col $R/pdq/vectors.tsv "$F" "$n")
    grep -q "\"$name\":[[:space:]]*\"\{0,1\}$want\"\{0,1\},\{0,1\}\$" "$T/out.json" \
      && ok "$name $F" || bad "$name $F (want $want)"
  done
  for h in ahash:2 dhash:3 phash:4; do
    name=${h%%:*}; n=${h##*:}
    want=$(col $R/imagehash/vectors.tsv "$F" "$n")
    grep -q "\"$name\":[[:space:]]*\"$want\"" "$T/out.json" && ok "$name $F" || bad "$name $F (want $want)"
  done
done
[ -s "$T/err" ] && bad "no_stderr" || ok no_stderr
# bad input: a missing file and a text file named .png between two good ones
echo "not an image" >"$T/fake.png"
"$B" hash "$R/pdq/$J" "$T/missing.png" "$T/fake.png" "$R/pdq/$E" >"$T/out.txt" 2>"$T/err"
[ $? -eq 1 ] && ok exit_1_on_bad || bad exit_1_on_bad
[ "$(wc -l <"$T/err")" -eq 2 ] && ok two_error_lines || bad two_error_lines
grep -q "^copyscope: $T/fake.png: " "$T/err" && ok error_names_file || bad error_names_file
[ "$(grep -c '^  pdq ' "$T/out.txt")" -eq 2 ] && ok rest_hashed || bad rest_hashed
"$B" hash >/dev/null 2>&1; [ $? -eq 2 ] && ok usage_exit_2 || bad usage_exit_2
rm -rf "$T"
echo "test_cmd_hash.sh: $p passed, $f failed"
