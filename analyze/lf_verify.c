/* lf_verify.c — ratio-test matches, RANSAC similarity, evidence (see
 * lf_verify.h). */
#include "analyze/lf_verify.h"

#include <math.h>
#include <string.h>

#include "index/opencv_shim.h"

double cs_lfv_clip_area(const float (*p)[2], int n, double w, double h) {
    double a[16][2], b[16][2];
    int na = n < 8 ? n : 8;
    for (int i = 0; i < na; i++) {
        a[i][0] = p[i][0];
        a[i][1] = p[i][1];
    }
    /* clip against x >= 0, x <= w, y >= 0, y <= h in turn */
    for (int e = 0; e < 4 && na > 0; e++) {
        int ax = e < 2 ? 0 : 1;
        double lim = e == 0 || e == 2 ? 0 : (e == 1 ? w : h);
        int keep_ge = e == 0 || e == 2;
        int nb = 0;
        for (int i = 0; i < na; i++) {
            const double *s = a[i], *t = a[(i + 1) % na];
            int si = keep_ge ? s[ax] >= lim : s[ax] <= lim, ti = keep_ge ? t[ax] >= lim : t[ax] <= lim;
            if (si) {
                b[nb][0] = s[0];
                b[nb][1] = s[1];
                nb++;
            }
            if (si != ti) {
                double f = (lim - s[ax]) / (t[ax] - s[ax]);
                b[nb][0] = s[0] + f * (t[0] - s[0]);
                b[nb][1] = s[1] + f * (t[1] - s[1]);
                b[nb][ax] = lim;
                nb++;
            }
        }
        memcpy(a, b, sizeof(double) * 2 * (size_t)nb);
        na = nb;
    }
    double s = 0;
    for (int i = 0; i < na; i++) s += a[i][0] * a[(i + 1) % na][1] - a[(i + 1) % na][0] * a[i][1];
    return fabs(s) / 2;
}

/* log of the binomial tail P[X >= k], X ~ Bin(n, p): the terms by the
 * recurrence C(n,i+1)/C(n,i) = (n-i)/(i+1), summed in log space (no lgamma:
 * it writes the global signgam, a race between threads) */
static double log_binom_tail(int n, int k, double p) {
    if (k <= 0) return 0;
    if (k > n) return -INFINITY;
    const double lp = log(p), lq = log1p(-p);
    double lc = 0; /* log C(n, i) */
    for (int i = 0; i < k; i++) lc += log((double)(n - i) / (i + 1));
    double t[CS_LF_QUERY_KP + 1], mx = -INFINITY;
    for (int i = k; i <= n; i++) {
        t[i] = lc + i * lp + (n - i) * lq;
        if (t[i] > mx) mx = t[i];
        if (i < n) lc += log((double)(n - i) / (i + 1));
    }
    double s = 0;
    for (int i = k; i <= n; i++) s += exp(t[i] - mx);
    return mx + log(s);
}

double cs_lfv_log10_nfa1(int m, int k, int qw, int qh) {
    if (m < 2 || k < 2 || qw <= 0 || qh <= 0) return 0;
    if (m > CS_LF_QUERY_KP) m = CS_LF_QUERY_KP;
    double p0 = M_PI * CS_LFV_REPROJ * CS_LFV_REPROJ / ((double)qw * qh);
    if (p0 > 1) p0 = 1;
    double models = log(m * (m - 1) / 2.0);
    return (models + log_binom_tail(m - 2, k - 2, p0)) / log(10.0);
}

static void apply_m(const double *m, float x, float y, float *ox, float *oy) {
    *ox = (float)(m[0] * x + m[1] * y + m[2]);
    *oy = (float)(m[3] * x + m[4] * y + m[5]);
}

int cs_lfv_visible(const float (*xy)[2], const float *size, int n, const double *m, int qw, int qh,
                   float q_min_size) {
    const double sc = sqrt(m[0] * m[0] + m[3] * m[3]);
    int v = 0;
    for (int j = 0; j < n; j++) {
        float x, y;
        apply_m(m, xy[j][0], xy[j][1], &x, &y);
        v += x >= 0 && y >= 0 && x < qw && y < qh && size[j] * sc * CS_LFV_MAX_DSCALE >= q_min_size;
    }
    return v;
}

