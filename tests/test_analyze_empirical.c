/* test_analyze_empirical.c — end to end on ground truth: index twemoji-64,
 * generate with the built-in empirical model (a known memoriser that records
 * which reference each image reproduces: generations.settings_json
 * empirical_ref_id, empirical_weight), analyse the run, and check
 *   - every generation that reproduces a reference (weight 1) is "copy" of
 *     that reference (or of an indexed twin showing the same picture);
 *   - a prompt sampled 10 times that can only produce one reference forms a
 *     near-duplicate clique of 10 (Carlini et al.'s test) and is flagged;
 *   - the evidence JSON parses and has the documented fields (evidence.md);
 *   - a completion task that the model restores is "copy" of the original. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdlib.h>
#include <math.h>

#include "core/store.h"
#include "index/refs.h"
#include "t.h"

static char dir[4096], db[4300];

static int sh(const char *fmt, const char *a, const char *b) {
    static char cmd[40000];
    snprintf(cmd, sizeof cmd, fmt, t_bin(), a, b);
    int rc = system(cmd);
    if (rc) fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    return rc;
}

static void test_pipeline(void) {
    char *d = t_tmpdir("an-emp");
    REQUIRE(d);
    snprintf(dir, sizeof dir, "%s", d);
    free(d);
    snprintf(db, sizeof db, "%s/e.db", dir);
    char suite[4400];
    snprintf(suite, sizeof suite, "%s/suite.json", dir);
    /* the suite's paths are relative to the suite file: give an absolute one */
    char data[4096];
    REQUIRE(realpath("../shared/data/twemoji-64", data) != NULL);
    FILE *f = fopen(suite, "w");
    REQUIRE(f);
    fprintf(f, "{\"name\": \"an-emp\", \"model\": \"empirical\",\n"
               " \"defaults\": {\"sampler\": \"euler\", \"schedule\": \"karras\", \"steps\": 10,\n"
               "  \"guidance\": 3.0, \"size\": 64, \"samples\": 2, \"seed\": 7, \"whitebox_k\": 1},\n"
               " \"prompts\": [\n"
               "  {\"id\": \"pizza\", \"text\": \"slice of pizza\"},\n"
               "  {\"id\": \"rocket\", \"text\": \"rocket\", \"samples\": 10},\n"
               "  {\"id\": \"tree\", \"text\": \"tree\"},\n"
               "  {\"id\": \"heart\", \"text\": \"heart\", \"sampler\": \"dpmpp_2m\"},\n"
               "  {\"id\": \"face\", \"text\": \"face\", \"samples\": 4},\n"
               "  {\"id\": \"uncond\", \"text\": \"\", \"guidance\": 1.0, \"sampler\": \"euler_a\"}],\n"
               " \"completions\": [\n"
               "  {\"id\": \"grin\", \"ref\": \"%s/img/1f600.png\", \"rect\": [32, 0, 32, 64],\n"
               "   \"expect_ref\": \"img/1f600.png\", \"samples\": 2}]}\n",
            data);
    fclose(f);
    REQUIRE(sh("%s index add ../shared/data/twemoji-64 --db %s -j 2 >/dev/null 2>&1", db, "") == 0);
    char out[4400];
    snprintf(out, sizeof out, "%s/gen", dir);
    static char args[16384];
    snprintf(args, sizeof args, "%s --db %s --out %s", suite, db, out);
    REQUIRE(sh("%s generate %s -j 2 >/dev/null 2>&1%s", args, "") == 0);
    REQUIRE(sh("%s analyze --run 1 --db %s -j 2 -q%s", db, "") == 0);
}

static double thumb_rms(const cs_ref_thumbs *th, int64_t a, int64_t b) {
    int64_t ia = -1, ib = -1;
    for (int64_t i = 0; i < th->n; i++) {
        if (th->ids[i] == a) ia = i;
        if (th->ids[i] == b) ib = i;
    }
    if (ia < 0 || ib < 0) return 1;
    const size_t n = (size_t)th->w * th->h * 3;
    double s = 0;
    for (size_t k = 0; k < n; k++) {
        double d = (th->rgb[ia * n + k] - th->rgb[ib * n + k]) / 255.0;
        s += d * d;
    }
    return sqrt(s / n);
}

