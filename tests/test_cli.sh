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
echo "test_cli.sh: $p passed, $f failed"
