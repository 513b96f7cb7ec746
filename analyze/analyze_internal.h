/* analyze_internal.h — the state of one `copyscope analyze` and the stages
 * that fill it, shared by the files of the analysis (not a public API):
 *
 *   analyze.c         the driver (cs_analyze_run) and the stages
 *   analyze_input.c   the generations to analyse: run rows, image folders,
 *                     completion tasks, the only_new bookkeeping
 *   evidence.c        the finding's evidence_json (schema: evidence.md)
 *   analyze_store.c   every statement on the analysis tables (analyses,
 *                     analysis_skipped, matches, findings, prompt_summary)
 *                     and the reads of the run's rows
 *
 * Data flows one way through an_state: load fills the reference side and
 * the items; describe and search fill q; cliques and match fill the items'
 * clique fields and res; write and summarise read them. A new stage adds
 * its fields to an_state (with who fills them) and one call to the driver. */
#ifndef CS_ANALYZE_INTERNAL_H
#define CS_ANALYZE_INTERNAL_H

#include <stdint.h>

#include "analyze/analyze.h"
#include "analyze/completion.h"
#include "analyze/fine_ref.h"
#include "analyze/match.h"
#include "analyze/verdict.h"
#include "core/progress.h"
#include "index/embed.h"
#include "index/hamming.h"
#include "index/localfeat.h"
#include "index/refs.h"
#include "index/vecstore.h"

enum { AN_CHUNK = CS_AN_BATCH }; /* generations decoded, matched and written per batch */

/* A completion task of the run (one per prompt of kind 'completion'): the
 * region withheld from the original, which is reference row orig_row. */
typedef struct an_task {
    int64_t prompt_id;
    int64_t orig_row;    /* -1: the original is not in the index */
    char *mask;          /* task_json "mask" (path), or NULL for a rect */
    int rect[4];         /* task_json "rect", in the reference's pixels */
    int ref_w, ref_h;    /* the task's reference size (0: unknown, use the generation's) */
    uint8_t *withheld;   /* [CS_THUMB_SIZE^2] for a mask, NULL for a rect */
    char *error;         /* why it cannot be audited, or NULL */
} an_task;

typedef struct {
    an_task *v;
    int64_t n;
} an_tasks;

/* One generation to analyse. */
typedef struct {
    int64_t gen_id;
    int64_t prompt_id;   /* 0 when the generation has none */
    char *path;
    char *prompt;        /* --images: the prompt from the PNG, or "" */
    int64_t seed;
    double whitebox;
    int has_whitebox;
    int ok;              /* decoded */
    char *error;         /* why not */
    int64_t clique;      /* index into the prompt's cliques, -1 */
    int64_t clique_size;
    int64_t clique_seed; /* generation id of the clique's seed */
    int img_w, img_h;
    const struct an_task *task; /* its prompt's completion task, or NULL */
    int audited;         /* comp holds the completion audit */
    cs_an_completion comp;
    float emb_bias;      /* SSCD background bias subtracted from the cosines (x beta) */
    int old;             /* only_new: has a finding, kept; only its thumbnail is needed */
    int old_verdict;     /* ... its stored verdict, aligned tiled L2 (INFINITY: none) and */
    double old_dal, old_cos; /* largest embedding cosine (-2: none), for prompt_summary */
    int64_t res_i;       /* index of its result in res (analysed ones) */
    int64_t pos;         /* --images: its place in path order (the generation's sample) */
    int no_prompt;       /* --images: no PNG parameters: no prompt to group it with */
} item;

typedef struct {
    item *v;
    int64_t n, cap;
} items;

/* which descriptors the index holds */
typedef struct {
    int tl2, hashes;
    char **emb;      /* embedding column names */
    int n_emb;
} holds;

/* The background set the embedding cosines were normalised with, if any. */
typedef struct {
    const char *kind; /* "stored" (index background), "folder" (--background), NULL: none */
    const char *path;
    int64_t n;
} bg_info;

