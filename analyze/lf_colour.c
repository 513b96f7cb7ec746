/* lf_colour.c — global colour transform vs a part recoloured (see
 * lf_colour.h). */
#include "analyze/lf_colour.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NTHETA 72 /* 5 degree steps */

void cs_lfc_hue_rotate(const float in[3], float deg, float out[3]) {
    float r = in[0], g = in[1], b = in[2];
    float mx = fmaxf(r, fmaxf(g, b)), mn = fminf(r, fminf(g, b)), d = mx - mn;
    if (d <= 0) {
        out[0] = out[1] = out[2] = mx;
        return;
    }
    float h; /* in sixths of the circle, [0, 6) */
    if (mx == r) h = (g - b) / d;
    else if (mx == g) h = 2 + (b - r) / d;
    else h = 4 + (r - g) / d;
    h += deg / 60.0f;
    h = fmodf(h, 6.0f);
    if (h < 0) h += 6.0f;
    int k = (int)h;
    if (k > 5) k = 5;
    float f = h - (float)k;
    /* V = mx, S = d / mx: the channels are mx, mn and a ramp between */
    float up = mn + d * f, down = mx - d * f;
    switch (k) {
    case 0: out[0] = mx, out[1] = up, out[2] = mn; break;
    case 1: out[0] = down, out[1] = mx, out[2] = mn; break;
    case 2: out[0] = mn, out[1] = mx, out[2] = up; break;
    case 3: out[0] = mn, out[1] = down, out[2] = mx; break;
    case 4: out[0] = up, out[1] = mn, out[2] = mx; break;
    default: out[0] = mx, out[1] = mn, out[2] = down; break;
    }
}

static float luma(const float *p) { return 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2]; }

static float clamp01(float x) { return x < 0 ? 0 : (x > 1 ? 1 : x); }

/* The prediction of one pixel under p = (a, b, c_R, c_G, c_B, steps),
 * clipped to [0,1] as the edit's own arithmetic clips.
 * steps 0: one affine map, a r + b L + c, clipped once.
 * steps 2: the same map in the two steps PIL's ImageEnhance and
 * torchvision's ColorJitter take, each clipped: brightness and contrast,
 * y = (a + b) r + c, then saturation, a blend with the luma of y,
 * L(y) + s (y - L(y)) with s = a / (a + b). Where y is not clipped the two
 * are one map; where brightness or contrast clipped a channel, the
 * saturation step blends what is left with the clipped colour's own luma,
 * which no single affine map of the reference gives (fit_steps). */
static void predict(const float *r, const double *p, float *out) {
    float L = luma(r);
    if (p[5] == 0) {
        for (int k = 0; k < 3; k++) out[k] = clamp01((float)(p[0] * r[k] + p[1] * L + p[2 + k]));
        return;
    }
    const double gain = p[0] + p[1], sat = gain > 1e-9 ? p[0] / gain : 1;
    float y[3];
    for (int k = 0; k < 3; k++) y[k] = clamp01((float)(gain * r[k] + p[2 + k]));
    const float Ly = luma(y);
    for (int k = 0; k < 3; k++) out[k] = clamp01((float)(Ly + sat * (y[k] - Ly)));
}

/* RMS residual of one pixel under p (predict) */
static float resid(const float *r, const float *g, const double *p) {
    float e[3], s = 0;
    predict(r, p, e);
    for (int k = 0; k < 3; k++) s += (e[k] - g[k]) * (e[k] - g[k]);
    return sqrtf(s / 3);
}

/* The two clipped steps (predict, steps 2) fitted to the reference's
 * colours: their least squares is not linear (the clip sits between the
 * steps), so the three numbers (gain, saturation, offset) are searched by
 * coordinate steps that halve, on the mean colour pairs of the reference's
 * colour bins (a few dozen, weighted by their pixels), each pair's RMS
 * residual truncated at 2 tol (a part recoloured or occluded does not pull
 * the fit), from start p (steps 0 or 2). A copy under brightness 1.3,
 * contrast 1.3 and saturation 1.5 clips every colour of a teal icon in a
 * channel (the red of the teal at 0 after contrast, the light greys at 1):
 * the affine fits left one colour part, 4 % of the pixels, unexplained, and
 * the copy was read as a colour twin (issue 13, session 12). */
