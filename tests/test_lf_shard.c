/* test_lf_shard.c — the local-feature vote search in parts (index/localfeat.h,
 * cs_lf_part_*: what copyscope-mpi's ranks search): with the whole index's
 * quantizer, each part indexes only the descriptors of the records it keeps,
 * and the merge of the parts' nearest lists by (distance, number) gives the
 * whole index's nearest descriptors and cs_lf_retrieve's votes exactly, for
 * the inverted multi-index with PQ codes (the default from CS_LF_MIN_IMI
 * descriptors) and the exact "Flat" index below it, with 1, 2 and 3 parts
 * cut three ways (runs, interleaved, one part empty). The records include
 * exact copies of others in other parts and records of fewer keypoints (and
 * none), so distances tie across parts and must fall as in one index. The
 * Flat distances are checked against exact integer sums (cs_lf_dist2).
 * The interleaved cut searches its parts after a round trip through a part
 * file (cs_lf_part_save/load, what `index add` writes beside each shard);
 * one of them is then also refused under another key (records or
 * quantizer), cut short, and with a broken number. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/lf_quant.h"
#include "index/localfeat.h"
#include "t.h"

static uint64_t rs = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

enum { NREF = 800, NQ = 24, WORDS = 512, K = 10 };

static uint8_t *records(int nref, int *nd) {
    static uint8_t vocab[WORDS][128];
    static cs_lf_set s;
    for (int w = 0; w < WORDS; w++)
        for (int j = 0; j < 128; j++) vocab[w][j] = (uint8_t)(rnd() % 4 ? (rnd() >> 9) % 100 : 0);
    uint8_t *recs = calloc((size_t)nref, CS_LF_RECORD);
    if (!recs) return NULL;
    *nd = 0;
    for (int i = 0; i < nref; i++) {
        if (i % 7 == 3) { /* an exact copy of an earlier record (another part under most cuts): ties */
            memcpy(recs + (size_t)i * CS_LF_RECORD, recs + (size_t)(i / 2) * CS_LF_RECORD, CS_LF_RECORD);
        } else {
            memset(&s, 0, sizeof s);
            s.n = i % 11 == 5 ? 0 : i % 5 == 1 ? 7 : CS_LF_REF_KP; /* fewer keypoints, or none */
            s.w = s.h = s.orig_w = s.orig_h = 256;
            for (int k = 0; k < s.n; k++)
                for (int j = 0; j < 128; j++) {
                    int v = vocab[rnd() % WORDS][j] + (int)(rnd() % 25) - 12;
                    s.desc[k][j] = (uint8_t)(v < 0 ? 0 : v);
                }
            cs_lf_pack(&s, recs + (size_t)i * CS_LF_RECORD);
        }
        *nd += recs[(size_t)i * CS_LF_RECORD] < CS_LF_REF_KP ? recs[(size_t)i * CS_LF_RECORD] : CS_LF_REF_KP;
    }
    return recs;
}

/* queries: some keypoints of a reference (as is: exact ties with its copy;
 * or with noise), the rest other words */
