/* report_model.h — a run's report data, loaded from the store into plain structs.
 *
 * model.c and run_summary.c are the files of reports/ that run SQL. It reads what analyze,
 * generate, index and the text audit stored; it does not know how any score
 * was computed (evidence_json is carried as text; descriptor scores are the
 * matches rows as stored). Tables that an older store lacks (prompt_summary,
 * text_*) are treated as empty. Every string lives in the model's arena and
 * is freed by cs_rmodel_free. */
#ifndef CS_REPORT_MODEL_H
#define CS_REPORT_MODEL_H

#include <stdint.h>

#include "core/err.h"
#include "core/store.h"
#include "reports/buf.h"

/* Known verdicts, most severe first; anything else sorts after them. */
#define CS_RV_N 4
extern const char *const cs_rv_names[CS_RV_N]; /* copy, near-copy, partial, novel */
int cs_rv_level(const char *verdict);           /* index in cs_rv_names, CS_RV_N if unknown */

typedef struct {
    int64_t id;
    int64_t rank;            /* 1 = most severe */
    int64_t generation_id, prompt_id, ref_id; /* 0 when NULL */
    const char *verdict;
    double severity;
    const char *evidence_json; /* as stored (may be invalid JSON: treated as text) */
    const char *gen_path, *gen_settings;
    int64_t seed, sample;
    double whitebox;         /* NAN when not recorded */
    const char *prompt_key, *prompt_text, *prompt_kind;
    const char *ref_source, *ref_caption;
    double *scores;          /* [n_desc] top-1 score per descriptor, NAN when none */
    int64_t *score_refs;     /* [n_desc] the reference of that top-1 match, 0 when none */
    double *ref_scores;      /* [n_desc] score of the finding's own reference (ref_id) by each
                                descriptor, NAN when it was not among that descriptor's matches */
    int in_gallery;          /* rank <= top */
} cs_rfinding;

typedef struct {
    int64_t id;
    const char *key, *text, *kind;
    int64_t n_generations;   /* generations of the prompt in the run */
    int64_t n_findings, count[CS_RV_N + 1]; /* by verdict level (last: other) */
    double rate;             /* (copy + near-copy) / generations; NAN with none */
    double max_similarity, mean_whitebox; /* from prompt_summary, NAN when absent */
    double min_tl2;          /* prompt_summary.min_tl2: closest aligned tiled L2, NAN when absent */
    int64_t largest_clique;  /* -1 when absent */
    int64_t first_gallery;   /* first finding of this prompt in the gallery, 0 if none */
} cs_rprompt;

typedef struct {
    int64_t comp_start, comp_end, chars, words, doc_id, doc_start, doc_end;
    const char *text, *doc_name; /* doc_name: text_docs.name, else its source */
} cs_rspan;

typedef struct {
    int64_t id, audit_id, completion_id, prompt_id, doc_id;
    const char *status, *verdict, *evidence_json;
    const char *prompt_key, *prompt, *continuation, *completion, *model;
    const char *doc_name, *doc_source, *audit_source;
    int64_t longest_chars, longest_words, exact_prefix_words; /* prefix -1 when NULL */
    double rouge_l_f1, edit_sim; /* NAN when NULL */
    cs_rspan *spans;
    int n_spans;
    int in_gallery;
} cs_rtext;

/* The thresholds of the analysis that wrote the findings (analyses.settings_json,
 * analyze/settings.h); NAN for any the stored settings lack. */
typedef struct {
    double copy_tl2, near_tl2, ratio_max, ratio_tl2, pdq_near, pdq_min_quality, pdq_confirm_tl2,
        embed_near, partial_tile_l2, partial_min_tiles, partial_min_frac, completion_margin, tile_min_std,
        lf_max_nfa, lf_min_share, lf_near_cover; /* the local-feature rules (analyze/verdict.c) */
} cs_rthresh;

typedef struct cs_rmodel_s {
    cs_arena arena;
    const char *db_name;       /* basename of the store */
    const char *attribution;   /* meta 'attribution', NULL when unset */
    const char *generated;     /* UTC time of the report */
    /* the run (has_run 0: a store with text findings only) */
    int has_run;
    int64_t run_id;
    const char *suite, *started, *finished, *command, *model, *model_sha256, *run_settings;
    const char *suite_name;    /* the suite's "name" (runs.settings_json suite_name), NULL when absent */
    /* the latest analysis of the run (analysis_id 0: none) */
    int64_t analysis_id, n_refs; /* n_refs: references it compared against */
    const char *descriptors;   /* its comma list ("tl2,pdq,phash,dhash,tiny") */
    cs_rthresh th;
    int64_t n_generations;
    int64_t count[CS_RV_N + 1];  /* findings by verdict level */
    /* image findings, most severe first */
    cs_rfinding *f;
    int64_t n_f;
    int64_t top;               /* gallery size used */
    const char **desc;         /* descriptors seen in matches, sorted */
    int n_desc;
    cs_rprompt *p;             /* by prompt id */
    int64_t n_p;
    /* text audit findings, most severe first */
    cs_rtext *t;
    int64_t n_t;
    int64_t text_count[3];     /* verbatim, near-verbatim, novel (others counted as novel) */
    const struct cs_memo *memo; /* memorisation section (reports/memo.h), set by cs_report_render; may be NULL */
} cs_rmodel;

typedef struct {
    int64_t run_id;     /* 0: the latest run that has findings (else the latest run) */
    int64_t top;        /* gallery size; <= 0: 200 */
    int64_t text_audit; /* 0: every text audit; > 0 that one; < 0: none */
} cs_rmodel_opts;

/* Loads the run. Errors: no such run (CS_ENOTFOUND "run 7: no such run"), a
 * store without any run or text finding (CS_ENOTFOUND). */
int cs_rmodel_load(cs_rmodel *m, cs_store *s, const cs_rmodel_opts *o, cs_err *err);
void cs_rmodel_free(cs_rmodel *m);

/* The 64x64 (or other size) RGB thumbnail of a reference; *rgb malloc'd.
 * Returns 0 and *rgb NULL when the reference has none. */
int cs_rmodel_ref_thumb(cs_store *s, int64_t ref_id, uint8_t **rgb, int *w, int *h, cs_err *err);

/* Text verdict level: 0 verbatim, 1 near-verbatim, 2 anything else. */
int cs_rtext_level(const char *verdict);

#endif
