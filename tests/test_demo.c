/* test_demo.c — the outcome of the demo (`make run`, scripts/demo.sh),
 * reduced: the same suite (suites/demo.json, 2 samples per item instead of
 * 3) on ../shared/data/twemoji-64 (the same images the demo downloads), and
 * the same text flow on Debian's licence texts, through the binary
 * (`copyscope index add`, `text ...`, `run`). Then the store is checked
 * against answers the analysis never sees:
 *  - the empirical model records which reference it reproduced; every
 *    generation that equals that reference pixel for pixel must be judged a
 *    copy of it, and every prompt's expect_ref must be found;
 *  - completion tasks: the withheld region was restored exactly when the
 *    model chose the original reference (its own record), and the analysis
 *    must say so;
 *  - text: the longest verbatim span of each n-gram completion, found by a
 *    brute-force word-aligned search of the corpus, must be the audit's. */
#include <sqlite3.h>
#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/err.h"
#include "core/image.h"
#include "t.h"

#define SHARED "../shared/data/twemoji-64"
#define LICENSES "/usr/share/common-licenses"

static char *tmp;
static char db[1024], suite[1024], textdir[1024];
static sqlite3 *q;
static int setup_ok;

static char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)len + 1);
    if (s && fread(s, 1, (size_t)len, f) != (size_t)len) {
        free(s);
        s = NULL;
    }
    fclose(f);
    if (s) s[len] = 0;
    if (n) *n = (size_t)len;
    return s;
}

/* s with every occurrence of a replaced by b (caller frees). */
static char *replace_all(const char *s, const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b), k = 0;
    for (const char *p = s; (p = strstr(p, a)); p += na) k++;
    char *out = malloc(strlen(s) + k * (nb > na ? nb - na : 0) + 1), *o = out;
    for (const char *p = s;;) {
        const char *h = strstr(p, a);
        if (!h) {
            strcpy(o, p);
            break;
        }
        memcpy(o, p, (size_t)(h - p));
        o += h - p;
        memcpy(o, b, nb);
        o += nb;
        p = h + na;
    }
    return out;
}

