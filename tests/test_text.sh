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
# the word rows, the side text (empty: no document here is changed by NFC), the raw text and its array
[ -s "$DB.text-1.sa" ] && [ -f "$DB.text-1.nfc" ] && [ -s "$DB.text-1.raw" ] && [ -s "$DB.text-1.rsa" ] && [ ! -e "$DB.text-1.txt" ] && ok index_files_beside_db || bad index_files_beside_db

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

# any model's completions: {"id", "prompt", "completion"}, the continuation
# found after the prompt (whitespace-tolerant: the prompt has single spaces,
# the document a newline every 11 words); results in input order
awk 'NR == 1 { for (i = 1; i <= NF; i++) w[++n] = $i } NR > 1 { for (i = 1; i <= NF; i++) w[++n] = $i }
  END { p = w[3]; for (i = 4; i <= 22; i++) p = p " " w[i]; c = w[23]; for (i = 24; i <= 72; i++) c = c " " w[i];
        printf "{\"id\": \"a\", \"prompt\": \"%s\", \"completion\": \"%s\"}\n", p, c;
        printf "{\"prompt_id\": \"b\", \"prompt\": \"%s\", \"completion\": \"lorem ipsum dolor\"}\n", p;
        printf "{oops\n";
        printf "{\"id\": \"d\", \"completion\": \"%s\", \"continuation\": \"%s\"}\n", c, c }' "$T/docs/doc2.txt" > "$T/any.jsonl"
$B text audit "$T/any.jsonl" --db "$DB" --out "$T/res.jsonl" >"$T/any.out" 2>"$T/any.err"
[ $? -eq 0 ] && [ "$(wc -l < "$T/res.jsonl")" -eq 4 ] && ok audit_any_model || { bad audit_any_model; cat "$T/any.err"; }
sed -n 1p "$T/res.jsonl" | grep -q '"id":"a".*"verdict":"verbatim".*"continuation_source":"located-tolerant","continuation_words":50,"exact_prefix_words":50,"rouge_l":1' \
  && sed -n 1p "$T/res.jsonl" | grep -q "\"source_doc\":\"$T/docs/doc2.txt\"" && ok audit_any_model_figures \
  || { bad audit_any_model_figures; sed -n 1p "$T/res.jsonl" | cut -c1-600; }
sed -n 2p "$T/res.jsonl" | grep -q '"id":"b".*"verdict":"novel"' && sed -n 3p "$T/res.jsonl" | grep -q '"line":3,"error":"not a JSON object"' \
  && sed -n 4p "$T/res.jsonl" | grep -q '"id":"d".*"continuation_source":"given","continuation_words":50,"exact_prefix_words":50,"rouge_l":1,"edit_sim":1' \
  && ok audit_results_in_input_order || { bad audit_results_in_input_order; cat "$T/res.jsonl" | cut -c1-300; }

# the JSON report: a finding's doc is its longest span's document; spans name theirs
$B report --db "$DB" --format json --out "$T/rep.json" -q >"$T/rep.err" 2>&1
grep -q "\"name\":[[:space:]]*\"$T/docs/doc2.txt\"" "$T/rep.json" && grep -q "\"doc\":[[:space:]]*\"$T/docs/doc2.txt\"" "$T/rep.json" \
  && ok report_json_doc_names || bad report_json_doc_names

# trace any text (a file or stdin): the span, its document and offsets
awk '{ for (i = 1; i <= NF; i++) w[++n] = $i } END { s = "novel words first"; for (i = 31; i <= 45; i++) s = s " " w[i]; print s " and more" }' \
  "$T/docs/doc3.txt" > "$T/q.txt"
$B text trace - --db "$DB" < "$T/q.txt" > "$T/tr.out" 2>/dev/null
grep -q '^\[18, [0-9]*) 15 words' "$T/tr.out" && grep -q "^    $T/docs/doc3.txt \[" "$T/tr.out" && ok trace_stdin \
  || { bad trace_stdin; cat "$T/tr.out"; }
$B text trace "$T/q.txt" --db "$DB" --min-words 16 > "$T/tr2.out" 2>/dev/null && [ ! -s "$T/tr2.out" ] && ok trace_min_words || bad trace_min_words
$B text trace "$T/q.txt" --db "$DB" --record >/dev/null 2>"$T/tr3.err" && grep -q 'recorded as text audit' "$T/tr3.err" \
  && $B report --db "$DB" --format html --out "$T/rep.html" -q >/dev/null 2>&1 && grep -q "trace:$T/q.txt" "$T/rep.html" \
  && ok trace_recorded_in_report || bad trace_recorded_in_report

