#!/bin/sh
# run.sh — build a fuzzer with clang (libFuzzer + ASan + UBSan) and run it
# for SECONDS (default 60) as one job. `make fuzz` runs every target.
#   sh tests/fuzz/run.sh [SECONDS] [WORKDIR] [safetensors|tokenizer|suite|jsonl|tar]
# suite, jsonl and tar instrument the parser's own sources and take the rest
# from the library (LIB, default build/libcopyscope.a: run `make` first); their
# kept corpus is tests/fuzz/corpus/TARGET (read as seeds; new finds go to
# WORKDIR/corpus-TARGET: merge them in with -merge=1 when they add coverage).
# Run from the repository root. Seeds: tests/fuzz/seeds (safetensors, read
# only); the growing corpus lives in WORKDIR/corpus-TARGET (default
# build-fuzz). A crash is written to WORKDIR/crash-*: copy it to
# tests/fuzz/crashes/ (safetensors) where tests/test_safetensors.c replays it
# on every `make test`, or add the prompt to tests/test_tokenizer.c.
# FUZZ_RUNS=0 only replays the kept corpus and seeds, each input once
# (tests/test_fuzz_replay.sh).
set -eu
secs=${1:-60}
work=${2:-build-fuzz}
target=${3:-safetensors}
mkdir -p "$work/corpus-$target"
CC=${FUZZ_CC:-clang}
FLAGS="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I. -D_GNU_SOURCE"
case $target in
safetensors)
    $CC $FLAGS tests/fuzz/fuzz_safetensors.c core/err.c core/fs.c -lcjson -lm -lpthread -o "$work/fuzz_$target"
    extra="-max_len=4096 -dict=tests/fuzz/safetensors.dict tests/fuzz/seeds" ;;
tokenizer)
    $CC $FLAGS tests/fuzz/fuzz_tokenizer.c pipeline/tokenizer.c core/err.c \
        -lcjson -lutf8proc -lz -lm -lpthread -o "$work/fuzz_$target"
    extra="-max_len=1024" ;;
suite|jsonl|tar)
    LIB=${LIB:-build/libcopyscope.a}
    [ -f "$LIB" ] || { echo "run.sh: $LIB missing: run make first" >&2; exit 2; }
    case $target in
    suite) src="pipeline/suite.c"; max=65536 ;;
    jsonl) src="analyze/text_corpus.c analyze/text_audit.c analyze/text_norm.c analyze/text_span.c"; max=16384 ;;
    tar) src="index/ingest.c index/ingest_tar.c index/ingest_walk.c index/ingest_captions.c"; max=65536 ;;
    esac
    # shellcheck disable=SC2086
    $CC $FLAGS tests/fuzz/fuzz_$target.c $src "$LIB" -lopencv_calib3d -lopencv_features2d -lopencv_flann -lopencv_imgproc -lopencv_core -l:libfaiss.a -lgomp -lopenblas -lpng -ljpeg -lsqlite3 \
        -lcjson -lz -lutf8proc -ldivsufsort -lnettle -larchive -ldnnl -lstdc++ -lm -lpthread -o "$work/fuzz_$target"
    export FUZZ_TMP="${FUZZ_TMP:-$work}"
    extra="-max_len=$max tests/fuzz/corpus/$target" ;;
*) echo "run.sh: unknown target $target" >&2; exit 2 ;;
esac
# -rss_limit_mb keeps a runaway allocation from starving the shared machine.
# shellcheck disable=SC2086
runs=${FUZZ_RUNS:+-runs=$FUZZ_RUNS}
# shellcheck disable=SC2086
"$work/fuzz_$target" -max_total_time="$secs" $runs -rss_limit_mb=2048 -artifact_prefix="$work/" \
    -print_final_stats=1 "$work/corpus-$target" $extra
