/* lf_part.h — is what a match does not explain one part of the reference
 * replaced (a template twin), or spread residue (an edited copy)?
 *
 * Template twins (a folder with an emblem and the plain folder, two pages
 * of one template with other glyphs, an emoji face with other eyes) share a
 * large common body and differ in one small distinctive part. Their pixels
 * and keypoints match over the body, so every similarity rule passes; but a
 * copy keeps the distinctive part, a twin replaces it. After the geometry
 * (the verified similarity or the tiled-L2 crop box) and the best global
 * colour edit (analyze/lf_colour.h, so brightness/contrast/saturation/hue
 * edits are explained), the pixels left unexplained (map = 2) are:
 *  - for an edited copy (JPEG, blur, resampling, a rotation's registration
 *    error), thin residue along every edge of the picture, spread out;
 *  - for a caption, a band along the top or bottom edge of the generation;
 *  - for a twin, one compact region where the other glyph is.
 * The test, on 4x4-pixel cells of the 64 px thumbnail, or of the 256 px
 * working image where the local stage re-read the reference's source
 * (analyze/fine_ref.h; regions there connect across one thumbnail cell,
 * lf_part.c), (a cell differs when
 * most of its compared pixels are unexplained; a cell with too few compared
 * pixels, an edge, bridges two differing neighbours): the largest connected
 * region of differing cells is a replaced part when
 *  1. it is a part, not a speck: at least CS_LFP_MIN_CELLS cells (the 8x8
 *     pixel block that lf_colour.h also takes as the least it measures);
 *  2. it is the residue, concentrated: it holds at least half of every
 *     differing cell (blur and JPEG spread theirs over every edge) but
 *     those of other regions that are bands (condition 3's: a strip along
 *     a straight outline registered a pixel or two off is no part, and no
 *     rival to one either);
 *  3. it is compact: its cells fill at least half of its bounding box (a
 *     glyph is a blob; edge residue follows outlines), and the box is no
 *     band (its long side at most 3x its short side): a strip along an
 *     edge is an overlay or the registration error of a rotation's border;
 *     or (3b, cs_lfp_shape, below) no band, solid, and no colour of the
 *     reference moved to a new colour by the fit that made the map (one
 *     painted over by the body around it is no move);
 *  4. it is no caption: a region touching the top or bottom of the
 *     generation and no taller than a quarter of it is a text band laid
 *     over the copy, which a copy may have; so is one along the copy's own
 *     top or bottom (the compared picture's, column by column: tilted where
 *     the copy was rotated after its caption was written, inside the
 *     generation where it was set into a new canvas) that runs across the
 *     picture, most of its cells away from the picture's sides, and
 *     reaches deeper than the edge's line (a copy's resampled border is a
 *     line along every side); such bands, and every region inside the rows
 *     or depths they span (the band's pieces where part of it stays within
 *     the tolerance), are set aside (their cells count in no condition but
 *     5) and the largest other region is judged, so a caption does not
 *     hide a replaced part;
 *  5. a common body is left: fewer than half of the cells compared differ.
 *     A twin shares most of its picture with the reference and replaces a
 *     part of it; where the alignment explains less than half, the picture
 *     is no twin but another picture (or the copy under an edit the colour
 *     fit does not model), and the rules that measure similarity judge it,
 *     not this veto;
 *  6. it is an area, not a line: it holds a 2x2 block of unexplained
 *     pixels (JPEG's chroma block). Only the middle row of a stripe 3 px
 *     wide is flat enough to compare; blur and JPEG's 2x2 chroma
 *     subsampling wash such a stripe's colour out, and its residue, a line
 *     one pixel thin, still makes a compact chain of cells (a white
 *     headband over hair, blurred and JPEG'd at 64 px); a part replaced
 *     has an area of another colour. */
#ifndef CS_LF_PART_H
#define CS_LF_PART_H

#include <stdint.h>

#define CS_LFP_CELL 4      /* cell side, thumbnail pixels */
#define CS_LFP_MIN_CELLS 4 /* 4 cells of 4x4 px = one 8x8 block (CS_LFC_MIN_PX) */
/* The fewest unexplained pixels a replaced part can have: a differing cell
 * has at least a quarter of its 16 pixels compared (4) and most of those
 * unexplained (3), and a part has CS_LFP_MIN_CELLS such cells. Fewer left
 * by a colour fit: no part (cs_lfc_measure_map_few stops there). */
