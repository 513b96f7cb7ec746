/* region_svg.c — the matched region on both pictures (region_svg.h). */
#include "reports/region_svg.h"

#include <math.h>

#define BOX 192 /* each picture's square, as the report's other panels */
#define GAP 16

/* n numbers of a JSON array into v; 0 when it is not one */
static int nums(const cJSON *a, double *v, int n) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) return 0;
    for (int i = 0; i < n; i++) {
        const cJSON *x = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) return 0;
        v[i] = x->valuedouble;
    }
    return 1;
}

static int poly(const cJSON *a, double p[4][2]) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 4) return 0;
    for (int c = 0; c < 4; c++)
        if (!nums(cJSON_GetArrayItem(a, c), p[c], 2)) return 0;
    return 1;
}

/* where a w x h picture sits in the BOX square at y offset oy: scale and
 * origin (the two squares are stacked, so the panel keeps the report's
 * panel width) */
typedef struct {
    double s, x0, y0;
} place;

static place fit(double w, double h, double oy) {
    double s = BOX / (w > h ? w : h);
    return (place){s, (BOX - w * s) / 2, oy + (BOX - h * s) / 2};
}

/* a white halo under the coloured line: visible on any picture */
static void outline(cs_buf *b, const double p[4][2], place f, const char *colour) {
    for (int pass = 0; pass < 2; pass++) {
        cs_buf_puts(b, "<polygon points=\"");
        for (int c = 0; c < 4; c++) cs_buf_printf(b, "%s%.1f,%.1f", c ? " " : "", f.x0 + p[c][0] * f.s, f.y0 + p[c][1] * f.s);
        if (pass == 0) cs_buf_puts(b, "\" fill=\"none\" stroke=\"#fff\" stroke-width=\"5\"/>");
        else cs_buf_printf(b, "\" fill=\"%s\" fill-opacity=\"0.12\" stroke=\"%s\" stroke-width=\"2.5\"/>", colour, colour);
    }
}

int cs_region_gen_to_ref(const cJSON *local, double m[6], double ref_size[2], double gen_size[2]) {
    double rp[4][2], gp[4][2];
    if (!cJSON_IsObject(local) || !poly(cJSON_GetObjectItem(local, "ref_polygon"), rp) ||
        !poly(cJSON_GetObjectItem(local, "gen_polygon"), gp) || !nums(cJSON_GetObjectItem(local, "ref_size"), ref_size, 2) ||
        !nums(cJSON_GetObjectItem(local, "gen_size"), gen_size, 2))
        return 0;
    /* corners 0, 1, 3: r = A g + t; with u = g1 - g0, v = g3 - g0 and their
     * images U, V: A = [U V] [u v]^-1 */
    const double ux = gp[1][0] - gp[0][0], uy = gp[1][1] - gp[0][1], vx = gp[3][0] - gp[0][0], vy = gp[3][1] - gp[0][1];
    const double Ux = rp[1][0] - rp[0][0], Uy = rp[1][1] - rp[0][1], Vx = rp[3][0] - rp[0][0], Vy = rp[3][1] - rp[0][1];
    const double det = ux * vy - vx * uy;
    /* a polygon of (almost) no area maps nothing: under a pixel squared */
    if (!(fabs(det) >= 1.0)) return 0;
    m[0] = (Ux * vy - Vx * uy) / det;
    m[1] = (Vx * ux - Ux * vx) / det;
    m[3] = (Uy * vy - Vy * uy) / det;
    m[4] = (Vy * ux - Uy * vx) / det;
    m[2] = rp[0][0] - m[0] * gp[0][0] - m[1] * gp[0][1];
    m[5] = rp[0][1] - m[3] * gp[0][0] - m[4] * gp[0][1];
    return 1;
}

void cs_region_panel(cs_buf *b, const char *ref_uri, const char *gen_uri, const cJSON *local) {
    double rp[4][2], gp[4][2], rs[2], gs[2];
    if (!ref_uri || !gen_uri || !cJSON_IsObject(local) || !poly(cJSON_GetObjectItem(local, "ref_polygon"), rp) ||
        !poly(cJSON_GetObjectItem(local, "gen_polygon"), gp) || !nums(cJSON_GetObjectItem(local, "ref_size"), rs, 2) ||
        !nums(cJSON_GetObjectItem(local, "gen_size"), gs, 2) || rs[0] < 1 || rs[1] < 1 || gs[0] < 1 || gs[1] < 1)
        return;
    const place fr = fit(rs[0], rs[1], 0), fg = fit(gs[0], gs[1], BOX + GAP);
    const int H = 2 * BOX + GAP;
    cs_buf_printf(b, "<div class=\"panel region\"><svg xmlns=\"http://www.w3.org/2000/svg\" "
                     "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">",
                  BOX, H, BOX, H);
    cs_buf_puts(b, "<title>the verified region: outlined in the reference (top) and where it is in the "
                   "generation (bottom); lines join each corner to its image</title>");
    cs_buf_printf(b, "<image href=\"%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>", ref_uri, fr.x0, fr.y0,
                  rs[0] * fr.s, rs[1] * fr.s);
    cs_buf_printf(b, "<image href=\"%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>", gen_uri, fg.x0, fg.y0,
                  gs[0] * fg.s, gs[1] * fg.s);
    outline(b, rp, fr, "#1f77b4");
    outline(b, gp, fg, "#1f77b4");
    for (int c = 0; c < 4; c++)
        cs_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" stroke-width=\"1\" "
                         "stroke-dasharray=\"4 3\"/>",
                      fr.x0 + rp[c][0] * fr.s, fr.y0 + rp[c][1] * fr.s, fg.x0 + gp[c][0] * fg.s, fg.y0 + gp[c][1] * fg.s);
    const cJSON *inl = cJSON_GetObjectItem(local, "inliers"), *cov = cJSON_GetObjectItem(local, "coverage");
    cs_buf_printf(b, "</svg><div>matched region: reference (top) &#8594; generation; %d keypoints verified, the "
                     "reference covers %.0f%% of the generation</div></div>",
                  cJSON_IsNumber(inl) ? inl->valueint : 0, cJSON_IsNumber(cov) ? 100 * cov->valuedouble : 0.0);
}
