/* fuzz_tar.c — libFuzzer target for tar shards as `index add` reads them
 * (index/ingest_tar.c through cs_ingest_add: libarchive's reader, the
 * webdataset grouping, repeated member names, captions from KEY.txt and
 * KEY.json, image decoding). A damaged shard must be recorded as an error
 * row, never crash; what was added must be as many rows as the counts say.
 * Each input gets a fresh store in a scratch folder (FUZZ_TMP, default
 * /tmp). Build and run with tests/fuzz/run.sh (target tar). */
#include <stdio.h>
#include <string.h>

#include "core/store.h"
#include "index/ingest.h"

#include "tests/fuzz/fuzz_scratch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char db[600], in[600];
    fuzz_scratch("tar", "shard.tar", data, size, db, in);
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
