/* tiled_l2.c — Carlini et al.'s tiled L2 (see tiled_l2.h for the definition
 * and why the maximum over tiles). */
#include "index/tiled_l2.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

cs_tl2_cfg cs_tl2_default(void) {
    cs_tl2_cfg c = {.size = 64, .grid = 4, .norm = CS_TL2_UNIT};
    return c;
}

int cs_tl2_check(const cs_tl2_cfg *c, cs_err *err) {
    if (c->size <= 0 || c->grid <= 0 || c->size % c->grid)
        return cs_fail(err, CS_EUSAGE, "tiled l2: grid %d does not divide thumbnail size %d",
                       c->grid, c->size);
    if (c->grid * c->grid > CS_TL2_MAX_TILES)
        return cs_fail(err, CS_EUSAGE, "tiled l2: %d tiles (max %d)", c->grid * c->grid,
                       CS_TL2_MAX_TILES);
    return 0;
}

void cs_tl2_prepare(float *out, float *n2, const uint8_t *rgb, const cs_tl2_cfg *c) {
    const int S = c->size, ts = S / c->grid, td = cs_tl2_tile_dim(c);
    float scale[3] = {1.0f / 255, 1.0f / 255, 1.0f / 255}, shift[3] = {0, 0, 0};
    if (c->norm == CS_TL2_CHANNEL) {
        double sum[3] = {0}, sq[3] = {0};
        const int64_t n = (int64_t)S * S;
        for (int64_t i = 0; i < n; i++)
            for (int ch = 0; ch < 3; ch++) {
                double v = rgb[i * 3 + ch];
                sum[ch] += v;
                sq[ch] += v * v;
            }
        for (int ch = 0; ch < 3; ch++) {
            double m = sum[ch] / n, var = sq[ch] / n - m * m;
            double sd = sqrt(var > 0 ? var : 0);
            if (sd < 1.0) sd = 1.0; /* a flat channel stays flat, not amplified noise */
            scale[ch] = (float)(1.0 / sd);
            shift[ch] = (float)(-m / sd);
        }
    }
    for (int ty = 0; ty < c->grid; ty++)
        for (int tx = 0; tx < c->grid; tx++) {
            const int t = ty * c->grid + tx;
            float *o = out + (int64_t)t * td;
            double s2 = 0;
            for (int y = 0; y < ts; y++) {
                const uint8_t *row = rgb + ((int64_t)(ty * ts + y) * S + tx * ts) * 3;
                for (int x = 0; x < ts * 3; x++) {
                    float v = row[x] * scale[x % 3] + shift[x % 3];
                    *o++ = v;
                    s2 += (double)v * v;
                }
            }
            if (n2) n2[t] = (float)s2;
        }
}

float cs_tl2_pair(float *tile_d, const float *a, const float *b, const cs_tl2_cfg *c) {
    const int T = cs_tl2_tiles(c), td = cs_tl2_tile_dim(c);
    float mx = 0;
    for (int t = 0; t < T; t++) {
        const float *x = a + (int64_t)t * td, *y = b + (int64_t)t * td;
        float s = 0;
        for (int i = 0; i < td; i++) {
            float d = x[i] - y[i];
            s += d * d;
        }
        float d = sqrtf(s / td);
        if (tile_d) tile_d[t] = d;
        if (d > mx) mx = d;
    }
    return mx;
}

