/* tiny descriptor: normalisation invariances, the learned whitening
 * decorrelates the training set (checked by recomputing the covariance of the
 * projections), near-copies retrieve their source, save/load, bad input. */
#include <stdint.h>
#include <unistd.h>

#include "core/err.h"
#include "index/knn.h"
#include "index/refs.h"
#include "index/tinydesc.h"
#include "t.h"

#define S CS_THUMB_SIZE
#define TB (S * S * 3)

static uint64_t rs = 77;
static double ur(void) {
    rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rs >> 11) / 9007199254740992.0;
}

/* A smooth random image in 40..215: a few random plane waves per channel. */
static void synth(uint8_t *t) {
    double f[3][4][3];
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < 4; k++) f[c][k][0] = ur() * 0.3, f[c][k][1] = ur() * 0.3, f[c][k][2] = ur() * 6.28;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            for (int c = 0; c < 3; c++) {
                double v = 0;
                for (int k = 0; k < 4; k++) v += sin(f[c][k][0] * x + f[c][k][1] * y + f[c][k][2]);
                t[(y * S + x) * 3 + c] = (uint8_t)(127.5 + 21 * v);
            }
}

static void test_raw_invariances(void) {
    uint8_t a[TB], b[TB];
    synth(a);
    for (int i = 0; i < TB; i++) b[i] = (uint8_t)(a[i] + 30); /* brightness shift, no clipping */
    float ra[CS_TINY_IN], rb[CS_TINY_IN];
    CHECK(cs_tiny_raw(a, ra) == 1 && cs_tiny_raw(b, rb) == 1);
    double md = 0, ss = 0;
    for (int i = 0; i < CS_TINY_IN; i++) md = fmax(md, fabs(ra[i] - rb[i])), ss += ra[i] * ra[i];
    CHECK(md < 1e-5 && fabs(ss - 1) < 1e-5);
    memset(a, 90, TB);
    CHECK(cs_tiny_raw(a, ra) == 0 && ra[0] == 0 && ra[CS_TINY_IN - 1] == 0);
}

