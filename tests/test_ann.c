/* test_ann — the approximate index of a vector column (index/ann.h), against
 * exact search (cs_knn_exact) on a synthetic clustered column: recall, an
 * incremental update equal to a full build with the same quantizer, rows
 * appended after the build still found, atomic rewrites, and one-line errors
 * for a missing, truncated, garbage or foreign index and a shrunk column. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/ann.h"
#include "index/faiss_shim.h"
#include "index/knn.h"
#include "index/vecstore.h"
#include "t.h"

enum { DIM = 48, NC = 120, N1 = 3000, N2 = 4000, NQ = 200, K = 10 };

static char *dir;

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static float unif(uint64_t key) { return (float)(mix(key) >> 11) / 9007199254740992.0f - 0.5f; }

/* Row r of a column with NC clusters (centre + noise), seed picks the data. */
static void row(float *x, int64_t r, uint64_t seed) {
    int c = (int)(mix(r * 31 + seed) % NC);
    for (int d = 0; d < DIM; d++)
        x[d] = unif(seed << 40 ^ (uint64_t)c << 20 ^ (uint64_t)d) + 0.6f * unif(seed << 50 ^ (uint64_t)r << 8 ^ (uint64_t)d ^ 1ULL << 62);
    cs_l2_normalize(x, 1, DIM);
}

static char *path_of(const char *name) {
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/%s", dir, name);
    return p;
}

/* A column file `name` of rows [0, n) of dataset seed, dimension dim. */
static int make_column(cs_vecstore *vs, const char *name, int64_t n, uint64_t seed, int dim) {
    char *p = path_of(name);
    cs_err e = {0};
    int rc = cs_vecstore_open(vs, p, dim, 1, &e);
    free(p);
    if (rc) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    float *v = malloc(sizeof(float) * (size_t)n * dim);
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        if (dim == DIM) row(v + i * dim, i, seed);
        else for (int d = 0; d < dim; d++) v[i * dim + d] = unif((uint64_t)i * 977 + (uint64_t)d);
        ids[i] = 1000 + i;
    }
    if (dim != DIM) cs_l2_normalize(v, n, dim);
    rc = cs_vecstore_append(vs, ids, v, n, &e);
    if (rc) fprintf(stderr, "%s\n", e.msg);
    free(v), free(ids);
    return rc;
}

/* Appends rows [vs->n, n) of dataset seed. */
static int grow_column(cs_vecstore *vs, int64_t n, uint64_t seed) {
    int64_t n0 = vs->n, m = n - n0;
    float *v = malloc(sizeof(float) * (size_t)m * DIM);
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)m);
    for (int64_t i = 0; i < m; i++) row(v + i * DIM, n0 + i, seed), ids[i] = 1000 + n0 + i;
    cs_err e = {0};
    int rc = cs_vecstore_append(vs, ids, v, m, &e);
    free(v), free(ids);
    return rc;
}

/* Queries: noisy copies of rows spread over the column. */
static float *queries(const cs_vecstore *vs) {
    float *q = malloc(sizeof(float) * NQ * DIM);
    for (int i = 0; i < NQ; i++) {
        int64_t src = (int64_t)(mix((uint64_t)i + 77) % (uint64_t)vs->n);
        for (int d = 0; d < DIM; d++) q[i * DIM + d] = vs->vecs[src * DIM + d] + 0.3f * unif((uint64_t)i << 20 ^ (uint64_t)d ^ 5ULL << 60);
    }
    cs_l2_normalize(q, NQ, DIM);
    return q;
}

static double recall(const int64_t *a, const int64_t *ex) {
    int64_t hit = 0;
    for (int i = 0; i < NQ; i++)
        for (int x = 0; x < K; x++)
            for (int y = 0; y < K; y++) hit += a[i * K + x] == ex[i * K + y] && ex[i * K + y] >= 0;
    return (double)hit / (NQ * K);
}

static int64_t fsize(const char *p) {
    struct stat st;
    return stat(p, &st) ? -1 : (int64_t)st.st_size;
}

