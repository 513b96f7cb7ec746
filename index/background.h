/* background.h — a stored background set per embedding column, for SSCD score
 * normalisation (Pizzi et al. 2022; index/knn.h cs_knn_background_bias): a
 * query's cosines are lowered by beta x the mean of its top-3 similarities
 * to images of the same distribution as the queries that are known NOT to be
 * copies of any reference, so queries similar to everything (flat, generic
 * images) stop ranking first. A set containing copies of references would
 * lower the scores of exactly the copies to be found.
 *
 * Storage: the column <db>.vec-<name>.bg (+ .ids, index/vecstore.h) beside
 * the references' <db>.vec-<name>; a row's id is the first 60 bits of the
 * image file's (or tar member's) sha256, so the same image is stored once
 * whatever its path, and a rerun only embeds images it has not seen. For
 * sscd the weights' file name is kept in meta 'embed.sscd.bg.weights' and
 * must match the embedder that uses the set. */
#ifndef CS_BACKGROUND_H
#define CS_BACKGROUND_H

#include <stdint.h>

#include "core/err.h"
#include "core/store.h"
#include "index/embed.h"
#include "index/vecstore.h"

typedef struct {
    int64_t computed;   /* vectors appended */
    int64_t present;    /* images already in the set (same sha256), or repeated in this run */
    int64_t skipped;    /* unreadable or undecodable, vanished or broken shards */
    int64_t total;      /* rows in the set after the run */
    char skip_example[600]; /* the first skipped image and why ("" when none) */
} cs_bg_stats;

/* Embeds with spec ("tiny", "sscd:W") every image under paths (folders walked
 * recursively in byte order, symbolic links to folders not followed;
 * .png/.jpg/.jpeg files are images, .tar/.tar.gz/.tgz files are webdataset
 * shards; a file named explicitly is tried as an image unless it is a shard)
 * that the set lacks, appending per batch of 32. A missing PATH is an error
 * (CS_ENOTFOUND) before anything is embedded. jobs: threads (0 = all). */
int cs_bg_add(cs_store *s, const char *spec, const char *const *paths, int npaths, int jobs,
              int progress, cs_bg_stats *st, cs_err *err);

/* The path of column's set (malloc'd; NULL when out of memory). */
char *cs_bg_path(cs_store *s, const char *column);

/* Opens e's stored set read-only: 1 (vs filled; free with cs_vecstore_close) when
 * present, 0 when there is none, -1 on error (truncated, another dimension,
 * made with other sscd weights than e's). */
int cs_bg_open(cs_vecstore *vs, cs_store *s, const cs_embedder *e, cs_err *err);

/* bias[nq] = mean of the top-3 cosines of q[nq][dim of e] against e's stored
 * set (cs_knn_background_bias); *nbg = the set's size, 0 (bias all 0) when
 * there is none. */
int cs_bg_bias(cs_store *s, const cs_embedder *e, const float *q, int64_t nq, float *bias,
               int64_t *nbg, cs_err *err);

/* index query --normalize: scores[nq][k] (ids[nq][k], -1 past the end) of
 * queries q[nq][dim of e] lowered by CS_SSCD_BETA x their bias against e's
 * stored set. No stored set: the scores are left as they are, or, when
 * required, an error (CS_ENOTFOUND, naming the command that makes one).
 * Returns 1 when the scores were normalised, 0 when there was no set, -1 on
 * error. */
int cs_bg_normalize(cs_store *s, const cs_embedder *e, const float *q, int64_t nq, int k,
                    const int64_t *ids, float *scores, int required, cs_err *err);

#endif
