/* completion.h — completion audits: the model was given a reference with a
 * region withheld (a rectangle, or any mask) and filled it in. The question
 * (the image counterpart of prompting a language model with the start of an
 * article): does the filled region reproduce the withheld part of the
 * original, closer than the same region of any other reference?
 *
 * The region lives on the 64x64 thumbnail grid (CS_THUMB_SIZE), as a
 * withheld-pixel map: a rectangle covers every thumbnail pixel it touches; a
 * mask (white = keep, black = withheld, the suite's convention) is
 * area-resized to the grid exactly as images are for their thumbnails, and a
 * thumbnail pixel is withheld when its luma is below half (more than half of
 * its area was withheld).
 *
 * Distance: tiled L2 restricted to the region — for every tile of the
 * thumbnail grid with at least a quarter of its pixels withheld, the RMS
 * ([0,1] pixels) over its withheld pixels; the maximum over those tiles.
 * A region too thin to fill a quarter of any tile is measured as one: the
 * RMS over all its pixels.
 * Verdict of the generation (replacing the whole-image one, since the kept
 * part is a copy by construction):
 *   copy       d(original) <= copy_tl2 and d(original) x margin < d(other)
 *   near-copy  d(original) <= near_tl2 and d(original) x margin < d(other)
 *   partial    the region reproduces ANOTHER reference (d(other) <= copy_tl2)
 *   novel      otherwise. */
#ifndef CS_AN_COMPLETION_H
#define CS_AN_COMPLETION_H

#include <stdint.h>

#include "analyze/match.h"
#include "core/image.h"

typedef struct {
    int64_t orig_row;   /* row of the original in cs_an_refs */
    int rect[4];        /* bounding box of the region: x, y, w, h in thumbnail pixels */
    int n_withheld;     /* withheld thumbnail pixels */
    int n_tiles;        /* tiles the distance is the maximum over (0: measured as one region) */
    float d_orig;       /* region distance to the original */
    int64_t other_row;  /* nearest other reference on the region (-1 if none) */
    float d_other;
    int restored;       /* d_orig x margin < d_other and d_orig <= near_tl2 */
    int verdict;
} cs_an_completion;

/* withheld[CS_THUMB_SIZE^2] (1 = withheld) from a rectangle x, y, w, h given
 * in the pixels of an img_w x img_h image (the task's reference): every
 * thumbnail pixel the rectangle touches. Returns the withheld count. */
int cs_an_region_from_rect(uint8_t *withheld, const int rect[4], int img_w, int img_h);

/* withheld[CS_THUMB_SIZE^2] from a mask image (white = keep, black =
 * withheld), area-resized to the grid like the thumbnails. Returns the
 * withheld count, or -1 (err) when the resize fails. */
int cs_an_region_from_mask(uint8_t *withheld, const cs_image *mask, cs_err *err);

/* The withheld map as text for the evidence (withheld_map): out has
 * CS_THUMB_SIZE^2 / 4 + 1 chars, row-major hex, 4 pixels per digit, the most
 * significant bit the leftmost pixel. reports/panels.c reads it back. */
void cs_an_region_hex(const uint8_t *withheld, char *out);

/* Audits a completion whose withheld region is withheld[] (above). Other
 * references that show the same picture as the original (region distance
 * below copy_tl2 to the original's own region) are not "other". An empty
 * region, a bad orig_row or an index without thumbnails give d_orig =
 * INFINITY and novel. */
void cs_an_completion_audit(cs_an_completion *out, const cs_an_refs *r, const uint8_t *gen_thumb,
                            int64_t orig_row, const uint8_t *withheld, const cs_an_settings *s);

/* The audit in parts, for a caller whose references are spread over
 * processes (copyscope-mpi: each rank scans the rows it holds, rank 0
 * keeps the nearest by (distance, row)); cs_an_completion_audit is begin,
 * orig, other over every row, end.
 * begin: out cleared (d_orig = d_other = INFINITY, novel), its rect and
 * n_withheld; returns n_withheld (0: nothing to measure). */
int cs_an_completion_begin(cs_an_completion *out, const uint8_t *withheld, int64_t orig_row);
/* The tile grid of the region's distance (r's tiled-L2 grid, else 4). */
int cs_an_completion_grid(const cs_an_refs *r);
/* out->d_orig and n_tiles: the region's distance between the generation
 * and the original's thumbnail orig; -1 when not measured (out of memory). */
int cs_an_completion_orig(cs_an_completion *out, const uint8_t *gen_thumb, const uint8_t *orig, const uint8_t *withheld,
                          int grid);
/* The nearest reference to the generation on the region among r's rows
 * (grow[r->n]: their rows in the whole index, ascending; NULL: the same),
 * leaving out orig_row (a row of the whole index) and the original's twins
 * (region distance to orig <= copy_tl2): *d_other (INFINITY: none) and
 * *other_row (-1), the first row of equal distances. */
int cs_an_completion_other(const cs_an_refs *r, const int32_t *grow, const uint8_t *gen_thumb, const uint8_t *orig,
                           int64_t orig_row, const uint8_t *withheld, int grid, float copy_tl2, float *d_other,
                           int64_t *other_row);
/* The verdict from d_orig and d_other (the rules above). */
void cs_an_completion_end(cs_an_completion *out, const cs_an_settings *s);

#endif
