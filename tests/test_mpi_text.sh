#!/bin/sh
# `text index` and `text audit` under mpirun (cli/cmd_mpi_text*.c) give one
# process's answers. The corpus: 12 documents of pseudo-random words in
# folders (one nested, one .gz, one empty), and a JSONL file of 6 members
# with a broken line. text index with 1, 2 and 3 ranks (each rank indexes a
# run of the files into its own part, rank 0 moves them into the store)
# must leave the documents' rows of one process, ids and order included,
# and a store a single process opens as one corpus: the same prompts cut
# from it and the same audit. text audit with 2 and 3 ranks (every rank
# scores a share of each round of lines against the whole corpus) must
# write the results file and the audit's rows of one process, byte for
# byte. A rank killed (kill -9) during text index leaves the shards it
# committed; the rerun indexes only the rest and ends with one process's
# rows. One big JSONL file is split across ranks by bytes at line starts:
# lines of very different lengths, CRLF, an empty line exactly at a cut, a
# line longer than a rank's share; the documents, their raw text and audit
# are one process's at 1, 2 and 3 ranks; a .gz JSONL goes whole to one rank.
# Without build/copyscope-mpi or mpirun it prints 'skip'.
B=${CS_BIN:-build/copyscope}
M=$(dirname "$B")/copyscope-mpi
T=${CS_TMP:-/tmp}/mpi-text-sh.$$
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; }
if [ ! -x "$M" ] || ! command -v mpirun > /dev/null 2>&1 || ! command -v sqlite3 > /dev/null 2>&1; then
  echo "skip: $M, mpirun or sqlite3 missing (make mpi; apt-get install libopenmpi-dev openmpi-bin sqlite3)"
  echo "test_mpi_text.sh: 0 passed, 0 failed"; exit 0
fi
MPIRUN="mpirun --oversubscribe --allow-run-as-root"
mkdir -p "$T/c/a" "$T/c/b/deep" || exit 1

# documents of different sizes (awk's seeded generator), a newline every 11 words
words() { # SEED N
  awk -v s=$1 -v n=$2 'BEGIN { srand(s); for (w = 0; w < n; w++) { k = 3 + int(rand() * 6); x = "";
    for (j = 0; j < k; j++) x = x substr("abcdefghijklmnopqrstuvwxyz", 1 + int(rand() * 26), 1);
    printf "%s%s", x, (w % 11 == 10) ? "\n" : " " } print "" }'
}
for i in 1 2 3 4 5; do words $i $((150 + 90 * i)) > "$T/c/a/doc$i.txt"; done
for i in 6 7 8; do words $i $((600 - 40 * i)) > "$T/c/b/doc$i.md"; done
words 9 400 > "$T/c/b/deep/doc9.txt"
words 10 350 | gzip -n > "$T/c/b/deep/doc10.txt.gz"
printf '  \n' > "$T/c/b/empty.txt"
{ for i in 11 12 13 14 15 16; do printf '{"id": "m%d", "text": "%s"}\n' $i "$(words $i 120 | tr '\n' ' ')"; done
  echo '{oops'; } > "$T/c/members.jsonl"
words 17 500 > "$T/c/z.txt"

docs="SELECT id, source, name, status, note, norm_bytes, orig_bytes, words, hex(offmap) FROM text_docs ORDER BY id"
# the one-process corpus, prompts and completions (the n-gram memoriser, and
# edited and unrelated answers, a blank line and a broken one)
$B text index "$T/c" --db "$T/one.db" > /dev/null 2>&1 && ok one_index || bad one_index
sqlite3 "$T/one.db" "$docs" > "$T/one.docs"
[ "$(wc -l < "$T/one.docs")" -eq 19 ] && ok one_has_19_docs || bad "one_has_19_docs: $(wc -l < "$T/one.docs")"
$B text prompts --db "$T/one.db" --prefix-words 12 --continuation-words 40 --per-doc 2 --out "$T/one.p" 2>/dev/null || bad one_prompts
$B text generate "$T/one.p" --db "$T/one.db" --model ngram:6 --out "$T/gen.jsonl" 2>/dev/null || bad one_generate
{ head -n 6 "$T/gen.jsonl"; echo; echo '{"id": "broken"'
  sed -n '7,14p' "$T/gen.jsonl" | sed 's/"completion":"\([a-z]*\) \([a-z]*\) /"completion":"\2 \1 zzz /'
  sed -n '15,$p' "$T/gen.jsonl" | sed 's/"completion":"[^"]*"/"completion":"lorem ipsum dolor sit amet"/'
  printf '{"id": "given", "prompt": "x", "completion": "%s", "continuation": "%s"}\n' \
    "$(sed -n 3p "$T/c/a/doc2.txt")" "$(sed -n 3p "$T/c/a/doc2.txt")"; } > "$T/comp.jsonl"