static int sh(const char *fmt, const char *a, const char *b) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void setup(void) {
    tmp = t_tmpdir("demo");
    REQUIRE(tmp);
    char shared[PATH_MAX], masks[PATH_MAX];
    REQUIRE(realpath(SHARED, shared) && realpath("suites/demo-masks", masks));
    size_t n;
    char *json = read_all("suites/demo.json", &n);
    REQUIRE(json);
    char *j1 = replace_all(json, "../demo/data/twemoji-64", shared);
    char masks_q[PATH_MAX + 8];
    snprintf(masks_q, sizeof masks_q, "\"%s/", masks);
    char *j2 = replace_all(j1, "\"demo-masks/", masks_q);
    snprintf(suite, sizeof suite, "%s/demo.json", tmp);
    FILE *f = fopen(suite, "w");
    REQUIRE(f);
    fputs(j2, f);
    fclose(f);
    free(json);
    free(j1);
    free(j2);
    snprintf(db, sizeof db, "%s/demo.db", tmp);
    const char *B = t_bin();
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s index add %s --db %%s --attribution 'Twemoji, CC BY 4.0' >%s/index.log 2>&1 && %s index add --embedder tiny --db %%s >>%s/index.log 2>&1",
             B, SHARED, tmp, B, tmp);
    REQUIRE(sh(cmd, db, db) == 0);

    /* the demo's text flow: the licence texts (base-files) as .txt files */
    snprintf(textdir, sizeof textdir, "%s/licenses", tmp);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %%s && for f in " LICENSES "/*; do [ -f \"$f\" ] && [ ! -L \"$f\" ] && "
             "cp \"$f\" %%s/$(basename \"$f\").txt; done; true");
    REQUIRE(sh(cmd, textdir, textdir) == 0);
    snprintf(cmd, sizeof cmd,
             "%s text index %%s --db %%s >%s/text.log 2>&1 && "
             "%s text prompts --prefix-words 50 --continuation-words 50 --per-doc 2 --out %s/p.jsonl --db %s >>%s/text.log 2>&1 && "
             "%s text generate %s/p.jsonl --model ngram:8 --out %s/c.jsonl --db %s >>%s/text.log 2>&1 && "
             "%s text audit %s/c.jsonl --db %s >>%s/text.log 2>&1",
             B, tmp, B, tmp, db, tmp, B, tmp, tmp, db, tmp, B, tmp, db, tmp);
    REQUIRE(sh(cmd, textdir, db) == 0);

    /* the image flow: one command */
    snprintf(cmd, sizeof cmd, "%s run %%s --db %%s --out %s/out -n 2 -j 2 >%s/run.log 2>&1",
             B, tmp, tmp);
    REQUIRE(sh(cmd, suite, db) == 0);
    REQUIRE(sqlite3_open_v2(db, &q, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    setup_ok = 1;
}

static int64_t one_int(const char *sql) {
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(q, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* the run wrote its reports and printed its summary */
static void run_summary_and_reports(void) {
    REQUIRE(setup_ok);
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/out/demo-report.html", tmp);
    CHECK(stat(path, &st) == 0 && st.st_size > 10000);
    snprintf(path, sizeof path, "%s/out/demo-report.json", tmp);
    CHECK(stat(path, &st) == 0 && st.st_size > 1000);
    snprintf(path, sizeof path, "%s/run.log", tmp);
    char *log = read_all(path, NULL);
    REQUIRE(log);
    CHECK(strstr(log, "== summary of run"));
    CHECK(strstr(log, "report: "));
    CHECKF(strstr(log, "expected copies (suite's expect_ref): 40 of 40 generations"), "%s", log);
    free(log);
    /* 31 prompts + 8 completion tasks, 2 samples each, all analysed */
    CHECK(one_int("SELECT COUNT(*) FROM generations") == 78);
    CHECK(one_int("SELECT COUNT(DISTINCT generation_id) FROM findings") == 78);
    char *attr = NULL;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(q, "SELECT value FROM meta WHERE key = 'attribution'", -1, &s, NULL) == SQLITE_OK) {
        if (sqlite3_step(s) == SQLITE_ROW) attr = strdup((const char *)sqlite3_column_text(s, 0));
        sqlite3_finalize(s);
    }
    CHECK(attr && !strcmp(attr, "Twemoji, CC BY 4.0"));
    free(attr);
}

/* running it again makes nothing new and skips the analysis */
static void run_resumes(void) {
    REQUIRE(setup_ok);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s run %%s --db %%s --out %s/out -n 2 -j 2 >%s/run2.log 2>&1", t_bin(), tmp, tmp);
    CHECK(sh(cmd, suite, db) == 0);
    char path[4200];
    snprintf(path, sizeof path, "%s/run2.log", tmp);
    char *log = read_all(path, NULL);
    REQUIRE(log);
    CHECKF(strstr(log, "0 images made, 78 already there"), "%s", log);
    CHECKF(strstr(log, "analyze: every generation already has a finding"), "%s", log);
    free(log);
    CHECK(one_int("SELECT COUNT(*) FROM analyses") == 1);
}

/* max |a - b| over RGB, or 256 when the images differ in size or fail to load */
static int max_diff(const char *a, const char *b) {
    cs_image x = {0}, y = {0};
    int d = 256;
    if (cs_image_load(&x, a, NULL, NULL) == 0 && cs_image_load(&y, b, NULL, NULL) == 0 && x.w == y.w && x.h == y.h) {
        d = 0;
        for (size_t i = 0; i < (size_t)x.w * x.h * 3; i++) {
            int e = abs((int)x.rgb[i] - (int)y.rgb[i]);
            if (e > d) d = e;
        }
    }
    cs_image_free(&x);
    cs_image_free(&y);
    return d;
}

/* A reference and its byte-identical duplicates are one image. */
#define SAME_REF(a, b)                                                                                  \
    "((" a ") = (" b ") OR (SELECT sha256 FROM refs WHERE id = (" a ")) = (SELECT sha256 FROM refs WHERE id = (" b ")))"

/* every generation that is its chosen reference pixel for pixel is a copy of it */
static void exact_reproductions_are_copies_of_the_right_reference(void) {
    REQUIRE(setup_ok);
    sqlite3_stmt *st;
    REQUIRE(sqlite3_prepare_v2(q,
                               "SELECT g.id, g.path, json_extract(g.settings_json, '$.empirical_ref'), "
                               " json_extract(g.settings_json, '$.empirical_ref_id'), f.verdict, f.ref_id, "
                               " " SAME_REF("f.ref_id", "json_extract(g.settings_json, '$.empirical_ref_id')") ", p.key "
                               "FROM generations g JOIN findings f ON f.generation_id = g.id "
                               "JOIN prompts p ON p.id = g.prompt_id ORDER BY g.id",
                               -1, &st, NULL) == SQLITE_OK);
    int exact = 0, n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        n++;
        const char *gen = (const char *)sqlite3_column_text(st, 1), *ref = (const char *)sqlite3_column_text(st, 2);
        if (!gen || !ref) continue;
        int d = max_diff(gen, ref);
        if (d > 1) continue;
        exact++;
        CHECKF(!strcmp((const char *)sqlite3_column_text(st, 4), "copy") && sqlite3_column_int(st, 6),
               "generation %lld (%s) reproduces ref %lld but the finding says %s of ref %lld",
               (long long)sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 7),
               (long long)sqlite3_column_int64(st, 3), (const char *)sqlite3_column_text(st, 4),
               (long long)sqlite3_column_int64(st, 5));
    }
    sqlite3_finalize(st);
    CHECK(n == 78);
    CHECKF(exact >= 55, "only %d of %d generations are exact reproductions", exact, n);
    printf("    %d of %d generations reproduce their chosen reference exactly; all judged copies of it\n", exact, n);
}

