/* test_mask_panel.c — the report's masked-input panel draws the mask's own
 * region, not its bounding box (issue 19 item 2): the demo's stripes and disc
 * masks go through the analysis's region map (cs_an_region_from_mask), its
 * evidence text (cs_an_region_hex) and the panel; the grey pixels of the
 * decoded panel must be exactly the withheld ones. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/completion.h"
#include "core/image.h"
#include "index/refs.h"
#include "reports/panels.h"
#include "tests/t.h"
#include "tests/test_uri_fixture.h"

static void one_mask(const char *path, int thumb) {
    enum { S = CS_THUMB_SIZE };
    cs_image m = {0};
    REQUIRE(cs_image_load(&m, path, NULL, NULL) == 0);
    uint8_t withheld[S * S];
    int n = cs_an_region_from_mask(withheld, &m, NULL);
    cs_image_free(&m);
    REQUIRE(n > 0);
    int x0 = S, y0 = S, x1 = -1, y1 = -1;
    for (int p = 0; p < S * S; p++)
        if (withheld[p]) {
            int x = p % S, y = p / S;
            x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1, y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
        }
    char map[S * S / 4 + 1];
    cs_an_region_hex(withheld, map);
    /* a black original of thumb x thumb pixels: every non-black pixel of the panel is painted */
    uint8_t *orig = calloc((size_t)thumb * thumb * 3, 1);
    cs_rpanels pn = {0};
    pn.orig_rgb = orig;
    pn.ow = pn.oh = thumb;
    int bbox[4] = {x0 * thumb / S, y0 * thumb / S, (x1 - x0 + 1) * thumb / S, (y1 - y0 + 1) * thumb / S};
    memcpy(pn.rect, bbox, sizeof bbox);
    pn.withheld_map = map;
    cs_rpanels_make(&pn);
    cs_image img = {0};
    REQUIRE(decode_uri(pn.mask_uri, &img) == 0 && img.w == thumb && img.h == thumb);
    int wrong = 0, painted = 0;
    for (int y = 0; y < thumb; y++)
        for (int x = 0; x < thumb; x++) {
            int p = img.rgb[((size_t)y * thumb + x) * 3] != 0;
            painted += p;
            wrong += p != withheld[(y * S / thumb) * S + x * S / thumb];
        }
    int box = (x1 - x0 + 1) * (y1 - y0 + 1) * (thumb / S) * (thumb / S);
    CHECKF(wrong == 0, "%s: %d pixels painted where the mask keeps them or left where it withholds", path, wrong);
    CHECKF(painted == n * (thumb / S) * (thumb / S) && painted < box, "%s: painted %d, withheld %d, bounding box %d",
           path, painted, n, box);
    /* a map that is not one (an older analysis, damage) falls back to the rect */
    cs_rpanels_free(&pn);
    cs_image_free(&img);
    pn.withheld_map = "zz";
    cs_rpanels_make(&pn);
    REQUIRE(decode_uri(pn.mask_uri, &img) == 0);
    painted = 0;
    for (int i = 0; i < thumb * thumb; i++) painted += img.rgb[i * 3] != 0;
    CHECKF(painted == bbox[2] * bbox[3], "%s: fallback painted %d, rect %d", path, painted, bbox[2] * bbox[3]);
    cs_rpanels_free(&pn);
    cs_image_free(&img);
    free(orig);
}

static void test_mask_panel_is_the_mask(void) {
    one_mask("suites/demo-masks/stripes.png", 64);
    one_mask("suites/demo-masks/centre-disc.png", 64);
    one_mask("suites/demo-masks/centre-disc.png", 128); /* a thumbnail of another size: the map is scaled */
}

int main(void) {
    RUN(test_mask_panel_is_the_mask);
    return T_DONE();
}
