/* test_lf_index.c — the local-feature vote index at the size where it is an
 * inverted multi-index with PQ codes (index/localfeat.h): against brute
 * force, the reference whose keypoints a query copies (with noise) gets the
 * most votes, as the exact index says; and the votes are identical with 1
 * and 2 FAISS threads; the side file <db>.lfvote round-trips, and a missing,
 * stale, truncated or corrupt one is rebuilt; one of a prefix of the records
 * is appended to (incremental); our PQ encoder gives FAISS's index byte for
 * byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/parallel.h"
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

static uint8_t *slurp(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    rewind(f);
    uint8_t *b = malloc((size_t)*len + 1);
    if (b && fread(b, 1, (size_t)*len, f) != (size_t)*len) free(b), b = NULL;
    fclose(f);
    return b;
}

static int spill(const char *path, const uint8_t *b, long len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(b, 1, (size_t)len, f) == (size_t)len;
    return fclose(f) || !ok ? -1 : 0;
}

/* the vote index kept beside the store (cs_lf_index_open): a missing file is
 * built and saved; the saved one loads and votes as the index built in
 * memory (v1), with the same bytes written at 1 and 2 threads; a file of
 * other records, a truncated or a corrupt one is rebuilt, the note saying why */
static void side_file(uint8_t *recs, const cs_lf_set *q, const cs_lf_vote *v1, const int *n1) {
    char path[64], note[512];
    snprintf(path, sizeof path, "/tmp/test_lf_index_%d.lfvote", (int)getpid());
    int64_t *ids = malloc(sizeof(int64_t) * NREF);
    for (int i = 0; i < NREF; i++) ids[i] = 3 * i + 1;
    cs_err err = {0};
    cs_lf_index *ix;
    static cs_lf_vote v[NQ * K];
    int nv[NQ];
    long len1 = 0, len2 = 0, len;
    unlink(path);
    for (int t = 1; t <= 2; t++) { /* built and saved at t threads, then loaded */
        cs_faiss_set_threads(t);
        unlink(path);
        REQUIRE(cs_lf_index_open(&ix, path, NREF, ids, recs, note, sizeof note, &err) == 0);
        CHECKF(strstr(note, "missing") && strstr(note, "rebuilt and saved"), "note: %s", note);
        cs_lf_index_free(ix);
        REQUIRE(cs_lf_index_open(&ix, path, NREF, ids, recs, note, sizeof note, &err) == 0);
        CHECKF(note[0] == 0, "loaded, yet: %s", note);
        REQUIRE(cs_lf_retrieve(ix, q, NQ, K, v, nv, &err) == 0);
        CHECK(!memcmp(nv, n1, sizeof nv) && !memcmp(v, v1, sizeof v));
        cs_lf_index_free(ix);
        if (t == 1) free(slurp(path, &len1));
        else free(slurp(path, &len2));
    }
    uint8_t *b2 = slurp(path, &len);
    cs_faiss_set_threads(1);
    unlink(path);
    REQUIRE(cs_lf_index_open(NULL, path, NREF, ids, recs, note, sizeof note, &err) == 0);
    uint8_t *b1 = slurp(path, &len);
    CHECK(b1 && b2 && len1 == len2 && len == len1 && !memcmp(b1, b2, (size_t)len));
    /* header only: current, nothing to do */
    REQUIRE(cs_lf_index_open(NULL, path, NREF, ids, recs, note, sizeof note, &err) == 0);
    CHECKF(note[0] == 0, "current, yet: %s", note);
    /* another reference set: one descriptor byte of one record changed */
    recs[(size_t)5 * CS_LF_RECORD + 100] ^= 1;
    REQUIRE(cs_lf_index_open(NULL, path, NREF, ids, recs, note, sizeof note, &err) == 0);
    CHECKF(strstr(note, "another reference set") && strstr(note, "rebuilt and saved"), "note: %s", note);
    recs[(size_t)5 * CS_LF_RECORD + 100] ^= 1;
    /* truncated, then a corrupt owner table: rebuilt */
    REQUIRE(spill(path, b1, len / 2) == 0);
    REQUIRE(cs_lf_index_open(&ix, path, NREF, ids, recs, note, sizeof note, &err) == 0);
    CHECKF(strstr(note, "rebuilt and saved") && !strstr(note, "another"), "note: %s", note);
    cs_lf_index_free(ix);
    b1[120] = 0xff, b1[121] = 0xff; /* an owner row out of range */
    REQUIRE(spill(path, b1, len) == 0);
    REQUIRE(cs_lf_index_open(&ix, path, NREF, ids, recs, note, sizeof note, &err) == 0);
    CHECKF(strstr(note, "corrupt"), "note: %s", note);
    REQUIRE(cs_lf_retrieve(ix, q, NQ, K, v, nv, &err) == 0);
    CHECK(!memcmp(nv, n1, sizeof nv) && !memcmp(v, v1, sizeof v));
    cs_lf_index_free(ix);
    long lr;
    uint8_t *b3 = slurp(path, &lr);
    b1[120] = b2[120], b1[121] = b2[121];
    CHECK(b3 && lr == len && !memcmp(b3, b1, (size_t)len)); /* the rebuilt file: the same bytes */
    unlink(path);
    free(b1);
    free(b2);
    free(b3);
    free(ids);
}

