/* test_analyze.c — tiled L2 (known answers, sgemm form vs direct), cliques
 * with planted near-duplicates (sgemm adjacency vs the scalar loop), the
 * A1111 parameters parser, settings, completion audits on rectangles and
 * masks with answers known by construction, and analysis errors on a store
 * (unknown run, empty run, a descriptor the index lacks). */
#include <math.h>
#include <stdint.h>

#include "analyze/analyze.h"
#include "analyze/clique.h"
#include "analyze/completion.h"
#include "analyze/match.h"
#include "analyze/verdict.h"
#include "core/store.h"
#include "index/tiled_l2.h"
#include "t.h"

#define BLOCKS_SEED 12345
#include "test_blocks_fixture.h" /* S, D, rnd, random_image */

static void test_tl2_known(void) {
    cs_tl2_cfg c = cs_tl2_default();
    static uint8_t a[D], b[D];
    static float pa[D], pb[D];
    memset(a, 0, D);
    memset(b, 0, D);
    /* tile 5 (row 1, col 1) white in b: that tile's distance is 1, others 0 */
    for (int y = 16; y < 32; y++) memset(b + (y * S + 16) * 3, 255, 16 * 3);
    cs_tl2_prepare(pa, NULL, a, &c);
    cs_tl2_prepare(pb, NULL, b, &c);
    float td[16];
    float d = cs_tl2_pair(td, pa, pb, &c);
    CHECK(fabsf(d - 1.0f) < 1e-6f);
    CHECK(fabsf(td[5] - 1.0f) < 1e-6f);
    for (int t = 0; t < 16; t++)
        if (t != 5) CHECK(td[t] == 0);
    /* a uniform shift of 51 grey levels is 0.2 in every tile */
    for (int i = 0; i < D; i++) b[i] = 51;
    cs_tl2_prepare(pb, NULL, b, &c);
    d = cs_tl2_pair(td, pa, pb, &c);
    CHECK(fabsf(d - 0.2f) < 1e-5f);
    CHECK(fabsf(td[0] - 0.2f) < 1e-5f && fabsf(td[15] - 0.2f) < 1e-5f);
    /* per-channel standardisation removes a gain and offset per channel */
    random_image(a);
    for (int i = 0; i < D; i++) b[i] = (uint8_t)(a[i] / 2 + 40);
    c.norm = CS_TL2_CHANNEL;
    cs_tl2_prepare(pa, NULL, a, &c);
    cs_tl2_prepare(pb, NULL, b, &c);
    d = cs_tl2_pair(NULL, pa, pb, &c);
    CHECKF(d < 0.02f, "channel-normalised distance %g", d);
    c.grid = 5;
    cs_err err = {0};
    CHECK(cs_tl2_check(&c, &err) == -1 && strstr(err.msg, "does not divide"));
}

