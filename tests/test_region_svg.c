/* test_region_svg.c — the matched-region panel (reports/region_svg.h): the
 * polygons land where the evidence's coordinates put them, scaled by hand
 * here (a 64 px reference in the 192 px square: x3; a 400 x 200 generation:
 * x0.48, centred vertically under the 16 px gap), corners joined in order;
 * incomplete evidence draws nothing. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/image.h"
#include "reports/panels.h"
#include "reports/region_svg.h"
#include "t.h"

static const char *EV =
    "{\"inliers\":12,\"coverage\":0.25,\"ref_polygon\":[[10,10],[50,10],[50,40],[10,40]],"
    "\"gen_polygon\":[[200,50],[300,50],[300,125],[200,125]],\"ref_size\":[64,64],\"gen_size\":[400,200]}";

static void test_geometry(void) {
    cJSON *l = cJSON_Parse(EV);
    cs_buf b = {0};
    cs_region_panel(&b, "data:image/png;base64,AA", "data:image/png;base64,BB", l);
        REQUIRE(b.p != NULL);
    /* reference: x3, origin (0, 0) */
    CHECKF(strstr(b.p, "points=\"30.0,30.0 150.0,30.0 150.0,120.0 30.0,120.0\"") != NULL, "%s", b.p);
    /* generation: s = 192/400 = 0.48, x0 = 0, y0 = 192 + 16 + (192 - 96)/2 = 256 */
    CHECKF(strstr(b.p, "points=\"96.0,280.0 144.0,280.0 144.0,316.0 96.0,316.0\"") != NULL, "%s", b.p);
    CHECK(strstr(b.p, "<line x1=\"30.0\" y1=\"30.0\" x2=\"96.0\" y2=\"280.0\"") != NULL);
    CHECK(strstr(b.p, "12 keypoints verified") && strstr(b.p, "covers 25%"));
    cs_buf_free(&b);
    cs_buf d = {0};
    cs_region_panel(&d, NULL, "data:b", l); /* the reference's picture missing */
    CHECK(d.len == 0);
    /* no polygon, or a picture missing: nothing */
    cJSON_DeleteItemFromObject(l, "gen_polygon");
    cs_buf c = {0};
    cs_region_panel(&c, "data:a", "data:b", l);
    CHECK(c.len == 0);
    cs_region_panel(&c, NULL, "data:b", l);
    CHECK(c.len == 0);
    cs_buf_free(&c);
    cJSON_Delete(l);
}

/* the map from the generation to the reference, from the polygons: EV's
 * rectangle scaled by 2.5 and moved (by hand: x_r = 10 + 0.4 (x_g - 200),
 * y_r = 10 + 0.4 (y_g - 50)); a turned and mirrored parallelogram made from
 * a known map gives that map back; a flat polygon gives none */
static void test_gen_to_ref(void) {
    cJSON *l = cJSON_Parse(EV);
    double m[6], rs[2], gs[2];
    REQUIRE(cs_region_gen_to_ref(l, m, rs, gs));
    const double want[6] = {0.4, 0, -70, 0, 0.4, -10};
    for (int k = 0; k < 6; k++) CHECKF(fabs(m[k] - want[k]) < 1e-12, "m[%d] %g want %g", k, m[k], want[k]);
    CHECK(rs[0] == 64 && rs[1] == 64 && gs[0] == 400 && gs[1] == 200);
    cJSON_Delete(l);
    /* r = M g, M mirrored (det < 0) and turned by 20 degrees, scale 0.7 */
    const double c = 0.7 * cos(0.349), sn = 0.7 * sin(0.349);
    const double M[6] = {-c, sn, 120, sn, c, -15};
    const double g[4][2] = {{100, 40}, {180, 60}, {170, 150}, {90, 130}};
    char ev[512];
    int n = snprintf(ev, sizeof ev, "{\"ref_size\":[256,256],\"gen_size\":[300,300],\"gen_polygon\":[");
    for (int i = 0; i < 4; i++) n += snprintf(ev + n, sizeof ev - n, "%s[%.17g,%.17g]", i ? "," : "", g[i][0], g[i][1]);
    n += snprintf(ev + n, sizeof ev - n, "],\"ref_polygon\":[");
    for (int i = 0; i < 4; i++)
        n += snprintf(ev + n, sizeof ev - n, "%s[%.17g,%.17g]", i ? "," : "", M[0] * g[i][0] + M[1] * g[i][1] + M[2],
                      M[3] * g[i][0] + M[4] * g[i][1] + M[5]);
    snprintf(ev + n, sizeof ev - n, "]}");
    l = cJSON_Parse(ev);
    REQUIRE(l && cs_region_gen_to_ref(l, m, rs, gs));
    for (int k = 0; k < 6; k++) CHECKF(fabs(m[k] - M[k]) < 1e-9, "m[%d] %g want %g", k, m[k], M[k]);
    cJSON_Delete(l);
    l = cJSON_Parse("{\"ref_size\":[64,64],\"gen_size\":[64,64],\"gen_polygon\":[[0,0],[10,10],[20,20],[30,30]],"
                    "\"ref_polygon\":[[0,0],[10,0],[10,10],[0,10]]}");
    CHECK(!cs_region_gen_to_ref(l, m, rs, gs));
    cJSON_Delete(l);
}

