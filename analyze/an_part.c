/* an_part.c — the replaced-part veto where it can change a verdict (see
 * analyze/an_part.h). */
#include "analyze/an_part.h"

#include <stdlib.h>
#include <string.h>

#include "analyze/fine_ref.h"
#include "analyze/lf_blur.h"
#include "analyze/lf_colour.h"
#include "analyze/verdict.h"
#include "index/refs.h"

#define S CS_THUMB_SIZE

void cs_an_part_al(cs_an_cand *c, const cs_an_refs *r, const cs_an_query *q, const cs_an_settings *s) {
    if (c->part_al.measured) return;
    memset(&c->part_al, 0, sizeof c->part_al);
    c->part_al.measured = 1;
    if (!q || !r->has_thumbs || !r->thumbs || c->row < 0 || c->row >= r->n || !(c->box[2] > 0)) return;
    /* The crop box as a map from reference thumbnail px to generation
     * thumbnail px (mirrored: x -> S - x). The box lies inside the
     * reference and fills the generation, so every generation pixel is
     * compared with the reference pixel it was aligned to. */
    double k = (double)S / c->box[2];
    double m[6] = {c->al_mirrored ? -k : k, 0, c->al_mirrored ? S + c->box[0] * k : -c->box[0] * k,
                   0, k, -c->box[1] * k};
    /* a derotated view gave the distance (match.h, cs_an_derotate): its map */
    if (cs_an_cand_derotated(c)) cs_an_derotate_map(m, q->img_w, q->img_h, c->rot_deg);
    uint8_t map[S * S];
    cs_lfc kc;
    /* the hue search stops once fewer pixels are left than a part needs:
     * an edited copy is usually explained by the first fits */
    cs_lfc_measure_map_few(r->thumbs + (int64_t)c->row * S * S * 3, S, S, q->thumb, S, S, S, m, s->lf_colour_tol,
                           CS_LFP_MIN_PX, &kc, map);
    cs_lfp_measure(map, S, &c->part_al);
    cs_lfp_shape(&c->part_al, kc.recolour >= 0 ? kc.parts_recoloured : -1);
}

/* a rule the pixel veto applies to: decided by verdict_cand, not copy_tl2 */
static int pixel_vetoable(const cs_an_cand *c) {
    return c->verdict > CS_V_NOVEL && strcmp(c->rule, "copy_tl2") && strncmp(c->rule, "lf_", 3);
}

void cs_an_judge(cs_an_cand *c, const cs_an_refs *r, const cs_an_query *q, int gen_pdq_quality,
                 const cs_an_settings *s) {
    cs_an_verdict_cand(c, gen_pdq_quality, s);
    cs_an_verdict_local(c, s);
    if (c->part_al.measured || !pixel_vetoable(c)) return;
    cs_an_part_al(c, r, q, s);
    if (!c->part_al.replaced) return;
    cs_an_verdict_cand(c, gen_pdq_quality, s);
    cs_an_verdict_local(c, s);
}

void cs_an_part_ratio(cs_an_result *res, const cs_an_refs *r, const cs_an_query *q, const cs_an_settings *s) {
    cs_an_cand *b = &res->best;
    if (res->has_best && b->verdict < CS_V_NEAR && b->d_al <= s->ratio_tl2 && b->tiles_informative > 0)
        cs_an_part_al(b, r, q, s);
}

/* one measurement of part_lf at CS_FINE_SIDE (cs_an_part_fine) */
static void measure_fine(const uint8_t *ref, const uint8_t *pred, int rw, int rh, const uint8_t *gen, int gw,
                         int gh, const double m_orig[6], double tol, uint8_t *map, cs_lfp *out) {
    cs_lfc kc;
    /* a replaced part needs CS_LFP_MIN_PX unexplained pixels at any S
     * (lf_part.c: its cells are pixels, not shares of the side) */
    cs_lfc_measure_map_pred(ref, pred, rw, rh, gen, gw, gh, CS_FINE_SIDE, m_orig, tol, CS_LFP_MIN_PX, &kc, map);
    cs_lfp_measure(map, CS_FINE_SIDE, out);
    cs_lfp_shape(out, kc.recolour >= 0 ? kc.parts_recoloured : -1);
    out->fine = CS_FINE_OK;
}

void cs_an_part_fine(const uint8_t *ref, int rw, int rh, const uint8_t *gen, int gw, int gh, const double m_orig[6],
                     double tol, cs_lfp *out) {
    enum { F = CS_FINE_SIDE };
    uint8_t *map = malloc((size_t)F * F);
    memset(out, 0, sizeof *out);
    out->measured = 1;
    out->fine = CS_FINE_UNDECODABLE; /* no memory: the 64 px measurement stands */
    if (!map) return;
    measure_fine(ref, ref, rw, rh, gen, gw, gh, m_orig, tol, map, out);
    /* At the generation's effective resolution (analyze/lf_blur.h): where
     * differing cells are left that a blur could explain (a part's worth,
     * CS_LFP_MIN_CELLS), the reference is blurred as much as the pair says
     * the generation is, and measured again: the pixels compared are still
     * those where the reference itself is flat (the registration's
     * requirement, and the inside of a part), each compared with the blurred
     * reference. A blurred or resampled copy's edges are then explained;
     * another shape is not (a blur of the reference never draws the
     * generation's emblem, and the emblem's flat inside is still compared,
     * however fine it is). Nothing differing:
     * nothing to explain, and the cost (one estimate, ~10 blurs of the
     * working image) is paid only here. */
    if (out->differ >= CS_LFP_MIN_CELLS) {
        float sg = cs_lfb_estimate(ref, rw, rh, gen, gw, gh, F, m_orig, tol);
        uint8_t *rb = sg > 0 ? malloc((size_t)F * F * 3) : NULL;
        if (rb && !cs_lfb_blur(ref, F, sg, rb)) {
            measure_fine(ref, rb, rw, rh, gen, gw, gh, m_orig, tol, map, out);
            out->blur = sg;
        }
        free(rb);
    }
    free(map);
}

int cs_an_part_other(const cs_lfp *p, const cs_an_settings *s) {
    if (!p->measured) return 0;
    if (p->recoloured >= 0 && p->recoloured >= s->lf_recolour_parts) return 1;
    return p->replaced || (p->cells > 0 && 2 * p->differ >= p->cells);
}

void cs_an_part_lf_take(cs_an_cand *c, const cs_an_query *q) {
    for (int j = 0; j < q->n_lf && j < CS_AN_LFK; j++) {
        if (q->lf_row[j] != c->row) continue;
        const cs_lfp *f = &q->lf_part[j];
        if (f->fine == CS_FINE_OK) c->part_lf = *f;
        else c->part_lf.fine = f->fine; /* 64 px, and why (CS_FINE_NOT_ASKED: not a pair it measured) */
        return;
    }
}