static void test_findings(void) {
    cs_store *s;
    cs_err err = {0};
    REQUIRE(cs_store_open(&s, db, &err) == 0);
    cs_ref_thumbs th;
    REQUIRE(cs_refs_load_thumbs(s, &th, &err) == 0);
    sqlite3_stmt *st;
    REQUIRE(cs_store_prepare(s, &st,
                             "SELECT g.id, p.kind, f.verdict, f.ref_id, "
                             "json_extract(g.settings_json, '$.empirical_ref_id'), "
                             "json_extract(g.settings_json, '$.empirical_weight'), f.evidence_json "
                             "FROM generations g JOIN prompts p ON p.id = g.prompt_id "
                             "JOIN findings f ON f.generation_id = g.id WHERE g.run_id = 1 ORDER BY g.id",
                             &err) == 0);
    int n = 0, reproduce = 0, copies = 0, completions = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        n++;
        int64_t gid = sqlite3_column_int64(st, 0);
        const char *kind = (const char *)sqlite3_column_text(st, 1);
        const char *verdict = (const char *)sqlite3_column_text(st, 2);
        int64_t ref = sqlite3_column_int64(st, 3);
        int64_t emp = sqlite3_column_int64(st, 4);
        double w = sqlite3_column_double(st, 5);
        const char *ev = (const char *)sqlite3_column_text(st, 6);
        cJSON *j = cJSON_Parse(ev);
        CHECKF(j && cJSON_GetObjectItem(j, "schema") && cJSON_GetObjectItem(j, "tl2") &&
                   cJSON_GetObjectItem(j, "ratio_test") && cJSON_GetObjectItem(j, "hashes") &&
                   cJSON_GetObjectItem(j, "whitebox") && cJSON_GetObjectItem(j, "clique"),
               "generation %lld: evidence lacks fields: %.200s", (long long)gid, ev);
        if (!strcmp(kind, "completion")) {
            completions++;
            cJSON *c = cJSON_GetObjectItem(j, "completion");
            CHECKF(cJSON_IsObject(c), "completion %lld without its audit", (long long)gid);
            if (cJSON_IsObject(c) && cJSON_IsTrue(cJSON_GetObjectItem(c, "restored")))
                CHECKF(!strcmp(verdict, "copy"), "restored completion %lld is %s", (long long)gid, verdict);
        } else if (w > 0.999) {
            reproduce++;
            int right = ref == emp || thumb_rms(&th, ref, emp) < 0.03;
            CHECKF(!strcmp(verdict, "copy") && right, "generation %lld reproduces ref %lld: %s of %lld",
                   (long long)gid, (long long)emp, verdict, (long long)ref);
            copies += !strcmp(verdict, "copy") && right;
        }
        cJSON_Delete(j);
    }
    sqlite3_finalize(st);
    printf("empirical model: %d generations, %d reproduce a reference, %d of them found as copy "
           "of it; %d completions\n", n, reproduce, copies, completions);
    CHECK(n == 2 + 10 + 2 + 2 + 4 + 2 + 2);
    CHECK(reproduce >= 15);
    CHECK(completions == 2);
    REQUIRE(cs_store_prepare(s, &st,
                             "SELECT ps.largest_clique, ps.clique_flag, ps.memorisation_rate, ps.mean_whitebox "
                             "FROM prompt_summary ps JOIN prompts p ON p.id = ps.prompt_id "
                             "WHERE ps.run_id = 1 AND p.key = 'rocket'", &err) == 0);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    CHECKF(sqlite3_column_int(st, 0) == 10, "rocket clique %d", sqlite3_column_int(st, 0));
    CHECK(sqlite3_column_int(st, 1) == 1);
    CHECK(sqlite3_column_double(st, 2) == 1.0);
    CHECK(sqlite3_column_type(st, 3) != SQLITE_NULL);
    sqlite3_finalize(st);
    cs_ref_thumbs_free(&th);
    cs_store_close(s);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

int main(void) {
    RUN(test_pipeline);
    if (t_failed) return T_DONE();
    RUN(test_findings);
    return T_DONE();
}