$B text audit "$T/comp.jsonl" --db "$T/one.db" --out "$T/one.r" > /dev/null 2>&1 && ok one_audit || bad one_audit
grep -q '"verdict":"verbatim"' "$T/one.r" && grep -q '"verdict":"novel"' "$T/one.r" && grep -q '"error"' "$T/one.r" &&
  ok one_audit_has_every_kind || bad one_audit_has_every_kind
rows="SELECT c.line, c.prompt_key, c.prompt_id, c.completion, f.status, f.verdict, f.longest_chars, f.longest_words,
      f.longest_doc_id, f.longest_doc_start, f.longest_doc_end, f.n_spans, f.exact_prefix_words, f.rouge_l_f1,
      f.edit_sim, f.evidence_json FROM text_findings f JOIN text_completions c ON c.id = f.completion_id ORDER BY f.id;
      SELECT s.rank, s.comp_start, s.comp_end, s.chars, s.words, s.doc_id, s.doc_start, s.doc_end, s.text
      FROM text_spans s ORDER BY s.finding_id, s.rank; SELECT source, settings_json FROM text_audits ORDER BY id"
sqlite3 "$T/one.db" "$rows" > "$T/one.rows"

# text index with 1, 2, 3 ranks: one process's documents; the store opens as
# one corpus (the same prompts and audit as one process's store)
for n in 1 2 3; do
  $MPIRUN -np $n "$M" text index "$T/c" --db "$T/m$n.db" > "$T/m$n.out" 2>&1 || { bad "mpi${n}_index"; cat "$T/m$n.out"; }
  sqlite3 "$T/m$n.db" "$docs" > "$T/m$n.docs"
  cmp -s "$T/one.docs" "$T/m$n.docs" && ok "index_np${n}_same_docs_as_one_process" ||
    { bad "index_np${n}_same_docs_as_one_process"; diff "$T/one.docs" "$T/m$n.docs" | cut -c1-150 | head -n 6; }
  [ "$(sqlite3 "$T/m$n.db" 'SELECT count(*) FROM text_shards')" -eq $n ] && ok "index_np${n}_${n}_shards" ||
    bad "index_np${n}_${n}_shards: $(sqlite3 "$T/m$n.db" 'SELECT count(*) FROM text_shards')"
  [ ! -e "$T/m$n.db.textparts" ] && ok "index_np${n}_parts_removed" || bad "index_np${n}_parts_removed"
  $B text prompts --db "$T/m$n.db" --prefix-words 12 --continuation-words 40 --per-doc 2 --out "$T/m$n.p" 2>/dev/null
  $B text audit "$T/comp.jsonl" --db "$T/m$n.db" --out "$T/m$n.r" > /dev/null 2>&1
  sqlite3 "$T/m$n.db" "$rows" > "$T/m$n.rows"
  cmp -s "$T/one.p" "$T/m$n.p" && cmp -s "$T/one.r" "$T/m$n.r" && cmp -s "$T/one.rows" "$T/m$n.rows" &&
    ok "index_np${n}_same_prompts_and_audit" ||
    { bad "index_np${n}_same_prompts_and_audit"; diff "$T/one.r" "$T/m$n.r" | cut -c1-150 | head -n 4; }
