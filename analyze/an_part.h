/* an_part.h — the replaced-part veto (analyze/lf_part.h) measured only
 * where it can change a verdict.
 *
 * The part measurement after the pixel alignment (the global colour fit of
 * analyze/lf_colour.h over the thumbnails, then cs_lfp_measure) costs a few
 * milliseconds a pair; most candidates of a generation are no match at all.
 * It is asked for once per (generation, reference) pair, and only when a
 * verdict hangs on it:
 *  - cs_an_judge: after the cheap rules decided (verdict.h), the candidate
 *    is flagged by a pixel rule the veto can veto (every one but copy_tl2;
 *    the local rules read part_lf, measured with their colour fit in
 *    cs_an_refine, where the map comes with no extra fit);
 *  - cs_an_part_ratio: the finding may yet be raised by Gu et al.'s ratio
 *    test (cs_an_verdict_result), which only the finding can pass.
 * The alignment is the one the refinement found (c->box, c->al_mirrored);
 * nothing is searched again. A candidate judged again later (the rivals of
 * cs_an_mark_ambiguous) keeps its measurement (part_al.measured): the
 * rivals only take flags away, and a pixel rule that remains after them
 * was flagging before, so it was measured then. */
#ifndef CS_AN_PART_H
#define CS_AN_PART_H

#include "analyze/match.h"

/* Measures c->part_al at c's alignment unless measured already; without
 * the pixels (no query, no thumbnails) it is marked measured and vetoes
 * nothing. */
void cs_an_part_al(cs_an_cand *c, const cs_an_refs *r, const cs_an_query *q, const cs_an_settings *s);

/* cs_an_verdict_cand + cs_an_verdict_local, measuring part_al first where
 * a pixel rule other than copy_tl2 decided (and then judging again). */
void cs_an_judge(cs_an_cand *c, const cs_an_refs *r, const cs_an_query *q, int gen_pdq_quality,
                 const cs_an_settings *s);

/* Before cs_an_verdict_result: the finding's part_al where the ratio test
 * could raise it (below near-copy, within ratio_tl2, an informative tile). */
void cs_an_part_ratio(cs_an_result *res, const cs_an_refs *r, const cs_an_query *q, const cs_an_settings *s);

/* part_lf at the working resolution (analyze/fine_ref.h): ref and gen are
 * S x S images (S = CS_FINE_SIDE) of rw x rh and gw x gh originals, m_orig
 * the verified geometry (cs_lfv_match.m_orig). The colour fit is the quick
 * one of the part measurement (cs_lfc_measure_map_few, as for part_al):
 * its question is whether a part is left, not which global edit it was.
 * Where a part's worth of cells differs, the measurement is made again at
 * the generation's effective resolution: the reference blurred by the
 * sigma the pair shows (analyze/lf_blur.h, out->blur), so that a blurred
 * or resampled copy's edges are no part. Sets out->fine = CS_FINE_OK. */
void cs_an_part_fine(const uint8_t *ref, int rw, int rh, const uint8_t *gen, int gw, int gh, const double m_orig[6],
                     double tol, cs_lfp *out);

/* The pixels a verified geometry maps show another picture than the
 * reference (the conditions of cs_an_verdict_local that no share of
 * keypoints can lift): a colour twin (lf_recolour_parts parts recoloured by
 * the fit that made the map), a template twin (a part replaced), or half
 * the compared cells different (no common body). 0 when not measured. */
int cs_an_part_other(const cs_lfp *p, const cs_an_settings *s);

/* In cs_an_refine, after the 64 px measurement of part_lf: the pair's
 * measurement at the working resolution, made by the local-feature stage
 * (an_local.c, q->lf_part), replaces it; where that stage could not read
 * the reference's source, part_lf stays the 64 px one and says why
 * (part_lf.fine). */
void cs_an_part_lf_take(cs_an_cand *c, const cs_an_query *q);

#endif
