/* an_roundtrip.c — the pixel comparison like with like: a generation of a
 * model with an autoencoder is compared with each candidate reference AND
 * with that reference round-tripped through the model's own autoencoder
 * (encode -> decode: the best the model could reproduce of it).
 *
 * Why: a latent diffusion model never outputs training pixels; its copies
 * are decoder outputs. A weak autoencoder blurs a perfect copy as much as
 * a near-miss differs from the training image, so no fixed pixel bound on
 * the distance to the reference separates them (docs/DESIGN-NOTES.md, issue
 * 15: the demo model's autoencoder reconstructs at 23 dB on average, 17 dB
 * at worst). The round trip takes the autoencoder's loss out of the
 * comparison: a memorised generation is near decode(encode(reference)),
 * whatever the autoencoder loses. The thresholds do not change: the
 * distances the rules read (tiled L2 as is, and aligned) become the smaller
 * of the distance to the reference and to its round trip; the floor (the
 * reference's own distance to its round trip) is measured per reference and
 * recorded in the evidence.
 *
 * When: the analysed run names a model that copyscope generated with
 * (runs.model, runs.model_sha256) and that model has an autoencoder (SD
 * checkpoints). The file must still be there with the same sha256, else
 * the plain comparison runs and the evidence says why. `analyze --images`
 * knows no model and always compares with the references.
 *
 * Cost: only the candidate references of each generation are round-tripped
 * (its 5 neighbours, its 3 nearest by tiled L2 and by embedding), each once
 * per (reference, generation size) for the whole analysis (a cache), at the
 * generation's size: from the reference's source file when it can be read
 * at that size, else from its thumbnail (the same pixels at 64 px). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analyze/an_part.h"
#include "analyze/analyze_internal.h"
#include "core/parallel.h"
#include "pipeline/model.h"
#include "pipeline/suite.h"

#define S CS_THUMB_SIZE
#define RT_TL2 3 /* nearest by tiled L2 that are round-tripped */
#define RT_EMB 3 /* nearest by embedding */
#define RT_MAXC (CS_AN_NB + RT_TL2 + RT_EMB)
/* near_ae_floor: a latent model's copy of a reference carries its decoder's
 * error, and the decoder loses most where the autoencoder loses most. So a
 * generation is a near-copy at the model's resolution when
 *  - every tile of it is within the autoencoder's own loss on the reference
 *    (the floor, below) of the reference's round trip: its aligned tiled L2
 *    to the round trip (the largest tile) is at most the floor. A copy of
 *    the memorised latent differs from decode(encode(reference)) by the
 *    sampler's error on that latent; a generation farther than the whole
 *    autoencoder's loss from the round trip in some tile is no copy of the
 *    latent there. This is the bound below seen tile by tile: by the triangle
 *    inequality (a tile's RMS is a norm) a tile within the floor of the round
 *    trip is within twice the floor of the reference, while the bound on the
 *    reference alone let through a generation whose one region is as far
 *    from the round trip as from the reference (a deformed region: the
 *    decoder's copy of the rest, something else there). Such a generation,
 *    passing every other condition, is a copy of part of the picture: it is
 *    judged partial (rule near_ae_floor_partial), and the evidence lists the
 *    tiles beyond the floor (pixel_comparison.tiles_beyond_floor);
 *  - its aligned tiled L2 to the reference is at most RT_FLOOR_MULT times the
 *    autoencoder's own loss on that reference (the reference's tiled L2 to
 *    its round trip, the floor): twice the error (in PSNR 6 dB, the report's
 *    former pixel truth, still measured beside Carlini et al.'s criterion in
 *    reports/memo.h), capped at ratio_tl2, beyond which no pixel rule calls
 *    two pictures near;
 *  - it is nearer the reference's round trip than the reference itself: it
 *    is the decoder's copy of this picture. A decoder's output of a distinct
 *    picture of the same layout keeps its own colours where the autoencoder
 *    is faithful, and is farther from this reference's round trip than from
 *    the reference (the flags of the Netherlands and Hungary, one stripe
 *    blue or green: 0.14 from the reference, 0.18 from its round trip,
 *    while the autoencoder's own loss on either is 0.13);
 *  - the reference fits clearly better than every distinct other candidate
 *    (Lowe's ratio, CS_LFV_RATIO, as cs_an_mark_ambiguous asks of near_tl2:
 *    a family of look-alike references is no evidence for one of them),
 *    each candidate by the nearer of its distances to the reference and to
 *    its round trip, like with like: the generation is a decoder output, so
 *    its raw distance to the reference carries the decoder's loss, and a
 *    rival whose raw distance happened to be as large would otherwise veto
 *    a copy that is far nearer its round trip than any rival is to either
 *    (a 1x-prompt generation of the 30x post office: 0.246 raw, 0.171 to
 *    the round trip; a rival at 0.296 raw failed the raw ratio, 0.83). */
#define RT_FLOOR_MULT 2.0f

/* One cached round trip: reference row at generation size w x h. */
typedef struct {
    int64_t row;
    int w, h;
    int from_source; /* 1: the source file at w x h, 0: the thumbnail */
    float floor;     /* tiled L2 of the reference's thumbnail to its round trip */
    uint8_t *thumb;  /* [S*S*3] the round trip as a thumbnail */
} rt_entry;

struct an_rt {
    cs_model *m;       /* NULL: no round trip (why says why) */
    int applies;       /* the run's model has an autoencoder (by its recorded kind) */
    char why[300];
    char *model, *model_sha256;
    rt_entry *e;       /* the cache, open addressing on (row, w, h) */
    int64_t cap, n;
};

static uint64_t key_hash(int64_t row, int w, int h) {
    uint64_t x = (uint64_t)row * 0x9E3779B97F4A7C15ull ^ ((uint64_t)w << 32 | (uint32_t)h) * 0xC2B2AE3D27D4EB4Full;
    return x ^ (x >> 29);
}