done
grep -q "indexed 17 documents" "$T/m3.out" && grep -q "into 3 new shards" "$T/m3.out" && ok index_np3_summary ||
  bad "index_np3_summary: $(cat "$T/m3.out")"
# a rerun adds nothing
$MPIRUN -np 3 "$M" text index "$T/c" --db "$T/m3.db" > "$T/m3b.out" 2>&1
sqlite3 "$T/m3.db" "$docs" > "$T/m3b.docs"
grep -q "indexed 0 documents" "$T/m3b.out" && cmp -s "$T/one.docs" "$T/m3b.docs" && ok index_rerun_adds_nothing ||
  bad "index_rerun_adds_nothing: $(cat "$T/m3b.out")"

nc=$(grep -c . "$T/comp.jsonl") # non-blank lines: every one scored (the broken one too)
# text audit with 2 and 3 ranks on the one-process store: its results file
# and rows, byte for byte; every rank scored a share
for n in 2 3; do
  cp "$T/one.db" "$T/a$n.db"; for x in "$T"/one.db.text-*; do cp "$x" "$T/a$n.db.${x##*/one.db.}"; done
  sqlite3 "$T/a$n.db" "DELETE FROM text_spans; DELETE FROM text_findings; DELETE FROM text_completions; DELETE FROM text_audits"
  $MPIRUN -np $n "$M" text audit "$T/comp.jsonl" --db "$T/a$n.db" --out "$T/a$n.r" > "$T/a$n.out" 2>&1 ||
    { bad "audit_np$n"; cat "$T/a$n.out"; }
  sqlite3 "$T/a$n.db" "$rows" > "$T/a$n.rows"
  cmp -s "$T/one.r" "$T/a$n.r" && ok "audit_np${n}_same_results_file" ||
    { bad "audit_np${n}_same_results_file"; diff "$T/one.r" "$T/a$n.r" | cut -c1-150 | head -n 4; }
  cmp -s "$T/one.rows" "$T/a$n.rows" && ok "audit_np${n}_same_rows" ||
    { bad "audit_np${n}_same_rows"; diff "$T/one.rows" "$T/a$n.rows" | cut -c1-150 | head -n 4; }
done
sed -n 's/.*scored per rank:\(.*\)/\1/p' "$T/a3.out" | awk -v n="$nc" 'END { exit !(NF == 3 && $1 > 0 && $2 > 0 && $3 > 0 && $1 + $2 + $3 == n) }' &&
  ok audit_np3_every_rank_scores || bad "audit_np3_every_rank_scores: $(cat "$T/a3.out")"
grep -q "$((nc - 1)) completions" "$T/a3.out" && grep -q "1 bad lines" "$T/a3.out" && ok audit_np3_summary ||
  bad "audit_np3_summary: $(cat "$T/a3.out")"
# the results on standard output, as one process writes them
$MPIRUN -np 3 "$M" text audit "$T/comp.jsonl" --db "$T/a3.db" --out - > "$T/a3s.r" 2>/dev/null
cmp -s "$T/one.r" "$T/a3s.r" && ok audit_np3_stdout || bad audit_np3_stdout
# a missing store: one error, every rank stops
$MPIRUN -np 2 "$M" text audit "$T/comp.jsonl" --db "$T/none.db" --out "$T/x.r" > /dev/null 2> "$T/err"; rc=$?
[ $rc -ne 0 ] && [ ! -e "$T/none.db" ] && ok audit_missing_store_fails || bad "audit_missing_store_fails (rc=$rc)"

