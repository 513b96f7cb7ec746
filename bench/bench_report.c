/* bench_report.c — time to write the report of a run with 10,000 findings
 * (synthetic store, tests/test_report_fixture.h; gallery = the default top
 * 200). Figures are printed beside the 10 s target and beside an
 * anchor measured in the same run: one bare SELECT over the same findings
 * (the floor: reading the rows the report needs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reports/report.h"
#include "tests/test_report_fixture.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    int64_t n = argc > 1 ? atoll(argv[1]) : 10000;
    const char *base = getenv("CS_TMP");
    char *dir = malloc(4096);
    snprintf(dir, 4096, "%s/cs-bench-report-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(dir)) return 1;
    double t0 = now();
    cs_store *s = rf_make_store(dir, n, CS_REPORT_DEFAULT_TOP);
    if (!s) return 1;
    printf("fixture: %lld findings, %d distinct images, built in %.2f s\n", (long long)n, CS_REPORT_DEFAULT_TOP,
           now() - t0);
    /* anchor: read every finding row the report reads, nothing else */
    t0 = now();
    sqlite3_stmt *st;
    sqlite3_prepare_v2(cs_store_db(s),
                       "SELECT f.id, f.verdict, f.severity, f.evidence_json, g.path, p.text, r.caption "
                       "FROM findings f JOIN generations g ON g.id = f.generation_id "
                       "LEFT JOIN prompts p ON p.id = g.prompt_id LEFT JOIN refs r ON r.id = f.ref_id",
                       -1, &st, NULL);
    size_t bytes = 0;
    while (sqlite3_step(st) == SQLITE_ROW) bytes += (size_t)sqlite3_column_bytes(st, 3);
    sqlite3_finalize(st);
    double anchor = now() - t0;
    printf("anchor: bare SELECT of %lld findings: %.3f s (%zu evidence bytes)\n", (long long)n, anchor, bytes);
    static const char *const names[] = {"html", "json", "csv", "md"};
    int fail = 0;
    for (int f = 0; f < 4; f++) {
        cs_report_opts o = {0};
        o.format = (cs_report_format)f;
        char out[4200];
        snprintf(out, sizeof out, "%s/report.%s", dir, names[f]);
        cs_buf b = {0};
        cs_err err = {0};
        t0 = now();
        int rc = cs_report_render(s, &o, &b, &err) || cs_report_save(out, b.p, b.len, &err);
        double t = now() - t0;
        if (rc) {
            printf("%s: failed: %s\n", names[f], err.msg);
            fail = 1;
        } else {
            printf("report %-4s %lld findings: %.3f s, %.1f MB   target 10 s: %.0fx under   anchor (SELECT) ratio %.1fx\n",
                   names[f], (long long)n, t, (double)b.len / 1e6, 10.0 / t, t / anchor);
        }
        cs_buf_free(&b);
    }
    cs_store_close(s);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fail = 1;
    free(dir);
    return fail;
}
