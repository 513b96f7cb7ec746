/* lf_verify.h — geometric verification of a (generation, reference) pair on
 * their local features (index/localfeat.h), the evidence that a part of the
 * reference was copied into the generation, wherever and at whatever scale
 * and rotation (issue 13).
 *
 *  1. tentative matches: for every query keypoint, the nearest reference
 *     keypoint by descriptor L2, kept when it passes Lowe's ratio test
 *     (nearest < CS_LFV_RATIO x second nearest; Lowe 2004 s7.1 uses 0.8);
 *  2. RANSAC similarity (rotation + uniform scale + translation,
 *     cv::estimateAffinePartial2D) from the reference to the query, inlier
 *     threshold CS_LFV_REPROJ px in the 256 px working image; a model whose
 *     scale is outside [1/8, 8] is rejected (no copy shrinks a reference
 *     below 32 px of 256); an inlier whose keypoint orientation or scale
 *     disagrees with the model's rotation (by > CS_LFV_MAX_DANGLE degrees)
 *     or scale (by > CS_LFV_MAX_DSCALE x) is dropped (Lowe 2004 s7.3's
 *     Hough consistency), and at least 3 must remain;
 *  3. guided matching (Hartley & Zisserman 2004 s11.6): every reference
 *     keypoint is sought where the verified model puts it (within
 *     CS_LFV_REPROJ px, consistent in orientation and scale), among the
 *     query keypoints mutually nearest to it by descriptor, without the
 *     ratio margin (the geometry has already excluded the alternatives the
 *     margin guards against; mutual, so a structure repeated in the query
 *     gives one match, not one per repetition at a predicted place); the
 *     consensus's keypoints stay matched; the model is refitted on all of
 *     them by least squares and the search repeated. The inliers are these
 *     matches, each a distinct reference keypoint. It recovers keypoints a
 *     copy re-detects but whose descriptors an edit (a crop's rescale, a
 *     rotation's resampling) pushed past the 0.8 ratio. The significance
 *     (log10_nfa1) stays the consensus's: the guided matches are
 *     conditioned on its model, outside the null it counts;
 *  4. evidence: the inlier count; the score = inliers / max(reference
 *     keypoints, CS_LFV_MIN_KP), the share of the reference's stored
 *     keypoints verified — raw inlier counts do not rank across queries
 *     (unrelated images share real parts); the bounding box of the inlier
 *     reference keypoints as a polygon in the reference and its image in the
 *     generation; the share of the generation covered by the whole reference
 *     mapped into it (< CS_LFV_PARTIAL_COVER: the copy is part of a new
 *     picture, a partial copy).
 * The query is tried as is and mirrored (the better wins), so a mirrored copy
 * verifies like any other. */
#ifndef CS_LF_VERIFY_H
#define CS_LF_VERIFY_H

#include "core/err.h"
#include "index/localfeat.h"

#define CS_LFV_RATIO 0.8f
#define CS_LFV_REPROJ 5.0
#define CS_LFV_MIN_KP 10
#define CS_LFV_PARTIAL_COVER 0.5f
#define CS_LFV_MAX_DANGLE 30.0  /* inlier orientation vs the model's rotation (degrees) */
#define CS_LFV_MAX_DSCALE 1.5   /* inlier scale ratio vs the model's scale (factor) */
/* SIFT samples scale at 3 levels an octave (OpenCV's nOctaveLayers = 3, Lowe
 * 2004 s3.2): a copy rescaled by at least one level, 2^(1/3), is detected at
 * other levels of the pyramid, so which of the reference's strongest
 * keypoints it re-detects is no longer what the reference's own scale gives */
#define CS_LFV_SCALE_LEVEL 1.2599210498948732

