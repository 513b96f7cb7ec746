/* evidence_text.c — evidence and scores as sentences (evidence_text.h).
 * Reads the keys of analyze/evidence.md only; thresholds come from the
 * analysis' stored settings (cs_rthresh), so a sentence states the value
 * that was really used. */
#include "reports/evidence_text.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char cs_rseverity_scale[] =
    "Severity runs from 0 to 4: the verdict sets the whole part (copy 3, near-copy 2, partial 1, "
    "novel 0) and 0.99 \xc3\x97 (1 \xe2\x88\x92 aligned tiled L2) is added, so within a verdict "
    "a higher severity is a closer match (3.99 = pixel-identical copy).";

static const cJSON *jget(const cJSON *o, const char *k) { return o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL; }

/* A number member, NAN when absent or not a number. */
static double jnum(const cJSON *o, const char *k) {
    const cJSON *v = jget(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* A value the store lacks prints as "nan" through %g/%.3f: say "?" instead,
 * in what was appended to b from byte `from` on (whole tokens only). */
static int alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static void unknown_as_q(cs_buf *b, size_t from) {
    if (!b->p || b->oom) return;
    size_t w = from;
    for (size_t r = from; r < b->len;) {
        size_t k = r + (b->p[r] == '-');
        int start = r == 0 || !alpha(b->p[r - 1]);
        if (start && b->len - k >= 3 && !memcmp(b->p + k, "nan", 3) && (k + 3 == b->len || !alpha(b->p[k + 3]))) {
            b->p[w++] = '?';
            r = k + 3;
        } else {
            b->p[w++] = b->p[r++];
        }
    }
    b->len = w;
    b->p[w] = 0;
}

static int is_hash(const char *d) { return !strcmp(d, "pdq") || !strcmp(d, "phash") || !strcmp(d, "dhash"); }

const char *cs_rdesc_scale(const char *d) {
    if (!strcmp(d, "tl2"))
        return "tiled L2: the worst tile's RMS pixel difference on 0\xe2\x80\x93" "1 grey (a grid of tiles over the "
               "64 px thumbnails), as is or mirrored; 0 = identical";
    if (!strcmp(d, "layout")) return "colour layout: RMS difference of the 8\xc3\x97" "8 mean colours on 0\xe2\x80\x93" "1; 0 = identical";
    if (!strcmp(d, "pdq")) return "PDQ hash: bits that differ, of 256; 0 = identical, about 128 = unrelated";
    if (!strcmp(d, "phash")) return "pHash: bits that differ, of 64; 0 = identical, about 32 = unrelated";
    if (!strcmp(d, "dhash")) return "dHash: bits that differ, of 64; 0 = identical, about 32 = unrelated";
    if (!strcmp(d, "local"))
        return "local features: share of the reference's keypoints verified geometrically (RANSAC); "
               "1 = all, higher = more alike (lf_near/lf_partial count instead the share of the keypoints "
               "the verified geometry leaves visible, and also ask a-contrario significance and the "
               "covered area)";
    if (!strcmp(d, "fused"))
        return "fused: \xe2\x88\x92log10 of the chance that an unrelated pair scores as well (the larger of the "
               "local-feature and PDQ figures); higher = more likely a copy, 2 = 1 in 100; it ranks the neighbours";
    return "embedding cosine similarity; 1 = identical, lower = less alike";
}

const char *cs_rdesc_unit(const char *d) {
    if (!strcmp(d, "tl2") || !strcmp(d, "layout")) return "0 = identical";
    if (is_hash(d)) return "bits differ, 0 = identical";
    if (!strcmp(d, "local")) return "share verified, 1 = all";
    if (!strcmp(d, "fused")) return "\xe2\x88\x92log10 p, higher = likelier a copy";
    return "cosine, 1 = identical";
}

const char *cs_rdesc_of(const char *d) {
    if (!strcmp(d, "pdq")) return " of 256";
    if (!strcmp(d, "phash") || !strcmp(d, "dhash")) return " of 64";
    return "";
}

int cs_rdesc_thresholds(const char *d, const cs_rthresh *t, double v[2], char label[2][48]) {
    int n = 0;
    if (!strcmp(d, "tl2")) {
        if (!isnan(t->copy_tl2)) {
            v[n] = t->copy_tl2;
            snprintf(label[n++], 48, "copy \xe2\x89\xa4 %g", t->copy_tl2);
        }
        if (!isnan(t->near_tl2)) {
            v[n] = t->near_tl2;
            snprintf(label[n++], 48, "near-copy \xe2\x89\xa4 %g", t->near_tl2);
        }
    } else if (!strcmp(d, "pdq")) {
        if (!isnan(t->pdq_near)) {
            v[n] = t->pdq_near;
            snprintf(label[n++], 48, "near-copy \xe2\x89\xa4 %g", t->pdq_near);
        }
    } else if (strcmp(d, "layout") && strcmp(d, "local") && strcmp(d, "fused") && !is_hash(d)) {
        if (!isnan(t->embed_near)) {
            v[n] = t->embed_near;
            snprintf(label[n++], 48, "near-copy \xe2\x89\xa5 %g", t->embed_near);
        }
    }
    return n;
}

/* "; " between the clauses of a rule sentence. */
static void sep(cs_buf *b, int *first) {
    if (!*first) cs_buf_puts(b, "; ");
    *first = 0;
}

static void rule_completion(cs_buf *b, const cJSON *c, const char *verdict, const cs_rthresh *t) {
    double d = jnum(c, "d_withheld"), dother = jnum(c, "d_other"), margin = t->completion_margin;
    double other = jnum(c, "nearest_other_ref_id");
    int restored = cJSON_IsTrue(jget(c, "restored"));
    if (restored) {
        int copy = !strcmp(verdict, "copy");
        cs_buf_printf(b, "%s: the withheld region was restored: its tiled L2 to the original %.3f \xe2\x89\xa4 %s %g",
                      verdict, d, copy ? "copy_tl2" : "near_tl2", copy ? t->copy_tl2 : t->near_tl2);
        if (!isnan(dother) && !isnan(margin))
            cs_buf_printf(b, ", and %g \xc3\x97 %.3f < %.3f, the nearest other reference's (#%.0f)", margin, d, dother, other);
        return;
    }
    if (!strcmp(verdict, "partial")) {
        cs_buf_printf(b, "partial: the withheld region reproduces another reference (#%.0f): tiled L2 %.3f \xe2\x89\xa4 copy_tl2 %g",
                      other, dother, t->copy_tl2);
        return;
    }
    cs_buf_puts(b, "no rule fired: ");
    if (!isnan(d) && d > t->near_tl2)
        cs_buf_printf(b, "the withheld region's tiled L2 to the original %.3f > %g near-copy bound", d, t->near_tl2);
    else if (!isnan(d))
        cs_buf_printf(b, "the withheld region's tiled L2 to the original %.3f is within %g, but not %g \xc3\x97 closer "
                         "than the nearest other reference's %.3f", d, t->near_tl2, margin, dother);
    else
        cs_buf_puts(b, "the withheld region was not measured");
    if (!isnan(dother) && dother > t->copy_tl2)
        cs_buf_printf(b, "; no other reference reproduces it (nearest %.3f > %g)", dother, t->copy_tl2);
}

/* Every rule of analyze/verdict.c that did not fire, with the value that kept it from firing. */
static void rule_novel(cs_buf *b, const cJSON *ev, const cs_rthresh *t) {
    if (cJSON_IsNull(jget(ev, "ref")) || !jget(ev, "ref")) {
        cs_buf_puts(b, "no rule fired: no candidate reference was found (an empty index, or no neighbours)");
        return;
    }
    const cJSON *tl2 = jget(ev, "tl2"), *h = jget(ev, "hashes"), *e = jget(ev, "embedding"), *rt = jget(ev, "ratio_test");
    int first = 1;
    cs_buf_puts(b, "no rule fired: ");
    double d = jnum(tl2, "distance"), al = jnum(tl2, "aligned_distance");
    if (!isnan(d)) {
        sep(b, &first);
        cs_buf_printf(b, "tiled L2 %.3f > %g copy bound", d, t->copy_tl2);
    }
    if (!isnan(al)) {
        sep(b, &first);
        cs_buf_printf(b, "best aligned tiled L2 %.3f > %g near-copy bound", al, t->near_tl2);
    }
    double pdq = jnum(h, "pdq"), qg = jnum(h, "pdq_quality_generation"), qr = jnum(h, "pdq_quality_ref");
    if (!isnan(pdq)) {
        sep(b, &first);
        if (pdq > t->pdq_near) cs_buf_printf(b, "PDQ %.0f of 256 bits > %g", pdq, t->pdq_near);
        else if (qg < t->pdq_min_quality || qr < t->pdq_min_quality)
            cs_buf_printf(b, "PDQ %.0f \xe2\x89\xa4 %g but a hash quality (%.0f, %.0f) < %g", pdq, t->pdq_near, qg, qr,
                          t->pdq_min_quality);
        else
            cs_buf_printf(b, "PDQ %.0f \xe2\x89\xa4 %g but the pixels disagree (aligned tiled L2 %.3f > %g)", pdq,
                          t->pdq_near, al, t->pdq_confirm_tl2);
    }
    double cs = jnum(e, "cosine");
    if (!isnan(cs)) {
        sep(b, &first);
        const char *col = cJSON_GetStringValue(jget(e, "column"));
        cs_buf_printf(b, "%s cosine %.3f < %g", col && *col ? col : "embedding", cs, t->embed_near);
    }
    double tm = jnum(tl2, "tiles_matched"), ti = jnum(tl2, "tiles_informative");
    if (!isnan(tm) && !isnan(ti)) {
        sep(b, &first);
        cs_buf_printf(b, "%.0f of %.0f informative tiles within %g (partial needs %g and %.0f%%)", tm, ti,
                      t->partial_tile_l2, t->partial_min_tiles, 100 * t->partial_min_frac);
    }
    double ratio = jnum(rt, "ratio"), d1 = jnum(rt, "d1");
    if (!isnan(ratio) && !cJSON_IsNull(jget(rt, "d2"))) {
        sep(b, &first);
        if (ratio >= t->ratio_max) cs_buf_printf(b, "ratio d1/d2 %.3f \xe2\x89\xa5 %.3g", ratio, t->ratio_max);
        else cs_buf_printf(b, "ratio d1/d2 %.3f < %.3g but d1 %.3f > %g", ratio, t->ratio_max, d1, t->ratio_tl2);
    }
    if (first) cs_buf_puts(b, "the evidence holds no measured score");
}

static void rev_rule(cs_buf *b, const cJSON *ev, const char *verdict, const cs_rthresh *t);

void cs_rev_rule(cs_buf *b, const cJSON *ev, const char *verdict, const cs_rthresh *t) {
    size_t from = b->len;
    rev_rule(b, ev, verdict, t);
    unknown_as_q(b, from);
}

static void rev_rule(cs_buf *b, const cJSON *ev, const char *verdict, const cs_rthresh *t) {
    const char *rule = cJSON_GetStringValue(jget(ev, "rule"));
    verdict = verdict && *verdict ? verdict : "?";
    if (!cJSON_IsObject(ev) || !rule) {
        cs_buf_printf(b, "%s: the rule is not recorded (no readable evidence)", verdict);
        return;
    }
    const cJSON *tl2 = jget(ev, "tl2"), *h = jget(ev, "hashes"), *e = jget(ev, "embedding"), *rt = jget(ev, "ratio_test");
    const cJSON *comp = jget(ev, "completion");
    if (cJSON_IsObject(comp) && (!strcmp(rule, "completion") || !*rule)) {
        rule_completion(b, comp, verdict, t);
        return;
    }
    if (!strcmp(rule, "copy_tl2")) {
        cs_buf_printf(b, "copy: tiled L2 %.3f \xe2\x89\xa4 copy_tl2 %g (%s)", jnum(tl2, "distance"), t->copy_tl2,
                      cJSON_IsTrue(jget(tl2, "mirrored")) ? "mirrored" : "as is");
    } else if (!strcmp(rule, "near_tl2")) {
        cs_buf_printf(b, "near-copy: tiled L2 after aligning a crop of the reference %.3f \xe2\x89\xa4 near_tl2 %g (copy needs %g unaligned; it is %.3f)",
                      jnum(tl2, "aligned_distance"), t->near_tl2, t->copy_tl2, jnum(tl2, "distance"));
    } else if (!strcmp(rule, "pdq_near")) {
        cs_buf_printf(b, "near-copy: PDQ %.0f of 256 bits \xe2\x89\xa4 pdq_near %g, both hash qualities \xe2\x89\xa5 %g, "
                         "pixels agree (aligned tiled L2 %.3f \xe2\x89\xa4 %g)",
                      jnum(h, "pdq"), t->pdq_near, t->pdq_min_quality, jnum(tl2, "aligned_distance"), t->pdq_confirm_tl2);
    } else if (!strcmp(rule, "embed_near")) {
        const char *col = cJSON_GetStringValue(jget(e, "column"));
        cs_buf_printf(b, "near-copy: %s cosine %.3f \xe2\x89\xa5 embed_near %g", col && *col ? col : "embedding",
                      jnum(e, "cosine"), t->embed_near);
    } else if (!strcmp(rule, "ratio_max")) {
        cs_buf_printf(b, "near-copy: Gu et al.'s ratio test: d1/d2 = %.3f/%.3f = %.3f < ratio_max %.3g, and d1 \xe2\x89\xa4 ratio_tl2 %g",
                      jnum(rt, "d1"), jnum(rt, "d2"), jnum(rt, "ratio"), t->ratio_max, t->ratio_tl2);
    } else if (!strcmp(rule, "near_ae_floor")) { /* analyze/an_roundtrip.c */
        const cJSON *pc = jget(ev, "pixel_comparison");
        cs_buf_printf(b, "near-copy: aligned tiled L2 %.3f to the reference \xe2\x89\xa4 %.3f, twice the model's "
                         "autoencoder's own loss on it (its round trip is at %.3f from it), every tile within that loss "
                         "of its round trip (%.3f), and no distinct reference nearly as close",
                      jnum(pc, "reference_aligned_tl2"), jnum(pc, "floor_bound_tl2"), jnum(pc, "autoencoder_floor_tl2"),
                      jnum(pc, "round_trip_aligned_tl2"));
    } else if (!strcmp(rule, "near_ae_floor_partial")) { /* analyze/an_roundtrip.c */
        const cJSON *pc = jget(ev, "pixel_comparison"), *bt = jget(pc, "tiles_beyond_floor");
        cs_buf_printf(b, "partial: aligned tiled L2 %.3f to the reference \xe2\x89\xa4 %.3f, twice the model's "
                         "autoencoder's own loss on it, and nearer its round trip, but %d tile(s) farther than that loss "
                         "(%.3f) from the round trip (up to %.3f): a region the generation does not copy",
                      jnum(pc, "reference_aligned_tl2"), jnum(pc, "floor_bound_tl2"),
                      cJSON_IsArray(bt) ? cJSON_GetArraySize(bt) : 0, jnum(pc, "autoencoder_floor_tl2"),
                      jnum(pc, "round_trip_aligned_tl2"));
    } else if (!strcmp(rule, "partial_min_tiles")) {
        cs_buf_printf(b, "partial: %.0f of %.0f informative tiles within partial_tile_l2 %g of the reference "
                         "(\xe2\x89\xa5 %g tiles and \xe2\x89\xa5 %.0f%% of them needed) while the whole image is not a copy",
                      jnum(tl2, "tiles_matched"), jnum(tl2, "tiles_informative"), t->partial_tile_l2,
                      t->partial_min_tiles, 100 * t->partial_min_frac);
    } else if (!*rule) {
        rule_novel(b, ev, t);
    } else {
        cs_buf_printf(b, "%s by rule %s", verdict, rule);
    }
}

/* "the whole reference" or "a 48 px crop of the reference at (8, 8)". */
static void crop_text(cs_buf *b, const cJSON *crop) {
    if (!cJSON_IsArray(crop) || cJSON_GetArraySize(crop) != 3) return;
    double x = cJSON_GetNumberValue(cJSON_GetArrayItem(crop, 0)), y = cJSON_GetNumberValue(cJSON_GetArrayItem(crop, 1));
    double side = cJSON_GetNumberValue(cJSON_GetArrayItem(crop, 2));
    if (x == 0 && y == 0 && side >= 64) cs_buf_puts(b, "the whole reference");
    else cs_buf_printf(b, "a %.0f px crop of the reference at (%.0f, %.0f)", side, x, y);
}

static void tl2_sentences(cs_buf *b, const cJSON *tl2, const cs_rthresh *t) {
    const cJSON *tiles = jget(tl2, "tiles");
    double grid = jnum(tl2, "grid");
    int n = cJSON_IsArray(tiles) ? cJSON_GetArraySize(tiles) : 0;
    const char *mir = cJSON_IsTrue(jget(tl2, "aligned_mirrored")) ? ", mirrored" : "";
    if (n && !isnan(t->partial_tile_l2)) {
        int within = 0;
        for (const cJSON *e = tiles->child; e; e = e->next) within += cJSON_IsNumber(e) && e->valuedouble <= t->partial_tile_l2;
        cs_buf_printf(b, "%d of %d tiles within %g of the reference", within, n, t->partial_tile_l2);
        if (!isnan(grid) && grid > 0) cs_buf_printf(b, " (%.0f px tiles, RMS on 0\xe2\x80\x93" "1 grey)", 64 / grid);
        cs_buf_printf(b, ", compared with ");
        crop_text(b, jget(tl2, "ref_crop"));
        cs_buf_printf(b, "%s.\n", mir);
    }
    double d = jnum(tl2, "distance"), al = jnum(tl2, "aligned_distance");
    const cJSON *worst = jget(tl2, "worst_tile");
    if (!isnan(d)) {
        cs_buf_printf(b, "Tiled L2 %.3f %s (0 = identical)", d, cJSON_IsTrue(jget(tl2, "mirrored")) ? "mirrored" : "as is");
        if (cJSON_IsObject(worst))
            cs_buf_printf(b, ", set by its worst tile at (%.0f, %.0f)", jnum(worst, "x"), jnum(worst, "y"));
        if (!isnan(al) && al < d) cs_buf_printf(b, "; %.3f after aligning", al);
        cs_buf_puts(b, ".\n");
    }
    double tm = jnum(tl2, "tiles_matched"), ti = jnum(tl2, "tiles_informative");
    if (!isnan(tm) && !isnan(ti))
        cs_buf_printf(b, "%.0f of the %.0f informative (not plain background) tiles of the reference match.\n", tm, ti);
}

static void rev_sentences(cs_buf *b, const cJSON *ev, const cs_rthresh *t);

/* What the replaced-part veto saw (analyze/lf_part.h, the check that keeps
 * a template twin from a verdict of these rules): whether it found a part,
 * the resolution compared and why, the blur given to the reference, and the
 * region it judged. A part found vetoes only the rules it belongs to: a
 * copy by the pixels (copy_tl2) can still carry the local rule's "part". */
static void part_sentence(cs_buf *b, const cJSON *rp, const char *whose) {
    if (!cJSON_IsObject(rp) || isnan(jnum(rp, "cells"))) return;
    const char *wr = cJSON_GetStringValue(jget(rp, "working_resolution"));
    double px = jnum(rp, "pixels"), blur = jnum(rp, "reference_blur_px");
    cs_buf_printf(b, "Replaced-part check of the %s (what keeps a template twin, a reference that differs in one "
                     "part, from their verdict): %s; compared at %.0f px",
                  whose, cJSON_IsTrue(jget(rp, "replaced")) ? "a part found, so they do not flag this pair"
                                                            : "no part found",
                  isnan(px) ? 64 : px);
    if (wr && wr[0] == '6') cs_buf_printf(b, " (%s)", wr + (strncmp(wr, "64: ", 4) ? 0 : 4));
    if (!isnan(blur) && blur > 0)
        cs_buf_printf(b, ", the reference blurred by %.1f px to the generation's own blur", blur);
    cs_buf_printf(b, "; %.0f of %.0f cells differ, the largest region judged %.0f cells",
                  jnum(rp, "cells_differing"), jnum(rp, "cells"), jnum(rp, "largest_region"));
    if (cJSON_IsTrue(jget(rp, "caption_band")))
        cs_buf_puts(b, " (a band along the top or bottom of the copy, tilted or inset where it was rotated or "
                       "embedded, set aside as a caption)");
    cs_buf_puts(b, ".\n");
}

void cs_rev_sentences(cs_buf *b, const cJSON *ev, const cs_rthresh *t) {
    size_t from = b->len;
    rev_sentences(b, ev, t);
    unknown_as_q(b, from);
}

static void rev_sentences(cs_buf *b, const cJSON *ev, const cs_rthresh *t) {
    if (!cJSON_IsObject(ev)) return;
    const cJSON *err = jget(ev, "completion_error");
    if (cJSON_IsString(err)) cs_buf_printf(b, "Not audited as a completion: %s.\n", err->valuestring);
    const cJSON *c = jget(ev, "completion");
    if (cJSON_IsObject(c)) {
        double px = jnum(c, "withheld_px"), d = jnum(c, "d_withheld"), dother = jnum(c, "d_other");
        const cJSON *rect = jget(c, "rect");
        if (!isnan(px)) cs_buf_printf(b, "%.0f of 4096 thumbnail pixels were withheld", px);
        else cs_buf_puts(b, "A region was withheld");
        if (cJSON_IsArray(rect) && cJSON_GetArraySize(rect) == 4)
            cs_buf_printf(b, " (within a %.0f\xc3\x97%.0f px box at (%.0f, %.0f))", cJSON_GetNumberValue(cJSON_GetArrayItem(rect, 2)),
                          cJSON_GetNumberValue(cJSON_GetArrayItem(rect, 3)), cJSON_GetNumberValue(cJSON_GetArrayItem(rect, 0)),
                          cJSON_GetNumberValue(cJSON_GetArrayItem(rect, 1)));
        cs_buf_puts(b, ".\n");
        if (!isnan(d)) {
            cs_buf_printf(b, "There the completion differs from the original by tiled L2 %.3f", d);
            if (!isnan(dother))
                cs_buf_printf(b, "; the closest other reference (#%.0f) by %.3f", jnum(c, "nearest_other_ref_id"), dother);
            cs_buf_printf(b, ": %s.\n", cJSON_IsTrue(jget(c, "restored")) ? "restored" : "not restored");
        }
    }
    const cJSON *tl2 = jget(ev, "tl2");
    if (cJSON_IsObject(tl2)) tl2_sentences(b, tl2, t);
    const cJSON *lf = jget(ev, "local"); /* analyze/an_local.c: what the lf_near / lf_partial rules read */
    if (cJSON_IsObject(lf) && !isnan(jnum(lf, "inliers"))) {
        cs_buf_printf(b, "Local features: %.0f keypoints verified geometrically (RANSAC), a share %.3f of the "
                         "reference's", jnum(lf, "inliers"), jnum(lf, "share"));
        if (!isnan(jnum(lf, "log10_nfa"))) cs_buf_printf(b, " (an unrelated pair does as well with odds 10^%.1f)", jnum(lf, "log10_nfa"));
        if (!isnan(jnum(lf, "coverage")))
            cs_buf_printf(b, "; the matched region covers %.0f%% of the generation", 100 * jnum(lf, "coverage"));
        if (cJSON_IsTrue(jget(lf, "mirrored"))) cs_buf_puts(b, ", mirrored");
        const cJSON *vb = jget(lf, "view_box");
        if (cJSON_IsArray(vb) && cJSON_GetArraySize(vb) == 4)
            cs_buf_printf(b, "; verified in the generation's foreground box (%d\xc3\x97%d px at (%d, %d)), "
                             "described again at the reference's scale",
                          cJSON_GetArrayItem(vb, 2)->valueint, cJSON_GetArrayItem(vb, 3)->valueint,
                          cJSON_GetArrayItem(vb, 0)->valueint, cJSON_GetArrayItem(vb, 1)->valueint);
        cs_buf_puts(b, ".\n");
        const cJSON *col = jget(lf, "colour");
        double hue = jnum(col, "hue_deg");
        if (fabs(hue) < 0.5) hue = 0; /* not "-0" */
        if (cJSON_IsObject(col) && !isnan(jnum(col, "parts")))
            cs_buf_printf(b, "Colours: one global edit (hue turned %.0f\xc2\xb0%s) explains %.0f%% of the compared pixels; "
                             "%.0f of the reference's %.0f colour parts recoloured (a copy allows a global edit, "
                             "not a recoloured part).\n",
                          hue,
                          jnum(col, "steps") == 2 ? "; brightness and contrast, then saturation, each clipped, "
                                                    "as PIL and torchvision apply them"
                                                  : "",
                          100 * jnum(col, "global_fit_share"), jnum(col, "parts_recoloured"), jnum(col, "parts"));
        part_sentence(b, jget(lf, "replaced_part"), "local-feature rules");
    }
    if (cJSON_IsObject(tl2)) part_sentence(b, jget(tl2, "replaced_part"), "pixel rules");
    const cJSON *pc = jget(ev, "pixel_comparison"); /* analyze/an_roundtrip.c */
    if (cJSON_IsObject(pc) && !isnan(jnum(pc, "round_trip_aligned_tl2")))
        cs_buf_printf(b, "Pixels compared with the reference and with its round trip through the model's own "
                         "autoencoder (the best the model can reproduce of it): aligned tiled L2 %.3f to the "
                         "reference, %.3f to the round trip (the nearer, the %s, decides); the autoencoder itself loses %.3f "
                         "on this reference.\n",
                      jnum(pc, "reference_aligned_tl2"), jnum(pc, "round_trip_aligned_tl2"),
                      jnum(pc, "round_trip_aligned_tl2") < jnum(pc, "reference_aligned_tl2") ? "round trip"
                                                                                             : "reference",
                      jnum(pc, "autoencoder_floor_tl2"));
    const cJSON *rt = jget(ev, "ratio_test");
    if (cJSON_IsObject(rt)) {
        double d2 = jnum(rt, "d2"), ratio = jnum(rt, "ratio");
        if (!isnan(d2))
            cs_buf_printf(b, "The next closest reference (#%.0f) is at aligned tiled L2 %.3f: ratio %.3f (Gu et al.'s "
                             "test calls it memorised below %.3g).\n",
                          jnum(rt, "second_ref_id"), d2, ratio, t->ratio_max);
        else cs_buf_puts(b, "No second candidate reference to compare with (ratio test not applicable).\n");
    }
    const cJSON *h = jget(ev, "hashes");
    if (cJSON_IsObject(h)) {
        cs_buf_printf(b, "Perceptual hashes differ by PDQ %.0f of 256 bits (quality %.0f and %.0f of 100)",
                      jnum(h, "pdq"), jnum(h, "pdq_quality_generation"), jnum(h, "pdq_quality_ref"));
        cs_buf_printf(b, ", pHash %.0f of 64, dHash %.0f of 64 (0 = identical, half = unrelated).\n", jnum(h, "phash"), jnum(h, "dhash"));
    }
    const cJSON *e = jget(ev, "embedding");
    if (cJSON_IsObject(e)) {
        const char *col = cJSON_GetStringValue(jget(e, "column"));
        double bias = jnum(e, "background_bias");
        cs_buf_printf(b, "Embedding %s: cosine %.3f to the reference (1 = identical)", col && *col ? col : "?",
                      jnum(e, "cosine"));
        if (!isnan(bias) && bias != 0)
            cs_buf_printf(b, " after subtracting the background bias %.3f (raw %.3f)", bias, jnum(e, "raw_cosine"));
        cs_buf_puts(b, ".\n");
    }
    double cand = jnum(ev, "candidates");
    if (!isnan(cand)) cs_buf_printf(b, "%.0f candidate references were compared pixel by pixel.\n", cand);
    const cJSON *cl = jget(ev, "clique");
    if (cJSON_IsObject(cl))
        cs_buf_printf(b, "One of %.0f near-identical generations of this prompt (a clique around generation %.0f).\n",
                      jnum(cl, "size"), jnum(cl, "seed_generation_id"));
}