# corpus input: .jsonl.gz with another text field, names in --docs; binary input is an error
printf '{"id": "gz1", "body": "%s"}\n' "$(cut -d' ' -f1-80 "$T/late.txt")" | gzip > "$T/more.jsonl.gz"
$B text index "$T/more.jsonl.gz" --field body --db "$DB" >"$T/gz.out" 2>&1 && grep -q 'indexed 1 documents' "$T/gz.out" \
  && ok index_jsonl_gz || { bad index_jsonl_gz; cat "$T/gz.out"; }
$B text prompts --db "$DB" --prefix-words 5 --continuation-words 5 --docs gz1 --out "$T/p3.jsonl" 2>/dev/null
[ "$(wc -l < "$T/p3.jsonl")" -eq 1 ] && ok prompts_docs_by_name || bad prompts_docs_by_name
printf 'ELF\000\001\002binary' > "$T/blob.txt"
$B text index "$T/blob.txt" --db "$DB" >/dev/null 2>"$T/bin.err"; [ $? -eq 1 ] && grep -q "blob.txt: not UTF-8 text" "$T/bin.err" \
  && ok index_binary_is_error || bad index_binary_is_error
$B text audit --help | grep -q 'COMPLETIONS.jsonl \[--out RESULTS.jsonl\]' && $B text index --help | grep -q -- '--field NAME' \
  && $B text trace --help | grep -q 'FILE|-' && ok help_per_subcommand || bad help_per_subcommand

# usage errors exit 2, failures exit 1 naming the file
$B text prompts --db "$DB" --prefix-words 5 >/dev/null 2>&1; [ $? -eq 2 ] && ok usage_missing_option || bad usage_missing_option
$B text generate "$T/p.jsonl" --db "$DB" --model gpt9 >/dev/null 2>&1; [ $? -eq 2 ] && ok usage_bad_model || bad usage_bad_model
$B text frob >/dev/null 2>&1; [ $? -eq 2 ] && ok usage_bad_subcommand || bad usage_bad_subcommand
$B text audit "$T/missing.jsonl" --db "$DB" 2>"$T/m.err"; [ $? -eq 1 ] && grep -q 'missing.jsonl: cannot open' "$T/m.err" \
  && ok audit_missing_file || bad audit_missing_file
$B text prompts --db "$T/empty.db" --prefix-words 5 --continuation-words 5 2>"$T/e.err"; [ $? -eq 1 ] \
  && grep -q 'empty.db: no such store' "$T/e.err" && [ ! -e "$T/empty.db" ] && ok prompts_empty_corpus || bad prompts_empty_corpus
$B text index --help | grep -q 'usage: copyscope text' && ok help || bad help

# an empty corpus is an error (an empty folder, only empty files); indexing again what is there is not
mkdir -p "$T/nothing"; : > "$T/blank.txt"
$B text index "$T/nothing" --db "$T/e2.db" >/dev/null 2>"$T/e2.err"; [ $? -eq 1 ] \
  && grep -q "nothing: no document with text to index" "$T/e2.err" && ok index_empty_folder_is_error || { bad index_empty_folder_is_error; cat "$T/e2.err"; }
$B text index "$T/blank.txt" --db "$T/e3.db" >/dev/null 2>"$T/e3.err"; [ $? -eq 1 ] \
  && grep -q "blank.txt: no document with text to index (1 empty" "$T/e3.err" && ok index_only_empty_is_error || { bad index_only_empty_is_error; cat "$T/e3.err"; }
$B text index "$T/late.txt" --db "$DB" >"$T/again.out" 2>&1 && grep -q 'indexed 0 documents.* 1 already indexed' "$T/again.out" \
  && ok index_again_is_not_error || { bad index_again_is_not_error; cat "$T/again.out"; }
# a truncated .gz is an error naming the file (zlib would end it quietly), for text index, audit and trace
seq 1 3000 | sed 's/.*/{"id": "t&", "text": "line & of a long compressed file"}/' | gzip > "$T/full.jsonl.gz"
head -c 8000 "$T/full.jsonl.gz" > "$T/cut.jsonl.gz"
$B text index "$T/cut.jsonl.gz" --db "$T/cut.db" >/dev/null 2>"$T/cut.err"; [ $? -eq 1 ] \
  && grep -q "cut.jsonl.gz: cannot decompress: unexpected end of file" "$T/cut.err" && ok index_truncated_gz_is_error \
  || { bad index_truncated_gz_is_error; cat "$T/cut.err"; }