typedef struct {
    int mirrored;          /* the query's mirror image matched */
    int matches;           /* tentative matches given to RANSAC */
    int inliers;           /* reference keypoints verified (after guided matching) */
    int ratio_inliers;     /* of those, found by the ratio-test consensus before guided matching */
    int view_box[4];       /* x, y, w, h (generation original px) of the foreground box view the
                              match was verified in (analyze/lf_box.h); w = 0: the generation as is */
    float score;           /* inliers / max(reference keypoints, CS_LFV_MIN_KP), in [0, 1] */
    double m[6];           /* reference working px -> (mirrored if .mirrored) query working px */
    double m_orig[6];      /* reference original px -> generation original px (as is, not mirrored) */
    float ref_poly[4][2];  /* inlier box in the reference, original pixels */
    float gen_poly[4][2];  /* its image in the generation, original pixels (as is, not mirrored) */
    float coverage;        /* share of the generation covered by the mapped reference */
    int ref_w, ref_h;      /* the images the polygons are in (original pixels) */
    int gen_w, gen_h;
    int partial;           /* inliers > 0 and coverage < CS_LFV_PARTIAL_COVER */
    double log10_nfa1;     /* a-contrario significance of the ratio-test consensus (before the
                              guided matches, which its null does not count) for ONE reference tested
                              (cs_lfv_log10_nfa1); add log10 of the tests made (references x 2
                              for the mirror) for the number of false alarms */
    int visible;           /* the reference's keypoints a copy under this model could show: mapped
                              inside the query's working image, at a size the query's detection
                              reaches (cs_lfv_visible) */
    float share_visible;   /* inliers / max(visible, CS_LFV_MIN_KP), in [0, 1] */
    float extent;          /* the inlier box's area over the box of the visible reference keypoints
                              (with the inliers), in the reference: how much of what a copy could
                              show the verified keypoints span (cs_lfv_extent), in [0, 1] */
    float scale;           /* the model's scale, working px (reference -> query) */
    float rival;           /* set by the analysis: the best share verified by ANOTHER reference
                              for the same generation (0: none), for the ratio test */
    float recolour;        /* set by the analysis (analyze/lf_colour.h): the share of the
                              matched area that a global colour transform does not explain, in
                              colours of the reference changed wherever they occur; -1: not measured */
    float colour_fit;      /* share of the compared pixels the global colour transform explains */
    float hue_deg;         /* that transform's hue rotation (degrees) */
    int colour_steps;      /* its form (cs_lfc.steps): 1 one clipped map, 2 two clipped steps */
    int parts, parts_recoloured; /* the reference's colour parts compared, and recoloured */
} cs_lfv_match;

/* The a-contrario number of false alarms of a consensus of k inliers among m
 * tentative matches, per reference tested (Moisan & Stival 2004, ORSA; Lowe
 * 2004 s7.4 reasons the same way): under the null hypothesis (an unrelated
 * pair) a tentative match lands within CS_LFV_REPROJ px of the position a
 * model predicts with probability p0 = pi r^2 / (w h) of the query's working
 * image; a similarity is fixed by 2 matches, so at most C(m,2) models are
 * tried, and the other m - 2 matches agree with one by chance k - 2 times or
 * more with probability P[Binomial(m - 2, p0) >= k - 2]. Returns
 * log10(C(m,2) x that tail). The orientation/scale check makes the true null
 * probability smaller still, so this is conservative. */
double cs_lfv_log10_nfa1(int m, int k, int qw, int qh);

/* How many of the reference's n keypoints (xy, size: working px) a copy
 * under the similarity m (reference working px -> query working px, scale
 * sc) could show at all: the keypoint lands inside the query's qw x qh
 * working image (a crop cuts the rest away, an embed's canvas or a
 * rotation's grown canvas keeps all), and its size there is within the
 * scale tolerance (CS_LFV_MAX_DSCALE) of the smallest keypoint the query's
 * detection kept, q_min_size (a copy shrunk into a new canvas loses the
 * reference's finest keypoints below the detector's first scale). The share
 * a copy is asked for (lf_min_share) is a share of these: the keypoints no
 * copy under this geometry could reproduce are no evidence against it. */
int cs_lfv_visible(const float (*xy)[2], const float *size, int n, const double *m, int qw, int qh,
                   float q_min_size);

/* The extent of a match: the area of the inlier box ib (x0, y0, x1, y1,
 * the reference's working px) over the area of the box of the reference
 * keypoints a copy under m could show (cs_lfv_visible's test) joined with
 * ib, each side at least 1 px (keypoints on one line still span it). The
 * share_visible counts keypoints; this measures the part of the reference
 * they span: a few keypoints of one detail (a loop of a glyph, a corner)
 * can be a large share of a short record while spanning a speck of it. */
float cs_lfv_extent(const float (*xy)[2], const float *size, int n, const double *m, int qw, int qh,
                    float q_min_size, const float ib[4]);

/* The guided matching of step 3 alone under the similarity m (reference
 * working px -> query working px): gq[r->n] gets each reference keypoint's
 * query keypoint (-1: none); returns how many. Exposed for the tests. */
int cs_lfv_guided(const cs_lf_set *q, const cs_lf_set *r, const double *m, int *gq);

/* q: the generation as is, qm: mirrored (NULL: not tried), ref: the
 * reference. out is zeroed (inliers 0) when nothing verifies. */
int cs_lfv_verify(const cs_lf_set *q, const cs_lf_set *qm, const cs_lf_set *ref, cs_lfv_match *out, cs_err *err);

/* Area of the convex polygon p[n] clipped to [0,w] x [0,h] (Sutherland-
 * Hodgman); exposed for the tests. */
double cs_lfv_clip_area(const float (*p)[2], int n, double w, double h);

#endif
