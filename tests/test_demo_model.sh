#!/bin/sh
# The committed trained model models/demo-memo (scripts/train_demo_model.py):
#  - its files match SHA256SUMS, and it loads through the unchanged SD loader:
#    the PyTorch reference cases saved by the training script (tokenizer,
#    text encoder, UNet, VAE decoder on the F16 weights) pass `copyscope
#    selftest` within the sd-tiny tolerances;
#  - generation is deterministic: the same suite twice, -j 2 both times,
#    gives byte-identical images (sha256 in the store). (-j 1 against -j 2
#    still differs by one grey level in some pixels: a known gap of the SD
#    pipeline, not asserted here);
#  - a prompt of a 100x-duplicated training image is judged a copy (or
#    near-copy) of that very image, for every seed;
#  - a prompt of a 30x image whose generations are decoder-blurred copies
#    ("european post office", seeds 2000-2002 as in make run): each is judged
#    a copy of that image exactly when the report's pixel truth (Carlini's
#    tiled L2 <= 0.15 to the decoded image) says so, and otherwise a partial
#    copy of it whose evidence lists the tiles farther from the round trip
#    than the autoencoder's own loss (near_ae_floor and near_ae_floor_partial,
#    analyze/an_roundtrip.c). Until the per-tile condition, all 3 were
#    near-copies; 2 of them have one region at 0.18 from the decoded image;
#  - a generation that is far from every training image by pixels (PSNR at
#    least 12 dB below the autoencoder's own floor, computed by the report's
#    memorisation section) is not judged a copy of any training image;
#  - the run records its effective model config in runs.settings_json
#    (absolute checkpoint, config and vocabulary paths, the config's JSON), so
#    a copy of the store analysed from another folder without the suite still
#    compares with the round trips, with the same verdicts; a store whose
#    recorded checkpoint is gone is analysed with the plain comparison and
#    says so in one line on stderr (and in every finding's evidence), by
#    `copyscope analyze` and by `copyscope run` alike;
#  - a 1x prompt's decoder copy of the 30x post office is judged a (partial)
#    copy of it although a rival reference is about as far by raw pixels (below);
#  - a 1x prompt's post office with a corner lost is a partial copy of it by
#    the part reproduced at the autoencoder's precision (ae_floor_part), and
#    a blob that reproduces no part of any training image stays unflagged.
B=${CS_BIN:-build/copyscope}
BABS=$(cd "$(dirname "$B")" && pwd)/$(basename "$B")
T=${CS_TMP:-/tmp}/demo-model-sh.$$
M=models/demo-memo
DATA=../shared/data/twemoji-64
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; }
mkdir -p "$T/refs/img" || exit 1

(cd "$M" && sha256sum -c --status SHA256SUMS) && ok sha256sums || bad sha256sums
$B selftest --refs "$M" --vocab "$M/bpe_simple_vocab_16e6.txt.gz" >"$T/selftest" 2>&1 &&
    grep -q "4 cases ok, 0 failed" "$T/selftest" && ok selftest_pytorch_cases || { bad selftest_pytorch_cases; cat "$T/selftest"; }

# the index: every training image (from the manifest) and 60 other emoji
$PY -c "import json,sys; [print(t['file']) for t in json.load(open('$M/manifest.json'))['train']]" >"$T/train.txt"
[ "$(wc -l <"$T/train.txt")" -gt 10 ] && ok manifest_lists_images || bad manifest_lists_images
# (and the railway track, the rival of a decoder copy of the post office below)
# (and three other clock faces, the look-alikes that share the one o'clock face's rim: the cloud
# and the root vegetable, below)
for x in $(cat "$T/train.txt") $(ls "$DATA/img" | sort | head -n 60 | sed 's|^|img/|') img/1f6e4-fe0f.png \
    img/1f55a.png img/1f55c.png img/1f561.png; do
    cp "$DATA/$x" "$T/refs/img/"
done
$B index add "$T/refs" --db "$T/a.db" -j 2 >/dev/null 2>&1 && ok index_add || bad index_add

# a 100x caption, 3 seeds
c100=$($PY -c "import json; print([t for t in json.load(open('$M/manifest.json'))['train'] if t['copies']==100][0]['caption'])")
f100=$($PY -c "import json; print([t for t in json.load(open('$M/manifest.json'))['train'] if t['copies']==100][0]['file'])")
# novel prompts (one seed each; some are drawn to a memorised image, most are not)
novs=$($PY -c "import json; print(', '.join('{\"id\": \"novel%d\", \"text\": \"%s\", \"samples\": 1}' % (i, n['prompt'])
  for i, n in enumerate(json.load(open('$M/manifest.json'))['novel'][:6])))")