typedef struct {
    float r[3], g[3];
    float w;
} colour_pair;

static double steps_cost(const colour_pair *cp, int m, const double x[3], double tol) {
    const double p[6] = {x[1] * x[0], (1 - x[1]) * x[0], x[2], x[2], x[2], 2};
    double cost = 0, cap = 4 * tol * tol;
    for (int i = 0; i < m; i++) {
        double e = resid(cp[i].r, cp[i].g, p);
        cost += cp[i].w * fmin(e * e, cap);
    }
    return cost;
}

static void fit_steps(const colour_pair *cp, int m, const double start[6], double tol, double out[6]) {
    double x[3];
    const double gain = start[0] + start[1];
    x[0] = gain, x[1] = gain > 1e-6 ? start[0] / gain : 1, x[2] = (start[2] + start[3] + start[4]) / 3;
    double step[3] = {0.1, 0.1, 0.05}, best = steps_cost(cp, m, x, tol);
    for (int it = 0; it < 200 && step[0] > 0.002; it++) {
        int moved = 0;
        for (int j = 0; j < 3; j++)
            for (int sg = -1; sg <= 1; sg += 2) {
                double y[3] = {x[0], x[1], x[2]};
                y[j] += sg * step[j];
                if (y[0] < 0) continue; /* gains are positive, as in fit3 */
                double c = steps_cost(cp, m, y, tol);
                if (c < best) best = c, memcpy(x, y, sizeof x), moved = 1;
            }
        if (!moved)
            for (int j = 0; j < 3; j++) step[j] /= 2;
    }
    out[0] = x[1] * x[0], out[1] = (1 - x[1]) * x[0], out[2] = out[3] = out[4] = x[2], out[5] = 2;
}

/* the mean colour pairs of the reference's bins with the generation's
 * pixels, over the n sampled pixels r, g (sample i is compared pixel
 * i * sub, whose bin is bin[i * sub]): cp[512]; returns how many */
static int colour_pairs(const float (*r)[3], const float (*g)[3], const uint16_t *bin, int n, int sub,
                        colour_pair *cp, int *slot) {
    int m = 0;
    for (int b = 0; b < 512; b++) slot[b] = -1;
    for (int i = 0; i < n; i++) {
        int b = bin[i * sub];
        if (slot[b] < 0) {
            slot[b] = m;
            memset(&cp[m], 0, sizeof cp[m]);
            m++;
        }
        colour_pair *c = &cp[slot[b]];
        for (int k = 0; k < 3; k++) c->r[k] += r[i][k], c->g[k] += g[i][k];
        c->w += 1;
    }
    for (int j = 0; j < m; j++)
        for (int k = 0; k < 3; k++) cp[j].r[k] /= cp[j].w, cp[j].g[k] /= cp[j].w;
    return m;
}

/* least squares of g_k = a r_k + b L + c over the pixels with use[i]
 * (all when use is NULL); the 3x3 normal equations by Cramer's rule */