# One big JSONL file is cut across ranks by bytes at line starts (rank K
# takes the lines that start in its share of the file). cut.jsonl: lines of
# 3 to 3,000 words, CRLF endings on every fifth, blank lines (one of them
# "\r\n"), a broken line, the last line without its newline, and an empty
# line starting exactly at cut 1 of 2 (the file, of size S, weighs S + 4096:
# the cut falls at byte (S + 4096) / 2, so the bytes before the empty line
# are the bytes after it + 4097). long.jsonl: one line of 80 % of the file,
# across both cuts of 3 ranks, so rank 2 of 3 gets no line of it. At 1, 2, 3
# ranks: one process's documents (ids, sources "path:LINE", names, order),
# its raw text byte for byte (the shards' raw files end to end; at 1 rank
# every index file), and its audit of completions copied from both files.
jline() { # ID NWORDS SEED [END]
  printf '{"id": "%s", "text": "%s"}%b' "$1" "$(words $3 $2 | tr '\n' ' ')" "${4:-\n}"
}
mkdir -p "$T/j"
{ i=0; for nw in 3 40 700 5 3000 12 250 3 1200 60; do
    i=$((i + 1)); [ $((i % 5)) -eq 0 ] && e='\r\n' || e='\n'; jline "p$i" $nw $((100 + i)) "$e"
    [ $i -eq 4 ] && printf '\n'; [ $i -eq 7 ] && printf '\r\n'; [ $i -eq 8 ] && echo '{"id": "bad", "text": 7}'
  done; } > "$T/j/p.part"
{ i=0; for nw in 900 7 2500 30 4 1500 80; do
    i=$((i + 1)); [ $((i % 5)) -eq 0 ] && e='\r\n' || e='\n'; jline "q$i" $nw $((200 + i)) "$e"
  done; jline qlast 50 299 ''; } > "$T/j/q.part"
pq=$(wc -c < "$T/j/p.part"); qq=$(wc -c < "$T/j/q.part")
fl=$((qq + 4097 - pq)) # the filler line's length, newline included
fw=$(( fl / 3 + 10 ))
{ cat "$T/j/p.part"; printf '{"id": "fill", "text": "'; words 300 $fw | tr '\n' ' ' | head -c $((fl - 27));
  printf '"}\n\n'; cat "$T/j/q.part"; } > "$T/j/cut.jsonl"
S=$(wc -c < "$T/j/cut.jsonl"); c1=$(( (S + 4096) / 2 ))
[ "$(head -c $((c1 + 1)) "$T/j/cut.jsonl" | tail -c 2 | od -An -c | tr -d ' ')" = '\n\n' ] &&
  ok "cut_jsonl_empty_line_at_cut ($S bytes, cut at $c1)" || bad "cut_jsonl_empty_line_at_cut ($S bytes, cut at $c1)"
{ jline a1 200 401; jline a2 5 402 '\r\n'; jline a3 300 403; jline huge 20000 404 '\r\n'; jline z1 150 405
  jline z2 180 406; jline z3 3 407; } > "$T/j/long.jsonl"
for jf in cut long; do
  $B text index "$T/j/$jf.jsonl" --db "$T/j/${jf}1p.db" > /dev/null 2>&1 || bad "${jf}_one_index"
  sqlite3 "$T/j/${jf}1p.db" "$docs" > "$T/j/${jf}1p.docs"
  sqlite3 "$T/j/${jf}1p.db" "SELECT text_file FROM text_shards ORDER BY id" | sed "s|^|$T/j/${jf}1p.db.|; s|nfc\$|raw|" | xargs cat > "$T/j/${jf}1p.raw"
done
[ "$(wc -l < "$T/j/cut1p.docs")" -eq 20 ] && grep -q 'cut.jsonl:16|q1|ok' "$T/j/cut1p.docs" &&
  grep -q 'cut.jsonl:11|.*|error|' "$T/j/cut1p.docs" && grep -q 'cut.jsonl:23|qlast|ok' "$T/j/cut1p.docs" &&
  ok cut_jsonl_one_process_docs || bad "cut_jsonl_one_process_docs: $(cut -c1-60 "$T/j/cut1p.docs" | tr '\n' ' ')"
{ for l in 3 16 22; do
    printf '{"id": "c%d", "prompt": "x", "completion": "%s"}\n' $l "$(sed -n ${l}p "$T/j/cut.jsonl" | cut -c 30-400 | sed 's/^[a-z]* //; s/ [a-z]*$//')"
  done
  printf '{"id": "h", "prompt": "x", "completion": "%s"}\n' "$(sed -n 4p "$T/j/long.jsonl" | cut -c 5000-5400 | sed 's/^[a-z]* //; s/ [a-z]*$//')"
  printf '{"id": "t", "prompt": "x", "completion": "%s"}\n' "$(sed -n 6p "$T/j/long.jsonl" | cut -c 30-420 | sed 's/^[a-z]* //; s/ [a-z]*$//')"; } > "$T/j/comp.jsonl"