static rt_entry *cache_find(struct an_rt *R, int64_t row, int w, int h) {
    if (!R->cap) return NULL;
    for (uint64_t i = key_hash(row, w, h) & (uint64_t)(R->cap - 1);; i = (i + 1) & (uint64_t)(R->cap - 1)) {
        rt_entry *e = &R->e[i];
        if (!e->thumb) return NULL;
        if (e->row == row && e->w == w && e->h == h) return e;
    }
}

static int cache_grow(struct an_rt *R) {
    if ((R->n + 1) * 2 <= R->cap) return 0;
    int64_t cap = R->cap ? R->cap * 2 : 256;
    rt_entry *e = calloc((size_t)cap, sizeof *e), *old = R->e;
    if (!e) return -1;
    int64_t ocap = R->cap;
    R->e = e;
    R->cap = cap;
    for (int64_t i = 0; i < ocap; i++) {
        if (!old[i].thumb) continue;
        uint64_t j = key_hash(old[i].row, old[i].w, old[i].h) & (uint64_t)(cap - 1);
        while (e[j].thumb) j = (j + 1) & (uint64_t)(cap - 1);
        e[j] = old[i];
    }
    free(old);
    return 0;
}

static rt_entry *cache_add(struct an_rt *R, int64_t row, int w, int h) {
    if (cache_grow(R)) return NULL;
    uint64_t j = key_hash(row, w, h) & (uint64_t)(R->cap - 1);
    while (R->e[j].thumb) j = (j + 1) & (uint64_t)(R->cap - 1);
    R->e[j] = (rt_entry){.row = row, .w = w, .h = h};
    return &R->e[j];
}

/* ---- opening the run's model ---- */

static char *col_text(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

int an_rt_open(an_state *A, cs_err *err) {
    struct an_rt *R = calloc(1, sizeof *R);
    A->rti = calloc((size_t)(A->it.n ? A->it.n : 1), sizeof *A->rti);
    if (!R || !A->rti) {
        free(R);
        return cs_fail(err, CS_ENOMEM, "analyze: out of memory");
    }
    A->rt = R;
    sqlite3_stmt *st;
    if (cs_store_prepare(A->s, &st, "SELECT model, model_sha256, settings_json, suite FROM runs WHERE id = ?", err))
        return -1;
    sqlite3_bind_int64(st, 1, A->o->run_id);
    char *settings = NULL, *suite = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) {
        R->model = col_text(st, 0);
        R->model_sha256 = col_text(st, 1);
        settings = col_text(st, 2);
        suite = col_text(st, 3);
    }
    sqlite3_finalize(st);
    cJSON *sj = settings ? cJSON_Parse(settings) : NULL;
    free(settings);
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(sj, "model_kind");
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(sj, "model_file");
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(sj, "config");
    const cJSON *cfg_json = cJSON_GetObjectItemCaseSensitive(sj, "config_json");
    /* The run records the checkpoint's absolute path and the config it was
     * opened with, as text (pipeline/generate.c): a small model's geometry
     * is not all in its weights, and neither the suite nor the config file
     * need be there any more. Runs recorded before that name the model as
     * given (relative to the folder generate ran in) and maybe a --config;
     * for them the suite's config is the last resort. */
    if (cJSON_IsString(file)) {
        free(R->model);
        R->model = strdup(file->valuestring);
    }
    const char *config = cJSON_IsString(cfg) ? cfg->valuestring : NULL;
    char *config_text = cJSON_IsObject(cfg_json) ? cJSON_PrintUnformatted(cfg_json) : NULL;
    cs_suite su = {0};
    cs_err e2 = {0};
    struct stat sb;
    if (!config_text && (!config || stat(config, &sb) != 0)) {
        config = NULL;
        if (suite && stat(suite, &sb) == 0 && cs_suite_load(&su, suite, &e2) == 0) config = su.config;
    }
    R->applies = R->model && R->model_sha256 && cJSON_IsString(kind) && !strcmp(kind->valuestring, "sd");
    if (!R->applies)
        snprintf(R->why, sizeof R->why, "the run's model has no autoencoder (%s)",
                 cJSON_IsString(kind) ? kind->valuestring : R->model ? R->model : "none recorded");
    else if (stat(R->model, &sb) != 0)
        snprintf(R->why, sizeof R->why, "%.200s: the run's model is not there any more", R->model);
    else if (cs_model_open(&R->m, R->model, &(cs_model_opts){.config = config, .config_text = config_text}, &e2))
        snprintf(R->why, sizeof R->why, "the run's model cannot be opened: %.240s", e2.msg);
    else if (strcmp(R->m->hash, R->model_sha256)) {
        snprintf(R->why, sizeof R->why, "%.200s: sha256 differs from the run's model", R->model);
        cs_model_free(R->m);
        R->m = NULL;
    } else if (!R->m->encode || !R->m->decode || R->m->factor <= 1) {
        snprintf(R->why, sizeof R->why, "the run's model has no autoencoder");
        cs_model_free(R->m);
        R->m = NULL;
        R->applies = 0;
    }
    /* a model with an autoencoder that could not be opened: said once on
     * the summary (the CLI prints it), and in every finding's evidence */
    if (R->applies && !R->m)
        snprintf(A->sum->rt_skipped, sizeof A->sum->rt_skipped, "%s", R->why);
    free(config_text);
    cJSON_Delete(sj);
    cs_suite_free(&su);
    free(suite);
    return 0;
}

void an_rt_free(an_state *A) {
    struct an_rt *R = A->rt;
    free(A->rti);
    A->rti = NULL;
    if (!R) return;
    if (R->m) cs_model_free(R->m);
    for (int64_t i = 0; i < R->cap; i++) free(R->e[i].thumb);
    free(R->e);
    free(R->model);
    free(R->model_sha256);
    free(R);
    A->rt = NULL;
}

/* ---- the round trips ---- */

