/* completion.c — completion audits (completion.h). */
#include "analyze/completion.h"

#include <math.h>
#include <string.h>

#include "index/refs.h"

#define S CS_THUMB_SIZE

/* tiled L2 over the rectangle (see completion.h) between two thumbnails */
static float region_dist(const uint8_t *a, const uint8_t *b, const int rc[4], int grid) {
    const int ts = S / grid;
    float mx = 0;
    for (int ty = 0; ty < grid; ty++)
        for (int tx = 0; tx < grid; tx++) {
            int x0 = tx * ts > rc[0] ? tx * ts : rc[0], x1 = (tx + 1) * ts < rc[0] + rc[2] ? (tx + 1) * ts : rc[0] + rc[2];
            int y0 = ty * ts > rc[1] ? ty * ts : rc[1], y1 = (ty + 1) * ts < rc[1] + rc[3] ? (ty + 1) * ts : rc[1] + rc[3];
            if (x1 <= x0 || y1 <= y0 || (x1 - x0) * (y1 - y0) * 4 < ts * ts) continue;
            double s2 = 0;
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++)
                    for (int ch = 0; ch < 3; ch++) {
                        double d = (a[(y * S + x) * 3 + ch] - b[(y * S + x) * 3 + ch]) / 255.0;
                        s2 += d * d;
                    }
            float d = (float)sqrt(s2 / ((x1 - x0) * (y1 - y0) * 3));
            if (d > mx) mx = d;
        }
    return mx;
}

void cs_an_completion_audit(cs_an_completion *out, const cs_an_refs *r, const uint8_t *gen_thumb,
                            int64_t orig_row, const int rect_img[4], int img_w, int img_h,
                            const cs_an_settings *s) {
    memset(out, 0, sizeof *out);
    out->orig_row = orig_row;
    out->other_row = -1;
    out->d_orig = out->d_other = INFINITY;
    out->verdict = CS_V_NOVEL;
    if (img_w <= 0 || img_h <= 0 || orig_row < 0 || orig_row >= r->n) return;
    /* the rectangle in thumbnail pixels, clamped */
    int x0 = (int)floor((double)rect_img[0] * S / img_w), y0 = (int)floor((double)rect_img[1] * S / img_h);
    int x1 = (int)ceil((double)(rect_img[0] + rect_img[2]) * S / img_w);
    int y1 = (int)ceil((double)(rect_img[1] + rect_img[3]) * S / img_h);
    x0 = x0 < 0 ? 0 : x0 > S ? S : x0;
    y0 = y0 < 0 ? 0 : y0 > S ? S : y0;
    x1 = x1 < x0 ? x0 : x1 > S ? S : x1;
    y1 = y1 < y0 ? y0 : y1 > S ? S : y1;
    out->rect[0] = x0;
    out->rect[1] = y0;
    out->rect[2] = x1 - x0;
    out->rect[3] = y1 - y0;
    if (x1 <= x0 || y1 <= y0) return;
    const uint8_t *orig = r->thumbs + orig_row * (int64_t)S * S * 3;
    out->d_orig = region_dist(gen_thumb, orig, out->rect, r->cfg.grid);
    for (int64_t i = 0; i < r->n; i++) {
        if (i == orig_row) continue;
        const uint8_t *o = r->thumbs + i * (int64_t)S * S * 3;
        if (region_dist(o, orig, out->rect, r->cfg.grid) <= s->copy_tl2) continue; /* a twin */
        float d = region_dist(gen_thumb, o, out->rect, r->cfg.grid);
        if (d < out->d_other) {
            out->d_other = d;
            out->other_row = i;
        }
    }
    out->restored = out->d_orig <= s->near_tl2 && out->d_orig * s->completion_margin < out->d_other;
    if (out->restored) out->verdict = out->d_orig <= s->copy_tl2 ? CS_V_COPY : CS_V_NEAR;
    else if (out->d_other <= s->copy_tl2) out->verdict = CS_V_PARTIAL;
}
