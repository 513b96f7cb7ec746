/* test_fuse.c — the background-calibrated fused score (analyze/fuse.h):
 *  - the generalised Pareto tail fitted by probability-weighted moments
 *    recovers a known exponential tail (shape 0, the scale) and a known
 *    bounded one (shape < 0, its upper end) from their exact quantiles;
 *  - end to end on constructed pictures (independent of any bench set): an
 *    exact copy of a reference clears the flag threshold measured on a
 *    background of unrelated pictures (out of sample, alpha 1 %, the
 *    bench's recipe), an unrelated picture does not. Descriptors are
 *    bounded similarities (cosines <= 1), the case where an exponential
 *    tail left an exact copy below the background's own maxima. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/fuse.h"
#include "t.h"

/* excesses at their exact quantiles (j + 0.5) / m above u = 0 */
static void test_tail_fits(void) {
    cs_err err = {0};
    enum { N = 20000, M = N / 100 };
    static float s[N];
    /* body: 0..N-M-1 spread in [-1, 0]; tail: M excesses above 0 */
    for (int i = 0; i < N - M; i++) s[i] = -1 + (float)i / (N - M);
    for (int j = 0; j < M; j++) s[N - M + j] = (float)(-2.0 * log(1 - (j + 0.5) / M)); /* exponential, mean 2 */
    cs_fuse_bg b;
    REQUIRE(cs_fuse_bg_fit(&b, s, N, &err) == 0);
    CHECKF(fabs(b.xi) < 0.05 && fabs(b.beta - 2) < 0.1, "exponential: xi %.3f beta %.3f", b.xi, b.beta);
    /* far beyond the sample: z keeps growing like the exponential's -log10 */
    double z20 = cs_fuse_z(&b, 20), z40 = cs_fuse_z(&b, 40);
    CHECKF(fabs((z40 - z20) - 20 / (2 * log(10.0))) < 0.6, "z(40) - z(20) = %.3f", z40 - z20);
    cs_fuse_bg_free(&b);
    /* bounded: excess uniform on [0, 0.3] (shape -1, scale 0.3, end 0.3) */
    for (int j = 0; j < M; j++) s[N - M + j] = (float)(0.3 * (j + 0.5) / M);
    REQUIRE(cs_fuse_bg_fit(&b, s, N, &err) == 0);
    CHECKF(fabs(b.xi - -1) < 0.05 && fabs(b.beta / -b.xi - 0.3) < 0.01, "uniform: xi %.3f end %.4f", b.xi,
           b.u + b.beta / -b.xi);
    /* a score past the end (a bound no unrelated pair reaches) is past the cap */
    CHECK(cs_fuse_z(&b, 0.31f) >= CS_FUSE_Z_CAP && cs_fuse_z(&b, 0.5f) > cs_fuse_z(&b, 0.31f));
    double prev = -1;
    for (float x = -1.2f; x < 0.6f; x += 0.001f) { /* monotone through body, tail, end */
        double z = cs_fuse_z(&b, x);
        CHECK(z >= prev);
        prev = z;
    }
    cs_fuse_bg_free(&b);
}

/* pictures: a smooth random field, 8x8 random values bilinearly upsampled to
 * 32x32 grey; descriptors: zero-mean unit-norm cosine at 32x32 and at 8x8 */
#define P 32
#ifndef G
#define G 4
#endif
enum { NR = 150, NB = 200, NU = 100, FD = 2 };
static uint32_t rng = 1234567;
static double unif(void) {
    rng = rng * 1664525u + 1013904223u;
    return (rng >> 8) / 16777216.0;
}
static void picture(float *p) {
    float g[G + 1][G + 1];
    for (int y = 0; y <= G; y++)
        for (int x = 0; x <= G; x++) g[y][x] = (float)unif();
    for (int y = 0; y < P; y++)
        for (int x = 0; x < P; x++) {
            float fy = y * (float)G / P, fx = x * (float)G / P;
            int iy = (int)fy, ix = (int)fx;
            float ay = fy - iy, ax = fx - ix;
            p[y * P + x] = (1 - ay) * ((1 - ax) * g[iy][ix] + ax * g[iy][ix + 1]) + ay * ((1 - ax) * g[iy + 1][ix] + ax * g[iy + 1][ix + 1]);
        }
}
static void norm(float *v, int n) {
    double m = 0, ss = 0;
    for (int i = 0; i < n; i++) m += v[i];
    m /= n;
    for (int i = 0; i < n; i++) ss += (v[i] - m) * (v[i] - m);
    for (int i = 0; i < n; i++) v[i] = (float)((v[i] - m) / sqrt(ss + 1e-12));
}
typedef struct {
    float d32[P * P], d8[64];
} desc;
static void describe(const float *p, desc *d) {
    memcpy(d->d32, p, sizeof d->d32);
    norm(d->d32, P * P);
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) {
            double s = 0;
            for (int v = 0; v < 4; v++)
                for (int u = 0; u < 4; u++) s += p[(4 * y + v) * P + 4 * x + u];
            d->d8[y * 8 + x] = (float)s;
        }
    norm(d->d8, 64);
}
static void scores(const desc *a, const desc *b, float *s) {
    double c0 = 0, c1 = 0;
    for (int i = 0; i < P * P; i++) c0 += a->d32[i] * b->d32[i];
    for (int i = 0; i < 64; i++) c1 += a->d8[i] * b->d8[i];
    s[0] = (float)c0;
    s[1] = (float)c1;
}