for jf in cut long; do
  $B text audit "$T/j/comp.jsonl" --db "$T/j/${jf}1p.db" --out "$T/j/${jf}1p.r" > /dev/null 2>&1 || bad "${jf}_one_audit"
done
grep -c '"verdict":"verbatim"' "$T/j/cut1p.r" | grep -q '^3$' && grep -c '"verdict":"verbatim"' "$T/j/long1p.r" | grep -q '^2$' &&
  ok jsonl_one_process_audit_finds_copies || bad "jsonl_one_process_audit_finds_copies: $(cut -c1-200 "$T/j/cut1p.r")"
for jf in cut long; do for n in 1 2 3; do
  d="$T/j/$jf$n.db"
  $MPIRUN -np $n "$M" text index "$T/j/$jf.jsonl" --db "$d" > "$T/j/$jf$n.out" 2>&1 || { bad "${jf}_np${n}_index"; cat "$T/j/$jf$n.out"; }
  sqlite3 "$d" "$docs" > "$T/j/$jf$n.docs"
  sqlite3 "$d" "SELECT text_file FROM text_shards ORDER BY id" | sed "s|^|$d.|; s|nfc\$|raw|" | xargs cat > "$T/j/$jf$n.raw"
  $B text audit "$T/j/comp.jsonl" --db "$d" --out "$T/j/$jf$n.r" > /dev/null 2>&1
  ns=$(sqlite3 "$d" 'SELECT count(*) FROM text_shards')
  cmp -s "$T/j/${jf}1p.docs" "$T/j/$jf$n.docs" && cmp -s "$T/j/${jf}1p.raw" "$T/j/$jf$n.raw" &&
    cmp -s "$T/j/${jf}1p.r" "$T/j/$jf$n.r" && ok "${jf}_jsonl_np${n}_same_docs_text_audit ($ns shards)" ||
    { bad "${jf}_jsonl_np${n}_same_docs_text_audit"; diff "$T/j/${jf}1p.docs" "$T/j/$jf$n.docs" | cut -c1-100 | head -n 6; }
  # the split really happened: a shard per rank that got lines (long.jsonl at
  # 3 ranks: 2, its middle rank's share lies inside the long line)
  want=$n; [ $jf = long ] && [ $n -eq 3 ] && want=2
  [ "$ns" -eq $want ] && ok "${jf}_jsonl_np${n}_${want}_shards" || bad "${jf}_jsonl_np${n}_${want}_shards: $ns"
done; done
ok1=1; for e in nfc sa raw rsa; do cmp -s "$T/j/cut1p.db.text-1.$e" "$T/j/cut1.db.text-1.$e" || ok1=0; done
[ $ok1 -eq 1 ] && ok cut_jsonl_np1_same_index_files || bad cut_jsonl_np1_same_index_files
# a rerun of the split file adds nothing
$MPIRUN -np 3 "$M" text index "$T/j/cut.jsonl" --db "$T/j/cut3.db" > "$T/j/cut3b.out" 2>&1
sqlite3 "$T/j/cut3.db" "$docs" > "$T/j/cut3b.docs"
grep -q "indexed 0 documents.* 20 already indexed" "$T/j/cut3b.out" && cmp -s "$T/j/cut1p.docs" "$T/j/cut3b.docs" &&
  ok cut_jsonl_rerun_adds_nothing || bad "cut_jsonl_rerun_adds_nothing: $(cat "$T/j/cut3b.out")"
