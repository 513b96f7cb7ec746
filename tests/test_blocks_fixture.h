/* test_blocks_fixture.h — blocky random 64 px pictures for the verdict tests
 * (test_verdict_ambig, test_verdict_partial, test_lf_part) and the matcher's
 * (test_analyze, test_match_fixes, test_completion_split): 8 px blocks of
 * random colours, so unrelated tiles are far apart and each answer follows
 * from the tile distances by construction. One seeded generator per test
 * file; match() runs one picture through the matcher as analyze does.
 * Include after t.h (REQUIRE). */
#ifndef TEST_BLOCKS_FIXTURE_H
#define TEST_BLOCKS_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/match.h"
#include "analyze/verdict.h"

#define S 64
#define D (S * S * 3)

/* the generator's seed: each test file may set its own before including */
#ifndef BLOCKS_SEED
#define BLOCKS_SEED 4242
#endif
static uint32_t rng = BLOCKS_SEED;
static uint32_t rnd(void) {
    rng = rng * 1664525u + 1013904223u;
    return rng >> 8;
}

/* random 8 px blocks, colours in [40, 215] so that offsets of +-0.1 stay in range */
static inline void random_blocks(uint8_t *p, int x0, int y0, int x1, int y1) {
    for (int by = y0; by < y1; by += 8)
        for (int bx = x0; bx < x1; bx += 8) {
            uint8_t c[3] = {(uint8_t)(40 + rnd() % 176), (uint8_t)(40 + rnd() % 176), (uint8_t)(40 + rnd() % 176)};
            for (int y = 0; y < 8; y++)
                for (int x = 0; x < 8; x++) memcpy(p + ((by + y) * S + bx + x) * 3, c, 3);
        }
}

/* a whole picture of random 8 px blocks, colours over the full range:
 * distinct ones are far apart and none is its own mirror */
static inline void random_image(uint8_t *p) {
    for (int by = 0; by < 8; by++)
        for (int bx = 0; bx < 8; bx++) {
            uint8_t c[3] = {(uint8_t)rnd(), (uint8_t)rnd(), (uint8_t)rnd()};
            for (int y = 0; y < 8; y++)
                for (int x = 0; x < 8; x++) memcpy(p + ((by * 8 + y) * S + bx * 8 + x) * 3, c, 3);
        }
}

/* adds v (grey levels) to every pixel of a region */
static inline void offset(uint8_t *p, int x0, int y0, int x1, int y1, int v) {
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            for (int c = 0; c < 3; c++) p[(y * S + x) * 3 + c] = (uint8_t)(p[(y * S + x) * 3 + c] + v);
}

/* one query (the picture as its thumbnail, no hashes, no embedding or
 * local-feature hits) through cs_an_match_batch; T_VERBOSE=1 lists the
 * neighbours and their verdicts */
static inline void match(const uint8_t *img, cs_an_result *res, const cs_an_refs *r, const cs_an_settings *s) {
    static cs_an_query q;
    memset(&q, 0, sizeof q);
    memcpy(q.thumb, img, D);
    cs_err err = {0};
    REQUIRE(cs_an_match_batch(r, &q, 1, s, 1, res, &err) == 0);
    if (getenv("T_VERBOSE"))
        for (int k = 0; k < res->n_nb; k++)
            fprintf(stderr, "  nb row %d %s (%s) d_id %.3f d_al %.3f\n", res->nb[k].row, cs_verdict_name(res->nb[k].verdict),
                    res->nb[k].rule, res->nb[k].d_id, res->nb[k].d_al);
}

#endif
