/* test_analyze_empirical.c — end to end on ground truth: index twemoji-64,
 * generate with the built-in empirical model (a known memoriser that records
 * which reference each image reproduces: generations.settings_json
 * empirical_ref_id, empirical_weight), analyse the run, and check
 *   - every generation that reproduces a reference (weight 1) is "copy" of
 *     that reference (or of an indexed twin showing the same picture);
 *   - a prompt sampled 10 times that can only produce one reference forms a
 *     near-duplicate clique of 10 (Carlini et al.'s test) and is flagged;
 *   - the evidence JSON parses and has the documented fields (evidence.md);
 *   - a completion task that the model restores is "copy" of the original;
 *   - a mask completion (a disc withheld) is audited on the mask's region. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdlib.h>
#include <math.h>
#include <sys/wait.h>

#include "core/image.h"
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
               "   \"expect_ref\": \"img/1f600.png\", \"samples\": 2},\n"
               "  {\"id\": \"octo-disc\", \"ref\": \"%s/img/1f419.png\", \"mask\": \"disc.png\",\n"
               "   \"expect_ref\": \"img/1f419.png\", \"samples\": 2}]}\n",
            data, data);
    fclose(f);
    /* the mask: white (keep) with a black disc of radius 18 at the centre */
    cs_image mk = {0};
    cs_err err = {0};
    REQUIRE(cs_image_alloc(&mk, 64, 64, &err) == 0);
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++)
            memset(mk.rgb + (y * 64 + x) * 3, (x - 31.5) * (x - 31.5) + (y - 31.5) * (y - 31.5) < 18 * 18 ? 0 : 255, 3);
    char mpath[4400];
    snprintf(mpath, sizeof mpath, "%s/disc.png", dir);
    REQUIRE(cs_image_save_png(&mk, mpath, NULL, 0, &err) == 0);
    cs_image_free(&mk);
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
    int n = 0, reproduce = 0, copies = 0, completions = 0, masked = 0;
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
            CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(j, "rule")), "completion"));
            /* the answer by construction: the empirical model records the
             * reference it filled the region from; the original (or a twin)
             * means restored (copy), another one means partial, of that one */
            int64_t orig = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(c, "original_ref_id"));
            if (w > 0.999 && (emp == orig || thumb_rms(&th, orig, emp) < 0.03))
                CHECKF(!strcmp(verdict, "copy") && ref == orig, "completion %lld restores %lld: %s of %lld",
                       (long long)gid, (long long)orig, verdict, (long long)ref);
            else if (w > 0.999)
                CHECKF(!strcmp(verdict, "partial") && (ref == emp || thumb_rms(&th, ref, emp) < 0.03),
                       "completion %lld fills from %lld: %s of %lld", (long long)gid, (long long)emp, verdict,
                       (long long)ref);
            cJSON *mk = cJSON_GetObjectItem(c, "mask");
            if (cJSON_IsString(mk)) {
                /* the disc of radius 18: pi 18^2 = 1018 pixels */
                masked++;
                double px = cJSON_GetNumberValue(cJSON_GetObjectItem(c, "withheld_px"));
                CHECKF(fabs(px - 1018) < 40, "mask completion %lld: %g pixels withheld", (long long)gid, px);
                CHECKF(!strcmp(verdict, "copy"), "mask completion %lld: %s (the model restores the octopus)",
                       (long long)gid, verdict);
            }
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
    CHECK(n == 2 + 10 + 2 + 2 + 4 + 2 + 2 + 2);
    CHECK(reproduce >= 15);
    CHECK(completions == 4);
    CHECK(masked == 2);
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
}

/* ---- incremental analysis (analyze --only-new) ---- */

typedef struct {
    int64_t id, gen;
    char *verdict, *evidence;
} frow;

static int read_findings(cs_store *s, frow **out, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st, "SELECT id, generation_id, verdict, evidence_json FROM findings ORDER BY id", err))
        return -1;
    int n = 0;
    *out = NULL;
    while (sqlite3_step(st) == SQLITE_ROW) {
        *out = realloc(*out, sizeof(frow) * (n + 1));
        (*out)[n].id = sqlite3_column_int64(st, 0);
        (*out)[n].gen = sqlite3_column_int64(st, 1);
        (*out)[n].verdict = strdup((const char *)sqlite3_column_text(st, 2));
        (*out)[n].evidence = strdup((const char *)sqlite3_column_text(st, 3));
        n++;
    }
    sqlite3_finalize(st);
    return n;
}

static void free_findings(frow *f, int n) {
    for (int i = 0; i < n; i++) {
        free(f[i].verdict);
        free(f[i].evidence);
    }
    free(f);
}

/* prompt_summary of run 1 as text rows (min_tl2 rounded to the 4 decimals
 * the evidence keeps), keyed by prompt key, for comparing two analyses */
