#!/bin/sh
# The text audit as a new user runs it (README: text index DIR FILE.jsonl.gz,
# text audit FILE.jsonl --out R.jsonl), on a held-out-style set built by
# tests/text_heldout.py (real text in nine languages incl. CJK, whitespace
# variants, shared phrases, prompts anywhere, four kinds of completions), every
# output field checked against its brute-force reference. About 10 s of CPU.
B=${CS_BIN:-build/copyscope}
T=$(mktemp -d "${CS_TMP:-/tmp}/cs-text-heldout-XXXXXX")
python3 tests/text_heldout.py "$B" "$T" --seed 20261207 --n 160
rc=$?
[ -n "$KEEP" ] || rm -rf "$T"
exit $rc
