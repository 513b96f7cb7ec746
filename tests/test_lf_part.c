/* test_lf_part.c — the replaced-part veto (analyze/lf_part.h, verdict.c).
 *
 * 1. cs_lfp_measure on constructed residual maps: one compact blob inside
 *    the picture is a replaced part; the same blob as a band along the
 *    bottom is a caption; thin residue along every edge (blur) and specks
 *    (JPEG) are not a part; nor is a region over most of the picture (no
 *    common body) or lines one pixel thin (no area).
 * 2. End to end through cs_an_match_batch, with constructed thumbnails: a
 *    template (a folder-like body of flat 8 px blocks on a plain page) with
 *    glyph A is the reference. The same template with glyph B (a 16 px
 *    square of other colours) aligns within near_tl2 — the pixel rule alone
 *    would call it a near-copy (checked) — but its residue is one compact
 *    region: not a copy. The template with glyph A under a caption band
 *    along the bottom, and the template with glyph A under a global
 *    brightness/contrast edit, stay flagged with the reference. The
 *    measurement is made only where a verdict hangs on it (an_part.h).
 * 3. The quick colour fit of the measurement answers as the full one.
 * 4. The working resolution (analyze/fine_ref.h): a template twin whose
 *    emblem is a fine pattern (12 px squares at 256 px, under 3 thumbnail
 *    pixels, so no thumbnail pixel of it is flat) replaced by other colours
 *    is no part at 64 px (as issue 13's twins: its cells are never
 *    compared) and a part at 256 px; the copy under a brightness edit and
 *    noise is none at 256 px. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/an_part.h"
#include "analyze/fine_ref.h"
#include "analyze/lf_colour.h"
#include "analyze/lf_part.h"
#include "analyze/match.h"
#include "analyze/settings.h"
#include "analyze/verdict.h"
#include "core/image.h"
#include "t.h"

#define BLOCKS_SEED 1313
#include "test_blocks_fixture.h"
#include "test_fine_fixture.h"

static void fill(uint8_t *p, int x0, int y0, int x1, int y1, const uint8_t c[3]) {
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) memcpy(p + (y * S + x) * 3, c, 3);
}

/* cell (cx, cy) of the 4 px grid: solid (all 16 px unexplained) or a line
 * (its top row unexplained, the rest not compared: an outline's residue) */
static void cell(uint8_t *map, int cx, int cy, int solid) {
    for (int y = 0; y < CS_LFP_CELL; y++)
        memset(map + (cy * CS_LFP_CELL + y) * S + cx * CS_LFP_CELL, solid ? 2 : y == 0 ? 2 : 0, CS_LFP_CELL);
}

/* condition 3b (cs_lfp_shape): a region of another shape that fills less
 * than half of its box is a part replaced when it is solid and no colour
 * of the reference was recoloured */
