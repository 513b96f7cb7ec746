/* test_gemm_avx512.c — the AVX-512 products under nn_sgemm (core/gemm_avx512.c):
 * every transpose case over odd shapes and edge tiles (M, N not multiples of
 * the 14 x 32 register tile, K not of the 256 block nor of 16) against a
 * naive double-precision product; bf16 against the same product of the
 * operands rounded to bf16 (exact in double, so only fp32 summation error
 * is left) and against fp32 within 1e-2, products thinner than
 * NN_BF16_MIN_SIDE giving the fp32 bytes; the same bytes at -j 1, 2 and 3;
 * the forced AVX2/OpenBLAS path (cs_cpu_force) agreeing with the AVX-512 one;
 * the fp32 checks run on our kernel and on oneDNN's sgemm (when built in).
 * On a CPU without AVX-512 only the fallback is checked (and said so). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/gemm.h"
#include "core/nn.h"
#include "core/parallel.h"
#include "tests/t.h"

static uint64_t rng = 0x243F6A8885A308D3ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) / (double)(1 << 24)) * 2.f - 1.f;
}

static float at(const float *X, int t, int ld, int r, int c) { return t ? X[(size_t)c * ld + r] : X[(size_t)r * ld + c]; }

static float to_bf16(float f) { /* round to nearest even, as the kernel packs */
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

/* max |C - (alpha op(A) op(B) + beta C0)| over C, the reference in double
 * (operands rounded to bf16 first when bf16), relative to max |reference|. */
static double ref_err(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                      int ldb, float beta, const float *C0, const float *C, int ldc, int bf16) {
    double worst = 0, big = 0;
    for (int r = 0; r < M; r++)
        for (int c = 0; c < N; c++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                float a = at(A, ta, lda, r, k), b = at(B, tb, ldb, k, c);
                if (bf16) a = to_bf16(a), b = to_bf16(b);
                s += (double)a * b;
            }
            s = alpha * s + beta * (double)C0[(size_t)r * ldc + c];
            double d = fabs(s - C[(size_t)r * ldc + c]);
            if (d > worst) worst = d;
            if (fabs(s) > big) big = fabs(s);
        }
    return big > 0 ? worst / big : worst;
}

