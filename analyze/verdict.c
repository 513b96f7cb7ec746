/* verdict.c — copy / near-copy / partial / novel from the measured evidence.
 * Every threshold is a setting (analyze/settings.c has defaults and sources).
 *
 *   copy       tiled L2 as is or mirrored <= copy_tl2: every tile of the
 *              image is within a few grey levels of the reference's.
 *   near-copy  tiled L2 after alignment (crop/shift/mirror) <= near_tl2,
 *              or PDQ <= pdq_near with both qualities >= pdq_min_quality
 *              and the pixels within pdq_confirm_tl2 (unconfirmed when the
 *              index has no thumbnails), or embedding cosine >= embed_near
 *              from an embedder that threshold is calibrated for (SSCD, not
 *              tiny: index/embed.h cs_embedder_calibrated)
 *              with the pixels within embed_confirm_tl2 (unconfirmed when
 *              the index has no thumbnails),
 *              or Gu et al.'s ratio test d1/d2 < ratio_max with d1 <= ratio_tl2.
 *   partial    at least partial_min_tiles informative tiles of the reference
 *              match within partial_tile_l2, and they are at least
 *              partial_min_frac of the tiles with content in either image:
 *              a large region is reproduced while the rest differs. A tile
 *              plain in the reference but not in the generation is a
 *              difference too (the same blank page with another glyph on it
 *              reproduces every informative tile of the blank page).
 *   near_tl2 and partial_min_tiles hold only for a reference that fits
 *   clearly better than every distinct other one (cs_an_mark_ambiguous: a
 *   ratio test), and near_tl2 only with an informative tile.
 *   local      (cs_an_verdict_local, a separate rule) a geometric verification
 *              of local features: near-copy or partial by the covered area
 *              (partial where the pixels found a region not copied in place).
 *   Every rule but copy_tl2 is vetoed for a template twin: after the
 *   alignment (the crop box for the pixel rules, the verified geometry for
 *   the local rule) and the best global colour edit, one compact region of
 *   the picture, not a caption band, is left unexplained while most of it
 *   is explained (analyze/lf_part.h: a part replaced, e.g. a folder with
 *   another emblem). The rules read part_al/part_lf as measured; the pixel
 *   alignment's part is measured only where it decides (analyze/an_part.h:
 *   cs_an_judge runs these rules, measures, and runs them again).
 *   With a model's round trip (analyze/an_roundtrip.c, near_ae_floor) every
 *   tile must also be within the autoencoder's own loss of the round trip.
 *   novel      none of these. */
#include <math.h>
#include <string.h>

#include "analyze/verdict.h"

#include "analyze/fine_ref.h"

static const char *const names[] = {"novel", "partial", "near-copy", "copy"};

const char *cs_verdict_name(int v) { return v >= 0 && v <= 3 ? names[v] : "novel"; }

int cs_verdict_parse(const char *s) {
    for (int v = 0; v <= 3; v++)
        if (!strcmp(s, names[v])) return v;
    if (!strcmp(s, "near_copy") || !strcmp(s, "nearcopy")) return CS_V_NEAR;
    return -1;
}

void cs_an_verdict_cand(cs_an_cand *c, int gen_pdq_quality, const cs_an_settings *s) {
    c->verdict = CS_V_NOVEL;
    c->rule = "";
    if (c->d_id <= s->copy_tl2) {
        c->verdict = CS_V_COPY;
        c->rule = "copy_tl2";
        return;
    }
    /* below: no pixel rule flags a template twin, whose alignment leaves one
     * compact part of the picture unexplained (analyze/lf_part.h) */
    if (c->part_al.replaced) return;
    /* a plain picture (no informative tile) matches any plain picture */
    if (c->d_al <= s->near_tl2 && c->tiles_informative > 0 && !(c->ambiguous & CS_AN_AMBIG_TL2)) {
        c->verdict = CS_V_NEAR;
        c->rule = "near_tl2";
        return;
    }
    if (c->pdq >= 0 && c->pdq <= s->pdq_near && gen_pdq_quality >= s->pdq_min_quality &&
        c->pdq_q_ref >= s->pdq_min_quality &&
        (!isfinite(c->d_al) || (c->d_al <= s->pdq_confirm_tl2 && !(c->ambiguous & CS_AN_AMBIG_TL2)))) {
        /* no thumbnails: unconfirmed; pixels as close to a distinct reference confirm neither */
        c->verdict = CS_V_NEAR;
        c->rule = "pdq_near";
        return;
    }
    /* An embedding ranks by what it was trained or fitted to see, and the
     * threshold is calibrated for one embedder (SSCD's 0.75): only an
     * embedder calibrated for it counts here (index/embed.h:
     * cs_embedder_calibrated). The tiny whitened-pixel descriptor passes
     * 0.75 for emoji of the same layout and palette and is a function of
     * the very pixels the rules above judge, so it ranks but decides
     * nothing. Where the pixels can be checked they must agree, as for PDQ. */
    if (c->emb_calibrated && c->emb_cos > -2 && c->emb_cos >= s->embed_near &&
        (!isfinite(c->d_al) || (c->d_al <= s->embed_confirm_tl2 && !(c->ambiguous & CS_AN_AMBIG_TL2)))) {
        /* no thumbnails: unconfirmed; pixels as close to a distinct reference confirm neither */
        c->verdict = CS_V_NEAR;
        c->rule = "embed_near";
        return;
    }
    int content = c->tiles_content > c->tiles_informative ? c->tiles_content : c->tiles_informative;
    if (c->tiles_matched >= s->partial_min_tiles && !(c->ambiguous & CS_AN_AMBIG_TILES) &&
        c->tiles_matched >= s->partial_min_frac * content) {
        c->verdict = CS_V_PARTIAL;
        c->rule = "partial_min_tiles";
    }
}