/* The reference at w x h: its source file resized, or its thumbnail. */
static int ref_at(const an_state *A, int64_t row, int w, int h, cs_image *out, int *from_source) {
    cs_err e = {0};
    cs_image src = {0};
    const uint8_t *th = A->refs.thumbs + row * (int64_t)S * S * 3;
    *from_source = 0;
    if (w == S && h == S) { /* the thumbnail is the source area-resized to this size */
        if (cs_image_alloc(out, S, S, &e)) return -1;
        memcpy(out->rgb, th, (size_t)S * S * 3);
        return 0;
    }
    const char *path = row < A->th.n && A->th.sources ? A->th.sources[row] : NULL;
    if (path && !strstr(path, "//") && cs_image_load(&src, path, NULL, &e) == 0) {
        int rc = cs_image_resize(out, &src, w, h, CS_RESIZE_AUTO, &e);
        cs_image_free(&src);
        if (rc == 0) {
            *from_source = 1;
            return 0;
        }
    }
    cs_image t = {.w = S, .h = S, .rgb = (uint8_t *)th};
    return cs_image_resize(out, &t, w, h, CS_RESIZE_AUTO, &e);
}

/* encode -> decode through the model, 8 bits as generate.c writes SD images
 * (255 * clamp((x + 1) / 2), truncated), then a thumbnail as the index
 * makes them (area). */
static int round_trip(struct an_rt *R, const cs_image *img, uint8_t *thumb, cs_err *err) {
    const int w = img->w, h = img->h, f = R->m->factor, C = R->m->channels;
    const size_t hw = (size_t)w * h;
    float *x = malloc(sizeof(float) * 3 * hw), *z = malloc(sizeof(float) * C * (hw / ((size_t)f * f)));
    float *y = malloc(sizeof(float) * 3 * hw);
    cs_image o = {0}, t = {0};
    int rc = -1;
    if (!x || !z || !y) {
        cs_fail(err, CS_ENOMEM, "analyze: out of memory for a round trip");
        goto out;
    }
    for (int c = 0; c < 3; c++)
        for (size_t p = 0; p < hw; p++) x[c * hw + p] = (float)img->rgb[p * 3 + c] / 127.5f - 1.0f;
    if (R->m->encode(R->m, x, 1, h, w, z, err) || R->m->decode(R->m, z, 1, h / f, w / f, y, err)) goto out;
    if (cs_image_alloc(&o, w, h, err)) goto out;
    for (int c = 0; c < 3; c++)
        for (size_t p = 0; p < hw; p++) {
            float v = (y[c * hw + p] + 1.0f) / 2.0f;
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            o.rgb[p * 3 + c] = (uint8_t)(255.0f * v);
        }
    if (w == S && h == S) memcpy(thumb, o.rgb, (size_t)S * S * 3);
    else if (cs_image_resize(&t, &o, S, S, CS_RESIZE_AREA, err)) goto out;
    else memcpy(thumb, t.rgb, (size_t)S * S * 3);
    rc = 0;
out:
    free(x);
    free(z);
    free(y);
    cs_image_free(&o);
    cs_image_free(&t);
    return rc;
}

/* The generation's size for the model: rounded down to its factor. */
static void gen_size(const struct an_rt *R, const item *x, int *w, int *h) {
    const int f = R->m->factor;
    *w = (x->img_w > 0 ? x->img_w : S) / f * f;
    *h = (x->img_h > 0 ? x->img_h : S) / f * f;
    if (*w < f) *w = f;
    if (*h < f) *h = f;
}

/* The candidate rows of a result: its neighbours, then its nearest by tiled
 * L2 and by embedding (each once, in that order). */
static int cand_rows(const cs_an_result *r, int32_t *rows) {
    int n = 0;
    const cs_an_hit *lists[] = {r->tl2, r->emb};
    const int lens[] = {r->n_tl2 < RT_TL2 ? r->n_tl2 : RT_TL2, r->n_emb < RT_EMB ? r->n_emb : RT_EMB};
    for (int k = 0; k < r->n_nb; k++) rows[n++] = r->nb[k].row;
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < lens[l]; k++) {
            int dup = 0;
            for (int m = 0; m < n; m++) dup |= rows[m] == lists[l][k].row;
            if (!dup && lists[l][k].row >= 0) rows[n++] = lists[l][k].row;
        }
    return n;
}

/* Round-trips every (candidate, size) of the chunk not in the cache yet, in
 * a fixed order (the cache's contents do not depend on the thread count). */
static int fill_cache(an_state *A, item *const *cx, const cs_an_result *cr, int64_t n, cs_err *err) {
    struct an_rt *R = A->rt;
    const cs_tl2_cfg *cfg = &A->refs.cfg;
    const int D = cs_tl2_dim(cfg);
    float *pa = malloc(sizeof(float) * D * 2);
    if (!pa) return cs_fail(err, CS_ENOMEM, "analyze: out of memory");
    int rc = 0;
    for (int64_t j = 0; j < n && !rc; j++) {
        if (!cr[j].has_best) continue;
        int32_t rows[RT_MAXC];
        int nr = cand_rows(&cr[j], rows), w, h;
        gen_size(R, cx[j], &w, &h);
        for (int k = 0; k < nr && !rc; k++) {
            if (cache_find(R, rows[k], w, h)) continue;
            cs_image img = {0};
            int from_source = 0;
            uint8_t *thumb = malloc((size_t)S * S * 3);
            rt_entry *e = NULL;
            if (!thumb || ref_at(A, rows[k], w, h, &img, &from_source) || round_trip(R, &img, thumb, err) ||
                !(e = cache_add(R, rows[k], w, h))) {
                if (!err->msg[0]) cs_fail(err, CS_ENOMEM, "analyze: out of memory for a round trip");
                free(thumb);
                rc = -1;
            } else {
                e->thumb = thumb;
                e->from_source = from_source;
                cs_tl2_prepare(pa, NULL, A->refs.thumbs + rows[k] * (int64_t)S * S * 3, cfg);
                cs_tl2_prepare(pa + D, NULL, thumb, cfg);
                e->floor = cs_tl2_pair(NULL, pa, pa + D, cfg);
                R->n++;
            }
            cs_image_free(&img);
        }
    }
    free(pa);
    return rc;
}

/* ---- judging ---- */

/* near_ae_floor's bound on the aligned tiled L2 to the reference (above) */
static float rt_floor_bound(float floor, const cs_an_settings *s) {
    return fminf((float)s->ratio_tl2, RT_FLOOR_MULT * floor);
}

