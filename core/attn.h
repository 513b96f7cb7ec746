/* attn.h — fused multi-head attention for AVX-512 CPUs (core/attn_avx512.c):
 * per head and block of 64 queries, the keys in blocks of 140: S = K^T Q
 * (scaled), an online softmax (running max and sum per query, the partial
 * output rescaled when the max grows), O += V P; the T x T scores never
 * leave the cache (the unfused path wrote 4 MB blocks of them and read them
 * twice). Channel-major as nn_attention_cm_ld. Each (head, query block) is
 * one item summed in a fixed order: the bits do not depend on the thread
 * count. Reached through nn_attention_cm_ld; enter only after cs_cpu_isa()
 * allows AVX-512. Products in fp32 whatever nn_precision() says.
 *
 * Returns -1 when out of memory (nothing written), else 0. */
#ifndef CS_ATTN_H
#define CS_ATTN_H

int cs_attn_avx512(float *out, int ldo, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                   int Tq, int Tk, int heads, int dh, int nthreads);

#endif