float cs_lfv_extent(const float (*xy)[2], const float *size, int n, const double *m, int qw, int qh,
                    float q_min_size, const float ib[4]) {
    const double sc = sqrt(m[0] * m[0] + m[3] * m[3]);
    double x0 = ib[0], y0 = ib[1], x1 = ib[2], y1 = ib[3]; /* the inliers are shown: inside the box */
    for (int j = 0; j < n; j++) {
        float x, y;
        apply_m(m, xy[j][0], xy[j][1], &x, &y);
        if (x >= 0 && y >= 0 && x < qw && y < qh && size[j] * sc * CS_LFV_MAX_DSCALE >= q_min_size) {
            x0 = fmin(x0, xy[j][0]), y0 = fmin(y0, xy[j][1]);
            x1 = fmax(x1, xy[j][0]), y1 = fmax(y1, xy[j][1]);
        }
    }
    const double a = fmax(ib[2] - ib[0], 1) * fmax(ib[3] - ib[1], 1), all = fmax(x1 - x0, 1) * fmax(y1 - y0, 1);
    const double e = a / all;
    return (float)(e < 1 ? e : 1);
}

/* Lowe's consistency (2004 s7.3): query keypoint i agrees with reference
 * keypoint j under a model of rotation theta (degrees) and scale sc in its
 * orientation and its scale, which a fit on positions alone ignores */
static int consistent(const cs_lf_set *q, int i, const cs_lf_set *r, int j, double theta, double sc) {
    double da = fmod((double)q->angle[i] - r->angle[j] - theta + 720.0, 360.0);
    if (da > 180) da -= 360;
    double ds = r->size[j] > 0 ? log(q->size[i] / r->size[j] / sc) : 10;
    return fabs(da) <= CS_LFV_MAX_DANGLE && fabs(ds) <= log(CS_LFV_MAX_DSCALE);
}

/* Guided matching under the similarity m (Hartley & Zisserman 2004 s11.6:
 * once a geometry is verified, matches are sought where it predicts them).
 * For every reference keypoint j, the query keypoints where m puts j: within
 * CS_LFV_REPROJ px of its image, consistent in orientation and scale, and
 * mutual nearest neighbours with j by descriptor (nn[i] == j: j is the
 * nearest of the reference's keypoints to i, and i the nearest of all the
 * query's keypoints to j; see mutual()); the nearest of them (lowest index on
 * a tie) is j's match, gq[j] (-1: none). Returns the reference keypoints
 * matched.
 * Why no ratio margin here: Lowe's 0.8 guards a match found anywhere in the
 * image against a second reference keypoint nearly as alike elsewhere; the
 * verified geometry has already said where j must be, at what size and
 * turned how, so what is asked of the descriptor is that j and i are each
 * other's best explanation. Mutual, not one-sided: a structure repeated in
 * the query (a frame's four corners, a symbol turned by its symmetry) gives
 * its match to one keypoint only, the one most like j, and the geometry
 * must put that one at j's place; a one-sided nearest let every repetition
 * that fell at a predicted place count (measured: +4 distractors on s1, a
 * shared recycle symbol at 120 degrees among them; docs/BENCHMARKS.md h13g).
 * An unrelated image's keypoints do not sit where a chance model predicts,
 * at its scale and rotation, mutually nearest to j (tests/test_lf_guided.c:
 * 0 matches in 2,112 random models on unrelated pairs), so its count does
 * not rise; a copy's re-detected
 * keypoints do, whatever their ratio. The matches are one to one, and the
 * count is of distinct reference keypoints, the share's numerator. */
static int guided(const cs_lf_set *q, const cs_lf_set *r, const int *nn, const int *d1, const double *m, int *gq) {
    const double sc = sqrt(m[0] * m[0] + m[3] * m[3]), theta = atan2(m[3], m[0]) * 180 / M_PI;
    const double r2 = CS_LFV_REPROJ * CS_LFV_REPROJ;
    int n = 0;
    for (int j = 0; j < r->n; j++) {
        const double px = m[0] * r->xy[j][0] + m[1] * r->xy[j][1] + m[2];
        const double py = m[3] * r->xy[j][0] + m[4] * r->xy[j][1] + m[5];
        int best = -1;
        for (int i = 0; i < q->n; i++) {
            if (nn[i] != j) continue;
            const double dx = q->xy[i][0] - px, dy = q->xy[i][1] - py;
            if (dx * dx + dy * dy > r2 || !consistent(q, i, r, j, theta, sc)) continue;
            if (best < 0 || d1[i] < d1[best]) best = i;
        }
        gq[j] = best;
        n += best >= 0;
    }
    return n;
}

