/* settings.c — the analysis thresholds: one row per setting, with its default
 * and where that default comes from. Calibration figures quoted here are
 * measured by tests/test_analyze_calib.c on ../shared/data/twemoji-64. */
#include "analyze/settings.h"

#include "analyze/match.h" /* CS_AN_K, the longest candidate list */

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROW(field, def, src, what) {#field, def, src, what}

const cs_an_setting_info cs_an_setting_table[] = {
    ROW(tile_grid, 4, "Carlini et al. 2023 s4.2: 16 tiles (4x4) per image",
        "tiles per side of the 64x64 thumbnail for tiled L2"),
    ROW(copy_tl2, 0.04,
        "calibrated on twemoji-64: the closest pair of distinct emoji is at 0.057; an "
        "exact or lossless copy is < 0.01",
        "tiled L2 (max over tiles, pixels in [0,1]) at or below this, as is or mirrored: copy"),
    ROW(near_tl2, 0.12,
        "calibrated on twemoji-64 (tests/test_analyze_calib): 40 px resizes and JPEG q60 of "
        "references stay below it; Carlini et al. 2023 s4.2 use delta = 0.15 on 512 px photos, "
        "which lets 8% of distinct emoji through",
        "tiled L2 after the crop/shift/mirror alignment at or below this: near-copy"),
    ROW(ratio_max, 0.3333333333, "Gu et al. 2023 (On Memorization in Diffusion Models): d1/d2 < 1/3",
        "nearest / second-nearest reference distance below this: memorised"),
    ROW(ratio_tl2, 0.25,
        "ours: keeps the ratio test from firing on far-apart pairs; 0.25 is the median tiled L2 "
        "between distinct twemoji-64 images",
        "the ratio test counts (near-copy) only when d1 is at or below this"),
    ROW(pdq_near, 31, "PDQ authors (Facebook ThreatExchange pdq README): distance <= 31 is a match",
        "PDQ Hamming distance at or below this (with quality): near-copy"),
    ROW(pdq_min_quality, 50, "PDQ authors: quality < 50 is unreliable",
        "PDQ evidence counts only when both hashes have at least this quality"),
    ROW(pdq_confirm_tl2, 0.15,
        "ours: PDQ sees luma only; on twemoji-64, emoji that differ only in hue (the coloured "
        "hearts, circles) are within 31 bits, so a PDQ match must be confirmed by the pixels within "
        "Carlini et al.'s delta = 0.15",
        "PDQ evidence counts only when the aligned tiled L2 is at or below this"),
    ROW(embed_near, 0.75, "Pizzi et al. 2022 (SSCD): ~90% precision above 0.75",
        "embedding cosine at or above this, from an embedder it is calibrated for (SSCD; the tiny "
        "column ranks candidates but its cosine decides no verdict): near-copy"),
    ROW(embed_confirm_tl2, 0.15,
        "ours, as pdq_confirm_tl2 (Carlini et al. 2023 s4.2: delta = 0.15): embed_near's 0.75 is "
        "SSCD's; the tiny whitened-pixel embedder passes it for 17% of distinct twemoji-64 pictures "
        "(tests/test_verdict_embed: 134 of 955 held-out emoji judged near-copies without this check, 7 with it)",
        "embedding evidence counts only when the aligned tiled L2 is at or below this "
        "(indexes without thumbnails: not checked)"),
    ROW(sscd_beta, 1.0, "Pizzi et al. 2022 (SSCD) s4: beta = 1",
        "score normalisation: cosine - beta x mean top-3 similarity to the background set"),
    ROW(partial_tile_l2, 0.10, "ours: between copy_tl2 and near_tl2",
        "a tile matches when its L2 is at or below this"),
    ROW(partial_min_tiles, 6, "ours: 6 of 16 tiles = 3/8 of the image",
        "partial copy: at least this many informative tiles match"),
    ROW(partial_min_frac, 0.75, "ours", "partial copy: and at least this fraction of the informative tiles"),
    ROW(tile_min_std, 0.08, "ours: a plain background tile (std < 0.08) proves nothing",
        "a reference tile is informative when its pixel std ([0,1] scale) is at least this"),
    ROW(cand_k, 8, "ours: recall@8 of the 8x8 colour layout on 12%-crops of twemoji-64 is 99.7%",
        "candidates per descriptor passed to the exact refinement"),
    ROW(align, 1, "ours", "1: search crops (100..75%), shifts and the mirror image for each candidate"),
    ROW(full_scan_max, 10000,
        "ours: the exact scan costs ~0.1 MFLOP per generation x reference (as is and mirrored): "
        "10,000 x 10,000 is ~1e13 FLOP, minutes of sgemm on 2 cores",
        "exact tiled-L2 scan over all references up to this many; beyond, candidates "
        "come from hashes and embeddings only"),
    ROW(clique_delta, 0.15, "Carlini et al. 2023 s4.2: delta = 0.15",
        "clique edge: two generations of a prompt within this tiled L2"),
    ROW(clique_k, 10, "Carlini et al. 2023 s4.2: clique of >= 10 among 500 generations",
        "a prompt is flagged as memorised when a clique has at least this many generations"),
    ROW(completion_margin, 2.0, "ours",
        "completion restored: d(withheld region) x margin < d(same region of the nearest other ref)"),
    ROW(lf_cand, 30,
        "ours: on the copy-detection bench's rotations the right reference is among the first 10 "
        "of the votes for 20 of 37, the first 30 for 32; verification is ~0.1 ms a pair",
        "references proposed by local-feature votes and verified geometrically per generation"),
    ROW(lf_max_nfa, 0.01,
        "Moisan & Stival 2004 (a-contrario RANSAC, ORSA) with a Bonferroni count of every "
        "reference and its mirror; 0.01 = the false-flag rate accepted per generation (issue 13: <= 1 %)",
        "local features: a verified consensus counts when its number of false alarms is at most this"),
    ROW(lf_min_share, 0.375,
        "ours: the share partial_min_tiles asks of the tiles (6 of 16 = 3/8); unrelated images share "
        "details that verify without being chance",
        "local features: and at least this share of the reference's stored keypoints that the verified geometry leaves visible in the generation are verified"),
    ROW(lf_near_cover, 0.5,
        "ours: the reference mapped into the generation covers at least half of it: a copy of the "
        "picture; less: a reference inside a new picture",
        "local features: near-copy at or above this covered share of the generation, partial below"),
    ROW(lf_colour_tol, 0.1,
        "ours: partial_tile_l2, the RMS a whole matching tile may have; only flat pixels are compared "
        "(resampling and blur leave them be, JPEG moves them a few levels), so one may be held to it",
        "local features: after the global colour fit, a pixel differs when its RMS residual ([0,1]) exceeds this"),
    ROW(lf_recolour_parts, 2,
        "ours: an occlusion (a caption band) may hide the one colour of the reference lying under it; "
        "two colours each changed wherever they occur, beyond a global colour edit, are a part recoloured "
        "(one, where 256 px show no caption band and the unexplained pixels as one solid area: verdict.c)",
        "local features: no verdict when at least this many of the reference's colour parts are recoloured "
        "(analyze/lf_colour.h: a colour twin, not a global colour edit)"),
};
const int cs_an_setting_count = (int)(sizeof cs_an_setting_table / sizeof cs_an_setting_table[0]);

/* The struct holds the settings as doubles in table order. */
_Static_assert(sizeof(cs_an_settings) ==
                   sizeof(double) * (sizeof cs_an_setting_table / sizeof cs_an_setting_table[0]),
               "settings table and struct disagree");

static double *slot(cs_an_settings *s, int i) { return (double *)s + i; }

void cs_an_settings_default(cs_an_settings *s) {
    for (int i = 0; i < cs_an_setting_count; i++) *slot(s, i) = cs_an_setting_table[i].def;
}

int cs_an_settings_set(cs_an_settings *s, const char *a, cs_err *err) {
    const char *eq = strchr(a, '=');
    if (!eq) return cs_fail(err, CS_EUSAGE, "--set %s: expected NAME=VALUE", a);
    for (int i = 0; i < cs_an_setting_count; i++) {
        const char *n = cs_an_setting_table[i].name;
        if (strlen(n) == (size_t)(eq - a) && !strncmp(n, a, eq - a)) {
            char *end;
            double v = strtod(eq + 1, &end);
            if (!eq[1] || *end || v != v)
                return cs_fail(err, CS_EUSAGE, "--set %s: '%s' is not a number", n, eq + 1);
            if (v < 0) return cs_fail(err, CS_EUSAGE, "--set %s: must not be negative", n);
            /* The matcher's lists hold CS_AN_K entries: a larger cand_k
             * would be clamped while the settings record the asked value
             * (issue 13), so it is refused instead. */
            if (!strcmp(n, "cand_k") && (v < 1 || v > CS_AN_K || v != (double)(int)v))
                return cs_fail(err, CS_EUSAGE, "--set cand_k: must be a whole number from 1 to %d", CS_AN_K);
            if (!strcmp(n, "lf_cand") && (v < 1 || v > 256 || v != (double)(int)v))
                return cs_fail(err, CS_EUSAGE, "--set lf_cand: must be a whole number from 1 to 256");
            if (!strcmp(n, "lf_max_nfa") && v <= 0)
                return cs_fail(err, CS_EUSAGE, "--set lf_max_nfa: must be positive");
            *slot(s, i) = v;
            return 0;
        }
    }
    return cs_fail(err, CS_EUSAGE, "--set: unknown setting '%.*s' (copyscope analyze --settings lists them)",
                   (int)(eq - a), a);
}

char *cs_an_settings_json(const cs_an_settings *s) {
    size_t cap = 64 + (size_t)cs_an_setting_count * 64;
    char *out = malloc(cap);
    if (!out) return NULL;
    size_t n = 0;
    out[n++] = '{';
    for (int i = 0; i < cs_an_setting_count; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s\"%s\":%.10g", i ? "," : "",
                              cs_an_setting_table[i].name, ((const double *)s)[i]);
    snprintf(out + n, cap - n, "}");
    return out;
}