static int fit3(const float (*r)[3], const float (*g)[3], const uint8_t *use, int n, double p[3]) {
    double A[3][3] = {{0}}, y[3] = {0};
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (use && !use[i]) continue;
        m++;
        double L = luma(r[i]);
        for (int k = 0; k < 3; k++) {
            double x[3] = {r[i][k], L, 1};
            for (int u = 0; u < 3; u++) {
                y[u] += x[u] * g[i][k];
                for (int v = 0; v < 3; v++) A[u][v] += x[u] * x[v];
            }
        }
    }
    if (m < 3) return -1;
    double det = A[0][0] * (A[1][1] * A[2][2] - A[1][2] * A[2][1]) - A[0][1] * (A[1][0] * A[2][2] - A[1][2] * A[2][0]) +
                 A[0][2] * (A[1][0] * A[2][1] - A[1][1] * A[2][0]);
    if (fabs(det) < 1e-12) {
        /* grey pixels (r_k = L): a and b are not separable; y = g (r + L) + c */
        double sxx = A[0][0] + A[1][1] + 2 * A[0][1], sx = A[0][2] + A[1][2], sy = y[0] + y[1], s1 = A[2][2];
        double dd = sxx * s1 - sx * sx;
        if (fabs(dd) < 1e-12) {
            p[0] = p[1] = 0, p[2] = y[2] / s1;
            return 0;
        }
        double g1 = (sy * s1 - sx * y[2]) / dd;
        p[0] = g1, p[1] = g1, p[2] = (y[2] - g1 * sx) / s1;
        return 0;
    }
    for (int j = 0; j < 3; j++) {
        double M[3][3];
        memcpy(M, A, sizeof M);
        for (int u = 0; u < 3; u++) M[u][j] = y[u];
        p[j] = (M[0][0] * (M[1][1] * M[2][2] - M[1][2] * M[2][1]) - M[0][1] * (M[1][0] * M[2][2] - M[1][2] * M[2][0]) +
                M[0][2] * (M[1][0] * M[2][1] - M[1][1] * M[2][0])) /
               det;
    }
    if (p[0] < 0) {
        /* brightness, contrast and saturation gains are positive: a negative
         * a would be a colour inversion, not one of those edits; the
         * constrained optimum is then on a = 0, g = b L + c */
        double dd = A[1][1] * A[2][2] - A[1][2] * A[1][2];
        p[0] = 0;
        if (fabs(dd) < 1e-12) {
            p[1] = 0, p[2] = y[2] / A[2][2];
            return 0;
        }
        p[1] = (y[1] * A[2][2] - A[1][2] * y[2]) / dd;
        p[2] = (y[2] - p[1] * A[1][2]) / A[2][2];
    }
    return 0;
}

/* the global family: one offset c for the three channels (p[2] = p[3] = p[4]) */
static int fit(const float (*r)[3], const float (*g)[3], const uint8_t *use, int n, double p[6]) {
    if (fit3(r, g, use, n, p)) return -1;
    p[3] = p[4] = p[2];
    return 0;
}

/* the family with a colour balance, g_k = a r_k + b L + c_k (an offset per
 * channel: levels or white balance, a global edit too): least squares with
 * the offsets eliminated (each channel centred on its mean), a >= 0 as in
 * fit3; a grey picture (r_k = L) fits one gain of r + L */
/* A channel of the generation at 0 or 255 may be clipped: the edit's own
 * arithmetic takes every value beyond the bound to it (a contrast gain of
 * 1.3 takes the light greys and the white background alike to 255), so the
 * value says only that the edit's result is at or beyond the bound. Least
 * squares over clipped values as they are pulls the gain toward the line
 * through them (s2 q0090: a white background of 255 -> 255 bent a gain of
 * 1.32 down to 1.10, and the light greys, 227 -> 254, were left
 * unexplained, a 94-cell "part" at 256 px). */
static int clipped(float v) { return v <= 0.5f / 255.0f || v >= 254.5f / 255.0f; }

/* Before a refit: a clipped value whose prediction under the current fit
 * lies beyond the bound takes that prediction (the expectation step of
 * censored least squares); elsewhere the value is kept. resid() explains
 * such pixels already, its prediction clipped the same way. */
static void uncensor(const float (*r)[3], const float (*g)[3], int n, const double *p, float (*out)[3]) {
    for (int i = 0; i < n; i++) {
        float L = luma(r[i]);
        for (int k = 0; k < 3; k++) {
            float v = g[i][k], e = (float)(p[0] * r[i][k] + p[1] * L + p[2 + k]);
            out[i][k] = clipped(v) && ((v > 0.5f && e > v) || (v < 0.5f && e < v)) ? e : v;
        }
    }
}