static int copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    if (!a || !b) {
        if (a) fclose(a);
        if (b) fclose(b);
        return -1;
    }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
    fclose(a);
    return fclose(b);
}

static int one_line(const cs_err *e) { return e->msg[0] && !strchr(e->msg, '\n'); }

/* Default factory on 4000 rows (IVF32,Flat, nprobe 8): recall@10 >= 0.95 vs
 * exact, scores exact cosines; all lists probed: the exact lists. */
static void test_recall(void) {
    cs_vecstore vs;
    REQUIRE(make_column(&vs, "rec.vec", N2, 1, DIM) == 0);
    char *ap = path_of("rec.ann");
    cs_err e = {0};
    cs_ann_stats st;
    cs_ann_opts o = {.threads = 2};
    CHECKF(cs_ann_build_vs(ap, "rec", &vs, &o, &st, &e) == 0, "%s", e.msg);
    CHECK(!strcmp(st.factory, "IVF32,Flat") && st.trained && st.rows == N2 && st.nprobe == 8);
    float *q = queries(&vs), *es = malloc(sizeof(float) * NQ * K), *as = malloc(sizeof(float) * NQ * K);
    int64_t *er = malloc(sizeof(int64_t) * NQ * K), *ar = malloc(sizeof(int64_t) * NQ * K);
    CHECK(cs_knn_exact(vs.vecs, vs.n, DIM, q, NQ, K, 2, es, er, &e) == 0);
    cs_ann *a = NULL;
    CHECKF(cs_ann_open(&a, ap, "rec", &vs, &e) == 0, "%s", e.msg);
    if (a) {
        CHECK(cs_ann_rows(a) == N2 && !strcmp(cs_ann_factory(a), "IVF32,Flat"));
        CHECK(cs_ann_search(a, &vs, q, NQ, K, NULL, as, ar, &e) == 0);
        double r8 = recall(ar, er);
        CHECKF(r8 >= 0.95, "recall@10 %.4f", r8);
        int sorted = 1, exact_scores = 1;
        for (int i = 0; i < NQ; i++)
            for (int j = 0; j < K; j++) {
                int64_t rr = ar[i * K + j];
                if (j && as[i * K + j] > as[i * K + j - 1]) sorted = 0;
                float s = 0;
                for (int d = 0; d < DIM; d++) s += q[i * DIM + d] * vs.vecs[rr * DIM + d];
                if (fabsf(s - as[i * K + j]) > 1e-5f) exact_scores = 0;
            }
        CHECK(sorted && exact_scores);
        cs_ann_search_opts all = {.nprobe = 32};
        CHECK(cs_ann_search(a, &vs, q, NQ, K, &all, as, ar, &e) == 0);
        double r32 = recall(ar, er);
        CHECKF(r32 >= 0.999, "recall@10 with every list %.4f", r32);
        printf("  recall@10 vs exact: nprobe 8 of 32 lists %.4f, every list %.4f\n", r8, r32);
        cs_ann_close(a);
    }
    free(q), free(es), free(as), free(er), free(ar), free(ap);
    cs_vecstore_close(&vs);
}

/* Build on N1 rows, grow to N2, update: only N2 - N1 added, no retraining;
 * the FAISS lists equal a full add of N2 rows into the same trained
 * quantizer (the file before the update, reset). And before the update, the
 * old index plus the exact tail scan finds the new rows. */