/* Two references that are distinct pictures: their thumbnails (as is and
 * mirrored, the nearer) farther apart than near_tl2. buf: [3 * dim]. */
static int distinct_refs(const cs_an_refs *refs, int32_t a, int32_t b, const cs_an_settings *s, float *buf) {
    const cs_tl2_cfg *cfg = &refs->cfg;
    const int D = cs_tl2_dim(cfg);
    uint8_t mir[S * S * 3];
    memcpy(mir, refs->thumbs + (int64_t)b * S * S * 3, sizeof mir);
    cs_tl2_hflip_rgb(mir, S);
    cs_tl2_prepare(buf, NULL, refs->thumbs + (int64_t)a * S * S * 3, cfg);
    cs_tl2_prepare(buf + D, NULL, refs->thumbs + (int64_t)b * S * S * 3, cfg);
    cs_tl2_prepare(buf + 2 * D, NULL, mir, cfg);
    return fminf(cs_tl2_pair(NULL, buf, buf + D, cfg), cs_tl2_pair(NULL, buf, buf + 2 * D, cfg)) > s->near_tl2;
}

/* A distinct candidate (not one picture with k: their thumbnails farther
 * apart than near_tl2) nearly as close as k: Lowe's ratio fails. d: each
 * candidate's nearer distance (to the reference or to its round trip). */
static int floor_rival(const cs_an_refs *refs, const int32_t *rows, const float *d, int nr, int k,
                       const cs_an_settings *s) {
    float *buf = NULL;
    int rival = 0;
    for (int m = 0; m < nr && !rival; m++) {
        if (m == k || rows[m] == rows[k] || CS_LFV_RATIO * d[m] > d[k]) continue;
        if (!buf && !(buf = malloc(sizeof(float) * 3 * (size_t)cs_tl2_dim(&refs->cfg)))) return 1; /* unsure */
        rival = distinct_refs(refs, rows[k], rows[m], s, buf);
    }
    free(buf);
    return rival;
}

/* ae_floor_part: a large coherent part of the reference reproduced at the
 * decoder's own precision, the rest not. A latent model that memorised a
 * picture but loses part of it in sampling (a corner gone, the blades of the
 * scissors blurred away) outputs decode(encode(reference)) in that part and
 * something else elsewhere; no whole-image bound sees it (the lost region is
 * as far from the reference as any other picture), and the partial rule on
 * the plain pixels asks each matched tile to be within partial_tile_l2 of
 * the reference, which this decoder's copy is not (the autoencoder's own
 * loss is about as large). Compared like with like, a tile of the copied
 * part is within the autoencoder's loss of the round trip, as near_ae_floor
 * asks of every tile. So the generation is a partial copy of the reference
 * when, at one alignment (as is, mirrored, or the aligned crop that the
 * refinement found on the round trip):
 *  - the matched tiles are within the tolerance of the round trip: the
 *    floor (the autoencoder's own loss on the reference, the largest tile),
 *    capped at half of ratio_tl2: near_ae_floor's cap on twice the floor
 *    (rt_floor_bound), the same triangle inequality per tile;
 *  - each matched tile carries the reference's structure: its pixel std in
 *    the reference is at least tile_min_std (a plain tile proves nothing)
 *    and at least the tolerance: a tile whose std is within the tolerance is
 *    matched by its own mean colour, a blank, as well as by a copy (a white
 *    background is within the floor of every white background);
 *  - the matched tiles form one 4-connected region of at least
 *    partial_min_tiles tiles (the partial rule's 3/8 of the picture): a part
 *    of the picture, not scattered tiles that happen to agree;
 *  - over the region the generation is nearer the round trip than the
 *    reference (the sum of squared tile distances): it is the decoder's copy
 *    of this part, as near_ae_floor asks of the whole image. A distinct
 *    picture that shares a part with the reference by design (Luxembourg's
 *    flag and Hungary's: two stripes of three) has the reference's own
 *    pixels there, nearer the reference than its round trip;
 *  - no distinct candidate (thumbnails farther apart than near_tl2) is
 *    nearly as near over the region: Lowe's ratio (CS_LFV_RATIO) on the
 *    region's RMS distance to each candidate's round trip (part_rival).
 * It only raises a generation that no rule flags (every candidate below
 * partial); the evidence lists the region's tiles and its box. */
typedef struct {
    uint64_t tiles; /* the region (bit t: tile t of the reference at the alignment) */
    int n;          /* its tile count */
    int mirrored;   /* the generation mirrored at this alignment */
    float box[3];   /* the reference's crop at this alignment (x0, y0, side, px) */
} rt_part;

/* the per-tile tolerance of ae_floor_part (above) */
static float rt_part_tol(float floor, const cs_an_settings *s) {
    return fminf(floor, 0.5f * (float)s->ratio_tl2);
}

/* The largest 4-connected set of tiles in mask (grid G x G); ties: the one
 * holding the lowest tile. */
static uint64_t largest_region(uint64_t mask, int G, int *n_out) {
    uint64_t best = 0, seen = 0;
    int nbest = 0;
    for (int t0 = 0; t0 < G * G; t0++) {
        if (!(mask >> t0 & 1) || (seen >> t0 & 1)) continue;
        int stack[CS_TL2_MAX_TILES], sp = 0, n = 0;
        uint64_t reg = 1ull << t0;
        stack[sp++] = t0;
        while (sp) {
            int t = stack[--sp], y = t / G, x = t % G;
            n++;
            const int nb[4] = {y > 0 ? t - G : -1, y < G - 1 ? t + G : -1, x > 0 ? t - 1 : -1, x < G - 1 ? t + 1 : -1};
            for (int i = 0; i < 4; i++)
                if (nb[i] >= 0 && (mask >> nb[i] & 1) && !(reg >> nb[i] & 1)) {
                    reg |= 1ull << nb[i];
                    stack[sp++] = nb[i];
                }
        }
        seen |= reg;
        if (n > nbest) {
            nbest = n;
            best = reg;
        }
    }
    *n_out = nbest;
    return best;
}