cat >"$T/s.json" <<EOF
{"name": "memo-test", "model": "$(pwd)/$M/model.safetensors", "config": "$(pwd)/$M/config.json",
 "vocab": "$(pwd)/$M/bpe_simple_vocab_16e6.txt.gz",
 "defaults": {"sampler": "ddim", "steps": 20, "guidance": 5.0, "size": 64, "samples": 3, "seed": 7, "whitebox_k": 1},
 "prompts": [{"id": "dup100", "text": "$c100", "expect_ref": "$f100"},
             {"id": "dup30", "text": "european post office", "seed": 2000},
             {"id": "lorry", "text": "articulated lorry", "seed": 2001, "samples": 1},
             {"id": "cloud", "text": "cloud", "seed": 2001, "samples": 1},
             {"id": "guardsman", "text": "guardsman", "seed": 2002, "samples": 1},
             {"id": "link", "text": "link symbol", "seed": 2001, "samples": 1},
             {"id": "rowboat", "text": "rowboat", "seed": 2001, "samples": 1},
             {"id": "rootveg", "text": "root vegetable", "seed": 2001, "samples": 1}, $novs]}
EOF
$B run "$T/s.json" --db "$T/a.db" --out "$T/o1" -j 2 >"$T/run1" 2>&1 && ok run || { bad run; tail -5 "$T/run1"; }
$B generate "$T/s.json" --db "$T/b.db" --out "$T/o2" -j 2 >/dev/null 2>&1 && ok generate_again || bad generate_again
shas() { $PY -c "import sqlite3,sys; print(','.join(r[0] for r in sqlite3.connect(sys.argv[1]).execute(
  'SELECT g.sha256 FROM generations g JOIN prompts p ON p.id = g.prompt_id ORDER BY p.key, g.sample')))" "$1" 2>&1; }
s1=$(shas "$T/a.db"); s2=$(shas "$T/b.db")
[ -n "$s1" ] && [ "$s1" = "$s2" ] && ok deterministic || bad "deterministic: $s1 vs $s2"
grep -q "expected copies (suite's expect_ref): 3 of 3 generations found as a copy of it" "$T/run1" &&
    ok dup100_copied || { bad dup100_copied; grep -A8 "summary" "$T/run1"; }

# far generations (by the report's pixel measurements) must not be judged copies
$PY - "$T/o1/memo-test-report.json" >"$T/far" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))["memorisation"]
far = [g for g in m["generations"] if g.get("nearest_psnr") is not None
       and g["nearest_psnr"] < g["nearest_floor_psnr"] - 12]
print(len(far), sum(1 for g in far if g["verdict_copy_of"] is not None))
EOF
read nfar nbad <"$T/far"
[ "${nfar:-0}" -ge 1 ] && ok far_generation_exists || bad "far_generation_exists ($nfar)"
[ "${nbad:-1}" -eq 0 ] && ok far_not_copy || bad "far_not_copy ($nbad of $nfar)"
grep -q '"auc_first_step"' "$T/o1/memo-test-report.json" && ok report_has_memorisation || bad report_has_memorisation
# the HTML table's "copies or partial (verdict)" column is the JSON's verdict_copy_or_partial_rate, group by group
$PY - "$T/o1/memo-test-report.json" "$T/o1/memo-test-report.html" >"$T/cop" 2>&1 <<'EOF'
import json, re, sys
groups = json.load(open(sys.argv[1]))["memorisation"]["groups"]
html = open(sys.argv[2], encoding="utf-8").read()
sec = html[html.index('id="memorisation"'):]
head = re.search(r"<thead><tr>(.*?)</tr></thead>", sec).group(1)
cols = re.findall(r"<th>(.*?)</th>", head)
col = cols.index("copies or partial (verdict)")
rows = re.findall(r"<tr>(.*?)</tr>", sec[sec.index("<tbody>"):sec.index("</tbody>")])
cells = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in rows]
rate = [g["verdict_copy_or_partial_rate"] for g in groups]
want = ["&ndash;" if r is None else "%.0f%%" % (100 * r) for r in rate]
got = [c[col] for c in cells]
print("ok" if got == want and sum(r is not None for r in rate) >= 2 else "html %s json %s" % (got, want))
EOF
grep -qx ok "$T/cop" && ok html_copy_or_partial_column || { bad html_copy_or_partial_column; cat "$T/cop"; }
# a prompt's generations: the report's pixel truth beside the last analysis's
# finding (verdict, rule, reference file, tiles beyond the autoencoder floor)
cat >"$T/finding.py" <<'EOF'
import json, sqlite3, sys
m = json.load(open(sys.argv[1]))["memorisation"]["generations"]
d = sqlite3.connect(sys.argv[2])
a = d.execute("SELECT max(id) FROM analyses").fetchone()[0]
for g in [g for g in m if g["prompt"] == sys.argv[3]]:
    r = d.execute("SELECT verdict, json_extract(evidence_json, '$.rule'), json_extract(evidence_json, '$.ref.source'), "
                  "json_array_length(json_extract(evidence_json, '$.pixel_comparison.tiles_beyond_floor')) FROM findings "
                  "WHERE generation_id = ? AND json_extract(evidence_json, '$.analysis_id') = ?",
                  (g["generation_id"], a)).fetchone() or ("none", "", "", 0)
    print(int(g["pixel_copy"]), g["pixel_nearest_recon"], r[0], r[1] or "-", (r[2] or "-").split("/")[-1], r[3] or 0)
