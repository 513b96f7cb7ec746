/* test_analyze_local.c — the local-feature stage of `copyscope analyze` end
 * to end on real data (issue 13): an index of twemoji-64 references built
 * with index add's defaults; copies made here by known transforms — a crop
 * keeping 70 % of the area, a 10 degree rotation (the canvas grows), the
 * reference at 60 % of the side of a new canvas — must each be flagged with
 * their own reference (the embed as a partial copy by the local rule, its
 * polygon inside the canvas where it was pasted); emoji that are not in the
 * index must not be flagged; the analysis is the same at 1 and 3 threads.
 * Also the a-contrario NFA against a binomial tail summed directly. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "analyze/analyze.h"
#include "analyze/fuse.h"
#include "analyze/lf_verify.h"
#include "analyze/verdict.h"
#include "core/image.h"
#include "core/store.h"
#include "index/ingest.h"
#include "t.h"
#include "tests/test_findings_fixture.h"

#define IMG "../shared/data/twemoji-64/img/"

/* the copies' sources (detailed emoji) and emoji kept out of the index */
static const char *const SRC[3] = {"1f30d.png", "1f680.png", "1f3f0.png"}; /* globe, rocket, castle */
static const char *const UNREL[4] = {"1f34e.png", "1f697.png", "1f981.png", "2615.png"};

static void up256(cs_image *out, const char *name) {
    cs_err err = {0};
    char p[512];
    cs_image a = {0};
    snprintf(p, sizeof p, IMG "%s", name);
    if (cs_image_load(&a, p, NULL, &err) || cs_image_resize(out, &a, 256, 256, CS_RESIZE_BICUBIC, &err))
        fprintf(stderr, "%s: %s\n", p, err.msg);
    cs_image_free(&a);
}

/* dst (W x H, a vertical gradient) gets src scaled by s, rotated by deg
 * about its centre, its centre placed at (cx, cy); bilinear */
