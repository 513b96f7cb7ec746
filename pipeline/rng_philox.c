/* rng_philox.c — Philox4x32-10 and A1111's normals over it (see rng_philox.h). */
#include "pipeline/rng_philox.h"

#include <math.h>

void cs_philox_seed(cs_philox *g, uint64_t seed) {
    g->seed = seed;
    g->offset = 0;
}

void cs_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)c2 * 0xCD9E8D57u, p1 = (uint64_t)c0 * 0xD2511F53u;
        uint32_t n0 = (uint32_t)(p0 >> 32) ^ c1 ^ k0, n1 = (uint32_t)p0;
        uint32_t n2 = (uint32_t)(p1 >> 32) ^ c3 ^ k1, n3 = (uint32_t)p1;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
        if (r < 9) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

void cs_philox_randn(cs_philox *g, float *out, size_t n) {
    const uint32_t key[2] = {(uint32_t)g->seed, (uint32_t)(g->seed >> 32)};
    /* A1111: np.float32(2.3283064e-10 * 6.2831855), the product taken in
     * double; c / 2 is exact in float32 */
    const double c = (double)(float)(2.3283064e-10 * 6.2831855);
    for (size_t i = 0; i < n; i++) {
        uint32_t ctr[4] = {g->offset, 0, (uint32_t)i, 0}, w[4];
        cs_philox4x32_10(ctr, key, w);
        /* one rounding per numpy operation: separate statements keep a
         * compiler from fusing the multiply and add */
        double u = (double)w[0] * 0x1.0p-32;
        u += 0x1.0p-33;
        double v = (double)w[1] * c;
        v += c / 2.0;
        out[i] = (float)(sqrt(-2.0 * log(u)) * sin(v));
    }
    g->offset++;
}
