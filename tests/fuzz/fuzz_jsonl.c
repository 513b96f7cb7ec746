/* fuzz_jsonl.c — libFuzzer target for the two JSONL readers of the text
 * audit: the input is indexed as a corpus file (analyze/text_corpus.c, one
 * document a line) and then audited as a completions file against that
 * corpus (analyze/text_audit.c). Bad lines must be recorded, never crash;
 * the only failures allowed are the store's or the file's, naming it. Each
 * input gets a fresh store in a scratch folder (FUZZ_TMP, default /tmp).
 * Build and run with tests/fuzz/run.sh (target jsonl). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyze/text_audit.h"
#include "analyze/text_corpus.h"
#include "core/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[512];

static void clean_dir(void) {
    DIR *d = opendir(dir);
    if (!d) __builtin_trap();
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, "t.db", 4)) continue;
        char p[900];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) {
        const char *t = getenv("FUZZ_TMP");
        snprintf(dir, sizeof dir, "%s/fuzz-jsonl-%ld", t ? t : "/tmp", (long)getpid());
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
        if (system(cmd)) __builtin_trap();
    }
    char db[600], in[600], cmd[700];
    snprintf(db, sizeof db, "%s/t.db", dir);
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    (void)cmd;
    clean_dir(); /* the last input's store and its sidecar files (no fork: slow under ASan) */
    FILE *f = fopen(in, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f)) __builtin_trap();
    cs_store *s;
    cs_err err = {0};
    if (cs_store_open(&s, db, &err)) __builtin_trap();
    const char *paths[] = {in};
    cs_text_index_opts io = {0};
    cs_text_index_stats ist;
    if (cs_text_index(s, paths, 1, &io, &ist, &err)) {
        if (!strstr(err.msg, dir)) __builtin_trap();
    } else {
        cs_text_corpus c = {0};
        if (cs_text_corpus_open(&c, s, &err) == 0) {
            cs_text_audit_opts ao;
            cs_text_audit_defaults(&ao);
            cs_text_audit_stats ast;
            if (cs_text_audit(s, &c, in, &ao, NULL, &ast, &err) && !strstr(err.msg, dir)) __builtin_trap();
            cs_text_corpus_close(&c);
        }
    }
    cs_store_close(s);
    return 0;
}
