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

#endif