# a .gz JSONL cannot be entered mid-way: it goes whole to one rank
gzip -nc "$T/j/cut.jsonl" > "$T/j/cutgz.jsonl.gz"
$B text index "$T/j/cutgz.jsonl.gz" --db "$T/j/gz1p.db" > /dev/null 2>&1
$MPIRUN -np 2 "$M" text index "$T/j/cutgz.jsonl.gz" --db "$T/j/gz2.db" > /dev/null 2>&1
[ "$(sqlite3 "$T/j/gz2.db" 'SELECT count(*) FROM text_shards')" -eq 1 ] &&
  [ "$(sqlite3 "$T/j/gz2.db" "$docs" | md5sum)" = "$(sqlite3 "$T/j/gz1p.db" "$docs" | md5sum)" ] &&
  ok gz_jsonl_whole_to_one_rank || bad gz_jsonl_whole_to_one_rank

# kill -9 one rank of 2 during text index: 16 files of 700 KB, --shard-mb 1
# and -j 1, so each rank commits one shard per file; the kill comes once part
# 2 holds 2 shards. The parts keep their committed shards (nothing moved into
# the store yet); the rerun skips exactly those documents and ends with one
# process's documents and audit.
mkdir -p "$T/k"
for i in $(seq 10 25); do words $i 110000 > "$T/k/f$i.txt"; done
$B text index "$T/k" --db "$T/kone.db" --shard-mb 1 -j 1 > /dev/null 2>&1 || bad kone_index
$MPIRUN -np 2 "$M" text index "$T/k" --db "$T/k.db" --shard-mb 1 -j 1 > "$T/k1.out" 2>&1 &
mp=$!
killed=0; i=0
while [ $i -lt 1200 ] && [ $killed -eq 0 ]; do
  n2=$(sqlite3 "$T/k.db.textparts/2-of-2.db" "SELECT count(*) FROM text_shards" 2>/dev/null)
  if [ "${n2:-0}" -ge 2 ]; then
    # a rank, not mpirun (whose arguments name the binary too): killing
    # mpirun can leave its ranks running to the end
    pid=$(ps -eo pid=,args= | awk -v m="$M" -v d="$T/k.db" '$2 == m && $3 == "text" && $7 == d {print $1; exit}')
    [ -n "$pid" ] && kill -9 "$pid" && killed=1
  fi
  sleep 0.05; i=$((i + 1))
done
wait $mp; rc=$?
i=0 # mpirun may return before the other rank has exited
while [ $i -lt 100 ] && ps -eo args= | grep -q "[c]opyscope-mpi text index $T/k --db $T/k.db"; do sleep 0.1; i=$((i + 1)); done
[ $killed -eq 1 ] && [ $rc -ne 0 ] && ok "text_index_kill9_one_rank (mpirun rc=$rc)" || bad "text_index_kill9_one_rank (killed=$killed rc=$rc)"
d1=$(sqlite3 "$T/k.db.textparts/1-of-2.db" "SELECT count(*) FROM text_docs" 2>/dev/null)
d2=$(sqlite3 "$T/k.db.textparts/2-of-2.db" "SELECT count(*) FROM text_docs" 2>/dev/null)
[ "${d2:-0}" -ge 2 ] && [ "$(sqlite3 "$T/k.db" 'SELECT count(*) FROM text_docs')" -eq 0 ] && [ $((d1 + d2)) -lt 16 ] &&
  ok "killed_parts_keep_committed_shards ($d1 + $d2 of 16)" || bad "killed_parts_keep_committed_shards: $d1 + $d2"
$MPIRUN -np 2 "$M" text index "$T/k" --db "$T/k.db" --shard-mb 1 -j 1 > "$T/k2.out" 2>&1 && ok text_index_kill_rerun ||
  { bad text_index_kill_rerun; cat "$T/k2.out"; }
grep -q "indexed $((16 - d1 - d2)) documents .* $((d1 + d2)) already indexed" "$T/k2.out" &&
  ok "text_index_rerun_only_missing ($((d1 + d2)) kept)" || bad "text_index_rerun_only_missing: $d1 + $d2: $(cat "$T/k2.out")"