static void test_incremental(void) {
    cs_vecstore vs;
    REQUIRE(make_column(&vs, "inc.vec", N1, 2, DIM) == 0);
    char *ap = path_of("inc.ann"), *old = path_of("inc-old.ann");
    cs_err e = {0};
    cs_ann_stats st;
    cs_ann_opts o = {.threads = 2};
    REQUIRE(cs_ann_build_vs(ap, "inc", &vs, &o, &st, &e) == 0);
    CHECK(st.trained && st.rows == N1 && !strcmp(st.factory, "IVF16,Flat"));
    CHECK(copy_file(ap, old) == 0);
    REQUIRE(grow_column(&vs, N2, 2) == 0);
    REQUIRE(vs.n == N2);
    /* the old index still answers for the new rows (exact tail) */
    cs_ann *a = NULL;
    CHECKF(cs_ann_open(&a, old, "inc", &vs, &e) == 0, "%s", e.msg);
    if (a) {
        float s[K];
        int64_t r[K];
        CHECK(cs_ann_search(a, &vs, vs.vecs + (int64_t)(N2 - 5) * DIM, 1, K, NULL, s, r, &e) == 0);
        CHECK(r[0] == N2 - 5 && fabsf(s[0] - 1) < 1e-5f);
        cs_ann_close(a);
    }
    CHECKF(cs_ann_build_vs(ap, "inc", &vs, &o, &st, &e) == 0, "%s", e.msg);
    CHECK(!st.trained && st.rows_before == N1 && st.rows == N2);
    /* a rerun with nothing new leaves the file alone */
    int64_t sz = fsize(ap);
    CHECK(cs_ann_build_vs(ap, "inc", &vs, &o, &st, &e) == 0 && st.rows_before == N2 && st.rows == N2 && !st.trained);
    CHECK(fsize(ap) == sz);
    cs_ann *up = NULL, *full = NULL;
    CHECK(cs_ann_open(&up, ap, "inc", &vs, &e) == 0);
    CHECK(cs_ann_open(&full, old, "inc", &vs, &e) == 0);
    if (up && full) {
        cs_faiss *ff = cs_ann_faiss(full), *fu = cs_ann_faiss(up);
        CHECK(cs_faiss_reset(ff, &e) == 0 && cs_faiss_ntotal(ff) == 0 && cs_faiss_is_trained(ff));
        CHECK(cs_faiss_add(ff, N2, vs.vecs, &e) == 0);
        CHECK(cs_faiss_nprobe(ff) == cs_faiss_nprobe(fu) && cs_faiss_nlist(fu) == 16);
        float *q = queries(&vs), *s1 = malloc(sizeof(float) * NQ * K), *s2 = malloc(sizeof(float) * NQ * K);
        int64_t *r1 = malloc(sizeof(int64_t) * NQ * K), *r2 = malloc(sizeof(int64_t) * NQ * K);
        CHECK(cs_faiss_search(fu, NQ, q, K, s1, r1, &e) == 0 && cs_faiss_search(ff, NQ, q, K, s2, r2, &e) == 0);
        CHECK(!memcmp(r1, r2, sizeof(int64_t) * NQ * K) && !memcmp(s1, s2, sizeof(float) * NQ * K));
        free(q), free(s1), free(s2), free(r1), free(r2);
    }
    /* the same index as a plain FAISS file, read back memory-mapped: same answers */
    char *raw = path_of("inc.faiss");
    cs_faiss *mm = NULL;
    if (up) {
        CHECK(cs_faiss_write(cs_ann_faiss(up), raw, &e) == 0);
        CHECKF(cs_faiss_read_mmap(&mm, raw, &e) == 0, "%s", e.msg);
    }
    if (mm) {
        float *q = queries(&vs), *s1 = malloc(sizeof(float) * NQ * K), *s2 = malloc(sizeof(float) * NQ * K);
        int64_t *r1 = malloc(sizeof(int64_t) * NQ * K), *r2 = malloc(sizeof(int64_t) * NQ * K);
        CHECK(cs_faiss_ntotal(mm) == N2 && cs_faiss_nlist(mm) == 16);
        CHECK(cs_faiss_search(cs_ann_faiss(up), NQ, q, K, s1, r1, &e) == 0 && cs_faiss_search(mm, NQ, q, K, s2, r2, &e) == 0);
        CHECK(!memcmp(r1, r2, sizeof(int64_t) * NQ * K));
        free(q), free(s1), free(s2), free(r1), free(r2);
        cs_faiss_free(mm);
    }
    free(raw);
    cs_ann_close(up);
    cs_ann_close(full);
    /* no temporary file left behind */
    char *tmp = malloc(4200);
    snprintf(tmp, 4200, "%s.tmp.%ld", ap, (long)getpid());
    CHECK(access(tmp, F_OK) != 0);
    free(tmp), free(ap), free(old);
    cs_vecstore_close(&vs);
}

