/* gemm_onednn.c — see gemm.h: one single-threaded oneDNN sgemm call (its
 * AVX-512 kernels, the ones PyTorch's CPU convolutions use). Built with
 * oneDNN when its header is there (Makefile: CS_HAVE_DNNL); without it,
 * cs_gemm_onednn_available() is 0 and nn_sgemm uses our own AVX-512 kernel
 * (core/gemm_avx512.c), the measured second best. */
#include "core/gemm.h"

#ifdef CS_HAVE_DNNL
#include <dnnl.h>
#include <omp.h>

int cs_gemm_onednn_available(void) { return 1; }

int cs_gemm_onednn_1t(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                      int ldb, float beta, float *C, int ldc) {
    /* oneDNN threads with OpenMP: one thread per call (our threads take the
     * calls); the setting is per thread, and the caller's own is given back
     * (FAISS on that thread keeps its OpenMP threads) */
    int had = omp_get_max_threads();
    if (had != 1) omp_set_num_threads(1);
    int rc = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == dnnl_success
                 ? 0
                 : -1;
    if (had != 1) omp_set_num_threads(had);
    return rc;
}
#else
int cs_gemm_onednn_available(void) { return 0; }

int cs_gemm_onednn_1t(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                      int ldb, float beta, float *C, int ldc) {
    (void)ta, (void)tb, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda, (void)B, (void)ldb, (void)beta;
    (void)C, (void)ldc;
    return -1;
}
#endif
