/* test_verdict_partial.c — the partial rule of the pixel tiles (analyze/
 * verdict.c, partial_min_tiles): its share is taken over the tiles with
 * content in EITHER image. A reference that is a blank template (content in
 * its top and bottom rows of tiles, a plain middle) and a generation that is
 * the same template with a glyph drawn in the middle: every informative tile
 * of the reference matches (8 of 8, a partial copy by the old share), but 4
 * tiles of the generation's picture are not in the reference (8 of 12 < 3/4):
 * no copy. A copy of a full reference with its bottom row changed (a caption
 * band: 12 of 16) is still a partial copy. Built so that the answer follows
 * from the tile distances (blocky random pictures: unrelated tiles are far
 * apart), end to end through cs_an_match_batch. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/match.h"
#include "analyze/settings.h"
#include "analyze/verdict.h"
#include "t.h"

#include "test_blocks_fixture.h"

enum { NR = 6, TMPL = 2, FULL = 3 };
static uint8_t thumbs[NR * D];

static void test_partial_share(void) {
    int64_t ids[NR];
    for (int i = 0; i < NR; i++) {
        random_blocks(thumbs + (size_t)i * D, 0, 0, S, S);
        ids[i] = 1 + i;
    }
    /* the blank template: its two middle rows of tiles plain */
    uint8_t *tm = thumbs + (size_t)TMPL * D;
    for (int y = 16; y < 48; y++) memset(tm + y * S * 3, 128, S * 3);
    cs_an_settings s;
    cs_an_settings_default(&s);
    cs_err err = {0};
    cs_an_refs r;
    REQUIRE(cs_an_refs_build(&r, NR, ids, thumbs, &s, &err) == 0);
    static uint8_t q[D];
    cs_an_result res;

    /* the template as is: a copy */
    memcpy(q, tm, D);
    match(q, &res, &r, &s);
    CHECKF(res.verdict == CS_V_COPY && res.best.row == TMPL, "template: %s row %d", cs_verdict_name(res.verdict), res.best.row);
    /* the template with a glyph in the middle 2x2 tiles: 8 of 8 informative
     * reference tiles match, 8 of 12 tiles with content */
    memcpy(q, tm, D);
    random_blocks(q, 16, 16, 48, 48);
    match(q, &res, &r, &s);
    CHECKF(res.best.row == TMPL && res.best.tiles_matched == 8 && res.best.tiles_informative == 8 &&
               res.best.tiles_content == 12,
           "glyph on the template: row %d tiles %d/%d, content %d", res.best.row, res.best.tiles_matched,
           res.best.tiles_informative, res.best.tiles_content);
    CHECKF(res.verdict == CS_V_NOVEL, "glyph on the template: verdict %s (%s)", cs_verdict_name(res.verdict), res.best.rule);
    /* a copy of a full reference with its bottom row of tiles changed (0.137 per tile) */
    memcpy(q, thumbs + (size_t)FULL * D, D);
    offset(q, 0, 48, S, S, 35);
    match(q, &res, &r, &s);
    CHECKF(res.verdict == CS_V_PARTIAL && res.best.row == FULL && !strcmp(res.best.rule, "partial_min_tiles"),
           "caption band: verdict %s (%s) row %d tiles %d/%d content %d", cs_verdict_name(res.verdict), res.best.rule,
           res.best.row, res.best.tiles_matched, res.best.tiles_informative, res.best.tiles_content);
    cs_an_refs_free(&r);
}

int main(void) {
    RUN(test_partial_share);
    return T_DONE();
}
