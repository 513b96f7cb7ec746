/* verdict.h — the image verdict rules (verdict.c): the four levels, their
 * names, and the verdict of a candidate and of a match result from what
 * match.c measured. The rules themselves are described in verdict.c; every
 * threshold is a setting (settings.h). */
#ifndef CS_AN_VERDICT_H
#define CS_AN_VERDICT_H

#include "analyze/match.h"
#include "analyze/settings.h"

enum { CS_V_NOVEL = 0, CS_V_PARTIAL = 1, CS_V_NEAR = 2, CS_V_COPY = 3 };
const char *cs_verdict_name(int v);
/* "copy" | "near-copy" | "partial" | "novel" -> level, else -1. */
int cs_verdict_parse(const char *s);

/* The verdict of one candidate (sets c->verdict and c->rule), and the
 * result's verdict/severity from its best candidate and ratio test. */
void cs_an_verdict_cand(cs_an_cand *c, int gen_pdq_quality, const cs_an_settings *s);
void cs_an_verdict_result(cs_an_result *res, const cs_an_settings *s);
/* The local-feature rule (after cs_an_verdict_cand; raises c->verdict only):
 * a geometric verification that is not chance (a-contrario NFA <=
 * lf_max_nfa) and reproduces a substantial share of the reference's
 * keypoints the geometry leaves visible (>= lf_min_share; below it, a copy
 * rescaled by a SIFT scale level whose mapped pixels confirm it,
 * cs_an_local_pixels), is no colour twin (fewer than lf_recolour_parts
 * colour parts recoloured, analyze/lf_colour.h), no template twin
 * (part_lf) and no other picture (fewer than half the mapped cells
 * differ) is a near-copy when the mapped reference
 * covers at least lf_near_cover of the generation, else a partial copy; a
 * candidate the pixel rule judged partial (a region not copied in place)
 * stays partial. */
void cs_an_verdict_local(cs_an_cand *c, const cs_an_settings *s);
/* The pairs the local rule could flag, for which cs_an_refine measures the
 * colour and part evidence (analyze/lf_colour.h, lf_part.h): verified, not
 * chance, and either a substantial share of the visible keypoints or no
 * rival as good (the pixels may then confirm it, cs_an_local_pixels). */
int cs_an_local_measure(const cs_lfv_match *m, const cs_an_settings *s);
/* The pixels confirm a verified geometry: mapped by it, the reference's
 * footprint in the generation is compared over at least lf_min_share of
 * its cells, and a global colour edit explains it all but residue (fewer
 * than lf_recolour_parts colours recoloured, fewer than CS_LFP_MIN_CELLS
 * differing cells outside caption bands). */
int cs_an_local_pixels(const cs_an_cand *c, const cs_an_settings *s);
/* After cs_an_verdict_result: a finding decided by the local-feature rule
 * ranks by its share of verified keypoints (its pixel distance says
 * nothing about a rotated or embedded copy). */
void cs_an_verdict_local_result(cs_an_result *res);

#endif
