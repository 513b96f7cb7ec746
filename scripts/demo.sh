#!/bin/sh
# demo.sh BUILD — what `make run` runs after `make deps` and the build: the
# whole audit on built-in demo data, ending with the report path.
#
#  1. demo data: the npm package emoji-datasource-twitter@16.0.0 (Twemoji
#     64 px images, CC BY 4.0; emoji.json, MIT), fetched once with `npm pack`
#     into demo/cache/ and checked against a pinned sha256; the 1,911 base
#     emoji (no skin-tone variants) go to demo/data/twemoji-64 with
#     captions.jsonl (caption = the emoji's lower-cased name)
#  2. reference index: copyscope index add (hashes, thumbnails, local features
#     and the tiny embedding: its defaults)
#  3. text audit: the licence texts of Debian's base-files
#     (/usr/share/common-licenses) as the corpus; prompts cut from it,
#     completions by the built-in n-gram model, the audit
#  4. copyscope run suites/demo.json: the built-in empirical model generates
#     (prompts and completion tasks), the analysis finds the copies, the
#     report (HTML + JSON) is written and summarised
#  5. copyscope run suites/demo-memo.json: a small SD-1.x-shaped model that was
#     really trained (models/demo-memo, `make demo-model`) on demo emoji
#     repeated 100x/30x/10x/3x/1x generates with copyscope's SD sampler;
#     its report adds the memorisation section (copies per duplication count,
#     the white-box ROC, verdicts against pixel ground truth) from the
#     manifest beside the model
#
# Everything lives in demo/ (git-ignored). Running it again reuses the cache
# and resumes: finished steps are skipped. `rm -rf demo` starts afresh.
set -eu

BUILD=${1:-build}
cd "$(dirname "$0")/.."
BIN=$BUILD/copyscope

PKG=emoji-datasource-twitter
VER=16.0.0
SHA256=f64a530c63bca463bd8317fdc4615ce63a53a0c65018e4ce2d848aaba7a28877
NIMG=1911
DEMO=demo
CACHE=$DEMO/cache
DATA=$DEMO/data/twemoji-64
TEXT=$DEMO/data/licenses
DB=$DEMO/demo.db
OUT=$DEMO/out
ATTRIBUTION="Twemoji graphics by Twitter, Inc and other contributors, CC BY 4.0 \
(https://creativecommons.org/licenses/by/4.0/), unmodified, from the npm package $PKG@$VER; \
emoji data (captions) from emoji-datasource by Cal Henderson (MIT)"

die() {
    echo "demo: $*" >&2
    exit 1
}
T0=$(date +%s)
TS=$T0
# CPU seconds (user + system) of the finished child processes so far: on a
# shared machine the wall time says how loaded it was, the CPU time how much
# work a step is (on an idle 2-core machine a step takes between CPU/2 and CPU)
# (`times` runs in this shell, not in a $(...) subshell that has no children)
mkdir -p "$DEMO"
TIMES=$DEMO/.times
cpu_of() {
    awk 'NR == 2 { gsub(/s/, ""); split($1, u, "m"); split($2, k, "m"); printf "%.0f", u[1] * 60 + u[2] + k[1] * 60 + k[2] }' "$1"
}
CS=0
lap() {
    now=$(date +%s)
    times >"$TIMES"
    c=$(cpu_of "$TIMES")
    echo "    ($((now - TS)) s, $((c - CS)) s CPU)"
    TS=$now
    CS=$c
}
step() {
    [ "$1" = 1 ] || lap
    printf '\n=== demo [%s/5] %s\n' "$1" "$2"
}

[ -x "$BIN" ] || die "$BIN: not built (run 'make' first, or 'make run')"

# ---- 1. data -----------------------------------------------------------------
step 1 "demo data: $PKG@$VER (Twemoji 64 px, CC BY 4.0) -> $DATA"
if [ -f "$DATA/captions.jsonl" ] && [ "$(wc -l <"$DATA/captions.jsonl")" -eq $NIMG ]; then
    echo "already there ($NIMG images)"
else
    command -v npm >/dev/null 2>&1 ||
        die "npm is needed to fetch the demo data: run 'make deps' as root, or 'sudo apt-get install npm'"
    command -v node >/dev/null 2>&1 || die "node is needed to prepare the demo data: sudo apt-get install nodejs"
    mkdir -p "$CACHE"
    TGZ=$CACHE/$PKG-$VER.tgz
    if [ ! -f "$TGZ" ]; then
        echo "downloading $PKG@$VER with npm pack (62 MB, once; kept in $CACHE)"
        (cd "$CACHE" && npm pack --loglevel=warn "$PKG@$VER" >/dev/null) || die "npm pack $PKG@$VER failed"
    fi
    echo "$SHA256  $TGZ" | sha256sum -c --status ||
        die "$TGZ: sha256 differs from the pinned $SHA256 (delete it to download again)"
    rm -rf "$CACHE/package" "$DATA.tmp"
    tar -xzf "$TGZ" -C "$CACHE" package/emoji.json package/LICENSE package/img/twitter/64
    # the base emoji only (skin-tone variants are listed under each entry, not
    # at the top level), in the package's sort order; JSON written like
    # Python's json.dumps(ensure_ascii=False), as ../shared/data/twemoji-64 is
    node - "$CACHE/package" "$DATA.tmp" <<'EOF'
