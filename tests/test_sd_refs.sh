#!/bin/sh
# Every case of the model reference folders through `copyscope selftest
# --refs`: SD 2.x (sd2-tiny), SDXL (sdxl-tiny), the diffusers layout in F32
# and F16 (sd-tiny-diffusers[-f16], on sd-tiny's cases), the LoRA (lora, on
# sd-tiny). Each run must end with every case within tolerance; model errors
# must say what to do.
B=${CS_BIN:-build/copyscope}
R=../shared/refs
V=$R/clip-bpe/bpe_simple_vocab_16e6.txt.gz
T=${CS_TMP:-/tmp}/sd_refs.$$
mkdir -p "$T"
p=0; f=0
ok() { p=$((p+1)); echo "ok   $1"; }
bad() { f=$((f+1)); echo "FAIL $1"; }
ncases() { grep -o '"op": *"[a-z_0-9]*"' "$1/cases/index.json" | wc -l; }
run() { # name, expected summary regexp, selftest args...
  n=$1; want=$2; shift 2
  if $B selftest "$@" --vocab $V -j 2 >"$T/$n.log" 2>&1 && tail -n 1 "$T/$n.log" | grep -Eq "$want"; then
    ok "$n ($(tail -n 1 "$T/$n.log"))"
  else
    bad "$n"; grep -v ' ok$' "$T/$n.log" | tail -n 20
  fi
}
run sd2-tiny "^selftest: $(ncases $R/sd2-tiny) cases ok, 0 failed, 0 skipped" --refs $R/sd2-tiny
run sdxl-tiny "^selftest: $(ncases $R/sdxl-tiny) cases ok, 0 failed, 0 skipped" --refs $R/sdxl-tiny
n1=$(ncases $R/sd-tiny)
run diffusers "^selftest: $n1 cases ok, 0 failed, 0 skipped" --refs $R/sd-tiny-diffusers --base $R/sd-tiny
run diffusers-f16 "^selftest: $n1 cases ok, 0 failed, 0 skipped" --refs $R/sd-tiny-diffusers-f16 --base $R/sd-tiny
# 4 checks per multiplier
nm=$(grep -o '"unet_eps/m' $R/lora/index.json | wc -l)
run lora "^selftest: $((4 * nm)) checks ok, 0 failed" --refs $R/lora

# a folder of no known kind, a diffusers folder without its cases
$B selftest --refs "$T" >"$T/o" 2>&1; [ $? -ne 0 ] && grep -q 'not a reference folder' "$T/o" && ok not_a_refs_dir || bad not_a_refs_dir
$B selftest --refs $R/sd-tiny-diffusers >"$T/o" 2>&1; [ $? -eq 2 ] && grep -q -- '--base' "$T/o" && ok diffusers_needs_cases || bad diffusers_needs_cases
echo "test_sd_refs.sh: $p passed, $f failed"
rm -rf "$T"
[ $f -eq 0 ]
