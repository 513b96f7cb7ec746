/* test_localfeat.c — local features and their verification against answers
 * known by construction: a reference drawn into a new canvas by a known
 * similarity (rotation, scale, offset; then mirrored) must verify with that
 * transform, its region and coverage; records and the column file round-trip
 * within their documented quantisation; the vote index ranks a reference's
 * own keypoints first; the background calibration (analyze/fuse.h) against
 * a background whose tail probabilities are known in closed form; polygon
 * clipping against areas computed by hand; the records memory-mapped from
 * <db>.lfrec are the table's bytes (against cs_lf_load), rewritten when the
 * table changes, and in memory where the file cannot be written. */
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "analyze/fuse.h"
#include "analyze/lf_verify.h"
#include "core/image.h"
#include "core/store.h"
#include "index/ingest.h"
#include "index/localfeat.h"
#include "index/opencv_shim.h"
#include "index/tinydesc.h"
#include "t.h"

static const char *EMOJI = "../shared/data/twemoji-64/img/1f30d.png"; /* globe: detailed */

/* dst (W x H, background grey) gets src mapped by x' = s R(theta) x + t,
 * bilinear, sampled by the inverse map */
static void warp(const cs_image *src, cs_image *dst, int W, int H, double s, double deg, double tx, double ty) {
    cs_err err = {0};
    if (cs_image_alloc(dst, W, H, &err)) return;
    double c = cos(deg * M_PI / 180), sn = sin(deg * M_PI / 180);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double u = x - tx, v = y - ty;
            double sx = (c * u + sn * v) / s, sy = (-sn * u + c * v) / s; /* inverse rotation/scale */
            uint8_t *o = dst->rgb + ((size_t)y * W + x) * 3;
            if (sx < 0 || sy < 0 || sx > src->w - 1 || sy > src->h - 1) {
                o[0] = 90, o[1] = 140, o[2] = 200;
                continue;
            }
            int x0 = (int)sx, y0 = (int)sy, x1 = x0 + 1 < src->w ? x0 + 1 : x0, y1 = y0 + 1 < src->h ? y0 + 1 : y0;
            double fx = sx - x0, fy = sy - y0;
            for (int k = 0; k < 3; k++) {
                double a = src->rgb[((size_t)y0 * src->w + x0) * 3 + k], b = src->rgb[((size_t)y0 * src->w + x1) * 3 + k];
                double cc = src->rgb[((size_t)y1 * src->w + x0) * 3 + k], d = src->rgb[((size_t)y1 * src->w + x1) * 3 + k];
                o[k] = (uint8_t)lround((a * (1 - fx) + b * fx) * (1 - fy) + (cc * (1 - fx) + d * fx) * fy);
            }
        }
}

static void hflip(cs_image *m) {
    for (int y = 0; y < m->h; y++)
        for (int x = 0; x < m->w / 2; x++)
            for (int k = 0; k < 3; k++) {
                uint8_t *a = m->rgb + ((size_t)y * m->w + x) * 3 + k, *b = m->rgb + ((size_t)y * m->w + m->w - 1 - x) * 3 + k;
                uint8_t t = *a;
                *a = *b;
                *b = t;
            }
}

