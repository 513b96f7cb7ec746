/* test_match_rank.c — the finding's order among candidates that no rule
 * flags (analyze/match.c, cmp_ranked):
 *  - a PDQ distance far beyond a PDQ match (pdq_near) is chance, even where
 *    the binomial null of independent bits gives it a z above 0, and must
 *    not put an unrelated reference above the one whose pixels are nearest.
 *    Reference: the pixel distances computed here with cs_tl2_pair; the PDQ
 *    codes are set by hand at known distances. Before the fix the reference
 *    at PDQ distance 100 (z ~1.8) won;
 *  - where the aligned pixels are beyond ratio_tl2 (no pixel rule reads
 *    them), a verified geometric consensus below significance ranks above
 *    them, by its inliers (an embed's source, issue 13); within ratio_tl2
 *    the pixels stay first; twins at the same pixel distance are told apart
 *    by the consensus, not by their row. The local-feature hits are set by
 *    hand (inliers, an a-contrario NFA above lf_max_nfa: z 0); the pixel
 *    distances are computed here. Before the fix the pixel-nearest and the
 *    lower row won;
 *  - the order is the same at 1 and 3 threads. */
#include <stdint.h>

#include "analyze/match.h"
#include "analyze/settings.h"
#include "analyze/verdict.h"
#include "t.h"

#define S 64
#define D (S * S * 3)

static uint32_t rng = 31337;
static uint32_t rnd(void) {
    rng = rng * 1664525u + 1013904223u;
    return rng >> 8;
}

/* smooth-ish random picture: 8 px blocks blurred by a 3-tap box twice */
static void picture(uint8_t *p) {
    uint8_t b[8][8][3];
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++)
            for (int c = 0; c < 3; c++) b[y][x][c] = (uint8_t)rnd();
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            for (int c = 0; c < 3; c++) p[(y * S + x) * 3 + c] = b[y / 8][x / 8][c];
}

/* pdq code at Hamming distance d from a (the first d bits flipped) */
static void flip_bits(uint8_t *out, const uint8_t *a, int d) {
    memcpy(out, a, 32);
    for (int i = 0; i < d; i++) out[i / 8] ^= (uint8_t)(1u << (i % 8));
}

