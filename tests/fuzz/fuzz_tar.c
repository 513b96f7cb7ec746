/* fuzz_tar.c — libFuzzer target for tar shards as `index add` reads them
 * (index/ingest_tar.c through cs_ingest_add: libarchive's reader, the
 * webdataset grouping, repeated member names, captions from KEY.txt and
 * KEY.json, image decoding). A damaged shard must be recorded as an error
 * row, never crash; what was added must be as many rows as the counts say.
 * Each input gets a fresh store in a scratch folder (FUZZ_TMP, default
 * /tmp). Build and run with tests/fuzz/run.sh (target tar). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/store.h"
#include "index/ingest.h"

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
        snprintf(dir, sizeof dir, "%s/fuzz-tar-%ld", t ? t : "/tmp", (long)getpid());
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
        if (system(cmd)) __builtin_trap();
    }
    char db[600], in[600], cmd[700];
    snprintf(db, sizeof db, "%s/t.db", dir);
    snprintf(in, sizeof in, "%s/shard.tar", dir);
    (void)cmd;
    clean_dir(); /* the last input's store and its sidecar files (no fork: slow under ASan) */
    FILE *f = fopen(in, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f)) __builtin_trap();
    cs_store *s;
    cs_err err = {0};
    if (cs_store_open(&s, db, &err)) __builtin_trap();
    const char *paths[] = {in};
    cs_ingest_opts o = {0};
    o.threads = 1;
    o.max_pixels = 1 << 20; /* a lying header must not allocate gigabytes */
    cs_ingest_stats st;
    if (cs_ingest_add(s, paths, 1, &o, &st, &err) == 0) {
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(cs_store_db(s), "SELECT COUNT(*) FROM refs", -1, &q, NULL) != SQLITE_OK) __builtin_trap();
        if (sqlite3_step(q) != SQLITE_ROW) __builtin_trap();
        if (sqlite3_column_int64(q, 0) != st.added + st.duplicates + st.errors) __builtin_trap();
        sqlite3_finalize(q);
    } else if (!err.msg[0]) {
        __builtin_trap(); /* a failure says why */
    }
    cs_store_close(s);
    return 0;
}
