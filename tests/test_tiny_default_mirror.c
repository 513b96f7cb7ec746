/* test_tiny_default_mirror.c — the analysis's tiny embedding is invariant to
 * a mirror (issue 13, item 2), as its hashes are: a generation that is a
 * reference flipped left-right gets the reference's own tiny cosine (1: the
 * thumbnail of the mirror image, mirrored back, is the reference's
 * thumbnail), and the reference is its tiny top candidate. Before the query's
 * mirror was searched too, such copies of asymmetric twemoji scored
 * 0.2-0.9 (or were not among the tiny candidates at all), and this test
 * failed. Also: the as-is references still score 1, and the evidence is the
 * same at 1 and 3 threads. */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "analyze/analyze.h"
#include "core/image.h"
#include "core/store.h"
#include "index/embed.h"
#include "index/ingest.h"
#include "t.h"

#define IMG "../shared/data/twemoji-64/img/"
#define NQ 12 /* q0-q7 mirrored references, q8-q11 references as they are */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* every 25th twemoji, sorted by name (77 references) */
static int ref_list(char **out, int cap) {
    DIR *d = opendir(IMG);
    if (!d) return 0;
    char **all = malloc(sizeof(char *) * 4096);
    int n = 0, m = 0;
    struct dirent *e;
    while (all && (e = readdir(d)) && n < 4096)
        if (e->d_name[0] != '.') all[n++] = strdup(e->d_name);
    closedir(d);
    if (!all) return 0;
    qsort(all, (size_t)n, sizeof *all, cmp_str);
    for (int i = 0; i < n; i++) {
        if (i % 25 == 0 && m < cap) {
            char p[512];
            snprintf(p, sizeof p, IMG "%s", all[i]);
            out[m++] = strdup(p);
        }
        free(all[i]);
    }
    free(all);
    return m;
}

/* 1 when the image differs from its mirror by more than a rounding (a
 * symmetric emoji is its own mirror and would prove nothing) */
static int asymmetric(const cs_image *im) {
    long d = 0;
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++)
            for (int c = 0; c < 3; c++) {
                int a = im->rgb[((size_t)y * im->w + x) * 3 + c];
                int b = im->rgb[((size_t)y * im->w + im->w - 1 - x) * 3 + c];
                d += a > b ? a - b : b - a;
            }
    return d > 8L * im->w * im->h; /* mean absolute difference above ~2.7 levels a channel */
}

static void mirror(cs_image *im) {
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w / 2; x++)
            for (int c = 0; c < 3; c++) {
                uint8_t *a = im->rgb + ((size_t)y * im->w + x) * 3 + c;
                uint8_t *b = im->rgb + ((size_t)y * im->w + im->w - 1 - x) * 3 + c;
                uint8_t t = *a;
                *a = *b, *b = t;
            }
}

typedef struct {
    char ref[256];  /* the finding's reference (base name) */
    double cosine;  /* its tiny cosine in the evidence; -9: none */
    char *evidence; /* without the run's ids */
} row;

static int read_findings(cs_store *s, int64_t run_id, row *r, int n) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cs_store_db(s),
                           "SELECT g.path, r.source, json_extract(f.evidence_json, '$.embedding.cosine'), "
                           "json_remove(f.evidence_json, '$.analysis_id') FROM findings f "
                           "JOIN generations g ON g.id = f.generation_id LEFT JOIN refs r ON r.id = f.ref_id "
                           "WHERE g.run_id = ?1",
                           -1, &st, NULL))
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    int got = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *p = (const char *)sqlite3_column_text(st, 0);
        const char *b = strrchr(p, '/') ? strrchr(p, '/') + 1 : p;
        int i = b[0] == 'q' ? atoi(b + 1) : -1;
        if (i < 0 || i >= n) continue;
        const char *src = (const char *)sqlite3_column_text(st, 1);
        snprintf(r[i].ref, sizeof r[i].ref, "%s", src ? (strrchr(src, '/') ? strrchr(src, '/') + 1 : src) : "");
        r[i].cosine = sqlite3_column_type(st, 2) == SQLITE_NULL ? -9 : sqlite3_column_double(st, 2);
        r[i].evidence = strdup((const char *)sqlite3_column_text(st, 3));
        got++;
    }
    sqlite3_finalize(st);
    return got;
}

