/* test_verdict_local.c — the local-feature verdict (analyze/verdict.c,
 * cs_an_verdict_local) on measured evidence built by hand, each case one
 * condition of the rule, and the keypoints a geometry leaves visible
 * (analyze/lf_verify.c, cs_lfv_visible) against a count made by hand:
 *  - a verification whose share of the visible keypoints is below
 *    lf_min_share flags only when the copy is rescaled by a SIFT scale level
 *    or more (CS_LFV_SCALE_LEVEL) and the pixels the geometry maps confirm
 *    it (cs_an_local_pixels); at the reference's own scale it stays novel;
 *  - a verification whose mapped pixels differ for half or more of the
 *    compared cells, or for a quarter or more outside a caption band, is
 *    another picture, not a copy, whatever its share;
 *  - one colour part recoloured where no caption band hides it, with the
 *    pixels left unexplained one solid area at 256 px, is a palette twin. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "analyze/fine_ref.h"
#include "analyze/lf_verify.h"
#include "analyze/match.h"
#include "analyze/settings.h"
#include "analyze/verdict.h"
#include "t.h"

/* A candidate that every other condition of the local rule lets through:
 * 30 reference keypoints, 9 verified (share 0.3 < lf_min_share), far from
 * chance, no rival, a copy shrunk to 60 % inside a new canvas (scale 0.6,
 * covering 36 % of it), colours explained by one global edit, and the
 * mapped footprint (92 of the 256 cells) compared and explained. */
static cs_an_cand embed_copy(void) {
    cs_an_cand c;
    memset(&c, 0, sizeof c);
    c.verdict = CS_V_NOVEL;
    c.rule = "";
    c.lf.inliers = 9;
    c.lf.matches = 12;
    c.lf.score = c.lf.share_visible = 0.3f;
    c.lf.visible = 30;
    c.lf.log10_nfa1 = -14;
    c.lf.coverage = 0.36f;
    c.lf.scale = 0.6f;
    c.lf.recolour = 0;
    c.lf.colour_fit = 1;
    c.lf.parts = 3;
    c.part_lf.measured = 1;
    c.part_lf.grid = 256;
    c.part_lf.cells = 92;
    return c;
}

/* the same verified at the reference's own scale, covering the generation,
 * with a share of share and cells compared cells */
static cs_an_cand covering_copy(float share, int cells) {
    cs_an_cand c = embed_copy();
    c.lf.share_visible = c.lf.score = share;
    c.lf.scale = 1;
    c.lf.coverage = 1;
    c.part_lf.cells = cells;
    return c;
}

