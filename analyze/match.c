/* match.c — candidates per descriptor, exact refinement on thumbnails (see
 * match.h for the pipeline). */
#include "analyze/match.h"

#include "analyze/an_part.h"
#include "analyze/fuse.h"
#include "analyze/lf_colour.h"
#include "analyze/verdict.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"
#include "index/hamming.h"
#include "index/refs.h"

#define S CS_THUMB_SIZE
#define LAYDIM (CS_AN_LAYOUT * CS_AN_LAYOUT * 3)

static const cs_tl2_cfg lay_cfg = {.size = CS_AN_LAYOUT, .grid = 1, .norm = CS_TL2_UNIT};

/* 8x8 colour layout: area average of 8x8 blocks of the 64 px thumbnail. */
static void layout_of(uint8_t *out, const uint8_t *rgb) {
    const int b = S / CS_AN_LAYOUT;
    for (int y = 0; y < CS_AN_LAYOUT; y++)
        for (int x = 0; x < CS_AN_LAYOUT; x++)
            for (int ch = 0; ch < 3; ch++) {
                int sum = 0;
                for (int yy = 0; yy < b; yy++)
                    for (int xx = 0; xx < b; xx++) sum += rgb[((y * b + yy) * S + x * b + xx) * 3 + ch];
                out[(y * CS_AN_LAYOUT + x) * 3 + ch] = (uint8_t)((sum + b * b / 2) / (b * b));
            }
}

void cs_an_refs_free(cs_an_refs *r) {
    if (!r) return;
    free(r->ids);
    if (!r->thumbs_borrowed) free(r->thumbs);
    free(r->tl2);
    free(r->tl2_n2);
    free(r->lay);
    free(r->lay_n2);
    free(r->pdq);
    free(r->pdq_q);
    free(r->phash);
    free(r->dhash);
    memset(r, 0, sizeof *r);
}

typedef struct {
    cs_an_refs *r;
} prep_ctx;

static void prep_one(void *vctx, int64_t i, int thread) {
    (void)thread;
    cs_an_refs *r = ((prep_ctx *)vctx)->r;
    const int D = cs_tl2_dim(&r->cfg), T = cs_tl2_tiles(&r->cfg);
    const uint8_t *rgb = r->thumbs + i * (int64_t)S * S * 3;
    cs_tl2_prepare(r->tl2 + i * D, r->tl2_n2 + i * T, rgb, &r->cfg);
    uint8_t lay[LAYDIM];
    layout_of(lay, rgb);
    cs_tl2_prepare(r->lay + i * LAYDIM, r->lay_n2 + i, lay, &lay_cfg);
}

/* own: thumbs is taken (kept as r->thumbs, or freed on failure);
 * borrow: thumbs is used in place and never freed */
static int refs_build(cs_an_refs *r, int64_t n, const int64_t *ids, uint8_t *own, const uint8_t *thumbs,
                      int borrow, const cs_an_settings *s, cs_err *err) {
    memset(r, 0, sizeof *r);
    if (own) thumbs = own;
    if (borrow) own = (uint8_t *)thumbs, r->thumbs_borrowed = thumbs != NULL;
    r->cfg = cs_tl2_default();
    r->cfg.grid = (int)s->tile_grid;
    if (cs_tl2_check(&r->cfg, err)) {
        if (!borrow) free(own);
        return -1;
    }
    r->n = n;
    const int D = cs_tl2_dim(&r->cfg), T = cs_tl2_tiles(&r->cfg);
    size_t m = n > 0 ? (size_t)n : 1;
    r->has_thumbs = thumbs != NULL;
    /* the prepared floats (4x the thumbnails) only when the exact scan runs */
    r->scan = r->has_thumbs && n <= (int64_t)s->full_scan_max;
    size_t mt = r->has_thumbs ? m : 1, mp = r->scan ? m : 1;
    r->ids = malloc(m * sizeof *r->ids);
    r->thumbs = own ? own : malloc(mt * S * S * 3);
    r->tl2 = malloc(mp * D * sizeof(float));
    r->tl2_n2 = malloc(mp * T * sizeof(float));
    r->lay = malloc(mp * LAYDIM * sizeof(float));
    r->lay_n2 = malloc(mp * sizeof(float));
    r->pdq_q = malloc(m * sizeof *r->pdq_q);
    if (!r->ids || !r->thumbs || !r->tl2 || !r->tl2_n2 || !r->lay || !r->lay_n2 || !r->pdq_q) {
        cs_an_refs_free(r);
        return cs_fail(err, CS_ENOMEM, "analyze: out of memory for %lld reference thumbnails",
                       (long long)n);
    }
    if (n > 0) {
        memcpy(r->ids, ids, (size_t)n * sizeof *ids);
        if (r->has_thumbs && !own) memcpy(r->thumbs, thumbs, (size_t)n * S * S * 3);
    }
    for (int64_t i = 0; i < n; i++) r->pdq_q[i] = -1;
    prep_ctx ctx = {r};
    if (r->scan) cs_parallel_for(cs_threads(), n, prep_one, &ctx);
    return 0;
}

int cs_an_refs_build(cs_an_refs *r, int64_t n, const int64_t *ids, const uint8_t *thumbs,
                     const cs_an_settings *s, cs_err *err) {
    return refs_build(r, n, ids, NULL, thumbs, 0, s, err);
}

int cs_an_refs_build_take(cs_an_refs *r, int64_t n, const int64_t *ids, uint8_t **thumbs,
                          const cs_an_settings *s, cs_err *err) {
    uint8_t *t = *thumbs;
    *thumbs = NULL;
    return refs_build(r, n, ids, t, t, 0, s, err);
}

