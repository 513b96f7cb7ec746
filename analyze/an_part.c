/* an_part.c — the replaced-part veto where it can change a verdict (see
 * analyze/an_part.h). */
#include "analyze/an_part.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/fine_ref.h"
#include "analyze/lf_blur.h"
#include "analyze/lf_colour.h"
#include "analyze/verdict.h"
#include "index/refs.h"

#define S CS_THUMB_SIZE

/* part_al at the working resolution (analyze/fine_ref.h): the generation's
 * file and the reference's source re-read, both at CS_FINE_SIDE, compared
 * under the pair's verified local-feature geometry (c->lf.m_orig, as the
 * local rule's part_lf, an_local.c), not under the tiled-L2 box.
 *
 * Why not the box: it is the best of 4 crop sides x 3 x 3 places (and
 * derotations 2.5 degrees apart) on the 64 px thumbnails, so it registers
 * the generation to within a few thumbnail pixels, which the 64 px
 * measurement's one-pixel neighbourhood absorbs. At 256 px the same error
 * is 4x as many pixels, beyond the 2 working px the flatness test allows
 * (CS_LFC_REG_PX, the geometry's error): every edge of a true copy would
 * differ (a copy turned by 10 degrees, derotated by 7.5, showed a 102-cell
 * "replaced part" at 256 px and none at 64). A verified geometry is
 * accurate to about a working pixel. So the pair is measured at 256 px
 * only where it has one that is significant (the a-contrario odds of the
 * local rules, lf_max_nfa: an insignificant one may be a wrong map, whose
 * pixels would veto a true copy); otherwise it stays at 64 px with the box
 * (CS_FINE_COARSE).
 *
 * Returns a CS_FINE_* status; c->part_al is set only for CS_FINE_OK. The
 * cost, two decodes and a measurement, is paid only for a candidate a
 * pixel rule is about to flag (cs_an_judge) or the ratio test may raise
 * (cs_an_part_ratio).
 *
 * One box is no estimate but exact: the whole reference (box 0, 0, S, not
 * derotated), i.e. the generation is the reference's frame as it is or
 * mirrored, rescaled (a resize, JPEG, blur, colour edit, or a twin drawn
 * on the same canvas). Its map is the frames' scale, as accurate as the
 * pixels, so the pair is measured at 256 px with it where it has no
 * verified geometry (frame = 1): a template twin whose emblem is finer than
 * a thumbnail pixel is seen there, as under a verified geometry (issue 13:
 * papirus folders with another emblem, partial_min_tiles at 64 px). A crop
 * box is never read as the whole frame: a copy cropped by a quarter (s1
 * q0542, box 0, 8, 48), read as the whole frame at 256 px, showed its
 * misregistration as one solid 380-cell "part replaced" (measured, session
 * 12), and the twins whose best box was a few pixels off the frame showed
 * none there. */
static int part_al_fine(cs_an_cand *c, const cs_an_refs *r, const cs_an_query *q, const cs_an_settings *s,
                        int frame) {
    enum { F = CS_FINE_SIDE };
    if (!frame && !(c->lf.inliers > 0 && c->lf.log10_nfa1 <= log10(s->lf_max_nfa))) return CS_FINE_COARSE;
    cs_image img = {0};
    cs_err e = {0};
    uint8_t *gen = malloc((size_t)F * F * 3), *ref = malloc((size_t)F * F * 3);
    int st = CS_FINE_UNDECODABLE, rw = 0, rh = 0;
    /* the generation decoded as analyze.c decoded it (cs_image_load) */
    if (!gen || !ref || cs_image_load(&img, q->src, NULL, &e) || cs_fine_image(&img, F, gen)) goto out;
    st = cs_fine_ref_load(r->fine, r->ids[c->row], F, ref, &rw, &rh);
    if (st != CS_FINE_OK) goto out;
    /* an image with fewer than F pixels on a side has no more detail at F
     * than its thumbnail: enlarged, its JPEG blocks and resampling edges
     * become whole cells (a 38 px copy showed a 13-cell "part") */
    if (img.w < F || img.h < F || rw < F || rh < F) {
        st = CS_FINE_LOWRES;
        goto out;
    }
    /* the frames' map, reference original px -> generation original px */
    const double sx = (double)img.w / rw, sy = (double)img.h / rh;
    const double m_frame[6] = {c->al_mirrored ? -sx : sx, 0, c->al_mirrored ? img.w : 0, 0, sy, 0};
    cs_an_part_fine(ref, rw, rh, gen, img.w, img.h, frame ? m_frame : c->lf.m_orig, s->lf_colour_tol, &c->part_al);
    st = c->part_al.fine; /* CS_FINE_UNDECODABLE when out of memory */
    if (st != CS_FINE_OK) {
        memset(&c->part_al, 0, sizeof c->part_al);
        c->part_al.measured = 1;
    }
out:
    cs_image_free(&img);
    free(gen);
    free(ref);
    return st;
}

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
    /* at the working resolution where both sources can be read (as the
     * local rule's part_lf, an_local.c); else at 64 px, and part_al.fine
     * says why */
    int fine = CS_FINE_NOT_ASKED;
    /* without a significant verified geometry, and with a crop box or a
     * derotation (no exact map), the answer is 64 px in this process and
     * under mpirun alike (the reason depends on the pair, not on which
     * process has the files), so the evidence is the same at any rank count
     * (test_mpi.sh's fan-out reports); the whole frame, like a verified
     * geometry, is read at 256 px wherever the files are */
    const int verified = c->lf.inliers > 0 && c->lf.log10_nfa1 <= log10(s->lf_max_nfa);
    const int frame = !verified && !cs_an_cand_derotated(c) && c->box[0] == 0 && c->box[1] == 0 && c->box[2] == S;
    if (!verified && !frame) fine = CS_FINE_COARSE;
    else if (r->fine && q->src && (fine = part_al_fine(c, r, q, s, frame)) == CS_FINE_OK) return;
    uint8_t map[S * S];
    cs_lfc kc;
    /* the hue search stops once fewer pixels are left than a part needs:
     * an edited copy is usually explained by the first fits */
    cs_lfc_measure_map_few(r->thumbs + (int64_t)c->row * S * S * 3, S, S, q->thumb, S, S, S, m, s->lf_colour_tol,
                           CS_LFP_MIN_PX, &kc, map);
    cs_lfp_measure(map, S, &c->part_al);
    cs_lfp_shape(&c->part_al, cs_lfc_parts_moved(&kc));
    c->part_al.fine = fine; /* 64 px, and why where 256 was asked */
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
    cs_lfp_shape(out, cs_lfc_parts_moved(&kc));
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
