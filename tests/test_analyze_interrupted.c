/* test_analyze_interrupted.c — a killed analysis (its analyses row left with
 * no end time: the state kill -9 leaves, made here by clearing `finished`)
 * is marked interrupted by the next analysis of the run, so no row without
 * an end time stays unexplained (issue 19 item 19). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analyze/analyze.h"
#include "core/image.h"
#include "core/store.h"
#include "index/ingest.h"
#include "tests/t.h"

#define DATA "../shared/data/twemoji-64/img/"

static int copy(const char *from, const char *to) {
    uint8_t *b;
    size_t n;
    if (cs_read_file(from, &b, &n, NULL)) return -1;
    FILE *f = fopen(to, "wb");
    int ok = f && fwrite(b, 1, n, f) == n;
    if (f) ok &= fclose(f) == 0;
    free(b);
    return ok ? 0 : -1;
}

static int64_t one(cs_store *s, const char *sql) {
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(cs_store_db(s), sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void test_killed_analysis_marked(void) {
    char *dir = t_tmpdir("an-int");
    REQUIRE(dir);
    char refs[4200], gens[4200], db[4200], p[4300];
    snprintf(refs, sizeof refs, "%s/refs", dir);
    snprintf(gens, sizeof gens, "%s/gens", dir);
    snprintf(db, sizeof db, "%s/a.db", dir);
    REQUIRE(mkdir(refs, 0777) == 0 && mkdir(gens, 0777) == 0);
    const char *names[] = {"1f355.png", "1f600.png", "1f680.png"};
    for (int i = 0; i < 3; i++) {
        char from[256];
        snprintf(from, sizeof from, DATA "%s", names[i]);
        snprintf(p, sizeof p, "%s/%s", refs, names[i]);
        REQUIRE(copy(from, p) == 0);
    }
    snprintf(p, sizeof p, "%s/g.png", gens);
    REQUIRE(copy(DATA "1f600.png", p) == 0);
    cs_store *s;
    cs_err err = {0};
    REQUIRE(cs_store_open(&s, db, &err) == 0);
    const char *in[] = {refs};
    cs_ingest_opts io = {0};
    cs_ingest_stats ist;
    REQUIRE(cs_ingest_add(s, in, 1, &io, &ist, &err) == 0 && ist.added == 3);
    cs_analyze_opts o = {0};
    cs_an_settings_default(&o.set);
    char *dirs[] = {gens};
    o.image_dirs = dirs;
    o.n_dirs = 1;
    cs_analyze_summary sum;
    REQUIRE(cs_analyze_run(s, &o, &sum, &err) == 0);
    int64_t first = sum.analysis_id;
    /* the kill: the row stays without its end time */
    REQUIRE(cs_store_exec(s, "UPDATE analyses SET finished = NULL", &err) == 0);
    memset(&o, 0, sizeof o);
    cs_an_settings_default(&o.set);
    o.run_id = sum.run_id;
    REQUIRE(cs_analyze_run(s, &o, &sum, &err) == 0);
    CHECK(sum.analysis_id > first);
    CHECK(one(s, "SELECT COUNT(*) FROM analyses WHERE finished IS NULL AND interrupted = 0") == 0);
    snprintf(p, sizeof p, "SELECT interrupted FROM analyses WHERE id = %lld", (long long)first);
    CHECK(one(s, p) == 1);
    snprintf(p, sizeof p, "SELECT finished IS NOT NULL AND interrupted = 0 FROM analyses WHERE id = %lld",
             (long long)sum.analysis_id);
    CHECK(one(s, p) == 1);
    cs_store_close(s);
    snprintf(p, sizeof p, "rm -rf '%s'", dir);
    CHECK(system(p) == 0);
    free(dir);
}

int main(void) {
    RUN(test_killed_analysis_marked);
    return T_DONE();
}