static int fit_balance(const float (*r)[3], const float (*g)[3], const uint8_t *use, int n, double p[6]) {
    double m = 0, mr[3] = {0}, mg[3] = {0}, mL = 0;
    for (int i = 0; i < n; i++) {
        if (use && !use[i]) continue;
        m++;
        mL += luma(r[i]);
        for (int k = 0; k < 3; k++) mr[k] += r[i][k], mg[k] += g[i][k];
    }
    if (m < 3) return -1;
    mL /= m;
    for (int k = 0; k < 3; k++) mr[k] /= m, mg[k] /= m;
    double a11 = 0, a12 = 0, a22 = 0, y1 = 0, y2 = 0;
    for (int i = 0; i < n; i++) {
        if (use && !use[i]) continue;
        double x2 = luma(r[i]) - mL;
        for (int k = 0; k < 3; k++) {
            double x1 = r[i][k] - mr[k], y = g[i][k] - mg[k];
            a11 += x1 * x1, a12 += x1 * x2, a22 += x2 * x2, y1 += x1 * y, y2 += x2 * y;
        }
    }
    double a, b, det = a11 * a22 - a12 * a12;
    if (fabs(det) < 1e-12) {
        double sxx = a11 + a22 + 2 * a12;
        a = b = sxx > 1e-12 ? (y1 + y2) / sxx : 0;
    } else {
        a = (y1 * a22 - a12 * y2) / det;
        b = (a11 * y2 - a12 * y1) / det;
    }
    if (a < 0) a = 0, b = a22 > 1e-12 ? y2 / a22 : 0;
    p[0] = a, p[1] = b;
    for (int k = 0; k < 3; k++) p[2 + k] = mg[k] - a * mr[k] - b * mL;
    return 0;
}

/* HSV hue in degrees [0, 360), or -1 where the pixel is grey within tol
 * (its channels spread less than tol: no hue to rotate) */
static float hue_of(const float *p, float tol) {
    float mx = fmaxf(p[0], fmaxf(p[1], p[2])), mn = fminf(p[0], fminf(p[1], p[2])), d = mx - mn;
    if (d < tol) return -1;
    float h = mx == p[0] ? (p[1] - p[2]) / d : mx == p[1] ? 2 + (p[2] - p[0]) / d : 4 + (p[0] - p[1]) / d;
    h *= 60.0f;
    return h < 0 ? h + 360.0f : h;
}

/* The rotations the quick search tries: none, then the one most pixels
 * agree on (the mode of the hue differences generation - reference over
 * the pixels with a hue in both, in 5 degree bins) and its two neighbours.
 * A global hue edit turns every coloured pixel by the same angle, so the
 * mode finds it; a picture with no hue has nothing to rotate. */
static int quick_thetas(const float (*r)[3], const float (*g)[3], int n, double tol, float *degs) {
    int hist[NTHETA] = {0}, nd = 0;
    for (int i = 0; i < n; i++) {
        float a = hue_of(r[i], (float)tol), b = hue_of(g[i], (float)tol);
        if (a < 0 || b < 0) continue;
        float d = b - a; /* (-360, 360) */
        if (d < 0) d += 360.0f;
        hist[(int)lrintf(d / 5.0f) % NTHETA]++;
    }
    int m = 0;
    for (int k = 1; k < NTHETA; k++)
        if (hist[k] > hist[m]) m = k;
    degs[nd++] = 0;
    if (!hist[m]) return nd;
    for (int j = -1; j <= 1; j++) {
        int k = ((m + j) % NTHETA + NTHETA) % NTHETA;
        float deg = 5.0f * (float)(k > NTHETA / 2 ? k - NTHETA : k); /* (-180, 180] */
        if (deg != 0) degs[nd++] = deg;
    }
    return nd;
}

void cs_lfc_measure(const uint8_t *ref, int rw, int rh, const uint8_t *gen, int gw, int gh, int S,
                    const double m[6], double tol, cs_lfc *out) {
    cs_lfc_measure_map(ref, rw, rh, gen, gw, gh, S, m, tol, out, NULL);
}

void cs_lfc_measure_map(const uint8_t *ref, int rw, int rh, const uint8_t *gen, int gw, int gh, int S,
                        const double m[6], double tol, cs_lfc *out, uint8_t *map) {
    cs_lfc_measure_map_few(ref, rw, rh, gen, gw, gh, S, m, tol, 0, out, map);
}

