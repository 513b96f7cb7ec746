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
#include "tests/test_findings_fixture.h"

#define IMG "../shared/data/twemoji-64/img/"
#define NQ 12 /* q0-q7 mirrored references, q8-q11 references as they are */

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

static void test_mirrored_reference_scores_one(void) {
    cs_err err = {0};
    char dir[] = "/tmp/cs-tinymir-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    char qdir[600], db[600], p[700];
    snprintf(qdir, sizeof qdir, "%s/q", dir);
    snprintf(db, sizeof db, "%s/i.db", dir);
    REQUIRE(mkdir(qdir, 0700) == 0);
    char *refs[128];
    int nr = fx_twemoji_refs(IMG, NULL, 0, NULL, 0, 0, NULL, refs, 128); /* every 25th emoji */
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
    fx_row r[2][NQ];
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
        CHECK(fx_read_findings(s, sum.run_id, "$.embedding.cosine", r[t], NQ) == NQ);
    }
    for (int k = 0; k < NQ; k++) {
        /* 1 up to float rounding of a unit vector's dot product with itself */
        double cosine = r[0][k].extra[0] ? atof(r[0][k].extra) : -9; /* -9: no tiny score in the evidence */
        CHECKF(!strcmp(r[0][k].ref, src[k]) && cosine > 0.999, "q%d (%s %s): ref %s, tiny cosine %.4f", k, src[k],
               k < 8 ? "mirrored" : "as is", r[0][k].ref, cosine);
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