static void test_tl2_block_topk(void) {
    cs_tl2_cfg c = cs_tl2_default();
    enum { NA = 7, NB = 300, K = 5 };
    const int T = cs_tl2_tiles(&c);
    uint8_t *img = malloc((size_t)(NA + NB) * D);
    float *p = malloc(sizeof(float) * (NA + NB) * D), *n2 = malloc(sizeof(float) * (NA + NB) * T);
    for (int i = NA; i < NA + NB; i++) random_image(img + (size_t)i * D);
    for (int i = 0; i < NA + NB; i++) {
        if (i < NA) /* queries close to refs 10*i */
            for (int j = 0; j < D; j++) {
                int v = img[(size_t)(NA + 10 * i) * D + j] + (int)(rnd() % 7) - 3;
                img[(size_t)i * D + j] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        cs_tl2_prepare(p + (size_t)i * D, n2 + (size_t)i * T, img + (size_t)i * D, &c);
    }
    float *dm = malloc(sizeof(float) * NA * NB), *work = malloc(sizeof(float) * NA * NB);
    float *tiles = malloc(sizeof(float) * NA * NB * T);
    cs_tl2_block(dm, NB, tiles, p, n2, NA, p + (size_t)NA * D, n2 + (size_t)NA * T, NB, work, &c);
    float maxerr = 0;
    for (int i = 0; i < NA; i++)
        for (int j = 0; j < NB; j++) {
            float td[64];
            float ref = cs_tl2_pair(td, p + (size_t)i * D, p + (size_t)(NA + j) * D, &c);
            float e = fabsf(ref - dm[i * NB + j]);
            if (e > maxerr) maxerr = e;
            for (int t = 0; t < T; t++) {
                float e2 = fabsf(td[t] - tiles[((size_t)i * NB + j) * T + t]);
                if (e2 > maxerr) maxerr = e2;
            }
        }
    CHECKF(maxerr < 1e-3f, "sgemm vs direct: max error %g", maxerr);
    int32_t idx[NA * K];
    float dist[NA * K];
    cs_err err = {0};
    CHECK(cs_tl2_topk(idx, dist, K, p, n2, NA, p + (size_t)NA * D, n2 + (size_t)NA * T, NB, &c, &err) == 0);
    for (int i = 0; i < NA; i++) {
        CHECK(idx[i * K] == 10 * i);
        CHECK(dist[i * K] < 0.02f);
        for (int r = 1; r < K; r++) CHECK(dist[i * K + r] >= dist[i * K + r - 1]);
    }
    free(img);
    free(p);
    free(n2);
    free(dm);
    free(work);
    free(tiles);
}

static void test_render_crop(void) {
    static uint8_t a[D], b[D];
    random_image(a);
    cs_an_render_crop(b, a, S, 0, 0, S);
    CHECK(memcmp(a, b, D) == 0);
    /* box x0 = 32, y0 = 16, side 32: output (u, v) = (20, 10) samples
     * (32 + 20.5/2 - 0.5, 16 + 10.5/2 - 0.5) = (41.75, 20.75), inside one 8x8
     * block of the blocky image, so exactly that block's colour */
    cs_an_render_crop(b, a, S, 32, 16, 32);
    CHECK(memcmp(b + ((10 * S) + 20) * 3, a + (20 * S + 41) * 3, 3) == 0);
}

static void test_cliques_planted(void) {
    cs_tl2_cfg c = cs_tl2_default();
    enum { N = 80 };
    const int T = cs_tl2_tiles(&c);
    uint8_t *img = malloc((size_t)N * D);
    float *p = malloc(sizeof(float) * N * D), *n2 = malloc(sizeof(float) * N * T);
    /* items 0..11 near-duplicates of one image, 20..24 of another, rest random */
    static uint8_t base1[D], base2[D];
    random_image(base1);
    random_image(base2);
    for (int i = 0; i < N; i++) {
        const uint8_t *base = i < 12 ? base1 : (i >= 20 && i < 25) ? base2 : NULL;
        if (base)
            for (int j = 0; j < D; j++) {
                int v = base[j] + (int)(rnd() % 21) - 10;
                img[(size_t)i * D + j] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        else
            random_image(img + (size_t)i * D);
        cs_tl2_prepare(p + (size_t)i * D, n2 + (size_t)i * T, img + (size_t)i * D, &c);
    }
    uint8_t *a1 = malloc(N * N), *a2 = malloc(N * N);
    cs_err err = {0};
    CHECK(cs_cliques_adjacency(a1, p, n2, N, &c, 0.15f, &err) == 0);
    cs_cliques_adjacency_scalar(a2, p, N, &c, 0.15f);
    CHECK(memcmp(a1, a2, N * N) == 0);
    cs_cliques cl;
    REQUIRE(cs_cliques_find(&cl, p, n2, N, &c, 0.15f, &err) == 0);
    CHECK(cl.n_cliques == 2);
    CHECK(cl.edges == 12 * 11 / 2 + 5 * 4 / 2);
    int64_t g1 = cl.clique_of[0], g2 = cl.clique_of[20];
    CHECK(g1 >= 0 && g2 >= 0 && g1 != g2);
    if (g1 >= 0 && g2 >= 0) {
        CHECK(cl.start[g1 + 1] - cl.start[g1] == 12);
        CHECK(cl.start[g2 + 1] - cl.start[g2] == 5);
    }
    for (int i = 0; i < N; i++)
        if (i >= 12 && !(i >= 20 && i < 25)) CHECK(cl.clique_of[i] == -1);
    cs_cliques_free(&cl);
    free(a1);
    free(a2);
    free(img);
    free(p);
    free(n2);
}

static void test_a1111(void) {
    char *p;
    int64_t seed;
    CHECK(cs_parse_a1111("a photo of a cat\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, "
                         "CFG scale: 7, Seed: 1234567890123, Size: 512x512",
                         &p, &seed) == 0);
    CHECK(p && !strcmp(p, "a photo of a cat"));
    CHECK(seed == 1234567890123LL);
    free(p);
    CHECK(cs_parse_a1111("two\nlines\nSteps: 5, Seed: 7", &p, &seed) == 0);
    CHECK(p && !strcmp(p, "two\nlines") && seed == 7);
    free(p);
    CHECK(cs_parse_a1111("just a prompt", &p, &seed) == 0);
    CHECK(p && !strcmp(p, "just a prompt") && seed == -1);
    free(p);
    CHECK(cs_parse_a1111(NULL, &p, &seed) == -1);
}

static void test_settings(void) {
    cs_an_settings s;
    cs_an_settings_default(&s);
    CHECK(s.near_tl2 == 0.12 && s.clique_delta == 0.15 && s.clique_k == 10 && s.pdq_near == 31);
    cs_err err = {0};
    CHECK(cs_an_settings_set(&s, "copy_tl2=0.05", &err) == 0 && s.copy_tl2 == 0.05);
    CHECK(cs_an_settings_set(&s, "nope=1", &err) == -1 && strstr(err.msg, "unknown setting 'nope'"));
    CHECK(cs_an_settings_set(&s, "copy_tl2=abc", &err) == -1);
    char *j = cs_an_settings_json(&s);
    CHECK(j && strstr(j, "\"copy_tl2\":0.05") && strstr(j, "\"clique_k\":10"));
    free(j);
    CHECK(cs_verdict_parse("near-copy") == CS_V_NEAR && cs_verdict_parse("x") == -1);
}


/* A mask task whose answer is known by construction: references are blocky
 * random images; the mask (128 px, twice the thumbnail grid, so the resize
 * is exercised) withholds a disc; the completion pastes a chosen picture into
 * the disc over some other picture outside it. */
static void test_completion_mask(void) {
    enum { NR = 12, M = 128 };
    static uint8_t thumbs[NR * D], gen[D];
    int64_t ids[NR];
    for (int i = 0; i < NR; i++) {
        random_image(thumbs + (size_t)i * D);
        ids[i] = 100 + i;
    }
    cs_an_settings set;
    cs_an_settings_default(&set);
    cs_an_refs r;
    cs_err err = {0};
    REQUIRE(cs_an_refs_build(&r, NR, ids, thumbs, &set, &err) == 0);
    /* the mask: white (keep) with a black disc of radius 40 px at (64, 64) */
    cs_image mk = {0};
    REQUIRE(cs_image_alloc(&mk, M, M, &err) == 0);
    for (int y = 0; y < M; y++)
        for (int x = 0; x < M; x++) {
            double dx = x + 0.5 - 64, dy = y + 0.5 - 64;
            memset(mk.rgb + (y * M + x) * 3, dx * dx + dy * dy < 40.0 * 40.0 ? 0 : 255, 3);
        }
    static uint8_t wh[S * S];
    int n = cs_an_region_from_mask(wh, &mk, &err);
    /* a disc of radius 20 thumbnail pixels: pi r^2 = 1257, and the centre is in */
    CHECKF(abs(n - 1257) < 40, "withheld %d", n);
    CHECK(wh[32 * S + 32] == 1 && wh[0] == 0 && wh[32 * S + 10] == 0 && wh[32 * S + 14] == 1);
    const int orig = 3, other = 7, bg = 9;
    /* restored: the original inside the disc, another picture outside it
     * (the kept part does not count) -> copy of the original */
    for (int p = 0; p < S * S; p++)
        memcpy(gen + p * 3, thumbs + (size_t)(wh[p] ? orig : bg) * D + p * 3, 3);
    cs_an_completion c;
    cs_an_completion_audit(&c, &r, gen, orig, wh, &set);
    CHECKF(c.d_orig < 1e-6f && c.verdict == CS_V_COPY && c.restored, "d %g verdict %d", c.d_orig, c.verdict);
    CHECK(c.other_row >= 0 && c.other_row != orig && c.d_other > 0.1f);
    CHECK(c.n_withheld == n && c.n_tiles >= 4);
    CHECK(c.rect[0] == 12 && c.rect[1] == 12 && c.rect[2] == 40 && c.rect[3] == 40);
    /* slightly off (a few grey levels): near-copy or copy, still restored */
    for (int p = 0; p < S * S; p++)
        if (wh[p])
            for (int ch = 0; ch < 3; ch++) {
                int v = thumbs[(size_t)orig * D + p * 3 + ch] + ((p + ch) % 2 ? 20 : -20);
                gen[p * 3 + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    cs_an_completion_audit(&c, &r, gen, orig, wh, &set);
    CHECKF(c.restored && c.verdict >= CS_V_NEAR && c.d_orig > 0.01f, "d %g verdict %d", c.d_orig, c.verdict);
    /* the disc filled from ANOTHER reference: partial, of that reference */
    for (int p = 0; p < S * S; p++)
        memcpy(gen + p * 3, thumbs + (size_t)(wh[p] ? other : orig) * D + p * 3, 3);
    cs_an_completion_audit(&c, &r, gen, orig, wh, &set);
    CHECKF(c.verdict == CS_V_PARTIAL && c.other_row == other && c.d_other < 1e-6f && !c.restored,
           "verdict %d other %lld", c.verdict, (long long)c.other_row);
    /* the disc filled with flat grey: novel */
    for (int p = 0; p < S * S; p++)
        if (wh[p]) memset(gen + p * 3, 128, 3);
    cs_an_completion_audit(&c, &r, gen, orig, wh, &set);
    CHECK(c.verdict == CS_V_NOVEL && !c.restored && c.d_orig > set.near_tl2);
    /* the original outside the disc but not inside: not restored, although
     * the whole image is mostly the original */
    CHECK(c.d_orig > 0.1f);
    /* a twin of the original (same picture under another id) is not "other" */
    memcpy(thumbs + (size_t)5 * D, thumbs + (size_t)orig * D, D);
    cs_an_refs_free(&r);
    REQUIRE(cs_an_refs_build(&r, NR, ids, thumbs, &set, &err) == 0);
    for (int p = 0; p < S * S; p++)
        memcpy(gen + p * 3, thumbs + (size_t)(wh[p] ? orig : bg) * D + p * 3, 3);
    cs_an_completion_audit(&c, &r, gen, orig, wh, &set);
    CHECK(c.verdict == CS_V_COPY && c.other_row != 5 && c.other_row != orig);
    /* a mask that is a rectangle gives the rectangle's region */
    for (int y = 0; y < M; y++)
        for (int x = 0; x < M; x++) memset(mk.rgb + (y * M + x) * 3, x >= 64 && y >= 32 && y < 96 ? 0 : 255, 3);
    static uint8_t wr[S * S];
    const int rc4[4] = {64, 32, 64, 64};
    CHECK(cs_an_region_from_mask(wh, &mk, &err) == 32 * 32);
    CHECK(cs_an_region_from_rect(wr, rc4, M, M) == 32 * 32);
    CHECK(memcmp(wh, wr, sizeof wh) == 0);
    /* a region thinner than a quarter of any tile is measured as one */
    memset(wh, 0, sizeof wh);
    for (int x = 0; x < S; x++) wh[40 * S + x] = 1;
    for (int p = 0; p < S * S; p++)
        memcpy(gen + p * 3, thumbs + (size_t)(wh[p] ? orig : bg) * D + p * 3, 3);
    cs_an_completion_audit(&c, &r, gen, orig, wh, &set);
    CHECK(c.n_tiles == 0 && c.n_withheld == S && c.d_orig < 1e-6f && isfinite(c.d_other) && c.d_other > 0.05f);
    /* an empty region measures nothing */
    memset(wh, 0, sizeof wh);
    cs_an_completion_audit(&c, &r, gen, orig, wh, &set);
    CHECK(c.verdict == CS_V_NOVEL && isinf(c.d_orig));
    cs_image_free(&mk);
    cs_an_refs_free(&r);
}

static void test_store_errors(void) {
    char *dir = t_tmpdir("analyze");
    REQUIRE(dir);
    char db[4200];
    snprintf(db, sizeof db, "%s/a.db", dir);
    cs_store *s;
    cs_err err = {0};
    REQUIRE(cs_store_open(&s, db, &err) == 0);
    cs_analyze_opts o = {0};
    cs_an_settings_default(&o.set);
    cs_analyze_summary sum;
    o.run_id = 42;
    CHECK(cs_analyze_run(s, &o, &sum, &err) == -1);
    CHECKF(strstr(err.msg, "run 42: no such run") != NULL, "%s", err.msg);
    CHECK(cs_store_exec(s, "INSERT INTO runs(id, suite) VALUES(7, 'empty')", &err) == 0);
    o.run_id = 7;
    CHECK(cs_analyze_run(s, &o, &sum, &err) == -1);
    CHECKF(strstr(err.msg, "run 7: no generations to analyse") != NULL, "%s", err.msg);
    o.descriptors = "tl2,sscd";
    CHECK(cs_analyze_run(s, &o, &sum, &err) == -1);
    CHECKF(strstr(err.msg, "no 'tl2' descriptor") != NULL, "%s", err.msg);
    cs_store_close(s);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    free(dir);
}

int main(void) {
    RUN(test_tl2_known);
    RUN(test_tl2_block_topk);
    RUN(test_render_crop);
    RUN(test_cliques_planted);
    RUN(test_a1111);
    RUN(test_settings);
    RUN(test_completion_mask);
    RUN(test_store_errors);
    return T_DONE();
}