const fs = require("fs"), path = require("path");
const [src, dst] = process.argv.slice(2);
const all = JSON.parse(fs.readFileSync(path.join(src, "emoji.json"), "utf8"));
const base = all.filter(e => e.has_img_twitter).sort((a, b) => a.sort_order - b.sort_order);
const j = v => Array.isArray(v) ? "[" + v.map(j).join(", ") + "]" : JSON.stringify(v);
const line = o => "{" + Object.entries(o).map(([k, v]) => j(k) + ": " + j(v)).join(", ") + "}";
fs.mkdirSync(path.join(dst, "img"), {recursive: true});
const out = [];
for (const e of base) {
  fs.copyFileSync(path.join(src, "img/twitter/64", e.image), path.join(dst, "img", e.image));
  out.push(line({file: "img/" + e.image, caption: e.name.toLowerCase(), short_names: e.short_names,
                 category: e.category, subcategory: e.subcategory, unified: e.unified, sort_order: e.sort_order}));
}
fs.writeFileSync(path.join(dst, "captions.jsonl"), out.join("\n") + "\n");
console.log(out.length + " base emoji of " + all.length + " entries");
EOF
    cp "$CACHE/package/LICENSE" "$DATA.tmp/LICENSE-emoji-data-MIT"
    echo "$ATTRIBUTION" >"$DATA.tmp/ATTRIBUTION"
    [ "$(wc -l <"$DATA.tmp/captions.jsonl")" -eq $NIMG ] || die "$DATA.tmp: expected $NIMG emoji"
    rm -rf "$DATA" "$CACHE/package"
    mkdir -p "$(dirname "$DATA")"
    mv "$DATA.tmp" "$DATA"
fi

# a fresh database means nothing downstream is done
[ -f "$DB" ] || rm -rf "$OUT"
mkdir -p "$OUT"

# ---- 2. index ----------------------------------------------------------------
step 2 "reference index: copyscope index add $DATA --db $DB"
"$BIN" index add "$DATA" --db "$DB" --attribution "$ATTRIBUTION"

# ---- 3. text -----------------------------------------------------------------
step 3 "text audit: Debian's licence texts (/usr/share/common-licenses), the n-gram model"
if [ -f "$OUT/text-audit.done" ]; then
    echo "already done ($OUT/text-completions.jsonl audited)"
else
    [ -d /usr/share/common-licenses ] || die "/usr/share/common-licenses: missing (Debian's base-files)"
    mkdir -p "$TEXT"
    for f in /usr/share/common-licenses/*; do
        [ -f "$f" ] && [ ! -L "$f" ] && cp "$f" "$TEXT/$(basename "$f").txt"
    done
    "$BIN" text index "$TEXT" --db "$DB"
    "$BIN" text prompts --prefix-words 50 --continuation-words 50 --per-doc 2 \
        --out "$OUT/text-prompts.jsonl" --db "$DB"
    "$BIN" text generate "$OUT/text-prompts.jsonl" --model ngram:8 --out "$OUT/text-completions.jsonl" --db "$DB"
    "$BIN" text audit "$OUT/text-completions.jsonl" --db "$DB"
    touch "$OUT/text-audit.done"
fi

# ---- 4. generate, analyze, report --------------------------------------------
step 4 "copyscope run suites/demo.json: the empirical model generates, analyze, report"
"$BIN" run suites/demo.json --db "$DB" --out "$OUT"

# ---- 5. the trained model -------------------------------------------------------
step 5 "copyscope run suites/demo-memo.json: the trained model (models/demo-memo) generates, analyze, report"
MEMO=models/demo-memo
(cd "$MEMO" && sha256sum -c --status SHA256SUMS) ||
    die "$MEMO: files differ from $MEMO/SHA256SUMS (git checkout $MEMO, or retrain with 'make demo-model')"
"$BIN" run suites/demo-memo.json --db "$DB" --out "$OUT"
lap
echo
times >"$TIMES"
echo "demo: done in $(($(date +%s) - T0)) s ($(cpu_of "$TIMES") s CPU); open the reports: $(pwd)/$OUT/demo-report.html"
echo "      and the trained model's: $(pwd)/$OUT/demo-memo-report.html"