static void test_verify_known_similarity(void) {
    cs_err err = {0};
    cs_image e = {0}, ref = {0}, gen = {0};
    REQUIRE(cs_image_load(&e, EMOJI, NULL, &err) == 0);
    REQUIRE(cs_image_resize(&ref, &e, 256, 256, CS_RESIZE_BICUBIC, &err) == 0);
    /* the reference at 60 % scale, rotated 10 degrees, at (70, 40) of a 400 x 320 canvas */
    const double s = 0.6, deg = 10, tx = 70, ty = 40;
    warp(&ref, &gen, 400, 320, s, deg, tx, ty);
    REQUIRE(gen.rgb);
    static cs_lf_set r, q, qm, r2;
    REQUIRE(cs_lf_extract(&ref, CS_LF_REF_KP, 0, &r, &err) == 0);
    CHECKF(r.n >= 15, "%d reference keypoints", r.n);
    uint8_t rec[CS_LF_RECORD];
    cs_lf_pack(&r, rec);
    REQUIRE(cs_lf_unpack(rec, &r2, &err) == 0); /* verify on the stored form */
    REQUIRE(cs_lf_extract(&gen, CS_LF_QUERY_KP, 0, &q, &err) == 0);
    REQUIRE(cs_lf_extract(&gen, CS_LF_QUERY_KP, 1, &qm, &err) == 0);
    cs_lfv_match m;
    REQUIRE(cs_lfv_verify(&q, &qm, &r2, &m, &err) == 0);
    CHECKF(m.inliers >= 8 && !m.mirrored, "inliers %d mirrored %d", m.inliers, m.mirrored);
    /* the model, in working pixels: ref working = orig (256); query working = orig x 256/400 */
    const double k = 256.0 / 400;
    double th = atan2(m.m[3], m.m[0]) * 180 / M_PI, sc = sqrt(m.m[0] * m.m[0] + m.m[3] * m.m[3]);
    CHECKF(fabs(th - deg) < 2 && fabs(sc - s * k) < 0.03 * s * k, "theta %.2f scale %.3f", th, sc);
    /* the generation polygon is the reference polygon under the true map (original px) */
    double c = cos(deg * M_PI / 180), sn = sin(deg * M_PI / 180);
    for (int i = 0; i < 4; i++) {
        double x = m.ref_poly[i][0], y = m.ref_poly[i][1];
        double gx = s * (c * x - sn * y) + tx, gy = s * (sn * x + c * y) + ty;
        CHECKF(fabs(gx - m.gen_poly[i][0]) < 4 && fabs(gy - m.gen_poly[i][1]) < 4, "corner %d: %.1f,%.1f vs %.1f,%.1f",
               i, m.gen_poly[i][0], m.gen_poly[i][1], gx, gy);
    }
    double cover = s * s * 256 * 256 / (400.0 * 320);
    CHECKF(fabs(m.coverage - cover) < 0.03 && m.partial, "coverage %.3f vs %.3f", m.coverage, cover);
    /* mirrored generation: verifies through the mirror, polygon mirrored back */
    hflip(&gen);
    REQUIRE(cs_lf_extract(&gen, CS_LF_QUERY_KP, 0, &q, &err) == 0);
    REQUIRE(cs_lf_extract(&gen, CS_LF_QUERY_KP, 1, &qm, &err) == 0);
    cs_lfv_match mm;
    REQUIRE(cs_lfv_verify(&q, &qm, &r2, &mm, &err) == 0);
    CHECKF(mm.mirrored && mm.inliers >= 8, "mirrored %d inliers %d", mm.mirrored, mm.inliers);
    for (int i = 0; i < 4; i++) {
        double x = mm.ref_poly[i][0], y = mm.ref_poly[i][1];
        double gx = 400 - (s * (c * x - sn * y) + tx), gy = s * (sn * x + c * y) + ty;
        CHECKF(fabs(gx - mm.gen_poly[i][0]) < 4 && fabs(gy - mm.gen_poly[i][1]) < 4, "mirrored corner %d", i);
    }
    /* an unrelated image does not verify with this many inliers */
    cs_image o = {0};
    REQUIRE(cs_image_load(&o, "../shared/data/twemoji-64/img/1f600.png", NULL, &err) == 0);
    REQUIRE(cs_lf_extract(&o, CS_LF_QUERY_KP, 0, &q, &err) == 0);
    REQUIRE(cs_lfv_verify(&q, NULL, &r2, &m, &err) == 0);
    CHECKF(m.inliers < 6, "unrelated: %d inliers", m.inliers);
    cs_image_free(&o);
    cs_image_free(&e);
    cs_image_free(&ref);
    cs_image_free(&gen);
}

/* cs_lf_mirror against a real extraction of the mirrored image: each derived
 * keypoint whose real counterpart is found at the same place (same size)
 * has its descriptor, and not the unpermuted one, nearest to it */
