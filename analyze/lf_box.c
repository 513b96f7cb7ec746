/* lf_box.c — the generation's foreground box as a second local-feature view
 * (see lf_box.h). */
#include "analyze/lf_box.h"

#include <math.h>
#include <string.h>

void cs_lfbox_find(const cs_lf_set *q, const cs_image *img, cs_lfbox *b) {
    memset(b, 0, sizeof *b);
    /* fewer keypoints than the verifier's minimal consensus: nothing a view
     * of them could verify */
    if (q->n < 3 || q->w < 1 || q->h < 1 || img->w < 1 || img->h < 1) return;
    float x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY;
    for (int i = 0; i < q->n; i++) {
        const float r = q->size[i] / 2; /* SIFT's size is the neighbourhood's diameter */
        x0 = fminf(x0, q->xy[i][0] - r), y0 = fminf(y0, q->xy[i][1] - r);
        x1 = fmaxf(x1, q->xy[i][0] + r), y1 = fmaxf(y1, q->xy[i][1] + r);
    }
    x0 = fmaxf(x0, 0), y0 = fmaxf(y0, 0);
    x1 = fminf(x1, (float)q->w), y1 = fminf(y1, (float)q->h);
    /* the working frame's pixels -> original pixels, rounded outwards */
    const double fx = (double)img->w / q->w, fy = (double)img->h / q->h;
    int ox = (int)floor(x0 * fx), oy = (int)floor(y0 * fy);
    int ex = (int)ceil(x1 * fx), ey = (int)ceil(y1 * fy);
    if (ox < 0) ox = 0;
    if (oy < 0) oy = 0;
    if (ex > img->w) ex = img->w;
    if (ey > img->h) ey = img->h;
    const int cw = ex - ox, ch = ey - oy;
    if (cw < 1 || ch < 1) return;
    /* the box's longer side in working px: under 1/8 of the side, no copy the
     * verifier accepts (scale >= 1/8, lf_verify.h) */
    const double longer = fmax(cw / fx, ch / fy);
    if (longer < CS_LF_SIDE / 8.0) return;
    /* the view's enlargement over the as-is working image: the crop's longer
     * side goes to CS_LF_SIDE (cs_lf_extract); under one SIFT scale level the
     * as-is pyramid already samples the object at the same levels */
    const double gain = ((double)CS_LF_SIDE / (cw > ch ? cw : ch)) / ((double)q->w / img->w);
    if (gain < CS_LFV_SCALE_LEVEL) return;
    b->ok = 1;
    b->ox = ox, b->oy = oy, b->cw = cw, b->ch = ch;
    b->bx = ox / fx, b->by = oy / fy;
}

int cs_lfbox_extract(const cs_image *img, const cs_lfbox *b, cs_lf_set *out, cs_err *err) {
    out->n = 0;
    if (!b->ok) return 0;
    cs_image c = {0};
    if (cs_image_alloc(&c, b->cw, b->ch, err)) return -1;
    for (int y = 0; y < b->ch; y++)
        memcpy(c.rgb + (size_t)y * b->cw * 3, img->rgb + ((size_t)(b->oy + y) * img->w + b->ox) * 3, (size_t)b->cw * 3);
    int rc = cs_lf_extract(&c, CS_LF_QUERY_KP, 0, out, err);
    cs_image_free(&c);
    return rc;
}

int cs_lfbox_accept(const cs_lfv_match *m, const cs_lf_set *ref, double min_share) {
    (void)ref;
    if (m->inliers <= 0 || m->extent < min_share) return 0;
    const int rescaled = m->scale <= 1 / CS_LFV_SCALE_LEVEL || m->scale >= CS_LFV_SCALE_LEVEL;
    return rescaled || m->share_visible >= min_share;
}

static void apply6(const double *m, double x, double y, float *ox, float *oy) {
    *ox = (float)(m[0] * x + m[1] * y + m[2]);
    *oy = (float)(m[3] * x + m[4] * y + m[5]);
}

void cs_lfbox_to_query(const cs_lfbox *b, const cs_lf_set *q, const cs_lf_set *bset, const cs_lf_set *ref,
                       cs_lfv_match *m) {
    if (m->inliers <= 0 || bset->w < 1) return;
    /* crop working px -> crop original px -> generation working px */
    const double s = (double)b->cw / bset->w * ((double)q->w / q->orig_w);
    /* m maps the reference into the crop's working frame, mirrored when
     * m->mirrored (cs_lf_mirror: x -> w - 1 - x). Its image in the
     * generation's frame, mirrored the same way: x_q = bx + s x_c, and for
     * the mirror x_qm = (qw - 1) - x_q with x_c = (cw - 1) - x_cm. */
    const double tx = m->mirrored ? (q->w - 1) - b->bx - s * (bset->w - 1) : b->bx;
    double g[6] = {s * m->m[0], s * m->m[1], s * m->m[2] + tx, s * m->m[3], s * m->m[4], s * m->m[5] + b->by};
    memcpy(m->m, g, sizeof g);
    /* original pixels: cs_lfv_verify gives them in the crop as is; the crop
     * sits at (ox, oy) of the generation */
    m->m_orig[2] += b->ox, m->m_orig[5] += b->oy;
    /* the evidence says which view verified the match (a reader who checks
     * the keypoints needs the frame they were detected in) */
    m->view_box[0] = b->ox, m->view_box[1] = b->oy, m->view_box[2] = b->cw, m->view_box[3] = b->ch;
    for (int c = 0; c < 4; c++) m->gen_poly[c][0] += (float)b->ox, m->gen_poly[c][1] += (float)b->oy;
    m->gen_w = q->orig_w, m->gen_h = q->orig_h;
    m->scale = (float)(m->scale * s);
    /* coverage of the whole generation by the mapped reference (the mirror
     * frame has the same areas) */
    float whole[4][2];
    const double rc[4][2] = {{0, 0}, {ref->w, 0}, {ref->w, ref->h}, {0, ref->h}};
    for (int c = 0; c < 4; c++) apply6(g, rc[c][0], rc[c][1], &whole[c][0], &whole[c][1]);
    const double qa = (double)q->w * q->h;
    m->coverage = qa > 0 ? (float)(cs_lfv_clip_area((const float (*)[2])whole, 4, q->w, q->h) / qa) : 0;
    m->partial = m->coverage < CS_LFV_PARTIAL_COVER;
    /* the reference keypoints a copy under this model shows anywhere in the
     * generation, at a size the box view's detection reaches (its smallest
     * keypoint, in generation px): never fewer than the crop alone shows */
    float qmin = INFINITY;
    for (int i = 0; i < bset->n; i++) qmin = fminf(qmin, bset->size[i]);
    m->visible = cs_lfv_visible((const float (*)[2])ref->xy, ref->size, ref->n, g, q->w, q->h, (float)(qmin * s));
    m->share_visible = (float)m->inliers / (float)(m->visible > CS_LFV_MIN_KP ? m->visible : CS_LFV_MIN_KP);
    if (m->share_visible > 1) m->share_visible = 1;
    /* the extent against the same visible keypoints: the inlier box back in
     * the reference's working px (ref_poly is in its original px) */
    const double rs = ref->w ? (double)ref->orig_w / ref->w : 1;
    const float ib[4] = {(float)(m->ref_poly[0][0] / rs), (float)(m->ref_poly[0][1] / rs),
                         (float)(m->ref_poly[2][0] / rs), (float)(m->ref_poly[2][1] / rs)};
    m->extent = cs_lfv_extent((const float (*)[2])ref->xy, ref->size, ref->n, g, q->w, q->h, (float)(qmin * s), ib);
}
