/* completion.c — completion audits (completion.h). */
#include "analyze/completion.h"
#include "analyze/verdict.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "index/refs.h"

#define S CS_THUMB_SIZE

int cs_an_region_from_rect(uint8_t *withheld, const int rect[4], int img_w, int img_h) {
    memset(withheld, 0, (size_t)S * S);
    if (img_w <= 0 || img_h <= 0 || rect[2] <= 0 || rect[3] <= 0) return 0;
    int x0 = (int)floor((double)rect[0] * S / img_w), y0 = (int)floor((double)rect[1] * S / img_h);
    int x1 = (int)ceil((double)(rect[0] + rect[2]) * S / img_w);
    int y1 = (int)ceil((double)(rect[1] + rect[3]) * S / img_h);
    x0 = x0 < 0 ? 0 : x0 > S ? S : x0;
    y0 = y0 < 0 ? 0 : y0 > S ? S : y0;
    x1 = x1 < x0 ? x0 : x1 > S ? S : x1;
    y1 = y1 < y0 ? y0 : y1 > S ? S : y1;
    for (int y = y0; y < y1; y++) memset(withheld + y * S + x0, 1, (size_t)(x1 - x0));
    return (x1 - x0) * (y1 - y0);
}

int cs_an_region_from_mask(uint8_t *withheld, const cs_image *mask, cs_err *err) {
    cs_image t = {0};
    const cs_image *m = mask;
    if (mask->w != S || mask->h != S) {
        if (cs_image_resize(&t, mask, S, S, CS_RESIZE_AREA, err)) return -1;
        m = &t;
    }
    int n = 0;
    for (int p = 0; p < S * S; p++) {
        const uint8_t *q = m->rgb + p * 3;
        /* the generator's rule (pipeline/generate.c): keep when luma >= 128 */
        withheld[p] = (q[0] * 299 + q[1] * 587 + q[2] * 114) < 128 * 1000;
        n += withheld[p];
    }
    cs_image_free(&t);
    return n;
}

void cs_an_region_hex(const uint8_t *withheld, char *out) {
    for (int i = 0; i < S * S / 4; i++) {
        const uint8_t *q = withheld + 4 * i;
        out[i] = "0123456789abcdef"[(q[0] ? 8 : 0) | (q[1] ? 4 : 0) | (q[2] ? 2 : 0) | (q[3] ? 1 : 0)];
    }
    out[S * S / 4] = 0;
}

/* The region prepared for distances: its pixels (offsets into a thumbnail)
 * with the slot (measured tile) each one counts in. */
typedef struct {
    int n;              /* pixels */
    int *off;           /* [n] pixel index y * S + x */
    int *slot;          /* [n] 0..n_slots-1 */
    int n_slots;
    int count[64 * 64]; /* pixels per slot (a slot per tile at most) */
} region;

static int region_prepare(region *g, const uint8_t *withheld, int grid, int *n_tiles) {
    const int ts = S / grid;
    int tile_n[64 * 64] = {0}, tile_slot[64 * 64];
    memset(g, 0, sizeof *g);
    for (int p = 0; p < S * S; p++)
        if (withheld[p]) {
            tile_n[(p / S / ts) * grid + (p % S) / ts]++;
            g->n++;
        }
    if (g->n == 0) return 0;
    g->off = malloc(sizeof(int) * g->n);
    g->slot = malloc(sizeof(int) * g->n);
    if (!g->off || !g->slot) return -1;
    for (int t = 0; t < grid * grid; t++) tile_slot[t] = tile_n[t] * 4 >= ts * ts ? g->n_slots++ : -1;
    *n_tiles = g->n_slots;
    int k = 0;
    for (int p = 0; p < S * S; p++) {
        if (!withheld[p]) continue;
        int sl = g->n_slots ? tile_slot[(p / S / ts) * grid + (p % S) / ts] : 0;
        if (sl < 0) continue; /* a sliver of a tile: left out, like the rectangle's */
        g->off[k] = p;
        g->slot[k++] = sl;
        g->count[sl]++;
    }
    g->n = k;
    if (!g->n_slots) g->n_slots = 1; /* a thin region: one slot over all of it */
    return 0;
}

static void region_free(region *g) {
    free(g->off);
    free(g->slot);
}