static void test_mirrored_reference_scores_one(void) {
    cs_err err = {0};
    char dir[] = "/tmp/cs-tinymir-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    char qdir[600], db[600], p[700];
    snprintf(qdir, sizeof qdir, "%s/q", dir);
    snprintf(db, sizeof db, "%s/i.db", dir);
    REQUIRE(mkdir(qdir, 0700) == 0);
    char *refs[128];
    int nr = ref_list(refs, 128);
    REQUIRE(nr > 50);
    /* the queries: the first 8 asymmetric references mirrored, 4 as they are */
    const char *src[NQ];
    int nq = 0;
    for (int i = 0; i < nr && nq < 8; i++) {
        cs_image im = {0};
        REQUIRE(cs_image_load(&im, refs[i], NULL, &err) == 0);
        if (asymmetric(&im)) {
            mirror(&im);
            snprintf(p, sizeof p, "%s/q%d.png", qdir, nq);
            REQUIRE(cs_image_save_png(&im, p, NULL, 0, &err) == 0);
            src[nq++] = strrchr(refs[i], '/') + 1;
        }
        cs_image_free(&im);
    }
    REQUIRE(nq == 8);
    for (int k = 8; k < NQ; k++) {
        cs_image im = {0};
        const char *r = refs[nr - 1 - (k - 8) * 3];
        REQUIRE(cs_image_load(&im, r, NULL, &err) == 0);
        snprintf(p, sizeof p, "%s/q%d.png", qdir, k);
        REQUIRE(cs_image_save_png(&im, p, NULL, 0, &err) == 0);
        src[k] = strrchr(r, '/') + 1;
        cs_image_free(&im);
    }
    cs_store *s;
    REQUIRE(cs_store_open(&s, db, &err) == 0);
    cs_ingest_opts io = {.threads = 2}; /* no local features: the embedding is under test */
    cs_ingest_stats ist;
    REQUIRE(cs_ingest_add(s, (const char *const *)refs, nr, &io, &ist, &err) == 0);
    REQUIRE(cs_embed_index_add(s, "tiny", 2, &err) == 0);
    row r[2][NQ];
    memset(r, 0, sizeof r);
    for (int t = 0; t < 2; t++) { /* 1 and 3 threads */
        cs_analyze_opts o = {0};
        char *dirs[1] = {qdir};
        o.image_dirs = dirs;
        o.n_dirs = 1;
        o.threads = t ? 3 : 1;
        cs_an_settings_default(&o.set);
        cs_analyze_summary sum;
        REQUIRE(cs_analyze_run(s, &o, &sum, &err) == 0);
        CHECK(read_findings(s, sum.run_id, r[t], NQ) == NQ);
    }
    for (int k = 0; k < NQ; k++) {
        /* 1 up to float rounding of a unit vector's dot product with itself */
        CHECKF(!strcmp(r[0][k].ref, src[k]) && r[0][k].cosine > 0.999, "q%d (%s %s): ref %s, tiny cosine %.4f", k,
               src[k], k < 8 ? "mirrored" : "as is", r[0][k].ref, r[0][k].cosine);
        CHECKF(r[0][k].evidence && r[1][k].evidence && !strcmp(r[0][k].evidence, r[1][k].evidence),
               "q%d differs between 1 and 3 threads", k);
    }
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < NQ; k++) free(r[t][k].evidence);
    cs_store_close(s);
    for (int i = 0; i < nr; i++) free(refs[i]);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

int main(void) {
    RUN(test_mirrored_reference_scores_one);
    return T_DONE();
}