/* prompts that name their reference: every generation is a copy of that one */
static void expected_references_found(void) {
    REQUIRE(setup_ok);
    int64_t n = one_int("SELECT COUNT(*) FROM prompts WHERE expect_ref IS NOT NULL AND kind = 'txt2img'");
    CHECK(n == 20);
    int64_t bad = one_int(
        "SELECT COUNT(*) FROM generations g JOIN prompts p ON p.id = g.prompt_id JOIN findings f ON f.generation_id = g.id "
        "LEFT JOIN refs r ON r.id = f.ref_id WHERE p.kind = 'txt2img' AND p.expect_ref IS NOT NULL AND "
        "NOT (f.verdict = 'copy' AND substr(r.source, -length(p.expect_ref) - 1) = '/' || p.expect_ref)");
    CHECK(bad == 0);
}

/* completion tasks: restored exactly when the model chose the original */
static void completions_judged_as_ground_truth(void) {
    REQUIRE(setup_ok);
    sqlite3_stmt *st;
    REQUIRE(sqlite3_prepare_v2(q,
                               "SELECT p.key, g.id, json_extract(p.task_json, '$.rect') IS NOT NULL, "
                               " (SELECT id FROM refs WHERE source = ?1 || substr(json_extract(p.task_json, '$.ref'), "
                               "   -length(p.expect_ref))), "
                               " json_extract(g.settings_json, '$.empirical_ref_id'), f.verdict, f.ref_id, "
                               " json_extract(f.evidence_json, '$.completion.restored'), "
                               " json_extract(f.evidence_json, '$.completion.original_ref_id'), "
                               " (SELECT sha256 FROM refs WHERE id = json_extract(g.settings_json, '$.empirical_ref_id')) = "
                               " (SELECT sha256 FROM refs WHERE source = ?1 || substr(json_extract(p.task_json, '$.ref'), "
                               "   -length(p.expect_ref))) "
                               "FROM generations g JOIN prompts p ON p.id = g.prompt_id "
                               "JOIN findings f ON f.generation_id = g.id WHERE p.kind = 'completion' ORDER BY g.id",
                               -1, &st, NULL) == SQLITE_OK);
    char shared[PATH_MAX + 2];
    REQUIRE(realpath(SHARED, shared));
    strcat(shared, "/");
    sqlite3_bind_text(st, 1, shared, -1, SQLITE_TRANSIENT);
    int n = 0, rect_yes = 0, rect_no = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        n++;
        const char *key = (const char *)sqlite3_column_text(st, 0);
        int is_rect = sqlite3_column_int(st, 2);
        int64_t orig = sqlite3_column_int64(st, 3), chosen = sqlite3_column_int64(st, 4);
        const char *verdict = (const char *)sqlite3_column_text(st, 5);
        int64_t ref = sqlite3_column_int64(st, 6);
        CHECKF(orig > 0, "%s: original reference not found", key);
        int truth = chosen == orig || sqlite3_column_int(st, 9); /* or a byte-identical duplicate */
        if (is_rect) {
            rect_yes += truth;
            rect_no += !truth;
            CHECKF(sqlite3_column_type(st, 7) != SQLITE_NULL && sqlite3_column_int(st, 7) == truth,
                   "%s (generation %lld): the model chose ref %lld (original %lld) but restored = %s", key,
                   (long long)sqlite3_column_int64(st, 1), (long long)chosen, (long long)orig,
                   sqlite3_column_text(st, 7) ? (const char *)sqlite3_column_text(st, 7) : "NULL");
            CHECK(sqlite3_column_int64(st, 8) == orig);
        }
        /* rect or mask: a copy of the original exactly when restored */
        int copy_of_orig = !strcmp(verdict, "copy") && (ref == orig || ref == chosen) && truth;
        if (!truth) copy_of_orig = !strcmp(verdict, "copy") && ref == orig;
        CHECKF(copy_of_orig == truth, "%s (generation %lld): model chose %lld (original %lld), finding: %s of %lld", key,
               (long long)sqlite3_column_int64(st, 1), (long long)chosen, (long long)orig, verdict, (long long)ref);
    }
    sqlite3_finalize(st);
    CHECK(n == 14);
    /* both outcomes occur, so both branches are tested */
    CHECKF(rect_yes > 0 && rect_no > 0, "rect completions: %d restored, %d not", rect_yes, rect_no);
    printf("    %d completions; rect tasks: %d restored, %d completed another reference\n", n, rect_yes, rect_no);
}

