/* rng_philox.h — the CUDA-style Philox4x32-10 normals of A1111's "NV" noise
 * source (modules/rng_philox.py), which imitates torch.randn on an NVIDIA GPU
 * (A1111's default "GPU" source) on any machine.
 *
 * Element i of a randn call uses counter (offset, 0, i, 0) and key
 * (seed & 0xffffffff, seed >> 32): the full 64-bit seed counts. Of the four
 * output words only w0 and w1 are used: u = w0 2^-32 + 2^-33,
 * v = w1 c + c/2 with c = float32(2.3283064e-10 * 6.2831855) (product in double),
 * z = sqrt(-2 ln u) sin v, evaluated in double (as numpy promotes A1111's
 * uint32 * float32) and rounded to float once. Every call advances offset by
 * one, whatever its size. */
#ifndef CS_RNG_PHILOX_H
#define CS_RNG_PHILOX_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t seed;
    uint32_t offset;
} cs_philox;

void cs_philox_seed(cs_philox *g, uint64_t seed);
/* One Philox4x32-10 block: out = philox(counter, key). */
void cs_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);
void cs_philox_randn(cs_philox *g, float *out, size_t n);

#endif