static void test_mirror_derived(void) {
    cs_image img;
    cs_err err = {0};
    if (cs_image_load(&img, EMOJI, NULL, &err)) {
        CHECK(0 && "load");
        return;
    }
    cs_lf_set *a = malloc(sizeof *a), *real = malloc(sizeof *real), *der = malloc(sizeof *der);
    CHECK(!cs_lf_extract(&img, CS_LF_QUERY_KP, 0, a, &err));
    CHECK(!cs_lf_extract(&img, CS_LF_QUERY_KP, 1, real, &err));
    cs_lf_mirror(a, der);
    CHECK(a->n > 20 && der->n == a->n);
    int paired = 0, nearest = 0, closer = 0;
    for (int i = 0; i < der->n; i++) {
        /* its counterpart: same place (within a tenth of its size: octaves
         * above the first are decimated off by one pixel under a mirror),
         * same size, same mirrored orientation */
        int best = -1;
        double bd = 1e30, tol = 0.5 + 0.1 * der->size[i];
        for (int k = 0; k < real->n; k++) {
            double dx = der->xy[i][0] - real->xy[k][0], dy = der->xy[i][1] - real->xy[k][1];
            double d = dx * dx + dy * dy;
            double da = fabs(fmod(der->angle[i] - real->angle[k] + 540.0, 360.0) - 180.0);
            if (d < bd && d < tol * tol && da < 15 && fabs(der->size[i] - real->size[k]) < 0.1 * der->size[i])
                bd = d, best = k;
        }
        if (best < 0) continue;
        paired++;
        /* nearest real descriptor to the derived one is its counterpart */
        double dn = 1e30, dp = 0, du = 0;
        int arg = -1;
        for (int k = 0; k < real->n; k++) {
            double d = 0;
            for (int j = 0; j < 128; j++) d += (double)(der->desc[i][j] - real->desc[k][j]) * (der->desc[i][j] - real->desc[k][j]);
            if (d < dn) dn = d, arg = k;
        }
        for (int j = 0; j < 128; j++) {
            dp += (double)(der->desc[i][j] - real->desc[best][j]) * (der->desc[i][j] - real->desc[best][j]);
            du += (double)(a->desc[i][j] - real->desc[best][j]) * (a->desc[i][j] - real->desc[best][j]);
        }
        nearest += arg == best || dn == dp;
        closer += dp * 4 < du; /* the permutation brings it at least 2x closer */
    }
    printf("  mirror: %d keypoints, %d paired with the real mirror's, %d nearest, %d 2x closer than unpermuted\n",
           der->n, paired, nearest, closer);
    CHECK(paired >= der->n * 6 / 10);
    CHECK(nearest >= paired * 9 / 10);
    CHECK(closer >= paired * 9 / 10);
    free(a);
    free(real);
    free(der);
    cs_image_free(&img);
}

/* cs_cv_sift (one pyramid) against the two-pass definition it replaced:
 * the same keypoints in the same order, descriptors within a few units (the
 * same bytes when a kept keypoint is from octave -1) */
static void test_sift_onepass(void) {
    cs_image img;
    cs_err err = {0};
    REQUIRE(cs_image_load(&img, EMOJI, NULL, &err) == 0);
    static uint8_t g[256 * 256], d1[CS_LF_QUERY_KP * 128], d2[CS_LF_QUERY_KP * 128];
    static cs_cv_kp k1[CS_LF_QUERY_KP], k2[CS_LF_QUERY_KP];
    cs_image r = {0};
    REQUIRE(cs_image_resize(&r, &img, 256, 256, CS_RESIZE_AUTO, &err) == 0);
    for (int i = 0; i < 256 * 256; i++) g[i] = r.rgb[3 * i + 1];
    for (int m = 10; m <= CS_LF_QUERY_KP; m *= 4) {
        int n1 = cs_cv_sift(g, 256, 256, 256, m, k1, d1, &err), n2 = cs_cv_sift_twopass(g, 256, 256, 256, m, k2, d2, &err);
        CHECKF(n1 == n2 && n1 > 0 && n1 <= m, "%d vs %d keypoints (max %d)", n1, n2, m);
        int same = 1, maxd = 0;
        for (int i = 0; i < n1 && i < n2; i++) {
            same &= k1[i].x == k2[i].x && k1[i].y == k2[i].y && k1[i].size == k2[i].size && k1[i].angle == k2[i].angle;
            for (int j = 0; j < 128; j++) maxd = abs(d1[i * 128 + j] - d2[i * 128 + j]) > maxd ? abs(d1[i * 128 + j] - d2[i * 128 + j]) : maxd;
        }
        CHECK(same);
        CHECKF(maxd <= 24, "descriptor bytes differ by %d", maxd);
    }
    cs_image_free(&r);
    cs_image_free(&img);
}