/* an_roundtrip.c: how one finding's reference was compared (per result). */
typedef struct {
    int used;           /* 1: with the reference and its round trip through the model's autoencoder */
    int from_source;    /* the round trip was made from the source file (0: the thumbnail) */
    float d_ref, d_rt;  /* aligned tiled L2 of the generation to the reference, to its round trip */
    float floor;        /* tiled L2 of the reference to its round trip (the autoencoder's loss) */
    uint64_t beyond;    /* tiles (bit t) where the generation is farther than floor from the round trip */
    int tiles;          /* tiles of the grid (bits of beyond that mean something) */
    uint64_t part;      /* ae_floor_part's region (bit t), 0: none */
    int part_n, part_mirrored;
    float part_box[3];  /* the reference's crop the region's tiles are of (x0, y0, side, px) */
} an_rt_info;

/* One prompt's line of prompt_summary. */
typedef struct {
    int64_t prompt_id;
    int64_t n, count[4];
    double min_tl2, max_cos, wb_sum;
    int64_t wb_n;
    int64_t largest_clique;
} psum;

/* The prepared statements that write one chunk's matches and findings. */
typedef struct {
    sqlite3_stmt *del_m, *del_f, *ins_m, *ins_f;
} an_writer;

/* Everything one analysis reads and makes, stage by stage. */
typedef struct {
    /* the call */
    cs_store *s;
    const cs_analyze_opts *o;
    const cs_an_settings *set;
    int threads;
    cs_analyze_summary *sum;   /* the result, filled as the stages go */
    /* load: the reference side */
    cs_ref_thumbs th;          /* thumbnails (mapped or malloc'd), sources, captions */
    cs_hash_db hdb;            /* the hashes table */
    holds h;                   /* what the index holds */
    cs_an_refs refs;           /* the matcher's prepared references */
    cs_fine_refs fine;         /* refs.fine: the references' sources for part_al at 256 px (an_part.h) */
    int fine_open;
    int use_hashes;            /* the hash descriptors take part */
    cs_embedder *emb;          /* NULL: no embedding column takes part */
    const char *emb_name;      /* its column */
    float *bgv;                /* --background folder embeddings [nbg][dim] */
    cs_vecstore bgvs;          /* the column's stored background set, when used */
    int bgvs_open;
    const float *bgp;          /* the set used: bgv, or bgvs's mapping */
    int64_t nbg;
    bg_info bg;
    cs_lf_index *lfx;          /* an_local.c: the local-feature vote index (NULL: not used) */
    cs_lf_records lf_map;      /* the references' records, memory-mapped (<db>.lfrec) */
    const uint8_t *lf_recs;    /* [lf_n][CS_LF_RECORD] = lf_map.recs */
    int32_t *lf_rows;          /* [lf_n] their rows in refs (-1: not an analysed reference) */
    int64_t lf_n;
    /* load: the generations */
    items it;                  /* by generation id (--run) or path (--images) */
    an_tasks tasks;            /* the run's completion tasks; items point into it */
    int nothing_new;           /* only_new and every generation has a finding */
    /* describe + search */
    cs_an_query *q;            /* [it.n]: thumbnail, hashes, embedding hits of it.v[i] */
    /* cliques */
    item **byp;                /* [it.n]: the decoded items by prompt, then id */
    int64_t nok;               /* how many of byp are set */
    item **pending;            /* the decoded new items (to match), same order */
    int64_t npending;
    /* match */
    cs_an_result *res;         /* [it.n]: pending[i]'s result is res[i] */
    /* round trip (an_roundtrip.c): the run's model's autoencoder, NULL for image folders */
    struct an_rt *rt;
    an_rt_info *rti;           /* [it.n]: res[i]'s comparison is rti[i] */
    /* write */
    an_writer w;
    /* --images, streamed slice by slice (analyze_input.c): A->it is one slice */
    int streaming;             /* prompts read ahead; no progress line per stage */
    cs_progress *prog;         /* the one progress line of a streamed analysis */
} an_state;