/* An incremental add (cs_lf_index_open on a side file built from the first
 * m of the records): the first 600 references indexed, then all 700: the
 * 100 new ones are appended (train once, add codes), the file then loads as
 * current, and each query's copied reference is first as with the index of
 * all 700 built at once (the bytes differ: the cells and codes were trained
 * on the first 600's descriptors); a prefix too small for the same factory
 * (here exact search, then cells) is rebuilt instead. */
static void incremental(const uint8_t *recs, const cs_lf_set *q, const cs_lf_vote *v1, const int *n1) {
    char path[64], note[512];
    snprintf(path, sizeof path, "/tmp/test_lf_incr_%d.lfvote", (int)getpid());
    int64_t *ids = malloc(sizeof(int64_t) * NREF);
    for (int i = 0; i < NREF; i++) ids[i] = 2 * i + 5;
    cs_err err = {0};
    cs_lf_index *ix;
    static cs_lf_vote v[NQ * K];
    int nv[NQ];
    unlink(path);
    REQUIRE(cs_lf_index_open(NULL, path, 600, ids, recs, note, sizeof note, &err) == 0);
    CHECKF(strstr(note, "rebuilt and saved for 600"), "note: %s", note);
    REQUIRE(cs_lf_index_open(&ix, path, NREF, ids, recs, note, sizeof note, &err) == 0);
    CHECKF(strstr(note, "another reference set") && strstr(note, "100 appended to it and saved for 700"), "note: %s",
           note);
    CHECK(cs_lf_index_ndesc(ix) == (int64_t)NREF * CS_LF_REF_KP);
    REQUIRE(cs_lf_retrieve(ix, q, NQ, K, v, nv, &err) == 0);
    int same = 0, right = 0, right1 = 0;
    for (int i = 0; i < NQ; i++) {
        same += nv[i] > 0 && n1[i] > 0 && v[i * K].row == v1[i * K].row;
        right += nv[i] > 0 && v[i * K].row == 17 * i;
        right1 += n1[i] > 0 && v1[i * K].row == 17 * i;
    }
    CHECKF(right >= NQ * 95 / 100 && right >= right1 - 1,
           "appended: copied reference first for %d/%d (built at once: %d; the same first %d)", right, NQ, right1, same);
    cs_lf_index_free(ix);
    REQUIRE(cs_lf_index_open(&ix, path, NREF, ids, recs, note, sizeof note, &err) == 0);
    CHECKF(note[0] == 0, "appended file not current: %s", note);
    cs_lf_index_free(ix);
    /* a record of the first 600 changed: not a prefix any more, rebuilt */
    REQUIRE(cs_lf_index_open(NULL, path, 600, ids, recs, note, sizeof note, &err) == 0);
    ids[7] = 1; /* the 8th reference re-added under a new id */
    REQUIRE(cs_lf_index_open(NULL, path, NREF, ids, recs, note, sizeof note, &err) == 0);
    ids[7] = 2 * 7 + 5;
    CHECKF(strstr(note, "rebuilt and saved for 700"), "note: %s", note);
    /* 300 references (exact search) then 700 (cells): rebuilt */
    REQUIRE(cs_lf_index_open(NULL, path, 300, ids, recs, note, sizeof note, &err) == 0);
    REQUIRE(cs_lf_index_open(NULL, path, NREF, ids, recs, note, sizeof note, &err) == 0);
    CHECKF(strstr(note, "rebuilt and saved for 700"), "note: %s", note);
    unlink(path);
    free(ids);
}