EOF
$PY "$T/finding.py" "$T/o1/memo-test-report.json" "$T/a.db" "european post office" >"$T/dup30" 2>&1
# a pixel copy: a copy or near-copy of it; not one: a partial copy of it by
# the round trip's per-tile floor, the tiles beyond it listed
n30=$(grep -c . "$T/dup30")
c30=$(awk '$2 == "img/1f3e4.png" && $5 == "1f3e4.png" && (($1 == 1 && ($3 == "near-copy" || $3 == "copy")) ||
       ($1 == 0 && $3 == "partial" && $4 == "near_ae_floor_partial" && $6 >= 1))' "$T/dup30" | grep -c .)
p30=$(awk '$1 == 0' "$T/dup30" | grep -c .)
[ "$n30" -eq 3 ] && [ "$c30" -eq 3 ] && [ "$p30" -ge 1 ] && ok dup30_verdicts_follow_tiles ||
    { bad "dup30_verdicts_follow_tiles ($c30 of $n30 agree, $p30 not pixel copies)"; cat "$T/dup30"; }

# the report's pixel truth (reports/memo.c) against an independent one: tiled
# L2 (4x4 tiles, [0,1] pixels, the largest tile RMS; Carlini et al. 2023
# s4.2) of each generation to every decoded training image (recon/), the
# PNGs read here with zlib: the same nearest image and distance, and a copy
# exactly when that distance is <= 0.15
$PY - "$T/o1/memo-test-report.json" "$M" >"$T/truth" 2>&1 <<'EOF'
import json, struct, sys, zlib
import numpy as np
def png(path):  # 8-bit RGB, non-interlaced (generations and recon/ are)
    b = open(path, "rb").read()
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(b):
        n, t = struct.unpack(">I4s", b[pos:pos + 8])
        d = b[pos + 8:pos + 8 + n]
        if t == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", d[:10])
            assert depth == 8 and ctype == 2, path
        elif t == b"IDAT":
            idat += d
        pos += 12 + n
    raw, st, out = zlib.decompress(idat), w * 3, []
    prev = [0] * st
    for y in range(h):
        f, row = raw[y * (st + 1)], list(raw[y * (st + 1) + 1:(y + 1) * (st + 1)])
        for x in range(st):
            a = row[x - 3] if x >= 3 else 0
            c = prev[x - 3] if x >= 3 else 0
            u = prev[x]
            if f == 1: row[x] = (row[x] + a) & 255
            elif f == 2: row[x] = (row[x] + u) & 255
            elif f == 3: row[x] = (row[x] + (a + u) // 2) & 255
            elif f == 4:
                p = a + u - c
                pa, pb, pc = abs(p - a), abs(p - u), abs(p - c)
                row[x] = (row[x] + (a if pa <= pb and pa <= pc else u if pb <= pc else c)) & 255
        out.append(row)
        prev = row
    return np.array(out, dtype=np.float64).reshape(h, w, 3) / 255.0
def tl2(a, b):
    h, w = a.shape[0] // 4, a.shape[1] // 4
    return max(np.sqrt(np.mean((a[y*h:(y+1)*h, x*w:(x+1)*w] - b[y*h:(y+1)*h, x*w:(x+1)*w]) ** 2))
               for y in range(4) for x in range(4))
m = json.load(open(sys.argv[1]))["memorisation"]
man = json.load(open(sys.argv[2] + "/manifest.json"))["train"]
rec = {t["file"]: png(sys.argv[2] + "/" + t["recon"]) for t in man}
gens = {g["generation_id"]: g for g in m["generations"]}
import sqlite3
paths = dict(sqlite3.connect(sys.argv[1].replace("/o1/memo-test-report.json", "/a.db")).execute(
    "SELECT id, path FROM generations"))
bad, n, ncopy = [], 0, 0
for gid, g in gens.items():
    im = png(paths[gid])
    d, f = min((tl2(im, r), f) for f, r in rec.items())
    n += 1
    ncopy += d <= 0.15
    if f != g["pixel_nearest_recon"] or abs(d - g["tl2_nearest_recon"]) > 1e-9 or (d <= 0.15) != g["pixel_copy"]:
        bad.append((gid, f, d, g["pixel_nearest_recon"], g["tl2_nearest_recon"], g["pixel_copy"]))
v = m["verdicts_vs_pixels"]
print(n, ncopy, len(bad), v["tp"] + v["fn"], bad[:3])
EOF
read ntr ncp nbt npos rest <"$T/truth"
[ "${ntr:-0}" -ge 10 ] && [ "${nbt:-1}" -eq 0 ] && [ "${ncp:-0}" -ge 3 ] && [ "$ncp" = "$npos" ] &&
    ok pixel_truth_independent || { bad pixel_truth_independent; cat "$T/truth"; }

# a 1x prompt drawn to the 30x post office (seed 2001 as in make run): its
# generation is a decoder copy, 0.25 from the post office by tiled L2 and
# 0.17 from its round trip; the railway track is 0.30 from it. Lowe's ratio
# of near_ae_floor compares each candidate by its nearer distance (0.17 vs
# 0.30 passes); by raw distances (0.25 vs 0.30) it vetoed the copy. Its
# bottom row is 0.17 from the round trip, beyond the autoencoder's own loss
# on the post office (0.15), and the pixel truth (0.17 > 0.15) calls it no
# copy: a partial copy of the post office, the tiles beyond the floor listed
$PY "$T/finding.py" "$T/o1/memo-test-report.json" "$T/a.db" "articulated lorry" >"$T/lorry" 2>&1
read lpx lnear lv lrule lref lbeyond <"$T/lorry"
[ "$(grep -c . "$T/lorry")" -eq 1 ] && [ "$lref" = 1f3e4.png ] && [ "$lrule" = near_ae_floor_partial ] &&
    [ "$lv" = partial ] && [ "${lbeyond:-0}" -ge 1 ] && [ "$lpx" = 0 ] && ok decoder_copy_rival_by_nearer_distance ||
    { bad decoder_copy_rival_by_nearer_distance; cat "$T/lorry"; }

# a 1x prompt drawn to the 100x clock face (seed 2001 as in make run): the
# clock at one o'clock with its lower-left rim redrawn, 0.18 from the decoded
# clock by tiled L2 (no pixel copy). The tiles cannot tell the clock faces
# apart (they share the rim: no pixel partial), the local features can, and
# judged it lf_near, a near-copy. At the reference's own geometry (most tiles
# matched in place) with a tile beyond every near-copy bound it is a partial
# copy (lf_near_partial, analyze/an_roundtrip.c)
$PY "$T/finding.py" "$T/o1/memo-test-report.json" "$T/a.db" "cloud" >"$T/cloud" 2>&1
read cpx cnear cv crule cref cbeyond <"$T/cloud"
[ "$(grep -c . "$T/cloud")" -eq 1 ] && [ "$cref" = 1f550.png ] && [ "$cv" = partial ] && [ "$cpx" = 0 ] &&
    ok lf_near_in_place_partial || { bad lf_near_in_place_partial; cat "$T/cloud"; }

# a 1x prompt drawn to the 100x clock face (seed 2001 as in make run): a
# decoder copy of the one o'clock face, 0.06 from its round trip (near_tl2
# only after the round trip: beyond near_tl2 of the raw reference), while the
# half past six face's rim verified by local features (lf_near, 0.24 by
# pixels). The round trip's re-ranking kept the match's choice, made when the
# one o'clock face was not yet a near-copy; the match's own order (fused
# score after the verdict) names the one o'clock face
$PY "$T/finding.py" "$T/o1/memo-test-report.json" "$T/a.db" "root vegetable" >"$T/rootveg" 2>&1
read rpx rnear rv rrule rref rbeyond <"$T/rootveg"
[ "$(grep -c . "$T/rootveg")" -eq 1 ] && [ "$rref" = 1f550.png ] && [ "$rv" = near-copy ] && [ "$rpx" = 1 ] &&
    ok round_trip_rerank_by_fused || { bad round_trip_rerank_by_fused; cat "$T/rootveg"; }

# a 1x prompt drawn to the 10x magic wand (seed 2002 as in make run): the wand
# and two of its sparkles, the third sparkle missing and an orange blob drawn
# left of the wand. Carlini's tiled L2 to the decoded wand is 0.146, under
# 0.15 (a 16 px tile averages the small blob away): the report's one pixel
# copy missed. The verdict is right: the blob is a replaced part at the
# pixel alignment (analyze/lf_part.h; it vetoes embed_near), and tiles beyond
# the autoencoder's floor make near_ae_floor's verdict partial
$PY "$T/finding.py" "$T/o1/memo-test-report.json" "$T/a.db" "guardsman" >"$T/guard" 2>&1
read gpx gnear gv grule gref gbeyond <"$T/guard"
gpart=$($PY -c "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT json_extract(f.evidence_json, '\$.tl2.replaced_part.replaced') FROM findings f JOIN generations g ON g.id = f.generation_id JOIN prompts p ON p.id = g.prompt_id WHERE p.text = 'guardsman' ORDER BY f.id DESC\").fetchone()[0])" "$T/a.db" 2>&1)
[ "$(grep -c . "$T/guard")" -eq 1 ] && [ "$gref" = 1fa84.png ] && [ "$gv" = partial ] && [ "$gpx" = 1 ] &&
    [ "$grule" = near_ae_floor_partial ] && [ "${gbeyond:-0}" -ge 1 ] && [ "$gpart" = 1 ] &&
    ok moved_part_partial || { bad "moved_part_partial (replaced part: $gpart)"; cat "$T/guard"; }

# a 1x prompt drawn to the 30x post office (seed 2001 as in make run): the
# post office with its lower-left corner lost (a white smear there), 0.22
# from the decoded post office by tiled L2 (no pixel copy). No whole-image
# rule holds and no tile is within partial_tile_l2 of the reference; 13 of
# its 16 tiles, one connected region carrying the post office's structure,
# are within the autoencoder's own loss (0.15, capped at 0.125) of the round
# trip, nearer it than the reference, and no other candidate is nearly as
# near there: a partial copy (ae_floor_part, analyze/an_roundtrip.c), its
# region listed. It was novel before the rule
$PY "$T/finding.py" "$T/o1/memo-test-report.json" "$T/a.db" "link symbol" >"$T/link" 2>&1
read kpx knear kv krule kref kbeyond <"$T/link"
kpart=$($PY -c "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT json_array_length(json_extract(f.evidence_json, '\$.pixel_comparison.part_at_floor.tiles')) FROM findings f JOIN generations g ON g.id = f.generation_id JOIN prompts p ON p.id = g.prompt_id WHERE p.text = 'link symbol' ORDER BY f.id DESC\").fetchone()[0])" "$T/a.db" 2>&1)
[ "$(grep -c . "$T/link")" -eq 1 ] && [ "$kref" = 1f3e4.png ] && [ "$kv" = partial ] && [ "$krule" = ae_floor_part ] &&
    [ "$kpx" = 0 ] && [ "${kpart:-0}" -ge 6 ] 2>/dev/null && ok part_at_floor_partial ||
    { bad "part_at_floor_partial (region of $kpart tiles)"; cat "$T/link"; }
# a 1x prompt whose generation is an orange-red blob (seed 2001 as in make
# run: "rowboat", 0.30 from the nearest decoded training image, the chick):
# no part of any training image at the decoder's precision, not flagged
$PY "$T/finding.py" "$T/o1/memo-test-report.json" "$T/a.db" "rowboat" >"$T/blob" 2>&1
read bpx bnear bv brule bref bbeyond <"$T/blob"
[ "$(grep -c . "$T/blob")" -eq 1 ] && [ "$bpx" = 0 ] && { [ "$bv" = novel ] || [ "$bv" = none ]; } &&
    ok blob_not_flagged || { bad blob_not_flagged; cat "$T/blob"; }

# the report's second lines against an independent count: PSNR to the
# nearest training image as indexed (the reference thumbnails) at least its
# reconstruction's PSNR minus 20 log10 2 (derived) or 7.9 dB (the issue's
# prototype), and the verdicts read both ways (copy or near-copy; with partial)
$PY - "$T/o1/memo-test-report.json" "$T/a.db" "$M" >"$T/second" 2>&1 <<'EOF'
import json, sqlite3, sys
import numpy as np
from PIL import Image
m = json.load(open(sys.argv[1]))["memorisation"]
d = sqlite3.connect(sys.argv[2])
man = json.load(open(sys.argv[3] + "/manifest.json"))["train"]
def px(a): return np.asarray(a, dtype=np.float64) / 255.0
def psnr(a, b): return -10 * np.log10(np.mean((a - b) ** 2))
th, ref_of = {}, {}
for t in man:
    rid, dup, w, h, b = d.execute("SELECT r.id, r.dup_of, t.w, t.h, t.rgb FROM refs r JOIN ref_thumbs t ON "
        "t.ref_id = COALESCE(r.dup_of, r.id) WHERE r.source LIKE ?", ("%/" + t["file"],)).fetchone()
    th[t["file"]] = px(np.frombuffer(b, np.uint8).reshape(h, w, 3))
    ref_of[rid] = ref_of[dup or rid] = t["file"]
floor = {t["file"]: psnr(px(Image.open(sys.argv[3] + "/" + t["recon"]).convert("RGB")), th[t["file"]]) for t in man}
a = d.execute("SELECT max(id) FROM analyses").fetchone()[0]
got = {(k, r): [0, 0, 0] for k in ("floor_margin", "floor_issue_margin") for r in (0, 1)}
bad = 0
for g in m["generations"]:
    path, = d.execute("SELECT path FROM generations WHERE id = ?", (g["generation_id"],)).fetchone()
    im = px(Image.open(path).convert("RGB"))
    ps = {f: psnr(im, x) for f, x in th.items()}
    n = max(ps, key=ps.get)
    tr = {"floor_margin": ps[n] >= floor[n] - 20 * np.log10(2), "floor_issue_margin": ps[n] >= floor[n] - 7.9}
    bad += tr["floor_margin"] != g["pixel_copy_floor_margin"] or tr["floor_issue_margin"] != g["pixel_copy_floor_issue_margin"]
    rows = d.execute("SELECT verdict, ref_id FROM findings WHERE generation_id = ? AND "
                     "json_extract(evidence_json, '$.analysis_id') = ?", (g["generation_id"], a)).fetchall()
    for r in (0, 1):
        kinds = ("copy", "near-copy", "partial") if r else ("copy", "near-copy")
        v = next((ref_of[x] for vv, x in rows if vv in kinds and x in ref_of), None)
        for k in tr:
            c = got[(k, r)]
            if v and tr[k] and v == n: c[0] += 1
            elif v: c[1] += 1
            elif tr[k]: c[2] += 1
for (k, r), c in got.items():
    v = m["verdicts_vs_pixels_" + k]
    v = v["with_partial"] if r else v
    bad += [v["tp"], v["fp"], v["fn"]] != c
print(bad, sum(c[0] for c in got.values()))
EOF
read sbad stp <"$T/second"
[ "${sbad:-1}" -eq 0 ] && [ "${stp:-0}" -ge 1 ] && ok second_lines_independent || { bad second_lines_independent; cat "$T/second"; }

# the effective config in runs.settings_json
$PY - "$T/a.db" "$(pwd)/$M" >"$T/sj" 2>&1 <<'EOF'
import json, os, sqlite3, sys
s = json.loads(sqlite3.connect(sys.argv[1]).execute("SELECT settings_json FROM runs ORDER BY id LIMIT 1").fetchone()[0])
m = sys.argv[2]
want = {"model_file": os.path.realpath(m + "/model.safetensors"), "config": os.path.realpath(m + "/config.json"),
        "vocab": os.path.realpath(m + "/bpe_simple_vocab_16e6.txt.gz")}
bad = [k for k in want if s.get(k) != want[k]]
if s.get("config_json") != json.load(open(m + "/config.json")):
    bad.append("config_json")
print("ok" if not bad else "differs: %s" % bad)
EOF
grep -qx ok "$T/sj" && ok settings_json_records_config || { bad settings_json_records_config; cat "$T/sj"; }

# the last analysis of a store: "verdicts" (generation:verdict ...) or
# "withs" (the distinct pixel_comparison.with of its findings)
cat >"$T/last.py" <<'EOF'
import sqlite3, sys
d = sqlite3.connect(sys.argv[2])
a = d.execute("SELECT max(id) FROM analyses").fetchone()[0]
rows = d.execute("SELECT generation_id, verdict, json_extract(evidence_json, '$.pixel_comparison.with') FROM findings "
                 "WHERE json_extract(evidence_json, '$.analysis_id') = ? ORDER BY generation_id", (a,)).fetchall()
if sys.argv[1] == "verdicts":
    print(" ".join("%s:%s" % (g, v) for g, v, _ in rows))
else:
    print(" | ".join(sorted(set(str(w) for _, _, w in rows))))
EOF
v1=$($PY "$T/last.py" verdicts "$T/a.db")
mkdir -p "$T/elsewhere" "$T/gone"
cp "$T"/a.db* "$T/elsewhere/"
cp "$T"/a.db* "$T/gone/"
mv "$T/s.json" "$T/s.keep"
(cd "$T/elsewhere" && "$BABS" analyze --run 1 --db a.db >/dev/null 2>"$T/elsewhere.err") && ok analyze_elsewhere ||
    { bad analyze_elsewhere; cat "$T/elsewhere.err"; }
v2=$($PY "$T/last.py" verdicts "$T/elsewhere/a.db")
[ -n "$v1" ] && [ "$v1" = "$v2" ] && ok elsewhere_same_verdicts || bad "elsewhere_same_verdicts: $v1 vs $v2"
w2=$($PY "$T/last.py" withs "$T/elsewhere/a.db")
[ "$w2" = "reference and its round trip through the model's autoencoder" ] && ! grep -q "no round trip" "$T/elsewhere.err" &&
    ok elsewhere_round_trip || { bad "elsewhere_round_trip ($w2)"; cat "$T/elsewhere.err"; }

# the recorded checkpoint gone: a recorded skip, said in one line
GONE=/nonexistent/demo-memo/model.safetensors
$PY - "$T/gone/a.db" "$GONE" <<'EOF'
import sqlite3, sys
d = sqlite3.connect(sys.argv[1])
d.execute("UPDATE runs SET model = ?, settings_json = json_set(settings_json, '$.model_file', ?)",
          (sys.argv[2], sys.argv[2]))
d.commit()
EOF
(cd "$T/gone" && "$BABS" analyze --run 1 --db a.db >/dev/null 2>"$T/gone.err") && ok analyze_model_gone ||
    { bad analyze_model_gone; cat "$T/gone.err"; }
[ "$(grep -c "no round trip through the run's autoencoder, pixels compared with the references only: $GONE: the run's model is not there any more" "$T/gone.err")" -eq 1 ] &&
    ok model_gone_said || { bad model_gone_said; cat "$T/gone.err"; }
w3=$($PY "$T/last.py" withs "$T/gone/a.db")
[ "$w3" = "reference" ] && ok model_gone_plain_comparison || bad "model_gone_plain_comparison ($w3)"
# `copyscope run` says it too (its generations are all there: none is made again)
(cd "$T/gone" && "$BABS" run "$T/s.keep" --db a.db --out "$T/o1" --reanalyze -j 2 >"$T/gone-run.out" 2>"$T/gone-run.err") &&
    ok run_model_gone || { bad run_model_gone; tail -3 "$T/gone-run.err"; }
[ "$(grep -c "^copyscope: run: no round trip through the run's autoencoder, pixels compared with the references only: $GONE: the run's model is not there any more" "$T/gone-run.err")" -eq 1 ] &&
    grep -q "0 images made" "$T/gone-run.out" && ok run_model_gone_said || { bad run_model_gone_said; cat "$T/gone-run.err"; }

rm -rf "$T"
echo "test_demo_model.sh: $p passed, $f failed"
[ "$f" -eq 0 ]
