/* gemm_internal.h — the AVX-512 micro-kernel (core/gemm_avx512.c) for other
 * AVX-512 files (core/attn_avx512.c). Call only after cs_cpu_isa() allows. */
#ifndef CS_GEMM_INTERNAL_H
#define CS_GEMM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define CS_GEMM_MR 14 /* rows of the register tile */
#define CS_GEMM_NR 32 /* columns */

/* One 14 x 32 block: acc[i][j] = sum_k a[i*rs + k*ks] * b[k*ldb + j] (columns
 * j under the masks m0 (0..15), m1 (16..31) read, others taken as 0), summed
 * in k order; then rows i < m of c (row stride ldc, columns under the masks)
 * get: first: beta c + alpha acc (beta 0: c not read); else c + alpha acc. */
void cs_gemm_kern_strided(int kc, const float *a, size_t rs, size_t ks, const float *b, size_t ldb, float *c, int ldc,
                          int m, unsigned m0, unsigned m1, float alpha, float beta, int first);

/* The same with bf16 operands, two k per step (vdpbf16ps, sums in fp32):
 * a's pair word (low half the even k) for row i, pair q at a[i*rs + q*ks],
 * all MR rows read; b's pair row q at b + q*ldb, all 32 lanes read (the
 * caller pads both with zeros); C as above. */
void cs_gemm_kern_bf16_strided(int kp, const uint32_t *a, size_t rs, size_t ks, const uint32_t *b, size_t ldb, float *c,
                               int ldc, int m, unsigned m0, unsigned m1, float alpha, float beta, int first);

#endif
