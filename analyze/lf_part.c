/* lf_part.c — a replaced part vs spread residue (see lf_part.h). */
#include "analyze/lf_part.h"

#include <string.h>

enum { MAXC = 64 }; /* cells per side at most (S <= 256) */

/* a B x B block of unexplained pixels at (x, y) */
static int block(const uint8_t *map, int S, int x, int y, int B) {
    for (int v = y; v < y + B; v++)
        for (int u = x; u < x + B; u++)
            if (map[v * S + u] != 2) return 0;
    return 1;
}

void cs_lfp_measure(const uint8_t *map, int S, cs_lfp *out) {
    memset(out, 0, sizeof *out);
    out->measured = 1;
    out->side = S;
    out->recoloured = -1;
    /* A cell is the least area judged, CS_LFP_CELL x CS_LFP_CELL pixels
     * of the image compared, at any S: at the 64 px thumbnail that is 1/16
     * of the side, because the thumbnail resolves no less; at the 256 px
     * working image (analyze/fine_ref.h) 1/64, so that a twin's other glyph
     * drawn in strokes a few pixels wide makes cells most of whose pixels
     * differ, where a 1/16 cell of the working image holds the strokes and
     * the plain body between them (issue 13: the folders' and documents'
     * emblems). The conditions keep their pixel sizes (a part of
     * CS_LFP_MIN_CELLS cells is an 8x8 pixel block, condition 6 a 2x2 one)
     * and the relative ones (a caption's quarter, the box's ratio, halves)
     * their shares of the picture. */
    const int CELL = CS_LFP_CELL, B = 2;
    /* Regions connect as at the thumbnail: two differing cells within one
     * thumbnail cell of each other (R = S / 64 cells of 4 px) belong to one
     * region. The strokes of one glyph, a few pixels apart, are one part,
     * as the thumbnail's coarser cells merged them; what the finer cells
     * add is which pixels differ, not more, smaller parts. At 64 px, R = 1:
     * the 8-neighbourhood, unchanged. */
    const int R = S >= 64 ? S / 64 : 1;
    const int C = S / CELL;
    if (C < 2 || C > MAXC) return;
    out->grid = C * C;
    /* state: 0 = too few compared pixels, 1 = explained, 2 = differs */
    uint8_t st[MAXC * MAXC];
    int ext[4] = {C, C, -1, -1};
    for (int cy = 0; cy < C; cy++)
        for (int cx = 0; cx < C; cx++) {
            int cmp = 0, dif = 0;
            for (int y = cy * CELL; y < (cy + 1) * CELL; y++)
                for (int x = cx * CELL; x < (cx + 1) * CELL; x++) {
                    cmp += map[y * S + x] != 0;
                    dif += map[y * S + x] == 2;
                }
            /* a quarter of the cell compared, else an edge or outside */
            int s = 4 * cmp < CELL * CELL ? 0 : 2 * dif > cmp ? 2 : 1;
            st[cy * C + cx] = (uint8_t)s;
            out->cells += s != 0;
            if (s) { /* the compared picture's extent, in cells */
                if (cx < ext[0]) ext[0] = cx;
                if (cy < ext[1]) ext[1] = cy;
                if (cx > ext[2]) ext[2] = cx;
                if (cy > ext[3]) ext[3] = cy;
            }
            out->differ += s == 2;
        }
    /* an uncompared cell between differing ones (a glyph's outline inside
     * the part) joins them: 2 or more of its 8 neighbours differ */
    uint8_t link[MAXC * MAXC];
    for (int cy = 0; cy < C; cy++)
        for (int cx = 0; cx < C; cx++) {
            int i = cy * C + cx, nd = 0;
            if (st[i]) {
                link[i] = st[i] == 2;
                continue;
            }
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int y = cy + dy, x = cx + dx;
                    if ((dx || dy) && y >= 0 && x >= 0 && y < C && x < C) nd += st[y * C + x] == 2;
                }
            link[i] = nd >= 2;
        }
    /* the largest 8-connected region, counted in differing cells, that is
     * no caption band (those are set aside: a copy may carry one) */
    int lab[MAXC * MAXC], stack[MAXC * MAXC];
    memset(lab, 0, sizeof(int) * (size_t)(C * C));
    /* per region (label l = 1..nl): differing cells rn[l], box rb[l] */
    int nl = 0, rn[MAXC * MAXC / 2 + 2], rb[MAXC * MAXC / 2 + 2][4];
    for (int i = 0; i < C * C; i++) {
        if (!link[i] || lab[i] || st[i] != 2) continue;
        nl++;
        int sp = 0, n = 0, b[4] = {C, C, -1, -1};
        stack[sp++] = i;
        lab[i] = nl;
        while (sp) {
            int j = stack[--sp], jy = j / C, jx = j % C;
            if (st[j] == 2) {
                n++;
                if (jx < b[0]) b[0] = jx;
                if (jy < b[1]) b[1] = jy;
                if (jx > b[2]) b[2] = jx;
                if (jy > b[3]) b[3] = jy;
            }
            for (int dy = -R; dy <= R; dy++)
                for (int dx = -R; dx <= R; dx++) {
                    int y = jy + dy, x = jx + dx;
                    if (y < 0 || x < 0 || y >= C || x >= C) continue;
                    int k = y * C + x;
                    if (link[k] && !lab[k]) {
                        lab[k] = nl;
                        stack[sp++] = k;
                    }
                }
        }
        rn[nl] = n;
        memcpy(rb[nl], b, sizeof b);
    }
    /* caption bands: a region touching the top or bottom, no taller than a
     * quarter; the rows they span (top: 0..top_end, bottom: bot_start..C-1)
     * hold the caption, and every region inside those rows is a piece of it */
    /* "touching" is a share of the picture, as the quarter is: within one
     * thumbnail cell of the edge (R cells: the first row at 64 px, the first
     * 4 at 256). A caption's text set a few pixels below the edge leaves
     * its first working rows blank, and cells of 1/64 of the side then saw
     * a band that does not touch (s1 q0494: a caption vetoed at 256 px). */
    int top_end = -1, bot_start = C;
    for (int l = 1; l <= nl; l++) {
        int h = rb[l][3] - rb[l][1] + 1;
        if (4 * h > C) continue;
        if (rb[l][1] < R && rb[l][3] > top_end) top_end = rb[l][3];
        if (rb[l][3] >= C - R && rb[l][1] < bot_start) bot_start = rb[l][1];
    }
    /* The edge may also be the copy's own, inside the generation: a caption
     * written on the copy before it was rotated or set into a new canvas
     * lies along the copy's top or bottom, tilted or within the generation
     * (s3 q0118: a caption, then a rotation, vetoed as a replaced part).
     * That edge is the compared picture's, column by column (its first and
     * last compared cell), and the depths a band spans from it (0..top_dep,
     * 0..bot_dep) hold the caption. Such a band is text across the
     * picture: it reaches deeper than the edge's own cells (R, one
     * thumbnail cell), and most of its cells lie R or more from the
     * picture's left and right sides. A mapped copy's border, resampled
     * with the canvas around it, leaves a line of residue along every side
     * there (a rotation's registration error, s3 q0598), whose cells on a
     * steep side lie deep below the top of their columns: that is no text
     * laid over the copy. */
    /* the compared picture's edges: per column its first and last compared
     * cell (ctop, cbot), per row likewise (cleft, cright) */
    int ctop[MAXC], cbot[MAXC], cleft[MAXC], cright[MAXC];
    for (int k = 0; k < C; k++) ctop[k] = cleft[k] = C, cbot[k] = cright[k] = -1;
    for (int cy = 0; cy < C; cy++)
        for (int cx = 0; cx < C; cx++) {
            if (!st[cy * C + cx]) continue;
            if (ctop[cx] == C) ctop[cx] = cy;
            if (cleft[cy] == C) cleft[cy] = cx;
            cbot[cx] = cy;
            cright[cy] = cx;
        }
    /* per region: the least and most depth of its differing cells below the
     * top (dt) and above the bottom (db) of the compared picture, and
     * how many lie R cells or more from its left and right sides (inner) */
    int dt[MAXC * MAXC / 2 + 2][2], db[MAXC * MAXC / 2 + 2][2], inner[MAXC * MAXC / 2 + 2];
    for (int l = 1; l <= nl; l++) dt[l][0] = db[l][0] = C, dt[l][1] = db[l][1] = -1, inner[l] = 0;
    for (int i = 0; i < C * C; i++) {
        int l = lab[i];
        if (!l || st[i] != 2) continue;
        int y = i / C, x = i % C, t = y - ctop[x], b = cbot[x] - y;
        inner[l] += x - cleft[y] >= R && cright[y] - x >= R;
        if (t < dt[l][0]) dt[l][0] = t;
        if (t > dt[l][1]) dt[l][1] = t;
        if (b < db[l][0]) db[l][0] = b;
        if (b > db[l][1]) db[l][1] = b;
    }
    int top_dep = -1, bot_dep = -1;
    for (int l = 1; l <= nl; l++) {
        if (2 * inner[l] < rn[l]) continue;
        if (dt[l][0] < R && dt[l][1] >= R && 4 * (dt[l][1] + 1) <= C && dt[l][1] > top_dep) top_dep = dt[l][1];
        if (db[l][0] < R && db[l][1] >= R && 4 * (db[l][1] + 1) <= C && db[l][1] > bot_dep) bot_dep = db[l][1];
    }
    int best = 0, cap_cells = 0, cap = 0; /* the chosen region, the caption's cells, its largest piece */
    uint8_t in_cap[MAXC * MAXC / 2 + 2];  /* 1: the region is (a piece of) a caption band */
    for (int l = 1; l <= nl; l++) {
        in_cap[l] = rb[l][3] <= top_end || rb[l][1] >= bot_start || dt[l][1] <= top_dep || db[l][1] <= bot_dep;
        if (in_cap[l]) { /* set aside: a copy may carry a caption */
            cap_cells += rn[l];
            if (!cap || rn[l] > rn[cap]) cap = l;
            continue;
        }
        if (!best || rn[l] > rn[best]) best = l;
    }
    /* the differing cells of other regions that are bands (the long side
     * of the box more than 3x the short one, condition 3's band): a strip
     * along a straight outline is the registration's error (a rescale or a
     * rotation one or two pixels off along a page's edge), which condition 3
     * takes for no part; it is no part either where it competes with one
     * for condition 2's share (s3 q0491: a page twin's other glyph, one
     * solid region, and the page's two side edges, each a strip of cells,
     * which had made the glyph hold less than half of the residue) */
    int band_cells = 0;
    for (int l = 1; l <= nl; l++) {
        if (l == best || in_cap[l]) continue;
        int w = rb[l][2] - rb[l][0] + 1, h = rb[l][3] - rb[l][1] + 1;
        if (3 * (w < h ? w : h) < (w < h ? h : w)) band_cells += rn[l];
    }
    out->caption = cap_cells > 0;
    out->caption_cells = cap_cells;
    int show = best ? best : cap; /* nothing but a caption: reported, never a part */
    if (show) {
        out->part = rn[show];
        memcpy(out->box, rb[show], sizeof out->box);
    }
    if (!best) return;
    if (out->part < CS_LFP_MIN_CELLS) return;
    /* an area, not a line: a 2x2 block of unexplained pixels in the region */
    for (int y = 0; y + B <= C * CELL && !out->area; y++)
        for (int x = 0; x + B <= C * CELL && !out->area; x++)
            out->area = lab[(y / CELL) * C + x / CELL] == best && block(map, S, x, y, B);
    for (int cy = 0; cy < C; cy++)
        for (int cx = 0; cx < C; cx++) {
            if (lab[cy * C + cx] != best || st[cy * C + cx] != 2) continue;
            int th = 0;
            for (int y = cy * CELL; y + B <= (cy + 1) * CELL && !th; y++)
                for (int x = cx * CELL; x + B <= (cx + 1) * CELL && !th; x++) th = block(map, S, x, y, B);
            out->thick += th;
        }
    int bw = out->box[2] - out->box[0] + 1, bh = out->box[3] - out->box[1] + 1;
    int lo = bw < bh ? bw : bh, hi = bw < bh ? bh : bw;
    /* 3b: solid, and one place of the picture. A region that fills less
     * than half of its box may be one replaced part where the box is a
     * place in the picture (a face's eyes and mouth); one whose box spans
     * the compared picture both ways is residue spread across it (an
     * edit's error along every shape). Spanning a side: leaving less than
     * a quarter of it outside the box, the share condition 4 allows a
     * caption band, the least of a picture taken as a place of its own */
    int ew = ext[2] - ext[0] + 1, eh = ext[3] - ext[1] + 1;
    int place = 4 * bw <= 3 * ew || 4 * bh <= 3 * eh;
    /* conditions 1 (above), 2, 5 and 6, which every reading below asks */
    const int part = out->area && 2 * out->part >= out->differ - cap_cells - band_cells && 2 * out->differ < out->cells;
    const int solid_place = part && 2 * out->thick >= out->part && place;
    out->shape = solid_place && 3 * lo >= hi;
    out->replaced = part && 3 * lo >= hi && 2 * out->part >= bw * bh;
    /* a solid region, band or not (verdict.c's colour twin of one part): a
     * strip is the registration's error only while it is a line along an
     * outline, a cell or two deep (CS_LFC_REG_PX at 256 px straddling a
     * cell border); three cells deep and solid it is an area of the picture */
    out->solid = solid_place && lo >= 3;
}

void cs_lfp_shape(cs_lfp *p, int parts_moved) {
    p->recoloured = parts_moved;
    if (p->shape && parts_moved == 0) p->replaced = 1;
}