/* The region of candidate row at one alignment: tile distances td to the
 * round trip, the reference's thumbnail rendered at box (side <= 0 or the
 * whole thumbnail: as is), g the prepared generation (mirrored or not, as
 * td was measured). buf: [dim] scratch. */
static rt_part part_at(const cs_an_refs *refs, int32_t row, const float *td, const float *g, int mirrored,
                       const float *box, float tol, const cs_an_settings *s, float *buf) {
    const cs_tl2_cfg *cfg = &refs->cfg;
    const int T = cs_tl2_tiles(cfg), tdim = cs_tl2_tile_dim(cfg);
    const uint8_t *ref = refs->thumbs + (int64_t)row * S * S * 3;
    uint8_t crop[S * S * 3];
    rt_part p = {.mirrored = mirrored, .box = {0, 0, (float)S}};
    if (box && box[2] > 0 && !(box[0] == 0 && box[1] == 0 && box[2] == (float)S)) {
        cs_an_render_crop(crop, ref, S, box[0], box[1], box[2]);
        ref = crop;
        memcpy(p.box, box, sizeof p.box);
    }
    cs_tl2_prepare(buf, NULL, ref, cfg);
    const float need = fmaxf((float)s->tile_min_std, tol);
    uint64_t mask = 0;
    for (int t = 0; t < T; t++) {
        double m = 0, m2 = 0;
        for (int i = 0; i < tdim; i++) {
            m += buf[t * tdim + i];
            m2 += (double)buf[t * tdim + i] * buf[t * tdim + i];
        }
        m /= tdim;
        double v = m2 / tdim - m * m;
        if (sqrt(v > 0 ? v : 0) >= need && td[t] <= tol) mask |= 1ull << t;
    }
    p.tiles = largest_region(mask, cfg->grid, &p.n);
    /* the decoder's copy of this part: nearer the round trip than the reference there */
    float tr[CS_TL2_MAX_TILES];
    cs_tl2_pair(tr, g, buf, cfg);
    double to_rt = 0, to_ref = 0;
    for (int t = 0; t < T; t++)
        if (p.tiles >> t & 1) {
            to_rt += (double)td[t] * td[t];
            to_ref += (double)tr[t] * tr[t];
        }
    if (!(to_rt < to_ref)) p.tiles = 0, p.n = 0;
    return p;
}

/* One candidate's three alignments for ae_floor_part: tile distances to
 * its round trip as is, mirrored, and at the refinement's crop box. */
typedef struct {
    float td[3][CS_TL2_MAX_TILES];
    int mirrored[3], n; /* n: alignments measured (2, or 3 with the box) */
    float box[3];
} rt_align;

/* The largest region of candidate row over its alignments at tolerance tol.
 * gid, gmir: the prepared generation as is and mirrored. */
static rt_part part_of(const cs_an_refs *refs, int32_t row, const rt_align *al, const float *gid, const float *gmir,
                       float tol, const cs_an_settings *s, float *buf) {
    rt_part best = {0};
    for (int a = 0; a < al->n; a++) {
        rt_part p = part_at(refs, row, al->td[a], al->mirrored[a] ? gmir : gid, al->mirrored[a],
                            a == 2 ? al->box : NULL, tol, s, buf);
        if (p.n > best.n) best = p;
    }
    return best;
}

/* A region's tiles mirrored left to right (grid G). */
static uint64_t mirror_tiles(uint64_t m, int G) {
    uint64_t o = 0;
    for (int t = 0; t < G * G; t++)
        if (m >> t & 1) o |= 1ull << (t / G * G + G - 1 - t % G);
    return o;
}

/* The RMS of a candidate's tile distances to its round trip over the
 * generation's tiles gen (bit t: tile t of the generation as is), at the
 * nearest of its alignments. */
static float region_d(const rt_align *al, uint64_t gen, int G) {
    float best = INFINITY;
    for (int a = 0; a < al->n; a++) {
        const uint64_t m = al->mirrored[a] ? mirror_tiles(gen, G) : gen;
        double s2 = 0;
        int n = 0;
        for (int t = 0; t < G * G; t++)
            if (m >> t & 1) {
                s2 += (double)al->td[a][t] * al->td[a][t];
                n++;
            }
        if (n && sqrt(s2 / n) < best) best = (float)sqrt(s2 / n);
    }
    return best;
}

/* A distinct candidate nearly as near over k's region (Lowe's ratio,
 * CS_LFV_RATIO, on the region's RMS distance to each candidate's round
 * trip): the part is no evidence for k. A shared layout (every tricolour
 * flag, every clock face's rim) is as near several round trips; and a
 * reference that the autoencoder reproduces badly has a loose tolerance,
 * so without this the worst-reproduced of a family of look-alikes would
 * take every generation of that layout. */
static int part_rival(const cs_an_refs *refs, const int32_t *rows, const rt_align *al, const rt_part *p, int nr,
                      int k, const cs_an_settings *s) {
    const int G = refs->cfg.grid;
    const uint64_t gen = p[k].mirrored ? mirror_tiles(p[k].tiles, G) : p[k].tiles;
    const float dk = region_d(&al[k], gen, G);
    float *buf = NULL;
    int rival = 0;
    for (int m = 0; m < nr && !rival; m++) {
        if (m == k || rows[m] == rows[k] || CS_LFV_RATIO * region_d(&al[m], gen, G) > dk) continue;
        if (!buf && !(buf = malloc(sizeof(float) * 3 * (size_t)cs_tl2_dim(&refs->cfg)))) return 1; /* unsure */
        rival = distinct_refs(refs, rows[k], rows[m], s, buf);
    }
    free(buf);
    return rival;
}

