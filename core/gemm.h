/* gemm.h — our own packed-panel matrix product for AVX-512 CPUs (fp32, and
 * bf16 products with fp32 sums), the path nn_sgemm takes when cs_cpu_isa()
 * allows it. Not for direct use elsewhere: call nn_sgemm.
 *
 * The work is cut into tiles of C by the shape alone, each tile summed over K
 * in one fixed order by one thread: the bits do not depend on the thread
 * count. Code in gemm_avx512.c is compiled for AVX-512 and must only be
 * entered after cs_cpu_isa() said so. */
#ifndef CS_GEMM_H
#define CS_GEMM_H

#include <stddef.h>

/* C = alpha op(A) op(B) + beta C, row-major (as cblas_sgemm), over nthreads
 * threads. bf16 != 0 rounds op(A) and op(B) to bfloat16 (nearest even) and
 * multiplies with vdpbf16ps, summing in fp32 (needs CS_ISA_AVX512_BF16).
 * Returns -1 when out of memory (nothing written), else 0. beta = 0 never
 * reads C. */
int cs_gemm_avx512(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc, int bf16, int nthreads);

/* oneDNN's sgemm (core/gemm_onednn.c) on the calling thread: 0, or -1 when
 * oneDNN is not built in (cs_gemm_onednn_available() == 0) or failed. */
int cs_gemm_onednn_available(void);
int cs_gemm_onednn_1t(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                      int ldb, float beta, float *C, int ldc);

/* out [B, cout, oh, ow] = conv(in [B, cin, h, w], weight [cout, cin, kh, kw])
 * + bias (may be NULL), NCHW, as oneDNN convolution primitives
 * (core/conv_onednn.c) on nthreads of our threads; bf16 != 0: input and
 * weights rounded to bfloat16, sums in fp32. 0, or -1 when oneDNN is not
 * built in or cannot take the shape (cout % 16, cin < 16) or failed: then
 * the caller computes out itself. The bits depend on the shape only.
 * Weights inside a range given to cs_conv_weights_keep are reordered into
 * the primitive's layout once and kept. kept > 0: -1 unless they are
 * (small images, where a per-call reorder costs more than it gains);
 * kept < 0: reordered per call even so (for benches). */
int cs_conv_onednn(float *out, const float *in, const float *weight, const float *bias, int cin, int cout, int kh,
                   int kw, int stride, int pt, int pl, int pb, int pr, int B, int h, int w, int bf16, int kept,
                   int nthreads);
/* out [B, cout, 2h, 2w] = conv3x3 pad 1 (nearest 2x upsampling of in [B, cin,
 * h, w]) + bias, as four 2x2 convolutions of in (one per output phase: 16/36
 * of the multiplies), their kernels derived once from weight, which must be
 * kept (cs_conv_weights_keep). 0, or -1 (not kept, not oneDNN's shape,
 * failed): then the caller upsamples and convolves itself. */
int cs_conv_onednn_up2(float *out, const float *in, const float *weight, const float *bias, int cin, int cout, int B,
                       int h, int w, int bf16, int nthreads);
/* The caller promises that w[0, n) stays unchanged and allocated until
 * cs_conv_weights_forget(owner) (a loaded model's weights): convolutions
 * over weights inside it keep their reordered copies (up to 1 GB in all, in
 * one precision: those of the other are dropped; nn_conv2d asks for them
 * only for bf16 images below 32x32 and for nn_conv2d_up2).
 * 0, or -1 out of memory (then nothing is kept: still correct). */
int cs_conv_weights_keep(const void *owner, const float *w, size_t n);
/* Drops owner's ranges and the copies made from them; call before the weights change or are freed. */
void cs_conv_weights_forget(const void *owner);

/* The fp32 FMA peak: iters rounds of 24 independent zmm FMAs (register only,
 * no memory), returns a value that depends on every lane (so nothing is
 * optimised away). Flops done: iters * 24 * 32. For benchmarks. */
float cs_gemm_fma_loop(long iters);

#endif