static void test_shape(void) {
    static uint8_t map[S * S];
    cs_lfp p;
    /* a U of 7 solid cells in a 5 x 3 box (a face's other eyes and mouth, linked) */
    static const int u[7][2] = {{0, 0}, {4, 0}, {0, 1}, {4, 1}, {1, 2}, {2, 2}, {3, 2}};
    memset(map, 1, sizeof map);
    for (int k = 0; k < 7; k++) cell(map, 5 + u[k][0], 6 + u[k][1], 1);
    cs_lfp_measure(map, S, &p);
    CHECKF(p.part == 7 && p.thick == 7 && !p.replaced && p.shape, "U: part %d solid %d replaced %d shape %d", p.part,
           p.thick, p.replaced, p.shape);
    cs_lfp q = p;
    cs_lfp_shape(&q, 0);
    CHECKF(q.replaced, "U, no colour recoloured: replaced %d", q.replaced);
    q = p;
    cs_lfp_shape(&q, 1);
    CHECKF(!q.replaced, "U, a colour recoloured wherever it occurs (a colour edit's error): replaced %d", q.replaced);
    q = p;
    cs_lfp_shape(&q, -1);
    CHECKF(!q.replaced, "U, colours unknown: replaced %d", q.replaced);
    /* the same U as an outline's residue: thin lines, one solid cell (so
     * condition 6 holds): not solid, no shape */
    memset(map, 1, sizeof map);
    for (int k = 0; k < 7; k++) cell(map, 5 + u[k][0], 6 + u[k][1], k == 0);
    cs_lfp_measure(map, S, &p);
    cs_lfp_shape(&p, 0);
    CHECKF(p.part == 7 && p.area && p.thick == 1 && !p.shape && !p.replaced,
           "outline: part %d area %d solid %d shape %d replaced %d", p.part, p.area, p.thick, p.shape, p.replaced);
    /* solid cells along the diagonal of the whole picture (an edit's error
     * along a row of shapes, linked): solid, no band, a common body, but
     * its box spans the picture both ways (14 of 16 cells), so no place of
     * it: no shape */
    memset(map, 1, sizeof map);
    for (int k = 1; k < 15; k++) cell(map, k, k, 1);
    cs_lfp_measure(map, S, &p);
    cs_lfp_shape(&p, 0);
    CHECKF(p.part == 14 && p.thick == 14 && 2 * p.differ < p.cells && !p.shape && !p.replaced,
           "diagonal: part %d solid %d differ %d of %d, shape %d replaced %d", p.part, p.thick, p.differ, p.cells,
           p.shape, p.replaced);
    /* a shorter run (a face's features): its box leaves more than a
     * quarter of the picture outside it (12 of 16 cells), a shape */
    memset(map, 1, sizeof map);
    for (int k = 0; k < 12; k++) cell(map, 2 + k, 2 + k, 1);
    cs_lfp_measure(map, S, &p);
    cs_lfp_shape(&p, 0);
    CHECKF(p.part == 12 && p.shape && p.replaced, "a short diagonal: part %d shape %d replaced %d", p.part, p.shape,
           p.replaced);
}

/* condition 2 counts no band: a compact part replaced (a 16 px glyph) and,
 * apart from it, a strip of unexplained cells along each side of the page
 * (an outline registered a pixel or two off, condition 3's band), which
 * together outnumber the part (24 cells to 16): the part is replaced. The
 * residue as three blocks of 3 x 3 cells (an edit's residue as areas,
 * JPEG's blocks, no band) still compete with it: no part replaced. */
static void test_band_residue(void) {
    static uint8_t map[S * S];
    cs_lfp p;
    for (int blocks = 0; blocks < 2; blocks++) {
        memset(map, 1, sizeof map);
        for (int y = 24; y < 40; y++) memset(map + y * S + 24, 2, 16); /* the part: cells 6..9 */
        if (!blocks)
            for (int y = 8; y < 56; y++) memset(map + y * S + 4, 2, 4), memset(map + y * S + 56, 2, 4);
        else /* three blocks of 3 x 3 cells in the corners */
            for (int y = 0; y < 12; y++)
                memset(map + (4 + y) * S + 4, 2, 12), memset(map + (4 + y) * S + 48, 2, 12),
                    memset(map + (48 + y) * S + 4, 2, 12);
        cs_lfp_measure(map, S, &p);
        if (!blocks)
            CHECKF(p.part == 16 && p.differ == 40 && p.replaced, "part and two side strips: part %d of %d, replaced %d",
                   p.part, p.differ, p.replaced);
        else
            CHECKF(p.part == 16 && p.differ == 43 && !p.replaced, "part and three blocks: part %d of %d, replaced %d",
                   p.part, p.differ, p.replaced);
    }
}

/* a caption written on the copy before it was rotated or set into a new
 * canvas lies along the copy's own top, not the generation's: the compared
 * picture's top edge descends to the right (a tilt of 1 in 4) and a block of
 * text 4 x 3 cells sits under it, touching it in its columns but not the
 * top of the grid: a caption, not a part. The same block in the middle of
 * the picture is a part. So is it in a copy set into a new canvas (the
 * compared picture rows 12..59): under the copy's top, a caption. */
