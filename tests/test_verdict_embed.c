/* test_verdict_embed.c — the embed_near rule against the pixels, on
 * twemoji-64 with the built-in tiny embedder.
 *
 * Every 2nd emoji is indexed (thumbnails, tiny PCA learned on them); the
 * others are held out. A held-out emoji is a different picture from every
 * indexed one (twins, whole-image RMS < 0.03 as is or mirrored, are left
 * out), so none of them is a copy: that is the independent ground truth.
 * For each held-out emoji its nearest indexed one by tiny-embedding cosine
 * (computed here by brute force) is handed to the matcher as the embedding
 * hit, as analyze.c does. Claims:
 *   - some distinct emoji pass embed_near (cosine >= 0.75) with pixels far
 *     apart (aligned tiled L2 > embed_confirm_tl2): the threshold, calibrated
 *     for SSCD, does not transfer to the tiny descriptor;
 *   - so a column whose embedder is not calibrated for embed_near (tiny,
 *     emb_calibrated 0 as analyze.c hands it: index/embed.h
 *     cs_embedder_calibrated) flags none of these pairs by embed_near, with
 *     or without thumbnails, while the evidence keeps its cosine; the
 *     claims below hand the same cosines in as a calibrated column's (an
 *     SSCD-like column, synthetic: the SSCD model is not in the tests), to
 *     test the rule's pixel check:
 *   - with thumbnails in the index none of them is a near-copy by
 *     embed_near (the pixels must confirm); with the check off
 *     (embed_confirm_tl2 = 10) they are, as before the check existed;
 *   - without thumbnails (hashes/embeddings only) the embedding alone still
 *     decides (nothing to confirm with);
 *   - edited copies of indexed emoji (JPEG q50 after a 3x3 blur, the kind
 *     of edit SSCD is trained to match) whose cosine passes embed_near are
 *     still found as copy or near-copy, >= 98 % of them; the price of the
 *     check is the few whose pixels end up beyond it (printed beside the
 *     figure with the check off). */
#include <stdio.h>

#include <jpeglib.h>
#include <math.h>
#include <stdint.h>

#include "analyze/match.h"
#include "analyze/verdict.h"
#include "core/image.h"
#include "index/tinydesc.h"
#include "t.h"

#define S 64
#define PX (S * S * 3)
#define DATA "../shared/data/twemoji-64/img"
#define MAXN 2000

static int n_all;
static uint8_t *all; /* [n_all][PX] */

static int load_all(void) {
    FILE *f = popen("ls " DATA " | sort", "r");
    if (!f) return -1;
    char name[512];
    all = malloc((size_t)MAXN * PX);
    while (all && fgets(name, sizeof name, f) && n_all < MAXN) {
        name[strcspn(name, "\n")] = 0;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", DATA, name);
        cs_image im = {0};
        cs_err err = {0};
        if (cs_image_load(&im, path, NULL, &err)) continue;
        if (!cs_tiny_thumb(&im, all + (size_t)n_all * PX, &err)) n_all++;
        cs_image_free(&im);
    }
    pclose(f);
    return n_all > 100 ? 0 : -1;
}

/* Whole-image RMS (pixels in [0,1]) below 0.03, as is or mirrored: the same picture. */
static int same_picture(const uint8_t *a, const uint8_t *b) {
    uint8_t mir[PX];
    memcpy(mir, a, PX);
    cs_tl2_hflip_rgb(mir, S);
    for (int m = 0; m < 2; m++) {
        const uint8_t *x = m ? mir : a;
        double s = 0;
        for (int p = 0; p < PX; p++) s += (double)(x[p] - b[p]) * (x[p] - b[p]);
        if (sqrt(s / PX) / 255.0 < 0.03) return 1;
    }
    return 0;
}

static int jpeg_roundtrip(uint8_t *out, const uint8_t *in, int quality) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    unsigned char *mem = NULL;
    unsigned long len = 0;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &mem, &len);
    c.image_width = c.image_height = S;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)in + (size_t)c.next_scanline * S * 3;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    cs_image im = {0};
    cs_err err = {0};
    int rc = cs_image_decode(&im, mem, len, "jpeg", NULL, &err);
    free(mem);
    if (!rc && (im.w != S || im.h != S)) rc = -1;
    if (!rc) memcpy(out, im.rgb, PX);
    cs_image_free(&im);
    return rc;
}

static void blur3(uint8_t *out, const uint8_t *in) {
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            for (int c = 0; c < 3; c++) {
                int s = 0, n = 0;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        int yy = y + dy, xx = x + dx;
                        if (yy < 0 || yy >= S || xx < 0 || xx >= S) continue;
                        s += in[(yy * S + xx) * 3 + c];
                        n++;
                    }
                out[(y * S + x) * 3 + c] = (uint8_t)((s + n / 2) / n);
            }
}

