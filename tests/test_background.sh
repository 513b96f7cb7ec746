#!/bin/sh
# index background (a stored background set per embedding column) end to end
# with the tiny embedder: a folder + a tar shard embedded once (a repeated
# image, a junk file), a rerun adds nothing; index query --normalize scores =
# raw scores - mean of the top-3 cosines to the stored set, the bias computed
# here by brute force from the column files (od + awk); analyze uses the
# stored set (evidence names it, same bias) unless --background DIR overrides.
B=${CS_BIN:-build/copyscope}
T=$(mktemp -d "${CS_TMP:-/tmp}/cs-bg-XXXXXX")
export COPYSCOPE_DB="$T/t.db" CS_PROGRESS=0
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; }
IMG=../shared/data/twemoji-64/img
mkdir -p "$T/refs" "$T/bg" "$T/sh" "$T/gens" "$T/bg2"
for x in $(ls $IMG | sed -n 1,20p); do cp "$IMG/$x" "$T/refs/"; done
for x in $(ls $IMG | sed -n 300,305p); do cp "$IMG/$x" "$T/bg/"; done
for x in $(ls $IMG | sed -n 400,401p); do cp "$IMG/$x" "$T/sh/"; done
for x in $(ls $IMG | sed -n 500,502p); do cp "$IMG/$x" "$T/bg2/"; done
(cd "$T/sh" && tar cf "$T/bg.tar" *)
cp "$T/bg/$(ls "$T/bg" | head -n 1)" "$T/bg/again.png"   # same bytes: stored once
echo "not an image" > "$T/bg/junk.png"
Q="$T/refs/$(ls "$T/refs" | sed -n 5p)"

# rows COLUMN: "id v1 ... vdim" per row of a vector column (index/vecstore.h layout)
rows() {
    d=$(od -An -t u4 -j 12 -N 4 "$1" | tr -d ' ')
    od -An -v -t d8 -j 64 "$1.ids" | tr -s ' ' '\n' | grep -v '^$' > "$T/ids.txt"
    od -An -v -t f4 -j 64 "$1" | tr -s ' ' '\n' | grep -v '^$' |
        awk -v d="$d" 'NR == FNR { id[NR] = $1; next }
                       { r = int((FNR - 1) / d) + 1; line[r] = line[r] " " $1 }
                       END { for (i = 1; i in line; i++) print id[i] line[i] }' "$T/ids.txt" -
}
# bias REFID: mean of the top-3 cosines of reference REFID's tiny vector to the stored set
bias() {
    rows "$T/t.db.vec-tiny" | awk -v id="$1" '$1 == id' > "$T/q.txt"
    rows "$T/t.db.vec-tiny.bg" | awk 'NR == FNR { for (i = 2; i <= NF; i++) q[i] = $i; next }
        { s = 0; for (i = 2; i <= NF; i++) s += q[i] * $i; print s }' "$T/q.txt" - |
        sort -g -r | head -n 3 | awk '{ s += $1; n++ } END { printf "%.6f\n", s / n }'
}

$B index add -j 2 "$T/refs" >/dev/null 2>&1 && $B index add -j 2 --embedder tiny >/dev/null 2>&1 && ok setup || bad setup
$B index query --normalize "$Q" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "vec-tiny.bg: no background set: make one with 'copyscope index background" "$T/err" &&
    ok normalize_needs_set || { bad normalize_needs_set; cat "$T/err"; }

out=$($B index background -j 2 "$T/bg" "$T/bg.tar" 2>"$T/err")
echo "$out" | grep -q "embedder tiny: 8 computed, 1 already present, 1 skipped; the set holds 8 images" &&
    grep -q "junk.png" "$T/err" && ok bg_add || { bad bg_add; echo "$out"; cat "$T/err"; }
n=$(od -An -t u8 -j 24 -N 8 "$T/t.db.vec-tiny.bg" | tr -d ' ')
[ "$n" = 8 ] && [ "$(rows "$T/t.db.vec-tiny.bg" | awk '{print $1}' | sort -u | wc -l)" -eq 8 ] &&
    ok bg_column_8_distinct || bad "bg_column_8_distinct ($n)"
