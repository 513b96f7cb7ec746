/* test_match_rotate.c — rotated copies (issue 13: "rotation within +-15
 * degrees tolerated"), analyze/match.h's derotated views, each against an
 * independent reference:
 *  - cs_an_derotate undoes a rotation with the canvas grown: the view of a
 *    smooth picture turned by 10 degrees (drawn here from its formula, not
 *    with our code) is the picture's own thumbnail within a few levels;
 *  - a rotated copy is found at rank 1 as a near-copy (not a copy) of its
 *    source, among references that are other pictures of the same kind (as
 *    is, its tiled L2 is beyond every copy bound: the check fails without
 *    the views); the replaced-part veto compares it through the view's map;
 *  - the tiled-L2 scan's list with the views joined equals a brute force
 *    (every reference at its smallest exact distance over the views), and
 *    two shards merged equal the whole (the same at any rank count);
 *  - the batch gives the same results at 1 and 2 threads. */
#include <stdint.h>

#include "analyze/an_part.h"
#include "analyze/match.h"
#include "analyze/settings.h"
#include "analyze/verdict.h"
#include "core/image.h"
#include "t.h"

#define S 64
#define D (S * S * 3)
#define PI 3.14159265358979323846

static uint32_t rng = 4242;
static double urand(void) {
    rng = rng * 1664525u + 1013904223u;
    return (rng >> 8) / 16777216.0;
}

/* a smooth picture: four coloured Gaussian blobs on a light ground, as a
 * formula over [0,1]^2 (so a rotation is drawn without resampling) */
typedef struct {
    double x[4], y[4], s[4], c[4][3];
} blobs;

static void blobs_random(blobs *b) {
    for (int i = 0; i < 4; i++) {
        b->x[i] = 0.2 + 0.6 * urand(), b->y[i] = 0.2 + 0.6 * urand(), b->s[i] = 0.08 + 0.1 * urand();
        for (int c = 0; c < 3; c++) b->c[i][c] = 255 * urand();
    }
}

static void blobs_at(const blobs *b, double x, double y, double *rgb) {
    for (int c = 0; c < 3; c++) rgb[c] = 230;
    for (int i = 0; i < 4; i++) {
        double dx = x - b->x[i], dy = y - b->y[i], w = exp(-(dx * dx + dy * dy) / (2 * b->s[i] * b->s[i]));
        for (int c = 0; c < 3; c++) rgb[c] = rgb[c] * (1 - w) + b->c[i][c] * w;
    }
}

/* the picture (side n px) turned by deg degrees about its centre, the canvas
 * grown to hold it (W = H = n (|cos| + |sin|)), the corners filled with fill,
 * then area-resized to the 64 px thumbnail as the analysis does */
static void rotated_thumb(uint8_t *out, const blobs *b, int n, double deg, const uint8_t fill[3]) {
    double t = deg * PI / 180, c = cos(t), s = sin(t);
    int W = (int)lround(n * (fabs(c) + fabs(s)));
    cs_image img = {0}, th = {0};
    cs_err err = {0};
    if (cs_image_alloc(&img, W, W, &err)) exit(1);
    for (int y = 0; y < W; y++)
        for (int x = 0; x < W; x++) {
            /* the canvas point back in the picture: turned by -t about the centres */
            double qx = x + 0.5 - W / 2.0, qy = y + 0.5 - W / 2.0;
            double px = c * qx + s * qy + n / 2.0, py = -s * qx + c * qy + n / 2.0;
            uint8_t *o = img.rgb + ((size_t)y * W + x) * 3;
            if (px < 0 || py < 0 || px >= n || py >= n) {
                memcpy(o, fill, 3);
                continue;
            }
            double rgb[3];
            blobs_at(b, px / n, py / n, rgb);
            for (int k = 0; k < 3; k++) o[k] = (uint8_t)lround(rgb[k]);
        }
    if (cs_image_resize(&th, &img, S, S, CS_RESIZE_AREA, &err)) exit(1);
    memcpy(out, th.rgb, D);
    cs_image_free(&img);
    cs_image_free(&th);
}