/* Each bad case: one line naming the index file. */
static void test_errors(void) {
    cs_vecstore vs, small, other, wide;
    REQUIRE(make_column(&vs, "err.vec", N1, 3, DIM) == 0);
    REQUIRE(make_column(&small, "err-small.vec", N1 / 2, 3, DIM) == 0);
    REQUIRE(make_column(&other, "err-other.vec", N1, 4, DIM) == 0);
    REQUIRE(make_column(&wide, "err-wide.vec", 200, 0, 64) == 0);
    char *ap = path_of("err.ann"), *bad = path_of("bad.ann");
    cs_err e = {0};
    cs_ann_opts o = {.threads = 2};
    REQUIRE(cs_ann_build_vs(ap, "err", &vs, &o, NULL, &e) == 0);
    cs_ann *a = NULL;
#define EXPECT_OPEN_FAIL(path, col, v, what)                                                     \
    do {                                                                                         \
        cs_err_clear(&e);                                                                        \
        CHECK(cs_ann_open(&a, path, col, v, &e) == -1 && a == NULL);                             \
        CHECKF(one_line(&e) && strstr(e.msg, path) && strstr(e.msg, what), "%s", e.msg);         \
    } while (0)
    EXPECT_OPEN_FAIL(ap, "err", &small, "column shrank");
    EXPECT_OPEN_FAIL(ap, "err", &other, "was not built from the vectors");
    EXPECT_OPEN_FAIL(ap, "sscd", &vs, "built for column 'err'");
    EXPECT_OPEN_FAIL(ap, "err", &wide, "dimension 48, column err has 64");
    EXPECT_OPEN_FAIL(bad, "err", &vs, "no such file");
    /* an update of a shrunk column fails the same way and keeps the file */
    int64_t sz = fsize(ap);
    cs_err_clear(&e);
    CHECK(cs_ann_build_vs(ap, "err", &small, &o, NULL, &e) == -1 && strstr(e.msg, "column shrank"));
    CHECK(fsize(ap) == sz);
    /* a build that fails (more lists than rows) leaves the old file whole */
    cs_ann_opts big = {.factory = "IVF4096,Flat", .threads = 2};
    cs_err_clear(&e);
    CHECK(cs_ann_build_vs(ap, "err", &vs, &big, NULL, &e) == -1 && one_line(&e) && strstr(e.msg, ap));
    CHECK(fsize(ap) == sz && cs_ann_open(&a, ap, "err", &vs, &e) == 0);
    cs_ann_close(a);
    a = NULL;
    /* a bad factory string */
    cs_ann_opts nonsense = {.factory = "Frobnicate42", .threads = 2};
    cs_err_clear(&e);
    CHECK(cs_ann_build_vs(bad, "err", &vs, &nonsense, NULL, &e) == -1 && one_line(&e) && strstr(e.msg, "Frobnicate42"));
    /* truncated: half the file, then less than the header */
    REQUIRE(copy_file(ap, bad) == 0);
    CHECK(truncate(bad, sz / 2) == 0);
    EXPECT_OPEN_FAIL(bad, "err", &vs, "truncated ANN index");
    CHECK(truncate(bad, 100) == 0);
    EXPECT_OPEN_FAIL(bad, "err", &vs, "truncated ANN index");
    /* garbage: no magic; then a good header over a garbage FAISS payload */
    FILE *f = fopen(bad, "wb");
    for (int i = 0; i < 5000; i++) fputc((int)(mix((uint64_t)i) & 0xff), f);
    fclose(f);
    EXPECT_OPEN_FAIL(bad, "err", &vs, "not a copyscope ANN index");
    FILE *g = fopen(ap, "rb");
    unsigned char hdr[CS_ANN_HEADER_SIZE];
    REQUIRE(g && fread(hdr, 1, sizeof hdr, g) == sizeof hdr);
    fclose(g);
    uint64_t payload = 4096;
    for (int i = 0; i < 8; i++) hdr[24 + i] = (unsigned char)(payload >> (8 * i));
    f = fopen(bad, "wb");
    fwrite(hdr, 1, sizeof hdr, f);
    for (int i = 0; i < 4096; i++) fputc((int)(mix((uint64_t)i + 99) & 0xff), f);
    fclose(f);
    EXPECT_OPEN_FAIL(bad, "err", &vs, "faiss");
    /* an empty column */
    cs_vecstore empty;
    char *ep = path_of("empty.vec");
    REQUIRE(cs_vecstore_open(&empty, ep, DIM, 1, &e) == 0);
    cs_err_clear(&e);
    CHECK(cs_ann_build_vs(bad, "empty", &empty, &o, NULL, &e) == -1 && strstr(e.msg, "is empty"));
    cs_vecstore_close(&empty);
    free(ep), free(ap), free(bad);
    cs_vecstore_close(&vs), cs_vecstore_close(&small), cs_vecstore_close(&other), cs_vecstore_close(&wide);
}