/* lf_near at the reference's own geometry, with pixels that show a region
 * not copied: partial (rule lf_near_partial). The local rule decides a
 * near-copy from the hull of the verified keypoints, blind to a region
 * redrawn inside or beside it; cs_an_verdict_local already keeps a pixel
 * verdict of partial, but a pixel partial also needs the tiles to tell
 * this reference from a distinct one (cs_an_mark_ambiguous), which a
 * family of look-alikes fails (every clock face shares its rim: a
 * generation of the one o'clock face with its lower-left rim redrawn was
 * judged lf_near). Which reference it is, the local features settle (their
 * own ratio test); how much of it is copied, the pixels do, where they
 * compare like with like:
 *  - the geometry is the reference's own: at least partial_min_tiles tiles
 *    (the partial rule's 3/8 of the image) match within partial_tile_l2 at
 *    the pixel alignment (the nearer of reference and round trip), which a
 *    copy rotated, rescaled or recoloured does not do (it keeps lf_near);
 *  - some tile is beyond every whole-image pixel bound of a near-copy: the
 *    aligned tiled L2 above near_tl2, and not near_ae_floor's (every tile
 *    within the autoencoder's own loss of the round trip, the whole within
 *    its bound of the reference and nearer the round trip).
 * No new threshold: each bound is its rule's own. */
static void lf_near_in_place(cs_an_cand *a, float d_ref, float d_rt, uint64_t beyond, float floor,
                             const cs_an_settings *s) {
    if (a->verdict != CS_V_NEAR || strcmp(a->rule, "lf_near") || a->tiles_informative <= 0) return;
    if (a->tiles_matched < s->partial_min_tiles || !(a->d_al > s->near_tl2)) return;
    if (!beyond && d_ref <= rt_floor_bound(floor, s) && d_rt < d_ref) return; /* near_ae_floor's copy */
    a->verdict = CS_V_PARTIAL;
    a->rule = "lf_near_partial";
}

typedef struct {
    an_state *A;
    item *const *cx;
    const cs_an_query *cq;
    cs_an_result *cr;
    an_rt_info *info;
} judge_ctx;

/* the match's fused score of a row among the finding's neighbours, -inf
 * where it is not one (analyze/match.h cs_an_nb) */
static float nb_fused(const cs_an_result *res, int32_t row) {
    for (int m = 0; m < res->n_nb; m++)
        if (res->nb[m].row == row) return res->nb[m].fused;
    return -INFINITY;
}

/* the finding's order among re-judged candidates: verdict, then the aligned
 * distance, then the row */
static int better(const cs_an_cand *a, const cs_an_cand *b) {
    if (a->verdict != b->verdict) return a->verdict > b->verdict;
    if (a->d_al != b->d_al) return a->d_al < b->d_al;
    return a->row < b->row;
}

/* Candidate a (refined on the reference) takes the round trip's distances
 * b where they are nearer. */
static void take_nearer(cs_an_cand *a, const cs_an_cand *b) {
    if (b->d_id < a->d_id) {
        a->d_id = b->d_id;
        a->id_mirrored = b->id_mirrored;
    }
    if (b->d_al < a->d_al) {
        a->d_al = b->d_al;
        a->al_mirrored = b->al_mirrored;
        memcpy(a->box, b->box, sizeof a->box);
        memcpy(a->tile_d, b->tile_d, sizeof a->tile_d);
        a->best_tile = b->best_tile;
        a->worst_tile = b->worst_tile;
        a->tiles_informative = b->tiles_informative;
        a->tiles_matched = b->tiles_matched;
    }
    if (a->d_al > a->d_id) a->d_al = a->d_id;
}

/* The finding's neighbours with the re-judged verdicts and distances, the
 * finding first. */
static void update_neighbours(cs_an_result *res, const int32_t *rows, const cs_an_cand *cand, int nr) {
    for (int m = 0; m < res->n_nb; m++)
        for (int k = 0; k < nr; k++)
            if (res->nb[m].row == rows[k]) {
                res->nb[m].verdict = cand[k].verdict;
                res->nb[m].rule = cand[k].rule;
                res->nb[m].d_id = cand[k].d_id;
                res->nb[m].d_al = cand[k].d_al;
                res->nb[m].d_rot = cand[k].d_rot;
                res->nb[m].rot_deg = cand[k].rot_deg;
            }
    const cs_an_cand *b = &res->best;
    int at = -1;
    for (int m = 0; m < res->n_nb; m++)
        if (res->nb[m].row == b->row) at = m;
    cs_an_nb top = at >= 0 ? res->nb[at]
                           : (cs_an_nb){.row = b->row, .verdict = b->verdict, .rule = b->rule, .d_id = b->d_id,
                                        .d_al = b->d_al, .pdq = b->pdq, .phash = b->phash, .dhash = b->dhash,
                                        .emb_cos = b->emb_cos, .d_rot = b->d_rot, .rot_deg = b->rot_deg};
    if (at < 0) at = res->n_nb < CS_AN_NB ? res->n_nb++ : CS_AN_NB - 1;
    memmove(res->nb + 1, res->nb, sizeof(cs_an_nb) * (size_t)at);
    res->nb[0] = top;
    res->nb[0].verdict = b->verdict; /* the ratio test may have raised it */
    res->nb[0].rule = b->rule;
}