static void test_record_and_column(void) {
    cs_err err = {0};
    cs_image e = {0};
    REQUIRE(cs_image_load(&e, EMOJI, NULL, &err) == 0);
    static cs_lf_set a, b;
    REQUIRE(cs_lf_extract(&e, CS_LF_QUERY_KP, 0, &a, &err) == 0);
    CHECK(a.w == 256 && a.h == 256 && a.orig_w == 64);
    for (int i = 1; i < a.n; i++) CHECK(a.xy[i][0] >= 0 && a.xy[i][0] < 256);
    uint8_t rec[CS_LF_RECORD];
    cs_lf_pack(&a, rec);
    REQUIRE(cs_lf_unpack(rec, &b, &err) == 0);
    CHECK(b.n == (a.n < CS_LF_REF_KP ? a.n : CS_LF_REF_KP) && b.w == a.w && b.orig_h == a.orig_h);
    for (int i = 0; i < b.n; i++) {
        CHECK(fabsf(b.xy[i][0] - a.xy[i][0]) <= 1.0f / 128 && fabsf(b.xy[i][1] - a.xy[i][1]) <= 1.0f / 128);
        CHECK(fabsf(b.size[i] - fminf(a.size[i], 63.75f)) <= 0.125f);
        float da = fabsf(b.angle[i] - a.angle[i]);
        CHECK(fminf(da, 360 - da) <= 360.0f / 512 + 1e-3f);
        CHECK(!memcmp(b.desc[i], a.desc[i], 128));
    }
    rec[1] = 9;
    CHECK(cs_lf_unpack(rec, &b, &err) == -1 && err.code == CS_EFORMAT);
    rec[1] = 1;
    /* column round trip, then a truncated copy is refused */
    char path[64];
    snprintf(path, sizeof path, "/tmp/cs_test_lf_%d.col", (int)getpid());
    static uint8_t recs[3 * CS_LF_RECORD];
    for (int i = 0; i < 3; i++) memcpy(recs + i * CS_LF_RECORD, rec, CS_LF_RECORD);
    recs[CS_LF_RECORD + 100] ^= 1;
    const int64_t ids[3] = {5, 1LL << 40, 7};
    REQUIRE(cs_lf_col_write(path, 3, ids, recs, &err) == 0);
    int64_t n, *rid;
    uint8_t *rr;
    REQUIRE(cs_lf_col_read(path, &n, &rid, &rr, &err) == 0);
    CHECK(n == 3 && rid[1] == (1LL << 40) && rid[2] == 7 && !memcmp(rr, recs, sizeof recs));
    free(rid);
    free(rr);
    REQUIRE(truncate(path, 24 + 3 * 8 + 2 * CS_LF_RECORD) == 0);
    CHECK(cs_lf_col_read(path, &n, &rid, &rr, &err) == -1 && err.code == CS_EFORMAT && strstr(err.msg, "truncated"));
    unlink(path);
    cs_image_free(&e);
}

/* the vote index (exact below 4096 descriptors) against brute-force votes,
 * queries = 24 emoji resized to 80 % */
static void test_vote_index(void) {
    cs_err err = {0};
    static const char *names[] = {"1f30d", "1f600", "1f680", "1f431", "1f34e", "1f3e0", "1f697", "1f30b",
                                  "1f308", "1f381", "1f3b8", "1f40c", "1f41f", "1f426", "1f98a", "1f33b",
                                  "1f355", "1f3c0", "1f4f7", "1f4a1", "1f525", "1f3a8", "1f9f8", "1f6b2"};
    enum { N = 24 };
    static uint8_t recs[N * CS_LF_RECORD];
    static cs_lf_set qs[N];
    for (int i = 0; i < N; i++) {
        char p[128];
        snprintf(p, sizeof p, "../shared/data/twemoji-64/img/%s.png", names[i]);
        cs_image e = {0}, s = {0};
        REQUIRE(cs_image_load(&e, p, NULL, &err) == 0);
        static cs_lf_set a;
        REQUIRE(cs_lf_extract(&e, CS_LF_REF_KP, 0, &a, &err) == 0);
        cs_lf_pack(&a, recs + (size_t)i * CS_LF_RECORD);
        REQUIRE(cs_image_resize(&s, &e, 51, 51, CS_RESIZE_AREA, &err) == 0);
        REQUIRE(cs_lf_extract(&s, CS_LF_QUERY_KP, 0, &qs[i], &err) == 0);
        cs_image_free(&e);
        cs_image_free(&s);
    }
    cs_lf_index *ix;
    REQUIRE(cs_lf_index_build(&ix, N, recs, NULL, &err) == 0);
    cs_lf_vote v[N * 5];
    int nv[N];
    REQUIRE(cs_lf_retrieve(ix, qs, N, 5, v, nv, &err) == 0);
    /* brute force: the CS_LF_NN nearest stored descriptors of each query
     * keypoint, one vote per (keypoint, reference) */
    static cs_lf_set rs[N];
    for (int i = 0; i < N; i++) REQUIRE(cs_lf_unpack(recs + (size_t)i * CS_LF_RECORD, &rs[i], &err) == 0);
    int top = 0;
    for (int i = 0; i < N; i++) {
        int votes[N] = {0};
        for (int k = 0; k < qs[i].n; k++) {
            int bd[CS_LF_NN], br[CS_LF_NN], nb = 0; /* sorted insertion of the nearest */
            for (int r = 0; r < N; r++)
                for (int j = 0; j < rs[r].n; j++) {
                    int d = 0;
                    for (int t = 0; t < 128; t++) d += (qs[i].desc[k][t] - rs[r].desc[j][t]) * (qs[i].desc[k][t] - rs[r].desc[j][t]);
                    int p = nb < CS_LF_NN ? nb++ : CS_LF_NN;
                    while (p > 0 && bd[p - 1] > d) {
                        if (p < CS_LF_NN) bd[p] = bd[p - 1], br[p] = br[p - 1];
                        p--;
                    }
                    if (p < CS_LF_NN) bd[p] = d, br[p] = r;
                }
            int seen[N] = {0};
            for (int t = 0; t < nb; t++)
                if (!seen[br[t]]++) votes[br[t]]++;
        }
        int best = 0;
        for (int r = 1; r < N; r++)
            if (votes[r] > votes[best]) best = r;
        CHECKF(nv[i] > 0 && v[i * 5].row == best && v[i * 5].votes == votes[best], "query %d: index %d (%d votes), brute %d (%d)",
               i, nv[i] ? v[i * 5].row : -1, nv[i] ? v[i * 5].votes : 0, best, votes[best]);
        top += best == i;
        for (int j = 1; j < nv[i]; j++) CHECK(v[i * 5 + j - 1].votes >= v[i * 5 + j].votes);
    }
    CHECKF(top >= N / 2, "%d of %d first", top, N); /* sanity: the votes find the source */
    cs_lf_index_free(ix);
}

