/* an_mpi.h — the parts of an analysis one rank of copyscope-mpi holds
 * (analyze/an_mpi.c, no MPI: cli/cmd_mpi_analyze.c moves the bytes).
 *
 * The embedding search: one rank's part of the column DB.vec-<name>, the
 * rows whose references it owns, searched exactly as the whole column is
 * (index/knn.h), and the merge of the ranks' lists. */
#ifndef CS_AN_MPI_H
#define CS_AN_MPI_H

#include <stdint.h>

#include "core/err.h"
#include "index/vecstore.h"

typedef struct {
    cs_vecstore vs;    /* the column, mapped: only the slices' pages are read */
    int open;          /* vs is open */
    void *buf;         /* the slices' rows [held]: dim float32, or as stored when q8 (scale + dim int8);
                          rows of other ranks NaN (a NaN scale for q8), not read */
    int q8;            /* buf holds q8 rows (the column opened raw), searched at 8 bits */
    int64_t *lo, *hi;  /* [ns] the slices, in column rows */
    int ns;
    int64_t held, owned; /* rows of the slices, and of those the rows this rank owns */
} cs_an_emb_part;

/* Which rank owns the reference id (a column row's). */
typedef int (*cs_an_emb_owner)(void *ctx, int64_t id);

/* Opens the column at path (a vector file, index/vecstore.h; dim) and
 * copies the rows whose owner is rank, each run of them padded with NaN rows
 * to whole sgemm chunks of index/knn.c (an_mpi.c says why). */
int cs_an_emb_part_open(cs_an_emb_part *p, const char *path, int dim, int rank, cs_an_emb_owner owner, void *ctx,
                        cs_err *err);
/* The same for the column named column of store s, opened raw
 * (cs_vecstore_open_store_raw): a q8 column's rows stay 8-bit in buf
 * (dim + 4 bytes a row, not 4 dim) and are decoded a 512-row chunk at a time
 * by cs_knn_exact_q8, the same scores bit for bit. */
int cs_an_emb_part_open_store(cs_an_emb_part *p, cs_store *s, const char *column, int dim, int rank,
                              cs_an_emb_owner owner, void *ctx, cs_err *err);
/* This rank's top k of q[nq][dim] (cs_knn_exact's contract: scores[nq][k]
 * descending, ties by row; rows[nq][k] column rows, -1 and -INFINITY past
 * the end). */
int cs_an_emb_part_search(const cs_an_emb_part *p, const float *q, int nq, int k, int threads, float *scores,
                          int64_t *rows, cs_err *err);
/* acc = the top k of acc and src (nq lists each), by score then row. */
void cs_an_emb_part_merge(float *acc_s, int64_t *acc_r, const float *src_s, const int64_t *src_r, int64_t nq, int k);
void cs_an_emb_part_close(cs_an_emb_part *p);

#endif
