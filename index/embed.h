/* embed.h — the embedders an index can hold, by name, and their columns.
 *
 * Spec strings:
 *   "tiny"                  built-in tiny-image descriptor (index/tinydesc.h),
 *                           256-d, computed from the stored 64x64 thumbnails;
 *                           its PCA is learned on the first run
 *                           (<db>.tinydesc.safetensors)
 *   "sscd:WEIGHTS"          SSCD ResNet-50 (index/resnet.h) from a safetensors
 *                           file (scripts/convert_sscd.py), preprocessing
 *                           small_288; "sscd@PREPROC:WEIGHTS" picks another
 *                           named preprocessing (skew_320, skew_288, center_224)
 * Each embedder's vectors live in the column <db>.vec-<name> (index/vecstore.h),
 * name = "tiny" or "sscd", L2-normalised float32, compared by cosine.
 *
 * sscd decodes each reference from refs.source (its thumbnail is too small
 * for a 224-288 px CNN): files in id order, then tar-shard members (source
 * "shard.tar//member"), each shard streamed once (index/ingest_tar.c) for the
 * members that lack a vector. A reference whose file has moved, whose shard
 * has vanished or whose member no longer decodes is skipped and counted (the
 * first reason is kept in cs_embed_stats.skip_example); a rerun retries it.
 * "tiny" works for every reference because it only needs the thumbnail.
 *
 * A stored background set per column, for SSCD score normalisation, is
 * index/background.h. */
#ifndef CS_EMBED_H
#define CS_EMBED_H

#include <stdint.h>

#include "core/err.h"
#include "core/image.h"
#include "core/store.h"

typedef struct {
    int64_t computed;   /* vectors appended */
    int64_t present;    /* references that already had one */
    int64_t skipped;    /* no vector possible (unreadable source, vanished shard) */
    char skip_example[600]; /* the first skipped reference and why ("" when none) */
} cs_embed_stats;

/* Computes the embedder's vector for every 'ok' reference that lacks one and
 * appends them to its column; an existing column of another dimension is an
 * error. jobs: threads (0 = cs_threads()). progress: show a progress line. */
int cs_embed_index_add(cs_store *s, const char *spec, int jobs, cs_err *err);
int cs_embed_index_add_ex(cs_store *s, const char *spec, int jobs, int progress,
                          cs_embed_stats *st, cs_err *err);

/* Under mpirun (cli/cmd_mpi.c), the column is computed rank by rank and its
 * bytes are those of one process:
 * - cs_embed_part_prepare (rank 0, first): what every rank reads, as one
 *   process makes it: the tiny PCA learnt from the whole store, the sscd
 *   weights recorded; the store's column created.
 * - cs_embed_part_add (every rank): the vectors of the 'ok' references with
 *   ids in (lo, hi] that the store's column lacks, appended to the float32
 *   column at part (beside the rank's shard); a rerun adds only what the part
 *   and the column lack.
 * - cs_embed_part_merge (rank 0, last): the parts' rows appended to the
 *   store's column in the order one process appends them (quantised there
 *   when the store is q8), then the parts removed. */
int cs_embed_part_prepare(cs_store *s, const char *spec, cs_err *err);
int cs_embed_part_add(cs_store *s, const char *spec, int jobs, int64_t lo, int64_t hi, const char *part,
                      cs_embed_stats *st, cs_err *err);
int cs_embed_part_merge(cs_store *s, const char *spec, const char *const *parts, int n, int64_t *merged,
                        cs_err *err);

/* An embedder ready to describe query images. */
typedef struct cs_embedder cs_embedder;

/* For "tiny" the index's learned PCA must exist (run index add --embedder
 * tiny first). Free with cs_embedder_free. */
int cs_embedder_open(cs_embedder **out, cs_store *s, const char *spec, cs_err *err);
void cs_embedder_free(cs_embedder *e);
const char *cs_embedder_column(const cs_embedder *e); /* "tiny" / "sscd" */
int cs_embedder_dim(const cs_embedder *e);
const char *cs_embedder_weights(const cs_embedder *e); /* sscd: weights path; tiny: NULL */
/* out[n][dim] for n images (alpha already composited by core/image). */
int cs_embedder_describe(cs_embedder *e, const cs_image *imgs, int n, float *out, cs_err *err);
/* The query mirrored as the hashes are (issue 13): 1 when the embedder is not
 * invariant to a mirror by itself and the analysis should also search the
 * mirror image's vector (tiny: a 32x32 picture; SSCD is trained with flips
 * and a second ResNet-50 pass would double its cost, so 0). */
int cs_embedder_mirrors(const cs_embedder *e);
/* 1 when the analysis's embed_near threshold (analyze/settings.c: 0.75, Pizzi
 * et al. 2022) is calibrated for this embedder's cosine, so that a cosine
 * above it is evidence of a copy by itself: SSCD, trained to map an edited
 * copy next to its source, measured at ~90 % precision above 0.75 on DISC21.
 * 0 for tiny: a whitened PCA of the same 32x32 thumbnail pixels the tiled L2
 * compares, fitted to no copies, so its cosine is no independent evidence
 * and no threshold has been calibrated for it (template twins and an evenly
 * offset sibling wallpaper pass 0.75); it retrieves and ranks candidates,
 * and the evidence shows it, but it decides no verdict by itself. */
int cs_embedder_calibrated(const cs_embedder *e);
/* The descriptors of the mirror images of imgs (cs_embedder_mirrors only). */
int cs_embedder_describe_mirror(cs_embedder *e, const cs_image *imgs, int n, float *out, cs_err *err);
/* index add's default embedder (tiny, cli/cmd_index.c): *ready = 1 when the
 * store has its PCA already or enough ok references (*n_ok) to learn all of
 * its CS_TINY_DIM components. */
int cs_embed_default_ready(cs_store *s, int *ready, int64_t *n_ok, cs_err *err);

/* The embedders whose columns exist beside store s: names[*n], caller frees
 * each and the array. */
int cs_embed_columns(cs_store *s, char ***names, int *n, cs_err *err);

/* Top-k references of each query q[nq][dim] in column name by cosine:
 * ref_ids[nq][k] (-1 past the end), scores[nq][k]. A column of another
 * dimension is an error ("<column>: dimension 256, expected 512"). */
int cs_embed_search(cs_store *s, const char *column, const float *q, int nq, int dim, int k,
                    int64_t *ref_ids, float *scores, cs_err *err);

#endif