#define CS_LFP_MIN_PX (CS_LFP_MIN_CELLS * 3)

typedef struct {
    int cells;        /* cells with enough compared pixels */
    int differ;       /* ... of which most are unexplained */
    int part;         /* cells of the largest connected differing region, caption bands aside
                         (a band itself when there is nothing else) */
    int box[4];       /* its bounding box in cells: x0, y0, x1, y1 (inclusive) */
    int caption;      /* 1: a band along the top or bottom was set aside (exempt) */
    int caption_cells; /* differing cells in those bands */
    int grid;         /* cells of the whole grid ((S / CS_LFP_CELL)^2) */
    int area;         /* 1: it holds a 2x2 block of unexplained pixels (condition 6) */
    int thick;        /* its differing cells that hold a 2x2 block of unexplained pixels */
    int shape;        /* 1: conditions 1, 2, 4, 5, 6 hold, the box is no band, and the region is
                         solid (condition 3b), whatever its bounding box (cs_lfp_shape) */
    int replaced;     /* 1: a part of the reference is replaced (conditions 1-6) */
    int solid;        /* 1: conditions 1, 2, 4, 5, 6 hold, the region is solid and one place (as shape),
                         and at least 3 cells deep, band or not: an area of the picture left unexplained
                         (what verdict.c asks of a colour twin of one part) */
    int measured;     /* 1: measured (or nothing to measure with); 0: not asked (analyze/an_part.h) */
    int side;         /* S of the map measured: 64 (the thumbnails) or 256 (the working image) */
    int fine;         /* part_lf: analyze/fine_ref.h's CS_FINE_* (whether 256 px, else why 64 px) */
    int recoloured;   /* parts moved to a new colour by the colour fit that made the map (cs_lfc_parts_moved,
                         cs_lfp_shape), -1: unknown */
    float blur;       /* sigma (px at side) of the Gaussian blur of the reference the map was measured
                         with: the generation's blur relative to it (analyze/lf_blur.h); 0: none */
} cs_lfp;

/* map: S x S from cs_lfc_measure_map (S = 64 or 256: the cells keep their
 * size in the picture, 1/16 of the side, see lf_part.c). Pure function;
 * sets measured and side. */
void cs_lfp_measure(const uint8_t *map, int S, cs_lfp *out);

/* Condition 3b, a replaced shape: the bounding box separates a blob from
 * edge residue along outlines, but a part replaced need not be one blob (a
 * face's other eyes and mouth, one region across the face, fill their box
 * by less than half). Such a region is still a replaced part when
 *  - it is solid: at least half of its cells hold a 2x2 block of
 *    unexplained pixels (condition 6 everywhere, not once: an outline's
 *    residue is a line, its cells thin),
 *  - it is one place: its bounding box leaves at least a quarter of the
 *    compared picture's width or height outside it (the share condition 4
 *    allows a caption band); a region whose box spans the picture both
 *    ways is an edit's residue along every shape, not a part, and
 *  - the colour fit moved no colour of the reference to a new colour
 *    (cs_lfc_parts_moved 0, analyze/lf_colour.h): its unexplained pixels
 *    are colours that agree elsewhere and differ in place, another shape,
 *    not a colour the edit moved beyond the fit (that leaves its colour
 *    recoloured wherever it occurs, to a colour of its own, and the
 *    recolour rule judges it). A colour recoloured because another shape
 *    covers it is no such move: where a twin draws its emblem elsewhere,
 *    the old emblem's colour, at most of its pixels, shows the body around
 *    it (a colour of the reference the fit explains), so it counts as
 *    recoloured wherever it occurs and yet is painted over
 *    (parts_painted), the mark of a shape replaced.
 * parts_moved: of the colour fit that made the map; < 0: unknown (no
 * change). Sets p->replaced when the shape holds. */
void cs_lfp_shape(cs_lfp *p, int parts_moved);

#endif
