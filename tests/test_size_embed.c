/* test_size_embed.c — the SDXL size/crop embedding (sd_size_embed) at sizes
 * the reference case (../shared/refs/sdxl-tiny, sizes <= 1344) does not hold.
 * The expected values were computed with sgm's timestep_embedding in torch
 * 1.13 on the CPU (float32, AVX2 kernels) and picked where a correctly rounded
 * exp for the frequencies puts the output furthest off (the "old" column:
 * |cos/sin error| of that approach), so the test fails unless the frequencies
 * are torch's own bit for bit. */
#include <math.h>
#include <stdio.h>

#include "pipeline/sd.h"
#include "tests/t.h"

/* one ulp of cos/sin near 1 is 6e-8: libm and torch (SLEEF) may differ by it */
#define TOL 2.5e-7

static const struct {
    float v;
    int j; /* 0..127 cos(v f_j), 128..255 sin(v f_(j-128)) */
    float want;
} cases[] = {
    {1536, 141, -0x1.ab183ep-2f}, /* old 5.5e-05 */
    {1536, 13, 0x1.d1571ap-1f},   /* old 2.5e-05 */
    {2048, 142, 0x1.69af78p-3f},  /* old 6.0e-05 */
    {2048, 141, -0x1.15dca2p-1f}, /* old 5.1e-05 */
    {4096, 142, 0x1.64001cp-2f},  /* old 1.1e-04 */
    {4096, 13, 0x1.a4d198p-2f},   /* old 1.1e-04 */
    {5520, 13, 0x1.9499ccp-6f},   /* old 2.4e-04 */
    {5520, 14, 0x1.aa563ap-2f},   /* old 1.1e-04 */
};

static void test_torch_values(void) {
    float o[256];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sd_size_embed(cases[i].v, o);
        CHECKF(fabsf(o[cases[i].j] - cases[i].want) <= TOL, "v=%g j=%d got %a want %a",
               cases[i].v, cases[i].j, o[cases[i].j], cases[i].want);
    }
}

/* v = 0: cos 1, sin 0 exactly; and every row is a point on the unit circle */
static void test_identities(void) {
    float o[256];
    sd_size_embed(0, o);
    for (int j = 0; j < 128; j++) CHECK(o[j] == 1.0f && o[128 + j] == 0.0f);
    sd_size_embed(1024, o);
    CHECK(o[0] == cosf(1024.0f) && o[128] == sinf(1024.0f)); /* f_0 = exp(0) = 1 */
    for (int j = 0; j < 128; j++)
        CHECKF(fabsf(o[j] * o[j] + o[128 + j] * o[128 + j] - 1) < 1e-6f, "j=%d", j);
}

int main(void) {
    RUN(test_torch_values);
    RUN(test_identities);
    return T_DONE();
}
