/* test_hamming.c — top-k Hamming search against a brute-force reference
 * (all distances, sorted by (distance, index)), for every kernel, 1 and 2
 * threads, both work splits (by queries, by code slices), 64- and 256-bit
 * codes, several k and max-distance values, and inputs full of ties. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/store.h"
#include "index/hamming.h"
#include "tests/t.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int cmp_hit(const void *a, const void *b) {
    const cs_hamming_hit *x = a, *y = b;
    if (x->dist != y->dist) return x->dist - y->dist;
    return (x->index > y->index) - (x->index < y->index);
}

/* Reference: every distance, sorted; returns the count kept. */
static int brute(const uint64_t *codes, int64_t n, int words, const uint64_t *q, int k, int maxd,
                 cs_hamming_hit *out, cs_hamming_hit *all) {
    int m = 0;
    for (int64_t i = 0; i < n; i++) {
        int d = 0;
        for (int w = 0; w < words; w++) d += __builtin_popcountll(codes[i * words + w] ^ q[w]);
        if (maxd >= 0 && d > maxd) continue;
        all[m].index = i;
        all[m].dist = d;
        m++;
    }
    qsort(all, (size_t)m, sizeof *all, cmp_hit);
    if (m > k) m = k;
    memcpy(out, all, sizeof *out * (size_t)m);
    return m;
}

/* Runs one configuration; mask keeps only some bits of random codes (ties). */
static int check_config(int64_t n, int words, int64_t nq, int k, int maxd, int threads, int kernel,
                        uint64_t mask) {
    uint64_t *codes = malloc(sizeof(uint64_t) * (size_t)(n * words));
    uint64_t *qs = malloc(sizeof(uint64_t) * (size_t)(nq * words));
    cs_hamming_hit *hits = malloc(sizeof *hits * (size_t)(nq * k)), *ref = malloc(sizeof *ref * k);
    cs_hamming_hit *all = malloc(sizeof *all * (size_t)n);
    int *nh = malloc(sizeof(int) * (size_t)nq);
    for (int64_t i = 0; i < n * words; i++) codes[i] = rnd() & mask;
    for (int64_t i = 0; i < nq * words; i++) qs[i] = rnd() & mask;
    /* plant near-duplicates of some queries */
    for (int64_t q = 0; q < nq && q < n; q += 3) {
        int64_t at = (int64_t)(rnd() % (uint64_t)n);
        for (int w = 0; w < words; w++) codes[at * words + w] = qs[q * words + w] ^ (rnd() & rnd() & rnd() & mask);
    }
    cs_hamming_opts o = {.k = k, .max_dist = maxd, .threads = threads, .kernel = kernel};
    cs_err err = {0};
    int bad = 0;
    if (cs_hamming_topk(codes, n, words, qs, nq, &o, hits, nh, &err)) {
        fprintf(stderr, "topk failed: %s\n", err.msg);
        bad = 1;
    }
    for (int64_t q = 0; q < nq && !bad; q++) {
        int m = brute(codes, n, words, qs + q * words, k, maxd, ref, all);
        int same = m == nh[q];
        for (int r = 0; r < m && same; r++)
            same = ref[r].index == hits[q * k + r].index && ref[r].dist == hits[q * k + r].dist;
        if (!same) {
            for (int r = 0; r < m; r++) {
                if (ref[r].index != hits[q * k + r].index || ref[r].dist != hits[q * k + r].dist) {
                    fprintf(stderr, "  q %lld rank %d: got (%lld, %d) want (%lld, %d)\n", (long long)q,
                            r, (long long)hits[q * k + r].index, hits[q * k + r].dist,
                            (long long)ref[r].index, ref[r].dist);
                    break;
                }
            }
            fprintf(stderr,
                    "mismatch: n=%lld words=%d nq=%lld k=%d maxd=%d threads=%d kernel=%s q=%lld "
                    "(count %d vs %d)\n",
                    (long long)n, words, (long long)nq, k, maxd, threads,
                    cs_hamming_kernel_name(kernel), (long long)q, nh[q], m);
            bad = 1;
        }
    }
    free(codes);
    free(qs);
    free(hits);
    free(ref);
    free(all);
    free(nh);
    return !bad;
}

