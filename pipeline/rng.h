/* rng.h — the seeded normal random numbers of generation, and the noise-source
 * interface samplers draw from.
 *
 * Three generators (cs_rng_kind): A1111's Philox "NV" source (the default,
 * rng_philox.h), torch's CPU generator (rng_torch.h), and copyscope's own
 * xoshiro256** below, kept for runs made before them. cs_noise_gen draws an
 * image's noise from any of them the way A1111 does (per-image generator,
 * one randn call per tensor, optional ENSD re-seeding).
 *
 * xoshiro256** (Blackman & Vigna 2018), its 256-bit state filled from the
 * 64-bit seed by splitmix64. Normals: Box-Muller in double precision on two
 * 53-bit uniforms u1 in (0,1], u2 in [0,1): z0 = r cos(2 pi u2),
 * z1 = r sin(2 pi u2), r = sqrt(-2 ln u1), both used, rounded to float. Pure
 * integer state and libm's log/sqrt/cos/sin: the same seed gives the same
 * floats bit for bit on the same build. (Not any other tool's stream.) */
#ifndef CS_RNG_H
#define CS_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline/rng_philox.h"
#include "pipeline/rng_torch.h"

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

/* Which generator draws a run's noise. The default (0) is A1111's default:
 * its "GPU" source, reproduced by its "NV" Philox emulation. */
typedef enum {
    CS_RNG_PHILOX,    /* "philox": A1111 "NV" (= its GPU default), rng_philox.py */
    CS_RNG_TORCH_CPU, /* "torch-cpu": A1111 "CPU", ComfyUI, torch.randn on the CPU */
    CS_RNG_XOSHIRO,   /* "xoshiro": copyscope's own stream (before issue 20) */
    CS_RNG_COUNT
} cs_rng_kind;

/* Names: "philox" (also "nv", "gpu"), "torch-cpu" (also "cpu", "torch"),
 * "xoshiro". parse is case-insensitive; returns 0 or -1. */
const char *cs_rng_name(cs_rng_kind k);
int cs_rng_parse(const char *name, cs_rng_kind *out);
/* The value of A1111's "RNG:" infotext key ("NV", "CPU"), or NULL for
 * xoshiro, which A1111 cannot reproduce. */
const char *cs_rng_a1111_name(cs_rng_kind k);

/* One image's noise as A1111 >= 1.6 draws it (modules/rng.py ImageRNG with
 * k-diffusion's randn_like hijacked): the image has its own generator seeded
 * with its seed (A1111 gives batch image j seed + j, so a batch image equals
 * the same seed run alone); every fill is one randn call on it of the
 * requested size: first the initial noise, then each stochastic step's noise.
 * When ensd (A1111's "eta noise seed delta", ENSD) is non-zero the generator
 * is re-created from seed + ensd after the first fill. */
typedef struct {
    cs_rng_kind kind;
    uint64_t seed, ensd;
    int fills;
    union {
        cs_rng x;
        cs_torch_gen t;
        cs_philox p;
    } g;
} cs_noise_gen;

void cs_noise_gen_init(cs_noise_gen *g, cs_rng_kind kind, uint64_t seed, uint64_t ensd);
/* One randn call of n values on g's current generator (no ENSD logic). */
void cs_noise_gen_randn(cs_noise_gen *g, float *out, size_t n);
cs_noise cs_noise_gen_source(cs_noise_gen *g);

#endif
