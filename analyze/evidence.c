/* evidence.c — a finding's evidence_json (the schema is analyze/evidence.md):
 * the matched reference, tiled L2 with its tiles, the ratio test, hashes,
 * embedding, white-box signal, completion audit and clique, built from the
 * match result and the item. Numbers are rounded to 4 decimals. */
#include <cjson/cJSON.h>
#include <math.h>

#include "analyze/analyze_internal.h"
#include "analyze/fine_ref.h"

static void part_json(cJSON *o, const cs_lfp *p);
static void num_or_null(cJSON *o, const char *k, int ok, double v);
static cJSON *tile_json(int t, int grid, const float *td) {
    const int ts = CS_THUMB_SIZE / grid;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", t);
    cJSON_AddNumberToObject(o, "x", (t % grid) * ts);
    cJSON_AddNumberToObject(o, "y", (t / grid) * ts);
    cJSON_AddNumberToObject(o, "size", ts);
    cJSON_AddNumberToObject(o, "distance", td[t]);
    return o;
}

static double r4(double v) { return round(v * 1e4) / 1e4; }

/* "ref" and "tl2": the best candidate's reference and its tiled L2. */
static void add_ref_tl2(cJSON *o, const an_state *A, const cs_an_cand *b) {
    const cs_an_refs *refs = &A->refs;
    const cs_ref_thumbs *th = &A->th;
    const int grid = refs->cfg.grid, T = grid * grid;
    cJSON *ref = cJSON_AddObjectToObject(o, "ref");
    cJSON_AddNumberToObject(ref, "id", (double)refs->ids[b->row]);
    if (th && b->row < th->n) {
        cJSON_AddStringToObject(ref, "source", th->sources[b->row] ? th->sources[b->row] : "");
        if (th->captions[b->row]) cJSON_AddStringToObject(ref, "caption", th->captions[b->row]);
        else cJSON_AddNullToObject(ref, "caption");
    }
    cJSON *t = cJSON_AddObjectToObject(o, "tl2");
    cJSON_AddNumberToObject(t, "distance", r4(b->d_id));
    cJSON_AddBoolToObject(t, "mirrored", b->id_mirrored);
    cJSON_AddNumberToObject(t, "aligned_distance", r4(b->d_al));
    /* the best derotated view (analyze/match.h): the tl2 list's score for a
     * pair is the smaller of distance and this, so both are in the evidence */
    num_or_null(t, "derotated_distance", isfinite(b->d_rot), r4(b->d_rot));
    cJSON_AddNumberToObject(t, "derotation_deg", isfinite(b->d_rot) ? b->rot_deg : 0);
    cJSON_AddBoolToObject(t, "aligned_mirrored", b->al_mirrored);
    cJSON *box = cJSON_AddArrayToObject(t, "ref_crop");
    for (int k = 0; k < 3; k++) cJSON_AddItemToArray(box, cJSON_CreateNumber(r4(b->box[k])));
    cJSON_AddNumberToObject(t, "grid", grid);
    cJSON *tiles = cJSON_AddArrayToObject(t, "tiles");
    for (int k = 0; k < T; k++) cJSON_AddItemToArray(tiles, cJSON_CreateNumber(r4(b->tile_d[k])));
    if (b->best_tile >= 0) cJSON_AddItemToObject(t, "best_tile", tile_json(b->best_tile, grid, b->tile_d));
    else cJSON_AddNullToObject(t, "best_tile");
    if (b->worst_tile >= 0) cJSON_AddItemToObject(t, "worst_tile", tile_json(b->worst_tile, grid, b->tile_d));
    cJSON_AddNumberToObject(t, "tiles_informative", b->tiles_informative);
    cJSON_AddNumberToObject(t, "tiles_content", b->tiles_content);
    cJSON_AddNumberToObject(t, "tiles_matched", b->tiles_matched);
    part_json(t, &b->part_al);
}

/* "replaced_part" (analyze/lf_part.h): what the geometry and the global
 * colour fit leave unexplained; absent when not measured (analyze/an_part.h:
 * only where a verdict hangs on it). */
