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

/* One direction (as is or mirrored): fills o (inliers 0 when nothing fits). */
static int verify_one(const cs_lf_set *q, const cs_lf_set *r, cs_lfv_match *o, cs_err *err) {
    float src[CS_LF_QUERY_KP][2], dst[CS_LF_QUERY_KP][2];
    int qi[CS_LF_QUERY_KP], ri[CS_LF_QUERY_KP];
    uint8_t in[CS_LF_QUERY_KP];
    int nm = 0;
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
        double da = fmod((double)q->angle[qi[i]] - r->angle[ri[i]] - theta + 720.0, 360.0);
        if (da > 180) da -= 360;
        double ds = r->size[ri[i]] > 0 ? log(q->size[qi[i]] / r->size[ri[i]] / sc) : 10;
        in[i] = fabs(da) <= CS_LFV_MAX_DANGLE && fabs(ds) <= log(CS_LFV_MAX_DSCALE);
        ni += in[i];
    }
    if (ni < 3) return 0;
    o->inliers = ni;
    o->ref_w = r->orig_w, o->ref_h = r->orig_h, o->gen_w = q->orig_w, o->gen_h = q->orig_h;
    o->log10_nfa1 = cs_lfv_log10_nfa1(nm, ni, q->w, q->h);
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
    for (int i = 0; i < nm; i++)
        if (in[i]) {
            x0 = fminf(x0, src[i][0]);
            y0 = fminf(y0, src[i][1]);
            x1 = fmaxf(x1, src[i][0]);
            y1 = fmaxf(y1, src[i][1]);
        }
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