static void judge_one(void *vctx, int64_t j, int thread) {
    (void)thread;
    judge_ctx *c = vctx;
    an_state *A = c->A;
    const cs_an_refs *refs = &A->refs;
    const cs_an_settings *s = A->set;
    const cs_an_query *q = &c->cq[j];
    cs_an_result *res = &c->cr[j];
    if (!res->has_best) return;
    const cs_tl2_cfg *cfg = &refs->cfg;
    const int D = cs_tl2_dim(cfg);
    enum { C16 = S / 4 * S / 4 * 3 };
    int32_t rows[RT_MAXC];
    int nr = cand_rows(res, rows), w, h;
    gen_size(A->rt, c->cx[j], &w, &h);
    float *qp = malloc(sizeof(float) * (4 * D + 2 * C16));
    uint8_t *rt = malloc((size_t)nr * S * S * 3);
    cs_an_cand *cand = malloc(sizeof(cs_an_cand) * (size_t)nr);
    int64_t ids[RT_MAXC];
    float d_ref[RT_MAXC], d_rt[RT_MAXC], d_near[RT_MAXC];
    uint64_t beyond[RT_MAXC]; /* tiles farther than the floor from the round trip */
    rt_part part[RT_MAXC];    /* ae_floor_part's region of each candidate */
    rt_align al[RT_MAXC];     /* ... and its alignments */
    const rt_entry *ent[RT_MAXC];
    const int T = cs_tl2_tiles(cfg);
    cs_an_refs rr = {0};
    cs_err e = {0};
    if (!qp || !rt || !cand) goto out; /* out of memory: the plain comparison stands */
    uint8_t mir[S * S * 3];
    memcpy(mir, q->thumb, sizeof mir);
    cs_tl2_hflip_rgb(mir, S);
    float *qid = qp, *qmir = qp + D, *q16 = qp + 2 * D, *prt = q16 + 2 * C16, *pbuf = prt + D;
    cs_tl2_prepare(qid, NULL, q->thumb, cfg);
    cs_tl2_prepare(qmir, NULL, mir, cfg);
    cs_an_prep16(q16, q->thumb, cfg);
    cs_an_prep16(q16 + C16, mir, cfg);
    for (int k = 0; k < nr; k++) {
        if (!(ent[k] = cache_find(A->rt, rows[k], w, h))) goto out;
        memcpy(rt + (size_t)k * S * S * 3, ent[k]->thumb, (size_t)S * S * 3);
        ids[k] = refs->ids[rows[k]];
    }
    cs_an_settings s1 = *s;
    if (s1.full_scan_max < nr) s1.full_scan_max = nr; /* the round trips prepared once, here */
    if (cs_an_refs_build_borrow(&rr, nr, ids, rt, &s1, &e)) goto out;
    int best = -1, old = -1, at_floor = -1;
    for (int k = 0; k < nr; k++) {
        cs_an_cand *a = &cand[k], b = {.emb_cos = -2};
        a->emb_cos = -2;
        a->emb_calibrated = q->emb_calibrated;
        for (int t = 0; t < res->n_emb; t++)
            if (res->emb[t].row == rows[k]) a->emb_cos = res->emb[t].score;
        memset(&a->lf, 0, sizeof a->lf);
        for (int t = 0; t < q->n_lf && t < CS_AN_LFK; t++)
            if (q->lf_row[t] == rows[k]) a->lf = q->lf[t];
        cs_an_refine(a, refs, rows[k], qid, qmir, q16, q16 + C16, 1, q, s);
        cs_an_refine(&b, &rr, k, qid, qmir, q16, q16 + C16, 1, q, s);
        d_ref[k] = a->d_al;
        d_rt[k] = b.d_al;
        d_near[k] = fminf(d_ref[k], d_rt[k]);
        beyond[k] = 0;
        for (int t = 0; t < T; t++)
            if (b.tile_d[t] > ent[k]->floor) beyond[k] |= 1ull << t;
        /* ae_floor_part's region: as is, mirrored, and at the alignment found on the round trip */
        cs_tl2_prepare(prt, NULL, rt + (size_t)k * S * S * 3, cfg);
        cs_tl2_pair(al[k].td[0], qid, prt, cfg);
        cs_tl2_pair(al[k].td[1], qmir, prt, cfg);
        al[k].mirrored[0] = 0;
        al[k].mirrored[1] = 1;
        al[k].n = 2;
        if (isfinite(b.d_al)) {
            memcpy(al[k].td[2], b.tile_d, sizeof b.tile_d);
            al[k].mirrored[2] = b.al_mirrored;
            memcpy(al[k].box, b.box, sizeof b.box);
            al[k].n = 3;
        }
        part[k] = part_of(refs, rows[k], &al[k], qid, qmir, rt_part_tol(ent[k]->floor, s), s, pbuf);
        take_nearer(a, &b);
        cs_an_judge(a, refs, q, res->gen_pdq_quality, s);
        lf_near_in_place(a, d_ref[k], d_rt[k], beyond[k], ent[k]->floor, s);
        if (a->tiles_informative > 0 && d_ref[k] <= rt_floor_bound(ent[k]->floor, s) && d_rt[k] < d_ref[k] &&
            (at_floor < 0 || d_ref[k] < d_ref[at_floor]))
            at_floor = k;
    }
    /* every tile within the floor of the round trip: a copy; a tile beyond it: a copy of part (above).
     * A local-feature near-copy (lf_near) is judged partial too: the whole image within the bound of
     * the reference and nearer its round trip puts the pixels at the reference's own geometry, and
     * there the tiles beyond the floor are a region that the hull of the verified keypoints, which
     * decided lf_near, cannot see (as in cs_an_verdict_local). */
    cs_an_cand *af = at_floor >= 0 ? &cand[at_floor] : NULL;
    int lf = af && af->verdict == CS_V_NEAR && !strcmp(af->rule, "lf_near");
    if (af && (af->verdict < CS_V_NEAR || (lf && beyond[at_floor])) &&
        !floor_rival(refs, rows, d_near, nr, at_floor, s)) {
        if (!beyond[at_floor]) {
            af->verdict = CS_V_NEAR;
            af->rule = "near_ae_floor";
        } else if (af->verdict < CS_V_PARTIAL || lf) {
            af->verdict = CS_V_PARTIAL;
            af->rule = "near_ae_floor_partial";
        }
    }
    /* ae_floor_part (above): only where no candidate is flagged */
    int flagged = 0, pk = -1;
    for (int k = 0; k < nr; k++) {
        flagged |= cand[k].verdict >= CS_V_PARTIAL;
        if (part[k].n >= s->partial_min_tiles &&
            (pk < 0 || part[k].n > part[pk].n || (part[k].n == part[pk].n && d_near[k] < d_near[pk])))
            pk = k;
    }
    if (!flagged && pk >= 0 &&
        !part_rival(refs, rows, al, part, nr, pk, s)) {
        cand[pk].verdict = CS_V_PARTIAL;
        cand[pk].rule = "ae_floor_part";
    }
    for (int k = 0; k < nr; k++) {
        if (best < 0 || better(&cand[k], &cand[best])) best = k;
        if (rows[k] == res->best.row) old = k;
    }
    /* the match's choice stays when its re-judged verdict is still the
     * highest, unless the match's own order after the verdict (the fused
     * score) puts the re-judged best above it: a candidate whose verdict
     * only the round trip raised (a decoder copy beyond near_tl2 of the raw
     * reference) lost to the match's choice at its old verdict, not on
     * fused ("root vegetable" drawn to the one o'clock face, tl2 0.06 to
     * its round trip, fused 29, stayed behind another clock face whose rim
     * verified, lf_near at tl2 0.24, fused 2) */
    if (old >= 0 && cand[old].verdict == cand[best].verdict && !(nb_fused(res, rows[best]) > nb_fused(res, rows[old])))
        best = old;
    /* the ratio test's second: the nearest other candidate */
    float d2 = res->second_row >= 0 && res->second_row != rows[best] ? res->d2 : INFINITY;
    int32_t second = isfinite(d2) ? res->second_row : -1;
    for (int k = 0; k < nr; k++)
        if (k != best && cand[k].d_al < d2) {
            d2 = cand[k].d_al;
            second = rows[k];
        }
    res->best = cand[best];
    res->d2 = d2;
    res->second_row = second;
    cs_an_part_ratio(res, refs, q, s);
    cs_an_verdict_result(res, s);
    cs_an_verdict_local_result(res);
    update_neighbours(res, rows, cand, nr);
    c->info[j] = (an_rt_info){.used = 1, .d_ref = d_ref[best], .d_rt = d_rt[best], .floor = ent[best]->floor,
                              .from_source = ent[best]->from_source, .beyond = beyond[best], .tiles = T};
    if (!strcmp(res->best.rule, "ae_floor_part")) {
        c->info[j].part = part[best].tiles;
        c->info[j].part_n = part[best].n;
        c->info[j].part_mirrored = part[best].mirrored;
        memcpy(c->info[j].part_box, part[best].box, sizeof part[best].box);
    }
out:
    cs_an_refs_free(&rr);
    free(qp);
    free(rt);
    free(cand);
}

