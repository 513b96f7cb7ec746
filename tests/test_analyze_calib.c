/* test_analyze_calib.c — calibration of the verdicts on twemoji-64.
 *
 * Every 2nd emoji is indexed; the others are held out. Independent ground
 * truth: the images themselves (which reference a transformed copy was made
 * from), and, for "not in the index", a held-out image counts only when no
 * indexed image is the same picture — twemoji-64 has exact twins under other
 * code points (family glyphs, France = Saint Martin, Norway = Bouvet Island),
 * and exact mirror images ("person walking facing right" is the mirror of
 * "person walking"), defined here as a plain whole-image RMS difference below
 * 0.03, as is or mirrored (counted in the output).
 * Transforms (made here with core/image.h and libjpeg): resize (to 40 px and
 * back), JPEG quality 60, colour shift (+20, -15, +10), crop (12.5% off the
 * borders, resized back), mirror. Claims tested:
 *   - transformed copies of references come out copy or near-copy of the
 *     right reference (recall per transform, asserted >= the floor below);
 *   - held-out images, transformed or not, are never "copy" (FP = 0);
 *   - near-copy false-positive rate per transform is printed. */
#include <stddef.h>
#include <stdio.h>

#include <jpeglib.h>
#include <math.h>
#include <stdint.h>

#include "analyze/match.h"
#include "analyze/verdict.h"
#include "core/image.h"
#include "index/refs.h"
#include "t.h"

#define S 64
#define DATA "../shared/data/twemoji-64/img"
#define MAXN 2000

static int n_all;
static uint8_t *all; /* [n_all][S*S*3] */
static cs_hashes *all_h;

static int load_all(void) {
    FILE *f = popen("ls " DATA " | sort", "r");
    if (!f) return -1;
    char name[512];
    all = malloc((size_t)MAXN * S * S * 3);
    all_h = malloc(sizeof(cs_hashes) * MAXN);
    while (fgets(name, sizeof name, f) && n_all < MAXN) {
        name[strcspn(name, "\n")] = 0;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", DATA, name);
        cs_image im = {0};
        cs_err err = {0};
        if (cs_image_load(&im, path, NULL, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            continue;
        }
        cs_image t = {0};
        if (im.w != S || im.h != S) {
            cs_image_resize(&t, &im, S, S, CS_RESIZE_AREA, &err);
            memcpy(all + (size_t)n_all * S * S * 3, t.rgb, S * S * 3);
            cs_image_free(&t);
        } else {
            memcpy(all + (size_t)n_all * S * S * 3, im.rgb, S * S * 3);
        }
        cs_hashes_compute(&im, &all_h[n_all], &err);
        cs_image_free(&im);
        n_all++;
    }
    pclose(f);
    return n_all > 100 ? 0 : -1;
}

static double rms(const uint8_t *a, const uint8_t *b) {
    double s = 0;
    for (int i = 0; i < S * S * 3; i++) {
        double d = (a[i] - b[i]) / 255.0;
        s += d * d;
    }
    return sqrt(s / (S * S * 3));
}

static int jpeg_roundtrip(cs_image *out, const cs_image *in, int quality) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    unsigned char *mem = NULL;
    unsigned long len = 0;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &mem, &len);
    c.image_width = (JDIMENSION)in->w;
    c.image_height = (JDIMENSION)in->h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = in->rgb + (size_t)c.next_scanline * in->w * 3;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    cs_err err = {0};
    int rc = cs_image_decode(out, mem, len, "jpeg", NULL, &err);
    free(mem);
    return rc;
}

enum { T_NONE, T_RESIZE, T_JPEG, T_COLOR, T_CROP, T_FLIP, NT };
static const char *tname[NT] = {"none", "resize", "jpeg60", "colour", "crop12", "mirror"};