void cs_an_verdict_result(cs_an_result *res, const cs_an_settings *s) {
    res->verdict = CS_V_NOVEL;
    res->severity = 0;
    res->ratio = 0;
    res->ratio_pass = 0;
    if (!res->has_best) return;
    cs_an_cand *b = &res->best;
    res->ratio = isfinite(res->d2) && res->d2 > 0 ? b->d_al / res->d2 : (isfinite(res->d2) ? 1.0f : 0.0f);
    res->ratio_pass = res->ratio < s->ratio_max && b->d_al <= s->ratio_tl2 && b->tiles_informative > 0;
    res->verdict = b->verdict;
    if (res->ratio_pass && res->verdict < CS_V_NEAR && !b->part_al.replaced) {
        res->verdict = CS_V_NEAR;
        b->verdict = CS_V_NEAR;
        b->rule = "ratio_max";
    }
    float close = 1.0f - b->d_al;
    if (close < 0) close = 0;
    res->severity = (float)res->verdict + 0.99f * close;
}

/* Two conditions, each from a principle rather than a benchmark:
 *  - not chance: the a-contrario number of false alarms (lf_verify.h: the
 *    binomial tail of the consensus times the models tried times the tests
 *    made, every reference and its mirror: a Bonferroni bound) is at most
 *    lf_max_nfa, the false-flag rate accepted per generation;
 *  - not a shared detail: unrelated images do share real parts (a magnifier,
 *    a folder body), which verify without being chance; a copy reproduces a
 *    substantial share of the reference, the same 3/8 that the pixel rule's
 *    partial_min_tiles asks of the tiles (6 of 16): a share of the
 *    keypoints the verified geometry leaves visible (lf_verify.h:
 *    cs_lfv_visible), as the pixel rule counts only the tiles both images
 *    show: a crop cuts keypoints away, a copy shrunk into a new canvas loses
 *    those finer than the query's detection reaches, and neither is
 *    evidence that the rest is not the reference's;
 *  - not ambiguous: Lowe's ratio test (2004 s7.1, 0.8, the same ratio the
 *    tentative matches pass, CS_LFV_RATIO) one level up: the share verified
 *    must exceed the best share of any other reference by 1/0.8. A detail
 *    shared by a family of references (every folder icon's body) verifies
 *    against several of them alike; a copy verifies best against its source.
 *  - not a colour twin: a global colour edit (brightness, contrast,
 *    saturation, hue) is a copy; two or more of the reference's colour parts
 *    changed beyond the best global edit (lf_recolour_parts, measured by
 *    analyze/lf_colour.h in cs_an_refine) are a part recoloured: another
 *    picture of the same shapes; so is one, where no caption band may hide
 *    it and the pixels left unexplained at 256 px are one solid area;
 *  - not another picture: mapped by the verified geometry, fewer than half
 *    of the reference's compared cells differ (analyze/lf_part.h).
 * The covered area separates a copy of the picture (near-copy) from a
 * reference pasted into part of a new one (partial). */
int cs_an_local_measure(const cs_lfv_match *m, const cs_an_settings *s) {
    return m->inliers > 0 && m->log10_nfa1 <= log10(s->lf_max_nfa) &&
           (m->share_visible >= s->lf_min_share || m->rival <= CS_LFV_RATIO * m->score);
}

int cs_an_local_pixels(const cs_an_cand *c, const cs_an_settings *s) {
    const cs_lfv_match *m = &c->lf;
    const cs_lfp *p = &c->part_lf;
    if (m->recolour < 0 || !p->measured || p->grid <= 0) return 0; /* not measured: nothing confirmed */
    double footprint = (double)m->coverage * p->grid; /* cells the mapped reference covers */
    return m->parts_recoloured < s->lf_recolour_parts && p->cells >= s->lf_min_share * footprint &&
           p->differ - p->caption_cells < CS_LFP_MIN_CELLS;
}