static void part_json(cJSON *o, const cs_lfp *p) {
    if (p->cells <= 0) return;
    cJSON *j = cJSON_AddObjectToObject(o, "replaced_part");
    cJSON_AddNumberToObject(j, "cells", p->cells);
    cJSON_AddNumberToObject(j, "cells_differing", p->differ);
    cJSON_AddNumberToObject(j, "largest_region", p->part);
    if (p->part > 0) cJSON_AddItemToObject(j, "region_box_cells", cJSON_CreateIntArray(p->box, 4));
    cJSON_AddBoolToObject(j, "caption_band", p->caption);
    cJSON_AddBoolToObject(j, "area", p->area);
    cJSON_AddNumberToObject(j, "solid_cells", p->thick);
    cJSON_AddBoolToObject(j, "shape", p->shape);
    cJSON_AddBoolToObject(j, "solid_area", p->solid);
    /* the reference's colours the fit moved to a new colour (not painted
     * over by another of its own): condition 3b holds only at 0 */
    if (p->recoloured >= 0) cJSON_AddNumberToObject(j, "colours_moved", p->recoloured);
    cJSON_AddBoolToObject(j, "replaced", p->replaced);
    /* the pixels measured (analyze/fine_ref.h): 64 or 256 px, and why 64 where 256 was asked */
    cJSON_AddNumberToObject(j, "pixels", p->side);
    /* the generation's blur the reference was compared under (analyze/lf_blur.h) */
    cJSON_AddNumberToObject(j, "reference_blur_px", r4(p->blur));
    if (p->fine != CS_FINE_NOT_ASKED) cJSON_AddStringToObject(j, "working_resolution", cs_fine_name(p->fine));
}

/* "ratio_test", "hashes" and "embedding" of the best candidate. */
static void add_ratio_hashes_emb(cJSON *o, const an_state *A, const cs_an_result *r, const item *x) {
    const cs_an_cand *b = &r->best;
    cJSON *rt = cJSON_AddObjectToObject(o, "ratio_test");
    cJSON_AddNumberToObject(rt, "d1", r4(b->d_al));
    if (isfinite(r->d2)) cJSON_AddNumberToObject(rt, "d2", r4(r->d2));
    else cJSON_AddNullToObject(rt, "d2");
    if (r->second_row >= 0) cJSON_AddNumberToObject(rt, "second_ref_id", (double)A->refs.ids[r->second_row]);
    else cJSON_AddNullToObject(rt, "second_ref_id");
    cJSON_AddNumberToObject(rt, "ratio", r4(r->ratio));
    cJSON_AddBoolToObject(rt, "pass", r->ratio_pass);
    if (b->pdq >= 0) {
        cJSON *h = cJSON_AddObjectToObject(o, "hashes");
        cJSON_AddNumberToObject(h, "pdq", b->pdq);
        cJSON_AddNumberToObject(h, "pdq_quality_generation", r->gen_pdq_quality);
        cJSON_AddNumberToObject(h, "pdq_quality_ref", b->pdq_q_ref);
        cJSON_AddNumberToObject(h, "phash", b->phash);
        cJSON_AddNumberToObject(h, "dhash", b->dhash);
    } else {
        cJSON_AddNullToObject(o, "hashes");
    }
    if (!(b->emb_cos > -2)) { /* no embedding score for this pair */
        cJSON_AddNullToObject(o, "embedding");
        return;
    }
    cJSON *e = cJSON_AddObjectToObject(o, "embedding");
    cJSON_AddStringToObject(e, "column", A->emb_name ? A->emb_name : "");
    cJSON_AddNumberToObject(e, "cosine", r4(b->emb_cos));
    cJSON_AddNumberToObject(e, "raw_cosine", r4(b->emb_cos + x->emb_bias));
    cJSON_AddNumberToObject(e, "background_bias", r4(x->emb_bias));
    if (A->bg.kind) {
        cJSON *bo = cJSON_AddObjectToObject(e, "background");
        cJSON_AddStringToObject(bo, "source", A->bg.kind);
        cJSON_AddStringToObject(bo, "path", A->bg.path ? A->bg.path : "");
        cJSON_AddNumberToObject(bo, "images", (double)A->bg.n);
    } else {
        cJSON_AddNullToObject(e, "background");
    }
}

static cJSON *poly_json(const float (*p)[2]) {
    cJSON *a = cJSON_CreateArray();
    for (int c = 0; c < 4; c++) {
        cJSON *pt = cJSON_CreateArray();
        cJSON_AddItemToArray(pt, cJSON_CreateNumber(round(p[c][0] * 10) / 10));
        cJSON_AddItemToArray(pt, cJSON_CreateNumber(round(p[c][1] * 10) / 10));
        cJSON_AddItemToArray(a, pt);
    }
    return a;
}