void cs_tl2_block(float *dmax, int64_t ldd, float *tile_d, const float *A, const float *an2,
                  int64_t na, const float *B, const float *bn2, int64_t nb, float *work,
                  const cs_tl2_cfg *c) {
    const int T = cs_tl2_tiles(c), td = cs_tl2_tile_dim(c), D = cs_tl2_dim(c);
    const float inv = 1.0f / td;
    if (na <= 0 || nb <= 0) return;
    for (int64_t i = 0; i < na; i++) memset(dmax + i * ldd, 0, (size_t)nb * sizeof(float));
    for (int t = 0; t < T; t++) {
        /* work[i][j] = A_i,t . B_j,t : one sgemm over the strided tile columns */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)na, (int)nb, td, 1.0f,
                    A + (int64_t)t * td, D, B + (int64_t)t * td, D, 0.0f, work, (int)nb);
        for (int64_t i = 0; i < na; i++) {
            const float ai = an2[i * T + t];
            const float *w = work + i * nb;
            float *dm = dmax + i * ldd;
            for (int64_t j = 0; j < nb; j++) {
                float d2 = (ai + bn2[j * T + t] - 2.0f * w[j]) * inv;
                if (d2 < 0) d2 = 0;
                if (tile_d) tile_d[(i * nb + j) * T + t] = sqrtf(d2);
                if (d2 > dm[j]) dm[j] = d2;
            }
        }
    }
    for (int64_t i = 0; i < na; i++)
        for (int64_t j = 0; j < nb; j++) dmax[i * ldd + j] = sqrtf(dmax[i * ldd + j]);
}

/* Inserts (d, id) into an ascending list of k (dist, idx). */
static void topk_push(float *dist, int32_t *idx, int k, float d, int32_t id) {
    if (!(d < dist[k - 1])) return;
    int p = k - 1;
    while (p > 0 && dist[p - 1] > d) {
        dist[p] = dist[p - 1];
        idx[p] = idx[p - 1];
        p--;
    }
    dist[p] = d;
    idx[p] = id;
}

enum { QB = 256, RB = 1024 };

/* The sgemm scan's candidates, k_wide per query (dist ascending). */
static int sgemm_topk(int32_t *idx, float *dist, int k, const float *Q, const float *qn2, int64_t nq,
                      const float *R, const float *rn2, int64_t nr, const cs_tl2_cfg *c, cs_err *err) {
    const int T = cs_tl2_tiles(c), D = cs_tl2_dim(c);
    for (int64_t i = 0; i < nq * k; i++) {
        idx[i] = -1;
        dist[i] = INFINITY;
    }
    float *work = malloc(sizeof(float) * QB * RB), *dm = malloc(sizeof(float) * QB * RB);
    if (!work || !dm) {
        free(work);
        free(dm);
        return cs_fail(err, CS_ENOMEM, "tiled l2: out of memory for a %dx%d block", QB, RB);
    }
    /* OpenBLAS splits a block over as many threads as the process may use
     * (its CPU affinity): one thread, so the scan does not follow the machine
     * share (its rounding no longer reaches the results: below). */
    int saved = openblas_get_num_threads();
    openblas_set_num_threads(1);
    for (int64_t q0 = 0; q0 < nq; q0 += QB) {
        int64_t qn = nq - q0 < QB ? nq - q0 : QB;
        for (int64_t r0 = 0; r0 < nr; r0 += RB) {
            int64_t rn = nr - r0 < RB ? nr - r0 : RB;
            cs_tl2_block(dm, rn, NULL, Q + q0 * D, qn2 + q0 * T, qn, R + r0 * D, rn2 + r0 * T, rn,
                         work, c);
            for (int64_t i = 0; i < qn; i++)
                for (int64_t j = 0; j < rn; j++)
                    topk_push(dist + (q0 + i) * k, idx + (q0 + i) * k, k, dm[i * rn + j],
                              (int32_t)(r0 + j));
        }
    }
    openblas_set_num_threads(saved);
    free(work);
    free(dm);
    return 0;
}

/* How far the sgemm scan's squared tile distance can be from cs_tl2_pair's,
 * for squared norms up to m2 (both are sums of td products in some order:
 * |error| <= gamma_td * sum |a_i b_i| for the expansion, gamma_td * sum
 * (a_i - b_i)^2 for the direct form, Higham 2002 s3.1, plus a few roundings
 * of the terms; Cauchy-Schwarz bounds both sums by 4 m2), twice over. */
static float scan_slack2(int td, float m2) {
    const double u = 0x1p-24, g = td * u / (1 - td * u);
    return (float)(2 * (6 * g + 24 * u) * (double)m2 / td);
}

enum { WIDE = 4 }; /* the sgemm scan keeps WIDE * k + 16 candidates per query */

