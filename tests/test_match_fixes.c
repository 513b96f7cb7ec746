/* test_match_fixes.c — the three matcher bugs of issue 13, each against an
 * independent reference: --set cand_k beyond the list length is refused (not
 * clamped while recorded); merging the as-is and mirrored top lists equals a
 * brute-force merge for every k (the mirrored best was dropped for k > 8);
 * the tiled-L2 list's score for a pair equals the refined distance that the
 * evidence reports for it (the sgemm scan's cancellation showed ~1e-3 for 0). */
#include <stdint.h>

#include "analyze/match.h"
#include "analyze/verdict.h"
#include "analyze/settings.h"
#include "t.h"

#define BLOCKS_SEED 777
#include "test_blocks_fixture.h" /* S, D, rnd, random_image */

static void test_cand_k_refused(void) {
    cs_an_settings s;
    cs_an_settings_default(&s);
    cs_err err = {0};
    CHECK(cs_an_settings_set(&s, "cand_k=17", &err) == -1 && strstr(err.msg, "cand_k"));
    CHECK(s.cand_k == 8); /* unchanged: what is recorded is what runs */
    CHECK(cs_an_settings_set(&s, "cand_k=0", &err) == -1);
    CHECK(cs_an_settings_set(&s, "cand_k=4.5", &err) == -1);
    CHECK(cs_an_settings_set(&s, "cand_k=16", &err) == 0 && s.cand_k == 16);
    char *j = cs_an_settings_json(&s);
    CHECK(j && strstr(j, "\"cand_k\":16"));
    free(j);
}

/* brute force: every row of both lists at its smallest score, sorted by
 * (score, first appearance), first k */
static int brute_merge(cs_an_hit *out, int k, const int32_t *ia, const float *da, const int32_t *ib,
                       const float *db) {
    cs_an_hit all[64];
    int n = 0;
    for (int j = 0; j < 2 * k; j++) {
        int32_t r = j < k ? ia[j] : ib[j - k];
        float d = j < k ? da[j] : db[j - k];
        if (r < 0) continue;
        int f = -1;
        for (int m = 0; m < n; m++)
            if (all[m].row == r) f = m;
        if (f < 0) all[n++] = (cs_an_hit){r, d};
        else if (d < all[f].score) all[f].score = d;
    }
    for (int m = 0; m < k && m < n; m++) { /* selection of the m-th smallest, first on ties */
        int b = m;
        for (int t = m + 1; t < n; t++)
            if (all[t].score < all[b].score) b = t;
        cs_an_hit h = all[b];
        memmove(all + m + 1, all + m, sizeof *all * (size_t)(b - m));
        all[m] = h;
        out[m] = h;
    }
    return n < k ? n : k;
}

static void test_merge_topk_brute(void) {
    for (int trial = 0; trial < 400; trial++) {
        int k = 1 + (int)(rnd() % CS_AN_K);
        int32_t ia[CS_AN_K], ib[CS_AN_K];
        float da[CS_AN_K], db[CS_AN_K];
        for (int j = 0; j < k; j++) {
            ia[j] = rnd() % 7 == 0 ? -1 : (int32_t)(rnd() % 40);
            ib[j] = rnd() % 7 == 0 ? -1 : (int32_t)(rnd() % 40);
            da[j] = (float)(rnd() % 1000); /* distinct-ish, ties possible */
            db[j] = (float)(rnd() % 1000);
        }
        cs_an_hit got[CS_AN_K], want[CS_AN_K];
        int ng = -1, nw = brute_merge(want, k, ia, da, ib, db);
        cs_an_merge_topk(got, &ng, k, ia, da, ib, db);
        CHECKF(ng == nw, "trial %d k %d: %d vs %d", trial, k, ng, nw);
        for (int j = 0; j < nw && j < ng; j++)
            CHECKF(got[j].row == want[j].row && got[j].score == want[j].score, "trial %d k %d slot %d",
                   trial, k, j);
    }
}

/* End to end at cand_k = 16: a mirror copy and an exact copy are found, and
 * the tl2 list's score for the found pair equals the evidence's d_id. */
static void test_mirror_and_exact_at_k16(void) {
    enum { NR = 60 };
    static uint8_t thumbs[NR * D];
    int64_t ids[NR];
    for (int i = 0; i < NR; i++) {
        random_image(thumbs + (size_t)i * D);
        ids[i] = 100 + i;
    }
    cs_an_settings s;
    cs_an_settings_default(&s);
    cs_err err = {0};
    REQUIRE(cs_an_settings_set(&s, "cand_k=16", &err) == 0);
    cs_an_refs r;
    REQUIRE(cs_an_refs_build(&r, NR, ids, thumbs, &s, &err) == 0);
    static cs_an_query q[2];
    memset(q, 0, sizeof q);
    memcpy(q[0].thumb, thumbs + (size_t)5 * D, D); /* mirror of ref 5 */
    cs_tl2_hflip_rgb(q[0].thumb, S);
    memcpy(q[1].thumb, thumbs + (size_t)7 * D, D); /* exact copy of ref 7 */
    static cs_an_result res[2];
    REQUIRE(cs_an_match_batch(&r, q, 2, &s, 1, res, &err) == 0);
    const int want[2] = {5, 7};
    for (int i = 0; i < 2; i++) {
        CHECKF(res[i].n_tl2 == 16, "query %d: %d hits", i, res[i].n_tl2);
        CHECKF(res[i].tl2[0].row == want[i], "query %d: tl2 top row %d", i, res[i].tl2[0].row);
        REQUIRE(res[i].has_best);
        CHECKF(res[i].best.row == want[i] && res[i].verdict == CS_V_COPY, "query %d: row %d verdict %d", i,
               res[i].best.row, res[i].verdict);
        CHECKF(res[i].tl2[0].score == res[i].best.d_id && res[i].best.d_id < 1e-6f,
               "query %d: list %g vs evidence %g", i, res[i].tl2[0].score, res[i].best.d_id);
        for (int j = 1; j < res[i].n_tl2; j++) CHECK(res[i].tl2[j - 1].score <= res[i].tl2[j].score);
    }
    CHECK(res[0].best.id_mirrored == 1 && res[1].best.id_mirrored == 0);
    cs_an_refs_free(&r);
}

int main(void) {
    RUN(test_cand_k_refused);
    RUN(test_merge_topk_brute);
    RUN(test_mirror_and_exact_at_k16);
    return T_DONE();
}