/* the fit's prediction of colour c reaches 0 or 1 in a channel: the edit
 * saturates it, and every colour beyond it lands there too */
static int saturated(const float *c, const double *p) {
    float L = luma(c);
    for (int k = 0; k < 3; k++) {
        double v = p[0] * c[k] + p[1] * L + p[2 + k];
        if (v <= 0 || v >= 1) return 1;
    }
    return 0;
}

/* RMS distance of two colours in [0,1] */
static float rms3(const float *a, const float *b) {
    float s = 0;
    for (int k = 0; k < 3; k++) s += (a[k] - b[k]) * (a[k] - b[k]);
    return sqrtf(s / 3);
}

/* Of the recoloured parts (cnt[b]: bin b's compared pixels, cnt[512 + b]:
 * those unexplained), how many are painted over: most of their unexplained
 * pixels show, under the fit, another colour of the reference, one the fit
 * explains where the reference has it (a big bin not recoloured; its mean
 * colour is its representative, the bins being 1/8 of a channel wide).
 * A colour the edit moved beyond the fit takes a new colour, its own
 * edited; a shape drawn elsewhere (a twin's other emblem) leaves the
 * reference's old shape covered by the body around it, or by the new
 * shape's colour where the twins share a palette (lf_part.h, condition
 * 3b). Two bounds keep an edit's error from passing for a cover:
 *  - another colour, not the part's own shade: a shaded part (a ball's
 *    gradient) spans several bins, and a pixel an edit moved beyond the
 *    fit lands on a neighbouring shade as easily as on its own; the
 *    covering colour differs from the part's by more than the tolerance on
 *    both sides (2 tol, RMS), so that the pixel is explained as the one and
 *    not the other by a margin, not by the fit's rounding;
 *  - a colour the fit does not saturate: an edit that pushes a colour to 0
 *    or 1 in a channel (brightness or contrast clipping a light grey and
 *    white alike) lands every colour beyond it there too, which the fit's
 *    linear family may leave unexplained; landing on a clipped colour says
 *    nothing of a shape.
 * gr: the generation's pixels with the fit's hue rotation undone. */
static int painted_parts(const float (*r)[3], const float (*gr)[3], const uint16_t *bin, const uint8_t *use, int n,
                         const int *cnt, int part_px, const double *p, double tol) {
    float(*mean)[3] = calloc(512, sizeof *mean);
    int *other = calloc(512, sizeof(int)), painted = 0;
    int16_t *expl = malloc(512 * sizeof(int16_t)); /* the explained, unsaturated big bins, listed */
    int ne = 0;
    if (!mean || !other || !expl) goto out;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) mean[bin[i]][k] += r[i][k];
    for (int b = 0; b < 512; b++) {
        if (!cnt[b]) continue;
        for (int k = 0; k < 3; k++) mean[b][k] /= (float)cnt[b];
        if (cnt[b] >= part_px && !(2 * cnt[512 + b] > cnt[b]) && !saturated(mean[b], p)) expl[ne++] = (int16_t)b;
    }
    for (int i = 0; i < n; i++) {
        int b = bin[i];
        if (use[i] || cnt[b] < part_px || !(2 * cnt[512 + b] > cnt[b])) continue;
        for (int e = 0; e < ne; e++)
            if (rms3(mean[expl[e]], mean[b]) > 2 * tol && resid(mean[expl[e]], gr[i], p) <= tol) {
                other[b]++;
                break;
            }
    }
    for (int b = 0; b < 512; b++) painted += cnt[b] >= part_px && 2 * cnt[512 + b] > cnt[b] && 2 * other[b] > cnt[512 + b];
out:
    free(mean);
    free(other);
    free(expl);
    return painted;
}

void cs_lfc_measure_map_few(const uint8_t *ref, int rw, int rh, const uint8_t *gen, int gw, int gh, int S,
                            const double m[6], double tol, int few, cs_lfc *out, uint8_t *map) {
    cs_lfc_measure_map_pred(ref, ref, rw, rh, gen, gw, gh, S, m, tol, few, out, map);
}

