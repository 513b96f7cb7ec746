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
 *  3. evidence: the inlier count; the score = inliers / max(reference
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

typedef struct {
    int mirrored;          /* the query's mirror image matched */
    int matches;           /* tentative matches given to RANSAC */
    int inliers;
    float score;           /* inliers / max(reference keypoints, CS_LFV_MIN_KP), in [0, 1] */
    double m[6];           /* reference working px -> (mirrored if .mirrored) query working px */
    double m_orig[6];      /* reference original px -> generation original px (as is, not mirrored) */
    float ref_poly[4][2];  /* inlier box in the reference, original pixels */
    float gen_poly[4][2];  /* its image in the generation, original pixels (as is, not mirrored) */
    float coverage;        /* share of the generation covered by the mapped reference */
    int ref_w, ref_h;      /* the images the polygons are in (original pixels) */
    int gen_w, gen_h;
    int partial;           /* inliers > 0 and coverage < CS_LFV_PARTIAL_COVER */
    double log10_nfa1;     /* a-contrario significance of the consensus for ONE reference tested
                              (cs_lfv_log10_nfa1); add log10 of the tests made (references x 2
                              for the mirror) for the number of false alarms */
    float rival;           /* set by the analysis: the best share verified by ANOTHER reference
                              for the same generation (0: none), for the ratio test */
    float recolour;        /* set by the analysis (analyze/lf_colour.h): the share of the
                              matched area that a global colour transform does not explain, in
                              colours of the reference changed wherever they occur; -1: not measured */
    float colour_fit;      /* share of the compared pixels the global colour transform explains */
    float hue_deg;         /* that transform's hue rotation (degrees) */
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

/* q: the generation as is, qm: mirrored (NULL: not tried), ref: the
 * reference. out is zeroed (inliers 0) when nothing verifies. */
int cs_lfv_verify(const cs_lf_set *q, const cs_lf_set *qm, const cs_lf_set *ref, cs_lfv_match *out, cs_err *err);

/* Area of the convex polygon p[n] clipped to [0,w] x [0,h] (Sutherland-
 * Hodgman); exposed for the tests. */
double cs_lfv_clip_area(const float (*p)[2], int n, double w, double h);

#endif
