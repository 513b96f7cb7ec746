/* test_gemm_attn.c — the fused AVX-512 attention (core/attn_avx512.c, under
 * nn_attention_cm_ld) against a naive double-precision softmax attention and
 * against the unfused path (forced AVX2: sgemm, row softmax, sgemm), over
 * ragged shapes (queries not a multiple of the 64-query block, keys not of
 * the 140-key block nor of the 14-row tile, dh not of 14), row strides wider
 * than T, scores large enough that the running max changes between key
 * blocks (the online rescaling), and the same bytes at -j 1, 2 and 3.
 * bf16 (AVX512_BF16 CPUs): each product's operands rounded to bf16, sums in
 * fp32, against the double attention of the rounded Q, K, V: the only other
 * rounding is the softmax weights' (P, relative 2^-9 each, normalised by the
 * fp32 sum), so |error| <= 2^-9 max|V| plus fp32 sums: checked at 2^-8. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/attn.h"
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

/* bf16, round to nearest even (the inputs here are finite) */
static float bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

/* max |out - ref| over the heads' rows (ref in double, as ref_err) */
static double ref_abs_err(const float *out, int ldo, const float *q, int ldq, const float *k, int ldk, const float *v,
                          int ldv, int Tq, int Tk, int heads, int dh) {
    double *s = malloc(sizeof(double) * Tk), worst = 0;
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
            }
        }
    free(s);
    return worst;
}

/* The bf16 attention (cs_attn_avx512 with its bf16 parts) against the double
 * attention of the operands rounded as it rounds them; -j 1, 2, 3 the same
 * bytes; nn_attention_cm_ld under nn_set_precision(NN_BF16) takes it. */
static void one_bf16(int Tq, int Tk, int heads, int dh, float qscale, float vscale) {
    int C = heads * dh, ldq = Tq + 3, ldk = Tk + 5, ldv = Tk + 2, ldo = Tq + 1;
    float *q = malloc(sizeof(float) * C * ldq), *k = malloc(sizeof(float) * C * ldk);
    float *v = malloc(sizeof(float) * C * ldv), *o = malloc(sizeof(float) * C * ldo), *o1 = malloc(sizeof(float) * C * ldo);
    float *qr = malloc(sizeof(float) * C * ldq), *kr = malloc(sizeof(float) * C * ldk), *vr = malloc(sizeof(float) * C * ldv);
    double vmax = 0;
    for (int i = 0; i < C * ldq; i++) q[i] = frand() * qscale, qr[i] = bf16_round(q[i]);
    for (int i = 0; i < C * ldk; i++) k[i] = frand(), kr[i] = bf16_round(k[i]);
    for (int i = 0; i < C * ldv; i++) v[i] = frand() * vscale, vr[i] = bf16_round(v[i]), vmax = fmax(vmax, fabs(vr[i]));
    const int parts[3] = {CS_ATTN_BF16_QK, CS_ATTN_BF16_PV, CS_ATTN_BF16_QK | CS_ATTN_BF16_PV};
    for (int p = 0; p < 3; p++) {
        int qk = parts[p] & CS_ATTN_BF16_QK, pv = parts[p] & CS_ATTN_BF16_PV;
        int thr[] = {1, 2, 3};
        for (int t = 0; t < 3; t++) {
            for (int i = 0; i < C * ldo; i++) o[i] = -7.f;
            CHECK(cs_attn_avx512(o, ldo, q, ldq, k, ldk, v, ldv, Tq, Tk, heads, dh, parts[p], thr[t]) == 0);
            if (t == 0) {
                memcpy(o1, o, sizeof(float) * C * ldo);
                double e = ref_abs_err(o, ldo, qk ? qr : q, ldq, qk ? kr : k, ldk, pv ? vr : v, ldv, Tq, Tk, heads, dh);
                /* P rounded (PV): 2^-9 max|V|; else fp32 sums only */
                double bound = pv ? ldexp(vmax, -8) : 2e-5 * vmax;
                CHECKF(e <= bound, "bf16 parts %d, %d x %d, %d heads of %d (q x%g): |err| %g > %g", parts[p], Tq, Tk,
                       heads, dh, qscale, e, bound);
                /* and visibly not the fp32 result: the rounding is there */
                double ef = ref_abs_err(o, ldo, q, ldq, k, ldk, v, ldv, Tq, Tk, heads, dh);
                CHECKF(ef > 1e-7 * vmax, "bf16 parts %d: equals the fp32 attention", parts[p]);
                int pad = 1;
                for (int r = 0; r < C; r++)
                    for (int i = Tq; i < ldo; i++) pad &= o[(size_t)r * ldo + i] == -7.f;
                CHECK(pad);
            } else {
                CHECKF(!memcmp(o, o1, sizeof(float) * C * ldo), "bf16 %d x %d: -j %d differs from -j 1", Tq, Tk,
                       thr[t]);
            }
        }
    }
    /* through nn_attention_cm_ld: bf16 under nn_set_precision(NN_BF16) where every side is >= 16 */
    float *ws = malloc(sizeof(float) * nn_attention_ws(Tq, Tk));
    REQUIRE(nn_set_precision(NN_BF16) == 0);
    cs_set_threads(2);
    nn_attention_cm_ld(o, ldo, q, ldq, k, ldk, v, ldv, Tq, Tk, heads, dh, ws);
    int big = Tq >= NN_BF16_MIN_SIDE && Tk >= NN_BF16_MIN_SIDE && dh >= NN_BF16_MIN_SIDE;
    CHECKF((memcmp(o, o1, sizeof(float) * C * ldo) == 0) == big, "%d x %d, dh %d: nn_attention_cm_ld under bf16 %s", Tq,
           Tk, dh, big ? "did not take the bf16 attention" : "took bf16 on a thin product");
    nn_set_attention_bf16(0); /* fp32 attention under bf16: the fp32 bytes */
    nn_attention_cm_ld(o, ldo, q, ldq, k, ldk, v, ldv, Tq, Tk, heads, dh, ws);
    nn_set_precision(NN_FP32);
    nn_attention_cm_ld(o1, ldo, q, ldq, k, ldk, v, ldv, Tq, Tk, heads, dh, ws);
    CHECK(!memcmp(o, o1, sizeof(float) * C * ldo));
    nn_set_attention_bf16(NN_ATTN_BF16_QK | NN_ATTN_BF16_PV);
    free(q), free(k), free(v), free(o), free(o1), free(qr), free(kr), free(vr), free(ws);
}

static void test_bf16(void) {
    if (cs_cpu_isa() < CS_ISA_AVX512_BF16) {
        fprintf(stderr, "test_gemm_attn: no AVX512_BF16 here: bf16 attention not checked\n");
        return;
    }
    one_bf16(70, 77, 2, 40, 1.f, 1.f);   /* cross-attention shape */
    one_bf16(200, 293, 3, 40, 4.f, 3.f); /* ragged everywhere (odd Tk: a half pair), sharp scores */
    one_bf16(130, 150, 2, 80, 1.f, 1.f);
    one_bf16(65, 420, 1, 13, 8.f, 1.f);  /* odd dh (a half pair), dh < 14; thin: fp32 via nn_attention_cm_ld */
    one_bf16(33, 281, 1, 160, 2.f, 1.f); /* dh 160 */
    one_bf16(20, 8, 2, 16, 1.f, 1.f);    /* fewer keys than 16: fp32 via nn_attention_cm_ld */
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
    RUN(test_bf16);
    return T_DONE();
}
