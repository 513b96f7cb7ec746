/* test_part_al_fine.c — the pixel rules' replaced-part veto (part_al,
 * analyze/an_part.h) at the working resolution (issue 13).
 *
 * A 256 px template (a folder body and an emblem of 12 px squares, the
 * fixture of test_lf_part's test_fine_twin, tests/test_fine_fixture.h)
 * is indexed; a generation is its twin (the same template, another
 * emblem) or its copy (brightness, contrast and noise). cs_an_part_al, as
 * cs_an_judge calls it for a candidate a pixel rule is about to flag, with
 * the pair's verified geometry (identity):
 *  - without the references' sources (refs.fine NULL: the 64 px
 *    measurement of before): the twin's emblem is no replaced part (the
 *    miss this fixes);
 *  - with them: the twin's emblem is a replaced part, measured on 256 px
 *    images re-read from both files; the copy's is none;
 *  - without a significant verified geometry, the tiled-L2 box alone: the
 *    whole frame (as is or mirrored) is an exact map, 256 px as with a
 *    geometry; a crop box is too coarse for 256 px: 64 px, and
 *    part_al.fine says why;
 *  - a generation under 256 px on a side: 64 px (it has no more detail);
 *  - the reference's file moved away: 64 px, "source missing", no error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "analyze/an_part.h"
#include "analyze/fine_ref.h"
#include "analyze/match.h"
#include "analyze/settings.h"
#include "core/image.h"
#include "core/store.h"
#include "index/ingest.h"
#include "index/refs.h"
#include "t.h"

#include "test_fine_fixture.h" /* fine_template */

enum { F = CS_FINE_SIDE, S = CS_THUMB_SIZE };

static uint32_t rs = 1313;
static uint32_t rnd(void) { return rs = rs * 1664525u + 1013904223u, rs >> 8; }

static void save(uint8_t *rgb, const char *path) {
    cs_err err = {0};
    cs_image im = {.w = F, .h = F, .rgb = rgb};
    REQUIRE(cs_image_save_png(&im, path, NULL, 0, &err) == 0);
}

/* the candidate a pixel rule would flag: the whole reference aligned to the
 * whole generation (box), and a verified geometry (identity) when geo */
static cs_an_cand cand_of(int geo) {
    cs_an_cand c;
    memset(&c, 0, sizeof c);
    c.row = 0;
    c.box[0] = 0, c.box[1] = 0, c.box[2] = S;
    if (geo) {
        c.lf.inliers = 40;
        c.lf.log10_nfa1 = -20;
        c.lf.m_orig[0] = 1, c.lf.m_orig[4] = 1;
    }
    return c;
}

