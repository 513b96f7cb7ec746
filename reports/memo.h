/* memo.h — the memorisation section of a report, for a model trained on a
 * known set of images: when the run's model has a manifest.json beside it
 * (scripts/train_demo_model.py writes one: every training image with its
 * caption and how many times it was duplicated, plus novel prompts), the
 * report measures what Carlini et al. 2023, Somepalli et al. 2023 and Wen et
 * al. 2024 measure:
 *
 *  - the rate of copies per duplication count: generations whose copyscope
 *    verdict is copy or near-copy of the prompt's own training image;
 *  - the white-box score's ROC and AUC, memorised prompts (images duplicated
 *    >= CS_MEMO_POS_COPIES times) against 1x and novel prompts, per prompt
 *    (mean over its seeds) at the FIRST sampling step, beside the same
 *    statistic averaged over all steps: at the first step the conditional
 *    and unconditional predictions start from the same pure noise, so their
 *    difference is the text's pull alone; later steps are taken from latents
 *    that already differ (a memorised prompt has converged, and its
 *    difference collapses), which mixes in the trajectory;
 *  - the verdicts' precision and recall against a pixel ground truth,
 *    Carlini et al. 2023 s4.2's extraction criterion for Stable Diffusion
 *    (docs/DESIGN-NOTES.md, "Pixel ground truth"): a generation is a copy of
 *    training image i when its tiled L2 (4 x 4 tiles, the largest per-tile
 *    RMS on [0,1] pixels) to i is at most CS_MEMO_TL2_DELTA, i the nearest
 *    training image by that distance. The training images are taken as the
 *    model's denoiser saw them, decoded from their latents (the manifest's
 *    recon/): an LDM's training data are latents, so the autoencoder's blur
 *    of a copy does not count against it and no margin on its floor is
 *    chosen. A copy verdict is copy or near-copy (the issue's reading).
 *    Chosen by looking at the generations the truths disagree on
 *    (docs/DESIGN-NOTES.md, "Which pixel truth"). Beside it, for comparison
 *    (JSON and a table): the same criterion on the training images' own
 *    pixels; the nearest-neighbour distance ratio of Yoon et al. 2023 / Gu
 *    et al. 2023 (L2 to the nearest < 1/3 of L2 to the second-nearest) on
 *    the decoded and on the own pixels; the issue's literal truth, PSNR to
 *    the nearest training image at least its reconstruction PSNR minus a
 *    margin (CS_MEMO_GT_MARGIN_DB, derived, and CS_MEMO_GT_ISSUE_MARGIN_DB,
 *    the issue prototype's); and each of them with partial verdicts counted
 *    as copy verdicts (vs_flag);
 *  - near-copies side by side: generation, training image, reconstruction.
 *
 * Everything is computed from the store (memo_model.c runs the SQL), the
 * generated files and the manifest's folder; no manifest, no section. */
#ifndef CS_REPORT_MEMO_H
#define CS_REPORT_MEMO_H

#include <stdint.h>

#include "core/err.h"
#include "core/store.h"
#include "reports/buf.h"

#define CS_MEMO_POS_COPIES 10
/* the margins of the PSNR truths (PSNR to the nearest training image at
 * least its reconstruction PSNR minus the margin), both compared only:
 *  - derived: a decoder copy within the autoencoder's own loss of the
 *    reconstruction is, by the triangle inequality, within twice that loss
 *    of the training image: 20 log10(2) dB;
 *  - the issue's prototype: its copies at >= 22 dB with an autoencoder at
 *    29.9 dB, 7.9 dB below the floor. */
#define CS_MEMO_GT_MARGIN_DB 6.0205999132796239
#define CS_MEMO_GT_ISSUE_MARGIN_DB (29.9 - 22.0)
#define CS_MEMO_KNN_RATIO (1.0 / 3.0) /* Yoon et al. 2023, Gu et al. 2023: d(nn1) / d(nn2) < 1/3 */
#define CS_MEMO_MAX_GROUPS 16
/* the pixel ground truths the verdicts are measured against */
enum { CS_MEMO_GT_TL2_RECON, CS_MEMO_GT_TL2_PIXELS, CS_MEMO_GT_RATIO_RECON, CS_MEMO_GT_RATIO_PIXELS, CS_MEMO_GT_FLOOR,
       CS_MEMO_GT_FLOOR_ISSUE, CS_MEMO_N_GT };
#define CS_MEMO_TL2_DELTA 0.15 /* Carlini et al. 2023 s4.2 */
#define CS_MEMO_MAX_SIDE 40 /* side-by-side rows shown */

typedef struct {
    char *file, *caption, *recon; /* recon: resolved path */
    int copies;
    int64_t ref_id;    /* canonical reference in the store (dup_of when a duplicate); 0 if absent */
    int64_t ref_raw;   /* the reference row whose source is the file */
    uint8_t *thumb;    /* the reference thumbnail (the training image as indexed), tw x th */
    uint8_t *rec;      /* the reconstruction resized to tw x th, NULL if unreadable */
    int tw, th;
    double floor_db;   /* PSNR(reconstruction, training image) */
} cs_memo_image;

