/* test_lf_blur.c — the part measurement at the generation's effective
 * resolution (analyze/lf_blur.h, issue 13).
 *
 * 1. cs_lfb_estimate recovers a known blur: a twemoji enlarged to 256 px
 *    and blurred by a Gaussian of sigma finds that sigma (within the
 *    ladder's sqrt(2) step), the unblurred one 0.
 * 2. test_lf_part's fine template (a folder with an emblem of 12 px
 *    squares, sharp edges): its copies blurred by 1.5, 2 and 3 working px
 *    (under a thumbnail pixel) are no other picture (cs_an_part_other);
 *    compared unblurred, as before the change, the 3 px one is (the case
 *    fixed: asserted, so the test fails without the change); its twin with
 *    another emblem is a replaced part under the same blurs: a blur cannot
 *    explain another shape.
 * 3. Real twemoji pairs (../shared/data/twemoji-64, as cs_fine_image reads
 *    them: 64 px enlarged to 256), identity geometry: copies blurred by
 *    1.5-3 working px and a copy resampled from 24 px are no other picture;
 *    template twins (a family with another member, a folder and the open
 *    folder), sharp and under the same blurs, are. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/an_part.h"
#include "analyze/fine_ref.h"
#include "analyze/lf_blur.h"
#include "analyze/lf_colour.h"
#include "analyze/lf_part.h"
#include "analyze/settings.h"
#include "core/image.h"
#include "t.h"
#include "test_fine_fixture.h"

#define IMG "../shared/data/twemoji-64/img/"
enum { F = CS_FINE_SIDE };

static const double ID[6] = {1, 0, 0, 0, 1, 0};

/* name's emoji at F x F as cs_fine_image reads a 64 px file */
static int load_fine(const char *name, uint8_t *out) {
    char p[512];
    cs_err err = {0};
    cs_image a = {0};
    snprintf(p, sizeof p, IMG "%s", name);
    if (cs_image_load(&a, p, NULL, &err)) {
        fprintf(stderr, "%s: %s\n", p, err.msg);
        return -1;
    }
    int rc = cs_fine_image(&a, F, out);
    cs_image_free(&a);
    return rc;
}

/* name's emoji, area-reduced to n px, then read as cs_fine_image reads an
 * n px generation (enlarged to F, bicubic) */
static int load_small(const char *name, int n, uint8_t *out) {
    char p[512];
    cs_err err = {0};
    cs_image a = {0}, b = {0};
    snprintf(p, sizeof p, IMG "%s", name);
    int rc = cs_image_load(&a, p, NULL, &err) || cs_image_resize(&b, &a, n, n, CS_RESIZE_AREA, &err) ||
             cs_fine_image(&b, F, out);
    cs_image_free(&a), cs_image_free(&b);
    return rc ? -1 : 0;
}

/* the measurement before this change: the reference unblurred */
static void part_sharp(const uint8_t *ref, const uint8_t *gen, int w, double tol, cs_lfp *p) {
    cs_lfc kc;
    static uint8_t map[F * F];
    cs_lfc_measure_map_few(ref, w, w, gen, w, w, F, ID, tol, CS_LFP_MIN_PX, &kc, map);
    cs_lfp_measure(map, F, p);
    cs_lfp_shape(p, kc.recolour >= 0 ? kc.parts_recoloured : -1);
}

/* the estimate on a picture of sharp edges (the fine template): a known
 * blur is found within the ladder's sqrt(2) step, none when there is none.
 * (An emoji enlarged from 64 px has edges 4 working px wide already: a
 * further small blur leaves every pixel within tol, and the estimate,
 * counting explained pixels as the measurement does, rightly says 0.) */
static void test_estimate(void) {
    static uint8_t a[F * F * 3], b[F * F * 3];
    const uint8_t blue[3] = {40, 40, 160}, white[3] = {250, 250, 250};
    fine_template(a, blue, white);
    float s0 = cs_lfb_estimate(a, F, F, a, F, F, F, ID, 0.1);
    CHECKF(s0 == 0, "unblurred: sigma %.2f", s0);
    const float true_s[3] = {1.5f, 2.5f, 3.5f};
    for (int i = 0; i < 3; i++) {
        REQUIRE(cs_lfb_blur(a, F, true_s[i], b) == 0);
        float s = cs_lfb_estimate(a, F, F, b, F, F, F, ID, 0.1);
        CHECKF(s >= true_s[i] / 1.42f && s <= true_s[i] * 1.42f, "blurred by %.1f: estimated %.2f", true_s[i], s);
    }
}

/* the fine template (test_lf_part's test_fine_twin): its copy blurred by
 * 1.5-3 working px is no other picture, though unblurred comparison (as
 * before the change) sees a part or no common body in it (the case fixed:
 * asserted); its twin with another emblem is a replaced part under the same
 * blurs */
