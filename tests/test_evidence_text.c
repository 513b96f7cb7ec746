/* test_evidence_text.c — the evidence sentences (reports/evidence_text.h)
 * say what the local-feature rules read: the verified keypoints, their share,
 * the covered part of the generation and the colour policy's figures, from
 * the evidence's own numbers; a hue of -0.2 degrees reads "0", not "-0";
 * evidence without a "local" object gets no such sentence; the replaced-part
 * check (the template-twin veto) is said for each rule family that measured
 * it, with its resolution, why not 256 px, and the blur given to the
 * reference. */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "reports/evidence_text.h"
#include "t.h"

static const char *EV =
    "{\"local\":{\"inliers\":19,\"share\":0.7917,\"log10_nfa\":-44.7,\"coverage\":0.3587,\"mirrored\":true,"
    "\"colour\":{\"global_fit_share\":0.93,\"hue_deg\":-0.2,\"parts\":6,\"parts_recoloured\":1},"
    "\"replaced_part\":{\"cells\":3906,\"cells_differing\":346,\"largest_region\":346,\"caption_band\":true,"
    "\"replaced\":false,\"pixels\":256,\"reference_blur_px\":1.4142,\"working_resolution\":\"256\"}},"
    "\"tl2\":{\"replaced_part\":{\"cells\":256,\"cells_differing\":40,\"largest_region\":31,\"replaced\":true,"
    "\"pixels\":64,\"working_resolution\":\"64: reference source missing\"}}}";

static void test_local_sentences(void) {
    cs_rthresh t;
    memset(&t, 0, sizeof t);
    t.ratio_max = NAN;
    cJSON *ev = cJSON_Parse(EV);
    REQUIRE(ev != NULL);
    cs_buf b = {0};
    cs_rev_sentences(&b, ev, &t);
    REQUIRE(b.p != NULL);
    CHECKF(strstr(b.p, "19 keypoints verified geometrically (RANSAC), a share 0.792 of the reference's") != NULL, "%s", b.p);
    CHECKF(strstr(b.p, "odds 10^-44.7") != NULL, "%s", b.p);
    CHECKF(strstr(b.p, "covers 36% of the generation, mirrored.") != NULL, "%s", b.p);
    CHECKF(strstr(b.p, "hue turned 0\xc2\xb0) explains 93% of the compared pixels; 1 of the reference's 6 colour "
                       "parts recoloured") != NULL, "%s", b.p);
    CHECK(strstr(b.p, "-0\xc2\xb0") == NULL);
    /* what the replaced-part veto saw, for each rule family that measured it */
    CHECKF(strstr(b.p, "Replaced-part check of the local-feature rules (what keeps a template twin, a reference "
                       "that differs in one part, from their verdict): no part found; compared at 256 px, the "
                       "reference blurred by 1.4 px to the generation's own blur; 346 of 3906 cells differ, the "
                       "largest region judged 346 cells (a band along the top or bottom of the copy, tilted or "
                       "inset where it was rotated or embedded, set aside as a caption).") !=
               NULL, "%s", b.p);
    CHECKF(strstr(b.p, "Replaced-part check of the pixel rules (what keeps a template twin, a reference that "
                       "differs in one part, from their verdict): a part found, so they do not flag this pair; "
                       "compared at 64 px (reference source missing); 40 of 256 cells differ, the largest region "
                       "judged 31 cells.") != NULL, "%s", b.p);
    CHECK(strstr(b.p, "each clipped") == NULL); /* no "steps": one clipped map */
    cs_buf_free(&b);
    /* the fit in two clipped steps (lf_colour.h: steps 2) says so */
    {
        cJSON *col = cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "local"), "colour");
        cJSON_AddNumberToObject(col, "steps", 2);
        cs_buf d = {0};
        cs_rev_sentences(&d, ev, &t);
        CHECKF(d.p && strstr(d.p, "hue turned 0\xc2\xb0; brightness and contrast, then saturation, each clipped, as PIL "
                                  "and torchvision apply them) explains 93% of the compared pixels") != NULL,
               "%s", d.p ? d.p : "");
        cs_buf_free(&d);
    }
    /* no local object: no local sentence */
    cJSON_DeleteItemFromObject(ev, "local");
    cs_buf c = {0};
    cs_rev_sentences(&c, ev, &t);
    CHECK(!c.p || !strstr(c.p, "keypoints"));
    cs_buf_free(&c);
    cJSON_Delete(ev);
}

int main(void) {
    RUN(test_local_sentences);
    return T_DONE();
}