out=$($B index background -j 2 "$T/bg" "$T/bg.tar" 2>&1)
echo "$out" | grep -q "0 computed, 9 already present, 1 skipped; the set holds 8 images" &&
    ok bg_rerun_adds_nothing || { bad bg_rerun_adds_nothing; echo "$out"; }
$B index background "$T/nope" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "nope: no such file or folder" "$T/err" && ok bg_missing_path || bad bg_missing_path
$B index background >/dev/null 2>&1; [ $? -eq 2 ] && ok bg_no_path_usage || bad bg_no_path_usage
$B index background --help | grep -q "known NOT to be copies" && ok bg_help || bad bg_help

# index query --normalize = raw - bias, bias by brute force over the stored vectors
refid=$($B index ls | awk -v q="$Q" '$5 == q { print $1 }')
want=$(bias "$refid")
$B index query --json --k 5 "$Q" 2>/dev/null | grep '"score"' | tr -d ' ,' | cut -d: -f2 > "$T/raw.txt"
$B index query --json --k 5 --normalize "$Q" 2>/dev/null | grep '"score"' | tr -d ' ,' | cut -d: -f2 > "$T/norm.txt"
res=$(paste "$T/raw.txt" "$T/norm.txt" | awk -v b="$want" '{ n++; d = $1 - $2 - b; if (d < 0) d = -d; if (d > 1e-4) bad++ }
      END { print n + 0, bad + 0 }')
[ "$res" = "5 0" ] && awk -v b="$want" 'BEGIN { exit !(b > 0.05) }' && ok query_normalize_bias ||
    { bad "query_normalize_bias (n, mismatches = $res; bias $want)"; paste "$T/raw.txt" "$T/norm.txt"; }
awk 'NR == 1 { exit !($1 > 0.9999) }' "$T/raw.txt" && ok query_raw_self_1 || { bad query_raw_self_1; cat "$T/raw.txt"; }
# the listing says the scores are normalised (text and JSON)
$B index query --k 2 --normalize "$Q" 2>/dev/null | grep -q "tiny embedding (cosine minus the background set's bias" &&
  $B index query --json --k 2 --normalize "$Q" 2>/dev/null | tr -d ' \t\n' | grep -q '"normalized":true' &&
  $B index query --json --k 2 "$Q" 2>/dev/null | tr -d ' \t\n' | grep -q '"normalized":false' &&
  ok query_normalize_labelled || bad query_normalize_labelled

# analyze: the stored set is used (evidence names it, its bias is the brute-force one)
cp "$Q" "$T/gens/copy.png"
$B analyze -q -j 2 --images "$T/gens" >/dev/null 2>&1 && $B report --format json --out "$T/r.json" -q >/dev/null 2>&1
tr -d ' \t\n' < "$T/r.json" > "$T/r1.json"
grep -q '"source":"stored"' "$T/r1.json" && grep -q 't.db.vec-tiny.bg' "$T/r1.json" && ok analyze_uses_stored ||
    { bad analyze_uses_stored; head -c 3000 "$T/r1.json"; }
got=$(grep -o '"background_bias":[-0-9.e]*' "$T/r1.json" | head -n 1 | cut -d: -f2)
awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d < 2e-4) }' &&
    ok analyze_stored_bias || bad "analyze_stored_bias ($got vs $want)"
# --background DIR overrides the stored set
$B analyze -q -j 2 --images "$T/gens" --background "$T/bg2" >/dev/null 2>&1 &&
    $B report --format json --out "$T/r.json" -q >/dev/null 2>&1
tr -d ' \t\n' < "$T/r.json" > "$T/r2.json"
grep -q '"source":"folder"' "$T/r2.json" && grep -q '"images":3' "$T/r2.json" && ok analyze_folder_overrides ||
    { bad analyze_folder_overrides; head -c 3000 "$T/r2.json"; }
rm -rf "$T"
echo "test_background.sh: $p passed, $f failed"
