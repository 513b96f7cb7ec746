/* test_region_svg.c — the matched-region panel (reports/region_svg.h): the
 * polygons land where the evidence's coordinates put them, scaled by hand
 * here (a 64 px reference in the 192 px square: x3; a 400 x 200 generation:
 * x0.48, centred vertically under the 16 px gap), corners joined in order;
 * incomplete evidence draws nothing. */
#include <cjson/cJSON.h>
#include <string.h>

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

int main(void) {
    RUN(test_geometry);
    return T_DONE();
}
