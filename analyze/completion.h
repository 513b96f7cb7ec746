/* completion.h — completion audits: the model was given a reference with a
 * region withheld (a rectangle) and filled it in. The question (the image
 * counterpart of prompting a language model with the start of an article):
 * does the filled region reproduce the withheld part of the original, closer
 * than the same region of any other reference?
 *
 * Distance: tiled L2 restricted to the region — for every tile of the
 * thumbnail grid that the rectangle covers by at least a quarter, the RMS
 * ([0,1] pixels) over the covered pixels; the maximum over those tiles.
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

typedef struct {
    int64_t orig_row;   /* row of the original in cs_an_refs */
    int rect[4];        /* x, y, w, h in thumbnail pixels */
    float d_orig;       /* region distance to the original */
    int64_t other_row;  /* nearest other reference on the region (-1 if none) */
    float d_other;
    int restored;       /* d_orig x margin < d_other and d_orig <= near_tl2 */
    int verdict;
} cs_an_completion;

/* rect_img: x, y, w, h in the generation's pixels (img_w x img_h). Other
 * references that show the same picture as the original (region distance
 * below copy_tl2 to the original's own region) are not "other". */
void cs_an_completion_audit(cs_an_completion *out, const cs_an_refs *r, const uint8_t *gen_thumb,
                            int64_t orig_row, const int rect_img[4], int img_w, int img_h,
                            const cs_an_settings *s);

#endif