static void test_fuse_known_tail(void) {
    cs_err err = {0};
    /* background 0, 1, ..., 999: P(bg >= s) = (1000 - ceil(s) + 1) / 1001 in the body */
    enum { N = 1000 };
    static float bgs[N];
    for (int i = 0; i < N; i++) bgs[i] = (float)i;
    cs_fuse_bg b;
    REQUIRE(cs_fuse_bg_fit(&b, bgs, N, &err) == 0);
    CHECK(fabs(cs_fuse_z(&b, 500) - -log10(501.0 / 1001)) < 1e-9);
    CHECK(fabs(cs_fuse_z(&b, -5) - -log10(1001.0 / 1001)) < 1e-9);
    /* u = 989 (99th percentile), excesses 1..10, uniform: the PWM fit (by
     * hand: a0 = 5.5, a1 = 165 / 90) is shape -1, scale 11, upper end 1000 */
    CHECK(b.u == 989 && fabs(b.beta - 11) < 1e-9 && fabs(b.xi - -1) < 1e-9);
    double z1 = cs_fuse_z(&b, 1000), z2 = cs_fuse_z(&b, 1011);
    CHECK(fabs(z1 - CS_FUSE_Z_CAP) < 1e-6 && fabs(z2 - z1 - 1) < 1e-6); /* the end, and past it in order */
    CHECK(fabs(cs_fuse_z(&b, 994.5f) - (-log10(10.0 / 1001) - log10(0.5))) < 1e-6); /* half way: survival 1/2 */
    double prev = -1;
    for (float s = -10; s < 1100; s += 0.5f) { /* monotone across the body/tail seam */
        double z = cs_fuse_z(&b, s);
        CHECK(z >= prev);
        prev = z;
    }
    /* a point mass (most local-feature scores are 0): no tail model, empirical */
    static float pm[N];
    for (int i = 0; i < N; i++) pm[i] = i < 995 ? 0 : 0.1f * (float)(i - 994);
    cs_fuse_bg c;
    REQUIRE(cs_fuse_bg_fit(&c, pm, N, &err) == 0);
    CHECK(c.beta == 0 && fabs(cs_fuse_z(&c, 0) - 0) < 1e-12 && fabs(cs_fuse_z(&c, 0.5f) - -log10(2.0 / 1001)) < 1e-9);
    cs_fuse_bg two[2] = {b, c};
    float s2[2] = {500, 0.5f};
    int w;
    double z = cs_fuse_z_max(two, s2, 2, &w);
    CHECK(w == 1 && fabs(z - -log10(2.0 / 1001)) < 1e-9);
    float nan2[2] = {NAN, NAN};
    CHECK(cs_fuse_z_max(two, nan2, 2, &w) == 0 && w == -1);
    CHECK(fabs(cs_fuse_z_sum(two, s2, 2) - (-log10(501.0 / 1001) + -log10(2.0 / 1001))) < 1e-9);
    float half[2] = {500, NAN};
    CHECK(fabs(cs_fuse_z_sum(two, half, 2) - -log10(501.0 / 1001)) < 1e-9 && cs_fuse_z_sum(two, nan2, 2) == 0);
    CHECK(fabs(cs_fuse_flag_z(1000, 4, 0.01) - 5.60206) < 1e-4);
    CHECK(cs_fuse_bg_fit(&c, nan2, 2, &err) == -1);
    cs_fuse_bg_free(&b);
    cs_fuse_bg_free(&two[1]);
}

/* index add's hook: with local_features each reference gets the record that
 * extracting and packing the decoded file gives directly; without, none */