static double mean_abs(const uint8_t *a, const uint8_t *b) {
    double s = 0;
    for (int i = 0; i < D; i++) s += abs((int)a[i] - (int)b[i]);
    return s / D;
}

static void test_derotate_undoes_a_turn(void) {
    static const uint8_t fill[3] = {200, 30, 160};
    for (int trial = 0; trial < 4; trial++) {
        blobs b;
        blobs_random(&b);
        uint8_t own[D], turned[D], view[D];
        rotated_thumb(own, &b, 256, 0, fill);
        double deg = trial % 2 ? -12.5 : 7.5;
        rotated_thumb(turned, &b, 256, deg, fill);
        REQUIRE(cs_an_derotate(view, turned, 0, 0, (float)deg) == 0);
        double e_view = mean_abs(view, own), e_as_is = mean_abs(turned, own);
        CHECKF(e_view < 4.0, "trial %d (%g deg): derotated view off by %.2f levels", trial, deg, e_view);
        CHECKF(e_as_is > 3 * e_view, "trial %d: as is %.2f, view %.2f", trial, e_as_is, e_view);
        /* the other sign does not undo it */
        REQUIRE(cs_an_derotate(view, turned, 0, 0, (float)-deg) == 0);
        CHECKF(mean_abs(view, own) > 2 * e_view, "trial %d: the wrong sign also fits", trial);
    }
    /* an image too elongated for the angle has no such rectangle */
    uint8_t t[D] = {0}, v[D];
    CHECK(cs_an_derotate(v, t, 1000, 100, 12.5f) == -1);
    CHECK(cs_an_derotate(v, t, 1000, 800, 12.5f) == 0);
}

enum { NR = 40 };
static uint8_t thumbs[NR * D];
static blobs pics[NR];

static void refs_setup(cs_an_refs *r, cs_an_settings *s) {
    int64_t ids[NR];
    static const uint8_t none[3] = {0, 0, 0};
    rng = 99;
    for (int i = 0; i < NR; i++) {
        blobs_random(&pics[i]);
        rotated_thumb(thumbs + (size_t)i * D, &pics[i], 128, 0, none);
        ids[i] = 10 + i;
    }
    cs_an_settings_default(s);
    cs_err err = {0};
    if (cs_an_refs_build(r, NR, ids, thumbs, s, &err)) exit(1);
}

/* queries: 0-3 rotated copies (+-6..14 degrees) of refs 3, 11, 22, 37; 4 an
 * exact copy of ref 5; 5 a new picture */
static void queries_setup(cs_an_query *q) {
    static const int src[4] = {3, 11, 22, 37};
    static const double ang[4] = {6.0, -9.0, 11.5, -14.0};
    static const uint8_t fill[4][3] = {{250, 20, 20}, {20, 20, 240}, {30, 200, 40}, {255, 255, 0}};
    memset(q, 0, sizeof(cs_an_query) * 6);
    for (int i = 0; i < 4; i++) rotated_thumb(q[i].thumb, &pics[src[i]], 128, ang[i], fill[i]);
    memcpy(q[4].thumb, thumbs + (size_t)5 * D, D);
    blobs nb;
    blobs_random(&nb);
    rotated_thumb(q[5].thumb, &nb, 128, 0, fill[0]);
}

