/* test_blocks_fixture.h — blocky random 64 px pictures for the verdict tests
 * (test_verdict_ambig, test_verdict_partial): 8 px blocks of random colours,
 * so unrelated tiles are far apart and each answer follows from the tile
 * distances by construction. One seeded generator per test file. */
#ifndef TEST_BLOCKS_FIXTURE_H
#define TEST_BLOCKS_FIXTURE_H

#include <stdint.h>
#include <string.h>

#define S 64
#define D (S * S * 3)

static uint32_t rng = 4242;
static uint32_t rnd(void) {
    rng = rng * 1664525u + 1013904223u;
    return rng >> 8;
}

/* random 8 px blocks, colours in [40, 215] so that offsets of +-0.1 stay in range */
static void random_blocks(uint8_t *p, int x0, int y0, int x1, int y1) {
    for (int by = y0; by < y1; by += 8)
        for (int bx = x0; bx < x1; bx += 8) {
            uint8_t c[3] = {(uint8_t)(40 + rnd() % 176), (uint8_t)(40 + rnd() % 176), (uint8_t)(40 + rnd() % 176)};
            for (int y = 0; y < 8; y++)
                for (int x = 0; x < 8; x++) memcpy(p + ((by + y) * S + bx + x) * 3, c, 3);
        }
}

/* adds v (grey levels) to every pixel of a region */
static void offset(uint8_t *p, int x0, int y0, int x1, int y1, int v) {
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            for (int c = 0; c < 3; c++) p[(y * S + x) * 3 + c] = (uint8_t)(p[(y * S + x) * 3 + c] + v);
}

#endif
