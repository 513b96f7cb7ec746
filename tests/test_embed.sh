#!/bin/sh
# index add --embedder / index query embedding neighbours, end to end:
# tiny on 40 twemoji references (a reference finds itself at cosine 1, a rerun
# computes nothing new), sscd with the reference ResNet-50 on 3 of them, a
# dimension mismatch and a truncated column give one-line errors.
B=${CS_BIN:-build/copyscope}
T=$(mktemp -d "${CS_TMP:-/tmp}/cs-embed-XXXXXX")
export COPYSCOPE_DB="$T/t.db" CS_PROGRESS=0
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; }
IMG=../shared/data/twemoji-64/img
W=../shared/refs/resnet50/model.safetensors
mkdir -p "$T/refs"
for x in $(ls $IMG | head -40); do cp "$IMG/$x" "$T/refs/"; done
Q="$T/refs/$(ls "$T/refs" | sed -n 7p)"

$B index add -j 2 "$T/refs" >/dev/null 2>&1 && ok ingest || bad ingest
out=$($B index add -j 2 --embedder tiny 2>&1)
echo "$out" | grep -q "embedder tiny: 40 computed, 0 already present" && ok tiny_add || { bad tiny_add; echo "$out"; }
out=$($B index add -j 2 --embedder tiny 2>&1)
echo "$out" | grep -q "0 computed, 40 already present" && ok tiny_rerun_adds_nothing || { bad tiny_rerun_adds_nothing; echo "$out"; }
out=$($B index query --k 3 "$Q" 2>&1)
echo "$out" | grep -A1 "tiny embedding" | tail -n 1 | grep -q "1.0000  ref 7 " && ok tiny_self_first || { bad tiny_self_first; echo "$out"; }
$B index query --json --k 2 "$Q" 2>/dev/null | grep -q '"metric":[[:space:]]*"cosine"' && ok tiny_json || bad tiny_json

# sscd on a 3-reference index
mkdir -p "$T/few"
for x in $(ls $IMG | head -3); do cp "$IMG/$x" "$T/few/"; done
export COPYSCOPE_DB="$T/few.db"
$B index add -j 2 "$T/few" >/dev/null 2>&1
out=$($B index add -j 2 --embedder sscd:$W 2>&1)
echo "$out" | grep -q "embedder sscd:.*: 3 computed" && ok sscd_add || { bad sscd_add; echo "$out"; }
Q2="$T/few/$(ls "$T/few" | sed -n 2p)"
out=$($B index query --k 2 --embedder sscd:$W "$Q2" 2>&1)
echo "$out" | grep -A1 "sscd embedding" | tail -n 1 | grep -q "1.0000  ref 2 " && ok sscd_self_first || { bad sscd_self_first; echo "$out"; }
$B index add --embedder sscd:$T/nope.safetensors >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "nope.safetensors" "$T/err" && ok missing_weights || bad missing_weights
$B index add --embedder frob >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "unknown embedder 'frob'" "$T/err" && ok unknown_embedder || bad unknown_embedder
# a column of another dimension than the embedder: clear error, no neighbours
cp "$T/t.db.vec-tiny" "$T/few.db.vec-sscd"; cp "$T/t.db.vec-tiny.ids" "$T/few.db.vec-sscd.ids"
$B index query --embedder sscd:$W "$Q2" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "vec-sscd: dimension 256, expected 512" "$T/err" && ok dim_mismatch || { bad dim_mismatch; cat "$T/err"; }
# a truncated column
export COPYSCOPE_DB="$T/t.db"
truncate -s 5000 "$T/t.db.vec-tiny"
$B index query "$Q" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "vec-tiny: truncated" "$T/err" && ok truncated_column || { bad truncated_column; cat "$T/err"; }
rm -rf "$T"
echo "test_embed.sh: $p passed, $f failed"