int an_rt_judge(an_state *A, item *const *cx, const cs_an_query *cq, cs_an_result *cr, int64_t n, cs_err *err) {
    if (!A->rt || !A->rt->m || !A->refs.has_thumbs) return 0;
    if (fill_cache(A, cx, cr, n, err)) return -1;
    an_rt_info *info = A->rti + (cr - A->res);
    judge_ctx c = {A, cx, cq, cr, info};
    cs_parallel_for(A->threads, n, judge_one, &c);
    return 0;
}

void an_rt_evidence(void *obj, const an_state *A, const cs_an_result *r) {
    cJSON *o = cJSON_AddObjectToObject(obj, "pixel_comparison");
    const struct an_rt *R = A->rt;
    const an_rt_info *inf = A->rti && r >= A->res ? &A->rti[r - A->res] : NULL;
    if (!R || !R->m || !inf || !inf->used) {
        cJSON_AddStringToObject(o, "with", "reference");
        cJSON_AddStringToObject(o, "why", !R ? "no model known (image folders)"
                                          : R->m ? "no candidate reference" : R->why);
        return;
    }
    cJSON_AddStringToObject(o, "with", "reference and its round trip through the model's autoencoder");
    cJSON_AddStringToObject(o, "model", R->model);
    cJSON_AddStringToObject(o, "model_sha256", R->model_sha256);
    cJSON_AddStringToObject(o, "nearer", inf->d_rt < inf->d_ref ? "round_trip" : "reference");
    cJSON_AddNumberToObject(o, "reference_aligned_tl2", round(inf->d_ref * 1e4) / 1e4);
    cJSON_AddNumberToObject(o, "round_trip_aligned_tl2", round(inf->d_rt * 1e4) / 1e4);
    cJSON_AddNumberToObject(o, "autoencoder_floor_tl2", round(inf->floor * 1e4) / 1e4);
    cJSON_AddNumberToObject(o, "floor_bound_tl2", round(rt_floor_bound(inf->floor, A->set) * 1e4) / 1e4);
    /* the tiles (index t: row t / grid, column t % grid) where the generation
     * is farther than the autoencoder's loss from the round trip: the region
     * near_ae_floor finds not copied */
    cJSON *bt = cJSON_AddArrayToObject(o, "tiles_beyond_floor");
    for (int t = 0; t < inf->tiles; t++)
        if (inf->beyond >> t & 1) cJSON_AddItemToArray(bt, cJSON_CreateNumber(t));
    cJSON_AddStringToObject(o, "round_trip_of", inf->from_source ? "source file" : "thumbnail");
    /* ae_floor_part's region: its tiles (of the reference's crop at the
     * alignment) and its box in the reference's thumbnail pixels */
    if (inf->part_n > 0) {
        cJSON *p = cJSON_AddObjectToObject(o, "part_at_floor");
        cJSON *pt = cJSON_AddArrayToObject(p, "tiles");
        const int G = A->refs.cfg.grid;
        int x0 = G, y0 = G, x1 = -1, y1 = -1;
        for (int t = 0; t < inf->tiles; t++) {
            if (!(inf->part >> t & 1)) continue;
            cJSON_AddItemToArray(pt, cJSON_CreateNumber(t));
            x0 = t % G < x0 ? t % G : x0;
            x1 = t % G > x1 ? t % G : x1;
            y0 = t / G < y0 ? t / G : y0;
            y1 = t / G > y1 ? t / G : y1;
        }
        cJSON_AddNumberToObject(p, "share_of_tiles", round(1e4 * inf->part_n / (double)inf->tiles) / 1e4);
        const float sc = inf->part_box[2] / G;
        const double bx[4] = {inf->part_box[0] + x0 * sc, inf->part_box[1] + y0 * sc, inf->part_box[0] + (x1 + 1) * sc,
                              inf->part_box[1] + (y1 + 1) * sc};
        cJSON *b = cJSON_AddArrayToObject(p, "box_px");
        for (int i = 0; i < 4; i++) cJSON_AddItemToArray(b, cJSON_CreateNumber(round(bx[i] * 10) / 10));
        cJSON_AddBoolToObject(p, "generation_mirrored", inf->part_mirrored);
        cJSON_AddNumberToObject(p, "tile_tolerance_tl2", round(rt_part_tol(inf->floor, A->set) * 1e4) / 1e4);
    }
}