static void test_low_share_rescaled(void) {
    cs_an_settings s;
    cs_an_settings_default(&s);
    REQUIRE(0.3 < s.lf_min_share);
    cs_an_cand c = embed_copy();
    cs_an_verdict_local(&c, &s);
    CHECKF(c.verdict == CS_V_PARTIAL && !strcmp(c.rule, "lf_partial_px"), "embed: %s (%s)", cs_verdict_name(c.verdict),
           c.rule);
    /* the same at the reference's own scale (within one level): the
     * keypoints a copy would re-detect are missing, the share rule stands */
    c = embed_copy();
    c.lf.scale = 1.0f / (float)CS_LFV_SCALE_LEVEL + 0.01f;
    cs_an_verdict_local(&c, &s);
    CHECKF(c.verdict == CS_V_NOVEL, "one level short of a rescale: %s (%s)", cs_verdict_name(c.verdict), c.rule);
    /* enlarged by a level (a crop blown up): rescaled too; covering the
     * generation, a near-copy */
    c = embed_copy();
    c.lf.scale = (float)CS_LFV_SCALE_LEVEL + 0.01f;
    c.lf.coverage = 1;
    c.part_lf.cells = 240;
    cs_an_verdict_local(&c, &s);
    CHECKF(c.verdict == CS_V_NEAR && !strcmp(c.rule, "lf_near_px"), "enlarged: %s (%s)", cs_verdict_name(c.verdict), c.rule);
    /* a part left unexplained (4 cells: an 8x8 block) is no confirmation */
    c = embed_copy();
    c.part_lf.differ = CS_LFP_MIN_CELLS;
    cs_an_verdict_local(&c, &s);
    CHECKF(c.verdict == CS_V_NOVEL, "a part differs: %s (%s)", cs_verdict_name(c.verdict), c.rule);
    /* ... unless it lies in a caption band laid over the copy */
    c = embed_copy();
    c.part_lf.differ = c.part_lf.caption_cells = 12;
    c.part_lf.caption = 1;
    cs_an_verdict_local(&c, &s);
    CHECKF(c.verdict == CS_V_PARTIAL, "caption: %s (%s)", cs_verdict_name(c.verdict), c.rule);
    /* too little of the footprint compared (a detail on a busy canvas) */
    c = embed_copy();
    c.part_lf.cells = (int)(s.lf_min_share * 0.36 * 256) - 1;
    cs_an_verdict_local(&c, &s);
    CHECKF(c.verdict == CS_V_NOVEL, "footprint barely compared: %s (%s)", cs_verdict_name(c.verdict), c.rule);
    /* colours not measured: nothing confirmed */
    c = embed_copy();
    c.lf.recolour = -1;
    cs_an_verdict_local(&c, &s);
    CHECKF(c.verdict == CS_V_NOVEL, "unmeasured: %s (%s)", cs_verdict_name(c.verdict), c.rule);
    /* a share at lf_min_share needs no pixels (the rule as before) */
    c = embed_copy();
    c.lf.scale = 1;
    c.lf.share_visible = (float)s.lf_min_share;
    c.lf.recolour = -1;
    c.part_lf.measured = 0;
    cs_an_verdict_local(&c, &s);
    CHECKF(c.verdict == CS_V_PARTIAL && !strcmp(c.rule, "lf_partial"), "share met: %s (%s)", cs_verdict_name(c.verdict),
           c.rule);
}

static void test_another_picture(void) {
    cs_an_settings s;
    cs_an_settings_default(&s);
    /* a strong verification covering the generation, but half of the mapped
     * reference's compared cells differ: no part replaced (too spread for
     * the veto), another picture */
    cs_an_cand c = covering_copy(0.6f, 200);
    c.part_lf.differ = 100;
    cs_an_verdict_local(&c, &s);
    CHECKF(c.verdict == CS_V_NOVEL, "half differs: %s (%s)", cs_verdict_name(c.verdict), c.rule);
    /* a quarter of the cells differing outside any caption band is more
     * than an edit's residue along edges and borders: the footprint holds
     * another picture's worth (a twin redrawn over a third of it, a shared
     * detail's surroundings); just under a quarter is a copy */
    c.part_lf.differ = 50;
    cs_an_verdict_local(&c, &s);
    CHECKF(c.verdict == CS_V_NOVEL, "a quarter differs: %s (%s)", cs_verdict_name(c.verdict), c.rule);
    c.part_lf.differ = 49;
    cs_an_verdict_local(&c, &s);
    CHECKF(c.verdict == CS_V_NEAR && !strcmp(c.rule, "lf_near"), "a common body: %s (%s)", cs_verdict_name(c.verdict),
           c.rule);
    /* a caption band (up to a quarter of the picture, lf_part.h condition
     * 4) is the copy's own addition: 99 differing cells, 50 of them the
     * caption's, leave 49 */
    c.verdict = CS_V_NOVEL;
    c.rule = "";
    c.part_lf.differ = 99;
    c.part_lf.caption_cells = 50;
    c.part_lf.caption = 1;
    cs_an_verdict_local(&c, &s);
    CHECKF(c.verdict == CS_V_NEAR && !strcmp(c.rule, "lf_near"), "a caption and a common body: %s (%s)",
           cs_verdict_name(c.verdict), c.rule);
}

/* One colour part recoloured beyond the global edit (lf_colour.h) is
 * tolerated for the caption band that may hide it; with no caption band and
 * the unexplained pixels one solid area at the working resolution
 * (lf_part.h: solid) it is a palette twin, no copy. */
