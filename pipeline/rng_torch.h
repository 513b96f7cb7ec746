/* rng_torch.h — PyTorch's CPU generator as torch.randn draws from it, so a
 * seed pasted from A1111 ("RNG: CPU"), ComfyUI or a diffusers script on the
 * CPU gives the same starting noise here.
 *
 * Generator: MT19937 seeded by init_genrand(seed mod 2^32) (torch keeps only
 * the low 32 bits of manual_seed's 64-bit value). randn of n floats:
 *   n >= 16: n uniforms u = (word & 0xFFFFFF) * 2^-24, then Box-Muller in
 *     place on blocks of 16 (pairs j, j+8: r = sqrt(-2 ln(1 - u_j)),
 *     th = 2pi u_{j+8} in float32); when n % 16 != 0 the last 16 values are
 *     drawn again from 16 new words and transformed the same way. log and
 *     sincos are the Cephes float polynomials torch's AVX2 kernel uses
 *     (avx_mathfun), evaluated in the same order with the fused multiply-adds
 *     the compiled kernel has, so the floats match x86 torch bit for bit;
 *   n < 16: torch's double normal_distribution per element: two 53-bit
 *     doubles from two words each (first word high), r = sqrt(-2 ln(1 - u2)),
 *     th = 2pi u1, returns r cos th and keeps r sin th for the next such
 *     element (the cache survives n >= 16 calls; seeding clears it).
 * See ../shared/refs/rng/README.md for the references these are checked
 * against (tests/test_rng.c). */
#ifndef CS_RNG_TORCH_H
#define CS_RNG_TORCH_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t mt[624];
    int idx;           /* next word; 624 = twist first */
    int has_cached;    /* double-path Box-Muller spare */
    double cached;
} cs_torch_gen;

void cs_torch_seed(cs_torch_gen *g, uint64_t seed);
uint32_t cs_torch_u32(cs_torch_gen *g);
/* torch.rand(n): float uniforms in [0, 1), one word each. */
void cs_torch_rand(cs_torch_gen *g, float *out, size_t n);
/* torch.randn(n) (any shape with n elements; noise depends only on n). */
void cs_torch_randn(cs_torch_gen *g, float *out, size_t n);

/* The float32 kernels alone (exposed for tests). */
float cs_torch_logf(float x);
void cs_torch_sincosf(float x, float *s, float *c);

#endif
