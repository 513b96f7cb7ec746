/* verdict.c — copy / near-copy / partial / novel from the measured evidence.
 * Every threshold is a setting (analyze/settings.c has defaults and sources).
 *
 *   copy       tiled L2 as is or mirrored <= copy_tl2: every tile of the
 *              image is within a few grey levels of the reference's.
 *   near-copy  tiled L2 after alignment (crop/shift/mirror) <= near_tl2,
 *              or PDQ <= pdq_near with both qualities >= pdq_min_quality
 *              and the pixels within pdq_confirm_tl2 (unconfirmed when the
 *              index has no thumbnails), or embedding cosine >= embed_near
 *              with the pixels within embed_confirm_tl2 (unconfirmed when
 *              the index has no thumbnails),
 *              or Gu et al.'s ratio test d1/d2 < ratio_max with d1 <= ratio_tl2.
 *   partial    at least partial_min_tiles informative tiles of the reference
 *              (and partial_min_frac of them) match within partial_tile_l2:
 *              a large region is reproduced while the rest differs.
 *   novel      none of these. */
#include <math.h>
#include <string.h>

#include "analyze/verdict.h"

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
    if (c->d_al <= s->near_tl2) {
        c->verdict = CS_V_NEAR;
        c->rule = "near_tl2";
        return;
    }
    if (c->pdq >= 0 && c->pdq <= s->pdq_near && gen_pdq_quality >= s->pdq_min_quality &&
        c->pdq_q_ref >= s->pdq_min_quality &&
        (!isfinite(c->d_al) || c->d_al <= s->pdq_confirm_tl2)) { /* no thumbnails: unconfirmed */
        c->verdict = CS_V_NEAR;
        c->rule = "pdq_near";
        return;
    }
    /* An embedding ranks by what it was trained or fitted to see, and its
     * threshold is calibrated for one embedder (SSCD's 0.75): the tiny
     * whitened-pixel descriptor passes it for emoji of the same layout and
     * palette. Where the pixels can be checked they must agree, as for PDQ. */
    if (c->emb_cos > -2 && c->emb_cos >= s->embed_near &&
        (!isfinite(c->d_al) || c->d_al <= s->embed_confirm_tl2)) { /* no thumbnails: unconfirmed */
        c->verdict = CS_V_NEAR;
        c->rule = "embed_near";
        return;
    }
    if (c->tiles_matched >= s->partial_min_tiles &&
        c->tiles_matched >= s->partial_min_frac * c->tiles_informative) {
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
    res->ratio_pass = res->ratio < s->ratio_max && b->d_al <= s->ratio_tl2;
    res->verdict = b->verdict;
    if (res->ratio_pass && res->verdict < CS_V_NEAR) {
        res->verdict = CS_V_NEAR;
        b->verdict = CS_V_NEAR;
        b->rule = "ratio_max";
    }
    float close = 1.0f - b->d_al;
    if (close < 0) close = 0;
    res->severity = (float)res->verdict + 0.99f * close;
}