static void test_ingest_records(void) {
    cs_err err = {0};
    static const char *files[] = {"../shared/data/twemoji-64/img/1f30d.png", "../shared/data/twemoji-64/img/1f600.png",
                                  "../shared/data/twemoji-64/img/1f680.png"};
    for (int on = 0; on < 2; on++) {
        char db[64];
        snprintf(db, sizeof db, "/tmp/cs_test_lf_%d_%d.db", (int)getpid(), on);
        unlink(db);
        cs_store *s;
        REQUIRE(cs_store_open(&s, db, &err) == 0);
        cs_ingest_opts o = {.threads = 2, .local_features = on};
        cs_ingest_stats st;
        REQUIRE(cs_ingest_add(s, files, 3, &o, &st, &err) == 0);
        CHECK(st.added == 3);
        int64_t n, *ids;
        uint8_t *recs;
        REQUIRE(cs_lf_load(s, &n, &ids, &recs, &err) == 0);
        CHECKF(n == (on ? 3 : 0), "%lld records", (long long)n);
        for (int64_t i = 0; on && i < n; i++) {
            cs_image img = {0};
            static cs_lf_set a;
            uint8_t want[CS_LF_RECORD];
            REQUIRE(cs_image_load(&img, files[i], NULL, &err) == 0); /* ids follow the input order here */
            REQUIRE(cs_lf_extract(&img, CS_LF_REF_KP, 0, &a, &err) == 0);
            cs_lf_pack(&a, want);
            CHECKF(!memcmp(want, recs + i * CS_LF_RECORD, CS_LF_RECORD), "record %lld", (long long)i);
            cs_image_free(&img);
        }
        free(ids);
        free(recs);
        cs_store_close(s);
        unlink(db);
    }
}

/* cs_lf_records_open: the mapping holds the bytes cs_lf_load reads (and
 * their fingerprint), is mapped as it is when current, written again when a
 * record changed under the same id or the file is cut, and the records are
 * read into memory, the same bytes, where the file cannot be written (a
 * folder in its place: root ignores permissions) */
static void test_records_mapped(void) {
    cs_err err = {0};
    static const char *files[] = {"../shared/data/twemoji-64/img/1f30d.png", "../shared/data/twemoji-64/img/1f600.png",
                                  "../shared/data/twemoji-64/img/1f680.png"};
    char db[64];
    snprintf(db, sizeof db, "/tmp/cs_test_lfrec_%d.db", (int)getpid());
    unlink(db);
    cs_store *s;
    REQUIRE(cs_store_open(&s, db, &err) == 0);
    char *path = cs_store_sidecar(s, "lfrec"), note[512];
    unlink(path);
    cs_lf_records r;
    REQUIRE(cs_lf_records_open(s, &r, note, sizeof note, &err) == 0); /* empty store: nothing, no file */
    CHECK(r.n == 0 && !r.map && !r.recs && note[0] == 0 && access(path, F_OK) != 0);
    cs_lf_records_close(&r);
    cs_ingest_opts o = {.threads = 2, .local_features = 1};
    cs_ingest_stats st;
    REQUIRE(cs_ingest_add(s, files, 3, &o, &st, &err) == 0);
    int64_t n, *ids;
    uint8_t *recs;
    REQUIRE(cs_lf_load(s, &n, &ids, &recs, &err) == 0);
    REQUIRE(n == 3);
    unlink(path); /* as a store from before the file: the analysis writes it */
    REQUIRE(cs_lf_records_open(s, &r, note, sizeof note, &err) == 0);
    CHECKF(strstr(note, "records written to"), "%s", note);
    CHECK(r.n == n && r.map && !r.heap && !memcmp(r.ids, ids, sizeof *ids * (size_t)n) &&
          !memcmp(r.recs, recs, (size_t)CS_LF_RECORD * (size_t)n) && r.fp == cs_lf_fingerprint(n, ids, recs));
    struct stat a, b;
    CHECK(stat(path, &a) == 0 && a.st_size == (off_t)CS_LF_RECORD * (n + 1));
    CHECK(((uintptr_t)r.recs & (CS_LF_RECORD - 1)) == 0); /* one page per record */
    cs_lf_records_release(&r);
    CHECK(!memcmp(r.recs, recs, (size_t)CS_LF_RECORD * (size_t)n)); /* paged in again from the file */
    cs_lf_records_close(&r);
    /* current: mapped as it is, not written again */
    REQUIRE(cs_lf_records_open(s, &r, note, sizeof note, &err) == 0);
    CHECK(note[0] == 0 && r.map && stat(path, &b) == 0 && b.st_ino == a.st_ino);
    uint64_t fp0 = r.fp;
    cs_lf_records_close(&r);
    /* a record replaced under the same id: written again with the new bytes */
    char sql[160];
    snprintf(sql, sizeof sql, "UPDATE ref_localfeat SET rec = (SELECT rec FROM ref_localfeat WHERE ref_id = %lld) "
                              "WHERE ref_id = %lld",
             (long long)ids[2], (long long)ids[0]);
    REQUIRE(sqlite3_exec(cs_store_db(s), sql, NULL, NULL, NULL) == SQLITE_OK);
    REQUIRE(cs_lf_records_open(s, &r, note, sizeof note, &err) == 0);
    CHECKF(strstr(note, "records written to"), "%s", note);
    CHECK(r.map && r.fp != fp0 && !memcmp(r.recs, recs + 2 * CS_LF_RECORD, CS_LF_RECORD) &&
          !memcmp(r.recs + CS_LF_RECORD, recs + CS_LF_RECORD, 2 * CS_LF_RECORD));
    uint64_t fp1 = r.fp;
    cs_lf_records_close(&r);
    /* cut short: written again */
    REQUIRE(truncate(path, CS_LF_RECORD * 2) == 0);
    REQUIRE(cs_lf_records_open(s, &r, note, sizeof note, &err) == 0);
    CHECKF(strstr(note, "records written to") && r.map && r.fp == fp1, "%s", note);
    cs_lf_records_close(&r);
    /* not writable: the same bytes in memory */
    REQUIRE(unlink(path) == 0 && mkdir(path, 0700) == 0);
    REQUIRE(cs_lf_records_open(s, &r, note, sizeof note, &err) == 0);
    CHECKF(strstr(note, "in memory") && !r.map && r.heap && r.n == n && r.fp == fp1 &&
               !memcmp(r.recs, recs + 2 * CS_LF_RECORD, CS_LF_RECORD) &&
               !memcmp(r.recs + CS_LF_RECORD, recs + CS_LF_RECORD, 2 * CS_LF_RECORD),
           "%s", note);
    cs_lf_records_close(&r);
    rmdir(path);
    free(ids);
    free(recs);
    free(path);
    cs_store_close(s);
    unlink(db);
}

