#!/bin/sh
# The text audit loop through the CLI: index, prompts, generate (the built-in
# n-gram memoriser), audit; plus usage errors and reported bad input.
B=${CS_BIN:-build/copyscope}
T=$(mktemp -d "${CS_TMP:-/tmp}/cs-text-sh-XXXXXX")
DB=$T/t.db
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; }

# four documents of 300 pseudo-random words (awk's seeded generator)
mkdir -p "$T/docs"
for i in 1 2 3 4; do
  awk -v s=$i 'BEGIN { srand(s); for (w = 0; w < 300; w++) { n = 3 + int(rand() * 6); x = "";
    for (k = 0; k < n; k++) x = x substr("abcdefghijklmnopqrstuvwxyz", 1 + int(rand() * 26), 1);
    printf "%s%s", x, (w % 11 == 10) ? "\n" : " " } print "" }' > "$T/docs/doc$i.txt"
done
printf '{"id": "j1", "text": "a short json document"}\n{oops\n' > "$T/docs/more.jsonl"

$B text index "$T/docs" --db "$DB" >"$T/idx.out" 2>"$T/idx.err"
[ $? -eq 0 ] && grep -q 'indexed 5 documents' "$T/idx.out" && ok index || bad index
grep -q 'more.jsonl:2: not a JSON object' "$T/idx.err" && ok index_reports_broken_line || bad index_reports_broken_line
[ -s "$DB.text-1.sa" ] && [ -s "$DB.text-1.txt" ] && ok index_files_beside_db || bad index_files_beside_db

$B text prompts --db "$DB" --prefix-words 20 --continuation-words 50 --per-doc 2 --out "$T/p.jsonl" 2>"$T/p.err"
[ $? -eq 0 ] && [ "$(wc -l < "$T/p.jsonl")" -eq 8 ] && ok prompts || bad prompts
grep -q 'fewer than 70' "$T/p.err" && ok prompts_skip_short_doc || bad prompts_skip_short_doc
grep -q '"prompt_id":"d[0-9]*.w0.p20.c50"' "$T/p.jsonl" && ok prompt_ids || bad prompt_ids

$B text prompts --db "$DB" --prefix-words 10 --continuation-words 10 --per-doc 3 --docs 2,999 --out "$T/p2.jsonl" 2>"$T/p2.err"
[ "$(wc -l < "$T/p2.jsonl")" -eq 3 ] && [ "$(grep -c '"prompt_id":"d2\.' "$T/p2.jsonl")" -eq 3 ] \
  && grep -q 'document 999: not in the index' "$T/p2.err" && ok prompts_docs_list || bad prompts_docs_list

$B text generate "$T/p.jsonl" --db "$DB" --model ngram:8 --out "$T/c.jsonl" 2>/dev/null
[ $? -eq 0 ] && [ "$(grep -c '"completion"' "$T/c.jsonl")" -eq 8 ] && ok generate || bad generate

$B text audit "$T/c.jsonl" --db "$DB" >"$T/a.out" 2>&1
[ $? -eq 0 ] && grep -q '8 completions: 8 verbatim, 0 near-verbatim, 0 novel' "$T/a.out" && ok audit_memoriser_verbatim \
  || { bad audit_memoriser_verbatim; cat "$T/a.out"; }

# a "model" that answers with unrelated words: novel
sed 's/"prompt":"[^"]*"/"completion":"lorem ipsum dolor sit amet consectetur"/' "$T/p.jsonl" > "$T/novel.jsonl"
$B text audit "$T/novel.jsonl" --db "$DB" -v >"$T/n.out" 2>&1
grep -q '8 completions: 0 verbatim, 0 near-verbatim, 8 novel' "$T/n.out" && ok audit_novel || bad audit_novel
grep -q '^line 1 d[0-9]*.w0.p20.c50: novel (ok)' "$T/n.out" && ok audit_verbose || bad audit_verbose

# adding documents later adds a shard; the new text is found
awk 'BEGIN { srand(99); for (w = 0; w < 200; w++) { x = "";
  for (k = 0; k < 6; k++) x = x substr("abcdefghijklmnopqrstuvwxyz", 1 + int(rand() * 26), 1);
  printf "%s ", x } print "" }' > "$T/late.txt"
$B text index "$T/late.txt" --db "$DB" >"$T/idx2.out" 2>&1 && grep -q 'into 1 new shard' "$T/idx2.out" && [ -s "$DB.text-2.sa" ] \
  && ok index_adds_shard || bad index_adds_shard
printf '{"prompt":"none","completion":"%s"}\n' "$(cut -d' ' -f10-70 "$T/late.txt")" > "$T/late.jsonl"
$B text audit "$T/late.jsonl" --db "$DB" -v >"$T/l.out" 2>&1
grep -q 'verbatim (unknown_prompt); longest span 61 words' "$T/l.out" && ok audit_finds_new_shard || { bad audit_finds_new_shard; cat "$T/l.out"; }

# usage errors exit 2, failures exit 1 naming the file
$B text prompts --db "$DB" --prefix-words 5 >/dev/null 2>&1; [ $? -eq 2 ] && ok usage_missing_option || bad usage_missing_option
$B text generate "$T/p.jsonl" --db "$DB" --model gpt9 >/dev/null 2>&1; [ $? -eq 2 ] && ok usage_bad_model || bad usage_bad_model
$B text frob >/dev/null 2>&1; [ $? -eq 2 ] && ok usage_bad_subcommand || bad usage_bad_subcommand
$B text audit "$T/missing.jsonl" --db "$DB" 2>"$T/m.err"; [ $? -eq 1 ] && grep -q 'missing.jsonl: cannot open' "$T/m.err" \
  && ok audit_missing_file || bad audit_missing_file
$B text prompts --db "$T/empty.db" --prefix-words 5 --continuation-words 5 2>"$T/e.err"; [ $? -eq 1 ] \
  && grep -q 'no text indexed' "$T/e.err" && ok prompts_empty_corpus || bad prompts_empty_corpus
$B text index --help | grep -q 'usage: copyscope text' && ok help || bad help

rm -rf "$T"
echo "test_text.sh: $p passed, $f failed"