static void one(int ta, int tb, int M, int N, int K, float beta, int have512, int have_bf16) {
    int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
    float *A = malloc(na * 4), *B = malloc(nb * 4), *C0 = malloc(nc * 4), *C = malloc(nc * 4);
    float *C1 = malloc(nc * 4), *Cb = malloc(nc * 4), *Cfp = malloc(nc * 4);
    for (size_t i = 0; i < na; i++) A[i] = frand();
    for (size_t i = 0; i < nb; i++) B[i] = frand();
    for (size_t i = 0; i < nc; i++) C0[i] = frand();
    const float alpha = 0.75f;
    /* the fallback (OpenBLAS) */
    cs_cpu_force(CS_ISA_BASE);
    cs_set_threads(2);
    memcpy(Cb, C0, nc * 4);
    nn_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Cb, ldc);
    cs_cpu_force(-1);
    double tol = 2e-6 * sqrt((double)K + 1);
    double e = ref_err(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, Cb, ldc, 0);
    CHECKF(e < tol, "fallback %dx%dx%d ta=%d tb=%d: rel err %g", M, N, K, ta, tb, e);
    /* our kernel, then oneDNN's sgemm when built in (Cfp keeps the last, the
     * default's, for the bf16 part) */
    int last = cs_gemm_onednn_available() ? NN_GEMM_ONEDNN : NN_GEMM_OWN;
    for (int be = NN_GEMM_OWN; have512 && be <= last; be++) {
        nn_set_gemm_backend(be);
        int thr[] = {1, 2, 3};
        for (int ti = 0; ti < 3; ti++) {
            cs_set_threads(thr[ti]);
            memcpy(C, C0, nc * 4);
            nn_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            if (ti == 0) {
                memcpy(C1, C, nc * 4);
                if (be == last) memcpy(Cfp, C, nc * 4);
                e = ref_err(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, C, ldc, 0);
                CHECKF(e < tol, "%s %dx%dx%d ta=%d tb=%d beta=%g: rel err %g", be == NN_GEMM_OWN ? "own" : "onednn", M,
                       N, K, ta, tb, beta, e);
                double d = nn_rel_err(C, Cb, nc);
                CHECKF(d < 2 * tol, "avx512 vs fallback %dx%dx%d: %g", M, N, K, d);
                int pad = 1; /* columns past N untouched */
                for (int r = 0; r < M; r++)
                    for (int c = N; c < ldc; c++) pad &= C[(size_t)r * ldc + c] == C0[(size_t)r * ldc + c];
                CHECK(pad);
            } else {
                CHECKF(!memcmp(C, C1, nc * 4), "avx512 %dx%dx%d ta=%d tb=%d: -j %d differs from -j 1", M, N, K, ta,
                       tb, thr[ti]);
            }
        }
    }
    nn_set_gemm_backend(NN_GEMM_AUTO);
    if (have_bf16) {
        REQUIRE(nn_set_precision(NN_BF16) == 0);
        for (int ti = 1; ti <= 2; ti++) {
            cs_set_threads(ti);
            memcpy(C, C0, nc * 4);
            nn_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            int thin = M < NN_BF16_MIN_SIDE || N < NN_BF16_MIN_SIDE || K < NN_BF16_MIN_SIDE;
            if (ti == 1 && thin) { /* stays fp32: the fp32 bytes */
                memcpy(C1, C, nc * 4);
                CHECKF(!have512 || !memcmp(C, Cfp, nc * 4), "bf16 %dx%dx%d (thin): not the fp32 result", M, N, K);
            } else if (ti == 1) {
                memcpy(C1, C, nc * 4);
                e = ref_err(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, C, ldc, 1);
                CHECKF(e < tol, "bf16 %dx%dx%d ta=%d tb=%d: rel err vs bf16 operands %g", M, N, K, ta, tb, e);
                e = ref_err(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, C, ldc, 0);
                CHECKF(e < 1e-2, "bf16 %dx%dx%d ta=%d tb=%d: rel err vs fp32 %g", M, N, K, ta, tb, e);
                CHECKF(e > 1e-5, "bf16 %dx%dx%d: no rounding seen (%g): bf16 path not taken?", M, N, K, e);
            } else {
                CHECKF(!memcmp(C, C1, nc * 4), "bf16 %dx%dx%d: -j 2 differs from -j 1", M, N, K);
            }
        }
        nn_set_precision(NN_FP32);
    }
    free(A), free(B), free(C0), free(C), free(C1), free(Cb), free(Cfp);
}

static void test_shapes(void) {
    int have512 = cs_cpu_isa() >= CS_ISA_AVX512, have_bf16 = cs_cpu_isa() >= CS_ISA_AVX512_BF16;
    if (!have512) fprintf(stderr, "test_gemm_avx512: no AVX-512 here: only the fallback checked\n");
    static const int shapes[][3] = {
        {1, 1, 1},     {13, 31, 7},   {14, 32, 16},  {15, 33, 17},   {29, 65, 255}, {3, 200, 257},
        {230, 70, 40}, {45, 300, 530}, {226, 520, 33}, {64, 1030, 19}, {40, 96, 600}, {16, 16, 16}, {17, 45, 300},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                one(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], (s & 1) ? 0.f : 0.5f, have512, have_bf16);
}

/* beta = 0 must not read C: NaN there stays out of the result. */
static void test_beta_zero_ignores_c(void) {
    int M = 20, N = 40, K = 9;
    float A[20 * 9], B[9 * 40], C[20 * 40];
    for (int i = 0; i < M * K; i++) A[i] = frand();
    for (int i = 0; i < K * N; i++) B[i] = frand();
    for (int i = 0; i < M * N; i++) C[i] = NAN;
    nn_sgemm(0, 0, M, N, K, 1.f, A, K, B, N, 0.f, C, N);
    int finite = 1;
    for (int i = 0; i < M * N; i++) finite &= isfinite(C[i]);
    CHECK(finite);
}

/* bf16 is refused where the CPU (or the cap) lacks it, and fp32 stays. */
static void test_precision_refused(void) {
    cs_cpu_force(CS_ISA_BASE);
    CHECK(nn_set_precision(NN_BF16) == -1);
    CHECK(nn_precision() == NN_FP32);
    cs_cpu_force(-1);
    CHECK(nn_set_precision(7) == -1);
}

int main(void) {
    RUN(test_shapes);
    RUN(test_beta_zero_ignores_c);
    RUN(test_precision_refused);
    return T_DONE();
}