static void test_caption_own_edge(void) {
    static uint8_t map[S * S];
    cs_lfp p;
    for (int k = 0; k < 3; k++) {
        memset(map, 0, sizeof map);
        for (int y = 0; y < S; y++)
            for (int x = 4; x < 60; x++)
                if (k < 2 ? 4 * y >= 32 + x && y < 60 : y >= 12 && y < 60) map[y * S + x] = 1;
        int y0 = k == 0 ? 16 : k == 1 ? 36 : 12;
        for (int y = y0; y < y0 + 12; y++) memset(map + y * S + 16, 2, 16);
        cs_lfp_measure(map, S, &p);
        if (k == 1)
            CHECKF(!p.caption && p.replaced && p.part == 12, "the block in the tilted picture's middle: caption %d replaced %d part %d",
                   p.caption, p.replaced, p.part);
        else
            CHECKF(p.caption && !p.replaced, "%s: caption %d replaced %d part %d (box %d..%d x %d..%d)",
                   k ? "text under the top of a copy in a new canvas" : "text under a tilted top", p.caption,
                   p.replaced, p.part, p.box[0], p.box[2], p.box[1], p.box[3]);
    }
    /* a copy rotated by 14 degrees inside the grid, its border resampled: a
     * line of residue along the lower part of its steep right side lies
     * several rows above the bottom of its columns, but along the side, not
     * across the picture: no caption */
    memset(map, 0, sizeof map);
    const double c = 0.970, sn = 0.242;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            double u = (x - 31.5) * c + (y - 31.5) * sn, v = -(x - 31.5) * sn + (y - 31.5) * c;
            if (u >= -20 && u <= 20 && v >= -20 && v <= 20) map[y * S + x] = u >= 16 && v >= 4 ? 2 : 1;
        }
    cs_lfp_measure(map, S, &p);
    CHECKF(!p.caption && p.part > 0, "a border line along a steep side: caption %d part %d (box %d..%d x %d..%d)",
           p.caption, p.part, p.box[0], p.box[2], p.box[1], p.box[3]);
}

/* solid (the colour twin of one part, verdict.c): an area left
 * unexplained, band or not, at least 3 cells deep; a strip of 1-2 cells
 * (a registration error along an outline), lines, or residue spanning the
 * picture both ways is none */
static void test_solid(void) {
    static uint8_t map[S * S];
    cs_lfp p;
    memset(map, 1, sizeof map); /* a band 3 cells deep across the middle: elongated, no part, but an area */
    memset(map + 28 * S, 2, 12 * S);
    cs_lfp_measure(map, S, &p);
    CHECKF(p.solid && !p.replaced && !p.caption, "middle band 3 deep: solid %d replaced %d", p.solid, p.replaced);
    memset(map, 1, sizeof map); /* 2 cells deep: a strip */
    memset(map + 28 * S, 2, 8 * S);
    cs_lfp_measure(map, S, &p);
    CHECKF(!p.solid && !p.replaced, "middle band 2 deep: solid %d replaced %d", p.solid, p.replaced);
    memset(map, 1, sizeof map); /* the 3-deep band drawn as lines (each cell's top row): no area */
    for (int cy = 7; cy < 10; cy++)
        for (int cx = 0; cx < S / CS_LFP_CELL; cx++) cell(map, cx, cy, 0);
    cs_lfp_measure(map, S, &p);
    CHECKF(!p.solid, "band of lines: solid %d (thick %d of %d)", p.solid, p.thick, p.part);
    memset(map, 1, sizeof map); /* a blob is solid too (and replaced) */
    for (int y = 16; y < 32; y++) memset(map + y * S + 16, 2, 16);
    cs_lfp_measure(map, S, &p);
    CHECKF(p.solid && p.replaced, "blob: solid %d replaced %d", p.solid, p.replaced);
    memset(map, 1, sizeof map); /* a caption band along the bottom is set aside: nothing solid is left */
    for (int y = 52; y < 64; y++) memset(map + y * S, 2, S);
    cs_lfp_measure(map, S, &p);
    CHECKF(p.caption && !p.solid, "caption: caption %d solid %d", p.caption, p.solid);
    memset(map, 1, sizeof map); /* a cross spanning the picture both ways: residue, not one place */
    for (int y = 0; y < S; y++) memset(map + y * S + 28, 2, 12);
    memset(map + 28 * S, 2, 12 * S);
    cs_lfp_measure(map, S, &p);
    CHECKF(!p.solid, "cross over the picture: solid %d (box %d..%d x %d..%d)", p.solid, p.box[0], p.box[2], p.box[1],
           p.box[3]);
}

