/* test_verdict_ambig.c — the ratio test of the pixel rules (issue 13,
 * cs_an_mark_ambiguous): a picture that fits two distinct references alike
 * (a template shared by a family, a twin with another emblem) is not called
 * a copy of either, while a copy of one of them still is; two references
 * that are one picture are no rival of each other; a plain picture (no
 * informative tile) is no near-copy of a plain reference (neither by
 * near_tl2 nor by the ratio test of Gu et al.). Each case is built
 * so that the answer follows from the tile distances by construction (blocky
 * random pictures: unrelated tiles are far apart), end to end through
 * cs_an_match_batch. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/match.h"
#include "analyze/settings.h"
#include "analyze/verdict.h"
#include "t.h"

#include "test_blocks_fixture.h"

/* few references: every one is a candidate of every query */
enum { NR = 8, A = 3, B = 4, DUP1 = 5, DUP2 = 6, PLAIN = 7 };
static uint8_t thumbs[NR * D];

static void test_ambiguous(void) {
    int64_t ids[NR];
    for (int i = 0; i < NR; i++) {
        random_blocks(thumbs + (size_t)i * D, 0, 0, S, S);
        ids[i] = 1 + i;
    }
    /* A and B: one template, emblems (the 2x2 middle tiles) drawn lighter in
     * A, darker in B (+-40 grey levels: 0.157 per tile, beyond partial_tile_l2
     * and near_tl2; an offset, not new blocks, so that no crop of the
     * alignment search fits better than the picture as is) */
    uint8_t tmpl[D];
    memcpy(tmpl, thumbs + (size_t)A * D, D);
    memcpy(thumbs + (size_t)B * D, tmpl, D);
    offset(thumbs + (size_t)A * D, 16, 16, 48, 48, 40);
    offset(thumbs + (size_t)B * D, 16, 16, 48, 48, -40);
    /* DUP1, DUP2: one picture (the second a faint variant, within copy_tl2 of the first) */
    memcpy(thumbs + (size_t)DUP2 * D, thumbs + (size_t)DUP1 * D, D);
    offset(thumbs + (size_t)DUP2 * D, 0, 0, 16, 16, 5);
    memset(thumbs + (size_t)PLAIN * D, 128, D); /* a plain grey reference */
    cs_an_settings s;
    cs_an_settings_default(&s);
    cs_err err = {0};
    cs_an_refs r;
    REQUIRE(cs_an_refs_build(&r, NR, ids, thumbs, &s, &err) == 0);
    static uint8_t q[D];
    cs_an_result res;

    /* the bare template (a third emblem): 12 of 16 tiles match A and B alike */
    memcpy(q, tmpl, D);
    match(q, &res, &r, &s);
    CHECKF(res.verdict == CS_V_NOVEL, "third emblem: verdict %s (%s), best row %d, tiles %d/%d",
           cs_verdict_name(res.verdict), res.best.rule, res.best.row, res.best.tiles_matched,
           res.best.tiles_informative);
    /* the same fit without the rival: without B the partial rule holds (the
     * test above is the ratio test at work, not a far query) */
    {
        cs_an_refs r1;
        static uint8_t t1[NR * D];
        memcpy(t1, thumbs, sizeof t1);
        rng = 99;
        random_blocks(t1 + (size_t)B * D, 0, 0, S, S); /* B replaced by an unrelated picture */
        REQUIRE(cs_an_refs_build(&r1, NR, ids, t1, &s, &err) == 0);
        match(q, &res, &r1, &s);
        /* the partial rule's own test holds with no rival; the verdict is
         * still novel, now by the replaced-part veto (analyze/lf_part.h: the
         * emblem is one compact region the alignment leaves unexplained) */
        CHECKF(res.best.row == A && res.best.tiles_matched >= s.partial_min_tiles && !res.best.ambiguous &&
                   res.best.part_al.replaced && res.verdict == CS_V_NOVEL,
               "no rival: verdict %s row %d tiles %d ambiguous %d replaced %d", cs_verdict_name(res.verdict),
               res.best.row, res.best.tiles_matched, res.best.ambiguous, res.best.part_al.replaced);
        cs_an_refs_free(&r1);
    }

    /* a copy of A with its bottom row of tiles changed: A's emblem is there,
     * B fits 8 tiles against A's 12 -> partial copy of A */
    memcpy(q, thumbs + (size_t)A * D, D);
    offset(q, 0, 48, S, S, 35); /* 0.137 per tile */
    match(q, &res, &r, &s);
    CHECKF(res.verdict == CS_V_PARTIAL && res.best.row == A, "partial copy of A: verdict %s (%s) row %d",
           cs_verdict_name(res.verdict), res.best.rule, res.best.row);

    /* near_tl2: A and B differ by +-0.1 in one tile; the template sits at 0.1 from both */
    static uint8_t t2[NR * D];
    memcpy(t2, thumbs, sizeof t2);
    memcpy(t2 + (size_t)A * D, tmpl, D);
    memcpy(t2 + (size_t)B * D, tmpl, D);
    offset(t2 + (size_t)A * D, 0, 0, 16, 16, 25);  /* +0.098 */
    offset(t2 + (size_t)B * D, 0, 0, 16, 16, -25); /* -0.098: A to B 0.196 > near_tl2 */
    cs_an_refs r2;
    REQUIRE(cs_an_refs_build(&r2, NR, ids, t2, &s, &err) == 0);
    match(tmpl, &res, &r2, &s);
    CHECKF(res.verdict == CS_V_NOVEL, "between A and B: verdict %s (%s) d_al %g", cs_verdict_name(res.verdict),
           res.best.rule, res.best.d_al);
    /* a near copy of A (0.06 from it, 0.16 from B) stays a near-copy of A */
    memcpy(q, tmpl, D);
    offset(q, 0, 0, 16, 16, 10);
    offset(q, 16, 0, 32, 16, 15);
    match(q, &res, &r2, &s);
    CHECKF(res.verdict == CS_V_NEAR && res.best.row == A && !strcmp(res.best.rule, "near_tl2"),
           "near copy of A: verdict %s (%s) row %d d_al %g", cs_verdict_name(res.verdict), res.best.rule,
           res.best.row, res.best.d_al);
    cs_an_refs_free(&r2);

    /* DUP1 and DUP2 are one picture: a near copy of it is flagged (no rival) */
    memcpy(q, thumbs + (size_t)DUP1 * D, D);
    offset(q, 16, 16, 32, 32, 20); /* 0.078 from both */
    match(q, &res, &r, &s);
    CHECKF(res.verdict == CS_V_NEAR && (res.best.row == DUP1 || res.best.row == DUP2),
           "near copy of a duplicated reference: verdict %s (%s) row %d", cs_verdict_name(res.verdict),
           res.best.rule, res.best.row);

    /* a plain picture 0.06 from the plain reference: no informative tile, no near-copy */
    memset(q, 143, D);
    match(q, &res, &r, &s);
    CHECKF(res.verdict == CS_V_NOVEL, "plain: verdict %s (%s) row %d d_al %g", cs_verdict_name(res.verdict),
           res.best.rule, res.best.row, res.best.d_al);
    cs_an_refs_free(&r);
}

int main(void) {
    RUN(test_ambiguous);
    return T_DONE();
}