/* ---- text: brute-force longest word-aligned verbatim span ---- */

typedef struct {
    char *text; /* " w1 w2 ... wn " (whitespace runs -> one space, padded) */
    size_t len;
} doc;

static char *squeeze(const char *s) {
    size_t n = strlen(s);
    char *o = malloc(n + 3), *p = o;
    *p++ = ' ';
    int sp = 1;
    for (size_t i = 0; i < n; i++) {
        if (isspace((unsigned char)s[i])) {
            if (!sp) *p++ = ' ';
            sp = 1;
        } else {
            *p++ = s[i];
            sp = 0;
        }
    }
    if (!sp) *p++ = ' ';
    *p = 0;
    return o;
}

static int found(const doc *d, int nd, const char *pat) {
    for (int i = 0; i < nd; i++)
        if (strstr(d[i].text, pat)) return 1;
    return 0;
}

/* longest run of completion words that occurs in a document starting at a
 * word there (its end may fall inside a corpus word, as the audit's does) */
static int longest_span_words(const doc *d, int nd, const char *completion) {
    char *c = squeeze(completion);
    int nw = 0, cap = 64;
    char **w = malloc(sizeof *w * (size_t)cap);
    for (char *save = NULL, *t = strtok_r(c, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (nw == cap) w = realloc(w, sizeof *w * (size_t)(cap *= 2));
        w[nw++] = t;
    }
    int best = 0;
    char *pat = malloc(strlen(completion) + 8);
    for (int i = 0; i + best < nw; i++) {
        /* try to beat best: words i .. i+best must match first */
        for (int len = best + 1; i + len <= nw; len++) {
            char *p = pat;
            *p++ = ' ';
            for (int k = i; k < i + len; k++) {
                size_t l = strlen(w[k]);
                memcpy(p, w[k], l);
                p += l;
                if (k + 1 < i + len) *p++ = ' ';
            }
            *p = 0;
            if (!found(d, nd, pat)) break;
            best = len;
        }
    }
    free(pat);
    free(w);
    free(c);
    return best;
}

static void text_audit_finds_the_verbatim_spans(void) {
    REQUIRE(setup_ok);
    sqlite3_stmt *st;
    REQUIRE(sqlite3_prepare_v2(q, "SELECT source FROM text_docs WHERE status = 'ok' ORDER BY id", -1, &st, NULL) ==
            SQLITE_OK);
    doc d[64];
    int nd = 0;
    while (nd < 64 && sqlite3_step(st) == SQLITE_ROW) {
        char *raw = read_all((const char *)sqlite3_column_text(st, 0), NULL);
        if (!raw) continue;
        d[nd].text = squeeze(raw);
        d[nd].len = strlen(d[nd].text);
        nd++;
        free(raw);
    }
    sqlite3_finalize(st);
    CHECK(nd >= 10);
    REQUIRE(sqlite3_prepare_v2(q,
                               "SELECT c.completion, f.longest_words, f.verdict, f.exact_prefix_words, "
                               " p.continuation, p.cont_words, c.prompt_key "
                               "FROM text_findings f JOIN text_completions c ON c.id = f.completion_id "
                               "LEFT JOIN text_prompts p ON p.id = f.prompt_id ORDER BY f.id",
                               -1, &st, NULL) == SQLITE_OK);
    int n = 0, verbatim = 0, identical = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        n++;
        const char *comp = (const char *)sqlite3_column_text(st, 0);
        int audit = sqlite3_column_int(st, 1);
        int brute = longest_span_words(d, nd, comp);
        CHECKF(audit == brute, "%s: audit says %d words, brute force %d", (const char *)sqlite3_column_text(st, 6),
               audit, brute);
        const char *verdict = (const char *)sqlite3_column_text(st, 2);
        verbatim += !strcmp(verdict, "verbatim");
        /* a completion equal to the true continuation is verbatim, whole */
        char *a = squeeze(comp), *b = squeeze((const char *)sqlite3_column_text(st, 4));
        if (!strcmp(a, b)) {
            identical++;
            CHECK(!strcmp(verdict, "verbatim"));
            CHECK(sqlite3_column_int(st, 3) == sqlite3_column_int(st, 5));
        }
        /* the n-gram model only ever emits corpus text: long spans everywhere */
        CHECKF(brute >= 10, "%s: longest span only %d words", (const char *)sqlite3_column_text(st, 6), brute);
        free(a);
        free(b);
    }
    sqlite3_finalize(st);
    for (int i = 0; i < nd; i++) free(d[i].text);
    CHECK(n == 28);
    CHECK(identical >= 10 && verbatim >= identical);
    printf("    %d completions: %d identical to the true continuation, %d verbatim; spans agree with brute force\n", n,
           identical, verbatim);
}