static void test_maps(void) {
    static uint8_t map[S * S];
    cs_lfp p;
    /* everything explained */
    memset(map, 1, sizeof map);
    cs_lfp_measure(map, S, &p);
    CHECKF(p.cells == 256 && p.differ == 0 && !p.replaced, "clean: cells %d differ %d", p.cells, p.differ);
    /* one 16x16 blob in the middle: a part replaced */
    for (int y = 24; y < 40; y++) memset(map + y * S + 20, 2, 16);
    cs_lfp_measure(map, S, &p);
    CHECKF(p.part == 16 && p.replaced && !p.caption && p.box[0] == 5 && p.box[1] == 6 && p.box[2] == 8 && p.box[3] == 9,
           "blob: part %d replaced %d box %d,%d-%d,%d", p.part, p.replaced, p.box[0], p.box[1], p.box[2], p.box[3]);
    /* the blob's outline not compared (an edge): still one part */
    for (int y = 24; y < 40; y++) map[y * S + 27] = map[y * S + 28] = 0;
    cs_lfp_measure(map, S, &p);
    CHECKF(p.part == 16 && p.replaced, "blob split by an edge: part %d replaced %d", p.part, p.replaced);
    /* a band along the bottom, 12 px: a caption */
    memset(map, 1, sizeof map);
    memset(map + 52 * S, 2, 12 * S);
    cs_lfp_measure(map, S, &p);
    CHECKF(p.caption && !p.replaced && p.part == 48, "caption: caption %d replaced %d part %d", p.caption, p.replaced, p.part);
    /* the same caption over a picture with a part replaced: the band is set
     * aside, the part judged */
    for (int y = 24; y < 40; y++) memset(map + y * S + 20, 2, 16);
    cs_lfp_measure(map, S, &p);
    CHECKF(p.caption && p.replaced && p.part == 16, "caption and part: caption %d replaced %d part %d", p.caption,
           p.replaced, p.part);
    /* a caption band in pieces (a brightened bottom quarter partly within
     * the tolerance): a piece that does not touch the edge but lies in the
     * rows the band spans is the band, not a part */
    memset(map, 1, sizeof map);
    for (int y = 48; y < 64; y++) memset(map + y * S, 2, 16);
    for (int y = 48; y < 56; y++) memset(map + y * S + 32, 2, 8);
    cs_lfp_measure(map, S, &p);
    CHECKF(p.caption && !p.replaced, "caption in pieces: caption %d replaced %d part %d", p.caption, p.replaced, p.part);
    /* a band in the middle of the picture, or a strip along a side (a
     * rotation's border), is no part either: elongated */
    memset(map, 1, sizeof map);
    memset(map + 28 * S, 2, 12 * S);
    cs_lfp_measure(map, S, &p);
    CHECKF(!p.caption && !p.replaced, "middle band: caption %d replaced %d", p.caption, p.replaced);
    memset(map, 1, sizeof map);
    for (int y = 16; y < 64; y++) memset(map + y * S + 56, 2, 8);
    cs_lfp_measure(map, S, &p);
    CHECKF(!p.caption && !p.replaced && p.part == 24, "side strip: replaced %d part %d", p.replaced, p.part);
    /* a square blob of a quarter of the picture is a part */
    memset(map, 1, sizeof map);
    for (int y = 16; y < 48; y++) memset(map + y * S + 16, 2, 32);
    cs_lfp_measure(map, S, &p);
    CHECKF(p.replaced && p.part == 64, "quarter blob: replaced %d part %d", p.replaced, p.part);
    /* no common body left: a blob over more than half of the compared cells
     * (48x48 px = 144 of 256) is another picture, not a part replaced; the
     * same at 44x44 px (121 cells) is a part */
    memset(map, 1, sizeof map);
    for (int y = 8; y < 56; y++) memset(map + y * S + 8, 2, 48);
    cs_lfp_measure(map, S, &p);
    CHECKF(!p.replaced && p.part == 144 && p.differ == 144, "most of the picture: replaced %d part %d", p.replaced,
           p.part);
    memset(map, 1, sizeof map);
    for (int y = 8; y < 52; y++) memset(map + y * S + 8, 2, 44);
    cs_lfp_measure(map, S, &p);
    CHECKF(p.replaced && p.part == 121, "under half of the picture: replaced %d part %d", p.replaced, p.part);
    /* lines one pixel thin through a compact chain of cells (the middle
     * rows of two 3 px stripes, the only rows flat enough to compare, their
     * colour washed out by blur and JPEG): no area, no part; the same with
     * the two rows adjacent (a 2x2 block of unexplained pixels) is a part */
    for (int adj = 0; adj < 2; adj++) {
        memset(map, 1, sizeof map);
        for (int y = 8; y < 16; y++) memset(map + y * S + 24, 0, 16);
        memset(map + (adj ? 11 : 10) * S + 24, 2, 16);
        memset(map + (adj ? 12 : 13) * S + 24, 2, 16);
        cs_lfp_measure(map, S, &p);
        CHECKF(p.part == 8 && p.area == adj && p.replaced == adj, "lines, adjacent %d: part %d area %d replaced %d", adj,
               p.part, p.area, p.replaced);
    }
    /* nothing alike: every cell differs */
    memset(map, 2, sizeof map);
    cs_lfp_measure(map, S, &p);
    CHECKF(!p.replaced && p.part == 256, "all differs: replaced %d part %d", p.replaced, p.part);
    /* blur: a one-cell ring along the outline of a large shape, not compact */
    memset(map, 1, sizeof map);
    for (int i = 8; i < 56; i++) {
        memset(map + 8 * S + i, 2, 1), memset(map + 55 * S + i, 2, 1);
        for (int k = 8; k < 12; k++) map[k * S + i] = map[(k + 44) * S + i] = map[i * S + k] = map[i * S + k + 44] = 2;
    }
    cs_lfp_measure(map, S, &p);
    CHECKF(!p.replaced && p.part >= 40, "outline ring: part %d of box, replaced %d", p.part, p.replaced);
    /* JPEG: isolated specks, one cell each */
    memset(map, 1, sizeof map);
    for (int k = 0; k < 12; k++) {
        int cx = (int)(rnd() % 8) * 2, cy = (int)(rnd() % 8) * 2;
        for (int y = 0; y < 4; y++) memset(map + (cy * 4 + y) * S + cx * 4, 2, 4);
    }
    cs_lfp_measure(map, S, &p);
    CHECKF(!p.replaced && p.part < CS_LFP_MIN_CELLS, "specks: part %d replaced %d", p.part, p.replaced);
}

