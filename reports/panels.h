/* panels.h — the pictures of one finding, as PNG data URIs.
 *
 * generated image | matched reference | difference heatmap, or for a
 * completion audit original | masked input | completion. The heatmap is
 * computed here from the two pictures only (the generation area-resized to
 * the reference thumbnail's size; the reference mirrored when the finding
 * says the match was mirrored; for a local-feature finding, the reference
 * mapped by the verified geometry and compared only where it lands, grey
 * elsewhere): per pixel the mean absolute RGB difference,
 * mapped white (equal) -> yellow -> red, saturating at CS_RPANEL_DIFF_FULL.
 * Pure functions of their inputs: safe to run in parallel. */
#ifndef CS_REPORT_PANELS_H
#define CS_REPORT_PANELS_H

#include <stdint.h>

/* A per-pixel difference of this fraction of full range (or more) is drawn
 * in the darkest red: small differences stay visible. */
#define CS_RPANEL_DIFF_FULL (1.0 / 3.0)
/* Generations larger than this (either side) are area-downscaled to it. */
#define CS_RPANEL_MAX_SIDE 256

typedef struct {
    /* inputs (not owned) */
    const char *gen_path;        /* the generated image file; NULL: none */
    const char *ref_path;        /* the reference's original file, shown when readable; NULL: none */
    const uint8_t *ref_rgb;      /* reference thumbnail, rw x rh RGB; NULL: none (used for the heatmap,
                                    and shown when the original cannot be read) */
    int rw, rh;
    int ref_mirrored;            /* compare against the mirrored reference */
    int geo;                     /* 1: compare in the verified geometry (a local-feature finding):
                                    the reference mapped into the generation, grey outside it */
    double geo_map[6];           /* generation (geo_gen_w x geo_gen_h px) -> reference (geo_ref_w x geo_ref_h px),
                                    reports/region_svg.h cs_region_gen_to_ref */
    double geo_gen_w, geo_gen_h, geo_ref_w, geo_ref_h;
    const uint8_t *orig_rgb;     /* completion audit: the original's thumbnail, or NULL */
    int ow, oh;
    int rect[4];                 /* withheld region x, y, w, h in original-thumbnail pixels */
    const char *withheld_map;    /* the evidence's withheld_map (the region itself, on the 64x64
                                    grid, analyze/evidence.md), or NULL: the rect is the region */
    /* outputs: "data:image/png;base64,..." strings (malloc'd) or NULL */
    char *gen_uri, *ref_uri, *diff_uri, *mask_uri, *orig_uri;
    int gen_w, gen_h;            /* size of the generated image file */
    double mean_diff;            /* mean per-pixel difference in [0,1] (geo: over the compared pixels),
                                    NAN without both */
    char gen_error[256];         /* why the generated image is missing ("" if it is not) */
} cs_rpanels;

void cs_rpanels_make(cs_rpanels *p);
void cs_rpanels_free(cs_rpanels *p);

/* PNG data URI of an RGB image (malloc'd), NULL on failure. */
char *cs_rpanel_uri(const uint8_t *rgb, int w, int h);

#endif