/* "local": the best candidate's geometric verification (analyze/lf_verify.h),
 * null when its local features did not verify (or were not used). */
static void add_local(cJSON *o, const an_state *A, const cs_an_cand *b) {
    const cs_lfv_match *m = &b->lf;
    if (!A->lfx || m->inliers <= 0) {
        cJSON_AddNullToObject(o, "local");
        return;
    }
    cJSON *l = cJSON_AddObjectToObject(o, "local");
    cJSON_AddNumberToObject(l, "inliers", m->inliers);
    cJSON_AddNumberToObject(l, "ratio_test_inliers", m->ratio_inliers); /* the rest: guided matches */
    cJSON_AddNumberToObject(l, "matches", m->matches);
    cJSON_AddNumberToObject(l, "share", r4(m->score));
    cJSON_AddNumberToObject(l, "visible_keypoints", m->visible);
    cJSON_AddNumberToObject(l, "share_visible", r4(m->share_visible));
    cJSON_AddNumberToObject(l, "extent", r4(m->extent));
    cJSON_AddNumberToObject(l, "rival_share", r4(m->rival));
    cJSON_AddNumberToObject(l, "scale", r4(m->scale));
    cJSON_AddNumberToObject(l, "log10_nfa", round(m->log10_nfa1 * 100) / 100);
    cJSON_AddNumberToObject(l, "coverage", r4(m->coverage));
    cJSON_AddBoolToObject(l, "mirrored", m->mirrored);
    cJSON_AddStringToObject(l, "view", m->view_box[2] > 0 ? "foreground_box" : "as_is"); /* analyze/lf_box.h */
    if (m->view_box[2] > 0) cJSON_AddItemToObject(l, "view_box", cJSON_CreateIntArray(m->view_box, 4));
    if (m->recolour >= 0) { /* analyze/lf_colour.h; absent: not measured */
        cJSON *c = cJSON_AddObjectToObject(l, "colour");
        cJSON_AddNumberToObject(c, "recoloured_share", r4(m->recolour));
        cJSON_AddNumberToObject(c, "global_fit_share", r4(m->colour_fit));
        cJSON_AddNumberToObject(c, "hue_deg", m->hue_deg);
        cJSON_AddNumberToObject(c, "steps", m->colour_steps);
        cJSON_AddNumberToObject(c, "parts", m->parts);
        cJSON_AddNumberToObject(c, "parts_recoloured", m->parts_recoloured);
    }
    part_json(l, &b->part_lf);
    cJSON_AddItemToObject(l, "ref_polygon", poly_json((const float (*)[2])m->ref_poly));
    cJSON_AddItemToObject(l, "gen_polygon", poly_json((const float (*)[2])m->gen_poly));
    const int sz[4] = {m->ref_w, m->ref_h, m->gen_w, m->gen_h};
    cJSON_AddItemToObject(l, "ref_size", cJSON_CreateIntArray(sz, 2));
    cJSON_AddItemToObject(l, "gen_size", cJSON_CreateIntArray(sz + 2, 2));
}

static void num_or_null(cJSON *o, const char *k, int ok, double v) {
    if (ok) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

/* "neighbours": the generation's candidates in the finding's order
 * (verdict, fused score, aligned tiled L2), each with every descriptor's
 * score for the pair (null where a descriptor has none). */
static void add_neighbours(cJSON *o, const an_state *A, const cs_an_result *r) {
    cJSON *a = cJSON_AddArrayToObject(o, "neighbours");
    for (int k = 0; k < r->n_nb; k++) {
        const cs_an_nb *n = &r->nb[k];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "rank", k);
        cJSON_AddNumberToObject(e, "ref_id", (double)A->refs.ids[n->row]);
        if (n->row < A->th.n && A->th.sources[n->row]) cJSON_AddStringToObject(e, "source", A->th.sources[n->row]);
        cJSON_AddStringToObject(e, "verdict", cs_verdict_name(n->verdict));
        cJSON_AddStringToObject(e, "rule", n->rule ? n->rule : "");
        cJSON_AddNumberToObject(e, "fused", r4(n->fused));
        /* the score's unit and direction beside it: a bare number reads as a distance or a cosine */
        cJSON_AddStringToObject(e, "fused_unit", "-log10 p, p = chance an unrelated pair scores as well; "
                                                 "higher = more likely a copy (2: 1 in 100, 0: chance)");
        cJSON *sc = cJSON_AddObjectToObject(e, "scores");
        num_or_null(sc, "tl2", isfinite(n->d_id), r4(n->d_id));
        num_or_null(sc, "tl2_aligned", isfinite(n->d_al), r4(n->d_al));
        num_or_null(sc, "tl2_derotated", isfinite(n->d_rot), r4(n->d_rot));
        num_or_null(sc, "pdq", n->pdq >= 0, n->pdq);
        num_or_null(sc, "phash", n->phash >= 0, n->phash);
        num_or_null(sc, "dhash", n->dhash >= 0, n->dhash);
        num_or_null(sc, A->emb_name ? A->emb_name : "embedding", n->emb_cos > -2, r4(n->emb_cos));
        num_or_null(sc, "local_share", A->lfx != NULL, r4(n->lf_share));
        num_or_null(sc, "local_inliers", A->lfx != NULL, n->lf_inliers);
        num_or_null(sc, "z_local", A->lfx != NULL, r4(n->z_local));
        cJSON_AddNumberToObject(sc, "z_pdq", r4(n->z_pdq));
        cJSON_AddItemToArray(a, e);
    }
}