static char *summaries(cs_store *s, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st,
                         "SELECT group_concat(x, char(10)) FROM (SELECT p.key || ' ' || ps.n_generations || ' ' || "
                         "ps.n_copy || ' ' || ps.n_near_copy || ' ' || ps.n_partial || ' ' || ps.n_novel || ' ' || "
                         "printf('%.4f', ps.memorisation_rate) || ' ' || ifnull(printf('%.4f', ps.min_tl2), '-') || "
                         "' ' || ifnull(printf('%.4f', ps.max_embed_cos), '-') || ' ' || "
                         "ifnull(printf('%.4f', ps.mean_whitebox), '-') || ' ' || ps.largest_clique || ' ' || "
                         "ps.clique_flag AS x FROM prompt_summary ps JOIN prompts p ON p.id = ps.prompt_id "
                         "WHERE ps.run_id = 1 ORDER BY p.key)", err))
        return NULL;
    char *r = NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        r = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return r;
}

static int64_t one(cs_store *s, const char *sql) {
    sqlite3_stmt *st;
    cs_err err = {0};
    if (cs_store_prepare(s, &st, sql, &err)) return -1;
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

/* analyse, add generations (generate -n 3 resumes run 1 with a third sample
 * of most prompts), analyse with --only-new: the old findings are the same
 * rows, byte for byte; the new generations have findings; the summaries of
 * the prompts concerned count every generation, and equal those of a full
 * re-analysis afterwards (the independent reference). */
static void test_only_new(void) {
    cs_store *s;
    cs_err err = {0};
    frow *before = NULL, *after = NULL;
    REQUIRE(cs_store_open(&s, db, &err) == 0);
    int nb = read_findings(s, &before, &err);
    int64_t gens0 = one(s, "SELECT COUNT(*) FROM generations WHERE run_id = 1");
    int64_t an0 = one(s, "SELECT MAX(id) FROM analyses");
    int64_t rocket_an0 = one(s, "SELECT ps.analysis_id FROM prompt_summary ps JOIN prompts p ON p.id = ps.prompt_id "
                                "WHERE p.key = 'rocket'");
    cs_store_close(s);
    CHECK(nb == gens0 && nb == 26);
    static char args[16384];
    snprintf(args, sizeof args, "%s/suite.json --db %s --out %s/gen", dir, db, dir);
    REQUIRE(sh("%s generate %s -n 3 -j 2 >/dev/null 2>&1%s", args, "") == 0);
    char out[4400];
    snprintf(out, sizeof out, "%s/an.txt", dir);
    CHECK(sh("%s analyze --run 1 --only-new --db %s -j 2 > %s", db, out) == 0);
    REQUIRE(cs_store_open(&s, db, &err) == 0);
    int64_t gens1 = one(s, "SELECT COUNT(*) FROM generations WHERE run_id = 1");
    int64_t an1 = one(s, "SELECT MAX(id) FROM analyses");
    /* pizza, tree, heart, uncond, grin, octo-disc get a third sample */
    CHECKF(gens1 == gens0 + 6, "%lld generations after generate -n 3", (long long)gens1);
    CHECK(an1 == an0 + 1);
    CHECK(one(s, "SELECT n_generations FROM analyses ORDER BY id DESC LIMIT 1") == 6);
    int na = read_findings(s, &after, &err);
    CHECK(na == nb + 6);
    int same = 0;
    for (int i = 0; i < nb && i < na; i++)
        same += before[i].id == after[i].id && before[i].gen == after[i].gen &&
                !strcmp(before[i].verdict, after[i].verdict) && !strcmp(before[i].evidence, after[i].evidence);
    CHECKF(same == nb, "%d of %d old findings unchanged", same, nb);
    int64_t max_old_gen = one(s, "SELECT MAX(id) FROM generations WHERE id IN (SELECT generation_id FROM findings "
                                 "WHERE id <= (SELECT MAX(id) - 6 FROM findings))");
    for (int i = nb; i < na; i++) {
        CHECK(after[i].gen > max_old_gen);
        cJSON *j = cJSON_Parse(after[i].evidence);
        CHECK(j && (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "analysis_id")) == an1);
        cJSON_Delete(j);
    }
    /* every generation of run 1 has exactly one finding */
    CHECK(one(s, "SELECT COUNT(*) FROM generations g WHERE run_id = 1 AND "
                 "(SELECT COUNT(*) FROM findings f WHERE f.generation_id = g.id) != 1") == 0);
    /* the touched prompts' summaries count all 3, the rocket's is untouched;
     * pizza's three samples are one picture: a clique of 3 over old and new */
    CHECK(one(s, "SELECT ps.n_generations FROM prompt_summary ps JOIN prompts p ON p.id = ps.prompt_id "
                 "WHERE p.key = 'pizza'") == 3);
    CHECK(one(s, "SELECT ps.analysis_id FROM prompt_summary ps JOIN prompts p ON p.id = ps.prompt_id "
                 "WHERE p.key = 'pizza'") == an1);
    CHECK(one(s, "SELECT ps.analysis_id FROM prompt_summary ps JOIN prompts p ON p.id = ps.prompt_id "
                 "WHERE p.key = 'rocket'") == rocket_an0);
    int64_t pizza_clique = one(s, "SELECT ps.largest_clique FROM prompt_summary ps JOIN prompts p "
                                  "ON p.id = ps.prompt_id WHERE p.key = 'pizza'");
    printf("only-new: %lld new generations analysed, %d findings kept; pizza clique %lld\n",
           (long long)(gens1 - gens0), same, (long long)pizza_clique);
    char *inc = summaries(s, &err);
    cs_store_close(s);
    /* nothing new: exit 0, no analysis recorded */
    CHECK(sh("%s analyze --run 1 --only-new --db %s > %s", db, out) == 0);
    FILE *f = fopen(out, "r");
    char line[512] = "";
    if (f) {
        if (!fgets(line, sizeof line, f)) line[0] = 0;
        fclose(f);
    }
    CHECKF(strstr(line, "nothing new to analyse") != NULL, "%s", line);
    /* --only-new with --images is a usage error */
    static char cmd[16384];
    snprintf(cmd, sizeof cmd, "%s analyze --images %s --only-new --db %s >/dev/null 2>&1", t_bin(), dir, db);
    int urc = system(cmd);
    CHECKF(WIFEXITED(urc) && WEXITSTATUS(urc) == 2, "--only-new --images: status %d", urc);
    /* the reference: a full re-analysis gives the same summaries */
    CHECK(sh("%s analyze --run 1 --db %s -j 2 -q%s", db, "") == 0);
    REQUIRE(cs_store_open(&s, db, &err) == 0);
    CHECK(one(s, "SELECT MAX(id) FROM analyses") == an1 + 1);
    char *full = summaries(s, &err);
    CHECKF(inc && full && !strcmp(inc, full), "incremental summaries:\n%s\nfull re-analysis:\n%s", inc, full);
    CHECKF(pizza_clique == 3, "pizza clique %lld", (long long)pizza_clique);
    free(inc);
    free(full);
    free_findings(before, nb);
    free_findings(after, na);
    /* copyscope run resuming with a 4th sample: only the new ones analysed */
    nb = read_findings(s, &before, &err);
    cs_store_close(s);
    snprintf(args, sizeof args, "%s/suite.json --db %s --out %s/out -n 4 -j 2 --format json", dir, db, dir);
    CHECK(sh("%s run %s > %s 2>&1", args, out) == 0);
    f = fopen(out, "r");
    static char log[65536];
    size_t ln = f ? fread(log, 1, sizeof log - 1, f) : 0;
    log[ln] = 0;
    if (f) fclose(f);
    CHECKF(strstr(log, "6 generations without a finding: analysing only those") &&
               strstr(log, "6 generations (new; 32 findings kept)"), "%s", log);
    REQUIRE(cs_store_open(&s, db, &err) == 0);
    na = read_findings(s, &after, &err);
    CHECK(nb == 32 && na == 38);
    same = 0;
    for (int i = 0; i < nb && i < na; i++) same += before[i].id == after[i].id && !strcmp(before[i].evidence, after[i].evidence);
    CHECK(same == nb);
    CHECK(one(s, "SELECT ps.n_generations FROM prompt_summary ps JOIN prompts p ON p.id = ps.prompt_id "
                 "WHERE p.key = 'pizza'") == 4);
    free_findings(before, nb);
    free_findings(after, na);
    cs_store_close(s);
    /* the mask file gone: the task is not audited, and the evidence says why */
    char mpath[4400];
    snprintf(mpath, sizeof mpath, "%s/disc.png", dir);
    CHECK(remove(mpath) == 0);
    CHECK(sh("%s analyze --run 1 --db %s -q%s", db, "") == 0);
    REQUIRE(cs_store_open(&s, db, &err) == 0);
    CHECK(one(s, "SELECT COUNT(*) FROM findings f JOIN generations g ON g.id = f.generation_id "
                 "JOIN prompts p ON p.id = g.prompt_id WHERE p.key = 'octo-disc' AND "
                 "json_type(f.evidence_json, '$.completion') = 'null' AND "
                 "json_extract(f.evidence_json, '$.completion_error') LIKE 'mask %disc.png: %'") == 4);
    cs_store_close(s);
}

int main(void) {
    RUN(test_pipeline);
    if (t_failed) return T_DONE();
    RUN(test_findings);
    RUN(test_only_new);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, getenv("CS_KEEP") ? "true %s" : "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "cannot remove %s\n", dir);
    return T_DONE();
}
