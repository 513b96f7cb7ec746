/* analyze.h — `copyscope analyze`: generations x reference index -> matches,
 * cliques, findings with evidence, and a per-prompt summary, in the store.
 *
 * Flow (analyze.c): load the references (thumbnails, hashes, embedding
 * columns) -> read every generation (a run's rows, or image folders recorded
 * as a new run) -> per prompt, near-duplicate cliques (clique.h) -> match in
 * chunks (match.h) and write matches + findings per chunk in one
 * transaction -> prompt_summary. Re-analysing a generation replaces its
 * matches and findings. The evidence_json schema is analyze/evidence.md. */
#ifndef CS_ANALYZE_H
#define CS_ANALYZE_H

#include <stdint.h>

#include "analyze/settings.h"
#include "core/err.h"
#include "core/store.h"

typedef struct {
    int64_t run_id;          /* > 0: analyse this run's generations */
    char *const *image_dirs; /* else: every file under these folders (and files), as a new run */
    int n_dirs;
    const char *descriptors; /* comma list the analysis must use ("tl2,pdq,tiny"); the index
                                lacking one is an error. NULL: everything the index holds */
    const char *embedder;    /* spec to embed generations ("sscd:W.safetensors"); NULL: "tiny"
                                when the index has that column */
    const char *background;  /* folder of images known not to be copies: SSCD score
                                normalisation of the embedding cosines (Pizzi et al. 2022):
                                cosine - sscd_beta x mean top-3 similarity to this set.
                                NULL: raw cosines. Needs an embedding column. */
    int threads;             /* <= 0: cs_threads() */
    int progress;            /* show a progress line (stderr, when a terminal) */
    cs_an_settings set;
} cs_analyze_opts;

typedef struct {
    int64_t analysis_id, run_id;
    int64_t n_generations;   /* analysed */
    int64_t n_skipped;       /* unreadable or not images (analysis_skipped rows) */
    int64_t n_refs;
    int64_t n_prompts;
    int64_t count[4];        /* generations by verdict level (CS_V_*) */
    int64_t n_clique_prompts;/* prompts with a clique >= clique_k */
    int worst;               /* highest verdict level, -1 when nothing was analysed */
    char descriptors[256];   /* what was used, comma list */
} cs_analyze_summary;

/* Errors: run id unknown (CS_ENOTFOUND "run 42: no such run"), a run or
 * folders without any readable generation (CS_ENOTFOUND "...: no generations
 * to analyse"), a descriptor the index lacks (CS_EUSAGE). */
int cs_analyze_run(cs_store *s, const cs_analyze_opts *o, cs_analyze_summary *sum, cs_err *err);

/* The A1111 "parameters" text: "PROMPT\nNegative prompt: ...\nSteps: 20, ...,
 * Seed: 1234, ...". *prompt is malloc'd (the text before "Negative prompt:"
 * or the settings line); *seed = -1 when absent. Returns 0, or -1 on NULL text. */
int cs_parse_a1111(const char *text, char **prompt, int64_t *seed);

#endif