enum { NR = 6, TM = 0 };
static uint8_t thumbs[NR * D];

/* the template: a body of flat 8 px blocks */
static void template(uint8_t *p) {
    random_blocks(p, 0, 0, S, S);
}

static void test_twins(void) {
    int64_t ids[NR];
    for (int i = 0; i < NR; i++) {
        random_blocks(thumbs + (size_t)i * D, 0, 0, S, S);
        ids[i] = 1 + i;
    }
    static uint8_t body[D], q[D];
    template(body);
    memcpy(thumbs + (size_t)TM * D, body, D);
    random_blocks(thumbs + (size_t)TM * D, 32, 32, 48, 48); /* glyph A: one tile */
    static const uint8_t dark[3] = {30, 30, 30};
    fill(thumbs + (size_t)TM * D, 36, 36, 44, 44, dark);
    cs_an_settings s;
    cs_an_settings_default(&s);
    /* a lenient pixel rule (the tiled L2 of these blocky pictures weighs an
     * 8 px glyph like a photograph's whole object): the twin (0.23 from the
     * template) passes it, so the veto alone must decide; the unrelated
     * random pictures (0.30 and beyond) do not, as at the default 0.12 (the
     * veto is no rule against unrelated pictures: condition 5) */
    s.near_tl2 = 0.25;
    cs_err err = {0};
    cs_an_refs r;
    REQUIRE(cs_an_refs_build(&r, NR, ids, thumbs, &s, &err) == 0);
    cs_an_result res;

    /* glyph B on the same template */
    memcpy(q, thumbs + (size_t)TM * D, D);
    static const uint8_t light[3] = {200, 120, 90};
    fill(q, 36, 36, 44, 44, light);
    match(q, &res, &r, &s);
    CHECKF(res.best.row == TM && res.best.d_al <= s.near_tl2 && res.best.tiles_informative > 0,
           "twin: the pixel rule's own test passes (row %d d_al %.3f)", res.best.row, res.best.d_al);
    CHECKF(res.best.part_al.replaced && res.verdict == CS_V_NOVEL,
           "twin: replaced %d (part %d of %d differing) verdict %s (%s)", res.best.part_al.replaced,
           res.best.part_al.part, res.best.part_al.differ, cs_verdict_name(res.verdict), res.best.rule);

    /* glyph A under a caption along the bottom (text drawn over the picture:
     * dark letters 4 px wide, 6 px high, in the bottom 8 px) */
    memcpy(q, thumbs + (size_t)TM * D, D);
    static const uint8_t ink[3] = {20, 20, 20};
    for (int x = 2; x < 60; x += 6) fill(q, x, 57, x + 4, 63, ink);
    match(q, &res, &r, &s);
    CHECKF(res.best.row == TM && res.verdict >= CS_V_PARTIAL && !res.best.part_al.replaced &&
               res.best.part_al.caption,
           "caption: row %d verdict %s (%s) d_al %.3f tiles %d/%d/%d caption %d part %d", res.best.row, cs_verdict_name(res.verdict),
           res.best.rule, res.best.d_al, res.best.tiles_matched, res.best.tiles_informative, res.best.tiles_content, res.best.part_al.caption, res.best.part_al.part);

    /* glyph A under a global contrast/brightness edit: explained by the colour fit */
    memcpy(q, thumbs + (size_t)TM * D, D);
    for (int i = 0; i < D; i++) q[i] = (uint8_t)(0.8 * q[i] + 30);
    match(q, &res, &r, &s);
    CHECKF(res.best.row == TM && res.verdict >= CS_V_NEAR && !res.best.part_al.replaced,
           "brightness: row %d verdict %s (%s) part %d", res.best.row, cs_verdict_name(res.verdict), res.best.rule,
           res.best.part_al.part);

    /* the measurement is asked only where a verdict hangs on it
     * (analyze/an_part.h): not for an exact copy (copy_tl2, never vetoed),
     * not for an unrelated reference (no rule flags it), yes for the twin */
    static cs_an_query qq;
    float *qp = malloc(sizeof(float) * 2 * (size_t)cs_tl2_dim(&r.cfg)), q16[2 * CS_AN_Q16];
    REQUIRE(qp);
    cs_an_settings s0; /* the defaults: nothing flags the unrelated reference */
    cs_an_settings_default(&s0);
    const struct {
        const char *what;
        const cs_an_settings *s;
        int row, glyph, measured, verdict;
    } cases[] = {{"exact copy", &s, TM, 0, 0, CS_V_COPY}, {"unrelated", &s0, TM + 1, 0, 0, CS_V_NOVEL},
                 {"twin", &s, TM, 1, 1, CS_V_NOVEL}};
    for (int k = 0; k < 3; k++) {
        memcpy(qq.thumb, thumbs + (size_t)TM * D, D);
        if (cases[k].glyph) fill(qq.thumb, 36, 36, 44, 44, light);
        cs_an_query_prep(qp, qp + cs_tl2_dim(&r.cfg), q16, &qq, &r.cfg);
        cs_an_cand c;
        memset(&c, 0, sizeof c);
        c.row = cases[k].row;
        c.emb_cos = -2;
        cs_an_verify(&c, &r, 1, qp, qp + cs_tl2_dim(&r.cfg), q16, &qq, 100, cases[k].s);
        CHECKF(c.part_al.measured == cases[k].measured && c.verdict == cases[k].verdict &&
                   (!cases[k].measured || c.part_al.replaced),
               "%s: measured %d replaced %d verdict %s (%s)", cases[k].what, c.part_al.measured, c.part_al.replaced,
               cs_verdict_name(c.verdict), c.rule);
    }
    free(qp);
    cs_an_refs_free(&r);
}

