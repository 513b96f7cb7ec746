/* panels.c — finding pictures and the difference heatmap (panels.h). */
#include "reports/panels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/image.h"
#include "reports/buf.h"

char *cs_rpanel_uri(const uint8_t *rgb, int w, int h) {
    cs_image img = {w, h, (uint8_t *)rgb};
    uint8_t *png = NULL;
    size_t len = 0;
    if (cs_image_encode_png(&img, NULL, 0, &png, &len, NULL)) return NULL;
    cs_buf b = {0};
    cs_buf_puts(&b, "data:image/png;base64,");
    cs_buf_base64(&b, png, len);
    free(png);
    if (b.oom) {
        cs_buf_free(&b);
        return NULL;
    }
    return cs_buf_take(&b);
}

/* White -> yellow -> orange -> dark red, t in [0,1]. */
static void heat(uint8_t out[3], double t) {
    static const double stops[4][3] = {{255, 255, 255}, {254, 224, 120}, {244, 109, 45}, {165, 0, 38}};
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    double x = t * 3;
    int i = x >= 3 ? 2 : (int)x;
    double f = x - i;
    for (int c = 0; c < 3; c++) out[c] = (uint8_t)lround(stops[i][c] + (stops[i + 1][c] - stops[i][c]) * f);
}

/* The heatmap of a (w x h) against b (same size, mirrored if asked). */
static char *diff_uri(const uint8_t *a, const uint8_t *b, int w, int h, int mirrored, double *mean) {
    uint8_t *out = malloc((size_t)w * h * 3);
    if (!out) return NULL;
    double sum = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const uint8_t *p = a + ((size_t)y * w + x) * 3;
            const uint8_t *q = b + ((size_t)y * w + (mirrored ? w - 1 - x : x)) * 3;
            double d = (abs(p[0] - q[0]) + abs(p[1] - q[1]) + abs(p[2] - q[2])) / (3.0 * 255.0);
            sum += d;
            heat(out + ((size_t)y * w + x) * 3, d / CS_RPANEL_DIFF_FULL);
        }
    *mean = sum / ((double)w * h);
    char *u = cs_rpanel_uri(out, w, h);
    free(out);
    return u;
}

/* Is original-thumbnail pixel (x, y) withheld? The map (64 x 64, hex, 4
 * pixels a digit) is scaled to the thumbnail's size; without a valid map, the rect. */
static int withheld_at(const char *map, int x, int y, int w, int h, const int r[4]) {
    if (!map) return x >= r[0] && x < r[0] + r[2] && y >= r[1] && y < r[1] + r[3];
    int mx = (int)((int64_t)x * 64 / w), my = (int)((int64_t)y * 64 / h), i = my * 64 + mx;
    char c = map[i / 4];
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 0;
    return (v >> (3 - i % 4)) & 1;
}

/* The original with the withheld region drawn as a grey checkerboard (what
 * the model was given): the mask's own shape, not its bounding box. */