static void test_learn_whitens_and_retrieves(void) {
    int n = 400;
    uint8_t *th = malloc((size_t)n * TB);
    for (int i = 0; i < n; i++) synth(th + (size_t)i * TB);
    memset(th + 7 * TB, 128, TB); /* a constant reference is left out of training */
    cs_tinydesc m;
    cs_err e = {0};
    REQUIRE(cs_tiny_learn(&m, th, n, &e) == 0);
    CHECK(m.dim == CS_TINY_DIM && m.n_train == n - 1);
    /* covariance of the projected training data: diagonal, entries <= 1 */
    int d = m.dim, zero_rows = 0;
    float *Y = calloc((size_t)n * d, sizeof *Y), raw[CS_TINY_IN];
    for (int i = 0; i < n; i++) {
        if (!cs_tiny_raw(th + (size_t)i * TB, raw)) continue;
        for (int r = 0; r < d; r++) {
            double s = 0;
            for (int j = 0; j < CS_TINY_IN; j++) s += (double)m.proj[(size_t)r * CS_TINY_IN + j] * (raw[j] - m.mean[j]);
            Y[(size_t)i * d + r] = (float)s;
        }
    }
    for (int r = 0; r < d; r++) {
        int z = 1;
        for (int j = 0; j < CS_TINY_IN && z; j++) z = m.proj[(size_t)r * CS_TINY_IN + j] == 0;
        zero_rows += z;
    }
    double maxoff = 0, maxdiag = 0, diag0 = 0;
    for (int a = 0; a < 20; a++)
        for (int b = 0; b <= a; b++) {
            double c = 0;
            for (int i = 0; i < n; i++) c += (double)Y[(size_t)i * d + a] * Y[(size_t)i * d + b];
            c /= (n - 2);
            if (a == b) maxdiag = fmax(maxdiag, c), diag0 = a == 0 ? c : diag0;
            else maxoff = fmax(maxoff, fabs(c));
        }
    printf("  top-20 covariance: diag max %.4f (first %.4f), off-diag max %.2e; zero rows %d\n",
           maxdiag, diag0, maxoff, zero_rows);
    CHECK(maxdiag <= 1.0 + 1e-3 && diag0 > 0.9 && maxoff < 1e-3);
    CHECK(zero_rows == 0 || zero_rows < d);

    /* near-copies (noise +-8 levels, brightness +12) find their source first */
    float *db = malloc((size_t)n * d * sizeof *db);
    REQUIRE(cs_tiny_describe(&m, th, n, db, &e) == 0);
    for (int j = 0; j < d; j++) CHECK(db[7 * d + j] == 0); /* the constant one: zero row */
    int nq = 40, hits = 0;
    uint8_t *q = malloc((size_t)nq * TB);
    for (int i = 0; i < nq; i++)
        for (int p = 0; p < TB; p++) {
            int v = th[(size_t)(i * 9) * TB + p] + 12 + (int)(ur() * 17) - 8;
            q[(size_t)i * TB + p] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    float *qd = malloc((size_t)nq * d * sizeof *qd), s[1];
    int64_t r[1];
    REQUIRE(cs_tiny_describe(&m, q, nq, qd, &e) == 0);
    for (int i = 0; i < nq; i++) {
        REQUIRE(cs_knn_exact(db, n, d, qd + (size_t)i * d, 1, 1, 1, s, r, &e) == 0);
        hits += r[0] == i * 9 && s[0] > 0.5f;
    }
    CHECKF(hits == nq, "%d of %d near-copies found their source", hits, nq);

    /* by id, a row's bits do not depend on the rows described with it: the
     * whole set in one call (ids 1..n) equals it cut at 3 odd places (as
     * ranks cut a store), and each row is within 1e-5 of the plain product */
    int64_t *ids = malloc((size_t)n * sizeof *ids);
    float *w1 = malloc((size_t)n * d * sizeof *w1), *w2 = malloc((size_t)n * d * sizeof *w2);
    REQUIRE(ids && w1 && w2);
    for (int i = 0; i < n; i++) ids[i] = i + 1;
    REQUIRE(cs_tiny_describe_ids(&m, th, ids, n, w1, &e) == 0);
    int cut[5] = {0, 13, 57, n - 21, n}, same = 1;
    for (int c = 0; c < 4; c++)
        REQUIRE(cs_tiny_describe_ids(&m, th + (size_t)cut[c] * TB, ids + cut[c], cut[c + 1] - cut[c],
                                     w2 + (size_t)cut[c] * d, &e) == 0);
    same = !memcmp(w1, w2, (size_t)n * d * sizeof *w1);
    double dmax = 0;
    for (size_t i = 0; i < (size_t)n * d; i++) dmax = fmax(dmax, fabs((double)w1[i] - db[i]));
    CHECKF(same && dmax < 1e-5, "describe by id: cut == whole %d, max diff to the plain product %.2e", same, dmax);
    free(ids), free(w1), free(w2);

    /* save / load round trip */
    char *dir = t_tmpdir("tiny");
    REQUIRE(dir);
    char p[4200];
    snprintf(p, sizeof p, "%s/t.safetensors", dir);
    REQUIRE(cs_tiny_save(&m, p, &e) == 0);
    cs_tinydesc m2;
    REQUIRE(cs_tiny_load(&m2, p, &e) == 0);
    CHECK(!memcmp(m.proj, m2.proj, (size_t)d * CS_TINY_IN * sizeof(float)));
    CHECK(!memcmp(m.mean, m2.mean, CS_TINY_IN * sizeof(float)));
    cs_tiny_free(&m2);
    REQUIRE(truncate(p, 1000) == 0);
    CHECK(cs_tiny_load(&m2, p, &e) == -1 && strstr(e.msg, p));
    unlink(p);
    rmdir(dir);
    free(dir);
    free(Y), free(db), free(q), free(qd), free(th);
    cs_tiny_free(&m);
}

static void test_small_sets(void) {
    /* fewer references than dimensions: zero rows, same dimension */
    uint8_t th[5 * TB];
    for (int i = 0; i < 5; i++) synth(th + i * TB);
    cs_tinydesc m;
    cs_err e = {0};
    REQUIRE(cs_tiny_learn(&m, th, 5, &e) == 0);
    int nz = 0;
    for (int r = 0; r < m.dim; r++) nz += m.proj[(size_t)r * CS_TINY_IN] != 0;
    CHECK(m.dim == CS_TINY_DIM && nz <= 5);
    cs_tiny_free(&m);
    memset(th, 10, 2 * TB);
    CHECK(cs_tiny_learn(&m, th, 2, &e) == -1 && strstr(e.msg, "at least 2"));
}

int main(void) {
    RUN(test_raw_invariances);
    RUN(test_learn_whitens_and_retrieves);
    RUN(test_small_sets);
    return T_DONE();
}
