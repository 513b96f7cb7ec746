/* test_match_rank.c — the finding's order among candidates that no rule
 * flags (analyze/match.c, fused_evidence): a PDQ distance far beyond a PDQ
 * match (pdq_near) is chance, even where the binomial null of independent
 * bits gives it a z above 0, and must not put an unrelated reference above
 * the one whose pixels are nearest. Reference: the pixel distances computed
 * here with cs_tl2_pair; the PDQ codes are set by hand at known distances.
 * Before the fix the reference at PDQ distance 100 (z ~1.8) won. */
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

int main(void) {
    RUN(test_chance_pdq_does_not_outrank_pixels);
    return T_DONE();
}