static void test_copy_clears_unrelated_does_not(void) {
    cs_err err = {0};
    static desc ref[NR], bg[NB], un[NU];
    static float pic[P * P];
    for (int r = 0; r < NR; r++) picture(pic), describe(pic, &ref[r]);
    for (int b = 0; b < NB; b++) picture(pic), describe(pic, &bg[b]);
    for (int u = 0; u < NU; u++) picture(pic), describe(pic, &un[u]);
    /* the bench's recipe: each half of the background fitted, the other
     * half's top-1 z scored with it (out of sample); queries scored with the
     * mean of the two half fits */
    static float bs[FD][NB * NR], sub[NB * NR];
    for (int b = 0; b < NB; b++)
        for (int r = 0; r < NR; r++) {
            float s[FD];
            scores(&bg[b], &ref[r], s);
            for (int d = 0; d < FD; d++) bs[d][b * NR + r] = s[d];
        }
    cs_fuse_bg fh[2][FD];
    static double top[NB];
    for (int h = 0; h < 2; h++) {
        for (int d = 0; d < FD; d++) {
            int64_t m = 0;
            for (int b = 0; b < NB; b++)
                if (b % 2 != h)
                    for (int r = 0; r < NR; r++) sub[m++] = bs[d][b * NR + r];
            REQUIRE(cs_fuse_bg_fit(&fh[h][d], sub, m, &err) == 0);
        }
        for (int b = h; b < NB; b += 2) {
            top[b] = 0;
            for (int r = 0; r < NR; r++) {
                float s[FD] = {bs[0][b * NR + r], bs[1][b * NR + r]};
                double z = cs_fuse_z_max(fh[h], s, FD, NULL);
                if (z > top[b]) top[b] = z;
            }
        }
    }
    double t = cs_fuse_flag_z_bg(top, NB, NR, FD, 0.01);
    /* the empirical floor: no background score can say more than this */
    double floor_z = log10(NB / 2 * NR + 1.0);
    /* an exact copy: both cosines 1 */
    int flagged_copies = 0;
    for (int r = 0; r < NR; r++) {
        float s[FD];
        scores(&ref[r], &ref[r], s);
        double z = 0.5 * (cs_fuse_z_max(fh[0], s, FD, NULL) + cs_fuse_z_max(fh[1], s, FD, NULL));
        flagged_copies += z > t;
        if (r == 0) CHECKF(z > t && z > floor_z, "exact copy z %.2f, threshold %.2f, empirical floor %.2f", z, t, floor_z);
    }
    CHECKF(flagged_copies == NR, "%d of %d exact copies flagged", flagged_copies, NR);
    /* unrelated pictures: their best reference stays under the threshold
     * (alpha 1 %: at most a few of 100 by chance, none here) */
    int flagged_un = 0;
    double worst = 0;
    for (int u = 0; u < NU; u++) {
        double best = 0;
        for (int r = 0; r < NR; r++) {
            float s[FD];
            scores(&un[u], &ref[r], s);
            double z = 0.5 * (cs_fuse_z_max(fh[0], s, FD, NULL) + cs_fuse_z_max(fh[1], s, FD, NULL));
            if (z > best) best = z;
        }
        flagged_un += best > t;
        if (best > worst) worst = best;
    }
    CHECKF(flagged_un <= 2, "%d of %d unrelated pictures flagged (largest z %.2f, threshold %.2f)", flagged_un, NU, worst, t);
    CHECKF(t < CS_FUSE_Z_CAP, "threshold %.2f", t);
    for (int h = 0; h < 2; h++)
        for (int d = 0; d < FD; d++) cs_fuse_bg_free(&fh[h][d]);
}

int main(void) {
    RUN(test_tail_fits);
    RUN(test_copy_clears_unrelated_does_not);
    return T_DONE();
}