static void queries(const uint8_t *recs, cs_lf_set *q, int nq) {
    static cs_lf_set s;
    cs_err err = {0};
    for (int i = 0; i < nq; i++) {
        int r = (int)(rnd() % NREF);
        while (recs[(size_t)r * CS_LF_RECORD] < CS_LF_REF_KP) r = (r + 1) % NREF;
        REQUIRE(cs_lf_unpack(recs + (size_t)r * CS_LF_RECORD, &s, &err) == 0);
        memset(&q[i], 0, sizeof q[i]);
        q[i].n = i % 5 == 4 ? 0 : 40, q[i].w = q[i].h = 256;
        for (int k = 0; k < q[i].n; k++)
            for (int j = 0; j < 128; j++) {
                int v = k < 12 ? s.desc[k][j] + (i % 2 ? 0 : (int)(rnd() % 7) - 3) : (int)(rnd() % 90);
                q[i].desc[k][j] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    }
}

/* the owner of record i under cut c of p parts */
static int owner(int c, int p, int i, int n) {
    if (c == 0) return (int)((int64_t)i * p / n);           /* runs */
    if (c == 1) return i % p;                               /* interleaved */
    return p == 1 || i < n / 3 ? 0 : 1; /* the last part (of 3) empty */
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* *ppt saved as a part file and loaded back (what copyscope-mpi's ranks
 * search after `index add`): the loaded part replaces pt. damage: also
 * a part of another quantizer's or other records' key is refused as stale
 * (CS_ENOTFOUND), and the file cut short, or a number broken, as corrupt
 * (CS_EFORMAT), never loaded. *ppt: the loaded part replaces the built. */
static void round_trip(cs_lf_part **ppt, const uint8_t *qb, size_t qlen, const uint8_t *keep, int64_t nd,
                       int damage) {
    cs_lf_part *pt = *ppt;
    char path[] = "/tmp/cs-lfpart-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    cs_err err = {0};
    uint64_t key[2], other[2];
    cs_lf_part_keys(qb, qlen, 42, NREF, keep, key);
    REQUIRE(cs_lf_part_save(pt, path, key, &err) == 0);
    cs_lf_part *back = NULL;
    REQUIRE(cs_lf_part_load(&back, path, key, nd, &err) == 0);
    CHECK(cs_lf_part_ndesc(back) == cs_lf_part_ndesc(pt));
    if (damage) {
        cs_lf_part *x = NULL;
        cs_lf_part_keys(qb, qlen, 43, NREF, keep, other); /* other records */
        CHECK(cs_lf_part_load(&x, path, other, nd, &err) == -1 && err.code == CS_ENOTFOUND && !x);
        uint8_t *q2 = malloc(qlen);
        REQUIRE(q2);
        memcpy(q2, qb, qlen);
        q2[qlen - 1] ^= 1; /* another quantizer */
        cs_lf_part_keys(q2, qlen, 42, NREF, keep, other);
        free(q2);
        err = (cs_err){0};
        CHECK(cs_lf_part_load(&x, path, other, nd, &err) == -1 && err.code == CS_ENOTFOUND && !x);
        FILE *f = fopen(path, "rb");
        REQUIRE(f);
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fclose(f);
        REQUIRE(truncate(path, len - 5) == 0); /* cut */
        err = (cs_err){0};
        CHECKF(cs_lf_part_load(&x, path, key, nd, &err) == -1 && err.code == CS_EFORMAT && !x, "cut: %s", err.msg);
        REQUIRE(cs_lf_part_save(pt, path, key, &err) == 0);
        REQUIRE((f = fopen(path, "r+b")));
        uint8_t b[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}; /* the first number past the index */
        fseek(f, 100, SEEK_SET);
        REQUIRE(fwrite(b, 1, 8, f) == 8);
        fclose(f);
        err = (cs_err){0};
        CHECKF(cs_lf_part_ndesc(pt) == 0 || (cs_lf_part_load(&x, path, key, nd, &err) == -1 && err.code == CS_EFORMAT),
               "broken number: %s", err.msg);
    }
    remove(path);
    cs_lf_part_free(pt);
    *ppt = back;
}

static void check(const char *factory) {
    int nd = 0;
    uint8_t *recs = records(NREF, &nd);
    static cs_lf_set q[NQ];
    REQUIRE(recs);
    queries(recs, q, NQ);
    cs_err err = {0};
    cs_lf_index *ix;
    REQUIRE(cs_lf_index_build(&ix, NREF, recs, factory, &err) == 0);
    char desc[96];
    cs_lf_index_describe(ix, desc, sizeof desc);
    printf("  %s: %d records, %d descriptors\n", desc, NREF, nd);
    REQUIRE(cs_lf_index_ndesc(ix) == nd);
    if (!factory) CHECKF(nd >= CS_LF_MIN_IMI && !strncmp(desc, "IMI2x", 5), "%s", desc);

    /* the whole index: nearest descriptor numbers, votes */
    int64_t n = 0;
    for (int i = 0; i < NQ; i++) n += q[i].n;
    uint8_t *d = malloc((size_t)n * 128);
    int64_t *rows = malloc(sizeof *rows * (size_t)n * CS_LF_NN), *mg = malloc(sizeof *mg * (size_t)n * CS_LF_NN);
    int64_t *pg = malloc(sizeof *pg * (size_t)n * CS_LF_NN);
    float *md = malloc(sizeof *md * (size_t)n * CS_LF_NN), *pd = malloc(sizeof *pd * (size_t)n * CS_LF_NN);
    REQUIRE(d && rows && mg && pg && md && pd);
    for (int i = 0, at = 0; i < NQ; i++)
        for (int k = 0; k < q[i].n; k++) memcpy(d + 128 * at++, q[i].desc[k], 128);
    REQUIRE(cs_lf_index_knn(ix, n, d, CS_LF_NN, rows, &err) == 0);
    static cs_lf_vote v1[NQ * K], v2[NQ * K];
    int n1[NQ], n2[NQ];
    REQUIRE(cs_lf_retrieve(ix, q, NQ, K, v1, n1, &err) == 0);

    uint8_t *cnt = malloc(NREF), *keep = malloc(NREF);
    int64_t *first = malloc(sizeof *first * (NREF + 1));
    REQUIRE(cnt && keep && first);
    REQUIRE(cs_lf_index_counts(ix, NREF, cnt) == 0);
    first[0] = 0;
    for (int i = 0; i < NREF; i++) first[i + 1] = first[i] + cnt[i];
    CHECK(first[NREF] == nd);
    uint8_t *qb;
    size_t qlen;
    REQUIRE(cs_lf_quantizer_save(ix, &qb, &qlen, &err) == 0);

    /* a tie across parts must occur, or the test says nothing about them */
    int ties = 0;
    for (int cut = 0; cut < 3; cut++)
        for (int p = 1; p <= 3; p++) {
            for (int64_t j = 0; j < n * CS_LF_NN; j++) md[j] = INFINITY, mg[j] = -1;
            int64_t held = 0;
            for (int part = 0; part < p; part++) {
                int64_t want = 0;
                for (int i = 0; i < NREF; i++) {
                    keep[i] = owner(cut, p, i, NREF) == part;
                    want += keep[i] ? cnt[i] : 0;
                }
                cs_lf_part *pt;
                REQUIRE(cs_lf_part_build(&pt, qb, qlen, NREF, recs, cnt, keep, &err) == 0);
                CHECKF(cs_lf_part_ndesc(pt) == want, "cut %d, %d parts: part %d holds %lld of its %lld", cut, p,
                       part, (long long)cs_lf_part_ndesc(pt), (long long)want);
                if (cut == 1) round_trip(&pt, qb, qlen, keep, nd, p == 3 && part == 1);
                held += cs_lf_part_ndesc(pt);
                REQUIRE(cs_lf_part_knn(pt, n, d, pd, pg, &err) == 0);
                for (int64_t j = 0; j < n * CS_LF_NN; j++) /* only its own descriptors */
                    if (pg[j] >= 0) {
                        int64_t lo = 0;
                        while (first[lo + 1] <= pg[j]) lo++;
                        if (!keep[lo]) CHECKF(0, "part %d returned descriptor %lld of another", part, (long long)pg[j]);
                    }
                cs_lf_part_merge(md, mg, pd, pg, n);
                cs_lf_part_free(pt);
            }
            CHECK(held == nd);
            int same = 1;
            for (int64_t i = 0; i < n; i++) {
                int64_t a[CS_LF_NN], b[CS_LF_NN];
                memcpy(a, rows + i * CS_LF_NN, sizeof a);
                memcpy(b, mg + i * CS_LF_NN, sizeof b);
                qsort(a, CS_LF_NN, sizeof *a, cmp64);
                qsort(b, CS_LF_NN, sizeof *b, cmp64);
                same &= !memcmp(a, b, sizeof a);
                for (int k = 1; k < CS_LF_NN; k++) ties += md[i * CS_LF_NN + k] == md[i * CS_LF_NN + k - 1];
                if (!factory || strcmp(factory, "Flat")) continue;
                for (int k = 0; k < CS_LF_NN; k++) { /* Flat: the exact squared distance */
                    int64_t g = mg[i * CS_LF_NN + k], lo = 0;
                    if (g < 0) continue;
                    while (first[lo + 1] <= g) lo++;
                    cs_lf_set s;
                    REQUIRE(cs_lf_unpack(recs + (size_t)lo * CS_LF_RECORD, &s, &err) == 0);
                    int e;
                    cs_lf_dist2(d + 128 * i, (const uint8_t(*)[128])s.desc[g - first[lo]], 1, &e);
                    same &= md[i * CS_LF_NN + k] == (float)e;
                }
            }
            CHECKF(same, "%s, cut %d, %d parts: merged nearest lists differ from the whole index's", desc, cut, p);
            REQUIRE(cs_lf_part_votes(first, NREF, q, NQ, mg, K, v2, n2, &err) == 0);
            CHECKF(!memcmp(n1, n2, sizeof n1), "%s, cut %d, %d parts: other vote counts", desc, cut, p);
            int sv = 1;
            for (int i = 0; i < NQ; i++) sv &= !memcmp(v1 + i * K, v2 + i * K, sizeof *v1 * (size_t)n1[i]);
            CHECKF(sv, "%s, cut %d, %d parts: other votes", desc, cut, p);
        }
    CHECKF(ties > 0, "%s: no tied distances in the merged lists", desc);
    int voted = 0;
    for (int i = 0; i < NQ; i++) voted += n1[i] > 0;
    CHECK(voted >= NQ / 2);
    free(qb);
    free(cnt), free(keep), free(first);
    free(d), free(rows), free(mg), free(pg), free(md), free(pd);
    cs_lf_index_free(ix);
    free(recs);
}

static int same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb, x = 0, y = 0;
    while (same && (x = getc(fa)) != EOF && (y = getc(fb)) != EOF) same = x == y;
    if (same) same = x == EOF && getc(fb) == EOF;
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static void tmp_name(char *path) {
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
}

/* What `mpirun index add` does instead of building the whole index on rank
 * 0 (index/lf_quant.h): the quantizer trained alone is the built index's,
 * byte for byte; the index put together from the parts of 1, 2 and 3 runs
 * of records (each shard of a store holds a run of ids) saves to the same
 * file as the index built from the records; parts out of number order
 * (interleaved, or the runs backwards) are refused, not put in disorder.
 * The same trained in steps, the PQ's sub-quantizers in other indexes (as
 * copyscope-mpi's ranks train them), in reverse order: the same bytes.
 * Then <db>.lfquant: read back the same, its quantizer re-saved from a
 * shell (what rank 0 of an analysis sends its ranks) the same bytes (the
 * parts' keys), stale once the vote index file is rewritten or the records
 * differ, and refused when cut. */
static void test_assemble(void) {
    int nd = 0;
    uint8_t *recs = records(NREF, &nd);
    REQUIRE(recs);
    cs_err err = {0};
    cs_lf_index *ix = NULL, *sh = NULL;
    REQUIRE(cs_lf_index_build(&ix, NREF, recs, NULL, &err) == 0);
    char desc[96];
    cs_lf_index_describe(ix, desc, sizeof desc);
    REQUIRE(nd >= CS_LF_MIN_IMI && !strncmp(desc, "IMI2x", 5)); /* trained: the case where it matters */
    char whole[] = "/tmp/cs-lfvote-XXXXXX", built[] = "/tmp/cs-lfvote-XXXXXX", qf[] = "/tmp/cs-lfquant-XXXXXX";
    tmp_name(whole), tmp_name(built), tmp_name(qf);
    REQUIRE(cs_lf_index_save(ix, whole, 42, NREF, &err) == 0);
    uint8_t *qa = NULL, *qb = NULL, *cnt = malloc(NREF), *cnt2 = malloc(NREF), *keep = malloc(NREF);
    size_t qalen = 0, qlen = 0;
    REQUIRE(cnt && cnt2 && keep);
    REQUIRE(cs_lf_quantizer_save(ix, &qa, &qalen, &err) == 0);
    REQUIRE(cs_lf_quant_train(NREF, recs, &qb, &qlen, &err) == 0);
    CHECKF(qlen == qalen && !memcmp(qa, qb, qlen), "trained alone: %zu bytes, built %zu", qlen, qalen);
    { /* in steps, the sub-quantizers in other indexes in reverse order (as
       * copyscope-mpi's ranks train them): the same bytes again */
        cs_lf_qtrain *t = NULL;
        REQUIRE(cs_lf_qtrain_begin(&t, NREF, recs, &err) == 0);
        const float *smp;
        int64_t ns = cs_lf_qtrain_sample(t, &smp);
        int M = cs_lf_qtrain_subs(t);
        CHECK(M == 16 && ns > 0);
        float *c = malloc(sizeof(float) * 128 * 256);
        REQUIRE(c);
        for (int m = M - 1; m >= 0; m--)
            CHECK(cs_lf_qtrain_sub(cs_lf_qtrain_factory(t), ns, smp, m, c + (size_t)m * 256 * (128 / M), &err) == 0);
        uint8_t *q3 = NULL;
        size_t q3len = 0;
        CHECK(cs_lf_qtrain_end(t, c, &q3, &q3len, &err) == 0);
        CHECKF(q3len == qalen && !memcmp(q3, qa, qalen), "trained in steps: other bytes");
        free(q3), free(c);
        cs_lf_qtrain_free(t);
    }
    REQUIRE(cs_lf_index_counts(ix, NREF, cnt) == 0);
    cs_lf_quant_counts(NREF, recs, cnt2);
    CHECK(!memcmp(cnt, cnt2, NREF));

    for (int p = 1; p <= 3; p++)
        for (int back = 0; back < 2; back++) {
            REQUIRE(cs_lf_index_shell(&sh, qb, qlen, NREF, cnt, &err) == 0);
            int rc = 0;
            for (int j = 0; j < p && !rc; j++) {
                int part = back ? p - 1 - j : j;
                for (int i = 0; i < NREF; i++) keep[i] = owner(0, p, i, NREF) == part;
                cs_lf_part *pt = NULL;
                REQUIRE(cs_lf_part_build(&pt, qb, qlen, NREF, recs, cnt, keep, &err) == 0);
                err = (cs_err){0};
                rc = cs_lf_part_into(sh, pt, &err);
                cs_lf_part_free(pt);
            }
            if (back && p > 1) {
                CHECKF(rc == -1 && err.code == CS_EUSAGE, "%d runs backwards put together (%s)", p, err.msg);
            } else {
                CHECKF(rc == 0 && cs_lf_index_shell_done(sh, &err) == 0, "%d runs: %s", p, err.msg);
                REQUIRE(cs_lf_index_save(sh, built, 42, NREF, &err) == 0);
                CHECKF(same_file(whole, built), "%d runs: the index from the parts is not the built one's bytes", p);
            }
            cs_lf_index_free(sh);
            sh = NULL;
        }
    /* interleaved records: the second part's lists start below the first's end */
    REQUIRE(cs_lf_index_shell(&sh, qb, qlen, NREF, cnt, &err) == 0);
    int rc = 0;
    for (int part = 0; part < 2 && !rc; part++) {
        for (int i = 0; i < NREF; i++) keep[i] = owner(1, 2, i, NREF) == part;
        cs_lf_part *pt = NULL;
        REQUIRE(cs_lf_part_build(&pt, qb, qlen, NREF, recs, cnt, keep, &err) == 0);
        rc = cs_lf_part_into(sh, pt, &err);
        cs_lf_part_free(pt);
    }
    CHECK(rc == -1 && err.code == CS_EUSAGE);
    cs_lf_index_free(sh);
    sh = NULL;

    /* <db>.lfquant */
    uint8_t *c3 = NULL, *q3 = NULL, *q4 = NULL;
    size_t q3len = 0, q4len = 0;
    err = (cs_err){0};
    CHECK(cs_lf_quant_load(qf, whole, 42, NREF, &c3, &q3, &q3len, &err) == -1); /* empty file */
    REQUIRE(cs_lf_quant_save(qf, whole, 42, NREF, cnt, qb, qlen, &err) == 0);
    REQUIRE(cs_lf_quant_load(qf, whole, 42, NREF, &c3, &q3, &q3len, &err) == 0);
    CHECK(q3len == qlen && !memcmp(q3, qb, qlen) && !memcmp(c3, cnt, NREF));
    REQUIRE(cs_lf_index_shell(&sh, q3, q3len, NREF, c3, &err) == 0);
    REQUIRE(cs_lf_quantizer_save(sh, &q4, &q4len, &err) == 0);
    CHECKF(q4len == qlen && !memcmp(q4, qb, qlen), "a shell's quantizer re-saved: other bytes");
    CHECK(cs_lf_index_counts(sh, NREF, cnt2) == 0 && !memcmp(cnt, cnt2, NREF));
    CHECK(cs_lf_index_ndesc(sh) == nd);
    free(c3), free(q3), free(q4);
    c3 = q3 = NULL;
    err = (cs_err){0};
    CHECK(cs_lf_quant_load(qf, whole, 43, NREF, &c3, &q3, &q3len, &err) == -1 && err.code == CS_ENOTFOUND && !c3);
    REQUIRE(cs_lf_index_save(ix, whole, 42, NREF, &err) == 0); /* the same bytes, but another file */
    err = (cs_err){0};
    CHECKF(cs_lf_quant_load(qf, whole, 42, NREF, &c3, &q3, &q3len, &err) == -1 && err.code == CS_ENOTFOUND,
           "kept after its vote index was rewritten: %s", err.msg);
    REQUIRE(cs_lf_quant_save(qf, whole, 42, NREF, cnt, qb, qlen, &err) == 0);
    FILE *f = fopen(qf, "rb");
    REQUIRE(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fclose(f);
    REQUIRE(truncate(qf, len - 3) == 0);
    err = (cs_err){0};
    CHECKF(cs_lf_quant_load(qf, whole, 42, NREF, &c3, &q3, &q3len, &err) == -1 && err.code == CS_EFORMAT && !q3,
           "cut: %s", err.msg);
    remove(whole), remove(built), remove(qf);
    cs_lf_index_free(sh);
    cs_lf_index_free(ix);
    free(qa), free(qb), free(cnt), free(cnt2), free(keep), free(recs);
}

static void test_imi(void) { check(NULL); }
static void test_flat(void) { check("Flat"); }

int main(void) {
    RUN(test_imi);
    RUN(test_flat);
    RUN(test_assemble);
    return T_DONE();
}