static void test_flag_quantile(void) {
    double z[200];
    for (int i = 0; i < 200; i++) z[i] = (double)((i * 37) % 200); /* 0..199 shuffled */
    /* alpha 1 %: 2 of 200 may exceed the threshold -> 197 (198 and 199 above) */
    CHECK(cs_fuse_flag_z_bg(z, 200, 1000, 4, 0.01) == 197);
    CHECK(cs_fuse_flag_z_bg(z, 200, 1000, 4, 0.005) == 198);
    /* too few to measure 1 %: the Bonferroni bound */
    CHECK(cs_fuse_flag_z_bg(z, 50, 1000, 4, 0.01) == cs_fuse_flag_z(1000, 4, 0.01));
}

/* regional tiny thumbnails: region r is the thumbnail of the crop cut by
 * hand; the mirror's region is the flipped crop of the mirrored offset; the
 * regional score is the brute-force best over the documented pairs */
static void test_tiny_regions(void) {
    cs_err err = {0};
    cs_image e = {0}, big = {0};
    REQUIRE(cs_image_load(&e, EMOJI, NULL, &err) == 0);
    REQUIRE(cs_image_resize(&big, &e, 200, 100, CS_RESIZE_BICUBIC, &err) == 0);
    static uint8_t q[CS_TINY_QREG * 64 * 64 * 3], qm[CS_TINY_QREG * 64 * 64 * 3], r[CS_TINY_RREG * 64 * 64 * 3];
    REQUIRE(cs_tiny_region_thumbs(&big, 0, 0, q, &err) == 0);
    REQUIRE(cs_tiny_region_thumbs(&big, 0, 1, qm, &err) == 0);
    REQUIRE(cs_tiny_region_thumbs(&big, 1, 0, r, &err) == 0);
    /* query region 8 = grid (2, 1): offset (0.2, 0.1) of the side, 60 % */
    cs_image c = {0};
    REQUIRE(cs_image_alloc(&c, 120, 60, &err) == 0);
    for (int y = 0; y < 60; y++) memcpy(c.rgb + (size_t)y * 120 * 3, big.rgb + ((size_t)(10 + y) * 200 + 40) * 3, 120 * 3);
    uint8_t t[64 * 64 * 3];
    REQUIRE(cs_tiny_thumb(&c, t, &err) == 0);
    CHECK(!memcmp(t, q + 8 * sizeof t, sizeof t));
    hflip(&c); /* the mirror image's region 8 is this crop of the flipped offset... */
    cs_image m = {0};
    REQUIRE(cs_image_alloc(&m, 200, 100, &err) == 0);
    memcpy(m.rgb, big.rgb, (size_t)200 * 100 * 3);
    hflip(&m);
    for (int y = 0; y < 60; y++) memcpy(c.rgb + (size_t)y * 120 * 3, m.rgb + ((size_t)(10 + y) * 200 + 40) * 3, 120 * 3);
    REQUIRE(cs_tiny_thumb(&c, t, &err) == 0);
    CHECK(!memcmp(t, qm + 8 * sizeof t, sizeof t)); /* ...of the mirrored image */
    CHECK(!memcmp(q, r, sizeof t));                  /* region 0 is the whole image on both sides */
    /* reference region 2 = corner (0, 0) at 85 % */
    cs_image_free(&c);
    REQUIRE(cs_image_alloc(&c, 170, 85, &err) == 0);
    for (int y = 0; y < 85; y++) memcpy(c.rgb + (size_t)y * 170 * 3, big.rgb + (size_t)y * 200 * 3, 170 * 3);
    REQUIRE(cs_tiny_thumb(&c, t, &err) == 0);
    CHECK(!memcmp(t, r + 2 * sizeof t, sizeof t));
    /* score: brute force over (query regions x ref whole) and (query whole x ref regions) */
    static float fq[3 * 4], fr[2 * 4];
    for (int i = 0; i < 12; i++) fq[i] = (float)((i * 7) % 5) - 2;
    for (int i = 0; i < 8; i++) fr[i] = (float)((i * 3) % 4) - 1.5f;
    float want = -1e30f;
    for (int i = 0; i < 3; i++) {
        float d = 0;
        for (int k = 0; k < 4; k++) d += fq[i * 4 + k] * fr[k];
        want = d > want ? d : want;
    }
    for (int j = 0; j < 2; j++) {
        float d = 0;
        for (int k = 0; k < 4; k++) d += fq[k] * fr[j * 4 + k];
        want = d > want ? d : want;
    }
    CHECK(cs_tiny_region_score(fq, 3, fr, 2, 4) == want);
    cs_image_free(&c);
    cs_image_free(&m);
    cs_image_free(&e);
    cs_image_free(&big);
}