static void test_rotated_copy_rank1(void) {
    cs_an_refs r;
    cs_an_settings s;
    refs_setup(&r, &s);
    static cs_an_query q[6];
    queries_setup(q);
    static const int src[4] = {3, 11, 22, 37};
    static cs_an_result res[6];
    cs_err err = {0};
    REQUIRE(cs_an_match_batch(&r, q, 6, &s, 1, res, &err) == 0);
    for (int i = 0; i < 4; i++) {
        REQUIRE(res[i].has_best);
        CHECKF(res[i].tl2[0].row == src[i], "query %d: tl2 list top %d, want %d", i, res[i].tl2[0].row, src[i]);
        CHECKF(res[i].best.row == src[i], "query %d: finding %d, want %d", i, res[i].best.row, src[i]);
        /* a near-copy, never a copy: a view is an alignment (d_al), and a
         * turned picture an edited one */
        CHECKF(res[i].verdict == CS_V_NEAR, "query %d: verdict %d (d_al %.3f)", i, res[i].verdict, res[i].best.d_al);
        CHECKF(cs_an_cand_derotated(&res[i].best) && res[i].best.d_id > s.copy_tl2,
               "query %d: d_al %.3f, view %.3f at %g deg, as is %.3f", i, res[i].best.d_al, res[i].best.d_rot,
               res[i].best.rot_deg, res[i].best.d_id);
        /* the list's score is the evidence's distance for the same pair */
        CHECKF(res[i].tl2[0].score == res[i].best.d_rot, "query %d: %g vs %g", i, res[i].tl2[0].score,
               res[i].best.d_rot);
        /* ... and the neighbour's scores carry it (evidence.c writes them as
         * tl2 and tl2_derotated, so the list's score is one of them) */
        int at = -1;
        for (int m = 0; m < res[i].n_nb; m++)
            if (res[i].nb[m].row == src[i]) at = m;
        CHECKF(at >= 0 && res[i].nb[at].d_rot == res[i].tl2[0].score && res[i].nb[at].rot_deg == res[i].best.rot_deg,
               "query %d: neighbour %d", i, at);
    }
    /* the replaced-part veto compares through the view's map: the turned
     * copy's cells are explained, no part replaced (measured unaligned, most
     * cells differ) */
    for (int i = 0; i < 4; i++) {
        cs_an_cand c = res[i].best;
        c.part_al.measured = 0;
        cs_an_part_al(&c, &r, &q[i], &s);
        CHECKF(c.part_al.cells > 0 && 4 * c.part_al.differ < c.part_al.cells && !c.part_al.replaced,
               "query %d: %d of %d cells differ, replaced %d", i, c.part_al.differ, c.part_al.cells,
               c.part_al.replaced);
    }
    CHECK(res[4].best.row == 5 && res[4].verdict == CS_V_COPY && res[4].best.rot_deg == 0);
    CHECK(res[5].verdict < CS_V_PARTIAL);
    cs_an_refs_free(&r);
}

static int hit_cmp(cs_an_hit a, cs_an_hit b) {
    return a.score < b.score || (a.score == b.score && a.row < b.row);
}

/* the as-is list (raw list 0, row 2i): brute force over every reference at
 * its smallest exact distance among as is and the views, and two shards */
