/* analyze.h — `copyscope analyze`: generations x reference index -> matches,
 * cliques, findings with evidence, and a per-prompt summary, in the store.
 *
 * Flow (analyze.c): load the references (thumbnails, hashes, embedding
 * columns) -> read every generation (a run's rows, or image folders recorded
 * as a new run) -> per prompt, near-duplicate cliques (clique.h) -> match in
 * chunks (match.h) and write matches + findings per chunk in one
 * transaction -> prompt_summary. Re-analysing a generation replaces its
 * matches and findings. The evidence_json schema is analyze/evidence.md.
 *
 * only_new (incremental, --run only): the generations of the run that have
 * a finding already are left as they are (same rows, same ids); the others
 * are analysed. The cliques and prompt_summary rows of every prompt with a
 * new generation are recomputed over ALL its generations (the old ones are
 * decoded again for the cliques; their verdicts, aligned tiled L2 and
 * embedding cosines are read back from findings and matches). A clique an
 * old generation joins shows in the new findings and in prompt_summary, not
 * in the old finding's evidence. Nothing new: returns 0 with analysis_id 0
 * and no analyses row. */
#ifndef CS_ANALYZE_H
#define CS_ANALYZE_H

#include <stddef.h>
#include <stdint.h>

#include "analyze/completion.h"
#include "analyze/match.h"
#include "analyze/settings.h"
#include "core/err.h"
#include "core/store.h"
#include "index/localfeat.h"
#include "index/refs.h"

/* Generations matched per cs_an_match_batch call (and decoded per chunk). */
#define CS_AN_BATCH 256

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
                                NULL: the column's stored set (copyscope index
                                background) when it has one, else raw cosines.
                                Needs an embedding column. */
    int threads;             /* <= 0: cs_threads() */
    int progress;            /* show a progress line (stderr, when a terminal) */
    int only_new;            /* with run_id: analyse only generations without a finding (above) */
    int no_local_features;   /* skip the local-feature stage (on when the index has ref_localfeat) */
    cs_an_settings set;
    /* Matches match_batches batches of generations at once: q[nq] is
     * consecutive batches of CS_AN_BATCH (the last may be shorter), each to
     * be matched by one cs_an_match_batch call, as the analysis would (a
     * batch's sgemm rounds its distances by its size: another cut changes
     * the last bits). NULL: the analysis calls cs_an_match_batch itself.
     * copyscope-mpi verifies each batch's candidates on the ranks that
     * own their references with it (cli/cmd_mpi_analyze.c: one batch at a
     * time, cs_an_match_batch_v), so the findings are the same. */
    int (*match)(void *ctx, const cs_an_refs *r, const cs_an_query *q, int64_t nq, const cs_an_settings *s,
                 int threads, cs_an_result *res, cs_err *err);
    void *match_ctx;
    int match_batches; /* <= 1: one batch at a time */
    int match_scans; /* match scans the references itself (copyscope-mpi: each rank its share): the
                        index is loaded without the prepared floats of the exact scan (4x the thumbnails) */
    /* The embedding search of the generations (cs_embed_search's contract, index/embed.h: ids[nq][k]
     * and scores by score, then column row), with match_ctx and r the index matched against.
     * NULL: cs_embed_search over the whole column. copyscope-mpi has each rank search its own
     * references' rows and merges the lists (cli/cmd_mpi_embed.c): the same ids and scores. */
    int (*embed_search)(void *ctx, const cs_an_refs *r, const char *column, const float *q, int nq, int dim, int k,
                        int64_t *ids, float *scores, cs_err *err);
    /* The references' thumbnails (cs_refs_load_thumbs' contract), with match_ctx. NULL: cs_refs_load_thumbs.
     * copyscope-mpi's rank 0 of a sharded store loads the rows without their pixels into a reserved,
     * untouched mapping and writes in each batch's candidates (fetched from their owner ranks) before
     * anything reads them: only the candidates ever cost memory. A run with completion tasks (whose
     * audit reads every reference) gets the whole thumbnails after all (analyze.c). */
    int (*load_thumbs)(void *ctx, cs_store *s, cs_ref_thumbs *th, cs_err *err);
    /* The local-feature vote search (cs_lf_retrieve's contract, index/localfeat.h), with match_ctx, r the
     * index matched against, ix the vote index of the records rec (rows[rec->n]: their rows in r, -1 none).
     * NULL: cs_lf_retrieve on ix. copyscope-mpi has each rank search the descriptors of the references it
     * owns and merges the nearest lists (cli/cmd_mpi_an_lf.c): the same votes. */
    int (*lf_search)(void *ctx, const cs_an_refs *r, cs_lf_index *ix, const cs_lf_records *rec, const int32_t *rows,
                     const cs_lf_set *q, int64_t nq, int max_out, cs_lf_vote *out, int *nout, cs_err *err);
    /* Opens the vote index of the records rec at path (<db>.lfvote; cs_lf_index_open_fp's contract), with
     * match_ctx. NULL: cs_lf_index_open_fp. copyscope-mpi's rank 0, whose ranks search the parts (lf_search),
     * reads only the quantizer and counts (<db>.lfquant) where they are current: an index for lf_search alone. */
    int (*lf_open)(void *ctx, const char *path, const cs_lf_records *rec, cs_lf_index **out, char *note, size_t cap,
                   cs_err *err);
    /* A completion audit (cs_an_completion_audit's contract, analyze/completion.h), with match_ctx and r
     * the index matched against. NULL: cs_an_completion_audit, which reads every reference's thumbnail
     * (so a load_thumbs that leaves them out gets the whole thumbnails read for a run with completion
     * tasks). copyscope-mpi reads only the original's thumbnail and has each rank scan the references it
     * holds for the nearest other (cli/cmd_mpi_an_compl.c): the same audit. */
    int (*completion_audit)(void *ctx, cs_an_completion *out, const cs_an_refs *r, const uint8_t *gen_thumb,
                            int64_t orig_row, const uint8_t *withheld, const cs_an_settings *s, cs_err *err);
} cs_analyze_opts;