/* The part measurement's quick colour fit (cs_lfc_measure_map_few with
 * CS_LFP_MIN_PX: no hue rotation, then the mode of the hue differences and
 * its neighbours, stopping once too few pixels are left for a part) gives
 * the answer of the full 72-rotation search, on pairs of every kind: the
 * same picture under noise, under a brightness/contrast edit and a hue
 * rotation, with one part replaced, with a caption, unrelated. */
static void test_early_stop(void) {
    static uint8_t ref[D], gen[D], map[S * S];
    int stopped_same = 0;
    for (int trial = 0; trial < 24; trial++) {
        random_blocks(ref, 0, 0, S, S);
        memcpy(gen, ref, D);
        int kind = trial % 6;
        if (kind == 0) /* noise of a few levels */
            for (int i = 0; i < D; i++) gen[i] = (uint8_t)(gen[i] + rnd() % 7 - 3 + (gen[i] < 3 ? 3 : 0));
        if (kind == 1)
            for (int i = 0; i < D; i++) gen[i] = (uint8_t)(0.7 * gen[i] + 40);
        if (kind == 2) /* a hue rotation: the channels cycled */
            for (int i = 0; i < D; i += 3) gen[i] = ref[i + 1], gen[i + 1] = ref[i + 2], gen[i + 2] = ref[i];
        if (kind == 3) random_blocks(gen, 16 + 8 * (trial % 3), 16, 40 + 8 * (trial % 3), 40);
        if (kind == 4)
            for (int x = 2; x < 60; x += 6) {
                static const uint8_t ink[3] = {20, 20, 20};
                fill(gen, x, 57, x + 4, 63, ink);
            }
        if (kind == 5) random_blocks(gen, 0, 0, S, S);
        const double m[6] = {1, 0, 0, 0, 1, 0};
        cs_lfc a, b;
        cs_lfp pa, pb;
        cs_lfc_measure_map(ref, S, S, gen, S, S, S, m, 0.1, &a, map);
        cs_lfp_measure(map, S, &pa);
        cs_lfc_measure_map_few(ref, S, S, gen, S, S, S, m, 0.1, CS_LFP_MIN_PX, &b, map);
        cs_lfp_measure(map, S, &pb);
        CHECKF(pa.replaced == pb.replaced && (kind != 3 || pa.replaced) && (kind == 3 || !pa.replaced),
               "trial %d kind %d: replaced full %d early %d", trial, kind, pa.replaced, pb.replaced);
        stopped_same += b.fit == a.fit;
    }
    printf("  %d of 24 pairs: the quick search found the full search's fit (every answer the same)\n", stopped_same);
}

