/* test_gemm_attn.c — the fused AVX-512 attention (core/attn_avx512.c, under
 * nn_attention_cm_ld) against a naive double-precision softmax attention and
 * against the unfused path (forced AVX2: sgemm, row softmax, sgemm), over
 * ragged shapes (queries not a multiple of the 64-query block, keys not of
 * the 140-key block nor of the 14-row tile, dh not of 14), row strides wider
 * than T, scores large enough that the running max changes between key
 * blocks (the online rescaling), and the same bytes at -j 1, 2 and 3. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/nn.h"
#include "core/parallel.h"
#include "tests/t.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) / (double)(1 << 24)) * 2.f - 1.f;
}

/* out[h*dh + d][i] = sum_j softmax_j(q_i . k_j / sqrt(dh)) v[h*dh + d][j], in double */
static double ref_err(const float *out, int ldo, const float *q, int ldq, const float *k, int ldk, const float *v,
                      int ldv, int Tq, int Tk, int heads, int dh) {
    double *s = malloc(sizeof(double) * Tk), worst = 0, big = 0;
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < Tq; i++) {
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < Tk; j++) {
                double d = 0;
                for (int c = 0; c < dh; c++)
                    d += (double)q[(size_t)(h * dh + c) * ldq + i] * k[(size_t)(h * dh + c) * ldk + j];
                s[j] = d / sqrt((double)dh);
                if (s[j] > mx) mx = s[j];
            }
            for (int j = 0; j < Tk; j++) s[j] = exp(s[j] - mx), sum += s[j];
            for (int c = 0; c < dh; c++) {
                double o = 0;
                for (int j = 0; j < Tk; j++) o += s[j] / sum * v[(size_t)(h * dh + c) * ldv + j];
                double e = fabs(o - out[(size_t)(h * dh + c) * ldo + i]);
                if (e > worst) worst = e;
                if (fabs(o) > big) big = fabs(o);
            }
        }
    free(s);
    return big > 0 ? worst / big : worst;
}

static void one(int Tq, int Tk, int heads, int dh, float qscale) {
    int C = heads * dh, ldq = Tq + 5, ldk = Tk + 3, ldv = Tk + 1, ldo = Tq + 2;
    float *q = malloc(sizeof(float) * C * ldq), *k = malloc(sizeof(float) * C * ldk);
    float *v = malloc(sizeof(float) * C * ldv), *o = malloc(sizeof(float) * C * ldo);
    float *o1 = malloc(sizeof(float) * C * ldo), *ou = malloc(sizeof(float) * C * ldo);
    for (int i = 0; i < C * ldq; i++) q[i] = frand() * qscale;
    for (int i = 0; i < C * ldk; i++) k[i] = frand();
    for (int i = 0; i < C * ldv; i++) v[i] = frand();
    for (int i = 0; i < C * ldo; i++) o[i] = ou[i] = -7.f; /* padding past Tq must stay */
    float *ws = malloc(sizeof(float) * nn_attention_ws(Tq, Tk));
    cs_cpu_force(CS_ISA_BASE);
    nn_attention_cm_ld(ou, ldo, q, ldq, k, ldk, v, ldv, Tq, Tk, heads, dh, ws);
    cs_cpu_force(-1);
    double tol = 2e-5;
    double e = ref_err(ou, ldo, q, ldq, k, ldk, v, ldv, Tq, Tk, heads, dh);
    CHECKF(e < tol, "unfused %d x %d, %d heads of %d: rel %g", Tq, Tk, heads, dh, e);
    if (cs_cpu_isa() >= CS_ISA_AVX512) {
        int thr[] = {1, 2, 3};
        for (int t = 0; t < 3; t++) {
            cs_set_threads(thr[t]);
            nn_attention_cm_ld(o, ldo, q, ldq, k, ldk, v, ldv, Tq, Tk, heads, dh, ws);
            if (t == 0) {
                memcpy(o1, o, sizeof(float) * C * ldo);
                e = ref_err(o, ldo, q, ldq, k, ldk, v, ldv, Tq, Tk, heads, dh);
                CHECKF(e < tol, "fused %d x %d, %d heads of %d (q x%g): rel %g", Tq, Tk, heads, dh, qscale, e);
                double d = 0;
                for (int r = 0; r < C; r++)
                    for (int i = 0; i < Tq; i++) {
                        double x = fabs((double)o[(size_t)r * ldo + i] - ou[(size_t)r * ldo + i]);
                        if (x > d) d = x;
                    }
                CHECKF(d < tol, "fused vs unfused %d x %d: %g", Tq, Tk, d);
                int pad = 1;
                for (int r = 0; r < C; r++)
                    for (int i = Tq; i < ldo; i++) pad &= o[(size_t)r * ldo + i] == -7.f;
                CHECK(pad);
            } else {
                CHECKF(!memcmp(o, o1, sizeof(float) * C * ldo), "fused %d x %d: -j %d differs from -j 1", Tq, Tk,
                       thr[t]);
            }
        }
        /* each head alone (so the last: its ragged feature edge copied into
         * the panel) gives the bits it had among all (the edge read in place) */
        cs_set_threads(1);
        for (int h = 0; h < heads; h++) {
            size_t ro = (size_t)h * dh;
            nn_attention_cm_ld(o, ldo, q + ro * ldq, ldq, k + ro * ldk, ldk, v + ro * ldv, ldv, Tq, Tk, 1, dh, ws);
            int same = 1;
            for (int r = 0; r < dh; r++) same &= !memcmp(o + (size_t)r * ldo, o1 + (ro + r) * ldo, sizeof(float) * Tq);
            CHECKF(same, "fused %d x %d: head %d of %d alone differs", Tq, Tk, h, heads);
        }
    }
    free(q), free(k), free(v), free(o), free(o1), free(ou), free(ws);
}

static void test_shapes(void) {
    if (cs_cpu_isa() < CS_ISA_AVX512) fprintf(stderr, "test_gemm_attn: no AVX-512 here: only the unfused path checked\n");
    one(1, 1, 1, 8, 1.f);
    one(70, 77, 2, 40, 1.f);     /* cross-attention shape: 77 keys, one ragged block */
    one(200, 293, 3, 40, 4.f);   /* self-attention, ragged everywhere, sharp scores */
    one(65, 420, 1, 13, 8.f);    /* dh < 14 (one edge panel), 3 key blocks exactly */
    one(130, 150, 2, 80, 1.f);
    one(33, 5, 1, 160, 2.f);     /* dh 160, fewer keys than a tile */
}

int main(void) {
    cs_set_thread_grain(0); /* every loop on all the threads set: the counts compared are the ones run */
    RUN(test_shapes);
    return T_DONE();
}
