/* lf_colour.h — is a geometrically verified match the reference under a
 * GLOBAL colour change, or the reference with one part recoloured?
 *
 * The issue counts brightness, contrast, saturation and hue shifts as
 * copies: each is one function applied to every pixel alike. A colour twin
 * (an emoji's skin-tone or colour variant, an icon in another colour) keeps
 * the shapes, so its keypoints verify, but changes the colour of one part
 * only; it is another picture, not a copy of the reference. The test:
 *
 *  1. pixels: every pixel of the generation's 64 px thumbnail whose position
 *     maps (cs_lfv_match.m_orig, inverted) inside the reference, paired with
 *     the reference thumbnail's pixel there; only where the reference is flat
 *     (its 3x3 neighbourhood within tol of the centre), so that the
 *     registration error of the similarity (under one thumbnail pixel) does
 *     not pass for a colour difference;
 *  2. the global family, fitted robustly: gen = H_theta(a ref + b L(ref) + c)
 *     with H_theta the HSV hue rotation (any angle, 5 degree steps), a >= 0 the
 *     brightness/contrast gain, b the saturation mix with the luma L (ITU-R
 *     601, as PIL's and torchvision's saturation), c the contrast/brightness
 *     offset; for each theta, from two starts (least squares over all, and
 *     no change), least squares again on the pixels within 4, 2, 1 x tol
 *     (trimmed); the theta and start with the most pixels within tol win;
 *     then the same edit taken in two steps each clipped to [0,1], as PIL's
 *     ImageEnhance and torchvision's ColorJitter take it (brightness and
 *     contrast, then saturation blending with the luma of the clipped
 *     colour), searched around the winning theta and the quick search's
 *     (coordinate steps on the reference's colour bins, a truncated
 *     quadratic) and kept where it explains a colour part's worth of pixels
 *     more: a strong edit clips a colour in a channel and the single map
 *     leaves it out, a copy read as a colour twin;
 *  3. what it does not explain, split by cause: a pixel differs when its RMS
 *     residual (over R, G, B, in [0,1]) exceeds tol; the reference's colours
 *     are put in bins (8 levels a channel); a bin most of whose pixels differ
 *     is a colour the generation changed wherever it occurs, i.e. a part
 *     recoloured; differing pixels in bins that mostly agree are occlusions,
 *     blur or misregistration (a caption band, an edge), which a copy may
 *     have. recolour = the differing pixels of recoloured bins / the pixels
 *     compared (evidence); parts = the bins with at least CS_LFC_PART_PX
 *     pixels, parts_recoloured = those most of whose pixels differ.
 * The verdict rule (verdict.c) reads parts_recoloured against
 * lf_recolour_parts (2: a caption band may hide the one colour under it;
 * where the working resolution finds no caption band and the pixels the fit
 * leaves unexplained form one solid area, lf_part.h's solid, one is a part
 * recoloured too: a palette twin, e.g. an icon theme's folder in another
 * colour scheme, whose tab or emblem no global edit explains).
 * Parts are counted, not area: a picture of two large colours (white and a
 * face) with one of them recoloured is reachable by a strong global edit of
 * those two (a hue rotation, contrast on luma), and then only the small
 * parts (eyes, mouth) betray the change, each a whole colour changed. */
#ifndef CS_LF_COLOUR_H
#define CS_LF_COLOUR_H

#include <stdint.h>

typedef struct {
    float recolour;   /* share of the compared pixels in recoloured colours; -1: too few compared */
    float fit;        /* share of the compared pixels within tol of the global fit */
    float hue_deg;    /* the fit's hue rotation, degrees in (-180, 180] */
    int steps;        /* the fit's form: 1, one affine map clipped once; 2, the same in two clipped
                         steps (brightness and contrast, then saturation: PIL's, torchvision's) */
    int compared;     /* pixels compared */
    int parts;        /* the reference's colours (bins) with at least CS_LFC_PART_PX pixels compared */
    int parts_recoloured; /* ... of which most pixels differ */
    int parts_painted;    /* ... of which most unexplained pixels show another of the reference's colours,
                             one the fit explains: the part covered, not recoloured (lf_part.h, 3b) */
} cs_lfc;