static void test_template(void) {
    static uint8_t a[F * F * 3], b[F * F * 3], g[F * F * 3];
    const uint8_t blue[3] = {40, 40, 160}, white[3] = {250, 250, 250}, red[3] = {170, 30, 30}, green[3] = {30, 150, 40};
    fine_template(a, blue, white);
    fine_template(b, red, green);
    cs_an_settings set;
    cs_an_settings_default(&set);
    const float blurs[3] = {1.5f, 2.0f, 3.0f};
    int fixed = 0;
    for (int i = 0; i < 3; i++) {
        cs_lfp p, p0, t;
        REQUIRE(cs_lfb_blur(a, F, blurs[i], g) == 0);
        cs_an_part_fine(a, F, F, g, F, F, ID, set.lf_colour_tol, &p);
        part_sharp(a, g, F, set.lf_colour_tol, &p0);
        fixed += cs_an_part_other(&p0, &set);
        CHECKF(!cs_an_part_other(&p, &set), "copy blurred by %.1f: other (replaced %d, part %d, differ %d of %d, blur %.2f)",
               blurs[i], p.replaced, p.part, p.differ, p.cells, p.blur);
        REQUIRE(cs_lfb_blur(b, F, blurs[i], g) == 0);
        cs_an_part_fine(a, F, F, g, F, F, ID, set.lf_colour_tol, &t);
        CHECKF(t.replaced, "twin blurred by %.1f: no part (part %d, differ %d of %d, blur %.2f)", blurs[i], t.part,
               t.differ, t.cells, t.blur);
        printf("  template, blur %.1f: copy sharp other %d (part %d, differ %d) -> sigma %.2f part %d differ %d; twin "
               "sigma %.2f part %d replaced %d\n",
               blurs[i], cs_an_part_other(&p0, &set), p0.part, p0.differ, p.blur, p.part, p.differ, t.blur, t.part,
               t.replaced);
    }
    CHECKF(fixed > 0, "no blurred copy was another picture without the change (%d of 3)", fixed);
}

static void test_twemoji(void) {
    static uint8_t ref[F * F * 3], gen[F * F * 3], g2[F * F * 3];
    cs_an_settings set;
    cs_an_settings_default(&set);
    const double tol = set.lf_colour_tol;
    static const char *const pairs[][2] = {
        {"1f469-200d-1f467.png", "1f469-200d-1f467-200d-1f466.png"}, /* a family, one member more */
        {"1f4c1.png", "1f4c2.png"},                                   /* a folder, and open */
    };
    const float blurs[3] = {1.5f, 2.0f, 3.0f};
    for (int k = 0; k < 2; k++) {
        REQUIRE(load_fine(pairs[k][0], ref) == 0);
        /* copies: blurred, and resampled from 24 px */
        for (int i = 0; i <= 3; i++) {
            if (i < 3) REQUIRE(cs_lfb_blur(ref, F, blurs[i], gen) == 0);
            else REQUIRE(load_small(pairs[k][0], 24, gen) == 0);
            cs_lfp p, p0;
            cs_an_part_fine(ref, 64, 64, gen, 64, 64, ID, tol, &p);
            part_sharp(ref, gen, 64, tol, &p0);
            CHECKF(!cs_an_part_other(&p, &set), "%s copy %s: other (replaced %d, part %d, differ %d of %d, recol %d, blur %.2f)",
                   pairs[k][0], i < 3 ? "blurred" : "from 24 px", p.replaced, p.part, p.differ, p.cells, p.recoloured, p.blur);
            printf("  %s copy %d: sharp other %d (part %d, differ %d) -> blur %.2f other %d (part %d, differ %d)\n",
                   pairs[k][0], i, cs_an_part_other(&p0, &set), p0.part, p0.differ, p.blur, cs_an_part_other(&p, &set),
                   p.part, p.differ);
        }
        /* the twin, sharp and blurred alike */
        REQUIRE(load_fine(pairs[k][1], g2) == 0);
        for (int i = -1; i < 3; i++) {
            if (i >= 0) REQUIRE(cs_lfb_blur(g2, F, blurs[i], gen) == 0);
            else memcpy(gen, g2, sizeof gen[0] * F * F * 3);
            cs_lfp p;
            cs_an_part_fine(ref, 64, 64, gen, 64, 64, ID, tol, &p);
            CHECKF(cs_an_part_other(&p, &set), "%s twin %s blurred %.1f: no other picture (part %d, differ %d of %d, blur %.2f)",
                   pairs[k][0], pairs[k][1], i >= 0 ? blurs[i] : 0.0, p.part, p.differ, p.cells, p.blur);
            printf("  %s twin %.1f: blur %.2f replaced %d part %d differ %d of %d\n", pairs[k][1],
                   i >= 0 ? blurs[i] : 0.0, p.blur, p.replaced, p.part, p.differ, p.cells);
        }
    }
}

int main(void) {
    RUN(test_estimate);
    RUN(test_template);
    RUN(test_twemoji);
    return T_DONE();
}