static char *mask_uri(const uint8_t *rgb, int w, int h, const int r[4], const char *map) {
    if (map && strspn(map, "0123456789abcdef") != 64 * 64 / 4) map = NULL; /* not a map: the rect */
    uint8_t *out = malloc((size_t)w * h * 3);
    if (!out) return NULL;
    memcpy(out, rgb, (size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (withheld_at(map, x, y, w, h, r)) memset(out + ((size_t)y * w + x) * 3, ((x / 4 + y / 4) & 1) ? 150 : 200, 3);
    char *u = cs_rpanel_uri(out, w, h);
    free(out);
    return u;
}

/* Loads an image file and makes its data URI, area-downscaled to fit
 * CS_RPANEL_MAX_SIDE. Keeps the decoded image in *img for the caller. */
static char *file_uri(const char *path, cs_image *img, cs_err *err) {
    if (cs_image_load(img, path, NULL, err)) return NULL;
    const cs_image *g = img;
    cs_image shown = {0};
    if (img->w > CS_RPANEL_MAX_SIDE || img->h > CS_RPANEL_MAX_SIDE) {
        double s = (double)CS_RPANEL_MAX_SIDE / (img->w > img->h ? img->w : img->h);
        int w = (int)lround(img->w * s), h = (int)lround(img->h * s);
        if (cs_image_resize(&shown, img, w < 1 ? 1 : w, h < 1 ? 1 : h, CS_RESIZE_AREA, NULL) == 0) g = &shown;
    }
    char *u = cs_rpanel_uri(g->rgb, g->w, g->h);
    cs_image_free(&shown);
    return u;
}

/* The heatmap of a (w x h, the generation resized) against the reference
 * thumbnail b (w x h) mapped by the verified geometry: pixel (x, y) of a is
 * the generation's point ((x + 0.5) gw / w, (y + 0.5) gh / h), its image
 * under map is a point of the reference (rw' x rh' px), sampled bilinearly
 * from b; where it falls outside the reference the pixel is not compared
 * (light grey). The mean is over the compared pixels; NAN: none. */
static char *diff_geo_uri(const uint8_t *a, const uint8_t *b, int w, int h, const cs_rpanels *p, double *mean) {
    uint8_t *out = malloc((size_t)w * h * 3);
    if (!out) return NULL;
    double sum = 0;
    long n = 0;
    const double *m = p->geo_map;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const double gx = (x + 0.5) * p->geo_gen_w / w, gy = (y + 0.5) * p->geo_gen_h / h;
            const double rx = (m[0] * gx + m[1] * gy + m[2]) * w / p->geo_ref_w - 0.5;
            const double ry = (m[3] * gx + m[4] * gy + m[5]) * h / p->geo_ref_h - 0.5;
            uint8_t *o = out + ((size_t)y * w + x) * 3;
            if (!(rx >= 0 && ry >= 0 && rx <= w - 1 && ry <= h - 1)) {
                o[0] = o[1] = o[2] = 224;
                continue;
            }
            const int x0 = (int)rx, y0 = (int)ry, x1 = x0 + (x0 < w - 1), y1 = y0 + (y0 < h - 1);
            const double fx = rx - x0, fy = ry - y0;
            double d = 0;
            for (int c = 0; c < 3; c++) {
                const double v = (1 - fy) * ((1 - fx) * b[((size_t)y0 * w + x0) * 3 + c] + fx * b[((size_t)y0 * w + x1) * 3 + c]) +
                                 fy * ((1 - fx) * b[((size_t)y1 * w + x0) * 3 + c] + fx * b[((size_t)y1 * w + x1) * 3 + c]);
                d += fabs(a[((size_t)y * w + x) * 3 + c] - v);
            }
            d /= 3 * 255.0;
            sum += d;
            n++;
            heat(o, d / CS_RPANEL_DIFF_FULL);
        }
    *mean = n ? sum / n : NAN;
    char *u = cs_rpanel_uri(out, w, h);
    free(out);
    return u;
}

void cs_rpanels_make(cs_rpanels *p) {
    p->mean_diff = NAN;
    p->gen_error[0] = 0;
    cs_image gen = {0}, small = {0};
    cs_err err = {0};
    if (p->gen_path) {
        p->gen_uri = file_uri(p->gen_path, &gen, &err);
        if (gen.rgb) {
            p->gen_w = gen.w;
            p->gen_h = gen.h;
        } else {
            size_t n = strnlen(err.msg, sizeof p->gen_error - 1);
            memcpy(p->gen_error, err.msg, n);
            p->gen_error[n] = 0;
        }
    } else {
        snprintf(p->gen_error, sizeof p->gen_error, "no image recorded");
    }
    if (p->ref_path) { /* the original, when it is a readable image file */
        cs_image orig = {0};
        p->ref_uri = file_uri(p->ref_path, &orig, NULL);
        cs_image_free(&orig);
    }
    if (p->ref_rgb) {
        if (!p->ref_uri) p->ref_uri = cs_rpanel_uri(p->ref_rgb, p->rw, p->rh);
        if (gen.rgb) {
            const cs_image *g = &gen;
            if (gen.w != p->rw || gen.h != p->rh)
                g = cs_image_resize(&small, &gen, p->rw, p->rh, CS_RESIZE_AREA, NULL) == 0 ? &small : NULL;
            if (g && p->geo) p->diff_uri = diff_geo_uri(g->rgb, p->ref_rgb, p->rw, p->rh, p, &p->mean_diff);
            else if (g) p->diff_uri = diff_uri(g->rgb, p->ref_rgb, p->rw, p->rh, p->ref_mirrored, &p->mean_diff);
        }
    }
    if (p->orig_rgb) {
        p->orig_uri = cs_rpanel_uri(p->orig_rgb, p->ow, p->oh);
        p->mask_uri = mask_uri(p->orig_rgb, p->ow, p->oh, p->rect, p->withheld_map);
    }
    cs_image_free(&gen);
    cs_image_free(&small);
}

void cs_rpanels_free(cs_rpanels *p) {
    free(p->gen_uri);
    free(p->ref_uri);
    free(p->diff_uri);
    free(p->mask_uri);
    free(p->orig_uri);
    p->gen_uri = p->ref_uri = p->diff_uri = p->mask_uri = p->orig_uri = NULL;
}
