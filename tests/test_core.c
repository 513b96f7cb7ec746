/* Core: errors, parallel_for, store migrations. */
#include <stdatomic.h>
#include <unistd.h>

#include "core/err.h"
#include "core/parallel.h"
#include "core/store.h"
#include "t.h"

static void test_err_format(void) {
    cs_err e = {0};
    CHECK(cs_fail(&e, CS_EFORMAT, "%s: bad %d", "a.png", 3) == -1);
    CHECK(!strcmp(e.msg, "a.png: bad 3"));
    CHECK(e.code == CS_EFORMAT);
    cs_wrap(&e, "shard.tar");
    CHECK(!strcmp(e.msg, "shard.tar: a.png: bad 3"));
}

static void add_fn(void *ctx, int64_t i, int thread) {
    (void)thread;
    atomic_llong *sum = ctx;
    atomic_fetch_add(sum, i);
}

static void test_parallel_for_covers_each_item_once(void) {
    for (int nt = 1; nt <= 5; nt++) {
        atomic_llong sum;
        atomic_init(&sum, 0);
        cs_parallel_for(nt, 10001, add_fn, &sum);
        CHECK(atomic_load(&sum) == 10001LL * 10000 / 2);
    }
}

static void test_store_migrates_once(void) {
    char *dir = t_tmpdir("store");
    REQUIRE(dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/t.db", dir);
    cs_err e = {0};
    cs_store *s;
    REQUIRE(cs_store_open(&s, path, &e) == 0);
    CHECK(cs_store_meta_set(s, "k", "v1", &e) == 0);
    cs_store_close(s);
    REQUIRE(cs_store_open(&s, path, &e) == 0); /* second open: no migration re-run */
    char *v = NULL;
    CHECK(cs_store_meta_get(s, "k", &v, &e) == 0 && v && !strcmp(v, "v1"));
    free(v);
    sqlite3_stmt *st;
    REQUIRE(cs_store_prepare(s, &st, "SELECT count(*) FROM schema_migrations", &e) == 0);
    CHECK(sqlite3_step(st) == SQLITE_ROW);
    int n = 0;
    for (const cs_migration *m = cs_migrations; m->name; m++) n++;
    CHECK(sqlite3_column_int(st, 0) == n);
    sqlite3_finalize(st);
    cs_store_close(s);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    free(dir);
}

static void test_store_open_bad_path_fails_cleanly(void) {
    cs_err e = {0};
    cs_store *s;
    CHECK(cs_store_open(&s, "/nonexistent-dir/x/y.db", &e) == -1);
    CHECK(s == NULL);
    CHECK(strstr(e.msg, "/nonexistent-dir/x/y.db") != NULL);
}

int main(void) {
    RUN(test_err_format);
    RUN(test_parallel_for_covers_each_item_once);
    RUN(test_store_migrates_once);
    RUN(test_store_open_bad_path_fails_cleanly);
    return T_DONE();
}
