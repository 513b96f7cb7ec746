/* test_completion_split.c — the completion audit in parts (analyze/
 * completion.h: begin, orig, other, end), as copyscope-mpi runs it: each
 * rank scans the references it holds (rows of the whole index, ascending)
 * for the nearest other one, and the lists are merged by (distance, row).
 * Against the one-process audit (cs_an_completion_audit over every row):
 * the same d_orig, d_other, other_row and verdict bit for bit, with the
 * references cut into 1, 2 and 3 parts as runs and interleaved, with an
 * empty part, the original in a part (left out there), a twin of the
 * original (left out everywhere) and three equally near others in three
 * parts (ties: the smallest row wins; keeping rank 0's instead, the merge
 * this test also runs, gives another row). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/completion.h"
#include "analyze/match.h"
#include "analyze/verdict.h"
#include "t.h"

#define BLOCKS_SEED 777
#include "test_blocks_fixture.h" /* S, D, rnd, random_image */

#define NR 60

static uint8_t thumbs[NR * D];

/* The audit over parts: part of row i is cut(i, k); by_row 0 merges ties
 * by part (the wrong way) to show the test sees it. In 3 runs, part 1 is
 * left empty and its rows are scanned last, as a fourth part. */
static void audit_parts(cs_an_completion *out, const cs_an_refs *whole, const uint8_t *gen, int64_t orig,
                        const uint8_t *wh, const cs_an_settings *set, int nparts, int interleaved, int by_row) {
    const int grid = cs_an_completion_grid(whole), empty = nparts == 3 && !interleaved;
    REQUIRE(cs_an_completion_begin(out, wh, orig) > 0);
    REQUIRE(cs_an_completion_orig(out, gen, thumbs + orig * D, wh, grid) == 0);
    float best = INFINITY;
    int64_t brow = -1;
    for (int k = 0; k < nparts + empty; k++) {
        static uint8_t px[NR * D];
        int64_t ids[NR];
        int32_t grow[NR];
        int n = 0;
        for (int i = 0; i < NR; i++) {
            int part = interleaved ? i % nparts : i * nparts / NR;
            if (empty && part == 1) part = 3; /* the empty part's rows */
            if (part != k) continue;
            memcpy(px + (size_t)n * D, thumbs + (size_t)i * D, D);
            ids[n] = 100 + i;
            grow[n++] = i;
        }
        cs_an_refs r = {0};
        cs_err err = {0};
        float d;
        int64_t row;
        REQUIRE(cs_an_refs_build(&r, n, ids, px, set, &err) == 0);
        REQUIRE(cs_an_completion_other(&r, grow, gen, thumbs + orig * D, orig, wh, grid, set->copy_tl2, &d, &row) == 0);
        cs_an_refs_free(&r);
        if (row >= 0 && (d < best || (d == best && by_row && row < brow))) best = d, brow = row;
    }
    out->d_other = best;
    out->other_row = brow;
    cs_an_completion_end(out, set);
}

static int same(const cs_an_completion *a, const cs_an_completion *b) {
    return !memcmp(&a->d_orig, &b->d_orig, sizeof a->d_orig) && !memcmp(&a->d_other, &b->d_other, sizeof a->d_other) &&
           a->other_row == b->other_row && a->verdict == b->verdict && a->restored == b->restored &&
           a->n_tiles == b->n_tiles && a->n_withheld == b->n_withheld && !memcmp(a->rect, b->rect, sizeof a->rect);
}

static void test_parts_as_whole(void) {
    for (int i = 0; i < NR; i++) random_image(thumbs + (size_t)i * D);
    const int orig = 21, twin = 44, o1 = 13, o2 = 27, o3 = 52; /* o1..o3: the same picture, three parts */
    memcpy(thumbs + (size_t)twin * D, thumbs + (size_t)orig * D, D);
    memcpy(thumbs + (size_t)o2 * D, thumbs + (size_t)o1 * D, D);
    memcpy(thumbs + (size_t)o3 * D, thumbs + (size_t)o1 * D, D);
    cs_an_settings set;
    cs_an_settings_default(&set);
    int64_t ids[NR];
    for (int i = 0; i < NR; i++) ids[i] = 100 + i;
    cs_an_refs whole = {0};
    cs_err err = {0};
    REQUIRE(cs_an_refs_build(&whole, NR, ids, thumbs, &set, &err) == 0);
    static uint8_t wh[S * S], gen[D];
    const int rect[4] = {16, 8, 32, 40};
    REQUIRE(cs_an_region_from_rect(wh, rect, S, S) > 0);
    /* three generations: the original restored; the region from o1's
     * picture (partial, three equally near others); flat grey (novel) */
    for (int g = 0; g < 3; g++) {
        for (int p = 0; p < S * S; p++) {
            const uint8_t *src = thumbs + (size_t)(g == 0 || !wh[p] ? orig : o1) * D + p * 3;
            if (g == 2 && wh[p]) memset(gen + p * 3, 128, 3);
            else memcpy(gen + p * 3, src, 3);
        }
        cs_an_completion one;
        cs_an_completion_audit(&one, &whole, gen, orig, wh, &set);
        if (g == 0) CHECK(one.verdict == CS_V_COPY && one.restored && one.other_row != twin);
        if (g == 1) CHECKF(one.verdict == CS_V_PARTIAL && one.other_row == o1 && one.d_other == 0.0f,
                           "verdict %d other %lld", one.verdict, (long long)one.other_row);
        if (g == 2) CHECK(one.verdict == CS_V_NOVEL);
        for (int nparts = 1; nparts <= 3; nparts++)
            for (int il = 0; il < 2; il++) {
                cs_an_completion sp;
                audit_parts(&sp, &whole, gen, orig, wh, &set, nparts, il, 1);
                CHECKF(same(&one, &sp), "generation %d, %d parts%s: other %lld (%g) vs %lld (%g)", g, nparts,
                       il ? " interleaved" : "", (long long)sp.other_row, sp.d_other, (long long)one.other_row,
                       one.d_other);
            }
        if (g == 1) { /* ties by part instead of row: o2 (part 0 of 3 interleaved, 27 % 3 == 0) wins */
            cs_an_completion bad;
            audit_parts(&bad, &whole, gen, orig, wh, &set, 3, 1, 0);
            CHECKF(bad.other_row == o2 && !same(&one, &bad), "ties by part gave %lld", (long long)bad.other_row);
        }
    }
    cs_an_refs_free(&whole);
}

int main(void) {
    RUN(test_parts_as_whole);
    return T_DONE();
}