static void test_vs_brute(void) {
    int kernels[] = {CS_HAMMING_PORTABLE, CS_HAMMING_POPCNT, CS_HAMMING_AVX512};
    int nconf = 0;
    for (int ki = 0; ki < 3; ki++) {
        int kern = kernels[ki];
        for (int words = 1; words <= 4; words += 3) {
            /* query split: many queries, small n (incl. n < k and partial blocks) */
            CHECK(check_config(5, words, 7, 10, -1, 2, kern, ~0ULL));
            nconf++;
            CHECK(check_config(3000, words, 150, 10, -1, 2, kern, ~0ULL));
            nconf++;
            CHECK(check_config(3000, words, 150, 1, -1, 1, kern, ~0ULL));
            nconf++;
            CHECK(check_config(2000, words, 70, 37, words * 64 / 3, 2, kern, ~0ULL));
            nconf++;
            /* ties: only 6 bits per word vary, so thousands share each distance */
            CHECK(check_config(4000, words, 100, 10, -1, 2, kern, 0x8421000000100201ULL));
            nconf++;
            CHECK(check_config(4000, words, 100, 25, 2, 1, kern, 0x8421000000100201ULL));
            nconf++;
            /* slice split: few queries, many codes, 2 threads */
            CHECK(check_config(70000, words, 3, 10, -1, 2, kern, ~0ULL));
            nconf++;
            CHECK(check_config(70000, words, 2, 10, -1, 2, kern, 0x0000300000000c01ULL));
            nconf++;
            CHECK(check_config(70000, words, 5, 5, words * 64 / 4, 2, kern, ~0ULL));
            nconf++;
        }
    }
    printf("%d configurations equal to brute force (auto kernel here: %s)\n", nconf,
           cs_hamming_kernel_name(CS_HAMMING_AUTO));
}

static void test_bad_args(void) {
    uint64_t c[4] = {0}, q[4] = {0};
    cs_hamming_hit h[1];
    int nh[1];
    cs_err err = {0};
    cs_hamming_opts o = {.k = 0, .max_dist = -1, .threads = 1};
    CHECK(cs_hamming_topk(c, 1, 4, q, 1, &o, h, nh, &err) == -1 && err.code == CS_EUSAGE);
    o.k = 1;
    CHECK(cs_hamming_topk(c, 1, 2, q, 1, &o, h, nh, &err) == -1);
    CHECK(cs_hamming_topk(c, 0, 4, q, 1, &o, h, nh, &err) == 0 && nh[0] == 0);
    CHECK(cs_hamming_topk(c, 1, 4, q, 1, &o, h, nh, &err) == 0 && nh[0] == 1 && h[0].dist == 0);
}

/* Loading from ref_hashes: rows come back ordered by ref_id, values intact. */
static void test_db_load(void) {
    char *dir = t_tmpdir("hamming");
    REQUIRE(dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/t.db", dir);
    cs_store *s = NULL;
    cs_err err = {0};
    REQUIRE(cs_store_open(&s, path, &err) == 0);
    cs_hash_db db;
    CHECK(cs_hash_db_load(s, &db, &err) == 0 && db.n == 0);
    sqlite3_stmt *st;
    REQUIRE(cs_store_prepare(s, &st, "INSERT INTO refs(id, source, status) VALUES(?, ?, 'ok')", &err) == 0);
    for (int i = 3; i >= 1; i--) {
        char src[16];
        snprintf(src, sizeof src, "r%d", i);
        sqlite3_bind_int(st, 1, i);
        sqlite3_bind_text(st, 2, src, -1, SQLITE_TRANSIENT);
        CHECK(sqlite3_step(st) == SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    REQUIRE(cs_store_prepare(s, &st,
                             "INSERT INTO ref_hashes(ref_id, pdq, pdq_quality, phash, dhash, ahash) "
                             "VALUES(?, ?, ?, ?, ?, ?)",
                             &err) == 0);
    for (int i = 3; i >= 1; i--) {
        uint8_t pdq[32];
        memset(pdq, i, 32);
        sqlite3_bind_int(st, 1, i);
        sqlite3_bind_blob(st, 2, pdq, 32, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 3, 10 * i);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)(0xf000000000000000ULL + (uint64_t)i));
        sqlite3_bind_int64(st, 5, i * 2);
        sqlite3_bind_int64(st, 6, i * 3);
        CHECK(sqlite3_step(st) == SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    CHECK(cs_hash_db_load(s, &db, &err) == 0);
    CHECK(db.n == 3);
    if (db.n == 3) {
        CHECK(db.ref_ids[0] == 1 && db.ref_ids[2] == 3);
        CHECK(db.pdq_quality[1] == 20);
        CHECK(db.phash[2] == 0xf000000000000003ULL);
        CHECK(db.dhash[0] == 2 && db.ahash[1] == 6);
        uint8_t want[32];
        memset(want, 2, 32);
        CHECK(!memcmp(db.pdq + 4, want, 32));
    }
    cs_hash_db_free(&db);
    cs_store_close(s);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    free(dir);
}

int main(void) {
    RUN(test_bad_args);
    RUN(test_vs_brute);
    RUN(test_db_load);
    return T_DONE();
}