/* "completion": the audit of the withheld region (or why there is none). */
static void add_completion(cJSON *o, const an_state *A, const item *x) {
    if (!x->audited) {
        cJSON_AddNullToObject(o, "completion");
        if (x->task && x->task->error) cJSON_AddStringToObject(o, "completion_error", x->task->error);
        return;
    }
    const cs_an_completion *c = &x->comp;
    const int64_t *ids = A->refs.ids;
    cJSON *j = cJSON_AddObjectToObject(o, "completion");
    cJSON_AddNumberToObject(j, "original_ref_id", (double)ids[c->orig_row]);
    cJSON *rc = cJSON_AddArrayToObject(j, "rect");
    for (int k = 0; k < 4; k++) cJSON_AddItemToArray(rc, cJSON_CreateNumber(c->rect[k]));
    if (x->task->mask) cJSON_AddStringToObject(j, "mask", x->task->mask);
    else cJSON_AddNullToObject(j, "mask");
    char map[CS_THUMB_SIZE * CS_THUMB_SIZE / 4 + 1]; /* the audited region itself: the report draws it */
    if (x->task->withheld) cs_an_region_hex(x->task->withheld, map), cJSON_AddStringToObject(j, "withheld_map", map);
    cJSON_AddNumberToObject(j, "withheld_px", c->n_withheld);
    cJSON_AddNumberToObject(j, "tiles", c->n_tiles);
    cJSON_AddNumberToObject(j, "d_withheld", isfinite(c->d_orig) ? r4(c->d_orig) : -1);
    if (c->other_row >= 0) {
        cJSON_AddNumberToObject(j, "nearest_other_ref_id", (double)ids[c->other_row]);
        cJSON_AddNumberToObject(j, "d_other", r4(c->d_other));
    } else {
        cJSON_AddNullToObject(j, "nearest_other_ref_id");
        cJSON_AddNullToObject(j, "d_other");
    }
    cJSON_AddBoolToObject(j, "restored", c->restored);
}

char *an_evidence_json(const an_state *A, const cs_an_result *r, const item *x) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "schema", "copyscope.evidence/1");
    cJSON_AddNumberToObject(o, "analysis_id", (double)A->sum->analysis_id);
    cJSON_AddStringToObject(o, "verdict", cs_verdict_name(r->verdict));
    cJSON_AddStringToObject(o, "rule", x->audited ? "completion" : r->has_best ? r->best.rule : "");
    cJSON_AddNumberToObject(o, "severity", r4(r->severity));
    cJSON_AddNumberToObject(o, "candidates", r->n_cand);
    if (r->has_best) {
        add_ref_tl2(o, A, &r->best);
        add_ratio_hashes_emb(o, A, r, x);
        add_local(o, A, &r->best);
        add_neighbours(o, A, r);
        an_rt_evidence(o, A, r);
    } else {
        cJSON_AddNullToObject(o, "ref");
    }
    if (x->has_whitebox) cJSON_AddNumberToObject(o, "whitebox", x->whitebox);
    else cJSON_AddNullToObject(o, "whitebox");
    add_completion(o, A, x);
    if (x->clique >= 0) {
        cJSON *c = cJSON_AddObjectToObject(o, "clique");
        cJSON_AddNumberToObject(c, "size", (double)x->clique_size);
        cJSON_AddNumberToObject(c, "seed_generation_id", (double)x->clique_seed);
    } else {
        cJSON_AddNullToObject(o, "clique");
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}
