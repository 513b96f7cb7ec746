/* rng_torch.c — torch's CPU MT19937 and randn (see rng_torch.h). */
#include "pipeline/rng_torch.h"

#include <math.h>
#include <string.h>

void cs_torch_seed(cs_torch_gen *g, uint64_t seed) {
    g->mt[0] = (uint32_t)seed;
    for (int i = 1; i < 624; i++) g->mt[i] = 1812433253u * (g->mt[i - 1] ^ (g->mt[i - 1] >> 30)) + (uint32_t)i;
    g->idx = 624;
    g->has_cached = 0;
    g->cached = 0;
}

static void twist(uint32_t *mt) {
    for (int i = 0; i < 624; i++) {
        uint32_t y = (mt[i] & 0x80000000u) | (mt[(i + 1) % 624] & 0x7fffffffu);
        mt[i] = mt[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
}

uint32_t cs_torch_u32(cs_torch_gen *g) {
    if (g->idx >= 624) {
        twist(g->mt);
        g->idx = 0;
    }
    uint32_t y = g->mt[g->idx++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

static float unit_f(cs_torch_gen *g) { return (float)(cs_torch_u32(g) & 0xFFFFFFu) * 0x1.0p-24f; }

void cs_torch_rand(cs_torch_gen *g, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = unit_f(g);
}

/* ---- Cephes float log / sincos in avx_mathfun's operation order ----
 * torch builds its AVX2 kernel with FMA enabled, and the compiler fuses
 * each single-use multiply into the add that follows. We call fmaf there
 * (correctly rounded: the same bits as the hardware FMA). Which pairs are
 * fused was settled against the references: this placement reproduces all
 * 49152 values of randn/s{0,42,1234}/1x4x64x64 bit for bit, the unfused
 * Cephes order misses ~0.3% of them by one ulp. This file must be compiled
 * without contraction of its own (plain C17 does not contract across
 * statements; the expressions below have no a*b+c left to fuse). */

static inline uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float bitsf(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float cs_torch_logf(float x) {
    if (!(x > 0)) return x == 0 ? -INFINITY : NAN;
    if (x < 0x1.0p-126f) x = 0x1.0p-126f; /* min normal, as the kernel clamps */
    uint32_t u = fbits(x);
    int e0 = (int)(u >> 23) - 0x7f;
    x = bitsf((u & ~0x7f800000u) | 0x3f000000u); /* mantissa in [0.5, 1) */
    float e = (float)e0 + 1.0f;
    float tmp = 0;
    if (x < 0.707106781186547524f) {
        tmp = x;
        e -= 1.0f;
    }
    x = x - 1.0f;
    x = x + tmp;
    float z = x * x;
    float y = 7.0376836292E-2f;
    y = fmaf(y, x, -1.1514610310E-1f);
    y = fmaf(y, x, 1.1676998740E-1f);
    y = fmaf(y, x, -1.2420140846E-1f);
    y = fmaf(y, x, 1.4249322787E-1f);
    y = fmaf(y, x, -1.6668057665E-1f);
    y = fmaf(y, x, 2.0000714765E-1f);
    y = fmaf(y, x, -2.4999993993E-1f);
    y = fmaf(y, x, 3.3333331174E-1f);
    y = y * x;
    y = fmaf(y, z, e * -2.12194440e-4f);
    y = fmaf(-z, 0.5f, y);
    x = x + y;
    x = fmaf(e, 0.693359375f, x);
    return x;
}

void cs_torch_sincosf(float x, float *s, float *c) {
    uint32_t sign_sin = fbits(x) & 0x80000000u;
    x = fabsf(x);
    float y = x * 1.27323954473516f; /* 4 / pi */
    int32_t j = (int32_t)y;            /* truncation, as cvttps */
    j = (j + 1) & ~1;
    y = (float)j;
    uint32_t swap_sin = ((uint32_t)j & 4u) << 29;
    int poly = (j & 2) == 0;
    uint32_t sign_cos = (~(uint32_t)(j - 2) & 4u) << 29;
    sign_sin ^= swap_sin;
    /* extended-precision range reduction: x - y pi/4 in three parts */
    x = fmaf(y, -0.78515625f, x);
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);
    float z = x * x;
    float yc = 2.443315711809948E-005f;
    yc = fmaf(yc, z, -1.388731625493765E-003f);
    yc = fmaf(yc, z, 4.166664568298827E-002f);
    yc = yc * z;
    yc = fmaf(yc, z, -(z * 0.5f));
    yc = yc + 1.0f;
    float ys = -1.9515295891E-4f;
    ys = fmaf(ys, z, 8.3321608736E-3f);
    ys = fmaf(ys, z, -1.6666654611E-1f);
    ys = ys * z;
    ys = fmaf(ys, x, x);
    float sv = poly ? ys : yc, cv = poly ? yc : ys;
    *s = bitsf(fbits(sv) ^ sign_sin);
    *c = bitsf(fbits(cv) ^ sign_cos);
}

/* Box-Muller on 16 uniforms in place (torch normal_fill_16_AVX2). */
static void fill16(float *d) {
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j], u2 = d[j + 8];
        float r = sqrtf(-2.0f * cs_torch_logf(u1));
        float th = 6.2831855f * u2;
        float sn, cs;
        cs_torch_sincosf(th, &sn, &cs);
        d[j] = r * cs;
        d[j + 8] = r * sn;
    }
}

static double unit_d(cs_torch_gen *g) {
    uint64_t hi = cs_torch_u32(g), lo = cs_torch_u32(g);
    return (double)(((hi << 32) | lo) & ((1ULL << 53) - 1)) * 0x1.0p-53;
}

void cs_torch_randn(cs_torch_gen *g, float *out, size_t n) {
    if (n < 16) {
        for (size_t i = 0; i < n; i++) {
            if (g->has_cached) {
                g->has_cached = 0;
                out[i] = (float)g->cached;
                continue;
            }
            double u1 = unit_d(g), u2 = unit_d(g);
            double r = sqrt(-2.0 * log(1.0 - u2)), th = 2.0 * M_PI * u1;
            g->cached = r * sin(th);
            g->has_cached = 1;
            out[i] = (float)(r * cos(th));
        }
        return;
    }
    for (size_t i = 0; i < n; i++) out[i] = unit_f(g);
    for (size_t i = 0; i + 16 <= n; i += 16) fill16(out + i);
    if (n % 16) {
        for (size_t i = n - 16; i < n; i++) out[i] = unit_f(g);
        fill16(out + n - 16);
    }
}
