/* ann.h — an approximate nearest-neighbour index per embedding column.
 *
 * One file beside the database, <db>.ann-<column>.faiss, holds a FAISS index
 * (index/faiss_shim.h) over rows 0..rows-1 of the column <db>.vec-<column>
 * (index/vecstore.h), in row order, by inner product (cosine: the columns are
 * L2-normalised). Layout: a 256-byte header, then the FAISS index as
 * faiss::write_index writes it:
 *   magic[8] "CSANN\0\0\1", u32 version (1), u32 dim, u64 rows (vectors the
 *   index holds), u64 payload (bytes of the FAISS index that follow),
 *   u64 fingerprint (FNV-1a of the column's first min(rows, 64) ids and
 *   vectors: an index built from another column of the same name and
 *   dimension is refused), char column[64], char factory[128], u64 trained_rows
 *   (column rows at training), u32 flags (1: the factory is the default),
 *   zero padding.
 * Every write goes to a temporary file that is renamed over the old one, so
 * an interrupted build leaves the previous index (or none), never half a file.
 *
 * Building trains the index on an evenly spaced sample of the column (IVF:
 * spherical k-means, CS_ANN_TRAIN_ITERS iterations) and adds every row.
 * Updating an existing index adds only the rows appended since (an IVF adds
 * rows without retraining: the same lists as a full build with that
 * quantizer); a column that shrank, or whose first rows changed, is an error.
 *
 * Searching takes k x refine candidates from FAISS, re-scores them exactly on
 * the column's own vectors (so compressed codes still give exact cosines and
 * ranks) and scans rows appended after the last build exactly, so the answer
 * always covers the whole column. */
#ifndef CS_ANN_H
#define CS_ANN_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/store.h"
#include "index/faiss_shim.h"
#include "index/vecstore.h"

#define CS_ANN_HEADER_SIZE 256
#define CS_ANN_TRAIN_ITERS 20
/* Training points per IVF list. FAISS's minimum is 39 (fewer prints a
 * warning), but on clustered data (near-duplicate groups) that sample leaves
 * k-means with lists that scatter ~25% of the groups (bench_embed: recall@10
 * 0.82 at 1M); 100 per list gives the groups their own lists (0.96). At most
 * CS_ANN_MAX_TRAIN points (1 GiB at d = 512): training 4096 lists on 409,600
 * points takes ~4 minutes on 2 cores. */
#define CS_ANN_TRAIN_PER_LIST 100
#define CS_ANN_MAX_TRAIN 524288

typedef struct {
    const char *factory; /* FAISS index_factory string; NULL: cs_ann_default_factory */
    int nprobe;          /* IVF lists searched by default, stored in the index; 0: cs_ann_default_nprobe */
    int rebuild;         /* train anew even when an index exists (also implied by another factory) */
    int threads;         /* FAISS (OpenMP) threads, 0: cs_threads() */
    int progress;        /* progress line on stderr (core/progress.h) */
} cs_ann_opts;

typedef struct {
    int64_t rows_before; /* rows the existing index held (0 when built anew) */
    int64_t rows;        /* rows it holds now (= the column's) */
    int trained;         /* 1 when (re)trained */
    int nprobe;          /* stored default */
    char factory[128];
    double train_s, add_s; /* seconds training, adding */
    int64_t file_bytes;
} cs_ann_stats;

/* The default factory for a column of n rows: "IVF<nlist>,Flat", nlist a
 * power of two near 4 sqrt(n) (4096 at 1M rows) and at most n / 100 (the
 * training sample's CS_ANN_TRAIN_PER_LIST per list); "Flat" (exact) under 200 rows. */
void cs_ann_default_factory(int64_t n, char *buf, size_t cap);
/* nprobe for nlist lists: max(8, nlist / 512), at most half the lists (at 1M
 * rows, IVF4096 nprobe 8: recall@10 0.967, the copied row found for 99.3% of
 * queries, 12-14x exact search in bench_embed; nprobe 1: 0.956 at 39-49x). */
int cs_ann_default_nprobe(int64_t nlist);

/* Builds or updates the index file path over column vs (named column). An
 * index built with the default factory is trained anew once the column has
 * grown to 4x the rows it was trained on and the default for the new size
 * differs; a factory given by the user is kept. 
 * st may be NULL. */
int cs_ann_build_vs(const char *path, const char *column, const cs_vecstore *vs, const cs_ann_opts *o,
                    cs_ann_stats *st, cs_err *err);

typedef struct cs_ann cs_ann;

/* Opens the index file path and checks it against column vs (named column):
 * its header, dimension, fingerprint, and that the column has at least its
 * rows. Each problem is a one-line error naming path. Free with cs_ann_close. */
int cs_ann_open(cs_ann **out, const char *path, const char *column, const cs_vecstore *vs, cs_err *err);
int64_t cs_ann_rows(const cs_ann *a);
const char *cs_ann_factory(const cs_ann *a);
cs_faiss *cs_ann_faiss(cs_ann *a); /* the FAISS index (owned by a) */

typedef struct {
    int nprobe;  /* 0: the stored default */
    int refine;  /* candidates per result re-scored exactly; 0: 1 for ",Flat" codes, else 8 */
    int threads; /* 0: cs_threads() */
} cs_ann_search_opts;

/* Top-k rows of vs for each query q[nq][vs->dim], best first: scores[nq][k]
 * (exact inner products), rows[nq][k] (-1, -INFINITY past the end). o may be
 * NULL. vs must be the column a was opened against. */
int cs_ann_search(cs_ann *a, const cs_vecstore *vs, const float *q, int64_t nq, int k,
                  const cs_ann_search_opts *o, float *scores, int64_t *rows, cs_err *err);
void cs_ann_close(cs_ann *a);

/* ---- the same through the store ---- */

/* "<db>.ann-<column>.faiss"; caller frees. */
char *cs_ann_path(const cs_store *s, const char *column);
/* Builds or updates the index of column (e.g. "tiny", "sscd"). */
int cs_ann_build(cs_store *s, const char *column, const cs_ann_opts *o, cs_ann_stats *st, cs_err *err);
/* Like cs_embed_search (index/embed.h), through the column's approximate
 * index: ref_ids[nq][k] (-1 past the end), scores[nq][k]. No index built is a
 * CS_ENOTFOUND error naming the command that builds it. */
int cs_ann_search_store(cs_store *s, const char *column, const float *q, int nq, int dim, int k,
                        const cs_ann_search_opts *o, int64_t *ref_ids, float *scores, cs_err *err);

#endif
