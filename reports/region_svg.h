/* region_svg.h — the matched region of a finding drawn on both pictures
 * (issue 13): the reference and the generation side by side in one inline
 * SVG, the inlier region of the local-feature verification (the evidence's
 * "local": ref_polygon in the reference, gen_polygon its image in the
 * generation, analyze/evidence.md) outlined on each, and a line joining each
 * corner to its image, so a reader sees which part of the reference was
 * copied and where it went (rotated, scaled, mirrored or pasted into a new
 * scene). */
#ifndef CS_REPORT_REGION_SVG_H
#define CS_REPORT_REGION_SVG_H

#include <cjson/cJSON.h>

#include "reports/buf.h"

/* Appends a report panel (<div class="panel region">...</div>) with the SVG
 * to b; nothing when local is not an object with both polygons and sizes or
 * a picture is missing. ref_uri / gen_uri: the panels' data URIs. */
void cs_region_panel(cs_buf *b, const char *ref_uri, const char *gen_uri, const cJSON *local);

/* The verified geometry as a map from the generation to the reference: a
 * point (x, y) of the generation (local.gen_size pixels) is
 * (m[0] x + m[1] y + m[2], m[3] x + m[4] y + m[5]) of the reference
 * (local.ref_size pixels), the affine map that takes three corners of
 * gen_polygon to their ref_polygon corners (exact for the similarity and
 * affine fits; a homography's is its affine part over the region). 0 when
 * local lacks the polygons or sizes or the polygon is degenerate. */
int cs_region_gen_to_ref(const cJSON *local, double m[6], double ref_size[2], double gen_size[2]);

#endif
