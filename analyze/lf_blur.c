/* lf_blur.c — the generation's blur relative to the reference (see
 * lf_blur.h). */
#include "analyze/lf_blur.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const float cs_lfb_sigmas[CS_LFB_NSIGMA] = {0, 0.5f, 0.7071f, 1, 1.4142f, 2, 2.8284f, 4, 5.6569f, 8};

/* one separable Gaussian pass of sigma over a float plane, S x S, edges
 * clamped; tmp is S x S scratch */
static void blur_plane(float *p, float *tmp, int S, float sigma) {
    if (!(sigma > 0)) return;
    int R = (int)ceilf(3 * sigma);
    if (R > S - 1) R = S - 1;
    enum { RMAX = 96 }; /* 3 sigma of the largest sigma at S = 256 is 24 px; no larger S is used */
    if (R > RMAX) R = RMAX;
    float w[2 * RMAX + 1], sum = 0;
    for (int i = -R; i <= R; i++) sum += w[i + R] = expf(-0.5f * (float)(i * i) / (sigma * sigma));
    for (int i = 0; i <= 2 * R; i++) w[i] /= sum;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            float a = 0;
            for (int i = -R; i <= R; i++) {
                int u = x + i < 0 ? 0 : x + i >= S ? S - 1 : x + i;
                a += w[i + R] * p[y * S + u];
            }
            tmp[y * S + x] = a;
        }
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            float a = 0;
            for (int i = -R; i <= R; i++) {
                int v = y + i < 0 ? 0 : y + i >= S ? S - 1 : y + i;
                a += w[i + R] * tmp[v * S + x];
            }
            p[y * S + x] = a;
        }
}

int cs_lfb_blur(const uint8_t *in, int S, float sigma, uint8_t *out) {
    const size_t N = (size_t)S * S;
    if (!(sigma > 0)) {
        memcpy(out, in, N * 3);
        return 0;
    }
    float *p = malloc(sizeof(float) * N), *tmp = malloc(sizeof(float) * N);
    if (!p || !tmp) {
        free(p), free(tmp);
        return -1;
    }
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < N; i++) p[i] = in[i * 3 + k];
        blur_plane(p, tmp, S, sigma);
        for (size_t i = 0; i < N; i++) out[i * 3 + k] = (uint8_t)lrintf(p[i] < 0 ? 0 : p[i] > 255 ? 255 : p[i]);
    }
    free(p), free(tmp);
    return 0;
}

/* Least squares of g_k = sum_j M_kj r_j + c_k over the pairs with use[i]
 * (all when use is NULL): a global affine colour map (brightness, contrast,
 * saturation, colour balance, and a hue rotation to first order), the
 * 4 x 4 normal equations solved by elimination. Returns -1 when singular
 * (then P is the identity). */
static int fit_affine(const float *r, const float *g, const int32_t *ri, const int32_t *gi, const uint8_t *use, int n,
                      double P[3][4]) {
    double A[4][4] = {{0}}, Y[4][3] = {{0}};
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (use && !use[i]) continue;
        m++;
        const float *a = r + (size_t)ri[i] * 3, *b = g + (size_t)gi[i] * 3;
        double x[4] = {a[0], a[1], a[2], 1};
        for (int u = 0; u < 4; u++) {
            for (int v = 0; v < 4; v++) A[u][v] += x[u] * x[v];
            for (int k = 0; k < 3; k++) Y[u][k] += x[u] * b[k];
        }
    }
    memset(P, 0, sizeof(double) * 12);
    P[0][0] = P[1][1] = P[2][2] = 1;
    if (m < 8) return -1;
    /* a flat colour direction (a grey picture) makes A singular: a small
     * ridge keeps the map defined, pulling it toward no change */
    for (int u = 0; u < 3; u++) A[u][u] += 1e-6 * m;
    for (int u = 0; u < 3; u++) Y[u][u] += 1e-6 * m;
    for (int c = 0; c < 4; c++) {
        int piv = c;
        for (int u = c + 1; u < 4; u++)
            if (fabs(A[u][c]) > fabs(A[piv][c])) piv = u;
        if (fabs(A[piv][c]) < 1e-12) return -1;
        if (piv != c) {
            for (int v = 0; v < 4; v++) {
                double t = A[c][v];
                A[c][v] = A[piv][v], A[piv][v] = t;
            }
            for (int k = 0; k < 3; k++) {
                double t = Y[c][k];
                Y[c][k] = Y[piv][k], Y[piv][k] = t;
            }
        }
        for (int u = 0; u < 4; u++) {
            if (u == c) continue;
            double f = A[u][c] / A[c][c];
            for (int v = c; v < 4; v++) A[u][v] -= f * A[c][v];
            for (int k = 0; k < 3; k++) Y[u][k] -= f * Y[c][k];
        }
    }
    for (int k = 0; k < 3; k++)
        for (int u = 0; u < 4; u++) P[k][u] = Y[u][k] / A[u][u];
    return 0;
}

/* RMS residual over R, G, B of one pair under P */
static float resid(const float *a, const float *b, double P[3][4]) {
    float s = 0;
    for (int k = 0; k < 3; k++) {
        double e = P[k][0] * a[0] + P[k][1] * a[1] + P[k][2] * a[2] + P[k][3] - b[k];
        s += (float)(e * e);
    }
    return sqrtf(s / 3);
}