/* The parts recoloured to a new colour (recoloured and not painted over),
 * the input of lf_part.h's condition 3b (cs_lfp_shape); -1: not measured. */
static inline int cs_lfc_parts_moved(const cs_lfc *k) {
    return k->recolour >= 0 ? k->parts_recoloured - k->parts_painted : -1;
}

/* At least this many flat pixels must be compared (one 8x8 block of the
 * 64 px thumbnail), else recolour = -1 (not measured). */
#define CS_LFC_MIN_PX 64
/* A colour of the reference counts as a part when it has at least this
 * many flat pixels compared (a 4x4 block of the thumbnail). */
#define CS_LFC_PART_PX 16

/* The registration error of a verified geometry, in pixels of the 256 px
 * working image (lf_colour.c): the radius of the flat neighbourhood a
 * compared pixel needs, CS_LFC_REG_PX * S / 256 pixels at S (at least 1). */
#define CS_LFC_REG_PX 2

/* ref, gen: S x S RGB thumbnails (area-resized, aspect not kept) of images
 * of rw x rh and gw x gh original pixels; m: reference original px ->
 * generation original px (cs_lfv_match.m_orig). Pure function. */
void cs_lfc_measure(const uint8_t *ref, int rw, int rh, const uint8_t *gen, int gw, int gh, int S,
                    const double m[6], double tol, cs_lfc *out);

/* The same, and (map not NULL) where the fit leaves pixels out: map[S*S]
 * on the generation's thumbnail grid, 0 = not compared (outside the mapped
 * reference, or an edge of it), 1 = explained by the global colour fit,
 * 2 = not explained (input of analyze/lf_part.h). */
void cs_lfc_measure_map(const uint8_t *ref, int rw, int rh, const uint8_t *gen, int gw, int gh, int S,
                        const double m[6], double tol, cs_lfc *out, uint8_t *map);

/* The same, quick (few > 0; few = 0: the full search above): the hue
 * rotations tried are none, then the one most compared pixels agree on (the
 * mode of their hue differences, 5 degree bins) and its two neighbours, not
 * all 72: a global hue edit turns every coloured pixel alike. The search
 * stops as soon as the best fit so far leaves fewer than `few` compared
 * pixels unexplained (a later fit is kept only when it explains more, so
 * the answer to "are `few` or more left?" is the one the tried fits give).
 * The family also admits a colour balance (an offset per channel, levels
 * or white balance: a global edit that a part replaced is not).
 * For the part measurement (analyze/an_part.c: a replaced part needs
 * CS_LFP_MIN_PX unexplained pixels), which runs for every flagged pair. */
void cs_lfc_measure_map_few(const uint8_t *ref, int rw, int rh, const uint8_t *gen, int gw, int gh, int S,
                            const double m[6], double tol, int few, cs_lfc *out, uint8_t *map);

/* The same, the generation's pixels compared with pred's (S x S, on the
 * reference's grid: the reference as the generation would show it, e.g.
 * blurred as much as the generation is, analyze/lf_blur.h), where ref (the
 * reference itself) is flat; the colours' parts are ref's. pred = ref is
 * cs_lfc_measure_map_few. */
void cs_lfc_measure_map_pred(const uint8_t *ref, const uint8_t *pred, int rw, int rh, const uint8_t *gen, int gw,
                             int gh, int S, const double m[6], double tol, int few, cs_lfc *out, uint8_t *map);

/* HSV hue rotation of one RGB colour in [0,1] by deg degrees (exposed for
 * the tests). */
void cs_lfc_hue_rotate(const float in[3], float deg, float out[3]);

#endif