# completions: read through zlib like the corpus (.jsonl.gz); a binary or non-UTF-8 file is an error naming it
gzip -c "$T/any.jsonl" > "$T/any.jsonl.gz"
$B text audit "$T/any.jsonl" --db "$DB" --out "$T/resplain.jsonl" >/dev/null 2>&1
$B text audit "$T/any.jsonl.gz" --db "$DB" --out "$T/resgz.jsonl" >/dev/null 2>&1
[ $? -eq 0 ] && [ "$(wc -l < "$T/resgz.jsonl")" -eq 4 ] && cmp -s "$T/resplain.jsonl" "$T/resgz.jsonl" \
  && ok audit_jsonl_gz || { bad audit_jsonl_gz; head -c 300 "$T/resgz.jsonl"; }
head -c 3000 "$B" > "$T/blob.jsonl"
$B text audit "$T/blob.jsonl" --db "$DB" --out "$T/resb.jsonl" >/dev/null 2>"$T/ab.err"; [ $? -eq 1 ] \
  && grep -q "blob.jsonl:1: not UTF-8 text (a NUL byte" "$T/ab.err" && ok audit_binary_is_error || { bad audit_binary_is_error; cat "$T/ab.err"; }
printf '{"id": "x", "prompt": "p", "completion": "caf\351"}\n' > "$T/latin1.jsonl"
$B text audit "$T/latin1.jsonl" --db "$DB" >/dev/null 2>"$T/al.err"; [ $? -eq 1 ] \
  && grep -q "latin1.jsonl:1: not UTF-8 text (invalid UTF-8" "$T/al.err" && ok audit_latin1_is_error || { bad audit_latin1_is_error; cat "$T/al.err"; }
head -c 20 "$T/any.jsonl.gz" > "$T/anycut.jsonl.gz"
$B text audit "$T/anycut.jsonl.gz" --db "$DB" >/dev/null 2>"$T/ac.err"; [ $? -eq 1 ] \
  && grep -q "anycut.jsonl.gz: cannot decompress" "$T/ac.err" && ok audit_truncated_gz_is_error || { bad audit_truncated_gz_is_error; cat "$T/ac.err"; }
# a "doc" that is not in the corpus is said, not silently ignored
sed -n 1p "$T/any.jsonl" | sed 's/"id": "a"/"id": "a", "doc": "no-such-doc"/' > "$T/nodoc.jsonl"
$B text audit "$T/nodoc.jsonl" --db "$DB" --out "$T/nodoc.res" >/dev/null 2>"$T/nodoc.err"
[ $? -eq 0 ] && grep -q 'nodoc.jsonl:1: doc "no-such-doc" is not in the corpus' "$T/nodoc.err" \
  && grep -q '"continuation_source":"located-tolerant"' "$T/nodoc.res" && ok audit_unknown_doc_said || { bad audit_unknown_doc_said; cat "$T/nodoc.err"; }
# a text file's leading byte-order mark is not text: the first word matches without it
printf '\357\273\277first words of a document saved with a byte order mark by some editor\n' > "$T/bom.txt"
$B text index "$T/bom.txt" --db "$T/bom.db" >/dev/null 2>&1
echo "first words of a document saved with a byte order mark" | $B text trace - --db "$T/bom.db" --json 2>/dev/null > "$T/bom.out"
grep -q '"start":0,"end":54,"words":11.*"doc_start":0,"doc_end":54' "$T/bom.out" && ok index_txt_bom_stripped || { bad index_txt_bom_stripped; cat "$T/bom.out"; }
# trace reads a .gz, or standard input, the same way
gzip -c "$T/q.txt" > "$T/q.txt.gz"
$B text trace "$T/q.txt.gz" --db "$DB" > "$T/trgz.out" 2>/dev/null && cmp -s "$T/tr.out" "$T/trgz.out" \
  && $B text trace - --db "$DB" < "$T/q.txt.gz" > "$T/trgz2.out" 2>/dev/null && cmp -s "$T/tr.out" "$T/trgz2.out" \
  && ok trace_gz || { bad trace_gz; cat "$T/trgz.out"; }

[ -n "$KEEP" ] || rm -rf "$T"
echo "test_text.sh: $p passed, $f failed"