/* (dist, row) ascending: the one order of a top list at any matrix size. */
static void pair_push(float *dist, int32_t *idx, int k, float d, int32_t id) {
    if (d > dist[k - 1] || (d == dist[k - 1] && idx[k - 1] >= 0 && id > idx[k - 1])) return;
    int p = k - 1;
    while (p > 0 && (dist[p - 1] > d || (dist[p - 1] == d && (idx[p - 1] < 0 || idx[p - 1] > id)))) {
        dist[p] = dist[p - 1];
        idx[p] = idx[p - 1];
        p--;
    }
    dist[p] = d;
    idx[p] = id;
}

/* The scores are cs_tl2_pair's (one pair at a time, in one order), so a
 * reference's distance and its place in the list do not depend on which
 * other references or queries share the call: a shard of the index gives
 * the rows of the whole index's list that it holds (docs/SCALE.md). sgemm
 * rounds by matrix shape and position (measured: 3% of 256x1024 products
 * differ in the last bits from the same products in a 300x2100 call), so it
 * only proposes: every reference whose exact distance can reach the top k is
 * within scan_slack2 of the sgemm k-th; those are rescored exactly. When the
 * wide list cannot show that (many references at one distance), the query
 * is scanned exactly. */
int cs_tl2_topk(int32_t *idx, float *dist, int k, const float *Q, const float *qn2, int64_t nq,
                const float *R, const float *rn2, int64_t nr, const cs_tl2_cfg *c, cs_err *err) {
    const int T = cs_tl2_tiles(c), D = cs_tl2_dim(c);
    if (k <= 0 || nq <= 0) return 0;
    for (int64_t i = 0; i < nq * k; i++) {
        idx[i] = -1;
        dist[i] = INFINITY;
    }
    if (nr <= 0) return 0;
    const int kw = WIDE * k + 16;
    int32_t *wi = malloc(sizeof(int32_t) * (size_t)(nq * kw));
    float *wd = malloc(sizeof(float) * (size_t)(nq * kw));
    int rc = !wi || !wd ? cs_fail(err, CS_ENOMEM, "tiled l2: out of memory for %lld queries", (long long)nq)
                        : sgemm_topk(wi, wd, kw, Q, qn2, nq, R, rn2, nr, c, err);
    if (rc) {
        free(wi);
        free(wd);
        return -1;
    }
    float m2 = 0;
    for (int64_t i = 0; i < nq * T; i++) m2 = qn2[i] > m2 ? qn2[i] : m2;
    for (int64_t i = 0; i < nr * T; i++) m2 = rn2[i] > m2 ? rn2[i] : m2;
    const float slack = scan_slack2(cs_tl2_tile_dim(c), m2);
    for (int64_t i = 0; i < nq; i++) {
        const float *qi = Q + i * D, *d = wd + i * kw;
        const int32_t *ix = wi + i * kw;
        float *od = dist + i * k;
        int32_t *oi = idx + i * k;
        float ek = d[(k < nr ? k : nr) - 1];
        float thr = (ek * ek + 2 * slack) * (1 + 0x1p-20f);
        if (nr > kw && d[kw - 1] * d[kw - 1] <= thr) { /* the wide list may miss one: every reference */
            for (int64_t j = 0; j < nr; j++) pair_push(od, oi, k, cs_tl2_pair(NULL, qi, R + j * D, c), (int32_t)j);
            continue;
        }
        for (int j = 0; j < kw && ix[j] >= 0 && d[j] * d[j] <= thr; j++)
            pair_push(od, oi, k, cs_tl2_pair(NULL, qi, R + (int64_t)ix[j] * D, c), ix[j]);
    }
    free(wi);
    free(wd);
    return 0;
}

void cs_tl2_hflip_rgb(uint8_t *rgb, int size) {
    for (int y = 0; y < size; y++) {
        uint8_t *row = rgb + (int64_t)y * size * 3;
        for (int x = 0; x < size / 2; x++) {
            uint8_t *a = row + x * 3, *b = row + (size - 1 - x) * 3;
            for (int ch = 0; ch < 3; ch++) {
                uint8_t t = a[ch];
                a[ch] = b[ch];
                b[ch] = t;
            }
        }
    }
}
