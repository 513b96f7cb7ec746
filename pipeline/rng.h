/* rng.h — the seeded normal random numbers of generation, and the noise-source
 * interface samplers draw from.
 *
 * Generator: xoshiro256** (Blackman & Vigna 2018), its 256-bit state filled
 * from the 64-bit seed by splitmix64. Normals: Box-Muller in double precision
 * on two 53-bit uniforms u1 in (0,1], u2 in [0,1): z0 = r cos(2 pi u2),
 * z1 = r sin(2 pi u2), r = sqrt(-2 ln u1), both used, rounded to float. Pure
 * integer state and libm's log/sqrt/cos/sin: the same seed gives the same
 * floats bit for bit on the same build. (Not the torch stream: images are
 * reproducible within copyscope, not across front ends.) */
#ifndef CS_RNG_H
#define CS_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
    int has_spare;  /* Box-Muller makes normals in pairs */
    double spare;
} cs_rng;

void cs_rng_seed(cs_rng *r, uint64_t seed);
uint64_t cs_rng_u64(cs_rng *r);
double cs_rng_uniform(cs_rng *r);           /* [0, 1), 53 bits */
void cs_rng_normal(cs_rng *r, float *out, size_t n);

/* Where a sampler gets its unit-normal noise: the initial latent first, then
 * one tensor per stochastic step (ancestral samplers, DDIM eta > 0), in order.
 * fill returns 0, or -1 when the source is exhausted (injected noise). */
typedef struct cs_noise {
    int (*fill)(struct cs_noise *src, float *out, size_t n);
    void *ctx;
} cs_noise;

/* A noise source over a seeded cs_rng (ctx = r, which the caller owns). */
cs_noise cs_noise_rng(cs_rng *r);

/* A noise source that replays a fixed buffer (tests inject reference noise):
 * successive fills take the next n floats; fails once the buffer runs out. */
typedef struct {
    const float *buf;
    size_t len, pos;
} cs_noise_buffer;
cs_noise cs_noise_from_buffer(cs_noise_buffer *b);

#endif