/* Applies transform t to a 64 px RGB image; out is a decoded image (maybe other size). */
static int transform(cs_image *out, const uint8_t *rgb, int t) {
    cs_err err = {0};
    cs_image in = {0};
    if (cs_image_alloc(&in, S, S, &err)) return -1;
    memcpy(in.rgb, rgb, S * S * 3);
    int rc = 0;
    switch (t) {
    case T_NONE: *out = in; return 0;
    case T_RESIZE: {
        cs_image small = {0};
        rc = cs_image_resize(&small, &in, 40, 40, CS_RESIZE_AREA, &err) ||
             cs_image_resize(out, &small, S, S, CS_RESIZE_BICUBIC, &err);
        cs_image_free(&small);
        break;
    }
    case T_JPEG: rc = jpeg_roundtrip(out, &in, 60); break;
    case T_COLOR: {
        static const int sh[3] = {20, -15, 10};
        *out = in;
        for (int i = 0; i < S * S * 3; i++) {
            int v = out->rgb[i] + sh[i % 3];
            out->rgb[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        return 0;
    }
    case T_CROP: {
        cs_image c = {0};
        rc = cs_image_alloc(&c, 56, 56, &err);
        if (!rc) {
            for (int y = 0; y < 56; y++) memcpy(c.rgb + y * 56 * 3, in.rgb + ((y + 4) * S + 4) * 3, 56 * 3);
            rc = cs_image_resize(out, &c, S, S, CS_RESIZE_BICUBIC, &err);
        }
        cs_image_free(&c);
        break;
    }
    case T_FLIP:
        *out = in;
        cs_tl2_hflip_rgb(out->rgb, S);
        return 0;
    }
    cs_image_free(&in);
    return rc;
}

static cs_an_refs refs;
static int *ref_of;    /* all-index -> ref row, or -1 */
static int *twin_ref;  /* all-index of a held-out image -> a ref row with the same picture, or -1 */
static cs_an_settings set;

/* A reference row showing the same picture as rgb (whole-image RMS < 0.03,
 * as is or mirrored), or -1. Sums of squares with an early exit. */
static int twin_of(const uint8_t *rgb) {
    const int64_t lim = (int64_t)(0.03 * 0.03 * S * S * 3 * 255 * 255);
    uint8_t mir[S * S * 3];
    memcpy(mir, rgb, sizeof mir);
    cs_tl2_hflip_rgb(mir, S);
    for (int j = 0; j < refs.n; j++)
        for (int m = 0; m < 2; m++) {
            const uint8_t *a = m ? mir : rgb, *b = refs.thumbs + (size_t)j * S * S * 3;
            int64_t s2 = 0;
            int p = 0;
            for (; p < S * S * 3 && s2 <= lim; p++) s2 += (a[p] - b[p]) * (a[p] - b[p]);
            if (p == S * S * 3 && s2 < lim) return j;
        }
    return -1;
}

static void test_setup(void) {
    REQUIRE(load_all() == 0);
    int nr = (n_all + 1) / 2;
    int64_t *ids = malloc(sizeof(int64_t) * nr);
    uint8_t *th = malloc((size_t)nr * S * S * 3);
    int64_t *hid = malloc(sizeof(int64_t) * nr);
    cs_hashes *hh = malloc(sizeof(cs_hashes) * nr);
    ref_of = malloc(sizeof(int) * n_all);
    twin_ref = malloc(sizeof(int) * n_all);
    int r = 0;
    for (int i = 0; i < n_all; i++) {
        ref_of[i] = -1;
        if (i % 2) continue;
        ids[r] = 1000 + i;
        hid[r] = 1000 + i;
        hh[r] = all_h[i];
        memcpy(th + (size_t)r * S * S * 3, all + (size_t)i * S * S * 3, S * S * 3);
        ref_of[i] = r++;
    }
    cs_an_settings_default(&set);
    cs_err err = {0};
    /* CS_CALIB_SET="name=value,name=value" tries other thresholds */
    if (getenv("CS_CALIB_SET")) {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", getenv("CS_CALIB_SET"));
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
            REQUIRE(cs_an_settings_set(&set, tok, &err) == 0);
    }
    REQUIRE(cs_an_refs_build(&refs, r, ids, th, &set, &err) == 0);
    REQUIRE(cs_an_refs_set_hashes(&refs, hid, hh, r, &err) == 0);
    int twins = 0;
    for (int i = 0; i < n_all; i++) {
        twin_ref[i] = twin_of(all + (size_t)i * S * S * 3);
        if (i % 2 && twin_ref[i] >= 0) twins++;
    }
    printf("indexed %d of %d emoji; %d held-out images have a same-picture twin in the index "
           "(whole-image RMS < 0.03, as is or mirrored) and are not counted as 'not in the index'\n", r, n_all, twins);
    CHECK(twins < 60);
    free(ids);
    free(th);
    free(hid);
    free(hh);
}

/* Runs the matcher on the given emoji under transform t. For indexed ones
 * returns the recall (copy or near-copy of the right picture); for held-out
 * ones fills the false-positive counts. */
static void run_set(int t, int held, int step, int *n, int *n_copy, int *n_near, int *n_part,
                    int *n_right) {
    cs_an_query *q = malloc(sizeof(cs_an_query) * n_all);
    int *src = malloc(sizeof(int) * n_all);
    int nq = 0;
    cs_err err = {0};
    for (int i = held ? 1 : 0; i < n_all; i += 2 * step) {
        if (held && twin_ref[i] >= 0) continue;
        cs_image im = {0};
        if (transform(&im, all + (size_t)i * S * S * 3, t)) continue;
        /* held out, but the transform made it an indexed picture (a 12% crop
         * of "white medium square" is "white large square"): not counted */
        int is_twin = 0;
        if (held && im.w == S && im.h == S) is_twin = twin_of(im.rgb) >= 0;
        if (!is_twin && cs_an_query_init(&q[nq], &im, 1, &err) == 0) src[nq++] = i;
        cs_image_free(&im);
    }
    cs_an_result *res = malloc(sizeof(cs_an_result) * (nq ? nq : 1));
    *n = nq;
    *n_copy = *n_near = *n_part = *n_right = 0;
    if (cs_an_match_batch(&refs, q, nq, &set, 0, res, &err) == 0) {
        for (int j = 0; j < nq; j++) {
            int v = res[j].verdict;
            *n_copy += v == CS_V_COPY;
            if (held && v >= CS_V_NEAR && getenv("CS_DEBUG"))
                printf("  FP %s t=%d src=%d -> ref id %lld d_id %.4f mirrored %d rule %s\n", cs_verdict_name(v), t, src[j],
                       (long long)refs.ids[res[j].best.row], res[j].best.d_id, res[j].best.id_mirrored,
                       res[j].best.rule);
            *n_near += v == CS_V_NEAR;
            *n_part += v == CS_V_PARTIAL;
            if (!held && v >= CS_V_NEAR && res[j].has_best) {
                int row = res[j].best.row, own = ref_of[src[j]];
                /* the right picture: its own reference or an identical twin of it */
                if (row == own || rms(refs.thumbs + (size_t)row * S * S * 3,
                                      refs.thumbs + (size_t)own * S * S * 3) < 0.03)
                    (*n_right)++;
            }
        }
    } else {
        fprintf(stderr, "%s\n", err.msg);
    }
    free(res);
    free(q);
    free(src);
}

/* Misses allowed on a subsample of n images for a recall floor: the floors
 * are set for the default sample (n ~ 240); on the ASan subsample (n ~ 60) a
 * floor of 0.99 would allow no miss at all, and a detector exactly at the
 * floor would fail 45 % of the time. So the subsample allows the one-sided
 * 95 % binomial quantile of misses at rate 1 - floor. */
static int misses_allowed(int n, double floor) {
    double p = 1 - floor, pk = pow(floor, n), cdf = pk; /* P(X = 0) */
    int k = 0;
    while (cdf < 0.95 && k < n) {
        pk *= (double)(n - k) / (k + 1) * p / (1 - p);
        cdf += pk;
        k++;
    }
    return k;
}

static void test_calibration(void) {
    REQUIRE(refs.n > 0);
    /* recall floors per transform, set a little under what we measure so
     * that a regression fails; "none" must be perfect */
    static const double floor_recall[NT] = {1.0, 0.99, 0.97, 0.99, 0.90, 0.99};
    const int step = getenv("CS_ASAN") ? 16 : getenv("CS_CALIB_FULL") ? 1 : 4;
    printf("%-8s %28s | %s\n", "", "indexed (transformed copies)", "held out (not in the index)");
    printf("%-8s %6s %6s %6s %8s | %6s %7s %7s %7s\n", "transform", "n", "copy", "near", "recall", "n",
           "FP copy", "FP near", "partial");
    for (int t = 0; t < NT; t++) {
        int n, c, nn, p, right, hn, hc, hnear, hp, hr;
        run_set(t, 0, step, &n, &c, &nn, &p, &right);
        run_set(t, 1, step, &hn, &hc, &hnear, &hp, &hr);
        double recall = n ? (double)right / n : 0;
        printf("%-9s %6d %6d %6d %7.1f%% | %6d %6.1f%% %6.1f%% %6.1f%%\n", tname[t], n, c, nn,
               100 * recall, hn, hn ? 100.0 * hc / hn : 0, hn ? 100.0 * hnear / hn : 0,
               hn ? 100.0 * hp / hn : 0);
        CHECKF(n > 40 && hn > 40, "%s: too few images", tname[t]);
        if (step > 4) /* a subsample: the floor with its binomial margin (misses_allowed) */
            CHECKF(n - right <= misses_allowed(n, floor_recall[t]), "%s: %d of %d missed, more than %d (floor %.3f)",
                   tname[t], n - right, n, misses_allowed(n, floor_recall[t]), floor_recall[t]);
        else
            CHECKF(recall >= floor_recall[t], "%s: recall %.3f below %.3f", tname[t], recall,
                   floor_recall[t]);
        CHECKF(hc == 0, "%s: %d held-out images called copy", tname[t], hc);
        if (t == T_NONE) CHECKF(c == n, "untransformed references: %d of %d copy", c, n);
    }
}

int main(void) {
    RUN(test_setup);
    RUN(test_calibration);
    cs_an_refs_free(&refs);
    free(all);
    free(all_h);
    free(ref_of);
    free(twin_ref);
    return T_DONE();
}