/* tiled L2 over the region (see completion.h) between two thumbnails */
static float region_dist(const uint8_t *a, const uint8_t *b, const region *g) {
    double s2[64 * 64];
    memset(s2, 0, sizeof(double) * g->n_slots);
    for (int k = 0; k < g->n; k++) {
        const uint8_t *pa = a + g->off[k] * 3, *pb = b + g->off[k] * 3;
        int d0 = pa[0] - pb[0], d1 = pa[1] - pb[1], d2 = pa[2] - pb[2];
        s2[g->slot[k]] += (double)(d0 * d0 + d1 * d1 + d2 * d2);
    }
    float mx = 0;
    for (int t = 0; t < g->n_slots; t++) {
        if (!g->count[t]) continue;
        float d = (float)(sqrt(s2[t] / (g->count[t] * 3.0)) / 255.0);
        if (d > mx) mx = d;
    }
    return mx;
}

int cs_an_completion_begin(cs_an_completion *out, const uint8_t *withheld, int64_t orig_row) {
    memset(out, 0, sizeof *out);
    out->orig_row = orig_row;
    out->other_row = -1;
    out->d_orig = out->d_other = INFINITY;
    out->verdict = CS_V_NOVEL;
    /* the bounding box (evidence: where to look) */
    int x0 = S, y0 = S, x1 = -1, y1 = -1;
    for (int p = 0; p < S * S; p++)
        if (withheld[p]) {
            int x = p % S, y = p / S;
            x0 = x < x0 ? x : x0;
            x1 = x > x1 ? x : x1;
            y0 = y < y0 ? y : y0;
            y1 = y > y1 ? y : y1;
            out->n_withheld++;
        }
    if (out->n_withheld) {
        out->rect[0] = x0;
        out->rect[1] = y0;
        out->rect[2] = x1 - x0 + 1;
        out->rect[3] = y1 - y0 + 1;
    }
    return out->n_withheld;
}

/* the grid the region's tiles follow: the references' tiled-L2 grid */
int cs_an_completion_grid(const cs_an_refs *r) {
    return r->cfg.grid > 0 && r->cfg.grid <= S && S % r->cfg.grid == 0 ? r->cfg.grid : 4;
}

int cs_an_completion_orig(cs_an_completion *out, const uint8_t *gen_thumb, const uint8_t *orig, const uint8_t *withheld,
                          int grid) {
    region g;
    if (region_prepare(&g, withheld, grid, &out->n_tiles) || g.n == 0) {
        region_free(&g); /* out of memory: left unmeasured */
        return -1;
    }
    out->d_orig = region_dist(gen_thumb, orig, &g);
    region_free(&g);
    return 0;
}

int cs_an_completion_other(const cs_an_refs *r, const int32_t *grow, const uint8_t *gen_thumb, const uint8_t *orig,
                           int64_t orig_row, const uint8_t *withheld, int grid, float copy_tl2, float *d_other,
                           int64_t *other_row) {
    region g;
    int ignored;
    *d_other = INFINITY;
    *other_row = -1;
    if (region_prepare(&g, withheld, grid, &ignored) || g.n == 0) {
        region_free(&g);
        return -1;
    }
    for (int64_t i = 0; r->thumbs && i < r->n; i++) {
        int64_t row = grow ? grow[i] : i;
        if (row == orig_row) continue;
        const uint8_t *o = r->thumbs + i * (int64_t)S * S * 3;
        if (region_dist(o, orig, &g) <= copy_tl2) continue; /* a twin */
        float d = region_dist(gen_thumb, o, &g);
        if (d < *d_other) { /* rows ascend: the first of equals, as the merge's (distance, row) order */
            *d_other = d;
            *other_row = row;
        }
    }
    region_free(&g);
    return 0;
}

void cs_an_completion_end(cs_an_completion *out, const cs_an_settings *s) {
    out->restored = out->d_orig <= s->near_tl2 && out->d_orig * s->completion_margin < out->d_other;
    if (out->restored) out->verdict = out->d_orig <= s->copy_tl2 ? CS_V_COPY : CS_V_NEAR;
    else if (out->d_other <= s->copy_tl2) out->verdict = CS_V_PARTIAL;
}

void cs_an_completion_audit(cs_an_completion *out, const cs_an_refs *r, const uint8_t *gen_thumb,
                            int64_t orig_row, const uint8_t *withheld, const cs_an_settings *s) {
    if (!cs_an_completion_begin(out, withheld, orig_row) || orig_row < 0 || orig_row >= r->n || !r->thumbs) return;
    const int grid = cs_an_completion_grid(r);
    const uint8_t *orig = r->thumbs + orig_row * (int64_t)S * S * 3;
    if (cs_an_completion_orig(out, gen_thumb, orig, withheld, grid) ||
        cs_an_completion_other(r, NULL, gen_thumb, orig, orig_row, withheld, grid, s->copy_tl2, &out->d_other,
                               &out->other_row))
        return;
    cs_an_completion_end(out, s);
}