sqlite3 "$T/kone.db" "$docs" > "$T/kone.docs"
sqlite3 "$T/k.db" "$docs" > "$T/k.docs"
printf '{"id": "q", "prompt": "x", "completion": "%s"}\n' "$(sed -n 5p "$T/k/f18.txt")" > "$T/kq.jsonl"
$B text audit "$T/kq.jsonl" --db "$T/kone.db" --out "$T/kone.r" > /dev/null 2>&1
$B text audit "$T/kq.jsonl" --db "$T/k.db" --out "$T/k.r" > /dev/null 2>&1
cmp -s "$T/kone.docs" "$T/k.docs" && cmp -s "$T/kone.r" "$T/k.r" && grep -q '"longest_span_words":11' "$T/k.r" &&
  ok killed_and_rerun_same_as_one_process || bad killed_and_rerun_same_as_one_process

# The same kill on one JSONL file split by bytes: the 16 texts as its lines
# (a shard per line at --shard-mb 1); the rerun re-reads each rank's share,
# skips the lines its part committed and ends with one process's documents.
mkdir -p "$T/kj"
for i in $(seq 10 25); do printf '{"id": "f%d", "text": "' $i; tr '\n' ' ' < "$T/k/f$i.txt"; printf '"}\n'; done > "$T/kj/k.jsonl"
$B text index "$T/kj/k.jsonl" --db "$T/kjone.db" --shard-mb 1 -j 1 > /dev/null 2>&1 || bad kjone_index
$MPIRUN -np 2 "$M" text index "$T/kj/k.jsonl" --db "$T/kj.db" --shard-mb 1 -j 1 > "$T/kj1.out" 2>&1 &
mp=$!
killed=0; i=0
while [ $i -lt 1200 ] && [ $killed -eq 0 ]; do
  n2=$(sqlite3 "$T/kj.db.textparts/2-of-2.db" "SELECT count(*) FROM text_shards" 2>/dev/null)
  if [ "${n2:-0}" -ge 2 ]; then
    pid=$(ps -eo pid=,args= | awk -v m="$M" -v d="$T/kj.db" '$2 == m && $3 == "text" && $7 == d {print $1; exit}')
    [ -n "$pid" ] && kill -9 "$pid" && killed=1
  fi
  sleep 0.05; i=$((i + 1))
done
wait $mp; rc=$?
i=0
while [ $i -lt 100 ] && ps -eo args= | grep -q "[c]opyscope-mpi text index $T/kj/k.jsonl"; do sleep 0.1; i=$((i + 1)); done
d1=$(sqlite3 "$T/kj.db.textparts/1-of-2.db" "SELECT count(*) FROM text_docs" 2>/dev/null)
d2=$(sqlite3 "$T/kj.db.textparts/2-of-2.db" "SELECT count(*) FROM text_docs" 2>/dev/null)
[ $killed -eq 1 ] && [ $rc -ne 0 ] && [ "${d2:-0}" -ge 2 ] && [ $((d1 + d2)) -lt 16 ] &&
  ok "jsonl_kill9_one_rank ($d1 + $d2 of 16 lines kept)" || bad "jsonl_kill9_one_rank (killed=$killed rc=$rc $d1 + $d2)"
$MPIRUN -np 2 "$M" text index "$T/kj/k.jsonl" --db "$T/kj.db" --shard-mb 1 -j 1 > "$T/kj2.out" 2>&1 || cat "$T/kj2.out"
sqlite3 "$T/kjone.db" "$docs" > "$T/kjone.docs"
sqlite3 "$T/kj.db" "$docs" > "$T/kj.docs"
grep -q "indexed $((16 - d1 - d2)) documents .* $((d1 + d2)) already indexed" "$T/kj2.out" &&
  cmp -s "$T/kjone.docs" "$T/kj.docs" && [ "$(wc -l < "$T/kj.docs")" -eq 16 ] &&
  ok jsonl_killed_rerun_only_missing_same_docs || bad "jsonl_killed_rerun_only_missing_same_docs: $(cat "$T/kj2.out")"

[ -n "$CS_KEEP" ] || rm -rf "$T"
echo "test_mpi_text.sh: $p passed, $f failed"
[ $f -eq 0 ]