/* analyze_input.c */
int an_items_push(items *it, item x);
void an_items_free(items *it);
int an_list_images(char *const *dirs, int n, items *it, cs_err *err);
/* Parses one prompt's task_json (from the prompts row of kind completion) into t. */
int an_task_parse(an_task *t, const char *task_json, const char *expect_ref, const cs_ref_thumbs *th,
                  cs_err *err);
void an_tasks_free(an_tasks *t);
void an_drop_untouched_prompts(items *it);
/* --images: the prompt and seed of every listed file from its PNG
 * 'parameters' (no_prompt when it has none), and its place in path order. */
void an_read_image_prompts(items *it, int threads);
/* --images: the order the files are analysed in, as slices of whole prompt
 * groups of about AN_SLICE files (a larger group is one slice): idx[n] item
 * indices, cut[0..*n_slices] offsets into idx (malloc'd, caller frees). Files
 * without a prompt are groups of one. */
enum { AN_SLICE = 2048 };
int an_image_slices(const items *it, int64_t **idx, int64_t **cut, int64_t *n_slices);

/* analyze.c: the thumbnails and hashes of the index into A->th, A->hdb,
 * A->h and the matcher's A->refs (also an_mpi.c's matcher) */
int an_load_refs(an_state *A, cs_err *err);

/* an_local.c: the local-feature stage (load with the index; search per
 * chunk of decoded images imgs[n] of items off..off+n, filling q[].lf*) */
int an_local_load(an_state *A, cs_err *err);
int an_local_search(an_state *A, const cs_image *imgs, int64_t off, int64_t n, cs_err *err);
void an_local_free(an_state *A);

/* an_roundtrip.c: the run's model (a run with an SD model: its autoencoder;
 * else none, and why), the re-judging of a matched chunk against the
 * candidates' round trips, the evidence's "pixel_comparison" object
 * (obj: a cJSON *), and the state freed. */
int an_rt_open(an_state *A, cs_err *err);
int an_rt_judge(an_state *A, item *const *cx, const cs_an_query *cq, cs_an_result *cr, int64_t n, cs_err *err);
void an_rt_evidence(void *obj, const an_state *A, const cs_an_result *r);
void an_rt_free(an_state *A);

/* evidence.c: the finding's evidence (malloc'd JSON, NULL when out of memory) */
char *an_evidence_json(const an_state *A, const cs_an_result *r, const item *x);

/* analyze_store.c */
int an_store_load_run(cs_store *s, int64_t run_id, items *it, cs_err *err);
int an_store_load_tasks(cs_store *s, int64_t run_id, items *it, an_tasks *tk, const cs_ref_thumbs *th,
                        cs_err *err);
int an_store_keep_old(cs_store *s, int64_t run_id, items *it, const char *emb, cs_err *err);
/* An --images analysis, streamed: the run row, then each slice's prompts
 * and generations (*np: prompts made so far). */
int an_store_images_run_begin(cs_store *s, char *const *dirs, int n_dirs, int64_t *run_id, cs_err *err);
int an_store_images_add(cs_store *s, int64_t run_id, items *it, int64_t *np, cs_err *err);
/* analysis_skipped rows for paths[n] / errors[n], in one transaction. */
int an_store_add_skipped(an_state *A, char **paths, char **errors, int64_t n, cs_err *err);
int an_store_begin_analysis(an_state *A, cs_err *err);
int an_writer_open(an_state *A, cs_err *err);
void an_writer_close(an_writer *w);
int an_store_write_chunk(an_state *A, item *const *cx, const cs_an_result *cr, int64_t n, cs_err *err);
int an_store_finish(an_state *A, const psum *ps, int64_t np, cs_err *err);

#endif