typedef struct {
    int64_t analysis_id, run_id;
    int64_t n_generations;   /* analysed (only_new: the new ones) */
    int64_t n_skipped;       /* unreadable or not images (analysis_skipped rows) */
    int64_t n_kept;          /* only_new: generations whose finding was kept */
    int64_t n_refs;
    int64_t n_prompts;       /* prompt summaries written */
    int64_t count[4];        /* analysed generations by verdict level (CS_V_*) */
    int64_t n_clique_prompts;/* prompts with a clique >= clique_k */
    int worst;               /* highest verdict level analysed, -1 when nothing was */
    char descriptors[256];   /* what was used, comma list */
    char rt_skipped[320];    /* the run's model has an autoencoder, but the round trip
                              * (an_roundtrip.c) could not use it: why; "" otherwise */
} cs_analyze_summary;

/* Errors: run id unknown (CS_ENOTFOUND "run 42: no such run"), a run or
 * folders without any readable generation (CS_ENOTFOUND "...: no generations
 * to analyse"), a descriptor the index lacks (CS_EUSAGE). */
int cs_analyze_run(cs_store *s, const cs_analyze_opts *o, cs_analyze_summary *sum, cs_err *err);

/* The neighbours the analysis would find for image files, recording
 * nothing (`copyscope index query`'s fused ranking): the same descriptors,
 * local features and ranking as cs_analyze_run, with o->image_dirs (files or
 * folders) as the generations. *out[*n] (malloc'd, cs_analyze_neighbours_free)
 * in the order the analysis lists the files. */
typedef struct {
    char *path;
    char *error;            /* unreadable: why (the rest is empty) */
    int verdict;            /* CS_V_* of the finding the analysis would make */
    const char *rule;
    int n;                  /* neighbours, in the finding's order */
    int64_t ref_id[5];
    int nb_verdict[5];
    float fused[5], share[5], d_al[5];
    int pdq[5];
} cs_an_neighbours;
int cs_analyze_neighbours(cs_store *s, const cs_analyze_opts *o, cs_an_neighbours **out, int64_t *n, cs_err *err);
void cs_analyze_neighbours_free(cs_an_neighbours *v, int64_t n);

/* The matcher's side of an analysis, for a process that only matches
 * batches handed to it (another rank of copyscope-mpi): the references
 * loaded from s as cs_analyze_run loads them with o (an_mpi.c); run is one
 * cs_an_match_batch call (q[nq]: one batch of at most CS_AN_BATCH). */
typedef struct cs_an_matcher cs_an_matcher;
int cs_an_matcher_open(cs_an_matcher **m, cs_store *s, const cs_analyze_opts *o, cs_err *err);
int cs_an_matcher_run(cs_an_matcher *m, const cs_an_query *q, int64_t nq, cs_an_result *res, cs_err *err);
void cs_an_matcher_free(cs_an_matcher *m);
/* Its reference side and settings (for cs_an_verify on the owning rank). */
const cs_an_refs *cs_an_matcher_refs(const cs_an_matcher *m);
const cs_an_settings *cs_an_matcher_settings(const cs_an_matcher *m);

/* Does run_id need (re-)analysis with set? 1: yes, all of it; 2: only the
 * generations without a finding (only_new); 0: no (every generation has a
 * finding from a finished analysis with these settings against an index of
 * the same size); -1: error. why[wn] says why. reanalyze / settings_changed:
 * the caller asks for a new analysis whatever the store holds. */
int cs_analyze_needed(cs_store *s, int64_t run_id, const cs_an_settings *set, int reanalyze, int settings_changed,
                      char *why, size_t wn, cs_err *err);

/* The errors recorded for the first (up to) max files analysis_id skipped
 * (why[i] malloc'd, "file: what"); returns how many, 0 on any error. */
int cs_analyze_skipped(cs_store *s, int64_t analysis_id, char **why, int max);

/* The A1111 "parameters" text: "PROMPT\nNegative prompt: ...\nSteps: 20, ...,
 * Seed: 1234, ...". *prompt is malloc'd (the text before "Negative prompt:"
 * or the settings line); *seed = -1 when absent. Returns 0, or -1 on NULL text. */
int cs_parse_a1111(const char *text, char **prompt, int64_t *seed);

#endif