typedef struct {
    int64_t id, prompt_id;
    char *path, *prompt;
    double wb_first, wb_mean; /* |eps_c - eps_u| at step 1, and its mean over all steps; NAN if none */
    int own;           /* training image the prompt is the caption of, -1: novel / other */
    int group;         /* index into cs_memo.group_copies */
    int verdict_img;   /* training image of a copy/near-copy finding (own first), -1 none */
    int verdict_any;   /* 1 when some copy/near-copy finding names any reference */
    int flag_img;      /* training image of a copy/near-copy/partial finding (own first), -1 none:
                          the second reading of "copy verdict" (issue 13 counts partial as flagged) */
    int nearest;       /* training image with the highest PSNR, -1 when none could be compared */
    double nearest_db, own_db;
    int gt;            /* pixel ground truth (Carlini's tiled L2 to the decoded training images): a copy of gt_img */
    int gt_img;        /* training image whose reconstruction is nearest by tiled L2, -1 when none */
    int gt_ratio[2], gt_ratio_img[2]; /* the 1/3 distance ratio on [0] the reconstructions, [1] the pixels */
    double ratio_gap_db[2]; /* PSNR to the nearest minus PSNR to the second-nearest */
    int gt_floor;      /* the floor margin (derived, 6.02 dB): a copy of `nearest` */
    int gt_floor_issue; /* the issue prototype's margin (7.9 dB): a copy of `nearest` */
    int gt_tl2[2], gt_tl2_img[2]; /* tiled L2 <= delta to [0] the reconstructions (= gt), [1] the pixels */
    double tl2[2];     /* that tiled L2 to the nearest */
} cs_memo_gen;

typedef struct cs_memo {
    int present;       /* 0: the run's model has no manifest: no section */
    char *dir;         /* the manifest's folder */
    char *note;        /* why something could not be measured, or NULL */
    cs_memo_image *img;
    int n_img;
    cs_memo_gen *g;
    int n_g;
    /* groups: distinct duplication counts, descending, then novel (copies 0) */
    int n_groups, group_copies[CS_MEMO_MAX_GROUPS];
    int64_t g_prompts[CS_MEMO_MAX_GROUPS], g_gens[CS_MEMO_MAX_GROUPS];
    int64_t g_verdict_own[CS_MEMO_MAX_GROUPS], g_gt_own[CS_MEMO_MAX_GROUPS];
    int64_t g_verdict_train[CS_MEMO_MAX_GROUPS], g_gt_train[CS_MEMO_MAX_GROUPS];
    /* the same counts with partial verdicts (flag_img): a part copied */
    int64_t g_flag_own[CS_MEMO_MAX_GROUPS], g_flag_train[CS_MEMO_MAX_GROUPS];
    int64_t g_prompt_copied[CS_MEMO_MAX_GROUPS]; /* prompts with >= 1 own-image verdict */
    int64_t g_clique[CS_MEMO_MAX_GROUPS]; /* prompts whose seeds all form one Carlini clique */
    /* white-box ROC, per prompt */
    int n_pos, n_neg;
    double auc_first, auc_mean;
    double *roc_first, *roc_mean; /* (fpr, tpr) pairs, n_roc each */
    int n_roc_first, n_roc_mean;
    /* verdicts vs pixel ground truth, per generation */
    /* [definition: CS_MEMO_GT_*][tp, fp, fn, tn] */
    int64_t vs[CS_MEMO_N_GT][4];
    /* the same with partial verdicts counted as copy verdicts */
    int64_t vs_flag[CS_MEMO_N_GT][4];
} cs_memo;

struct cs_rmodel_s;
/* Loads and measures for the report model's run; m->present 0 (and 0
 * returned) when its model has no manifest. Errors only for the store and
 * out of memory; unreadable files are noted in m->note. */
int cs_memo_load(cs_memo *m, cs_store *s, const struct cs_rmodel_s *rm, cs_err *err);
void cs_memo_free(cs_memo *m);

/* The HTML section (nothing when !m->present). */
void cs_memo_html(cs_buf *b, const cs_memo *m);
/* The JSON object "memorisation" added to root (a cJSON *; nothing when !present). */
void cs_memo_json(void *root, const cs_memo *m);

/* ---- memo_model.c: the SQL ---- */
/* Fills img[i].ref_id and the thumbnail for each training image (by source suffix). */
int cs_memo_load_refs(cs_memo *m, cs_store *s, cs_err *err);
/* The run's txt2img generations with their white-box signals and findings. */
int cs_memo_load_gens(cs_memo *m, cs_store *s, int64_t run_id, cs_err *err);

#endif
