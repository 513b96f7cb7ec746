/* attn.h — fused multi-head attention for AVX-512 CPUs (core/attn_avx512.c):
 * per head and block of 64 queries, the keys in blocks of 140: S = K^T Q
 * (scaled), an online softmax (running max and sum per query, the partial
 * output rescaled when the max grows), O += V P; the T x T scores never
 * leave the cache (the unfused path wrote 4 MB blocks of them and read them
 * twice). Channel-major as nn_attention_cm_ld. Each (head, query block) is
 * one item summed in a fixed order: the bits do not depend on the thread
 * count. Reached through nn_attention_cm_ld; enter only after cs_cpu_isa()
 * allows AVX-512. bf16: flags CS_ATTN_BF16_QK (S = K^T Q from operands
 * rounded to bf16) and CS_ATTN_BF16_PV (O += V P from V and P rounded to
 * bf16), sums in fp32, the softmax in fp32; AVX512_BF16 CPUs only; 0: fp32.
 *
 * Returns -1 when out of memory (nothing written), else 0. */
#ifndef CS_ATTN_H
#define CS_ATTN_H

enum { CS_ATTN_BF16_QK = 1, CS_ATTN_BF16_PV = 2 };
int cs_attn_avx512(float *out, int ldo, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                   int Tq, int Tk, int heads, int dh, int bf16, int nthreads);

#endif
