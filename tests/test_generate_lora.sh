#!/bin/sh
# generate -m -p --lora F:W: the LoRA reaches the model (weight 0 = the base
# image byte for byte, weight 1 = another image), a missing file or a bad
# weight is a one-line usage error.
BIN=${CS_BIN:-build/copyscope}
R=../shared/refs
T=$(mktemp -d "${CS_TMP:-/tmp}/cs-genlora-XXXXXX")
pass=0; fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
ko() { echo "FAIL $1"; fail=$((fail + 1)); }
gen() { # OUT [extra args]
    out=$1; shift
    "$BIN" generate -m $R/sd-tiny/model.safetensors --config $R/sd-tiny/config.json \
        --vocab $R/clip-bpe/bpe_simple_vocab_16e6.txt.gz -p "a red apple" -W 64 -H 64 --steps 3 \
        --seed 7 --db "$T/g.db" -o "$out" "$@" >"$T/log" 2>&1
}
gen "$T/base.png" && ok base || ko base
gen "$T/w0.png" --lora $R/lora/sd-tiny-lora.safetensors:0 && ok weight0 || ko weight0
gen "$T/w1.png" --lora $R/lora/sd-tiny-lora.safetensors:1 && ok weight1 || ko weight1
cmp -s "$T/base.png" "$T/w0.png" && ok weight0_is_base || ko weight0_is_base
cmp -s "$T/base.png" "$T/w1.png" && ko weight1_differs || ok weight1_differs
gen "$T/x.png" --lora "$T/none.safetensors:1"; rc=$?
[ $rc -ne 0 ] && grep -q "none.safetensors: no such file" "$T/log" && ok missing_file || ko missing_file
gen "$T/x.png" --lora "$R/lora/sd-tiny-lora.safetensors:abc"; rc=$?
[ $rc -ne 0 ] && grep -q "bad --lora" "$T/log" && ok bad_weight || ko bad_weight
rm -rf "$T"
echo "test_generate_lora.sh: $pass passed, $fail failed"
[ $fail -eq 0 ]
