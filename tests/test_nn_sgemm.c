/* test_nn_sgemm.c — nn_sgemm (core/nn.h): every transpose case against a
 * naive double-precision product, and the same bits at 1, 2, 3 and 7
 * threads (issue 19: OpenBLAS's own threading made -j 1 and -j 2 differ). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* op(X)[r][c] of a row-major X with leading dimension ld */
static float at(const float *X, int t, int ld, int r, int c) { return t ? X[(size_t)c * ld + r] : X[(size_t)r * ld + c]; }

static void one_shape(int M, int N, int K) {
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
            size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
            float *A = malloc(na * sizeof *A), *B = malloc(nb * sizeof *B), *C0 = malloc(nc * sizeof *C0);
            float *C = malloc(nc * sizeof *C);
            for (size_t i = 0; i < na; i++) A[i] = frand();
            for (size_t i = 0; i < nb; i++) B[i] = frand();
            for (size_t i = 0; i < nc; i++) C0[i] = frand();
            float *first = malloc(nc * sizeof *first);
            int threads[] = {1, 2, 3, 7};
            for (int ti = 0; ti < 4; ti++) {
                cs_set_threads(threads[ti]);
                memcpy(C, C0, nc * sizeof *C);
                nn_sgemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.25f, C, ldc);
                if (ti == 0) {
                    memcpy(first, C, nc * sizeof *C);
                    double worst = 0;
                    for (int r = 0; r < M; r++)
                        for (int c = 0; c < N; c++) {
                            double s = 0.25 * C0[(size_t)r * ldc + c];
                            for (int k = 0; k < K; k++) s += 0.5 * (double)at(A, ta, lda, r, k) * at(B, tb, ldb, k, c);
                            double d = fabs(s - C[(size_t)r * ldc + c]);
                            if (d > worst) worst = d;
                        }
                    CHECKF(worst < 1e-4 * sqrt((double)K), "%dx%dx%d ta=%d tb=%d: off by %g", M, N, K, ta, tb, worst);
                    int pad_kept = 1; /* the columns past N in each row are not C's */
                    for (int r = 0; r < M; r++)
                        for (int c = N; c < ldc; c++) pad_kept &= C[(size_t)r * ldc + c] == C0[(size_t)r * ldc + c];
                    CHECK(pad_kept);
                } else {
                    CHECKF(!memcmp(first, C, nc * sizeof *C), "%dx%dx%d ta=%d tb=%d: -j %d differs from -j 1", M, N,
                           K, ta, tb, threads[ti]);
                }
            }
            free(A), free(B), free(C0), free(C), free(first);
        }
}

static void test_sgemm_shapes(void) {
    one_shape(7, 5, 3);        /* inline: one thread, one slice */
    one_shape(300, 517, 129);  /* sliced by columns, a partial last slice */
    one_shape(611, 77, 200);   /* sliced by rows (the CLIP linear shape) */
}

int main(void) {
    cs_set_thread_grain(0); /* every loop on all the threads set: the counts compared are the ones run */
    RUN(test_sgemm_shapes);
    return T_DONE();
}
