/* fuse.c — background-calibrated tail probabilities and the max-z rule (see
 * fuse.h). */
#include "analyze/fuse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int cs_fuse_bg_fit(cs_fuse_bg *bg, const float *scores, int64_t n, cs_err *err) {
    memset(bg, 0, sizeof *bg);
    bg->sorted = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!bg->sorted) return cs_fail(err, CS_ENOMEM, "fuse: out of memory for %lld scores", (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (!isnan(scores[i])) bg->sorted[bg->n++] = scores[i];
    if (bg->n < 1) {
        cs_fuse_bg_free(bg);
        return cs_fail(err, CS_EUSAGE, "fuse: a background needs at least one score");
    }
    qsort(bg->sorted, (size_t)bg->n, sizeof(float), cmp_f);
    int64_t iu = (int64_t)floor(CS_FUSE_TAIL_Q * (double)(bg->n - 1));
    bg->u = bg->sorted[iu];
    /* exceedances: strictly above u (a point mass at u, e.g. many zero
     * inlier counts, stays in the empirical part) */
    int64_t first = iu;
    while (first < bg->n && bg->sorted[first] <= bg->u) first++;
    int64_t ne = bg->n - first;
    bg->p_u = (double)ne / (double)(bg->n + 1);
    if (ne >= CS_FUSE_MIN_EXCESS) {
        /* probability-weighted moments of the excesses (ascending, j = 0..ne-1):
         * a0 = mean, a1 = mean of y_j (ne - 1 - j) / (ne - 1) */
        double a0 = 0, a1 = 0;
        for (int64_t j = 0; j < ne; j++) {
            double y = (double)bg->sorted[first + j] - bg->u;
            a0 += y;
            a1 += y * (double)(ne - 1 - j) / (double)(ne - 1);
        }
        a0 /= (double)ne;
        a1 /= (double)ne;
        if (a0 > 0 && a0 - 2 * a1 > 0) {
            double k = a0 / (a0 - 2 * a1) - 2; /* Hosking & Wallis' k = -shape */
            if (k > 1) k = 1;                  /* at most as bounded as a uniform excess */
            if (k < -0.5) k = -0.5;            /* PWM holds for shape < 1/2 */
            bg->xi = -k;
            bg->beta = 2 * a0 * a1 / (a0 - 2 * a1);
            /* a bounded fit ends at or beyond the largest excess seen (the
             * clamp of k, or a small sample, can put the end below it) */
            double ymax = (double)bg->sorted[bg->n - 1] - bg->u;
            if (k > 0 && bg->beta / k < ymax) bg->beta = k * ymax;
        }
    }
    return 0;
}

void cs_fuse_bg_free(cs_fuse_bg *bg) {
    free(bg->sorted);
    memset(bg, 0, sizeof *bg);
}

/* -log10 of the generalised Pareto survival of an excess y > 0 */
static double gpd_z(const cs_fuse_bg *bg, double y) {
    double z0 = -log10(bg->p_u), k = -bg->xi;
    if (fabs(k) < 1e-9) return fmin(z0 + y / (bg->beta * log(10.0)), CS_FUSE_Z_CAP);
    double t = 1 - k * y / bg->beta;
    if (t <= 1e-12) /* at or beyond the fitted upper end (to rounding): past the cap, in order */
        return CS_FUSE_Z_CAP + (y - bg->beta / k) / bg->beta;
    return fmin(z0 - log(t) / (k * log(10.0)), CS_FUSE_Z_CAP);
}

double cs_fuse_z(const cs_fuse_bg *bg, float s) {
    if (isnan(s)) return NAN;
    if (bg->beta > 0 && s > bg->u) return gpd_z(bg, (double)s - bg->u);
    /* count of background scores >= s: n minus the first index with sorted >= s */
    int64_t lo = 0, hi = bg->n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (bg->sorted[mid] < s) lo = mid + 1;
        else hi = mid;
    }
    double p = (double)(bg->n - lo + 1) / (double)(bg->n + 1);
    return -log10(p);
}

double cs_fuse_z_max(const cs_fuse_bg *bg, const float *s, int nd, int *which) {
    double best = 0;
    int w = -1;
    for (int d = 0; d < nd; d++) {
        double z = cs_fuse_z(&bg[d], s[d]);
        if (isnan(z)) continue;
        if (w < 0 || z > best) {
            best = z;
            w = d;
        }
    }
    if (which) *which = w;
    return best;
}

double cs_fuse_z_sum(const cs_fuse_bg *bg, const float *s, int nd) {
    double sum = 0;
    for (int d = 0; d < nd; d++) {
        double z = cs_fuse_z(&bg[d], s[d]);
        if (!isnan(z)) sum += z;
    }
    return sum;
}

double cs_fuse_flag_z(int64_t n_refs, int n_desc, double alpha) {
    return -log10(alpha / ((double)(n_refs > 0 ? n_refs : 1) * (n_desc > 0 ? n_desc : 1)));
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double cs_fuse_flag_z_bg(const double *top_z, int64_t n, int64_t n_refs, int n_desc, double alpha) {
    if (n < 1 || (double)n * alpha < 1) return cs_fuse_flag_z(n_refs, n_desc, alpha);
    double *v = malloc(sizeof(double) * (size_t)n);
    if (!v) return cs_fuse_flag_z(n_refs, n_desc, alpha);
    memcpy(v, top_z, sizeof(double) * (size_t)n);
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    int64_t above = (int64_t)floor(alpha * (double)n); /* allowed above the threshold */
    /* flag at z > t: at most `above` background maxima exceed t */
    double t = v[n - 1 - above];
    free(v);
    return t;
}

double cs_fuse_z_nfa(double log10_nfa) { return log10_nfa < 0 ? -log10_nfa : 0; }

double cs_fuse_z_pdq(int dist, double n_tests) {
    if (dist < 0 || dist > 256) return 0;
    /* log P[Bin(256, 1/2) <= d] = log(sum_{i<=d} C(256, i)) - 256 log 2, summed in log space */
    double lc = 0, mx = 0, t[257];
    for (int i = 0; i <= dist; i++) {
        if (i > 0) lc += log((256.0 - (i - 1)) / i);
        t[i] = lc;
        if (t[i] > mx) mx = t[i];
    }
    double s = 0;
    for (int i = 0; i <= dist; i++) s += exp(t[i] - mx);
    double log10p = (mx + log(s) - 256 * log(2.0)) / log(10.0) + log10(n_tests > 1 ? n_tests : 1);
    return log10p < 0 ? -log10p : 0;
}
