#!/bin/sh
# CLI basics: --version, --help on every command, unknown commands.
B=${CS_BIN:-build/copyscope}
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; }
$B --version | grep -q '^copyscope [0-9]' && ok version || bad version
$B --help | grep -q 'usage: copyscope' && ok help || bad help
for c in index hash generate analyze report text run selftest; do
  $B $c --help >/dev/null 2>&1 && ok "help_$c" || bad "help_$c"
done
$B frobnicate >/dev/null 2>&1; [ $? -eq 2 ] && ok unknown_command || bad unknown_command

# --- issue 19, item 10: one behaviour for help, usage errors and defaults
# every subcommand's --help is its own (not the generic text)
for c in "index add" "index stats" "index ls" "index query" "index ann" "index background" \
         "text index" "text prompts" "text generate" "text audit" "text trace"; do
  $B $c --help 2>&1 | head -1 | grep -q "^usage: copyscope $c" && ok "help_$(echo $c | tr ' ' _)" ||
    bad "help_$(echo $c | tr ' ' _)"
done
$B --help | grep -q "index .*ann, background" && ok top_help_lists_ann_background || bad top_help_lists_ann_background
# a usage error is one line and a pointer to --help, never the whole help
for c in "run --bogus x.json" "run" "report --bogus" "analyze --bogus" "generate --bogus" "index add --bogus" \
         "index stats --bogus" "index query" "text audit --bogus" "text" "index" "hash"; do
  name=usage_$(echo $c | tr ' ' _ | tr -d -)
  out=$($B $c 2>&1 >/dev/null); rc=$?
  cmd=$(echo "$c" | sed 's/ -.*//; s/^\(run\|hash\|index query\) *$/\1/')
  [ $rc -eq 2 ] && [ "$(echo "$out" | wc -l)" -le 2 ] && echo "$out" | tail -1 | grep -q "^see 'copyscope $cmd --help'" &&
    ok "$name" || { bad "$name (rc=$rc)"; echo "$out" | head -3; }
done
# report: the format comes from --out's extension or --format, never silently HTML
T=$(mktemp -d "${CS_TMP:-/tmp}/cli-XXXXXX")
$B report --db "$T/none.db" --out "$T/r.pdf" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && grep -q "r.pdf: the format cannot be told from the name" "$T/err" && [ ! -e "$T/r.pdf" ] &&
  ok report_pdf_refused || bad "report_pdf_refused (rc=$rc)"
$B report --db "$T/none.db" --format json --out "$T/r.html" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && grep -q "names a .html file but --format is json" "$T/err" && ok report_format_mismatch ||
  bad "report_format_mismatch (rc=$rc)"
# --text-audit: the same default (latest) and the same words in run and report
for c in run report; do
  $B $c --help | grep -q -- "--text-audit WHICH .*latest (default" && ok "text_audit_default_$c" || bad "text_audit_default_$c"
done
$B report --help | grep -qi "sql\|meta table" && bad report_help_no_sql || ok report_help_no_sql
rm -rf "$T"
echo "test_cli.sh: $p passed, $f failed"