/* A default-factory index is retrained once the column has grown 4x and the
 * default for its size changed; a user's factory is kept. */
static void test_regrow(void) {
    cs_vecstore vs, us;
    REQUIRE(make_column(&vs, "grow.vec", 300, 5, DIM) == 0);
    REQUIRE(make_column(&us, "grow-user.vec", 300, 5, DIM) == 0);
    char *ap = path_of("grow.ann"), *up = path_of("grow-user.ann");
    cs_err e = {0};
    cs_ann_stats st;
    cs_ann_opts o = {.threads = 2}, ou = {.factory = "IVF2,Flat", .threads = 2};
    REQUIRE(cs_ann_build_vs(ap, "grow", &vs, &o, &st, &e) == 0);
    CHECK(st.trained && !strcmp(st.factory, "IVF2,Flat"));
    REQUIRE(cs_ann_build_vs(up, "grow", &us, &ou, &st, &e) == 0);
    /* 3.3x: still the same index, updated */
    REQUIRE(grow_column(&vs, 1000, 5) == 0 && grow_column(&us, 1000, 5) == 0);
    CHECK(cs_ann_build_vs(ap, "grow", &vs, &o, &st, &e) == 0 && !st.trained && st.rows == 1000 &&
          !strcmp(st.factory, "IVF2,Flat"));
    /* 4.3x the training rows: retrained with the default for 1,300 rows
     * (nlist 8: at most 1300 / 100 training points per list, a power of two) */
    REQUIRE(grow_column(&vs, 1300, 5) == 0 && grow_column(&us, 1300, 5) == 0);
    CHECKF(cs_ann_build_vs(ap, "grow", &vs, &o, &st, &e) == 0 && st.trained && st.rows == 1300 &&
               !strcmp(st.factory, "IVF8,Flat"), "trained %d factory %s", st.trained, st.factory);
    /* the user's factory, updated with or without --factory, never retrained */
    CHECK(cs_ann_build_vs(up, "grow", &us, &(cs_ann_opts){.threads = 2}, &st, &e) == 0 && !st.trained &&
          st.rows == 1300 && !strcmp(st.factory, "IVF2,Flat"));
    free(ap), free(up);
    cs_vecstore_close(&vs), cs_vecstore_close(&us);
}

static void test_defaults(void) {
    char b[64];
    cs_ann_default_factory(50, b, sizeof b);
    CHECK(!strcmp(b, "Flat"));
    cs_ann_default_factory(1000000, b, sizeof b);
    CHECK(!strcmp(b, "IVF4096,Flat"));
    cs_ann_default_factory(1878, b, sizeof b);
    CHECK(!strcmp(b, "IVF16,Flat"));
    CHECK(cs_ann_default_nprobe(4096) == 8 && cs_ann_default_nprobe(16384) == 32);
    CHECK(cs_ann_default_nprobe(16) == 8 && cs_ann_default_nprobe(4) == 2 && cs_ann_default_nprobe(1) == 1);
}

int main(void) {
    dir = t_tmpdir("ann");
    if (!dir) return 1;
    RUN(test_defaults);
    RUN(test_recall);
    RUN(test_incremental);
    RUN(test_errors);
    RUN(test_regrow);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    free(dir);
    return T_DONE();
}