static void test_clip_area(void) {
    const float sq[4][2] = {{-5, -5}, {5, -5}, {5, 5}, {-5, 5}}; /* quarter inside [0,10]^2 */
    CHECK(fabs(cs_lfv_clip_area(sq, 4, 10, 10) - 25) < 1e-9);
    const float in[4][2] = {{1, 1}, {4, 1}, {4, 3}, {1, 3}};
    CHECK(fabs(cs_lfv_clip_area(in, 4, 10, 10) - 6) < 1e-9);
    const float dia[4][2] = {{5, -5}, {15, 5}, {5, 15}, {-5, 5}}; /* diamond covering the square's inside */
    CHECK(fabs(cs_lfv_clip_area(dia, 4, 10, 10) - 100) < 1e-9);
    const float out[4][2] = {{20, 20}, {30, 20}, {30, 30}, {20, 30}};
    CHECK(cs_lfv_clip_area(out, 4, 10, 10) == 0);
}

/* cs_lf_dist2 (SIMD where cpuid has it) against the plain sum of squared
 * byte differences, on random descriptors, the extremes (0 vs 255 in every
 * bin: 128 x 255^2) and identical ones (0), for every count 0..40 */
static void test_dist2(void) {
    static uint8_t b[41][128];
    uint8_t a[128];
    uint64_t r = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < 41; i++)
        for (int j = 0; j < 128; j++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            b[i][j] = i == 0 ? 255 : i == 1 ? 0 : (uint8_t)(r >> 24);
        }
    memset(a, 0, sizeof a);
    int bad = 0, d[41];
    for (int n = 0; n <= 41; n++) {
        if (n == 41) memcpy(a, b[7], 128); /* then b[7] is at distance 0 */
        cs_lf_dist2(a, (const uint8_t (*)[128])b, n == 41 ? 41 : n, d);
        for (int i = 0; i < (n == 41 ? 41 : n); i++) {
            int s = 0;
            for (int j = 0; j < 128; j++) s += ((int)a[j] - b[i][j]) * ((int)a[j] - b[i][j]);
            bad += d[i] != s;
        }
    }
    CHECKF(bad == 0, "%d distances differ from the plain sum", bad);
    cs_lf_dist2(b[1], (const uint8_t (*)[128])b, 2, d);
    CHECK(d[0] == 128 * 255 * 255 && d[1] == 0);
}

int main(void) {
    RUN(test_dist2);
    RUN(test_verify_known_similarity);
    RUN(test_mirror_derived);
    RUN(test_sift_onepass);
    RUN(test_record_and_column);
    RUN(test_vote_index);
    RUN(test_fuse_known_tail);
    RUN(test_ingest_records);
    RUN(test_records_mapped);
    RUN(test_flag_quantile);
    RUN(test_tiny_regions);
    RUN(test_clip_area);
    return T_DONE();
}
