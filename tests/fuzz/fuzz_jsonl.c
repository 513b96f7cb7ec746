/* fuzz_jsonl.c — libFuzzer target for the two JSONL readers of the text
 * audit: the input is indexed as a corpus file (analyze/text_corpus.c, one
 * document a line) and then audited as a completions file against that
 * corpus (analyze/text_audit.c). Bad lines must be recorded, never crash;
 * the only failures allowed are the store's or the file's, naming it. Each
 * input gets a fresh store in a scratch folder (FUZZ_TMP, default /tmp).
 * Build and run with tests/fuzz/run.sh (target jsonl). */
#include <stdio.h>
#include <string.h>

#include "analyze/text_audit.h"
#include "analyze/text_corpus.h"
#include "core/store.h"

#include "tests/fuzz/fuzz_scratch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char db[600], in[600];
    fuzz_scratch("jsonl", "in.jsonl", data, size, db, in);
    cs_store *s;
    cs_err err = {0};
    if (cs_store_open(&s, db, &err)) __builtin_trap();
    const char *paths[] = {in};
    cs_text_index_opts io = {0};
    cs_text_index_stats ist;
    if (cs_text_index(s, paths, 1, &io, &ist, &err)) {
        if (!strstr(err.msg, fuzz_dir)) __builtin_trap();
    } else {
        cs_text_corpus c = {0};
        if (cs_text_corpus_open(&c, s, &err) == 0) {
            cs_text_audit_opts ao;
            cs_text_audit_defaults(&ao);
            cs_text_audit_stats ast;
            if (cs_text_audit(s, &c, in, &ao, NULL, &ast, &err) && !strstr(err.msg, fuzz_dir)) __builtin_trap();
            cs_text_corpus_close(&c);
        }
    }
    cs_store_close(s);
    return 0;
}
