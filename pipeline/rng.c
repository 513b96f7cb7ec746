/* rng.c — xoshiro256** + Box-Muller (see rng.h for why and how). */
#include "pipeline/rng.h"

#include <math.h>
#include <strings.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void cs_rng_seed(cs_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    r->has_spare = 0;
    r->spare = 0;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t cs_rng_u64(cs_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double cs_rng_uniform(cs_rng *r) { return (double)(cs_rng_u64(r) >> 11) * 0x1.0p-53; }

void cs_rng_normal(cs_rng *r, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (r->has_spare) {
            r->has_spare = 0;
            out[i] = (float)r->spare;
            continue;
        }
        double u1 = 1.0 - cs_rng_uniform(r); /* (0, 1]: log is finite */
        double u2 = cs_rng_uniform(r);
        double rad = sqrt(-2.0 * log(u1));
        double a = 2.0 * M_PI * u2;
        r->spare = rad * sin(a);
        r->has_spare = 1;
        out[i] = (float)(rad * cos(a));
    }
}

static int rng_fill(cs_noise *src, float *out, size_t n) {
    cs_rng_normal(src->ctx, out, n);
    return 0;
}

cs_noise cs_noise_rng(cs_rng *r) { return (cs_noise){rng_fill, r}; }

static int buffer_fill(cs_noise *src, float *out, size_t n) {
    cs_noise_buffer *b = src->ctx;
    if (b->pos + n > b->len) return -1;
    for (size_t i = 0; i < n; i++) out[i] = b->buf[b->pos + i];
    b->pos += n;
    return 0;
}

cs_noise cs_noise_from_buffer(cs_noise_buffer *b) { return (cs_noise){buffer_fill, b}; }

/* ---- the generator choice and A1111's per-image noise ---- */

static const char *rng_names[CS_RNG_COUNT] = {"philox", "torch-cpu", "xoshiro"};

const char *cs_rng_name(cs_rng_kind k) { return (unsigned)k < CS_RNG_COUNT ? rng_names[k] : "?"; }

const char *cs_rng_a1111_name(cs_rng_kind k) {
    return k == CS_RNG_PHILOX ? "NV" : k == CS_RNG_TORCH_CPU ? "CPU" : NULL;
}

int cs_rng_parse(const char *name, cs_rng_kind *out) {
    static const struct {
        const char *s;
        cs_rng_kind k;
    } alias[] = {{"philox", CS_RNG_PHILOX},       {"nv", CS_RNG_PHILOX},          {"gpu", CS_RNG_PHILOX},
                 {"cuda", CS_RNG_PHILOX},         {"torch-cpu", CS_RNG_TORCH_CPU}, {"torch_cpu", CS_RNG_TORCH_CPU},
                 {"cpu", CS_RNG_TORCH_CPU},       {"torch", CS_RNG_TORCH_CPU},     {"xoshiro", CS_RNG_XOSHIRO},
                 {"xoshiro256**", CS_RNG_XOSHIRO}};
    for (size_t i = 0; i < sizeof alias / sizeof *alias; i++)
        if (!strcasecmp(name, alias[i].s)) {
            *out = alias[i].k;
            return 0;
        }
    return -1;
}

static void gen_reseed(cs_noise_gen *g, uint64_t seed) {
    switch (g->kind) {
    case CS_RNG_TORCH_CPU: cs_torch_seed(&g->g.t, seed); break;
    case CS_RNG_XOSHIRO: cs_rng_seed(&g->g.x, seed); break;
    default: cs_philox_seed(&g->g.p, seed); break;
    }
}

void cs_noise_gen_init(cs_noise_gen *g, cs_rng_kind kind, uint64_t seed, uint64_t ensd) {
    g->kind = kind;
    g->seed = seed;
    g->ensd = ensd;
    g->fills = 0;
    gen_reseed(g, seed);
}

void cs_noise_gen_randn(cs_noise_gen *g, float *out, size_t n) {
    switch (g->kind) {
    case CS_RNG_TORCH_CPU: cs_torch_randn(&g->g.t, out, n); break;
    case CS_RNG_XOSHIRO: cs_rng_normal(&g->g.x, out, n); break;
    default: cs_philox_randn(&g->g.p, out, n); break;
    }
}

static int gen_fill(cs_noise *src, float *out, size_t n) {
    cs_noise_gen *g = src->ctx;
    cs_noise_gen_randn(g, out, n);
    if (g->fills++ == 0 && g->ensd) gen_reseed(g, g->seed + g->ensd);
    return 0;
}

cs_noise cs_noise_gen_source(cs_noise_gen *g) { return (cs_noise){gen_fill, g}; }
