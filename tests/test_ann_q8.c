/* The ANN index over a q8 column kept at 8 bits (index/ann.c with
 * cs_vecstore_open_store_raw): the index file built from the raw column is
 * byte for byte the one built from the decoded column; a search through the
 * raw column (the FAISS candidates re-scored, and the rows appended since
 * the build scanned exactly with cs_knn_exact_q8) gives the scores and rows
 * of the search through the decoded column, bit for bit, at 1 and 2
 * threads, and through cs_ann_search_store; a row of the column, queried,
 * finds itself first, in the index and in the unindexed tail. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/store.h"
#include "index/ann.h"
#include "index/vecstore.h"
#include "t.h"

enum { DIM = 40, N = 3000, TAIL = 700, NQ = 40, K = 8 };
static char *dir;

static uint64_t lcg = 0x2545f4914f6cdd1dULL;
static double unif(void) {
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg >> 11) / 9007199254740992.0 - 0.5;
}

/* unit rows around 12 centres (so an IVF has lists worth probing) */
static void fill(float *v, int n) {
    static float c[12 * DIM];
    static int made;
    for (int i = 0; !made && i < 12 * DIM; i++) c[i] = (float)unif();
    made = 1;
    for (int r = 0; r < n; r++) {
        double n2 = 0;
        for (int i = 0; i < DIM; i++) {
            v[r * DIM + i] = c[(r % 12) * DIM + i] + 0.3f * (float)unif();
            n2 += (double)v[r * DIM + i] * v[r * DIM + i];
        }
        for (int i = 0; i < DIM; i++) v[r * DIM + i] = (float)(v[r * DIM + i] / sqrt(n2));
    }
}

static unsigned char *slurp(const char *p, long *n) {
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)*n + 1);
    if (b && fread(b, 1, (size_t)*n, f) != (size_t)*n) free(b), b = NULL;
    fclose(f);
    return b;
}

static void test_ann_q8_same_bits(void) {
    static float v[(N + TAIL) * DIM], q[NQ * DIM], s0[NQ * K], s1[NQ * K], s2[NQ * K];
    static int64_t ids[N + TAIL], r0[NQ * K], r1[NQ * K], i2[NQ * K];
    fill(v, N + TAIL);
    for (int r = 0; r < N + TAIL; r++) ids[r] = 5000 + 3 * r;
    char p[4200], pb[4300];
    snprintf(p, sizeof p, "%s/q8.db", dir);
    snprintf(pb, sizeof pb, "%s/decoded.faiss", dir);
    cs_store *s = NULL;
    cs_err e = {0};
    REQUIRE(cs_store_open(&s, p, &e) == 0);
    REQUIRE(cs_store_meta_set(s, "vec_dtype", "q8", &e) == 0);
    cs_vecstore w;
    REQUIRE(cs_vecstore_open_store(&w, s, "tiny", DIM, 1, &e) == 0);
    REQUIRE(cs_vecstore_append(&w, ids, v, N, &e) == 0);
    cs_vecstore_close(&w);
    /* built from the raw column (cs_ann_build) and from the decoded one: the same file */
    cs_ann_opts o = {.factory = "IVF16,Flat", .nprobe = 4, .threads = 1};
    CHECKF(cs_ann_build(s, "tiny", &o, NULL, &e) == 0, "%s", e.msg);
    cs_vecstore dec;
    REQUIRE(cs_vecstore_open_store(&dec, s, "tiny", DIM, 0, &e) == 0);
    CHECKF(cs_ann_build_vs(pb, "tiny", &dec, &o, NULL, &e) == 0, "%s", e.msg);
    cs_vecstore_close(&dec);
    char *pa = cs_ann_path(s, "tiny");
    long na = 0, nb = 0;
    unsigned char *a = slurp(pa, &na), *b = slurp(pb, &nb);
    CHECK(a && b && na == nb && na > CS_ANN_HEADER_SIZE && !memcmp(a, b, (size_t)na));
    free(a), free(b);
    /* rows appended after the build: the search scans them exactly */
    REQUIRE(cs_vecstore_open_store(&w, s, "tiny", DIM, 1, &e) == 0);
    REQUIRE(cs_vecstore_append(&w, ids + N, v + (size_t)N * DIM, TAIL, &e) == 0);
    cs_vecstore_close(&w);
    for (int i = 0; i < NQ; i++) /* rows of the index, rows of the tail, fresh vectors */
        if (i % 3 == 0) memcpy(q + i * DIM, v + (size_t)((i * 71) % N) * DIM, DIM * sizeof(float));
        else if (i % 3 == 1) memcpy(q + i * DIM, v + (size_t)(N + (i * 37) % TAIL) * DIM, DIM * sizeof(float));
        else fill(q + i * DIM, 1);
    cs_vecstore raw;
    REQUIRE(cs_vecstore_open_store(&dec, s, "tiny", DIM, 0, &e) == 0);
    REQUIRE(cs_vecstore_open_store_raw(&raw, s, "tiny", DIM, &e) == 0);
    CHECK(raw.q8 && !raw.vecs && !raw.dec && raw.n == N + TAIL); /* kept at 8 bits */
    cs_ann *ad = NULL, *ar = NULL;
    REQUIRE(cs_ann_open(&ad, pa, "tiny", &dec, &e) == 0);
    CHECKF(cs_ann_open(&ar, pa, "tiny", &raw, &e) == 0, "%s", e.msg); /* same fingerprint */
    REQUIRE(ar);
    for (int t = 1; t <= 2; t++) {
        cs_ann_search_opts so = {.threads = t};
        REQUIRE(cs_ann_search(ad, &dec, q, NQ, K, &so, s0, r0, &e) == 0);
        memset(s1, 0, sizeof s1);
        REQUIRE(cs_ann_search(ar, &raw, q, NQ, K, &so, s1, r1, &e) == 0);
        CHECKF(!memcmp(s0, s1, sizeof s0) && !memcmp(r0, r1, sizeof r0), "threads %d differ", t);
        REQUIRE(cs_ann_search_store(s, "tiny", q, NQ, DIM, K, &so, i2, s2, &e) == 0);
        int same = !memcmp(s0, s2, sizeof s0);
        for (int i = 0; i < NQ * K; i++) same &= i2[i] == (r0[i] >= 0 ? ids[r0[i]] : -1);
        CHECK(same);
    }
    /* right, not only equal: a row queried is its own first neighbour */
    int self = 1;
    for (int i = 0; i < NQ; i++)
        if (i % 3 == 0) self &= r1[i * K] == (i * 71) % N;
        else if (i % 3 == 1) self &= r1[i * K] == N + (i * 37) % TAIL;
    CHECK(self);
    cs_ann_close(ad);
    cs_ann_close(ar);
    cs_vecstore_close(&dec);
    cs_vecstore_close(&raw);
    free(pa);
    cs_store_close(s);
}

int main(void) {
    dir = t_tmpdir("annq8");
    if (!dir) return 1;
    RUN(test_ann_q8_same_bits);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {}
    free(dir);
    return T_DONE();
}