void cs_lfc_measure_map_pred(const uint8_t *ref, const uint8_t *pred, int rw, int rh, const uint8_t *gen, int gw,
                             int gh, int S, const double m[6], double tol, int few, cs_lfc *out, uint8_t *map) {
    memset(out, 0, sizeof *out);
    if (map) memset(map, 0, (size_t)S * S);
    out->recolour = -1;
    double det = m[0] * m[4] - m[1] * m[3];
    if (!(fabs(det) > 1e-12) || rw <= 0 || rh <= 0 || gw <= 0 || gh <= 0 || S < 4) return;
    const double i00 = m[4] / det, i01 = -m[1] / det, i10 = -m[3] / det, i11 = m[0] / det;
    const int N = S * S;
    float (*r)[3] = malloc(sizeof(float) * 3 * (size_t)N), (*g)[3] = malloc(sizeof(float) * 3 * (size_t)N),
          (*gr)[3] = malloc(sizeof(float) * 3 * (size_t)N), (*gc)[3] = malloc(sizeof(float) * 3 * (size_t)N);
    uint8_t *use = malloc(2 * (size_t)N), *best_use = malloc((size_t)N);
    uint16_t *bin = malloc(sizeof(uint16_t) * (size_t)N);
    int32_t *at = malloc(sizeof(int32_t) * (size_t)N); /* the generation pixel of each compared pair */
    int n = 0;
    /* The bounds keep their meaning at any S (the 64 px thumbnail or the
     * 256 px working image, analyze/fine_ref.h): kt = S / 64 pixels stand
     * for one thumbnail pixel, and the least compared and a part's pixels
     * are areas (an 8x8 and a 4x4 block of the thumbnail), kt^2 times as
     * many. The flat neighbourhood's radius rr is the registration error the
     * similarity may leave, in pixels at S: the verified geometry is a
     * least-squares fit to its inliers in the 256 px working image, whose
     * keypoints SIFT localises to about a pixel, so its error where the
     * keypoints are is about a pixel; CS_LFC_REG_PX (2 working px) covers it
     * twice. At 64 px that is half a pixel, and one pixel (the thumbnail's
     * own rounding) is the least: S = 64 is unchanged. */
    const int kt = S >= 64 ? S / 64 : 1, min_px = CS_LFC_MIN_PX * kt * kt, part_px = CS_LFC_PART_PX * kt * kt;
    const int rr = (CS_LFC_REG_PX * S + 255) / 256 > 1 ? (CS_LFC_REG_PX * S + 255) / 256 : 1;
    if (!r || !g || !gr || !gc || !use || !best_use || !bin || !at) goto out;
    const float t255 = (float)(tol * 255.0);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            double gx = (x + 0.5) * gw / S - m[2], gy = (y + 0.5) * gh / S - m[5];
            double rx = i00 * gx + i01 * gy, ry = i10 * gx + i11 * gy;
            int u = (int)floor(rx * S / rw), v = (int)floor(ry * S / rh);
            if (u < rr || v < rr || u > S - 1 - rr || v > S - 1 - rr) continue; /* outside, or the border rows */
            const uint8_t *c = ref + ((size_t)v * S + u) * 3;
            int flat = 1;
            for (int dv = -rr; dv <= rr && flat; dv++)
                for (int du = -rr; du <= rr && flat; du++) {
                    const uint8_t *o = ref + ((size_t)(v + dv) * S + (u + du)) * 3;
                    float s = 0;
                    for (int k = 0; k < 3; k++) s += ((float)o[k] - c[k]) * ((float)o[k] - c[k]);
                    flat = sqrtf(s / 3) <= t255;
                }
            if (!flat) continue;
            const uint8_t *q = gen + ((size_t)y * S + x) * 3, *pc = pred + ((size_t)v * S + u) * 3;
            for (int k = 0; k < 3; k++) r[n][k] = pc[k] / 255.0f, g[n][k] = q[k] / 255.0f;
            bin[n] = (uint16_t)((c[0] >> 5) << 6 | (c[1] >> 5) << 3 | (c[2] >> 5));
            at[n] = y * S + x;
            n++;
        }
    out->compared = n;
    if (n < min_px) goto out;
    /* The fit is searched on every sub-th compared pixel, sub = kt^2: as
     * many pixels as the thumbnail compares (thousands, for a family of 5
     * parameters), not 16x as many; every compared pixel is then classified
     * by the fit found. At S = 64 (sub = 1) this is the search it was. */
    const int sub = kt * kt;
    int ns = n;
    float (*rs)[3] = r, (*gs)[3] = g;
    if (sub > 1) {
        ns = (n + sub - 1) / sub;
        rs = malloc(sizeof(float) * 3 * (size_t)ns);
        gs = malloc(sizeof(float) * 3 * (size_t)ns);
        if (!rs || !gs) {
            if (rs != r) free(rs);
            if (gs != g) free(gs);
            goto out;
        }
        for (int i = 0; i < ns; i++) memcpy(rs[i], r[i * sub], sizeof rs[i]), memcpy(gs[i], g[i * sub], sizeof gs[i]);
    }
    const int few_s = few > 0 ? (few + sub - 1) / sub : 0;
    int best_in = -1;
    float best_deg = 0;
    double best_p[6] = {1, 0, 0, 0, 0, 0};
    float degs[NTHETA];
    int nd = few > 0 ? quick_thetas(rs, gs, ns, tol, degs) : 0;
    /* the part measurement admits a colour balance too (fit_balance) */
    int (*fitf)(const float (*)[3], const float (*)[3], const uint8_t *, int, double *) = few > 0 ? fit_balance : fit;
    for (int t = 0; few <= 0 && t < NTHETA; t++) {
        /* -180 < deg <= 180, 0 first so that ties keep the smallest rotation */
        int k = (t + 1) / 2;
        float deg = (t % 2 ? 1.0f : -1.0f) * 5.0f * (float)k;
        if (deg > -180) degs[nd++] = deg;
    }
    for (int t = 0; t < nd; t++) {
        float deg = degs[t];
        for (int i = 0; i < ns; i++) cs_lfc_hue_rotate(gs[i], -deg, gr[i]);
        /* two starts, the least squares over all and no change at all, each
         * refined on the pixels within a tolerance that halves down to tol
         * (an occlusion or a recoloured part pulls the first start away) */
        int in = -1;
        double tp[6] = {1, 0, 0, 0, 0, 0};
        uint8_t *u2 = use + n; /* the other starts' inliers */
        /* the part measurement (few > 0) has a third start, for clipped
         * edits (uncensor() below): the least squares over the pixels none
         * of whose channels is at 0 or 255, refined with the clipped values
         * imputed. A start is kept only when it explains more pixels, so a
         * picture without clipping keeps the fit it had. */
        for (int st = 0; st < (few > 0 ? 3 : 2); st++) {
            double p[6] = {1, 0, 0, 0, 0, 0};
            if (st == 0 && fitf((const float (*)[3])rs, (const float (*)[3])gr, NULL, ns, p)) continue;
            if (st == 2) {
                for (int i = 0; i < ns; i++) {
                    u2[i] = 1;
                    for (int k = 0; k < 3; k++) u2[i] &= !clipped(gr[i][k]);
                }
                if (fitf((const float (*)[3])rs, (const float (*)[3])gr, u2, ns, p)) continue;
            }
            uint8_t *u = st == 0 ? use : u2;
            int ni = 0;
            for (int pass = 0; pass < 4; pass++) {
                float tl = (float)tol * (pass == 0 ? 4.0f : pass == 1 ? 2.0f : 1.0f);
                ni = 0;
                for (int i = 0; i < ns; i++) ni += u[i] = resid(rs[i], gr[i], p) <= tl;
                if (pass == 3) break;
                if (st == 2) uncensor(rs, gr, ns, p, gc);
                if (fitf((const float (*)[3])rs, (const float (*)[3])(st == 2 ? gc : gr), u, ns, p)) break;
            }
            if (ni > in) {
                in = ni;
                memcpy(tp, p, sizeof tp);
            }
        }
        if (in > best_in) {
            best_in = in;
            best_deg = deg;
            memcpy(best_p, tp, sizeof best_p);
        }
        if (ns - best_in < few_s) break; /* no later fit changes the caller's answer */
    }
    /* the two clipped steps (fit_steps), around the best rotation found
     * and around the rotations the quick search tries (quick_thetas: the
     * affine fits' rotation is off where the clip bent them): kept only
     * where they explain a colour part's worth of the sampled pixels more
     * (part_px): what the clip does is recolour whole colours, and a model
     * with a clip more that only explains a few more pixels along a
     * region's border is no better model (it had split a twin's other
     * figure, 27 cells at 256 px, into pieces: test_verdict_fine) */
    const int more = (part_px + sub - 1) / sub;
    if (best_in >= 0 && ns - best_in >= (few_s > more ? few_s : more)) {
        colour_pair *cp = malloc(sizeof *cp * 512);
        int *slot = malloc(sizeof(int) * 512);
        float centre[1 + 4], qd[4];
        int nc = 0, nq = quick_thetas(rs, gs, ns, tol, qd);
        centre[nc++] = best_deg;
        for (int t = 0; t < nq; t++)
            if (qd[t] != best_deg) centre[nc++] = qd[t];
        for (int j = 0; cp && slot && j < 5 * nc; j++) {
            const float deg = centre[j / 5] + 5.0f * (float)(j % 5 - 2);
            for (int i = 0; i < ns; i++) cs_lfc_hue_rotate(gs[i], -deg, gr[i]);
            int m = colour_pairs((const float (*)[3])rs, (const float (*)[3])gr, bin, ns, sub, cp, slot);
            const double id[6] = {1, 0, 0, 0, 0, 2};
            for (int st = 0; st < 2; st++) {
                double p[6];
                fit_steps(cp, m, st ? id : best_p, tol, p);
                int ni = 0;
                for (int i = 0; i < ns; i++) ni += resid(rs[i], gr[i], p) <= (float)tol;
                if (ni >= best_in + more) {
                    best_in = ni;
                    best_deg = deg;
                    memcpy(best_p, p, sizeof best_p);
                }
            }
        }
        free(cp);
        free(slot);
    }
    if (rs != r) free(rs);
    if (gs != g) free(gs);
    if (best_in < 0) goto out;
    /* every compared pixel by the fit found (within tol, the last pass's tolerance) */
    best_in = 0;
    for (int i = 0; i < n; i++) {
        cs_lfc_hue_rotate(g[i], -best_deg, gr[i]);
        best_in += best_use[i] = resid(r[i], gr[i], best_p) <= tol;
    }
    out->fit = (float)best_in / (float)n;
    if (map)
        for (int i = 0; i < n; i++) map[at[i]] = best_use[i] ? 1 : 2;
    out->hue_deg = best_deg;
    out->steps = best_p[5] == 2 ? 2 : 1;
    /* per reference colour: how many of its pixels the fit leaves out */
    int *cnt = calloc(2 * 512, sizeof(int));
    if (!cnt) goto out;
    for (int i = 0; i < n; i++) {
        cnt[bin[i]]++;
        cnt[512 + bin[i]] += !best_use[i];
    }
    int rec = 0, parts = 0, rparts = 0;
    for (int b = 0; b < 512; b++) {
        int big = cnt[b] >= part_px, changed = 2 * cnt[512 + b] > cnt[b];
        parts += big;
        rparts += big && changed;
        if (changed) rec += cnt[512 + b];
    }
    out->recolour = (float)rec / (float)n;
    out->parts = parts;
    out->parts_recoloured = rparts;
    out->parts_painted = rparts ? painted_parts(r, gr, bin, best_use, n, cnt, part_px, best_p, tol) : 0;
    free(cnt);
out:
    free(r);
    free(g);
    free(gr);
    free(gc);
    free(use);
    free(best_use);
    free(bin);
    free(at);
}