/* How badly the reference (as blurred) explains the generation, under the
 * affine colour map P refitted once on the pairs within 2 x tol of the
 * current P (the map barely depends on the blur: a blur keeps every
 * region's mean colour; P comes from the trimmed fit on the unblurred
 * reference, see cs_lfb_estimate): the sum over every pair of
 * min(residual^2, tol^2). Within tol the residual counts (so a blur that is
 * a little off is told from the right one, where the count of pixels within
 * tol barely moves); beyond tol a pair costs tol^2 whatever it is (a part
 * replaced, a caption: what no blur explains weighs the same at every
 * sigma, and cannot pull the estimate). */
static double misfit(const float *r, const float *g, const int32_t *ri, const int32_t *gi, int n, double tol,
                     uint8_t *use, double P[3][4]) {
    for (int i = 0; i < n; i++) use[i] = resid(r + (size_t)ri[i] * 3, g + (size_t)gi[i] * 3, P) <= 2 * tol;
    double Q[3][4];
    if (!fit_affine(r, g, ri, gi, use, n, Q)) memcpy(P, Q, sizeof Q);
    double e = 0, t2 = tol * tol;
    for (int i = 0; i < n; i++) {
        double q = resid(r + (size_t)ri[i] * 3, g + (size_t)gi[i] * 3, P);
        e += q * q < t2 ? q * q : t2;
    }
    return e;
}

float cs_lfb_estimate(const uint8_t *ref, int rw, int rh, const uint8_t *gen, int gw, int gh, int S,
                      const double m[6], double tol) {
    double det = m[0] * m[4] - m[1] * m[3];
    if (!(fabs(det) > 1e-12) || rw <= 0 || rh <= 0 || gw <= 0 || gh <= 0 || S < 4) return 0;
    const double i00 = m[4] / det, i01 = -m[1] / det, i10 = -m[3] / det, i11 = m[0] / det;
    const size_t N = (size_t)S * S;
    float *r = malloc(sizeof(float) * 3 * N), *g = malloc(sizeof(float) * 3 * N);
    float *pl = malloc(sizeof(float) * N), *tmp = malloc(sizeof(float) * N);
    int32_t *ri = malloc(sizeof(int32_t) * N), *gi = malloc(sizeof(int32_t) * N);
    uint8_t *use = malloc(N);
    float best_sigma = 0;
    if (!r || !g || !pl || !tmp || !ri || !gi || !use) goto out;
    for (size_t i = 0; i < N * 3; i++) r[i] = ref[i] / 255.0f, g[i] = gen[i] / 255.0f;
    /* the pairs: every other generation pixel each way (a quarter: tens of
     * thousands of pairs for a map of 12 parameters and one sigma) whose
     * position maps inside the reference, with the reference pixel
     * lf_colour.c compares it with */
    int n = 0;
    for (int y = 0; y < S; y += 2)
        for (int x = 0; x < S; x += 2) {
            double gx = (x + 0.5) * gw / S - m[2], gy = (y + 0.5) * gh / S - m[5];
            double rx = i00 * gx + i01 * gy, ry = i10 * gx + i11 * gy;
            int u = (int)floor(rx * S / rw), v = (int)floor(ry * S / rh);
            if (u < 0 || v < 0 || u > S - 1 || v > S - 1) continue;
            ri[n] = v * S + u;
            gi[n] = y * S + x;
            n++;
        }
    if (n < 64) goto out;
    /* the colour map: trimmed as the colour fit is (least squares over
     * all, then on the pairs within 4, 2, 1 x tol), on the unblurred
     * reference */
    double P[3][4];
    fit_affine(r, g, ri, gi, NULL, n, P);
    for (int pass = 0; pass < 3; pass++) {
        double tl = tol * (pass == 0 ? 4 : pass == 1 ? 2 : 1);
        for (int i = 0; i < n; i++) use[i] = resid(r + (size_t)ri[i] * 3, g + (size_t)gi[i] * 3, P) <= tl;
        if (fit_affine(r, g, ri, gi, use, n, P)) break;
    }
    /* the reference blurred step by step: a Gaussian of sigma_k is that of
     * sigma_{k-1} blurred again by sqrt(sigma_k^2 - sigma_{k-1}^2). The
     * misfit is one valley over sigma (short of the generation's blur the
     * edges are too sharp, beyond it too soft): the ladder stops once it
     * has risen twice in a row past the best, which spares the largest
     * blurs (the costliest) for a sharp generation. */
    const float ks = (float)S / 256.0f;
    double best = misfit(r, g, ri, gi, n, tol, use, P);
    for (int t = 1, rises = 0; t < CS_LFB_NSIGMA && rises < 2; t++) {
        float s0 = cs_lfb_sigmas[t - 1] * ks, s1 = cs_lfb_sigmas[t] * ks, inc = sqrtf(s1 * s1 - s0 * s0);
        for (int k = 0; k < 3; k++) {
            for (size_t i = 0; i < N; i++) pl[i] = r[i * 3 + k];
            blur_plane(pl, tmp, S, inc);
            for (size_t i = 0; i < N; i++) r[i * 3 + k] = pl[i];
        }
        double e = misfit(r, g, ri, gi, n, tol, use, P);
        if (e < best) best = e, best_sigma = s1, rises = 0;
        else rises++;
    }
out:
    free(r), free(g), free(pl), free(tmp), free(ri), free(gi), free(use);
    return best_sigma;
}
