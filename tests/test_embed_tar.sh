#!/bin/sh
# index add --embedder sscd on references that are tar-shard members
# (webdataset layout): every member gets a vector equal (cosine > 0.9999) to
# the same image's vector indexed from a plain folder; a member corrupted
# after ingest and a vanished shard are skipped and counted with a reason; a
# rerun computes nothing new. Vectors are read from the column files (od).
B=${CS_BIN:-build/copyscope}
T=$(mktemp -d "${CS_TMP:-/tmp}/cs-embtar-XXXXXX")
export CS_PROGRESS=0
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; }
IMG=../shared/data/twemoji-64/img
W=../shared/refs/resnet50/model.safetensors
mkdir -p "$T/imgs" "$T/s2" "$T/s3"
for x in $(ls $IMG | sed -n 200,203p); do
    cp "$IMG/$x" "$T/imgs/"
    echo "caption of $x" > "$T/imgs/${x%.png}.txt"
done
for x in $(ls $IMG | sed -n 210,211p); do cp "$IMG/$x" "$T/s2/"; done
cp "$IMG/$(ls $IMG | sed -n 220p)" "$T/s3/"
(cd "$T/imgs" && tar cf "$T/s1.tar" *)
(cd "$T/s2" && tar cf "$T/s2.tar" *)
(cd "$T/s3" && tar cf "$T/s3.tar" *)

# rows COLUMN: "id v1 ... vdim" per row of a vector column (index/vecstore.h layout)
rows() {
    d=$(od -An -t u4 -j 12 -N 4 "$1" | tr -d ' ')
    od -An -v -t d8 -j 64 "$1.ids" | tr -s ' ' '\n' | grep -v '^$' > "$T/ids.txt"
    od -An -v -t f4 -j 64 "$1" | tr -s ' ' '\n' | grep -v '^$' |
        awk -v d="$d" 'NR == FNR { id[NR] = $1; next }
                       { r = int((FNR - 1) / d) + 1; line[r] = line[r] " " $1 }
                       END { for (i = 1; i in line; i++) print id[i] line[i] }' "$T/ids.txt" -
}

export COPYSCOPE_DB="$T/tar.db"
out=$($B index add -j 2 "$T/s1.tar" "$T/s2.tar" "$T/s3.tar" 2>&1)
echo "$out" | grep -q "7 added, 0 duplicates, 0 errors" && ok ingest_shards || { bad ingest_shards; echo "$out"; }
# after ingest: the first member of s2 turns to junk, s3 vanishes
first2=$(ls "$T/s2" | head -n 1)
echo "not a png any more" > "$T/s2/$first2"
(cd "$T/s2" && tar cf "$T/s2.tar" *)
rm "$T/s3.tar"
out=$($B index add -j 2 --embedder sscd:$W 2>"$T/err")
echo "$out" | grep -q "embedder sscd:.*: 5 computed, 0 already present, 2 skipped" &&
    ok sscd_members_computed || { bad sscd_members_computed; echo "$out"; cat "$T/err"; }
grep -q "s2.tar//$first2: .*not a PNG or JPEG" "$T/err" && ok corrupt_member_reason || { bad corrupt_member_reason; cat "$T/err"; }
out=$($B index add -j 2 --embedder sscd:$W 2>"$T/err")
echo "$out" | grep -q "0 computed, 5 already present, 2 skipped" && ok rerun_computes_nothing ||
    { bad rerun_computes_nothing; echo "$out"; }
# the vanished shard's reason (the corrupt member is the first skip only when s2 sorts first)
$B index ls | awk '$5 ~ /s3.tar\/\// { print $1 }' > "$T/s3ids"
rows "$T/tar.db.vec-sscd" | awk '{ print $1 }' | grep -qxf "$T/s3ids" && bad vanished_shard_no_vector || ok vanished_shard_no_vector

export COPYSCOPE_DB="$T/gone.db"
(cd "$T/s3" && tar cf "$T/s3.tar" *)
$B index add -j 2 "$T/s3.tar" >/dev/null 2>&1
rm "$T/s3.tar"
out=$($B index add -j 2 --embedder sscd:$W 2>"$T/err")
echo "$out" | grep -q "0 computed, 0 already present, 1 skipped" && grep -q "s3.tar//.*: cannot open tar shard" "$T/err" &&
    ok vanished_shard_reason || { bad vanished_shard_reason; echo "$out"; cat "$T/err"; }

# the same images from a plain folder, in another index
mkdir -p "$T/plain"
cp "$T/imgs/"*.png "$T/plain/"
export COPYSCOPE_DB="$T/plain.db"
$B index add -j 2 "$T/plain" >/dev/null 2>&1
out=$($B index add -j 2 --embedder sscd:$W 2>&1)
echo "$out" | grep -q "4 computed" && ok plain_computed || { bad plain_computed; echo "$out"; }
# name -> vector for both, joined on the image's file name
$B index ls --db "$T/tar.db" | awk '{ n = $5; sub(/.*\//, "", n); print $1, n }' > "$T/tar.names"
$B index ls --db "$T/plain.db" | awk '{ n = $5; sub(/.*\//, "", n); print $1, n }' > "$T/plain.names"
rows "$T/tar.db.vec-sscd" > "$T/tar.rows"
rows "$T/plain.db.vec-sscd" > "$T/plain.rows"
res=$(awk 'FILENAME ~ /tar.names$/ { tn[$1] = $2; next }
     FILENAME ~ /plain.names$/ { pn[$1] = $2; next }
     FILENAME ~ /tar.rows$/ { if ($1 in tn) { t[tn[$1]] = $0 } next }
     { if (!($1 in pn)) next; name = pn[$1]; if (!(name in t)) { miss++; next }
       split(t[name], a, " "); dot = 0; na = 0; nb = 0
       for (i = 2; i <= NF; i++) { dot += a[i] * $i; na += a[i] * a[i]; nb += $i * $i }
       c = dot / sqrt(na * nb); n++; if (c > 0.9999) good++; else printf "%s cos %.6f\n", name, c > "/dev/stderr" }
     END { print n + 0, good + 0, miss + 0 }' "$T/tar.names" "$T/plain.names" "$T/tar.rows" "$T/plain.rows")
[ "$res" = "4 4 0" ] && ok member_vectors_equal_folder || bad "member_vectors_equal_folder (compared, equal, missing = $res)"
rm -rf "$T"
echo "test_embed_tar.sh: $p passed, $f failed"