/* a caption's text set a few pixels below the top edge (its first working
 * rows blank), measured at 256 px: a band along the top, set aside as at
 * 64 px, not a replaced part (s1 q0494: the text at 12-27 px of 256, cells
 * 3-6 of 64; "touching" is within one thumbnail cell, lf_part.c); the same
 * block in the middle of the picture is a part */
static void test_caption_fine(void) {
    enum { F = CS_FINE_SIDE };
    static uint8_t map[F * F];
    for (int dy = 0; dy <= 100; dy += 100) {
        memset(map, 1, sizeof map);
        for (int y = 12 + dy; y < 28 + dy; y++)
            for (int x = 12; x < 52; x++) map[y * F + x] = 2;
        cs_lfp p;
        cs_lfp_measure(map, F, &p);
        if (!dy)
            CHECKF(p.caption && !p.replaced, "text 12 px below the top: caption %d, replaced %d (part %d, box %d..%d x %d..%d)",
                   p.caption, p.replaced, p.part, p.box[0], p.box[2], p.box[1], p.box[3]);
        else
            CHECKF(!p.caption && p.replaced, "the block in the middle: caption %d, replaced %d", p.caption, p.replaced);
    }
}

static void test_fine_twin(void) {
    enum { F = CS_FINE_SIDE };
    static uint8_t a[F * F * 3], b[F * F * 3], c[F * F * 3], map[S * S];
    const uint8_t blue[3] = {40, 40, 160}, white[3] = {250, 250, 250}, red[3] = {170, 30, 30}, green[3] = {30, 150, 40};
    fine_template(a, blue, white);
    fine_template(b, red, green); /* the twin: another emblem */
    for (int i = 0; i < F * F * 3; i++) /* the copy: brightness/contrast and noise of a few levels */
        c[i] = (uint8_t)(0.85 * a[i] + 20 + (int)(rnd() % 5) - 2);
    const double m[6] = {1, 0, 0, 0, 1, 0};
    cs_err err = {0};
    cs_image ia = {.w = F, .h = F, .rgb = a}, ib = {.w = F, .h = F, .rgb = b}, ta = {0}, tb = {0};
    REQUIRE(cs_image_resize(&ta, &ia, S, S, CS_RESIZE_AREA, &err) == 0);
    REQUIRE(cs_image_resize(&tb, &ib, S, S, CS_RESIZE_AREA, &err) == 0);
    /* 64 px, as cs_an_refine measures part_lf: no part, and a common body */
    cs_lfc k;
    cs_lfp p64, p256, pc;
    cs_lfc_measure_map(ta.rgb, F, F, tb.rgb, F, F, S, m, 0.1, &k, map);
    cs_lfp_measure(map, S, &p64);
    cs_lfp_shape(&p64, k.recolour >= 0 ? k.parts_recoloured : -1);
    cs_an_settings set;
    cs_an_settings_default(&set);
    CHECKF(!p64.replaced && !cs_an_part_other(&p64, &set) && k.parts_recoloured < set.lf_recolour_parts,
           "64 px already sees the twin: replaced %d, differ %d of %d, recoloured %d", p64.replaced, p64.differ,
           p64.cells, k.parts_recoloured);
    /* 256 px: the emblem is a replaced part */
    cs_an_part_fine(a, F, F, b, F, F, m, set.lf_colour_tol, &p256);
    CHECKF(p256.fine == CS_FINE_OK && p256.side == F && p256.replaced && cs_an_part_other(&p256, &set),
           "256 px: replaced %d (part %d cells, box %d..%d x %d..%d, area %d), differ %d of %d", p256.replaced,
           p256.part, p256.box[0], p256.box[2], p256.box[1], p256.box[3], p256.area, p256.differ, p256.cells);
    /* the copy is no other picture at 256 px, and its pixels confirm it (fewer than a part's cells differ) */
    cs_an_part_fine(a, F, F, c, F, F, m, set.lf_colour_tol, &pc);
    CHECKF(!pc.replaced && !cs_an_part_other(&pc, &set) && pc.differ < CS_LFP_MIN_CELLS,
           "the copy at 256 px: replaced %d, differ %d of %d", pc.replaced, pc.differ, pc.cells);
    cs_image_free(&ta), cs_image_free(&tb);
}

int main(void) {
    RUN(test_fine_twin);
    RUN(test_caption_fine);
    RUN(test_maps);
    RUN(test_solid);
    RUN(test_band_residue);
    RUN(test_caption_own_edge);
    RUN(test_shape);
    RUN(test_twins);
    RUN(test_early_stop);
    return T_DONE();
}
