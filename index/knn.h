/* knn.h — exact nearest-neighbour search by inner product (cosine on
 * L2-normalised vectors), for databases far larger than n x n fits.
 *
 * The database is visited in blocks: for a block of queries and a block of
 * database rows, cblas_sgemm computes the block of scores, and each query's
 * streaming top-k (a bounded min-heap) absorbs it; memory is
 * O(query block x database block + nq x k), whatever n is. The scores are
 * exact float32 inner products (the sgemm's summation order). */
#ifndef CS_KNN_H
#define CS_KNN_H

#include <stdint.h>

#include "core/err.h"

#define CS_KNN_MAX_K 4096

/* Top-k rows of db[n][dim] for each of q[nq][dim] by inner product.
 * Writes scores[nq][k] (descending) and rows[nq][k] (row numbers into db);
 * equal scores are ordered by row. When n < k the tail is row -1, score
 * -INFINITY. A NaN score (NaN in a vector) never enters a list. threads <= 0
 * means cs_threads(); both the sgemm (OpenBLAS) and the heap updates use it.
 * Caller owns every buffer. */
int cs_knn_exact(const float *db, int64_t n, int dim, const float *q, int64_t nq, int k,
                 int threads, float *scores, int64_t *rows, cs_err *err);

/* The same over a q8 column kept at 8 bits (index/vecstore.h: each row its
 * float32 scale then dim int8): each 512-reference chunk is dequantised on
 * the fly into a per-thread buffer (threads x 512 x dim floats) before its
 * sgemm, so memory is dim + 4 bytes a reference and the scores and rows are
 * those of cs_knn_exact over the decoded column, bit for bit, at any thread
 * count. */
int cs_knn_exact_q8(const unsigned char *db8, int64_t n, int dim, const float *q, int64_t nq, int k,
                    int threads, float *scores, int64_t *rows, cs_err *err);

/* Scales each of the n rows of v[n][dim] to unit L2 norm. A row of norm
 * below 1e-12 (an all-zero descriptor, e.g. from a constant image under a
 * mean-subtracting descriptor) is left all zero: it scores 0 against
 * everything, so it is never anyone's confident neighbour. Returns how many
 * rows were such zero rows. */
int64_t cs_l2_normalize(float *v, int64_t n, int dim);

/* SSCD score normalisation (Pizzi et al. 2022, section 4): a query's scores
 * are lowered by beta x the mean of its top-3 similarities to a background
 * set of descriptors from the same distribution but known not to be copies,
 * so queries that are similar to everything (flat, generic images) stop
 * ranking first. bias[nq] = mean of the top-3 scores of q against bg[nbg][dim]
 * (fewer when nbg < 3; 0 when nbg = 0). */
#define CS_SSCD_BETA 1.0f
int cs_knn_background_bias(const float *bg, int64_t nbg, int dim, const float *q, int64_t nq,
                           int threads, float *bias, cs_err *err);
/* scores[nq][k] -= beta * bias[q] (entries with row -1 are left alone). */
void cs_knn_apply_bias(float *scores, const int64_t *rows, int64_t nq, int k, const float *bias,
                       float beta);

#endif
