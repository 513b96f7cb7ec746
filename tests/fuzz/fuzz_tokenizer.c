/* fuzz_tokenizer.c — libFuzzer target for the CLIP tokenizer: arbitrary
 * bytes as a prompt (invalid UTF-8, entities, huge runs). The output must be
 * framed [49406 ... 49407 pad], every id inside the vocabulary, and the same
 * on a second call (which hits the cache). Build and run with
 *   sh tests/fuzz/run.sh SECONDS WORKDIR tokenizer */
#include <stdlib.h>
#include <string.h>

#include "pipeline/tokenizer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static clip_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    cs_err e = {0};
    if (clip_tokenizer_load(&tok, "../shared/refs/clip-bpe/bpe_simple_vocab_16e6.txt.gz", &e)) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = 0;
    int32_t a[77], b[77];
    int n = clip_tokenize(tok, s, a, NULL);
    int m = clip_tokenize(tok, s, b, NULL);
    if (n < 0 || n != m || memcmp(a, b, sizeof a)) __builtin_trap();
    if (a[0] != CLIP_START_ID) __builtin_trap();
    int k = n < 75 ? n : 75;
    for (int i = 1; i <= k; i++)
        if (a[i] < 0 || a[i] >= clip_tokenizer_vocab_size(tok)) __builtin_trap();
    for (int i = k + 1; i < 77; i++)
        if (a[i] != CLIP_END_ID) __builtin_trap();
    free(clip_clean_text(s, 0));
    free(clip_clean_text(s, 1));
    free(s);
    return 0;
}