int cs_an_refs_build_borrow(cs_an_refs *r, int64_t n, const int64_t *ids, const uint8_t *thumbs,
                            const cs_an_settings *s, cs_err *err) {
    return refs_build(r, n, ids, NULL, thumbs, 1, s, err);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int cs_an_refs_set_hashes(cs_an_refs *r, const int64_t *hid, const cs_hashes *h, int64_t m,
                          cs_err *err) {
    size_t n = r->n > 0 ? (size_t)r->n : 1;
    free(r->pdq);
    free(r->phash);
    free(r->dhash);
    r->pdq = calloc(n, 4 * sizeof(uint64_t));
    r->phash = calloc(n, sizeof *r->phash);
    r->dhash = calloc(n, sizeof *r->dhash);
    /* rows sorted by id (ids are ascending from refs.h, but do not rely on it) */
    int64_t *order = malloc(n * 2 * sizeof(int64_t));
    if (!r->pdq || !r->phash || !r->dhash || !order) {
        free(order);
        return cs_fail(err, CS_ENOMEM, "analyze: out of memory for reference hashes");
    }
    for (int64_t i = 0; i < r->n; i++) {
        order[2 * i] = r->ids[i];
        order[2 * i + 1] = i;
    }
    qsort(order, (size_t)r->n, 2 * sizeof(int64_t), cmp_i64);
    for (int64_t j = 0; j < m; j++) {
        int64_t lo = 0, hi = r->n - 1, row = -1;
        while (lo <= hi) {
            int64_t mid = (lo + hi) / 2;
            if (order[2 * mid] == hid[j]) { row = order[2 * mid + 1]; break; }
            if (order[2 * mid] < hid[j]) lo = mid + 1; else hi = mid - 1;
        }
        if (row < 0) continue;
        cs_hamming_pack_pdq(h[j].pdq, r->pdq + row * 4);
        r->pdq_q[row] = (int16_t)h[j].pdq_quality;
        r->phash[row] = h[j].phash;
        r->dhash[row] = h[j].dhash;
    }
    free(order);
    r->has_hashes = 1;
    return 0;
}

int cs_an_query_init(cs_an_query *q, const cs_image *img, int want_hashes, cs_err *err) {
    memset(q, 0, sizeof *q);
    q->img_w = img->w;
    q->img_h = img->h;
    cs_image t = {0};
    if (img->w == S && img->h == S) {
        memcpy(q->thumb, img->rgb, sizeof q->thumb);
    } else {
        if (cs_image_resize(&t, img, S, S, CS_RESIZE_AREA, err)) return -1;
        memcpy(q->thumb, t.rgb, sizeof q->thumb);
        cs_image_free(&t);
    }
    if (!want_hashes) return 0;
    if (cs_hashes_compute(img, &q->h, err)) return -1;
    cs_image m = {0};
    if (cs_image_alloc(&m, img->w, img->h, err)) return -1;
    for (int y = 0; y < img->h; y++)
        for (int x = 0; x < img->w; x++)
            memcpy(m.rgb + ((int64_t)y * img->w + x) * 3,
                   img->rgb + ((int64_t)y * img->w + (img->w - 1 - x)) * 3, 3);
    int rc = cs_hashes_compute(&m, &q->hm, err);
    cs_image_free(&m);
    if (rc) return -1;
    q->has_hashes = 1;
    return 0;
}

const float cs_an_rot_deg[CS_AN_NROT] = {-12.5f, -7.5f, 7.5f, 12.5f};

int cs_an_cand_derotated(const cs_an_cand *c) { return c->rot_deg != 0 && c->d_al == c->d_rot; }

int cs_an_derotate_map(double m[6], int img_w, int img_h, float deg) {
    const double W = img_w > 0 && img_h > 0 ? img_w : S, H = img_w > 0 && img_h > 0 ? img_h : S;
    const double t = deg * 3.14159265358979323846 / 180, c = cos(t), sn = sin(t);
    const double ac = fabs(c), as = fabs(sn), det = ac * ac - as * as;
    /* the grown canvas of a w x h picture turned by t is W = w|c| + h|s|,
     * H = w|s| + h|c|: solved for the picture's own w, h */
    const double w = (W * ac - H * as) / det, h = (H * ac - W * as) / det;
    if (!(det > 0) || w < 1 || h < 1) return -1;
    /* a point (x, y) of the picture's thumbnail is (x/S - 1/2) w, (y/S - 1/2) h
     * image px from its centre, turned by t about the canvas's centre, then
     * scaled to the canvas's thumbnail */
    m[0] = c * w / W, m[1] = -sn * h / W, m[2] = S / 2.0 * (1 - m[0] - m[1]);
    m[3] = sn * w / H, m[4] = c * h / H, m[5] = S / 2.0 * (1 - m[3] - m[4]);
    return 0;
}

int cs_an_derotate(uint8_t *out, const uint8_t *thumb, int img_w, int img_h, float deg) {
    double m[6];
    if (cs_an_derotate_map(m, img_w, img_h, deg)) return -1;
    for (int v = 0; v < S; v++)
        for (int u = 0; u < S; u++) {
            /* pixel centres, bilinear */
            double x = u + 0.5, y = v + 0.5;
            float tx = (float)(m[0] * x + m[1] * y + m[2] - 0.5), ty = (float)(m[3] * x + m[4] * y + m[5] - 0.5);
            if (tx < 0) tx = 0;
            if (ty < 0) ty = 0;
            if (tx > S - 1) tx = S - 1;
            if (ty > S - 1) ty = S - 1;
            int x1 = (int)tx, y1 = (int)ty, x2 = x1 + 1 < S ? x1 + 1 : x1, y2 = y1 + 1 < S ? y1 + 1 : y1;
            float fx = tx - x1, fy = ty - y1;
            const uint8_t *a = thumb + (y1 * S + x1) * 3, *b = thumb + (y1 * S + x2) * 3;
            const uint8_t *cc = thumb + (y2 * S + x1) * 3, *d = thumb + (y2 * S + x2) * 3;
            for (int ch = 0; ch < 3; ch++) {
                float top = a[ch] + (b[ch] - a[ch]) * fx, bot = cc[ch] + (d[ch] - cc[ch]) * fx;
                out[(v * S + u) * 3 + ch] = (uint8_t)(top + (bot - top) * fy + 0.5f);
            }
        }
    return 0;
}

void cs_an_render_crop(uint8_t *out, const uint8_t *rgb, int n, float x0, float y0, float side) {
    enum { MAXN = 256 };
    if (n > MAXN) return;
    const float sc = side / n;
    int xo1[MAXN], xo2[MAXN];
    float fxs[MAXN];
    for (int u = 0; u < n; u++) {
        float sx = x0 + (u + 0.5f) * sc - 0.5f;
        if (sx < 0) sx = 0;
        if (sx > n - 1) sx = (float)(n - 1);
        int x1 = (int)sx;
        xo1[u] = x1 * 3;
        xo2[u] = (x1 + 1 < n ? x1 + 1 : x1) * 3;
        fxs[u] = sx - x1;
    }
    for (int v = 0; v < n; v++) {
        float sy = y0 + (v + 0.5f) * sc - 0.5f;
        if (sy < 0) sy = 0;
        if (sy > n - 1) sy = (float)(n - 1);
        int y1 = (int)sy, y2 = y1 + 1 < n ? y1 + 1 : y1;
        float fy = sy - y1;
        const uint8_t *r1 = rgb + (int64_t)y1 * n * 3, *r2 = rgb + (int64_t)y2 * n * 3;
        uint8_t *o = out + (int64_t)v * n * 3;
        for (int u = 0; u < n; u++) {
            const float fx = fxs[u];
            const uint8_t *a = r1 + xo1[u], *b = r1 + xo2[u], *c = r2 + xo1[u], *d = r2 + xo2[u];
            for (int ch = 0; ch < 3; ch++) {
                float top = a[ch] + (b[ch] - a[ch]) * fx, bot = c[ch] + (d[ch] - c[ch]) * fx;
                o[u * 3 + ch] = (uint8_t)(top + (bot - top) * fy + 0.5f);
            }
        }
    }
}

static int popc256(const uint8_t *a, const uint8_t *b) {
    int d = 0;
    for (int k = 0; k < 4; k++) {
        uint64_t x, y;
        memcpy(&x, a + 8 * k, 8);
        memcpy(&y, b + 8 * k, 8);
        d += __builtin_popcountll(x ^ y);
    }
    return d;
}

/* Per-tile std of a prepared image (unit scale), for "informative" tiles. */
static void tile_stats(float *std, const float *p, const cs_tl2_cfg *c) {
    const int T = cs_tl2_tiles(c), td = cs_tl2_tile_dim(c);
    for (int t = 0; t < T; t++) {
        double s = 0, s2 = 0;
        for (int i = 0; i < td; i++) {
            s += p[t * td + i];
            s2 += (double)p[t * td + i] * p[t * td + i];
        }
        double m = s / td, v = s2 / td - m * m;
        std[t] = (float)sqrt(v > 0 ? v : 0);
    }
}

/* 4x4 area average: 64 px -> 16 px, for the coarse alignment search. */
static void area4(uint8_t *out, const uint8_t *rgb) {
    const int C = S / 4;
    for (int y = 0; y < C; y++)
        for (int x = 0; x < C; x++)
            for (int ch = 0; ch < 3; ch++) {
                int sum = 0;
                for (int yy = 0; yy < 4; yy++)
                    for (int xx = 0; xx < 4; xx++) sum += rgb[((y * 4 + yy) * S + x * 4 + xx) * 3 + ch];
                out[(y * C + x) * 3 + ch] = (uint8_t)((sum + 8) / 16);
            }
}

void cs_an_prep16(float *out, const uint8_t *thumb, const cs_tl2_cfg *cfg) {
    enum { C = S / 4 };
    const cs_tl2_cfg c16 = {.size = C, .grid = cfg->grid <= C ? cfg->grid : C, .norm = CS_TL2_UNIT};
    uint8_t t16[C * C * 3];
    area4(t16, thumb);
    cs_tl2_prepare(out, NULL, t16, &c16);
}

/* Coarse search of the crop box on 16 px images: the best two boxes
 * (x0, y0, side in 64 px units), their distances and mirroring. */
static void coarse_boxes(const cs_an_refs *r, int32_t row, const float *q16id, const float *q16mir, float bd[2],
                         float bb[2][3], int bm[2]) {
    static const float fracs[] = {0.9375f, 0.875f, 0.8125f, 0.75f};
    enum { C = S / 4 };
    const cs_tl2_cfg *cfg = &r->cfg;
    const cs_tl2_cfg c16 = {.size = C, .grid = cfg->grid <= C ? cfg->grid : C, .norm = CS_TL2_UNIT};
    uint8_t r16[C * C * 3], b16[C * C * 3];
    float p16[C * C * 3];
    area4(r16, r->thumbs + (int64_t)row * S * S * 3);
    bd[0] = bd[1] = INFINITY;
    bm[0] = bm[1] = 0;
    for (int fi = 0; fi < 4; fi++) {
        float side = fracs[fi] * S, span = S - side;
        for (int oy = 0; oy < 3; oy++)
            for (int ox = 0; ox < 3; ox++) {
                float x0 = span * ox / 2, y0 = span * oy / 2;
                cs_an_render_crop(b16, r16, C, x0 / 4, y0 / 4, side / 4);
                cs_tl2_prepare(p16, NULL, b16, &c16);
                float da = cs_tl2_pair(NULL, q16id, p16, &c16), db = cs_tl2_pair(NULL, q16mir, p16, &c16);
                float d = da < db ? da : db;
                int slot = d < bd[0] ? 0 : d < bd[1] ? 1 : -1;
                if (slot < 0) continue;
                if (slot == 0) {
                    bd[1] = bd[0];
                    bm[1] = bm[0];
                    memcpy(bb[1], bb[0], sizeof bb[0]);
                }
                bd[slot] = d;
                bm[slot] = db < da;
                bb[slot][0] = x0;
                bb[slot][1] = y0;
                bb[slot][2] = side;
            }
    }
}

/* The aligned distance: the best two coarse boxes measured exactly at 64 px;
 * a closer one replaces c's d_al, box and tile distances. Returns the
 * prepared crop that won (inside *crop, which the caller frees), or ref. */
static const float *align_box(cs_an_cand *c, const cs_an_refs *r, int32_t row, const float *qid, const float *qmir,
                              const float *q16id, const float *q16mir, const float *ref, float **crop) {
    const cs_tl2_cfg *cfg = &r->cfg;
    const int D = cs_tl2_dim(cfg), T = cs_tl2_tiles(cfg);
    float bd[2], bb[2][3];
    int bm[2];
    coarse_boxes(r, row, q16id, q16mir, bd, bb, bm);
    const float *best_ref = ref;
    uint8_t buf[S * S * 3];
    *crop = malloc(sizeof(float) * D * 2);
    if (!*crop) return best_ref;
    float *cur = *crop, *keep = *crop + D;
    for (int j = 0; j < 2; j++) {
        if (!isfinite(bd[j])) continue;
        cs_an_render_crop(buf, r->thumbs + (int64_t)row * S * S * 3, S, bb[j][0], bb[j][1], bb[j][2]);
        cs_tl2_prepare(cur, NULL, buf, cfg);
        float tdx[CS_TL2_MAX_TILES];
        float d = cs_tl2_pair(tdx, bm[j] ? qmir : qid, cur, cfg);
        if (d < c->d_al) {
            c->d_al = d;
            c->al_mirrored = bm[j];
            memcpy(c->box, bb[j], sizeof c->box);
            memcpy(c->tile_d, tdx, sizeof(float) * T);
            float *t = keep; keep = cur; cur = t;
            best_ref = keep;
        }
    }
    return best_ref;
}

/* Informative and matched tiles, and the best and worst tile, against the
 * reference's tile spreads; and the tiles with content in either image (the
 * generation's tiles at the same alignment, gen): a tile where the
 * generation has a picture and the reference is plain (another glyph on the
 * same blank page) is a difference the partial rule must count. */
static void count_tiles(cs_an_cand *c, const float *best_ref, const float *gen, const cs_tl2_cfg *cfg,
                        const cs_an_settings *s) {
    const int T = cs_tl2_tiles(cfg);
    float rstd[CS_TL2_MAX_TILES], gstd[CS_TL2_MAX_TILES];
    tile_stats(rstd, best_ref, cfg);
    tile_stats(gstd, gen, cfg);
    c->best_tile = c->worst_tile = -1;
    for (int t = 0; t < T; t++) {
        int inf = rstd[t] >= s->tile_min_std;
        c->tiles_content += inf || gstd[t] >= s->tile_min_std;
        if (inf) {
            c->tiles_informative++;
            if (c->tile_d[t] <= s->partial_tile_l2) c->tiles_matched++;
            if (c->best_tile < 0 || c->tile_d[t] < c->tile_d[c->best_tile]) c->best_tile = t;
        }
        if (c->worst_tile < 0 || c->tile_d[t] > c->tile_d[c->worst_tile]) c->worst_tile = t;
    }
}

/* PDQ, pHash and dHash distances, each the nearer of the query and its mirror. */
static void hash_distances(cs_an_cand *c, const cs_an_refs *r, int32_t row, const cs_an_query *q) {
    if (!(q->has_hashes && r->has_hashes && r->pdq_q[row] >= 0)) return;
    const uint8_t *rp = (const uint8_t *)(r->pdq + (int64_t)row * 4);
    int p1 = popc256(q->h.pdq, rp), p2 = popc256(q->hm.pdq, rp);
    c->pdq = p1 < p2 ? p1 : p2;
    c->pdq_q_ref = r->pdq_q[row];
    int h1 = __builtin_popcountll(q->h.phash ^ r->phash[row]), h2 = __builtin_popcountll(q->hm.phash ^ r->phash[row]);
    c->phash = h1 < h2 ? h1 : h2;
    h1 = __builtin_popcountll(q->h.dhash ^ r->dhash[row]);
    h2 = __builtin_popcountll(q->hm.dhash ^ r->dhash[row]);
    c->dhash = h1 < h2 ? h1 : h2;
}

/* tiled L2 between two references (as is and mirrored, the nearer): are they one picture? */
static float ref_ref_d(const cs_an_refs *r, int32_t a, int32_t b, float *buf) {
    const cs_tl2_cfg *cfg = &r->cfg;
    const int D = cs_tl2_dim(cfg);
    uint8_t mir[S * S * 3];
    cs_tl2_prepare(buf, NULL, r->thumbs + (int64_t)a * S * S * 3, cfg);
    cs_tl2_prepare(buf + D, NULL, r->thumbs + (int64_t)b * S * S * 3, cfg);
    memcpy(mir, r->thumbs + (int64_t)b * S * S * 3, sizeof mir);
    cs_tl2_hflip_rgb(mir, S);
    cs_tl2_prepare(buf + 2 * D, NULL, mir, cfg);
    float d1 = cs_tl2_pair(NULL, buf, buf + D, cfg), d2 = cs_tl2_pair(NULL, buf, buf + 2 * D, cfg);
    return d1 < d2 ? d1 : d2;
}

void cs_an_mark_ambiguous(cs_an_cand *cand, int nc, const cs_an_refs *r, int gen_pdq_quality,
                          const cs_an_settings *s) {
    float *buf = NULL;
    for (int m = 0; m < nc; m++) {
        cs_an_cand *c = &cand[m];
        /* the pixel rules and the pixel confirmation of PDQ and embedding matches */
        double tl2_max = fmax(s->near_tl2, fmax(s->pdq_confirm_tl2, s->embed_confirm_tl2));
        int want_tl2 = c->d_al <= tl2_max, want_tiles = c->tiles_matched >= s->partial_min_tiles;
        if (!want_tl2 && !want_tiles) continue;
        int amb = 0;
        for (int k = 0; k < nc && amb != (CS_AN_AMBIG_TL2 | CS_AN_AMBIG_TILES); k++) {
            if (k == m || cand[k].row == c->row) continue;
            int a = 0;
            if (want_tl2 && !(amb & CS_AN_AMBIG_TL2) && CS_LFV_RATIO * cand[k].d_al <= c->d_al) a |= CS_AN_AMBIG_TL2;
            if (want_tiles && !(amb & CS_AN_AMBIG_TILES) &&
                cand[k].tiles_matched >= CS_LFV_RATIO * c->tiles_matched)
                a |= CS_AN_AMBIG_TILES;
            if (!a) continue;
            if (!r->has_thumbs || !r->thumbs) break; /* no pixels to tell the references apart */
            if (!buf && !(buf = malloc(sizeof(float) * 3 * (size_t)cs_tl2_dim(&r->cfg)))) return;
            /* two references that are one picture (a duplicate in the index) are no rival */
            if (ref_ref_d(r, c->row, cand[k].row, buf) > s->near_tl2) amb |= a;
        }
        if (amb == c->ambiguous) continue;
        c->ambiguous = amb;
        cs_an_verdict_cand(c, gen_pdq_quality, s);
        cs_an_verdict_local(c, s);
    }
    free(buf);
}

/* The derotated views of a generation, prepared for the tiled L2. The
 * candidates of one generation are refined one after another on one thread
 * (verify_one; the ranks' verification likewise), so the views of the last
 * generation are kept per thread and made once per generation, not once per
 * candidate (they were 7 % of an analysis's CPU); the key is the whole
 * thumbnail, the image size and the layout, so a kept view is the one that
 * would be made. */
typedef struct {
    int valid, w, h;
    cs_tl2_cfg cfg;
    uint8_t thumb[S * S * 3];
    int ok[CS_AN_NROT];
    float view[CS_AN_NROT][S * S * 3];
} rot_views;

static _Thread_local rot_views rv_tls;

static const rot_views *rot_views_of(const cs_an_query *q, const cs_tl2_cfg *cfg) {
    rot_views *v = &rv_tls;
    if (cs_tl2_dim(cfg) > S * S * 3) return NULL;
    if (v->valid && v->w == q->img_w && v->h == q->img_h && v->cfg.size == cfg->size && v->cfg.grid == cfg->grid &&
        v->cfg.norm == cfg->norm && !memcmp(v->thumb, q->thumb, sizeof v->thumb))
        return v;
    v->valid = 1, v->w = q->img_w, v->h = q->img_h, v->cfg = *cfg;
    memcpy(v->thumb, q->thumb, sizeof v->thumb);
    for (int k = 0; k < CS_AN_NROT; k++) {
        uint8_t px[S * S * 3];
        v->ok[k] = cs_an_derotate(px, q->thumb, q->img_w, q->img_h, cs_an_rot_deg[k]) == 0;
        if (v->ok[k]) cs_tl2_prepare(v->view[k], NULL, px, cfg);
    }
    return v;
}

void cs_an_refine(cs_an_cand *c, const cs_an_refs *r, int32_t row, const float *qid,
                  const float *qmir, const float *q16id, const float *q16mir, int do_align,
                  const cs_an_query *q, const cs_an_settings *s) {
    const cs_tl2_cfg *cfg = &r->cfg;
    const int D = cs_tl2_dim(cfg), T = cs_tl2_tiles(cfg);
    float emb = c->emb_cos; /* set by the caller before refinement, or -2 */
    int emb_cal = c->emb_calibrated;
    cs_lfv_match lf = c->lf; /* likewise (inliers 0: none) */
    memset(c, 0, sizeof *c);
    c->row = row;
    c->emb_cos = emb;
    c->emb_calibrated = emb_cal;
    c->lf = lf;
    c->lf.recolour = -1;
    c->pdq = c->phash = c->dhash = -1;
    c->pdq_q_ref = -1;
    c->d_rot = INFINITY; /* no derotated view tried (below, or no pixels) */
    if (!r->has_thumbs) { /* no pixels: hashes and embeddings only */
        c->d_id = c->d_al = INFINITY;
        c->box[2] = (float)S;
        c->best_tile = c->worst_tile = -1;
        goto hashes;
    }
    float *own = NULL; /* the prepared reference, when not kept for the scan */
    if (!r->scan) {
        own = malloc(sizeof(float) * D);
        if (!own) {
            c->d_id = c->d_al = INFINITY;
            c->best_tile = c->worst_tile = -1;
            goto hashes;
        }
        cs_tl2_prepare(own, NULL, r->thumbs + (int64_t)row * S * S * 3, cfg);
    }
    const float *ref = own ? own : r->tl2 + (int64_t)row * D;
    float td_id[CS_TL2_MAX_TILES], td_m[CS_TL2_MAX_TILES];
    float a = cs_tl2_pair(td_id, qid, ref, cfg), b = cs_tl2_pair(td_m, qmir, ref, cfg);
    c->id_mirrored = b < a;
    c->d_id = c->id_mirrored ? b : a;
    c->al_mirrored = c->id_mirrored;
    c->d_al = c->d_id;
    c->box[0] = c->box[1] = 0;
    c->box[2] = (float)S;
    memcpy(c->tile_d, c->id_mirrored ? td_m : td_id, sizeof(float) * T);
    /* The derotated views (CS_AN_NROT) are an alignment, as the crop boxes
     * are: they can bring d_al down, never d_id, so a rotated picture is at
     * most a near-copy (copy_tl2 reads d_id: a turned copy is an edited one,
     * and a view is a crop zoomed by |cos| + |sin|, which can match a
     * picture drawn at another scale). Tried where the alignment search
     * runs, when the picture is not already a copy as it is; the best view,
     * if better than as is. */
    c->d_rot = INFINITY;
    const rot_views *rv = q && do_align && s->align > 0 && c->d_id > s->copy_tl2 ? rot_views_of(q, cfg) : NULL;
    int bv = -1; /* the view that gave d_al */
    for (int v = 0; rv && v < CS_AN_NROT; v++) {
        if (!rv->ok[v]) continue;
        float td_r[CS_TL2_MAX_TILES];
        float d = cs_tl2_pair(td_r, rv->view[v], ref, cfg);
        if (!(d < c->d_rot)) continue;
        c->d_rot = d;
        c->rot_deg = cs_an_rot_deg[v];
        if (!(d < c->d_al)) continue;
        c->d_al = d;
        c->al_mirrored = 0;
        memcpy(c->tile_d, td_r, sizeof(float) * T);
        bv = v;
    }
    float *crop = NULL;
    const float *best_ref = ref;
    if (do_align && s->align > 0 && c->d_id > s->copy_tl2 && q16id && q16mir)
        best_ref = align_box(c, r, row, qid, qmir, q16id, q16mir, ref, &crop);
    /* the generation's tiles as compared: a derotated view unless a crop box won */
    const float *gen = bv >= 0 && cs_an_cand_derotated(c) ? rv->view[bv] : c->al_mirrored ? qmir : qid;
    count_tiles(c, best_ref, gen, cfg, s);
    free(crop);
    free(own);
    /* a verification the local rule could flag: is the colour change global
     * (a copy, edited) or one part recoloured (a twin)? (analyze/lf_colour.h) */
    uint8_t map[S * S];
    if (q && cs_an_local_measure(&c->lf, s)) {
        cs_lfc k;
        cs_lfc_measure_map(r->thumbs + (int64_t)row * S * S * 3, c->lf.ref_w, c->lf.ref_h, q->thumb, c->lf.gen_w,
                           c->lf.gen_h, S, c->lf.m_orig, s->lf_colour_tol, &k, map);
        cs_lfp_measure(map, S, &c->part_lf);
        cs_lfp_shape(&c->part_lf, cs_lfc_parts_moved(&k));
        c->lf.recolour = k.recolour;
        c->lf.colour_fit = k.fit;
        c->lf.hue_deg = k.hue_deg;
        c->lf.colour_steps = k.steps;
        c->lf.parts = k.parts;
        c->lf.parts_recoloured = k.parts_recoloured;
        cs_an_part_lf_take(c, q); /* at 256 px where the local stage measured it (analyze/an_part.h) */
    }
    /* part_al (the replaced-part veto after this alignment) is measured
     * later, only where a verdict hangs on it (analyze/an_part.h) */
hashes:
    hash_distances(c, r, row, q);
}

/* ---- batch ---- */

typedef struct {
    const cs_an_refs *r;
    const cs_an_query *q;
    const cs_an_settings *s;
    cs_an_result *res;
    const float *qp;        /* [2nq][D] prepared: 2i = as is, 2i+1 = mirrored */
    int k;
    cs_an_pending *pend;    /* [nq] each generation's candidates between the stages */
} batch_ctx;

/* the fused score of a candidate (analyze/fuse.h's analytic nulls); PDQ
 * counts only where its qualities make it evidence (pdq_min_quality) */
static void fused_of(const cs_an_cand *c, int gen_q, int64_t n_refs, const cs_an_settings *s, float *zl, float *zp,
                     float *f) {
    *zl = c->lf.inliers > 0 ? (float)cs_fuse_z_nfa(c->lf.log10_nfa1) : 0;
    *zp = c->pdq >= 0 && gen_q >= s->pdq_min_quality && c->pdq_q_ref >= s->pdq_min_quality
              ? (float)cs_fuse_z_pdq(c->pdq, 2.0 * (double)n_refs)
              : 0;
    *f = *zl > *zp ? *zl : *zp;
}

/* The fused score as the finding's order reads it: each descriptor's z only
 * where that descriptor is evidence by its own bound (local: a consensus
 * beyond chance, NFA < 1, below which cs_fuse_z_nfa is 0 -- the share
 * lf_min_share, "not a shared detail", is the verdict's and is not applied
 * here: gating the order by it was measured two ways that disagreed on the
 * same queries, docs/BENCHMARKS.md session 9, h13r; PDQ: a match at
 * pdq_near, the PDQ authors' bound). Below them a z is chance-level: the
 * binomial null of PDQ treats its 256 bits as independent, and unrelated
 * pictures do sit at distance 90-100, z ~1-3; 4-5 inliers on a shared
 * detail give z ~1-4 (issue 13's diagnosis in docs/BENCHMARKS.md, session 7:
 * such a z put an unrelated reference above a rotated or cropped copy
 * whose aligned tiled L2 was half as far). Where no descriptor is evidence,
 * the pixels decide (the aligned tiled L2, the next key). */
static float fused_evidence(const cs_an_cand *c, float zl, float zp, const cs_an_settings *s) {
    float el = zl;
    float ep = c->pdq >= 0 && c->pdq <= s->pdq_near ? zp : 0;
    return el > ep ? el : ep;
}

typedef struct {
    const cs_an_cand *c;
    float zl, zp, f;
    float fe;   /* fused_evidence */
    float px;   /* pixels_as_evidence */
} ranked;

/* The aligned tiled L2 where the pixels are read as a match, INFINITY
 * beyond: at or below ratio_tl2, the bound of the ratio test and beyond
 * which no pixel rule reads the pixels at all (0.25, the median distance
 * between distinct pictures, settings.c). Further than that, distinct
 * pictures are commonly as close, and the pixel-nearest of many unrelated
 * references beats a copy whose pixels do not align with its source: a
 * reference pasted at 60 % into a new canvas, a caption over a crop, a
 * rotation's grown canvas (issue 13, docs/BENCHMARKS.md session 9, h13r:
 * the right reference at d_al 0.59-0.75 under a noise reference at
 * 0.36-0.45, itself the only candidate with a verified geometry). */
static float pixels_as_evidence(const cs_an_cand *c, const cs_an_settings *s) {
    return c->d_al <= s->ratio_tl2 ? c->d_al : INFINITY;
}

/* The finding's order among candidates (a total order: the same at any
 * thread count):
 *  1. the verdict;
 *  2. the fused score of the descriptors that are evidence by their own
 *     bounds (fused_evidence);
 *  3. where none is: the aligned pixels, where they are read as a match
 *     (pixels_as_evidence);
 *  4. where they are not either: a verified geometric consensus below
 *     significance, by its inliers. All candidates of one generation are
 *     verified against the same generation keypoints, so the count of
 *     those a candidate's geometry explains is a share of one denominator
 *     and ranks them; it is not compared across generations (issue 13:
 *     raw inlier counts do not rank across queries; the finding's severity
 *     does not read it). No consensus (0 inliers) comes last;
 *  5. the aligned tiled L2 (chance level by now, the nearest still first);
 *  6. the row. */
static int cmp_ranked(const void *va, const void *vb) {
    const ranked *a = va, *b = vb;
    if (a->c->verdict != b->c->verdict) return a->c->verdict > b->c->verdict ? -1 : 1;
    if (a->fe != b->fe) return a->fe > b->fe ? -1 : 1;
    if (a->px != b->px) return a->px < b->px ? -1 : 1;
    if (a->c->lf.inliers != b->c->lf.inliers) return a->c->lf.inliers > b->c->lf.inliers ? -1 : 1;
    if (a->c->d_al != b->c->d_al) return a->c->d_al < b->c->d_al ? -1 : 1;
    return (a->c->row > b->c->row) - (a->c->row < b->c->row);
}

/* Stage 1 of a generation: the union of its candidates (x->pend[i]), each
 * with its embedding and local-feature scores; none: the verdict novel. */
static void cands_one(void *vctx, int64_t i, int thread) {
    (void)thread;
    batch_ctx *x = vctx;
    const cs_an_refs *r = x->r;
    const cs_an_query *q = x->q + i;
    cs_an_result *res = x->res + i;
    cs_an_pending *pd = x->pend + i;
    int k = x->k;
    res->gen_pdq_quality = q->has_hashes && r->has_hashes ? q->h.pdq_quality : -1;
    res->n_emb = q->n_emb < CS_AN_K ? q->n_emb : CS_AN_K;
    for (int j = 0; j < res->n_emb; j++) {
        res->emb[j].row = q->emb_row[j];
        res->emb[j].score = q->emb_cos[j];
    }
    res->n_lf = q->n_lf < CS_AN_LFK ? q->n_lf : CS_AN_LFK;
    for (int j = 0; j < res->n_lf; j++) {
        res->lf[j].row = q->lf_row[j];
        res->lf[j].score = q->lf[j].score;
    }
    /* union of candidates */
    int32_t rows[CS_AN_MAXCAND];
    uint8_t *align = pd->align;
    int nc = 0;
    pd->cand = NULL;
    pd->nc = 0;
    const cs_an_hit *lists[] = {res->tl2, res->lay, res->pdq, res->phash, res->dhash, res->emb, res->lf};
    const int lens[] = {res->n_tl2, res->n_lay, res->n_pdq, res->n_phash, res->n_dhash, res->n_emb, res->n_lf};
    for (int l = 0; l < 7; l++)
        for (int j = 0; j < lens[l] && j < k; j++) {
            int32_t row = lists[l][j].row, dup = -1;
            if (row < 0 || row >= r->n) continue;
            for (int m = 0; m < nc; m++)
                if (rows[m] == row) dup = m;
            /* the alignment search is the costly part: only the first few of
             * each list get it */
            int al = j < CS_AN_ALIGN_TOP;
            if (dup >= 0) align[dup] |= al;
            else if (nc < CS_AN_MAXCAND) {
                align[nc] = al;
                rows[nc++] = row;
            }
        }
    res->n_cand = nc;
    res->n_nb = 0;
    res->has_best = 0;
    res->second_row = -1;
    res->d2 = INFINITY;
    if (nc == 0) {
        cs_an_verdict_result(res, x->s);
        return;
    }
    cs_an_cand *cand = malloc(sizeof(cs_an_cand) * nc);
    if (!cand) { /* out of memory: no finding beyond "novel" */
        cs_an_verdict_result(res, x->s);
        return;
    }
    for (int m = 0; m < nc; m++) {
        cand[m].row = rows[m];
        cand[m].emb_cos = -2;
        cand[m].emb_calibrated = q->emb_calibrated;
        for (int j = 0; j < res->n_emb; j++)
            if (res->emb[j].row == rows[m]) cand[m].emb_cos = res->emb[j].score;
        memset(&cand[m].lf, 0, sizeof cand[m].lf);
        for (int j = 0; j < res->n_lf; j++)
            if (q->lf_row[j] == rows[m]) cand[m].lf = q->lf[j];
    }
    pd->cand = cand;
    pd->nc = nc;
}

void cs_an_query_prep(float *qid, float *qmir, float *q16, const cs_an_query *q, const cs_tl2_cfg *cfg) {
    uint8_t mir[S * S * 3];
    memcpy(mir, q->thumb, sizeof mir);
    cs_tl2_hflip_rgb(mir, S);
    if (qid) cs_tl2_prepare(qid, NULL, q->thumb, cfg);
    if (qmir) cs_tl2_prepare(qmir, NULL, mir, cfg);
    cs_an_prep16(q16, q->thumb, cfg);
    cs_an_prep16(q16 + CS_AN_Q16, mir, cfg);
}

void cs_an_verify(cs_an_cand *c, const cs_an_refs *r, int do_align, const float *qid, const float *qmir,
                  const float *q16, const cs_an_query *q, int gen_pdq_quality, const cs_an_settings *s) {
    cs_an_refine(c, r, c->row, qid, qmir, q16, q16 + CS_AN_Q16, do_align, q, s);
    cs_an_judge(c, r, q, gen_pdq_quality, s);
}

/* Stage 2 in this process: every candidate of generation i verified. */
static void verify_one(void *vctx, int64_t i, int thread) {
    (void)thread;
    batch_ctx *x = vctx;
    const cs_an_pending *pd = x->pend + i;
    if (!pd->nc) return;
    const int D = cs_tl2_dim(&x->r->cfg);
    float q16[2 * CS_AN_Q16];
    cs_an_query_prep(NULL, NULL, q16, x->q + i, &x->r->cfg);
    for (int m = 0; m < pd->nc; m++)
        cs_an_verify(&pd->cand[m], x->r, pd->align[m], x->qp + (2 * i) * D, x->qp + (2 * i + 1) * D, q16, x->q + i,
                     x->res[i].gen_pdq_quality, x->s);
}

/* Stage 3: the rivals, the ranking, the ratio test and the verdict. */
static void finish_one(void *vctx, int64_t i, int thread) {
    (void)thread;
    batch_ctx *x = vctx;
    const cs_an_refs *r = x->r;
    cs_an_result *res = x->res + i;
    cs_an_cand *cand = x->pend[i].cand;
    int nc = x->pend[i].nc;
    x->pend[i].cand = NULL;
    if (!nc) return;
    cs_an_mark_ambiguous(cand, nc, r, res->gen_pdq_quality, x->s);
    /* The scan's tiled L2 comes from sgemm (|a|^2 + |b|^2 - 2ab), whose
     * cancellation leaves ~1e-3 where the exact distance is 0: the list
     * reports the refined exact d_id, so a descriptor score and the evidence's
     * distance agree for the same pair (issue 13). */
    for (int j = 0; j < res->n_tl2; j++)
        for (int m = 0; m < nc; m++)
            if (cand[m].row == res->tl2[j].row && isfinite(cand[m].d_id))
                res->tl2[j].score = cand[m].d_rot < cand[m].d_id ? cand[m].d_rot : cand[m].d_id;
    for (int a = 1; a < res->n_tl2; a++) {
        cs_an_hit h = res->tl2[a];
        int p = a;
        while (p > 0 && res->tl2[p - 1].score > h.score) {
            res->tl2[p] = res->tl2[p - 1];
            p--;
        }
        res->tl2[p] = h;
    }
    ranked *rk = malloc(sizeof(ranked) * nc);
    int b = 0;
    if (rk) {
        for (int m = 0; m < nc; m++) {
            rk[m].c = &cand[m];
            fused_of(&cand[m], res->gen_pdq_quality, r->n, x->s, &rk[m].zl, &rk[m].zp, &rk[m].f);
            rk[m].fe = fused_evidence(&cand[m], rk[m].zl, rk[m].zp, x->s);
            rk[m].px = pixels_as_evidence(&cand[m], x->s);
        }
        qsort(rk, (size_t)nc, sizeof *rk, cmp_ranked);
        b = (int)(rk[0].c - cand);
        res->n_nb = nc < CS_AN_NB ? nc : CS_AN_NB;
        for (int m = 0; m < res->n_nb; m++) {
            const cs_an_cand *c = rk[m].c;
            res->nb[m] = (cs_an_nb){c->row, c->verdict, c->rule, c->d_id, c->d_al, c->pdq, c->phash, c->dhash,
                                    c->emb_cos, c->lf.inliers > 0 ? c->lf.score : 0, c->lf.inliers,
                                    c->lf.coverage, rk[m].zl, rk[m].zp, rk[m].f, c->d_rot, c->rot_deg};
        }
        free(rk);
    } else { /* out of memory: the most severe, nearest */
        for (int m = 1; m < nc; m++)
            if (cand[m].verdict > cand[b].verdict || (cand[m].verdict == cand[b].verdict && cand[m].d_al < cand[b].d_al))
                b = m;
    }
    res->best = cand[b];
    res->has_best = 1;
    /* ratio test: nearest and second-nearest by aligned tiled L2 */
    int n1 = -1, n2 = -1;
    for (int m = 0; m < nc; m++) {
        if (n1 < 0 || cand[m].d_al < cand[n1].d_al) { n2 = n1; n1 = m; }
        else if (n2 < 0 || cand[m].d_al < cand[n2].d_al) n2 = m;
    }
    if (n1 != b) { /* the finding is not the pixel-nearest: ratio about the finding's ref */
        n2 = n1;
    }
    if (n2 >= 0) {
        res->d2 = cand[n2].d_al;
        res->second_row = cand[n2].row;
    }
    free(cand);
    cs_an_part_ratio(res, r, x->q + i, x->s);
    cs_an_verdict_result(res, x->s);
    cs_an_verdict_local_result(res);
}

/* Both lists (as is and mirrored, k each) go into a buffer of 2k before the
 * best k are kept: filling the k output slots in list order would let the
 * as-is list crowd out a mirrored hit that ranks first (issue 13). */
void cs_an_merge_topk(cs_an_hit *out, int *nout, int k, const int32_t *ia, const float *da,
                      const int32_t *ib, const float *db) {
    cs_an_hit all[2 * CS_AN_K];
    int n = 0;
    if (k > CS_AN_K) k = CS_AN_K;
    for (int src = 0; src < 2; src++) {
        const int32_t *ix = src ? ib : ia;
        const float *dx = src ? db : da;
        for (int j = 0; j < k; j++) {
            if (ix[j] < 0) continue;
            int found = -1;
            for (int m = 0; m < n; m++)
                if (all[m].row == ix[j]) found = m;
            if (found >= 0) {
                if (dx[j] < all[found].score) all[found].score = dx[j];
                continue;
            }
            all[n++] = (cs_an_hit){ix[j], dx[j]};
        }
    }
    /* stable insertion sort, ascending (ties keep list order: as is first) */
    for (int a = 1; a < n; a++) {
        cs_an_hit h = all[a];
        int p = a;
        while (p > 0 && all[p - 1].score > h.score) {
            all[p] = all[p - 1];
            p--;
        }
        all[p] = h;
    }
    *nout = n < k ? n : k;
    memcpy(out, all, sizeof *out * (size_t)*nout);
}

/* ---- the scans: raw per-shard lists, merged, then per generation ---- */

int cs_an_scan_what(const cs_an_refs *r, const cs_an_settings *s) {
    if (r->n <= 0) return 0;
    int pix = r->has_thumbs && r->n <= (int64_t)s->full_scan_max; /* as refs_build decides r->scan */
    return (pix ? CS_AN_SCAN_PIX : 0) | (r->has_hashes ? CS_AN_SCAN_HASH : 0);
}

int64_t cs_an_raw_len(int64_t nq, int k) { return (int64_t)CS_AN_NLIST * 2 * nq * k; }

void cs_an_raw_clear(cs_an_hit *raw, int64_t nq, int k) {
    for (int64_t i = 0; i < cs_an_raw_len(nq, k); i++) raw[i] = (cs_an_hit){-1, INFINITY};
}

/* (score, row), the order of cs_tl2_topk and cs_hamming_topk; empty last */
static int hit_before(cs_an_hit a, cs_an_hit b) {
    if (a.row < 0) return 0;
    if (b.row < 0) return 1;
    return a.score < b.score || (a.score == b.score && a.row < b.row);
}

void cs_an_raw_merge(cs_an_hit *acc, const cs_an_hit *src, int64_t nlists, int k) {
    cs_an_hit tmp[CS_AN_K];
    for (int64_t l = 0; l < nlists; l++) {
        cs_an_hit *a = acc + l * k;
        const cs_an_hit *b = src + l * k;
        int i = 0, j = 0;
        for (int t = 0; t < k; t++) {
            if (j < k && (i >= k || hit_before(b[j], a[i]))) tmp[t] = b[j++];
            else if (i < k) tmp[t] = a[i++];
            else tmp[t] = (cs_an_hit){-1, INFINITY};
        }
        memcpy(a, tmp, sizeof *a * (size_t)k);
    }
}

/* The generations and their mirror images prepared for the tiled-L2 and
 * layout scans: rows 2i (as is) and 2i + 1 (mirrored). */
typedef struct {
    float *qp, *qn2, *ql, *qln2;
    float *qr, *qrn2; /* the derotated views: row i * CS_AN_NROT + v (a view that does not exist: a copy of as is) */
} qprep;

static void qprep_free(qprep *p) {
    free(p->qr);
    free(p->qrn2);
    free(p->qp);
    free(p->qn2);
    free(p->ql);
    free(p->qln2);
}

static int qprep_init(qprep *p, const cs_an_refs *r, const cs_an_query *q, int64_t nq, cs_err *err) {
    const int D = cs_tl2_dim(&r->cfg), T = cs_tl2_tiles(&r->cfg);
    size_t m = (size_t)(nq > 0 ? nq : 1);
    p->qp = malloc(sizeof(float) * D * 2 * m);
    p->qn2 = malloc(sizeof(float) * T * 2 * m);
    p->ql = malloc(sizeof(float) * LAYDIM * 2 * m);
    p->qln2 = malloc(sizeof(float) * 2 * m);
    p->qr = malloc(sizeof(float) * D * CS_AN_NROT * m);
    p->qrn2 = malloc(sizeof(float) * T * CS_AN_NROT * m);
    if (!p->qp || !p->qn2 || !p->ql || !p->qln2 || !p->qr || !p->qrn2) {
        qprep_free(p);
        return cs_fail(err, CS_ENOMEM, "analyze: out of memory for %lld generations", (long long)nq);
    }
    for (int64_t i = 0; i < nq; i++) {
        uint8_t m[S * S * 3], lay[LAYDIM];
        memcpy(m, q[i].thumb, sizeof m);
        cs_tl2_hflip_rgb(m, S);
        cs_tl2_prepare(p->qp + (2 * i) * D, p->qn2 + (2 * i) * T, q[i].thumb, &r->cfg);
        cs_tl2_prepare(p->qp + (2 * i + 1) * D, p->qn2 + (2 * i + 1) * T, m, &r->cfg);
        layout_of(lay, q[i].thumb);
        cs_tl2_prepare(p->ql + (2 * i) * LAYDIM, p->qln2 + 2 * i, lay, &lay_cfg);
        layout_of(lay, m);
        cs_tl2_prepare(p->ql + (2 * i + 1) * LAYDIM, p->qln2 + 2 * i + 1, lay, &lay_cfg);
        for (int v = 0; v < CS_AN_NROT; v++) {
            int64_t row = i * CS_AN_NROT + v;
            if (cs_an_derotate(m, q[i].thumb, q[i].img_w, q[i].img_h, cs_an_rot_deg[v])) memcpy(m, q[i].thumb, sizeof m);
            cs_tl2_prepare(p->qr + row * D, p->qrn2 + row * T, m, &r->cfg);
        }
    }
    return 0;
}

/* rows lo.. of one scan (idx local to the range, -1 empty) into raw list l */
static void put_list(cs_an_hit *raw, cs_an_hit *tmp, int l, int64_t nq, int k, const int32_t *idx, const float *dist,
                     int64_t lo, const int32_t *grow) {
    for (int64_t j = 0; j < 2 * nq * k; j++) {
        int64_t row = idx[j] < 0 ? -1 : lo + idx[j];
        tmp[j] = row < 0 ? (cs_an_hit){-1, INFINITY} : (cs_an_hit){grow ? grow[row] : (int32_t)row, dist[j]};
    }
    cs_an_raw_merge(raw + (int64_t)l * 2 * nq * k, tmp, 2 * nq, k);
}

/* The derotated views' tiled-L2 hits joined to each generation's as-is
 * list (ix/dx rows 2i): every reference at its smallest distance over the
 * views, the best k by (distance, index), the order of cs_tl2_topk. A
 * reference among the k nearest by that smallest distance is among the k
 * nearest of the view that gives it, so the join of per-view lists is exact,
 * and the same whether the references are scanned whole or in shards. */
static int rot_join(const cs_an_refs *r, const qprep *p, int64_t lo, int64_t nr, int64_t nq, int k, int32_t *ix,
                    float *dx, cs_err *err) {
    const int D = cs_tl2_dim(&r->cfg), T = cs_tl2_tiles(&r->cfg);
    const int64_t m = nq * CS_AN_NROT;
    int32_t *jx = malloc(sizeof(int32_t) * (size_t)(m * k));
    float *ex = malloc(sizeof(float) * (size_t)(m * k));
    int rc = -1;
    if (!jx || !ex) {
        cs_fail(err, CS_ENOMEM, "analyze: out of memory for the derotated scans");
        goto out;
    }
    if (cs_tl2_topk(jx, ex, k, p->qr, p->qrn2, m, r->tl2 + lo * D, r->tl2_n2 + lo * T, nr, &r->cfg, err)) goto out;
    for (int64_t i = 0; i < nq; i++) {
        cs_an_hit all[(1 + CS_AN_NROT) * CS_AN_K];
        int n = 0;
        for (int v = -1; v < CS_AN_NROT; v++) {
            const int32_t *a = v < 0 ? ix + 2 * i * k : jx + (i * CS_AN_NROT + v) * k;
            const float *d = v < 0 ? dx + 2 * i * k : ex + (i * CS_AN_NROT + v) * k;
            for (int t = 0; t < k; t++) {
                if (a[t] < 0) continue;
                int f = -1;
                for (int u = 0; u < n && f < 0; u++)
                    if (all[u].row == a[t]) f = u;
                if (f < 0) all[n++] = (cs_an_hit){a[t], d[t]};
                else if (d[t] < all[f].score) all[f].score = d[t];
            }
        }
        for (int u = 1; u < n; u++) { /* insertion sort by (distance, index) */
            cs_an_hit h = all[u];
            int j = u;
            while (j > 0 && (all[j - 1].score > h.score || (all[j - 1].score == h.score && all[j - 1].row > h.row))) {
                all[j] = all[j - 1];
                j--;
            }
            all[j] = h;
        }
        for (int t = 0; t < k; t++) {
            ix[2 * i * k + t] = t < n ? all[t].row : -1;
            dx[2 * i * k + t] = t < n ? all[t].score : INFINITY;
        }
    }
    rc = 0;
out:
    free(jx);
    free(ex);
    return rc;
}

static int scan_rows(const cs_an_refs *r, const qprep *p, int64_t lo, int64_t hi, const int32_t *grow,
                     const cs_an_query *q, int64_t nq, int k, int what, int threads, cs_an_hit *raw, cs_err *err) {
    const int D = cs_tl2_dim(&r->cfg), T = cs_tl2_tiles(&r->cfg);
    const int64_t m = 2 * nq, nr = hi - lo;
    if (nr <= 0 || nq <= 0) return 0;
    int32_t *ix = malloc(sizeof(int32_t) * (size_t)(m * k));
    float *dx = malloc(sizeof(float) * (size_t)(m * k));
    uint64_t *qc = calloc((size_t)m * 4, sizeof(uint64_t));
    cs_hamming_hit *hits = malloc(sizeof(cs_hamming_hit) * (size_t)(m * k));
    int *nh = malloc(sizeof(int) * (size_t)m);
    cs_an_hit *tmp = malloc(sizeof *tmp * (size_t)(m * k));
    int rc = -1;
    if (!ix || !dx || !qc || !hits || !nh || !tmp) {
        cs_fail(err, CS_ENOMEM, "analyze: out of memory for the scans");
        goto out;
    }
    if (what & CS_AN_SCAN_PIX) {
        if (cs_tl2_topk(ix, dx, k, p->qp, p->qn2, m, r->tl2 + lo * D, r->tl2_n2 + lo * T, nr, &r->cfg, err)) goto out;
        if (rot_join(r, p, lo, nr, nq, k, ix, dx, err)) goto out;
        put_list(raw, tmp, 0, nq, k, ix, dx, lo, grow);
        if (cs_tl2_topk(ix, dx, k, p->ql, p->qln2, m, r->lay + lo * LAYDIM, r->lay_n2 + lo, nr, &lay_cfg, err))
            goto out;
        put_list(raw, tmp, 1, nq, k, ix, dx, lo, grow);
    }
    if (what & CS_AN_SCAN_HASH) {
        cs_hamming_opts ho = {.k = k, .max_dist = -1, .threads = threads, .kernel = CS_HAMMING_AUTO};
        for (int h = 0; h < 3; h++) {
            const int words = h == 0 ? 4 : 1;
            for (int64_t i = 0; i < nq; i++) {
                const cs_hashes *a = &q[i].h, *b = &q[i].hm;
                if (h == 0) {
                    cs_hamming_pack_pdq(a->pdq, qc + 2 * i * 4);
                    cs_hamming_pack_pdq(b->pdq, qc + (2 * i + 1) * 4);
                } else {
                    qc[2 * i] = h == 1 ? a->phash : a->dhash;
                    qc[2 * i + 1] = h == 1 ? b->phash : b->dhash;
                }
            }
            const uint64_t *codes = h == 0 ? r->pdq : h == 1 ? r->phash : r->dhash;
            if (cs_hamming_topk(codes + lo * words, nr, words, qc, m, &ho, hits, nh, err)) goto out;
            for (int64_t j = 0; j < m; j++)
                for (int t = 0; t < k; t++) {
                    ix[j * k + t] = t < nh[j] ? (int32_t)hits[j * k + t].index : -1;
                    dx[j * k + t] = t < nh[j] ? (float)hits[j * k + t].dist : INFINITY;
                }
            put_list(raw, tmp, 2 + h, nq, k, ix, dx, lo, grow);
        }
    }
    rc = 0;
out:
    free(ix);
    free(dx);
    free(qc);
    free(hits);
    free(nh);
    free(tmp);
    return rc;
}

int cs_an_scan_rows(const cs_an_refs *r, int64_t lo, int64_t hi, const int32_t *grow, const cs_an_query *q,
                    int64_t nq, int k, int what, int threads, cs_an_hit *raw, cs_err *err) {
    if (threads <= 0) threads = cs_threads();
    if (lo < 0) lo = 0;
    if (hi > r->n) hi = r->n;
    if (!r->scan) what &= ~CS_AN_SCAN_PIX;
    if (!r->has_hashes) what &= ~CS_AN_SCAN_HASH;
    if (hi <= lo || nq <= 0 || !what) return 0;
    qprep p = {0};
    if ((what & CS_AN_SCAN_PIX) && qprep_init(&p, r, q, nq, err)) return -1;
    int rc = scan_rows(r, &p, lo, hi, grow, q, nq, k, what, threads, raw, err);
    qprep_free(&p);
    return rc;
}

/* The merged raw lists of the whole index to each generation's lists: the
 * as-is and mirrored lists joined (cs_an_merge_topk); hash hits on a
 * reference without hashes dropped (they held their place in the scan, as
 * they do in one process). r: the whole index (rows are its rows). */
static void lists_finish(const cs_an_refs *r, const cs_an_query *q, int64_t nq, int k, int what,
                         const cs_an_hit *raw, cs_an_result *res) {
    int32_t ia[CS_AN_K], ib[CS_AN_K];
    float da[CS_AN_K], db[CS_AN_K];
    for (int l = 0; l < CS_AN_NLIST; l++) {
        int hash = l >= 2;
        if (!(what & (hash ? CS_AN_SCAN_HASH : CS_AN_SCAN_PIX))) continue;
        for (int64_t i = 0; i < nq; i++) {
            if (hash && !q[i].has_hashes) continue;
            const cs_an_hit *a = raw + ((int64_t)l * 2 * nq + 2 * i) * k, *b = a + k;
            for (int t = 0; t < k; t++) {
                int oka = a[t].row >= 0 && (!hash || r->pdq_q[a[t].row] >= 0);
                int okb = b[t].row >= 0 && (!hash || r->pdq_q[b[t].row] >= 0);
                ia[t] = oka ? a[t].row : -1;
                da[t] = oka ? a[t].score : INFINITY;
                ib[t] = okb ? b[t].row : -1;
                db[t] = okb ? b[t].score : INFINITY;
            }
            cs_an_hit *out = l == 0 ? res[i].tl2 : l == 1 ? res[i].lay : l == 2 ? res[i].pdq : l == 3 ? res[i].phash
                                                                                                 : res[i].dhash;
            int *nout = l == 0   ? &res[i].n_tl2
                        : l == 1 ? &res[i].n_lay
                        : l == 2 ? &res[i].n_pdq
                        : l == 3 ? &res[i].n_phash
                                 : &res[i].n_dhash;
            cs_an_merge_topk(out, nout, k, ia, da, ib, db);
        }
    }
}

int cs_an_match_batch(const cs_an_refs *r, const cs_an_query *q, int64_t nq,
                      const cs_an_settings *s, int threads, cs_an_result *res, cs_err *err) {
    return cs_an_match_batch_sv(r, q, nq, s, threads, res, NULL, NULL, NULL, NULL, err);
}

int cs_an_match_batch_v(const cs_an_refs *r, const cs_an_query *q, int64_t nq, const cs_an_settings *s, int threads,
                        cs_an_result *res, cs_an_verify_fn verify, void *verify_ctx, cs_err *err) {
    return cs_an_match_batch_sv(r, q, nq, s, threads, res, NULL, NULL, verify, verify_ctx, err);
}

int cs_an_match_batch_sv(const cs_an_refs *r, const cs_an_query *q, int64_t nq, const cs_an_settings *s, int threads,
                         cs_an_result *res, cs_an_scan_fn scan, void *scan_ctx, cs_an_verify_fn verify,
                         void *verify_ctx, cs_err *err) {
    if (threads <= 0) threads = cs_threads();
    int k = (int)s->cand_k;
    if (k < 1) k = 1;
    if (k > CS_AN_K) k = CS_AN_K;
    memset(res, 0, sizeof *res * (size_t)nq);
    if (nq <= 0) return 0;
    const int what = cs_an_scan_what(r, s);
    qprep p = {0};
    cs_an_pending *pend = calloc((size_t)nq, sizeof *pend);
    cs_an_hit *raw = malloc(sizeof *raw * (size_t)cs_an_raw_len(nq, k));
    int rc = -1;
    if (!pend || !raw) {
        cs_fail(err, CS_ENOMEM, "analyze: out of memory for %lld generations", (long long)nq);
        goto done;
    }
    if (qprep_init(&p, r, q, nq, err)) goto done;
    cs_an_raw_clear(raw, nq, k);
    if (scan) {
        if (what && scan(scan_ctx, q, nq, k, what, raw, err)) goto done;
    } else if (what && scan_rows(r, &p, 0, r->n, NULL, q, nq, k, r->scan ? what : what & ~CS_AN_SCAN_PIX, threads,
                                 raw, err))
        goto done;
    lists_finish(r, q, nq, k, what, raw, res);
    batch_ctx ctx = {.r = r, .q = q, .s = s, .res = res, .qp = p.qp, .k = k, .pend = pend};
    cs_parallel_for(threads, nq, cands_one, &ctx);
    if (verify) {
        if (verify(verify_ctx, q, nq, res, pend, err)) goto done;
    } else
        cs_parallel_for(threads, nq, verify_one, &ctx);
    cs_parallel_for(threads, nq, finish_one, &ctx);
    rc = 0;
done:
    for (int64_t i = 0; pend && i < nq; i++) free(pend[i].cand);
    free(pend);
    free(raw);
    qprep_free(&p);
    return rc;
}