/* Keeps nn[i] only where the nearest is mutual: i is also the nearest query
 * keypoint of nn[i] (rq[j], lowest index on a tie), or keep[i] (a keypoint
 * of the ratio-test consensus, already verified; NULL: none); -1 elsewhere. */
static void mutual(int nq, int *nn, const int *rq, const uint8_t *keep) {
    for (int i = 0; i < nq; i++)
        if (nn[i] >= 0 && rq[nn[i]] != i && !(keep && keep[i])) nn[i] = -1;
}

int cs_lfv_guided(const cs_lf_set *q, const cs_lf_set *r, const double *m, int *gq) {
    int nn[CS_LF_QUERY_KP], dn[CS_LF_QUERY_KP], rq[CS_LF_QUERY_KP], rd[CS_LF_QUERY_KP];
    for (int i = 0; i < q->n; i++) { /* the same nearest, both ways, as verify_one */
        int dq[CS_LF_QUERY_KP], b = -1, d1 = 1 << 30;
        cs_lf_dist2(q->desc[i], (const uint8_t (*)[128])r->desc, r->n, dq);
        for (int j = 0; j < r->n; j++) {
            if (dq[j] < d1) d1 = dq[j], b = j;
            if (i == 0 || dq[j] < rd[j]) rd[j] = dq[j], rq[j] = i;
        }
        nn[i] = b, dn[i] = d1;
    }
    mutual(q->n, nn, rq, NULL);
    return guided(q, r, nn, dn, m, gq);
}

/* Least-squares similarity (rotation, uniform scale, translation) from the
 * reference keypoints j with gq[j] >= 0 to their query keypoints, in closed
 * form (centred sums). Returns 0, or -1 when the points are degenerate. */
static int fit_similarity(const cs_lf_set *q, const cs_lf_set *r, const int *gq, double *m) {
    double sx = 0, sy = 0, su = 0, sv = 0;
    int n = 0;
    for (int j = 0; j < r->n; j++)
        if (gq[j] >= 0) {
            sx += r->xy[j][0], sy += r->xy[j][1], su += q->xy[gq[j]][0], sv += q->xy[gq[j]][1];
            n++;
        }
    if (n < 2) return -1;
    sx /= n, sy /= n, su /= n, sv /= n;
    double num_a = 0, num_b = 0, den = 0;
    for (int j = 0; j < r->n; j++)
        if (gq[j] >= 0) {
            const double X = r->xy[j][0] - sx, Y = r->xy[j][1] - sy;
            const double U = q->xy[gq[j]][0] - su, V = q->xy[gq[j]][1] - sv;
            num_a += X * U + Y * V;
            num_b += X * V - Y * U;
            den += X * X + Y * Y;
        }
    if (!(den > 1e-9)) return -1;
    const double a = num_a / den, b = num_b / den;
    m[0] = a, m[1] = -b, m[2] = su - a * sx + b * sy;
    m[3] = b, m[4] = a, m[5] = sv - b * sx - a * sy;
    return 0;
}

