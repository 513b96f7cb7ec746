/* test_lf_index.c — the local-feature vote index at the size where it is an
 * inverted multi-index with PQ codes (index/localfeat.h): against brute
 * force, the reference whose keypoints a query copies (with noise) gets the
 * most votes, as the exact index says; and the votes are identical with 1
 * and 2 FAISS threads. */
#include <stdlib.h>
#include <string.h>

#include "index/faiss_shim.h"
#include "index/localfeat.h"
#include "t.h"

static uint64_t rs = 0x2545F4914F6CDD1DULL;
static uint64_t rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

enum { NREF = 700, NQ = 40, WORDS = 512, K = 10 };

static void test_imi_votes(void) {
    static uint8_t vocab[WORDS][128];
    for (int w = 0; w < WORDS; w++)
        for (int j = 0; j < 128; j++) vocab[w][j] = (uint8_t)(rnd() % 4 ? (rnd() >> 9) % 100 : 0);
    uint8_t *recs = malloc((size_t)NREF * CS_LF_RECORD);
    static cs_lf_set s, q[NQ];
    REQUIRE(recs);
    for (int i = 0; i < NREF; i++) {
        memset(&s, 0, sizeof s);
        s.n = CS_LF_REF_KP, s.w = s.h = 256, s.orig_w = s.orig_h = 256;
        for (int k = 0; k < s.n; k++)
            for (int j = 0; j < 128; j++) {
                int v = vocab[rnd() % WORDS][j] + (int)(rnd() % 25) - 12;
                s.desc[k][j] = (uint8_t)(v < 0 ? 0 : v);
            }
        cs_lf_pack(&s, recs + (size_t)i * CS_LF_RECORD);
    }
    cs_err err = {0};
    for (int i = 0; i < NQ; i++) { /* query i copies 15 keypoints of reference 17 i */
        REQUIRE(cs_lf_unpack(recs + (size_t)(17 * i) * CS_LF_RECORD, &s, &err) == 0);
        memset(&q[i], 0, sizeof q[i]);
        q[i].n = 60, q[i].w = q[i].h = 256;
        for (int k = 0; k < q[i].n; k++)
            for (int j = 0; j < 128; j++) {
                int v = k < 15 ? s.desc[2 * k][j] + (int)(rnd() % 7) - 3 : vocab[rnd() % WORDS][j] + (int)(rnd() % 25) - 12;
                q[i].desc[k][j] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    }
    char fac[64];
    int np;
    cs_lf_default_factory((int64_t)NREF * CS_LF_REF_KP, fac, sizeof fac, &np);
    CHECKF(!strncmp(fac, "IMI2x", 5), "factory %s", fac);
    cs_lf_index *flat, *imi1, *imi2;
    REQUIRE(cs_lf_index_build(&flat, NREF, recs, "Flat", &err) == 0);
    cs_faiss_set_threads(1);
    REQUIRE(cs_lf_index_build(&imi1, NREF, recs, NULL, &err) == 0);
    static cs_lf_vote vf[NQ * K], v1[NQ * K], v2[NQ * K];
    int nf[NQ], n1[NQ], n2[NQ];
    REQUIRE(cs_lf_retrieve(flat, q, NQ, K, vf, nf, &err) == 0);
    REQUIRE(cs_lf_retrieve(imi1, q, NQ, K, v1, n1, &err) == 0);
    cs_faiss_set_threads(2);
    REQUIRE(cs_lf_index_build(&imi2, NREF, recs, NULL, &err) == 0);
    REQUIRE(cs_lf_retrieve(imi2, q, NQ, K, v2, n2, &err) == 0);
    int top_flat = 0, top_imi = 0;
    for (int i = 0; i < NQ; i++) {
        top_flat += nf[i] > 0 && vf[i * K].row == 17 * i;
        top_imi += n1[i] > 0 && v1[i * K].row == 17 * i;
    }
    CHECKF(top_flat == NQ, "exact index: copied reference first for %d/%d", top_flat, NQ);
    CHECKF(top_imi >= NQ * 95 / 100, "multi-index: copied reference first for %d/%d", top_imi, NQ);
    CHECK(!memcmp(n1, n2, sizeof n1) && !memcmp(v1, v2, sizeof v1));
    cs_lf_index_free(flat);
    cs_lf_index_free(imi1);
    cs_lf_index_free(imi2);
    free(recs);
}

int main(void) {
    RUN(test_imi_votes);
    return T_DONE();
}