static void test_scan_join_brute_and_shards(void) {
    cs_an_refs r;
    cs_an_settings s;
    refs_setup(&r, &s);
    static cs_an_query q[6];
    queries_setup(q);
    const int k = 8, nq = 6;
    cs_err err = {0};
    int64_t len = cs_an_raw_len(nq, k);
    cs_an_hit *whole = malloc(sizeof *whole * (size_t)len), *a = malloc(sizeof *a * (size_t)len),
              *b = malloc(sizeof *b * (size_t)len);
    REQUIRE(whole && a && b);
    cs_an_raw_clear(whole, nq, k);
    cs_an_raw_clear(a, nq, k);
    cs_an_raw_clear(b, nq, k);
    REQUIRE(cs_an_scan_rows(&r, 0, NR, NULL, q, nq, k, CS_AN_SCAN_PIX, 1, whole, &err) == 0);
    REQUIRE(cs_an_scan_rows(&r, 0, 17, NULL, q, nq, k, CS_AN_SCAN_PIX, 2, a, &err) == 0);
    REQUIRE(cs_an_scan_rows(&r, 17, NR, NULL, q, nq, k, CS_AN_SCAN_PIX, 1, b, &err) == 0);
    cs_an_raw_merge(a, b, 2 * CS_AN_NLIST * nq, k);
    int same = 1;
    for (int64_t j = 0; j < len; j++) same &= whole[j].row == a[j].row && whole[j].score == a[j].score;
    CHECK(same);
    const int Dp = cs_tl2_dim(&r.cfg);
    float *qp = malloc(sizeof(float) * (size_t)Dp), *rp = malloc(sizeof(float) * (size_t)Dp);
    REQUIRE(qp && rp);
    for (int i = 0; i < nq; i++) {
        cs_an_hit best[NR];
        for (int j = 0; j < NR; j++) best[j] = (cs_an_hit){j, INFINITY};
        for (int v = -1; v < CS_AN_NROT; v++) {
            uint8_t view[D];
            if (v < 0) memcpy(view, q[i].thumb, D);
            else REQUIRE(cs_an_derotate(view, q[i].thumb, 0, 0, cs_an_rot_deg[v]) == 0);
            cs_tl2_prepare(qp, NULL, view, &r.cfg);
            for (int j = 0; j < NR; j++) {
                cs_tl2_prepare(rp, NULL, thumbs + (size_t)j * D, &r.cfg);
                float d = cs_tl2_pair(NULL, qp, rp, &r.cfg);
                if (d < best[j].score) best[j].score = d;
            }
        }
        for (int t = 0; t < k; t++) { /* selection of the t-th by (distance, row) */
            int m = t;
            for (int j = t + 1; j < NR; j++)
                if (hit_cmp(best[j], best[m])) m = j;
            cs_an_hit h = best[m];
            best[m] = best[t];
            best[t] = h;
            const cs_an_hit *got = whole + (int64_t)(2 * i) * k + t;
            CHECKF(got->row == h.row && fabsf(got->score - h.score) <= 1e-5f * (1 + h.score),
                   "query %d, hit %d: scan %d %.6f, brute force %d %.6f", i, t, got->row, got->score, h.row, h.score);
        }
    }
    free(qp), free(rp), free(whole), free(a), free(b);
    cs_an_refs_free(&r);
}

static void test_same_at_1_and_2_threads(void) {
    cs_an_refs r;
    cs_an_settings s;
    refs_setup(&r, &s);
    static cs_an_query q[6];
    queries_setup(q);
    static cs_an_result r1[6], r2[6];
    cs_err err = {0};
    REQUIRE(cs_an_match_batch(&r, q, 6, &s, 1, r1, &err) == 0);
    REQUIRE(cs_an_match_batch(&r, q, 6, &s, 2, r2, &err) == 0);
    for (int i = 0; i < 6; i++) {
        CHECK(r1[i].verdict == r2[i].verdict && r1[i].best.row == r2[i].best.row);
        CHECK(!memcmp(&r1[i].best.d_id, &r2[i].best.d_id, sizeof(float)));
        CHECK(!memcmp(&r1[i].best.d_al, &r2[i].best.d_al, sizeof(float)));
        CHECK(r1[i].best.rot_deg == r2[i].best.rot_deg && r1[i].severity == r2[i].severity);
        CHECK(r1[i].n_tl2 == r2[i].n_tl2 && !memcmp(r1[i].tl2, r2[i].tl2, sizeof(cs_an_hit) * (size_t)r1[i].n_tl2));
        CHECK(r1[i].n_nb == r2[i].n_nb);
        for (int m = 0; m < r1[i].n_nb && m < r2[i].n_nb; m++) CHECK(r1[i].nb[m].row == r2[i].nb[m].row);
    }
    cs_an_refs_free(&r);
}

int main(void) {
    RUN(test_derotate_undoes_a_turn);
    RUN(test_rotated_copy_rank1);
    RUN(test_scan_join_brute_and_shards);
    RUN(test_same_at_1_and_2_threads);
    return T_DONE();
}