void cs_an_verdict_local(cs_an_cand *c, const cs_an_settings *s) {
    const cs_lfv_match *m = &c->lf;
    if (c->verdict >= CS_V_NEAR || m->inliers <= 0 || m->log10_nfa1 > log10(s->lf_max_nfa)) return;
    if (m->rival > CS_LFV_RATIO * m->score) return;
    /* not a colour twin: brightness/contrast/saturation/hue edits change every
     * pixel alike; a part recoloured is another picture (analyze/lf_colour.h) */
    if (m->recolour >= 0 && m->parts_recoloured >= s->lf_recolour_parts) return;
    /* lf_recolour_parts tolerates one colour recoloured for the caption band
     * that may hide it; where the working resolution finds no caption band
     * and shows what the fit left unexplained as one solid area of the
     * picture (lf_part.h: solid), the one colour changed is no occlusion but
     * a part recoloured: a palette twin (an icon theme's folder in another
     * colour scheme, whose body the hue rotation explains and whose tab or
     * emblem it does not). A global edit's one colour part moved beyond the
     * fit at 64 px shows no such area at 256 px (none, or residue spread
     * across the picture) */
    if (m->recolour >= 0 && m->parts_recoloured >= 1 && c->part_lf.fine == CS_FINE_OK && !c->part_lf.caption &&
        c->part_lf.solid)
        return;
    /* not a template twin: one compact part of the reference replaced by
     * another (an emblem, a glyph), the rest alike (analyze/lf_part.h) */
    if (c->part_lf.replaced) return;
    /* not another picture: the part veto leaves a picture whose compared
     * cells differ for half or more to "the rules that measure similarity"
     * (lf_part.h, condition 5); keypoints measure none, so the pixels the
     * verified geometry maps must keep a common body: fewer than half of
     * the cells compared differ (a caption band, at most a quarter of the
     * height, and an edit's residue stay below it), and apart from the
     * caption bands fewer than a quarter. What a copy leaves unexplained
     * beside its caption is an edit's residue along edges and the border
     * a crop or rotation leaves (at most 0.22 of the cells on the bench's
     * three sets and on crop+rotate copies at the edits' extremes); a
     * quarter of the footprint is a place of its own (the share lf_part.h
     * takes for one in condition 3b and for a caption in condition 4), and
     * unexplained it is another picture's worth: a twin redrawn over a
     * third of the picture (another face), a shared detail whose
     * surroundings the geometry maps onto other content (issue 13: six
     * distractors at 0.28-0.43 on s1/s3, none on s2) */
    if (c->part_lf.measured && c->part_lf.cells > 0 &&
        (2 * c->part_lf.differ >= c->part_lf.cells ||
         4 * (c->part_lf.differ - c->part_lf.caption_cells) >= c->part_lf.cells))
        return;
    /* A share of the visible keypoints below lf_min_share has two causes.
     * At the reference's own scale a copy re-detects the reference's
     * keypoints, so those missing are not there: a shared detail or a twin
     * (the share rule stands). A copy rescaled by a level of SIFT's scale
     * sampling or more (CS_LFV_SCALE_LEVEL: shrunk into a new canvas, or a
     * rotation's grown canvas) is detected at other levels, and fewer of the
     * reference's strongest keypoints come back, copy or not; there the
     * pixels decide (cs_an_local_pixels): mapped by the verified geometry, a
     * shared detail leaves the rest of the reference's footprint
     * unexplained, a copy residue only. */
    /* At the working resolution (part_lf.fine, analyze/fine_ref.h) the
     * pixels answer the same question at the reference's own scale too:
     * the keypoints missing from a copy at its own scale (a rotation's
     * resampling, a crop's border, an edit that moved SIFT's extrema) and
     * those missing from a twin or a shared detail differ in what the
     * mapped pixels show, and 256 px show a twin's other part over 16x the
     * pixels the thumbnail had; the thumbnail alone is too coarse to tell
     * (the 64 px fallback keeps the rescaled-only condition). */
    int px = 0;
    if (m->share_visible < s->lf_min_share) {
        int rescaled = m->scale <= 1 / CS_LFV_SCALE_LEVEL || m->scale >= CS_LFV_SCALE_LEVEL;
        if (!(rescaled || c->part_lf.fine == CS_FINE_OK) || !cs_an_local_pixels(c, s)) return;
        px = 1;
    }
    int v = m->coverage >= s->lf_near_cover ? CS_V_NEAR : CS_V_PARTIAL;
    /* Not a whole-image copy when the pixels show a region that is not: the
     * covered area is the hull of the verified keypoints, blind to a region
     * redrawn inside it. A pixel verdict of partial (partial_min_tiles: most
     * informative tiles reproduced in place, at the alignment the pixels
     * found, so the geometry is the reference's own) says the other tiles
     * differ beyond every whole-image pixel bound: the finding stays partial,
     * its per-tile distances the evidence of the region that differs. A copy
     * rotated, rescaled or recoloured matches too few tiles in place for the
     * pixel rule and keeps the local verdict. */
    if (v == CS_V_NEAR && c->verdict == CS_V_PARTIAL) return;
    if (v <= c->verdict) return;
    c->verdict = v;
    c->rule = v == CS_V_NEAR ? (px ? "lf_near_px" : "lf_near") : (px ? "lf_partial_px" : "lf_partial");
}

void cs_an_verdict_local_result(cs_an_result *res) {
    if (!res->has_best || strncmp(res->best.rule, "lf_", 3)) return;
    float close = res->best.lf.score;
    if (close > 1) close = 1;
    float pix = 1.0f - res->best.d_al;
    if (pix > close) close = pix;
    res->severity = (float)res->verdict + 0.99f * close;
}