/* The approximate index against brute force on the same queries: the share
 * of query descriptors whose true nearest indexed descriptor is among the
 * CS_LF_NN the index returns, and the votes of exact copies (query i repeats
 * 15 keypoints of reference 17 i + 3 byte for byte, nothing else): 15 votes
 * for it from the exact index and from the approximate one. */
static void brute_force(cs_lf_index *flat, cs_lf_index *ix, const uint8_t *recs, const cs_lf_set *q) {
    enum { NN = CS_LF_NN };
    static uint8_t d[NQ * 60 * 128];
    static int64_t rf[NQ * 60 * NN], ra[NQ * 60 * NN];
    int64_t n = 0;
    for (int i = 0; i < NQ; i++)
        for (int k = 0; k < q[i].n; k++) memcpy(d + 128 * n++, q[i].desc[k], 128);
    cs_err err = {0};
    REQUIRE(cs_lf_index_knn(flat, n, d, NN, rf, &err) == 0);
    REQUIRE(cs_lf_index_knn(ix, n, d, NN, ra, &err) == 0);
    /* the copied keypoints (the first 15 of each query: a reference's
     * descriptor + noise of 3) have one clear nearest; the others (a common
     * word + noise of 12) have dozens at about the same distance, which no
     * 16-byte code tells apart: their recall is printed, not checked */
    int64_t hit1 = 0, hit_all = 0, ncopy = 0, hit_copy = 0;
    for (int64_t i = 0, at = 0; i < NQ; i++)
        for (int k = 0; k < q[i].n; k++, at++) {
            int h = 0;
            for (int a = 0; a < NN; a++) h |= ra[at * NN + a] == rf[at * NN];
            hit1 += h;
            if (k < 15) ncopy++, hit_copy += h;
            for (int b = 0; b < NN; b++)
                for (int a = 0; a < NN; a++) hit_all += ra[at * NN + a] == rf[at * NN + b];
        }
    printf("  approximate index vs brute force: true nearest among the %d returned: copied keypoints %.3f, all %.3f; "
           "%d-recall@%d %.3f\n", NN, (double)hit_copy / ncopy, (double)hit1 / n, NN, NN, (double)hit_all / (n * NN));
    CHECKF(hit_copy >= ncopy * 9 / 10, "true nearest found for %lld/%lld copied keypoints", (long long)hit_copy,
           (long long)ncopy);
    /* exact copies */
    static cs_lf_set e[NQ], s;
    for (int i = 0; i < NQ; i++) {
        REQUIRE(cs_lf_unpack(recs + (size_t)(17 * i + 3) * CS_LF_RECORD, &s, &err) == 0);
        e[i] = q[i];
        e[i].n = 15; /* only the copied keypoints: each is its own nearest, one vote each */
        for (int k = 0; k < 15; k++) memcpy(e[i].desc[k], s.desc[2 * k], 128);
    }
    static cs_lf_vote vf[NQ * K], va[NQ * K];
    int nf[NQ], na[NQ], same = 0;
    REQUIRE(cs_lf_retrieve(flat, e, NQ, K, vf, nf, &err) == 0);
    REQUIRE(cs_lf_retrieve(ix, e, NQ, K, va, na, &err) == 0);
    for (int i = 0; i < NQ; i++) {
        int f = 0, a = 0;
        for (int k = 0; k < nf[i]; k++) f += vf[i * K + k].row == 17 * i + 3 ? vf[i * K + k].votes : 0;
        for (int k = 0; k < na[i]; k++) a += va[i * K + k].row == 17 * i + 3 ? va[i * K + k].votes : 0;
        CHECKF(f == 15, "exact index: %d votes for an exact copy of 15 keypoints", f);
        same += a == f;
    }
    CHECKF(same == NQ, "exact copies: the same votes as brute force for %d/%d", same, NQ);
}

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
    cs_set_threads(1);
    REQUIRE(cs_lf_index_build(&imi1, NREF, recs, NULL, &err) == 0);
    static cs_lf_vote vf[NQ * K], v1[NQ * K], v2[NQ * K];
    int nf[NQ], n1[NQ], n2[NQ];
    REQUIRE(cs_lf_retrieve(flat, q, NQ, K, vf, nf, &err) == 0);
    REQUIRE(cs_lf_retrieve(imi1, q, NQ, K, v1, n1, &err) == 0);
    cs_faiss_set_threads(2);
    cs_set_threads(3);
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
    /* our scan's scalar loops give the same bits as its AVX2 and AVX-512
     * tables and gathers: the same nearest rows for every query descriptor
     * (lists of every length, so the 8- and 16-code blocks and their tails)
     * and votes */
    {
        static uint8_t d[NQ * 60 * 128];
        static int64_t rv[3][NQ * 60 * CS_LF_NN];
        int64_t n = 0;
        for (int i = 0; i < NQ; i++)
            for (int k = 0; k < q[i].n; k++) memcpy(d + 128 * n++, q[i].desc[k], 128);
        int top = cs_lf_index_simd(imi2, 2);
        for (int lv = 0; lv <= top; lv++) {
            CHECK(cs_lf_index_simd(imi2, lv) == lv);
            REQUIRE(cs_lf_index_knn(imi2, n, d, CS_LF_NN, rv[lv], &err) == 0);
            REQUIRE(cs_lf_retrieve(imi2, q, NQ, K, v2, n2, &err) == 0);
            CHECKF(!memcmp(rv[lv], rv[0], sizeof(int64_t) * (size_t)n * CS_LF_NN), "SIMD level %d: other rows", lv);
            CHECKF(!memcmp(n1, n2, sizeof n1) && !memcmp(v1, v2, sizeof v1), "SIMD level %d: other votes", lv);
        }
        cs_lf_index_simd(imi2, 2);
        printf("  scan: scalar loops vs SIMD levels up to %d (2 = AVX-512) on %lld query descriptors\n", top,
               (long long)n);
        /* 64 centroids per half and more: the AVX-512 coarse tables of four
         * query descriptors at once (coarse_table4_avx512; IMI2x5 has 32) */
        cs_lf_index *imi6;
        REQUIRE(cs_lf_index_build(&imi6, NREF, recs, "IMI2x6,PQ16np", &err) == 0);
        for (int lv = 0; lv <= top; lv++) {
            cs_lf_index_simd(imi6, lv);
            /* n - 1: the last group of four is short */
            REQUIRE(cs_lf_index_knn(imi6, n - 1, d, CS_LF_NN, rv[lv], &err) == 0);
            CHECKF(!memcmp(rv[lv], rv[0], sizeof(int64_t) * (size_t)(n - 1) * CS_LF_NN), "IMI2x6, SIMD level %d: other rows",
                   lv);
        }
        /* the AVX-512 scan's blocks of 16 codes left unsummed once every
         * partial sum is above the 8th best (prune 1), and the codes
         * excluded by the byte tables' lower bound (prune 2, the default
         * where cpuid has AVX-512 VBMI), against every sum in full: the same
         * rows on both indexes */
        if (top == 2) {
            static int64_t rf[NQ * 60 * CS_LF_NN];
            /* IMI2x3: 64 cells of ~330 codes, so most codes go through the
             * byte tables' blocks of 64 and their tails of every length
             * (at 1M references the probed lists hold ~160) */
            cs_lf_index *imi3;
            REQUIRE(cs_lf_index_build(&imi3, NREF, recs, "IMI2x3,PQ16np", &err) == 0);
            cs_lf_index *ixs[3] = {imi2, imi6, imi3};
            int lvmax = 1;
            for (int x = 0; x < 3; x++) {
                cs_lf_index_simd(ixs[x], 2);
                CHECK(cs_lf_index_prune(ixs[x], 0) == 0);
                REQUIRE(cs_lf_index_knn(ixs[x], n, d, CS_LF_NN, rf, &err) == 0);
                for (int pl = 1; pl <= 2; pl++) {
                    const int got = cs_lf_index_prune(ixs[x], pl);
                    CHECK(got == pl || (pl == 2 && got == 1));
                    lvmax = got > lvmax ? got : lvmax;
                    REQUIRE(cs_lf_index_knn(ixs[x], n, d, CS_LF_NN, rv[2], &err) == 0);
                    CHECKF(!memcmp(rv[2], rf, sizeof(int64_t) * (size_t)n * CS_LF_NN), "index %d, prune %d: other rows",
                           x, got);
                }
            }
            printf("  scan: AVX-512 sums pruned (up to level %d) vs in full, %lld query descriptors, 3 indexes\n", lvmax,
                   (long long)n);
            cs_lf_index_free(imi3);
        }
        cs_lf_index_free(imi6);
    }
    /* our PQ encoder (the default) against FAISS's own: the same index,
     * byte for byte, at 1 and 3 threads; and the same for cells of 64
     * centroids per half */
    {
        char pa[64], pb[64];
        snprintf(pa, sizeof pa, "/tmp/test_lf_enc_%d.a", (int)getpid());
        snprintf(pb, sizeof pb, "/tmp/test_lf_enc_%d.b", (int)getpid());
        static const char *facs[2] = {NULL, "IMI2x6,PQ16np"};
        for (int f = 0; f < 2; f++) {
            cs_lf_index *fx, *ox;
            cs_lf_faiss_encode(1);
            REQUIRE(cs_lf_index_build(&fx, NREF, recs, facs[f], &err) == 0);
            cs_lf_faiss_encode(0);
            REQUIRE(cs_lf_index_build(&ox, NREF, recs, facs[f], &err) == 0);
            REQUIRE(cs_lf_index_save(fx, pa, 1, NREF, &err) == 0 && cs_lf_index_save(ox, pb, 1, NREF, &err) == 0);
            long la, lb;
            uint8_t *a = slurp(pa, &la), *b = slurp(pb, &lb);
            CHECKF(a && b && la == lb && !memcmp(a, b, (size_t)la), "%s: our PQ codes differ from FAISS's",
                   facs[f] ? facs[f] : "default");
            free(a), free(b);
            if (!f) { /* and imi2, ours at 3 threads */
                REQUIRE(cs_lf_index_save(imi2, pb, 1, NREF, &err) == 0);
                a = slurp(pa, &la), b = slurp(pb, &lb);
                CHECK(a && b && la == lb && !memcmp(a, b, (size_t)la));
                free(a), free(b);
            }
            cs_lf_index_free(fx);
            cs_lf_index_free(ox);
        }
        unlink(pa);
        unlink(pb);
    }
    brute_force(flat, imi1, recs, q);
    side_file(recs, q, v1, n1);
    incremental(recs, q, v1, n1);
    cs_lf_index_free(flat);
    cs_lf_index_free(imi1);
    cs_lf_index_free(imi2);
    free(recs);
}