static float dot(const float *a, const float *b, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* The matcher's finding for each query (embedding hit already set). */
static int judge(const cs_an_refs *r, cs_an_query *q, int nq, const cs_an_settings *s, cs_an_result *res) {
    cs_err err = {0};
    int rc = cs_an_match_batch(r, q, nq, s, 2, res, &err);
    if (rc) fprintf(stderr, "match: %s\n", err.msg);
    return rc;
}

static void test_embed_near_needs_pixels(void) {
    REQUIRE(load_all() == 0);
    int nr = (n_all + 1) / 2, nh = n_all / 2;
    uint8_t *rth = malloc((size_t)nr * PX);
    int64_t *ids = malloc(sizeof(int64_t) * nr);
    REQUIRE(rth && ids);
    for (int r = 0; r < nr; r++) {
        memcpy(rth + (size_t)r * PX, all + (size_t)(2 * r) * PX, PX);
        ids[r] = 1 + r;
    }
    cs_err err = {0};
    cs_tinydesc tiny = {0};
    REQUIRE(cs_tiny_learn(&tiny, rth, nr, &err) == 0);
    const int dim = tiny.dim;
    float *rv = malloc(sizeof(float) * nr * dim), *hv = malloc(sizeof(float) * (nh + nr) * dim);
    uint8_t *hth = malloc((size_t)(nh + nr) * PX);
    REQUIRE(rv && hv && hth);
    REQUIRE(cs_tiny_describe(&tiny, rth, nr, rv, &err) == 0);

    cs_an_settings s;
    cs_an_settings_default(&s);
    cs_an_refs with = {0}, without = {0};
    REQUIRE(cs_an_refs_build(&with, nr, ids, rth, &s, &err) == 0);
    REQUIRE(cs_an_refs_build(&without, nr, ids, NULL, &s, &err) == 0);

    /* held-out emoji whose nearest indexed one by cosine passes embed_near */
    int nq = 0;
    cs_an_query *q = calloc((size_t)nh + nr, sizeof *q);
    REQUIRE(q);
    for (int h = 0; h < nh; h++) memcpy(hth + (size_t)h * PX, all + (size_t)(2 * h + 1) * PX, PX);
    REQUIRE(cs_tiny_describe(&tiny, hth, nh, hv, &err) == 0);
    for (int h = 0; h < nh; h++) {
        const uint8_t *img = hth + (size_t)h * PX;
        int best = -1, twin = 0;
        float bc = -2;
        for (int r = 0; r < nr; r++) {
            float c = dot(hv + (size_t)h * dim, rv + (size_t)r * dim, dim);
            if (c > bc) bc = c, best = r;
        }
        if (bc < s.embed_near) continue;
        for (int r = 0; r < nr && !twin; r++) twin = same_picture(img, rth + (size_t)r * PX);
        if (twin) continue;
        cs_an_query *x = &q[nq++];
        memcpy(x->thumb, img, PX);
        x->n_emb = 1;
        x->emb_row[0] = best;
        x->emb_cos[0] = bc;
    }
    printf("  %d of %d held-out emoji (distinct pictures) pass embed_near %.2f with the tiny embedder\n", nq, nh,
           s.embed_near);
    REQUIRE(nq > 0);
    cs_an_result *res = calloc((size_t)nq, sizeof *res);
    REQUIRE(res);

    /* the tiny column as analyze.c hands it (not calibrated for embed_near):
     * no pair flagged by embed_near, with thumbnails or without (where the
     * calibrated column's rule flags every one, below); the cosine is kept */
    for (int pass = 0; pass < 2; pass++) {
        REQUIRE(judge(pass ? &without : &with, q, nq, &s, res) == 0);
        int by_tiny = 0, best_emb = 0, kept = 0;
        for (int i = 0; i < nq; i++) {
            by_tiny += !strcmp(res[i].best.rule, "embed_near");
            if (res[i].best.row != q[i].emb_row[0]) continue;
            best_emb++;
            kept += res[i].best.emb_cos == q[i].emb_cos[0];
        }
        printf("  tiny column (uncalibrated), %s thumbnails: %d flagged by embed_near\n", pass ? "without" : "with",
               by_tiny);
        CHECKF(by_tiny == 0, "%s thumbnails: %d of %d", pass ? "without" : "with", by_tiny, nq);
        CHECKF(best_emb > 0 && kept == best_emb, "%d of %d cosines kept", kept, best_emb);
    }
    for (int i = 0; i < nq; i++) q[i].emb_calibrated = 1;

    /* with thumbnails: embed_near only where the pixels agree */
    REQUIRE(judge(&with, q, nq, &s, res) == 0);
    int by_embed = 0, far = 0;
    for (int i = 0; i < nq; i++) {
        if (res[i].best.row == q[i].emb_row[0] && res[i].best.d_al > s.embed_confirm_tl2) far++;
        if (res[i].verdict >= CS_V_NEAR && !strcmp(res[i].best.rule, "embed_near")) {
            by_embed++;
            CHECKF(res[i].best.d_al <= s.embed_confirm_tl2, "query %d: embed_near at tiled L2 %.3f", i,
                   res[i].best.d_al);
        }
    }
    printf("  with thumbnails: %d near-copies by embed_near (all within %.2f); %d far apart in pixels\n",
           by_embed, s.embed_confirm_tl2, far);
    CHECK(far > 0);

    /* the same without the pixel check: the far pairs become near-copies */
    cs_an_settings off = s;
    off.embed_confirm_tl2 = 10;
    REQUIRE(judge(&with, q, nq, &off, res) == 0);
    int far_near = 0;
    for (int i = 0; i < nq; i++)
        far_near += res[i].verdict >= CS_V_NEAR && !strcmp(res[i].best.rule, "embed_near") &&
                    res[i].best.d_al > s.embed_confirm_tl2;
    printf("  check off: %d distinct emoji judged near-copies by embed_near\n", far_near);
    CHECK(far_near > 0);

    /* no thumbnails: nothing to confirm with, the embedding decides */
    REQUIRE(judge(&without, q, nq, &s, res) == 0);
    int unconfirmed = 0;
    for (int i = 0; i < nq; i++)
        unconfirmed += res[i].verdict >= CS_V_NEAR && !strcmp(res[i].best.rule, "embed_near");
    CHECKF(unconfirmed == nq, "%d of %d", unconfirmed, nq);

    /* edited copies of indexed emoji (blur + JPEG q50): still found */
    int ne = 0;
    for (int r = 0; r < nr; r++) {
        uint8_t b[PX];
        blur3(b, rth + (size_t)r * PX);
        REQUIRE(jpeg_roundtrip(hth + (size_t)ne * PX, b, 50) == 0);
        ne++;
    }
    REQUIRE(cs_tiny_describe(&tiny, hth, ne, hv, &err) == 0);
    int nk = 0;
    for (int r = 0; r < ne; r++) {
        float c = dot(hv + (size_t)r * dim, rv + (size_t)r * dim, dim);
        if (c < s.embed_near) continue;
        cs_an_query *x = &q[nk];
        memset(x, 0, sizeof *x);
        memcpy(x->thumb, hth + (size_t)r * PX, PX);
        x->n_emb = 1;
        x->emb_row[0] = r;
        x->emb_cos[0] = c;
        x->emb_calibrated = 1;
        nk++;
    }
    cs_an_result *res2 = calloc((size_t)nk + 1, sizeof *res2);
    REQUIRE(res2);
    int found[2] = {0, 0}, via_embed = 0, missed_near = 0;
    for (int pass = 0; pass < 2; pass++) { /* 0: as set, 1: the pixel check off */
        REQUIRE(judge(&with, q, nk, pass ? &off : &s, res2) == 0);
        for (int i = 0; i < nk; i++) {
            int hit = res2[i].verdict >= CS_V_NEAR;
            found[pass] += hit;
            if (pass) continue;
            via_embed += hit && !strcmp(res2[i].best.rule, "embed_near");
            /* a miss is a copy whose pixels are beyond Carlini's delta of every reference */
            if (!hit) missed_near += res2[i].best.d_al <= s.embed_confirm_tl2;
        }
    }
    printf("  edited copies (cosine >= %.2f): %d of %d found as copy/near-copy (%d by embed_near); "
           "%d with the pixel check off\n",
           s.embed_near, found[0], nk, via_embed, found[1]);
    CHECK(nk > nr / 2);
    CHECK(via_embed > 0);
    CHECKF(found[0] >= 0.98 * nk, "%d of %d", found[0], nk);
    CHECKF(missed_near == 0, "%d misses within %.2f of a reference", missed_near, s.embed_confirm_tl2);

    free(res2);
    free(res);
    free(q);
    cs_an_refs_free(&with);
    cs_an_refs_free(&without);
    cs_tiny_free(&tiny);
    free(rv);
    free(hv);
    free(hth);
    free(rth);
    free(ids);
    free(all);
}

int main(void) {
    RUN(test_embed_near_needs_pixels);
    return T_DONE();
}