static void test_one_colour_twin(void) {
    cs_an_settings s;
    cs_an_settings_default(&s);
    REQUIRE(s.lf_recolour_parts >= 2);
    cs_an_cand base = covering_copy(0.8f, 240);
    base.lf.parts = 4;
    base.lf.parts_recoloured = 1;
    base.part_lf.differ = base.part_lf.part = 30;
    base.part_lf.fine = CS_FINE_OK;
    base.part_lf.solid = 1;
    cs_an_cand c = base;
    cs_an_verdict_local(&c, &s);
    CHECKF(c.verdict == CS_V_NOVEL, "one colour recoloured, a solid area, no caption: %s (%s)",
           cs_verdict_name(c.verdict), c.rule);
    /* each condition alone lets the copy through */
    c = base;
    c.lf.parts_recoloured = 0; /* every colour within the global edit */
    cs_an_verdict_local(&c, &s);
    CHECKF(c.verdict == CS_V_NEAR, "no colour recoloured: %s (%s)", cs_verdict_name(c.verdict), c.rule);
    c = base;
    c.part_lf.solid = 0; /* residue spread, or a line a cell or two deep */
    cs_an_verdict_local(&c, &s);
    CHECKF(c.verdict == CS_V_NEAR, "no solid area: %s (%s)", cs_verdict_name(c.verdict), c.rule);
    c = base;
    c.part_lf.caption = 1; /* the colour may lie under the caption */
    c.part_lf.caption_cells = 10;
    cs_an_verdict_local(&c, &s);
    CHECKF(c.verdict == CS_V_NEAR, "a caption band: %s (%s)", cs_verdict_name(c.verdict), c.rule);
    c = base;
    c.part_lf.fine = CS_FINE_NOT_ASKED; /* 64 px only: too coarse to tell an area from an edge */
    cs_an_verdict_local(&c, &s);
    CHECKF(c.verdict == CS_V_NEAR, "64 px only: %s (%s)", cs_verdict_name(c.verdict), c.rule);
    c = base;
    c.lf.recolour = -1; /* colours not measured */
    cs_an_verdict_local(&c, &s);
    CHECKF(c.verdict == CS_V_NEAR, "colours not measured: %s (%s)", cs_verdict_name(c.verdict), c.rule);
}

static void test_visible(void) {
    /* 5 keypoints of size 4 on a 256 px reference */
    const float xy[5][2] = {{10, 10}, {100, 100}, {200, 50}, {250, 250}, {128, 5}};
    const float size[5] = {4, 4, 4, 4, 8};
    /* identity: all inside */
    const double id[6] = {1, 0, 0, 0, 1, 0};
    CHECK(cs_lfv_visible(xy, size, 5, id, 256, 256, 2) == 5);
    /* a crop: the reference shifted by -60 px and enlarged 1.25x, so x' =
     * 1.25 (x - 60), y' = 1.25 (y - 20): (10,10) and (128,5) land above or
     * left of the image, (250,250) below and right of 256 */
    const double crop[6] = {1.25, 0, -75, 0, 1.25, -25};
    CHECK(cs_lfv_visible(xy, size, 5, crop, 256, 256, 2) == 2);
    /* shrunk to 0.25 in a corner: all inside, but a size-4 keypoint becomes
     * 1 px, 1.5 px within the scale tolerance, below a query whose smallest
     * keypoint is 2 px; the size-8 one (2 px) stays */
    const double small[6] = {0.25, 0, 0, 0, 0.25, 0};
    CHECK(cs_lfv_visible(xy, size, 5, small, 256, 256, 2) == 1);
    /* a quarter turn onto the same square (x' = 256 - y, y' = x) keeps all;
     * onto a 256 x 128 image, those with x >= 128 fall below it */
    const double rot[6] = {0, -1, 256, 1, 0, 0};
    CHECK(cs_lfv_visible(xy, size, 5, rot, 256, 256, 2) == 5);
    CHECK(cs_lfv_visible(xy, size, 5, rot, 256, 128, 2) == 2);
}

int main(void) {
    RUN(test_low_share_rescaled);
    RUN(test_another_picture);
    RUN(test_one_colour_twin);
    RUN(test_visible);
    return T_DONE();
}
