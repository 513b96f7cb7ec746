/* settings.h — every threshold of the analysis, as a named setting.
 *
 * The one table of names, defaults and sources is cs_an_setting_table in
 * analyze/settings.c (the README's table is generated from the same rows by
 * `copyscope analyze --settings`). A setting can be changed on the command
 * line with --set NAME=VALUE; the values used are stored with each analysis
 * (analyses.settings_json) so a finding can be traced to its thresholds. */
#ifndef CS_AN_SETTINGS_H
#define CS_AN_SETTINGS_H

#include "core/err.h"

typedef struct {
    /* pixel metric (index/tiled_l2.h) */
    double tile_grid;        /* tiles per side of the 64 px thumbnail */
    double copy_tl2;         /* tiled L2 <= this (identity or mirror): copy */
    double near_tl2;         /* tiled L2 after alignment <= this: near-copy */
    double ratio_max;        /* Gu et al. d1/d2 below this: memorised (evidence + near-copy) */
    double ratio_tl2;        /* ... when d1 (aligned) is also <= this */
    /* hashes */
    double pdq_near;         /* PDQ Hamming <= this (both qualities >= pdq_min_quality): near-copy */
    double pdq_min_quality;
    double pdq_confirm_tl2;  /* ... and the aligned tiled L2 is <= this (PDQ sees luma only) */
    /* embeddings */
    double embed_near;       /* cosine >= this: near-copy */
    double embed_confirm_tl2;/* ... and the aligned tiled L2 is <= this (when the index has thumbnails) */
    double sscd_beta;        /* background score normalisation factor */
    /* partial copies */
    double partial_tile_l2;  /* a tile "matches" when its L2 <= this */
    double partial_min_tiles;/* ... and at least this many informative tiles match */
    double partial_min_frac; /* ... making at least this fraction of the informative tiles */
    double tile_min_std;     /* a reference tile is informative when its pixel std >= this */
    /* candidates and alignment */
    double cand_k;           /* candidates per descriptor for the refinement */
    double align;            /* 1: search crops/shifts/mirror for the candidates */
    double full_scan_max;    /* exact tiled-L2 scan of all refs up to this many refs */
    /* cliques (Carlini et al. generate-and-filter) */
    double clique_delta;     /* edge when tiled L2 <= this */
    double clique_k;         /* flag a prompt when a clique has >= this many generations */
    /* completion audits */
    double completion_margin;/* restored when d(withheld) * margin < d(nearest other ref) */
    /* local features (index/localfeat.h, analyze/lf_verify.h) */
    double lf_cand;          /* references retrieved by keypoint votes and verified per generation */
    double lf_max_nfa;       /* a-contrario number of false alarms at or below this: not chance */
    double lf_min_share;     /* ... and at least this share of the reference's keypoints verified */
    double lf_near_cover;    /* ... near-copy when the mapped reference covers this much of the
                                generation, else partial */
    double lf_colour_tol;    /* ... a pixel differs from the global colour fit beyond this RMS */
    double lf_recolour_parts;/* ... no local verdict when this many colour parts are recoloured */
} cs_an_settings;

typedef struct {
    const char *name;
    double def;
    const char *source; /* where the default comes from */
    const char *what;
} cs_an_setting_info;

extern const cs_an_setting_info cs_an_setting_table[];
extern const int cs_an_setting_count;

void cs_an_settings_default(cs_an_settings *s);
/* "NAME=VALUE"; unknown name or bad number -> CS_EUSAGE. */
int cs_an_settings_set(cs_an_settings *s, const char *assignment, cs_err *err);
/* JSON object {"name": value, ...}; caller frees. */
char *cs_an_settings_json(const cs_an_settings *s);

#endif