static void test_part_al_fine(void) {
    static uint8_t a[F * F * 3], b[F * F * 3], c[F * F * 3];
    const uint8_t blue[3] = {40, 40, 160}, white[3] = {250, 250, 250}, red[3] = {170, 30, 30}, green[3] = {30, 150, 40};
    fine_template(a, blue, white);
    fine_template(b, red, green); /* the twin: another emblem */
    for (int i = 0; i < F * F * 3; i++) /* the copy: brightness/contrast and noise of a few levels */
        c[i] = (uint8_t)(0.85 * a[i] + 20 + (int)(rnd() % 5) - 2);
    char dir[128], pa[192], pb[192], pc[192], db[192], moved[192];
    snprintf(dir, sizeof dir, "/tmp/cs_test_pafine_%d", (int)getpid());
    mkdir(dir, 0700);
    snprintf(pa, sizeof pa, "%s/ref.png", dir);
    snprintf(pb, sizeof pb, "%s/twin.png", dir);
    snprintf(pc, sizeof pc, "%s/copy.png", dir);
    snprintf(db, sizeof db, "%s/i.db", dir);
    snprintf(moved, sizeof moved, "%s/moved.png", dir);
    save(a, pa), save(b, pb), save(c, pc);

    cs_err err = {0};
    cs_store *s;
    REQUIRE(cs_store_open(&s, db, &err) == 0);
    cs_ingest_opts io = {.threads = 1};
    cs_ingest_stats ist;
    const char *refs[1] = {pa};
    REQUIRE(cs_ingest_add(s, refs, 1, &io, &ist, &err) == 0);
    sqlite3_stmt *st;
    REQUIRE(sqlite3_prepare_v2(cs_store_db(s), "SELECT id FROM refs", -1, &st, NULL) == SQLITE_OK);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    int64_t id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);

    /* the matcher's reference: its 64 px thumbnail, as index add makes it */
    cs_an_settings set;
    cs_an_settings_default(&set);
    cs_image ia = {.w = F, .h = F, .rgb = a}, ta = {0}, ib = {.w = F, .h = F, .rgb = b}, ic = {.w = F, .h = F, .rgb = c};
    REQUIRE(cs_image_resize(&ta, &ia, S, S, CS_RESIZE_AREA, &err) == 0);
    cs_an_refs r;
    REQUIRE(cs_an_refs_build(&r, 1, &id, ta.rgb, &set, &err) == 0);
    cs_image_free(&ta);
    static cs_an_query qb, qc;
    REQUIRE(cs_an_query_init(&qb, &ib, 0, &err) == 0);
    REQUIRE(cs_an_query_init(&qc, &ic, 0, &err) == 0);
    qb.src = pb, qc.src = pc;
    cs_fine_refs fr;
    cs_fine_open(&fr, s);

    /* 64 px (no sources): the twin's emblem is no replaced part */
    cs_an_cand k = cand_of(1);
    cs_an_part_al(&k, &r, &qb, &set);
    CHECKF(k.part_al.measured && k.part_al.side == S && !k.part_al.replaced,
           "twin at 64 px: side %d replaced %d (the fixture no longer needs 256 px)", k.part_al.side,
           k.part_al.replaced);
    /* 256 px, re-read from both files: it is */
    r.fine = &fr;
    k = cand_of(1);
    cs_an_part_al(&k, &r, &qb, &set);
    CHECKF(k.part_al.fine == CS_FINE_OK && k.part_al.side == F && k.part_al.replaced,
           "twin at 256 px: fine %d side %d replaced %d (part %d, differ %d of %d)", k.part_al.fine, k.part_al.side,
           k.part_al.replaced, k.part_al.part, k.part_al.differ, k.part_al.cells);
    /* measured once: a second call changes nothing */
    cs_lfp keep = k.part_al;
    cs_an_part_al(&k, &r, &qb, &set);
    CHECK(!memcmp(&keep, &k.part_al, sizeof keep));
    /* the copy at 256 px: no part */
    k = cand_of(1);
    cs_an_part_al(&k, &r, &qc, &set);
    CHECKF(k.part_al.fine == CS_FINE_OK && !k.part_al.replaced && k.part_al.differ < CS_LFP_MIN_CELLS,
           "copy at 256 px: fine %d replaced %d differ %d", k.part_al.fine, k.part_al.replaced, k.part_al.differ);
    /* no significant verified geometry, but the box is the whole frame:
     * exact (the frames' scale), so 256 px all the same */
    k = cand_of(1);
    k.lf.log10_nfa1 = 0; /* 1 false alarm expected: not significant */
    cs_an_part_al(&k, &r, &qb, &set);
    CHECKF(k.part_al.fine == CS_FINE_OK && k.part_al.side == F && k.part_al.replaced,
           "twin, whole frame, no significant geometry: fine %d side %d replaced %d", k.part_al.fine,
           k.part_al.side, k.part_al.replaced);
    k = cand_of(0);
    cs_an_part_al(&k, &r, &qc, &set);
    CHECKF(k.part_al.fine == CS_FINE_OK && !k.part_al.replaced && k.part_al.differ < CS_LFP_MIN_CELLS,
           "copy, whole frame, no geometry: fine %d replaced %d differ %d", k.part_al.fine, k.part_al.replaced,
           k.part_al.differ);
    /* ... and mirrored: the copy flipped left-right, aligned mirrored */
    {
        static uint8_t cm[F * F * 3];
        for (int y = 0; y < F; y++)
            for (int x = 0; x < F; x++) memcpy(cm + (y * F + x) * 3, c + (y * F + F - 1 - x) * 3, 3);
        char pm[192];
        snprintf(pm, sizeof pm, "%s/mirror.png", dir);
        save(cm, pm);
        cs_image im = {.w = F, .h = F, .rgb = cm};
        static cs_an_query qm;
        REQUIRE(cs_an_query_init(&qm, &im, 0, &err) == 0);
        qm.src = pm;
        k = cand_of(0);
        k.al_mirrored = 1;
        cs_an_part_al(&k, &r, &qm, &set);
        CHECKF(k.part_al.fine == CS_FINE_OK && !k.part_al.replaced && k.part_al.differ < CS_LFP_MIN_CELLS,
               "mirrored copy, whole frame: fine %d replaced %d differ %d", k.part_al.fine, k.part_al.replaced,
               k.part_al.differ);
        k = cand_of(0); /* not aligned mirrored: the map is wrong, and every edge differs */
        cs_an_part_al(&k, &r, &qm, &set);
        CHECKF(k.part_al.fine == CS_FINE_OK && k.part_al.differ >= CS_LFP_MIN_CELLS,
               "mirrored copy read unmirrored: differ %d", k.part_al.differ);
    }
    /* a crop box without a significant geometry: too coarse for 256 px, and said why */
    k = cand_of(0);
    k.box[0] = 4, k.box[1] = 4, k.box[2] = S - 8;
    cs_an_part_al(&k, &r, &qb, &set);
    CHECKF(k.part_al.fine == CS_FINE_COARSE && k.part_al.side == S, "crop box: fine %d side %d", k.part_al.fine,
           k.part_al.side);
    /* a generation under 256 px on a side (no detail beyond its thumbnail): 64 px, and why */
    {
        char p128[192];
        snprintf(p128, sizeof p128, "%s/twin128.png", dir);
        cs_image t128 = {0};
        REQUIRE(cs_image_resize(&t128, &ib, 128, 128, CS_RESIZE_AREA, &err) == 0);
        REQUIRE(cs_image_save_png(&t128, p128, NULL, 0, &err) == 0);
        static cs_an_query q128;
        REQUIRE(cs_an_query_init(&q128, &t128, 0, &err) == 0);
        q128.src = p128;
        k = cand_of(1);
        k.lf.m_orig[0] = k.lf.m_orig[4] = 0.5; /* 256 px reference -> 128 px generation */
        cs_an_part_al(&k, &r, &q128, &set);
        CHECKF(k.part_al.fine == CS_FINE_LOWRES && k.part_al.side == S, "128 px twin: fine %d side %d",
               k.part_al.fine, k.part_al.side);
        cs_image_free(&t128);
    }
    /* the generation's file unknown: 64 px */
    qb.src = NULL;
    k = cand_of(1);
    cs_an_part_al(&k, &r, &qb, &set);
    CHECK(k.part_al.side == S && k.part_al.fine == CS_FINE_NOT_ASKED);
    qb.src = pb;
    /* the reference's file gone: 64 px, and why */
    REQUIRE(rename(pa, moved) == 0);
    k = cand_of(1);
    cs_an_part_al(&k, &r, &qb, &set);
    CHECKF(k.part_al.fine == CS_FINE_MISSING && k.part_al.side == S && !k.part_al.replaced,
           "reference moved: fine %d side %d", k.part_al.fine, k.part_al.side);
    CHECK(!strcmp(cs_fine_name(k.part_al.fine), "64: reference source missing"));

    cs_fine_close(&fr);
    cs_an_refs_free(&r);
    cs_store_close(s);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

int main(void) {
    RUN(test_part_al_fine);
    return T_DONE();
}