/* One direction (as is or mirrored): fills o (inliers 0 when nothing fits). */
static int verify_one(const cs_lf_set *q, const cs_lf_set *r, cs_lfv_match *o, cs_err *err) {
    float src[CS_LF_QUERY_KP][2], dst[CS_LF_QUERY_KP][2];
    int qi[CS_LF_QUERY_KP], ri[CS_LF_QUERY_KP], nn[CS_LF_QUERY_KP], dn[CS_LF_QUERY_KP];
    uint8_t in[CS_LF_QUERY_KP];
    int nm = 0;
    int rq[CS_LF_QUERY_KP], rd[CS_LF_QUERY_KP];
    memset(o, 0, sizeof *o);
    if (r->n < 2) return 0;
    for (int i = 0; i < q->n; i++) {
        int b1 = -1, d1 = 1 << 30, d2 = 1 << 30, dq[CS_LF_QUERY_KP];
        cs_lf_dist2(q->desc[i], (const uint8_t (*)[128])r->desc, r->n, dq); /* SIMD, exact */
        for (int j = 0; j < r->n; j++) {
            int d = dq[j];
            if (d < d1) {
                d2 = d1;
                d1 = d;
                b1 = j;
            } else if (d < d2) d2 = d;
        }
        nn[i] = b1, dn[i] = d1;
        for (int j = 0; j < r->n; j++) /* each reference keypoint's nearest query keypoint */
            if (i == 0 || dq[j] < rd[j]) rd[j] = dq[j], rq[j] = i;
        /* ratio on distances: d1 < 0.8 d2  <=>  d1^2 < 0.64 d2^2 */
        if (b1 >= 0 && (double)d1 < (double)CS_LFV_RATIO * CS_LFV_RATIO * d2) {
            src[nm][0] = r->xy[b1][0];
            src[nm][1] = r->xy[b1][1];
            dst[nm][0] = q->xy[i][0];
            dst[nm][1] = q->xy[i][1];
            qi[nm] = i;
            ri[nm] = b1;
            nm++;
        }
    }
    o->matches = nm;
    if (nm < 3) return 0;
    double m[6];
    int ni = cs_cv_fit(&src[0][0], &dst[0][0], nm, 0, CS_LFV_REPROJ, m, in, err);
    if (ni < 0) return -1;
    double sc = sqrt(m[0] * m[0] + m[3] * m[3]);
    if (ni < 3 || !(sc >= 1.0 / 8 && sc <= 8)) return 0;
    /* Lowe's consistency: a true match also agrees with the model in its
     * keypoint's orientation and scale, which RANSAC on positions ignores;
     * random position coincidences rarely do */
    const double theta = atan2(m[3], m[0]) * 180 / M_PI;
    ni = 0;
    for (int i = 0; i < nm; i++) {
        if (!in[i]) continue;
        in[i] = (uint8_t)consistent(q, qi[i], r, ri[i], theta, sc);
        ni += in[i];
    }
    if (ni < 3) return 0;
    /* the significance is the ratio-test consensus's: the guided matches
     * below are conditioned on its model, outside the null that
     * cs_lfv_log10_nfa1 counts, so they add nothing to it (conservative) */
    o->log10_nfa1 = cs_lfv_log10_nfa1(nm, ni, q->w, q->h);
    uint8_t rin[CS_LF_QUERY_KP] = {0}; /* the consensus's distinct reference keypoints */
    for (int i = 0; i < nm; i++)
        if (in[i]) rin[ri[i]] = 1;
    /* guided matching under the verified model, then the model refitted on
     * every match and matched again (at most twice: a refit moves the
     * prediction by a fraction of CS_LFV_REPROJ, so a third pass finds
     * nothing new); a refit is kept while it verifies no fewer keypoints.
     * Under the RANSAC model every consensus keypoint is found again (it is
     * within CS_LFV_REPROJ, consistent, passed the ratio test, so its nearest
     * is j, and stays admissible mutual or not; only one that OpenCV's final
     * refinement moved past CS_LFV_REPROJ is not), so the count does not
     * fall below the consensus's. */
    uint8_t keep[CS_LF_QUERY_KP] = {0};
    for (int i = 0; i < nm; i++)
        if (in[i]) keep[qi[i]] = 1;
    mutual(q->n, nn, rq, keep);
    int gq[CS_LF_QUERY_KP], g2[CS_LF_QUERY_KP];
    int ng = guided(q, r, nn, dn, m, gq);
    for (int it = 0; it < 2; it++) {
        double m2[6];
        if (fit_similarity(q, r, gq, m2)) break;
        const double s2 = sqrt(m2[0] * m2[0] + m2[3] * m2[3]);
        if (!(s2 >= 1.0 / 8 && s2 <= 8)) break;
        int n2 = guided(q, r, nn, dn, m2, g2);
        if (n2 < ng) break;
        const int same = n2 == ng && !memcmp(gq, g2, sizeof(int) * (size_t)r->n);
        memcpy(m, m2, sizeof m2);
        memcpy(gq, g2, sizeof(int) * (size_t)r->n);
        ng = n2;
        if (same) break;
    }
    sc = sqrt(m[0] * m[0] + m[3] * m[3]);
    ni = ng;
    if (ni < 3) { /* duplicates of two reference keypoints: no similarity verified */
        memset(o, 0, sizeof *o);
        o->matches = nm;
        return 0;
    }
    o->inliers = ni;
    for (int j = 0; j < r->n; j++) o->ratio_inliers += rin[j] && gq[j] >= 0; /* of the inliers */
    o->ref_w = r->orig_w, o->ref_h = r->orig_h, o->gen_w = q->orig_w, o->gen_h = q->orig_h;
    memcpy(o->m, m, sizeof m);
    o->score = (float)ni / (float)(r->n > CS_LFV_MIN_KP ? r->n : CS_LFV_MIN_KP);
    if (o->score > 1) o->score = 1;
    float qmin = INFINITY;
    for (int i = 0; i < q->n; i++) qmin = fminf(qmin, q->size[i]);
    o->scale = (float)sc;
    o->visible = cs_lfv_visible((const float (*)[2])r->xy, r->size, r->n, m, q->w, q->h, qmin);
    o->share_visible = (float)ni / (float)(o->visible > CS_LFV_MIN_KP ? o->visible : CS_LFV_MIN_KP);
    if (o->share_visible > 1) o->share_visible = 1;
    /* inlier box in the reference (working px) */
    float x0 = 1e30f, y0 = 1e30f, x1 = -1e30f, y1 = -1e30f;
    for (int j = 0; j < r->n; j++)
        if (gq[j] >= 0) {
            x0 = fminf(x0, r->xy[j][0]);
            y0 = fminf(y0, r->xy[j][1]);
            x1 = fmaxf(x1, r->xy[j][0]);
            y1 = fmaxf(y1, r->xy[j][1]);
        }
    const float ib[4] = {x0, y0, x1, y1};
    o->extent = cs_lfv_extent((const float (*)[2])r->xy, r->size, r->n, m, q->w, q->h, qmin, ib);
    const float box[4][2] = {{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}};
    const float rs = r->w ? (float)r->orig_w / (float)r->w : 1, qs = q->w ? (float)q->orig_w / (float)q->w : 1;
    /* the model in original pixels: reference -> generation (as given, i.e.
     * mirrored when q is the mirror; cs_lfv_verify undoes that) */
    o->m_orig[0] = m[0] * qs / rs, o->m_orig[1] = m[1] * qs / rs, o->m_orig[2] = m[2] * qs;
    o->m_orig[3] = m[3] * qs / rs, o->m_orig[4] = m[4] * qs / rs, o->m_orig[5] = m[5] * qs;
    for (int c = 0; c < 4; c++) {
        o->ref_poly[c][0] = box[c][0] * rs;
        o->ref_poly[c][1] = box[c][1] * rs;
        apply_m(m, box[c][0], box[c][1], &o->gen_poly[c][0], &o->gen_poly[c][1]);
        o->gen_poly[c][0] *= qs;
        o->gen_poly[c][1] *= qs;
    }
    /* the whole reference mapped into the generation */
    float whole[4][2];
    const float rc[4][2] = {{0, 0}, {(float)r->w, 0}, {(float)r->w, (float)r->h}, {0, (float)r->h}};
    for (int c = 0; c < 4; c++) apply_m(m, rc[c][0], rc[c][1], &whole[c][0], &whole[c][1]);
    double qa = (double)q->w * q->h;
    o->coverage = qa > 0 ? (float)(cs_lfv_clip_area((const float (*)[2])whole, 4, q->w, q->h) / qa) : 0;
    o->partial = o->coverage < CS_LFV_PARTIAL_COVER;
    return 0;
}

int cs_lfv_verify(const cs_lf_set *q, const cs_lf_set *qm, const cs_lf_set *ref, cs_lfv_match *out, cs_err *err) {
    cs_lfv_match a, b;
    if (verify_one(q, ref, &a, err)) return -1;
    *out = a;
    if (!qm) return 0;
    if (verify_one(qm, ref, &b, err)) return -1;
    if (b.inliers > a.inliers) {
        b.mirrored = 1;
        /* back to the generation as is: x -> (orig_w - x) in original pixels */
        const float W = (float)qm->orig_w;
        for (int c = 0; c < 4; c++) b.gen_poly[c][0] = W - b.gen_poly[c][0];
        b.m_orig[0] = -b.m_orig[0], b.m_orig[1] = -b.m_orig[1], b.m_orig[2] = W - b.m_orig[2];
        *out = b;
    }
    return 0;
}