static void place(const cs_image *src, cs_image *dst, int W, int H, double s, double deg, double cx, double cy) {
    cs_err err = {0};
    if (cs_image_alloc(dst, W, H, &err)) return;
    double c = cos(deg * M_PI / 180), sn = sin(deg * M_PI / 180);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double u = x - cx, v = y - cy;
            double sx = (c * u + sn * v) / s + src->w / 2.0, sy = (-sn * u + c * v) / s + src->h / 2.0;
            uint8_t *o = dst->rgb + ((size_t)y * W + x) * 3;
            if (sx < 0 || sy < 0 || sx > src->w - 1 || sy > src->h - 1) {
                o[0] = (uint8_t)(40 + 150 * y / H), o[1] = 120, o[2] = (uint8_t)(200 - 100 * x / W);
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

static void crop(const cs_image *src, cs_image *dst, int x0, int y0, int side) {
    cs_err err = {0};
    if (cs_image_alloc(dst, side, side, &err)) return;
    for (int y = 0; y < side; y++) memcpy(dst->rgb + (size_t)y * side * 3, src->rgb + ((size_t)(y0 + y) * src->w + x0) * 3, (size_t)side * 3);
}

static void test_crop_rotate_embed(void) {
    cs_err err = {0};
    char dir[128], qdir[160], db[192], p[256];
    snprintf(dir, sizeof dir, "/tmp/cs_test_anlocal_%d", (int)getpid());
    snprintf(qdir, sizeof qdir, "%s/q", dir);
    snprintf(db, sizeof db, "%s/i.db", dir);
    mkdir(dir, 0700);
    mkdir(qdir, 0700);
    /* the queries: q0 crop, q1 rotation, q2 embed, q3..q6 unrelated */
    cs_image a = {0}, b = {0};
    up256(&a, SRC[0]);
    crop(&a, &b, 30, 12, 214); /* 214^2 / 256^2 = 70 % of the area */
    snprintf(p, sizeof p, "%s/q0.png", qdir);
    REQUIRE(cs_image_save_png(&b, p, NULL, 0, &err) == 0);
    cs_image_free(&a), cs_image_free(&b);
    up256(&a, SRC[1]);
    place(&a, &b, 300, 300, 1.0, 10, 150, 150);
    snprintf(p, sizeof p, "%s/q1.png", qdir);
    REQUIRE(cs_image_save_png(&b, p, NULL, 0, &err) == 0);
    cs_image_free(&a), cs_image_free(&b);
    up256(&a, SRC[2]);
    place(&a, &b, 400, 400, 0.6, 0, 270, 140); /* 154 px at (193..347, 63..217) */
    snprintf(p, sizeof p, "%s/q2.png", qdir);
    REQUIRE(cs_image_save_png(&b, p, NULL, 0, &err) == 0);
    cs_image_free(&a), cs_image_free(&b);
    for (int k = 0; k < 4; k++) {
        up256(&a, UNREL[k]);
        snprintf(p, sizeof p, "%s/q%d.png", qdir, 3 + k);
        REQUIRE(cs_image_save_png(&a, p, NULL, 0, &err) == 0);
        cs_image_free(&a);
    }
    /* the index, with index add's defaults (local features on) */
    char *refs[128];
    int nr = fx_twemoji_refs(IMG, SRC, 3, UNREL, 4, 5, NULL, refs, 128); /* none sharing a code point with the unrelated */
    REQUIRE(nr > 50);
    int64_t added = 0;
    cs_store *s = fx_index_refs(db, refs, nr, &added, &err);
    REQUIRE(s);
    CHECKF(added == nr, "%lld of %d added", (long long)added, nr);
    /* analyse at 1 and 3 threads */
    fx_row r[3][7];
    memset(r, 0, sizeof r);
    for (int t = 0; t < 3; t++) { /* 1 thread, 3 threads, and without the local stage */
        cs_analyze_opts o = {0};
        char *dirs[1] = {qdir};
        o.image_dirs = dirs;
        o.n_dirs = 1;
        o.threads = t == 1 ? 3 : 1;
        o.no_local_features = t == 2;
        cs_an_settings_default(&o.set);
        cs_analyze_summary sum;
        REQUIRE(cs_analyze_run(s, &o, &sum, &err) == 0);
        CHECKF((strstr(sum.descriptors, "local") != NULL) == (t < 2), "descriptors %s", sum.descriptors);
        CHECK(fx_read_findings(s, sum.run_id, NULL, r[t], 7) == 7);
    }
    for (int k = 0; k < 3; k++) {
        CHECKF(strcmp(r[0][k].verdict, "novel") && !strcmp(r[0][k].ref, SRC[k]), "q%d (%s): %s by %s, ref %s", k,
               SRC[k], r[0][k].verdict, r[0][k].rule, r[0][k].ref);
    }
    /* the rotation and the embed are beyond the pixel rules: only the local rule sees them */
    CHECKF(!strncmp(r[0][1].rule, "lf_", 3), "rotation flagged by %s", r[0][1].rule);
    CHECKF(!strcmp(r[0][2].verdict, "partial") && !strcmp(r[0][2].rule, "lf_partial"), "embed: %s by %s",
           r[0][2].verdict, r[0][2].rule);
    if (r[0][1].evidence) { /* the rotation's first neighbour is its source, with a fused z */
        cJSON *e = cJSON_Parse(r[0][1].evidence);
        cJSON *n0 = cJSON_GetArrayItem(cJSON_GetObjectItem(e, "neighbours"), 0);
        cJSON *src = cJSON_GetObjectItem(n0, "source"), *fz = cJSON_GetObjectItem(n0, "fused");
        CHECKF(src && strstr(src->valuestring, SRC[1]) && fz && fz->valuedouble > 2, "rotation's neighbour 0: %s",
               n0 ? cJSON_PrintUnformatted(n0) : "none");
        /* the fused score carries its scale and direction (a bare z read as a distance) */
        cJSON *fu = cJSON_GetObjectItem(n0, "fused_unit");
        CHECKF(cJSON_IsString(fu) && strstr(fu->valuestring, "-log10") && strstr(fu->valuestring, "higher"),
               "fused_unit: %s", cJSON_IsString(fu) ? fu->valuestring : "missing");
        cJSON_Delete(e);
    }
    if (r[0][2].evidence) { /* the generation's polygon lies where the reference was pasted */
        cJSON *e = cJSON_Parse(r[0][2].evidence);
        cJSON *gp = cJSON_GetObjectItem(cJSON_GetObjectItem(e, "local"), "gen_polygon");
        int inside = cJSON_GetArraySize(gp) == 4;
        for (int c = 0; c < cJSON_GetArraySize(gp); c++) {
            double x = cJSON_GetArrayItem(cJSON_GetArrayItem(gp, c), 0)->valuedouble;
            double y = cJSON_GetArrayItem(cJSON_GetArrayItem(gp, c), 1)->valuedouble;
            inside &= x >= 193 - 6 && x <= 347 + 6 && y >= 63 - 6 && y <= 217 + 6;
        }
        CHECKF(inside, "embed polygon %s", cJSON_PrintUnformatted(gp));
        cJSON_Delete(e);
    }
    /* the stage is what finds them: without it the rotation and the embed go unseen */
    CHECKF(!strcmp(r[2][1].verdict, "novel") && !strcmp(r[2][2].verdict, "novel"),
           "without local features: rotation %s, embed %s", r[2][1].verdict, r[2][2].verdict);
    for (int k = 3; k < 7; k++)
        CHECKF(!strcmp(r[0][k].verdict, "novel"), "unrelated q%d (%s): %s by %s, ref %s", k, UNREL[k - 3],
               r[0][k].verdict, r[0][k].rule, r[0][k].ref);
    for (int k = 0; k < 7; k++) {
        CHECKF(r[0][k].evidence && r[1][k].evidence && !strcmp(r[0][k].evidence, r[1][k].evidence),
               "q%d differs between 1 and 3 threads", k);
        free(r[0][k].evidence), free(r[1][k].evidence), free(r[2][k].evidence);
    }
    cs_store_close(s);
    for (int i = 0; i < nr; i++) free(refs[i]);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

/* log10 NFA against the tail summed term by term in long double */
static void test_nfa(void) {
    const int W = 256, H = 256;
    long double p = (long double)M_PI * 25 / (W * H);
    int cases[][2] = {{12, 3}, {20, 5}, {40, 10}, {160, 4}, {8, 8}};
    for (int c = 0; c < 5; c++) {
        int m = cases[c][0], k = cases[c][1], n = m - 2;
        long double tail = 0;
        for (int i = k - 2; i <= n; i++) {
            long double binom = 1;
            for (int j = 0; j < i; j++) binom = binom * (n - j) / (j + 1);
            tail += binom * powl(p, i) * powl(1 - p, n - i);
        }
        double want = (double)log10l(tail * m * (m - 1) / 2);
        double got = cs_lfv_log10_nfa1(m, k, W, H);
        CHECKF(fabs(got - want) < 1e-6 * (1 + fabs(want)), "m %d k %d: %.9f vs %.9f", m, k, got, want);
    }
    /* fewer than 2 inliers or matches: nothing is claimed (NFA 1) */
    CHECK(cs_lfv_log10_nfa1(1, 1, W, H) == 0);
    /* the PDQ null: P[Bin(256, 1/2) <= d], summed directly; x 1000 tests */
    for (int d = 0; d <= 100; d += 20) {
        long double sum = 0, binom = 1;
        for (int i = 0; i <= d; i++) {
            if (i) binom = binom * (256 - (i - 1)) / i;
            sum += binom;
        }
        double want = -(double)(log10l(sum) - 256 * log10l(2) + 3);
        if (want < 0) want = 0;
        double got = cs_fuse_z_pdq(d, 1000);
        CHECKF(fabs(got - want) < 1e-6 * (1 + want), "pdq %d: %.9f vs %.9f", d, got, want);
    }
    CHECK(cs_fuse_z_pdq(128, 1) < 0.5 && cs_fuse_z_nfa(-12.5) == 12.5 && cs_fuse_z_nfa(0.3) == 0);
}

int main(void) {
    RUN(test_nfa);
    RUN(test_crop_rotate_embed);
    return T_DONE();
}