/* The default factory's cells: B rounded to the nearest cell size, so
 * 4^B x CS_LF_PER_CELL is within a factor of 2 of the descriptor count
 * wherever B is not at its bounds (5..10); exact search below
 * CS_LF_MIN_IMI. */
static void test_factory(void) {
    char fac[64];
    int np, b;
    cs_lf_default_factory(CS_LF_MIN_IMI - 1, fac, sizeof fac, &np);
    CHECKF(!strcmp(fac, "Flat") && np == 0, "%s", fac);
    cs_lf_default_factory(30000000, fac, sizeof fac, &np); /* 1M references: 1M cells of ~29 */
    CHECKF(!strcmp(fac, "IMI2x10,PQ16np") && np == CS_LF_NPROBE, "%s", fac);
    for (int64_t nd = CS_LF_MIN_IMI; nd < ((int64_t)1 << 32); nd = nd * 5 / 4) {
        cs_lf_default_factory(nd, fac, sizeof fac, &np);
        REQUIRE(sscanf(fac, "IMI2x%d,PQ16np", &b) == 1);
        double per = (double)nd / (double)((int64_t)1 << (2 * b));
        if (b > 5 && b < 10) CHECKF(per >= CS_LF_PER_CELL / 2.0 && per < 2.0 * CS_LF_PER_CELL, "%lld: %s", (long long)nd, fac);
        else CHECKF(b == 5 ? per < 2.0 * CS_LF_PER_CELL : per >= CS_LF_PER_CELL / 2.0, "%lld: %s", (long long)nd, fac);
    }
}

int main(void) {
    RUN(test_factory);
    RUN(test_imi_votes);
    return T_DONE();
}
