/* The exact search over a q8 column kept at 8 bits (cs_knn_exact_q8,
 * cs_vecstore_open_store_raw, cs_embed_search): the scores and rows are
 * those of cs_knn_exact over the decoded column, bit for bit, at 1, 2 and 3
 * threads; the column is not decoded into memory (no float copy); an f32
 * column opened the same way is read as before. The column has more rows
 * than one reference block (4096) and a last 512-row chunk that is short,
 * repeated rows (equal scores, ordered by row) and an all-zero row. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/store.h"
#include "index/embed.h"
#include "index/knn.h"
#include "index/vecstore.h"
#include "t.h"

enum { DIM = 48, N = 9000 + 37, NQ = 70, K = 12 };
static char *dir;

static uint64_t lcg = 88172645463325252ULL;
static double unif(void) {
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg >> 11) / 9007199254740992.0 - 0.5;
}

/* unit rows; every 97th repeats row 5 (ties), row 11 is all zero */
static void fill(float *v) {
    for (int r = 0; r < N; r++) {
        double n2 = 0;
        for (int i = 0; i < DIM; i++) {
            v[r * DIM + i] = (float)unif();
            n2 += (double)v[r * DIM + i] * v[r * DIM + i];
        }
        for (int i = 0; i < DIM; i++) v[r * DIM + i] = r == 11 ? 0.0f : (float)(v[r * DIM + i] / sqrt(n2));
        if (r > 5 && r % 97 == 0) memcpy(v + r * DIM, v + 5 * DIM, DIM * sizeof(float));
    }
}

/* A store whose tiny column (q8 when q8) holds v with ids 1000 + row. */
static cs_store *make_store(const char *name, const float *v, int q8) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    cs_store *s = NULL;
    cs_err e = {0};
    if (cs_store_open(&s, p, &e)) return NULL;
    if (q8 && cs_store_meta_set(s, "vec_dtype", "q8", &e)) return NULL;
    cs_vecstore vs;
    static int64_t ids[N];
    for (int r = 0; r < N; r++) ids[r] = 1000 + r;
    if (cs_vecstore_open_store(&vs, s, "tiny", DIM, 1, &e)) return NULL;
    int rc = cs_vecstore_append(&vs, ids, v, N, &e);
    cs_vecstore_close(&vs);
    return rc ? NULL : s;
}

static void queries(const float *v, float *q) {
    for (int i = 0; i < NQ; i++) { /* half are rows of the column (self and tie matches), half fresh */
        if (i % 2 == 0) memcpy(q + i * DIM, v + (size_t)((i * 131) % N) * DIM, DIM * sizeof(float));
        else
            for (int d = 0; d < DIM; d++) q[i * DIM + d] = (float)unif();
    }
    memcpy(q + 2 * DIM, v + 5 * DIM, DIM * sizeof(float)); /* the repeated row */
}

static void test_q8_same_bits(void) {
    static float v[N * DIM], q[NQ * DIM], s0[NQ * K], s1[NQ * K];
    static int64_t r0[NQ * K], r1[NQ * K];
    fill(v);
    queries(v, q);
    cs_store *s = make_store("q8.db", v, 1);
    REQUIRE(s);
    cs_err e = {0};
    cs_vecstore dec, raw;
    REQUIRE(cs_vecstore_open_store(&dec, s, "tiny", DIM, 0, &e) == 0);
    REQUIRE(cs_vecstore_open_store_raw(&raw, s, "tiny", DIM, &e) == 0);
    CHECK(dec.dtype == CS_VS_Q8 && dec.vecs && !dec.q8);
    /* kept at 8 bits: no float rows, no decode buffer */
    CHECK(raw.dtype == CS_VS_Q8 && raw.q8 && !raw.vecs && !raw.dec && raw.n == N);
    REQUIRE(cs_knn_exact(dec.vecs, dec.n, DIM, q, NQ, K, 1, s0, r0, &e) == 0);
    for (int t = 1; t <= 3; t++) {
        memset(s1, 0, sizeof s1);
        memset(r1, 0, sizeof r1);
        REQUIRE(cs_knn_exact_q8(raw.q8, raw.n, DIM, q, NQ, K, t, s1, r1, &e) == 0);
        CHECKF(!memcmp(s0, s1, sizeof s0) && !memcmp(r0, r1, sizeof r0), "threads %d differ", t);
    }
    /* the lists are right, not only equal: the repeated row's query lists its copies first, by row */
    CHECK(r0[2 * K] == 5 && r0[2 * K + 1] == 97 && r0[2 * K + 2] == 194 && s0[2 * K] == s0[2 * K + 2]);
    /* through the store's search: the same ids and scores */
    static int64_t ids[NQ * K];
    static float sc[NQ * K];
    REQUIRE(cs_embed_search(s, "tiny", q, NQ, DIM, K, ids, sc, &e) == 0);
    int same = !memcmp(sc, s0, sizeof sc);
    for (int i = 0; i < NQ * K; i++) same &= ids[i] == 1000 + r0[i];
    CHECK(same);
    cs_vecstore_close(&dec);
    cs_vecstore_close(&raw);
    cs_store_close(s);
}

static void test_f32_raw_unchanged(void) {
    static float v[N * DIM], q[NQ * DIM], s0[NQ * K], s1[NQ * K];
    static int64_t r0[NQ * K], ids[NQ * K];
    fill(v);
    queries(v, q);
    cs_store *s = make_store("f32.db", v, 0);
    REQUIRE(s);
    cs_err e = {0};
    cs_vecstore raw;
    REQUIRE(cs_vecstore_open_store_raw(&raw, s, "tiny", DIM, &e) == 0);
    CHECK(raw.dtype == CS_VS_F32 && raw.vecs && !raw.q8 && !memcmp(raw.vecs, v, sizeof v));
    REQUIRE(cs_knn_exact(v, N, DIM, q, NQ, K, 2, s0, r0, &e) == 0);
    REQUIRE(cs_embed_search(s, "tiny", q, NQ, DIM, K, ids, s1, &e) == 0);
    int same = !memcmp(s0, s1, sizeof s0);
    for (int i = 0; i < NQ * K; i++) same &= ids[i] == 1000 + r0[i];
    CHECK(same);
    cs_vecstore_close(&raw);
    cs_store_close(s);
}

int main(void) {
    dir = t_tmpdir("knnq8");
    if (!dir) return 1;
    RUN(test_q8_same_bits);
    RUN(test_f32_raw_unchanged);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {}
    free(dir);
    return T_DONE();
}
