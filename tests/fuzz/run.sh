#!/bin/sh
# run.sh — build a fuzzer with clang (libFuzzer + ASan + UBSan) and run it
# for SECONDS (default 60) as one job. Independent of the Makefile.
#   sh tests/fuzz/run.sh [SECONDS] [WORKDIR] [safetensors|tokenizer]
# Run from the repository root. Seeds: tests/fuzz/seeds (safetensors, read
# only); the growing corpus lives in WORKDIR/corpus-TARGET (default
# build-fuzz). A crash is written to WORKDIR/crash-*: copy it to
# tests/fuzz/crashes/ (safetensors) where tests/test_safetensors.c replays it
# on every `make test`, or add the prompt to tests/test_tokenizer.c.
set -eu
secs=${1:-60}
work=${2:-build-fuzz}
target=${3:-safetensors}
mkdir -p "$work/corpus-$target"
CC=${FUZZ_CC:-clang}
FLAGS="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I. -D_GNU_SOURCE"
case $target in
safetensors)
    $CC $FLAGS tests/fuzz/fuzz_safetensors.c core/err.c -lcjson -lm -lpthread -o "$work/fuzz_$target"
    extra="-max_len=4096 -dict=tests/fuzz/safetensors.dict tests/fuzz/seeds" ;;
tokenizer)
    $CC $FLAGS tests/fuzz/fuzz_tokenizer.c pipeline/tokenizer.c core/err.c \
        -lcjson -lutf8proc -lz -lm -lpthread -o "$work/fuzz_$target"
    extra="-max_len=1024" ;;
*) echo "run.sh: unknown target $target" >&2; exit 2 ;;
esac
# -rss_limit_mb keeps a runaway allocation from starving the shared machine.
# shellcheck disable=SC2086
"$work/fuzz_$target" -max_total_time="$secs" -rss_limit_mb=2048 -artifact_prefix="$work/" \
    -print_final_stats=1 "$work/corpus-$target" $extra
