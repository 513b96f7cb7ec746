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
 *  - the verdicts' precision and recall against a pixel ground truth: a
 *    generation is a copy of training image i when its PSNR to i is at least
 *    the autoencoder's own reconstruction PSNR of i minus CS_MEMO_GT_MARGIN_DB
 *    (its error at most twice the autoencoder's RMS error), i the nearest
 *    training image by PSNR; the reconstructions are the manifest's recon/;
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
#define CS_MEMO_GT_MARGIN_DB 6.0
#define CS_MEMO_MAX_GROUPS 16
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
    int nearest;       /* training image with the highest PSNR, -1 when none could be compared */
    double nearest_db, own_db;
    int gt;            /* pixel ground truth: a copy of `nearest` */
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
    int64_t g_prompt_copied[CS_MEMO_MAX_GROUPS]; /* prompts with >= 1 own-image verdict */
    int64_t g_clique[CS_MEMO_MAX_GROUPS]; /* prompts whose seeds all form one Carlini clique */
    /* white-box ROC, per prompt */
    int n_pos, n_neg;
    double auc_first, auc_mean;
    double *roc_first, *roc_mean; /* (fpr, tpr) pairs, n_roc each */
    int n_roc_first, n_roc_mean;
    /* verdicts vs pixel ground truth, per generation */
    int64_t tp, fp, fn, tn;
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
