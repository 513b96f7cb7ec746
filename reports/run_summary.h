/* run_summary.h — what `copyscope run` prints at its end, read from the
 * store: the verdict counts of a run, the worst finding of its most severe
 * prompts, the completion and expect_ref checks, and the text audit's
 * counts and longest spans. The command formats it (reports/ reads, cli/
 * prints). */
#ifndef CS_RUN_SUMMARY_H
#define CS_RUN_SUMMARY_H

#include <stdint.h>

#include "core/err.h"
#include "core/store.h"

#define CS_RSUM_TOP 6      /* prompts listed */
#define CS_RSUM_TEXT_TOP 3 /* text findings listed */

/* The worst finding of one prompt (strings owned by the summary, may be NULL). */
typedef struct {
    char *key, *kind, *verdict, *source, *caption;
    int has_dist;
    double aligned_distance;   /* evidence tl2.aligned_distance */
    int64_t n_memorised, n_generations; /* the prompt's copy + near-copy, all */
} cs_rsum_prompt;

typedef struct {
    char *key, *verdict, *doc;
    int64_t longest_words, exact_prefix_words;
} cs_rsum_text;

typedef struct {
    /* images */
    int64_t count[4], total;            /* findings by verdict (cs_rv_names: copy first), all */
    int64_t analysis_id, n_refs;        /* the run's latest analysis and its index size; -1: none */
    const char *worst;                  /* the most severe verdict found (static), NULL: none */
    cs_rsum_prompt top[CS_RSUM_TOP];    /* most severe first */
    int n_top;
    int64_t n_prompts, n_memorised_prompts;
    int64_t n_completions, n_restored;  /* audited completions, how many restored */
    int64_t n_expected, n_expected_hit; /* expect_ref generations, found as a copy of it */
    /* text (text_audit >= 0) */
    int64_t text_n, text_verbatim, text_near, text_novel, text_longest;
    cs_rsum_text text_top[CS_RSUM_TEXT_TOP];
    int n_text_top;
} cs_run_summary;

/* Reads the summary of run_id; text_audit: 0 every audit, > 0 that one,
 * < 0 none. Free with cs_run_summary_free. */
int cs_run_summary_load(cs_store *s, int64_t run_id, int64_t text_audit, cs_run_summary *out, cs_err *err);
void cs_run_summary_free(cs_run_summary *r);

/* The latest text audit's id (0 when there is none, -1 when the store has
 * text findings from no audit). */
int cs_text_audit_latest(cs_store *s, int64_t *id, cs_err *err);

#endif
