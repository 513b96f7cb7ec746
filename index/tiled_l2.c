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

int cs_tl2_topk(int32_t *idx, float *dist, int k, const float *Q, const float *qn2, int64_t nq,
                const float *R, const float *rn2, int64_t nr, const cs_tl2_cfg *c, cs_err *err) {
    const int T = cs_tl2_tiles(c), D = cs_tl2_dim(c);
    if (k <= 0 || nq <= 0) return 0;
    for (int64_t i = 0; i < nq * k; i++) {
        idx[i] = -1;
        dist[i] = INFINITY;
    }
    if (nr <= 0) return 0;
    float *work = malloc(sizeof(float) * QB * RB), *dm = malloc(sizeof(float) * QB * RB);
    if (!work || !dm) {
        free(work);
        free(dm);
        return cs_fail(err, CS_ENOMEM, "tiled l2: out of memory for a %dx%d block", QB, RB);
    }
    /* OpenBLAS splits a block over as many threads as the process may use
     * (its CPU affinity), and the split changes the last bits of the dot
     * products: one thread, so the distances, their ties and the findings are
     * the same on any machine share (mpirun binds each rank to one core). */
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