/* bad input: a clear message and the documented exit status, before any work */
static void run_bad_input(void) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s run >/dev/null 2>&1", t_bin());
    CHECK(sh(cmd, "", "") == 2);
    snprintf(cmd, sizeof cmd, "%s run suites/demo.json --format pdf --db %%s >/dev/null 2>&1", t_bin());
    CHECK(sh(cmd, db, "") == 2);
    snprintf(cmd, sizeof cmd, "%s run %%s/missing.json --db %%s/x.db >/dev/null 2>%s/bad.err", t_bin(), tmp);
    CHECK(sh(cmd, tmp, tmp) == 1);
    char path[4200];
    snprintf(path, sizeof path, "%s/bad.err", tmp);
    char *e = read_all(path, NULL);
    CHECKF(e && strstr(e, "copyscope: ") && strstr(e, "missing.json"), "%s", e ? e : "(none)");
    free(e);
    snprintf(path, sizeof path, "%s/x.db", tmp);
    struct stat st;
    CHECK(stat(path, &st) != 0); /* nothing written */
    snprintf(cmd, sizeof cmd, "%s run --help >/dev/null", t_bin());
    CHECK(sh(cmd, "", "") == 0);
}

int main(void) {
    RUN(setup);
    RUN(run_summary_and_reports);
    RUN(exact_reproductions_are_copies_of_the_right_reference);
    RUN(expected_references_found);
    RUN(completions_judged_as_ground_truth);
    RUN(text_audit_finds_the_verbatim_spans);
    RUN(run_resumes);
    RUN(run_bad_input);
    if (q) sqlite3_close(q);
    if (tmp && !t_failed) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd)) {
        }
    }
    free(tmp);
    return T_DONE();
}