static void test_chance_pdq_does_not_outrank_pixels(void) {
    enum { NR = 40, SRC = 3, RIVAL = 9 };
    static uint8_t thumbs[NR * D];
    int64_t ids[NR];
    cs_hashes h[NR];
    uint8_t qpdq[32];
    for (int i = 0; i < 32; i++) qpdq[i] = (uint8_t)rnd();
    for (int i = 0; i < NR; i++) {
        picture(thumbs + (size_t)i * D);
        ids[i] = 1 + i;
        memset(&h[i], 0, sizeof h[i]);
        h[i].pdq_quality = 100;
        h[i].phash = ((uint64_t)rnd() << 32) | rnd();
        h[i].dhash = ((uint64_t)rnd() << 32) | rnd();
        /* every reference at PDQ distance 128 (chance), the rival at 100: a
         * binomial z of ~1.8 over 2 x 40 tests, 69 bits short of a match */
        flip_bits(h[i].pdq, qpdq, i == RIVAL ? 100 : 128);
    }
    cs_an_settings s;
    cs_an_settings_default(&s);
    cs_err err = {0};
    cs_an_refs r;
    REQUIRE(cs_an_refs_build(&r, NR, ids, thumbs, &s, &err) == 0);
    REQUIRE(cs_an_refs_set_hashes(&r, ids, h, NR, &err) == 0);
    /* the query: the source under strong noise, nearer the source than any
     * other picture but beyond every pixel rule (novel) */
    static cs_an_query q;
    memset(&q, 0, sizeof q);
    const uint8_t *src = thumbs + (size_t)SRC * D;
    for (int i = 0; i < D; i++) {
        int v = src[i] + (int)(rnd() % 301) - 150;
        q.thumb[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    q.has_hashes = 1;
    memcpy(q.h.pdq, qpdq, 32);
    memcpy(q.hm.pdq, qpdq, 32);
    q.h.pdq_quality = q.hm.pdq_quality = 100;
    /* independent reference: the pixel-nearest reference, exact pairs */
    const int Dp = cs_tl2_dim(&r.cfg);
    float *a = malloc(sizeof(float) * (size_t)Dp), *b = malloc(sizeof(float) * (size_t)Dp);
    REQUIRE(a && b);
    cs_tl2_prepare(a, NULL, q.thumb, &r.cfg);
    int near = -1;
    float dn = INFINITY, d_rival = 0;
    for (int i = 0; i < NR; i++) {
        cs_tl2_prepare(b, NULL, thumbs + (size_t)i * D, &r.cfg);
        float d = cs_tl2_pair(NULL, a, b, &r.cfg);
        if (d < dn) dn = d, near = i;
        if (i == RIVAL) d_rival = d;
    }
    CHECKF(near == SRC && dn > s.ratio_tl2 && d_rival > 1.5f * dn, "set-up: nearest %d at %.3f, rival %.3f", near, dn,
           d_rival);
    static cs_an_result res;
    REQUIRE(cs_an_match_batch(&r, &q, 1, &s, 1, &res, &err) == 0);
    REQUIRE(res.has_best);
    CHECKF(res.verdict == CS_V_NOVEL, "verdict %d", res.verdict);
    CHECKF(res.best.row == SRC, "finding %d (pdq %d), want %d (the pixel-nearest)", res.best.row, res.best.pdq, SRC);
    /* the rival was a candidate: first of the PDQ list */
    CHECK(res.n_pdq > 0 && res.pdq[0].row == RIVAL && res.pdq[0].score == 100);
    free(a), free(b);
    cs_an_refs_free(&r);
}

/* ---- a verified consensus below significance against chance pixels ---- */

enum { NR2 = 40, TWIN_A = 37, TWIN_B = 38, NQ2 = 3 };

/* a local-feature hit that verified but is not significant: NFA 10^nfa
 * (already over every test, as analyze.c hands it over) above lf_max_nfa */
static void weak_hit(cs_an_query *q, int32_t row, int inliers, double nfa) {
    int k = q->n_lf++;
    q->lf_row[k] = row;
    memset(&q->lf[k], 0, sizeof q->lf[k]);
    q->lf[k].inliers = q->lf[k].ratio_inliers = inliers;
    q->lf[k].matches = 3 * inliers;
    q->lf[k].score = q->lf[k].share_visible = (float)inliers / 30.0f;
    q->lf[k].log10_nfa1 = nfa;
    q->lf[k].scale = 0.6f;
    q->lf[k].coverage = 0.36f;
    q->lf[k].recolour = -1;
}

/* the thumbnail of src under uniform noise of +-amp */
static void noisy(uint8_t *out, const uint8_t *src, int amp) {
    for (int i = 0; i < D; i++) {
        int v = src[i] + (int)(rnd() % (unsigned)(2 * amp + 1)) - amp;
        out[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

static float pair_d(const cs_an_refs *r, const uint8_t *x, const uint8_t *y) {
    const int Dp = cs_tl2_dim(&r->cfg);
    float *a = malloc(sizeof(float) * (size_t)Dp), *b = malloc(sizeof(float) * (size_t)Dp);
    if (!a || !b) {
        free(a), free(b);
        return NAN;
    }
    cs_tl2_prepare(a, NULL, x, &r->cfg);
    cs_tl2_prepare(b, NULL, y, &r->cfg);
    float d = cs_tl2_pair(NULL, a, b, &r->cfg);
    free(a), free(b);
    return d;
}

static int nb_of(const cs_an_result *res, int32_t row) {
    for (int m = 0; m < res->n_nb; m++)
        if (res->nb[m].row == row) return m;
    return -1;
}

static void test_consensus_outranks_chance_pixels(void) {
    static uint8_t thumbs[NR2 * D];
    int64_t ids[NR2];
    for (int i = 0; i < NR2; i++) {
        picture(thumbs + (size_t)i * D);
        ids[i] = 100 + i;
    }
    memcpy(thumbs + (size_t)TWIN_B * D, thumbs + (size_t)TWIN_A * D, D); /* a template twin */
    cs_an_settings s;
    cs_an_settings_default(&s);
    cs_err err = {0};
    cs_an_refs r;
    REQUIRE(cs_an_refs_build(&r, NR2, ids, thumbs, &s, &err) == 0);
    static cs_an_query q[NQ2];
    memset(q, 0, sizeof q);
    static uint8_t unrelated[D];
    picture(unrelated);
    /* q0: a picture of none (an embed's pixels, no reference aligned with
     * it); reference 5 verified with 6 inliers, reference 11 with 4, both
     * below significance. The pixel-nearest reference must be neither. */
    memcpy(q[0].thumb, unrelated, D);
    weak_hit(&q[0], 5, 6, 1.0);
    weak_hit(&q[0], 11, 4, 0.5);
    int near = -1;
    float dn = INFINITY;
    for (int i = 0; i < NR2; i++) {
        float d = pair_d(&r, unrelated, thumbs + (size_t)i * D);
        if (d < dn) dn = d, near = i;
    }
    CHECKF(near != 5 && near != 11, "set-up: the pixel-nearest is %d", near);
    /* q1: reference 20 under noise, its pixels within ratio_tl2 but beyond
     * near_tl2 (no pixel rule flags it); reference 5 verified weakly */
    int amp = 0;
    for (int a = 20; a <= 200 && !amp; a += 10) {
        uint32_t keep = rng;
        noisy(q[1].thumb, thumbs + (size_t)20 * D, a);
        float d = pair_d(&r, q[1].thumb, thumbs + (size_t)20 * D);
        if (d > s.near_tl2 + 0.03 && d < s.ratio_tl2 - 0.03) amp = a;
        else rng = keep;
    }
    REQUIRE(amp > 0);
    weak_hit(&q[1], 5, 6, 1.0);
    /* q2: the twins under noise within ratio_tl2: the same pixel distance to
     * both; the later row verified weakly */
    noisy(q[2].thumb, thumbs + (size_t)TWIN_A * D, amp);
    weak_hit(&q[2], TWIN_B, 4, 1.5);

    static cs_an_result res[NQ2], res3[NQ2];
    REQUIRE(cs_an_match_batch(&r, q, NQ2, &s, 1, res, &err) == 0);
    for (int i = 0; i < NQ2; i++) {
        REQUIRE(res[i].has_best);
        CHECKF(res[i].best.verdict == CS_V_NOVEL, "q%d: best's verdict %d (the order below is by evidence, not verdict)",
               i, res[i].best.verdict);
    }
    /* q0: the most inliers first, then fewer, then chance pixels */
    CHECKF(res[0].best.row == 5, "q0: finding %d, want 5 (6 inliers; pixel-nearest %d at %.3f)", res[0].best.row, near,
           dn);
    CHECKF(res[0].n_nb >= 3 && res[0].nb[1].row == 11, "q0: second %d, want 11 (4 inliers)",
           res[0].n_nb > 1 ? res[0].nb[1].row : -1);
    CHECKF(res[0].n_nb >= 3 && res[0].nb[2].d_al > s.ratio_tl2, "q0: the third is at chance (%.3f)",
           res[0].n_nb > 2 ? res[0].nb[2].d_al : -1.0f);
    /* q1: pixels read as a match stay above a weak consensus */
    int m20 = nb_of(&res[1], 20), m5 = nb_of(&res[1], 5);
    CHECKF(res[1].best.row == 20, "q1: finding %d, want 20 (d_al %.3f)", res[1].best.row,
           m20 >= 0 ? res[1].nb[m20].d_al : -1.0f);
    CHECKF(m20 >= 0 && res[1].nb[m20].d_al <= s.ratio_tl2 && res[1].nb[m20].d_al > s.near_tl2,
           "q1: set-up: d_al %.3f not in (near_tl2, ratio_tl2]", m20 >= 0 ? res[1].nb[m20].d_al : -1.0f);
    CHECKF(m5 > m20, "q1: the weak consensus at %d, the pixels at %d", m5, m20);
    /* q2: twins at the same distance: the consensus decides, not the row */
    int ma = nb_of(&res[2], TWIN_A), mb = nb_of(&res[2], TWIN_B);
    REQUIRE(ma >= 0 && mb >= 0);
    CHECKF(res[2].nb[ma].d_al == res[2].nb[mb].d_al, "q2: set-up: twins at %.4f and %.4f", res[2].nb[ma].d_al,
           res[2].nb[mb].d_al);
    CHECKF(res[2].best.row == TWIN_B, "q2: finding %d, want %d (the verified twin)", res[2].best.row, TWIN_B);

    /* the same order at 3 threads */
    REQUIRE(cs_an_match_batch(&r, q, NQ2, &s, 3, res3, &err) == 0);
    for (int i = 0; i < NQ2; i++) {
        CHECKF(res3[i].best.row == res[i].best.row && res3[i].n_nb == res[i].n_nb, "q%d: threads change the finding", i);
        for (int m = 0; m < res[i].n_nb && m < res3[i].n_nb; m++)
            CHECKF(res3[i].nb[m].row == res[i].nb[m].row && res3[i].nb[m].d_al == res[i].nb[m].d_al &&
                       res3[i].nb[m].lf_inliers == res[i].nb[m].lf_inliers,
                   "q%d: neighbour %d differs at 3 threads", i, m);
        CHECKF(res3[i].severity == res[i].severity && res3[i].verdict == res[i].verdict, "q%d: verdict differs", i);
    }
    cs_an_refs_free(&r);
}

int main(void) {
    RUN(test_chance_pdq_does_not_outrank_pixels);
    RUN(test_consensus_outranks_chance_pixels);
    return T_DONE();
}