/* The heatmap of a local-feature finding compares where the verified
 * geometry puts the reference: a 64 px reference pasted at (32, 32) of a
 * 128 px green canvas is equal there (the generation area-halved to 64 px
 * meets the reference sampled between its pixels: the same 2x2 means), and
 * the plain heatmap, which compares the whole canvas, is far from equal. */
static void test_geo_heatmap(void) {
    static uint8_t ref[64 * 64 * 3];
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++) {
            uint8_t *p = ref + (y * 64 + x) * 3;
            p[0] = (uint8_t)(4 * x), p[1] = (uint8_t)(4 * y), p[2] = (uint8_t)(2 * (x + y));
        }
    cs_image gen = {0};
    REQUIRE(cs_image_alloc(&gen, 128, 128, NULL) == 0);
    for (int i = 0; i < 128 * 128; i++) gen.rgb[i * 3] = 40, gen.rgb[i * 3 + 1] = 200, gen.rgb[i * 3 + 2] = 40;
    for (int y = 0; y < 64; y++) memcpy(gen.rgb + ((y + 32) * 128 + 32) * 3, ref + y * 64 * 3, 64 * 3);
    char path[] = "/tmp/cs-geo-heat-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    uint8_t *png;
    size_t len;
    cs_err err = {0};
    REQUIRE(cs_image_encode_png(&gen, NULL, 0, &png, &len, &err) == 0);
    FILE *f = fopen(path, "wb");
    REQUIRE(f && fwrite(png, 1, len, f) == len && fclose(f) == 0);
    free(png);
    cJSON *l = cJSON_Parse("{\"ref_size\":[64,64],\"gen_size\":[128,128],\"ref_polygon\":[[8,8],[56,8],[56,56],[8,56]],"
                           "\"gen_polygon\":[[40,40],[88,40],[88,88],[40,88]]}");
    cs_rpanels p = {.gen_path = path, .ref_rgb = ref, .rw = 64, .rh = 64};
    double rs[2], gs[2];
    REQUIRE((p.geo = cs_region_gen_to_ref(l, p.geo_map, rs, gs)));
    p.geo_ref_w = rs[0], p.geo_ref_h = rs[1], p.geo_gen_w = gs[0], p.geo_gen_h = gs[1];
    cs_rpanels_make(&p);
    CHECKF(p.diff_uri && p.mean_diff < 0.005, "geometry: mean %g", p.mean_diff);
    cs_rpanels_free(&p);
    p.geo = 0;
    cs_rpanels_make(&p);
    CHECKF(p.diff_uri && p.mean_diff > 0.15, "plain: mean %g", p.mean_diff);
    cs_rpanels_free(&p);
    cJSON_Delete(l);
    cs_image_free(&gen);
    unlink(path);
}

int main(void) {
    RUN(test_geometry);
    RUN(test_gen_to_ref);
    RUN(test_geo_heatmap);
    return T_DONE();
}
